//! Decision records: one JSON object per line on stdout for every server and
//! user the culler judged (`--output=json`, with `--once`), so that
//! `--once --dry-run --output=json | jq` answers "why was my server culled"
//! and "why is it not". The schema is part of the culler's interface: it is
//! documented in the README and only ever grows (new fields, new values).

use crate::decision::{Action, Decision};
use serde::Serialize;
use std::cell::RefCell;
use std::io::Write;

/// What became of a stop or delete that was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The hub did it.
    Done,
    /// The hub is still stopping the server (202): its user is kept.
    StillStopping,
    /// It was gone already (404).
    AlreadyGone,
    /// The hub will not delete the user yet (400: a server still stopping).
    NotYet,
    /// The hub refused (401/403: a missing scope).
    Refused,
    /// It failed (after any retries).
    Failed,
    /// It was not sent (the culler was stopping, or the hub was down).
    NotSent,
    /// It has been stopping, or spawning, for longer than `--stuck-after`
    /// (reported once; see the reason).
    Stuck,
}

/// One [`Decision`] as one line of `--output=json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Record<'a> {
    /// The user's name.
    pub user: &'a str,
    /// The server's name ("" for the default server); `null` for a
    /// decision about the user.
    pub server: Option<&'a str>,
    /// What is done.
    pub action: Action,
    /// Why, in a word or two: `idle`, `max-age`, `never`, `active`,
    /// `pending spawn`, `not ready and not pending`, ... (see the README).
    pub reason: String,
    /// Seconds since the last activity (or the start / creation).
    pub idle_seconds: Option<u64>,
    /// Seconds since the server started (the user was created).
    pub age_seconds: Option<u64>,
    /// What set the limits: a rule's label, `flags`, or `null` when the
    /// decision came before any limit (a skip).
    pub rule: Option<String>,
    /// Whether this was a dry run (nothing sent).
    pub dry_run: bool,
    /// What became of a stop or delete that was sent; `null` otherwise.
    pub outcome: Option<Outcome>,
    /// What the idleness was judged by: `hub` (its timestamps), `server`
    /// (the server was asked, `--activity=server`) or `hub-fallback` (it
    /// was to be asked and could not be).
    pub signal: &'static str,
}

impl<'a> Record<'a> {
    /// The record of `decision`, in a dry run or not, with what became of
    /// its request when one was sent.
    pub fn of(decision: &Decision<'a>, dry_run: bool, outcome: Option<Outcome>) -> Self {
        Record {
            user: decision.user,
            server: decision.server,
            action: decision.action,
            reason: decision.reason.to_string(),
            idle_seconds: decision.idle.map(|e| e.0),
            age_seconds: decision.age.map(|e| e.0),
            rule: decision.decided_by.map(|by| by.to_string()),
            dry_run,
            outcome,
            signal: decision.signal.as_str(),
        }
    }
}

/// Where decision records go: stdout, one JSON object per line. A record
/// that cannot be written (stdout closed) is dropped: the output must never
/// stop the culling it reports on.
pub struct Records {
    out: RefCell<Box<dyn Write>>,
}

impl Records {
    /// Records on stdout.
    pub fn stdout() -> Self {
        Records::to_writer(Box::new(std::io::stdout()))
    }

    /// Records to any writer (tests).
    pub fn to_writer(out: Box<dyn Write>) -> Self {
        Records {
            out: RefCell::new(out),
        }
    }

    /// Writes one record as one line.
    pub fn write(&self, record: &Record<'_>) {
        let mut out = self.out.borrow_mut();
        if serde_json::to_writer(&mut *out, record).is_ok() {
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{DecidedBy, Elapsed, Reason, Signal};
    use std::rc::Rc;

    #[derive(Clone, Default)]
    struct Captured(Rc<RefCell<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_record_is_one_line_of_json_with_the_documented_fields() {
        let out = Captured::default();
        let records = Records::to_writer(Box::new(out.clone()));
        let rule: crate::rules::Rule = toml::from_str("name = \"gpu\"\ntimeout = 60").unwrap();
        let remove = Decision {
            user: "carol@example.org",
            server: Some("gpu"),
            action: Action::Remove,
            reason: Reason::Idle,
            idle: Some(Elapsed(3723)),
            age: None,
            decided_by: Some(DecidedBy::Rule {
                index: 0,
                rule: &rule,
            }),
            signal: Signal::Server,
            warn: None,
        };
        records.write(&Record::of(&remove, true, None));
        let delete = Decision {
            user: "dave",
            server: None,
            action: Action::Delete,
            reason: Reason::MaxAge,
            idle: Some(Elapsed(1)),
            age: Some(Elapsed(2)),
            decided_by: Some(DecidedBy::Flags),
            signal: Signal::Hub,
            warn: None,
        };
        records.write(&Record::of(&delete, false, Some(Outcome::NotYet)));
        let text = String::from_utf8(out.0.borrow().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({
                "user": "carol@example.org", "server": "gpu", "action": "remove",
                "reason": "idle", "idle_seconds": 3723, "age_seconds": null,
                "rule": "rule \"gpu\"", "dry_run": true, "outcome": null,
                "signal": "server"
            })
        );
        assert_eq!(lines[1]["server"], serde_json::Value::Null);
        assert_eq!(lines[1]["action"], "delete");
        assert_eq!(lines[1]["outcome"], "not-yet");
        assert_eq!(lines[1]["signal"], "hub");
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn outcomes_and_actions_are_spelled_as_documented() {
        assert_eq!(
            serde_json::to_string(&Outcome::StillStopping).unwrap(),
            "\"still-stopping\""
        );
        assert_eq!(
            serde_json::to_string(&Outcome::AlreadyGone).unwrap(),
            "\"already-gone\""
        );
        assert_eq!(
            serde_json::to_string(&Outcome::NotSent).unwrap(),
            "\"not-sent\""
        );
        assert_eq!(serde_json::to_string(&Action::Skip).unwrap(), "\"skip\"");
    }
}
