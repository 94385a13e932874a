//! The command line as typed, before validation; the only module that knows
//! structopt, so swapping it for clap touches this file alone.
//!
//! Every value stays a string here: `settings` turns them into checked types
//! with error messages that name the flag. Flags are upstream's, spelled in
//! every way deployed hubs pass them (see [`normalize`]).

use crate::rules::Rule;
use serde::Deserialize;
use std::ffi::OsString;
use structopt::clap::AppSettings;
use structopt::StructOpt;

/// How an option's value is written in the config file (on the command
/// line every value is text, checked by `settings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number: `timeout = 600`.
    Number,
    /// Seconds, fractions allowed: `retry_delay = 0.5`.
    Seconds,
    /// Text: `log_level = "INFO"`.
    Text,
    /// `true` or `false`; on the command line also bare (`--cull-users`).
    Bool,
}

/// What an option is when not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionDefault {
    /// This value, as it would be written on the command line.
    Value(&'static str),
    /// Unset; the text says what holds then (`--timeout`,
    /// `$JUPYTERHUB_API_URL`), and the example is a value to write.
    Unset {
        /// What holds when it is unset.
        meaning: &'static str,
        /// A value an operator might write.
        example: &'static str,
    },
}

/// One option as `--help` and `--generate-config` show it.
#[derive(Clone, Copy, Debug)]
pub struct OptionDoc {
    /// Its name in the config file (the flag's, with underscores).
    pub key: &'static str,
    /// What it does, as `--help` says it.
    pub help: &'static str,
    /// How its value is written in the config file.
    pub kind: Kind,
    /// What it is when not given.
    pub default: OptionDefault,
}

/// A field's value from a default ([`RawArgs::defaults`]).
trait FromDefault {
    fn from_default(value: &str) -> Self;
}

impl FromDefault for Option<String> {
    fn from_default(value: &str) -> Self {
        Some(value.to_owned())
    }
}

impl FromDefault for Option<Option<String>> {
    fn from_default(value: &str) -> Self {
        Some(Some(value.to_owned()))
    }
}

