//! One request from arrival to the wire: the request log and the in-flight
//! count, latency, the hub being down, the token check, the fault chosen,
//! the hub's answer, and how it is delivered.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::faults::{Delivery, DownMode};
use super::http::{Closing, Connection, Request, Response, Service};
use super::routes::{self, Parsed};
use super::state::{HubState, Outcome, RequestKind, RequestRecord};
use super::PROBE_HEADER;

/// What a stalled answer announces as its body length (it sends none of it).
const STALL_ANNOUNCED: usize = 64;

/// The fake hub as the HTTP server sees it: the state and the condition
/// variable that wakes `wait_until`.
pub(super) struct Hub {
    state: Mutex<HubState>,
    changed: Condvar,
}

impl Hub {
    /// A hub serving `state`.
    pub fn new(state: HubState) -> Self {
        Hub {
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    /// Locks the state (a panicking test thread does not poison it for the
    /// hub's threads).
    pub fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notified after every change the hub makes to its state.
    pub fn changed(&self) -> &Condvar {
        &self.changed
    }

    /// Changes the state and wakes the waiters.
    pub fn update<R>(&self, change: impl FnOnce(&mut HubState) -> R) -> R {
        let result = change(&mut self.lock());
        self.changed.notify_all();
        result
    }

    /// The hub's own answer (state changed, writes and lists recorded).
    fn act(&self, req: &Request, parsed: &Parsed) -> Response {
        self.update(|s| routes::answer(s, req, parsed))
    }

    /// Answers the down page or drops the request if the hub is down now;
    /// whether it did.
    fn if_down(&self, conn: &mut Connection, ticket: &mut Ticket<'_>) -> bool {
        let Some(down) = self.lock().down else {
            return false;
        };
        match down {
            DownMode::Refuse => drop_now(conn, ticket),
            DownMode::Answer(status) => {
                let page = format!(
                    "<html><body><h1>{status}</h1><p>The hub is not available.</p></body></html>"
                );
                let page = Response::new(status, "text/html", page);
                send(conn, ticket, &page, Closing::KeepAlive, Outcome::Down);
            }
        }
        true
    }

    /// Waits `d` (interrupted if the hub goes down or stops); whether the
    /// request ended meanwhile.
    fn wait(&self, conn: &mut Connection, ticket: &mut Ticket<'_>, d: Duration) -> bool {
        let completed = conn.pause(d);
        if self.if_down(conn, ticket) {
            return true;
        }
        if !completed {
            drop_now(conn, ticket);
        }
        !completed
    }

    fn handle(
        &self,
        req: &Request,
        parsed: &Parsed,
        conn: &mut Connection,
        ticket: &mut Ticket<'_>,
    ) {
        if self.if_down(conn, ticket) {
            return;
        }
        let latency = {
            let s = self.lock();
            match parsed.kind() {
                RequestKind::Version => Duration::ZERO,
                RequestKind::Inside => routes::hang_of(&s, parsed),
                _ if req.method == "DELETE" => s.config.delete_latency.unwrap_or(s.config.latency),
                _ => s.config.latency,
            }
        };
        if self.wait(conn, ticket, latency) {
            return;
        }
        let index = ticket.index;
        let chosen = self.update(|s| {
            if !routes::authorized(&s.config, req, parsed) {
                routes::record_write(s, req, parsed, 403);
                return Err(routes::forbidden());
            }
            let action = s.faults.choose(&req.method, &parsed.path, &req.query);
            if let Some(action) = &action {
                s.set_fault(index, action.delivery.clone());
            }
            Ok(action)
        });
        let action = match chosen {
            Err(forbidden) => {
                return send(
                    conn,
                    ticket,
                    &forbidden,
                    Closing::KeepAlive,
                    Outcome::Answered,
                )
            }
            Ok(None) => {
                let response = self.act(req, parsed);
                return send(
                    conn,
                    ticket,
                    &response,
                    Closing::KeepAlive,
                    Outcome::Answered,
                );
            }
            Ok(Some(action)) => action,
        };
        if self.wait(conn, ticket, action.delay) {
            return;
        }
        let acted = action.hub_acts().then(|| self.act(req, parsed));
        let dress = |mut response: Response| {
            response.headers.extend(action.headers.iter().cloned());
            response
        };
        let hub_answer = || dress(acted.clone().expect("the hub acts for this delivery"));
        match &action.delivery {
            Delivery::Normal => send(
                conn,
                ticket,
                &hub_answer(),
                Closing::KeepAlive,
                Outcome::Answered,
            ),
            Delivery::SilentClose => send(
                conn,
                ticket,
                &hub_answer(),
                Closing::Silent,
                Outcome::Answered,
            ),
            Delivery::SlowBody { chunk, pause } => {
                let response = hub_answer();
                let status = response.status;
                let sent = conn.send_slowly(&response, *chunk, *pause, || {
                    ticket.finish(Outcome::Answered(status));
                });
                if sent.is_err() {
                    ticket.finish(Outcome::Cut(status));
                }
            }
            Delivery::Respond {
                status,
                content_type,
                body,
            } => {
                if !action.hub_acts() {
                    self.update(|s| routes::record_write(s, req, parsed, *status));
                }
                let response = dress(Response::new(*status, content_type, body.as_bytes()));
                send(
                    conn,
                    ticket,
                    &response,
                    Closing::KeepAlive,
                    Outcome::Faulted,
                );
            }
            Delivery::Drop => drop_now(conn, ticket),
            Delivery::Stall => {
                let head = dress(Response::new(200, "application/json", Vec::new()));
                ticket.note(Outcome::Stalled);
                conn.stall(&head, STALL_ANNOUNCED);
                ticket.finish(Outcome::Stalled);
            }
        }
    }
}

/// Sends a whole answer. The request is finished (outcome recorded, no
/// longer in flight, waiters woken) before the bytes go out: a client that
/// has the answer must find the records complete, and a client with one
/// request at a time must never be seen with two in flight.
fn send(
    conn: &mut Connection,
    ticket: &mut Ticket<'_>,
    response: &Response,
    closing: Closing,
    answered: fn(u16) -> Outcome,
) {
    ticket.finish(answered(response.status));
    if conn.send(response, closing).is_err() {
        ticket.finish(Outcome::Cut(response.status));
    }
}

/// Closes the connection unanswered, the request finished first.
fn drop_now(conn: &mut Connection, ticket: &mut Ticket<'_>) {
    ticket.finish(Outcome::Dropped);
    conn.drop_now();
}

/// A request's place in the log and in the in-flight count, from the moment
/// it is read until [`Ticket::finish`] (or, at the latest, until dropped).
struct Ticket<'a> {
    hub: &'a Hub,
    index: usize,
    finished: bool,
    /// Whether it counts in the in-flight count (a probe does not).
    counted: bool,
}

impl Ticket<'_> {
    /// Records the outcome without ending the request (a stall holds on).
    fn note(&self, outcome: Outcome) {
        self.hub.update(|s| s.set_outcome(self.index, outcome));
    }

