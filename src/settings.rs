//! The validated configuration the program runs with, built from the raw
//! command line and the environment. Every problem an operator can make is
//! caught here, before anything talks to the hub, with a message naming the
//! flag or variable and what would be right.

use crate::cli::RawArgs;
use crate::config;
use crate::hub::retry::RetryPolicy;
use crate::hub::{internal_ssl, system_roots, ApiToken, HubConfig, ProxyConfig};
use crate::logging::{LogFormat, LogLevel};
use crate::notify::{Receivers, Secret};
use crate::policy::CullPolicy;
use crate::rules::Activity;
use crate::serve::{bind_address, BindAddress, BindOrigin};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What `--concurrency=0` (upstream: "no limit") becomes: high enough to be
/// no practical limit, low enough to keep the executor pool small.
pub const UNLIMITED_CONCURRENCY: usize = 256;

/// The largest `--concurrency` accepted: one executor actor is started per
/// allowed request, and no hub wants more requests than this at once.
pub const MAX_CONCURRENCY: u64 = 1000;

/// The most `--retries` accepted: past this a pass would wait on a dead
/// hub for many minutes instead of reporting it.
pub const MAX_RETRIES: u32 = 20;

/// How long a stop lets the requests on the wire finish (`--stop-timeout`):
/// JupyterHub 5 (zero-to-jupyterhub 4, littlest-jupyterhub 2) sends a
/// managed service SIGTERM 10 s after SIGINT, and a second signal stops the
/// culler at once; 8 s leaves it time to log what was left and exit first.
/// (JupyterHub 6 and Kubernetes allow 30 s.)
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(8);

/// The longest `--stop-timeout` accepted: past this, whoever stops the
/// culler has long given up waiting.
pub const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(3600);

/// The config file upstream loads from the working directory by default.
pub const UPSTREAM_CONFIG_FILE: &str = "idle_culler_config.py";

/// Everything the culler needs to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How to reach the hub.
    pub hub: HubConfig,
    /// The most requests outstanding to the hub at once (`--concurrency`):
    /// the size of the executor pool, which is the bound's one owner.
    pub concurrency: usize,
    /// When to send a failed request again (`--retries`, `--retry-delay`).
    pub retry: RetryPolicy,
    /// What to cull.
    pub policy: CullPolicy,
    /// Time between the starts of two passes.
    pub cull_every: Duration,
    /// How long a stop lets the requests on the wire finish.
    pub stop_timeout: Duration,
    /// Users per page (`None`: the hub's default).
    pub api_page_size: Option<u64>,
    /// Run one pass and exit.
    pub once: bool,
    /// Decide and report, send nothing (`--dry-run`).
    pub dry_run: bool,
    /// Write a JSON decision record per server and user to stdout
    /// (`--output=json`, only with `--once`).
    pub json_output: bool,
    /// Where to serve `/metrics` and `/health`: `--metrics-bind`, else the
    /// URL the hub gave this service (`JUPYTERHUB_SERVICE_URL`) when the
    /// hub routes to it (the service has a `url`, so the hub also set
    /// `JUPYTERHUB_SERVICE_PREFIX`), else nowhere.
    pub metrics: Option<BindAddress>,
    /// Whether reading `/metrics` needs a hub token with the
    /// `read:metrics` scope (`--metrics-auth`, on unless turned off for a
    /// loopback `--metrics-bind`).
    pub metrics_auth: bool,
    /// The path prefix the hub's proxy forwards to this service
    /// (`JUPYTERHUB_SERVICE_PREFIX`), served besides the bare paths.
    pub service_prefix: Option<String>,
    /// `/health` turns 503 after this many failed passes in a row.
    pub health_failures: u32,
    /// `--log-format`: text for people, JSON for log aggregators.
    pub log_format: LogFormat,
    /// How much to log.
    pub log_level: LogLevel,
    /// Where events go (`--notify-url`, `--notify-command`); `None`:
    /// nowhere, and the Evaluator makes none.
    pub notify: Option<Notify>,
    /// Accepted but surprising choices, to log as warnings at start.
    pub warnings: Vec<String>,
}

