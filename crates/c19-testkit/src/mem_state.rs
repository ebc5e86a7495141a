//! [`MemState`]: a small in-memory state in the `Default` format, for tests.
//!
//! It is deliberately simple (one `Mutex` around a `BTreeMap` of entries and a change
//! log), so a test of a connection or an agent layer does not depend on the Default
//! state, and so the [conformance suite](crate::conformance::state) has a second,
//! independent implementation to be checked against.
//!
//! - Batches are JSON objects of keys to entries in the format of [`c19_core::entry`]:
//!   `{"cat": {"value": "garfield", "ts": 5, "ttl": 20000}}`. `ts` defaults to the
//!   clock ([`c19_core::clock::now_ms`]); a missing `ttl` to the state's default
//!   ([`MemState::with_ttl`]), `"ttl": null` means for ever; `"deleted": true` is a
//!   tombstone.
//! - Merging is last writer wins by `ts`; on equal `ts` a tombstone wins, then the
//!   greater entry bytes (the compact JSON `{"value":...,"ts":...,"ttl":...}`).
//! - Every change takes the next point of the history; a merge that changes nothing
//!   takes none. Diffs, [`State::changes_since`] and subscriptions read the log.
//! - Values past their TTL are not returned; they stay held (and in the history) until
//!   overwritten, since nothing sweeps them.
//! - An exchange ([`State::sync_open`]) is one round trip of whole states: the session
//!   sends everything this state holds, the answering state merges it and answers with
//!   everything it holds. Cheap to write, not to run: fine for tests.
//!   [`MemState::without_exchanges`] turns exchanges off, to test a connection's
//!   fallback.

use std::{
    collections::{BTreeMap, hash_map::DefaultHasher},
    hash::{Hash, Hasher},
    sync::{Arc, Mutex, MutexGuard},
};

use bytes::Bytes;
use c19_core::{
    Applied, Change, Changes, Diff, LayerContext, Points, SafeState, State, StateConfig,
    StateError, StateValue, SyncSession, clock::now_ms,
};
use futures::future::{self, BoxFuture};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{broadcast, watch};

/// How many changes a subscriber may fall behind by before it gets `Lagged`.
const SUBSCRIBER_CAPACITY: usize = 4096;

/// One key's entry.
#[derive(Debug, Clone)]
struct Held {
    value: Value,
    ts: u64,
    ttl: Option<u64>,
    deleted: bool,
    /// The entry's bytes, as `get`, diffs and subscribers see it (and as ties compare).
    bytes: Bytes,
    /// The point of the history this entry took.
    point: u64,
}

impl Held {
    fn new(value: Value, ts: u64, ttl: Option<u64>, deleted: bool) -> Self {
        let (value, ttl) = if deleted {
            (Value::Null, Some(0))
        } else {
            (value, ttl)
        };
        let mut json = serde_json::json!({ "value": value, "ts": ts, "ttl": ttl });
        if deleted {
            json["deleted"] = Value::Bool(true);
        }
        let bytes = Bytes::from(json.to_string());
        Self {
            value,
            ts,
            ttl,
            deleted,
            bytes,
            point: 0,
        }
    }

    /// Whether this entry wins over `held` (the Default format's rule).
    fn beats(&self, held: &Held) -> bool {
        (self.ts, self.deleted, &self.bytes[..]) > (held.ts, held.deleted, &held.bytes[..])
    }

    fn expired(&self, now: u64) -> bool {
        !self.deleted
            && self
                .ttl
                .is_some_and(|ttl| self.ts.saturating_add(ttl) <= now)
    }

    fn live(&self, now: u64) -> bool {
        !self.deleted && !self.expired(now)
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<String, Held>,
    /// Point -> the key whose newest entry took it: one point per key, the newest.
    log: BTreeMap<u64, String>,
    head: u64,
}

/// The in-memory test state; see the [module docs](self).
#[derive(Debug)]
pub struct MemState {
    inner: Mutex<Inner>,
    default_ttl: Option<u64>,
    changes: broadcast::Sender<Change>,
    head: watch::Sender<u64>,
    exchanges: bool,
}

impl Default for MemState {
    fn default() -> Self {
        Self::with_ttl(None)
    }
}

impl MemState {
    /// A new empty state whose values live for ever unless they say otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new empty state whose values without a `ttl` live `ttl` ms (`None`: for ever).
    pub fn with_ttl(ttl: Option<u64>) -> Self {
        Self {
            inner: Mutex::default(),
            default_ttl: ttl,
            changes: broadcast::channel(SUBSCRIBER_CAPACITY).0,
            head: watch::channel(0).0,
            exchanges: true,
        }
    }

