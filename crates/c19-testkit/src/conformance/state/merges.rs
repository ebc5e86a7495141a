//! Rules 1, 2 and 5 and TTLs: last writer wins, tombstones, expiry, all or nothing.

use super::*;

pub(super) async fn lww<F, Fut>(make: &mut F)
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

pub(super) async fn tombstones<F, Fut>(make: &mut F)
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

pub(super) async fn ttl<F, Fut>(make: &mut F)
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

pub(super) async fn all_or_nothing<F, Fut>(make: &mut F)
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
