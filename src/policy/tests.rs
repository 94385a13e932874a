use super::*;
use chrono::{Duration, TimeZone};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn ago(secs: i64) -> Option<Timestamp> {
    Some(Timestamp(now() - Duration::seconds(secs)))
}

fn server(last_activity: Option<Timestamp>, started: Option<Timestamp>) -> Server {
    Server {
        name: String::new(),
        ready: Readiness::Ready,
        pending: None,
        started,
        last_activity,
        url: Some("/user/x/".into()),
        user_options: None,
    }
}

fn user(last_activity: Option<Timestamp>, created: Option<Timestamp>, admin: bool) -> User {
    User {
        name: "x".into(),
        admin: Some(admin),
        last_activity,
        created,
        servers: Some(Default::default()),
        server: None,
        pending: None,
        groups: None,
    }
}

/// A user for server decisions that no rule is about.
fn someone() -> User {
    user(None, None, false)
}

fn policy() -> CullPolicy {
    CullPolicy {
        timeout_secs: 600,
        ..CullPolicy::default()
    }
}

fn culled(v: &ServerVerdict) -> Option<CullReason> {
    match v {
        ServerVerdict::Cull { reason, .. } => Some(*reason),
        _ => None,
    }
}

#[test]
fn idle_at_exactly_the_timeout_is_culled() {
    let p = policy();
    assert_eq!(
        culled(&judge_server(
            &p,
            now(),
            &someone(),
            "",
            &server(ago(600), ago(9000))
        )),
        Some(CullReason::Idle)
    );
    assert_eq!(
        culled(&judge_server(
            &p,
            now(),
            &someone(),
            "",
            &server(ago(599), ago(9000))
        )),
        None
    );
}

#[test]
fn idle_falls_back_to_started() {
    let p = policy();
    let v = judge_server(&p, now(), &someone(), "", &server(None, ago(700)));
    assert_eq!(
        v,
        ServerVerdict::Cull {
            reason: CullReason::Idle,
            idle: Some(Elapsed(700)),
            age: Some(Elapsed(700)),
            rule: None
        }
    );
    assert_eq!(
        culled(&judge_server(
            &p,
            now(),
            &someone(),
            "",
            &server(None, ago(10))
        )),
        None
    );
}

#[test]
fn activity_wins_over_started() {
    let v = judge_server(
        &policy(),
        now(),
        &someone(),
        "",
        &server(ago(5), ago(100_000)),
    );
    assert_eq!(
        v,
        ServerVerdict::Keep {
            idle: Some(Elapsed(5)),
            age: Some(Elapsed(100_000)),
            rule: None
        }
    );
}

#[test]
fn no_timestamps_is_never_culled() {
    let p = CullPolicy {
        timeout_secs: 0,
        max_age_secs: Some(1),
        ..policy()
    };
    assert_eq!(
        judge_server(&p, now(), &someone(), "", &server(None, None)),
        ServerVerdict::Skip(SkipReason::NoTimestamps)
    );
}

#[test]
fn pending_servers_are_skipped() {
    let mut s = server(ago(10_000), ago(10_000));
    s.pending = Some("stop".into());
    assert_eq!(
        judge_server(&policy(), now(), &someone(), "", &s),
        ServerVerdict::Skip(SkipReason::Pending("stop".into()))
    );
}

#[test]
fn not_ready_servers_are_skipped() {
    let mut s = server(ago(10_000), ago(10_000));
    s.ready = Readiness::NotReady;
    assert_eq!(
        judge_server(&policy(), now(), &someone(), "", &s),
        ServerVerdict::Skip(SkipReason::NotReady)
    );
    // Pre-0.9 hubs: no `ready`, and a URL means ready.
    s.ready = Readiness::Unstated;
    assert_eq!(
        culled(&judge_server(&policy(), now(), &someone(), "", &s)),
        Some(CullReason::Idle)
    );
    s.url = None;
    assert_eq!(
        judge_server(&policy(), now(), &someone(), "", &s),
        ServerVerdict::Skip(SkipReason::NotReady)
    );
}

