//! Which layer kinds this binary has registered.
//!
//! typetag keeps the registrations; it reports them only in the error for an unknown
//! kind (`serde::de::Error::unknown_variant`). We ask for a kind that cannot exist with
//! an error type that keeps the list, so there is no second registry to keep in sync.

use std::fmt;

use serde::Serialize;
use serde::de::{self, DeserializeOwned, value::MapDeserializer};

use crate::{AgentConfig, ConnectionConfig, DataSeederConfig, PeerProviderConfig, StateConfig};

/// The kinds registered for each layer, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kinds {
    /// Kinds of [`AgentConfig`].
    pub agent: Vec<&'static str>,
    /// Kinds of [`StateConfig`].
    pub state: Vec<&'static str>,
    /// Kinds of [`ConnectionConfig`].
    pub connection: Vec<&'static str>,
    /// Kinds of [`PeerProviderConfig`].
    pub peer_provider: Vec<&'static str>,
    /// Kinds of [`DataSeederConfig`].
    pub data_seeder: Vec<&'static str>,
}

impl Kinds {
    /// The kinds registered for the layer named as in the configuration (`agent`,
    /// `state`, `connection`, `peer_provider`, `data_seeder`).
    pub fn of(&self, layer: &str) -> Option<&[&'static str]> {
        Some(match layer {
            "agent" => &self.agent,
            "state" => &self.state,
            "connection" => &self.connection,
            "peer_provider" => &self.peer_provider,
            "data_seeder" => &self.data_seeder,
            _ => return None,
        })
    }
}

impl fmt::Display for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (layer, kinds) in [
            ("agent", &self.agent),
            ("state", &self.state),
            ("connection", &self.connection),
            ("peer_provider", &self.peer_provider),
            ("data_seeder", &self.data_seeder),
        ] {
            writeln!(f, "{layer}: {}", list(kinds))?;
        }
        Ok(())
    }
}

/// `A, B, C`, or `(none)`.
pub(crate) fn list(kinds: &[&str]) -> String {
    if kinds.is_empty() {
        "(none)".to_owned()
    } else {
        kinds.join(", ")
    }
}

/// The kinds registered in this binary, per layer.
pub fn kinds() -> Kinds {
    Kinds {
        agent: kinds_of::<Box<dyn AgentConfig>>(),
        state: kinds_of::<Box<dyn StateConfig>>(),
        connection: kinds_of::<Box<dyn ConnectionConfig>>(),
        peer_provider: kinds_of::<Box<dyn PeerProviderConfig>>(),
        data_seeder: kinds_of::<Box<dyn DataSeederConfig>>(),
    }
}

/// The kinds registered for one `kind`-tagged trait object.
pub fn kinds_of<T: DeserializeOwned>() -> Vec<&'static str> {
    const IMPOSSIBLE: &str = "\u{0}c19-probe";
    let probe = MapDeserializer::<_, Probe>::new([("kind", IMPOSSIBLE)].into_iter());
    match T::deserialize(probe) {
        Err(Probe(Some(expected))) => {
            let mut kinds = expected.to_vec();
            kinds.sort_unstable();
            kinds
        }
        _ => Vec::new(),
    }
}

/// An error that keeps the list of expected variants.
#[derive(Debug)]
struct Probe(Option<&'static [&'static str]>);

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("kind probe")
    }
}

impl std::error::Error for Probe {}

impl de::Error for Probe {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Probe(None)
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Probe(Some(expected))
    }
}
