//! Why a request was refused for its credentials: shared by the check ([`crate::auth`])
//! and the answer ([`crate::error`]).

/// Why a request was refused, as the `reason` label of `c19_agent_auth_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    MissingToken,
    /// A bearer token that is not one of the agent's (or a malformed one).
    UnknownToken,
    /// A read-only token on a `PUT` or a `DELETE`.
    ReadOnly,
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::UnknownToken => "unknown_token",
            Self::ReadOnly => "read_only",
        }
    }

    /// The refusal's place in per-reason tables.
    pub(crate) fn index(self) -> usize {
        match self {
            Self::MissingToken => 0,
            Self::UnknownToken => 1,
            Self::ReadOnly => 2,
        }
    }
}
