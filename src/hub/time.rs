//! The hub's timestamps, parsed the way every JupyterHub version writes them.
//!
//! Current hubs send ISO 8601 with `Z` and microseconds; older ones sent naive
//! times that mean UTC. Both must parse, because a timestamp we cannot read is
//! a server we cannot judge, and a server we cannot judge is never culled.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};
use std::fmt;

/// A point in time reported by the hub, always in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

/// Why a timestamp from the hub could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTimestamp(pub String);

impl fmt::Display for BadTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an ISO 8601 timestamp: {:?}", self.0)
    }
}

impl std::error::Error for BadTimestamp {}

impl Timestamp {
    /// Parses an ISO 8601 timestamp with or without zone (naive means UTC),
    /// with `T` or a space between date and time, with or without fractions.
    pub fn parse(text: &str) -> Result<Self, BadTimestamp> {
        let text = text.trim();
        if let Ok(zoned) = DateTime::parse_from_rfc3339(text) {
            return Ok(Timestamp(zoned.with_timezone(&Utc)));
        }
        for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
                return Ok(Timestamp(naive.and_utc()));
            }
        }
        // RFC 3339 insists on "T"; accept a space with a zone too.
        if let Some((date, time)) = text.split_once(' ') {
            if let Ok(zoned) = DateTime::parse_from_rfc3339(&format!("{date}T{time}")) {
                return Ok(Timestamp(zoned.with_timezone(&Utc)));
            }
        }
        Err(BadTimestamp(text.to_owned()))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn zulu_with_microseconds() {
        let t = Timestamp::parse("2026-11-25T21:46:38.820208Z").unwrap();
        assert_eq!(t.0.timestamp(), utc(2026, 11, 25, 21, 46, 38).timestamp());
        assert_eq!(t.0.timestamp_subsec_micros(), 820208);
    }

    #[test]
    fn naive_times_mean_utc() {
        assert_eq!(
            Timestamp::parse("2020-01-02T03:04:05").unwrap().0,
            utc(2020, 1, 2, 3, 4, 5)
        );
        assert_eq!(
            Timestamp::parse("2020-01-02T03:04:05.5")
                .unwrap()
                .0
                .timestamp(),
            utc(2020, 1, 2, 3, 4, 5).timestamp()
        );
        assert_eq!(
            Timestamp::parse("2020-01-02 03:04:05").unwrap().0,
            utc(2020, 1, 2, 3, 4, 5)
        );
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        assert_eq!(
            Timestamp::parse("2020-01-02T05:04:05+02:00").unwrap().0,
            utc(2020, 1, 2, 3, 4, 5)
        );
        assert_eq!(
            Timestamp::parse("2020-01-02 05:04:05+02:00").unwrap().0,
            utc(2020, 1, 2, 3, 4, 5)
        );
    }

    #[test]
    fn garbage_is_an_error_naming_the_text() {
        let err = Timestamp::parse("yesterday").unwrap_err();
        assert!(err.to_string().contains("yesterday"));
        assert!(Timestamp::parse("").is_err());
    }

    #[test]
    fn deserializes_from_json_strings() {
        let t: Timestamp = serde_json::from_str("\"2020-01-02T03:04:05Z\"").unwrap();
        assert_eq!(t.0, utc(2020, 1, 2, 3, 4, 5));
        assert!(serde_json::from_str::<Timestamp>("\"soon\"").is_err());
    }
}
