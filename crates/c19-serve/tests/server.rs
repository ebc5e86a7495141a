//! [`c19_serve::Server`] over real sockets: the connection cap, the header timeout, the
//! `Date` header, the watch exemption and the graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, extract::Request, response::Response};
use c19_core::Shutdown;
use c19_serve::{Server, StreamControl};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tower_service::Service;

/// Answers `ok`; a request for `/stream` marks its connection as streaming.
#[derive(Clone)]
struct Hello(StreamControl);

impl Service<Request> for Hello {
    type Response = Response;
    type Error = Infallible;
    type Future = Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.uri().path() == "/stream" {
            self.0.streaming();
        }
        ready(Ok(Response::new(Body::from("ok"))))
    }
}

async fn start(
    configure: impl FnOnce(Server) -> Server,
    shutdown: &Shutdown,
) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = configure(Server::new(listener, 1, Duration::from_millis(300)));
    let shutdown = shutdown.clone();
    let serving = tokio::spawn(async move {
        server
            .serve(|connection| Hello(connection.control().clone()), shutdown)
            .await;
    });
    (addr, serving)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

/// Sends `request` and reads one response (whose body is `ok`).
async fn exchange(client: &mut TcpStream, request: &[u8]) -> String {
    client.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"ok") {
        let n = client.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(answer).unwrap()
}

/// Whether the server closes `client` within `within`.
async fn closed_within(client: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, client.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn beyond_the_cap_connections_wait_for_a_free_slot() {
    let shutdown = Shutdown::new();
    let (addr, _serving) = start(|server| server, &shutdown).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert!(exchange(&mut first, GET).await.starts_with("HTTP/1.1 200"));
    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(GET).await.unwrap();
    let mut buf = [0u8; 64];
    let waited = tokio::time::timeout(Duration::from_millis(100), second.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "the second connection was served: {waited:?}"
    );
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(answer > 0);
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let shutdown = Shutdown::new();
    let (addr, _serving) = start(|server| server, &shutdown).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    assert!(exchange(&mut client, GET).await.contains("date:"));
    assert!(closed_within(&mut client, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_streaming_connection_stays_open_while_its_client_is_silent() {
    let shutdown = Shutdown::new();
    let (addr, _serving) = start(|server| server, &shutdown).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    exchange(&mut client, b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(!closed_within(&mut client, Duration::from_millis(900)).await);
}

#[tokio::test]
async fn slow_headers_time_out_and_the_date_header_can_go() {
    let shutdown = Shutdown::new();
    let (addr, _serving) = start(
        |server| {
            server
                .header_read_timeout(Duration::from_millis(100))
                .date_header(false)
        },
        &shutdown,
    )
    .await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    assert!(!exchange(&mut client, GET).await.contains("date:"));
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    // Well before the idle timeout (300 ms, so 300 to 375 ms).
    assert!(closed_within(&mut client, Duration::from_millis(250)).await);
}

#[tokio::test]
async fn shutdown_lets_the_open_connections_finish_within_the_grace() {
    let shutdown = Shutdown::new();
    let (addr, serving) = start(|server| server, &shutdown).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    exchange(&mut client, GET).await;
    shutdown.cancel();
    // The idle connection is closed at once, and the server returns.
    assert!(closed_within(&mut client, Duration::from_millis(200)).await);
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .unwrap()
        .unwrap();

    // A connection that never sends a request is not waited for past the grace.
    let shutdown = Shutdown::new();
    let (addr, serving) = start(
        |server| server.shutdown_grace(Duration::from_millis(50)),
        &shutdown,
    )
    .await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_millis(250), serving)
        .await
        .unwrap()
        .unwrap();
}
