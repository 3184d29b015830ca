//! Pods and nodes as the API server serialises them. The pod spec mirrors the chart's server
//! DaemonSet (chart/templates/server-daemonset.yaml) after API defaulting; the status follows
//! what the kubelet reports for each phase. List items carry no `kind`/`apiVersion`, as in a
//! real list response; single objects do.

use serde_json::{Value, json};

use super::store::{Objects, StoredNode, StoredPod, hex_id};

/// The iperf3 port of the chart's server container.
pub(crate) const IPERF3_PORT: u16 = 5201;

const IMAGE: &str = "ghcr.io/iperf3-monitor/iperf3-monitor:test";

/// When the fake's nodes joined the cluster.
const NODE_CREATED: &str = "2025-01-06T09:00:00Z";

pub(crate) fn pod_json(stored: &StoredPod, type_meta: bool) -> Value {
    let pod = &stored.pod;
    let created = &pod.created_at;
    // The first container is the chart's iperf3 server; others (sidecars) get a bare spec.
    let containers: Vec<Value> = pod
        .containers
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut container = json!({
                "name": name,
                "image": IMAGE,
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
            });
            if i == 0 {
                container["command"] = json!(["iperf3"]);
                container["args"] = json!(["--server", "--port", IPERF3_PORT.to_string()]);
                container["ports"] = json!([
                    {"name": "iperf3", "containerPort": IPERF3_PORT, "protocol": "TCP"},
                    {"name": "iperf3-udp", "containerPort": IPERF3_PORT, "protocol": "UDP"}
                ]);
                if pod.host_network {
                    // API defaulting sets hostPort to containerPort.
                    for port in container["ports"].as_array_mut().unwrap() {
                        port["hostPort"] = json!(IPERF3_PORT);
                    }
                }
                container["volumeMounts"] = json!([{"name": "tmp", "mountPath": "/tmp"}]);
            }
            container
        })
        .collect();
    let mut spec = json!({
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
        "containers": containers,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": if pod.host_network { "ClusterFirstWithHostNet" } else { "ClusterFirst" },
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "automountServiceAccountToken": false,
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}
        ],
        "priority": 0,
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority"
    });
    if let Some(node) = &pod.node_name {
        spec["nodeName"] = json!(node);
    }
    if pod.host_network {
        spec["hostNetwork"] = json!(true);
    }

    let status = pod_status(stored);
    let managed_fields = json!([
        managed_by(
            "kube-controller-manager",
            created,
            json!({"f:metadata": {"f:labels": fields_v1(&json!(pod.labels))},
            "f:spec": fields_v1(&spec)}),
            None
        ),
        managed_by("kwok", &stored.ready_since, json!({"f:status": fields_v1(&status)}), Some("status")),
    ]);
    let mut object = json!({
        "metadata": {
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": stored.uid,
            "resourceVersion": stored.resource_version.to_string(),
            "creationTimestamp": created,
            "labels": pod.labels,
            "managedFields": managed_fields,
        },
        "spec": spec,
        "status": status,
    });
    if type_meta {
        with_type_meta(&mut object, "Pod");
    }
    object
}

/// A `managedFields` entry, as server-side apply records each writer's fields: about 3 KB of
/// a real server pod's 7 KB, read by no client of ours, and so what a list must skip cheaply.
fn managed_by(manager: &str, at: &str, fields: Value, subresource: Option<&str>) -> Value {
    let mut entry = json!({"manager": manager, "operation": "Update", "apiVersion": "v1", "time": at,
        "fieldsType": "FieldsV1", "fieldsV1": fields});
    if let Some(subresource) = subresource {
        entry["subresource"] = json!(subresource);
    }
    entry
}

/// The FieldsV1 set of an object's fields: `f:<field>` for a field, `k:{"name":…}` or
/// `k:{"type":…}` for a keyed list's item, `.` for a field that holds fields of its own.
fn fields_v1(value: &Value) -> Value {
    let nested = |entries: Vec<(String, Value)>| {
        let mut set = serde_json::Map::from_iter([(".".to_string(), json!({}))]);
        set.extend(entries);
        Value::Object(set)
    };
    match value {
        Value::Object(fields) => nested(fields.iter().map(|(k, v)| (format!("f:{k}"), fields_v1(v))).collect()),
        Value::Array(items) if items.iter().all(|i| i.get("name").or(i.get("type")).is_some()) => nested(
            items
                .iter()
                .map(|item| {
                    let key = if item.get("name").is_some() { "name" } else { "type" };
                    (format!("k:{{\"{key}\":{}}}", item[key]), fields_v1(item))
                })
                .collect(),
        ),
        _ => json!({}),
    }
}

fn condition(kind: &str, ok: bool, at: &str) -> Value {
    json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": at})
}

