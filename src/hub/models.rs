//! The parts of JupyterHub's REST models the culler reads.
//!
//! Fields are optional wherever the token's scopes may hide them: with the
//! documented culler scopes `created`, `server`, `pending` and `groups` are
//! absent, and the decisions must still be right.

use super::time::Timestamp;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// One user as listed by `GET /users`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct User {
    /// The user's name, used (percent-encoded) in every URL about them.
    pub name: String,
    /// Admins can be spared with `--cull-admin-users=false`. The hub always
    /// sends it; `None` (unknown) is treated as an admin when admins are spared.
    #[serde(default)]
    pub admin: Option<bool>,
    /// The user's latest activity (`read:users:activity`).
    #[serde(default)]
    pub last_activity: Option<Timestamp>,
    /// When the user was created (only with `read:users`).
    #[serde(default)]
    pub created: Option<Timestamp>,
    /// Active servers by name ("" is the default server), with `read:servers`.
    /// `None` means we cannot see them: such a user is never deleted.
    #[serde(default)]
    pub servers: Option<BTreeMap<String, Server>>,
    /// Pre-0.9 hubs: URL of the running default server, when `servers` is absent.
    #[serde(default)]
    pub server: Option<String>,
    /// Pre-0.9 hubs: pending action on the default server.
    #[serde(default)]
    pub pending: Option<String>,
    /// Group names (only with `read:users:groups`); kept for policy rules.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

/// One server of a user.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Server {
    /// The server's name, "" for the default server.
    #[serde(default)]
    pub name: String,
    /// Whether the server has finished starting.
    #[serde(default, deserialize_with = "readiness")]
    pub ready: Readiness,
    /// A transition under way ("spawn", "stop", "check"): never cull then.
    #[serde(default)]
    pub pending: Option<String>,
    /// When the server started; the age for `--max-age`, and the idle
    /// fallback when it has no activity yet.
    #[serde(default)]
    pub started: Option<Timestamp>,
    /// The server's latest activity.
    #[serde(default)]
    pub last_activity: Option<Timestamp>,
    /// Where the server is proxied; readiness signal on pre-0.9 hubs.
    #[serde(default)]
    pub url: Option<String>,
    /// The spawner's options (KubeSpawner's `{"profile": ...}`), for policy rules.
    #[serde(default)]
    pub user_options: Option<serde_json::Value>,
}

/// What the hub said of a server's readiness. Three states, because
/// "not said" and "said null" mean different things: pre-0.9 hubs have no
/// `ready` field (a URL meant ready), while `"ready": null` from any hub is
/// not a yes, and upstream skips such a server as not ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Readiness {
    /// No `ready` field at all: judge by the server's URL.
    #[default]
    Unstated,
    /// `"ready": true`.
    Ready,
    /// `"ready": false` or `"ready": null`.
    NotReady,
}

fn readiness<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Readiness, D::Error> {
    Ok(match Option::<bool>::deserialize(deserializer)? {
        Some(true) => Readiness::Ready,
        Some(false) | None => Readiness::NotReady,
    })
}

impl User {
    /// The user's servers as the culler sees them, or `None` when the token
    /// cannot see servers at all (then nothing about them is known).
    ///
    /// Pre-0.9 hubs only describe the default server through `server` and
    /// `pending`; that is turned into a one-entry map, as upstream does.
    /// Current hubs' maps are lent, not copied.
    pub fn visible_servers(&self) -> Option<Cow<'_, BTreeMap<String, Server>>> {
        if let Some(servers) = &self.servers {
            return Some(Cow::Borrowed(servers));
        }
        let url = self.server.as_ref()?;
        let legacy = Server {
            name: String::new(),
            ready: Readiness::Unstated,
            pending: self.pending.clone(),
            started: None,
            last_activity: self.last_activity,
            url: Some(url.clone()),
            user_options: None,
        };
        Some(Cow::Owned(BTreeMap::from([(String::new(), legacy)])))
    }
}

/// `_pagination` of a paginated list (JupyterHub >= 2.0).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(from = "PaginationBody")]
pub struct Pagination {
    /// The offset of this page.
    pub offset: u64,
    /// The page size the hub actually used (it caps what we ask for).
    pub limit: u64,
    /// How many users match the query before the in-memory `ready` filter.
    pub total: u64,
    /// Whether `next` was not null: the hub believes more follows. The walk
    /// reads it to notice a `total` that is too small; its URL is useless
    /// to us (rebuilt from the hub's own idea of its address).
    pub has_next: bool,
    /// `next.offset`: where the hub says the next page starts. JupyterHub
    /// computes it from the page size it really used, so it unmasks a
    /// `limit` that claims more than the page holds.
    pub next_offset: Option<u64>,
}

/// `_pagination` as sent; `next` is read leniently (any value but `null`
/// means more follows, whatever its shape).
#[derive(Deserialize)]
struct PaginationBody {
    offset: u64,
    limit: u64,
    total: u64,
    #[serde(default)]
    next: Option<serde_json::Value>,
}

impl From<PaginationBody> for Pagination {
    fn from(body: PaginationBody) -> Self {
        Pagination {
            offset: body.offset,
            limit: body.limit,
            total: body.total,
            has_next: body.next.is_some(),
            next_offset: body
                .next
                .as_ref()
                .and_then(|next| next.get("offset"))
                .and_then(serde_json::Value::as_u64),
        }
    }
}

