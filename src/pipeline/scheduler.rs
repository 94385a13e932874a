//! The Scheduler: starts a pass at start-up and then every `--cull-every`,
//! never two at once, and logs each pass's summary. With `--once` it stops
//! the program after the first pass, with the exit code saying how it went.
//! Asked to stop (by the Supervisor, on a signal), it starts nothing new,
//! says whether a pass is running, and when that pass ends asks the
//! Supervisor to end the process.
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
use super::guard::{self, guarded, Restartable, Restarted};
use super::lister::{Lister, RunPass};
use super::pool::Pool;
use super::Tally;
use crate::exit::{Exit, Signal};
use crate::logging::{error, info, warning, Log};
use crate::metrics::{Metrics, PassCounts, PassOutcome};
use crate::notify::PassEnded;
use actix::prelude::*;
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

/// A signal asked the culler to stop: start nothing new. Answered with
/// whether a pass is running (its end will be told to the Supervisor).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "bool")]
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
}

/// Times the passes.
pub struct Scheduler {
    lister: Addr<Lister>,
    /// Where the probes of a hub that stopped answering go.
    pool: Pool,
    schedule: Schedule,
    /// Who ends the process (the Supervisor).
    ends: Recipient<Exit>,
    /// Who counts this actor's restarts (the Supervisor).
    restarts: Recipient<Restarted>,
    /// Where passes are counted (`/metrics`, `/health`).
    metrics: Arc<Metrics>,
    /// When the pass in progress started.
    running: Option<Instant>,
    /// Passes in a row that did not see every user.
    failures: u32,
    /// Set while the hub is not answering.
    hub_down: Option<HubDown>,
    /// The signal that asked for the stop, once one did.
    stopping: Option<Signal>,
    /// Who logs a pass's undelivered events when it ends (the Notifier).
    pass_ends: Option<Recipient<PassEnded>>,
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
        pool: Pool,
        schedule: Schedule,
        ends: Recipient<Exit>,
        restarts: Recipient<Restarted>,
        metrics: Arc<Metrics>,
        log: Log,
    ) -> Self {
        Scheduler {
            lister,
            pool,
            schedule,
            ends,
            restarts,
            metrics,
            running: None,
            failures: 0,
            hub_down: None,
            stopping: None,
            pass_ends: None,
            log,
        }
    }

    /// The same scheduler, telling `pass_ends` when each pass ends.
    pub fn telling_pass_ends_to(mut self, pass_ends: Option<Recipient<PassEnded>>) -> Self {
        self.pass_ends = pass_ends;
        self
    }

    /// How the process ends after a stop asked by `signal`: a daemon asked
    /// to stop did its job; a `--once` pass cut short did not.
    fn stop_code(&self, signal: Signal) -> Exit {
        if self.schedule.once {
            Exit::Interrupted(signal)
        } else {
            Exit::Clean
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The first pass runs at once, as upstream's does (and a restarted
        // scheduler starts afresh), from the next turn of the event loop: a
        // scheduler that failed as it started would otherwise be restarted
        // within one poll, again and again, and the Supervisor would never
        // get to count it.
        ctx.run_later(Duration::ZERO, |_, ctx| ctx.notify(Tick));
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
    fn restarts(&self) -> &Recipient<Restarted> {
        &self.restarts
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
                let pass = if scheduler.stopping.is_some() {
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
    /// Logs a finished pass, then schedules the next, or asks the
    /// Supervisor to end the program.
    fn finish(&mut self, tally: Tally, started: Instant, ctx: &mut Context<Self>) {
        let outcome = if self.stopping.is_some() {
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
        if let Some(pass_ends) = &self.pass_ends {
            pass_ends.do_send(PassEnded);
        }
        if let Some(signal) = self.stopping {
            warning!(
                self.log,
                "Pass interrupted by {} after {took:.2} s: {tally}",
                signal.name()
            );
            self.ends.do_send(self.stop_code(signal));
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
        if tally.fatal {
            // The culler cannot work as configured (the Lister said why).
            self.ends.do_send(Exit::Usage);
        } else if self.schedule.once {
            let exit = if tally.errors == 0 {
                Exit::Clean
            } else {
                Exit::PassFailed
            };
            self.ends.do_send(exit);
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
        if self.hub_down.is_none() || self.running.is_some() || self.stopping.is_some() {
            return;
        }
        let pool = self.pool.clone();
        let probe = async move { pool.probe().await };
        ctx.spawn(probe.into_actor(self).map(|answer, scheduler, ctx| {
            if scheduler.running.is_some() || scheduler.stopping.is_some() {
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
    type Result = bool;

    fn handle(&mut self, Stop(signal): Stop, _ctx: &mut Context<Self>) -> bool {
        self.stopping = Some(signal);
        self.running.is_some()
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
