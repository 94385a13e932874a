use super::*;

/// The body of a captured real JupyterHub 6.1.1 response.
fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/jupyterhub-6.1.1/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    let capture: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::to_vec(&capture["body"]).unwrap()
}

#[test]
fn paginated_page_with_culler_scopes() {
    let list = UserList::from_json(&fixture("users-ready-culler-scopes-paginated")).unwrap();
    let items = &list.users;
    assert_eq!(
        list.pagination,
        Some(Pagination {
            offset: 0,
            limit: 2,
            total: 2,
            has_next: false,
            next_offset: None,
        })
    );
    let names: Vec<_> = items.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["alice", "carol@example.org"]);
    let alice = &items[0];
    assert!(alice.created.is_some());
    assert_eq!(
        alice.groups.as_deref(),
        Some(&["instructors".to_owned()][..])
    );
    let servers = alice.visible_servers().unwrap();
    assert_eq!(
        servers.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        ["", "gpu"]
    );
    let gpu = servers.get("gpu").unwrap();
    assert_eq!(gpu.ready, Readiness::Ready);
    assert!(gpu.started.is_some() && gpu.last_activity.is_some());
    assert_eq!(gpu.user_options.as_ref().unwrap()["profile"], "gpu");
}

#[test]
fn minimal_scopes_hide_created_and_groups() {
    let list = UserList::from_json(&fixture("users-ready-minimal-scopes-paginated")).unwrap();
    let alice = &list.users[0];
    assert_eq!(alice.created, None);
    assert_eq!(alice.groups, None);
    assert!(alice.last_activity.is_some());
    assert_eq!(alice.visible_servers().unwrap().len(), 2);

    let inactive =
        UserList::from_json(&fixture("users-inactive-minimal-scopes-paginated")).unwrap();
    let dave = &inactive.users[0];
    assert_eq!(dave.name, "dave");
    assert_eq!(dave.last_activity, None);
    assert!(dave.visible_servers().unwrap().is_empty());
}

#[test]
fn plain_list_from_old_hubs_or_without_the_header() {
    let list = UserList::from_json(&fixture("users-ready-culler-scopes-plain-list")).unwrap();
    assert_eq!(list.pagination, None);
    assert!(!list.users.is_empty());
}

