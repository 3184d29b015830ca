//! Command-line flags and environment variables: the job's whole configuration, in one place.
//!
//! Every flag of `iperf3-monitor run` can also be set with one `IPERF3_MONITOR_*` environment
//! variable (the flag name in upper snake case), so a Helm chart can map each value to exactly
//! one variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::iperf3::{Protocol, TestSettings};
use crate::report::Output;
use crate::schedule::{Mode, Pairing};
use crate::sinks::{PushSettings, SinkSettings};
use crate::targets::kubernetes::KubernetesSettings;
use crate::targets::{IpFamily, Network};

mod iperf3_auth;
mod kubernetes;
mod push;
pub use iperf3_auth::Iperf3AuthArgs;
pub use kubernetes::KubernetesArgs;
pub use push::{PushArgs, RESERVED_HEADERS};

/// Measures the network between every pair of nodes with iperf3 and pushes the results into
/// Prometheus. One pass per invocation: discover, measure, push, exit.
#[derive(Debug, Parser)]
#[command(name = "iperf3-monitor", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one measurement pass (or print its plan with --dry-run) and exit.
    Run(Box<RunArgs>),
    /// Run PROGRAM with IPERF3_PASSWORD read from FILE, without a shell: how an iperf3 client
    /// started in a server pod (pods/exec cannot set environment variables) gets its password
    /// without it appearing on a command line.
    WithPassword(WithPasswordArgs),
}

/// Flags of `iperf3-monitor with-password`.
#[derive(Debug, Args)]
pub struct WithPasswordArgs {
    /// File holding the password (one line).
    #[arg(long, value_name = "FILE")]
    pub password_file: PathBuf,

    /// The program and its arguments.
    #[arg(last = true, required = true, num_args = 1.., value_name = "PROGRAM")]
    pub command: Vec<std::ffi::OsString>,
}

/// Format of the logs written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `iperf3-monitor run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Static inventory (YAML) of the nodes to measure, instead of Kubernetes discovery.
    #[arg(long, env = "IPERF3_MONITOR_INVENTORY", value_name = "FILE")]
    pub inventory: Option<PathBuf>,

    /// mesh: every ordered pair, the client on the source node; star: this process is the only client.
    #[arg(long, env = "IPERF3_MONITOR_MODE", value_enum, default_value_t = Mode::Mesh)]
    pub mode: Mode,

    /// auto: duplex, switching to exclusive when a duplex test was limited by its nodes' shared CPU; duplex: a node sends one test while it receives another (fewest rounds); exclusive: a node is in one test at a time (for links whose ACKs queue behind their own traffic, or nodes whose CPU cannot drive two tests).
    #[arg(long, env = "IPERF3_MONITOR_PAIRING", value_enum, default_value_t = Pairing::Auto)]
    pub pairing: Pairing,

    /// The node this process runs on, the source of every test in star mode [default: $NODE_NAME].
    #[arg(long, env = "IPERF3_MONITOR_SOURCE_NODE", value_name = "NAME")]
    pub source_node: Option<String>,

    /// Protocols to test, comma-separated; each gets its own rounds.
    #[arg(long, env = "IPERF3_MONITOR_PROTOCOLS", value_enum, value_delimiter = ',', default_value = "tcp,udp")]
    pub protocols: Vec<Protocol>,

    /// IP families to test, comma-separated (ipv4, ipv6); each gets its own rounds, over the nodes with an address in it [default: every family a node has].
    #[arg(long, env = "IPERF3_MONITOR_IP_FAMILIES", value_enum, value_delimiter = ',', value_name = "FAMILIES")]
    pub ip_families: Vec<IpFamily>,

    /// Networks to test, comma-separated (host, pod): the servers on the node's network and those on the pod network; each is a mesh of its own, in rounds of its own [default: every network a server is on].
    #[arg(long, env = "IPERF3_MONITOR_NETWORKS", value_enum, value_delimiter = ',', value_name = "NETWORKS")]
    pub networks: Vec<Network>,

    /// Length of one iperf3 test in seconds (iperf3 -t).
    #[arg(long, env = "IPERF3_MONITOR_DURATION", value_name = "SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,

    /// Target bitrate of UDP tests (iperf3 -b), e.g. 100M, 1G, 500K.
    #[arg(long, env = "IPERF3_MONITOR_UDP_BITRATE", value_name = "RATE", default_value = "100M",
          value_parser = parse_bitrate)]
    pub udp_bitrate: String,

    /// Parallel streams per test (iperf3 -P).
    #[arg(long, env = "IPERF3_MONITOR_PARALLEL", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=128))]
    pub parallel: u32,

    /// Hard limit for one test in seconds; the client and its children are killed after it [default: duration + connect timeout + 2].
    #[arg(long, env = "IPERF3_MONITOR_TEST_TIMEOUT", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=7200))]
    pub test_timeout: Option<u64>,

    /// Seconds iperf3 tries to connect to a server before the test fails as unreachable (iperf3 --connect-timeout); 2 allows one lost SYN (resent after 1 s) on a cluster's sub-millisecond paths.
    #[arg(long, env = "IPERF3_MONITOR_CONNECT_TIMEOUT", value_name = "SECONDS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub connect_timeout: u64,

    /// Maximum number of tests running at the same time (splits a round when it has more tests).
    #[arg(long, env = "IPERF3_MONITOR_CONCURRENCY", value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub concurrency: u64,

    /// Time budget of one run in seconds; rounds that do not fit are measured by the next runs, and a round longer than the budget is split into parts, one per run [default: no limit].
    #[arg(long, env = "IPERF3_MONITOR_BUDGET", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub budget: Option<u64>,

    /// Seconds between two runs (the CronJob schedule); places this run in the rotation across runs.
    #[arg(long, env = "IPERF3_MONITOR_INTERVAL", value_name = "SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub interval: u64,

    /// Default iperf3 server port, for inventory nodes that name none.
    #[arg(long, env = "IPERF3_MONITOR_PORT", value_name = "PORT", default_value_t = 5201,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// Adds cluster="NAME" to every series.
    #[arg(long, env = "IPERF3_MONITOR_CLUSTER", value_name = "NAME")]
    pub cluster: Option<String>,

    /// What to print on stdout at the end of the run.
    #[arg(long, env = "IPERF3_MONITOR_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Also write the source × destination matrix as an SVG heatmap to this file.
    #[arg(long, env = "IPERF3_MONITOR_MATRIX_SVG", value_name = "PATH")]
    pub matrix_svg: Option<PathBuf>,

    /// Print the schedule (rounds, pairs, estimated time, coverage across runs) and run nothing.
    #[arg(long, env = "IPERF3_MONITOR_DRY_RUN")]
    pub dry_run: bool,

    /// Format of the logs on stderr (the level is set with RUST_LOG, default info).
    #[arg(long, env = "IPERF3_MONITOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub push: PushArgs,

    /// The iperf3 client program (a path or a name looked up in PATH on the node that runs it).
    #[arg(long, env = "IPERF3_MONITOR_IPERF3", value_name = "PROGRAM", default_value = "iperf3")]
    pub iperf3: String,

    #[command(flatten)]
    pub iperf3_auth: Iperf3AuthArgs,

    #[command(flatten)]
    pub kubernetes: KubernetesArgs,
}

