//! The Default state against the state conformance suite of `c19-testkit`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use c19_core::{LayerContext, Shutdown, StateConfig};
use c19_state_default::DefaultStateConfig;
use c19_testkit::conformance::state;

#[tokio::test]
async fn the_default_state_keeps_the_state_contract() {
    let shutdown = Shutdown::new();
    let config = DefaultStateConfig::default();
    let report = state::run(|| {
        let (config, cx) = (&config, LayerContext::new("state", shutdown.child_token()));
        async move { config.build(&cx).await.unwrap() }
    })
    .await;
    shutdown.cancel();
    assert!(report.skipped.is_empty(), "{report:?}");
}

#[tokio::test]
async fn the_default_state_from_yaml_keeps_the_state_contract() {
    let shutdown = Shutdown::new();
    let config: Box<dyn StateConfig> =
        serde_json::from_str(r#"{"kind": "Default", "ttl": null, "purge_interval": 100}"#).unwrap();
    let report = state::run(|| {
        let (config, cx) = (&config, LayerContext::new("state", shutdown.child_token()));
        async move { config.build(&cx).await.unwrap() }
    })
    .await;
    shutdown.cancel();
    assert!(report.skipped.is_empty(), "{report:?}");
}
