//! The Supervisor: the actor that starts the pipeline, keeps it running,
//! stops it, and is the one place that ends the process.
//!
//! It starts every other actor under [`actix::Supervisor`], which restarts
//! an actor in place (same address and mailbox, so senders keep working)
//! whenever its context stops; [`super::guard`] makes a panic stop it, and
//! each restart is told to this actor, which counts it against its
//! [`RestartBudget`] and ends a crash-looping process (exit 3) so that
//! JupyterHub or Kubernetes starts a fresh one.
//!
//! It also owns the graceful stop: the first SIGINT or SIGTERM makes the
//! pool send nothing new and the Scheduler start nothing new; what is on
//! the wire may finish for `--stop-timeout`, after which what is left is
//! named and the process ends; a second signal ends it at once. Every other
//! actor that wants the process to end (a `--once` pass done, a pass
//! interrupted, a token that cannot be used) asks this one by sending it the [`Exit`].

use super::evaluator::{Evaluator, Mode};
use super::executor::Executor;
use super::guard::{RestartBudget, RestartLimit, Restarted};
use super::lister::Lister;
use super::pool::{ExecutorPool, InFlight, Pool, Stopping};
use super::scheduler::{Schedule, Scheduler, Stop};
use crate::exit::{Exit, Signal};
use crate::hub::{HubClient, Observer};
use crate::logging::{error, info, warning, Log};
use crate::metrics::Metrics;
use crate::notify::{Drain, Notifier, QUEUE};
use crate::report::Records;
use crate::rules::{required_scopes, ScopeNeed};
use crate::settings::Settings;
use actix::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stop signal arrived.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
struct Received(Signal);

/// The addresses of the running pipeline.
struct Pipeline {
    scheduler: Addr<Scheduler>,
    pool: Addr<ExecutorPool>,
    /// Where events go, when they go anywhere.
    notifier: Option<Addr<Notifier>>,
}

/// The Supervisor; see the module documentation.
pub struct Supervisor {
    settings: Settings,
    metrics: Arc<Metrics>,
    log: Log,
    budget: RestartBudget,
    pipeline: Option<Pipeline>,
    /// The signal that began the stop, once one did, and when.
    stopping: Option<Signal>,
    stop_began: Option<Instant>,
    /// Whether the process is ending already.
    ending: bool,
}

impl Supervisor {
    /// A supervisor that will run the pipeline `settings` describe, once
    /// started.
    pub fn new(settings: Settings, metrics: Arc<Metrics>, log: Log) -> Self {
        Supervisor {
            settings,
            metrics,
            log,
            budget: RestartBudget::new(RestartLimit::default()),
            pipeline: None,
            stopping: None,
            stop_began: None,
            ending: false,
        }
    }

    /// Ends the process: the one place that does. Events still queued
    /// for the receivers are delivered first, within `--stop-timeout` (from
    /// the stop signal, when one began the stop; not when the culler gives
    /// up: it may be what fails).
    fn end(&mut self, exit: Exit, ctx: &mut Context<Self>) {
        if self.ending {
            return;
        }
        self.ending = true;
        let notifier = self.pipeline.as_ref().and_then(|p| p.notifier.clone());
        let limit = match self.stop_began {
            Some(began) => self.settings.stop_timeout.saturating_sub(began.elapsed()),
            None => self.settings.stop_timeout,
        };
        match notifier {
            Some(notifier) if exit != Exit::GaveUp && !limit.is_zero() => {
                let drained = async move {
                    actix_rt::time::timeout(limit, notifier.send(Drain))
                        .await
                        .is_ok()
                };
                ctx.spawn(drained.into_actor(self).map(move |drained, supervisor, _| {
                    if !drained {
                        warning!(
                            supervisor.log,
                            "Stopping with events not delivered (--stop-timeout={} s)",
                            Seconds(supervisor.settings.stop_timeout)
                        );
                    }
                    System::current().stop_with_code(exit.code());
                }));
            }
            _ => System::current().stop_with_code(exit.code()),
        }
    }

    /// How a stop asked by `signal` ends the process: a daemon asked to stop
    /// did its job; a `--once` pass cut short did not.
    fn stop_code(&self, signal: Signal) -> Exit {
        if self.settings.once {
            Exit::Interrupted(signal)
        } else {
            Exit::Clean
        }
    }

