//! `--pairing auto`: duplex rounds while they read like the same tests alone, exclusive pairing
//! for the rest of the run as soon as they do not. Pure: it judges finished tests, the caller
//! acts on the verdict.
//!
//! Two ways a duplex test reads low, found on the lab:
//! - **Shared CPU.** A node's server and client share its CPU limit; when a duplex test's sender
//!   or receiver used (nearly) all of its half ([`cpu::starved_by_sharing`]), the run switches
//!   at once: iperf3's own CPU figures say so, at no cost.
//! - **Queued ACKs.** On a single FIFO egress queue, the ACKs of a node's incoming test wait
//!   behind its outgoing one: the sender's RTT rises several-fold (20-50 ms against 8 ms alone on
//!   the lab) and its throughput falls (0.43-0.89 of alone), for most tests of a round. One
//!   loaded or distant path raises its RTT too (the lab's healthy meshes have outliers at 4-5 ×
//!   the lowest), so the sign is the *median* of the run's duplex RTTs at over
//!   [`RTT_HINT_RATIO`] × the lowest (6.4–8.6 ms on the healthy lab: 1.3 ×; 20–50 ms against
//!   8 on the shared-queue lab), and it only prompts a **calibration**: a test at or above the
//!   median is measured again alone, and the run switches only if duplex read under
//!   [`CALIBRATION_TOLERANCE`] of alone. At most [`CALIBRATIONS`] per run.

use std::collections::HashMap;

use serde::Serialize;

use super::cpu;
use crate::iperf3::TestResult;
use crate::schedule::PlannedTest;

/// Calibrations (a duplex test measured again alone) one run may spend.
pub const CALIBRATIONS: usize = 2;
/// A duplex test reading under this share of the same test alone is distorted.
pub const CALIBRATION_TOLERANCE: f64 = 0.9;
/// Duplex RTTs whose median is over this many times the run's lowest...
pub const RTT_HINT_RATIO: f64 = 2.5;
/// ...and this much above it (sub-millisecond jitter never counts) prompt a calibration.
pub const RTT_HINT_FLOOR_SECONDS: f64 = 0.005;
/// The median is taken over the run's first duplex TCP tests, once there are a few.
const RTT_SAMPLE: usize = 256;
const RTT_MIN_SAMPLE: usize = 4;

/// Why the run switched to exclusive pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchReason {
    /// A duplex test was starved by the CPU its node shares between sending and receiving.
    SharedCpu,
    /// A calibrated duplex test read low against the same test alone.
    DuplexReadLow,
}

/// A duplex test measured again alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub source: usize,
    pub destination: usize,
    pub duplex_bytes_per_second: f64,
    pub alone_bytes_per_second: f64,
}

/// What to do with a finished test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Report it.
    Keep,
    /// Do not report it: measure it again alone (a calibration).
    MeasureAlone,
    /// Do not report it: the run has switched; measure it again in exclusive pairing.
    MeasureAgain,
    /// Switch to exclusive pairing now, and measure the duplex tests kept so far again
    /// ([`AutoPairing::take_duplex_kept`]). The test itself: reported if it ran alone, else
    /// measured again.
    Switch(SwitchReason),
}

/// The state of auto pairing in one run.
#[derive(Debug)]
pub struct AutoPairing {
    switched: Option<SwitchReason>,
    duplex_kept: Vec<PlannedTest>,
    lowest_rtt: f64,
    /// Sender RTTs of the run's first duplex TCP tests.
    duplex_rtts: Vec<f64>,
    calibrating: HashMap<(usize, usize, usize), f64>,
    calibrations_left: usize,
    pub calibrations: Vec<Calibration>,
}

impl Default for AutoPairing {
    fn default() -> Self {
        AutoPairing {
            switched: None,
            duplex_kept: Vec::new(),
            lowest_rtt: f64::INFINITY,
            duplex_rtts: Vec::new(),
            calibrating: HashMap::new(),
            calibrations_left: CALIBRATIONS,
            calibrations: Vec::new(),
        }
    }
}

impl AutoPairing {
    pub fn switched(&self) -> Option<SwitchReason> {
        self.switched
    }

    /// Judges a successful test that ran `alone` (or beside the other direction's test), its
    /// nodes having `*_millis` of CPU.
    pub fn judge(
        &mut self,
        test: PlannedTest,
        alone: bool,
        result: &TestResult,
        source_millis: Option<u32>,
        destination_millis: Option<u32>,
    ) -> Verdict {
        let key = (test.round, test.pair.source, test.pair.destination);
        let rtt = match result {
            TestResult::Tcp(r) => r.rtt_seconds,
            TestResult::Udp(_) => None,
        };
        if let Some(rtt) = rtt {
            self.lowest_rtt = self.lowest_rtt.min(rtt);
        }
        let hinted = match rtt {
            Some(rtt) if !alone && self.calibrations_left > 0 && self.duplex_rtts.len() < RTT_SAMPLE => {
                self.duplex_rtts.push(rtt);
                let mut sorted = self.duplex_rtts.clone();
                sorted.sort_by(f64::total_cmp);
                let median = sorted[sorted.len() / 2];
                sorted.len() >= RTT_MIN_SAMPLE
                    && rtt >= median
                    && median > RTT_HINT_RATIO * self.lowest_rtt
                    && median > self.lowest_rtt + RTT_HINT_FLOOR_SECONDS
            }
            _ => false,
        };
        if alone {
            let Some(duplex) = self.calibrating.remove(&key) else { return Verdict::Keep };
            let alone_rate = result.received_bytes_per_second();
            self.calibrations.push(Calibration {
                source: test.pair.source,
                destination: test.pair.destination,
                duplex_bytes_per_second: duplex,
                alone_bytes_per_second: alone_rate,
            });
            if self.switched.is_none() && duplex < CALIBRATION_TOLERANCE * alone_rate {
                return self.switch(SwitchReason::DuplexReadLow);
            }
            return Verdict::Keep;
        }
        if self.switched.is_some() {
            return Verdict::MeasureAgain;
        }
        if cpu::starved_by_sharing(result, source_millis, destination_millis) {
            return self.switch(SwitchReason::SharedCpu);
        }
        if hinted && self.calibrations_left > 0 {
            self.calibrations_left -= 1;
            self.calibrating.insert(key, result.received_bytes_per_second());
            return Verdict::MeasureAlone;
        }
        self.duplex_kept.push(test);
        Verdict::Keep
    }

