//! [`Server`]: the accept loop, and hyper serving each connection.
//!
//! Connections come from a [`LimitedListener`] (the cap on open connections, the idle
//! timeouts, the TLS handshakes). Each is served by hyper's HTTP/1.1 connection on its
//! own task, with the service the caller makes for it. On shutdown the server stops
//! accepting (handshakes under way are abandoned) and open connections finish the
//! request they are serving and close; with a grace, the server stops waiting for them
//! after it.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, extract::Request, response::Response};
use c19_core::Shutdown;
use c19_tls::{Acceptor, Reason};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::listener::{Connection, LimitedListener};

/// Serves HTTP/1.1 on a listener: connections from a [`LimitedListener`], each served by
/// hyper on its own task; on shutdown, open connections finish their request and close.
#[derive(Debug)]
pub struct Server {
    listener: LimitedListener,
    /// Connections in the plural, for the log.
    many: &'static str,
    header_read_timeout: Option<Duration>,
    tls_header_read_timeout: Option<Duration>,
    date_header: bool,
    shutdown_grace: Option<Duration>,
}

impl Server {
    /// Serves on `listener`: at most `max_connections` open, each closed after
    /// `idle_timeout` without reading or without being able to write. By default there
    /// is no header read timeout (the idle timeout bounds a silent client), responses
    /// carry a `Date` header, and a shutdown waits for every open connection.
    pub fn new(listener: TcpListener, max_connections: usize, idle_timeout: Duration) -> Self {
        Self {
            listener: LimitedListener::new(listener, max_connections, idle_timeout),
            many: "connections",
            header_read_timeout: None,
            tls_header_read_timeout: None,
            date_header: true,
            shutdown_grace: None,
        }
    }

    /// Names a connection and connections in the log ("a peer connection", "peer
    /// connections").
    pub fn label(mut self, one: &'static str, many: &'static str) -> Self {
        self.listener = self.listener.label(one);
        self.many = many;
        self
    }

    /// How long to pause after a failed `accept` that is not the client's doing
    /// (default one second).
    pub fn accept_backoff(mut self, backoff: Duration) -> Self {
        self.listener = self.listener.accept_backoff(backoff);
        self
    }

    /// How long a client has to send a request's headers. hyper also runs this timer
    /// while a keep-alive connection waits for its next request.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = Some(timeout);
        if self.tls_header_read_timeout.is_none() {
            self.tls_header_read_timeout = Some(timeout);
        }
        self
    }

    /// Whether responses carry a `Date` header (default `true`).
    pub fn date_header(mut self, date_header: bool) -> Self {
        self.date_header = date_header;
        self
    }

    /// How long a shutdown waits for open connections before it returns anyway.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = Some(grace);
        self
    }

    /// Serves what `acceptor` accepts (TLS, and plaintext where its mode allows), each
    /// handshake on its own task; `on_refused` is told why each refused connection was
    /// refused, and refusals are logged at most once a minute per address.
    pub fn tls(
        mut self,
        acceptor: Arc<Acceptor>,
        on_refused: impl Fn(Reason) + Send + Sync + 'static,
    ) -> Self {
        self.listener = self.listener.with_tls(acceptor, on_refused);
        self
    }

    /// After [`Server::tls`]: how long a TLS connection may go without reading anything,
    /// and has to send its headers (a new one costs a handshake, so it may stay open
    /// longer). Plaintext connections keep the other timeouts.
    pub fn tls_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.listener = self.listener.tls_idle_timeout(keep_alive);
        self.tls_header_read_timeout = Some(keep_alive);
        self
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves each connection with the service `make_service` makes for it, until
    /// `shutdown`; then lets open connections finish (within the grace, if any).
    pub async fn serve<M, S>(self, mut make_service: M, shutdown: Shutdown)
    where
        M: FnMut(&Connection) -> S,
        S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let plain = self.http(self.header_read_timeout);
        let tls = self.http(self.tls_header_read_timeout);
        let Self {
            mut listener,
            many,
            shutdown_grace,
            ..
        } = self;
        let graceful = GracefulShutdown::new();
        loop {
            let (connection, remote) = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let service = TowerToHyperService::new(WithBody(make_service(&connection)));
            let http = if connection.is_tls() { &tls } else { &plain };
            let serving = graceful.watch(http.serve_connection(TokioIo::new(connection), service));
            tokio::spawn(async move {
                if let Err(failure) = serving.await {
                    tracing::debug!(%remote, "connection closed: {failure}");
                }
            });
        }
        drop(listener);
        match shutdown_grace {
            None => graceful.shutdown().await,
            Some(grace) => {
                tokio::select! {
                    () = graceful.shutdown() => {}
                    () = tokio::time::sleep(grace) => {
                        tracing::warn!("{many} still open after {grace:?}; closing them");
                    }
                }
            }
        }
    }

    /// hyper's settings, with `header_read_timeout`.
    fn http(&self, header_read_timeout: Option<Duration>) -> http1::Builder {
        let mut http = http1::Builder::new();
        // Without a timer hyper runs no header timer at all; with one, its default
        // timeout applies unless one is set (to none here when it has none).
        if self.header_read_timeout.is_some() || self.tls_header_read_timeout.is_some() {
            http.timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
        }
        http.keep_alive(true).auto_date_header(self.date_header);
        http
    }
}

/// A service of axum requests as one of hyper's (what `axum::serve` does too).
#[derive(Debug, Clone)]
struct WithBody<S>(S);

impl<S: Service<Request>> Service<hyper::Request<Incoming>> for WithBody<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: hyper::Request<Incoming>) -> Self::Future {
        self.0.call(request.map(Body::new))
    }
}
