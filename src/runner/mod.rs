//! How a client command runs on a node. The measurement stage only sees [`ClientRunner`]; a
//! local process (with the node's `client_command` prefix) is one implementation, Kubernetes
//! exec into the node's server pod another.

pub mod pod_exec;
pub mod process;
pub mod with_password;

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::credentials::Credentials;
use crate::targets::Node;
use pod_exec::PodExecRunner;
use process::ProcessRunner;

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

/// A client to run on a node.
#[derive(Debug, Clone, Copy)]
pub struct ClientCommand<'a> {
    /// The program first; never a shell line.
    pub argv: &'a [String],
    /// For an authenticated server: the password reaches the client through its environment
    /// (`IPERF3_PASSWORD`), never through argv.
    pub credentials: Option<&'a Credentials>,
}

/// Runs a command on a node.
pub trait ClientRunner: Send + Sync {
    /// Runs `command` on `node`, killing it and its children after `timeout`.
    fn run(
        &self,
        node: &Node,
        command: ClientCommand<'_>,
        timeout: Duration,
    ) -> impl Future<Output = Result<ClientOutput, RunError>> + Send;
}

/// Runs each client where its node says: in the node's server pod when it has one (mesh mode
/// in Kubernetes), else as a local process behind the node's `client_command`.
#[derive(Debug, Default)]
pub struct NodeRunner {
    pub process: ProcessRunner,
    pub pod_exec: Option<PodExecRunner>,
}

impl ClientRunner for NodeRunner {
    async fn run(&self, node: &Node, command: ClientCommand<'_>, timeout: Duration) -> Result<ClientOutput, RunError> {
        match (&node.pod, &self.pod_exec) {
            (Some(pod), Some(pod_exec)) => pod_exec.exec(pod, command, timeout).await,
            _ => self.process.run(node, command, timeout).await,
        }
    }
}

/// Reads a pipe to its end, keeping at most [`MAX_OUTPUT_BYTES`]; whatever comes past the cap
/// is drained, so the client never blocks on a full pipe. The buffer grows with the output (a
/// few KiB for iperf3) rather than being a fixed block: a thousand clients in flight hold two
/// pipes each.
pub(crate) async fn read_capped(pipe: Option<impl AsyncRead + Unpin>) -> (Vec<u8>, bool) {
    let Some(pipe) = pipe else { return (Vec::new(), false) };
    let mut kept = Vec::new();
    let mut capped = pipe.take(MAX_OUTPUT_BYTES as u64);
    // A read error ends the output like an end of file; what was read is kept.
    let _ = capped.read_to_end(&mut kept).await;
    let past_the_cap = tokio::io::copy(&mut capped.into_inner(), &mut tokio::io::sink()).await.unwrap_or(0);
    if past_the_cap > 0 {
        kept.shrink_to_fit();
    }
    (kept, past_the_cap > 0)
}
