//! Arrival times of writes, seen through each agent's watch (`GET /?watch=true&prefix=P`):
//! one event stream per agent, and the moment an agent sends the event of a change is
//! the moment it holds it.
//!
//! Polling every agent instead rounds each arrival up to the next poll and, at 40 agents
//! polled every 5 ms, loads the machine with 8,000 reads a second while a change spreads:
//! the figure would measure its own load.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::{sync::mpsc, task::JoinSet};

use super::error::{Error, Result};
use crate::sse;

/// How long an agent may take to answer the watch request.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// The most an event may hold before it ends: past it the stream counts as broken.
const MAX_PENDING: usize = 1 << 20;
/// Events read but not yet looked at, over all agents.
const QUEUE: usize = 1 << 16;

/// What a stream reports.
#[derive(Debug)]
enum Seen {
    /// Agent `agent` sent the change of `key` to `value` (`None`: deleted) at `at`.
    Change {
        agent: usize,
        key: String,
        value: Option<Value>,
        at: Instant,
    },
    /// Agent `agent`'s stream broke or ended.
    Broken { agent: usize, why: String },
}

/// One open watch per agent.
#[derive(Debug)]
pub struct Watchers {
    agents: usize,
    seen: mpsc::Receiver<Seen>,
    readers: JoinSet<()>,
}

impl Watchers {
    /// Opens a watch of `prefix` on every agent (base URLs); fails when one does not
    /// answer with an event stream.
    pub async fn open(agents: &[String], prefix: &str) -> Result<Self> {
        // No whole-request timeout: a watch stays open as long as the scenario runs.
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(Error::http("building the watch client"))?;
        let (sender, seen) = mpsc::channel(QUEUE);
        let mut readers = JoinSet::new();
        for (agent, base) in agents.iter().enumerate() {
            let what = format!("watching {base}");
            let url = reqwest::Url::parse_with_params(
                &format!("{base}/"),
                [("watch", "true"), ("prefix", prefix)],
            )
            .map_err(|error| Error::Tool(format!("{what}: {error}")))?;
            let request = client.get(url).header("accept", "text/event-stream").send();
            let response = tokio::time::timeout(OPEN_TIMEOUT, request)
                .await
                .map_err(|_| Error::Timeout(format!("{what}: no answer within {OPEN_TIMEOUT:?}")))?
                .map_err(Error::http(what.clone()))?;
            if !response.status().is_success() {
                return Err(Error::Status {
                    what,
                    status: response.status().as_u16(),
                    body: response.text().await.unwrap_or_default(),
                });
            }
            readers.spawn(read(agent, response, sender.clone()));
        }
        Ok(Self {
            agents: agents.len(),
            seen,
            readers,
        })
    }

    /// Waits until every agent has sent the change of `key` to `expected` (`None`: its
    /// delete); the time from `start` until the last one did, or `None` past `deadline`
    /// (from `start`). Changes of other keys are passed over.
    pub async fn everywhere(
        &mut self,
        key: &str,
        expected: &Option<Value>,
        start: Instant,
        deadline: Duration,
    ) -> Result<Option<Duration>> {
        let mut arrived: Vec<Option<Instant>> = vec![None; self.agents];
        let mut missing = self.agents;
        while missing > 0 {
            let left = deadline.saturating_sub(start.elapsed());
            let seen = match tokio::time::timeout(left, self.seen.recv()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(Error::Tool("every watch ended".to_owned())),
                Ok(Some(seen)) => seen,
            };
            match seen {
                Seen::Broken { agent, why } => {
                    return Err(Error::Tool(format!("the watch of agent {agent}: {why}")));
                }
                Seen::Change {
                    agent,
                    key: changed,
                    value,
                    at,
                } => {
                    if changed == key
                        && value == *expected
                        && let Some(slot @ None) = arrived.get_mut(agent)
                    {
                        *slot = Some(at);
                        missing -= 1;
                    }
                }
            }
        }
        Ok(arrived
            .into_iter()
            .flatten()
            .max()
            .map(|last| last.saturating_duration_since(start)))
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        self.readers.abort_all();
    }
}

/// Reads agent `agent`'s stream into `sender` until it ends or nobody listens.
async fn read(agent: usize, mut response: reqwest::Response, sender: mpsc::Sender<Seen>) {
    let mut pending = Vec::new();
    let why = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                pending.extend_from_slice(&chunk);
                let at = Instant::now();
                let events = match take_events(&mut pending) {
                    Ok(events) => events,
                    Err(why) => break why,
                };
                for (key, value) in events {
                    let seen = Seen::Change {
                        agent,
                        key,
                        value,
                        at,
                    };
                    if sender.send(seen).await.is_err() {
                        return;
                    }
                }
                if pending.len() > MAX_PENDING {
                    break format!("an event longer than {MAX_PENDING} bytes");
                }
            }
            Ok(None) => break "the stream ended".to_owned(),
            Err(error) => break format!("reading the stream: {error}"),
        }
    };
    let _ = sender.send(Seen::Broken { agent, why }).await;
}

/// A change in an event: its key and new value (`None`: deleted).
type Change = (String, Option<Value>);

/// Takes the complete events off the front of `pending` (see [`sse::take_events`]),
/// leaving an incomplete one; comments (keep-alives) carry no change. An `error` event,
/// or data that is not a change, is an error.
fn take_events(pending: &mut Vec<u8>) -> Result<Vec<Change>, String> {
    sse::take_events(pending)
        .into_iter()
        .filter(|event| event.event.as_deref() == Some("error") || !event.data.is_empty())
        .map(|event| match event.event.as_deref() {
            Some("error") => Err(format!("the agent ended the watch: {}", event.data)),
            _ => change(&event.data),
        })
        .collect()
}

fn change(data: &str) -> Result<Change, String> {
    let mut event: Value =
        serde_json::from_str(data).map_err(|error| format!("event data `{data}`: {error}"))?;
    let Some(Value::String(key)) = event.get_mut("key").map(Value::take) else {
        return Err(format!("event data without a key: `{data}`"));
    };
    if event.get("deleted") == Some(&Value::Bool(true)) {
        return Ok((key, None));
    }
    Ok((key, event.get_mut("value").map(Value::take)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_deletes_are_taken_and_keep_alives_skipped() {
        let mut pending = concat!(
            ": keep-alive\n\n",
            "id: r-7\ndata: {\"key\":\"a\",\"value\":\"x\",\"ts\":5,\"ttl\":null}\n\n",
            "id: r-8\ndata: {\"key\":\"b\",\"value\":null,\"ts\":9,\"ttl\":0,\"deleted\":true}\n\n",
            "id: r-9\ndata: {\"key\""
        )
        .as_bytes()
        .to_vec();
        let changes = take_events(&mut pending).unwrap();
        assert_eq!(
            changes,
            vec![
                ("a".to_owned(), Some(Value::from("x"))),
                ("b".to_owned(), None)
            ]
        );
        assert_eq!(pending, b"id: r-9\ndata: {\"key\"");
    }

    #[test]
    fn an_error_event_or_data_that_is_not_a_change_is_an_error() {
        let mut pending = b"event: error\ndata: lagged behind\n\n".to_vec();
        let error = take_events(&mut pending).unwrap_err();
        assert!(error.contains("lagged behind"), "{error}");
        let mut pending = b"data: [1, 2]\n\n".to_vec();
        let error = take_events(&mut pending).unwrap_err();
        assert!(error.contains("without a key"), "{error}");
        let mut pending = b"data: {not json\n\n".to_vec();
        assert!(take_events(&mut pending).is_err());
    }
}
