//! The actor pipeline: Scheduler -> Lister -> Evaluator -> Executor pool,
//! started and restarted by the Supervisor.
//!
//! Data flows one way. The Lister keeps at most
//! [`lister::PAGES_ACTED_ON`] pages in the Evaluator's hands or fetched
//! ahead (only as many as keep the executors busy) and reads one more
//! meanwhile, and each page's answer waits until its commands are answered,
//! so memory stays bounded however large the hub is. Every request the
//! pipeline sends to the hub goes through the executor pool ([`pool`]), an
//! actor that hands it to one of its `--concurrency` executors when one is
//! idle: the one place the bound is enforced. Reads go ahead of queued
//! stops there, so the executors do not idle at page boundaries. The
//! [`supervisor::Supervisor`] actor owns the pipeline: it starts it,
//! restarts an actor that fails, drains it on a stop signal, and is the one
//! place the process ends.

mod chaos;
pub mod evaluator;
pub mod executor;
pub mod followup;
pub mod guard;
pub mod lister;
pub mod pool;
pub mod scheduler;
pub mod supervisor;
pub mod walk;

use crate::hub::HubError;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::AddAssign;

/// What a pass (or a part of one) did; summed up from pages to the pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Users looked at.
    pub users_seen: u64,
    /// Servers looked at (judged or skipped).
    pub servers_seen: u64,
    /// Servers the hub reports stopped; in a dry run, servers that would
    /// have been stopped.
    pub servers_culled: u64,
    /// Named servers removed as they were stopped (`--remove-named-servers`).
    pub named_servers_removed: u64,
    /// Servers whose stop was still under way when the hub answered (202).
    pub servers_still_stopping: u64,
    /// Users deleted; in a dry run, users that would have been.
    pub users_culled: u64,
    /// Users the hub would not delete yet (a server still stopping or
    /// starting: 400); the next pass tries again.
    pub users_busy: u64,
    /// Requests or steps that failed (refusals included).
    pub errors: u64,
    /// Stops and deletions decided but not sent (stopping, or the hub was
    /// unreachable earlier in the pass).
    pub not_sent: u64,
    /// Requests the hub refused (401/403), by the hub's message, which names
    /// the missing scope: logged once per pass, not once per user.
    pub refusals: BTreeMap<String, Refusal>,
    /// Listings that ended before their last page or skipped a page, or
    /// never started (the hub's version could not be read): the pass did
    /// not see every user, so the Scheduler tries again sooner than
    /// `--cull-every`.
    pub listings_cut_short: u64,
    /// Whether the pass found the hub not answering at all (a request gave
    /// up because no connection could be made or no answer came): the
    /// Scheduler then watches for it to come back.
    pub hub_down: bool,
    /// Whether the culler cannot work as configured (a token that cannot
    /// show what the policy rules match on): the Scheduler asks the
    /// Supervisor to end the process (exit 2) after this pass.
    pub fatal: bool,
}

/// Requests refused for one reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The first refused request's whole error, for the log.
    pub first: String,
    /// How many were refused for this reason.
    pub count: u64,
}

impl Tally {
    /// A tally of one failure.
    pub fn failure() -> Self {
        Tally {
            errors: 1,
            ..Tally::default()
        }
    }

    /// Whether the pass saw every user it set out to: no listing was cut
    /// short and the hub answered.
    pub fn is_complete(&self) -> bool {
        self.listings_cut_short == 0 && !self.hub_down
    }

    /// Counts a refused request (an error), keyed by the hub's message.
    pub fn refused(&mut self, error: &HubError) {
        self.errors += 1;
        let key = match error {
            HubError::Forbidden { message, .. } => message.clone(),
            other => other.to_string(),
        };
        self.refusals
            .entry(key)
            .and_modify(|refusal| refusal.count += 1)
            .or_insert_with(|| Refusal {
                first: error.to_string(),
                count: 1,
            });
    }
}

impl AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.users_seen += other.users_seen;
        self.servers_seen += other.servers_seen;
        self.servers_culled += other.servers_culled;
        self.named_servers_removed += other.named_servers_removed;
        self.servers_still_stopping += other.servers_still_stopping;
        self.users_culled += other.users_culled;
        self.users_busy += other.users_busy;
        self.errors += other.errors;
        self.not_sent += other.not_sent;
        self.listings_cut_short += other.listings_cut_short;
        self.hub_down |= other.hub_down;
        self.fatal |= other.fatal;
        for (key, refusal) in other.refusals {
            self.refusals
                .entry(key)
                .and_modify(|mine| mine.count += refusal.count)
                .or_insert(refusal);
        }
    }
}

