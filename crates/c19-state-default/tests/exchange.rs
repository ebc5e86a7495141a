//! Anti-entropy exchanges between two Default states, with the messages passed in
//! memory: what they repair, what they cost, and how tombstones and expiry behave.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use bytes::Bytes;
use c19_core::{State, StateError};
use c19_state_default::{DefaultState, DefaultStateConfig};
use common::*;
use metrics::{Key, KeyName, Metadata, SharedString, Unit};
use serde_json::{Map, Value, json};

const MAX: usize = 4 << 20;
const TS: u64 = 1_700_000_000_000;

/// What one exchange cost.
#[derive(Debug, Default)]
struct Traffic {
    /// The size of each request, then each answer, in order.
    requests: Vec<usize>,
    answers: Vec<usize>,
    applied: usize,
}

impl Traffic {
    fn bytes(&self) -> usize {
        self.requests.iter().chain(&self.answers).sum()
    }

    fn largest(&self) -> usize {
        self.requests
            .iter()
            .chain(&self.answers)
            .copied()
            .max()
            .unwrap_or(0)
    }
}

/// Runs one exchange started by `caller` against `callee`, messages of about `max`.
fn exchange(caller: &Arc<DefaultState>, callee: &DefaultState, max: usize) -> Traffic {
    let mut session = caller.clone().sync_open(max).unwrap();
    let mut traffic = Traffic::default();
    let mut answer: Option<Bytes> = None;
    while let Some(request) = session.step(answer.as_deref()).unwrap() {
        assert!(traffic.requests.len() < 10_000, "the exchange does not end");
        traffic.requests.push(request.len());
        let reply = callee.sync_answer(&request, max).unwrap();
        traffic.answers.push(reply.len());
        answer = Some(reply);
    }
    traffic.applied = session.applied().applied;
    traffic
}

fn keys(prefix: &str, range: std::ops::Range<usize>, ts: u64) -> Value {
    let map: Map<String, Value> = range
        .map(|i| {
            (
                format!("{prefix}-{i:05}"),
                json!({"value": format!("value number {i} of a state of twenty thousand"), "ts": ts}),
            )
        })
        .collect();
    Value::Object(map)
}

fn shared(state: DefaultState) -> Arc<DefaultState> {
    Arc::new(state)
}

/// A state that forgets tombstones 1 ms after their `ts`.
fn forgetful() -> DefaultState {
    DefaultState::new(&DefaultStateConfig {
        tombstone_ttl: 1,
        ..DefaultStateConfig::default()
    })
}

/// Two states holding the same `keys_each` keys, each having completed an exchange.
fn pair_with(keys_each: usize) -> (Arc<DefaultState>, Arc<DefaultState>) {
    let (a, b) = (shared(state()), shared(state()));
    set(a.as_ref(), keys("key", 0..keys_each, TS));
    set(b.as_ref(), keys("key", 0..keys_each, TS));
    exchange(&a, &b, MAX);
    exchange(&b, &a, MAX);
    (a, b)
}

#[test]
fn equal_states_exchange_one_small_hello() {
    let (a, b) = pair_with(1000);
    let traffic = exchange(&a, &b, MAX);
    assert_eq!(traffic.requests.len(), 1);
    assert_eq!(traffic.answers, [0], "equal versions: nothing to say");
    assert!(traffic.bytes() < 300, "{traffic:?}");
}

#[test]
fn one_exchange_repairs_both_sides_at_a_cost_in_proportion_to_the_difference() {
    let (a, b) = pair_with(20_000);
    let state_size = a.get_root().len();
    let mut costs = Vec::new();
    for (round, k) in [10, 100].into_iter().enumerate() {
        // Half the difference is news on each side: new keys on one, updates on the other.
        set(a.as_ref(), keys(&format!("new-{round}"), 0..k / 2, TS + 5));
        set(
            b.as_ref(),
            keys("key", round * 1000..round * 1000 + k / 2, TS + 9),
        );
        assert_ne!(a.version(), b.version());
        let traffic = exchange(&a, &b, MAX);
        assert_eq!(a.version(), b.version(), "k = {k}: not repaired");
        assert_eq!(
            traffic.applied,
            k / 2,
            "k = {k}: the caller took the callee's news"
        );
        assert_eq!(
            value(b.as_ref(), &format!("new-{round}-00000")),
            Some(json!("value number 0 of a state of twenty thousand")),
            "the callee got the caller's news in the same exchange"
        );
        costs.push(traffic.bytes());
        assert!(
            traffic.bytes() < state_size / 10,
            "k = {k}: {} bytes for a state of {state_size}",
            traffic.bytes()
        );
    }
    assert!(
        costs[1] > 3 * costs[0],
        "ten times the difference costs {costs:?}"
    );
    let after = exchange(&b, &a, MAX);
    assert_eq!(after.answers, [0], "equal afterwards");
}

