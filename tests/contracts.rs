//! The contracts kept in more than one place, checked against their one source in the code:
//! the metrics (`samples::ALL_METRICS`) in the README's table and in the dashboard checks'
//! list, and the failure reasons (`FailureReason::ALL`) in the README's table and the
//! `iperf3_test_failure` help. A metric or reason added in the code and missed in the docs
//! fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use iperf3_monitor::iperf3::FailureReason;
use iperf3_monitor::samples::{ALL_METRICS, TEST_FAILURE};

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The first cell of each row of the README's tables that names an `iperf3_*` metric.
fn readme_metrics() -> BTreeSet<String> {
    read("README.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| `iperf3_"))
        .map(|rest| format!("iperf3_{}", rest.split(['`', '{']).next().unwrap()))
        .collect()
}

fn code_metrics() -> BTreeSet<String> {
    ALL_METRICS.iter().map(|m| m.name.to_string()).collect()
}

#[test]
fn every_metric_is_in_the_readme_table_and_nothing_else() {
    let readme = readme_metrics();
    let code = code_metrics();
    assert!(code.len() > 20 && readme.len() > 20, "{} metrics in the code, {} in the README", code.len(), readme.len());
    let missing: Vec<_> = code.difference(&readme).collect();
    let unknown: Vec<_> = readme.difference(&code).collect();
    assert!(missing.is_empty(), "metrics missing from the README's Metrics table: {missing:?}");
    assert!(unknown.is_empty(), "the README's Metrics table names metrics the job does not write: {unknown:?}");
}

#[test]
fn the_dashboard_checks_know_every_metric() {
    // dashboard_queries.py reads the names from src/samples.rs's metrics! table: all of them.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboards/dashboard_queries.py");
    let output = std::process::Command::new("python3").arg(script).arg("contract-metrics").output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "dashboard_queries.py contract-metrics: {stdout}");
    let listed: BTreeSet<String> = stdout.lines().map(str::to_string).collect();
    assert_eq!(listed, code_metrics(), "the metrics tests/dashboards/dashboard_queries.py reads from src/samples.rs");
}

#[test]
fn every_failure_reason_is_in_the_readme_and_the_metric_help() {
    let readme = read("README.md");
    for reason in FailureReason::ALL {
        let row = format!("| `{}` |", reason.as_str());
        assert!(readme.contains(&row), "README's failure reason table misses {}", reason.as_str());
        assert!(TEST_FAILURE.help.contains(reason.as_str()), "iperf3_test_failure's help misses {}", reason.as_str());
    }
}
