//! Request bodies read whole, within a byte limit and a time limit.
//!
//! A body is kept in the chunks it arrived in ([`Received`]): joining them copies the
//! whole body, which for megabytes stalls an async worker (and the requests queued on
//! it) for milliseconds, so a caller joins large bodies on the blocking pool.

use std::time::Duration;

use axum::{
    body::Body,
    http::{HeaderMap, header::CONTENT_LENGTH},
};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use crate::Error;

/// A request body as read, in the chunks it arrived in.
#[derive(Debug, Default)]
pub struct Received {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Received {
    /// How many bytes were received.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The body in one buffer: free for a body that came in one chunk, a copy otherwise.
    pub fn join(mut self) -> Bytes {
        if self.chunks.len() <= 1 {
            return self.chunks.pop().unwrap_or_default();
        }
        let mut joined = BytesMut::with_capacity(self.len);
        for chunk in &self.chunks {
            joined.extend_from_slice(chunk);
        }
        joined.freeze()
    }
}

/// Whether the request's `Content-Length` already says its body exceeds `limit` bytes
/// (a caller can refuse it before waiting for anything).
pub fn declared_too_large(headers: &HeaderMap, limit: usize) -> bool {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|length| usize::try_from(length).map_or(true, |length| length > limit))
}

/// Reads `body` whole; refuses it once it exceeds `limit` bytes or when it has not
/// arrived within `timeout`.
pub async fn read(body: Body, limit: usize, timeout: Duration) -> Result<Received, Error> {
    let mut read = Received::default();
    let mut body = body;
    let reading = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| Error::Failed { source, read: 0 })?;
            // Trailers carry no body bytes.
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            if read.len.saturating_add(chunk.len()) > limit {
                return Err(Error::TooLarge { limit, read: 0 });
            }
            read.len += chunk.len();
            if !chunk.is_empty() {
                read.chunks.push(chunk);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, reading).await {
        Ok(Ok(())) => Ok(read),
        Ok(Err(error)) => Err(error.after(read.len)),
        Err(_) => Err(Error::TimedOut {
            timeout,
            read: read.len,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::convert::Infallible;

    use axum::http::HeaderValue;
    use futures::{StreamExt, stream};

    use super::*;

    /// A body of `chunks`, then one that never comes when `hang`.
    fn body(chunks: &[&'static [u8]], hang: bool) -> Body {
        let chunks: Vec<Result<Bytes, Infallible>> = chunks
            .iter()
            .map(|chunk| Ok(Bytes::from_static(chunk)))
            .collect();
        let chunks = stream::iter(chunks);
        if hang {
            Body::from_stream(chunks.chain(stream::pending()))
        } else {
            Body::from_stream(chunks)
        }
    }

    async fn read_one(body: Body) -> Bytes {
        read(body, 100, Duration::from_secs(5))
            .await
            .unwrap()
            .join()
    }

    #[tokio::test]
    async fn a_body_is_kept_in_its_chunks_and_joined() {
        let read = read(body(&[b"ab", b"", b"cd"], false), 4, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(read.len(), 4);
        assert_eq!(read.chunks.len(), 2);
        assert_eq!(read.join(), Bytes::from_static(b"abcd"));
        assert_eq!(read_one(Body::from("whole")).await, "whole");
        assert!(read_one(Body::empty()).await.is_empty());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_what_was_read() {
        let refused = read(body(&[b"abc", b"def"], false), 5, Duration::from_secs(5)).await;
        assert!(
            matches!(refused, Err(Error::TooLarge { limit: 5, read: 3 })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_refused() {
        let refused = read(body(&[b"abc"], true), 100, Duration::from_millis(50)).await;
        assert!(
            matches!(refused, Err(Error::TimedOut { read: 3, .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_broken_body_is_a_read_failure() {
        let broken = stream::iter([Err::<Bytes, _>(std::io::Error::other("gone"))]);
        let refused = read(Body::from_stream(broken), 100, Duration::from_secs(5)).await;
        let Err(error) = refused else {
            panic!("{refused:?}")
        };
        assert!(matches!(error, Error::Failed { read: 0, .. }), "{error:?}");
        assert!(!error.is_connection_timeout());
        let timed_out = stream::iter([Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "idle",
        ))]);
        let refused = read(Body::from_stream(timed_out), 100, Duration::from_secs(5)).await;
        assert!(refused.unwrap_err().is_connection_timeout());
    }

    #[test]
    fn a_declared_length_over_the_limit_is_too_large() {
        let mut headers = HeaderMap::new();
        assert!(!declared_too_large(&headers, 10));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("10"));
        assert!(!declared_too_large(&headers, 10));
        assert!(declared_too_large(&headers, 9));
        // Unreadable lengths are left to the body's own limit.
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("lots"));
        assert!(!declared_too_large(&headers, 9));
    }
}
