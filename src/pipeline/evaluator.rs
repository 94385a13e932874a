//! The Evaluator: judges each user of a page with the pure rules in
//! [`crate::policy`], sends the resulting commands through the executor
//! pool, and answers the Lister with the page's tally once every command is
//! answered (that answer is the pipeline's backpressure).

use super::chaos::{self, Site};
use super::executor::{Announce, DeleteUser, StopServer};
use super::guard::{self, guarded, RestartBudget, Restartable};
use super::pool::{CommandError, ExecutorPool};
use super::Tally;
use crate::hub::{DeleteOutcome, HubError, StopOutcome, User};
use crate::logging::{
    debug_fields, error_fields, info_fields, warning, warning_fields, Fields, Log,
};
use crate::policy::{
    judge_server, judge_user, CullPolicy, CullReason, Elapsed, KeepUser, MaybeElapsed,
    ServerVerdict, UserVerdict,
};
use crate::report::{Action, Decision, Outcome, Records};
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

/// How decisions are carried out and reported.
#[derive(Default)]
pub struct Mode {
    /// `--dry-run`: decide and report, send no stop or delete.
    pub dry_run: bool,
    /// `--output=json`: where decision records go.
    pub records: Option<Records>,
}

/// Judges users and dispatches commands; holds no per-pass state.
pub struct Evaluator {
    policy: Rc<CullPolicy>,
    pool: ExecutorPool,
    mode: Rc<Mode>,
    budget: Rc<RestartBudget>,
    log: Log,
}

