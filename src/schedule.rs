//! Which tests run together: rounds in which no node sends more than one test and no node
//! receives more than one test, and the rotation across runs when a run's budget cannot hold
//! the whole mesh: each run measures a slice of the cycle's tests (see [`Plan`]). Pure: nodes
//! are indexes, nothing here runs anything.
//!
//! Duplex pairing (and auto, until it switches): the mesh of N nodes has N(N-1) directed pairs and every node
//! must send N-1 times, so N-1 rounds per protocol is the lower bound. Round k (1 ≤ k < N) pairs
//! every node i with (i + k) mod N: each node sends once and receives once, and the N-1 rounds
//! cover every ordered pair exactly once, for odd and even N alike.
//!
//! Exclusive pairing: no node is in more than one test per round, sending or receiving. Every
//! node is in 2(N-1) tests, so 2(N-1) rounds is the lower bound for even N; for odd N a round
//! holds at most (N-1)/2 tests, so N(N-1) / ((N-1)/2) = 2N rounds. The circle method gives N-1
//! perfect matchings of N nodes (even N; odd N adds an idle slot: N matchings), and each
//! matching is run once in each direction: both bounds are met.
//!
//! IP families and networks: each family's mesh holds the nodes with an address in it, and gets
//! its own rounds (a segment per protocol), so a dual-stack mesh of N nodes takes 2(N-1) rounds
//! per protocol in duplex pairing. Two families on a node's link at once would share it. A node
//! with a server on the host network and one on the pod network is two of the run's nodes, one
//! in each network's meshes; the networks' rounds follow each other like the families', and the
//! measuring stage keeps a machine's two servers out of tests at the same time.
//!
//! Rounds are computed on demand, so a 5,000-node plan allocates nothing per pair.

use std::time::Duration;

use clap::ValueEnum;
use serde::Serialize;

use crate::iperf3::Protocol;
use crate::targets::{IpFamily, Network};

/// Where clients run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every ordered pair of nodes; the client runs on the source node.
    Mesh,
    /// This process is the only client; it measures from its own node to every other node.
    Star,
}

/// Which tests may share a round in a mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pairing {
    /// Duplex rounds, switching to exclusive for the rest of the run as soon as a duplex test
    /// shows its node's CPU shared by its two tests was the limit; the duplex tests done so far
    /// are measured again alone.
    Auto,
    /// Each node sends one test and receives another: N-1 rounds per protocol.
    Duplex,
    /// Each node is in at most one test: 2(N-1) rounds (even N) or 2N (odd N) per protocol.
    Exclusive,
}

/// One test: indexes into the run's node list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pair {
    pub source: usize,
    pub destination: usize,
}

/// The shape of the tests of one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Every ordered pair of `nodes` nodes.
    Mesh { nodes: usize, pairing: Pairing },
    /// Node 0 is the only client; it sends to every other of `nodes` nodes.
    Star { nodes: usize },
}

impl Topology {
    fn nodes(self) -> usize {
        match self {
            Topology::Mesh { nodes, .. } | Topology::Star { nodes } => nodes,
        }
    }

    /// The same shape over `nodes` nodes.
    fn over(self, nodes: usize) -> Topology {
        match self {
            Topology::Mesh { pairing, .. } => Topology::Mesh { nodes, pairing },
            Topology::Star { .. } => Topology::Star { nodes },
        }
    }
}

/// The full cycle of rounds: for each network and IP family, every protocol's rounds, one after
/// the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    topology: Topology,
    protocols: Vec<Protocol>,
    segments: Vec<Segment>,
}

/// The nodes of one network with an address in one IP family: a mesh (or star) of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mesh {
    pub network: Network,
    pub family: IpFamily,
    /// The run's node indexes of its nodes, ascending (in star mode the source, node 0, first).
    pub members: Vec<usize>,
}

/// The rounds of one protocol over one mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub protocol: Protocol,
    pub family: IpFamily,
    pub network: Network,
    /// Over the family's nodes.
    pub topology: Topology,
    /// The run's node index of each of the family's nodes; None: every node, in order.
    members: Option<Vec<usize>>,
    /// Cycle index of the segment's first round and first test.
    first_round: usize,
    first_test: usize,
}

impl Segment {
    /// Rounds, each the lower bound: N-1 for duplex meshes and stars, 2(N-1) (even N) or 2N
    /// (odd N) for exclusive meshes.
    pub fn rounds(&self) -> usize {
        let n = self.topology.nodes();
        match self.topology {
            _ if n < 2 => 0,
            Topology::Mesh { pairing: Pairing::Exclusive, .. } => 2 * matchings(n),
            _ => n - 1,
        }
    }

