//! Which tests run together: rounds in which no node sends more than one test and no node
//! receives more than one test, and the rotation of rounds across runs when a run's budget
//! cannot hold the whole mesh. Pure: nodes are indexes, nothing here runs anything.
//!
//! Duplex pairing (the default): the mesh of N nodes has N(N-1) directed pairs and every node
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
//! Rounds are computed on demand, so a 5,000-node plan allocates nothing per pair.

use std::time::Duration;

use serde::Serialize;

use crate::config::{Pairing, Protocol};

/// Time a test needs beyond its duration (process start, connection, parameter exchange,
/// results), used to estimate how many rounds fit in a budget.
pub const TEST_OVERHEAD: Duration = Duration::from_secs(1);

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

/// The full cycle of rounds: every protocol's rounds, one protocol after the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    topology: Topology,
    protocols: Vec<Protocol>,
}

/// One round: tests that can run at the same time without sharing a node's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Position in the cycle, `0..Schedule::total_rounds()`.
    pub index: usize,
    pub protocol: Protocol,
    topology: Topology,
    /// 1-based offset of this round within its protocol.
    offset: usize,
    /// The part of the round's tests to run (skip, take): all of them unless the plan splits
    /// rounds into parts.
    part: (usize, usize),
}

impl Schedule {
    pub fn new(topology: Topology, protocols: Vec<Protocol>) -> Self {
        Schedule { topology, protocols }
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    pub fn protocols(&self) -> &[Protocol] {
        &self.protocols
    }

    fn nodes(&self) -> usize {
        match self.topology {
            Topology::Mesh { nodes, .. } | Topology::Star { nodes } => nodes,
        }
    }

    /// Rounds per protocol, each the lower bound: N-1 for duplex meshes and stars, 2(N-1)
    /// (even N) or 2N (odd N) for exclusive meshes.
    pub fn rounds_per_protocol(&self) -> usize {
        let n = self.nodes();
        match self.topology {
            _ if n < 2 => 0,
            Topology::Mesh { pairing: Pairing::Exclusive, .. } => 2 * matchings(n),
            _ => n - 1,
        }
    }

    /// Rounds in the whole cycle (all protocols).
    pub fn total_rounds(&self) -> usize {
        self.rounds_per_protocol() * self.protocols.len()
    }

    /// Directed pairs a protocol covers in one cycle.
    pub fn pairs_per_protocol(&self) -> usize {
        match self.topology {
            Topology::Mesh { nodes, .. } => nodes * nodes.saturating_sub(1),
            Topology::Star { nodes } => nodes.saturating_sub(1),
        }
    }

    /// Tests in every round.
    pub fn tests_per_round(&self) -> usize {
        match self.topology {
            Topology::Mesh { nodes, .. } if nodes < 2 => 0,
            Topology::Mesh { nodes, pairing: Pairing::Duplex } => nodes,
            Topology::Mesh { nodes, pairing: Pairing::Exclusive } => nodes / 2,
            Topology::Star { .. } => 1,
        }
    }

    /// The round at `index` of the cycle (taken modulo the cycle length).
    pub fn round(&self, index: usize) -> Option<Round> {
        let per_protocol = self.rounds_per_protocol();
        if per_protocol == 0 {
            return None;
        }
        let index = index % self.total_rounds();
        Some(Round {
            index,
            protocol: self.protocols[index / per_protocol],
            topology: self.topology,
            offset: index % per_protocol + 1,
            part: (0, usize::MAX),
        })
    }

    /// Estimated wall time of one round when at most `concurrency` tests run at once.
    pub fn round_estimate(&self, test_duration: Duration, concurrency: usize) -> Duration {
        let waves = self.tests_per_round().div_ceil(concurrency.max(1)).max(1);
        (test_duration + TEST_OVERHEAD) * u32::try_from(waves).unwrap_or(u32::MAX)
    }
}

impl Round {
    /// The tests of this round (of its part, if the plan split it), generated lazily.
    pub fn pairs(&self) -> Box<dyn Iterator<Item = Pair> + '_> {
        let (skip, take) = self.part;
        Box::new(self.all_pairs().skip(skip).take(take))
    }

