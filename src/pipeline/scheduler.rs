//! The Scheduler: starts a pass at start-up and then every `--cull-every`,
//! never two at once, and logs each pass's summary. With `--once` it stops
//! the program after the first pass, with the exit code saying how it went.
//! It also ends the graceful stop: asked to stop, it lets the pass in
//! progress finish what is on the wire (at most `--stop-timeout`), then
//! stops the program.
//!
//! A pass that did not see every user (the hub's version could not be
//! read, a listing ended early or skipped a page) is followed by another
//! sooner than `--cull-every`: after [`RETRY_PASS_AFTER`], doubling with
//! each such pass in a row, up to `--cull-every`. When the hub was not
//! answering at all, the Scheduler also asks it for its version every
//! [`PROBE_EVERY`], quietly, and starts the pass as soon as it answers:
//! however long the hub was down, culling resumes within seconds of its
//! return.

use super::chaos::{self, Site};
use super::guard::{self, guarded, RestartBudget, Restartable};
use super::lister::{Lister, RunPass};
use super::pool::ExecutorPool;
use super::shutdown::Shutdown;
use super::Tally;
use crate::exit::{Exit, Signal};
use crate::logging::{error, info, warning, Log};
use crate::metrics::{Metrics, PassCounts, PassOutcome};
use actix::prelude::*;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The wait before the pass that follows a pass that did not see every
/// user; it doubles with each such pass in a row, up to `--cull-every`.
pub const RETRY_PASS_AFTER: Duration = Duration::from_secs(2);

/// How often a hub that stopped answering is asked for its version (one
/// cheap request, not retried, not logged), so that a pass starts as soon
/// as it answers again.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);

/// The wait before the next pass after `failures` passes in a row that did
/// not see every user (at least 1): [`RETRY_PASS_AFTER`] doubled for each
/// but the first, never longer than `every`.
pub fn pass_backoff(failures: u32, every: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    RETRY_PASS_AFTER
        .saturating_mul(1u32 << doublings)
        .min(every)
}

/// Time to start a pass.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Tick;

/// A signal asked the culler to stop.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Stop(pub Signal);

/// When passes run, and how they are reported.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Time between the starts of two passes (`--cull-every`).
    pub every: Duration,
    /// One pass, then stop the program (`--once`).
    pub once: bool,
    /// `--dry-run`: the summary says "would be culled".
    pub dry_run: bool,
    /// `--stop-timeout`: how long a stop lets the requests on the wire
    /// finish.
    pub stop_timeout: Duration,
}

/// Times the passes.
pub struct Scheduler {
    lister: Addr<Lister>,
    /// Where the probes of a hub that stopped answering go.
    pool: ExecutorPool,
    schedule: Schedule,
    /// Where passes are counted (`/metrics`, `/health`).
    metrics: Arc<Metrics>,
    /// When the pass in progress started.
    running: Option<Instant>,
    /// Passes in a row that did not see every user.
    failures: u32,
    /// Set while the hub is not answering.
    hub_down: Option<HubDown>,
    shutdown: Rc<Shutdown>,
    budget: Rc<RestartBudget>,
    log: Log,
}

/// A hub that stopped answering, watched for its return.
struct HubDown {
    /// When the pass that found it down started.
    since: Instant,
    /// The next pass, due after the backoff; started at once instead (and
    /// this one cancelled) when a probe finds the hub back.
    next_pass: SpawnHandle,
}

impl Scheduler {
    /// A scheduler running passes through `lister` as `schedule` says.
    pub fn new(
        lister: Addr<Lister>,
        pool: ExecutorPool,
        schedule: Schedule,
        shutdown: Rc<Shutdown>,
        metrics: Arc<Metrics>,
        budget: Rc<RestartBudget>,
        log: Log,
    ) -> Self {
        Scheduler {
            lister,
            pool,
            schedule,
            metrics,
            running: None,
            failures: 0,
            hub_down: None,
            shutdown,
            budget,
            log,
        }
    }

