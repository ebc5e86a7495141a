//! Listing, change subscriptions and replays of missed changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use c19_core::{Change, LayerContext, Shutdown, State, StateConfig};
use c19_state_default::{DefaultState, DefaultStateConfig};
use common::*;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

fn listed(state: &dyn State, prefix: &str, limit: Option<usize>) -> Vec<(String, Value)> {
    let bytes = state.list(&prefix, limit).unwrap();
    let map: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).unwrap();
    map.into_iter().collect()
}

fn keys(listed: &[(String, Value)]) -> Vec<&str> {
    listed.iter().map(|(key, _)| key.as_str()).collect()
}

/// (key, value or "deleted") of a change.
fn seen(change: &Change) -> (String, Value) {
    let entry: Value = serde_json::from_slice(&change.entry).unwrap();
    let key = String::from_utf8(change.key.to_vec()).unwrap();
    if entry["deleted"] == true {
        (key, json!("deleted"))
    } else {
        (key, entry["value"].clone())
    }
}

#[test]
fn lists_live_keys_under_a_prefix_in_key_order() {
    let state = state();
    let ts = now();
    set(
        &state,
        json!({
            "users/3": {"value": 3}, "users/1": {"value": {"name": "ann"}}, "users/2": {"value": 2},
            "userz": {"value": 0}, "groups/1": {"value": "g"},
            "users/old": {"value": "gone", "ts": ts - 10_000, "ttl": 1},
        }),
    );
    state.delete(&"users/2").unwrap();

    let users = listed(&state, "users/", None);
    assert_eq!(keys(&users), ["users/1", "users/3"]);
    assert_eq!(users[0].1["value"], json!({"name": "ann"}));
    assert!(users[0].1["ts"].as_u64().unwrap() >= ts);
    assert_eq!(
        keys(&listed(&state, "", None)),
        ["groups/1", "users/1", "users/3", "userz"]
    );
    assert_eq!(keys(&listed(&state, "", Some(2))), ["groups/1", "users/1"]);
    assert_eq!(keys(&listed(&state, "users/", Some(1))), ["users/1"]);
    assert_eq!(keys(&listed(&state, "users/", Some(10))).len(), 2);
    assert!(listed(&state, "nobody", None).is_empty());
}

#[test]
fn a_listing_is_a_batch_another_state_accepts_unchanged() {
    let state = state();
    set(
        &state,
        json!({"a": {"value": [1, 2]}, "b": {"value": "x", "ttl": 60000}}),
    );
    let copy = DefaultState::default();
    copy.set(&state.list(&"", None).unwrap()).unwrap();
    assert_eq!(copy.version(), state.version());
}

