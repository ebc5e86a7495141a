//! Entries: parsing a batch into validated writes, and the stored record of one key.
//!
//! A record keeps its key and its wire JSON (`{"value":...,"ts":...,"ttl":...}`) in one
//! buffer, written once when the record is made: a `get` hands out a slice of that
//! buffer without copying, the merge tie-break compares the same bytes on every agent,
//! and `get_root` concatenates them without serializing values again.

use std::{borrow::Borrow, cmp::Ordering, hash::Hash, io::Write as _, sync::Arc};

use bytes::Bytes;
use serde_json::Value;

use crate::error::{EntryProblem, Error, MAX_KEY_LEN, Result};

/// The wire JSON of a tombstone (after the `ts`): `ttl: 0` makes a 0.1 peer see an
/// already expired value, and `deleted: true` tells a c19 state it is a tombstone.
const TOMBSTONE_TAIL: &[u8] = br#","ttl":0,"deleted":true}"#;

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
#[derive(Debug)]
pub(crate) struct Record {
    /// The key's bytes followed by the wire JSON of the entry.
    buf: Bytes,
    /// Where the key ends in `buf`.
    key_len: u32,
    /// The write's timestamp (ms since the Unix epoch).
    pub ts: u64,
    /// The last millisecond at which a value is visible (`ts + ttl`; `u64::MAX` if it
    /// never expires). Unused for tombstones.
    visible_until: u64,
    /// The local sequence number of the change that stored this record.
    pub seq: u64,
    /// Whether this is a tombstone.
    pub deleted: bool,
}

impl Record {
    /// Makes the record of `write` at timestamp `ts`, stamped `seq`.
    pub fn new(write: &Incoming, ts: u64, seq: u64) -> Self {
        let key = write.key.as_bytes();
        let value_len = write.value.as_ref().map_or(4, Vec::len);
        let mut buf = Vec::with_capacity(key.len() + value_len + 64);
        buf.extend_from_slice(key);
        buf.extend_from_slice(br#"{"value":"#);
        buf.extend_from_slice(write.value.as_deref().unwrap_or(b"null"));
        // Writing to a Vec cannot fail.
        let _ = write!(buf, r#","ts":{ts}"#);
        match (&write.value, write.ttl) {
            (None, _) => buf.extend_from_slice(TOMBSTONE_TAIL),
            (Some(_), Some(ttl)) => {
                let _ = write!(buf, r#","ttl":{ttl}}}"#);
            }
            (Some(_), None) => buf.extend_from_slice(br#","ttl":null}"#),
        }
        buf.shrink_to_fit();
        Self {
            buf: Bytes::from(buf),
            // parse_batch refused longer keys.
            key_len: u32::try_from(key.len()).unwrap_or(u32::MAX),
            ts,
            visible_until: write.ttl.map_or(u64::MAX, |ttl| ts.saturating_add(ttl)),
            seq,
            deleted: write.value.is_none(),
        }
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.buf[..self.key_len as usize]
    }

    /// The key as text (keys are stored from `String`s, so this never fails in practice).
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(self.key()).ok()
    }

    /// The wire JSON of the entry.
    pub fn entry(&self) -> &[u8] {
        &self.buf[self.key_len as usize..]
    }

    /// The wire JSON of the entry, sharing the stored buffer.
    pub fn entry_bytes(&self) -> Bytes {
        self.buf.slice(self.key_len as usize..)
    }

    /// Whether a `get` at `now` returns this record: a value that has not expired.
    pub fn is_live(&self, now: u64) -> bool {
        !self.deleted && now <= self.visible_until
    }

    /// Whether this is a value that expired before `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        !self.deleted && now > self.visible_until
    }

    /// Whether a sweep at `now` drops this record: an expired value, or a tombstone
    /// older than `tombstone_ttl`.
    pub fn is_purgeable(&self, now: u64, tombstone_ttl: u64) -> bool {
        if self.deleted {
            now > self.ts.saturating_add(tombstone_ttl)
        } else {
            now > self.visible_until
        }
    }

    /// The merge order: newer `ts` wins; at equal `ts` a tombstone wins over a value,
    /// then the greater wire bytes win. Every agent compares the same bytes, so every
    /// agent picks the same winner whatever order writes arrive in.
    pub fn merge_order(&self, other: &Self) -> Ordering {
        (self.ts, self.deleted, self.entry()).cmp(&(other.ts, other.deleted, other.entry()))
    }

    /// This record's share of the state's version: a hash of key and entry that is the
    /// same on every machine (xxh3 is specified; std's hasher is randomised).
    pub fn version_hash(&self) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_seed(&self.buf, u64::from(self.key_len))
    }
}

/// A record as stored in the key map. Hashing and equality look at the key only, so
/// the map can be searched with the key's bytes (`Borrow<[u8]>`).
#[derive(Debug, Clone)]
pub(crate) struct Slot(pub Arc<Record>);

impl Borrow<[u8]> for Slot {
    fn borrow(&self) -> &[u8] {
        self.0.key()
    }
}

impl Hash for Slot {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Must match `<[u8] as Hash>`, which lookups by key use.
        self.0.key().hash(state);
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.0.key() == other.0.key()
    }
}

impl Eq for Slot {}

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
        assert!(record.deleted);
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
    fn expiry_is_relative_to_ts() {
        let writes = parse(r#"{"a": {"value": 1, "ttl": 10}}"#).unwrap();
        let record = Record::new(&writes[0], 100, 0);
        assert!(record.is_live(110));
        assert!(!record.is_live(111));
        assert!(record.is_purgeable(111, 0));
    }
}