    /// Tests in every round.
    pub fn tests_per_round(&self) -> usize {
        match self.topology {
            Topology::Mesh { nodes, .. } if nodes < 2 => 0,
            Topology::Mesh { nodes, pairing: Pairing::Duplex | Pairing::Auto } => nodes,
            Topology::Mesh { nodes, pairing: Pairing::Exclusive } => nodes / 2,
            Topology::Star { .. } => 1,
        }
    }

    /// Directed pairs the segment covers.
    pub fn pairs(&self) -> usize {
        match self.topology {
            Topology::Mesh { nodes, .. } => nodes * nodes.saturating_sub(1),
            Topology::Star { nodes } => nodes.saturating_sub(1),
        }
    }

    fn tests(&self) -> usize {
        self.rounds() * self.tests_per_round()
    }
}

/// One round: tests that can run at the same time without sharing a node's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round<'a> {
    /// Position in the cycle, `0..Schedule::total_rounds()`.
    pub index: usize,
    pub protocol: Protocol,
    pub family: IpFamily,
    pub network: Network,
    topology: Topology,
    members: Option<&'a [usize]>,
    /// 1-based offset of this round within its segment.
    offset: usize,
}

impl Schedule {
    /// Every node in one family (IPv4) on one network (the host's): the schedule of a
    /// single-stack run.
    pub fn new(topology: Topology, protocols: Vec<Protocol>) -> Self {
        let members = (0..topology.nodes()).collect();
        Schedule::of_meshes(topology, protocols, vec![Mesh { network: Network::Host, family: IpFamily::Ipv4, members }])
    }

    /// The meshes, in order, each a mesh (or star) of its nodes. Each protocol of each mesh gets
    /// its own rounds.
    pub fn of_meshes(topology: Topology, protocols: Vec<Protocol>, meshes: Vec<Mesh>) -> Self {
        let mut segments = Vec::new();
        let (mut first_round, mut first_test) = (0, 0);
        for Mesh { network, family, members } in meshes {
            let everyone = members.len() == topology.nodes() && members.iter().enumerate().all(|(i, &m)| i == m);
            for &protocol in &protocols {
                let segment = Segment {
                    protocol,
                    family,
                    network,
                    topology: topology.over(members.len()),
                    members: (!everyone).then(|| members.clone()),
                    first_round,
                    first_test,
                };
                if segment.rounds() == 0 {
                    continue;
                }
                first_round += segment.rounds();
                first_test += segment.tests();
                segments.push(segment);
            }
        }
        Schedule { topology, protocols, segments }
    }

    /// The whole run's shape (every node).
    pub fn topology(&self) -> Topology {
        self.topology
    }

    pub fn protocols(&self) -> &[Protocol] {
        &self.protocols
    }

    /// The segments of the cycle, in order: each protocol of each mesh.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The IP families measured, in order.
    pub fn families(&self) -> Vec<IpFamily> {
        let mut families: Vec<IpFamily> = self.segments.iter().map(|s| s.family).collect();
        families.sort();
        families.dedup();
        families
    }

    /// The networks measured, in order.
    pub fn networks(&self) -> Vec<Network> {
        let mut networks: Vec<Network> = self.segments.iter().map(|s| s.network).collect();
        networks.dedup();
        networks
    }

    /// Rounds of the largest segment: for a single-stack run, the rounds per protocol.
    pub fn rounds_per_protocol(&self) -> usize {
        self.segments.iter().map(Segment::rounds).max().unwrap_or(0)
    }

    /// Rounds in the whole cycle (all families and protocols).
    pub fn total_rounds(&self) -> usize {
        self.segments.last().map_or(0, |s| s.first_round + s.rounds())
    }

    /// Tests in the whole cycle.
    pub fn total_tests(&self) -> usize {
        self.segments.last().map_or(0, |s| s.first_test + s.tests())
    }

    /// Directed pairs of the largest segment: for a single-stack run, the pairs per protocol.
    pub fn pairs_per_protocol(&self) -> usize {
        self.segments.iter().map(Segment::pairs).max().unwrap_or(0)
    }

    /// Tests in the largest round.
    pub fn tests_per_round(&self) -> usize {
        self.segments.iter().map(Segment::tests_per_round).max().unwrap_or(0)
    }