    /// The same state without exchanges: `sync_open` and `sync_answer` answer
    /// [`StateError::Unsupported`], as a state that offers none does (a connection
    /// then pulls whole states, the path 0.1 took).
    pub fn without_exchanges(mut self) -> Self {
        self.exchanges = false;
        self
    }

    /// A new empty state, both as itself (for [`MemState::put`], [`MemState::value`],
    /// …) and as the [`SafeState`] the layers take.
    pub fn shared() -> (Arc<MemState>, SafeState) {
        let state = Arc::new(MemState::default());
        (state.clone(), state)
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock already failed; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets `key` to `value` at `ts` (for ever), as a merge; panics if refused.
    pub fn put(&self, key: &str, value: Value, ts: u64) {
        let body = serde_json::json!({ key: { "value": value, "ts": ts, "ttl": null } });
        self.set(&body.to_string())
            .unwrap_or_else(|error| panic!("MemState::put({key:?}): {error}"));
    }

    /// The value of `key`, if it is live (not deleted, not expired).
    pub fn value(&self, key: &str) -> Option<Value> {
        let now = now_ms();
        self.inner()
            .entries
            .get(key)
            .filter(|held| held.live(now))
            .map(|held| held.value.clone())
    }

    /// The `ts` of the entry held for `key` (a tombstone's included).
    pub fn ts(&self, key: &str) -> Option<u64> {
        self.inner().entries.get(key).map(|held| held.ts)
    }

    /// Whether `key` holds a tombstone.
    pub fn is_deleted(&self, key: &str) -> bool {
        self.inner()
            .entries
            .get(key)
            .is_some_and(|held| held.deleted)
    }

    /// How many keys are held (tombstones and expired values included).
    pub fn len(&self) -> usize {
        self.inner().entries.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys held, in order (tombstones and expired values included).
    pub fn keys(&self) -> Vec<String> {
        self.inner().entries.keys().cloned().collect()
    }

    /// Parses and validates a whole batch.
    fn parse(&self, bytes: &[u8]) -> Result<Vec<(String, Held)>, StateError> {
        let map: Map<String, Value> = serde_json::from_slice(bytes)
            .map_err(|error| invalid(format!("not a JSON object of entries: {error}")))?;
        let now = now_ms();
        map.into_iter()
            .map(|(key, entry)| {
                let held = self.parse_entry(&key, entry, now)?;
                Ok((key, held))
            })
            .collect()
    }

    fn parse_entry(&self, key: &str, entry: Value, now: u64) -> Result<Held, StateError> {
        let Value::Object(mut fields) = entry else {
            return Err(invalid(format!("key {key:?}: not an object")));
        };
        let value = fields
            .remove("value")
            .ok_or_else(|| invalid(format!("key {key:?}: missing field \"value\"")))?;
        let number = |name: &str, field: Option<&Value>| match field {
            None | Some(Value::Null) => Ok(None),
            Some(field) => field
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(format!("key {key:?}: `{name}` is not a number of ms"))),
        };
        let ts = number("ts", fields.get("ts"))?.unwrap_or(now);
        let ttl = match fields.get("ttl") {
            None => self.default_ttl,
            field => number("ttl", field)?,
        };
        let deleted = match fields.get("deleted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => return Err(invalid(format!("key {key:?}: `deleted` is not a bool"))),
        };
        Ok(Held::new(value, ts, ttl, deleted))
    }

    /// Applies validated entries: the winners take consecutive points.
    fn apply(&self, incoming: Vec<(String, Held)>) -> Applied {
        let mut inner = self.inner();
        let before = inner.head;
        let (mut applied, mut ignored) = (0, 0);
        let mut changes = Vec::new();
        for (key, mut held) in incoming {
            if inner
                .entries
                .get(&key)
                .is_some_and(|current| !held.beats(current))
            {
                ignored += 1;
                continue;
            }
            inner.head += 1;
            held.point = inner.head;
            let point = held.point;
            changes.push(Change {
                seq: point,
                key: Bytes::from(key.clone()),
                entry: held.bytes.clone(),
            });
            if let Some(old) = inner.entries.insert(key.clone(), held) {
                inner.log.remove(&old.point);
            }
            inner.log.insert(point, key);
            applied += 1;
        }
        let head = inner.head;
        drop(inner);
        for change in changes {
            // No subscriber: nobody to tell.
            let _ = self.changes.send(change);
        }
        if head != before {
            self.head.send_replace(head);
        }
        Applied::new(applied, ignored).with_points(Points::after(before, head - before))
    }

    /// The entries after `since`, in history order, up to about `max_bytes`.
    fn entries_after(&self, since: u64, max_bytes: usize) -> Diff {
        let inner = self.inner();
        let mut body = String::from("{");
        let mut count = 0;
        let mut next = since;
        let mut complete = true;
        for (&point, key) in inner.log.range(since.saturating_add(1)..) {
            let Some(held) = inner.entries.get(key) else {
                continue;
            };
            let part = format!("{}:{}", Value::from(key.as_str()), as_text(&held.bytes));
            if count > 0 && body.len() + part.len() + 2 > max_bytes {
                complete = false;
                break;
            }
            if count > 0 {
                body.push(',');
            }
            body.push_str(&part);
            count += 1;
            next = point;
        }
        body.push('}');
        Diff {
            changes: Bytes::from(body),
            count,
            next: if complete { inner.head } else { next },
            complete,
        }
    }
}

fn invalid(message: impl Into<String>) -> StateError {
    StateError::Invalid(message.into())
}

/// The bytes of an entry, which this state always writes as UTF-8 JSON.
fn as_text(bytes: &Bytes) -> &str {
    std::str::from_utf8(bytes).unwrap_or("null")
}

impl State for MemState {
    fn version(&self) -> String {
        let inner = self.inner();
        if inner.entries.is_empty() {
            return String::new();
        }
        let mut hasher = DefaultHasher::new();
        for (key, held) in &inner.entries {
            (key, &held.bytes[..]).hash(&mut hasher);
        }
        format!("{:016x}-{}", hasher.finish(), inner.entries.len())
    }

