//! Kubernetes discovery: the iperf3 server pods of a DaemonSet become the run's nodes, one per
//! Kubernetes node. The pod → node mapping ([`select_servers`]) is pure.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use futures::AsyncReadExt;
use kube::api::{Api, ListParams};
use kube::core::ObjectList;
use kube::{Client, Config};
use serde::de::DeserializeOwned;

use super::kube_objects::{LabelledNode, ServerPod, ServerPodStatus};
use super::{Address, Network, Node, NodeLabel, NodeLabelNames, PodRef, address};
use crate::error::{Error, Result};

/// The name of the server container's port that gives the iperf3 port.
pub const PORT_NAME: &str = "iperf3";

/// How to find the server pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSettings {
    /// None: the default namespace of the client configuration.
    pub namespace: Option<String>,
    pub all_namespaces: bool,
    pub selector: String,
    /// Node label keys and the series labels each maps to (`topology.kubernetes.io/zone` → `source_zone`, `destination_zone`).
    pub node_labels: Vec<(String, NodeLabelNames)>,
    pub container: Option<String>,
    pub page_size: u32,
    pub api_timeout: Duration,
}

/// Finds the server pods and returns one node per Kubernetes node, sorted by name, with the
/// client that found them (mesh mode execs through it).
pub async fn discover(
    settings: &KubernetesSettings,
    default_port: u16,
    test_timeout: Duration,
) -> Result<(Vec<Node>, Client)> {
    let mut config = Config::infer().await.map_err(|e| Error::Discovery {
        message: format!(
            "no Kubernetes API configuration (in-cluster service account or KUBECONFIG): {e}; \
             pass --inventory FILE to measure a static fleet"
        ),
    })?;
    config.connect_timeout = Some(settings.api_timeout);
    // An exec stream is silent for a whole test: iperf3 prints its report at the end.
    config.read_timeout = Some(test_timeout + settings.api_timeout);
    let namespace = settings.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config)
        .map_err(|e| Error::Discovery { message: format!("connecting to the Kubernetes API at {server}: {e}") })?;

    let (api, scope): (Api<ServerPod>, String) = if settings.all_namespaces {
        (Api::all(client.clone()), "all namespaces".into())
    } else {
        (Api::namespaced(client.clone(), &namespace), format!("namespace {namespace}"))
    };
    let params = ListParams::default().labels(&settings.selector);
    let pods = list_all(&api, &params, settings.page_size, settings.api_timeout).await.map_err(|e| {
        explain(e, &format!("listing pods with selector '{}' in {scope}", settings.selector), "list", "pods", &scope)
    })?;
    let selection = select_servers(&pods, default_port, settings.container.as_deref());
    tracing::info!(
        pods = pods.len(),
        nodes = selection.nodes.len(),
        not_ready = selection.not_ready.len(),
        duplicates = selection.duplicates.len(),
        "discovered iperf3 server pods in {scope}"
    );
    if !selection.not_ready.is_empty() {
        tracing::warn!(pods = ?selection.not_ready, "server pods skipped: not running, not ready, or without an IP or node");
    }
    if !selection.duplicates.is_empty() {
        tracing::warn!(pods = ?selection.duplicates, "more than one server pod on a node: the oldest is used");
    }
    let mut nodes = selection.nodes;
    if !settings.node_labels.is_empty() {
        let api: Api<LabelledNode> = Api::all(client.clone());
        let kube_nodes = list_all(&api, &ListParams::default(), settings.page_size, settings.api_timeout)
            .await
            .map_err(|e| explain(e, "listing nodes for --node-label-keys", "list", "nodes", "the cluster"))?;
        attach_labels(&mut nodes, &kube_nodes, &settings.node_labels);
    }
    Ok((nodes, client))
}

/// Why a list failed.
#[derive(Debug)]
enum ListError {
    Api(kube::Error),
    Timeout(Duration),
}

