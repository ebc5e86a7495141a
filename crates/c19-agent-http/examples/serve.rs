//! Serves the HTTP agent over a Default state preloaded with keys, for load tools:
//!
//! ```text
//! cargo run --release -p c19-agent-http --example serve -- 3097 1000
//! wrk -t2 -c32 -d10s http://127.0.0.1:3097/get-1
//! ```
//!
//! Arguments: the port (default 3097) and how many keys `get-0`, `get-1`, ... to
//! preload with 60-byte values (default 1000). Stops on Ctrl-C.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use c19_agent_http::HttpAgentConfig;
use c19_core::{SafeState, Shutdown, State};
use c19_state_default::DefaultState;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map_or(3097, |port| port.parse().unwrap());
    let keys: usize = args.next().map_or(1000, |keys| keys.parse().unwrap());
    let state = Arc::new(DefaultState::default());
    for start in (0..keys).step_by(10_000) {
        let mut batch = serde_json::Map::new();
        for i in start..(start + 10_000).min(keys) {
            let value = format!("{i:058}");
            batch.insert(format!("get-{i}"), serde_json::json!({ "value": value }));
        }
        state
            .set(&serde_json::Value::Object(batch).to_string())
            .unwrap();
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    println!("serving {keys} keys on http://127.0.0.1:{port}/get-<i>");
    let shutdown = Shutdown::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        c19_core::shutdown::signal().await;
        on_signal.cancel();
    });
    let state: SafeState = state;
    c19_agent_http::serve(listener, state, &HttpAgentConfig::default(), shutdown)
        .await
        .unwrap();
}
