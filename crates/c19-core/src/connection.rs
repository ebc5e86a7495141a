//! The connection layer: exchanges the state with peers.

use std::fmt::Debug;

use futures::future::BoxFuture;

use crate::{error::LayerError, layer::LayerContext, state::SafeState};

/// The configuration of a connection kind, selected in YAML by `kind:`.
///
/// It is plain data; [`ConnectionConfig::build`] makes the live [`Connection`]. A
/// connection usually asks a [`crate::PeerProvider`] for its peers, built from a nested
/// [`crate::PeerProviderConfig`] with [`LayerContext::child`].
#[typetag::serde(tag = "kind")]
pub trait ConnectionConfig: Debug + Send + Sync {
    /// Builds the connection that will exchange `state`, and its peer provider. It
    /// binds nothing yet: [`Connection::run`] does.
    fn build<'a>(
        &'a self,
        cx: &'a LayerContext,
        state: SafeState,
    ) -> BoxFuture<'a, Result<Box<dyn Connection>, LayerError>>;

    /// Checks what the configuration names outside itself (files such as certificates
    /// or tokens) without starting anything; `c19 --check` calls it. The error names
    /// the file and the problem, never a secret. By default there is nothing to check.
    fn check(&self) -> Result<(), LayerError> {
        Ok(())
    }
}

/// The live connection: decides how, when and with whom the state is exchanged.
pub trait Connection: Send {
    /// Exchanges the state until the shutdown of the context it was built with is
    /// cancelled, then returns `Ok(())`; it marks its readiness (the Default connection:
    /// after its first sync with a peer). Returns an error if it cannot run (for
    /// example, its port is taken).
    fn run(self: Box<Self>) -> BoxFuture<'static, Result<(), LayerError>>;
}
