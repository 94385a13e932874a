//! The graceful stop, shared by every actor of the pipeline.
//!
//! On SIGINT or SIGTERM nothing new starts: the Scheduler starts no pass,
//! the Lister fetches no more pages, the executors send no request that is
//! not already on the wire, and no failed request is retried. What is on
//! the wire is let finish (the Scheduler bounds that wait), and this
//! registry of requests in flight says what was left if it does not.

use crate::exit::Signal;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use tokio::sync::Notify;

/// Whether a stop was asked for, and what is on the wire meanwhile.
#[derive(Default)]
pub struct Shutdown {
    signal: Cell<Option<Signal>>,
    stopping: Notify,
    in_flight: RefCell<BTreeMap<u64, String>>,
    next_id: Cell<u64>,
}

impl Shutdown {
    /// Nothing asked yet, nothing in flight.
    pub fn new() -> Rc<Self> {
        Rc::new(Shutdown::default())
    }

    /// Records a stop request; `true` the first time (a second signal
    /// means "stop now").
    pub fn begin(&self, signal: Signal) -> bool {
        if self.signal.get().is_some() {
            return false;
        }
        self.signal.set(Some(signal));
        self.stopping.notify_waiters();
        true
    }

    /// The signal that asked for the stop, if one did.
    pub fn requested(&self) -> Option<Signal> {
        self.signal.get()
    }

    /// Whether a stop was asked for: start nothing new.
    pub fn is_stopping(&self) -> bool {
        self.signal.get().is_some()
    }

    /// Resolves when a stop is asked for (at once if it was): waits that a
    /// stop should cut short (a retry's backoff) race against it.
    pub async fn stopped(&self) {
        if !self.is_stopping() {
            self.stopping.notified().await;
        }
    }

    /// Registers a request as on the wire until the guard is dropped.
    pub fn on_the_wire(self: &Rc<Self>, request: String) -> OnTheWire {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.in_flight.borrow_mut().insert(id, request);
        OnTheWire {
            shutdown: Rc::clone(self),
            id,
        }
    }

    /// The requests on the wire now, oldest first.
    pub fn in_flight(&self) -> Vec<String> {
        self.in_flight.borrow().values().cloned().collect()
    }
}

/// A request on the wire; dropping it (answered, failed or abandoned)
/// takes it off the registry.
pub struct OnTheWire {
    shutdown: Rc<Shutdown>,
    id: u64,
}

impl Drop for OnTheWire {
    fn drop(&mut self) {
        self.shutdown.in_flight.borrow_mut().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_signal_begins_the_stop() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_stopping());
        assert!(shutdown.begin(Signal::Interrupt));
        assert!(!shutdown.begin(Signal::Terminate));
        assert_eq!(shutdown.requested(), Some(Signal::Interrupt));
        assert!(shutdown.is_stopping());
    }

    #[test]
    fn requests_leave_the_registry_when_their_guard_drops() {
        let shutdown = Shutdown::new();
        let first = shutdown.on_the_wire("DELETE a".into());
        let second = shutdown.on_the_wire("DELETE b".into());
        assert_eq!(shutdown.in_flight(), ["DELETE a", "DELETE b"]);
        drop(first);
        assert_eq!(shutdown.in_flight(), ["DELETE b"]);
        drop(second);
        assert!(shutdown.in_flight().is_empty());
    }

    #[actix_rt::test]
    async fn waits_for_the_stop_end_when_it_is_asked() {
        let shutdown = Shutdown::new();
        let waiter = {
            let shutdown = Rc::clone(&shutdown);
            actix_rt::spawn(async move { shutdown.stopped().await })
        };
        actix_rt::task::yield_now().await;
        assert!(!waiter.is_finished());
        shutdown.begin(Signal::Terminate);
        waiter.await.unwrap();
        // Asked already: no wait at all.
        shutdown.stopped().await;
    }
}
