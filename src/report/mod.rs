//! What a run made: the report of a run that measured (and the samples built from it), the plan
//! of a dry run, and their renderings: the matrices ([`table`]), the heatmap ([`svg`]), the JSON.

pub mod svg;
pub mod table;

use std::collections::HashMap;

use clap::ValueEnum;
use serde::Serialize;

use crate::error::exit_code;
use crate::iperf3::Protocol;
use crate::measure::{self, Measurement, StopReason};
use crate::samples::{RunFacts, RunSamples, SampleSource};
use crate::schedule::{Mode, Plan, Schedule};
use crate::sinks::{Delivery, exposition};
use crate::targets::{IpFamily, Network, Node};

/// What is printed on stdout when the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// The source × destination matrix per protocol, for humans and `kubectl logs`.
    Table,
    /// The whole run report as JSON.
    Json,
    /// The samples in the Prometheus text exposition format, with timestamps.
    Prometheus,
}

/// The result of a run that measured. Its JSON (`--output json`) is [`JsonReport`]'s.
#[derive(Debug)]
pub struct RunReport {
    pub mode: Mode,
    /// Wall time of the run, delivery included.
    pub duration_seconds: f64,
    /// The nodes, in the schedule's order: in star mode the source comes first.
    pub nodes: Vec<Node>,
    pub protocols: Vec<Protocol>,
    pub ip_families: Vec<IpFamily>,
    /// The networks measured, each over the nodes with a server on it.
    pub networks: Vec<Network>,
    /// When the run was, its plan, what it measured and what it did not: the run-level samples.
    pub facts: RunFacts,
    pub calibrations: Vec<measure::Calibrated>,
    pub stopped: Option<StopReason>,
    pub measurements: Vec<Measurement>,
    pub deliveries: Vec<Delivery>,
    /// The `cluster` label of every series.
    pub cluster: Option<String>,
}

/// The run report as JSON, field by field in this order.
#[derive(Serialize)]
struct JsonReport<'a> {
    mode: Mode,
    started_at_unix_seconds: f64,
    duration_seconds: f64,
    /// Node names; in star mode the source comes first.
    nodes: Vec<&'a str>,
    protocols: &'a [Protocol],
    /// The IP families measured, each over the nodes with an address in it.
    ip_families: &'a [IpFamily],
    /// The networks measured, each over the nodes with a server on it.
    networks: &'a [Network],
    /// Directed pairs whose nodes share none of the families measured: not measured.
    pairs_without_ip_family: u64,
    plan: &'a Plan,
    rounds_run: usize,
    rounds_skipped: usize,
    /// Planned tests not run (stopped, or the budget ran out).
    tests_not_run: usize,
    /// Whether `--pairing auto` switched to exclusive pairing: duplex tests were limited by
    /// their nodes' shared CPU, or read low against the same test alone.
    switched_to_exclusive: bool,
    /// Duplex tests `--pairing auto` measured again alone to check them.
    calibrations: &'a [measure::Calibrated],
    /// Why planned tests were not run (`signal`, `budget`), or null.
    stopped: Option<StopReason>,
    measurements: &'a [Measurement],
    deliveries: &'a [Delivery],
}

impl Serialize for RunReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let facts = &self.facts;
        let started_at = facts.started_at.duration_since(std::time::SystemTime::UNIX_EPOCH);
        JsonReport {
            mode: self.mode,
            // Whole seconds, as the report has always given them.
            started_at_unix_seconds: started_at.map_or(0, |d| d.as_secs()) as f64,
            duration_seconds: self.duration_seconds,
            nodes: self.node_names(),
            protocols: &self.protocols,
            ip_families: &self.ip_families,
            networks: &self.networks,
            pairs_without_ip_family: facts.pairs_without_ip_family,
            plan: &self.facts.plan,
            rounds_run: facts.rounds_run,
            rounds_skipped: facts.rounds_skipped,
            tests_not_run: facts.tests_not_run,
            switched_to_exclusive: facts.switched_to_exclusive,
            calibrations: &self.calibrations,
            stopped: self.stopped,
            measurements: &self.measurements,
            deliveries: &self.deliveries,
        }
        .serialize(serializer)
    }
}

