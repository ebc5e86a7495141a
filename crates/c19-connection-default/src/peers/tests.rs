//! Choosing peers: sampling, the ring, back-off, hints of their rounds.

use std::net::Ipv4Addr;

use super::*;

const OWN: u16 = 4097;

fn book() -> PeerBook {
    PeerBook::new(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        OWN,
        OWN,
        Duration::from_millis(100),
    )
}

fn peers(list: &[&str]) -> Vec<Peer> {
    list.iter().map(|peer| peer.parse().unwrap()).collect()
}

fn names(targets: &[Target]) -> Vec<String> {
    let mut names: Vec<String> = targets.iter().map(|target| target.name.clone()).collect();
    names.sort();
    names
}

fn failure() -> Error {
    Error::Status {
        status: 503,
        message: "down".into(),
    }
}

#[test]
fn never_chooses_its_own_address() {
    let book = book();
    let list = peers(&[
        "127.0.0.1",
        "127.0.0.1:4097",
        "0.0.0.0:4097",
        "[::1]:4097",
        "10.0.0.2",
        "127.0.0.1:4098",
    ]);
    for _ in 0..20 {
        assert_eq!(
            names(&book.choose(&list, 10, Instant::now())),
            ["10.0.0.2:4097", "127.0.0.1:4098"]
        );
    }
    // Another node's port on loopback is a peer; the bound IP with the own port is not.
    let bound = PeerBook::new(
        "10.0.0.1".parse().unwrap(),
        OWN,
        OWN,
        Duration::from_millis(100),
    );
    assert_eq!(
        names(&bound.choose(&peers(&["10.0.0.1", "10.0.0.1:1"]), 10, Instant::now())),
        ["10.0.0.1:1"]
    );
}

#[test]
fn pushes_always_include_the_successor_on_the_ring() {
    let book = book();
    // This agent is 127.0.0.1:4097 (OWN); the names in order put 127.0.0.1:4098 next.
    let list = peers(&[
        "127.0.0.1:4099",
        "10.0.0.9",
        "127.0.0.1:4097",
        "127.0.0.1:4098",
        "10.0.0.1",
    ]);
    let mut others = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let chosen = book.choose_for_push(&list, None, 2, Instant::now());
        assert_eq!(chosen.len(), 2);
        assert_eq!(chosen[0].name, "127.0.0.1:4098");
        assert_ne!(chosen[1].name, "127.0.0.1:4098");
        others.insert(chosen[1].name.clone());
    }
    assert_eq!(others.len(), 3, "the rest is random: {others:?}");
    // The last name wraps round to the first; a successor that keeps failing is
    // skipped (a failure or two are kept: lost messages).
    let last = peers(&["10.0.0.1", "127.0.0.1:4097", "10.0.0.2"]);
    let start = Instant::now();
    let first = Target {
        name: "10.0.0.1:4097".into(),
        peer: last[0].clone(),
    };
    book.failed(&first, &failure(), 1, start);
    book.failed(&first, &failure(), 1, start);
    let chosen = book.choose_for_push(&last, None, 1, start);
    assert_eq!(
        names(&chosen),
        ["10.0.0.1:4097"],
        "two failures: still the successor"
    );
    book.failed(&first, &failure(), 1, start);
    let chosen = book.choose_for_push(&last, None, 1, start);
    assert_eq!(names(&chosen), ["10.0.0.2:4097"]);
    // A list without this agent: all random, unless the provider says where it is.
    let without = peers(&["10.0.0.5", "10.0.0.7", "10.0.0.6"]);
    assert_eq!(book.choose_for_push(&without, None, 2, start).len(), 2);
    let own: Peer = "10.0.0.6".parse().unwrap();
    for _ in 0..20 {
        let chosen = book.choose_for_push(&without, Some(&own), 1, start);
        assert_eq!(names(&chosen), ["10.0.0.7:4097"]);
    }
}

#[test]
fn samples_at_most_r0_distinct_peers_at_random() {
    let book = book();
    let list = peers(&[
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.4",
        "10.0.0.1:4097",
    ]);
    let mut seen = HashSet::new();
    for _ in 0..200 {
        let chosen = names(&book.choose(&list, 2, Instant::now()));
        assert_eq!(chosen.len(), 2);
        assert_ne!(chosen[0], chosen[1]);
        seen.extend(chosen);
    }
    assert_eq!(seen.len(), 4, "every peer is chosen sometimes: {seen:?}");
}

