use super::*;
use chrono::{Duration, TimeZone};
use chrono_tz::{America::New_York, Europe::Berlin, Tz};

/// A `when` as a rule writes it (the inside of `when = { ... }`), read
/// the way the config file reads it.
fn when(inside: &str) -> Result<When, WhenError> {
    #[derive(Deserialize)]
    struct Rule {
        when: WhenSetting,
    }
    let text = format!("when = {{ {inside} }}");
    let rule: Rule = toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    rule.when.0
}

fn ok(inside: &str) -> When {
    when(inside).unwrap_or_else(|e| panic!("{inside}: {e}"))
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// A wall-clock time in `tz` that exists once, as an instant.
fn local(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .unwrap_or_else(|| panic!("{y}-{mo}-{d} {h}:{mi} is not one instant in {tz}"))
        .with_timezone(&Utc)
}

/// How many minutes of the `hours` real hours from `from` the schedule
/// contains.
fn minutes_in(when: &When, from: DateTime<Utc>, hours: i64) -> usize {
    (0..hours * 60)
        .filter(|m| when.contains(from + Duration::minutes(*m)))
        .count()
}

// 2026-03-09 is a Monday, 2026-03-13 a Friday, 2026-03-14 a Saturday.

#[test]
fn days_are_names_ranges_and_lists_in_any_case() {
    let weekdays = ok(r#"days = "mon-fri""#);
    assert!(weekdays.contains(utc(2026, 3, 9, 12, 0)), "Monday");
    assert!(weekdays.contains(utc(2026, 3, 13, 12, 0)), "Friday");
    assert!(!weekdays.contains(utc(2026, 3, 14, 12, 0)), "Saturday");
    assert!(!weekdays.contains(utc(2026, 3, 15, 12, 0)), "Sunday");
    let weekend = ok(r#"days = "SAT, Sun""#);
    assert!(weekend.contains(utc(2026, 3, 14, 0, 0)) && weekend.contains(utc(2026, 3, 15, 23, 59)));
    assert!(
        !weekend.contains(utc(2026, 3, 13, 23, 59)) && !weekend.contains(utc(2026, 3, 16, 0, 0))
    );
    let listed = ok(r#"days = ["mon-wed", "Fri"]"#);
    let open: Vec<u32> = (9..16)
        .filter(|&d| listed.contains(utc(2026, 3, d, 12, 0)))
        .collect();
    assert_eq!(open, [9, 10, 11, 13], "Mon, Tue, Wed, Fri");
    assert_eq!(ok(r#"days = "mon-wed,fri""#), listed);
}

#[test]
fn a_range_past_sunday_wraps_to_monday() {
    let long_weekend = ok(r#"days = "fri-mon""#);
    let open: Vec<u32> = (9..16)
        .filter(|&d| long_weekend.contains(utc(2026, 3, d, 12, 0)))
        .collect();
    assert_eq!(open, [9, 13, 14, 15], "Mon, Fri, Sat, Sun");
}

#[test]
fn hours_are_windows_start_inclusive_end_exclusive_on_every_day_by_default() {
    let office = ok(r#"hours = "08:00-18:00""#);
    assert!(!office.contains(utc(2026, 3, 14, 7, 59)));
    assert!(office.contains(utc(2026, 3, 14, 8, 0)), "start is in");
    assert!(office.contains(utc(2026, 3, 14, 17, 59) + Duration::seconds(59)));
    assert!(!office.contains(utc(2026, 3, 14, 18, 0)), "end is out");
    assert_eq!(minutes_in(&office, utc(2026, 3, 9, 0, 0), 24 * 7), 7 * 600);
    let short = ok(r#"hours = "8:05-8:10""#);
    assert_eq!(minutes_in(&short, utc(2026, 3, 9, 0, 0), 24), 5);
}

#[test]
fn a_whole_day_is_00_00_to_24_00() {
    let sundays = ok(r#"days = "sun", hours = "00:00-24:00""#);
    assert!(sundays.contains(utc(2026, 3, 15, 0, 0)));
    assert!(sundays.contains(utc(2026, 3, 15, 23, 59)));
    assert!(!sundays.contains(utc(2026, 3, 16, 0, 0)));
    assert!(!sundays.contains(utc(2026, 3, 14, 23, 59)));
    assert_eq!(sundays, ok(r#"days = "sun""#));
}

#[test]
fn an_overnight_window_belongs_to_the_day_it_started() {
    let friday_night = ok(r#"days = "fri", hours = "22:00-06:00""#);
    assert!(
        friday_night.contains(utc(2026, 3, 13, 22, 0)),
        "Friday 22:00"
    );
    assert!(
        friday_night.contains(utc(2026, 3, 14, 3, 0)),
        "Saturday 03:00"
    );
    assert!(friday_night.contains(utc(2026, 3, 14, 5, 59)));
    assert!(!friday_night.contains(utc(2026, 3, 14, 6, 0)), "end is out");
    assert!(
        !friday_night.contains(utc(2026, 3, 13, 3, 0)),
        "Friday 03:00"
    );
    assert!(
        !friday_night.contains(utc(2026, 3, 14, 22, 0)),
        "Saturday 22:00"
    );
    assert!(!friday_night.contains(utc(2026, 3, 13, 21, 59)));
    assert_eq!(
        minutes_in(&friday_night, utc(2026, 3, 9, 0, 0), 24 * 7),
        8 * 60
    );
    // Sunday night runs into Monday, across the end of the week.
    let sunday_night = ok(r#"days = "sun", hours = "23:00-01:00""#);
    assert!(
        sunday_night.contains(utc(2026, 3, 16, 0, 30)),
        "Monday 00:30"
    );
    assert!(
        !sunday_night.contains(utc(2026, 3, 15, 0, 30)),
        "Sunday 00:30"
    );
}

#[test]
fn any_of_several_windows_will_do() {
    let split = ok(r#"hours = ["08:00-12:00", "13:00-17:00"]"#);
    assert!(split.contains(utc(2026, 3, 9, 11, 59)));
    assert!(!split.contains(utc(2026, 3, 9, 12, 30)), "lunch");
    assert!(split.contains(utc(2026, 3, 9, 13, 0)));
    assert_eq!(split, ok(r#"hours = "08:00-12:00, 13:00-17:00""#));
}

#[test]
fn the_time_zone_defaults_to_utc() {
    let written = ok(r#"hours = "08:00-18:00""#);
    assert_eq!(written.tz.name, "UTC");
    assert_eq!(written, ok(r#"hours = "08:00-18:00", tz = "UTC""#));
    let berlin = ok(r#"hours = "08:00-18:00", tz = "Europe/Berlin""#);
    // 07:30 UTC is 08:30 in Berlin in winter.
    assert!(!written.contains(utc(2026, 1, 12, 7, 30)));
    assert!(berlin.contains(utc(2026, 1, 12, 7, 30)));
}

#[test]
fn each_mistake_is_named_with_what_was_written() {
    let cases: &[(&str, WhenError)] = &[
        (
            r#"days = "mon-fry""#,
            WhenError::UnknownDay("mon-fry".into()),
        ),
        (r#"days = "monday""#, WhenError::UnknownDay("monday".into())),
        (r#"days = "mon,,fri""#, WhenError::UnknownDay("".into())),
        (r#"days = []"#, WhenError::EmptyList("days")),
        (r#"hours = []"#, WhenError::EmptyList("hours")),
        (r#"hours = "8-18""#, WhenError::BadHours("8-18".into())),
        (r#"hours = "08:00""#, WhenError::BadHours("08:00".into())),
        (
            r#"hours = "08:60-09:00""#,
            WhenError::BadHours("08:60-09:00".into()),
        ),
        (
            r#"hours = "24:00-06:00""#,
            WhenError::BadHours("24:00-06:00".into()),
        ),
        (
            r#"hours = "22:00-24:30""#,
            WhenError::BadHours("22:00-24:30".into()),
        ),
        (
            r#"hours = "08:0-09:00""#,
            WhenError::BadHours("08:0-09:00".into()),
        ),
        (
            r#"hours = "+8:00-09:00""#,
            WhenError::BadHours("+8:00-09:00".into()),
        ),
        (
            r#"hours = "08:00-08:00""#,
            WhenError::EmptyWindow("08:00-08:00".into()),
        ),
        (
            r#"hours = "00:00-00:00""#,
            WhenError::EmptyWindow("00:00-00:00".into()),
        ),
        (
            r#"days = "mon", tz = "Mars/Olympus""#,
            WhenError::UnknownZone("Mars/Olympus".into(), None),
        ),
        (
            r#"days = "mon", tz = "europe/berlin""#,
            WhenError::UnknownZone("europe/berlin".into(), Some("Europe/Berlin".into())),
        ),
        (r#"tz = "Europe/Berlin""#, WhenError::SaysNothing),
        ("", WhenError::SaysNothing),
    ];
    for (inside, expected) in cases {
        assert_eq!(when(inside).as_ref(), Err(expected), "{inside}");
    }
    let said = |inside| when(inside).unwrap_err().to_string();
    assert!(said(r#"days = "mon-fry""#).contains(r#""mon-fry""#));
    assert!(said(r#"hours = "08:00-08:00""#).contains("use \"00:00-24:00\" for all day"));
    assert!(said(r#"days = "x", tz = "europe/berlin""#).contains("unknown day"));
    assert!(
        said(r#"days = "mon", tz = "europe/berlin""#).contains("did you mean \"Europe/Berlin\"")
    );
    assert!(said(r#"hours = "8-18""#).contains("HH:MM-HH:MM"));
}

#[test]
fn unknown_keys_and_wrong_types_fail_as_the_file_is_read() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Rule {
        when: WhenSetting,
    }
    let err = toml::from_str::<Rule>(r#"when = { day = "mon" }"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `day`"), "{err}");
    let err = toml::from_str::<Rule>(r#"when = { days = 5 }"#).unwrap_err();
    assert!(
        err.to_string().contains("a string or a list of strings"),
        "{err}"
    );
    let err = toml::from_str::<Rule>(r#"when = { days = ["mon", 1] }"#).unwrap_err();
    assert!(err.to_string().contains("invalid type"), "{err}");
}

#[test]
fn berlin_spring_forward_skips_the_hour_that_does_not_exist() {
    // 2026-03-29, a Sunday: 02:00 CET (01:00 UTC) becomes 03:00 CEST.
    let day_start = local(Berlin, 2026, 3, 29, 0, 0);
    let missing = ok(r#"hours = "02:00-03:00", tz = "Europe/Berlin""#);
    assert_eq!(minutes_in(&missing, day_start, 23), 0);
    // The next Sunday, the same window is an hour long again.
    assert_eq!(
        minutes_in(&missing, local(Berlin, 2026, 4, 5, 0, 0), 24),
        60
    );
    let across = ok(r#"hours = "01:00-04:00", tz = "Europe/Berlin""#);
    assert_eq!(minutes_in(&across, day_start, 23), 120, "an hour short");
    assert!(across.contains(utc(2026, 3, 29, 0, 59)), "01:59 CET");
    assert!(across.contains(utc(2026, 3, 29, 1, 0)), "03:00 CEST");
    assert!(!across.contains(utc(2026, 3, 29, 2, 0)), "04:00 CEST");
    // A night window over the change is an hour shorter too.
    let night = ok(r#"days = "sat", hours = "22:00-06:00", tz = "Europe/Berlin""#);
    assert_eq!(
        minutes_in(&night, local(Berlin, 2026, 3, 28, 12, 0), 24),
        7 * 60
    );
}

#[test]
fn berlin_fall_back_matches_the_repeated_hour_twice() {
    // 2026-10-25, a Sunday: 03:00 CEST (01:00 UTC) becomes 02:00 CET, so
    // 02:00-03:00 happens first from 00:00 UTC, then again from 01:00 UTC.
    let twice = ok(r#"days = "sun", hours = "02:00-03:00", tz = "Europe/Berlin""#);
    assert!(!twice.contains(utc(2026, 10, 24, 23, 59)), "01:59 CEST");
    assert!(twice.contains(utc(2026, 10, 25, 0, 0)), "02:00 CEST");
    assert!(twice.contains(utc(2026, 10, 25, 0, 59)), "02:59 CEST");
    assert!(twice.contains(utc(2026, 10, 25, 1, 0)), "02:00 CET");
    assert!(twice.contains(utc(2026, 10, 25, 1, 59)), "02:59 CET");
    assert!(!twice.contains(utc(2026, 10, 25, 2, 0)), "03:00 CET");
    assert_eq!(minutes_in(&twice, utc(2026, 10, 24, 12, 0), 24), 120);
    // The hour before the change happens once.
    let before = ok(r#"days = "sun", hours = "01:00-02:00", tz = "Europe/Berlin""#);
    assert_eq!(minutes_in(&before, utc(2026, 10, 24, 12, 0), 24), 60);
    assert!(before.contains(utc(2026, 10, 24, 23, 0)), "01:00 CEST");
    assert!(!before.contains(utc(2026, 10, 25, 0, 0)), "02:00 CEST");
    // The whole day is 25 hours long.
    let sunday = ok(r#"days = "sun", tz = "Europe/Berlin""#);
    assert_eq!(minutes_in(&sunday, utc(2026, 10, 24, 12, 0), 48), 25 * 60);
}

#[test]
fn office_hours_follow_the_wall_clock_across_dst() {
    let office = ok(r#"days = "mon-fri", hours = "08:00-18:00", tz = "Europe/Berlin""#);
    // Friday 2026-03-27, CET (UTC+1): 08:00 is 07:00 UTC.
    assert!(!office.contains(utc(2026, 3, 27, 6, 59)));
    assert!(office.contains(utc(2026, 3, 27, 7, 0)));
    assert!(!office.contains(utc(2026, 3, 27, 17, 0)), "18:00 CET");
    // Monday 2026-03-30, CEST (UTC+2): 08:00 is 06:00 UTC.
    assert!(!office.contains(utc(2026, 3, 30, 5, 59)));
    assert!(office.contains(utc(2026, 3, 30, 6, 0)));
    assert!(!office.contains(utc(2026, 3, 30, 16, 0)), "18:00 CEST");
}

#[test]
fn new_york_days_are_its_own_days() {
    let evenings = ok(r#"days = "mon-fri", hours = "18:00-23:00", tz = "America/New_York""#);
    // Friday 2026-03-13 20:00 EDT is already Saturday 00:00 in UTC.
    let friday_evening = local(New_York, 2026, 3, 13, 20, 0);
    assert_eq!(friday_evening, utc(2026, 3, 14, 0, 0));
    assert!(evenings.contains(friday_evening));
    // Saturday 2026-03-14 20:00 EDT is Sunday 00:00 in UTC.
    assert!(!evenings.contains(local(New_York, 2026, 3, 14, 20, 0)));
}

#[test]
fn new_york_spring_forward_moves_office_hours_an_hour_earlier_in_utc() {
    // 2026-03-08, a Sunday: 02:00 EST (07:00 UTC) becomes 03:00 EDT.
    let office = ok(r#"days = "mon-fri", hours = "09:00-17:00", tz = "America/New_York""#);
    // Friday 2026-03-06, EST (UTC-5).
    assert!(!office.contains(utc(2026, 3, 6, 13, 59)));
    assert!(office.contains(utc(2026, 3, 6, 14, 0)));
    // Monday 2026-03-09, EDT (UTC-4).
    assert!(!office.contains(utc(2026, 3, 9, 12, 59)));
    assert!(office.contains(utc(2026, 3, 9, 13, 0)));
    assert!(!office.contains(utc(2026, 3, 9, 21, 0)), "17:00 EDT");
    let missing = ok(r#"hours = "02:00-03:00", tz = "America/New_York""#);
    assert_eq!(
        minutes_in(&missing, local(New_York, 2026, 3, 8, 0, 0), 23),
        0
    );
}