/// The validated configuration of one run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub inventory: Option<PathBuf>,
    pub kubernetes: KubernetesSettings,
    pub mode: Mode,
    pub pairing: Pairing,
    /// The client's node in star mode.
    pub source_node: Option<String>,
    pub protocols: Vec<Protocol>,
    /// The IP families asked for; None: every family a node has.
    pub ip_families: Option<Vec<IpFamily>>,
    /// The networks asked for; None: every network a server is on.
    pub networks: Option<Vec<Network>>,
    pub test: TestSettings,
    pub concurrency: usize,
    pub budget: Option<Duration>,
    pub interval: Duration,
    pub default_port: u16,
    /// Credentials for authenticated iperf3 servers (inventory nodes may override them).
    pub credentials: Option<Credentials>,
    pub push: PushSettings,
    pub cluster: Option<String>,
    pub output: Output,
    pub matrix_svg: Option<PathBuf>,
    pub dry_run: bool,
}

impl RunConfig {
    /// What the delivery stage is set up from.
    pub fn sink_settings(&self) -> SinkSettings<'_> {
        SinkSettings { push: &self.push, cluster: self.cluster.as_deref(), dry_run: self.dry_run }
    }
}

/// What the default --test-timeout allows beyond connecting and sending: process start,
/// parameter exchange and results take about 40 ms on the lab; a busy node or pods/exec more.
pub const RESULTS_ALLOWANCE: Duration = Duration::from_secs(2);

