//! A small Server-Sent Events client for tests: reads one event at a time from a
//! `text/event-stream` response (an agent's watch), with a deadline.
//!
//! ```no_run
//! # async fn example() {
//! use c19_testkit::sse::SseStream;
//!
//! let client = c19_testkit::http();
//! let mut events = SseStream::open(&client, "http://127.0.0.1:3097/?watch=true", None).await;
//! let event = events.next_event().await.expect("the stream ended");
//! assert_eq!(event.json()["key"], "cat");
//! # }
//! ```
//!
//! Like the rest of this crate it panics on failure (a status other than 200, a content
//! type other than `text/event-stream`, no event before the deadline): that is a failed
//! test.

use std::time::Duration;

use serde_json::Value;

/// One event of the stream.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    /// The `id:` field.
    pub id: Option<String>,
    /// The `event:` field (`None`: a plain message).
    pub event: Option<String>,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

impl SseEvent {
    /// The data parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|error| panic!("{error}: {self:?}"))
    }

    /// The point of the state's history in the id (`<run>-<point>`, as the Default
    /// agent writes it). Panics when the event has no such id.
    pub fn seq(&self) -> u64 {
        let id = self.id.as_deref().unwrap();
        id.rsplit_once('-').unwrap().1.parse().unwrap()
    }
}

/// An open event stream.
pub struct SseStream {
    response: reqwest::Response,
    buf: Vec<u8>,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream")
            .field("url", self.response.url())
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl SseStream {
    /// Opens `url` with an optional `Last-Event-ID`; asserts it is an event stream.
    pub async fn open(client: &reqwest::Client, url: &str, last_event_id: Option<u64>) -> Self {
        let mut request = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        Self::from_request(request).await
    }

    /// Opens `url` as [`SseStream::open`] does, with a client of its own: one without the
    /// 5 s timeout of [`crate::http`], so the stream may stay open as long as the test
    /// needs.
    pub async fn connect(url: &str, last_event_id: Option<u64>) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Self::open(&client, url, last_event_id).await
    }

    /// Sends `request` (a `GET` of a watch, with whatever headers it needs); asserts the
    /// answer is an event stream.
    pub async fn from_request(request: reqwest::RequestBuilder) -> Self {
        let response = request.send().await.unwrap();
        let url = response.url().to_string();
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buf: Vec::new(),
        }
    }

    /// The next event (keep-alive comments skipped), or `None` when the stream ended.
    /// Panics if nothing comes within `deadline`.
    pub async fn next_within(&mut self, deadline: Duration) -> Option<SseEvent> {
        tokio::time::timeout(deadline, self.next())
            .await
            .unwrap_or_else(|_| {
                let buffered = String::from_utf8_lossy(&self.buf);
                panic!("no event within {deadline:?}; buffered {buffered:?}")
            })
    }

    /// The next event within 10 s.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        self.next_within(Duration::from_secs(10)).await
    }

    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|pair| pair == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                if let Some(event) = parse(std::str::from_utf8(&block).unwrap()) {
                    return Some(event);
                }
                continue;
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

/// Splits the complete events off the front of `buf` (raw bytes of a stream read some
/// other way), leaving an incomplete one there; comments (keep-alives) are skipped.
/// Never panics: bytes that are not UTF-8 are replaced, as a browser's `EventSource`
/// does, so tools that must not panic (the benchmarks) read streams with it too.
pub fn take_events(buf: &mut Vec<u8>) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while let Some(end) = buf.windows(2).position(|pair| pair == b"\n\n") {
        let block: Vec<u8> = buf.drain(..end + 2).collect();
        events.extend(parse(&String::from_utf8_lossy(&block)));
    }
    events
}

/// Parses one block; `None` for comments only.
fn parse(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent::default();
    let mut data = Vec::new();
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "" => {}
            "id" => event.id = Some(value.to_owned()),
            "event" => event.event = Some(value.to_owned()),
            "data" => data.push(value.to_owned()),
            _ => {}
        }
    }
    if data.is_empty() && event.event.is_none() {
        return None;
    }
    event.data = data.join("\n");
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_off_and_comments_skipped() {
        let mut buf = b": keep-alive\n\nid: r-7\ndata: {\"key\":\"cat\"}\n\nevent: error\ndata: a\ndata: b\n\nid: r-8\nda"
            .to_vec();
        let events = take_events(&mut buf);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            (events[0].seq(), events[0].json()["key"].clone()),
            (7, "cat".into())
        );
        assert_eq!(
            (events[1].event.as_deref(), events[1].data.as_str()),
            (Some("error"), "a\nb")
        );
        assert_eq!(buf, b"id: r-8\nda");
    }
}
