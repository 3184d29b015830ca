//! End to end through the Pushgateway: the real binary measures a namespace lab, pushes to a
//! real `prometheus-pushgateway` (and remote-writes to the same Prometheus), and a real
//! Prometheus scrapes the Pushgateway with `honor_labels: true`. Needs root (the lab).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Lab, Prometheus, lab_lock};
use serde_json::Value;
use support::{Pushgateway, monitor};

/// A grouping value with a '/': the group URL needs the @base64 encoding.
const CLUSTER: &str = "lab/dlv1";

/// Labels of a pair's series scraped from the Pushgateway (`honor_labels: true` keeps the pushed
/// job; the Pushgateway's empty `instance` drops out), and of the remote-written ones.
const PUSHED_LABELS: &[&str] =
    &["__name__", "cluster", "destination_node", "ip_family", "job", "network", "protocol", "source_node"];
const REMOTE_WRITTEN_LABELS: &[&str] =
    &["__name__", "cluster", "destination_node", "ip_family", "network", "protocol", "source_node"];

/// (metric, source, destination, protocol) → value.
type PairValues = BTreeMap<(String, String, String, String), f64>;

/// Every per-pair figure of the JSON report, keyed like [`PairValues`]: each numeric field of a
/// successful outcome is the metric `iperf3_<field>`; the test's time and duration too.
fn report_values(report: &Value) -> PairValues {
    let mut values = PairValues::new();
    for m in report["measurements"].as_array().unwrap() {
        let key = |metric: &str| {
            (
                metric.to_string(),
                m["source"].as_str().unwrap().to_string(),
                m["destination"].as_str().unwrap().to_string(),
                m["protocol"].as_str().unwrap().to_string(),
            )
        };
        let success = m["outcome"]["success"].as_object().expect("every lab test succeeds");
        for (field, value) in success {
            if let Some(number) = value.as_f64() {
                values.insert(key(&format!("iperf3_{field}")), number);
            }
        }
        values.insert(key("iperf3_test_success"), 1.0);
        values.insert(key("iperf3_test_cpu_bound"), if m["cpu_bound"] == true { 1.0 } else { 0.0 });
        values.insert(key("iperf3_test_duration_seconds"), m["duration_seconds"].as_f64().unwrap());
        values.insert(key("iperf3_test_timestamp_seconds"), m["finished_at_unix_seconds"].as_f64().unwrap());
    }
    values
}

/// The per-pair series Prometheus holds for `selector`, checking each one's label names.
fn prometheus_values(prom: &Prometheus, selector: &str, label_names: &[&str]) -> PairValues {
    let mut values = PairValues::new();
    for result in prom.query(&format!("{{__name__=~\"iperf3_.+\", source_node!=\"\", {selector}}}")) {
        let labels = result["metric"].as_object().unwrap();
        let names: Vec<&str> = labels.keys().map(String::as_str).collect();
        assert_eq!(names, label_names, "{result}");
        assert_eq!(labels["cluster"], CLUSTER);
        let get = |name: &str| labels[name].as_str().unwrap().to_string();
        let key = (get("__name__"), get("source_node"), get("destination_node"), get("protocol"));
        assert!(values.insert(key, common::value_of(&result)).is_none(), "{result} twice");
    }
    values
}

