//! Telling people before their work is stopped, and what became of it:
//! the Notifier actor takes events from the Evaluator (`warn`, `culled`,
//! `user_deleted`, `stop_failed`, `stuck`) and delivers them, one JSON
//! object each, to the operator's receivers ([`deliver`]).
//!
//! Culling never waits for a receiver: the Evaluator hands an event over
//! without waiting for an answer, and the Notifier keeps at most
//! [`QUEUE`] events waiting and [`IN_FLIGHT`] on their way. An event that
//! finds the queue full is dropped and counted
//! (`jupyterhub_idle_culler_notify_events_total{outcome="dropped"}`);
//! drops and failed deliveries are logged once per pass, when the
//! Scheduler says the pass ended. Before the process ends (after `--once`,
//! on a stop signal) what is queued is delivered for at most
//! `--stop-timeout`.

pub mod deliver;
pub mod event;

pub use deliver::{Receivers, Secret};
pub use event::{Event, EventKind};

use crate::logging::{debug, warning, Log};
use crate::metrics::Metrics;
use actix::prelude::*;
use actix_web::web::Bytes;
use deliver::DeliveryError;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::oneshot;

/// The most events waiting for delivery: at about 400 bytes each, a
/// fraction of a MiB. A receiver that is down for a whole large pass loses
/// the events past this, counted, rather than growing the culler.
pub const QUEUE: usize = 1000;

/// The most deliveries under way at once: enough for a receiver that
/// takes a second per event to keep up with hundreds of culls a minute.
pub const IN_FLIGHT: usize = 4;

/// An event to deliver; never answered, so sending it never waits.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Notify(pub Event);

/// A pass ended: time to log what was dropped or failed during it.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct PassEnded;

/// The process is ending: answered once nothing is queued or on its way
/// (the Supervisor bounds the wait by `--stop-timeout`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// One event serialized, ready to send.
struct Queued {
    kind: EventKind,
    body: Bytes,
}

/// What went wrong since the last pass ended.
#[derive(Default)]
struct Troubles {
    dropped: u64,
    failed: u64,
    /// The first failure's error, for the line.
    first: Option<DeliveryError>,
}

/// Delivers events; see the module documentation.
pub struct Notifier {
    receivers: Rc<Receivers>,
    client: Rc<awc::Client>,
    queue: VecDeque<Queued>,
    capacity: usize,
    in_flight: usize,
    troubles: Troubles,
    drains: Vec<oneshot::Sender<()>>,
    metrics: Arc<Metrics>,
    log: Log,
}

impl Notifier {
    /// A notifier delivering to `receivers` (TLS by the system's roots,
    /// `tls`, for an https URL), keeping at most `capacity` events queued.
    pub fn new(
        receivers: Receivers,
        tls: Option<Arc<rustls::ClientConfig>>,
        capacity: usize,
        metrics: Arc<Metrics>,
        log: Log,
    ) -> Self {
        let mut connector = awc::Connector::new().timeout(receivers.timeout);
        if let Some(tls) = tls {
            connector = connector.rustls_0_23(tls);
        }
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(receivers.timeout)
            .disable_redirects()
            .finish();
        Notifier {
            receivers: Rc::new(receivers),
            client: Rc::new(client),
            queue: VecDeque::new(),
            capacity,
            in_flight: 0,
            troubles: Troubles::default(),
            drains: Vec::new(),
            metrics,
            log,
        }
    }

    /// Starts deliveries while there is room for them.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight < IN_FLIGHT {
            let Some(Queued { kind, body }) = self.queue.pop_front() else {
                break;
            };
            self.in_flight += 1;
            let delivery = deliver::deliver(
                Rc::clone(&self.receivers),
                Rc::clone(&self.client),
                kind.as_str(),
                body,
            );
            ctx.spawn(delivery.into_actor(self).map(move |result, notifier, ctx| {
                notifier.in_flight -= 1;
                notifier.delivered(kind, result);
                notifier.pump(ctx);
            }));
        }
        if self.queue.is_empty() && self.in_flight == 0 {
            for drain in self.drains.drain(..) {
                let _ = drain.send(());
            }
        }
    }

    /// Counts a finished delivery; the first failure of a pass is logged
    /// at once (the rest at DEBUG, and counted in the pass's line).
    fn delivered(&mut self, kind: EventKind, result: Result<(), DeliveryError>) {
        match result {
            Ok(()) => self.metrics.notify_event(kind.as_str(), "sent"),
            Err(err) => {
                self.metrics.notify_event(kind.as_str(), "failed");
                self.troubles.failed += 1;
                if self.troubles.first.is_none() {
                    warning!(
                        self.log,
                        "Could not deliver a {} event: {err} (after {} retries; culling goes on)",
                        kind.as_str(),
                        self.receivers.retries
                    );
                    self.troubles.first = Some(err);
                } else {
                    debug!(
                        self.log,
                        "Could not deliver a {} event: {err}",
                        kind.as_str()
                    );
                }
            }
        }
    }
}

impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The Notifier's own queue is the bound; its mailbox must never
        // make the Evaluator wait.
        ctx.set_mailbox_capacity(0);
    }
}

impl Handler<Notify> for Notifier {
    type Result = ();

    fn handle(&mut self, Notify(event): Notify, ctx: &mut Context<Self>) {
        let kind = event.event;
        if self.queue.len() >= self.capacity {
            self.metrics.notify_event(kind.as_str(), "dropped");
            if self.troubles.dropped == 0 {
                warning!(
                    self.log,
                    "Dropping events: {} are waiting for the receiver, which is slow or down (culling goes on)",
                    self.queue.len()
                );
            }
            self.troubles.dropped += 1;
            return;
        }
        match serde_json::to_vec(&event) {
            Ok(body) => self.queue.push_back(Queued {
                kind,
                body: Bytes::from(body),
            }),
            // Cannot happen for this type; never worth a panic.
            Err(err) => warning!(self.log, "Could not write a {} event: {err}", kind.as_str()),
        }
        self.pump(ctx);
    }
}

impl Handler<PassEnded> for Notifier {
    type Result = ();

    fn handle(&mut self, _: PassEnded, _ctx: &mut Context<Self>) {
        let troubles = std::mem::take(&mut self.troubles);
        if troubles.dropped == 0 && troubles.failed == 0 {
            return;
        }
        let first = troubles
            .first
            .map(|err| format!(" (first: {err})"))
            .unwrap_or_default();
        warning!(
            self.log,
            "This pass's events: {} dropped because the queue of {} was full, {} not delivered{first}",
            troubles.dropped,
            self.capacity,
            troubles.failed
        );
    }
}

impl Handler<Drain> for Notifier {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let (done, drained) = oneshot::channel();
        self.drains.push(done);
        self.pump(ctx);
        Box::pin(async move {
            let _ = drained.await;
        })
    }
}

#[cfg(test)]
mod tests;
