//! When to send a failed request again: pure decisions, apart from the
//! actors that wait and resend, so every rule is tested on its own.
//!
//! Every request the culler sends is idempotent at the hub (listing is a
//! read; stopping a stopped server answers 204 or 404; deleting a deleted
//! user answers 404), so a request that failed in a way that may pass on a
//! second try ([`HubError::is_transient`]) is sent again, after an
//! exponential backoff with full jitter: the n-th retry waits a random time
//! between 0 and `min(base × 2^(n-1), max_delay)`, so that many culler
//! requests failing together do not come back together. A `Retry-After`
//! from the hub is a floor for that wait. The whole is bounded twice: at
//! most `retries` retries, and none that would start later than
//! `give_up_after` after the first attempt. A request that found no hub to
//! connect to (refused, reset) waits at most `reconnect_delay`: trying to
//! connect costs a hub that is down nothing, and a hub that comes back is
//! found within that time rather than after a long backoff.

use super::HubError;
use std::fmt;
use std::time::Duration;

/// How persistently to retry (`--retries`, `--retry-delay`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 sends every request once.
    pub retries: u32,
    /// The ceiling of the first retry's wait; it doubles for each retry.
    pub base_delay: Duration,
    /// The longest any single wait may be.
    pub max_delay: Duration,
    /// The longest wait after an attempt that found no hub to connect to
    /// ([`HubError::Unreachable`]).
    pub reconnect_delay: Duration,
    /// No retry starts later than this after the first attempt.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// Rides out a hub restart or a proxy hiccup of a few seconds to a
    /// minute (5 retries, ceilings 1, 2, 4, 8, 16 s, never past 60 s; at
    /// most 2 s when the hub could not be connected to).
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            reconnect_delay: Duration::from_secs(2),
            give_up_after: Duration::from_secs(60),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then send the request again.
    Wait(Duration),
    /// Report the failure.
    GiveUp(GiveUp),
}

/// Why a failed request is not sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// Trying again cannot help (a refusal, a 4xx, an unreadable answer).
    Permanent,
    /// Every allowed retry was used.
    NoRetriesLeft {
        /// Attempts made, the first included.
        attempts: u32,
    },
    /// The next wait would end past the time allowed for retrying.
    OutOfTime {
        /// Time since the first attempt.
        elapsed: Duration,
    },
    /// The hub asked for a wait longer than any this culler makes.
    HubAsksTooLong {
        /// The hub's `Retry-After`.
        retry_after: Duration,
    },
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUp::Permanent => f.write_str("not retried: trying again cannot help"),
            GiveUp::NoRetriesLeft { attempts } => {
                write!(f, "gave up after {attempts} attempts (--retries)")
            }
            GiveUp::OutOfTime { elapsed } => write!(
                f,
                "gave up after retrying for {:.1} s",
                elapsed.as_secs_f64()
            ),
            GiveUp::HubAsksTooLong { retry_after } => write!(
                f,
                "gave up: the hub asks to wait {} s before trying again",
                retry_after.as_secs()
            ),
        }
    }
}

