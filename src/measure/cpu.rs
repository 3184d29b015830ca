//! Whether a test's number was set by CPU rather than by the path. Pure.
//!
//! iperf3 reports the CPU its client (host) and server (remote) used during the test, as a
//! share of one core. A node's iperf3 processes share its CPU limit (in mesh mode the clients
//! run in the server's pod); iperf3 3.12 runs a test in one thread, so one process uses at most
//! one core. So a process had `min(limit, 1)` cores when alone on its node, and — when its node
//! also ran the other direction's test (duplex pairing) and the limit is under two cores — about
//! half the limit, as the kernel shares a quota fairly between two busy processes.

use crate::iperf3::TestResult;

/// A process that used this share of the CPU it had was limited by it.
pub const NEAR_ALL: f64 = 0.8;

/// CPU (cores) one iperf3 process of a node with `limit_millis` had: alone on its node, or
/// beside the other direction's test.
fn available(limit_millis: Option<u32>, alone: bool) -> f64 {
    match limit_millis {
        // No limit known: one core per process, whatever else the node runs.
        None => 1.0,
        Some(millis) => {
            let cores = f64::from(millis) / 1000.0;
            if alone { cores.min(1.0) } else { (cores / 2.0).min(1.0) }
        }
    }
}

/// Whether the sender or the receiver used (nearly) all the CPU it had: the number is what the
/// pods' CPU allowed, the path may carry more.
pub fn bound(result: &TestResult, source_millis: Option<u32>, destination_millis: Option<u32>, alone: bool) -> bool {
    let (sender, receiver) = result.cpu_ratios();
    let near = |ratio: Option<f64>, millis| ratio.is_some_and(|r| r >= NEAR_ALL * available(millis, alone));
    near(sender, source_millis) || near(receiver, destination_millis)
}

/// Whether a duplex test was limited by the CPU its node shared with the other direction's
/// test, so that the same test alone would read higher: only when a node's limit is known and
/// below two cores (with more, each process has its core anyway).
pub fn starved_by_sharing(result: &TestResult, source_millis: Option<u32>, destination_millis: Option<u32>) -> bool {
    let (sender, receiver) = result.cpu_ratios();
    let near = |ratio: Option<f64>, millis: Option<u32>| match (ratio, millis) {
        (Some(ratio), Some(millis)) if millis < 2000 => ratio >= NEAR_ALL * available(Some(millis), false),
        _ => false,
    };
    near(sender, source_millis) || near(receiver, destination_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iperf3::TcpResult;

    fn tcp(sender: f64, receiver: f64) -> TestResult {
        TestResult::Tcp(TcpResult {
            sent_bytes_per_second: 1e9,
            received_bytes_per_second: 1e9,
            retransmits: Some(0),
            rtt_seconds: None,
            sender_cpu_utilization_ratio: Some(sender),
            receiver_cpu_utilization_ratio: Some(receiver),
        })
    }

    #[test]
    fn a_quarter_core_shared_by_two_tests_starves_both() {
        // 0.25 cores per node: alone a process gets 0.25, beside the other direction 0.125.
        let duplex = tcp(0.12, 0.11);
        assert!(starved_by_sharing(&duplex, Some(250), Some(250)));
        assert!(bound(&duplex, Some(250), Some(250), false));
        // The same pair alone at its limit: CPU-bound, but not by sharing.
        let alone = tcp(0.24, 0.2);
        assert!(bound(&alone, Some(250), Some(250), true));
    }

    #[test]
    fn a_slow_path_uses_little_cpu_and_is_not_flagged() {
        let link_bound = tcp(0.03, 0.02);
        assert!(!starved_by_sharing(&link_bound, Some(250), Some(250)));
        assert!(!bound(&link_bound, Some(250), Some(250), false));
        assert!(!bound(&link_bound, None, None, true));
    }

    #[test]
    fn without_a_known_limit_only_a_full_core_is_cpu_bound_and_sharing_is_never_blamed() {
        assert!(bound(&tcp(0.97, 0.3), None, None, false));
        assert!(!bound(&tcp(0.5, 0.5), None, None, false));
        assert!(!starved_by_sharing(&tcp(0.97, 0.97), None, None));
        // Two cores or more: each process has its core.
        assert!(!starved_by_sharing(&tcp(0.9, 0.9), Some(4000), Some(2000)));
    }
}
