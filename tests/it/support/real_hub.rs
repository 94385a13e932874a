//! A real JupyterHub for end-to-end tests.
//!
//! The fake hub proves that the culler speaks the API as we understand it; this
//! launcher proves that our understanding matches a real JupyterHub: scopes,
//! pagination, percent-encoding, internal SSL, groups and `user_options` as
//! policy rules see them, and being run as a hub-managed service (with a
//! `url` too, its `/metrics` reached through the hub's proxy). Each
//! [`RealHub`] lives in its own temporary directory with its own loopback
//! ports, so tests can run in parallel threads. A test can also stop
//! the hub and start it again on the same directory, database, config, ports
//! and tokens ([`RealHub::stop_hub`], [`RealHub::start_hub`]).
//!
//! The hub and `configurable-http-proxy` are found through `JUPYTERHUB_BIN_DIRS`
//! (a `PATH`-style list, set by `scripts/test`) and then `PATH`. A failing
//! test keeps its directory (the path and the log's tail are printed);
//! `REAL_HUB_KEEP=1` keeps every hub's directory.

use std::collections::HashSet;
use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::culler::{Culler, CullerOutput, CULLER_BIN};
use super::process::Process;

/// The scopes the culler documents as sufficient for culling servers.
pub const CULLER_SCOPES: &[&str] = &[
    "list:users",
    "read:users:activity",
    "read:servers",
    "delete:servers",
];

/// The extra scope the culler documents for `--cull-users`.
pub const CULLER_USER_SCOPE: &str = "admin:users";

/// How long a hub may take to answer `GET /hub/api/` after launch. Generous
/// because several hubs may start at once on a two-core CI machine.
const HUB_START_DEADLINE: Duration = Duration::from_secs(90);

/// How many times a hub is launched when a chosen port was taken meanwhile.
const START_ATTEMPTS: u32 = 3;

/// How long a server may take to become ready (a real jupyter-server takes
/// a few seconds; under load more).
const SPAWN_DEADLINE: Duration = Duration::from_secs(120);

/// How long one `--once` culler run may take before the test gives up.
const CULLER_DEADLINE: Duration = Duration::from_secs(120);

/// How long the hub gets to shut down (and stop its proxy, services and
/// servers) after SIGTERM before everything of it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// How often state is polled while awaiting an event with a deadline.
const POLL: Duration = Duration::from_millis(100);

/// Which spawner the hub uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnerKind {
    /// A Spawner subclass defined in the config: `start()` returns the
    /// address of one tiny HTTP server thread shared by all servers, so
    /// hundreds of "running" servers cost nothing.
    Light,
    /// The real `jupyterhub-singleuser` (jupyter-server) through
    /// `SimpleLocalProcessSpawner`: slower, but it is what users run.
    JupyterServer,
}

/// What kind of hub a test needs. `Default` is the cheapest hub that can
/// cull default servers with the documented minimal scopes.
#[derive(Clone, Debug)]
pub struct HubOptions {
    /// `c.JupyterHub.allow_named_servers`.
    pub allow_named_servers: bool,
    /// `c.JupyterHub.api_page_default_limit` (hub default 50).
    pub api_page_default_limit: Option<u32>,
    /// `c.JupyterHub.api_page_max_limit` (hub default 200).
    pub api_page_max_limit: Option<u32>,
    /// Which spawner starts servers.
    pub spawner: SpawnerKind,
    /// Seconds the light spawner's `stop()` takes, to provoke the hub's
    /// "slow to stop" 202 (see `slow_stop_timeout`).
    pub light_stop_seconds: f64,
    /// The hub's `slow_stop_timeout` (seconds, default 10): how long a
    /// `DELETE` of a server waits before answering 202 "still stopping".
    pub slow_stop_timeout: Option<f64>,
    /// Grant the culler's role `admin:users` too, as `--cull-users` needs.
    pub culler_may_delete_users: bool,
    /// When set, the hub runs the culler itself as a managed service
    /// (`c.JupyterHub.services[].command`) with these arguments; the hub
    /// provides `JUPYTERHUB_API_TOKEN` and `JUPYTERHUB_API_URL`.
    pub managed_culler_args: Option<Vec<String>>,
    /// `c.JupyterHub.internal_ssl`: the hub API then speaks only HTTPS with
    /// client certificates.
    pub internal_ssl: bool,
    /// Scopes the culler's role holds beyond [`CULLER_SCOPES`] (and
    /// [`CULLER_USER_SCOPE`]), e.g. `read:users:groups` for a policy rule
    /// on groups.
    pub culler_extra_scopes: Vec<String>,
    /// More services that hold only a token, each with a role of its own
    /// (e.g. a culler's role without a scope a rule needs); their tokens are
    /// [`RealHub::service_token`].
    pub extra_services: Vec<ExtraService>,
    /// With [`HubOptions::managed_culler_args`]: give the culler service a
    /// `url`, `http://127.0.0.1:<free port>`. JupyterHub then sets
    /// `JUPYTERHUB_SERVICE_URL` and `JUPYTERHUB_SERVICE_PREFIX`
    /// (`/services/culler/`), routes that prefix on its proxy to the url,
    /// once the service answers HTTP there: at start the hub waits for that
    /// (any status below 500; up to the service's `timeout`, 30 s), and
    /// JupyterHub 6 exits when a managed service does not answer in time or
    /// exits first. [`RealHub::start`] returns once the proxy routes the
    /// prefix.
    pub managed_culler_url: bool,
    /// `c.JupyterHub.cleanup_servers` (hub default true). When false, the
    /// hub leaves single-user servers running when it stops, and a
    /// restarted hub ([`RealHub::start_hub`]) finds them still running:
    /// the light spawner's servers then answer from the test process, so
    /// that they outlive the hub process too.
    pub cleanup_servers: bool,
    /// A Python environment's `bin/` to run the hub from, looked in before
    /// `JUPYTERHUB_BIN_DIRS` and `PATH` (and first on the hub's `PATH`, which
    /// its managed services inherit): a fresh environment with the wheel
    /// installed, say.
    pub python_bin: Option<PathBuf>,
    /// With [`HubOptions::managed_culler_args`]: the program the hub runs,
    /// as written in `c.JupyterHub.services` (a bare name is looked up on
    /// the hub's `PATH`, as operators write it). `None` runs the culler
    /// this test build built, by its absolute path.
    pub managed_culler_program: Option<String>,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            allow_named_servers: false,
            api_page_default_limit: None,
            api_page_max_limit: None,
            spawner: SpawnerKind::Light,
            light_stop_seconds: 0.0,
            slow_stop_timeout: None,
            culler_may_delete_users: false,
            managed_culler_args: None,
            internal_ssl: false,
            culler_extra_scopes: Vec::new(),
            extra_services: Vec::new(),
            managed_culler_url: false,
            cleanup_servers: true,
            python_bin: None,
            managed_culler_program: None,
        }
    }
}

