use super::*;
use crate::hub::{Readiness, Servers};
use serde_json::json;

fn user(name: &str, admin: bool, groups: Option<&[&str]>) -> User {
    User {
        name: name.into(),
        admin: Some(admin),
        last_activity: None,
        created: None,
        servers: Some(Servers::default()),
        server: None,
        pending: None,
        groups: groups.map(|g| g.iter().map(|s| s.to_string()).collect()),
    }
}

fn server(options: serde_json::Value) -> Server {
    Server {
        name: String::new(),
        ready: Readiness::Ready,
        pending: None,
        started: None,
        last_activity: None,
        url: None,
        user_options: Some(options),
    }
}

fn rule(toml_text: &str) -> Rule {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("{toml_text}: {e}"))
}

#[test]
fn globs_match_runs_and_single_characters() {
    let p = |s: &str| Pattern(s.into());
    assert!(p("alice").matches("alice"));
    assert!(!p("alice").matches("alice2"));
    assert!(p("student-*").matches("student-42"));
    assert!(p("student-*").matches("student-"));
    assert!(!p("student-*").matches("teacher-1"));
    assert!(p("*@example.org").matches("carol@example.org"));
    assert!(p("a?c").matches("abc") && !p("a?c").matches("ac"));
    assert!(p("*a*b*").matches("xxaxxbxx") && !p("*a*b*").matches("xxbxxaxx"));
    assert!(p("*").matches(""));
    assert!(p("é*").matches("émile"));
}