    /// The round at `index` of the cycle (taken modulo the cycle length).
    pub fn round(&self, index: usize) -> Option<Round<'_>> {
        let total = self.total_rounds();
        if total == 0 {
            return None;
        }
        let index = index % total;
        let segment = self.segment_of_round(index);
        Some(Round {
            index,
            protocol: segment.protocol,
            family: segment.family,
            network: segment.network,
            topology: segment.topology,
            members: segment.members.as_deref(),
            offset: index - segment.first_round + 1,
        })
    }

    fn segment_of_round(&self, index: usize) -> &Segment {
        let i = self.segments.partition_point(|s| s.first_round <= index);
        &self.segments[i - 1]
    }

    /// The round of test `test` (tests numbered round by round; past the cycle's end, the
    /// rounds of the next laps: `total_rounds()` and up).
    fn round_of_test(&self, test: usize) -> usize {
        let (laps, test) = (test / self.total_tests(), test % self.total_tests());
        let i = self.segments.partition_point(|s| s.first_test <= test);
        let segment = &self.segments[i - 1];
        laps * self.total_rounds() + segment.first_round + (test - segment.first_test) / segment.tests_per_round()
    }

    /// The cycle index of the first test of round `round` (`< total_rounds()`).
    fn first_test_of_round(&self, round: usize) -> usize {
        let segment = self.segment_of_round(round);
        segment.first_test + (round - segment.first_round) * segment.tests_per_round()
    }
}

impl<'a> Round<'a> {
    /// The tests of this round, generated lazily, as the run's node indexes.
    pub fn pairs(self) -> Box<dyn Iterator<Item = Pair> + 'a> {
        let local = self.local_pairs();
        match self.members {
            None => local,
            Some(members) => {
                Box::new(local.map(|p| Pair { source: members[p.source], destination: members[p.destination] }))
            }
        }
    }

    /// The tests as indexes into the segment's nodes.
    fn local_pairs(self) -> Box<dyn Iterator<Item = Pair> + 'a> {
        let offset = self.offset;
        match self.topology {
            Topology::Star { nodes } => Box::new(std::iter::once(Pair { source: 0, destination: offset % nodes })),
            Topology::Mesh { nodes, pairing: Pairing::Duplex | Pairing::Auto } => {
                Box::new((0..nodes).map(move |source| Pair { source, destination: (source + offset) % nodes }))
            }
            Topology::Mesh { nodes, pairing: Pairing::Exclusive } => {
                // Offsets 1, 2 run matching 0 one way then the other; 3, 4 matching 1; ...
                let matching = (offset - 1) / 2;
                let reversed = offset.is_multiple_of(2);
                Box::new(matching_pairs(nodes, matching).map(move |(a, b)| {
                    let (source, destination) = if reversed { (b, a) } else { (a, b) };
                    Pair { source, destination }
                }))
            }
        }
    }
}

/// Perfect matchings the circle method makes for `n` nodes: n-1 for even n, n for odd n.
fn matchings(n: usize) -> usize {
    if n.is_multiple_of(2) { n - 1 } else { n }
}

/// The undirected pairs of matching `m` by the circle method: slot `size-1` stays fixed, the
/// others turn. Odd `n` gets an extra slot `n`, whose partner sits the matching out.
fn matching_pairs(n: usize, m: usize) -> impl Iterator<Item = (usize, usize)> {
    let size = n + n % 2;
    let ring = size - 1;
    let fixed = std::iter::once((m, ring));
    let others = (1..size / 2).map(move |k| ((m + k) % ring, (m + ring - k) % ring));
    fixed.chain(others).filter(move |(a, b)| *a < n && *b < n)
}

/// What one test is expected to cost beyond `--duration` when planning a budget: process start,
/// connection, parameter exchange and results. Measured on the lab: about 40 ms per test
/// (docs/performance.md); 100 ms leaves room for pods/exec set-up in a cluster.
pub const TEST_ALLOWANCE: Duration = Duration::from_millis(100);

/// One planned test: a pair and the round (cycle index, protocol, IP family and network) it
/// belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedTest {
    /// Cycle index of the round, `0..Schedule::total_rounds()`.
    pub round: usize,
    pub protocol: Protocol,
    pub family: IpFamily,
    pub network: Network,
    pub pair: Pair,
}

/// Which tests of the cycle one run measures: a slice of the cycle's tests in round order,
/// continuing where the previous run's slice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Cycle index of the first test this run measures (tests are numbered round by round).
    pub first_test: usize,
    /// Tests this run measures.
    pub tests: usize,
    /// How far the next run's slice starts after this one's: `tests` less one wave, so that
    /// each run first measures again the last wave of the previous run's slice, and a run
    /// that overran its budget by up to one wave (a hanging test, retries) leaves no pair of
    /// its slice unmeasured in the cycle. All of `tests` when one wave is all a run holds.
    pub stride: usize,
    /// Tests in the full cycle (all protocols).
    pub cycle_tests: usize,
    /// Cycle index of the round of the first test.
    pub first_round: usize,
    /// Rounds this run's tests belong to (the first and last may be partly measured).
    pub rounds: usize,
    /// Rounds in the full cycle (all protocols).
    pub cycle_rounds: usize,
    /// Consecutive runs needed to measure every pair once.
    pub cycle_runs: usize,
    /// Tests that run at once: --concurrency, or fewer when a round has fewer tests.
    pub lanes: usize,
    /// Tests each lane runs back to back in this run.
    pub waves: usize,
    /// What one test is expected to take: --duration plus [`TEST_ALLOWANCE`].
    #[serde(rename = "test_estimate_seconds", serialize_with = "as_seconds")]
    pub test_estimate: Duration,
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "a budget of {budget_seconds}s is shorter than one test (about {test_seconds}s): raise --budget or lower --duration"
    )]
    BudgetBelowOneTest { budget_seconds: u64, test_seconds: u64 },
}

