//! The HTTP client that talks to peers: one pooled, keep-alive client for all of them,
//! with timeouts, a bound on requests in flight, and a size limit on what it reads.
//!
//! With a 0.1 peer it speaks only what that peer understands: `PUT /` with a map of
//! changes, and `GET /<version>` answered with the full state or 204. With c19 peers it
//! also carries anti-entropy exchanges ([`exchange`]).

use std::{net::SocketAddr, time::Duration};

use axum::http::{HeaderMap, HeaderName, StatusCode, header::RETRY_AFTER};
use bytes::{Bytes, BytesMut};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::sync::Semaphore;

mod exchange;

pub(crate) use exchange::{EXCHANGE_PATH, MESSAGE_TYPE, Reply};

use crate::{
    clock::{self, ClockOffsets},
    config::Settings,
    error::{Error, Result},
    identity::{NODE_HEADER, NodeId},
    report,
    tls::{Dialing, TLS_REQUIRED_HEADER, is_tls_failure},
};

/// How long before the server would close an idle connection the client lets go of it.
const IDLE_MARGIN: Duration = Duration::from_secs(1);

/// The longest a busy peer can make this agent leave it alone.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Bytes of an error response kept for the log.
const SNIPPET: usize = 512;

/// Characters escaped in the version path segment: everything but unreserved ones, so a
/// version can never add a path segment or a query.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// What a pull brought back.
#[derive(Debug)]
pub(crate) enum Pulled {
    /// The peer holds the same version (HTTP 204).
    UpToDate,
    /// The peer's whole state.
    State(Bytes),
}

/// The client side of the connection.
#[derive(Debug)]
pub(crate) struct PeerClient {
    http: reqwest::Client,
    node: NodeId,
    permits: Semaphore,
    push_timeout: Duration,
    pull_timeout: Duration,
    body_limit: usize,
    /// Plaintext, TLS, or TLS first then plaintext, per peer.
    dialing: Dialing,
    /// The clock offsets each response measures.
    clocks: ClockOffsets,
}

impl PeerClient {
    /// A plaintext client that identifies itself as `node`.
    #[cfg(test)]
    pub fn new(settings: &Settings, node: NodeId) -> Result<Self> {
        Self::with_tls(settings, node, None)
    }

