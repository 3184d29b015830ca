//! Authentication, TLS and extra headers, for both sinks, against local HTTP(S) receivers with a
//! generated CA and client certificate; and proof that secrets never reach any output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use std::time::Duration;

use base64::Engine as _;
use support::pki::Pki;
use support::receiver::{Receiver, Reply, Tls};
use support::{LocalIperf3, Run, monitor, with};

/// An HTTPS receiver with a generated PKI, and a local iperf3 server for runs pushing to it.
struct Https {
    _dir: tempfile::TempDir,
    pki: Pki,
    receiver: Receiver,
    server: LocalIperf3,
}

impl Https {
    fn start(require_client_certificate: bool) -> Https {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path(), "lab");
        let tls = Tls::Server { pki: pki.clone(), require_client_certificate };
        Https { receiver: Receiver::start_on(0, vec![], tls), pki, server: LocalIperf3::start(), _dir: dir }
    }

    /// A run remote-writing to the receiver, with `extra` flags.
    fn run(&self, extra: &[&str]) -> Run {
        let url = self.receiver.url("/api/v1/write");
        monitor(&with(&with(&self.server.run_args(), &["--remote-write-url", &url]), extra), &[])
    }
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

fn first_error(run: &Run) -> String {
    run.report()["deliveries"][0]["errors"][0].as_str().unwrap_or_default().to_string()
}

#[test]
fn https_with_a_custom_ca_and_a_client_certificate() {
    let https = Https::start(true);
    let pki = &https.pki;
    let run = https.run(&[
        "--tls-ca-file",
        path(&pki.ca),
        "--tls-cert-file",
        path(&pki.client_cert),
        "--tls-key-file",
        path(&pki.client_key),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let requests = https.receiver.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].client_certificate, "no client certificate presented");
    assert!(!run.stderr.contains("NOT verified"));
}

#[test]
fn a_server_certificate_from_another_ca_is_refused() {
    let https = Https::start(false);
    let dir = tempfile::tempdir().unwrap();
    let other = Pki::generate(dir.path(), "other");
    // The system roots, then a CA that did not sign the server's certificate.
    for extra in [vec!["--push-retries", "0"], vec!["--push-retries", "0", "--tls-ca-file", path(&other.ca)]] {
        let run = https.run(&extra);
        assert_eq!(run.code, Some(3), "{extra:?}: {}", run.stderr);
        let error = first_error(&run);
        assert!(error.contains("certificate"), "{extra:?}: {error}");
    }
    assert!(https.receiver.requests().is_empty());
    assert_eq!(https.receiver.handshake_errors().len(), 2, "{:?}", https.receiver.handshake_errors());
}