    /// Records the outcome and ends the request; called again, it only
    /// corrects the outcome (an answer that could not be written whole).
    fn finish(&mut self, outcome: Outcome) {
        let leave = !self.finished;
        self.finished = true;
        self.hub.update(|s| {
            s.set_outcome(self.index, outcome);
            if leave && self.counted {
                s.leave(self.index);
            }
        });
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.finished && self.counted {
            self.hub.update(|s| s.leave(self.index));
        }
    }
}

impl Service for Hub {
    fn serve(&self, req: Request, conn: &mut Connection) {
        let parsed = Parsed::of(&req);
        let counted = req.header(PROBE_HEADER).is_none();
        let index = self.update(|s| {
            s.arrive(
                RequestRecord {
                    method: req.method.clone(),
                    path: parsed.path.clone(),
                    raw_path: req.raw_path.clone(),
                    query: req.query.clone(),
                    body: String::from_utf8_lossy(&req.body).into_owned(),
                    kind: parsed.kind(),
                    fault: None,
                    outcome: Outcome::InProgress,
                    lists_in_flight: 0,
                },
                counted,
            )
        });
        let mut ticket = Ticket {
            hub: self,
            index,
            finished: false,
            counted,
        };
        self.handle(&req, &parsed, conn, &mut ticket);
    }

    fn idle_limit(&self) -> Option<Duration> {
        self.lock().config.idle_close
    }
}
