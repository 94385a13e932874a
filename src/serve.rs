//! The HTTP endpoint that exposes [`crate::metrics`]: `GET /metrics` (the
//! Prometheus text exposition) and `GET /health` (200 while passes succeed,
//! 503 after too many failures in a row), for Prometheus and for liveness
//! probes.
//!
//! A minimal HTTP/1.1 server on the current actix arbiter: one task per
//! connection, one request per connection (`Connection: close`), no
//! request bodies. Its only job is to answer two small GETs, so it takes no
//! web framework; what it must get right is that no client can hurt the
//! culler: a request head is read within [`MAX_REQUEST_BYTES`] and
//! [`READ_TIMEOUT`], at most [`MAX_CONNECTIONS`] connections are served at
//! once (more wait in the kernel's backlog), and nothing a client sends can
//! make it panic.
//!
//! Run as a JupyterHub-managed service with a `url`, the hub's proxy
//! forwards `/services/NAME/...` to us with the full path, so both
//! `{JUPYTERHUB_SERVICE_PREFIX}metrics` and the bare `/metrics` are served
//! (the same for `health`). [`bind_address`] turns `--metrics-bind` or
//! `JUPYTERHUB_SERVICE_URL` into the address to listen on.

use crate::logging::{debug, info, warning, Log};
use crate::metrics::{Metrics, CONTENT_TYPE};
use actix_rt::net::{TcpListener, TcpStream};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// The most bytes of a request head (request line and headers) read: a
/// scraper's request is a few hundred bytes, and a longer head is answered
/// 431 instead of growing a buffer for a hostile client.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// How long a client has to send its request head (and then to take the
/// answer): a client that connects and sends nothing, or trickles bytes,
/// holds a connection no longer than this.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most connections served at once; more wait in the listen backlog.
/// Prometheus and a probe or two need a handful; the bound caps the memory
/// and tasks a connection flood can take (each holds at most
/// [`MAX_REQUEST_BYTES`] for at most [`READ_TIMEOUT`] twice over).
pub const MAX_CONNECTIONS: usize = 64;

/// The default of how many failed passes in a row make `/health` answer 503.
pub const DEFAULT_MAX_FAILURES: u32 = 3;

/// After answering, how long (and how many bytes) to read and discard what
/// the client still sends before closing: closing a socket with unread
/// input makes the kernel reset the connection, and the client can lose
/// the answer it was reading.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// What the server answers: its paths and its health limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routes {
    /// Starts and ends with `/`: `/` or the service prefix.
    prefix: String,
    max_failures: u32,
    read_timeout: Duration,
    max_connections: usize,
}

impl Routes {
    /// Routes under `prefix` (`JUPYTERHUB_SERVICE_PREFIX`, e.g.
    /// `/services/idle-culler/`; `None` or empty: `/`; a missing leading or
    /// trailing `/` is added), answering `/health` with 503 once
    /// `max_failures` passes (0 counts as 1) failed in a row.
    pub fn new(prefix: Option<&str>, max_failures: u32) -> Routes {
        let trimmed = prefix.map(str::trim).unwrap_or("").trim_matches('/');
        let prefix = if trimmed.is_empty() {
            "/".to_owned()
        } else {
            format!("/{trimmed}/")
        };
        Routes {
            prefix,
            max_failures: max_failures.max(1),
            read_timeout: READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }

    /// The same with another limit on reading a request (tests use short ones).
    pub fn with_read_timeout(mut self, read_timeout: Duration) -> Routes {
        self.read_timeout = read_timeout;
        self
    }

    /// The same with another limit on connections served at once (at least 1).
    pub fn with_max_connections(mut self, max_connections: usize) -> Routes {
        self.max_connections = max_connections.max(1);
        self
    }

    /// The path prefix, `/` or e.g. `/services/idle-culler/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many failed passes in a row make `/health` answer 503.
    pub fn max_failures(&self) -> u32 {
        self.max_failures
    }

    /// Which page a path (without its query) asks for.
    fn page(&self, path: &str) -> Option<Page> {
        let name = path
            .strip_prefix(self.prefix.as_str())
            .filter(|name| matches!(*name, "metrics" | "health"))
            .or_else(|| path.strip_prefix('/'))?;
        match name {
            "metrics" => Some(Page::Metrics),
            "health" => Some(Page::Health),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    Metrics,
    Health,
}

/// Where to listen, and why there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindAddress {
    /// The socket address.
    pub addr: SocketAddr,
    /// Where it came from.
    pub origin: BindOrigin,
}

/// Where a [`BindAddress`] came from, for the start-up log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindOrigin {
    /// `--metrics-bind`.
    Flag,
    /// The address and port of `JUPYTERHUB_SERVICE_URL`.
    ServiceUrl,
    /// `JUPYTERHUB_SERVICE_URL` names its host (as a Kubernetes or Docker
    /// service name does) rather than giving an address: that name is how
    /// others reach the culler, not one of its own addresses, so the port
    /// is served on every interface.
    ServiceUrlName(String),
}

impl fmt::Display for BindOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindOrigin::Flag => f.write_str("--metrics-bind"),
            BindOrigin::ServiceUrl => f.write_str("JUPYTERHUB_SERVICE_URL"),
            BindOrigin::ServiceUrlName(host) => write!(
                f,
                "all interfaces: JUPYTERHUB_SERVICE_URL names the host {host:?}, not an address of this machine"
            ),
        }
    }
}

