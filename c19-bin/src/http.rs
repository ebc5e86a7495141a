//! The HTTP client of the commands that talk to a running agent (`c19 status`, `c19 kv`).

use std::{future::Future, path::Path, time::Duration};

/// A client with `timeout` per request (none for streams: `Duration::ZERO`); with `ca`,
/// `https` agents must have a certificate from that bundle (PEM), and only from it.
pub fn client(ca: Option<&Path>, timeout: Duration) -> Result<reqwest::Client, String> {
    // reqwest is built without a bundled crypto provider; another caller may have
    // installed it already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("c19-cli/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .no_proxy();
    if !timeout.is_zero() {
        builder = builder.timeout(timeout);
    }
    if let Some(ca) = ca {
        let pem = std::fs::read(ca)
            .map_err(|error| format!("cannot read --ca {}: {error}", ca.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
            format!(
                "--ca {}: not a PEM certificate bundle: {error}",
                ca.display()
            )
        })?;
        builder = builder.tls_certs_only(certificates);
    }
    builder
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))
}

/// Runs `future` on a small runtime of its own.
pub fn block_on<T>(future: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?
        .block_on(future)
}

/// The message of an agent's error answer (`{"error": "..."}`), or the body itself.
pub fn agent_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}
