//! Why a request failed, and the HTTP response that says so.
//!
//! Every error is answered with its status and a JSON body `{"error": "<message>"}`.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use c19_core::StateError;
use c19_serve::{Side, StateKind};

use crate::refusal::Refusal;

/// Result with this crate's [`Error`] as default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A request the agent refuses or cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A query parameter is unknown or malformed.
    #[error("{0}")]
    BadQuery(String),
    /// The key is absent, deleted or expired.
    #[error("key {0:?} not found")]
    NotFound(String),
    /// The percent-decoded path is not UTF-8.
    #[error("the key is not valid UTF-8 once percent-decoded")]
    KeyNotUtf8,
    /// The method is not one the resource accepts.
    #[error("{message}")]
    MethodNotAllowed {
        /// What to do instead.
        message: &'static str,
        /// The methods the resource accepts, for the `Allow` header.
        allow: &'static str,
    },
    /// The body is larger than `body_limit`.
    #[error("the body is larger than the limit of {limit} bytes (body_limit)")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body did not arrive in time (`idle_timeout`).
    #[error("the body did not arrive in time (idle_timeout is {millis} ms)")]
    BodyTimeout {
        /// The time allowed, in milliseconds.
        millis: u128,
    },
    /// The body could not be read (the client went away or sent a broken stream).
    #[error("cannot read the body: {0}")]
    BodyRead(String),
    /// The state refused the write; nothing of it was applied.
    #[error("{0}")]
    Refused(String),
    /// The state does not implement the operation.
    #[error("{0}")]
    Unsupported(String),
    /// The agent failed (a bug or an exhausted resource); nothing was applied.
    #[error("internal error: {0}")]
    Internal(String),
    /// The state could not make the write durable (a full disk, an I/O error); it is
    /// not acknowledged.
    #[error("{0}")]
    Storage(String),
    /// The request's bearer token is missing, unknown, or read-only for a write
    /// (`auth` is configured).
    #[error("{}", refusal_message(*.0))]
    Unauthorized(Refusal),
}

/// What a refused request is told.
fn refusal_message(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::MissingToken => {
            "this agent requires a bearer token: send Authorization: Bearer <token>"
        }
        Refusal::UnknownToken => "the bearer token is not valid",
        Refusal::ReadOnly => {
            "the bearer token is read-only: PUT and DELETE need a read-write token"
        }
    }
}

/// The `WWW-Authenticate` challenge of a refusal (RFC 6750, section 3).
fn challenge(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::MissingToken => r#"Bearer realm="c19""#,
        Refusal::UnknownToken => r#"Bearer realm="c19", error="invalid_token""#,
        Refusal::ReadOnly => r#"Bearer realm="c19", error="insufficient_scope""#,
    }
}

/// Each kind of [`StateError`] becomes the variant whose status is the agent's in
/// [`StateKind::status`]; a seeder's failure is internal (500 there too).
impl From<StateError> for Error {
    fn from(error: StateError) -> Self {
        match error {
            StateError::Invalid(message) => Self::Refused(message),
            StateError::Unsupported(_) => Self::Unsupported(error.to_string()),
            StateError::Storage(message) => Self::Storage(message),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl Error {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::KeyNotUtf8 | Self::BodyRead(_) | Self::BadQuery(_) => StatusCode::BAD_REQUEST,
            // What the state refused: the one table of both servers says how.
            Self::Refused(_) => StateKind::Invalid.status(Side::Agent),
            Self::Unsupported(_) => StateKind::Unsupported.status(Side::Agent),
            Self::Storage(_) => StateKind::Storage.status(Side::Agent),
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthorized(Refusal::ReadOnly) => StatusCode::FORBIDDEN,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() }).to_string();
        let mut response = (
            self.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        match self {
            Self::MethodNotAllowed { allow, .. } => {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Unauthorized(refusal) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge(refusal)),
                );
            }
            _ => {}
        }
        response
    }
}