impl fmt::Display for BindAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            BindOrigin::Flag => write!(f, "{} (--metrics-bind)", self.addr),
            BindOrigin::ServiceUrl => write!(f, "{} (JUPYTERHUB_SERVICE_URL)", self.addr),
            BindOrigin::ServiceUrlName(host) => write!(
                f,
                "{} (all interfaces: JUPYTERHUB_SERVICE_URL names the host {host:?}, \
                 not an address of this machine)",
                self.addr
            ),
        }
    }
}

/// Why the metrics endpoint cannot listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindError {
    /// `--metrics-bind` is not `HOST:PORT` with an IP address for host.
    BadFlag {
        /// What was given.
        value: String,
        /// What is wrong, and what would be right.
        why: &'static str,
    },
    /// `JUPYTERHUB_SERVICE_URL` is not an `http://HOST:PORT` URL.
    BadServiceUrl {
        /// What was given (without any `user:password@`).
        value: String,
        /// What is wrong, and what would be right.
        why: &'static str,
    },
    /// The address is valid but the operating system would not listen on it.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The kind of failure (in use, not permitted, not this machine's).
        kind: io::ErrorKind,
        /// What the operating system said.
        detail: String,
    },
}

impl BindError {
    /// Whether the problem is in `JUPYTERHUB_SERVICE_URL` (set by the hub,
    /// not by the operator's command line).
    pub fn from_service_url(&self) -> bool {
        matches!(self, BindError::BadServiceUrl { .. })
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::BadFlag { value, why } => write!(f, "--metrics-bind={value:?} {why}"),
            BindError::BadServiceUrl { value, why } => {
                write!(f, "JUPYTERHUB_SERVICE_URL={value:?} {why}")
            }
            BindError::Bind { addr, kind, detail } => {
                write!(f, "cannot serve metrics on {addr}: ")?;
                match kind {
                    io::ErrorKind::AddrInUse => write!(
                        f,
                        "port {} is already in use (another culler, or another service?); \
                         choose a free one with --metrics-bind=HOST:PORT",
                        addr.port()
                    ),
                    io::ErrorKind::PermissionDenied => write!(
                        f,
                        "not permitted (ports below 1024 need privileges); choose a port \
                         above 1024 with --metrics-bind=HOST:PORT"
                    ),
                    io::ErrorKind::AddrNotAvailable => write!(
                        f,
                        "{} is not an address of this machine; use 0.0.0.0 for every \
                         interface or 127.0.0.1 for this machine only",
                        addr.ip()
                    ),
                    _ => write!(f, "{detail}"),
                }
            }
        }
    }
}

impl std::error::Error for BindError {}

/// Where the metrics endpoint listens: `--metrics-bind=HOST:PORT` when
/// given (`flag`), else the host and port of `JUPYTERHUB_SERVICE_URL`
/// (`service_url`), which JupyterHub sets to the managed service's `url`;
/// `None` when neither is set (empty counts as unset): no endpoint.
///
/// HOST in the flag is an IP address (`0.0.0.0` every interface,
/// `127.0.0.1` this machine only, `[::]`, ...), `localhost`, or empty
/// (`:9090`: every interface). In the service URL an IP address is used as
/// it is (`http://127.0.0.1:10101` is served on loopback only, as the hub
/// reaches it), `localhost` is 127.0.0.1, and a name
/// (`http://idle-culler:8000`) means every interface: see
/// [`BindOrigin::ServiceUrlName`]. A URL without a port is port 80.
/// Nothing is resolved or bound here: a pure function.
pub fn bind_address(
    flag: Option<&str>,
    service_url: Option<&str>,
) -> Result<Option<BindAddress>, BindError> {
    if let Some(flag) = given(flag) {
        return parse_flag(flag).map(|addr| {
            Some(BindAddress {
                addr,
                origin: BindOrigin::Flag,
            })
        });
    }
    given(service_url).map(parse_service_url).transpose()
}

/// A value that is set and not blank, trimmed.
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn parse_flag(value: &str) -> Result<SocketAddr, BindError> {
    let bad = |why| BindError::BadFlag {
        value: value.to_owned(),
        why,
    };
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = value.rsplit_once(':').ok_or_else(|| {
        bad("is not HOST:PORT, e.g. 0.0.0.0:9090 (every interface) or 127.0.0.1:9090")
    })?;
    let port = port
        .parse::<u16>()
        .map_err(|_| bad("has no valid port: PORT is a number from 0 to 65535"))?;
    let ip = match host {
        "" | "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        _ if host.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ if host.contains(':') && !host.starts_with('[') => {
            return Err(bad(
                "has an IPv6 address without brackets: write [ADDRESS]:PORT, e.g. [::]:9090",
            ))
        }
        _ => {
            return Err(bad(
                "has a HOST that is not an IP address: use 0.0.0.0 (every interface), \
                 127.0.0.1 (this machine only) or another address of this machine",
            ))
        }
    };
    Ok(SocketAddr::new(ip, port))
}

