//! # jupyterhub-idle-culler-rs
//!
//! Stops idle JupyterHub servers (and, with `--cull-users`, deletes idle
//! users) through the hub's REST API: a drop-in for the Python
//! `jupyterhub-idle-culler` 2.0.0, with the same flags and decisions, that
//! streams the user list instead of loading it whole.
//!
//! ## Layout
//! - [`cli`]: the command line as typed (structopt lives only there).
//! - [`config`]: the config file (TOML), its defaults and the rules in it.
//! - [`settings`]: validated configuration from flags, environment and file.
//! - [`logging`]: log set-up and macros (slog lives only there).
//! - [`hub`]: the typed JupyterHub client and its models.
//! - [`policy`]: the culling decisions, pure functions.
//! - [`rules`]: the operator's policy rules (config file), matched purely.
//! - [`report`]: the decision records of `--output=json`.
//! - [`decision`]: the one type of a decision (action, reason, rule), read
//!   by the evaluator, the log and the records.
//! - [`pipeline`]: the actors. A **Scheduler** triggers a **Lister** every
//!   `--cull-every`; the Lister walks the user pages (last to first, so
//!   culls never shift a page not yet read) and hands each to the
//!   **Evaluator**, which judges users with [`policy`] and sends stop and
//!   delete commands to the **executor pool**, an actor of `--concurrency`
//!   **Executors** that sends every request of the pipeline to the hub (the
//!   one bound on requests in flight) and retries what may pass on a second
//!   try; the **Supervisor** actor starts them all, restarts any that fail,
//!   runs the graceful stop and is the one place the process ends. At most
//!   8 pages are being acted on or read ahead at once (and one more read),
//!   so memory stays bounded.
//! - [`metrics`]: the culler's Prometheus metrics and its health verdict,
//!   updated by the pipeline.
//! - [`serve`]: the actix-web endpoint that exposes them (`/metrics`,
//!   `/health`), under the hub-managed service's prefix too, with
//!   `/metrics` for holders of a hub token with `read:metrics`.
//! - [`notify`]: the **Notifier** actor, which delivers events (warnings
//!   before a cull, culls, stuck servers) to the operator's receivers
//!   without ever making culling wait.
//! - [`exit`]: the exit codes.
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod decision;
pub mod exit;
pub mod hub;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod rules;
pub mod serve;
pub mod settings;
