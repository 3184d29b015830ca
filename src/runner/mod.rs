//! How a client command runs on a node. The measurement stage only sees [`ClientRunner`]; a
//! local process (with the node's `client_command` prefix) is one implementation, Kubernetes
//! exec into the node's server pod another.

pub mod process;

use std::future::Future;
use std::time::Duration;

use crate::targets::Node;

/// Most bytes of a client's stdout or stderr that are kept; iperf3's summary is a few KiB.
pub const MAX_OUTPUT_BYTES: usize = 4 << 20;

/// What a finished client printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOutput {
    /// The exit code, if the client exited (rather than being killed by a signal).
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// stdout was longer than [`MAX_OUTPUT_BYTES`] and was cut.
    pub truncated: bool,
}

/// Why a client produced no output.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the client could not be started: {0}")]
    Spawn(String),
    #[error("the client did not finish within {}s and was killed", .0.as_secs())]
    Timeout(Duration),
}

/// Runs a command on a node.
pub trait ClientRunner: Send + Sync {
    /// Runs `argv` on `node`, killing it and its children after `timeout`.
    fn run(
        &self,
        node: &Node,
        argv: &[String],
        timeout: Duration,
    ) -> impl Future<Output = Result<ClientOutput, RunError>> + Send;
}
