//! Agents as child processes, and polling helpers.

use std::{
    fs,
    future::Future,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::{Duration, Instant},
};

use crate::proxy::Links;

/// A shared HTTP client for tests (keep-alive, short timeouts).
pub fn http() -> reqwest::Client {
    static CLIENT: Mutex<Option<reqwest::Client>> = Mutex::new(None);
    let mut client = CLIENT.lock().unwrap();
    client
        .get_or_insert_with(|| {
            // reqwest is built without a bundled crypto provider (see the workspace
            // manifest); it wants one even for plain HTTP.
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .no_proxy()
                .build()
                .unwrap()
        })
        .clone()
}

/// A port on 127.0.0.1 that was free a moment ago.
///
/// Ports are handed out from a per-process counter starting at an offset drawn from the
/// process id, and probed by binding, so concurrent tests in one process never get the
/// same port. Test runners such as cargo-nextest run each test in its own process, so a
/// port is also claimed across processes with a lock on a file named after it (released
/// when the process ends, or [`HELD_CLAIMS`] claims later).
/// They come from below the kernel's ephemeral range: an outgoing connection of any
/// process takes its local port from that range, so a port probed free there can be
/// taken by a client socket before the agent binds it.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let (low, high) = port_range();
    let span = u32::from(high - low);
    // Spread out: processes started one after the other have neighbouring ids.
    let offset = (std::process::id().wrapping_mul(2_654_435_761) % span) as u16;
    let _ = NEXT.compare_exchange(0, low + offset, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        if port >= high || port < low {
            NEXT.store(low, Ordering::SeqCst);
            continue;
        }
        if claim(port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// How many port claims a process holds at once; older ones are given back (their ports
/// were bound by their agents, or given up, long before).
pub const HELD_CLAIMS: usize = 512;

/// Claims `port` among processes that use [`free_port`]: false when another holds it.
/// Without a usable temporary directory every port counts as claimed by this process.
fn claim(port: u16) -> bool {
    static CLAIMS: Mutex<std::collections::VecDeque<fs::File>> =
        Mutex::new(std::collections::VecDeque::new());
    let dir = std::env::temp_dir().join("c19-test-ports");
    if fs::create_dir_all(&dir).is_err() {
        return true;
    }
    let Ok(file) = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(port.to_string()))
    else {
        return true;
    };
    match file.try_lock() {
        Ok(()) => {
            let mut claims = CLAIMS
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if claims.len() >= HELD_CLAIMS {
                claims.pop_front();
            }
            claims.push_back(file);
            true
        }
        Err(fs::TryLockError::WouldBlock) => false,
        Err(fs::TryLockError::Error(_)) => true,
    }
}

/// The ports [`free_port`] picks from: those below the ephemeral range (or above it
/// when too few lie below).
fn port_range() -> (u16, u16) {
    let ephemeral = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(str::parse::<u16>);
            Some((parts.next()?.ok()?, parts.next()?.ok()?))
        })
        .unwrap_or((32_768, 60_999));
    match ephemeral {
        (low, _) if low >= 12_000 => (10_000, low),
        (_, high) if high <= 63_000 => (high + 1, 65_000),
        _ => (20_000, 60_000),
    }
}

