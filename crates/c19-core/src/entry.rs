//! The data format of the `Default` state, which the HTTP agent's API speaks.
//!
//! Layers pass data as bytes and only the state interprets them, but the `Default`
//! state, the HTTP agent and every tool that talks to them share this format, so it is
//! written down here, once, as types.
//!
//! # A write
//!
//! A batch is a JSON object of keys to [`Write`]s: `{"cat": {"value": "garfield",
//! "ttl": 20000}}`. `value` is any JSON; `ttl` (ms, relative to `ts`) is optional and
//! falls back to the state's default; `ts` (ms since the Unix epoch) is optional and
//! set by the agent that takes the write. Writing `"deleted": true` deletes.
//!
//! # A stored entry
//!
//! What `GET /<key>` returns, what diffs and pushes carry (a JSON object of keys to
//! entries) and what subscribers see is an [`Entry`]:
//! `{"value":"garfield","ts":1603548753122,"ttl":null}`. A tombstone is
//! `{"value":null,"ts":...,"ttl":0,"deleted":true}`; a value that expired while someone
//! watched is reported as `{"value":null,"ts":...,"ttl":...,"expired":true}`.
//!
//! # Merging
//!
//! Between two entries of one key the one with the greater `ts` wins; on equal `ts` a
//! tombstone wins, then the greater entry bytes, so every agent picks the same one
//! whatever order entries arrive in.
//!
//! # A change event
//!
//! A watch stream's event is the entry with the key first ([`KeyedEntry`]):
//! `{"key":"cat","value":"garfield","ts":1603548753122,"ttl":null}`.

use serde::{Deserialize, Serialize, ser::SerializeMap};
use serde_json::value::RawValue;

/// One key's write in a batch; see the [module docs](self).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Write {
    /// The value: any JSON.
    pub value: Box<RawValue>,
    /// Milliseconds the value lives after `ts`; `None`: the state's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// Milliseconds since the Unix epoch; `None`: the agent's clock when it takes the
    /// write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<u64>,
    /// A delete.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
}

/// One key's stored entry; see the [module docs](self).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The value: any JSON (`null` for a tombstone or an expired value).
    pub value: Box<RawValue>,
    /// When it was written, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// Milliseconds it lives after `ts`; `None`: for ever.
    pub ttl: Option<u64>,
    /// A tombstone: the key was deleted at `ts`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// Only in change events: the value expired and was swept.
    #[serde(default, skip_serializing_if = "is_false")]
    pub expired: bool,
}

fn is_false(flag: &bool) -> bool {
    !*flag
}

impl Entry {
    /// Parses an entry from its JSON bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// An entry with its key, as a change event carries it: the key first, then the
/// entry's fields.
#[derive(Debug, Clone, Copy)]
pub struct KeyedEntry<'a> {
    /// The key.
    pub key: &'a str,
    /// The entry.
    pub entry: &'a Entry,
}

impl Serialize for KeyedEntry<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entry = self.entry;
        let fields = 4 + usize::from(entry.deleted) + usize::from(entry.expired);
        let mut map = serializer.serialize_map(Some(fields))?;
        map.serialize_entry("key", self.key)?;
        map.serialize_entry("value", &entry.value)?;
        map.serialize_entry("ts", &entry.ts)?;
        map.serialize_entry("ttl", &entry.ttl)?;
        if entry.deleted {
            map.serialize_entry("deleted", &true)?;
        }
        if entry.expired {
            map.serialize_entry("expired", &true)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_their_wire_form() {
        for text in [
            r#"{"value":"garfield","ts":5,"ttl":null}"#,
            r#"{"value":{"a":[1,2]},"ts":7,"ttl":100}"#,
            r#"{"value":null,"ts":9,"ttl":0,"deleted":true}"#,
            r#"{"value":null,"ts":9,"ttl":3,"expired":true}"#,
        ] {
            let entry = Entry::from_slice(text.as_bytes()).unwrap();
            assert_eq!(serde_json::to_string(&entry).unwrap(), text);
        }
    }

    #[test]
    fn an_event_puts_the_key_first() {
        let entry = Entry::from_slice(br#"{"value":"garfield","ts":5,"ttl":null}"#).unwrap();
        let event = KeyedEntry {
            key: "cat \"tom\"",
            entry: &entry,
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"key":"cat \"tom\"","value":"garfield","ts":5,"ttl":null}"#
        );
    }

    #[test]
    fn a_write_needs_only_a_value() {
        let write: Write = serde_json::from_str(r#"{"value": 3}"#).unwrap();
        assert_eq!((write.ttl, write.ts, write.deleted), (None, None, false));
        assert!(serde_json::from_str::<Write>(r#"{"ttl": 3}"#).is_err());
    }
}