    /// The duplex tests reported so far, to measure again after a switch.
    pub fn take_duplex_kept(&mut self) -> Vec<PlannedTest> {
        std::mem::take(&mut self.duplex_kept)
    }

    fn switch(&mut self, reason: SwitchReason) -> Verdict {
        self.switched = Some(reason);
        Verdict::Switch(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iperf3::Protocol;
    use crate::iperf3::TcpResult;
    use crate::schedule::Pair;
    use crate::targets::{IpFamily, Network};

    fn test(source: usize, destination: usize) -> PlannedTest {
        let pair = Pair { source, destination };
        PlannedTest { round: 0, protocol: Protocol::Tcp, family: IpFamily::Ipv4, network: Network::Host, pair }
    }

    fn tcp(bytes_per_second: f64, rtt_ms: f64) -> TestResult {
        TestResult::Tcp(TcpResult {
            sent_bytes_per_second: bytes_per_second,
            received_bytes_per_second: bytes_per_second,
            retransmits: Some(0),
            rtt_seconds: Some(rtt_ms / 1000.0),
            sender_cpu_utilization_ratio: Some(0.01),
            receiver_cpu_utilization_ratio: Some(0.01),
        })
    }

    #[test]
    fn steady_rtts_and_a_few_outliers_cost_nothing() {
        let mut auto = AutoPairing::default();
        // The healthy lab's: 6.4 to 10 ms, and outliers up to 31 ms.
        for (i, rtt) in [7.0, 8.9, 6.4, 8.1, 30.9, 8.5, 10.2, 33.2].into_iter().enumerate() {
            assert_eq!(auto.judge(test(i, i + 1), false, &tcp(5e6, rtt), None, None), Verdict::Keep);
        }
        assert_eq!(auto.take_duplex_kept().len(), 8);
    }

    #[test]
    fn inflated_rtts_are_calibrated_and_a_low_duplex_reading_switches() {
        let mut auto = AutoPairing::default();
        // The shared-queue lab's: most tests 20-50 ms, one at 8.
        for (i, rtt) in [8.0, 41.9, 33.9, 27.9].into_iter().enumerate() {
            assert_eq!(auto.judge(test(2, i), false, &tcp(6e6, rtt), None, None), Verdict::Keep);
        }
        // Median 33.9 ms against 8, and this one at or above it: measured again alone, where it
        // reads more than duplex / 0.9.
        assert_eq!(auto.judge(test(0, 1), false, &tcp(2e6, 51.6), None, None), Verdict::MeasureAlone);
        assert_eq!(
            auto.judge(test(0, 1), true, &tcp(4.6e6, 8.1), None, None),
            Verdict::Switch(SwitchReason::DuplexReadLow)
        );
        assert_eq!(auto.take_duplex_kept().len(), 4);
        assert_eq!(auto.judge(test(3, 0), false, &tcp(3e6, 20.0), None, None), Verdict::MeasureAgain);
        assert_eq!(auto.calibrations.len(), 1);
    }

    #[test]
    fn a_calibration_that_agrees_keeps_duplex_and_calibrations_are_bounded() {
        let mut auto = AutoPairing::default();
        for (i, rtt) in [1.0, 30.0, 30.0].into_iter().enumerate() {
            auto.judge(test(2, i), false, &tcp(6e6, rtt), None, None);
        }
        for i in 0..CALIBRATIONS {
            assert_eq!(auto.judge(test(i, 4), false, &tcp(6e6, 30.0), None, None), Verdict::MeasureAlone);
            assert_eq!(auto.judge(test(i, 4), true, &tcp(6.1e6, 1.0), None, None), Verdict::Keep);
        }
        assert_eq!(auto.judge(test(5, 6), false, &tcp(6e6, 30.0), None, None), Verdict::Keep, "none left");
        assert_eq!(auto.switched(), None);
    }

    #[test]
    fn a_starved_cpu_switches_at_once() {
        let mut auto = AutoPairing::default();
        let mut starved = tcp(3e9, 0.3);
        if let TestResult::Tcp(r) = &mut starved {
            r.receiver_cpu_utilization_ratio = Some(0.12);
        }
        assert_eq!(
            auto.judge(test(0, 1), false, &starved, Some(250), Some(250)),
            Verdict::Switch(SwitchReason::SharedCpu)
        );
    }
}