/// Where events go, and how an https receiver is checked.
#[derive(Clone, Debug)]
pub struct Notify {
    /// The receivers, their secret, timeout and retries.
    pub receivers: Receivers,
    /// The system's CA roots, for an `https://` `--notify-url`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The shared secret's text, for the log to scrub.
    pub secret: Option<String>,
}

/// The variable that holds the secret events are signed with: in the
/// environment, because the command line shows in `ps`.
pub const NOTIFY_SECRET_VAR: &str = "JUPYTERHUB_IDLE_CULLER_NOTIFY_SECRET";

impl Settings {
    /// Validates the options as given against the environment (`env`
    /// looks up a variable; it is a parameter so tests need not touch the
    /// process's). The options come in layers: the flags, then the
    /// environment (`JUPYTERHUB_API_URL`), then the config file, then the
    /// defaults ([`RawArgs::or`]); each part of the settings is then built
    /// and checked on its own.
    pub fn from_args(
        flags: &RawArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let file = match flags.config.as_deref() {
            None => RawArgs::default(),
            Some(path) if path.trim().to_ascii_lowercase().ends_with(".py") => {
                return Err(SettingsError::PythonConfig(format!("--config={path}")));
            }
            Some(path) => config::load(Path::new(path)).map_err(SettingsError::Config)?,
        };
        if Path::new(UPSTREAM_CONFIG_FILE).is_file() {
            // Upstream would load it silently; ignoring it silently could
            // cull what its settings protect (admins, a longer timeout).
            return Err(SettingsError::PythonConfig(format!(
                "{UPSTREAM_CONFIG_FILE} in the working directory (upstream loads it)"
            )));
        }
        let environment = RawArgs {
            url: env("JUPYTERHUB_API_URL").filter(|u| !u.trim().is_empty()),
            ..RawArgs::default()
        };
        let raw = flags
            .clone()
            .or(environment)
            .or(file)
            .or(RawArgs::defaults());

        let mut warnings = Vec::new();
        let policy = policy(&raw, &mut warnings)?;
        let (concurrency, retry, api_page_size) = requests(&raw, &mut warnings)?;
        let schedule = schedule(&raw, policy.timeout_secs)?;
        let served = served(&raw, &env, &mut warnings)?;
        let hub = hub(&raw, &env, policy.asks_servers(), &mut warnings)?;
        let (log_level, log_format) = logging(&raw)?;
        let notify = notify(&raw, &env, &policy, &mut warnings)?;
        Ok(Settings {
            hub,
            concurrency,
            retry,
            policy,
            cull_every: schedule.cull_every,
            stop_timeout: schedule.stop_timeout,
            api_page_size,
            once: schedule.once,
            dry_run: schedule.dry_run,
            json_output: schedule.json_output,
            metrics: served.metrics,
            metrics_auth: served.metrics_auth,
            service_prefix: served.service_prefix,
            health_failures: served.health_failures,
            log_format,
            log_level,
            notify,
            warnings,
        })
    }
}

