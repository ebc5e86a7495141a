//! Reads for the agent's listing and change feeds: live keys under a prefix, and the
//! changes after a point of the store's history.

use std::ops::Bound;

use bytes::Bytes;
use c19_core::{Change, Changes};

use super::{Batch, Store};
use crate::record::{Record, change_of};

impl Store {
    /// A feed of every change from now on.
    pub fn subscribe(&self) -> Changes {
        self.observers.subscribe()
    }

    /// Counts a batch refused as malformed.
    pub fn refused_invalid(&self) {
        self.observers.invalid();
    }

    /// Counts a resync after being out of touch for longer than `tombstone_ttl`.
    pub fn resynced(&self) {
        self.observers.resynced();
    }

    /// The values visible at `now` whose key starts with `prefix`, the `limit` first in
    /// key order (all of them without a limit), as a batch `set` accepts.
    ///
    /// Keys are held in hash order, so this walks the whole store: O(n) whatever the
    /// prefix.
    pub fn list(&self, prefix: &[u8], limit: Option<usize>, now: u64) -> Bytes {
        // A long read: hold the snapshot itself rather than a short-term guard.
        let snapshot = self.current.load_full();
        let mut found: Vec<&Record> = snapshot
            .keys
            .iter()
            .map(|slot| &slot.record)
            .filter(|record| record.key().starts_with(prefix) && record.is_live(now))
            .collect();
        if let Some(limit) = limit
            && limit < found.len()
        {
            // Only the first `limit` need sorting.
            found.select_nth_unstable_by(limit, |a, b| a.key().cmp(b.key()));
            found.truncate(limit);
        }
        found.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        let size: usize = found
            .iter()
            .map(|record| record.key().len() + record.entry().len() + 4)
            .sum();
        let mut out = Batch::with_capacity(size + 2);
        for record in found {
            out.push(record);
        }
        out.finish()
    }

    /// The changes after point `since`, oldest first, at most `max` of them: the newest
    /// record of each key changed since then, tombstones included, values expired at
    /// `now` left out (every agent expires them on its own, and `diff` skips them too).
    pub fn changes_since(&self, since: u64, max: usize, now: u64) -> Vec<Change> {
        let snapshot = self.current.load_full();
        snapshot
            .by_seq
            .range((Bound::Excluded(since), Bound::Unbounded))
            .filter_map(|(&seq, &hash)| snapshot.by_change(seq, hash))
            .filter(|record| !record.is_expired(now))
            .take(max)
            .map(change_of)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::{Incoming, parse_batch};

    fn batch(json: &str) -> Vec<Incoming> {
        parse_batch(json.as_bytes(), None).unwrap()
    }

    #[test]
    fn counts_values_and_tombstones_through_writes_deletes_and_sweeps() {
        let store = Store::default();
        let counts = |store: &Store| store.current.load().counts();
        store.apply(&batch(r#"{"a": {"value": 1}, "b": {"value": 2}}"#), 10);
        assert_eq!(counts(&store), (2, 0));
        store.delete(&Incoming::tombstone("a").unwrap(), 11);
        assert_eq!(counts(&store), (1, 1));
        // Deleting a tombstone again, and deleting an absent key.
        store.delete(&Incoming::tombstone("a").unwrap(), 12);
        store.delete(&Incoming::tombstone("c").unwrap(), 12);
        assert_eq!(counts(&store), (1, 2));
        // A value written over a tombstone.
        store.apply(&batch(r#"{"c": {"value": 3}}"#), 13);
        assert_eq!(counts(&store), (2, 1));
        store.apply(&batch(r#"{"d": {"value": 4, "ts": 1, "ttl": 1}}"#), 13);
        assert_eq!(counts(&store), (3, 1));
        // The sweep drops the expired value and the tombstone (older than 0 ms).
        assert_eq!(store.purge(100, 0), 2);
        assert_eq!(counts(&store), (2, 0));
    }
}
