//! Measurements → metric samples: names, labels and timestamps. Pure.
//!
//! One sample per measured value, timestamped with the test's end time; run-level samples carry
//! the run's end time. Names follow the Prometheus rules: base units, no `_total` on gauges.
//!
//! A 1,000-node run has hundreds of thousands of samples, so they are made a batch of
//! measurements at a time ([`RunSamples`]) and share what repeats: a measurement's samples share
//! one label set, label sets hold the measurements' shared node names (one copy per node for the
//! whole run), and the other label values of a batch are stored once.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use crate::iperf3::{Protocol, TestResult};
use crate::measure::Measurement;
use crate::schedule::Plan;
use crate::targets::{IpFamily, Network, Node, NodeLabel};

/// A metric's name and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
}

macro_rules! metrics {
    ($($ident:ident = $name:literal, $help:literal;)*) => {
        $(pub const $ident: Metric = Metric { name: $name, help: $help };)*
        /// Every metric the job writes.
        pub const ALL_METRICS: &[Metric] = &[$($ident),*];
    };
}

metrics! {
    SENT_BYTES_PER_SECOND = "iperf3_sent_bytes_per_second", "Throughput the iperf3 client sent, in bytes per second.";
    RECEIVED_BYTES_PER_SECOND = "iperf3_received_bytes_per_second", "Throughput the iperf3 server received, in bytes per second.";
    RETRANSMITS = "iperf3_retransmits", "TCP retransmits of the sender during the test.";
    RTT_SECONDS = "iperf3_rtt_seconds", "Mean round-trip time of the sender's TCP streams, in seconds.";
    JITTER_SECONDS = "iperf3_jitter_seconds", "UDP jitter seen by the receiver, in seconds.";
    LOST_PACKETS = "iperf3_lost_packets", "UDP packets lost during the test.";
    PACKETS = "iperf3_packets", "UDP packets sent during the test.";
    LOSS_RATIO = "iperf3_loss_ratio", "Share of UDP packets lost during the test (0 to 1).";
    SENDER_CPU = "iperf3_sender_cpu_utilization_ratio", "CPU utilisation of the iperf3 sender during the test (0 to 1 per core).";
    RECEIVER_CPU = "iperf3_receiver_cpu_utilization_ratio", "CPU utilisation of the iperf3 receiver during the test (0 to 1 per core).";
    TEST_CPU_BOUND = "iperf3_test_cpu_bound", "1 if the test's sender or receiver used (nearly) all the CPU it had: the throughput is what the nodes' CPU allowed, the path may carry more.";
    TEST_SUCCESS = "iperf3_test_success", "1 if the test succeeded, 0 if it failed.";
    TEST_FAILURE = "iperf3_test_failure", "1 for a failed test, with its reason as a label (refused, timeout, busy, unreachable, auth, interrupted, parse, spawn, error, skipped: not tried because its node had failed earlier in the run).";
    TEST_DURATION_SECONDS = "iperf3_test_duration_seconds", "Wall time of the test, retries included, in seconds.";
    TEST_TIMESTAMP_SECONDS = "iperf3_test_timestamp_seconds", "When the test ended, in seconds since the Unix epoch.";
    LAST_RUN_TIMESTAMP_SECONDS = "iperf3_monitor_last_run_timestamp_seconds", "When the last run ended, in seconds since the Unix epoch.";
    RUN_DURATION_SECONDS = "iperf3_monitor_run_duration_seconds", "Wall time of the last run, in seconds.";
    RUN_TESTS = "iperf3_monitor_run_tests", "Tests of the last run, by result (success, failure).";
    RUN_PAIRS_COVERED = "iperf3_monitor_run_pairs_covered", "Directed pairs measured successfully in the last run, by protocol, IP family and network.";
    MESH_PAIRS = "iperf3_monitor_mesh_pairs", "Directed pairs in the full mesh (or star), by protocol, IP family and network.";
    RUN_PAIRS_WITHOUT_IP_FAMILY = "iperf3_monitor_run_pairs_without_ip_family", "Directed pairs the last run could not measure: their nodes share none of the IP families measured (--ip-families).";
    NODES = "iperf3_monitor_nodes", "Nodes with an iperf3 server found by the last run.";
    RUN_ROUNDS = "iperf3_monitor_run_rounds", "Rounds measured by the last run.";
    RUN_ROUNDS_SKIPPED = "iperf3_monitor_run_rounds_skipped", "Planned rounds the last run did not measure whole: it was stopped (SIGTERM) or its budget ran out.";
    RUN_TESTS_NOT_RUN = "iperf3_monitor_run_tests_not_run", "Planned tests the last run did not run: it was stopped (SIGTERM) or its budget ran out; the rotation measures them later.";
    RUN_PAIRING_SWITCHED = "iperf3_monitor_run_pairing_switched", "1 if the last run (--pairing auto) switched to exclusive pairing because duplex tests were limited by their nodes' shared CPU.";
    CYCLE_ROUNDS = "iperf3_monitor_cycle_rounds", "Rounds in a full cycle over every pair and protocol.";
    CYCLE_RUNS = "iperf3_monitor_cycle_runs", "Consecutive runs needed to measure every pair once.";
}

