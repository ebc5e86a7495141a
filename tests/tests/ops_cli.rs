//! The operator's commands against real agents: `c19 status` (the telemetry port's
//! `/peers`) and `c19 kv` (the agent API, with a bearer token), `kv watch` resuming
//! after its connection is cut.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex},
};

use c19_tests::{ClusterBuilder, agent_bin, free_port, proxy::Proxy, wait_until};
use ops::DEADLINE;
use serde_json::{Value, json};

fn c19(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(agent_bin!());
    command
        .args(args)
        .env_remove("C19_TOKEN")
        .env_remove("C19_AGENT");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_the_peers_and_its_exit_code_follows_their_health() {
    let mut cluster = ClusterBuilder::new(agent_bin!(), 3).start().await;
    cluster.nodes[0].set("hello", json!("world")).await;
    assert!(
        cluster
            .converged("hello", Some(json!("world")), DEADLINE)
            .await
    );
    let telemetry = cluster.nodes[0].telemetry_url("");
    let peers: Vec<String> = cluster.nodes[1..]
        .iter()
        .map(|node| format!("127.0.0.1:{}", node.peer_port))
        .collect();

    // Healthy once both peers have been in touch.
    let healthy = wait_until(DEADLINE, || async {
        let out = c19(&["status", "--telemetry", &telemetry], &[]);
        out.status.code() == Some(0)
            && peers.iter().all(|peer| {
                stdout(&out)
                    .lines()
                    .any(|line| line.starts_with(peer.as_str()) && line.contains(" ok "))
            })
    })
    .await;
    let out = c19(&["status", "--telemetry", &telemetry], &[]);
    assert!(healthy, "{}{}", stdout(&out), stderr(&out));
    let table = stdout(&out);
    println!("{table}");
    assert!(table.starts_with("agent    c19 "), "{table}");
    assert!(table.contains("ready · 1 keys · 0 tombstones"), "{table}");
    assert!(!table.contains('\x1b'), "colour off a terminal: {table}");

    let out = c19(&["status", "--telemetry", &telemetry, "--json"], &[]);
    let document: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(document["agent"]["keys"], 1);
    let listed: Vec<&str> = document["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|peer| peer["peer"].as_str().unwrap())
        .collect();
    assert_eq!(listed, peers);
    let peer = &document["peers"][0];
    assert_eq!(peer["transport"], "plaintext");
    assert!(peer["clock_offset_ms"].is_i64(), "{peer}");
    assert!(
        !out.stdout.windows(5).any(|w| w == b"world"),
        "no values in /peers"
    );

    // A peer that stops answering makes it degraded.
    cluster.nodes[2].kill();
    cluster.nodes[0].set("after", json!(1)).await;
    let degraded = wait_until(DEADLINE, || async {
        c19(&["status", "--telemetry", &telemetry], &[])
            .status
            .code()
            == Some(1)
    })
    .await;
    let out = c19(&["status", "--telemetry", &telemetry], &[]);
    assert!(degraded, "{}", stdout(&out));
    let row = stdout(&out)
        .lines()
        .find(|line| line.starts_with(peers[1].as_str()))
        .map(str::to_owned)
        .unwrap();
    assert!(row.contains("failed"), "{row}");

    // Nobody there.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let out = c19(&["status", "--telemetry", &nowhere], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot reach the agent's telemetry"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn kv_gets_puts_lists_and_deletes_with_a_token_and_prints_the_agents_errors() {
    let mut cluster = ClusterBuilder::new(agent_bin!(), 1).build();
    let tokens = cluster.dir().join("tokens");
    std::fs::write(&tokens, "s3cret-writer\nl00ker read\n").unwrap();
    cluster.nodes[0].env(
        "C19_SPEC__AGENT__AUTH__TOKENS_FILE",
        tokens.to_str().unwrap(),
    );
    cluster.nodes[0].start().await;
    let agent = cluster.nodes[0].url("");
    let writer = [
        ("C19_AGENT", agent.as_str()),
        ("C19_TOKEN", "s3cret-writer"),
    ];

    let out = c19(&["kv", "put", "users/ann smith", "hello"], &writer);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = c19(
        &[
            "kv",
            "put",
            "config",
            r#"{"n": 3}"#,
            "--json",
            "--ttl",
            "60000",
        ],
        &writer,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&c19(&["kv", "get", "users/ann smith"], &writer)),
        "hello\n"
    );
    let full: Value =
        serde_json::from_slice(&c19(&["kv", "get", "config", "--full"], &writer).stdout).unwrap();
    assert_eq!(full["value"], json!({"n": 3}));
    assert_eq!(full["ttl"], 60000);
    assert!(full["ts"].is_u64());
    assert_eq!(
        stdout(&c19(&["kv", "ls"], &writer)),
        "config\t{\"n\":3}\nusers/ann smith\t\"hello\"\n"
    );
    assert_eq!(
        stdout(&c19(&["kv", "ls", "users/", "--limit", "1"], &writer)),
        "users/ann smith\t\"hello\"\n"
    );
    let out = c19(&["kv", "del", "config"], &writer);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = c19(&["kv", "get", "config"], &writer);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: no such key: config\n");

    // The agent's own refusals, as its message.
    let reader = [("C19_AGENT", agent.as_str()), ("C19_TOKEN", "l00ker")];
    let out = c19(&["kv", "put", "x", "1"], &reader);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the bearer token is read-only"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"));
    let out = c19(&["kv", "get", "users/ann smith", "--agent", &agent], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("requires a bearer token"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("s3cret"), "a token in an error");
    let out = c19(&["kv", "ls", "--limit", "0"], &writer);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("limit must be a positive integer"),
        "{}",
        stderr(&out)
    );

    // Local mistakes and an unreachable agent: exit 2.
    let out = c19(&["kv", "put", "x", "{not json", "--json"], &writer);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("VALUE is not JSON"),
        "{}",
        stderr(&out)
    );
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let out = c19(&["kv", "get", "x", "--agent", &nowhere], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot reach the agent"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_watch_prints_each_change_and_resumes_after_a_cut_connection() {
    let cluster = ClusterBuilder::new(agent_bin!(), 1).start().await;
    let node = &cluster.nodes[0];
    let agent: SocketAddr = format!("127.0.0.1:{}", node.agent_port).parse().unwrap();
    let proxy = Proxy::start(agent);
    let through = format!("http://127.0.0.1:{}", proxy.port());
    let mut watcher = Command::new(agent_bin!())
        .args(["kv", "watch", "jobs/", "--agent", &through])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let out = watcher.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let seen = |wanted: &'static str| {
        let lines = lines.clone();
        async move { lines.lock().unwrap().iter().any(|line| line == wanted) }
    };
    // The watch is open once a change made now shows up.
    let opened = wait_until(DEADLINE, || async {
        node.set("jobs/1", json!("queued")).await;
        seen(r#"put jobs/1 "queued""#).await
    })
    .await;
    assert!(opened, "{:?}", lines.lock().unwrap());
    node.set("other", json!("not watched")).await;
    assert_eq!(node.delete("jobs/1").await, 204);
    assert!(wait_until(DEADLINE, || seen("del jobs/1")).await);

    proxy.cut();
    node.set("jobs/2", json!("while cut")).await;
    proxy.heal();
    assert!(
        wait_until(DEADLINE, || seen(r#"put jobs/2 "while cut""#)).await,
        "{:?}",
        lines.lock().unwrap()
    );
    let _ = watcher.kill();
    let _ = watcher.wait();
    reader.join().unwrap();
    let lines = lines.lock().unwrap();
    assert!(
        !lines.iter().any(|line| line.contains("other")),
        "{lines:?}"
    );
    // Resumed after the last change it printed: nothing printed twice.
    let deletes = lines.iter().filter(|line| *line == "del jobs/1").count();
    assert_eq!(deletes, 1, "{lines:?}");
}
