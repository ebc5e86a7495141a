//! The writer thread: commits what is pending, retries with back-off when the disk
//! fails, and makes the last commit when the state closes.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use c19_core::health;
use metrics::{counter, histogram};

use super::{Database, Persister, SyncMode};
use crate::record::Record;

/// The first wait before a failed commit is retried; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

type Ops = HashMap<Box<[u8]>, Option<Record>>;

/// The writer thread's state.
pub(super) struct Writer {
    persister: Arc<Persister>,
    /// `None` after a failure closed it, until a retry reopens it.
    database: Option<Database>,
    /// The file, to reopen after a failure.
    file: PathBuf,
    meta: Box<dyn Fn() -> Option<(u64, u64)> + Send>,
}

impl Writer {
    pub fn new(
        persister: Arc<Persister>,
        database: Database,
        meta: Box<dyn Fn() -> Option<(u64, u64)> + Send>,
    ) -> Self {
        Self {
            persister,
            file: database.file().to_owned(),
            database: Some(database),
            meta,
        }
    }

    /// Commits until the state closes.
    pub fn run(mut self) {
        // Exported at zero from the start, so dashboards and alerts see it.
        counter!("c19_state_persist_failures_total").increment(0);
        let mut last_commit = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let (ops, ticket, closing) = self.next_batch(last_commit);
            let started = Instant::now();
            match self.commit(&ops) {
                Ok(()) => {
                    last_commit = Instant::now();
                    histogram!("c19_state_persist_commit_seconds")
                        .record(started.elapsed().as_secs_f64());
                    counter!("c19_state_persist_commits_total").increment(1);
                    let mut recovered = false;
                    self.persister.progress.send_modify(|progress| {
                        recovered = progress.failure.take().is_some();
                        progress.durable = progress.durable.max(ticket);
                    });
                    if recovered {
                        tracing::info!("persistence: commits succeed again");
                        health::ready("state");
                    }
                    backoff = FIRST_BACKOFF;
                    if closing {
                        break;
                    }
                }
                Err(message) => {
                    counter!("c19_state_persist_failures_total").increment(1);
                    self.requeue(ops);
                    if backoff == FIRST_BACKOFF {
                        tracing::error!(%message, "persistence: a commit failed; writes are refused until one succeeds");
                    }
                    health::waiting("state", &message);
                    self.persister.progress.send_modify(|progress| {
                        progress.failure = Some(Arc::from(message.as_str()));
                    });
                    if closing {
                        tracing::error!(%message, "persistence: the last commit failed; changes since the last successful one are not on disk");
                        break;
                    }
                    self.pause(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        // Dropping the database closes the file cleanly.
        self.database = None;
    }

    /// Waits for work and takes it: the pending operations, the ticket they reach and
    /// whether the state is closing (then the commit is the last one).
    fn next_batch(&self, last_commit: Instant) -> (Ops, u64, bool) {
        let persister = &self.persister;
        let mut pending = persister.lock();
        while pending.ops.is_empty() && !pending.closing {
            pending = persister
                .wake
                .wait(pending)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if persister.sync == SyncMode::Interval {
            let due = last_commit + persister.interval;
            while !pending.closing {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                pending = persister
                    .wake
                    .wait_timeout(pending, due - now)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        }
        let ops = std::mem::take(&mut pending.ops);
        // The last commit also stores the bookkeeping, with or without entries.
        (ops, pending.ticket, pending.closing)
    }

    /// Commits `ops`, reopening the file first if a failure closed it.
    fn commit(&mut self, ops: &Ops) -> Result<(), String> {
        if self.database.is_none() {
            self.database = Some(Database::reopen(&self.file).map_err(|error| error.to_string())?);
        }
        let Some(database) = &self.database else {
            return Err("persistence: the database is not open".to_owned());
        };
        let result = database.commit(ops, (self.meta)());
        if result.is_err() {
            // redb refuses everything after an I/O error until the file is reopened.
            self.database = None;
        }
        result.map_err(|error| error.to_string())
    }

    /// Puts back operations of a failed commit, unless newer ones replaced them.
    fn requeue(&self, ops: Ops) {
        let mut pending = self.persister.lock();
        for (key, op) in ops {
            pending.ops.entry(key).or_insert(op);
        }
    }

    /// Waits `backoff`, or less if the state closes.
    fn pause(&self, backoff: Duration) {
        let pending = self.persister.lock();
        if !pending.closing {
            let _ = self.persister.wake.wait_timeout(pending, backoff);
        }
    }
}
