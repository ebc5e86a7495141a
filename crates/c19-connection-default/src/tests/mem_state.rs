//! A small in-memory state for the tests: JSON entries `{"value", "ts"}` merged
//! last-writer-wins (ties to the larger value), with a change log for `diff`.

use std::{
    collections::{BTreeMap, hash_map::DefaultHasher},
    hash::{Hash, Hasher},
    sync::{Arc, Mutex, MutexGuard},
};

use bytes::Bytes;
use c19_core::{Applied, Diff, SafeState, State, StateError, StateValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    value: Value,
    ts: u64,
    /// The head when this entry last changed.
    point: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<String, Entry>,
    head: u64,
}

/// The test state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct MemState {
    #[serde(skip)]
    inner: Mutex<Inner>,
}

impl MemState {
    /// A new empty state, shared.
    pub fn shared() -> (Arc<MemState>, SafeState) {
        let state = Arc::new(MemState::default());
        (state.clone(), state)
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Sets `key` to `value` at `ts`, as a local write.
    pub fn put(&self, key: &str, value: Value, ts: u64) {
        let body = serde_json::json!({ key: { "value": value, "ts": ts } });
        self.set(&body.to_string()).unwrap();
    }

    /// The value of `key`.
    pub fn value(&self, key: &str) -> Option<Value> {
        self.inner()
            .entries
            .get(key)
            .map(|entry| entry.value.clone())
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.inner().entries.len()
    }
}

fn invalid(message: impl Into<String>) -> StateError {
    StateError::Invalid(message.into())
}

/// The order that breaks timestamp ties.
fn rank(value: &Value) -> String {
    value.to_string()
}

fn to_json(key: &str, entry: &Entry) -> String {
    format!(
        "{}:{}",
        Value::from(key),
        serde_json::json!({ "value": entry.value, "ts": entry.ts })
    )
}

impl State for MemState {
    fn version(&self) -> String {
        let inner = self.inner();
        if inner.entries.is_empty() {
            return String::new();
        }
        let mut hasher = DefaultHasher::new();
        for (key, entry) in &inner.entries {
            (key, entry.ts, entry.value.to_string()).hash(&mut hasher);
        }
        format!("{:016x}", hasher.finish())
    }

    fn set(&self, value: &dyn StateValue) -> Result<Applied, StateError> {
        let map: Map<String, Value> = serde_json::from_slice(value.as_bytes())
            .map_err(|error| invalid(format!("not a JSON object of entries: {error}")))?;
        let mut incoming = Vec::new();
        for (key, entry) in map {
            let value = entry
                .get("value")
                .ok_or_else(|| invalid(format!("`{key}`: no `value`")))?;
            let ts = entry
                .get("ts")
                .and_then(Value::as_u64)
                .ok_or_else(|| invalid(format!("`{key}`: no numeric `ts`")))?;
            incoming.push((key, value.clone(), ts));
        }
        let mut inner = self.inner();
        let mut applied = Applied::default();
        let before = inner.head;
        for (key, value, ts) in incoming {
            let wins = match inner.entries.get(&key) {
                None => true,
                Some(held) => ts > held.ts || (ts == held.ts && rank(&value) > rank(&held.value)),
            };
            if wins {
                inner.head += 1;
                let point = inner.head;
                inner.entries.insert(key, Entry { value, ts, point });
                applied.applied += 1;
            } else {
                applied.ignored += 1;
            }
        }
        // Under one lock: the points this batch took are its own.
        let taken = u64::try_from(applied.applied).unwrap();
        Ok(applied.with_points(c19_core::Points::after(before, taken)))
    }

    fn get(&self, key: &dyn StateValue) -> Option<Bytes> {
        let key = std::str::from_utf8(key.as_bytes()).ok()?;
        let inner = self.inner();
        let entry = inner.entries.get(key)?;
        Some(Bytes::from(
            serde_json::json!({ "value": entry.value, "ts": entry.ts }).to_string(),
        ))
    }

    fn delete(&self, _key: &dyn StateValue) -> Result<bool, StateError> {
        Err(StateError::Unsupported("delete"))
    }

    fn diff(&self, since: u64, max_bytes: usize) -> Result<Diff, StateError> {
        let inner = self.inner();
        let mut changed: Vec<(&String, &Entry)> = inner
            .entries
            .iter()
            .filter(|(_, entry)| entry.point > since)
            .collect();
        changed.sort_by_key(|(_, entry)| entry.point);
        let mut parts = Vec::new();
        let mut size = 2;
        let mut next = since;
        for (key, entry) in &changed {
            let part = to_json(key, entry);
            if !parts.is_empty() && size + part.len() + 1 > max_bytes {
                break;
            }
            size += part.len() + 1;
            parts.push(part);
            next = entry.point;
        }
        let complete = parts.len() == changed.len();
        Ok(Diff {
            changes: Bytes::from(format!("{{{}}}", parts.join(","))),
            count: parts.len(),
            next: if complete { inner.head } else { next },
            complete,
        })
    }

    fn head(&self) -> u64 {
        self.inner().head
    }

    fn get_root(&self) -> Bytes {
        let inner = self.inner();
        let parts: Vec<String> = inner
            .entries
            .iter()
            .map(|(key, entry)| to_json(key, entry))
            .collect();
        Bytes::from(format!("{{{}}}", parts.join(",")))
    }
}

#[test]
fn the_test_state_merges_and_pages_as_the_real_one_must() {
    let (state, _) = MemState::shared();
    state.put("a", Value::from(1), 10);
    state.put("a", Value::from(0), 9);
    state.put("b", Value::from("x"), 5);
    state.put("b", Value::from("y"), 5);
    assert_eq!(state.value("a"), Some(Value::from(1)));
    assert_eq!(
        state.value("b"),
        Some(Value::from("y")),
        "ties go to the larger value"
    );
    assert_eq!(state.head(), 3);
    let page = state.diff(0, 1).unwrap();
    assert_eq!((page.count, page.complete), (1, false));
    let rest = state.diff(page.next, 1 << 20).unwrap();
    assert_eq!((rest.count, rest.complete, rest.next), (1, true, 3));
    assert!(state.set(&"[1]").is_err());
    assert_eq!(state.head(), 3);
}
