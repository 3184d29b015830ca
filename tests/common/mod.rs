//! Real parts for end-to-end tests: the namespace lab, a real Prometheus, and the binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process killed (and reaped) on drop, even after a failed assertion.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Held while a test uses the lab. Lab tests run one at a time on the machine, across test
/// binaries and checkouts: they share two cores and would distort each other's numbers.
#[derive(Debug)]
pub struct LabLock(std::fs::File);

pub fn lab_lock() -> LabLock {
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/iperf3-monitor-lab.lock")
        .expect("opening /run/iperf3-monitor-lab.lock");
    file.lock().expect("locking /run/iperf3-monitor-lab.lock");
    LabLock(file)
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_iperf3-monitor")
}

/// `iperf3-monitor` as every test starts it, from a clean environment ([`clean_env`]).
pub fn monitor_command() -> Command {
    let mut command = Command::new(binary());
    clean_env(&mut command);
    command
}

/// No `IPERF3_MONITOR_*` or `NODE_NAME` leaks into a run from the developer's shell; logging at
/// info (RUST_LOG).
pub fn clean_env(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("IPERF3_MONITOR_") {
            command.env_remove(key);
        }
    }
    command.env_remove("NODE_NAME").env("RUST_LOG", "info")
}

/// A lab of namespaces (tests/lab/lab.sh), torn down on drop, even after a failed assertion.
pub struct Lab {
    pub name: String,
    pub subnet: u8,
    pub inventory: PathBuf,
    /// Shaped rate of each node in Mbit/s, n1 first.
    pub rates: Vec<f64>,
}

impl Lab {
    pub fn up(name: &str, subnet: u8, rates: &[u32], extra: &[&str]) -> Lab {
        let rates_arg = rates.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let output = Command::new(repo().join("tests/lab/lab.sh"))
            .args(["up", name, "--rates", &rates_arg, "--subnet", &subnet.to_string()])
            .args(extra)
            .output()
            .expect("running tests/lab/lab.sh");
        assert!(
            output.status.success(),
            "lab.sh up failed (the lab needs root, iproute2, iptables and iperf3):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let inventory = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        Lab { name: name.into(), subnet, inventory, rates: rates.iter().map(|r| f64::from(*r)).collect() }
    }

    pub fn node_count(&self) -> usize {
        self.rates.len()
    }

    /// The shaped rate of the path from node `src` to node `dst` (names n1, n2, ...), in bit/s.
    pub fn path_rate_bits(&self, src: &str, dst: &str) -> f64 {
        let rate = |name: &str| self.rates[name[1..].parse::<usize>().unwrap() - 1];
        rate(src).min(rate(dst)) * 1e6
    }

    pub fn namespace(&self, node: usize) -> String {
        format!("{}-n{node}", self.name)
    }

    pub fn host_address(&self) -> String {
        format!("198.18.{}.254", self.subnet)
    }

    /// Address of node `node` (1-based).
    pub fn address(&self, node: usize) -> String {
        format!("198.18.{}.{node}", self.subnet)
    }

    /// Where lab.sh keeps the lab's pid files, logs, inventory and (with --auth) keys.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/iperf3-monitor-lab/{}", self.name))
    }

    /// Sends `signal` to node `node`'s iperf3 server; its pid.
    pub fn signal_server(&self, node: usize, signal: nix::sys::signal::Signal) -> i32 {
        let pid = self.server_pid(node);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
        pid
    }

    /// The pid of node `node`'s iperf3 server.
    pub fn server_pid(&self, node: usize) -> i32 {
        let pid = std::fs::read_to_string(self.state_dir().join(format!("n{node}.pid"))).unwrap();
        pid.trim().parse().unwrap()
    }

