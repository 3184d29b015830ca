//! End-to-end through the Kubernetes code path: the real binary, pointed at the fake API server
//! (tests/fake_apiserver, the real wire protocol over https) by a kubeconfig, discovers the
//! server pods, runs every client through pods/exec inside the lab's namespaces, and
//! remote-writes into a real Prometheus. Needs root (the lab).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fake_apiserver;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{Lab, Prometheus, lab_lock};
use fake_apiserver::{BOTH_NETWORKS_SELECTOR, FakeApiServer, FakeCluster, FakeNode, FakePod};
use serde_json::Value;

const NS: &str = "monitoring";
const ZONE: &str = "topology.kubernetes.io/zone";

/// Runs `iperf3-monitor run` with the kubeconfig (and not in-cluster), optionally behind a
/// command prefix.
fn run_k8s(prefix: &[&str], kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    common::run_monitor_with(prefix, args, |command| {
        command.env("KUBECONFIG", kubeconfig).env_remove("KUBERNETES_SERVICE_HOST").envs(env.iter().copied());
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn measurements(output: &Output) -> Vec<Value> {
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    report["measurements"].as_array().cloned().unwrap()
}

fn pair(m: &Value) -> (String, String) {
    (m["source"].as_str().unwrap().to_string(), m["destination"].as_str().unwrap().to_string())
}

fn failure_reason(m: &Value) -> Option<&str> {
    m["outcome"]["failure"]["reason"].as_str()
}

/// The lab's pods plus pods discovery must pass over: not ready, a younger duplicate on a node,
/// pending, unlabelled, and in another namespace.
fn cluster_with_distractions(lab: &Lab) -> FakeCluster {
    let mut cluster = FakeCluster::lab(&lab.name, lab.subnet, lab.node_count(), NS);
    let unused_ip = format!("198.18.{}.99", lab.subnet);
    cluster.pods.push(FakePod::running(NS, "iperf3-monitor-server-n2-sick", "n2", &unused_ip).ready(false));
    cluster.pods.push(
        FakePod::running(NS, "iperf3-monitor-server-n3-young", "n3", &unused_ip).created_at("2030-01-01T00:00:00Z"),
    );
    cluster.pods.push(FakePod::running(NS, "iperf3-monitor-server-n9", "n9", &unused_ip).phase("Pending").ready(false));
    let mut unlabelled = FakePod::running(NS, "something-else", "n1", &unused_ip);
    unlabelled.labels.clear();
    cluster.pods.push(unlabelled);
    cluster.pods.push(FakePod::running("other", "iperf3-monitor-server-x", "n1", &unused_ip));
    for (i, node) in cluster.nodes.iter_mut().enumerate() {
        *node = FakeNode::new(&node.name).label(ZONE, if i < 2 { "zone-a" } else { "zone-b" });
    }
    cluster
}

#[test]
fn mesh_through_pods_exec_measures_the_lab() {
    let _lock = lab_lock();
    let lab = Lab::up("k8mesh", 31, &[40, 60, 80, 100], &[]);
    let server = FakeApiServer::start(cluster_with_distractions(&lab));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), NS);
    let prom = Prometheus::start();
    let output = run_k8s(
        &[],
        &kubeconfig,
        &[
            "--protocols",
            "tcp",
            "--duration",
            "2",
            "--page-size",
            "2",
            "--node-label-keys",
            ZONE,
            "--remote-write-url",
            &prom.remote_write_url(),
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let measured = measurements(&output);
    assert_eq!(measured.len(), 12);
    assert!(measured.iter().all(|m| failure_reason(m).is_none()), "{measured:?}");

    // Every pair in Prometheus, within 10% of its shaped rate, with the zones of both ends.
    let received = prom.query("iperf3_received_bytes_per_second{protocol=\"tcp\"}");
    assert_eq!(received.len(), 12);
    for series in &received {
        let m = &series["metric"];
        let (src, dst) = (m["source_node"].as_str().unwrap(), m["destination_node"].as_str().unwrap());
        let bits = common::value_of(series) * 8.0;
        let rate = lab.path_rate_bits(src, dst);
        eprintln!("tcp {src}→{dst} through exec: {:.2} Mbit/s, shaped {:.0}", bits / 1e6, rate / 1e6);
        assert!((bits / rate - 1.0).abs() <= 0.10, "{src}→{dst}: {bits} bit/s against {rate}");
        let zone = |node: &str| if node == "n1" || node == "n2" { "zone-a" } else { "zone-b" };
        assert_eq!(m["source_zone"].as_str(), Some(zone(src)), "{m}");
        assert_eq!(m["destination_zone"].as_str(), Some(zone(dst)), "{m}");
    }

    // Each client ran in its source node's server pod, bounded by `timeout`, over v5.
    let execs = server.execs();
    assert_eq!(execs.len(), 12);
    for exec in &execs {
        assert_eq!(exec.namespace, NS);
        assert_eq!(exec.container, "iperf3");
        assert_eq!(exec.protocol, "v5.channel.k8s.io");
        assert_eq!(&exec.command[..3], ["timeout", "-s", "KILL"], "{:?}", exec.command);
        let node = exec.pod.strip_prefix("iperf3-monitor-server-").unwrap();
        assert!(node.len() == 2, "exec into {} (not the oldest ready pod)", exec.pod);
        let client = exec.command.iter().position(|a| a == "--client").unwrap();
        let destination = &exec.command[client + 1];
        assert_ne!(destination, &format!("198.18.31.{}", &node[1..]), "{node} measured itself");
        assert!(destination.starts_with("198.18.31.") && !destination.ends_with(".99"), "{destination}");
    }

    // Listed page by page with the bearer token; nodes listed for their labels.
    let requests = server.requests();
    assert!(requests.iter().all(|r| r.header("authorization") == Some("Bearer fake-token")));
    let pages: Vec<_> = requests.iter().filter(|r| r.path == format!("/api/v1/namespaces/{NS}/pods")).collect();
    assert!(pages.len() >= 4, "{} pages", pages.len());
    assert!(pages.iter().all(|r| r.param("limit") == Some("2")));
    assert!(pages.iter().skip(1).all(|r| r.param("continue").is_some()));
    assert!(pages.iter().all(|r| r.param("labelSelector")
        == Some("app.kubernetes.io/component=server,app.kubernetes.io/name=iperf3-monitor")));
    assert!(requests.iter().any(|r| r.path == "/api/v1/nodes"));
}

#[test]
fn dual_stack_pods_are_measured_in_both_families_through_pods_exec() {
    let _lock = lab_lock();
    let lab = Lab::up("k8dual", 35, &[40, 60, 80], &["--ipv6"]);
    let mut cluster = FakeCluster::lab(&lab.name, lab.subnet, lab.node_count(), NS);
    for (i, pod) in cluster.pods.iter_mut().enumerate() {
        // As a dual-stack cluster lists them: the IPv4 address first, then the IPv6 one.
        *pod = pod.clone().also_ip(&format!("2001:db8:35::{}", i + 1));
    }
    let server = FakeApiServer::start(cluster);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), NS);
    let prom = Prometheus::start();
    let args = ["--protocols", "tcp", "--duration", "3", "--remote-write-url", &prom.remote_write_url()];
    let output = run_k8s(&[], &kubeconfig, &[&args[..], &["--output", "json"]].concat(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let measured = measurements(&output);
    assert_eq!(measured.len(), 12, "6 pairs in each of two families");
    assert!(measured.iter().all(|m| failure_reason(m).is_none()), "{measured:?}");
    for family in ["ipv4", "ipv6"] {
        let received = prom.by_pair(&format!("iperf3_received_bytes_per_second{{ip_family=\"{family}\"}}"));
        assert_eq!(received.len(), 6, "{family}: {received:?}");
        for ((src, dst), bytes) in &received {
            let (bits, rate) = (bytes * 8.0, lab.path_rate_bits(src, dst));
            eprintln!("tcp over {family} {src}→{dst} through exec: {:.2} Mbit/s, shaped {:.0}", bits / 1e6, rate / 1e6);
            assert!((bits / rate - 1.0).abs() <= 0.10, "{family} {src}→{dst}: {bits} bit/s against {rate}");
        }
    }
    // The IPv6 tests went to the pods' IPv6 addresses, kept to IPv6 by the client.
    let execs = server.execs();
    let to_v6: Vec<_> = execs.iter().filter(|e| e.command.iter().any(|a| a.starts_with("2001:db8:35::"))).collect();
    assert_eq!(to_v6.len(), 6);
    assert!(to_v6.iter().all(|e| e.command.contains(&"--version6".to_string())), "{to_v6:?}");

    // --ip-families ipv6: the IPv6 mesh alone, the same rounds as a single-stack run.
    let output = run_k8s(&[], &kubeconfig, &["--protocols", "tcp", "--dry-run", "--ip-families", "ipv6"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan = String::from_utf8_lossy(&output.stdout);
    assert!(plan.contains("IP families ipv6\n") && plan.contains("rounds per protocol: 2 "), "{plan}");
}

/// The chart with server.podNetwork.enabled: a host-network and a pod-network server pod on each
/// node, selected together by the chart's set-based selector; the pod path is shaped to half the
/// node's rate (lab.sh --pod-network 0.5), as a CNI of known cost.
#[test]
fn host_and_pod_network_pods_are_two_meshes_through_pods_exec() {
    const FRACTION: f64 = 0.5;
    let _lock = lab_lock();
    let lab = Lab::up("k8pod", 37, &[40, 60, 80], &["--pod-network", &FRACTION.to_string()]);
    let cluster = FakeCluster::lab(&lab.name, lab.subnet, lab.node_count(), NS).with_pod_network(&lab.name, lab.subnet);
    let server = FakeApiServer::start(cluster);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), NS);
    let prom = Prometheus::start();
    let selector = ["--selector", BOTH_NETWORKS_SELECTOR];
    let args = ["--protocols", "tcp", "--duration", "3", "--remote-write-url", &prom.remote_write_url()];
    let started = Instant::now();
    let output = run_k8s(&[], &kubeconfig, &[&selector[..], &args, &["--output", "json"]].concat(), &[]);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let measured = measurements(&output);
    assert_eq!(measured.len(), 12, "6 pairs on each of two networks");
    assert!(measured.iter().all(|m| failure_reason(m).is_none()), "{measured:?}");
    eprintln!("host and pod network, 3 nodes, 3 s tests: {seconds:.1} s");

    // Every pair on each network, at its shaped rate; the pod path at FRACTION of the host's.
    let host = prom.by_pair("iperf3_received_bytes_per_second{network=\"host\"}");
    let pod = prom.by_pair("iperf3_received_bytes_per_second{network=\"pod\"}");
    assert_eq!(host.len(), 6, "{host:?}");
    assert_eq!(pod.len(), 6, "{pod:?}");
    for ((src, dst), pod_bytes) in &pod {
        let host_bytes = host[&(src.clone(), dst.clone())];
        let (rate, ratio) = (lab.path_rate_bits(src, dst), pod_bytes / host_bytes);
        eprintln!(
            "tcp {src}→{dst} through exec: host {:.2}, pod {:.2} Mbit/s (shaped {:.0} and {:.0}), pod/host {ratio:.3}",
            host_bytes * 8.0 / 1e6,
            pod_bytes * 8.0 / 1e6,
            rate / 1e6,
            rate * FRACTION / 1e6
        );
        assert!((host_bytes * 8.0 / rate - 1.0).abs() <= 0.10, "host {src}→{dst}: {host_bytes} B/s against {rate}");
        assert!((ratio / FRACTION - 1.0).abs() <= 0.10, "{src}→{dst}: pod/host {ratio}, shaped {FRACTION}");
    }

    // A pod-network test runs in its source's pod-network pod towards a pod-network address.
    let execs = server.execs();
    assert_eq!(execs.len(), 12);
    for exec in &execs {
        let client = exec.command.iter().position(|a| a == "--client").unwrap();
        let last_octet: u16 = exec.command[client + 1].strip_prefix("198.18.37.").unwrap().parse().unwrap();
        let to_pod_network = last_octet > 100;
        let node = exec.pod.rsplit('-').next().unwrap();
        let expected = if to_pod_network { "iperf3-monitor-server-pod-" } else { "iperf3-monitor-server-" };
        assert_eq!(exec.pod, format!("{expected}{node}"), "{:?}", exec.command);
    }
    assert_eq!(execs.iter().filter(|e| e.pod.contains("-pod-")).count(), 6);
    let pages: Vec<_> = server.requests().into_iter().filter(|r| r.path.ends_with("/pods")).collect();
    assert!(pages.iter().all(|r| r.param("labelSelector") == Some(BOTH_NETWORKS_SELECTOR)), "{pages:?}");

    // --networks pod: the pod mesh alone, the rounds of a single-network run.
    let dry_run = ["--protocols", "tcp", "--dry-run", "--networks", "pod"];
    let output = run_k8s(&[], &kubeconfig, &[&selector[..], &dry_run].concat(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan = String::from_utf8_lossy(&output.stdout);
    assert!(plan.contains("mesh of 3 nodes") && plan.contains("rounds per protocol: 2 "), "{plan}");
    assert!(plan.contains("round 2 (tcp)") && !plan.contains("round 3"), "{plan}");
}

#[test]
fn star_mode_runs_the_client_in_the_job_and_skips_its_node() {
    let _lock = lab_lock();
    let lab = Lab::up("k8star", 32, &[50, 40, 80, 100], &[]);
    // The job runs inside n1's namespace: the API server and Prometheus listen on the bridge.
    let server = FakeApiServer::start_on(FakeCluster::lab(&lab.name, lab.subnet, 4, NS), &lab.host_address());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), NS);
    let prom = Prometheus::start_on(&lab.host_address(), &[]);
    let output = run_k8s(
        &["ip", "netns", "exec", &lab.namespace(1)],
        &kubeconfig,
        &[
            "--mode",
            "star",
            "--protocols",
            "tcp",
            "--duration",
            "2",
            "--remote-write-url",
            &prom.remote_write_url(),
            "--output",
            "json",
        ],
        &[("NODE_NAME", "n1")],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let pairs: Vec<_> = measurements(&output).iter().map(pair).collect();
    let expected: Vec<(String, String)> =
        ["n2", "n3", "n4"].iter().map(|d| ("n1".to_string(), d.to_string())).collect();
    assert_eq!(pairs, expected);
    assert!(server.execs().is_empty(), "star mode needs no exec");
    for (key, bytes) in prom.by_pair("iperf3_received_bytes_per_second") {
        let rate = lab.path_rate_bits(&key.0, &key.1);
        assert!((bytes * 8.0 / rate - 1.0).abs() <= 0.10, "{key:?}: {bytes} B/s against {rate} bit/s");
    }
}

#[test]
fn forbidden_exec_names_the_permission_and_star_mode() {
    let _lock = lab_lock();
    let lab = Lab::up("k8deny", 33, &[50, 50, 50], &[]);
    let server = FakeApiServer::start(FakeCluster::lab(&lab.name, lab.subnet, 3, NS));
    server.deny("create", "pods/exec", Some(NS));
    let dir = tempfile::tempdir().unwrap();
    let prom = Prometheus::start();
    let output = run_k8s(
        &[],
        &server.kubeconfig(dir.path(), NS),
        &["--protocols", "tcp", "--duration", "1", "--remote-write-url", &prom.remote_write_url(), "--output", "json"],
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "tests failed, results delivered");
    let measured = measurements(&output);
    assert_eq!(measured.len(), 6);
    for m in &measured {
        assert_eq!(failure_reason(m), Some("spawn"), "{m}");
        let detail = m["outcome"]["failure"]["detail"].as_str().unwrap();
        for needle in
            ["pods/exec", "system:serviceaccount:monitoring:iperf3-monitor", "namespace monitoring", "--mode star"]
        {
            assert!(detail.contains(needle), "no '{needle}' in: {detail}");
        }
    }
    let failures = prom.query("iperf3_test_failure{reason=\"spawn\"}");
    assert_eq!(failures.len(), 6, "the failures are pushed too");
}

#[test]
fn api_errors_before_measuring_exit_4_and_push_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let prom = Prometheus::start();
    let push = ["--protocols", "tcp", "--remote-write-url", &prom.remote_write_url()];
    let cluster = || FakeCluster::lab("nolab", 39, 3, NS);

    let server = FakeApiServer::start(cluster());
    server.deny("list", "pods", Some(NS));
    let output = run_k8s(&[], &server.kubeconfig(dir.path(), NS), &push, &[]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    for needle in
        ["forbidden", "'list' on 'pods' in namespace monitoring", "system:serviceaccount:monitoring:iperf3-monitor"]
    {
        assert!(stderr(&output).contains(needle), "no '{needle}'");
    }
    assert!(server.execs().is_empty());

    let wrong_token = server.kubeconfig_with_token(dir.path(), NS, "stolen");
    let output = run_k8s(&[], &wrong_token, &push, &[]);
    assert_eq!(output.status.code(), Some(4));
    assert!(stderr(&output).contains("unauthorized"), "{}", stderr(&output));

    let slow = FakeApiServer::start(cluster());
    slow.delay_requests("/pods", Duration::from_secs(20), 5);
    let started = Instant::now();
    let mut args = push.to_vec();
    args.extend(["--api-timeout", "2"]);
    let output = run_k8s(&[], &slow.kubeconfig(dir.path(), NS), &args, &[]);
    assert_eq!(output.status.code(), Some(4));
    assert!(stderr(&output).contains("did not answer within 2s"), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());

    let gone = server.url.clone();
    drop(server);
    drop(slow);
    let unreachable = dir.path().join("unreachable.yaml");
    let text = std::fs::read_to_string(&wrong_token)
        .unwrap()
        .replace(&gone, &format!("https://127.0.0.1:{}", common::free_port("127.0.0.1")));
    std::fs::write(&unreachable, text).unwrap();
    let output = run_k8s(&[], &unreachable, &push, &[]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));

    assert!(prom.query("{__name__=~\"iperf3_.*\"}").is_empty(), "nothing may be pushed");
}

#[test]
fn a_server_pod_deleted_mid_run_fails_only_its_tests() {
    let _lock = lab_lock();
    let lab = Lab::up("k8gone", 34, &[50, 50, 50, 50], &[]);
    let server = std::sync::Arc::new(FakeApiServer::start(FakeCluster::lab(&lab.name, lab.subnet, 4, NS)));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), NS);
    let watcher = {
        let server = server.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while server.execs().is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            server.delete_pod(NS, "iperf3-monitor-server-n3");
        })
    };
    let output = run_k8s(&[], &kubeconfig, &["--protocols", "tcp", "--duration", "2", "--output", "json"], &[]);
    watcher.join().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let measured = measurements(&output);
    assert_eq!(measured.len(), 12);
    // n3's test of the first round may finish before the deletion lands; everything else holds.
    for m in &measured {
        let (src, _) = pair(m);
        if failure_reason(m).is_some() {
            assert_eq!(src, "n3", "only n3's clients lose their pod: {m}");
        }
    }
    let n3_failed = measured.iter().filter(|m| pair(m).0 == "n3" && failure_reason(m).is_some()).count();
    assert!(n3_failed >= 2, "rounds after the deletion cannot exec into n3's pod");
    let gone: Vec<_> = measured
        .iter()
        .filter(|m| m["outcome"]["failure"]["detail"].as_str().is_some_and(|d| d.contains("is gone")))
        .collect();
    assert!(!gone.is_empty(), "later exec into the deleted pod says it is gone");
    // Tests towards n3 still run: its server (the lab's) is still there.
    assert!(measured.iter().any(|m| pair(m).1 == "n3" && failure_reason(m).is_none()));
}

#[test]
fn an_expired_continue_token_restarts_the_list() {
    let server = std::sync::Arc::new(FakeApiServer::start(FakeCluster::lab("nolab", 38, 5, NS)));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), NS);
    // The second page waits; meanwhile every token issued so far expires.
    server.delay_requests("continue=", Duration::from_millis(800), 1);
    let expirer = {
        let server = server.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !server.requests().iter().any(|r| r.path.ends_with("/pods")) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            server.expire_continue_tokens();
        })
    };
    let output = run_k8s(&[], &kubeconfig, &["--dry-run", "--page-size", "2", "--output", "json"], &[]);
    expirer.join().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["nodes"], serde_json::json!(["n1", "n2", "n3", "n4", "n5"]));
    let statuses: Vec<u16> = server.requests().iter().filter(|r| r.path.ends_with("/pods")).map(|r| r.status).collect();
    assert!(statuses.contains(&410), "{statuses:?}");
    assert!(stderr(&output).contains("continue token expired"), "{}", stderr(&output));
}