fn assert_same(path: &str, report: &PairValues, stored: &PairValues) {
    let missing: Vec<_> = report.keys().filter(|k| !stored.contains_key(*k)).collect();
    let extra: Vec<_> = stored.keys().filter(|k| !report.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{path}: missing {missing:?}, not in the report {extra:?}");
    for (key, value) in report {
        let tolerance = if key.0 == "iperf3_test_timestamp_seconds" { 0.001 } else { value.abs() * 1e-12 };
        assert!((value - stored[key]).abs() <= tolerance, "{path} {key:?}: report {value}, Prometheus {}", stored[key]);
    }
}

/// Polls until `selector` has `count` pair series (the Pushgateway is scraped every second).
fn wait_for_series(prom: &Prometheus, selector: &str, count: usize) {
    let query = format!("count({{__name__=\"iperf3_test_success\", {selector}}})");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = prom.query(&query).first().map(common::value_of).unwrap_or(0.0) as usize;
        if found == count {
            return;
        }
        assert!(Instant::now() < deadline, "{query}: {found}, expected {count}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn pairs(values: &PairValues) -> Vec<(String, String, String)> {
    let mut pairs: Vec<_> = values.keys().map(|(_, s, d, p)| (s.clone(), d.clone(), p.clone())).collect();
    pairs.sort();
    pairs.dedup();
    pairs
}

/// A Prometheus that scrapes `gateway` every second and keeps the pushed labels (`honor_labels`).
fn prometheus_scraping(gateway: &Pushgateway) -> Prometheus {
    let scrape = format!(
        "  - job_name: pushgateway\n    honor_labels: true\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{}']",
        gateway.address
    );
    Prometheus::start_on("127.0.0.1", &[scrape])
}

/// The flags of a run over `inventory` that pushes to `gateway` as `cluster`, with 1-second tests
/// and UDP at 20 Mbit/s, then `also`.
fn pushing(inventory: &str, cluster: &str, gateway: &Pushgateway, also: &[&str]) -> Vec<String> {
    let args = ["--inventory", inventory, "--duration", "1", "--udp-bitrate", "20M", "--cluster", cluster];
    args.iter().chain(&["--pushgateway-url", gateway.url.as_str()]).chain(also).map(|a| a.to_string()).collect()
}

#[test]
fn a_lab_mesh_reaches_prometheus_through_the_pushgateway_and_a_smaller_mesh_replaces_the_group() {
    let _lock = lab_lock();
    let lab = Lab::up("dlv1", 40, &[50, 70, 90, 110], &["--udp-loss", "2:0.05"]);
    let gateway = Pushgateway::start();
    let prom = prometheus_scraping(&gateway);
    let run = |inventory: &str, protocols: &str| {
        let url = prom.remote_write_url();
        let also = ["--protocols", protocols, "--remote-write-url", &url, "--output", "json"];
        let run = monitor(&pushing(inventory, CLUSTER, &gateway, &also), &[]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let report = run.report();
        let sinks: Vec<(&str, bool)> = report["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["sink"].as_str().unwrap(), d["errors"].as_array().unwrap().is_empty()))
            .collect();
        assert_eq!(sinks, [("remote_write", true), ("pushgateway", true)]);
        report_values(&report)
    };

    // Four nodes: 12 directed pairs per protocol.
    let first = run(lab.inventory.to_str().unwrap(), "tcp,udp");
    assert_eq!(pairs(&first).len(), 24);
    let pushed = "job=\"iperf3-monitor\"";
    wait_for_series(&prom, pushed, 24);
    let through_gateway = prometheus_values(&prom, pushed, PUSHED_LABELS);
    assert_same("Pushgateway", &first, &through_gateway);
    let remote_written = prometheus_values(&prom, "job=\"\"", REMOTE_WRITTEN_LABELS);
    assert_same("remote-write", &first, &remote_written);
    let loss = &through_gateway[&("iperf3_loss_ratio".into(), "n1".into(), "n2".into(), "udp".into())];
    assert!(*loss > 0.01, "n2 drops 5% of UDP, the Pushgateway path says {loss}");

    // The group is the job and the cluster, its '/' carried by the @base64 encoding.
    let groups = gateway.groups();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["labels"], serde_json::json!({"job": "iperf3-monitor", "cluster": CLUSTER}));

    // Three nodes and TCP only: the new push replaces the whole group (PUT; a POST would keep
    // the UDP-only metrics), and n4's pairs and the UDP metrics leave Prometheus.
    let text = std::fs::read_to_string(&lab.inventory).unwrap();
    let three = text.split("  - name: n4").next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let smaller = support::write_file(dir.path(), "three.yaml", three);
    let second = run(smaller.to_str().unwrap(), "tcp");
    assert_eq!(pairs(&second).len(), 6);
    wait_for_series(&prom, pushed, 6);
    let through_gateway = prometheus_values(&prom, pushed, PUSHED_LABELS);
    assert_same("Pushgateway after the smaller run", &second, &through_gateway);
    let nodes = prom.query(&format!("iperf3_monitor_nodes{{{pushed}}}"));
    assert_eq!(nodes.iter().map(common::value_of).collect::<Vec<_>>(), [3.0]);
    assert_eq!(gateway.groups().len(), 1);
}

/// Every dashboard panel answers from a Prometheus that only scrapes the Pushgateway (no
/// remote-write: the samples carry scrape times, the test times are in the timestamp gauge).
#[test]
fn the_dashboards_answer_from_the_pushgateway_path_alone() {
    let _lock = lab_lock();
    let lab = Lab::up("dlv2", 41, &[50, 70, 90, 110], &["--udp-loss", "2:0.05"]);
    let gateway = Pushgateway::start();
    let prom = prometheus_scraping(&gateway);
    let run = monitor(&pushing(lab.inventory.to_str().unwrap(), "lab", &gateway, &[]), &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    wait_for_series(&prom, "job=\"iperf3-monitor\"", 24);
    prom.assert_dashboards_answer(4, "tcp,udp", "the Pushgateway path");
}