    fn all_pairs(&self) -> Box<dyn Iterator<Item = Pair> + '_> {
        let offset = self.offset;
        match self.topology {
            Topology::Star { nodes } => Box::new(std::iter::once(Pair { source: 0, destination: offset % nodes })),
            Topology::Mesh { nodes, pairing: Pairing::Duplex } => {
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

/// Which rounds of the cycle one run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Cycle index of the first round this run measures.
    pub first_round: usize,
    /// Rounds this run measures.
    pub rounds: usize,
    /// Rounds in the full cycle (all protocols).
    pub cycle_rounds: usize,
    /// Consecutive runs needed to measure every pair once.
    pub cycle_runs: usize,
    /// Parts every round is split into when one round is longer than the budget (at the
    /// configured concurrency), one part per run; 1 when whole rounds fit.
    pub round_parts: usize,
    /// Which part of its round this run measures (0-based; always 0 for whole rounds).
    pub part: usize,
    /// Estimated wall time of one round (of one part, when rounds are split).
    #[serde(rename = "round_estimate_seconds", serialize_with = "as_seconds")]
    pub round_estimate: Duration,
    /// Tests in each part of a split round (`usize::MAX` for whole rounds).
    #[serde(skip)]
    pub part_tests: usize,
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
    /// Plans the run with index `run_index` (consecutive runs have consecutive indexes): as many
    /// whole rounds as fit in `budget`, continuing where the previous run stopped, so that
    /// `cycle_runs` consecutive runs cover every pair. At most `concurrency` tests run at once,
    /// so a round takes waves of `test_duration` plus [`TEST_OVERHEAD`] each. When even one
    /// round is longer than the budget (a large mesh at a low concurrency), every round is split
    /// into parts of whole waves that fit, and each run measures one part: the tests of a part
    /// are a subset of a round, so they still never share a node's direction.
    pub fn new(
        schedule: &Schedule,
        budget: Option<Duration>,
        test_duration: Duration,
        concurrency: usize,
        run_index: u64,
    ) -> Result<Plan, PlanError> {
        let cycle_rounds = schedule.total_rounds();
        let round_estimate = schedule.round_estimate(test_duration, concurrency);
        let whole = |first_round, rounds, cycle_runs| Plan {
            first_round,
            rounds,
            cycle_rounds,
            cycle_runs,
            round_parts: 1,
            part: 0,
            round_estimate,
            part_tests: usize::MAX,
        };
        let fit = match budget {
            None => cycle_rounds,
            Some(budget) => (budget.as_secs_f64() / round_estimate.as_secs_f64().max(1e-3)).floor() as usize,
        };
        if cycle_rounds == 0 {
            return Ok(whole(0, 0, 1));
        }
        if fit == 0 {
            let budget = budget.unwrap_or_default();
            return Plan::parts(schedule, budget, test_duration, concurrency, run_index);
        }
        let fit = fit.min(cycle_rounds);
        let cycle_runs = cycle_rounds.div_ceil(fit);
        let first_round = if fit == cycle_rounds {
            0
        } else {
            // Run k measures rounds [k·fit, (k+1)·fit) modulo the cycle.
            ((u128::from(run_index) * fit as u128) % cycle_rounds as u128) as usize
        };
        Ok(whole(first_round, fit, cycle_runs))
    }

    /// One part of one round per run, when a whole round is longer than `budget`.
    fn parts(
        schedule: &Schedule,
        budget: Duration,
        test_duration: Duration,
        concurrency: usize,
        run_index: u64,
    ) -> Result<Plan, PlanError> {
        let wave = test_duration + TEST_OVERHEAD;
        let waves_fit = (budget.as_secs_f64() / wave.as_secs_f64()).floor() as usize;
        if waves_fit == 0 {
            return Err(PlanError::BudgetBelowOneTest {
                budget_seconds: budget.as_secs(),
                test_seconds: wave.as_secs_f64().ceil() as u64,
            });
        }
        let concurrency = concurrency.max(1);
        let waves = schedule.tests_per_round().div_ceil(concurrency);
        // Parts as even as whole waves allow, none of them empty.
        let part_waves = waves.div_ceil(waves.div_ceil(waves_fit));
        let round_parts = waves.div_ceil(part_waves);
        let cycle_rounds = schedule.total_rounds();
        let cycle_runs = cycle_rounds * round_parts;
        let unit = (u128::from(run_index) % cycle_runs as u128) as usize;
        Ok(Plan {
            first_round: unit / round_parts,
            rounds: 1,
            cycle_rounds,
            cycle_runs,
            round_parts,
            part: unit % round_parts,
            round_estimate: wave * u32::try_from(part_waves).unwrap_or(u32::MAX),
            part_tests: part_waves * concurrency,
        })
    }

    /// The rounds of this run, in order (one part of one round, when rounds are split).
    pub fn rounds<'a>(&self, schedule: &'a Schedule) -> impl Iterator<Item = Round> + 'a {
        let first = self.first_round;
        // Whole rounds: part 0 of `usize::MAX` tests, i.e. all of them.
        let part = (self.part * self.part_tests, self.part_tests);
        (0..self.rounds).filter_map(move |i| schedule.round(first + i)).map(move |round| Round { part, ..round })
    }

    /// Tests this run plans.
    pub fn tests(&self, schedule: &Schedule) -> usize {
        self.rounds.saturating_mul(schedule.tests_per_round().min(self.part_tests))
    }

    /// Estimated wall time of the whole run.
    pub fn estimate(&self) -> Duration {
        self.round_estimate * u32::try_from(self.rounds).unwrap_or(u32::MAX)
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
        assert_eq!((plan.first_round, plan.rounds, plan.cycle_rounds, plan.cycle_runs), (0, 98, 98, 1));
    }

