//! The Evaluator: judges each user of a page with the pure rules in
//! [`crate::policy`], sends the resulting commands to the executor pool, and
//! answers the Lister with the page's tally once every command is answered
//! (that answer is the pipeline's backpressure).

use super::executor::{CommandError, DeleteUser, ExecutorPool, StopServer};
use super::Tally;
use crate::hub::{DeleteOutcome, StopOutcome, User};
use crate::logging::{debug, error, info, warning, Log};
use crate::policy::{
    judge_server, judge_user, CullPolicy, KeepUser, MaybeElapsed, ServerVerdict, UserVerdict,
};
use actix::prelude::*;
use chrono::{DateTime, Utc};
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
    log: Log,
}

impl Evaluator {
    /// An evaluator applying `policy` through `pool`.
    pub fn new(policy: CullPolicy, pool: ExecutorPool, log: Log) -> Self {
        Evaluator {
            policy: Rc::new(policy),
            pool,
            log,
        }
    }
}

impl Actor for Evaluator {
    type Context = Context<Self>;
}

impl Supervised for Evaluator {}

impl Handler<EvaluatePage> for Evaluator {
    type Result = ResponseFuture<Tally>;

    fn handle(&mut self, page: EvaluatePage, _ctx: &mut Context<Self>) -> Self::Result {
        let now = Utc::now();
        let tasks: Vec<_> = page
            .users
            .into_iter()
            .map(|user| {
                let job = UserJob {
                    policy: Rc::clone(&self.policy),
                    pool: self.pool.clone(),
                    log: self.log.clone(),
                    now,
                };
                actix_rt::spawn(job.run(user))
            })
            .collect();
        Box::pin(async move {
            let mut tally = Tally::default();
            for task in tasks {
                tally += task.await.unwrap_or_else(|_| Tally::failure());
            }
            tally
        })
    }
}

/// Everything needed to handle one user, owned so it can run as a task.
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
            Some(servers) => {
                let mut alive = 0;
                let mut stops = Vec::new();
                for (name, server) in &servers {
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
                            info!(
                                self.log,
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
                            stops.push((
                                label,
                                actix_rt::spawn(async move { pool.stop_server(command).await }),
                            ));
                        }
                    }
                }
                for (label, stop) in stops {
                    let result = stop.await.unwrap_or_else(|_| {
                        Err(CommandError::ExecutorGone(format!("stop server {label}")))
                    });
                    match result {
                        Ok(StopOutcome::Stopped) => tally.servers_culled += 1,
                        Ok(StopOutcome::Gone) => info!(self.log, "Server {label} was already gone"),
                        Ok(StopOutcome::StillStopping) => {
                            warning!(self.log, "Server {label} is slow to stop");
                            tally.servers_still_stopping += 1;
                            alive += 1;
                        }
                        Err(err) => {
                            error!(self.log, "Failed to stop server {label}: {err}");
                            tally.errors += 1;
                            alive += 1;
                        }
                    }
                }
                Some(alive)
            }
        };

        match judge_user(&self.policy, self.now, &user, servers_alive) {
            UserVerdict::Keep(KeepUser::UserCullingOff) => {}
            UserVerdict::Keep(reason) => {
                debug!(self.log, "Not culling user {}: {reason:?}", user.name)
            }
            UserVerdict::Cull { reason, idle, age } => {
                info!(
                    self.log,
                    "Culling user {} (reason: {reason}, inactive for {}, age: {})",
                    user.name,
                    MaybeElapsed(idle),
                    MaybeElapsed(age)
                );
                match self
                    .pool
                    .delete_user(DeleteUser {
                        user: user.name.clone(),
                    })
                    .await
                {
                    Ok(DeleteOutcome::Deleted) => tally.users_culled += 1,
                    Ok(DeleteOutcome::Gone) => {
                        info!(self.log, "User {} was already gone", user.name)
                    }
                    Err(err) => {
                        error!(self.log, "Failed to delete user {}: {err}", user.name);
                        tally.errors += 1;
                    }
                }
            }
        }
        tally
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
