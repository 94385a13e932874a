//! The executor pool's admission gate: `--concurrency` permits, one per
//! request on the wire, handed to waiting requests **reads first**.
//!
//! Why an order: the Lister keeps a few pages being acted on at once, so
//! that the executors never idle between pages. That only works if the
//! next page arrives while this page's stops are still queued; a page read
//! waiting in line behind every queued stop would arrive only when they are
//! all done, and the pool would idle at each page boundary again. So a read
//! (version, token, page) waits only for the next permit to come free, and
//! stops and deletes take the permits that reads leave. Within a lane the
//! order is first come, first served.
//!
//! The gate is what bounds requests in flight: a request holds its
//! [`Permit`] from before it is handed to an executor until its answer is
//! back. Dropping a request that waits (its page abandoned at a stop) gives
//! up its place, or passes on a permit it was just handed, so no permit is
//! ever lost.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use tokio::sync::{oneshot, Notify};

/// Which line a request waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Reads the pipeline waits on: the version, the token's scopes, a page
    /// of users. Served first.
    Read,
    /// Commands: stops and deletes.
    Act,
}

/// The permits and the requests waiting for one.
pub struct Gate {
    /// Woken at every release: the Lister waits on it for the backlog to
    /// fall ([`Gate::released`]).
    released: Notify,
    free: Cell<usize>,
    reads: RefCell<VecDeque<oneshot::Sender<()>>>,
    acts: RefCell<VecDeque<oneshot::Sender<()>>>,
}

impl Gate {
    /// A gate with `permits` permits (at least one).
    pub fn new(permits: usize) -> Rc<Gate> {
        Rc::new(Gate {
            released: Notify::new(),
            free: Cell::new(permits.max(1)),
            reads: RefCell::new(VecDeque::new()),
            acts: RefCell::new(VecDeque::new()),
        })
    }

    /// Waits for a permit in `lane`'s line.
    pub fn enter(self: &Rc<Self>, lane: Lane) -> Enter {
        // A free permit means nobody waits: a released permit goes straight
        // to the first waiter, so `free` grows only when both lines are empty.
        if self.free.get() > 0 {
            self.free.set(self.free.get() - 1);
            return Enter {
                gate: Some(Rc::clone(self)),
                waiting: None,
            };
        }
        let (granted, wait) = oneshot::channel();
        match lane {
            Lane::Read => self.reads.borrow_mut().push_back(granted),
            Lane::Act => self.acts.borrow_mut().push_back(granted),
        }
        Enter {
            gate: Some(Rc::clone(self)),
            waiting: Some(wait),
        }
    }

    /// Requests waiting for a permit, in both lines (a request whose
    /// waiter was dropped may still be counted until the next release).
    pub fn waiting(&self) -> usize {
        self.reads.borrow().len() + self.acts.borrow().len()
    }

    /// Resolves at the next release of a permit (a request answered). The
    /// caller checks [`Gate::waiting`] first, then awaits this without
    /// yielding in between, so no release is missed.
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    /// Hands a permit to the first waiter that is still there, reads first,
    /// or puts it back.
    fn release(&self) {
        self.released.notify_waiters();
        loop {
            let next = self.reads.borrow_mut().pop_front();
            let next = next.or_else(|| self.acts.borrow_mut().pop_front());
            match next {
                Some(waiter) => {
                    if waiter.send(()).is_ok() {
                        return;
                    }
                    // That waiter was dropped: try the next one.
                }
                None => {
                    self.free.set(self.free.get() + 1);
                    return;
                }
            }
        }
    }
}

/// A request's wait for a permit ([`Gate::enter`]).
pub struct Enter {
    /// `None` once the permit was taken.
    gate: Option<Rc<Gate>>,
    /// `None` once granted.
    waiting: Option<oneshot::Receiver<()>>,
}

