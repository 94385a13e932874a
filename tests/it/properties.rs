//! The culler's promises over randomized hubs: random populations (idle,
//! busy, too old, pending, slow to stop, admins, named servers, GPU
//! profiles), random settings (user culling and its own timeout, admins,
//! default and named servers, removal, max age, policy rules, concurrency,
//! page size), a hub that answers after a random latency (so requests
//! overlap), and, in most cases, random faults. Each case runs one `--once`
//! pass of the binary against the fake hub and checks, from the hub's own
//! log of every request it received, against an oracle written from the
//! README's rules:
//!
//! Safety, always:
//! - only servers the rules cull are stopped (idle past their timeout,
//!   where the kind of server may be culled or a rule says, or past
//!   `--max-age`), never a pending or not-ready one, never one a rule
//!   exempts;
//! - only users the rules cull are deleted: with `--cull-users`, idle past
//!   the user timeout, not an exempt admin, not exempt by a rule, and only
//!   once each of their servers was seen stopped;
//! - no server is stopped twice in a pass (without faults no DELETE is even
//!   sent twice; with faults a lost answer is legitimately asked again);
//! - never more than `--concurrency` requests in flight.
//!
//! Liveness, when the faults stay within the retry budget (no request
//! meets more faults in a row than `--retries`): every server and user the
//! rules cull is culled, and the pass exits 0. When they may exceed it, a
//! pass that exits 0 must still have culled everything.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use serde_json::json;

use crate::policy_rules::config_file;
use crate::support::fake_hub::{
    ago, FakeHub, FakeServer, FakeUser, FaultAction, HubConfig, Outcome, RandomFaults, RequestKind,
};
use crate::support::scenario::*;

/// `--timeout` of every case: idle servers (2 h) are past it, busy ones
/// (a minute) are not.
const TIMEOUT_SECS: u64 = 3600;

/// How one server starts out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    fn server(self, name: &str, gpu: bool) -> FakeServer {
        let server = FakeServer::new(name);
        let server = match self {
            ServerState::Idle => server.idle_for(hours(2)),
            ServerState::Busy => server.idle_for(secs(60)),
            ServerState::Old => server.idle_for(secs(60)).started(ago(hours(48))),
            ServerState::Spawning => server.idle_for(hours(2)).pending(Some("spawn")),
            ServerState::Stopping => server.idle_for(hours(2)).pending(Some("stop")),
        };
        if gpu {
            server.user_options(json!({"profile": "gpu"}))
        } else {
            server
        }
    }

    /// Seconds since its last activity, and since it started.
    fn clocks(self) -> (u64, u64) {
        match self {
            ServerState::Idle | ServerState::Spawning | ServerState::Stopping => (7200, 7200),
            ServerState::Busy => (60, 60),
            ServerState::Old => (60, 48 * 3600),
        }
    }
}

/// One server of a user.
#[derive(Clone, Copy, Debug)]
struct ServerSpec {
    state: ServerState,
    /// Spawned with `user_options = {"profile": "gpu"}`.
    gpu: bool,
}

/// How one user starts out.
#[derive(Clone, Debug)]
struct UserSpec {
    admin: bool,
    /// Last active two hours ago (else a minute ago).
    idle: bool,
    slow_stop: bool,
    default_server: Option<ServerSpec>,
    named_server: Option<ServerSpec>,
}

impl UserSpec {
    fn servers(&self) -> impl Iterator<Item = (&'static str, ServerSpec)> + '_ {
        [("", self.default_server), ("lab", self.named_server)]
            .into_iter()
            .filter_map(|(name, spec)| Some((name, spec?)))
    }
}

/// The policy rules of a case (written to a config file), tried in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rules {
    None,
    /// `user = "user-1*"`, `never = true`: users 1 and 10-19 are exempt,
    /// servers and user deletion alike.
    ExemptUsers,
    /// `server = "named"`, `timeout = 10800`: idle (2 h) named servers are
    /// kept.
    NamedLater,
    /// `user_options = { profile = "gpu" }`, `timeout = 30`: busy (a
    /// minute) GPU servers are culled, whatever the kind switches say.
    GpuFast,
    /// All three, in that order.
    All,
}

