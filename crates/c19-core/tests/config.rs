//! Configuration loading, with test-only layers registered under the 0.1 kind names.
//!
//! Registrations must be made from an integration test: a `#[cfg(test)]` unit test of
//! c19-core would see a second copy of the crate and none of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use c19_core::{
    Agent, AgentConfig, Config, Connection, ConnectionConfig, DataSeeder, DataSeederConfig,
    LayerContext, LayerError, Peer, PeerError, PeerProvider, PeerProviderConfig, SafeState,
    SeedError, StateConfig, StateError, config::ConfigError, reexports::futures::future::BoxFuture,
    registry,
};
use serde::{Deserialize, Serialize};

// These layers are only ever deserialized: building one is an error.

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestAgent {
    #[serde(default)]
    port: u16,
}

#[typetag::serde(name = "Default")]
impl AgentConfig for TestAgent {
    fn build<'a>(
        &'a self,
        _: &'a LayerContext,
        _: SafeState,
    ) -> BoxFuture<'a, Result<Box<dyn Agent>, LayerError>> {
        Box::pin(async { Err(LayerError::other("a test agent is not built")) })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestState {
    #[serde(default)]
    ttl: Option<u64>,
    #[serde(default)]
    purge_interval: Option<u64>,
    #[serde(default)]
    data_seeder: Option<Box<dyn DataSeederConfig>>,
    /// A list field no core code knows of: environment lists are generic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ports: Vec<u16>,
}

#[typetag::serde(name = "Default")]
impl StateConfig for TestState {
    fn build<'a>(&'a self, _: &'a LayerContext) -> BoxFuture<'a, Result<SafeState, StateError>> {
        Box::pin(async { Err(StateError::Unsupported("building a test state")) })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestConnection {
    #[serde(default)]
    port: u16,
    #[serde(default)]
    target_port: Option<u16>,
    #[serde(default)]
    push_interval: Option<u64>,
    #[serde(default)]
    pull_interval: Option<u64>,
    #[serde(default)]
    r0: Option<usize>,
    #[serde(default)]
    timeout: Option<u64>,
    peer_provider: Option<Box<dyn PeerProviderConfig>>,
}

#[typetag::serde(name = "Default")]
impl ConnectionConfig for TestConnection {
    fn build<'a>(
        &'a self,
        _: &'a LayerContext,
        _: SafeState,
    ) -> BoxFuture<'a, Result<Box<dyn Connection>, LayerError>> {
        Box::pin(async { Err(LayerError::other("a test connection is not built")) })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestStatic {
    peers: Vec<Peer>,
}

#[typetag::serde(name = "Static")]
impl PeerProviderConfig for TestStatic {
    fn build<'a>(
        &'a self,
        _: &'a LayerContext,
    ) -> BoxFuture<'a, Result<std::sync::Arc<dyn PeerProvider>, PeerError>> {
        Box::pin(async { Err(PeerError::Other("a test provider is not built".into())) })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestK8s {
    #[serde(default)]
    selector: BTreeMap<String, String>,
    #[serde(default)]
    namespace: Option<String>,
}

#[typetag::serde(name = "K8s")]
impl PeerProviderConfig for TestK8s {
    fn build<'a>(
        &'a self,
        _: &'a LayerContext,
    ) -> BoxFuture<'a, Result<std::sync::Arc<dyn PeerProvider>, PeerError>> {
        Box::pin(async { Err(PeerError::Other("a test provider is not built".into())) })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    filename: String,
}

#[typetag::serde(name = "File")]
impl DataSeederConfig for TestFile {
    fn build<'a>(
        &'a self,
        _: &'a LayerContext,
    ) -> BoxFuture<'a, Result<Box<dyn DataSeeder>, SeedError>> {
        Box::pin(async { Err(SeedError::Other("a test seeder is not built".into())) })
    }
}

/// The configuration of `../shared/c19-protocol.md`, as written there.
const PROTOCOL_EXAMPLE: &str = r#"
version: 0.1
spec:
  agent:
    kind: Default          # HTTP agent
    port: 3097
  state:
    kind: Default
    ttl: null              # default TTL in ms for values that carry none
    purge_interval: 60000  # ms between sweeps of expired keys
    data_seeder:           # optional
      kind: File
      filename: data.json
  connection:
    kind: Default
    port: 4097             # listen port for peers
    target_port: null      # port to dial on peers given without a port (falls back to `port`)
    push_interval: 1000    # ms
    pull_interval: 60000   # ms
    r0: 3                  # peers sampled at random per round
    timeout: 1000          # ms, connect timeout to a peer
    peer_provider:
      kind: Static         # or K8s
      peers: [127.0.0.1, 10.0.0.2:4097]
"#;

