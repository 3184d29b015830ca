//! The iperf3 client: its argv and its `-J` JSON output. Pure: nothing here runs a process.
//!
//! iperf3 reports failures in the JSON `error` field, and iperf3 3.12 with `-J` can exit 0 even
//! then (connection refused, for one), so results are judged by the JSON, not the exit code alone.
//! Parsing follows the output of iperf3 3.9 to 3.17: UDP `sum_sent`/`sum_received` appeared in
//! 3.10; older versions only have `sum`.

use std::time::Duration;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::credentials::Credentials;
use crate::targets::Address;

/// An iperf3 test protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How each iperf3 test is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSettings {
    pub iperf3: String,
    pub duration: Duration,
    pub udp_bitrate: String,
    pub parallel: u32,
    /// How long iperf3 tries to connect (iperf3 --connect-timeout).
    pub connect_timeout: Duration,
    /// Hard limit of one test attempt.
    pub timeout: Duration,
}

/// The argv of one client test (the program first), kept to the address's IP family. With
/// `credentials`, the user name and the servers' public key go on the command line; the password
/// never does (see the runners).
pub fn client_argv(
    settings: &TestSettings,
    protocol: Protocol,
    address: &Address,
    port: u16,
    credentials: Option<&Credentials>,
) -> Vec<String> {
    // iperf3 gives up connecting after this long, so a blackholed path fails with a reason of
    // its own well before the hard timeout.
    let connect_timeout_ms = settings.connect_timeout.min(settings.timeout).as_millis();
    let mut argv = vec![
        settings.iperf3.clone(),
        "--client".into(),
        address.host.clone(),
        "--port".into(),
        port.to_string(),
        "--json".into(),
        // No per-second reports: the summary is all we use, and it keeps exec output small.
        "--interval".into(),
        "0".into(),
        "--time".into(),
        settings.duration.as_secs().max(1).to_string(),
        "--connect-timeout".into(),
        connect_timeout_ms.to_string(),
        // A host name may resolve to both families: the test stays in the one its labels say.
        address.family.iperf3_flag().into(),
    ];
    if settings.parallel > 1 {
        argv.extend(["--parallel".into(), settings.parallel.to_string()]);
    }
    if protocol == Protocol::Udp {
        argv.extend(["--udp".into(), "--bitrate".into(), settings.udp_bitrate.clone()]);
    }
    if let Some(credentials) = credentials {
        argv.extend([
            "--username".into(),
            credentials.username.clone(),
            "--rsa-public-key-path".into(),
            credentials.public_key_file.clone(),
        ]);
    }
    argv
}

/// Why a test failed; a bounded set, used as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The server refused the connection (no server listening).
    Refused,
    /// The test exceeded --test-timeout and was killed.
    Timeout,
    /// The server was busy with another test, also after retries.
    Busy,
    /// No route to the server, or the connection attempt timed out.
    Unreachable,
    /// The server refused the client's credentials.
    Auth,
    /// The test started but the server went away before its results were in (the server was
    /// killed or restarted, its pod deleted, the control connection reset).
    Interrupted,
    /// The client's output was not iperf3 JSON of a known shape.
    Parse,
    /// The client could not be started on its node.
    Spawn,
    /// Any other error iperf3 reported.
    Error,
    /// Not tried: one of its nodes had already failed as a source or destination in this run
    /// (slow failures from two peers); the next run tries again.
    Skipped,
}