    /// Runs `argv` inside node `node`'s namespace; panics if it fails.
    pub fn exec_in(&self, node: usize, argv: &[&str]) {
        let output = Command::new("ip").args(["netns", "exec", &self.namespace(node)]).args(argv).output().unwrap();
        assert!(output.status.success(), "{argv:?} in n{node}: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// The lab's inventory with only nodes n1..=n`count`.
    pub fn inventory_of_first(&self, count: usize, dir: &Path) -> PathBuf {
        let text = std::fs::read_to_string(&self.inventory).unwrap();
        let cut = text.find(&format!("  - name: n{}\n", count + 1)).unwrap_or(text.len());
        write_file(dir, "inventory.yaml", &text[..cut])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tests/lab/lab.sh")).args(["down", &self.name]).status();
    }
}

/// A real Prometheus with the remote-write receiver, on a free port, killed on drop.
pub struct Prometheus {
    _child: KillOnDrop,
    pub url: String,
    write_url: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start() -> Prometheus {
        Self::start_on("127.0.0.1", &[])
    }

    /// Starts on `host`, with extra `scrape_configs` entries (YAML list items).
    pub fn start_on(host: &str, scrape_configs: &[String]) -> Prometheus {
        let (binary, what) = (Path::new("prometheus"), "prometheus (Debian package prometheus)");
        Self::launch(binary, what, host, scrape_configs, &[], Duration::from_secs(30))
    }

    /// Starts `binary` (`what` names it in errors) on a free port of `host` with the remote-write
    /// receiver, `scrape_configs` and `extra` flags, and waits up to `ready` for it to be ready.
    pub fn launch(
        binary: &Path,
        what: &str,
        host: &str,
        scrape_configs: &[String],
        extra: &[String],
        ready: Duration,
    ) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let scrapes =
            if scrape_configs.is_empty() { " []".to_string() } else { format!("\n{}", scrape_configs.join("\n")) };
        std::fs::write(&config, format!("global:\n  scrape_interval: 1s\nscrape_configs:{scrapes}\n")).unwrap();
        let port = free_port(host);
        let address = format!("{host}:{port}");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={address}"))
            .arg("--web.enable-remote-write-receiver")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let url = format!("http://{address}");
        let prometheus = Prometheus { _child: KillOnDrop(child), write_url: format!("{url}/api/v1/write"), url, dir };
        assert!(ready_within(&prometheus.url, ready), "{what} did not become ready on {address}: {}", prometheus.log());
        prometheus
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    pub fn remote_write_url(&self) -> String {
        self.write_url.clone()
    }

    /// The flags of a run that remote-writes here, with tests of `duration` seconds, then `extra`.
    pub fn run_args<'a>(&'a self, duration: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        [&["--duration", duration, "--remote-write-url", &self.write_url][..], extra].concat()
    }

    /// An instant query; the result vector.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        self.query_at(promql, None)
    }

    /// An instant query (at `time`, seconds since the epoch, if given); the result vector.
    pub fn query_at(&self, promql: &str, time: Option<f64>) -> Vec<Value> {
        let mut params = vec![("query", promql.to_string())];
        if let Some(time) = time {
            params.push(("time", format!("{time:.3}")));
        }
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), &params).unwrap();
        let (status, body) = http_get(url.as_str()).expect("querying prometheus");
        assert_eq!(status, 200, "{promql}: {body}");
        let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        json["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of a counter or gauge of Prometheus's own /metrics (summed over its labels
    /// that contain every one of `matching`), 0 if absent.
    pub fn own_metric(&self, name: &str, matching: &[&str]) -> f64 {
        let (_, text) = http_get(&format!("{}/metrics", self.url)).unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| matching.iter().all(|m| l.contains(m)))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// An instant query whose results are keyed by (source_node, destination_node).
    pub fn by_pair(&self, promql: &str) -> std::collections::BTreeMap<(String, String), f64> {
        self.query(promql)
            .iter()
            .map(|r| {
                let m = &r["metric"];
                let key = (
                    m["source_node"].as_str().unwrap_or("").to_string(),
                    m["destination_node"].as_str().unwrap_or("").to_string(),
                );
                (key, value_of(r))
            })
            .collect()
    }

    /// Every expected pair has a successful TCP sample matching `selector` (inside the braces,
    /// starting with `protocol="tcp"`), each within [`RATE_TOLERANCE`] of its path's shaped rate
    /// (`path_rate_bits`); returns the relative errors for the report.
    pub fn assert_tcp_rates(
        &self,
        selector: &str,
        expected: &[(String, String)],
        path_rate_bits: impl Fn(&str, &str) -> f64,
    ) -> Vec<f64> {
        let success = self.by_pair(&format!("iperf3_test_success{{{selector}}}"));
        assert_eq!(success.keys().cloned().collect::<Vec<_>>(), expected, "{selector}: tcp pairs in Prometheus");
        assert!(success.values().all(|v| *v == 1.0), "{selector}: failed tcp tests: {success:?}");
        let received = self.by_pair(&format!("iperf3_received_bytes_per_second{{{selector}}}"));
        assert_eq!(received.len(), expected.len());
        let mut errors = Vec::new();
        for ((src, dst), bytes) in &received {
            let rate = path_rate_bits(src, dst);
            let error = bytes * 8.0 / rate - 1.0;
            eprintln!(
                "{selector} {src}→{dst}: {:.2} Mbit/s, shaped {:.0} Mbit/s, error {:+.1}%",
                bytes * 8.0 / 1e6,
                rate / 1e6,
                error * 100.0
            );
            assert!(
                error.abs() <= RATE_TOLERANCE,
                "{selector} {src}→{dst}: {:.2} Mbit/s against a shaped {:.0} Mbit/s",
                bytes * 8.0 / 1e6,
                rate / 1e6
            );
            errors.push(error);
        }
        errors
    }

    /// Every dashboard panel answers from what this Prometheus holds, and the matrix has
    /// `nodes` × (`nodes` - 1) cells (scripts/check-dashboard-queries.sh); `path` names where the
    /// data came from.
    pub fn assert_dashboards_answer(&self, nodes: usize, protocols: &str, path: &str) {
        self.assert_dashboards_answer_with(nodes, protocols, path, &[]);
    }

    /// [`Prometheus::assert_dashboards_answer`] with more of the check's options (`--cni-cost`).
    pub fn assert_dashboards_answer_with(&self, nodes: usize, protocols: &str, path: &str, options: &[&str]) {
        let dashboards = Command::new(repo().join("scripts/check-dashboard-queries.sh"))
            .args([self.url.as_str(), "--nodes", &nodes.to_string(), "--protocols", protocols])
            .args(options)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&dashboards.stdout);
        eprintln!("{text}{}", String::from_utf8_lossy(&dashboards.stderr));
        assert!(dashboards.status.success(), "dashboard queries failed on {path}");
        assert!(text.contains(" passed, 0 failed"), "{text}");
    }
}