/// Times a page answered 500 Internal Error is asked for again (the Kubernetes client retries
/// 429, 503 and 504 itself); a 500 is often an etcd request that timed out.
const INTERNAL_ERROR_RETRIES: u32 = 2;
/// Wait before the first retry after a 500; doubles each time.
const INTERNAL_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Lists every object, page by page (`limit` + `continue`). An expired continue token (410)
/// restarts the list once, as client-go does; a page answered 500 is asked for again.
/// `K` is one of the slim types of [`super::kube_objects`]: a page is parsed into what
/// discovery reads, never into whole objects.
async fn list_all<K>(api: &Api<K>, params: &ListParams, page_size: u32, timeout: Duration) -> Result<Vec<K>, ListError>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let mut restarted = false;
    let mut retries = 0;
    loop {
        let mut page_params = params.clone().limit(page_size);
        if let Some(token) = &token {
            page_params = page_params.continue_token(token);
        }
        let page = match tokio::time::timeout(timeout, list_page(api, &page_params)).await {
            Err(_) => return Err(ListError::Timeout(timeout)),
            Ok(Err(kube::Error::Api(status))) if status.code == 410 && !restarted => {
                tracing::warn!("the list's continue token expired; listing again from the start");
                items.clear();
                token = None;
                restarted = true;
                continue;
            }
            Ok(Err(kube::Error::Api(status))) if status.code == 500 && retries < INTERNAL_ERROR_RETRIES => {
                let delay = INTERNAL_ERROR_BACKOFF * 2u32.pow(retries);
                retries += 1;
                tracing::warn!(
                    message = %status.message,
                    retry = retries,
                    of = INTERNAL_ERROR_RETRIES,
                    delay_seconds = delay.as_secs_f64(),
                    "the Kubernetes API answered 500; asking again"
                );
                tokio::time::sleep(delay).await;
                continue;
            }
            Ok(result) => result.map_err(ListError::Api)?,
        };
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(items),
        }
    }
}

/// One page of a list, as `Api::list` asks for it. `Api::list` copies a page's text twice more
/// on its way to the parser (10 MB at once for 500 real pods); here it is read into one buffer.
async fn list_page<K>(api: &Api<K>, params: &ListParams) -> Result<ObjectList<K>, kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned,
{
    let request = kube::core::Request::new(api.resource_url()).list(params).map_err(kube::Error::BuildRequest)?;
    let body = api.clone().into_client().request_stream(request).await?;
    let mut text = Vec::new();
    std::pin::pin!(body).read_to_end(&mut text).await.map_err(kube::Error::ReadEvents)?;
    serde_json::from_slice(&text).map_err(kube::Error::SerdeError)
}

/// Turns a failed API call into an error that says what to do.
fn explain(error: ListError, what: &str, verb: &str, resource: &str, scope: &str) -> Error {
    let message = match error {
        ListError::Timeout(timeout) => format!(
            "{what}: the Kubernetes API did not answer within {}s (--api-timeout); is it reachable from here?",
            timeout.as_secs()
        ),
        ListError::Api(kube::Error::Api(status)) if status.code == 403 => format!(
            "{what}: forbidden: {}. Grant the job's service account '{verb}' on '{resource}' in {scope} (see the README's RBAC section)",
            status.message
        ),
        ListError::Api(kube::Error::Api(status)) if status.code == 401 => {
            format!(
                "{what}: unauthorized: {}; check the service account token or kubeconfig credentials",
                status.message
            )
        }
        ListError::Api(kube::Error::Api(status)) => {
            format!("{what}: the Kubernetes API answered {} {}: {}", status.code, status.reason, status.message)
        }
        ListError::Api(other) => format!("{what}: {other}"),
    };
    Error::Discovery { message }
}

/// The outcome of choosing one server pod per node and network.
#[derive(Debug, Default, PartialEq)]
pub struct Selection {
    /// One per Kubernetes node and network (a `hostNetwork` server pod is on the host network,
    /// any other on the pod network), sorted by node name, then network.
    pub nodes: Vec<Node>,
    /// `namespace/name` of pods that cannot serve: not running, not ready, no IP or no node.
    pub not_ready: Vec<String>,
    /// `namespace/name` of ready pods on a node that already has an older one on its network.
    pub duplicates: Vec<String>,
}

/// Chooses the pods that serve: Running, Ready, with a pod IP and a node, not being deleted;
/// on a node with several on one network, the oldest (then the first by namespace/name).
pub fn select_servers(pods: &[ServerPod], default_port: u16, container: Option<&str>) -> Selection {
    let mut selection = Selection::default();
    // One list sorted by node, not a list per node: 5,000 small lists cost 6 MB.
    let mut candidates: Vec<(&ServerPod, Node)> = Vec::with_capacity(pods.len());
    for pod in pods {
        match pod_to_target(pod, default_port, container) {
            Some(node) => candidates.push((pod, node)),
            None => selection.not_ready.push(pod_id(pod)),
        }
    }
    let created = |p: &ServerPod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    candidates.sort_by(|(a, a_node), (b, b_node)| {
        (&a_node.name, a_node.network)
            .cmp(&(&b_node.name, b_node.network))
            .then_with(|| created(a).cmp(&created(b)))
            .then_with(|| pod_id(a).cmp(&pod_id(b)))
    });
    selection.nodes.reserve_exact(candidates.len());
    for (pod, node) in candidates {
        if selection.nodes.last().is_some_and(|last| last.name == node.name && last.network == node.network) {
            selection.duplicates.push(pod_id(pod));
        } else {
            selection.nodes.push(node);
        }
    }
    selection.nodes.shrink_to_fit();
    selection
}

