//! All integration tests in one binary (one link, shared helpers).
//!
//! `support` holds the reusable pieces: the in-process fake hub, the real
//! JupyterHub launcher and the helper that runs the culler binary;
//! `fake_hub_faults` tests the fake hub itself; `wheel` tests the pip wheel.

mod config_file;
mod dry_run;
mod fake_hub_faults;
mod faults;
mod graceful_stop;
mod hub_answers;
mod logs;
mod metrics;
mod notify;
mod pipeline;
mod policy_rules;
mod properties;
mod real_hub;
mod real_hub_activity;
mod real_hub_notify;
mod recovery;
mod server_activity;
mod stuck;
mod supervision;
mod support;
mod two_cullers;
mod wheel;