impl Future for Enter {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        if let Some(wait) = self.waiting.as_mut() {
            match Pin::new(wait).poll(cx) {
                Poll::Pending => return Poll::Pending,
                // The gate outlives its senders (it holds them), so a
                // closed channel cannot happen; either way the permit is
                // this request's now.
                Poll::Ready(_) => self.waiting = None,
            }
        }
        let gate = self.gate.take().expect("Enter polled after it completed");
        Poll::Ready(Permit { gate: Some(gate) })
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let (Some(gate), Some(mut wait)) = (self.gate.take(), self.waiting.take()) else {
            return;
        };
        // Dropped while waiting. If a permit was handed over meanwhile, it
        // must go on to the next waiter; otherwise closing the channel makes
        // `release` skip this place in line.
        wait.close();
        if wait.try_recv().is_ok() {
            gate.release();
        }
    }
}

/// One request's right to be on the wire; released on drop.
pub struct Permit {
    gate: Option<Rc<Gate>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    /// Polls once without a runtime: the permit, if granted yet.
    fn try_enter(enter: &mut Enter) -> Option<Permit> {
        FutureExt::now_or_never(&mut *enter)
    }

    #[test]
    fn no_more_permits_are_out_than_the_gate_has() {
        let gate = Gate::new(2);
        let a = gate.enter(Lane::Act).now_or_never().expect("first is free");
        let b = gate
            .enter(Lane::Read)
            .now_or_never()
            .expect("second is free");
        let mut c = gate.enter(Lane::Act);
        assert!(
            try_enter(&mut c).is_none(),
            "a third request got on the wire"
        );
        assert_eq!(gate.waiting(), 1);
        drop(a);
        let c = try_enter(&mut c).expect("a released permit goes to the waiter");
        assert_eq!(gate.waiting(), 0);
        drop((b, c));
        assert_eq!(gate.free.get(), 2, "every permit came back");
    }

    #[test]
    fn a_read_goes_ahead_of_commands_that_waited_longer() {
        let gate = Gate::new(1);
        let held = gate.enter(Lane::Act).now_or_never().expect("free");
        let mut stop_1 = gate.enter(Lane::Act);
        let mut stop_2 = gate.enter(Lane::Act);
        let mut page = gate.enter(Lane::Read);
        for waiter in [&mut stop_1, &mut stop_2, &mut page] {
            assert!(try_enter(waiter).is_none());
        }
        drop(held);
        assert!(
            try_enter(&mut stop_1).is_none(),
            "a stop went before the page"
        );
        let page = try_enter(&mut page).expect("the page read is served first");
        drop(page);
        let first = try_enter(&mut stop_1).expect("then the commands, in order");
        assert!(try_enter(&mut stop_2).is_none());
        drop(first);
        assert!(try_enter(&mut stop_2).is_some());
    }

    #[test]
    fn a_release_wakes_whoever_waits_for_the_backlog_to_fall() {
        let gate = Gate::new(1);
        let held = gate.enter(Lane::Act).now_or_never().expect("free");
        let mut released = std::pin::pin!(gate.released());
        assert!(released.as_mut().now_or_never().is_none());
        drop(held);
        assert!(released.as_mut().now_or_never().is_some());
    }

    #[test]
    fn a_dropped_waiter_loses_no_permit() {
        let gate = Gate::new(1);
        let held = gate.enter(Lane::Act).now_or_never().expect("free");
        // One gives up before its turn, one after the permit was handed to
        // it but before it looked.
        let gone_early = gate.enter(Lane::Read);
        let mut handed = gate.enter(Lane::Read);
        let mut last = gate.enter(Lane::Act);
        assert!(try_enter(&mut handed).is_none());
        drop(gone_early);
        drop(held); // skips the dropped waiter: handed to `handed`
        drop(handed); // never looked: passes the permit on
        let last = try_enter(&mut last).expect("the permit reached the last waiter");
        drop(last);
        assert_eq!(gate.free.get(), 1);
        assert_eq!(gate.waiting(), 0);
    }
}
