//! The pure parts at scale: inventories of many nodes, the plan of a 5,000-node mesh, and how
//! many runs the rotation needs to cover every pair.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use iperf3_monitor::iperf3::Protocol;
use iperf3_monitor::schedule::{Pairing, Plan, Schedule, Topology, run_index};
use iperf3_monitor::targets::{Node, inventory};
use serde::Serialize;

pub fn inventory(take: Option<usize>, from: Option<&Path>, generate: Option<usize>) -> Result<()> {
    let nodes: Vec<Node> = match (take, from, generate) {
        (Some(take), Some(from), None) => {
            let nodes = inventory::parse(&std::fs::read_to_string(from)?, 5201, None).map_err(anyhow::Error::msg)?;
            if nodes.len() < take {
                bail!("{} has {} nodes, fewer than {take}", from.display(), nodes.len());
            }
            nodes.into_iter().take(take).collect()
        }
        // Names as long as typical cloud node names, so label sizes are realistic.
        (None, None, Some(n)) => (0..n)
            .map(|i| {
                let address = format!("198.{}.{}.{}", 18 + i / 250 / 256, i / 250 % 256, i % 250 + 1);
                Node::new(format!("worker-{i:05}.example.internal"), address, 5201, Vec::new())
            })
            .collect(),
        _ => bail!("give --take N --from FILE, or --generate N"),
    };
    #[derive(Serialize)]
    struct File {
        nodes: Vec<Node>,
    }
    print!("{}", serde_yaml_ng::to_string(&File { nodes })?);
    Ok(())
}

/// The mesh both `plan` and `coverage` plan: a duplex mesh of `nodes` nodes.
#[derive(Debug, clap::Args)]
pub struct MeshArgs {
    #[arg(long)]
    nodes: usize,
    #[arg(long, value_delimiter = ',', default_value = "tcp,udp")]
    protocols: Vec<Protocol>,
    #[arg(long, default_value_t = 5)]
    duration: u64,
    #[arg(long, default_value_t = 270)]
    budget: u64,
    /// Tests at once [default: the node count, one wave per round].
    #[arg(long)]
    concurrency: Option<usize>,
}

impl MeshArgs {
    fn schedule(&self) -> Schedule {
        Schedule::new(Topology::Mesh { nodes: self.nodes, pairing: Pairing::Duplex }, self.protocols.clone())
    }

    fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(self.nodes)
    }

    /// The plan of run `run_index`, as the job would make it.
    fn plan(&self, schedule: &Schedule, run_index: u64) -> Result<Plan> {
        let budget = Some(Duration::from_secs(self.budget));
        Ok(Plan::new(schedule, budget, Duration::from_secs(self.duration), self.concurrency(), run_index)?)
    }
}

#[derive(Debug, Serialize)]
struct PlanFigures {
    nodes: usize,
    cycle_rounds: usize,
    pairs_walked: u64,
    schedule_and_plan_seconds: f64,
    walk_run_seconds: f64,
    walk_cycle_seconds: f64,
    checksum: u64,
}

pub fn plan(mesh: MeshArgs) -> Result<()> {
    let started = Instant::now();
    let schedule = mesh.schedule();
    let plan = mesh.plan(&schedule, 12_345)?;
    let schedule_and_plan_seconds = started.elapsed().as_secs_f64();

    let mut checksum = 0u64;
    let mut walk = |rounds: &mut dyn Iterator<Item = iperf3_monitor::schedule::Round>| {
        let started = Instant::now();
        let mut pairs = 0u64;
        for round in rounds {
            for pair in round.pairs() {
                checksum = checksum.wrapping_add((pair.source * 31 + pair.destination) as u64);
                pairs += 1;
            }
        }
        (pairs, started.elapsed().as_secs_f64())
    };
    let (_, walk_run_seconds) = walk(&mut plan.rounds(&schedule));
    let (pairs_walked, walk_cycle_seconds) = walk(&mut (0..schedule.total_rounds()).filter_map(|i| schedule.round(i)));
    crate::print_json(&PlanFigures {
        nodes: mesh.nodes,
        cycle_rounds: schedule.total_rounds(),
        pairs_walked,
        schedule_and_plan_seconds,
        walk_run_seconds,
        walk_cycle_seconds,
        checksum,
    })
}

#[derive(Debug, clap::Args)]
pub struct CoverageArgs {
    #[command(flatten)]
    mesh: MeshArgs,
    #[arg(long, default_value_t = 300)]
    interval: u64,
}

#[derive(Debug, Serialize)]
struct Coverage {
    nodes: usize,
    protocols: usize,
    interval_seconds: u64,
    duration_seconds: u64,
    budget_seconds: u64,
    max_parallel_tests: usize,
    tests_per_run: usize,
    /// Seconds of the interval the run's tests keep every lane busy (waves × duration).
    measuring_seconds: u64,
    cycle_rounds: usize,
    /// Runs until every pair of every protocol was measured, walking the plans' pairs.
    runs_to_cover: u64,
    /// What the plan itself claims (`cycle_runs`).
    plan_cycle_runs: usize,
    /// Total test-seconds / (interval × most tests at once).
    ideal_runs: f64,
}

pub fn coverage(args: CoverageArgs) -> Result<()> {
    let mesh = &args.mesh;
    let n = mesh.nodes;
    let protocols = mesh.protocols.len();
    let schedule = mesh.schedule();
    let interval = Duration::from_secs(args.interval);
    let unix_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let first_run = run_index(unix_now, interval);

    let total = (n * n * protocols) as u64;
    let mut seen = vec![0u64; (total as usize).div_ceil(64)];
    let mut covered = 0u64;
    let wanted = (n * (n - 1) * protocols) as u64;
    let mut runs = 0u64;
    let mut plan = mesh.plan(&schedule, first_run)?;
    while covered < wanted {
        if runs > 10 * plan.cycle_runs as u64 {
            bail!("{n} nodes: {covered} of {wanted} pairs after {runs} runs; the rotation does not cover the mesh");
        }
        plan = mesh.plan(&schedule, first_run + runs)?;
        for test in plan.planned(&schedule) {
            let protocol = mesh.protocols.iter().position(|p| *p == test.protocol).unwrap_or(0);
            let pair = test.pair;
            let bit = (protocol * n * n + pair.source * n + pair.destination) as u64;
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            if seen[word] & mask == 0 {
                seen[word] |= mask;
                covered += 1;
            }
        }
        runs += 1;
    }
    let max_parallel_tests = mesh.concurrency().min(schedule.tests_per_round());
    let test_seconds = (wanted * mesh.duration) as f64;
    crate::print_json(&Coverage {
        nodes: n,
        protocols,
        interval_seconds: args.interval,
        duration_seconds: mesh.duration,
        budget_seconds: mesh.budget,
        max_parallel_tests,
        tests_per_run: plan.tests,
        measuring_seconds: plan.waves as u64 * mesh.duration,
        cycle_rounds: plan.cycle_rounds,
        runs_to_cover: runs,
        plan_cycle_runs: plan.cycle_runs,
        ideal_runs: test_seconds / (args.interval as f64 * max_parallel_tests as f64),
    })
}