impl Tally {
    /// The summary of a dry run: what would have been culled.
    pub fn dry_run_summary(&self) -> String {
        format!(
            "{} users seen, {} servers would be culled, {} users would be culled, {} errors",
            self.users_seen, self.servers_culled, self.users_culled, self.errors
        )
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} users seen, {} servers culled, {} servers still stopping, {} users culled, {} errors",
            self.users_seen, self.servers_culled, self.servers_still_stopping, self.users_culled, self.errors
        )?;
        if self.users_busy > 0 {
            write!(f, ", {} users not deletable yet", self.users_busy)?;
        }
        let refused: u64 = self.refusals.values().map(|r| r.count).sum();
        if refused > 0 {
            write!(f, " ({refused} refused for missing scopes)")?;
        }
        if self.not_sent > 0 {
            write!(f, ", {} culls not sent", self.not_sent)?;
        }
        if self.listings_cut_short > 0 {
            write!(
                f,
                "; not every user was seen ({} listings or pages cut short)",
                self.listings_cut_short
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(user: &str) -> HubError {
        HubError::Forbidden {
            request: format!("DELETE /users/{user}/server"),
            message: "requires any of [delete:servers]".into(),
        }
    }

    #[test]
    fn refusals_for_one_reason_are_one_entry_counted() {
        let mut page = Tally::default();
        page.refused(&forbidden("a"));
        page.refused(&forbidden("b"));
        let mut pass = Tally::default();
        pass += page.clone();
        pass += page;
        assert_eq!(pass.errors, 4);
        assert_eq!(pass.refusals.len(), 1);
        let refusal = &pass.refusals["requires any of [delete:servers]"];
        assert_eq!(refusal.count, 4);
        assert!(
            refusal.first.contains("/users/a/server"),
            "{}",
            refusal.first
        );
    }

    #[test]
    fn adding_tallies_sums_every_count() {
        let part = |n: u64| Tally {
            users_seen: n,
            servers_seen: n + 7,
            servers_culled: n + 1,
            named_servers_removed: n + 8,
            servers_still_stopping: n + 2,
            users_culled: n + 3,
            users_busy: n + 4,
            errors: n + 5,
            not_sent: n + 6,
            refusals: BTreeMap::new(),
            listings_cut_short: n + 9,
            hub_down: n == 10,
            fatal: n == 100,
        };
        let mut sum = part(10);
        sum += part(100);
        assert_eq!(sum, {
            let mut expected = part(110);
            expected.servers_seen += 7;
            expected.servers_culled += 1;
            expected.named_servers_removed += 8;
            expected.servers_still_stopping += 2;
            expected.users_culled += 3;
            expected.users_busy += 4;
            expected.errors += 5;
            expected.not_sent += 6;
            expected.listings_cut_short += 9;
            // Down in one part is down in the sum.
            expected.hub_down = true;
            expected.fatal = true;
            expected
        });
    }

    #[test]
    fn a_pass_is_complete_unless_a_listing_was_cut_short_or_the_hub_was_down() {
        assert!(Tally::default().is_complete());
        // Errors of single commands leave the walk whole.
        assert!(Tally::failure().is_complete());
        let cut = Tally {
            listings_cut_short: 1,
            ..Tally::default()
        };
        assert!(!cut.is_complete());
        let down = Tally {
            hub_down: true,
            ..Tally::default()
        };
        assert!(!down.is_complete());
    }

    #[test]
    fn the_summary_names_every_count_it_has() {
        let mut tally = Tally {
            users_seen: 9,
            servers_seen: 12,
            servers_culled: 3,
            named_servers_removed: 0,
            servers_still_stopping: 1,
            users_culled: 2,
            users_busy: 1,
            errors: 0,
            not_sent: 4,
            refusals: BTreeMap::new(),
            listings_cut_short: 2,
            hub_down: false,
            fatal: false,
        };
        tally.refused(&forbidden("x"));
        let text = tally.to_string();
        for part in [
            "9 users seen",
            "3 servers culled",
            "1 servers still stopping",
            "2 users culled",
            "1 errors",
            "1 users not deletable yet",
            "1 refused for missing scopes",
            "4 culls not sent",
            "not every user was seen (2 listings or pages cut short)",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
        let quiet = Tally::default().to_string();
        for absent in ["not sent", "not deletable", "refused", "not every user"] {
            assert!(!quiet.contains(absent), "{absent:?} in {quiet}");
        }
    }
}