fn parse_service_url(value: &str) -> Result<BindAddress, BindError> {
    let authority = value
        .split_once("://")
        .map_or("", |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    let shown = match authority.rsplit_once('@') {
        Some((_, host)) => value.replacen(authority, &format!("***@{host}"), 1),
        None => value.to_owned(),
    };
    let bad = |why| BindError::BadServiceUrl {
        value: shown.clone(),
        why,
    };
    let scheme = value.split_once("://").map_or("", |(scheme, _)| scheme);
    if scheme.eq_ignore_ascii_case("https") {
        return Err(bad(
            "is https, but the metrics endpoint serves plain HTTP: give the service an \
             http:// url, or choose where to serve with --metrics-bind=HOST:PORT",
        ));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(bad("is not an http://HOST:PORT URL"));
    }
    if authority.contains('@') {
        return Err(bad(
            "holds a user name or password, which a service URL never needs",
        ));
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("has an unclosed [ in its host"))?;
        (host, after)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (authority, ""),
        }
    };
    let port = port.strip_prefix(':').unwrap_or(port);
    let port = if port.is_empty() {
        80
    } else {
        port.parse::<u16>()
            .map_err(|_| bad("has no valid port: a number from 0 to 65535"))?
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let (ip, origin) = if let Ok(ip) = host.parse::<IpAddr>() {
        (ip, BindOrigin::ServiceUrl)
    } else if host.eq_ignore_ascii_case("localhost") {
        (IpAddr::V4(Ipv4Addr::LOCALHOST), BindOrigin::ServiceUrl)
    } else if host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        (
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            BindOrigin::ServiceUrlName(host.to_owned()),
        )
    } else {
        return Err(bad(
            "has a host that is neither an IP address nor a host name",
        ));
    };
    Ok(BindAddress {
        addr: SocketAddr::new(ip, port),
        origin,
    })
}

/// Listens on `address`, ready for [`serve`]: errors say what to change
/// (a port in use, a privileged port, an address not this machine's).
pub fn bind(address: &BindAddress) -> Result<std::net::TcpListener, BindError> {
    let failed = |err: io::Error| BindError::Bind {
        addr: address.addr,
        kind: err.kind(),
        detail: err.to_string(),
    };
    let listener = std::net::TcpListener::bind(address.addr).map_err(failed)?;
    listener.set_nonblocking(true).map_err(failed)?;
    Ok(listener)
}

/// Serves `/metrics` and `/health` on `listener` until the actix system
/// stops; run it with `actix_rt::spawn` on the pipeline's arbiter. Returns
/// only if the listener cannot be used at all (logged).
pub async fn serve(
    listener: std::net::TcpListener,
    metrics: Arc<Metrics>,
    routes: Routes,
    log: Log,
) {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(listener))
    {
        Ok(listener) => listener,
        Err(err) => {
            warning!(log, "Cannot serve metrics: {err}");
            return;
        }
    };
    match listener.local_addr() {
        Ok(addr) => info!(
            log,
            "Serving metrics at http://{addr}{prefix}metrics and health at http://{addr}{prefix}health",
            prefix = routes.prefix
        ),
        Err(err) => warning!(log, "Serving metrics on an unknown address: {err}"),
    }
    let slots = Arc::new(Semaphore::new(routes.max_connections));
    let routes = Rc::new(routes);
    let mut accept_failing = false;
    loop {
        // Never closed, so this always gives a slot.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                accept_failing = false;
                let (metrics, routes, log) =
                    (Arc::clone(&metrics), Rc::clone(&routes), log.clone());
                actix_rt::spawn(async move {
                    connection(stream, peer, &metrics, &routes, &log).await;
                    drop(slot);
                });
            }
            Err(err) => {
                // Out of file descriptors, or a connection gone before it
                // was accepted: say so once, and do not spin.
                if !accept_failing {
                    warning!(log, "Metrics endpoint: cannot accept a connection: {err}");
                }
                accept_failing = true;
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// How reading a request head ended.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// A whole head (maybe followed by more bytes, which are ignored).
    Head,
    /// [`MAX_REQUEST_BYTES`] without the end of a head.
    TooLarge,
    /// The client closed before a whole head.
    Closed,
}

/// One connection: one request, one answer, close.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    metrics: &Metrics,
    routes: &Routes,
    log: &Log,
) {
    let mut head = Vec::with_capacity(1024);
    let read = actix_rt::time::timeout(routes.read_timeout, read_head(&mut stream, &mut head));
    let response = match read.await {
        Ok(Ok(Read::Head)) => {
            let (response, request) = answer(&head, routes, metrics, SystemTime::now());
            debug!(
                log,
                "Metrics endpoint: {peer} {request} -> {}", response.status
            );
            response
        }
        Ok(Ok(Read::TooLarge)) => {
            debug!(
                log,
                "Metrics endpoint: {peer} sent a request head too large"
            );
            Response::text(431, "request head too large\n")
        }
        Ok(Ok(Read::Closed)) | Err(_) if head.is_empty() => {
            // Connected and sent nothing (a TCP probe, a preconnect): nothing to answer.
            return;
        }
        Ok(Ok(Read::Closed)) => {
            debug!(log, "Metrics endpoint: {peer} closed mid-request");
            return;
        }
        Err(_) => {
            debug!(
                log,
                "Metrics endpoint: {peer} did not finish its request in time"
            );
            Response::text(408, "request not received in time\n")
        }
        Ok(Err(err)) => {
            debug!(log, "Metrics endpoint: reading from {peer} failed: {err}");
            return;
        }
    };
    let bytes = response.to_bytes();
    let write = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    };
    match actix_rt::time::timeout(routes.read_timeout, write).await {
        Ok(Ok(())) => {
            let _ = actix_rt::time::timeout(LINGER, discard(&mut stream)).await;
        }
        Ok(Err(err)) => debug!(log, "Metrics endpoint: answering {peer} failed: {err}"),
        Err(_) => debug!(
            log,
            "Metrics endpoint: {peer} did not take its answer in time"
        ),
    }
}