/// How to reach the hub: the URL, the token, how long a request may take,
/// and TLS.
fn hub(
    raw: &RawArgs,
    env: &impl Fn(&str) -> Option<String>,
    asks_servers: bool,
    warnings: &mut Vec<String>,
) -> Result<HubConfig, SettingsError> {
    let url = raw
        .url
        .clone()
        .filter(|u| !u.trim().is_empty())
        .ok_or(SettingsError::MissingUrl)?;
    let base_url = check_url(url.trim())?;

    let token = env("JUPYTERHUB_API_TOKEN")
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or(SettingsError::MissingToken)?;
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(SettingsError::BadEnv {
            name: "JUPYTERHUB_API_TOKEN",
            value: "<redacted>".into(),
            expected: "a token (it holds characters an HTTP header cannot carry)",
        });
    }

    let request_timeout = match env("JUPYTERHUB_REQUEST_TIMEOUT").filter(|v| !v.trim().is_empty()) {
        None => Duration::from_secs(60),
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|secs| *secs > 0.0)
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or(SettingsError::BadEnv {
                name: "JUPYTERHUB_REQUEST_TIMEOUT",
                value: text,
                expected: "a number of seconds above 0",
            })?,
    };

    let proxy = match raw.proxy_url.as_deref().map(str::trim) {
        Some(url) if !asks_servers && !url.is_empty() => {
            warnings.push(format!(
                "--proxy-url={url} is used only with --activity=server (or a rule's activity = \"server\"): ignored"
            ));
            None
        }
        _ if !asks_servers => None,
        None | Some("") => return Err(SettingsError::MissingProxyUrl),
        Some(url) => Some(ProxyConfig {
            url: check_url(url)?,
            timeout: positive_seconds("--activity-timeout", &raw.activity_timeout)?,
        }),
    };
    let https = |url: &str| url.to_ascii_lowercase().starts_with("https://");
    let tls = if boolean("--ssl-enabled", &raw.ssl_enabled)? {
        let location = raw
            .internal_certs_location
            .as_deref()
            .unwrap_or("internal-ssl");
        Some(internal_ssl(Path::new(location)).map_err(SettingsError::Tls)?)
    } else if https(&base_url) || proxy.as_ref().is_some_and(|p| https(&p.url)) {
        Some(roots(env)?)
    } else {
        None
    };
    Ok(HubConfig {
        base_url,
        token: ApiToken::new(token),
        request_timeout,
        tls,
        proxy,
    })
}

/// What to cull: the timeouts, the switches, the rules.
fn policy(raw: &RawArgs, warnings: &mut Vec<String>) -> Result<CullPolicy, SettingsError> {
    let timeout_secs = whole("--timeout", &raw.timeout)?;
    if timeout_secs == 0 {
        warnings.push("--timeout=0: every running server is stopped on every pass".to_owned());
    }
    let max_age_secs = Some(whole("--max-age", &raw.max_age)?).filter(|&s| s > 0);
    let user_timeout_secs =
        number("--cull-users-timeout", raw.cull_users_timeout.as_deref())?.unwrap_or(timeout_secs);
    let user_max_age_secs = match number("--cull-users-max-age", raw.cull_users_max_age.as_deref())?
    {
        None => max_age_secs,
        Some(0) => None,
        Some(secs) => Some(secs),
    };
    Ok(CullPolicy {
        timeout_secs,
        max_age_secs,
        user_timeout_secs,
        user_max_age_secs,
        rules: raw.rules.clone(),
        cull_default_servers: boolean("--cull-default-servers", &raw.cull_default_servers)?,
        cull_named_servers: boolean("--cull-named-servers", &raw.cull_named_servers)?,
        cull_users: boolean("--cull-users", &raw.cull_users)?,
        cull_admin_users: boolean("--cull-admin-users", &raw.cull_admin_users)?,
        remove_named_servers: boolean("--remove-named-servers", &raw.remove_named_servers)?,
        activity: match raw.activity.as_deref().map(str::trim) {
            None | Some("hub") => Activity::Hub,
            Some("server") => Activity::Server,
            Some(other) => {
                return Err(SettingsError::BadChoice {
                    flag: "--activity",
                    value: other.to_owned(),
                    allowed: "hub or server",
                })
            }
        },
        activity_connections: boolean("--activity-connections", &raw.activity_connections)?,
        warn_before_secs: Some(whole("--warn-before", &raw.warn_before)?).filter(|&s| s > 0),
        stuck_after_secs: Some(whole("--stuck-after", &raw.stuck_after)?).filter(|&s| s > 0),
        cull_stuck_spawns: boolean("--cull-stuck-spawns", &raw.cull_stuck_spawns)?,
    })
}

