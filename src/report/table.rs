//! The report for humans: the source × destination matrices and the summary line of a run, and
//! the plan of a dry run.

use std::fmt::Write as _;

use super::{DryRun, Matrix, RunReport};
use crate::iperf3::{Protocol, TestResult};
use crate::measure::{Measurement, Outcome};
use crate::schedule::{Pairing, Plan, Schedule, Topology};
use crate::targets::{IpFamily, Network};

/// Rounds and pairs listed by the dry-run text before it summarises.
const LISTED_ROUNDS: usize = 12;
const LISTED_PAIRS: usize = 12;

/// The matrices of a run, one per protocol, IP family and network (UDP adds its loss), and a summary
/// line, written row by row: a 1,000-node matrix is about 30 MB of text.
pub fn table(report: &RunReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    for shown in report.matrices() {
        let protocol = shown.protocol;
        let cells = report.cells(shown);
        let sources = report.sources();
        let columns = report.node_names();
        let name = matrix_name(report, shown);
        let title = format!(
            "{name}: received throughput in Mbit/s (rows: source, columns: destination; * CPU-bound: the nodes' CPU, not the path, set it)"
        );
        matrix(out, &title, &sources, &columns, |src, dst| match cells.get(src, dst) {
            Some(Measurement { outcome: Outcome::Success(result), cpu_bound, .. }) => {
                format!("{:.1}{}", result.received_bytes_per_second() * 8.0 / 1e6, if *cpu_bound { "*" } else { "" })
            }
            Some(Measurement { outcome: Outcome::Failure(failure), .. }) => failure.reason.to_string(),
            None => "-".into(),
        })?;
        if protocol == Protocol::Udp {
            let title = format!("{name}: packet loss in % (rows: source, columns: destination)");
            matrix(out, &title, &sources, &columns, |src, dst| match cells.get(src, dst).map(|m| &m.outcome) {
                Some(Outcome::Success(TestResult::Udp(r))) => format!("{:.2}", r.loss_ratio * 100.0),
                Some(Outcome::Failure(failure)) => failure.reason.to_string(),
                _ => "-".into(),
            })?;
        }
    }
    writeln!(out, "{}", summary(report))
}

/// What a matrix is titled by: its protocol, and its IP family and network when the run
/// measured several (a single-stack, single-network run's matrices read as they always have).
pub fn matrix_name(report: &RunReport, matrix: Matrix) -> String {
    mesh_name(matrix.protocol, matrix.family, matrix.network, report.ip_families.len(), report.networks.len())
}

/// "tcp", "tcp over ipv6", "tcp on the pod network", "tcp over ipv6 on the pod network".
fn mesh_name(protocol: Protocol, family: IpFamily, network: Network, families: usize, networks: usize) -> String {
    let mut name = protocol.to_string();
    if families > 1 {
        let _ = write!(name, " over {family}");
    }
    if networks > 1 {
        let _ = write!(name, " on the {network} network");
    }
    name
}

/// A mesh in the dry run's list: "ipv6" (as a dual-stack run has always named it), "pod network",
/// "ipv6 on the pod network".
fn mesh_label(family: IpFamily, network: Network, families: usize, networks: usize) -> String {
    match (families > 1, networks > 1) {
        (true, true) => format!("{family} on the {network} network"),
        (false, true) => format!("{network} network"),
        _ => family.to_string(),
    }
}

fn matrix(
    out: &mut impl std::io::Write,
    title: &str,
    rows: &[&str],
    columns: &[&str],
    cell: impl Fn(&str, &str) -> String,
) -> std::io::Result<()> {
    let printable = |name: &str| name.chars().map(|c| if c.is_control() { '?' } else { c }).collect::<String>();
    let row_width = rows.iter().map(|r| printable(r).chars().count()).max().unwrap_or(0).max(4);
    let widths: Vec<usize> = columns.iter().map(|c| printable(c).chars().count().max(11)).collect();
    writeln!(out, "{title}")?;
    let mut line = format!("{:<row_width$}", "");
    for (column, width) in columns.iter().zip(&widths) {
        let _ = write!(line, "  {:>width$}", printable(column));
    }
    writeln!(out, "{line}")?;
    for row in rows {
        line.clear();
        let _ = write!(line, "{:<row_width$}", printable(row));
        for (column, width) in columns.iter().zip(&widths) {
            let text = if row == column { "·".to_string() } else { cell(row, column) };
            let _ = write!(line, "  {text:>width$}");
        }
        writeln!(out, "{line}")?;
    }
    writeln!(out)
}

