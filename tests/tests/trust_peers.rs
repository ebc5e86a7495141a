//! Mutual TLS between agents, with real processes and certificates made at test time:
//! a strict cluster converges; intruders (plaintext, no certificate, another CA, the
//! wrong name, an expired certificate) are refused by reason and change nothing; the
//! certificate rotates under load with no failed exchange; and a cluster migrates
//! plaintext → permissive → strict one agent at a time without splitting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops;

use std::{path::Path, time::Duration};

use c19_tests::{
    Cluster, ClusterBuilder, Node, agent_bin,
    pki::{Ca, intruder, peer_tls_yaml},
    wait_until,
};
use ops::{DEADLINE, metric};
use serde_json::json;

/// Rewrites `node`'s configuration with `tls` (YAML lines, or none) in its connection.
fn set_tls(node: &Node, tls: Option<&str>) {
    let config = std::fs::read_to_string(&node.config).unwrap();
    let start = config.find("    tls:\n");
    let end = config.find("    peer_provider:\n").unwrap();
    let mut config = match start {
        Some(start) => format!("{}{}", &config[..start], &config[end..]),
        None => config,
    };
    if let Some(tls) = tls {
        let at = config.find("    peer_provider:\n").unwrap();
        let lines: String = tls.lines().map(|line| format!("    {line}\n")).collect();
        config.insert_str(at, &lines);
    }
    std::fs::write(&node.config, config).unwrap();
}

/// A strict cluster of `n` sharing one certificate in `dir`.
async fn strict_cluster(n: usize, ca: &Ca, dir: &Path) -> Cluster {
    ca.write(dir, &["c19"], false);
    ClusterBuilder::new(agent_bin!(), n)
        .connection_yaml(&peer_tls_yaml(dir, "strict"))
        .start()
        .await
}

async fn failures(node: &Node, operation: &str) -> f64 {
    metric(
        node,
        "c19_connection_errors_total",
        &[("operation", operation)],
    )
    .await
}

