//! Subscriptions, exchanges between two instances, and versions.

use super::*;

pub(super) async fn subscriptions<F, Fut>(make: &mut F, report: &mut Report)
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
pub(super) fn converse(from: &SafeState, to: &SafeState) -> Applied {
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

pub(super) async fn exchanges<F, Fut>(make: &mut F, report: &mut Report)
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

pub(super) async fn versions<F, Fut>(make: &mut F)
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
