//! The background task: resolve every name each `refresh_interval`, keep each name's
//! last good answer, and publish the peers.
//!
//! A name whose lookup fails (a timeout, a server failure, a refused query) keeps the
//! peers of its last good answer: gossip with a peer that left times out harmlessly,
//! while an empty list would cut the agent off during a DNS outage. The failure is
//! logged at warn when it starts, then at most once every [`WARN_EVERY`] while it lasts
//! (each failure in between at debug), and once at info when the name resolves again.
//! A definitive answer ("no such name", "no records") is not a failure: the name then
//! gives no peers.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use c19_core::{Peer, Shutdown, peer::added_and_removed, reexports::futures::future::join_all};
use tokio::time::Instant;

use crate::{DnsName, Error, provider::Shared, resolve::Lookups};

/// How often, at most, a name that keeps failing is logged at warn.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// Everything the background task needs, owned.
pub(crate) struct Refresh {
    /// The resolver.
    pub lookups: Lookups,
    /// The entries of `names`.
    pub names: Vec<DnsName>,
    /// The wait between two rounds.
    pub interval: Duration,
    /// The agent's own address, left out of the peers.
    pub own_ip: Option<IpAddr>,
    /// Where the peers are published.
    pub shared: Arc<Shared>,
}

impl Refresh {
    /// Runs rounds until `shutdown` is cancelled.
    pub async fn run(self, shutdown: Shutdown) {
        let mut names: Vec<NameState> = self.names.iter().map(|_| NameState::default()).collect();
        loop {
            let answers = tokio::select! {
                // Shutdown first: nothing is published once it is asked for.
                biased;
                () = shutdown.cancelled() => return,
                answers = join_all(self.names.iter().map(|name| self.lookups.resolve(name))) => answers,
            };
            let now = Instant::now();
            for ((name, state), answer) in self.names.iter().zip(&mut names).zip(answers) {
                let event = state.record(answer, now);
                log(name, event, state);
            }
            let peers: BTreeSet<Peer> = names
                .iter()
                .filter_map(|state| state.last_good.as_ref())
                .flatten()
                .filter(|peer| !self.is_own(peer))
                .cloned()
                .collect();
            self.publish(peers.into_iter().collect());
            // After the first round every name has answered or failed: what `get`
            // returns is what DNS says, not a list still being filled.
            self.shared.discovered.store(true, Ordering::Release);
            self.shared.rounds.fetch_add(1, Ordering::AcqRel);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// Whether `peer` is this agent (its address is `POD_IP`).
    fn is_own(&self, peer: &Peer) -> bool {
        matches!((&peer.host, self.own_ip), (c19_core::peer::Host::Ip(ip), Some(own)) if *ip == own)
    }

    /// Replaces the published peers with `peers` (sorted), logging a change.
    fn publish(&self, peers: Vec<Peer>) {
        let current = self.shared.peers.load();
        if **current == peers {
            return;
        }
        let (added, removed) = added_and_removed(&current, &peers);
        let list: Vec<String> = peers.iter().map(ToString::to_string).collect();
        tracing::info!(
            count = peers.len(),
            added,
            removed,
            "DNS peers: [{}]",
            list.join(", ")
        );
        self.shared.peers.store(Arc::new(peers));
    }
}

/// What a name's lookups went through, for the last good answer and the logs.
#[derive(Debug, Default)]
pub(crate) struct NameState {
    /// The peers of the last answer, once there was one.
    pub last_good: Option<BTreeSet<Peer>>,
    /// When the current run of failures began, while it lasts.
    failing_since: Option<Instant>,
    /// The failed rounds in the current run.
    failures: u64,
    /// The failed rounds since the last warn.
    unlogged: u64,
    /// When the last warn was logged.
    warned_at: Option<Instant>,
}

/// What to log after a round, see [`NameState::record`].
#[derive(Debug)]
pub(crate) enum Event {
    /// The name answered, as it did before.
    Answered,
    /// The name answered after failing `failures` rounds for `lasted`.
    Recovered {
        /// The failed rounds.
        failures: u64,
        /// From the first failure to now.
        lasted: Duration,
    },
    /// The lookup failed; `warn` when it should be logged at warn (else at debug), and
    /// `unlogged`, the failures since the last warn, this one included.
    Failed {
        /// Why.
        error: Error,
        /// Whether to log at warn.
        warn: bool,
        /// The failures since the last warn.
        unlogged: u64,
    },
}

impl NameState {
    /// Takes the round's `answer` at `now` and says what to log.
    pub(crate) fn record(&mut self, answer: Result<BTreeSet<Peer>, Error>, now: Instant) -> Event {
        match answer {
            Ok(peers) => {
                self.last_good = Some(peers);
                let event = match self.failing_since.take() {
                    Some(since) => Event::Recovered {
                        failures: self.failures,
                        lasted: now.saturating_duration_since(since),
                    },
                    None => Event::Answered,
                };
                self.failures = 0;
                self.unlogged = 0;
                self.warned_at = None;
                event
            }
            Err(error) => {
                self.failing_since.get_or_insert(now);
                self.failures += 1;
                self.unlogged += 1;
                let warn = self
                    .warned_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY);
                let unlogged = self.unlogged;
                if warn {
                    self.warned_at = Some(now);
                    self.unlogged = 0;
                }
                Event::Failed {
                    error,
                    warn,
                    unlogged,
                }
            }
        }
    }
}

/// Logs `event` for `name`.
fn log(name: &DnsName, event: Event, state: &NameState) {
    let kept = state.last_good.as_ref().map_or(0, BTreeSet::len);
    match event {
        Event::Answered => {}
        Event::Recovered { failures, lasted } => tracing::info!(
            name = name.as_str(),
            failures,
            "DNS name `{name}` resolves again after {failures} failed lookups over {} s",
            lasted.as_secs()
        ),
        Event::Failed {
            error,
            warn: true,
            unlogged,
        } => tracing::warn!(
            name = name.as_str(),
            failures = state.failures,
            "{error}; keeping its last {kept} peers ({unlogged} failures since the last warning, \
             logged at most every {} s)",
            WARN_EVERY.as_secs()
        ),
        Event::Failed { error, .. } => tracing::debug!(
            name = name.as_str(),
            failures = state.failures,
            "{error}; keeping its last {kept} peers"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Result<BTreeSet<Peer>, Error> {
        Err(Error::Timeout {
            name: "c19.test".into(),
            timeout_ms: 1,
        })
    }

    fn peers(list: &[&str]) -> BTreeSet<Peer> {
        list.iter().map(|peer| peer.parse().unwrap()).collect()
    }

    #[test]
    fn a_failure_keeps_the_last_good_answer_and_warns_at_most_once_a_minute() {
        let start = Instant::now();
        let mut state = NameState::default();
        assert!(matches!(
            state.record(Ok(peers(&["10.0.0.1"])), start),
            Event::Answered
        ));
        // The first failure warns, the following ones within a minute do not.
        let at = |secs| start + Duration::from_secs(secs);
        assert!(matches!(
            state.record(failure(), at(5)),
            Event::Failed {
                warn: true,
                unlogged: 1,
                ..
            }
        ));
        for secs in [10, 30, 60] {
            assert!(matches!(
                state.record(failure(), at(secs)),
                Event::Failed { warn: false, .. }
            ));
        }
        assert!(matches!(
            state.record(failure(), at(65)),
            Event::Failed {
                warn: true,
                unlogged: 4,
                ..
            }
        ));
        assert_eq!(state.last_good, Some(peers(&["10.0.0.1"])));
        // Recovery is logged once, with the whole run of failures.
        assert!(matches!(
            state.record(Ok(peers(&["10.0.0.2"])), at(70)),
            Event::Recovered { failures: 5, lasted } if lasted == Duration::from_secs(65)
        ));
        assert!(matches!(
            state.record(Ok(peers(&["10.0.0.2"])), at(75)),
            Event::Answered
        ));
        // A new outage warns at once.
        assert!(matches!(
            state.record(failure(), at(80)),
            Event::Failed {
                warn: true,
                unlogged: 1,
                ..
            }
        ));
    }

    #[test]
    fn a_name_that_never_answered_has_no_peers() {
        let mut state = NameState::default();
        state.record(failure(), Instant::now());
        assert_eq!(state.last_good, None);
    }
}
