//! What can be wrong with the options and the environment, each said in
//! one line that names the flag or variable and what would be right.

use crate::config::ConfigError;
use crate::hub::TlsError;
use crate::serve::{BindAddress, BindError};
use std::fmt;

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
    /// `--activity=server` (or a rule's `activity = "server"`) without
    /// `--proxy-url`.
    MissingProxyUrl,
    /// `--metrics-bind` is not an address to serve on.
    MetricsBind(BindError),
    /// `--metrics-auth=false` where others than this machine can reach
    /// `/metrics`.
    OpenMetrics(BindAddress),
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
            SettingsError::OpenMetrics(address) => write!(
                f,
                "--metrics-auth=false would let anyone who reaches {address} read /metrics: \
                 it is allowed only with a loopback --metrics-bind (e.g. 127.0.0.1:9090); \
                 otherwise give the scraper a hub token with the read:metrics scope"
            ),
            SettingsError::OutputNeedsOnce => f.write_str(
                "--output=json writes the decisions of one pass: add --once (and --dry-run to only look)",
            ),
            SettingsError::MissingProxyUrl => f.write_str(
                "--activity=server asks each server through the hub's proxy: give --proxy-url \
                 (the hub's public URL; http://proxy-public under zero-to-jupyterhub)",
            ),
        }
    }
}

impl std::error::Error for SettingsError {}
