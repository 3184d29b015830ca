//! Lists with `limit` and `continue` as the etcd3 store pages them
//! (k8s.io/apiserver/pkg/storage/etcd3/store.go GetList, pkg/storage/continue.go):
//! - a page holds at most `limit` matching items, filled across etcd batches;
//! - `continue` is set whenever keys remain after the last one examined, even if none of them
//!   match, so the last page of a filtered list can be empty;
//! - the token is base64url(JSON {"v":"meta.k8s.io/v1","rv":<revision>,"start":"<next key>"}),
//!   and the next page is read at that revision, a consistent snapshot;
//! - a token from a compacted revision answers 410 Expired with a token to continue inconsistently;
//! - `remainingItemCount` only without selectors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::objects::{node_json, node_label_map, pod_json};
use super::selector::{FieldTerm, LabelSelector, fields_match};
use super::status::Status;
use super::store::{Objects, Store};

/// What is listed.
#[derive(Debug, Clone)]
pub(crate) enum Collection {
    Pods { namespace: Option<String> },
    Nodes,
}

impl Collection {
    /// Keys of this collection start with this, within the store's map.
    fn prefix(&self) -> String {
        match self {
            Collection::Pods { namespace: Some(ns) } => format!("{ns}/"),
            Collection::Pods { namespace: None } | Collection::Nodes => String::new(),
        }
    }

    fn list_kind(&self) -> &'static str {
        match self {
            Collection::Pods { .. } => "PodList",
            Collection::Nodes => "NodeList",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    pub labels: LabelSelector,
    pub fields: Vec<FieldTerm>,
    /// 0: no paging.
    pub limit: i64,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ContinueToken {
    #[serde(rename = "v")]
    api_version: String,
    #[serde(rename = "rv")]
    resource_version: i64,
    #[serde(rename = "start")]
    start_key: String,
}

pub(crate) fn encode_continue(start_key: &str, revision: i64) -> String {
    let token =
        ContinueToken { api_version: "meta.k8s.io/v1".into(), resource_version: revision, start_key: start_key.into() };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// storage.DecodeContinue: the start key (relative to the listed prefix) and revision.
fn decode_continue(token: &str) -> Result<(String, i64), String> {
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|e| format!("continue key is not valid: {e}"))?;
    let token: ContinueToken = serde_json::from_slice(&bytes).map_err(|e| format!("continue key is not valid: {e}"))?;
    if token.api_version != "meta.k8s.io/v1" {
        return Err(format!(
            "continue key is not valid: server does not recognize this encoded version {}",
            token.api_version
        ));
    }
    if token.resource_version == 0 {
        return Err(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into()
        );
    }
    if token.start_key.is_empty() {
        return Err("continue key is not valid: encoded start key empty (version meta.k8s.io/v1)".into());
    }
    if token.start_key.split('/').any(|part| part == ".." || part == ".") || token.start_key.starts_with('/') {
        return Err(format!("continue key is not valid: {}", token.start_key));
    }
    Ok((token.start_key, token.resource_version))
}

fn matches(collection: &Collection, objects: &Objects, key: &str, query: &ListQuery) -> Option<Value> {
    match collection {
        Collection::Pods { .. } => {
            let stored = objects.pods.get(key)?;
            let pod = &stored.pod;
            let field = |name: &str| -> String {
                match name {
                    "metadata.name" => pod.name.clone(),
                    "metadata.namespace" => pod.namespace.clone(),
                    "spec.nodeName" => pod.node_name.clone().unwrap_or_default(),
                    "spec.restartPolicy" => "Always".into(),
                    "spec.schedulerName" => "default-scheduler".into(),
                    "spec.serviceAccountName" => "default".into(),
                    "spec.hostNetwork" => pod.host_network.to_string(),
                    "status.phase" => pod.phase.clone(),
                    "status.podIP" => pod.pod_ip.clone().unwrap_or_default(),
                    _ => String::new(),
                }
            };
            (query.labels.matches(&pod.labels) && fields_match(&query.fields, field)).then(|| pod_json(stored, false))
        }
        Collection::Nodes => {
            let stored = objects.nodes.get(key)?;
            let field = |name: &str| -> String {
                match name {
                    "metadata.name" => stored.node.name.clone(),
                    "spec.unschedulable" => "false".into(),
                    _ => String::new(),
                }
            };
            (query.labels.matches(&node_label_map(stored)) && fields_match(&query.fields, field))
                .then(|| node_json(stored, objects, false))
        }
    }
}

fn keys<'a>(collection: &Collection, objects: &'a Objects) -> Box<dyn Iterator<Item = &'a String> + 'a> {
    match collection {
        Collection::Pods { .. } => Box::new(objects.pods.keys()),
        Collection::Nodes => Box::new(objects.nodes.keys()),
    }
}

/// Answers a list request: the list JSON, or the Status to answer instead.
pub(crate) fn list(store: &Store, collection: &Collection, query: &ListQuery) -> Result<Value, Status> {
    let prefix = collection.prefix();
    let (objects, revision, start) = match &query.continue_token {
        Some(token) => {
            if query.resource_version.as_deref().is_some_and(|rv| !rv.is_empty()) {
                return Err(Status::bad_request("specifying resource version is not allowed when using continue"));
            }
            let (start, rv) =
                decode_continue(token).map_err(|e| Status::bad_request(format!("invalid continue token: {e}")))?;
            if rv == -1 {
                (store.current(), store.revision, Some(start))
            } else {
                match store.at(rv) {
                    Some(objects) => (objects, rv, Some(start)),
                    None => {
                        let inconsistent = encode_continue(&start, -1);
                        return Err(Status::continue_expired(&inconsistent));
                    }
                }
            }
        }
        None => (store.current(), store.revision, None),
    };

    let from = format!("{prefix}{}", start.unwrap_or_default());
    let candidates: Vec<&String> =
        keys(collection, &objects).filter(|k| k.starts_with(&prefix) && **k >= from).collect();
    let mut items = Vec::new();
    let mut last_examined: Option<&String> = None;
    let mut examined = 0usize;
    for key in &candidates {
        if query.limit > 0 && items.len() as i64 >= query.limit {
            break;
        }
        examined += 1;
        last_examined = Some(key);
        if let Some(item) = matches(collection, &objects, key, query) {
            items.push(item);
        }
    }
    let has_more = query.limit > 0 && examined < candidates.len();

    let mut metadata = serde_json::Map::new();
    metadata.insert("resourceVersion".into(), json!(revision.to_string()));
    if has_more && let Some(last) = last_examined {
        let start_key = format!("{}\u{0}", &last[prefix.len()..]);
        metadata.insert("continue".into(), json!(encode_continue(&start_key, revision)));
        if query.labels.is_empty() && query.fields.is_empty() {
            metadata.insert("remainingItemCount".into(), json!(candidates.len() - examined));
        }
    }
    Ok(json!({
        "kind": collection.list_kind(),
        "apiVersion": "v1",
        "metadata": metadata,
        "items": items,
    }))
}