#[test]
fn subscribers_get_local_writes_merges_and_deletes_in_order() {
    let state = state();
    let mut changes = state.subscribe().unwrap();
    set(&state, json!({"a": {"value": 1}}));
    set(&state, json!({"b": {"value": 2, "ts": now() - 5}}));
    state.delete(&"a").unwrap();
    // A merge that loses changes nothing, and nobody hears of it.
    set(&state, json!({"b": {"value": "older", "ts": 1}}));

    let mut got = Vec::new();
    while let Ok(change) = changes.try_recv() {
        got.push(change);
    }
    let described: Vec<(String, Value)> = got.iter().map(seen).collect();
    assert_eq!(
        described,
        [
            ("a".into(), json!(1)),
            ("b".into(), json!(2)),
            ("a".into(), json!("deleted"))
        ]
    );
    let seqs: Vec<u64> = got.iter().map(|change| change.seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    assert_eq!(*seqs.last().unwrap(), state.head());
    // The entry is what `get` would have answered then.
    let entry: Value = serde_json::from_slice(&got[1].entry).unwrap();
    assert_eq!(entry["value"], 2);
    assert!(entry["ts"].is_u64());
}

#[test]
fn a_subscriber_that_falls_behind_its_buffer_lags_and_writers_go_on() {
    let config: DefaultStateConfig = serde_json::from_value(json!({"watch_buffer": "4"})).unwrap();
    assert_eq!(config.watch_buffer.get(), 4);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cx = LayerContext::new("state", Shutdown::new());
    let state = runtime.block_on(config.build(&cx)).unwrap();
    let mut slow = state.subscribe().unwrap();
    // Nobody reads `slow`: every write still completes.
    for i in 0..10 {
        state
            .set(&json!({ format!("k{i}"): {"value": i} }).to_string())
            .unwrap();
    }
    assert!(matches!(slow.try_recv(), Err(TryRecvError::Lagged(6))));
    // What is still in the buffer is the last four changes.
    let rest: Vec<String> = std::iter::from_fn(|| slow.try_recv().ok())
        .map(|change| seen(&change).0)
        .collect();
    assert_eq!(rest, ["k6", "k7", "k8", "k9"]);
}

#[tokio::test]
async fn a_subscription_ends_when_the_state_is_dropped() {
    let state = state();
    let mut changes = state.subscribe().unwrap();
    drop(state);
    assert_eq!(changes.recv().await, Err(RecvError::Closed));
}

#[test]
fn changes_since_replays_the_newest_of_each_key_in_history_order() {
    let state = state();
    set(&state, json!({"a": {"value": 1}}));
    let seen_up_to = state.head();
    set(&state, json!({"b": {"value": 1}}));
    set(&state, json!({"a": {"value": 2}}));
    set(&state, json!({"c": {"value": 1}}));
    state.delete(&"b").unwrap();
    set(
        &state,
        json!({"expired": {"value": 1, "ts": now() - 10_000, "ttl": 1}}),
    );

    let missed = state.changes_since(seen_up_to, 100).unwrap();
    let described: Vec<(String, Value)> = missed.iter().map(seen).collect();
    assert_eq!(
        described,
        [
            ("a".into(), json!(2)),
            ("c".into(), json!(1)),
            ("b".into(), json!("deleted"))
        ]
    );
    let seqs: Vec<u64> = missed.iter().map(|change| change.seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    assert!(seqs[0] > seen_up_to);

    // Paging: at most `max`, and resuming after the last one returned.
    let first = state.changes_since(seen_up_to, 2).unwrap();
    assert_eq!(first.len(), 2);
    let rest = state.changes_since(first[1].seq, 100).unwrap();
    assert_eq!(rest.iter().map(seen).collect::<Vec<_>>(), described[2..]);
    assert!(state.changes_since(state.head(), 100).unwrap().is_empty());
    assert_eq!(state.changes_since(0, 100).unwrap().len(), 3);
}

#[test]
fn a_replay_and_the_live_feed_together_miss_nothing() {
    let state = state();
    set(&state, json!({"before": {"value": 0}}));
    let mut live = state.subscribe().unwrap();
    set(&state, json!({"during": {"value": 1}}));
    let replay = state.changes_since(0, 100).unwrap();
    set(&state, json!({"after": {"value": 2}}));

    let last = replay.last().unwrap().seq;
    let mut keys: Vec<String> = replay.iter().map(|change| seen(change).0).collect();
    while let Ok(change) = live.try_recv() {
        if change.seq > last {
            keys.push(seen(&change).0);
        }
    }
    assert_eq!(keys, ["before", "during", "after"]);
}

#[test]
fn an_expiry_swept_is_told_to_subscribers_but_never_pushed_or_replayed() {
    let state = state();
    let ts = now() - 10_000;
    set(
        &state,
        json!({
            "cat": {"value": "garfield", "ts": ts, "ttl": 100},
            "dog": {"value": "odie"},
            "gone": {"value": "old", "ts": ts},
        }),
    );
    state.delete(&"gone").unwrap();
    // Nobody watches: the sweep takes no point of the history.
    let unwatched = DefaultState::new(&DefaultStateConfig {
        tombstone_ttl: 0,
        ..DefaultStateConfig::default()
    });
    set(
        &unwatched,
        json!({"cat": {"value": 1, "ts": ts, "ttl": 100}}),
    );
    let head = unwatched.head();
    assert_eq!(unwatched.purge_now(), 1);
    assert_eq!(unwatched.head(), head);

    let mut feed = state.subscribe().unwrap();
    let before = state.head();
    assert_eq!(
        state.purge_now(),
        1,
        "the tombstone is younger than tombstone_ttl"
    );
    let change = feed.try_recv().unwrap();
    assert_eq!(change.key.as_ref(), b"cat");
    assert_eq!(change.seq, before + 1);
    let entry: Value = serde_json::from_slice(&change.entry).unwrap();
    assert_eq!(
        entry,
        json!({"value": null, "ts": ts, "ttl": 100, "expired": true})
    );
    assert_eq!(feed.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(state.head(), before + 1);
    // Not a delete: nothing to push, nothing to replay, and no tombstone.
    let diff = state.diff(before, 1 << 20).unwrap();
    assert_eq!(
        (diff.count, diff.next, diff.complete),
        (0, before + 1, true)
    );
    assert!(state.changes_since(before, 10).unwrap().is_empty());
    assert_eq!(state.held("cat"), None);
    assert_eq!(value(&state, "dog"), Some(json!("odie")));
}
