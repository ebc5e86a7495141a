//! The agent's configuration: a YAML file plus environment overrides.
//!
//! ```yaml
//! version: 0.1
//! spec:
//!   agent: { kind: Default, port: 3097 }
//!   state: { kind: Default, ttl: null, purge_interval: 60000 }
//!   connection:
//!     kind: Default
//!     port: 4097
//!     peer_provider: { kind: Static, peers: [127.0.0.1] }
//! ```
//!
//! Each layer object is chosen by its `kind`; a missing layer means `kind: Default`.
//!
//! # Environment overrides
//!
//! A variable `C19_SPEC__<PATH>` overrides the field at `spec.<path>`: the path is
//! lower-cased and `__` separates its parts, so `C19_SPEC__AGENT__PORT=4000` sets
//! `spec.agent.port`, and `C19_SPEC__CONNECTION__PEER_PROVIDER__PEERS=10.0.0.1,10.0.0.2`
//! sets the static peer list: a field that expects a list takes a comma-separated value
//! (whatever layer it belongs to). Values that look like numbers or booleans are read as
//! such. Only variables starting with `C19_SPEC__` are read, so
//! the `C19_SERVICE_HOST`-style variables Kubernetes injects for a Service named `c19`
//! are ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_with::{DisplayFromStr, PickFirst, serde_as};

use crate::{AgentConfig, ConnectionConfig, StateConfig, registry};

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "C19_SPEC__";

/// How many list-valued fields one set of environment overrides may fill.
const MAX_ENV_LISTS: usize = 64;

/// The whole configuration file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The configuration format version; 0.1 files say `version: 0.1`. Informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<SchemaVersion>,
    /// The layers of the agent.
    pub spec: Spec,
}

/// The configuration version as written: a number (`0.1`) or a string (`"0.2"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SchemaVersion {
    /// Written as a number.
    Number(serde_json::Number),
    /// Written as a string.
    Text(String),
}

/// The layers of an agent, each selected by `kind`, and the agent-wide settings.
#[serde_as]
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Serves the local application.
    pub agent: Box<dyn AgentConfig>,
    /// Holds and merges the data.
    pub state: Box<dyn StateConfig>,
    /// Exchanges the state with peers.
    pub connection: Box<dyn ConnectionConfig>,
    /// Health and metrics endpoints, on their own port.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// How long a graceful shutdown may take, in milliseconds: the agent stops taking
    /// writes, the connection pushes what peers have not seen yet, then the process exits.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_grace_period")]
    pub grace_period: u64,
}

fn default_grace_period() -> u64 {
    5000
}

/// Where `/healthz`, `/readyz` and `/metrics` are served.
///
/// Without a `telemetry` section (0.1 files have none) the endpoints are served on
/// 0.0.0.0:9097 if that port is free; if it is taken the agent logs a warning and runs
/// without them, so several such agents can share a host. A section given in the file
/// or through `C19_SPEC__TELEMETRY__*` variables is [`TelemetryConfig::explicit`], and
/// then a port that is taken is a start-up error.
#[serde_as]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Serve the endpoints at all.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The bind address.
    #[serde(default = "default_telemetry_address")]
    pub address: String,
    /// The port, kept apart from the agent port so no key can collide with an endpoint.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_telemetry_port")]
    pub port: u16,
    /// Whether the section was given (in the file or by environment overrides) rather
    /// than defaulted; computed when the configuration is loaded, never read from it nor
    /// written out.
    #[serde(skip)]
    pub explicit: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            address: default_telemetry_address(),
            port: default_telemetry_port(),
            explicit: false,
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_telemetry_address() -> String {
    "0.0.0.0".to_owned()
}

fn default_telemetry_port() -> u16 {
    9097
}

/// A configuration that cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML, or an environment override is malformed.
    #[error("config file `{path}`: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A field is missing, unknown, or not of the expected type.
    #[error("config file `{path}`: field `{field}`: {message}{origin}")]
    Field {
        /// The file.
        path: String,
        /// The field, as a path from the top (`spec.agent.port`).
        field: String,
        /// What is wrong and what was expected.
        message: String,
        /// Where the value came from, when not the file.
        origin: String,
    },
    /// A layer names a kind that this binary does not have.
    #[error(
        "config file `{path}`: field `{field}`: unknown {layer} kind `{kind}`; this binary has: {known}"
    )]
    UnknownKind {
        /// The file.
        path: String,
        /// The `kind` field, as a path from the top.
        field: String,
        /// The layer (`agent`, `state`, `connection`, `peer_provider`, `data_seeder`).
        layer: String,
        /// The kind asked for.
        kind: String,
        /// The kinds registered for this layer, comma-separated.
        known: String,
    },
}