/// One line: tests, failures by reason, rounds, time, delivery.
pub fn summary(report: &RunReport) -> String {
    let failed: Vec<&Measurement> = report.measurements.iter().filter(|m| m.failure().is_some()).collect();
    let mut by_reason: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for m in &failed {
        if let Some(f) = m.failure() {
            *by_reason.entry(f.reason.as_str()).or_default() += 1;
        }
    }
    let reasons: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r}: {n}")).collect();
    let mut line = format!(
        "{} tests: {} ok, {} failed{}; {} of {} planned rounds (cycle: {} rounds over {} run(s)) in {:.1}s",
        report.measurements.len(),
        report.measurements.len() - failed.len(),
        failed.len(),
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) },
        report.facts.rounds_run,
        report.facts.plan.rounds,
        report.facts.plan.cycle_rounds,
        report.facts.plan.cycle_runs,
        report.duration_seconds,
    );
    let cpu_bound = report.measurements.iter().filter(|m| m.cpu_bound).count();
    if cpu_bound > 0 {
        let _ = write!(line, "; {cpu_bound} CPU-bound (raise the server pods' CPU limit, see \"Fast links\")");
    }
    if report.facts.switched_to_exclusive {
        line.push_str("; switched to exclusive pairing: duplex tests were limited by their nodes' shared CPU");
    }
    if let Some(stopped) = report.stopped {
        let _ = write!(
            line,
            "; stopped early ({}): {} planned test(s) in {} round(s) not run",
            stopped.describe(),
            report.facts.tests_not_run,
            report.facts.rounds_skipped
        );
    }
    for delivery in &report.deliveries {
        let _ = write!(
            line,
            "; {}: {} of {} samples delivered",
            delivery.sink, delivery.delivered_samples, delivery.samples
        );
    }
    line
}

