//! Helpers shared by this crate's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use c19_core::State;
use c19_state_default::DefaultState;
use serde_json::{Value, json};

/// Sets `batch` and asserts it was accepted; returns (applied, ignored).
pub fn set(state: &dyn State, batch: Value) -> (usize, usize) {
    let applied = state.set(&batch.to_string()).unwrap();
    (applied.applied, applied.ignored)
}

/// The entry `get` returns for `key`, parsed.
pub fn get(state: &dyn State, key: &str) -> Option<Value> {
    state
        .get(&key)
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
}

/// Just the `value` of `key`.
pub fn value(state: &dyn State, key: &str) -> Option<Value> {
    get(state, key).map(|entry| entry["value"].clone())
}

/// The whole state, parsed.
pub fn root(state: &dyn State) -> serde_json::Map<String, Value> {
    match serde_json::from_slice(&state.get_root()).unwrap() {
        Value::Object(map) => map,
        other => panic!("get_root returned {other}"),
    }
}

/// A state with the default settings.
pub fn state() -> DefaultState {
    DefaultState::default()
}

/// Now, in ms since the Unix epoch.
pub fn now() -> u64 {
    c19_state_default::now_ms()
}

/// A tombstone as a peer would send it.
pub fn tombstone(ts: u64) -> Value {
    json!({"value": null, "ts": ts, "ttl": 0, "deleted": true})
}
