//! The safety invariants of the rules, over random servers, users and
//! settings: what must never be culled, whatever else holds.

use super::*;
use proptest::prelude::*;

fn stamp() -> impl Strategy<Value = Option<Timestamp>> {
    prop_oneof![
        Just(None),
        // From two days ago to a minute in the future (clock skew).
        (-60i64..172_800).prop_map(ago),
    ]
}

fn readiness() -> impl Strategy<Value = Readiness> {
    prop_oneof![
        Just(Readiness::Ready),
        Just(Readiness::NotReady),
        Just(Readiness::Unstated)
    ]
}

fn any_server() -> impl Strategy<Value = Server> {
    (
        readiness(),
        prop::option::of(prop_oneof![
            Just("spawn".to_owned()),
            Just("stop".to_owned()),
            Just("check".to_owned()),
            Just(String::new()),
        ]),
        stamp(),
        stamp(),
        prop::option::of(Just("/user/x/".to_owned())),
    )
        .prop_map(|(ready, pending, started, last_activity, url)| Server {
            name: String::new(),
            ready,
            pending,
            started,
            last_activity,
            url,
            user_options: None,
        })
}

fn any_policy() -> impl Strategy<Value = CullPolicy> {
    (
        0u64..100_000,
        prop::option::of(1u64..200_000),
        any::<[bool; 5]>(),
    )
        .prop_map(|(timeout_secs, max_age_secs, flags)| CullPolicy {
            timeout_secs,
            max_age_secs,
            cull_default_servers: flags[0],
            cull_named_servers: flags[1],
            cull_users: flags[2],
            cull_admin_users: flags[3],
            remove_named_servers: flags[4],
            user_timeout_secs: timeout_secs,
            user_max_age_secs: max_age_secs,
            rules: Vec::new(),
            ..CullPolicy::default()
        })
}

fn secs_since(stamp: Option<Timestamp>) -> Option<u64> {
    stamp.map(|t| Elapsed::between(t, now()).0)
}

proptest! {
    #[test]
    fn a_server_is_culled_only_when_idle_past_the_timeout_or_too_old(
        policy in any_policy(),
        server in any_server(),
        named in any::<bool>(),
    ) {
        let name = if named { "gpu" } else { "" };
        if let Some(reason) = culled(&judge_server(&policy, now(), &someone(), name, &server)) {
            let age = secs_since(server.started);
            let idle = secs_since(server.last_activity).or(age);
            let kind_allowed = if named { policy.cull_named_servers } else { policy.cull_default_servers };
            let idle_enough = kind_allowed && idle.is_some_and(|i| i >= policy.timeout_secs);
            let too_old = policy.max_age_secs.is_some_and(|max| age.is_some_and(|a| a >= max));
            prop_assert!(idle_enough || too_old, "{reason:?} for {server:?} under {policy:?}");
        }
    }

    #[test]
    fn pending_or_not_ready_servers_are_never_culled(
        policy in any_policy(),
        server in any_server(),
    ) {
        let pending = server.pending.as_deref().is_some_and(|p| !p.is_empty());
        let not_ready = match server.ready {
            Readiness::Ready => false,
            Readiness::NotReady => true,
            Readiness::Unstated => server.url.is_none(),
        };
        if pending || not_ready {
            prop_assert_eq!(judge_server(&policy, now(), &someone(), "", &server).action, Action::Skip);
        }
    }

    #[test]
    fn a_user_with_a_server_not_confirmed_stopped_is_never_deleted(
        policy in any_policy(),
        last_activity in stamp(),
        created in stamp(),
        admin in prop::option::of(any::<bool>()),
        alive in prop::option::of(0usize..4),
    ) {
        let mut user = user(last_activity, created, false);
        user.admin = admin;
        let decision = judge_user(&policy, now(), &user, alive);
        if user_culled(&decision).is_some() {
            prop_assert!(policy.cull_users);
            prop_assert_eq!(alive, Some(0), "servers alive or unknown");
            prop_assert!(
                policy.cull_admin_users || admin == Some(false),
                "an admin (or unknown) deleted under --cull-admin-users=false"
            );
            let age = secs_since(created);
            let idle = secs_since(last_activity).or(age);
            let idle_enough = idle.is_some_and(|i| i >= policy.timeout_secs);
            let too_old = policy.max_age_secs.is_some_and(|max| age.is_some_and(|a| a >= max));
            prop_assert!(idle_enough || too_old);
        }
    }
}
