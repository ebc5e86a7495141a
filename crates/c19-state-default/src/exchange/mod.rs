//! Anti-entropy exchanges between two Default states, at a cost in proportion to their
//! difference (see the crate docs, "Anti-entropy", for the method and its costs).
//!
//! The caller's side is a [`Session`]; the callee answers each request with [`answer`]
//! and keeps nothing between requests.

mod session;

use std::sync::Arc;

use bytes::Bytes;
use c19_core::{StateError, clock::now_ms};

pub(crate) use self::session::Session;
use crate::{
    incoming::{Incoming, parse_batch},
    message::{Answer, BucketSet, FORMAT, Meta, Request, decode_request, encode},
    store::Store,
    sync_meta::SyncMeta,
};

/// What an exchange needs of the state it runs on: its store and settings.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    /// The data.
    pub store: Arc<Store>,
    /// The default time to live (ms) of values written without one.
    pub ttl: Option<u64>,
    /// How long (ms after its `ts`) a tombstone is kept.
    pub tombstone_ttl: u64,
}

/// Bytes kept free in a page for its header (the bucket ranges are counted apart).
const HEADER_RESERVE: usize = 256;

/// Answers one request of a peer's exchange; an empty answer means nothing to say.
pub(crate) fn answer(state: &Host, request: &[u8], max_bytes: usize) -> Result<Bytes, StateError> {
    let (request, entries) = decode_request(request)?;
    let store = &state.store;
    let now = now_ms();
    match request {
        Request::Hello {
            format,
            version,
            empty,
            meta,
            max,
        } => {
            if format != FORMAT {
                return Err(StateError::Invalid(format!(
                    "sync format {format} is not supported (this agent speaks {FORMAT})"
                )));
            }
            heed(state, meta);
            let digest = store.digest();
            if digest.version == version {
                return Ok(Bytes::new());
            }
            if empty {
                return Ok(page(state, BucketSet::all(), 0, max.min(max_bytes), now));
            }
            Ok(encode(
                &Answer::Digest {
                    groups: digest.groups,
                    empty: digest.empty,
                    meta: store.sync_meta().meta(),
                },
                None,
            ))
        }
        Request::Buckets { groups, max } => {
            let buckets = store.differing_buckets(&groups);
            if buckets.is_empty() {
                return Ok(Bytes::new());
            }
            Ok(page(state, buckets, 0, max.min(max_bytes), now))
        }
        Request::Fetch { buckets, from, max } => {
            Ok(page(state, buckets, from, max.min(max_bytes), now))
        }
        Request::Give {} => {
            let batch = parse_entries(state, entries)?;
            store.merge_exchanged(batch, now, state.tombstone_ttl);
            Ok(Bytes::new())
        }
    }
}

/// A page of this state's entries in `buckets` from key hash `from`, in about `max`
/// bytes.
fn page(state: &Host, buckets: BucketSet, from: u64, max: usize, now: u64) -> Bytes {
    let reserve = HEADER_RESERVE + 16 * buckets.ranges().count();
    let page = state.store.page(
        &buckets,
        from,
        max.saturating_sub(reserve),
        now,
        state.tombstone_ttl,
    );
    let header = Answer::Page {
        buckets,
        from,
        next: page.next,
        meta: state.store.sync_meta().meta(),
    };
    encode(&header, Some(&page.entries))
}

/// Reads the entries of a message; every one must carry its `ts`, as stored entries do.
fn parse_entries(state: &Host, entries: &[u8]) -> Result<Vec<Incoming>, StateError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let batch = parse_batch(entries, state.ttl)?;
    if let Some(undated) = batch.iter().find(|incoming| incoming.ts.is_none()) {
        return Err(StateError::Invalid(format!(
            "exchanged entries carry their \"ts\"; {:?} has none",
            undated.key
        )));
    }
    Ok(batch)
}

/// Takes in what a peer says about how current it is. When this agent has not been in
/// touch since before the peer's horizon, it may hold values whose tombstones it never
/// saw and the peer has forgotten: it drops everything at or below that horizon, which
/// the exchange then brings back from the peer where the peer still holds it.
fn heed(state: &Host, peer: Meta) {
    let sync = state.store.sync_meta();
    let mine = sync.meta();
    if SyncMeta::is_behind(mine.last_sync, peer.horizon) {
        let dropped = state.store.drop_through(peer.horizon);
        // A newcomer that held nothing so old was never out of touch: no resync to count.
        if dropped > 0 || mine.last_sync.is_some() {
            state.store.resynced();
        }
        if dropped > 0 {
            tracing::warn!(
                last_sync = mine.last_sync,
                horizon = peer.horizon,
                dropped,
                "this agent was out of touch for longer than the grace period \
                 (`tombstone_ttl`): dropped the entries a forgotten delete may shadow, \
                 and resynchronising them from the peer"
            );
        }
        // Nothing left here predates the horizon: this agent is no longer behind it.
        sync.current_at(peer.horizon);
    }
}
