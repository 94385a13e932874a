//! A real HTTP receiver of the culler's events (`--notify-url`), served by
//! actix-web on its own thread: it records every POST (body, headers, when)
//! and answers as a test tells it (a status, a delay). Tests wait for
//! events on its condition variable, never by sleeping.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One event as the receiver got it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The body, parsed.
    pub json: Value,
    /// The body's exact bytes (what the signature covers).
    pub raw: Vec<u8>,
    /// The request's headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
}

impl Received {
    /// The `event` field.
    pub fn kind(&self) -> &str {
        self.json["event"].as_str().unwrap_or_default()
    }

    /// The `user` field.
    pub fn user(&self) -> &str {
        self.json["user"].as_str().unwrap_or_default()
    }
}

/// How the receiver answers.
#[derive(Clone, Copy, Debug)]
struct Answer {
    status: u16,
    delay: Duration,
}

#[derive(Default)]
struct Shared {
    events: Mutex<Vec<Received>>,
    answer: Mutex<Option<Answer>>,
    /// Requests answered with a failure status (not recorded as events).
    refused: Mutex<u64>,
    arrived: Condvar,
}

/// The running receiver; stopped when dropped.
pub struct Receiver {
    url: String,
    shared: Arc<Shared>,
    server: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts a receiver answering 204 at once, on a free port.
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let url = format!("http://{}/culler-events", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let state = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let state = web::Data::from(state);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .app_data(web::PayloadConfig::new(1 << 20))
                        .route("/culler-events", web::post().to(receive))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run();
                handle_tx.send(server.handle()).unwrap();
                let _ = server.await;
            });
        });
        let server = handle_rx.recv().expect("the receiver started");
        Receiver {
            url,
            shared,
            server,
            thread: Some(thread),
        }
    }

    /// Its URL, for `--notify-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers every later request with `status` (a failure is not
    /// recorded as an event: the culler did not deliver it).
    pub fn answer_with(&self, status: u16) {
        let mut answer = lock(&self.shared.answer);
        let delay = answer.map_or(Duration::ZERO, |a| a.delay);
        *answer = Some(Answer { status, delay });
    }

    /// Waits `delay` before answering every later request.
    pub fn delay(&self, delay: Duration) {
        let mut answer = lock(&self.shared.answer);
        let status = answer.map_or(204, |a| a.status);
        *answer = Some(Answer { status, delay });
    }

    /// Every event received so far, in order of arrival.
    pub fn events(&self) -> Vec<Received> {
        lock(&self.shared.events).clone()
    }

    /// How many requests were answered with a failure status.
    pub fn refused(&self) -> u64 {
        *lock(&self.shared.refused)
    }

    /// Waits until `pred` holds for the events received, or `timeout`
    /// passes; returns the events then, and whether it held.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[Received]) -> bool,
    ) -> (Vec<Received>, bool) {
        let deadline = Instant::now() + timeout;
        let mut events = lock(&self.shared.events);
        loop {
            if pred(&events) {
                return (events.clone(), true);
            }
            let now = Instant::now();
            if now >= deadline {
                return (events.clone(), false);
            }
            events = self
                .shared
                .arrived
                .wait_timeout(events, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for at least `n` events of kind `kind`.
    pub fn wait_for(&self, kind: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let (events, held) = self.wait_until(timeout, |events| {
            events.iter().filter(|e| e.kind() == kind).count() >= n
        });
        assert!(
            held,
            "fewer than {n} {kind:?} events within {timeout:?}: {events:#?}"
        );
        events
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let stop = self.server.stop(false);
        // The server's own thread runs the stop; this one only waits.
        futures_executor_block_on(stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs a future to completion on this thread (the stop of a server whose
/// runtime is another thread's: nothing here needs a runtime).
fn futures_executor_block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let thread = std::thread::current();
    let waker = std::task::Waker::from(Arc::new(ThreadWaker(thread)));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

struct ThreadWaker(std::thread::Thread);

impl std::task::Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

async fn receive(state: web::Data<Shared>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let answer = *lock(&state.answer);
    let answer = answer.unwrap_or(Answer {
        status: 204,
        delay: Duration::ZERO,
    });
    if !answer.delay.is_zero() {
        actix_web::rt::time::sleep(answer.delay).await;
    }
    let status = actix_web::http::StatusCode::from_u16(answer.status).unwrap();
    if !status.is_success() {
        *lock(&state.refused) += 1;
        return HttpResponse::build(status).finish();
    }
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    lock(&state.events).push(Received {
        json,
        raw: body.to_vec(),
        headers,
    });
    state.arrived.notify_all();
    HttpResponse::build(status).finish()
}
