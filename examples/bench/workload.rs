//! Samples shaped like a run's, for the delivery benchmarks (`examples/bench` and
//! `benches/schedule.rs` share this file).

use std::time::SystemTime;

use iperf3_monitor::iperf3::{Protocol, TcpResult, TestResult};
use iperf3_monitor::measure::{Measurement, Outcome};
use iperf3_monitor::samples::{self, MeshPairs, RunFacts, Sample};
use iperf3_monitor::targets::{IpFamily, Network, Node};

/// Samples per successful TCP measurement with every optional value present.
const SAMPLES_PER_TCP_TEST: usize = 9;

/// `count` samples of successful TCP tests between distinct pairs of nodes with names as long
/// as typical cloud node names, labelled `cluster`, timestamped `now`.
pub fn run_samples(count: usize, cluster: &str, now: SystemTime) -> Vec<Sample> {
    let measurements = count.div_ceil(SAMPLES_PER_TCP_TEST);
    let n = (2..).find(|n| n * (n - 1) >= measurements).unwrap_or(2);
    let nodes: Vec<Node> = (0..n)
        .map(|i| {
            Node::new(format!("worker-{i:05}.example.internal"), format!("198.18.0.{}", i % 250 + 1), 5201, vec![])
        })
        .collect();
    let pairs = (0..n).flat_map(|s| (0..n).filter(move |d| *d != s).map(move |d| (s, d)));
    let measurements: Vec<Measurement> = pairs
        .take(measurements)
        .enumerate()
        .map(|(i, (s, d))| Measurement {
            source: nodes[s].name.as_str().into(),
            destination: nodes[d].name.as_str().into(),
            protocol: Protocol::Tcp,
            ip_family: IpFamily::Ipv4,
            network: Network::Host,
            finished_at: now,
            duration_seconds: 5.0 + (i % 100) as f64 / 1000.0,
            round: 0,
            alone: false,
            cpu_bound: false,
            outcome: Outcome::Success(TestResult::Tcp(TcpResult {
                sent_bytes_per_second: 1.2e9 + i as f64,
                received_bytes_per_second: 1.19e9 + i as f64,
                retransmits: Some((i % 17) as u64),
                rtt_seconds: Some(0.000_2 + (i % 50) as f64 * 1e-6),
                sender_cpu_utilization_ratio: Some(0.35),
                receiver_cpu_utilization_ratio: Some(0.12),
            })),
        })
        .collect();
    let facts = RunFacts::whole_cycle(now, now, n, vec![MeshPairs::host_ipv4(Protocol::Tcp, n * (n - 1))], 1);
    let mut samples = samples::build(&measurements, &nodes, &facts, Some(cluster));
    samples.truncate(count);
    samples
}
