//! The messages of an exchange.
//!
//! A message is one line of JSON (the header, below), then, for the messages that carry
//! entries, a newline and the entries as a batch in the format `set` accepts
//! (`{"key": {"value": ..., "ts": ...}, ...}`), so entries are written from the stored
//! wire JSON and read by the same parser as any other batch. Hashes and cursors are JSON
//! numbers (u64); bucket sets are lists of `[first, last]` ranges. Fields at their
//! default are left out: a `hello` is most of what agents at rest exchange.

use bytes::{BufMut, Bytes, BytesMut};
use c19_core::StateError;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::buckets::{BUCKETS, GROUPS, PER_GROUP};

/// The version of this message format; a peer that answers a `hello` of another
/// version with an error is talked to as a 0.1 peer.
pub(crate) const FORMAT: u32 = 1;

/// What each side tells the other about how current its data is; see the crate docs
/// ("Tombstones and agents that were away").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Meta {
    /// When (ms since the Unix epoch) this agent last completed an exchange; `None`:
    /// never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<u64>,
    /// Tombstones with a `ts` at or below this (ms) may have been forgotten.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub horizon: u64,
}

/// The hashes of the buckets of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupDigest {
    /// The group (below [`GROUPS`]).
    pub group: usize,
    /// Its [`PER_GROUP`] bucket hashes.
    pub buckets: Vec<u64>,
}

/// What the side that started the exchange sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Request {
    /// Opens the exchange.
    Hello {
        /// [`FORMAT`].
        format: u32,
        /// The caller's version: an equal one ends the exchange at once.
        version: String,
        /// Whether the caller holds nothing: it then gets the whole state in pages.
        #[serde(default, skip_serializing_if = "is_false")]
        empty: bool,
        /// How current the caller is.
        #[serde(default)]
        meta: Meta,
        /// The largest message the caller wants (bytes).
        max: usize,
    },
    /// The caller's bucket hashes of the groups whose hashes differ.
    Buckets {
        /// One digest per differing group.
        groups: Vec<GroupDigest>,
        /// The largest message the caller wants.
        max: usize,
    },
    /// Asks for the next page of the callee's entries in `buckets`, from key hash `from`.
    Fetch {
        /// The buckets being repaired.
        buckets: BucketSet,
        /// The key hash to resume at.
        from: u64,
        /// The largest message the caller wants.
        max: usize,
    },
    /// Entries the callee lacks or holds older (the payload).
    Give {},
}

/// What the callee answers (an empty answer: nothing to say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Answer {
    /// The callee's group hashes, to find the groups that differ.
    Digest {
        /// Its [`GROUPS`] group hashes.
        groups: Vec<u64>,
        /// Whether the callee holds nothing: the caller then gives it everything.
        empty: bool,
        /// How current the callee is.
        meta: Meta,
    },
    /// The callee's entries (the payload) in `buckets` whose key hash is at or above
    /// `from` and below `next`.
    Page {
        /// The buckets being repaired.
        buckets: BucketSet,
        /// Where the page starts.
        from: u64,
        /// Where the next page starts; `None`: this page runs to the end.
        next: Option<u64>,
        /// How current the callee is.
        meta: Meta,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(flag: &bool) -> bool {
    !flag
}

/// A set of buckets as sorted, disjoint `[first, last]` ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<[u16; 2]>", into = "Vec<[u16; 2]>")]
pub(crate) struct BucketSet(Vec<[u16; 2]>);

impl BucketSet {
    /// Every bucket.
    pub fn all() -> Self {
        Self(vec![[0, (BUCKETS - 1) as u16]])
    }

    /// The buckets `ids`, which come in ascending order.
    pub fn from_sorted(ids: impl IntoIterator<Item = usize>) -> Self {
        let mut ranges: Vec<[u16; 2]> = Vec::new();
        for id in ids {
            let id = id as u16;
            match ranges.last_mut() {
                Some(last) if last[1].checked_add(1) == Some(id) => last[1] = id,
                _ => ranges.push([id, id]),
            }
        }
        Self(ranges)
    }

    /// Whether the set holds no bucket.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ranges, as `(first, last)` bucket ids, in ascending order.
    pub fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.0
            .iter()
            .map(|[first, last]| (usize::from(*first), usize::from(*last)))
    }
}

impl TryFrom<Vec<[u16; 2]>> for BucketSet {
    type Error = String;

    fn try_from(ranges: Vec<[u16; 2]>) -> Result<Self, Self::Error> {
        let mut floor = 0;
        for [first, last] in &ranges {
            let (first, last) = (usize::from(*first), usize::from(*last));
            if first < floor || last < first || last >= BUCKETS {
                return Err(format!(
                    "bucket ranges must be ascending, disjoint and below {BUCKETS}"
                ));
            }
            floor = last + 1;
        }
        Ok(Self(ranges))
    }
}

impl From<BucketSet> for Vec<[u16; 2]> {
    fn from(set: BucketSet) -> Self {
        set.0
    }
}

