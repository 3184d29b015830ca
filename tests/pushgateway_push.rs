//! The Pushgateway request against recording receivers: its group URL, its body, and the retry
//! policy it shares with remote-write; a failing target does not stop the other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use support::receiver::{Receiver, Reply};
use support::{LocalIperf3, monitor, with};

#[test]
fn the_group_is_replaced_with_put_retried_like_remote_write() {
    let server = LocalIperf3::start();
    let gateway = Receiver::start(vec![Reply::status(503), Reply::status(502)]);
    let url = gateway.url("/pushgateway");
    let run = monitor(&with(&server.run_args(), &["--pushgateway-url", &url, "--cluster", "eu/west-1"]), &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let requests = gateway.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.body == requests[0].body), "a retry changed the body");
    let push = &requests[0];
    assert_eq!(push.method, "PUT");
    assert_eq!(push.path, "/pushgateway/metrics/job/iperf3-monitor/cluster@base64/ZXUvd2VzdC0x");
    let text = String::from_utf8(push.body.clone()).unwrap();
    // The text format without timestamps: every sample line ends with its value.
    let report = run.report();
    let received = report["measurements"][0]["outcome"]["success"]["received_bytes_per_second"].as_f64().unwrap();
    let line = text.lines().find(|l| l.starts_with("iperf3_received_bytes_per_second{")).unwrap();
    assert_eq!(
        line,
        format!(
            "iperf3_received_bytes_per_second{{cluster=\"eu/west-1\",destination_node=\"local\",ip_family=\"ipv4\",network=\"host\",protocol=\"tcp\",source_node=\"here\"}} {received}"
        )
    );
    for sample in text.lines().filter(|l| !l.starts_with('#')) {
        assert_eq!(sample.rsplit_once('}').map_or(sample, |(_, v)| v).split_whitespace().count(), 1, "{sample}");
    }
    let delivery = &report["deliveries"][0];
    assert_eq!((delivery["sink"].as_str(), delivery["attempts"].as_u64()), (Some("pushgateway"), Some(3)));
}

#[test]
fn a_rejected_push_does_not_stop_the_other_target_and_exits_3() {
    let server = LocalIperf3::start();
    let gateway = Receiver::start(vec![Reply::status(400).body("pushed metrics are invalid or inconsistent")]);
    let remote_write = Receiver::start(vec![]);
    let args = with(
        &server.run_args(),
        &["--pushgateway-url", &gateway.url(""), "--remote-write-url", &remote_write.url("/api/v1/write")],
    );
    let run = monitor(&args, &[]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert_eq!(gateway.requests().len(), 1, "a 400 was retried");
    assert_eq!(remote_write.requests().len(), 1);
    let report = run.report();
    let deliveries = report["deliveries"].as_array().unwrap();
    let remote = &deliveries[0];
    assert_eq!(remote["sink"], "remote_write");
    assert_eq!(remote["delivered_samples"], remote["samples"]);
    let push = &deliveries[1];
    assert_eq!((push["sink"].as_str(), push["delivered_samples"].as_u64()), (Some("pushgateway"), Some(0)));
    assert!(push["errors"][0].as_str().unwrap().contains("HTTP 400 Bad Request: pushed metrics are invalid"));
}
