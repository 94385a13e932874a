//! The handler boundary every actor's work passes through, and the restart
//! budget: what makes the Supervisor real.
//!
//! actix restarts a supervised actor only when its context stops, and a
//! panic does not stop it: left alone, a panic in a handler closes the
//! actor's mailbox for good while the rest of the program keeps sending to
//! it. So each handler's work runs inside [`guarded`], which catches a panic
//! (in the handler itself or in the future it returns), logs it with the
//! actor's name, answers the message with a failure (the work is reported,
//! never silently lost), and stops the actor; `actix::Supervisor` then
//! restarts it in place (same address, its mailbox and queued messages
//! kept) and [`Restartable::restarted`] gives it fresh state. Every restart
//! is counted against a [`RestartBudget`]: a culler that keeps crashing
//! exits so that JupyterHub or Kubernetes starts a fresh process.

use crate::exit::Exit;
use crate::logging::{error, panic_text, Log};
use actix::prelude::*;
use futures_util::FutureExt;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// An actor whose handlers run through [`guarded`].
pub trait Restartable: Actor<Context = Context<Self>> + Supervised {
    /// Its name in logs, e.g. "executor 3".
    fn name(&self) -> String;
    /// Where its crash is logged.
    fn log(&self) -> &Log;
    /// The budget its restarts count against.
    fn budget(&self) -> &RestartBudget;
    /// Resets its state for the restart (called from `Supervised::restarting`).
    fn restarted(&mut self) {}
}

/// What every actor's `Supervised::restarting` does: count the restart
/// (ending the process once the budget is spent) and reset the actor.
pub fn restarting<A: Restartable>(actor: &mut A) {
    actor.budget().spend(&actor.name(), Instant::now());
    actor.restarted();
}

/// Runs a handler's `work` so that a panic in it, or in the future it
/// returns, answers the message with `if_crashed()` and restarts the actor.
pub fn guarded<A, T, F, W>(
    actor: &mut A,
    work: W,
    if_crashed: impl FnOnce() -> T + 'static,
) -> ResponseActFuture<A, T>
where
    A: Restartable,
    T: 'static,
    F: Future<Output = T> + 'static,
    W: FnOnce(&mut A) -> F,
{
    type Outcome<T> = std::thread::Result<T>;
    let attempt: futures_util::future::LocalBoxFuture<'static, Outcome<T>> =
        match panic::catch_unwind(AssertUnwindSafe(|| work(actor))) {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().boxed_local(),
            Err(payload) => std::future::ready(Err(payload)).boxed_local(),
        };
    Box::pin(attempt.into_actor(actor).map(move |outcome, actor, ctx| {
        outcome.unwrap_or_else(|payload| {
            crashed(actor, ctx, payload.as_ref());
            if_crashed()
        })
    }))
}

/// Runs `work` that a handler does in its actor's context after awaiting
/// (a result's bookkeeping), so that a panic there too restarts the actor
/// instead of killing its mailbox.
pub fn contained<A: Restartable>(
    actor: &mut A,
    ctx: &mut Context<A>,
    work: impl FnOnce(&mut A, &mut Context<A>),
) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| work(&mut *actor, &mut *ctx))) {
        crashed(actor, ctx, payload.as_ref());
    }
}

/// Logs a caught panic with the actor's name and stops the actor, which
/// its Supervisor then restarts.
fn crashed<A: Restartable>(
    actor: &mut A,
    ctx: &mut Context<A>,
    payload: &(dyn std::any::Any + Send),
) {
    error!(
        actor.log(),
        "The {} failed (panic: {}); restarting it",
        actor.name(),
        panic_text(payload)
    );
    ctx.stop();
}

/// How many restarts are tolerated in how long before the process gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartLimit {
    /// Restarts allowed within `window`.
    pub restarts: usize,
    /// The sliding window.
    pub window: Duration,
}

