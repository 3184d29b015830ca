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
use samples::{MeshPairs, RunFacts};
use schedule::{Mesh, Mode, Pairing, Plan, Schedule, Topology};
use signals::{signalled, stop_on_signal};
use sinks::Sinks;
use targets::{Families, IpFamily, Network, Node, address};

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
    let (nodes, topology) = arrange(on_networks(discovered.nodes, &config), &config)?;
    let (meshes, pairs_without_ip_family) = meshes(&nodes, &config);
    let schedule = Schedule::of_meshes(topology, config.protocols.clone(), meshes);
    let unix_now = started_at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let run_index = schedule::run_index(unix_now, config.interval);
    let plan = Plan::new(&schedule, config.budget, config.test.duration, config.concurrency, run_index)
        .map_err(|e| Error::config("--budget", e.to_string()))?;
    tracing::info!(
        nodes = nodes.len(),
        mode = ?config.mode,
        ip_families = ?schedule.families(),
        networks = ?schedule.networks(),
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
            nodes: targets::machine_names(&nodes).into_iter().map(str::to_string).collect(),
            node_names: nodes.iter().map(|n| n.name.clone()).collect(),
            protocols: config.protocols.clone(),
            ip_families: schedule.families(),
            networks: schedule.networks(),
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
        // Machines: a node with servers on both networks counts once.
        nodes: targets::machine_names(&nodes).len(),
        meshes: schedule
            .segments()
            .iter()
            .map(|s| MeshPairs { protocol: s.protocol, family: s.family, network: s.network, pairs: s.pairs() })
            .collect(),
        pairs_without_ip_family,
        rounds_run: measured.rounds_run,
        rounds_skipped: measured.rounds_skipped,
        tests_not_run: measured.tests_not_run,
        switched_to_exclusive: measured.switched_to_exclusive,
        plan,
    };
    let mut report = RunReport {
        mode: config.mode,
        // Delivery included: set below.
        duration_seconds: 0.0,
        nodes,
        protocols: config.protocols,
        ip_families: schedule.families(),
        networks: schedule.networks(),
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
            // The job's node need not run a server; it is only the client (of both networks).
            let mut own: Vec<Node> = nodes.extract_if(.., |n| n.name == name).collect();
            let source = match own.is_empty() {
                false => Node { client_command: Vec::new(), pod: None, ..own.swap_remove(0) },
                true => Node::new(name, "", 0, Vec::new()),
            };
            nodes.insert(0, source);
            let count = nodes.len();
            Ok((nodes, Topology::Star { nodes: count }))
        }
    }
}

/// The servers on the networks asked for (--networks); warns about a network asked for that
/// no server is on.
fn on_networks(mut nodes: Vec<Node>, config: &RunConfig) -> Vec<Node> {
    if let Some(networks) = &config.networks {
        for network in networks.iter().filter(|&&net| !nodes.iter().any(|n| n.network == net)) {
            tracing::warn!(
                %network,
                "no iperf3 server is on the {network} network: nothing is measured on it; \
                 run servers there (chart: server.podNetwork.enabled, inventory: network: {network}) or leave it out of --networks"
            );
        }
        nodes.retain(|n| networks.contains(&n.network));
    }
    nodes
}

/// The run's meshes: for each network a server is on, in order, each IP family's mesh of the
/// network's nodes (in star mode the source, node 0, is in every mesh); and the directed pairs
/// that no family measured covers.
fn meshes(nodes: &[Node], config: &RunConfig) -> (Vec<Mesh>, u64) {
    let star = config.mode == Mode::Star;
    let peers = nodes.get(usize::from(star)..).unwrap_or_default();
    let mut networks: Vec<Network> = peers.iter().map(|n| n.network).collect();
    networks.sort();
    networks.dedup();
    if networks.is_empty() {
        networks.push(Network::Host);
    }
    let mut meshes = Vec::new();
    let mut pairs_without_ip_family = 0;
    for network in networks {
        let on_network: Vec<usize> =
            (0..nodes.len()).filter(|&i| (star && i == 0) || nodes[i].network == network).collect();
        let membership = ip_families(nodes, &on_network, network, config);
        pairs_without_ip_family += membership.pairs_without_family;
        meshes.extend(membership.families.into_iter().map(|(family, members)| Mesh {
            network,
            family,
            members: members.into_iter().map(|m| on_network[m]).collect(),
        }));
    }
    (meshes, pairs_without_ip_family)
}

/// Which of the nodes `on_network` (indexes into `nodes`) each IP family's mesh holds (see
/// [`address::membership`]; its indexes are into `on_network`); warns about the pairs that no
/// family measured covers.
fn ip_families(nodes: &[Node], on_network: &[usize], network: Network, config: &RunConfig) -> address::Membership {
    let nodes: Vec<&Node> = on_network.iter().map(|&i| &nodes[i]).collect();
    let node_families: Vec<Families> = nodes.iter().map(|n| n.families()).collect();
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
            %network,
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
