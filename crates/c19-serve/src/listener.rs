//! A TCP listener with a cap on open connections and an idle timeout on each, and
//! optionally TLS.
//!
//! `axum::serve` accepts every connection and keeps idle ones forever; this listener
//! stops accepting while `max_connections` are open (the kernel backlog holds the rest)
//! and closes a connection that neither sends nor accepts data for its idle timeout.
//!
//! A connection serving a watch stream is exempt from the read side of that timeout: its
//! client sends nothing after the request, which is not a sign of trouble (hyper reads
//! while a response streams, to notice a client that left). The write side still
//! closes a stream whose client stopped reading.
//!
//! The read side is timed in quarters of the timeout: reads and writes only raise a flag,
//! and a timer firing every quarter closes the connection after four quarters in a row
//! without it, so after between one and one and a quarter timeouts of silence. A
//! keep-alive connection waits for every next request, and re-arming a timer at each
//! wait (as `tokio-io-timeout` does), or even reading the clock at each read and write,
//! costs a visible share of a small `GET`.
//!
//! With TLS, each handshake runs on its own task (bounded by the same connection cap
//! and the acceptor's timeout), so a slow client never holds up the others; a refused
//! connection is reported to the caller's callback (which counts it in its own metric)
//! and logged at most once a minute per address. Handshakes still under way when the
//! listener is dropped are abandoned.

use std::{
    fmt, io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use c19_tls::{Acceptor, MaybeTls, Reason, RefusalLog};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::{Instant, Sleep, sleep},
};

/// The read timer's ticks in one idle timeout.
const QUARTERS: u32 = 4;

/// Pause after a failed `accept` that is not the client's doing (out of file
/// descriptors, usually), unless [`LimitedListener::accept_backoff`] says otherwise.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Told why a TLS connection was refused, to count it.
type OnRefused = Arc<dyn Fn(Reason) + Send + Sync>;

/// Accepts connections while fewer than the limit are open.
#[derive(Debug)]
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
    accept_backoff: Duration,
    label: &'static str,
    tls: Option<Tls>,
}

/// The TLS side of a listener: the acceptor and the handshakes under way.
struct Tls {
    acceptor: Arc<Acceptor>,
    handshakes: JoinSet<Option<(Connection, SocketAddr)>>,
    refusals: Arc<RefusalLog>,
    on_refused: OnRefused,
    /// The read side of the idle timeout of TLS connections.
    idle_timeout: Duration,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("acceptor", &self.acceptor)
            .field("handshakes", &self.handshakes.len())
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl LimitedListener {
    /// Wraps `inner`: at most `max_connections` open, each closed after `idle_timeout`
    /// without traffic.
    pub fn new(inner: TcpListener, max_connections: usize, idle_timeout: Duration) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            idle_timeout,
            accept_backoff: ACCEPT_BACKOFF,
            label: "a connection",
            tls: None,
        }
    }

    /// Names a connection in the log, as in "refused `label`: ..." (default
    /// "a connection").
    pub fn label(mut self, label: &'static str) -> Self {
        self.label = label;
        self
    }

    /// How long to pause after a failed `accept` that is not the client's doing
    /// (default one second).
    pub fn accept_backoff(mut self, backoff: Duration) -> Self {
        self.accept_backoff = backoff;
        self
    }

    /// Serves what `acceptor` accepts (TLS, and plaintext where its mode allows);
    /// `on_refused` is told why each refused connection was refused.
    pub fn with_tls(
        mut self,
        acceptor: Arc<Acceptor>,
        on_refused: impl Fn(Reason) + Send + Sync + 'static,
    ) -> Self {
        self.tls = Some(Tls {
            acceptor,
            handshakes: JoinSet::new(),
            refusals: Arc::default(),
            on_refused: Arc::new(on_refused),
            idle_timeout: self.idle_timeout,
        });
        self
    }

    /// After [`LimitedListener::with_tls`]: how long a TLS connection may go without
    /// reading anything (default: the idle timeout); the write side keeps the idle
    /// timeout, and plaintext connections the idle timeout on both sides.
    pub fn tls_idle_timeout(mut self, timeout: Duration) -> Self {
        if let Some(tls) = &mut self.tls {
            tls.idle_timeout = timeout;
        }
        self
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The next connection (TLS ones once their handshake is done), once a slot is free.
    pub async fn accept(&mut self) -> (Connection, SocketAddr) {
        if self.tls.is_none() {
            let (permit, stream, addr) = self.accept_tcp().await;
            let stream = MaybeTls::Plain(stream);
            let idle = self.idle_timeout;
            return (Connection::new(stream, idle, idle, permit), addr);
        }
        loop {
            let handshaken = match &mut self.tls {
                Some(tls) if !tls.handshakes.is_empty() => {
                    tokio::select! {
                        done = tls.handshakes.join_next() => done,
                        accepted = accept_tcp(
                            &self.inner, &self.permits, self.accept_backoff, self.label,
                        ) => {
                            self.start_handshake(accepted);
                            continue;
                        }
                    }
                }
                _ => {
                    let accepted = self.accept_tcp().await;
                    self.start_handshake(accepted);
                    continue;
                }
            };
            if let Some(Ok(Some(handshaken))) = handshaken {
                return handshaken;
            }
        }
    }

    /// A connection slot and an accepted TCP connection.
    async fn accept_tcp(&self) -> (Option<OwnedSemaphorePermit>, TcpStream, SocketAddr) {
        accept_tcp(&self.inner, &self.permits, self.accept_backoff, self.label).await
    }

    /// Runs the TLS handshake of an accepted connection on its own task.
    fn start_handshake(
        &mut self,
        (permit, stream, addr): (Option<OwnedSemaphorePermit>, TcpStream, SocketAddr),
    ) {
        let (write_timeout, label) = (self.idle_timeout, self.label);
        let Some(tls) = &mut self.tls else {
            return;
        };
        let (acceptor, refusals) = (tls.acceptor.clone(), tls.refusals.clone());
        let (on_refused, tls_idle) = (tls.on_refused.clone(), tls.idle_timeout);
        tls.handshakes.spawn(async move {
            match acceptor.accept(stream).await {
                Ok(stream) => {
                    let read_timeout = if stream.is_tls() {
                        tls_idle
                    } else {
                        write_timeout
                    };
                    let connection = Connection::new(stream, read_timeout, write_timeout, permit);
                    Some((connection, addr))
                }
                Err(refusal) => {
                    on_refused(refusal.reason);
                    if refusals.should_log(addr.ip()) {
                        tracing::warn!(
                            remote = %addr,
                            reason = refusal.reason.as_str(),
                            "refused {label}: {}",
                            refusal.detail
                        );
                    }
                    None
                }
            }
        });
    }
}