impl FailureReason {
    pub const ALL: [FailureReason; 10] = [
        FailureReason::Refused,
        FailureReason::Timeout,
        FailureReason::Busy,
        FailureReason::Unreachable,
        FailureReason::Auth,
        FailureReason::Interrupted,
        FailureReason::Parse,
        FailureReason::Spawn,
        FailureReason::Error,
        FailureReason::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Refused => "refused",
            FailureReason::Timeout => "timeout",
            FailureReason::Busy => "busy",
            FailureReason::Unreachable => "unreachable",
            FailureReason::Auth => "auth",
            FailureReason::Interrupted => "interrupted",
            FailureReason::Parse => "parse",
            FailureReason::Spawn => "spawn",
            FailureReason::Error => "error",
            FailureReason::Skipped => "skipped",
        }
    }

    /// Classifies the message of iperf3's `error` field.
    pub fn from_iperf3_error(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        if m.contains("busy") {
            FailureReason::Busy
        } else if m.contains("connection refused") {
            FailureReason::Refused
        } else if m.contains("authoriz") || m.contains("authentic") || m.contains("valid rsa public key") {
            FailureReason::Auth
        } else if [
            "no route to host",
            "network is unreachable",
            "host is unreachable",
            "timed out",
            "operation now in progress",
            "name or service not known",
            "temporary failure in name resolution",
        ]
        .iter()
        .any(|needle| m.contains(needle))
        {
            FailureReason::Unreachable
        } else if [
            "control socket has closed unexpectedly",
            "the server has terminated",
            "unable to receive results",
            "unable to receive control message",
            // The data connection reset while sending: the server process is gone.
            "unable to write to stream socket: connection reset",
        ]
        .iter()
        .any(|needle| m.contains(needle))
        {
            FailureReason::Interrupted
        } else {
            FailureReason::Error
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed test: a bounded reason and the detail for logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub reason: FailureReason,
    pub detail: String,
}

impl Failure {
    pub fn new(reason: FailureReason, detail: impl Into<String>) -> Self {
        Failure { reason, detail: detail.into() }
    }
}

/// What a successful TCP test measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpResult {
    pub sent_bytes_per_second: f64,
    pub received_bytes_per_second: f64,
    pub retransmits: Option<u64>,
    /// Mean RTT of the sender's streams.
    pub rtt_seconds: Option<f64>,
    pub sender_cpu_utilization_ratio: Option<f64>,
    pub receiver_cpu_utilization_ratio: Option<f64>,
}

/// What a successful UDP test measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UdpResult {
    pub sent_bytes_per_second: f64,
    pub received_bytes_per_second: f64,
    pub jitter_seconds: f64,
    pub lost_packets: u64,
    pub packets: u64,
    pub loss_ratio: f64,
    pub sender_cpu_utilization_ratio: Option<f64>,
    pub receiver_cpu_utilization_ratio: Option<f64>,
}

/// What a successful test measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum TestResult {
    Tcp(TcpResult),
    Udp(UdpResult),
}

impl TestResult {
    /// CPU the sender and the receiver used during the test, 1 = one core (iperf3's own
    /// `cpu_utilization_percent`, host and remote).
    pub fn cpu_ratios(&self) -> (Option<f64>, Option<f64>) {
        match self {
            TestResult::Tcp(r) => (r.sender_cpu_utilization_ratio, r.receiver_cpu_utilization_ratio),
            TestResult::Udp(r) => (r.sender_cpu_utilization_ratio, r.receiver_cpu_utilization_ratio),
        }
    }