/// Where events go: checked receivers, the secret from the environment,
/// and what is accepted but probably not meant.
fn notify(
    raw: &RawArgs,
    env: &impl Fn(&str) -> Option<String>,
    policy: &CullPolicy,
    warnings: &mut Vec<String>,
) -> Result<Option<Notify>, SettingsError> {
    let nonempty = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let url = match nonempty(&raw.notify_url) {
        Some(url) => Some(check_url(&url)?),
        None => None,
    };
    let command = nonempty(&raw.notify_command);
    let secret = env("JUPYTERHUB_IDLE_CULLER_NOTIFY_SECRET").filter(|s| !s.trim().is_empty());
    if let Some(warn_before) = policy.warn_before_secs {
        if warn_before >= policy.timeout_secs {
            warnings.push(format!(
                "--warn-before={warn_before} is not less than --timeout={}: servers are warned as soon as they are idle",
                policy.timeout_secs
            ));
        }
    }
    if url.is_none() && command.is_none() {
        if policy.warn_before_secs.is_some() {
            warnings.push(
                "--warn-before without --notify-url or --notify-command: warnings are only logged"
                    .to_owned(),
            );
        }
        if secret.is_some() {
            warnings.push(format!(
                "{NOTIFY_SECRET_VAR} is set but nothing is notified (no --notify-url): ignored"
            ));
        }
        return Ok(None);
    }
    let timeout = positive_seconds("--notify-timeout", &raw.notify_timeout)?;
    let retries = retry_count("--notify-retries", &raw.notify_retries)?;
    let tls = match &url {
        Some(url) if url.to_ascii_lowercase().starts_with("https://") => Some(roots(env)?),
        _ => None,
    };
    if url.is_some() && secret.is_none() {
        warnings.push(format!(
            "--notify-url without {NOTIFY_SECRET_VAR}: events are not signed, so the receiver cannot tell them from anyone else's"
        ));
    }
    Ok(Some(Notify {
        receivers: Receivers {
            url,
            command,
            secret: secret.as_deref().map(Secret::new),
            timeout,
            retries,
            retry_delay: Duration::from_secs(1),
        },
        tls,
        secret,
    }))
}

/// How requests are sent: how many at once, how they are retried, how
/// many users a page.
fn requests(
    raw: &RawArgs,
    warnings: &mut Vec<String>,
) -> Result<(usize, RetryPolicy, Option<u64>), SettingsError> {
    let concurrency = match whole("--concurrency", &raw.concurrency)? {
        0 => {
            warnings.push(format!(
                "--concurrency=0 (upstream: no limit) allows {UNLIMITED_CONCURRENCY} requests at once"
            ));
            UNLIMITED_CONCURRENCY
        }
        n if n > MAX_CONCURRENCY => {
            return Err(SettingsError::OutOfRange {
                flag: "--concurrency",
                value: n,
                allowed: "at most 1000 requests at once",
            })
        }
        n => n as usize,
    };
    let api_page_size = Some(whole("--api-page-size", &raw.api_page_size)?).filter(|&n| n > 0);
    let mut retry = RetryPolicy::default();
    retry.retries = retry_count("--retries", &raw.retries)?;
    retry.base_delay = seconds("--retry-delay", &raw.retry_delay)?.min(retry.max_delay);
    Ok((concurrency, retry, api_page_size))
}

/// When passes run, what they send, and how a stop ends them.
struct Schedule {
    cull_every: Duration,
    once: bool,
    dry_run: bool,
    json_output: bool,
    stop_timeout: Duration,
}