/// A label value, shared by every label set that carries it.
pub type LabelValue = Arc<str>;

/// Label names and values, sorted by name, no name twice; `__name__` is not among them. One
/// allocation, shared by the samples of a measurement.
pub type Labels = Arc<[(&'static str, LabelValue)]>;

/// One sample of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub metric: &'static Metric,
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: i64,
}

/// Hands out one shared copy of each distinct label value.
#[derive(Debug, Default)]
struct Interner<'a>(HashMap<&'a str, LabelValue>);

impl<'a> Interner<'a> {
    fn value(&mut self, text: &'a str) -> LabelValue {
        self.0.entry(text).or_insert_with(|| LabelValue::from(text)).clone()
    }
}

/// What the run-level samples describe.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
    pub nodes: usize,
    /// Directed pairs of each protocol, IP family and network's mesh (or star).
    pub meshes: Vec<MeshPairs>,
    /// Directed pairs whose nodes share no IP family measured.
    pub pairs_without_ip_family: u64,
    pub rounds_run: usize,
    pub rounds_skipped: usize,
    pub tests_not_run: usize,
    pub switched_to_exclusive: bool,
    /// The run's plan: the rounds of the cycle and the runs it takes are samples too.
    pub plan: Plan,
}

/// The directed pairs of one protocol's mesh (or star) over one IP family and network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshPairs {
    pub protocol: Protocol,
    pub family: IpFamily,
    pub network: Network,
    pub pairs: usize,
}

impl MeshPairs {
    /// A single-stack host-network mesh's.
    pub fn host_ipv4(protocol: Protocol, pairs: usize) -> MeshPairs {
        MeshPairs { protocol, family: IpFamily::Ipv4, network: Network::Host, pairs }
    }
}

impl RunFacts {
    /// The facts of a run that measured its whole cycle in `rounds` rounds, nothing skipped or
    /// stopped: what tests and benchmarks build samples from.
    #[doc(hidden)]
    pub fn whole_cycle(
        started_at: SystemTime,
        finished_at: SystemTime,
        nodes: usize,
        meshes: Vec<MeshPairs>,
        rounds: usize,
    ) -> RunFacts {
        let meshes_tests = meshes.iter().map(|m| m.pairs).sum();
        RunFacts {
            started_at,
            finished_at,
            nodes,
            meshes,
            pairs_without_ip_family: 0,
            rounds_run: rounds,
            rounds_skipped: 0,
            tests_not_run: 0,
            switched_to_exclusive: false,
            plan: Plan::whole_cycle(meshes_tests, rounds),
        }
    }
}

/// Measurements whose samples make one batch: about 18,000 samples, a few MB at most.
pub const BATCH_MEASUREMENTS: usize = 2_000;

/// Where samples come from, batch by batch. A sink asks for the batches when it delivers;
/// each sink that asks gets them afresh.
pub trait SampleSource {
    fn batches(&self) -> impl Iterator<Item = Cow<'_, [Sample]>>;

