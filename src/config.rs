//! The config file (`--config=FILE`): every option, plus the policy rules.
//!
//! TOML (or JSON, for a file whose name ends in `.json`), with the flags'
//! names spelled with underscores as upstream's traitlets are
//! (`cull_every`, `cull_admin_users`). The file is read into the same
//! [`RawArgs`] as the command line, whose one definition of each option
//! ([`crate::cli`]) gives the keys and their types; precedence is
//! [`RawArgs::or`]'s. A key the culler does not know is an error naming
//! the key and the file: a typo must not silently leave a user
//! unprotected. Upstream's Python config files stay refused.

use crate::cli::{Kind, OptionDefault, RawArgs, OPTIONS};
use std::fmt;
use std::path::Path;

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

/// Reads and checks a config file: its settings as the options they name
/// (each written as a flag would be), and its policy rules.
pub fn load(path: &Path) -> Result<RawArgs, ConfigError> {
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
    if is_json {
        let options: RawArgs = serde_json::from_str(&text).map_err(|err| error(err.to_string()))?;
        check_rules(&options).map_err(error)?;
        Ok(options)
    } else {
        parse(&text).map_err(error)
    }
}

/// Reads TOML text and checks its rules.
pub fn parse(text: &str) -> Result<RawArgs, String> {
    let options: RawArgs = toml::from_str(text).map_err(|err| {
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
    check_rules(&options)?;
    Ok(options)
}

fn check_rules(options: &RawArgs) -> Result<(), String> {
    for (index, rule) in options.rules.iter().enumerate() {
        rule.check(index).map_err(|err| err.to_string())?;
    }
    Ok(())
}

/// The complete default config file, commented: what `--generate-config`
/// prints, written from the options' one definition ([`OPTIONS`]). It is
/// itself valid input (the tests read it back) and means exactly the
/// defaults.
pub fn generate() -> String {
    let mut out = String::from(
        "# jupyterhub-idle-culler-rs configuration (TOML), read with --config=FILE.
#
# Every setting is optional and means what the flag of the same name (with
# dashes) means. A flag on the command line wins over the environment
# (JUPYTERHUB_API_URL), which wins over this file, which wins over the
# defaults written here. An unknown key is an error.
",
    );
    for option in OPTIONS {
        out.push('\n');
        out.push_str(&format!(
            "# {}.\n",
            option.help.trim().trim_end_matches('.')
        ));
        let written = |value: &str| match option.kind {
            Kind::Text => format!("{value:?}"),
            Kind::Number | Kind::Seconds | Kind::Bool => value.to_owned(),
        };
        match option.default {
            OptionDefault::Value(value) => {
                out.push_str(&format!("{} = {}\n", option.key, written(value)));
            }
            OptionDefault::Unset { meaning, example } => {
                out.push_str(&format!("# Unset: {meaning}. For example:\n"));
                out.push_str(&format!("# {} = {}\n", option.key, written(example)));
            }
        }
    }
    out.push_str(RULES_EXAMPLE);
    out
}

/// The policy rules' part of the generated file: what they match on and
/// set, with examples (commented out).
const RULES_EXAMPLE: &str = r#"
# Policy rules, tried in order: the first that matches a server (or, for
# cull_users, a user) decides; what it does not set comes from the settings
# above. A rule matches on any of: user (name, exact or glob), group (needs
# the read:users:groups scope), admin (true/false), server ("default",
# "named" or a glob on the server's name), user_options (values of the
# server's user_options, e.g. KubeSpawner's profile; needs read:servers).
# It sets timeout and/or max_age (seconds), activity ("hub" or "server"),
# or never = true. With when = { days = "mon-fri", hours = "08:00-18:00",
# tz = "Europe/Berlin" } it applies only then (days and hours optional;
# hours ending at or before their start run past midnight; tz: an IANA
# name, UTC if absent); at other times the next rule decides. Examples:
#
# [[rules]]
# name = "instructors are never culled"
# group = "instructors"
# never = true
#
# [[rules]]
# name = "GPU servers after 30 minutes in office hours"
# user_options = { profile = "gpu" }
# timeout = 1800
# when = { days = "mon-fri", hours = "08:00-18:00", tz = "Europe/Berlin" }
#
# [[rules]]
# name = "GPU servers after 10 minutes at other times"
# user_options = { profile = "gpu" }
# timeout = 600
#
# [[rules]]
# name = "named servers after 2 hours"
# server = "named"
# timeout = 7200
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_file_is_valid_holds_every_option_and_means_the_defaults() {
        let text = generate();
        let read = parse(&text).unwrap();
        assert_eq!(read.timeout.as_deref(), Some("600"));
        assert_eq!(read.concurrency.as_deref(), Some("10"));
        assert_eq!(read.retry_delay.as_deref(), Some("1"));
        assert_eq!(read.log_format.as_deref(), Some("text"));
        assert_eq!(read.cull_users, Some(Some("false".into())));
        assert_eq!(read.url, None, "unset options are commented out");
        assert!(read.rules.is_empty());
        for option in OPTIONS {
            let written = match option.default {
                OptionDefault::Value(_) => format!("\n{} = ", option.key),
                OptionDefault::Unset { .. } => format!("\n# {} = ", option.key),
            };
            assert!(
                text.contains(&written),
                "{} is missing:\n{text}",
                option.key
            );
        }
        assert!(text.contains("# [[rules]]"));
        // Each commented example reads back as a value of its option.
        let settings_part = &text[..text.find("# Policy rules").expect("the rules part")];
        let examples: String = settings_part
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                OPTIONS
                    .iter()
                    .any(|o| line.starts_with(&format!("{} = ", o.key)))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let examples = parse(&examples).unwrap();
        assert_eq!(examples.cull_users_timeout.as_deref(), Some("259200"));
        // The rules' examples read back as rules, the schedule too.
        let rules_part = &text[text.find("Examples:\n").expect("the examples") + 10..];
        let rules: String = rules_part
            .lines()
            .map(|line| format!("{}\n", line.trim_start_matches('#')))
            .collect();
        let rules = parse(&rules)
            .unwrap_or_else(|e| panic!("{e}:\n{rules}"))
            .rules;
        assert_eq!(rules.len(), 4);
        assert!(rules[1].when.as_ref().is_some_and(|w| w.schedule().is_ok()));
    }

    #[test]
    fn a_schedule_it_cannot_read_is_refused_naming_the_rule() {
        let err = parse(
            "[[rules]]\nname = \"gpu\"\ntimeout = 60\nwhen = { days = \"mon-fri\", hours = \"8-18\" }\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("rule \"gpu\": when has hours \"8-18\", not a window HH:MM-HH:MM"),
            "{err}"
        );
        let err =
            parse("[[rules]]\ntimeout = 60\nwhen = { tz = \"Europe/Berln\", days = \"mon\" }\n")
                .unwrap_err();
        assert!(
            err.starts_with("rule 1: when has an unknown time zone \"Europe/Berln\""),
            "{err}"
        );
        // A key it does not know is refused as the file is read, by line.
        let err = parse("[[rules]]\ntimeout = 60\nwhen = { dayz = \"mon\" }\n").unwrap_err();
        assert!(
            err.starts_with("line 3 (when = { dayz = \"mon\" }): unknown field `dayz`"),
            "{err}"
        );
    }

    #[test]
    fn every_option_is_in_help_once_with_its_default() {
        let help = match crate::cli::parse(["culler", "--help"]) {
            Err(crate::cli::CliOutcome::Info(text)) => text,
            other => panic!("--help: {other:?}"),
        };
        // clap wraps long lines: read them joined.
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for option in OPTIONS {
            let flag = format!("--{}", option.key.replace('_', "-"));
            assert_eq!(
                help.matches(&format!("{flag} ")).count(),
                1,
                "{flag} in:\n{help}"
            );
            let default = match option.default {
                OptionDefault::Value(value) => value,
                OptionDefault::Unset { meaning, .. } => meaning,
            };
            assert!(
                help.contains(&format!("[default: {default}]")),
                "{flag}'s default in:\n{help}"
            );
        }
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = parse("timeout = 600\ncull_evry = 60\n").unwrap_err();
        assert!(err.contains("cull_evry"), "{err}");
        let err = parse("[[rules]]\ngroups = \"x\"\nnever = true\n").unwrap_err();
        assert!(err.contains("groups"), "{err}");
        // Options of the command line alone are unknown in the file.
        for key in [
            "config = \"x.toml\"",
            "generate_config = true",
            "debug = true",
        ] {
            let err = parse(key).unwrap_err();
            assert!(err.contains("unknown field"), "{key}: {err}");
        }
    }

    #[test]
    fn a_rule_that_says_nothing_is_refused() {
        let err = parse("[[rules]]\nname = \"empty\"\nuser = \"a\"\n").unwrap_err();
        assert!(err.contains("rule \"empty\" sets nothing"), "{err}");
    }

    #[test]
    fn errors_are_one_line_naming_the_line() {
        let err = parse("timeout = 600\n\ncull_evry = 60\n").unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.starts_with("line 3 (cull_evry = 60): unknown field `cull_evry`"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_type_is_named_with_its_line() {
        let err = parse("timeout = 600\ncull_users = \"yes\"\n").unwrap_err();
        assert!(err.starts_with("line 2 (cull_users = \"yes\")"), "{err}");
        let err = parse("timeout = [1]\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn file_values_fill_only_what_the_flags_left() {
        let file = parse("timeout = 3600\ncull_users = true\nretry_delay = 0.5\n").unwrap();
        let flags = RawArgs {
            timeout: Some("60".into()),
            ..RawArgs::default()
        };
        let raw = flags.or(file);
        assert_eq!(raw.timeout.as_deref(), Some("60"), "the flag wins");
        assert_eq!(raw.cull_users, Some(Some("true".into())));
        assert_eq!(raw.retry_delay.as_deref(), Some("0.5"));
        assert_eq!(raw.max_age, None);
    }

    #[test]
    fn once_and_output_come_from_the_file_too() {
        let raw = RawArgs::default().or(parse("once = true\noutput = \"json\"\n").unwrap());
        assert_eq!(raw.once, Some(Some("true".into())));
        assert_eq!(raw.output.as_deref(), Some("json"));
        let flagged = RawArgs {
            once: Some(None),
            ..RawArgs::default()
        }
        .or(parse("once = false\n").unwrap());
        assert_eq!(flagged.once, Some(None), "a flag given wins over the file");
    }
}