/// The name of the culler's service in every test hub: a managed culler
/// with a `url` is reached through the proxy at `/services/culler/`.
pub const CULLER_SERVICE: &str = "culler";

/// A service that holds an API token and a role with `scopes`, nothing
/// else ([`HubOptions::extra_services`]).
#[derive(Clone, Debug)]
pub struct ExtraService {
    /// Its name (also its role's name, prefixed with `role-`).
    pub name: String,
    /// Its role's scopes.
    pub scopes: Vec<String>,
}

impl ExtraService {
    /// A service `name` with a role holding `scopes`.
    pub fn new(name: &str, scopes: &[&str]) -> ExtraService {
        ExtraService {
            name: name.to_string(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// A running JupyterHub (with its proxy) on loopback, killed on drop.
pub struct RealHub {
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    bins: BinDirs,
    config_path: PathBuf,
    /// The current (or last) hub process.
    child: Child,
    /// False between [`RealHub::stop_hub`] and [`RealHub::start_hub`]:
    /// `child` has exited and been reaped.
    hub_running: bool,
    /// Where the current hub process's output starts in the log.
    launch_log_offset: usize,
    public_port: u16,
    hub_port: u16,
    proxy_api_port: u16,
    api_url: String,
    admin_token: String,
    culler_token: String,
    /// The tokens of [`HubOptions::extra_services`], by name.
    service_tokens: Vec<(String, String)>,
    /// Whether the hub runs the culler ([`HubOptions::managed_culler_args`]).
    managed_culler: bool,
    /// The managed culler's `url` ([`HubOptions::managed_culler_url`]).
    managed_culler_url: Option<String>,
    certs_dir: Option<PathBuf>,
    agent: ureq::Agent,
    log_path: PathBuf,
    culler_runs: AtomicU64,
    /// The light spawner's servers when they must outlive the hub.
    _stand_in: Option<StandInServer>,
}

impl RealHub {
    /// Writes a `jupyterhub_config.py` for `options` into a fresh temporary
    /// directory, launches `jupyterhub` in its own process group and waits
    /// (with a deadline) until its API answers.
    ///
    /// The ports are free when chosen but another process may take one
    /// before the hub binds it; the hub (or its proxy) then exits with
    /// "address already in use", and the hub is started again on new ports.
    pub fn start(options: HubOptions) -> RealHub {
        let bins = BinDirs::find(options.python_bin.as_deref());
        let mut attempt = 1;
        loop {
            let mut hub = Self::launch(&options, &bins);
            match hub.await_ready() {
                Ok(()) => return hub,
                Err(why) if attempt < START_ATTEMPTS && hub.port_was_taken() => {
                    eprintln!("real hub: a port was taken ({why}); starting again on new ports");
                    attempt += 1;
                }
                Err(why) => hub.fail(why),
            }
        }
    }

    /// Writes the config and launches the hub, without waiting for it.
    fn launch(options: &HubOptions, bins: &BinDirs) -> RealHub {
        let dir = tempfile::Builder::new()
            .prefix("real-hub-")
            .tempdir()
            .expect("create a temporary directory for the hub");
        let dir_path = dir.path().to_path_buf();
        let [public_port, hub_port, proxy_api_port] = free_ports();
        let admin_token = random_token();
        let culler_token = random_token();
        let service_tokens: Vec<(String, String)> = options
            .extra_services
            .iter()
            .map(|service| (service.name.clone(), random_token()))
            .collect();
        // Free when chosen; the culler binds it as it starts (a port taken
        // meanwhile makes it exit "already in use", and the hub with it:
        // `start` then tries new ports).
        let managed_culler_url =
            (options.managed_culler_args.is_some() && options.managed_culler_url).then(|| {
                let listener = claim_listeners(1).pop().expect("one listener");
                let port = listener.local_addr().expect("local address").port();
                format!("http://127.0.0.1:{port}")
            });
        let certs_dir = options.internal_ssl.then(|| dir_path.join("internal-ssl"));
        let stand_in = (!options.cleanup_servers && options.spawner == SpawnerKind::Light)
            .then(StandInServer::start);
        let config = hub_config(&ConfigInputs {
            options,
            dir: &dir_path,
            bins,
            public_port,
            hub_port,
            proxy_api_port,
            admin_token: &admin_token,
            culler_token: &culler_token,
            service_tokens: &service_tokens,
            managed_culler_url: managed_culler_url.as_deref(),
            light_server_url: stand_in.as_ref().map(StandInServer::url),
        });
        let config_path = dir_path.join("jupyterhub_config.py");
        fs::write(&config_path, config).expect("write jupyterhub_config.py");

        let log_path = dir_path.join("hub.log");
        let child = spawn_hub(bins, &dir_path, &config_path, &log_path);

        let scheme = if options.internal_ssl {
            "https"
        } else {
            "http"
        };
        let api_url = format!("{scheme}://127.0.0.1:{hub_port}/hub/api");
        RealHub {
            dir: Some(dir),
            dir_path,
            bins: bins.clone(),
            config_path,
            child,
            hub_running: true,
            launch_log_offset: 0,
            public_port,
            hub_port,
            proxy_api_port,
            api_url,
            admin_token,
            culler_token,
            service_tokens,
            managed_culler: options.managed_culler_args.is_some(),
            managed_culler_url,
            certs_dir,
            agent: plain_agent(),
            log_path,
            culler_runs: AtomicU64::new(0),
            _stand_in: stand_in,
        }
    }

    /// Whether the current hub process (or its proxy) failed to bind a port
    /// ("address already in use").
    fn port_was_taken(&self) -> bool {
        self.log_since(self.launch_log_offset)
            .to_lowercase()
            .contains("already in use")
    }

    /// Polls `GET /hub/api/` until it answers 200, failing early when the
    /// hub process dies. Under internal SSL the client certificates only
    /// exist once the hub has written them, so the agent is built here.
    fn await_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let mut agent_ready = self.certs_dir.is_none();
        let mut last_error = String::from("no answer yet");
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the hub process") {
                return Err(format!("the hub exited during start-up with {status}"));
            }
            // The hub waits on a proxy that could not bind its port.
            if self.port_was_taken() {
                return Err("a port is already in use".to_string());
            }
            if !agent_ready {
                match tls_agent(self.certs_dir.as_deref().expect("internal SSL")) {
                    Ok(agent) => {
                        self.agent = agent;
                        agent_ready = true;
                    }
                    Err(e) => last_error = format!("client certificates not usable yet: {e}"),
                }
            }
            if agent_ready {
                let url = format!("{}/", self.api_url);
                match self.agent.get(&url).call() {
                    Ok(response) if response.status() == 200 => match self.service_unrouted() {
                        None => return Ok(()),
                        Some(why) => last_error = why,
                    },
                    Ok(response) => last_error = format!("GET {url}: status {}", response.status()),
                    Err(e) => last_error = format!("GET {url}: {e}"),
                }
            }
            if started.elapsed() > HUB_START_DEADLINE {
                return Err(format!(
                    "the hub was not ready within {HUB_START_DEADLINE:?}: {last_error}"
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Why a hub whose managed culler has a `url` is not ready yet, although
    /// its API answers: JupyterHub starts its services after its API
    /// listens, waits for each service with a `url` to answer HTTP there
    /// (the hub exits if one does not, or exits first) and only then routes
    /// `/services/NAME/` on its proxy. `None` once routed, or when there is
    /// no such service.
    fn service_unrouted(&self) -> Option<String> {
        let url = self.managed_culler_url.as_deref()?;
        let prefix = format!("/services/{CULLER_SERVICE}/");
        match self.try_proxy_route_target(&prefix) {
            Ok(Some(target)) if target == url => None,
            Ok(target) => Some(format!(
                "the hub's API answers, but its proxy routes {prefix} to {target:?}, \
                 not yet to the culler's url {url}"
            )),
            Err(e) => Some(e),
        }
    }

    /// Where the hub's proxy sends `routespec` (e.g. `/services/culler/`,
    /// `/user/alice/`), as the hub's `GET /proxy` tells; `None` without
    /// such a route.
    #[track_caller]
    pub fn proxy_route_target(&self, routespec: &str) -> Option<String> {
        self.try_proxy_route_target(routespec)
            .unwrap_or_else(|e| self.fail(e))
    }

    fn try_proxy_route_target(&self, routespec: &str) -> Result<Option<String>, String> {
        let url = format!("{}/proxy", self.api_url);
        let routes: Value = self
            .agent
            .get(&url)
            .set("Authorization", &format!("token {}", self.admin_token))
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?
            .into_json()
            .map_err(|e| format!("GET {url}: bad JSON: {e}"))?;
        // Paginated when asked to be (as `request` does); a bare object
        // from older hubs.
        let items = routes.get("items").unwrap_or(&routes);
        Ok(items[routespec]["target"].as_str().map(str::to_string))
    }

    /// The hub API base URL, e.g. `http://127.0.0.1:PORT/hub/api` (https
    /// under internal SSL), without a trailing slash.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The port of the hub's own HTTP server (the API).
    pub fn hub_port(&self) -> u16 {
        self.hub_port
    }

    /// The proxy's public URL, e.g. `http://127.0.0.1:PORT`, without a
    /// trailing slash.
    pub fn public_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.public_port)
    }

    /// The Python of the environment the hub runs from (beside
    /// `jupyterhub`): it has jupyter-server, and so tornado.
    pub fn python(&self) -> PathBuf {
        self.bins.jupyterhub.with_file_name("python")
    }

    /// The token of the `culler` service, whose role holds only the
    /// documented scopes.
    pub fn culler_token(&self) -> &str {
        &self.culler_token
    }

    /// The token of the test's own admin service, for set-up calls.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The token of one of [`HubOptions::extra_services`].
    #[track_caller]
    pub fn service_token(&self, name: &str) -> &str {
        self.service_tokens
            .iter()
            .find(|(service, _)| service == name)
            .map(|(_, token)| token.as_str())
            .unwrap_or_else(|| self.fail(format!("no extra service {name:?} in this hub")))
    }

    /// The culler the hub runs as a managed service (this test build's
    /// binary, [`HubOptions::managed_culler_args`] without
    /// `managed_culler_program`), once the hub has started it.
    pub fn managed_culler_process(&self) -> Option<Process> {
        Process::children_running(self.child.id(), Path::new(CULLER_BIN))
            .into_iter()
            .next()
    }

    /// The managed culler's `url` (`http://127.0.0.1:PORT`), when it has
    /// one ([`HubOptions::managed_culler_url`]).
    pub fn managed_culler_url(&self) -> Option<&str> {
        self.managed_culler_url.as_deref()
    }

    /// `GET {public_url}{path}` through the hub's proxy, as a browser or a
    /// Prometheus outside the hub would send it: no token, no redirects
    /// followed. Returns status and body; only transport errors panic.
    #[track_caller]
    pub fn public_get(&self, path: &str) -> (u16, String) {
        self.public_get_as(path, None)
    }

    /// The same, with `Authorization: token T` when given a token.
    pub fn public_get_as(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let url = format!("{}{path}", self.public_url());
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .redirects(0)
            .build();
        let mut request = agent.get(&url);
        if let Some(token) = token {
            request = request.set("Authorization", &format!("token {token}"));
        }
        let response = match request.call() {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(e) => self.fail(format!("GET {url} failed: {e}")),
        };
        let status = response.status();
        let text = response
            .into_string()
            .unwrap_or_else(|e| self.fail(format!("GET {url}: unreadable body: {e}")));
        (status, text)
    }

    /// The lines of the hub log that a managed culler wrote (it logs to the
    /// hub's stderr): the hub's own lines start with `[`, the proxy's with
    /// a time of day and `[ConfigProxy]`, the culler's with a date (`Dec 01
    /// 15:02:11.410 INFO ...`).
    pub fn managed_culler_log(&self) -> String {
        let mut lines: Vec<&str> = Vec::new();
        let log = self.log();
        for line in log.lines() {
            let mut words = line.split(' ');
            let month = words.next().unwrap_or_default();
            let day = words.next().unwrap_or_default();
            let is_culler = month.len() == 3
                && month.chars().all(|c| c.is_ascii_alphabetic())
                && day.len() == 2
                && day.chars().all(|c| c.is_ascii_digit());
            if is_culler {
                lines.push(line);
            }
        }
        lines.join("\n")
    }

    /// `c.JupyterHub.internal_certs_location` when internal SSL is on: what
    /// the culler's `--internal-certs-location` must point at.
    pub fn certs_dir(&self) -> Option<&Path> {
        self.certs_dir.as_deref()
    }

    /// The temporary directory holding config, database, logs and certs.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Where the hub's stdout and stderr go (managed services log there
    /// too).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The whole hub log so far (of every start of the hub).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The hub log from byte `offset` on (e.g. a length of [`RealHub::log`]
    /// taken earlier).
    pub fn log_since(&self, offset: usize) -> String {
        let bytes = fs::read(&self.log_path).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(offset..).unwrap_or_default()).into_owned()
    }

    /// The last `lines` lines of the hub log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    /// Panics with `msg`, the log's path and its tail: the hub log is
    /// nearly always what explains a failure here. A hub that runs the
    /// culler adds the culler's last lines (its stderr is in the hub log,
    /// interleaved with the hub's).
    #[track_caller]
    pub fn fail(&self, msg: impl Display) -> ! {
        let culler = if self.managed_culler {
            format!(
                "\n--- last lines of the managed culler (from the hub log) ---\n{}",
                tail(&self.managed_culler_log(), 40)
            )
        } else {
            String::new()
        };
        panic!(
            "{msg}\nhub log: {}{culler}\n--- last lines of the hub log ---\n{}",
            self.log_path.display(),
            self.log_tail(40)
        )
    }

    /// One request to the hub API as the admin service. `path` is relative
    /// to [`RealHub::api_url`] (e.g. `/users`). Returns status and body;
    /// only transport errors panic.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        self.request_as(&self.admin_token, method, path, body)
    }

    /// Like [`RealHub::request`] with another token, e.g. to check what the
    /// culler's scopes allow.
    pub fn request_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, String) {
        let url = format!("{}{path}", self.api_url);
        let request = self
            .agent
            .request(method, &url)
            .set("Authorization", &format!("token {token}"))
            .set("Accept", "application/jupyterhub-pagination+json");
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(e) => self.fail(format!("{method} {url} failed: {e}")),
        };
        let status = response.status();
        let text = response
            .into_string()
            .unwrap_or_else(|e| self.fail(format!("{method} {url}: unreadable body: {e}")));
        (status, text)
    }

