//! Scenario 8: persistence (issue 18) — GET throughput of a persisting agent beside an
//! in-memory one, PUT throughput with `sync: always` and `sync: interval` beside Redis
//! with `appendfsync always` and `everysec`, and the start-up load of 1M keys.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{
    Outcome, Solo,
    client::{Api, VALUE_BYTES, base},
    error::{Error, Result},
    load::{Generator, LoadResult},
    report::{Figure, Target, Unit},
    throughput::{self, GET_KEYS, PUT_KEYS},
};
use crate::free_port;

const SCENARIO: &str = "persistence";
/// Rounds of the GET load, alternating between the two agents.
const ROUNDS: u32 = 3;

/// The `persistence` lines of a state section.
fn persisted(dir: &Path, sync: &str) -> String {
    format!("persistence:\n  path: {}\n  sync: {sync}\n", dir.display())
}

/// Runs the scenario; each load lasts `duration`, the load test holds `load_keys`.
pub async fn run(
    binary: &Path,
    generator: &Generator,
    duration: Duration,
    load_keys: usize,
) -> Result<Outcome> {
    let api = Api::new()?;
    let data = tempfile::Builder::new()
        .prefix("c19-bench-data-")
        .tempdir()
        .map_err(Error::io("creating a data folder"))?;
    let mut outcome = Outcome::default();

    // GET: the same load on both agents in alternate rounds.
    let memory = Solo::start_with_state(binary, "").await?;
    let disk =
        Solo::start_with_state(binary, &persisted(&data.path().join("get"), "always")).await?;
    let (memory_url, disk_url) = (base(memory.node.agent_port), base(disk.node.agent_port));
    for url in [&memory_url, &disk_url] {
        api.load(&format!("{url}/"), "get", "get", 0..GET_KEYS, GET_KEYS)
            .await?;
    }
    let round = duration / ROUNDS;
    let (mut memory_rounds, mut disk_rounds) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        memory_rounds.push(throughput::get_load(generator, &memory_url, round).await?);
        disk_rounds.push(throughput::get_load(generator, &disk_url, round).await?);
    }
    drop((memory, disk));
    let (memory_get, disk_get) = (median(memory_rounds), median(disk_rounds));
    outcome.figures.extend([
        Figure::new(
            SCENARIO,
            "GET throughput, in-memory agent",
            Some(memory_get.per_second),
            Unit::ReqPerSec,
        )
        .note(format!(
            "median of {ROUNDS} rounds, alternating with the next row"
        )),
        Figure::new(
            SCENARIO,
            "GET throughput, persisting agent",
            Some(disk_get.per_second),
            Unit::ReqPerSec,
        )
        .target(Target::at_least(0.95 * memory_get.per_second, "issue 18"))
        .note(format!(
            "sync: always; {:.1}% of the in-memory agent's (target: within 5%)",
            100.0 * disk_get.per_second / memory_get.per_second.max(1.0)
        )),
    ]);

    // PUT: one value per PUT, 32 connections.
    for sync in ["always", "interval"] {
        let solo =
            Solo::start_with_state(binary, &persisted(&data.path().join(sync), sync)).await?;
        let put = throughput::put_load(generator, &base(solo.node.agent_port), duration).await?;
        outcome.figures.push(
            Figure::new(
                SCENARIO,
                &format!("PUT throughput, sync: {sync}"),
                Some(put.per_second),
                Unit::ReqPerSec,
            )
            .note(format!(
                "one {VALUE_BYTES}-byte value per PUT, {PUT_KEYS} keys, 32 connections; p99 {:.2} ms{}",
                put.p99_ms,
                if sync == "always" {
                    "; each acknowledged after its fsync (group commit)"
                } else {
                    "; synced every 100 ms"
                }
            )),
        );
    }
    outcome.figures.extend(redis(duration).await);

    // Start-up: a persisting agent holding `load_keys` keys is stopped and started.
    let dir = data.path().join("load");
    let mut solo = Solo::start_with_state(binary, &persisted(&dir, "interval")).await?;
    let url = format!("{}/", base(solo.node.agent_port));
    api.load(&url, "load", "l", 0..load_keys, 20_000).await?;
    solo.node.signal("TERM");
    solo.node.wait_exit(Duration::from_secs(60)).await;
    let file_size = std::fs::metadata(dir.join("state.redb")).map_or(0, |meta| meta.len());
    let started = Instant::now();
    solo.node.spawn();
    let answered = crate::wait_until(Duration::from_secs(120), || solo.node.is_ready()).await;
    let took = started.elapsed();
    if !answered {
        return Err(Error::Timeout(format!(
            "the agent holding {load_keys} keys did not answer within 120 s"
        )));
    }
    let held = api.value(&base(solo.node.agent_port), "load-7").await?;
    if held.is_none() {
        return Err(Error::Answer {
            what: "GET load-7".into(),
            detail: "a key of the loaded database is missing after the restart".into(),
        });
    }
    outcome.figures.extend([
        Figure::new(
            SCENARIO,
            &format!("start-up with {} keys on disk", thousands(load_keys)),
            Some(took.as_secs_f64() * 1000.0),
            Unit::Ms,
        )
        .target(Target::at_most(5000.0, "issue 18"))
        .note("from the process start until the agent answers: the database is loaded and checked (integrity check on open) before the agent listens"),
        Figure::new(
            SCENARIO,
            "database file size per key",
            Some(file_size as f64 / load_keys.max(1) as f64),
            Unit::BytesPerKey,
        )
        .note(format!(
            "{VALUE_BYTES}-byte values, keys `load-<i>`; redb's file, {:.0} MB",
            file_size as f64 / 1e6
        )),
    ]);
    Ok(outcome)
}

