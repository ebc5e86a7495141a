//! HTTPS on the agent port (`tls:` in the agent's configuration).
//!
//! With `tls`, the agent port speaks only TLS with `cert` and `key`; with `ca` as well,
//! every client must present a certificate that chains to it. The files are reloaded
//! when they change. Without `tls` the port speaks plain HTTP, as in 0.1 (a sidecar on
//! 127.0.0.1 needs nothing more).

use std::{num::NonZeroU64, path::PathBuf, sync::Arc, time::Duration};

use c19_core::{LayerError, Shutdown};
use c19_tls::{Acceptor, Identity, Mode, Reason, TlsFiles};
use serde::{Deserialize, Serialize};
use serde_with::{DisplayFromStr, PickFirst, serde_as};

/// `tls:` of the Default agent.
#[serde_as]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTls {
    /// The agent's certificate chain, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate that chains to this CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Milliseconds between checks of the files for a change (default 10000).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_reload_interval")]
    pub reload_interval: NonZeroU64,
}

fn default_reload_interval() -> NonZeroU64 {
    NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN)
}

impl AgentTls {
    /// Loads and checks the files.
    pub fn identity(&self) -> Result<Identity, LayerError> {
        Identity::for_server(TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: self.ca.clone(),
        })
        .map_err(|error| LayerError::other(format!("agent.tls: {error}")))
    }

    /// The acceptor for the agent port, its files watched until `shutdown`.
    pub(crate) fn acceptor(
        &self,
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<Arc<Acceptor>, LayerError> {
        let identity = self.identity()?;
        let config = identity
            .server_config()
            .map_err(|error| LayerError::other(format!("agent.tls: {error}")))?;
        c19_tls::export_expiry("agent", &identity);
        let interval = Duration::from_millis(self.reload_interval.get());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            identity
                .watch(interval, stop.cancelled_owned(), |identity| {
                    c19_tls::export_expiry("agent", identity)
                })
                .await
        });
        Ok(Arc::new(Acceptor::new(config, Mode::Strict, timeout)))
    }
}

/// Counts a connection the agent port's TLS refused in `c19_agent_refused_total{reason}`
/// (exported at zero from the start, so dashboards and alerts see every reason).
pub(crate) fn count_refusals() -> impl Fn(Reason) + Send + Sync + 'static {
    metrics::describe_counter!(
        "c19_agent_refused_total",
        "Connections to the agent API refused by its TLS, by reason (plaintext, no_certificate, unknown_ca, expired_certificate, wrong_name, handshake, handshake_timeout)"
    );
    for reason in Reason::ALL {
        metrics::counter!("c19_agent_refused_total", "reason" => reason.as_str()).increment(0);
    }
    |reason: Reason| {
        metrics::counter!("c19_agent_refused_total", "reason" => reason.as_str()).increment(1);
    }
}
