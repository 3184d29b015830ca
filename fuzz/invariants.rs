//! What the parsers must return for any input, shared by the fuzz targets and by
//! `tests/fuzz_corpus.rs`, which replays the kept corpus in every test run.

use std::collections::HashSet;

use iperf3_monitor::iperf3::{Protocol, TestResult, parse};

/// iperf3's `-J` output is untrusted: whatever it is, `parse` returns a result whose numbers
/// are sane, or a failure with a detail; it never panics.
pub fn check_iperf3_parse(data: &[u8]) {
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        match parse(protocol, data) {
            Ok(TestResult::Tcp(r)) => {
                assert_eq!(protocol, Protocol::Tcp);
                for rate in [r.sent_bytes_per_second, r.received_bytes_per_second] {
                    assert!(rate.is_finite() && rate >= 0.0, "{r:?}");
                }
                assert!(r.rtt_seconds.is_none_or(|s| s.is_finite() && s > 0.0), "{r:?}");
                for cpu in [r.sender_cpu_utilization_ratio, r.receiver_cpu_utilization_ratio] {
                    assert!(cpu.is_none_or(|c| c.is_finite() && c >= 0.0), "{r:?}");
                }
            }
            Ok(TestResult::Udp(r)) => {
                assert_eq!(protocol, Protocol::Udp);
                for rate in [r.sent_bytes_per_second, r.received_bytes_per_second] {
                    assert!(rate.is_finite() && rate >= 0.0, "{r:?}");
                }
                assert!(r.lost_packets <= r.packets, "{r:?}");
                assert!((0.0..=1.0).contains(&r.loss_ratio), "{r:?}");
                assert!(r.jitter_seconds.is_finite() && r.jitter_seconds >= 0.0, "{r:?}");
            }
            Err(failure) => assert!(!failure.detail.is_empty(), "{failure:?}"),
        }
    }
}

/// An inventory is operator input, but it must never hang or panic the job: whatever the text,
/// `parse` returns valid nodes or an error.
pub fn check_inventory_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(nodes) = iperf3_monitor::targets::inventory::parse(text, 5201, None) {
        assert!(!nodes.is_empty());
        let names: HashSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names.len(), nodes.len(), "names are unique");
        for node in &nodes {
            assert!(node.port > 0);
            assert!(!node.addresses.is_empty(), "{node:?}");
            assert!(node.addresses.iter().all(|a| !a.host.is_empty() && !a.host.starts_with('-')), "{node:?}");
            assert!(node.addresses.windows(2).all(|w| w[0].family < w[1].family), "one per family: {node:?}");
            assert!(node.client_command.iter().all(|a| !a.is_empty()), "{node:?}");
        }
    }
}
