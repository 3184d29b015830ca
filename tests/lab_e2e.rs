//! End-to-end: the real binary measures the namespace lab with real iperf3 servers and
//! remote-writes into a real Prometheus, which is then queried. Needs root (the lab).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Lab, Prometheus, all_pairs, lab_lock, run_monitor};
use serde_json::Value;

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

/// [`Prometheus::assert_tcp_rates`] against the lab's shaped paths; `selector` follows
/// `protocol="tcp"`.
fn assert_tcp_rates(prom: &Prometheus, lab: &Lab, selector: &str, expected: &[(String, String)]) -> Vec<f64> {
    prom.assert_tcp_rates(&format!("protocol=\"tcp\"{selector}"), expected, |src, dst| lab.path_rate_bits(src, dst))
}

fn assert_timestamps_within(prom: &Prometheus, metric: &str, start_ms: f64, end_ms: f64) {
    let stamps = prom.query(&format!("timestamp({metric})"));
    assert!(!stamps.is_empty(), "no {metric}");
    for stamp in &stamps {
        let ms = common::value_of(stamp) * 1000.0;
        assert!(ms >= start_ms && ms <= end_ms, "{metric} at {ms} outside the run [{start_ms}, {end_ms}]: {stamp}");
    }
}

/// No node of `nodes` is the source of two of the report's tests at once (50 ms for the clocks'
/// grain), whatever their families or networks.
fn assert_no_node_sends_two_tests_at_once(report: &Value, nodes: &[String]) {
    let measurements = report["measurements"].as_array().unwrap();
    for node in nodes {
        let mut spans: Vec<(f64, f64)> = measurements
            .iter()
            .filter(|m| m["source"] == node.as_str())
            .map(|m| {
                let end = m["finished_at_unix_seconds"].as_f64().unwrap();
                (end - m["duration_seconds"].as_f64().unwrap(), end)
            })
            .collect();
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in spans.windows(2) {
            assert!(pair[1].0 >= pair[0].1 - 0.05, "{node} sends two tests at once: {spans:?}");
        }
    }
}

/// One TCP run over the lab's inventory with `duration`-s tests, remote-written to `prom`; it
/// must succeed. Returns the JSON report.
fn measure_tcp(prom: &Prometheus, lab: &Lab, duration: &str) -> Value {
    let inventory = lab.inventory.to_str().unwrap();
    let extra = ["--inventory", inventory, "--protocols", "tcp", "--output", "json"];
    let output = run_monitor(&[], &prom.run_args(duration, &extra));
    assert_eq!(output.status.code(), Some(0));
    report(&output)
}

fn report(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not the JSON report ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}

/// The JSON report on stdout and Prometheus hold the same figures.
fn assert_report_matches_prometheus(report: &Value, prom: &Prometheus, protocol: &str) {
    let in_prometheus = prom.by_pair(&format!("iperf3_received_bytes_per_second{{protocol=\"{protocol}\"}}"));
    let mut in_report = BTreeMap::new();
    for m in report["measurements"].as_array().unwrap() {
        if m["protocol"] == protocol {
            let value = m["outcome"]["success"]["received_bytes_per_second"].as_f64().unwrap();
            in_report.insert(
                (m["source"].as_str().unwrap().to_string(), m["destination"].as_str().unwrap().to_string()),
                value,
            );
        }
    }
    assert_eq!(in_report.len(), in_prometheus.len(), "{protocol}: report and Prometheus differ");
    for (pair, value) in &in_report {
        let stored = in_prometheus.get(pair).unwrap_or_else(|| panic!("{pair:?} not in Prometheus"));
        // Equal but for the last digit of the decimal text on either side.
        assert!(
            (value - stored).abs() <= value.abs() * 1e-12,
            "{protocol} {pair:?}: report {value}, Prometheus {stored}"
        );
    }
}

