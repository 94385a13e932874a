//! A typed client for the few JupyterHub REST endpoints the culler uses.
//!
//! One call is one attempt: the client neither retries nor limits how many
//! requests are outstanding. Both are the executor pool's job
//! ([`crate::pipeline::pool`]), which is the one owner of `--concurrency`.
//! What the client does own is turning every answer into a typed outcome or
//! a [`HubError`] that says whether trying again can help.

mod endpoint;
mod error;
mod inside;
mod models;
pub mod retry;
mod time;
mod tls;
mod version;

pub use endpoint::{Endpoint, Observer, Unobserved};
pub use error::{BodyFault, HubError, REQUIRED_SCOPES};
pub use inside::{Inside, Kernel, LookError, Terminal};
pub use models::{
    Pagination, Readiness, RejectedUser, Server, Servers, TokenOwner, User, UserList,
};
pub use time::{BadTimestamp, Timestamp};
pub use tls::{internal_ssl, system_roots, TlsError};
pub use version::HubVersion;

use awc::http::StatusCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// The media type that makes JupyterHub >= 2.0 answer with `_pagination`.
const PAGINATION_MEDIA_TYPE: &str = "application/jupyterhub-pagination+json";

/// The largest list body we read. A page is tens of KiB; only pre-2.0 hubs,
/// which send every user at once, come near this.
const LIST_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// The most a body's buffer is sized for before it arrives, whatever its
/// `Content-Length` says: far above a page of users (tens of KiB), far
/// below what a lying header could make us reserve.
const PRESIZED_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The API token, kept out of `Debug` output so it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// Wraps a token read from the environment.
    pub fn new(token: String) -> Self {
        ApiToken(token)
    }

    /// The token itself: for the request header, and for the log, which
    /// scrubs it from every line.
    pub fn expose(&self) -> &str {
        &self.0
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
    /// TLS settings for JupyterHub's internal SSL (`--ssl-enabled`), or
    /// the system's roots for an `https://` hub or proxy.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Where single-user servers are asked about themselves
    /// (`--activity=server`); `None` when they are not.
    pub proxy: Option<ProxyConfig>,
}

/// The hub's public proxy, through which single-user servers are asked
/// what runs inside them.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyConfig {
    /// Its URL (`--proxy-url`), e.g. `http://proxy-public`, without a
    /// trailing `/`.
    pub url: String,
    /// How long one server may take to say what runs inside it
    /// (`--activity-timeout`): a hung server must not hold an executor
    /// for the hub's whole request timeout.
    pub timeout: Duration,
}

/// Which users `GET /users` should return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserState {
    /// Users with at least one ready server.
    Ready,
    /// Users with no active server.
    Inactive,
    /// Users with a ready or pending server (spawning, stopping): listed
    /// instead of `Ready` when stuck servers are watched (`--stuck-after`).
    Active,
}

impl UserState {
    /// The value of the `state` query parameter.
    pub fn as_query(self) -> &'static str {
        match self {
            UserState::Ready => "ready",
            UserState::Inactive => "inactive",
            UserState::Active => "active",
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
    /// 204 (or another 2xx but 202): the server is stopped.
    Stopped,
    /// 202: the stop is still going on after the hub's `slow_stop_timeout`.
    StillStopping,
    /// 404: the user or named server no longer exists.
    Gone,
}

/// What a request to delete a user achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// 2xx: the user is deleted.
    Deleted,
    /// 404: the user was already gone.
    Gone,
    /// 400: one of their servers is still stopping or starting, so the hub
    /// will not delete them yet; the next pass tries again.
    Busy {
        /// The hub's explanation.
        message: String,
    },
}

/// The hub's API, for one thread (awc clients are not `Send`).
#[derive(Clone)]
pub struct HubClient {
    base_url: Rc<str>,
    authorization: Rc<str>,
    http: awc::Client,
    timeout: Duration,
    /// Told of every attempt, by endpoint and status (the metrics).
    observer: Arc<dyn Observer>,
    /// Where servers are asked about themselves ([`HubClient::look_inside`]).
    proxy: Option<Rc<ProxyConfig>>,
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
    /// The HTTP method's name.
    fn name(self) -> &'static str {
        match self {
            Method::Get { .. } => "GET",
            Method::Delete { .. } => "DELETE",
        }
    }

    /// `METHOD url`, for error messages.
    fn label(self, url: &str) -> String {
        format!("{} {url}", self.name())
    }
}

