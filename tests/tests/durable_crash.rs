//! `persistence` with `sync: always`: an agent killed with SIGKILL in the middle of a
//! stream of writes holds, after a restart, every write it acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use c19_tests::{ClusterBuilder, agent_bin, http};
use serde_json::json;

/// When (ms after the writers start) each round kills the agent.
const KILL_POINTS_MS: [u64; 4] = [15, 80, 200, 450];

/// Concurrent writers (their writes share commits: group commit).
const WRITERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill_at_several_points() {
    // One agent, so nothing comes back from a peer: only its own disk holds the writes.
    let mut cluster = ClusterBuilder::new(agent_bin!(), 1)
        .persisted(&[0], "sync: always")
        .start()
        .await;
    let mut total = 0;
    for (round, kill_after) in KILL_POINTS_MS.into_iter().enumerate() {
        let url = cluster.nodes[0].url("/");
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (url, acknowledged, stop) = (url.clone(), acknowledged.clone(), stop.clone());
                tokio::spawn(async move {
                    for n in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let key = format!("round-{round}-writer-{writer}-{n}");
                        let body = json!({&key: {"value": n}});
                        let sent = http().put(&url).json(&body).send().await;
                        match sent {
                            Ok(response) if response.status() == 204 => {
                                acknowledged.lock().unwrap().push((key, n));
                            }
                            Ok(response) => panic!("PUT answered {}", response.status()),
                            // The agent died: this write was never acknowledged.
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        // The kill point: the writers run this long (a point in time, not a wait for a
        // condition).
        tokio::time::sleep(Duration::from_millis(kill_after)).await;
        cluster.nodes[0].kill();
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.await.unwrap();
        }
        let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
        assert!(
            !acknowledged.is_empty(),
            "round {round}: no write was acknowledged in {kill_after} ms"
        );
        cluster.nodes[0].start().await;
        let node = &cluster.nodes[0];
        let mut lost = Vec::new();
        for (key, n) in &acknowledged {
            if node.value(key).await != Some(json!(n)) {
                lost.push(key.clone());
            }
        }
        assert!(
            lost.is_empty(),
            "round {round} (killed after {kill_after} ms): {} of {} acknowledged writes lost, e.g. {:?}; log:\n{}",
            lost.len(),
            acknowledged.len(),
            &lost[..lost.len().min(5)],
            node.logs()
        );
        total += acknowledged.len();
    }
    println!(
        "{total} acknowledged writes over {} kills, none lost",
        KILL_POINTS_MS.len()
    );
}