    /// A client that identifies itself as `node` and dials peers with `tls` when set.
    pub fn with_tls(
        settings: &Settings,
        node: NodeId,
        tls: Option<(c19_tls::rustls::ClientConfig, c19_tls::Mode)>,
    ) -> Result<Self> {
        // reqwest is built without a bundled crypto provider; peers speak plain HTTP but
        // the builder still wants one. Another layer may have installed it already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static(NODE_HEADER), node.header_value());
        let mut builder = reqwest::Client::builder();
        let mut mode = None;
        match tls {
            Some((config, tls_mode)) => {
                builder = builder.use_preconfigured_tls(config);
                mode = Some(tls_mode);
            }
            // Plaintext peers are dialed over `http://` only: a TLS configuration with no
            // roots spares loading the system's certificate store, which reqwest's
            // default does at start-up (0.4 MB of an idle agent's memory).
            None => {
                builder = builder.use_preconfigured_tls(
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                );
            }
        }
        let http = builder
            .default_headers(headers)
            .user_agent(concat!("c19/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .connect_timeout(settings.timeout)
            // A peer that stops sending in the middle of a response.
            .read_timeout(settings.server_timeout)
            // Our servers close connections idle for `keep_alive`: let go first,
            // with a margin for a request to arrive, but keep them long enough that pulls
            // and pushes to a peer mostly reuse one (a new connection costs more bytes than
            // an exchange between equal agents).
            .pool_idle_timeout(
                settings
                    .keep_alive
                    .saturating_sub(IDLE_MARGIN)
                    .max(settings.server_timeout),
            )
            .pool_max_idle_per_host(2)
            .tcp_nodelay(true)
            .build()
            .map_err(Error::Client)?;
        Ok(Self {
            http,
            node,
            permits: Semaphore::new(settings.concurrency),
            push_timeout: settings.timeout,
            // A full state can be large; a pull may take until the next one is due.
            pull_timeout: settings.pull_interval.max(settings.server_timeout),
            body_limit: settings.body_limit,
            dialing: Dialing::new(mode),
            clocks: ClockOffsets::new(c19_core::clock::DEFAULT_MAX_CLOCK_SKEW_MS),
        })
    }

    /// This client, reporting peers whose clocks are further off than `max_skew_ms`.
    pub fn with_max_clock_skew(mut self, max_skew_ms: u64) -> Self {
        self.clocks = ClockOffsets::new(max_skew_ms);
        self
    }

    /// Sends `request` to `addr`, measuring the clock offset to the peer when its answer
    /// carries its clock.
    async fn timed(
        &self,
        addr: SocketAddr,
        scheme: &str,
        request: reqwest::RequestBuilder,
    ) -> reqwest::Result<reqwest::Response> {
        let sent = c19_core::clock::now_ms();
        let response = request.send().await?;
        let offset = clock::peer_clock(response.headers()).map(|peer_clock| {
            let received = c19_core::clock::now_ms();
            self.clocks.observe(addr, sent, received, peer_clock);
            clock::estimate(sent, received, peer_clock)
        });
        report::answered(&addr.to_string(), scheme, offset);
        Ok(response)
    }

    /// Sends the request `build` makes for a base URL (`scheme://addr`) to `addr`. A
    /// permissive client whose TLS attempt meets a plaintext peer, or whose plaintext
    /// attempt meets a strict one, tries once more in the other dialect and remembers
    /// which one worked.
    pub(crate) async fn send(
        &self,
        addr: SocketAddr,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let scheme = self.dialing.scheme(addr);
        let other = if scheme == "https" { "http" } else { "https" };
        let sent = self
            .timed(
                addr,
                scheme,
                build(&self.http, &format!("{scheme}://{addr}")),
            )
            .await;
        let retry = self.dialing.permissive()
            && match &sent {
                Err(error) => scheme == "https" && is_tls_failure(error),
                Ok(response) => {
                    scheme == "http" && response.headers().contains_key(TLS_REQUIRED_HEADER)
                }
            };
        if !retry {
            if sent.is_ok() {
                self.dialing.answered(addr, scheme);
            }
            return sent.map_err(Error::Request);
        }
        let response = self
            .timed(addr, other, build(&self.http, &format!("{other}://{addr}")))
            .await
            .map_err(Error::Request)?;
        self.dialing.answered(addr, other);
        Ok(response)
    }

    /// Sends `changes` to the peer at `addr` with `PUT /`.
    pub async fn push(&self, addr: SocketAddr, changes: Bytes) -> Result<Option<Duration>> {
        let _permit = self.permits.acquire().await;
        let response = self
            .send(addr, |http, base| {
                http.put(format!("{base}/"))
                    .timeout(self.push_timeout)
                    .body(changes.clone())
            })
            .await?;
        let response = self.check_identity(addr, response)?;
        let status = response.status();
        if status.is_success() {
            return Ok(crate::cadence::hint(response.headers()));
        }
        // A c19 peer busy merging says when to come back; a bare 503 is a failure.
        if status == StatusCode::SERVICE_UNAVAILABLE
            && let Some(retry_after) = retry_after(response.headers())
        {
            return Err(Error::Busy {
                retry_after,
                message: snippet(response).await,
            });
        }
        let message = snippet(response).await;
        Err(if status.is_client_error() {
            Error::Refused {
                status: status.as_u16(),
                message,
            }
        } else {
            Error::Status {
                status: status.as_u16(),
                message,
            }
        })
    }

    /// Asks the peer at `addr` for its state unless it is at `version`, with
    /// `GET /<version>`.
    pub async fn pull(&self, addr: SocketAddr, version: &str) -> Result<Pulled> {
        let _permit = self.permits.acquire().await;
        let path = utf8_percent_encode(version, SEGMENT).to_string();
        let response = self
            .send(addr, |http, base| {
                http.get(format!("{base}/{path}"))
                    .timeout(self.pull_timeout)
            })
            .await?;
        let response = self.check_identity(addr, response)?;
        match response.status() {
            StatusCode::NO_CONTENT => Ok(Pulled::UpToDate),
            StatusCode::OK => Ok(Pulled::State(
                read_limited(response, self.body_limit).await?,
            )),
            status => Err(Error::Status {
                status: status.as_u16(),
                message: snippet(response).await,
            }),
        }
    }

    /// Fails with [`Error::IsSelf`] when the response comes from this agent.
    fn check_identity(
        &self,
        addr: SocketAddr,
        response: reqwest::Response,
    ) -> Result<reqwest::Response> {
        if self.node.is(response.headers().get(NODE_HEADER)) {
            return Err(Error::IsSelf {
                peer: addr.to_string(),
            });
        }
        Ok(response)
    }
}

/// How long a busy peer asks to be left alone: its `Retry-After` in seconds (agents do
/// not send the date form), at most [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// The whole body, unless it is larger than `limit`.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Bytes> {
    let too_large = Error::TooLarge { limit };
    if response
        .content_length()
        .is_some_and(|length| usize::try_from(length).map_or(true, |length| length > limit))
    {
        return Err(too_large);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(Error::Request)? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The start of the body, for an error message.
async fn snippet(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= SNIPPET {
            body.truncate(SNIPPET);
            break;
        }
    }
    String::from_utf8_lossy(&body).trim().to_owned()
}
