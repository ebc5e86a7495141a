//! What a layer's configuration is given when it builds the live layer.
//!
//! Every layer kind has a configuration type (plain data, selected in YAML by `kind:`)
//! whose `build` method receives a [`LayerContext`] and returns the running layer. The
//! context carries what every layer may need from the agent around it, so that new
//! needs become new methods here rather than new arguments of every `build`:
//!
//! - the [`Shutdown`] on which the layer stops its work,
//! - a [`Readiness`] handle for the layer's component on `/readyz`,
//! - the agent's [`Identity`],
//! - a prefix for the layer's metric names.

use std::{fmt, sync::Arc};

use crate::{health, shutdown::Shutdown};

/// What a layer is built with; see the [module docs](self).
///
/// Cloning is cheap. A layer that builds a nested layer (a connection its peer
/// provider) hands it [`LayerContext::child`].
#[derive(Clone)]
pub struct LayerContext {
    component: Arc<str>,
    shutdown: Shutdown,
    identity: Arc<Identity>,
}

impl fmt::Debug for LayerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerContext")
            .field("component", &self.component)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl LayerContext {
    /// A context for `component` (`state`, `agent`, `connection`, …) that stops with
    /// `shutdown`, with the agent's identity read from the environment
    /// ([`Identity::from_env`]).
    pub fn new(component: &str, shutdown: Shutdown) -> Self {
        Self {
            component: component.into(),
            shutdown,
            identity: Arc::new(Identity::from_env()),
        }
    }

    /// The same context with `identity` instead (tests and simulations name agents
    /// themselves).
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = Arc::new(identity);
        self
    }

    /// The context of a layer nested in this one, named `component.name`
    /// (`connection.peer_provider`). It stops when this one does, or earlier through its
    /// own [`Shutdown`].
    pub fn child(&self, name: &str) -> Self {
        Self {
            component: format!("{}.{name}", self.component).into(),
            shutdown: self.shutdown.child_token(),
            identity: self.identity.clone(),
        }
    }

    /// The component this context is for, as `/readyz` names it.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The signal on which the layer stops: it stops taking work, finishes what is in
    /// flight and returns.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The readiness of this component on `/readyz`.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            component: self.component.clone(),
        }
    }

    /// The agent this layer is part of.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A prefix for this layer's metric names: `c19_` and the component, dots as
    /// underscores (`c19_connection_peer_provider`).
    pub fn metrics_prefix(&self) -> String {
        format!("c19_{}", self.component.replace('.', "_"))
    }
}

/// One component's entry on `/readyz`; see [`LayerContext::readiness`].
///
/// The runtime registers the `state`, `agent` and `connection` components as pending
/// before it builds them; a layer marks itself ready once it can serve, says what it
/// still waits for, and is marked not ready when it stops. A nested layer's component
/// (`connection.peer_provider`) appears on `/readyz` only once it reports.
#[derive(Debug, Clone)]
pub struct Readiness {
    component: Arc<str>,
}

impl Readiness {
    /// A handle for `component`, outside any context (tests).
    pub fn for_component(component: &str) -> Self {
        Self {
            component: component.into(),
        }
    }

    /// The component's name.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The component can serve.
    pub fn ready(&self) {
        health::ready(&self.component);
    }

    /// The component is not ready, waiting for `reason` (`first sync with a peer`),
    /// which `/readyz` names.
    pub fn waiting(&self, reason: &str) {
        health::waiting(&self.component, reason);
    }

    /// The component stopped, or is stopping.
    pub fn unready(&self) {
        health::unready(&self.component);
    }

    /// Removes the component from `/readyz`: it is gone for good, not merely stopped
    /// (the simulator's agents, which come and go by the thousand).
    pub fn forget(&self) {
        health::forget(&self.component);
    }

    /// Whether the component is ready now.
    pub fn is_ready(&self) -> bool {
        health::is_component_ready(&self.component)
    }
}

/// Who the agent is, as far as its environment says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// The agent's name: `POD_NAME` when set (Kubernetes' downward API), else the
    /// host name, else `c19`.
    pub name: String,
}

impl Identity {
    /// An identity named `name`.
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// The identity from the process environment; see [`Identity::name`].
    pub fn from_env() -> Self {
        let name = std::env::var("POD_NAME")
            .ok()
            .filter(|name| !name.is_empty())
            .or_else(|| {
                hostname::get()
                    .ok()
                    .and_then(|name| name.into_string().ok())
                    .filter(|name| !name.is_empty())
            })
            .unwrap_or_else(|| "c19".to_owned());
        Self { name }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_named_after_its_parent_and_stops_with_it() {
        let parent = LayerContext::new("connection", Shutdown::new())
            .with_identity(Identity::named("node-1"));
        let child = parent.child("peer_provider");
        assert_eq!(child.component(), "connection.peer_provider");
        assert_eq!(child.metrics_prefix(), "c19_connection_peer_provider");
        assert_eq!(child.identity().name, "node-1");
        child.shutdown().cancel();
        assert!(!parent.shutdown().is_cancelled(), "a child stops alone");
        let other = parent.child("peer_provider");
        parent.shutdown().cancel();
        assert!(
            other.shutdown().is_cancelled(),
            "a parent stops its children"
        );
    }
}
