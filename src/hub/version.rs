//! The hub's version, read leniently, because it decides which API we may use.
//!
//! JupyterHub reports PEP 440 versions ("6.1.1", "6.0.0b2", "1.3.0.dev0").
//! Only two facts matter to the culler: whether the `state` filter exists
//! (from 1.3.0) and, for logging, the text itself.

use std::fmt;

/// A hub version reduced to what the culler compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubVersion {
    /// The version as the hub wrote it, for logs.
    pub text: String,
    /// Major, minor and micro release numbers (missing parts are 0).
    pub release: [u64; 3],
    /// Whether this is a pre- or dev-release, which sorts before its release.
    pub prerelease: bool,
}

/// The first release whose `GET /users` takes `state=ready|inactive`.
const STATE_FILTER_SINCE: [u64; 3] = [1, 3, 0];

impl HubVersion {
    /// Parses a PEP 440 version; `None` when not even a major number is there.
    pub fn parse(text: &str) -> Option<Self> {
        let trimmed = text.trim();
        let body = trimmed.strip_prefix(['v', 'V']).unwrap_or(trimmed);
        let mut release = [0u64; 3];
        let mut rest = body;
        let mut parts = 0;
        loop {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                break;
            }
            release[parts] = rest[..digits].parse().ok()?;
            parts += 1;
            rest = &rest[digits..];
            if parts == release.len() {
                break;
            }
            // A dot that no digit follows ends the release numbers at the
            // next turn (digits == 0), and the suffix check ignores dots.
            match rest.strip_prefix('.') {
                Some(after) => rest = after,
                None => break,
            }
        }
        if parts == 0 {
            return None;
        }
        // Skip any further release components ("1.3.0.1").
        while let Some(after) = rest.strip_prefix('.') {
            let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                break;
            }
            rest = &after[digits..];
        }
        let suffix = rest
            .trim_start_matches(['.', '-', '_'])
            .to_ascii_lowercase();
        let prerelease = [
            "a", "b", "c", "rc", "alpha", "beta", "pre", "preview", "dev",
        ]
        .iter()
        .any(|tag| suffix.starts_with(tag));
        Some(HubVersion {
            text: trimmed.to_owned(),
            release,
            prerelease,
        })
    }

    /// Whether `GET /users?state=...` is understood (JupyterHub >= 1.3.0).
    pub fn has_state_filter(&self) -> bool {
        self.release > STATE_FILTER_SINCE
            || (self.release == STATE_FILTER_SINCE && !self.prerelease)
    }
}

impl fmt::Display for HubVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> HubVersion {
        HubVersion::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn plain_releases() {
        assert_eq!(v("6.1.1").release, [6, 1, 1]);
        assert!(!v("6.1.1").prerelease);
        assert_eq!(v("2").release, [2, 0, 0]);
        assert_eq!(v("1.3").release, [1, 3, 0]);
    }

    #[test]
    fn prereleases_are_read_leniently() {
        let beta = v("6.0.0b2");
        assert_eq!(beta.release, [6, 0, 0]);
        assert!(beta.prerelease);
        assert!(v("5.0.0rc1").prerelease);
        assert!(v("1.3.0.dev0").prerelease);
        assert!(!v("1.3.0.post1").prerelease);
        assert_eq!(v("1.3.0.post1").release, [1, 3, 0]);
    }

    #[test]
    fn state_filter_from_1_3_0() {
        assert!(v("1.3.0").has_state_filter());
        assert!(v("6.0.0b2").has_state_filter());
        assert!(v("1.3.1").has_state_filter());
        assert!(v("1.3.0.post1").has_state_filter());
        assert!(!v("1.3.0b1").has_state_filter());
        assert!(!v("1.2.2").has_state_filter());
        assert!(!v("0.9.6").has_state_filter());
    }

    #[test]
    fn release_components_past_the_third_are_read_past_not_into() {
        // Four components (PEP 440 allows any number): no index past the
        // three kept, and a pre-release tag after them still counts.
        assert_eq!(v("1.3.0.1").release, [1, 3, 0]);
        assert!(!v("1.3.0.1").prerelease);
        assert!(v("1.3.0.1rc1").prerelease);
        assert!(v("6.1.1.2").has_state_filter());
    }

    #[test]
    fn shown_as_the_hub_wrote_it() {
        assert_eq!(v(" v6.1.1 ").to_string(), "v6.1.1");
    }

    #[test]
    fn nonsense_is_none() {
        assert!(HubVersion::parse("").is_none());
        assert!(HubVersion::parse("unknown").is_none());
    }
}