#[test]
fn mesh_of_five_nodes_over_tcp_and_udp() {
    let _lock = lab_lock();
    let lab = Lab::up("e2em5", 21, &[40, 60, 80, 100, 120], &["--udp-loss", "3:0.10"]);
    let prom = Prometheus::start();
    let n = lab.node_count();
    let duration = 2.0;
    let start = now_ms();
    let inventory = lab.inventory.to_str().unwrap();
    let extra = ["--inventory", inventory, "--udp-bitrate", "10M", "--cluster", "lab", "--output", "json"];
    let output = run_monitor(&[], &prom.run_args("2", &extra));
    let end = now_ms();
    assert_eq!(output.status.code(), Some(0), "exit code");
    let report = report(&output);

    // The whole mesh in the lower bound of rounds: N-1 per protocol.
    assert_eq!(report["rounds_run"], 2 * (n - 1));
    assert_eq!(report["plan"]["cycle_rounds"], 2 * (n - 1));
    let wall = report["duration_seconds"].as_f64().unwrap();
    let lower_bound = 2.0 * (n - 1) as f64 * duration;
    eprintln!("mesh wall time {wall:.2}s, lower bound {lower_bound:.0}s, ratio {:.3}", wall / lower_bound);

    let expected = all_pairs(&names(n), &names(n));
    let errors = assert_tcp_rates(&prom, &lab, ",cluster=\"lab\"", &expected);
    let worst = errors.iter().map(|e| e.abs()).fold(0.0, f64::max);
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    eprintln!("tcp error against shaped rates: mean {:+.1}%, worst {:.1}%", mean * 100.0, worst * 100.0);

    let udp_success = prom.by_pair("iperf3_test_success{protocol=\"udp\"}");
    assert_eq!(udp_success.keys().cloned().collect::<Vec<_>>(), expected, "udp pairs");
    let loss = prom.by_pair("iperf3_loss_ratio{protocol=\"udp\"}");
    assert_eq!(loss.len(), expected.len());
    for ((src, dst), ratio) in &loss {
        // A loaded machine loses the odd datagram in socket buffers; iptables drops 10%.
        if dst == "n3" {
            assert!((0.06..=0.15).contains(ratio), "{src}→{dst}: loss {ratio} where 10% is dropped");
        } else {
            assert!(*ratio < 0.03, "{src}→{dst}: loss {ratio} where nothing is dropped");
        }
    }
    let jitter = prom.query("iperf3_jitter_seconds");
    assert_eq!(jitter.len(), expected.len());

    assert_timestamps_within(&prom, "iperf3_received_bytes_per_second", start, end);
    assert_timestamps_within(&prom, "iperf3_monitor_last_run_timestamp_seconds", start, end);
    assert_report_matches_prometheus(&report, &prom, "tcp");
    assert_report_matches_prometheus(&report, &prom, "udp");

    let covered = prom.query("iperf3_monitor_run_pairs_covered{cluster=\"lab\"}");
    assert_eq!(covered.len(), 2);
    assert!(covered.iter().all(|r| common::value_of(r) == (n * (n - 1)) as f64), "{covered:?}");
    let rounds = prom.query("iperf3_monitor_run_rounds");
    assert_eq!(common::value_of(&rounds[0]), (2 * (n - 1)) as f64);
    let failures = prom.query("iperf3_monitor_run_tests{result=\"failure\"}");
    assert_eq!(common::value_of(&failures[0]), 0.0);

    // Every dashboard panel answers from this real run, and the matrix has N×(N-1) cells.
    prom.assert_dashboards_answer(n, "tcp,udp", "real data");
}

#[test]
fn a_dual_stack_mesh_is_measured_in_each_family_in_rounds_of_its_own() {
    let _lock = lab_lock();
    let lab = Lab::up("e2eds", 28, &[40, 60, 80, 100], &["--ipv6"]);
    let prom = Prometheus::start();
    let report = measure_tcp(&prom, &lab, "4");
    assert_eq!(report["ip_families"], serde_json::json!(["ipv4", "ipv6"]));
    // Each family its own N-1 duplex rounds: 2(N-1) in all.
    assert_eq!((report["plan"]["cycle_rounds"].as_u64(), report["rounds_run"].as_u64()), (Some(6), Some(6)));
    let expected = all_pairs(&names(4), &names(4));
    for family in ["ipv4", "ipv6"] {
        eprintln!("{family}:");
        assert_tcp_rates(&prom, &lab, &format!(",ip_family=\"{family}\""), &expected);
    }
    // The IPv6 tests reached the servers over IPv6: their logs name the clients' IPv6 addresses.
    let log = std::fs::read_to_string(lab.state_dir().join("n1.log")).unwrap();
    assert!(log.contains("Accepted connection from 2001:db8:28::"), "{log}");
    assert!(log.contains("Accepted connection from 198.18.28."), "{log}");
    // No node sends two tests at once, whatever their families.
    assert_eq!(report["measurements"].as_array().unwrap().len(), 24);
    assert_no_node_sends_two_tests_at_once(&report, &names(4));
    let meshes = prom.query("iperf3_monitor_mesh_pairs");
    assert_eq!(meshes.len(), 2, "one mesh per family: {meshes:?}");
    assert!(meshes.iter().all(|m| common::value_of(m) == 12.0), "{meshes:?}");
    let unshared = prom.query("iperf3_monitor_run_pairs_without_ip_family");
    assert_eq!(unshared.iter().map(common::value_of).collect::<Vec<_>>(), [0.0]);
}

