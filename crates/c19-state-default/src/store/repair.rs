//! What exchanges read and write in the store: digests, pages of entries by bucket, the
//! sweep of dead records they come across, and the drop that resynchronises an agent
//! that was away.

use std::{collections::HashMap, ops::Bound, sync::PoisonError};

use bytes::Bytes;
use c19_core::{Applied, Change};

use super::{Batch, Snapshot, Store};
use crate::{
    buckets::{GROUPS, PER_GROUP, hash_range},
    incoming::Incoming,
    message::{BucketSet, GroupDigest},
    record::Record,
    slot::{HashEdge, Slot},
    sync_meta::SyncMeta,
};

/// The first level of a store's digest.
#[derive(Debug, Clone)]
pub(crate) struct Digest {
    /// The version.
    pub version: String,
    /// The group hashes.
    pub groups: Vec<u64>,
    /// Whether the store holds no record.
    pub empty: bool,
}

/// One page of entries, as a batch `set` accepts.
#[derive(Debug)]
pub(crate) struct Page {
    /// The entries.
    pub entries: Bytes,
    /// How many entries.
    pub count: usize,
    /// Where the next page starts; `None`: the region is exhausted.
    pub next: Option<u64>,
}

/// The records of `buckets` whose key hash is at or above `from` and below `to`.
fn region<'a>(
    snapshot: &'a Snapshot,
    buckets: &'a BucketSet,
    from: u64,
    to: Option<u64>,
) -> impl Iterator<Item = &'a Slot> + 'a {
    buckets
        .ranges()
        .filter_map(move |(first, last)| {
            let start = hash_range(first).0.max(from);
            let end = match to {
                Some(0) => return None,
                Some(to) => hash_range(last).1.min(to - 1),
                None => hash_range(last).1,
            };
            (start <= end).then_some((HashEdge::First(start), HashEdge::Last(end)))
        })
        .flat_map(move |(start, end)| {
            snapshot
                .keys
                .range::<_, HashEdge>((Bound::Included(&start), Bound::Included(&end)))
        })
}

/// Whether an incoming entry is dead on arrival at `now`: an expired value, or a
/// tombstone older than `tombstone_ttl`.
pub(crate) fn dead_on_arrival(incoming: &Incoming, ts: u64, now: u64, tombstone_ttl: u64) -> bool {
    match (&incoming.value, incoming.ttl) {
        (None, _) => now > ts.saturating_add(tombstone_ttl),
        (Some(_), Some(ttl)) => now > ts.saturating_add(ttl),
        (Some(_), None) => false,
    }
}

impl Store {
    /// How current this store is.
    pub fn sync_meta(&self) -> &SyncMeta {
        &self.sync
    }

    /// Below which `ts` (inclusive) changes are not pushed: when this agent has been out
    /// of touch for longer than `tombstone_ttl`, older entries may be shadowed by deletes
    /// it never saw and peers have forgotten. Exchanges, which check for that, carry them
    /// instead. `None` while in touch, or before any exchange completed.
    pub fn held_back(&self, now: u64, tombstone_ttl: u64) -> Option<u64> {
        let grace = now.saturating_sub(tombstone_ttl);
        let last_sync = self.sync.meta().last_sync?;
        (last_sync < grace).then_some(grace)
    }

    /// The version and the group hashes.
    pub fn digest(&self) -> Digest {
        let snapshot = self.current.load();
        Digest {
            version: format!("{:032x}", snapshot.version),
            groups: snapshot.buckets.groups().to_vec(),
            empty: snapshot.keys.is_empty(),
        }
    }

    /// The groups whose hashes differ from `theirs` (which holds [`GROUPS`] hashes).
    pub fn differing_groups(&self, theirs: &[u64]) -> Vec<usize> {
        let snapshot = self.current.load();
        let ours = snapshot.buckets.groups();
        (0..GROUPS)
            .filter(|&g| theirs.get(g) != Some(&ours[g]))
            .collect()
    }

    /// The bucket hashes of `groups`.
    pub fn group_digests(&self, groups: &[usize]) -> Vec<GroupDigest> {
        let snapshot = self.current.load();
        groups
            .iter()
            .map(|&group| GroupDigest {
                group,
                buckets: snapshot.buckets.group(group).to_vec(),
            })
            .collect()
    }

    /// The buckets whose hashes differ from those in `theirs`.
    pub fn differing_buckets(&self, theirs: &[GroupDigest]) -> BucketSet {
        let snapshot = self.current.load();
        let mut differing: Vec<usize> = theirs
            .iter()
            .flat_map(|digest| {
                let ours = snapshot.buckets.group(digest.group);
                (0..PER_GROUP)
                    .filter(|&b| digest.buckets.get(b) != Some(&ours[b]))
                    .map(move |b| digest.group * PER_GROUP + b)
            })
            .collect();
        differing.sort_unstable();
        differing.dedup();
        BucketSet::from_sorted(differing)
    }

