//! The `Default` state layer of c19: an in-memory key/value store with per-key TTLs,
//! tombstones and last-writer-wins merges.
//!
//! ```yaml
//! state:
//!   kind: Default
//!   ttl: null               # ms; default time to live of values written without one
//!   purge_interval: 60000   # ms between sweeps of expired values and old tombstones
//!   tombstone_ttl: 3600000  # ms a delete is remembered
//!   watch_buffer: 1024      # changes a watcher may fall behind before it is dropped
//!   data_seeder: { kind: File, filename: data.json }   # optional
//! ```
//!
//! # Format
//!
//! `set` takes a JSON object mapping keys to entries,
//! `{"cat": {"value": "garfield", "ttl": 20000, "ts": 1603548753122}}`: `value` (any
//! JSON) is required; `ts` (ms since the Unix epoch) defaults to "now, and newer than
//! what this agent holds"; `ttl` (ms, relative to `ts`) defaults to the state's `ttl`;
//! `deleted: true` makes a tombstone. `get` returns one entry,
//! `{"value":"garfield","ts":1603548753122,"ttl":20000}`; a tombstone travels as
//! `{"value":null,"ts":...,"ttl":0,"deleted":true}` and is never returned by `get`.
//!
//! # Merging
//!
//! The entry with the newest `ts` wins; at equal `ts` a tombstone wins, then the entry
//! whose compact JSON bytes compare greater. So any two agents that receive the same
//! writes, in any order, hold the same data and report the same version.

pub mod error;
mod incoming;
mod observe;
mod record;
mod slot;
mod state;
mod store;

pub use error::{EntryProblem, Error, MAX_KEY_LEN, Result};
pub use observe::DEFAULT_WATCH_BUFFER;
pub use state::{DEFAULT_PURGE_INTERVAL_MS, DEFAULT_TOMBSTONE_TTL_MS, DefaultState, now_ms};
