//! The HTTP API: `GET /<key>`, `PUT /` with a JSON map, `DELETE /<key>`, and the reads
//! of [`crate::reads`] (listings and watches).
//!
//! The key is the whole path after the first `/`, percent-decoded, so `/a%2Fb` and
//! `/users/42` name the keys `a/b` and `users/42`. Values pass through as the state's
//! bytes: a `GET` answers with the stored bytes as they are, without copying them.

use std::{
    borrow::Cow,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use c19_core::{LayerError, SafeState, Shutdown};
use c19_serve::{Error as BodyError, Received};
use percent_encoding::percent_decode_str;
use tokio::sync::Semaphore;

use crate::{
    HttpAgentConfig,
    auth::Guard,
    error::{Error, Result},
    reads::read,
    request_metrics::{RequestMetrics, Route},
    watch::Streaming,
    writes::Writes,
};

/// Bodies up to this size are gathered with the other small writes of the moment and
/// applied on a request's task ([`Writes`]); larger ones on the blocking pool, each on
/// its own, so a big batch does not stall other requests.
const INLINE_SET_BYTES: usize = 64 * 1024;

/// At most this many `PUT` bodies are buffered at once (memory: this × `body_limit`).
const CONCURRENT_PUTS: usize = 32;

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct App {
    state: SafeState,
    body_limit: usize,
    body_timeout: Duration,
    puts: Semaphore,
    /// Small writes, gathered into one state write each turn.
    writes: Writes,
    /// Ends watch streams, which would otherwise hold a graceful shutdown up.
    shutdown: Shutdown,
    metrics: RequestMetrics,
    /// The bearer tokens every request needs, when `auth` is configured.
    auth: Option<Guard>,
}

/// The agent's API over `state`, limited as `config` says, as a `Router` to serve with
/// `axum::serve` or to nest in another app (watch streams then end only when their client
/// leaves, and connections have no idle timeout). [`crate::serve`] serves the same
/// handler with both.
///
/// With `auth`, the tokens file is loaded here: an unusable one is an error. It is then
/// checked for changes until the router is dropped.
pub fn router(state: SafeState, config: &HttpAgentConfig) -> Result<Router, LayerError> {
    router_until(state, config, Shutdown::new())
}

/// [`router`], whose watch streams (and reloads of the tokens file) end when `shutdown`
/// is cancelled.
pub fn router_until(
    state: SafeState,
    config: &HttpAgentConfig,
    shutdown: Shutdown,
) -> Result<Router, LayerError> {
    Ok(Router::new()
        .fallback(handle)
        .with_state(app(state, config, shutdown)?))
}

/// What the handler needs, for [`answer`]; with `auth`, loads the tokens file and
/// starts its reloads (until `shutdown`).
pub(crate) fn app(
    state: SafeState,
    config: &HttpAgentConfig,
    shutdown: Shutdown,
) -> Result<Arc<App>, LayerError> {
    let auth = match &config.auth {
        Some(auth) => Some(Guard::start(auth, &shutdown).map_err(LayerError::other)?),
        None => None,
    };
    Ok(Arc::new(App {
        state,
        body_limit: config.body_limit,
        body_timeout: Duration::from_millis(config.idle_timeout.get()),
        puts: Semaphore::new(CONCURRENT_PUTS),
        writes: Writes::default(),
        shutdown,
        metrics: RequestMetrics::default(),
        auth,
    }))
}

async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    answer(app, request).await
}

