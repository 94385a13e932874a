//! The Evaluator: judges each user of a page with the pure rules in
//! [`crate::policy`], sends the resulting commands through the executor
//! pool, and answers the Lister with the page's tally once every command is
//! answered (that answer is the pipeline's backpressure).

use super::chaos::{self, Site};
use super::executor::{Announce, DeleteUser, LookInside, StopServer};
use super::followup::Followup;
use super::guard::{self, guarded, Restartable, Restarted};
use super::pool::{CommandError, Pool};
use super::Tally;
use crate::decision::{Action, Decision, MaybeElapsed, Reason, Signal};
use crate::hub::{DeleteOutcome, HubError, LookError, Server, Servers, StopOutcome, User};
use crate::logging::{debug_fields, error_fields, info_fields, warning, warning_fields, Log};
use crate::metrics::Metrics;
use crate::notify::{EventKind, Notify};
use crate::policy::{judge_inside, judge_server, judge_user, CullPolicy};
use crate::report::{Outcome, Record, Records};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use futures_util::task::noop_waker_ref;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{self, Poll};

/// One page of users to judge and act on.
#[derive(Debug, Message)]
#[rtype(result = "Tally")]
pub struct EvaluatePage {
    /// The users, as listed by the hub.
    pub users: Vec<User>,
    /// The pass the page belongs to (from 1): what the Evaluator remembers
    /// across passes is forgotten when not seen for two of them.
    pub pass: u64,
}

/// How decisions are carried out and reported.
#[derive(Default)]
pub struct Mode {
    /// `--dry-run`: decide and report, send no stop or delete.
    pub dry_run: bool,
    /// `--output=json`: where decision records go.
    pub records: Option<Records>,
    /// Where events go (`--notify-url`, `--notify-command`); `None`: no
    /// events are made.
    pub events: Option<Recipient<Notify>>,
}

/// Judges users and dispatches commands; holds no per-pass state (what it
/// remembers from pass to pass is its [`Followup`]).
pub struct Evaluator {
    policy: Rc<CullPolicy>,
    /// Shared by the page's jobs: cloning the pool's address allocates.
    pool: Rc<Pool>,
    mode: Rc<Mode>,
    looks: Rc<Looks>,
    followup: Rc<RefCell<Followup>>,
    restarts: Recipient<Restarted>,
    log: Log,
}

