//! The executor pool: the actor that owns `--concurrency`, the line of
//! requests waiting for an executor, the hub's outage and the retries.
//!
//! **The bound.** The pool holds `--concurrency` [`Executor`]s and hands a
//! request only to an idle one, which carries it to the hub and back; a
//! request that finds none idle waits in the pool's line. So no more than
//! `--concurrency` requests are ever outstanding, lists and deletes alike,
//! whichever actor asked; this is the one place that bounds them (the HTTP
//! client's own connection limit is off, so a broken bound shows in the
//! tests). The pipeline's requests, that is: the metrics endpoint asks the
//! hub about a scraper's token on its own, once a minute per token
//! ([`crate::serve`]).
//!
//! **The order.** The line has two lanes: reads the pipeline waits on (the
//! version, the token's scopes, a page of users) go before queued stops and
//! deletes, so the next page's stops are queued before this page's run out
//! and the executors do not idle at page boundaries. Within a lane, first
//! come, first served.
//!
//! **Retries.** A request that fails in a way that may pass on a second try
//! is sent again within the pass, after a jittered backoff
//! ([`RetryPolicy`]), each retry logged at WARN with its reason; waiting
//! holds no executor. Once a request gives up because the hub cannot be
//! reached at all, the rest of the pass is not sent (one error, not one per
//! user); the next pass tries again.
//!
//! **Stopping.** Once told the culler stops, the pool sends nothing new and
//! retries nothing; what is on the wire finishes, and [`InFlight`] names
//! it.
//!
//! Other actors reach the pool through a [`Pool`] handle, whose
//! [`Pool::call`] is one request with its retries.

use super::executor::{Announce, Attempt, AttemptError, Call, Executor, GetVersion, Lane};
use crate::hub::retry::{GiveUp, Jitter, RetryDecision, RetryPolicy};
use crate::hub::{HubError, HubVersion};
use crate::logging::{info, warning, Log};
use crate::metrics::Metrics;
use actix::prelude::*;
use futures_util::future::{select, Either, LocalBoxFuture};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Why a command produced no answer from the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The hub refused or failed in a way another try cannot mend.
    Hub(HubError),
    /// The hub kept failing in a way that may pass later; retried until the
    /// policy gave up.
    GaveUp {
        /// The last attempt's failure.
        error: HubError,
        /// Why no more retries were made.
        why: GiveUp,
    },
    /// Never sent (or not sent again).
    NotSent(NotSent),
    /// The executor carrying it out crashed; it is being restarted.
    Crashed,
}

/// Why a command was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSent {
    /// The culler is stopping.
    Stopping,
    /// An earlier request of this pass found the hub unreachable.
    HubDown,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Hub(err) => err.fmt(f),
            CommandError::GaveUp { error, why } => write!(f, "{error} ({why})"),
            CommandError::NotSent(NotSent::Stopping) => {
                f.write_str("not sent: the culler is stopping")
            }
            CommandError::NotSent(NotSent::HubDown) => {
                f.write_str("not sent: the hub could not be reached earlier in this pass")
            }
            CommandError::Crashed => f.write_str(
                "the executor sending it failed (it is being restarted); the next pass tries again",
            ),
        }
    }
}

/// Starts a job on the executor it is given; resolves when the job is answered.
type Start = Box<dyn FnOnce(&Addr<Executor>) -> LocalBoxFuture<'static, ()>>;

/// A request waiting for an executor: what it is, and how to hand it over.
struct Job {
    description: String,
    start: Start,
}

/// The pool; see the module documentation.
pub struct ExecutorPool {
    executors: Vec<Addr<Executor>>,
    /// The executors that carry nothing now.
    idle: Vec<usize>,
    reads: VecDeque<Job>,
    acts: VecDeque<Job>,
    /// What each busy executor carries, by executor.
    on_the_wire: BTreeMap<usize, String>,
    /// Woken at the next answer ([`NextRelease`]).
    release_waiters: Vec<oneshot::Sender<()>>,
    /// Woken when the culler starts stopping ([`UntilStopping`]).
    stop_waiters: Vec<oneshot::Sender<()>>,
    /// Set when a request gave up because the hub is unreachable; cleared
    /// at the start of each pass.
    outage: Option<HubError>,
    stopping: bool,
    retry: RetryPolicy,
    jitter: Jitter,
    metrics: Arc<Metrics>,
    log: Log,
}