/// A whole answer from the hub.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl HubClient {
    /// Builds a client on the current thread; its clones share one
    /// connection pool and report every attempt to `observer`.
    pub fn new(config: &HubConfig, observer: Arc<dyn Observer>) -> Self {
        // No connection limit here (0 = none): the executor pool is the one
        // owner of `--concurrency`, and a second, hidden bound would mask a
        // broken first one.
        let mut connector = awc::Connector::new()
            .timeout(config.request_timeout)
            .limit(0);
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
            authorization: Rc::from(format!("token {}", config.token.0)),
            http,
            timeout: config.request_timeout,
            observer,
            proxy: config.proxy.clone().map(Rc::new),
        }
    }

    /// The same hub, asked with another token (sharing this client's
    /// connections): the metrics endpoint asks who owns the token a
    /// scraper shows.
    pub fn with_token(&self, token: &ApiToken) -> HubClient {
        HubClient {
            authorization: Rc::from(format!("token {}", token.0)),
            ..self.clone()
        }
    }

    /// `GET /`: the hub's version, which decides whether `state` filters exist.
    pub async fn version(&self) -> Result<HubVersion, HubError> {
        let url = format!("{}/", self.base_url);
        let body = self.get(Endpoint::Root, &url, false).await?;
        let info: models::VersionInfo =
            serde_json::from_slice(&body).map_err(|err| bad_body(&url, &err))?;
        HubVersion::parse(&info.version).ok_or_else(|| HubError::BadBody {
            request: format!("GET {url}"),
            detail: format!("unreadable version {:?}", info.version),
            fault: BodyFault::Unexpected,
        })
    }

    /// `GET /user`: the token's owner and scopes, to check at start that
    /// the hub shows what the policy rules match on.
    pub async fn token_owner(&self) -> Result<TokenOwner, HubError> {
        let url = format!("{}/user", self.base_url);
        let body = self.get(Endpoint::TokenOwner, &url, false).await?;
        serde_json::from_slice(&body).map_err(|err| bad_body(&url, &err))
    }

    /// `GET /users`, one page (or, from pre-2.0 hubs, everything).
    pub async fn list_users(&self, query: UserQuery) -> Result<UserList, HubError> {
        let url = self.users_url(query);
        let body = self.get(Endpoint::Users, &url, true).await?;
        UserList::from_json(&body).map_err(|err| bad_body(&url, &err))
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
        let json = (remove && !server.is_empty()).then_some(r#"{"remove": true}"#);
        let endpoint = if server.is_empty() {
            Endpoint::UserServer
        } else {
            Endpoint::NamedServer
        };
        let method = Method::Delete { json };
        let answer = self.exchange(endpoint, method, &url).await?;
        read_stop(answer.status).ok_or_else(|| self.status_error(method, &url, &answer))
    }

    /// Deletes a user: `DELETE /users/{user}`.
    pub async fn delete_user(&self, user: &str) -> Result<DeleteOutcome, HubError> {
        let url = format!("{}/users/{}", self.base_url, path_segment(user));
        let method = Method::Delete { json: None };
        let answer = self.exchange(Endpoint::User, method, &url).await?;
        read_delete(answer.status, &answer.body)
            .ok_or_else(|| self.status_error(method, &url, &answer))
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

    async fn get(
        &self,
        endpoint: Endpoint,
        url: &str,
        paginated: bool,
    ) -> Result<Vec<u8>, HubError> {
        let answer = self
            .exchange(endpoint, Method::Get { paginated }, url)
            .await?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(self.status_error(Method::Get { paginated }, url, &answer))
        }
    }

    /// One request, start to finish (send, whole body) within the request
    /// timeout: a hub that sends headers and then stalls must not hold an
    /// executor, or the pass, for ever.
    async fn exchange(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: &str,
    ) -> Result<Answer, HubError> {
        let answer = self.attempt(method, url).await;
        self.observer.answered(
            method.name(),
            endpoint,
            answer.as_ref().ok().map(|a| a.status.as_u16()),
        );
        answer
    }

    /// The request itself, for [`HubClient::exchange`].
    async fn attempt(&self, method: Method, url: &str) -> Result<Answer, HubError> {
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
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned)
            };
            let location = header("Location");
            let retry_after = header("Retry-After").and_then(|v| retry_after_secs(&v));
            let length = header("Content-Length").and_then(|v| v.trim().parse::<usize>().ok());
            let body = read_body(&mut response, length)
                .await
                .map_err(|err| match err {
                    BodyError::TooLarge => HubError::BadBody {
                        request: method.label(url),
                        detail: format!("the answer is larger than {LIST_BODY_LIMIT} bytes"),
                        fault: BodyFault::TooLarge,
                    },
                    // The connection broke mid-answer: worth another try.
                    BodyError::Broken(detail) => HubError::Unreachable {
                        request: method.label(url),
                        detail: format!("the connection broke while reading the answer: {detail}"),
                    },
                })?;
            Ok(Answer {
                status,
                location,
                retry_after,
                body,
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
        send_error(method.label(url), self.timeout, err)
    }

    /// Builds the error for a non-success status, using the hub's JSON
    /// message when there is one. (A proxy may echo our request headers in
    /// it, token included: the log scrubs every line of the token.)
    fn status_error(&self, method: Method, url: &str, answer: &Answer) -> HubError {
        status_error(
            method.label(url),
            answer.status,
            &answer.body,
            answer.location.as_deref(),
            answer.retry_after,
        )
    }
}