#[test]
fn counts_distinct_peers_other_than_itself() {
    let book = book();
    let list = peers(&[
        "127.0.0.1",
        "10.0.0.1",
        "10.0.0.1:4097",
        "10.0.0.2",
        "name:1",
    ]);
    assert_eq!(book.count_others(&list), 3);
    let me = book
        .choose(&list, 5, Instant::now())
        .into_iter()
        .find(|t| t.name == "name:1")
        .unwrap();
    book.mark_self(&me);
    assert_eq!(book.count_others(&list), 2);
}

#[test]
fn skips_peers_found_to_be_itself() {
    let book = book();
    let list = peers(&["10.0.0.1", "10.0.0.2"]);
    let me = book
        .choose(&list, 2, Instant::now())
        .into_iter()
        .find(|t| t.name == "10.0.0.1:4097")
        .unwrap();
    book.mark_self(&me);
    assert_eq!(
        names(&book.choose(&list, 2, Instant::now())),
        ["10.0.0.2:4097"]
    );
}

#[test]
fn backs_off_failing_peers_exponentially_and_resets_on_success() {
    let book = book();
    let list = peers(&["10.0.0.1", "10.0.0.2"]);
    let target = Target {
        name: "10.0.0.1:4097".into(),
        peer: list[0].clone(),
    };
    let start = Instant::now();
    book.failed(&target, &failure(), 1, start);
    assert_eq!(
        book.choose(&list, 2, start).len(),
        2,
        "one failure (a lost message) is no reason to skip a peer"
    );
    book.failed(&target, &failure(), 1, start);
    assert_eq!(names(&book.choose(&list, 2, start)), ["10.0.0.2:4097"]);
    assert_eq!(
        book.choose(&list, 2, start + Duration::from_millis(100))
            .len(),
        2
    );
    book.failed(&target, &failure(), 1, start);
    book.failed(&target, &failure(), 1, start);
    // Fourth failure in a row: skipped for 400 ms.
    assert_eq!(
        book.choose(&list, 2, start + Duration::from_millis(399))
            .len(),
        1
    );
    assert_eq!(
        book.choose(&list, 2, start + Duration::from_millis(400))
            .len(),
        2
    );
    for _ in 0..40 {
        book.failed(&target, &failure(), 2, start);
    }
    assert_eq!(
        book.choose(&list, 2, start + MAX_BACKOFF - Duration::from_millis(1))
            .len(),
        1
    );
    assert_eq!(book.choose(&list, 2, start + MAX_BACKOFF).len(), 2);
    book.succeeded(&target);
    assert_eq!(book.choose(&list, 2, start).len(), 2);
}

#[test]
fn pushes_go_to_the_successor_and_the_peers_about_to_push() {
    let interval = Duration::from_millis(200);
    let book = book().with_push_interval(interval);
    let itself: Peer = "10.0.0.1:4097".parse().unwrap();
    let ring = peers(&[
        "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7",
    ]);
    let now = Instant::now();
    let ms = Duration::from_millis;
    // .3 pushes what it gets at once, .7 and .5 within 40 ms (.5 said so 0.6 s ago:
    // three rounds back, same phase); .6 only in 150 ms, later than a random peer's
    // expected wait.
    let earlier = now.checked_sub(ms(600)).unwrap_or(now);
    book.heard_next_round("10.0.0.5:4097", ms(40), earlier);
    book.heard_next_round("10.0.0.7:4097", ms(10), now);
    book.heard_next_round("10.0.0.6:4097", ms(150), now);
    book.heard_next_round("10.0.0.3:4097", ms(0), now);
    let pushed = book.choose_for_push(&ring, Some(&itself), 3, now);
    assert_eq!(pushed[0].name, "10.0.0.2:4097", "the successor first");
    assert_eq!(
        pushed[1].name, "10.0.0.3:4097",
        "then the one that pushes soonest"
    );
    assert!(!["10.0.0.2:4097", "10.0.0.3:4097"].contains(&pushed[2].name.as_str()));
    let target = pushed[1].clone();
    for _ in 0..MAX_FAILURES {
        book.failed(&target, &failure(), 1, now);
    }
    let pushed = book.choose_for_push(&ring, Some(&itself), 3, now);
    assert_eq!(
        pushed[1].name, "10.0.0.7:4097",
        "a backed-off peer is passed over"
    );
    // Without this agent on the list, the successor's place goes to a random peer.
    let pushed = book.choose_for_push(&ring, None, 3, now);
    assert_eq!(pushed.len(), 3);
    assert_eq!(names(&pushed[..2]), ["10.0.0.5:4097", "10.0.0.7:4097"]);
    // Hints grow stale.
    let later = now + interval * (rounds::HORIZON + 1);
    let picks: HashSet<String> = (0..200)
        .flat_map(|_| book.choose_for_push(&ring, Some(&itself), 3, later))
        .map(|target| target.name)
        .collect();
    assert!(picks.len() >= 5, "random again: {picks:?}");
}

