//! The provider against a real name server on 127.0.0.1: what answers become peers,
//! how changes and outages are followed, and when discovery counts as done.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use c19_core::{Peer, PeerProvider};
use common::{DnsServer, config, context, peers, rounds, start, until};

#[tokio::test]
async fn a_and_aaaa_answers_become_sorted_peers_without_duplicates() {
    let server = DnsServer::start().await;
    server.set_ips("c19.test", &["10.0.0.2", "fd00::1", "10.0.0.1"]);
    // A second name listing one of the same addresses: offered once.
    server.set_ips("c19-other.test", &["10.0.0.3", "10.0.0.1"]);
    let cx = context();
    let mut with_port = config(&server, &["c19.test", "c19-other.test"]);
    with_port.port = Some(4097.try_into().unwrap());
    let provider = start(&with_port, &cx);
    until("the first round", || provider.discovered()).await;
    assert_eq!(
        peers(&*provider),
        [
            "10.0.0.1:4097",
            "10.0.0.2:4097",
            "10.0.0.3:4097",
            "[fd00::1]:4097"
        ]
    );
    // Without `port`, the peers have none: the connection dials its target port.
    let provider = start(&config(&server, &["c19.test"]), &cx);
    until("the first round", || provider.discovered()).await;
    assert_eq!(peers(&*provider), ["10.0.0.1", "10.0.0.2", "fd00::1"]);
    assert_eq!(provider.get()[0].port, None);
    cx.shutdown().cancel();
}

#[tokio::test]
async fn an_srv_name_gives_its_targets_with_their_ports() {
    let server = DnsServer::start().await;
    server.set_srv(
        "_c19._tcp.c19.test",
        &[
            ("c19-1.c19.test", 4102),
            ("c19-0.c19.test", 4101),
            // A target that no longer resolves gives nothing.
            ("gone.c19.test", 4103),
        ],
    );
    server.set_ips("c19-0.c19.test", &["10.0.1.1"]);
    server.set_ips("c19-1.c19.test", &["10.0.1.2", "fd00::2"]);
    let cx = context();
    let mut srv = config(&server, &["_c19._tcp.c19.test"]);
    // `port` is for A/AAAA names only; SRV records bring theirs.
    srv.port = Some(9999.try_into().unwrap());
    let provider = start(&srv, &cx);
    until("the first round", || provider.discovered()).await;
    assert_eq!(
        peers(&*provider),
        ["10.0.1.1:4101", "10.0.1.2:4102", "[fd00::2]:4102"]
    );
    cx.shutdown().cancel();
}

