//! The K8s peer provider end to end: real `c19` processes configured with `kind: K8s`
//! and a kubeconfig pointing at a small fake API server (list and watch of pods, on
//! 127.0.0.1), discover each other and converge on values.
//!
//! Every fake pod has IP 127.0.0.1 and a container port `c19-peer` holding its agent's
//! peer port, so each pod maps to one agent; each agent gets `POD_NAME` (and `POD_IP`,
//! shared by all, so only the name can tell them apart) to exclude itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    convert::Infallible,
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path as UrlPath, Query, State},
    response::{IntoResponse, Response},
    routing::get,
};
use c19_core::{
    reexports::{bytes::Bytes, futures::stream},
    shutdown::CancellationToken,
};
use c19_tests::{Node, agent_bin, free_port, wait_until};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::broadcast, task::JoinHandle};

const DEADLINE: Duration = Duration::from_secs(30);

/// One stored change, as a watch event.
#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    kind: &'static str,
    pod: Value,
}

/// The API server's data: pods by namespace and name, and the changes it remembers.
#[derive(Debug)]
struct Store {
    rv: u64,
    pods: BTreeMap<(String, String), Value>,
    history: Vec<Change>,
    /// The oldest resourceVersion a watch may resume from.
    oldest: u64,
}

#[derive(Debug, Clone)]
struct Shared {
    store: Arc<Mutex<Store>>,
    changes: broadcast::Sender<Change>,
    stop: CancellationToken,
}

/// A fake Kubernetes API server speaking list and watch for pods.
struct FakeApi {
    shared: Shared,
    server: JoinHandle<()>,
}

impl FakeApi {
    /// Serves `pods` on 127.0.0.1:`port`, numbering resourceVersions from `first_rv`:
    /// a restarted server gets a new range, so old watches get 410 Gone.
    async fn start(port: u16, first_rv: u64, pods: &[Value]) -> FakeApi {
        let shared = Shared {
            store: Arc::new(Mutex::new(Store {
                rv: first_rv,
                pods: BTreeMap::new(),
                history: Vec::new(),
                oldest: first_rv,
            })),
            changes: broadcast::channel(1024).0,
            stop: CancellationToken::new(),
        };
        let api = FakeApi {
            server: tokio::spawn(serve(port, shared.clone())),
            shared,
        };
        for pod in pods {
            api.apply(pod.clone());
        }
        api
    }

    /// Adds or replaces a pod (ADDED or MODIFIED).
    fn apply(&self, mut pod: Value) {
        let mut store = self.shared.store.lock().unwrap();
        store.rv += 1;
        let rv = store.rv;
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = key_of(&pod);
        let kind = if store.pods.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        store.pods.insert(key, pod.clone());
        let change = Change { rv, kind, pod };
        store.history.push(change.clone());
        let _ = self.shared.changes.send(change);
    }

    /// Stops serving; open watches end.
    async fn stop(self) {
        self.shared.stop.cancel();
        self.server.await.unwrap();
    }
}

