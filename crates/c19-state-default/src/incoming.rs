//! Parsing a batch into validated writes, before anything is applied.

use serde_json::Value;

use crate::error::{EntryProblem, Error, MAX_KEY_LEN, Result};

mod fast;

/// One validated write of a batch, not applied yet.
#[derive(Debug, PartialEq, Eq)]
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
///
/// Most batches take [`fast::parse`], which borrows keys and values from the input
/// instead of building a JSON tree; whatever it does not handle exactly as
/// [`parse_tree`] does (escaped keys, duplicates, floats, nested values, any error)
/// goes through [`parse_tree`], which also words every error.
pub(crate) fn parse_batch(input: &[u8], default_ttl: Option<u64>) -> Result<Vec<Incoming>> {
    match fast::parse(input, default_ttl) {
        Some(batch) => Ok(batch),
        None => parse_tree(input, default_ttl),
    }
}

/// [`parse_batch`] through a [`Value`] tree.
fn parse_tree(input: &[u8], default_ttl: Option<u64>) -> Result<Vec<Incoming>> {
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
}
