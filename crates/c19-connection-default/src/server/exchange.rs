//! `POST /_c19/sync`: one message of a peer's anti-entropy exchange, answered by the
//! state (200 with the answer, or 204 when it has nothing to say).
//!
//! The body may be compressed in a coding this agent advertised (`Content-Encoding`);
//! the answer is compressed in one the peer accepts (`Accept-Encoding`), and a non-empty
//! answer says in its own `Accept-Encoding` which codings this agent reads (an empty one
//! ends the exchange or precedes a request the caller already knows how to send, and
//! the 204 that ends most pulls at rest stays as small as it can). A message the state refuses
//! gets 400, a state that has no exchanges 501 (the peer then pulls the whole state).

use std::sync::Arc;

use axum::{
    body::Body,
    extract::State,
    http::{
        HeaderMap, HeaderValue, StatusCode,
        header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE},
    },
    response::{IntoResponse, Response},
};
use c19_serve::Side;

use super::{PeerServer, error, read_body};
use crate::{
    client::MESSAGE_TYPE,
    codec::{self, ACCEPTED, CodecError, Coding},
};

/// Answers one exchange message.
pub(crate) async fn exchange(
    State(server): State<Arc<PeerServer>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let raw = match read_body(&server, &headers, body).await {
        Ok(raw) => raw,
        Err((read, response)) => {
            server.stats.refused(read);
            return advertise(response);
        }
    };
    let received = raw.len();
    let decoding = match Coding::of_content(headers.get(CONTENT_ENCODING)) {
        Ok(coding) => coding,
        Err(problem) => {
            server.stats.refused(received);
            let (status, message) = decode_error(&problem);
            return advertise(error(status, message));
        }
    };
    let encoding = Coding::choose(headers.get(ACCEPT_ENCODING));
    let (state, limit, max) = (
        server.state.clone(),
        server.body_limit,
        server.max_message_bytes,
    );
    // The semaphore is never closed; should it be, answering without a turn is safe.
    let turn = server.merges.clone().acquire_owned().await.ok();
    // Joining, decompressing, answering and compressing a message of megabytes each take
    // milliseconds: all of it runs on the blocking pool, never on an async worker.
    let answering = move || {
        let message =
            codec::decode(decoding, raw.join(), limit).map_err(|problem| decode_error(&problem))?;
        let answer = state.sync_answer(&message, max).map_err(|refusal| {
            tracing::debug!("refused an exchange message: {refusal}");
            let status = c19_serve::status::of(&refusal, Side::Peer);
            (status, refusal.to_string())
        });
        drop(turn);
        Ok(codec::encode(encoding, answer?))
    };
    let (body, coding) = match tokio::task::spawn_blocking(answering).await {
        Ok(Ok(answer)) => answer,
        Ok(Err((status, message))) => {
            server.stats.refused(received);
            return advertise(error(status, message));
        }
        Err(failure) => {
            server.stats.refused(received);
            return advertise(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the exchange failed: {failure}"),
            ));
        }
    };
    if body.is_empty() {
        server.stats.exchange_served(received, 0);
        return StatusCode::NO_CONTENT.into_response();
    }
    server.stats.exchange_served(received, body.len());
    let mut response = (
        [(CONTENT_TYPE, HeaderValue::from_static(MESSAGE_TYPE))],
        Body::from(body),
    )
        .into_response();
    if let Some(coding) = coding {
        response
            .headers_mut()
            .insert(CONTENT_ENCODING, coding.header_value());
    }
    advertise(response)
}

/// The status and message for a body that cannot be decoded.
fn decode_error(problem: &CodecError) -> (StatusCode, String) {
    let status = match problem {
        CodecError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        CodecError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        CodecError::Corrupt { .. } => StatusCode::BAD_REQUEST,
        CodecError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, problem.to_string())
}

/// Says which request codings this agent reads (RFC 7694).
fn advertise(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(ACCEPT_ENCODING, HeaderValue::from_static(ACCEPTED));
    response
}
