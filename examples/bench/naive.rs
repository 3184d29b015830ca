//! The naive baseline of issue 7: bounded concurrency without rounds. Every ordered pair is
//! measured once, in random order, `--concurrency` tests at a time, through the library's
//! process runner and iperf3 parser. Nothing keeps two tests off one node, so tests share
//! links (and distort each other), and a test whose server is busy waits and tries again (so
//! does one that failed otherwise: a server taken by another client may also reset the
//! connection).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, bail};
use futures::StreamExt;
use iperf3_monitor::iperf3::{self, FailureReason, Protocol, TestSettings};
use iperf3_monitor::measure::{Measurement, Outcome};
use iperf3_monitor::runner::process::ProcessRunner;
use iperf3_monitor::runner::{ClientCommand, ClientRunner};
use iperf3_monitor::targets::{Node, inventory};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Serialize;

/// Wait before a test that found its server busy (or failed) is tried again.
const RETRY_WAIT: Duration = Duration::from_millis(200);
/// Most attempts of one test before it is given up.
const MAX_ATTEMPTS: u32 = 200;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    inventory: PathBuf,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds per test.
    #[arg(long, default_value_t = 3)]
    duration: u64,
    /// Seed of the random pair order, so a run can be repeated.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[derive(Debug, Serialize)]
struct NaiveRun {
    concurrency: usize,
    wall_seconds: f64,
    /// Attempts that failed and were tried again, most of them on a busy server.
    retries: u32,
    measurements: Vec<Measurement>,
}

pub async fn run(args: Args) -> Result<()> {
    let nodes = inventory::load(&args.inventory, 5201, None).await?;
    let settings = TestSettings {
        iperf3: "iperf3".into(),
        duration: Duration::from_secs(args.duration),
        udp_bitrate: "100M".into(),
        parallel: 1,
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(args.duration + 4),
    };
    let mut pairs: Vec<(usize, usize)> =
        (0..nodes.len()).flat_map(|s| (0..nodes.len()).filter(move |d| *d != s).map(move |d| (s, d))).collect();
    pairs.shuffle(&mut rand::rngs::StdRng::seed_from_u64(args.seed));
    let started = Instant::now();
    let results: Vec<(Measurement, u32)> = futures::stream::iter(pairs)
        .map(|(s, d)| test(&nodes[s], &nodes[d], &settings))
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let wall_seconds = started.elapsed().as_secs_f64();
    let retries = results.iter().map(|(_, retries)| retries).sum();
    let measurements: Vec<Measurement> = results.into_iter().map(|(m, _)| m).collect();
    if let Some(failed) = measurements.iter().find(|m| m.failure().is_some()) {
        bail!("{} → {} failed: {:?}", failed.source, failed.destination, failed.failure());
    }
    crate::print_json(&NaiveRun { concurrency: args.concurrency, wall_seconds, retries, measurements })
}

/// One TCP test, tried again until it succeeds; the measurement and the retries it took.
async fn test(source: &Node, destination: &Node, settings: &TestSettings) -> (Measurement, u32) {
    let argv = iperf3::client_argv(settings, Protocol::Tcp, &destination.addresses[0], destination.port, None);
    let mut retries = 0;
    loop {
        let started = Instant::now();
        let outcome =
            match ProcessRunner.run(source, ClientCommand { argv: &argv, credentials: None }, settings.timeout).await {
                Ok(output) => iperf3::parse(Protocol::Tcp, &output.stdout),
                Err(e) => Err(iperf3::Failure::new(FailureReason::Spawn, e.to_string())),
            };
        match outcome {
            Err(_) if retries + 1 < MAX_ATTEMPTS => {
                retries += 1;
                tokio::time::sleep(RETRY_WAIT).await;
            }
            outcome => {
                let measurement = Measurement {
                    source: source.name.as_str().into(),
                    destination: destination.name.as_str().into(),
                    protocol: Protocol::Tcp,
                    ip_family: destination.addresses[0].family,
                    network: destination.network,
                    finished_at: SystemTime::now(),
                    duration_seconds: started.elapsed().as_secs_f64(),
                    round: 0,
                    alone: false,
                    cpu_bound: false,
                    outcome: match outcome {
                        Ok(result) => Outcome::Success(result),
                        Err(failure) => Outcome::Failure(failure),
                    },
                };
                return (measurement, retries);
            }
        }
    }
}
