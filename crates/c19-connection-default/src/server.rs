//! The peer server: what other agents (c19 or 0.1) call.
//!
//! - `GET /<version>`: the whole state, or 204 when `<version>` is this agent's version
//!   (`GET /` always returns the state).
//! - `PUT /` with a map of entries: merged into the state; 204. A body the state refuses
//!   gets 400, one over `body_limit` 413, one that is too slow 408, each with
//!   `{"error": "..."}` and no change to the state. A large body that finds the agent
//!   busy merging others is accepted into a backlog (202) or refused with 503 and
//!   `Retry-After` ([`backlog`]).
//! - `POST /_c19/sync`: one message of a c19 peer's anti-entropy exchange ([`exchange`]).
//! - `GET /_c19/stats`: the traffic counters. Paths under `/_c19/` are reserved (versions
//!   never contain `/`).
//!
//! Every response carries this agent's node id; a request carrying it is refused. Every
//! response also carries this agent's clock (`c19-clock`, see [`crate::clock`]).

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Request, State, rejection::PathRejection},
    http::{HeaderMap, HeaderName, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use c19_core::SafeState;
use c19_serve::{Error as BodyError, Received, Side};
use tokio::sync::{Semaphore, TryAcquireError};

use crate::{
    cadence::{self, Cadence},
    client, clock,
    config::Settings,
    identity::{NODE_HEADER, NodeId},
    stats::Stats,
};

mod backlog;
mod direct;
mod exchange;
mod serve;

pub(crate) use backlog::backlog_room;
pub(crate) use serve::serve;

/// Bodies up to this size are merged on the async worker; larger ones on the blocking
/// pool, so a big merge does not stall other connections.
const INLINE_BYTES: usize = 256 << 10;

/// How many large bodies (pushes over [`INLINE_BYTES`], exchange messages) are decoded
/// and merged at once; the others wait for a turn. Decoding a batch builds a tree several
/// times its size, and when a bulk load spreads every peer pushes its pages at once (with
/// this bound, 10 agents spreading 100k keys peaked about 15% lower). Merges take the
/// state's writer lock in turn anyway, so more of them at once gain little.
pub(crate) const CONCURRENT_MERGES: usize = 2;

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct PeerServer {
    /// The state to serve and merge into.
    pub state: SafeState,
    /// This agent's id.
    pub node: NodeId,
    /// Traffic counters.
    pub stats: Arc<Stats>,
    /// The largest body accepted.
    pub body_limit: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// The largest anti-entropy answer, before compression.
    pub max_message_bytes: usize,
    /// Turns to decode and merge a large body ([`CONCURRENT_MERGES`]).
    pub merges: Arc<Semaphore>,
    /// Room, in KiB, for large pushes accepted while every turn is taken
    /// ([`backlog_room`]).
    pub backlog: Arc<Semaphore>,
    /// When this agent's next round of new changes may go, told in push answers.
    pub cadence: Arc<Cadence>,
}

impl PeerServer {
    /// The peer server of `state`, identified as `node`, counting into `stats`, with the
    /// limits of `settings`.
    pub(crate) fn new(
        state: SafeState,
        node: NodeId,
        stats: Arc<Stats>,
        cadence: Arc<Cadence>,
        settings: &Settings,
    ) -> Self {
        Self {
            state,
            node,
            stats,
            body_limit: settings.body_limit,
            body_timeout: settings.server_timeout,
            max_message_bytes: settings.max_message_bytes,
            merges: merge_turns(),
            backlog: backlog_room(settings.body_limit),
            cadence,
        }
    }
}

/// The turns of [`PeerServer::merges`].
pub(crate) fn merge_turns() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(CONCURRENT_MERGES))
}

/// The routes of the peer server.
pub(crate) fn router(server: Arc<PeerServer>) -> Router {
    Router::new()
        .route("/_c19/stats", get(stats))
        .route(client::EXCHANGE_PATH, post(exchange::exchange))
        .route("/", get(whole_state).put(merge))
        .route("/{version}", get(state_unless_at))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such path on the c19 peer port") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this path",
            )
        })
        .layer(middleware::from_fn_with_state(server.clone(), identify))
        .with_state(server)
}

