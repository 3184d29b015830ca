//! iperf3's `-J` output is untrusted: whatever it is, `parse` returns a result whose numbers
//! are sane, or a failure; it never panics.
#![no_main]

use iperf3_monitor::config::Protocol;
use iperf3_monitor::iperf3::{TestResult, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
