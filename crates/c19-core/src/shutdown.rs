//! The shutdown signal handed to every layer.
//!
//! It is a [`CancellationToken`]: layers await [`CancellationToken::cancelled`] to stop
//! accepting work and finish what is in flight; child tokens let a layer stop its own
//! tasks without stopping the agent.

pub use tokio_util::sync::CancellationToken;

/// The shutdown signal a layer is built with ([`crate::LayerContext::shutdown`]).
pub type Shutdown = CancellationToken;

/// Resolves when the process receives SIGINT (Ctrl-C) or, on Unix, SIGTERM.
///
/// If a handler cannot be installed the error is logged and that signal is ignored, so
/// the agent keeps running rather than stopping at once.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}