fn key_of(pod: &Value) -> (String, String) {
    let meta = &pod["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&meta["namespace"]), text(&meta["name"]))
}

async fn serve(port: u16, shared: Shared) {
    let router = Router::new()
        .route("/api/v1/pods", get(all_pods))
        .route("/api/v1/namespaces/{namespace}/pods", get(namespace_pods))
        .with_state(shared.clone());
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    axum::serve(listener, router)
        .with_graceful_shutdown(shared.stop.clone().cancelled_owned())
        .await
        .unwrap();
}

async fn all_pods(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    pods(shared, None, query)
}

async fn namespace_pods(
    State(shared): State<Shared>,
    UrlPath(namespace): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    pods(shared, Some(namespace), query)
}

/// Whether `pod` is in `namespace` (any when `None`) and has every `k=v` label.
fn selects(pod: &Value, namespace: Option<&str>, labels: &str) -> bool {
    let in_namespace = namespace.is_none_or(|ns| pod["metadata"]["namespace"] == json!(ns));
    in_namespace
        && labels
            .split(',')
            .filter(|term| !term.is_empty())
            .all(|term| {
                let (key, value) = term.split_once('=').unwrap();
                pod["metadata"]["labels"][key] == json!(value)
            })
}

fn pods(shared: Shared, namespace: Option<String>, query: HashMap<String, String>) -> Response {
    let labels = query.get("labelSelector").cloned().unwrap_or_default();
    let matches = move |pod: &Value| selects(pod, namespace.as_deref(), &labels);
    if query.get("watch").map(String::as_str) != Some("true") {
        let store = shared.store.lock().unwrap();
        let items: Vec<&Value> = store.pods.values().filter(|pod| matches(pod)).collect();
        let list = json!({
            "apiVersion": "v1",
            "kind": "PodList",
            "metadata": { "resourceVersion": store.rv.to_string() },
            "items": items,
        });
        return Json(list).into_response();
    }
    // A watch: the remembered changes after `resourceVersion`, then live ones, one JSON
    // object per line; 410 Gone when that version is not remembered.
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0);
    let live = shared.changes.subscribe();
    let (backlog, gone) = {
        let store = shared.store.lock().unwrap();
        let backlog: VecDeque<Change> = store
            .history
            .iter()
            .filter(|change| change.rv > from)
            .cloned()
            .collect();
        (backlog, from < store.oldest || from > store.rv)
    };
    if gone {
        let status = json!({
            "type": "ERROR",
            "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {from}"), "reason": "Expired", "code": 410,
            },
        });
        return Body::from_stream(stream::iter([line(&status)])).into_response();
    }
    let watch = Watch {
        backlog,
        last: from,
        live,
        stop: shared.stop.clone(),
        matches: Box::new(matches),
    };
    Body::from_stream(stream::unfold(watch, Watch::next)).into_response()
}

/// An open watch.
struct Watch {
    backlog: VecDeque<Change>,
    last: u64,
    live: broadcast::Receiver<Change>,
    stop: CancellationToken,
    matches: Box<dyn Fn(&Value) -> bool + Send>,
}

impl Watch {
    /// The next event line, or `None` when the server stops.
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        loop {
            let change = match self.backlog.pop_front() {
                Some(change) => change,
                None => tokio::select! {
                    () = self.stop.cancelled() => return None,
                    change = self.live.recv() => change.ok()?,
                },
            };
            if change.rv <= self.last || !(self.matches)(&change.pod) {
                continue;
            }
            self.last = change.rv;
            let event = json!({ "type": change.kind, "object": change.pod });
            return Some((line(&event), self));
        }
    }
}

fn line(event: &Value) -> Result<Bytes, Infallible> {
    let mut bytes = serde_json::to_vec(event).unwrap();
    bytes.push(b'\n');
    Ok(Bytes::from(bytes))
}

/// A Running, Ready pod `name` (label `app: c19`) whose container port `c19-peer` is
/// `peer_port`.
fn pod(name: &str, peer_port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": format!("uid-{name}"),
            "labels": { "app": "c19" },
        },
        "spec": {
            "containers": [{
                "name": "c19",
                "image": "ghcr.io/c19-rs/c19:0.2.0",
                "ports": [
                    { "name": "c19-agent", "containerPort": 3097, "protocol": "TCP" },
                    { "name": "c19-peer", "containerPort": peer_port, "protocol": "TCP" },
                ],
            }],
        },
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "podIPs": [{ "ip": "127.0.0.1" }],
            "conditions": [
                { "type": "Ready", "status": "True" },
                { "type": "ContainersReady", "status": "True" },
            ],
        },
    })
}

/// A kubeconfig for the fake API server on `port`: plain HTTP, no credentials.
fn kubeconfig(dir: &Path, port: u16) -> PathBuf {
    let path = dir.join("kubeconfig");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{port}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
         current-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
    );
    fs::write(&path, yaml).unwrap();
    path
}

