//! A real Prometheus 3, built from its Go module by scripts/prometheus3/build.sh (cached outside
//! the repository), with the remote-write receiver on: the 2.0 receiver of the tests.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::super::common::{KillOnDrop, free_port, http_get, repo};

/// The remote-write messages a Prometheus 3 accepts
/// (`--web.remote-write-receiver.accepted-protobuf-messages`).
pub const BOTH_MESSAGES: &[&str] = &["prometheus.WriteRequest", "io.prometheus.write.v2.Request"];
pub const V1_ONLY: &[&str] = &["prometheus.WriteRequest"];

/// The binary, built once per test process (the script returns at once when it is cached).
pub fn binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let output = Command::new(repo().join("scripts/prometheus3/build.sh"))
                .stderr(Stdio::inherit())
                .output()
                .expect("running scripts/prometheus3/build.sh");
            assert!(output.status.success(), "scripts/prometheus3/build.sh failed");
            let stdout = String::from_utf8(output.stdout).unwrap();
            PathBuf::from(stdout.lines().last().expect("build.sh prints the bin directory")).join("prometheus")
        })
        .clone()
}

/// A Prometheus 3 on a free port of 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct Prometheus3 {
    _child: KillOnDrop,
    pub url: String,
    dir: tempfile::TempDir,
}

impl Prometheus3 {
    /// Accepting `messages`, with the type and unit of remote-written metadata kept as the
    /// `__type__` and `__unit__` labels (feature `type-and-unit-labels`: `/api/v1/metadata`
    /// shows only what scrapes found, so this is where a query sees the metadata).
    pub fn start(messages: &[&str]) -> Prometheus3 {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1s\nscrape_configs: []\n").unwrap();
        let address = format!("127.0.0.1:{}", free_port("127.0.0.1"));
        let mut command = Command::new(binary());
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={address}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--enable-feature=type-and-unit-labels,metadata-wal-records");
        for message in messages {
            command.arg(format!("--web.remote-write-receiver.accepted-protobuf-messages={message}"));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("starting Prometheus 3");
        let prometheus = Prometheus3 { _child: KillOnDrop(child), url: format!("http://{address}"), dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if http_get(&format!("{}/-/ready", prometheus.url)).is_ok_and(|(status, _)| status == 200) {
                return prometheus;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("Prometheus 3 did not become ready on {address}: {}", prometheus.log());
    }

    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.url)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query (at `time`, seconds since the epoch, if given); the result vector.
    pub fn query_at(&self, promql: &str, time: Option<f64>) -> Vec<Value> {
        let mut params = vec![("query", promql.to_string())];
        if let Some(time) = time {
            params.push(("time", format!("{time:.3}")));
        }
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), &params).unwrap();
        let (status, body) = http_get(url.as_str()).expect("querying Prometheus 3");
        assert_eq!(status, 200, "{promql}: {body}");
        let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        json["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    pub fn query(&self, promql: &str) -> Vec<Value> {
        self.query_at(promql, None)
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
}