#[test]
fn the_host_and_the_pod_network_are_each_a_mesh_and_the_cni_cost_panel_shows_their_ratio() {
    let _lock = lab_lock();
    // Each node's "pod network" server is shaped to half the node's rate: a CNI costing 50 %.
    let lab = Lab::up("e2epn", 29, &[40, 60, 80, 100], &["--pod-network", "0.5"]);
    let prom = Prometheus::start();
    let report = measure_tcp(&prom, &lab, "3");
    assert_eq!(report["networks"], serde_json::json!(["host", "pod"]));
    assert_eq!(report["nodes"], serde_json::json!(names(4)), "a node with two servers is one node");
    // Each network its own N-1 duplex rounds: 2(N-1) in all.
    assert_eq!((report["plan"]["cycle_rounds"].as_u64(), report["rounds_run"].as_u64()), (Some(6), Some(6)));
    let expected = all_pairs(&names(4), &names(4));
    eprintln!("host network:");
    assert_tcp_rates(&prom, &lab, ",network=\"host\"", &expected);
    eprintln!("pod network:");
    prom.assert_tcp_rates("protocol=\"tcp\",network=\"pod\"", &expected, |src, dst| 0.5 * lab.path_rate_bits(src, dst));
    // The pod-network tests ran between the pod-network servers: n1's heard from 198.18.29.10x.
    let log = std::fs::read_to_string(lab.state_dir().join("p1.log")).unwrap();
    assert!(log.contains("Accepted connection from 198.18.29.10"), "{log}");
    // A node's two servers never send at once: the two networks share the node.
    assert_eq!(report["measurements"].as_array().unwrap().len(), 24);
    assert_no_node_sends_two_tests_at_once(&report, &names(4));
    let meshes: BTreeMap<String, f64> = prom
        .query("iperf3_monitor_mesh_pairs")
        .iter()
        .map(|m| (m["metric"]["network"].as_str().unwrap().to_string(), common::value_of(m)))
        .collect();
    assert_eq!(meshes, BTreeMap::from([("host".to_string(), 12.0), ("pod".to_string(), 12.0)]));
    // The dashboards answer, and the CNI-cost matrix reads 0.5 for every pair.
    prom.assert_dashboards_answer_with(4, "tcp", "the host/pod lab", &["--cni-cost", "tcp=0.5"]);
}

#[test]
fn mesh_of_four_nodes_over_tcp_prints_the_matrix() {
    let _lock = lab_lock();
    let lab = Lab::up("e2em4", 22, &[30, 60, 90, 120], &[]);
    let prom = Prometheus::start();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("matrix.svg");
    let extra =
        ["--inventory", lab.inventory.to_str().unwrap(), "--protocols", "tcp", "--matrix-svg", svg.to_str().unwrap()];
    let output = run_monitor(&[], &prom.run_args("2", &extra));
    assert_eq!(output.status.code(), Some(0));
    // The heatmap holds the same figures as the table, one cell per pair.
    let svg = std::fs::read_to_string(&svg).unwrap();
    let stdout_text = String::from_utf8_lossy(&output.stdout);
    let figures: Vec<&str> =
        stdout_text.lines().skip(2).take(4).flat_map(|l| l.split_whitespace().skip(1)).filter(|f| *f != "·").collect();
    assert_eq!(figures.len(), 12, "{stdout_text}");
    for figure in figures {
        assert!(svg.contains(&format!(">{figure}</text>")), "{figure} not in the heatmap");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("tcp: received throughput in Mbit/s"), "{stdout}");
    assert!(stdout.contains("12 tests: 12 ok, 0 failed; 3 of 3 planned rounds"), "{stdout}");
    assert!(!stdout.contains("udp"), "{stdout}");
    let expected = all_pairs(&names(4), &names(4));
    assert_tcp_rates(&prom, &lab, "", &expected);
    assert!(prom.query("iperf3_test_success{protocol=\"udp\"}").is_empty());
    assert!(prom.query("iperf3_test_success{cluster!=\"\"}").is_empty(), "no --cluster, no cluster label");
}