    /// A request that must answer one of `expected`; returns the body as
    /// JSON (`null` when empty).
    #[track_caller]
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>, expected: &[u16]) -> Value {
        let (status, text) = self.request(method, path, body);
        if !expected.contains(&status) {
            self.fail(format!(
                "{method} {path}: expected status {expected:?}, got {status}: {text}"
            ));
        }
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| self.fail(format!("{method} {path}: bad JSON ({e}): {text}")))
        }
    }

    /// Creates users (`POST /users`).
    #[track_caller]
    pub fn create_users(&self, names: &[&str]) {
        self.api(
            "POST",
            "/users",
            Some(&json!({ "usernames": names })),
            &[201],
        );
    }

    /// Makes an existing user an admin.
    #[track_caller]
    pub fn make_admin(&self, name: &str) {
        let path = format!("/users/{}", encode(name));
        self.api("PATCH", &path, Some(&json!({ "admin": true })), &[200]);
    }

    /// Creates a group (`POST /groups/{name}`) and adds `users` to it
    /// (`POST /groups/{name}/users`).
    #[track_caller]
    pub fn create_group(&self, name: &str, users: &[&str]) {
        let path = format!("/groups/{}", encode(name));
        self.api("POST", &path, None, &[201]);
        self.api(
            "POST",
            &format!("{path}/users"),
            Some(&json!({ "users": users })),
            &[200],
        );
    }

    /// Starts a user's server (`""` is the default server) and waits until
    /// the hub reports it ready.
    #[track_caller]
    pub fn start_server(&self, user: &str, server: &str) {
        self.spawn_server(user, server, None);
    }

    /// Like [`RealHub::start_server`], with a request body: the hub keeps
    /// it as the spawner's `user_options` (what a user picks in a spawn
    /// form, e.g. `{"profile": "gpu"}`) and shows it in the server model.
    #[track_caller]
    pub fn start_server_with_options(&self, user: &str, server: &str, user_options: &Value) {
        self.spawn_server(user, server, Some(user_options));
    }

    #[track_caller]
    fn spawn_server(&self, user: &str, server: &str, body: Option<&Value>) {
        let path = server_path(user, server);
        let (status, text) = self.request("POST", &path, body);
        match status {
            201 => {}
            202 => self.await_server_ready(user, server),
            _ => self.fail(format!(
                "POST {path}: expected 201 or 202, got {status}: {text}"
            )),
        }
    }

    /// Polls the user model until `server` is ready, failing when the spawn
    /// ends without it or the deadline passes.
    #[track_caller]
    fn await_server_ready(&self, user: &str, server: &str) {
        let started = Instant::now();
        loop {
            let model = self
                .user(user)
                .unwrap_or_else(|| self.fail(format!("user {user} vanished while spawning")));
            match model["servers"].get(server) {
                Some(s) if s["ready"] == json!(true) => return,
                Some(s) if s["pending"].is_string() => {}
                other => self.fail(format!(
                    "server {user:?}/{server:?} failed to start: {}",
                    other.cloned().unwrap_or(Value::Null)
                )),
            }
            if started.elapsed() > SPAWN_DEADLINE {
                self.fail(format!(
                    "server {user:?}/{server:?} not ready after {SPAWN_DEADLINE:?}"
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Stops a user's server through the API (`""` is the default server).
    #[track_caller]
    pub fn stop_server(&self, user: &str, server: &str) {
        self.api("DELETE", &server_path(user, server), None, &[202, 204]);
    }

    /// Records activity at `when` for the user and for each of `servers`
    /// (`""` is the default server). The hub keeps the newer timestamp
    /// only, so this can refresh but never age a server.
    #[track_caller]
    pub fn post_activity_at(&self, user: &str, servers: &[&str], when: SystemTime) {
        let ts = iso_utc(when);
        let servers: serde_json::Map<String, Value> = servers
            .iter()
            .map(|s| (s.to_string(), json!({ "last_activity": ts })))
            .collect();
        let body = json!({ "last_activity": ts, "servers": servers });
        let path = format!("/users/{}/activity", encode(user));
        self.api("POST", &path, Some(&body), &[200]);
    }

    /// Records activity now for the user and for each of `servers`.
    #[track_caller]
    pub fn post_activity(&self, user: &str, servers: &[&str]) {
        self.post_activity_at(user, servers, SystemTime::now());
    }

    /// The user model (as the admin sees it), or `None` when there is no
    /// such user.
    #[track_caller]
    pub fn user(&self, name: &str) -> Option<Value> {
        self.get_user(name, false)
    }

    /// The user model including stopped (but not removed) named servers.
    #[track_caller]
    pub fn user_with_stopped_servers(&self, name: &str) -> Option<Value> {
        self.get_user(name, true)
    }

    #[track_caller]
    fn get_user(&self, name: &str, include_stopped: bool) -> Option<Value> {
        let mut path = format!("/users/{}", encode(name));
        if include_stopped {
            path.push_str("?include_stopped_servers");
        }
        let (status, text) = self.request("GET", &path, None);
        match status {
            200 => Some(
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| self.fail(format!("GET {path}: bad JSON ({e}): {text}"))),
            ),
            404 => None,
            _ => self.fail(format!("GET {path}: status {status}: {text}")),
        }
    }

    /// Whether the user exists and has an active (listed) server `server`.
    #[track_caller]
    pub fn has_server(&self, user: &str, server: &str) -> bool {
        self.user(user)
            .is_some_and(|u| u["servers"].get(server).is_some())
    }

    /// Every user, following the hub's pagination; `state` is the hub's
    /// filter (`ready`, `active`, `inactive`).
    #[track_caller]
    pub fn users(&self, state: Option<&str>) -> Vec<Value> {
        let mut users = Vec::new();
        let mut offset = 0u64;
        loop {
            let mut path = format!("/users?offset={offset}&limit=200");
            if let Some(state) = state {
                path.push_str(&format!("&state={state}"));
            }
            let page = self.api("GET", &path, None, &[200]);
            let items = page["items"]
                .as_array()
                .unwrap_or_else(|| self.fail(format!("GET {path}: no items: {page}")));
            users.extend(items.iter().cloned());
            match page["_pagination"]["next"]["offset"].as_u64() {
                Some(next) => offset = next,
                None => return users,
            }
        }
    }

    /// The names of every user.
    #[track_caller]
    pub fn user_names(&self) -> Vec<String> {
        self.users(None)
            .iter()
            .map(|u| u["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Sleeps until every given user, and each of their servers, has been
    /// idle for longer than `timeout` by the hub's own timestamps (newest of
    /// `last_activity`, `started` and `created`). Real time has to pass
    /// because the hub never moves activity into the past.
    #[track_caller]
    pub fn wait_until_idle(&self, users: &[&str], timeout: Duration) {
        sleep_until(self.idle_at(users, timeout));
    }

    /// When every given user, and each of their servers, will have been
    /// idle for longer than `timeout` by the hub's own timestamps (see
    /// [`RealHub::wait_until_idle`]), with a little slack; asks the hub now,
    /// so it can be waited for while the hub is down.
    #[track_caller]
    pub fn idle_at(&self, users: &[&str], timeout: Duration) -> SystemTime {
        let mut newest = UNIX_EPOCH;
        for name in users {
            let user = self
                .user(name)
                .unwrap_or_else(|| self.fail(format!("no user {name}")));
            let mut stamps = vec![&user["last_activity"], &user["created"]];
            if let Some(servers) = user["servers"].as_object() {
                for server in servers.values() {
                    stamps.push(&server["last_activity"]);
                    stamps.push(&server["started"]);
                }
            }
            for stamp in stamps.into_iter().filter_map(Value::as_str) {
                let t = parse_iso_utc(stamp)
                    .unwrap_or_else(|| self.fail(format!("unparsable timestamp {stamp:?}")));
                newest = newest.max(t);
            }
        }
        // A little slack for clock granularity and the culler's own start.
        newest + timeout + Duration::from_millis(300)
    }

    /// Whether `GET /user/<user>/<server>/` on the proxy's public port is
    /// answered by the light spawner's server (`200 ok`): the proxy has a
    /// route to it. Without a route the proxy sends the request to the hub,
    /// which answers otherwise; no answer at all is `false` too.
    pub fn proxy_routes_to_server(&self, user: &str, server: &str) -> bool {
        let mut url = format!("{}/user/{}/", self.public_url(), encode(user));
        if !server.is_empty() {
            url.push_str(&encode(server));
            url.push('/');
        }
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .redirects(0)
            .build();
        match agent.get(&url).call() {
            Ok(response) if response.status() == 200 => {
                response.into_string().is_ok_and(|body| body == "ok")
            }
            _ => false,
        }
    }

    /// Runs the culler binary once (`--once --url=<api>`) with the
    /// culler's token and `args`, and returns how it went. Its output is
    /// also saved as `culler-N.log` beside the hub log.
    pub fn run_culler(&self, args: &[&str]) -> CullerOutput {
        self.run_culler_with_token(&self.culler_token, args)
    }

    /// Like [`RealHub::run_culler`] with any token (e.g. a bad one).
    pub fn run_culler_with_token(&self, token: &str, args: &[&str]) -> CullerOutput {
        let output = Culler::against(&self.api_url, token)
            .arg("--once")
            .args(args.iter().copied())
            .deadline(CULLER_DEADLINE)
            .run();
        let n = self.culler_runs.fetch_add(1, Ordering::SeqCst);
        let _ = fs::write(
            self.dir_path.join(format!("culler-{n}.log")),
            output.to_string(),
        );
        output
    }

    /// Runs the culler once and panics (with its output and the hub's log)
    /// unless it exits 0.
    #[track_caller]
    pub fn cull_once(&self, args: &[&str]) -> CullerOutput {
        let output = self.run_culler(args);
        if !output.success() {
            self.fail(format!("the culler failed:\n{output}"));
        }
        output
    }

    /// For a hub that runs the culler itself: creates users `idle` and
    /// `busy`, starts their default servers, and waits (keeping `busy`
    /// active meanwhile) until the managed culler has stopped `idle`'s,
    /// failing after `deadline`. Returns when the servers were started.
    #[track_caller]
    pub fn await_managed_cull_of_idle_beside_busy(&self, deadline: Duration) -> Instant {
        self.create_users(&["idle", "busy"]);
        self.start_server("idle", "");
        self.start_server("busy", "");
        let started = Instant::now();
        self.wait_for(
            "the managed culler to stop the idle server",
            deadline,
            || {
                self.post_activity("busy", &[""]);
                !self.has_server("idle", "")
            },
        );
        started
    }

    /// Polls `check` until it is true, failing with `what`, the log tail and
    /// the hub log after `deadline`.
    #[track_caller]
    pub fn wait_for(&self, what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
        let started = Instant::now();
        while !check() {
            if started.elapsed() > deadline {
                self.fail(format!("timed out after {deadline:?} waiting for {what}"));
            }
            thread::sleep(POLL);
        }
    }

    /// Stops the hub in the middle of a test as an operator would: SIGTERM
    /// to its process group (the hub then stops its managed services and
    /// the proxy it started, and its servers unless
    /// [`HubOptions::cleanup_servers`] is false). Waits, with a deadline,
    /// until the hub process has exited and the hub's port, the proxy's
    /// public port and the proxy API port all refuse connections; returns
    /// the hub's exit status. Directory, database, config, ports and tokens
    /// stay for [`RealHub::start_hub`].
    #[track_caller]
    pub fn stop_hub(&mut self) -> ExitStatus {
        if !self.hub_running {
            self.fail("stop_hub: the hub is not running");
        }
        // The hub removes the proxy's pid file as it stops the proxy.
        let proxy_pid = self.proxy_pid();
        signal_group(self.child.id(), "TERM");
        let started = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => self.fail(format!("cannot wait for the hub process: {e}")),
            }
            if started.elapsed() > SHUTDOWN_GRACE {
                self.fail(format!(
                    "the hub did not exit within {SHUTDOWN_GRACE:?} of SIGTERM"
                ));
            }
            thread::sleep(POLL);
        };
        self.hub_running = false;
        for (what, port) in [
            ("hub", self.hub_port),
            ("proxy's public", self.public_port),
            ("proxy API", self.proxy_api_port),
        ] {
            while !port_refuses(port) {
                if started.elapsed() > SHUTDOWN_GRACE {
                    // Nothing else would find this proxy any more.
                    if let Some(pid) = proxy_pid {
                        kill_pid(pid);
                    }
                    self.fail(format!(
                        "the {what} port {port} still accepts connections \
                         {SHUTDOWN_GRACE:?} after SIGTERM to the hub ({status})"
                    ));
                }
                thread::sleep(POLL);
            }
        }
        status
    }

    /// Starts the hub again after [`RealHub::stop_hub`] with the same
    /// directory, database, config, ports and tokens (the log goes on in
    /// the same file, after a marker line), and waits with a deadline until
    /// `GET /hub/api/` answers. The ports cannot move: the culler under test
    /// holds the URL, so one taken meanwhile fails the test.
    #[track_caller]
    pub fn start_hub(&mut self) {
        if self.hub_running {
            self.fail("start_hub: the hub is already running");
        }
        let marker = "\n===== real_hub.rs: starting the hub again =====\n";
        OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .and_then(|mut log| log.write_all(marker.as_bytes()))
            .unwrap_or_else(|e| self.fail(format!("cannot append to the hub log: {e}")));
        self.launch_log_offset = fs::metadata(&self.log_path).map_or(0, |m| m.len() as usize);
        self.child = spawn_hub(
            &self.bins,
            &self.dir_path,
            &self.config_path,
            &self.log_path,
        );
        self.hub_running = true;
        if let Err(why) = self.await_ready() {
            self.fail(format!("the hub did not start again: {why}"));
        }
    }

    /// SIGTERM to the hub's process group, so that the hub stops its proxy,
    /// services and servers itself; SIGKILL to whatever is left after the
    /// grace period, including the proxy and servers that the hub started
    /// in sessions of their own. A hub stopped by [`RealHub::stop_hub`] has
    /// no process group left to signal.
    fn shut_down(&mut self) {
        if self.hub_running {
            let pgid = self.child.id();
            signal_group(pgid, "TERM");
            let started = Instant::now();
            while started.elapsed() < SHUTDOWN_GRACE {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            signal_group(pgid, "KILL");
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.hub_running = false;
        }
        for pid in self.stragglers() {
            kill_pid(pid);
        }
    }

    /// The running proxy's pid, from the pid file the hub writes.
    fn proxy_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.dir_path.join("proxy.pid")).ok()?;
        let pid = text.trim().parse::<u32>().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&cmdline)
            .contains("configurable-http-proxy")
            .then_some(pid)
    }

    /// Processes that belong to this hub and survived it: the proxy (its
    /// pid file) and anything whose environment points at this hub's API
    /// port (managed services, single-user servers).
    fn stragglers(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.proxy_pid().into_iter().collect();
        let marker = format!("127.0.0.1:{}/hub/api", self.hub_port);
        let own = std::process::id();
        if let Ok(entries) = fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                if pid == own {
                    continue;
                }
                let mut environ = Vec::new();
                if File::open(entry.path().join("environ"))
                    .and_then(|mut f| f.read_to_end(&mut environ))
                    .is_err()
                {
                    continue;
                }
                let hit = environ.split(|b| *b == 0).any(|var| {
                    var.starts_with(b"JUPYTERHUB_API_URL=")
                        && String::from_utf8_lossy(var).contains(&marker)
                });
                if hit {
                    pids.push(pid);
                }
            }
        }
        pids
    }
}

