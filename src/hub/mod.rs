//! A typed client for the few JupyterHub REST endpoints the culler uses.
//!
//! Every request waits for a permit from one shared semaphore first, so
//! `--concurrency` bounds everything outstanding to the hub (lists and
//! deletes alike), whichever actor sends it.

mod error;
mod models;
mod time;
mod tls;
mod version;

pub use error::{HubError, REQUIRED_SCOPES};
pub use models::{Pagination, RejectedUser, Server, User, UserList};
pub use time::{BadTimestamp, Timestamp};
pub use tls::{internal_ssl, system_roots, TlsError};
pub use version::HubVersion;

use awc::http::StatusCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The media type that makes JupyterHub >= 2.0 answer with `_pagination`.
const PAGINATION_MEDIA_TYPE: &str = "application/jupyterhub-pagination+json";

/// The largest list body we read. A page is tens of KiB; only pre-2.0 hubs,
/// which send every user at once, come near this.
const LIST_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// The API token, kept out of `Debug` output so it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// Wraps a token read from the environment.
    pub fn new(token: String) -> Self {
        ApiToken(token)
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

/// Everything needed to build a client, shareable across threads.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// The API base, e.g. `http://127.0.0.1:8081/hub/api`, without a trailing `/`.
    pub base_url: String,
    /// The service token.
    pub token: ApiToken,
    /// How long one request may take (`JUPYTERHUB_REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
    /// The most requests outstanding at once (`--concurrency`).
    pub concurrency: usize,
    /// TLS settings for JupyterHub's internal SSL (`--ssl-enabled`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Which users `GET /users` should return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserState {
    /// Users with at least one ready server.
    Ready,
    /// Users with no active server.
    Inactive,
}

impl UserState {
    fn as_query(self) -> &'static str {
        match self {
            UserState::Ready => "ready",
            UserState::Inactive => "inactive",
        }
    }
}

/// One `GET /users` request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// The `state` filter; `None` on hubs older than 1.3.
    pub state: Option<UserState>,
    /// Where the page starts; `None` for the hub's default (0).
    pub offset: Option<u64>,
    /// The page size; `None` for the hub's default.
    pub limit: Option<u64>,
}

/// What a request to stop a server achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// 204: the server is stopped.
    Stopped,
    /// 202: the stop is still going on after the hub's `slow_stop_timeout`.
    StillStopping,
    /// 404: the user or named server no longer exists.
    Gone,
}

/// What a request to delete a user achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// 204: the user is deleted.
    Deleted,
    /// 404: the user was already gone.
    Gone,
}

/// The hub's API, for one thread (awc clients are not `Send`).
#[derive(Clone)]
pub struct HubClient {
    base_url: Rc<str>,
    token: Rc<str>,
    authorization: Rc<str>,
    http: awc::Client,
    permits: Arc<Semaphore>,
    timeout: Duration,
}

/// The two kinds of request the culler makes.
#[derive(Clone, Copy)]
enum Method {
    /// A GET, asking for paginated lists or not.
    Get { paginated: bool },
    /// A DELETE, with an optional JSON body.
    Delete { json: Option<&'static str> },
}

impl Method {
    /// `METHOD url`, for error messages.
    fn label(self, url: &str) -> String {
        match self {
            Method::Get { .. } => format!("GET {url}"),
            Method::Delete { .. } => format!("DELETE {url}"),
        }
    }
}

/// A whole answer from the hub.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Vec<u8>,
}

impl HubClient {
    /// Builds a client on the current thread. `permits` is shared by every
    /// client of the process so the concurrency bound is global.
    pub fn new(config: &HubConfig, permits: Arc<Semaphore>) -> Self {
        let mut connector = awc::Connector::new()
            .timeout(config.request_timeout)
            .limit(config.concurrency.max(1));
        if let Some(tls) = &config.tls {
            connector = connector.rustls_0_23(Arc::clone(tls));
        }
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(config.request_timeout)
            .disable_redirects()
            .finish();
        HubClient {
            base_url: Rc::from(config.base_url.trim_end_matches('/')),
            token: Rc::from(config.token.0.as_str()),
            authorization: Rc::from(format!("token {}", config.token.0)),
            http,
            permits,
            timeout: config.request_timeout,
        }
    }