/// The node a server pod serves, if it can serve now.
pub fn pod_to_target(pod: &ServerPod, default_port: u16, container: Option<&str>) -> Option<Node> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let spec = pod.spec.as_ref()?;
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ready = status.ready;
    let node_name = spec.node_name.clone().filter(|n| !n.is_empty())?;
    // IP addresses and nothing else go on the client's command line.
    let addresses = pod_addresses(status);
    if !ready || addresses.is_empty() {
        return None;
    }
    let named_port = spec.containers.iter().find_map(|c| {
        c.ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(PORT_NAME))
            .map(|p| (c.name.clone(), p.container_port))
    });
    let port = named_port.as_ref().and_then(|(_, p)| u16::try_from(*p).ok()).filter(|p| *p > 0).unwrap_or(default_port);
    let container = container
        .map(str::to_string)
        .or_else(|| named_port.map(|(c, _)| c))
        .or_else(|| spec.containers.first().map(|c| c.name.clone()));
    let mut node = Node::with_addresses(node_name, addresses, port, Vec::new());
    node.network = if spec.host_network { Network::Host } else { Network::Pod };
    node.cpu_millis = spec
        .containers
        .iter()
        .find(|c| container.as_deref().is_none_or(|name| c.name == name))
        .and_then(|c| c.resources.as_ref()?.limits.as_ref()?.cpu.as_ref())
        .and_then(|q| cpu_millis(&q.0));
    node.pod = Some(PodRef {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        container,
    });
    Some(node)
}

/// A pod's addresses, one per family: `status.podIPs` (dual-stack clusters list both families;
/// a hostNetwork pod carries its node's), else `status.podIP`. What is not an IP address, or a
/// second address of a family, is left out.
fn pod_addresses(status: &ServerPodStatus) -> Vec<Address> {
    let listed: Vec<&str> = match status.pod_ips.as_deref() {
        Some(ips) if !ips.is_empty() => ips.iter().map(|p| p.ip.as_str()).collect(),
        _ => status.pod_ip.as_deref().into_iter().collect(),
    };
    let mut addresses: Vec<Address> = Vec::new();
    for ip in listed {
        if let Ok(address) = address::parse_ip(ip)
            && !addresses.iter().any(|a| a.family == address.family)
        {
            addresses.push(address);
        }
    }
    addresses.sort_by_key(|a| a.family);
    addresses
}

/// A CPU quantity ("500m", "1", "1.5") in millicores; None for what is not one.
fn cpu_millis(quantity: &str) -> Option<u32> {
    let cores = match quantity.strip_suffix('m') {
        Some(millis) => millis.parse::<f64>().ok()? / 1000.0,
        None => quantity.parse::<f64>().ok()?,
    };
    (cores.is_finite() && cores > 0.0).then(|| (cores * 1000.0).round().clamp(1.0, f64::from(u32::MAX)) as u32)
}

/// Copies the chosen node labels onto the nodes (a node without the label gets none).
pub fn attach_labels(nodes: &mut [Node], kube_nodes: &[LabelledNode], keys: &[(String, NodeLabelNames)]) {
    let labels: BTreeMap<&str, &BTreeMap<String, String>> =
        kube_nodes.iter().filter_map(|n| Some((n.metadata.name.as_deref()?, n.metadata.labels.as_ref()?))).collect();
    for node in nodes {
        let Some(node_labels) = labels.get(node.name.as_str()) else { continue };
        node.labels = keys
            .iter()
            .filter_map(|(key, names)| Some(NodeLabel { names: *names, value: node_labels.get(key)?.clone() }))
            .filter(|label| !label.value.is_empty())
            .collect();
    }
}

