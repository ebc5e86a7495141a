//! The HTTP status of each [`StateError`], on each side: the one table both servers use.
//!
//! Both sides answer the same except for a storage failure: the agent API says `507
//! Insufficient Storage` (the write is not durable: the application must know), the peer
//! port `503 Service Unavailable` (the sending peer retries later, elsewhere).

use axum::http::StatusCode;
use c19_core::StateError;

/// Which server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The agent API, to the local application.
    Agent,
    /// The peer port, to other agents.
    Peer,
}

/// The kinds of [`StateError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// [`StateError::Invalid`].
    Invalid,
    /// [`StateError::Unsupported`].
    Unsupported,
    /// [`StateError::Seed`].
    Seed,
    /// [`StateError::Storage`].
    Storage,
}

impl StateKind {
    /// The kind of `error`.
    pub fn of(error: &StateError) -> Self {
        match error {
            StateError::Invalid(_) => Self::Invalid,
            StateError::Unsupported(_) => Self::Unsupported,
            StateError::Seed(_) => Self::Seed,
            StateError::Storage(_) => Self::Storage,
        }
    }

    /// The status `side` answers an error of this kind with.
    pub fn status(self, side: Side) -> StatusCode {
        match (self, side) {
            (Self::Invalid, _) => StatusCode::BAD_REQUEST,
            (Self::Unsupported, _) => StatusCode::NOT_IMPLEMENTED,
            (Self::Seed, _) => StatusCode::INTERNAL_SERVER_ERROR,
            (Self::Storage, Side::Agent) => StatusCode::INSUFFICIENT_STORAGE,
            (Self::Storage, Side::Peer) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The status `side` answers `error` with.
pub fn of(error: &StateError, side: Side) -> StatusCode {
    StateKind::of(error).status(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_answers_as_it_always_did() {
        let cases = [
            (StateError::Invalid("bad".into()), 400, 400),
            (StateError::Unsupported("sync"), 501, 501),
            (StateError::Storage("disk full".into()), 507, 503),
        ];
        for (error, agent, peer) in cases {
            assert_eq!(of(&error, Side::Agent).as_u16(), agent, "{error}");
            assert_eq!(of(&error, Side::Peer).as_u16(), peer, "{error}");
        }
        assert_eq!(StateKind::Seed.status(Side::Agent), 500);
        assert_eq!(StateKind::Seed.status(Side::Peer), 500);
    }
}
