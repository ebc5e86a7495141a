//! Compression of anti-entropy messages, negotiated with HTTP headers.
//!
//! A request lists the codings its sender reads in `Accept-Encoding`, and the answer is
//! compressed with one of them (`Content-Encoding`). An answer lists in its own
//! `Accept-Encoding` the codings the server reads in requests (as RFC 7694 defines), so
//! the later requests of an exchange are compressed only once the peer said it can read
//! them. Compression is done here rather than by an HTTP middleware so the byte counters
//! count what crosses the network.

use std::io::Read;

use axum::http::HeaderValue;
use bytes::Bytes;

/// The codings this agent reads and writes, best first, as an `Accept-Encoding` value.
pub(crate) const ACCEPTED: &str = "zstd";

/// Messages smaller than this are sent as they are: compressing them saves little.
const MIN_COMPRESSED: usize = 1024;

/// zstd's level: fast, and several times smaller for JSON.
const ZSTD_LEVEL: i32 = 3;

/// Messages from this size on are compressed on the blocking pool: zstd takes
/// milliseconds per megabyte, which on an async worker would stall every request queued
/// on it (the agent's own included: both layers share the runtime).
const BLOCKING_BYTES: usize = 64 << 10;

/// A content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// Zstandard (RFC 8878).
    Zstd,
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    /// The body is in a coding this agent does not read.
    #[error("unsupported content coding {0:?} (this agent reads: {ACCEPTED})")]
    Unsupported(String),
    /// The decoded body would exceed the limit.
    #[error("the decoded body exceeds the limit of {0} bytes")]
    TooLarge(usize),
    /// The body is not valid in its coding.
    #[error("the body is not valid {coding}: {source}")]
    Corrupt {
        /// The coding's name.
        coding: &'static str,
        /// What the decoder said.
        #[source]
        source: std::io::Error,
    },
    /// The decoder did not finish (it panicked).
    #[error("decoding failed: {0}")]
    Failed(String),
}

impl Coding {
    /// The coding's name in HTTP headers.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
        }
    }

    /// The coding's name as a header value.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.name())
    }

    /// The best coding this agent writes among those an `Accept-Encoding` value lists
    /// (a coding with `q=0` is refused).
    pub fn choose(accepted: Option<&HeaderValue>) -> Option<Coding> {
        let accepted = accepted?.to_str().ok()?;
        accepted.split(',').find_map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next()?;
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            (name.eq_ignore_ascii_case("zstd") && !refused).then_some(Coding::Zstd)
        })
    }

    /// The coding a `Content-Encoding` value names; `None` for none or `identity`.
    pub fn of_content(encoding: Option<&HeaderValue>) -> Result<Option<Coding>, CodecError> {
        let Some(encoding) = encoding else {
            return Ok(None);
        };
        let name = encoding.to_str().unwrap_or_default().trim();
        if name.is_empty() || name.eq_ignore_ascii_case("identity") {
            Ok(None)
        } else if name.eq_ignore_ascii_case("zstd") {
            Ok(Some(Coding::Zstd))
        } else {
            Err(CodecError::Unsupported(name.to_owned()))
        }
    }
}

/// `body` compressed with `coding` when it is worth it; returns the bytes to send and the
/// coding they are in.
pub(crate) fn encode(coding: Option<Coding>, body: Bytes) -> (Bytes, Option<Coding>) {
    match coding {
        Some(Coding::Zstd) if body.len() >= MIN_COMPRESSED => {
            match zstd::bulk::compress(&body, ZSTD_LEVEL) {
                Ok(compressed) if compressed.len() < body.len() => {
                    (Bytes::from(compressed), Some(Coding::Zstd))
                }
                _ => (body, None),
            }
        }
        _ => (body, None),
    }
}

/// [`encode`], on the blocking pool for a large `body`.
pub(crate) async fn encode_off_worker(
    coding: Option<Coding>,
    body: Bytes,
) -> (Bytes, Option<Coding>) {
    if coding.is_none() || body.len() < BLOCKING_BYTES {
        return encode(coding, body);
    }
    let unchanged = body.clone();
    tokio::task::spawn_blocking(move || encode(coding, body))
        .await
        .unwrap_or((unchanged, None))
}

