//! The fast path of batch parsing: keys and values borrowed from the input, no JSON tree.
//!
//! It must give exactly what the tree path gives, bytes included: a value is stored as
//! the compact JSON that serializing its parsed tree prints, and every agent compares
//! those bytes to break ties. The raw text of a value is that JSON already when it is
//! `true`, `false`, `null`, a string without escapes, or a small integer other than
//! `-0`; anything else is re-serialized through a tree. Whatever this path does not
//! handle (escaped keys, duplicate keys or fields, malformed entries, any error) makes
//! it give up, and the tree path parses the batch and words the error.

use std::collections::HashSet;

use serde::{
    Deserialize, Deserializer,
    de::{MapAccess, Visitor},
};
use serde_json::{Value, value::RawValue};

use super::{Incoming, check_key};
use crate::pace::Pacer;

/// One entry as written, its fields not interpreted yet (`None`: absent; a JSON
/// `null` is `Some`, as the tree path tells them apart).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    value: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    ts: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    ttl: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    deleted: Option<&'a RawValue>,
}

/// A field that is present, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// The entries of a batch in their order, keys borrowed (so unescaped) from the input.
struct Entries<'a>(Vec<(&'a str, RawEntry<'a>)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a map of keys to entries")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(1));
                let mut pacer = Pacer::default();
                while let Some(entry) = map.next_entry::<&'de str, RawEntry<'de>>()? {
                    entries.push(entry);
                    pacer.tick();
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// The batch in `input`, or `None` when the tree path must decide.
pub(super) fn parse(input: &[u8], default_ttl: Option<u64>) -> Option<Vec<Incoming>> {
    let Entries(entries) = serde_json::from_slice(input).ok()?;
    if entries.len() > 1 {
        // The tree keeps the last of duplicate keys: leave that to it.
        let mut seen = HashSet::with_capacity(entries.len());
        if !entries.iter().all(|(key, _)| seen.insert(*key)) {
            return None;
        }
    }
    let mut pacer = Pacer::default();
    entries
        .into_iter()
        .map(|(key, entry)| {
            pacer.tick();
            incoming(key, &entry, default_ttl)
        })
        .collect()
}

/// The write of one entry, if this path handles it.
fn incoming(key: &str, entry: &RawEntry<'_>, default_ttl: Option<u64>) -> Option<Incoming> {
    check_key(key).ok()?;
    let value = entry.value?;
    let ts = match entry.ts {
        Some(ts) => Some(integer(ts)?),
        None => None,
    };
    let ttl = match entry.ttl {
        Some(ttl) if ttl.get() != "null" => Some(integer(ttl)?),
        _ => None,
    };
    let deleted = match entry.deleted.map(RawValue::get) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return None,
    };
    if deleted {
        return Some(Incoming {
            key: key.to_owned(),
            value: None,
            ts,
            ttl: None,
        });
    }
    Some(Incoming {
        key: key.to_owned(),
        value: Some(compact(value)?),
        ts,
        ttl: ttl.or(default_ttl),
    })
}

/// A non-negative integer written plainly.
fn integer(raw: &RawValue) -> Option<u64> {
    let text = raw.get();
    if text.bytes().all(|byte| byte.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// The compact JSON of `value`, as serializing its parsed tree prints it.
fn compact(value: &RawValue) -> Option<Vec<u8>> {
    let text = value.get();
    if is_canonical(text) {
        return Some(text.as_bytes().to_vec());
    }
    let tree: Value = serde_json::from_str(text).ok()?;
    serde_json::to_vec(&tree).ok()
}

/// Whether `text` (one JSON value, as the parser accepted it) prints the same once
/// parsed: literals, strings without escapes (which then hold no quote, backslash or
/// control character), and integers of up to 18 digits other than `-0`.
fn is_canonical(text: &str) -> bool {
    match text.as_bytes() {
        b"true" | b"false" | b"null" => true,
        [b'"', ..] => !text.contains('\\'),
        [b'-', b'0'] => false,
        [b'-', digits @ ..] | digits => {
            !digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_batch, parse_tree};

    /// Both paths give the same writes (or both refuse).
    #[test]
    fn the_fast_path_agrees_with_the_tree() {
        let inputs = [
            r#"{"a": {"value": "plain"}}"#,
            r#"{"a": {"value": "café ☕"}}"#,
            r#"{"a": {"value": "esc\"aped\n\u0041\/"}}"#,
            r#"{"a": {"value": 12}, "b": {"value": -7}, "c": {"value": 0}}"#,
            r#"{"a": {"value": -0}}"#,
            r#"{"a": {"value": 1.50}, "b": {"value": 1e3}, "c": {"value": 123456789012345678901}}"#,
            r#"{"a": {"value": { "nested" : [1, 2 , {"x": null}] }}}"#,
            r#"{"a": {"value": true, "ttl": 5, "ts": 99}, "b": {"value": null, "ttl": null}}"#,
            r#"{"a": {"value": 1, "deleted": true, "ts": 4}}"#,
            r#"{"a": {"value": 1, "deleted": false}}"#,
            r#"{"a": {"value": 1, "deleted": null}}"#,
            r#"{"a": {"value": 1, "deleted": "yes"}}"#,
            r#"{"a": {"value": [1, 2]}, "b": {"value": -12}, "c": {"value": null}}"#,
            r#"{"a": {"value": 007}}"#,
            r#"{"a": {"value": "x"}} trailing"#,
            r#"{"a": {"value": 1}, "a": {"value": 2}}"#,
            r#"{"k\u0065y": {"value": 1}}"#,
            r#"{"a": {"value": 1, "value": 2}}"#,
            r#"{"a": {"value": 1, "ts": null}}"#,
            r#"{"a": {"value": 1, "ts": 1.0}}"#,
            r#"{"a": {"value": 1, "ttl": -1}}"#,
            r#"{"a": {"value": 1, "tll": 5}}"#,
            r#"{"a": {"ttl": 5}}"#,
            r#"{"a": 1}"#,
            r#"{"": {"value": 1}}"#,
            r#"[1]"#,
            "{",
            "",
            "{}",
        ];
        for input in inputs {
            for ttl in [None, Some(1000)] {
                let fast = parse_batch(input.as_bytes(), ttl);
                let tree = parse_tree(input.as_bytes(), ttl);
                match (&fast, &tree) {
                    (Ok(fast), Ok(tree)) => assert_eq!(fast, tree, "{input}"),
                    (Err(fast), Err(tree)) => {
                        assert_eq!(fast.to_string(), tree.to_string(), "{input}")
                    }
                    _ => panic!("{input}: fast {fast:?}, tree {tree:?}"),
                }
            }
        }
    }

    #[test]
    fn plain_batches_take_the_fast_path() {
        let input = br#"{"a": {"value": "x", "ts": 5, "ttl": 10}, "b": {"value": 3}}"#;
        let batch = super::parse(input, None).expect("the fast path gave up");
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].value.as_deref(), Some(&br#""x""#[..]));
        assert_eq!((batch[0].ts, batch[0].ttl), (Some(5), Some(10)));
        assert!(super::parse(br#"{"a": {"value": 1.5}}"#, None).is_some());
        assert!(super::parse(br#"{"a": {"value": 1}, "a": {"value": 2}}"#, None).is_none());
    }
}
