//! The library's error type and the exit codes it maps to.

use std::path::PathBuf;

/// Exit codes of `iperf3-monitor run`, documented in docs/reference/exit-codes.md (checked by tests/contracts.rs).
pub mod exit_code {
    /// Every planned test succeeded and every result was delivered.
    pub const OK: u8 = 0;
    /// Some tests failed; all results (failures included) were delivered.
    pub const TESTS_FAILED: u8 = 1;
    /// A flag, environment variable or inventory file is invalid; nothing was run.
    pub const CONFIG: u8 = 2;
    /// Results were measured but could not all be delivered.
    pub const DELIVERY: u8 = 3;
    /// The servers could not be discovered; nothing was run.
    pub const DISCOVERY: u8 = 4;
    /// The run stopped before its planned rounds were done (SIGTERM or SIGINT, or the budget
    /// ran out); what it measured was delivered. A signal during discovery ends the run before
    /// anything is measured.
    pub const STOPPED: u8 = 5;
}

/// Errors that end a run before any test starts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {flag}: {message}")]
    Config { flag: String, message: String },

    #[error("inventory {}: {message}", path.display())]
    Inventory { path: PathBuf, message: String },

    #[error("discovering the iperf3 servers: {message}")]
    Discovery { message: String },

    #[error("stopped by a signal during {stage}; nothing was measured or delivered")]
    Stopped { stage: &'static str },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn config(flag: &str, message: impl Into<String>) -> Self {
        Error::Config { flag: flag.to_string(), message: message.into() }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. } | Error::Inventory { .. } => exit_code::CONFIG,
            Error::Discovery { .. } => exit_code::DISCOVERY,
            Error::Stopped { .. } => exit_code::STOPPED,
        }
    }
}