impl Rules {
    fn toml(self) -> String {
        let exempt = "[[rules]]\nuser = \"user-1*\"\nnever = true\n";
        let named = "[[rules]]\nserver = \"named\"\ntimeout = 10800\n";
        let gpu = "[[rules]]\nuser_options = { profile = \"gpu\" }\ntimeout = 30\n";
        match self {
            Rules::None => String::new(),
            Rules::ExemptUsers => exempt.to_owned(),
            Rules::NamedLater => named.to_owned(),
            Rules::GpuFast => gpu.to_owned(),
            Rules::All => format!("{exempt}\n{named}\n{gpu}"),
        }
    }

    fn exempt(self, user: &str) -> bool {
        matches!(self, Rules::ExemptUsers | Rules::All) && user.starts_with("user-1")
    }

    /// The timeout a server rule sets, if one matches.
    fn server_timeout(self, named: bool, gpu: bool) -> Option<u64> {
        let named_later = matches!(self, Rules::NamedLater | Rules::All) && named;
        let gpu_fast = matches!(self, Rules::GpuFast | Rules::All) && gpu;
        if named_later {
            Some(10800)
        } else if gpu_fast {
            Some(30)
        } else {
            None
        }
    }
}

/// Faults of a case: a seeded plan, the retries allowed, and the most
/// faults one request may meet in a row.
#[derive(Clone, Copy, Debug)]
struct Faults {
    seed: u64,
    retries: u32,
    in_a_row: usize,
}

impl Faults {
    /// Whether every request gets through within its retries.
    fn within_budget(self) -> bool {
        self.in_a_row <= self.retries as usize
    }
}

/// The settings of one pass.
#[derive(Clone, Debug)]
struct Settings {
    max_age: bool,
    cull_users: bool,
    /// `--cull-users-timeout`: `None` is `--timeout`.
    user_timeout: Option<u64>,
    cull_admin_users: bool,
    cull_default_servers: bool,
    cull_named_servers: bool,
    remove_named_servers: bool,
    rules: Rules,
    concurrency: usize,
    page_size: u64,
    /// The hub's answer time, in milliseconds (requests overlap).
    latency_ms: u64,
    faults: Option<Faults>,
}

impl Settings {
    /// Whether the rules stop this server.
    fn culls_server(&self, user: &str, named: bool, spec: ServerSpec) -> bool {
        if matches!(spec.state, ServerState::Spawning | ServerState::Stopping) {
            return false;
        }
        if self.rules.exempt(user) {
            return false;
        }
        let (idle, age) = spec.state.clocks();
        let kind_allowed = if named {
            self.cull_named_servers
        } else {
            self.cull_default_servers
        };
        let timeout = self
            .rules
            .server_timeout(named, spec.gpu)
            .or(kind_allowed.then_some(TIMEOUT_SECS));
        timeout.is_some_and(|t| idle >= t) || (self.max_age && age >= 86400)
    }

    /// Whether the rules delete this user (after a pass that stopped what
    /// they stop).
    fn culls_user(&self, name: &str, spec: &UserSpec) -> bool {
        if !self.cull_users || (spec.admin && !self.cull_admin_users) || self.rules.exempt(name) {
            return false;
        }
        // Each server stopped in this pass, and for good (not still
        // stopping).
        let all_stopped = spec
            .servers()
            .all(|(server, s)| !spec.slow_stop && self.culls_server(name, !server.is_empty(), s));
        all_stopped && user_idle_secs(spec) >= self.user_timeout.unwrap_or(TIMEOUT_SECS)
    }
}

