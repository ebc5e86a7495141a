//! The telemetry endpoints, on their own port so no key name can collide with them:
//! `GET /healthz` (the process is alive), `GET /readyz` (state initialised and seeded,
//! listeners up, first sync with a peer done or nothing to wait for; 503 otherwise),
//! `GET /metrics` (Prometheus text format), `GET /peers` (this agent and its peers, see
//! [`crate::board`]) and `GET /` (the status page, one self-contained HTML file).
//!
//! `/readyz` answers `{"ready": bool, "components": {"agent": bool, ...}}`, plus
//! `"waiting": "<what>"` (e.g. `first sync with a peer`) while a component that said
//! what it waits for is not ready.

use axum::{
    Json, Router,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use c19_core::{LayerError, Shutdown, TelemetryConfig, health};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::time::Duration;

use tokio::net::TcpListener;

/// The status page: plain HTML, CSS and JavaScript, no external assets.
const STATUS_PAGE: &str = include_str!("status_page.html");

/// Latency buckets, in seconds: from a fast local read (100 µs) to a slow peer (10 s).
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Installs the Prometheus recorder behind the `metrics` facade the layers record to.
/// `*_seconds` metrics are exported as histograms with [`SECONDS_BUCKETS`].
/// Returns `None` (and metrics are dropped) if another recorder is installed already.
pub fn install_recorder() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS);
    let installed = builder.and_then(PrometheusBuilder::install_recorder);
    match installed {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::warn!(%error, "metrics are disabled");
            None
        }
    }
}

/// How often recorded samples are folded into the exported histograms.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every [`UPKEEP_INTERVAL`] until
/// `shutdown` is cancelled. The recorder keeps every sample until then, and only a scrape
/// or an upkeep frees them: an agent nobody scrapes grew by about 20 bytes a request
/// (18 MB for 850k GETs) without this.
pub async fn keep_up(metrics: PrometheusHandle, shutdown: Shutdown) {
    every(UPKEEP_INTERVAL, shutdown, move || metrics.run_upkeep()).await;
}

/// Calls `upkeep` every `interval` until `shutdown` is cancelled.
async fn every(interval: Duration, shutdown: Shutdown, upkeep: impl Fn()) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    // After a stall one upkeep catches up with everything; a burst would add nothing.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => upkeep(),
            () = shutdown.cancelled() => return,
        }
    }
}

/// Binds the telemetry listener.
pub async fn bind(config: &TelemetryConfig) -> Result<TcpListener, LayerError> {
    let addr = format!("{}:{}", config.address, config.port);
    let bracketed = if config.address.contains(':') {
        format!("[{}]:{}", config.address, config.port)
    } else {
        addr.clone()
    };
    TcpListener::bind(&bracketed)
        .await
        .map_err(|source| LayerError::Bind { addr, source })
}

/// Binds the telemetry listener; `None` (after a warning naming the port) when the
/// configuration has no telemetry section and the default port is taken, so agents of
/// 0.1 files can share a host. A taken port that was configured is an error.
pub async fn bind_or_skip(config: &TelemetryConfig) -> Result<Option<TcpListener>, LayerError> {
    match bind(config).await {
        Ok(listener) => Ok(Some(listener)),
        Err(LayerError::Bind { addr, source })
            if !config.explicit && source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            tracing::warn!(
                %addr,
                port = config.port,
                "telemetry: port {} is taken and no telemetry section is configured; running \
                 without /healthz, /readyz and /metrics (set spec.telemetry to serve them)",
                config.port
            );
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Serves the endpoints on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, metrics: Option<PrometheusHandle>, shutdown: Shutdown) {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/peers", get(|| async { Json(crate::board::document()) }))
        .route(
            "/",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    STATUS_PAGE,
                )
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = metrics
                    .as_ref()
                    .map(PrometheusHandle::render)
                    .unwrap_or_default();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
            }),
        );
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "the telemetry server failed");
    }
}

async fn readyz() -> impl IntoResponse {
    let components = health::snapshot();
    let ready = health::is_ready();
    let mut body = serde_json::json!({ "ready": ready, "components": components });
    if let Some(waiting) = health::waiting_for().filter(|_| !ready) {
        body["waiting"] = serde_json::Value::String(waiting);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    #[tokio::test]
    async fn a_taken_default_port_is_skipped_and_a_configured_one_is_an_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let mut config = TelemetryConfig {
            address: "127.0.0.1".into(),
            port,
            ..TelemetryConfig::default()
        };
        assert!(bind_or_skip(&config).await.unwrap().is_none());
        config.explicit = true;
        let error = bind_or_skip(&config).await.unwrap_err().to_string();
        assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
        drop(taken);
        assert!(bind_or_skip(&config).await.unwrap().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn upkeep_runs_every_interval_until_shutdown() {
        let runs = Arc::new(AtomicUsize::new(0));
        let shutdown = Shutdown::new();
        let counted = runs.clone();
        let task = tokio::spawn(every(UPKEEP_INTERVAL, shutdown.clone(), move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }));
        tokio::time::sleep(UPKEEP_INTERVAL * 3 + UPKEEP_INTERVAL / 2).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        shutdown.cancel();
        task.await.unwrap();
        tokio::time::sleep(UPKEEP_INTERVAL * 2).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "no upkeep after shutdown");
    }
}
