//! Telemetry without collisions: agents of plain 0.1 files (no `telemetry` section) share
//! a host although only one can have the default telemetry port 9097, while a telemetry
//! port that was configured and is taken stays a start-up error.
//!
//! These agents are spawned directly, not through the harness, which always sets
//! `C19_SPEC__TELEMETRY__PORT`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use c19_tests::{agent_bin, free_port, http, wait_until};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);
const DEFAULT_TELEMETRY_PORT: u16 = 9097;

/// An agent process, killed when dropped.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    /// Runs the agent with `config` and only the given `C19_*` variables (none of the
    /// test process's own).
    fn spawn(dir: &Path, name: &str, config: &str, env: &[(&str, String)]) -> Self {
        let path = dir.join(format!("{name}.yml"));
        fs::write(&path, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let file = fs::File::create(&log).unwrap();
        let mut command = Command::new(agent_bin!());
        for (key, _) in std::env::vars() {
            if key.starts_with("C19_") {
                command.env_remove(key);
            }
        }
        command
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        Self {
            child: command.spawn().unwrap(),
            log,
        }
    }

    fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `deadline` for the process to exit; its exit code.
    async fn exit_code(&mut self, deadline: Duration) -> Option<i32> {
        let mut code = None;
        wait_until(deadline, || {
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            async move { exited }
        })
        .await;
        if let Ok(Some(status)) = self.child.try_wait() {
            code = status.code();
        }
        code
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain 0.1 file: agent and peer ports, static peers, nothing else.
fn config_0_1(agent_port: u16, peer_port: u16, other_peer_port: u16) -> String {
    format!(
        "version: 0.1\nspec:\n  agent:\n    kind: Default\n    port: {agent_port}\n  state:\n    kind: Default\n    ttl: null\n    purge_interval: 60000\n  connection:\n    kind: Default\n    port: {peer_port}\n    push_interval: 1000\n    pull_interval: 60000\n    r0: 3\n    timeout: 1000\n    peer_provider:\n      kind: Static\n      peers: [\"127.0.0.1:{other_peer_port}\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_plain_0_1_agents_share_a_host_although_9097_is_taken() {
    // Make sure the default telemetry port is taken; if something else holds it, that
    // is the same situation.
    let ours = TcpListener::bind(("0.0.0.0", DEFAULT_TELEMETRY_PORT)).ok();
    let dir = tempfile::tempdir().unwrap();
    let (agent_a, peer_a, agent_b, peer_b) = (free_port(), free_port(), free_port(), free_port());
    let a = Agent::spawn(dir.path(), "a", &config_0_1(agent_a, peer_a, peer_b), &[]);
    let b = Agent::spawn(dir.path(), "b", &config_0_1(agent_b, peer_b, peer_a), &[]);
    let logs = || format!("==== a\n{}\n==== b\n{}", a.logs(), b.logs());

    let url = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    let up = wait_until(DEADLINE, || async {
        http().get(url(agent_a, "/probe")).send().await.is_ok()
            && http().get(url(agent_b, "/probe")).send().await.is_ok()
    })
    .await;
    assert!(up, "the agents did not both start; logs:\n{}", logs());

    let written = http()
        .put(url(agent_a, "/"))
        .json(&json!({ "shared": { "value": "from a" } }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(written, 204);
    let converged = wait_until(DEADLINE, || async {
        match http().get(url(agent_b, "/shared")).send().await {
            Ok(response) if response.status() == 200 => response
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|entry| entry["value"] == "from a"),
            _ => false,
        }
    })
    .await;
    assert!(converged, "b never read a's write; logs:\n{}", logs());

    if ours.is_some() {
        for (name, agent) in [("a", &a), ("b", &b)] {
            let log = agent.logs();
            assert!(
                log.lines()
                    .any(|line| line.contains("WARN") && line.contains("port 9097 is taken")),
                "{name} did not warn about port 9097; log:\n{log}"
            );
        }
    }
    drop(ours);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_telemetry_port_that_is_taken_is_a_start_up_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let in_file = format!(
        "{}  telemetry:\n    address: 127.0.0.1\n    port: {port}\n",
        config_0_1(free_port(), free_port(), free_port())
    );
    let by_env = config_0_1(free_port(), free_port(), free_port());
    let cases = [
        ("in-file", in_file, vec![]),
        (
            "by-env",
            by_env,
            vec![
                ("C19_SPEC__TELEMETRY__ADDRESS", "127.0.0.1".to_owned()),
                ("C19_SPEC__TELEMETRY__PORT", port.to_string()),
            ],
        ),
    ];
    for (name, config, env) in cases {
        let mut agent = Agent::spawn(dir.path(), name, &config, &env);
        let code = agent.exit_code(DEADLINE).await;
        let log = agent.logs();
        assert_eq!(code, Some(1), "{name}: the agent kept running; log:\n{log}");
        assert!(
            log.contains(&format!("telemetry: cannot listen on 127.0.0.1:{port}")),
            "{name}: the error does not name the port; log:\n{log}"
        );
    }
    drop(taken);
}
