//! A small HTTP/1.1 server on std's `TcpListener`, one thread per connection.
//!
//! Why not a framework: the fake hub must misbehave below HTTP — drop a
//! request unanswered, close a kept-alive socket without saying so, send
//! headers and then nothing, dribble a body, refuse connections and come back
//! on the same port — and a framework owns the socket and does none of that.
//!
//! It speaks what the culler (an `awc` client) and the tests' `ureq` send:
//! requests with an optional `Content-Length` body, keep-alive by default on
//! HTTP/1.1, `Connection: close` honoured. Chunked request bodies are refused
//! with 501 (no client of the fake sends them); `Accept-Encoding` is ignored
//! (answers are never compressed).
//!
//! Every blocking point is interruptible so that stopping the hub never waits
//! out a latency: pauses wait on a condition variable, and reads and writes
//! end when the server shuts the connection's socket down.
//!
//! Unix only (it shuts listeners down through `std::os::fd`), like the
//! culler's signal handling.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest request head read; real requests are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;

/// The largest request body read; the culler sends `{"remove": true}` at most.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request as read from the socket, nothing decoded.
pub(super) struct Request {
    /// The method as sent ("GET", "DELETE", …).
    pub method: String,
    /// The path part of the request target, as sent.
    pub raw_path: String,
    /// The query string after `?`, as sent (empty when none).
    pub query: String,
    /// Header names and values in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes; empty when none).
    pub body: Vec<u8>,
    /// The client allows the connection to stay open after the answer.
    keep_alive: bool,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, by case-insensitive name.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer to write: status, headers (without `Content-Length` and
/// `Connection`, which the writer adds) and body.
#[derive(Clone, Debug)]
pub(super) struct Response {
    /// Status code.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`.
    pub headers: Vec<(String, String)>,
    /// Body bytes (not sent for HEAD requests and body-less statuses).
    pub body: Vec<u8>,
}

impl Response {
    /// An answer with a body of the given media type.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body: body.into(),
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status, "application/json", value.to_string())
    }

    /// An answer without a body (204, or 202 from a slow stop).
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Statuses that never carry a body (RFC 9110), so no `Content-Length`.
    fn has_body(&self) -> bool {
        !(self.status < 200 || self.status == 204 || self.status == 304)
    }

    /// Status line and headers, announcing `length` body bytes.
    fn head(&self, length: usize, announce_close: bool) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if self.has_body() {
            head.push_str(&format!("Content-Length: {length}\r\n"));
        }
        if announce_close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

/// The reason phrase of the statuses the fake sends (any other gets "Status").
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// How the connection ends after an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Closing {
    /// Stays open for the next request (unless the client asked otherwise).
    KeepAlive,
    /// Closed at once, without `Connection: close`: the client believes the
    /// connection can be reused.
    Silent,
}

/// What the fake hub does with each request; the server does the rest.
pub(super) trait Service: Send + Sync + 'static {
    /// Handles one request, answering (or not) through `conn`.
    fn serve(&self, request: Request, conn: &mut Connection);

    /// How long a kept-alive connection may wait for its next request before
    /// it is closed silently; `None`: for ever.
    fn idle_limit(&self) -> Option<Duration>;
}

/// One accepted connection, as the service sees it while serving a request.
pub(super) struct Connection {
    reader: BufReader<TcpStream>,
    server: Arc<Inner>,
    open: bool,
    head_request: bool,
    client_keep_alive: bool,
    /// The server's epoch when the current request was read: a pause ends
    /// early once it changes, even if it changed before the pause began.
    epoch: u64,
}

impl Connection {
    fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Waits `d` unless the server went down or stopped since the request
    /// was read; returns whether the whole pause elapsed. Never holds a lock
    /// the hub's state needs.
    pub fn pause(&self, d: Duration) -> bool {
        self.server.pause(self.epoch, d)
    }

