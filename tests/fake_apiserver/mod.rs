//! A fake Kubernetes API server that speaks the real wire protocol, for tests of the Kubernetes
//! code path (discovery through the pods/nodes API, clients run through pods/exec).
//!
//! Use it from a test file with `mod fake_apiserver;`:
//!
//! ```ignore
//! let lab = common::Lab::up("fk1", 60, &[50, 50], &[]);                  // tests/lab/lab.sh
//! let mut cluster = FakeCluster::lab(&lab.name, lab.subnet, lab.node_count(), "monitoring");
//! cluster.pods[1].ready = false;
//! let server = FakeApiServer::start(cluster);                            // drop stops it
//! let kubeconfig = server.kubeconfig(dir.path(), "monitoring");          // KUBECONFIG=...
//! server.deny("create", "pods/exec", Some("monitoring"));               // RBAC 403 from now on
//! server.fail_requests("/api/v1/namespaces/monitoring/pods", 500, 1);    // next matching request
//! // ... run the binary ...
//! assert!(server.requests().iter().all(|r| r.header("authorization") == Some("Bearer fake-token")));
//! assert!(server.execs().iter().all(|e| e.protocol == "v5.channel.k8s.io"));
//! ```
//!
//! # API
//! - [`FakeCluster`] `{ pods, nodes, token, service_account }` (Default: no objects, token
//!   `fake-token`, service account `monitoring/iperf3-monitor`); `FakeCluster::lab(lab, subnet,
//!   node_count, namespace)` builds the chart's server pods for a lab, `.with_pod_network(lab,
//!   subnet)` adds the pod-network DaemonSet's (select both with [`BOTH_NETWORKS_SELECTOR`]).
//! - [`FakePod`] (`FakePod::running(ns, name, node, ip)` plus `.on_pod_network(host_ip)`,
//!   `.in_netns()`, `.with_path()`, `.ready()`,
//!   `.phase()`, `.label()`, `.created_at()`), [`FakeNode`] (`FakeNode::new(name).label(k, v)`).
//! - [`FakeApiServer`]: `start(cluster)`, `url`, `ca_pem`, `kubeconfig(dir, namespace)`,
//!   `kubeconfig_with_token(dir, namespace, token)`, `requests()` ([`RecordedRequest`]),
//!   `execs()` ([`ExecRecord`]), `deny(verb, resource, namespace)`,
//!   `fail_requests(path_contains, status, times)`, `delay_requests(path_contains, delay, times)`,
//!   `expire_continue_tokens()`, `set_pod_ready(namespace, name, ready)`,
//!   `delete_pod(namespace, name)`.
//!
//! # What it serves
//! Over https (a generated CA, given to clients as `certificate-authority-data`), HTTP/1.1:
//! - `GET /api/v1/namespaces/{ns}/pods`, `GET /api/v1/pods`, `GET /api/v1/nodes`: `PodList` /
//!   `NodeList` with `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (..)`,
//!   `k notin (..)`), `fieldSelector` (the fields the real strategies index, e.g.
//!   `spec.nodeName`, `status.phase`), `limit` and `continue` paged exactly as the etcd3 store
//!   does (see `list.rs`), items in etcd key order (namespace/name). Pods carry `managedFields`
//!   as a real server's do (the controller's and kwok's entries; about 3 KB of a 7 KB pod).
//! - `GET /api/v1/namespaces/{ns}/pods/{name}`, `GET /api/v1/nodes/{name}`, `GET /version`.
//! - `GET|POST /api/v1/namespaces/{ns}/pods/{name}/exec`: WebSocket with the channel protocol
//!   (`v5.channel.k8s.io` when offered, as the 1.30+ API server's stream translator answers,
//!   else `v4.channel.k8s.io`, as the kubelet does); the command runs as
//!   `ip netns exec <pod netns> argv…` (no shell), or directly on the host for a pod without
//!   `netns`. Output streams to channels 1 and 2 as it comes, the exit status goes to channel 3.
//!   When the client closes the connection first, the command's process group is killed.
//!   A real cluster does not promise that: bound remote commands on their own too.
//! - Errors are `Status` objects shaped as the real server's: 401 for a wrong bearer token,
//!   403 as `system:anonymous` without one, 403 RBAC (see [`FakeApiServer::deny`]), 404, 400,
//!   410 Expired (see [`FakeApiServer::expire_continue_tokens`]) and scripted failures.
//!
//! Not served: watch, writes (create/update/patch/delete through the API), protobuf, HTTP/2,
//! TTY exec (a `tty=true` exec runs without a terminal), the base64 and pre-v4 channel
//! protocols.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