    /// Starts every actor of the pipeline on the current arbiter (one
    /// thread is plenty for a network-bound service and lets them share
    /// one HTTP client and its connection pool).
    fn start_pipeline(&self, ctx: &mut Context<Self>) -> Pipeline {
        let settings = &self.settings;
        let me = ctx.address();
        let restarts: Recipient<Restarted> = me.clone().recipient();
        let client = HubClient::new(
            &settings.hub,
            Arc::clone(&self.metrics) as Arc<dyn Observer>,
        );
        let executors = (1..=settings.concurrency.max(1))
            .map(|number| {
                let (client, restarts, log) = (client.clone(), restarts.clone(), self.log.clone());
                actix::Supervisor::start(move |_| Executor::new(number, client, restarts, log))
            })
            .collect();
        let pool_addr = ExecutorPool::new(
            executors,
            settings.retry,
            Arc::clone(&self.metrics),
            self.log.clone(),
        )
        .start();
        let pool = Pool::new(pool_addr.clone(), self.log.clone());
        let notifier = settings.notify.as_ref().map(|notify| {
            Notifier::new(
                notify.receivers.clone(),
                notify.tls.clone(),
                QUEUE,
                Arc::clone(&self.metrics),
                self.log.clone(),
            )
            .start()
        });
        let evaluator = {
            let (policy, pool, restarts, log) = (
                settings.policy.clone(),
                pool.clone(),
                restarts.clone(),
                self.log.clone(),
            );
            let metrics = Arc::clone(&self.metrics);
            let (dry_run, json_output) = (settings.dry_run, settings.json_output);
            let events = notifier.clone().map(Addr::recipient);
            actix::Supervisor::start(move |_| {
                let mode = Mode {
                    dry_run,
                    records: json_output.then(Records::stdout),
                    events,
                };
                Evaluator::new(policy, pool, mode, Arc::clone(&metrics), restarts, log)
            })
        };
        let lister = {
            let (pool, evaluator, restarts, log) = (
                pool.clone(),
                evaluator.clone(),
                restarts.clone(),
                self.log.clone(),
            );
            let (page_size, cull_users) = (settings.api_page_size, settings.policy.cull_users);
            let pending_too = settings.policy.stuck_after_secs.is_some();
            let mut needs = required_scopes(&settings.policy.rules);
            if settings.policy.asks_servers() {
                needs.push(ScopeNeed {
                    rule: "--activity=server".to_owned(),
                    field: "what runs inside each server (through the proxy)",
                    scope: "access:servers",
                    implied_by: &[],
                });
            }
            actix::Supervisor::start(move |_| {
                Lister::new(
                    pool,
                    evaluator,
                    page_size,
                    cull_users,
                    pending_too,
                    needs,
                    restarts,
                    log,
                )
            })
        };
        let scheduler = {
            let schedule = Schedule {
                every: settings.cull_every,
                once: settings.once,
                dry_run: settings.dry_run,
            };
            let (ends, metrics, log) =
                (me.recipient(), Arc::clone(&self.metrics), self.log.clone());
            let passes = notifier.clone().map(Addr::recipient);
            actix::Supervisor::start(move |_| {
                Scheduler::new(lister, pool, schedule, ends, restarts, metrics, log)
                    .telling_pass_ends_to(passes)
            })
        };
        Pipeline {
            scheduler,
            pool: pool_addr,
            notifier,
        }
    }

    /// The first SIGINT or SIGTERM begins the graceful stop; a second one
    /// stops at once.
    ///
    /// Installing handlers matters even though both signals end a process
    /// by default: a process started in the background by a shell inherits
    /// SIGINT *ignored*, and JupyterHub stops its managed services with
    /// SIGINT, so without a handler the hub waits its whole
    /// `interrupt_timeout` for us.
    fn handle_signals(&self, ctx: &mut Context<Self>) {
        use actix_rt::signal::unix::{signal, SignalKind};
        for (kind, which) in [
            (SignalKind::interrupt(), Signal::Interrupt),
            (SignalKind::terminate(), Signal::Terminate),
        ] {
            match signal(kind) {
                Ok(mut stream) => {
                    let me = ctx.address();
                    actix_rt::spawn(async move {
                        while stream.recv().await.is_some() {
                            me.do_send(Received(which));
                        }
                    });
                }
                Err(err) => warning!(
                    self.log,
                    "Cannot handle {} ({err}); it will end the culler abruptly",
                    which.name()
                ),
            }
        }
    }

