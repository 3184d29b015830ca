//! Remote-write 1.0 and 2.0 conformance, case by case, against a recording receiver that decodes
//! every request (and speaks 2.0 unless told otherwise). Runs produce real samples from a local
//! `iperf3 -s` (a 1-second TCP test in star mode); batching and the backoff cap are driven through
//! the library's delivery stage with crafted samples. `--remote-write-message auto` falls back to
//! 1.0 on a 415 and on a 2xx without the written-samples header; a partial 2.0 write fails the
//! delivery. The last tests use a real Prometheus 2.42 (1.0 only).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use iperf3_monitor::config::{Cli, Command, RunConfig};
use iperf3_monitor::iperf3::{Protocol, TcpResult, TestResult};
use iperf3_monitor::measure::{Measurement, Outcome};
use iperf3_monitor::samples::{self, Sample};
use iperf3_monitor::sinks::http::Backoff;
use iperf3_monitor::sinks::remote_write::{MAX_SERIES_PER_REQUEST, prompb, v2};
use iperf3_monitor::sinks::{Delivery, Sinks};
use prost::Message;
use support::receiver::{Receiver, Recorded, Reply, Tls};
use support::{LocalIperf3, Run, monitor, with};

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A run against the local server, pushing to `url`.
fn run_to(server: &LocalIperf3, url: &str, extra: &[&str]) -> Run {
    let args = with(&with(&server.run_args(), &["--remote-write-url", url]), extra);
    monitor(&args, &[])
}

/// The two messages, by their flag value.
const MESSAGES: [&str; 2] = ["v1", "v2"];

/// Which message a request is, by its headers (checked against the spec of that message).
fn message_of(request: &Recorded) -> &'static str {
    assert_eq!(request.header("content-encoding"), Some("snappy"));
    match (request.header("content-type"), request.header("x-prometheus-remote-write-version")) {
        (Some("application/x-protobuf"), Some("0.1.0")) => "v1",
        (Some(v2::CONTENT_TYPE_V2), Some("2.0.0")) => "v2",
        other => panic!("not a remote-write request: {other:?}"),
    }
}

