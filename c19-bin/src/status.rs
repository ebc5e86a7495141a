//! `c19 status`: this agent and its peers, as a table, from the telemetry port's
//! `GET /peers`.
//!
//! Exit codes: 0 healthy, 1 degraded (not ready, or an offered peer failing), 2 the
//! agent could not be asked.

use std::{io::IsTerminal, process::ExitCode, time::Duration};

use serde_json::Value;

use crate::http;

/// Arguments of `c19 status`.
#[derive(Debug, clap::Args)]
pub struct Status {
    /// The agent's telemetry URL.
    #[arg(
        long,
        value_name = "URL",
        env = "C19_TELEMETRY",
        default_value = "http://127.0.0.1:9097"
    )]
    pub telemetry: String,
    /// Print the raw `/peers` document instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `c19 status`.
pub fn main(args: &Status) -> ExitCode {
    let url = format!("{}/peers", args.telemetry.trim_end_matches('/'));
    let document = match http::block_on(fetch(&url)) {
        Ok(document) => document,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        );
    } else {
        print!("{}", render(&document, std::io::stdout().is_terminal()));
    }
    if healthy(&document) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn fetch(url: &str) -> Result<Value, String> {
    let client = http::client(None, Duration::from_secs(5))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| format!("cannot reach the agent's telemetry at {url}: {error}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| format!("{url}: the answer broke off: {error}"))?;
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    serde_json::from_slice(&body)
        .map_err(|error| format!("{url} did not answer a c19 peers document: {error}"))
}

/// Whether the agent is ready and no offered peer is failing.
pub fn healthy(document: &Value) -> bool {
    let ready = document["agent"]["ready"].as_bool() == Some(true);
    ready && offered(document).all(|peer| !failing(peer))
}

fn offered(document: &Value) -> impl Iterator<Item = &Value> {
    document["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|peer| peer["offered"].as_bool() == Some(true))
}

fn failing(peer: &Value) -> bool {
    peer["failures"].as_u64().unwrap_or_default() > 0
}

/// The table, coloured when `colour`.
pub fn render(document: &Value, colour: bool) -> String {
    let paint = |code: &str, text: String| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text
        }
    };
    let agent = &document["agent"];
    let now = agent["time_ms"].as_u64().unwrap_or_default();
    let mut out = String::new();
    let readiness = if agent["ready"].as_bool() == Some(true) {
        paint("32", "ready".into())
    } else {
        let waiting = agent["waiting"]
            .as_str()
            .map(|waiting| format!(" (waiting for {waiting})"))
            .unwrap_or_default();
        paint("31", format!("not ready{waiting}"))
    };
    let count = |field: &str| {
        agent[field]
            .as_u64()
            .map_or_else(|| "?".to_owned(), |n| n.to_string())
    };
    out.push_str(&format!(
        "agent    c19 {} · {readiness} · {} keys · {} tombstones · version {}\n",
        agent["c19"].as_str().unwrap_or("?"),
        count("keys"),
        count("tombstones"),
        agent["version"]
            .as_str()
            .map_or("?", |version| &version[..version.len().min(12)]),
    ));
    let header = [
        "PEER",
        "IN SYNC",
        "LAST PUSH",
        "LAST PULL",
        "DIALECT",
        "TRANSPORT",
        "CLOCK",
        "FAILURES",
        "BACK-OFF",
    ];
    let rows: Vec<(Vec<String>, bool)> = document["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|peer| (row(peer, now), failing(peer)))
        .collect();
    if rows.is_empty() {
        out.push_str("peers    none offered\n");
        return out;
    }
    let mut widths: Vec<usize> = header.iter().map(|title| title.len()).collect();
    for (cells, _) in &rows {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let titles: Vec<String> = header.iter().map(|title| (*title).to_owned()).collect();
    out.push_str(&paint("1", line(&titles)));
    out.push('\n');
    for (cells, bad) in rows {
        let text = line(&cells);
        out.push_str(&if bad { paint("31", text) } else { text });
        out.push('\n');
    }
    out
}

/// One peer's cells.
fn row(peer: &Value, now: u64) -> Vec<String> {
    let mut name = peer["peer"].as_str().unwrap_or("?").to_owned();
    if peer["offered"].as_bool() != Some(true) {
        name.push_str(" (gone)");
    }
    let in_sync = match peer["in_sync"].as_bool() {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    };
    let backoff = peer["backoff_ms"].as_u64().unwrap_or_default();
    vec![
        name,
        in_sync.to_owned(),
        contact(&peer["last_push"], now),
        contact(&peer["last_exchange"], now),
        text(&peer["dialect"]),
        text(&peer["transport"]),
        peer["clock_offset_ms"]
            .as_i64()
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:+} ms")),
        peer["failures"].as_u64().unwrap_or_default().to_string(),
        if backoff > 0 {
            format!("{:.1} s", backoff as f64 / 1000.0)
        } else {
            "-".to_owned()
        },
    ]
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("-").to_owned()
}

/// `ok 1.2 s ago, 340 B` or `failed 3.0 s ago`.
fn contact(contact: &Value, now: u64) -> String {
    let Some(at) = contact["at_ms"].as_u64() else {
        return "never".to_owned();
    };
    let ago = now.saturating_sub(at) as f64 / 1000.0;
    let bytes = contact["bytes_sent"].as_u64().unwrap_or_default()
        + contact["bytes_received"].as_u64().unwrap_or_default();
    match contact["outcome"].as_str() {
        Some("ok") => format!("ok {ago:.1} s ago, {bytes} B"),
        _ => format!("failed {ago:.1} s ago"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn document(failures: u64, ready: bool) -> Value {
        json!({
            "agent": {"c19": "0.2.0", "time_ms": 10_000, "version": "0123456789abcdef0123",
                      "keys": 3, "tombstones": 1, "ready": ready, "waiting": null},
            "peers": [
                {"peer": "127.0.0.1:4098", "offered": true, "in_sync": true, "failures": 0, "backoff_ms": 0,
                 "last_push": {"at_ms": 9_000, "outcome": "ok", "bytes_sent": 120, "bytes_received": 0},
                 "last_exchange": null, "dialect": "exchange", "transport": "plaintext", "clock_offset_ms": -2},
                {"peer": "127.0.0.1:4099", "offered": true, "in_sync": null, "failures": failures,
                 "backoff_ms": 1500, "last_push": {"at_ms": 8_000, "outcome": "connection refused",
                 "bytes_sent": 120, "bytes_received": 0}, "last_exchange": null, "dialect": null,
                 "transport": null, "clock_offset_ms": null}
            ]
        })
    }

    #[test]
    fn the_table_aligns_one_row_per_peer_without_colour_off_a_terminal() {
        let table = render(&document(0, true), false);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].contains("ready · 3 keys · 1 tombstones · version 0123456789ab"),
            "{table}"
        );
        assert!(lines[1].starts_with("PEER"), "{table}");
        let column = lines[1].find("LAST PUSH").unwrap();
        assert_eq!(
            lines[2].find("ok 1.0 s ago, 120 B"),
            Some(column),
            "{table}"
        );
        assert_eq!(lines[3].find("failed 2.0 s ago"), Some(column), "{table}");
        assert!(lines[2].contains("-2 ms"), "{table}");
        assert!(!table.contains('\x1b'));
        assert!(render(&document(0, true), true).contains("\x1b[32mready"));
    }

    #[test]
    fn a_failing_peer_or_readiness_makes_it_degraded() {
        assert!(healthy(&document(0, true)));
        assert!(!healthy(&document(2, true)));
        assert!(!healthy(&document(0, false)));
    }
}