fn user_idle_secs(spec: &UserSpec) -> u64 {
    if spec.idle {
        7200
    } else {
        60
    }
}

fn server_spec() -> impl Strategy<Value = ServerSpec> {
    (
        prop_oneof![
            3 => Just(ServerState::Idle),
            2 => Just(ServerState::Busy),
            1 => Just(ServerState::Old),
            1 => Just(ServerState::Spawning),
            1 => Just(ServerState::Stopping),
        ],
        prop::bool::weighted(0.3),
    )
        .prop_map(|(state, gpu)| ServerSpec { state, gpu })
}

fn user_spec() -> impl Strategy<Value = UserSpec> {
    (
        prop::bool::weighted(0.2),
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::option::weighted(0.8, server_spec()),
        prop::option::weighted(0.3, server_spec()),
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

fn rules() -> impl Strategy<Value = Rules> {
    prop_oneof![
        3 => Just(Rules::None),
        1 => Just(Rules::ExemptUsers),
        1 => Just(Rules::NamedLater),
        1 => Just(Rules::GpuFast),
        1 => Just(Rules::All),
    ]
}

fn faults() -> impl Strategy<Value = Option<Faults>> {
    prop::option::weighted(
        0.75,
        (any::<u64>(), prop_oneof![Just(1u32), Just(5)], 1usize..4).prop_map(
            |(seed, retries, in_a_row)| Faults {
                seed,
                retries,
                in_a_row,
            },
        ),
    )
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        any::<[bool; 4]>(),
        (prop::bool::weighted(0.8), prop::bool::weighted(0.8)),
        prop_oneof![Just(None), Just(Some(1800u64)), Just(Some(3 * 3600))],
        rules(),
        (
            1usize..5,
            prop_oneof![Just(0u64), Just(2), Just(3), Just(7)],
        ),
        0u64..4,
        faults(),
    )
        .prop_map(
            |(
                flags,
                (cull_default_servers, cull_named_servers),
                user_timeout,
                rules,
                (concurrency, page_size),
                latency_ms,
                faults,
            )| Settings {
                max_age: flags[0],
                cull_users: flags[1],
                user_timeout,
                cull_admin_users: flags[2],
                cull_default_servers,
                cull_named_servers,
                remove_named_servers: flags[3],
                rules,
                concurrency,
                page_size,
                latency_ms,
                faults,
            },
        )
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
                .idle_for(secs(user_idle_secs(spec)));
            for (name, server) in spec.servers() {
                user = user.server(server.state.server(name, server.gpu));
            }
            user
        })
        .collect()
}

/// The user index and server name of a request path under `/users/`.
fn target(path: &str) -> (usize, String) {
    let mut parts = path.trim_start_matches("/users/").splitn(2, '/');
    let user = parts.next().unwrap_or_default();
    let server = parts
        .next()
        .and_then(|rest| rest.strip_prefix("servers/"))
        .unwrap_or_default()
        .to_owned();
    let index = user.trim_start_matches("user-").parse().expect("user-N");
    (index, server)
}

