//! The status page (`GET /` on the telemetry port) in a real headless browser: loaded
//! against a 3-agent cluster, its DOM lists both peers once its scripts have read
//! `/peers`, and a screenshot is kept in the test's output directory.
//!
//! Chromium comes from Debian's package, installed here when missing (as root); where it
//! cannot be, the test is skipped with the reason printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use c19_tests::{ClusterBuilder, agent_bin, http, wait_until};
use ops::DEADLINE;
use serde_json::{Value, json};

/// A Chromium binary, installed with apt-get if needed; `Err` says why there is none.
fn chromium() -> Result<PathBuf, String> {
    let find = || {
        ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find_map(|name| {
                let found = Command::new("which").arg(name).output().ok()?;
                let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
                (found.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
            })
    };
    if let Some(path) = find() {
        return Ok(path);
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends", "chromium"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|error| format!("chromium is not installed and apt-get cannot run: {error}"))?;
    if !installed.status.success() {
        return Err(format!(
            "chromium is not installed and `apt-get install chromium` failed: {}",
            String::from_utf8_lossy(&installed.stderr).trim()
        ));
    }
    find().ok_or_else(|| "apt-get installed chromium but it is not on PATH".to_owned())
}

/// Runs headless Chromium on `url` with `args`, letting the page's scripts run for a
/// few seconds of virtual time first; returns its stdout.
fn headless(browser: &Path, profile: &Path, url: &str, args: &[&str]) -> String {
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=5000", "--window-size=1280,900"])
        .args(args)
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "chromium failed: {:?}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_lists_both_peers_in_a_real_browser() {
    let browser = match chromium() {
        Ok(browser) => browser,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let cluster = ClusterBuilder::new(agent_bin!(), 3).start().await;
    cluster.nodes[0].set("page", json!("shown")).await;
    let node = &cluster.nodes[0];
    let peers: Vec<String> = cluster.nodes[1..]
        .iter()
        .map(|node| format!("127.0.0.1:{}", node.peer_port))
        .collect();
    let contacted = wait_until(DEADLINE, || async {
        let Ok(response) = http().get(node.telemetry_url("/peers")).send().await else {
            return false;
        };
        let document: Value = response.json().await.unwrap_or_default();
        document["peers"].as_array().is_some_and(|peers| {
            peers.len() == 2 && peers.iter().all(|peer| !peer["last_push"].is_null())
        })
    })
    .await;
    assert!(contacted, "{}", cluster.logs());

    let page = http().get(node.telemetry_url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    // Self-contained: nothing loaded from elsewhere.
    for outside in ["http://", "https://", "src=\"//"] {
        assert!(!html.contains(outside), "the page refers to {outside}");
    }

    let profile = tempfile::tempdir().unwrap();
    let url = node.telemetry_url("/");
    let dom = headless(&browser, profile.path(), &url, &["--dump-dom"]);
    for peer in &peers {
        assert!(
            dom.contains(&format!("data-peer=\"{peer}\"")),
            "{peer} is not listed:\n{dom}"
        );
    }
    assert!(
        dom.contains(r#"<span id="readiness" class="ok">ready</span>"#),
        "{dom}"
    );
    assert!(dom.contains(r#"<b id="keys">1</b>"#), "{dom}");

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&out);
    headless(
        &browser,
        profile.path(),
        &url,
        &[&format!("--screenshot={}", out.display())],
    );
    let size = std::fs::metadata(&out)
        .map(|meta| meta.len())
        .unwrap_or_default();
    assert!(
        size > 10_000,
        "no screenshot at {} ({size} bytes)",
        out.display()
    );
    println!("screenshot: {}", out.display());
}