fn schedule(raw: &RawArgs, timeout_secs: u64) -> Result<Schedule, SettingsError> {
    let cull_every_secs = match whole("--cull-every", &raw.cull_every)? {
        secs if secs > 0 => secs,
        // Upstream: 0 means half the timeout (and 2.0 crashes on it).
        _ if timeout_secs == 0 => return Err(SettingsError::ZeroTimeout),
        _ => (timeout_secs / 2).max(1),
    };
    let once = boolean("--once", &raw.once)?;
    let json_output = match raw.output.as_deref().map(str::trim) {
        None | Some("text") => false,
        Some("json") if once => true,
        Some("json") => return Err(SettingsError::OutputNeedsOnce),
        Some(other) => {
            return Err(SettingsError::BadChoice {
                flag: "--output",
                value: other.to_owned(),
                allowed: "text or json",
            })
        }
    };
    let stop_timeout = match seconds("--stop-timeout", &raw.stop_timeout)? {
        secs if secs > MAX_STOP_TIMEOUT => {
            return Err(SettingsError::OutOfRange {
                flag: "--stop-timeout",
                value: secs.as_secs(),
                allowed: "at most 3600 seconds",
            })
        }
        secs => secs,
    };
    Ok(Schedule {
        cull_every: Duration::from_secs(cull_every_secs),
        once,
        dry_run: boolean("--dry-run", &raw.dry_run)?,
        json_output,
        stop_timeout,
    })
}

/// Where `/metrics` and `/health` are served, and when health fails.
struct Served {
    metrics: Option<BindAddress>,
    metrics_auth: bool,
    service_prefix: Option<String>,
    health_failures: u32,
}

