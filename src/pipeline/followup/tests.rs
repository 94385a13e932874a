use super::*;
use chrono::{TimeDelta, TimeZone};

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

const THIRTY_MINUTES: Option<u64> = Some(1800);

#[test]
fn a_warning_is_sent_once_per_deadline_and_again_after_activity_moves_it() {
    let mut memory = Followup::new(THIRTY_MINUTES);
    memory.begin(1);
    assert!(memory.warn("ada", Some(""), at(10)));
    memory.begin(2);
    assert!(!memory.warn("ada", Some(""), at(10)), "same idle period");
    // Activity: the deadline moved.
    memory.begin(3);
    assert!(memory.warn("ada", Some(""), at(40)));
    // Another server, and the user, are warned on their own.
    assert!(memory.warn("ada", Some("gpu"), at(40)));
    assert!(memory.warn("ada", None, at(40)));
    assert!(!memory.warn("ada", None, at(40)));
}

#[test]
fn a_server_judged_with_no_warning_due_is_warned_again_next_time() {
    let mut memory = Followup::new(None);
    memory.begin(1);
    assert!(memory.warn("ada", Some(""), at(10)));
    memory.unwarned("ada", Some(""));
    // Even with the same deadline (activity, then idle to the same second).
    assert!(memory.warn("ada", Some(""), at(10)));
    memory.unwarned("ada", None);
    assert!(
        !memory.warn("ada", Some(""), at(10)),
        "the user's reset is not the server's"
    );
    assert!(memory.warn("ada", None, at(10)));
    memory.unwarned("ada", None);
    assert!(memory.warn("ada", None, at(10)));
}

#[test]
fn what_is_not_seen_for_two_passes_is_forgotten() {
    let mut memory = Followup::new(THIRTY_MINUTES);
    memory.begin(1);
    memory.warn("ada", Some(""), at(10));
    memory.warn("bob", None, at(10));
    memory.observe("cy", "", Some("spawn"), None, at(0));
    assert_eq!(memory.len(), 3);
    assert!(!memory.is_empty());
    memory.begin(2);
    assert_eq!(memory.len(), 3, "not seen in pass 2 yet");
    memory.begin(3);
    assert_eq!(memory.len(), 3, "seen in pass 1, the one before the last");
    memory.warn("ada", Some(""), at(10));
    memory.begin(4);
    assert_eq!(memory.len(), 1, "only ada was seen in pass 3");
    // Pages of the same pass do not forget anything.
    memory.begin(4);
    assert_eq!(memory.len(), 1);
    memory.begin(5);
    assert_eq!(memory.len(), 1, "seen in pass 3, the one before the last");
    memory.begin(6);
    assert!(memory.is_empty());
}

#[test]
fn a_spawn_pending_longer_than_stuck_after_is_stuck_and_reported_first_once() {
    let mut memory = Followup::new(THIRTY_MINUTES);
    memory.begin(1);
    assert_eq!(memory.observe("ada", "", Some("spawn"), None, at(0)), None);
    memory.begin(2);
    assert_eq!(memory.observe("ada", "", Some("spawn"), None, at(29)), None);
    memory.begin(3);
    assert_eq!(
        memory.observe("ada", "", Some("spawn"), None, at(30)),
        Some(Stuck {
            pending: Pending::Spawn,
            since: Elapsed(1800),
            first: true
        })
    );
    memory.begin(4);
    let again = memory
        .observe("ada", "", Some("spawn"), None, at(40))
        .unwrap();
    assert!(!again.first);
    assert_eq!(again.since, Elapsed(2400));
    // The spawn finished: the watch ends.
    memory.begin(5);
    assert_eq!(memory.observe("ada", "", None, Some(at(41)), at(41)), None);
    assert!(memory.is_empty());
}

#[test]
fn a_spawn_is_as_old_as_its_started_time_from_the_first_sight() {
    let mut memory = Followup::new(THIRTY_MINUTES);
    memory.begin(1);
    let stuck = memory
        .observe("ada", "", Some("spawn"), Some(at(-45)), at(0))
        .unwrap();
    assert_eq!((stuck.since, stuck.first), (Elapsed(2700), true));
    // A start in the future (clock skew) counts from now.
    assert_eq!(
        memory.observe("bob", "", Some("spawn"), Some(at(5)), at(0)),
        None
    );
    // ... so it is stuck 30 minutes after it was first seen, not after
    // its claimed start.
    let skewed = memory.observe("bob", "", Some("spawn"), Some(at(5)), at(30));
    assert_eq!(skewed.map(|s| s.since), Some(Elapsed(1800)));
    // A stop's `started` is the server's start, not the stop's.
    assert_eq!(
        memory.observe("cy", "", Some("stop"), Some(at(-600)), at(0)),
        None
    );
}

#[test]
fn a_stop_accepted_with_202_is_stuck_while_the_server_is_still_listed() {
    let mut memory = Followup::new(THIRTY_MINUTES);
    memory.begin(1);
    memory.stop_accepted("ada", "gpu", at(0));
    memory.begin(2);
    // Pending stop, then still there as ready: both count from the 202.
    assert_eq!(
        memory.observe("ada", "gpu", Some("stop"), Some(at(-60)), at(10)),
        None
    );
    memory.begin(3);
    let stuck = memory
        .observe("ada", "gpu", None, Some(at(-60)), at(31))
        .unwrap();
    assert_eq!(
        (stuck.pending, stuck.since, stuck.first),
        (Pending::Stop, Elapsed(1860), true)
    );
}

#[test]
fn a_server_started_after_its_stop_was_accepted_is_a_new_one() {
    let mut memory = Followup::new(THIRTY_MINUTES);
    memory.begin(1);
    memory.stop_accepted("ada", "", at(0));
    memory.begin(2);
    assert_eq!(memory.observe("ada", "", None, Some(at(5)), at(40)), None);
    assert!(memory.is_empty());
}

#[test]
fn a_pending_stop_seen_without_a_202_is_watched_from_when_first_seen() {
    let mut memory = Followup::new(THIRTY_MINUTES);
    memory.begin(1);
    assert_eq!(memory.observe("ada", "", Some("stop"), None, at(0)), None);
    memory.begin(2);
    let stuck = memory
        .observe("ada", "", Some("stop"), None, at(30))
        .unwrap();
    assert_eq!(stuck.pending, Pending::Stop);
    // Pending something else (a check, a rename) is not watched.
    assert_eq!(memory.observe("bob", "", Some("check"), None, at(30)), None);
    assert_eq!(memory.len(), 1);
    // From stopping to spawning: a new watch, from now.
    memory.begin(3);
    assert_eq!(memory.observe("ada", "", Some("spawn"), None, at(31)), None);
}

#[test]
fn without_stuck_after_nothing_is_watched() {
    let mut memory = Followup::new(None);
    memory.begin(1);
    memory.stop_accepted("ada", "", at(0));
    assert_eq!(memory.observe("ada", "", Some("spawn"), None, at(0)), None);
    memory.begin(2);
    assert_eq!(
        memory.observe("ada", "", Some("spawn"), None, at(999)),
        None
    );
    assert!(memory.is_empty());
}

#[test]
fn pending_is_named_as_the_hub_and_the_metric_name_it() {
    assert_eq!(Pending::Stop.as_str(), "stop");
    assert_eq!(Pending::Spawn.as_str(), "spawn");
    for pending in [Pending::Stop, Pending::Spawn] {
        assert!(crate::metrics::STUCK_PENDING.contains(&pending.as_str()));
    }
}
