//! The store: every key's record, the change log and the version, as one snapshot.
//!
//! # Why a persistent ordered map behind an `ArcSwap`
//!
//! Readers (every `GET` of the agent) load the current snapshot with
//! [`ArcSwap::load`], which takes no lock and never waits for a writer. Writers are
//! serialized by a mutex; a writer validates its batch first, applies it to a clone of
//! the snapshot and swaps the result in. Cloning an [`imbl`] map is O(1) (its nodes are
//! shared) and each insert copies only the O(log n) nodes on its path, so a 100k-key
//! merge builds its new snapshot beside the old one while `get`s keep reading the old
//! one, and readers see a batch all at once or not at all. A concurrent hash map
//! (dashmap and the like) would also keep reads fast, but a batch would become visible
//! key by key, and the change log and version would need their own locking to stay
//! consistent with the map.
//!
//! The keys live in a B-tree ([`OrdSet`]) ordered by a hash of the key, rather than in
//! imbl's hash trie: at a million keys it costs about 40 bytes per key against about
//! 110, and lookups compare hashes stored in the nodes rather than keys behind pointers.
//!
//! # Version and change log
//!
//! The version is the wrapping sum of a stable 128-bit hash of every held record,
//! tombstones included, updated by one addition or subtraction per change. Every
//! change gets the next local sequence number; `by_seq` maps it to the changed key's
//! hash, so a diff walks only the changes after a point.

use std::{
    cmp::Ordering,
    ops::Bound,
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use c19_core::{Applied, Diff, Points};
use imbl::{OrdMap, OrdSet};

use crate::{
    buckets::BucketHashes,
    incoming::Incoming,
    observe::Observers,
    pace::Pacer,
    persist::Persister,
    record::Record,
    slot::{HashEdge, Probe, Slot, key_hash},
    sync_meta::SyncMeta,
};

mod reading;
mod repair;

pub(crate) use repair::{by_key, dead_on_arrival, fill};

/// One consistent view of the data.
#[derive(Clone, Default)]
struct Snapshot {
    /// Every held record (values, expired values not swept yet, tombstones), by key.
    keys: OrdSet<Slot>,
    /// The sequence number of the change that stored each record, to the hash of its
    /// key (a hash rather than the record keeps this index small).
    by_seq: OrdMap<u64, u64>,
    /// The sum of the records' version hashes.
    version: u128,
    /// The newest sequence number handed out.
    head: u64,
    /// How many of the held records are tombstones.
    tombstones: usize,
    /// The records' version hashes summed by bucket and group of keys (exchanges).
    buckets: BucketHashes,
}

impl Snapshot {
    fn get(&self, key: &[u8]) -> Option<&Record> {
        self.keys.get(&Probe::new(key)).map(|slot| &slot.record)
    }

    /// The record stored by change `seq`, whose key hashes to `hash`.
    fn by_change(&self, seq: u64, hash: u64) -> Option<&Record> {
        let (first, last) = HashEdge::range(hash);
        self.keys
            .range::<_, HashEdge>((Bound::Included(&first), Bound::Included(&last)))
            .map(|slot| &slot.record)
            .find(|record| record.seq() == seq)
    }

    /// How many values (expired ones until swept) and tombstones are held.
    fn counts(&self) -> (usize, usize) {
        (self.keys.len() - self.tombstones, self.tombstones)
    }

    /// Stores `record` (already stamped with `head + 1`) in place of `held`.
    fn put(&mut self, held: Option<&Record>, record: Record) {
        let old = held.map(Record::version_hash);
        if let Some(held) = held {
            self.by_seq.remove(&held.seq());
            self.tombstones -= usize::from(held.deleted());
        }
        let new = record.version_hash();
        self.version = self
            .version
            .wrapping_sub(old.unwrap_or_default())
            .wrapping_add(new);
        self.tombstones += usize::from(record.deleted());
        self.head = record.seq();
        let slot = Slot::new(record);
        self.buckets.replace(slot.hash(), old, Some(new));
        self.by_seq.insert(slot.record.seq(), slot.hash());
        // Replaces the old slot, key included.
        self.keys.insert(slot);
    }

    /// Drops `record` if it is still the one held for its key.
    fn drop_record(&mut self, record: &Record) -> bool {
        match self.get(record.key()) {
            Some(held) if held.same(record) => {
                let hash = record.version_hash();
                self.tombstones -= usize::from(record.deleted());
                self.by_seq.remove(&record.seq());
                self.keys.remove(&Probe::new(record.key()));
                self.version = self.version.wrapping_sub(hash);
                self.buckets
                    .replace(key_hash(record.key()), Some(hash), None);
                true
            }
            _ => false,
        }
    }
}

/// The records of one state, readable without locks.
pub(crate) struct Store {
    current: ArcSwap<Snapshot>,
    /// Serializes writers (readers never take it); holds replaced snapshots that a
    /// reader still held when they were replaced.
    writer: Mutex<Retired>,
    /// Subscribers to changes, and metrics.
    observers: Observers,
    /// How current the data is, for exchanges with peers.
    sync: SyncMeta,
    /// Where stored and dropped records go to be made durable (`persistence`).
    persist: OnceLock<Arc<Persister>>,
    /// Called once in the middle of each batch, with the writer lock held (tests only).
    #[cfg(test)]
    pub(crate) mid_batch: Mutex<Option<Box<dyn FnMut() + Send>>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new(Observers::default())
    }
}