impl ExecutorPool {
    /// A pool of `executors`, retrying as `retry` says.
    pub fn new(
        executors: Vec<Addr<Executor>>,
        retry: RetryPolicy,
        metrics: Arc<Metrics>,
        log: Log,
    ) -> Self {
        ExecutorPool {
            idle: (0..executors.len()).rev().collect(),
            executors,
            reads: VecDeque::new(),
            acts: VecDeque::new(),
            on_the_wire: BTreeMap::new(),
            release_waiters: Vec::new(),
            stop_waiters: Vec::new(),
            outage: None,
            stopping: false,
            retry,
            jitter: Jitter::new(),
            metrics,
            log,
        }
    }

    /// Requests waiting for an executor.
    fn backlog(&self) -> usize {
        self.reads.len() + self.acts.len()
    }

    /// Hands waiting requests to idle executors, reads first.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        while let Some(&executor) = self.idle.last() {
            let Some(job) = self.reads.pop_front().or_else(|| self.acts.pop_front()) else {
                return;
            };
            self.idle.pop();
            self.on_the_wire.insert(executor, job.description);
            let carried = (job.start)(&self.executors[executor]);
            ctx.spawn(carried.into_actor(self).map(move |(), pool, ctx| {
                pool.on_the_wire.remove(&executor);
                pool.idle.push(executor);
                for waiter in pool.release_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                pool.dispatch(ctx);
            }));
        }
    }
}

impl Actor for ExecutorPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Its mailbox holds a request for every user of the pages being
        // acted on: no sender should wait for room in it.
        ctx.set_mailbox_capacity(0); // 0: unbounded
    }
}

/// Send one attempt of a request through an idle executor (waiting in
/// `lane` for one), unless the culler is stopping or, with `despite_outage`
/// false, the hub was found down earlier in this pass.
pub struct Dispatch<C> {
    /// The attempt.
    pub attempt: Attempt<C>,
    /// Which lane it waits in.
    pub lane: Lane,
    /// Send it even when the hub was found down in this pass (a probe).
    pub despite_outage: bool,
}

impl<C: Call> Message for Dispatch<C> {
    type Result = Result<C::Output, AttemptError>;
}

impl<C: Call> Handler<Dispatch<C>> for ExecutorPool {
    type Result = ResponseFuture<Result<C::Output, AttemptError>>;

    fn handle(&mut self, msg: Dispatch<C>, ctx: &mut Context<Self>) -> Self::Result {
        if self.stopping {
            return Box::pin(std::future::ready(Err(AttemptError::Stopping)));
        }
        if self.outage.is_some() && !msg.despite_outage {
            return Box::pin(std::future::ready(Err(AttemptError::HubDown)));
        }
        let (answered, answer) = oneshot::channel();
        let attempt = msg.attempt;
        let job = Job {
            description: attempt.call.describe(),
            start: Box::new(move |executor: &Addr<Executor>| {
                let sent = executor.send(attempt);
                Box::pin(async move {
                    // A closed mailbox cannot happen under the Supervisor (it
                    // keeps the mailbox across restarts); if it did, the work
                    // was lost with it.
                    let result = sent.await.unwrap_or(Err(AttemptError::Crashed));
                    let _ = answered.send(result);
                })
            }),
        };
        match msg.lane {
            Lane::Read => self.reads.push_back(job),
            Lane::Act => self.acts.push_back(job),
        }
        self.dispatch(ctx);
        // Dropped unanswered only when the pool stopped with the job queued.
        Box::pin(async move { answer.await.unwrap_or(Err(AttemptError::Stopping)) })
    }
}

/// A failed attempt: retry it (after the wait), or give up. Logs the retry
/// and counts it; a give-up because the hub is unreachable marks the pass's
/// outage, so that the rest of the pass is not sent.
pub struct Decide {
    /// The attempt's failure.
    pub error: HubError,
    /// Retries made so far (0 after the first attempt).
    pub retries_done: u32,
    /// Time since the first attempt.
    pub elapsed: Duration,
}