/// The plan of a dry run, for humans.
pub fn plan_text(dry: &DryRun, schedule: &Schedule, node_names: &[String]) -> String {
    let plan: &Plan = &dry.plan;
    let mut out = String::new();
    // Machines: a node with servers on both networks is one node of each network's mesh.
    let nodes = dry.nodes.len();
    let (shape, lower_bound) = match schedule.topology() {
        Topology::Mesh { pairing, .. } => {
            let name = match pairing {
                Pairing::Auto => "auto (duplex; exclusive when duplex reads low)",
                Pairing::Duplex => "duplex",
                Pairing::Exclusive => "exclusive",
            };
            // Each node sends N-1 tests (duplex); in exclusive pairing it is in 2(N-1) tests, one a
            // round, and an odd N leaves one node idle each round.
            let bound = match (pairing, nodes) {
                (_, 0 | 1) => 0,
                (Pairing::Duplex | Pairing::Auto, n) => n - 1,
                (Pairing::Exclusive, n) => n * (n - 1) / (n / 2),
            };
            (format!("mesh of {nodes} nodes, {name} pairing"), bound)
        }
        Topology::Star { .. } => {
            (format!("star from {} to {} nodes", node_names[0], nodes.saturating_sub(1)), nodes.saturating_sub(1))
        }
    };
    let protocols: Vec<&str> = schedule.protocols().iter().map(|p| p.as_str()).collect();
    let families: Vec<&str> = schedule.families().iter().map(|f| f.as_str()).collect();
    let networks: Vec<&str> = schedule.networks().iter().map(|n| n.as_str()).collect();
    let _ = write!(out, "plan: {shape}, protocols {}, IP families {}", protocols.join(","), families.join(","));
    let _ = writeln!(
        out,
        "{}",
        if networks.len() > 1 { format!(", networks {}", networks.join(",")) } else { String::new() }
    );
    let _ = writeln!(
        out,
        "rounds per protocol: {} (lower bound: {lower_bound}); {} tests per round, at most {} at once; {} pairs per protocol",
        schedule.rounds_per_protocol(),
        schedule.tests_per_round(),
        dry.concurrency,
        schedule.pairs_per_protocol(),
    );
    if families.len() > 1 || networks.len() > 1 {
        // Each family of each network is a mesh of the nodes with an address in it.
        for segment in schedule.segments().iter().filter(|s| Some(&s.protocol) == schedule.protocols().first()) {
            let _ = writeln!(
                out,
                "{}: {} rounds of {} tests, {} pairs per protocol",
                mesh_label(segment.family, segment.network, families.len(), networks.len()),
                segment.rounds(),
                segment.tests_per_round(),
                segment.pairs()
            );
        }
    }
    if dry.pairs_without_ip_family > 0 {
        let _ = writeln!(
            out,
            "not measured: {} directed pairs whose nodes share no IP family measured",
            dry.pairs_without_ip_family
        );
    }
    let _ = writeln!(
        out,
        "this run: {} of {} tests in the cycle ({} rounds), from test {} (round {}); {} at once, about {:.1}s per test, {:.0}s in all{}",
        plan.tests,
        plan.cycle_tests,
        plan.cycle_rounds,
        plan.first_test + 1,
        plan.first_round + 1,
        plan.lanes,
        plan.test_estimate.as_secs_f64(),
        plan.estimate().as_secs_f64(),
        dry.budget_seconds.map_or(String::new(), |b| format!(" (budget {b}s)")),
    );
    if plan.tests < schedule.tests_per_round() {
        let _ = writeln!(
            out,
            "one round of {} tests takes {:.1} runs at this concurrency (raise --concurrency to cover the mesh in fewer runs)",
            schedule.tests_per_round(),
            schedule.tests_per_round() as f64 / plan.stride.max(1) as f64,
        );
    }
    let _ = writeln!(
        out,
        "coverage: every pair is measured once every {} run(s), i.e. every {:.0}s at an interval of {}s",
        plan.cycle_runs,
        plan.cycle_runs as f64 * dry.interval_seconds as f64,
        dry.interval_seconds,
    );
    // The run's tests, round by round: the first pairs of each round and how many more.
    let mut planned = plan.planned(schedule).peekable();
    let mut listed = 0;
    while let Some(first) = planned.peek().copied() {
        if listed == LISTED_ROUNDS {
            let rounds_left = plan.rounds - LISTED_ROUNDS;
            let _ = writeln!(out, "… and {rounds_left} more rounds");
            break;
        }
        let mut pairs = Vec::new();
        let mut count = 0;
        while let Some(test) = planned.next_if(|t| t.round == first.round) {
            if pairs.len() < LISTED_PAIRS {
                pairs.push(format!("{}→{}", node_names[test.pair.source], node_names[test.pair.destination]));
            }
            count += 1;
        }
        let more = count - pairs.len();
        let _ = writeln!(
            out,
            "round {} ({}): {}{}",
            first.round + 1,
            mesh_name(first.protocol, first.family, first.network, families.len(), networks.len()),
            pairs.join(", "),
            if more > 0 { format!(", … and {more} more") } else { String::new() }
        );
        listed += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meshes_are_named_by_what_the_run_has_several_of() {
        let (v6, pod) = (IpFamily::Ipv6, Network::Pod);
        assert_eq!(mesh_name(Protocol::Tcp, IpFamily::Ipv4, Network::Host, 1, 1), "tcp");
        assert_eq!(mesh_name(Protocol::Udp, v6, Network::Host, 2, 1), "udp over ipv6");
        assert_eq!(mesh_name(Protocol::Tcp, IpFamily::Ipv4, pod, 1, 2), "tcp on the pod network");
        assert_eq!(mesh_name(Protocol::Tcp, v6, pod, 2, 2), "tcp over ipv6 on the pod network");
        // The dry run's list of meshes: a dual-stack run's as it has always read.
        assert_eq!(mesh_label(v6, Network::Host, 2, 1), "ipv6");
        assert_eq!(mesh_label(IpFamily::Ipv4, pod, 1, 2), "pod network");
        assert_eq!(mesh_label(v6, pod, 2, 2), "ipv6 on the pod network");
    }
}