impl Store {
    /// An empty store reporting to `observers`.
    pub fn new(observers: Observers) -> Self {
        Self {
            current: ArcSwap::from_pointee(Snapshot::default()),
            writer: Mutex::new(Retired::default()),
            observers,
            sync: SyncMeta::default(),
            persist: OnceLock::new(),
            #[cfg(test)]
            mid_batch: Mutex::new(None),
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snapshot = self.current.load();
        f.debug_struct("Store")
            .field("records", &snapshot.keys.len())
            .field("head", &snapshot.head)
            .finish()
    }
}

impl Store {
    /// From now on, every record stored or dropped is queued on `persister`.
    pub fn persist_to(&self, persister: Arc<Persister>) {
        let _ = self.persist.set(persister);
    }

    /// The persister, when the state persists.
    pub fn persister(&self) -> Option<&Arc<Persister>> {
        self.persist.get()
    }

    /// Merges a validated batch at time `now` (ms), as one new snapshot.
    pub fn apply(&self, batch: &[Incoming], now: u64) -> Applied {
        self.apply_all(&[batch], now).pop().unwrap_or_default()
    }

    /// Merges validated batches at time `now` (ms), one after another, as one new
    /// snapshot; returns what each batch did, in order.
    ///
    /// Entries that carry a `ts` (from peers, mostly) are built and compared with what
    /// is held before the writer lock is taken: a peer's full state mostly repeats what
    /// this store holds, and sorting that out must not hold up local writes. Under the
    /// lock each survivor is compared again (it may have lost since) and stored.
    pub fn apply_all(&self, batches: &[&[Incoming]], now: u64) -> Vec<Applied> {
        let mut results = vec![Applied::default(); batches.len()];
        let mut prepared = Vec::with_capacity(batches.iter().map(|batch| batch.len()).sum());
        {
            let snapshot = self.current.load_full();
            let mut pacer = Pacer::default();
            for (index, batch) in batches.iter().enumerate() {
                for incoming in *batch {
                    pacer.tick();
                    let Some(ts) = incoming.ts else {
                        prepared.push((index, Prepared::Local(incoming)));
                        continue;
                    };
                    let held = snapshot.get(incoming.key.as_bytes());
                    if held.is_some_and(|held| !may_win(incoming, ts, held)) {
                        results[index].ignored += 1;
                        continue;
                    }
                    let record = Record::new(incoming, ts, 0);
                    if held.is_some_and(|held| record.merge_order(held) != Ordering::Greater) {
                        results[index].ignored += 1;
                        continue;
                    }
                    prepared.push((index, Prepared::Built(record)));
                }
            }
        }
        if !prepared.is_empty() {
            let mut retired = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let released = self.apply_locked(prepared, now, &mut retired, &mut results);
            drop(retired);
            drop(released);
        }
        self.observers
            .stale(results.iter().map(|applied| applied.ignored).sum());
        results
    }

