//! An agent served on 127.0.0.1 with the real Default state, and a client for it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use c19_agent_http::HttpAgentConfig;
use c19_core::{SafeState, Shutdown};
use c19_state_default::DefaultState;
use serde_json::Value;
use tokio::{net::TcpListener, task::JoinHandle};

/// A running agent.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The port.
    pub port: u16,
    /// The state it serves.
    pub state: SafeState,
    /// Stops it.
    pub shutdown: Shutdown,
    /// The serving task.
    pub task: JoinHandle<Result<(), c19_core::LayerError>>,
    /// A client with keep-alive.
    pub client: reqwest::Client,
}

/// Serves a fresh Default state with `config` on a free loopback port.
pub async fn start(config: HttpAgentConfig) -> Server {
    start_with(Arc::new(DefaultState::default()), config).await
}

/// Serves `state` with `config` on a free loopback port.
pub async fn start_with(state: SafeState, config: HttpAgentConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = Shutdown::new();
    let task = tokio::spawn({
        let (state, shutdown) = (state.clone(), shutdown.clone());
        async move { c19_agent_http::serve(listener, state, &config, shutdown).await }
    });
    // reqwest is built without a TLS provider of its own; these tests speak plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Server {
        base: format!("http://127.0.0.1:{port}"),
        port,
        state,
        shutdown,
        task,
        client,
    }
}

/// Serves with the default configuration.
pub async fn start_default() -> Server {
    start(HttpAgentConfig::default()).await
}

/// A response's status and body parsed as JSON (`Null` when empty).
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub content_type: Option<String>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|value| value.to_str().unwrap().to_owned());
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|error| panic!("not JSON ({error}): {bytes:?}"))
        };
        Reply {
            status,
            body,
            content_type,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        Self::reply(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn put(&self, body: impl Into<reqwest::Body>) -> Reply {
        Self::reply(
            self.client
                .put(self.url("/"))
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn put_json(&self, body: Value) -> Reply {
        self.put(body.to_string()).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        Self::reply(self.client.delete(self.url(path)).send().await.unwrap()).await
    }

    pub async fn request(&self, method: reqwest::Method, path: &str) -> (Reply, Option<String>) {
        let response = self
            .client
            .request(method, self.url(path))
            .send()
            .await
            .unwrap();
        let allow = response
            .headers()
            .get("allow")
            .map(|value| value.to_str().unwrap().to_owned());
        (Self::reply(response).await, allow)
    }

    /// The state as a sorted map, to compare before and after a request.
    pub fn snapshot(&self) -> (String, std::collections::BTreeMap<String, Value>) {
        let root: serde_json::Map<String, Value> =
            serde_json::from_slice(&self.state.get_root()).unwrap();
        (self.state.version(), root.into_iter().collect())
    }
}

/// Asserts `reply` is a JSON error with `status` whose message contains `needle`.
pub fn assert_error(reply: &Reply, status: u16, needle: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let message = reply.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {}", reply.body));
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}
