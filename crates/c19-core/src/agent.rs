//! The agent layer: serves the local application.

use std::fmt::Debug;

use futures::future::BoxFuture;

use crate::{error::LayerError, layer::LayerContext, state::SafeState};

/// The configuration of an agent kind, selected in YAML by `kind:`.
///
/// It is plain data; [`AgentConfig::build`] makes the live [`Agent`].
#[typetag::serde(tag = "kind")]
pub trait AgentConfig: Debug + Send + Sync {
    /// Builds the agent that will serve `state`, reading what the configuration names
    /// (certificates, tokens). It binds nothing yet: [`Agent::run`] does.
    fn build<'a>(
        &'a self,
        cx: &'a LayerContext,
        state: SafeState,
    ) -> BoxFuture<'a, Result<Box<dyn Agent>, LayerError>>;

    /// Checks what the configuration names outside itself (files such as certificates
    /// or tokens) without starting anything; `c19 --check` calls it. The error names
    /// the file and the problem, never a secret. By default there is nothing to check.
    fn check(&self) -> Result<(), LayerError> {
        Ok(())
    }
}

/// The live agent: exposes the state to the application next to it (the default one
/// over HTTP).
pub trait Agent: Send {
    /// Serves until the shutdown of the context it was built with is cancelled, then
    /// finishes in-flight requests and returns `Ok(())`; it marks its readiness when it
    /// can serve. Returns an error if it cannot serve (for example, its port is taken).
    fn run(self: Box<Self>) -> BoxFuture<'static, Result<(), LayerError>>;
}