    /// Writes the tombstone `delete` at time `now`; returns whether it hid a value.
    pub fn delete(&self, delete: &Incoming, now: u64) -> bool {
        let mut retired = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let was_live = self
            .current
            .load()
            .get(delete.key.as_bytes())
            .is_some_and(|record| record.is_live(now));
        let mut applied = [Applied::default()];
        let released = self.apply_locked(
            vec![(0, Prepared::Local(delete))],
            now,
            &mut retired,
            &mut applied,
        );
        drop(retired);
        drop(released);
        was_live
    }

    /// Stores what wins of `prepared` (each entry with the index of its batch in
    /// `results`), the writer lock being held; the snapshots it releases are to be
    /// dropped once the lock is released.
    ///
    /// A write without `ts` gets `max(now, held.ts + 1)`, so it supersedes what this
    /// store held even when the local clock is behind the writer of that value.
    fn apply_locked(
        &self,
        prepared: Vec<(usize, Prepared<'_>)>,
        now: u64,
        retired: &mut Retired,
        results: &mut [Applied],
    ) -> Released {
        let mut next = Snapshot::clone(&self.current.load());
        let mut stored = self.observers.collector();
        let persist = self.persist.get();
        let mut persisted = Vec::new();
        let mut applied = 0;
        let count = prepared.len();
        let mut pacer = Pacer::default();
        for (position, (index, prepared)) in prepared.into_iter().enumerate() {
            self.checkpoint(position, count);
            pacer.tick();
            let seq = next.head + 1;
            let (record, held) = match prepared {
                Prepared::Local(incoming) => {
                    let held = next.get(incoming.key.as_bytes()).cloned();
                    let ts = held
                        .as_ref()
                        .map_or(now, |held| now.max(held.ts().saturating_add(1)));
                    (Record::new(incoming, ts, seq), held)
                }
                Prepared::Built(mut record) => {
                    let held = next.get(record.key()).cloned();
                    if held
                        .as_ref()
                        .is_some_and(|held| record.merge_order(held) != Ordering::Greater)
                    {
                        results[index].ignored += 1;
                        continue;
                    }
                    record.stamp(seq);
                    (record, held)
                }
            };
            if let Some(stored) = &mut stored {
                stored.push(record.clone());
            }
            if persist.is_some() {
                persisted.push(record.clone());
            }
            next.put(held.as_ref(), record);
            let result = &mut results[index];
            result.applied += 1;
            // A batch's entries are stored one after another: its points are consecutive.
            result.points = Some(match result.points {
                Some(points) => Points {
                    first: points.first,
                    last: seq,
                },
                None => Points {
                    first: seq,
                    last: seq,
                },
            });
            applied += 1;
        }
        if applied == 0 {
            return Released::default();
        }
        let counts = next.counts();
        let head = next.head;
        let released = retired.replace(&self.current, next);
        // Still under the writer lock: operations queue in the order they were made.
        if let Some(persist) = persist {
            persist.enqueue(&persisted, []);
        }
        // Still under the writer lock: subscribers get changes in order.
        self.observers.stored(applied, stored, counts);
        self.observers.moved(head);
        released
    }

    /// The wire JSON of `key`'s value, if it holds one that is visible at `now`.
    pub fn get(&self, key: &[u8], now: u64) -> Option<Bytes> {
        let snapshot = self.current.load();
        let record = snapshot.get(key)?;
        record.is_live(now).then(|| record.entry_bytes())
    }

    /// The record held for `key`, whatever it is (tests and deletes).
    pub fn held(&self, key: &[u8]) -> Option<Record> {
        self.current.load().get(key).cloned()
    }

    /// The version: the hex sum of the records' hashes.
    pub fn version(&self) -> String {
        format!("{:032x}", self.current.load().version)
    }

    /// The newest sequence number.
    pub fn head(&self) -> u64 {
        self.current.load().head
    }

    /// A receiver of the head's moves.
    pub fn watch_head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.observers.watch_head()
    }

