//! The pure parts at scale (issue 7 §4): walking every round's pairs of a 5,000-node mesh,
//! planning a run, and encoding a run's samples for remote-write. `cargo bench --bench schedule`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_debug_implementations)]

#[path = "../examples/bench/workload.rs"]
mod workload;

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use iperf3_monitor::iperf3::Protocol;
use iperf3_monitor::schedule::{Pairing, Plan, Schedule, Topology};
use iperf3_monitor::sinks::remote_write;

const NODES: usize = 5_000;

fn mesh(nodes: usize) -> Schedule {
    Schedule::new(Topology::Mesh { nodes, pairing: Pairing::Duplex }, vec![Protocol::Tcp])
}

fn schedule(c: &mut Criterion) {
    let mut group = c.benchmark_group("schedule");
    group.sample_size(10);
    group.bench_function("walk_every_pair_5000_nodes", |b| {
        b.iter(|| {
            let schedule = mesh(black_box(NODES));
            let mut sum = 0usize;
            for round in (0..schedule.total_rounds()).filter_map(|i| schedule.round(i)) {
                for pair in round.pairs() {
                    sum = sum.wrapping_add(pair.source ^ pair.destination);
                }
            }
            sum
        })
    });
    group.bench_function("plan_new_5000_nodes", |b| {
        b.iter(|| {
            let schedule = Schedule::new(
                Topology::Mesh { nodes: black_box(NODES), pairing: Pairing::Duplex },
                vec![Protocol::Tcp, Protocol::Udp],
            );
            Plan::new(&schedule, Some(Duration::from_secs(270)), Duration::from_secs(5), NODES, black_box(5_912_345))
                .unwrap()
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("remote_write");
    group.sample_size(10);
    for count in [10_000, 100_000] {
        let samples = workload::run_samples(count, "bench", SystemTime::now());
        group.bench_function(format!("encode_{count}_samples"), |b| {
            b.iter(|| remote_write::encode(black_box(&samples)).map(|r| remote_write::body(&r).len()).sum::<usize>())
        });
    }
    group.finish();
}

criterion_group!(benches, schedule, encode);
criterion_main!(benches);
