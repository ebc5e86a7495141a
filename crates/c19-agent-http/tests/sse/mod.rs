//! A small Server-Sent Events client for tests: reads one event at a time from a
//! streaming response, with a deadline.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

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

    /// The point of the state's history in the id (`<run>-<point>`).
    pub fn seq(&self) -> u64 {
        let id = self.id.as_deref().unwrap();
        id.rsplit_once('-').unwrap().1.parse().unwrap()
    }
}

/// An open event stream.
pub struct Events {
    response: reqwest::Response,
    buf: Vec<u8>,
}

impl Events {
    /// Opens `url` with an optional `Last-Event-ID`; asserts it is an event stream.
    pub async fn open(client: &reqwest::Client, url: &str, last_event_id: Option<u64>) -> Self {
        let mut request = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        Self::from_request(request).await
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
