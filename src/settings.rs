//! The validated configuration the program runs with, built from the raw
//! command line and the environment. Every problem an operator can make is
//! caught here, before anything talks to the hub, with a message naming the
//! flag or variable and what would be right.

use crate::cli::RawArgs;
use crate::config::{ConfigError, FileConfig};
use crate::hub::retry::RetryPolicy;
use crate::hub::{internal_ssl, system_roots, ApiToken, HubConfig, TlsError};
use crate::logging::{LogFormat, LogLevel};
use crate::policy::CullPolicy;
use crate::serve::{bind_address, BindAddress, BindError};
use std::fmt;
use std::path::Path;
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
    /// The path prefix the hub's proxy forwards to this service
    /// (`JUPYTERHUB_SERVICE_PREFIX`), served besides the bare paths.
    pub service_prefix: Option<String>,
    /// `/health` turns 503 after this many failed passes in a row.
    pub health_failures: u32,
    /// `--log-format`: text for people, JSON for log aggregators.
    pub log_format: LogFormat,
    /// How much to log.
    pub log_level: LogLevel,
    /// Accepted but surprising choices, to log as warnings at start.
    pub warnings: Vec<String>,
}

/// A command line or environment the culler cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsError {
    /// A flag that takes a whole number got something else.
    NotANumber {
        /// The flag, e.g. `--timeout`.
        flag: &'static str,
        /// What was given.
        value: String,
    },
    /// A flag that takes a number of seconds got something else.
    NotSeconds {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
    },
    /// A flag that takes true/false got something else.
    NotABool {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
    },
    /// An environment variable holds an unusable value.
    BadEnv {
        /// The variable.
        name: &'static str,
        /// What it holds.
        value: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// `JUPYTERHUB_API_TOKEN` is unset or empty.
    MissingToken,
    /// Neither `--url` nor `JUPYTERHUB_API_URL`.
    MissingUrl,
    /// The URL is not one we can use.
    BadUrl {
        /// The URL given.
        url: String,
        /// Why it cannot be used.
        why: &'static str,
    },
    /// `--ssl-enabled` with unusable certificates.
    Tls(TlsError),
    /// An `https://` URL, and no usable CA bundle to check the hub with.
    SystemRoots(TlsError),
    /// `--log-level` is not a level.
    BadLogLevel(String),
    /// A number outside what the flag allows.
    OutOfRange {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: u64,
        /// What is allowed, in words.
        allowed: &'static str,
    },
    /// `--timeout=0` without `--cull-every`: every server would be stopped
    /// every second (upstream 2.0 refuses to start then).
    ZeroTimeout,
    /// Upstream's Python configuration file, which this culler cannot read.
    PythonConfig(String),
    /// A config file the culler cannot use.
    Config(ConfigError),
    /// A flag that takes one of a few words got another.
    BadChoice {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
        /// What it takes.
        allowed: &'static str,
    },
    /// `--output=json` without `--once`.
    OutputNeedsOnce,
    /// `--metrics-bind` is not an address to serve on.
    MetricsBind(BindError),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::NotANumber { flag, value } => write!(
                f,
                "{flag}={value:?} is not a whole number of 0 or more (e.g. {flag}=600)"
            ),
            SettingsError::NotSeconds { flag, value } => write!(
                f,
                "{flag}={value:?} is not a number of seconds of 0 or more (e.g. {flag}=0.5)"
            ),
            SettingsError::NotABool { flag, value } => write!(
                f,
                "{flag}={value:?} is not a boolean; use {flag}=true or {flag}=false"
            ),
            SettingsError::BadEnv {
                name,
                value,
                expected,
            } => {
                write!(f, "{name}={value:?} is not {expected}")
            }
            SettingsError::MissingToken => f.write_str(
                "JUPYTERHUB_API_TOKEN is not set: the culler needs a hub API token \
                 (the hub sets it for a managed service; otherwise give the service an api_token)",
            ),
            SettingsError::MissingUrl => f.write_str(
                "no hub URL: pass --url=http://HUB:8081/hub/api or set JUPYTERHUB_API_URL",
            ),
            SettingsError::BadUrl { url, why } => write!(f, "--url={url:?}: {why}"),
            SettingsError::Tls(err) => write!(f, "--ssl-enabled: {err}"),
            SettingsError::SystemRoots(err) => write!(f, "https:// hub URL: {err}"),
            SettingsError::BadLogLevel(message) => f.write_str(message),
            SettingsError::OutOfRange {
                flag,
                value,
                allowed,
            } => write!(f, "{flag}={value} is out of range: {allowed}"),
            SettingsError::ZeroTimeout => f.write_str(
                "--timeout=0 would stop every running server every second; \
                 give a timeout, or an explicit --cull-every if that is really what you want",
            ),
            SettingsError::PythonConfig(what) => write!(
                f,
                "{what}: Python config files are not supported; pass their settings as flags \
                 (e.g. c.IdleCuller.timeout = 3600 becomes --timeout=3600) or in a TOML file \
                 (--generate-config prints one)"
            ),
            SettingsError::Config(err) => err.fmt(f),
            SettingsError::BadChoice {
                flag,
                value,
                allowed,
            } => write!(f, "{flag}={value:?}: use {allowed}"),
            SettingsError::MetricsBind(err) => err.fmt(f),
            SettingsError::OutputNeedsOnce => f.write_str(
                "--output=json writes the decisions of one pass: add --once (and --dry-run to only look)",
            ),
        }
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    /// Validates the raw flags against the environment (`env` looks up a
    /// variable; it is a parameter so tests need not touch the process's).
    pub fn from_args(
        raw: &RawArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let mut raw = raw.clone();
        let mut file = FileConfig::default();
        if let Some(path) = raw.config.clone() {
            if path.trim().to_ascii_lowercase().ends_with(".py") {
                return Err(SettingsError::PythonConfig(format!("--config={path}")));
            }
            file = FileConfig::load(Path::new(&path)).map_err(SettingsError::Config)?;
            file.fill(&mut raw);
        }
        if Path::new(UPSTREAM_CONFIG_FILE).is_file() {
            // Upstream would load it silently; ignoring it silently could
            // cull what its settings protect (admins, a longer timeout).
            return Err(SettingsError::PythonConfig(format!(
                "{UPSTREAM_CONFIG_FILE} in the working directory (upstream loads it)"
            )));
        }
        let mut warnings = Vec::new();
        let timeout_secs = number("--timeout", raw.timeout.as_deref())?.unwrap_or(600);
        let cull_every_secs = match number("--cull-every", raw.cull_every.as_deref())? {
            Some(secs) if secs > 0 => secs,
            // Upstream: 0 means half the timeout (and 2.0 crashes on it).
            _ if timeout_secs == 0 => return Err(SettingsError::ZeroTimeout),
            _ => (timeout_secs / 2).max(1),
        };
        if timeout_secs == 0 {
            warnings.push("--timeout=0: every running server is stopped on every pass".to_owned());
        }
        let max_age_secs = number("--max-age", raw.max_age.as_deref())?.filter(|&s| s > 0);
        let concurrency = match number("--concurrency", raw.concurrency.as_deref())? {
            None => 10,
            Some(0) => {
                warnings.push(format!(
                    "--concurrency=0 (upstream: no limit) allows {UNLIMITED_CONCURRENCY} requests at once"
                ));
                UNLIMITED_CONCURRENCY
            }
            Some(n) if n > MAX_CONCURRENCY => {
                return Err(SettingsError::OutOfRange {
                    flag: "--concurrency",
                    value: n,
                    allowed: "at most 1000 requests at once",
                })
            }
            Some(n) => n as usize,
        };
        let api_page_size =
            number("--api-page-size", raw.api_page_size.as_deref())?.filter(|&n| n > 0);
        let mut retry = RetryPolicy::default();
        if let Some(retries) = number("--retries", raw.retries.as_deref())? {
            retry.retries = u32::try_from(retries)
                .ok()
                .filter(|&n| n <= MAX_RETRIES)
                .ok_or(SettingsError::OutOfRange {
                    flag: "--retries",
                    value: retries,
                    allowed: "at most 20 retries",
                })?;
        }
        if let Some(text) = raw.retry_delay.as_deref() {
            retry.base_delay = seconds("--retry-delay", text)?.min(retry.max_delay);
        }
        let stop_timeout = match raw.stop_timeout.as_deref() {
            None => DEFAULT_STOP_TIMEOUT,
            Some(text) => match seconds("--stop-timeout", text)? {
                secs if secs > MAX_STOP_TIMEOUT => {
                    return Err(SettingsError::OutOfRange {
                        flag: "--stop-timeout",
                        value: secs.as_secs(),
                        allowed: "at most 3600 seconds",
                    })
                }
                secs => secs,
            },
        };

        let user_timeout_secs = number("--cull-users-timeout", raw.cull_users_timeout.as_deref())?
            .unwrap_or(timeout_secs);
        let user_max_age_secs =
            match number("--cull-users-max-age", raw.cull_users_max_age.as_deref())? {
                None => max_age_secs,
                Some(0) => None,
                Some(secs) => Some(secs),
            };
        let policy = CullPolicy {
            user_timeout_secs,
            user_max_age_secs,
            rules: file.rules.clone(),
            timeout_secs,
            max_age_secs,
            cull_default_servers: boolean(
                "--cull-default-servers",
                &raw.cull_default_servers,
                true,
            )?,
            cull_named_servers: boolean("--cull-named-servers", &raw.cull_named_servers, true)?,
            cull_users: boolean("--cull-users", &raw.cull_users, false)?,
            cull_admin_users: boolean("--cull-admin-users", &raw.cull_admin_users, true)?,
            remove_named_servers: boolean(
                "--remove-named-servers",
                &raw.remove_named_servers,
                false,
            )?,
        };

        let log_level = match &raw.log_level {
            _ if raw.debug => LogLevel::Debug,
            Some(text) => text.parse().map_err(SettingsError::BadLogLevel)?,
            None => LogLevel::Info,
        };

        // Flags over environment over file.
        let url = raw
            .url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| env("JUPYTERHUB_API_URL").filter(|u| !u.trim().is_empty()))
            .or_else(|| file.url.clone().filter(|u| !u.trim().is_empty()))
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

        let request_timeout =
            match env("JUPYTERHUB_REQUEST_TIMEOUT").filter(|v| !v.trim().is_empty()) {
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

        let tls = if boolean("--ssl-enabled", &raw.ssl_enabled, false)? {
            let location = raw
                .internal_certs_location
                .as_deref()
                .unwrap_or("internal-ssl");
            Some(internal_ssl(Path::new(location)).map_err(SettingsError::Tls)?)
        } else if base_url.to_ascii_lowercase().starts_with("https://") {
            let bundle = env("SSL_CERT_FILE").filter(|f| !f.trim().is_empty());
            Some(
                system_roots(bundle.as_deref().map(Path::new))
                    .map_err(SettingsError::SystemRoots)?,
            )
        } else {
            None
        };

        let once = raw.once;
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
        let log_format = match raw.log_format.as_deref() {
            None => LogFormat::Text,
            Some(text) => text.parse().map_err(|_| SettingsError::BadChoice {
                flag: "--log-format",
                value: text.to_owned(),
                allowed: "text or json",
            })?,
        };
        let health_failures = match number("--health-failures", raw.health_failures.as_deref())? {
            None => 3,
            Some(n) if (1..=1000).contains(&n) => n as u32,
            Some(n) => {
                return Err(SettingsError::OutOfRange {
                    flag: "--health-failures",
                    value: n,
                    allowed: "1 to 1000 failed passes",
                })
            }
        };
        let nonempty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        // JupyterHub gives every managed service a URL (a random loopback
        // port when the service has no `url`), and a prefix only to one
        // with a `url`, which its proxy routes to: only then is the URL
        // where the operator asked to be served.
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
        Ok(Settings {
            dry_run: boolean("--dry-run", &raw.dry_run, false)?,
            json_output,
            metrics,
            service_prefix,
            health_failures,
            log_format,
            hub: HubConfig {
                base_url,
                token: ApiToken::new(token),
                request_timeout,
                tls,
            },
            concurrency,
            retry,
            policy,
            cull_every: Duration::from_secs(cull_every_secs),
            stop_timeout,
            api_page_size,
            once,
            log_level,
            warnings,
        })
    }
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
fn seconds(flag: &'static str, text: &str) -> Result<Duration, SettingsError> {
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

/// Reads a boolean flag: absent is `default`, bare is true, and the
/// spellings traitlets and shells use are accepted in any case.
fn boolean(
    flag: &'static str,
    value: &Option<Option<String>>,
    default: bool,
) -> Result<bool, SettingsError> {
    let text = match value {
        None => return Ok(default),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli;

    fn settings(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut all = vec!["jupyterhub-idle-culler-rs"];
        all.extend_from_slice(args);
        let raw = cli::parse(all).expect("the command line parses");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_args(&raw, |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    const HUB: &[(&str, &str)] = &[
        ("JUPYTERHUB_API_TOKEN", "secret"),
        ("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api/"),
    ];

    #[test]
    fn upstream_defaults() {
        let s = settings(&[], HUB).unwrap();
        assert_eq!(s.policy, CullPolicy::default());
        assert_eq!(s.policy.timeout_secs, 600);
        assert_eq!(s.cull_every, Duration::from_secs(300));
        assert_eq!(s.concurrency, 10);
        assert_eq!(s.api_page_size, None);
        assert_eq!(s.hub.base_url, "http://127.0.0.1:8081/hub/api");
        assert_eq!(s.hub.request_timeout, Duration::from_secs(60));
        assert!(s.hub.tls.is_none());
        assert!(!s.once);
        assert_eq!(s.stop_timeout, Duration::from_secs(8));
    }

    #[test]
    fn stop_timeout_takes_seconds_up_to_an_hour() {
        let s = settings(&["--stop-timeout=0.5"], HUB).unwrap();
        assert_eq!(s.stop_timeout, Duration::from_millis(500));
        let s = settings(&["--stop-timeout=3600"], HUB).unwrap();
        assert_eq!(s.stop_timeout, Duration::from_secs(3600));
        assert!(matches!(
            settings(&["--stop-timeout=3601"], HUB),
            Err(SettingsError::OutOfRange {
                flag: "--stop-timeout",
                ..
            })
        ));
        assert!(matches!(
            settings(&["--stop-timeout=soon"], HUB),
            Err(SettingsError::NotSeconds {
                flag: "--stop-timeout",
                ..
            })
        ));
    }

    #[test]
    fn zero_to_jupyterhub_flags_mean_what_they_say() {
        let s = settings(
            &[
                "--url=http://localhost:8081/hub/api",
                "--timeout=3600",
                "--cull-every=600",
                "--concurrency=10",
                "--cull-users",
                "--cull-admin-users=false",
                "--remove-named-servers",
                "--max-age=86400",
            ],
            &[("JUPYTERHUB_API_TOKEN", "t")],
        )
        .unwrap();
        assert_eq!(s.hub.base_url, "http://localhost:8081/hub/api");
        assert_eq!(s.policy.timeout_secs, 3600);
        assert_eq!(s.cull_every, Duration::from_secs(600));
        assert!(s.policy.cull_users);
        assert!(!s.policy.cull_admin_users);
        assert!(s.policy.remove_named_servers);
        assert_eq!(s.policy.max_age_secs, Some(86400));
    }

    #[test]
    fn littlest_jupyterhub_flags_with_url_from_env() {
        let s = settings(
            &[
                "--timeout=600",
                "--cull-every=60",
                "--concurrency=5",
                "--max-age=0",
                "--cull-users",
                "--remove-named-servers",
            ],
            HUB,
        )
        .unwrap();
        assert_eq!(s.cull_every, Duration::from_secs(60));
        assert_eq!(s.concurrency, 5);
        assert_eq!(s.policy.max_age_secs, None);
        assert!(s.policy.cull_users && s.policy.remove_named_servers);
    }

    #[test]
    fn boolean_spellings() {
        for (text, expected) in [
            ("true", true),
            ("True", true),
            ("1", true),
            ("t", true),
            ("false", false),
            ("False", false),
            ("0", false),
            ("f", false),
        ] {
            let flag = format!("--cull-users={text}");
            assert_eq!(
                settings(&[&flag], HUB).unwrap().policy.cull_users,
                expected,
                "{flag}"
            );
        }
        let err = settings(&["--cull-users=maybe"], HUB).unwrap_err();
        assert_eq!(
            err,
            SettingsError::NotABool {
                flag: "--cull-users",
                value: "maybe".into()
            }
        );
    }

    #[test]
    fn upstream_2_and_underscore_spellings() {
        let s = settings(
            &[
                "--IdleCuller.timeout=120",
                "--cull_every=7",
                "--IdleCuller.cull_users=True",
            ],
            HUB,
        )
        .unwrap();
        assert_eq!(s.policy.timeout_secs, 120);
        assert_eq!(s.cull_every, Duration::from_secs(7));
        assert!(s.policy.cull_users);
    }

    #[test]
    fn cull_every_zero_is_half_the_timeout_and_at_least_a_second() {
        assert_eq!(
            settings(&["--timeout=100", "--cull-every=0"], HUB)
                .unwrap()
                .cull_every,
            Duration::from_secs(50)
        );
        assert_eq!(
            settings(&["--timeout=1"], HUB).unwrap().cull_every,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn bad_numbers_name_the_flag() {
        for (arg, flag) in [
            ("--timeout=abc", "--timeout"),
            ("--timeout=-5", "--timeout"),
            ("--max-age=1.5", "--max-age"),
            ("--concurrency=-1", "--concurrency"),
            ("--api-page-size=x", "--api-page-size"),
        ] {
            let err = settings(&[arg], HUB).unwrap_err();
            assert!(
                matches!(err, SettingsError::NotANumber { flag: f, .. } if f == flag),
                "{arg}: {err}"
            );
            assert!(err.to_string().starts_with(flag));
        }
    }

    #[test]
    fn concurrency_zero_means_no_practical_limit() {
        let s = settings(&["--concurrency=0"], HUB).unwrap();
        assert_eq!(s.concurrency, UNLIMITED_CONCURRENCY);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    }

    #[test]
    fn absurd_concurrency_is_refused() {
        assert_eq!(
            settings(&["--concurrency=1000"], HUB).unwrap().concurrency,
            1000
        );
        let err = settings(&["--concurrency=18446744073709551615"], HUB).unwrap_err();
        assert!(
            matches!(
                err,
                SettingsError::OutOfRange {
                    flag: "--concurrency",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn timeout_zero_needs_an_explicit_cull_every() {
        assert_eq!(
            settings(&["--timeout=0"], HUB).unwrap_err(),
            SettingsError::ZeroTimeout
        );
        assert_eq!(
            settings(&["--timeout=0", "--cull-every=0"], HUB).unwrap_err(),
            SettingsError::ZeroTimeout
        );
        let s = settings(&["--timeout=0", "--cull-every=60"], HUB).unwrap();
        assert_eq!(s.policy.timeout_secs, 0);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    }

    #[test]
    fn upstream_config_files_are_refused_not_ignored() {
        for args in [
            &["--config=idle_culler_config.py"][..],
            &["--config", "/etc/jupyterhub/Culler.PY"][..],
        ] {
            let err = settings(args, HUB).unwrap_err();
            assert!(
                matches!(err, SettingsError::PythonConfig(_)),
                "{args:?}: {err}"
            );
            assert!(err.to_string().contains("as flags"), "{err}");
        }
    }

    #[test]
    fn debug_flag_means_debug_level() {
        assert_eq!(
            settings(&["--debug"], HUB).unwrap().log_level,
            LogLevel::Debug
        );
    }

    #[test]
    fn unusable_tokens_fail_at_start_without_showing_them() {
        let env = [
            ("JUPYTERHUB_API_TOKEN", "abc\ndef"),
            ("JUPYTERHUB_API_URL", "http://h/hub/api"),
        ];
        let err = settings(&[], &env).unwrap_err();
        assert!(
            matches!(
                err,
                SettingsError::BadEnv {
                    name: "JUPYTERHUB_API_TOKEN",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!err.to_string().contains("abc"), "{err}");
    }

    #[test]
    fn page_size_zero_is_the_hub_default() {
        assert_eq!(
            settings(&["--api-page-size=0"], HUB).unwrap().api_page_size,
            None
        );
        assert_eq!(
            settings(&["--api-page-size=5"], HUB).unwrap().api_page_size,
            Some(5)
        );
    }

    #[test]
    fn token_is_required() {
        assert_eq!(
            settings(&["--url=http://h/hub/api"], &[]).unwrap_err(),
            SettingsError::MissingToken
        );
        assert_eq!(
            settings(
                &["--url=http://h/hub/api"],
                &[("JUPYTERHUB_API_TOKEN", "  ")]
            )
            .unwrap_err(),
            SettingsError::MissingToken
        );
    }

    #[test]
    fn url_is_required_and_checked() {
        assert_eq!(
            settings(&[], &[("JUPYTERHUB_API_TOKEN", "t")]).unwrap_err(),
            SettingsError::MissingUrl
        );
        let env = &[("JUPYTERHUB_API_TOKEN", "t")];
        assert!(matches!(
            settings(&["--url=localhost:8081"], env),
            Err(SettingsError::BadUrl { .. })
        ));
        assert!(matches!(
            settings(&["--url=http+unix://%2Fsock/hub/api"], env),
            Err(SettingsError::BadUrl { .. })
        ));
        assert!(matches!(
            settings(&["--url=http://"], env),
            Err(SettingsError::BadUrl { .. })
        ));
        assert_eq!(
            settings(&["--url=https://hub.example.org/hub/api//"], env)
                .unwrap()
                .hub
                .base_url,
            "https://hub.example.org/hub/api"
        );
    }

    /// A config file in a temporary directory, for one test.
    fn config_file(name: &str, text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        (dir, path)
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let (_dir, path) = config_file(
            "culler.toml",
            "url = \"http://from-file:8081/hub/api\"\ntimeout = 3600\ncull_every = 60\nconcurrency = 4\n",
        );
        let config = format!("--config={path}");
        let token = &[("JUPYTERHUB_API_TOKEN", "t")];
        let s = settings(&[&config, "--timeout=7200"], token).unwrap();
        assert_eq!(s.policy.timeout_secs, 7200, "the flag wins");
        assert_eq!(s.cull_every, Duration::from_secs(60), "the file fills in");
        assert_eq!(s.concurrency, 4);
        assert_eq!(s.hub.base_url, "http://from-file:8081/hub/api");
        let s = settings(&[&config], HUB).unwrap();
        assert_eq!(
            s.hub.base_url, "http://127.0.0.1:8081/hub/api",
            "env wins over the file"
        );
        let s = settings(&[&config, "--url=http://flag/hub/api"], HUB).unwrap();
        assert_eq!(
            s.hub.base_url, "http://flag/hub/api",
            "the flag wins over env"
        );
    }

    #[test]
    fn the_generated_config_means_the_defaults() {
        let (_dir, path) = config_file("culler.toml", &crate::config::generate());
        let from_file = settings(&[&format!("--config={path}")], HUB).unwrap();
        let defaults = settings(&[], HUB).unwrap();
        assert_eq!(from_file.policy, defaults.policy);
        assert_eq!(from_file.cull_every, defaults.cull_every);
        assert_eq!(from_file.concurrency, defaults.concurrency);
        assert_eq!(from_file.retry, defaults.retry);
        assert_eq!(from_file.api_page_size, defaults.api_page_size);
        assert_eq!(from_file.metrics, defaults.metrics);
        assert_eq!(from_file.health_failures, defaults.health_failures);
        assert_eq!(from_file.log_level, defaults.log_level);
        assert_eq!(from_file.stop_timeout, defaults.stop_timeout);
        assert_eq!(
            (from_file.dry_run, from_file.log_format),
            (defaults.dry_run, defaults.log_format)
        );
    }

    #[test]
    fn config_files_that_cannot_be_used_are_named_with_the_problem() {
        let (_dir, path) = config_file("culler.toml", "timeout = 600\ncull_evry = 60\n");
        let err = settings(&[&format!("--config={path}")], HUB).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path) && text.contains("cull_evry"), "{text}");
        let missing = settings(&["--config=/nonexistent/culler.toml"], HUB).unwrap_err();
        assert!(missing.to_string().contains("cannot read it"), "{missing}");
        let (_dir, json) = config_file("culler.json", r#"{"timeout": 60, "bogus": 1}"#);
        let err = settings(&[&format!("--config={json}")], HUB).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let (_dir, json) = config_file("culler.json", r#"{"timeout": 60, "cull_users": true}"#);
        let s = settings(&[&format!("--config={json}")], HUB).unwrap();
        assert!(s.policy.cull_users && s.policy.timeout_secs == 60);
    }

    #[test]
    fn rules_come_from_the_file() {
        let (_dir, path) = config_file(
            "culler.toml",
            "[[rules]]\ngroup = \"instructors\"\nnever = true\n",
        );
        let s = settings(&[&format!("--config={path}")], HUB).unwrap();
        assert_eq!(s.policy.rules.len(), 1);
        assert!(s.policy.rules[0].never);
    }

    #[test]
    fn user_limits_default_to_the_server_limits() {
        let s = settings(&["--timeout=3600", "--max-age=86400"], HUB).unwrap();
        assert_eq!(s.policy.user_timeout_secs, 3600);
        assert_eq!(s.policy.user_max_age_secs, Some(86400));
        let s = settings(
            &[
                "--timeout=3600",
                "--max-age=86400",
                "--cull-users-timeout=259200",
                "--cull-users-max-age=0",
            ],
            HUB,
        )
        .unwrap();
        assert_eq!(s.policy.user_timeout_secs, 259_200);
        assert_eq!(s.policy.user_max_age_secs, None);
    }

    #[test]
    fn output_and_log_formats_take_text_or_json() {
        assert!(
            settings(&["--once", "--output=json"], HUB)
                .unwrap()
                .json_output
        );
        assert!(!settings(&["--output=text"], HUB).unwrap().json_output);
        assert_eq!(
            settings(&["--output=json"], HUB).unwrap_err(),
            SettingsError::OutputNeedsOnce
        );
        assert!(matches!(
            settings(&["--once", "--output=yaml"], HUB),
            Err(SettingsError::BadChoice {
                flag: "--output",
                ..
            })
        ));
        assert_eq!(
            settings(&["--log-format=JSON"], HUB).unwrap().log_format,
            LogFormat::Json
        );
        assert!(matches!(
            settings(&["--log-format=xml"], HUB),
            Err(SettingsError::BadChoice {
                flag: "--log-format",
                ..
            })
        ));
    }

    #[test]
    fn dry_run_metrics_and_health_settings() {
        let s = settings(
            &[
                "--dry-run",
                "--metrics-bind=127.0.0.1:9090",
                "--health-failures=5",
            ],
            HUB,
        )
        .unwrap();
        assert!(s.dry_run);
        assert_eq!(s.metrics.unwrap().addr, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(s.health_failures, 5);
        let defaults = settings(&[], HUB).unwrap();
        assert!(!defaults.dry_run && defaults.metrics.is_none() && defaults.health_failures == 3);
        assert!(matches!(
            settings(&["--health-failures=0"], HUB),
            Err(SettingsError::OutOfRange {
                flag: "--health-failures",
                ..
            })
        ));
        assert!(matches!(
            settings(&["--metrics-bind=somewhere"], HUB),
            Err(SettingsError::MetricsBind(_))
        ));
    }

    #[test]
    fn a_managed_service_with_a_url_serves_metrics_there_and_under_its_prefix() {
        let mut env = HUB.to_vec();
        env.push(("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"));
        env.push(("JUPYTERHUB_SERVICE_PREFIX", "/services/idle-culler/"));
        let managed = settings(&[], &env).unwrap();
        assert_eq!(
            managed.metrics.unwrap().addr,
            "127.0.0.1:10101".parse().unwrap()
        );
        assert_eq!(
            managed.service_prefix.as_deref(),
            Some("/services/idle-culler/")
        );
        let mut env = HUB.to_vec();
        env.push(("JUPYTERHUB_SERVICE_URL", "https://culler:8443"));
        env.push(("JUPYTERHUB_SERVICE_PREFIX", "/services/idle-culler/"));
        let unservable = settings(&[], &env).unwrap();
        assert!(unservable.metrics.is_none(), "metrics never stop culling");
        assert!(
            unservable
                .warnings
                .iter()
                .any(|w| w.contains("serving no /metrics")),
            "{:?}",
            unservable.warnings
        );
    }

    #[test]
    fn a_managed_service_without_a_url_serves_no_metrics() {
        // The hub sets JUPYTERHUB_SERVICE_URL for every managed service (a
        // random loopback port when it has no url), the prefix only with a
        // url.
        let mut env = HUB.to_vec();
        env.push(("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:43817/"));
        let managed = settings(&[], &env).unwrap();
        assert!(managed.metrics.is_none(), "{:?}", managed.metrics);
        assert!(managed.warnings.is_empty(), "{:?}", managed.warnings);
        // --metrics-bind still serves, wherever the culler runs.
        let asked = settings(&["--metrics-bind=127.0.0.1:0"], &env).unwrap();
        assert!(asked.metrics.is_some());
        // A blank prefix is no prefix.
        env.push(("JUPYTERHUB_SERVICE_PREFIX", "  "));
        assert!(settings(&[], &env).unwrap().metrics.is_none());
    }

    #[test]
    fn userinfo_in_the_url_is_refused_without_showing_the_password() {
        let env = &[("JUPYTERHUB_API_TOKEN", "t")];
        let err = settings(&["--url=http://admin:pa55word@hub:8081/hub/api"], env).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, SettingsError::BadUrl { .. }), "{text}");
        assert!(
            !text.contains("pa55word") && !text.contains("admin"),
            "{text}"
        );
        assert!(text.contains("***@hub:8081"), "{text}");
    }

    #[test]
    fn a_query_or_fragment_in_the_url_is_refused() {
        let env = &[("JUPYTERHUB_API_TOKEN", "t")];
        for url in [
            "--url=http://hub:8081/hub/api?token=x",
            "--url=http://hub:8081/hub/api#users",
        ] {
            let err = settings(&[url], env).unwrap_err();
            assert!(err.to_string().contains("query"), "{url}: {err}");
        }
    }

    #[test]
    fn retries_and_their_delay_are_flags() {
        let s = settings(&[], HUB).unwrap();
        assert_eq!(s.retry, RetryPolicy::default());
        let s = settings(&["--retries=0", "--retry-delay=0.25"], HUB).unwrap();
        assert_eq!(s.retry.retries, 0);
        assert_eq!(s.retry.base_delay, Duration::from_millis(250));
        assert!(matches!(
            settings(&["--retries=21"], HUB),
            Err(SettingsError::OutOfRange {
                flag: "--retries",
                ..
            })
        ));
        assert!(matches!(
            settings(&["--retry-delay=-1"], HUB),
            Err(SettingsError::NotSeconds {
                flag: "--retry-delay",
                ..
            })
        ));
    }

    #[test]
    fn request_timeout_from_env() {
        let mut env = HUB.to_vec();
        env.push(("JUPYTERHUB_REQUEST_TIMEOUT", "5"));
        assert_eq!(
            settings(&[], &env).unwrap().hub.request_timeout,
            Duration::from_secs(5)
        );
        for bad in ["soon", "0", "-1", "1e300", "NaN"] {
            env.pop();
            env.push(("JUPYTERHUB_REQUEST_TIMEOUT", bad));
            assert!(
                matches!(
                    settings(&[], &env),
                    Err(SettingsError::BadEnv {
                        name: "JUPYTERHUB_REQUEST_TIMEOUT",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unreadable_certificates_fail_at_start() {
        let err = settings(
            &["--ssl-enabled", "--internal-certs-location=/nonexistent"],
            HUB,
        )
        .unwrap_err();
        assert!(matches!(err, SettingsError::Tls(_)), "{err}");
        assert!(err.to_string().contains("/nonexistent/hub-ca/hub-ca.crt"));
    }

    #[test]
    fn https_urls_trust_the_system_bundle_or_ssl_cert_file() {
        let url = "--url=https://hub.example.org/hub/api";
        let bundle = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tls/test-ca.pem"
        );
        let s = settings(
            &[url],
            &[("JUPYTERHUB_API_TOKEN", "t"), ("SSL_CERT_FILE", bundle)],
        )
        .unwrap();
        assert!(s.hub.tls.is_some());
        let err = settings(
            &[url],
            &[
                ("JUPYTERHUB_API_TOKEN", "t"),
                ("SSL_CERT_FILE", "/nonexistent.pem"),
            ],
        )
        .unwrap_err();
        assert!(matches!(err, SettingsError::SystemRoots(_)), "{err}");
        assert!(settings(
            &["--url=http://hub/hub/api"],
            &[("JUPYTERHUB_API_TOKEN", "t")]
        )
        .unwrap()
        .hub
        .tls
        .is_none());
    }

    #[test]
    fn log_level() {
        assert_eq!(
            settings(&["--log-level=DEBUG"], HUB).unwrap().log_level,
            LogLevel::Debug
        );
        assert!(matches!(
            settings(&["--log-level=loud"], HUB),
            Err(SettingsError::BadLogLevel(_))
        ));
    }
}
