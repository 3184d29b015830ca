//! Benchmark helpers for `scripts/bench.sh`: the parts of issue 7's figures that are not a
//! plain run of the product binary. Each subcommand prints JSON on stdout (or the report, for
//! `report`); the script keeps the JSON in target/bench/raw/ and renders the table from it.
//!
//! Nothing here is a product feature: the naive baseline, the process meter and the byte
//! counting proxy exist only to measure the product against.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod delivery;
mod naive;
mod report;
mod scale;
mod usage;
mod workload;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bench", about = "Benchmark helpers for scripts/bench.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a command and writes its wall time, its own CPU seconds (children apart) and its
    /// peak RSS as JSON to --out; the command's stdout and stderr pass through.
    Usage {
        #[arg(long)]
        out: PathBuf,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// The naive baseline: every ordered pair in random order, --concurrency at a time, no
    /// rounds; a busy server is tried again until it takes the test.
    Naive(naive::Args),
    /// Prints an inventory: the first --take nodes of FILE, or --generate N nodes at
    /// 198.18.x.y with no client_command (nothing is contacted in a dry run).
    Inventory {
        #[arg(long, conflicts_with = "generate", requires = "from")]
        take: Option<usize>,
        #[arg(long)]
        from: Option<PathBuf>,
        #[arg(long)]
        generate: Option<usize>,
    },
    /// Computes the schedule and the rotation of an N-node mesh and walks every pair of the
    /// cycle, timing each part (run it under `usage` for its memory).
    Plan(scale::MeshArgs),
    /// Runs until every pair was measured, from `Plan` over consecutive run indexes.
    Coverage(scale::CoverageArgs),
    /// Encodes and sends samples to a real Prometheus through `RemoteWriteSink`, counting the
    /// bytes on the wire with a proxy in between.
    Deliver(delivery::Args),
    /// Renders the table from the JSON in a results directory.
    Report(report::Args),
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Usage { out, command } => usage::run(&out, &command),
        Command::Naive(args) => naive::run(args).await,
        Command::Inventory { take, from, generate } => scale::inventory(take, from.as_deref(), generate),
        Command::Plan(args) => scale::plan(args),
        Command::Coverage(args) => scale::coverage(args),
        Command::Deliver(args) => delivery::run(args).await,
        Command::Report(args) => report::run(args),
    }
}

/// Prints a value as one line of JSON.
fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
