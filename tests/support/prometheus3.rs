//! A real Prometheus 3, built from its Go module by scripts/prometheus3/build.sh (cached outside
//! the repository), with the remote-write receiver on: the 2.0 receiver of the tests.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::super::common::{Prometheus, repo};

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

/// A Prometheus 3 on a free port of 127.0.0.1 accepting `messages`, with the type and unit of
/// remote-written metadata kept as the `__type__` and `__unit__` labels (feature
/// `type-and-unit-labels`: `/api/v1/metadata` shows only what scrapes found, so this is where a
/// query sees the metadata); killed on drop.
pub fn start(messages: &[&str]) -> Prometheus {
    let mut extra = vec!["--enable-feature=type-and-unit-labels,metadata-wal-records".to_string()];
    extra.extend(messages.iter().map(|m| format!("--web.remote-write-receiver.accepted-protobuf-messages={m}")));
    Prometheus::launch(&binary(), "Prometheus 3", "127.0.0.1", &[], &extra, Duration::from_secs(60))
}
