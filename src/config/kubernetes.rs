//! Flags of Kubernetes discovery: where the server pods are, how to list them, which node labels
//! to copy onto the pair series.

use std::time::Duration;

use clap::Args;

use crate::error::{Error, Result};
use crate::targets::NodeLabelNames;
use crate::targets::kubernetes::KubernetesSettings;

/// Kubernetes discovery, used when no --inventory is given.
#[derive(Debug, Args)]
#[command(next_help_heading = "Kubernetes discovery (without --inventory)")]
pub struct KubernetesArgs {
    /// Namespace of the iperf3 server pods [default: the job's own namespace, or the kubeconfig context's].
    #[arg(long, env = "IPERF3_MONITOR_NAMESPACE", value_name = "NAMESPACE", conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,

    /// Look for server pods in every namespace (needs a ClusterRole to list pods).
    #[arg(long, env = "IPERF3_MONITOR_ALL_NAMESPACES")]
    pub all_namespaces: bool,

    /// Label selector of the iperf3 server pods.
    #[arg(
        long,
        env = "IPERF3_MONITOR_SELECTOR",
        value_name = "SELECTOR",
        default_value = "app.kubernetes.io/component=server,app.kubernetes.io/name=iperf3-monitor"
    )]
    pub selector: String,

    /// Node labels to add to pair series as source_<name>/destination_<name>, comma-separated
    /// (e.g. topology.kubernetes.io/zone gives source_zone); needs get/list on nodes.
    #[arg(long, env = "IPERF3_MONITOR_NODE_LABEL_KEYS", value_name = "KEYS", value_delimiter = ',')]
    pub node_label_keys: Vec<String>,

    /// Container of the server pods that runs the iperf3 client in mesh mode [default: the one with a port named iperf3, else the first].
    #[arg(long, env = "IPERF3_MONITOR_CONTAINER", value_name = "NAME")]
    pub container: Option<String>,

    /// Pods per page when listing (the API's limit/continue pagination).
    #[arg(long, env = "IPERF3_MONITOR_PAGE_SIZE", value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,

    /// Timeout of one Kubernetes API request (listing pods or nodes, opening an exec session), in seconds.
    #[arg(long, env = "IPERF3_MONITOR_API_TIMEOUT", value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub api_timeout: u64,
}

impl KubernetesArgs {
    pub(super) fn into_settings(self) -> Result<KubernetesSettings> {
        if let Some(namespace) = &self.namespace
            && namespace.is_empty()
        {
            return Err(Error::config("--namespace", "must not be empty"));
        }
        let mut node_labels: Vec<(String, NodeLabelNames)> = Vec::new();
        for key in self.node_label_keys.into_iter().filter(|k| !k.is_empty()) {
            let suffix = label_suffix(&key)
                .ok_or_else(|| Error::config("--node-label-keys", format!("'{key}' is not a Kubernetes label key")))?;
            let names = NodeLabelNames::new(&suffix);
            if let Some((other, _)) = node_labels.iter().find(|(_, n)| *n == names) {
                return Err(Error::config(
                    "--node-label-keys",
                    format!("'{key}' and '{other}' would both become source_{suffix}; keep one"),
                ));
            }
            node_labels.push((key, names));
        }
        Ok(KubernetesSettings {
            namespace: self.namespace,
            all_namespaces: self.all_namespaces,
            selector: self.selector,
            node_labels,
            container: self.container,
            page_size: self.page_size,
            api_timeout: Duration::from_secs(self.api_timeout),
        })
    }
}

/// The series label suffix for a node label key: its name part, as a Prometheus label name
/// (`topology.kubernetes.io/zone` → `zone`, `node.kubernetes.io/instance-type` → `instance_type`).
fn label_suffix(key: &str) -> Option<String> {
    let name = key.rsplit('/').next()?;
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && key.chars().filter(|c| *c == '/').count() <= 1;
    valid.then(|| name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_label_keys_become_label_suffixes() {
        assert_eq!(label_suffix("topology.kubernetes.io/zone").as_deref(), Some("zone"));
        assert_eq!(label_suffix("node.kubernetes.io/instance-type").as_deref(), Some("instance_type"));
        assert_eq!(label_suffix("rack").as_deref(), Some("rack"));
        assert_eq!(label_suffix("a/b/c"), None);
        assert_eq!(label_suffix("zone "), None);
    }
}
