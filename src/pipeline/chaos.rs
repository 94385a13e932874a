//! Test-only fault injection: makes an actor panic on cue, so the test
//! suite can prove that supervision restarts it, that the work it held is
//! reported, and that the restart budget ends the process.
//!
//! Compiled only with the `fault-injection` feature (`scripts/test` turns
//! it on); in every other build [`maybe_panic`] is an empty inline function.
//! With the feature, `CULLER_TEST_PANIC` lists rules `SITE:N` (panic on the
//! N-th message that kind of actor handles, counted from 1 over the whole
//! process) or `SITE:*` (panic on every one), comma-separated; SITE is
//! `scheduler`, `lister`, `evaluator` or `executor`.

/// Where a panic can be injected: one per kind of actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// The Scheduler, as it finishes a pass (so a restart must forget the
    /// pass it thought was running).
    Scheduler,
    /// The Lister's pass (inside its future).
    Lister,
    /// The Evaluator's page handler (before its future: a synchronous panic).
    Evaluator,
    /// An Executor's request (inside its future: an asynchronous panic).
    Executor,
}

/// Panics if `CULLER_TEST_PANIC` says this message of this site should.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn maybe_panic(_site: Site) {}

/// Panics if `CULLER_TEST_PANIC` says this message of this site should.
#[cfg(feature = "fault-injection")]
pub fn maybe_panic(site: Site) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static RULES: OnceLock<Vec<(Site, When)>> = OnceLock::new();
    static SEEN: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
    let rules = RULES.get_or_init(|| {
        std::env::var("CULLER_TEST_PANIC")
            .map(|spec| parse(&spec))
            .unwrap_or_default()
    });
    let index = site as usize;
    let nth = SEEN[index].fetch_add(1, Ordering::Relaxed) + 1;
    for (rule_site, when) in rules {
        if *rule_site == site && (*when == When::Every || *when == When::Nth(nth)) {
            panic!("injected by CULLER_TEST_PANIC: {site:?} message {nth}");
        }
    }
}

/// Which messages of a site panic.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    Nth(u64),
    Every,
}

/// Reads `SITE:N` / `SITE:*` rules; anything unreadable is ignored (this
/// is a test hook, and a typo shows up as a test that fails).
#[cfg(feature = "fault-injection")]
fn parse(spec: &str) -> Vec<(Site, When)> {
    spec.split(',')
        .filter_map(|rule| {
            let (site, when) = rule.trim().split_once(':')?;
            let site = match site.trim() {
                "scheduler" => Site::Scheduler,
                "lister" => Site::Lister,
                "evaluator" => Site::Evaluator,
                "executor" => Site::Executor,
                _ => return None,
            };
            let when = match when.trim() {
                "*" => When::Every,
                n => When::Nth(n.parse().ok()?),
            };
            Some((site, when))
        })
        .collect()
}

#[cfg(all(test, feature = "fault-injection"))]
mod tests {
    use super::*;

    #[test]
    fn rules_name_a_site_and_a_message_or_all() {
        assert_eq!(
            parse("executor:3, evaluator:*,bogus:1,lister:x"),
            [
                (Site::Executor, When::Nth(3)),
                (Site::Evaluator, When::Every)
            ]
        );
    }
}
