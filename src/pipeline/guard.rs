//! The handler boundary every actor's work passes through, and the restart
//! budget: what makes the supervision real.
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
//! is told to the Supervisor actor, which counts it against its
//! [`RestartBudget`]: a culler that keeps crashing exits so that
//! JupyterHub or Kubernetes starts a fresh process.

use crate::logging::{error, panic_text, Log};
use actix::prelude::*;
use futures_util::FutureExt;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// An actor whose handlers run through [`guarded`].
pub trait Restartable: Actor<Context = Context<Self>> + Supervised {
    /// Its name in logs, e.g. "executor 3".
    fn name(&self) -> String;
    /// Where its crash is logged.
    fn log(&self) -> &Log;
    /// Who counts its restarts (the Supervisor).
    fn restarts(&self) -> &Recipient<Restarted>;
    /// Resets its state for the restart (called from `Supervised::restarting`).
    fn restarted(&mut self) {}
}

/// What every actor's `Supervised::restarting` does: tell the Supervisor
/// (which ends the process once the budget is spent) and reset the actor.
pub fn restarting<A: Restartable>(actor: &mut A) {
    actor.restarts().do_send(Restarted { who: actor.name() });
    actor.restarted();
}

/// An actor was restarted after a crash: counted against the budget.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Restarted {
    /// The actor, as its log lines name it ("executor 3").
    pub who: String,
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

/// The restarts of the last `window`, of every actor of the process: the
/// Supervisor's to keep.
pub struct RestartBudget {
    limit: RestartLimit,
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    /// A fresh budget.
    pub fn new(limit: RestartLimit) -> Self {
        RestartBudget {
            limit,
            recent: VecDeque::new(),
        }
    }

    /// The limit it holds restarts to.
    pub fn limit(&self) -> RestartLimit {
        self.limit
    }

    /// Records a restart at `now`; `false` when it exceeds the limit.
    pub fn admit(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|&then| now.duration_since(then) >= self.limit.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.recent.len() <= self.limit.restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(restarts: usize, secs: u64) -> RestartBudget {
        RestartBudget::new(RestartLimit {
            restarts,
            window: Duration::from_secs(secs),
        })
    }

    #[test]
    fn the_budget_allows_the_limit_within_the_window_and_not_one_more() {
        let mut budget = budget(5, 60);
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(budget.admit(t0 + Duration::from_secs(i)), "restart {i}");
        }
        assert!(!budget.admit(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn restarts_older_than_the_window_no_longer_count() {
        let mut budget = budget(2, 60);
        let t0 = Instant::now();
        assert!(budget.admit(t0));
        assert!(budget.admit(t0 + Duration::from_secs(30)));
        // The first has left the window exactly now.
        assert!(budget.admit(t0 + Duration::from_secs(60)));
        assert!(!budget.admit(t0 + Duration::from_secs(61)));
    }

    /// Counts the restarts it is told of.
    struct Counter(std::rc::Rc<std::cell::RefCell<Vec<String>>>);

    impl Actor for Counter {
        type Context = Context<Self>;
    }

    impl Handler<Restarted> for Counter {
        type Result = ();
        fn handle(&mut self, msg: Restarted, _ctx: &mut Context<Self>) {
            self.0.borrow_mut().push(msg.who);
        }
    }

    /// A minimal guarded actor: panics on demand, counts restarts.
    struct Fragile {
        told: Recipient<Restarted>,
        log: Log,
        restarts: std::rc::Rc<std::cell::Cell<u32>>,
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
        fn restarts(&self) -> &Recipient<Restarted> {
            &self.told
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
        use std::rc::Rc;
        let restarts = Rc::new(std::cell::Cell::new(0));
        let told = Rc::new(std::cell::RefCell::new(Vec::new()));
        let counter = Counter(Rc::clone(&told)).start();
        let addr = {
            let restarts = Rc::clone(&restarts);
            let told = counter.clone().recipient();
            actix::Supervisor::start(move |_| Fragile {
                told,
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
        // The restarts were told (the messages are on their way: one more
        // round trip to the counter delivers them).
        let _ = counter.send(Restarted { who: "end".into() }).await;
        assert_eq!(*told.borrow(), ["fragile", "fragile", "end"]);
    }
}
