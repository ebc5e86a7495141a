//! How current a store's data is: when it last completed an exchange, and below which
//! `ts` tombstones may have been forgotten (its horizon).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::message::Meta;

/// The exchange bookkeeping of one store. Both values only ever grow.
#[derive(Debug, Default)]
pub(crate) struct SyncMeta {
    /// When (ms) the last exchange this agent started was completed; 0: never.
    last_sync: AtomicU64,
    /// Tombstones with a `ts` at or below this (ms) may have been forgotten here. Only
    /// this agent's own sweeps move it: a peer's horizon reflected back would make an
    /// agent that is merely idle look behind itself.
    horizon: AtomicU64,
}

impl SyncMeta {
    /// What to tell a peer.
    pub fn meta(&self) -> Meta {
        let last_sync = self.last_sync.load(Ordering::Relaxed);
        Meta {
            last_sync: (last_sync > 0).then_some(last_sync),
            horizon: self.horizon.load(Ordering::Relaxed),
        }
    }

    /// Notes that tombstones were swept at `now`: those older than `tombstone_ttl` may
    /// be gone.
    pub fn swept_tombstones(&self, now: u64, tombstone_ttl: u64) {
        self.horizon
            .fetch_max(now.saturating_sub(tombstone_ttl), Ordering::Relaxed);
    }

    /// Takes back what a persisted state recorded before a restart.
    pub fn restore(&self, last_sync: u64, horizon: u64) {
        if last_sync > 0 {
            self.current_at(last_sync);
        }
        self.horizon.fetch_max(horizon, Ordering::Relaxed);
    }

    /// Notes that the data is current as of `at` (ms).
    pub fn current_at(&self, at: u64) {
        self.last_sync.fetch_max(at.max(1), Ordering::Relaxed);
    }

    /// Whether an agent that is current as of `last_sync` may hold values shadowed by
    /// tombstones forgotten before `horizon`: it was away longer than the grace period.
    pub fn is_behind(last_sync: Option<u64>, horizon: u64) -> bool {
        horizon > 0 && last_sync.is_none_or(|last_sync| last_sync < horizon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_only_grow() {
        let meta = SyncMeta::default();
        assert_eq!(meta.meta(), Meta::default());
        meta.current_at(50);
        meta.current_at(40);
        meta.swept_tombstones(1000, 300);
        meta.swept_tombstones(900, 300);
        assert_eq!(
            meta.meta(),
            Meta {
                last_sync: Some(50),
                horizon: 700
            }
        );
    }

    #[test]
    fn behind_means_not_current_since_the_horizon() {
        assert!(!SyncMeta::is_behind(None, 0), "nothing was forgotten yet");
        assert!(SyncMeta::is_behind(None, 5));
        assert!(SyncMeta::is_behind(Some(4), 5));
        assert!(!SyncMeta::is_behind(Some(5), 5));
    }
}
