//! The peer server's answers without HTTP, for transports that deliver messages in
//! memory (the simulator's network): the same state calls and counters as the HTTP
//! handlers, run in place. Refusals come back as the [`Error`]s the HTTP client would
//! make of the handlers' answers.

use std::time::Duration;

use bytes::Bytes;
use c19_serve::Side;

use super::PeerServer;
use crate::{
    client::Pulled,
    error::{Error, Result},
};

impl PeerServer {
    /// Merges a pushed batch, as `PUT /` does, and says how long until this agent's next
    /// round.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn take_push(&self, body: &Bytes) -> Result<Option<Duration>> {
        let length = body.len();
        if length > self.body_limit {
            self.stats.refused(0);
            return Err(too_large(self.body_limit));
        }
        match self.state.set(body) {
            Ok(_) => {
                self.stats.push_received(length);
                Ok(Some(self.cadence.wait()))
            }
            Err(refusal) => {
                self.stats.refused(length);
                Err(refused(&refusal))
            }
        }
    }

    /// The whole state unless it is at `version`, as `GET /<version>` answers.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn answer_pull(&self, version: &str) -> Pulled {
        if version == self.state.version() {
            return Pulled::UpToDate;
        }
        let root = self.state.get_root();
        self.stats.pull_served(root.len());
        Pulled::State(root)
    }

    /// Answers one exchange message, as `POST /_c19/sync` does (uncompressed); an empty
    /// answer is the 204 that ends an exchange.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn answer_exchange(&self, message: &[u8]) -> Result<Bytes> {
        let received = message.len();
        if received > self.body_limit {
            self.stats.refused(0);
            return Err(too_large(self.body_limit));
        }
        match self.state.sync_answer(message, self.max_message_bytes) {
            Ok(answer) => {
                self.stats.exchange_served(received, answer.len());
                Ok(answer)
            }
            Err(c19_core::StateError::Unsupported(_)) => {
                self.stats.refused(received);
                Err(Error::NoExchange { status: 501 })
            }
            Err(refusal) => {
                self.stats.refused(received);
                Err(refused(&refusal))
            }
        }
    }
}

/// A body over the limit, as the HTTP client reads the 413.
fn too_large(limit: usize) -> Error {
    Error::Refused {
        status: 413,
        message: format!("the body exceeds the limit of {limit} bytes (`body_limit`)"),
    }
}

/// What the client makes of a refusal of the state: a 4xx is [`Error::Refused`], a 5xx
/// (a failing disk) [`Error::Status`].
fn refused(refusal: &c19_core::StateError) -> Error {
    let status = c19_serve::status::of(refusal, Side::Peer).as_u16();
    let message = refusal.to_string();
    if (400..500).contains(&status) {
        Error::Refused { status, message }
    } else {
        Error::Status { status, message }
    }
}
