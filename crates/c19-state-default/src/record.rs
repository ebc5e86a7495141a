//! The stored record of one key: a value or a tombstone, with its wire JSON.
//!
//! A record keeps its key and its wire JSON (`{"value":...,"ts":...,"ttl":...}`) in one
//! buffer, written once when the record is made: a `get` hands out a slice of that
//! buffer without copying, the merge tie-break compares the same bytes on every agent,
//! and `get_root` concatenates them without serializing values again.

use std::{cmp::Ordering, io::Write as _, sync::Arc};

use bytes::Bytes;

use crate::incoming::Incoming;

/// The wire JSON of a tombstone (after the `ts`): `ttl: 0` makes a 0.1 peer see an
/// already expired value, and `deleted: true` tells a c19 state it is a tombstone.
const TOMBSTONE_TAIL: &[u8] = br#","ttl":0,"deleted":true}"#;

/// The wire JSON before the value.
const VALUE_HEAD: &[u8] = br#"{"value":"#;

/// The wire JSON between the value and the timestamp.
const TS_HEAD: &[u8] = br#","ts":"#;

/// The end of the wire JSON of a value that never expires.
const VALUE_TAIL_NO_TTL: &[u8] = br#","ttl":null}"#;

/// What one key holds: a value or a tombstone, with its wire JSON.
///
/// One allocation per key, as a state may hold millions: a small header (`ts`, the
/// local sequence number, the key's length, whether it is a tombstone), then the key,
/// then the wire JSON. The expiry is read back from the end of the wire JSON rather
/// than stored.
#[derive(Debug, Clone)]
pub(crate) struct Record(Arc<[u8]>);

/// Header offsets in a record's buffer.
const TS_AT: usize = 0;
const SEQ_AT: usize = 8;
const KEY_LEN_AT: usize = 16;
const FLAGS_AT: usize = 20;
const HEADER: usize = 21;
/// The flag of a tombstone.
const DELETED: u8 = 1;

