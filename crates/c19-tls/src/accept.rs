//! [`Acceptor`]: turns an accepted TCP connection into a TLS (or, where allowed, plain)
//! stream, or into a [`Refusal`] that says why, cheaply and before any request is read.

use std::{
    collections::HashMap,
    io,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use rustls::{CertificateError, ServerConfig};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// The first byte of a TLS record carrying a handshake (a ClientHello).
const HANDSHAKE_RECORD: u8 = 0x16;

/// What a port accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// TLS only: a plaintext request is refused.
    Strict,
    /// TLS and plaintext on the same port, told apart by the first byte (migration).
    Permissive,
}

/// A stream that is TLS or plain.
#[derive(Debug)]
pub enum MaybeTls<S> {
    /// Plaintext.
    Plain(S),
    /// TLS, handshake done.
    Tls(Box<TlsStream<S>>),
}

impl<S> MaybeTls<S> {
    /// Whether the stream is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::Tls(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(stream) => stream.is_write_vectored(),
            Self::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// Why a connection was refused: the `reason` label of the refusal counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Plaintext on a TLS-only port.
    Plaintext,
    /// A TLS client that presented no certificate.
    NoCertificate,
    /// A certificate that does not chain to the CA.
    UnknownCa,
    /// An expired (or not yet valid) certificate.
    Expired,
    /// A certificate without the required name.
    WrongName,
    /// Any other handshake failure.
    Handshake,
    /// No handshake within the timeout.
    Timeout,
}

impl Reason {
    /// Every reason, for exporting each counter at zero before the first refusal.
    pub const ALL: [Self; 7] = [
        Self::Plaintext,
        Self::NoCertificate,
        Self::UnknownCa,
        Self::Expired,
        Self::WrongName,
        Self::Handshake,
        Self::Timeout,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::NoCertificate => "no_certificate",
            Self::UnknownCa => "unknown_ca",
            Self::Expired => "expired_certificate",
            Self::WrongName => "wrong_name",
            Self::Handshake => "handshake",
            Self::Timeout => "handshake_timeout",
        }
    }

    fn of(error: &io::Error) -> Self {
        let rustls = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match rustls {
            Some(rustls::Error::NoCertificatesPresented) => Self::NoCertificate,
            Some(rustls::Error::InvalidCertificate(problem)) => match problem {
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => Self::Expired,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => Self::WrongName,
                _ => Self::UnknownCa,
            },
            _ => Self::Handshake,
        }
    }
}

/// A refused connection.
#[derive(Debug)]
pub struct Refusal {
    /// Why, as a label.
    pub reason: Reason,
    /// What happened, for the log.
    pub detail: String,
}

/// Accepts TLS (and in [`Mode::Permissive`] plaintext) connections.
#[derive(Clone)]
pub struct Acceptor {
    tls: TlsAcceptor,
    mode: Mode,
    timeout: Duration,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("mode", &self.mode)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The body of the answer to a plaintext request on a TLS-only port.
const PLAINTEXT_REFUSED: &str = r#"{"error":"this port speaks only TLS with client certificates"}"#;

/// The header that marks that answer, so a migrating client knows to dial TLS.
pub const TLS_REQUIRED_HEADER: &str = "c19-tls";

/// The whole answer, readable by any HTTP client.
fn plaintext_refused() -> String {
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n{TLS_REQUIRED_HEADER}: required\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{PLAINTEXT_REFUSED}",
        PLAINTEXT_REFUSED.len()
    )
}

impl Acceptor {
    /// An acceptor with `config`, giving a client `timeout` for its first byte and
    /// for the handshake.
    pub fn new(config: Arc<ServerConfig>, mode: Mode, timeout: Duration) -> Self {
        Self {
            tls: TlsAcceptor::from(config),
            mode,
            timeout,
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The stream to serve, or why the connection is refused (it is closed then).
    pub async fn accept(&self, stream: TcpStream) -> Result<MaybeTls<TcpStream>, Refusal> {
        let timeout = |what: &str| Refusal {
            reason: Reason::Timeout,
            detail: format!("no {what} within {:?}", self.timeout),
        };
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(self.timeout, stream.peek(&mut first))
            .await
            .map_err(|_| timeout("request"))?;
        match peeked {
            Ok(0) | Err(_) => {
                return Err(Refusal {
                    reason: Reason::Handshake,
                    detail: "closed before sending anything".into(),
                });
            }
            Ok(_) => {}
        }
        if first[0] != HANDSHAKE_RECORD {
            if self.mode == Mode::Permissive {
                return Ok(MaybeTls::Plain(stream));
            }
            let mut stream = stream;
            let _ = tokio::time::timeout(self.timeout, async {
                stream.write_all(plaintext_refused().as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
            return Err(Refusal {
                reason: Reason::Plaintext,
                detail: "a plaintext request on a TLS-only port".into(),
            });
        }
        match tokio::time::timeout(self.timeout, self.tls.accept(stream)).await {
            Err(_) => Err(timeout("TLS handshake")),
            Ok(Err(error)) => Err(Refusal {
                reason: Reason::of(&error),
                detail: format!("TLS handshake failed: {error}"),
            }),
            Ok(Ok(stream)) => Ok(MaybeTls::Tls(Box::new(stream))),
        }
    }
}

/// Logs refusals at most once a minute per remote address.
#[derive(Debug, Default)]
pub struct RefusalLog {
    last: Mutex<HashMap<IpAddr, Instant>>,
}

/// How often one address's refusals are logged.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Addresses remembered at most; beyond, the oldest are forgotten.
const REMEMBERED: usize = 4096;

impl RefusalLog {
    /// Whether a refusal of `remote` should be logged now.
    pub fn should_log(&self, remote: IpAddr) -> bool {
        let now = Instant::now();
        let Ok(mut last) = self.last.lock() else {
            return true;
        };
        if let Some(at) = last.get(&remote)
            && now.duration_since(*at) < LOG_EVERY
        {
            return false;
        }
        if last.len() >= REMEMBERED {
            last.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
            if last.len() >= REMEMBERED {
                return false;
            }
        }
        last.insert(remote, now);
        true
    }
}
