//! A two-level digest of the key space, kept up to date with every change.
//!
//! Keys fall into [`BUCKETS`] buckets by the top bits of the same stable key hash that
//! orders the key set, so the records of one bucket are one contiguous range of it. A
//! bucket's hash is the wrapping sum of its records' version hashes; a group's hash is
//! the sum of its [`PER_GROUP`] buckets' hashes. A change adds and subtracts one hash at
//! each level: O(1), as for the version.
//!
//! Snapshots are cloned for each write batch, so the buckets are held in shared chunks
//! of [`GROUPS_PER_CHUNK`] groups: a clone copies the group sums and [`CHUNKS`]
//! pointers (each clone and drop of a pointer is an atomic operation, and a small write
//! is a batch of its own, so fewer pointers beat smaller chunks), and a batch copies
//! only the chunks it touches (2 KiB each).

use std::sync::Arc;

/// Groups of buckets: the first level of the digest.
pub(crate) const GROUPS: usize = 64;
/// Buckets in each group.
pub(crate) const PER_GROUP: usize = 64;
/// Buckets in all.
pub(crate) const BUCKETS: usize = GROUPS * PER_GROUP;
/// How far a key hash is shifted to give its bucket (the top 12 bits).
const BUCKET_SHIFT: u32 = u64::BITS - BUCKETS.trailing_zeros();

/// The bucket of a key whose hash (as the key set orders it) is `key_hash`.
pub(crate) fn bucket_of(key_hash: u64) -> usize {
    (key_hash >> BUCKET_SHIFT) as usize
}

/// The first and last key hash of `bucket`.
pub(crate) fn hash_range(bucket: usize) -> (u64, u64) {
    let first = (bucket as u64) << BUCKET_SHIFT;
    (first, first | (u64::MAX >> (u64::BITS - BUCKET_SHIFT)))
}

/// Groups of buckets stored together.
const GROUPS_PER_CHUNK: usize = 4;
/// Chunks of groups.
const CHUNKS: usize = GROUPS / GROUPS_PER_CHUNK;

/// The bucket hashes of [`GROUPS_PER_CHUNK`] groups.
type Chunk = [[u64; PER_GROUP]; GROUPS_PER_CHUNK];

/// The group hashes and bucket hashes of one snapshot.
#[derive(Debug, Clone)]
pub(crate) struct BucketHashes {
    groups: [u64; GROUPS],
    buckets: [Arc<Chunk>; CHUNKS],
}

impl Default for BucketHashes {
    fn default() -> Self {
        let empty = Arc::new([[0; PER_GROUP]; GROUPS_PER_CHUNK]);
        Self {
            groups: [0; GROUPS],
            buckets: std::array::from_fn(|_| empty.clone()),
        }
    }
}

impl BucketHashes {
    /// Replaces a record (version hash `old`, if any) of the key hashing to `key_hash`
    /// by one with version hash `new` (if any).
    pub fn replace(&mut self, key_hash: u64, old: Option<u128>, new: Option<u128>) {
        // The low half of the version hash: 64 bits tell buckets apart well enough.
        let delta = new
            .map_or(0, |new| new as u64)
            .wrapping_sub(old.map_or(0, |old| old as u64));
        if delta == 0 {
            return;
        }
        let bucket = bucket_of(key_hash);
        let (group, slot) = (bucket / PER_GROUP, bucket % PER_GROUP);
        let chunk = Arc::make_mut(&mut self.buckets[group / GROUPS_PER_CHUNK]);
        let hashes = &mut chunk[group % GROUPS_PER_CHUNK];
        hashes[slot] = hashes[slot].wrapping_add(delta);
        self.groups[group] = self.groups[group].wrapping_add(delta);
    }

    /// The hash of every group.
    pub fn groups(&self) -> &[u64; GROUPS] {
        &self.groups
    }

    /// The hashes of the buckets of `group` (`group < GROUPS`).
    pub fn group(&self, group: usize) -> &[u64; PER_GROUP] {
        &self.buckets[group / GROUPS_PER_CHUNK][group % GROUPS_PER_CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_ranges_of_key_hashes() {
        assert_eq!(BUCKETS, 4096);
        assert_eq!(hash_range(0), (0, (1 << 52) - 1));
        assert_eq!(hash_range(BUCKETS - 1).1, u64::MAX);
        for bucket in [0, 1, 63, 64, 2049, BUCKETS - 1] {
            let (first, last) = hash_range(bucket);
            assert_eq!(bucket_of(first), bucket);
            assert_eq!(bucket_of(last), bucket);
            if bucket + 1 < BUCKETS {
                assert_eq!(hash_range(bucket + 1).0, last + 1);
            }
        }
    }

    #[test]
    fn sums_follow_changes_and_come_back_when_undone() {
        let mut hashes = BucketHashes::default();
        let empty = hashes.clone();
        let key = hash_range(70).0 + 5;
        hashes.replace(key, None, Some(7));
        hashes.replace(key, Some(7), Some(1 << 70 | 9));
        assert_eq!(hashes.group(1)[6], 9);
        assert_eq!(hashes.groups()[1], 9);
        assert_eq!(empty.group(1)[6], 0, "a clone keeps its own buckets");
        hashes.replace(key, Some(9), None);
        assert_eq!(hashes.groups(), empty.groups());
        assert_eq!(hashes.group(1), empty.group(1));
    }

    #[test]
    fn every_group_has_its_own_buckets() {
        let mut hashes = BucketHashes::default();
        for group in 0..GROUPS {
            let key = hash_range(group * PER_GROUP + group % PER_GROUP).0;
            hashes.replace(key, None, Some(group as u128 + 1));
        }
        for group in 0..GROUPS {
            let buckets = hashes.group(group);
            assert_eq!(
                buckets[group % PER_GROUP],
                group as u64 + 1,
                "group {group}"
            );
            assert_eq!(buckets.iter().filter(|&&hash| hash != 0).count(), 1);
            assert_eq!(hashes.groups()[group], group as u64 + 1);
        }
    }
}
