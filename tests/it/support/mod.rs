//! Helpers shared by every integration test.
//!
//! The fake hub is checked for dead code like any other code; the other
//! helpers carry knobs that only some tests use.
#[allow(dead_code)]
pub mod culler;
pub mod exposition;
pub mod fake_hub;
pub mod kernels;
pub mod process;
#[allow(dead_code)]
pub mod real_hub;
pub mod receiver;
pub mod scenario;