/// Why an answer's body could not be read whole.
enum BodyError {
    /// Past [`LIST_BODY_LIMIT`].
    TooLarge,
    /// The connection broke (what the payload said).
    Broken(String),
}

/// Reads an answer's whole body into one buffer sized from its
/// `Content-Length` when it has one: a page of users arrives in many
/// pieces, and growing a buffer piece by piece (then copying it out, as
/// awc's `body()` does) cost a pass at 100,000 users a tenth of its CPU.
async fn read_body<R, B>(response: &mut R, length: Option<usize>) -> Result<Vec<u8>, BodyError>
where
    R: futures_util::Stream<Item = Result<B, awc::error::PayloadError>> + Unpin,
    B: AsRef<[u8]>,
{
    use futures_util::StreamExt;
    if length.is_some_and(|length| length > LIST_BODY_LIMIT) {
        return Err(BodyError::TooLarge);
    }
    // A length the hub claims is trusted only so far for the first
    // allocation; the body grows past it if it must.
    let mut body = Vec::with_capacity(length.unwrap_or(0).min(PRESIZED_BODY_LIMIT));
    while let Some(chunk) = response.next().await {
        let chunk = chunk.map_err(|err| BodyError::Broken(err.to_string()))?;
        let chunk = chunk.as_ref();
        if body.len() + chunk.len() > LIST_BODY_LIMIT {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(chunk);
    }
    Ok(body)
}

/// What a request that got no answer failed of: a timeout, a refused
/// certificate (which no retry mends), or the connection.
fn send_error(request: String, timeout: Duration, err: awc::error::SendRequestError) -> HubError {
    use awc::error::{ConnectError, SendRequestError};
    match err {
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => {
            HubError::Timeout {
                request,
                seconds: timeout.as_secs(),
            }
        }
        // rustls reports a refused certificate as an I/O error naming it.
        other if other.to_string().contains("certificate") => HubError::Untrusted {
            request,
            detail: other.to_string(),
        },
        other => HubError::Unreachable {
            request,
            detail: other.to_string(),
        },
    }
}

/// The error for a `GET`'s success body that did not read as expected.
fn bad_body(url: &str, err: &serde_json::Error) -> HubError {
    HubError::BadBody {
        request: format!("GET {url}"),
        detail: err.to_string(),
        fault: BodyFault::of(err),
    }
}

/// What the hub's status says of a server stop; `None`: a failure.
fn read_stop(status: StatusCode) -> Option<StopOutcome> {
    match status {
        StatusCode::ACCEPTED => Some(StopOutcome::StillStopping),
        StatusCode::NOT_FOUND => Some(StopOutcome::Gone),
        status if status.is_success() => Some(StopOutcome::Stopped),
        _ => None,
    }
}

/// What the hub's answer says of a user deletion; `None`: a failure.
///
/// A 400 is "not yet" only when the hub says a server of the user is
/// stopping (JupyterHub: "NAME's server is in the process of stopping,
/// please wait."): the next pass tries again. Any other 400 ("Cannot
/// delete yourself!", a hub extension's refusal) would answer the same on
/// every pass, so it is an error that names it.
fn read_delete(status: StatusCode, body: &[u8]) -> Option<DeleteOutcome> {
    match status {
        StatusCode::NOT_FOUND => Some(DeleteOutcome::Gone),
        StatusCode::BAD_REQUEST => {
            let message = hub_message(status, body);
            says_stopping(&message).then_some(DeleteOutcome::Busy { message })
        }
        status if status.is_success() => Some(DeleteOutcome::Deleted),
        _ => None,
    }
}

/// Whether the hub's message says a server is still stopping.
fn says_stopping(message: &str) -> bool {
    message.to_ascii_lowercase().contains("stopping")
}

/// Reads a `Retry-After` given in seconds (the form hubs and proxies use;
/// an HTTP date is ignored, and the backoff decides alone).
fn retry_after_secs(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Builds the error for a non-success status, using the hub's JSON message
/// when there is one.
fn status_error(
    request: String,
    status: StatusCode,
    body: &[u8],
    location: Option<&str>,
    retry_after: Option<Duration>,
) -> HubError {
    if status.is_redirection() {
        return HubError::Status {
            request,
            status: status.as_u16(),
            message: format!(
                "redirected to {}; --url must be the hub's API URL, ending in /hub/api",
                location.unwrap_or("an unknown place")
            ),
            retry_after: None,
        };
    }
    let message = hub_message(status, body);
    if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
        HubError::Forbidden { request, message }
    } else {
        HubError::Status {
            request,
            status: status.as_u16(),
            message,
            retry_after,
        }
    }
}

/// The hub's explanation of a status: its JSON `message`, else the start
/// of the body, else the status's name.
fn hub_message(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<models::ErrorBody>(body)
        .map(|error| error.message)
        .unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            if text.trim().is_empty() {
                status.canonical_reason().unwrap_or("no message").to_owned()
            } else {
                text.trim().to_owned()
            }
        })
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
mod tests;
