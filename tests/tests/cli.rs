//! The `c19` command line, run as a real process: `--kinds`, `--check`, the 0.1
//! configurations, environment overrides, error messages, logging and signals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use c19_tests::{
    Node, agent_bin,
    fixtures::{CONFIGMAP_EXAMPLE, PROTOCOL_EXAMPLE},
    free_port,
};

fn c19(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(agent_bin!());
    command.args(args).env_remove("C19_CONFIG");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, yaml).unwrap();
    path
}

/// Runs `c19 --check` on `yaml`; returns (exit code, effective config or stderr).
fn check(yaml: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "config.yml", yaml);
    let out = c19(&["--config", path.to_str().unwrap(), "--check"], env);
    let code = out.status.code().unwrap_or(-1);
    if code == 0 {
        (code, text(&out.stdout))
    } else {
        (code, text(&out.stderr))
    }
}

fn effective(yaml: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let (code, out) = check(yaml, env);
    assert_eq!(code, 0, "--check failed: {out}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn kinds_lists_every_layer_of_the_default_build() {
    let out = c19(&["--kinds"], &[]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "agent: Default\nstate: Default\nconnection: Default\npeer_provider: Dns, K8s, Static\ndata_seeder: File\n"
    );
}

#[test]
fn the_0_1_configurations_load_unchanged() {
    let protocol = effective(PROTOCOL_EXAMPLE, &[]);
    assert_eq!(protocol["spec"]["agent"]["kind"], "Default");
    assert_eq!(protocol["spec"]["agent"]["port"], 3097);
    assert_eq!(protocol["spec"]["state"]["data_seeder"]["kind"], "File");
    assert_eq!(protocol["spec"]["connection"]["r0"], 3);
    assert_eq!(
        protocol["spec"]["connection"]["peer_provider"]["kind"],
        "Static"
    );

    let configmap = effective(CONFIGMAP_EXAMPLE, &[]);
    let provider = &configmap["spec"]["connection"]["peer_provider"];
    assert_eq!(provider["kind"], "K8s");
    assert_eq!(provider["selector"]["app"], "my-app");
    assert_eq!(provider["namespace"], "default");
}

#[test]
fn every_shipped_config_passes_check() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut checked = 0;
    for entry in fs::read_dir(&configs).unwrap() {
        let path = entry.unwrap().path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        );
        if path.is_file() && is_yaml {
            let out = c19(&["--config", path.to_str().unwrap(), "--check"], &[]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "only {checked} configs found in {}",
        configs.display()
    );
}

#[test]
fn defaults_are_filled_in() {
    let config = effective("spec: {}\n", &[]);
    assert_eq!(config["spec"]["agent"]["port"], 3097);
    assert_eq!(config["spec"]["state"]["purge_interval"], 60000);
    assert_eq!(config["spec"]["state"]["max_clock_skew"], 30000);
    assert_eq!(config["spec"]["connection"]["port"], 4097);
    assert_eq!(config["spec"]["connection"]["push_interval"], 1000);
    assert_eq!(config["spec"]["connection"]["pull_interval"], 60000);
    assert_eq!(config["spec"]["connection"]["r0"], 3);
    assert_eq!(config["spec"]["connection"]["timeout"], 1000);
}

#[test]
fn numbers_from_the_environment_and_quoted_yaml_fill_integer_fields() {
    let config = effective(
        PROTOCOL_EXAMPLE,
        &[
            ("C19_SPEC__AGENT__PORT", "4000"),
            ("C19_SPEC__CONNECTION__PUSH_INTERVAL", "250"),
            ("C19_SPEC__STATE__TTL", "5000"),
        ],
    );
    assert_eq!(config["spec"]["agent"]["port"], 4000);
    assert_eq!(config["spec"]["connection"]["push_interval"], 250);
    assert_eq!(config["spec"]["state"]["ttl"], 5000);

    let quoted = PROTOCOL_EXAMPLE
        .replace("port: 3097", "port: \"3098\"")
        .replace("r0: 3 ", "r0: '4' ")
        .replace("ttl: null", "ttl: \"1500\"");
    let config = effective(&quoted, &[]);
    assert_eq!(config["spec"]["agent"]["port"], 3098);
    assert_eq!(config["spec"]["connection"]["r0"], 4);
    assert_eq!(config["spec"]["state"]["ttl"], 1500);
}

#[test]
fn kind_need_not_be_the_first_key() {
    let yaml = "spec:\n  agent:\n    port: \"3099\"\n    kind: Default\n";
    assert_eq!(effective(yaml, &[])["spec"]["agent"]["port"], 3099);
}

#[test]
fn a_missing_file_is_named() {
    let out = c19(&["--config", "/nonexistent/c19.yml", "--check"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("/nonexistent/c19.yml"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unknown_kind_names_the_layer_and_the_registered_kinds() {
    let (code, stderr) = check(&PROTOCOL_EXAMPLE.replace("kind: File", "kind: S3"), &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("config.yml"), "{stderr}");
    assert!(stderr.contains("unknown data_seeder kind `S3`"), "{stderr}");
    assert!(stderr.contains("this binary has: File"), "{stderr}");

    let (code, stderr) = check("spec:\n  state:\n    kind: Redis\n", &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown state kind `Redis`; this binary has: Default"),
        "{stderr}"
    );
}

#[test]
fn a_bad_persistence_setting_names_the_field_and_the_choices() {
    let yaml = "spec:\n  state:\n    kind: Default\n    persistence:\n      path: /var/lib/c19\n      sync: sometimes\n";
    let (code, stderr) = check(yaml, &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("spec.state.persistence.sync"), "{stderr}");
    assert!(
        stderr.contains("expected `always` or `interval`"),
        "{stderr}"
    );
    assert!(!stderr.contains("kind"), "{stderr}");

    let yaml = "spec:\n  state:\n    kind: Default\n    persistence:\n      sync: always\n";
    let (code, stderr) = check(yaml, &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("missing field `path`"), "{stderr}");
}

#[test]
fn an_unknown_or_mistyped_field_is_named_with_what_was_expected() {
    let (code, stderr) = check(&PROTOCOL_EXAMPLE.replace("r0: 3 ", "rO: 3 "), &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("spec.connection"), "{stderr}");
    assert!(stderr.contains("unknown field `rO`"), "{stderr}");

    let (code, stderr) = check(&PROTOCOL_EXAMPLE.replace("port: 3097", "port: lots"), &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("spec.agent.port"), "{stderr}");
    assert!(stderr.contains("expected"), "{stderr}");

    let (code, stderr) = check(
        PROTOCOL_EXAMPLE,
        &[("C19_SPEC__CONNECTION__TIMEOUT", "soon")],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("C19_SPEC__CONNECTION__TIMEOUT=soon"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_peer_is_named() {
    let (code, stderr) = check(
        &PROTOCOL_EXAMPLE.replace("10.0.0.2:4097", "10.0.0.2:99999"),
        &[],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("`10.0.0.2:99999`"), "{stderr}");
}

fn single_node_yaml(agent_port: u16, peer_port: u16) -> String {
    format!(
        "spec:\n  agent:\n    kind: Default\n    address: 127.0.0.1\n    port: {agent_port}\n  connection:\n    kind: Default\n    address: 127.0.0.1\n    port: {peer_port}\n    peer_provider:\n      kind: Static\n      peers: []\n"
    )
}

async fn start_single(dir: &Path, log_format: Option<&str>) -> Node {
    let mut node = Node::new(&agent_bin!(), "single", dir, free_port(), free_port());
    fs::write(
        &node.config,
        single_node_yaml(node.agent_port, node.peer_port),
    )
    .unwrap();
    if let Some(format) = log_format {
        node.env("C19_LOG_FORMAT", format);
    }
    node.start().await;
    node
}

#[tokio::test]
async fn sigterm_and_sigint_shut_down_gracefully_with_exit_code_0() {
    let dir = tempfile::tempdir().unwrap();
    for signal in ["TERM", "INT"] {
        let mut node = start_single(dir.path(), None).await;
        node.set("k", serde_json::json!(1)).await;
        node.signal(signal);
        let code = node.wait_exit(Duration::from_secs(15)).await;
        assert_eq!(code, Some(0), "SIG{signal}; log:\n{}", node.logs());
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_single(dir.path(), Some("json")).await;
    node.signal("TERM");
    node.wait_exit(Duration::from_secs(15)).await;
    let logs = node.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert!(!lines.is_empty());
    for line in lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
}

#[tokio::test]
async fn a_taken_port_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut node = Node::new(&agent_bin!(), "clash", dir.path(), port, free_port());
    fs::write(&node.config, single_node_yaml(port, node.peer_port)).unwrap();
    node.spawn();
    let code = node.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(code, Some(1), "log:\n{}", node.logs());
    let logs = node.logs();
    assert!(logs.contains(&format!("127.0.0.1:{port}")), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

#[tokio::test]
async fn telemetry_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::new(&agent_bin!(), "quiet", dir.path(), free_port(), free_port());
    fs::write(
        &node.config,
        single_node_yaml(node.agent_port, node.peer_port),
    )
    .unwrap();
    node.env("C19_SPEC__TELEMETRY__ENABLED", "false");
    node.start().await;
    let answered = c19_tests::http()
        .get(node.telemetry_url("/healthz"))
        .send()
        .await;
    assert!(answered.is_err(), "telemetry answered although disabled");
}