/// An agent whose peers are the ready pods labelled `app: c19`, as pod `name`.
fn node(dir: &Path, name: &str, kubeconfig: &Path) -> Node {
    let mut node = Node::new(&agent_bin!(), name, dir, free_port(), free_port());
    let config = format!(
        "version: 0.1\nspec:\n  agent:\n    kind: Default\n    address: 127.0.0.1\n    port: {agent}\n\
         \x20 state:\n    kind: Default\n  connection:\n    kind: Default\n    address: 127.0.0.1\n\
         \x20   port: {peer}\n    push_interval: 100\n    pull_interval: 1000\n    r0: 3\n\
         \x20   peer_provider:\n      kind: K8s\n      selector:\n        app: c19\n\
         \x20     namespace: default\n      port: c19-peer\n",
        agent = node.agent_port,
        peer = node.peer_port,
    );
    fs::write(&node.config, config).unwrap();
    node.env("KUBECONFIG", kubeconfig.to_str().unwrap())
        .env("POD_NAME", name)
        .env("POD_NAMESPACE", "default")
        .env("POD_IP", "127.0.0.1")
        .env("C19_LOG_FORMAT", "json");
    node
}

/// The peers `node`'s provider reported last, from its JSON log.
fn logged_peers(node: &Node) -> Option<Vec<String>> {
    node.logs()
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|entry| entry["fields"]["message"] == "peers from Kubernetes changed")
        .map(|entry| {
            let peers = entry["fields"]["peers"].as_str().unwrap_or_default();
            let mut peers: Vec<String> = peers
                .split(',')
                .filter(|peer| !peer.is_empty())
                .map(str::to_owned)
                .collect();
            peers.sort();
            peers
        })
}

/// Waits until `node`'s provider reports exactly the peer ports of `others`.
async fn wait_for_peers(node: &Node, others: &[&Node]) {
    let mut expected: Vec<String> = others
        .iter()
        .map(|other| format!("127.0.0.1:{}", other.peer_port))
        .collect();
    expected.sort();
    let found = wait_until(DEADLINE, || async {
        logged_peers(node).as_ref() == Some(&expected)
    })
    .await;
    assert!(
        found,
        "{} should have peers {expected:?}, has {:?}; log:\n{}",
        node.name,
        logged_peers(node),
        node.logs()
    );
}

