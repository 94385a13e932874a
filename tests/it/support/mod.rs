//! Helpers shared by every integration test.
#![allow(dead_code)]
pub mod culler;
pub mod fake_hub;
pub mod real_hub;
pub mod scenario;
