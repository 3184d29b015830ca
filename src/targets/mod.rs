//! Where the nodes to measure come from.
//!
//! A target source yields [`Node`]s; everything after it (schedule, runner, sinks) only sees
//! nodes. The static inventory is one source; Kubernetes discovery plugs in beside it.

pub mod address;
pub mod inventory;
pub mod kube_objects;
pub mod kubernetes;
pub mod network;

use serde::Serialize;

use std::path::Path;
use std::time::Duration;

use crate::credentials::Credentials;
use crate::error::Result;
pub use address::{Address, Families, IpFamily};
pub use network::Network;

/// A node's iperf3 server on one network. A node with a server on both networks is two of
/// these with the same name: the schedule keeps their tests apart (see [`Network`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The name used in the `source_node` / `destination_node` labels: the machine's, shared by
    /// its servers on both networks.
    pub name: String,
    /// The network the server is on (the `network` label).
    pub network: Network,
    /// Addresses of the node's iperf3 server, one per IP family, in family order (a host name
    /// counts as IPv4: its tests run with `iperf3 -4`).
    pub addresses: Vec<Address>,
    /// Port of the node's iperf3 server.
    pub port: u16,
    /// Argv prefix that runs a command on this node (`ssh n1`, `ip netns exec n1`, ...);
    /// empty: the command runs in this process's environment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_command: Vec<String>,
    /// The node's iperf3 server pod, when discovered in Kubernetes; mesh-mode clients run in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// CPU the node's iperf3 processes may use together, in millicores (the server container's
    /// CPU limit; an inventory node's `cpu`): tells a CPU-bound test from a slow path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u32>,
    /// Node labels chosen with --node-label-keys.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<NodeLabel>,
    /// What a client needs to be let in by this node's server, if it authenticates clients.
    #[serde(skip)]
    pub credentials: Option<Credentials>,
}

/// The series label names a node label is copied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLabelNames {
    pub source: &'static str,
    pub destination: &'static str,
}

impl NodeLabelNames {
    /// `zone` → `source_zone`, `destination_zone`. Made once per configured key: leaking these few
    /// names keeps every label name `&'static`, as the metric names are.
    pub fn new(suffix: &str) -> Self {
        let leak = |name: String| -> &'static str { Box::leak(name.into_boxed_str()) };
        NodeLabelNames { source: leak(format!("source_{suffix}")), destination: leak(format!("destination_{suffix}")) }
    }
}

/// A node label copied onto the node's pair series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeLabel {
    #[serde(skip)]
    pub names: NodeLabelNames,
    pub value: String,
}

impl Node {
    /// A node reached at `address:port` (an IP address of either family, or a host name, or
    /// empty: no server), running its clients behind `client_command`.
    pub fn new(name: impl Into<String>, address: impl Into<String>, port: u16, client_command: Vec<String>) -> Self {
        let address: String = address.into();
        let addresses = match address::parse_ip(&address) {
            Ok(parsed) => vec![parsed],
            Err(_) if address.is_empty() => Vec::new(),
            Err(_) => vec![Address { family: IpFamily::Ipv4, host: address }],
        };
        Node::with_addresses(name, addresses, port, client_command)
    }

    /// A node reached at `addresses` (one per family, in family order) on `port`.
    pub fn with_addresses(
        name: impl Into<String>,
        addresses: Vec<Address>,
        port: u16,
        client_command: Vec<String>,
    ) -> Self {
        Node {
            name: name.into(),
            network: Network::Host,
            addresses,
            port,
            client_command,
            pod: None,
            cpu_millis: None,
            labels: Vec::new(),
            credentials: None,
        }
    }

    /// The server's address in `family`, if the node has one.
    pub fn address(&self, family: IpFamily) -> Option<&str> {
        self.addresses.iter().find(|a| a.family == family).map(|a| a.host.as_str())
    }

    pub fn families(&self) -> Families {
        Families::of(&self.addresses)
    }
}

/// Each node's machine, numbered in order of first appearance: a machine's servers on both
/// networks are nodes with its name.
pub fn machines(nodes: &[Node]) -> Vec<usize> {
    let mut numbers: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    nodes
        .iter()
        .map(|n| {
            let next = numbers.len();
            *numbers.entry(n.name.as_str()).or_insert(next)
        })
        .collect()
}

/// The machines' names, each once, in order (see [`machines`]).
pub fn machine_names(nodes: &[Node]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    nodes.iter().map(|n| n.name.as_str()).filter(|name| seen.insert(*name)).collect()
}

/// A pod that runs an iperf3 server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    /// The container that runs the iperf3 server (and, in mesh mode, the clients).
    pub container: Option<String>,
}

/// The nodes of a run, and the Kubernetes client that found them (for exec), if any.
pub struct Discovered {
    pub nodes: Vec<Node>,
    pub kubernetes: Option<kube::Client>,
}

impl std::fmt::Debug for Discovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovered")
            .field("nodes", &self.nodes)
            .field("kubernetes", &self.kubernetes.is_some())
            .finish()
    }
}

/// Where the nodes come from, and what every node gets.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The static inventory; None: the server pods in Kubernetes.
    pub inventory: Option<&'a Path>,
    pub kubernetes: &'a kubernetes::KubernetesSettings,
    /// The server port of a node that names none.
    pub default_port: u16,
    /// For authenticated servers (inventory nodes may have their own).
    pub credentials: Option<&'a Credentials>,
    /// One test's hard limit: how long a pods/exec stream may be silent.
    pub test_timeout: Duration,
}

/// Loads the nodes: the inventory if one is given, else the server pods in Kubernetes.
pub async fn discover(source: Source<'_>) -> Result<Discovered> {
    match source.inventory {
        Some(path) => Ok(Discovered {
            nodes: inventory::load(path, source.default_port, source.credentials).await?,
            kubernetes: None,
        }),
        None => {
            let (mut nodes, client) =
                kubernetes::discover(source.kubernetes, source.default_port, source.test_timeout).await?;
            for node in &mut nodes {
                node.credentials = source.credentials.cloned();
            }
            Ok(Discovered { nodes, kubernetes: Some(client) })
        }
    }
}