impl RunReport {
    /// The run's samples, built batch by batch when asked for.
    pub fn samples(&self) -> RunSamples<'_> {
        RunSamples::new(&self.measurements, &self.nodes, &self.facts, self.cluster.as_deref())
    }

    /// The nodes' names, in order, each once (whatever networks a node has servers on): the
    /// columns of the source × destination matrix.
    pub fn node_names(&self) -> Vec<&str> {
        crate::targets::machine_names(&self.nodes)
    }

    /// The rows of the source × destination matrix: every node in mesh mode, the source in star mode.
    pub fn sources(&self) -> Vec<&str> {
        let names = self.node_names();
        match self.mode {
            Mode::Mesh => names,
            Mode::Star => names.into_iter().take(1).collect(),
        }
    }

    /// The matrices the report shows, in order: each protocol of each IP family of each network.
    pub fn matrices(&self) -> Vec<Matrix> {
        let mut matrices = Vec::new();
        for &network in &self.networks {
            for &family in &self.ip_families {
                matrices.extend(self.protocols.iter().map(|&protocol| Matrix { protocol, family, network }));
            }
        }
        matrices
    }

    /// The measurements of one matrix by (source, destination).
    pub fn cells(&self, matrix: Matrix) -> Cells<'_> {
        let Matrix { protocol, family, network } = matrix;
        let nodes: HashMap<&str, u32> = self.node_names().into_iter().zip(0..).collect();
        let cells = self
            .measurements
            .iter()
            .enumerate()
            .filter(|(_, m)| m.protocol == protocol && m.ip_family == family && m.network == network)
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

/// Which measurements one matrix of the report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matrix {
    pub protocol: Protocol,
    pub family: IpFamily,
    pub network: Network,
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
    /// Node names, each once.
    pub nodes: Vec<String>,
    /// The name of each of the schedule's nodes (a node with servers on both networks is two).
    #[serde(skip)]
    pub node_names: Vec<String>,
    pub protocols: Vec<Protocol>,
    pub ip_families: Vec<IpFamily>,
    pub networks: Vec<Network>,
    pub pairs_without_ip_family: u64,
    pub rounds_per_protocol: usize,
    pub tests_per_round: usize,
    pub pairs_per_protocol: usize,
    pub concurrency: usize,
    pub budget_seconds: Option<u64>,
    pub interval_seconds: u64,
    pub plan: Plan,
    #[serde(skip)]
    pub(crate) schedule: Schedule,
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

    /// Writes the run's outputs: the `--matrix-svg` heatmap of a run that measured (if asked
    /// for; failing to write it loses no measurement and is logged), then `output` to `out`.
    pub fn write_out(
        &self,
        output: Output,
        matrix_svg: Option<&std::path::Path>,
        out: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        if let (RunOutcome::Measured(report), Some(path)) = (self, matrix_svg) {
            match std::fs::write(path, svg::heatmap(report)) {
                Ok(()) => tracing::info!(path = %path.display(), "wrote the matrix heatmap"),
                Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot write --matrix-svg"),
            }
        }
        self.write(output, out)
    }

    /// Writes what goes to stdout. The matrix and the JSON are written as they are made: for a
    /// 1,000-node run either would be tens of MB as one string.
    pub fn write(&self, output: Output, out: &mut impl std::io::Write) -> std::io::Result<()> {
        match (self, output) {
            (RunOutcome::Measured(report), Output::Table) => table::table(report, out),
            (RunOutcome::Measured(report), Output::Json) => write_json(out, report.as_ref()),
            (RunOutcome::Measured(report), Output::Prometheus) => {
                out.write_all(exposition::exposition(&report.samples().collect_all(), true).as_bytes())
            }
            (RunOutcome::Planned(dry), Output::Json) => write_json(out, dry.as_ref()),
            (RunOutcome::Planned(dry), _) => {
                out.write_all(table::plan_text(dry, &dry.schedule, &dry.node_names).as_bytes())
            }
        }
    }
}

fn write_json(out: &mut impl std::io::Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n")
}