fn pod_id(pod: &ServerPod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::IpFamily;

    fn pod(name: &str, node: &str, ip: &str, phase: &str, ready: bool, created: &str) -> ServerPod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "monitoring", "creationTimestamp": created},
            "spec": {"nodeName": node, "containers": [
                {"name": "sidecar"},
                {"name": "iperf3", "ports": [{"name": "iperf3", "containerPort": 5202, "protocol": "TCP"}],
                 "resources": {"limits": {"cpu": "500m"}}}
            ]},
            "status": {"phase": phase, "podIP": ip, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn what_a_real_pod_carries_besides_is_not_read() {
        let mut full = serde_json::json!({"metadata": {"name": "s-1", "namespace": "monitoring",
            "creationTimestamp": "2026-01-02T00:00:00Z", "labels": {"app": "iperf3"}}});
        full["spec"] = serde_json::json!({"nodeName": "worker-1", "hostNetwork": true, "containers": [
            {"name": "iperf3", "image": "x", "args": vec!["--server"; 100],
             "ports": [{"name": "iperf3", "containerPort": 5202, "hostPort": 5202, "protocol": "TCP"}],
             "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "50m"}},
             "livenessProbe": {"tcpSocket": {"port": "iperf3"}}}
        ]});
        full["status"] = serde_json::json!({"phase": "Running", "podIP": "10.0.0.5", "qosClass": "Burstable",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T00:00:00Z"}]});
        full["metadata"]["annotations"] = serde_json::json!({"a": "x".repeat(10_000)});
        full["metadata"]["managedFields"] = serde_json::json!([{"manager": "kube-controller-manager",
            "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}}}}]);
        let read: ServerPod = serde_json::from_value(full).unwrap();
        assert!(read.metadata.annotations.is_none() && read.metadata.managed_fields.is_none());
        let node = pod_to_target(&read, 5201, None).unwrap();
        assert_eq!((node.port, node.cpu_millis, node.address(IpFamily::Ipv4)), (5202, Some(500), Some("10.0.0.5")));
    }

    #[test]
    fn the_chart_s_server_pods_on_a_real_cluster_are_selected() {
        let page: kube::core::ObjectList<ServerPod> =
            serde_json::from_str(include_str!("../../tests/fixtures/server-pod-list.json")).unwrap();
        let selection = select_servers(&page.items, 5201, None);
        let nodes: Vec<(&str, Option<&str>, u16, Option<u32>)> = selection
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.address(IpFamily::Ipv4), n.port, n.cpu_millis))
            .collect();
        assert_eq!(nodes.len(), 2, "{selection:?}");
        assert!(nodes.iter().all(|(_, ip, port, cpu)| ip.is_some() && *port == 5201 && *cpu == Some(2000)));
        assert_eq!(selection.nodes[0].pod.as_ref().unwrap().container.as_deref(), Some("iperf3"));
    }

    #[test]
    fn a_ready_pod_becomes_its_node() {
        let node =
            pod_to_target(&pod("s-1", "worker-1", "10.0.0.5", "Running", true, "2026-01-01T00:00:00Z"), 5201, None)
                .unwrap();
        assert_eq!((node.name.as_str(), node.address(IpFamily::Ipv4), node.port), ("worker-1", Some("10.0.0.5"), 5202));
        let pod_ref = node.pod.unwrap();
        assert_eq!((pod_ref.namespace.as_str(), pod_ref.name.as_str()), ("monitoring", "s-1"));
        assert_eq!(pod_ref.container.as_deref(), Some("iperf3"));
        assert_eq!(node.cpu_millis, Some(500), "the server container's CPU limit");
    }

    #[test]
    fn a_dual_stack_pod_has_an_address_per_family() {
        let mut dual = pod("s-1", "worker-1", "10.0.0.5", "Running", true, "2026-01-01T00:00:00Z");
        let status = dual.status.as_mut().unwrap();
        status.pod_ips = Some(
            ["2001:db8::5", "10.0.0.5", "2001:db8::6", "not-an-ip"]
                .map(|ip| k8s_openapi::api::core::v1::PodIP { ip: ip.into() })
                .into(),
        );
        let node = pod_to_target(&dual, 5201, None).unwrap();
        // In family order; a second address of a family and what is no IP address are left out.
        let hosts: Vec<(IpFamily, &str)> = node.addresses.iter().map(|a| (a.family, a.host.as_str())).collect();
        assert_eq!(hosts, [(IpFamily::Ipv4, "10.0.0.5"), (IpFamily::Ipv6, "2001:db8::5")]);
        // Without podIPs, podIP alone.
        let single = pod("s-1", "worker-1", "2001:db8::7", "Running", true, "2026-01-01T00:00:00Z");
        assert_eq!(pod_to_target(&single, 5201, None).unwrap().address(IpFamily::Ipv6), Some("2001:db8::7"));
    }

    #[test]
    fn cpu_quantities_become_millicores() {
        for (quantity, millis) in
            [("500m", Some(500)), ("1", Some(1000)), ("1.5", Some(1500)), ("0", None), ("x", None)]
        {
            assert_eq!(cpu_millis(quantity), millis, "{quantity}");
        }
    }

    #[test]
    fn pods_that_cannot_serve_are_skipped() {
        let t = "2026-01-01T00:00:00Z";
        for bad in [
            pod("a", "w", "10.0.0.1", "Pending", true, t),
            pod("a", "w", "10.0.0.1", "Running", false, t),
            pod("a", "", "10.0.0.1", "Running", true, t),
            pod("a", "w", "", "Running", true, t),
            pod("a", "w", "--server", "Running", true, t),
            pod("a", "w", "10.0.0.1; reboot", "Running", true, t),
        ] {
            assert_eq!(pod_to_target(&bad, 5201, None), None, "{bad:?}");
        }
        let mut deleting = pod("a", "w", "10.0.0.1", "Running", true, t);
        deleting.metadata.deletion_timestamp = deleting.metadata.creation_timestamp.clone();
        assert_eq!(pod_to_target(&deleting, 5201, None), None);
    }

    #[test]
    fn one_server_per_node_the_oldest_and_sorted_by_node() {
        let pods = [
            pod("new", "w2", "10.0.0.3", "Running", true, "2026-02-01T00:00:00Z"),
            pod("old", "w2", "10.0.0.2", "Running", true, "2026-01-01T00:00:00Z"),
            pod("only", "w1", "10.0.0.1", "Running", true, "2026-03-01T00:00:00Z"),
            pod("sick", "w3", "10.0.0.4", "Running", false, "2026-03-01T00:00:00Z"),
        ];
        let selection = select_servers(&pods, 5201, Some("main"));
        let chosen: Vec<(&str, &str)> =
            selection.nodes.iter().map(|n| (n.name.as_str(), n.addresses[0].host.as_str())).collect();
        assert_eq!(chosen, [("w1", "10.0.0.1"), ("w2", "10.0.0.2")]);
        assert_eq!(selection.duplicates, ["monitoring/new"]);
        assert_eq!(selection.not_ready, ["monitoring/sick"]);
        assert_eq!(selection.nodes[0].pod.as_ref().unwrap().container.as_deref(), Some("main"));
    }

    #[test]
    fn a_node_with_a_server_on_each_network_is_measured_on_both() {
        let t = "2026-01-01T00:00:00Z";
        let mut host = pod("host", "w1", "198.18.0.1", "Running", true, t);
        host.spec.as_mut().unwrap().host_network = true;
        let mut older_host = pod("older", "w1", "198.18.0.1", "Running", true, "2025-01-01T00:00:00Z");
        older_host.spec.as_mut().unwrap().host_network = true;
        let pods = [pod("on-pod-net", "w1", "10.0.0.1", "Running", true, t), host, older_host];
        let selection = select_servers(&pods, 5201, None);
        let chosen: Vec<(&str, Network, &str)> =
            selection.nodes.iter().map(|n| (n.name.as_str(), n.network, n.addresses[0].host.as_str())).collect();
        assert_eq!(chosen, [("w1", Network::Host, "198.18.0.1"), ("w1", Network::Pod, "10.0.0.1")]);
        assert_eq!(selection.nodes[0].pod.as_ref().unwrap().name, "older");
        assert_eq!(selection.duplicates, ["monitoring/host"]);
    }

    #[test]
    fn node_labels_are_attached_by_suffix() {
        let mut nodes = vec![Node::new("w1", "10.0.0.1", 5201, vec![]), Node::new("w2", "10.0.0.2", 5201, vec![])];
        let kube_nodes: Vec<LabelledNode> = vec![
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "w1", "labels": {"topology.kubernetes.io/zone": "eu-1a", "other": "x"}}
            }))
            .unwrap(),
        ];
        let zone = NodeLabelNames::new("zone");
        attach_labels(&mut nodes, &kube_nodes, &[("topology.kubernetes.io/zone".into(), zone)]);
        assert_eq!(nodes[0].labels, [NodeLabel { names: zone, value: "eu-1a".into() }]);
        assert_eq!(zone.source, "source_zone");
        assert!(nodes[1].labels.is_empty());
    }
}
