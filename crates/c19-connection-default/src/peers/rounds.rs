//! When peers push next, as their answers to pushes said ([`crate::cadence`]), and the
//! peers to push to for a change to travel on soonest.
//!
//! A peer within `push_interval` of its last round holds what it receives until its
//! next one, and under a steady load every agent pushes once an interval at its own
//! phase. Its hint gives that phase; later rounds follow one interval apart, so an
//! answer keeps telling for a while. Peers' phases drift by the lateness of their timers
//! (about a millisecond a round), so hints older than [`HORIZON`] intervals are dropped.

use std::{collections::BTreeMap, time::Duration};

use tokio::time::Instant;

/// For how many push intervals a peer's hint is believed.
pub(super) const HORIZON: u32 = 16;

/// One peer's last hint.
#[derive(Debug, Clone, Copy)]
struct Hint {
    /// When its next round was to go.
    next: Instant,
    /// When the hint came.
    heard: Instant,
}

/// The hints of the peers, by name (ordered, so that simulated runs replay exactly).
#[derive(Debug, Default)]
pub(super) struct PeerRounds {
    /// This agent's `push_interval`; `None`: hints are not used.
    pub interval: Option<Duration>,
    hints: BTreeMap<String, Hint>,
}

impl PeerRounds {
    /// Notes that `name`'s next round goes at `next`, as it said at `heard`.
    pub fn note(&mut self, name: &str, next: Instant, heard: Instant) {
        if self.interval.is_none() {
            return;
        }
        match self.hints.get_mut(name) {
            Some(hint) => *hint = Hint { next, heard },
            None => {
                self.hints.insert(name.to_owned(), Hint { next, heard });
            }
        }
    }

    /// Drops hints of peers for which `listed` says no, once there are more than the
    /// list holds (peers left it), so the table stays as large as the list.
    pub fn prune(&mut self, listed: usize, mut keep: impl FnMut(&str) -> bool) {
        if self.hints.len() > listed {
            self.hints.retain(|name, _| keep(name));
        }
    }

    /// The peers with a recent hint and how long from `now` until each pushes next,
    /// only those expected sooner than a peer without a hint (half an interval).
    pub fn soon(&self, now: Instant) -> Vec<(&str, Duration)> {
        let Some(interval) = self.interval.filter(|interval| !interval.is_zero()) else {
            return Vec::new();
        };
        let horizon = interval * HORIZON;
        self.hints
            .iter()
            .filter(|(_, hint)| now.saturating_duration_since(hint.heard) <= horizon)
            .map(|(name, hint)| (name.as_str(), wait(hint.next, now, interval)))
            .filter(|(_, wait)| *wait < interval / 2)
            .collect()
    }
}

/// How long from `now` until the next of the rounds `next + k·interval` (k ≥ 0), or
/// until `next` itself when it is still ahead.
fn wait(next: Instant, now: Instant, interval: Duration) -> Duration {
    if next >= now {
        return next - now;
    }
    let behind = (now - next).as_nanos() % interval.as_nanos();
    if behind == 0 {
        Duration::ZERO
    } else {
        let behind = u64::try_from(behind).unwrap_or(u64::MAX);
        interval.saturating_sub(Duration::from_nanos(behind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_round_in_the_past_repeats_every_interval() {
        let now = Instant::now();
        let interval = 200 * MS;
        assert_eq!(wait(now + 30 * MS, now, interval), 30 * MS);
        assert_eq!(wait(now, now, interval), Duration::ZERO);
        let past = now.checked_sub(50 * MS).unwrap_or(now);
        assert_eq!(wait(past, now, interval), 150 * MS);
        let long_past = now.checked_sub(650 * MS).unwrap_or(now);
        assert_eq!(wait(long_past, now, interval), 150 * MS);
    }

    #[test]
    fn only_recent_hints_of_rounds_soon_enough_count() {
        let start = Instant::now();
        let interval = 200 * MS;
        let mut rounds = PeerRounds::default();
        rounds.note("ignored", start, start);
        assert!(rounds.soon(start).is_empty(), "without an interval");
        rounds.interval = Some(interval);
        rounds.note("a", start + 20 * MS, start);
        rounds.note("b", start + 150 * MS, start);
        rounds.note("c", start, start);
        assert_eq!(
            rounds.soon(start),
            vec![("a", 20 * MS), ("c", Duration::ZERO)],
            "b pushes later than half an interval"
        );
        let later = start + interval * HORIZON + 10 * MS;
        assert!(rounds.soon(later).is_empty(), "stale hints");
        rounds.note("c", later, later);
        rounds.prune(1, |name| name == "c");
        rounds.note("a", later, later);
        assert_eq!(rounds.hints.len(), 2);
    }
}
