//! Scenario 6: what mutual TLS between agents costs. Ten agents with the convergence
//! scenario's settings run plaintext and TLS `strict` in turn on the same machine
//! (rounds in the order plaintext, strict, strict, plaintext, … so that drift of the
//! machine's load hits both alike), each holding 1,000 keys: bytes sent per pull
//! interval at rest, and how long a new key takes to reach every agent.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::{
    Outcome,
    client::{Api, base, value_text},
    convergence::{DEADLINE, PULL_MS, PUSH_MS, R0, everywhere},
    error::{Error, Result},
    machine,
    network::{PREFIX, counters, delta, holds_sample, wire_note},
    report::{Figure, Target, Unit},
    stats::Summary,
};
use crate::{
    ClusterBuilder,
    pki::{Ca, intruder, peer_tls_yaml},
    wait_until,
};

/// Agents in each cluster.
const AGENTS: usize = 10;
/// Keys the state holds while measured.
const KEYS: usize = 1000;
/// Clusters started per mode.
pub const ROUNDS: usize = 2;
/// The scenario's name in reports.
const SCENARIO: &str = "tls 10 agents, 1000 keys";
/// Tolerated p90 of TLS convergence: × this of plaintext's p90 …
const P90_FACTOR: f64 = 1.25;
/// … and at least this much (ms) above it.
const P90_SLACK_MS: f64 = 50.0;
/// Pull intervals between the load reaching every agent and the at-rest measurement.
const SETTLE_PULLS: u32 = 6;

/// Tolerated at-rest wire bytes of TLS: × this of plaintext's.
const WIRE_FACTOR: f64 = 1.5;

/// How agents talk to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No `tls:` section.
    Plaintext,
    /// Mutual TLS, `mode: strict`.
    Strict,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Strict => "TLS strict",
        }
    }
}

/// What the rounds of one mode measured.
#[derive(Debug, Default)]
struct Measured {
    /// Body bytes per pull interval at rest, one per round.
    rest_body: Vec<f64>,
    /// Wire bytes per pull interval at rest, one per round (when measurable).
    rest_wire: Vec<f64>,
    /// Convergence times of new keys; lost writes count as [`DEADLINE`].
    times: Vec<Duration>,
    /// Writes that did not reach every agent in time.
    timeouts: usize,
}

/// The certificates of a strict cluster and a client that presents one of them, to
/// read the agents' counters on their TLS peer ports.
struct Pki {
    dir: tempfile::TempDir,
    peer_api: Api,
}

/// Runs `ROUNDS` clusters of each mode, alternating, with `writes` new keys per mode
/// (spread over its rounds), and reports the modes side by side.
pub async fn run(binary: &Path, writes: usize) -> Result<Outcome> {
    let ca = Ca::new("c19 bench CA");
    let dir = tempfile::Builder::new()
        .prefix("c19-bench-tls-")
        .tempdir()
        .map_err(Error::io("creating a folder for the certificates"))?;
    ca.write(dir.path(), &["c19"], false);
    let (cert, key) = ca.issue(&["c19"], false);
    let pki = Pki {
        dir,
        peer_api: Api::from_client(intruder(Some((&cert, &key)))),
    };
    let per_round = writes.div_ceil(ROUNDS).max(1);
    let mut plaintext = Measured::default();
    let mut strict = Measured::default();
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [Mode::Plaintext, Mode::Strict]
        } else {
            [Mode::Strict, Mode::Plaintext]
        };
        for mode in order {
            let into = match mode {
                Mode::Plaintext => &mut plaintext,
                Mode::Strict => &mut strict,
            };
            measure(binary, mode, &pki, round, per_round, into).await?;
        }
    }
    let lost = plaintext.timeouts + strict.timeouts;
    if lost == 2 * per_round * ROUNDS {
        return Err(Error::Timeout(format!(
            "{SCENARIO}: no write reached every agent within {} s",
            DEADLINE.as_secs()
        )));
    }
    Ok(Outcome {
        figures: figures(&plaintext, &strict),
        points: Vec::new(),
    })
}