/// Polls `check` every 20 ms until it returns true or `deadline` has passed.
/// Returns whether it succeeded.
pub async fn wait_until<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One agent process.
#[derive(Debug)]
pub struct Node {
    /// A name for logs (`node-0`).
    pub name: String,
    /// The agent (application) port.
    pub agent_port: u16,
    /// The peer (connection) port.
    pub peer_port: u16,
    /// The telemetry port (`/healthz`, `/readyz`, `/metrics`), set through
    /// `C19_SPEC__TELEMETRY__PORT` so configurations need not mention it.
    pub telemetry_port: u16,
    /// The configuration file.
    pub config: PathBuf,
    /// Where stderr goes.
    pub log: PathBuf,
    binary: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Node {
    /// A node that will run `binary` with `config`; nothing starts yet.
    pub fn new(binary: &Path, name: &str, dir: &Path, agent_port: u16, peer_port: u16) -> Self {
        Self {
            name: name.to_owned(),
            agent_port,
            peer_port,
            telemetry_port: free_port(),
            config: dir.join(format!("{name}.yml")),
            log: dir.join(format!("{name}.log")),
            binary: binary.to_owned(),
            env: Vec::new(),
            child: None,
        }
    }

    /// Sets an environment variable for the process (from the next start on).
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The agent URL for `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.agent_port)
    }

    /// The peer-port URL for `path` (which starts with `/`).
    pub fn peer_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.peer_port)
    }

    /// The telemetry URL for `path` (which starts with `/`).
    pub fn telemetry_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.telemetry_port)
    }

    /// Starts the process (appending to its log) without waiting for it.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(&self.binary);
        command
            .arg("--config")
            .arg(&self.config)
            .env(
                "RUST_LOG",
                std::env::var("C19_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("C19_SPEC__TELEMETRY__ADDRESS", "127.0.0.1")
            .env("C19_SPEC__TELEMETRY__PORT", self.telemetry_port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        self.child = Some(command.spawn().unwrap());
    }

    /// Starts the process and waits until both of its ports answer HTTP.
    pub async fn start(&mut self) {
        self.spawn();
        let ready = wait_until(Duration::from_secs(20), || self.is_ready()).await;
        assert!(
            ready,
            "{} did not become ready; log:\n{}",
            self.name,
            self.logs()
        );
    }

    /// Whether the agent and peer ports both answer.
    pub async fn is_ready(&self) -> bool {
        let agent = http().get(self.url("/.c19-probe")).send().await.is_ok();
        agent && http().get(self.peer_url("/")).send().await.is_ok()
    }

    /// Whether the process is running (not exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The process id, when running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `TERM`, `STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status()
                .unwrap();
            assert!(status.success(), "kill -{signal} {pid} failed");
        }
    }

    /// Waits up to `deadline` for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return status.code();
                }
            } else {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Pauses the process (SIGSTOP): its sockets stay open but nothing answers.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Resumes a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// What the process logged so far.
    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /<key>` on the agent: the stored JSON, or `None` on 404.
    pub async fn get(&self, key: &str) -> Option<serde_json::Value> {
        let response = http().get(self.url(&format!("/{key}"))).send().await.ok()?;
        if response.status() != 200 {
            return None;
        }
        response.json().await.ok()
    }

    /// `GET /<key>` on the agent: just the `value` field.
    pub async fn value(&self, key: &str) -> Option<serde_json::Value> {
        self.get(key).await.map(|entry| entry["value"].clone())
    }

    /// `PUT /` on the agent with `body`; returns the status code.
    pub async fn put(&self, body: serde_json::Value) -> u16 {
        http()
            .put(self.url("/"))
            .json(&body)
            .send()
            .await
            .map(|response| response.status().as_u16())
            .unwrap_or(0)
    }

    /// Sets `key` to `value` on the agent and asserts it was acknowledged.
    pub async fn set(&self, key: &str, value: serde_json::Value) {
        let status = self
            .put(serde_json::json!({ key: { "value": value } }))
            .await;
        assert_eq!(status, 204, "PUT {key} on {} failed", self.name);
    }

    /// `DELETE /<key>` on the agent; returns the status code.
    pub async fn delete(&self, key: &str) -> u16 {
        http()
            .delete(self.url(&format!("/{key}")))
            .send()
            .await
            .map(|response| response.status().as_u16())
            .unwrap_or(0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A paused process cannot die until resumed.
        self.resume();
        self.kill();
    }
}

/// Builds a cluster of agents with static peers on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    binary: PathBuf,
    nodes: usize,
    push_ms: u64,
    pull_ms: u64,
    r0: usize,
    state_kind: String,
    state: String,
    connection: String,
    proxied: bool,
    /// The nodes that persist their state, and the extra YAML of their `persistence`.
    persisted: (Vec<usize>, String),
}

impl ClusterBuilder {
    /// `nodes` agents running `binary`, pushing every 100 ms and pulling every second.
    pub fn new(binary: impl Into<PathBuf>, nodes: usize) -> Self {
        Self {
            binary: binary.into(),
            nodes,
            push_ms: 100,
            pull_ms: 1000,
            r0: 3,
            state_kind: "Default".to_owned(),
            state: String::new(),
            connection: String::new(),
            proxied: false,
            persisted: (Vec::new(), String::new()),
        }
    }

    /// Routes every link between two nodes through its own [`crate::proxy::Proxy`], so
    /// [`Cluster::cut`] can isolate a node. `build` must then run inside a Tokio runtime.
    pub fn proxied(mut self) -> Self {
        self.proxied = true;
        self
    }

    /// The push interval in milliseconds.
    pub fn push_ms(mut self, ms: u64) -> Self {
        self.push_ms = ms;
        self
    }

    /// The pull interval in milliseconds.
    pub fn pull_ms(mut self, ms: u64) -> Self {
        self.pull_ms = ms;
        self
    }

    /// Peers sampled per round.
    pub fn r0(mut self, r0: usize) -> Self {
        self.r0 = r0;
        self
    }

    /// Gives each of `nodes` a `persistence` section with a data directory of its own
    /// (`node-<i>-data` in the cluster's folder) and the extra YAML lines `yaml`.
    pub fn persisted(mut self, nodes: &[usize], yaml: &str) -> Self {
        self.persisted = (nodes.to_vec(), yaml.to_owned());
        self
    }

    /// The `kind` of the state section (`Default` unless set; `Mem` selects the
    /// testkit's [`crate::MemState`] in a binary that links this crate).
    pub fn state_kind(mut self, kind: &str) -> Self {
        self.state_kind = kind.to_owned();
        self
    }

    /// Extra YAML lines for the state section (indented by the builder).
    pub fn state_yaml(mut self, yaml: &str) -> Self {
        self.state = yaml.to_owned();
        self
    }

    /// Extra YAML lines for the connection section (indented by the builder).
    pub fn connection_yaml(mut self, yaml: &str) -> Self {
        self.connection = yaml.to_owned();
        self
    }

    /// Writes the configurations without starting anything.
    pub fn build(self) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("c19-cluster-")
            .tempdir()
            .unwrap();
        let ports: Vec<(u16, u16)> = (0..self.nodes)
            .map(|_| (free_port(), free_port()))
            .collect();
        let links = self
            .proxied
            .then(|| Links::start(&ports.iter().map(|&(_, peer)| peer).collect::<Vec<_>>()));
        let peer_list = |ports: Vec<u16>| -> String {
            ports
                .iter()
                .map(|port| format!("\"127.0.0.1:{port}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let all_peers = peer_list(ports.iter().map(|&(_, peer)| peer).collect());
        let indent =
            |yaml: &str| -> String { yaml.lines().map(|line| format!("    {line}\n")).collect() };
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &(agent_port, peer_port))| {
                let node = Node::new(&self.binary, &format!("node-{i}"), dir.path(), agent_port, peer_port);
                let peers = match &links {
                    Some(links) => peer_list(links.outgoing_ports(i)),
                    None => all_peers.clone(),
                };
                let mut state = self.state.clone();
                if self.persisted.0.contains(&i) {
                    let data = dir.path().join(format!("node-{i}-data"));
                    state.push_str(&format!("persistence:\n  path: {}\n", data.display()));
                    for line in self.persisted.1.lines() {
                        state.push_str(&format!("  {line}\n"));
                    }
                }
                let config = format!(
                    "version: 0.1\nspec:\n  agent:\n    kind: Default\n    address: 127.0.0.1\n    port: {agent_port}\n  state:\n    kind: {state_kind}\n{state}  connection:\n    kind: Default\n    address: 127.0.0.1\n    port: {peer_port}\n    push_interval: {push}\n    pull_interval: {pull}\n    r0: {r0}\n{connection}    peer_provider:\n      kind: Static\n      peers: [{peers}]\n",
                    state_kind = self.state_kind,
                    state = indent(&state),
                    connection = indent(&self.connection),
                    push = self.push_ms,
                    pull = self.pull_ms,
                    r0 = self.r0,
                    peers = peers,
                );
                fs::write(&node.config, config).unwrap();
                node
            })
            .collect();
        Cluster { nodes, dir, links }
    }

    /// Writes the configurations and starts every node, waiting until all are ready.
    ///
    /// A node that could not bind a port another process took between the probe and
    /// the bind makes the whole cluster start again on fresh ports (twice at most).
    pub async fn start(self) -> Cluster {
        let mut attempt = 1;
        loop {
            let mut cluster = self.clone().build();
            for node in &mut cluster.nodes {
                node.spawn();
            }
            let mut failed = None;
            for node in &cluster.nodes {
                // Stops waiting early when the node has already given up on a port.
                let settled = || async {
                    node.is_ready().await || node.logs().contains("Address already in use")
                };
                wait_until(Duration::from_secs(30), settled).await;
                if !node.is_ready().await {
                    failed = Some((node.name.clone(), node.logs()));
                    break;
                }
            }
            let Some((name, logs)) = failed else {
                return cluster;
            };
            let port_taken = cluster
                .nodes
                .iter()
                .any(|node| node.logs().contains("Address already in use"));
            assert!(
                port_taken && attempt < 3,
                "{name} did not become ready; log:\n{logs}"
            );
            attempt += 1;
        }
    }
}

/// Agents started by a [`ClusterBuilder`]; all are killed when it drops.
#[derive(Debug)]
pub struct Cluster {
    /// The agents.
    pub nodes: Vec<Node>,
    dir: tempfile::TempDir,
    links: Option<Links>,
}

impl Cluster {
    /// The folder holding configurations and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until every running node returns `expected` as the `value` of `key`
    /// (`None`: until every node answers 404). Returns whether that happened in time.
    pub async fn converged(
        &self,
        key: &str,
        expected: Option<serde_json::Value>,
        deadline: Duration,
    ) -> bool {
        wait_until(deadline, || async {
            for node in &self.nodes {
                if node.child.is_none() {
                    continue;
                }
                if node.value(key).await != expected {
                    return false;
                }
            }
            true
        })
        .await
    }

    /// The proxies between the nodes of a [`ClusterBuilder::proxied`] cluster.
    pub fn links(&self) -> &Links {
        self.links
            .as_ref()
            .expect("the cluster was not built with `proxied()`")
    }

    /// Cuts every link from and to node `i` (its agent port still answers).
    pub fn cut(&self, i: usize) {
        self.links().cut(i);
    }

    /// Heals the links of node `i`.
    pub fn heal(&self, i: usize) {
        self.links().heal(i);
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("==== {}\n{}", node.name, node.logs()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_handed_out_is_claimed_against_other_openers() {
        let port = free_port();
        // A lock on a file is held per opening, so a second opening stands for another
        // process here.
        assert!(!claim(port), "port {port} was handed out but not claimed");
        assert_ne!(free_port(), port);
    }
}
