//! JupyterHub's REST semantics as the culler meets them (see
//! `shared/JUPYTERHUB-API.md`, checked against JupyterHub 6.1.1): routing,
//! the token check, `GET /users` with `state` filters, the in-memory `ready`
//! filter after offset/limit, the pagination envelope or plain lists for old
//! hubs, the DELETE status codes, the user and server models, JSON errors.
//!
//! Nothing here knows about sockets or faults: it turns a request and the
//! state into an answer (and the state's records).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::http::{Request, Response};
use super::population::{FakeInside, FakeServer, FakeUser};
use super::state::{HubState, ListRecord, RequestKind, Target, WriteRecord};
use super::HubConfig;

/// The media type that asks JupyterHub >= 2.0 for the pagination envelope.
pub const PAGINATION_MEDIA_TYPE: &str = "application/jupyterhub-pagination+json";

/// The request routed to the hub's handlers, names decoded.
pub(super) enum Route {
    /// `GET /hub/api/`.
    Version,
    /// `GET /users`.
    ListUsers,
    /// `GET /user`: who the token belongs to, with its scopes.
    WhoAmI,
    /// `GET /users/{name}`.
    GetUser(String),
    /// `DELETE /users/{name}`.
    DeleteUser(String),
    /// `DELETE /users/{user}/server` (`server` empty) or `…/servers/{server}`.
    StopServer { user: String, server: String },
    /// An API path the hub does not have.
    NotFound,
    /// A known path with the wrong method.
    MethodNotAllowed,
    /// `GET /user/{user}/[{server}/]api/{what}`: a single-user server's
    /// own API, through the proxy.
    Inside {
        user: String,
        server: String,
        what: String,
    },
    /// Not below `/hub/api` at all.
    Outside,
}

/// A request's path decoded and routed.
pub(super) struct Parsed {
    /// Path below `/hub/api`, each segment percent-decoded (the whole
    /// decoded path for requests outside it).
    pub path: String,
    /// Where it goes.
    pub route: Route,
}

impl Parsed {
    /// Decodes and routes the request's path.
    pub fn of(req: &Request) -> Parsed {
        if let Some(inside) = Route::inside(&req.raw_path) {
            return Parsed {
                path: percent_decode(&req.raw_path, false),
                route: inside,
            };
        }
        let Some(rel_raw) = req.raw_path.strip_prefix("/hub/api") else {
            return Parsed {
                path: percent_decode(&req.raw_path, false),
                route: Route::Outside,
            };
        };
        let segments: Vec<String> = rel_raw
            .split('/')
            .skip(1)
            .map(|s| percent_decode(s, false))
            .collect();
        Parsed {
            path: format!("/{}", segments.join("/")),
            route: Route::parse(&req.method, &segments),
        }
    }

    /// What it asks for, for counting.
    pub fn kind(&self) -> RequestKind {
        match self.route {
            Route::Version => RequestKind::Version,
            Route::ListUsers => RequestKind::ListUsers,
            Route::WhoAmI => RequestKind::WhoAmI,
            Route::GetUser(_) => RequestKind::GetUser,
            Route::DeleteUser(_) => RequestKind::DeleteUser,
            Route::StopServer { .. } => RequestKind::StopServer,
            Route::Inside { .. } => RequestKind::Inside,
            Route::NotFound | Route::MethodNotAllowed | Route::Outside => RequestKind::Other,
        }
    }

    fn target(&self) -> Target {
        match &self.route {
            Route::DeleteUser(user) => Target::User { user: user.clone() },
            Route::StopServer { user, server } => Target::Server {
                user: user.clone(),
                server: server.clone(),
            },
            _ => Target::Other,
        }
    }
}

impl Route {
    /// `/user/NAME/api/WHAT` or `/user/NAME/SERVER/api/WHAT`.
    fn inside(raw_path: &str) -> Option<Route> {
        let rest = raw_path.strip_prefix("/user/")?;
        let segments: Vec<String> = rest.split('/').map(|s| percent_decode(s, false)).collect();
        let (user, server, what) = match segments.as_slice() {
            [user, api, what] if api == "api" => (user, String::new(), what),
            [user, server, api, what] if api == "api" => (user, server.clone(), what),
            _ => return None,
        };
        Some(Route::Inside {
            user: user.clone(),
            server,
            what: what.clone(),
        })
    }

