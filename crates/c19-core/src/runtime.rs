//! Running an agent: the state, then the connection and the agent side by side.
//!
//! Shutdown is ordered so that an acknowledged write survives a rolling restart: the
//! agent stops first (no new writes; in-flight requests finish), then the connection is
//! asked to stop, which lets it push what its peers have not seen yet. Both steps
//! together take at most the configured `grace_period`.

use std::{future::Future, pin::Pin, time::Duration};

use futures::FutureExt;
use tokio::time::Instant;

use crate::{Config, Error, LayerContext, Result, health, shutdown::Shutdown};

type LayerFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

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
    crate::clock::log_test_offset();
    health::reset();
    crate::status::reset();
    for component in ["state", "agent", "connection"] {
        health::pending(component);
    }
    // Background work of the state (expiry, GC) stops last, with the whole run.
    let background = Shutdown::new();
    let _stop_background = background.clone().drop_guard();
    let state_cx = LayerContext::new("state", background.clone());
    let state = spec.state.build(&state_cx).await?;
    crate::status::register_state(&state);
    health::ready("state");

    let agent_stop = Shutdown::new();
    let connection_stop = Shutdown::new();
    let agent_cx = LayerContext::new("agent", agent_stop.clone());
    let connection_cx = LayerContext::new("connection", connection_stop.clone());
    let built = async {
        let agent = spec
            .agent
            .build(&agent_cx, state.clone())
            .await
            .map_err(Error::Agent)?;
        let connection = spec
            .connection
            .build(&connection_cx, state.clone())
            .await
            .map_err(Error::Connection)?;
        Ok::<_, Error>((agent, connection))
    };
    let (agent, connection) = match built.await {
        Ok(layers) => layers,
        Err(error) => {
            state.close().await;
            return Err(error);
        }
    };
    let mut agent: LayerFuture<'_> =
        Box::pin(agent.run().map(|result| result.map_err(Error::Agent)));
    let mut connection: LayerFuture<'_> = Box::pin(
        connection
            .run()
            .map(|result| result.map_err(Error::Connection)),
    );
    tracing::info!("c19 agent started");

    let grace = Duration::from_millis(spec.grace_period);
    let result = tokio::select! {
        () = shutdown.cancelled() => {
            tracing::info!(grace_period_ms = spec.grace_period, "shutting down");
            let deadline = Instant::now() + grace;
            health::unready("agent");
            agent_stop.cancel();
            let agent_result = finish("agent", agent, deadline).await;
            health::unready("connection");
            connection_stop.cancel();
            let connection_result = finish("connection", connection, deadline).await;
            agent_result.and(connection_result).inspect(|()| {
                tracing::info!("c19 agent stopped");
            })
        }
        result = &mut agent => {
            health::unready("agent");
            connection_stop.cancel();
            let stopped = finish("connection", connection, Instant::now() + grace).await;
            result.and(stopped).and(Err(Error::Stopped("agent")))
        }
        result = &mut connection => {
            health::unready("connection");
            agent_stop.cancel();
            let stopped = finish("agent", agent, Instant::now() + grace).await;
            result.and(stopped).and(Err(Error::Stopped("connection")))
        }
    };
    // Nothing writes any more: the state writes out what it holds back.
    state.close().await;
    result
}

/// Waits for a stopping layer until `deadline`; a layer that overruns is abandoned.
async fn finish(name: &str, layer: LayerFuture<'_>, deadline: Instant) -> Result<()> {
    match tokio::time::timeout_at(deadline, layer).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!("the {name} layer did not stop within the grace period");
            Ok(())
        }
    }
}
