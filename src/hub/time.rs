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
        if let Some(utc) = canonical_utc(text) {
            return Ok(Timestamp(utc));
        }
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

/// The form every JupyterHub since 0.9 writes, `2026-11-25T21:46:38.820208Z`
/// (and without the fraction), read digit by digit: a page of users holds
/// a few timestamps each, and chrono's general parser was a tenth of the
/// CPU of a pass. Anything else (offsets, naive times, leap seconds) is
/// left to [`Timestamp::parse`]'s general path.
fn canonical_utc(text: &str) -> Option<DateTime<Utc>> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes.get(range)?.iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let at = |index: usize, expected: u8| bytes.get(index) == Some(&expected);
    if bytes.len() < 20
        || !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':'))
    {
        return None;
    }
    if bytes.last() != Some(&b'Z') {
        return None;
    }
    let fraction = &bytes[19..bytes.len() - 1];
    let nanos = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let value = number(20..bytes.len() - 1)?;
            value * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0..4)?).ok()?,
        number(5..7)?,
        number(8..10)?,
    )?;
    let time = date.and_hms_nano_opt(number(11..13)?, number(14..16)?, number(17..19)?, nanos)?;
    Some(time.and_utc())
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Reads the string where it lies: no copy of it is made.
        struct Text;

        impl serde::de::Visitor<'_> for Text {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO 8601 timestamp")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
                Timestamp::parse(text).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Text)
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
    fn the_canonical_form_is_read_as_chrono_reads_it() {
        for text in [
            "2026-11-25T21:46:38.820208Z",
            "2026-11-25T21:46:38Z",
            "2026-11-25T21:46:38.8Z",
            "2026-11-25T21:46:38.123456789Z",
            "2024-02-29T00:00:00.000001Z",
            "0001-01-01T00:00:00Z",
        ] {
            let chrono = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(canonical_utc(text), Some(chrono), "{text}");
        }
        // Not the canonical form: left to the general path (which reads
        // some of them, and refuses the rest).
        for text in [
            "2026-11-25T21:46:38.820208",
            "2026-11-25 21:46:38Z",
            "2026-11-25T21:46:38+00:00",
            "2026-11-25T21:46:38.Z",
            "2026-11-25T21:46:38.1234567890Z",
            "2026-02-30T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2016-12-31T23:59:60Z",
            "2026-11-25T21:46:3xZ",
            "Z",
            "",
        ] {
            assert_eq!(canonical_utc(text), None, "{text}");
        }
        // The general path still reads what it always read.
        assert!(Timestamp::parse("2016-12-31T23:59:60Z").is_ok());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn the_fast_path_agrees_with_chrono(
                secs in 0i64..4_102_444_800,
                nanos in 0u32..1_000_000_000,
                digits in 0usize..=9,
            ) {
                let at = DateTime::from_timestamp(secs, nanos).unwrap();
                let text = match digits {
                    0 => at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    n => {
                        let fraction = format!("{:09}", at.timestamp_subsec_nanos());
                        format!("{}.{}Z", at.format("%Y-%m-%dT%H:%M:%S"), &fraction[..n])
                    }
                };
                let chrono = DateTime::parse_from_rfc3339(&text).unwrap().with_timezone(&Utc);
                prop_assert_eq!(canonical_utc(&text), Some(chrono));
            }

            #[test]
            fn no_text_panics_it(text in ".{0,40}") {
                let _ = canonical_utc(&text);
                let _ = Timestamp::parse(&text);
            }
        }
    }

    #[test]
    fn deserializes_from_json_strings() {
        let t: Timestamp = serde_json::from_str("\"2020-01-02T03:04:05Z\"").unwrap();
        assert_eq!(t.0, utc(2020, 1, 2, 3, 4, 5));
        assert!(serde_json::from_str::<Timestamp>("\"soon\"").is_err());
    }
}
