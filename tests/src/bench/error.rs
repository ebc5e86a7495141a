//! Why a benchmark scenario could not finish.

/// A failure that stops one scenario (the others still run).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An HTTP request to an agent failed before an answer came.
    #[error("{what}: {source}")]
    Http {
        /// The request.
        what: String,
        /// What went wrong.
        #[source]
        source: reqwest::Error,
    },
    /// An agent answered with an unexpected status.
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        /// The request.
        what: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// An answer was not the JSON expected.
    #[error("{what}: unexpected answer: {detail}")]
    Answer {
        /// The request.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The cluster did not reach the expected state in time.
    #[error("{0}")]
    Timeout(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation.
        what: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// An external tool (wrk) failed or printed something unexpected.
    #[error("{0}")]
    Tool(String),
    /// The scenario's task panicked (the harness asserts, e.g. an agent did not start).
    #[error("panicked: {0}")]
    Panic(String),
}

/// Result with the benchmark [`Error`] as default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Http`] for `what`.
    pub fn http(what: impl Into<String>) -> impl FnOnce(reqwest::Error) -> Self {
        move |source| Self::Http {
            what: what.into(),
            source,
        }
    }

    /// An [`Error::Io`] for `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io {
            what: what.into(),
            source,
        }
    }
}