    /// Every sample, in one vector: for the sinks that must send them all at once.
    fn collect_all(&self) -> Vec<Sample> {
        self.batches().flat_map(Cow::into_owned).collect()
    }
}

impl SampleSource for [Sample] {
    fn batches(&self) -> impl Iterator<Item = Cow<'_, [Sample]>> {
        std::iter::once(Cow::Borrowed(self))
    }
}

/// A run's samples, built a batch of measurements at a time as they are delivered: a
/// 1,000-node run has 400,000 samples, which never need to exist all at once.
#[derive(Debug)]
pub struct RunSamples<'a> {
    measurements: &'a [Measurement],
    node_labels: HashMap<&'a str, &'a [NodeLabel]>,
    run: &'a RunFacts,
    cluster: Option<&'a str>,
}

impl<'a> RunSamples<'a> {
    /// Node labels (`--node-label-keys`) of `nodes` become `source_<suffix>` /
    /// `destination_<suffix>` labels.
    pub fn new(
        measurements: &'a [Measurement],
        nodes: &'a [Node],
        run: &'a RunFacts,
        cluster: Option<&'a str>,
    ) -> Self {
        let node_labels = nodes.iter().map(|n| (n.name.as_str(), n.labels.as_slice())).collect();
        RunSamples { measurements, node_labels, run, cluster }
    }

    /// The samples of [`BATCH_MEASUREMENTS`] measurements at a time, in the order the tests
    /// ended (so a series' samples stay in time order across batches); the run-level samples
    /// end the last batch. A run without measurements has one batch, its run-level samples.
    pub fn batches(&self) -> impl Iterator<Item = Vec<Sample>> + '_ {
        let chunks = self.measurements.len().div_ceil(BATCH_MEASUREMENTS).max(1);
        (0..chunks).map(move |i| {
            let start = i * BATCH_MEASUREMENTS;
            let end = (start + BATCH_MEASUREMENTS).min(self.measurements.len());
            let mut samples = self.measurement_samples(&self.measurements[start..end]);
            if i + 1 == chunks {
                samples.extend(run_samples(self.measurements, self.run, self.cluster));
            }
            samples
        })
    }

    fn measurement_samples(&self, measurements: &'a [Measurement]) -> Vec<Sample> {
        let mut values = Interner::default();
        let mut samples = Vec::with_capacity(measurements.len() * 10);
        for m in measurements {
            let mut labels = vec![
                ("destination_node", m.destination.clone()),
                ("ip_family", values.value(m.ip_family.as_str())),
                ("network", values.value(m.network.as_str())),
                ("protocol", values.value(m.protocol.as_str())),
                ("source_node", m.source.clone()),
            ];
            if let Some(cluster) = self.cluster {
                labels.push(("cluster", values.value(cluster)));
            }
            for label in self.node_labels.get(&*m.source).copied().unwrap_or_default() {
                labels.push((label.names.source, values.value(&label.value)));
            }
            for label in self.node_labels.get(&*m.destination).copied().unwrap_or_default() {
                labels.push((label.names.destination, values.value(&label.value)));
            }
            labels.sort_by_key(|(name, _)| *name);
            pair_samples(m, labels.into(), &mut values, &mut samples);
        }
        samples
    }
}

impl SampleSource for RunSamples<'_> {
    fn batches(&self) -> impl Iterator<Item = Cow<'_, [Sample]>> {
        RunSamples::batches(self).map(Cow::Owned)
    }
}

/// Every sample of a run at once: per-measurement samples, then run-level samples.
pub fn build(measurements: &[Measurement], nodes: &[Node], run: &RunFacts, cluster: Option<&str>) -> Vec<Sample> {
    RunSamples::new(measurements, nodes, run, cluster).batches().flatten().collect()
}