/// A connection slot and an accepted TCP connection, from borrowed parts so that it can
/// run beside the handshakes under way.
async fn accept_tcp(
    inner: &TcpListener,
    permits: &Arc<Semaphore>,
    backoff: Duration,
    label: &str,
) -> (Option<OwnedSemaphorePermit>, TcpStream, SocketAddr) {
    // The semaphore is never closed, so this only waits.
    let permit = permits.clone().acquire_owned().await.ok();
    let (stream, addr) = loop {
        match inner.accept().await {
            Ok(accepted) => break accepted,
            // The client gave up before it was accepted: nothing to wait for.
            Err(failure) if is_connection_error(&failure) => {}
            Err(failure) => {
                tracing::warn!("cannot accept {label}: {failure}");
                sleep(backoff).await;
            }
        }
    };
    // Small responses must not wait for Nagle's algorithm.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    (permit, stream, addr)
}

/// Whether an `accept` failed because of the client rather than this process.
fn is_connection_error(failure: &io::Error) -> bool {
    matches!(
        failure.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl axum::serve::Listener for LimitedListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        LimitedListener::accept(self).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        LimitedListener::local_addr(self)
    }
}

/// An accepted connection; its slot is freed when it is dropped.
#[derive(Debug)]
pub struct Connection {
    stream: MaybeTls<TcpStream>,
    control: StreamControl,
    /// A quarter of the read side's idle timeout.
    quarter: Duration,
    /// The write side's idle timeout.
    write_timeout: Duration,
    /// Whether a read or a write went through since the read timer last fired.
    active: bool,
    /// How many times in a row the read timer fired without activity.
    silent_quarters: u32,
    /// Fires every quarter of the read timeout while a read waits.
    read_timer: Pin<Box<Sleep>>,
    /// Whether the last write found the socket full (the write timer then runs).
    write_stalled: bool,
    /// Fires `write_timeout` after a write first found the socket full.
    write_timer: Pin<Box<Sleep>>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Connection {
    fn new(
        stream: MaybeTls<TcpStream>,
        read_timeout: Duration,
        write_timeout: Duration,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        let quarter = read_timeout / QUARTERS;
        Self {
            stream,
            control: StreamControl::default(),
            quarter,
            write_timeout,
            active: false,
            silent_quarters: 0,
            read_timer: Box::pin(sleep(quarter)),
            write_stalled: false,
            write_timer: Box::pin(sleep(write_timeout)),
            _permit: permit,
        }
    }

    /// The handle the service answering this connection's requests keeps.
    pub fn control(&self) -> &StreamControl {
        &self.control
    }

    /// Whether the connection speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// Called when a read is pending: whether the connection has been silent too long.
    fn poll_read_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.control.is_streaming() {
            return Poll::Pending;
        }
        while self.read_timer.as_mut().poll(cx).is_ready() {
            if std::mem::take(&mut self.active) {
                self.silent_quarters = 0;
            } else {
                self.silent_quarters += 1;
                if self.silent_quarters >= QUARTERS {
                    return Poll::Ready(Err(timed_out("no request")));
                }
            }
            self.read_timer
                .as_mut()
                .reset(Instant::now() + self.quarter);
        }
        Poll::Pending
    }

