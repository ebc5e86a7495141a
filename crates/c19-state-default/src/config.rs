//! The configuration of the `Default` state, which builds the live
//! [`DefaultState`](crate::DefaultState).

use std::num::{NonZeroU64, NonZeroUsize};

use c19_core::{DataSeederConfig, clock::DEFAULT_MAX_CLOCK_SKEW_MS};
use serde::{Deserialize, Serialize};
use serde_with::{DisplayFromStr, PickFirst, serde_as};

use crate::{observe::DEFAULT_WATCH_BUFFER, persist::Persistence};

/// The default `purge_interval`: one minute.
pub const DEFAULT_PURGE_INTERVAL_MS: u64 = 60_000;

/// The default `tombstone_ttl`: one hour.
pub const DEFAULT_TOMBSTONE_TTL_MS: u64 = 3_600_000;

/// The configuration of the `Default` state (`kind: Default`): an in-memory key/value
/// store with per-key TTLs, tombstones and last-writer-wins merges, optionally kept on
/// disk. [`c19_core::StateConfig::build`] makes the live
/// [`DefaultState`](crate::DefaultState).
#[serde_as]
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultStateConfig {
    /// The time to live (ms) of values written without one; `None`: they never expire.
    #[serde_as(as = "Option<PickFirst<(_, DisplayFromStr)>>")]
    #[serde(default)]
    pub ttl: Option<u64>,
    /// How often (ms) expired values and old tombstones are swept.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_purge_interval")]
    pub purge_interval: NonZeroU64,
    /// How long (ms after its `ts`) a tombstone is kept. It must outlive the time a
    /// delete takes to reach every peer, or a peer that still holds the old value
    /// brings it back.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_tombstone_ttl")]
    pub tombstone_ttl: u64,
    /// How many changes a subscriber (an agent's watch stream) may fall behind before
    /// it is dropped; it can then resume from the last change it saw (default 1024).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_watch_buffer")]
    pub watch_buffer: NonZeroUsize,
    /// The largest clock difference (ms) tolerated: a `ts` written through the agent API
    /// more than this far in the future is refused, and the connection reports peers
    /// whose clocks differ by more (default 30000). Entries from peers are never refused
    /// for their `ts`.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_max_clock_skew")]
    pub max_clock_skew: u64,
    /// Loads the initial data at start. With `persistence`, it fills only the keys
    /// the database does not hold (a value changed or deleted since it was seeded
    /// stays as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_seeder: Option<Box<dyn DataSeederConfig>>,
    /// Keeps the data in a database on disk, so that a restart or a crash loses no
    /// acknowledged write (see [`crate::persist`]); `None` (the default): in memory
    /// only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
}

fn default_purge_interval() -> NonZeroU64 {
    NonZeroU64::new(DEFAULT_PURGE_INTERVAL_MS).unwrap_or(NonZeroU64::MIN)
}

fn default_tombstone_ttl() -> u64 {
    DEFAULT_TOMBSTONE_TTL_MS
}

fn default_max_clock_skew() -> u64 {
    DEFAULT_MAX_CLOCK_SKEW_MS
}

fn default_watch_buffer() -> NonZeroUsize {
    NonZeroUsize::new(DEFAULT_WATCH_BUFFER).unwrap_or(NonZeroUsize::MIN)
}

impl Default for DefaultStateConfig {
    fn default() -> Self {
        Self {
            ttl: None,
            purge_interval: default_purge_interval(),
            tombstone_ttl: DEFAULT_TOMBSTONE_TTL_MS,
            watch_buffer: default_watch_buffer(),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW_MS,
            data_seeder: None,
            persistence: None,
        }
    }
}
