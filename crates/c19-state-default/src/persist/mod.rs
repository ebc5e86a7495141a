//! Persistence: the durable record under the in-memory store (`persistence:`).
//!
//! ```yaml
//! state:
//!   kind: Default
//!   persistence:
//!     path: /var/lib/c19      # a directory the agent owns; the database is state.redb
//!     sync: always            # always | interval
//!     sync_interval: 100      # ms, for sync: interval
//!     on_corruption: fail     # fail | resync
//! ```
//!
//! Reads never touch the disk: the store stays the one the agent reads from, and the
//! database ([redb]: ACID, copy-on-write B-trees, one file) holds each key's wire entry
//! (`{"value":...,"ts":...,"ttl":...}`, tombstones included) so that a restart finds the
//! data again. Every record the store stores or drops is queued for the writer thread,
//! one pending operation per key (a key written a thousand times between two commits
//! is written once), so what is pending never exceeds one entry per key.
//!
//! With `sync: always` the writer commits (with fsync) as soon as something is pending,
//! and everything that arrived during one commit goes into the next: concurrent writes
//! share one fsync (group commit). The agent acknowledges a write only once a commit
//! that holds it has returned ([`c19_core::State::flushed`]). With `sync: interval` it
//! commits at most every `sync_interval` ms and writes are acknowledged at once: a crash
//! (not a stop) loses at most the last `sync_interval` ms of writes. Data merged from
//! peers takes the same path and is never waited for.
//!
//! When a commit fails (a full disk, an I/O error), the pending operations are kept,
//! `/readyz` reports the problem, writes through the agent are refused (`507`) until a
//! commit succeeds again, and the writer retries with back-off, reopening the database
//! (redb refuses every operation after an I/O error until it is reopened).
//!
//! [redb]: https://docs.rs/redb

use std::{
    collections::HashMap,
    num::NonZeroU64,
    path::PathBuf,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use c19_core::StateError;
use serde::{Deserialize, Serialize};
use serde_with::{DisplayFromStr, PickFirst, serde_as};
use tokio::sync::{oneshot, watch};

use crate::record::Record;

mod db;
mod writer;

pub(crate) use db::Database;

/// The default `sync_interval`: 100 ms.
pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 100;

/// How long [`Persister::close`] waits for the last commit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `persistence` section of the Default state.
#[serde_as]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persistence {
    /// The directory the database lives in (created if missing; one agent per
    /// directory: a second agent on the same one is refused at start-up).
    pub path: PathBuf,
    /// When a write is durable: `always` (acknowledged after its fsync) or `interval`
    /// (acknowledged at once, synced every `sync_interval` ms).
    #[serde(default)]
    pub sync: SyncMode,
    /// How often (ms) `sync: interval` commits.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_sync_interval")]
    pub sync_interval: NonZeroU64,
    /// What a damaged database file does at start-up: `fail` (a start-up error naming
    /// the file) or `resync` (the file is moved aside, the agent starts empty and fills
    /// from its peers).
    #[serde(default)]
    pub on_corruption: OnCorruption,
}

fn default_sync_interval() -> NonZeroU64 {
    NonZeroU64::new(DEFAULT_SYNC_INTERVAL_MS).unwrap_or(NonZeroU64::MIN)
}

/// When a write is durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// A write is acknowledged only once it is on disk.
    #[default]
    Always,
    /// Writes are acknowledged at once and synced every `sync_interval` ms.
    Interval,
}

/// What a damaged database file does at start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCorruption {
    /// Refuse to start, naming the file.
    #[default]
    Fail,
    /// Move the file aside, start empty and fill from peers.
    Resync,
}

/// What the writer has made durable, and whether it is failing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// The newest ticket whose operations are committed.
    pub durable: u64,
    /// Why the last commit failed, until one succeeds.
    pub failure: Option<Arc<str>>,
}

