//! The 0.1 configuration files that c19's tests load, written once.
//!
//! The constants are byte for byte what the documents they come from show (comments
//! included: tests edit them with `str::replace`); the functions write the shapes the
//! harness and the tests write for agents on 127.0.0.1.

/// The configuration of the 0.1 protocol document (`shared/c19-protocol.md`), as
/// written there: every setting of the Default layers, a File data seeder and a Static
/// peer list.
pub const PROTOCOL_EXAMPLE: &str = "version: 0.1
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
";

/// The `config.yaml` of the ConfigMap example in the 0.1 README (a K8s peer provider).
pub const CONFIGMAP_EXAMPLE: &str = "version: 0.1
spec:
  agent:
    kind: Default
    port: 3097
  state:
    kind: Default
    ttl: null
    purge_interval: 60000
  connection:
    kind: Default
    port: 4097
    push_interval: 1000
    pull_interval: 60000
    r0: 3
    timeout: 1000
    peer_provider:
      kind: K8s
      selector:
        app: my-app
      namespace: default
";

/// `configs/local.yml`: a single agent on this machine, no peers (the quick start).
pub const LOCAL: &str = "# A single agent on this machine, no peers: the quick start.
#   cargo run -p c19-bin -- --config configs/local.yml
version: 0.1
spec:
  agent:
    kind: Default
    address: 127.0.0.1
    port: 3097
  state:
    kind: Default
    ttl: null
    purge_interval: 60000
  connection:
    kind: Default
    address: 127.0.0.1
    port: 4097
    peer_provider:
      kind: Static
      peers: []
  telemetry:
    address: 127.0.0.1
    port: 9097
";

/// `configs/cluster-node-<node>.yml` (`node` 0, 1 or 2): one node of a 3-node cluster on
/// this machine, agent on port `3097 + node`, peers on `4097 + node`, telemetry on
/// `9097 + node`, static peers the two others. Panics for `node > 2`.
pub fn cluster_node(node: u16) -> String {
    assert!(
        node <= 2,
        "the example cluster has nodes 0, 1 and 2, not {node}"
    );
    let peers: Vec<String> = (0..3)
        .filter(|&other| other != node)
        .map(|other| format!("\"127.0.0.1:{}\"", 4097 + other))
        .collect();
    format!(
        "# Node {node} of a 3-node cluster on this machine (static peers on 127.0.0.1).
#   cargo run -p c19-bin -- --config configs/cluster-node-{node}.yml
# Agent http://127.0.0.1:{agent}/, peers talk on 127.0.0.1:{peer},
# health and metrics on http://127.0.0.1:{telemetry}/.
version: 0.1
spec:
  agent:
    kind: Default
    address: 127.0.0.1
    port: {agent}
  state:
    kind: Default
  connection:
    kind: Default
    address: 127.0.0.1
    port: {peer}
    push_interval: 200
    pull_interval: 5000
    r0: 2
    peer_provider:
      kind: Static
      peers: [{peers}]
  telemetry:
    address: 127.0.0.1
    port: {telemetry}
",
        agent = 3097 + node,
        peer = 4097 + node,
        telemetry = 9097 + node,
        peers = peers.join(", "),
    )
}

/// A single agent on 127.0.0.1 with the Default layers and no peers, on `agent_port`
/// and `peer_port`; `state` is extra YAML for the state section (indented here).
pub fn solo(agent_port: u16, peer_port: u16, state: &str) -> String {
    format!(
        "version: 0.1\nspec:\n  agent:\n    kind: Default\n    address: 127.0.0.1\n    port: {agent_port}\n  state:\n    kind: Default\n{}  connection:\n    kind: Default\n    address: 127.0.0.1\n    port: {peer_port}\n    peer_provider:\n      kind: Static\n      peers: []\n",
        state
            .lines()
            .map(|line| format!("    {line}\n"))
            .collect::<String>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_cluster_is_the_one_in_configs() {
        let node_1 = cluster_node(1);
        assert!(node_1.contains("port: 3098"));
        assert!(node_1.contains(r#"peers: ["127.0.0.1:4097", "127.0.0.1:4099"]"#));
    }

    #[test]
    fn every_fixture_is_a_0_1_file() {
        for text in [
            PROTOCOL_EXAMPLE,
            CONFIGMAP_EXAMPLE,
            LOCAL,
            &solo(1, 2, "ttl: 5\n"),
        ] {
            assert!(text.contains("version: 0.1\nspec:\n"), "{text}");
        }
        assert!(solo(1, 2, "ttl: 5\n").contains("    kind: Default\n    ttl: 5\n  connection:"));
    }
}