impl Drop for RealHub {
    fn drop(&mut self) {
        self.shut_down();
        let keep = std::env::var_os("REAL_HUB_KEEP").is_some_and(|v| !v.is_empty());
        if keep || thread::panicking() {
            // Keep the directory so the logs can be read after the run.
            if let Some(dir) = self.dir.as_mut() {
                dir.disable_cleanup(true);
            }
        }
        if thread::panicking() {
            eprintln!(
                "real hub kept at {} (log: {})\n--- last lines of the hub log ---\n{}",
                self.dir_path.display(),
                self.log_path.display(),
                self.log_tail(60)
            );
        }
    }
}

/// Launches `jupyterhub -f config` in `dir`, its output appended to `log`,
/// without waiting for it.
fn spawn_hub(bins: &BinDirs, dir: &Path, config: &Path, log: &Path) -> Child {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the hub log");
    let mut command = Command::new(&bins.jupyterhub);
    command
        .arg("-f")
        .arg(config)
        .current_dir(dir)
        .env("PATH", &bins.path)
        .env_remove("JUPYTERHUB_API_TOKEN")
        .env_remove("JUPYTERHUB_API_URL")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log file handle"))
        .stderr(log)
        // Its own process group, so that drop can signal the hub and
        // anything it started without a new session.
        .process_group(0);
    command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bins.jupyterhub.display()))
}

