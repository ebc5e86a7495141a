//! `cargo xtask cluster`: N agents on 127.0.0.1 with static peers, logs prefixed by
//! node, all stopped gracefully on Ctrl-C.

use std::{
    fs,
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::util::{cargo, flag, root, run as run_command};

struct Options {
    nodes: usize,
    push: u64,
    pull: u64,
    r0: usize,
    agent_port: u16,
    peer_port: u16,
    telemetry_port: u16,
    release: bool,
}

fn options(args: &[String]) -> Result<Options, String> {
    let known = [
        "--nodes",
        "--push",
        "--pull",
        "--r0",
        "--agent-port",
        "--peer-port",
        "--telemetry-port",
        "--release",
    ];
    for arg in args.iter().filter(|arg| arg.starts_with("--")) {
        if !known.contains(&arg.as_str()) {
            return Err(format!(
                "cluster: unknown option `{arg}` (known: {})",
                known.join(", ")
            ));
        }
    }
    let options = Options {
        nodes: flag(args, "--nodes")?.unwrap_or(3),
        push: flag(args, "--push")?.unwrap_or(1000),
        pull: flag(args, "--pull")?.unwrap_or(60_000),
        r0: flag(args, "--r0")?.unwrap_or(3),
        agent_port: flag(args, "--agent-port")?.unwrap_or(3097),
        peer_port: flag(args, "--peer-port")?.unwrap_or(4097),
        telemetry_port: flag(args, "--telemetry-port")?.unwrap_or(9097),
        release: args.iter().any(|arg| arg == "--release"),
    };
    if options.nodes == 0 || options.nodes > 200 {
        return Err("cluster: --nodes must be between 1 and 200".into());
    }
    if options
        .agent_port
        .checked_add(options.nodes as u16)
        .is_none()
        || options
            .peer_port
            .checked_add(options.nodes as u16)
            .is_none()
    {
        return Err("cluster: ports out of range".into());
    }
    Ok(options)
}

/// The configuration of node `i`.
fn config(options: &Options, i: usize) -> String {
    let peers: Vec<String> = (0..options.nodes)
        .filter(|&j| j != i)
        .map(|j| format!("\"127.0.0.1:{}\"", options.peer_port + j as u16))
        .collect();
    format!(
        "version: 0.1\nspec:\n  agent:\n    kind: Default\n    address: 127.0.0.1\n    port: {agent}\n  state:\n    kind: Default\n  connection:\n    kind: Default\n    address: 127.0.0.1\n    port: {peer}\n    push_interval: {push}\n    pull_interval: {pull}\n    r0: {r0}\n    peer_provider:\n      kind: Static\n      peers: [{peers}]\n  telemetry:\n    address: 127.0.0.1\n    port: {telemetry}\n",
        agent = options.agent_port + i as u16,
        peer = options.peer_port + i as u16,
        push = options.push,
        pull = options.pull,
        r0 = options.r0,
        peers = peers.join(", "),
        telemetry = options.telemetry_port + i as u16,
    )
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = options(args)?;
    let mut build = cargo();
    build.args(["build", "-p", "c19-bin", "--bin", "c19"]);
    if options.release {
        build.arg("--release");
    }
    run_command("build c19", &mut build)?;
    let profile = if options.release { "release" } else { "debug" };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let binary = target.join(profile).join("c19");
    let dir = target.join("xtask-cluster");
    fs::create_dir_all(&dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;

    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    ctrlc::set_handler(move || on_signal.store(true, Ordering::SeqCst))
        .map_err(|error| format!("cannot handle Ctrl-C: {error}"))?;

    let mut children: Vec<Child> = Vec::new();
    for i in 0..options.nodes {
        let path = dir.join(format!("node-{i}.yml"));
        fs::write(&path, config(&options, i))
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        let mut child = Command::new(&binary)
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", binary.display()))?;
        let name = format!("node-{i}");
        if let Some(out) = child.stdout.take() {
            prefix_lines(name.clone(), out);
        }
        if let Some(err) = child.stderr.take() {
            prefix_lines(name.clone(), err);
        }
        println!(
            "{name}: agent http://127.0.0.1:{}/  peers http://127.0.0.1:{}/  metrics http://127.0.0.1:{}/metrics  config {}",
            options.agent_port + i as u16,
            options.peer_port + i as u16,
            options.telemetry_port + i as u16,
            path.display()
        );
        children.push(child);
    }
    println!("{} agents running; Ctrl-C stops them all", options.nodes);

    while !stop.load(Ordering::SeqCst) {
        if children
            .iter_mut()
            .all(|child| matches!(child.try_wait(), Ok(Some(_))))
        {
            return Err("every agent exited".into());
        }
        thread::sleep(Duration::from_millis(100));
    }
    println!("stopping {} agents", children.len());
    for child in &children {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for child in &mut children {
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(())
}

/// Copies `stream` to stdout line by line, each line prefixed by `[name]`.
fn prefix_lines(name: String, stream: impl Read + Send + 'static) {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            println!("[{name}] {line}");
        }
    });
}
