//! The agent API behind HTTPS and bearer tokens, with a real agent process: plaintext
//! is refused, a client certificate is required when `ca` is set, tokens are checked
//! over TLS too, and `c19 --check` names bad files without printing a secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops;

use std::process::Command;

use c19_tests::{
    Node, agent_bin, free_port,
    pki::{Ca, https_client},
};
use ops::metric;
use serde_json::json;

/// An agent whose API has HTTPS (a client certificate required when `client_ca`),
/// and tokens from `tokens` when given.
fn agent(dir: &std::path::Path, client_ca: bool, tokens: Option<&str>) -> Node {
    let node = Node::new(&agent_bin!(), "agent", dir, free_port(), free_port());
    let ca_line = if client_ca {
        format!("      ca: {}/ca.crt\n", dir.display())
    } else {
        String::new()
    };
    let auth = match tokens {
        Some(tokens) => {
            std::fs::write(dir.join("tokens"), tokens).unwrap();
            format!("    auth:\n      tokens_file: {}/tokens\n", dir.display())
        }
        None => String::new(),
    };
    let config = format!(
        "version: 0.1\nspec:\n  agent:\n    kind: Default\n    address: 127.0.0.1\n    port: {agent}\n{auth}    tls:\n      cert: {dir}/tls.crt\n      key: {dir}/tls.key\n{ca_line}  connection:\n    kind: Default\n    address: 127.0.0.1\n    port: {peer}\n",
        agent = node.agent_port,
        peer = node.peer_port,
        dir = dir.display(),
    );
    std::fs::write(&node.config, config).unwrap();
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_speaks_https_and_refuses_plaintext() {
    let ca = Ca::new("c19 test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.write(dir.path(), &["localhost"], false);
    let mut node = agent(dir.path(), false, None);
    node.start().await;
    let client = https_client(&ca.pem, None);
    let url = |path: &str| format!("https://localhost:{}{path}", node.agent_port);
    let put = client
        .put(url("/"))
        .json(&json!({ "cat": { "value": "garfield" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let get = client.get(url("/cat")).send().await.unwrap();
    assert_eq!(
        get.json::<serde_json::Value>().await.unwrap()["value"],
        "garfield"
    );

    let plain = c19_tests::http()
        .get(node.url("/cat"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    assert!(plain.text().await.unwrap().contains("only TLS"));
    assert!(metric(&node, "c19_agent_refused_total", &[("reason", "plaintext")]).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_ca_clients_need_a_certificate_and_tokens_still_apply() {
    let ca = Ca::new("c19 test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.write(dir.path(), &["localhost"], false);
    let token = "s3cr3t-token-for-the-test";
    let mut node = agent(
        dir.path(),
        true,
        Some(&format!("{token}\nreader-token-0001 read\n")),
    );
    node.start().await;
    let url = format!("https://localhost:{}/cat", node.agent_port);

    let anonymous = https_client(&ca.pem, None);
    assert!(
        anonymous.get(&url).send().await.is_err(),
        "no client certificate"
    );
    let refused = metric(
        &node,
        "c19_agent_refused_total",
        &[("reason", "no_certificate")],
    )
    .await;
    assert!(refused >= 1.0);

    let (cert, key) = ca.issue(&["some-client"], false);
    let client = https_client(&ca.pem, Some((&cert, &key)));
    let without_token = client.get(&url).send().await.unwrap();
    assert_eq!(without_token.status(), 401);
    let reader = client
        .put(format!("https://localhost:{}/", node.agent_port))
        .bearer_auth("reader-token-0001")
        .json(&json!({ "cat": { "value": "felix" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(reader.status(), 403);
    let writer = client
        .put(format!("https://localhost:{}/", node.agent_port))
        .bearer_auth(token)
        .json(&json!({ "cat": { "value": "felix" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(writer.status(), 204);
    let read = client
        .get(&url)
        .bearer_auth("reader-token-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.json::<serde_json::Value>().await.unwrap()["value"],
        "felix"
    );
    assert!(!node.logs().contains(token), "a token reached the log");
}

#[test]
fn check_names_bad_files_and_never_prints_a_token() {
    let ca = Ca::new("c19 test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.write(dir.path(), &["localhost"], false);
    let token = "s3cr3t-token-for-the-check";
    let node = agent(dir.path(), true, Some(token));
    let check = || {
        let output = Command::new(agent_bin!())
            .arg("--config")
            .arg(&node.config)
            .arg("--check")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    };
    let (code, text) = check();
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains(token), "{text}");

    // A key that is not the certificate's.
    let (_, other_key) = ca.issue(&["localhost"], false);
    std::fs::write(dir.path().join("tls.key"), other_key).unwrap();
    let (code, text) = check();
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("does not match") && text.contains("tls.key"),
        "{text}"
    );

    std::fs::remove_file(dir.path().join("tls.crt")).unwrap();
    let (code, text) = check();
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("tls.crt") && text.contains("cannot read"),
        "{text}"
    );
    assert!(!text.contains(token), "{text}");
}
