//! The telemetry endpoints, on their own port so no key name can collide with them:
//! `GET /healthz` (the process is alive), `GET /readyz` (state initialised and seeded,
//! listeners up; 503 otherwise) and `GET /metrics` (Prometheus text format).

use axum::{
    Json, Router,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use c19_core::{LayerError, Shutdown, TelemetryConfig, health};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

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

/// Serves the endpoints on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, metrics: Option<PrometheusHandle>, shutdown: Shutdown) {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
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
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "ready": ready, "components": components })),
    )
}