mod exec;
mod http;
mod list;
mod objects;
mod selector;
mod status;
mod store;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The cluster the fake serves.
#[derive(Debug, Clone)]
pub struct FakeCluster {
    pub pods: Vec<FakePod>,
    pub nodes: Vec<FakeNode>,
    /// The bearer token clients must send; anything else answers 401.
    pub token: String,
    /// (namespace, name) of the service account the token belongs to, named in 403 messages
    /// as `system:serviceaccount:<namespace>:<name>`.
    pub service_account: (String, String),
}

impl Default for FakeCluster {
    fn default() -> FakeCluster {
        FakeCluster {
            pods: Vec::new(),
            nodes: Vec::new(),
            token: "fake-token".into(),
            service_account: ("monitoring".into(), "iperf3-monitor".into()),
        }
    }
}

impl FakeCluster {
    /// The chart's server pods for a lab made by `tests/lab/lab.sh up <lab> --subnet <subnet>`:
    /// pod `iperf3-monitor-server-n<i>` in `namespace` on node `n<i>`, at 198.18.<subnet>.<i>,
    /// exec'ing into network namespace `<lab>-n<i>`; one node `n<i>` each.
    pub fn lab(lab: &str, subnet: u8, node_count: usize, namespace: &str) -> FakeCluster {
        let pods = (1..=node_count)
            .map(|i| {
                let node = format!("n{i}");
                FakePod::running(
                    namespace,
                    &format!("iperf3-monitor-server-{node}"),
                    &node,
                    &format!("198.18.{subnet}.{i}"),
                )
                .in_netns(&format!("{lab}-{node}"))
            })
            .collect();
        let nodes = (1..=node_count).map(|i| FakeNode::new(&format!("n{i}"))).collect();
        FakeCluster { pods, nodes, ..FakeCluster::default() }
    }

    /// Adds the chart's second DaemonSet (server.podNetwork.enabled) for a lab made with
    /// `lab.sh up <lab> --subnet <subnet> --pod-network FRACTION`: on each node `n<i>` of the
    /// host-network pods, pod `iperf3-monitor-server-pod-n<i>` (component `server-pod`, not
    /// hostNetwork) at 198.18.<subnet>.(100+i), hostIP the node's, exec'ing into `<lab>-p<i>`.
    pub fn with_pod_network(mut self, lab: &str, subnet: u8) -> FakeCluster {
        let nodes: Vec<(String, String)> = self
            .pods
            .iter()
            .filter(|p| p.host_network)
            .filter_map(|p| Some((p.node_name.clone()?, p.pod_ip.clone()?)))
            .collect();
        for (node, host_ip) in nodes {
            let i: u8 = node[1..].parse().expect("lab nodes are n<i>");
            let pod = FakePod::running(
                &self.pods[0].namespace,
                &format!("iperf3-monitor-server-pod-{node}"),
                &node,
                &format!("198.18.{subnet}.{}", 100 + u16::from(i)),
            )
            .on_pod_network(&host_ip)
            .label("app.kubernetes.io/component", "server-pod")
            .in_netns(&format!("{lab}-p{i}"));
            self.pods.push(pod);
        }
        self
    }
}

/// The label selector the chart gives the job with server.podNetwork.enabled (both DaemonSets).
pub const BOTH_NETWORKS_SELECTOR: &str = "app.kubernetes.io/component in (server,server-pod),\
    app.kubernetes.io/instance=iperf3-monitor,app.kubernetes.io/name=iperf3-monitor";