impl Default for RestartLimit {
    /// 5 restarts in 60 s: a one-off bug is survived, a crash loop is not.
    fn default() -> Self {
        RestartLimit {
            restarts: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// The restarts of the last `window`; shared by every actor of the process.
pub struct RestartBudget {
    limit: RestartLimit,
    recent: RefCell<VecDeque<Instant>>,
    log: Log,
}

impl RestartBudget {
    /// A fresh budget.
    pub fn new(limit: RestartLimit, log: Log) -> Rc<Self> {
        Rc::new(RestartBudget {
            limit,
            recent: RefCell::new(VecDeque::new()),
            log,
        })
    }

    /// Counts one restart of `who` at `now`; when that is one too many,
    /// logs why and ends the process with [`Exit::GaveUp`].
    ///
    /// At once, not through the actix System: an actor that fails as it
    /// starts is restarted by its Supervisor within the same poll, again and
    /// again, so the System would never get to run its stop (seen in the
    /// tests: a scheduler panicking on every tick spun for ever).
    pub fn spend(&self, who: &str, now: Instant) {
        if self.admit(now) {
            return;
        }
        error!(
            self.log,
            "The {who} failed again: more than {} restarts in {} s; exiting so that a fresh culler is started (JupyterHub restarts its managed services; Kubernetes its pods)",
            self.limit.restarts,
            self.limit.window.as_secs()
        );
        std::process::exit(Exit::GaveUp.code());
    }

    /// Records a restart at `now`; `false` when it exceeds the limit.
    fn admit(&self, now: Instant) -> bool {
        let mut recent = self.recent.borrow_mut();
        while recent
            .front()
            .is_some_and(|&then| now.duration_since(then) >= self.limit.window)
        {
            recent.pop_front();
        }
        recent.push_back(now);
        recent.len() <= self.limit.restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(restarts: usize, secs: u64) -> Rc<RestartBudget> {
        RestartBudget::new(
            RestartLimit {
                restarts,
                window: Duration::from_secs(secs),
            },
            Log::discard(),
        )
    }

    #[test]
    fn the_budget_allows_the_limit_within_the_window_and_not_one_more() {
        let budget = budget(5, 60);
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(budget.admit(t0 + Duration::from_secs(i)), "restart {i}");
        }
        assert!(!budget.admit(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn restarts_older_than_the_window_no_longer_count() {
        let budget = budget(2, 60);
        let t0 = Instant::now();
        assert!(budget.admit(t0));
        assert!(budget.admit(t0 + Duration::from_secs(30)));
        // The first has left the window exactly now.
        assert!(budget.admit(t0 + Duration::from_secs(60)));
        assert!(!budget.admit(t0 + Duration::from_secs(61)));
    }

    /// A minimal guarded actor: panics on demand, counts restarts.
    struct Fragile {
        budget: Rc<RestartBudget>,
        log: Log,
        restarts: Rc<std::cell::Cell<u32>>,
    }

    impl Actor for Fragile {
        type Context = Context<Self>;
    }

    impl Supervised for Fragile {
        fn restarting(&mut self, _ctx: &mut Context<Self>) {
            restarting(self);
        }
    }

    impl Restartable for Fragile {
        fn name(&self) -> String {
            "fragile".into()
        }
        fn log(&self) -> &Log {
            &self.log
        }
        fn budget(&self) -> &RestartBudget {
            &self.budget
        }
        fn restarted(&mut self) {
            self.restarts.set(self.restarts.get() + 1);
        }
    }

    /// Panic where: 0 nowhere, 1 in the handler, 2 in its future.
    struct Work(u8);

    impl Message for Work {
        type Result = Result<&'static str, &'static str>;
    }

    impl Handler<Work> for Fragile {
        type Result = ResponseActFuture<Self, Result<&'static str, &'static str>>;

        fn handle(&mut self, work: Work, _ctx: &mut Context<Self>) -> Self::Result {
            guarded(
                self,
                |_| {
                    if work.0 == 1 {
                        panic!("in the handler");
                    }
                    async move {
                        if work.0 == 2 {
                            panic!("in the future");
                        }
                        Ok("done")
                    }
                },
                || Err("crashed"),
            )
        }
    }

    #[actix_rt::test]
    async fn a_panic_anywhere_in_a_handler_answers_and_restarts_the_actor() {
        let restarts = Rc::new(std::cell::Cell::new(0));
        let addr = {
            let restarts = Rc::clone(&restarts);
            actix::Supervisor::start(move |_| Fragile {
                budget: budget(5, 60),
                log: Log::discard(),
                restarts,
            })
        };
        assert_eq!(addr.send(Work(0)).await.unwrap(), Ok("done"));
        assert_eq!(addr.send(Work(1)).await.unwrap(), Err("crashed"));
        assert_eq!(addr.send(Work(0)).await.unwrap(), Ok("done"));
        assert_eq!(addr.send(Work(2)).await.unwrap(), Err("crashed"));
        assert_eq!(addr.send(Work(0)).await.unwrap(), Ok("done"));
        assert_eq!(restarts.get(), 2);
    }
}
