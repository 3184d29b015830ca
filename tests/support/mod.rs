//! Parts for the delivery tests: a recording receiver, a generated PKI, a local iperf3 server
//! that gives a run real samples without a lab, a real Pushgateway, and the binary run with a
//! clean environment.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod pki;
pub mod prometheus3;
pub mod receiver;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::common::KillOnDrop;

/// Longest a run of the binary may take in these tests.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// `iperf3 -s` on 127.0.0.1 and an inventory naming it, so that a star-mode run from this
/// machine measures one real 1-second test per protocol.
#[derive(Debug)]
pub struct LocalIperf3 {
    _child: KillOnDrop,
    pub port: u16,
    pub inventory: PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalIperf3 {
    pub fn start() -> LocalIperf3 {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("iperf3")
            .args(["-s", "-B", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting iperf3 -s (Debian package iperf3)");
        let inventory = dir.path().join("inventory.yaml");
        std::fs::write(&inventory, format!("nodes:\n  - name: local\n    address: 127.0.0.1\n    port: {port}\n"))
            .unwrap();
        let server = LocalIperf3 { _child: KillOnDrop(child), port, inventory, _dir: dir };
        wait_for_listener(port);
        server
    }

    /// Flags of a quick run against this server: star mode from "here", one 1-second TCP test,
    /// the JSON report on stdout.
    pub fn run_args(&self) -> Vec<String> {
        [
            "--inventory",
            self.inventory.to_str().unwrap(),
            "--mode",
            "star",
            "--source-node",
            "here",
            "--protocols",
            "tcp",
            "--duration",
            "1",
            "--output",
            "json",
        ]
        .map(String::from)
        .to_vec()
    }
}

/// A real Pushgateway (Debian package prometheus-pushgateway) in memory, killed on drop.
#[derive(Debug)]
pub struct Pushgateway {
    _child: KillOnDrop,
    pub url: String,
    pub address: String,
}

impl Pushgateway {
    pub fn start() -> Pushgateway {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address={address}"))
            .arg("--persistence.file=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus-pushgateway (Debian package prometheus-pushgateway)");
        let gateway = Pushgateway { _child: KillOnDrop(child), url: format!("http://{address}"), address };
        assert!(
            super::common::ready_within(&gateway.url, Duration::from_secs(20)),
            "the Pushgateway did not become ready on {}",
            gateway.address
        );
        gateway
    }

    /// The groups it holds (GET /api/v1/metrics).
    pub fn groups(&self) -> Vec<Value> {
        let (status, body) = super::common::http_get(&format!("{}/api/v1/metrics", self.url)).unwrap();
        assert_eq!(status, 200, "{body}");
        let json: Value = serde_json::from_str(&body).unwrap();
        json["data"].as_array().cloned().unwrap_or_default()
    }
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// The JSON report on stdout.
    pub fn report(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not the JSON report ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs `iperf3-monitor run ARGS` with no IPERF3_MONITOR_* or NODE_NAME from the test's
/// environment, RUST_LOG=info unless `env` sets it; killed after a hard timeout.
pub fn monitor(args: &[String], env: &[(&str, &str)]) -> Run {
    let child = spawn_monitor(args, env);
    finish(child)
}

/// Starts a run; finish it with [`finish`].
pub fn spawn_monitor(args: &[String], env: &[(&str, &str)]) -> (Child, tempfile::TempDir, Instant) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = super::common::monitor_command();
    command.arg("run").args(args).envs(env.iter().copied());
    command
        .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap());
    let started = Instant::now();
    (command.spawn().expect("running iperf3-monitor"), dir, started)
}

pub fn finish((mut child, dir, started): (Child, tempfile::TempDir, Instant)) -> Run {
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("iperf3-monitor ran longer than {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let run = Run { code: status.code(), stdout: read("stdout"), stderr: read("stderr"), elapsed };
    eprintln!("--- iperf3-monitor stderr ({:.1}s, exit {:?}) ---\n{}", elapsed.as_secs_f64(), run.code, run.stderr);
    run
}

/// `args` followed by `extra`, as owned strings.
pub fn with<S: AsRef<str>>(args: &[String], extra: &[S]) -> Vec<String> {
    args.iter().cloned().chain(extra.iter().map(|s| s.as_ref().to_string())).collect()
}

pub fn free_port() -> u16 {
    super::common::free_port("127.0.0.1")
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    super::common::write_file(dir, name, text)
}

/// Waits until something listens on 127.0.0.1:`port` (read from /proc, so nothing connects).
fn wait_for_listener(port: u16) {
    let needle = format!("0100007F:{port:04X} 00000000:0000 0A");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::fs::read_to_string("/proc/net/tcp").is_ok_and(|table| table.contains(&needle)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}
