//! The agent layer: serves the local application.

use std::fmt::Debug;

use futures::future::BoxFuture;

use crate::{error::LayerError, shutdown::Shutdown, state::SafeState};

/// The Agent trait.
///
/// An agent exposes the state to the application next to it (the default one over HTTP).
#[typetag::serde(tag = "kind")]
pub trait Agent: Debug + Send + Sync {
    /// Serves until `shutdown` is cancelled, then finishes in-flight requests and returns
    /// `Ok(())`. Returns an error if it cannot serve (for example, its port is taken).
    fn start(&self, state: SafeState, shutdown: Shutdown) -> BoxFuture<'_, Result<(), LayerError>>;

    /// Checks what the configuration names outside itself (files such as certificates
    /// or tokens) without starting anything; `c19 --check` calls it. The error names
    /// the file and the problem, never a secret. By default there is nothing to check.
    fn check(&self) -> Result<(), LayerError> {
        Ok(())
    }
}
