//! The Supervisor: builds the pipeline, keeps it running, and stops it.
//!
//! Every actor is started under [`actix::Supervisor`], which restarts an
//! actor in place (same address and mailbox, so senders keep working)
//! whenever its context stops; [`super::guard`] makes a panic stop it, and
//! counts restarts against a budget that ends a crash-looping process.
//! Signals begin the graceful stop ([`super::shutdown`]): the first SIGINT
//! or SIGTERM lets the requests on the wire finish, a second one stops at
//! once.

use super::evaluator::{Evaluator, Mode};
use super::executor::Executor;
use super::guard::{RestartBudget, RestartLimit};
use super::lister::Lister;
use super::pool::ExecutorPool;
use super::scheduler::{Schedule, Scheduler, Stop};
use super::shutdown::Shutdown;
use crate::exit::{Exit, Signal};
use crate::hub::{HubClient, Observer};
use crate::logging::{info, warning, Log};
use crate::metrics::Metrics;
use crate::report::Records;
use crate::rules::required_scopes;
use crate::settings::Settings;
use actix::prelude::*;
use std::rc::Rc;
use std::sync::Arc;

/// The addresses of the running pipeline.
pub struct Pipeline {
    /// Times the passes.
    pub scheduler: Addr<Scheduler>,
    /// Walks the user lists.
    pub lister: Addr<Lister>,
    /// Judges users.
    pub evaluator: Addr<Evaluator>,
    /// Sends every request to the hub.
    pub executors: ExecutorPool,
    /// The graceful stop's state.
    pub shutdown: Rc<Shutdown>,
}

/// Starts every actor on the current arbiter (one thread is plenty for a
/// network-bound service and lets them share one HTTP client and its
/// connection pool) and returns their addresses.
pub fn start(settings: &Settings, log: &Log, metrics: &Arc<Metrics>) -> Pipeline {
    let shutdown = Shutdown::new();
    let budget = RestartBudget::new(RestartLimit::default(), log.clone());
    let client = HubClient::new(&settings.hub, Arc::clone(metrics) as Arc<dyn Observer>);
    let executors = ExecutorPool::new(
        (1..=settings.concurrency.max(1))
            .map(|number| {
                let (client, shutdown, budget, log) = (
                    client.clone(),
                    Rc::clone(&shutdown),
                    Rc::clone(&budget),
                    log.clone(),
                );
                actix::Supervisor::start(move |_| {
                    Executor::new(number, client, shutdown, budget, log)
                })
            })
            .collect(),
        settings.retry,
        Rc::clone(&shutdown),
        Arc::clone(metrics),
        log.clone(),
    );
    let evaluator = {
        let (policy, pool, budget, log) = (
            settings.policy.clone(),
            executors.clone(),
            Rc::clone(&budget),
            log.clone(),
        );
        let (dry_run, json_output) = (settings.dry_run, settings.json_output);
        actix::Supervisor::start(move |_| {
            let mode = Mode {
                dry_run,
                records: json_output.then(Records::stdout),
            };
            Evaluator::new(policy, pool, mode, budget, log)
        })
    };
    let lister = {
        let (pool, evaluator, budget, log) = (
            executors.clone(),
            evaluator.clone(),
            Rc::clone(&budget),
            log.clone(),
        );
        let (page_size, cull_users) = (settings.api_page_size, settings.policy.cull_users);
        let needs = required_scopes(&settings.policy.rules);
        actix::Supervisor::start(move |_| {
            Lister::new(pool, evaluator, page_size, cull_users, needs, budget, log)
        })
    };
    let scheduler = {
        let schedule = Schedule {
            every: settings.cull_every,
            once: settings.once,
            dry_run: settings.dry_run,
            stop_timeout: settings.stop_timeout,
        };
        let (lister, pool, shutdown, metrics, budget, log) = (
            lister.clone(),
            executors.clone(),
            Rc::clone(&shutdown),
            Arc::clone(metrics),
            Rc::clone(&budget),
            log.clone(),
        );
        actix::Supervisor::start(move |_| {
            Scheduler::new(lister, pool, schedule, shutdown, metrics, budget, log)
        })
    };
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
        log,
        "Culling servers idle for {} s, {schedule}, via {} ({} requests at most at once)",
        settings.policy.timeout_secs,
        settings.hub.base_url,
        settings.concurrency
    );
    stop_on_signals(&scheduler, &shutdown, settings.once, log);
    Pipeline {
        scheduler,
        lister,
        evaluator,
        executors,
        shutdown,
    }
}

/// The first SIGINT or SIGTERM begins the graceful stop; a second one
/// stops at once.
///
/// Installing handlers matters even though both signals end a process by
/// default: a process started in the background by a shell inherits SIGINT
/// *ignored*, and JupyterHub stops its managed services with SIGINT, so
/// without a handler the hub waits its whole `interrupt_timeout` for us.
fn stop_on_signals(scheduler: &Addr<Scheduler>, shutdown: &Rc<Shutdown>, once: bool, log: &Log) {
    use actix_rt::signal::unix::{signal, SignalKind};
    for (kind, which) in [
        (SignalKind::interrupt(), Signal::Interrupt),
        (SignalKind::terminate(), Signal::Terminate),
    ] {
        match signal(kind) {
            Ok(mut stream) => {
                let (scheduler, shutdown, log) =
                    (scheduler.clone(), Rc::clone(shutdown), log.clone());
                actix_rt::spawn(async move {
                    while stream.recv().await.is_some() {
                        if shutdown.begin(which) {
                            scheduler.do_send(Stop(which));
                        } else {
                            warning!(log, "Received {} again: stopping now", which.name());
                            let exit = if once {
                                Exit::Interrupted(which)
                            } else {
                                Exit::Clean
                            };
                            System::current().stop_with_code(exit.code());
                        }
                    }
                });
            }
            Err(err) => warning!(
                log,
                "Cannot handle {} ({err}); it will end the culler abruptly",
                which.name()
            ),
        }
    }
}
