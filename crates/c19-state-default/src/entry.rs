//! Entries: parsing a batch into validated writes, and the stored record of one key.
//!
//! A record keeps its key and its wire JSON (`{"value":...,"ts":...,"ttl":...}`) in one
//! buffer, written once when the record is made: a `get` hands out a slice of that
//! buffer without copying, the merge tie-break compares the same bytes on every agent,
//! and `get_root` concatenates them without serializing values again.

use std::{cmp::Ordering, io::Write as _, sync::Arc};

use bytes::Bytes;
use equivalent::{Comparable, Equivalent};
use serde_json::Value;

use crate::error::{EntryProblem, Error, MAX_KEY_LEN, Result};

/// The wire JSON of a tombstone (after the `ts`): `ttl: 0` makes a 0.1 peer see an
/// already expired value, and `deleted: true` tells a c19 state it is a tombstone.
const TOMBSTONE_TAIL: &[u8] = br#","ttl":0,"deleted":true}"#;

/// The wire JSON before the value.
const VALUE_HEAD: &[u8] = br#"{"value":"#;

/// The wire JSON between the value and the timestamp.
const TS_HEAD: &[u8] = br#","ts":"#;

/// The end of the wire JSON of a value that never expires.
const VALUE_TAIL_NO_TTL: &[u8] = br#","ttl":null}"#;

/// One validated write of a batch, not applied yet.
#[derive(Debug)]
pub(crate) struct Incoming {
    /// The key.
    pub key: String,
    /// The value as compact JSON, or `None` for a delete.
    pub value: Option<Vec<u8>>,
    /// The given timestamp; `None` means "now, and newer than what is held".
    pub ts: Option<u64>,
    /// The time to live in ms, the state's default already filled in.
    pub ttl: Option<u64>,
}

/// Parses and validates a whole batch. On error nothing is returned, so nothing is
/// applied.
pub(crate) fn parse_batch(input: &[u8], default_ttl: Option<u64>) -> Result<Vec<Incoming>> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Empty);
    }
    let Value::Object(map) = serde_json::from_slice(input).map_err(Error::NotJson)? else {
        return Err(Error::NotAnObject);
    };
    map.into_iter()
        .map(|(key, entry)| {
            parse_entry(&key, entry, default_ttl)
                .map_err(|problem| Error::Entry {
                    key: key.clone(),
                    problem,
                })
                .map(|(value, ts, ttl)| Incoming {
                    key,
                    value,
                    ts,
                    ttl,
                })
        })
        .collect()
}

/// Refuses keys the state cannot hold.
fn check_key(key: &str) -> Result<(), EntryProblem> {
    if key.is_empty() {
        return Err(EntryProblem::EmptyKey);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(EntryProblem::KeyTooLong);
    }
    Ok(())
}

impl Incoming {
    /// A local delete of `key`: a tombstone stamped at apply time.
    pub fn tombstone(key: &str) -> Result<Self> {
        check_key(key).map_err(|problem| Error::Entry {
            key: key.to_owned(),
            problem,
        })?;
        Ok(Self {
            key: key.to_owned(),
            value: None,
            ts: None,
            ttl: None,
        })
    }
}

/// The value (None: a tombstone), ts and ttl of one entry.
type Parsed = (Option<Vec<u8>>, Option<u64>, Option<u64>);

fn parse_entry(key: &str, entry: Value, default_ttl: Option<u64>) -> Result<Parsed, EntryProblem> {
    check_key(key)?;
    let Value::Object(fields) = entry else {
        return Err(EntryProblem::NotAnObject);
    };
    let (mut value, mut ts, mut ttl, mut deleted) = (None, None, None, false);
    for (name, field) in fields {
        match name.as_str() {
            "value" => value = Some(field),
            "ts" => ts = Some(field.as_u64().ok_or(EntryProblem::BadTs)?),
            "ttl" if field.is_null() => ttl = None,
            "ttl" => ttl = Some(field.as_u64().ok_or(EntryProblem::BadTtl)?),
            "deleted" => deleted = field.as_bool().ok_or(EntryProblem::BadDeleted)?,
            _ => return Err(EntryProblem::UnknownField(name)),
        }
    }
    let value = value.ok_or(EntryProblem::MissingValue)?;
    if deleted {
        return Ok((None, ts, None));
    }
    // Serializing a parsed `Value` gives compact JSON; every agent that relays the
    // entry stores these same bytes.
    let compact = serde_json::to_vec(&value).map_err(|_| EntryProblem::NotAnObject)?;
    Ok((Some(compact), ts, ttl.or(default_ttl)))
}

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
}

impl Slot {
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
fn key_hash(key: &[u8]) -> u64 {
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

    fn parse(input: &str) -> Result<Vec<Incoming>> {
        parse_batch(input.as_bytes(), None)
    }

    fn problem(input: &str) -> String {
        parse(input).unwrap_err().to_string()
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
    fn the_default_ttl_is_materialised_and_null_means_default() {
        let writes = parse_batch(
            br#"{"a": {"value": 1}, "b": {"value": 2, "ttl": null}, "c": {"value": 3, "ttl": 4}}"#,
            Some(100),
        )
        .unwrap();
        let ttls: Vec<_> = writes.iter().map(|write| write.ttl).collect();
        assert_eq!(ttls, [Some(100), Some(100), Some(4)]);
    }

    #[test]
    fn malformed_batches_are_refused_with_a_message() {
        assert_eq!(problem(""), "the body is empty");
        assert_eq!(problem(" \n"), "the body is empty");
        assert!(problem("{").starts_with("the body is not JSON: "));
        assert_eq!(
            problem("[1]"),
            "the body must be a JSON object mapping keys to values"
        );
        assert_eq!(
            problem(r#"{"cat": 1}"#),
            r#"key "cat": the entry must be an object like {"value": ..., "ttl": ...}"#
        );
        assert_eq!(
            problem(r#"{"cat": {"ttl": 1}}"#),
            r#"key "cat": missing field "value""#
        );
        assert!(
            problem(r#"{"cat": {"value": 1, "ttl": -1}}"#)
                .starts_with(r#"key "cat": "ttl" must be a non-negative integer"#)
        );
        assert!(problem(r#"{"cat": {"value": 1, "ttl": 1.5}}"#).contains(r#""ttl" must be"#));
        assert!(problem(r#"{"cat": {"value": 1, "ts": "12"}}"#).contains(r#""ts" must be"#));
        assert!(problem(r#"{"cat": {"value": 1, "deleted": 1}}"#).contains(r#""deleted" must be"#));
        assert!(problem(r#"{"cat": {"value": 1, "tll": 5}}"#).contains(r#"unknown field "tll""#));
        assert_eq!(
            problem(r#"{"": {"value": 1}}"#),
            r#"key "": keys must not be empty"#
        );
    }

    #[test]
    fn null_is_a_value() {
        let writes = parse(r#"{"cat": {"value": null}}"#).unwrap();
        assert_eq!(writes[0].value.as_deref(), Some(&b"null"[..]));
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
