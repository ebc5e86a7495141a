//! The client side of anti-entropy exchanges: `POST /_c19/sync` with one message of the
//! state's conversation, compressed once the peer said it reads compressed requests.

use std::net::SocketAddr;

use axum::http::{
    HeaderMap, StatusCode,
    header::{ACCEPT_ENCODING, CONTENT_ENCODING},
};
use bytes::Bytes;

use super::{PeerClient, read_limited, snippet};
use crate::{
    codec::{self, ACCEPTED, Coding},
    error::{Error, Result},
};

/// The path of the exchange endpoint on the peer port.
pub(crate) const EXCHANGE_PATH: &str = "/_c19/sync";

/// The content type of exchange messages: the state's own format.
pub(crate) const MESSAGE_TYPE: &str = "application/octet-stream";

/// A peer's answer to one message.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The answer, decoded (empty: the peer had nothing to say).
    pub body: Bytes,
    /// Bytes of request body sent.
    pub sent: usize,
    /// Bytes of answer body received, as they crossed the network.
    pub received: usize,
    /// The coding the peer reads requests in, if it said (empty answers do not).
    pub accepts: Option<Coding>,
}

impl PeerClient {
    /// Sends one exchange message to the peer at `addr`, compressed with `coding` when
    /// worth it, and returns the answer.
    ///
    /// A peer that has no exchange endpoint (a 0.1 agent: 404 or 405) or whose state
    /// cannot take part (501) fails with [`Error::NoExchange`].
    pub async fn exchange(
        &self,
        addr: SocketAddr,
        message: Bytes,
        coding: Option<Coding>,
    ) -> Result<Reply> {
        let _permit = self.permits.acquire().await;
        let (body, coding) = codec::encode_off_worker(coding, message).await;
        let sent = body.len();
        let response = self
            .send(addr, |http, base| {
                let request = http
                    .post(format!("{base}{EXCHANGE_PATH}"))
                    .timeout(self.pull_timeout)
                    .header(ACCEPT_ENCODING, ACCEPTED)
                    .body(body.clone());
                match coding {
                    Some(coding) => request.header(CONTENT_ENCODING, coding.header_value()),
                    None => request,
                }
            })
            .await?;
        let response = self.check_identity(addr, response)?;
        let status = response.status();
        let accepts = Coding::choose(response.headers().get(ACCEPT_ENCODING));
        match status {
            StatusCode::NO_CONTENT => Ok(Reply {
                body: Bytes::new(),
                sent,
                received: 0,
                accepts,
            }),
            StatusCode::OK => {
                let encoding = content_coding(response.headers())?;
                let raw = read_limited(response, self.body_limit).await?;
                let received = raw.len();
                let body = codec::decode_off_worker(encoding, raw, self.body_limit)
                    .await
                    .map_err(|error| Error::Decode(error.to_string()))?;
                Ok(Reply {
                    body,
                    sent,
                    received,
                    accepts,
                })
            }
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => Err(Error::NoExchange {
                status: status.as_u16(),
            }),
            status if status.is_client_error() => Err(Error::Refused {
                status: status.as_u16(),
                message: snippet(response).await,
            }),
            status => Err(Error::Status {
                status: status.as_u16(),
                message: snippet(response).await,
            }),
        }
    }
}

/// The coding of a response body.
fn content_coding(headers: &HeaderMap) -> Result<Option<Coding>> {
    Coding::of_content(headers.get(CONTENT_ENCODING))
        .map_err(|error| Error::Decode(error.to_string()))
}
