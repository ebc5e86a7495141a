//! HTTP helpers the scenarios share: reading keys, bulk loading, the peer stats.

use std::{ops::Range, time::Duration};

use serde_json::Value;

use super::error::{Error, Result};

/// The size of every benchmark value as JSON: a string of 58 characters plus quotes,
/// the "~60-byte value" of the issues.
pub const VALUE_BYTES: usize = 60;

/// A ~60-byte value: `tag-<i>-` padded with dots to [`VALUE_BYTES`] as JSON.
pub fn value_text(tag: &str, i: usize) -> String {
    let mut text = format!("{tag}-{i:010}-");
    let wanted = VALUE_BYTES - 2;
    while text.len() < wanted {
        text.push('.');
    }
    text.truncate(wanted);
    text
}

/// The key `i` of a benchmark key set.
pub fn key(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i}")
}

/// A `PUT /` body setting keys `range` of `prefix` to [`value_text`]`(tag, i)`.
pub fn batch_body(prefix: &str, tag: &str, range: Range<usize>) -> Vec<u8> {
    let mut body = String::with_capacity(range.len() * (VALUE_BYTES + 32) + 2);
    body.push('{');
    for i in range {
        if body.len() > 1 {
            body.push(',');
        }
        body.push_str(&format!(
            r#""{}":{{"value":"{}"}}"#,
            key(prefix, i),
            value_text(tag, i)
        ));
    }
    body.push('}');
    body.into_bytes()
}

/// The base URL of a loopback port (`http://127.0.0.1:<port>`).
pub fn base(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The connection layer's counters (`GET /_c19/stats` on the peer port).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// HTTP body bytes sent to peers (pushes and pull answers).
    pub bytes_sent: u64,
    /// HTTP body bytes received from peers.
    pub bytes_received: u64,
}

/// Makes `ring` the process's TLS crypto provider, which reqwest (built without one)
/// needs before any client is built. Safe to call many times.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A keep-alive HTTP client with timeouts fit for bulk requests.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
}

impl Api {
    /// A client: 2 s to connect, 60 s per request (bulk loads are large).
    pub fn new() -> Result<Self> {
        Self::with_timeout(Duration::from_secs(60))
    }

    /// A client: 2 s to connect, `timeout` per request.
    pub fn with_timeout(timeout: Duration) -> Result<Self> {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(Error::http("building the HTTP client"))?;
        Ok(Self { client })
    }

    /// A client around `client`, e.g. one that presents a peer certificate to
    /// agents whose peer port requires TLS.
    pub fn from_client(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `GET <base>/<key>`: the stored `value`, `None` on 404.
    pub async fn value(&self, base: &str, key: &str) -> Result<Option<Value>> {
        let what = format!("GET {base}/{key}");
        let response = self
            .client
            .get(format!("{base}/{key}"))
            .send()
            .await
            .map_err(Error::http(&what))?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => {
                let entry: Value = response.json().await.map_err(Error::http(&what))?;
                Ok(Some(entry["value"].clone()))
            }
            status => Err(status_error(what, status, response).await),
        }
    }

    /// `PUT <url>` with a JSON `body`; succeeds on 2xx.
    pub async fn put(&self, url: &str, body: Vec<u8>) -> Result<()> {
        let what = format!("PUT {url}");
        let response = self
            .client
            .put(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(Error::http(&what))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            Ok(())
        } else {
            Err(status_error(what, status, response).await)
        }
    }

    /// `DELETE <base>/<key>`; succeeds on 2xx (404 included: the key is gone either way).
    pub async fn delete(&self, base: &str, key: &str) -> Result<()> {
        let what = format!("DELETE {base}/{key}");
        let response = self
            .client
            .delete(format!("{base}/{key}"))
            .send()
            .await
            .map_err(Error::http(&what))?;
        let status = response.status().as_u16();
        if response.status().is_success() || status == 404 {
            Ok(())
        } else {
            Err(status_error(what, status, response).await)
        }
    }

    /// Sets keys `range` of `prefix` through `PUT <url>` in batches of about `batch`
    /// keys, halving the batch when the server says a body is too large (413).
    pub async fn load(
        &self,
        url: &str,
        prefix: &str,
        tag: &str,
        range: Range<usize>,
        mut batch: usize,
    ) -> Result<()> {
        let mut next = range.start;
        while next < range.end {
            let end = (next + batch.max(1)).min(range.end);
            match self.put(url, batch_body(prefix, tag, next..end)).await {
                Ok(()) => next = end,
                Err(Error::Status { status: 413, .. }) if batch > 1 => batch /= 2,
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// The connection counters of the agent whose peer port is `peer_base`.
    pub async fn stats(&self, peer_base: &str) -> Result<PeerStats> {
        let what = format!("GET {peer_base}/_c19/stats");
        let response = self
            .client
            .get(format!("{peer_base}/_c19/stats"))
            .send()
            .await
            .map_err(Error::http(&what))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(status_error(what, status, response).await);
        }
        let stats: Value = response.json().await.map_err(Error::http(&what))?;
        let counter = |name: &str| {
            stats[name].as_u64().ok_or_else(|| Error::Answer {
                what: what.clone(),
                detail: format!("no `{name}` counter in {stats}"),
            })
        };
        Ok(PeerStats {
            bytes_sent: counter("bytes_sent")?,
            bytes_received: counter("bytes_received")?,
        })
    }

    /// The sum of the connection counters of all `peer_bases`.
    pub async fn cluster_stats(&self, peer_bases: &[String]) -> Result<PeerStats> {
        let mut total = PeerStats::default();
        for peer_base in peer_bases {
            let stats = self.stats(peer_base).await?;
            total.bytes_sent += stats.bytes_sent;
            total.bytes_received += stats.bytes_received;
        }
        Ok(total)
    }
}

async fn status_error(what: String, status: u16, response: reqwest::Response) -> Error {
    let mut body = response.text().await.unwrap_or_default();
    body.truncate(200);
    Error::Status { what, status, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_sixty_bytes_of_json() {
        for i in [0, 7, 123_456_789, usize::MAX] {
            let json = serde_json::to_string(&value_text("new", i)).unwrap();
            assert_eq!(json.len(), VALUE_BYTES, "{json}");
        }
        assert_ne!(value_text("new", 1), value_text("over", 1));
    }

    #[test]
    fn batch_bodies_are_json_maps_of_values() {
        let body: Value = serde_json::from_slice(&batch_body("k", "t", 3..6)).unwrap();
        let map = body.as_object().unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(map["k-4"]["value"], value_text("t", 4));
        assert_eq!(batch_body("k", "t", 0..0), b"{}");
    }
}