    /// Writes a whole answer; then closes the connection if `closing` says
    /// so, if the client asked for it, or if writing failed.
    pub fn send(&mut self, response: &Response, closing: Closing) -> io::Result<()> {
        let announce = !self.client_keep_alive;
        let mut bytes = response.head(response.body.len(), announce);
        if response.has_body() && !self.head_request {
            bytes.extend_from_slice(&response.body);
        }
        let written = self.write(&bytes);
        if written.is_err() || announce || closing == Closing::Silent {
            self.close();
        }
        written
    }

    /// Writes the head and the first `chunk` bytes of the body at once,
    /// then the rest in pieces of `chunk` bytes with `pause` between them;
    /// calls `before_last` just before the last piece goes out. The
    /// connection stays usable afterwards.
    pub fn send_slowly(
        &mut self,
        response: &Response,
        chunk: usize,
        pause: Duration,
        before_last: impl FnOnce(),
    ) -> io::Result<()> {
        let announce = !self.client_keep_alive;
        let head = response.head(response.body.len(), announce);
        let mut pieces = vec![head.as_slice()];
        if response.has_body() && !self.head_request {
            pieces.extend(response.body.chunks(chunk.max(1)));
        }
        let last = pieces.len() - 1;
        let mut before_last = Some(before_last);
        let mut result = Ok(());
        for (i, piece) in pieces.into_iter().enumerate() {
            if i > 1 && !self.pause(pause) {
                result = Err(io::Error::new(ErrorKind::Interrupted, "hub went down"));
                break;
            }
            if i == last {
                if let Some(hook) = before_last.take() {
                    hook();
                }
            }
            result = self.write(piece);
            if result.is_err() {
                break;
            }
        }
        if result.is_err() || announce {
            self.close();
        }
        result
    }

    /// Writes the status line and headers of `response` with a
    /// `Content-Length` of `announced`, then sends nothing more and holds the
    /// socket until the client closes it or the server shuts it down.
    /// Returns once the hold is over.
    pub fn stall(&mut self, response: &Response, announced: usize) {
        let head = response.head(announced, false);
        if self.write(&head).is_ok() {
            let mut sink = [0u8; 1024];
            // Whatever the client sends is ignored; EOF or an error ends it.
            loop {
                match self.reader.read(&mut sink) {
                    Ok(n) if n > 0 => continue,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    _ => break,
                }
            }
        }
        self.close();
    }

    /// Closes the connection without a byte of answer.
    pub fn drop_now(&mut self) {
        self.close();
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut stream = self.stream();
        stream.write_all(bytes)?;
        stream.flush()
    }

    fn close(&mut self) {
        if self.open {
            let _ = self.stream().shutdown(Shutdown::Both);
            self.open = false;
        }
    }
}

/// The server's shared part: the service and the lifecycle.
struct Inner {
    addr: SocketAddr,
    service: Arc<dyn Service>,
    control: Mutex<Control>,
    /// Wakes pauses when the server goes down or stops.
    woken: Condvar,
}

/// Lifecycle state, behind one mutex.
struct Control {
    /// Changes whenever pauses must end early (down, stop).
    epoch: u64,
    stopping: bool,
    listening: bool,
    /// A clone of the listening socket, to shut it down (see `close`).
    listener: Option<TcpListener>,
    acceptor: Option<JoinHandle<()>>,
    /// A clone of every open connection's socket, to shut them down.
    connections: HashMap<u64, TcpStream>,
    workers: Vec<JoinHandle<()>>,
    next_id: u64,
}

