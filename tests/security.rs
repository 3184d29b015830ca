//! Security: no shell anywhere, hostile node names that reach neither a shell nor break the
//! series, authenticated iperf3 servers (right and wrong password, through the inventory and
//! through pods/exec) with the password never on a command line or in a log, and TLS
//! verification of the Kubernetes API. The lab tests need root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fake_apiserver;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Lab, Prometheus, lab_lock, run_monitor};
use fake_apiserver::{FakeApiServer, FakeCluster};
use serde_json::Value;

const NS: &str = "monitoring";

/// The lines of `text` before its `#[cfg(test)]` module: the code that ships.
fn shipped(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_shell_anywhere_the_job_or_the_chart_starts_a_process() {
    let mut files = Vec::new();
    rust_files(&common::repo().join("src"), &mut files);
    let mut spawners = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let code = shipped(&text);
        let name = file.strip_prefix(common::repo()).unwrap().display().to_string();
        if code.contains("Command::new(") {
            spawners.insert(name.clone());
        }
        for shell in ["\"sh\"", "\"bash\"", "\"/bin/sh\"", "\"/bin/bash\"", "\"-c\"", "system(", "popen("] {
            assert!(!code.contains(shell), "{name} mentions {shell}");
        }
    }
    // The only processes the job starts: the client behind its node's argv prefix, and (in a
    // server pod) the client with its password in the environment. Both argv, never a line.
    assert_eq!(spawners, BTreeSet::from(["src/runner/process.rs".into(), "src/runner/with_password.rs".into()]));
    let exec = std::fs::read_to_string(common::repo().join("src/runner/pod_exec.rs")).unwrap();
    assert!(shipped(&exec).contains(r#"vec!["timeout".to_string(), "-s".into(), "KILL".into()"#), "exec argv");

    // The chart's containers run their programs directly.
    let mut templates = Vec::new();
    for entry in std::fs::read_dir(common::repo().join("chart/templates")).unwrap() {
        templates.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let commands: Vec<&str> =
        templates.iter().flat_map(|t| t.lines()).filter(|l| l.trim_start().starts_with("command:")).collect();
    assert_eq!(commands.len(), 2, "{commands:?}");
    for line in commands {
        assert!(line.contains(r#"["iperf3"]"#) || line.contains(r#"["iperf3-monitor"]"#), "{line}");
    }
    let dockerfile = std::fs::read_to_string(common::repo().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains(r#"ENTRYPOINT ["iperf3-monitor"]"#), "exec form, no shell");
}

/// Label values of `metric` in a text exposition, unescaped as the Prometheus parser does.
fn exposition_values(text: &str, metric: &str, label: &str) -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    let prefix = format!("{metric}{{");
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        let start = line.find(&format!("{label}=\"")).unwrap() + label.len() + 2;
        let mut value = String::new();
        let mut chars = line[start..].chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        values.insert(value);
    }
    values
}

#[test]
fn hostile_node_names_reach_no_shell_and_are_stored_verbatim() {
    let _lock = lab_lock();
    let lab = Lab::up("fthost", 100, &[50, 50, 50], &[]);
    let pid = std::process::id();
    let pwned = [format!("/tmp/ft-pwned-{pid}"), format!("/tmp/ft-pwned-backtick-{pid}")];
    let names = [
        format!("$(touch {})", pwned[0]),
        format!("`touch {}`; rm -rf / # \"quoted\" \\back\\slash\nnew line | & > < * ?", pwned[1]),
        format!("n-{}-ノード-ü", "x".repeat(2000)),
    ];
    // The lab's inventory with the names replaced; JSON strings are YAML double-quoted scalars.
    let mut inventory = std::fs::read_to_string(&lab.inventory).unwrap();
    for (i, name) in names.iter().enumerate() {
        inventory = inventory
            .replace(&format!("- name: n{}\n", i + 1), &format!("- name: {}\n", serde_json::to_string(name).unwrap()));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_file(dir.path(), "inventory.yaml", &inventory);
    let prom = Prometheus::start();
    let args = [
        "--inventory",
        path.to_str().unwrap(),
        "--protocols",
        "tcp",
        "--duration",
        "1",
        "--remote-write-url",
        &prom.remote_write_url(),
        "--output",
        "prometheus",
    ];
    let output = run_monitor(&[], &args);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    for file in &pwned {
        assert!(!Path::new(file).exists(), "{file} was created: a name reached a shell");
    }
    let expected: BTreeSet<String> = names.iter().cloned().collect();

    // Remote-write: Prometheus holds each name exactly as written.
    let stored: BTreeSet<String> = prom
        .query("iperf3_test_success")
        .iter()
        .map(|r| r["metric"]["source_node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored, expected);
    assert_eq!(prom.query("iperf3_test_success == 1").len(), 6);

    // The text exposition parses (promtool, the Prometheus parser) and unescapes to the names.
    let text = String::from_utf8(output.stdout).unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let complaints = String::from_utf8_lossy(&checked.stderr);
    assert!(!complaints.contains("parsing error"), "{complaints}");
    assert_eq!(exposition_values(&text, "iperf3_test_success", "source_node"), expected);
    assert_eq!(exposition_values(&text, "iperf3_test_success", "destination_node"), expected);
}

/// Credentials for a lab started with `--auth mon:<password>`.
struct Auth {
    _dir: tempfile::TempDir,
    password: String,
    public_key: String,
    right: PathBuf,
    wrong: PathBuf,
}

const USER: &str = "mon";

impl Auth {
    /// A lab of three nodes whose servers let in `mon` with a password of this test process,
    /// ending in `tag`, and the credentials for it.
    fn lab(name: &str, subnet: u8, tag: &str) -> (Lab, Auth) {
        let password = format!("pw-{}-{tag}", std::process::id());
        let lab = Lab::up(name, subnet, &[50, 50, 50], &["--auth", &format!("{USER}:{password}")]);
        let dir = tempfile::tempdir().unwrap();
        let right = common::write_file(dir.path(), "password", &format!("{password}\n"));
        let wrong = common::write_file(dir.path(), "wrong-password", "not-the-password\n");
        let public_key = lab.state_dir().join("auth/public.pem").display().to_string();
        let auth = Auth { _dir: dir, password, public_key, right, wrong };
        (lab, auth)
    }

    fn flags<'a>(&'a self, password_file: &'a Path) -> Vec<&'a str> {
        vec![
            "--iperf3-username",
            USER,
            "--iperf3-public-key-file",
            &self.public_key,
            "--iperf3-password-file",
            password_file.to_str().unwrap(),
        ]
    }
}

fn reasons(output: &Output) -> Vec<((String, String), Option<String>)> {
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut reasons: Vec<_> = report["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let pair = (m["source"].as_str().unwrap().to_string(), m["destination"].as_str().unwrap().to_string());
            (pair, m["outcome"]["failure"]["reason"].as_str().map(str::to_string))
        })
        .collect();
    reasons.sort();
    reasons
}

fn assert_never_shown(output: &Output, secret: &str) {
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        assert!(!String::from_utf8_lossy(bytes).contains(secret), "the password is in the job's {stream}");
    }
}

#[test]
fn authenticated_servers_let_in_the_right_password_only() {
    let _lock = lab_lock();
    let (lab, auth) = Auth::lab("ftauth", 101, "s3cret");
    // n3 is given the wrong password through the inventory; the others get the flags'.
    let mut inventory = std::fs::read_to_string(&lab.inventory).unwrap();
    inventory.push_str(&format!("    iperf3_auth: {{password_file: {:?}}}\n", auth.wrong.to_str().unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_file(dir.path(), "inventory.yaml", &inventory);
    let prom = Prometheus::start();
    let url = prom.remote_write_url();
    let base = ["--inventory", path.to_str().unwrap(), "--protocols", "tcp", "--duration", "1", "--output", "json"];

    let mut args = base.to_vec();
    args.extend(auth.flags(&auth.right));
    args.extend(["--remote-write-url", &url]);
    let output = common::run_monitor_with(&[], &args, |command| {
        command.env("RUST_LOG", "trace");
    });
    assert_eq!(output.status.code(), Some(1), "the tests to n3 failed");
    let expected: Vec<_> = [("n1", "n2"), ("n1", "n3"), ("n2", "n1"), ("n2", "n3"), ("n3", "n1"), ("n3", "n2")]
        .iter()
        .map(|(s, d)| ((s.to_string(), d.to_string()), (*d == "n3").then(|| "auth".to_string())))
        .collect();
    assert_eq!(reasons(&output), expected);
    assert_never_shown(&output, &auth.password);
    let failures = prom.query("iperf3_test_failure{reason=\"auth\"}");
    assert_eq!(failures.len(), 2, "the auth failures are pushed");
    assert_eq!(prom.query("iperf3_test_success == 1").len(), 4);

    // Without credentials every server turns the client away.
    let output = run_monitor(
        &[],
        &["--inventory", lab.inventory.to_str().unwrap(), "--protocols", "tcp", "--duration", "1", "--output", "json"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(reasons(&output).iter().all(|(_, reason)| reason.as_deref() == Some("auth")), "{:?}", reasons(&output));
}

#[test]
fn authenticated_servers_through_pods_exec_read_the_password_in_the_pod() {
    let _lock = lab_lock();
    let (lab, auth) = Auth::lab("ftkauth", 102, "exec");
    // The server image holds iperf3-monitor (with-password) beside iperf3 and timeout.
    let image_path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        Path::new(common::binary()).parent().unwrap().display()
    );
    let mut cluster = FakeCluster::lab(&lab.name, lab.subnet, 3, NS);
    cluster.pods = cluster.pods.into_iter().map(|pod| pod.with_path(&image_path)).collect();
    let server = FakeApiServer::start(cluster);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), NS);
    let run = |password_file: &Path| {
        let mut args = vec!["--protocols", "tcp", "--duration", "1", "--output", "json"];
        args.extend(auth.flags(password_file));
        common::run_monitor_with(&[], &args, |command| {
            command.env("KUBECONFIG", &kubeconfig).env("RUST_LOG", "debug").env_remove("KUBERNETES_SERVICE_HOST");
        })
    };

    let output = run(&auth.right);
    assert_eq!(output.status.code(), Some(0), "every client let in");
    assert_eq!(reasons(&output).len(), 6);
    assert_never_shown(&output, &auth.password);
    for exec in server.execs() {
        let command = exec.command.join(" ");
        assert!(
            command
                .contains(&format!("iperf3-monitor with-password --password-file {} -- iperf3", auth.right.display())),
            "{command}"
        );
        assert!(command.contains(&format!("--username {USER} --rsa-public-key-path {}", auth.public_key)), "{command}");
    }
    for request in server.requests() {
        let seen = format!("{} {:?} {:?}", request.path, request.query, request.headers);
        assert!(!seen.contains(&auth.password), "the password crossed the API: {seen}");
    }

    let output = run(&auth.wrong);
    assert_eq!(output.status.code(), Some(1));
    assert!(reasons(&output).iter().all(|(_, reason)| reason.as_deref() == Some("auth")), "{:?}", reasons(&output));
}

#[test]
fn the_kubernetes_api_certificate_is_verified() {
    let server = FakeApiServer::start(FakeCluster::lab("nolab", 103, 2, NS));
    let dir = tempfile::tempdir().unwrap();
    let trusted = server.kubeconfig(dir.path(), NS);
    let text = std::fs::read_to_string(&trusted).unwrap();
    let untrusted = dir.path().join("untrusted.yaml");
    std::fs::write(
        &untrusted,
        text.lines().filter(|l| !l.contains("certificate-authority-data")).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let dry = |kubeconfig: &Path| {
        common::monitor_command()
            .args(["run", "--dry-run"])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap()
    };
    assert_eq!(dry(&trusted).status.code(), Some(0), "with its CA the server is trusted");
    let output = dry(&untrusted);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    assert!(server.requests().iter().filter(|r| r.header("authorization").is_some()).count() >= 1);
    let before = server.requests().len();
    let _ = dry(&untrusted);
    assert_eq!(server.requests().len(), before, "no request (nor token) reaches an unverified server");
}