    #[test]
    fn consecutive_runs_continue_where_the_last_stopped_and_cover_the_cycle() {
        for n in [2, 3, 7, 20, 101] {
            let schedule = Schedule::new(mesh(n), BOTH.to_vec());
            for budget in [6u64, 13, 60, 600] {
                let plan =
                    Plan::new(&schedule, Some(Duration::from_secs(budget)), Duration::from_secs(5), 1000, 0).unwrap();
                let mut covered = HashSet::new();
                let start = 987_654;
                for run in start..start + plan.cycle_runs as u64 {
                    let plan =
                        Plan::new(&schedule, Some(Duration::from_secs(budget)), Duration::from_secs(5), 1000, run)
                            .unwrap();
                    assert!(plan.estimate() <= Duration::from_secs(budget));
                    for round in plan.rounds(&schedule) {
                        covered.insert(round.index);
                    }
                }
                assert_eq!(covered.len(), schedule.total_rounds(), "n={n} budget={budget}");
                let ideal = schedule.total_rounds().div_ceil(budget as usize / 6);
                assert_eq!(plan.cycle_runs, ideal, "n={n} budget={budget}");
            }
        }
    }

    #[test]
    fn a_budget_below_one_test_is_an_error() {
        let schedule = Schedule::new(mesh(4), vec![Protocol::Tcp]);
        let err = Plan::new(&schedule, Some(Duration::from_secs(5)), Duration::from_secs(5), 64, 0).unwrap_err();
        assert!(err.to_string().contains("--budget"), "{err}");
        assert!(err.to_string().contains("one test"), "{err}");
    }

    #[test]
    fn rounds_longer_than_the_budget_are_split_into_parts_that_cover_the_cycle() {
        // (nodes, pairing, concurrency, budget): rounds of 2 to 79 waves of 6 s, budgets of 1 to
        // 45 waves; parts never share a node's direction since each is a subset of a round.
        let cases = [
            (7, Pairing::Duplex, 2, 12),
            (10, Pairing::Duplex, 3, 6),
            (11, Pairing::Exclusive, 2, 7),
            (64, Pairing::Duplex, 8, 30),
            (5000, Pairing::Duplex, 64, 270),
        ];
        for (n, pairing, concurrency, budget) in cases {
            let schedule = Schedule::new(Topology::Mesh { nodes: n, pairing }, vec![Protocol::Tcp]);
            let budget = Duration::from_secs(budget);
            let plan_of = |run| Plan::new(&schedule, Some(budget), Duration::from_secs(5), concurrency, run).unwrap();
            let first = plan_of(0);
            let waves = schedule.tests_per_round().div_ceil(concurrency);
            assert!(first.round_parts > 1, "n={n}: {first:?}");
            // As few parts as fit: one part fewer would not fit in the budget.
            let wave_seconds = 6;
            assert!(waves.div_ceil(first.round_parts - 1) * wave_seconds > budget.as_secs() as usize, "n={n}");
            assert_eq!(first.cycle_runs, schedule.total_rounds() * first.round_parts);
            if n > 100 {
                // A 5,000-node round at 64 tests at once: 79 waves in two parts of 40 and 39.
                assert_eq!((first.round_parts, first.round_estimate), (2, Duration::from_secs(240)));
                continue;
            }
            let mut seen: HashMap<Pair, usize> = HashMap::new();
            for run in 1_000..1_000 + first.cycle_runs as u64 {
                let plan = plan_of(run);
                assert!(plan.estimate() <= budget, "n={n} run={run}: {plan:?}");
                let rounds: Vec<Round> = plan.rounds(&schedule).collect();
                assert_eq!(rounds.len(), 1);
                let pairs: Vec<Pair> = rounds[0].pairs().collect();
                assert!(!pairs.is_empty() && pairs.len() <= plan.part_tests, "n={n} run={run}");
                for pair in pairs {
                    *seen.entry(pair).or_default() += 1;
                }
            }
            assert_eq!(seen.len(), schedule.pairs_per_protocol(), "n={n}: every pair in one cycle");
            assert!(seen.values().all(|&count| count == 1), "n={n}: no pair twice");
        }
    }

    #[test]
    fn concurrency_splits_rounds_into_waves() {
        let schedule = Schedule::new(mesh(10), vec![Protocol::Tcp]);
        assert_eq!(schedule.round_estimate(Duration::from_secs(5), 64), Duration::from_secs(6));
        assert_eq!(schedule.round_estimate(Duration::from_secs(5), 4), Duration::from_secs(18));
    }

    #[test]
    fn run_index_tolerates_late_starts() {
        let interval = Duration::from_secs(300);
        assert_eq!(run_index(3000, interval), 10);
        assert_eq!(run_index(3007, interval), 10);
        assert_eq!(run_index(3300 - 3, interval), 11);
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