    fn set(&self, value: &dyn StateValue) -> Result<Applied, StateError> {
        let incoming = self.parse(value.as_bytes())?;
        Ok(self.apply(incoming))
    }

    fn get(&self, key: &dyn StateValue) -> Option<Bytes> {
        let key = std::str::from_utf8(key.as_bytes()).ok()?;
        let now = now_ms();
        self.inner()
            .entries
            .get(key)
            .filter(|held| held.live(now))
            .map(|held| held.bytes.clone())
    }

    fn delete(&self, key: &dyn StateValue) -> Result<bool, StateError> {
        let key = std::str::from_utf8(key.as_bytes())
            .map_err(|_| invalid("the key is not UTF-8"))?
            .to_owned();
        let now = now_ms();
        let ts = match self.inner().entries.get(&key) {
            Some(held) if held.live(now) => held.ts.max(now),
            _ => return Ok(false),
        };
        // On equal `ts` the tombstone wins, so it wins over the value it deletes.
        let tombstone = Held::new(Value::Null, ts, None, true);
        Ok(self.apply(vec![(key, tombstone)]).applied > 0)
    }

    fn diff(&self, since: u64, max_bytes: usize) -> Result<Diff, StateError> {
        Ok(self.entries_after(since, max_bytes))
    }

    fn head(&self) -> u64 {
        self.inner().head
    }

    fn watch_head(&self) -> Option<watch::Receiver<u64>> {
        Some(self.head.subscribe())
    }

    fn counts(&self) -> Option<(usize, usize)> {
        let inner = self.inner();
        let tombstones = inner.entries.values().filter(|held| held.deleted).count();
        Some((inner.entries.len() - tombstones, tombstones))
    }

    fn get_root(&self) -> Bytes {
        self.entries_after(0, usize::MAX).changes
    }

    fn list(&self, prefix: &dyn StateValue, limit: Option<usize>) -> Result<Bytes, StateError> {
        let prefix = std::str::from_utf8(prefix.as_bytes())
            .map_err(|_| invalid("the prefix is not UTF-8"))?;
        let now = now_ms();
        let inner = self.inner();
        let parts: Vec<String> = inner
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(_, held)| held.live(now))
            .take(limit.unwrap_or(usize::MAX))
            .map(|(key, held)| format!("{}:{}", Value::from(key.as_str()), as_text(&held.bytes)))
            .collect();
        Ok(Bytes::from(format!("{{{}}}", parts.join(","))))
    }

    fn subscribe(&self) -> Result<Changes, StateError> {
        Ok(self.changes.subscribe())
    }

