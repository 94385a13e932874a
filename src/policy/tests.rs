use super::*;
use crate::decision::MaybeElapsed;
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

/// A decision in brief, for comparing: what, why, the clocks, and the
/// index of the rule that set the limits (`None`: the flags, or no limit).
type Brief = (
    Action,
    Reason,
    Option<Elapsed>,
    Option<Elapsed>,
    Option<usize>,
);

fn brief(d: &Decision<'_>) -> Brief {
    let rule = match d.decided_by {
        Some(DecidedBy::Rule { index, .. }) => Some(index),
        _ => None,
    };
    (d.action, d.reason.clone(), d.idle, d.age, rule)
}

/// Why it is culled, if it is.
fn culled(d: &Decision<'_>) -> Option<Reason> {
    d.action.culls().then(|| d.reason.clone())
}

/// Skipped for this reason, before any limit.
fn skipped(reason: Reason) -> Brief {
    (Action::Skip, reason, None, None, None)
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
        Some(Reason::Idle)
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
    let v = brief(&judge_server(
        &p,
        now(),
        &someone(),
        "",
        &server(None, ago(700)),
    ));
    assert_eq!(
        v,
        (
            Action::Stop,
            Reason::Idle,
            Some(Elapsed(700)),
            Some(Elapsed(700)),
            None
        )
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
    let v = brief(&judge_server(
        &policy(),
        now(),
        &someone(),
        "",
        &server(ago(5), ago(100_000)),
    ));
    assert_eq!(
        v,
        (
            Action::Keep,
            Reason::Active,
            Some(Elapsed(5)),
            Some(Elapsed(100_000)),
            None
        )
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
        brief(&judge_server(
            &p,
            now(),
            &someone(),
            "",
            &server(None, None)
        )),
        skipped(Reason::NoTimestamps)
    );
}

#[test]
fn pending_servers_are_skipped() {
    let mut s = server(ago(10_000), ago(10_000));
    s.pending = Some("stop".into());
    assert_eq!(
        brief(&judge_server(&policy(), now(), &someone(), "", &s)),
        skipped(Reason::Pending("stop".into()))
    );
}

#[test]
fn not_ready_servers_are_skipped() {
    let mut s = server(ago(10_000), ago(10_000));
    s.ready = Readiness::NotReady;
    assert_eq!(
        brief(&judge_server(&policy(), now(), &someone(), "", &s)),
        skipped(Reason::NotReady)
    );
    // Pre-0.9 hubs: no `ready`, and a URL means ready.
    s.ready = Readiness::Unstated;
    assert_eq!(
        culled(&judge_server(&policy(), now(), &someone(), "", &s)),
        Some(Reason::Idle)
    );
    s.url = None;
    assert_eq!(
        brief(&judge_server(&policy(), now(), &someone(), "", &s)),
        skipped(Reason::NotReady)
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
        Some(Reason::Idle)
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
        Some(Reason::Idle)
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
        Some(Reason::MaxAge)
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
        Some(Reason::MaxAge)
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

fn user_culled(d: &Option<Decision<'_>>) -> Option<Reason> {
    d.as_ref().and_then(culled)
}

/// A user kept for this reason, before any limit.
fn kept(reason: Reason) -> Option<Brief> {
    Some((Action::Keep, reason, None, None, None))
}

fn user_brief(d: &Option<Decision<'_>>) -> Option<Brief> {
    d.as_ref().map(brief)
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
        None
    );
    assert_eq!(
        user_culled(&judge_user(
            &users_on(),
            now(),
            &user(ago(10_000), ago(10_000), false),
            Some(0)
        )),
        Some(Reason::Idle)
    );
}

#[test]
fn users_with_servers_alive_or_unknown_are_kept() {
    let u = user(ago(10_000), ago(10_000), false);
    assert_eq!(
        user_brief(&judge_user(&users_on(), now(), &u, Some(2))),
        kept(Reason::ServersRunning(2))
    );
    assert_eq!(
        user_brief(&judge_user(&users_on(), now(), &u, None)),
        kept(Reason::ServersUnknown)
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
        Some(Reason::Idle)
    );
    assert_eq!(
        user_brief(&judge_user(
            &users_on(),
            now(),
            &user(None, None, false),
            Some(0)
        )),
        Some((Action::Keep, Reason::Active, None, None, None))
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
        Some(Reason::MaxAge)
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
        user_brief(&judge_user(&p, now(), &admin, Some(0))),
        kept(Reason::Admin)
    );
    let p = CullPolicy {
        cull_admin_users: true,
        ..p
    };
    assert_eq!(
        user_culled(&judge_user(&p, now(), &admin, Some(0))),
        Some(Reason::Idle)
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
        user_brief(&judge_user(&spare, now(), &unknown, Some(0))),
        kept(Reason::Admin)
    );
    assert_eq!(
        user_culled(&judge_user(&users_on(), now(), &unknown, Some(0))),
        Some(Reason::Idle)
    );
}

#[test]
fn reasons_read_as_upstream_logs_them() {
    assert_eq!(Reason::Idle.to_string(), "idle");
    assert_eq!(Reason::MaxAge.to_string(), "max-age");
    assert_eq!(Reason::Pending("spawn".into()).to_string(), "pending spawn");
}

#[test]
fn elapsed_formats_as_hours_minutes_seconds() {
    assert_eq!(Elapsed(0).to_string(), "00:00:00");
    assert_eq!(Elapsed(3661).to_string(), "01:01:01");
    assert_eq!(Elapsed(100 * 3600 + 59).to_string(), "100:00:59");
    assert_eq!(MaybeElapsed(None).to_string(), "unknown");
}

fn with_rules(rules: &str) -> CullPolicy {
    let config = crate::config::parse(rules).unwrap();
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
        brief(&judge_server(&p, now(), &student, "", &gpu)),
        (
            Action::Stop,
            Reason::Idle,
            Some(Elapsed(1800)),
            Some(Elapsed(9000)),
            Some(2)
        )
    );
    assert_eq!(
        judge_server(&p, now(), &student, "", &gpu)
            .decided_by
            .map(|by| by.to_string()),
        Some("rule \"gpu\"".to_owned())
    );
    // The same idleness on a CPU default server: 8 h apply.
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "", &cpu)).4,
        Some(4),
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "", &cpu)).0,
        Action::Keep
    );
    let idle_2h = server(ago(7200), ago(9000));
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "lab", &idle_2h)).4,
        Some(3),
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "lab", &idle_2h)).0,
        Action::Stop
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "", &idle_2h)).4,
        Some(4),
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &student, "", &idle_2h)).0,
        Action::Keep
    );
    assert_eq!(
        brief(&judge_server(
            &p,
            now(),
            &student,
            "",
            &server(ago(28_800), ago(30_000))
        ))
        .4,
        Some(4),
    );
    assert_eq!(
        brief(&judge_server(
            &p,
            now(),
            &student,
            "",
            &server(ago(28_800), ago(30_000))
        ))
        .0,
        Action::Stop
    );
}