/// A JSON error response.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Refuses requests from this agent itself and marks every response with its id and
/// its clock.
async fn identify(State(server): State<Arc<PeerServer>>, request: Request, next: Next) -> Response {
    let arrived = c19_core::clock::now_ms();
    let mut response = if server.node.is(request.headers().get(NODE_HEADER)) {
        error(
            StatusCode::CONFLICT,
            "this request comes from this agent itself",
        )
    } else {
        next.run(request).await
    };
    response.headers_mut().insert(
        HeaderName::from_static(NODE_HEADER),
        server.node.header_value(),
    );
    response.headers_mut().insert(
        HeaderName::from_static(clock::CLOCK_HEADER),
        clock::header_value(arrived, c19_core::clock::now_ms()),
    );
    response
}

async fn stats(State(server): State<Arc<PeerServer>>) -> Response {
    Json(server.stats.snapshot()).into_response()
}

async fn whole_state(State(server): State<Arc<PeerServer>>) -> Response {
    serve_state(&server).await
}

async fn state_unless_at(
    State(server): State<Arc<PeerServer>>,
    version: Result<Path<String>, PathRejection>,
) -> Response {
    let Path(version) = match version {
        Ok(version) => version,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    if version == server.state.version() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        serve_state(&server).await
    }
}

async fn serve_state(server: &PeerServer) -> Response {
    let state = server.state.clone();
    match tokio::task::spawn_blocking(move || state.get_root()).await {
        Ok(root) => {
            server.stats.pull_served(root.len());
            root.into_response()
        }
        Err(failure) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the state: {failure}"),
        ),
    }
}

async fn merge(State(server): State<Arc<PeerServer>>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(&server, &headers, body).await {
        Ok(body) => body,
        Err((read, response)) => {
            server.stats.refused(read);
            return response;
        }
    };
    let length = body.len();
    let result = if length <= INLINE_BYTES {
        server.state.set(&body.join())
    } else {
        let state = server.state.clone();
        // With every turn taken, the push waits in the backlog or is refused as busy:
        // waiting here would outlast the sender's timeout and make it send again.
        let turn = match server.merges.clone().try_acquire_owned() {
            Ok(turn) => Some(turn),
            Err(TryAcquireError::NoPermits) => {
                return match backlog::reserve(&server, length) {
                    Some(room) => backlog::merge_later(&server, body, room),
                    None => {
                        server.stats.refused(length);
                        backlog::busy()
                    }
                };
            }
            // Never closed; should it be, merging without a turn is safe.
            Err(TryAcquireError::Closed) => None,
        };
        // The turn moves into the task: it is held until the merge ends, even when the
        // client gives up and this handler is dropped.
        let merging = move || {
            let result = state.set(&body.join());
            drop(turn);
            result
        };
        match tokio::task::spawn_blocking(merging).await {
            Ok(result) => result,
            Err(failure) => {
                server.stats.refused(length);
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("merge failed: {failure}"),
                );
            }
        }
    };
    match result {
        Ok(applied) => {
            server.stats.push_received(length);
            tracing::trace!(
                applied = applied.applied,
                ignored = applied.ignored,
                "merged a push"
            );
            (
                StatusCode::NO_CONTENT,
                [(cadence::NEXT_ROUND_HEADER, server.cadence.header_value())],
            )
                .into_response()
        }
        Err(refusal) => {
            server.stats.refused(length);
            tracing::debug!("refused a push: {refusal}");
            error(
                c19_serve::status::of(&refusal, Side::Peer),
                refusal.to_string(),
            )
        }
    }
}

/// The request body, or the error response (and how many bytes were read).
async fn read_body(
    server: &PeerServer,
    headers: &HeaderMap,
    body: Body,
) -> Result<Received, (usize, Response)> {
    let limit = server.body_limit;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body exceeds the limit of {limit} bytes (`body_limit`)"),
        )
    };
    if c19_serve::body::declared_too_large(headers, limit) {
        return Err((0, too_large()));
    }
    c19_serve::body::read(body, limit, server.body_timeout)
        .await
        .map_err(|failure| {
            let response = match &failure {
                BodyError::TooLarge { .. } => too_large(),
                BodyError::TimedOut { timeout, .. } => error(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the body did not arrive within {timeout:?}"),
                ),
                BodyError::Failed { source, .. } => error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {source}"),
                ),
            };
            (failure.read(), response)
        })
}
