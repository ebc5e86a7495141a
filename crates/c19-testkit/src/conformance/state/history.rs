//! Rules 3 and 4: the points of the history, and diffs.

use super::*;

pub(super) async fn history<F, Fut>(make: &mut F)
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

pub(super) async fn diffs<F, Fut>(make: &mut F)
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
