//! pods/exec over WebSocket, as the API server and kubelet answer it:
//! - before the upgrade, the checks of the pod registry's ExecLocation (pod exists, container
//!   valid, pod scheduled) as `Status` errors;
//! - subprotocol negotiation: a client offering `v5.channel.k8s.io` is served by the 1.30+
//!   stream translator, which speaks v5 only; otherwise the request reaches the kubelet, which
//!   picks the first offered protocol it supports (we support `v4.channel.k8s.io`) and fails
//!   the handshake with a bare 403 when none is (golang.org/x/net/websocket);
//! - after the upgrade: an empty frame on the lowest writable channel, output frames on 1 and 2
//!   as the command writes, the status on 3 (`Success`, or `NonZeroExitCode` with an
//!   `ExitCode` cause), then a close frame.
//!
//! The command runs as `ip netns exec <netns> argv…` in its own process group; a client that
//! goes away before the command ends gets the group killed.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::http::{Body, container_id, status_response};
use super::status::Status;
use super::store::pod_key;
use super::{ExecOutcome, ExecRecord, Shared};

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
/// v5: a client's half-close of one of its streams, followed by the stream's channel byte.
const CLOSE: u8 = 255;

/// How long the server waits for the client to answer its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct ExecParams {
    command: Vec<String>,
    container: String,
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

/// strconv.ParseBool, which decodes the boolean query parameters.
fn parse_bool(key: &str, value: &str) -> Result<bool, Status> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(false),
        other => Err(Status::bad_request(format!(
            "strconv.ParseBool: parsing {other:?}: invalid syntax (query parameter {key:?})"
        ))),
    }
}

fn flag(query: &[(String, String)], key: &str) -> Result<bool, Status> {
    match query.iter().find(|(k, _)| k == key) {
        Some((_, v)) => parse_bool(key, v),
        None => Ok(false),
    }
}

/// `Connection` includes `upgrade` and `Upgrade` is `websocket` (wsstream.IsWebSocketRequest).
fn is_websocket(req: &Request<Incoming>) -> bool {
    let header =
        |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    header("upgrade") == "websocket" && header("connection").split(',').any(|t| t.trim() == "upgrade")
}

fn offered_protocols(req: &Request<Incoming>) -> Vec<String> {
    req.headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn bare(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Answers an exec request: an error before the upgrade, or 101 with the session started.
pub(crate) async fn upgrade(
    shared: Arc<Shared>,
    req: &mut Request<Incoming>,
    namespace: &str,
    name: &str,
    query: &[(String, String)],
) -> (Response<Body>, Option<String>) {
    let pod = match shared.lock().store.current().pods.get(&pod_key(namespace, name)) {
        Some(stored) => stored.pod.clone(),
        None => return (status_response(&Status::not_found("pods", name)), None),
    };
    let params = match exec_params(query, &pod) {
        Ok(params) => params,
        Err(status) => return (status_response(&status), None),
    };
    if pod.node_name.is_none() {
        return (status_response(&Status::bad_request(format!("pod {name} does not have a host assigned"))), None);
    }
    if !is_websocket(req) {
        return (status_response(&Status::bad_request("Upgrade request required")), None);
    }
    let offered = offered_protocols(req);
    let protocol = if offered.iter().any(|p| p == V5) {
        V5
    } else if offered.iter().any(|p| p == V4) {
        V4
    } else {
        return (bare(StatusCode::FORBIDDEN), None);
    };
    let version_ok = req.headers().get("sec-websocket-version").is_some_and(|v| v == "13");
    let key = req.headers().get("sec-websocket-key").map(|k| k.as_bytes().to_vec());
    let Some(key) = key.filter(|_| version_ok) else {
        let mut response = bare(StatusCode::BAD_REQUEST);
        response.headers_mut().insert("sec-websocket-version", HeaderValue::from_static("13"));
        return (response, None);
    };
    // Without the stream translator the kubelet answers for the container directly, before
    // any upgrade, in plain text.
    if protocol == V4 && pod.phase != "Running" {
        let mut response = bare(StatusCode::INTERNAL_SERVER_ERROR);
        *response.body_mut() = Body::new(Bytes::from(format!("container not found ({:?})", params.container)));
        return (response, None);
    }

    let index = {
        let mut state = shared.lock();
        state.execs.push(ExecRecord {
            namespace: namespace.into(),
            pod: name.into(),
            container: params.container.clone(),
            command: params.command.clone(),
            protocol: protocol.into(),
            pid: None,
            outcome: None,
        });
        state.execs.len() - 1
    };
    let on_upgrade = hyper::upgrade::on(req);
    let session = Session {
        shared,
        index,
        params,
        protocol,
        netns: pod.netns.clone(),
        path: pod.path.clone(),
        running: pod.phase == "Running",
        namespace: namespace.into(),
        pod: name.into(),
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            session.run(ws).await;
        } else {
            session.finish(ExecOutcome::ClientClosed);
        }
    });

    let mut response = bare(StatusCode::SWITCHING_PROTOCOLS);
    let headers = response.headers_mut();
    headers.insert("upgrade", HeaderValue::from_static("websocket"));
    headers.insert("connection", HeaderValue::from_static("Upgrade"));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert("sec-websocket-accept", value);
    }
    headers.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
    (response, Some(protocol.to_string()))
}

