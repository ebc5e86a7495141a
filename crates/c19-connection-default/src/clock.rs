//! How far this agent's clock is from its peers' clocks.
//!
//! Every response of the peer server carries its agent's clock in the [`CLOCK_HEADER`]
//! (ms since the Unix epoch): the midpoint between the request's arrival and the
//! response, so the time the server spent answering cancels out. A client that gets it
//! estimates its offset to that peer the NTP way, as the midpoint of its own send and
//! receive times minus the peer's clock: off by at most half the network's round trip,
//! and only when that trip is lopsided. 0.1 peers ignore the header and send none; the
//! request carries nothing new.
//!
//! [`ClockOffsets`] keeps the last offset measured per peer, for at most [`MAX_PEERS`]
//! peers and [`EXPIRY`], and exports their median as `c19_clock_offset_seconds`:
//! positive when this agent's clock is ahead. A peer further off than the state's
//! `max_clock_skew` is logged as an error, at most once every [`LOG_EVERY`].

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, HeaderValue};
use metrics::{Gauge, describe_gauge, gauge};

/// The header carrying the clock of the agent that answers, in ms since the Unix epoch.
pub(crate) const CLOCK_HEADER: &str = "c19-clock";

/// The most peers whose offsets are kept; a new peer then replaces the oldest sample.
pub(crate) const MAX_PEERS: usize = 64;

/// How long a peer's offset counts after it was measured.
pub(crate) const EXPIRY: Duration = Duration::from_secs(300);

/// The shortest time between two errors about clock skew.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(60);

/// The name of the gauge.
const GAUGE: &str = "c19_clock_offset_seconds";

/// The [`CLOCK_HEADER`] value for a request that arrived at `arrived` and is answered at
/// `answered` (both ms on this agent's clock): their midpoint.
pub(crate) fn header_value(arrived: u64, answered: u64) -> HeaderValue {
    HeaderValue::from(midpoint(arrived, answered))
}

/// The peer's clock in a response, when it sent a well-formed one.
pub(crate) fn peer_clock(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CLOCK_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The midpoint of two times, whichever is earlier.
fn midpoint(a: u64, b: u64) -> u64 {
    a.min(b) + a.abs_diff(b) / 2
}

/// This agent's offset (ms; positive: ahead) to a peer whose clock read `peer` at the
/// midpoint of its answer to a request sent at `sent` and answered at `received`.
pub(crate) fn estimate(sent: u64, received: u64, peer: u64) -> i64 {
    let offset = i128::from(midpoint(sent, received)) - i128::from(peer);
    i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX })
}

/// One peer's last measured offset.
#[derive(Debug, Clone, Copy)]
struct Sample {
    offset_ms: i64,
    at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    peers: HashMap<SocketAddr, Sample>,
    last_logged: Option<Instant>,
}

/// What [`ClockOffsets::record`] made of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Recorded {
    /// The median offset (ms) over the peers that count, this one included.
    pub median_ms: f64,
    /// Whether the sample was beyond `max_clock_skew` and logged.
    pub logged: bool,
}

/// The offsets of this agent's clock to its recent peers; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct ClockOffsets {
    max_skew_ms: u64,
    inner: Mutex<Inner>,
    gauge: Gauge,
}

impl ClockOffsets {
    /// Offsets that report peers further off than `max_skew_ms`.
    pub fn new(max_skew_ms: u64) -> Self {
        describe_gauge!(
            GAUGE,
            metrics::Unit::Seconds,
            "Median offset of this agent's clock to its recent peers' (positive: this agent is ahead)"
        );
        Self {
            max_skew_ms,
            inner: Mutex::default(),
            gauge: gauge!(GAUGE),
        }
    }

    /// Records what one exchange with `peer` measured: the request went at `sent` and
    /// its answer came at `received` (ms on this agent's clock) with the peer's clock
    /// `peer_clock`.
    pub fn observe(&self, peer: SocketAddr, sent: u64, received: u64, peer_clock: u64) {
        self.record(peer, estimate(sent, received, peer_clock), Instant::now());
    }

    /// Records that this agent's clock is `offset_ms` ahead of `peer`'s at `now`,
    /// updates the gauge and logs the peer when it is too far off.
    pub fn record(&self, peer: SocketAddr, offset_ms: i64, now: Instant) -> Recorded {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .peers
            .retain(|_, sample| now.saturating_duration_since(sample.at) < EXPIRY);
        if inner.peers.len() >= MAX_PEERS
            && !inner.peers.contains_key(&peer)
            && let Some(oldest) = inner
                .peers
                .iter()
                .min_by_key(|(_, sample)| sample.at)
                .map(|(addr, _)| *addr)
        {
            inner.peers.remove(&oldest);
        }
        inner.peers.insert(peer, Sample { offset_ms, at: now });
        let mut offsets: Vec<i64> = inner
            .peers
            .values()
            .map(|sample| sample.offset_ms)
            .collect();
        let median_ms = median(&mut offsets);
        self.gauge.set(median_ms / 1000.0);

        let too_far = offset_ms.unsigned_abs() > self.max_skew_ms;
        let quiet = inner
            .last_logged
            .is_some_and(|at| now.saturating_duration_since(at) < LOG_EVERY);
        let logged = too_far && !quiet;
        if logged {
            inner.last_logged = Some(now);
            let beyond = offsets
                .iter()
                .filter(|offset| offset.unsigned_abs() > self.max_skew_ms)
                .count();
            let side = if offset_ms > 0 { "ahead of" } else { "behind" };
            tracing::error!(
                %peer,
                offset_ms,
                max_clock_skew_ms = self.max_skew_ms,
                median_offset_ms = median_ms,
                peers_beyond = beyond,
                peers_measured = offsets.len(),
                "this agent's clock is {:.1} s {side} the clock of peer {peer}, beyond \
                 max_clock_skew ({} ms): the faster clock's writes win and TTLs stretch; fix \
                 the clock that is wrong (this agent's, if most peers are beyond)",
                offset_ms.unsigned_abs() as f64 / 1000.0,
                self.max_skew_ms,
            );
        }
        Recorded { median_ms, logged }
    }
}

