//! Schedules on rules (`when`): "GPU servers get 30 minutes in office
//! hours, 10 at night" without a second culler or a cron job swapping
//! config files.
//!
//! A schedule is days of the week and windows of the day in a named time
//! zone. It is evaluated against the clock the policy is handed (the
//! culler's, once per pass), so it stays as pure as the rest of the
//! policy. Local time is always derived from UTC, which is never
//! ambiguous: across a DST change a window simply lasts an hour more or
//! less, as a wall clock would say.
//!
//! A mistake in a schedule is not a deserialization error: it is kept
//! ([`WhenSetting`]) so that [`super::Rule::check`] can name the rule it is
//! in when the config file is refused.

use chrono::{DateTime, Utc, Weekday};
use jiff::tz::TimeZone;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Minutes in a day: a window's end may be this ("24:00"), so that a
/// whole day can be written without looking like an overnight window.
const DAY: u32 = 24 * 60;

/// The days, in the order operators write them (weeks start on Monday in
/// the ranges "mon-fri" and "sat-sun").
const DAY_NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

/// When a rule applies: the parsed, checked schedule. Holding only checked
/// data keeps [`When::contains`] infallible, as the policy needs it to be
/// (it runs for every server of every pass).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct When {
    /// The days on which a window may start.
    days: Days,
    /// The windows of the day, never empty (absent `hours` is the whole day).
    windows: Vec<Window>,
    /// The zone the days and hours are in.
    tz: Zone,
}

/// A time zone from the IANA database, with the name it was given (two
/// zones are the same when their names are).
#[derive(Clone, Debug)]
struct Zone {
    name: String,
    zone: TimeZone,
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

impl When {
    /// Reads a schedule from what a rule wrote: `days` and `hours` are
    /// lists of strings, each of which may hold several comma-separated
    /// items; `None` means "every day" and "all day"; `tz` defaults to
    /// UTC. The function operators' mistakes go through, so every error
    /// quotes what was written.
    pub fn parse(
        days: Option<&[String]>,
        hours: Option<&[String]>,
        tz: Option<&str>,
    ) -> Result<When, WhenError> {
        if days.is_none() && hours.is_none() {
            return Err(WhenError::SaysNothing);
        }
        let days = match days {
            Some(written) => parse_days(written)?,
            None => Days::ALL,
        };
        let windows = match hours {
            Some(written) => parse_hours(written)?,
            None => vec![Window { start: 0, end: DAY }],
        };
        let tz = match tz {
            Some(name) => parse_zone(name)?,
            None => Zone {
                name: "UTC".to_owned(),
                zone: TimeZone::UTC,
            },
        };
        Ok(When { days, windows, tz })
    }

    /// Whether `now` falls in the schedule, in its zone's local time: a
    /// window counts on the days listed, and an overnight window's hours
    /// after midnight belong to the day it started, so that "fri" with
    /// "22:00-06:00" is Friday night, not the early hours of Friday.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        let Ok(instant) = jiff::Timestamp::from_second(now.timestamp()) else {
            // Beyond jiff's range (years ±9999): no schedule is meant there.
            return false;
        };
        let local = self.tz.zone.to_datetime(instant);
        let minute =
            u32::from(local.hour().unsigned_abs()) * 60 + u32::from(local.minute().unsigned_abs());
        let today =
            DAY_NAMES[usize::from(local.weekday().to_monday_zero_offset().unsigned_abs())].1;
        self.windows.iter().any(|window| {
            if window.start < window.end {
                self.days.has(today) && window.start <= minute && minute < window.end
            } else {
                (self.days.has(today) && minute >= window.start)
                    || (self.days.has(today.pred()) && minute < window.end)
            }
        })
    }
}

/// A set of weekdays, one bit each from Monday: small and `Copy`, as it is
/// read for every server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Days(u8);

impl Days {
    const ALL: Days = Days(0x7f);

    fn has(self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }

    fn add(&mut self, day: Weekday) {
        self.0 |= 1 << day.num_days_from_monday();
    }
}

/// A window of the day in minutes since midnight, start inclusive, end
/// exclusive; an end at or before the start runs past midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    start: u32,
    end: u32,
}

/// What is wrong with a rule's `when`: each names the text at fault, so
/// that the one line refusing the config file is enough to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhenError {
    /// Neither `days` nor `hours`: a schedule that is always true is
    /// most likely a mistake, and leaving `when` out says "always" plainly.
    SaysNothing,
    /// `days = []` or `hours = []` (which key): a rule that could never
    /// apply, surely not what was meant.
    EmptyList(&'static str),
    /// A day that is not one of the three-letter names (the text given).
    UnknownDay(String),
    /// A window that is not `HH:MM-HH:MM` (the text given).
    BadHours(String),
    /// A window whose start and end are the same time (the text given).
    EmptyWindow(String),
    /// A time zone that is not in the IANA database (the text given, and
    /// the right spelling when only the case was wrong).
    UnknownZone(String, Option<String>),
}

impl fmt::Display for WhenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WhenError::SaysNothing => f.write_str(
                "when sets neither days nor hours; leave when out to match at all times",
            ),
            WhenError::EmptyList(key) => write!(
                f,
                "when has an empty {key} list; leave {key} out to mean all of them"
            ),
            WhenError::UnknownDay(day) => write!(
                f,
                "when has an unknown day {day:?}; days are mon, tue, wed, thu, fri, sat, sun, \
                 as \"mon-fri\" or \"sat,sun\""
            ),
            WhenError::BadHours(window) => write!(
                f,
                "when has hours {window:?}, not a window HH:MM-HH:MM such as \"08:00-18:00\""
            ),
            WhenError::EmptyWindow(window) => write!(
                f,
                "when has an empty window {window:?}; use \"00:00-24:00\" for all day"
            ),
            WhenError::UnknownZone(name, Some(right)) => write!(
                f,
                "when has an unknown time zone {name:?}; did you mean {right:?}?"
            ),
            WhenError::UnknownZone(name, None) => write!(
                f,
                "when has an unknown time zone {name:?}; use an IANA name such as \
                 \"Europe/Berlin\" or \"UTC\""
            ),
        }
    }
}

