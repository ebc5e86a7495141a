//! Pushes accepted while every merge turn is taken.
//!
//! When a bulk load spreads, every peer pushes its pages at once and a busy agent has
//! more large pushes than merge turns. A push that waited for a turn used to outlast
//! its sender's timeout: the sender saw a failure, backed off, and sent the same pages
//! again later, so 100 MB of changes cost 11 GB on the wire. Now a large push that finds
//! every turn taken is accepted into a backlog of bounded size and answered at once
//! (202); it is merged when a turn frees. When the backlog is full the push is refused
//! with 503 and `Retry-After`, which senders honour without counting a failure.
//!
//! An accepted push is not merged yet: if the agent stops first, it is lost here, as
//! the sender's other targets and later pulls carry the same changes.

use std::sync::Arc;

use axum::{
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use c19_serve::Received;

use super::{PeerServer, error};

/// The backlog counts bytes in units of this many.
const UNIT: usize = 1024;

/// How long a sender refused as busy waits before pushing to this agent again.
const RETRY_AFTER_SECS: u64 = 1;

/// Room for `bytes` bytes of pushes waiting for a merge turn.
pub(crate) fn backlog_room(bytes: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(bytes.div_ceil(UNIT).max(1)))
}

/// Room in the backlog for a body of `length` bytes, if there is any.
pub(super) fn reserve(server: &PeerServer, length: usize) -> Option<OwnedSemaphorePermit> {
    let units = u32::try_from(length.div_ceil(UNIT).max(1)).ok()?;
    server.backlog.clone().try_acquire_many_owned(units).ok()
}

/// Merges `body` in the background once a merge turn frees, holding `room` until then;
/// answers the sender now.
pub(super) fn merge_later(
    server: &PeerServer,
    body: Received,
    room: OwnedSemaphorePermit,
) -> Response {
    let (state, merges, length) = (server.state.clone(), server.merges.clone(), body.len());
    server.stats.push_received(length);
    tokio::spawn(async move {
        // The semaphore is never closed; should it be, merging without a turn is safe.
        let turn = merges.acquire_owned().await.ok();
        let merged = tokio::task::spawn_blocking(move || {
            let merged = state.set(&body.join());
            drop(turn);
            merged
        })
        .await;
        drop(room);
        match merged {
            Ok(Ok(applied)) => tracing::trace!(
                applied = applied.applied,
                ignored = applied.ignored,
                "merged a push from the backlog"
            ),
            Ok(Err(refusal)) => tracing::warn!("refused a push from the backlog: {refusal}"),
            Err(failure) => tracing::warn!("merging a push from the backlog failed: {failure}"),
        }
    });
    StatusCode::ACCEPTED.into_response()
}

/// The answer to a push that found every turn taken and the backlog full.
pub(super) fn busy() -> Response {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy merging earlier pushes; push again later",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}