impl Message for Decide {
    type Result = RetryDecision;
}

impl Handler<Decide> for ExecutorPool {
    type Result = MessageResult<Decide>;

    fn handle(&mut self, msg: Decide, _ctx: &mut Context<Self>) -> Self::Result {
        if self.stopping {
            return MessageResult(RetryDecision::GiveUp(GiveUp::Permanent));
        }
        let random = self.jitter.next_u64();
        let decision = self
            .retry
            .decide(&msg.error, msg.retries_done, msg.elapsed, random);
        match decision {
            RetryDecision::GiveUp(GiveUp::Permanent) => {}
            RetryDecision::GiveUp(_) => {
                if msg.error.is_outage() {
                    self.outage.get_or_insert(msg.error.clone());
                }
            }
            RetryDecision::Wait(wait) => {
                self.metrics.retry();
                warning!(
                    self.log,
                    "{}; retry {} of {} in {:.1} s",
                    msg.error,
                    msg.retries_done + 1,
                    self.retry.retries,
                    wait.as_secs_f64()
                );
            }
        }
        MessageResult(decision)
    }
}

/// Resolves when the culler starts stopping (at once if it has): a retry's
/// backoff is cut short by it.
pub struct UntilStopping;

impl Message for UntilStopping {
    type Result = ();
}

impl Handler<UntilStopping> for ExecutorPool {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: UntilStopping, _ctx: &mut Context<Self>) -> Self::Result {
        if self.stopping {
            return Box::pin(std::future::ready(()));
        }
        let (stopped, wait) = oneshot::channel();
        self.stop_waiters.push(stopped);
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}

/// The culler is stopping: send nothing new and retry nothing; what is on
/// the wire finishes.
pub struct Stopping;

impl Message for Stopping {
    type Result = ();
}

impl Handler<Stopping> for ExecutorPool {
    type Result = ();

    fn handle(&mut self, _: Stopping, _ctx: &mut Context<Self>) {
        self.stopping = true;
        // Queued requests are answered "not sent" (their answer channels
        // close with them).
        self.reads.clear();
        self.acts.clear();
        for waiter in self.stop_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }
}

/// What is on the wire now, oldest executor first: named when a stop
/// leaves it unanswered.
pub struct InFlight;

impl Message for InFlight {
    type Result = Vec<String>;
}

impl Handler<InFlight> for ExecutorPool {
    type Result = MessageResult<InFlight>;

    fn handle(&mut self, _: InFlight, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.on_the_wire.values().cloned().collect())
    }
}

/// How loaded the pool is: requests waiting for an executor, and how many
/// executors there are (`--concurrency`).
pub struct Load;

/// The answer to [`Load`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// Requests waiting for an executor.
    pub backlog: usize,
    /// Executors: how many requests may be on the wire at once.
    pub size: usize,
}

impl Message for Load {
    type Result = Loaded;
}

impl Handler<Load> for ExecutorPool {
    type Result = MessageResult<Load>;

    fn handle(&mut self, _: Load, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(Loaded {
            backlog: self.backlog(),
            size: self.executors.len(),
        })
    }
}

/// Resolves at the next answer from the hub (an executor comes free).
pub struct NextRelease;

impl Message for NextRelease {
    type Result = ();
}

impl Handler<NextRelease> for ExecutorPool {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: NextRelease, _ctx: &mut Context<Self>) -> Self::Result {
        let (released, wait) = oneshot::channel();
        self.release_waiters.push(released);
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}

/// A pass begins: a hub that was unreachable is tried again.
pub struct BeginPass;

impl Message for BeginPass {
    type Result = ();
}

impl Handler<BeginPass> for ExecutorPool {
    type Result = ();

    fn handle(&mut self, _: BeginPass, _ctx: &mut Context<Self>) {
        self.outage = None;
    }
}

/// Whether a request of this pass gave up because the hub could not be
/// reached (so the rest of the pass was not sent).
pub struct FoundHubDown;

impl Message for FoundHubDown {
    type Result = bool;
}

impl Handler<FoundHubDown> for ExecutorPool {
    type Result = bool;

    fn handle(&mut self, _: FoundHubDown, _ctx: &mut Context<Self>) -> bool {
        self.outage.is_some()
    }
}

