//! The `Default` agent: its configuration, which builds the live [`HttpAgent`], and the
//! serving of its API.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::{NonZeroU64, NonZeroUsize},
    time::Duration,
};

use c19_core::{
    Agent, AgentConfig, LayerContext, LayerError, SafeState, Shutdown,
    reexports::futures::future::{self, BoxFuture},
};
use serde::{Deserialize, Serialize};
use serde_with::{DisplayFromStr, PickFirst, serde_as};
use tokio::net::TcpListener;

use crate::{
    auth::AuthConfig, listener::LimitedListener, routes::app, service::PerConnection, tls::AgentTls,
};

/// The configuration of the `Default` agent (`kind: Default`): the HTTP API on
/// `address:port`.
#[serde_as]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAgentConfig {
    /// The IP address to listen on (`0.0.0.0`: every interface).
    #[serde(default = "default_address")]
    pub address: IpAddr,
    /// The port to listen on (default 3097).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_port")]
    pub port: u16,
    /// The largest `PUT` body, in bytes; larger ones get 413 (default 16 MiB).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
    /// The most connections open at once; more wait to be accepted (default 4096).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    /// Milliseconds a connection may stay silent, and a body may take to arrive,
    /// before the agent gives up on it (default 60000).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: NonZeroU64,
    /// Bearer tokens required on every request (see [`AuthConfig`]). Without it the
    /// API is open to whoever reaches the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// HTTPS on the agent port; without it the port speaks plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<AgentTls>,
}

fn default_address() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

fn default_port() -> u16 {
    3097
}

fn default_body_limit() -> usize {
    16 * 1024 * 1024
}

fn default_max_connections() -> NonZeroUsize {
    NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN)
}

fn default_idle_timeout() -> NonZeroU64 {
    NonZeroU64::new(60_000).unwrap_or(NonZeroU64::MIN)
}

impl Default for HttpAgentConfig {
    fn default() -> Self {
        Self {
            address: default_address(),
            port: default_port(),
            body_limit: default_body_limit(),
            max_connections: default_max_connections(),
            idle_timeout: default_idle_timeout(),
            auth: None,
            tls: None,
        }
    }
}

impl HttpAgentConfig {
    /// Checks the files this configuration names as start-up would, without binding or
    /// serving: with `auth`, loads the tokens file and reports a missing, unreadable,
    /// malformed or empty one (naming the file and the line, never a token). For a
    /// configuration check (`--check`).
    pub fn check_files(&self) -> Result<(), LayerError> {
        if let Some(auth) = &self.auth {
            auth.load().map_err(LayerError::other)?;
        }
        if let Some(tls) = &self.tls {
            tls.identity()?;
        }
        Ok(())
    }
}

/// Serves the API for `state` on `listener` until `shutdown`, then lets in-flight
/// requests finish (watch streams end at once). With `auth`, an unusable tokens file is
/// an error before anything is served.
pub async fn serve(
    listener: TcpListener,
    state: SafeState,
    config: &HttpAgentConfig,
    shutdown: Shutdown,
) -> Result<(), LayerError> {
    let idle_timeout = Duration::from_millis(config.idle_timeout.get());
    let mut listener = LimitedListener::new(listener, config.max_connections.get(), idle_timeout);
    if let Some(tls) = &config.tls {
        listener = listener.with_tls(tls.acceptor(idle_timeout, &shutdown)?);
    }
    let app = PerConnection(app(state, config, shutdown.clone())?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(LayerError::Io)
}

#[typetag::serde(name = "Default")]
impl AgentConfig for HttpAgentConfig {
    fn build<'a>(
        &'a self,
        cx: &'a LayerContext,
        state: SafeState,
    ) -> BoxFuture<'a, Result<Box<dyn Agent>, LayerError>> {
        let agent = HttpAgent {
            config: self.clone(),
            state,
            cx: cx.clone(),
        };
        Box::pin(future::ready(Ok(Box::new(agent) as Box<dyn Agent>)))
    }

    fn check(&self) -> Result<(), LayerError> {
        self.check_files()
    }
}

/// The live `Default` agent, built by [`HttpAgentConfig`]: [`Agent::run`] binds the port
/// and serves until the context's shutdown.
#[derive(Debug)]
pub struct HttpAgent {
    config: HttpAgentConfig,
    state: SafeState,
    cx: LayerContext,
}

impl Agent for HttpAgent {
    fn run(self: Box<Self>) -> BoxFuture<'static, Result<(), LayerError>> {
        Box::pin(async move {
            let addr = SocketAddr::new(self.config.address, self.config.port);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| LayerError::Bind {
                    addr: addr.to_string(),
                    source,
                })?;
            tracing::info!(%addr, "agent API listening");
            self.cx.readiness().ready();
            serve(
                listener,
                self.state,
                &self.config,
                self.cx.shutdown().clone(),
            )
            .await
        })
    }
}