/// Every option, defined once: the command line, `--help`, the config
/// file (its keys, their types, unknown keys refused), its precedence
/// ([`RawArgs::or`]), the defaults and `--generate-config` all come from
/// this list. Each entry: the help line, then
/// `name: Kind("VALUE NAME") = default("text")` or
/// `= unset("what holds", "an example")`. Adding an option is one entry
/// here and its check in `settings`.
macro_rules! options {
    ($(
        #[doc = $help:literal]
        $name:ident : $kind:ident $(($value_name:literal))? = $when:ident($($default:literal),+);
    )*) => {
        options!(@struct [] $(
            [$help] $name $kind ($($value_name)?) $when($($default),+);
        )*);

        /// The options as `--help` and `--generate-config` show them.
        pub const OPTIONS: &[OptionDoc] = &[$(
            OptionDoc {
                key: stringify!($name),
                help: $help,
                kind: Kind::$kind,
                default: options!(@doc_default $when($($default),+)),
            },
        )*];

        impl RawArgs {
            /// Every option that is not set here taken from `lower`: so
            /// `flags.or(environment).or(file).or(RawArgs::defaults())` is
            /// the precedence. The policy rules come from the config file
            /// alone.
            pub fn or(self, lower: RawArgs) -> RawArgs {
                RawArgs {
                    $($name: self.$name.or(lower.$name),)*
                    debug: self.debug || lower.debug,
                    config: self.config.or(lower.config),
                    generate_config: self.generate_config || lower.generate_config,
                    rules: if self.rules.is_empty() { lower.rules } else { self.rules },
                }
            }

            /// Every option with a default, at its default.
            pub fn defaults() -> RawArgs {
                RawArgs {
                    $($name: options!(@value $when($($default),+)),)*
                    ..RawArgs::default()
                }
            }
        }
    };

    (@doc_default default($value:literal)) => { OptionDefault::Value($value) };
    (@doc_default unset($meaning:literal, $example:literal)) => {
        OptionDefault::Unset { meaning: $meaning, example: $example }
    };
    (@value default($value:literal)) => { FromDefault::from_default($value) };
    (@value unset($meaning:literal, $example:literal)) => { None };
    (@help $help:literal default($value:literal)) => {
        concat!($help, " [default: ", $value, "]")
    };
    (@help $help:literal unset($meaning:literal, $example:literal)) => {
        concat!($help, " [default: ", $meaning, "]")
    };

    // One field at a time, by kind (a macro cannot stand where a field
    // does, so the struct is written once all fields are).
    (@struct [$($done:tt)*] [$help:literal] $name:ident Bool () $when:ident($($d:literal),+); $($rest:tt)*) => {
        options!(@struct [$($done)*
            #[structopt(long, value_name = "BOOL", min_values = 0, max_values = 1,
                        help = options!(@help $help $when($($d),+)))]
            #[serde(default, deserialize_with = "file::boolean")]
            #[doc = $help]
            pub $name: Option<Option<String>>,
        ] $($rest)*);
    };
    (@struct [$($done:tt)*] [$help:literal] $name:ident $kind:ident ($value_name:literal) $when:ident($($d:literal),+); $($rest:tt)*) => {
        options!(@struct [$($done)*
            #[structopt(long, value_name = $value_name, allow_hyphen_values = true,
                        help = options!(@help $help $when($($d),+)))]
            #[serde(default, deserialize_with = "file::value")]
            #[doc = $help]
            pub $name: Option<String>,
        ] $($rest)*);
    };
    (@struct [$($done:tt)*]) => {
        /// The options exactly as given (after [`normalize`]), on the
        /// command line or in the config file: every value is text here,
        /// and `settings` turns them into checked types with messages that
        /// name the flag.
        #[derive(Clone, Debug, std::default::Default, StructOpt, Deserialize)]
        #[structopt(
            name = "jupyterhub-idle-culler-rs",
            about = "Stops idle JupyterHub servers and, with --cull-users, deletes idle users.\n\
                     Needs JUPYTERHUB_API_TOKEN; JUPYTERHUB_API_URL is the default --url;\n\
                     JUPYTERHUB_REQUEST_TIMEOUT (seconds, default 60) bounds each request.",
            global_settings = &[AppSettings::AllArgsOverrideSelf, AppSettings::DeriveDisplayOrder],
        )]
        #[serde(deny_unknown_fields)]
        pub struct RawArgs {
            $($done)*

            /// Log at DEBUG level (every server kept, and why)
            #[structopt(long)]
            #[serde(skip)]
            pub debug: bool,

            /// A TOML (or .json) config file with any of these settings and the policy rules (see --generate-config)
            #[structopt(long, value_name = "FILE")]
            #[serde(skip)]
            pub config: Option<String>,

            /// Print a complete, commented config file with the defaults, and exit
            #[structopt(long)]
            #[serde(skip)]
            pub generate_config: bool,

            /// The policy rules, in order (config file only).
            #[structopt(skip)]
            #[serde(default)]
            pub rules: Vec<Rule>,
        }
    };
}

