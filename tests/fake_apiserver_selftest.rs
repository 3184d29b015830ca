//! The fake API server (tests/fake_apiserver/), driven by kube-rs, the client the product uses,
//! and by raw HTTP / WebSocket where the wire shape itself is the point. Exec tests that need
//! network namespaces bring up a small lab (tests/lab/lab.sh; needs root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fake_apiserver;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fake_apiserver::{ExecOutcome, FakeApiServer, FakeCluster, FakeNode, FakePod};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;
use tokio::io::AsyncReadExt;

const NS: &str = "monitoring";
const SERVER_SELECTOR: &str = "app.kubernetes.io/component=server,app.kubernetes.io/name=iperf3-monitor";
const USER: &str = "system:serviceaccount:monitoring:iperf3-monitor";
/// Every test's upper bound: a hung exec or list fails the test instead of the run.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, fut).await.expect("test timed out")
}

/// A kube client configured the way the product is outside a cluster: from a kubeconfig file.
async fn client_from_kubeconfig(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("reading the kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kube config");
    Client::try_from(config).expect("kube client")
}

async fn client(server: &FakeApiServer, dir: &Path) -> Client {
    client_from_kubeconfig(&server.kubeconfig(dir, NS)).await
}

fn api_error(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(status) => *status,
        other => panic!("expected kube::Error::Api, got {other:?}"),
    }
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
}

/// Pods n1..n7 in `monitoring` (n3 and n6 without the server labels) and two in `other`.
/// The pods API of namespace NS through a real client of `server`; the directory holds its
/// kubeconfig (keep it while the client is in use).
async fn pods_api(server: &FakeApiServer) -> (tempfile::TempDir, Api<Pod>) {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::namespaced(client(server, dir.path()).await, NS);
    (dir, api)
}

fn paging_cluster() -> FakeCluster {
    let mut pods = Vec::new();
    for i in 1..=7 {
        let mut pod = FakePod::running(NS, &format!("server-{i}"), &format!("node-{i}"), &format!("198.18.69.{i}"));
        if i == 3 || i == 6 {
            pod.labels = BTreeMap::from([("app".to_string(), "other".to_string())]);
        }
        pods.push(pod);
    }
    pods.push(FakePod::running("other", "server-a", "node-1", "198.18.69.101"));
    pods.push(FakePod::running("a-first", "server-z", "node-2", "198.18.69.102"));
    FakeCluster { pods, ..FakeCluster::default() }
}

/// Lists every page with `limit`, returning each page's names and the continue tokens seen.
async fn list_pages(api: &Api<Pod>, selector: &str, limit: u32) -> (Vec<Vec<String>>, Vec<String>) {
    let mut pages = Vec::new();
    let mut tokens = Vec::new();
    let mut params = ListParams::default().labels(selector).limit(limit);
    loop {
        let page = api.list(&params).await.expect("listing a page");
        pages.push(names(&page.items));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => {
                params = params.continue_token(&token);
                tokens.push(token);
            }
            None => return (pages, tokens),
        }
    }
}