#[test]
fn a_server_that_requires_a_client_certificate_refuses_a_run_without_one() {
    let https = Https::start(true);
    let run = https.run(&["--tls-ca-file", path(&https.pki.ca), "--push-retries", "0"]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(https.receiver.requests().is_empty());
    let handshakes = https.receiver.handshake_errors();
    assert!(handshakes.iter().any(|e| e.to_lowercase().contains("certificate")), "{handshakes:?}");
}

#[test]
fn insecure_skip_verify_connects_without_the_ca_and_warns_loudly() {
    let https = Https::start(false);
    let run = https.run(&["--tls-insecure-skip-verify"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(https.receiver.requests().len(), 1);
    let warning = run.stderr.lines().find(|l| l.contains("--tls-insecure-skip-verify")).expect("no warning");
    assert!(warning.contains("WARN") && warning.contains("NOT verified"), "{warning}");
}

#[test]
fn bad_tls_and_credential_files_are_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = LocalIperf3::start();
    let not_pem = support::write_file(dir.path(), "not.pem", "hello\n");
    let empty = support::write_file(dir.path(), "empty-token", "\n");
    let cases: [(&[&str], &str); 5] = [
        (&["--tls-ca-file", "/nonexistent/ca.pem"], "invalid --tls-ca-file: cannot read /nonexistent/ca.pem"),
        (&["--tls-ca-file", path(&not_pem)], "no PEM certificate"),
        (&["--tls-cert-file", path(&not_pem), "--tls-key-file", path(&not_pem)], "invalid --tls-cert-file"),
        (&["--bearer-token-file", "/nonexistent/token"], "invalid --bearer-token-file: cannot read"),
        (&["--bearer-token-file", path(&empty)], "is empty"),
    ];
    for (extra, expected) in cases {
        let args = with(&server.run_args(), &with(&["--remote-write-url".into(), "http://127.0.0.1:9/".into()], extra));
        let run = monitor(&args, &[]);
        assert_eq!(run.code, Some(2), "{extra:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{extra:?}: no '{expected}' in {}", run.stderr);
        assert!(run.stdout.is_empty(), "{extra:?} measured");
    }
}

#[test]
fn the_bearer_token_is_read_when_the_results_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let token = support::write_file(dir.path(), "token", "token-one\n");
    let receiver = Receiver::start(vec![]);
    let server = LocalIperf3::start();
    let url = receiver.url("/api/v1/write");
    let mut args = with(&server.run_args(), &["--remote-write-url", &url, "--bearer-token-file", path(&token)]);
    // A 3-second test: the Secret is rotated while the run measures.
    args = args.into_iter().map(|a| if a == "1" { "3".to_string() } else { a }).collect();
    let running = support::spawn_monitor(&args, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&token, "token-two\n").unwrap();
    let run = support::finish(running);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let requests = receiver.requests();
    assert_eq!(requests[0].header("authorization"), Some("Bearer token-two"));
}

#[test]
fn basic_auth_and_a_tenant_header_reach_both_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let password = support::write_file(dir.path(), "password", "pa55word\n");
    let remote_write = Receiver::start(vec![]);
    let pushgateway = Receiver::start(vec![]);
    let server = LocalIperf3::start();
    let args = with(
        &server.run_args(),
        &[
            "--remote-write-url",
            &remote_write.url("/api/v1/write"),
            "--pushgateway-url",
            &pushgateway.url("/"),
            "--cluster",
            "c1",
            "--basic-auth-user",
            "alice",
            "--basic-auth-password-file",
            path(&password),
        ],
    );
    let run = monitor(&args, &[("IPERF3_MONITOR_HEADER", "X-Scope-OrgID: tenant-a\nX-Extra: two")]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:pa55word"));
    for (sink, receiver) in [("remote-write", &remote_write), ("pushgateway", &pushgateway)] {
        let requests = receiver.requests();
        assert_eq!(requests.len(), 1, "{sink}");
        assert_eq!(requests[0].header("authorization"), Some(basic.as_str()), "{sink}");
        assert_eq!(requests[0].header("x-scope-orgid"), Some("tenant-a"), "{sink}");
        assert_eq!(requests[0].header("x-extra"), Some("two"), "{sink}");
        assert!(requests[0].header("user-agent").unwrap().starts_with("iperf3-monitor/"), "{sink}");
    }
    let push = &pushgateway.requests()[0];
    assert_eq!((push.method.as_str(), push.path.as_str()), ("PUT", "/metrics/job/iperf3-monitor/cluster/c1"));
    assert_eq!(push.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = String::from_utf8(push.body.clone()).unwrap();
    let line = text.lines().find(|l| l.starts_with("iperf3_test_success{")).unwrap();
    assert!(line.ends_with("} 1"), "a timestamp or a failure: {line}");
    let deliveries = run.report()["deliveries"].as_array().unwrap().clone();
    let sinks: Vec<&str> = deliveries.iter().map(|d| d["sink"].as_str().unwrap()).collect();
    assert_eq!(sinks, ["remote_write", "pushgateway"]);
}

#[test]
fn reserved_and_conflicting_headers_are_configuration_errors() {
    let server = LocalIperf3::start();
    let cases: [(&[&str], &str); 4] = [
        (&["--header", "Content-Type: ua-5ecret"], "content-type is set by iperf3-monitor"),
        (&["--header", "X-Prometheus-Remote-Write-Version: ua-5ecret"], "cannot be overridden"),
        (&["--header", "User-Agent: ua-5ecret"], "user-agent is set by iperf3-monitor"),
        (
            &["--header", "Authorization: Bearer ua-5ecret", "--bearer-token-file", "/dev/null"],
            "Authorization cannot be combined",
        ),
    ];
    for (extra, expected) in cases {
        let args = with(&server.run_args(), &with(&["--remote-write-url".into(), "http://127.0.0.1:9/".into()], extra));
        let run = monitor(&args, &[]);
        assert_eq!(run.code, Some(2), "{extra:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{extra:?}: no '{expected}' in {}", run.stderr);
        assert!(!run.stderr.contains("ua-5ecret"), "{extra:?} printed the header value");
    }
}

/// Every run below is given secrets and a receiver that echoes the request headers in a 401
/// body; with trace logs, in text and JSON, none of the secrets may appear on stdout or stderr.
#[test]
fn secrets_never_appear_in_logs_errors_reports_or_dry_runs() {
    let dir = tempfile::tempdir().unwrap();
    let token = "tok-5ecret-AAAA";
    let password = "pw-5ecret-BBBB";
    let header = "hdr-5ecret-CCCC";
    let in_url = "url-5ecret-DDDD";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{password}"));
    let secrets = [token, password, header, in_url, basic.as_str()];
    let token_file = support::write_file(dir.path(), "token", &format!("{token}\n"));
    let password_file = support::write_file(dir.path(), "password", password);
    let server = LocalIperf3::start();
    let echo = || vec![Reply::status(401).echo_headers(); 4];
    let remote_write = Receiver::start(echo());
    let pushgateway = Receiver::start(echo());
    let targets = [
        "--remote-write-url".to_string(),
        remote_write.url("/api/v1/write"),
        "--pushgateway-url".into(),
        pushgateway.url(""),
        "--header".into(),
        format!("X-Api-Key: {header}"),
    ];
    let bearer = with(&targets, &["--bearer-token-file", path(&token_file)]);
    let basic_auth =
        with(&targets, &["--basic-auth-user", "alice", "--basic-auth-password-file", path(&password_file)]);
    let userinfo_url = format!("http://alice:{in_url}@{}/api/v1/write", remote_write.addr);
    let broken_url = format!("http//alice:{in_url}@{}/api/v1/write", remote_write.addr);
    let trace = [("RUST_LOG", "trace")];
    let table_args: Vec<String> =
        server.run_args().into_iter().map(|a| if a == "json" { "table".into() } else { a }).collect();
    let runs: Vec<(&str, Vec<String>)> = vec![
        ("bearer, text logs", with(&server.run_args(), &bearer)),
        ("basic, JSON logs", with(&with(&server.run_args(), &["--log-format", "json"]), &basic_auth)),
        ("credentials in the URL", with(&server.run_args(), &["--remote-write-url", &userinfo_url])),
        ("credentials in a broken URL", with(&server.run_args(), &["--pushgateway-url", &broken_url])),
        ("a bad header", with(&with(&server.run_args(), &["--header", &format!("User-Agent: {header}")]), &bearer)),
        ("dry run", with(&with(&server.run_args(), &["--dry-run"]), &bearer)),
        ("dry run, table", with(&with(&table_args, &["--dry-run"]), &basic_auth)),
    ];
    for (what, args) in runs {
        let run = monitor(&args, &trace);
        let expected = match what {
            _ if what.starts_with("dry run") => 0,
            "credentials in the URL" | "credentials in a broken URL" | "a bad header" => 2,
            _ => 3,
        };
        assert_eq!(run.code, Some(expected), "{what}: {}", run.stderr);
        for secret in secrets {
            assert!(!run.stdout.contains(secret), "{what}: {secret} on stdout");
            assert!(!run.stderr.contains(secret), "{what}: {secret} on stderr");
        }
        if expected == 3 {
            // The echoed body was logged, with the credentials cut out.
            assert!(run.stderr.contains("authorization: ") && run.stderr.contains("<redacted>"), "{what}");
        }
    }
    // The credentials were sent, so the test could have seen them leak.
    let sent: Vec<String> =
        remote_write.requests().iter().filter_map(|r| r.header("authorization").map(String::from)).collect();
    assert!(sent.contains(&format!("Bearer {token}")) && sent.contains(&format!("Basic {basic}")), "{sent:?}");
    assert!(remote_write.requests().iter().all(|r| r.header("x-api-key").is_none_or(|v| v == header)));
}