/// [`decode`], on the blocking pool for a compressed `body` (a small one may still
/// decode into megabytes).
pub(crate) async fn decode_off_worker(
    coding: Option<Coding>,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, CodecError> {
    if coding.is_none() {
        return Ok(body);
    }
    tokio::task::spawn_blocking(move || decode(coding, body, limit))
        .await
        .unwrap_or_else(|failure| Err(CodecError::Failed(failure.to_string())))
}

/// `body` decoded from `coding`, unless it would exceed `limit` bytes.
pub(crate) fn decode(
    coding: Option<Coding>,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, CodecError> {
    let Some(Coding::Zstd) = coding else {
        return Ok(body);
    };
    let corrupt = |source| CodecError::Corrupt {
        coding: "zstd",
        source,
    };
    let decoder = zstd::stream::read::Decoder::with_buffer(&body[..]).map_err(corrupt)?;
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    // One byte more than the limit tells "exactly the limit" from "over it".
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    decoder.take(cap).read_to_end(&mut out).map_err(corrupt)?;
    if out.len() > limit {
        return Err(CodecError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &'static str) -> HeaderValue {
        HeaderValue::from_static(text)
    }

    #[test]
    fn negotiates_from_accept_encoding() {
        assert_eq!(Coding::choose(None), None);
        assert_eq!(Coding::choose(Some(&value("gzip, br"))), None);
        assert_eq!(
            Coding::choose(Some(&value("gzip;q=1.0, ZSTD"))),
            Some(Coding::Zstd)
        );
        assert_eq!(Coding::choose(Some(&value("zstd;q=0"))), None);
        assert_eq!(Coding::of_content(None).unwrap(), None);
        assert_eq!(Coding::of_content(Some(&value("identity"))).unwrap(), None);
        assert_eq!(
            Coding::of_content(Some(&value("zstd"))).unwrap(),
            Some(Coding::Zstd)
        );
        let error = Coding::of_content(Some(&value("br"))).unwrap_err();
        assert!(error.to_string().contains("\"br\""), "{error}");
    }

    #[test]
    fn compresses_what_is_worth_it_and_round_trips() {
        let small = Bytes::from_static(b"{\"step\":\"hello\"}");
        assert_eq!(encode(Some(Coding::Zstd), small.clone()), (small, None));
        let json = Bytes::from("{\"key\":{\"value\":\"some value\",\"ts\":1},".repeat(500));
        assert_eq!(encode(None, json.clone()).1, None);
        let (packed, coding) = encode(Some(Coding::Zstd), json.clone());
        assert_eq!(coding, Some(Coding::Zstd));
        assert!(packed.len() * 10 < json.len(), "{} bytes", packed.len());
        assert_eq!(decode(coding, packed.clone(), json.len()).unwrap(), json);
        assert!(matches!(
            decode(coding, packed, json.len() - 1),
            Err(CodecError::TooLarge(_))
        ));
    }

    #[tokio::test]
    async fn large_messages_are_coded_off_the_workers_the_same_way() {
        let json = Bytes::from("{\"key\":{\"value\":\"some value\",\"ts\":1},".repeat(4000));
        assert!(json.len() >= BLOCKING_BYTES);
        let (packed, coding) = encode_off_worker(Some(Coding::Zstd), json.clone()).await;
        assert_eq!(
            (packed.clone(), coding),
            encode(Some(Coding::Zstd), json.clone())
        );
        assert_eq!(
            decode_off_worker(coding, packed.clone(), json.len())
                .await
                .unwrap(),
            json
        );
        assert!(matches!(
            decode_off_worker(coding, packed, json.len() - 1).await,
            Err(CodecError::TooLarge(_))
        ));
        let plain = decode_off_worker(None, json.clone(), 1).await.unwrap();
        assert_eq!(plain, json);
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_garbage_is_refused() {
        let zeros = vec![0_u8; 50 << 20];
        let bomb = Bytes::from(zstd::bulk::compress(&zeros, 3).unwrap());
        assert!(bomb.len() < 10_000);
        assert!(matches!(
            decode(Some(Coding::Zstd), bomb, 1 << 20),
            Err(CodecError::TooLarge(_))
        ));
        let error = decode(Some(Coding::Zstd), Bytes::from_static(b"not zstd"), 100).unwrap_err();
        assert!(matches!(error, CodecError::Corrupt { .. }), "{error}");
    }
}
