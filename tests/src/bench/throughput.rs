//! Scenario 3: requests per second and latency of one agent under a keep-alive load,
//! and GET latency while a 100,000-key batch is merged through the peer port.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    Outcome, Solo,
    client::{Api, VALUE_BYTES, base, batch_body, key, value_text},
    error::{Error, Result},
    floor::Floor,
    load::{self, Generator, LoadResult, MakeRequest},
    report::{Figure, Target, Unit},
    stats::percentile,
};

/// Keys the GET load reads, round-robin.
pub(super) const GET_KEYS: usize = 1000;
/// Keys the PUT load writes, round-robin.
pub(super) const PUT_KEYS: usize = 10_000;
/// Connections of every load (the issue's `wrk -t2 -c32`).
const CONNECTIONS: usize = 32;
const THREADS: usize = 2;
/// Rounds of each load, alternating between the agent and the bare server.
const ROUNDS: u32 = 3;

/// Measures GET and PUT throughput for `duration` each, then GET latency during a
/// merge of `merge_keys` keys.
pub async fn run(
    binary: &Path,
    generator: &Generator,
    duration: Duration,
    merge_keys: usize,
) -> Result<Outcome> {
    let solo = Solo::start(binary).await?;
    let agent = base(solo.node.agent_port);
    let api = Api::new()?;
    api.load(&format!("{agent}/"), "get", "get", 0..GET_KEYS, GET_KEYS)
        .await?;

    let scenario = "agent (1 agent)";
    let how = match generator {
        Generator::Wrk(_) => format!(
            "median of {ROUNDS} rounds of wrk -t{THREADS} -c{CONNECTIONS} -d{}s",
            (duration / ROUNDS).as_secs().max(1)
        ),
        Generator::BuiltIn => format!(
            "median of {ROUNDS} rounds of the built-in load, {CONNECTIONS} connections, {} s",
            (duration / ROUNDS).as_secs().max(1)
        ),
    };
    // The bare HTTP server takes the same loads in alternate rounds, so that both see
    // the same machine: it is shared, and its speed drifts by a quarter over minutes.
    let floor = match Floor::binary() {
        Some(binary) => Some(Floor::start(&binary).await?),
        None => None,
    };
    let floor_url = floor.as_ref().map(|floor| floor.url.as_str());
    let round = duration / ROUNDS;
    let (get, floor_get) = rounds(Load::Get, generator, &agent, floor_url, round).await?;
    let (put, floor_put) = rounds(Load::Put, generator, &agent, floor_url, round).await?;
    drop(floor);
    let put_key = key("put", PUT_KEYS / 2);
    if api.value(&agent, &put_key).await?.is_none() {
        return Err(Error::Answer {
            what: format!("GET {agent}/{put_key}"),
            detail: "a key written by the PUT load is missing".into(),
        });
    }
    let floor = floor_get.zip(floor_put);
    let of_floor = |result: &LoadResult, floor: Option<&LoadResult>| match floor {
        Some(floor) if floor.per_second > 0.0 => format!(
            "; {:.0}% of the bare server's {:.1}k",
            100.0 * result.per_second / floor.per_second,
            floor.per_second / 1000.0
        ),
        _ => String::new(),
    };
    let failures = |result: &LoadResult| {
        if result.failed > 0 {
            format!("; {} requests failed", result.failed)
        } else {
            String::new()
        }
    };

    let mut outcome = Outcome::default();
    outcome.figures.extend([
        Figure::new(
            scenario,
            "GET throughput",
            Some(get.per_second),
            Unit::ReqPerSec,
        )
        .target(Target::at_least(90_000.0, "issue 3"))
        .note(format!(
            "{how}; 0.1: 87k{}{}",
            of_floor(&get, floor.as_ref().map(|(get, _)| get)),
            failures(&get)
        )),
        Figure::new(scenario, "GET latency p50", Some(get.p50_ms), Unit::Ms),
        Figure::new(scenario, "GET latency p99", Some(get.p99_ms), Unit::Ms),
        Figure::new(
            scenario,
            "validated PUT throughput",
            Some(put.per_second),
            Unit::ReqPerSec,
        )
        .target(Target::at_least(60_000.0, "issue 3"))
        .note(format!(
            "{how}, one {VALUE_BYTES}-byte value per PUT; 0.1: 65k unvalidated{}{}",
            of_floor(&put, floor.as_ref().map(|(_, put)| put)),
            failures(&put)
        )),
        Figure::new(scenario, "PUT latency p50", Some(put.p50_ms), Unit::Ms),
        Figure::new(scenario, "PUT latency p99", Some(put.p99_ms), Unit::Ms),
        Figure::new(
            scenario,
            "GET throughput of a bare HTTP server",
            floor.as_ref().map(|(get, _)| get.per_second),
            Unit::ReqPerSec,
        )
        .note(format!(
            "c19-bench-floor (axum answering a fixed {VALUE_BYTES}-byte entry, no state), {how}: \
             the most an agent on this HTTP stack can answer here{}",
            if floor.is_none() { "; not built" } else { "" }
        )),
        Figure::new(
            scenario,
            "PUT throughput of a bare HTTP server",
            floor.as_ref().map(|(_, put)| put.per_second),
            Unit::ReqPerSec,
        )
        .note(format!(
            "c19-bench-floor reading each body without parsing it, {how}"
        )),
        Figure::new(
            scenario,
            "GET latency p99 of a bare HTTP server",
            floor.as_ref().map(|(get, _)| get.p99_ms),
            Unit::Ms,
        )
        .note("the tail that scheduling alone gives on this machine, at full load"),
    ]);
    outcome
        .figures
        .extend(merge(&api, &solo, merge_keys, scenario).await?);
    Ok(outcome)
}

