//! Property: any two states that receive the same writes, in any order and batching,
//! end with the same data and the same version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use c19_core::State;
use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};

/// One write as a peer sends it: few keys and timestamps, so that ties happen.
#[derive(Debug, Clone)]
struct Write {
    key: usize,
    ts: u64,
    /// `None`: a delete.
    value: Option<Value>,
    ttl: Option<u64>,
}

fn write() -> impl Strategy<Value = Write> {
    let value = prop_oneof![
        4 => (0..3i64).prop_map(|n| Some(json!(n))),
        1 => Just(Some(json!({"nested": [1, "two"]}))),
        1 => Just(Some(Value::Null)),
        2 => Just(None),
    ];
    // Timestamps near 0 with TTLs that end far in the future: nothing expires.
    let ttl = prop_oneof![
        Just(None),
        Just(Some(10_000_000_000_000)),
        Just(Some(20_000_000_000_000))
    ];
    (0..4usize, 0..4u64, value, ttl).prop_map(|(key, ts, value, ttl)| Write {
        key,
        ts,
        value,
        ttl,
    })
}

/// Applies `writes` in `order`, cut into batches of the given sizes (a batch is a JSON
/// object, so a batch ends early rather than hold a key twice).
fn apply(state: &dyn State, writes: &[Write], order: &[usize], sizes: &[usize]) {
    let mut sizes = sizes.iter().cycle();
    let mut batch = serde_json::Map::new();
    let mut limit = *sizes.next().unwrap_or(&1);
    for &index in order {
        let write = &writes[index];
        let key = format!("key-{}", write.key);
        if batch.len() >= limit || batch.contains_key(&key) {
            state
                .set(&Value::Object(std::mem::take(&mut batch)).to_string())
                .unwrap();
            limit = *sizes.next().unwrap_or(&1);
        }
        let entry = match &write.value {
            Some(value) => json!({"value": value, "ts": write.ts, "ttl": write.ttl}),
            None => json!({"value": null, "ts": write.ts, "deleted": true}),
        };
        batch.insert(key, entry);
    }
    if !batch.is_empty() {
        state.set(&Value::Object(batch).to_string()).unwrap();
    }
}

fn sorted_root(state: &dyn State) -> BTreeMap<String, Value> {
    root(state).into_iter().collect()
}

/// Writes, two orders of them, and two batchings.
type Scenario = (Vec<Write>, Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>);

fn scenario() -> impl Strategy<Value = Scenario> {
    prop::collection::vec(write(), 1..40).prop_flat_map(|writes| {
        let order: Vec<usize> = (0..writes.len()).collect();
        (
            Just(writes),
            Just(order.clone()).prop_shuffle(),
            Just(order).prop_shuffle(),
            prop::collection::vec(1..6usize, 1..10),
            prop::collection::vec(1..6usize, 1..10),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn same_writes_in_any_order_give_the_same_state(
        (writes, order_a, order_b, sizes_a, sizes_b) in scenario()
    ) {
        let (a, b) = (state(), state());
        apply(&a, &writes, &order_a, &sizes_a);
        apply(&b, &writes, &order_b, &sizes_b);
        prop_assert_eq!(sorted_root(&a), sorted_root(&b));
        prop_assert_eq!(a.version(), b.version());
        // Exchanging full states changes nothing: they already agree.
        prop_assert_eq!(b.set(&a.get_root()).unwrap().applied, 0);
        prop_assert_eq!(a.set(&b.get_root()).unwrap().applied, 0);
    }

    #[test]
    fn the_newest_write_of_each_key_wins(writes in prop::collection::vec(write(), 1..40)) {
        let state = state();
        let order: Vec<usize> = (0..writes.len()).collect();
        apply(&state, &writes, &order, &[1]);
        let root = sorted_root(&state);
        for key in 0..4 {
            let newest = writes.iter().filter(|write| write.key == key).map(|write| write.ts).max();
            let held = root.get(&format!("key-{key}"));
            prop_assert_eq!(newest, held.and_then(|entry| entry["ts"].as_u64()));
            if let Some(entry) = held {
                // A delete at the newest ts beats every value at that ts.
                let deleted_at_newest = writes
                    .iter()
                    .any(|write| write.key == key && Some(write.ts) == newest && write.value.is_none());
                prop_assert_eq!(entry["deleted"] == true, deleted_at_newest);
            }
        }
    }
}
