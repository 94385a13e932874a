//! The Evaluator: judges each user of a page with the pure rules in
//! [`crate::policy`], sends the resulting commands through the executor
//! pool, and answers the Lister with the page's tally once every command is
//! answered (that answer is the pipeline's backpressure).

use super::chaos::{self, Site};
use super::executor::{DeleteUser, StopServer};
use super::guard::{self, guarded, RestartBudget, Restartable};
use super::pool::{CommandError, ExecutorPool};
use super::Tally;
use crate::hub::{DeleteOutcome, HubError, StopOutcome, User};
use crate::logging::{debug, error, info, warning, Log};
use crate::policy::{
    judge_server, judge_user, CullPolicy, KeepUser, MaybeElapsed, ServerVerdict, UserVerdict,
};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use std::rc::Rc;

/// One page of users to judge and act on.
#[derive(Debug, Message)]
#[rtype(result = "Tally")]
pub struct EvaluatePage {
    /// The users, as listed by the hub.
    pub users: Vec<User>,
}

/// Judges users and dispatches commands; holds no per-pass state.
pub struct Evaluator {
    policy: Rc<CullPolicy>,
    pool: ExecutorPool,
    budget: Rc<RestartBudget>,
    log: Log,
}

impl Evaluator {
    /// An evaluator applying `policy` through `pool`.
    pub fn new(
        policy: CullPolicy,
        pool: ExecutorPool,
        budget: Rc<RestartBudget>,
        log: Log,
    ) -> Self {
        Evaluator {
            policy: Rc::new(policy),
            pool,
            budget,
            log,
        }
    }
}

impl Actor for Evaluator {
    type Context = Context<Self>;
}

impl Supervised for Evaluator {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        guard::restarting(self);
    }
}

impl Restartable for Evaluator {
    fn name(&self) -> String {
        "evaluator".to_owned()
    }
    fn log(&self) -> &Log {
        &self.log
    }
    fn budget(&self) -> &RestartBudget {
        &self.budget
    }
}

impl Handler<EvaluatePage> for Evaluator {
    type Result = ResponseActFuture<Self, Tally>;

    fn handle(&mut self, page: EvaluatePage, _ctx: &mut Context<Self>) -> Self::Result {
        let users = page.users.len();
        guarded(
            self,
            |evaluator| {
                chaos::maybe_panic(Site::Evaluator);
                let now = Utc::now();
                let jobs: Vec<_> = page
                    .users
                    .into_iter()
                    .map(|user| {
                        UserJob {
                            policy: Rc::clone(&evaluator.policy),
                            pool: evaluator.pool.clone(),
                            log: evaluator.log.clone(),
                            now,
                        }
                        .run(user)
                    })
                    .collect();
                async move {
                    let mut tally = Tally::default();
                    for user in join_all(jobs).await {
                        tally += user;
                    }
                    tally
                }
            },
            move || {
                // The page's work died with the evaluator: one error, and
                // its users are judged again by the next pass.
                let mut tally = Tally::failure();
                tally.users_seen = users as u64;
                tally
            },
        )
    }
}

/// Everything needed to handle one user.
struct UserJob {
    policy: Rc<CullPolicy>,
    pool: ExecutorPool,
    log: Log,
    now: DateTime<Utc>,
}