impl std::error::Error for WhenError {}

/// The items of a `days` or `hours` setting: a list's strings, each split
/// at commas, trimmed.
fn items(written: &[String]) -> impl Iterator<Item = &str> {
    written.iter().flat_map(|s| s.split(',')).map(str::trim)
}

/// `days`: names and ranges, so that the common cases ("mon-fri") are
/// short and any set of days can still be written.
fn parse_days(written: &[String]) -> Result<Days, WhenError> {
    let mut days = Days(0);
    for item in items(written) {
        let day = |name: &str| {
            DAY_NAMES
                .iter()
                .find(|(known, _)| name.trim().eq_ignore_ascii_case(known))
                .map(|&(_, day)| day)
                .ok_or_else(|| WhenError::UnknownDay(item.to_owned()))
        };
        match item.split_once('-') {
            // A range whose end comes before its start goes on through
            // the end of the week: "fri-mon" is the long weekend.
            Some((first, last)) => {
                let (mut day, last) = (day(first)?, day(last)?);
                days.add(day);
                while day != last {
                    day = day.succ();
                    days.add(day);
                }
            }
            None => days.add(day(item)?),
        }
    }
    if written.is_empty() {
        return Err(WhenError::EmptyList("days"));
    }
    Ok(days)
}

/// `hours`: windows, several allowed so that a lunch break or a split
/// shift needs no second rule.
fn parse_hours(written: &[String]) -> Result<Vec<Window>, WhenError> {
    let mut windows = Vec::new();
    for item in items(written) {
        let bad = || WhenError::BadHours(item.to_owned());
        let (start, end) = item.split_once('-').ok_or_else(bad)?;
        let start = parse_time(start).filter(|&m| m < DAY).ok_or_else(bad)?;
        let end = parse_time(end).ok_or_else(bad)?;
        if start == end {
            return Err(WhenError::EmptyWindow(item.to_owned()));
        }
        windows.push(Window { start, end });
    }
    if written.is_empty() {
        return Err(WhenError::EmptyList("hours"));
    }
    Ok(windows)
}

/// "H:MM" or "HH:MM" as minutes since midnight, up to "24:00".
fn parse_time(text: &str) -> Option<u32> {
    let (hour, minute) = text.trim().split_once(':')?;
    let digits = |s: &str, lengths: &[usize]| {
        (lengths.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let (hour, minute) = (digits(hour, &[1, 2])?, digits(minute, &[2])?);
    let minutes = hour * 60 + minute;
    (minute < 60 && minutes <= DAY).then_some(minutes)
}

/// `tz`: an exact IANA name; a name wrong only in its case is refused too
/// (the database is case-sensitive), but with the right spelling offered.
fn parse_zone(name: &str) -> Result<Zone, WhenError> {
    let db = jiff::tz::db();
    // The database finds names in any case; the culler asks for the
    // exact one, so that what the log says is what was written.
    let exact = db.available().find(|known| known.as_str() == name);
    match (exact, db.get(name)) {
        (Some(_), Ok(zone)) => Ok(Zone {
            name: name.to_owned(),
            zone,
        }),
        _ => {
            let right = db
                .available()
                .find(|known| known.as_str().eq_ignore_ascii_case(name.trim()))
                .map(|known| known.as_str().to_owned());
            Err(WhenError::UnknownZone(name.to_owned(), right))
        }
    }
}

/// A rule's `when` as read from the config file: the schedule it means, or
/// what is wrong with it, kept until [`super::Rule::check`] reports it
/// with the rule's name (serde knows only where in the file it is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhenSetting(Result<When, WhenError>);

impl WhenSetting {
    /// The schedule, or why there is none: what the config check reports.
    pub fn schedule(&self) -> Result<&When, &WhenError> {
        self.0.as_ref()
    }

    /// Whether the rule applies at `now`. A schedule that could not be
    /// read never applies; the config check refuses such a rule before any
    /// pass, so this is only the last line of defence.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        self.0.as_ref().is_ok_and(|when| when.contains(now))
    }
}

impl From<When> for WhenSetting {
    fn from(when: When) -> Self {
        WhenSetting(Ok(when))
    }
}

/// The keys of `when` as written; a key the culler does not know is a
/// deserialization error (a typo such as `day` must not widen a rule to
/// every day).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    #[serde(default)]
    days: Option<Strings>,
    #[serde(default)]
    hours: Option<Strings>,
    #[serde(default)]
    tz: Option<String>,
}

impl<'de> Deserialize<'de> for WhenSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let written = Written::deserialize(deserializer)?;
        Ok(WhenSetting(When::parse(
            written.days.as_ref().map(|s| s.0.as_slice()),
            written.hours.as_ref().map(|s| s.0.as_slice()),
            written.tz.as_deref(),
        )))
    }
}

/// A string or a list of strings, with an error message that says so
/// (serde's untagged enums say only that nothing matched).
struct Strings(Vec<String>);

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringsVisitor;
        impl<'de> Visitor<'de> for StringsVisitor {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Strings, E> {
                Ok(Strings(vec![text.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                let mut all = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    all.push(text);
                }
                Ok(Strings(all))
            }
        }
        deserializer.deserialize_any(StringsVisitor)
    }
}

#[cfg(test)]
mod tests;
