//! `persistence`: the state survives a close and reopen, through a real database file,
//! and start-up faults name the path and the problem.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use c19_core::{LayerContext, SafeState, Shutdown, StateConfig};
use c19_data_seeder_file as _;
use common::*;
use serde_json::json;

fn config(dir: &Path, extra: serde_json::Value) -> Box<dyn StateConfig> {
    let mut config = json!({"kind": "Default", "persistence": {"path": dir}});
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    serde_json::from_value(config).unwrap()
}

async fn open(dir: &Path) -> Result<SafeState, String> {
    open_with(dir, json!({})).await
}

async fn open_with(dir: &Path, extra: serde_json::Value) -> Result<SafeState, String> {
    config(dir, extra)
        .build(&LayerContext::new("state", Shutdown::new()))
        .await
        .map_err(|error| error.to_string())
}

#[tokio::test]
async fn values_and_tombstones_survive_a_restart_and_ttls_keep_their_ts() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path()).await.unwrap();
    set(
        state.as_ref(),
        json!({"cat": {"value": "garfield"}, "dog": {"value": 1}}),
    );
    state
        .set(&json!({"old": {"value": 1, "ts": 1000, "ttl": 10}}).to_string())
        .unwrap();
    let short = now();
    set(
        state.as_ref(),
        json!({"brief": {"value": 2, "ts": short, "ttl": 600_000}}),
    );
    state.delete(&"dog").unwrap();
    state.flushed().await.unwrap();
    state.close().await;
    drop(state);

    let state = open(dir.path()).await.unwrap();
    assert_eq!(get(state.as_ref(), "cat").unwrap()["value"], "garfield");
    assert_eq!(get(state.as_ref(), "dog"), None, "the delete came back");
    // The tombstone is still held, so an older value from a peer loses to it.
    state
        .set(&json!({"dog": {"value": "stale", "ts": 5}}).to_string())
        .unwrap();
    assert_eq!(get(state.as_ref(), "dog"), None);
    assert_eq!(
        get(state.as_ref(), "brief").unwrap()["ts"],
        short,
        "the ts was reset"
    );
    assert_eq!(
        get(state.as_ref(), "old"),
        None,
        "an expired value came back"
    );
    state.close().await;
}

#[tokio::test]
async fn the_same_data_gives_the_same_version_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path()).await.unwrap();
    for i in 0..200 {
        set(state.as_ref(), json!({format!("key-{i}"): {"value": i}}));
    }
    state.delete(&"key-7").unwrap();
    state.flushed().await.unwrap();
    let version = state.version();
    state.close().await;
    drop(state);
    let state = open(dir.path()).await.unwrap();
    assert_eq!(state.version(), version);
    state.close().await;
}

#[tokio::test]
async fn a_second_state_on_the_same_directory_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path()).await.unwrap();
    let error = open(dir.path()).await.unwrap_err();
    assert!(error.contains("state.redb"), "{error}");
    assert!(error.contains("in use by another process"), "{error}");
    first.close().await;
}

#[tokio::test]
async fn a_damaged_file_is_a_start_up_error_or_with_resync_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path()).await.unwrap();
    set(state.as_ref(), json!({"cat": {"value": 1}}));
    state.flushed().await.unwrap();
    state.close().await;
    drop(state);
    let file = dir.path().join("state.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    for byte in bytes.iter_mut().skip(64) {
        *byte ^= 0x5a;
    }
    std::fs::write(&file, &bytes).unwrap();

    let error = open(dir.path()).await.unwrap_err();
    assert!(error.contains(&file.display().to_string()), "{error}");
    assert!(error.contains("damaged"), "{error}");
    assert!(error.contains("on_corruption: resync"), "{error}");

    let state = open_with(
        dir.path(),
        json!({"persistence": {"path": dir.path(), "on_corruption": "resync"}}),
    )
    .await
    .unwrap();
    assert_eq!(state.get(&"cat"), None);
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("state.redb.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file was not kept aside");
    state.close().await;
}

#[tokio::test]
async fn a_file_that_is_no_database_is_a_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("state.redb"),
        b"these are not the pages you want",
    )
    .unwrap();
    let error = open(dir.path()).await.unwrap_err();
    assert!(error.contains("damaged or not a c19 database"), "{error}");
}

#[tokio::test]
async fn the_seeder_fills_only_keys_the_database_does_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"{"cat": {"value": "seeded"}, "dog": {"value": "seeded"}}"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    let seeded = json!({"data_seeder": {"kind": "File", "filename": seed}});
    let state = open_with(&data, seeded.clone()).await.unwrap();
    set(state.as_ref(), json!({"cat": {"value": "changed"}}));
    state.delete(&"dog").unwrap();
    state.flushed().await.unwrap();
    state.close().await;
    drop(state);

    let state = open_with(&data, seeded).await.unwrap();
    assert_eq!(get(state.as_ref(), "cat").unwrap()["value"], "changed");
    assert_eq!(get(state.as_ref(), "dog"), None);
    state.close().await;
}

#[tokio::test]
async fn the_config_refuses_an_unknown_sync_mode_and_field() {
    let error = serde_json::from_value::<Box<dyn StateConfig>>(
        json!({"kind": "Default", "persistence": {"path": "/tmp/x", "sync": "sometimes"}}),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("sometimes") && error.contains("always"),
        "{error}"
    );
    let error = serde_json::from_value::<Box<dyn StateConfig>>(
        json!({"kind": "Default", "persistence": {"path": "/tmp/x", "synk": "always"}}),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("synk"), "{error}");
    let state = serde_json::from_value::<Box<dyn StateConfig>>(
        json!({"kind": "Default", "persistence": {"path": "/tmp/x", "sync": "interval", "sync_interval": "250"}}),
    )
    .unwrap();
    let shown = serde_json::to_value(&state).unwrap();
    assert_eq!(
        shown["persistence"],
        json!({"path": "/tmp/x", "sync": "interval", "sync_interval": 250, "on_corruption": "fail"})
    );
}
