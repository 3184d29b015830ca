//! What discovery reads of the pods and nodes it lists, deserialised straight from each list
//! page, and nothing else.
//!
//! A real server pod is about 7 KB of JSON (3 KB of it `managedFields`); as a `k8s_openapi`
//! `Pod` it takes about 60 KB of small allocations, and even emptied of what is not read it
//! keeps about 9 KB of inline `PodSpec` and `Container` fields. These types skip every field
//! they do not name while parsing, so a page costs little more than its text, and a kept pod
//! about 1 KB. `kube::Resource` is implemented for them, so `Api<ServerPod>` lists pods.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Node as KubeNode, Pod, PodIP};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A pod as [`super::kubernetes::select_servers`] reads it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServerPod {
    /// Only name, namespace, creationTimestamp and deletionTimestamp. Boxed: an `ObjectMeta`
    /// is 400 bytes of mostly empty fields, and the list of pods grows by doubling.
    #[serde(default, deserialize_with = "pod_metadata")]
    pub metadata: Box<ObjectMeta>,
    pub spec: Option<ServerPodSpec>,
    pub status: Option<ServerPodStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerPodSpec {
    pub node_name: Option<String>,
    /// True: the server is on the node's network; false: on the pod network.
    #[serde(default)]
    pub host_network: bool,
    #[serde(default)]
    pub containers: Vec<ServerContainer>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerContainer {
    #[serde(default)]
    pub name: String,
    pub ports: Option<Vec<ServerPort>>,
    pub resources: Option<ServerResources>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerPort {
    pub name: Option<String>,
    #[serde(default)]
    pub container_port: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServerResources {
    pub limits: Option<CpuLimit>,
}

/// `resources.limits`, of which only the CPU is read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CpuLimit {
    pub cpu: Option<Quantity>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServerPodStatus {
    pub phase: Option<String>,
    /// Whether `conditions` holds `Ready` `True`, the one condition read.
    #[serde(default, rename = "conditions", deserialize_with = "ready_condition")]
    pub ready: bool,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    /// Both families on a dual-stack cluster.
    #[serde(rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIP>>,
}

/// A node as [`super::kubernetes::attach_labels`] reads it: its name and labels.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LabelledNode {
    #[serde(default, deserialize_with = "node_metadata")]
    pub metadata: ObjectMeta,
}

fn pod_metadata<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Box<ObjectMeta>, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Read {
        name: Option<String>,
        namespace: Option<String>,
        creation_timestamp: Option<Time>,
        deletion_timestamp: Option<Time>,
    }
    let read = Read::deserialize(deserializer)?;
    Ok(Box::new(ObjectMeta {
        name: read.name,
        namespace: read.namespace,
        creation_timestamp: read.creation_timestamp,
        deletion_timestamp: read.deletion_timestamp,
        ..ObjectMeta::default()
    }))
}

/// Reads the conditions one at a time and keeps none (a pod has five, 600 bytes kept).
fn ready_condition<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    struct Condition<'a> {
        #[serde(rename = "type", borrow, default)]
        type_: Cow<'a, str>,
        #[serde(borrow, default)]
        status: Cow<'a, str>,
    }
    struct Ready;
    impl<'de> Visitor<'de> for Ready {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of pod conditions")
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut ready = false;
            while let Some(condition) = seq.next_element::<Condition>()? {
                ready |= condition.type_ == "Ready" && condition.status == "True";
            }
            Ok(ready)
        }
    }
    deserializer.deserialize_any(Ready)
}

fn node_metadata<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    struct Read {
        name: Option<String>,
        labels: Option<BTreeMap<String, String>>,
    }
    let read = Read::deserialize(deserializer)?;
    Ok(ObjectMeta { name: read.name, labels: read.labels, ..ObjectMeta::default() })
}

/// `kube::Resource` for a slim type, with the kind, group, version, plural and scope of the
/// `k8s_openapi` type it stands for.
macro_rules! resource_as {
    ($slim:ty, $full:ty) => {
        impl kube::Resource for $slim {
            type DynamicType = ();
            type Scope = <$full as kube::Resource>::Scope;

            fn kind(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::kind(dt)
            }
            fn group(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::group(dt)
            }
            fn version(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::version(dt)
            }
            fn plural(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::plural(dt)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

resource_as!(ServerPod, Pod);
resource_as!(LabelledNode, KubeNode);

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use kube::core::ObjectList;

    /// A page of the pods list from kube-apiserver v1.36.3: two of the chart's server pods on
    /// kwok nodes, with managedFields, as `scripts/k8s/bench-discovery.sh` lists them.
    const REAL_PAGE: &str = include_str!("../../tests/fixtures/server-pod-list.json");

    #[test]
    fn a_real_page_keeps_only_what_is_read() {
        let page: ObjectList<ServerPod> = serde_json::from_str(REAL_PAGE).unwrap();
        assert_eq!(page.items.len(), 2);
        assert!(page.metadata.continue_.as_deref().is_some_and(|c| !c.is_empty()));
        let pod = &page.items[0];
        assert_eq!(pod.metadata.name.as_deref(), Some("r-iperf3-monitor-server-fcfjw"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("iperf3-monitor"));
        assert!(pod.metadata.creation_timestamp.is_some() && pod.metadata.deletion_timestamp.is_none());
        assert!(pod.metadata.managed_fields.is_none() && pod.metadata.labels.is_none());
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.containers.len(), 1);
        let container = &spec.containers[0];
        let ports: Vec<_> = container.ports.iter().flatten().map(|p| (p.name.as_deref(), p.container_port)).collect();
        assert_eq!(ports, [(Some("iperf3"), 5201), (Some("iperf3-udp"), 5201)]);
        let cpu = container.resources.as_ref().and_then(|r| r.limits.as_ref()?.cpu.as_ref());
        assert_eq!(cpu.map(|q| q.0.as_str()), Some("2"));
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.ready);
        assert_eq!(status.pod_ips.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn ready_is_the_ready_condition_true() {
        let ready = |conditions: serde_json::Value| {
            serde_json::from_value::<ServerPodStatus>(serde_json::json!({"conditions": conditions})).unwrap().ready
        };
        assert!(ready(
            serde_json::json!([{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}])
        ));
        assert!(!ready(
            serde_json::json!([{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}])
        ));
        assert!(!ready(serde_json::json!([])) && !ready(serde_json::Value::Null));
        assert!(!serde_json::from_str::<ServerPodStatus>("{}").unwrap().ready);
    }

    #[test]
    fn the_slim_types_are_listed_as_pods_and_nodes() {
        assert_eq!(ServerPod::url_path(&(), Some("monitoring")), "/api/v1/namespaces/monitoring/pods");
        assert_eq!(LabelledNode::url_path(&(), None), "/api/v1/nodes");
        assert_eq!((ServerPod::kind(&()), LabelledNode::kind(&())), ("Pod".into(), "Node".into()));
    }
}
