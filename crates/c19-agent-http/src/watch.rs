//! Change subscriptions: `GET /?watch=true&prefix=P` and `GET /<key>?watch=true` stream
//! Server-Sent Events, one per change, from local writes and from peers alike.
//!
//! Each event's `id` is the change's point in the state's history and its data is the
//! entry with the key added, `{"key":"cat","value":"garfield","ts":...,"ttl":null}`
//! (a deletion carries `"deleted":true`, an expiry swept by this agent's state
//! `"expired":true` with `"value":null`). A client that reconnects with the
//! `Last-Event-ID` header (or `last_event_id=N`) first gets what changed after `N`, the
//! newest entry of each key, then live changes: nothing still held is missed.
//!
//! The feed is a bounded ring in the state: writers never wait for a subscriber. One
//! that falls more than the state's `watch_buffer` changes behind is sent a final
//! `event: error` (its `id` is where to resume) and the stream ends.

use std::{collections::VecDeque, convert::Infallible, time::Duration};

use axum::{
    http::{HeaderValue, header::HeaderName},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use c19_core::{
    Change, Changes, SafeState, Shutdown,
    entry::{Entry, KeyedEntry},
};
use futures::{Stream, stream};
use serde_json::{Map, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::{error::Result, event_id};

/// Marks a response that starts a long-lived stream (a watch): the connection serving
/// it is then exempt from the read side of the idle timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Streaming;

/// Changes replayed per call to the state.
const REPLAY_PAGE: usize = 256;

/// How often an idle stream sends a comment, so proxies and clients see it is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Which changes a subscriber wants.
#[derive(Debug, Clone)]
pub(crate) enum Filter {
    /// Keys starting with these bytes (all keys for the empty prefix).
    Prefix(Vec<u8>),
    /// Exactly this key.
    Key(Vec<u8>),
}

impl Filter {
    fn matches(&self, key: &[u8]) -> bool {
        match self {
            Self::Prefix(prefix) => key.starts_with(prefix),
            Self::Key(wanted) => key == wanted.as_slice(),
        }
    }
}

/// The event stream of the changes `filter` selects, after point `resume` first when
/// given, until `shutdown`.
pub(crate) fn watch(
    state: SafeState,
    filter: Filter,
    resume: Option<u64>,
    shutdown: Shutdown,
) -> Result<Response> {
    let watcher = Watcher::new(state, filter, resume, shutdown)?;
    let mut response = Sse::new(events(watcher))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Proxies such as nginx would otherwise buffer the stream.
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// What a watcher sends next.
#[derive(Debug, PartialEq, Eq)]
enum Item {
    /// A change the subscriber wants.
    Change(Change),
    /// The subscriber fell `missed` changes behind; it can resume after `last`.
    Overflow { missed: u64, last: u64 },
}

impl Item {
    fn into_event(self) -> Event {
        match self {
            Self::Change(change) => Event::default()
                .id(event_id::format(change.seq))
                .data(data(&change)),
            Self::Overflow { missed, last } => {
                let message = format!(
                    "this watcher fell {missed} changes behind and was dropped (the state's \
                     watch_buffer); reconnect with Last-Event-ID: {id} to resume",
                    id = event_id::format(last)
                );
                let body = serde_json::json!({ "error": message, "last_event_id": event_id::format(last) });
                Event::default()
                    .event("error")
                    .id(event_id::format(last))
                    .data(body.to_string())
            }
        }
    }
}

/// Where one subscriber stands.
struct Watcher {
    state: SafeState,
    filter: Filter,
    live: Changes,
    /// The newest point handled (sent or filtered out): replays resume after it, and
    /// live changes up to it were replayed already.
    last: u64,
    /// Whether missed changes are still being replayed.
    replaying: bool,
    /// Replayed changes not handled yet.
    pending: VecDeque<Change>,
    shutdown: Shutdown,
    done: bool,
}

fn events(watcher: Watcher) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(watcher, |mut watcher| async move {
        let item = watcher.next().await?;
        Some((Ok(item.into_event()), watcher))
    })
}

impl Watcher {
    /// A watcher of the changes `filter` selects, from now on, or after `resume`.
    fn new(
        state: SafeState,
        filter: Filter,
        resume: Option<u64>,
        shutdown: Shutdown,
    ) -> Result<Self> {
        // Subscribe before replaying, so no change falls between the two.
        let live = state.subscribe()?;
        let head = state.head();
        // A point beyond the head comes from before this agent restarted (points start
        // again at 0): only a replay of everything misses nothing.
        let resume = resume.map(|point| if point > head { 0 } else { point });
        Ok(Self {
            last: resume.unwrap_or(head),
            replaying: resume.is_some(),
            state,
            filter,
            live,
            pending: VecDeque::new(),
            shutdown,
            done: false,
        })
    }

    /// The next item to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Item> {
        loop {
            if self.done || self.shutdown.is_cancelled() {
                return None;
            }
            if let Some(change) = self.pending.pop_front() {
                if let Some(item) = self.handle(change) {
                    return Some(item);
                }
                continue;
            }
            if self.replaying {
                self.replay_page().await;
                continue;
            }
            let received = tokio::select! {
                () = self.shutdown.cancelled() => return None,
                received = self.live.recv() => received,
            };
            match received {
                Ok(change) if change.seq <= self.last => {}
                Ok(change) => {
                    if let Some(item) = self.handle(change) {
                        return Some(item);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    self.done = true;
                    let last = self.last;
                    return Some(Item::Overflow { missed, last });
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Loads the next page of missed changes, or ends the replay.
    async fn replay_page(&mut self) {
        match self.state.changes_since(self.last, REPLAY_PAGE) {
            Ok(page) if !page.is_empty() => self.pending.extend(page),
            Ok(_) => self.replaying = false,
            Err(error) => {
                tracing::warn!("cannot replay changes to a watcher: {error}");
                self.replaying = false;
            }
        }
        // A replay that matches nothing must not hold this worker for long.
        tokio::task::yield_now().await;
    }

    /// The item for `change`, if the subscriber wants it.
    fn handle(&mut self, change: Change) -> Option<Item> {
        self.last = self.last.max(change.seq);
        self.filter
            .matches(&change.key)
            .then_some(Item::Change(change))
    }
}

/// The event data of `change`: its entry with `"key"` added first
/// ([`c19_core::entry::KeyedEntry`]). An entry of another state's format is kept as it
/// is: a JSON object gets `"key"` as its first field, anything else is wrapped as
/// `{"key":...,"entry":...}`.
fn data(change: &Change) -> String {
    let key = String::from_utf8_lossy(&change.key);
    if let Ok(entry) = Entry::from_slice(&change.entry) {
        let event = KeyedEntry {
            key: &key,
            entry: &entry,
        };
        if let Ok(text) = serde_json::to_string(&event) {
            return text;
        }
    }
    let event = match serde_json::from_slice::<Value>(&change.entry) {
        Ok(Value::Object(fields)) => {
            let mut event = Map::with_capacity(fields.len() + 1);
            event.insert("key".to_owned(), Value::from(key.as_ref()));
            event.extend(fields.into_iter().filter(|(name, _)| name != "key"));
            Value::Object(event)
        }
        Ok(other) => serde_json::json!({ "key": key, "entry": other }),
        Err(_) => serde_json::json!({
            "key": key,
            "entry": String::from_utf8_lossy(&change.entry),
        }),
    };
    event.to_string()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use c19_core::StateConfig;
    use c19_state_default::{DefaultState, DefaultStateConfig};
    use serde_json::json;

    use super::*;

    fn key(item: &Item) -> String {
        match item {
            Item::Change(change) => String::from_utf8(change.key.to_vec()).unwrap(),
            Item::Overflow { .. } => panic!("not a change: {item:?}"),
        }
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_gets_a_final_error_and_resumes_without_a_gap() {
        let config: DefaultStateConfig =
            serde_json::from_value(json!({"watch_buffer": 4})).unwrap();
        let state = config
            .build(&c19_core::LayerContext::new("state", Shutdown::new()))
            .await
            .unwrap();
        state.set(&r#"{"early": {"value": 0}}"#).unwrap();
        let start = state.head();
        let all = Filter::Prefix(Vec::new());
        let mut slow = Watcher::new(state.clone(), all.clone(), None, Shutdown::new()).unwrap();
        // Nobody reads the watcher: the writes still complete.
        for i in 0..10 {
            state
                .set(&format!(r#"{{"k{i}": {{"value": {i}}}}}"#))
                .unwrap();
        }
        let last = match slow.next().await {
            Some(Item::Overflow { missed: 6, last }) => last,
            other => panic!("expected an overflow, got {other:?}"),
        };
        assert_eq!(last, start, "nothing was delivered");
        assert_eq!(slow.next().await, None, "the stream ends after the error");

        let mut resumed = Watcher::new(state.clone(), all, Some(last), Shutdown::new()).unwrap();
        let mut keys = Vec::new();
        for _ in 0..10 {
            keys.push(key(&resumed.next().await.unwrap()));
        }
        let expected: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        assert_eq!(keys, expected);
    }

    #[tokio::test]
    async fn a_replay_page_boundary_loses_nothing() {
        let state = DefaultState::default();
        let state: SafeState = std::sync::Arc::new(state);
        for i in 0..(REPLAY_PAGE * 2 + 3) {
            state
                .set(&format!(r#"{{"k{i:04}": {{"value": {i}}}}}"#))
                .unwrap();
        }
        let only = Filter::Prefix(b"k05".to_vec());
        let mut watcher = Watcher::new(state.clone(), only, Some(0), Shutdown::new()).unwrap();
        let mut keys = Vec::new();
        for _ in 0..15 {
            keys.push(key(&watcher.next().await.unwrap()));
        }
        // k0500..k0514 straddle the second and third pages.
        let expected: Vec<String> = (500..515).map(|i| format!("k{i:04}")).collect();
        assert_eq!(keys, expected);
        // Then live changes.
        state.set(&r#"{"k0599": {"value": "again"}}"#).unwrap();
        assert_eq!(key(&watcher.next().await.unwrap()), "k0599");
    }

    fn change(key: &str, entry: &str) -> Change {
        Change {
            seq: 1,
            key: Bytes::copy_from_slice(key.as_bytes()),
            entry: Bytes::copy_from_slice(entry.as_bytes()),
        }
    }

    #[test]
    fn the_key_is_added_to_the_entry() {
        assert_eq!(
            data(&change("cat", r#"{"value":"garfield","ts":5,"ttl":null}"#)),
            r#"{"key":"cat","value":"garfield","ts":5,"ttl":null}"#
        );
        assert_eq!(
            data(&change(
                "a\"b",
                r#"{"value":null,"ts":9,"ttl":0,"deleted":true}"#
            )),
            r#"{"key":"a\"b","value":null,"ts":9,"ttl":0,"deleted":true}"#
        );
        assert_eq!(data(&change("k", "{}")), r#"{"key":"k"}"#);
        assert_eq!(data(&change("k", "42")), r#"{"key":"k","entry":42}"#);
    }

    #[test]
    fn filters_by_prefix_or_exact_key() {
        let prefix = Filter::Prefix(b"users/".to_vec());
        assert!(prefix.matches(b"users/1"));
        assert!(!prefix.matches(b"user"));
        assert!(Filter::Prefix(Vec::new()).matches(b"anything"));
        let key = Filter::Key(b"users/1".to_vec());
        assert!(key.matches(b"users/1"));
        assert!(!key.matches(b"users/10"));
    }
}
