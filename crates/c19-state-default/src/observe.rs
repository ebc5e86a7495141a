//! Who watches the store: subscribers to its changes and the Prometheus metrics.
//!
//! The store reports each new snapshot here while it still holds the writer lock, so
//! subscribers receive changes in the order of their sequence numbers. A sweep that
//! drops expired values while someone subscribes reports each as a change of its own
//! (the next sequence number, an `"expired":true` entry) that is not in the history:
//! every agent expires values on its own clock, so it is never pushed or replayed. Sending never
//! waits: the feed is a bounded broadcast ring, and a subscriber that falls more than
//! its length behind gets `Lagged` on its next receive instead of slowing writers.

use c19_core::{Change, Changes};
use metrics::{Counter, Gauge, counter, gauge};
use tokio::sync::broadcast;

use crate::record::{Record, change_of};

/// The default `watch_buffer`: changes a subscriber may fall behind.
pub const DEFAULT_WATCH_BUFFER: usize = 1024;

/// The feed of changes and the metrics of one store.
pub(crate) struct Observers {
    feed: broadcast::Sender<Change>,
    /// The store's head, each time it moves (see `State::watch_head`).
    head: tokio::sync::watch::Sender<u64>,
    metrics: StoreMetrics,
}

impl Default for Observers {
    fn default() -> Self {
        Self::new(DEFAULT_WATCH_BUFFER)
    }
}

impl Observers {
    /// Observers whose subscribers may fall `buffer` changes behind.
    pub fn new(buffer: usize) -> Self {
        let (feed, _) = broadcast::channel(buffer.max(1));
        Self {
            feed,
            head: tokio::sync::watch::Sender::new(0),
            metrics: StoreMetrics::default(),
        }
    }

    /// A feed of every change from now on.
    pub fn subscribe(&self) -> Changes {
        self.feed.subscribe()
    }

    /// Somewhere to collect the records of a batch, when anyone subscribes (building
    /// changes nobody reads would cost every write).
    pub fn collector(&self) -> Option<Vec<Record>> {
        (self.feed.receiver_count() > 0).then(Vec::new)
    }

    /// Reports a new snapshot made by a write: `applied` entries changed it, `stored`
    /// are their records (when collected), `counts` are its values and tombstones.
    pub fn stored(&self, applied: usize, stored: Option<Vec<Record>>, counts: (usize, usize)) {
        self.metrics.version_changes.increment(1);
        self.metrics.applied.increment(as_u64(applied));
        self.metrics.set_counts(counts);
        for record in stored.into_iter().flatten() {
            // No receiver left: the change is dropped, which is what it means.
            let _ = self.feed.send(change_of(&record));
        }
    }

    /// The head moved to `head` (called under the writer lock, after the new snapshot
    /// is current).
    pub fn moved(&self, head: u64) {
        self.head.send_if_modified(|current| {
            let moved = *current != head;
            *current = head;
            moved
        });
    }

    /// A receiver of the head's moves.
    pub fn watch_head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Somewhere to collect the expiries a sweep reports, when anyone subscribes.
    pub fn expiry_collector(&self) -> Option<Vec<Change>> {
        (self.feed.receiver_count() > 0).then(Vec::new)
    }

    /// Reports a new snapshot made by a sweep: not a change of the data, but subscribers
    /// are told of the values that `expired` (when collected).
    pub fn swept(&self, counts: (usize, usize), expired: Option<Vec<Change>>) {
        self.metrics.version_changes.increment(1);
        self.metrics.set_counts(counts);
        for change in expired.into_iter().flatten() {
            // No receiver left: the event is dropped, which is what it means.
            let _ = self.feed.send(change);
        }
    }

    /// Counts entries that lost to what the store held.
    pub fn stale(&self, ignored: usize) {
        if ignored > 0 {
            self.metrics.stale.increment(as_u64(ignored));
        }
    }

    /// Counts a batch refused as malformed.
    pub fn invalid(&self) {
        self.metrics.invalid.increment(1);
    }

    /// Counts a resync after being out of touch for longer than `tombstone_ttl`.
    pub fn resynced(&self) {
        self.metrics.resyncs.increment(1);
    }
}

/// The store's metrics, registered once so a write does not look them up.
struct StoreMetrics {
    keys: Gauge,
    tombstones: Gauge,
    version_changes: Counter,
    applied: Counter,
    stale: Counter,
    invalid: Counter,
    resyncs: Counter,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        let refused = "c19_state_merges_refused_total";
        Self {
            keys: gauge!("c19_state_keys"),
            tombstones: gauge!("c19_state_tombstones"),
            version_changes: counter!("c19_state_version_changes_total"),
            applied: counter!("c19_state_merges_applied_total"),
            stale: counter!(refused, "reason" => "stale"),
            invalid: counter!(refused, "reason" => "invalid"),
            resyncs: counter!("c19_state_resyncs_total"),
        }
    }
}

impl StoreMetrics {
    fn set_counts(&self, (values, tombstones): (usize, usize)) {
        // Gauges are f64; counts stay exact far beyond any state's size.
        self.keys.set(values as f64);
        self.tombstones.set(tombstones as f64);
    }
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Describes the state's metrics to the recorder (their `# HELP` lines).
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        "c19_state_keys",
        "Values held (expired ones until they are swept)"
    );
    describe_gauge!("c19_state_tombstones", "Deletes remembered (tombstones)");
    describe_counter!(
        "c19_state_version_changes_total",
        "Times the state's version changed (a write, a merge or a sweep)"
    );
    describe_counter!(
        "c19_state_merges_applied_total",
        "Entries that changed the state (local writes and peers' data)"
    );
    describe_counter!(
        "c19_state_merges_refused_total",
        "Entries that lost to what was held (reason=stale) and batches refused as malformed (reason=invalid)"
    );
    describe_counter!(
        "c19_state_persist_commits_total",
        "Transactions committed to the persistence database (each one fsync)"
    );
    describe_counter!(
        "c19_state_persist_failures_total",
        "Commits to the persistence database that failed (a full disk, an I/O error); they are retried"
    );
    metrics::describe_histogram!(
        "c19_state_persist_commit_seconds",
        metrics::Unit::Seconds,
        "How long one commit to the persistence database took, fsync included"
    );
    describe_counter!(
        "c19_state_resyncs_total",
        "Times this agent found it was out of touch for longer than tombstone_ttl and resynchronised from a peer (dropping what a forgotten delete may shadow)"
    );
}