#[test]
fn star_measures_from_its_own_node_to_every_other() {
    let _lock = lab_lock();
    let lab = Lab::up("e2estar", 23, &[50, 40, 80, 100], &[]);
    // The job runs inside n1's namespace; Prometheus listens on the lab bridge's host address.
    let prom = Prometheus::start_on(&lab.host_address(), &[]);
    let start = now_ms();
    let inventory = lab.inventory.to_str().unwrap();
    let extra =
        ["--inventory", inventory, "--mode", "star", "--source-node", "n1", "--udp-bitrate", "10M", "--output", "json"];
    let output = run_monitor(&["ip", "netns", "exec", &lab.namespace(1)], &prom.run_args("2", &extra));
    let end = now_ms();
    assert_eq!(output.status.code(), Some(0));
    let report = report(&output);
    assert_eq!(report["rounds_run"], 2 * 3, "N-1 rounds per protocol");
    let expected = all_pairs(&["n1".to_string()], &names(4));
    assert_tcp_rates(&prom, &lab, "", &expected);
    let udp = prom.by_pair("iperf3_test_success{protocol=\"udp\"}");
    assert_eq!(udp.keys().cloned().collect::<Vec<_>>(), expected);
    assert_timestamps_within(&prom, "iperf3_received_bytes_per_second", start, end);
    assert_report_matches_prometheus(&report, &prom, "tcp");
}