#[test]
fn every_captured_user_list_parses() {
    for name in [
        "users-ready-culler-scopes-page2",
        "users-inactive-culler-scopes-paginated",
        "users-ready-admin-scopes-paginated",
    ] {
        let list =
            UserList::from_json(&fixture(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(list.pagination.is_some(), "{name}");
        assert!(list.rejected.is_empty(), "{name}");
    }
}

#[test]
fn error_bodies_carry_the_message() {
    for (name, needle) in [
        ("users-no-scope", "requires any of [list:users]"),
        ("users-bad-token", "credentials"),
        ("delete-user-minimal-scopes", "delete:users"),
    ] {
        let body: ErrorBody = serde_json::from_slice(&fixture(name)).unwrap();
        assert!(body.message.contains(needle), "{name}: {}", body.message);
    }
}

#[test]
fn version_fixture() {
    let info: VersionInfo = serde_json::from_slice(&fixture("version")).unwrap();
    assert_eq!(info.version, "6.1.1");
}

#[test]
fn legacy_users_without_servers_map() {
    let user: User = serde_json::from_str(
        r#"{"name": "old", "admin": false, "server": "/user/old/", "pending": null,
            "last_activity": "2017-01-01T00:00:00"}"#,
    )
    .unwrap();
    let servers = user.visible_servers().unwrap();
    assert_eq!(servers.get("").unwrap().url.as_deref(), Some("/user/old/"));
    assert_eq!(servers.get("").unwrap().last_activity, user.last_activity);
    let unseen: User = serde_json::from_str(r#"{"name": "x", "admin": false}"#).unwrap();
    assert!(unseen.visible_servers().is_none());
}

#[test]
fn next_is_read_as_whether_more_follows() {
    let page = |next: &str| {
        let body = format!(
            r#"{{"items": [], "_pagination": {{"offset": 0, "limit": 2, "total": 5{next}}}}}"#
        );
        UserList::from_json(body.as_bytes())
            .unwrap()
            .pagination
            .unwrap()
    };
    let more = r#", "next": {"offset": 2, "limit": 2, "url": "http://hub/hub/api/users?offset=2"}"#;
    assert!(page(more).has_next);
    assert_eq!(page(more).next_offset, Some(2));
    assert!(!page(r#", "next": null"#).has_next);
    assert!(!page("").has_next);
    assert_eq!(page("").next_offset, None);
    // Any other shape still says more follows, without an offset.
    let odd = page(r#", "next": "http://hub/hub/api/users?offset=2""#);
    assert!(odd.has_next);
    assert_eq!(odd.next_offset, None);
}

#[test]
fn garbage_is_an_error_not_an_empty_list() {
    assert!(UserList::from_json(b"<html>").is_err());
    assert!(UserList::from_json(br#"{"items": 3}"#).is_err());
    assert!(UserList::from_json(br#"{"items": []}"#).is_err());
    assert!(UserList::from_json(br#"[{"name": "x""#).is_err());
}

#[test]
fn a_byte_that_is_not_utf8_loses_only_its_user() {
    let mut body = br#"{"items": [
            {"name": "ok1", "admin": false},
            {"name": "bad"#
        .to_vec();
    body.push(0xFF);
    body.extend_from_slice(
        br#"", "admin": false},
            {"name": "ok2", "admin": false}
        ], "_pagination": {"offset": 0, "limit": 50, "total": 3, "next": null}}"#,
    );
    let list = UserList::from_json(&body).unwrap();
    let names: Vec<_> = list.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["ok1", "ok2"]);
    assert_eq!(list.rejected.len(), 1);
    assert!(
        list.rejected[0].reason.contains("UTF-8"),
        "{:?}",
        list.rejected
    );
}

#[test]
fn a_lone_surrogate_loses_only_its_user() {
    // Python's json writes a name holding a lone surrogate this way; no
    // Rust string can hold it, so the whole page used to fail.
    let body = br#"{"items": [
            {"name": "ok1", "admin": false},
            {"name": "bad\ud800name", "admin": false},
            {"name": "ok2", "admin": false, "servers": {"": {"name": "", "user_options": {"x": "\udfff"}}}},
            {"name": "ok3", "admin": false, "groups": ["\ud83d\ude00"]}
        ], "_pagination": {"offset": 0, "limit": 50, "total": 4, "next": null}}"#;
    let list = UserList::from_json(body).expect("the page reads");
    let names: Vec<_> = list.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["ok1", "ok3"], "{list:?}");
    assert_eq!(
        list.users[1].groups.as_deref(),
        Some(&["\u{1F600}".to_owned()][..])
    );
    let rejected: Vec<_> = list.rejected.iter().map(|r| r.name.as_deref()).collect();
    // The name as the hub wrote it when it is no string, else the name.
    assert_eq!(rejected, [Some(r#""bad\ud800name""#), Some("ok2")]);
    for rejected in &list.rejected {
        assert!(rejected.reason.contains("escape"), "{rejected:?}");
    }
    assert_eq!(list.pagination.map(|p| p.total), Some(4));
}

#[test]
fn a_body_that_is_not_json_is_an_unparseable_error() {
    use crate::hub::BodyFault;
    for body in [&b"<html>502</html>"[..], br#"{"items": [{"name": "a"}"#] {
        let err = UserList::from_json(body).expect_err("not a list");
        assert_eq!(BodyFault::of(&err), BodyFault::Unparseable, "{err}");
    }
    let err = UserList::from_json(br#"{"items": 3}"#).expect_err("not a list");
    assert_eq!(BodyFault::of(&err), BodyFault::Unexpected, "{err}");
}

#[test]
fn ready_null_is_not_ready_and_a_missing_ready_is_unstated() {
    let read = |json: &str| serde_json::from_str::<Server>(json).unwrap().ready;
    assert_eq!(read(r#"{"ready": true}"#), Readiness::Ready);
    assert_eq!(read(r#"{"ready": false}"#), Readiness::NotReady);
    assert_eq!(read(r#"{"ready": null}"#), Readiness::NotReady);
    assert_eq!(read(r#"{"url": "/user/x/"}"#), Readiness::Unstated);
}

#[test]
fn one_unreadable_user_does_not_hide_the_others() {
    let list = UserList::from_json(
        br#"{"items": [
            {"name": "ok1", "admin": false},
            {"name": "bad", "admin": false, "last_activity": "whenever"},
            {"admin": "yes"},
            {"name": "ok2", "admin": true}
        ], "_pagination": {"offset": 0, "limit": 50, "total": 4, "next": null}}"#,
    )
    .unwrap();
    let names: Vec<_> = list.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["ok1", "ok2"]);
    assert_eq!(list.rejected.len(), 2);
    assert_eq!(list.rejected[0].name.as_deref(), Some("bad"));
    assert!(
        list.rejected[0].reason.contains("whenever"),
        "{:?}",
        list.rejected[0]
    );
    assert_eq!(list.rejected[1].name, None);
    assert_eq!(list.pagination.map(|p| p.total), Some(4));
}

/// Fuzzing the list parser: arbitrary bytes and real responses with
/// random damage. It must never panic, and nothing it cannot read may
/// come out as a user to judge (and so, perhaps, to cull).
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const USER_LISTS: [&str; 6] = [
        "users-ready-culler-scopes-paginated",
        "users-ready-culler-scopes-page2",
        "users-ready-culler-scopes-plain-list",
        "users-ready-minimal-scopes-paginated",
        "users-ready-admin-scopes-paginated",
        "users-inactive-culler-scopes-paginated",
    ];

    /// One kind of damage at a position given as a fraction of the body.
    #[derive(Clone, Debug)]
    enum Damage {
        Flip(f64, u8),
        Insert(f64, u8),
        Delete(f64, usize),
        Truncate(f64),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            (0.0..1.0, any::<u8>()).prop_map(|(at, b)| Damage::Flip(at, b)),
            (0.0..1.0, any::<u8>()).prop_map(|(at, b)| Damage::Insert(at, b)),
            (0.0..1.0, 1usize..40).prop_map(|(at, n)| Damage::Delete(at, n)),
            (0.0..1.0).prop_map(Damage::Truncate),
        ]
    }

    fn apply(body: &mut Vec<u8>, damage: &Damage) {
        let at = |f: f64, len: usize| ((len as f64) * f) as usize;
        match *damage {
            Damage::Flip(f, b) => {
                let i = at(f, body.len()).min(body.len().saturating_sub(1));
                if let Some(byte) = body.get_mut(i) {
                    *byte = b;
                }
            }
            Damage::Insert(f, b) => body.insert(at(f, body.len()), b),
            Damage::Delete(f, n) => {
                let i = at(f, body.len());
                body.drain(i..(i + n).min(body.len()));
            }
            Damage::Truncate(f) => body.truncate(at(f, body.len())),
        }
    }

    /// Every user the parser accepts must be, field for field, what a
    /// strict reading of its own record in the damaged body gives: a
    /// damaged record is never half-read into a user.
    fn accepted_users_are_exactly_their_records(body: &[u8], list: &UserList) {
        let text = String::from_utf8_lossy(body);
        // A strict reading of the whole body, once surrogate escapes
        // (which no string holds, and which lose their record only) are
        // made harmless: the fixtures hold none, so damage made them.
        let text = neutralize_surrogates(&text);
        let items: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Array(items)) => items,
            Ok(value) => value
                .get("items")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for user in &list.users {
            let strict: Vec<User> = items
                .iter()
                .filter_map(|item| User::deserialize(item).ok())
                .filter(|u| u.name == user.name)
                .collect();
            assert!(
                strict.contains(user),
                "{user:?} is not a record of the body"
            );
            assert!(!user.name.contains(char::REPLACEMENT_CHARACTER), "{user:?}");
        }
    }

    /// `\uD800` to `\uDFFF` escapes become `\uFFFD`.
    fn neutralize_surrogates(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < bytes.len() {
            let escape = bytes[i] == b'\\'
                && bytes.get(i + 1) == Some(&b'u')
                && bytes
                    .get(i + 2)
                    .is_some_and(|b| b.eq_ignore_ascii_case(&b'd'))
                && bytes.get(i + 3).is_some_and(|b| b"89abAB".contains(b))
                && bytes
                    .get(i + 4..i + 6)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if escape {
                out.push_str("\\uFFFD");
                i += 6;
            } else {
                let ch = text[i..].chars().next().expect("a char boundary");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
        out
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(list) = UserList::from_json(&body) {
                accepted_users_are_exactly_their_records(&body, &list);
            }
        }

        #[test]
        fn damaged_real_responses_give_only_their_intact_users(
            which in 0..USER_LISTS.len(),
            damages in prop::collection::vec(damage(), 1..4),
        ) {
            let mut body = fixture(USER_LISTS[which]);
            for d in &damages {
                apply(&mut body, d);
            }
            if let Ok(list) = UserList::from_json(&body) {
                accepted_users_are_exactly_their_records(&body, &list);
            }
        }
    }
}

#[test]
fn servers_are_kept_in_name_order_and_a_repeated_name_keeps_its_last() {
    let json = r#"{"name": "ada", "servers": {
        "zeta": {"name": "zeta", "ready": true, "url": "/z1"},
        "": {"name": "", "ready": true},
        "lab": {"name": "lab", "ready": false},
        "zeta": {"name": "zeta", "ready": true, "url": "/z2"}
    }}"#;
    let user: User = serde_json::from_str(json).unwrap();
    let servers = user.servers.as_ref().unwrap();
    let names: Vec<_> = servers.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["", "lab", "zeta"]);
    assert_eq!(servers.len(), 3);
    assert_eq!(servers.get("zeta").unwrap().url.as_deref(), Some("/z2"));
    assert!(servers.get("other").is_none());
    let mut seen = Vec::new();
    for (name, server) in servers {
        seen.push((name.as_str(), server.ready));
    }
    assert_eq!(seen[1], ("lab", Readiness::NotReady));
    let none: User = serde_json::from_str(r#"{"name": "bo", "servers": {}}"#).unwrap();
    assert!(none.servers.unwrap().is_empty());
}
