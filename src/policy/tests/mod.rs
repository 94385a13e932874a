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

mod inside;
mod properties;
mod rules;
mod warn;
