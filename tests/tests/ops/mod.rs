//! Helpers of the `ops_*` tests: reading Prometheus metrics and Server-Sent Events.
#![allow(dead_code)]

use std::{collections::BTreeMap, time::Duration};

use c19_tests::{Node, http};
use serde_json::Value;

/// Generous: the machine running the tests may be busy.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The node's `/metrics` text.
pub async fn metrics_text(node: &Node) -> String {
    let response = http()
        .get(node.telemetry_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of the sample `name{labels}` in Prometheus text, when present. `labels`
/// must be all of the sample's labels, in any order.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((series_name, rest)) => (series_name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if series_name != name || parse_labels(series_labels) != wanted {
                return None;
            }
            value.parse().ok()
        })
}

/// `a="x",b="y"` as a map (label values here hold no commas or quotes).
fn parse_labels(labels: &str) -> BTreeMap<&str, &str> {
    labels
        .split(',')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key, value.trim_matches('"')))
        })
        .collect()
}

/// The node's metric `name{labels}` now (0 when absent, as Prometheus counters start).
pub async fn metric(node: &Node, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(&metrics_text(node).await, name, labels).unwrap_or(0.0)
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    /// `id:`.
    pub id: Option<String>,
    /// `event:` (`None`: a plain message).
    pub event: Option<String>,
    /// The data lines, joined.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|error| panic!("{error}: {self:?}"))
    }

    /// The point of the state's history in the id (`<run>-<point>`).
    pub fn seq(&self) -> u64 {
        let id = self.id.as_deref().unwrap();
        id.rsplit_once('-').unwrap().1.parse().unwrap()
    }
}

/// Splits complete events off the front of `buf`; comments (keep-alives) are skipped.
pub fn take_events(buf: &mut Vec<u8>) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while let Some(end) = buf.windows(2).position(|pair| pair == b"\n\n") {
        let block: Vec<u8> = buf.drain(..end + 2).collect();
        let mut event = SseEvent::default();
        let mut data = Vec::new();
        for line in String::from_utf8(block).unwrap().lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        if !data.is_empty() || event.event.is_some() {
            event.data = data.join("\n");
            events.push(event);
        }
    }
    events
}

/// An open event stream.
pub struct Events {
    response: reqwest::Response,
    buf: Vec<u8>,
    ready: std::collections::VecDeque<SseEvent>,
}

impl Events {
    /// Opens `url` (resuming after `last_event_id` when given).
    pub async fn open(url: &str, last_event_id: Option<u64>) -> Self {
        // A client without the harness's 5 s timeout: streams stay open.
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut request = client.get(url);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buf: Vec::new(),
            ready: Default::default(),
        }
    }

    /// The next event, `None` when the stream ended; panics after [`DEADLINE`].
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        let next = async {
            loop {
                if let Some(event) = self.ready.pop_front() {
                    return Some(event);
                }
                match self.response.chunk().await {
                    Ok(Some(chunk)) => {
                        self.buf.extend_from_slice(&chunk);
                        self.ready.extend(take_events(&mut self.buf));
                    }
                    Ok(None) | Err(_) => return None,
                }
            }
        };
        tokio::time::timeout(DEADLINE, next)
            .await
            .expect("no event before the deadline")
    }
}