async fn refused(node: &Node, reason: &str) -> f64 {
    metric(node, "c19_connection_refused_total", &[("reason", reason)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_cluster_converges_and_refuses_every_intruder() {
    let ca = Ca::new("c19 test CA");
    let certs = tempfile::tempdir().unwrap();
    let cluster = strict_cluster(3, &ca, certs.path()).await;
    cluster.nodes[0].set("shared", json!("over tls")).await;
    assert!(
        cluster
            .converged("shared", Some(json!("over tls")), DEADLINE)
            .await,
        "{}",
        cluster.logs()
    );
    let target = &cluster.nodes[1];
    let push = json!({ "intruded": { "value": "evil" } });

    // Plaintext: a clear 400 naming TLS.
    let response = c19_tests::http()
        .put(target.peer_url("/"))
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["c19-tls"], "required");
    assert!(response.text().await.unwrap().contains("only TLS"));
    let read = c19_tests::http()
        .get(target.peer_url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 400, "a plaintext read of the state");

    let other_ca = Ca::new("another CA");
    let (other_cert, other_key) = other_ca.issue(&["c19"], false);
    let (wrong_cert, wrong_key) = ca.issue(&["intruder"], false);
    let (old_cert, old_key) = ca.issue(&["c19"], true);
    let url = format!("https://127.0.0.1:{}/", target.peer_port);
    let cases = [
        ("no_certificate", intruder(None)),
        ("unknown_ca", intruder(Some((&other_cert, &other_key)))),
        ("wrong_name", intruder(Some((&wrong_cert, &wrong_key)))),
        ("expired_certificate", intruder(Some((&old_cert, &old_key)))),
    ];
    for (reason, client) in &cases {
        let before = refused(target, reason).await;
        let put = client.put(&url).json(&push).send().await;
        assert!(put.is_err(), "{reason}: the push went through: {put:?}");
        let get = client.get(&url).send().await;
        assert!(get.is_err(), "{reason}: the state was read: {get:?}");
        let counted = wait_until(DEADLINE, || async {
            refused(target, reason).await >= before + 2.0
        })
        .await;
        assert!(counted, "{reason} was not counted");
    }
    assert!(refused(target, "plaintext").await >= 2.0);
    // Nothing any intruder sent reached a state; peers keep talking.
    cluster.nodes[2].set("after", json!(1)).await;
    assert!(cluster.converged("after", Some(json!(1)), DEADLINE).await);
    for node in &cluster.nodes {
        assert_eq!(node.get("intruded").await, None, "{}", node.name);
    }
    // One log line a minute per address, not one per refusal.
    let logs = target.logs();
    assert_eq!(
        logs.matches("refused a peer connection").count(),
        1,
        "{logs}"
    );
    assert!(
        metric(
            target,
            "c19_tls_certificate_expiry_seconds",
            &[("component", "connection")]
        )
        .await
            > 1.7e9
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_rotates_under_load_without_a_failed_exchange() {
    let ca = Ca::new("c19 test CA");
    let certs = tempfile::tempdir().unwrap();
    let cluster = strict_cluster(3, &ca, certs.path()).await;
    let writer = &cluster.nodes[0];
    let expiry = || {
        metric(
            writer,
            "c19_tls_certificate_expiry_seconds",
            &[("component", "connection")],
        )
    };
    let first_expiry = expiry().await;
    // Failures while the agents were starting one after another are not the rotation's.
    writer.set("warm", json!(true)).await;
    assert!(cluster.converged("warm", Some(json!(true)), DEADLINE).await);
    let mut failures_before = Vec::new();
    for node in &cluster.nodes {
        for operation in ["push", "pull"] {
            failures_before.push(failures(node, operation).await);
        }
    }
    for i in 0..150 {
        writer.set(&format!("k{i}"), json!(i)).await;
        if i == 50 {
            // A new certificate and key from the same CA, valid longer.
            let (cert, key) = ca.issue_until(&["c19"], 2090);
            let dir = certs.path();
            std::fs::write(dir.join(".tls.key.new"), key).unwrap();
            std::fs::write(dir.join(".tls.crt.new"), cert).unwrap();
            std::fs::rename(dir.join(".tls.key.new"), dir.join("tls.key")).unwrap();
            std::fs::rename(dir.join(".tls.crt.new"), dir.join("tls.crt")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        cluster.converged("k149", Some(json!(149)), DEADLINE).await,
        "{}",
        cluster.logs()
    );
    for node in &cluster.nodes {
        assert!(
            node.logs().contains("reloaded the TLS certificate"),
            "{}",
            node.logs()
        );
        for i in [0, 50, 51, 149] {
            assert_eq!(
                node.value(&format!("k{i}")).await,
                Some(json!(i)),
                "{}",
                node.name
            );
        }
    }
    let mut failures_after = Vec::new();
    for node in &cluster.nodes {
        for operation in ["push", "pull"] {
            failures_after.push(failures(node, operation).await);
        }
    }
    assert_eq!(
        failures_before,
        failures_after,
        "exchanges failed during the rotation:\n{}",
        cluster.logs()
    );
    // Every agent now presents the new certificate (it expires in 2090).
    let new_expiry = 3_786_912_000.0;
    assert_ne!(first_expiry, new_expiry);
    for node in &cluster.nodes {
        let now = metric(
            node,
            "c19_tls_certificate_expiry_seconds",
            &[("component", "connection")],
        )
        .await;
        assert_eq!(now, new_expiry, "{}", node.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_to_permissive_to_strict_one_agent_at_a_time() {
    let ca = Ca::new("c19 test CA");
    let certs = tempfile::tempdir().unwrap();
    ca.write(certs.path(), &["c19"], false);
    let mut cluster = ClusterBuilder::new(agent_bin!(), 3).start().await;
    let mut round = 0;
    for mode in ["permissive", "strict"] {
        for i in 0..cluster.nodes.len() {
            {
                let node = &mut cluster.nodes[i];
                set_tls(node, Some(&peer_tls_yaml(certs.path(), mode)));
                node.signal("TERM");
                assert!(node.wait_exit(DEADLINE).await.is_some(), "{}", node.logs());
                node.start().await;
            }
            // Every agent, whichever step it is at, gets a write from every other.
            for writer in 0..cluster.nodes.len() {
                round += 1;
                let key = format!("step-{round}");
                cluster.nodes[writer].set(&key, json!(mode)).await;
                assert!(
                    cluster.converged(&key, Some(json!(mode)), DEADLINE).await,
                    "{key} ({mode}, {i} restarted, written on {writer}) did not spread:\n{}",
                    cluster.logs()
                );
            }
        }
    }
    // Strict everywhere now: plaintext is refused.
    let response = c19_tests::http()
        .put(cluster.nodes[0].peer_url("/"))
        .json(&json!({ "late": { "value": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let applied = wait_until(Duration::from_millis(500), || async {
        cluster.nodes[0].get("late").await.is_some()
    })
    .await;
    assert!(!applied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_stop_start_up_naming_the_file() {
    let ca = Ca::new("c19 test CA");
    let certs = tempfile::tempdir().unwrap();
    ca.write(certs.path(), &["c19"], false);
    // The certificate of another CA than the one configured.
    std::fs::write(certs.path().join("ca.crt"), Ca::new("another CA").pem).unwrap();
    let mut cluster = ClusterBuilder::new(agent_bin!(), 1)
        .connection_yaml(&peer_tls_yaml(certs.path(), "strict"))
        .build();
    let node = &mut cluster.nodes[0];
    node.spawn();
    let code = node.wait_exit(DEADLINE).await;
    assert_eq!(code, Some(1), "{}", node.logs());
    let logs = node.logs();
    assert!(logs.contains("is not signed by the CA"), "{logs}");
    assert!(
        logs.contains(&format!("{}/tls.crt", certs.path().display())),
        "{logs}"
    );
    assert!(!logs.contains("PRIVATE KEY"), "{logs}");
}
