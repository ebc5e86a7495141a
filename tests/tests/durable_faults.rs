//! `persistence` faults, with real processes and real files: a directory in use by
//! another agent, a damaged file, a read-only disk and a disk that fills up while the
//! agent runs. Each gives a message naming the path and the problem; none loses an
//! acknowledged write.
//!
//! The read-only and full-disk cases mount a small tmpfs of their own; where mounting
//! is not allowed (not root) they are skipped with a printed reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, process::Command, time::Duration};

use c19_tests::{ClusterBuilder, Node, agent_bin, http, wait_until};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

/// A tmpfs mounted on a temporary directory; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `8m`), or says why it cannot.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Self { dir }),
            Ok(output) => {
                println!(
                    "skipped: cannot mount a tmpfs ({}); run as root to test this",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(error) => {
                println!("skipped: cannot run mount: {error}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// A one-agent cluster whose state persists in `data`.
fn agent_on(data: &Path, extra: &str) -> c19_tests::Cluster {
    ClusterBuilder::new(agent_bin!(), 1)
        .state_yaml(&format!(
            "persistence:\n  path: {}\n  sync: always\n{extra}",
            data.display()
        ))
        .build()
}

/// Starts `node` expecting it to fail at start-up; returns its log.
async fn fails_to_start(node: &mut Node) -> String {
    node.spawn();
    let code = node.wait_exit(DEADLINE).await;
    assert!(
        code.is_some_and(|code| code != 0),
        "the agent did not fail: {code:?}\n{}",
        node.logs()
    );
    let logs = node.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    logs
}

#[tokio::test]
async fn a_second_agent_on_the_same_directory_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let mut first = agent_on(data.path(), "");
    first.nodes[0].start().await;
    let mut second = agent_on(data.path(), "");
    let logs = fails_to_start(&mut second.nodes[0]).await;
    let file = data.path().join("state.redb");
    assert!(logs.contains(&file.display().to_string()), "{logs}");
    assert!(logs.contains("in use by another process"), "{logs}");
    // The first one is untouched.
    first.nodes[0].set("still", json!("here")).await;
}

#[tokio::test]
async fn a_damaged_file_stops_the_start_or_with_resync_fills_from_peers() {
    let mut cluster = ClusterBuilder::new(agent_bin!(), 2)
        .persisted(&[1], "sync: always")
        .start()
        .await;
    cluster.nodes[0].set("shared", json!("from the peer")).await;
    assert!(
        cluster
            .converged("shared", Some(json!("from the peer")), DEADLINE)
            .await
    );
    cluster.nodes[1].signal("TERM");
    assert_eq!(cluster.nodes[1].wait_exit(DEADLINE).await, Some(0));
    let file = cluster.dir().join("node-1-data").join("state.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    for byte in bytes.iter_mut().skip(512) {
        *byte = !*byte;
    }
    std::fs::write(&file, &bytes).unwrap();

    let logs = fails_to_start(&mut cluster.nodes[1]).await;
    assert!(logs.contains(&file.display().to_string()), "{logs}");
    assert!(logs.contains("damaged"), "{logs}");

    cluster.nodes[1].env("C19_SPEC__STATE__PERSISTENCE__ON_CORRUPTION", "resync");
    cluster.nodes[1].start().await;
    assert!(
        cluster
            .converged("shared", Some(json!("from the peer")), DEADLINE)
            .await,
        "{}",
        cluster.logs()
    );
    assert!(cluster.nodes[1].logs().contains("moved it aside"));
}

#[tokio::test]
async fn a_read_only_disk_is_a_start_up_error_naming_the_path() {
    let Some(disk) = Tmpfs::mount("16m") else {
        return;
    };
    let data = disk.path().join("c19");
    let mut cluster = agent_on(&data, "");
    cluster.nodes[0].start().await;
    cluster.nodes[0].set("written", json!(1)).await;
    cluster.nodes[0].signal("TERM");
    assert_eq!(cluster.nodes[0].wait_exit(DEADLINE).await, Some(0));
    disk.remount_read_only();

    let logs = fails_to_start(&mut cluster.nodes[0]).await;
    assert!(
        logs.contains(&data.join("state.redb").display().to_string()),
        "{logs}"
    );
    assert!(logs.to_lowercase().contains("read-only"), "{logs}");
    println!("{}", logs.lines().last().unwrap_or_default());
}

#[tokio::test]
async fn a_full_disk_at_start_up_is_an_error_naming_the_path() {
    let Some(disk) = Tmpfs::mount("1m") else {
        return;
    };
    // Nothing left for the database file.
    let _ = std::fs::write(disk.path().join("filler"), vec![0u8; 1 << 20]);
    let data = disk.path().join("c19");
    let mut cluster = agent_on(&data, "");
    let logs = fails_to_start(&mut cluster.nodes[0]).await;
    assert!(logs.contains(&data.display().to_string()), "{logs}");
    assert!(logs.contains("No space left on device"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_507_and_loses_nothing_acknowledged() {
    let Some(disk) = Tmpfs::mount("6m") else {
        return;
    };
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![0u8; 2 << 20]).unwrap();
    let data = disk.path().join("c19");
    let mut cluster = agent_on(&data, "");
    cluster.nodes[0].start().await;
    let node = &cluster.nodes[0];
    let big = "x".repeat(64 * 1024);

    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for i in 0..200 {
        let key = format!("big-{i}");
        let response = http()
            .put(node.url("/"))
            .json(&json!({&key: {"value": big}}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            204 => acknowledged.push(key),
            status => {
                refusal = Some((status, response.text().await.unwrap()));
                break;
            }
        }
    }
    let (status, message) = refusal.expect("the disk never filled up");
    println!(
        "{} writes acknowledged, then {status}: {message}",
        acknowledged.len()
    );
    assert_eq!(status, 507, "{message}");
    assert!(message.contains("No space left"), "{message}");
    assert!(message.contains(&data.display().to_string()), "{message}");

    let ready = http()
        .get(node.telemetry_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert!(
        ready["waiting"]
            .as_str()
            .is_some_and(|waiting| waiting.contains("No space left")),
        "{ready}"
    );
    // Refused before anything is applied while the disk is full.
    let again = http()
        .put(node.url("/"))
        .json(&json!({"refused": {"value": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 507);
    assert_eq!(node.value("refused").await, None);

    // Space comes back: writes are accepted again, and readiness returns.
    std::fs::remove_file(&filler).unwrap();
    let recovered = wait_until(DEADLINE, || async {
        let response = http()
            .put(node.url("/"))
            .json(&json!({"after": {"value": "space"}}))
            .send()
            .await;
        response.is_ok_and(|response| response.status() == 204)
    })
    .await;
    assert!(recovered, "writes never came back:\n{}", node.logs());
    let ready = http()
        .get(node.telemetry_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    cluster.nodes[0].kill();
    cluster.nodes[0].start().await;
    let node = &cluster.nodes[0];
    for key in &acknowledged {
        assert_eq!(node.value(key).await, Some(json!(big)), "{key} was lost");
    }
    assert_eq!(node.value("after").await, Some(json!("space")));
}