#[test]
fn failed_pairs_keep_their_reason_and_the_rest_is_measured() {
    let _lock = lab_lock();
    let lab = Lab::up("e2efail", 24, &[50, 50, 50], &[]);
    // n2's server is gone (its client still works); "ghost" has no host at its address and no
    // way to run a client.
    let pid = std::fs::read_to_string(format!("/run/iperf3-monitor-lab/{}/n2.pid", lab.name)).unwrap();
    assert!(std::process::Command::new("kill").arg(pid.trim()).status().unwrap().success());
    let dir = tempfile::tempdir().unwrap();
    let mut inventory = std::fs::read_to_string(&lab.inventory).unwrap();
    inventory.push_str(&format!(
        "  - name: ghost\n    address: 198.18.{}.77\n    client_command: [/nonexistent/ssh, ghost]\n",
        lab.subnet
    ));
    let inventory = common::write_file(dir.path(), "inventory.yaml", &inventory);
    let prom = Prometheus::start();
    let output =
        run_monitor(&[], &prom.run_args("2", &["--inventory", inventory.to_str().unwrap(), "--protocols", "tcp"]));
    assert_eq!(output.status.code(), Some(1), "some tests failed, all delivered");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The tests towards ghost fail unreachable; once two good senders saw that, the third (if
    // it has not started yet) is skipped.
    assert!(
        stdout.contains("12 tests: 4 ok, 8 failed (refused: 2, spawn: 3, unreachable: 3)")
            || stdout.contains("12 tests: 4 ok, 8 failed (refused: 2, skipped: 1, spawn: 3, unreachable: 2)"),
        "{stdout}"
    );

    let success = prom.by_pair("iperf3_test_success");
    assert_eq!(success.len(), 12, "every planned pair has a sample: {success:?}");
    let ok: Vec<_> = success.iter().filter(|(_, v)| **v == 1.0).map(|(k, _)| k.clone()).collect();
    let pair = |s: &str, d: &str| (s.to_string(), d.to_string());
    assert_eq!(ok, [pair("n1", "n3"), pair("n2", "n1"), pair("n2", "n3"), pair("n3", "n1")]);
    let reasons: BTreeMap<(String, String), String> = prom
        .query("iperf3_test_failure")
        .iter()
        .map(|r| {
            let m = &r["metric"];
            let pair =
                (m["source_node"].as_str().unwrap().to_string(), m["destination_node"].as_str().unwrap().to_string());
            (pair, m["reason"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(reasons.len(), 8);
    for ((src, dst), reason) in &reasons {
        let expected = if src == "ghost" {
            "spawn"
        } else if dst == "ghost" {
            if reason == "skipped" { "skipped" } else { "unreachable" }
        } else {
            assert_eq!(dst, "n2", "{src}→{dst} failed: {reason}");
            "refused"
        };
        assert_eq!(reason, expected, "{src}→{dst}");
    }
    let tcp = prom.by_pair("iperf3_received_bytes_per_second");
    assert_eq!(tcp.keys().cloned().collect::<Vec<_>>(), ok);
}

#[test]
fn undelivered_results_exit_3_and_are_still_printed() {
    let _lock = lab_lock();
    let lab = Lab::up("e2edel", 25, &[50, 50], &[]);
    let port = common::free_port("127.0.0.1");
    let output = run_monitor(
        &[],
        &[
            "--inventory",
            lab.inventory.to_str().unwrap(),
            "--protocols",
            "tcp",
            "--duration",
            "1",
            "--remote-write-url",
            &format!("http://127.0.0.1:{port}/api/v1/write"),
            "--push-retries",
            "2",
        ],
    );
    assert_eq!(output.status.code(), Some(3), "delivery failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("2 tests: 2 ok, 0 failed"), "{stdout}");
    assert!(stdout.contains("remote_write: 0 of"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("gave up after 2 retries"), "{stderr}");
    assert_eq!(stderr.matches("retrying").count(), 2, "{stderr}");
}

/// A round longer than the budget: 3 tests one at a time take about 6 s, the budget holds one,
/// so each run measures one part (one test) of one round, and 6 consecutive runs cover the mesh.
#[test]
fn a_round_longer_than_the_budget_is_measured_over_several_runs() {
    let _lock = lab_lock();
    let lab = Lab::up("e2epart", 26, &[50, 50, 50], &[]);
    let prom = Prometheus::start();
    let inventory = lab.inventory.to_str().unwrap();
    let extra =
        ["--inventory", inventory, "--protocols", "tcp", "--concurrency", "1", "--budget", "2", "--output", "json"];
    let output = run_monitor(&[], &prom.run_args("1", &extra));
    assert_eq!(output.status.code(), Some(0), "the planned part was measured whole");
    let report = report(&output);
    assert_eq!((report["plan"]["tests"].as_u64(), report["plan"]["cycle_runs"].as_u64()), (Some(1), Some(6)));
    let measurements = report["measurements"].as_array().unwrap();
    assert_eq!(measurements.len(), 1, "{report}");
    assert!(measurements[0]["outcome"]["success"].is_object(), "{report}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("raise --concurrency"), "{stderr}");
    // Prometheus holds that one pair, and the run-level series say how the cycle is covered.
    assert_eq!(prom.query("iperf3_received_bytes_per_second").len(), 1);
    assert_eq!(common::value_of(&prom.query("iperf3_monitor_cycle_runs")[0]), 6.0);
    assert_eq!(common::value_of(&prom.query("iperf3_monitor_run_pairs_covered")[0]), 1.0);
}

/// Issue 18: unshaped nodes of a quarter core each (one cgroup quota over each node's server and
/// the clients run on it). Duplex tests starve their nodes' shared CPU, so the default pairing
/// switches to exclusive, measures again alone what it measured in duplex, and flags the tests
/// CPU-bound: in the report, the matrix and Prometheus.
#[test]
fn a_cpu_starved_mesh_switches_to_exclusive_and_flags_its_tests_cpu_bound() {
    let _lock = lab_lock();
    let lab = Lab::up("e2ecpu", 27, &[10_000, 10_000, 10_000], &["--cpu-quota", "0.25"]);
    let prom = Prometheus::start();
    let args = ["--inventory", lab.inventory.to_str().unwrap(), "--protocols", "tcp"];
    let output = run_monitor(&[], &prom.run_args("2", &[&args[..], &["--output", "json"]].concat()));
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let report = report(&output);
    assert_eq!(report["switched_to_exclusive"], true, "{report}");
    let measurements = report["measurements"].as_array().unwrap();
    assert_eq!(measurements.len(), 6, "every pair once: the duplex figures are not reported");
    assert!(measurements.iter().all(|m| m["alone"] == true), "{report}");
    // Alone, the receiver uses its node's whole quarter core: iperf3's own figures say so.
    let bound = measurements.iter().filter(|m| m["cpu_bound"] == true).count();
    assert!(bound >= 4, "{bound} of 6 CPU-bound: {report}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("switching to exclusive pairing"), "{stderr}");
    assert_eq!(prom.query("iperf3_test_cpu_bound == 1").len(), bound);
    assert_eq!(common::value_of(&prom.query("iperf3_monitor_run_pairing_switched")[0]), 1.0);
    // The matrix marks them.
    let table = run_monitor(&[], &[&args[..], &["--duration", "2", "--pairing", "exclusive"]].concat());
    let stdout = String::from_utf8_lossy(&table.stdout);
    assert!(stdout.contains('*') && stdout.contains("CPU-bound"), "{stdout}");
}