/// A user record the hub sent that could not be read (a field of the wrong
/// type, a timestamp that is not one). Only that user is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedUser {
    /// The user's name, when even that could not be read `None`.
    pub name: Option<String>,
    /// What was wrong with the record.
    pub reason: String,
}

/// One answer to `GET /users`, in either of the shapes hubs send.
#[derive(Clone, Debug, PartialEq)]
pub struct UserList {
    /// The users that could be read (with `state=ready`, possibly fewer
    /// than the page's `limit` even when more pages follow).
    pub users: Vec<User>,
    /// The users whose records could not be read.
    pub rejected: Vec<RejectedUser>,
    /// Where this page sits in the whole list (JupyterHub >= 2.0 with the
    /// pagination `Accept` header); `None` for a plain list, which holds
    /// every user the hub was willing to send at once.
    pub pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct PageBody<T> {
    items: Vec<T>,
    #[serde(rename = "_pagination")]
    pagination: Pagination,
}

/// The items and pagination of a body, telling the two shapes apart by their
/// first character so that errors name the real problem in either shape.
/// The body is text already checked to be UTF-8 (once, as a whole: cheaper
/// than serde_json checking each string of a byte slice on its own).
fn items_of<'a, T: Deserialize<'a>>(
    body: &'a str,
) -> Result<(Vec<T>, Option<Pagination>), serde_json::Error> {
    if body.trim_start().starts_with('[') {
        return Ok((serde_json::from_str(body)?, None));
    }
    let page: PageBody<T> = serde_json::from_str(body)?;
    Ok((page.items, Some(page.pagination)))
}

/// Just the `name` of a record, as the JSON text the hub sent: read even
/// when the record (or the name itself) is not one the culler can use,
/// so that the log says whose record was skipped.
#[derive(Deserialize)]
struct NameOnly<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
}

impl UserList {
    /// Reads a `GET /users` body. A body that is not a user list at all is
    /// an error; a list with unreadable users yields the others, with the
    /// unreadable ones in `rejected` (as upstream, which fails per user).
    ///
    /// Each record is read on its own, so that one bad record costs only
    /// its user: a field of the wrong type, bytes that are not UTF-8 (such
    /// a name could not be sent back to the hub to stop or delete its
    /// owner), or an escape JSON allows but a string cannot hold (a lone
    /// surrogate such as `"\ud800"`, which Python's `json` writes for a
    /// name holding one). The records are first delimited without reading
    /// their strings, so a bad string inside one record never fails the
    /// page.
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        match std::str::from_utf8(body) {
            Ok(text) => match items_of::<User>(text) {
                Ok((users, pagination)) => Ok(UserList {
                    users,
                    rejected: Vec::new(),
                    pagination,
                }),
                Err(_) => Self::record_by_record(text, false),
            },
            Err(_) => Self::record_by_record(&String::from_utf8_lossy(body), true),
        }
    }

    /// The slow path of [`UserList::from_json`]: each record read on its
    /// own. `lossy`: bytes that were not UTF-8 were replaced in `body`, so
    /// a record holding a replacement character is not one to trust.
    fn record_by_record(body: &str, lossy: bool) -> Result<Self, serde_json::Error> {
        let (items, pagination) = items_of::<&RawValue>(body)?;
        let mut list = UserList {
            users: Vec::with_capacity(items.len()),
            rejected: Vec::new(),
            pagination,
        };
        for item in items {
            let record = item.get();
            let reason = if lossy && record.contains(char::REPLACEMENT_CHARACTER) {
                "the record holds bytes that are not UTF-8".to_owned()
            } else {
                match serde_json::from_str::<User>(record) {
                    Ok(user) => {
                        list.users.push(user);
                        continue;
                    }
                    Err(err) => err.to_string(),
                }
            };
            list.rejected.push(RejectedUser {
                name: name_of(record),
                reason,
            });
        }
        Ok(list)
    }
}

/// The name in a record that could not be read, for the log: as a string
/// when it is one, else as the JSON text the hub sent (escapes and all).
fn name_of(record: &str) -> Option<String> {
    let raw = serde_json::from_str::<NameOnly<'_>>(record).ok()?.name?;
    Some(serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| raw.get().to_owned()))
}

/// `GET /user`: who the token belongs to, and what it may see.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct TokenOwner {
    /// The service's (or user's) name.
    #[serde(default)]
    pub name: Option<String>,
    /// The token's scopes, expanded; `None` from hubs before 2.0, which
    /// have no scopes.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// `GET /` of the hub API.
#[derive(Clone, Debug, Deserialize)]
pub struct VersionInfo {
    /// The hub's version string.
    pub version: String,
}

/// The JSON error body the hub sends with 4xx/5xx answers.
#[derive(Clone, Debug, Deserialize)]
pub struct ErrorBody {
    /// The hub's explanation, e.g. which scope is missing.
    pub message: String,
}

#[cfg(test)]
mod tests {
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
        assert_eq!(servers.keys().collect::<Vec<_>>(), ["", "gpu"]);
        let gpu = &servers["gpu"];
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
        assert_eq!(servers[""].url.as_deref(), Some("/user/old/"));
        assert_eq!(servers[""].last_activity, user.last_activity);
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
        let more =
            r#", "next": {"offset": 2, "limit": 2, "url": "http://hub/hub/api/users?offset=2"}"#;
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
            let items: Vec<serde_json::Value> =
                match serde_json::from_str::<serde_json::Value>(&text) {
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
}