#[test]
fn an_empty_agent_gets_the_whole_state_in_bounded_pages() {
    let (full, _) = pair_with(5000);
    let empty = shared(state());
    let max = 16 * 1024;
    let traffic = exchange(&empty, &full, max);
    assert_eq!(empty.version(), full.version());
    assert_eq!(traffic.applied, 5000);
    assert!(
        traffic.answers.len() >= 20,
        "{} pages",
        traffic.answers.len()
    );
    assert!(
        traffic.largest() <= max,
        "a message of {} bytes",
        traffic.largest()
    );
    // The whole state crossed once, not more.
    assert!(
        traffic.bytes() < full.get_root().len() * 11 / 10,
        "{traffic:?}"
    );
}

#[test]
fn an_empty_peer_is_given_the_whole_state_in_bounded_messages() {
    let (full, _) = pair_with(5000);
    let empty = shared(state());
    // An empty peer that has been in touch (all it held expired, say).
    exchange(&empty, &shared(state()), MAX);
    let max = 16 * 1024;
    let traffic = exchange(&full, &empty, max);
    assert_eq!(empty.version(), full.version());
    assert!(
        traffic.largest() <= max,
        "a message of {}",
        traffic.largest()
    );
    assert!(traffic.requests.len() >= 20);
}

#[test]
fn a_peer_catching_up_by_its_own_pull_is_given_nothing() {
    let (full, _) = pair_with(1000);
    let newcomer = shared(state());
    let traffic = exchange(&full, &newcomer, MAX);
    assert_eq!(traffic.requests.len(), 1, "{traffic:?}");
    assert!(newcomer.is_empty());
    set(newcomer.as_ref(), keys("key", 0..10, TS));
    let traffic = exchange(&full, &newcomer, MAX);
    assert_eq!(newcomer.len(), 10, "nothing given: {traffic:?}");
    // Its own pull brings it everything.
    exchange(&newcomer, &full, MAX);
    assert_eq!(newcomer.version(), full.version());
}

#[test]
fn an_agent_out_of_touch_longer_than_the_grace_period_pushes_no_old_entries() {
    let away = shared(DefaultState::new(&DefaultStateConfig {
        tombstone_ttl: 1000,
        ..DefaultStateConfig::default()
    }));
    exchange(&away, &shared(state()), MAX);
    set(
        away.as_ref(),
        json!({"old": {"value": 1, "ts": TS}, "new": {"value": 2, "ts": now()}}),
    );
    let diff = away.diff(0, MAX).unwrap();
    assert_eq!(diff.count, 2, "in touch: everything is pushed");
    thread::sleep(Duration::from_millis(1100));
    set(away.as_ref(), json!({"recent": {"value": 3}}));
    let diff = away.diff(0, MAX).unwrap();
    let pushed: Map<String, Value> = serde_json::from_slice(&diff.changes).unwrap();
    assert_eq!(
        pushed.keys().collect::<Vec<_>>(),
        ["recent"],
        "out of touch: only what is newer than the grace period"
    );
    assert!(diff.complete);
}

#[test]
fn a_tombstone_wins_in_one_exchange_whichever_side_holds_it() {
    let (a, b) = pair_with(100);
    assert!(a.delete(&"key-00007").unwrap());
    set(b.as_ref(), json!({"key-00008": tombstone(now())}));
    exchange(&a, &b, MAX);
    for state in [&a, &b] {
        assert_eq!(get(state.as_ref(), "key-00007"), None);
        assert_eq!(get(state.as_ref(), "key-00008"), None);
    }
    assert_eq!(a.version(), b.version());
}

#[test]
fn expired_values_are_swept_when_met_instead_of_being_sent_back_and_forth() {
    let (a, b) = pair_with(100);
    let now = now();
    // Expired on arrival everywhere, but only `a` still holds it (not swept yet).
    set(
        a.as_ref(),
        json!({"brief": {"value": 1, "ts": now - 10_000, "ttl": 5}}),
    );
    assert!(a.held("brief").is_some());
    let first = exchange(&a, &b, MAX);
    assert!(first.requests.len() > 1);
    assert_eq!(a.held("brief"), None, "swept when its bucket was compared");
    assert_eq!(b.held("brief"), None, "never stored by the peer");
    assert_eq!(a.version(), b.version());
    assert_eq!(exchange(&b, &a, MAX).answers, [0]);
}

