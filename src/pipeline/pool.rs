//! The executor pool: the one owner of `--concurrency`, and of retries.
//!
//! Every request to the hub goes through [`ExecutorPool::call`], which hands
//! it to the least busy executor that is up. The pool holds exactly
//! `--concurrency` executors, each sending one request at a time, so no more
//! than that many requests are ever outstanding: lists and deletes alike,
//! whichever actor asked. Nothing else limits requests (the HTTP client's
//! own connection limit is off), so a broken bound shows in the tests.
//!
//! A request that fails in a way that may pass on a second try is sent
//! again within the pass, after a jittered backoff ([`RetryPolicy`]), each
//! retry logged at WARN with its reason. Waiting does not hold an executor.
//! Once a request gives up because the hub cannot be reached at all, the
//! rest of the pass is not sent (one error, not one per user); the next
//! pass tries again.

use super::executor::{Attempt, AttemptError, Call, Executor, Health};
use super::shutdown::Shutdown;
use crate::hub::retry::{GiveUp, Jitter, RetryDecision, RetryPolicy};
use crate::hub::HubError;
use crate::logging::{info, warning, Log};
use actix::prelude::*;
use futures_util::future::{select, Either};
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
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

/// One executor and what the pool knows of it.
struct Member {
    addr: Addr<Executor>,
    health: Rc<Health>,
}

struct Inner {
    members: Vec<Member>,
    retry: RetryPolicy,
    jitter: RefCell<Jitter>,
    shutdown: Rc<Shutdown>,
    /// Set when a request gave up because the hub is unreachable; cleared
    /// at the start of each pass.
    outage: RefCell<Option<HubError>>,
    log: Log,
}

/// The executors, shared by the actors that need the hub.
#[derive(Clone)]
pub struct ExecutorPool(Rc<Inner>);

impl ExecutorPool {
    /// A pool of the given executors with their health records.
    pub fn new(
        executors: Vec<(Addr<Executor>, Rc<Health>)>,
        retry: RetryPolicy,
        shutdown: Rc<Shutdown>,
        log: Log,
    ) -> Self {
        ExecutorPool(Rc::new(Inner {
            members: executors
                .into_iter()
                .map(|(addr, health)| Member { addr, health })
                .collect(),
            retry,
            jitter: RefCell::new(Jitter::new()),
            shutdown,
            outage: RefCell::new(None),
            log,
        }))
    }

    /// How many executors there are: the most requests in flight at once.
    pub fn len(&self) -> usize {
        self.0.members.len()
    }

    /// Whether the pool is empty (never, once started).
    pub fn is_empty(&self) -> bool {
        self.0.members.is_empty()
    }

    /// A new pass begins: a hub that was unreachable is tried again.
    pub fn begin_pass(&self) {
        self.0.outage.borrow_mut().take();
    }

    /// Sends `call` through an executor, retrying as the policy allows.
    /// `announce` is logged when the request first goes on the wire.
    pub async fn call<C: Call>(
        &self,
        call: C,
        mut announce: Option<String>,
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

    /// One attempt through the least busy executor that is up.
    async fn attempt<C: Call>(&self, attempt: Attempt<C>) -> Result<C::Output, AttemptError> {
        let member = &self.0.members[pick(self.0.members.iter().map(|m| &*m.health))];
        let _counted = Load::count(&member.health);
        let answer = member.addr.send(attempt).await;
        // A closed mailbox cannot happen under the Supervisor (it keeps the
        // mailbox across restarts); if it did, the work was lost with it.
        answer.unwrap_or(Err(AttemptError::Crashed))
    }
}

/// One request counted in an executor's load for as long as it lives, so
/// that a caller that goes away (its page abandoned) does not leave the
/// count raised for ever.
struct Load<'a>(&'a Health);

impl<'a> Load<'a> {
    fn count(health: &'a Health) -> Self {
        health.load.set(health.load.get() + 1);
        Load(health)
    }
}

impl Drop for Load<'_> {
    fn drop(&mut self) {
        self.0.load.set(self.0.load.get() - 1);
    }
}

/// The member to use: the least loaded of those up, or, while every one is
/// restarting, the least loaded of all (its restart takes the queue over).
fn pick<'a>(members: impl Iterator<Item = &'a Health> + Clone) -> usize {
    let least = |up_only: bool| {
        members
            .clone()
            .enumerate()
            .filter(|(_, health)| !up_only || health.up.get())
            .min_by_key(|(_, health)| health.load.get())
            .map(|(index, _)| index)
    };
    least(true).or_else(|| least(false)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn health(load: usize, up: bool) -> Health {
        Health {
            load: Cell::new(load),
            up: Cell::new(up),
        }
    }

    #[test]
    fn the_least_loaded_executor_that_is_up_is_chosen() {
        let members = [health(2, true), health(0, false), health(1, true)];
        assert_eq!(pick(members.iter()), 2);
        let members = [health(1, true), health(1, true)];
        assert_eq!(pick(members.iter()), 0, "ties go to the first");
    }

    #[test]
    fn a_request_counts_in_the_load_until_it_is_answered_or_abandoned() {
        let member = health(0, true);
        let counted = Load::count(&member);
        assert_eq!(member.load.get(), 1);
        drop(counted);
        assert_eq!(member.load.get(), 0);
    }

    #[test]
    fn while_all_are_down_the_least_loaded_queue_is_used() {
        let members = [health(3, false), health(1, false)];
        assert_eq!(pick(members.iter()), 1);
    }
}
