//! iperf3-monitor: one pass of measuring the network between every pair of nodes.
//!
//! The run is a pipeline, one module per stage:
//! targets ([`targets`]) → plan ([`schedule`]) → measurements ([`measure`] through a
//! [`runner`], parsed by [`iperf3`]) → samples ([`samples`]) → sinks ([`sinks`]).

pub mod config;
pub mod error;
pub mod iperf3;
pub mod measure;
pub mod runner;
pub mod samples;
pub mod schedule;
pub mod sinks;
pub mod targets;

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;

use config::{Mode, Output, Protocol, RunConfig};
use error::{Error, Result, exit_code};
use measure::{Measure, Measurement, StopReason};
use runner::NodeRunner;
use runner::pod_exec::PodExecRunner;
use runner::process::ProcessRunner;
use samples::{RunFacts, RunSamples, SampleSource};
use schedule::{Plan, Schedule, Topology};
use sinks::{Delivery, Sinks};
use targets::{Families, IpFamily, Node, address};

/// The result of a run that measured.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub mode: Mode,
    pub started_at_unix_seconds: f64,
    pub duration_seconds: f64,
    /// Node names; in star mode the source comes first.
    pub nodes: Vec<String>,
    pub protocols: Vec<Protocol>,
    /// The IP families measured, each over the nodes with an address in it.
    pub ip_families: Vec<IpFamily>,
    /// Directed pairs whose nodes share none of the families measured: not measured.
    pub pairs_without_ip_family: u64,
    pub plan: Plan,
    pub rounds_run: usize,
    pub rounds_skipped: usize,
    /// Planned tests not run (stopped, or the budget ran out).
    pub tests_not_run: usize,
    /// Whether `--pairing auto` switched to exclusive pairing: duplex tests were limited by
    /// their nodes' shared CPU, or read low against the same test alone.
    pub switched_to_exclusive: bool,
    /// Duplex tests `--pairing auto` measured again alone to check them.
    pub calibrations: Vec<measure::Calibrated>,
    /// Why planned tests were not run (`signal`, `budget`), or null.
    pub stopped: Option<StopReason>,
    pub measurements: Vec<Measurement>,
    pub deliveries: Vec<Delivery>,
    /// What the samples are built from, besides the measurements.
    #[serde(skip)]
    pub sample_facts: SampleFacts,
}

/// What a run's samples need besides its measurements: the node labels, the run-level facts
/// and the cluster label.
#[derive(Debug)]
pub struct SampleFacts {
    pub targets: Vec<Node>,
    pub run: RunFacts,
    pub cluster: Option<String>,
}

impl RunReport {
    /// The run's samples, built batch by batch when asked for.
    pub fn samples(&self) -> RunSamples<'_> {
        let facts = &self.sample_facts;
        RunSamples::new(&self.measurements, &facts.targets, &facts.run, facts.cluster.as_deref())
    }

    /// The rows of the source × destination matrix: every node in mesh mode, the source in star mode.
    pub fn sources(&self) -> Vec<&str> {
        match self.mode {
            Mode::Mesh => self.nodes.iter().map(String::as_str).collect(),
            Mode::Star => self.nodes.first().map(String::as_str).into_iter().collect(),
        }
    }

    /// The (protocol, IP family) matrices the report shows, in order.
    pub fn matrices(&self) -> Vec<(Protocol, IpFamily)> {
        self.ip_families.iter().flat_map(|&f| self.protocols.iter().map(move |&p| (p, f))).collect()
    }

    /// The measurements of one protocol and IP family by (source, destination).
    pub fn cells(&self, protocol: Protocol, family: IpFamily) -> Cells<'_> {
        let nodes: HashMap<&str, u32> = self.nodes.iter().zip(0..).map(|(name, i)| (name.as_str(), i)).collect();
        let cells = self
            .measurements
            .iter()
            .enumerate()
            .filter(|(_, m)| m.protocol == protocol && m.ip_family == family)
            .filter_map(|(i, m)| Some(((*nodes.get(&*m.source)?, *nodes.get(&*m.destination)?), i)))
            .collect();
        Cells { nodes, cells, measurements: &self.measurements }
    }

    /// 0: all good; 1: some tests failed; 3: some samples were not delivered; 5: stopped
    /// before the planned rounds were done (what was measured was delivered).
    pub fn exit_code(&self) -> u8 {
        if self.deliveries.iter().any(|d| !d.ok()) {
            exit_code::DELIVERY
        } else if self.stopped.is_some() {
            exit_code::STOPPED
        } else if self.measurements.iter().any(|m| m.failure().is_some()) {
            exit_code::TESTS_FAILED
        } else {
            exit_code::OK
        }
    }
}

/// The measurements of one protocol, found by source and destination: the last one of a pair
/// if it has several. Keyed by node indexes rather than names, so that the 45,000 cells of a
/// 1,000-node run take about 1 MB.
#[derive(Debug)]
pub struct Cells<'a> {
    nodes: HashMap<&'a str, u32>,
    cells: HashMap<(u32, u32), usize>,
    measurements: &'a [Measurement],
}

