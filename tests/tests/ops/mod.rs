//! Helpers of the `ops_*` tests: reading Prometheus metrics and Server-Sent Events.
#![allow(dead_code, unused_imports)]

use std::{collections::BTreeMap, time::Duration};

use c19_tests::{Node, http};

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

/// Server-Sent Events: the reader of `c19-testkit`.
pub use c19_tests::sse::{SseEvent, take_events};

/// An open event stream whose events must come within [`DEADLINE`].
pub struct Events(c19_tests::sse::SseStream);

impl Events {
    /// Opens `url` (resuming after `last_event_id` when given), with a client without
    /// the harness's 5 s timeout: streams stay open.
    pub async fn open(url: &str, last_event_id: Option<u64>) -> Self {
        Self(c19_tests::sse::SseStream::connect(url, last_event_id).await)
    }

    /// The next event, `None` when the stream ended; panics after [`DEADLINE`].
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        self.0.next_within(DEADLINE).await
    }
}