    /// A semaphore sized for `--concurrency`, to share between clients.
    pub fn permits(concurrency: usize) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(concurrency.max(1)))
    }

    /// `GET /`: the hub's version, which decides whether `state` filters exist.
    pub async fn version(&self) -> Result<HubVersion, HubError> {
        let url = format!("{}/", self.base_url);
        let body = self.get(&url, false).await?;
        let info: models::VersionInfo =
            serde_json::from_slice(&body).map_err(|err| HubError::BadBody {
                request: format!("GET {url}"),
                detail: err.to_string(),
            })?;
        HubVersion::parse(&info.version).ok_or_else(|| HubError::BadBody {
            request: format!("GET {url}"),
            detail: format!("unreadable version {:?}", info.version),
        })
    }

    /// `GET /users`, one page (or, from pre-2.0 hubs, everything).
    pub async fn list_users(&self, query: UserQuery) -> Result<UserList, HubError> {
        let url = self.users_url(query);
        let body = self.get(&url, true).await?;
        UserList::from_json(&body).map_err(|err| HubError::BadBody {
            request: format!("GET {url}"),
            detail: err.to_string(),
        })
    }

    /// Stops a server: `DELETE /users/{user}/server` for the default server,
    /// `DELETE /users/{user}/servers/{name}` (optionally removing it) otherwise.
    pub async fn stop_server(
        &self,
        user: &str,
        server: &str,
        remove: bool,
    ) -> Result<StopOutcome, HubError> {
        let url = if server.is_empty() {
            format!("{}/users/{}/server", self.base_url, path_segment(user))
        } else {
            format!(
                "{}/users/{}/servers/{}",
                self.base_url,
                path_segment(user),
                path_segment(server)
            )
        };
        let body = (remove && !server.is_empty()).then_some(r#"{"remove": true}"#);
        match self.delete(&url, body).await? {
            StatusCode::ACCEPTED => Ok(StopOutcome::StillStopping),
            StatusCode::NOT_FOUND => Ok(StopOutcome::Gone),
            _ => Ok(StopOutcome::Stopped),
        }
    }

    /// Deletes a user: `DELETE /users/{user}`.
    pub async fn delete_user(&self, user: &str) -> Result<DeleteOutcome, HubError> {
        let url = format!("{}/users/{}", self.base_url, path_segment(user));
        match self.delete(&url, None).await? {
            StatusCode::NOT_FOUND => Ok(DeleteOutcome::Gone),
            _ => Ok(DeleteOutcome::Deleted),
        }
    }

    fn users_url(&self, query: UserQuery) -> String {
        let mut url = format!("{}/users", self.base_url);
        let mut separator = '?';
        let mut push = |key: &str, value: &dyn std::fmt::Display| {
            url.push(separator);
            url.push_str(key);
            url.push('=');
            url.push_str(&value.to_string());
            separator = '&';
        };
        if let Some(state) = query.state {
            push("state", &state.as_query());
        }
        if let Some(offset) = query.offset {
            push("offset", &offset);
        }
        if let Some(limit) = query.limit {
            push("limit", &limit);
        }
        url
    }

    async fn get(&self, url: &str, paginated: bool) -> Result<Vec<u8>, HubError> {
        let answer = self.exchange(Method::Get { paginated }, url).await?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(self.status_error(Method::Get { paginated }, url, &answer))
        }
    }

    /// Sends a DELETE and returns its status when it is one the hub uses for
    /// success or "already gone".
    async fn delete(&self, url: &str, json: Option<&'static str>) -> Result<StatusCode, HubError> {
        let answer = self.exchange(Method::Delete { json }, url).await?;
        if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
            Ok(answer.status)
        } else {
            Err(self.status_error(Method::Delete { json }, url, &answer))
        }
    }

    /// One request, start to finish (permit, send, whole body) within the
    /// request timeout: a hub that sends headers and then stalls must not
    /// hold a permit, or the pass, for ever.
    async fn exchange(&self, method: Method, url: &str) -> Result<Answer, HubError> {
        // The semaphore is never closed, so a permit always comes.
        let _permit = self.permits.acquire().await.ok();
        let attempt = async {
            let builder = match method {
                Method::Get { .. } => self.http.get(url),
                Method::Delete { .. } => self.http.delete(url),
            }
            .insert_header(("Authorization", &*self.authorization));
            let sent = match method {
                Method::Get { paginated: true } => {
                    builder
                        .insert_header(("Accept", PAGINATION_MEDIA_TYPE))
                        .send()
                        .await
                }
                Method::Delete { json: Some(json) } => {
                    builder
                        .insert_header(("Content-Type", "application/json"))
                        .send_body(json)
                        .await
                }
                _ => builder.send().await,
            };
            let mut response = sent.map_err(|err| self.send_error(method, url, err))?;
            let status = response.status();
            let location = response
                .headers()
                .get("Location")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let body = response
                .body()
                .limit(LIST_BODY_LIMIT)
                .await
                .map_err(|err| HubError::BadBody {
                    request: method.label(url),
                    detail: format!("could not read the body: {err}"),
                })?;
            Ok(Answer {
                status,
                location,
                body: body.to_vec(),
            })
        };
        actix_rt::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(self.timeout_error(method, url)))
    }

    fn timeout_error(&self, method: Method, url: &str) -> HubError {
        HubError::Timeout {
            request: method.label(url),
            seconds: self.timeout.as_secs(),
        }
    }

    fn send_error(&self, method: Method, url: &str, err: awc::error::SendRequestError) -> HubError {
        use awc::error::{ConnectError, SendRequestError};
        match err {
            SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => {
                self.timeout_error(method, url)
            }
            other => HubError::Unreachable {
                request: method.label(url),
                detail: other.to_string(),
            },
        }
    }

    /// Builds the error for a non-success status, using the hub's JSON
    /// message when there is one, and never repeating the token (a proxy in
    /// front of the hub may echo request headers).
    fn status_error(&self, method: Method, url: &str, answer: &Answer) -> HubError {
        let error = status_error(
            method.label(url),
            answer.status,
            &answer.body,
            answer.location.as_deref(),
        );
        redact(error, &self.token)
    }
}

