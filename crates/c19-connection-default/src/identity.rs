//! Who this agent is, so it never gossips with itself.
//!
//! Each agent draws a random node id at start. It sends it in the [`NODE_HEADER`] of its
//! requests and responses: a response carrying the own id means the peer dialled is this
//! agent (through some address we could not recognise), and a request carrying it is
//! refused.

use std::fmt;

use axum::http::HeaderValue;

/// The header that carries the node id of the sender.
pub const NODE_HEADER: &str = "c19-node";

/// A random identifier of one running agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeId(String);

impl NodeId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(format!("{:016x}", rand::random::<u64>()))
    }

    /// The id as written in the header.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a header value.
    pub fn header_value(&self) -> HeaderValue {
        // Sixteen hex digits are always a valid header value.
        HeaderValue::from_str(&self.0).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }

    /// Whether `value`, a received header, names this node.
    pub fn is(&self, value: Option<&HeaderValue>) -> bool {
        value.is_some_and(|value| value.as_bytes() == self.0.as_bytes())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_and_recognise_themselves() {
        let (a, b) = (NodeId::random(), NodeId::random());
        assert_ne!(a, b);
        assert!(a.is(Some(&a.header_value())));
        assert!(!a.is(Some(&b.header_value())));
        assert!(!a.is(None));
    }
}