    fn parse(method: &str, segments: &[String]) -> Route {
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let (route, allowed): (Route, &[&str]) = match segs.as_slice() {
            [] | [""] => (Route::Version, &["GET"]),
            ["users"] | ["users", ""] => (Route::ListUsers, &["GET"]),
            ["user"] => (Route::WhoAmI, &["GET"]),
            ["users", name] => {
                if method == "DELETE" {
                    (Route::DeleteUser(name.to_string()), &["DELETE"])
                } else {
                    (Route::GetUser(name.to_string()), &["GET"])
                }
            }
            ["users", name, "server"] => (
                Route::StopServer {
                    user: name.to_string(),
                    server: String::new(),
                },
                &["DELETE"],
            ),
            ["users", name, "servers", server] => (
                Route::StopServer {
                    user: name.to_string(),
                    server: server.to_string(),
                },
                &["DELETE"],
            ),
            _ => return Route::NotFound,
        };
        if allowed.contains(&method) {
            route
        } else {
            Route::MethodNotAllowed
        }
    }
}

/// Whether the request passes the token check: `GET /hub/api/` and paths
/// outside the API need none; the rest need `Authorization: token T` (or
/// `Bearer T`, or `?token=T`) when the hub has a token.
pub(super) fn authorized(config: &HubConfig, req: &Request, parsed: &Parsed) -> bool {
    if matches!(parsed.route, Route::Version | Route::Outside) {
        return true;
    }
    let presented = presented_token(req);
    if let Route::Inside { .. } = parsed.route {
        // The single-user server lets in the hub's token holders with
        // access:servers.
        return config
            .token
            .as_deref()
            .is_none_or(|t| presented.as_deref() == Some(t))
            && config.scopes().iter().any(|s| s == "access:servers");
    }
    if config.other(presented.as_deref()).is_some() {
        return true;
    }
    match &config.token {
        None => true,
        Some(expected) => presented.as_deref() == Some(expected.as_str()),
    }
}

/// The hub's answer to a bad or missing token.
pub(super) fn forbidden() -> Response {
    error(403, Some("Missing or invalid credentials."))
}

/// The hub's semantics: answers the request, changes the state, and records
/// writes and lists.
pub(super) fn answer(s: &mut HubState, req: &Request, parsed: &Parsed) -> Response {
    let response = match &parsed.route {
        Route::Version => Response::json(200, &json!({ "version": s.config.version })),
        Route::ListUsers => list_users(s, req),
        Route::WhoAmI => match s.config.other(presented_token(req).as_deref()) {
            Some(other) => Response::json(
                200,
                &json!({
                    "kind": "service",
                    "name": other.owner,
                    "roles": [],
                    "scopes": other.scopes,
                }),
            ),
            None => Response::json(
                200,
                &json!({
                    "kind": "service",
                    "name": "idle-culler",
                    "roles": ["idle-culler-role"],
                    "scopes": s.config.scopes(),
                }),
            ),
        },
        Route::GetUser(name) => match s.user(name) {
            Some(user) => Response::json(200, &user_model(&s.config, user)),
            None => error(404, None),
        },
        Route::DeleteUser(name) => delete_user(s, name),
        Route::StopServer { user, server } => stop_server(s, user, server, &req.body),
        Route::Inside { user, server, what } => inside(s, user, server, what),
        Route::NotFound | Route::Outside => error(404, Some("Not Found")),
        Route::MethodNotAllowed => error(405, Some("Method Not Allowed")),
    };
    record_write(s, req, parsed, response.status);
    response
}