fn served(
    raw: &RawArgs,
    env: &impl Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Served, SettingsError> {
    let health_failures = match whole("--health-failures", &raw.health_failures)? {
        n if (1..=1000).contains(&n) => n as u32,
        n => {
            return Err(SettingsError::OutOfRange {
                flag: "--health-failures",
                value: n,
                allowed: "1 to 1000 failed passes",
            })
        }
    };
    let nonempty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    // JupyterHub gives every managed service a URL (a random loopback
    // port when the service has no `url`), and a prefix only to one with
    // a `url`, which its proxy routes to: only then is the URL where the
    // operator asked to be served.
    let service_prefix = nonempty(env("JUPYTERHUB_SERVICE_PREFIX"));
    let service_url = service_prefix
        .as_ref()
        .and_then(|_| env("JUPYTERHUB_SERVICE_URL"));
    let metrics = match bind_address(raw.metrics_bind.as_deref(), service_url.as_deref()) {
        Ok(metrics) => metrics,
        // The hub's URL for us is the hub's business: metrics must never
        // stop culling, so a URL they cannot be served at is only a warning.
        Err(err) if err.from_service_url() => {
            warnings.push(format!("{err}; serving no /metrics"));
            None
        }
        Err(err) => return Err(SettingsError::MetricsBind(err)),
    };
    let metrics_auth = boolean("--metrics-auth", &raw.metrics_auth)?;
    // Anyone who reaches a port on another interface could read it, and
    // the hub's proxy forwards anyone's requests to the service URL, even
    // a loopback one: only a loopback --metrics-bind may go without a token.
    let only_this_machine = |address: &BindAddress| {
        address.origin == BindOrigin::Flag && address.addr.ip().is_loopback()
    };
    match &metrics {
        Some(address) if !metrics_auth && !only_this_machine(address) => {
            return Err(SettingsError::OpenMetrics(address.clone()))
        }
        _ => {}
    }
    Ok(Served {
        metrics,
        metrics_auth,
        service_prefix,
        health_failures,
    })
}

/// How much to log, and how.
fn logging(raw: &RawArgs) -> Result<(LogLevel, LogFormat), SettingsError> {
    let level = if raw.debug {
        LogLevel::Debug
    } else {
        let text = raw.log_level.as_deref().unwrap_or_default();
        text.parse().map_err(SettingsError::BadLogLevel)?
    };
    let text = raw.log_format.as_deref().unwrap_or_default();
    let format = text.parse().map_err(|_| SettingsError::BadChoice {
        flag: "--log-format",
        value: text.to_owned(),
        allowed: "text or json",
    })?;
    Ok((level, format))
}

/// Reads a whole, non-negative number of a flag that always has a value
/// (its default, when not given).
/// A count of retries: at most [`MAX_RETRIES`].
fn retry_count(flag: &'static str, value: &Option<String>) -> Result<u32, SettingsError> {
    let retries = whole(flag, value)?;
    u32::try_from(retries)
        .ok()
        .filter(|&n| n <= MAX_RETRIES)
        .ok_or(SettingsError::OutOfRange {
            flag,
            value: retries,
            allowed: "at most 20 retries",
        })
}

/// Seconds above 0: a time limit of nothing would fail everything.
fn positive_seconds(flag: &'static str, value: &Option<String>) -> Result<Duration, SettingsError> {
    match seconds(flag, value)? {
        limit if limit.is_zero() => Err(SettingsError::NotSeconds {
            flag,
            value: "0".to_owned(),
        }),
        limit => Ok(limit),
    }
}

/// The CA roots an `https://` URL is checked with: the system's bundle,
/// or `SSL_CERT_FILE`.
fn roots(
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Arc<rustls::ClientConfig>, SettingsError> {
    let bundle = env("SSL_CERT_FILE").filter(|f| !f.trim().is_empty());
    system_roots(bundle.as_deref().map(Path::new)).map_err(SettingsError::SystemRoots)
}

fn whole(flag: &'static str, value: &Option<String>) -> Result<u64, SettingsError> {
    let text = value.as_deref().unwrap_or_default();
    number(flag, Some(text)).map(Option::unwrap_or_default)
}

/// Reads a whole, non-negative number of a flag, if given.
fn number(flag: &'static str, value: Option<&str>) -> Result<Option<u64>, SettingsError> {
    let Some(text) = value else { return Ok(None) };
    text.trim()
        .parse::<u64>()
        .map(Some)
        .map_err(|_| SettingsError::NotANumber {
            flag,
            value: text.to_owned(),
        })
}

/// Reads a flag given in seconds, fractions allowed.
fn seconds(flag: &'static str, value: &Option<String>) -> Result<Duration, SettingsError> {
    let text = value.as_deref().unwrap_or_default();
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|secs| *secs >= 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| SettingsError::NotSeconds {
            flag,
            value: text.to_owned(),
        })
}

/// Reads a boolean flag: bare is true, and the spellings traitlets and
/// shells use are accepted in any case (always given: its default, when
/// not on the command line nor in the file).
fn boolean(flag: &'static str, value: &Option<Option<String>>) -> Result<bool, SettingsError> {
    let text = match value {
        None => return Ok(false),
        Some(None) => return Ok(true),
        Some(Some(text)) => text,
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "t" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "f" | "0" | "no" | "n" | "off" => Ok(false),
        _ => Err(SettingsError::NotABool {
            flag,
            value: text.clone(),
        }),
    }
}

/// Checks the hub URL and drops trailing slashes (we add our own).
fn check_url(url: &str) -> Result<String, SettingsError> {
    let bad = |why| SettingsError::BadUrl {
        url: without_userinfo(url),
        why,
    };
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http+unix://") {
        return Err(bad(
            "unix-socket hub URLs are not supported yet; give the hub's http:// address",
        ));
    }
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| {
            bad("must start with http:// or https://, e.g. http://127.0.0.1:8081/hub/api")
        })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad("has no host"));
    }
    if url.chars().any(char::is_whitespace) {
        return Err(bad("contains white space"));
    }
    if authority(url).contains('@') {
        return Err(bad(
            "holds a user name or password; the culler authenticates with JUPYTERHUB_API_TOKEN \
             (and would have to log this URL): remove the part before @",
        ));
    }
    if url.contains('?') || url.contains('#') {
        return Err(bad(
            "holds a query (?...) or fragment (#...), which the culler would silently drop \
             from every request; give the API's base URL, e.g. http://127.0.0.1:8081/hub/api",
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The `user:password@host:port` part of a URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or("")
}

/// The URL with any `user:password@` replaced, so that an error about it
/// never shows a password.
fn without_userinfo(url: &str) -> String {
    let host = authority(url);
    match host.rsplit_once('@') {
        Some((_, host_port)) => url.replacen(authority(url), &format!("***@{host_port}"), 1),
        None => url.to_owned(),
    }
}

mod error;
pub use error::SettingsError;

#[cfg(test)]
mod tests;