/// The pool's address with the calls the pipeline makes through it.
#[derive(Clone)]
pub struct Pool {
    addr: Addr<ExecutorPool>,
    log: Log,
}

impl Pool {
    /// The handle of the pool at `addr`; `log` is where a request that
    /// succeeded on a retry says so.
    pub fn new(addr: Addr<ExecutorPool>, log: Log) -> Self {
        Pool { addr, log }
    }

    /// Sends `call` through an executor, retrying as the policy allows.
    /// `announce` is logged when the request first goes on the wire.
    pub async fn call<C: Call>(
        &self,
        call: C,
        mut announce: Option<Announce>,
    ) -> Result<C::Output, CommandError> {
        let first = Instant::now();
        let mut retries = 0;
        loop {
            let attempt = Attempt {
                call: call.clone(),
                announce: announce.take(),
            };
            let dispatch = Dispatch {
                lane: call.lane(),
                attempt,
                despite_outage: false,
            };
            let error = match self.ask(dispatch).await {
                Ok(output) => {
                    if retries > 0 {
                        info!(self.log, "{} succeeded on retry {retries}", call.describe());
                    }
                    return Ok(output);
                }
                Err(err) => match not_answered(err) {
                    Ok(error) => error,
                    Err(command) => return Err(command),
                },
            };
            let decide = Decide {
                error: error.clone(),
                retries_done: retries,
                elapsed: first.elapsed(),
            };
            match self.addr.send(decide).await {
                Ok(RetryDecision::GiveUp(GiveUp::Permanent)) => {
                    return Err(CommandError::Hub(error))
                }
                Ok(RetryDecision::GiveUp(why)) => return Err(CommandError::GaveUp { error, why }),
                Ok(RetryDecision::Wait(wait)) => {
                    retries += 1;
                    let sleep = std::pin::pin!(actix_rt::time::sleep(wait));
                    let stop = std::pin::pin!(self.addr.send(UntilStopping));
                    if let Either::Right(_) = select(sleep, stop).await {
                        return Err(CommandError::NotSent(NotSent::Stopping));
                    }
                }
                Err(_) => return Err(CommandError::NotSent(NotSent::Stopping)),
            }
        }
    }

    /// Asks the hub for its version once, whatever this pass found and
    /// without retrying or logging: how the Scheduler watches for a hub
    /// that stopped answering to come back.
    pub async fn probe(&self) -> Result<HubVersion, CommandError> {
        let dispatch = Dispatch {
            attempt: Attempt {
                call: GetVersion,
                announce: None,
            },
            lane: Lane::Read,
            despite_outage: true,
        };
        match self.ask(dispatch).await {
            Ok(version) => Ok(version),
            Err(err) => Err(not_answered(err).map_or_else(|err| err, CommandError::Hub)),
        }
    }

    /// How loaded the pool is.
    pub async fn load(&self) -> Loaded {
        self.addr.send(Load).await.unwrap_or(Loaded {
            backlog: 0,
            size: 1,
        })
    }

    /// Resolves at the next answer from the hub.
    pub async fn next_release(&self) {
        let _ = self.addr.send(NextRelease).await;
    }

    /// A new pass begins.
    pub async fn begin_pass(&self) {
        let _ = self.addr.send(BeginPass).await;
    }

    /// Whether this pass found the hub unreachable.
    pub async fn found_hub_down(&self) -> bool {
        self.addr.send(FoundHubDown).await.unwrap_or(false)
    }

    async fn ask<C: Call>(&self, dispatch: Dispatch<C>) -> Result<C::Output, AttemptError> {
        self.addr
            .send(dispatch)
            .await
            .unwrap_or(Err(AttemptError::Stopping))
    }
}

/// The hub's error of an attempt that reached it, else what becomes of the
/// command.
fn not_answered(err: AttemptError) -> Result<HubError, CommandError> {
    match err {
        AttemptError::Hub(error) => Ok(error),
        AttemptError::Stopping => Err(CommandError::NotSent(NotSent::Stopping)),
        AttemptError::HubDown => Err(CommandError::NotSent(NotSent::HubDown)),
        AttemptError::Crashed => Err(CommandError::Crashed),
    }
}

#[cfg(test)]
mod tests;
