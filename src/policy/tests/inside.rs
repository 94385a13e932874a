//! `--activity=server`: which decisions ask the server, and what its
//! answer makes of them.

use super::*;
use crate::hub::{Inside, Kernel, Terminal};

fn asking() -> CullPolicy {
    CullPolicy {
        activity: Activity::Server,
        ..policy()
    }
}

fn kernel(state: &str, secs_ago: i64) -> Kernel {
    Kernel {
        execution_state: Some(state.to_owned()),
        last_activity: ago(secs_ago),
    }
}

fn terminal(secs_ago: i64) -> Terminal {
    Terminal {
        last_activity: ago(secs_ago),
    }
}

/// The decision about an idle server (idle 2 h, started 3 h ago) under
/// `policy`, judged again with `inside`.
fn judged<'a>(policy: &'a CullPolicy, user: &'a User, inside: Option<&Inside>) -> Decision<'a> {
    let idle = server(ago(7200), ago(10800));
    let decision = judge_server(policy, now(), user, "", &idle);
    judge_inside(policy, now(), decision, inside)
}

#[test]
fn only_a_server_idle_by_the_hub_under_activity_server_is_asked() {
    let u = someone();
    let idle = server(ago(7200), ago(10800));
    let active = server(ago(60), ago(10800));
    let p = asking();
    let asked = judge_server(&p, now(), &u, "", &idle);
    assert_eq!(asked.signal, Signal::AskServer { within: 600 });
    assert_eq!(
        asked.action,
        Action::Stop,
        "the hub's verdict stands until asked"
    );
    assert_eq!(judge_server(&p, now(), &u, "", &active).signal, Signal::Hub);
    assert_eq!(
        judge_server(&policy(), now(), &u, "", &idle).signal,
        Signal::Hub
    );
}

#[test]
fn max_age_still_applies_without_asking() {
    let u = someone();
    let p = CullPolicy {
        max_age_secs: Some(3600),
        ..asking()
    };
    let old_and_idle = server(ago(7200), ago(10800));
    let decision = judge_server(&p, now(), &u, "", &old_and_idle);
    assert_eq!(
        decision.signal,
        Signal::Hub,
        "too old: no word of the server can keep it"
    );
    assert!(decision.action.culls());
    let young = server(ago(7200), ago(2000));
    assert_eq!(
        judge_server(&p, now(), &u, "", &young).signal,
        Signal::AskServer { within: 600 }
    );
}

#[test]
fn a_rule_asks_with_its_own_timeout_and_a_rule_can_turn_asking_off() {
    let u = someone();
    let gpu: Rule =
        toml::from_str("server = \"gpu\"\ntimeout = 1800\nactivity = \"server\"").unwrap();
    let plain: Rule = toml::from_str("server = \"plain\"\nactivity = \"hub\"").unwrap();
    let p = CullPolicy {
        rules: vec![gpu, plain],
        ..asking()
    };
    let idle = server(ago(7200), ago(10800));
    assert_eq!(
        judge_server(&p, now(), &u, "gpu", &idle).signal,
        Signal::AskServer { within: 1800 }
    );
    assert_eq!(
        judge_server(&p, now(), &u, "plain", &idle).signal,
        Signal::Hub
    );
    assert!(p.asks_servers() && asking().asks_servers() && !policy().asks_servers());
    let only_rule = CullPolicy {
        rules: vec![toml::from_str("server = \"gpu\"\nactivity = \"server\"").unwrap()],
        ..policy()
    };
    assert!(only_rule.asks_servers());
    assert_eq!(
        judge_server(&only_rule, now(), &u, "lab", &idle).signal,
        Signal::Hub
    );
}

#[test]
fn a_busy_kernel_keeps_the_server_however_old_its_activity() {
    let (p, u) = (asking(), someone());
    let inside = Inside {
        kernels: vec![kernel("idle", 9000), kernel("busy", 9000)],
        ..Inside::default()
    };
    let d = judged(&p, &u, Some(&inside));
    assert_eq!(d.action, Action::Keep);
    assert_eq!(d.reason, Reason::InUse(InUse::KernelBusy));
    assert_eq!(d.reason.to_string(), "kernel busy");
    assert_eq!(d.signal, Signal::Server);
}

#[test]
fn recent_kernel_or_terminal_activity_keeps_it_and_names_the_most_recent() {
    let (p, u) = (asking(), someone());
    let kernel_recent = Inside {
        kernels: vec![kernel("idle", 180), kernel("idle", 400)],
        terminals: vec![terminal(500)],
        ..Inside::default()
    };
    let d = judged(&p, &u, Some(&kernel_recent));
    assert_eq!(d.reason, Reason::InUse(InUse::Kernel(Elapsed(180))));
    assert_eq!(d.reason.to_string(), "kernel active 00:03:00 ago");
    let terminal_recent = Inside {
        kernels: vec![kernel("idle", 400)],
        terminals: vec![terminal(599)],
        ..Inside::default()
    };
    let terminal_recent = Inside {
        terminals: vec![terminal(120)],
        ..terminal_recent
    };
    let d = judged(&p, &u, Some(&terminal_recent));
    assert_eq!(d.reason, Reason::InUse(InUse::Terminal(Elapsed(120))));
    assert_eq!(d.reason.to_string(), "terminal active 00:02:00 ago");
    assert_eq!(d.action, Action::Keep);
}

#[test]
fn activity_at_the_timeout_or_before_does_not_keep_it() {
    let (p, u) = (asking(), someone());
    let inside = Inside {
        kernels: vec![kernel("idle", 600), kernel("starting", 5000)],
        terminals: vec![terminal(601)],
        connections: 3,
    };
    let d = judged(&p, &u, Some(&inside));
    assert_eq!(d.action, Action::Stop);
    assert_eq!(d.reason, Reason::Idle);
    assert_eq!(d.signal, Signal::Server, "the server's word confirmed it");
    let empty = judged(&p, &u, Some(&Inside::default()));
    assert_eq!((empty.action, empty.signal), (Action::Stop, Signal::Server));
}

#[test]
fn open_connections_keep_it_only_when_they_count() {
    let u = someone();
    let inside = Inside {
        kernels: vec![kernel("idle", 5000)],
        connections: 2,
        ..Inside::default()
    };
    assert!(judged(&asking(), &u, Some(&inside)).action.culls());
    let counting = CullPolicy {
        activity_connections: true,
        ..asking()
    };
    let d = judged(&counting, &u, Some(&inside));
    assert_eq!(d.reason, Reason::InUse(InUse::Connections(2)));
    assert_eq!(d.reason.to_string(), "2 open connections");
    let none = Inside {
        connections: 0,
        ..inside
    };
    assert!(judged(&counting, &u, Some(&none)).action.culls());
}

#[test]
fn a_server_that_could_not_be_asked_is_judged_by_the_hubs_timestamps() {
    let (p, u) = (asking(), someone());
    let d = judged(&p, &u, None);
    assert_eq!((d.action, d.reason.clone()), (Action::Stop, Reason::Idle));
    assert_eq!(d.signal, Signal::HubFallback);
    assert_eq!(d.signal.as_str(), "hub-fallback");
}

#[test]
fn a_decision_that_does_not_ask_is_left_as_it_is() {
    let u = someone();
    let p = policy();
    let busy = Inside {
        kernels: vec![kernel("busy", 1)],
        ..Inside::default()
    };
    let d = judged(&p, &u, Some(&busy));
    assert_eq!((d.action, d.signal), (Action::Stop, Signal::Hub));
}
