//! The validated configuration values of the provider: namespace, port and field
//! selector (the label selector has its own module).
//!
//! Each type checks its syntax while it is deserialized, so a bad configuration fails at
//! load time with a message naming the value, instead of as a rejected API request later.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::{
    Error, Result,
    syntax::{is_dns_label, is_port_name},
};

/// The literal that selects every namespace.
pub const ALL_NAMESPACES: &str = ":all";

/// Which namespace to watch for pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// Every namespace (`":all"`); needs a ClusterRole.
    All,
    /// One namespace by name.
    Named(String),
}

impl Default for Namespace {
    fn default() -> Self {
        Self::Named("default".to_owned())
    }
}

impl Namespace {
    /// Parses `default`, `my-team` or `:all`.
    pub fn parse(text: &str) -> Result<Self> {
        if text == ALL_NAMESPACES {
            return Ok(Self::All);
        }
        let refuse = |reason| Error::Namespace {
            namespace: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(refuse("it is empty (write `:all` for every namespace)"));
        }
        if !is_dns_label(text) {
            return Err(refuse(
                "a namespace is at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
            ));
        }
        Ok(Self::Named(text.to_owned()))
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str(ALL_NAMESPACES),
            Self::Named(name) => f.write_str(name),
        }
    }
}

impl Serialize for Namespace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // An all-digit namespace is valid, and an env override reads it as a number.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        let text = match Raw::deserialize(deserializer)
            .map_err(|_| de::Error::custom("expected a namespace name or `:all`"))?
        {
            Raw::Text(text) => text,
            Raw::Number(number) => number.to_string(),
        };
        Self::parse(&text).map_err(de::Error::custom)
    }
}

/// The port to dial on each peer pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// A port number, the same on every pod.
    Number(u16),
    /// The name of a container port, looked up in each pod's spec.
    Name(String),
}

impl PortSpec {
    /// Parses `4097` or a container port name such as `c19-peer`.
    pub fn parse(text: &str) -> Result<Self> {
        let refuse = |reason| Error::Port {
            port: text.to_owned(),
            reason,
        };
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u16>() {
                Ok(0) | Err(_) => Err(refuse("a port number is from 1 to 65535")),
                Ok(port) => Ok(Self::Number(port)),
            };
        }
        if !is_port_name(text) {
            return Err(refuse(
                "expected a port number from 1 to 65535 or a container port name (at most 15 lowercase letters, digits or '-', with a letter)",
            ));
        }
        Ok(Self::Name(text.to_owned()))
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(port) => write!(f, "{port}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

impl Serialize for PortSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(port) => serializer.serialize_u16(*port),
            Self::Name(name) => serializer.serialize_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A number, or a string holding a number (env overrides, quoted YAML) or a name.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let text = match Raw::deserialize(deserializer)
            .map_err(|_| de::Error::custom("expected a port number or a container port name"))?
        {
            Raw::Number(port) => port.to_string(),
            Raw::Text(text) => text,
        };
        Self::parse(&text).map_err(de::Error::custom)
    }
}

/// A field selector such as `spec.nodeName=node-1,status.phase!=Failed`.
///
/// Only its shape is checked (`field=value`, `field==value` or `field!=value` terms,
/// comma-separated); which fields the API server supports for pods is its call, and a
/// refusal shows in the log. Empty selects all pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FieldSelector(String);

impl FieldSelector {
    /// Parses and checks a field selector.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        for term in text.split(',') {
            let refuse = |reason| Error::FieldSelector {
                term: term.to_owned(),
                reason,
            };
            let field = term
                .split_once("!=")
                .or_else(|| term.split_once("=="))
                .or_else(|| term.split_once('='))
                .map(|(field, _)| field.trim())
                .ok_or_else(|| {
                    refuse("expected `field=value`, `field==value` or `field!=value`")
                })?;
            if field.is_empty() {
                return Err(refuse("the field name is empty"));
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// The selector as written; empty when it selects all.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for FieldSelector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        Self::parse(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        assert_eq!(Namespace::parse(":all").unwrap(), Namespace::All);
        assert_eq!(
            Namespace::parse("team-a").unwrap(),
            Namespace::Named("team-a".into())
        );
        for bad in ["", "Team", "a_b", "-a", &"a".repeat(64)] {
            let error = Namespace::parse(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }

    #[test]
    fn namespaces_deserialize_from_strings_and_numbers() {
        let namespace: Namespace = serde_json::from_str(r#"":all""#).unwrap();
        assert_eq!(namespace, Namespace::All);
        let namespace: Namespace = serde_json::from_str("2024").unwrap();
        assert_eq!(serde_json::to_string(&namespace).unwrap(), r#""2024""#);
        let error = serde_json::from_str::<Namespace>(r#""""#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`:all`"), "{error}");
    }

    #[test]
    fn ports() {
        assert_eq!(PortSpec::parse("4097").unwrap(), PortSpec::Number(4097));
        assert_eq!(
            PortSpec::parse("c19-peer").unwrap(),
            PortSpec::Name("c19-peer".into())
        );
        for bad in [
            "0",
            "65536",
            "",
            "Peer",
            "a--b",
            "1234-",
            "sixteen-chars-xx",
            "123-456",
        ] {
            let error = PortSpec::parse(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }

    #[test]
    fn ports_deserialize_from_numbers_and_strings() {
        let port: PortSpec = serde_json::from_str("4097").unwrap();
        assert_eq!(port, PortSpec::Number(4097));
        let port: PortSpec = serde_json::from_str(r#""4097""#).unwrap();
        assert_eq!(port, PortSpec::Number(4097));
        let port: PortSpec = serde_json::from_str(r#""peer""#).unwrap();
        assert_eq!(serde_json::to_string(&port).unwrap(), r#""peer""#);
        let error = serde_json::from_str::<PortSpec>("-1")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`-1`"), "{error}");
        assert!(serde_json::from_str::<PortSpec>("[1]").is_err());
    }

    #[test]
    fn field_selectors() {
        let selector = FieldSelector::parse("spec.nodeName=node-1").unwrap();
        assert_eq!(selector.as_str(), "spec.nodeName=node-1");
        FieldSelector::parse("status.phase!=Failed,metadata.name==c19-0").unwrap();
        assert_eq!(FieldSelector::parse(" ").unwrap(), FieldSelector::default());
        for bad in ["spec.nodeName", "=x", "a=b,"] {
            let error = FieldSelector::parse(bad).unwrap_err().to_string();
            assert!(error.contains("invalid field selector term"), "{error}");
        }
    }
}
