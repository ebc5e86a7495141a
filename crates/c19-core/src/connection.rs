//! The connection layer: exchanges the state with peers.

use std::fmt::Debug;

use futures::future::BoxFuture;

use crate::{error::LayerError, shutdown::Shutdown, state::SafeState};

/// The Connection trait.
///
/// A connection decides how, when and with whom the state is exchanged; it usually asks
/// a [`crate::PeerProvider`] for the peers.
#[typetag::serde(tag = "kind")]
pub trait Connection: Debug + Send + Sync {
    /// Exchanges the state until `shutdown` is cancelled, then returns `Ok(())`. Returns
    /// an error if it cannot run (for example, its port is taken).
    fn start(&self, state: SafeState, shutdown: Shutdown) -> BoxFuture<'_, Result<(), LayerError>>;

    /// Checks what the configuration names outside itself (files such as certificates
    /// or tokens) without starting anything; `c19 --check` calls it. The error names
    /// the file and the problem, never a secret. By default there is nothing to check.
    fn check(&self) -> Result<(), LayerError> {
        Ok(())
    }
}
