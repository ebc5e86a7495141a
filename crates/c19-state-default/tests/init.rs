//! Configuration, `init`, the data seeder and the background sweep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use c19_core::{LayerContext, SafeState, Shutdown, State, StateConfig};
// Linked for its typetag registration of the `File` seeder.
use c19_data_seeder_file as _;
use common::*;
use serde_json::json;

fn from_config(json: serde_json::Value) -> Result<Box<dyn StateConfig>, serde_json::Error> {
    serde_json::from_value(json)
}

async fn init(config: serde_json::Value) -> Result<SafeState, String> {
    let state = from_config(config).unwrap();
    state
        .build(&LayerContext::new("state", Shutdown::new()))
        .await
        .map_err(|error| error.to_string())
}

#[test]
fn the_config_has_0_1_defaults_and_accepts_numbers_as_strings() {
    let state = from_config(json!({"kind": "Default"})).unwrap();
    let shown = serde_json::to_value(&state).unwrap();
    assert_eq!(
        shown,
        json!({"kind": "Default", "ttl": null, "purge_interval": 60000, "tombstone_ttl": 3600000,
               "watch_buffer": 1024, "max_clock_skew": 30000})
    );
    let state = from_config(
        json!({"kind": "Default", "ttl": "5000", "purge_interval": "100", "tombstone_ttl": "7",
               "watch_buffer": "16", "max_clock_skew": "45000"}),
    )
    .unwrap();
    let shown = serde_json::to_value(&state).unwrap();
    assert_eq!(
        shown,
        json!({"kind": "Default", "ttl": 5000, "purge_interval": 100, "tombstone_ttl": 7,
               "watch_buffer": 16, "max_clock_skew": 45000})
    );
}

#[test]
fn the_config_refuses_unknown_fields_and_a_zero_interval() {
    let error = from_config(json!({"kind": "Default", "tll": 5}))
        .unwrap_err()
        .to_string();
    assert!(error.contains("tll"), "{error}");
    let error = from_config(json!({"kind": "Default", "purge_interval": 0}))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("nonzero") || error.contains("zero"),
        "{error}"
    );
}

#[tokio::test]
async fn init_returns_a_fresh_state_with_the_settings() {
    let config = from_config(json!({"kind": "Default", "ttl": 5000})).unwrap();
    let live = config
        .build(&LayerContext::new("state", Shutdown::new()))
        .await
        .unwrap();
    let other = config
        .build(&LayerContext::new("state", Shutdown::new()))
        .await
        .unwrap();
    other.set(&r#"{"before": {"value": 1}}"#).unwrap();
    assert_eq!(
        live.get(&"before"),
        None,
        "each build is a state of its own"
    );
    set(live.as_ref(), json!({"cat": {"value": "garfield"}}));
    assert_eq!(get(live.as_ref(), "cat").unwrap()["ttl"], 5000);
}

#[tokio::test]
async fn a_good_seed_file_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.json");
    std::fs::write(
        &file,
        r#"{"cat": {"value": "garfield", "ttl": null}, "dog": {"value": {"name": "odie"}}}"#,
    )
    .unwrap();
    let live = init(json!({"kind": "Default", "data_seeder": {"kind": "File", "filename": file}}))
        .await
        .unwrap();
    assert_eq!(value(live.as_ref(), "cat").unwrap(), "garfield");
    assert_eq!(
        value(live.as_ref(), "dog").unwrap(),
        json!({"name": "odie"})
    );
}

#[tokio::test]
async fn a_missing_seed_file_stops_init_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("absent-seed.json");
    let error = init(json!({"kind": "Default", "data_seeder": {"kind": "File", "filename": file}}))
        .await
        .unwrap_err();
    assert!(error.contains("absent-seed.json"), "{error}");
}

#[tokio::test]
async fn a_malformed_seed_file_stops_init_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    for (content, problem) in [
        ("{not json", "not JSON"),
        ("", "empty"),
        ("[1, 2]", "JSON object"),
        (r#"{"cat": {"value": 1, "ttl": "soon"}}"#, r#"key "cat""#),
    ] {
        let file = dir.path().join("bad-seed.json");
        std::fs::write(&file, content).unwrap();
        let error =
            init(json!({"kind": "Default", "data_seeder": {"kind": "File", "filename": file}}))
                .await
                .unwrap_err();
        assert!(
            error.contains("bad-seed.json") && error.contains(problem),
            "{content:?}: {error}"
        );
    }
}

#[tokio::test]
async fn the_background_sweep_runs_every_purge_interval() {
    let live = init(json!({"kind": "Default", "purge_interval": 20, "tombstone_ttl": 0}))
        .await
        .unwrap();
    set(
        live.as_ref(),
        json!({"gone": {"value": 1, "ts": now() - 1000, "ttl": 1}, "deleted": tombstone(now() - 1000), "kept": {"value": 2}}),
    );
    let empty = state();
    set(
        &empty,
        json!({"kept": serde_json::from_slice::<serde_json::Value>(&live.get(&"kept").unwrap()).unwrap()}),
    );
    // Swept when the version equals that of a state that only ever held `kept`.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while live.version() != empty.version() {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