    fn changes_since(&self, since: u64, max: usize) -> Result<Vec<Change>, StateError> {
        let inner = self.inner();
        Ok(inner
            .log
            .range(since.saturating_add(1)..)
            .filter_map(|(&point, key)| {
                let held = inner.entries.get(key)?;
                Some(Change {
                    seq: point,
                    key: Bytes::from(key.clone()),
                    entry: held.bytes.clone(),
                })
            })
            .take(max)
            .collect())
    }

    fn sync_open(self: Arc<Self>, _max_bytes: usize) -> Result<Box<dyn SyncSession>, StateError> {
        if !self.exchanges {
            return Err(StateError::Unsupported("anti-entropy exchanges"));
        }
        Ok(Box::new(FullExchange {
            state: self,
            sent: false,
            applied: Applied::default(),
            written: None,
        }))
    }

    fn sync_answer(&self, request: &[u8], _max_bytes: usize) -> Result<Bytes, StateError> {
        if !self.exchanges {
            return Err(StateError::Unsupported("anti-entropy exchanges"));
        }
        self.set(&request)?;
        Ok(self.get_root())
    }
}

/// [`MemState`]'s exchange: one round trip of whole states.
struct FullExchange {
    state: Arc<MemState>,
    sent: bool,
    applied: Applied,
    written: Option<Points>,
}

impl SyncSession for FullExchange {
    fn step(&mut self, answer: Option<&[u8]>) -> Result<Option<Bytes>, StateError> {
        self.written = None;
        if !self.sent {
            self.sent = true;
            return Ok(Some(self.state.get_root()));
        }
        let answer = answer.unwrap_or_default();
        if !answer.is_empty() {
            let applied = self.state.set(&answer)?;
            self.applied = Applied::new(
                self.applied.applied + applied.applied,
                self.applied.ignored + applied.ignored,
            );
            self.written = applied.points;
        }
        Ok(None)
    }

    fn applied(&self) -> Applied {
        self.applied
    }

    fn written(&self) -> Option<Points> {
        self.written
    }
}

/// The configuration of a [`MemState`], selected in YAML by `kind: Mem`, so that a
/// test can run any binary that links this crate on an in-memory state:
///
/// ```yaml
/// state:
///   kind: Mem
///   ttl: 60000    # optional: ms a value without its own `ttl` lives (default: for ever)
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemStateConfig {
    /// Milliseconds a value without its own `ttl` lives; `None`: for ever.
    #[serde(default)]
    pub ttl: Option<u64>,
}

#[typetag::serde(name = "Mem")]
impl StateConfig for MemStateConfig {
    fn build<'a>(&'a self, cx: &'a LayerContext) -> BoxFuture<'a, Result<SafeState, StateError>> {
        cx.readiness().ready();
        let state: SafeState = Arc::new(MemState::with_ttl(self.ttl));
        Box::pin(future::ready(Ok(state)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "ties go to the larger entry"
        );
        assert_eq!(state.head(), 3);
        let page = state.diff(0, 1).unwrap();
        assert_eq!((page.count, page.complete), (1, false));
        let rest = state.diff(page.next, 1 << 20).unwrap();
        assert_eq!((rest.count, rest.complete, rest.next), (1, true, 3));
        assert!(state.set(&"[1]").is_err());
        assert_eq!(state.head(), 3);
    }

    #[test]
    fn entries_keep_the_default_wire_form() {
        let state = MemState::new();
        state
            .set(&r#"{"cat": {"value": {"name": "tom"}, "ts": 5, "ttl": null}}"#)
            .unwrap();
        assert_eq!(
            state.get(&"cat").unwrap(),
            r#"{"value":{"name":"tom"},"ts":5,"ttl":null}"#
        );
        assert!(state.delete(&"cat").unwrap());
        let diff = state.diff(0, 1 << 20).unwrap();
        assert_eq!(
            diff.changes,
            r#"{"cat":{"value":null,"ts":5,"ttl":0,"deleted":true}}"#
                .replace("5", &state.ts("cat").unwrap().to_string())
        );
        assert!(state.is_deleted("cat"));
        assert_eq!(state.counts(), Some((0, 1)));
    }

    #[test]
    fn the_config_is_selected_by_kind_mem() {
        let config: Box<dyn StateConfig> =
            serde_json::from_str(r#"{"kind": "Mem", "ttl": 5}"#).unwrap();
        assert!(format!("{config:?}").contains("ttl: Some(5)"));
        assert!(
            serde_json::from_str::<Box<dyn StateConfig>>(r#"{"kind": "Mem", "tll": 5}"#).is_err()
        );
    }
}
