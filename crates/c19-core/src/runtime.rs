//! Running an agent: the state, then the connection and the agent side by side.

use std::time::Duration;

use futures::FutureExt;

use crate::{Config, Error, Result, shutdown::Shutdown};

/// How long the remaining layer may take to finish after the first one stopped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the agent until SIGINT or SIGTERM (then shuts down gracefully and returns
/// `Ok(())`) or until a layer fails (then returns its error).
pub async fn run(config: Config) -> Result<()> {
    let shutdown = Shutdown::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        crate::shutdown::signal().await;
        on_signal.cancel();
    });
    run_until(config, shutdown).await
}

/// Runs the agent until `shutdown` is cancelled or a layer fails.
pub async fn run_until(config: Config, shutdown: Shutdown) -> Result<()> {
    let spec = &config.spec;
    let state = spec.state.init(shutdown.child_token()).await?;
    // Cancelled on shutdown, and also when one layer stops, to stop the other.
    let layers = shutdown.child_token();
    let mut connection = spec
        .connection
        .start(state.clone(), layers.clone())
        .map(|result| result.map_err(Error::Connection))
        .fuse();
    let mut agent = spec
        .agent
        .start(state.clone(), layers.clone())
        .map(|result| result.map_err(Error::Agent))
        .fuse();
    tracing::info!("c19 agent started");

    let (first_name, first, rest) = tokio::select! {
        result = &mut connection => ("connection", result, agent.boxed()),
        result = &mut agent => ("agent", result, connection.boxed()),
    };
    layers.cancel();
    let second = match tokio::time::timeout(SHUTDOWN_GRACE, rest).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!("a layer did not stop within {SHUTDOWN_GRACE:?}");
            Ok(())
        }
    };
    first?;
    second?;
    if shutdown.is_cancelled() {
        tracing::info!("c19 agent stopped");
        Ok(())
    } else {
        Err(Error::Stopped(first_name))
    }
}
