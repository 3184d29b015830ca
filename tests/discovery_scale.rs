//! Discovery at scale through the fake API server: 1,000 and 5,000 of the chart's server pods,
//! served as a real API server serves them (managedFields and all, about 7 KB of JSON each),
//! listed by `iperf3-monitor run --dry-run` with the chart's `--page-size 500`. Prints the
//! job's wall time, when it logged the end of the list, and its peak RSS; fails when 5,000 pods
//! cost more than 28 MB above a one-pod run (the target is < 40 MB in all, from a release
//! binary's 12 MB with one pod). The same measurement through a real API server is
//! `scripts/k8s/bench-discovery.sh`. The peak RSS is the job's `VmHWM`, sampled every 2 ms
//! while it runs (`getrusage(RUSAGE_CHILDREN)` would count this process's own RSS, inherited
//! by the spawned child until its exec, and the fake holding 5,000 pods is larger). Ignored by default: a debug build's job is no measure of the release's memory (26 MB
//! with one pod, 63 MB with 5,000), and the debug fake takes 30 s to serve 5,000 pods. Run it as
//!
//!     cargo build --release
//!     DISCOVERY_SCALE_BINARY=target/release/iperf3-monitor \
//!         cargo test --test discovery_scale -- --ignored --nocapture
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_apiserver;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fake_apiserver::{FakeApiServer, FakeCluster, FakePod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

const NS: &str = "monitoring";
/// The largest growth of the job's peak RSS, 1 → 5,000 pods, that meets the 40 MB target.
const GROWTH_LIMIT_BYTES: u64 = 28 << 20;

struct Figures {
    wall_seconds: f64,
    listed_after_seconds: f64,
    peak_rss_bytes: u64,
    pods: u64,
}

/// One dry run against `count` server pods.
fn discover(count: usize) -> Figures {
    let pods = (0..count)
        .map(|i| {
            FakePod::running(
                NS,
                &format!("iperf3-monitor-server-{i:05}"),
                &format!("fleet-{}", i + 1),
                &format!("198.19.{}.{}", 64 + i / 250, i % 250 + 1),
            )
        })
        .collect();
    let server = FakeApiServer::start(FakeCluster { pods, ..FakeCluster::default() });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), NS);
    let binary =
        std::env::var("DISCOVERY_SCALE_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_iperf3-monitor").into());
    let started_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let started = Instant::now();
    let child = Command::new(&binary)
        .args(["run", "--dry-run", "--namespace", NS, "--selector", "app.kubernetes.io/component=server"])
        .args(["--page-size", "500", "--protocols", "tcp", "--log-format", "json"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running iperf3-monitor");
    let (done, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let sampler = {
        let (done, peak, pid) = (done.clone(), peak.clone(), child.id());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(bytes) = vm_hwm_bytes(pid) {
                    peak.fetch_max(bytes, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let output = child.wait_with_output().unwrap();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let wall_seconds = started.elapsed().as_secs_f64();
    let peak_rss_bytes = peak.load(Ordering::Relaxed);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    let listed: serde_json::Value = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["fields"]["message"].as_str().is_some_and(|m| m.starts_with("discovered iperf3 server pods")))
        .unwrap_or_else(|| panic!("no discovery line in {log}"));
    let logged_at = listed["timestamp"].as_str().unwrap();
    Figures {
        wall_seconds,
        listed_after_seconds: epoch_seconds(logged_at) - started_at,
        peak_rss_bytes,
        pods: listed["fields"]["pods"].as_u64().unwrap(),
    }
}

/// The process's peak RSS so far (`VmHWM`); None once it has exited.
fn vm_hwm_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Seconds since the epoch of the log's RFC 3339 timestamp.
fn epoch_seconds(timestamp: &str) -> f64 {
    let time: Time = serde_json::from_value(serde_json::json!(timestamp)).unwrap();
    time.0.as_duration().as_secs_f64()
}

#[test]
#[ignore = "a measurement of a release build: DISCOVERY_SCALE_BINARY=target/release/iperf3-monitor, --ignored"]
fn five_thousand_server_pods_are_listed_in_little_memory() {
    let mut runs = Vec::new();
    for count in [1, 1000, 5000] {
        let figures = discover(count);
        assert_eq!(figures.pods, count as u64);
        eprintln!(
            "discovery through the fake API server: pods={count} wall={:.2}s listed_after={:.2}s peak_rss={:.1}MB",
            figures.wall_seconds,
            figures.listed_after_seconds,
            figures.peak_rss_bytes as f64 / f64::from(1 << 20)
        );
        runs.push(figures);
    }
    let (baseline, largest) = (&runs[0], &runs[2]);
    let growth = largest.peak_rss_bytes.saturating_sub(baseline.peak_rss_bytes);
    assert!(
        growth < GROWTH_LIMIT_BYTES,
        "5,000 pods took {:.1} MB more than one pod (limit {} MB): is a page parsed into whole objects?",
        growth as f64 / f64::from(1 << 20),
        GROWTH_LIMIT_BYTES >> 20
    );
}
