//! Where the nodes to measure come from.
//!
//! A target source yields [`Node`]s; everything after it (schedule, runner, sinks) only sees
//! nodes. The static inventory is one source; Kubernetes discovery plugs in beside it.

pub mod inventory;

use serde::Serialize;

use crate::config::RunConfig;
use crate::error::{Error, Result};

/// A node with an iperf3 server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The name used in the `source_node` / `destination_node` labels.
    pub name: String,
    /// Address of the node's iperf3 server (IP address or host name).
    pub address: String,
    /// Port of the node's iperf3 server.
    pub port: u16,
    /// Argv prefix that runs a command on this node (`ssh n1`, `ip netns exec n1`, ...);
    /// empty: the command runs in this process's environment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_command: Vec<String>,
}

/// Loads the nodes named by the configuration.
pub async fn discover(config: &RunConfig) -> Result<Vec<Node>> {
    match &config.inventory {
        Some(path) => inventory::load(path, config.default_port).await,
        None => Err(Error::Discovery { message: "no target source configured: pass --inventory FILE".into() }),
    }
}