/// Allowed error of a measured TCP throughput against its path's shaped rate.
pub const RATE_TOLERANCE: f64 = 0.10;

/// Every (source, destination) of `sources` × `destinations` but a node to itself, sorted.
pub fn all_pairs(sources: &[String], destinations: &[String]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for s in sources {
        for d in destinations {
            if s != d {
                pairs.push((s.clone(), d.clone()));
            }
        }
    }
    pairs.sort();
    pairs
}

pub fn value_of(result: &Value) -> f64 {
    result["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

pub fn free_port(host: &str) -> u16 {
    TcpListener::bind((host, 0)).unwrap().local_addr().unwrap().port()
}

/// Whether `url`/-/ready (Prometheus, the Pushgateway) answers 200 within `timeout`.
pub fn ready_within(url: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if http_get(&format!("{url}/-/ready")).is_ok_and(|(status, _)| status == 200) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A GET to a local server, returning status and body.
pub fn http_get(url: &str) -> Result<(u16, String), reqwest::Error> {
    let response = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build()?.get(url).send()?;
    let status = response.status().as_u16();
    Ok((status, response.text()?))
}

/// Runs `iperf3-monitor run` with `args`, optionally behind a command prefix (ip netns exec).
pub fn run_monitor(prefix: &[&str], args: &[&str]) -> Output {
    run_monitor_with(prefix, args, |_| {})
}

/// [`run_monitor`] with more of the environment set by `setup` (after [`clean_env`]).
pub fn run_monitor_with(prefix: &[&str], args: &[&str], setup: impl FnOnce(&mut Command)) -> Output {
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.push(binary());
    argv.push("run");
    argv.extend_from_slice(args);
    let mut command = Command::new(argv[0]);
    setup(clean_env(&mut command).args(&argv[1..]));
    let output = command.output().expect("running iperf3-monitor");
    eprintln!("--- iperf3-monitor stderr ---\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// Starts `iperf3-monitor run` with `args`, stdout and stderr piped; kill it by its pid.
pub fn spawn_monitor(args: &[&str]) -> Child {
    monitor_command()
        .arg("run")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running iperf3-monitor")
}

/// Processes whose command line contains `pattern` (pgrep -f), e.g. clients still running.
pub fn processes_matching(pattern: &str) -> String {
    let output = Command::new("pgrep").args(["-a", "-f", "--", pattern]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
