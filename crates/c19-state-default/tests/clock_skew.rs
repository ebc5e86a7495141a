//! `max_clock_skew`: the agent API may not write a `ts` far in the future, while entries
//! from peers are merged whatever their `ts`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use c19_core::{State, StateValue};
use c19_state_default::{DefaultState, DefaultStateConfig};
use common::*;
use serde_json::json;

const HOUR: u64 = 3_600_000;

/// The error of a local write of `batch`.
fn refused_locally(state: &dyn State, batch: serde_json::Value) -> String {
    state
        .set_local(&batch.to_string())
        .expect_err("the write should have been refused")
        .to_string()
}

#[test]
fn a_local_ts_too_far_ahead_is_refused_naming_the_key_and_the_limit() {
    let state = state();
    set(&state, json!({"cat": {"value": "before"}}));
    let version = state.version();
    let held = state.held("cat");

    let message = refused_locally(
        &state,
        json!({"dog": {"value": 1}, "cat": {"value": "after", "ts": now() + HOUR}}),
    );
    assert!(message.starts_with(r#"key "cat": "ts" is "#), "{message}");
    assert!(message.contains("max_clock_skew (30000 ms)"), "{message}");

    // Nothing of the batch was applied.
    assert_eq!(state.version(), version);
    assert_eq!(state.held("cat"), held);
    assert_eq!(get(&state, "dog"), None);

    // A tombstone is a write like any other.
    let message = refused_locally(
        &state,
        json!({"cat": {"value": null, "deleted": true, "ts": now() + HOUR}}),
    );
    assert!(message.contains("max_clock_skew"), "{message}");
    assert_eq!(value(&state, "cat"), Some(json!("before")));
}

#[test]
fn a_local_ts_within_the_limit_is_accepted() {
    let state = state();
    let ts = now() + 1000;
    let applied = state
        .set_local(&json!({"cat": {"value": 1, "ts": ts}}).to_string())
        .unwrap();
    assert_eq!(applied.applied, 1);
    assert_eq!(get(&state, "cat").unwrap()["ts"], ts);
    // Past timestamps and none at all are never refused.
    state
        .set_local(&json!({"old": {"value": 1, "ts": 1}, "now": {"value": 2}}).to_string())
        .unwrap();
    assert_eq!(value(&state, "old"), Some(json!(1)));
}

#[test]
fn entries_from_peers_are_merged_whatever_their_ts() {
    let state = state();
    let future = now() + HOUR;
    let (applied, _) = set(&state, json!({"cat": {"value": "fast peer", "ts": future}}));
    assert_eq!(applied, 1);
    assert_eq!(get(&state, "cat").unwrap()["ts"], future);
}

#[test]
fn grouped_local_writes_are_checked_one_by_one() {
    let state = state();
    let good = json!({"a": {"value": 1, "ts": now()}}).to_string();
    let bad = json!({"b": {"value": 2, "ts": now() + HOUR}}).to_string();
    let also_good = json!({"c": {"value": 3}}).to_string();
    let values: [&dyn StateValue; 3] = [&good, &bad, &also_good];
    let results = state.set_all_local(&values);
    assert!(results[0].is_ok());
    assert!(
        results[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("max_clock_skew"),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok());
    assert_eq!(value(&state, "a"), Some(json!(1)));
    assert_eq!(value(&state, "b"), None);
    assert_eq!(value(&state, "c"), Some(json!(3)));
    // The same batches from peers all merge.
    let merged = state.set_all(&values);
    assert!(merged.iter().all(Result::is_ok), "{merged:?}");
    assert_eq!(value(&state, "b"), Some(json!(2)));
}

#[test]
fn the_limit_is_configurable_and_reported_to_the_connection() {
    let config: DefaultStateConfig =
        serde_json::from_value(json!({"max_clock_skew": "5000"})).unwrap();
    let state = DefaultState::new(&config);
    assert_eq!(state.max_clock_skew(), 5000);
    assert_eq!(DefaultState::default().max_clock_skew(), 30_000);
    let message = refused_locally(&state, json!({"cat": {"value": 1, "ts": now() + 10_000}}));
    assert!(message.contains("max_clock_skew (5000 ms)"), "{message}");
    assert!(serde_json::from_value::<DefaultStateConfig>(json!({"max_clock_skew": -1})).is_err());
}
