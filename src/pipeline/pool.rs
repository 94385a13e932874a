//! The executor pool: the one owner of `--concurrency`, and of retries.
//!
//! Every request to the hub goes through [`ExecutorPool::call`], which waits
//! at the pool's gate ([`super::gate`]: one permit per executor, page reads
//! served before queued stops) and then hands it to an idle executor. The
//! pool holds exactly `--concurrency` executors, each sending one request
//! at a time, so no more than that many requests are ever outstanding:
//! lists and deletes alike, whichever actor asked. Nothing else limits requests (the HTTP client's
//! own connection limit is off), so a broken bound shows in the tests.
//!
//! An executor that fails is restarted by its Supervisor before any other
//! message is handled (in the same poll), keeping its address and its queue:
//! there is no moment when routing to it would lose work, so the pool needs
//! no record of which executors are up. The request it was carrying is
//! answered [`CommandError::Crashed`].
//!
//! A request that fails in a way that may pass on a second try is sent
//! again within the pass, after a jittered backoff ([`RetryPolicy`]), each
//! retry logged at WARN with its reason. Waiting does not hold an executor.
//! Once a request gives up because the hub cannot be reached at all, the
//! rest of the pass is not sent (one error, not one per user); the next
//! pass tries again.

use super::executor::{Announce, Attempt, AttemptError, Call, Executor, GetVersion};
use super::gate::Gate;
use super::shutdown::Shutdown;
use crate::hub::retry::{GiveUp, Jitter, RetryDecision, RetryPolicy};
use crate::hub::{HubError, HubVersion};
use crate::logging::{info, warning, Log};
use crate::metrics::Metrics;
use actix::prelude::*;
use futures_util::future::{select, Either};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

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

/// One executor and its load: requests handed to it and not yet answered
/// (queued or on the wire).
struct Member {
    addr: Addr<Executor>,
    load: Cell<usize>,
}

struct Inner {
    members: Vec<Member>,
    /// One permit per executor: a request is handed to an executor only
    /// when one is free, reads first (see [`super::gate`]).
    gate: Rc<Gate>,
    retry: RetryPolicy,
    jitter: RefCell<Jitter>,
    shutdown: Rc<Shutdown>,
    metrics: Arc<Metrics>,
    /// Set when a request gave up because the hub is unreachable; cleared
    /// at the start of each pass.
    outage: RefCell<Option<HubError>>,
    log: Log,
}

/// The executors, shared by the actors that need the hub.
#[derive(Clone)]
pub struct ExecutorPool(Rc<Inner>);

impl ExecutorPool {
    /// A pool of the given executors.
    pub fn new(
        executors: Vec<Addr<Executor>>,
        retry: RetryPolicy,
        shutdown: Rc<Shutdown>,
        metrics: Arc<Metrics>,
        log: Log,
    ) -> Self {
        ExecutorPool(Rc::new(Inner {
            gate: Gate::new(executors.len()),
            members: executors
                .into_iter()
                .map(|addr| Member {
                    addr,
                    load: Cell::new(0),
                })
                .collect(),
            retry,
            jitter: RefCell::new(Jitter::new()),
            shutdown,
            metrics,
            outage: RefCell::new(None),
            log,
        }))
    }

    /// How many requests wait for an executor (see [`Gate::waiting`]).
    pub fn backlog(&self) -> usize {
        self.0.gate.waiting()
    }

    /// How many requests may be on the wire at once: `--concurrency`.
    pub fn size(&self) -> usize {
        self.0.members.len()
    }

