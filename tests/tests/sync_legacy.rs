//! A mixed cluster: two c19 agents and a stand-in for a 0.1 agent that speaks only
//! `GET /<version>` and `PUT /`. Values written on either side reach the other; the c19
//! agents try the exchange with the old agent once, then pull it whole, and use
//! exchanges between themselves. Pushes stay changes only, within `max_push_bytes`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sync_support;

use std::{
    collections::hash_map::DefaultHasher,
    fs,
    hash::{Hash, Hasher},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use c19_tests::{ClusterBuilder, Node, agent_bin, wait_until};
use serde_json::{Map, Value, json};
use sync_support::*;

const DEADLINE: Duration = Duration::from_secs(30);
const MAX_PUSH: usize = 1024;

/// A 0.1 agent: a map merged by newest `ts`, a version derived from the (key, ts)
/// pairs, and only the two 0.1 endpoints; anything else is 404.
#[derive(Clone, Default)]
struct OldAgent {
    map: Arc<Mutex<Map<String, Value>>>,
    /// The size of every body pushed to it.
    pushes: Arc<Mutex<Vec<usize>>>,
    /// Requests for anything but the 0.1 endpoints (the c19 exchange, tried).
    unknown: Arc<AtomicU64>,
}

impl OldAgent {
    fn version(&self) -> String {
        let map = self.map.lock().unwrap();
        let mut pairs: Vec<(&String, u64)> = map
            .iter()
            .map(|(key, entry)| (key, entry["ts"].as_u64().unwrap_or(0)))
            .collect();
        pairs.sort();
        let mut hasher = DefaultHasher::new();
        pairs.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    fn merge(&self, batch: Map<String, Value>) {
        let mut map = self.map.lock().unwrap();
        for (key, mut entry) in batch {
            let ts = entry["ts"].as_u64().unwrap_or_else(now_ms);
            entry["ts"] = json!(ts);
            let newer = map
                .get(&key)
                .is_none_or(|held| held["ts"].as_u64().unwrap_or(0) < ts);
            if newer {
                map.insert(key, entry);
            }
        }
    }

    fn write(&self, key: &str, value: Value) {
        self.merge(Map::from_iter([(
            key.to_owned(),
            json!({"value": value, "ts": now_ms()}),
        )]));
    }

    fn value(&self, key: &str) -> Option<Value> {
        self.map
            .lock()
            .unwrap()
            .get(key)
            .map(|entry| entry["value"].clone())
    }

    fn whole(&self) -> Response {
        Value::Object(self.map.lock().unwrap().clone())
            .to_string()
            .into_response()
    }

    /// Serves the 0.1 peer endpoints on a free port; returns the port.
    async fn serve(&self) -> u16 {
        let router = Router::new()
            .route(
                "/",
                get(|State(old): State<OldAgent>| async move { old.whole() }).put(
                    |State(old): State<OldAgent>, body: Bytes| async move {
                        old.pushes.lock().unwrap().push(body.len());
                        match serde_json::from_slice(&body) {
                            Ok(batch) => {
                                old.merge(batch);
                                StatusCode::NO_CONTENT
                            }
                            Err(_) => StatusCode::UNPROCESSABLE_ENTITY,
                        }
                    },
                ),
            )
            .route(
                "/{version}",
                get(
                    |State(old): State<OldAgent>, Path(version): Path<String>| async move {
                        if version == old.version() {
                            StatusCode::NO_CONTENT.into_response()
                        } else {
                            old.whole()
                        }
                    },
                ),
            )
            .fallback(|State(old): State<OldAgent>| async move {
                old.unknown.fetch_add(1, Ordering::SeqCst);
                StatusCode::NOT_FOUND
            })
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, router).await });
        port
    }

    /// Pulls `from` every 300 ms as 0.1 does: `GET /<own version>`, merge what comes.
    fn pull_from(&self, from: String) {
        let old = self.clone();
        tokio::spawn(async move {
            loop {
                let url = format!("{from}/{}", old.version());
                if let Ok(response) = c19_tests::http().get(url).send().await
                    && response.status() == 200
                    && let Ok(batch) = response.json::<Map<String, Value>>().await
                {
                    old.merge(batch);
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
    }
}

async fn everywhere(nodes: &[Node], old: &OldAgent, key: &str, value: &Value) -> bool {
    wait_until(DEADLINE, || async {
        for node in nodes {
            if node.value(key).await.as_ref() != Some(value) {
                return false;
            }
        }
        old.value(key).as_ref() == Some(value)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_agent_and_c19_agents_converge() {
    let old = OldAgent::default();
    old.write("from-0.1", json!("written on the old agent"));
    let old_port = old.serve().await;

    let mut cluster = ClusterBuilder::new(agent_bin!(), 2)
        .push_ms(100)
        .pull_ms(300)
        .connection_yaml(&format!("max_push_bytes: {MAX_PUSH}"))
        .build();
    for node in &mut cluster.nodes {
        let config = fs::read_to_string(&node.config).unwrap();
        let with_old = config.replace("peers: [", &format!("peers: [\"127.0.0.1:{old_port}\", "));
        assert_ne!(config, with_old);
        fs::write(&node.config, with_old).unwrap();
        node.start().await;
    }
    old.pull_from(format!("http://127.0.0.1:{}", cluster.nodes[0].peer_port));
    let nodes = &cluster.nodes;

    // The old agent's data reaches the c19 agents (they pull it whole)...
    let from_old = json!("written on the old agent");
    assert!(
        everywhere(nodes, &old, "from-0.1", &from_old).await,
        "{}",
        cluster.logs()
    );
    // ...and theirs reaches it, pushed in bodies of at most max_push_bytes.
    let mut batch = Map::new();
    for i in 0..40 {
        batch.insert(format!("c19-{i:02}"), json!({"value": value_of("c19", i)}));
    }
    assert_eq!(nodes[0].put(Value::Object(batch)).await, 204);
    nodes[1].set("from-node-1", json!("c19")).await;
    for (key, value) in [
        ("c19-39".to_owned(), value_of("c19", 39)),
        ("c19-00".to_owned(), value_of("c19", 0)),
        ("from-node-1".to_owned(), json!("c19")),
    ] {
        assert!(
            everywhere(nodes, &old, &key, &value).await,
            "{key}; logs:\n{}",
            cluster.logs()
        );
    }
    // Later writes on the old agent arrive too.
    old.write("later-0.1", json!(2));
    assert!(
        everywhere(nodes, &old, "later-0.1", &json!(2)).await,
        "{}",
        cluster.logs()
    );

    let pushes = old.pushes.lock().unwrap().clone();
    assert!(pushes.len() >= 3, "40 keys in bodies of 1 KiB: {pushes:?}");
    assert!(
        pushes.iter().all(|&size| size <= MAX_PUSH),
        "a push exceeds max_push_bytes: {pushes:?}"
    );
    // Each c19 agent tried the exchange with the old agent once, then remembered.
    let tried = old.unknown.load(Ordering::SeqCst);
    assert!((1..=2).contains(&tried), "{tried} exchange attempts");
    let mut exchanges = 0;
    for node in nodes {
        exchanges += counter(node, "exchanges_served").await;
    }
    assert!(
        exchanges > 0,
        "the c19 agents did not use exchanges together"
    );
}