impl Inner {
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pause(&self, epoch: u64, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut control = self.control();
        loop {
            if control.epoch != epoch || control.stopping {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            control = self
                .woken
                .wait_timeout(control, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn interrupt(control: &mut Control, woken: &Condvar) {
        control.epoch += 1;
        woken.notify_all();
    }
}

/// The running server; see the module documentation.
pub(super) struct Server {
    inner: Arc<Inner>,
    /// Serialises the lifecycle operations (close, reopen, stop).
    lifecycle: Mutex<()>,
}

impl Server {
    /// Listens on `127.0.0.1:<free port>` and serves with `service`.
    pub fn start(service: Arc<dyn Service>) -> io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let inner = Arc::new(Inner {
            addr: listener.local_addr()?,
            service,
            control: Mutex::new(Control {
                epoch: 0,
                stopping: false,
                listening: false,
                listener: None,
                acceptor: None,
                connections: HashMap::new(),
                workers: Vec::new(),
                next_id: 0,
            }),
            woken: Condvar::new(),
        });
        spawn_acceptor(&inner, listener)?;
        Ok(Server {
            inner,
            lifecycle: Mutex::new(()),
        })
    }

    /// Where it listens (also after `reopen`).
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Ends every pause now (the service then re-checks whether the hub is
    /// down) without closing anything.
    pub fn interrupt(&self) {
        let mut control = self.inner.control();
        Inner::interrupt(&mut control, &self.inner.woken);
    }

    /// Closes the listener (new connections are refused) and every open
    /// connection; returns once the port is closed.
    ///
    /// Sockets are shut down, not only closed: a process forked by another
    /// test thread (the culler being spawned) briefly holds copies of every
    /// descriptor, and closing ours alone would leave the port accepting
    /// until that child execs.
    pub fn close(&self) {
        let _serial = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        self.close_locked();
    }

    /// Listens again on the same port after [`Server::close`]; std sets
    /// `SO_REUSEADDR` on Unix, so the closed connections do not block it.
    pub fn reopen(&self) -> io::Result<()> {
        let _serial = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        if self.inner.control().listening {
            return Ok(());
        }
        let listener = TcpListener::bind(self.inner.addr)?;
        spawn_acceptor(&self.inner, listener)
    }

    /// Stops for good: closes everything and joins every thread.
    pub fn stop(&self) {
        let _serial = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.control().stopping = true;
        self.close_locked();
        let workers = std::mem::take(&mut self.inner.control().workers);
        for worker in workers {
            let _ = worker.join();
        }
    }

    fn close_locked(&self) {
        let acceptor = {
            let mut control = self.inner.control();
            Inner::interrupt(&mut control, &self.inner.woken);
            for stream in control.connections.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            if !control.listening {
                return;
            }
            control.listening = false;
            if let Some(listener) = control.listener.take() {
                // std has no shutdown for listeners; the same socket as a
                // stream does (on Linux it also ends a blocked accept()).
                let _ = TcpStream::from(OwnedFd::from(listener)).shutdown(Shutdown::Both);
            }
            control.acceptor.take()
        };
        // Where shutting a listener down does not wake accept(), a
        // connection does; the loop sees `listening == false` and ends.
        let _ = TcpStream::connect_timeout(&self.inner.addr, Duration::from_secs(5));
        if let Some(acceptor) = acceptor {
            let _ = acceptor.join();
        }
    }
}

fn spawn_acceptor(inner: &Arc<Inner>, listener: TcpListener) -> io::Result<()> {
    let mut control = inner.control();
    control.listener = Some(listener.try_clone()?);
    control.listening = true;
    let for_thread = Arc::clone(inner);
    control.acceptor = Some(
        std::thread::Builder::new()
            .name(format!("fake-hub-accept-{}", inner.addr.port()))
            .spawn(move || accept_loop(for_thread, listener))?,
    );
    Ok(())
}

fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    for stream in listener.incoming() {
        let mut control = inner.control();
        if !control.listening {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = control.next_id;
        control.next_id += 1;
        control.connections.insert(id, clone);
        control.workers.retain(|w| !w.is_finished());
        let for_thread = Arc::clone(&inner);
        let spawned = std::thread::Builder::new()
            .name(format!("fake-hub-conn-{id}"))
            .spawn(move || {
                connection_loop(&for_thread, stream);
                for_thread.control().connections.remove(&id);
            });
        match spawned {
            Ok(worker) => control.workers.push(worker),
            Err(_) => {
                control.connections.remove(&id);
            }
        }
    }
}

/// Serves requests on one connection until either side closes it.
fn connection_loop(inner: &Arc<Inner>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut conn = Connection {
        reader: BufReader::new(stream),
        server: Arc::clone(inner),
        open: true,
        head_request: false,
        client_keep_alive: true,
        epoch: 0,
    };
    let mut first = true;
    while conn.open {
        if !first && !wait_for_request(&mut conn, inner.service.idle_limit()) {
            break;
        }
        first = false;
        let request = match read_request(&mut conn.reader) {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(refusal) => {
                conn.client_keep_alive = false;
                let _ = conn.send(&refusal, Closing::KeepAlive);
                break;
            }
        };
        conn.head_request = request.method.eq_ignore_ascii_case("HEAD");
        conn.client_keep_alive = request.keep_alive;
        conn.epoch = inner.control().epoch;
        inner.service.serve(request, &mut conn);
    }
    conn.close();
}

/// Waits for the first byte of the next request on a kept-alive
/// connection; `false` when the client closed it or it stayed idle past
/// `limit` (then the caller closes it without a word).
fn wait_for_request(conn: &mut Connection, limit: Option<Duration>) -> bool {
    if !conn.reader.buffer().is_empty() {
        return true;
    }
    if limit.is_some_and(|d| d.is_zero()) {
        return false;
    }
    let deadline = limit.map(|d| Instant::now() + d);
    loop {
        let timeout = match deadline {
            None => None,
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return false,
            },
        };
        if conn.stream().set_read_timeout(timeout).is_err() {
            return false;
        }
        match conn.reader.fill_buf() {
            Ok(bytes) => return !bytes.is_empty() && conn.stream().set_read_timeout(None).is_ok(),
            // A signal, not the client: wait on for the time left.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// Reads one request. `Ok(None)`: the client closed the connection (or it
/// broke) before a whole request; `Err(answer)`: a request the fake refuses
/// to read, with the answer to send before closing.
fn read_request(reader: &mut BufReader<TcpStream>) -> Result<Option<Request>, Response> {
    let too_large = || Response::empty(431);
    let bad = || Response::empty(400);
    let mut head_size = 0usize;
    let mut next_line = |reader: &mut BufReader<TcpStream>| -> Result<Option<String>, Response> {
        let mut line = Vec::new();
        let limit = (MAX_HEAD - head_size + 1) as u64;
        match reader.by_ref().take(limit).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => Ok(None),
            Ok(n) => {
                head_size += n;
                if head_size > MAX_HEAD {
                    return Err(too_large());
                }
                if !line.ends_with(b"\n") {
                    return Ok(None);
                }
                let text = String::from_utf8(line).map_err(|_| bad())?;
                Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
            }
        }
    };
    // RFC 9112 lets a client send empty lines before the request line.
    let request_line = loop {
        match next_line(reader)? {
            None => return Ok(None),
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return Err(bad());
    }
    let mut headers = Vec::new();
    loop {
        let Some(line) = next_line(reader)? else {
            return Ok(None);
        };
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    if header("Transfer-Encoding").is_some() {
        return Err(Response::empty(501));
    }
    let length = match header("Content-Length") {
        None => 0,
        Some(v) => v.trim().parse::<usize>().map_err(|_| bad())?,
    };
    if length > MAX_BODY {
        return Err(Response::empty(413));
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return Ok(None);
    }
    let connection = header("Connection").unwrap_or_default();
    let keep_alive = if version == "HTTP/1.0" {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    let (raw_path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Some(Request {
        method: method.to_owned(),
        raw_path: raw_path.to_owned(),
        query: query.to_owned(),
        headers,
        body,
        keep_alive,
    }))
}