impl Plan {
    /// Plans the run with index `run_index` (consecutive runs have consecutive indexes). At most
    /// `concurrency` tests run at once, each lane running tests of `test_duration` plus
    /// [`TEST_ALLOWANCE`] back to back, so a budget holds `lanes × ⌊budget / test⌋` tests, whole
    /// rounds or not. Run k measures `tests` of the cycle's tests from k·[`Plan::stride`] modulo
    /// the cycle, so `cycle_runs` consecutive runs cover every pair, even when each overran its
    /// budget by a wave. The tests of a slice still never share a
    /// node's direction: the measuring stage starts each only when its nodes are free.
    pub fn new(
        schedule: &Schedule,
        budget: Option<Duration>,
        test_duration: Duration,
        concurrency: usize,
        run_index: u64,
    ) -> Result<Plan, PlanError> {
        let cycle_tests = schedule.total_tests();
        let lanes = concurrency.clamp(1, schedule.tests_per_round().max(1));
        let test_estimate = test_duration + TEST_ALLOWANCE;
        let waves_fit = match budget {
            None => usize::MAX,
            Some(budget) => {
                let fit = (budget.as_secs_f64() / test_estimate.as_secs_f64()).floor() as usize;
                if fit == 0 {
                    return Err(PlanError::BudgetBelowOneTest {
                        budget_seconds: budget.as_secs(),
                        test_seconds: test_estimate.as_secs_f64().ceil() as u64,
                    });
                }
                fit
            }
        };
        // A mesh narrower than the lanes (an IP family or network few nodes have) runs fewer tests
        // at once: each of its rounds holds all its nodes, a wave a round. When there is one, the
        // budget is shared out by the cycle's waves.
        let cycle_waves: usize =
            schedule.segments.iter().map(|s| s.tests().div_ceil(lanes.min(s.tests_per_round()).max(1))).sum();
        let uniform = schedule.segments.iter().all(|s| s.tests_per_round() >= lanes);
        let fit = if uniform {
            waves_fit.saturating_mul(lanes).min(cycle_tests)
        } else if waves_fit >= cycle_waves {
            cycle_tests
        } else {
            ((waves_fit as u128 * cycle_tests as u128) / cycle_waves as u128) as usize
        };
        let waves = if uniform || fit == 0 {
            fit.div_ceil(lanes)
        } else {
            (fit as u128 * cycle_waves as u128).div_ceil(cycle_tests as u128) as usize
        };
        let stride = if fit < cycle_tests && fit > lanes { fit - lanes } else { fit };
        let (first_test, cycle_runs) = if fit == cycle_tests {
            (0, 1)
        } else {
            // Run k measures tests [k·stride, k·stride + fit) modulo the cycle, so consecutive
            // runs k..k+R-1 cover ·stride + fit tests.
            let first = ((u128::from(run_index) * stride as u128) % cycle_tests as u128) as usize;
            (first, (cycle_tests - fit).div_ceil(stride) + 1)
        };
        let (first_round, last_round) = if fit == 0 {
            (0, 0)
        } else {
            (schedule.round_of_test(first_test), schedule.round_of_test(first_test + fit - 1))
        };
        Ok(Plan {
            first_test,
            tests: fit,
            stride,
            cycle_tests,
            first_round,
            rounds: if fit == 0 { 0 } else { last_round - first_round + 1 },
            cycle_rounds: schedule.total_rounds(),
            cycle_runs,
            lanes,
            waves,
            test_estimate,
        })
    }