/// The body as the spec wants it: snappy block format (not framed) around a 1.0 WriteRequest
/// or a 2.0 Request (by its headers). A 2.0 request's symbol table is checked (`""` first, each
/// string once, every reference in it) and the request is returned as the 1.0 request it
/// stands for, its per-series metadata as one entry per metric (which must agree).
fn decode(request: &Recorded) -> prompb::WriteRequest {
    // The framed format starts with its stream identifier chunk (0xff, length 6, "sNaPpY").
    assert_ne!(request.body.get(..4), Some(&b"\xff\x06\x00\x00"[..]), "snappy framed format");
    let raw = snap::raw::Decoder::new().decompress_vec(&request.body).expect("snappy block format");
    if message_of(request) == "v1" {
        return prompb::WriteRequest::decode(raw.as_slice()).expect("a WriteRequest");
    }
    let request = v2::writev2::Request::decode(raw.as_slice()).expect("an io.prometheus.write.v2.Request");
    let symbols = &request.symbols;
    assert_eq!(symbols.first().map(String::as_str), Some(""), "symbols must start with \"\"");
    let unique: std::collections::HashSet<&String> = symbols.iter().collect();
    assert_eq!(unique.len(), symbols.len(), "a symbol twice: {symbols:?}");
    let symbol = |r: u32| symbols.get(r as usize).unwrap_or_else(|| panic!("ref {r} outside the symbols")).clone();
    let mut metadata: BTreeMap<String, prompb::MetricMetadata> = BTreeMap::new();
    let timeseries = request
        .timeseries
        .iter()
        .map(|series| {
            assert_eq!(series.labels_refs.len() % 2, 0, "odd labels_refs");
            let labels: Vec<prompb::Label> = series
                .labels_refs
                .chunks(2)
                .map(|pair| prompb::Label { name: symbol(pair[0]), value: symbol(pair[1]) })
                .collect();
            let name = labels.iter().find(|l| l.name == "__name__").map(|l| l.value.clone()).unwrap_or_default();
            let m = series.metadata.unwrap_or_else(|| panic!("{name}: no metadata"));
            let entry = prompb::MetricMetadata {
                r#type: m.r#type,
                metric_family_name: name.clone(),
                help: symbol(m.help_ref),
                unit: symbol(m.unit_ref),
            };
            let known = metadata.entry(name.clone()).or_insert_with(|| entry.clone());
            assert_eq!(*known, entry, "{name}: two metadata in one request");
            prompb::TimeSeries {
                labels,
                samples: series
                    .samples
                    .iter()
                    .map(|s| prompb::Sample { value: s.value, timestamp: s.timestamp })
                    .collect(),
            }
        })
        .collect();
    prompb::WriteRequest { timeseries, metadata: metadata.into_values().collect() }
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Every rule of the spec about series, labels and samples; timestamps in milliseconds within
/// [from_ms, to_ms]. Returns each series' labels as (name, value) pairs.
fn assert_conformant(request: &prompb::WriteRequest, from_ms: i64, to_ms: i64) -> Vec<Vec<(String, String)>> {
    let mut seen = std::collections::HashSet::new();
    let mut all = Vec::new();
    for series in &request.timeseries {
        let labels: Vec<(String, String)> = series.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
        let names: Vec<&str> = labels.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "labels not sorted or repeated: {names:?}");
        let metric = labels.iter().find(|(n, _)| n == "__name__").map(|(_, v)| v.as_str());
        let metric = metric.unwrap_or_else(|| panic!("no __name__ in {labels:?}"));
        assert!(is_metric_name(metric), "metric name {metric:?}");
        for (name, value) in &labels {
            assert!(!value.is_empty(), "{metric}: label {name} is empty");
            assert!(is_label_name(name), "{metric}: label name {name:?}");
            assert!(name == "__name__" || !name.starts_with("__"), "{metric}: reserved label {name}");
        }
        assert!(seen.insert(labels.clone()), "series {labels:?} twice in one request");
        assert!(!series.samples.is_empty(), "{metric}: a series without samples");
        let stamps: Vec<i64> = series.samples.iter().map(|s| s.timestamp).collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{metric}: samples out of order {stamps:?}");
        for stamp in stamps {
            assert!((from_ms..=to_ms).contains(&stamp), "{metric}: {stamp} not a millisecond in [{from_ms}, {to_ms}]");
        }
        all.push(labels);
    }
    all
}

