//! The decisions under policy rules from a config file.

use super::*;

fn with_rules(rules: &str) -> CullPolicy {
    let config = crate::config::parse(rules).unwrap();
    CullPolicy {
        timeout_secs: 3600,
        user_timeout_secs: 3600,
        rules: config.rules,
        ..users_on()
    }
}

fn member(name: &str, groups: &[&str]) -> User {
    let mut u = user(ago(100_000), ago(100_000), false);
    u.name = name.into();
    u.groups = Some(groups.iter().map(|g| g.to_string()).collect());
    u
}

fn with_options(mut s: Server, options: serde_json::Value) -> Server {
    s.user_options = Some(options);
    s
}

/// The README's four examples in shape (shorter names, another exempt
/// user); the integration tests run the README's own block.
const EXAMPLE_RULES: &str = r#"
    [[rules]]
    name = "instructors"
    group = "instructors"
    never = true

    [[rules]]
    name = "one user"
    user = "vip"
    never = true

    [[rules]]
    name = "gpu"
    user_options = { profile = "gpu" }
    timeout = 1800

    [[rules]]
    name = "named"
    server = "named"
    timeout = 7200

    [[rules]]
    name = "default"
    server = "default"
    timeout = 28800
"#;

#[test]
fn rules_gpu_after_30_minutes_named_after_2_hours_default_after_8() {
    let p = with_rules(EXAMPLE_RULES);
    let student = member("student", &["students"]);
    let gpu = with_options(
        server(ago(1800), ago(9000)),
        serde_json::json!({"profile": "gpu"}),
    );
    let cpu = with_options(
        server(ago(1800), ago(9000)),
        serde_json::json!({"profile": "cpu"}),
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "", &gpu)),
        (
            Action::Stop,
            Reason::Idle,
            Some(Elapsed(1800)),
            Some(Elapsed(9000)),
            Some(2)
        )
    );
    assert_eq!(
        judge_server(&p, now(), &student, "", &gpu)
            .decided_by
            .map(|by| by.to_string()),
        Some("rule \"gpu\"".to_owned())
    );
    // The same idleness on a CPU default server: 8 h apply.
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "", &cpu)).4,
        Some(4),
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "", &cpu)).0,
        Action::Keep
    );
    let idle_2h = server(ago(7200), ago(9000));
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "lab", &idle_2h)).4,
        Some(3),
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "lab", &idle_2h)).0,
        Action::Stop
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "", &idle_2h)).4,
        Some(4),
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "", &idle_2h)).0,
        Action::Keep
    );
    assert_eq!(
        brief(&judge_server(
            &p,
            now(),
            &student,
            "",
            &server(ago(28_800), ago(30_000))
        ))
        .4,
        Some(4),
    );
    assert_eq!(
        brief(&judge_server(
            &p,
            now(),
            &student,
            "",
            &server(ago(28_800), ago(30_000))
        ))
        .0,
        Action::Stop
    );
}

#[test]
fn rules_exempt_a_group_and_a_user_servers_and_users_alike() {
    let p = with_rules(EXAMPLE_RULES);
    let ancient = server(ago(1_000_000), ago(1_000_000));
    let teacher = member("teacher", &["instructors"]);
    let vip = member("vip", &[]);
    assert_eq!(
        brief(&judge_server(&p, now(), &teacher, "", &ancient)),
        (Action::Keep, Reason::Never, None, None, Some(0))
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &vip, "lab", &ancient)),
        (Action::Keep, Reason::Never, None, None, Some(1))
    );
    assert_eq!(
        user_brief(&judge_user(&p, now(), &teacher, Some(0))),
        Some((Action::Keep, Reason::Never, None, None, Some(0)))
    );
    assert_eq!(
        user_brief(&judge_user(&p, now(), &vip, Some(0))),
        Some((Action::Keep, Reason::Never, None, None, Some(1)))
    );
    // Pending and not-ready servers are skipped before any rule.
    let mut pending = ancient.clone();
    pending.pending = Some("spawn".into());
    assert_eq!(
        judge_server(&p, now(), &teacher, "", &pending).action,
        Action::Skip
    );
}

#[test]
fn rules_about_servers_leave_users_to_the_user_limits() {
    let p = CullPolicy {
        user_timeout_secs: 259_200,
        ..with_rules(EXAMPLE_RULES)
    };
    let student = member("student", &["students"]);
    let mut idle_2d = student.clone();
    idle_2d.last_activity = ago(172_800);
    assert_eq!(
        user_brief(&judge_user(&p, now(), &idle_2d, Some(0))),
        Some((
            Action::Keep,
            Reason::Active,
            Some(Elapsed(172_800)),
            Some(Elapsed(100_000)),
            None
        ))
    );
    idle_2d.last_activity = ago(259_200);
    let decision = judge_user(&p, now(), &idle_2d, Some(0));
    let (action, reason, _, _, rule) = user_brief(&decision).unwrap();
    assert_eq!((action, reason, rule), (Action::Delete, Reason::Idle, None));
}

