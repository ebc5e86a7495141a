//! The conformance suite of the state layer: [`run`] checks an implementation of
//! [`State`](c19_core::State) against the contract written in [`c19_core::state`] (its
//! rules 1 to 5; rule 6, no blocking on the network, cannot be seen from outside).
//!
//! The suite is for states of the `Default` data format ([`c19_core::entry`]): it
//! writes batches such as `{"cat": {"value": "garfield", "ts": 1700000000000}}`,
//! tombstones as `{"value": null, "ts": ..., "ttl": 0, "deleted": true}`, and reads
//! `get`, diffs and change events as JSON entries `{"value": ..., "ts": ..., ...}`. A
//! state of another format needs a suite of its own (the rules are the same; this
//! module is a template).
//!
//! # What it checks
//!
//! Each part runs on fresh instances from the constructor:
//!
//! 1. **LWW** (rule 1): the greater `ts` wins whatever the order; on equal `ts` the
//!    greater entry bytes win, and a tombstone wins over a value; two instances fed the
//!    same entries in opposite orders hold the same values and the same `version()`;
//!    what a `set` wrote, `get` returns (read your writes), with its `ts`.
//! 2. **Tombstones** (rule 5): `delete` returns whether a live value was deleted, takes
//!    one point, shows in diffs as `"deleted": true`, wins over older values merged
//!    later and loses to newer ones.
//! 3. **TTL**: a value past its `ttl` is not returned, one already expired when merged
//!    neither; a value without `ttl` stays (polled with
//!    [`wait_until`], not slept).
//! 4. **All or nothing** (rule 2): a batch with one bad entry (a missing `value`, a
//!    `ts` that is not a number, an entry that is not an object), or a body that is not
//!    a JSON object, is refused with [`StateError::Invalid`] and changes nothing: same
//!    `head()`, same `version()`, its good entries absent; `set_all` refuses only the
//!    bad batch.
//! 5. **History** (rule 3): `head()` moves by the number of entries that changed; a
//!    no-op merge (the same batch again, or the state's own diff) moves nothing and
//!    reports `applied: 0` and no points; [`Applied::points`], when said, are the
//!    consecutive points after the old head, ending at the new head; `watch_head()`,
//!    when offered, sees the new head.
//! 6. **Diffs** (rule 4): a diff from 0 holds every key with its newest entry and
//!    merges into a fresh instance to an equal `version()`; a diff from a point holds
//!    what changed after it; a diff from the head is empty, as is one from a complete
//!    diff's `next`; `count` is the number of entries; a size limit gives
//!    `complete: false` and resuming from `next` gives the rest.
//! 7. **Subscriptions** (if `subscribe()` is supported): a change from `set` and from
//!    `delete` reaches a subscriber, with its key, entry and the point it took;
//!    `changes_since` (if supported) returns them once per key, in history order.
//! 8. **Exchanges** (if `sync_open` is supported): two instances that differ converse
//!    (the session's requests answered by the other's `sync_answer` until the session
//!    says `None`). Afterwards the opening side holds the union, newest entries and
//!    tombstones winning; once the other side has opened one too, both hold it with
//!    equal `version()`. Between states that have each completed an exchange, one
//!    exchange repairs both sides.
//!    [`SyncSession::written`](c19_core::SyncSession::written), when said, matches how
//!    far `head()` moved in that step; an exchange between equals moves no head.
//!
//!    Why not both sides from the first exchange: a state may give nothing to a peer
//!    that never completed an exchange of its own (the Default state treats it as a
//!    newcomer catching up by its own pull, so that its partial state is not sent back
//!    and forth); the suite allows that.
//! 9. **Versions** (rule 1): `version()` is equal exactly when the data is.
//!
//! # What the constructor must build
//!
//! A fresh, empty state whose values live for ever unless they carry a `ttl` (no
//! default TTL), that refuses nothing merged with
//! [`State::set`](c19_core::State::set) for being a little in the past or the future
//! (timestamps are within a minute of the clock), and whose tombstones are not swept
//! during the suite (it runs for some seconds).

use std::{future::Future, time::Duration};

use bytes::Bytes;
use c19_core::{Applied, Points, SafeState, StateError, clock::now_ms};
use serde_json::{Map, Value, json};

use super::Report;
use crate::wait_until;

