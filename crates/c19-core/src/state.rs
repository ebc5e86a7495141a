//! The state layer: holds the shared data and merges what peers send.
//!
//! The agent and connection layers never look inside the data: they hand the state bytes
//! they received ([`StateValue`]) and pass on the bytes it returns ([`Bytes`]). The format
//! of those bytes is the state implementation's business; the format of the `Default`
//! state, which the HTTP agent's API is written in, is stated in [`crate::entry`].
//!
//! # The contract
//!
//! What the connection layer relies on, and every state must therefore keep:
//!
//! 1. **Merges converge.** Merging the same entries in any order, any number of times,
//!    leaves every state holding the same data (the Default state: last writer wins by
//!    `ts`, ties broken by the entry's bytes). [`State::version`] is equal exactly when
//!    the data is.
//! 2. **All or nothing.** [`State::set`] validates a whole batch before applying any of
//!    it; on error nothing changed.
//! 3. **History.** Every change takes the next point of the state's history: points
//!    only grow, by one per change, and [`State::head`] is the newest. A merge that
//!    changed nothing takes no point, so [`State::head`] does not move (otherwise a
//!    connection would push the no-op on, its peers would push it back, and gossip
//!    would echo for ever). [`Applied::points`] says which points a merge took, and
//!    [`SyncSession::written`] which points the last step of an exchange took.
//! 4. **Diffs.** [`State::diff`] from a point returns every change after it (the
//!    newest entry of each key at least once), in the format [`State::set`] accepts.
//! 5. **Deletes are writes.** A delete leaves a tombstone that wins over older values
//!    and is itself a change in the history and in diffs, until it is swept.
//! 6. **No blocking on the network.** Every method returns without waiting for a peer;
//!    the connection calls the heavy ones (`set`, `diff`, exchange steps) off the
//!    async workers.
//!
//! The `c19-testkit` crate's conformance suite checks these rules against any
//! implementation.

use std::{fmt::Debug, sync::Arc};

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::{layer::LayerContext, seeder::SeedError};

/// A state shared by the layers of one agent.
pub type SafeState = Arc<dyn State>;

/// Anything that can be viewed as bytes in the state's own format.
///
/// Layers pass values, keys and whole maps to the state through this trait, so they stay
/// ignorant of the format the state uses.
pub trait StateValue: Send + Sync {
    /// The bytes of this value.
    fn as_bytes(&self) -> &[u8];
}

impl StateValue for [u8] {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl StateValue for Vec<u8> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl StateValue for Bytes {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl StateValue for str {
    fn as_bytes(&self) -> &[u8] {
        str::as_bytes(self)
    }
}

impl StateValue for String {
    fn as_bytes(&self) -> &[u8] {
        String::as_bytes(self)
    }
}

impl<T: StateValue + ?Sized> StateValue for &T {
    fn as_bytes(&self) -> &[u8] {
        (**self).as_bytes()
    }
}

/// Why the state refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The input is not in the state's format. The message names the problem and, where
    /// there is one, the offending key; nothing of the input was applied.
    #[error("{0}")]
    Invalid(String),
    /// The state does not implement this operation.
    #[error("this state does not support {0}")]
    Unsupported(&'static str),
    /// The data seeder could not load the initial data.
    #[error("data seeder: {0}")]
    Seed(#[from] SeedError),
    /// The state's durable storage failed (a full disk, an I/O error): the write may be
    /// applied in memory but is not durable. The message names the path and the problem.
    #[error("{0}")]
    Storage(String),
}

/// What a [`State::set`] did with a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// Entries that changed the state.
    pub applied: usize,
    /// Entries that lost to what the state already held (older, or equal).
    pub ignored: usize,
    /// The points of the state's history the merge took, when it took any and the
    /// state says (see the [module docs](self)); `None` otherwise.
    pub points: Option<Points>,
}

impl Applied {
    /// `applied` entries changed the state and `ignored` lost; no points said.
    pub fn new(applied: usize, ignored: usize) -> Self {
        Self {
            applied,
            ignored,
            points: None,
        }
    }

    /// The same, saying the merge took the points `points`.
    pub fn with_points(mut self, points: Option<Points>) -> Self {
        self.points = points;
        self
    }
}

/// Consecutive points of a state's history, `first..=last`, that one merge took and no
/// other change shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Points {
    /// The first point taken.
    pub first: u64,
    /// The last point taken (`first` for one change).
    pub last: u64,
}

impl Points {
    /// The `count` points after `head`, or `None` when `count` is 0.
    pub fn after(head: u64, count: u64) -> Option<Self> {
        (count > 0).then(|| Self {
            first: head.saturating_add(1),
            last: head.saturating_add(count),
        })
    }

    /// How many points these are.
    pub fn len(&self) -> u64 {
        self.last.saturating_sub(self.first) + 1
    }

