//! Health, readiness and Prometheus metrics of real agents on the telemetry port: values
//! change as expected after writes and gossip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops;

use c19_tests::{ClusterBuilder, Node, agent_bin, http, wait_until};
use ops::{DEADLINE, metric, metrics_text, sample};
use serde_json::{Value, json};

/// Waits until `name{labels}` on `node` satisfies `check`; says what it was otherwise.
async fn eventually(node: &Node, name: &str, labels: &[(&str, &str)], check: impl Fn(f64) -> bool) {
    let ok = wait_until(DEADLINE, || async {
        check(metric(node, name, labels).await)
    })
    .await;
    let now = metric(node, name, labels).await;
    assert!(
        ok,
        "{name}{labels:?} on {} is {now}; metrics:\n{}",
        node.name,
        metrics_text(node).await
    );
}

#[tokio::test]
async fn health_and_readiness_answer_on_the_telemetry_port() {
    let cluster = ClusterBuilder::new(agent_bin!(), 1).start().await;
    let node = &cluster.nodes[0];
    let healthz = http()
        .get(node.telemetry_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);
    // Every layer reports ready once its listener is bound.
    let ready = wait_until(DEADLINE, || async {
        let response = http()
            .get(node.telemetry_url("/readyz"))
            .send()
            .await
            .unwrap();
        response.status() == 200
    })
    .await;
    let body: Value = http()
        .get(node.telemetry_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ready, "not ready: {body}");
    assert_eq!(
        body["components"],
        json!({"agent": true, "connection": true, "state": true})
    );
    // The agent port has no such paths: they are keys there.
    assert_eq!(
        http()
            .get(node.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn state_metrics_follow_writes_deletes_and_gossip() {
    let cluster = ClusterBuilder::new(agent_bin!(), 2).start().await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let changes_before = metric(a, "c19_state_version_changes_total", &[]).await;

    let status = a
        .put(json!({"k1": {"value": 1}, "k2": {"value": 2}, "k3": {"value": 3}}))
        .await;
    assert_eq!(status, 204);
    assert_eq!(a.delete("k3").await, 204);
    // A malformed batch is refused whole.
    assert_eq!(a.put(json!({"k4": {"ttl": 5}})).await, 400);

    let text = metrics_text(a).await;
    assert_eq!(sample(&text, "c19_state_keys", &[]), Some(2.0));
    assert_eq!(sample(&text, "c19_state_tombstones", &[]), Some(1.0));
    assert_eq!(
        sample(&text, "c19_state_version_changes_total", &[]),
        Some(changes_before + 2.0)
    );
    assert_eq!(
        sample(&text, "c19_state_merges_applied_total", &[]),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            "c19_state_merges_refused_total",
            &[("reason", "invalid")]
        ),
        Some(1.0)
    );

    // The other agent learns the same by gossip.
    eventually(b, "c19_state_keys", &[], |keys| keys == 2.0).await;
    eventually(b, "c19_state_tombstones", &[], |tombstones| {
        tombstones == 1.0
    })
    .await;
    eventually(b, "c19_state_merges_applied_total", &[], |applied| {
        applied >= 3.0
    })
    .await;
    // b pushes on what it learned; a already has it: stale.
    eventually(
        a,
        "c19_state_merges_refused_total",
        &[("reason", "stale")],
        |stale| stale >= 1.0,
    )
    .await;
}

#[tokio::test]
async fn connection_metrics_count_rounds_bytes_peers_and_errors() {
    let mut cluster = ClusterBuilder::new(agent_bin!(), 2).start().await;
    let push = [("operation", "push")];
    let pull = [("operation", "pull")];
    {
        let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
        // Each lists both agents; itself does not count.
        eventually(a, "c19_connection_peers", &[], |peers| peers == 1.0).await;
        // The pull at start.
        eventually(a, "c19_connection_rounds_total", &pull, |rounds| {
            rounds >= 1.0
        })
        .await;

        let sent_before = metric(a, "c19_connection_sent_bytes_total", &push).await;
        let received_before = metric(b, "c19_connection_received_bytes_total", &push).await;
        a.set("news", json!("x".repeat(1000))).await;
        eventually(b, "c19_connection_received_bytes_total", &push, |bytes| {
            bytes >= received_before + 1000.0
        })
        .await;
        eventually(a, "c19_connection_sent_bytes_total", &push, |bytes| {
            bytes >= sent_before + 1000.0
        })
        .await;
        eventually(a, "c19_connection_rounds_total", &push, |rounds| {
            rounds >= 1.0
        })
        .await;
        eventually(a, "c19_connection_exchanges_total", &push, |pushes| {
            pushes >= 1.0
        })
        .await;
        eventually(b, "c19_connection_served_total", &push, |served| {
            served >= 1.0
        })
        .await;
    }

    // With the peer gone, pushes fail and are counted as errors.
    cluster.nodes[1].kill();
    let a = &cluster.nodes[0];
    let errors_before = metric(a, "c19_connection_errors_total", &push).await;
    a.set("lonely", json!(1)).await;
    eventually(a, "c19_connection_errors_total", &push, |errors| {
        errors > errors_before
    })
    .await;
}

#[tokio::test]
async fn agent_metrics_count_requests_by_route_method_and_status() {
    let cluster = ClusterBuilder::new(agent_bin!(), 1).start().await;
    let node = &cluster.nodes[0];
    let labels = |route, method, status| [("route", route), ("method", method), ("status", status)];
    let before = metrics_text(node).await;
    let count = |text: &str, route, method, status| {
        sample(
            text,
            "c19_agent_requests_total",
            &labels(route, method, status),
        )
        .unwrap_or(0.0)
    };

    node.set("cat", json!("garfield")).await;
    node.set("dog", json!("odie")).await;
    assert!(node.get("cat").await.is_some());
    assert!(node.get("nobody").await.is_none());
    assert_eq!(
        http()
            .get(node.url("/?prefix=c"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http()
            .get(node.url("/?limit=0"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(node.delete("cat").await, 204);

    let after = metrics_text(node).await;
    assert!(
        after.contains("c19_agent_request_duration_seconds_bucket{"),
        "request durations must be a histogram:\n{after}"
    );
    let delta = |route, method, status| {
        count(&after, route, method, status) - count(&before, route, method, status)
    };
    assert_eq!(delta("root", "PUT", "204"), 2.0);
    assert_eq!(delta("key", "GET", "200"), 1.0);
    assert_eq!(delta("key", "GET", "404"), 1.0);
    assert_eq!(delta("root", "GET", "200"), 1.0);
    assert_eq!(delta("root", "GET", "400"), 1.0);
    assert_eq!(delta("key", "DELETE", "204"), 1.0);
    let timed = |text: &str| {
        sample(
            text,
            "c19_agent_request_duration_seconds_count",
            &[("route", "root")],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(timed(&after) - timed(&before), 4.0);
}