/// Answers any request of the API.
pub(crate) async fn answer(app: Arc<App>, request: Request) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // Before anything else: a refused request reads no body and reaches no state.
    if let Some(auth) = &app.auth
        && let Err(refusal) = auth.check(&method, request.headers())
    {
        let response = refusal.into_response();
        let route = Route::of_uri(request.uri());
        app.metrics
            .record(route, &method, response.status(), started.elapsed());
        return response;
    }
    let mut route = Route::of_path(request.uri().path());
    let result = match method {
        Method::GET | Method::HEAD => {
            let (read, result) =
                read(&app.state, &app.shutdown, request.uri(), request.headers()).await;
            route = read.into();
            if route == Route::Watch {
                // A stream stays silent for long: the idle timeout must not cut it.
                result.map(|mut response| {
                    response.extensions_mut().insert(Streaming);
                    response
                })
            } else {
                result
            }
        }
        // Boxed: their futures are large, and a `GET` would carry their size too.
        Method::PUT => Box::pin(put(&app, request)).await,
        Method::DELETE => Box::pin(delete(&app, request.uri())).await,
        _ => Err(Error::MethodNotAllowed {
            message: "use GET /<key>, GET /?prefix=P, PUT / or DELETE /<key>",
            allow: "GET, HEAD, PUT, DELETE",
        }),
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    app.metrics
        .record(route, &method, response.status(), started.elapsed());
    response
}

/// The key named by the path: everything after the first `/`, percent-decoded.
pub(crate) fn key_of(uri: &Uri) -> Result<Cow<'_, str>> {
    let path = uri.path().strip_prefix('/').unwrap_or(uri.path());
    percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| Error::KeyNotUtf8)
}

async fn put(app: &App, request: Request) -> Result<Response> {
    if request.uri().path() != "/" {
        return Err(Error::MethodNotAllowed {
            message: "PUT takes a JSON map of keys to entries at the root: PUT /",
            allow: "GET, HEAD, DELETE",
        });
    }
    if c19_serve::body::declared_too_large(request.headers(), app.body_limit) {
        return Err(Error::TooLarge {
            limit: app.body_limit,
        });
    }
    let _slot = app
        .puts
        .acquire()
        .await
        .map_err(|error| Error::Internal(error.to_string()))?;
    let body = read_body(app, request.into_body()).await?;
    let length = body.len();
    // A large batch is applied on the blocking pool, without taking a turn: it parks no
    // worker, and small writes wait for the state either way. Its chunks are joined
    // there too: copying megabytes would stall this worker's other requests.
    let applied = if length <= INLINE_SET_BYTES {
        app.writes.set(&app.state, body.join()).await?
    } else {
        let state = app.state.clone();
        tokio::task::spawn_blocking(move || state.set_local(&body.join()))
            .await
            .map_err(|error| Error::Internal(error.to_string()))??
    };
    // Acknowledged only once durable, where the state keeps its data on disk.
    app.state.flushed().await?;
    tracing::trace!(applied = applied.applied, ignored = applied.ignored, "PUT");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The whole body, in the chunks it arrived in; refused past `body_limit` bytes or
/// `body_timeout`.
async fn read_body(app: &App, body: Body) -> Result<Received> {
    let timed_out = || Error::BodyTimeout {
        millis: app.body_timeout.as_millis(),
    };
    c19_serve::body::read(body, app.body_limit, app.body_timeout)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge { .. } => Error::TooLarge {
                limit: app.body_limit,
            },
            BodyError::TimedOut { .. } => timed_out(),
            // The connection's idle timeout fired while waiting for the rest of the body.
            error if error.is_connection_timeout() => timed_out(),
            BodyError::Failed { source, .. } => Error::BodyRead(source.to_string()),
        })
}

async fn delete(app: &App, uri: &Uri) -> Result<Response> {
    let key = key_of(uri)?;
    if key.is_empty() {
        return Err(Error::MethodNotAllowed {
            message: "DELETE needs a key: DELETE /<key>",
            allow: "GET, HEAD, PUT",
        });
    }
    // Deleting an absent key succeeds too, and still writes a tombstone, so the delete
    // wins over an older value that a peer may hold.
    app.writes.alone(|| app.state.delete(&&*key)).await?;
    app.state.flushed().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A JSON response of pre-serialized bytes.
pub(crate) fn json(status: StatusCode, body: Bytes) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