#[tokio::test]
async fn lists_pods_page_by_page_with_kube_rs() {
    within(async {
        let server = FakeApiServer::start(paging_cluster());
        let dir = tempfile::tempdir().unwrap();
        let client = client(&server, dir.path()).await;
        let api: Api<Pod> = Api::namespaced(client.clone(), NS);

        let (pages, tokens) = list_pages(&api, SERVER_SELECTOR, 2).await;
        // Five matching pods in name order; pages fill across non-matching pods.
        assert_eq!(pages, [vec!["server-1", "server-2"], vec!["server-4", "server-5"], vec!["server-7"]]);
        assert_eq!(tokens.len(), 2);
        for token in &tokens {
            let decoded: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token).expect("base64url")).unwrap();
            assert_eq!(decoded["v"], "meta.k8s.io/v1", "{decoded}");
            assert!(decoded["rv"].as_i64().unwrap() > 0);
            assert!(decoded["start"].as_str().unwrap().ends_with('\u{0}'));
        }

        // Every page of one list is read at the first page's revision: a pod deleted between
        // pages still shows up, and the list's resourceVersion does not move.
        let first = api.list(&ListParams::default().labels(SERVER_SELECTOR).limit(2)).await.unwrap();
        server.delete_pod(NS, "server-7");
        let token = first.metadata.continue_.clone().unwrap();
        let mut rest = Vec::new();
        let mut params = ListParams::default().labels(SERVER_SELECTOR).limit(2).continue_token(&token);
        loop {
            let page = api.list(&params).await.unwrap();
            assert_eq!(page.metadata.resource_version, first.metadata.resource_version);
            rest.extend(names(&page.items));
            match page.metadata.continue_ {
                Some(t) => params = params.continue_token(&t),
                None => break,
            }
        }
        assert_eq!(rest, ["server-4", "server-5", "server-7"]);
        let fresh = api.list(&ListParams::default().labels(SERVER_SELECTOR)).await.unwrap();
        assert_eq!(names(&fresh.items), ["server-1", "server-2", "server-4", "server-5"]);
        assert_ne!(fresh.metadata.resource_version, first.metadata.resource_version);

        // Across namespaces: etcd key order (namespace/name); without a selector the server
        // also counts what remains.
        let all: Api<Pod> = Api::all(client);
        let page = all.list(&ListParams::default().limit(3)).await.unwrap();
        assert_eq!(names(&page.items), ["server-z", "server-1", "server-2"]);
        assert_eq!(page.metadata.remaining_item_count, Some(5));
        let filtered = all.list(&ListParams::default().labels(SERVER_SELECTOR).limit(3)).await.unwrap();
        assert_eq!(filtered.metadata.remaining_item_count, None);

        // The client asked what we think it asked.
        let requests = server.requests();
        let last =
            requests.iter().rev().find(|r| r.path == "/api/v1/pods" && r.param("labelSelector").is_some()).unwrap();
        assert_eq!(last.param("labelSelector"), Some(SERVER_SELECTOR));
        assert_eq!(last.param("limit"), Some("3"));
        assert!(requests.iter().all(|r| r.header("authorization") == Some("Bearer fake-token")));
        assert!(requests.iter().all(|r| r.status == 200), "{requests:?}");
    })
    .await;
}

#[tokio::test]
async fn a_filtered_list_can_end_on_an_empty_page() {
    within(async {
        // As etcd pages: a full page gets a continue token if any key follows, matching or not.
        let mut cluster = paging_cluster();
        cluster.pods.retain(|p| p.namespace == NS && p.name != "server-7");
        let server = FakeApiServer::start(cluster);
        let (_dir, api) = pods_api(&server).await;
        let (pages, _) = list_pages(&api, SERVER_SELECTOR, 2).await;
        assert_eq!(pages, [vec!["server-1", "server-2"], vec!["server-4", "server-5"], vec![]]);
    })
    .await;
}

#[tokio::test]
async fn label_and_field_selectors_follow_kubernetes_semantics() {
    within(async {
        let pods = vec![
            FakePod::running(NS, "a", "node-1", "198.18.69.1").label("tier", "gold"),
            FakePod::running(NS, "b", "node-2", "198.18.69.2").label("tier", "silver"),
            FakePod::running(NS, "c", "node-3", "198.18.69.3"),
            FakePod::running(NS, "d", "node-3", "198.18.69.4").phase("Pending").ready(false),
        ];
        let server = FakeApiServer::start(FakeCluster { pods, ..FakeCluster::default() });
        let (_dir, api) = pods_api(&server).await;
        let select = |labels: &'static str, fields: &'static str| {
            let api = api.clone();
            async move { names(&api.list(&ListParams::default().labels(labels).fields(fields)).await.unwrap().items) }
        };
        assert_eq!(select("tier=gold", "").await, ["a"]);
        assert_eq!(select("tier==silver", "").await, ["b"]);
        assert_eq!(select("tier!=gold", "").await, ["b", "c", "d"], "!= matches pods without the label");
        assert_eq!(select("tier", "").await, ["a", "b"]);
        assert_eq!(select("!tier", "").await, ["c", "d"]);
        assert_eq!(select("tier in (gold, silver)", "").await, ["a", "b"]);
        assert_eq!(select("tier notin (gold)", "").await, ["b", "c", "d"]);
        assert_eq!(select("app.kubernetes.io/component=server,tier", "").await, ["a", "b"]);
        assert_eq!(select("", "spec.nodeName=node-3").await, ["c", "d"]);
        assert_eq!(select("", "status.phase=Running,spec.nodeName!=node-1").await, ["b", "c"]);

        let bad = api_error(api.list(&ListParams::default().labels("tier in gold")).await.unwrap_err());
        assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"), "{bad:?}");
        let bad = api_error(api.list(&ListParams::default().fields("spec.image=x")).await.unwrap_err());
        assert_eq!((bad.code, bad.message.as_str()), (400, "field label not supported: spec.image"));
    })
    .await;
}

