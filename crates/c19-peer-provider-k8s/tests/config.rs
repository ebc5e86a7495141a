//! The provider's configuration as users write it: 0.1 files, new fields, defaults and
//! the errors for bad values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use c19_core::PeerProviderConfig;
use c19_peer_provider_k8s::{K8sPeerProviderConfig, Namespace, PortSpec};
use serde_json::{Value, json};

fn provider(config: Value) -> Result<Box<dyn PeerProviderConfig>, String> {
    serde_json::from_value(config).map_err(|error| error.to_string())
}

#[test]
fn a_0_1_configuration_loads_with_its_defaults() {
    let provider = provider(json!({ "kind": "K8s", "selector": { "app": "c19" } })).unwrap();
    let shown = serde_json::to_value(&provider).unwrap();
    assert_eq!(
        shown,
        json!({ "kind": "K8s", "selector": { "app": "c19" }, "namespace": "default" })
    );
    // No selector at all: every pod of the namespace.
    let provider = provider_of(json!({}));
    assert!(provider.selector.requirements().is_empty());
    assert_eq!(provider.namespace, Namespace::Named("default".into()));
    assert_eq!(provider.port, None);
}

fn provider_of(config: Value) -> K8sPeerProviderConfig {
    serde_json::from_value(config).unwrap()
}

#[test]
fn the_new_fields_load_and_print_back() {
    let config = json!({
        "kind": "K8s",
        "selector": { "app.kubernetes.io/name": "c19", "tier": "cache" },
        "namespace": ":all",
        "port": "c19-peer",
        "field_selector": "spec.nodeName=node-1",
    });
    let shown = serde_json::to_value(provider(config.clone()).unwrap()).unwrap();
    assert_eq!(shown, config);
    let numbered = provider_of(json!({ "port": "4097" }));
    assert_eq!(numbered.port, Some(PortSpec::Number(4097)));
}

#[test]
fn a_selector_string_with_set_based_expressions_loads_and_prints_back() {
    let config = json!({
        "kind": "K8s",
        "selector": "app=c19,tier in (a,b),env notin (dev),team,!legacy",
        "namespace": "default",
    });
    let shown = serde_json::to_value(provider(config.clone()).unwrap()).unwrap();
    assert_eq!(shown, config);
    let loaded = provider_of(json!({ "selector": "app==c19, tier in (a, b)" }));
    assert_eq!(loaded.selector.to_query(), "app=c19,tier in (a,b)");
    assert_eq!(loaded.selector.requirements().len(), 2);
}

#[test]
fn bad_values_are_refused_naming_them() {
    for (config, named) in [
        (
            json!({ "kind": "K8s", "namespace": "" }),
            "invalid namespace ``",
        ),
        (
            json!({ "kind": "K8s", "namespace": "My_Team" }),
            "`My_Team`",
        ),
        (
            json!({ "kind": "K8s", "selector": { "app name": "c19" } }),
            "label key `app name`",
        ),
        (
            json!({ "kind": "K8s", "selector": { "app": "c19!" } }),
            "label value `c19!`",
        ),
        (
            json!({ "kind": "K8s", "selector": "tier in (a,b" }),
            "invalid `selector` `tier in (a,b`: expected `,` or `)`, found the end",
        ),
        (
            json!({ "kind": "K8s", "selector": "app=c19,Bad_Key/x" }),
            "label key `Bad_Key/x` in `selector`",
        ),
        (json!({ "kind": "K8s", "selector": 7 }), "a map of labels"),
        (json!({ "kind": "K8s", "port": 0 }), "invalid port `0`"),
        (json!({ "kind": "K8s", "port": "Peer Port" }), "`Peer Port`"),
        (
            json!({ "kind": "K8s", "field_selector": "nodeName" }),
            "`nodeName`",
        ),
        (
            json!({ "kind": "K8s", "selectors": { "app": "c19" } }),
            "unknown field `selectors`",
        ),
    ] {
        let error = provider(config.clone())
            .err()
            .unwrap_or_else(|| panic!("{config} loaded"));
        assert!(error.contains(named), "{config}: {error}");
    }
}