/// Waits until every node returns `expected` for `key`.
async fn converged(nodes: &[&Node], key: &str, expected: &Value) {
    for node in nodes {
        let reached = wait_until(DEADLINE, || async {
            node.value(key).await.as_ref() == Some(expected)
        })
        .await;
        assert!(
            reached,
            "{} did not get {key}={expected}; log:\n{}",
            node.name,
            node.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_find_each_other_through_the_api_server_and_converge() {
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let kubeconfig = kubeconfig(dir.path(), api_port);
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| node(dir.path(), &format!("c19-{i}"), &kubeconfig))
        .collect();
    let mut pods: Vec<Value> = nodes
        .iter()
        .map(|node| pod(&node.name, node.peer_port))
        .collect();
    // Pods that are no peers: not ready, and of another application.
    let mut unready = pod("c19-unready", free_port());
    unready["status"]["conditions"][0]["status"] = json!("False");
    let mut other_app = pod("web-0", free_port());
    other_app["metadata"]["labels"]["app"] = json!("web");
    pods.extend([unready, other_app]);
    let api = FakeApi::start(api_port, 100, &pods).await;
    for node in &mut nodes {
        node.start().await;
    }

    // Each agent is offered the two others, never itself nor the non-peers.
    for node in &nodes {
        let others: Vec<&Node> = nodes
            .iter()
            .filter(|other| other.name != node.name)
            .collect();
        wait_for_peers(node, &others).await;
    }
    let all: Vec<&Node> = nodes.iter().collect();
    nodes[0].set("cat", json!("garfield")).await;
    converged(&all, "cat", &json!("garfield")).await;
    nodes[2].set("dog", json!({ "name": "odie" })).await;
    converged(&all, "dog", &json!({ "name": "odie" })).await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_serve_while_the_api_server_is_down_and_join_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let kubeconfig = kubeconfig(dir.path(), api_port);
    let mut a = node(dir.path(), "c19-a", &kubeconfig);
    let mut b = node(dir.path(), "c19-b", &kubeconfig);

    // No API server yet: the agents start, serve their own state, and say why they
    // have no peers.
    a.start().await;
    b.start().await;
    a.set("early", json!(1)).await;
    assert_eq!(a.value("early").await, Some(json!(1)));
    let logged = wait_until(DEADLINE, || async {
        a.logs().contains("Kubernetes API unavailable")
    })
    .await;
    assert!(
        logged,
        "no error logged for the missing API server; log:\n{}",
        a.logs()
    );
    assert_eq!(b.value("early").await, None);

    // The API server comes up: they find each other and converge.
    let api = FakeApi::start(
        api_port,
        100,
        &[pod(&a.name, a.peer_port), pod(&b.name, b.peer_port)],
    )
    .await;
    wait_for_peers(&a, &[&b]).await;
    converged(&[&a, &b], "early", &json!(1)).await;

    // It goes down; a third agent starts meanwhile. It comes back with a new history,
    // so the old watches get 410 Gone and re-list, finding the newcomer.
    api.stop().await;
    let mut c = node(dir.path(), "c19-c", &kubeconfig);
    c.start().await;
    c.set("late", json!(true)).await;
    let pods = [
        pod(&a.name, a.peer_port),
        pod(&b.name, b.peer_port),
        pod(&c.name, c.peer_port),
    ];
    let api = FakeApi::start(api_port, 5000, &pods).await;
    wait_for_peers(&a, &[&b, &c]).await;
    wait_for_peers(&c, &[&a, &b]).await;
    assert!(
        a.logs().contains("410 Gone"),
        "no re-list after 410; log:\n{}",
        a.logs()
    );
    converged(&[&a, &b, &c], "late", &json!(true)).await;
    converged(&[&c], "early", &json!(1)).await;
    api.stop().await;
}

/// Runs `c19 --check` on `yaml` with `env`; returns (success, stdout or stderr).
fn check(yaml: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    fs::write(&path, yaml).unwrap();
    let mut command = std::process::Command::new(agent_bin!());
    command.arg("--config").arg(&path).arg("--check");
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    let text = if out.status.success() {
        out.stdout
    } else {
        out.stderr
    };
    (
        out.status.success(),
        String::from_utf8_lossy(&text).into_owned(),
    )
}

#[test]
fn k8s_configurations_load_as_written_and_bad_values_are_named() {
    let yaml = "version: 0.1\nspec:\n  connection:\n    kind: Default\n    peer_provider:\n\
                \x20     kind: K8s\n      selector:\n        app.kubernetes.io/name: c19\n\
                \x20       version: 2\n      namespace: \":all\"\n      port: \"4097\"\n";
    let (ok, out) = check(yaml, &[]);
    assert!(ok, "{out}");
    let config: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        config["spec"]["connection"]["peer_provider"],
        json!({
            "kind": "K8s",
            "selector": { "app.kubernetes.io/name": "c19", "version": "2" },
            "namespace": ":all",
            "port": 4097,
        })
    );
    // Environment overrides, as the manifests set the namespace from the downward API.
    let env = [("C19_SPEC__CONNECTION__PEER_PROVIDER__NAMESPACE", "team-a")];
    let (ok, out) = check(yaml, &env);
    assert!(ok, "{out}");
    assert!(out.contains("\"namespace\": \"team-a\""), "{out}");
    let env = [("C19_SPEC__CONNECTION__PEER_PROVIDER__NAMESPACE", "Team_A")];
    let (ok, out) = check(yaml, &env);
    assert!(!ok);
    assert!(
        out.contains("spec.connection.peer_provider.namespace") && out.contains("`Team_A`"),
        "{out}"
    );
    let bad_key = yaml.replace("version: 2", "bad key: x");
    let (ok, out) = check(&bad_key, &[]);
    assert!(!ok);
    assert!(out.contains("invalid label key `bad key`"), "{out}");
}

/// `pod(name, peer_port)`, not ready yet (as while its readiness probe fails).
fn unready_pod(name: &str, peer_port: u16) -> Value {
    let mut pod = pod(name, peer_port);
    pod["status"]["conditions"] = json!([
        { "type": "Ready", "status": "False" },
        { "type": "ContainersReady", "status": "False" },
    ]);
    pod
}

/// `/readyz` of `node`: its status, or 0 when it does not answer.
async fn readyz(node: &Node) -> u16 {
    match c19_tests::http()
        .get(node.telemetry_url("/readyz"))
        .send()
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// How many keys `node`'s state holds (`c19_state_keys`).
async fn keys_held(node: &Node) -> f64 {
    let Ok(response) = c19_tests::http()
        .get(node.telemetry_url("/metrics"))
        .send()
        .await
    else {
        return -1.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("c19_state_keys "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(-1.0)
}

/// Plays the kubelet for `nodes`: each pod is published not ready, and ready once its
/// agent's `/readyz` says 200, as the readiness probe would. Returns when all are ready.
async fn kubelet(api: &FakeApi, nodes: &[&Node]) -> bool {
    for node in nodes {
        api.apply(unready_pod(&node.name, node.peer_port));
    }
    let ready: Vec<std::sync::atomic::AtomicBool> =
        nodes.iter().map(|_| Default::default()).collect();
    let ready = &ready;
    wait_until(DEADLINE, || async move {
        use std::sync::atomic::Ordering::Relaxed;
        for (i, node) in nodes.iter().enumerate() {
            if !ready[i].load(Relaxed) && readyz(node).await == 200 {
                api.apply(pod(&node.name, node.peer_port));
                ready[i].store(true, Relaxed);
            }
        }
        ready.iter().all(|ready| ready.load(Relaxed))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_rollout_turns_ready_and_a_later_pod_waits_for_its_sync() {
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let kubeconfig = kubeconfig(dir.path(), api_port);
    let api = FakeApi::start(api_port, 1, &[]).await;
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| node(dir.path(), &format!("c19-{i}"), &kubeconfig))
        .collect();
    // A fresh rollout: every pod starts at once and none is ready, so no agent sees a
    // peer; each must turn ready by itself rather than wait for the others.
    for node in &mut nodes {
        node.start().await;
    }
    let all: Vec<&Node> = nodes.iter().collect();
    assert!(
        kubelet(&api, &all).await,
        "a fresh rollout deadlocked:\n{}",
        all.iter().map(|n| n.logs()).collect::<String>()
    );
    for node in &nodes[1..] {
        wait_for_peers(
            node,
            &[&nodes[0], &nodes[1], &nodes[2]]
                .into_iter()
                .filter(|other| other.name != node.name)
                .collect::<Vec<_>>(),
        )
        .await;
    }

    // The cluster holds data; a pod joining now reports ready only once it holds it.
    let keys = 5_000;
    let batch: serde_json::Map<String, Value> = (0..keys)
        .map(|i| (format!("k{i:05}"), json!({ "value": i })))
        .collect();
    let put = c19_tests::http()
        .put(nodes[0].url("/"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    converged(&all, "k04999", &json!(4999)).await;

    let mut late = node(dir.path(), "c19-3", &kubeconfig);
    late.spawn();
    api.apply(unready_pod(&late.name, late.peer_port));
    let first_ready = wait_until(DEADLINE, || async { readyz(&late).await == 200 }).await;
    assert!(
        first_ready,
        "the late pod never turned ready:\n{}",
        late.logs()
    );
    let held = keys_held(&late).await;
    assert_eq!(
        held,
        keys as f64,
        "ready while holding {held} of {keys} keys:\n{}",
        late.logs()
    );
    api.stop().await;
}
