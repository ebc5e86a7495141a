//! The peer server: what it serves, what it merges, and what it refuses.

use std::time::Duration;

use c19_core::State;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{TestServer, mem_state, start_server, wait_until};
use crate::{identity::NODE_HEADER, server::CONCURRENT_MERGES, stats::StatsSnapshot};

const LIMIT: usize = 4096;
const TIMEOUT: Duration = Duration::from_millis(500);

pub(crate) fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Sends raw bytes and returns everything the server wrote until it closed.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

fn error_of(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(Value::Null)
}

#[tokio::test]
async fn serves_the_state_unless_the_caller_has_the_same_version() {
    let (state, shared) = mem_state();
    state.put("cat", json!("garfield"), 1_603_548_753_122);
    let server = start_server(shared, LIMIT, TIMEOUT).await;
    let base = format!("http://{}", server.addr);

    for path in ["/".to_owned(), "/some-other-version".to_owned()] {
        let response = http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers().get(NODE_HEADER).is_some());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["cat"]["value"], "garfield");
    }
    let version = state.version();
    let response = http()
        .get(format!("{base}/{version}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.content_length(), Some(0));

    let stats: StatsSnapshot = http()
        .get(format!("{base}/_c19/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.pulls_served, 2);
    assert!(stats.bytes_sent > 0);
}

#[tokio::test]
async fn merges_a_pushed_map() {
    let (state, shared) = mem_state();
    let server = start_server(shared, LIMIT, TIMEOUT).await;
    let body = json!({"a": {"value": 1, "ts": 5}, "b": {"value": {"nested": true}, "ts": 6}});
    let response = http()
        .put(format!("http://{}/", server.addr))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(state.value("b"), Some(json!({"nested": true})));
    assert_eq!(server.stats.snapshot().pushes_received, 1);
}

/// A push over the size merged inline, so it needs a merge turn.
fn large_push() -> String {
    let body: serde_json::Map<String, Value> = (0..20_000)
        .map(|i| {
            (
                format!("key-{i}"),
                json!({"value": "x".repeat(40), "ts": 5}),
            )
        })
        .collect();
    let body = Value::Object(body).to_string();
    assert!(body.len() > 512 << 10);
    body
}

#[tokio::test]
async fn a_large_push_arriving_in_many_reads_is_merged_whole() {
    let (state, shared) = mem_state();
    let server = start_server(shared, 8 << 20, Duration::from_secs(10)).await;
    let body = large_push();
    // Written in small pieces, the body reaches the server in many chunks, joined off
    // the async workers before the merge.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT / HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for piece in body.as_bytes().chunks(4096) {
        stream.write_all(piece).await.unwrap();
        stream.flush().await.unwrap();
    }
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("no answer to the push")
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 204"), "{response}");
    assert_eq!(state.len(), 20_000);
    assert_eq!(state.value("key-19999"), Some(json!("x".repeat(40))));
}

/// Takes every merge turn of `server`.
async fn take_every_turn(server: &TestServer) -> tokio::sync::OwnedSemaphorePermit {
    server
        .merges
        .clone()
        .acquire_many_owned(u32::try_from(CONCURRENT_MERGES).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_large_push_finding_every_turn_taken_is_accepted_and_merged_later() {
    let (state, shared) = mem_state();
    let server = start_server(shared, 8 << 20, Duration::from_secs(10)).await;
    let busy = take_every_turn(&server).await;
    // Answered at once, not after a turn frees (the sender would time out and resend).
    let push = http()
        .put(format!("http://{}/", server.addr))
        .body(large_push())
        .send();
    let response = tokio::time::timeout(Duration::from_secs(5), push)
        .await
        .expect("the push waited for a merge turn")
        .unwrap();
    assert_eq!(response.status(), 202);
    let merged_early = wait_until(Duration::from_millis(300), || async {
        state.value("key-0").is_some()
    })
    .await;
    assert!(!merged_early, "merged while every turn was taken");
    drop(busy);
    let merged = wait_until(Duration::from_secs(10), || async { state.len() == 20_000 }).await;
    assert!(
        merged,
        "the accepted push was not merged: {} keys",
        state.len()
    );
}

#[tokio::test]
async fn a_large_push_finding_the_backlog_full_gets_503_with_retry_after() {
    let (state, shared) = mem_state();
    let server = start_server(shared, 8 << 20, Duration::from_secs(10)).await;
    let _busy = take_every_turn(&server).await;
    let room = server.backlog.available_permits();
    let _full = server
        .backlog
        .clone()
        .acquire_many_owned(u32::try_from(room).unwrap())
        .await
        .unwrap();
    let response = http()
        .put(format!("http://{}/", server.addr))
        .body(large_push())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("busy"), "{body}");
    assert_eq!(state.len(), 0);
}

#[tokio::test]
async fn bad_bodies_get_a_json_error_and_change_nothing() {
    let (state, shared) = mem_state();
    state.put("keep", json!("me"), 1);
    let server = start_server(shared, LIMIT, TIMEOUT).await;
    let url = format!("http://{}/", server.addr);
    let (head, version) = (state.head(), state.version());

    let huge = format!(
        "{{\"k\": {{\"value\": \"{}\", \"ts\": 9}}}}",
        "x".repeat(LIMIT)
    );
    for (body, status) in [
        ("{not json".to_owned(), 400),
        ("[1, 2, 3]".to_owned(), 400),
        ("42".to_owned(), 400),
        (
            r#"{"keep": {"value": "lost", "ts": 99}, "bad": {"ts": 100}}"#.to_owned(),
            400,
        ),
        (String::new(), 400),
        (huge, 413),
    ] {
        let response = http().put(&url).body(body.clone()).send().await.unwrap();
        assert_eq!(response.status(), status, "{body:.40}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|message| !message.is_empty()),
            "{error}"
        );
    }
    // A chunked body without a length is cut off at the limit too.
    let chunk = "x".repeat(LIMIT + 1);
    let request = format!(
        "PUT / HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let response = raw(server.addr, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        error_of(&response)["error"]
            .as_str()
            .unwrap()
            .contains("limit"),
        "{response}"
    );

    assert_eq!((state.head(), state.version()), (head, version));
    assert_eq!(state.value("keep"), Some(json!("me")));
    assert_eq!(server.stats.snapshot().requests_refused, 7);
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_others_still_served() {
    let (state, shared) = mem_state();
    let server = start_server(shared, LIMIT, TIMEOUT).await;
    let url = format!("http://{}/", server.addr);

    // Headers that never end: the connection is closed.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"PUT / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // A body that never arrives in full: 408 and nothing merged.
    let slow_body = tokio::spawn(raw(
        server.addr,
        b"PUT / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"a\": {\"value\"",
    ));

    let body = json!({"fine": {"value": 1, "ts": 1}}).to_string();
    assert_eq!(
        http().put(&url).body(body).send().await.unwrap().status(),
        204
    );

    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "a client that never finishes its headers is not kept forever"
    );
    let response = slow_body.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert_eq!(state.len(), 1);
    assert!(
        wait_until(Duration::from_secs(5), || async {
            server.stats.snapshot().requests_refused == 1
        })
        .await
    );
}

#[tokio::test]
async fn refuses_requests_from_itself_and_unknown_routes() {
    let (state, shared) = mem_state();
    let server = start_server(shared, LIMIT, TIMEOUT).await;
    let base = format!("http://{}", server.addr);
    let body = json!({"a": {"value": 1, "ts": 1}}).to_string();

    let response = http()
        .put(format!("{base}/"))
        .header(NODE_HEADER, server.node.as_str())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(response.headers()[NODE_HEADER], server.node.as_str());
    assert_eq!(state.len(), 0);

    for (method, path, status) in [
        (reqwest::Method::GET, "/a/b", 404),
        (reqwest::Method::GET, "/_c19/nothing", 404),
        (reqwest::Method::PUT, "/key", 405),
        (reqwest::Method::DELETE, "/", 405),
    ] {
        let response = http()
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"].is_string(), "{method} {path}: {error}");
    }
}

#[tokio::test]
async fn every_response_carries_the_agents_clock() {
    let (_, shared) = mem_state();
    let server = start_server(shared, LIMIT, TIMEOUT).await;
    for path in ["/", "/_c19/stats", "/no/such/path"] {
        let before = c19_core::clock::now_ms();
        let response = http()
            .get(format!("http://{}{path}", server.addr))
            .send()
            .await
            .unwrap();
        let after = c19_core::clock::now_ms();
        let clock = crate::clock::peer_clock(response.headers()).expect(path);
        assert!(
            before <= clock && clock <= after,
            "{before} {clock} {after}"
        );
    }
}

#[tokio::test]
async fn a_push_answer_says_when_the_agents_next_round_goes() {
    let (_, shared) = mem_state();
    let server = start_server(shared, LIMIT, TIMEOUT).await;
    let client = crate::client::PeerClient::new(
        &crate::DefaultConnectionConfig::default().settings(4097),
        crate::identity::NodeId::random(),
    )
    .unwrap();
    let push = || {
        client.push(
            server.addr,
            bytes::Bytes::from_static(br#"{"k":{"value":"v","ts":1}}"#),
        )
    };
    assert_eq!(
        push().await.unwrap(),
        Some(Duration::ZERO),
        "an agent that has not pushed forwards at once"
    );
    server
        .cadence
        .set(tokio::time::Instant::now() + Duration::from_millis(150));
    let wait = push().await.unwrap().unwrap();
    assert!(
        Duration::from_millis(100) < wait && wait <= Duration::from_millis(150),
        "{wait:?}"
    );
}
