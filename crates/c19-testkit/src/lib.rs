//! Test support for c19 and for third-party c19 layers.
//!
//! - [`MemState`]: a small, deliberately simple in-memory [`State`](c19_core::State)
//!   in the `Default` format ([`c19_core::entry`]), to test a connection or an agent
//!   layer without the Default state; [`MemStateConfig`] selects it in YAML
//!   (`kind: Mem`).
//! - [`conformance`]: suites that check a state or a peer provider against the rules of
//!   `c19-core`, which a layer crate runs from its own tests.
//! - [`harness`], [`proxy`], [`pki`]: agents as real processes on loopback ports (any
//!   c19 binary, yours included), links between them that can be cut and healed, and
//!   certificates made at test time.
//! - [`sse`]: a reader of `text/event-stream` answers (an agent's watch).
//! - [`fixtures`]: the 0.1 configuration files the tests use.
//! - [`wait_until`]: polling instead of sleeping.
//!
//! ```no_run
//! # async fn example() {
//! // In a layer crate's tests/conformance.rs:
//! c19_testkit::conformance::state::run(|| async {
//!     let (_, state) = c19_testkit::MemState::shared();
//!     state
//! })
//! .await;
//! # }
//! ```
//!
//! Everything here is test support: it panics, with a message that says what went
//! wrong, where a test should fail.

// Test support: a failed assertion, an unwritable temporary file or a port that cannot
// be bound is a failed test, so panicking (with a message) is this crate's job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod conformance;
pub mod fixtures;
pub mod harness;
pub mod mem_state;
pub mod pki;
pub mod proxy;
pub mod sse;

pub use harness::{Cluster, ClusterBuilder, Node, free_port, http, wait_until};
pub use mem_state::{MemState, MemStateConfig};
pub use sse::{SseEvent, SseStream};
