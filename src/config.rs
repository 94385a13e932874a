//! The config file (`--config=FILE`): every flag, plus the policy rules.
//!
//! TOML (or JSON, for a file whose name ends in `.json`), with the flags'
//! names spelled with underscores as upstream's traitlets are
//! (`cull_every`, `cull_admin_users`). Precedence: a flag on the command
//! line wins over the environment (`JUPYTERHUB_API_URL`), which wins over
//! the file, which wins over the defaults. A key the culler does not know
//! is an error naming the key and the file: a typo must not silently leave
//! a user unprotected. Upstream's Python config files stay refused.

use crate::cli::RawArgs;
use crate::rules::Rule;
use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// The file's settings, each optional: absent means "as the flags and
/// defaults say".
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `--url`.
    pub url: Option<String>,
    /// `--timeout`.
    pub timeout: Option<u64>,
    /// `--cull-every`.
    pub cull_every: Option<u64>,
    /// `--max-age`.
    pub max_age: Option<u64>,
    /// `--concurrency`.
    pub concurrency: Option<u64>,
    /// `--api-page-size`.
    pub api_page_size: Option<u64>,
    /// `--cull-users`.
    pub cull_users: Option<bool>,
    /// `--cull-users-timeout`.
    pub cull_users_timeout: Option<u64>,
    /// `--cull-users-max-age`.
    pub cull_users_max_age: Option<u64>,
    /// `--cull-admin-users`.
    pub cull_admin_users: Option<bool>,
    /// `--cull-default-servers`.
    pub cull_default_servers: Option<bool>,
    /// `--cull-named-servers`.
    pub cull_named_servers: Option<bool>,
    /// `--remove-named-servers`.
    pub remove_named_servers: Option<bool>,
    /// `--ssl-enabled`.
    pub ssl_enabled: Option<bool>,
    /// `--internal-certs-location`.
    pub internal_certs_location: Option<String>,
    /// `--retries`.
    pub retries: Option<u64>,
    /// `--retry-delay`.
    pub retry_delay: Option<f64>,
    /// `--stop-timeout`.
    pub stop_timeout: Option<f64>,
    /// `--dry-run`.
    pub dry_run: Option<bool>,
    /// `--once`.
    pub once: Option<bool>,
    /// `--output`.
    pub output: Option<String>,
    /// `--metrics-bind`.
    pub metrics_bind: Option<String>,
    /// `--health-failures`.
    pub health_failures: Option<u64>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--log-format`.
    pub log_format: Option<String>,
    /// The policy rules, in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// A config file the culler cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// What is wrong, as the parser or the rules' check said it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--config={}: {}", self.file, self.problem.trim())
    }
}

impl std::error::Error for ConfigError {}

impl FileConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let error = |problem: String| ConfigError {
            file: file.clone(),
            problem,
        };
        let text =
            std::fs::read_to_string(path).map_err(|err| error(format!("cannot read it: {err}")))?;
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        let config = if is_json {
            serde_json::from_str(&text).map_err(|err| error(err.to_string()))?
        } else {
            Self::parse(&text).map_err(error)?
        };
        Ok(config)
    }

    /// Reads TOML text and checks its rules.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: FileConfig = toml::from_str(text).map_err(|err| {
            // One line, not the parser's drawing of the spot: it is logged.
            let message = err.message().trim();
            match err.span() {
                Some(span) => {
                    let start = span.start.min(text.len());
                    let number = text[..start].matches('\n').count() + 1;
                    let line = text.lines().nth(number - 1).unwrap_or("").trim();
                    format!("line {number} ({line}): {message}")
                }
                None => message.to_owned(),
            }
        })?;
        for (index, rule) in config.rules.iter().enumerate() {
            rule.check(index).map_err(|err| err.to_string())?;
        }
        Ok(config)
    }

    /// Fills the flags not given on the command line from the file. The URL
    /// is left out: the environment comes between the two.
    pub fn fill(&self, raw: &mut RawArgs) {
        fn text<T: ToString>(slot: &mut Option<String>, value: &Option<T>) {
            if slot.is_none() {
                *slot = value.as_ref().map(ToString::to_string);
            }
        }
        fn flag(slot: &mut Option<Option<String>>, value: Option<bool>) {
            if slot.is_none() {
                *slot = value.map(|v| Some(v.to_string()));
            }
        }
        text(&mut raw.timeout, &self.timeout);
        text(&mut raw.cull_every, &self.cull_every);
        text(&mut raw.max_age, &self.max_age);
        text(&mut raw.concurrency, &self.concurrency);
        text(&mut raw.api_page_size, &self.api_page_size);
        text(&mut raw.cull_users_timeout, &self.cull_users_timeout);
        text(&mut raw.cull_users_max_age, &self.cull_users_max_age);
        text(
            &mut raw.internal_certs_location,
            &self.internal_certs_location,
        );
        text(&mut raw.retries, &self.retries);
        text(&mut raw.retry_delay, &self.retry_delay);
        text(&mut raw.stop_timeout, &self.stop_timeout);
        text(&mut raw.metrics_bind, &self.metrics_bind);
        text(&mut raw.health_failures, &self.health_failures);
        text(&mut raw.log_level, &self.log_level);
        text(&mut raw.log_format, &self.log_format);
        text(&mut raw.output, &self.output);
        if !raw.once {
            raw.once = self.once.unwrap_or(false);
        }
        flag(&mut raw.cull_users, self.cull_users);
        flag(&mut raw.cull_admin_users, self.cull_admin_users);
        flag(&mut raw.cull_default_servers, self.cull_default_servers);
        flag(&mut raw.cull_named_servers, self.cull_named_servers);
        flag(&mut raw.remove_named_servers, self.remove_named_servers);
        flag(&mut raw.ssl_enabled, self.ssl_enabled);
        flag(&mut raw.dry_run, self.dry_run);
    }
}

/// The complete default config file, commented: what `--generate-config`
/// prints. It is itself valid input (the tests read it back) and means
/// exactly the defaults.
pub fn generate() -> String {
    r#"# jupyterhub-idle-culler-rs configuration (TOML), read with --config=FILE.
#
# Every setting is optional and means what the flag of the same name (with
# dashes) means. A flag on the command line wins over the environment
# (JUPYTERHUB_API_URL), which wins over this file, which wins over the
# defaults written here. An unknown key is an error.

# The hub's API URL; by default $JUPYTERHUB_API_URL, which the hub sets for
# the services it manages.
# url = "http://127.0.0.1:8081/hub/api"

# Idle seconds after which a server is stopped.
timeout = 600
# Seconds between the starts of two passes; 0 means timeout / 2.
cull_every = 0
# Seconds after which a server is stopped even when active; 0 means never.
max_age = 0
# The most requests outstanding to the hub at once.
concurrency = 10
# Users per page of the hub's user list; 0 means the hub's default.
api_page_size = 0

# Also delete users whose servers are all stopped and who are idle too.
cull_users = false
# Idle seconds after which such a user is deleted; unset means as timeout
# (e.g. 259200: users go three days after their servers).
# cull_users_timeout = 600
# Seconds after which such a user is deleted even when active (0: never);
# unset means as max_age.
# cull_users_max_age = 0
# Whether cull_users may delete admins.
cull_admin_users = true
# Whether idle default servers, and idle named servers, are stopped.
cull_default_servers = true
cull_named_servers = true
# Remove culled named servers instead of only stopping them.
remove_named_servers = false

# Reach a hub with c.JupyterHub.internal_ssl = True.
ssl_enabled = false
internal_certs_location = "internal-ssl"

# Times a failed request is sent again within a pass, and the most the first
# retry waits (each further retry doubles it, up to 30 s, with jitter).
retries = 5
retry_delay = 1.0

# On SIGINT or SIGTERM, seconds the requests on the wire may take to finish
# before the culler exits: JupyterHub 5 sends SIGTERM 10 s after SIGINT.
stop_timeout = 8.0

# Decide and report, but send no stop and no delete.
dry_run = false
# Run one pass and exit (for a CronJob); and, with it, "json" writes one
# decision record per server and user to stdout.
once = false
output = "text"

# Serve /metrics (Prometheus) and /health here, e.g. "127.0.0.1:9090"; empty
# means only when the hub gave this service a url (JUPYTERHUB_SERVICE_URL).
metrics_bind = ""
# /health answers 503 after this many failed passes in a row.
health_failures = 3

# DEBUG, INFO, WARN, ERROR or CRITICAL; and text or json.
log_level = "INFO"
log_format = "text"

# Policy rules, tried in order: the first that matches a server (or, for
# cull_users, a user) decides; what it does not set comes from the settings
# above. A rule matches on any of: user (name, exact or glob), group (needs
# the read:users:groups scope), admin (true/false), server ("default",
# "named" or a glob on the server's name), user_options (values of the
# server's user_options, e.g. KubeSpawner's profile; needs read:servers).
# It sets timeout and/or max_age (seconds), or never = true. Examples:
#
# [[rules]]
# name = "instructors are never culled"
# group = "instructors"
# never = true
#
# [[rules]]
# name = "GPU servers after 30 minutes"
# user_options = { profile = "gpu" }
# timeout = 1800
#
# [[rules]]
# name = "named servers after 2 hours"
# server = "named"
# timeout = 7200
"#
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_file_is_valid_and_holds_every_key() {
        let config = FileConfig::parse(&generate()).unwrap();
        assert_eq!(config.timeout, Some(600));
        assert_eq!(config.concurrency, Some(10));
        assert_eq!(config.retry_delay, Some(1.0));
        assert_eq!(config.log_format.as_deref(), Some("text"));
        assert!(config.rules.is_empty());
        // Every key of the file type is written (commented or not).
        let text = generate();
        let json = serde_json::to_value(FileConfigKeys::default()).unwrap();
        for key in json.as_object().unwrap().keys() {
            assert!(
                text.contains(&format!("\n{key} = "))
                    || text.contains(&format!("# {key} = "))
                    || text.contains(&format!("# [[{key}]]")),
                "{key} is missing from the generated file"
            );
        }
    }

    /// The key names of [`FileConfig`], to check the generated file against
    /// (serialising the real type would need it to be Serialize).
    #[derive(serde::Serialize, Default)]
    struct FileConfigKeys {
        url: (),
        timeout: (),
        cull_every: (),
        max_age: (),
        concurrency: (),
        api_page_size: (),
        cull_users: (),
        cull_users_timeout: (),
        cull_users_max_age: (),
        cull_admin_users: (),
        cull_default_servers: (),
        cull_named_servers: (),
        remove_named_servers: (),
        ssl_enabled: (),
        internal_certs_location: (),
        retries: (),
        retry_delay: (),
        dry_run: (),
        once: (),
        output: (),
        metrics_bind: (),
        health_failures: (),
        log_level: (),
        log_format: (),
        rules: (),
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = FileConfig::parse("timeout = 600\ncull_evry = 60\n").unwrap_err();
        assert!(err.contains("cull_evry"), "{err}");
        let err = FileConfig::parse("[[rules]]\ngroups = \"x\"\nnever = true\n").unwrap_err();
        assert!(err.contains("groups"), "{err}");
    }

    #[test]
    fn a_rule_that_says_nothing_is_refused() {
        let err = FileConfig::parse("[[rules]]\nname = \"empty\"\nuser = \"a\"\n").unwrap_err();
        assert!(err.contains("rule \"empty\" sets nothing"), "{err}");
    }

    #[test]
    fn errors_are_one_line_naming_the_line() {
        let err = FileConfig::parse("timeout = 600\n\ncull_evry = 60\n").unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.starts_with("line 3 (cull_evry = 60): unknown field `cull_evry`"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_type_is_named() {
        let err = FileConfig::parse("timeout = \"an hour\"\n").unwrap_err();
        assert!(err.contains("timeout"), "{err}");
    }

    #[test]
    fn file_values_fill_only_what_the_flags_left() {
        let config =
            FileConfig::parse("timeout = 3600\ncull_users = true\nretry_delay = 0.5\n").unwrap();
        let mut raw = RawArgs {
            timeout: Some("60".into()),
            ..RawArgs::default()
        };
        config.fill(&mut raw);
        assert_eq!(raw.timeout.as_deref(), Some("60"), "the flag wins");
        assert_eq!(raw.cull_users, Some(Some("true".into())));
        assert_eq!(raw.retry_delay.as_deref(), Some("0.5"));
        assert_eq!(raw.max_age, None);
    }

    #[test]
    fn once_and_output_come_from_the_file_too() {
        let config = FileConfig::parse("once = true\noutput = \"json\"\n").unwrap();
        let mut raw = RawArgs::default();
        config.fill(&mut raw);
        assert!(raw.once);
        assert_eq!(raw.output.as_deref(), Some("json"));
        let mut flagged = RawArgs {
            once: true,
            ..RawArgs::default()
        };
        FileConfig::parse("once = false\n")
            .unwrap()
            .fill(&mut flagged);
        assert!(flagged.once, "a flag given wins over the file");
    }
}
