//! The provider's configuration as users write it: defaults, numbers as strings, the
//! errors for bad values, and the `kind: Dns` registration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use c19_core::PeerProviderConfig;
use c19_peer_provider_dns::{
    DEFAULT_REFRESH_INTERVAL_MS, DEFAULT_TIMEOUT_MS, DnsPeerProviderConfig, NameServer,
};
use common::{DnsServer, context, peers, until};
use serde_json::{Value, json};

fn kind(config: Value) -> Result<Box<dyn PeerProviderConfig>, String> {
    serde_json::from_value(config).map_err(|error| error.to_string())
}

fn dns(config: Value) -> Result<DnsPeerProviderConfig, String> {
    serde_json::from_value(config).map_err(|error| error.to_string())
}

#[test]
fn a_minimal_configuration_loads_with_its_defaults() {
    let config =
        kind(json!({ "kind": "Dns", "names": ["c19-headless.default.svc.cluster.local"] }))
            .unwrap();
    assert_eq!(
        serde_json::to_value(&config).unwrap(),
        json!({
            "kind": "Dns",
            "names": ["c19-headless.default.svc.cluster.local"],
            "refresh_interval": DEFAULT_REFRESH_INTERVAL_MS,
            "timeout": DEFAULT_TIMEOUT_MS,
        })
    );
    let config = dns(json!({ "names": ["c19.test"] })).unwrap();
    assert_eq!(config.port, None);
    assert!(config.nameservers.is_empty());
}

#[test]
fn every_field_loads_and_numbers_may_be_strings() {
    let config = dns(json!({
        "names": ["c19.test", "_c19._tcp.c19.test"],
        "refresh_interval": "250",
        "timeout": "100",
        "port": "4097",
        "nameservers": ["127.0.0.1:5353", "10.0.0.10"],
    }))
    .unwrap();
    assert_eq!(config.refresh_interval.get(), 250);
    assert_eq!(config.timeout.get(), 100);
    assert_eq!(config.port.map(|port| port.get()), Some(4097));
    assert_eq!(
        config.nameservers,
        [
            NameServer("127.0.0.1:5353".parse().unwrap()),
            NameServer("10.0.0.10:53".parse().unwrap())
        ]
    );
    assert!(config.names[1].is_srv());
    let numbers =
        dns(json!({ "names": ["c19.test"], "refresh_interval": 250, "port": 4097 })).unwrap();
    assert_eq!(numbers.refresh_interval.get(), 250);
    // Printed back as written, numbers as numbers.
    let shown = serde_json::to_value(&config).unwrap();
    assert_eq!(shown["port"], json!(4097));
    assert_eq!(
        shown["nameservers"],
        json!(["127.0.0.1:5353", "10.0.0.10:53"])
    );
}

#[test]
fn the_yaml_of_the_docs_loads() {
    let yaml = r#"
kind: Dns
names: ["c19-headless.default.svc.cluster.local", "_c19._tcp.c19.default.svc.cluster.local"]
refresh_interval: 5000
port: "4097"   # quoted, as from an environment variable
"#;
    let config: Box<dyn PeerProviderConfig> = serde_saphyr::from_str(yaml).unwrap();
    let shown = serde_json::to_value(&config).unwrap();
    assert_eq!(shown["port"], json!(4097));
    assert_eq!(
        shown["names"][1],
        json!("_c19._tcp.c19.default.svc.cluster.local")
    );
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    let error =
        kind(json!({ "kind": "Dns", "names": ["c19.test"], "refresh_intervall": 5 })).unwrap_err();
    assert!(error.contains("refresh_intervall"), "{error}");
}

#[test]
fn bad_values_are_refused_naming_them() {
    for (config, expected) in [
        (json!({}), "missing field `names`"),
        (json!({ "names": [] }), "`names` is empty"),
        (
            json!({ "names": ["10.0.0.1"] }),
            "names[0]: invalid DNS name `10.0.0.1`",
        ),
        (
            json!({ "names": ["c19.test", "a..b"] }),
            "names[1]: invalid DNS name `a..b`",
        ),
        (
            json!({ "names": ["c19.test"], "nameservers": ["dns.example"] }),
            "nameservers[0]: invalid name server `dns.example`",
        ),
        (
            json!({ "names": ["c19.test"], "refresh_interval": 0 }),
            "refresh_interval",
        ),
        (
            json!({ "names": ["c19.test"], "timeout": "soon" }),
            "timeout",
        ),
        (json!({ "names": ["c19.test"], "port": 0 }), "port"),
        (json!({ "names": ["c19.test"], "port": "70000" }), "port"),
    ] {
        // With the path of the field, as the agent reports configuration errors.
        let error = serde_path_to_error::deserialize::<_, DnsPeerProviderConfig>(config.clone())
            .expect_err(&config.to_string())
            .to_string();
        assert!(error.contains(expected), "{config}: {error}");
    }
}

#[tokio::test]
async fn the_dns_kind_is_registered_and_builds_a_provider() {
    let server = DnsServer::start().await;
    server.set_ips("c19.test", &["10.0.0.1", "10.0.0.2"]);
    let config = kind(json!({
        "kind": "Dns",
        "names": ["c19.test"],
        "refresh_interval": "50",
        "port": 4097,
        "nameservers": [server.addr().to_string()],
    }))
    .unwrap();
    let cx = context();
    let provider = config.build(&cx).await.unwrap();
    until("the first round", || provider.discovered()).await;
    // No POD_IP in the tests' environment: nothing is left out.
    assert_eq!(peers(&*provider), ["10.0.0.1:4097", "10.0.0.2:4097"]);
    cx.shutdown().cancel();
}