/// The loads measured in rounds.
#[derive(Debug, Clone, Copy)]
enum Load {
    Get,
    Put,
}

/// Runs `load` on the agent and on the floor (if any) in [`ROUNDS`] alternating rounds;
/// the median round of each by throughput (its latencies with it).
async fn rounds(
    load: Load,
    generator: &Generator,
    agent: &str,
    floor: Option<&str>,
    round: Duration,
) -> Result<(LoadResult, Option<LoadResult>)> {
    let run = async |url| match load {
        Load::Get => get_load(generator, url, round).await,
        Load::Put => put_load(generator, url, round).await,
    };
    let (mut agent_rounds, mut floor_rounds) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        agent_rounds.push(run(agent).await?);
        if let Some(floor) = floor {
            floor_rounds.push(run(floor).await?);
        }
    }
    Ok((
        median_round(agent_rounds),
        (!floor_rounds.is_empty()).then(|| median_round(floor_rounds)),
    ))
}

/// The round of median throughput; failures are summed over all rounds.
fn median_round(mut rounds: Vec<LoadResult>) -> LoadResult {
    let failed = rounds.iter().map(|round| round.failed).sum();
    rounds.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    let mut median = rounds.swap_remove(rounds.len() / 2);
    median.failed = failed;
    median
}

pub(super) async fn get_load(
    generator: &Generator,
    agent: &str,
    duration: Duration,
) -> Result<LoadResult> {
    match generator {
        Generator::Wrk(_) => {
            let script = format!(
                "local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(\"GET\", \"/get-\" .. (n % {GET_KEYS}))\nend\n"
            );
            load::wrk(
                &format!("{agent}/"),
                &script,
                THREADS,
                CONNECTIONS,
                duration,
            )
            .await
        }
        Generator::BuiltIn => {
            let agent = agent.to_owned();
            let make: MakeRequest = Arc::new(move |client: &reqwest::Client, n: u64| {
                client.get(format!("{agent}/get-{}", n % GET_KEYS as u64))
            });
            builtin(make, duration).await
        }
    }
}