#[test]
fn a_rule_sets_only_what_it_says_and_max_age_zero_turns_age_off() {
    let p = CullPolicy {
        max_age_secs: Some(3600),
        cull_named_servers: false,
        ..with_rules(
            "[[rules]]\nserver = \"named\"\ntimeout = 60\n[[rules]]\nuser = \"old*\"\nmax_age = 0\n",
        )
    };
    let busy_old = server(ago(1), ago(100_000));
    // The named-server rule sets the timeout (whatever
    // --cull-named-servers says) and keeps --max-age from the flags.
    let (action, reason, _, _, rule) = brief(&judge_server(
        &p,
        now(),
        &someone(),
        "lab",
        &server(ago(61), ago(100)),
    ));
    assert_eq!(
        (action, reason, rule),
        (Action::Stop, Reason::Idle, Some(0))
    );
    let (action, reason, _, _, rule) =
        brief(&judge_server(&p, now(), &someone(), "lab", &busy_old));
    assert_eq!(
        (action, reason, rule),
        (Action::Stop, Reason::MaxAge, Some(0))
    );
    let mut oldtimer = someone();
    oldtimer.name = "oldtimer".into();
    assert_eq!(
        brief(&judge_server(&p, now(), &oldtimer, "", &busy_old)).4,
        Some(1),
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &oldtimer, "", &busy_old)).0,
        Action::Keep
    );
    assert_eq!(
        judge_server(&p, now(), &someone(), "", &busy_old)
            .decided_by
            .map(|by| by.to_string()),
        Some("flags".to_owned())
    );
}

/// The README's schedule example (GPU servers get 30 minutes in Berlin
/// office hours, 10 minutes otherwise), read from README.md itself so that
/// what it promises is what is tested.
fn gpu_by_the_clock() -> CullPolicy {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
    let (_, block) = readme
        .split_once("at weekends:\n\n```toml\n")
        .expect("README.md shows the schedule example");
    let (rules, _) = block.split_once("```").expect("the block ends");
    assert!(rules.contains("when = {"), "{rules}");
    with_rules(rules)
}

/// Judges a GPU server idle for 20 minutes at `at`: (action, rule index).
fn gpu_idle_20_minutes_at(at: DateTime<Utc>) -> (Action, Option<usize>) {
    let p = gpu_by_the_clock();
    let student = member("student", &["students"]);
    let last_activity = Some(Timestamp(at - Duration::minutes(20)));
    let started = Some(Timestamp(at - Duration::hours(3)));
    let gpu = with_options(
        server(last_activity, started),
        serde_json::json!({"profile": "gpu-a100"}),
    );
    let decision = judge_server(&p, at, &student, "", &gpu);
    let (action, _, idle, _, rule) = brief(&decision);
    assert_eq!(idle, Some(Elapsed(1200)));
    (action, rule)
}

#[test]
fn rules_gpu_servers_kept_20_minutes_idle_in_office_hours_culled_at_night() {
    // Tuesday 2026-03-10, 10:00 in Berlin (CET): 30 minutes apply.
    let office = Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap();
    assert_eq!(gpu_idle_20_minutes_at(office), (Action::Keep, Some(0)));
    // The same Tuesday at 23:00 in Berlin: 10 minutes.
    let night = Utc.with_ymd_and_hms(2026, 3, 10, 22, 0, 0).unwrap();
    assert_eq!(gpu_idle_20_minutes_at(night), (Action::Stop, Some(1)));
    // Saturday 2026-03-14, 10:00 in Berlin: 10 minutes.
    let saturday = Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap();
    assert_eq!(gpu_idle_20_minutes_at(saturday), (Action::Stop, Some(1)));
    // In summer time office hours still start at 08:00 in Berlin (06:00 UTC).
    let summer_morning = Utc.with_ymd_and_hms(2026, 7, 7, 6, 0, 0).unwrap();
    assert_eq!(
        gpu_idle_20_minutes_at(summer_morning),
        (Action::Keep, Some(0))
    );
    let summer_early = Utc.with_ymd_and_hms(2026, 7, 7, 5, 59, 0).unwrap();
    assert_eq!(
        gpu_idle_20_minutes_at(summer_early),
        (Action::Stop, Some(1))
    );
}

#[test]
fn rules_out_of_schedule_fall_through_to_the_flags_for_users_too() {
    let p = with_rules(
        "[[rules]]\nname = \"exams\"\nuser = \"student*\"\nnever = true\n\
         when = { days = \"mon\", hours = \"09:00-12:00\", tz = \"UTC\" }\n",
    );
    let mut student = member("student", &[]);
    let exam = Utc.with_ymd_and_hms(2026, 3, 9, 10, 0, 0).unwrap();
    let after = Utc.with_ymd_and_hms(2026, 3, 9, 12, 0, 0).unwrap();
    student.last_activity = Some(Timestamp(exam - Duration::hours(2)));
    let ancient = server(
        Some(Timestamp(exam - Duration::hours(2))),
        Some(Timestamp(exam - Duration::hours(3))),
    );
    assert_eq!(
        brief(&judge_server(&p, exam, &student, "", &ancient)),
        (Action::Keep, Reason::Never, None, None, Some(0))
    );
    assert_eq!(
        brief(&judge_server(&p, after, &student, "", &ancient)).0,
        Action::Stop,
        "after the exam, --timeout (1 h) applies"
    );
    assert_eq!(
        judge_server(&p, after, &student, "", &ancient)
            .decided_by
            .map(|by| by.to_string()),
        Some("flags".to_owned())
    );
    assert_eq!(
        user_brief(&judge_user(&p, exam, &student, Some(0))).map(|b| (b.0, b.4)),
        Some((Action::Keep, Some(0)))
    );
    assert_eq!(
        user_brief(&judge_user(&p, after, &student, Some(0))).map(|b| (b.0, b.4)),
        Some((Action::Delete, None))
    );
}