fn pair_samples<'a>(m: &'a Measurement, labels: Labels, values: &mut Interner<'a>, out: &mut Vec<Sample>) {
    let ts = timestamp_ms(m.finished_at);
    let mut push = |metric: &'static Metric, value: f64| {
        out.push(Sample { metric, labels: labels.clone(), value, timestamp_ms: ts });
    };
    push(&TEST_SUCCESS, if m.result().is_some() { 1.0 } else { 0.0 });
    push(&TEST_DURATION_SECONDS, m.duration_seconds);
    push(&TEST_TIMESTAMP_SECONDS, ts as f64 / 1000.0);
    let (sender_cpu, receiver_cpu) = match m.result() {
        None => (None, None),
        Some(TestResult::Tcp(r)) => {
            push(&SENT_BYTES_PER_SECOND, r.sent_bytes_per_second);
            push(&RECEIVED_BYTES_PER_SECOND, r.received_bytes_per_second);
            if let Some(retransmits) = r.retransmits {
                push(&RETRANSMITS, retransmits as f64);
            }
            if let Some(rtt) = r.rtt_seconds {
                push(&RTT_SECONDS, rtt);
            }
            (r.sender_cpu_utilization_ratio, r.receiver_cpu_utilization_ratio)
        }
        Some(TestResult::Udp(r)) => {
            push(&SENT_BYTES_PER_SECOND, r.sent_bytes_per_second);
            push(&RECEIVED_BYTES_PER_SECOND, r.received_bytes_per_second);
            push(&JITTER_SECONDS, r.jitter_seconds);
            push(&LOST_PACKETS, r.lost_packets as f64);
            push(&PACKETS, r.packets as f64);
            push(&LOSS_RATIO, r.loss_ratio);
            (r.sender_cpu_utilization_ratio, r.receiver_cpu_utilization_ratio)
        }
    };
    if let Some(cpu) = sender_cpu {
        push(&SENDER_CPU, cpu);
    }
    if let Some(cpu) = receiver_cpu {
        push(&RECEIVER_CPU, cpu);
    }
    if m.result().is_some() {
        push(&TEST_CPU_BOUND, if m.cpu_bound { 1.0 } else { 0.0 });
    }
    if let Some(failure) = m.failure() {
        let mut labels = labels.to_vec();
        labels.push(("reason", values.value(failure.reason.as_str())));
        labels.sort_by_key(|(name, _)| *name);
        out.push(Sample { metric: &TEST_FAILURE, labels: labels.into(), value: 1.0, timestamp_ms: ts });
    }
}

fn run_samples(measurements: &[Measurement], run: &RunFacts, cluster: Option<&str>) -> Vec<Sample> {
    let mut out = Vec::new();
    let ts = timestamp_ms(run.finished_at);
    let base: Vec<(&'static str, LabelValue)> = cluster.map(|c| ("cluster", c.into())).into_iter().collect();
    let mut push = |metric: &'static Metric, extra: &[(&'static str, &str)], value: f64| {
        let mut labels = base.clone();
        labels.extend(extra.iter().map(|&(name, value)| (name, value.into())));
        labels.sort_by_key(|(name, _)| *name);
        out.push(Sample { metric, labels: labels.into(), value, timestamp_ms: ts });
    };
    let run_seconds = run.finished_at.duration_since(run.started_at).map_or(0.0, |d| d.as_secs_f64());
    push(&LAST_RUN_TIMESTAMP_SECONDS, &[], ts as f64 / 1000.0);
    push(&RUN_DURATION_SECONDS, &[], run_seconds);
    let succeeded = measurements.iter().filter(|m| m.result().is_some()).count();
    push(&RUN_TESTS, &[("result", "success")], succeeded as f64);
    push(&RUN_TESTS, &[("result", "failure")], (measurements.len() - succeeded) as f64);
    // The pairs measured successfully, by mesh.
    type Mesh = (Protocol, IpFamily, Network);
    let mut covered: BTreeMap<Mesh, BTreeSet<(&str, &str)>> = BTreeMap::new();
    for m in measurements.iter().filter(|m| m.result().is_some()) {
        covered.entry((m.protocol, m.ip_family, m.network)).or_default().insert((&m.source, &m.destination));
    }
    for &MeshPairs { protocol, family, network, pairs } in &run.meshes {
        let labels = [("ip_family", family.as_str()), ("network", network.as_str()), ("protocol", protocol.as_str())];
        let covered = covered.get(&(protocol, family, network)).map_or(0, BTreeSet::len);
        push(&RUN_PAIRS_COVERED, &labels, covered as f64);
        push(&MESH_PAIRS, &labels, pairs as f64);
    }
    push(&RUN_PAIRS_WITHOUT_IP_FAMILY, &[], run.pairs_without_ip_family as f64);
    push(&NODES, &[], run.nodes as f64);
    push(&RUN_ROUNDS, &[], run.rounds_run as f64);
    push(&RUN_ROUNDS_SKIPPED, &[], run.rounds_skipped as f64);
    push(&RUN_TESTS_NOT_RUN, &[], run.tests_not_run as f64);
    push(&RUN_PAIRING_SWITCHED, &[], if run.switched_to_exclusive { 1.0 } else { 0.0 });
    push(&CYCLE_ROUNDS, &[], run.plan.cycle_rounds as f64);
    push(&CYCLE_RUNS, &[], run.plan.cycle_runs as f64);
    out
}

