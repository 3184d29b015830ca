//! The HTTPS front: TLS, HTTP/1.1, the request pipeline of the API server in the order it runs
//! (authentication, then authorization, then the handler), scripted delays and failures,
//! routing and the request record.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::exec;
use super::list::{self, Collection, ListQuery};
use super::objects::{node_json, pod_json, version_json};
use super::selector::{parse_fields, parse_labels};
use super::status::Status;
use super::store::{hex_id, pod_key, uid};
use super::{RecordedRequest, Shared, take_scripted};

pub(crate) type Body = Full<Bytes>;

/// The fields each strategy's GetAttrs exposes to field selectors.
const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];
const NODE_FIELDS: &[&str] = &["metadata.name", "spec.unschedulable"];

pub(crate) async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else { return };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(_) => continue,
            },
            _ = &mut stop => return,
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else { return };
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// Percent-decodes one component of a query string (`+` is a space).
fn decode_component(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode_component(k), decode_component(v)),
            None => (decode_component(pair), String::new()),
        })
        .collect()
}

/// What a request asks for, as the API server's RequestInfo resolves it.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Version,
    ListPods { namespace: Option<String> },
    GetPod { namespace: String, name: String },
    ExecPod { namespace: String, name: String },
    ListNodes,
    GetNode { name: String },
    Unknown,
}

fn route(path: &str) -> Route {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match parts.as_slice() {
        ["version"] => Route::Version,
        ["api", "v1", "pods"] => Route::ListPods { namespace: None },
        ["api", "v1", "namespaces", ns, "pods"] => Route::ListPods { namespace: Some(ns.to_string()) },
        ["api", "v1", "namespaces", ns, "pods", name] => {
            Route::GetPod { namespace: ns.to_string(), name: name.to_string() }
        }
        ["api", "v1", "namespaces", ns, "pods", name, "exec"] => {
            Route::ExecPod { namespace: ns.to_string(), name: name.to_string() }
        }
        ["api", "v1", "nodes"] => Route::ListNodes,
        ["api", "v1", "nodes", name] => Route::GetNode { name: name.to_string() },
        _ => Route::Unknown,
    }
}

/// What the authorizer is asked about a request.
struct Attributes<'a> {
    verb: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

fn attributes<'a>(route: &'a Route, method: &str) -> Option<Attributes<'a>> {
    let (verb, resource, subresource, namespace, name) = match route {
        Route::ListPods { namespace } => ("list", "pods", None, namespace.as_deref(), None),
        Route::GetPod { namespace, name } => ("get", "pods", None, Some(namespace.as_str()), Some(name.as_str())),
        Route::ExecPod { namespace, name } => {
            let verb = if method == "POST" { "create" } else { "get" };
            (verb, "pods", Some("exec"), Some(namespace.as_str()), Some(name.as_str()))
        }
        Route::ListNodes => ("list", "nodes", None, None, None),
        Route::GetNode { name } => ("get", "nodes", None, None, Some(name.as_str())),
        Route::Version | Route::Unknown => return None,
    };
    Some(Attributes { verb, resource, subresource, namespace, name })
}

pub(crate) fn json_response(status: u16, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache, private"));
    let audit = uid(&format!("{:?}", std::time::SystemTime::now()));
    if let Ok(value) = HeaderValue::from_str(&audit) {
        headers.insert("audit-id", value);
    }
    for name in ["x-kubernetes-pf-flowschema-uid", "x-kubernetes-pf-prioritylevel-uid"] {
        if let Ok(value) = HeaderValue::from_str(&uid(name)) {
            headers.insert(name, value);
        }
    }
    response
}

pub(crate) fn status_response(status: &Status) -> Response<Body> {
    let mut response = json_response(status.code, status.to_json());
    if status.code == 429 {
        response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
    }
    response
}

async fn handle(shared: Arc<Shared>, mut req: Request<Incoming>) -> Response<Body> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or_default().to_string();
    let query = parse_query(&raw_query);
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let target = if raw_query.is_empty() { path.clone() } else { format!("{path}?{raw_query}") };

    let delay = {
        let mut state = shared.lock();
        state.arrived.push(target.clone());
        take_scripted(&mut state.delays, &target)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }

    let (response, websocket_protocol) = respond(&shared, &mut req, &method, &path, &query, &target).await;
    shared.lock().requests.push(RecordedRequest {
        method,
        path,
        query,
        headers,
        status: response.status().as_u16(),
        websocket_protocol,
    });
    response
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