/// SIGKILL to one process (errors ignored: it may be gone).
fn kill_pid(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Whether a loopback port refuses connections (nothing listens on it).
fn port_refuses(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

/// Sleeps until `t` (not at all when it has passed).
pub fn sleep_until(t: SystemTime) {
    if let Ok(left) = t.duration_since(SystemTime::now()) {
        thread::sleep(left);
    }
}

/// The light spawner's servers when they must outlive the hub process: a
/// thread of the test process answering `200 ok` to every HTTP request on a
/// loopback port, for as long as the [`RealHub`] lives. (Otherwise they are
/// a thread of the hub process, and end with it.)
struct StandInServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StandInServer {
    fn start() -> StandInServer {
        let listener = claim_listeners(1).pop().expect("one listener");
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    thread::spawn(move || answer_ok(stream));
                }
            }
        });
        StandInServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for StandInServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request's head and answers `200 ok`, closing the connection.
fn answer_ok(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\
          Connection: close\r\n\r\nok",
    );
}

/// The programs a test hub needs and the `PATH` to run them with.
#[derive(Clone)]
struct BinDirs {
    jupyterhub: PathBuf,
    singleuser: Option<PathBuf>,
    path: std::ffi::OsString,
}

impl BinDirs {
    /// Looks in `first` (when given), `JUPYTERHUB_BIN_DIRS`, then `PATH`;
    /// panics with the way to set things up when JupyterHub or its proxy is
    /// missing.
    fn find(first: Option<&Path>) -> BinDirs {
        let mut dirs: Vec<PathBuf> = first.map(Path::to_path_buf).into_iter().collect();
        if let Some(extra) = std::env::var_os("JUPYTERHUB_BIN_DIRS") {
            dirs.extend(std::env::split_paths(&extra));
        }
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p));
        let how = "Run the real-hub tests with `scripts/test` (it installs JupyterHub, \
                   jupyter-server and configurable-http-proxy, then sets JUPYTERHUB_BIN_DIRS), \
                   or set JUPYTERHUB_BIN_DIRS=/path/to/venv/bin:/path/to/node_modules/.bin";
        let jupyterhub = find("jupyterhub").unwrap_or_else(|| {
            panic!("`jupyterhub` not found in JUPYTERHUB_BIN_DIRS or PATH. {how}")
        });
        if find("configurable-http-proxy").is_none() {
            panic!("`configurable-http-proxy` not found in JUPYTERHUB_BIN_DIRS or PATH. {how}");
        }
        // Prefer the single-user server installed beside this jupyterhub.
        let singleuser = jupyterhub
            .parent()
            .map(|d| d.join("jupyterhub-singleuser"))
            .filter(|p| is_executable(p))
            .or_else(|| find("jupyterhub-singleuser"));
        let path = std::env::join_paths(&dirs).expect("join PATH");
        BinDirs {
            jupyterhub,
            singleuser,
            path,
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

struct ConfigInputs<'a> {
    options: &'a HubOptions,
    dir: &'a Path,
    bins: &'a BinDirs,
    public_port: u16,
    hub_port: u16,
    proxy_api_port: u16,
    admin_token: &'a str,
    culler_token: &'a str,
    /// The tokens of the extra services, by name.
    service_tokens: &'a [(String, String)],
    /// The managed culler service's `url`, if it has one.
    managed_culler_url: Option<&'a str>,
    /// Where the light spawner's servers answer when they must outlive the
    /// hub; `None` runs them in the hub process.
    light_server_url: Option<String>,
}