/// Records a non-GET request with the status decided for it.
pub(super) fn record_write(s: &mut HubState, req: &Request, parsed: &Parsed, status: u16) {
    if req.method == "GET" || req.method == "HEAD" {
        return;
    }
    s.writes.push(WriteRecord {
        method: req.method.clone(),
        path: parsed.path.clone(),
        raw_path: req.raw_path.clone(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        target: parsed.target(),
        status,
    });
}

/// The token from `Authorization: token T` / `Bearer T` or `?token=T`.
fn presented_token(req: &Request) -> Option<String> {
    if let Some(value) = req.header("Authorization") {
        let mut parts = value.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or("");
        let token = parts.next().unwrap_or("").trim();
        if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
            return Some(token.to_owned());
        }
        return None;
    }
    parse_query(&req.query)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

/// `GET /users`: state filter, offset/limit, ready post-filter, envelope
/// (with the configured lies).
fn list_users(s: &mut HubState, req: &Request) -> Response {
    let version = parse_version(&s.config.version);
    let params = parse_query(&req.query);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let sent_state = get("state");
    // Hubs before 1.3 do not know the filter and ignore it.
    let state = if version >= (1, 3) {
        sent_state.clone()
    } else {
        None
    };
    if let Some(other) = state
        .as_deref()
        .filter(|st| !matches!(*st, "active" | "ready" | "inactive"))
    {
        let message = format!("Unrecognized state filter: '{other}'");
        return error(400, Some(&message));
    }
    let paging = version >= (2, 0);
    let accepts_pagination = paging
        && req
            .header_values("Accept")
            .any(|v| v.contains(PAGINATION_MEDIA_TYPE));

    let (offset, limit) = if paging {
        let max = s.config.page_max_limit.max(1);
        let default = if accepts_pagination {
            s.config.page_default_limit
        } else {
            max
        };
        let parse = |v: Option<String>, default: usize| -> Option<usize> {
            match v {
                None => Some(default),
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .map(|n| n.unsigned_abs() as usize),
            }
        };
        match (parse(get("offset"), 0), parse(get("limit"), default)) {
            (Some(offset), Some(limit)) => (offset, limit.clamp(1, max)),
            _ => {
                return error(
                    400,
                    Some("Invalid argument type, offset and limit must be integers"),
                )
            }
        }
    } else {
        (0, usize::MAX)
    };
    let lies = &s.config.lies;
    // A hub ignoring `offset` serves the first page whatever is asked.
    let served_offset = if lies.ignore_offset { 0 } else { offset };

    let base: fn(&FakeUser) -> bool = match state.as_deref() {
        Some("active") | Some("ready") => FakeUser::is_active,
        Some("inactive") => |u: &FakeUser| !u.is_active(),
        _ => |_: &FakeUser| true,
    };
    let post_ready = state.as_deref() == Some("ready");
    let served_end = served_offset.saturating_add(limit);
    let mut total = 0usize;
    let mut items = Vec::new();
    for user in s.users() {
        if !base(user) {
            continue;
        }
        if total >= served_offset && total < served_end && (!post_ready || user.is_ready()) {
            items.push(user_model(&s.config, user));
        }
        total += 1;
    }

    let returned = items.len();
    let body = if accepts_pagination {
        let end = offset.saturating_add(limit);
        let next = if end < total {
            let base_url = s.config.next_url_base.clone().unwrap_or_else(|| {
                let host = req.header("Host").unwrap_or("127.0.0.1");
                format!("http://{host}/hub/api")
            });
            let mut pairs = params.clone();
            set_param(&mut pairs, "offset", end.to_string());
            set_param(&mut pairs, "limit", limit.to_string());
            let qs = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            json!({ "offset": end, "limit": limit, "url": format!("{base_url}/users?{qs}") })
        } else {
            Value::Null
        };
        json!({
            "items": items,
            "_pagination": {
                "offset": offset,
                "limit": lies.claimed_limit.unwrap_or(limit),
                "total": lies.total(total),
                "next": next,
            },
        })
    } else {
        Value::Array(items)
    };
    s.lists.push(ListRecord {
        state: sent_state,
        offset: served_offset,
        limit: if paging { limit } else { 0 },
        paginated: accepts_pagination,
        returned,
        total,
    });
    let mut text = body.to_string();
    for (name, raw) in &s.config.raw_names {
        let written = format!("\"name\":{}", Value::String(name.clone()));
        text = text.replace(&written, &format!("\"name\":{raw}"));
    }
    Response::new(200, "application/json", text)
}

fn set_param(pairs: &mut Vec<(String, String)>, key: &str, value: String) {
    match pairs.iter_mut().find(|(k, _)| k == key) {
        Some(pair) => pair.1 = value,
        None => pairs.push((key.to_owned(), value)),
    }
}

/// `DELETE /users/{name}/server[s/{server}]` with the hub's status codes.
fn stop_server(s: &mut HubState, user: &str, server: &str, body: &[u8]) -> Response {
    let Some(u) = s.user_mut(user) else {
        return error(404, None);
    };
    let remove = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => v.get("remove").and_then(Value::as_bool).unwrap_or(false),
            Err(_) => return error(400, Some("Invalid JSON in body of request")),
        }
    };
    if !server.is_empty() {
        if !u.servers.contains_key(server) {
            let message = format!("{user} has no server named '{server}'");
            return error(404, Some(&message));
        }
    } else if remove {
        return error(400, Some("Cannot delete the default server"));
    }
    let slow = u.slow_stop;
    let Some(srv) = u.servers.get_mut(server) else {
        // A default server never started: nothing to stop.
        return Response::empty(204);
    };
    if srv.pending.as_deref() == Some("stop") {
        return Response::empty(202);
    }
    if srv.is_active() {
        if slow {
            srv.ready = false;
            srv.pending = Some("stop".to_owned());
            return Response::empty(202);
        }
        srv.ready = false;
        srv.pending = None;
        srv.started = None;
    }
    if remove {
        u.servers.remove(server);
    }
    Response::empty(204)
}