pub(super) async fn put_load(
    generator: &Generator,
    agent: &str,
    duration: Duration,
) -> Result<LoadResult> {
    let value = value_text("put", 0);
    match generator {
        Generator::Wrk(_) => {
            let script = format!(
                "wrk.method = \"PUT\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, \"/\", nil, '{{\"put-' .. (n % {PUT_KEYS}) .. '\":{{\"value\":\"{value}\"}}}}')\nend\n"
            );
            load::wrk(
                &format!("{agent}/"),
                &script,
                THREADS,
                CONNECTIONS,
                duration,
            )
            .await
        }
        Generator::BuiltIn => {
            let url = format!("{agent}/");
            let make: MakeRequest = Arc::new(move |client: &reqwest::Client, n: u64| {
                let body = format!(r#"{{"put-{}":{{"value":"{value}"}}}}"#, n % PUT_KEYS as u64);
                client
                    .put(&url)
                    .header("content-type", "application/json")
                    .body(body)
            });
            builtin(make, duration).await
        }
    }
}

async fn builtin(make: MakeRequest, duration: Duration) -> Result<LoadResult> {
    let (samples, began) = load::builtin(make, CONNECTIONS, duration, None).await?;
    Ok(load::summarize(&samples, began.elapsed()))
}

/// GET latency (built-in generator, which times each request) while `keys` keys are
/// merged through the peer port in one batch (halved while the peer refuses it as too large).
async fn merge(api: &Api, solo: &Solo, keys: usize, scenario: &str) -> Result<Vec<Figure>> {
    let agent = base(solo.node.agent_port);
    let peer = format!("{}/", base(solo.node.peer_port));
    let body = batch_body("merge", "merge", 0..keys);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let make: MakeRequest = Arc::new(move |client: &reqwest::Client, n: u64| {
        client.get(format!("{agent}/get-{}", n % GET_KEYS as u64))
    });
    let load = tokio::spawn(load::builtin(
        make,
        CONNECTIONS,
        Duration::from_secs(120),
        Some(stop.clone()),
    ));
    // Let the load reach its steady state before the merge begins.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let merged = match api.put(&peer, body).await {
        Err(Error::Status { status: 413, .. }) => api
            .load(&peer, "merge", "merge", 0..keys, keys / 2)
            .await
            .map(|()| "in several batches"),
        other => other.map(|()| "in one batch"),
    };
    let end = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (samples, began) = load
        .await
        .map_err(|error| Error::Tool(format!("load: {error}")))??;
    let how = merged?;
    let (from, to) = (micros(start - began), micros(end - began));
    let latencies = |from: u64, to: u64| {
        let mut window: Vec<f64> = samples
            .iter()
            .filter(|s| s.ok && s.start_us >= from && s.start_us <= to)
            .map(|s| s.latency_us as f64 / 1000.0)
            .collect();
        window.sort_by(f64::total_cmp);
        window
    };
    let during = latencies(from, to);
    // The same load over the last 300 ms before the merge: what the merge adds.
    let before = latencies(from.saturating_sub(300_000), from.saturating_sub(1));
    let failed = samples
        .iter()
        .filter(|s| !s.ok && s.start_us >= from && s.start_us <= to)
        .count();
    let merge_ms = (end - start).as_secs_f64() * 1000.0;
    let p99 = (!during.is_empty()).then(|| percentile(&during, 99.0));
    let p99_before = (!before.is_empty()).then(|| percentile(&before, 99.0));
    Ok(vec![
        Figure::new(scenario, &format!("GET p99 during a {keys}-key merge"), p99, Unit::Ms)
            .target(Target::at_most(5.0, "issue 3"))
            .note(format!(
                "{} GETs ({failed} failed) started during the merge (built-in generator, {CONNECTIONS} connections)",
                during.len()
            )),
        Figure::new(scenario, "GET p99 just before the merge", p99_before, Unit::Ms).note(
            format!(
                "{} GETs of the same load in the 300 ms before the merge began",
                before.len()
            ),
        ),
        Figure::new(scenario, &format!("{keys}-key merge through the peer port"), Some(merge_ms), Unit::Ms)
            .note(format!("PUT on the peer port, {how}, while loaded with GETs")),
    ])
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
