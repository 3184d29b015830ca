//! The latest source × destination matrix as an SVG heatmap: a picture of the run without
//! Grafana. Pure: the caller writes the file.

use std::fmt::Write as _;

use super::RunReport;
use crate::measure::Outcome;

const CELL_WIDTH: usize = 72;
const CELL_HEIGHT: usize = 30;
const LABEL_WIDTH: usize = 110;
const TITLE_HEIGHT: usize = 58;
const GAP: usize = 30;
/// Room for the titles.
const MIN_WIDTH: usize = 440;

/// One heatmap per protocol, stacked: received throughput coloured from red (0) to green (the
/// fastest pair of that protocol), failed tests grey with their reason.
pub fn heatmap(report: &RunReport) -> String {
    let sources = report.sources();
    let columns = report.node_names();
    let panel_height = TITLE_HEIGHT + CELL_HEIGHT * (sources.len() + 1);
    let width = (LABEL_WIDTH + CELL_WIDTH * columns.len().max(1) + 20).max(MIN_WIDTH);
    let matrices = report.matrices();
    let height = (panel_height + GAP) * matrices.len().max(1) + 10;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{width}" height="{height}" fill="white"/>"#);
    for (p, &matrix) in matrices.iter().enumerate() {
        let cells = report.cells(matrix);
        let name = super::table::matrix_name(report, matrix);
        let fastest =
            cells.values().filter_map(|m| m.result()).map(|r| r.received_bytes_per_second()).fold(0.0, f64::max);
        let top = p * (panel_height + GAP) + 10;
        let _ = writeln!(
            svg,
            r#"<text x="10" y="{}" font-size="15" font-weight="bold">{name}: received throughput, Mbit/s</text>"#,
            top + 14
        );
        let _ = writeln!(
            svg,
            r##"<text x="10" y="{}" fill="#555555">rows: source, columns: destination; green: the fastest pair ({:.1})</text>"##,
            top + 30,
            fastest * 8.0 / 1e6
        );
        let grid_top = top + TITLE_HEIGHT;
        for (c, column) in columns.iter().enumerate() {
            let x = LABEL_WIDTH + c * CELL_WIDTH + CELL_WIDTH / 2;
            let _ =
                writeln!(svg, r#"<text x="{x}" y="{}" text-anchor="middle">{}</text>"#, grid_top - 8, escape(column));
        }
        for (r, source) in sources.iter().enumerate() {
            let y = grid_top + r * CELL_HEIGHT;
            let _ = writeln!(svg, r#"<text x="10" y="{}">{}</text>"#, y + CELL_HEIGHT / 2 + 4, escape(source));
            for (c, column) in columns.iter().enumerate() {
                let x = LABEL_WIDTH + c * CELL_WIDTH;
                let (fill, text) = if source == column {
                    ("#ffffff".to_string(), "·".to_string())
                } else {
                    match cells.get(source, column).map(|m| &m.outcome) {
                        Some(Outcome::Success(result)) => {
                            let share = if fastest > 0.0 { result.received_bytes_per_second() / fastest } else { 0.0 };
                            (colour(share), format!("{:.1}", result.received_bytes_per_second() * 8.0 / 1e6))
                        }
                        Some(Outcome::Failure(failure)) => ("#9e9e9e".to_string(), failure.reason.to_string()),
                        None => ("#eeeeee".to_string(), "–".to_string()),
                    }
                };
                let _ = writeln!(
                    svg,
                    r##"<rect x="{x}" y="{y}" width="{CELL_WIDTH}" height="{CELL_HEIGHT}" fill="{fill}" stroke="#ffffff"/><text x="{}" y="{}" text-anchor="middle">{}</text>"##,
                    x + CELL_WIDTH / 2,
                    y + CELL_HEIGHT / 2 + 4,
                    escape(&text)
                );
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// Red (0) through yellow to green (1).
fn colour(share: f64) -> String {
    let hue = 120.0 * share.clamp(0.0, 1.0);
    format!("hsl({hue:.0}, 70%, 62%)")
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            c if c.is_control() => "?".to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::iperf3::{Failure, FailureReason, Protocol};
    use crate::measure::Measurement;
    use crate::samples::{MeshPairs, RunFacts};
    use crate::schedule::Mode;
    use crate::targets::{IpFamily, Network, Node};

    #[test]
    fn cells_carry_the_figures_colours_and_reasons_and_names_are_escaped() {
        let epoch = SystemTime::UNIX_EPOCH;
        let report = RunReport {
            mode: Mode::Mesh,
            duration_seconds: 1.0,
            nodes: vec![Node::new("a<b", "", 0, vec![]), Node::new("n2", "", 0, vec![])],
            protocols: vec![Protocol::Tcp],
            ip_families: vec![IpFamily::Ipv4],
            networks: vec![Network::Host],
            facts: RunFacts::whole_cycle(epoch, epoch, 2, vec![MeshPairs::host_ipv4(Protocol::Tcp, 2)], 1),
            calibrations: Vec::new(),
            stopped: None,
            measurements: vec![
                Measurement::example("a<b", "n2", Outcome::tcp_ok(12.5e6)),
                Measurement::example("n2", "a<b", Outcome::Failure(Failure::new(FailureReason::Refused, "x"))),
            ],
            deliveries: vec![],
            cluster: None,
        };
        let svg = heatmap(&report);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains(">100.0</text>"), "{svg}");
        assert!(svg.contains("hsl(120, 70%, 62%)"), "the fastest pair is green");
        assert!(svg.contains(">refused</text>"));
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
        assert_eq!(svg.matches("<rect ").count(), 1 + 4);
    }
}
