//! The provider against scripted API-server scenarios: each script plays the list and
//! watch responses a real API server would send (real `Pod` JSON) and asserts the
//! peer list that results.
//!
//! The clock is paused: back-off sleeps pass instantly once everything else waits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use c19_core::PeerProvider;
use c19_peer_provider_k8s::Identity;
use common::*;
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn the_initial_list_offers_only_running_ready_pods_other_than_its_own() {
    let (provider, mut api, shutdown) = start(json!({ "selector": { "app": "c19" } })).await;
    let asked = api
        .list(
            "10",
            &[
                pod("a", "10.0.0.1", 1),
                pod("b", "10.0.0.2", 2),
                pod("self", "10.0.0.3", 3),
                phase(pod("pending", "10.0.0.4", 4), "Pending"),
                ready(pod("unready", "10.0.0.5", 5), false),
                deleting(pod("leaving", "10.0.0.6", 6)),
                no_ip(pod("starting", "10.0.0.7", 7)),
                phase(pod("done", "10.0.0.8", 8), "Succeeded"),
            ],
        )
        .await;
    assert_eq!(asked.path, "/api/v1/namespaces/default/pods");
    assert_eq!(
        asked.query.get("labelSelector").map(String::as_str),
        Some("app=c19")
    );
    wait_for_peers(&provider, &["10.0.0.1", "10.0.0.2"]).await;
    // Its own pod is no peer, but the provider says where peers reach it.
    assert_eq!(
        provider.itself().map(|own| own.to_string()).as_deref(),
        Some("10.0.0.3")
    );
    // Then it watches from the list's resourceVersion.
    api.watch("10", &[]).await;
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn pods_added_becoming_ready_losing_readiness_and_deleted() {
    let (provider, mut api, shutdown) = start(json!({ "selector": { "app": "c19" } })).await;
    api.list("10", &[pod("a", "10.0.0.1", 5)]).await;
    wait_for_peers(&provider, &["10.0.0.1"]).await;

    // A new pod appears, not ready yet: not a peer.
    let c = pod("c", "10.0.0.3", 11);
    api.watch("10", &[event("ADDED", &ready(c.clone(), false))])
        .await;
    // The next watch resumes from the last event: proof the event was consumed.
    api.watch("11", &[event("MODIFIED", &at(c.clone(), 12))])
        .await;
    wait_for_peers(&provider, &["10.0.0.1", "10.0.0.3"]).await;

    // `a` loses readiness: no longer offered.
    api.watch(
        "12",
        &[event("MODIFIED", &ready(pod("a", "10.0.0.1", 13), false))],
    )
    .await;
    wait_for_peers(&provider, &["10.0.0.3"]).await;

    // `c` is being deleted (graceful termination), then gone; `a` is ready again.
    api.watch("13", &[event("MODIFIED", &deleting(at(c.clone(), 14)))])
        .await;
    wait_for_peers(&provider, &[]).await;
    api.watch(
        "14",
        &[
            event("DELETED", &deleting(at(c, 15))),
            event("MODIFIED", &pod("a", "10.0.0.1", 16)),
        ],
    )
    .await;
    wait_for_peers(&provider, &["10.0.0.1"]).await;

    // Its own pod never shows up, whatever happens to it.
    api.watch("16", &[event("ADDED", &pod("self", "10.0.0.9", 17))])
        .await;
    api.watch("17", &[]).await;
    assert_eq!(peers(&provider), ["10.0.0.1"]);
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_410_gone_mid_watch_is_followed_by_a_relist() {
    let (provider, mut api, shutdown) = start(json!({ "selector": { "app": "c19" } })).await;
    api.list("10", &[pod("a", "10.0.0.1", 1), pod("b", "10.0.0.2", 2)])
        .await;
    wait_for_peers(&provider, &["10.0.0.1", "10.0.0.2"]).await;

    // A pod arrives, then the watch expires: events in between are lost.
    api.watch("10", &[event("ADDED", &pod("c", "10.0.0.3", 11)), gone()])
        .await;
    // The watcher lists again; meanwhile `b` and `c` went away and `d` came.
    let asked = api
        .list("20", &[pod("a", "10.0.0.1", 1), pod("d", "10.0.0.4", 19)])
        .await;
    assert_eq!(
        asked.query.get("labelSelector").map(String::as_str),
        Some("app=c19")
    );
    wait_for_peers(&provider, &["10.0.0.1", "10.0.0.4"]).await;
    // And it watches on from the new list.
    api.watch("20", &[event("ADDED", &pod("e", "10.0.0.5", 21))])
        .await;
    wait_for_peers(&provider, &["10.0.0.1", "10.0.0.4", "10.0.0.5"]).await;
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn an_api_server_down_at_start_is_retried() {
    let (provider, mut api, shutdown) = start(json!({})).await;
    // Connection refused, then an overloaded server: no peers, no failure.
    api.next().await.refuse();
    api.next().await.status(503, "ServiceUnavailable");
    api.next().await.refuse();
    assert!(peers(&provider).is_empty());
    // It comes up: the retry lists the pods.
    let asked = api.list("7", &[pod("a", "10.0.0.1", 1)]).await;
    assert_eq!(asked.path, "/api/v1/namespaces/default/pods");
    assert_eq!(asked.query.get("labelSelector"), None);
    wait_for_peers(&provider, &["10.0.0.1"]).await;
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn an_api_server_down_mid_watch_keeps_the_known_peers_then_catches_up() {
    let (provider, mut api, shutdown) = start(json!({ "selector": { "app": "c19" } })).await;
    api.list("10", &[pod("a", "10.0.0.1", 1), pod("b", "10.0.0.2", 2)])
        .await;
    wait_for_peers(&provider, &["10.0.0.1", "10.0.0.2"]).await;

    // The watch ends and the server is down while it tries to resume.
    api.watch("10", &[]).await;
    for _ in 0..3 {
        let call = api.next().await;
        assert!(
            call.is_watch(),
            "expected a watch retry, got {}",
            call.request.uri()
        );
        call.refuse();
    }
    // During the outage the last known peers stay on offer.
    assert_eq!(peers(&provider), ["10.0.0.1", "10.0.0.2"]);

    // The server is back, but its watch cache moved on: 410, then a fresh list.
    api.watch("10", &[gone()]).await;
    api.list("30", &[pod("b", "10.0.0.2", 2), pod("c", "10.0.0.3", 25)])
        .await;
    wait_for_peers(&provider, &["10.0.0.2", "10.0.0.3"]).await;
    api.watch("30", &[event("DELETED", &pod("b", "10.0.0.2", 31))])
        .await;
    wait_for_peers(&provider, &["10.0.0.3"]).await;
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_refused_list_is_retried_until_the_role_is_granted() {
    let (provider, mut api, shutdown) = start(json!({})).await;
    api.next().await.status(403, "Forbidden");
    api.next().await.status(403, "Forbidden");
    api.list("3", &[pod("a", "10.0.0.1", 1)]).await;
    wait_for_peers(&provider, &["10.0.0.1"]).await;
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn named_ports_every_namespace_and_field_selectors() {
    let identity = Identity::named("self", Some("team-a"));
    let (provider, mut api, shutdown) = start_as(
        json!({
            "selector": { "app": "c19", "app.kubernetes.io/part-of": "shop" },
            "namespace": ":all",
            "port": "c19-peer",
            "field_selector": "spec.nodeName=node-1",
        }),
        identity,
    )
    .await;
    let asked = api
        .list(
            "10",
            &[
                with_port(
                    in_namespace(pod("a", "10.0.0.1", 1), "team-a"),
                    "c19-peer",
                    4100,
                ),
                with_port(
                    in_namespace(pod("b", "fd00::2", 2), "team-b"),
                    "c19-peer",
                    4200,
                ),
                // Same name as this agent, other namespace: a peer.
                with_port(
                    in_namespace(pod("self", "10.0.0.3", 3), "team-b"),
                    "c19-peer",
                    4300,
                ),
                with_port(
                    in_namespace(pod("self", "10.0.0.4", 4), "team-a"),
                    "c19-peer",
                    4400,
                ),
                // No such port: skipped.
                with_port(
                    in_namespace(pod("other", "10.0.0.5", 5), "team-a"),
                    "http",
                    80,
                ),
            ],
        )
        .await;
    assert_eq!(asked.path, "/api/v1/pods");
    assert_eq!(
        asked.query.get("labelSelector").map(String::as_str),
        Some("app=c19,app.kubernetes.io/part-of=shop")
    );
    assert_eq!(
        asked.query.get("fieldSelector").map(String::as_str),
        Some("spec.nodeName=node-1")
    );
    wait_for_peers(
        &provider,
        &["10.0.0.1:4100", "10.0.0.3:4300", "[fd00::2]:4200"],
    )
    .await;
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_numbered_port_and_an_identity_known_by_ip() {
    let identity = Identity::with_ip("10.0.0.2".parse().unwrap());
    let (provider, mut api, shutdown) =
        start_as(json!({ "namespace": "team", "port": "4097" }), identity).await;
    let asked = api
        .list(
            "10",
            &[
                pod("a", "10.0.0.1", 1),
                pod("b", "10.0.0.2", 2),
                pod("c", "10.0.0.3", 3),
            ],
        )
        .await;
    assert_eq!(asked.path, "/api/v1/namespaces/team/pods");
    wait_for_peers(&provider, &["10.0.0.1:4097", "10.0.0.3:4097"]).await;
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_watch() {
    let (provider, mut api, shutdown) = start(json!({})).await;
    api.list("1", &[pod("a", "10.0.0.1", 1)]).await;
    wait_for_peers(&provider, &["10.0.0.1"]).await;
    let watch = api.next().await;
    shutdown.cancel();
    // What arrives after shutdown is not applied, and nothing is asked any more
    // (a running watcher would resume the watch at once).
    watch.events(&[event("ADDED", &pod("b", "10.0.0.2", 2))]);
    assert!(
        api.quiet(std::time::Duration::from_secs(600)).await,
        "a request after shutdown"
    );
    assert_eq!(peers(&provider), ["10.0.0.1"]);
}

#[tokio::test(start_paused = true)]
async fn the_retries_of_a_failing_list_back_off_exponentially() {
    let (provider, mut api, shutdown) = start(json!({})).await;
    let start = tokio::time::Instant::now();
    for _ in 0..6 {
        api.next().await.refuse();
    }
    // Five waits of at least 0.8, 1.6, 3.2, 6.4 and 12.8 s (plus jitter) on the paused
    // clock; retrying at a steady 0.8 s would take about 4 s.
    let waited = start.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(24),
        "retried after only {waited:?}"
    );
    // Pods read again reset the back-off: the next failure is retried promptly.
    api.list("5", &[pod("a", "10.0.0.1", 1)]).await;
    wait_for_peers(&provider, &["10.0.0.1"]).await;
    api.watch("5", &[gone()]).await;
    let relisted = tokio::time::Instant::now();
    api.list("9", &[pod("b", "10.0.0.2", 8)]).await;
    let waited = relisted.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(2),
        "re-listed after {waited:?}"
    );
    wait_for_peers(&provider, &["10.0.0.2"]).await;
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_set_based_selector_string_reaches_the_list_and_watch_requests() {
    let selector = "app=c19,tier in (cache,web),env notin (dev),team,!legacy";
    let (provider, mut api, shutdown) = start(json!({ "selector": selector })).await;
    let asked = api.list("10", &[pod("a", "10.0.0.1", 1)]).await;
    assert_eq!(
        asked.query.get("labelSelector").map(String::as_str),
        Some(selector)
    );
    wait_for_peers(&provider, &["10.0.0.1"]).await;
    let watch = api.next().await;
    assert!(
        watch.is_watch(),
        "expected a watch, got {}",
        watch.request.uri()
    );
    assert_eq!(
        watch.query().get("labelSelector").map(String::as_str),
        Some(selector)
    );
    // The API server ends each watch after `ApiTimeouts::watch`, well within the read
    // timeout, so a quiet watch is never taken for a hung server.
    assert_eq!(
        watch.query().get("timeoutSeconds").map(String::as_str),
        Some("20")
    );
    // Percent-encoded on the wire: spaces, parentheses, commas and `!` survive.
    let raw = watch.request.uri().query().unwrap_or_default().to_owned();
    assert!(!raw.contains(' ') && !raw.contains('('), "{raw}");
    watch.events(&[]);
    shutdown.cancel();
}
