//! Times each written key's spread: every agent's state tells when its head moves, and
//! each move is checked against the keys still on their way, so arrival times are exact
//! on the virtual clock, without polling.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use c19_core::SafeState;
use tokio::{task::JoinHandle, time::Instant};

/// One key on its way.
#[derive(Debug)]
struct Spread {
    written: Instant,
    /// Which agents hold it.
    holders: Vec<bool>,
    held: usize,
}

#[derive(Debug, Default)]
struct Book {
    /// Keys still on their way, by name.
    open: BTreeMap<String, Spread>,
    /// Times until each finished key was on every agent, in seconds.
    done: Vec<f64>,
}

/// The keys being timed, shared by the watchers of every agent.
#[derive(Debug, Clone)]
pub struct Tracker {
    agents: usize,
    book: Arc<Mutex<Book>>,
}

impl Tracker {
    /// A tracker for a cluster of `agents`.
    pub fn new(agents: usize) -> Self {
        Self {
            agents,
            book: Arc::default(),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts timing `key`, written now on agent `by`.
    pub fn written(&self, key: &str, by: usize) {
        let mut holders = vec![false; self.agents];
        holders[by] = true;
        let spread = Spread {
            written: Instant::now(),
            holders,
            held: 1,
        };
        let mut book = self.book();
        if self.agents == 1 {
            book.done.push(0.0);
        } else {
            book.open.insert(key.to_owned(), spread);
        }
    }

    /// Checks the keys on their way against agent `index`'s state.
    fn check(&self, index: usize, state: &SafeState) {
        let mut book = self.book();
        let now = Instant::now();
        let mut finished = Vec::new();
        for (key, spread) in &mut book.open {
            if spread.holders[index] || state.get(key).is_none() {
                continue;
            }
            spread.holders[index] = true;
            spread.held += 1;
            if spread.held == spread.holders.len() {
                finished.push((key.clone(), (now - spread.written).as_secs_f64()));
            }
        }
        for (key, seconds) in finished {
            book.open.remove(&key);
            book.done.push(seconds);
        }
    }

    /// Watches agent `index`'s `state` until the task is aborted.
    pub fn watch(&self, index: usize, state: SafeState) -> Option<JoinHandle<()>> {
        let mut heads = state.watch_head()?;
        let tracker = self.clone();
        Some(tokio::spawn(async move {
            while heads.changed().await.is_ok() {
                tracker.check(index, &state);
            }
        }))
    }

    /// How many keys are still on their way.
    pub fn open(&self) -> usize {
        self.book().open.len()
    }

    /// The spread times of the keys that reached every agent, sorted.
    pub fn times(&self) -> Vec<f64> {
        let mut done = self.book().done.clone();
        done.sort_by(f64::total_cmp);
        done
    }
}