#[tokio::test]
async fn the_agents_own_address_is_left_out_and_reported_as_itself() {
    let server = DnsServer::start().await;
    server.set_ips("c19.test", &["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    server.set_srv("_c19._tcp.c19.test", &[("c19-2.c19.test", 4101)]);
    server.set_ips("c19-2.c19.test", &["10.0.0.2"]);
    let cx = context();
    let mut own = config(&server, &["c19.test", "_c19._tcp.c19.test"])
        .with_own_ip(Some("10.0.0.2".parse().unwrap()));
    own.port = Some(4097.try_into().unwrap());
    let provider = start(&own, &cx);
    until("the first round", || provider.discovered()).await;
    // Left out from the A answers and from the SRV targets alike.
    assert_eq!(peers(&*provider), ["10.0.0.1:4097", "10.0.0.3:4097"]);
    assert_eq!(provider.itself(), Some("10.0.0.2:4097".parse().unwrap()));
    // Without an own address, nothing is left out and `itself` is unknown.
    let provider = start(&config(&server, &["c19.test"]), &cx);
    until("the first round", || provider.discovered()).await;
    assert_eq!(peers(&*provider), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    assert_eq!(provider.itself(), None);
    cx.shutdown().cancel();
}

#[tokio::test]
async fn a_change_in_dns_is_picked_up_within_a_refresh() {
    let server = DnsServer::start().await;
    server.set_ips("c19.test", &["10.0.0.1", "10.0.0.2"]);
    let cx = context();
    let provider = start(&config(&server, &["c19.test"]), &cx);
    until("the first answer", || {
        peers(&*provider) == ["10.0.0.1", "10.0.0.2"]
    })
    .await;
    server.set_ips("c19.test", &["10.0.0.2", "10.0.0.4"]);
    // Two rounds: the one that may have been under way, and one that started after.
    rounds(&provider, 2).await;
    assert_eq!(peers(&*provider), ["10.0.0.2", "10.0.0.4"]);
    // A name that is gone (NXDOMAIN) is an answer: no peers.
    server.set_ips("c19.test", &[]);
    rounds(&provider, 2).await;
    assert_eq!(peers(&*provider), Vec::<String>::new());
    cx.shutdown().cancel();
}

#[tokio::test]
async fn a_name_server_that_stops_answering_leaves_the_last_good_answer() {
    let server = DnsServer::start().await;
    server.set_ips("c19.test", &["10.0.0.1", "10.0.0.2"]);
    let cx = context();
    let provider = start(&config(&server, &["c19.test"]), &cx);
    until("the first answer", || peers(&*provider).len() == 2).await;
    server.set_silent(true);
    // Records change meanwhile: nobody can see it.
    server.set_ips("c19.test", &["10.0.0.3"]);
    let asked = server.queries();
    rounds(&provider, 3).await;
    assert!(server.queries() > asked, "the provider kept asking");
    assert_eq!(peers(&*provider), ["10.0.0.1", "10.0.0.2"]);
    // The server is back: the new answer replaces the kept one.
    server.set_silent(false);
    until("the answer after the outage", || {
        peers(&*provider) == ["10.0.0.3"]
    })
    .await;
    cx.shutdown().cancel();
}

#[tokio::test]
async fn discovery_is_done_after_the_first_round_even_when_dns_says_nothing() {
    let server = DnsServer::start().await;
    let cx = context();
    // No such name: a definitive answer, so the agent knows it is alone.
    let provider = start(&config(&server, &["nobody.c19.test"]), &cx);
    until("the first round", || provider.discovered()).await;
    assert!(provider.get().is_empty());
    // A silent name server: not discovered while the first lookup runs, then done
    // once it timed out, with no peers, so a connection waiting for its first sync does
    // not wait for ever.
    server.set_silent(true);
    let mut slow = config(&server, &["c19.test"]);
    slow.timeout = 2_000.try_into().unwrap();
    let provider = start(&slow, &cx);
    assert!(!provider.discovered(), "discovered before any answer");
    until("the first round to time out", || provider.discovered()).await;
    assert!(provider.get().is_empty());
    cx.shutdown().cancel();
}

#[tokio::test]
async fn a_failing_name_does_not_hide_the_others() {
    let server = DnsServer::start().await;
    server.set_ips("c19.test", &["10.0.0.1"]);
    server.set_ips("c19-slow.test", &["10.0.0.2"]);
    // Its queries time out, from the first round on.
    server.ignore("c19-slow.test");
    let cx = context();
    // `other.example` is not in the table: NXDOMAIN, no peers, no harm.
    let names = ["other.example", "c19-slow.test", "c19.test"];
    let provider = start(&config(&server, &names), &cx);
    until("the first round", || provider.discovered()).await;
    assert_eq!(provider.get(), ["10.0.0.1".parse::<Peer>().unwrap()]);
    rounds(&provider, 2).await;
    assert_eq!(provider.get(), ["10.0.0.1".parse::<Peer>().unwrap()]);
    cx.shutdown().cancel();
}

#[tokio::test]
async fn shutdown_stops_the_refresh() {
    let server = DnsServer::start().await;
    server.set_ips("c19.test", &["10.0.0.1"]);
    let cx = context();
    let provider = start(&config(&server, &["c19.test"]), &cx);
    until("the first round", || provider.discovered()).await;
    cx.shutdown().cancel();
    // A round under way when shutdown came is not finished; none starts after it.
    let stopped = provider.rounds();
    server.set_ips("c19.test", &["10.0.0.9"]);
    // Another provider on the same server, still running, shows rounds go on.
    let other_cx = context();
    let other = start(&config(&server, &["c19.test"]), &other_cx);
    rounds(&other, 3).await;
    assert!(
        provider.rounds() <= stopped + 1,
        "rounds went on after shutdown"
    );
    assert_eq!(peers(&*provider), ["10.0.0.1"]);
    other_cx.shutdown().cancel();
}