    /// How many values (unswept expired ones included) and tombstones are held.
    pub fn counts(&self) -> (usize, usize) {
        self.current.load().counts()
    }

    /// How many records are held, tombstones and unswept expired values included.
    pub fn len(&self) -> usize {
        self.current.load().keys.len()
    }

    /// Every visible value and every tombstone, as a batch `set` accepts.
    pub fn root(&self, now: u64) -> Bytes {
        // A long read: hold the snapshot itself rather than a short-term guard.
        let snapshot = self.current.load_full();
        let mut out = Batch::with_capacity(snapshot.keys.len() * 64);
        for slot in snapshot.keys.iter() {
            if !slot.record.is_expired(now) {
                out.push(&slot.record);
            }
        }
        out.finish()
    }

    /// The changes after `since`, oldest first, up to about `max_bytes` (at least one),
    /// leaving out those with a `ts` at or below `held_back` (see
    /// [`Store::held_back`]). Costs O(changes returned), whatever the size of the state.
    pub fn diff(&self, since: u64, max_bytes: usize, now: u64, held_back: Option<u64>) -> Diff {
        let snapshot = self.current.load_full();
        let mut out = Batch::with_capacity(max_bytes.min(1 << 20));
        let mut next = since;
        let mut complete = true;
        for (&seq, &hash) in snapshot
            .by_seq
            .range((Bound::Excluded(since), Bound::Unbounded))
        {
            let Some(record) = snapshot.by_change(seq, hash) else {
                // Cannot happen: every indexed change is held.
                next = seq;
                continue;
            };
            // Every agent expires values on its own: they are not pushed.
            let held = held_back.is_some_and(|floor| record.ts() <= floor);
            if !record.is_expired(now) && !held {
                if out.count > 0 && out.len_with(record) > max_bytes {
                    complete = false;
                    break;
                }
                out.push(record);
            }
            next = seq;
        }
        if complete {
            next = snapshot.head;
        }
        let count = out.count;
        Diff {
            changes: out.finish(),
            count,
            next,
            complete,
        }
    }

    /// Drops the values expired at `now` and the tombstones older than `tombstone_ttl`.
    /// Returns how many records were dropped. Not a change: nothing is pushed, but
    /// subscribers are told of each expired value (`"expired":true`).
    pub fn purge(&self, now: u64, tombstone_ttl: u64) -> usize {
        // Find candidates without the writer lock, so writes go on during the scan.
        let doomed: Vec<Record> = self
            .current
            .load_full()
            .keys
            .iter()
            .filter(|slot| slot.record.is_purgeable(now, tombstone_ttl))
            .map(|slot| slot.record.clone())
            .collect();
        if doomed.is_empty() {
            return 0;
        }
        if doomed.iter().any(Record::deleted) {
            self.sync.swept_tombstones(now, tombstone_ttl);
        }
        self.drop_records(&doomed, Some(now))
    }

    /// Runs the test hook in the middle of a batch; nothing outside tests.
    #[inline]
    fn checkpoint(&self, index: usize, len: usize) {
        #[cfg(test)]
        if index == len / 2 {
            let mut hook = self
                .mid_batch
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(hook) = hook.as_mut() {
                hook();
            }
        }
        #[cfg(not(test))]
        let _ = (index, len);
    }
}

/// Snapshots replaced while a reader still held them.
///
/// The last holder of a replaced snapshot frees the nodes only it had, which after a
/// large merge takes a while. Readers must not pay for that: a writer frees what it
/// replaces when no reader holds it, and otherwise keeps it here until a later write
/// finds it released (reads take microseconds, so that is the next write).
#[derive(Default)]
struct Retired(Vec<Arc<Snapshot>>);

/// Replaced snapshots no reader holds any more, to be dropped by the writer that
/// released them once it no longer holds the writer lock (freeing a snapshot's copied
/// nodes is a good part of a small write, and other writers need not wait for it).
#[derive(Default)]
#[must_use = "drop it after releasing the writer lock"]
struct Released {
    _snapshots: Vec<Arc<Snapshot>>,
}

impl Retired {
    /// Makes `next` the current snapshot of `current`; returns the replaced snapshots
    /// that no reader holds.
    fn replace(&mut self, current: &ArcSwap<Snapshot>, next: Snapshot) -> Released {
        let old = current.swap(Arc::new(next));
        self.0.push(old);
        // Only this writer holds those left with one reference, and no reader can
        // load them again: freeing them cannot land on a reader.
        let (held, released) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|snapshot| Arc::strong_count(snapshot) > 1);
        self.0 = held;
        Released {
            _snapshots: released,
        }
    }
}

