//! The safety invariants, over randomized hubs: random populations (idle,
//! busy, too old, pending, slow to stop, admins, named servers), random
//! settings, and, in half the cases, a fifth of the requests failing. Each
//! case runs one `--once` pass of the binary against the fake hub and
//! checks, from the hub's own log of every request it received:
//!
//! - no server idle less than `--timeout` is stopped unless `--max-age`
//!   says so, and pending or not-ready servers are never stopped;
//! - a user with a server not confirmed stopped is never deleted;
//! - admins are never deleted under `--cull-admin-users=false`;
//! - no server is stopped twice in a pass (without faults no DELETE is even
//!   sent twice; with faults a lost answer is legitimately asked again);
//! - never more than `--concurrency` requests in flight.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

use crate::support::fake_hub::{
    ago, FakeServer, FakeUser, FaultAction, HubConfig, Outcome, RandomFaults, RequestKind,
};
use crate::support::scenario::*;

/// How one server starts out.
#[derive(Clone, Copy, Debug)]
enum ServerState {
    /// Ready, last active two hours ago: idle.
    Idle,
    /// Ready, active a minute ago.
    Busy,
    /// Ready, active a minute ago, started two days ago: too old for
    /// `--max-age=86400`.
    Old,
    /// Pending spawn (not ready) and idle by its timestamps.
    Spawning,
    /// Pending stop and idle by its timestamps.
    Stopping,
}

impl ServerState {
    fn server(self, name: &str) -> FakeServer {
        let server = FakeServer::new(name);
        match self {
            ServerState::Idle => server.idle_for(hours(2)),
            ServerState::Busy => server.idle_for(secs(60)),
            ServerState::Old => server.idle_for(secs(60)).started(ago(hours(48))),
            ServerState::Spawning => server.idle_for(hours(2)).pending(Some("spawn")),
            ServerState::Stopping => server.idle_for(hours(2)).pending(Some("stop")),
        }
    }

    /// Whether the rules allow stopping it.
    fn cullable(self, max_age: bool) -> bool {
        match self {
            ServerState::Idle => true,
            ServerState::Old => max_age,
            ServerState::Busy | ServerState::Spawning | ServerState::Stopping => false,
        }
    }
}

/// How one user starts out.
#[derive(Clone, Debug)]
struct UserSpec {
    admin: bool,
    idle: bool,
    slow_stop: bool,
    default_server: Option<ServerState>,
    named_server: Option<ServerState>,
}

/// The settings of one pass.
#[derive(Clone, Debug)]
struct Settings {
    max_age: bool,
    cull_users: bool,
    cull_admin_users: bool,
    remove_named_servers: bool,
    concurrency: usize,
    page_size: u64,
    faults: Option<u64>,
}

fn server_state() -> impl Strategy<Value = ServerState> {
    prop_oneof![
        3 => Just(ServerState::Idle),
        2 => Just(ServerState::Busy),
        1 => Just(ServerState::Old),
        1 => Just(ServerState::Spawning),
        1 => Just(ServerState::Stopping),
    ]
}

fn user_spec() -> impl Strategy<Value = UserSpec> {
    (
        prop::bool::weighted(0.2),
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::option::weighted(0.8, server_state()),
        prop::option::weighted(0.3, server_state()),
    )
        .prop_map(
            |(admin, idle, slow_stop, default_server, named_server)| UserSpec {
                admin,
                idle,
                slow_stop,
                default_server,
                named_server,
            },
        )
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        any::<[bool; 4]>(),
        1usize..5,
        prop_oneof![Just(0u64), Just(2), Just(3), Just(7)],
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(flags, concurrency, page_size, faults)| Settings {
            max_age: flags[0],
            cull_users: flags[1],
            cull_admin_users: flags[2],
            remove_named_servers: flags[3],
            concurrency,
            page_size,
            faults,
        })
}

fn user_name(i: usize) -> String {
    format!("user-{i}")
}

fn build(specs: &[UserSpec]) -> Vec<FakeUser> {
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut user = FakeUser::new(&user_name(i))
                .admin(spec.admin)
                .slow_stop(spec.slow_stop)
                .idle_for(if spec.idle { hours(2) } else { secs(60) });
            if let Some(state) = spec.default_server {
                user = user.server(state.server(""));
            }
            if let Some(state) = spec.named_server {
                user = user.server(state.server("lab"));
            }
            user
        })
        .collect()
}

