//! The culling rules: pure functions from (settings, now, hub model) to a
//! verdict, with no actors and no HTTP, so every rule is tested on its own
//! and later policy features (rules by group or profile, dry-run
//! explanations) change data here, not the pipeline.
//!
//! The rules are upstream 2.0.0's, minus its known defects: a server with no
//! timestamps is skipped instead of abandoning its user, and
//! `--cull-admin-users=false` spares admins from `--max-age` too.

use crate::hub::{Readiness, Server, Timestamp, User};
use chrono::{DateTime, Utc};
use std::fmt;

/// The rules an operator chose with the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CullPolicy {
    /// `--timeout`: idle seconds after which servers (and users) are culled.
    pub timeout_secs: u64,
    /// `--max-age`: seconds after which servers (and users) are culled even
    /// when active; `None` when 0 (off).
    pub max_age_secs: Option<u64>,
    /// `--cull-default-servers`: whether idle default servers may be culled.
    pub cull_default_servers: bool,
    /// `--cull-named-servers`: whether idle named servers may be culled.
    pub cull_named_servers: bool,
    /// `--cull-users`: whether users whose servers are all stopped are deleted.
    pub cull_users: bool,
    /// `--cull-admin-users`: whether admins may be deleted by `--cull-users`.
    pub cull_admin_users: bool,
    /// `--remove-named-servers`: whether culled named servers are removed too.
    pub remove_named_servers: bool,
}

impl Default for CullPolicy {
    /// Upstream's defaults.
    fn default() -> Self {
        CullPolicy {
            timeout_secs: 600,
            max_age_secs: None,
            cull_default_servers: true,
            cull_named_servers: true,
            cull_users: false,
            cull_admin_users: true,
            remove_named_servers: false,
        }
    }
}

/// A span of time since something happened, shown as HH:MM:SS in logs
/// (the format operators grep upstream's logs for).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Elapsed(pub u64);

impl Elapsed {
    /// Seconds from `then` to `now`; a time in the future (clock skew) is 0.
    pub fn between(then: Timestamp, now: DateTime<Utc>) -> Self {
        Elapsed(u64::try_from((now - then.0).num_seconds()).unwrap_or(0))
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(f, "{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    }
}

/// Shows an optional span as upstream does ("unknown" when absent).
pub struct MaybeElapsed(pub Option<Elapsed>);

impl fmt::Display for MaybeElapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(elapsed) => elapsed.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// Why something is culled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CullReason {
    /// Idle for at least `--timeout`.
    Idle,
    /// Older than `--max-age`.
    MaxAge,
}

impl fmt::Display for CullReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CullReason::Idle => "idle",
            CullReason::MaxAge => "max-age",
        })
    }
}

/// Why a server is not even considered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A spawn, stop or check is under way.
    Pending(String),
    /// Neither ready nor pending: the hub should not list it, so leave it.
    NotReady,
    /// Neither `last_activity` nor `started`: its idleness is unknown.
    NoTimestamps,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Pending(action) => write!(f, "pending {action}"),
            SkipReason::NotReady => f.write_str("not ready and not pending"),
            SkipReason::NoTimestamps => f.write_str("no last_activity and no started time"),
        }
    }
}

/// The verdict on one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerVerdict {
    /// Left alone without judging it.
    Skip(SkipReason),
    /// Judged and kept.
    Keep {
        /// Time since its last activity (or start).
        idle: Option<Elapsed>,
        /// Time since it started.
        age: Option<Elapsed>,
    },
    /// To be stopped.
    Cull {
        /// Which rule culls it.
        reason: CullReason,
        /// Time since its last activity (or start).
        idle: Option<Elapsed>,
        /// Time since it started.
        age: Option<Elapsed>,
    },
}