#[test]
fn default_and_named_switches() {
    let idle = server(ago(1000), ago(1000));
    let no_default = CullPolicy {
        cull_default_servers: false,
        ..policy()
    };
    assert_eq!(
        culled(&judge_server(&no_default, now(), &someone(), "", &idle)),
        None
    );
    assert_eq!(
        culled(&judge_server(&no_default, now(), &someone(), "gpu", &idle)),
        Some(CullReason::Idle)
    );
    let no_named = CullPolicy {
        cull_named_servers: false,
        ..policy()
    };
    assert_eq!(
        culled(&judge_server(&no_named, now(), &someone(), "gpu", &idle)),
        None
    );
    assert_eq!(
        culled(&judge_server(&no_named, now(), &someone(), "", &idle)),
        Some(CullReason::Idle)
    );
}

#[test]
fn max_age_culls_active_servers() {
    let p = CullPolicy {
        max_age_secs: Some(3600),
        ..policy()
    };
    assert_eq!(
        culled(&judge_server(
            &p,
            now(),
            &someone(),
            "",
            &server(ago(1), ago(3600))
        )),
        Some(CullReason::MaxAge)
    );
    assert_eq!(
        culled(&judge_server(
            &p,
            now(),
            &someone(),
            "",
            &server(ago(1), ago(3599))
        )),
        None
    );
    // Without `started` the age is unknown: no max-age cull.
    assert_eq!(
        culled(&judge_server(
            &p,
            now(),
            &someone(),
            "",
            &server(ago(1), None)
        )),
        None
    );
    // Upstream applies max-age whatever the default/named switches say.
    let p = CullPolicy {
        cull_default_servers: false,
        ..p
    };
    assert_eq!(
        culled(&judge_server(
            &p,
            now(),
            &someone(),
            "",
            &server(ago(1), ago(4000))
        )),
        Some(CullReason::MaxAge)
    );
}

#[test]
fn max_age_off_never_culls_active_servers() {
    assert_eq!(
        culled(&judge_server(
            &policy(),
            now(),
            &someone(),
            "",
            &server(ago(1), ago(10_000_000))
        )),
        None
    );
}

#[test]
fn future_timestamps_count_as_just_active() {
    assert_eq!(
        culled(&judge_server(
            &policy(),
            now(),
            &someone(),
            "",
            &server(ago(-5000), ago(-5000))
        )),
        None
    );
}

fn users_on() -> CullPolicy {
    CullPolicy {
        cull_users: true,
        ..policy()
    }
}

fn user_culled(v: &UserVerdict) -> Option<CullReason> {
    match v {
        UserVerdict::Cull { reason, .. } => Some(*reason),
        _ => None,
    }
}

#[test]
fn users_only_with_cull_users() {
    assert_eq!(
        judge_user(
            &policy(),
            now(),
            &user(ago(10_000), ago(10_000), false),
            Some(0)
        ),
        UserVerdict::Keep(KeepUser::UserCullingOff)
    );
    assert_eq!(
        user_culled(&judge_user(
            &users_on(),
            now(),
            &user(ago(10_000), ago(10_000), false),
            Some(0)
        )),
        Some(CullReason::Idle)
    );
}

#[test]
fn users_with_servers_alive_or_unknown_are_kept() {
    let u = user(ago(10_000), ago(10_000), false);
    assert_eq!(
        judge_user(&users_on(), now(), &u, Some(2)),
        UserVerdict::Keep(KeepUser::ServersAlive(2))
    );
    assert_eq!(
        judge_user(&users_on(), now(), &u, None),
        UserVerdict::Keep(KeepUser::ServersUnknown)
    );
}

#[test]
fn user_idle_falls_back_to_created() {
    assert_eq!(
        user_culled(&judge_user(
            &users_on(),
            now(),
            &user(None, ago(601), false),
            Some(0)
        )),
        Some(CullReason::Idle)
    );
    assert_eq!(
        judge_user(&users_on(), now(), &user(None, None, false), Some(0)),
        UserVerdict::Keep(KeepUser::Recent {
            idle: None,
            age: None,
            rule: None
        })
    );
}

#[test]
fn recently_active_users_are_kept() {
    assert_eq!(
        user_culled(&judge_user(
            &users_on(),
            now(),
            &user(ago(10), ago(100_000), false),
            Some(0)
        )),
        None
    );
}

#[test]
fn user_max_age_uses_created() {
    let p = CullPolicy {
        user_max_age_secs: Some(5000),
        ..users_on()
    };
    assert_eq!(
        user_culled(&judge_user(
            &p,
            now(),
            &user(ago(10), ago(5000), false),
            Some(0)
        )),
        Some(CullReason::MaxAge)
    );
    assert_eq!(
        user_culled(&judge_user(&p, now(), &user(ago(10), None, false), Some(0))),
        None
    );
}