    pub fn received_bytes_per_second(&self) -> f64 {
        match self {
            TestResult::Tcp(r) => r.received_bytes_per_second,
            TestResult::Udp(r) => r.received_bytes_per_second,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Report {
    #[serde(default)]
    end: Option<End>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct End {
    #[serde(default)]
    streams: Vec<Stream>,
    sum: Option<Sum>,
    sum_sent: Option<Sum>,
    sum_received: Option<Sum>,
    cpu_utilization_percent: Option<Cpu>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    sender: Option<StreamSender>,
}

#[derive(Debug, Deserialize)]
struct StreamSender {
    /// Microseconds (TCP only).
    mean_rtt: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Sum {
    bits_per_second: f64,
    retransmits: Option<u64>,
    jitter_ms: Option<f64>,
    lost_packets: Option<u64>,
    packets: Option<u64>,
    lost_percent: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Cpu {
    host_total: Option<f64>,
    remote_total: Option<f64>,
}

/// Parses the client's `-J` output of a test of `protocol`.
pub fn parse(protocol: Protocol, json: &[u8]) -> Result<TestResult, Failure> {
    let report: Report = serde_json::from_slice(json).map_err(|e| {
        let what = if json.iter().all(u8::is_ascii_whitespace) { "empty output".to_string() } else { e.to_string() };
        Failure::new(FailureReason::Parse, format!("iperf3 output is not its JSON report: {what}"))
    })?;
    if let Some(error) = report.error.filter(|e| !e.is_empty()) {
        return Err(Failure::new(FailureReason::from_iperf3_error(&error), error));
    }
    let end = report.end.unwrap_or_default();
    let missing = |field: &str| Failure::new(FailureReason::Parse, format!("iperf3 JSON has no end.{field}"));
    // iperf3 runs the client as sender: host_total is the sender's CPU, remote_total the receiver's.
    let cpu = |pick: fn(&Cpu) -> Option<f64>| {
        end.cpu_utilization_percent.as_ref().and_then(pick).filter(|v| v.is_finite() && *v >= 0.0).map(|p| p / 100.0)
    };
    let sender_cpu = cpu(|c| c.host_total);
    let receiver_cpu = cpu(|c| c.remote_total);
    match protocol {
        Protocol::Tcp => {
            let sent = end.sum_sent.as_ref().ok_or_else(|| missing("sum_sent"))?;
            let received = end.sum_received.as_ref().ok_or_else(|| missing("sum_received"))?;
            let rtts: Vec<f64> = end
                .streams
                .iter()
                .filter_map(|s| s.sender.as_ref()?.mean_rtt)
                .filter(|rtt| rtt.is_finite() && *rtt > 0.0)
                .collect();
            // Each stream's share of the mean first: a sum of huge RTTs would overflow to +inf.
            let rtt_seconds = (!rtts.is_empty())
                .then(|| rtts.iter().map(|rtt| rtt / rtts.len() as f64).sum::<f64>() / 1e6)
                .filter(|seconds| seconds.is_finite() && *seconds > 0.0);
            Ok(TestResult::Tcp(TcpResult {
                sent_bytes_per_second: bytes_per_second(sent, "sum_sent")?,
                received_bytes_per_second: bytes_per_second(received, "sum_received")?,
                retransmits: sent.retransmits,
                rtt_seconds,
                sender_cpu_utilization_ratio: sender_cpu,
                receiver_cpu_utilization_ratio: receiver_cpu,
            }))
        }
        Protocol::Udp => {
            // 3.10+: sum_sent is the client's view, sum_received the server's. Before: only `sum`,
            // the sender's rate with the server's loss counts.
            let (sent, received) = match (&end.sum_sent, &end.sum_received, &end.sum) {
                (Some(sent), Some(received), _) => (sent, received),
                (_, _, Some(sum)) => (sum, sum),
                _ => return Err(missing("sum_received")),
            };
            let sent_bps = bytes_per_second(sent, "sum_sent")?;
            let lost_packets = received.lost_packets.ok_or_else(|| missing("sum_received.lost_packets"))?;
            let packets = received.packets.ok_or_else(|| missing("sum_received.packets"))?;
            let jitter_ms = received
                .jitter_ms
                .filter(|j| j.is_finite() && *j >= 0.0)
                .ok_or_else(|| missing("sum_received.jitter_ms"))?;
            if lost_packets > packets {
                return Err(Failure::new(
                    FailureReason::Parse,
                    format!("iperf3 JSON reports {lost_packets} lost of {packets} packets"),
                ));
            }
            let loss_ratio = if packets == 0 { 0.0 } else { lost_packets as f64 / packets as f64 };
            let received_bps = if std::ptr::eq(sent, received) {
                // Old versions: what arrived is what was sent less what was lost.
                sent_bps * (1.0 - received.lost_percent.map_or(loss_ratio, |p| p / 100.0)).clamp(0.0, 1.0)
            } else {
                bytes_per_second(received, "sum_received")?
            };
            Ok(TestResult::Udp(UdpResult {
                sent_bytes_per_second: sent_bps,
                received_bytes_per_second: received_bps,
                jitter_seconds: jitter_ms / 1000.0,
                lost_packets,
                packets,
                loss_ratio,
                sender_cpu_utilization_ratio: sender_cpu,
                receiver_cpu_utilization_ratio: receiver_cpu,
            }))
        }
    }
}

fn bytes_per_second(sum: &Sum, field: &str) -> Result<f64, Failure> {
    if sum.bits_per_second.is_finite() && sum.bits_per_second >= 0.0 {
        Ok(sum.bits_per_second / 8.0)
    } else {
        Err(Failure::new(FailureReason::Parse, format!("iperf3 JSON has an invalid end.{field}.bits_per_second")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TestSettings {
        TestSettings {
            iperf3: "iperf3".into(),
            duration: Duration::from_secs(5),
            udp_bitrate: "50M".into(),
            parallel: 1,
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(9),
        }
    }

    fn ip(text: &str) -> Address {
        crate::targets::address::parse_ip(text).unwrap()
    }

    #[test]
    fn argv_for_tcp_and_udp() {
        let tcp = client_argv(&settings(), Protocol::Tcp, &ip("198.18.0.2"), 5201, None);
        assert_eq!(
            tcp,
            [
                "iperf3",
                "--client",
                "198.18.0.2",
                "--port",
                "5201",
                "--json",
                "--interval",
                "0",
                "--time",
                "5",
                "--connect-timeout",
                "2000",
                "--version4"
            ]
        );
        let udp = client_argv(&TestSettings { parallel: 4, ..settings() }, Protocol::Udp, &ip("2001:db8::2"), 1, None);
        assert_eq!(udp[2..4], ["2001:db8::2", "--port"]);
        assert!(udp.contains(&"--version6".to_string()), "{udp:?}");
        assert!(udp.ends_with(&["--parallel".into(), "4".into(), "--udp".into(), "--bitrate".into(), "50M".into()]));
    }

    #[test]
    fn credentials_add_the_user_and_key_but_never_the_password() {
        let mut credentials =
            Credentials::new("mon".into(), "/etc/iperf3/public.pem".into(), "/run/secrets/password".into()).unwrap();
        credentials.password = Some(crate::credentials::Secret::new("hunter2"));
        let argv = client_argv(&settings(), Protocol::Tcp, &ip("198.18.0.2"), 5201, Some(&credentials));
        assert!(argv.ends_with(&[
            "--username".into(),
            "mon".into(),
            "--rsa-public-key-path".into(),
            "/etc/iperf3/public.pem".into()
        ]));
        assert!(!argv.iter().any(|a| a.contains("hunter2") || a.contains("/run/secrets")), "{argv:?}");
    }

    // Real iperf3 3.12 output (trimmed of fields the parser ignores).
    const TCP_3_12: &str = r#"{"start":{"version":"iperf 3.12"},"intervals":[],"end":{"streams":[{"sender":{"socket":5,"bytes":100,"bits_per_second":16241339584.7,"retransmits":3,"max_rtt":58,"min_rtt":50,"mean_rtt":58,"sender":true},"receiver":{"socket":5,"bits_per_second":1.6e10,"sender":true}}],
      "sum_sent":{"start":0,"end":1.003296,"seconds":1.003296,"bytes":2036858880,"bits_per_second":16241339584.728735,"retransmits":3,"sender":true},
      "sum_received":{"start":0,"end":1.007988,"seconds":1.007988,"bytes":2035679232,"bits_per_second":16156376718.77046,"sender":true},
      "cpu_utilization_percent":{"host_total":25.8692191958701,"host_user":0.43,"host_system":25.43,"remote_total":43.9697752188142,"remote_user":0.8,"remote_system":43.16},
      "sender_tcp_congestion":"bbr","receiver_tcp_congestion":"bbr"}}"#;

    const UDP_3_12: &str = r#"{"end":{"streams":[{"udp":{"socket":5,"bits_per_second":10222716.4,"jitter_ms":0.011,"lost_packets":0,"packets":39,"lost_percent":0,"out_of_order":0,"sender":true}}],
      "sum":{"start":0,"end":1.000441,"seconds":1.000441,"bytes":1277952,"bits_per_second":10222716.400956715,"jitter_ms":0.01104767799302215,"lost_packets":2,"packets":40,"lost_percent":5,"sender":true},
      "sum_sent":{"start":0,"end":1.000088,"seconds":1.000088,"bytes":1277952,"bits_per_second":10222716.400956715,"jitter_ms":0,"lost_packets":0,"packets":40,"lost_percent":0,"sender":true},
      "sum_received":{"start":0,"end":1.000441,"seconds":1.000441,"bytes":1245000,"bits_per_second":9711580.5,"jitter_ms":0.01104767799302215,"lost_packets":2,"packets":40,"lost_percent":5,"sender":false},
      "cpu_utilization_percent":{"host_total":2.371834515087725,"remote_total":0.23819376558055108}}}"#;

    // iperf3 3.9: UDP has only `sum`.
    const UDP_3_9: &str = r#"{"end":{"streams":[],"sum":{"start":0,"end":10,"seconds":10,"bytes":125000000,"bits_per_second":100000000,"jitter_ms":0.5,"lost_packets":10,"packets":1000,"lost_percent":1,"sender":true},"cpu_utilization_percent":{"host_total":1,"remote_total":2}}}"#;

    const REFUSED_3_12: &str = "{\n\t\"start\":\t{\n\t\t\"connected\":\t[],\n\t\t\"version\":\t\"iperf 3.12\"\n\t},\n\t\"intervals\":\t[],\n\t\"end\":\t{\n\t},\n\t\"error\":\t\"unable to connect to server: Connection refused\"\n}";

    #[test]
    fn parses_tcp() {
        let TestResult::Tcp(r) = parse(Protocol::Tcp, TCP_3_12.as_bytes()).unwrap() else { panic!("not tcp") };
        assert!((r.sent_bytes_per_second - 16241339584.728735 / 8.0).abs() < 1e-3);
        assert!((r.received_bytes_per_second - 16156376718.77046 / 8.0).abs() < 1e-3);
        assert_eq!(r.retransmits, Some(3));
        assert!((r.rtt_seconds.unwrap() - 58e-6).abs() < 1e-12);
        assert!((r.sender_cpu_utilization_ratio.unwrap() - 0.258692191958701).abs() < 1e-12);
        assert!((r.receiver_cpu_utilization_ratio.unwrap() - 0.439697752188142).abs() < 1e-12);
    }

    #[test]
    fn parses_udp_of_3_12() {
        let TestResult::Udp(r) = parse(Protocol::Udp, UDP_3_12.as_bytes()).unwrap() else { panic!("not udp") };
        assert!((r.sent_bytes_per_second - 10222716.400956715 / 8.0).abs() < 1e-6);
        assert!((r.received_bytes_per_second - 9711580.5 / 8.0).abs() < 1e-6);
        assert_eq!((r.lost_packets, r.packets), (2, 40));
        assert!((r.loss_ratio - 0.05).abs() < 1e-12);
        assert!((r.jitter_seconds - 0.01104767799302215e-3).abs() < 1e-15);
    }

    #[test]
    fn parses_udp_of_3_9() {
        let TestResult::Udp(r) = parse(Protocol::Udp, UDP_3_9.as_bytes()).unwrap() else { panic!("not udp") };
        assert!((r.sent_bytes_per_second - 12_500_000.0).abs() < 1e-6);
        assert!((r.received_bytes_per_second - 12_375_000.0).abs() < 1e-6);
        assert!((r.loss_ratio - 0.01).abs() < 1e-12);
    }

    #[test]
    fn errors_in_the_json_are_failures_with_a_reason() {
        let failure = parse(Protocol::Tcp, REFUSED_3_12.as_bytes()).unwrap_err();
        assert_eq!(failure.reason, FailureReason::Refused);
        assert_eq!(failure.detail, "unable to connect to server: Connection refused");
        let cases = [
            ("the server is busy running a test. try again later", FailureReason::Busy),
            ("unable to connect to server: No route to host", FailureReason::Unreachable),
            (
                "unable to connect to server - server may have stopped running or use a different port, firewall issue, etc.: Connection timed out",
                FailureReason::Unreachable,
            ),
            ("test authorization failed", FailureReason::Auth),
            (
                "iperf3: parameter error - you must specify a username, password, and path to a valid RSA public key",
                FailureReason::Auth,
            ),
            ("control socket has closed unexpectedly", FailureReason::Interrupted),
            ("unable to write to stream socket: Connection reset by peer", FailureReason::Interrupted),
            ("unable to receive results: Bad file descriptor", FailureReason::Interrupted),
            ("interrupt - the server has terminated", FailureReason::Interrupted),
            ("unable to receive control message: Connection reset by peer", FailureReason::Interrupted),
            // Reset while connecting: the server between two tests, retried as transient.
            ("unable to connect to server: Connection reset by peer", FailureReason::Error),
            ("unable to read from stream socket: Resource temporarily unavailable", FailureReason::Error),
        ];
        for (message, reason) in cases {
            assert_eq!(FailureReason::from_iperf3_error(message), reason, "{message}");
        }
    }

    #[test]
    fn bad_output_is_a_parse_failure_never_a_panic() {
        let truncated = &TCP_3_12[..TCP_3_12.len() / 2];
        let wrong_shape = r#"{"end":{"sum_sent":{"bits_per_second":"fast"}}}"#;
        let negative = TCP_3_12.replace("16156376718.77046", "-1");
        let no_sums = r#"{"end":{}}"#;
        let udp_more_lost = UDP_3_12.replace(
            "\"lost_packets\":2,\"packets\":40,\"lost_percent\":5,\"sender\":false",
            "\"lost_packets\":50,\"packets\":40,\"lost_percent\":5,\"sender\":false",
        );
        for (protocol, text) in [
            (Protocol::Tcp, ""),
            (Protocol::Tcp, "iperf3: error - unable to connect"),
            (Protocol::Tcp, truncated),
            (Protocol::Tcp, wrong_shape),
            (Protocol::Tcp, negative.as_str()),
            (Protocol::Tcp, no_sums),
            (Protocol::Udp, no_sums),
            (Protocol::Udp, udp_more_lost.as_str()),
            (Protocol::Tcp, "[1,2,3]"),
            (Protocol::Tcp, "null"),
        ] {
            let failure = parse(protocol, text.as_bytes()).unwrap_err();
            assert_eq!(failure.reason, FailureReason::Parse, "{text:?}: {failure:?}");
        }
    }

    // iperf3 3.16 (multi-threaded: host_total can pass 100 %), trimmed.
    const TCP_3_16: &str = r#"{"start":{"version":"iperf 3.16"},"intervals":[],"end":{"streams":[{"sender":{"socket":5,"start":0,"end":10.000691,"seconds":10.000691,"bytes":86734274560,"bits_per_second":69382625308.5912,"retransmits":0,"max_snd_cwnd":3798014,"max_snd_wnd":6192128,"max_rtt":35,"min_rtt":24,"mean_rtt":26,"sender":true},"receiver":{"socket":5,"bits_per_second":69381438967.961,"sender":true}}],
      "sum_sent":{"start":0,"end":10.000691,"seconds":10.000691,"bytes":86734274560,"bits_per_second":69382625308.5912,"retransmits":0,"sender":true},
      "sum_received":{"start":0,"end":10.000862,"seconds":10.000862,"bytes":86734274560,"bits_per_second":69381438967.961,"sender":true},
      "cpu_utilization_percent":{"host_total":102.507701117166,"host_user":0.8030118769529,"host_system":101.704689240213,"remote_total":75.6893571812466},
      "sender_tcp_congestion":"cubic","receiver_tcp_congestion":"cubic"}}"#;

    // A sender without TCP_INFO (macOS, FreeBSD): no retransmits, no RTT.
    const TCP_NO_TCP_INFO: &str = r#"{"end":{"streams":[{"sender":{"socket":5,"bits_per_second":1e9,"sender":true}}],"sum_sent":{"bits_per_second":1e9,"sender":true},"sum_received":{"bits_per_second":9.9e8,"sender":true}}}"#;

    #[test]
    fn parses_tcp_of_3_16_and_senders_without_tcp_info() {
        let TestResult::Tcp(r) = parse(Protocol::Tcp, TCP_3_16.as_bytes()).unwrap() else { panic!("not tcp") };
        assert!((r.sender_cpu_utilization_ratio.unwrap() - 1.02507701117166).abs() < 1e-12);
        assert!((r.rtt_seconds.unwrap() - 26e-6).abs() < 1e-12);
        assert_eq!(r.retransmits, Some(0));
        let TestResult::Tcp(r) = parse(Protocol::Tcp, TCP_NO_TCP_INFO.as_bytes()).unwrap() else { panic!("not tcp") };
        assert_eq!((r.retransmits, r.rtt_seconds, r.sender_cpu_utilization_ratio), (None, None, None));
        assert!((r.received_bytes_per_second - 9.9e8 / 8.0).abs() < 1e-3);
    }

    #[test]
    fn nulls_for_non_finite_numbers_are_absent_values_or_parse_failures() {
        // cJSON prints NaN and infinity as null.
        let cpu = TCP_3_12.replace("25.8692191958701", "null");
        let TestResult::Tcp(r) = parse(Protocol::Tcp, cpu.as_bytes()).unwrap() else { panic!("not tcp") };
        assert_eq!(r.sender_cpu_utilization_ratio, None);
        let percent = UDP_3_12.replace("\"lost_percent\":5,\"sender\":false", "\"lost_percent\":null,\"sender\":false");
        assert!(parse(Protocol::Udp, percent.as_bytes()).is_ok());
        let rate = TCP_3_12.replace("16156376718.77046", "null");
        assert_eq!(parse(Protocol::Tcp, rate.as_bytes()).unwrap_err().reason, FailureReason::Parse);
        let jitter = UDP_3_12.replace(
            "\"jitter_ms\":0.01104767799302215,\"lost_packets\":2,\"packets\":40,\"lost_percent\":5,\"sender\":false",
            "\"jitter_ms\":null,\"lost_packets\":2,\"packets\":40,\"lost_percent\":5,\"sender\":false",
        );
        assert_eq!(parse(Protocol::Udp, jitter.as_bytes()).unwrap_err().reason, FailureReason::Parse);
    }

    #[test]
    fn huge_or_tiny_rtts_give_a_finite_positive_mean_or_none() {
        // Caught by the fuzz target's invariant (fuzz/, seeded with two huge RTTs): two streams of
        // 1e308 µs summed to +inf before being averaged.
        let huge = r#"{"end":{"streams":[{"sender":{"mean_rtt":1e308}},{"sender":{"mean_rtt":1e308}}],"sum_sent":{"bits_per_second":1},"sum_received":{"bits_per_second":1}}}"#;
        let TestResult::Tcp(r) = parse(Protocol::Tcp, huge.as_bytes()).unwrap() else { panic!("not tcp") };
        assert_eq!(r.rtt_seconds, Some(1e302));
        let tiny = huge.replace("1e308", "5e-324");
        let TestResult::Tcp(r) = parse(Protocol::Tcp, tiny.as_bytes()).unwrap() else { panic!("not tcp") };
        assert_eq!(r.rtt_seconds, None, "a subnormal RTT in µs is 0 s");
    }

    #[test]
    fn hostile_json_is_a_parse_failure_never_a_panic() {
        let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let object_nested = format!("{}{}", "{\"end\":".repeat(50_000), "}".repeat(50_000));
        let negative_loss = UDP_3_12.replace(
            "\"lost_packets\":2,\"packets\":40,\"lost_percent\":5,\"sender\":false",
            "\"lost_packets\":-3,\"packets\":40,\"lost_percent\":5,\"sender\":false",
        );
        let cases: Vec<(Protocol, Vec<u8>)> = vec![
            (Protocol::Tcp, nested.into_bytes()),
            (Protocol::Tcp, object_nested.into_bytes()),
            (Protocol::Tcp, TCP_3_12.replace("16156376718.77046", "1e400").into_bytes()),
            (Protocol::Udp, negative_loss.into_bytes()),
            (Protocol::Tcp, format!("{TCP_3_12}{TCP_3_12}").into_bytes()),
            (Protocol::Tcp, b"{\"error\": \"\xff\xfe\"}".to_vec()),
            (Protocol::Tcp, b"\xef\xbb\xbf{}".to_vec()),
            (
                Protocol::Udp,
                br#"{"end":{"sum":{"bits_per_second":1,"jitter_ms":0,"lost_packets":1,"packets":0}}}"#.to_vec(),
            ),
        ];
        for (protocol, bytes) in cases {
            let failure = parse(protocol, &bytes).unwrap_err();
            assert_eq!(
                failure.reason,
                FailureReason::Parse,
                "{:?}: {failure:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
            );
        }
        let interrupted = r#"{"end":{},"error":"interrupt - the client has terminated"}"#;
        assert_eq!(parse(Protocol::Tcp, interrupted.as_bytes()).unwrap_err().reason, FailureReason::Error);
    }
}
