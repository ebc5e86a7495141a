//! A TCP listener with a cap on open connections and an idle timeout on each.
//!
//! `axum::serve` accepts every connection and keeps idle ones forever; this listener
//! stops accepting while `max_connections` are open (the kernel backlog holds the rest)
//! and closes a connection that neither sends nor accepts data for `idle_timeout`.
//!
//! A connection serving a watch stream is exempt from the read side of that timeout: its
//! client sends nothing after the request, which is not a sign of trouble (hyper reads
//! while a response streams, to notice a client that left). The write side still
//! closes a stream whose client stopped reading.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    extract::connect_info::Connected,
    serve::{IncomingStream, Listener},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_io_timeout::TimeoutStream;

/// Accepts connections while fewer than the limit are open.
#[derive(Debug)]
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
}

impl LimitedListener {
    /// Wraps `inner`: at most `max_connections` open, each closed after `idle_timeout`
    /// without traffic.
    pub fn new(inner: TcpListener, max_connections: usize, idle_timeout: Duration) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            idle_timeout,
        }
    }
}

impl Listener for LimitedListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so this only waits.
        let permit = self.permits.clone().acquire_owned().await.ok();
        // axum's own accept logs errors and backs off before retrying.
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        // Small JSON responses must not wait for Nagle's algorithm.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let mut stream = TimeoutStream::new(stream);
        stream.set_read_timeout(Some(self.idle_timeout));
        stream.set_write_timeout(Some(self.idle_timeout));
        let connection = Connection {
            stream: Box::pin(stream),
            control: StreamControl::default(),
            _permit: permit,
        };
        (connection, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection; its slot is freed when it is dropped.
#[derive(Debug)]
pub struct Connection {
    stream: Pin<Box<TimeoutStream<TcpStream>>>,
    control: StreamControl,
    _permit: Option<OwnedSemaphorePermit>,
}

/// A handle on one connection that its requests get (as `ConnectInfo`) when the router
/// is served with `into_make_service_with_connect_info::<StreamControl>()`.
#[derive(Debug, Clone, Default)]
pub struct StreamControl(Arc<AtomicBool>);

impl StreamControl {
    /// Marks the connection as serving a long-lived stream: reads no longer time out.
    pub fn streaming(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_streaming(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Connected<IncomingStream<'_, LimitedListener>> for StreamControl {
    fn connect_info(stream: IncomingStream<'_, LimitedListener>) -> Self {
        stream.io().control.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.control.is_streaming() && self.stream.read_timeout().is_some() {
            self.stream.as_mut().set_read_timeout_pinned(None);
        }
        self.stream.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.as_mut().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.as_mut().poll_shutdown(cx)
    }
}
