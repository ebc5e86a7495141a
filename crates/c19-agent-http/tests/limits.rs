//! Body limits, timeouts, shutdown and configuration of the HTTP agent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use c19_agent_http::HttpAgentConfig;
use c19_core::{AgentConfig, LayerError};
use common::*;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn small_limit() -> HttpAgentConfig {
    HttpAgentConfig {
        body_limit: 1024,
        ..HttpAgentConfig::default()
    }
}

fn big_body() -> String {
    json!({"big": {"value": "x".repeat(2000)}}).to_string()
}

#[tokio::test]
async fn a_body_over_the_limit_gets_a_json_413_and_changes_nothing() {
    let server = start(small_limit()).await;
    server.put_json(json!({"kept": {"value": 1}})).await;
    let before = server.snapshot();
    assert_error(&server.put(big_body()).await, 413, "1024 bytes");
    assert_eq!(server.snapshot(), before);
    // Just under the limit is fine.
    let fits = json!({"small": {"value": "x".repeat(900)}}).to_string();
    assert!(fits.len() <= 1024);
    assert_eq!(server.put(fits).await.status, 204);
}

/// Sends a raw HTTP/1.1 request and returns the status line and the body.
async fn raw(port: u16, request: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_413_too() {
    let server = start(small_limit()).await;
    let body = big_body();
    let request = format!(
        "PUT / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let (status, body) = raw(server.port, request.as_bytes()).await;
    assert!(status.contains("413"), "{status}");
    assert!(body.contains("1024 bytes"), "{body}");
    assert_eq!(server.get("/big").await.status, 404);
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = start(HttpAgentConfig {
        idle_timeout: 200.try_into().unwrap(),
        ..HttpAgentConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    // The server ends the silent connection (EOF or reset); the outer timeout only
    // keeps a broken server from hanging the test.
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
        .await
        .expect("the idle connection was not closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn a_slow_body_gets_408() {
    let server = start(HttpAgentConfig {
        idle_timeout: 300.try_into().unwrap(),
        ..HttpAgentConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    // Announces 100 bytes, sends a few, then goes silent.
    stream
        .write_all(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"cat\": {")
        .await
        .unwrap();
    let mut response = Vec::new();
    let reader = async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    response.extend_from_slice(&buf[..n]);
                    if response.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/json"), "{text}");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let server = start_default().await;
    assert_eq!(server.get("/x").await.status, 404);
    server.shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), server.task)
        .await
        .unwrap();
    assert!(result.unwrap().is_ok());
}

#[tokio::test]
async fn a_taken_port_is_a_bind_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let agent = HttpAgentConfig {
        address: "127.0.0.1".parse().unwrap(),
        port: taken.local_addr().unwrap().port(),
        ..HttpAgentConfig::default()
    };
    let state = std::sync::Arc::new(c19_state_default::DefaultState::default());
    let cx = c19_core::LayerContext::new("agent", c19_core::Shutdown::new());
    let error = agent
        .build(&cx, state)
        .await
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert!(matches!(error, LayerError::Bind { .. }), "{error}");
}

#[test]
fn the_config_has_defaults_and_accepts_numbers_as_strings() {
    let agent: Box<dyn AgentConfig> = serde_json::from_value(json!({"kind": "Default"})).unwrap();
    assert_eq!(
        serde_json::to_value(&agent).unwrap(),
        json!({"kind": "Default", "address": "0.0.0.0", "port": 3097, "body_limit": 16777216, "max_connections": 4096, "idle_timeout": 60000})
    );
    let agent: Box<dyn AgentConfig> = serde_json::from_value(
        json!({"kind": "Default", "address": "127.0.0.1", "port": "4000", "body_limit": "10"}),
    )
    .unwrap();
    let shown = serde_json::to_value(&agent).unwrap();
    assert_eq!(
        (shown["port"].clone(), shown["body_limit"].clone()),
        (json!(4000), json!(10))
    );
    let error =
        serde_json::from_value::<Box<dyn AgentConfig>>(json!({"kind": "Default", "prot": 1}))
            .unwrap_err()
            .to_string();
    assert!(error.contains("prot"), "{error}");
}
