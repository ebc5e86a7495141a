//! A quick, criterion-free look at the Default state's costs, in-process (the agent
//! benchmarks live in `cargo xtask bench`):
//!
//! - resident memory per key above the value's size, at 1M keys of ~60-byte values;
//! - `get`s per second on one thread;
//! - `get` latency (p50, p99, max) on one thread while a 100k-key merge runs on another.
//!
//! Run it optimised: `cargo run --release -p c19-state-default --example footprint`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use c19_core::State;
use c19_state_default::DefaultState;

const KEYS: usize = 1_000_000;
const BATCH: usize = 10_000;
const MERGE_KEYS: usize = 100_000;

/// A 60-byte JSON string value (quotes included).
fn value(i: usize) -> String {
    format!("\"{:058}\"", i)
}

fn batch(prefix: &str, range: std::ops::Range<usize>) -> String {
    let mut out = String::from("{");
    for i in range {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&format!("\"{prefix}-{i}\":{{\"value\":{}}}", value(i)));
    }
    out.push('}');
    out
}

/// VmRSS of this process, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn main() {
    let state = Arc::new(DefaultState::default());
    let before = rss();
    for start in (0..KEYS).step_by(BATCH) {
        state.set(&batch("key", start..start + BATCH)).unwrap();
    }
    let after = rss();
    let per_key = (after - before) as f64 / KEYS as f64;
    println!(
        "memory: {per_key:.0} bytes per key, {:.0} above the {}-byte value",
        per_key - 60.0,
        60
    );

    let keys: Vec<String> = (0..1000).map(|i| format!("key-{}", i * 997)).collect();
    let start = Instant::now();
    let mut found = 0;
    for round in 0..1000 {
        for key in &keys {
            found += usize::from(state.get(&key.as_str()).is_some());
        }
        if round == 0 {
            assert_eq!(found, keys.len());
        }
    }
    let rate = 1_000_000.0 / start.elapsed().as_secs_f64();
    println!("get: {:.1} M/s on one thread", rate / 1e6);

    let merge = batch("merged", 0..MERGE_KEYS);
    let merging = Arc::new(AtomicBool::new(true));
    let writer = {
        let (state, merging) = (state.clone(), merging.clone());
        thread::spawn(move || {
            let start = Instant::now();
            state.set(&merge).unwrap();
            merging.store(false, Ordering::SeqCst);
            start.elapsed()
        })
    };
    let mut latencies = Vec::new();
    while merging.load(Ordering::SeqCst) {
        for key in &keys {
            let start = Instant::now();
            let _ = state.get(&key.as_str());
            latencies.push(start.elapsed());
        }
    }
    let merge_time = writer.join().unwrap();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "get during a {MERGE_KEYS}-key merge ({merge_time:?}): {} gets, p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies.last().copied().unwrap_or(Duration::ZERO)
    );
}