/// Python string/list literal (JSON's syntax is valid Python for these).
fn py(value: impl serde::Serialize) -> String {
    serde_json::to_string(&value).expect("serialize a config value")
}

/// Python code for the light spawner: one shared HTTP server thread that
/// answers 200 to everything, and a Spawner whose servers all live there.
const LIGHT_SPAWNER: &str = r#"
import http.server
import threading
import time

from jupyterhub.spawner import Spawner


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


if LIGHT_SERVER_URL:
    # Served by the test process: the servers outlive the hub process.
    _SHARED_URL = LIGHT_SERVER_URL
else:
    _shared_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    _shared_server.daemon_threads = True
    threading.Thread(target=_shared_server.serve_forever, daemon=True).start()
    _SHARED_URL = "http://127.0.0.1:%d" % _shared_server.server_address[1]


class LightSpawner(Spawner):
    """Every server is the shared server above: free to start and stop.

    "Running" is kept in the spawner's state (in the hub's database), as
    real spawners keep a pid or container id, so that a restarted hub's
    poll() finds a server it left running still running.
    """

    _running = False

    async def start(self):
        self._running = True
        return _SHARED_URL

    async def poll(self):
        return None if self._running else 0

    async def stop(self, now=False):
        if LIGHT_STOP_SECONDS > 0:
            await asyncio.sleep(LIGHT_STOP_SECONDS)
        self._running = False

    def get_state(self):
        state = super().get_state()
        if self._running:
            state["light_running"] = True
        return state

    def load_state(self, state):
        super().load_state(state)
        self._running = bool(state.get("light_running"))

    def clear_state(self):
        super().clear_state()
        self._running = False