fn exec_params(query: &[(String, String)], pod: &super::FakePod) -> Result<ExecParams, Status> {
    let command: Vec<String> = query.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
    let stdin = flag(query, "stdin")?;
    let stdout = flag(query, "stdout")?;
    let tty = flag(query, "tty")?;
    // As the kubelet: stderr is not multiplexed with a TTY.
    let stderr = flag(query, "stderr")? && !tty;
    let requested = query.iter().find(|(k, _)| k == "container").map(|(_, v)| v.as_str()).unwrap_or_default();
    let name = &pod.name;
    let container = if requested.is_empty() {
        match pod.containers.as_slice() {
            [only] => only.clone(),
            [] => return Err(Status::bad_request(format!("a container name must be specified for pod {name}"))),
            many => {
                return Err(Status::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    many.join(" ")
                )));
            }
        }
    } else if pod.containers.iter().any(|c| c == requested) {
        requested.to_string()
    } else {
        return Err(Status::bad_request(format!("container {requested} is not valid for pod {name}")));
    };
    if !stdin && !stdout && !stderr {
        return Err(Status::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
    }
    if command.is_empty() {
        return Err(Status::bad_request("you must specify at least 1 command"));
    }
    Ok(ExecParams { command, container, stdin, stdout, stderr })
}

/// Kills the process group `pid` leads.
pub(crate) fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// The exit code a container runtime reports: 128 + signal for a killed process.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(255)
}

/// Where `program` resolves, as execve would find it via `path` (else this process's PATH).
fn resolve(program: &str, path: Option<&str>) -> Result<(), String> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return if executable(Path::new(program)) {
            Ok(())
        } else {
            Err(format!("exec: {program:?}: stat {program}: no such file or directory"))
        };
    }
    let path = path.map_or_else(|| std::env::var("PATH").unwrap_or_default(), str::to_string);
    if path.split(':').any(|dir| executable(&Path::new(dir).join(program))) {
        Ok(())
    } else {
        Err(format!("exec: {program:?}: executable file not found in $PATH"))
    }
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

struct Session {
    shared: Arc<Shared>,
    index: usize,
    params: ExecParams,
    protocol: &'static str,
    netns: Option<String>,
    path: Option<String>,
    running: bool,
    namespace: String,
    pod: String,
}

async fn pump(mut from: impl AsyncRead + Unpin, channel: u8, to: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut frame = Vec::with_capacity(n + 1);
                frame.push(channel);
                frame.extend_from_slice(&buf[..n]);
                if to.send(frame).await.is_err() {
                    return;
                }
            }
        }
    }
}

impl Session {
    fn finish(&self, outcome: ExecOutcome) {
        if let Some(record) = self.shared.lock().execs.get_mut(self.index) {
            record.outcome = Some(outcome);
        }
    }