/// Operations waiting for the writer.
#[derive(Default)]
pub(crate) struct Pending {
    /// The newest operation of each key: its record to store, or `None` to remove it.
    pub ops: HashMap<Box<[u8]>, Option<Record>>,
    /// Bumped by every enqueue; the writer commits up to the ticket it took.
    pub ticket: u64,
    /// The state is closing: the writer commits what is pending and stops.
    pub closing: bool,
}

/// The store's side of persistence: queues operations for the writer thread and tells
/// writers when their changes are durable.
pub(crate) struct Persister {
    sync: SyncMode,
    interval: Duration,
    pending: Mutex<Pending>,
    /// Wakes the writer when something is pending or the state closes.
    wake: Condvar,
    progress: watch::Sender<Progress>,
    /// Fired by the writer thread when it has stopped.
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

impl std::fmt::Debug for Persister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister")
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

impl Persister {
    /// Starts the writer thread over `database`; `meta` reads the exchange bookkeeping
    /// to store with each commit.
    pub fn start(
        settings: &Persistence,
        database: Database,
        meta: Box<dyn Fn() -> Option<(u64, u64)> + Send>,
    ) -> Result<Arc<Self>, StateError> {
        let (done, stopped) = oneshot::channel();
        let persister = Arc::new(Self {
            sync: settings.sync,
            interval: Duration::from_millis(settings.sync_interval.get()),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            progress: watch::Sender::new(Progress::default()),
            stopped: Mutex::new(Some(stopped)),
        });
        let writer = writer::Writer::new(persister.clone(), database, meta);
        std::thread::Builder::new()
            .name("c19-persist".into())
            .spawn(move || {
                writer.run();
                let _ = done.send(());
            })
            .map_err(|error| {
                StateError::Storage(format!("persistence: cannot start the writer: {error}"))
            })?;
        Ok(persister)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `records` to store and `removed` keys to remove (called under the store's
    /// writer lock, so operations queue in the order they were made).
    pub fn enqueue<'a>(
        &self,
        records: impl IntoIterator<Item = &'a Record>,
        removed: impl IntoIterator<Item = &'a [u8]>,
    ) {
        let mut pending = self.lock();
        let before = pending.ticket;
        for record in records {
            pending
                .ops
                .insert(Box::from(record.key()), Some(record.clone()));
            pending.ticket = before + 1;
        }
        for key in removed {
            pending.ops.insert(Box::from(key), None);
            pending.ticket = before + 1;
        }
        if pending.ticket != before {
            self.wake.notify_one();
        }
    }

    /// Why the writer is failing, if it is: writes through the agent are refused
    /// meanwhile.
    pub fn failure(&self) -> Option<StateError> {
        let failure = self.progress.borrow().failure.clone()?;
        Some(StateError::Storage(failure.to_string()))
    }

    /// Resolves once every operation queued before the call is durable (`sync:
    /// always`; with `sync: interval` at once), or with the writer's failure.
    pub async fn flushed(&self) -> Result<(), StateError> {
        if self.sync == SyncMode::Interval {
            return self.failure().map_or(Ok(()), Err);
        }
        let target = self.lock().ticket;
        let mut progress = self.progress.subscribe();
        let reached = progress
            .wait_for(|progress| progress.durable >= target || progress.failure.is_some())
            .await
            .map(|progress| progress.clone());
        match reached {
            Ok(progress) if progress.durable >= target => Ok(()),
            Ok(progress) => Err(StateError::Storage(
                progress.failure.as_deref().unwrap_or_default().to_owned(),
            )),
            Err(_) => Err(StateError::Storage(
                "persistence: the writer has stopped".to_owned(),
            )),
        }
    }

    /// Commits what is pending and stops the writer (the state is closing).
    pub async fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_one();
        let stopped = self
            .stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stopped) = stopped
            && tokio::time::timeout(CLOSE_TIMEOUT, stopped).await.is_err()
        {
            tracing::warn!("persistence: the last commit did not finish within 10 s");
        }
    }
}