    /// The live entries of `buckets` from key hash `from` on, in about `budget` bytes
    /// (at least the records of one key hash). Dead records met on the way (expired
    /// values, tombstones older than `tombstone_ttl`) are swept instead of sent, so
    /// they stop making digests differ.
    pub fn page(
        &self,
        buckets: &BucketSet,
        from: u64,
        budget: usize,
        now: u64,
        tombstone_ttl: u64,
    ) -> Page {
        let snapshot = self.current.load_full();
        let mut out = Batch::with_capacity(budget.min(1 << 20));
        let mut dead = Vec::new();
        let mut next = None;
        let mut last_hash = None;
        for slot in region(&snapshot, buckets, from, None) {
            let record = &slot.record;
            if record.is_purgeable(now, tombstone_ttl) {
                dead.push(record.clone());
                continue;
            }
            // Records of one key hash stay together: a page never ends between them.
            if out.count > 0 && out.len_with(record) > budget && last_hash != Some(slot.hash()) {
                next = Some(slot.hash());
                break;
            }
            out.push(record);
            last_hash = Some(slot.hash());
        }
        self.sweep_dead(dead, now, tombstone_ttl);
        Page {
            count: out.count,
            entries: out.finish(),
            next,
        }
    }

    /// The live records of `buckets` whose key hash is at or above `from` and below
    /// `to`; dead ones are swept as by [`Store::page`].
    pub fn records_in(
        &self,
        buckets: &BucketSet,
        from: u64,
        to: Option<u64>,
        now: u64,
        tombstone_ttl: u64,
    ) -> Vec<Record> {
        let snapshot = self.current.load_full();
        let (live, dead): (Vec<Record>, Vec<Record>) = region(&snapshot, buckets, from, to)
            .map(|slot| slot.record.clone())
            .partition(|record| !record.is_purgeable(now, tombstone_ttl));
        self.sweep_dead(dead, now, tombstone_ttl);
        live
    }

    /// Merges entries from a peer's exchange at `now`. Entries that are dead on arrival
    /// are stored only to replace what this store holds for their key (a value that
    /// expired or was deleted somewhere stays so here); otherwise they would be swept at
    /// once and offered back at the next exchange.
    pub fn merge_exchanged(
        &self,
        mut batch: Vec<Incoming>,
        now: u64,
        tombstone_ttl: u64,
    ) -> Applied {
        {
            let snapshot = self.current.load();
            batch.retain(|incoming| {
                incoming.ts.is_some_and(|ts| {
                    !dead_on_arrival(incoming, ts, now, tombstone_ttl)
                        || snapshot.get(incoming.key.as_bytes()).is_some()
                })
            });
        }
        self.apply(&batch, now)
    }

    /// Drops every record whose `ts` is at or below `horizon`: what an agent that was
    /// away longer than the grace period does before taking its peer's state. Not a
    /// change: nothing is pushed. Returns how many records were dropped.
    pub fn drop_through(&self, horizon: u64) -> usize {
        let doomed: Vec<Record> = self
            .current
            .load_full()
            .keys
            .iter()
            .filter(|slot| slot.record.ts() <= horizon)
            .map(|slot| slot.record.clone())
            .collect();
        self.drop_records(&doomed, None)
    }

    /// Sweeps `dead` records found by an exchange, noting the tombstones among them.
    fn sweep_dead(&self, dead: Vec<Record>, now: u64, tombstone_ttl: u64) {
        if dead.iter().any(Record::deleted) {
            self.sync.swept_tombstones(now, tombstone_ttl);
        }
        self.drop_records(&dead, Some(now));
    }

    /// Drops `records` that are still the ones held for their keys (a record rewritten
    /// since it was read stays); returns how many. With `expired_at`, the values among
    /// them that expired by then are reported to subscribers, each at a sequence number
    /// of its own (which `diff` and `changes_since` never return: no record is stored).
    pub(super) fn drop_records(&self, records: &[Record], expired_at: Option<u64>) -> usize {
        if records.is_empty() {
            return 0;
        }
        let mut retired = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Snapshot::clone(&self.current.load());
        let mut expired = expired_at.and(self.observers.expiry_collector());
        let mut dropped = 0;
        let mut removed = Vec::new();
        for record in records {
            if !next.drop_record(record) {
                continue;
            }
            dropped += 1;
            removed.push(record.key());
            if let (Some(now), Some(expired)) = (expired_at, expired.as_mut())
                && record.is_expired(now)
            {
                next.head += 1;
                expired.push(Change {
                    seq: next.head,
                    key: Bytes::copy_from_slice(record.key()),
                    entry: record.expiry_entry(),
                });
            }
        }
        let counts = next.counts();
        let head = next.head;
        let released = retired.replace(&self.current, next);
        if let Some(persist) = self.persist.get() {
            persist.enqueue([], removed);
        }
        self.observers.moved(head);
        if dropped > 0 {
            // Still under the writer lock: subscribers get changes in order.
            self.observers.swept(counts, expired);
        }
        drop(retired);
        drop(released);
        dropped
    }
}

/// Takes the first of `records` that fit in about `budget` bytes (at least one) and
/// returns them as a batch `set` accepts.
pub(crate) fn fill(records: &mut Vec<Record>, budget: usize) -> Bytes {
    let mut out = Batch::with_capacity(budget.min(1 << 20));
    let taken = records
        .iter()
        .take_while(|record| {
            let fits = out.count == 0 || out.len_with(record) <= budget;
            if fits {
                out.push(record);
            }
            fits
        })
        .count();
    records.drain(..taken);
    out.finish()
}

/// The records of a peer's page, by key, to compare with this store's.
pub(crate) fn by_key(batch: &[Incoming]) -> HashMap<&str, Record> {
    batch
        .iter()
        .filter_map(|incoming| {
            let ts = incoming.ts?;
            Some((incoming.key.as_str(), Record::new(incoming, ts, 0)))
        })
        .collect()
}