    /// Runs `write` on the stream, failing it when the socket stays full too long.
    /// A flush (`sends` false) is no activity: hyper flushes at every wake of the
    /// connection's task, the read timer's own wakes included.
    fn poll_write_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        sends: bool,
        write: impl FnOnce(Pin<&mut MaybeTls<TcpStream>>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match write(Pin::new(&mut self.stream), cx) {
            Poll::Ready(result) => {
                self.write_stalled = false;
                // The client may take the whole timeout to send its next request.
                self.active |= sends;
                Poll::Ready(result)
            }
            Poll::Pending => {
                if !self.write_stalled {
                    self.write_stalled = true;
                    self.write_timer
                        .as_mut()
                        .reset(Instant::now() + self.write_timeout);
                }
                match self.write_timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(timed_out("the client stopped reading"))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

/// The error that closes a connection idle for too long.
fn timed_out(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what} within the idle timeout"),
    )
}

/// A handle on one connection, kept by the service that answers its requests.
#[derive(Debug, Clone, Default)]
pub struct StreamControl(Arc<AtomicBool>);

impl StreamControl {
    /// Marks the connection as serving a long-lived stream: reads no longer time out.
    pub fn streaming(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`StreamControl::streaming`] was called.
    pub fn is_streaming(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.active = true;
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_read_idle(cx),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, true, |stream, cx| stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, true, |stream, cx| stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_write_with(cx, false, |stream, cx| stream.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_write_with(cx, false, |stream, cx| stream.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const IDLE: Duration = Duration::from_millis(200);

    /// A connection accepted by a listener with the [`IDLE`] timeout, and its client.
    async fn pair() -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = LimitedListener::new(listener, 4, IDLE);
        let client = TcpStream::connect(addr).await.unwrap();
        let (connection, _) = listener.accept().await;
        (connection, client)
    }

    #[tokio::test]
    async fn a_silent_client_times_out() {
        let (mut connection, _client) = pair().await;
        let started = Instant::now();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(30), connection.read(&mut buf))
            .await
            .expect("the silent connection was not timed out");
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= IDLE);
    }

    #[tokio::test]
    async fn flushes_at_each_wake_are_no_activity() {
        let (mut connection, _client) = pair().await;
        let mut buf = [0u8; 8];
        // As hyper does: every wake of the task flushes, then reads.
        let read = tokio::time::timeout(
            Duration::from_secs(30),
            std::future::poll_fn(|cx| {
                let _ = Pin::new(&mut connection).poll_flush(cx);
                let mut buf = ReadBuf::new(&mut buf);
                Pin::new(&mut connection).poll_read(cx, &mut buf)
            }),
        )
        .await
        .expect("the silent connection was not timed out");
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_client_sending_now_and_then_outlives_many_timeouts() {
        let (mut connection, mut client) = pair().await;
        let talker = tokio::spawn(async move {
            for _ in 0..12 {
                tokio::time::sleep(IDLE / 4).await;
                client.write_all(b"x").await.unwrap();
            }
            client
        });
        let mut buf = [0u8; 8];
        for _ in 0..12 {
            assert_eq!(connection.read(&mut buf).await.unwrap(), 1);
        }
        // Three idle timeouts have passed; silence now ends it.
        let _client = talker.await.unwrap();
        let read = connection.read(&mut buf).await;
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_streaming_connection_may_stay_silent() {
        let (mut connection, _client) = pair().await;
        connection.control().streaming();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(IDLE * 3, connection.read(&mut buf)).await;
        assert!(read.is_err(), "the read ended: {read:?}");
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_times_out() {
        let (mut connection, _client) = pair().await;
        // Streaming exempts reads only; the socket buffers fill and writes stall.
        connection.control().streaming();
        let chunk = vec![0u8; 64 * 1024];
        let written = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Err(error) = connection.write_all(&chunk).await {
                    return error;
                }
            }
        })
        .await
        .expect("the stalled writes were not timed out");
        assert_eq!(written.kind(), io::ErrorKind::TimedOut);
    }
}