impl UserJob {
    /// Stops the user's cullable servers (all at once), then, when none is
    /// left running, judges and maybe deletes the user.
    async fn run(self, user: User) -> Tally {
        let mut tally = Tally {
            users_seen: 1,
            ..Tally::default()
        };
        let servers_alive = match user.visible_servers() {
            None => {
                warning!(
                    self.log,
                    "Cannot see the servers of user {} (does the token have read:servers?); leaving them",
                    user.name
                );
                None
            }
            Some(servers) => Some(self.stop_servers(&user, &servers, &mut tally).await),
        };

        match judge_user(&self.policy, self.now, &user, servers_alive) {
            UserVerdict::Keep(KeepUser::UserCullingOff) => {}
            UserVerdict::Keep(reason) => {
                debug!(self.log, "Not culling user {}: {reason:?}", user.name)
            }
            UserVerdict::Cull { reason, idle, age } => {
                let announce = format!(
                    "Culling user {} (reason: {reason}, inactive for {}, age: {})",
                    user.name,
                    MaybeElapsed(idle),
                    MaybeElapsed(age)
                );
                let command = DeleteUser {
                    user: user.name.clone(),
                };
                match self.pool.call(command, Some(announce)).await {
                    Ok(DeleteOutcome::Deleted) => tally.users_culled += 1,
                    Ok(DeleteOutcome::Gone) => {
                        info!(self.log, "User {} was already gone", user.name)
                    }
                    Ok(DeleteOutcome::Busy { message }) => {
                        warning!(
                            self.log,
                            "User {} not deleted yet: {message}; the next pass tries again",
                            user.name
                        );
                        tally.users_busy += 1;
                    }
                    Err(err) => self.failed(&format!("delete user {}", user.name), err, &mut tally),
                }
            }
        }
        tally
    }

    /// Judges each server and stops the cullable ones concurrently; returns
    /// how many are still running afterwards (kept, skipped, slow to stop or
    /// not stopped).
    async fn stop_servers(
        &self,
        user: &User,
        servers: &std::collections::BTreeMap<String, crate::hub::Server>,
        tally: &mut Tally,
    ) -> usize {
        let mut alive = 0;
        let mut stops = Vec::new();
        for (name, server) in servers {
            let label = server_label(&user.name, name);
            match judge_server(&self.policy, self.now, name, server) {
                ServerVerdict::Skip(reason) => {
                    warning!(self.log, "Not culling server {label}: {reason}");
                    alive += 1;
                }
                ServerVerdict::Keep { idle, age } => {
                    debug!(
                        self.log,
                        "Not culling server {label} (age: {}, inactive for {})",
                        MaybeElapsed(age),
                        MaybeElapsed(idle)
                    );
                    alive += 1;
                }
                ServerVerdict::Cull { reason, idle, age } => {
                    let announce = format!(
                        "Culling server {label} (reason: {reason}, inactive for {}, age: {})",
                        MaybeElapsed(idle),
                        MaybeElapsed(age)
                    );
                    let command = StopServer {
                        user: user.name.clone(),
                        server: name.clone(),
                        remove: self.policy.remove_named_servers && !name.is_empty(),
                    };
                    let pool = self.pool.clone();
                    stops.push(async move { (label, pool.call(command, Some(announce)).await) });
                }
            }
        }
        for (label, result) in join_all(stops).await {
            match result {
                Ok(StopOutcome::Stopped) => tally.servers_culled += 1,
                Ok(StopOutcome::Gone) => info!(self.log, "Server {label} was already gone"),
                Ok(StopOutcome::StillStopping) => {
                    warning!(self.log, "Server {label} is slow to stop");
                    tally.servers_still_stopping += 1;
                    alive += 1;
                }
                Err(err) => {
                    self.failed(&format!("stop server {label}"), err, tally);
                    alive += 1;
                }
            }
        }
        alive
    }

    /// Counts and logs a command that did not succeed. Refusals are logged
    /// once per pass by the Lister, culls not sent once in the summary.
    fn failed(&self, what: &str, err: CommandError, tally: &mut Tally) {
        match err {
            CommandError::Hub(err @ HubError::Forbidden { .. }) => {
                debug!(self.log, "Could not {what}: {err}");
                tally.refused(&err);
            }
            CommandError::NotSent(_) => {
                debug!(self.log, "Did not {what}: {err}");
                tally.not_sent += 1;
            }
            err => {
                error!(self.log, "Failed to {what}: {err}");
                tally.errors += 1;
            }
        }
    }
}

/// `user` for the default server, `user/name` for named ones, as upstream logs them.
fn server_label(user: &str, server: &str) -> String {
    if server.is_empty() {
        user.to_owned()
    } else {
        format!("{user}/{server}")
    }
}