impl RetryPolicy {
    /// Sends every request once.
    pub fn never() -> Self {
        RetryPolicy {
            retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// Decides about a failed attempt. `retries_done` counts the retries
    /// already made (0 after the first attempt); `elapsed` is the time since
    /// the first attempt started; `random` is any random number (the jitter).
    pub fn decide(
        &self,
        error: &HubError,
        retries_done: u32,
        elapsed: Duration,
        random: u64,
    ) -> RetryDecision {
        if !error.is_transient() {
            return RetryDecision::GiveUp(GiveUp::Permanent);
        }
        if retries_done >= self.retries {
            return RetryDecision::GiveUp(GiveUp::NoRetriesLeft {
                attempts: retries_done + 1,
            });
        }
        let mut wait = self.backoff(retries_done, random);
        if matches!(error, HubError::Unreachable { .. }) {
            wait = wait.min(self.reconnect_delay);
        }
        if let Some(asked) = error.retry_after() {
            if asked > self.max_delay {
                return RetryDecision::GiveUp(GiveUp::HubAsksTooLong { retry_after: asked });
            }
            wait = wait.max(asked);
        }
        if elapsed + wait > self.give_up_after {
            return RetryDecision::GiveUp(GiveUp::OutOfTime { elapsed });
        }
        RetryDecision::Wait(wait)
    }

    /// The wait before retry number `retries_done + 1`: uniform in
    /// `[0, min(base × 2^retries_done, max_delay)]` (full jitter).
    pub fn backoff(&self, retries_done: u32, random: u64) -> Duration {
        let ceiling = self
            .base_delay
            .checked_mul(1u32.checked_shl(retries_done).unwrap_or(u32::MAX))
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let fraction = random as f64 / u64::MAX as f64;
        ceiling.mul_f64(fraction)
    }
}

/// Random numbers for jitter, from the standard library's randomly keyed
/// hasher: jitter needs no cryptographic quality, only numbers that differ
/// from one draw, and one process, to the next.
#[derive(Clone, Debug, Default)]
pub struct Jitter {
    keys: std::collections::hash_map::RandomState,
    draws: u64,
}

impl Jitter {
    /// Keyed afresh for this process.
    pub fn new() -> Self {
        Jitter::default()
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        use std::hash::BuildHasher;
        self.draws += 1;
        self.keys.hash_one(self.draws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<u64>) -> HubError {
        HubError::Status {
            request: "DELETE u".into(),
            status: code,
            message: "m".into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    fn refused() -> HubError {
        HubError::Unreachable {
            request: "GET u".into(),
            detail: "Connection refused".into(),
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn permanent_failures_are_never_retried() {
        let policy = RetryPolicy::default();
        for err in [status(400, None), status(404, None)] {
            assert_eq!(
                policy.decide(&err, 0, Duration::ZERO, 0),
                RetryDecision::GiveUp(GiveUp::Permanent)
            );
        }
    }

    #[test]
    fn transient_failures_are_retried_until_the_retries_run_out() {
        let policy = RetryPolicy::default();
        for done in 0..5 {
            assert!(
                matches!(
                    policy.decide(&refused(), done, Duration::ZERO, u64::MAX),
                    RetryDecision::Wait(_)
                ),
                "retry {done}"
            );
        }
        assert_eq!(
            policy.decide(&refused(), 5, Duration::ZERO, 0),
            RetryDecision::GiveUp(GiveUp::NoRetriesLeft { attempts: 6 })
        );
        assert_eq!(
            RetryPolicy::never().decide(&status(502, None), 0, Duration::ZERO, 0),
            RetryDecision::GiveUp(GiveUp::NoRetriesLeft { attempts: 1 })
        );
    }

    #[test]
    fn backoff_doubles_its_ceiling_up_to_the_cap_with_full_jitter() {
        let policy = RetryPolicy::default();
        // The largest random number reaches the ceiling, 0 waits not at all.
        let ceilings: Vec<_> = (0..7).map(|n| policy.backoff(n, u64::MAX)).collect();
        assert_eq!(ceilings, [S(1), S(2), S(4), S(8), S(16), S(30), S(30)]);
        assert_eq!(policy.backoff(3, 0), Duration::ZERO);
        let half = policy.backoff(3, u64::MAX / 2);
        assert!(half > S(3) && half < S(5), "{half:?}");
        // Absurd retry numbers neither overflow nor pass the cap.
        assert_eq!(policy.backoff(200, u64::MAX), S(30));
    }

    #[test]
    fn a_hub_that_could_not_be_connected_to_is_tried_again_within_the_reconnect_delay() {
        let policy = RetryPolicy::default();
        // The third retry's ceiling is 4 s, the fifth's 16 s: a refused
        // connection waits 2 s at most all the same.
        assert_eq!(
            policy.decide(&refused(), 2, Duration::ZERO, u64::MAX),
            RetryDecision::Wait(S(2))
        );
        assert_eq!(
            policy.decide(&refused(), 4, Duration::ZERO, u64::MAX),
            RetryDecision::Wait(S(2))
        );
        // Below the cap the backoff is as for any failure.
        assert_eq!(
            policy.decide(&refused(), 0, Duration::ZERO, u64::MAX),
            RetryDecision::Wait(S(1))
        );
        // An overloaded hub (5xx, timeouts) gets the whole backoff.
        assert_eq!(
            policy.decide(&status(502, None), 4, Duration::ZERO, u64::MAX),
            RetryDecision::Wait(S(16))
        );
        let timeout = HubError::Timeout {
            request: "GET u".into(),
            seconds: 60,
        };
        assert_eq!(
            policy.decide(&timeout, 4, Duration::ZERO, u64::MAX),
            RetryDecision::Wait(S(16))
        );
    }

    #[test]
    fn retry_after_is_a_floor_and_too_long_a_wait_is_refused() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.decide(&status(429, Some(7)), 0, Duration::ZERO, 0),
            RetryDecision::Wait(S(7))
        );
        // A longer jittered wait wins over a short Retry-After.
        assert_eq!(
            policy.decide(&status(503, Some(1)), 3, Duration::ZERO, u64::MAX),
            RetryDecision::Wait(S(8))
        );
        // The longest wait this culler makes is still waited.
        assert_eq!(
            policy.decide(&status(429, Some(30)), 0, Duration::ZERO, 0),
            RetryDecision::Wait(S(30))
        );
        assert_eq!(
            policy.decide(&status(429, Some(3600)), 0, Duration::ZERO, 0),
            RetryDecision::GiveUp(GiveUp::HubAsksTooLong {
                retry_after: S(3600)
            })
        );
    }

    #[test]
    fn no_retry_starts_past_the_time_allowed() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.decide(&refused(), 1, S(59), u64::MAX),
            RetryDecision::GiveUp(GiveUp::OutOfTime { elapsed: S(59) })
        );
        assert_eq!(
            policy.decide(&refused(), 1, S(58), u64::MAX),
            RetryDecision::Wait(S(2))
        );
    }

    #[test]
    fn jitter_spreads_waits_over_their_range() {
        let policy = RetryPolicy::default();
        let mut jitter = Jitter::new();
        let waits: Vec<_> = (0..1000)
            .map(|_| policy.backoff(0, jitter.next_u64()))
            .collect();
        let low = waits
            .iter()
            .filter(|w| **w < Duration::from_millis(500))
            .count();
        assert!((400..600).contains(&low), "{low} of 1000 below half");
        // Two processes (two keys) draw differently.
        assert_ne!(Jitter::new().next_u64(), Jitter::new().next_u64());
    }

    #[test]
    fn give_up_reasons_read_as_a_sentence() {
        assert!(GiveUp::NoRetriesLeft { attempts: 6 }
            .to_string()
            .contains("6 attempts"));
        assert!(GiveUp::HubAsksTooLong {
            retry_after: S(3600)
        }
        .to_string()
        .contains("3600 s"));
    }
}