/// Decides about one server of a user. `name` is "" for the default server.
pub fn judge_server(
    policy: &CullPolicy,
    now: DateTime<Utc>,
    name: &str,
    server: &Server,
) -> ServerVerdict {
    if let Some(action) = server.pending.as_deref().filter(|a| !a.is_empty()) {
        return ServerVerdict::Skip(SkipReason::Pending(action.to_owned()));
    }
    let ready = match server.ready {
        Readiness::Ready => true,
        Readiness::NotReady => false,
        // Pre-0.9 hubs: a URL meant ready.
        Readiness::Unstated => server.url.as_deref().is_some_and(|url| !url.is_empty()),
    };
    if !ready {
        return ServerVerdict::Skip(SkipReason::NotReady);
    }
    let (idle, age) = clocks(server.last_activity, server.started, now);
    if idle.is_none() {
        return ServerVerdict::Skip(SkipReason::NoTimestamps);
    }
    let kind_allowed = if name.is_empty() {
        policy.cull_default_servers
    } else {
        policy.cull_named_servers
    };
    match reason_to_cull(policy, kind_allowed, idle, age) {
        Some(reason) => ServerVerdict::Cull { reason, idle, age },
        None => ServerVerdict::Keep { idle, age },
    }
}

/// Why a user is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeepUser {
    /// `--cull-users` is off.
    UserCullingOff,
    /// Some servers are still running (or still stopping).
    ServersAlive(usize),
    /// The token cannot see the user's servers, so they may be running.
    ServersUnknown,
    /// An admin, and `--cull-admin-users=false`.
    Admin,
    /// Neither idle long enough nor too old.
    Recent {
        /// Time since the user's last activity (or creation).
        idle: Option<Elapsed>,
        /// Time since the user was created.
        age: Option<Elapsed>,
    },
}

/// The verdict on a user, once their servers have been dealt with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserVerdict {
    /// Left in place.
    Keep(KeepUser),
    /// To be deleted.
    Cull {
        /// Which rule culls them.
        reason: CullReason,
        /// Time since the user's last activity (or creation).
        idle: Option<Elapsed>,
        /// Time since the user was created.
        age: Option<Elapsed>,
    },
}

/// Decides about a user after their servers were handled. `servers_alive` is
/// how many of their servers are still running after this pass's stops, or
/// `None` when the token cannot see their servers.
pub fn judge_user(
    policy: &CullPolicy,
    now: DateTime<Utc>,
    user: &User,
    servers_alive: Option<usize>,
) -> UserVerdict {
    if !policy.cull_users {
        return UserVerdict::Keep(KeepUser::UserCullingOff);
    }
    match servers_alive {
        None => return UserVerdict::Keep(KeepUser::ServersUnknown),
        Some(0) => {}
        Some(alive) => return UserVerdict::Keep(KeepUser::ServersAlive(alive)),
    }
    // Unknown admin status counts as admin: sparing admins must not fail open.
    if user.admin != Some(false) && !policy.cull_admin_users {
        return UserVerdict::Keep(KeepUser::Admin);
    }
    let (idle, age) = clocks(user.last_activity, user.created, now);
    match reason_to_cull(policy, true, idle, age) {
        Some(reason) => UserVerdict::Cull { reason, idle, age },
        None => UserVerdict::Keep(KeepUser::Recent { idle, age }),
    }
}

/// Idle time (since the last activity, or else since the beginning) and age
/// (since the beginning: a server's start, a user's creation).
fn clocks(
    last_activity: Option<Timestamp>,
    beginning: Option<Timestamp>,
    now: DateTime<Utc>,
) -> (Option<Elapsed>, Option<Elapsed>) {
    let age = beginning.map(|t| Elapsed::between(t, now));
    let idle = last_activity.map(|t| Elapsed::between(t, now)).or(age);
    (idle, age)
}

