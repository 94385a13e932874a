//! What the Evaluator tells beyond its log: warnings before a cull (once
//! per idle period), servers found stuck, and the events the Notifier
//! delivers. What these remember across passes is in
//! [`crate::pipeline::followup`].

use super::UserJob;
use crate::decision::{Action, Decision, MaybeElapsed, Reason};
use crate::logging::{info_fields, warning_fields};
use crate::notify::{Event, EventKind, Notify};
use crate::pipeline::followup::{Pending, Stuck};
use crate::report::Outcome;

impl UserJob {
    /// Sends the warning a kept decision carries, once per idle period
    /// (in a dry run, says it would); a decision with none ends the
    /// period.
    pub(super) fn warn(&self, decision: &Decision<'_>) {
        let Some(warning) = decision.warn else {
            self.followup
                .borrow_mut()
                .unwarned(decision.user, decision.server);
            return;
        };
        if !self
            .followup
            .borrow_mut()
            .warn(decision.user, decision.server, warning.deadline)
        {
            return;
        }
        let what = match decision.server {
            Some(_) => format!("server {}", decision.label()),
            None => format!("user {}", decision.user),
        };
        let verb = if self.mode.dry_run {
            "Would warn"
        } else {
            "Warning"
        };
        info_fields!(
            self.log,
            decision.fields(),
            "{verb}: {what} will be culled in {} ({}, inactive for {}) unless it is used",
            warning.left(self.now),
            warning.because,
            MaybeElapsed(decision.idle)
        );
        self.notify(EventKind::Warn, decision, None);
    }

    /// Reports a server found stuck, the first pass it is (WARN line,
    /// event, metric, and for a server listed pending a record with
    /// outcome `stuck`), and says what to do with it: a server listed
    /// pending becomes a decision with reason `stuck spawn|stop`, to stop
    /// a stuck spawn with `--cull-stuck-spawns` and to skip otherwise; a
    /// server still running after its stop was accepted is judged as
    /// always (an idle one is asked to stop again).
    pub(super) fn stuck<'a>(&self, decision: Decision<'a>, stuck: Stuck) -> Decision<'a> {
        let pending = stuck.pending.as_str();
        let listed_pending = matches!(decision.reason, Reason::Pending(_));
        let decision = if listed_pending {
            let cull = stuck.pending == Pending::Spawn && self.policy.cull_stuck_spawns;
            Decision {
                action: if cull { Action::Stop } else { Action::Skip },
                reason: Reason::Stuck(pending.to_owned()),
                ..decision
            }
        } else {
            decision
        };
        if !stuck.first {
            return decision;
        }
        let label = decision.label();
        let what = match stuck.pending {
            Pending::Stop if listed_pending => "still stopping",
            Pending::Stop => "still running after the hub accepted to stop it",
            Pending::Spawn => "still spawning",
        };
        let then = match decision.action {
            Action::Stop if listed_pending => "; stopping it (--cull-stuck-spawns)",
            _ if stuck.pending == Pending::Spawn => "; --cull-stuck-spawns would cancel the spawn",
            _ => "; its spawner may have lost it: see the hub's log",
        };
        warning_fields!(
            self.log,
            decision.fields(),
            "Server {label} is stuck: {what} for {}{then}",
            stuck.since
        );
        self.looks.metrics.server_stuck(pending);
        self.send(|| Event {
            reason: format!("stuck {pending}"),
            ..Event::of(EventKind::Stuck, &decision, self.now)
                .with_detail(format!("{what} for {}", stuck.since))
        });
        if listed_pending && !decision.action.culls() {
            self.report(&decision, Some(Outcome::Stuck));
        }
        decision
    }

    /// Makes the event `kind` about `decision`, with `detail`, when events
    /// go somewhere and this is not a dry run (a dry run tells no one).
    pub(super) fn notify(&self, kind: EventKind, decision: &Decision<'_>, detail: Option<String>) {
        self.send(|| Event {
            detail,
            ..Event::of(kind, decision, self.now)
        });
    }

    /// Hands the event `make` makes to the Notifier without waiting (its
    /// queue is the bound, and culling never waits for a receiver); makes
    /// none when events go nowhere or in a dry run.
    fn send(&self, make: impl FnOnce() -> Event) {
        let events = self.mode.events.as_ref().filter(|_| !self.mode.dry_run);
        if let Some(events) = events {
            events.do_send(Notify(make()));
        }
    }
}