impl Evaluator {
    /// An evaluator applying `policy` through `pool`, as `mode` says.
    pub fn new(
        policy: CullPolicy,
        pool: ExecutorPool,
        mode: Mode,
        budget: Rc<RestartBudget>,
        log: Log,
    ) -> Self {
        Evaluator {
            policy: Rc::new(policy),
            pool,
            mode: Rc::new(mode),
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
                            mode: Rc::clone(&evaluator.mode),
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
    mode: Rc<Mode>,
    log: Log,
    now: DateTime<Utc>,
}

/// One decision, as both the log's structured fields and the decision
/// record of `--output=json` tell it: built once, so the two never disagree.
struct Verdict<'a> {
    user: &'a str,
    /// `None` for a decision about the user.
    server: Option<&'a str>,
    action: Action,
    reason: String,
    idle: Option<Elapsed>,
    age: Option<Elapsed>,
    /// What set the limits (a rule's label or "flags"); `None` for
    /// decisions made before any limit (skips, servers running, admins).
    rule: Option<String>,
}

impl Verdict<'_> {
    fn fields(&self) -> Fields<'_> {
        let mut fields = Fields::new()
            .user(self.user)
            .action(self.action)
            .reason(self.reason.as_str())
            .idle(self.idle)
            .age(self.age);
        if let Some(server) = self.server {
            fields = fields.server(server);
        }
        if let Some(rule) = &self.rule {
            fields = fields.rule(rule.as_str());
        }
        fields
    }

    fn record(&self, dry_run: bool, outcome: Option<Outcome>) -> Decision {
        Decision {
            user: self.user.to_owned(),
            server: self.server.map(str::to_owned),
            action: self.action,
            reason: self.reason.clone(),
            idle_seconds: self.idle.map(|e| e.0),
            age_seconds: self.age.map(|e| e.0),
            rule: self.rule.clone(),
            dry_run,
            outcome,
        }
    }
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

        let (verdict, reason, rule) = match judge_user(&self.policy, self.now, &user, servers_alive)
        {
            UserVerdict::Keep(KeepUser::UserCullingOff) => return tally,
            UserVerdict::Keep(keep) => {
                let (word, idle, age, rule) = match keep {
                    KeepUser::ServersAlive(_) => ("servers running", None, None, None),
                    KeepUser::ServersUnknown => ("servers unknown", None, None, None),
                    KeepUser::Admin => ("admin", None, None, None),
                    KeepUser::Exempt(rule) => ("never", None, None, Some(Some(rule))),
                    KeepUser::Recent { idle, age, rule } => ("active", idle, age, Some(rule)),
                    KeepUser::UserCullingOff => unreachable!("returned above"),
                };
                let verdict = Verdict {
                    user: &user.name,
                    server: None,
                    action: Action::Keep,
                    reason: word.to_owned(),
                    idle,
                    age,
                    rule: rule.map(|rule| self.policy.decided_by(rule)),
                };
                debug_fields!(
                    self.log,
                    verdict.fields(),
                    "Not culling user {}: {word}",
                    user.name
                );
                self.report(&verdict, None);
                return tally;
            }
            UserVerdict::Cull {
                reason,
                idle,
                age,
                rule,
            } => (
                Verdict {
                    user: &user.name,
                    server: None,
                    action: Action::Delete,
                    reason: reason.to_string(),
                    idle,
                    age,
                    rule: Some(self.policy.decided_by(rule)),
                },
                reason,
                rule,
            ),
        };
        let why = self.why(reason, verdict.idle, verdict.age, rule);
        let Some(announce) = self.announce(&verdict, &format!("user {}", user.name), &why) else {
            tally.users_culled += 1;
            return tally;
        };
        let command = DeleteUser {
            user: user.name.clone(),
        };
        let outcome = match self.pool.call(command, Some(announce)).await {
            Ok(DeleteOutcome::Deleted) => {
                tally.users_culled += 1;
                Outcome::Done
            }
            Ok(DeleteOutcome::Gone) => {
                info_fields!(
                    self.log,
                    verdict.fields(),
                    "User {} was already gone",
                    user.name
                );
                Outcome::AlreadyGone
            }
            Ok(DeleteOutcome::Busy { message }) => {
                warning_fields!(
                    self.log,
                    verdict.fields(),
                    "User {} not deleted yet: {message}; the next pass tries again",
                    user.name
                );
                tally.users_busy += 1;
                Outcome::NotYet
            }
            Err(err) => self.failed(
                &verdict,
                &format!("delete user {}", user.name),
                err,
                &mut tally,
            ),
        };
        self.report(&verdict, Some(outcome));
        tally
    }

    /// Judges each server and stops the cullable ones concurrently; returns
    /// how many are still running afterwards (kept, skipped, slow to stop or
    /// not stopped). In a dry run, servers that would be stopped count as
    /// stopped, so that the user's fate is what a real pass would decide.
    async fn stop_servers(
        &self,
        user: &User,
        servers: &std::collections::BTreeMap<String, crate::hub::Server>,
        tally: &mut Tally,
    ) -> usize {
        let mut alive = 0;
        let mut stops = Vec::new();
        for (name, server) in servers {
            tally.servers_seen += 1;
            let label = server_label(&user.name, name);
            let verdict = |action, reason: String, idle, age, rule: Option<String>| Verdict {
                user: &user.name,
                server: Some(name),
                action,
                reason,
                idle,
                age,
                rule,
            };
            let (verdict, reason, rule) =
                match judge_server(&self.policy, self.now, user, name, server) {
                    ServerVerdict::Skip(reason) => {
                        let verdict = verdict(Action::Skip, reason.to_string(), None, None, None);
                        warning_fields!(
                            self.log,
                            verdict.fields(),
                            "Not culling server {label}: {reason}"
                        );
                        self.report(&verdict, None);
                        alive += 1;
                        continue;
                    }
                    ServerVerdict::Exempt { rule } => {
                        let by = self.policy.decided_by(Some(rule));
                        let verdict =
                            verdict(Action::Keep, "never".into(), None, None, Some(by.clone()));
                        debug_fields!(
                            self.log,
                            verdict.fields(),
                            "Not culling server {label}: exempt ({by})"
                        );
                        self.report(&verdict, None);
                        alive += 1;
                        continue;
                    }
                    ServerVerdict::Keep { idle, age, rule } => {
                        let by = self.policy.decided_by(rule);
                        let verdict = verdict(Action::Keep, "active".into(), idle, age, Some(by));
                        debug_fields!(
                            self.log,
                            verdict.fields(),
                            "Not culling server {label} (age: {}, inactive for {})",
                            MaybeElapsed(age),
                            MaybeElapsed(idle)
                        );
                        self.report(&verdict, None);
                        alive += 1;
                        continue;
                    }
                    ServerVerdict::Cull {
                        reason,
                        idle,
                        age,
                        rule,
                    } => {
                        let remove = self.policy.remove_named_servers && !name.is_empty();
                        let action = if remove { Action::Remove } else { Action::Stop };
                        let by = self.policy.decided_by(rule);
                        (
                            verdict(action, reason.to_string(), idle, age, Some(by)),
                            reason,
                            rule,
                        )
                    }
                };
            let why = self.why(reason, verdict.idle, verdict.age, rule);
            let Some(announce) = self.announce(&verdict, &format!("server {label}"), &why) else {
                tally.servers_culled += 1;
                continue;
            };
            let command = StopServer {
                user: user.name.clone(),
                server: name.clone(),
                remove: verdict.action == Action::Remove,
            };
            let pool = self.pool.clone();
            stops.push(async move {
                let result = pool.call(command, Some(announce)).await;
                (label, verdict, result)
            });
        }
        for (label, verdict, result) in join_all(stops).await {
            let outcome = match result {
                Ok(StopOutcome::Stopped) => {
                    tally.servers_culled += 1;
                    if verdict.action == Action::Remove {
                        tally.named_servers_removed += 1;
                    }
                    Outcome::Done
                }
                Ok(StopOutcome::Gone) => {
                    info_fields!(
                        self.log,
                        verdict.fields(),
                        "Server {label} was already gone"
                    );
                    Outcome::AlreadyGone
                }
                Ok(StopOutcome::StillStopping) => {
                    warning_fields!(self.log, verdict.fields(), "Server {label} is slow to stop");
                    tally.servers_still_stopping += 1;
                    alive += 1;
                    Outcome::StillStopping
                }
                Err(err) => {
                    alive += 1;
                    self.failed(&verdict, &format!("stop server {label}"), err, tally)
                }
            };
            self.report(&verdict, Some(outcome));
        }
        alive
    }

    /// The parenthesis of a cull line: upstream's words, plus the rule when
    /// one decided (so that lines without rules read exactly as before).
    /// The line to log as the cull of `what` ("user ada", "server ada/lab")
    /// goes on the wire; or, in a dry run, `None` once "Would cull …" is
    /// logged and the decision reported (nothing is sent).
    fn announce(&self, verdict: &Verdict<'_>, what: &str, why: &str) -> Option<Announce> {
        if self.mode.dry_run {
            info_fields!(self.log, verdict.fields(), "Would cull {what} ({why})");
            self.report(verdict, None);
            return None;
        }
        Some(Announce {
            line: format!("Culling {what} ({why})"),
            fields: verdict.fields().into_owned(),
        })
    }

    fn why(
        &self,
        reason: CullReason,
        idle: Option<Elapsed>,
        age: Option<Elapsed>,
        rule: Option<usize>,
    ) -> String {
        let mut why = format!(
            "reason: {reason}, inactive for {}, age: {}",
            MaybeElapsed(idle),
            MaybeElapsed(age)
        );
        if rule.is_some() {
            why.push_str(", ");
            why.push_str(&self.policy.decided_by(rule));
        }
        why
    }

    /// Writes the decision record, when records are asked for.
    fn report(&self, verdict: &Verdict<'_>, outcome: Option<Outcome>) {
        if let Some(records) = &self.mode.records {
            records.write(&verdict.record(self.mode.dry_run, outcome));
        }
    }

    /// Counts and logs a command that did not succeed, and says what became
    /// of it. Refusals are logged once per pass by the Lister, culls not
    /// sent once in the summary.
    fn failed(
        &self,
        verdict: &Verdict<'_>,
        what: &str,
        err: CommandError,
        tally: &mut Tally,
    ) -> Outcome {
        match err {
            CommandError::Hub(err @ HubError::Forbidden { .. }) => {
                debug_fields!(self.log, verdict.fields(), "Could not {what}: {err}");
                tally.refused(&err);
                Outcome::Refused
            }
            CommandError::NotSent(_) => {
                debug_fields!(self.log, verdict.fields(), "Did not {what}: {err}");
                tally.not_sent += 1;
                Outcome::NotSent
            }
            err => {
                error_fields!(self.log, verdict.fields(), "Failed to {what}: {err}");
                tally.errors += 1;
                Outcome::Failed
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