/// A write of a batch, ready to be stored.
enum Prepared<'a> {
    /// A write without `ts`: its timestamp depends on what is held when it is stored.
    Local(&'a Incoming),
    /// A write with its `ts`, built (not stamped yet) and found newer than what was held.
    Built(Record),
}

/// Whether `incoming` at `ts` may beat `held`, deciding on timestamps alone when it
/// can (merges of a whole peer state mostly lose, and then build no bytes).
fn may_win(incoming: &Incoming, ts: u64, held: &Record) -> bool {
    match ts.cmp(&held.ts()) {
        Ordering::Greater => true,
        Ordering::Less => false,
        // Equal: a tombstone beats a value; otherwise the bytes decide (the caller
        // builds the record and compares).
        Ordering::Equal => !(held.deleted() && incoming.value.is_some()),
    }
}

/// The length of `text` written as a JSON string by serde_json, quotes included.
fn json_string_len(text: &[u8]) -> usize {
    2 + text
        .iter()
        .map(|&byte| match byte {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// A JSON object of entries being written.
struct Batch {
    buf: Vec<u8>,
    count: usize,
}

impl Batch {
    fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(2));
        buf.push(b'{');
        Self { buf, count: 0 }
    }

    /// The size of the finished batch if `record` were pushed: what the size limits of
    /// pushes and exchange messages are held to.
    fn len_with(&self, record: &Record) -> usize {
        // The separator, the quoted key, the colon, the entry and the closing brace.
        let separator = usize::from(self.count > 0);
        self.buf.len() + separator + json_string_len(record.key()) + 1 + record.entry().len() + 1
    }

    fn push(&mut self, record: &Record) {
        let Some(key) = record.key_str() else {
            return;
        };
        if self.count > 0 {
            self.buf.push(b',');
        }
        // Writing a string to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, key);
        self.buf.push(b':');
        self.buf.extend_from_slice(record.entry());
        self.count += 1;
    }

    fn finish(mut self) -> Bytes {
        self.buf.push(b'}');
        Bytes::from(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            atomic::{AtomicBool, Ordering as AtomicOrdering},
            mpsc,
        },
        thread,
        time::Duration,
    };

    use super::*;
    use crate::incoming::parse_batch;

    fn batch(json: &str) -> Vec<Incoming> {
        parse_batch(json.as_bytes(), None).unwrap()
    }

    #[test]
    fn gets_do_not_wait_behind_a_large_merge() {
        let store = Arc::new(Store::default());
        store.apply(&batch(r#"{"probe": {"value": "old", "ts": 1}}"#), 10);
        let mut big = String::from(r#"{"probe": {"value": "new", "ts": 2}"#);
        for i in 0..100_000 {
            big.push_str(&format!(r#","key-{i}": {{"value": {i}, "ts": 3}}"#));
        }
        big.push('}');
        let big = batch(&big);

        let (merging_tx, merging_rx) = mpsc::channel::<()>();
        let (read_tx, read_rx) = mpsc::channel::<()>();
        let read_during_merge = Arc::new(AtomicBool::new(false));
        let flag = read_during_merge.clone();
        *store.mid_batch.lock().unwrap() = Some(Box::new(move || {
            merging_tx.send(()).unwrap();
            // Half the batch is applied and the writer lock is held. A reader that
            // waited for the merge could not answer, so this would time out: the
            // timeout only keeps a broken store from hanging the test.
            let answered = read_rx.recv_timeout(Duration::from_secs(60)).is_ok();
            flag.store(answered, AtomicOrdering::SeqCst);
        }));
        let writer = {
            let store = store.clone();
            thread::spawn(move || store.apply(&big, 10))
        };
        merging_rx.recv().unwrap();
        // Readers see the snapshot before the batch: none of it, not half of it.
        let during = store.get(b"probe", 10);
        let len_during = store.len();
        let _ = read_tx.send(());
        let applied = writer.join().unwrap();

        assert!(
            read_during_merge.load(AtomicOrdering::SeqCst),
            "a get waited for the merge"
        );
        assert_eq!(
            during.as_deref(),
            Some(&br#"{"value":"old","ts":1,"ttl":null}"#[..])
        );
        assert_eq!(len_during, 1);
        assert_eq!(applied.applied, 100_001);
        let after = store.get(b"probe", 10);
        assert_eq!(
            after.as_deref(),
            Some(&br#"{"value":"new","ts":2,"ttl":null}"#[..])
        );
        assert_eq!(store.len(), 100_001);
    }

    #[test]
    fn a_merge_that_repeats_held_data_does_not_wait_for_writers() {
        let store = Arc::new(Store::default());
        let repeated = r#"{"a": {"value": 1, "ts": 5}, "b": {"value": 2, "ts": 5}}"#;
        store.apply(&batch(repeated), 10);
        let head = store.head();
        let writer = store.writer.lock().unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        let merger = {
            let store = store.clone();
            thread::spawn(move || {
                let applied = store.apply(&batch(repeated), 10);
                let older = store.apply(&batch(r#"{"a": {"value": 0, "ts": 4}}"#), 10);
                done_tx.send((applied, older)).unwrap();
            })
        };
        // Waiting for the writer lock would never end while this test holds it; the
        // timeout only keeps a broken store from hanging the test.
        let (applied, older) = done_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        drop(writer);
        merger.join().unwrap();
        assert_eq!((applied.applied, applied.ignored), (0, 2));
        assert_eq!((older.applied, older.ignored), (0, 1));
        assert_eq!(store.head(), head);
    }

    #[test]
    fn a_sweep_keeps_records_rewritten_since_its_scan() {
        let store = Store::default();
        store.apply(&batch(r#"{"a": {"value": 1, "ts": 1, "ttl": 1}}"#), 10);
        let stale = store.held(b"a").unwrap();
        store.apply(&batch(r#"{"a": {"value": 2, "ts": 5}}"#), 10);
        let mut next = Snapshot::clone(&store.current.load());
        assert!(!next.drop_record(&stale));
        assert_eq!(next.keys.len(), 1);
    }

    #[test]
    fn batches_know_their_size_before_a_record_is_pushed() {
        let keys = ["plain", "quote\"back\\slash", "control\u{1}\n", "ünï"];
        let mut batch = Batch::with_capacity(16);
        for (ts, key) in keys.iter().enumerate() {
            let incoming = parse_batch(
                serde_json::json!({*key: {"value": [1, "two"], "ts": ts}})
                    .to_string()
                    .as_bytes(),
                None,
            )
            .unwrap();
            let record = Record::new(&incoming[0], ts as u64, 1);
            let expected = batch.len_with(&record);
            batch.push(&record);
            assert_eq!(batch.buf.len() + 1, expected, "{key:?}");
        }
        let written = batch.finish();
        let parsed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&written).unwrap();
        assert_eq!(parsed.len(), keys.len());
    }

    #[test]
    fn the_version_comes_back_when_a_change_is_undone() {
        let store = Store::default();
        let empty = store.version();
        store.apply(&batch(r#"{"a": {"value": 1, "ts": 1, "ttl": 0}}"#), 1);
        assert_ne!(store.version(), empty);
        assert_eq!(store.purge(100, 0), 1);
        assert_eq!(store.version(), empty);
    }
}