/// Milliseconds since the Unix epoch.
pub fn timestamp_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_failure_help_names_every_reason() {
        for reason in crate::iperf3::FailureReason::ALL {
            assert!(TEST_FAILURE.help.contains(reason.as_str()), "{} missing from the help", reason.as_str());
        }
    }
    use crate::iperf3::{Failure, FailureReason, TcpResult, UdpResult};
    use crate::measure::Outcome;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn measurement(protocol: Protocol, outcome: Outcome) -> Measurement {
        let example = Measurement::example("n1", "n2", outcome);
        Measurement { protocol, finished_at: at(1_700_000_000_123), duration_seconds: 5.2, ..example }
    }

    fn facts() -> RunFacts {
        let meshes = vec![MeshPairs::host_ipv4(Protocol::Tcp, 2), MeshPairs::host_ipv4(Protocol::Udp, 2)];
        RunFacts::whole_cycle(at(1_700_000_000_000), at(1_700_000_010_500), 2, meshes, 2)
    }

    fn find<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
        samples.iter().filter(|s| s.metric.name == name).collect()
    }

    #[test]
    fn tcp_and_udp_samples_with_sorted_labels_and_the_test_end_time() {
        let tcp = measurement(
            Protocol::Tcp,
            Outcome::Success(TestResult::Tcp(TcpResult {
                sent_bytes_per_second: 100.0,
                received_bytes_per_second: 99.0,
                retransmits: Some(4),
                rtt_seconds: Some(0.001),
                sender_cpu_utilization_ratio: Some(0.5),
                receiver_cpu_utilization_ratio: None,
            })),
        );
        let udp = measurement(
            Protocol::Udp,
            Outcome::Success(TestResult::Udp(UdpResult {
                sent_bytes_per_second: 10.0,
                received_bytes_per_second: 9.0,
                jitter_seconds: 0.002,
                lost_packets: 1,
                packets: 10,
                loss_ratio: 0.1,
                sender_cpu_utilization_ratio: None,
                receiver_cpu_utilization_ratio: None,
            })),
        );
        let mut n1 = Node::new("n1", "a", 1, vec![]);
        n1.labels = vec![NodeLabel { names: crate::targets::NodeLabelNames::new("zone"), value: "z1".into() }];
        let samples = build(&[tcp, udp], &[n1], &facts(), Some("lab"));
        let received = find(&samples, "iperf3_received_bytes_per_second");
        assert_eq!(received.len(), 2);
        assert_eq!(received[0].value, 99.0);
        assert_eq!(received[0].timestamp_ms, 1_700_000_000_123);
        let names: Vec<&str> = received[0].labels.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["cluster", "destination_node", "ip_family", "network", "protocol", "source_node", "source_zone"]
        );
        assert_eq!(find(&samples, "iperf3_retransmits")[0].value, 4.0);
        assert_eq!(find(&samples, "iperf3_loss_ratio")[0].value, 0.1);
        assert_eq!(find(&samples, "iperf3_jitter_seconds")[0].value, 0.002);
        assert_eq!(find(&samples, "iperf3_test_timestamp_seconds")[0].value, 1_700_000_000.123);
        assert!(find(&samples, "iperf3_test_failure").is_empty());
        let covered = find(&samples, "iperf3_monitor_run_pairs_covered");
        assert_eq!(covered.iter().map(|s| s.value).collect::<Vec<_>>(), [1.0, 1.0]);
        assert!(covered[0].labels.contains(&("ip_family", "ipv4".into())), "{:?}", covered[0].labels);
        assert_eq!(find(&samples, "iperf3_monitor_run_duration_seconds")[0].value, 10.5);
    }

    #[test]
    fn a_failure_has_success_zero_and_a_bounded_reason() {
        let failed =
            measurement(Protocol::Tcp, Outcome::Failure(Failure::new(FailureReason::Refused, "Connection refused")));
        let samples = build(&[failed], &[], &facts(), None);
        assert_eq!(find(&samples, "iperf3_test_success")[0].value, 0.0);
        assert!(find(&samples, "iperf3_received_bytes_per_second").is_empty());
        let failure = find(&samples, "iperf3_test_failure");
        assert!(failure[0].labels.contains(&("reason", "refused".into())), "{:?}", failure[0].labels);
        let tests = find(&samples, "iperf3_monitor_run_tests");
        assert_eq!(
            tests.iter().map(|s| (&*s.labels[0].1, s.value)).collect::<Vec<_>>(),
            [("success", 0.0), ("failure", 1.0)]
        );
        assert!(samples.iter().all(|s| s.labels.iter().all(|(n, _)| *n != "cluster")));
    }

    #[test]
    fn a_measurements_samples_share_one_label_set_and_node_names_are_stored_once() {
        let ok = || Outcome::tcp_ok(1.0);
        // As the run makes them: one shared name per node.
        let (n1, n2): (Arc<str>, Arc<str>) = ("n1".into(), "n2".into());
        let there = Measurement { source: n1.clone(), destination: n2.clone(), ..measurement(Protocol::Tcp, ok()) };
        let back = Measurement { source: n2, destination: n1, ..measurement(Protocol::Tcp, ok()) };
        let samples = build(&[there, back], &[], &facts(), Some("lab"));
        let (first, second): (Vec<&Sample>, Vec<&Sample>) =
            samples.iter().filter(|s| s.labels.len() == 6).partition(|s| &*s.labels[5].1 == "n1");
        assert!(first.len() > 1 && second.len() > 1);
        assert!(first.iter().all(|s| Arc::ptr_eq(&s.labels, &first[0].labels)));
        let value = |s: &Sample, name: &str| s.labels.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        assert!(Arc::ptr_eq(&value(first[0], "source_node"), &value(second[0], "destination_node")));
        assert!(Arc::ptr_eq(&value(first[0], "cluster"), &value(second[0], "cluster")));
    }

    #[test]
    fn batches_split_the_measurements_and_the_last_ends_with_the_run_level_samples() {
        let ok = |i: usize| {
            let outcome = Outcome::tcp_ok(i as f64);
            Measurement { destination: format!("d{i}").into(), ..measurement(Protocol::Tcp, outcome) }
        };
        let measurements: Vec<Measurement> = (0..BATCH_MEASUREMENTS + 3).map(ok).collect();
        let facts = facts();
        let run = RunSamples::new(&measurements, &[], &facts, None);
        let batches: Vec<Vec<Sample>> = run.batches().collect();
        // Six samples per test: success, CPU-bound, duration, timestamp and both rates.
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].len(), BATCH_MEASUREMENTS * 6);
        let (tests, run_level) = batches[1].split_at(3 * 6);
        assert!(tests.iter().all(|s| !s.metric.name.starts_with("iperf3_monitor_")));
        assert!(!run_level.is_empty() && run_level.iter().all(|s| s.metric.name.starts_with("iperf3_monitor_")));
        let tests = find(&batches[1], "iperf3_monitor_run_tests");
        assert_eq!(tests[0].value, (BATCH_MEASUREMENTS + 3) as f64, "run-level samples count every batch");
        assert_eq!(batches.concat(), build(&measurements, &[], &facts, None));
        let received = find(&batches[1], "iperf3_received_bytes_per_second");
        assert_eq!(received.last().unwrap().value, (BATCH_MEASUREMENTS + 2) as f64);
    }

    #[test]
    fn each_family_is_its_own_series_and_mesh() {
        let ok = Outcome::tcp_ok(1.0);
        let v4 = measurement(Protocol::Tcp, ok.clone());
        let v6 = Measurement { ip_family: IpFamily::Ipv6, ..measurement(Protocol::Tcp, ok) };
        let facts = RunFacts {
            meshes: vec![
                MeshPairs::host_ipv4(Protocol::Tcp, 6),
                MeshPairs { family: IpFamily::Ipv6, ..MeshPairs::host_ipv4(Protocol::Tcp, 2) },
            ],
            pairs_without_ip_family: 4,
            ..facts()
        };
        let samples = build(&[v4, v6], &[], &facts, None);
        let received = find(&samples, "iperf3_received_bytes_per_second");
        assert_ne!(received[0].labels, received[1].labels, "one series per family");
        let family = |s: &Sample| s.labels.iter().find(|(n, _)| *n == "ip_family").unwrap().1.to_string();
        let meshes: Vec<(String, f64)> =
            find(&samples, "iperf3_monitor_mesh_pairs").iter().map(|s| (family(s), s.value)).collect();
        assert_eq!(meshes, [("ipv4".to_string(), 6.0), ("ipv6".to_string(), 2.0)]);
        assert_eq!(find(&samples, "iperf3_monitor_run_pairs_without_ip_family")[0].value, 4.0);
    }

    #[test]
    fn each_network_is_its_own_series_and_mesh() {
        let ok = Outcome::tcp_ok(1.0);
        let host = measurement(Protocol::Tcp, ok.clone());
        let pod = Measurement { network: Network::Pod, ..measurement(Protocol::Tcp, ok) };
        let pod_mesh = MeshPairs { network: Network::Pod, ..MeshPairs::host_ipv4(Protocol::Tcp, 2) };
        let facts = RunFacts { meshes: vec![MeshPairs::host_ipv4(Protocol::Tcp, 6), pod_mesh], ..facts() };
        let samples = build(&[host, pod], &[], &facts, None);
        let network = |s: &Sample| s.labels.iter().find(|(n, _)| *n == "network").unwrap().1.to_string();
        let received = find(&samples, "iperf3_received_bytes_per_second");
        assert_eq!(received.iter().map(|s| network(s)).collect::<Vec<_>>(), ["host", "pod"]);
        let by_network =
            |name| -> Vec<(String, f64)> { find(&samples, name).iter().map(|s| (network(s), s.value)).collect() };
        assert_eq!(by_network("iperf3_monitor_mesh_pairs"), [("host".into(), 6.0), ("pod".into(), 2.0)]);
        assert_eq!(by_network("iperf3_monitor_run_pairs_covered"), [("host".into(), 1.0), ("pod".into(), 1.0)]);
    }

    #[test]
    fn a_run_without_measurements_still_has_its_run_level_samples() {
        let facts = facts();
        let batches: Vec<Vec<Sample>> = RunSamples::new(&[], &[], &facts, None).batches().collect();
        assert_eq!(batches.len(), 1);
        assert_eq!(find(&batches[0], "iperf3_monitor_run_tests").len(), 2);
    }

    #[test]
    fn metric_names_follow_the_prometheus_rules() {
        for metric in ALL_METRICS {
            assert!(
                metric.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                metric.name
            );
            assert!(!metric.name.ends_with("_total"), "{}: a gauge", metric.name);
            assert!(!metric.help.is_empty());
        }
    }
}
