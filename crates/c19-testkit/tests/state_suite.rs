//! The State suite on MemState, on a state without the optional parts, and on broken
//! states, which it must fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use c19_core::{
    Applied, Diff, LayerContext, SafeState, Shutdown, State, StateConfig, StateError, StateValue,
};
use c19_testkit::{MemState, MemStateConfig, conformance::state};
use futures::FutureExt;

#[tokio::test]
async fn mem_state_keeps_the_state_contract() {
    let report = state::run(|| async { MemState::shared().1 }).await;
    assert!(report.skipped.is_empty(), "{report:?}");
    assert!(report.checked.contains(&"exchanges"), "{report:?}");
}

#[tokio::test]
async fn mem_state_built_from_its_config_keeps_the_state_contract() {
    let config: Box<dyn StateConfig> = serde_json::from_str(r#"{"kind": "Mem"}"#).unwrap();
    let config = &config;
    state::run(|| async move {
        let cx = LayerContext::new("state", Shutdown::new());
        config.build(&cx).await.unwrap()
    })
    .await;
    let _ = MemStateConfig::default();
}

#[tokio::test]
async fn mem_state_without_exchanges_passes_with_them_skipped() {
    let report =
        state::run(|| async { Arc::new(MemState::new().without_exchanges()) as SafeState }).await;
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(
        report.skipped[0].starts_with("exchanges: skipped"),
        "{report:?}"
    );
}

/// Only the required methods of `State`, delegated to a MemState: no subscriptions,
/// no exchanges, no `watch_head`, no points said.
#[derive(Debug, Default)]
struct Minimal(MemState);

impl State for Minimal {
    fn version(&self) -> String {
        self.0.version()
    }
    fn set(&self, value: &dyn StateValue) -> Result<Applied, StateError> {
        let applied = self.0.set(value)?;
        Ok(Applied::new(applied.applied, applied.ignored))
    }
    fn get(&self, key: &dyn StateValue) -> Option<Bytes> {
        self.0.get(key)
    }
    fn delete(&self, key: &dyn StateValue) -> Result<bool, StateError> {
        self.0.delete(key)
    }
    fn diff(&self, since: u64, max_bytes: usize) -> Result<Diff, StateError> {
        self.0.diff(since, max_bytes)
    }
    fn head(&self) -> u64 {
        self.0.head()
    }
    fn get_root(&self) -> Bytes {
        self.0.get_root()
    }
}

#[tokio::test]
async fn a_state_without_the_optional_parts_passes_with_them_skipped() {
    let report = state::run(|| async { Arc::new(Minimal::default()) as SafeState }).await;
    assert_eq!(report.skipped.len(), 2, "{report:?}");
    assert!(
        report.skipped[0].starts_with("subscriptions: skipped (this state does not support"),
        "{report:?}"
    );
    assert!(
        report.skipped[1].starts_with("exchanges: skipped"),
        "{report:?}"
    );
}

/// A state whose head moves on a no-op merge (the echo rule 3 forbids).
#[derive(Debug, Default)]
struct Echoing {
    inner: MemState,
    extra: AtomicU64,
}

impl State for Echoing {
    fn version(&self) -> String {
        self.inner.version()
    }
    fn set(&self, value: &dyn StateValue) -> Result<Applied, StateError> {
        let applied = self.inner.set(value)?;
        if applied.applied == 0 {
            self.extra.fetch_add(1, Ordering::SeqCst);
        }
        Ok(applied)
    }
    fn get(&self, key: &dyn StateValue) -> Option<Bytes> {
        self.inner.get(key)
    }
    fn delete(&self, key: &dyn StateValue) -> Result<bool, StateError> {
        self.inner.delete(key)
    }
    fn diff(&self, since: u64, max_bytes: usize) -> Result<Diff, StateError> {
        self.inner.diff(since, max_bytes)
    }
    fn head(&self) -> u64 {
        self.inner.head() + self.extra.load(Ordering::SeqCst)
    }
    fn get_root(&self) -> Bytes {
        self.inner.get_root()
    }
}

/// A state that applies the good entries of a batch before it finds a bad one.
#[derive(Debug, Default)]
struct Partial(MemState);

impl State for Partial {
    fn version(&self) -> String {
        self.0.version()
    }
    fn set(&self, value: &dyn StateValue) -> Result<Applied, StateError> {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(value.as_bytes())
                .map_err(|error| StateError::Invalid(error.to_string()))?;
        let mut applied = Applied::default();
        for (key, entry) in map {
            let one = serde_json::json!({ key: entry }).to_string();
            let result = self.0.set(&one)?;
            applied = Applied::new(
                applied.applied + result.applied,
                applied.ignored + result.ignored,
            );
        }
        Ok(applied)
    }
    fn get(&self, key: &dyn StateValue) -> Option<Bytes> {
        self.0.get(key)
    }
    fn delete(&self, key: &dyn StateValue) -> Result<bool, StateError> {
        self.0.delete(key)
    }
    fn diff(&self, since: u64, max_bytes: usize) -> Result<Diff, StateError> {
        self.0.diff(since, max_bytes)
    }
    fn head(&self) -> u64 {
        self.0.head()
    }
    fn get_root(&self) -> Bytes {
        self.0.get_root()
    }
}

/// Runs the suite on `make`'s states; the panic message if it failed.
async fn failure<F, Fut>(make: F) -> Option<String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = SafeState>,
{
    let outcome = AssertUnwindSafe(state::run(make)).catch_unwind().await;
    let panic = outcome.err()?;
    Some(
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_state_whose_head_moves_on_a_no_op_merge_fails_the_suite() {
    let message = failure(|| async { Arc::new(Echoing::default()) as SafeState })
        .await
        .expect("the suite passed a state that echoes no-op merges");
    assert!(message.contains("rule 3"), "{message}");
}

#[tokio::test]
async fn a_state_that_applies_half_a_bad_batch_fails_the_suite() {
    let message = failure(|| async { Arc::new(Partial::default()) as SafeState })
        .await
        .expect("the suite passed a state that applies half of a bad batch");
    assert!(message.contains("rule 2"), "{message}");
}