fn check(specs: &[UserSpec], settings: &Settings) -> Result<(), TestCaseError> {
    let mut config = HubConfig::new().users(build(specs));
    if let Some(seed) = settings.faults {
        let menu = [
            FaultAction::error(502, "Bad Gateway"),
            FaultAction::error(503, "Service Unavailable"),
            FaultAction::drop_connection(),
            FaultAction::drop_connection().with_effect(),
            FaultAction::silent_close(),
        ];
        config = config.random_faults(RandomFaults::new(seed, 0.2, menu));
    }
    let hub = start(config);
    let mut args = vec![
        TIMEOUT_1H.to_owned(),
        FAST_RETRIES.to_owned(),
        format!("--concurrency={}", settings.concurrency),
        format!("--api-page-size={}", settings.page_size),
        format!("--cull-users={}", settings.cull_users),
        format!("--cull-admin-users={}", settings.cull_admin_users),
        format!("--remove-named-servers={}", settings.remove_named_servers),
    ];
    if settings.max_age {
        args.push("--max-age=86400".to_owned());
    }
    let out = once(&hub).args(args).run();
    prop_assert!(!out.stderr.contains("panicked"), "{out}");
    let requests = hub.requests();

    // Every server stop: a server the rules allow stopping; never twice.
    let mut answered_stops: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut sent_stops: BTreeMap<(String, String), usize> = BTreeMap::new();
    for request in requests
        .iter()
        .filter(|r| r.kind == RequestKind::StopServer)
    {
        let mut parts = request.path.trim_start_matches("/users/").splitn(2, '/');
        let user = parts.next().unwrap_or_default().to_owned();
        let server = parts
            .next()
            .and_then(|rest| rest.strip_prefix("servers/"))
            .unwrap_or_default()
            .to_owned();
        let index: usize = user.trim_start_matches("user-").parse().unwrap();
        let spec = &specs[index];
        let state = if server.is_empty() {
            spec.default_server
        } else {
            spec.named_server
        };
        prop_assert!(
            state.is_some_and(|s| s.cullable(settings.max_age)),
            "stopped {user}/{server} ({state:?}) under {settings:?}:\n{out}"
        );
        *sent_stops
            .entry((user.clone(), server.clone()))
            .or_default() += 1;
        if matches!(request.outcome, Outcome::Answered(_)) {
            *answered_stops.entry((user, server)).or_default() += 1;
        }
    }
    for (server, n) in &answered_stops {
        prop_assert!(*n <= 1, "{server:?} stopped {n} times:\n{out}");
    }
    if settings.faults.is_none() {
        for (server, n) in &sent_stops {
            prop_assert!(*n <= 1, "{server:?} sent {n} stops without faults:\n{out}");
        }
    }

    // Every user deletion: allowed, and only once their servers stopped.
    for (at, request) in requests.iter().enumerate() {
        if request.kind != RequestKind::DeleteUser {
            continue;
        }
        let user = request.path.trim_start_matches("/users/");
        let index: usize = user.trim_start_matches("user-").parse().unwrap();
        let spec = &specs[index];
        prop_assert!(settings.cull_users, "{user} deleted without --cull-users");
        prop_assert!(
            settings.cull_admin_users || !spec.admin,
            "admin {user} deleted under --cull-admin-users=false:\n{out}"
        );
        for (server, state) in [("", spec.default_server), ("lab", spec.named_server)] {
            let Some(state) = state else { continue };
            let path = if server.is_empty() {
                format!("/users/{user}/server")
            } else {
                format!("/users/{user}/servers/{server}")
            };
            // 204: stopped; 404: no such (named) server any more, as
            // when a lost answer's retry finds it removed.
            let confirmed = requests[..at]
                .iter()
                .any(|r| r.path == path && matches!(r.outcome, Outcome::Answered(204 | 404)));
            prop_assert!(
                confirmed,
                "{user} deleted though {path} ({state:?}) was not confirmed stopped:\n{out}"
            );
        }
    }

    prop_assert!(
        hub.max_in_flight() <= settings.concurrency,
        "{} requests in flight at --concurrency={}",
        hub.max_in_flight(),
        settings.concurrency
    );
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        // PROPTEST_CASES (and PROPTEST_RNG_SEED, which scripts/test fixes
        // so that CI is reproducible) explore further.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64),
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    })]

    #[test]
    fn the_safety_invariants_hold_on_random_hubs(
        specs in prop::collection::vec(user_spec(), 1..25),
        settings in settings(),
    ) {
        check(&specs, &settings)?;
    }
}