/// Reads into `head` until a whole request head, [`MAX_REQUEST_BYTES`], or
/// the end of the stream.
async fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> io::Result<Read> {
    let mut chunk = [0_u8; 1024];
    loop {
        let room = MAX_REQUEST_BYTES - head.len();
        if room == 0 {
            return Ok(Read::TooLarge);
        }
        let n = stream.read(&mut chunk[..room.min(1024)]).await?;
        if n == 0 {
            return Ok(Read::Closed);
        }
        // Look for the end only where it can newly be, so that a client
        // sending one byte at a time costs linear work.
        let from = head.len().saturating_sub(2);
        head.extend_from_slice(&chunk[..n]);
        if head_end(&head[from..]).is_some() {
            return Ok(Read::Head);
        }
    }
}

/// Reads and drops what the client still sends, up to [`LINGER_BYTES`].
async fn discard(stream: &mut TcpStream) {
    let mut chunk = [0_u8; 1024];
    let mut total = 0;
    while total < LINGER_BYTES {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

/// Where the head ends: the index just past the empty line (`\r\n\r\n`,
/// or a bare `\n\n`, which RFC 9112 lets a server accept).
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(2)
        .enumerate()
        .find_map(|(i, pair)| match pair {
            b"\n\n" => Some(i + 2),
            b"\n\r" if bytes.get(i + 2) == Some(&b'\n') => Some(i + 3),
            _ => None,
        })
}

/// An answer, whole.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
    /// For 405.
    allow: bool,
    /// HEAD: the headers of a GET, without its body.
    head_only: bool,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_owned(),
            allow: false,
            head_only: false,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if self.allow {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        if !self.head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The answer to one request head, and the request as a short text for
/// the debug log (`"GET /metrics"`, or why it could not be read).
fn answer(head: &[u8], routes: &Routes, metrics: &Metrics, now: SystemTime) -> (Response, String) {
    let (method, path) = match parse_request(head) {
        Ok(request) => request,
        Err((status, why)) => return (Response::text(status, &format!("{why}\n")), why.to_owned()),
    };
    let request = format!("{method} {path:?}");
    let Some(page) = routes.page(path) else {
        let body = format!(
            "not found: this is the idle culler's {prefix}metrics and {prefix}health\n",
            prefix = routes.prefix
        );
        return (Response::text(404, &body), request);
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut response = Response::text(405, "only GET and HEAD are served here\n");
            response.allow = true;
            return (response, request);
        }
    };
    let mut response = match page {
        Page::Metrics => Response {
            status: 200,
            content_type: CONTENT_TYPE,
            body: metrics.render(now),
            allow: false,
            head_only: false,
        },
        Page::Health => {
            let health = metrics.health(routes.max_failures);
            Response {
                status: if health.is_healthy() { 200 } else { 503 },
                content_type: "application/json",
                body: health.to_json() + "\n",
                allow: false,
                head_only: false,
            }
        }
    };
    response.head_only = head_only;
    (response, request)
}

/// The method and path (without its query) of a request head, or the
/// status and reason to refuse it with.
fn parse_request(head: &[u8]) -> Result<(&str, &str), (u16, &'static str)> {
    let text = std::str::from_utf8(head).map_err(|_| (400, "the request is not text"))?;
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err((400, "the request line is not METHOD TARGET HTTP/1.1"));
    };
    if method.is_empty() || !method.bytes().all(is_token) {
        return Err((400, "the request method is not a method"));
    }
    match version {
        "HTTP/1.1" | "HTTP/1.0" => {}
        _ if version.starts_with("HTTP/") => return Err((505, "only HTTP/1.x is served here")),
        _ => return Err((400, "the request line is not METHOD TARGET HTTP/1.1")),
    }
    for line in lines.take_while(|line| !line.is_empty()) {
        let name = line.split_once(':').map_or("", |(name, _)| name);
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err((400, "a request header is not NAME: VALUE"));
        }
    }
    // The absolute form (`http://host/path`), which proxies send.
    let target = match target.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        _ => target,
    };
    if !target.starts_with('/') {
        return Err((400, "the request target is not a path"));
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Ok((method, path))
}