/// Builds the error for a non-success status, using the hub's JSON message
/// when there is one.
fn status_error(
    request: String,
    status: StatusCode,
    body: &[u8],
    location: Option<&str>,
) -> HubError {
    if status.is_redirection() {
        return HubError::Status {
            request,
            status: status.as_u16(),
            message: format!(
                "redirected to {}; --url must be the hub's API URL, ending in /hub/api",
                location.unwrap_or("an unknown place")
            ),
        };
    }
    let message = serde_json::from_slice::<models::ErrorBody>(body)
        .map(|error| error.message)
        .unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            if text.trim().is_empty() {
                status.canonical_reason().unwrap_or("no message").to_owned()
            } else {
                text.trim().to_owned()
            }
        });
    if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
        HubError::Forbidden { request, message }
    } else {
        HubError::Status {
            request,
            status: status.as_u16(),
            message,
        }
    }
}

/// Removes the token from an error's message.
fn redact(error: HubError, token: &str) -> HubError {
    if token.is_empty() {
        return error;
    }
    let clean = |text: String| text.replace(token, "<redacted>");
    match error {
        HubError::Forbidden { request, message } => HubError::Forbidden {
            request,
            message: clean(message),
        },
        HubError::Status {
            request,
            status,
            message,
        } => HubError::Status {
            request,
            status,
            message: clean(message),
        },
        other => other,
    }
}

/// Percent-encodes one path segment: everything but RFC 3986's unreserved
/// characters, so names with `@`, `+`, `/`, spaces or non-ASCII reach the
/// right user.
pub fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(path_segment("alice"), "alice");
        assert_eq!(path_segment("carol@example.org"), "carol%40example.org");
        assert_eq!(path_segment("a b+c/d"), "a%20b%2Bc%2Fd");
        assert_eq!(path_segment("ünï"), "%C3%BCn%C3%AF");
        assert_eq!(path_segment("x-y_z.~"), "x-y_z.~");
    }

    #[test]
    fn forbidden_names_the_scopes_or_the_token() {
        let scope = status_error(
            "GET u".into(),
            StatusCode::FORBIDDEN,
            br#"{"status": 403, "message": "Action is not authorized with current scopes; requires any of [list:users]"}"#,
            None,
        );
        let text = scope.to_string();
        assert!(text.contains("requires any of [list:users]"), "{text}");
        assert!(text.contains("read:servers"), "{text}");
        let token = status_error(
            "GET u".into(),
            StatusCode::FORBIDDEN,
            br#"{"status": 403, "message": "Missing or invalid credentials."}"#,
            None,
        );
        assert!(token.to_string().contains("JUPYTERHUB_API_TOKEN"));
    }

    #[test]
    fn other_statuses_keep_the_message_or_the_body() {
        let json = status_error(
            "DELETE u".into(),
            StatusCode::BAD_REQUEST,
            br#"{"message": "still stopping"}"#,
            None,
        );
        assert_eq!(json.status(), Some(400));
        assert!(json.to_string().contains("still stopping"));
        let html = status_error(
            "GET u".into(),
            StatusCode::BAD_GATEWAY,
            b"<html>bad gateway</html>",
            None,
        );
        assert!(html.to_string().contains("<html>bad gateway"));
        let empty = status_error("GET u".into(), StatusCode::INTERNAL_SERVER_ERROR, b"", None);
        assert!(empty.to_string().contains("Internal Server Error"));
    }

    #[test]
    fn redirects_say_where_and_what_url_to_give() {
        let moved = status_error(
            "GET http://hub:8081/users".into(),
            StatusCode::FOUND,
            b"",
            Some("/hub/users"),
        );
        let text = moved.to_string();
        assert!(text.contains("redirected to /hub/users"), "{text}");
        assert!(text.contains("/hub/api"), "{text}");
    }

    #[test]
    fn echoed_tokens_are_redacted_from_messages() {
        let echoed = status_error(
            "GET u".into(),
            StatusCode::BAD_REQUEST,
            b"bad request; headers: Authorization: token s3cret",
            None,
        );
        let text = redact(echoed, "s3cret").to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn token_is_never_in_debug_output() {
        let token = ApiToken::new("s3cret".into());
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}