mod feeds;
mod history;
mod merges;

use self::{
    feeds::{exchanges, subscriptions, versions},
    history::{diffs, history},
    merges::{all_or_nothing, lww, tombstones, ttl},
};

pub(super) const SUITE: &str = "state";

/// How long the suite waits for something that should happen soon (a change to reach
/// a subscriber, a value to expire).
pub(super) const SOON: Duration = Duration::from_secs(10);

/// Runs the whole suite on states built by `make` (a fresh, empty state each call; see
/// the [module docs](self)); panics on the first rule broken.
///
/// ```no_run
/// # async fn example() {
/// use c19_core::{LayerContext, Shutdown, StateConfig};
///
/// let report = c19_testkit::conformance::state::run(|| async {
///     let cx = LayerContext::new("state", Shutdown::new());
///     c19_testkit::MemStateConfig::default().build(&cx).await.unwrap()
/// })
/// .await;
/// println!("{report:?}");
/// # }
/// ```
pub async fn run<F, Fut>(mut make: F) -> Report
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SafeState>,
{
    let mut report = Report::default();
    lww(&mut make).await;
    report.passed(SUITE, "lww");
    tombstones(&mut make).await;
    report.passed(SUITE, "tombstones");
    ttl(&mut make).await;
    report.passed(SUITE, "ttl");
    all_or_nothing(&mut make).await;
    report.passed(SUITE, "all-or-nothing");
    history(&mut make).await;
    report.passed(SUITE, "history");
    diffs(&mut make).await;
    report.passed(SUITE, "diffs");
    subscriptions(&mut make, &mut report).await;
    exchanges(&mut make, &mut report).await;
    versions(&mut make).await;
    report.passed(SUITE, "versions");
    report
}

/// A timestamp a little in the past, from which the suite's timestamps count.
pub(super) fn base() -> u64 {
    now_ms().saturating_sub(20_000)
}

/// One key's entry as the suite writes it.
pub(super) fn entry(value: Value, ts: u64) -> Value {
    json!({ "value": value, "ts": ts })
}

/// A tombstone in the Default format.
pub(super) fn tombstone(ts: u64) -> Value {
    json!({ "value": null, "ts": ts, "ttl": 0, "deleted": true })
}

/// Merges `batch` (a JSON object of entries), panicking with `what` on refusal.
pub(super) fn set(state: &SafeState, batch: &Value, what: &str) -> Applied {
    state
        .set(&batch.to_string())
        .unwrap_or_else(|error| panic!("{what}: set({batch}) was refused: {error}"))
}

/// The stored entry of `key`, as JSON.
pub(super) fn stored(state: &SafeState, key: &str) -> Option<Value> {
    let bytes = state.get(&key)?;
    Some(serde_json::from_slice(&bytes).unwrap_or_else(|error| {
        panic!(
            "get({key:?}) is not a JSON entry of the Default format ({error}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    }))
}

/// The `value` of `key`'s stored entry.
pub(super) fn value(state: &SafeState, key: &str) -> Option<Value> {
    stored(state, key).map(|entry| entry["value"].clone())
}

/// A JSON object of entries (a diff, a root) parsed.
pub(super) fn entries(bytes: &Bytes, what: &str) -> Map<String, Value> {
    serde_json::from_slice(bytes).unwrap_or_else(|error| {
        panic!(
            "{what} is not a JSON object of entries ({error}): {:?}",
            String::from_utf8_lossy(bytes)
        )
    })
}

pub(super) fn is_tombstone(entry: &Value) -> bool {
    entry["deleted"] == Value::Bool(true)
}

/// Checks that a merge took exactly the points after `before` up to the head now.
pub(super) fn check_points(state: &SafeState, applied: &Applied, before: u64, what: &str) {
    let head = state.head();
    let changed = applied.applied as u64;
    assert_eq!(
        head,
        before + changed,
        "rule 3 (history): {what}: {changed} entries changed, so head() must move from \
         {before} by {changed}, it is {head} ({applied:?})"
    );
    if let Some(points) = applied.points {
        assert_eq!(
            Some(points),
            Points::after(before, changed),
            "rule 3 (history): {what}: Applied::points must be the {changed} consecutive \
             points after the old head {before} ({applied:?}, head now {head})"
        );
    }
}
