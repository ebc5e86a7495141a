//! Why the Default state refuses input.
//!
//! Every message names the problem, and the key when there is one, so that the user
//! who sent a batch can fix it; the HTTP agent sends them back as `{"error": ...}`.

use c19_core::StateError;

/// Result with this crate's [`Error`] as default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Keys longer than this are refused: a key travels in URLs and in every exchange.
pub const MAX_KEY_LEN: usize = 64 * 1024;

/// How many characters of a key an error message quotes.
const QUOTED_KEY_CHARS: usize = 80;

/// A batch the state refuses. Nothing of a refused batch is applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input holds nothing but whitespace.
    #[error("the body is empty")]
    Empty,
    /// The input is not valid JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The input is JSON but not an object.
    #[error("the body must be a JSON object mapping keys to values")]
    NotAnObject,
    /// One entry of the batch is malformed.
    #[error("key {}: {problem}", quote_key(.key))]
    Entry {
        /// The offending key.
        key: String,
        /// What is wrong with its entry.
        problem: EntryProblem,
    },
}

/// What is wrong with one entry of a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    /// The key is the empty string.
    #[error("keys must not be empty")]
    EmptyKey,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    #[error("keys must be at most {MAX_KEY_LEN} bytes long")]
    KeyTooLong,
    /// The entry is not an object.
    #[error(r#"the entry must be an object like {{"value": ..., "ttl": ...}}"#)]
    NotAnObject,
    /// The entry has no `value` field.
    #[error(r#"missing field "value""#)]
    MissingValue,
    /// `ts` is not a non-negative integer.
    #[error(r#""ts" must be a non-negative integer (milliseconds since the Unix epoch)"#)]
    BadTs,
    /// `ttl` is neither a non-negative integer nor null.
    #[error(r#""ttl" must be a non-negative integer (milliseconds) or null"#)]
    BadTtl,
    /// `deleted` is not a boolean.
    #[error(r#""deleted" must be true or false"#)]
    BadDeleted,
    /// `ts` is further in the future than `max_clock_skew` allows (agent API writes
    /// only: entries from peers are never refused for their `ts`).
    #[error(
        r#""ts" is {ahead_ms} ms in the future, more than max_clock_skew ({max_clock_skew} ms) allows; leave "ts" out to stamp the write with this agent's clock"#
    )]
    TsInFuture {
        /// How far ahead of this agent's clock `ts` is, in ms.
        ahead_ms: u64,
        /// The limit, `max_clock_skew` in ms.
        max_clock_skew: u64,
    },
    /// The entry has a field this state does not know (often a typo).
    #[error(r#"unknown field {0:?}; the fields are "value", "ts", "ttl" and "deleted""#)]
    UnknownField(String),
}

impl Error {
    /// The message for data that came from `source` (a seed file) rather than a request
    /// body.
    pub fn describe_source(&self) -> String {
        match self {
            Self::Empty => "the data is empty".to_owned(),
            Self::NotJson(error) => format!("the data is not JSON: {error}"),
            Self::NotAnObject => "the data must be a JSON object mapping keys to values".to_owned(),
            Self::Entry { .. } => self.to_string(),
        }
    }
}

impl From<Error> for StateError {
    fn from(error: Error) -> Self {
        StateError::Invalid(error.to_string())
    }
}

/// The key as a JSON string, shortened when long, for error messages.
fn quote_key(key: &str) -> String {
    let shown: String = key.chars().take(QUOTED_KEY_CHARS).collect();
    let quoted = serde_json::to_string(&shown).unwrap_or_else(|_| format!("{shown:?}"));
    if shown.len() < key.len() {
        format!("{quoted}... ({} bytes)", key.len())
    } else {
        quoted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_key_and_the_problem() {
        let error = Error::Entry {
            key: "cat".into(),
            problem: EntryProblem::MissingValue,
        };
        assert_eq!(error.to_string(), r#"key "cat": missing field "value""#);
        let error = Error::Entry {
            key: "dog".into(),
            problem: EntryProblem::UnknownField("tll".into()),
        };
        assert!(
            error
                .to_string()
                .starts_with(r#"key "dog": unknown field "tll""#),
            "{error}"
        );
    }

    #[test]
    fn long_keys_are_shortened_in_messages() {
        let key = "k".repeat(1000);
        let error = Error::Entry {
            key,
            problem: EntryProblem::BadTs,
        }
        .to_string();
        assert!(error.len() < 300, "{error}");
        assert!(error.contains("(1000 bytes)"), "{error}");
    }
}