#[test]
fn admins_spared_from_idle_and_max_age_when_asked() {
    let p = CullPolicy {
        cull_admin_users: false,
        user_max_age_secs: Some(1),
        ..users_on()
    };
    let admin = user(ago(100_000), ago(100_000), true);
    assert_eq!(
        judge_user(&p, now(), &admin, Some(0)),
        UserVerdict::Keep(KeepUser::Admin)
    );
    let p = CullPolicy {
        cull_admin_users: true,
        ..p
    };
    assert_eq!(
        user_culled(&judge_user(&p, now(), &admin, Some(0))),
        Some(CullReason::Idle)
    );
}

#[test]
fn unknown_admin_status_is_spared_like_an_admin() {
    let mut unknown = user(ago(100_000), ago(100_000), false);
    unknown.admin = None;
    let spare = CullPolicy {
        cull_admin_users: false,
        ..users_on()
    };
    assert_eq!(
        judge_user(&spare, now(), &unknown, Some(0)),
        UserVerdict::Keep(KeepUser::Admin)
    );
    assert_eq!(
        user_culled(&judge_user(&users_on(), now(), &unknown, Some(0))),
        Some(CullReason::Idle)
    );
}

#[test]
fn reasons_read_as_upstream_logs_them() {
    assert_eq!(CullReason::Idle.to_string(), "idle");
    assert_eq!(CullReason::MaxAge.to_string(), "max-age");
    assert_eq!(
        SkipReason::Pending("spawn".into()).to_string(),
        "pending spawn"
    );
}

#[test]
fn elapsed_formats_as_hours_minutes_seconds() {
    assert_eq!(Elapsed(0).to_string(), "00:00:00");
    assert_eq!(Elapsed(3661).to_string(), "01:01:01");
    assert_eq!(Elapsed(100 * 3600 + 59).to_string(), "100:00:59");
    assert_eq!(MaybeElapsed(None).to_string(), "unknown");
}

fn with_rules(rules: &str) -> CullPolicy {
    let config = crate::config::FileConfig::parse(rules).unwrap();
    CullPolicy {
        timeout_secs: 3600,
        user_timeout_secs: 3600,
        rules: config.rules,
        ..users_on()
    }
}

fn member(name: &str, groups: &[&str]) -> User {
    let mut u = user(ago(100_000), ago(100_000), false);
    u.name = name.into();
    u.groups = Some(groups.iter().map(|g| g.to_string()).collect());
    u
}

fn with_options(mut s: Server, options: serde_json::Value) -> Server {
    s.user_options = Some(options);
    s
}

/// The README's four examples in shape (shorter names, another exempt
/// user); the integration tests run the README's own block.
const EXAMPLE_RULES: &str = r#"
    [[rules]]
    name = "instructors"
    group = "instructors"
    never = true

    [[rules]]
    name = "one user"
    user = "vip"
    never = true

    [[rules]]
    name = "gpu"
    user_options = { profile = "gpu" }
    timeout = 1800

    [[rules]]
    name = "named"
    server = "named"
    timeout = 7200

    [[rules]]
    name = "default"
    server = "default"
    timeout = 28800
"#;

#[test]
fn rules_gpu_after_30_minutes_named_after_2_hours_default_after_8() {
    let p = with_rules(EXAMPLE_RULES);
    let student = member("student", &["students"]);
    let gpu = with_options(
        server(ago(1800), ago(9000)),
        serde_json::json!({"profile": "gpu"}),
    );
    let cpu = with_options(
        server(ago(1800), ago(9000)),
        serde_json::json!({"profile": "cpu"}),
    );
    assert_eq!(
        judge_server(&p, now(), &student, "", &gpu),
        ServerVerdict::Cull {
            reason: CullReason::Idle,
            idle: Some(Elapsed(1800)),
            age: Some(Elapsed(9000)),
            rule: Some(2)
        }
    );
    assert_eq!(p.decided_by(Some(2)), "rule \"gpu\"");
    // The same idleness on a CPU default server: 8 h apply.
    assert!(matches!(
        judge_server(&p, now(), &student, "", &cpu),
        ServerVerdict::Keep { rule: Some(4), .. }
    ));
    let idle_2h = server(ago(7200), ago(9000));
    assert!(matches!(
        judge_server(&p, now(), &student, "lab", &idle_2h),
        ServerVerdict::Cull { rule: Some(3), .. }
    ));
    assert!(matches!(
        judge_server(&p, now(), &student, "", &idle_2h),
        ServerVerdict::Keep { rule: Some(4), .. }
    ));
    assert!(matches!(
        judge_server(&p, now(), &student, "", &server(ago(28_800), ago(30_000))),
        ServerVerdict::Cull { rule: Some(4), .. }
    ));
}