    /// The line that says what runs.
    fn log_start(&self) {
        let settings = &self.settings;
        let mut schedule = if settings.once {
            "once".to_owned()
        } else {
            format!("every {} s", settings.cull_every.as_secs())
        };
        match settings.policy.rules.len() {
            0 => {}
            1 => schedule.push_str(", with 1 policy rule"),
            n => schedule.push_str(&format!(", with {n} policy rules")),
        }
        if settings.dry_run {
            schedule.push_str(" (dry run: nothing is stopped or deleted)");
        }
        info!(
            self.log,
            "Culling servers idle for {} s, {schedule}, via {} ({} requests at most at once)",
            settings.policy.timeout_secs,
            settings.hub.base_url,
            settings.concurrency
        );
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Restarts and ends are told here by every actor: none should wait
        // for room in this mailbox.
        ctx.set_mailbox_capacity(0); // 0: unbounded
        let pipeline = self.start_pipeline(ctx);
        self.pipeline = Some(pipeline);
        self.log_start();
        self.handle_signals(ctx);
    }
}

impl Handler<Restarted> for Supervisor {
    type Result = ();

    fn handle(&mut self, Restarted { who }: Restarted, ctx: &mut Context<Self>) {
        if self.budget.admit(Instant::now()) {
            return;
        }
        let limit = self.budget.limit();
        error!(
            self.log,
            "The {who} failed again: more than {} restarts in {} s; exiting so that a fresh culler is started (JupyterHub restarts its managed services; Kubernetes its pods)",
            limit.restarts,
            limit.window.as_secs()
        );
        self.end(Exit::GaveUp, ctx);
    }
}

impl Handler<Exit> for Supervisor {
    type Result = ();

    fn handle(&mut self, exit: Exit, ctx: &mut Context<Self>) {
        self.end(exit, ctx);
    }
}

impl Handler<Received> for Supervisor {
    type Result = ();

    fn handle(&mut self, Received(signal): Received, ctx: &mut Context<Self>) {
        if self.stopping.is_some() {
            warning!(self.log, "Received {} again: stopping now", signal.name());
            // Even while queued events are being delivered.
            self.ending = true;
            System::current().stop_with_code(self.stop_code(signal).code());
            return;
        }
        self.stopping = Some(signal);
        self.stop_began = Some(Instant::now());
        let Some(pipeline) = &self.pipeline else {
            let exit = self.stop_code(signal);
            self.end(exit, ctx);
            return;
        };
        pipeline.pool.do_send(Stopping);
        let limit = self.settings.stop_timeout;
        let scheduler = pipeline.scheduler.clone();
        let stop = async move { scheduler.send(Stop(signal)).await.unwrap_or(false) };
        ctx.spawn(stop.into_actor(self).map(move |pass_running, supervisor, ctx| {
            if !pass_running {
                info!(
                    supervisor.log,
                    "Received {} between passes; stopping",
                    signal.name()
                );
                let exit = supervisor.stop_code(signal);
                supervisor.end(exit, ctx);
                return;
            }
            info!(
                supervisor.log,
                "Received {}: finishing the requests in flight (at most {} s), starting nothing new",
                signal.name(),
                Seconds(limit)
            );
            ctx.run_later(limit, move |supervisor, ctx| {
                let Some(pipeline) = &supervisor.pipeline else {
                    return;
                };
                let pool = pipeline.pool.clone();
                let left = async move { pool.send(InFlight).await.unwrap_or_default() };
                ctx.spawn(left.into_actor(supervisor).map(move |left, supervisor, ctx| {
                    error!(
                        supervisor.log,
                        "Stopping with {} requests unanswered after {} s: {}",
                        left.len(),
                        Seconds(limit),
                        left.join(", ")
                    );
                    let exit = supervisor.stop_code(signal);
                    supervisor.end(exit, ctx);
                }));
            });
        }));
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