options! {
    /// Idle seconds after which a server is stopped
    timeout: Number("SECONDS") = default("600");
    /// Seconds between the starts of two passes (0: half of --timeout)
    cull_every: Number("SECONDS") = default("0");
    /// Seconds after which servers (and, with --cull-users, users) are culled even when active (0: never)
    max_age: Number("SECONDS") = default("0");
    /// The most requests outstanding to the hub at any moment, lists and deletes alike
    concurrency: Number("N") = default("10");
    /// Users to request per page of the hub's paginated user list (0: the hub's default page size)
    api_page_size: Number("N") = default("0");
    /// Delete users whose servers are all stopped and who are idle too (for temporary users)
    cull_users: Bool = default("false");
    /// Idle seconds after which a user whose servers are all stopped is deleted
    cull_users_timeout: Number("SECONDS") = unset("--timeout", "259200");
    /// Seconds after which such a user is deleted even when active (0: never)
    cull_users_max_age: Number("SECONDS") = unset("--max-age", "0");
    /// Whether admin users may be deleted (only with --cull-users)
    cull_admin_users: Bool = default("true");
    /// Whether idle default servers are stopped
    cull_default_servers: Bool = default("true");
    /// Whether idle named servers are stopped
    cull_named_servers: Bool = default("true");
    /// Remove culled named servers instead of only stopping them
    remove_named_servers: Bool = default("false");
    /// The hub's API URL
    url: Text("URL") = unset("$JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api");
    /// Reach the hub over JupyterHub's internal SSL, with its client certificate
    ssl_enabled: Bool = default("false");
    /// Where JupyterHub's internal-ssl certificates are (with --ssl-enabled)
    internal_certs_location: Text("DIR") = default("internal-ssl");
    /// `hub`: idle by the hub's last_activity (upstream's way); `server`: a server the hub would cull for idleness is first asked about its kernels and terminals, and kept if they are in use (needs the proxy's URL and the access:servers scope)
    activity: Text("SOURCE") = default("hub");
    /// With --activity=server: open connections alone (a browser tab left open) show a server in use
    activity_connections: Bool = default("false");
    /// With --activity=server: seconds a server may take to say what runs inside it before the hub's timestamps decide
    activity_timeout: Seconds("SECONDS") = default("5");
    /// The hub's proxy, through which servers are asked (--activity=server): the hub's public URL, http://proxy-public under zero-to-jupyterhub
    proxy_url: Text("URL") = unset("none: --activity=server needs it", "http://proxy-public");
    /// Warn this many seconds before a server (or, with --cull-users, a user) is culled: a log line and one `warn` event per idle period (0: no warnings)
    warn_before: Number("SECONDS") = default("0");
    /// POST each event (warn, culled, user_deleted, stop_failed, stuck) as JSON to this URL; signed when JUPYTERHUB_IDLE_CULLER_NOTIFY_SECRET is set
    notify_url: Text("URL") = unset("none", "http://127.0.0.1:8000/culler-events");
    /// Run this shell command for each event, with the event's JSON on its stdin
    notify_command: Text("COMMAND") = unset("none", "/usr/local/bin/culler-event");
    /// Seconds one delivery of an event may take before it counts as failed
    notify_timeout: Seconds("SECONDS") = default("5");
    /// Times a failed delivery of an event is tried again (1 s, then doubling, apart)
    notify_retries: Number("N") = default("2");
    /// Report a server still stopping (after a 202), or spawning, this many seconds after it was first seen so: WARN line, `stuck` event, metric (0: never, and only ready servers are listed, as upstream does)
    stuck_after: Number("SECONDS") = default("1800");
    /// Stop a server whose spawn is stuck (pending spawn for --stuck-after): the hub cancels the spawn
    cull_stuck_spawns: Bool = default("false");
    /// Times a failed request is sent again within a pass (connection errors, timeouts, 429, 5xx)
    retries: Number("N") = default("5");
    /// Seconds the first retry waits at most; each retry doubles it, up to 30 s, with random jitter
    retry_delay: Seconds("SECONDS") = default("1");
    /// Seconds a stop (SIGINT, SIGTERM) lets the requests on the wire finish before exiting
    stop_timeout: Seconds("SECONDS") = default("8");
    /// Run one pass, then exit: 0 when it succeeded, 1 when anything failed
    once: Bool = default("false");
    /// Decide and report what would be culled, and why; send no stop and no delete
    dry_run: Bool = default("false");
    /// With --once: `json` writes one JSON object per decision to stdout (see the README)
    output: Text("FORMAT") = default("text");
    /// Serve /metrics (Prometheus) and /health at HOST:PORT
    metrics_bind: Text("HOST:PORT") = unset("the service URL the hub gave, if it routes to this service", "127.0.0.1:9090");
    /// Let /metrics be read only with a hub token that holds the read:metrics scope (false: by anyone; only with a loopback --metrics-bind)
    metrics_auth: Bool = default("true");
    /// /health answers 503 after this many failed passes in a row
    health_failures: Number("N") = default("3");
    /// DEBUG, INFO, WARN, ERROR or CRITICAL (or 10..50)
    log_level: Text("LEVEL") = default("INFO");
    /// `text` (for people) or `json` (one object per line, for log aggregators)
    log_format: Text("FORMAT") = default("text");
}

/// How the config file's values become the command line's text: each
/// option's [`Kind`] is checked by the file's parser (so a wrong type is
/// named with its line), then written as a flag would be.
mod file {
    use serde::de::{self, Deserializer, Visitor};
    use std::fmt;

    /// A number, seconds or text, as text.
    pub fn value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(Scalar).map(Some)
    }

    /// `true` or `false`, as the text of a flag's value.
    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        let value = <bool as serde::Deserialize>::deserialize(d)?;
        Ok(Some(Some(value.to_string())))
    }

    struct Scalar;

    impl Visitor<'_> for Scalar {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number or a string")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
    }
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
