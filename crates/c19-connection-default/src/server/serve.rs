//! The peer server's settings for [`c19_serve::Server`], which the agent API shares.
//!
//! Headers must arrive within twice the server timeout, a connection that sends or
//! reads nothing for that long is closed, the number of open connections is bounded,
//! and on shutdown open connections finish their request and close within a grace.
//!
//! With TLS, each connection's handshake runs on its own task, so a slow or hostile
//! client never holds up the accept loop; a refused one is counted by reason
//! (`c19_connection_refused_total`) and logged at most once a minute per address, and
//! never reaches the handlers.

use std::{sync::Arc, time::Duration};

use axum::Router;
use c19_core::Shutdown;
use c19_tls::Acceptor;
use tokio::net::TcpListener;

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
///
/// With TLS, TLS connections may stay idle for the `Duration` given with the acceptor
/// (read side and header timer): only peers that passed the handshake hold them, and a
/// new one costs a handshake.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    timeout: Duration,
    shutdown: Shutdown,
    tls: Option<(Acceptor, Duration)>,
) {
    let mut server = c19_serve::Server::new(listener, MAX_CONNECTIONS, timeout * 2)
        .label("a peer connection", "peer connections")
        .accept_backoff(ACCEPT_BACKOFF)
        .header_read_timeout(timeout * 2)
        // Peers have no use for a Date header: its bytes would be most of an answer
        // between agents at rest.
        .date_header(false)
        .shutdown_grace(SHUTDOWN_GRACE);
    if let Some((acceptor, keep_alive)) = tls {
        server = server
            .tls(Arc::new(acceptor), refused_connection)
            .tls_keep_alive(keep_alive);
    }
    server.serve(|_| router.clone(), shutdown).await;
}