/// One cluster of `mode`: loads the keys, measures the network at rest, then the
/// convergence of `writes` new keys, adding to `into`.
async fn measure(
    binary: &Path,
    mode: Mode,
    pki: &Pki,
    round: usize,
    writes: usize,
    into: &mut Measured,
) -> Result<()> {
    let mut builder = ClusterBuilder::new(binary, AGENTS)
        .push_ms(PUSH_MS)
        .pull_ms(PULL_MS)
        .r0(R0);
    if mode == Mode::Strict {
        builder = builder.connection_yaml(&peer_tls_yaml(pki.dir.path(), "strict"));
    }
    let cluster = builder.start().await;
    let api = Api::new()?;
    let (stats_api, scheme) = match mode {
        Mode::Plaintext => (&api, "http"),
        Mode::Strict => (&pki.peer_api, "https"),
    };
    let peers: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| format!("{scheme}://127.0.0.1:{}", node.peer_port))
        .collect();
    let agents: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| base(node.agent_port))
        .collect();
    let pull = Duration::from_millis(PULL_MS);

    api.load(&format!("{}/", agents[0]), PREFIX, "net", 0..KEYS, KEYS)
        .await?;
    let end = Instant::now() + Duration::from_secs(30);
    for agent in &agents {
        let left = end.saturating_duration_since(Instant::now());
        if !wait_until(left, || holds_sample(&api, agent, KEYS, "net")).await {
            return Err(Error::Timeout(format!(
                "{SCENARIO}, {}: {agent} did not read the {KEYS} keys within 30 s",
                mode.name()
            )));
        }
    }
    // Let the pulls under way when the last agent caught up finish, and every agent meet
    // each of its peers once: at rest a cluster has its connections open, and a first
    // contact (a full handshake with TLS) belongs to start-up, not to rest.
    tokio::time::sleep(SETTLE_PULLS * pull).await;
    let before = counters(stats_api, &peers).await?;
    tokio::time::sleep(3 * pull).await;
    // The wire counter is read before the agents' counters, so that neither reading's
    // own requests (TLS handshakes included, if the agents closed the idle connections)
    // falls inside the interval.
    let wire = machine::in_private_netns()
        .then(machine::loopback_bytes)
        .flatten();
    let mut after = counters(stats_api, &peers).await?;
    after.wire = wire;
    let (body, wire) = delta(before, after, 3.0);
    into.rest_body.push(body);
    into.rest_wire.extend(wire);

    for i in 0..writes {
        let key = format!("tls-{round}-{i}");
        let writer = &agents[(round + i) % AGENTS];
        let value = Value::from(value_text("new", i));
        let body = serde_json::to_vec(&json!({ &key: { "value": &value } })).unwrap_or_default();
        let start = Instant::now();
        api.put(&format!("{writer}/"), body).await?;
        match everywhere(&api, &agents, &key, Some(value), start).await {
            Some(elapsed) => into.times.push(elapsed),
            None => {
                into.timeouts += 1;
                into.times.push(DEADLINE);
            }
        }
    }
    Ok(())
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The two modes' figures, TLS's with targets relative to plaintext's.
fn figures(plaintext: &Measured, strict: &Measured) -> Vec<Figure> {
    let mut figures = Vec::new();
    let rest = |measured: &Measured, mode: Mode| {
        let body = Figure::new(
            SCENARIO,
            &format!("at rest, per pull interval, {} (body)", mode.name()),
            mean(&measured.rest_body),
            Unit::Bytes,
        )
        .note(format!(
            "sum of bytes_sent over agents, 3 pull intervals / 3, mean of {ROUNDS} clusters"
        ));
        let wire = Figure::new(
            SCENARIO,
            &format!("at rest, per pull interval, {} (wire)", mode.name()),
            mean(&measured.rest_wire),
            Unit::Bytes,
        )
        .note(format!("{}, mean of {ROUNDS} clusters", wire_note()));
        (body, wire)
    };
    let (plain_body, plain_wire) = rest(plaintext, Mode::Plaintext);
    let (tls_body, mut tls_wire) = rest(strict, Mode::Strict);
    if let Some(base) = plain_wire.value {
        tls_wire = tls_wire.target(Target::at_most(WIRE_FACTOR * base, "1.5 × plaintext wire"));
    }
    let plain_wire_value = plain_wire.value;
    figures.extend([plain_body, tls_body, plain_wire, tls_wire]);

    let plain = Summary::of_durations_ms(&plaintext.times);
    let tls = Summary::of_durations_ms(&strict.times);
    for (measured, summary, mode) in [
        (plaintext, plain, Mode::Plaintext),
        (strict, tls, Mode::Strict),
    ] {
        let lost = if measured.timeouts > 0 {
            format!(
                "{} writes did not converge within {} s (counted as {1} s); ",
                measured.timeouts,
                DEADLINE.as_secs()
            )
        } else {
            String::new()
        };
        let note = |what: &str| {
            format!(
                "{lost}{what} over {} writes in {ROUNDS} clusters",
                measured.times.len()
            )
        };
        figures.push(
            Figure::new(
                SCENARIO,
                &format!("new key p50, {}", mode.name()),
                summary.map(|s| s.p50),
                Unit::Ms,
            )
            .note(note("p50")),
        );
        let mut p90 = Figure::new(
            SCENARIO,
            &format!("new key p90, {}", mode.name()),
            summary.map(|s| s.p90),
            Unit::Ms,
        )
        .note(note("p90"));
        if let (Mode::Strict, Some(base)) = (mode, plain) {
            let bound = (base.p90 * P90_FACTOR).max(base.p90 + P90_SLACK_MS);
            p90 = p90.target(Target::at_most(
                bound,
                "plaintext p90 × 1.25, at least + 50 ms",
            ));
        }
        figures.push(p90);
    }
    if plain_wire_value.is_none() {
        figures.push(
            Figure::new(SCENARIO, "TLS overhead on the wire", None, Unit::Bytes).note(
                "not measured: body bytes are the same either way; the TLS records and \
                 handshakes only show on the wire, which needs a private network namespace \
                 (unshare --net)",
            ),
        );
    }
    figures
}
