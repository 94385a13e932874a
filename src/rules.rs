//! Policy rules: "GPU servers after 30 minutes, instructors never", as data.
//!
//! Upstream's answer to per-case policy is `cull_arbiter_hook`, Python code
//! in the culler's config; this culler cannot run Python, and operators
//! should not have to write code. A rule matches users and servers on what
//! the hub reports (user name, group membership, admin flag, server name,
//! values of the server's `user_options` such as KubeSpawner's `profile`)
//! and sets the idle `timeout`, the `max_age`, or `never` (exempt). Rules
//! are tried in order; the first that matches decides, and where it is
//! silent (a rule that only sets `timeout` keeps `--max-age`) the flags do;
//! no match falls back to the flags alone. This module only matches: the
//! decisions stay in [`crate::policy`], pure like these.
//!
//! A rule may also say `when` it applies ([`When`]): outside its schedule
//! it is passed over as if its conditions did not hold, so that the next
//! rule (or the flags) decides.

use crate::hub::{Server, User};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;

/// One rule, as written in the config file's `[[rules]]` tables.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A name for logs and decision records; "rule N" when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The user's name, exact or a glob (`*`, `?`).
    #[serde(default)]
    pub user: Option<Pattern>,
    /// A group the user belongs to, exact or a glob (needs the
    /// `read:users:groups` scope: the hub hides groups otherwise).
    #[serde(default)]
    pub group: Option<Pattern>,
    /// Whether the user is an admin.
    #[serde(default)]
    pub admin: Option<bool>,
    /// Which servers: `"default"`, `"named"`, or a glob on the server name.
    #[serde(default)]
    pub server: Option<ServerPattern>,
    /// Values of the server's `user_options` (what the user chose at spawn),
    /// by key or dotted path (`"profile"`, `"image.tag"`): a string (exact
    /// or glob), a number or a boolean.
    #[serde(default)]
    pub user_options: BTreeMap<String, OptionValue>,
    /// Idle seconds after which what matches is culled.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Seconds after which what matches is culled even when active; 0: never
    /// by age.
    #[serde(default)]
    pub max_age: Option<u64>,
    /// Never cull what matches.
    #[serde(default)]
    pub never: bool,
    /// What idleness is judged by for what matches (`"hub"` or
    /// `"server"`); `--activity` where absent.
    #[serde(default)]
    pub activity: Option<Activity>,
    /// The days and hours (in a time zone) at which the rule applies;
    /// always where absent.
    #[serde(default)]
    pub when: Option<WhenSetting>,
}

/// What a server's idleness is judged by (`--activity`, or a rule's
/// `activity`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activity {
    /// The hub's `last_activity` alone: upstream's way.
    #[default]
    Hub,
    /// The hub's timestamps, then, for a server they would cull for
    /// idleness, the server's own kernels and terminals.
    Server,
}

/// What a rule is missing, or holds that contradicts itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleError {
    /// It sets neither `timeout`, `max_age`, `activity` nor `never`.
    NoAction(String),
    /// `never` with a `timeout`, `max_age` or `activity`.
    NeverAndTimes(String),
    /// A pattern that is empty.
    EmptyPattern(String),
    /// A `when` that cannot be read, and why.
    When(String, WhenError),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::NoAction(rule) => write!(
                f,
                "{rule} sets nothing: give it timeout = SECONDS, max_age = SECONDS, activity = \"server\" or never = true"
            ),
            RuleError::NeverAndTimes(rule) => write!(
                f,
                "{rule} says never = true and also a timeout, max_age or activity: keep one"
            ),
            RuleError::EmptyPattern(rule) => {
                write!(
                    f,
                    "{rule} has an empty pattern; use \"*\" to match anything"
                )
            }
            RuleError::When(rule, problem) => write!(f, "{rule}: {problem}"),
        }
    }
}

impl std::error::Error for RuleError {}

impl Rule {
    /// Its name in logs: the given name, else "rule N" (1-based).
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(name) => format!("rule {name:?}"),
            None => format!("rule {}", index + 1),
        }
    }

    /// Checks that the rule says something and does not contradict itself.
    pub fn check(&self, index: usize) -> Result<(), RuleError> {
        let label = self.label(index);
        let sets_something =
            self.timeout.is_some() || self.max_age.is_some() || self.activity.is_some();
        if self.never && sets_something {
            return Err(RuleError::NeverAndTimes(label));
        }
        if !self.never && !sets_something {
            return Err(RuleError::NoAction(label));
        }
        let patterns = [&self.user, &self.group].into_iter().flatten().chain(
            self.user_options.values().filter_map(|v| match v {
                OptionValue::Text(pattern) => Some(pattern),
                _ => None,
            }),
        );
        if patterns.into_iter().any(|p| p.0.is_empty()) {
            return Err(RuleError::EmptyPattern(label));
        }
        if let Some(Err(problem)) = self.when.as_ref().map(WhenSetting::schedule) {
            return Err(RuleError::When(label, problem.clone()));
        }
        Ok(())
    }

    /// Whether its schedule (`when`) holds at `now`; a rule without one
    /// always applies. Checked before its conditions by the policy.
    pub fn applies_at(&self, now: DateTime<Utc>) -> bool {
        self.when.as_ref().is_none_or(|when| when.contains(now))
    }

    /// Whether it looks at servers (their name or options): such a rule
    /// never decides about deleting a user.
    pub fn is_about_servers(&self) -> bool {
        self.server.is_some() || !self.user_options.is_empty()
    }

    /// Whether it needs the users' groups, which the hub shows only with
    /// `read:users:groups`.
    pub fn needs_groups(&self) -> bool {
        self.group.is_some()
    }

    /// Whether it matches this user (the user-level conditions only).
    pub fn matches_user(&self, user: &User) -> bool {
        self.user.as_ref().is_none_or(|p| p.matches(&user.name))
            && self.admin.is_none_or(|admin| user.admin == Some(admin))
            && self.group.as_ref().is_none_or(|p| {
                user.groups
                    .as_deref()
                    .is_some_and(|groups| groups.iter().any(|g| p.matches(g)))
            })
    }

    /// Whether it matches this server of this user (`name` "" is the
    /// default server).
    pub fn matches_server(&self, user: &User, name: &str, server: &Server) -> bool {
        self.matches_user(user)
            && self.server.as_ref().is_none_or(|p| p.matches(name))
            && self.user_options.iter().all(|(path, expected)| {
                server
                    .user_options
                    .as_ref()
                    .and_then(|options| lookup(options, path))
                    .is_some_and(|value| expected.matches(value))
            })
    }
}