/// The obvious recursive matcher, as the reference the fast one must
/// agree with.
fn reference(pattern: &[char], text: &[char]) -> bool {
    match (pattern.first(), text.first()) {
        (None, _) => text.is_empty(),
        (Some('*'), _) => {
            reference(&pattern[1..], text) || (!text.is_empty() && reference(pattern, &text[1..]))
        }
        (Some('?'), Some(_)) => reference(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => reference(&pattern[1..], &text[1..]),
        _ => false,
    }
}

proptest::proptest! {
    #[test]
    fn globs_agree_with_the_reference_matcher(
        pattern in "[ab*?]{0,8}",
        text in "[ab]{0,10}",
    ) {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        proptest::prop_assert_eq!(glob(&p, &t), reference(&p, &t), "{:?} ~ {:?}", pattern, text);
    }
}

#[test]
fn user_conditions_are_all_required() {
    let r = rule("user = \"a*\"\ngroup = \"instructors\"\nadmin = false\nnever = true");
    assert!(r.matches_user(&user("ann", false, Some(&["instructors", "x"]))));
    assert!(!r.matches_user(&user("bob", false, Some(&["instructors"]))));
    assert!(!r.matches_user(&user("ann", true, Some(&["instructors"]))));
    assert!(!r.matches_user(&user("ann", false, Some(&["students"]))));
    // Groups hidden by the token's scopes: no match (the start-up check
    // refuses such a configuration before it matters).
    assert!(!r.matches_user(&user("ann", false, None)));
}

#[test]
fn server_conditions_name_the_default_named_or_a_glob() {
    let u = user("ann", false, Some(&[]));
    let s = server(json!({}));
    let default = rule("server = \"default\"\ntimeout = 1");
    let named = rule("server = \"named\"\ntimeout = 1");
    let gpu = rule("server = \"gpu-*\"\ntimeout = 1");
    assert!(default.matches_server(&u, "", &s) && !default.matches_server(&u, "lab", &s));
    assert!(named.matches_server(&u, "lab", &s) && !named.matches_server(&u, "", &s));
    assert!(gpu.matches_server(&u, "gpu-1", &s) && !gpu.matches_server(&u, "lab", &s));
    assert!(!gpu.matches_server(&u, "", &s));
}

#[test]
fn user_options_match_by_key_or_path_and_type() {
    let u = user("ann", false, Some(&[]));
    let options =
        json!({"profile": "gpu-large", "image": {"tag": "2024"}, "cpus": 8, "spot": true});
    let s = server(options);
    assert!(rule("user_options = { profile = \"gpu*\" }\ntimeout = 1").matches_server(&u, "", &s));
    assert!(
        rule("user_options = { \"image.tag\" = \"2024\" }\ntimeout = 1").matches_server(&u, "", &s)
    );
    assert!(rule("user_options = { cpus = 8 }\ntimeout = 1").matches_server(&u, "", &s));
    assert!(rule("user_options = { spot = true }\ntimeout = 1").matches_server(&u, "", &s));
    assert!(!rule("user_options = { spot = false }\ntimeout = 1").matches_server(&u, "", &s));
    assert!(!rule("user_options = { cpus = \"8\" }\ntimeout = 1").matches_server(&u, "", &s));
    assert!(!rule("user_options = { missing = \"x\" }\ntimeout = 1").matches_server(&u, "", &s));
    let none = Server {
        user_options: None,
        ..server(json!({}))
    };
    assert!(!rule("user_options = { profile = \"*\" }\ntimeout = 1").matches_server(&u, "", &none));
}

#[test]
fn a_rule_must_say_something_and_not_contradict_itself() {
    assert_eq!(
        rule("name = \"x\"\nuser = \"a\"").check(0),
        Err(RuleError::NoAction("rule \"x\"".into()))
    );
    assert_eq!(
        rule("never = true\ntimeout = 5").check(2),
        Err(RuleError::NeverAndTimes("rule 3".into()))
    );
    assert_eq!(
        rule("user = \"\"\ntimeout = 5").check(0),
        Err(RuleError::EmptyPattern("rule 1".into()))
    );
    assert_eq!(
        rule("user_options = { profile = \"\" }\ntimeout = 5").check(0),
        Err(RuleError::EmptyPattern("rule 1".into()))
    );
    assert_eq!(rule("max_age = 0").check(0), Ok(()));
    assert!(toml::from_str::<Rule>("users = \"a\"\ntimeout = 1").is_err());
}

#[test]
fn rules_on_groups_or_options_need_the_scopes_that_show_them() {
    let rules = [
        rule("name = \"staff\"\ngroup = \"staff\"\nnever = true"),
        rule("user = \"x\"\nnever = true"),
        rule("user_options = { profile = \"gpu\" }\ntimeout = 1"),
    ];
    let needs = required_scopes(&rules);
    assert_eq!(needs.len(), 2);
    assert_eq!(
        (needs[0].rule.as_str(), needs[0].scope),
        ("rule \"staff\"", "read:users:groups")
    );
    assert_eq!(
        (needs[1].rule.as_str(), needs[1].scope),
        ("rule 3", "read:servers")
    );
    let granted = |scopes: &[&str]| scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(needs[0].met_by(&granted(&["list:users", "read:users:groups"])));
    assert!(needs[0].met_by(&granted(&["read:users:groups!group=staff"])));
    assert!(needs[0].met_by(&granted(&["admin:users"])));
    assert!(!needs[0].met_by(&granted(&[
        "list:users",
        "read:users:activity",
        "read:users:name"
    ])));
    assert!(needs[1].met_by(&granted(&["read:servers"])));
    let line = needs[0].to_string();
    assert!(
        line.contains("groups") && line.contains("add read:users:groups"),
        "{line}"
    );
}

#[test]
fn rules_about_servers_do_not_decide_about_users() {
    assert!(rule("server = \"named\"\ntimeout = 1").is_about_servers());
    assert!(rule("user_options = { profile = \"gpu\" }\ntimeout = 1").is_about_servers());
    assert!(!rule("group = \"x\"\nnever = true").is_about_servers());
    assert!(rule("group = \"x\"\nnever = true").needs_groups());
    assert!(!rule("user = \"x\"\nnever = true").needs_groups());
}

#[test]
fn a_rule_with_only_a_schedule_still_sets_nothing() {
    assert_eq!(
        rule("name = \"nights\"\nwhen = { hours = \"22:00-06:00\" }").check(0),
        Err(RuleError::NoAction("rule \"nights\"".into()))
    );
}

#[test]
fn a_schedule_it_cannot_read_is_refused_naming_the_rule() {
    let r = rule("name = \"gpu\"\ntimeout = 60\nwhen = { days = \"mon-fry\" }");
    assert_eq!(
        r.check(0),
        Err(RuleError::When(
            "rule \"gpu\"".into(),
            WhenError::UnknownDay("mon-fry".into())
        ))
    );
    let line = r.check(0).unwrap_err().to_string();
    assert!(
        line.starts_with("rule \"gpu\": when has an unknown day \"mon-fry\""),
        "{line}"
    );
    let unnamed = rule("timeout = 60\nwhen = { hours = \"08:00-08:00\", tz = \"UTC\" }");
    assert_eq!(
        unnamed.check(4),
        Err(RuleError::When(
            "rule 5".into(),
            WhenError::EmptyWindow("08:00-08:00".into())
        ))
    );
    // Never consulted, but never applying either.
    assert!(!unnamed.applies_at(chrono::Utc::now()));
}

#[test]
fn never_may_have_a_schedule_and_applies_only_within_it() {
    use chrono::TimeZone;
    let exams =
        rule("never = true\nwhen = { days = \"mon\", hours = \"09:00-12:00\", tz = \"UTC\" }");
    assert_eq!(exams.check(0), Ok(()));
    // 2026-03-09 is a Monday.
    let at = |h| chrono::Utc.with_ymd_and_hms(2026, 3, 9, h, 0, 0).unwrap();
    assert!(exams.applies_at(at(9)) && exams.applies_at(at(11)));
    assert!(!exams.applies_at(at(8)) && !exams.applies_at(at(12)));
    assert!(rule("never = true").applies_at(at(3)), "no when: always");
}