/// GET with the fake's CA, as raw JSON and headers.
async fn raw_get(server: &FakeApiServer, path: &str, token: Option<&str>) -> (u16, String, Value) {
    let ca = reqwest::Certificate::from_pem(server.ca_pem.as_bytes()).unwrap();
    let http = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
    let mut request = http.get(format!("{}{path}", server.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("raw request");
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = response.text().await.unwrap();
    (status, content_type, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

#[tokio::test]
async fn objects_have_the_real_wire_shape() {
    within(async {
        let pods = vec![
            FakePod::running(NS, "ready", "node-1", "198.18.69.1"),
            FakePod::running(NS, "unready", "node-2", "198.18.69.2").ready(false),
            FakePod {
                node_name: None,
                pod_ip: None,
                phase: "Pending".into(),
                ready: false,
                ..FakePod::running(NS, "unscheduled", "x", "x")
            },
        ];
        let nodes = vec![FakeNode::new("node-1").label("topology.kubernetes.io/zone", "zone-a")];
        let server = FakeApiServer::start(FakeCluster { pods, nodes, ..FakeCluster::default() });

        let (status, content_type, list) =
            raw_get(&server, "/api/v1/namespaces/monitoring/pods", Some("fake-token")).await;
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        assert_eq!((list["kind"].as_str(), list["apiVersion"].as_str()), (Some("PodList"), Some("v1")));
        assert!(list["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().is_ok());
        let ready = &list["items"][0];
        assert!(ready.get("kind").is_none(), "list items carry no kind: {ready}");
        let meta = &ready["metadata"];
        for field in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
            assert!(meta[field].is_string(), "metadata.{field}: {meta}");
        }
        assert_eq!(meta["labels"]["app.kubernetes.io/component"], "server");
        // The bulk of a real pod that no client reads: one entry per writer.
        let managers: Vec<&str> =
            meta["managedFields"].as_array().unwrap().iter().map(|m| m["manager"].as_str().unwrap()).collect();
        assert_eq!(managers, ["kube-controller-manager", "kwok"]);
        assert!(meta["managedFields"][1]["fieldsV1"]["f:status"]["f:conditions"]["k:{\"type\":\"Ready\"}"].is_object());
        assert!(meta["managedFields"][0]["fieldsV1"]["f:spec"]["f:containers"]["k:{\"name\":\"iperf3\"}"].is_object());
        assert_eq!(ready["spec"]["nodeName"], "node-1");
        assert_eq!(ready["spec"]["containers"][0]["name"], "iperf3");
        let port = &ready["spec"]["containers"][0]["ports"][0];
        assert_eq!(
            (&port["name"], &port["containerPort"], &port["protocol"]),
            (&Value::from("iperf3"), &Value::from(5201), &Value::from("TCP"))
        );
        assert_eq!(ready["status"]["phase"], "Running");
        assert_eq!(ready["status"]["podIP"], "198.18.69.1");
        assert_eq!(ready["status"]["podIPs"][0]["ip"], "198.18.69.1");
        assert_eq!(ready["status"]["hostIP"], "198.18.69.1");
        assert_eq!(ready["status"]["containerStatuses"][0]["ready"], true);
        let condition = |pod: &Value, kind: &str| -> String {
            let conditions = pod["status"]["conditions"].as_array().unwrap();
            conditions
                .iter()
                .find(|c| c["type"] == kind)
                .map(|c| c["status"].as_str().unwrap().to_string())
                .unwrap_or_default()
        };
        for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert_eq!(condition(ready, kind), "True", "{kind}");
        }
        let unready = &list["items"][1];
        assert_eq!(unready["metadata"]["name"], "unready");
        assert_eq!(
            (condition(unready, "Ready"), condition(unready, "ContainersReady")),
            ("False".into(), "False".into())
        );
        assert_eq!(unready["status"]["containerStatuses"][0]["ready"], false);
        let unscheduled = &list["items"][2];
        assert_eq!(condition(unscheduled, "PodScheduled"), "False");
        assert!(unscheduled["spec"].get("nodeName").is_none() && unscheduled["status"].get("podIP").is_none());

        let (_, _, pod) = raw_get(&server, "/api/v1/namespaces/monitoring/pods/ready", Some("fake-token")).await;
        assert_eq!((pod["kind"].as_str(), pod["apiVersion"].as_str()), (Some("Pod"), Some("v1")));
        let (_, _, node) = raw_get(&server, "/api/v1/nodes/node-1", Some("fake-token")).await;
        assert_eq!(node["kind"], "Node");
        assert_eq!(node["metadata"]["labels"]["topology.kubernetes.io/zone"], "zone-a");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "node-1");

        // And kube-rs / k8s-openapi read all of it into typed objects.
        let dir = tempfile::tempdir().unwrap();
        let client = client(&server, dir.path()).await;
        let typed = Api::<Pod>::namespaced(client.clone(), NS).get("unready").await.unwrap();
        let conditions = typed.status.unwrap().conditions.unwrap();
        assert!(conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False"));
        let node = Api::<Node>::all(client).get("node-1").await.unwrap();
        assert_eq!(node.metadata.labels.unwrap()["topology.kubernetes.io/zone"], "zone-a");
    })
    .await;
}

#[tokio::test]
async fn errors_are_status_objects_like_the_real_server() {
    within(async {
        let server = FakeApiServer::start(paging_cluster());
        let dir = tempfile::tempdir().unwrap();
        let client = client(&server, dir.path()).await;
        let api: Api<Pod> = Api::namespaced(client.clone(), NS);

        let missing = api_error(api.get("nope").await.unwrap_err());
        assert_eq!((missing.code, missing.reason.as_str(), missing.message.as_str()), (404, "NotFound", "pods \"nope\" not found"));

        server.deny("list", "pods", Some(NS));
        let denied = api_error(api.list(&ListParams::default()).await.unwrap_err());
        assert_eq!((denied.code, denied.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            denied.message,
            format!("pods is forbidden: User \"{USER}\" cannot list resource \"pods\" in API group \"\" in the namespace \"monitoring\"")
        );
        // Only in that namespace.
        Api::<Pod>::namespaced(client.clone(), "other").list(&ListParams::default()).await.unwrap();

        server.deny("list", "nodes", None);
        let nodes = api_error(Api::<Node>::all(client.clone()).list(&ListParams::default()).await.unwrap_err());
        assert_eq!(
            nodes.message,
            format!("nodes is forbidden: User \"{USER}\" cannot list resource \"nodes\" in API group \"\" at the cluster scope")
        );

        let (status, _, body) = raw_get(&server, "/api/v1/namespaces/monitoring/pods", Some("wrong")).await;
        assert_eq!((status, &body["reason"], &body["kind"], &body["apiVersion"]), (401, &Value::from("Unauthorized"), &Value::from("Status"), &Value::from("v1")));
        let wrong = client_from_kubeconfig(&server.kubeconfig_with_token(dir.path(), NS, "wrong")).await;
        let unauthorized = api_error(Api::<Pod>::namespaced(wrong, NS).list(&ListParams::default()).await.unwrap_err());
        assert_eq!((unauthorized.code, unauthorized.message.as_str()), (401, "Unauthorized"));
        let (status, _, body) = raw_get(&server, "/api/v1/namespaces/other/pods", None).await;
        assert_eq!(status, 403);
        assert!(body["message"].as_str().unwrap().contains("User \"system:anonymous\" cannot list"), "{body}");

        let (status, _, body) = raw_get(&server, "/apis/apps/v1/daemonsets", Some("fake-token")).await;
        assert_eq!((status, body["message"].as_str()), (404, Some("the server could not find the requested resource")));
        assert_eq!(body["status"], "Failure");

        let rejected: Vec<u16> = server.requests().iter().map(|r| r.status).filter(|s| *s >= 400).collect();
        assert_eq!(rejected, [404, 403, 403, 401, 401, 403, 404]);
    })
    .await;
}

#[tokio::test]
async fn expired_continue_tokens_answer_410_expired() {
    within(async {
        let server = FakeApiServer::start(paging_cluster());
        let (_dir, api) = pods_api(&server).await;
        let first = api.list(&ListParams::default().limit(2)).await.unwrap();
        let token = first.metadata.continue_.unwrap();
        server.expire_continue_tokens();

        let expired = api_error(api.list(&ListParams::default().limit(2).continue_token(&token)).await.unwrap_err());
        assert_eq!((expired.code, expired.reason.as_str()), (410, "Expired"));
        assert_eq!(
            expired.message,
            "The provided continue parameter is too old to display a consistent list result. You can start a new \
             list without the continue parameter, or use the continue token in this response to retrieve the \
             remainder of the results. Continuing with the provided token results in an inconsistent list - objects \
             that were created, modified, or deleted between the time the first chunk was returned and now may show \
             up in the list."
        );
        // The token in the Status continues, inconsistently, from the latest revision.
        let inconsistent = expired.metadata.and_then(|m| m.continue_).expect("a continue token in the 410 Status");
        let rest = api.list(&ListParams::default().continue_token(&inconsistent)).await.unwrap();
        assert_eq!(names(&rest.items), ["server-3", "server-4", "server-5", "server-6", "server-7"]);
        // A fresh list works.
        assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 7);

        let garbage = api_error(api.list(&ListParams::default().continue_token("not-a-token")).await.unwrap_err());
        assert_eq!(garbage.code, 400);
        assert!(garbage.message.starts_with("invalid continue token"), "{garbage:?}");
    })
    .await;
}

#[tokio::test]
async fn scripted_failures_and_delays() {
    within(async {
        let server = FakeApiServer::start(paging_cluster());
        let (_dir, api) = pods_api(&server).await;

        server.fail_requests("/api/v1/namespaces/monitoring/pods", 500, 1);
        let failed = api_error(api.list(&ListParams::default()).await.unwrap_err());
        assert_eq!((failed.code, failed.reason.as_str()), (500, "InternalError"));
        api.list(&ListParams::default()).await.expect("only the first request fails");

        // kube-client retries 503 (and 429, 504) by itself: two failures never reach the caller.
        let before = server.requests().len();
        server.fail_requests("/api/v1/namespaces/monitoring/pods", 503, 2);
        api.list(&ListParams::default()).await.expect("kube-client retried the 503s");
        let statuses: Vec<u16> = server.requests()[before..].iter().map(|r| r.status).collect();
        assert_eq!(statuses, [503, 503, 200]);

        // Only requests whose path and query match are affected.
        server.fail_requests("labelSelector=tier", 500, 1);
        api.list(&ListParams::default()).await.unwrap();
        assert_eq!(api_error(api.list(&ListParams::default().labels("tier")).await.unwrap_err()).code, 500);

        server.delay_requests("/pods/server-1", Duration::from_millis(700), 1);
        let started = Instant::now();
        api.get("server-1").await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(700), "{:?}", started.elapsed());
        let started = Instant::now();
        api.get("server-1").await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(700));
    })
    .await;
}

#[tokio::test]
async fn nodes_list_with_labels_and_pages() {
    within(async {
        let nodes = (1..=5)
            .map(|i| {
                FakeNode::new(&format!("node-{i}"))
                    .label("topology.kubernetes.io/zone", if i <= 2 { "zone-a" } else { "zone-b" })
            })
            .collect();
        let server = FakeApiServer::start(FakeCluster { nodes, ..FakeCluster::default() });
        let dir = tempfile::tempdir().unwrap();
        let api: Api<Node> = Api::all(client(&server, dir.path()).await);
        let mut seen = Vec::new();
        let mut params = ListParams::default().limit(2);
        let mut pages = 0;
        loop {
            let page = api.list(&params).await.unwrap();
            pages += 1;
            seen.extend(page.items.iter().map(|n| {
                let labels = n.metadata.labels.clone().unwrap();
                format!("{}:{}", n.metadata.name.clone().unwrap(), labels["topology.kubernetes.io/zone"])
            }));
            match page.metadata.continue_ {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, ["node-1:zone-a", "node-2:zone-a", "node-3:zone-b", "node-4:zone-b", "node-5:zone-b"]);
        let zone_a = api.list(&ListParams::default().labels("topology.kubernetes.io/zone=zone-a")).await.unwrap();
        assert_eq!(zone_a.items.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn pods_turn_unready_and_go_away() {
    within(async {
        let server = FakeApiServer::start(paging_cluster());
        let (_dir, api) = pods_api(&server).await;
        let before = api.get("server-2").await.unwrap();
        server.set_pod_ready(NS, "server-2", false);
        let after = api.get("server-2").await.unwrap();
        let ready = |pod: &Pod| {
            pod.status
                .as_ref()
                .unwrap()
                .conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .unwrap()
                .status
                .clone()
        };
        assert_eq!((ready(&before).as_str(), ready(&after).as_str()), ("True", "False"));
        assert_ne!(before.metadata.resource_version, after.metadata.resource_version);

        server.delete_pod(NS, "server-2");
        assert!(!names(&api.list(&ListParams::default()).await.unwrap().items).contains(&"server-2".to_string()));
        assert_eq!(api_error(api.get("server-2").await.unwrap_err()).code, 404);
        let exec = api.exec("server-2", ["true"], &AttachParams::default()).await.map(|_| ()).unwrap_err();
        let gone = api_error(exec);
        assert_eq!((gone.code, gone.message.as_str()), (404, "pods \"server-2\" not found"));
    })
    .await;
}

/// Runs `argv` in `pod` through kube-rs exec, returning stdout, stderr and the status.
async fn exec(api: &Api<Pod>, pod: &str, argv: &[&str]) -> (String, String, Option<Status>) {
    let params = AttachParams::default().stdout(true).stderr(true).stdin(false);
    let mut attached = api.exec(pod, argv.to_vec(), &params).await.expect("exec upgrade");
    let mut stdout = attached.stdout().unwrap();
    let mut stderr = attached.stderr().unwrap();
    let status = attached.take_status().unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    let (a, b) = tokio::join!(stdout.read_to_string(&mut out), stderr.read_to_string(&mut err));
    a.unwrap();
    b.unwrap();
    (out, err, status.await)
}

fn exit_cause(status: &Status) -> Option<String> {
    let causes = status.details.as_ref()?.causes.as_ref()?;
    causes.iter().find(|c| c.reason.as_deref() == Some("ExitCode")).and_then(|c| c.message.clone())
}

#[tokio::test]
async fn exec_speaks_the_channel_protocol_kube_rs_expects() {
    within(async {
        let mut pending = FakePod::running(NS, "pending", "node-2", "198.18.69.2").phase("Pending").ready(false);
        pending.pod_ip = None;
        let unscheduled = FakePod { node_name: None, ..pending.clone() };
        let mut two = FakePod::running(NS, "two-containers", "node-3", "198.18.69.3");
        two.containers.push("sidecar".into());
        let pods = vec![
            FakePod::running(NS, "host", "node-1", "198.18.69.1"),
            pending,
            FakePod { name: "unscheduled".into(), ..unscheduled },
            two,
        ];
        let server = FakeApiServer::start(FakeCluster { pods, ..FakeCluster::default() });
        let (_dir, api) = pods_api(&server).await;

        let (out, err, status) = exec(&api, "host", &["sh", "-c", "echo out; echo err >&2; exit 3"]).await;
        assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
        let status = status.expect("a status on channel 3");
        assert_eq!((status.status.as_deref(), status.reason.as_deref()), (Some("Failure"), Some("NonZeroExitCode")));
        assert_eq!(exit_cause(&status).as_deref(), Some("3"));
        assert_eq!(
            status.message.as_deref(),
            Some("command terminated with non-zero exit code: error executing command [sh -c echo out; echo err >&2; exit 3], exit code 3")
        );
        let (out, _, status) = exec(&api, "host", &["echo", "hello"]).await;
        assert_eq!(out, "hello\n");
        assert_eq!(status.unwrap().status.as_deref(), Some("Success"));

        // What kube-rs sent, and what we answered.
        let upgrade = server.requests().into_iter().find(|r| r.path.ends_with("/exec")).unwrap();
        assert_eq!((upgrade.method.as_str(), upgrade.status), ("GET", 101));
        assert_eq!(upgrade.header("authorization"), Some("Bearer fake-token"));
        assert_eq!(upgrade.header("sec-websocket-protocol"), Some("v5.channel.k8s.io, v4.channel.k8s.io"));
        assert_eq!(upgrade.websocket_protocol.as_deref(), Some("v5.channel.k8s.io"));
        assert_eq!(upgrade.params("command"), ["sh", "-c", "echo out; echo err >&2; exit 3"]);
        assert_eq!((upgrade.param("stdout"), upgrade.param("stderr"), upgrade.param("stdin")), (Some("true"), Some("true"), None));
        assert_eq!(server.execs()[0].outcome, Some(ExecOutcome::Exited(3)));

        // A command the container does not have: the runtime's error, on the status channel.
        let (_, _, status) = exec(&api, "host", &["no-such-iperf3", "-v"]).await;
        let status = status.unwrap();
        assert_eq!((status.reason.as_deref(), status.code), (Some("InternalError"), Some(500)));
        assert!(status.message.unwrap().contains("exec: \"no-such-iperf3\": executable file not found in $PATH"));
        // A pod whose container is not running: upgraded, then the failure on the status channel.
        let (_, _, status) = exec(&api, "pending", &["true"]).await;
        assert_eq!(status.unwrap().message.as_deref(), Some("Internal error occurred: unable to upgrade connection: container not found (\"iperf3\")"));

        // Errors before the upgrade.
        let err = |e: kube::Error| api_error(e);
        let attach = AttachParams::default();
        let bad = err(api.exec("host", ["true"], &AttachParams::default().container("nope")).await.map(|_| ()).unwrap_err());
        assert_eq!((bad.code, bad.message.as_str()), (400, "container nope is not valid for pod host"));
        let bad = err(api.exec("two-containers", ["true"], &attach).await.map(|_| ()).unwrap_err());
        assert_eq!(bad.message, "a container name must be specified for pod two-containers, choose one of: [iperf3 sidecar]");
        let bad = err(api.exec("unscheduled", ["true"], &attach).await.map(|_| ()).unwrap_err());
        assert_eq!((bad.code, bad.message.as_str()), (400, "pod unscheduled does not have a host assigned"));
        server.deny("create", "pods/exec", Some(NS));
        let denied = err(api.exec("host", ["true"], &attach).await.map(|_| ()).unwrap_err());
        assert_eq!((denied.code, denied.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            denied.message,
            format!("pods \"host\" is forbidden: User \"{USER}\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"monitoring\"")
        );
    })
    .await;
}

/// A raw TLS connection to the fake, for WebSocket clients other than kube-rs.
async fn tls_stream(server: &FakeApiServer) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(server.ca_pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let address = server.url.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap()
}

#[tokio::test]
async fn exec_serves_v4_to_clients_that_only_offer_it() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    within(async {
        let server = FakeApiServer::start(FakeCluster {
            pods: vec![FakePod::running(NS, "host", "node-1", "198.18.69.1")],
            ..FakeCluster::default()
        });
        let url = format!(
            "{}/api/v1/namespaces/monitoring/pods/host/exec?command=sh&command=-c&command=echo+v4;exit+2&stdout=true&stderr=true",
            server.url.replace("https://", "wss://")
        );
        let request = |protocols: &str| {
            let mut request = url.as_str().into_client_request().unwrap();
            request.headers_mut().insert("authorization", "Bearer fake-token".parse().unwrap());
            request.headers_mut().insert("sec-websocket-protocol", protocols.parse().unwrap());
            request
        };

        let (mut ws, response) = tokio_tungstenite::client_async(request("v4.channel.k8s.io"), tls_stream(&server).await).await.unwrap();
        assert_eq!(response.headers()["sec-websocket-protocol"], "v4.channel.k8s.io");
        let mut frames = Vec::new();
        while let Some(Ok(message)) = ws.next().await {
            match message {
                Message::Binary(data) => frames.push(data.to_vec()),
                Message::Close(frame) => {
                    assert_eq!(u16::from(frame.unwrap().code), 1000);
                    break;
                }
                _ => {}
            }
        }
        let _ = ws.close(None).await;
        assert_eq!(frames[0], [1], "first an empty frame on the lowest writable channel");
        assert_eq!(frames[1], b"\x01v4\n");
        assert_eq!(frames.last().unwrap()[0], 3);
        let status: Value = serde_json::from_slice(&frames.last().unwrap()[1..]).unwrap();
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0], serde_json::json!({"reason": "ExitCode", "message": "2"}));
        assert!(status.get("kind").is_none() && status.get("code").is_none(), "{status}");

        // No acceptable subprotocol: the kubelet's websocket library answers a bare 403.
        let refused = tokio_tungstenite::client_async(request("base64.channel.k8s.io.v9"), tls_stream(&server).await).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403);
                assert!(response.body().as_ref().is_none_or(|b| b.is_empty()));
            }
            other => panic!("expected a refused handshake, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn deleting_a_pod_kills_its_commands() {
    within(async {
        let server = FakeApiServer::start(FakeCluster {
            pods: vec![FakePod::running(NS, "host", "node-1", "198.18.69.1")],
            ..FakeCluster::default()
        });
        let (_dir, api) = pods_api(&server).await;
        let session = tokio::spawn({
            let api = api.clone();
            async move { exec(&api, "host", &["sleep", "60"]).await }
        });
        wait_for(|| server.execs().first().and_then(|e| e.pid).is_some()).await;
        server.delete_pod(NS, "host");
        let (_, _, status) = session.await.unwrap();
        assert_eq!(exit_cause(&status.unwrap()).as_deref(), Some("137"));
    })
    .await;
}

async fn wait_for(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "condition not met within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn lab_cluster(lab: &common::Lab) -> FakeCluster {
    FakeCluster::lab(&lab.name, lab.subnet, lab.node_count(), NS)
}

fn netns_pids(netns: &str) -> Vec<u32> {
    let output = Command::new("ip").args(["netns", "pids", netns]).output().expect("ip netns pids");
    String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Lab tests hold the lab lock (one lab test at a time on two cores) on a plain thread, with
/// their own runtime, so no lock is held across an await of a shared runtime.
fn block_on<T>(fut: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(within(fut))
}

#[test]
fn exec_runs_commands_in_the_pods_lab_namespace() {
    let _lock = common::lab_lock();
    let lab = common::Lab::up("fk1", 60, &[50, 50], &[]);
    block_on(async {
        let server = FakeApiServer::start(lab_cluster(&lab));
        let (_dir, api) = pods_api(&server).await;

        for i in 1..=2 {
            let (out, _, status) =
                exec(&api, &format!("iperf3-monitor-server-n{i}"), &["ip", "-o", "-4", "addr", "show", "eth0"]).await;
            assert!(out.contains(&format!("inet 198.18.60.{i}/24")), "n{i}: {out}");
            assert_eq!(status.unwrap().status.as_deref(), Some("Success"));
        }

        // A real measurement between two lab nodes, through the exec path.
        let (out, err, status) =
            exec(&api, "iperf3-monitor-server-n1", &["iperf3", "-c", "198.18.60.2", "-J", "-t", "2"]).await;
        assert_eq!(status.unwrap().status.as_deref(), Some("Success"), "{err}");
        let report: Value = serde_json::from_str(&out).expect("iperf3 JSON on stdout");
        let received = report["end"]["sum_received"]["bits_per_second"].as_f64().unwrap();
        assert!((received - 50e6).abs() < 0.15 * 50e6, "received {received} bit/s on a 50 Mbit/s path");
    });
}

#[test]
fn closing_an_exec_early_kills_the_remote_process() {
    let _lock = common::lab_lock();
    let lab = common::Lab::up("fk2", 61, &[50], &[]);
    block_on(async {
        let server = FakeApiServer::start(lab_cluster(&lab));
        let (_dir, api) = pods_api(&server).await;
        let params = AttachParams::default().stdout(true).stderr(true);
        let attached = api.exec("iperf3-monitor-server-n1", ["sleep", "120"], &params).await.unwrap();
        wait_for(|| server.execs().first().and_then(|e| e.pid).is_some()).await;
        let pid = server.execs()[0].pid.unwrap();
        // The command runs in the pod's namespace: the recorded pid is `ip netns exec`'s, which
        // is in it once it has entered it (a moment after it was spawned, on a loaded machine).
        wait_for(|| netns_pids(&lab.namespace(1)).contains(&pid)).await;

        drop(attached); // as a client does when its own timeout fires
        wait_for(|| !netns_pids(&lab.namespace(1)).contains(&pid)).await;
        wait_for(|| server.execs()[0].outcome.is_some()).await;
        assert_eq!(server.execs()[0].outcome, Some(ExecOutcome::ClientClosed));
    });
}
