//! The `iperf3-monitor` binary: parse flags, set up logging, run one pass, exit with its code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use iperf3_monitor::config::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Run(args) => args,
        Command::WithPassword(args) => {
            // Only returns when the program could not be started.
            let (code, message) = iperf3_monitor::runner::with_password::exec(&args.password_file, &args.command);
            eprintln!("{message}");
            return ExitCode::from(code);
        }
    };
    init_logging(args.log_format);
    let config = match args.into_config(std::env::var("NODE_NAME").ok()) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let (output, matrix_svg) = (config.output, config.matrix_svg.clone());
    match iperf3_monitor::run(config).await {
        Ok(outcome) => {
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            let written = outcome.write_out(output, matrix_svg.as_deref(), &mut stdout);
            if let Err(e) = written.and_then(|()| stdout.flush()) {
                tracing::error!("writing the report to stdout: {e}");
            }
            ExitCode::from(outcome.exit_code())
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs go to stderr; stdout is for the report.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
