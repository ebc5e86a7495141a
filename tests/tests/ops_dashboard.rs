//! The Grafana dashboard (`configs/grafana/c19-dashboard.json`): every PromQL expression
//! in it names only metrics that a running agent exports, and those metrics pass
//! `promtool check metrics` (Prometheus's naming rules) where promtool can be installed.
//!
//! The agents run with every optional part that exports metrics turned on (persistence,
//! tokens, mutual TLS), so each metric the dashboard may show exists in the scrape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops;

use std::{
    collections::BTreeSet,
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use c19_tests::{
    ClusterBuilder, agent_bin, http,
    pki::{Ca, intruder, peer_tls_yaml},
    wait_until,
};
use ops::{DEADLINE, metrics_text};
use serde_json::{Value, json};

const DASHBOARD: &str = "configs/grafana/c19-dashboard.json";

/// Every PromQL expression of the dashboard: panel targets and template queries.
fn expressions(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr" | "query", Value::String(text)) => out.push(text.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

/// The c19 metric names an expression reads (`_bucket` etc. of a histogram included).
fn metric_names(expression: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expression.as_bytes();
    let mut at = 0;
    while let Some(found) = expression[at..].find("c19_") {
        let start = at + found;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = expression[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(expression.len(), |len| start + len);
        if boundary {
            names.insert(expression[start..end].to_owned());
        }
        at = end;
    }
    names
}

/// The metric names in a Prometheus scrape (samples, not comments).
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// `promtool`, installed from Debian's `prometheus` package if needed.
fn promtool() -> Result<String, String> {
    let present = || {
        Command::new("promtool")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if present() {
        return Ok("promtool".into());
    }
    let installed = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "prometheus",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match installed {
        Ok(status) if status.success() && present() => Ok("promtool".into()),
        Ok(status) => Err(format!(
            "promtool is missing and `apt-get install prometheus` failed ({status})"
        )),
        Err(error) => Err(format!(
            "promtool is missing and apt-get cannot run: {error}"
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_names_metrics_a_running_agent_exports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(DASHBOARD)).unwrap()).unwrap();
    assert_eq!(dashboard["title"], "c19");
    let queries = expressions(&dashboard);
    let wanted: BTreeSet<String> = queries
        .iter()
        .flat_map(|query| metric_names(query))
        .collect();
    assert!(
        wanted.len() >= 15,
        "the dashboard reads few metrics: {wanted:?}"
    );

    // Agents with persistence, tokens and mutual TLS, and some traffic of each kind.
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("dashboard test CA");
    ca.write(certs.path(), &["c19"], false);
    let mut cluster = ClusterBuilder::new(agent_bin!(), 3)
        .connection_yaml(&peer_tls_yaml(certs.path(), "strict"))
        .persisted(&[0, 1], "sync: always")
        .build();
    let tokens = cluster.dir().join("tokens");
    std::fs::write(&tokens, "dash-token\n").unwrap();
    // The third serves its agent API over HTTPS (what c19_agent_refused_total counts).
    let dir = certs.path().display().to_string();
    cluster.nodes[2]
        .env("C19_SPEC__AGENT__TLS__CERT", &format!("{dir}/tls.crt"))
        .env("C19_SPEC__AGENT__TLS__KEY", &format!("{dir}/tls.key"));
    for node in &mut cluster.nodes {
        node.env(
            "C19_SPEC__AGENT__AUTH__TOKENS_FILE",
            tokens.to_str().unwrap(),
        );
        node.start().await;
    }
    let a = &cluster.nodes[0];
    for i in 0..5 {
        let response = http()
            .put(a.url("/"))
            .bearer_auth("dash-token")
            .json(&json!({format!("k{i}"): {"value": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }
    let response = http().get(a.url("/k1")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let _ = intruder(None)
        .get(a.peer_url("/").replace("http:", "https:"))
        .send()
        .await;
    let _ = http().get(a.peer_url("/")).send().await;
    let b = &cluster.nodes[1];
    let synced = wait_until(DEADLINE, || async {
        let text = metrics_text(a).await;
        text.contains("c19_connection_peers_in_sync 2")
            && http()
                .get(b.url("/k4"))
                .bearer_auth("dash-token")
                .send()
                .await
                .is_ok_and(|response| response.status() == 200)
    })
    .await;
    assert!(synced, "{}", cluster.logs());

    let scrape = metrics_text(a).await;
    let https_agent = metrics_text(&cluster.nodes[2]).await;
    let have: BTreeSet<String> = exported(&scrape)
        .union(&exported(&https_agent))
        .cloned()
        .collect();
    let missing: Vec<&String> = wanted.iter().filter(|name| !have.contains(*name)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard reads metrics the agent does not export: {missing:?}\nexported: {have:?}"
    );

    match promtool() {
        Ok(promtool) => {
            for text in [&scrape, &https_agent] {
                let problems = promtool_check(&promtool, text);
                assert!(problems.is_none(), "promtool check metrics:\n{problems:?}");
            }
        }
        Err(reason) => println!("skipped promtool check metrics: {reason}"),
    }
}

/// What `promtool check metrics` says of `scrape`; `None` when it finds nothing.
fn promtool_check(promtool: &str, scrape: &str) -> Option<String> {
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (!out.status.success() || !said.trim().is_empty()).then_some(said)
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(c19_agent_request_duration_seconds_bucket{job=~"$job"}[5m]))) + c19_state_keys"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "c19_agent_request_duration_seconds_bucket",
            "c19_state_keys"
        ]
    );
}