fn json(config: &Config) -> serde_json::Value {
    serde_json::to_value(config).unwrap()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

#[test]
fn the_protocol_example_loads() {
    let config = Config::from_yaml("config.yml", PROTOCOL_EXAMPLE).unwrap();
    let value = json(&config);
    assert_eq!(value["spec"]["agent"]["port"], 3097);
    assert_eq!(
        value["spec"]["state"]["data_seeder"]["filename"],
        "data.json"
    );
    assert_eq!(
        value["spec"]["connection"]["peer_provider"]["peers"],
        serde_json::json!(["127.0.0.1", "10.0.0.2:4097"])
    );
    assert_eq!(value["version"], 0.1);
}

#[test]
fn a_k8s_configmap_style_config_loads_with_dotted_and_cased_labels() {
    let yaml = "version: 0.1\nspec:\n  agent:\n    kind: Default\n    port: 3097\n  state:\n    kind: Default\n    ttl: null\n  connection:\n    kind: Default\n    port: 4097\n    peer_provider:\n      kind: K8s\n      selector:\n        app: my-app\n        app.kubernetes.io/name: c19\n        Tier: Cache\n      namespace: default\n";
    let config = Config::from_yaml("configmap.yml", yaml).unwrap();
    let selector = &json(&config)["spec"]["connection"]["peer_provider"]["selector"];
    assert_eq!(selector["app"], "my-app");
    assert_eq!(selector["app.kubernetes.io/name"], "c19");
    assert_eq!(selector["Tier"], "Cache");
}

#[test]
fn missing_layers_default_to_kind_default() {
    let config = Config::from_yaml("empty.yml", "").unwrap();
    let value = json(&config);
    assert_eq!(value["spec"]["agent"]["kind"], "Default");
    assert_eq!(value["spec"]["state"]["kind"], "Default");
    assert_eq!(value["spec"]["connection"]["kind"], "Default");
}

#[test]
fn env_overrides_set_integers_strings_and_lists() {
    let config = Config::from_yaml_with_env(
        "config.yml",
        PROTOCOL_EXAMPLE,
        env(&[
            ("C19_SPEC__AGENT__PORT", "4000"),
            ("C19_SPEC__CONNECTION__R0", "5"),
            ("C19_SPEC__STATE__DATA_SEEDER__FILENAME", "other.json"),
            (
                "C19_SPEC__CONNECTION__PEER_PROVIDER__PEERS",
                "10.0.0.1,10.0.0.2:4098",
            ),
        ]),
    )
    .unwrap();
    let value = json(&config);
    assert_eq!(value["spec"]["agent"]["port"], 4000);
    assert_eq!(value["spec"]["connection"]["r0"], 5);
    assert_eq!(
        value["spec"]["state"]["data_seeder"]["filename"],
        "other.json"
    );
    assert_eq!(
        value["spec"]["connection"]["peer_provider"]["peers"],
        serde_json::json!(["10.0.0.1", "10.0.0.2:4098"])
    );
}

#[test]
fn any_list_field_of_any_layer_takes_a_comma_separated_variable() {
    let config = Config::from_yaml_with_env(
        "config.yml",
        PROTOCOL_EXAMPLE,
        env(&[
            ("C19_SPEC__STATE__PORTS", "4000, 4001"),
            ("C19_SPEC__CONNECTION__PEER_PROVIDER__PEERS", "10.0.0.9"),
        ]),
    )
    .unwrap();
    let value = json(&config);
    assert_eq!(
        value["spec"]["state"]["ports"],
        serde_json::json!([4000, 4001])
    );
    assert_eq!(
        value["spec"]["connection"]["peer_provider"]["peers"],
        serde_json::json!(["10.0.0.9"])
    );
    let error = Config::from_yaml_with_env(
        "config.yml",
        PROTOCOL_EXAMPLE,
        env(&[("C19_SPEC__STATE__PORTS", "4000,high")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("spec.state.ports") && error.contains("C19_SPEC__STATE__PORTS=4000,high"),
        "{error}"
    );
}

#[test]
fn kubernetes_service_variables_are_ignored() {
    // A Service named `c19` makes Kubernetes inject these into every pod.
    let config = Config::from_yaml_with_env(
        "config.yml",
        PROTOCOL_EXAMPLE,
        env(&[
            ("C19_PORT", "tcp://10.0.0.1:3097"),
            ("C19_SERVICE_HOST", "10.0.0.1"),
            ("C19_PORT_3097_TCP_ADDR", "10.0.0.1"),
        ]),
    );
    assert!(config.is_ok(), "{:?}", config.err());
}

#[test]
fn a_missing_file_names_the_path() {
    let error = Config::load_with_env("/nonexistent/c19.yml", env(&[])).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    let message = error.to_string();
    assert!(message.contains("/nonexistent/c19.yml"), "{message}");
}

#[test]
fn invalid_yaml_names_the_file() {
    let message = Config::from_yaml("broken.yml", "spec: [unclosed")
        .unwrap_err()
        .to_string();
    assert!(message.contains("broken.yml"), "{message}");
}

#[test]
fn an_unknown_kind_names_the_layer_and_lists_the_kinds() {
    let yaml = PROTOCOL_EXAMPLE.replace("kind: Static", "kind: Consul");
    let error = Config::from_yaml("config.yml", &yaml).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, ConfigError::UnknownKind { .. }),
        "{message}"
    );
    assert!(message.contains("config.yml"), "{message}");
    assert!(
        message.contains("unknown peer_provider kind `Consul`"),
        "{message}"
    );
    assert!(message.contains("K8s, Static"), "{message}");
    assert!(
        message.contains("spec.connection.peer_provider"),
        "{message}"
    );
}

#[test]
fn an_unknown_field_is_named() {
    let yaml = PROTOCOL_EXAMPLE.replace("    port: 3097", "    prot: 3097");
    let message = Config::from_yaml("config.yml", &yaml)
        .unwrap_err()
        .to_string();
    assert!(message.contains("config.yml"), "{message}");
    assert!(message.contains("spec.agent"), "{message}");
    assert!(message.contains("unknown field `prot`"), "{message}");
}

#[test]
fn a_mistyped_field_names_it_and_what_was_expected() {
    let yaml = PROTOCOL_EXAMPLE.replace("r0: 3 ", "r0: three ");
    let message = Config::from_yaml("config.yml", &yaml)
        .unwrap_err()
        .to_string();
    assert!(message.contains("spec.connection.r0"), "{message}");
    assert!(message.contains("expected"), "{message}");
}

#[test]
fn a_mistyped_env_override_names_the_variable() {
    let message = Config::from_yaml_with_env(
        "config.yml",
        PROTOCOL_EXAMPLE,
        env(&[("C19_SPEC__AGENT__PORT", "high")]),
    )
    .unwrap_err()
    .to_string();
    assert!(message.contains("spec.agent.port"), "{message}");
    assert!(message.contains("C19_SPEC__AGENT__PORT=high"), "{message}");
}

#[test]
fn a_malformed_peer_is_named() {
    let yaml = PROTOCOL_EXAMPLE.replace("10.0.0.2:4097", "10.0.0.2:port");
    let message = Config::from_yaml("config.yml", &yaml)
        .unwrap_err()
        .to_string();
    assert!(message.contains("`10.0.0.2:port`"), "{message}");
    assert!(
        message.contains("spec.connection.peer_provider.peers"),
        "{message}"
    );
}

#[test]
fn the_registry_lists_registered_kinds() {
    let kinds = registry::kinds();
    assert_eq!(kinds.agent, ["Default"]);
    assert_eq!(kinds.peer_provider, ["K8s", "Static"]);
    assert_eq!(kinds.data_seeder, ["File"]);
}

#[test]
fn the_effective_configuration_round_trips() {
    let config = Config::from_yaml("config.yml", PROTOCOL_EXAMPLE).unwrap();
    let printed = config.to_pretty_json();
    let again = Config::from_yaml("printed", &printed).unwrap();
    assert_eq!(json(&config), json(&again));
}

#[test]
fn telemetry_is_explicit_only_when_given_in_the_file_or_the_environment() {
    let plain = Config::from_yaml("config.yml", PROTOCOL_EXAMPLE).unwrap();
    assert!(
        !plain.spec.telemetry.explicit,
        "a 0.1 file has no telemetry"
    );
    assert_eq!(plain.spec.telemetry.port, 9097);
    assert!(
        json(&plain)["spec"]["telemetry"].get("explicit").is_none(),
        "the flag is not part of the printed configuration"
    );

    let in_file = format!("{PROTOCOL_EXAMPLE}  telemetry: {{ port: 9200 }}\n");
    let config = Config::from_yaml("config.yml", &in_file).unwrap();
    assert!(config.spec.telemetry.explicit);
    assert_eq!(config.spec.telemetry.port, 9200);
    let empty_section = format!("{PROTOCOL_EXAMPLE}  telemetry: {{}}\n");
    let config = Config::from_yaml("config.yml", &empty_section).unwrap();
    assert!(
        config.spec.telemetry.explicit,
        "an empty section is given too"
    );

    for variable in ["C19_SPEC__TELEMETRY__PORT", "C19_SPEC__TELEMETRY__ADDRESS"] {
        let value = if variable.ends_with("PORT") {
            "9300"
        } else {
            "127.0.0.1"
        };
        let config =
            Config::from_yaml_with_env("config.yml", PROTOCOL_EXAMPLE, env(&[(variable, value)]))
                .unwrap();
        assert!(config.spec.telemetry.explicit, "{variable} sets telemetry");
    }
    let other = Config::from_yaml_with_env(
        "config.yml",
        PROTOCOL_EXAMPLE,
        env(&[("C19_SPEC__AGENT__PORT", "4000")]),
    )
    .unwrap();
    assert!(!other.spec.telemetry.explicit);
}