#[test]
fn without_a_push_interval_hints_are_not_kept() {
    let book = book();
    let itself: Peer = "10.0.0.1:4097".parse().unwrap();
    let ring = peers(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]);
    let now = Instant::now();
    book.heard_next_round("10.0.0.5:4097", Duration::ZERO, now);
    let picks: HashSet<String> = (0..200)
        .flat_map(|_| book.choose_for_push(&ring, Some(&itself), 2, now))
        .map(|target| target.name)
        .collect();
    assert_eq!(picks.len(), 4, "{picks:?}");
}

#[test]
fn a_refusal_does_not_back_off() {
    let book = book();
    let list = peers(&["10.0.0.1"]);
    let target = book.choose(&list, 1, Instant::now()).remove(0);
    book.refused(&target, &failure(), 1);
    assert_eq!(book.choose(&list, 1, Instant::now()).len(), 1);
}

#[tokio::test]
async fn resolves_names_and_recognises_itself_after_resolution() {
    let book = book();
    let list = peers(&["localhost:4097", "localhost:4999", "10.0.0.9"]);
    let chosen = book.choose(&list, 3, Instant::now());
    assert_eq!(
        chosen.len(),
        3,
        "names cannot be judged before they are resolved"
    );
    for target in &chosen {
        let resolved = book.resolve(target, Duration::from_secs(5)).await;
        match target.name.as_str() {
            "localhost:4097" => assert!(
                matches!(resolved, Err(Error::IsSelf { .. })),
                "{resolved:?}"
            ),
            "localhost:4999" => assert!(resolved.unwrap().ip().is_loopback()),
            _ => assert_eq!(resolved.unwrap(), "10.0.0.9:4097".parse().unwrap()),
        }
    }
    assert_eq!(book.choose(&list, 3, Instant::now()).len(), 2);
    let unknown = Target {
        name: "no-such-host.invalid:1".into(),
        peer: "no-such-host.invalid:1".parse().unwrap(),
    };
    assert!(
        book.resolve(&unknown, Duration::from_secs(5))
            .await
            .is_err()
    );
}

#[test]
fn a_new_list_of_peers_is_read_again_and_the_ring_follows_it() {
    let book = book();
    let first = peers(&["10.0.0.1", "10.0.0.2"]);
    let now = Instant::now();
    assert_eq!(
        names(&book.choose(&first, 5, now)),
        ["10.0.0.1:4097", "10.0.0.2:4097"]
    );
    let second = peers(&["10.0.0.3", "10.0.0.4", "10.0.0.3"]);
    assert_eq!(
        names(&book.choose(&second, 5, now)),
        ["10.0.0.3:4097", "10.0.0.4:4097"],
        "the new list, each peer once"
    );
    assert_eq!(book.count_others(&second), 2);
    let itself: Peer = "10.0.0.15:4097".parse().unwrap();
    let ring = peers(&["10.0.0.10", "10.0.0.20", "10.0.0.30"]);
    let pushed = book.choose_for_push(&ring, Some(&itself), 1, now);
    assert_eq!(
        names(&pushed),
        ["10.0.0.20:4097"],
        "the successor of 10.0.0.15 by name"
    );
    let moved: Peer = "10.0.0.25:4097".parse().unwrap();
    let pushed = book.choose_for_push(&ring, Some(&moved), 1, now);
    assert_eq!(
        names(&pushed),
        ["10.0.0.30:4097"],
        "a new itself moves on the ring"
    );
}

#[test]
fn seeded_books_choose_alike() {
    let list = peers(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]);
    let seeded = |seed| {
        PeerBook::with_rng(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            OWN,
            OWN,
            Duration::from_secs(1),
            StdRng::seed_from_u64(seed),
        )
    };
    let (a, b) = (seeded(5), seeded(5));
    let now = Instant::now();
    for _ in 0..20 {
        assert_eq!(a.choose(&list, 2, now), b.choose(&list, 2, now));
    }
}