/// A pod, served as the chart's iperf3 server pod (hostNetwork unless [`FakePod::on_pod_network`],
/// container `iperf3` with the TCP port named `iperf3`, 5201, and `iperf3-udp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePod {
    pub namespace: String,
    pub name: String,
    /// `spec.nodeName`; None is an unscheduled pod.
    pub node_name: Option<String>,
    /// `status.podIP` (and hostIP, for a hostNetwork pod).
    pub pod_ip: Option<String>,
    /// More of `status.podIPs` (and hostIPs, for a hostNetwork pod) after podIP: a dual-stack
    /// pod's other family.
    pub more_ips: Vec<String>,
    /// `spec.hostNetwork`; false: a pod-network pod, with its own podIP.
    pub host_network: bool,
    /// `status.hostIPs` of a pod-network pod (its node's addresses); a hostNetwork pod's are
    /// its podIPs.
    pub host_ips: Vec<String>,
    /// `status.phase`: Running, Pending, Succeeded, Failed, Unknown.
    pub phase: String,
    /// The Ready and ContainersReady conditions (only ever True while Running).
    pub ready: bool,
    pub labels: BTreeMap<String, String>,
    /// The lab network namespace exec runs commands in; None runs them on the host.
    pub netns: Option<String>,
    /// `PATH` of the container (its image's programs), where exec looks up commands; None
    /// uses the test process's.
    pub path: Option<String>,
    /// Container names; the first is the iperf3 server.
    pub containers: Vec<String>,
    /// `metadata.creationTimestamp`, RFC 3339.
    pub created_at: String,
}

