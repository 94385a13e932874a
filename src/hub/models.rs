//! The parts of JupyterHub's REST models the culler reads.
//!
//! Fields are optional wherever the token's scopes may hide them: with the
//! documented culler scopes `created`, `server`, `pending` and `groups` are
//! absent, and the decisions must still be right.

use super::time::Timestamp;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;

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
    pub servers: Option<Servers>,
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

/// A user's servers by name, in name order. A sorted list rather than a
/// `BTreeMap`: nearly every user has one or two servers, and a map's node
/// holds room for eleven (about 2 KiB per user where this takes a tenth),
/// which is what a page of users costs in memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Servers(Vec<(String, Server)>);

impl Servers {
    /// How many servers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The server named `name` ("" for the default one).
    pub fn get(&self, name: &str) -> Option<&Server> {
        self.0
            .binary_search_by(|(key, _)| key.as_str().cmp(name))
            .ok()
            .map(|at| &self.0[at].1)
    }

    /// The servers in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Server)> {
        self.0.iter().map(|(name, server)| (name, server))
    }
}

/// As a map would be built: in name order, and a name given twice keeps
/// its last server.
impl FromIterator<(String, Server)> for Servers {
    fn from_iter<I: IntoIterator<Item = (String, Server)>>(entries: I) -> Self {
        let mut entries: Vec<(String, Server)> = entries.into_iter().collect();
        // Stable: among equal names, the order given stays.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut servers: Vec<(String, Server)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match servers.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => servers.push(entry),
            }
        }
        servers.shrink_to_fit();
        Servers(servers)
    }
}

impl<'a> IntoIterator for &'a Servers {
    type Item = (&'a String, &'a Server);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Server)>,
        fn(&'a (String, Server)) -> (&'a String, &'a Server),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(name, server)| (name, server))
    }
}

impl<'de> Deserialize<'de> for Servers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ByName;

        impl<'de> serde::de::Visitor<'de> for ByName {
            type Value = Servers;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of server names to servers")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Servers, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(1).min(64));
                while let Some(entry) = map.next_entry::<String, Server>()? {
                    entries.push(entry);
                }
                Ok(Servers::from_iter(entries))
            }
        }

        deserializer.deserialize_map(ByName)
    }
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
    pub fn visible_servers(&self) -> Option<Cow<'_, Servers>> {
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
        Some(Cow::Owned(Servers::from_iter([(String::new(), legacy)])))
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
mod tests;