/// `DELETE /users/{name}`: the hub stops running servers itself first, and
/// refuses (400) while one is still stopping.
fn delete_user(s: &mut HubState, name: &str) -> Response {
    let Some(u) = s.user_mut(name) else {
        return error(404, None);
    };
    let stopping = format!("{name}'s server is in the process of stopping, please wait.");
    let slow = u.slow_stop;
    if u.servers
        .values()
        .any(|srv| srv.pending.as_deref() == Some("stop"))
    {
        return error(400, Some(&stopping));
    }
    for srv in u.servers.values_mut().filter(|srv| srv.is_active()) {
        srv.ready = false;
        if slow {
            srv.pending = Some("stop".to_owned());
        } else {
            srv.pending = None;
            srv.started = None;
        }
    }
    if slow && u.is_active() {
        return error(400, Some(&stopping));
    }
    s.remove_user(name);
    Response::empty(204)
}

fn timestamp(config: &HubConfig, at: Option<DateTime<Utc>>) -> Value {
    match at {
        None => Value::Null,
        Some(at) if config.naive_timestamps => {
            Value::String(at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        }
        Some(at) => Value::String(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
    }
}

/// The user model as the hub serialises it for a token with the culler's
/// scopes (or the minimal ones).
fn user_model(config: &HubConfig, user: &FakeUser) -> Value {
    let (major, _) = parse_version(&config.version);
    let escaped = url_segment(&user.name);
    let mut m = Map::new();
    if !config.minimal_scopes {
        let default = user.servers.get("");
        m.insert(
            "pending".into(),
            default
                .and_then(|d| d.pending.clone())
                .map_or(Value::Null, Value::String),
        );
        m.insert(
            "server".into(),
            if default.is_some_and(|d| d.ready) {
                Value::String(format!("/user/{escaped}/"))
            } else {
                Value::Null
            },
        );
        m.insert("groups".into(), json!(user.groups));
        m.insert("created".into(), timestamp(config, Some(user.created)));
    }
    m.insert("name".into(), Value::String(user.name.clone()));
    m.insert(
        "last_activity".into(),
        timestamp(config, user.last_activity),
    );
    m.insert("kind".into(), Value::String("user".into()));
    if !config.minimal_scopes {
        if major >= 2 {
            m.insert("roles".into(), json!(["user"]));
        }
        m.insert("auth_state".into(), Value::Null);
    }
    m.insert("admin".into(), Value::Bool(user.admin));
    let mut servers = Map::new();
    for srv in user.servers.values().filter(|s| s.is_active()) {
        servers.insert(srv.name.clone(), server_model(config, user, &escaped, srv));
    }
    m.insert("servers".into(), Value::Object(servers));
    if major >= 5 {
        m.insert("user_info".into(), Value::Null);
    }
    Value::Object(m)
}

fn server_model(config: &HubConfig, user: &FakeUser, escaped: &str, srv: &FakeServer) -> Value {
    let (major, _) = parse_version(&config.version);
    let (url, progress) = if srv.name.is_empty() {
        (
            format!("/user/{escaped}/"),
            format!("/hub/api/users/{escaped}/server/progress"),
        )
    } else {
        let s = url_segment(&srv.name);
        (
            format!("/user/{escaped}/{s}/"),
            format!("/hub/api/users/{escaped}/servers/{s}/progress"),
        )
    };
    let mut m = Map::new();
    m.insert("name".into(), Value::String(srv.name.clone()));
    if major >= 6 {
        m.insert("display_name".into(), Value::String(srv.name.clone()));
    }
    m.insert(
        "full_name".into(),
        Value::String(format!("{}/{}", user.name, srv.name)),
    );
    m.insert("last_activity".into(), timestamp(config, srv.last_activity));
    m.insert("started".into(), timestamp(config, srv.started));
    m.insert(
        "pending".into(),
        srv.pending.clone().map_or(Value::Null, Value::String),
    );
    m.insert("ready".into(), Value::Bool(srv.ready));
    m.insert("stopped".into(), Value::Bool(!srv.is_active()));
    m.insert("url".into(), Value::String(url));
    m.insert("user_options".into(), srv.user_options.clone());
    m.insert("progress_url".into(), Value::String(progress));
    m.insert("full_url".into(), Value::Null);
    m.insert("full_progress_url".into(), Value::Null);
    Value::Object(m)
}

/// How long a hung single-user server keeps a request waiting.
pub(super) fn hang_of(s: &HubState, parsed: &Parsed) -> std::time::Duration {
    let Route::Inside { user, server, .. } = &parsed.route else {
        return std::time::Duration::ZERO;
    };
    match s
        .user(user)
        .and_then(|u| u.servers.get(server))
        .map(|srv| &srv.inside)
    {
        Some(FakeInside::Hangs(d)) => *d,
        _ => std::time::Duration::ZERO,
    }
}

/// A single-user server's own answer (jupyter-server 2's shapes), or the
/// proxy's when the server is not there. A hung server's wait is served
/// before this ([`FakeInside::Hangs`]), then it answers as idle.
fn inside(s: &HubState, user: &str, server: &str, what: &str) -> Response {
    let running = s
        .user(user)
        .and_then(|u| u.servers.get(server))
        .filter(|srv| srv.is_active());
    let Some(srv) = running else {
        return Response::new(
            503,
            "text/html",
            "<html><body>Service Unavailable</body></html>",
        );
    };
    let stamp = |at: &DateTime<Utc>| json!(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    let (kernels, terminals, connections) = match &srv.inside {
        FakeInside::Jupyter {
            kernels,
            terminals,
            connections,
        } => (kernels.clone(), terminals.clone(), *connections),
        FakeInside::Hangs(_) => (Vec::new(), Some(Vec::new()), 0),
        FakeInside::Html => {
            return Response::new(
                200,
                "text/html",
                "<html><body>Hello from Streamlit</body></html>",
            )
        }
        FakeInside::Gone => {
            return Response::new(
                503,
                "text/html",
                "<html><body>Service Unavailable</body></html>",
            )
        }
    };
    match what {
        "status" => Response::json(
            200,
            &json!({
                "started": stamp(&srv.started.unwrap_or_else(Utc::now)),
                "last_activity": stamp(&Utc::now()),
                "connections": connections,
                "kernels": kernels.len(),
            }),
        ),
        "kernels" => Response::json(
            200,
            &Value::Array(
                kernels
                    .iter()
                    .enumerate()
                    .map(|(i, (state, at))| {
                        json!({"id": format!("k{i}"), "name": "python3",
                               "last_activity": stamp(at), "execution_state": state,
                               "connections": 0})
                    })
                    .collect(),
            ),
        ),
        "terminals" => match terminals {
            Some(terminals) => Response::json(
                200,
                &Value::Array(
                    terminals
                        .iter()
                        .enumerate()
                        .map(|(i, at)| json!({"name": (i + 1).to_string(), "last_activity": stamp(at)}))
                        .collect(),
                ),
            ),
            None => error(404, Some("Not Found")),
        },
        _ => error(404, Some("Not Found")),
    }
}

/// A hub-style JSON error: `{"status": N, "message": M}`.
fn error(status: u16, message: Option<&str>) -> Response {
    Response::json(status, &json!({ "status": status, "message": message }))
}

/// Major and minor of a PEP 440 version, leniently (`6.0.0b2` → (6, 0)).
fn parse_version(version: &str) -> (u64, u64) {
    let mut parts = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u64>()
            .unwrap_or(0)
    });
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`, for
/// queries); invalid UTF-8 becomes U+FFFD.
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986 unreserved characters; the real
/// hub's test helpers use it too.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A name as the hub writes it into the `url` fields (`@` left as is, as in
/// the 6.1.1 fixtures).
fn url_segment(name: &str) -> String {
    percent_encode(name).replace("%40", "@")
}

/// `a=1&b=x+y` → `[("a","1"), ("b","x y")]`, in order.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}