    /// The tests of this run, in order, generated lazily: its rounds' tests, wrapping around
    /// the cycle, from the first test of the slice.
    pub fn planned<'a>(&self, schedule: &'a Schedule) -> impl Iterator<Item = PlannedTest> + 'a {
        let skip = if self.tests == 0 { 0 } else { self.first_test - schedule.first_test_of_round(self.first_round) };
        self.rounds(schedule)
            .flat_map(|round| {
                round.pairs().map(move |pair| PlannedTest {
                    round: round.index,
                    protocol: round.protocol,
                    family: round.family,
                    network: round.network,
                    pair,
                })
            })
            .skip(skip)
            .take(self.tests)
    }

    /// The rounds this run's tests belong to, in order.
    pub fn rounds<'a>(&self, schedule: &'a Schedule) -> impl Iterator<Item = Round<'a>> + 'a {
        let first = self.first_round;
        (0..self.rounds).filter_map(move |i| schedule.round(first + i))
    }

    /// The plan of a run that measures its whole cycle of `tests` tests in `rounds` rounds, a
    /// round a wave, with 1-s tests: what tests and benchmarks of the later stages start from.
    #[doc(hidden)]
    pub fn whole_cycle(tests: usize, rounds: usize) -> Plan {
        Plan {
            first_test: 0,
            tests,
            stride: tests,
            cycle_tests: tests,
            first_round: 0,
            rounds,
            cycle_rounds: rounds,
            cycle_runs: 1,
            lanes: tests.div_ceil(rounds.max(1)).max(1),
            waves: rounds,
            test_estimate: Duration::from_secs(1) + TEST_ALLOWANCE,
        }
    }

    /// Estimated wall time of the whole run: its waves, back to back.
    pub fn estimate(&self) -> Duration {
        self.test_estimate * u32::try_from(self.waves).unwrap_or(u32::MAX)
    }
}

/// The index of the run that starts at `unix_seconds` when runs start every `interval`:
/// the nearest interval slot, so a CronJob that starts a few seconds late keeps its place.
pub fn run_index(unix_seconds: u64, interval: Duration) -> u64 {
    let interval = interval.as_secs().max(1);
    (unix_seconds + interval / 2) / interval
}

