//! The command line as typed, before validation; the only module that knows
//! structopt, so swapping it for clap touches this file alone.
//!
//! Every value stays a string here: `settings` turns them into checked types
//! with error messages that name the flag. Flags are upstream's, spelled in
//! every way deployed hubs pass them (see [`normalize`]).

use std::ffi::OsString;
use structopt::clap::AppSettings;
use structopt::StructOpt;

/// The flags exactly as given (after [`normalize`]).
#[derive(Clone, Debug, Default, StructOpt)]
#[structopt(
    name = "jupyterhub-idle-culler-rs",
    about = "Stops idle JupyterHub servers and, with --cull-users, deletes idle users.\n\
             Needs JUPYTERHUB_API_TOKEN; JUPYTERHUB_API_URL is the default --url;\n\
             JUPYTERHUB_REQUEST_TIMEOUT (seconds, default 60) bounds each request.",
    global_settings = &[AppSettings::AllArgsOverrideSelf, AppSettings::DeriveDisplayOrder],
)]
pub struct RawArgs {
    /// Users to request per page of the hub's paginated user list (0: the hub's default page size)
    #[structopt(long, value_name = "N", allow_hyphen_values = true)]
    pub api_page_size: Option<String>,

    /// The most requests outstanding to the hub at any moment, lists and deletes alike
    #[structopt(long, value_name = "N", allow_hyphen_values = true)]
    pub concurrency: Option<String>,

    /// Whether admin users may be deleted (only with --cull-users) [default: true]
    #[structopt(long, value_name = "BOOL", min_values = 0, max_values = 1)]
    pub cull_admin_users: Option<Option<String>>,

    /// Whether idle default servers are stopped [default: true]
    #[structopt(long, value_name = "BOOL", min_values = 0, max_values = 1)]
    pub cull_default_servers: Option<Option<String>>,

    /// Seconds between passes (0: half of --timeout)
    #[structopt(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub cull_every: Option<String>,

    /// Whether idle named servers are stopped [default: true]
    #[structopt(long, value_name = "BOOL", min_values = 0, max_values = 1)]
    pub cull_named_servers: Option<Option<String>>,

    /// Delete users whose servers are all stopped and who are idle too (for temporary users) [default: false]
    #[structopt(long, value_name = "BOOL", min_values = 0, max_values = 1)]
    pub cull_users: Option<Option<String>>,

    /// Idle seconds after which a user whose servers are all stopped is deleted [default: --timeout]
    #[structopt(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub cull_users_timeout: Option<String>,

    /// Seconds after which such a user is deleted even when active (0: never) [default: --max-age]
    #[structopt(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub cull_users_max_age: Option<String>,

    /// Where JupyterHub's internal-ssl certificates are (with --ssl-enabled) [default: internal-ssl]
    #[structopt(long, value_name = "DIR")]
    pub internal_certs_location: Option<String>,

    /// Seconds after which servers (and, with --cull-users, users) are culled even when active (0: never)
    #[structopt(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub max_age: Option<String>,

    /// Remove culled named servers instead of only stopping them [default: false]
    #[structopt(long, value_name = "BOOL", min_values = 0, max_values = 1)]
    pub remove_named_servers: Option<Option<String>>,

    /// Reach the hub over JupyterHub's internal SSL, with its client certificate [default: false]
    #[structopt(long, value_name = "BOOL", min_values = 0, max_values = 1)]
    pub ssl_enabled: Option<Option<String>>,

    /// Idle seconds after which a server is stopped [default: 600]
    #[structopt(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub timeout: Option<String>,

    /// The hub's API URL [default: $JUPYTERHUB_API_URL]
    #[structopt(long, value_name = "URL")]
    pub url: Option<String>,

    /// Times a failed request is sent again within a pass (connection errors, timeouts, 429, 5xx) [default: 5]
    #[structopt(long, value_name = "N", allow_hyphen_values = true)]
    pub retries: Option<String>,

    /// Seconds the first retry waits at most; each retry doubles it, up to 30 s, with random jitter [default: 1]
    #[structopt(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub retry_delay: Option<String>,

    /// Seconds a stop (SIGINT, SIGTERM) lets the requests on the wire finish before exiting [default: 8]
    #[structopt(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub stop_timeout: Option<String>,

    /// Run one pass, then exit: 0 when it succeeded, 1 when anything failed
    #[structopt(long)]
    pub once: bool,

    /// Decide and report what would be culled, and why; send no stop and no delete [default: false]
    #[structopt(long, value_name = "BOOL", min_values = 0, max_values = 1)]
    pub dry_run: Option<Option<String>>,

    /// With --once: `json` writes one JSON object per decision to stdout (see the README) [default: text]
    #[structopt(long, value_name = "FORMAT")]
    pub output: Option<String>,

    /// Serve /metrics (Prometheus) and /health at HOST:PORT [default: the service URL the hub gave, if any]
    #[structopt(long, value_name = "HOST:PORT")]
    pub metrics_bind: Option<String>,

    /// /health answers 503 after this many failed passes in a row [default: 3]
    #[structopt(long, value_name = "N", allow_hyphen_values = true)]
    pub health_failures: Option<String>,

    /// DEBUG, INFO, WARN, ERROR or CRITICAL (or 10..50) [default: INFO]
    #[structopt(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// `text` (for people) or `json` (one object per line, for log aggregators) [default: text]
    #[structopt(long, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Log at DEBUG level (every server kept, and why)
    #[structopt(long)]
    pub debug: bool,