/// Runs one pass of `settings` over `specs` and returns the hub and the
/// culler's output.
fn pass(
    specs: &[UserSpec],
    settings: &Settings,
) -> (FakeHub, crate::support::culler::CullerOutput) {
    let mut config = HubConfig::new()
        .users(build(specs))
        .latency(millis(settings.latency_ms));
    if let Some(faults) = settings.faults {
        let menu = [
            FaultAction::error(502, "Bad Gateway"),
            FaultAction::error(503, "Service Unavailable"),
            FaultAction::drop_connection(),
            FaultAction::drop_connection().with_effect(),
            FaultAction::silent_close(),
        ];
        config = config
            .random_faults(RandomFaults::new(faults.seed, 0.2, menu).max_in_a_row(faults.in_a_row));
    }
    let hub = start(config);
    let mut args = vec![
        format!("--timeout={TIMEOUT_SECS}"),
        FAST_RETRIES.to_owned(),
        format!("--concurrency={}", settings.concurrency),
        format!("--api-page-size={}", settings.page_size),
        format!("--cull-users={}", settings.cull_users),
        format!("--cull-admin-users={}", settings.cull_admin_users),
        format!("--cull-default-servers={}", settings.cull_default_servers),
        format!("--cull-named-servers={}", settings.cull_named_servers),
        format!("--remove-named-servers={}", settings.remove_named_servers),
    ];
    if settings.max_age {
        args.push("--max-age=86400".to_owned());
    }
    if let Some(secs) = settings.user_timeout {
        args.push(format!("--cull-users-timeout={secs}"));
    }
    if let Some(faults) = settings.faults {
        args.push(format!("--retries={}", faults.retries));
    }
    let _rules_dir = (settings.rules != Rules::None).then(|| {
        let (dir, path) = config_file(&settings.rules.toml());
        args.push(format!("--config={}", path.display()));
        dir
    });
    let out = once(&hub).args(args).deadline(secs(120)).run();
    (hub, out)
}

fn check(specs: &[UserSpec], settings: &Settings) -> Result<(), TestCaseError> {
    let (hub, out) = pass(specs, settings);
    prop_assert!(!out.stderr.contains("panicked"), "{out}");
    let requests = hub.requests();

    // Every server stop: a server the rules stop; never twice.
    let mut answered_stops: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut sent_stops: BTreeSet<(usize, String)> = BTreeSet::new();
    for request in requests
        .iter()
        .filter(|r| r.kind == RequestKind::StopServer)
    {
        let (index, server) = target(&request.path);
        let spec = &specs[index];
        let named = !server.is_empty();
        let state = if named {
            spec.named_server
        } else {
            spec.default_server
        };
        prop_assert!(
            state.is_some_and(|s| settings.culls_server(&user_name(index), named, s)),
            "stopped user-{index}/{server} ({state:?}) under {settings:?}:\n{out}"
        );
        let first_sent = sent_stops.insert((index, server.clone()));
        prop_assert!(
            first_sent || settings.faults.is_some(),
            "user-{index}/{server} sent twice without faults:\n{out}"
        );
        if matches!(request.outcome, Outcome::Answered(_)) {
            let first_answered = answered_stops.insert((index, server.clone()));
            prop_assert!(
                first_answered,
                "user-{index}/{server} stopped twice:\n{out}"
            );
        }
    }

    // Every user deletion: one the rules delete, once their servers stopped.
    let mut deleted_users = BTreeSet::new();
    for (at, request) in requests.iter().enumerate() {
        if request.kind != RequestKind::DeleteUser {
            continue;
        }
        let (index, _) = target(&request.path);
        let name = user_name(index);
        let spec = &specs[index];
        prop_assert!(
            settings.culls_user(&name, spec),
            "{name} ({spec:?}) deleted under {settings:?}:\n{out}"
        );
        prop_assert!(
            user_idle_secs(spec) >= settings.user_timeout.unwrap_or(TIMEOUT_SECS),
            "{name} deleted before the user timeout:\n{out}"
        );
        for (server, _) in spec.servers() {
            let path = if server.is_empty() {
                format!("/users/{name}/server")
            } else {
                format!("/users/{name}/servers/{server}")
            };
            // 204: stopped; 404: no such (named) server any more, as
            // when a lost answer's retry finds it removed.
            let confirmed = requests[..at]
                .iter()
                .any(|r| r.path == path && matches!(r.outcome, Outcome::Answered(204 | 404)));
            prop_assert!(
                confirmed,
                "{name} deleted though {path} was not confirmed stopped:\n{out}"
            );
        }
        if matches!(request.outcome, Outcome::Answered(204 | 404)) {
            deleted_users.insert(index);
        }
    }

    prop_assert!(
        hub.max_in_flight() <= settings.concurrency,
        "{} requests in flight at --concurrency={}",
        hub.max_in_flight(),
        settings.concurrency
    );

    // Liveness: within the retry budget everything is culled and the pass
    // succeeds; beyond it, a pass that says it succeeded culled everything.
    let within_budget = settings.faults.is_none_or(Faults::within_budget);
    if within_budget {
        prop_assert!(
            out.success(),
            "faults within the budget failed the pass:\n{out}"
        );
    }
    if out.success() {
        for (index, spec) in specs.iter().enumerate() {
            let name = user_name(index);
            for (server, s) in spec.servers() {
                if settings.culls_server(&name, !server.is_empty(), s) {
                    prop_assert!(
                        answered_stops.contains(&(index, server.to_owned())),
                        "{name}/{server} ({s:?}) not culled by a pass that succeeded under {settings:?}:\n{out}"
                    );
                }
            }
            if settings.culls_user(&name, spec) {
                prop_assert!(
                    deleted_users.contains(&index),
                    "{name} ({spec:?}) not deleted by a pass that succeeded under {settings:?}:\n{out}"
                );
            }
        }
    } else {
        prop_assert!(
            !error_lines(&out).is_empty(),
            "a failed pass says why:\n{out}"
        );
    }
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
    fn the_culler_keeps_its_promises_on_random_hubs(
        specs in prop::collection::vec(user_spec(), 1..25),
        settings in settings(),
    ) {
        check(&specs, &settings)?;
    }
}

