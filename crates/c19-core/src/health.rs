//! Process-wide readiness of the agent's components, for `/readyz`.
//!
//! [`crate::run_until`] registers the components it starts (`state`, `agent`,
//! `connection`) as pending and marks the state ready once it is initialised and seeded.
//! A layer that listens marks itself ready with [`ready`] once its listener is bound, and
//! not ready with [`unready`] when it stops. Like `tracing`'s global dispatcher, this is
//! one registry per process: one process runs one agent.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

static COMPONENTS: Mutex<BTreeMap<String, bool>> = Mutex::new(BTreeMap::new());

fn components() -> MutexGuard<'static, BTreeMap<String, bool>> {
    // The map stays consistent even if a holder panicked: every update is one insert.
    COMPONENTS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers `component` as started but not ready yet.
pub fn pending(component: &str) {
    components().insert(component.to_owned(), false);
}

/// Marks `component` ready (registering it if needed).
pub fn ready(component: &str) {
    components().insert(component.to_owned(), true);
}

/// Marks `component` not ready (it stopped, or is shutting down).
pub fn unready(component: &str) {
    if let Some(ready) = components().get_mut(component) {
        *ready = false;
    }
}

/// Forgets every component (a new run starts).
pub fn reset() {
    components().clear();
}

/// Each registered component and whether it is ready.
pub fn snapshot() -> BTreeMap<String, bool> {
    components().clone()
}

/// Whether at least one component is registered and all of them are ready.
pub fn is_ready() -> bool {
    let components = components();
    !components.is_empty() && components.values().all(|ready| *ready)
}