c.JupyterHub.spawner_class = LightSpawner
"#;

/// The whole `jupyterhub_config.py`.
fn hub_config(inputs: &ConfigInputs) -> String {
    let o = inputs.options;
    let dir = inputs.dir.display().to_string();
    let scheme = if o.internal_ssl { "https" } else { "http" };
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line("# Written by tests/it/support/real_hub.rs for one test hub.".into());
    line("import asyncio".into());
    line("import signal".into());
    line("c = get_config()  # noqa: F821".into());
    // Started from a shell's background job, the hub (and so the culler
    // service it starts) would inherit an ignored SIGINT; the hub would then
    // wait 30 s at shutdown before sending the service SIGTERM.
    line("signal.signal(signal.SIGINT, signal.default_int_handler)".into());
    line("c.JupyterHub.authenticator_class = \"null\"".into());
    line("c.JupyterHub.ip = \"127.0.0.1\"".into());
    line(format!("c.JupyterHub.port = {}", inputs.public_port));
    line("c.JupyterHub.hub_ip = \"127.0.0.1\"".into());
    line(format!("c.JupyterHub.hub_port = {}", inputs.hub_port));
    line(format!(
        "c.ConfigurableHTTPProxy.api_url = \"{scheme}://127.0.0.1:{}\"",
        inputs.proxy_api_port
    ));
    // Every file the hub and proxy write stays in this hub's directory.
    for (setting, value) in [
        ("ConfigurableHTTPProxy.pid_file", format!("{dir}/proxy.pid")),
        (
            "JupyterHub.db_url",
            format!("sqlite:///{dir}/jupyterhub.sqlite"),
        ),
        (
            "JupyterHub.cookie_secret_file",
            format!("{dir}/jupyterhub_cookie_secret"),
        ),
        ("JupyterHub.pid_file", format!("{dir}/jupyterhub.pid")),
    ] {
        line(format!("c.{setting} = {}", py(value)));
    }
    // The proxy must not refresh last_activity from routes: tests decide
    // what is idle.
    line("c.JupyterHub.last_activity_interval = 3600".into());
    line(format!(
        "c.JupyterHub.allow_named_servers = {}",
        if o.allow_named_servers {
            "True"
        } else {
            "False"
        }
    ));
    if let Some(n) = o.api_page_default_limit {
        line(format!("c.JupyterHub.api_page_default_limit = {n}"));
    }
    if let Some(n) = o.api_page_max_limit {
        line(format!("c.JupyterHub.api_page_max_limit = {n}"));
    }
    if let Some(secs) = o.slow_stop_timeout {
        line(format!(
            "c.JupyterHub.tornado_settings = {{\"slow_stop_timeout\": {secs:?}}}"
        ));
    }
    if !o.cleanup_servers {
        line("c.JupyterHub.cleanup_servers = False".into());
    }
    if o.internal_ssl {
        line("c.JupyterHub.internal_ssl = True".into());
        line(format!(
            "c.JupyterHub.internal_certs_location = {}",
            py(format!("{dir}/internal-ssl"))
        ));
    }

    match o.spawner {
        SpawnerKind::Light => {
            line(format!("LIGHT_STOP_SECONDS = {:?}", o.light_stop_seconds));
            line(format!(
                "LIGHT_SERVER_URL = {}",
                inputs
                    .light_server_url
                    .as_deref()
                    .map_or_else(|| "None".to_string(), py)
            ));
            line(LIGHT_SPAWNER.into());
        }
        SpawnerKind::JupyterServer => {
            let singleuser = inputs.bins.singleuser.as_ref().unwrap_or_else(|| {
                panic!(
                    "`jupyterhub-singleuser` not found beside {}: install jupyter-server \
                     (scripts/test does)",
                    inputs.bins.jupyterhub.display()
                )
            });
            line("c.JupyterHub.spawner_class = \"simple\"".into());
            line(format!(
                "c.Spawner.cmd = {}",
                py([singleuser.display().to_string()])
            ));
            // jupyter-server refuses to run as root without it.
            line("c.Spawner.args = [\"--allow-root\"]".into());
            line(format!(
                "c.SimpleLocalProcessSpawner.home_dir_template = {}",
                py(format!("{dir}/home/{{username}}"))
            ));
        }
    }

    let mut culler_service = json!({ "name": CULLER_SERVICE, "api_token": inputs.culler_token });
    if let Some(args) = &o.managed_culler_args {
        let program = o.managed_culler_program.as_deref().unwrap_or(CULLER_BIN);
        let mut command = vec![program.to_string()];
        command.extend(args.iter().cloned());
        culler_service["command"] = json!(command);
        if let Some(url) = inputs.managed_culler_url {
            culler_service["url"] = json!(url);
        }
    }
    let mut services = vec![
        json!({ "name": "test-admin", "api_token": inputs.admin_token }),
        culler_service,
    ];
    let mut scopes: Vec<&str> = CULLER_SCOPES.to_vec();
    if o.culler_may_delete_users {
        scopes.push(CULLER_USER_SCOPE);
    }
    scopes.extend(o.culler_extra_scopes.iter().map(String::as_str));
    let mut roles = vec![
        json!({ "name": "admin", "services": ["test-admin"] }),
        json!({ "name": "idle-culler", "scopes": scopes, "services": [CULLER_SERVICE] }),
    ];
    for (service, (name, token)) in o.extra_services.iter().zip(inputs.service_tokens) {
        services.push(json!({ "name": name, "api_token": token }));
        roles.push(json!({
            "name": format!("role-{name}"),
            "scopes": service.scopes,
            "services": [name],
        }));
    }
    // JSON arrays/objects of strings are Python literals too.
    line(format!("c.JupyterHub.services = {}", py(&services)));
    line(format!("c.JupyterHub.load_roles = {}", py(&roles)));
    out
}