async fn respond(
    shared: &Arc<Shared>,
    req: &mut Request<Incoming>,
    method: &str,
    path: &str,
    query: &[(String, String)],
    target: &str,
) -> (Response<Body>, Option<String>) {
    let route = route(path);

    // Authentication: a wrong token is rejected; no token at all is system:anonymous.
    let user = match req.headers().get("authorization").map(|v| v.to_str().unwrap_or_default()) {
        Some(value) => match value.strip_prefix("Bearer ") {
            Some(token) if token.trim() == shared.token => shared.user.clone(),
            _ => return (status_response(&Status::unauthorized()), None),
        },
        None => "system:anonymous".to_string(),
    };

    if let Some(code) = take_scripted(&mut shared.lock().failures, target) {
        return (status_response(&Status::scripted(code)), None);
    }

    // Authorization.
    if let Some(Attributes { verb, resource, subresource, namespace, name }) = attributes(&route, method) {
        let full = match subresource {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        };
        let denied_verb = {
            let state = shared.lock();
            // A WebSocket exec is a GET, authorized as `get` and then `create` (1.31+).
            let verbs: &[&str] = if route_is_exec(&route) && verb == "get" { &["get", "create"] } else { &[verb] };
            verbs.iter().copied().find(|v| {
                user == "system:anonymous"
                    || state.denials.iter().any(|d| {
                        d.verb == *v
                            && d.resource == full
                            && (d.namespace.is_none() || d.namespace.as_deref() == namespace)
                    })
            })
        };
        if let Some(denied) = denied_verb {
            return (status_response(&Status::forbidden(&user, denied, resource, subresource, namespace, name)), None);
        }
    }

    let is_get = method == "GET";
    match route {
        Route::Version if is_get => (json_response(200, version_json().to_string().into_bytes()), None),
        Route::ListPods { namespace } if is_get => {
            (list_response(shared, Collection::Pods { namespace }, query, POD_FIELDS), None)
        }
        Route::ListNodes if is_get => (list_response(shared, Collection::Nodes, query, NODE_FIELDS), None),
        Route::GetPod { namespace, name } if is_get => {
            let state = shared.lock();
            let objects = state.store.current();
            match objects.pods.get(&pod_key(&namespace, &name)) {
                Some(stored) => (json_response(200, pod_json(stored, true).to_string().into_bytes()), None),
                None => (status_response(&Status::not_found("pods", &name)), None),
            }
        }
        Route::GetNode { name } if is_get => {
            let state = shared.lock();
            let objects = state.store.current();
            match objects.nodes.get(&name) {
                Some(stored) => (json_response(200, node_json(stored, &objects, true).to_string().into_bytes()), None),
                None => (status_response(&Status::not_found("nodes", &name)), None),
            }
        }
        Route::ExecPod { namespace, name } if is_get || method == "POST" => {
            exec::upgrade(shared.clone(), req, &namespace, &name, query).await
        }
        Route::Unknown => (status_response(&Status::no_route()), None),
        _ => (status_response(&Status::method_not_allowed()), None),
    }
}

fn route_is_exec(route: &Route) -> bool {
    matches!(route, Route::ExecPod { .. })
}

fn list_response(
    shared: &Arc<Shared>,
    collection: Collection,
    query: &[(String, String)],
    fields: &[&str],
) -> Response<Body> {
    if param(query, "watch").is_some_and(|w| w == "true" || w == "1") {
        return status_response(&Status::bad_request("fake apiserver: watch is not implemented"));
    }
    let labels = match parse_labels(param(query, "labelSelector").unwrap_or_default()) {
        Ok(labels) => labels,
        Err(message) => return status_response(&Status::bad_request(message)),
    };
    let field_terms = match parse_fields(param(query, "fieldSelector").unwrap_or_default(), fields) {
        Ok(terms) => terms,
        Err(message) => return status_response(&Status::bad_request(message)),
    };
    let limit = match param(query, "limit").filter(|l| !l.is_empty()) {
        Some(l) => match l.parse::<i64>() {
            Ok(n) => n.max(0),
            Err(e) => return status_response(&Status::bad_request(format!("limit: Invalid value: {l:?}: {e}"))),
        },
        None => 0,
    };
    let list_query = ListQuery {
        labels,
        fields: field_terms,
        limit,
        continue_token: param(query, "continue").filter(|c| !c.is_empty()).map(String::from),
        resource_version: param(query, "resourceVersion").map(String::from),
    };
    let state = shared.lock();
    match list::list(&state.store, &collection, &list_query) {
        Ok(body) => json_response(200, body.to_string().into_bytes()),
        Err(status) => status_response(&status),
    }
}

/// Used by exec for ids that look like a container runtime's.
pub(crate) fn container_id(namespace: &str, pod: &str, container: &str) -> String {
    hex_id(&format!("{namespace}/{pod}/{container}"), 64)
}