fn delivery(run: &Run) -> serde_json::Value {
    let report = run.report();
    let deliveries = report["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    deliveries[0].clone()
}

fn gaps(requests: &[Recorded]) -> Vec<f64> {
    requests.windows(2).map(|w| (w[1].at - w[0].at).as_secs_f64()).collect()
}

#[test]
fn a_run_sends_spec_conformant_requests_of_both_messages() {
    let server = LocalIperf3::start();
    for message in MESSAGES {
        let receiver = Receiver::start(vec![]);
        let start = now_ms();
        let run = run_to(&server, &receiver.url("/api/v1/write"), &["--remote-write-message", message]);
        let end = now_ms();
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let requests = receiver.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/api/v1/write"));
        assert_eq!(message_of(request), message);
        let agent = request.header("user-agent").unwrap();
        assert!(agent.starts_with("iperf3-monitor/") && agent.len() > "iperf3-monitor/".len(), "{agent}");

        let write = decode(request);
        assert_conformant(&write, start, end);
        let report = run.report();
        // The request holds the report's figures and the run's sample count.
        let sent: usize = write.timeseries.iter().map(|s| s.samples.len()).sum();
        assert_eq!(delivery(&run)["samples"], sent);
        assert_eq!(delivery(&run)["delivered_samples"], sent);
        assert_eq!(delivery(&run)["message"], message);
        let measured = report["measurements"][0]["outcome"]["success"]["received_bytes_per_second"].as_f64().unwrap();
        let received = write
            .timeseries
            .iter()
            .find(|s| s.labels.iter().any(|l| l.name == "__name__" && l.value == "iperf3_received_bytes_per_second"))
            .expect("iperf3_received_bytes_per_second sent");
        assert_eq!(received.samples[0].value, measured);
        let labels: BTreeMap<&str, &str> =
            received.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        assert_eq!(labels["source_node"], "here");
        assert_eq!(labels["destination_node"], "local");
        assert_eq!(labels["protocol"], "tcp");
        // Every metric sent is described: a gauge with its help (and, in 2.0, its unit).
        for series in &write.timeseries {
            let name = &series.labels.iter().find(|l| l.name == "__name__").unwrap().value;
            let metric = samples::ALL_METRICS.iter().find(|m| m.name == name).unwrap();
            let meta = write.metadata.iter().find(|m| &m.metric_family_name == name).expect("metadata");
            assert_eq!(meta.r#type, prompb::metric_metadata::MetricType::Gauge as i32);
            assert_eq!(meta.help, metric.help);
            let unit = if message == "v2" { v2::unit(metric) } else { "" };
            assert_eq!(meta.unit, unit, "{name}");
        }
        if message == "v2" {
            let rtt = write.metadata.iter().find(|m| m.metric_family_name == "iperf3_rtt_seconds").unwrap();
            assert_eq!(rtt.unit, "seconds");
        }
    }
}

#[test]
fn auto_is_the_default_and_sends_2_0_to_a_2_0_receiver() {
    let server = LocalIperf3::start();
    let receiver = Receiver::start(vec![]);
    let run = run_to(&server, &receiver.url("/api/v1/write"), &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(message_of(&requests[0]), "v2");
    assert_eq!(delivery(&run)["message"], "v2");
    assert!(delivery(&run).get("fallback").is_none());
}

/// A run with `auto` whose receiver answers the first request with `first`: it is resent as
/// 1.0 with the same series, the run delivers everything, and the report says why.
fn falls_back(receiver: Receiver, reason: &str) {
    let server = LocalIperf3::start();
    let run = run_to(&server, &receiver.url("/api/v1/write"), &["--remote-write-message", "auto"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let requests = receiver.requests();
    assert_eq!(requests.iter().map(message_of).collect::<Vec<_>>(), ["v2", "v1"]);
    assert_eq!(decode(&requests[0]).timeseries, decode(&requests[1]).timeseries, "the resent series differ");
    let delivery = delivery(&run);
    assert_eq!(delivery["delivered_samples"], delivery["samples"]);
    assert_eq!((delivery["requests"].as_u64(), delivery["attempts"].as_u64()), (Some(2), Some(2)));
    assert_eq!(delivery["message"], "v1");
    let fallback = delivery["fallback"].as_str().unwrap();
    assert!(fallback.contains(reason), "{fallback}");
    assert!(run.stderr.contains("sending 1.0 for the rest of the run"), "{}", run.stderr);
}

#[test]
fn auto_falls_back_to_1_0_on_415() {
    falls_back(Receiver::start(vec![Reply::status(415).body("unsupported proto")]), "HTTP 415");
}

#[test]
fn auto_falls_back_to_1_0_on_a_2xx_without_the_written_samples_header() {
    // Prometheus 2.x: 204, no header, nothing stored.
    falls_back(Receiver::start_v1_only(vec![Reply::status(204)]), v2::SAMPLES_WRITTEN);
}

#[tokio::test]
async fn after_a_fall_back_every_request_of_the_run_is_1_0() {
    let receiver = Receiver::start_v1_only(vec![]);
    let now = now_ms();
    let samples: Vec<Sample> = (0..4_500).map(|i| sample(i, now)).collect();
    let delivery =
        deliver(&config(&receiver.url("/api/v1/write"), &["--remote-write-message", "auto"]), &samples).await;
    assert!(delivery.ok(), "{delivery:?}");
    let requests = receiver.requests();
    assert_eq!(requests.iter().map(message_of).collect::<Vec<_>>(), ["v2", "v1", "v1", "v1"]);
    assert_eq!((delivery.requests, delivery.delivered_samples), (4, 4_500));
}

#[test]
fn v2_against_a_1_0_receiver_reports_every_sample_undelivered() {
    let server = LocalIperf3::start();
    let receiver = Receiver::start_v1_only(vec![]);
    let run = run_to(&server, &receiver.url("/api/v1/write"), &["--remote-write-message", "v2"]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert_eq!(receiver.requests().len(), 1);
    let delivery = delivery(&run);
    assert_eq!(delivery["delivered_samples"], 0);
    let error = delivery["errors"][0].as_str().unwrap();
    assert!(error.contains(v2::SAMPLES_WRITTEN) && error.contains("--remote-write-message auto or v1"), "{error}");
}

#[test]
fn a_partial_2_0_write_is_a_warning_with_counts_and_exit_3() {
    let server = LocalIperf3::start();
    for (reply, what) in [
        (Reply::status(204).header(v2::SAMPLES_WRITTEN, "2"), "wrote only 2 of"),
        (Reply::status(400).header(v2::SAMPLES_WRITTEN, "2").body("out of order sample"), "2 of"),
    ] {
        let receiver = Receiver::start(vec![reply]);
        let run = run_to(&server, &receiver.url("/api/v1/write"), &[]);
        assert_eq!(run.code, Some(3), "{}", run.stderr);
        assert_eq!(receiver.requests().len(), 1, "a partial write is not retried");
        let delivery = delivery(&run);
        let sent = delivery["samples"].as_u64().unwrap();
        assert_eq!(delivery["delivered_samples"], 2);
        let error = delivery["errors"][0].as_str().unwrap();
        assert!(error.contains(&format!("{what} {sent} samples")), "{error}");
        assert!(
            run.stderr.contains("WARN") && run.stderr.contains(&format!("{what} {sent} samples")),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(&format!("sent={sent}")) && run.stderr.contains("written=2"), "{}", run.stderr);
    }
}

#[test]
fn server_errors_are_retried_with_a_byte_identical_body_and_growing_backoff() {
    let server = LocalIperf3::start();
    for message in MESSAGES {
        let script = [500, 502, 503, 504].map(|code| Reply::status(code).body(format!("error {code}"))).to_vec();
        let receiver = Receiver::start(script);
        let run = run_to(&server, &receiver.url("/api/v1/write"), &["--remote-write-message", message]);
        assert_eq!(run.code, Some(0), "{message}: delivered after retries: {}", run.stderr);
        let requests = receiver.requests();
        assert_eq!(requests.len(), 5);
        assert!(requests.iter().all(|r| r.body == requests[0].body), "{message}: a retry changed the body");
        assert!(requests.iter().all(|r| message_of(r) == message));
        assert_eq!(delivery(&run)["attempts"], 5);
        assert_eq!(delivery(&run)["delivered_samples"], delivery(&run)["samples"]);
        for code in ["500", "502", "503", "504"] {
            assert!(run.stderr.contains(&format!("HTTP {code}")), "no HTTP {code} in the retry logs");
        }
        // Retry n waits between half and all of 0.5s × 2^n.
        let gaps = gaps(&requests);
        eprintln!("{message}: gaps between attempts: {gaps:.3?}");
        for (n, gap) in gaps.iter().enumerate() {
            let full = 0.5 * 2f64.powi(n as i32);
            assert!(
                *gap >= full / 2.0 - 0.01 && *gap <= full + 0.4,
                "retry {n}: {gap:.3}s, expected [{}, {full}]s",
                full / 2.0
            );
        }
    }
}

#[test]
fn client_errors_are_not_retried_and_the_run_exits_3() {
    let server = LocalIperf3::start();
    for (code, message) in [400, 401, 404, 413].into_iter().flat_map(|code| MESSAGES.map(|m| (code, m))) {
        let text = format!("refused with {code} by the test receiver");
        let receiver = Receiver::start(vec![Reply::status(code).body(text.clone())]);
        let run = run_to(
            &server,
            &receiver.url("/api/v1/write"),
            &["--push-retries", "5", "--remote-write-message", message],
        );
        assert_eq!(run.code, Some(3), "{code} {message}: {}", run.stderr);
        assert_eq!(receiver.requests().len(), 1, "{code} was retried");
        let delivery = delivery(&run);
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["delivered_samples"], 0);
        let error = delivery["errors"][0].as_str().unwrap();
        assert!(error.contains(&format!("HTTP {code}")) && error.contains(&text), "{error}");
        assert!(error.contains("rejected; not retried"), "{error}");
        assert!(run.stderr.contains(&text), "{code}: the error body is not logged");
        // The measured results are still in the report.
        assert_eq!(run.report()["measurements"].as_array().unwrap().len(), 1);
    }
}

/// A run whose first request is answered with `first`, the second with 200: the seconds between
/// the two attempts, after checking that the retry carried the same body.
fn retried_once(first: Reply, extra: &[&str]) -> (f64, Run) {
    let server = LocalIperf3::start();
    let receiver = Receiver::start(vec![first]);
    let run = run_to(&server, &receiver.url("/api/v1/write"), extra);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body, "a retry changed the body");
    (gaps(&requests)[0], run)
}

#[test]
fn too_many_requests_is_retried_after_retry_after_seconds() {
    for message in MESSAGES {
        let extra = ["--remote-write-message", message];
        let (gap, _) = retried_once(Reply::status(429).header("Retry-After", "2"), &extra);
        eprintln!("{message}: Retry-After: 2 → waited {gap:.3}s");
        // Without the header the first retry waits at most 0.5s.
        assert!((2.0..2.8).contains(&gap), "{message}: waited {gap:.3}s for Retry-After: 2");
    }
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    let (gap, _) = retried_once(Reply::status(503).retry_after_date_in(Duration::from_secs(3)), &[]);
    eprintln!("Retry-After: <now + 3s as an HTTP date> → waited {gap:.3}s");
    // An HTTP date has whole seconds: the wait is between 2 and 3 seconds.
    assert!((2.0..3.5).contains(&gap), "waited {gap:.3}s");
}

#[test]
fn a_refused_connection_is_retried_until_the_receiver_comes_up() {
    let server = LocalIperf3::start();
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let running = support::spawn_monitor(&with(&server.run_args(), &["--remote-write-url", &url]), &[]);
    // The 1-second test ends after about 1.2s; the receiver comes up 1.5s later.
    std::thread::sleep(Duration::from_millis(2700));
    let receiver = Receiver::start_on(port, vec![], Tls::None);
    let run = support::finish(running);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(receiver.requests().len(), 1);
    let attempts = delivery(&run)["attempts"].as_u64().unwrap();
    assert!(attempts >= 2, "{attempts} attempts");
    assert!(run.stderr.contains("retrying") && run.stderr.to_lowercase().contains("refused"), "{}", run.stderr);
}

#[test]
fn a_refused_connection_is_retried_until_the_deadline_then_exit_3() {
    let server = LocalIperf3::start();
    let url = format!("http://127.0.0.1:{}/api/v1/write", support::free_port());
    let run = run_to(&server, &url, &["--push-retries", "100", "--push-deadline", "3"]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let delivery = delivery(&run);
    let attempts = delivery["attempts"].as_u64().unwrap();
    let error = delivery["errors"][0].as_str().unwrap();
    eprintln!("refused until a 3s deadline: {attempts} attempts, run took {:.2}s: {error}", run.elapsed.as_secs_f64());
    assert!(attempts >= 3, "{attempts} attempts");
    assert!(error.contains("delivery deadline"), "{error}");
    let measuring = run.report()["measurements"][0]["duration_seconds"].as_f64().unwrap();
    assert!(run.elapsed.as_secs_f64() < measuring + 3.0 + 1.0, "the deadline did not stop the retries");
}

#[test]
fn a_timed_out_request_is_retried_with_the_same_body() {
    let (gap, run) = retried_once(Reply::status(200).after(Duration::from_secs(5)), &["--push-timeout", "1"]);
    eprintln!("timeout 1s + backoff → second attempt after {gap:.3}s");
    assert!((1.25..2.0).contains(&gap), "{gap:.3}s: 1s timeout and a backoff of 0.25–0.5s");
    assert!(run.stderr.contains("timed out"), "{}", run.stderr);
}

#[test]
fn timeouts_until_the_deadline_exit_3() {
    let server = LocalIperf3::start();
    let receiver = Receiver::start(vec![Reply::status(200).after(Duration::from_secs(30)); 20]);
    let run = run_to(&server, &receiver.url("/api/v1/write"), &["--push-timeout", "1", "--push-deadline", "4"]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let delivery = delivery(&run);
    let attempts = delivery["attempts"].as_u64().unwrap();
    assert!(attempts >= 2 && receiver.requests().len() as u64 == attempts, "{attempts} attempts");
    let measuring = run.report()["measurements"][0]["duration_seconds"].as_f64().unwrap();
    eprintln!("timeouts until a 4s deadline: {attempts} attempts, run took {:.2}s", run.elapsed.as_secs_f64());
    assert!(run.elapsed.as_secs_f64() < measuring + 4.0 + 1.0, "the deadline did not stop the retries");
}

#[test]
fn a_2xx_body_is_ignored() {
    let server = LocalIperf3::start();
    let body = "ERROR: this 200 body means nothing";
    let receiver = Receiver::start(vec![Reply::status(200).body(body)]);
    let run = run_to(&server, &receiver.url("/api/v1/write"), &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(receiver.requests().len(), 1);
    assert!(!run.stderr.contains(body) && !run.stdout.contains(body));
    assert!(delivery(&run)["errors"].as_array().unwrap().is_empty());
}

#[test]
fn an_error_body_is_logged_verbatim_but_truncated() {
    let server = LocalIperf3::start();
    let head = r#"out of order sample: {"series": "iperf3_test_success{a=\"b\"}"} <details> & more; "#;
    let body = format!("{head}{}END-OF-BODY", "x".repeat(4000));
    let receiver = Receiver::start(vec![Reply::status(400).body(body.clone())]);
    let run = run_to(&server, &receiver.url("/api/v1/write"), &[]);
    assert_eq!(run.code, Some(3));
    let shown = &body[..iperf3_monitor::sinks::http::MAX_ERROR_BODY];
    assert!(run.stderr.contains(shown), "the first bytes of the body are not logged verbatim: {}", run.stderr);
    assert!(!run.stderr.contains("END-OF-BODY") && !run.stdout.contains("END-OF-BODY"), "not truncated");
    assert!(run.stderr.contains(&format!("({} bytes in all)", body.len())), "{}", run.stderr);
}

/// The configuration of a run pushing to `url` (what the binary would build from these flags).
fn config(url: &str, extra: &[&str]) -> RunConfig {
    let mut argv = vec!["iperf3-monitor", "run", "--inventory", "unused.yaml", "--remote-write-url", url];
    argv.extend_from_slice(extra);
    let Command::Run(args) = Cli::try_parse_from(argv).unwrap().command else { unreachable!("a run") };
    args.into_config(None).unwrap()
}

/// The run's delivery stage, fed crafted samples.
async fn deliver(config: &RunConfig, samples: &[Sample]) -> Delivery {
    let sinks = Sinks::new(config.sink_settings()).await.unwrap();
    let mut deliveries = sinks.deliver(samples).await;
    assert_eq!(deliveries.len(), 1);
    deliveries.remove(0)
}

fn sample(source: usize, timestamp_ms: i64) -> Sample {
    Sample {
        metric: &samples::TEST_SUCCESS,
        labels: vec![("destination_node", "b".into()), ("source_node", format!("n{source:05}").into())].into(),
        value: 1.0,
        timestamp_ms,
    }
}

#[tokio::test]
async fn batches_are_bounded_and_every_series_arrives_once_in_order() {
    for message in MESSAGES {
        let receiver = Receiver::start(vec![]);
        let now = now_ms();
        // 4,500 series, two samples each, the later one first.
        let samples: Vec<Sample> = (0..4_500).flat_map(|i| [sample(i, now), sample(i, now - 1_000)]).collect();
        let config = config(&receiver.url("/api/v1/write"), &["--remote-write-message", message]);
        let delivery = deliver(&config, &samples).await;
        assert!(delivery.ok(), "{delivery:?}");
        let requests = receiver.requests();
        assert!(requests.iter().all(|r| message_of(r) == message));
        let sizes: Vec<usize> = requests.iter().map(|r| decode(r).timeseries.len()).collect();
        assert_eq!(sizes, [MAX_SERIES_PER_REQUEST, MAX_SERIES_PER_REQUEST, 500]);
        assert_eq!(delivery.requests, 3);
        let mut series = std::collections::HashSet::new();
        for request in &requests {
            for labels in assert_conformant(&decode(request), now - 1_000, now) {
                assert!(series.insert(labels.clone()), "{labels:?} in two requests");
            }
            assert!(decode(request).timeseries.iter().all(|s| s.samples.len() == 2));
        }
        assert_eq!(series.len(), 4_500);
    }
}

/// A run's samples go out a batch of measurements at a time (never all in memory at once):
/// every sample still arrives exactly once, each batch in requests of its own.
#[tokio::test]
async fn a_large_runs_samples_are_sent_batch_by_batch_and_all_arrive() {
    let receiver = Receiver::start(vec![]);
    let now = SystemTime::now();
    let tests = 2 * samples::BATCH_MEASUREMENTS + 500;
    let names: Vec<String> = (0..100).map(|i| format!("n{i:03}")).collect();
    let measurements: Vec<Measurement> = (0..tests)
        .map(|i| Measurement {
            source: names[i / 99].as_str().into(),
            destination: names[(i / 99 + 1 + i % 99) % 100].as_str().into(),
            protocol: Protocol::Tcp,
            ip_family: iperf3_monitor::targets::IpFamily::Ipv4,
            network: iperf3_monitor::targets::Network::Host,
            finished_at: now,
            duration_seconds: 1.0,
            round: i % 99,
            alone: false,
            cpu_bound: false,
            outcome: Outcome::Success(TestResult::Tcp(TcpResult {
                sent_bytes_per_second: i as f64,
                received_bytes_per_second: i as f64,
                retransmits: Some(0),
                rtt_seconds: None,
                sender_cpu_utilization_ratio: None,
                receiver_cpu_utilization_ratio: None,
            })),
        })
        .collect();
    let facts = samples::RunFacts {
        started_at: now,
        finished_at: now,
        nodes: 100,
        meshes: vec![iperf3_monitor::samples::MeshPairs::host_ipv4(Protocol::Tcp, 9_900)],
        pairs_without_ip_family: 0,
        rounds_run: 99,
        rounds_skipped: 0,
        tests_not_run: 0,
        switched_to_exclusive: false,
        plan: iperf3_monitor::schedule::Plan::whole_cycle(9_900, 99),
    };
    let run = samples::RunSamples::new(&measurements, &[], &facts, Some("lab"));
    let expected = samples::build(&measurements, &[], &facts, Some("lab"));
    let config = config(&receiver.url("/api/v1/write"), &[]);
    let sinks = Sinks::new(config.sink_settings()).await.unwrap();
    let delivery = sinks.deliver(&run).await.remove(0);
    assert!(delivery.ok(), "{delivery:?}");
    assert_eq!(delivery.samples, expected.len());
    // Six samples per test (success, duration, timestamp, both rates, retransmits); the last
    // batch also carries the run-level samples.
    let run_level = expected.len() - tests * 6;
    let full_batch = (samples::BATCH_MEASUREMENTS * 6).div_ceil(MAX_SERIES_PER_REQUEST);
    let last_batch = (500 * 6 + run_level).div_ceil(MAX_SERIES_PER_REQUEST);
    assert_eq!(delivery.requests, 2 * full_batch + last_batch);
    let mut received = BTreeMap::new();
    for request in receiver.requests() {
        let request = decode(&request);
        assert!(request.timeseries.len() <= MAX_SERIES_PER_REQUEST);
        for series in &request.timeseries {
            let labels: Vec<(String, String)> =
                series.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
            assert_eq!(series.samples.len(), 1, "{labels:?}");
            assert!(received.insert(labels.clone(), series.samples[0].value).is_none(), "{labels:?} twice");
        }
    }
    assert_eq!(received.len(), expected.len());
    let value_of = |metric: &str, source: &str, destination: &str| {
        received.iter().find_map(|(labels, value)| {
            let has = |name: &str, value: &str| labels.iter().any(|(n, v)| n == name && v == value);
            (has("__name__", metric) && has("source_node", source) && has("destination_node", destination))
                .then_some(*value)
        })
    };
    // The values are the measured ones: the last test of the last batch, for one.
    let last = &measurements[tests - 1];
    assert_eq!(value_of("iperf3_received_bytes_per_second", &last.source, &last.destination), Some((tests - 1) as f64));
}

#[tokio::test]
async fn backoff_grows_and_is_capped() {
    let receiver = Receiver::start(vec![Reply::status(503); 7]);
    let mut config = config(&receiver.url("/api/v1/write"), &["--push-retries", "10"]);
    // The default policy (0.5s doubling, capped at 30s) scaled down 12.5 times.
    let policy = Backoff { base: Duration::from_millis(40), cap: Duration::from_millis(160) };
    config.push.backoff = policy;
    let delivery = deliver(&config, &[sample(1, now_ms())]).await;
    assert!(delivery.ok(), "{delivery:?}");
    assert_eq!(delivery.attempts, 8);
    let gaps = gaps(&receiver.requests());
    eprintln!("gaps with a 40ms base and a 160ms cap: {gaps:.3?}");
    for (n, gap) in gaps.iter().enumerate() {
        let full = (0.040 * 2f64.powi(n as i32)).min(0.160);
        assert!(
            *gap >= full / 2.0 - 0.005 && *gap <= full + 0.1,
            "retry {n}: {gap:.3}s, expected [{}, {full}]",
            full / 2.0
        );
    }
    assert!(gaps[2] > gaps[0], "no growth: {gaps:?}");
}

#[test]
fn prometheus_rejects_a_sample_older_than_its_head_with_400_once() {
    let prometheus = common::Prometheus::start();
    let url = prometheus.remote_write_url();
    // A real run first, so that Prometheus's head starts at the present.
    let server = LocalIperf3::start();
    let run = monitor(&with(&server.run_args(), &["--remote-write-url", &url, "--remote-write-message", "v1"]), &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);

    let three_hours_ago = now_ms() - 3 * 3_600_000;
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = config(&url, &["--push-retries", "5", "--remote-write-message", "v1"]);
    let delivery = runtime.block_on(deliver(&config, &[sample(1, three_hours_ago)]));
    eprintln!("old sample: {delivery:?} in {:.3}s", started.elapsed().as_secs_f64());
    assert!(!delivery.ok());
    assert_eq!((delivery.attempts, delivery.delivered_samples), (1, 0));
    let error = &delivery.errors[0];
    assert!(error.contains("HTTP 400") && error.contains("out of bounds") && error.contains("not retried"), "{error}");
    // Prometheus counted exactly one rejected write.
    let (_, metrics) = common::http_get(&format!("{}/metrics", prometheus.url)).unwrap();
    let rejected: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("prometheus_http_requests_total{")
                && l.contains("/api/v1/write")
                && l.contains("code=\"400\"")
        })
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].ends_with(" 1"), "{rejected:?}");
}

/// Prometheus 2.42 answers a 2.0 request with 204 and stores nothing: `auto` (the default) must
/// notice, fall back and land every sample over 1.0, with its exact value and timestamp.
#[test]
fn auto_against_prometheus_2_42_falls_back_and_lands_every_sample() {
    let prometheus = common::Prometheus::start();
    let server = LocalIperf3::start();
    let run = monitor(&with(&server.run_args(), &["--remote-write-url", &prometheus.remote_write_url()]), &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let delivery = delivery(&run);
    assert_eq!(delivery["delivered_samples"], delivery["samples"]);
    assert_eq!(delivery["message"], "v1");
    assert!(delivery["fallback"].as_str().unwrap().contains(v2::SAMPLES_WRITTEN), "{delivery}");
    let report = run.report();
    let measured = &report["measurements"][0];
    let expected = measured["outcome"]["success"]["received_bytes_per_second"].as_f64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let result = loop {
        let result = prometheus.query("iperf3_received_bytes_per_second{source_node=\"here\"}");
        if !result.is_empty() || Instant::now() > deadline {
            break result;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(result.len(), 1, "{result:?}");
    assert_eq!(common::value_of(&result[0]), expected);
    // Every series the run sent is there once: no sample lost, none doubled.
    let series = prometheus.query("count({__name__=~\"iperf3_.*\"})");
    assert_eq!(common::value_of(&series[0]) as u64, delivery["samples"].as_u64().unwrap(), "{series:?}");
}