    /// Never empty; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The changes made to a state after a point in its history; see [`State::diff`].
#[derive(Debug, Clone, Default)]
pub struct Diff {
    /// The changed entries, in the same format [`State::set`] accepts.
    pub changes: Bytes,
    /// How many entries `changes` holds.
    pub count: usize,
    /// The point to ask from next time.
    pub next: u64,
    /// `false` when the diff was cut short by the size limit: ask again from `next`.
    pub complete: bool,
}

/// One change to a state, as subscribers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The point of the state's history this change made (see [`State::head`]); a
    /// subscriber that reconnects resumes after the last one it saw.
    pub seq: u64,
    /// The key.
    pub key: Bytes,
    /// The entry after the change (a deletion included), in the state's format.
    pub entry: Bytes,
}

/// A live feed of changes; see [`State::subscribe`]. It holds a bounded number of
/// changes: a receiver that falls behind gets `RecvError::Lagged` instead of slowing
/// writers down.
pub type Changes = tokio::sync::broadcast::Receiver<Change>;

/// The caller's side of one anti-entropy exchange with a peer; see [`State::sync_open`].
///
/// The exchange is a conversation of opaque messages: the session writes each request,
/// the connection layer carries it to the peer, whose state answers it with
/// [`State::sync_answer`], and the session reads the answer and writes the next request.
/// The connection layer knows nothing of the messages' format; it only carries and counts
/// them.
pub trait SyncSession: Send {
    /// The next request for the peer, given the peer's answer to the previous one:
    /// `None` before the first request, an empty slice when the peer had nothing to say.
    /// Returns `None` when the exchange is complete. An error ends the exchange (what was
    /// merged so far stays merged).
    fn step(&mut self, answer: Option<&[u8]>) -> Result<Option<Bytes>, StateError>;

    /// What the peer's answers changed in this state so far.
    fn applied(&self) -> Applied;

    /// The points of the state's history that the last [`SyncSession::step`] took, when
    /// it took any; see [`Applied::points`]. `None` (the default): none, or not said.
    fn written(&self) -> Option<Points> {
        None
    }
}

/// The configuration of a state kind, selected in YAML by `kind:`.
///
/// It is plain data; [`StateConfig::build`] makes the live [`State`].
#[typetag::serde(tag = "kind")]
pub trait StateConfig: Debug + Send + Sync {
    /// Builds the live state: opens its storage, loads its data seeder, starts its
    /// background work (expiry, garbage collection) that stops with the context's
    /// shutdown, and returns the shareable instance that the agent and connection
    /// layers use. It may mark the context's readiness itself; the runtime marks the
    /// `state` component ready once this returns.
    fn build<'a>(&'a self, cx: &'a LayerContext) -> BoxFuture<'a, Result<SafeState, StateError>>;
}

/// The live state, built by a [`StateConfig`]; see the [module docs](self) for the rules
/// every implementation keeps.
///
/// Optional methods have defaults, so the trait grows without breaking implementers.
pub trait State: Debug + Send + Sync {
    /// A version of the current data. Two states report the same version exactly when
    /// they hold the same data, so a connection layer can skip exchanges between equals.
    fn version(&self) -> String;

    /// Merges a batch of entries (a local write or data from a peer).
    ///
    /// The batch is validated before anything is applied: on error nothing changed.
    /// The result counts what changed and, where the state says, which points of its
    /// history the changes took (rule 3 of the [module docs](self)).
    fn set(&self, value: &dyn StateValue) -> Result<Applied, StateError>;

    /// Merges several independent batches, in order, each as [`State::set`] would:
    /// each is validated on its own and applied all-or-nothing, and its result comes
    /// back at its index.
    ///
    /// A state may apply them as one write, which makes gathering concurrent small
    /// writes (as the HTTP agent does under load) cheaper than a `set` apiece. The
    /// default calls `set` for each.
    fn set_all(&self, values: &[&dyn StateValue]) -> Vec<Result<Applied, StateError>> {
        values.iter().map(|value| self.set(*value)).collect()
    }

    /// Merges a batch written by a client of this agent (the agent API), as
    /// [`State::set`] does.
    ///
    /// A state may hold local writes to rules it never applies to peers' data, such as
    /// refusing a `ts` far in the future ([`State::max_clock_skew`]): an entry merged
    /// from a peer is already held elsewhere, and refusing it on some agents only would
    /// keep them apart for good. The default is [`State::set`].
    fn set_local(&self, value: &dyn StateValue) -> Result<Applied, StateError> {
        self.set(value)
    }

    /// Merges several independent batches written by clients of this agent, each as
    /// [`State::set_local`] would, as [`State::set_all`] does. The default is
    /// [`State::set_all`].
    fn set_all_local(&self, values: &[&dyn StateValue]) -> Vec<Result<Applied, StateError>> {
        self.set_all(values)
    }

