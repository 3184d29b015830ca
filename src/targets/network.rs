//! Which network a node's iperf3 server is on: the node's own (host) network or the pod
//! network. Pure.
//!
//! One cluster can run a server on each per node: the pair measured on both shows what the pod
//! network (overlay, encryption, eBPF) costs on that path. Each network is a mesh of its own,
//! in rounds of its own: the two share the node's link, so they never run at once on a node.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// A network, the `network` label of every pair series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The node's own network namespace (a `hostNetwork` pod, or an inventory node).
    #[default]
    Host,
    /// The pod network: a server pod with its own network namespace, reached through the CNI.
    Pod,
}

impl Network {
    pub const ALL: [Network; 2] = [Network::Host, Network::Pod];

    pub fn as_str(self) -> &'static str {
        match self {
            Network::Host => "host",
            Network::Pod => "pod",
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