/// The oracle itself, on cases written out by hand: a property test is
/// only as good as what it compares with.
#[test]
fn the_oracle_says_what_the_readme_says() {
    let base = Settings {
        max_age: false,
        cull_users: true,
        user_timeout: None,
        cull_admin_users: true,
        cull_default_servers: true,
        cull_named_servers: true,
        remove_named_servers: false,
        rules: Rules::None,
        concurrency: 1,
        page_size: 0,
        latency_ms: 0,
        faults: None,
    };
    let server = |state, gpu| ServerSpec { state, gpu };
    let idle = server(ServerState::Idle, false);
    let busy_gpu = server(ServerState::Busy, true);
    let old = server(ServerState::Old, false);
    assert!(base.culls_server("user-2", false, idle));
    assert!(!base.culls_server("user-2", false, server(ServerState::Spawning, false)));
    assert!(!base.culls_server("user-2", false, old));
    let aged = Settings {
        max_age: true,
        cull_default_servers: false,
        ..base.clone()
    };
    assert!(
        aged.culls_server("user-2", false, old),
        "max-age whatever the kind"
    );
    assert!(!aged.culls_server("user-2", false, idle));
    let ruled = Settings {
        rules: Rules::All,
        cull_default_servers: false,
        ..base.clone()
    };
    assert!(
        ruled.culls_server("user-2", false, busy_gpu),
        "the rule's timeout"
    );
    assert!(
        !ruled.culls_server("user-12", false, busy_gpu),
        "exempt user"
    );
    assert!(!ruled.culls_server("user-2", true, idle), "named later");
    assert!(
        !ruled.culls_server("user-2", true, busy_gpu),
        "the first rule decides"
    );

    let user = |idle, slow_stop, default_server| UserSpec {
        admin: false,
        idle,
        slow_stop,
        default_server,
        named_server: None,
    };
    assert!(base.culls_user("user-2", &user(true, false, Some(idle))));
    assert!(
        !base.culls_user("user-2", &user(true, true, Some(idle))),
        "still stopping"
    );
    assert!(
        !base.culls_user("user-2", &user(false, false, None)),
        "recent"
    );
    assert!(base.culls_user("user-2", &user(true, false, None)));
    let later = Settings {
        user_timeout: Some(3 * 3600),
        ..base.clone()
    };
    assert!(!later.culls_user("user-2", &user(true, false, None)));
    assert!(!ruled.culls_user("user-13", &user(true, false, None)));
}