    /// The largest difference (ms) tolerated between this agent's clock and a peer's or
    /// a client's timestamps; a connection layer that measures its peers' clocks reports
    /// the peers beyond it. The default is
    /// [`DEFAULT_MAX_CLOCK_SKEW_MS`](crate::clock::DEFAULT_MAX_CLOCK_SKEW_MS).
    fn max_clock_skew(&self) -> u64 {
        crate::clock::DEFAULT_MAX_CLOCK_SKEW_MS
    }

    /// The value stored under `key`, if any and not expired.
    fn get(&self, key: &dyn StateValue) -> Option<Bytes>;

    /// The value stored under `key`, or `default`.
    fn get_or(&self, key: &dyn StateValue, default: Bytes) -> Bytes {
        self.get(key).unwrap_or(default)
    }

    /// Deletes `key`. A delete is a write: it must win over older values everywhere.
    /// Returns whether a live value was deleted.
    fn delete(&self, key: &dyn StateValue) -> Result<bool, StateError>;

    /// The changes made after point `since` of this state's history (0 means from the
    /// start), at most about `max_bytes` of them.
    ///
    /// Points are local to one state and only ever grow; [`State::head`] is the newest.
    fn diff(&self, since: u64, max_bytes: usize) -> Result<Diff, StateError>;

    /// The newest point of this state's history, to pass to [`State::diff`].
    fn head(&self) -> u64;

    /// A receiver that sees [`State::head`] each time it moves (local writes, merges,
    /// sweeps), so that a connection can push a change as soon as it is made instead of
    /// at its next tick. `None` (the default): the connection looks every
    /// `push_interval`.
    fn watch_head(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Resolves once every change applied before the call is durable, the way this
    /// state makes changes durable (a state that keeps its data on disk syncs it there).
    /// An agent acknowledges a write only after this. [`StateError::Storage`]: the
    /// changes could not be made durable.
    ///
    /// The default resolves at once: an in-memory state has nothing to wait for.
    fn flushed(&self) -> BoxFuture<'_, Result<(), StateError>> {
        Box::pin(futures::future::ready(Ok(())))
    }

    /// Called once when the agent stops, after the agent and connection layers have
    /// stopped: the state writes out what it still holds back and releases its files.
    ///
    /// The default does nothing.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(futures::future::ready(()))
    }

    /// How many values (expired ones until swept) and tombstones the state holds, for
    /// operators (`c19 status`). `None` (the default): the state does not say.
    fn counts(&self) -> Option<(usize, usize)> {
        None
    }

    /// The whole state, in the format [`State::set`] accepts.
    fn get_root(&self) -> Bytes;

    /// The live entries whose key starts with `prefix`, at most `limit` of them (in key
    /// order), in the format [`State::set`] accepts.
    fn list(&self, prefix: &dyn StateValue, limit: Option<usize>) -> Result<Bytes, StateError> {
        let _ = (prefix, limit);
        Err(StateError::Unsupported("listing keys"))
    }

    /// A feed of every change from now on, from local writes and from peers alike.
    fn subscribe(&self) -> Result<Changes, StateError> {
        Err(StateError::Unsupported("subscriptions"))
    }

    /// The changes after point `since`, one per key (the newest), in history order, at
    /// most `max` of them: what a subscriber that saw `since` missed.
    fn changes_since(&self, since: u64, max: usize) -> Result<Vec<Change>, StateError> {
        let _ = (since, max);
        Err(StateError::Unsupported("subscriptions"))
    }

    /// Starts an anti-entropy exchange with a peer that answers with
    /// [`State::sync_answer`]: a conversation that repairs both sides at a cost in
    /// proportion to their difference rather than to the whole state. No message of it
    /// should exceed about `max_bytes`.
    ///
    /// After one exchange the opening side holds what either side held. The answering
    /// side is repaired too, except that a state may give nothing to a newcomer that has
    /// never completed an exchange (what it pulls is old news to its peers; the
    /// newcomer's own writes reach them by push, and by its next exchanges).
    ///
    /// The default is [`StateError::Unsupported`]: the connection layer then pulls the
    /// peer's whole state instead, as 0.1 did.
    fn sync_open(self: Arc<Self>, max_bytes: usize) -> Result<Box<dyn SyncSession>, StateError> {
        let _ = max_bytes;
        Err(StateError::Unsupported("anti-entropy exchanges"))
    }

    /// Answers one request of a peer's [`SyncSession`] (of the same kind of state), in at
    /// most about `max_bytes`; an empty answer means there is nothing to say. Requests
    /// are self-contained: the answering side keeps no session.
    ///
    /// The default is [`StateError::Unsupported`].
    fn sync_answer(&self, request: &[u8], max_bytes: usize) -> Result<Bytes, StateError> {
        let _ = (request, max_bytes);
        Err(StateError::Unsupported("anti-entropy exchanges"))
    }
}