/// The rule both servers and users follow: idle past `--timeout` (when
/// `idle_allowed`), else older than `--max-age`. Unknown clocks never cull.
fn reason_to_cull(
    policy: &CullPolicy,
    idle_allowed: bool,
    idle: Option<Elapsed>,
    age: Option<Elapsed>,
) -> Option<CullReason> {
    if idle_allowed && idle.is_some_and(|i| i.0 >= policy.timeout_secs) {
        Some(CullReason::Idle)
    } else if policy
        .max_age_secs
        .is_some_and(|max| age.is_some_and(|a| a.0 >= max))
    {
        Some(CullReason::MaxAge)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
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
            culled(&judge_server(&p, now(), "", &server(ago(600), ago(9000)))),
            Some(CullReason::Idle)
        );
        assert_eq!(
            culled(&judge_server(&p, now(), "", &server(ago(599), ago(9000)))),
            None
        );
    }

    #[test]
    fn idle_falls_back_to_started() {
        let p = policy();
        let v = judge_server(&p, now(), "", &server(None, ago(700)));
        assert_eq!(
            v,
            ServerVerdict::Cull {
                reason: CullReason::Idle,
                idle: Some(Elapsed(700)),
                age: Some(Elapsed(700))
            }
        );
        assert_eq!(
            culled(&judge_server(&p, now(), "", &server(None, ago(10)))),
            None
        );
    }

    #[test]
    fn activity_wins_over_started() {
        let v = judge_server(&policy(), now(), "", &server(ago(5), ago(100_000)));
        assert_eq!(
            v,
            ServerVerdict::Keep {
                idle: Some(Elapsed(5)),
                age: Some(Elapsed(100_000))
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
            judge_server(&p, now(), "", &server(None, None)),
            ServerVerdict::Skip(SkipReason::NoTimestamps)
        );
    }

    #[test]
    fn pending_servers_are_skipped() {
        let mut s = server(ago(10_000), ago(10_000));
        s.pending = Some("stop".into());
        assert_eq!(
            judge_server(&policy(), now(), "", &s),
            ServerVerdict::Skip(SkipReason::Pending("stop".into()))
        );
    }

    #[test]
    fn not_ready_servers_are_skipped() {
        let mut s = server(ago(10_000), ago(10_000));
        s.ready = Readiness::NotReady;
        assert_eq!(
            judge_server(&policy(), now(), "", &s),
            ServerVerdict::Skip(SkipReason::NotReady)
        );
        // Pre-0.9 hubs: no `ready`, and a URL means ready.
        s.ready = Readiness::Unstated;
        assert_eq!(
            culled(&judge_server(&policy(), now(), "", &s)),
            Some(CullReason::Idle)
        );
        s.url = None;
        assert_eq!(
            judge_server(&policy(), now(), "", &s),
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
        assert_eq!(culled(&judge_server(&no_default, now(), "", &idle)), None);
        assert_eq!(
            culled(&judge_server(&no_default, now(), "gpu", &idle)),
            Some(CullReason::Idle)
        );
        let no_named = CullPolicy {
            cull_named_servers: false,
            ..policy()
        };
        assert_eq!(culled(&judge_server(&no_named, now(), "gpu", &idle)), None);
        assert_eq!(
            culled(&judge_server(&no_named, now(), "", &idle)),
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
            culled(&judge_server(&p, now(), "", &server(ago(1), ago(3600)))),
            Some(CullReason::MaxAge)
        );
        assert_eq!(
            culled(&judge_server(&p, now(), "", &server(ago(1), ago(3599)))),
            None
        );
        // Without `started` the age is unknown: no max-age cull.
        assert_eq!(
            culled(&judge_server(&p, now(), "", &server(ago(1), None))),
            None
        );
        // Upstream applies max-age whatever the default/named switches say.
        let p = CullPolicy {
            cull_default_servers: false,
            ..p
        };
        assert_eq!(
            culled(&judge_server(&p, now(), "", &server(ago(1), ago(4000)))),
            Some(CullReason::MaxAge)
        );
    }

    #[test]
    fn max_age_off_never_culls_active_servers() {
        assert_eq!(
            culled(&judge_server(
                &policy(),
                now(),
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
                age: None
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
            max_age_secs: Some(5000),
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
            max_age_secs: Some(1),
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
                if let ServerVerdict::Cull { reason, .. } = judge_server(&policy, now(), name, &server) {
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
                    prop_assert!(matches!(judge_server(&policy, now(), "", &server), ServerVerdict::Skip(_)));
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
}
