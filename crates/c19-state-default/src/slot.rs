//! Records as held in the key set, and the probes that look them up.

use std::cmp::Ordering;

use equivalent::{Comparable, Equivalent};

use crate::record::Record;

/// A record as stored in the key set, ordered by (hash of the key, key).
///
/// Ordering by a hash first keeps most comparisons of a lookup inside the tree's nodes
/// (comparing keys would read each record's buffer, a cache miss apiece). The hash is
/// xxh3, the same on every agent, so the full state comes out in the same order
/// everywhere; keys with equal hashes are still told apart by the key.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    hash: u64,
    /// The record.
    pub record: Record,
}

impl Slot {
    /// Holds `record` in the key set.
    pub fn new(record: Record) -> Self {
        Self {
            hash: key_hash(record.key()),
            record,
        }
    }

    /// The hash of the key.
    pub fn hash(&self) -> u64 {
        self.hash
    }
}

/// The first or last possible place of a key hash in the key set, to find every key
/// with that hash (there is one, bar a 64-bit collision).
#[derive(Debug, Clone, Copy)]
pub(crate) enum HashEdge {
    /// Before every key with the hash.
    First(u64),
    /// After every key with the hash.
    Last(u64),
}

impl HashEdge {
    /// The edges around `hash`.
    pub fn range(hash: u64) -> (Self, Self) {
        (Self::First(hash), Self::Last(hash))
    }
}

impl Equivalent<Slot> for HashEdge {
    fn equivalent(&self, _: &Slot) -> bool {
        false
    }
}

impl Comparable<Slot> for HashEdge {
    fn compare(&self, slot: &Slot) -> Ordering {
        match *self {
            Self::First(hash) => hash.cmp(&slot.hash).then(Ordering::Less),
            Self::Last(hash) => hash.cmp(&slot.hash).then(Ordering::Greater),
        }
    }
}

/// The hash that orders keys.
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Slot {}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Slot {
    fn cmp(&self, other: &Self) -> Ordering {
        self.hash
            .cmp(&other.hash)
            .then_with(|| self.record.key().cmp(other.record.key()))
    }
}

/// A key looked up in the key set; ordered as [`Slot`] orders its key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe<'a> {
    hash: u64,
    key: &'a [u8],
}

impl<'a> Probe<'a> {
    /// A lookup of `key`.
    pub fn new(key: &'a [u8]) -> Self {
        Self {
            hash: key_hash(key),
            key,
        }
    }
}

impl Equivalent<Slot> for Probe<'_> {
    fn equivalent(&self, slot: &Slot) -> bool {
        self.hash == slot.hash && self.key == slot.record.key()
    }
}

impl Comparable<Slot> for Probe<'_> {
    fn compare(&self, slot: &Slot) -> Ordering {
        self.hash
            .cmp(&slot.hash)
            .then_with(|| self.key.cmp(slot.record.key()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Result,
        incoming::{Incoming, parse_batch},
    };

    fn parse(input: &str) -> Result<Vec<Incoming>> {
        parse_batch(input.as_bytes(), None)
    }

    #[test]
    fn keys_with_one_hash_are_told_apart_and_found_by_hash() {
        let slot = |key: &str, hash: u64, seq: u64| {
            let incoming = &parse(&format!(r#"{{"{key}": {{"value": 1}}}}"#)).unwrap()[0];
            Slot {
                hash,
                record: Record::new(incoming, 1, seq),
            }
        };
        let mut set = imbl::OrdSet::new();
        for (key, hash, seq) in [("a", 5, 1), ("b", 5, 2), ("c", 4, 3), ("d", 6, 4)] {
            set.insert(slot(key, hash, seq));
        }
        // Lookups by key go by the key's real hash, so check the order directly.
        let order: Vec<&[u8]> = set.iter().map(|slot| slot.record.key()).collect();
        assert_eq!(order, [&b"c"[..], b"a", b"b", b"d"]);
        let (first, last) = HashEdge::range(5);
        let seqs: Vec<u64> = set
            .range::<_, HashEdge>((
                std::ops::Bound::Included(&first),
                std::ops::Bound::Included(&last),
            ))
            .map(|slot| slot.record.seq())
            .collect();
        assert_eq!(seqs, [1, 2]);
        let real = Slot::new(Record::new(
            &parse(r#"{"z": {"value": 1}}"#).unwrap()[0],
            1,
            9,
        ));
        set.insert(real);
        assert_eq!(
            set.get(&Probe::new(b"z")).map(|slot| slot.record.seq()),
            Some(9)
        );
        assert!(set.get(&Probe::new(b"y")).is_none());
    }

    #[test]
    fn slots_stay_small() {
        assert!(size_of::<Slot>() <= 24, "{}", size_of::<Slot>());
    }
}
