//! The HTTP agent and the Default state inside the real `c19` binary: the 0.1 API on
//! the configured port, seeding at start, and start-up refused for a bad seed file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, time::Duration};

use c19_tests::{ClusterBuilder, agent_bin, http};
use serde_json::{Value, json};

fn seeded(file: &Path) -> ClusterBuilder {
    ClusterBuilder::new(agent_bin!(), 1).state_yaml(&format!(
        "data_seeder:\n  kind: File\n  filename: \"{}\"\n",
        file.display()
    ))
}

#[tokio::test]
async fn the_agent_serves_the_0_1_api_and_deletes() {
    let cluster = ClusterBuilder::new(agent_bin!(), 1).start().await;
    let node = &cluster.nodes[0];
    assert_eq!(
        node.put(json!({"cat": {"value": "garfield", "ttl": 20000}}))
            .await,
        204
    );
    let entry = node.get("cat").await.unwrap();
    assert_eq!(
        (entry["value"].clone(), entry["ttl"].clone()),
        (json!("garfield"), json!(20000))
    );

    assert_eq!(
        node.put(json!({"users/42": {"value": {"name": "jon"}}}))
            .await,
        204
    );
    assert_eq!(node.value("users/42").await, Some(json!({"name": "jon"})));
    assert_eq!(node.value("users%2F42").await, Some(json!({"name": "jon"})));

    let response = http()
        .put(node.url("/"))
        .body(r#"{"cat": {"value": "nermal", "tll": 5}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains(r#"unknown field "tll""#),
        "{error}"
    );
    assert_eq!(node.value("cat").await, Some(json!("garfield")));

    assert_eq!(node.delete("cat").await, 204);
    assert_eq!(node.get("cat").await, None);
}

#[tokio::test]
async fn a_seed_file_is_loaded_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.json");
    std::fs::write(
        &file,
        r#"{"cat": {"value": "garfield", "ttl": null}, "dog": {"value": 3}}"#,
    )
    .unwrap();
    let cluster = seeded(&file).start().await;
    assert_eq!(cluster.nodes[0].value("cat").await, Some(json!("garfield")));
    assert_eq!(cluster.nodes[0].value("dog").await, Some(json!(3)));
}

#[tokio::test]
async fn a_bad_seed_file_stops_start_up_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content, problem) in [
        ("absent.json", None, "absent.json"),
        ("broken.json", Some("{oops"), "not JSON"),
        (
            "typo.json",
            Some(r#"{"cat": {"valeu": 1}}"#),
            r#"key "cat""#,
        ),
    ] {
        let file = dir.path().join(name);
        if let Some(content) = content {
            std::fs::write(&file, content).unwrap();
        }
        let mut cluster = seeded(&file).build();
        let node = &mut cluster.nodes[0];
        node.spawn();
        let code = node.wait_exit(Duration::from_secs(30)).await;
        let logs = node.logs();
        assert!(
            matches!(code, Some(code) if code != 0),
            "{name}: exit {code:?}\n{logs}"
        );
        assert!(
            logs.contains(name) && logs.contains(problem),
            "{name}: {logs}"
        );
    }
}
