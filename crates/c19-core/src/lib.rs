//! The core of c19: the layer traits, the configuration and the runtime.
//!
//! A c19 agent is made of three layers chosen in YAML by `kind:`:
//!
//! - a [`State`] that holds and merges the shared key/value data,
//! - an [`Agent`] that serves the local application,
//! - a [`Connection`] that exchanges the state with peers, asking a
//!   [`PeerProvider`] whom to talk to.
//!
//! A [`DataSeeder`] may load initial data into the state at start.
//!
//! Layers know nothing of each other's data format: values cross layer boundaries as
//! bytes ([`StateValue::as_bytes`]) and only the state interprets them. Implementations
//! live in their own crates and register themselves with [`typetag`], so any binary that
//! links a layer crate can select it from configuration.
//!
//! This crate has few dependencies on purpose; it is what a third-party layer crate
//! depends on.

pub mod agent;
pub mod clock;
pub mod config;
pub mod connection;
pub mod error;
pub mod health;
pub mod peer;
pub mod registry;
pub mod runtime;
pub mod seeder;
pub mod shutdown;
pub mod state;
pub mod status;

pub use agent::Agent;
pub use config::{Config, Spec, TelemetryConfig};
pub use connection::Connection;
pub use error::{Error, LayerError, Result};
pub use peer::{Peer, PeerError, PeerProvider};
pub use runtime::{run, run_until};
pub use seeder::{DataSeeder, SeedError};
pub use shutdown::Shutdown;
pub use state::{
    Applied, Change, Changes, Diff, SafeState, State, StateError, StateValue, SyncSession,
};

/// Re-exports that layer implementations need to register themselves, so they use the
/// same versions as the core.
pub mod reexports {
    pub use bytes;
    pub use futures;
    pub use typetag;
}
