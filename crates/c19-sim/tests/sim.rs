//! Seeded simulations that CI runs: the gossip logic converges through loss, a partition
//! and a restart, and a run is reproducible from its seed.

use c19_sim::{Partition, Report, Scenario, SharedHost};

fn scenario(seed: u64) -> Scenario {
    Scenario {
        agents: 50,
        seed,
        loss: 0.05,
        writes: 20,
        partition: Some(Partition {
            duration_ms: 3000,
            writes_per_side: 5,
        }),
        ..Scenario::default()
    }
}

/// A report without its wall-clock time, the one figure a seed does not fix.
fn virtual_part(report: &Report) -> Report {
    Report {
        wall_s: 0.0,
        ..report.clone()
    }
}

#[test]
fn fifty_agents_converge_through_loss_a_partition_and_a_restart() {
    let report = c19_sim::run(&scenario(7)).unwrap();
    assert_eq!(
        report.converged, 20,
        "every key reached every agent: {report:?}"
    );
    let p99 = report.converge_p99_s.unwrap();
    assert!(
        p99 <= 1.0,
        "at 5% loss a new key is everywhere within 1 s: {report:?}"
    );
    assert!(
        report.lost_messages > 0,
        "the loss model dropped messages: {report:?}"
    );
    let heal = report.heal_s.expect("equal after the partition healed");
    assert!(
        heal <= 3.0 * 2.0,
        "equal within 3 pull intervals of the heal: {report:?}"
    );
    assert!(
        report.catch_up_s.is_some(),
        "the restarted agent caught up: {report:?}"
    );
    assert!(report.all_equal, "{report:?}");
    // Pushes a loss cost are sent again: a few more than without loss.
    assert!(
        report.pushes_per_change <= 1.1 * (2 * 3 * 50) as f64,
        "pushes per change about 2·r0·N: {report:?}"
    );
}

#[test]
fn without_loss_a_new_key_is_everywhere_in_one_wave_of_pushes() {
    let report = c19_sim::run(&Scenario {
        agents: 50,
        writes: 20,
        ..Scenario::default()
    })
    .unwrap();
    assert_eq!(report.converged, 20, "{report:?}");
    // 1 ms links: a few hops, never a push interval.
    assert!(report.converge_max_s.unwrap() < 0.05, "{report:?}");
    assert!(
        report.pushes_per_change <= (2 * 3 * 50) as f64,
        "pushes per change at most 2·r0·N: {report:?}"
    );
    assert_eq!(report.lost_messages, 0);
    assert!(report.all_equal, "{report:?}");
}

#[test]
fn a_run_is_reproducible_from_its_seed() {
    let first = c19_sim::run(&scenario(11)).unwrap();
    let again = c19_sim::run(&scenario(11)).unwrap();
    assert_eq!(virtual_part(&first), virtual_part(&again));
    let other = c19_sim::run(&scenario(12)).unwrap();
    assert_ne!(
        virtual_part(&first),
        virtual_part(&Report {
            seed: 11,
            settings: scenario(11),
            ..other
        }),
        "another seed draws another run"
    );
}

#[test]
fn settings_no_run_can_have_are_refused_by_name() {
    let error = c19_sim::run(&Scenario {
        loss: 1.5,
        ..Scenario::default()
    })
    .unwrap_err();
    assert!(error.to_string().contains("`loss`"), "{error}");
    let error = c19_sim::run(&Scenario {
        agents: 0,
        ..Scenario::default()
    })
    .unwrap_err();
    assert!(error.to_string().contains("`agents`"), "{error}");
    let error = c19_sim::run(&Scenario {
        host: Some(SharedHost {
            cores: 0,
            push_cpu_us: 100.0,
        }),
        ..Scenario::default()
    })
    .unwrap_err();
    assert!(error.to_string().contains("`cores`"), "{error}");
}

#[test]
fn on_one_shared_machine_a_wave_of_pushes_queues_for_its_cores() {
    let on = |cores| {
        c19_sim::run(&Scenario {
            agents: 40,
            writes: 20,
            latency_ms: 0.0,
            restart: false,
            host: Some(SharedHost {
                cores,
                push_cpu_us: 500.0,
            }),
            ..Scenario::default()
        })
        .unwrap()
    };
    let (two, many) = (on(2), on(64));
    for report in [&two, &many] {
        assert_eq!(report.converged, 20, "{report:?}");
        assert!(report.all_equal, "{report:?}");
    }
    // The same protocol: the same messages, whatever the cores.
    assert_eq!(two.pushes_per_change, many.pushes_per_change);
    // About 240 pushes of 0.5 ms per change: on 2 cores they queue, on 64 hardly.
    let (slow, fast) = (two.converge_p50_s.unwrap(), many.converge_p50_s.unwrap());
    assert!(
        slow > 2.0 * fast && slow >= 0.01,
        "2 cores {slow} s, 64 cores {fast} s"
    );
}

#[test]
fn under_a_steady_load_a_change_hops_to_peers_about_to_push() {
    // 1,000 writes/s on 10 agents: each pushes once a push interval, and a change waits
    // at every hop for the next round of the agent forwarding it.
    let report = c19_sim::run(&Scenario {
        agents: 10,
        seed: 19,
        writes: 20,
        load_per_s: 1000,
        restart: false,
        ..Scenario::default()
    })
    .unwrap();
    assert_eq!(report.converged, 20, "{report:?}");
    let p90 = report.converge_p90_s.unwrap();
    // Agents a wave woke together, pushing in step, made every hop wait a whole
    // interval (p90 0.40 s over 60 writes of this seed), where it is 0.26 s with phases of their own
    // and pushes to the peers about to push.
    assert!(
        p90 <= 0.3,
        "p90 well within 2 push intervals (0.4 s): {report:?}"
    );
    assert!(report.all_equal, "{report:?}");
    // Changes go together, once a push interval: far fewer pushes than changes.
    assert!(report.pushes_per_change < 1.0, "{report:?}");
}
