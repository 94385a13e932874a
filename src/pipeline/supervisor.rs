//! The Supervisor: builds the pipeline and keeps it running.
//!
//! Every actor is started under [`actix::Supervisor`], which restarts an
//! actor in place (same address, so senders keep working) whenever its
//! context stops. Handlers never panic (a panic would take the thread down,
//! which no supervisor can mend); an actor whose state goes bad stops itself
//! and comes back from here.

use super::evaluator::Evaluator;
use super::executor::{Executor, ExecutorPool};
use super::lister::Lister;
use super::scheduler::Scheduler;
use crate::hub::HubClient;
use crate::logging::{info, warning, Log};
use crate::settings::Settings;
use actix::prelude::*;

/// The addresses of the running pipeline.
pub struct Pipeline {
    /// Times the passes.
    pub scheduler: Addr<Scheduler>,
    /// Walks the user lists.
    pub lister: Addr<Lister>,
    /// Judges users.
    pub evaluator: Addr<Evaluator>,
    /// Sends commands to the hub.
    pub executors: ExecutorPool,
}

/// Starts every actor on the current arbiter (one thread is plenty for a
/// network-bound service and lets them share one HTTP client and its
/// connection pool) and returns their addresses.
pub fn start(settings: &Settings, log: &Log) -> Pipeline {
    let client = HubClient::new(&settings.hub, HubClient::permits(settings.hub.concurrency));
    let executors = ExecutorPool::new(
        (0..settings.hub.concurrency.max(1))
            .map(|_| {
                let client = client.clone();
                actix::Supervisor::start(move |_| Executor::new(client))
            })
            .collect(),
    );
    let evaluator = {
        let (policy, pool, log) = (settings.policy.clone(), executors.clone(), log.clone());
        actix::Supervisor::start(move |_| Evaluator::new(policy, pool, log))
    };
    let lister = {
        let (evaluator, log) = (evaluator.clone(), log.clone());
        let (page_size, cull_users) = (settings.api_page_size, settings.policy.cull_users);
        actix::Supervisor::start(move |_| {
            Lister::new(client, evaluator, page_size, cull_users, log)
        })
    };
    let scheduler = {
        let (lister, every, once, log) = (
            lister.clone(),
            settings.cull_every,
            settings.once,
            log.clone(),
        );
        actix::Supervisor::start(move |_| Scheduler::new(lister, every, once, log))
    };
    let schedule = if settings.once {
        "once".to_owned()
    } else {
        format!("every {} s", settings.cull_every.as_secs())
    };
    info!(
        log,
        "Culling servers idle for {} s, {schedule}, via {} ({} requests at most at once)",
        settings.policy.timeout_secs,
        settings.hub.base_url,
        settings.hub.concurrency
    );
    Pipeline {
        scheduler,
        lister,
        evaluator,
        executors,
    }
}

/// Stops the program (exit code 0) on SIGINT or SIGTERM.
///
/// Installing handlers matters even though both signals end a process by
/// default: a process started in the background by a shell inherits SIGINT
/// *ignored*, and JupyterHub stops its managed services with SIGINT, so
/// without a handler the hub waits its whole `interrupt_timeout` for us.
pub fn stop_on_signals(log: &Log) {
    use actix_rt::signal::unix::{signal, SignalKind};
    for (kind, name) in [
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::terminate(), "SIGTERM"),
    ] {
        match signal(kind) {
            Ok(mut stream) => {
                let log = log.clone();
                actix_rt::spawn(async move {
                    if stream.recv().await.is_some() {
                        info!(log, "Received {name}; stopping");
                        System::current().stop_with_code(0);
                    }
                });
            }
            Err(err) => warning!(
                log,
                "Cannot handle {name} ({err}); it will end the culler abruptly"
            ),
        }
    }
}
