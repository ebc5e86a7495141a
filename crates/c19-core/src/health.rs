//! Process-wide readiness of the agent's components, for `/readyz`.
//!
//! [`crate::run_until`] registers the components it starts (`state`, `agent`,
//! `connection`) as pending and marks the state ready once it is initialised and seeded.
//! A layer that listens marks itself ready with [`ready`] once it can serve (the
//! connection: after its first sync with a peer), says what it still waits for with
//! [`waiting`], and marks itself not ready with [`unready`] when it stops. Like
//! `tracing`'s global dispatcher, this is one registry per process: one process runs one
//! agent.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

/// What the registry holds about one component.
#[derive(Debug, Clone, Default)]
struct Component {
    ready: bool,
    /// What it waits for, while not ready, when it said so.
    waiting: Option<String>,
}

static COMPONENTS: Mutex<BTreeMap<String, Component>> = Mutex::new(BTreeMap::new());

fn components() -> MutexGuard<'static, BTreeMap<String, Component>> {
    // The map stays consistent even if a holder panicked: every update is one insert.
    COMPONENTS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn set(component: &str, ready: bool, waiting: Option<String>) {
    components().insert(component.to_owned(), Component { ready, waiting });
}

/// Registers `component` as started but not ready yet.
pub fn pending(component: &str) {
    set(component, false, None);
}

/// Marks `component` not ready, waiting for `reason` (e.g. `first sync with a peer`),
/// which `/readyz` names (registering it if needed).
pub fn waiting(component: &str, reason: &str) {
    set(component, false, Some(reason.to_owned()));
}

/// Marks `component` ready (registering it if needed).
pub fn ready(component: &str) {
    set(component, true, None);
}

/// Marks `component` not ready (it stopped, or is shutting down).
pub fn unready(component: &str) {
    if let Some(entry) = components().get_mut(component) {
        entry.ready = false;
        entry.waiting = None;
    }
}

/// Removes `component` from the list (a simulated agent that is gone).
pub fn forget(component: &str) {
    components().remove(component);
}

/// Whether `component` is registered and ready.
pub fn is_component_ready(component: &str) -> bool {
    components().get(component).is_some_and(|entry| entry.ready)
}

/// Forgets every component (a new run starts).
pub fn reset() {
    components().clear();
}

/// Each registered component and whether it is ready.
pub fn snapshot() -> BTreeMap<String, bool> {
    components()
        .iter()
        .map(|(name, entry)| (name.clone(), entry.ready))
        .collect()
}

/// What the components that are not ready wait for, as they said with [`waiting`], in
/// the order of their names and joined by `; `; `None` when none said.
pub fn waiting_for() -> Option<String> {
    let reasons: Vec<String> = components()
        .values()
        .filter(|entry| !entry.ready)
        .filter_map(|entry| entry.waiting.clone())
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Whether at least one component is registered and all of them are ready.
pub fn is_ready() -> bool {
    let components = components();
    !components.is_empty() && components.values().all(|entry| entry.ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test touches the process-wide registry, so no other test races it.
    #[test]
    fn waiting_names_the_reason_until_ready() {
        reset();
        pending("state");
        waiting("connection", "first sync with a peer");
        assert!(!is_ready());
        assert_eq!(waiting_for().as_deref(), Some("first sync with a peer"));
        ready("state");
        assert!(!is_ready());
        assert!(is_component_ready("state"));
        assert!(!is_component_ready("connection"));
        ready("connection");
        assert!(is_ready());
        assert_eq!(waiting_for(), None);
        assert_eq!(
            snapshot().into_iter().collect::<Vec<_>>(),
            [("connection".to_owned(), true), ("state".to_owned(), true)]
        );
        unready("connection");
        assert!(!is_ready());
        assert_eq!(waiting_for(), None, "a stopped component waits for nothing");
        reset();
        assert!(!is_ready());
    }
}