    /// Sends the status and the close frame, then waits a little for the client's close.
    async fn end(&self, ws: &mut Ws, status: Status) {
        let mut frame = vec![STATUS];
        frame.extend(serde_json::to_vec(&status).unwrap_or_default());
        if ws.send(Message::Binary(frame.into())).await.is_ok() {
            let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
            let _ = ws.send(Message::Close(Some(close))).await;
            let _ = tokio::time::timeout(CLOSE_WAIT, async {
                while let Some(Ok(message)) = ws.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }

    async fn not_started(&self, ws: &mut Ws, cause: String) {
        self.finish(ExecOutcome::NotStarted(cause.clone()));
        self.end(ws, Status::internal_error(cause).on_status_channel()).await;
    }

    async fn run(self, mut ws: Ws) {
        let first = if self.params.stdout {
            STDOUT
        } else if self.params.stderr {
            STDERR
        } else {
            STATUS
        };
        if ws.send(Message::Binary(vec![first].into())).await.is_err() {
            self.finish(ExecOutcome::ClientClosed);
            return;
        }
        let container = &self.params.container;
        if !self.running {
            return self
                .not_started(&mut ws, format!("unable to upgrade connection: container not found ({container:?})"))
                .await;
        }
        let argv = &self.params.command;
        if let Err(why) = resolve(&argv[0], self.path.as_deref()) {
            let id = container_id(&self.namespace, &self.pod, &format!("exec/{}", self.index));
            let cause = format!(
                "error executing command in container: failed to exec in container: failed to start exec {id:?}: \
                 OCI runtime exec failed: exec failed: unable to start container process: {why}: unknown"
            );
            return self.not_started(&mut ws, cause).await;
        }

        let mut command = match &self.netns {
            Some(netns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns]).args(argv);
                c
            }
            None => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        if let Some(path) = &self.path {
            command.env("PATH", path);
        }
        let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        command
            .stdin(piped(self.params.stdin))
            .stdout(piped(self.params.stdout))
            .stderr(piped(self.params.stderr))
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => return self.not_started(&mut ws, format!("error executing command in container: {e}")).await,
        };
        let pid = child.id();
        if let Some(record) = self.shared.lock().execs.get_mut(self.index) {
            record.pid = pid;
        }

        let (frames, mut output) = mpsc::channel::<Vec<u8>>(16);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(pump(stdout, STDOUT, frames.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(pump(stderr, STDERR, frames.clone()));
        }
        drop(frames);
        let mut stdin = child.stdin.take();
        let mut output_open = true;
        let mut exited: Option<ExitStatus> = None;
        let mut client_gone = false;
        while output_open || exited.is_none() {
            tokio::select! {
                frame = output.recv(), if output_open => match frame {
                    Some(frame) => {
                        if ws.send(Message::Binary(frame.into())).await.is_err() {
                            client_gone = true;
                            break;
                        }
                    }
                    None => output_open = false,
                },
                status = child.wait(), if exited.is_none() => {
                    exited = Some(status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(255 << 8)));
                }
                message = ws.next() => match message {
                    Some(Ok(Message::Binary(data))) => match data.first() {
                        Some(&STDIN) => {
                            if let Some(pipe) = stdin.as_mut()
                                && pipe.write_all(&data[1..]).await.is_err()
                            {
                                stdin = None;
                            }
                        }
                        Some(&CLOSE) if self.protocol == V5 && data.get(1) == Some(&STDIN) => stdin = None,
                        _ => {}
                    },
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        client_gone = true;
                        break;
                    }
                    Some(Ok(_)) => {}
                },
            }
        }

        if client_gone {
            // Whatever the command started goes too (the group outlives a reaped leader only
            // while members remain, so its id cannot have been reused).
            if let Some(pid) = pid {
                kill_group(pid);
            }
            if exited.is_none() {
                let _ = child.wait().await;
            }
            self.finish(ExecOutcome::ClientClosed);
            return;
        }
        let code = exited.map(exit_code).unwrap_or(255);
        self.finish(ExecOutcome::Exited(code));
        let status = if code == 0 { Status::success() } else { Status::non_zero_exit(argv, code) };
        self.end(&mut ws, status).await;
    }
}
