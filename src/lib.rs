//! iperf3-monitor: one pass of measuring the network between every pair of nodes.
//!
//! The run is a pipeline, one module per stage:
//! targets ([`targets`]) → plan ([`schedule`]) → measurements ([`measure`] through a
//! [`runner`], parsed by [`iperf3`]) → samples ([`samples`]) → sinks ([`sinks`]); what the run
//! made is its [`report`], which the binary writes out.

pub mod config;
pub mod credentials;
pub mod error;
pub mod iperf3;
pub mod measure;
pub mod report;
pub mod runner;
pub mod samples;
pub mod schedule;
pub mod signals;
pub mod sinks;
pub mod targets;

use std::time::{Instant, SystemTime};

use config::RunConfig;
use error::{Error, Result};
use measure::Measure;
use report::{DryRun, RunOutcome, RunReport};
use runner::NodeRunner;
use runner::pod_exec::PodExecRunner;
use runner::process::ProcessRunner;
use samples::RunFacts;
use schedule::{Mode, Pairing, Plan, Schedule, Topology};
use signals::{signalled, stop_on_signal};
use sinks::Sinks;
use targets::{Families, IpFamily, Node, address};

/// One pass: discover the nodes, plan the rounds, measure, build samples, deliver them.
pub async fn run(config: RunConfig) -> Result<RunOutcome> {
    let started_at = SystemTime::now();
    let started = Instant::now();
    // From the start: a signal during discovery ends the run, one after it skips the rounds left.
    let stop = stop_on_signal();
    // First, so that bad TLS or credential files stop the run (a dry run too) before discovery.
    let sinks = Sinks::new(config.sink_settings()).await?;
    // A signal during discovery ends the run at once: there is nothing measured to deliver yet,
    // and listing a large cluster through a slow API can take longer than a pod's grace period.
    let discovered = tokio::select! {
        discovered = targets::discover(targets::Source {
            inventory: config.inventory.as_deref(),
            kubernetes: &config.kubernetes,
            default_port: config.default_port,
            credentials: config.credentials.as_ref(),
            test_timeout: config.test.timeout,
        }) => discovered?,
        () = signalled(stop.clone()) => return Err(Error::Stopped { stage: "discovery" }),
    };
    let kubernetes = discovered.kubernetes;
    let (nodes, topology) = arrange(discovered.nodes, &config)?;
    let families = ip_families(&nodes, &config);
    let pairs_without_ip_family = families.pairs_without_family;
    let schedule = Schedule::by_family(topology, config.protocols.clone(), families.families);
    let unix_now = started_at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let run_index = schedule::run_index(unix_now, config.interval);
    let plan = Plan::new(&schedule, config.budget, config.test.duration, config.concurrency, run_index)
        .map_err(|e| Error::config("--budget", e.to_string()))?;
    tracing::info!(
        nodes = nodes.len(),
        mode = ?config.mode,
        ip_families = ?schedule.families(),
        pairing = ?config.pairing,
        tests = plan.tests,
        cycle_tests = plan.cycle_tests,
        first_test = plan.first_test + 1,
        at_once = plan.lanes,
        estimate_seconds = plan.estimate().as_secs_f64(),
        cycle_runs = plan.cycle_runs,
        "planned the run"
    );
    if plan.tests < schedule.tests_per_round() {
        tracing::warn!(
            cycle_runs = plan.cycle_runs,
            "one round of {} tests at --concurrency {} is longer than --budget: it is measured over several runs; \
             raise --concurrency to cover the mesh in fewer runs",
            schedule.tests_per_round(),
            config.concurrency
        );
    }
    if schedule.total_rounds() == 0 {
        tracing::warn!("fewer than two nodes: there is no pair to measure");
    }
    if config.dry_run {
        return Ok(RunOutcome::Planned(Box::new(DryRun {
            mode: config.mode,
            nodes: nodes.iter().map(|n| n.name.clone()).collect(),
            protocols: config.protocols.clone(),
            ip_families: schedule.families(),
            pairs_without_ip_family,
            rounds_per_protocol: schedule.rounds_per_protocol(),
            tests_per_round: schedule.tests_per_round(),
            pairs_per_protocol: schedule.pairs_per_protocol(),
            concurrency: config.concurrency,
            budget_seconds: config.budget.map(|b| b.as_secs()),
            interval_seconds: config.interval.as_secs(),
            plan,
            schedule,
        })));
    }
    let measure = Measure {
        runner: &NodeRunner { process: ProcessRunner, pod_exec: kubernetes.map(PodExecRunner::new) },
        nodes: &nodes,
        settings: &config.test,
        // Star mode runs one test at a time (its one client sends them all): each test is alone.
        pairing: if config.mode == Mode::Star { Pairing::Exclusive } else { config.pairing },
        deadline: config.budget.map(|b| tokio::time::Instant::from_std(started) + b),
    };
    let measured = measure.run(&schedule, &plan, stop).await;

    let facts = RunFacts {
        started_at,
        finished_at: SystemTime::now(),
        nodes: nodes.len(),
        meshes: schedule.segments().iter().map(|s| (s.protocol, s.family, s.pairs())).collect(),
        pairs_without_ip_family,
        rounds_run: measured.rounds_run,
        rounds_skipped: measured.rounds_skipped,
        tests_not_run: measured.tests_not_run,
        switched_to_exclusive: measured.switched_to_exclusive,
        cycle_rounds: plan.cycle_rounds,
        cycle_runs: plan.cycle_runs,
    };
    let mut report = RunReport {
        mode: config.mode,
        // Delivery included: set below.
        duration_seconds: 0.0,
        nodes,
        protocols: config.protocols,
        ip_families: schedule.families(),
        plan,
        facts,
        calibrations: measured.calibrations,
        stopped: measured.stopped,
        measurements: measured.measurements,
        deliveries: Vec::new(),
        cluster: config.cluster,
    };
    report.deliveries = sinks.deliver(&report.samples()).await;
    report.duration_seconds = started.elapsed().as_secs_f64();
    Ok(RunOutcome::Measured(Box::new(report)))
}