impl Record {
    /// Makes the record of `incoming` at timestamp `ts`, stamped `seq`.
    pub fn new(incoming: &Incoming, ts: u64, seq: u64) -> Self {
        let key = incoming.key.as_bytes();
        let value = incoming.value.as_deref().unwrap_or(b"null");
        let tail_len = match (&incoming.value, incoming.ttl) {
            (None, _) => TOMBSTONE_TAIL.len(),
            (Some(_), Some(ttl)) => r#","ttl":}"#.len() + digits(ttl),
            (Some(_), None) => VALUE_TAIL_NO_TTL.len(),
        };
        let len = HEADER
            + key.len()
            + VALUE_HEAD.len()
            + value.len()
            + TS_HEAD.len()
            + digits(ts)
            + tail_len;
        let mut buf = Vec::with_capacity(len);
        buf.extend_from_slice(&ts.to_le_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
        // parse_batch refused longer keys.
        let key_len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        buf.extend_from_slice(&key_len.to_le_bytes());
        buf.push(if incoming.value.is_none() { DELETED } else { 0 });
        buf.extend_from_slice(key);
        buf.extend_from_slice(VALUE_HEAD);
        buf.extend_from_slice(value);
        // Writing to a Vec cannot fail.
        let _ = write!(buf, r#","ts":{ts}"#);
        match (&incoming.value, incoming.ttl) {
            (None, _) => buf.extend_from_slice(TOMBSTONE_TAIL),
            (Some(_), Some(ttl)) => {
                let _ = write!(buf, r#","ttl":{ttl}}}"#);
            }
            (Some(_), None) => buf.extend_from_slice(VALUE_TAIL_NO_TTL),
        }
        debug_assert_eq!(buf.len(), len);
        Self(Arc::from(buf))
    }

    /// Stamps a record that is not shared yet with the sequence number of the change
    /// that stores it.
    pub fn stamp(&mut self, seq: u64) {
        match Arc::get_mut(&mut self.0) {
            Some(buf) => buf[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_le_bytes()),
            // Records are shared only once stored, and stored records are never
            // stamped; copying keeps this correct regardless.
            None => {
                let mut buf = self.0.to_vec();
                buf[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_le_bytes());
                self.0 = Arc::from(buf);
            }
        }
    }

    fn u64_at(&self, at: usize) -> u64 {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&self.0[at..at + 8]);
        u64::from_le_bytes(bytes)
    }

    /// The write's timestamp (ms since the Unix epoch).
    pub fn ts(&self) -> u64 {
        self.u64_at(TS_AT)
    }

    /// The local sequence number of the change that stored this record.
    pub fn seq(&self) -> u64 {
        self.u64_at(SEQ_AT)
    }

    /// Whether this is a tombstone.
    pub fn deleted(&self) -> bool {
        self.0[FLAGS_AT] & DELETED != 0
    }

    /// Where the key ends in the buffer.
    fn key_end(&self) -> usize {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(&self.0[KEY_LEN_AT..KEY_LEN_AT + 4]);
        HEADER + u32::from_le_bytes(bytes) as usize
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.0[HEADER..self.key_end()]
    }

    /// The key as text (keys are stored from `String`s, so this never fails in practice).
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(self.key()).ok()
    }

    /// The wire JSON of the entry.
    pub fn entry(&self) -> &[u8] {
        &self.0[self.key_end()..]
    }

    /// The wire JSON of the entry, sharing the stored buffer (no copy).
    pub fn entry_bytes(&self) -> Bytes {
        let start = self.key_end();
        Bytes::from_owner(self.0.clone()).slice(start..)
    }

    /// The time to live of a value, read from the end of its wire JSON
    /// (`...,"ttl":1234}`); `None` when it has none (`"ttl":null`) or is a tombstone.
    fn ttl(&self) -> Option<u64> {
        if self.deleted() {
            return None;
        }
        let body = self.entry().strip_suffix(b"}")?;
        let start = body.iter().rposition(|byte| !byte.is_ascii_digit())? + 1;
        std::str::from_utf8(&body[start..]).ok()?.parse().ok()
    }

    /// The entry of the change that reports this value's expiry: a deletion's shape
    /// with `"expired":true` in its place, keeping the expired write's `ts` and `ttl`,
    /// `{"value":null,"ts":...,"ttl":...,"expired":true}`.
    pub fn expiry_entry(&self) -> Bytes {
        let ts = self.ts();
        let entry = match self.ttl() {
            Some(ttl) => format!(r#"{{"value":null,"ts":{ts},"ttl":{ttl},"expired":true}}"#),
            None => format!(r#"{{"value":null,"ts":{ts},"ttl":null,"expired":true}}"#),
        };
        Bytes::from(entry)
    }

    /// The last millisecond at which a value is visible (`ts + ttl`, or never ending).
    fn visible_until(&self) -> u64 {
        self.ttl()
            .map_or(u64::MAX, |ttl| self.ts().saturating_add(ttl))
    }

    /// Whether a `get` at `now` returns this record: a value that has not expired.
    pub fn is_live(&self, now: u64) -> bool {
        !self.deleted() && now <= self.visible_until()
    }

    /// Whether this is a value that expired before `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        !self.deleted() && now > self.visible_until()
    }

    /// Whether a sweep at `now` drops this record: an expired value, or a tombstone
    /// older than `tombstone_ttl`.
    pub fn is_purgeable(&self, now: u64, tombstone_ttl: u64) -> bool {
        if self.deleted() {
            now > self.ts().saturating_add(tombstone_ttl)
        } else {
            self.is_expired(now)
        }
    }

    /// The merge order: newer `ts` wins; at equal `ts` a tombstone wins over a value,
    /// then the greater wire bytes win. Every agent compares the same bytes, so every
    /// agent picks the same winner whatever order writes arrive in.
    pub fn merge_order(&self, other: &Self) -> Ordering {
        (self.ts(), self.deleted(), self.entry()).cmp(&(other.ts(), other.deleted(), other.entry()))
    }

    /// This record's share of the state's version: a hash of key and entry (not of the
    /// local header) that is the same on every machine (xxh3 is specified; std's hasher
    /// is randomised).
    pub fn version_hash(&self) -> u128 {
        let key_len = (self.key_end() - HEADER) as u64;
        xxhash_rust::xxh3::xxh3_128_with_seed(&self.0[HEADER..], key_len)
    }

    /// Whether both are the same stored record (not merely equal).
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The number of decimal digits of `n`.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// The change that stored `record`.
pub(crate) fn change_of(record: &Record) -> c19_core::Change {
    c19_core::Change {
        seq: record.seq(),
        key: Bytes::copy_from_slice(record.key()),
        entry: record.entry_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::{Result, incoming::parse_batch};

    fn parse(input: &str) -> Result<Vec<Incoming>> {
        parse_batch(input.as_bytes(), None)
    }

    #[test]
    fn values_are_normalised_to_compact_json() {
        let writes =
            parse(r#"{"cat": {"value": { "name" : "garfield", "age":  40 }, "ttl": 20000}}"#)
                .unwrap();
        let record = Record::new(&writes[0], 7, 1);
        assert_eq!(record.key(), b"cat");
        assert_eq!(
            record.entry(),
            br#"{"value":{"name":"garfield","age":40},"ts":7,"ttl":20000}"#
        );
    }

    #[test]
    fn tombstones_have_one_wire_form() {
        let writes = parse(r#"{"cat": {"value": 3, "ttl": 5, "deleted": true}}"#).unwrap();
        let record = Record::new(&writes[0], 9, 1);
        assert!(record.deleted());
        assert_eq!(
            record.entry(),
            br#"{"value":null,"ts":9,"ttl":0,"deleted":true}"#
        );
    }

    #[test]
    fn merge_order_is_ts_then_tombstone_then_bytes() {
        let writes = parse(
            r#"{"a": {"value": "x"}, "b": {"value": "y"}, "c": {"value": 0, "deleted": true}}"#,
        )
        .unwrap();
        let (x, y, tomb) = (&writes[0], &writes[1], &writes[2]);
        let at = |write: &Incoming, ts| Record::new(write, ts, 0);
        assert_eq!(at(x, 2).merge_order(&at(y, 1)), Ordering::Greater);
        assert_eq!(at(x, 1).merge_order(&at(y, 1)), Ordering::Less);
        assert_eq!(at(tomb, 1).merge_order(&at(y, 1)), Ordering::Greater);
        assert_eq!(at(x, 1).merge_order(&at(x, 1)), Ordering::Equal);
    }

    #[test]
    fn buffers_have_the_exact_size() {
        for input in [
            r#"{"k": {"value": "x", "ttl": 0}}"#,
            r#"{"k": {"value": [1, 2], "ttl": 18446744073709551615}}"#,
            r#"{"key": {"value": null}}"#,
            r#"{"key": {"value": 1, "deleted": true}}"#,
        ] {
            for ts in [0, 9, 10, 1_763_800_000_000, u64::MAX] {
                let record = Record::new(&parse(input).unwrap()[0], ts, 1);
                assert_eq!(
                    record.0.len(),
                    HEADER + record.key().len() + record.entry().len()
                );
                assert_eq!((record.ts(), record.seq()), (ts, 1));
                let mut stamped = record.clone();
                stamped.stamp(7);
                assert_eq!((stamped.seq(), record.seq()), (7, 1));
                assert_eq!(stamped.entry(), record.entry());
                let parsed: Value = serde_json::from_slice(record.entry()).unwrap();
                assert_eq!(parsed["ts"], ts, "{input}");
            }
        }
    }

    #[test]
    fn the_ttl_is_read_back_from_the_wire_json() {
        let at = |input: &str| Record::new(&parse(input).unwrap()[0], 100, 0);
        assert_eq!(at(r#"{"a": {"value": "1}", "ttl": 25}}"#).ttl(), Some(25));
        assert_eq!(at(r#"{"a": {"value": 7}}"#).ttl(), None);
        assert_eq!(at(r#"{"a": {"value": 7, "deleted": true}}"#).ttl(), None);
        assert!(at(r#"{"a": {"value": 7, "ttl": 0}}"#).is_live(100));
        assert!(!at(r#"{"a": {"value": 7, "ttl": 0}}"#).is_live(101));
        assert!(at(r#"{"a": {"value": 7}}"#).is_live(u64::MAX));
    }

    #[test]
    fn expiry_is_relative_to_ts() {
        let writes = parse(r#"{"a": {"value": 1, "ttl": 10}}"#).unwrap();
        let record = Record::new(&writes[0], 100, 0);
        assert!(record.is_live(110));
        assert!(!record.is_live(111));
        assert!(record.is_purgeable(111, 0));
    }
}