impl Evaluator {
    /// An evaluator applying `policy` through `pool`, as `mode` says,
    /// counting its looks inside servers in `metrics`.
    pub fn new(
        policy: CullPolicy,
        pool: Pool,
        mode: Mode,
        metrics: Arc<Metrics>,
        restarts: Recipient<Restarted>,
        log: Log,
    ) -> Self {
        Evaluator {
            followup: Rc::new(RefCell::new(Followup::new(policy.stuck_after_secs))),
            policy: Rc::new(policy),
            pool: Rc::new(pool),
            mode: Rc::new(mode),
            looks: Rc::new(Looks::new(metrics)),
            restarts,
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
    fn restarts(&self) -> &Recipient<Restarted> {
        &self.restarts
    }
}

impl Handler<EvaluatePage> for Evaluator {
    type Result = ResponseActFuture<Self, Tally>;

    fn handle(&mut self, page: EvaluatePage, _ctx: &mut Context<Self>) -> Self::Result {
        let users = page.users.len();
        self.followup.borrow_mut().begin(page.pass);
        guarded(
            self,
            |evaluator| {
                chaos::maybe_panic(Site::Evaluator);
                let now = Utc::now();
                // Most users need no request (nothing running, nothing
                // idle): their job finishes on its first poll, here, and
                // only the jobs waiting on the hub are joined. (A waker is
                // registered again on every poll, so the join's own waker
                // replaces the no-op one.)
                let mut tally = Tally::default();
                let mut waiting = Vec::new();
                let mut first = task::Context::from_waker(noop_waker_ref());
                for user in page.users {
                    let mut job = Box::pin(
                        UserJob {
                            policy: Rc::clone(&evaluator.policy),
                            pool: Rc::clone(&evaluator.pool),
                            mode: Rc::clone(&evaluator.mode),
                            looks: Rc::clone(&evaluator.looks),
                            followup: Rc::clone(&evaluator.followup),
                            log: evaluator.log.clone(),
                            now,
                        }
                        .run(user),
                    );
                    match job.as_mut().poll(&mut first) {
                        Poll::Ready(user) => tally += user,
                        Poll::Pending => waiting.push(job),
                    }
                }
                async move {
                    for user in join_all(waiting).await {
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
    pool: Rc<Pool>,
    mode: Rc<Mode>,
    looks: Rc<Looks>,
    followup: Rc<RefCell<Followup>>,
    log: Log,
    now: DateTime<Utc>,
}

/// What became of a server the policy would cull.
enum Cull {
    /// Kept: the server said it is in use.
    Kept,
    /// A dry run: logged and recorded as it would be culled.
    DryRun,
    /// Its stop was sent (or could not be).
    Sent(Result<StopOutcome, CommandError>),
}

/// What asking servers about themselves shares across users.
pub struct Looks {
    /// Counts each look by outcome.
    pub metrics: Arc<Metrics>,
    /// Failures that every server would share (the proxy unreachable, the
    /// token refused), already logged at WARN since the last look that
    /// succeeded: the rest go to DEBUG.
    quiet: RefCell<BTreeSet<&'static str>>,
}

impl Looks {
    /// Looks counted in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Looks {
            metrics,
            quiet: RefCell::default(),
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
        let Some(decision) = judge_user(&self.policy, self.now, &user, servers_alive) else {
            return tally;
        };
        if !decision.action.culls() {
            let why = match &decision.reason {
                Reason::Never => "never".to_owned(),
                reason => reason.to_string(),
            };
            debug_fields!(
                self.log,
                decision.fields(),
                "Not culling user {}: {why}",
                user.name
            );
            self.warn(&decision);
            self.report(&decision, None);
            return tally;
        }
        let Some(announce) = self.announce(&decision) else {
            tally.users_culled += 1;
            return tally;
        };
        let command = DeleteUser {
            user: user.name.clone(),
        };
        let outcome = match self.pool.call(command, Some(announce)).await {
            Ok(DeleteOutcome::Deleted) => {
                tally.users_culled += 1;
                self.notify(EventKind::UserDeleted, &decision, None);
                Outcome::Done
            }
            Ok(DeleteOutcome::Gone) => {
                info_fields!(
                    self.log,
                    decision.fields(),
                    "User {} was already gone",
                    user.name
                );
                Outcome::AlreadyGone
            }
            Ok(DeleteOutcome::Busy { message }) => {
                warning_fields!(
                    self.log,
                    decision.fields(),
                    "User {} not deleted yet: {message}; the next pass tries again",
                    user.name
                );
                tally.users_busy += 1;
                Outcome::NotYet
            }
            Err(err) => self.failed(
                &decision,
                &format!("delete user {}", user.name),
                err,
                &mut tally,
            ),
        };
        self.report(&decision, Some(outcome));
        tally
    }

    /// Judges each server and stops the cullable ones concurrently; returns
    /// how many are still running afterwards (kept, skipped, slow to stop or
    /// not stopped). In a dry run, servers that would be stopped count as
    /// stopped, so that the user's fate is what a real pass would decide.
    async fn stop_servers(&self, user: &User, servers: &Servers, tally: &mut Tally) -> usize {
        let mut alive = 0;
        let mut stops = Vec::new();
        for (name, server) in servers {
            tally.servers_seen += 1;
            let stuck = self.followup.borrow_mut().observe(
                &user.name,
                name,
                server.pending.as_deref(),
                server.started.map(|t| t.0),
                self.now,
            );
            let mut decision = judge_server(&self.policy, self.now, user, name, server);
            if let Some(stuck) = stuck {
                decision = self.stuck(decision, stuck);
                if matches!(decision.reason, Reason::Stuck(_)) && !decision.action.culls() {
                    if !stuck.first {
                        self.report(&decision, None);
                    }
                    alive += 1;
                    continue;
                }
            }
            let label = decision.label();
            match decision.action {
                Action::Skip if matches!(decision.reason, Reason::Pending(_)) => {
                    // Listed with state=active, pending servers are the
                    // normal course of things; a stuck one is reported.
                    debug_fields!(
                        self.log,
                        decision.fields(),
                        "Not culling server {label}: {}",
                        decision.reason
                    );
                }
                Action::Skip => {
                    warning_fields!(
                        self.log,
                        decision.fields(),
                        "Not culling server {label}: {}",
                        decision.reason
                    );
                }
                Action::Keep if decision.reason == Reason::Never => {
                    debug_fields!(
                        self.log,
                        decision.fields(),
                        "Not culling server {label}: exempt ({})",
                        DecidedByText(&decision)
                    );
                }
                Action::Keep => {
                    debug_fields!(
                        self.log,
                        decision.fields(),
                        "Not culling server {label} (age: {}, inactive for {})",
                        MaybeElapsed(decision.age),
                        MaybeElapsed(decision.idle)
                    );
                    self.warn(&decision);
                }
                Action::Stop | Action::Remove | Action::Delete => {
                    stops.push(self.cull_server(user, name, server, decision));
                    continue;
                }
            }
            self.report(&decision, None);
            alive += 1;
        }
        for (decision, cull) in join_all(stops).await {
            let label = decision.label();
            let result = match cull {
                Cull::Kept => {
                    info_fields!(
                        self.log,
                        decision.fields(),
                        "Not culling server {label}: {} (the hub's timestamps say inactive for {})",
                        decision.reason,
                        MaybeElapsed(decision.idle)
                    );
                    self.report(&decision, None);
                    alive += 1;
                    continue;
                }
                Cull::DryRun => {
                    tally.servers_culled += 1;
                    continue;
                }
                Cull::Sent(result) => result,
            };
            let outcome = match result {
                Ok(StopOutcome::Stopped) => {
                    tally.servers_culled += 1;
                    if decision.action == Action::Remove {
                        tally.named_servers_removed += 1;
                    }
                    self.notify(EventKind::Culled, &decision, None);
                    Outcome::Done
                }
                Ok(StopOutcome::Gone) => {
                    info_fields!(
                        self.log,
                        decision.fields(),
                        "Server {label} was already gone"
                    );
                    Outcome::AlreadyGone
                }
                Ok(StopOutcome::StillStopping) => {
                    warning_fields!(
                        self.log,
                        decision.fields(),
                        "Server {label} is slow to stop"
                    );
                    tally.servers_still_stopping += 1;
                    alive += 1;
                    if let Some(server) = decision.server {
                        self.followup
                            .borrow_mut()
                            .stop_accepted(decision.user, server, self.now);
                    }
                    self.notify(
                        EventKind::Culled,
                        &decision,
                        Some("the hub is still stopping it".to_owned()),
                    );
                    Outcome::StillStopping
                }
                Err(err) => {
                    alive += 1;
                    self.failed(&decision, &format!("stop server {label}"), err, tally)
                }
            };
            self.report(&decision, Some(outcome));
        }
        alive
    }

    /// Culls one server the policy would stop: asks it first what runs
    /// inside when the decision says to ([`Signal::AskServer`]), then
    /// stops it unless that kept it (in a dry run, says it would).
    async fn cull_server<'a>(
        &self,
        user: &'a User,
        name: &'a str,
        server: &Server,
        decision: Decision<'a>,
    ) -> (Decision<'a>, Cull) {
        let decision = self.look_inside(server, decision).await;
        if !decision.action.culls() {
            return (decision, Cull::Kept);
        }
        let Some(announce) = self.announce(&decision) else {
            return (decision, Cull::DryRun);
        };
        let command = StopServer {
            user: user.name.clone(),
            server: name.to_owned(),
            remove: decision.action == Action::Remove,
        };
        let result = self.pool.call(command, Some(announce)).await;
        (decision, Cull::Sent(result))
    }

    /// The decision again, with what the server says runs inside it, when
    /// the decision asks for that; counted by outcome. A server that
    /// cannot be asked is judged by the hub's timestamps, with a WARN line
    /// (for a proxy that cannot be reached or a token refused, one until a
    /// look succeeds again: every server would say the same).
    async fn look_inside<'a>(&self, server: &Server, decision: Decision<'a>) -> Decision<'a> {
        let Signal::AskServer { .. } = decision.signal else {
            return decision;
        };
        let look = LookInside {
            url: server.url.clone(),
        };
        let inside = match self.pool.call(look, None).await {
            Ok(Ok(inside)) => {
                self.looks.quiet.borrow_mut().clear();
                Some(inside)
            }
            Ok(Err(err)) => {
                self.looks.metrics.server_look(err.label());
                let label = decision.label();
                let everyone = matches!(
                    err,
                    LookError::Unreachable { .. }
                        | LookError::Forbidden { .. }
                        | LookError::NoProxy
                );
                if everyone && !self.looks.quiet.borrow_mut().insert(err.label()) {
                    debug_fields!(
                        self.log,
                        decision.fields(),
                        "Could not ask server {label} what runs inside it: {err}"
                    );
                } else {
                    warning_fields!(
                        self.log,
                        decision.fields(),
                        "Could not ask server {label} what runs inside it: {err}; judging it by the hub's timestamps"
                    );
                }
                None
            }
            // Not sent (the culler is stopping, the hub is down): the stop
            // will not be sent either.
            Err(_) => None,
        };
        let decision = judge_inside(&self.policy, self.now, decision, inside.as_ref());
        if inside.is_some() {
            let outcome = if decision.action.culls() {
                "idle"
            } else {
                "in_use"
            };
            self.looks.metrics.server_look(outcome);
        }
        decision
    }

    /// The announcement of a cull, logged as its request goes on the wire
    /// ("Culling server ada/lab (...)"); or, in a dry run, `None` once
    /// "Would cull …" is logged and the decision recorded (nothing is
    /// sent). The parenthesis is upstream's words, plus the rule when one
    /// decided (so that lines without rules read exactly as before).
    fn announce(&self, decision: &Decision<'_>) -> Option<Announce> {
        if self.mode.dry_run {
            let what = match decision.server {
                Some(_) => format!("server {}", decision.label()),
                None => format!("user {}", decision.user),
            };
            let why = decision.why();
            info_fields!(self.log, decision.fields(), "Would cull {what} ({why})");
            self.report(decision, None);
            return None;
        }
        Some(Announce::of(decision))
    }

    /// Writes the decision record, when records are asked for.
    fn report(&self, decision: &Decision<'_>, outcome: Option<Outcome>) {
        if let Some(records) = &self.mode.records {
            records.write(&Record::of(decision, self.mode.dry_run, outcome));
        }
    }

    /// Counts and logs a command that did not succeed, and says what became
    /// of it. Refusals are logged once per pass by the Lister, culls not
    /// sent once in the summary.
    fn failed(
        &self,
        decision: &Decision<'_>,
        what: &str,
        err: CommandError,
        tally: &mut Tally,
    ) -> Outcome {
        match err {
            CommandError::Hub(err @ HubError::Forbidden { .. }) => {
                debug_fields!(self.log, decision.fields(), "Could not {what}: {err}");
                tally.refused(&err);
                self.notify(EventKind::StopFailed, decision, Some(err.to_string()));
                Outcome::Refused
            }
            CommandError::NotSent(_) => {
                debug_fields!(self.log, decision.fields(), "Did not {what}: {err}");
                tally.not_sent += 1;
                Outcome::NotSent
            }
            err => {
                error_fields!(self.log, decision.fields(), "Failed to {what}: {err}");
                tally.errors += 1;
                self.notify(EventKind::StopFailed, decision, Some(err.to_string()));
                Outcome::Failed
            }
        }
    }
}

mod tell;

/// What decided an exempt server, for its log line (`flags` never exempts).
struct DecidedByText<'d, 'a>(&'d Decision<'a>);

impl std::fmt::Display for DecidedByText<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.decided_by {
            Some(by) => by.fmt(f),
            None => f.write_str("flags"),
        }
    }
}