    /// How the process ends after a stop asked by `signal`: a daemon asked
    /// to stop did its job; a `--once` pass cut short did not.
    fn stop_code(&self, signal: Signal) -> i32 {
        if self.schedule.once {
            Exit::Interrupted(signal).code()
        } else {
            Exit::Clean.code()
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The first pass runs at once, as upstream's does (and a restarted
        // scheduler starts afresh).
        ctx.notify(Tick);
    }
}

impl Supervised for Scheduler {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        guard::restarting(self);
    }
}

impl Restartable for Scheduler {
    fn name(&self) -> String {
        "scheduler".to_owned()
    }
    fn log(&self) -> &Log {
        &self.log
    }
    fn budget(&self) -> &RestartBudget {
        &self.budget
    }
    fn restarted(&mut self) {
        self.running = None;
        self.failures = 0;
        self.hub_down = None;
    }
}

impl Handler<Tick> for Scheduler {
    /// Not atomic: a `Stop` is handled while the pass runs.
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _tick: Tick, _ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            |scheduler| {
                let pass = if scheduler.shutdown.is_stopping() {
                    None
                } else if scheduler.running.is_some() {
                    info!(
                        scheduler.log,
                        "Previous pass still running; not starting another"
                    );
                    None
                } else {
                    let started = Instant::now();
                    scheduler.running = Some(started);
                    Some((started, scheduler.lister.send(RunPass)))
                };
                async move {
                    match pass {
                        Some((started, pass)) => Some((started, pass.await)),
                        None => None,
                    }
                }
            },
            // The scheduler crashed: it restarts and runs a new pass.
            || None,
        )
        .map(|pass, scheduler, ctx| {
            // Only the tick that started a pass finishes it.
            let Some((started, answer)) = pass else {
                return;
            };
            guard::contained(scheduler, ctx, |scheduler, ctx| {
                chaos::maybe_panic(Site::Scheduler);
                scheduler.running = None;
                let tally = answer.unwrap_or_else(|err| {
                    error!(scheduler.log, "The lister did not answer: {err}");
                    Tally::failure()
                });
                scheduler.finish(tally, started, ctx);
            });
        })
        .boxed_local()
    }
}

impl Scheduler {
    /// Logs a finished pass, then schedules the next, or ends the program.
    fn finish(&mut self, tally: Tally, started: Instant, ctx: &mut Context<Self>) {
        let outcome = if self.shutdown.is_stopping() {
            PassOutcome::Interrupted
        } else if tally.errors == 0 {
            PassOutcome::Success
        } else {
            PassOutcome::Failure
        };
        // A dry run stops and deletes nothing: its "would be culled" counts
        // are not culls.
        let culled = |n: u64| if self.schedule.dry_run { 0 } else { n };
        self.metrics.pass_finished(
            outcome,
            started.elapsed(),
            PassCounts {
                users_seen: tally.users_seen,
                servers_seen: tally.servers_seen,
                servers_stopped: culled(tally.servers_culled + tally.servers_still_stopping),
                named_servers_removed: culled(tally.named_servers_removed),
                users_deleted: culled(tally.users_culled),
                errors: tally.errors,
            },
        );
        let took = started.elapsed().as_secs_f64();
        if let Some(signal) = self.shutdown.requested() {
            warning!(
                self.log,
                "Pass interrupted by {} after {took:.2} s: {tally}",
                signal.name()
            );
            System::current().stop_with_code(self.stop_code(signal));
            return;
        }
        if self.schedule.dry_run {
            info!(
                self.log,
                "Dry run finished in {took:.2} s: {}",
                tally.dry_run_summary()
            );
        } else {
            info!(self.log, "Pass finished in {took:.2} s: {tally}");
        }
        if self.schedule.once {
            let exit = if tally.errors == 0 {
                Exit::Clean
            } else {
                Exit::PassFailed
            };
            System::current().stop_with_code(exit.code());
        } else if tally.is_complete() {
            if let Some(down) = self.hub_down.take() {
                info!(
                    self.log,
                    "The hub answers again after {:.0} s",
                    down.since.elapsed().as_secs_f64()
                );
            }
            self.failures = 0;
            // Passes start `every` apart; a pass longer than that is
            // followed at once by the next one.
            ctx.notify_later(Tick, self.schedule.every.saturating_sub(started.elapsed()));
        } else {
            self.failures += 1;
            let wait = pass_backoff(self.failures, self.schedule.every);
            let next_pass = ctx.notify_later(Tick, wait);
            if !tally.hub_down {
                self.hub_down = None;
                info!(
                    self.log,
                    "Not every user was seen; the next pass starts in {} s",
                    wait.as_secs()
                );
                return;
            }
            let since = match self.hub_down.take() {
                Some(down) => down.since,
                None => {
                    warning!(
                        self.log,
                        "The hub is not answering; asking it every {} s and culling as soon as it answers (the next pass starts in {} s otherwise)",
                        PROBE_EVERY.as_secs(),
                        wait.as_secs()
                    );
                    started
                }
            };
            self.hub_down = Some(HubDown { since, next_pass });
            ctx.run_later(PROBE_EVERY, Self::probe);
        }
    }

