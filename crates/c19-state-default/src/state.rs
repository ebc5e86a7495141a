//! The live `Default` state: its [`State`] implementation, and how its configuration
//! builds it.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use bytes::Bytes;
use c19_core::{
    Applied, Change, Changes, DataSeeder, Diff, LayerContext, SafeState, SeedError, Shutdown,
    State, StateConfig, StateError, StateValue, SyncSession, reexports::futures::future::BoxFuture,
};

use crate::{
    config::DefaultStateConfig,
    error::{EntryProblem, Error},
    exchange,
    incoming::{Incoming, parse_batch},
    observe::{Observers, describe_metrics},
    persist::{Database, Persistence, Persister},
    store::{Store, dead_on_arrival},
};

/// The live `Default` state: an in-memory key/value store with per-key TTLs,
/// tombstones and last-writer-wins merges, built by [`DefaultStateConfig`].
///
/// It can also be used directly: [`DefaultState::default`] is an empty state with the
/// default settings, [`DefaultState::new`] one with the settings of a configuration
/// (without its seeder, persistence or background sweeps).
#[derive(Debug)]
pub struct DefaultState {
    /// The default time to live (ms) of values written without one.
    pub(crate) ttl: Option<u64>,
    /// How long (ms after its `ts`) a tombstone is kept.
    pub(crate) tombstone_ttl: u64,
    /// The largest clock difference (ms) tolerated in local writes.
    pub(crate) max_clock_skew: u64,
    /// Whether the data is kept on disk (seeding then fills only missing keys).
    pub(crate) persistent: bool,
    /// The data.
    pub(crate) store: Arc<Store>,
}

impl Default for DefaultState {
    fn default() -> Self {
        Self::new(&DefaultStateConfig::default())
    }
}

/// Milliseconds since the Unix epoch on the agent's clock ([`c19_core::clock::now_ms`],
/// the one clock of every layer; 0 if the clock is before the epoch).
pub fn now_ms() -> u64 {
    c19_core::clock::now_ms()
}

impl DefaultState {
    /// An empty state with the settings of `config`, without its seeder or persistence
    /// and without background sweeps ([`StateConfig::build`] adds those).
    pub fn new(config: &DefaultStateConfig) -> Self {
        Self {
            ttl: config.ttl,
            tombstone_ttl: config.tombstone_ttl,
            max_clock_skew: config.max_clock_skew,
            persistent: config.persistence.is_some(),
            store: Arc::new(Store::new(Observers::new(config.watch_buffer.get()))),
        }
    }

    /// What an exchange on this state needs of it.
    fn host(&self) -> exchange::Host {
        exchange::Host {
            store: self.store.clone(),
            ttl: self.ttl,
            tombstone_ttl: self.tombstone_ttl,
        }
    }

    /// The default time to live (ms) of values written without one.
    pub fn ttl(&self) -> Option<u64> {
        self.ttl
    }

    /// How long (ms after its `ts`) a tombstone is kept.
    pub fn tombstone_ttl(&self) -> u64 {
        self.tombstone_ttl
    }

    /// Sweeps expired values and tombstones older than `tombstone_ttl` now; the task
    /// started by [`StateConfig::build`] does this every `purge_interval`. Returns how
    /// many records were dropped.
    pub fn purge_now(&self) -> usize {
        self.store.purge(now_ms(), self.tombstone_ttl)
    }

    /// How many records the state holds: values (expired ones until swept) and
    /// tombstones.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the state holds no record at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw wire entry held for `key`, tombstones and expired values included.
    pub fn held(&self, key: &str) -> Option<Bytes> {
        self.store
            .held(key.as_bytes())
            .map(|record| record.entry_bytes())
    }

    /// Validates a batch without applying it.
    fn parse(&self, value: &dyn StateValue) -> crate::Result<Vec<Incoming>> {
        parse_batch(value.as_bytes(), self.ttl)
    }

    /// Validates a batch of the agent API without applying it: as [`Self::parse`], and
    /// refuses a `ts` more than `max_clock_skew` ahead of this agent's clock.
    fn parse_local(&self, value: &dyn StateValue) -> crate::Result<Vec<Incoming>> {
        let batch = self.parse(value)?;
        let now = now_ms();
        let limit = now.saturating_add(self.max_clock_skew);
        let too_far = batch.iter().find_map(|write| {
            let ts = write.ts.filter(|&ts| ts > limit)?;
            Some((&write.key, ts))
        });
        if let Some((key, ts)) = too_far {
            return Err(Error::Entry {
                key: key.clone(),
                problem: EntryProblem::TsInFuture {
                    ahead_ms: ts - now,
                    max_clock_skew: self.max_clock_skew,
                },
            });
        }
        Ok(batch)
    }