fn median(mut rounds: Vec<LoadResult>) -> LoadResult {
    rounds.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    rounds.swap_remove(rounds.len() / 2)
}

fn thousands(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Redis `SET` throughput with `appendfsync always` and `everysec` on this machine, by
/// `redis-benchmark` (installed with apt-get when missing and allowed); rows without a
/// figure, with the reason, when Redis cannot run.
async fn redis(duration: Duration) -> Vec<Figure> {
    let rows = ["always", "everysec"];
    if let Err(reason) = ensure_redis() {
        return rows
            .iter()
            .map(|fsync| {
                Figure::new(
                    SCENARIO,
                    &format!("Redis SET, appendfsync {fsync}"),
                    None,
                    Unit::ReqPerSec,
                )
                .note(format!("skipped: {reason}"))
            })
            .collect();
    }
    let mut figures = Vec::new();
    for fsync in rows {
        let name = format!("Redis SET, appendfsync {fsync}");
        figures.push(match redis_set_rate(fsync, duration).await {
            Ok(rate) => Figure::new(SCENARIO, &name, Some(rate), Unit::ReqPerSec).note(format!(
                "redis-benchmark -t set -c 32 -d {VALUE_BYTES} -r {PUT_KEYS}, appendonly yes, same disk"
            )),
            Err(reason) => Figure::new(SCENARIO, &name, None, Unit::ReqPerSec)
                .note(format!("skipped: {reason}")),
        });
    }
    figures
}

/// Installs `redis-server` and `redis-tools` if they are missing.
fn ensure_redis() -> std::result::Result<(), String> {
    let present = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if present("redis-server") && present("redis-benchmark") {
        return Ok(());
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-q", "redis-server", "redis-tools"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match installed {
        Ok(status) if status.success() && present("redis-server") => Ok(()),
        Ok(status) => Err(format!(
            "redis-server is not installed and apt-get install failed ({status})"
        )),
        Err(error) => Err(format!(
            "redis-server is not installed and apt-get cannot run: {error}"
        )),
    }
}

/// Runs a Redis server with AOF `fsync` on a free port and measures `SET`s per second.
async fn redis_set_rate(fsync: &str, duration: Duration) -> std::result::Result<f64, String> {
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let port = free_port().to_string();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
        ])
        .args(["--appendfsync", fsync])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot start redis-server: {error}"))?;
    let address = format!("127.0.0.1:{port}");
    let up = crate::wait_until(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(&address).await.is_ok()
    })
    .await;
    // About as many requests as the agent's load answers in `duration`.
    let requests = (duration.as_secs().max(1) * 40_000).to_string();
    let measured = if up {
        let mut benchmark = Command::new("redis-benchmark");
        benchmark
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "set",
                "-c",
                "32",
                "--csv",
            ])
            .args([
                "-n",
                &requests,
                "-d",
                &VALUE_BYTES.to_string(),
                "-r",
                &PUT_KEYS.to_string(),
            ]);
        let output = tokio::task::spawn_blocking(move || benchmark.output())
            .await
            .map_err(|error| error.to_string())?
            .map_err(|error| format!("cannot run redis-benchmark: {error}"))?;
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find(|line| line.starts_with("\"SET\""))
            .and_then(|line| line.split(',').nth(1))
            .and_then(|rate| rate.trim_matches('"').parse::<f64>().ok())
            .ok_or_else(|| "redis-benchmark printed no SET rate".to_owned())
    } else {
        Err("redis-server did not answer within 10 s".to_owned())
    };
    let _ = server.kill();
    let _ = server.wait();
    measured
}