/// Orders the nodes for the schedule. Star mode puts the source (this process's node) first,
/// running its clients locally, and measures every other node.
fn arrange(mut nodes: Vec<Node>, config: &RunConfig) -> Result<(Vec<Node>, Topology)> {
    match config.mode {
        Mode::Mesh => {
            let count = nodes.len();
            Ok((nodes, Topology::Mesh { nodes: count, pairing: config.pairing }))
        }
        Mode::Star => {
            let name = config
                .source_node
                .clone()
                .ok_or_else(|| Error::config("--source-node", "star mode needs a source node"))?;
            let source = match nodes.iter().position(|n| n.name == name) {
                Some(i) => Node { client_command: Vec::new(), pod: None, ..nodes.remove(i) },
                // The job's node need not run a server; it is only the client.
                None => Node::new(name, "", 0, Vec::new()),
            };
            nodes.insert(0, source);
            let count = nodes.len();
            Ok((nodes, Topology::Star { nodes: count }))
        }
    }
}

/// Which nodes each IP family's mesh holds (see [`address::membership`]); warns about the pairs
/// that no family measured covers.
fn ip_families(nodes: &[Node], config: &RunConfig) -> address::Membership {
    let node_families: Vec<Families> = nodes.iter().map(Node::families).collect();
    let star = config.mode == Mode::Star;
    let membership = address::membership(&node_families, config.ip_families.as_deref(), star);
    if membership.pairs_without_family > 0 {
        let names = |filter: &dyn Fn(Families) -> bool| -> Vec<&str> {
            let peers = nodes.iter().skip(usize::from(star));
            peers.filter(|n| filter(n.families())).take(5).map(|n| n.name.as_str()).collect()
        };
        let without: Vec<&str> =
            membership.nodes_without_family.iter().take(5).map(|&i| nodes[i].name.as_str()).collect();
        let only = |family| names(&|f: Families| f.list() == [family]);
        tracing::warn!(
            pairs = membership.pairs_without_family,
            nodes_without_a_family_measured = ?without,
            ipv4_only = ?only(IpFamily::Ipv4),
            ipv6_only = ?only(IpFamily::Ipv6),
            "directed pairs whose nodes share no IP family measured are not measured \
             (iperf3_monitor_run_pairs_without_ip_family); give those nodes an address in a shared family, \
             or widen --ip-families"
        );
    }
    membership
}