fn pod_status(stored: &StoredPod) -> Value {
    let pod = &stored.pod;
    let created = pod.created_at.as_str();
    let mut status = json!({"phase": pod.phase, "qosClass": "BestEffort"});
    let Some(_node) = &pod.node_name else {
        let mut unscheduled = condition("PodScheduled", false, created);
        unscheduled["reason"] = json!("Unschedulable");
        unscheduled["message"] = json!("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.");
        status["conditions"] = json!([unscheduled]);
        return status;
    };
    let running = pod.phase == "Running";
    let ready = running && pod.ready;
    let ready_at = stored.ready_since.as_str();
    let unready: Vec<&str> = pod.containers.iter().map(String::as_str).collect();
    let not_ready_reason = match pod.phase.as_str() {
        "Succeeded" => "PodCompleted",
        "Failed" => "PodFailed",
        _ => "ContainersNotReady",
    };
    let mut ready_condition = condition("Ready", ready, ready_at);
    let mut containers_ready = condition("ContainersReady", ready, ready_at);
    if !ready {
        for c in [&mut ready_condition, &mut containers_ready] {
            c["reason"] = json!(not_ready_reason);
            if not_ready_reason == "ContainersNotReady" {
                c["message"] = json!(format!("containers with unready status: [{}]", unready.join(" ")));
            }
        }
    }
    let sandbox_ready = running || pod.phase == "Pending";
    status["conditions"] = json!([
        condition("PodReadyToStartContainers", sandbox_ready, created),
        condition("Initialized", true, created),
        ready_condition,
        containers_ready,
        condition("PodScheduled", true, created),
    ]);
    if let Some(ip) = &pod.pod_ip {
        let ips: Vec<Value> = std::iter::once(ip).chain(&pod.more_ips).map(|ip| json!({"ip": ip})).collect();
        // hostNetwork: the pod's addresses are its node's.
        let host_ips =
            if pod.host_network { ips.clone() } else { pod.host_ips.iter().map(|ip| json!({"ip": ip})).collect() };
        if let Some(host_ip) = host_ips.first() {
            status["hostIP"] = host_ip["ip"].clone();
            status["hostIPs"] = json!(host_ips);
        }
        status["podIP"] = json!(ip);
        status["podIPs"] = json!(ips);
    }
    status["startTime"] = json!(created);
    let image = IMAGE;
    let statuses: Vec<Value> = pod
        .containers
        .iter()
        .map(|name| {
            let id = format!("containerd://{}", hex_id(&format!("{}/{}/{name}", pod.namespace, pod.name), 64));
            let state = match pod.phase.as_str() {
                "Running" => json!({"running": {"startedAt": created}}),
                "Succeeded" => json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": created, "finishedAt": ready_at, "containerID": id}}),
                "Failed" => json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": created, "finishedAt": ready_at, "containerID": id}}),
                _ => json!({"waiting": {"reason": "ContainerCreating"}}),
            };
            let mut s = json!({
                "name": name,
                "state": state,
                "lastState": {},
                "ready": ready,
                "restartCount": 0,
                "image": image,
                "imageID": format!("{image}@sha256:{}", hex_id(image, 64)),
                "started": running,
            });
            if pod.phase != "Pending" {
                s["containerID"] = json!(id);
            }
            s
        })
        .collect();
    status["containerStatuses"] = json!(statuses);
    status
}

/// The labels every kubelet puts on its node; the test's labels win.
fn node_labels(stored: &StoredNode) -> serde_json::Map<String, Value> {
    let name = &stored.node.name;
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("beta.kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("kubernetes.io/hostname", name.as_str()),
        ("kubernetes.io/os", "linux"),
    ] {
        labels.insert(k.into(), json!(v));
    }
    for (k, v) in &stored.node.labels {
        labels.insert(k.clone(), json!(v));
    }
    labels
}

/// All labels of a node as served, for selectors.
pub(crate) fn node_label_map(stored: &StoredNode) -> std::collections::BTreeMap<String, String> {
    node_labels(stored).into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string())).collect()
}

pub(crate) fn node_json(stored: &StoredNode, objects: &Objects, type_meta: bool) -> Value {
    let name = &stored.node.name;
    // A node's address is its host-network server pod's, or a pod-network pod's hostIP.
    let internal_ip = objects
        .pods
        .values()
        .filter(|p| p.pod.node_name.as_deref() == Some(name.as_str()))
        .find_map(|p| if p.pod.host_network { p.pod.pod_ip.clone() } else { p.pod.host_ips.first().cloned() });
    let mut addresses = Vec::new();
    if let Some(ip) = internal_ip {
        addresses.push(json!({"type": "InternalIP", "address": ip}));
    }
    addresses.push(json!({"type": "Hostname", "address": name}));
    let mut object = json!({
        "metadata": {
            "name": name,
            "uid": stored.uid,
            "resourceVersion": stored.resource_version.to_string(),
            "creationTimestamp": NODE_CREATED,
            "labels": node_labels(stored),
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true"
            }
        },
        "spec": {},
        "status": {
            "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "110"},
            "conditions": [{
                "type": "Ready", "status": "True",
                "lastHeartbeatTime": NODE_CREATED, "lastTransitionTime": NODE_CREATED,
                "reason": "KubeletReady", "message": "kubelet is posting ready status"
            }],
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": hex_id(&format!("machine/{name}"), 32),
                "systemUUID": super::store::uid(&format!("system/{name}")),
                "bootID": super::store::uid(&format!("boot/{name}")),
                "kernelVersion": "6.1.0-fake",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://2.0.5",
                "kubeletVersion": "v1.33.1",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64"
            }
        }
    });
    if type_meta {
        with_type_meta(&mut object, "Node");
    }
    object
}

fn with_type_meta(object: &mut Value, kind: &str) {
    object["kind"] = json!(kind);
    object["apiVersion"] = json!("v1");
}

/// `GET /version`.
pub(crate) fn version_json() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.1",
        "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T08:19:08Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}