impl<'a> Cells<'a> {
    pub fn get(&self, source: &str, destination: &str) -> Option<&'a Measurement> {
        let key = (*self.nodes.get(source)?, *self.nodes.get(destination)?);
        self.cells.get(&key).map(|&i| &self.measurements[i])
    }

    pub fn values(&self) -> impl Iterator<Item = &'a Measurement> + '_ {
        self.cells.values().map(|&i| &self.measurements[i])
    }
}

/// The plan of a run that was asked not to measure.
#[derive(Debug, Serialize)]
pub struct DryRun {
    pub mode: Mode,
    pub nodes: Vec<String>,
    pub protocols: Vec<Protocol>,
    pub ip_families: Vec<IpFamily>,
    pub pairs_without_ip_family: u64,
    pub rounds_per_protocol: usize,
    pub tests_per_round: usize,
    pub pairs_per_protocol: usize,
    pub concurrency: usize,
    pub budget_seconds: Option<u64>,
    pub interval_seconds: u64,
    pub plan: Plan,
    #[serde(skip)]
    schedule: Schedule,
}

/// What a run did.
#[derive(Debug)]
pub enum RunOutcome {
    Measured(Box<RunReport>),
    Planned(Box<DryRun>),
}

impl RunOutcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunOutcome::Measured(report) => report.exit_code(),
            RunOutcome::Planned(_) => exit_code::OK,
        }
    }

    /// Writes what goes to stdout. The matrix and the JSON are written as they are made: for a
    /// 1,000-node run either would be tens of MB as one string.
    pub fn write(&self, output: Output, out: &mut impl std::io::Write) -> std::io::Result<()> {
        match (self, output) {
            (RunOutcome::Measured(report), Output::Table) => sinks::report::table(report, out),
            (RunOutcome::Measured(report), Output::Json) => write_json(out, report.as_ref()),
            (RunOutcome::Measured(report), Output::Prometheus) => {
                out.write_all(sinks::report::exposition(&report.samples().collect_all(), true).as_bytes())
            }
            (RunOutcome::Planned(dry), Output::Json) => write_json(out, dry.as_ref()),
            (RunOutcome::Planned(dry), _) => {
                out.write_all(sinks::report::plan_text(dry, &dry.schedule, &dry.nodes).as_bytes())
            }
        }
    }
}

fn write_json(out: &mut impl std::io::Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n")
}

/// One pass: discover the nodes, plan the rounds, measure, build samples, deliver them.
pub async fn run(config: RunConfig) -> Result<RunOutcome> {
    let started_at = SystemTime::now();
    let started = Instant::now();
    // From the start: a signal during discovery ends the run, one after it skips the rounds left.
    let stop = stop_on_signal();
    // First, so that bad TLS or credential files stop the run (a dry run too) before discovery.
    let sinks = Sinks::new(&config).await?;
    // A signal during discovery ends the run at once: there is nothing measured to deliver yet,
    // and listing a large cluster through a slow API can take longer than a pod's grace period.
    let discovered = tokio::select! {
        discovered = targets::discover(&config) => discovered?,
        () = signalled(stop.clone()) => return Err(Error::Stopped { stage: "discovery" }),
    };
    let kubernetes = discovered.kubernetes;
    let (nodes, topology) = arrange(discovered.nodes, &config)?;
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
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
            nodes: names,
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
        pairing: if config.mode == Mode::Star { config::Pairing::Exclusive } else { config.pairing },
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
        started_at_unix_seconds: unix_now as f64,
        // Delivery included: set below.
        duration_seconds: 0.0,
        nodes: names,
        protocols: config.protocols,
        ip_families: schedule.families(),
        pairs_without_ip_family,
        plan,
        rounds_run: measured.rounds_run,
        rounds_skipped: measured.rounds_skipped,
        tests_not_run: measured.tests_not_run,
        switched_to_exclusive: measured.switched_to_exclusive,
        calibrations: measured.calibrations,
        stopped: measured.stopped,
        measurements: measured.measurements,
        deliveries: Vec::new(),
        sample_facts: SampleFacts { targets: nodes, run: facts, cluster: config.cluster },
    };
    report.deliveries = sinks.deliver(&report.samples()).await;
    report.duration_seconds = started.elapsed().as_secs_f64();
    if let Some(path) = &config.matrix_svg {
        // A picture beside the results: failing to write it loses no measurement.
        match tokio::fs::write(path, sinks::svg::heatmap(&report)).await {
            Ok(()) => tracing::info!(path = %path.display(), "wrote the matrix heatmap"),
            Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot write --matrix-svg"),
        }
    }
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

/// Resolves when the run is told to stop; never, if signals cannot be listened for.
async fn signalled(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A flag that turns true on SIGTERM or SIGINT, so a run killed by its deadline still delivers
/// what it measured.
fn stop_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::warn!("cannot listen for SIGTERM; a terminated run delivers nothing");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::warn!("SIGTERM: delivering what was measured so far"),
            _ = int.recv() => tracing::warn!("SIGINT: delivering what was measured so far"),
        }
        let _ = tx.send(true);
        // Keep the sender alive so receivers see the flag, not a closed channel.
        std::future::pending::<()>().await;
    });
    rx
}