    /// Applies each of `values`, validated by `parse`, as [`State::set_all`] does.
    fn apply_all(
        &self,
        values: &[&dyn StateValue],
        parse: impl Fn(&dyn StateValue) -> crate::Result<Vec<Incoming>>,
    ) -> Vec<Result<Applied, StateError>> {
        let parsed: Vec<_> = values.iter().map(|value| parse(*value)).collect();
        let valid: Vec<&[Incoming]> = parsed
            .iter()
            .filter_map(|batch| batch.as_deref().ok())
            .collect();
        let mut applied = self.store.apply_all(&valid, now_ms()).into_iter();
        parsed
            .into_iter()
            .map(|batch| match batch {
                Ok(_) => Ok(applied.next().unwrap_or_default()),
                Err(error) => {
                    self.store.refused_invalid();
                    Err(error.into())
                }
            })
            .collect()
    }

    /// Loads the seeder's data into this (fresh) state: with `persistence`, into the
    /// keys the database did not hold.
    async fn seed(&self, seeder: &dyn DataSeeder) -> Result<(), StateError> {
        let data = seeder.load().await?;
        let mut batch = self.parse(&data).map_err(|error| SeedError::Invalid {
            source_name: seeder.source_name(),
            message: error.describe_source(),
        })?;
        if self.persistent {
            batch.retain(|write| self.store.held(write.key.as_bytes()).is_none());
        }
        let applied = self.store.apply(&batch, now_ms());
        tracing::info!(source = %seeder.source_name(), keys = applied.applied, "seeded the state");
        Ok(())
    }
}

impl DefaultState {
    /// Opens the database of `settings`, loads it (dropping what expired meanwhile) and
    /// queues every later change on it.
    fn open_persistence(self: &Arc<Self>, settings: &Persistence) -> Result<(), StateError> {
        let started = std::time::Instant::now();
        let database = Database::open(settings)?;
        let now = now_ms();
        let mut dead = Vec::new();
        let loaded = database.load(|batch| {
            let mut entries = parse_batch(batch, None).map_err(|error| {
                StateError::Storage(format!(
                    "persistence: {} holds an entry that is not valid ({error}); move the file aside to start empty",
                    database.file().display()
                ))
            })?;
            entries.retain(|entry| {
                let ts = entry.ts.unwrap_or_default();
                let alive = !dead_on_arrival(entry, ts, now, self.tombstone_ttl);
                if !alive {
                    dead.push(Box::from(entry.key.as_bytes()));
                }
                alive
            });
            self.store.apply(&entries, now);
            Ok(())
        })?;
        let dropped = dead.len();
        database.remove(dead)?;
        self.store
            .sync_meta()
            .restore(loaded.last_sync, loaded.horizon);
        tracing::info!(
            file = %database.file().display(),
            entries = loaded.entries - dropped,
            expired = dropped,
            elapsed_ms = started.elapsed().as_millis(),
            "persistence: loaded the state"
        );
        let state = Arc::downgrade(self);
        let meta = Box::new(move || {
            let state = state.upgrade()?;
            let meta = state.store.sync_meta().meta();
            Some((meta.last_sync.unwrap_or_default(), meta.horizon))
        });
        self.store
            .persist_to(Persister::start(settings, database, meta)?);
        Ok(())
    }