    /// A TOML (or .json) config file with any of these settings and the policy rules (see --generate-config)
    #[structopt(long, value_name = "FILE")]
    pub config: Option<String>,

    /// Print a complete, commented config file with the defaults, and exit
    #[structopt(long)]
    pub generate_config: bool,
}

/// Why the command line could not be read, or a request for help or version.
#[derive(Debug)]
pub enum CliOutcome {
    /// `--help` or `--version`: print this to stdout (clap has already
    /// printed the version, leaving this empty) and exit 0.
    Info(String),
    /// A malformed command line: one line naming the problem.
    Invalid(String),
}

/// Parses the command line (`args` includes the program name).
pub fn parse<I, T>(args: I) -> Result<RawArgs, CliOutcome>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let normalized: Vec<OsString> = args
        .iter()
        .enumerate()
        .map(|(i, arg)| {
            if i == 0 {
                return arg.clone();
            }
            match arg.to_str() {
                Some(text) => OsString::from(normalize(text)),
                None => arg.clone(),
            }
        })
        .collect();
    RawArgs::from_iter_safe(normalized).map_err(|err| {
        use structopt::clap::ErrorKind;
        match err.kind {
            ErrorKind::HelpDisplayed | ErrorKind::VersionDisplayed => CliOutcome::Info(err.message),
            _ => CliOutcome::Invalid(first_line(&err.message)),
        }
    })
}

/// Rewrites one argument to the canonical `--kebab-name[=value]` form:
/// `--IdleCuller.timeout=600` (upstream 2.0's traitlets form) and
/// `--cull_every=600` (underscores, which 1.x accepted) both become the
/// kebab-case flag. Values are left untouched.
pub fn normalize(arg: &str) -> String {
    let Some(flag) = arg.strip_prefix("--") else {
        return arg.to_owned();
    };
    let (name, value) = match flag.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (flag, None),
    };
    let name = name
        .strip_prefix("IdleCuller.")
        .unwrap_or(name)
        .replace('_', "-");
    match value {
        Some(value) => format!("--{name}={value}"),
        None => format!("--{name}"),
    }
}

/// clap's messages carry usage and hints over several lines; operators get
/// the line that names the problem.
fn first_line(message: &str) -> String {
    let line = message
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid command line");
    let line = line.trim().trim_start_matches("error:").trim();
    format!("{line} (see --help)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> RawArgs {
        let mut all = vec!["jupyterhub-idle-culler-rs"];
        all.extend_from_slice(args);
        match parse(all) {
            Ok(raw) => raw,
            Err(outcome) => panic!("{args:?} should parse, got {outcome:?}"),
        }
    }

    fn parse_err(args: &[&str]) -> String {
        let mut all = vec!["jupyterhub-idle-culler-rs"];
        all.extend_from_slice(args);
        match parse(all) {
            Err(CliOutcome::Invalid(line)) => line,
            other => panic!("{args:?} should be rejected, got {other:?}"),
        }
    }

    #[test]
    fn normalizes_traitlets_and_underscore_spellings() {
        assert_eq!(normalize("--IdleCuller.timeout=600"), "--timeout=600");
        assert_eq!(
            normalize("--IdleCuller.cull_users=True"),
            "--cull-users=True"
        );
        assert_eq!(normalize("--cull_every=600"), "--cull-every=600");
        assert_eq!(
            normalize("--url=http://a_b/hub/api"),
            "--url=http://a_b/hub/api"
        );
        assert_eq!(normalize("600"), "600");
        assert_eq!(normalize("--cull-users"), "--cull-users");
    }

    #[test]
    fn space_separated_values() {
        let raw = parse_ok(&[
            "--timeout",
            "60",
            "--cull-users",
            "false",
            "--url",
            "http://h/hub/api",
        ]);
        assert_eq!(raw.timeout.as_deref(), Some("60"));
        assert_eq!(raw.cull_users, Some(Some("false".into())));
        assert_eq!(raw.url.as_deref(), Some("http://h/hub/api"));
    }

    #[test]
    fn traitlets_spelling_and_repeats() {
        let raw = parse_ok(&[
            "--IdleCuller.timeout=600",
            "--IdleCuller.cull_users=True",
            "--timeout=700",
        ]);
        assert_eq!(
            raw.timeout.as_deref(),
            Some("700"),
            "the last occurrence wins"
        );
        assert_eq!(raw.cull_users, Some(Some("True".into())));
    }

    #[test]
    fn negative_numbers_reach_validation() {
        assert_eq!(parse_ok(&["--timeout=-5"]).timeout.as_deref(), Some("-5"));
        assert_eq!(
            parse_ok(&["--timeout", "-5"]).timeout.as_deref(),
            Some("-5")
        );
    }

    #[test]
    fn unknown_flags_are_one_line_errors() {
        let line = parse_err(&["--bogus=1"]);
        assert!(line.contains("--bogus"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn help_and_version_are_info() {
        match parse(["jupyterhub-idle-culler-rs", "--help"]) {
            Err(CliOutcome::Info(text)) => assert!(text.contains("--cull-users"), "{text}"),
            other => panic!("--help: {other:?}"),
        }
        assert!(matches!(
            parse(["jupyterhub-idle-culler-rs", "--version"]),
            Err(CliOutcome::Info(_))
        ));
    }
}