/// Three distinct free loopback ports (public, hub, proxy API). The OS
/// picks them (port 0); a process-wide set keeps parallel tests in this
/// binary from being handed the same port twice.
fn free_ports() -> [u16; 3] {
    let ports: Vec<u16> = claim_listeners(3)
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect();
    [ports[0], ports[1], ports[2]]
}

/// `n` listeners on distinct loopback ports that no earlier call handed out
/// (to a hub that may not have bound its port yet).
fn claim_listeners(n: usize) -> Vec<TcpListener> {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = guard.get_or_insert_with(HashSet::new);
    let mut claimed = Vec::new();
    // Ports already handed out are held too until all are chosen, so the
    // OS offers another one next.
    let mut skipped = Vec::new();
    while claimed.len() < n {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        if handed_out.insert(port) {
            claimed.push(listener);
        } else {
            skipped.push(listener);
        }
    }
    claimed
}

/// A hard-to-guess token without a random-number crate: the standard
/// library seeds `RandomState` randomly per instance.
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut token = String::new();
    for _ in 0..2 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::SeqCst));
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        token.push_str(&format!("{:016x}", hasher.finish()));
    }
    token
}

/// An HTTP agent for a hub without internal SSL.
fn plain_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// An HTTPS agent that trusts the hub's CA and presents the hub-internal
/// client certificate, as the hub requires under internal SSL.
fn tls_agent(certs: &Path) -> Result<ureq::Agent, String> {
    let read_certs = |path: PathBuf| -> Result<Vec<_>, String> {
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let certs = rustls_pemfile::certs(&mut BufReader::new(file))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate", path.display()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(certs.join("hub-ca/hub-ca.crt"))? {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    let chain = read_certs(certs.join("hub-internal/hub-internal.crt"))?;
    let key_path = certs.join("hub-internal/hub-internal.key");
    let key_file = File::open(&key_path).map_err(|e| format!("{}: {e}", key_path.display()))?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(key_file))
        .map_err(|e| format!("{}: {e}", key_path.display()))?
        .ok_or_else(|| format!("{}: no private key", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| e.to_string())?;
    Ok(ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .tls_config(Arc::new(config))
        .build())
}

/// Sends `signal` to a whole process group (errors ignored: the group may
/// already be gone).
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// The API path of a user's server: `""` is the default server.
pub fn server_path(user: &str, server: &str) -> String {
    if server.is_empty() {
        format!("/users/{}/server", encode(user))
    } else {
        format!("/users/{}/servers/{}", encode(user), encode(server))
    }
}

/// Percent-encodes one URL path segment: user names may hold `@`, `+`,
/// spaces or non-ASCII. The fake hub's encoder serves both test hubs.
pub use super::fake_hub::percent_encode as encode;

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Formats a time as the hub does: ISO 8601, UTC, microseconds, `Z`.
pub fn iso_utc(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).expect("time after 1970");
    let secs = since.as_secs() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let day_secs = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        day_secs / 3600,
        day_secs % 3600 / 60,
        day_secs % 60,
        since.subsec_micros()
    )
}

/// Parses the hub's timestamps: `YYYY-MM-DDTHH:MM:SS[.frac][Z|±HH:MM]`
/// (naive times are UTC, as older hubs send them).
pub fn parse_iso_utc(s: &str) -> Option<SystemTime> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if s.get(4..5)? != "-" || s.get(7..8)? != "-" || s.get(13..14)? != ":" {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = s.get(19..)?;
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let mut scaled = frac[..digits].to_string();
        scaled.truncate(9);
        while scaled.len() < 9 {
            scaled.push('0');
        }
        nanos = scaled.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "" | "Z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let hh: i64 = rest.get(1..3)?.parse().ok()?;
            let mm: i64 = rest.get(rest.len() - 2..)?.parse().ok()?;
            sign * (hh * 3600 + mm * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (the well-known era-based algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_795_650_000, 123_456_000);
        let s = iso_utc(t);
        assert_eq!(parse_iso_utc(&s), Some(t));
        assert_eq!(
            parse_iso_utc("1970-01-01T00:00:00Z"),
            Some(UNIX_EPOCH),
            "epoch"
        );
        assert_eq!(
            parse_iso_utc("2000-03-01T01:00:00+01:00"),
            parse_iso_utc("2000-03-01T00:00:00.000000Z")
        );
        assert_eq!(
            iso_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(parse_iso_utc("garbage"), None);
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode("carol@example.org"), "carol%40example.org");
        assert_eq!(encode("dave+x y/é"), "dave%2Bx%20y%2F%C3%A9");
        assert_eq!(server_path("a", ""), "/users/a/server");
        assert_eq!(server_path("a", "nb-1"), "/users/a/servers/nb-1");
    }
}