fn as_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    const BOTH: [Protocol; 2] = [Protocol::Tcp, Protocol::Udp];

    fn mesh(nodes: usize) -> Topology {
        Topology::Mesh { nodes, pairing: Pairing::Duplex }
    }

    /// Meshes on the host network, one per family.
    fn on_host(families: &[(IpFamily, Vec<usize>)]) -> Vec<Mesh> {
        families
            .iter()
            .map(|(family, members)| Mesh { network: Network::Host, family: *family, members: members.clone() })
            .collect()
    }

    /// Every pair once per protocol, no self test; returns the rounds' pairs for further checks.
    fn cover_every_pair_once(schedule: &Schedule, n: usize) -> Vec<Vec<Pair>> {
        let mut rounds = Vec::new();
        for protocol in BOTH {
            let mut seen = HashSet::new();
            for round in (0..schedule.total_rounds()).filter_map(|i| schedule.round(i)) {
                if round.protocol != protocol {
                    continue;
                }
                let pairs: Vec<Pair> = round.pairs().collect();
                assert_eq!(pairs.len(), schedule.tests_per_round(), "n={n}");
                for pair in &pairs {
                    assert_ne!(pair.source, pair.destination, "n={n}: self test");
                    assert!(pair.source < n && pair.destination < n);
                    assert!(seen.insert(*pair), "n={n}: {pair:?} measured twice");
                }
                rounds.push(pairs);
            }
            assert_eq!(seen.len(), n * n.saturating_sub(1), "n={n}: pairs missing");
        }
        rounds
    }

    #[test]
    fn duplex_mesh_reaches_the_lower_bound_and_covers_every_pair_once_for_n_1_to_60() {
        for n in 1..=60 {
            let schedule = Schedule::new(mesh(n), BOTH.to_vec());
            assert_eq!(schedule.rounds_per_protocol(), n.saturating_sub(1), "n={n}");
            for round in cover_every_pair_once(&schedule, n) {
                let mut senders = HashSet::new();
                let mut receivers = HashSet::new();
                for pair in round {
                    assert!(senders.insert(pair.source), "n={n}: node {} sends twice", pair.source);
                    assert!(receivers.insert(pair.destination), "n={n}: node {} receives twice", pair.destination);
                }
            }
        }
    }

    #[test]
    fn exclusive_mesh_reaches_its_lower_bound_and_keeps_nodes_in_one_test_for_n_1_to_60() {
        for n in 1..=60 {
            let schedule = Schedule::new(Topology::Mesh { nodes: n, pairing: Pairing::Exclusive }, BOTH.to_vec());
            let bound = match n {
                0 | 1 => 0,
                n if n % 2 == 0 => 2 * (n - 1),
                n => 2 * n,
            };
            assert_eq!(schedule.rounds_per_protocol(), bound, "n={n}");
            for round in cover_every_pair_once(&schedule, n) {
                let mut busy = HashSet::new();
                for pair in round {
                    assert!(busy.insert(pair.source), "n={n}: node {} in two tests", pair.source);
                    assert!(busy.insert(pair.destination), "n={n}: node {} in two tests", pair.destination);
                }
            }
        }
    }

    #[test]
    fn star_sends_from_node_zero_to_every_other_node_one_at_a_time() {
        let schedule = Schedule::new(Topology::Star { nodes: 5 }, vec![Protocol::Tcp]);
        let pairs: Vec<Pair> = (0..schedule.total_rounds())
            .filter_map(|i| schedule.round(i))
            .flat_map(|r| r.pairs().collect::<Vec<_>>())
            .collect();
        let destinations: Vec<usize> = pairs.iter().map(|p| p.destination).collect();
        assert!(pairs.iter().all(|p| p.source == 0));
        assert_eq!(destinations, [1, 2, 3, 4]);
        assert_eq!(schedule.tests_per_round(), 1);
    }

    #[test]
    fn protocols_follow_each_other() {
        let schedule = Schedule::new(mesh(3), BOTH.to_vec());
        let protocols: Vec<Protocol> = (0..4).filter_map(|i| schedule.round(i)).map(|r| r.protocol).collect();
        assert_eq!(protocols, [Protocol::Tcp, Protocol::Tcp, Protocol::Udp, Protocol::Udp]);
    }

    #[test]
    fn without_budget_one_run_is_the_whole_cycle() {
        let schedule = Schedule::new(mesh(50), BOTH.to_vec());
        let plan = Plan::new(&schedule, None, Duration::from_secs(5), 1000, 12345).unwrap();
        assert_eq!((plan.first_test, plan.tests, plan.cycle_tests, plan.cycle_runs), (0, 4900, 4900, 1));
        assert_eq!((plan.first_round, plan.rounds, plan.cycle_rounds, plan.lanes, plan.waves), (0, 98, 98, 50, 98));
        let planned: Vec<PlannedTest> = plan.planned(&schedule).collect();
        assert_eq!(planned.len(), 4900);
        assert_eq!(planned[50].round, 1);
        assert_eq!(planned[4899].protocol, Protocol::Udp);
    }

    /// Every pair of every protocol is covered by `cycle_runs` consecutive runs from `start`,
    /// also when run `overran` measured only its first `stride` tests (its last wave lost to
    /// an overrun).
    fn assert_cycle_covered(schedule: &Schedule, plan_of: &dyn Fn(u64) -> Plan, start: u64, overran: Option<u64>) {
        let first = plan_of(start);
        let mut seen: HashMap<(Protocol, Pair), usize> = HashMap::new();
        for run in start..start + first.cycle_runs as u64 {
            let plan = plan_of(run);
            assert_eq!(plan.cycle_runs, first.cycle_runs);
            let planned: Vec<PlannedTest> = plan.planned(schedule).collect();
            assert_eq!(planned.len(), plan.tests, "{plan:?}");
            let measured = if Some(run) == overran { plan.stride } else { plan.tests };
            for test in planned.into_iter().take(measured) {
                assert!(test.round >= plan.first_round || plan.first_round + plan.rounds > plan.cycle_rounds);
                *seen.entry((test.protocol, test.pair)).or_default() += 1;
            }
        }
        let pairs = schedule.pairs_per_protocol() * schedule.protocols().len();
        assert_eq!(seen.len(), pairs, "every pair of every protocol in one cycle: {first:?}");
    }

    #[test]
    fn consecutive_runs_continue_where_the_last_stopped_and_cover_the_cycle() {
        // (nodes, pairing, concurrency, budget in 6-s tests): whole rounds, parts of rounds, a
        // round longer than the budget, a slice that wraps around the cycle.
        let cases = [
            (2, Pairing::Duplex, 1000, 1),
            (3, Pairing::Duplex, 1000, 2),
            (7, Pairing::Duplex, 2, 2),
            (10, Pairing::Duplex, 3, 1),
            (11, Pairing::Exclusive, 2, 7),
            (20, Pairing::Duplex, 1000, 13),
            (64, Pairing::Duplex, 8, 5),
            (101, Pairing::Duplex, 1000, 100),
        ];
        for (n, pairing, concurrency, waves) in cases {
            let schedule = Schedule::new(Topology::Mesh { nodes: n, pairing }, BOTH.to_vec());
            let budget = Duration::from_secs_f64(waves as f64 * 5.1 + 0.05);
            let plan_of = |run| Plan::new(&schedule, Some(budget), Duration::from_secs(5), concurrency, run).unwrap();
            let plan = plan_of(0);
            let lanes = concurrency.min(schedule.tests_per_round());
            assert_eq!(plan.lanes, lanes, "n={n}");
            let fit = (waves * lanes).min(plan.cycle_tests);
            assert_eq!(plan.tests, fit, "n={n}: every lane busy for the whole budget");
            assert!(plan.estimate() <= budget, "n={n}: {plan:?}");
            let stride = if fit < plan.cycle_tests && fit > lanes { fit - lanes } else { fit };
            assert_eq!(plan.stride, stride, "n={n}: one wave again, when a run holds more than one");
            let runs = if fit == plan.cycle_tests { 1 } else { (plan.cycle_tests - fit).div_ceil(stride) + 1 };
            assert_eq!(plan.cycle_runs, runs, "n={n}");
            assert_cycle_covered(&schedule, &plan_of, 987_654, None);
            let last = 987_654 + plan.cycle_runs as u64 - 1;
            if plan.stride < plan.tests {
                // Any run but the cycle's last may lose its last wave: the next measures it.
                assert_cycle_covered(&schedule, &plan_of, 987_654, Some(987_654));
                assert_cycle_covered(&schedule, &plan_of, 987_654, Some(last - 1));
            }
        }
    }

    #[test]
    fn a_large_mesh_at_the_charts_defaults_spends_the_budget_on_whole_waves() {
        // 1,000 nodes, TCP + UDP, 5-s tests, 64 at once, a 276-s budget: 54 waves of 64 tests.
        let schedule = Schedule::new(mesh(1000), BOTH.to_vec());
        let plan = Plan::new(&schedule, Some(Duration::from_secs(276)), Duration::from_secs(5), 64, 7).unwrap();
        assert_eq!((plan.lanes, plan.waves, plan.tests, plan.stride), (64, 54, 54 * 64, 53 * 64));
        assert_eq!(plan.cycle_runs, (1_998_000usize - 54 * 64).div_ceil(53 * 64) + 1);
        assert_eq!(plan.first_test, 7 * 53 * 64);
    }

    #[test]
    fn a_budget_below_one_test_is_an_error() {
        let schedule = Schedule::new(mesh(4), vec![Protocol::Tcp]);
        let err = Plan::new(&schedule, Some(Duration::from_secs(5)), Duration::from_secs(5), 64, 0).unwrap_err();
        assert!(err.to_string().contains("--budget"), "{err}");
        assert!(err.to_string().contains("one test"), "{err}");
    }

    #[test]
    fn run_index_tolerates_late_starts() {
        let interval = Duration::from_secs(300);
        assert_eq!(run_index(3000, interval), 10);
        assert_eq!(run_index(3007, interval), 10);
        assert_eq!(run_index(3300 - 3, interval), 11);
    }

    #[test]
    fn each_family_is_a_mesh_of_its_nodes_in_rounds_of_its_own() {
        // Nodes 0-3 dual-stack, 4 IPv4 only, 5 IPv6 only.
        let families = vec![(IpFamily::Ipv4, vec![0, 1, 2, 3, 4]), (IpFamily::Ipv6, vec![0, 1, 2, 3, 5])];
        let schedule = Schedule::of_meshes(mesh(6), BOTH.to_vec(), on_host(&families));
        assert_eq!(schedule.families(), [IpFamily::Ipv4, IpFamily::Ipv6]);
        assert_eq!((schedule.total_rounds(), schedule.total_tests(), schedule.tests_per_round()), (16, 80, 5));
        let order: Vec<(IpFamily, Protocol)> = schedule.segments().iter().map(|s| (s.family, s.protocol)).collect();
        assert_eq!(
            order,
            [
                (IpFamily::Ipv4, Protocol::Tcp),
                (IpFamily::Ipv4, Protocol::Udp),
                (IpFamily::Ipv6, Protocol::Tcp),
                (IpFamily::Ipv6, Protocol::Udp)
            ]
        );
        let mut seen: HashMap<(IpFamily, Protocol), HashSet<Pair>> = HashMap::new();
        for round in (0..schedule.total_rounds()).filter_map(|i| schedule.round(i)) {
            let members = &families.iter().find(|(f, _)| *f == round.family).unwrap().1;
            let (mut senders, mut receivers) = (HashSet::new(), HashSet::new());
            for pair in round.pairs() {
                assert!(members.contains(&pair.source) && members.contains(&pair.destination), "{round:?} {pair:?}");
                assert!(senders.insert(pair.source) && receivers.insert(pair.destination), "{round:?}");
                assert!(seen.entry((round.family, round.protocol)).or_default().insert(pair));
            }
        }
        assert!(seen.values().all(|pairs| pairs.len() == 20), "every pair of each family's mesh once");
        // A plan over the cycle sees every test, with its family.
        let plan = Plan::new(&schedule, None, Duration::from_secs(5), 64, 0).unwrap();
        let planned: Vec<PlannedTest> = plan.planned(&schedule).collect();
        assert_eq!((planned.len(), plan.rounds, plan.waves), (80, 16, 16));
        assert_eq!(planned.iter().filter(|t| t.family == IpFamily::Ipv6).count(), 40);
    }

    #[test]
    fn each_network_is_a_mesh_of_its_own_after_the_other() {
        // Nodes 0-3 are the host-network servers of machines a-d, 4-6 the pod-network servers
        // of a, b and d.
        let meshes = vec![
            Mesh { network: Network::Host, family: IpFamily::Ipv4, members: vec![0, 1, 2, 3] },
            Mesh { network: Network::Pod, family: IpFamily::Ipv4, members: vec![4, 5, 6] },
        ];
        let schedule = Schedule::of_meshes(mesh(7), vec![Protocol::Tcp], meshes);
        assert_eq!(schedule.networks(), [Network::Host, Network::Pod]);
        assert_eq!(schedule.families(), [IpFamily::Ipv4]);
        assert_eq!((schedule.total_rounds(), schedule.total_tests()), (3 + 2, 12 + 6));
        let plan = Plan::new(&schedule, None, Duration::from_secs(5), 64, 0).unwrap();
        let planned: Vec<PlannedTest> = plan.planned(&schedule).collect();
        for test in &planned {
            let host = test.pair.source < 4 && test.pair.destination < 4;
            let pod = test.pair.source >= 4 && test.pair.destination >= 4;
            assert!(if test.network == Network::Host { host } else { pod }, "{test:?}");
        }
        let rounds_of = |n: Network| planned.iter().filter(|t| t.network == n).map(|t| t.round).collect::<HashSet<_>>();
        assert_eq!((rounds_of(Network::Host), rounds_of(Network::Pod)), ([0, 1, 2].into(), [3, 4].into()));
    }

    #[test]
    fn a_family_few_nodes_have_is_planned_by_its_waves() {
        // IPv4 over 8 nodes: 7 rounds of 8 tests, 7 waves at 8 lanes; IPv6 over 3: 2 rounds of
        // 3, a wave each. 62 tests in 9 waves, not ⌈62 / 8⌉ = 8.
        let families = vec![(IpFamily::Ipv4, (0..8).collect()), (IpFamily::Ipv6, vec![0, 3, 5])];
        let schedule = Schedule::of_meshes(mesh(8), vec![Protocol::Tcp], on_host(&families));
        let test = Duration::from_secs(5);
        let budget = |waves: u32| Some((test + TEST_ALLOWANCE) * waves + Duration::from_millis(10));
        let whole = Plan::new(&schedule, budget(9), test, 8, 0).unwrap();
        assert_eq!((whole.tests, whole.cycle_runs, whole.waves), (62, 1, 9));
        let short = Plan::new(&schedule, budget(8), test, 8, 0).unwrap();
        assert!(short.tests < 62 && short.cycle_runs == 2, "{short:?}");
        assert!(short.estimate() <= budget(8).unwrap(), "{short:?}");
        // Every test is still measured over consecutive runs.
        let mut seen = HashSet::new();
        for run in 0..short.cycle_runs as u64 {
            let plan = Plan::new(&schedule, budget(8), test, 8, run).unwrap();
            seen.extend(plan.planned(&schedule).map(|t| (t.family, t.pair)));
        }
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn a_dual_stack_rotation_covers_every_family() {
        let families = vec![(IpFamily::Ipv4, vec![0, 1, 2, 3, 4, 5, 6]), (IpFamily::Ipv6, vec![1, 2, 4])];
        let schedule = Schedule::of_meshes(mesh(7), BOTH.to_vec(), on_host(&families));
        // 6 rounds of 7 and 2 of 3 per protocol: 2 × (42 + 6) tests.
        assert_eq!(schedule.total_tests(), 96);
        for (concurrency, waves) in [(3, 2), (7, 3), (2, 5)] {
            let budget = Duration::from_secs_f64(waves as f64 * 5.1 + 0.05);
            let plan_of = |run| Plan::new(&schedule, Some(budget), Duration::from_secs(5), concurrency, run).unwrap();
            let first = plan_of(11);
            let mut seen = HashSet::new();
            for run in 11..11 + first.cycle_runs as u64 {
                let plan = plan_of(run);
                let planned: Vec<PlannedTest> = plan.planned(&schedule).collect();
                assert_eq!(planned.len(), plan.tests, "{plan:?}");
                seen.extend(planned.into_iter().map(|t| (t.family, t.protocol, t.pair)));
            }
            assert_eq!(seen.len(), 96, "concurrency {concurrency}: {first:?}");
        }
    }

    #[test]
    fn a_5000_node_round_is_lazy() {
        let schedule = Schedule::new(mesh(5000), BOTH.to_vec());
        assert_eq!(schedule.total_rounds(), 9998);
        let round = schedule.round(9997).unwrap();
        assert_eq!(round.protocol, Protocol::Udp);
        assert_eq!(round.pairs().count(), 5000);
    }
}
