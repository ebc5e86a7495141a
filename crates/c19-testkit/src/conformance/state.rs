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

const SUITE: &str = "state";

/// How long the suite waits for something that should happen soon (a change to reach
/// a subscriber, a value to expire).
const SOON: Duration = Duration::from_secs(10);

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
fn base() -> u64 {
    now_ms().saturating_sub(20_000)
}

/// One key's entry as the suite writes it.
fn entry(value: Value, ts: u64) -> Value {
    json!({ "value": value, "ts": ts })
}

/// A tombstone in the Default format.
fn tombstone(ts: u64) -> Value {
    json!({ "value": null, "ts": ts, "ttl": 0, "deleted": true })
}

/// Merges `batch` (a JSON object of entries), panicking with `what` on refusal.
fn set(state: &SafeState, batch: &Value, what: &str) -> Applied {
    state
        .set(&batch.to_string())
        .unwrap_or_else(|error| panic!("{what}: set({batch}) was refused: {error}"))
}

/// The stored entry of `key`, as JSON.
fn stored(state: &SafeState, key: &str) -> Option<Value> {
    let bytes = state.get(&key)?;
    Some(serde_json::from_slice(&bytes).unwrap_or_else(|error| {
        panic!(
            "get({key:?}) is not a JSON entry of the Default format ({error}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    }))
}

/// The `value` of `key`'s stored entry.
fn value(state: &SafeState, key: &str) -> Option<Value> {
    stored(state, key).map(|entry| entry["value"].clone())
}

/// A JSON object of entries (a diff, a root) parsed.
fn entries(bytes: &Bytes, what: &str) -> Map<String, Value> {
    serde_json::from_slice(bytes).unwrap_or_else(|error| {
        panic!(
            "{what} is not a JSON object of entries ({error}): {:?}",
            String::from_utf8_lossy(bytes)
        )
    })
}

fn is_tombstone(entry: &Value) -> bool {
    entry["deleted"] == Value::Bool(true)
}

/// Checks that a merge took exactly the points after `before` up to the head now.
fn check_points(state: &SafeState, applied: &Applied, before: u64, what: &str) {
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

async fn lww<F, Fut>(make: &mut F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SafeState>,
{
    let (a, b) = (make().await, make().await);
    let t = base();
    let writes = [
        json!({ "k": entry(json!("old"), t) }),
        json!({ "k": entry(json!("new"), t + 10) }),
        json!({ "tie": entry(json!("a"), t + 5) }),
        json!({ "tie": entry(json!("b"), t + 5) }),
        json!({ "dead": entry(json!("alive"), t + 7) }),
        json!({ "dead": tombstone(t + 7) }),
    ];
    for write in &writes {
        set(&a, write, "rule 1 (LWW)");
    }
    for write in writes.iter().rev() {
        set(&b, write, "rule 1 (LWW)");
    }
    for (state, order) in [(&a, "in order"), (&b, "in reverse order")] {
        assert_eq!(
            value(state, "k"),
            Some(json!("new")),
            "rule 1 (LWW): the greater ts must win, merged {order}"
        );
        assert_eq!(
            value(state, "tie"),
            Some(json!("b")),
            "rule 1 (LWW): on equal ts the greater entry bytes must win (\"b\" over \"a\"), \
             merged {order}"
        );
        assert_eq!(
            value(state, "dead"),
            None,
            "rule 1 (LWW): on equal ts a tombstone must win over a value, merged {order}"
        );
    }
    assert_eq!(
        a.version(),
        b.version(),
        "rule 1 (LWW): two states fed the same entries in opposite orders must report the \
         same version()"
    );
    let older = set(&a, &json!({ "k": entry(json!("older"), t + 1) }), "rule 1");
    assert_eq!(
        (older.applied, older.ignored),
        (0, 1),
        "rule 1 (LWW): an older entry must be ignored, and counted so ({older:?})"
    );

    // Read your writes.
    let c = make().await;
    set(
        &c,
        &json!({ "mine": entry(json!({ "n": [1, 2] }), t + 3) }),
        "read your writes",
    );
    let entry = stored(&c, "mine").unwrap_or_else(|| {
        panic!("read your writes: get returns nothing right after set wrote the key")
    });
    assert_eq!(
        (entry["value"].clone(), entry["ts"].as_u64()),
        (json!({ "n": [1, 2] }), Some(t + 3)),
        "read your writes: get must return the value and ts set wrote: {entry}"
    );
    assert_eq!(c.get(&"never-written"), None, "get of a key never written");
}

async fn tombstones<F, Fut>(make: &mut F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SafeState>,
{
    let a = make().await;
    let t = base();
    set(&a, &json!({ "k": entry(json!("v"), t) }), "rule 5");
    let before = a.head();
    assert!(
        a.delete(&"k")
            .unwrap_or_else(|error| panic!("rule 5: delete of a live key failed: {error}")),
        "rule 5 (deletes): delete of a live key must return true"
    );
    assert_eq!(value(&a, "k"), None, "rule 5 (deletes): get after delete");
    assert_eq!(
        a.head(),
        before + 1,
        "rule 5 (deletes are writes): a delete takes one point of the history"
    );
    assert!(
        !a.delete(&"k")
            .unwrap_or_else(|error| panic!("rule 5: delete of a deleted key failed: {error}")),
        "rule 5 (deletes): delete of a deleted key must return false (no live value)"
    );
    assert!(
        !a.delete(&"never-written")
            .unwrap_or_else(|error| panic!("rule 5: delete of an absent key failed: {error}")),
        "rule 5 (deletes): delete of a key never written must return false"
    );
    let diff = a
        .diff(before, 1 << 20)
        .unwrap_or_else(|error| panic!("rule 4: diff failed: {error}"));
    let changes = entries(&diff.changes, "a diff");
    assert!(
        changes.get("k").is_some_and(is_tombstone),
        "rule 5 (deletes are writes): the diff after a delete must carry the tombstone \
         (\"deleted\": true): {changes:?}"
    );

    // The tombstone wins over an older value merged later ...
    let ignored = set(&a, &json!({ "k": entry(json!("older"), t + 1) }), "rule 5");
    assert_eq!(
        (value(&a, "k"), ignored.applied),
        (None, 0),
        "rule 5 (deletes): a tombstone must win over an older value merged after it"
    );
    // ... and loses to a newer one.
    let newer = now_ms() + 5_000;
    set(&a, &json!({ "k": entry(json!("newer"), newer) }), "rule 5");
    assert_eq!(
        value(&a, "k"),
        Some(json!("newer")),
        "rule 5 (deletes): a value newer than the tombstone must win over it"
    );

    // A tombstone merged from a peer, in both orders.
    let (b, c) = (make().await, make().await);
    let value_then_tombstone = [
        json!({ "j": entry(json!("v"), t + 2) }),
        json!({ "j": tombstone(t + 4) }),
    ];
    for write in &value_then_tombstone {
        set(&b, write, "rule 5");
    }
    for write in value_then_tombstone.iter().rev() {
        set(&c, write, "rule 5");
    }
    for state in [&b, &c] {
        assert_eq!(
            value(state, "j"),
            None,
            "rule 5 (deletes): a merged tombstone must win over an older value, in any order"
        );
    }
    assert_eq!(
        b.version(),
        c.version(),
        "rule 1: a value and a tombstone merged in opposite orders must give equal versions"
    );
}

async fn ttl<F, Fut>(make: &mut F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SafeState>,
{
    let a = make().await;
    let now = now_ms();
    set(
        &a,
        &json!({
            "short": { "value": 1, "ts": now, "ttl": 1_500 },
            "gone": { "value": 2, "ts": now - 10_000, "ttl": 1_000 },
            "kept": { "value": 3, "ts": now },
        }),
        "TTL",
    );
    assert_eq!(
        value(&a, "short"),
        Some(json!(1)),
        "TTL: a value within its ttl (1.5 s) must be returned right after it was written"
    );
    assert_eq!(
        value(&a, "gone"),
        None,
        "TTL: a value merged after its ttl ran out must not be returned"
    );
    let expired = wait_until(SOON, || async { a.get(&"short").is_none() }).await;
    assert!(
        expired,
        "TTL: a value with a ttl of 1.5 s is still returned after {SOON:?}"
    );
    assert_eq!(
        value(&a, "kept"),
        Some(json!(3)),
        "TTL: a value without ttl must live for ever (the constructor must build a state \
         without a default TTL)"
    );
}

async fn all_or_nothing<F, Fut>(make: &mut F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SafeState>,
{
    let a = make().await;
    let t = base();
    set(&a, &json!({ "held": entry(json!(0), t) }), "rule 2");
    let (head, version) = (a.head(), a.version());
    let good = format!(
        r#""good":{{"value":1,"ts":{t}}},"held":{{"value":"new","ts":{}}}"#,
        t + 1
    );
    let bad_batches = [
        format!(r#"{{{good},"bad":{{"ts":{t}}}}}"#),
        format!(r#"{{{good},"bad":{{"value":1,"ts":"soon"}}}}"#),
        format!(r#"{{{good},"bad":3}}"#),
        format!(r#"{{{good},"bad":{{"value":1,"ts":-5}}}}"#),
        "[1]".to_owned(),
        "not json".to_owned(),
        format!(r#"{{{good}"#),
    ];
    for batch in &bad_batches {
        match a.set(batch) {
            Err(StateError::Invalid(_)) => {}
            Err(error) => panic!(
                "rule 2 (all or nothing): a malformed batch must be refused as \
                 StateError::Invalid, got {error:?} for {batch}"
            ),
            Ok(applied) => panic!(
                "rule 2 (all or nothing): a batch with a bad entry must be refused, it was \
                 applied ({applied:?}): {batch}"
            ),
        }
        assert_eq!(
            (a.head(), a.version()),
            (head, version.clone()),
            "rule 2 (all or nothing): a refused batch must change nothing (head, version): \
             {batch}"
        );
        assert_eq!(
            (value(&a, "good"), value(&a, "held")),
            (None, Some(json!(0))),
            "rule 2 (all or nothing): the good entries of a refused batch must not be \
             applied: {batch}"
        );
    }

    let good_batch = json!({ "good": entry(json!(1), t) }).to_string();
    let bad_batch = &bad_batches[0];
    let results = a.set_all(&[&good_batch, bad_batch]);
    assert!(
        matches!(results.as_slice(), [Ok(_), Err(StateError::Invalid(_))]),
        "rule 2: set_all validates each batch on its own: a good and a bad batch give \
         [Ok, Err(Invalid)], got {results:?}"
    );
    assert_eq!(
        (value(&a, "good"), a.head()),
        (Some(json!(1)), head + 1),
        "rule 2: set_all must apply the good batch (and only it)"
    );
}

async fn history<F, Fut>(make: &mut F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SafeState>,
{
    let a = make().await;
    let watch = a.watch_head();
    let t = base();
    let batch = json!({
        "a": entry(json!(1), t),
        "b": entry(json!(2), t),
        "c": entry(json!(3), t),
    });
    let before = a.head();
    let applied = set(&a, &batch, "rule 3");
    assert_eq!(
        (applied.applied, applied.ignored),
        (3, 0),
        "rule 3: a batch of 3 new keys applies 3 entries ({applied:?})"
    );
    check_points(&a, &applied, before, "a batch of 3 new keys");
    let (head, version) = (a.head(), a.version());

    let again = set(&a, &batch, "rule 3");
    assert_eq!(
        (again.applied, again.ignored, again.points),
        (0, 3, None),
        "rule 3 (history): the same batch again is a no-op merge: nothing applied, 3 \
         ignored, no points ({again:?})"
    );
    assert_eq!(
        a.head(),
        head,
        "rule 3 (history): a no-op merge (the same batch again) must not move head() \
         (gossip would echo for ever)"
    );
    assert_eq!(
        a.version(),
        version,
        "rule 1: a no-op merge changes no version()"
    );

    let own = a
        .diff(0, 1 << 20)
        .unwrap_or_else(|error| panic!("rule 4: diff failed: {error}"));
    let echo = a
        .set(&own.changes)
        .unwrap_or_else(|error| panic!("rule 4: set refused the state's own diff: {error}"));
    assert_eq!(
        (a.head(), echo.applied),
        (head, 0),
        "rule 3 (history): merging the state's own diff back is a no-op and must not move \
         head() ({echo:?})"
    );

    let mixed = json!({ "a": entry(json!(10), t + 1), "b": entry(json!(20), t - 1) });
    let before = a.head();
    let applied = set(&a, &mixed, "rule 3");
    assert_eq!(
        (applied.applied, applied.ignored),
        (1, 1),
        "rule 1: one newer and one older entry: 1 applied, 1 ignored ({applied:?})"
    );
    check_points(
        &a,
        &applied,
        before,
        "a batch with one newer and one older entry",
    );

    for i in 0..3 {
        let before = a.head();
        let applied = set(
            &a,
            &json!({ format!("one-{i}"): entry(json!(i), t) }),
            "rule 3",
        );
        check_points(&a, &applied, before, "a batch of one new key");
    }

    if let Some(mut watch) = watch {
        let head = a.head();
        let seen = wait_until(SOON, || {
            let now = *watch.borrow_and_update();
            async move { now == head }
        })
        .await;
        assert!(
            seen,
            "watch_head: the receiver must see the head ({head}) once it moved, it shows {}",
            *watch.borrow()
        );
    }
}

async fn diffs<F, Fut>(make: &mut F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SafeState>,
{
    let a = make().await;
    let t = base();
    set(
        &a,
        &json!({ "a": entry(json!(1), t), "b": entry(json!(2), t), "c": entry(json!(3), t) }),
        "rule 4",
    );
    set(&a, &json!({ "a": entry(json!(11), t + 1) }), "rule 4");
    let diff = |state: &SafeState, since: u64, max: usize| {
        state
            .diff(since, max)
            .unwrap_or_else(|error| panic!("rule 4: diff({since}, {max}) failed: {error}"))
    };

    let full = diff(&a, 0, 1 << 20);
    let changes = entries(&full.changes, "diff(0)");
    assert!(
        full.complete,
        "rule 4: a diff within its size limit is complete"
    );
    assert_eq!(
        full.count,
        changes.len(),
        "rule 4: Diff::count must be the number of entries in the diff"
    );
    for (key, expected) in [("a", 11), ("b", 2), ("c", 3)] {
        assert_eq!(
            changes.get(key).map(|entry| entry["value"].clone()),
            Some(json!(expected)),
            "rule 4 (diffs): diff(0) must hold every key with its newest entry: {changes:?}"
        );
    }
    let fresh = make().await;
    fresh
        .set(&full.changes)
        .unwrap_or_else(|error| panic!("rule 4: diff(0) is not in set's format: {error}"));
    assert_eq!(
        fresh.version(),
        a.version(),
        "rule 4 (diffs): diff(0) merged into an empty state must give an equal version()"
    );
    let after = diff(&a, full.next, 1 << 20);
    assert_eq!(
        after.count,
        0,
        "rule 4: nothing changed after a complete diff's `next` ({}), yet a diff from it \
         holds {:?}",
        full.next,
        String::from_utf8_lossy(&after.changes)
    );
    let head = a.head();
    let empty = diff(&a, head, 1 << 20);
    assert!(
        empty.count == 0 && empty.complete,
        "rule 4: a diff from the head must be empty and complete: {empty:?}"
    );

    // From a point: what changed after it.
    set(
        &a,
        &json!({ "d": entry(json!(4), t), "b": entry(json!(22), t + 1) }),
        "rule 4",
    );
    a.delete(&"c")
        .unwrap_or_else(|error| panic!("rule 5: delete failed: {error}"));
    let since = diff(&a, head, 1 << 20);
    let changes = entries(&since.changes, "a diff from a point");
    assert_eq!(since.count, changes.len(), "rule 4: Diff::count");
    assert!(
        changes
            .get("d")
            .is_some_and(|entry| entry["value"] == json!(4))
            && changes
                .get("b")
                .is_some_and(|entry| entry["value"] == json!(22))
            && changes.get("c").is_some_and(is_tombstone),
        "rule 4 (diffs): a diff from point {head} must hold every change after it (d \
         written, b overwritten, c deleted): {changes:?}"
    );
    assert!(
        since.complete,
        "rule 4: a diff within its size limit is complete"
    );

    // The size limit, and resuming.
    let b = make().await;
    let keys: Vec<String> = (0..20).map(|i| format!("page-{i:02}")).collect();
    let big = "x".repeat(200);
    let batch: Map<String, Value> = keys
        .iter()
        .map(|key| (key.clone(), entry(json!(big), t)))
        .collect();
    set(&b, &Value::Object(batch), "rule 4");
    let whole = diff(&b, 0, 1 << 20).changes.len();
    let limit = whole / 4;
    let mut seen = std::collections::BTreeSet::new();
    let mut since = 0;
    for page in 0.. {
        assert!(
            page < 100,
            "rule 4: diffs of 20 keys in pages never completed"
        );
        let part = diff(&b, since, limit);
        if page == 0 {
            assert!(
                !part.complete,
                "rule 4: a diff cut by its size limit ({limit} of {whole} bytes) must say \
                 complete: false"
            );
        }
        let changes = entries(&part.changes, "a page of a diff");
        assert_eq!(part.count, changes.len(), "rule 4: Diff::count of a page");
        assert!(
            part.count > 0 || part.complete,
            "rule 4: an incomplete page must hold something, or resuming never ends"
        );
        seen.extend(changes.keys().cloned());
        if part.complete {
            break;
        }
        assert!(
            part.next > since,
            "rule 4: an incomplete diff's `next` ({}) must move past `since` ({since})",
            part.next
        );
        since = part.next;
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        keys,
        "rule 4 (diffs): the pages of a diff resumed from `next` must hold every change"
    );
}

async fn subscriptions<F, Fut>(make: &mut F, report: &mut Report)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SafeState>,
{
    let a = make().await;
    let mut changes = match a.subscribe() {
        Ok(changes) => changes,
        Err(StateError::Unsupported(what)) => {
            report.skip(
                SUITE,
                "subscriptions",
                format!("this state does not support {what}"),
            );
            return;
        }
        Err(error) => panic!("subscribe failed: {error}"),
    };
    let t = base();
    let start = a.head();
    set(&a, &json!({ "s": entry(json!("v"), t) }), "subscriptions");
    let head = a.head();
    let change = tokio::time::timeout(SOON, changes.recv())
        .await
        .unwrap_or_else(|_| panic!("subscriptions: a change from set reached no subscriber"))
        .unwrap_or_else(|error| panic!("subscriptions: the feed failed: {error}"));
    let event: Value = serde_json::from_slice(&change.entry).unwrap_or_else(|error| {
        panic!("subscriptions: a change's entry is not JSON ({error}): {change:?}")
    });
    assert_eq!(
        (&change.key[..], event["value"].clone(), change.seq),
        (&b"s"[..], json!("v"), head),
        "subscriptions: a change from set carries its key, its entry and the point it took"
    );
    a.delete(&"s")
        .unwrap_or_else(|error| panic!("rule 5: delete failed: {error}"));
    let change = tokio::time::timeout(SOON, changes.recv())
        .await
        .unwrap_or_else(|_| panic!("subscriptions: a change from delete reached no subscriber"))
        .unwrap_or_else(|error| panic!("subscriptions: the feed failed: {error}"));
    let event: Value = serde_json::from_slice(&change.entry).unwrap_or_else(|error| {
        panic!("subscriptions: a change's entry is not JSON ({error}): {change:?}")
    });
    assert!(
        &change.key[..] == b"s" && is_tombstone(&event) && change.seq == a.head(),
        "subscriptions: a change from delete carries the key, a tombstone and its point: \
         {change:?}"
    );
    report.passed(SUITE, "subscriptions");

    set(&a, &json!({ "u": entry(json!(1), t) }), "subscriptions");
    match a.changes_since(start, 100) {
        Ok(missed) => {
            let keys: Vec<&[u8]> = missed.iter().map(|change| &change.key[..]).collect();
            assert_eq!(
                keys,
                [&b"s"[..], &b"u"[..]],
                "subscriptions: changes_since returns one change per key (the newest), in \
                 history order: {missed:?}"
            );
            assert!(
                missed.windows(2).all(|pair| pair[0].seq < pair[1].seq)
                    && missed.iter().all(|change| change.seq > start)
                    && missed.last().is_some_and(|change| change.seq == a.head()),
                "subscriptions: changes_since's points are after `since`, growing, ending at \
                 the head: {missed:?}"
            );
            let one = a
                .changes_since(start, 1)
                .unwrap_or_else(|error| panic!("changes_since failed: {error}"));
            assert_eq!(
                one.len(),
                1,
                "subscriptions: changes_since returns at most `max`"
            );
            report.passed(SUITE, "changes_since");
        }
        Err(StateError::Unsupported(what)) => {
            report.skip(
                SUITE,
                "changes_since",
                format!("this state does not support {what}"),
            );
        }
        Err(error) => panic!("changes_since failed: {error}"),
    }
}

/// Runs one exchange from `from` with `to` answering; checks `written` on each step.
fn converse(from: &SafeState, to: &SafeState) -> Applied {
    const MAX: usize = 1 << 20;
    let mut session = from
        .clone()
        .sync_open(MAX)
        .unwrap_or_else(|error| panic!("exchanges: sync_open failed: {error}"));
    let mut answer: Option<Bytes> = None;
    for _ in 0..1_000 {
        let before = from.head();
        let request = session
            .step(answer.as_deref())
            .unwrap_or_else(|error| panic!("exchanges: a step failed: {error}"));
        let after = from.head();
        if let Some(points) = session.written() {
            assert_eq!(
                Some(points),
                Points::after(before, after - before),
                "rule 3 (history): SyncSession::written must be the points the step took \
                 (head moved from {before} to {after})"
            );
        }
        let Some(request) = request else {
            return session.applied();
        };
        answer = Some(
            to.sync_answer(&request, MAX)
                .unwrap_or_else(|error| panic!("exchanges: sync_answer failed: {error}")),
        );
    }
    panic!("exchanges: an exchange between two small states did not end in 1,000 steps")
}

async fn exchanges<F, Fut>(make: &mut F, report: &mut Report)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SafeState>,
{
    let (a, b) = (make().await, make().await);
    match a.clone().sync_open(1 << 20) {
        Ok(_) => {}
        Err(StateError::Unsupported(what)) => {
            report.skip(
                SUITE,
                "exchanges",
                format!("this state does not support {what}"),
            );
            return;
        }
        Err(error) => panic!("exchanges: sync_open failed: {error}"),
    }
    let t = base();
    set(
        &a,
        &json!({
            "only-a": entry(json!("a"), t),
            "both": entry(json!("old"), t),
            "gone": entry(json!("v"), t),
        }),
        "exchanges",
    );
    set(
        &b,
        &json!({
            "only-b": entry(json!("b"), t),
            "both": entry(json!("new"), t + 10),
            "gone": tombstone(t + 5),
        }),
        "exchanges",
    );
    // Newcomers: the opening side is repaired (a pull); the answering side may wait for
    // its own pull (see the module docs).
    let applied = converse(&a, &b);
    assert!(
        applied.applied > 0,
        "exchanges: the session's state was missing entries, yet applied() says nothing \
         changed ({applied:?})"
    );
    let union = |state: &SafeState| {
        (
            value(state, "only-a"),
            value(state, "only-b"),
            value(state, "both"),
            value(state, "gone"),
        )
    };
    let expected = (Some(json!("a")), Some(json!("b")), Some(json!("new")), None);
    assert_eq!(
        union(&a),
        expected,
        "exchanges: after an exchange the opening side must hold the union, newest entries \
         and tombstones winning"
    );
    converse(&b, &a);
    assert_eq!(
        union(&b),
        expected,
        "exchanges: after its own exchange the other side must hold the union too"
    );
    assert_eq!(
        a.version(),
        b.version(),
        "exchanges (rule 1): states that exchanged both ways must report the same version()"
    );

    // In touch: one exchange repairs both sides.
    set(
        &a,
        &json!({ "later-a": entry(json!("la"), t + 20) }),
        "exchanges",
    );
    set(
        &b,
        &json!({
            "later-b": entry(json!("lb"), t + 20),
            "both": entry(json!("newest"), t + 20),
            "only-a": tombstone(t + 20),
        }),
        "exchanges",
    );
    converse(&a, &b);
    for (state, side) in [(&a, "the opening side"), (&b, "the answering side")] {
        assert_eq!(
            (
                value(state, "later-a"),
                value(state, "later-b"),
                value(state, "both"),
                value(state, "only-a"),
            ),
            (
                Some(json!("la")),
                Some(json!("lb")),
                Some(json!("newest")),
                None
            ),
            "exchanges: between states that have each completed an exchange, one exchange \
             must repair both sides: {side} lacks the union"
        );
    }
    assert_eq!(
        a.version(),
        b.version(),
        "exchanges (rule 1): after an exchange both states must report the same version()"
    );
    let heads = (a.head(), b.head());
    converse(&a, &b);
    assert_eq!(
        (a.head(), b.head()),
        heads,
        "rule 3 (history): an exchange between equal states changes nothing and must move \
         no head()"
    );
    report.passed(SUITE, "exchanges");
}

async fn versions<F, Fut>(make: &mut F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SafeState>,
{
    let (a, b) = (make().await, make().await);
    assert_eq!(
        a.version(),
        b.version(),
        "rule 1 (version): two empty states must report the same version()"
    );
    let t = base();
    let x = json!({ "x": entry(json!(1), t) });
    set(&a, &x, "rule 1");
    assert_ne!(
        a.version(),
        b.version(),
        "rule 1 (version): a state holding a key and an empty one must differ in version()"
    );
    set(&b, &x, "rule 1");
    assert_eq!(
        a.version(),
        b.version(),
        "rule 1 (version): same data, same version()"
    );
    set(&b, &json!({ "x": entry(json!(2), t) }), "rule 1");
    assert_ne!(
        a.version(),
        b.version(),
        "rule 1 (version): the same key with different entries must differ in version()"
    );
    set(&a, &json!({ "x": entry(json!(2), t) }), "rule 1");
    assert_eq!(
        a.version(),
        b.version(),
        "rule 1 (version): same data, same version()"
    );
    let head = a.head();
    a.delete(&"x")
        .unwrap_or_else(|error| panic!("rule 5: delete failed: {error}"));
    assert_ne!(
        a.version(),
        b.version(),
        "rule 1 (version): a deleted key and a live one must differ in version()"
    );
    let tombstone = a
        .diff(head, 1 << 20)
        .unwrap_or_else(|error| panic!("rule 4: diff failed: {error}"));
    b.set(&tombstone.changes)
        .unwrap_or_else(|error| panic!("rule 4: set refused a diff: {error}"));
    assert_eq!(
        a.version(),
        b.version(),
        "rule 1 (version): equal after the tombstone reached the other state"
    );
}