/// The median of `values` (which it sorts); the mean of the middle two for an even
/// count, 0 for none.
fn median(values: &mut [i64]) -> f64 {
    values.sort_unstable();
    let middle = values.len() / 2;
    match values.len() {
        0 => 0.0,
        len if len % 2 == 1 => values[middle] as f64,
        _ => (values[middle - 1] as f64 + values[middle] as f64) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_estimate_halves_the_round_trip() {
        // Sent at 1000, answered at 1100 on this clock; the peer read 400 in between:
        // this agent is 650 ms ahead.
        assert_eq!(estimate(1000, 1100, 400), 650);
        assert_eq!(estimate(1000, 1100, 1650), -600);
        assert_eq!(estimate(1000, 1000, 1000), 0);
        assert_eq!(estimate(u64::MAX, u64::MAX, 0), i64::MAX);
        assert_eq!(estimate(0, 0, u64::MAX), i64::MIN);
        assert_eq!(midpoint(10, 20), 15);
        assert_eq!(midpoint(20, 10), 15);
    }

    #[test]
    fn the_header_round_trips_and_junk_is_ignored() {
        let mut headers = HeaderMap::new();
        assert_eq!(peer_clock(&headers), None);
        headers.insert(CLOCK_HEADER, header_value(1000, 1010));
        assert_eq!(peer_clock(&headers), Some(1005));
        headers.insert(CLOCK_HEADER, HeaderValue::from_static("soon"));
        assert_eq!(peer_clock(&headers), None);
        headers.insert(CLOCK_HEADER, HeaderValue::from_static("-5"));
        assert_eq!(peer_clock(&headers), None);
    }

    #[test]
    fn the_median_of_the_last_offset_per_peer() {
        let offsets = ClockOffsets::new(30_000);
        let now = Instant::now();
        assert_eq!(offsets.record(peer(1), 100, now).median_ms, 100.0);
        assert_eq!(offsets.record(peer(2), 300, now).median_ms, 200.0);
        assert_eq!(offsets.record(peer(3), -5000, now).median_ms, 100.0);
        // A new sample replaces the peer's previous one.
        assert_eq!(offsets.record(peer(3), 200, now).median_ms, 200.0);
        assert_eq!(offsets.record(peer(4), 250, now).median_ms, 225.0);
    }

    #[test]
    fn at_most_max_peers_are_kept_and_the_oldest_goes_first() {
        let offsets = ClockOffsets::new(u64::MAX);
        let start = Instant::now();
        // The oldest peers are far behind; the rest exactly on time.
        for port in 0..MAX_PEERS as u16 {
            let offset = if port < 10 { -1_000_000 } else { 0 };
            offsets.record(
                peer(port),
                offset,
                start + Duration::from_millis(port.into()),
            );
        }
        let late = start + Duration::from_secs(1);
        for port in 0..10 {
            offsets.record(peer(1000 + port), 0, late);
        }
        let inner = offsets.inner.lock().unwrap();
        assert_eq!(inner.peers.len(), MAX_PEERS);
        assert!(inner.peers.values().all(|sample| sample.offset_ms == 0));
    }

    #[test]
    fn samples_expire() {
        let offsets = ClockOffsets::new(30_000);
        let start = Instant::now();
        offsets.record(peer(1), 10_000, start);
        offsets.record(peer(2), 20_000, start + EXPIRY / 2);
        let recorded = offsets.record(peer(3), 0, start + EXPIRY + Duration::from_secs(1));
        // Peer 1 is forgotten: the median of 20000 and 0.
        assert_eq!(recorded.median_ms, 10_000.0);
        let recorded = offsets.record(peer(3), 0, start + EXPIRY * 2);
        assert_eq!(recorded.median_ms, 0.0);
        assert_eq!(offsets.inner.lock().unwrap().peers.len(), 1);
    }

    #[test]
    fn a_skewed_peer_is_logged_at_most_once_a_minute() {
        let offsets = ClockOffsets::new(30_000);
        let start = Instant::now();
        assert!(!offsets.record(peer(1), 30_000, start).logged);
        assert!(offsets.record(peer(1), -30_001, start).logged);
        let soon = start + LOG_EVERY - Duration::from_secs(1);
        assert!(!offsets.record(peer(2), 600_000, soon).logged);
        assert!(offsets.record(peer(2), 600_000, start + LOG_EVERY).logged);
        assert!(!offsets.record(peer(1), 0, start + LOG_EVERY * 3).logged);
    }
}
