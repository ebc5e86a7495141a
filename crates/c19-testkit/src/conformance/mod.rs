//! Conformance suites: the rules of `c19-core`'s layer traits, as tests a layer crate
//! runs on its own implementation.
//!
//! - [`state::run`] checks a [`State`](c19_core::State) of the `Default` data format
//!   against the contract in [`c19_core::state`].
//! - [`peer_provider::run`] checks a [`PeerProvider`](c19_core::PeerProvider).
//!
//! Each suite takes a constructor of fresh instances, panics (failing the test) with a
//! message that names the rule broken, and returns a [`Report`] of what it checked and
//! what it skipped because the implementation does not offer it (an optional method
//! answering [`StateError::Unsupported`](c19_core::StateError::Unsupported)). Skipped
//! parts are also printed on stderr, so `cargo test -- --nocapture` shows them.
//!
//! ```no_run
//! // tests/conformance.rs of a state crate
//! #[tokio::test]
//! async fn my_state_keeps_the_state_contract() {
//!     let report = c19_testkit::conformance::state::run(|| async {
//!         let (_, state) = c19_testkit::MemState::shared(); // your state here
//!         state
//!     })
//!     .await;
//!     assert!(report.skipped.is_empty(), "{report:?}");
//! }
//! ```

pub mod peer_provider;
pub mod state;

/// What a suite checked, and what it skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The parts of the suite that ran and passed.
    pub checked: Vec<&'static str>,
    /// The parts skipped, each with the reason (the method the implementation does not
    /// support).
    pub skipped: Vec<String>,
    /// Remarks on how the suite ran that weaken what it shows (a multi-thread runtime,
    /// for the peer provider suite).
    pub notes: Vec<String>,
}

impl Report {
    pub(crate) fn passed(&mut self, suite: &str, part: &'static str) {
        eprintln!("{suite} conformance: {part}: ok");
        self.checked.push(part);
    }

    pub(crate) fn note(&mut self, suite: &str, note: String) {
        eprintln!("{suite} conformance: note: {note}");
        self.notes.push(note);
    }

    pub(crate) fn skip(&mut self, suite: &str, part: &'static str, reason: impl std::fmt::Display) {
        let note = format!("{part}: skipped ({reason})");
        eprintln!("{suite} conformance: {note}");
        self.skipped.push(note);
    }
}
