//! `--warn-before`: which kept servers and users carry a warning, with
//! which deadline.

use super::*;
use crate::decision::{Because, Warning};

fn warning_in(policy: &CullPolicy, s: &Server) -> Option<Warning> {
    let u = someone();
    judge_server(policy, now(), &u, "", s).warn
}

fn warn_before(secs: u64) -> CullPolicy {
    CullPolicy {
        warn_before_secs: Some(secs),
        ..policy()
    }
}

fn at(secs_from_now: i64) -> DateTime<Utc> {
    now() + Duration::seconds(secs_from_now)
}

#[test]
fn a_server_within_warn_before_of_its_timeout_carries_the_deadline() {
    let p = warn_before(120);
    // Idle 479 s of 600: 121 s left, not yet.
    assert_eq!(warning_in(&p, &server(ago(479), ago(5000))), None);
    // Idle 480 s: 120 s left, exactly at the edge.
    assert_eq!(
        warning_in(&p, &server(ago(480), ago(5000))),
        Some(Warning {
            deadline: at(120),
            because: Because::Idle
        })
    );
    // Idle 599 s: still kept, 1 s left.
    let w = warning_in(&p, &server(ago(599), ago(5000))).unwrap();
    assert_eq!(w.left(now()), Elapsed(1));
    // Idle 600 s: culled, no warning any more.
    let u = someone();
    let d = judge_server(&p, now(), &u, "", &server(ago(600), ago(5000)));
    assert_eq!((d.action, d.warn), (Action::Stop, None));
}

#[test]
fn no_warning_without_warn_before() {
    assert_eq!(warning_in(&policy(), &server(ago(599), ago(5000))), None);
}

#[test]
fn the_deadline_stays_put_from_pass_to_pass_until_there_is_activity() {
    let p = warn_before(300);
    let u = someone();
    let s = server(ago(400), ago(5000));
    let first = judge_server(&p, now(), &u, "", &s).warn.unwrap();
    let later = judge_server(&p, now() + Duration::seconds(90), &u, "", &s)
        .warn
        .unwrap();
    assert_eq!(first.deadline, later.deadline);
    assert_eq!(later.left(now() + Duration::seconds(90)), Elapsed(110));
    // Activity moves it.
    let active = server(ago(350), ago(5000));
    assert_ne!(warning_in(&p, &active).unwrap().deadline, first.deadline);
}

#[test]
fn max_age_warns_when_it_comes_first() {
    let p = CullPolicy {
        max_age_secs: Some(3600),
        ..warn_before(300)
    };
    // Active a minute ago, started 3500 s ago: max age in 100 s.
    assert_eq!(
        warning_in(&p, &server(ago(60), ago(3500))),
        Some(Warning {
            deadline: at(100),
            because: Because::MaxAge
        })
    );
    // Idle deadline earlier than max age: idle wins.
    assert_eq!(
        warning_in(&p, &server(ago(450), ago(3000))).map(|w| w.because),
        Some(Because::Idle)
    );
}

#[test]
fn idleness_counts_from_the_start_when_there_is_no_activity() {
    let p = warn_before(120);
    assert_eq!(
        warning_in(&p, &server(None, ago(500))).map(|w| w.deadline),
        Some(at(100))
    );
}

#[test]
fn exempt_servers_and_servers_that_idleness_does_not_cull_are_never_warned() {
    // --cull-default-servers=false: the default server has no timeout.
    let p = CullPolicy {
        cull_default_servers: false,
        ..warn_before(300)
    };
    assert_eq!(warning_in(&p, &server(ago(590), ago(5000))), None);
    // A never rule.
    let rule: Rule = toml::from_str("never = true").unwrap();
    let p = CullPolicy {
        rules: vec![rule],
        ..warn_before(300)
    };
    assert_eq!(warning_in(&p, &server(ago(590), ago(5000))), None);
}

#[test]
fn a_rules_timeout_sets_the_deadline() {
    let rule: Rule = toml::from_str("timeout = 3600").unwrap();
    let p = CullPolicy {
        rules: vec![rule],
        ..warn_before(300)
    };
    assert_eq!(warning_in(&p, &server(ago(590), ago(5000))), None);
    assert_eq!(
        warning_in(&p, &server(ago(3400), ago(5000))).map(|w| w.deadline),
        Some(at(200))
    );
}

#[test]
fn users_are_warned_before_cull_users_deletes_them_and_only_then() {
    let p = CullPolicy {
        cull_users: true,
        user_timeout_secs: 86_400,
        ..warn_before(3600)
    };
    let idle = user(ago(86_400 - 1800), ago(200_000), false);
    let d = judge_user(&p, now(), &idle, Some(0)).unwrap();
    assert_eq!(d.action, Action::Keep);
    assert_eq!(
        d.warn,
        Some(Warning {
            deadline: at(1800),
            because: Because::Idle
        })
    );
    // Servers still running: not deletable, no warning.
    let d = judge_user(&p, now(), &idle, Some(1)).unwrap();
    assert_eq!(d.warn, None);
    // Far from the deadline.
    let fresh = user(ago(60), ago(200_000), false);
    assert_eq!(judge_user(&p, now(), &fresh, Some(0)).unwrap().warn, None);
}

#[test]
fn huge_limits_never_overflow_the_clock() {
    let p = CullPolicy {
        timeout_secs: u64::MAX,
        max_age_secs: Some(u64::MAX / 2),
        ..warn_before(u64::MAX)
    };
    assert_eq!(warning_in(&p, &server(ago(10), ago(10))), None);
}
