//! The Default state's rules, through the `State` trait.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use c19_core::State;
use c19_state_default::{DefaultState, DefaultStateConfig};
use common::*;
use serde_json::json;

#[test]
fn a_value_is_stored_in_the_wire_format() {
    let state = state();
    let ts = now();
    set(
        &state,
        json!({"cat": {"value": {"name": "garfield"}, "ttl": 20000, "ts": ts}}),
    );
    let raw = state.get(&"cat").unwrap();
    let expected = format!(r#"{{"value":{{"name":"garfield"}},"ts":{ts},"ttl":20000}}"#);
    assert_eq!(&raw[..], expected.as_bytes());
    assert_eq!(get(&state, "dog"), None);
}

#[test]
fn a_write_without_ts_gets_now() {
    let state = state();
    let before = now();
    set(&state, json!({"cat": {"value": "garfield"}}));
    let ts = get(&state, "cat").unwrap()["ts"].as_u64().unwrap();
    assert!(ts >= before && ts <= now(), "{ts}");
}

#[test]
fn read_your_writes_when_the_held_ts_is_in_the_future() {
    let state = state();
    let future = now() + 3_600_000;
    set(
        &state,
        json!({"cat": {"value": "from a fast clock", "ts": future}}),
    );
    let (applied, _) = set(&state, json!({"cat": {"value": "mine"}}));
    assert_eq!(applied, 1);
    let entry = get(&state, "cat").unwrap();
    assert_eq!(entry["value"], "mine");
    assert_eq!(entry["ts"], future + 1);
}

#[test]
fn a_delete_hides_the_value_and_reports_it() {
    let state = state();
    set(&state, json!({"cat": {"value": "garfield"}}));
    assert!(state.delete(&"cat").unwrap());
    assert_eq!(get(&state, "cat"), None);
    // Deleting again, or deleting what never was, still succeeds.
    assert!(!state.delete(&"cat").unwrap());
    assert!(!state.delete(&"dog").unwrap());
    assert!(state.delete(&"").is_err());
}

#[test]
fn a_delete_of_an_absent_key_still_writes_a_tombstone() {
    let state = state();
    let head = state.head();
    state.delete(&"ghost").unwrap();
    assert!(state.head() > head);
    let held: serde_json::Value = serde_json::from_slice(&state.held("ghost").unwrap()).unwrap();
    assert_eq!(held["deleted"], true);
    assert_eq!(held["ttl"], 0);
    // It wins over an older value arriving from a peer.
    set(&state, json!({"ghost": {"value": "boo", "ts": 1}}));
    assert_eq!(get(&state, "ghost"), None);
}

#[test]
fn a_tombstone_wins_over_older_values_and_is_not_resurrected() {
    let state = state();
    set(&state, json!({"cat": {"value": "garfield", "ts": 400}}));
    let (applied, _) = set(&state, json!({"cat": tombstone(500)}));
    assert_eq!(applied, 1);
    assert_eq!(get(&state, "cat"), None);
    // A peer that still holds the old value sends it again, or an older one.
    let (applied, ignored) = set(&state, json!({"cat": {"value": "garfield", "ts": 450}}));
    assert_eq!((applied, ignored), (0, 1));
    assert_eq!(get(&state, "cat"), None);
    // The tombstone travels in the full state, so peers learn of the delete.
    assert_eq!(root(&state)["cat"], tombstone(500));
    // A newer write brings the key back.
    set(&state, json!({"cat": {"value": "nermal", "ts": 600}}));
    assert_eq!(value(&state, "cat").unwrap(), "nermal");
}

#[test]
fn a_local_delete_wins_over_a_value_from_a_fast_clock() {
    let state = state();
    set(
        &state,
        json!({"cat": {"value": "garfield", "ts": now() + 3_600_000}}),
    );
    assert!(state.delete(&"cat").unwrap());
    assert_eq!(get(&state, "cat"), None);
}

#[test]
fn old_tombstones_are_collected_after_tombstone_ttl() {
    let state = DefaultState::new(&DefaultStateConfig {
        tombstone_ttl: 60_000,
        ..DefaultStateConfig::default()
    });
    set(
        &state,
        json!({"old": tombstone(now() - 120_000), "recent": tombstone(now())}),
    );
    assert_eq!(state.len(), 2);
    assert_eq!(state.purge_now(), 1);
    assert!(state.held("old").is_none());
    assert!(state.held("recent").is_some());
}

#[test]
fn expired_values_are_hidden_then_swept() {
    let state = state();
    let past = now() - 10_000;
    set(
        &state,
        json!({"gone": {"value": 1, "ts": past, "ttl": 1000}, "kept": {"value": 2, "ttl": 60000}}),
    );
    assert_eq!(get(&state, "gone"), None);
    assert_eq!(value(&state, "kept").unwrap(), 2);
    assert!(!root(&state).contains_key("gone"));
    assert!(state.held("gone").is_some());
    assert_eq!(state.purge_now(), 1);
    assert!(state.held("gone").is_none());
    assert_eq!(state.len(), 1);
}

#[test]
fn the_default_ttl_travels_with_the_value() {
    let state = DefaultState::new(&DefaultStateConfig {
        ttl: Some(5000),
        ..DefaultStateConfig::default()
    });
    set(
        &state,
        json!({"a": {"value": 1}, "b": {"value": 2, "ttl": null}, "c": {"value": 3, "ttl": 7}}),
    );
    assert_eq!(get(&state, "a").unwrap()["ttl"], 5000);
    assert_eq!(get(&state, "b").unwrap()["ttl"], 5000);
    assert_eq!(get(&state, "c").unwrap()["ttl"], 7);
    assert_eq!(root(&state)["a"]["ttl"], 5000);
}

#[test]
fn versions_are_equal_exactly_for_equal_data() {
    let (a, b, c) = (state(), state(), state());
    assert_eq!(a.version(), b.version());
    set(
        &a,
        json!({"x": {"value": 1, "ts": 10}, "y": {"value": [1, 2], "ts": 11}}),
    );
    assert_ne!(a.version(), b.version());
    // The same data arriving in another order and batching.
    set(&b, json!({"y": {"value": [1, 2], "ts": 11}}));
    set(&b, json!({"x": {"value": 1, "ts": 10}}));
    assert_eq!(a.version(), b.version());
    // Same keys and timestamps, one value differs: 0.1 reported equal versions here.
    set(
        &c,
        json!({"x": {"value": 2, "ts": 10}, "y": {"value": [1, 2], "ts": 11}}),
    );
    assert_ne!(a.version(), c.version());
    // A tombstone is data too.
    let d = state();
    set(
        &d,
        json!({"x": {"value": 1, "ts": 10}, "y": {"value": [1, 2], "ts": 11}, "z": tombstone(5)}),
    );
    assert_ne!(a.version(), d.version());
}

#[test]
fn the_full_state_round_trips_between_states() {
    let (a, b) = (state(), state());
    set(
        &a,
        json!({"x": {"value": {"deep": [1, "two", null]}}, "y": {"value": "why", "ttl": 60000}, "z": tombstone(now())}),
    );
    set(&b, json!({"x": {"value": "older", "ts": 1}}));
    b.set(&a.get_root()).unwrap();
    assert_eq!(a.version(), b.version());
    assert_eq!(root(&a), root(&b));
}

#[test]
fn a_merge_that_changes_nothing_does_not_advance_head_or_version() {
    let state = state();
    set(
        &state,
        json!({"x": {"value": 1, "ts": 10}, "y": {"value": 2, "ts": 10}}),
    );
    let (head, version) = (state.head(), state.version());
    let (applied, ignored) = set(
        &state,
        json!({"x": {"value": 1, "ts": 10}, "y": {"value": 9, "ts": 3}}),
    );
    assert_eq!((applied, ignored), (0, 2));
    assert_eq!(state.head(), head);
    assert_eq!(state.version(), version);
    // Its own full state, as a peer would echo it back.
    let applied = state.set(&state.get_root()).unwrap();
    assert_eq!(applied.applied, 0);
    assert_eq!(state.head(), head);
}

#[test]
fn a_refused_batch_changes_nothing() {
    let state = state();
    set(&state, json!({"kept": {"value": "before", "ts": 10}}));
    let (head, version, root_before) = (state.head(), state.version(), root(&state));
    let bad = json!({"kept": {"value": "after", "ts": 20}, "new": {"value": 1}, "broken": {"value": 2, "ttl": "soon"}});
    let error = state.set(&bad.to_string()).unwrap_err().to_string();
    assert!(
        error.contains(r#"key "broken""#) && error.contains("ttl"),
        "{error}"
    );
    assert_eq!(state.head(), head);
    assert_eq!(state.version(), version);
    assert_eq!(root(&state), root_before);
    assert_eq!(get(&state, "new"), None);
}

#[test]
fn batches_set_together_act_as_sets_one_after_another() {
    let state = state();
    set(&state, json!({"merged": {"value": "newer", "ts": 50}}));
    let batches = [
        json!({"a": {"value": 9}, "b": {"value": 9}}).to_string(),
        json!({"a": {"value": 8}, "broken": {"value": 3, "ts": "late"}}).to_string(),
        json!({"a": {"value": 3}}).to_string(),
        json!({"merged": {"value": "older", "ts": 40}}).to_string(),
        "not json".to_owned(),
        json!({"b": {"value": 2}, "merged": {"value": "newest", "ts": 60}}).to_string(),
    ];
    let values: Vec<&dyn c19_core::StateValue> = batches
        .iter()
        .map(|batch| batch as &dyn c19_core::StateValue)
        .collect();
    let results = state.set_all(&values);

    let outcome: Vec<_> = results
        .iter()
        .map(|result| match result {
            Ok(applied) => Ok((applied.applied, applied.ignored)),
            Err(error) => Err(error.to_string()),
        })
        .collect();
    assert_eq!(outcome[0], Ok((2, 0)));
    assert!(
        outcome[1]
            .as_ref()
            .is_err_and(|error| error.contains(r#"key "broken""#)),
        "{:?}",
        outcome[1]
    );
    assert_eq!(outcome[2], Ok((1, 0)));
    assert_eq!(outcome[3], Ok((0, 1)));
    assert!(
        outcome[4]
            .as_ref()
            .is_err_and(|error| error.contains("not JSON"))
    );
    assert_eq!(outcome[5], Ok((2, 0)));
    // The refused batch left nothing; a later write of a key supersedes an earlier one
    // (a tie of timestamps would keep 9: the larger bytes win).
    assert_eq!(value(&state, "a"), Some(json!(3)));
    assert_eq!(value(&state, "b"), Some(json!(2)));
    assert_eq!(value(&state, "merged"), Some(json!("newest")));
    assert_eq!(get(&state, "broken"), None);

    // The same batches set one by one give the same data.
    let sequential = self::state();
    set(&sequential, json!({"merged": {"value": "newer", "ts": 50}}));
    for batch in &batches {
        let _ = sequential.set(batch);
    }
    let strip = |state: &DefaultState| {
        let mut all = root(state);
        for entry in all.values_mut() {
            entry["ts"] = json!(null);
        }
        all
    };
    assert_eq!(strip(&state), strip(&sequential));
}

#[test]
fn every_malformed_input_is_refused_with_a_message() {
    let state = state();
    for (input, expected) in [
        ("", "the body is empty"),
        ("not json", "the body is not JSON"),
        ("[]", "the body must be a JSON object"),
        (
            r#"{"cat": "garfield"}"#,
            r#"key "cat": the entry must be an object"#,
        ),
        (
            r#"{"cat": {"ttl": 5}}"#,
            r#"key "cat": missing field "value""#,
        ),
        (
            r#"{"cat": {"value": 1, "ts": -1}}"#,
            r#"key "cat": "ts" must be a non-negative integer"#,
        ),
        (
            r#"{"cat": {"value": 1, "ttl": 2.5}}"#,
            r#"key "cat": "ttl" must be a non-negative integer"#,
        ),
        (
            r#"{"cat": {"value": 1, "tll": 5}}"#,
            r#"key "cat": unknown field "tll""#,
        ),
        (r#"{"": {"value": 1}}"#, r#"key "": keys must not be empty"#),
    ] {
        let error = state.set(&input).unwrap_err().to_string();
        assert!(error.starts_with(expected), "{input}: {error}");
    }
    assert!(state.is_empty());
}

#[test]
fn keys_may_hold_any_characters() {
    let state = state();
    set(
        &state,
        json!({"a/b": {"value": 1}, "users/42": {"value": 2}, "q\"uote\n": {"value": 3}}),
    );
    assert_eq!(value(&state, "a/b").unwrap(), 1);
    assert_eq!(value(&state, "q\"uote\n").unwrap(), 3);
    assert_eq!(root(&state).len(), 3);
}