    /// Refuses a local write while the disk fails (it could not be made durable).
    fn check_storage(&self) -> Result<(), StateError> {
        match self
            .store
            .persister()
            .and_then(|persister| persister.failure())
        {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

/// Sweeps `state` every `interval` until `shutdown` or until the state is dropped.
async fn purge_loop(state: Weak<DefaultState>, interval: Duration, shutdown: Shutdown) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let Some(state) = state.upgrade() else { break };
        // A sweep walks every key: keep it off the async workers.
        match tokio::task::spawn_blocking(move || state.purge_now()).await {
            Ok(0) => {}
            Ok(dropped) => tracing::debug!(dropped, "swept expired values and old tombstones"),
            Err(error) => tracing::warn!(%error, "the sweep failed"),
        }
    }
}

#[typetag::serde(name = "Default")]
impl StateConfig for DefaultStateConfig {
    fn build<'a>(&'a self, cx: &'a LayerContext) -> BoxFuture<'a, Result<SafeState, StateError>> {
        Box::pin(async move {
            describe_metrics();
            let live = Arc::new(DefaultState::new(self));
            if let Some(settings) = self.persistence.clone() {
                // Reading a large file takes seconds: off the async workers.
                let opening = live.clone();
                tokio::task::spawn_blocking(move || opening.open_persistence(&settings))
                    .await
                    .map_err(|error| {
                        StateError::Storage(format!("persistence: the load failed: {error}"))
                    })??;
            }
            if let Some(seeder) = &self.data_seeder {
                let seeder = seeder.build(cx).await?;
                live.seed(seeder.as_ref()).await?;
            }
            let interval = Duration::from_millis(self.purge_interval.get());
            tokio::spawn(purge_loop(
                Arc::downgrade(&live),
                interval,
                cx.shutdown().clone(),
            ));
            Ok(live as SafeState)
        })
    }
}

impl State for DefaultState {
    fn version(&self) -> String {
        self.store.version()
    }

    fn set(&self, value: &dyn StateValue) -> Result<Applied, StateError> {
        let batch = self
            .parse(value)
            .inspect_err(|_| self.store.refused_invalid())?;
        Ok(self.store.apply(&batch, now_ms()))
    }

    fn set_all(&self, values: &[&dyn StateValue]) -> Vec<Result<Applied, StateError>> {
        self.apply_all(values, |value| self.parse(value))
    }

    fn set_local(&self, value: &dyn StateValue) -> Result<Applied, StateError> {
        self.check_storage()?;
        let batch = self
            .parse_local(value)
            .inspect_err(|_| self.store.refused_invalid())?;
        Ok(self.store.apply(&batch, now_ms()))
    }

    fn set_all_local(&self, values: &[&dyn StateValue]) -> Vec<Result<Applied, StateError>> {
        if let Err(StateError::Storage(failure)) = self.check_storage() {
            return values
                .iter()
                .map(|_| Err(StateError::Storage(failure.clone())))
                .collect();
        }
        self.apply_all(values, |value| self.parse_local(value))
    }

    fn flushed(&self) -> BoxFuture<'_, Result<(), StateError>> {
        Box::pin(async move {
            match self.store.persister() {
                Some(persister) => persister.flushed().await,
                None => Ok(()),
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(persister) = self.store.persister() {
                persister.close().await;
            }
        })
    }

    fn max_clock_skew(&self) -> u64 {
        self.max_clock_skew
    }

    fn get(&self, key: &dyn StateValue) -> Option<Bytes> {
        self.store.get(key.as_bytes(), now_ms())
    }

    fn delete(&self, key: &dyn StateValue) -> Result<bool, StateError> {
        let key = std::str::from_utf8(key.as_bytes())
            .map_err(|_| StateError::Invalid("the key is not valid UTF-8".to_owned()))?;
        self.check_storage()?;
        Ok(self.store.delete(&Incoming::tombstone(key)?, now_ms()))
    }

    fn diff(&self, since: u64, max_bytes: usize) -> Result<Diff, StateError> {
        let now = now_ms();
        let held_back = self.store.held_back(now, self.tombstone_ttl);
        Ok(self.store.diff(since, max_bytes, now, held_back))
    }

    fn head(&self) -> u64 {
        self.store.head()
    }

    fn watch_head(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.store.watch_head())
    }

    fn counts(&self) -> Option<(usize, usize)> {
        Some(self.store.counts())
    }

    fn get_root(&self) -> Bytes {
        self.store.root(now_ms())
    }

    fn list(&self, prefix: &dyn StateValue, limit: Option<usize>) -> Result<Bytes, StateError> {
        Ok(self.store.list(prefix.as_bytes(), limit, now_ms()))
    }

    fn subscribe(&self) -> Result<Changes, StateError> {
        Ok(self.store.subscribe())
    }

    fn changes_since(&self, since: u64, max: usize) -> Result<Vec<Change>, StateError> {
        Ok(self.store.changes_since(since, max, now_ms()))
    }

    fn sync_open(self: Arc<Self>, max_bytes: usize) -> Result<Box<dyn SyncSession>, StateError> {
        Ok(Box::new(exchange::Session::new(self.host(), max_bytes)))
    }

    fn sync_answer(&self, request: &[u8], max_bytes: usize) -> Result<Bytes, StateError> {
        exchange::answer(&self.host(), request, max_bytes)
    }
}