    /// Asks a hub that stopped answering for its version; when it answers,
    /// the pass due later starts now. Probes stop while a pass runs (its
    /// end decides again) and when the culler stops.
    fn probe(&mut self, ctx: &mut Context<Self>) {
        if self.hub_down.is_none() || self.running.is_some() || self.shutdown.is_stopping() {
            return;
        }
        let pool = self.pool.clone();
        let probe = async move { pool.probe().await };
        ctx.spawn(probe.into_actor(self).map(|answer, scheduler, ctx| {
            if scheduler.running.is_some() {
                return;
            }
            match (answer, scheduler.hub_down.take()) {
                (Ok(version), Some(down)) => {
                    ctx.cancel_future(down.next_pass);
                    info!(
                        scheduler.log,
                        "The hub answers again (JupyterHub {version}) after {:.0} s; starting a pass",
                        down.since.elapsed().as_secs_f64()
                    );
                    ctx.notify(Tick);
                }
                (Err(_), Some(down)) => {
                    scheduler.hub_down = Some(down);
                    ctx.run_later(PROBE_EVERY, Self::probe);
                }
                (_, None) => {}
            }
        }));
    }
}

impl Handler<Stop> for Scheduler {
    type Result = ();

    fn handle(&mut self, Stop(signal): Stop, ctx: &mut Context<Self>) {
        if self.running.is_none() {
            info!(
                self.log,
                "Received {} between passes; stopping",
                signal.name()
            );
            System::current().stop_with_code(self.stop_code(signal));
            return;
        }
        let limit = self.schedule.stop_timeout;
        info!(
            self.log,
            "Received {}: finishing the requests in flight (at most {} s), starting nothing new",
            signal.name(),
            Seconds(limit)
        );
        ctx.run_later(limit, move |scheduler, _ctx| {
            let left = scheduler.shutdown.in_flight();
            error!(
                scheduler.log,
                "Stopping with {} requests unanswered after {} s: {}",
                left.len(),
                Seconds(limit),
                left.join(", ")
            );
            System::current().stop_with_code(scheduler.stop_code(signal));
        });
    }
}

/// A span in seconds as operators write it: `8`, or `0.5`.
struct Seconds(Duration);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.0.as_secs_f64();
        if secs.fract() == 0.0 {
            write!(f, "{secs:.0}")
        } else {
            write!(f, "{secs}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_that_missed_users_is_followed_sooner_doubling_up_to_cull_every() {
        let every = Duration::from_secs(600);
        let waits: Vec<u64> = (1..=11)
            .map(|failures| pass_backoff(failures, every).as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        // No overflow, however long the streak.
        assert_eq!(pass_backoff(u32::MAX, every), every);
        // Never longer than --cull-every, even the first.
        let every = Duration::from_secs(1);
        assert_eq!(pass_backoff(1, every), every);
    }
}