#[test]
fn a_peer_that_was_away_longer_than_the_grace_period_drops_what_a_forgotten_delete_may_shadow() {
    for away_is_caller in [true, false] {
        let current = shared(forgetful());
        let away = shared(state());
        for side in [&current, &away] {
            set(
                side.as_ref(),
                json!({"doomed": {"value": "old", "ts": TS}, "kept": {"value": "old", "ts": TS}}),
            );
        }
        // In touch: both are current.
        exchange(&away, &current, MAX);
        exchange(&current, &away, MAX);
        thread::sleep(Duration::from_millis(5));
        // While `away` is away, `doomed` is deleted and its tombstone forgotten.
        assert!(current.delete(&"doomed").unwrap());
        thread::sleep(Duration::from_millis(5));
        assert_eq!(current.purge_now(), 1);
        assert_eq!(current.held("doomed"), None);

        if away_is_caller {
            exchange(&away, &current, MAX)
        } else {
            exchange(&current, &away, MAX)
        };

        for side in [&current, &away] {
            assert_eq!(get(side.as_ref(), "doomed"), None, "resurrected");
            assert_eq!(value(side.as_ref(), "kept"), Some(json!("old")));
        }
        assert_eq!(current.version(), away.version());
    }
}

#[test]
fn an_agent_in_touch_keeps_its_entries_when_a_peer_forgets_tombstones() {
    let current = shared(forgetful());
    let other = shared(state());
    set(current.as_ref(), json!({"gone": tombstone(TS)}));
    assert_eq!(current.purge_now(), 1);
    set(other.as_ref(), json!({"mine": {"value": 1, "ts": TS - 5}}));
    // Both completed an exchange after the horizon: nothing is dropped.
    exchange(&current, &shared(state()), MAX);
    exchange(&other, &shared(state()), MAX);
    exchange(&other, &current, MAX);
    assert_eq!(value(current.as_ref(), "mine"), Some(json!(1)));
    assert_eq!(value(other.as_ref(), "mine"), Some(json!(1)));
}

#[test]
fn malformed_requests_are_refused_with_a_reason_and_change_nothing() {
    let (a, _) = pair_with(10);
    let version = a.version();
    for (bad, reason) in [
        (&b"not json"[..], "not a sync message"),
        (b"{\"step\":\"give\"}\n{\"k\":{\"value\":1}}", "\"ts\""),
        (b"{\"step\":\"give\"}\n[1]", "JSON object"),
        (
            b"{\"step\":\"hello\",\"format\":99,\"version\":\"\",\"empty\":true,\"meta\":{\"last_sync\":null,\"horizon\":0},\"max\":10}",
            "format 99",
        ),
    ] {
        let error = a.sync_answer(bad, MAX).unwrap_err();
        assert!(matches!(error, StateError::Invalid(_)), "{error}");
        assert!(error.to_string().contains(reason), "{error}");
    }
    assert_eq!(a.version(), version);
}

/// A metrics recorder that keeps the counters by name, for one test.
#[derive(Default)]
struct Counters(std::sync::Mutex<std::collections::HashMap<String, Arc<AtomicU64>>>);

impl Counters {
    fn get(&self, name: &str) -> u64 {
        let counters = self.0.lock().unwrap();
        counters.get(name).map_or(0, |n| n.load(Ordering::Relaxed))
    }
}

impl metrics::Recorder for Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        let mut counters = self.0.lock().unwrap();
        let counter = counters.entry(key.name().to_owned()).or_default();
        metrics::Counter::from_arc(counter.clone())
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[test]
fn a_resync_after_being_away_is_counted_and_a_newcomer_is_not() {
    let counters = Counters::default();
    let resyncs = || counters.get("c19_state_resyncs_total");
    metrics::with_local_recorder(&counters, || {
        let current = shared(forgetful());
        let away = shared(state());
        for side in [&current, &away] {
            set(
                side.as_ref(),
                json!({"gone": {"value": "old", "ts": TS}, "kept": {"value": "old", "ts": TS}}),
            );
        }
        exchange(&away, &current, MAX);
        exchange(&current, &away, MAX);
        thread::sleep(Duration::from_millis(5));
        // While `away` is away, `gone` is deleted and its tombstone forgotten.
        assert!(current.delete(&"gone").unwrap());
        thread::sleep(Duration::from_millis(5));
        assert_eq!(current.purge_now(), 1);
        // An empty newcomer meets a peer that forgot a tombstone: nothing to resync.
        exchange(&shared(state()), &current, MAX);
        assert_eq!(resyncs(), 0);

        exchange(&away, &current, MAX);
        assert_eq!(resyncs(), 1, "the agent that was away resynchronised once");
        assert_eq!(get(away.as_ref(), "gone"), None, "resurrected");
        assert_eq!(value(away.as_ref(), "kept"), Some(json!("old")));
        // Current again: the next exchange is no resync.
        exchange(&away, &current, MAX);
        exchange(&current, &away, MAX);
        assert_eq!(resyncs(), 1);
    });
}