/// Whether a byte may be in an HTTP token (a method, a header name).
fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{PassCounts, PassOutcome};
    use std::io::{Read as _, Write as _};
    use std::net::TcpStream as StdStream;
    use std::time::Instant;

    // ---- The bind address: a pure function. ----

    fn flag(value: &str) -> Result<Option<BindAddress>, BindError> {
        bind_address(Some(value), Some("http://10.0.0.1:1"))
    }

    fn service(url: &str) -> Result<Option<BindAddress>, BindError> {
        bind_address(None, Some(url))
    }

    fn at(addr: &str, origin: BindOrigin) -> Option<BindAddress> {
        Some(BindAddress {
            addr: addr.parse().unwrap(),
            origin,
        })
    }

    #[test]
    fn the_flag_wins_and_takes_addresses_localhost_and_any() {
        assert_eq!(
            flag("127.0.0.1:9090"),
            Ok(at("127.0.0.1:9090", BindOrigin::Flag))
        );
        assert_eq!(
            flag(" 0.0.0.0:9090 "),
            Ok(at("0.0.0.0:9090", BindOrigin::Flag))
        );
        assert_eq!(flag("[::1]:9090"), Ok(at("[::1]:9090", BindOrigin::Flag)));
        assert_eq!(
            flag("localhost:9090"),
            Ok(at("127.0.0.1:9090", BindOrigin::Flag))
        );
        assert_eq!(flag(":9090"), Ok(at("0.0.0.0:9090", BindOrigin::Flag)));
        assert_eq!(flag("*:9090"), Ok(at("0.0.0.0:9090", BindOrigin::Flag)));
    }

    #[test]
    fn a_bad_flag_says_what_would_be_right() {
        for (value, expected) in [
            ("9090", "HOST:PORT"),
            ("127.0.0.1:", "PORT is a number"),
            ("127.0.0.1:99999", "PORT is a number"),
            ("culler.example.org:9090", "not an IP address"),
            ("::1:9090", "without brackets"),
        ] {
            let err = flag(value).unwrap_err();
            assert!(!err.from_service_url());
            let text = err.to_string();
            assert!(text.contains(expected), "{value}: {text}");
            assert!(text.starts_with("--metrics-bind="), "{text}");
        }
    }

    #[test]
    fn nothing_set_means_no_endpoint() {
        assert_eq!(bind_address(None, None), Ok(None));
        assert_eq!(bind_address(Some(" "), Some("")), Ok(None));
    }

    #[test]
    fn the_service_url_gives_host_and_port() {
        assert_eq!(
            service("http://127.0.0.1:10101"),
            Ok(at("127.0.0.1:10101", BindOrigin::ServiceUrl))
        );
        assert_eq!(
            service("http://127.0.0.1:10101/services/idle-culler/"),
            Ok(at("127.0.0.1:10101", BindOrigin::ServiceUrl))
        );
        assert_eq!(
            service("HTTP://[::1]:8000/"),
            Ok(at("[::1]:8000", BindOrigin::ServiceUrl))
        );
        assert_eq!(
            service("http://localhost:8000"),
            Ok(at("127.0.0.1:8000", BindOrigin::ServiceUrl))
        );
        assert_eq!(
            service("http://10.1.2.3"),
            Ok(at("10.1.2.3:80", BindOrigin::ServiceUrl))
        );
        // A name is how others reach us (a Kubernetes or Docker service):
        // every interface, on its port.
        let named = service("http://idle-culler:8000/").unwrap().unwrap();
        assert_eq!(named.addr, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(
            named.origin,
            BindOrigin::ServiceUrlName("idle-culler".into())
        );
        assert!(named.to_string().contains("all interfaces"), "{named}");
    }

    #[test]
    fn a_bad_service_url_says_why_and_hides_passwords() {
        for (url, expected) in [
            ("https://127.0.0.1:10101", "plain HTTP"),
            ("127.0.0.1:10101", "not an http://"),
            ("http://:8000", "no host"),
            ("http://[::1:8000", "unclosed"),
            ("http://host:port", "valid port"),
            ("http://bad host:80", "neither"),
        ] {
            let err = service(url).unwrap_err();
            assert!(err.from_service_url());
            let text = err.to_string();
            assert!(text.contains(expected), "{url}: {text}");
        }
        let text = service("http://me:s3cret@127.0.0.1:80")
            .unwrap_err()
            .to_string();
        assert!(text.contains("user name or password"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn a_port_in_use_is_reported_when_binding() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = BindAddress {
            addr: taken.local_addr().unwrap(),
            origin: BindOrigin::Flag,
        };
        let err = bind(&address).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("already in use"), "{text}");
        assert!(text.contains(&address.addr.port().to_string()), "{text}");
    }

    // ---- Routing and parsing: pure functions. ----

    #[test]
    fn prefixes_are_normalized() {
        assert_eq!(Routes::new(None, 3).prefix(), "/");
        assert_eq!(Routes::new(Some(""), 3).prefix(), "/");
        assert_eq!(Routes::new(Some("/"), 3).prefix(), "/");
        let service = "/services/idle-culler/";
        assert_eq!(Routes::new(Some(service), 3).prefix(), service);
        assert_eq!(
            Routes::new(Some("services/idle-culler"), 3).prefix(),
            service
        );
        assert_eq!(Routes::new(None, 0).max_failures(), 1);
    }

    #[test]
    fn both_prefixed_and_bare_paths_are_pages() {
        let routes = Routes::new(Some("/hub-base/services/idle-culler/"), 3);
        for (path, page) in [
            ("/metrics", Some(Page::Metrics)),
            ("/health", Some(Page::Health)),
            (
                "/hub-base/services/idle-culler/metrics",
                Some(Page::Metrics),
            ),
            ("/hub-base/services/idle-culler/health", Some(Page::Health)),
            ("/hub-base/services/idle-culler/", None),
            ("/hub-base/services/idle-culler/other", None),
            ("/services/idle-culler/metrics", None),
            ("/metrics/", None),
            ("/", None),
        ] {
            assert_eq!(routes.page(path), page, "{path}");
        }
    }

    #[test]
    fn request_heads_are_read_strictly() {
        fn ok(head: &str) -> Result<(&str, &str), (u16, &'static str)> {
            parse_request(head.as_bytes())
        }
        assert_eq!(
            ok("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(("GET", "/metrics"))
        );
        assert_eq!(ok("HEAD /health?x=1 HTTP/1.0\n\n"), Ok(("HEAD", "/health")));
        assert_eq!(
            ok("GET http://culler:9090/metrics HTTP/1.1\r\n\r\n"),
            Ok(("GET", "/metrics"))
        );
        for (head, status) in [
            ("GET /metrics\r\n\r\n", 400),
            ("GET  /metrics HTTP/1.1\r\n\r\n", 400),
            ("GET /metrics HTTP/2.0\r\n\r\n", 505),
            ("GET /metrics SPDY\r\n\r\n", 400),
            ("G(T /metrics HTTP/1.1\r\n\r\n", 400),
            ("GET metrics HTTP/1.1\r\n\r\n", 400),
            ("GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", 400),
            ("GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n", 400),
            ("GET ftp://culler/metrics HTTP/1.1\r\n\r\n", 400),
        ] {
            assert_eq!(ok(head).map_err(|e| e.0), Err(status), "{head:?}");
        }
        assert_eq!(
            parse_request(b"GET /\xff HTTP/1.1\r\n\r\n").map_err(|e| e.0),
            Err(400)
        );
    }

    #[test]
    fn the_end_of_a_head_is_found_with_either_line_ending() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b""), None);
        // A `\n\r` that no `\n` follows is no end.
        assert_eq!(head_end(b"GET / HTTP/1.1\n\rX: y"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_get_an_answer_never_a_panic(head in prop::collection::vec(any::<u8>(), 0..600)) {
                let metrics = Metrics::new();
                let routes = Routes::new(Some("/services/c/"), 3);
                let (response, _) = answer(&head, &routes, &metrics, SystemTime::now());
                prop_assert!([200, 400, 404, 405, 505].contains(&response.status));
                let _ = head_end(&head);
            }

            #[test]
            fn damaged_requests_get_an_answer_never_a_panic(
                cut in 0usize..40,
                byte in any::<u8>(),
                at in 0usize..40,
            ) {
                let mut head = b"GET /services/c/metrics?x HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
                let at = at.min(head.len() - 1);
                head[at] = byte;
                head.truncate(head.len() - cut.min(head.len()));
                let metrics = Metrics::new();
                let routes = Routes::new(Some("/services/c/"), 3);
                let (response, _) = answer(&head, &routes, &metrics, SystemTime::now());
                prop_assert!([200, 400, 404, 405, 505].contains(&response.status));
            }
        }
    }

    // ---- The server, over real sockets. ----

    /// An answer as read off the wire.
    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// Starts a server on 127.0.0.1:0 on this test's arbiter.
    fn start(metrics: &Arc<Metrics>, routes: Routes) -> SocketAddr {
        let address = BindAddress {
            addr: "127.0.0.1:0".parse().unwrap(),
            origin: BindOrigin::Flag,
        };
        let listener = bind(&address).unwrap();
        let addr = listener.local_addr().unwrap();
        actix_rt::spawn(serve(listener, Arc::clone(metrics), routes, Log::discard()));
        addr
    }

    /// Sends `request` with a blocking client on another thread and reads
    /// until the server closes (bounded: the test fails rather than hangs).
    async fn exchange(addr: SocketAddr, request: impl Into<Vec<u8>>) -> Reply {
        let request = request.into();
        let raw = actix_rt::task::spawn_blocking(move || {
            let mut stream = StdStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            stream.write_all(&request).unwrap();
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).unwrap();
            raw
        })
        .await
        .unwrap();
        parse_reply(&raw)
    }

    fn parse_reply(raw: &[u8]) -> Reply {
        let text = String::from_utf8(raw.to_vec()).unwrap();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{text:?}"));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("{status_line:?}"));
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(": ").unwrap();
                (name.to_owned(), value.to_owned())
            })
            .collect();
        let reply = Reply {
            status,
            headers,
            body: body.to_owned(),
        };
        assert_eq!(reply.header("Connection"), Some("close"));
        reply
    }

    fn get(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: culler\r\nUser-Agent: test\r\n\r\n")
    }

    #[test]
    fn status_lines_carry_their_reason_phrases() {
        for (status, phrase) in [
            (200, "OK"),
            (400, "Bad Request"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (431, "Request Header Fields Too Large"),
            (503, "Service Unavailable"),
            (505, "HTTP Version Not Supported"),
        ] {
            let bytes = Response::text(status, "x").to_bytes();
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status} {phrase}\r\n")),
                "{text:?}"
            );
        }
    }

    #[test]
    fn bind_failures_say_what_to_do() {
        let failure = |kind| BindError::Bind {
            addr: "10.1.2.3:80".parse().unwrap(),
            kind,
            detail: "os error".into(),
        };
        let in_use = failure(io::ErrorKind::AddrInUse).to_string();
        assert!(in_use.contains("port 80 is already in use"), "{in_use}");
        let denied = failure(io::ErrorKind::PermissionDenied).to_string();
        assert!(denied.contains("ports below 1024"), "{denied}");
        let foreign = failure(io::ErrorKind::AddrNotAvailable).to_string();
        assert!(
            foreign.contains("10.1.2.3 is not an address of this machine"),
            "{foreign}"
        );
        let other = failure(io::ErrorKind::Other).to_string();
        assert!(other.ends_with("os error"), "{other}");
    }

    #[test]
    fn origins_are_named_for_the_log() {
        assert_eq!(BindOrigin::Flag.to_string(), "--metrics-bind");
        assert_eq!(BindOrigin::ServiceUrl.to_string(), "JUPYTERHUB_SERVICE_URL");
        assert!(BindOrigin::ServiceUrlName("culler".into())
            .to_string()
            .contains("all interfaces"));
        assert_eq!(Routes::new(None, 5).max_failures(), 5);
    }

    #[actix_rt::test]
    async fn a_real_scrapers_long_head_is_served() {
        // Prometheus sends a few hundred bytes; a proxy may add kilobytes of
        // headers (cookies, forwarding): still well within the limit.
        let metrics = Metrics::new();
        let addr = start(&metrics, Routes::new(None, 3));
        let request = get("/metrics").replacen(
            "\r\n\r\n",
            &format!("\r\nCookie: {}\r\n\r\n", "c".repeat(5000)),
            1,
        );
        assert_eq!(exchange(addr, request).await.status, 200);
    }

    #[actix_rt::test]
    async fn metrics_are_served_at_both_paths() {
        let metrics = Metrics::new();
        metrics.pass_finished(
            PassOutcome::Success,
            Duration::from_secs(1),
            PassCounts::default(),
        );
        let addr = start(&metrics, Routes::new(Some("/services/idle-culler/"), 3));
        for path in [
            "/metrics",
            "/services/idle-culler/metrics",
            "/metrics?name[]=x",
        ] {
            let reply = exchange(addr, get(path)).await;
            assert_eq!(reply.status, 200, "{path}");
            assert_eq!(
                reply.header("Content-Type"),
                Some("text/plain; version=0.0.4; charset=utf-8")
            );
            let length: usize = reply.header("Content-Length").unwrap().parse().unwrap();
            assert_eq!(length, reply.body.len());
            assert!(
                reply
                    .body
                    .contains("jupyterhub_idle_culler_passes_total{outcome=\"success\"} 1\n"),
                "{}",
                reply.body
            );
        }
    }

    #[actix_rt::test]
    async fn health_is_200_until_too_many_failures_then_503() {
        let metrics = Metrics::new();
        let addr = start(&metrics, Routes::new(Some("/services/idle-culler/"), 2));
        let health = |reply: &Reply| -> serde_json::Value {
            assert_eq!(reply.header("Content-Type"), Some("application/json"));
            serde_json::from_str(&reply.body).unwrap()
        };

        let reply = exchange(addr, get("/health")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(health(&reply)["status"], "starting");

        metrics.pass_finished(PassOutcome::Success, Duration::ZERO, PassCounts::default());
        metrics.pass_finished(PassOutcome::Failure, Duration::ZERO, PassCounts::default());
        let reply = exchange(addr, get("/services/idle-culler/health")).await;
        assert_eq!(reply.status, 200);
        let json = health(&reply);
        assert_eq!(json["status"], "ok");
        assert_eq!(json["consecutive_failed_passes"], 1);
        assert!(json["last_success"].is_string(), "{json}");

        metrics.pass_finished(PassOutcome::Failure, Duration::ZERO, PassCounts::default());
        let reply = exchange(addr, get("/health")).await;
        assert_eq!(reply.status, 503);
        let json = health(&reply);
        assert_eq!(json["status"], "failing");
        assert_eq!(json["consecutive_failed_passes"], 2);
        assert!(
            json["reason"]
                .as_str()
                .unwrap()
                .contains("2 passes in a row failed"),
            "{json}"
        );

        metrics.pass_finished(PassOutcome::Success, Duration::ZERO, PassCounts::default());
        assert_eq!(exchange(addr, get("/health")).await.status, 200);
    }

    #[actix_rt::test]
    async fn head_gets_the_headers_of_get_without_the_body() {
        let metrics = Metrics::new();
        let addr = start(&metrics, Routes::new(None, 3));
        let full = exchange(addr, get("/metrics")).await;
        let head = exchange(addr, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(head.status, 200);
        assert_eq!(head.body, "");
        assert_eq!(head.header("Content-Type"), full.header("Content-Type"));
        // The length of the body a GET would get: the same give or take the
        // digits of seconds_since_last_successful_pass, which moved on.
        let length =
            |reply: &Reply| -> i64 { reply.header("Content-Length").unwrap().parse().unwrap() };
        assert!((length(&head) - length(&full)).abs() < 8, "{head:?}");
        // /health is the same at both moments: exactly.
        let full = exchange(addr, get("/health")).await;
        let head = exchange(addr, "HEAD /health HTTP/1.0\r\n\r\n").await;
        assert_eq!((head.status, head.body.as_str()), (200, ""));
        assert_eq!(head.header("Content-Type"), Some("application/json"));
        assert_eq!(head.header("Content-Length"), full.header("Content-Length"));
    }

    #[actix_rt::test]
    async fn unknown_paths_are_404_and_other_methods_405() {
        let metrics = Metrics::new();
        let addr = start(&metrics, Routes::new(Some("/services/idle-culler/"), 3));
        for path in [
            "/",
            "/metricsx",
            "/services/idle-culler/",
            "/services/other/metrics",
        ] {
            let reply = exchange(addr, get(path)).await;
            assert_eq!(reply.status, 404, "{path}");
            assert!(
                reply.body.contains("/services/idle-culler/metrics"),
                "{}",
                reply.body
            );
        }
        for method in ["POST", "DELETE", "PUT", "OPTIONS", "get"] {
            let request = format!("{method} /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
            let reply = exchange(addr, request).await;
            assert_eq!(reply.status, 405, "{method}");
            assert_eq!(reply.header("Allow"), Some("GET, HEAD"));
        }
        // Another method on an unknown path is still not found.
        let reply = exchange(addr, "POST /nothing HTTP/1.1\r\n\r\n").await;
        assert_eq!(reply.status, 404);
    }

    #[actix_rt::test]
    async fn garbage_gets_400_and_the_server_goes_on() {
        let metrics = Metrics::new();
        let addr = start(&metrics, Routes::new(None, 3));
        for garbage in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
            b"\x00\xff\xfe garbage\n\n",
            b"hello\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            let reply = exchange(addr, garbage).await;
            assert_eq!(reply.status, 400, "{garbage:?}");
        }
        assert_eq!(exchange(addr, get("/metrics")).await.status, 200);
    }

    #[actix_rt::test]
    async fn an_over_long_request_gets_431() {
        let metrics = Metrics::new();
        let addr = start(&metrics, Routes::new(None, 3));
        // A head with no end, longer than the limit.
        let endless = format!(
            "GET /metrics HTTP/1.1\r\nX: {}",
            "a".repeat(MAX_REQUEST_BYTES)
        );
        assert_eq!(exchange(addr, endless).await.status, 431);
        // A complete head, but too long.
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "m".repeat(MAX_REQUEST_BYTES));
        assert_eq!(exchange(addr, long).await.status, 431);
        // Just under the limit is fine.
        let request = get("/metrics");
        let padding = MAX_REQUEST_BYTES - request.len() - "X: \r\n".len();
        let fits = request.replacen(
            "\r\n\r\n",
            &format!("\r\nX: {}\r\n\r\n", "p".repeat(padding)),
            1,
        );
        assert_eq!(fits.len(), MAX_REQUEST_BYTES);
        assert_eq!(exchange(addr, fits).await.status, 200);
    }

    /// A client that connects, says it has, and then sends nothing; it
    /// returns how long the server took to close, and what it read.
    fn silent_client(
        addr: SocketAddr,
    ) -> (
        tokio::sync::oneshot::Receiver<()>,
        actix_rt::task::JoinHandle<(Duration, io::Result<usize>)>,
    ) {
        let (connected, is_connected) = tokio::sync::oneshot::channel();
        let client = actix_rt::task::spawn_blocking(move || {
            let mut stream = StdStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let started = Instant::now();
            let _ = connected.send(());
            let mut rest = Vec::new();
            let read = stream.read_to_end(&mut rest);
            (started.elapsed(), read)
        });
        (is_connected, client)
    }

    #[actix_rt::test]
    async fn a_silent_client_is_dropped_after_the_read_timeout_and_blocks_no_one() {
        let metrics = Metrics::new();
        let timeout = Duration::from_secs(1);
        let routes = Routes::new(None, 3).with_read_timeout(timeout);
        let addr = start(&metrics, routes);
        let (connected, silent) = silent_client(addr);
        connected.await.unwrap();
        // Meanwhile others are served at once.
        let quick = Instant::now();
        assert_eq!(exchange(addr, get("/health")).await.status, 200);
        assert!(quick.elapsed() < timeout, "{:?}", quick.elapsed());
        // The server closes without a word (nothing was asked), once the
        // read timeout is over: its task is gone.
        let (waited, read) = silent.await.unwrap();
        assert_eq!(read.map_err(|e| e.kind()), Ok(0));
        assert!(waited >= timeout - Duration::from_millis(100), "{waited:?}");
        assert!(waited < timeout * 5, "{waited:?}");
    }

    #[actix_rt::test]
    async fn a_trickling_client_gets_408() {
        let metrics = Metrics::new();
        let routes = Routes::new(None, 3).with_read_timeout(Duration::from_millis(300));
        let addr = start(&metrics, routes);
        let reply = actix_rt::task::spawn_blocking(move || {
            let mut stream = StdStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream.write_all(b"GET /metr").unwrap();
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).unwrap();
            raw
        })
        .await
        .unwrap();
        assert_eq!(parse_reply(&reply).status, 408);
    }

    #[actix_rt::test]
    async fn connections_beyond_the_limit_wait_and_slots_are_given_back() {
        let metrics = Metrics::new();
        let timeout = Duration::from_millis(400);
        let routes = Routes::new(None, 3)
            .with_read_timeout(timeout)
            .with_max_connections(2);
        let addr = start(&metrics, routes);
        // Two silent clients take both slots until their timeout.
        let mut silent = Vec::new();
        for _ in 0..2 {
            let (connected, client) = silent_client(addr);
            connected.await.unwrap();
            silent.push(client);
        }
        // A third is served once a slot is free: late, but served.
        let started = Instant::now();
        assert_eq!(exchange(addr, get("/metrics")).await.status, 200);
        let waited = started.elapsed();
        assert!(waited >= timeout / 2, "served at once: {waited:?}");
        for client in silent {
            let (_, read) = client.await.unwrap();
            assert_eq!(read.map_err(|e| e.kind()), Ok(0));
        }
        // And again, many times over: slots come back every time.
        for _ in 0..6 {
            assert_eq!(exchange(addr, get("/health")).await.status, 200);
        }
    }
}