#[test]
fn rules_exempt_a_group_and_a_user_servers_and_users_alike() {
    let p = with_rules(EXAMPLE_RULES);
    let ancient = server(ago(1_000_000), ago(1_000_000));
    let teacher = member("teacher", &["instructors"]);
    let vip = member("vip", &[]);
    assert_eq!(
        brief(&judge_server(&p, now(), &teacher, "", &ancient)),
        (Action::Keep, Reason::Never, None, None, Some(0))
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &vip, "lab", &ancient)),
        (Action::Keep, Reason::Never, None, None, Some(1))
    );
    assert_eq!(
        user_brief(&judge_user(&p, now(), &teacher, Some(0))),
        Some((Action::Keep, Reason::Never, None, None, Some(0)))
    );
    assert_eq!(
        user_brief(&judge_user(&p, now(), &vip, Some(0))),
        Some((Action::Keep, Reason::Never, None, None, Some(1)))
    );
    // Pending and not-ready servers are skipped before any rule.
    let mut pending = ancient.clone();
    pending.pending = Some("spawn".into());
    assert_eq!(
        judge_server(&p, now(), &teacher, "", &pending).action,
        Action::Skip
    );
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
        user_brief(&judge_user(&p, now(), &idle_2d, Some(0))),
        Some((
            Action::Keep,
            Reason::Active,
            Some(Elapsed(172_800)),
            Some(Elapsed(100_000)),
            None
        ))
    );
    idle_2d.last_activity = ago(259_200);
    let decision = judge_user(&p, now(), &idle_2d, Some(0));
    let (action, reason, _, _, rule) = user_brief(&decision).unwrap();
    assert_eq!((action, reason, rule), (Action::Delete, Reason::Idle, None));
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
    let (action, reason, _, _, rule) = brief(&judge_server(
        &p,
        now(),
        &someone(),
        "lab",
        &server(ago(61), ago(100)),
    ));
    assert_eq!(
        (action, reason, rule),
        (Action::Stop, Reason::Idle, Some(0))
    );
    let (action, reason, _, _, rule) =
        brief(&judge_server(&p, now(), &someone(), "lab", &busy_old));
    assert_eq!(
        (action, reason, rule),
        (Action::Stop, Reason::MaxAge, Some(0))
    );
    let mut oldtimer = someone();
    oldtimer.name = "oldtimer".into();
    assert_eq!(
        brief(&judge_server(&p, now(), &oldtimer, "", &busy_old)).4,
        Some(1),
    );
    assert_eq!(
        brief(&judge_server(&p, now(), &oldtimer, "", &busy_old)).0,
        Action::Keep
    );
    assert_eq!(
        judge_server(&p, now(), &someone(), "", &busy_old)
            .decided_by
            .map(|by| by.to_string()),
        Some("flags".to_owned())
    );
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
}