#[test]
fn rules_exempt_a_group_and_a_user_servers_and_users_alike() {
    let p = with_rules(EXAMPLE_RULES);
    let ancient = server(ago(1_000_000), ago(1_000_000));
    let teacher = member("teacher", &["instructors"]);
    let vip = member("vip", &[]);
    assert_eq!(
        judge_server(&p, now(), &teacher, "", &ancient),
        ServerVerdict::Exempt { rule: 0 }
    );
    assert_eq!(
        judge_server(&p, now(), &vip, "lab", &ancient),
        ServerVerdict::Exempt { rule: 1 }
    );
    assert_eq!(
        judge_user(&p, now(), &teacher, Some(0)),
        UserVerdict::Keep(KeepUser::Exempt(0))
    );
    assert_eq!(
        judge_user(&p, now(), &vip, Some(0)),
        UserVerdict::Keep(KeepUser::Exempt(1))
    );
    // Pending and not-ready servers are skipped before any rule.
    let mut pending = ancient.clone();
    pending.pending = Some("spawn".into());
    assert!(matches!(
        judge_server(&p, now(), &teacher, "", &pending),
        ServerVerdict::Skip(_)
    ));
}

#[test]
fn rules_about_servers_leave_users_to_the_user_limits() {
    let p = CullPolicy {
        user_timeout_secs: 259_200,
        ..with_rules(EXAMPLE_RULES)
    };
    let student = member("student", &["students"]);
    let mut idle_2d = student.clone();
    idle_2d.last_activity = ago(172_800);
    assert_eq!(
        judge_user(&p, now(), &idle_2d, Some(0)),
        UserVerdict::Keep(KeepUser::Recent {
            idle: Some(Elapsed(172_800)),
            age: Some(Elapsed(100_000)),
            rule: None
        })
    );
    idle_2d.last_activity = ago(259_200);
    assert!(matches!(
        judge_user(&p, now(), &idle_2d, Some(0)),
        UserVerdict::Cull {
            reason: CullReason::Idle,
            rule: None,
            ..
        }
    ));
}

#[test]
fn a_rule_sets_only_what_it_says_and_max_age_zero_turns_age_off() {
    let p = CullPolicy {
        max_age_secs: Some(3600),
        cull_named_servers: false,
        ..with_rules(
            "[[rules]]\nserver = \"named\"\ntimeout = 60\n[[rules]]\nuser = \"old*\"\nmax_age = 0\n",
        )
    };
    let busy_old = server(ago(1), ago(100_000));
    // The named-server rule sets the timeout (whatever
    // --cull-named-servers says) and keeps --max-age from the flags.
    assert!(matches!(
        judge_server(&p, now(), &someone(), "lab", &server(ago(61), ago(100))),
        ServerVerdict::Cull {
            reason: CullReason::Idle,
            rule: Some(0),
            ..
        }
    ));
    assert!(matches!(
        judge_server(&p, now(), &someone(), "lab", &busy_old),
        ServerVerdict::Cull {
            reason: CullReason::MaxAge,
            rule: Some(0),
            ..
        }
    ));
    let mut oldtimer = someone();
    oldtimer.name = "oldtimer".into();
    assert!(matches!(
        judge_server(&p, now(), &oldtimer, "", &busy_old),
        ServerVerdict::Keep { rule: Some(1), .. }
    ));
    assert_eq!(p.decided_by(None), "flags");
}

/// The safety invariants of the rules, over random servers, users and
/// settings: what must never be culled, whatever else holds.
mod properties {
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
            if let ServerVerdict::Cull { reason, .. } = judge_server(&policy, now(), &someone(), name, &server) {
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
                prop_assert!(matches!(judge_server(&policy, now(), &someone(), "", &server), ServerVerdict::Skip(_)));
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
            let verdict = judge_user(&policy, now(), &user, alive);
            if let UserVerdict::Cull { .. } = verdict {
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
}