/// A scope a rule needs the culler's token to have, because without it the
/// hub hides the field the rule matches on (and the rule would silently
/// never match: an instructor culled because their groups were hidden).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeNeed {
    /// The rule, as labelled in logs.
    pub rule: String,
    /// The field of the hub's model it matches on.
    pub field: &'static str,
    /// The scope that shows that field.
    pub scope: &'static str,
    /// Broader scopes that include it.
    pub implied_by: &'static [&'static str],
}

impl ScopeNeed {
    /// Whether the token's scopes (as `GET /user` lists them) show the
    /// field. A filtered scope (`read:users:groups!group=x`) counts: the
    /// rule then sees the users that scope shows.
    pub fn met_by(&self, scopes: &[String]) -> bool {
        scopes.iter().any(|granted| {
            let base = granted.split('!').next().unwrap_or(granted);
            base == self.scope || self.implied_by.contains(&base)
        })
    }
}

impl std::fmt::Display for ScopeNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} matches on {}, which the hub shows only with the {} scope; add {} to the culler's role",
            self.rule, self.field, self.scope, self.scope
        )
    }
}

/// The scopes `rules` need beyond the culler's documented ones.
pub fn required_scopes(rules: &[Rule]) -> Vec<ScopeNeed> {
    let mut needs = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        if rule.needs_groups() {
            needs.push(ScopeNeed {
                rule: rule.label(index),
                field: "groups",
                scope: "read:users:groups",
                implied_by: &["read:users", "admin:users"],
            });
        }
        if !rule.user_options.is_empty() {
            needs.push(ScopeNeed {
                rule: rule.label(index),
                field: "the servers' user_options",
                scope: "read:servers",
                implied_by: &["admin:servers"],
            });
        }
    }
    needs
}

/// A name to match: exact, or a glob where `*` is any run of characters and
/// `?` any one character.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Pattern(pub String);

impl Pattern {
    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        glob(
            &self.0.chars().collect::<Vec<_>>(),
            &text.chars().collect::<Vec<_>>(),
        )
    }
}

/// Glob matching with backtracking over the last `*` only: linear enough
/// for names, and no recursion to blow up on hostile patterns.
fn glob(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    // After the last `*` seen: where the pattern goes on, and where in the
    // text that `*` stopped swallowing.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                p += 1;
                star = Some((p, t));
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the `*` swallow one more character, and retry.
                Some((after_star, swallowed)) => {
                    p = after_star;
                    t = swallowed + 1;
                    star = Some((after_star, t));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Which servers a rule is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerPattern {
    /// The default server (name "").
    Default,
    /// Any named server.
    Named,
    /// Named servers whose name matches.
    Name(Pattern),
}

impl ServerPattern {
    /// Whether the server called `name` ("" is the default) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            ServerPattern::Default => name.is_empty(),
            ServerPattern::Named => !name.is_empty(),
            ServerPattern::Name(pattern) => !name.is_empty() && pattern.matches(name),
        }
    }
}

impl<'de> Deserialize<'de> for ServerPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match text.as_str() {
            "default" => ServerPattern::Default,
            "named" => ServerPattern::Named,
            _ => ServerPattern::Name(Pattern(text)),
        })
    }
}

/// An expected value in `user_options`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    /// A string, exact or glob.
    Text(Pattern),
    /// A boolean.
    Flag(bool),
    /// A number (integers and floats compare by value).
    Number(f64),
}

impl OptionValue {
    /// Whether the option's actual value matches.
    fn matches(&self, actual: &serde_json::Value) -> bool {
        match (self, actual) {
            (OptionValue::Text(pattern), serde_json::Value::String(text)) => pattern.matches(text),
            (OptionValue::Flag(expected), serde_json::Value::Bool(actual)) => expected == actual,
            (OptionValue::Number(expected), serde_json::Value::Number(actual)) => {
                actual.as_f64() == Some(*expected)
            }
            _ => false,
        }
    }
}

/// The value at a key, or at a dotted path of keys, of a JSON object.
fn lookup<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    value
        .get(path)
        .or_else(|| path.split('.').try_fold(value, |value, key| value.get(key)))
}

mod when;
pub use when::{When, WhenError, WhenSetting};

#[cfg(test)]
mod tests;
