//! `diff` and `head`: what a connection layer pushes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use c19_core::State;
use common::*;
use serde_json::{Value, json};

fn changes(diff: &c19_core::Diff) -> serde_json::Map<String, Value> {
    match serde_json::from_slice(&diff.changes).unwrap() {
        Value::Object(map) => map,
        other => panic!("diff returned {other}"),
    }
}

#[test]
fn a_diff_after_an_overwrite_holds_the_new_value() {
    let state = state();
    set(
        &state,
        json!({"cat": {"value": "garfield"}, "dog": {"value": "odie"}}),
    );
    let since = state.head();
    set(&state, json!({"cat": {"value": "nermal"}}));
    let diff = state.diff(since, usize::MAX).unwrap();
    assert_eq!(diff.count, 1);
    assert!(diff.complete);
    assert_eq!(diff.next, state.head());
    assert_eq!(changes(&diff)["cat"]["value"], "nermal");
    // From the start, each key appears once, with its newest value.
    let all = changes(&state.diff(0, usize::MAX).unwrap());
    assert_eq!(all.len(), 2);
    assert_eq!(all["cat"]["value"], "nermal");
}

#[test]
fn deletes_are_pushed() {
    let state = state();
    set(&state, json!({"cat": {"value": "garfield"}}));
    let since = state.head();
    state.delete(&"cat").unwrap();
    let changes = changes(&state.diff(since, usize::MAX).unwrap());
    assert_eq!(changes["cat"]["deleted"], true);
}

#[test]
fn a_diff_is_bounded_and_resumes_from_next() {
    let state = state();
    let mut batch = serde_json::Map::new();
    for i in 0..25 {
        batch.insert(format!("key-{i:02}"), json!({"value": "x".repeat(100)}));
    }
    set(&state, Value::Object(batch));
    let mut seen = BTreeMap::new();
    let mut since = 0;
    let mut rounds = 0;
    loop {
        let diff = state.diff(since, 600).unwrap();
        rounds += 1;
        assert!(
            diff.changes.len() <= 600 || diff.count == 1,
            "{} bytes",
            diff.changes.len()
        );
        assert_eq!(changes(&diff).len(), diff.count);
        for key in changes(&diff).keys() {
            assert!(seen.insert(key.clone(), ()).is_none(), "{key} sent twice");
        }
        since = diff.next;
        if diff.complete {
            break;
        }
        assert!(diff.count > 0);
    }
    assert_eq!(seen.len(), 25);
    assert!(rounds > 3, "{rounds} rounds");
    assert_eq!(since, state.head());
    // Nothing new: an empty, complete diff.
    let diff = state.diff(since, 600).unwrap();
    assert_eq!((diff.count, diff.complete, diff.next), (0, true, since));
    assert_eq!(changes(&diff).len(), 0);
}

#[test]
fn a_diff_holds_at_least_one_entry() {
    let state = state();
    set(
        &state,
        json!({"big": {"value": "y".repeat(1000)}, "small": {"value": 1}}),
    );
    let diff = state.diff(0, 10).unwrap();
    assert_eq!(diff.count, 1);
    assert!(!diff.complete);
    let rest = state.diff(diff.next, 10).unwrap();
    assert_eq!(rest.count, 1);
    assert!(rest.complete);
}

#[test]
fn ignored_merges_are_not_changes() {
    let state = state();
    set(&state, json!({"cat": {"value": 1, "ts": 100}}));
    let head = state.head();
    set(&state, json!({"cat": {"value": 0, "ts": 50}}));
    assert_eq!(state.head(), head);
    assert_eq!(state.diff(head, usize::MAX).unwrap().count, 0);
}

#[test]
fn expired_values_are_not_pushed_and_sweeps_are_not_changes() {
    let state = state();
    set(
        &state,
        json!({"gone": {"value": 1, "ts": now() - 10_000, "ttl": 1}, "kept": {"value": 2}}),
    );
    let diff = state.diff(0, usize::MAX).unwrap();
    assert_eq!(diff.count, 1);
    assert!(changes(&diff).contains_key("kept"));
    let head = state.head();
    state.purge_now();
    assert_eq!(state.head(), head);
}
