//! The actor pipeline: Scheduler -> Lister -> Evaluator -> Executor pool,
//! started and restarted by the Supervisor.
//!
//! Data flows one way and every hand-over awaits its reply, so at most two
//! pages of users (the one being judged and the one being fetched) are in
//! memory however large the hub is, and at most `--concurrency` requests are
//! outstanding to the hub (one shared semaphore in the hub client).

pub mod evaluator;
pub mod executor;
pub mod lister;
pub mod scheduler;
pub mod supervisor;
pub mod walk;

use std::fmt;
use std::ops::AddAssign;

/// What a pass (or a part of one) did; summed up from pages to the pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Users looked at.
    pub users_seen: u64,
    /// Servers the hub reports stopped.
    pub servers_culled: u64,
    /// Servers whose stop was still under way when the hub answered (202).
    pub servers_still_stopping: u64,
    /// Users deleted.
    pub users_culled: u64,
    /// Requests or steps that failed.
    pub errors: u64,
}

impl Tally {
    /// A tally of one failure.
    pub fn failure() -> Self {
        Tally {
            errors: 1,
            ..Tally::default()
        }
    }
}

impl AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.users_seen += other.users_seen;
        self.servers_culled += other.servers_culled;
        self.servers_still_stopping += other.servers_still_stopping;
        self.users_culled += other.users_culled;
        self.errors += other.errors;
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} users seen, {} servers culled, {} servers still stopping, {} users culled, {} errors",
            self.users_seen, self.servers_culled, self.servers_still_stopping, self.users_culled, self.errors
        )
    }
}
