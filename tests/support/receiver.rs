//! A recording HTTP(S) receiver: answers each request with the next scripted reply (200 once
//! the script is spent) and keeps every request, body and headers, for the test to decode.
//!
//! It speaks remote-write 2.0 unless started with [`Receiver::start_v1_only`]: a 2xx answer to
//! a 2.0 request says how many samples the request held in
//! `X-Prometheus-Remote-Write-Samples-Written` (unless the scripted reply sets that header
//! itself), as a 2.0 receiver must. A 1.0-only receiver answers without it, as Prometheus 2.x does.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls;

use iperf3_monitor::sinks::remote_write::v2;
use prost::Message;

use super::pki::Pki;

/// One scripted response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ReplyBody,
    /// Wait this long before answering (to make the client time out).
    pub delay: Duration,
    /// Send `Retry-After` as the HTTP date this long after the request arrived.
    pub retry_after_date_in: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum ReplyBody {
    Fixed(Vec<u8>),
    /// Every request header, `name: value` per line: a server that echoes credentials.
    EchoHeaders,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Fixed(Vec::new()),
            delay: Duration::ZERO,
            retry_after_date_in: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = ReplyBody::Fixed(body.into());
        self
    }

    pub fn echo_headers(mut self) -> Reply {
        self.body = ReplyBody::EchoHeaders;
        self
    }

    pub fn retry_after_date_in(mut self, wait: Duration) -> Reply {
        self.retry_after_date_in = Some(wait);
        self
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// Whether the client presented a TLS certificate.
    pub client_certificate: bool,
}

impl Recorded {
    /// The value of the only header called `name`; panics if it is repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        let values: Vec<&str> =
            self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect();
        assert!(values.len() <= 1, "header {name} sent {} times", values.len());
        values.first().copied()
    }
}

/// How the receiver speaks TLS.
#[derive(Debug, Clone)]
pub enum Tls {
    None,
    /// HTTPS with the PKI's server certificate; optionally requires a client certificate
    /// signed by the PKI's CA.
    Server {
        pki: Pki,
        require_client_certificate: bool,
    },
}

#[derive(Debug, Default)]
struct State {
    v1_only: bool,
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    handshake_errors: Mutex<Vec<String>>,
}

/// A receiver on 127.0.0.1, stopped on drop.
#[derive(Debug)]
pub struct Receiver {
    pub addr: SocketAddr,
    scheme: &'static str,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Plain HTTP on a free port.
    pub fn start(script: Vec<Reply>) -> Receiver {
        Self::start_on(0, script, Tls::None)
    }

    /// Plain HTTP, a receiver that knows only remote-write 1.0 (Prometheus 2.x): it answers a
    /// 2.0 request like any other, without the written-samples header.
    pub fn start_v1_only(script: Vec<Reply>) -> Receiver {
        Self::start_full(0, script, Tls::None, true)
    }

    /// On `port` (0: a free one).
    pub fn start_on(port: u16, script: Vec<Reply>, tls: Tls) -> Receiver {
        Self::start_full(port, script, tls, false)
    }

    fn start_full(port: u16, script: Vec<Reply>, tls: Tls, v1_only: bool) -> Receiver {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("binding the receiver");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = match &tls {
            Tls::None => None,
            Tls::Server { pki, require_client_certificate } => Some(acceptor(pki, *require_client_certificate)),
        };
        let state = Arc::new(State { v1_only, script: Mutex::new(script.into()), ..State::default() });
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            tokio::spawn(connection(tcp, acceptor.clone(), served.clone()));
                        }
                    }
                }
            });
        });
        let scheme = if matches!(tls, Tls::None) { "http" } else { "https" };
        Receiver { addr, scheme, state, stop: Some(stop), thread: Some(thread) }
    }

    /// `http(s)://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// TLS handshakes that failed (an unknown CA, a missing client certificate).
    pub fn handshake_errors(&self) -> Vec<String> {
        self.state.handshake_errors.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn acceptor(pki: &Pki, require_client_certificate: bool) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer> =
        CertificateDer::pem_file_iter(&pki.server_cert).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let builder = if require_client_certificate {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(certs, key).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn connection(tcp: tokio::net::TcpStream, acceptor: Option<tokio_rustls::TlsAcceptor>, state: Arc<State>) {
    match acceptor {
        None => serve(TokioIo::new(tcp), state, false).await,
        Some(acceptor) => match acceptor.accept(tcp).await {
            Ok(tls) => {
                let client_certificate = tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                serve(TokioIo::new(tls), state, client_certificate).await;
            }
            Err(e) => state.handshake_errors.lock().unwrap().push(e.to_string()),
        },
    }
}

async fn serve<I>(io: I, state: Arc<State>, client_certificate: bool)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request| answer(request, state.clone(), client_certificate));
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
}

async fn answer(
    request: hyper::Request<Incoming>,
    state: Arc<State>,
    client_certificate: bool,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let reply = state.script.lock().unwrap().pop_front().unwrap_or_else(|| Reply::status(200));
    let is_v2 = headers.iter().any(|(n, v)| n == "content-type" && v == v2::CONTENT_TYPE_V2);
    let written = (is_v2 && !state.v1_only).then(|| samples_in_v2(&body));
    let body_out = match &reply.body {
        ReplyBody::Fixed(bytes) => bytes.clone(),
        ReplyBody::EchoHeaders => headers.iter().map(|(n, v)| format!("{n}: {v}\n")).collect::<String>().into_bytes(),
    };
    state.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers,
        body,
        at: Instant::now(),
        client_certificate,
    });
    tokio::time::sleep(reply.delay).await;
    let mut response = hyper::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let says_written = reply.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(v2::SAMPLES_WRITTEN));
    if let Some(written) = written.filter(|_| (200..300).contains(&reply.status) && !says_written) {
        response = response.header(v2::SAMPLES_WRITTEN, written.to_string());
    }
    if let Some(wait) = reply.retry_after_date_in {
        response = response.header("Retry-After", httpdate::fmt_http_date(std::time::SystemTime::now() + wait));
    }
    Ok(response.body(Full::new(Bytes::from(body_out))).unwrap())
}

/// The samples in a 2.0 body (0 if it is not one).
fn samples_in_v2(body: &[u8]) -> usize {
    let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap_or_default();
    let request = v2::writev2::Request::decode(raw.as_slice()).unwrap_or_default();
    request.timeseries.iter().map(|s| s.samples.len()).sum()
}
