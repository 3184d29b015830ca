//! The pure parts at scale: inventories of many nodes, the plan of a 5,000-node mesh, and how
//! many runs the rotation needs to cover every pair.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use iperf3_monitor::config::{Pairing, Protocol};
use iperf3_monitor::schedule::{Plan, Schedule, Topology, run_index};
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

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
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

pub fn plan(args: PlanArgs) -> Result<()> {
    let started = Instant::now();
    let schedule = Schedule::new(Topology::Mesh { nodes: args.nodes, pairing: Pairing::Duplex }, args.protocols);
    let concurrency = args.concurrency.unwrap_or(args.nodes);
    let duration = Duration::from_secs(args.duration);
    let plan = Plan::new(&schedule, Some(Duration::from_secs(args.budget)), duration, concurrency, 12_345)?;
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
        nodes: args.nodes,
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
    #[arg(long)]
    nodes: usize,
    #[arg(long, value_delimiter = ',', default_value = "tcp,udp")]
    protocols: Vec<Protocol>,
    #[arg(long, default_value_t = 300)]
    interval: u64,
    #[arg(long, default_value_t = 5)]
    duration: u64,
    #[arg(long, default_value_t = 270)]
    budget: u64,
    /// Tests at once [default: the node count, one wave per round].
    #[arg(long)]
    concurrency: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Coverage {
    nodes: usize,
    protocols: usize,
    interval_seconds: u64,
    duration_seconds: u64,
    budget_seconds: u64,
    max_parallel_tests: usize,
    rounds_per_run: usize,
    cycle_rounds: usize,
    /// Runs until every pair of every protocol was measured, walking the plans' pairs.
    runs_to_cover: u64,
    /// What the plan itself claims (`cycle_runs`).
    plan_cycle_runs: usize,
    /// Total test-seconds / (interval × most tests at once).
    ideal_runs: f64,
}

pub fn coverage(args: CoverageArgs) -> Result<()> {
    let n = args.nodes;
    let protocols = args.protocols.len();
    let schedule = Schedule::new(Topology::Mesh { nodes: n, pairing: Pairing::Duplex }, args.protocols.clone());
    let concurrency = args.concurrency.unwrap_or(n);
    let interval = Duration::from_secs(args.interval);
    let duration = Duration::from_secs(args.duration);
    let budget = Some(Duration::from_secs(args.budget));
    let unix_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let first_run = run_index(unix_now, interval);

    let total = (n * n * protocols) as u64;
    let mut seen = vec![0u64; (total as usize).div_ceil(64)];
    let mut covered = 0u64;
    let wanted = (n * (n - 1) * protocols) as u64;
    let mut runs = 0u64;
    let mut plan = Plan::new(&schedule, budget, duration, concurrency, first_run)?;
    while covered < wanted {
        if runs > 10 * plan.cycle_runs as u64 {
            bail!("{n} nodes: {covered} of {wanted} pairs after {runs} runs; the rotation does not cover the mesh");
        }
        plan = Plan::new(&schedule, budget, duration, concurrency, first_run + runs)?;
        for round in plan.rounds(&schedule) {
            let protocol = args.protocols.iter().position(|p| *p == round.protocol).unwrap_or(0);
            for pair in round.pairs() {
                let bit = (protocol * n * n + pair.source * n + pair.destination) as u64;
                let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
                if seen[word] & mask == 0 {
                    seen[word] |= mask;
                    covered += 1;
                }
            }
        }
        runs += 1;
    }
    let max_parallel_tests = concurrency.min(schedule.tests_per_round());
    let test_seconds = (wanted * args.duration) as f64;
    crate::print_json(&Coverage {
        nodes: n,
        protocols,
        interval_seconds: args.interval,
        duration_seconds: args.duration,
        budget_seconds: args.budget,
        max_parallel_tests,
        rounds_per_run: plan.rounds,
        cycle_rounds: plan.cycle_rounds,
        runs_to_cover: runs,
        plan_cycle_runs: plan.cycle_runs,
        ideal_runs: test_seconds / (args.interval as f64 * max_parallel_tests as f64),
    })
}