impl Request {
    /// Refuses values no honest peer sends.
    fn check(&self) -> Result<(), String> {
        if let Request::Buckets { groups, .. } = self {
            if groups.len() > GROUPS {
                return Err(format!("at most {GROUPS} groups"));
            }
            for digest in groups {
                if digest.group >= GROUPS || digest.buckets.len() != PER_GROUP {
                    return Err(format!(
                        "group {} must be below {GROUPS} with {PER_GROUP} bucket hashes",
                        digest.group
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Answer {
    /// Refuses values no honest peer sends.
    fn check(&self) -> Result<(), String> {
        match self {
            Answer::Digest { groups, .. } if groups.len() != GROUPS => {
                Err(format!("a digest has {GROUPS} group hashes"))
            }
            Answer::Page {
                from,
                next: Some(next),
                ..
            } if next <= from => Err("a page must end after it starts".to_owned()),
            _ => Ok(()),
        }
    }
}

/// A message: the header, and for `give` and `page` the entries.
pub(crate) fn encode<T: Serialize>(header: &T, entries: Option<&[u8]>) -> Bytes {
    let mut out = BytesMut::with_capacity(256 + entries.map_or(0, <[u8]>::len));
    // Serializing these plain structs to memory cannot fail.
    let _ = serde_json::to_writer((&mut out).writer(), header);
    if let Some(entries) = entries {
        out.put_u8(b'\n');
        out.put_slice(entries);
    }
    out.freeze()
}

/// Splits a message into its header and its entries (empty when it has none).
fn decode<T: DeserializeOwned>(message: &[u8]) -> Result<(T, &[u8]), StateError> {
    let (header, entries) = match message.iter().position(|byte| *byte == b'\n') {
        Some(end) => (&message[..end], &message[end + 1..]),
        None => (message, &[][..]),
    };
    let header = serde_json::from_slice(header)
        .map_err(|error| StateError::Invalid(format!("not a sync message: {error}")))?;
    Ok((header, entries))
}

/// Reads a request: its header and its entries.
pub(crate) fn decode_request(message: &[u8]) -> Result<(Request, &[u8]), StateError> {
    let (request, entries) = decode::<Request>(message)?;
    request
        .check()
        .map_err(|problem| StateError::Invalid(format!("bad sync request: {problem}")))?;
    Ok((request, entries))
}

/// Reads an answer: its header and its entries.
pub(crate) fn decode_answer(message: &[u8]) -> Result<(Answer, &[u8]), StateError> {
    let (answer, entries) = decode::<Answer>(message)?;
    answer
        .check()
        .map_err(|problem| StateError::Invalid(format!("bad sync answer: {problem}")))?;
    Ok((answer, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_their_entries() {
        let fetch = Request::Fetch {
            buckets: BucketSet::from_sorted([1, 2, 3, 7, 4095]),
            from: u64::MAX - 1,
            max: 4096,
        };
        let bytes = encode(&fetch, None);
        assert_eq!(decode_request(&bytes).unwrap(), (fetch, &b""[..]));
        let give = encode(&Request::Give {}, Some(br#"{"a":{"value":1,"ts":2}}"#));
        assert_eq!(
            std::str::from_utf8(&give).unwrap(),
            "{\"step\":\"give\"}\n{\"a\":{\"value\":1,\"ts\":2}}"
        );
        let (request, entries) = decode_request(&give).unwrap();
        assert_eq!(request, Request::Give {});
        assert_eq!(entries, br#"{"a":{"value":1,"ts":2}}"#);
    }

    #[test]
    fn a_hello_leaves_out_what_is_at_its_default() {
        let hello = Request::Hello {
            format: FORMAT,
            version: "0".repeat(32),
            empty: false,
            meta: Meta {
                last_sync: Some(1_763_800_000_000),
                horizon: 0,
            },
            max: 4 << 20,
        };
        let bytes = encode(&hello, None);
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            format!(
                r#"{{"step":"hello","format":1,"version":"{}","meta":{{"last_sync":1763800000000}},"max":4194304}}"#,
                "0".repeat(32)
            )
        );
        assert_eq!(decode_request(&bytes).unwrap().0, hello);
    }

    #[test]
    fn bucket_sets_are_ranges() {
        let set = BucketSet::from_sorted([1, 2, 3, 7, 4095]);
        assert_eq!(
            set.ranges().collect::<Vec<_>>(),
            [(1, 3), (7, 7), (4095, 4095)]
        );
        assert_eq!(BucketSet::all().ranges().collect::<Vec<_>>(), [(0, 4095)]);
        assert!(BucketSet::from_sorted([]).is_empty());
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        for (bad, reason) in [
            ("", "not a sync message"),
            ("{\"step\":\"dance\"}", "not a sync message"),
            (
                "{\"step\":\"fetch\",\"buckets\":[[5,2]],\"from\":0,\"max\":1}",
                "ascending",
            ),
            (
                "{\"step\":\"fetch\",\"buckets\":[[0,4096]],\"from\":0,\"max\":1}",
                "below 4096",
            ),
            (
                "{\"step\":\"buckets\",\"groups\":[{\"group\":64,\"buckets\":[]}],\"max\":1}",
                "group 64",
            ),
            ("{\"step\":\"give\",\"extra\":1}", "unknown field"),
        ] {
            let error = decode_request(bad.as_bytes()).unwrap_err().to_string();
            assert!(error.contains(reason), "{bad}: {error}");
        }
        let page = r#"{"step":"page","buckets":[],"from":5,"next":5,"meta":{}}"#;
        let error = decode_answer(page.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("end after it starts"), "{error}");
        let digest = r#"{"step":"digest","groups":[1],"empty":false,"meta":{}}"#;
        assert!(decode_answer(digest.as_bytes()).is_err());
    }
}
