//! The accept loop of the peer server.
//!
//! `axum::serve` has no knobs for slow clients, so connections are served with hyper
//! directly: headers must arrive within the server timeout, a connection that sends or
//! reads nothing for that long is closed, the number of open connections is bounded,
//! and on shutdown open connections finish their request and close.
//!
//! With TLS, each connection's handshake runs on its own task, so a slow or hostile
//! client never holds up the accept loop; a refused one is counted by reason and
//! logged at most once a minute per address, and never reaches the handlers.

use std::{io, sync::Arc, time::Duration};

use axum::Router;
use c19_core::Shutdown;
use c19_tls::{Acceptor, MaybeTls, RefusalLog};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_io_timeout::TimeoutStream;

use crate::exported::refused_connection;

/// Open connections beyond this wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 1024;

/// How long open connections may take to finish after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed `accept` (out of file descriptors, usually).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` is cancelled.
///
/// A connection that stays silent twice `timeout` in either direction is closed, and a
/// client has as long to send its headers: hyper's header timer also runs while a
/// keep-alive connection waits for its next request, so it is what lets peers find their
/// connections still open at their next round (a new connection costs more bytes than an
/// exchange between agents at rest). The margin over `timeout` also lets a handler that
/// gave up on a slow body (after `timeout`) still send its answer.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    timeout: Duration,
    shutdown: Shutdown,
    tls: Option<(Acceptor, Duration)>,
) {
    let refusals = Arc::new(RefusalLog::default());
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeout * 2)
        .keep_alive(true)
        // Peers have no use for a Date header: its bytes would be most of an answer
        // between agents at rest.
        .auto_date_header(false);
    // TLS connections stay open longer when idle: only peers that passed the handshake
    // hold them, and a new one costs a handshake.
    let tls_http = tls.as_ref().map(|(_, keep_alive)| {
        let mut tls_http = http.clone();
        tls_http.header_read_timeout(*keep_alive);
        tls_http
    });
    let (tls, tls_keep_alive) = match tls {
        Some((acceptor, keep_alive)) => (Some(acceptor), keep_alive),
        None => (None, timeout * 2),
    };
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(failure) => {
                    log_accept_error(&failure);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let (plain_http, tls_http) = (http.clone(), tls_http.clone());
        let (tls, refusals) = (tls.clone(), refusals.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tls {
                None => MaybeTls::Plain(stream),
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => stream,
                    Err(refusal) => {
                        refused_connection(refusal.reason);
                        if refusals.should_log(remote.ip()) {
                            tracing::warn!(
                                %remote,
                                reason = refusal.reason.as_str(),
                                "refused a peer connection: {}",
                                refusal.detail
                            );
                        }
                        drop(permit);
                        return;
                    }
                },
            };
            let (http, idle) = match (&stream, tls_http) {
                (MaybeTls::Tls(_), Some(tls_http)) => (tls_http, tls_keep_alive),
                _ => (plain_http, timeout * 2),
            };
            let mut stream = TimeoutStream::new(stream);
            stream.set_read_timeout(Some(idle));
            stream.set_write_timeout(Some(timeout * 2));
            let connection = http.serve_connection(TokioIo::new(Box::pin(stream)), service);
            if let Err(failure) = watcher.watch(connection).await {
                tracing::debug!(%remote, "peer connection closed: {failure}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("peer connections still open after {SHUTDOWN_GRACE:?}; closing them");
        }
    }
}

fn log_accept_error(failure: &io::Error) {
    tracing::warn!("cannot accept a peer connection: {failure}");
}