/// The labels of the chart's server pods (chart/templates/_helpers.tpl, server-daemonset.yaml).
pub fn server_labels() -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", "iperf3-monitor"),
        ("app.kubernetes.io/instance", "iperf3-monitor"),
        ("app.kubernetes.io/component", "server"),
        ("app.kubernetes.io/managed-by", "Helm"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl FakePod {
    /// A Running, Ready server pod with the chart's labels and one container `iperf3`.
    pub fn running(namespace: &str, name: &str, node: &str, ip: &str) -> FakePod {
        FakePod {
            namespace: namespace.into(),
            name: name.into(),
            node_name: Some(node.into()),
            pod_ip: Some(ip.into()),
            more_ips: Vec::new(),
            host_network: true,
            host_ips: Vec::new(),
            phase: "Running".into(),
            ready: true,
            labels: server_labels(),
            netns: None,
            path: None,
            containers: vec!["iperf3".into()],
            created_at: "2025-06-02T10:00:00Z".into(),
        }
    }

    /// A dual-stack pod: `ip` follows podIP in `status.podIPs`.
    pub fn also_ip(mut self, ip: &str) -> FakePod {
        self.more_ips.push(ip.into());
        self
    }

    /// A pod on the pod network (`spec.hostNetwork: false`): podIP stays its own, hostIP is
    /// `host_ip`, its node's.
    pub fn on_pod_network(mut self, host_ip: &str) -> FakePod {
        self.host_network = false;
        self.host_ips = vec![host_ip.into()];
        self
    }

    pub fn in_netns(mut self, netns: &str) -> FakePod {
        self.netns = Some(netns.into());
        self
    }

    /// Exec'd commands are looked up in `path` (and run with it as `PATH`), as in a container
    /// whose image holds them.
    pub fn with_path(mut self, path: &str) -> FakePod {
        self.path = Some(path.into());
        self
    }

    pub fn ready(mut self, ready: bool) -> FakePod {
        self.ready = ready;
        self
    }

    pub fn phase(mut self, phase: &str) -> FakePod {
        self.phase = phase.into();
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> FakePod {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn created_at(mut self, timestamp: &str) -> FakePod {
        self.created_at = timestamp.into();
        self
    }
}

/// A node. The kubelet's own labels (`kubernetes.io/hostname`, `kubernetes.io/os`, ...) are
/// added when served; these win over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeNode {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl FakeNode {
    pub fn new(name: &str) -> FakeNode {
        FakeNode { name: name.into(), labels: BTreeMap::new() }
    }

    pub fn label(mut self, key: &str, value: &str) -> FakeNode {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// One request as the server saw it, with the status it answered (101 for an exec upgrade).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Query pairs in order, percent-decoded (repeated keys such as `command` appear repeatedly).
    pub query: Vec<(String, String)>,
    /// All request headers, names lowercase.
    pub headers: Vec<(String, String)>,
    pub status: u16,
    /// The WebSocket subprotocol the server chose, for exec upgrades.
    pub websocket_protocol: Option<String>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The first value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of query parameter `key`, in order.
    pub fn params(&self, key: &str) -> Vec<&str> {
        self.query.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }
}

/// An exec session that got past the upgrade.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
    /// The negotiated subprotocol, e.g. `v5.channel.k8s.io`.
    pub protocol: String,
    /// The process id (= process group id) of the command, once started.
    pub pid: Option<u32>,
    /// None while running.
    pub outcome: Option<ExecOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutcome {
    /// The command exited (128 + signal when killed by one); the status was sent.
    Exited(i32),
    /// The client closed the connection first; the command's process group was killed.
    ClientClosed,
    /// No process ran; the status channel carried this message (e.g. container not running,
    /// executable not found).
    NotStarted(String),
}

/// A running fake API server; dropping it stops it and kills commands still running in exec
/// sessions.
#[derive(Debug)]
pub struct FakeApiServer {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The CA that signed the serving certificate, PEM.
    pub ca_pem: String,
    token: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Denial {
    verb: String,
    resource: String,
    namespace: Option<String>,
}

#[derive(Debug)]
struct Scripted {
    path_contains: String,
    remaining: usize,
}

/// State shared between the test thread and the server's runtime.
#[derive(Debug)]
struct Shared {
    token: String,
    /// `system:serviceaccount:<ns>:<name>`.
    user: String,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    store: store::Store,
    denials: Vec<Denial>,
    failures: Vec<(Scripted, u16)>,
    delays: Vec<(Scripted, Duration)>,
    /// Path and query of every request as it arrived, before any scripted delay.
    arrived: Vec<String>,
    requests: Vec<RecordedRequest>,
    execs: Vec<ExecRecord>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn take_scripted<T: Clone>(rules: &mut [(Scripted, T)], target: &str) -> Option<T> {
    let rule = rules.iter_mut().find(|(s, _)| s.remaining > 0 && target.contains(&s.path_contains))?;
    rule.0.remaining -= 1;
    Some(rule.1.clone())
}

impl FakeApiServer {
    /// Starts the server on a free 127.0.0.1 port, on its own thread and tokio runtime.
    pub fn start(cluster: FakeCluster) -> FakeApiServer {
        Self::start_on(cluster, "127.0.0.1")
    }

    /// Starts the server on a free port of `host` (e.g. a lab bridge's host address, for a job
    /// that runs inside a lab namespace).
    pub fn start_on(cluster: FakeCluster, host: &str) -> FakeApiServer {
        let serving = tls::serving_tls(host).expect("generating the fake API server's certificates");
        let listener = std::net::TcpListener::bind((host, 0)).expect("binding the fake API server");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let port = listener.local_addr().expect("listener address").port();
        let (ns, sa) = &cluster.service_account;
        let shared = Arc::new(Shared {
            token: cluster.token.clone(),
            user: format!("system:serviceaccount:{ns}:{sa}"),
            state: Mutex::new(State {
                store: store::Store::new(&cluster),
                denials: Vec::new(),
                failures: Vec::new(),
                delays: Vec::new(),
                arrived: Vec::new(),
                requests: Vec::new(),
                execs: Vec::new(),
            }),
        });
        let (shutdown, stop) = tokio::sync::oneshot::channel();
        let server_shared = shared.clone();
        let config = serving.config.clone();
        let thread = std::thread::Builder::new()
            .name("fake-apiserver".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake API server runtime");
                runtime.block_on(http::serve(listener, config, server_shared, stop));
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .expect("spawning the fake API server thread");
        FakeApiServer {
            url: format!("https://{host}:{port}"),
            ca_pem: serving.ca_pem,
            token: cluster.token,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Writes `dir/kubeconfig`: one cluster (server URL, CA data), one user (the bearer token),
    /// one context with `namespace`, made current.
    pub fn kubeconfig(&self, dir: &Path, namespace: &str) -> PathBuf {
        self.kubeconfig_with_token(dir, namespace, &self.token)
    }

    /// As [`FakeApiServer::kubeconfig`], with another token (e.g. a wrong one, for 401).
    pub fn kubeconfig_with_token(&self, dir: &Path, namespace: &str, token: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        let ca = STANDARD.encode(&self.ca_pem);
        let text = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fake\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n\
             users:\n\
             - name: fake-sa\n  user:\n    token: {token}\n\
             contexts:\n\
             - name: fake\n  context:\n    cluster: fake\n    user: fake-sa\n    namespace: {namespace}\n\
             current-context: fake\n\
             preferences: {{}}\n",
            url = self.url,
        );
        std::fs::write(&path, text).expect("writing the kubeconfig");
        path
    }

    /// Path and query of every request so far, in the order they arrived: answered or not.
    pub fn arrived(&self) -> Vec<String> {
        self.shared.lock().arrived.clone()
    }

    /// Every request so far, in the order they were answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every exec session so far that got past the upgrade.
    pub fn execs(&self) -> Vec<ExecRecord> {
        self.shared.lock().execs.clone()
    }

    /// From now on, RBAC denies `verb` on `resource` (`pods`, `pods/exec`, `nodes`) in
    /// `namespace`, or everywhere (including cluster scope) for None. Verbs: `list`, `get`,
    /// `create` (exec; a WebSocket exec is a GET, which the API server authorizes as `get`
    /// and, since 1.31, also as `create`).
    pub fn deny(&self, verb: &str, resource: &str, namespace: Option<&str>) {
        self.shared.lock().denials.push(Denial {
            verb: verb.into(),
            resource: resource.into(),
            namespace: namespace.map(String::from),
        });
    }

    /// The next `times` requests whose `path?query` contains `path_contains` answer `status`
    /// with the Status body the real server sends for that code. Checked after authentication,
    /// before RBAC. Note kube-client retries 429, 503 and 504 by itself.
    pub fn fail_requests(&self, path_contains: &str, status: u16, times: usize) {
        let rule = Scripted { path_contains: path_contains.into(), remaining: times };
        self.shared.lock().failures.push((rule, status));
    }

    /// The next `times` requests whose `path?query` contains `path_contains` are answered
    /// only after `delay`.
    pub fn delay_requests(&self, path_contains: &str, delay: Duration, times: usize) {
        let rule = Scripted { path_contains: path_contains.into(), remaining: times };
        self.shared.lock().delays.push((rule, delay));
    }

    /// etcd compaction: every continue token issued so far answers 410 Expired.
    pub fn expire_continue_tokens(&self) {
        self.shared.lock().store.compact();
    }

    /// Sets the pod's Ready and ContainersReady conditions (a new resourceVersion).
    pub fn set_pod_ready(&self, namespace: &str, name: &str, ready: bool) {
        let key = store::pod_key(namespace, name);
        let changed = self.shared.lock().store.update(|objects, revision| match objects.pods.get_mut(&key) {
            Some(stored) if stored.pod.ready != ready => {
                stored.pod.ready = ready;
                stored.resource_version = revision;
                stored.ready_since = store::now_rfc3339();
                true
            }
            _ => false,
        });
        let _ = changed;
    }

    /// Deletes the pod: lists no longer show it, get and exec answer 404, and commands running
    /// in it are killed (their sessions report exit code 137, as when a container goes away).
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        let key = store::pod_key(namespace, name);
        let mut state = self.shared.lock();
        state.store.update(|objects, _| objects.pods.remove(&key).is_some());
        let pids: Vec<u32> = state
            .execs
            .iter()
            .filter(|e| e.namespace == namespace && e.pod == name && e.outcome.is_none())
            .filter_map(|e| e.pid)
            .collect();
        drop(state);
        for pid in pids {
            exec::kill_group(pid);
        }
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let running: Vec<u32> =
            self.shared.lock().execs.iter().filter(|e| e.outcome.is_none()).filter_map(|e| e.pid).collect();
        for pid in running {
            exec::kill_group(pid);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