    /// Resolves when a request's place on the wire comes free
    /// ([`Gate::released`]).
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.gate.released()
    }

    /// A new pass begins: a hub that was unreachable is tried again.
    pub fn begin_pass(&self) {
        self.0.outage.borrow_mut().take();
    }

    /// Whether a request of this pass gave up because the hub could not be
    /// reached (so the rest of the pass was not sent).
    pub fn found_hub_down(&self) -> bool {
        self.0.outage.borrow().is_some()
    }

    /// Asks the hub for its version once, whatever this pass found and
    /// without retrying or logging: how the Scheduler watches for a hub
    /// that stopped answering to come back.
    pub async fn probe(&self) -> Result<HubVersion, CommandError> {
        if self.0.shutdown.is_stopping() {
            return Err(CommandError::NotSent(NotSent::Stopping));
        }
        let attempt = Attempt {
            call: GetVersion,
            announce: None,
        };
        self.attempt(attempt).await.map_err(|err| match err {
            AttemptError::Hub(error) => CommandError::Hub(error),
            AttemptError::NotSent => CommandError::NotSent(NotSent::Stopping),
            AttemptError::Crashed => CommandError::Crashed,
        })
    }

    /// Sends `call` through an executor, retrying as the policy allows.
    /// `announce` is logged when the request first goes on the wire.
    pub async fn call<C: Call>(
        &self,
        call: C,
        mut announce: Option<Announce>,
    ) -> Result<C::Output, CommandError> {
        let inner = &self.0;
        let first = Instant::now();
        let mut retries = 0;
        loop {
            if inner.shutdown.is_stopping() {
                return Err(CommandError::NotSent(NotSent::Stopping));
            }
            if inner.outage.borrow().is_some() {
                return Err(CommandError::NotSent(NotSent::HubDown));
            }
            let attempt = Attempt {
                call: call.clone(),
                announce: announce.take(),
            };
            let error = match self.attempt(attempt).await {
                Ok(output) => {
                    if retries > 0 {
                        info!(
                            inner.log,
                            "{} succeeded on retry {retries}",
                            call.describe()
                        );
                    }
                    return Ok(output);
                }
                Err(AttemptError::NotSent) => return Err(CommandError::NotSent(NotSent::Stopping)),
                Err(AttemptError::Crashed) => return Err(CommandError::Crashed),
                Err(AttemptError::Hub(error)) => error,
            };
            let random = inner.jitter.borrow_mut().next_u64();
            match inner.retry.decide(&error, retries, first.elapsed(), random) {
                RetryDecision::GiveUp(GiveUp::Permanent) => return Err(CommandError::Hub(error)),
                RetryDecision::GiveUp(why) => {
                    if error.is_outage() {
                        inner.outage.borrow_mut().get_or_insert(error.clone());
                    }
                    return Err(CommandError::GaveUp { error, why });
                }
                RetryDecision::Wait(wait) => {
                    retries += 1;
                    inner.metrics.retry();
                    warning!(
                        inner.log,
                        "{error}; retry {retries} of {} in {:.1} s",
                        inner.retry.retries,
                        wait.as_secs_f64()
                    );
                    let sleep = std::pin::pin!(actix_rt::time::sleep(wait));
                    let stop = std::pin::pin!(inner.shutdown.stopped());
                    if let Either::Right(_) = select(sleep, stop).await {
                        return Err(CommandError::NotSent(NotSent::Stopping));
                    }
                }
            }
        }
    }

    /// One attempt, once the gate lets it on the wire, through an idle
    /// executor (the least busy one: with one permit per executor, an idle
    /// one is there).
    async fn attempt<C: Call>(&self, attempt: Attempt<C>) -> Result<C::Output, AttemptError> {
        let _permit = self.0.gate.enter(attempt.call.lane()).await;
        let member = &self.0.members[least_loaded(self.0.members.iter().map(|m| &m.load))];
        let _counted = Load::count(&member.load);
        let answer = member.addr.send(attempt).await;
        // A closed mailbox cannot happen under the Supervisor (it keeps the
        // mailbox across restarts); if it did, the work was lost with it.
        answer.unwrap_or(Err(AttemptError::Crashed))
    }
}

/// One request counted in an executor's load for as long as it lives, so
/// that a caller that goes away (its page abandoned) does not leave the
/// count raised for ever.
struct Load<'a>(&'a Cell<usize>);

impl<'a> Load<'a> {
    fn count(load: &'a Cell<usize>) -> Self {
        load.set(load.get() + 1);
        Load(load)
    }
}

impl Drop for Load<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// The index of the least loaded executor (the first of equals).
fn least_loaded<'a>(loads: impl Iterator<Item = &'a Cell<usize>>) -> usize {
    loads
        .enumerate()
        .min_by_key(|(_, load)| load.get())
        .map_or(0, |(index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(values: &[usize]) -> Vec<Cell<usize>> {
        values.iter().map(|&v| Cell::new(v)).collect()
    }

    /// The Lister reads the backlog and the size to decide whether to hand
    /// over another page: with every executor busy on a request the hub
    /// never answers, the requests beyond them wait at the gate.
    #[test]
    fn the_backlog_counts_the_requests_waiting_for_an_executor() {
        use super::super::executor::GetVersion;
        use super::super::guard::{RestartBudget, RestartLimit};
        use crate::hub::{ApiToken, HubClient, HubConfig};
        use crate::logging::Log;
        use std::time::Duration;

        // Accepts connections (the kernel does) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = silent.local_addr().expect("address").port();
        actix_rt::System::new().block_on(async move {
            let metrics = Metrics::new();
            let config = HubConfig {
                base_url: format!("http://127.0.0.1:{port}/hub/api"),
                token: ApiToken::new("token".into()),
                request_timeout: Duration::from_secs(60),
                tls: None,
            };
            let client = HubClient::new(&config, Arc::new(crate::hub::Unobserved));
            let shutdown = Shutdown::new();
            let budget = RestartBudget::new(RestartLimit::default(), Log::discard());
            let executors = (1..=3)
                .map(|n| {
                    Executor::new(
                        n,
                        client.clone(),
                        Rc::clone(&shutdown),
                        Rc::clone(&budget),
                        Log::discard(),
                    )
                    .start()
                })
                .collect();
            let pool = ExecutorPool::new(
                executors,
                RetryPolicy::default(),
                shutdown,
                metrics,
                Log::discard(),
            );
            assert_eq!((pool.size(), pool.backlog()), (3, 0));
            for _ in 0..5 {
                let pool = pool.clone();
                actix_rt::spawn(async move { pool.call(GetVersion, None).await });
            }
            // Each spawned call reaches the gate in its first poll.
            for _ in 0..100 {
                if pool.backlog() == 2 {
                    break;
                }
                actix_rt::task::yield_now().await;
            }
            assert_eq!((pool.size(), pool.backlog()), (3, 2));
        });
        drop(silent);
    }

    #[test]
    fn the_least_loaded_executor_is_chosen_first_of_equals() {
        assert_eq!(least_loaded(loads(&[2, 0, 1]).iter()), 1);
        assert_eq!(least_loaded(loads(&[1, 1]).iter()), 0);
    }

    #[test]
    fn a_request_counts_in_the_load_until_it_is_answered_or_abandoned() {
        let load = Cell::new(0);
        let counted = Load::count(&load);
        assert_eq!(load.get(), 1);
        drop(counted);
        assert_eq!(load.get(), 0);
    }
}