impl RunArgs {
    /// Checks what clap cannot check alone and builds the run's configuration.
    /// `node_name` is the value of `NODE_NAME` (the Kubernetes downward API), if set.
    pub fn into_config(self, node_name: Option<String>) -> Result<RunConfig> {
        let mut protocols = self.protocols;
        protocols.sort();
        protocols.dedup();
        if protocols.is_empty() {
            return Err(Error::config("--protocols", "name at least one of tcp, udp"));
        }
        let mut ip_families = self.ip_families;
        ip_families.sort();
        ip_families.dedup();
        let mut networks = self.networks;
        networks.sort();
        networks.dedup();
        let source_node = self.source_node.or(node_name).filter(|s| !s.is_empty());
        if self.mode == Mode::Star && source_node.is_none() {
            return Err(Error::config(
                "--source-node",
                "star mode needs the name of this process's node: pass --source-node or set NODE_NAME",
            ));
        }
        if let Some(cluster) = &self.cluster
            && cluster.is_empty()
        {
            return Err(Error::config("--cluster", "must not be empty; leave it unset instead"));
        }
        let duration = Duration::from_secs(self.duration);
        let connect_timeout = Duration::from_secs(self.connect_timeout);
        let timeout = Duration::from_secs(
            self.test_timeout.unwrap_or(self.duration + self.connect_timeout + RESULTS_ALLOWANCE.as_secs()),
        );
        if timeout <= duration {
            return Err(Error::config(
                "--test-timeout",
                format!(
                    "{}s must be longer than --duration {}s, or every test is killed before it ends",
                    timeout.as_secs(),
                    self.duration
                ),
            ));
        }
        let concurrency = usize::try_from(self.concurrency)
            .map_err(|_| Error::config("--concurrency", "too large for this machine"))?;
        // In Kubernetes mesh mode the clients run in the server pods, which read the password
        // themselves; everywhere else this process starts them.
        let local_clients = self.inventory.is_some() || self.mode == Mode::Star;
        let credentials = self.iperf3_auth.into_credentials(local_clients)?;
        Ok(RunConfig {
            inventory: self.inventory,
            kubernetes: self.kubernetes.into_settings()?,
            mode: self.mode,
            pairing: self.pairing,
            source_node,
            protocols,
            ip_families: (!ip_families.is_empty()).then_some(ip_families),
            networks: (!networks.is_empty()).then_some(networks),
            test: TestSettings {
                iperf3: self.iperf3,
                duration,
                udp_bitrate: self.udp_bitrate,
                parallel: self.parallel,
                connect_timeout,
                timeout,
            },
            concurrency,
            budget: self.budget.map(Duration::from_secs),
            interval: Duration::from_secs(self.interval),
            default_port: self.port,
            credentials,
            push: self.push.into_settings()?,
            cluster: self.cluster,
            output: self.output,
            matrix_svg: self.matrix_svg,
            dry_run: self.dry_run,
        })
    }
}

/// Accepts iperf3 bitrates: a number with an optional K, M or G suffix.
fn parse_bitrate(value: &str) -> std::result::Result<String, String> {
    let digits = value.trim_end_matches(['K', 'M', 'G', 'k', 'm', 'g']);
    match digits.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() && digits.len() + 1 >= value.len() => Ok(value.to_string()),
        _ => Err(format!(
            "'{value}' is not a bitrate: use a positive number with an optional K, M or G suffix, e.g. 100M"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> std::result::Result<RunArgs, clap::Error> {
        let mut argv = vec!["iperf3-monitor", "run", "--inventory", "x.yaml"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Run(args) => *args,
            Command::WithPassword(_) => unreachable!("not a run"),
        })
    }

    #[test]
    fn defaults_are_a_full_tcp_and_udp_mesh() {
        let config = args(&[]).unwrap().into_config(None).unwrap();
        assert_eq!(config.mode, Mode::Mesh);
        assert_eq!(config.protocols, vec![Protocol::Tcp, Protocol::Udp]);
        assert_eq!(config.test.duration, Duration::from_secs(5));
        assert_eq!(config.test.connect_timeout, Duration::from_secs(2));
        assert_eq!(config.test.timeout, Duration::from_secs(9), "5-s tests, 2-s connect, 2 s for the rest");
        assert_eq!(config.budget, None);
    }

    #[test]
    fn bitrates_are_checked() {
        assert!(parse_bitrate("100M").is_ok());
        assert!(parse_bitrate("1.5G").is_ok());
        assert!(parse_bitrate("5000").is_ok());
        for bad in ["", "M", "-1M", "100MB", "fast", "0"] {
            assert!(parse_bitrate(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn star_mode_takes_node_name_from_the_environment() {
        let config = args(&["--mode", "star"]).unwrap().into_config(Some("n3".into())).unwrap();
        assert_eq!(config.source_node.as_deref(), Some("n3"));
        let err = args(&["--mode", "star"]).unwrap().into_config(None).unwrap_err();
        assert!(err.to_string().contains("--source-node"), "{err}");
    }

    #[test]
    fn a_timeout_shorter_than_the_test_is_refused() {
        let err = args(&["--duration", "10", "--test-timeout", "5"]).unwrap().into_config(None).unwrap_err();
        assert!(err.to_string().contains("--test-timeout"), "{err}");
    }

    #[test]
    fn node_label_keys_become_label_suffixes() {
        let config = args(&["--node-label-keys", "topology.kubernetes.io/zone,topology.kubernetes.io/region"])
            .unwrap()
            .into_config(None)
            .unwrap();
        let (key, names) = &config.kubernetes.node_labels[1];
        assert_eq!(
            (key.as_str(), names.source, names.destination),
            ("topology.kubernetes.io/region", "source_region", "destination_region")
        );
        let err = args(&["--node-label-keys", "a.io/zone,b.io/zone"]).unwrap().into_config(None).unwrap_err();
        assert!(err.to_string().contains("--node-label-keys"), "{err}");
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = args(&["--protocols", "tcp,sctp"]).unwrap_err().to_string();
        assert!(err.contains("--protocols"), "{err}");
        let err = args(&["--remote-write-url", "ftp://x"]).unwrap().into_config(None).unwrap_err().to_string();
        assert!(err.contains("--remote-write-url"), "{err}");
        let err = args(&["--duration", "0"]).unwrap_err().to_string();
        assert!(err.contains("--duration"), "{err}");
    }
}
