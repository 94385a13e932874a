//! The Scheduler: starts a pass at start-up and then every `--cull-every`,
//! never two at once, and logs each pass's summary. With `--once` it stops
//! the program after the first pass, with the exit code saying how it went.

use super::lister::{Lister, RunPass};
use super::Tally;
use crate::logging::{error, info, Log};
use actix::prelude::*;
use std::time::{Duration, Instant};

/// Time to start a pass.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Tick;

/// Times the passes.
pub struct Scheduler {
    lister: Addr<Lister>,
    every: Duration,
    once: bool,
    running: bool,
    log: Log,
}

impl Scheduler {
    /// A scheduler running a pass through `lister` every `every` (or only
    /// once, then stopping the actix system, when `once`).
    pub fn new(lister: Addr<Lister>, every: Duration, once: bool, log: Log) -> Self {
        Scheduler {
            lister,
            every,
            once,
            running: false,
            log,
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The first pass runs at once, as upstream's does.
        ctx.notify(Tick);
    }
}

impl Supervised for Scheduler {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.running = false;
    }
}

impl Handler<Tick> for Scheduler {
    type Result = ();

    fn handle(&mut self, _tick: Tick, ctx: &mut Context<Self>) {
        if self.running {
            info!(
                self.log,
                "Previous pass still running; not starting another"
            );
            return;
        }
        self.running = true;
        let started = Instant::now();
        let pass = self
            .lister
            .send(RunPass)
            .into_actor(self)
            .map(move |answer, act, ctx| {
                act.running = false;
                let tally = answer.unwrap_or_else(|err| {
                    error!(act.log, "The lister did not answer: {err}");
                    Tally::failure()
                });
                info!(
                    act.log,
                    "Pass finished in {:.2} s: {tally}",
                    started.elapsed().as_secs_f64()
                );
                if act.once {
                    System::current().stop_with_code(if tally.errors == 0 { 0 } else { 1 });
                } else {
                    // Passes start `every` apart; a pass longer than that is
                    // followed at once by the next one.
                    ctx.notify_later(Tick, act.every.saturating_sub(started.elapsed()));
                }
            });
        ctx.spawn(pass);
    }
}
