//! The telemetry port's `GET /peers`: this agent (its state's version and counts,
//! readiness) and what it knows of each peer, from [`c19_core::status`]. No values, no
//! tokens. `c19 status` and the status page (`GET /`) read it.

use c19_core::{health, status};
use serde_json::{Value, json};

/// The `/peers` document.
pub fn document() -> Value {
    let state = status::state();
    let counts = state.as_ref().and_then(|state| state.counts());
    let ready = health::is_ready();
    let now = c19_core::clock::now_ms();
    let peers: Vec<Value> = status::peers()
        .into_iter()
        .map(|report| {
            let mut peer = serde_json::to_value(&report).unwrap_or_default();
            // What is left of the back-off, so readers need not compare clocks.
            peer["backoff_ms"] = json!(report.backoff_until_ms.saturating_sub(now));
            peer
        })
        .collect();
    json!({
        "agent": {
            "c19": env!("CARGO_PKG_VERSION"),
            "time_ms": now,
            "version": state.as_ref().map(|state| state.version()),
            "keys": counts.map(|(keys, _)| keys),
            "tombstones": counts.map(|(_, tombstones)| tombstones),
            "ready": ready,
            "waiting": health::waiting_for().filter(|_| !ready),
            "components": health::snapshot(),
        },
        "peers": peers,
    })
}
