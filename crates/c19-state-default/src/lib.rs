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
//!   max_clock_skew: 30000   # ms; the agent API refuses a `ts` further in the future
//!   data_seeder: { kind: File, filename: data.json }   # optional
//!   persistence: { path: /var/lib/c19, sync: always }  # optional, see [`persist`]
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
//!
//! # Clocks
//!
//! Last-writer-wins trusts the writers' clocks: an agent whose clock is ahead stamps its
//! writes in the future, and they win over later writes and live longer than their TTL
//! on every agent. A client of the agent API that gives a `ts` more than
//! `max_clock_skew` ahead of this agent's clock is refused ([`EntryProblem::TsInFuture`],
//! a `400`; the check is in [`c19_core::State::set_local`]), and the connection layer
//! reports peers whose clocks differ by more.
//!
//! Entries merged from peers are never refused for their `ts`: the entry is already held
//! by the peer that sent it and by whoever it reached, so refusing it here (and not
//! there) would leave the agents different for good, each exchange bringing it back and
//! each refusal leaving digests apart; and which side's clock is wrong is not known
//! here. A skewed clock is fixed at its source, which the skew metric and log point at.
//!
//! # Anti-entropy
//!
//! Two Default states repair each other at a cost in proportion to their difference,
//! not to their size ([`c19_core::State::sync_open`] and
//! [`c19_core::State::sync_answer`]; the connection layer only carries the messages).
//!
//! **The digest.** Keys fall into 4096 buckets (64 groups of 64) by the top bits of a
//! stable hash of the key, the hash that already orders the key set, so a bucket's
//! entries are one contiguous range of it. Each bucket keeps the wrapping sum of its
//! entries' hashes (the per-entry hash the version sums), and each group the sum of its
//! buckets: one addition and one subtraction per change, O(1) like the version.
//!
//! **The exchange**, started by the side that pulls:
//!
//! 1. `hello` with its version (about 150 bytes): equal versions end it there, which
//!    is what almost every pull between agents at rest costs.
//! 2. The other side answers with its 64 group hashes; the caller sends its 64 bucket
//!    hashes of each group that differs.
//! 3. The callee answers with its entries in the buckets that differ; the caller merges
//!    them and gives back, in the same round, what it holds newer or the callee lacks
//!    there. Both sides are repaired by one exchange.
//!
//! For `k` keys that differ this costs about 600 bytes of group hashes, up to
//! `min(k, 64)` × 64 bucket hashes, and the entries of up to `k` buckets (about
//! `n / 4096` entries each, for `n` keys), instead of the whole state. An empty agent
//! says so in its `hello` and gets the whole state at once, in pages. A callee that has
//! never completed an exchange is a newcomer catching up by its own pull (which also
//! gives its peer what that lacks): it is given nothing, and an agent in touch does not
//! even compare with it, which would send its partial state back and forth. An empty
//! callee that has been in touch is given everything. Every message stays within the size the caller asks for (the
//! connection's `max_message_bytes`); pages resume at a key hash. The costs: 16 bytes of
//! bucket hashes per 64 buckets in memory (the groups a write batch touches are copied
//! with each snapshot), and a round trip more than a full pull when states differ.
//! Per-origin version vectors would send only the changed entries, but cost memory per
//! origin and per key, and lose track of agents that come and go; Merkle trees deeper
//! than two levels would save bucket hashes for small differences but add round trips.
//!
//! **Expiry and tombstones.** Entries an exchange meets that are dead (expired values,
//! tombstones older than `tombstone_ttl`) are swept there and then instead of being
//! sent, so a value that expired on one side does not keep two digests apart, and an
//! entry that arrives already dead is stored only when it replaces what is held.
//!
//! **Agents that were away.** A tombstone forgotten on one side must not let a lagging
//! peer's older value come back. Each agent records `last_sync`, when it last completed
//! an exchange it started (an agent that started empty takes its peer's), and its
//! horizon, `now - tombstone_ttl` at its last sweep that forgot a tombstone. Each
//! exchange opens with both. An agent whose `last_sync` is older than its peer's
//! horizon was away longer than the grace period: it may hold values whose deletes it
//! never saw and the peer has forgotten. It drops every entry with a `ts` at or below
//! that horizon (so it serves none of them meanwhile) and takes the peer's entries in
//! the same exchange; what it wrote or learned more recently stays (each such resync
//! counts in `c19_state_resyncs_total`; an empty newcomer has nothing to resync and
//! does not count). Meanwhile it pushes
//! nothing older than `tombstone_ttl` (pushes carry no such check): an agent whose last
//! exchange is older than that leaves such entries out of `diff`. Writes older than
//! the horizon that only the lagging side held are lost with the rest, as a delete of
//! them could not be told apart. The rule relies on `tombstone_ttl` being the same on
//! every agent and much longer than gossip takes; a lagging agent that an empty
//! newcomer copies before any current agent reaches either passes on its lag with its
//! `last_sync`, and both resynchronise when they meet a current agent.

mod buckets;
mod config;
pub mod error;
mod exchange;
mod incoming;
mod message;
mod observe;
mod pace;
pub mod persist;
mod record;
mod slot;
mod state;
mod store;
mod sync_meta;

pub use config::{DEFAULT_PURGE_INTERVAL_MS, DEFAULT_TOMBSTONE_TTL_MS, DefaultStateConfig};
pub use error::{EntryProblem, Error, MAX_KEY_LEN, Result};
pub use observe::DEFAULT_WATCH_BUFFER;
pub use state::{DefaultState, now_ms};
