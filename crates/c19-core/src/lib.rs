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
//! Every layer has the same lifecycle: its configuration type ([`StateConfig`],
//! [`AgentConfig`], [`ConnectionConfig`], [`PeerProviderConfig`], [`DataSeederConfig`])
//! is plain data deserialized from YAML, and its `build` method, given a
//! [`LayerContext`], returns the live layer. Live layers are ordinary Rust values; the
//! runtime ([`run_until`]) builds the state, then the agent and the connection, runs the
//! two side by side and stops them in order.
//!
//! Layers know nothing of each other's data format: values cross layer boundaries as
//! bytes ([`StateValue::as_bytes`]) and only the state interprets them; the rules every
//! state keeps are in [`state`], the `Default` format in [`entry`]. Implementations
//! live in their own crates and register their configuration types with [`typetag`], so
//! any binary that links a layer crate can select it from configuration. The
//! `c19-testkit` crate has conformance suites to test a new layer with.
//!
//! This crate has few dependencies on purpose; it is what a third-party layer crate
//! depends on.

pub mod agent;
pub mod clock;
pub mod config;
pub mod connection;
pub mod entry;
pub mod error;
pub mod health;
pub mod layer;
pub mod peer;
pub mod registry;
pub mod runtime;
pub mod seeder;
pub mod shutdown;
pub mod state;
pub mod status;

pub use agent::{Agent, AgentConfig};
pub use config::{Config, Spec, TelemetryConfig};
pub use connection::{Connection, ConnectionConfig};
pub use error::{Error, LayerError, Result};
pub use layer::{Identity, LayerContext, Readiness};
pub use peer::{Peer, PeerError, PeerProvider, PeerProviderConfig};
pub use runtime::{run, run_until};
pub use seeder::{DataSeeder, DataSeederConfig, SeedError};
pub use shutdown::Shutdown;
pub use state::{
    Applied, Change, Changes, Diff, Points, SafeState, State, StateConfig, StateError, StateValue,
    SyncSession,
};

/// A boxed error, for failures specific to one layer implementation. (Here rather than
/// in [`error`], which names the errors of the layer modules that use it.)
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Re-exports that layer implementations need to register themselves, so they use the
/// same versions as the core.
pub mod reexports {
    pub use bytes;
    pub use futures;
    pub use typetag;
}