impl Config {
    /// Loads `path` with overrides from the process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Loads `path` with overrides from the given environment variables.
    pub fn load_with_env(
        path: impl AsRef<Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: name.clone(),
            source,
        })?;
        Self::from_yaml_with_env(&name, &text, env)
    }

    /// Parses YAML text (named `name` in errors) without environment overrides.
    pub fn from_yaml(name: &str, yaml: &str) -> Result<Self, ConfigError> {
        Self::from_yaml_with_env(name, yaml, std::iter::empty())
    }

    /// Parses YAML text (named `name` in errors) with the given environment overrides.
    pub fn from_yaml_with_env(
        name: &str,
        yaml: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let overrides: config::Map<String, String> = env
            .into_iter()
            .filter(|(key, _)| key.starts_with(ENV_PREFIX))
            .collect();
        let environment = config::Environment::with_prefix("C19")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .source(Some(overrides.clone()));
        let syntax = |error: config::ConfigError| ConfigError::Syntax {
            path: name.to_owned(),
            message: error.to_string(),
        };
        let mut tree: Value = config::Config::builder()
            .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
            .add_source(environment)
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(syntax)?;
        if tree.is_null() {
            // An empty file: every layer at its default.
            tree = Value::Object(Default::default());
        }
        fill_default_layers(&mut tree);
        let telemetry_given = !tree["spec"]["telemetry"].is_null();
        let mut lists = 0;
        let mut config: Self = loop {
            match serde_path_to_error::deserialize(tree.clone()) {
                Ok(config) => break config,
                Err(error) => {
                    if lists < MAX_ENV_LISTS && split_env_list(&mut tree, &overrides, &error) {
                        lists += 1;
                        continue;
                    }
                    return Err(field_error(name, &overrides, error));
                }
            }
        };
        config.spec.telemetry.explicit = telemetry_given;
        Ok(config)
    }

    /// The configuration as pretty JSON (which is also valid YAML), defaults included.
    pub fn to_pretty_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|error| format!("<{error}>"))
    }
}

/// A missing `spec` or missing layer means that layer's `Default` kind.
fn fill_default_layers(tree: &mut Value) {
    let Some(top) = tree.as_object_mut() else {
        return;
    };
    let spec = top
        .entry("spec")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(spec) = spec.as_object_mut() {
        for layer in ["agent", "state", "connection"] {
            spec.entry(layer)
                .or_insert_with(|| serde_json::json!({ "kind": "Default" }));
        }
    }
}

/// When `error` is a field set by an environment override that expects a list, turns
/// the override's value in `tree` into the list it spells (comma-separated, each item
/// read as a number or boolean when it looks like one). Returns whether it did, so the
/// caller deserializes again. No layer needs to declare its list fields.
fn split_env_list(
    tree: &mut Value,
    overrides: &config::Map<String, String>,
    error: &serde_path_to_error::Error<serde_json::Error>,
) -> bool {
    let field = error.path().to_string();
    if !error.inner().to_string().contains("expected a sequence") {
        return false;
    }
    let variable = format!("C19_{}", field.to_ascii_uppercase().replace('.', "__"));
    let Some(text) = overrides.get(&variable) else {
        return false;
    };
    let mut node = &mut *tree;
    for part in field.split('.') {
        match node.get_mut(part) {
            Some(next) => node = next,
            None => return false,
        }
    }
    if node.is_array() {
        return false;
    }
    *node = Value::Array(
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(scalar)
            .collect(),
    );
    true
}

/// An item of an environment list: a number or boolean when it looks like one.
fn scalar(item: &str) -> Value {
    if let Ok(number) = item.parse::<i64>() {
        return Value::from(number);
    }
    if let Ok(flag) = item.parse::<bool>() {
        return Value::from(flag);
    }
    Value::from(item)
}

/// The fields that hold a layer chosen by `kind:`.
const LAYERS: [&str; 5] = [
    "agent",
    "state",
    "connection",
    "peer_provider",
    "data_seeder",
];

/// Turns a deserialization error into a [`ConfigError`] that names the field.
fn field_error(
    name: &str,
    overrides: &config::Map<String, String>,
    error: serde_path_to_error::Error<serde_json::Error>,
) -> ConfigError {
    let field = error.path().to_string();
    let message = error.inner().to_string();
    // serde_json appends " at line 0 column 0" for errors from a `Value`.
    let message = message
        .strip_suffix(" at line 0 column 0")
        .unwrap_or(&message)
        .to_owned();
    let mut parts: Vec<&str> = field.split('.').collect();
    if parts.last() == Some(&"kind") {
        parts.pop();
    }
    let layer = parts.last().copied().unwrap_or_default().to_owned();
    // Other enums of a layer's settings (`sync: always|interval`) keep serde's message,
    // which lists their variants.
    if let Some(kind) = unknown_kind(&message).filter(|_| LAYERS.contains(&layer.as_str())) {
        let known = registry::kinds()
            .of(&layer)
            .map(registry::list)
            .unwrap_or_else(|| "(none)".to_owned());
        return ConfigError::UnknownKind {
            path: name.to_owned(),
            field,
            layer,
            kind,
            known,
        };
    }
    // An item of a list names the list's variable.
    let list_field = field.split('[').next().unwrap_or(&field);
    let variable = format!("C19_{}", list_field.to_ascii_uppercase().replace('.', "__"));
    let origin = match overrides.get(&variable) {
        Some(value) => format!(" (from environment variable {variable}={value})"),
        None => String::new(),
    };
    ConfigError::Field {
        path: name.to_owned(),
        field,
        message,
        origin,
    }
}

/// The kind named in serde's "unknown variant `X`, expected ..." message.
fn unknown_kind(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown variant `")?;
    Some(rest.split_once('`')?.0.to_owned())
}
