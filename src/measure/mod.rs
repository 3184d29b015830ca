//! Drives a run's planned tests through a client runner and records one [`Measurement`] per
//! test. Which test starts when is the pure [`dispatch`]er's call.

pub mod auto;
pub mod cpu;
pub mod dispatch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use tokio::sync::watch;

use crate::iperf3::{self, Failure, FailureReason, Protocol, TestResult, TestSettings};
use crate::runner::{ClientCommand, ClientOutput, ClientRunner, MAX_OUTPUT_BYTES, RunError};
use crate::schedule::{Pairing, Plan, PlannedTest, Schedule};
use crate::targets::{self, IpFamily, Network, Node};
use dispatch::{Condemned, Dispatch, Ended, Lease, Next, Side};

/// How often a test whose server was not taking tests (busy, or between two tests) is tried again.
const RETRIES: u32 = 2;
/// Wait before the first retry; doubles each time.
const BACKOFF: Duration = Duration::from_secs(1);
/// Most measurements room is made for before the run (160 MB of address space, 160 bytes each).
const MAX_RESERVED_MEASUREMENTS: usize = 1 << 20;
/// Most characters of a client's stderr kept in a failure's detail.
const MAX_DETAIL_CHARS: usize = 500;
/// How long past its --duration a test may run before the tests waiting for its nodes step
/// aside: a healthy test takes about 40 ms more.
const OVERDUE_GRACE: Duration = Duration::from_secs(1);
/// Longest time between two progress lines in the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// One test's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    /// Node names, shared by every measurement of the node: a 1,000-node run has 45,000 tests.
    pub source: Arc<str>,
    pub destination: Arc<str>,
    pub protocol: Protocol,
    pub ip_family: IpFamily,
    /// The network both nodes' servers are on.
    pub network: Network,
    /// When the test ended (the timestamp of its samples).
    #[serde(rename = "finished_at_unix_seconds", serialize_with = "unix_seconds")]
    pub finished_at: SystemTime,
    /// Wall time of the test, retries included.
    pub duration_seconds: f64,
    /// Cycle index of the round the test belongs to.
    pub round: usize,
    /// Whether neither node was in another test meanwhile (exclusive pairing).
    pub alone: bool,
    /// Whether the sender or the receiver used (nearly) all the CPU it had: the number is what
    /// the nodes' CPU allowed, not necessarily what the path carries (see [`cpu`]).
    pub cpu_bound: bool,
    pub outcome: Outcome,
}

/// What came of a test.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success(TestResult),
    Failure(Failure),
}

impl Measurement {
    pub fn result(&self) -> Option<&TestResult> {
        match &self.outcome {
            Outcome::Success(result) => Some(result),
            Outcome::Failure(_) => None,
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match &self.outcome {
            Outcome::Success(_) => None,
            Outcome::Failure(failure) => Some(failure),
        }
    }
}

#[cfg(test)]
impl Measurement {
    /// A test from `source` to `destination` over TCP, IPv4 and the host network in round 0,
    /// ended at the Unix epoch after a second: what the tests of the stages after measuring
    /// start from.
    pub(crate) fn example(source: &str, destination: &str, outcome: Outcome) -> Measurement {
        Measurement {
            source: source.into(),
            destination: destination.into(),
            protocol: Protocol::Tcp,
            ip_family: IpFamily::Ipv4,
            network: Network::Host,
            finished_at: SystemTime::UNIX_EPOCH,
            duration_seconds: 1.0,
            round: 0,
            alone: false,
            cpu_bound: false,
            outcome,
        }
    }
}

#[cfg(test)]
impl Outcome {
    /// A successful TCP test at `bytes_per_second` both ways, without the optional figures.
    pub(crate) fn tcp_ok(bytes_per_second: f64) -> Outcome {
        Outcome::Success(TestResult::Tcp(iperf3::TcpResult {
            sent_bytes_per_second: bytes_per_second,
            received_bytes_per_second: bytes_per_second,
            retransmits: None,
            rtt_seconds: None,
            sender_cpu_utilization_ratio: None,
            receiver_cpu_utilization_ratio: None,
        }))
    }
}

/// What the measuring stage did.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Every finished or skipped test, in the order they ended.
    pub measurements: Vec<Measurement>,
    /// Rounds of the plan whose planned tests all ran (or were skipped for a sick node).
    pub rounds_run: usize,
    /// Rounds of the plan with tests that were not run: the budget ran out, or the run was
    /// told to stop.
    pub rounds_skipped: usize,
    /// Planned tests that were not run, for the same reasons.
    pub tests_not_run: usize,
    /// Why planned tests were not run, if some were not.
    pub stopped: Option<StopReason>,
    /// Whether `--pairing auto` switched to exclusive pairing (see [`auto`]).
    pub switched_to_exclusive: bool,
    /// Duplex tests `--pairing auto` measured again alone to check them.
    pub calibrations: Vec<Calibrated>,
}

/// A duplex test measured again alone by `--pairing auto`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibrated {
    pub source: Arc<str>,
    pub destination: Arc<str>,
    pub duplex_bytes_per_second: f64,
    pub alone_bytes_per_second: f64,
}

/// Why a run measured fewer tests than it planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// SIGTERM or SIGINT (a CronJob's deadline, Ctrl-C).
    Signal,
    /// The next test would have ended after the run's --budget.
    Budget,
}

impl StopReason {
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::Signal => "stopped by a signal",
            StopReason::Budget => "the budget ran out",
        }
    }
}

/// Everything the measuring stage needs besides the plan.
#[derive(Debug)]
pub struct Measure<'a, R> {
    pub runner: &'a R,
    /// The run's nodes; the schedule's indexes point here.
    pub nodes: &'a [Node],
    pub settings: &'a TestSettings,
    pub pairing: Pairing,
    /// No test starts unless it is expected to end before this (tokio's clock, so tests can
    /// pause it).
    pub deadline: Option<tokio::time::Instant>,
}

impl<R: ClientRunner> Measure<'_, R> {
    /// Runs the planned tests, each as soon as its nodes are free (see [`dispatch`]), at most
    /// `plan.lanes` at once. When `stop` turns true (SIGTERM), the tests in progress are
    /// abandoned (their clients killed) and what was measured is returned.
    pub async fn run(&self, schedule: &Schedule, plan: &Plan, mut stop: watch::Receiver<bool>) -> Measured {
        let names: Vec<Arc<str>> = self.nodes.iter().map(|n| Arc::from(n.name.as_str())).collect();
        // Room for every planned test up front: growing by doubling would hold up to twice that.
        // Pages are only used as tests finish; the cap bounds what a run without --budget over a
        // huge mesh (millions of planned tests) reserves.
        let mut measured = Measured {
            measurements: Vec::with_capacity(plan.tests.min(MAX_RESERVED_MEASUREMENTS)),
            ..Measured::default()
        };
        let exclusive = self.pairing == Pairing::Exclusive;
        let mut auto = auto::AutoPairing::default();
        // A test running past its --duration and a second is overdue: those waiting for its
        // nodes step aside (see [`dispatch`]).
        let overdue_after = self.settings.duration + OVERDUE_GRACE;
        let mut dispatch =
            Dispatch::new(plan.planned(schedule), targets::machines(self.nodes), exclusive, plan.lanes, overdue_after);
        let began = tokio::time::Instant::now();
        let mut running = FuturesUnordered::new();
        let mut progress = Progress::new(plan.tests);
        loop {
            if measured.stopped.is_none() && *stop.borrow() {
                measured.stopped = Some(StopReason::Signal);
            }
            while measured.stopped.is_none() && running.len() < plan.lanes {
                // The first test always starts: the plan fits the budget, and what discovery took
                // before it (bounded by --api-timeout) would otherwise skip a test that fits exactly.
                if let Some(deadline) = self.deadline
                    && !measured.measurements.is_empty() | !running.is_empty()
                    && tokio::time::Instant::now() + plan.test_estimate > deadline
                    && dispatch.has_pending()
                {
                    measured.stopped = Some(StopReason::Budget);
                    break;
                }
                match dispatch.next_test(began.elapsed()) {
                    Some(Next::Start(test, lease)) => running.push(self.timed_test(&names, test, lease)),
                    Some(Next::Skip(test, condemned)) => {
                        if condemned.first {
                            self.warn_condemned(&condemned);
                        }
                        measured.measurements.push(self.skipped(&names, test, &condemned));
                        progress.tick(&measured.measurements);
                    }
                    None => break,
                }
            }
            if running.is_empty() {
                break;
            }
            // Look again when a running test becomes overdue: tests waiting for it step aside.
            let overdue = dispatch.next_overdue(began.elapsed()).map(|at| began + at);
            tokio::select! {
                () = tokio::time::sleep_until(overdue.unwrap_or(began)), if overdue.is_some() => {}
                Some((test, lease, mut measurement)) = running.next() => {
                    let ended = match measurement.failure() {
                        None => Ended::Success,
                        Some(failure) => Ended::Failure(failure.reason),
                    };
                    dispatch.finish(test, lease, ended);
                    let (source, destination) = (&self.nodes[test.pair.source], &self.nodes[test.pair.destination]);
                    if let Some(result) = measurement.result() {
                        if self.pairing == Pairing::Auto {
                            let verdict =
                                auto.judge(test, lease.exclusive, result, source.cpu_millis, destination.cpu_millis);
                            match verdict {
                                auto::Verdict::Keep => {}
                                auto::Verdict::MeasureAlone => {
                                    tracing::info!(
                                        source = %measurement.source,
                                        destination = %measurement.destination,
                                        "a duplex test's RTT is several times the run's lowest: measuring it again alone"
                                    );
                                    dispatch.retry_alone(test);
                                    continue;
                                }
                                auto::Verdict::MeasureAgain => {
                                    dispatch.retry(test);
                                    continue;
                                }
                                auto::Verdict::Switch(reason) => {
                                    // From now on every node is in one test at a time, and what
                                    // was measured in duplex is measured again: never reported.
                                    let again = auto.take_duplex_kept();
                                    self.warn_switch(&measurement, result, reason, again.len());
                                    measured.switched_to_exclusive = true;
                                    dispatch.set_exclusive(true);
                                    measured.measurements.retain(|m| m.result().is_none() || m.alone);
                                    for done in again.into_iter().rev() {
                                        dispatch.retry(done);
                                    }
                                    if !lease.exclusive {
                                        dispatch.retry(test);
                                        continue;
                                    }
                                }
                            }
                        }
                        measurement.cpu_bound =
                            cpu::bound(result, source.cpu_millis, destination.cpu_millis, lease.exclusive);
                    }
                    measurement.alone = lease.exclusive;
                    measured.measurements.push(measurement);
                    progress.tick(&measured.measurements);
                }
                _ = stop.wait_for(|stop| *stop), if measured.stopped != Some(StopReason::Signal) => {
                    tracing::warn!(
                        running = running.len(),
                        "stopping early: the run was told to stop; tests in progress are abandoned, finished ones kept"
                    );
                    measured.stopped = Some(StopReason::Signal);
                    break;
                }
            }
        }
        // Abandoned tests count as not run, like those never started.
        drop(running);
        measured.tests_not_run = plan.tests.saturating_sub(measured.measurements.len());
        if measured.tests_not_run > 0 {
            let mut left: HashMap<usize, isize> = HashMap::new();
            for test in plan.planned(schedule) {
                *left.entry(test.round).or_default() += 1;
            }
            for m in &measured.measurements {
                *left.entry(m.round).or_default() -= 1;
            }
            measured.rounds_skipped = left.values().filter(|&&n| n > 0).count();
            match measured.stopped {
                Some(StopReason::Budget) => tracing::warn!(
                    tests_left = measured.tests_not_run,
                    "the run's budget is spent; the tests left are measured by the next runs' rotation \
                     (raise --budget or lower --duration)"
                ),
                _ => tracing::warn!(tests_left = measured.tests_not_run, "stopped before the planned tests were done"),
            }
        }
        measured.calibrations = auto
            .calibrations
            .iter()
            .map(|c| Calibrated {
                source: names[c.source].clone(),
                destination: names[c.destination].clone(),
                duplex_bytes_per_second: c.duplex_bytes_per_second,
                alone_bytes_per_second: c.alone_bytes_per_second,
            })
            .collect();
        measured.rounds_run = plan.rounds - measured.rounds_skipped;
        progress.done(&measured.measurements);
        measured
    }

    async fn timed_test(
        &self,
        names: &[Arc<str>],
        test: PlannedTest,
        lease: Lease,
    ) -> (PlannedTest, Lease, Measurement) {
        (test, lease, self.test(names, test).await)
    }

    fn warn_switch(&self, measurement: &Measurement, result: &TestResult, reason: auto::SwitchReason, again: usize) {
        let (sender, receiver) = result.cpu_ratios();
        let why = match reason {
            auto::SwitchReason::SharedCpu => {
                "was limited by the CPU its nodes share between sending and receiving (raise the server pods' CPU limit)"
            }
            auto::SwitchReason::DuplexReadLow => {
                "read under 0.9 of the same test alone (its ACKs likely queue behind the receiver's own test)"
            }
        };
        tracing::warn!(
            source = %measurement.source,
            destination = %measurement.destination,
            sender_cpu = sender.unwrap_or(0.0),
            receiver_cpu = receiver.unwrap_or(0.0),
            measured_again = again,
            "a duplex test {why}: switching to exclusive pairing for the rest of the run (a node in one test at a \
             time) and measuring the duplex tests done so far again; set --pairing exclusive (and a longer budget) \
             to plan for it"
        );
    }

    fn warn_condemned(&self, condemned: &Condemned) {
        let evidence: Vec<String> =
            condemned.evidence.iter().map(|&(peer, reason)| format!("{} ({reason})", self.nodes[peer].name)).collect();
        let side = match condemned.side {
            Side::Source => "as a source: its tests towards",
            Side::Destination => "as a destination: the tests from",
        };
        tracing::warn!(
            node = %self.nodes[condemned.node].name,
            network = %self.nodes[condemned.node].network,
            ip_family = %condemned.family,
            "node failed {side} {} failed and none succeeded; its other tests {} are skipped in this run \
             (reason 'skipped'); the next run tries again",
            evidence.join(", "),
            match condemned.side {
                Side::Source => "from it",
                Side::Destination => "to it",
            }
        );
    }

    fn skipped(&self, names: &[Arc<str>], test: PlannedTest, condemned: &Condemned) -> Measurement {
        let node = &self.nodes[condemned.node].name;
        let (side, peers) = match condemned.side {
            Side::Source => ("source", "towards"),
            Side::Destination => ("destination", "from"),
        };
        let evidence: Vec<String> =
            condemned.evidence.iter().map(|&(peer, reason)| format!("{} ({reason})", self.nodes[peer].name)).collect();
        Measurement {
            source: names[test.pair.source].clone(),
            destination: names[test.pair.destination].clone(),
            protocol: test.protocol,
            ip_family: test.family,
            network: test.network,
            finished_at: SystemTime::now(),
            duration_seconds: 0.0,
            round: test.round,
            alone: false,
            cpu_bound: false,
            outcome: Outcome::Failure(Failure::new(
                FailureReason::Skipped,
                format!(
                    "not tried: {node} failed as a {side} earlier in this run (tests {peers} {}); the next run tries again",
                    evidence.join(", ")
                ),
            )),
        }
    }

    async fn test(&self, names: &[Arc<str>], test: PlannedTest) -> Measurement {
        let (pair, protocol) = (test.pair, test.protocol);
        let source = &self.nodes[pair.source];
        let destination = &self.nodes[pair.destination];
        let started = Instant::now();
        let outcome = match destination.addresses.iter().find(|a| a.family == test.family) {
            Some(address) => self.attempts(source, destination, protocol, address).await,
            // The schedule only pairs nodes in the family: this is a bug, reported, not a panic.
            None => Err(Failure::new(
                FailureReason::Spawn,
                format!("{} has no {} address to test", destination.name, test.family),
            )),
        };
        let measurement = Measurement {
            source: names[pair.source].clone(),
            destination: names[pair.destination].clone(),
            protocol,
            ip_family: test.family,
            network: test.network,
            finished_at: SystemTime::now(),
            duration_seconds: started.elapsed().as_secs_f64(),
            round: test.round,
            alone: false,
            cpu_bound: false,
            outcome: match outcome {
                Ok(result) => Outcome::Success(result),
                Err(failure) => Outcome::Failure(failure),
            },
        };
        match &measurement.outcome {
            Outcome::Success(result) => tracing::debug!(
                source = %measurement.source,
                destination = %measurement.destination,
                protocol = %measurement.protocol,
                ip_family = %measurement.ip_family,
                network = %measurement.network,
                received_bits_per_second = result.received_bytes_per_second() * 8.0,
                "test done"
            ),
            Outcome::Failure(failure) => tracing::warn!(
                source = %measurement.source,
                destination = %measurement.destination,
                protocol = %measurement.protocol,
                ip_family = %measurement.ip_family,
                network = %measurement.network,
                reason = %failure.reason,
                detail = %failure.detail,
                "test failed"
            ),
        }
        measurement
    }

    /// Runs one test's client, trying again while the server is not taking tests.
    async fn attempts(
        &self,
        source: &Node,
        destination: &Node,
        protocol: Protocol,
        address: &crate::targets::Address,
    ) -> Result<TestResult, Failure> {
        let credentials = destination.credentials.as_ref();
        let argv = iperf3::client_argv(self.settings, protocol, address, destination.port, credentials);
        let command = ClientCommand { argv: &argv, credentials };
        let mut attempt = 0;
        loop {
            let attempt_started = Instant::now();
            let outcome = match self.runner.run(source, command, self.settings.timeout).await {
                Ok(output) => judge(protocol, &output),
                Err(RunError::Timeout(_)) => Err(Failure::new(
                    FailureReason::Timeout,
                    format!(
                        "no result within --test-timeout {}s; the client was killed",
                        self.settings.timeout.as_secs()
                    ),
                )),
                Err(RunError::Spawn(message)) => Err(Failure::new(FailureReason::Spawn, message)),
            };
            match outcome {
                Err(failure) if is_transient(&failure, attempt_started.elapsed()) && attempt < RETRIES => {
                    tokio::time::sleep(BACKOFF * 2u32.pow(attempt)).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }
}

/// Failures that say the server was not taking a test just then: busy with another client, or
/// resetting the connection while it gets ready for the next test (iperf3 reopens its listening
/// socket after each test; a client arriving in that gap, as its previous test ends, is reset
/// while connecting, or just after: "unable to receive control message: Connection reset by
/// peer" within [`RESET_AT_START`] of the start, before any data was sent).
fn is_transient(failure: &Failure, took: Duration) -> bool {
    let detail = failure.detail.to_ascii_lowercase();
    failure.reason == FailureReason::Busy
        || (failure.reason == FailureReason::Error
            && detail.starts_with("unable to connect to server: connection reset"))
        || (failure.reason == FailureReason::Interrupted
            && took < RESET_AT_START
            && detail.starts_with("unable to receive control message: connection reset"))
}

/// A control connection reset this soon after the client started is the server between two
/// tests, not a server gone mid-test.
const RESET_AT_START: Duration = Duration::from_secs(1);

/// Turns a finished client's output into a result; the JSON decides, the exit code confirms.
fn judge(protocol: Protocol, output: &ClientOutput) -> Result<TestResult, Failure> {
    if output.truncated {
        return Err(Failure::new(
            FailureReason::Parse,
            format!("the client printed more than {} MiB; that is not an iperf3 report", MAX_OUTPUT_BYTES >> 20),
        ));
    }
    let stderr = || {
        let text = String::from_utf8_lossy(&output.stderr);
        let text = text.trim();
        text.chars().take(MAX_DETAIL_CHARS).collect::<String>()
    };
    if output.stdout.iter().all(u8::is_ascii_whitespace) {
        // Nothing from iperf3: the node's command prefix failed, or iperf3 is missing there.
        let reason = match output.exit_code {
            Some(126 | 127) => FailureReason::Spawn,
            _ => FailureReason::Error,
        };
        let code = output.exit_code.map_or("a signal".to_string(), |c| format!("exit code {c}"));
        return Err(Failure::new(reason, format!("the client printed no report ({code}): {}", stderr())));
    }
    let result = match iperf3::parse(protocol, &output.stdout) {
        // No report but a failing exit and a complaint: iperf3 refused its arguments or
        // credentials before testing (and printed its usage on stdout).
        Err(failure)
            if failure.reason == FailureReason::Parse && output.exit_code != Some(0) && !stderr().is_empty() =>
        {
            let complaint = stderr();
            return Err(Failure::new(FailureReason::from_iperf3_error(&complaint), complaint));
        }
        parsed => parsed?,
    };
    match output.exit_code {
        Some(0) => Ok(result),
        code => Err(Failure::new(
            FailureReason::Error,
            format!("the client's report looks complete but it ended with {code:?}: {}", stderr()),
        )),
    }
}

/// Progress lines in the log: at every tenth of the planned tests, and at least every
/// [`PROGRESS_EVERY`], so a long run shows it is alive.
#[derive(Debug)]
struct Progress {
    planned: usize,
    started: Instant,
    last: Instant,
    next_tenth: usize,
}

impl Progress {
    fn new(planned: usize) -> Self {
        let now = Instant::now();
        Progress { planned, started: now, last: now, next_tenth: 1 }
    }

    fn tick(&mut self, done: &[Measurement]) {
        let tenth = done.len() * 10 / self.planned.max(1);
        if tenth >= self.next_tenth || self.last.elapsed() >= PROGRESS_EVERY {
            self.next_tenth = tenth + 1;
            self.log(done, "progress");
        }
    }

    fn done(&mut self, done: &[Measurement]) {
        self.log(done, "measuring done");
    }

    fn log(&mut self, done: &[Measurement], message: &str) {
        self.last = Instant::now();
        let failed = done.iter().filter(|m| m.failure().is_some_and(|f| f.reason != FailureReason::Skipped)).count();
        let skipped = done.iter().filter(|m| m.failure().is_some_and(|f| f.reason == FailureReason::Skipped)).count();
        tracing::info!(
            tests = format!("{}/{}", done.len(), self.planned),
            failed,
            skipped,
            seconds = format!("{:.1}", self.started.elapsed().as_secs_f64()),
            "{message}"
        );
    }
}

fn unix_seconds<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::schedule::Topology;

    /// A scripted runner: answers per destination address, records what ran where.
    #[test]
    fn a_measurement_stays_small() {
        // A 1,000-node run holds 45,000 of them until it ends (docs/performance.md, "Memory of large runs").
        assert!(std::mem::size_of::<Measurement>() <= 160, "{}", std::mem::size_of::<Measurement>());
    }

    #[derive(Default)]
    struct FakeRunner {
        answers: HashMap<String, Vec<Result<ClientOutput, &'static str>>>,
        calls: Mutex<Vec<(String, Vec<String>)>>,
        /// (source node, destination address, start, end) of every attempt.
        spans: Mutex<Vec<(String, String, tokio::time::Instant, tokio::time::Instant)>>,
    }

    const TCP_OK: &str = r#"{"end":{"streams":[],"sum_sent":{"bits_per_second":8e6,"retransmits":0},"sum_received":{"bits_per_second":8e6}}}"#;

    fn output(json: &str, code: i32) -> ClientOutput {
        ClientOutput {
            exit_code: Some(code),
            stdout: json.as_bytes().to_vec(),
            stderr: b"stderr text".to_vec(),
            truncated: false,
        }
    }

    impl ClientRunner for FakeRunner {
        async fn run(
            &self,
            node: &Node,
            command: ClientCommand<'_>,
            timeout: Duration,
        ) -> Result<ClientOutput, RunError> {
            let argv = command.argv;
            let address = argv[2].clone();
            let call = {
                let mut calls = self.calls.lock().unwrap();
                calls.push((node.name.clone(), argv.to_vec()));
                calls.iter().filter(|(_, a)| a[2] == address).count() - 1
            };
            let started = tokio::time::Instant::now();
            // A test that succeeds takes its --time.
            let seconds: u64 = argv.iter().position(|a| a == "--time").map_or(1, |i| argv[i + 1].parse().unwrap());
            let answer = match self.answers.get(&address).and_then(|a| a.get(call).or(a.last())) {
                None => {
                    tokio::time::sleep(Duration::from_secs(seconds)).await;
                    Ok(output(TCP_OK, 0))
                }
                Some(Ok(out)) => Ok(out.clone()),
                Some(Err("timeout")) => Err(RunError::Timeout(timeout)),
                Some(Err("hang")) => {
                    tokio::time::sleep(timeout).await;
                    Err(RunError::Timeout(timeout))
                }
                Some(Err(other)) => Err(RunError::Spawn(other.to_string())),
            };
            let ended = tokio::time::Instant::now();
            self.spans.lock().unwrap().push((node.name.clone(), address, started, ended));
            answer
        }
    }

    fn nodes(n: usize) -> Vec<Node> {
        (0..n).map(|i| Node::new(format!("n{i}"), format!("a{i}"), 5201, vec![])).collect()
    }

    fn settings() -> TestSettings {
        TestSettings {
            iperf3: "iperf3".into(),
            duration: Duration::from_secs(1),
            udp_bitrate: "1M".into(),
            parallel: 1,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
        }
    }

    async fn measure(runner: &FakeRunner, n: usize) -> Measured {
        let nodes = nodes(n);
        let settings = settings();
        let schedule = Schedule::new(Topology::Mesh { nodes: n, pairing: Pairing::Duplex }, vec![Protocol::Tcp]);
        let plan = Plan::new(&schedule, None, Duration::from_secs(1), 64, 0).unwrap();
        let (_tx, stop) = watch::channel(false);
        let measure = Measure { runner, nodes: &nodes, settings: &settings, pairing: Pairing::Duplex, deadline: None };
        measure.run(&schedule, &plan, stop).await
    }

    /// A TCP mesh of `n` nodes, 1-s tests (1.1 s planned), `concurrency` at once, planned as run
    /// `run` within `budget`, measured once `discovery` of the budget has passed.
    async fn measure_budgeted(
        runner: &FakeRunner,
        n: usize,
        concurrency: usize,
        budget: Duration,
        run: u64,
        discovery: Duration,
    ) -> (Plan, Measured) {
        let nodes = nodes(n);
        let settings = settings();
        let schedule = Schedule::new(Topology::Mesh { nodes: n, pairing: Pairing::Duplex }, vec![Protocol::Tcp]);
        let plan = Plan::new(&schedule, Some(budget), Duration::from_secs(1), concurrency, run).unwrap();
        let deadline = Some(tokio::time::Instant::now() + budget);
        tokio::time::advance(discovery).await;
        let (_tx, stop) = watch::channel(false);
        let measure = Measure { runner, nodes: &nodes, settings: &settings, pairing: Pairing::Duplex, deadline };
        (plan, measure.run(&schedule, &plan, stop).await)
    }

    #[tokio::test(start_paused = true)]
    async fn every_pair_runs_on_its_source_node() {
        let runner = FakeRunner::default();
        let measured = measure(&runner, 4).await;
        assert_eq!(measured.rounds_run, 3);
        assert_eq!(measured.measurements.len(), 12);
        let calls = runner.calls.lock().unwrap();
        for (node, argv) in calls.iter() {
            assert_ne!(format!("a{}", &node[1..]), argv[2], "{node} measured itself");
        }
        let m = &measured.measurements[0];
        assert_eq!(m.result().unwrap().received_bytes_per_second(), 1e6);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_keep_their_reason_and_other_pairs_are_measured() {
        let mut runner = FakeRunner::default();
        let refused = r#"{"end":{},"error":"unable to connect to server: Connection refused"}"#;
        runner.answers.insert("a1".into(), vec![Ok(output(refused, 0))]);
        runner.answers.insert("a2".into(), vec![Err("timeout")]);
        runner.answers.insert("a3".into(), vec![Ok(output("", 127))]);
        let measured = measure(&runner, 5).await;
        let reason = |dst: &str| {
            let reasons: Vec<_> = measured
                .measurements
                .iter()
                .filter(|m| &*m.destination == dst)
                .map(|m| m.failure().map(|f| f.reason))
                .collect();
            assert_eq!(reasons.len(), 4);
            reasons[0]
        };
        assert_eq!(reason("n1"), Some(FailureReason::Refused));
        assert_eq!(reason("n2"), Some(FailureReason::Timeout));
        assert_eq!(reason("n3"), Some(FailureReason::Spawn));
        assert_eq!(reason("n4"), None);
        assert_eq!(reason("n0"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_server_is_retried_a_bounded_number_of_times() {
        let busy = r#"{"end":{},"error":"the server is busy running a test. try again later"}"#;
        let mut runner = FakeRunner::default();
        runner.answers.insert("a1".into(), vec![Ok(output(busy, 1)), Ok(output(TCP_OK, 0))]);
        runner.answers.insert("a0".into(), vec![Ok(output(busy, 1))]);
        let measured = measure(&runner, 2).await;
        let to = |dst: &str| measured.measurements.iter().find(|m| &*m.destination == dst).unwrap();
        assert!(to("n1").result().is_some(), "{:?}", to("n1"));
        assert_eq!(to("n0").failure().unwrap().reason, FailureReason::Busy);
        let calls = runner.calls.lock().unwrap();
        assert_eq!(calls.iter().filter(|(_, a)| a[2] == "a0").count(), 1 + RETRIES as usize);
        assert_eq!(calls.iter().filter(|(_, a)| a[2] == "a1").count(), 2);
    }

    #[test]
    fn a_client_that_refuses_its_credentials_fails_auth_not_parse() {
        let refused = ClientOutput {
            exit_code: Some(1),
            stdout: b"Usage: iperf3 [-s|-c host] [options]\n".to_vec(),
            stderr: b"iperf3: error:80000002:system library::No such file or directory\n\niperf3: parameter error - you must specify a username, password, and path to a valid RSA public key\n".to_vec(),
            truncated: false,
        };
        let failure = judge(Protocol::Tcp, &refused).unwrap_err();
        assert_eq!(failure.reason, FailureReason::Auth, "{failure:?}");
        assert!(failure.detail.contains("No such file"), "{failure:?}");
        let garbage = ClientOutput { exit_code: Some(0), stderr: Vec::new(), ..refused };
        assert_eq!(judge(Protocol::Tcp, &garbage).unwrap_err().reason, FailureReason::Parse);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_reset_between_two_tests_is_retried() {
        let reset = r#"{"end":{},"error":"unable to connect to server: Connection reset by peer"}"#;
        let mut runner = FakeRunner::default();
        runner.answers.insert("a1".into(), vec![Ok(output(reset, 0)), Ok(output(TCP_OK, 0))]);
        // Reset for good: given up after the retries, with the reset as the detail.
        runner.answers.insert("a0".into(), vec![Ok(output(reset, 0))]);
        let measured = measure(&runner, 2).await;
        let to = |dst: &str| measured.measurements.iter().find(|m| &*m.destination == dst).unwrap();
        assert!(to("n1").result().is_some(), "{:?}", to("n1"));
        let failure = to("n0").failure().unwrap();
        assert_eq!(failure.reason, FailureReason::Error);
        assert!(failure.detail.contains("reset"), "{failure:?}");
        let calls = runner.calls.lock().unwrap();
        assert_eq!(calls.iter().filter(|(_, a)| a[2] == "a0").count(), 1 + RETRIES as usize);
        let refused = r#"{"end":{},"error":"unable to connect to server: Connection refused"}"#;
        assert!(!is_transient(&iperf3::parse(Protocol::Tcp, refused.as_bytes()).unwrap_err(), Duration::ZERO));
        let reset = r#"{"end":{},"error":"unable to receive control message: Connection reset by peer"}"#;
        let reset = iperf3::parse(Protocol::Tcp, reset.as_bytes()).unwrap_err();
        assert!(is_transient(&reset, Duration::from_millis(10)), "reset at the start: the server between two tests");
        assert!(!is_transient(&reset, Duration::from_secs(3)), "reset mid-test: the server went away");
    }

    #[test]
    fn a_report_with_a_failing_exit_code_is_not_trusted() {
        let failure = judge(Protocol::Tcp, &output(TCP_OK, 1)).unwrap_err();
        assert_eq!(failure.reason, FailureReason::Error);
        assert!(failure.detail.contains("stderr text"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_request_ends_the_run_between_rounds() {
        let runner = FakeRunner::default();
        let nodes = nodes(4);
        let settings = settings();
        let schedule = Schedule::new(Topology::Mesh { nodes: 4, pairing: Pairing::Duplex }, vec![Protocol::Tcp]);
        let plan = Plan::new(&schedule, None, Duration::from_secs(1), 64, 0).unwrap();
        let (tx, stop) = watch::channel(false);
        tx.send(true).unwrap();
        let measure =
            Measure { runner: &runner, nodes: &nodes, settings: &settings, pairing: Pairing::Duplex, deadline: None };
        let measured = measure.run(&schedule, &plan, stop).await;
        assert_eq!((measured.rounds_run, measured.rounds_skipped), (0, 3));
        assert_eq!(measured.stopped, Some(StopReason::Signal));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_request_mid_round_keeps_the_tests_that_finished() {
        let mut runner = FakeRunner::default();
        runner.answers.insert("a1".into(), vec![Err("hang")]);
        let nodes = nodes(4);
        let settings = TestSettings { timeout: Duration::from_secs(3600), ..settings() };
        let schedule = Schedule::new(Topology::Mesh { nodes: 4, pairing: Pairing::Duplex }, vec![Protocol::Tcp]);
        let plan = Plan::new(&schedule, None, Duration::from_secs(1), 64, 0).unwrap();
        let (tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            tx.send(true).unwrap();
            std::future::pending::<()>().await;
        });
        let measure =
            Measure { runner: &runner, nodes: &nodes, settings: &settings, pairing: Pairing::Duplex, deadline: None };
        let measured = measure.run(&schedule, &plan, stop).await;
        // No barrier between rounds: by then every test finished but those waiting for the
        // hanging n0→n1 (the other tests to n1 and from n0).
        assert_eq!((measured.rounds_run, measured.rounds_skipped), (0, 3));
        assert_eq!(measured.stopped, Some(StopReason::Signal));
        assert_eq!(measured.tests_not_run, 5);
        assert_eq!(measured.measurements.len(), 7);
        assert!(measured.measurements.iter().all(|m| &*m.source != "n0" && &*m.destination != "n1"));
    }

    #[tokio::test(start_paused = true)]
    async fn tests_that_no_longer_fit_the_budget_are_left_and_reported() {
        let mut runner = FakeRunner::default();
        // Every test towards n1 hangs until --test-timeout (3 s).
        runner.answers.insert("a1".into(), vec![Err("hang")]);
        let (plan, measured) = measure_budgeted(&runner, 4, 8, Duration::from_secs(6), 0, Duration::ZERO).await;
        assert_eq!((plan.tests, plan.rounds), (12, 3));
        // n0→n1 hangs 0-3 s, n3→n1 3-6 s; n2→n1 would start at 6 s and end after the budget.
        // Every other test ran, the hanging ones holding up no one else.
        assert_eq!(measured.stopped, Some(StopReason::Budget));
        assert_eq!((measured.measurements.len(), measured.tests_not_run), (11, 1));
        assert_eq!((measured.rounds_run, measured.rounds_skipped), (2, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_measures_its_slice_of_the_cycle_whole_rounds_or_not() {
        let runner = FakeRunner::default();
        // 10 tests a round, 2 at once, 1.1 s each: a 4-s budget holds 3 waves, 6 tests, and the
        // next run starts a wave (2 tests) before this one's end. Run 2 measures tests 8..14 of
        // the cycle: the last two of round 1 and the first four of round 2.
        let (plan, measured) = measure_budgeted(&runner, 10, 2, Duration::from_secs(4), 2, Duration::ZERO).await;
        assert_eq!((plan.first_test, plan.tests, plan.stride, plan.cycle_runs), (8, 6, 4, 22));
        assert_eq!((measured.rounds_run, measured.rounds_skipped, measured.stopped), (2, 0, None));
        let sources = |round: usize| {
            let mut sources: Vec<&str> =
                measured.measurements.iter().filter(|m| m.round == round).map(|m| &*m.source).collect();
            sources.sort_unstable();
            sources
        };
        assert_eq!(sources(0), ["n8", "n9"]);
        assert_eq!(sources(1), ["n0", "n1", "n2", "n3"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_server_costs_the_mesh_about_one_timeout_and_its_pairs_are_reported() {
        let mut runner = FakeRunner::default();
        runner.answers.insert("a3".into(), vec![Err("hang")]);
        let started = tokio::time::Instant::now();
        let measured = measure(&runner, 8).await;
        let wall = started.elapsed();
        // Lower bound 7 s (1-s tests); two tries towards n3 of 3 s each, on two other nodes.
        assert!(wall <= Duration::from_secs(7 + 3), "{wall:?}");
        let to_sick: Vec<&Measurement> = measured.measurements.iter().filter(|m| &*m.destination == "n3").collect();
        let reasons: Vec<FailureReason> = to_sick.iter().map(|m| m.failure().unwrap().reason).collect();
        assert_eq!(reasons.len(), 7, "every pair towards the sick node is reported");
        assert_eq!(reasons.iter().filter(|r| **r == FailureReason::Timeout).count(), 2);
        assert_eq!(reasons.iter().filter(|r| **r == FailureReason::Skipped).count(), 5);
        let skipped = to_sick.iter().find(|m| m.failure().unwrap().reason == FailureReason::Skipped).unwrap();
        assert!(skipped.failure().unwrap().detail.contains("n3 failed as a destination"), "{skipped:?}");
        // The sick node still sends, and every other pair succeeded.
        let others = measured.measurements.iter().filter(|m| &*m.destination != "n3");
        assert!(others.clone().all(|m| m.result().is_some()));
        assert_eq!(others.count(), 56 - 7);
        // No node ever sent two tests at once, or received two, also while a test hung.
        let spans = runner.spans.lock().unwrap();
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                let overlap = a.2 < b.3 && b.2 < a.3;
                assert!(!(overlap && a.0 == b.0), "{} sent two tests at once", a.0);
                assert!(!(overlap && a.1 == b.1), "{} received two tests at once", a.1);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_that_fills_the_budget_exactly_still_runs_after_discovery() {
        let runner = FakeRunner::default();
        // One round of 2s in a 2s budget (the second round is the next run's), after 0.3s of
        // discovery.
        let discovery = Duration::from_millis(300);
        let (plan, measured) = measure_budgeted(&runner, 3, 64, Duration::from_secs(2), 0, discovery).await;
        assert_eq!((plan.rounds, plan.cycle_runs), (1, 2));
        assert_eq!((measured.rounds_run, measured.rounds_skipped, measured.stopped), (1, 0, None));
        assert_eq!(measured.measurements.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn auto_pairing_switches_to_exclusive_when_duplex_tests_share_a_starved_cpu() {
        // Every node has a quarter core; a test towards n2 reads its nodes at 12 % and 11 %:
        // half the quota each, as two iperf3 processes sharing it do.
        let starved = r#"{"end":{"streams":[],"sum_sent":{"bits_per_second":3e9},"sum_received":{"bits_per_second":3e9},"cpu_utilization_percent":{"host_total":12.0,"remote_total":11.0}}}"#;
        let mut runner = FakeRunner::default();
        runner.answers.insert("a2".into(), vec![Ok(output(starved, 0))]);
        let mut nodes = nodes(4);
        for node in &mut nodes {
            node.cpu_millis = Some(250);
        }
        let settings = settings();
        let schedule = Schedule::new(Topology::Mesh { nodes: 4, pairing: Pairing::Auto }, vec![Protocol::Tcp]);
        let plan = Plan::new(&schedule, None, Duration::from_secs(1), 64, 0).unwrap();
        let (_tx, stop) = watch::channel(false);
        let measure =
            Measure { runner: &runner, nodes: &nodes, settings: &settings, pairing: Pairing::Auto, deadline: None };
        let measured = measure.run(&schedule, &plan, stop).await;
        assert!(measured.switched_to_exclusive);
        assert_eq!(measured.measurements.len(), 12, "every pair once");
        assert!(measured.measurements.iter().all(|m| m.alone), "only tests measured alone are reported");
        // Alone, the same 12 % of a quarter core is not all it had.
        assert!(measured.measurements.iter().all(|m| !m.cpu_bound));
        // With --pairing duplex the numbers stay duplex, flagged as CPU-bound.
        let (_tx, stop) = watch::channel(false);
        let duplex = Measure { pairing: Pairing::Duplex, ..measure };
        let measured = duplex.run(&schedule, &plan, stop).await;
        assert!(!measured.switched_to_exclusive);
        let to_n2: Vec<&Measurement> = measured.measurements.iter().filter(|m| &*m.destination == "n2").collect();
        assert!(to_n2.iter().all(|m| m.cpu_bound && !m.alone), "{to_n2:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_that_fits_its_budget_is_not_stopped() {
        let runner = FakeRunner::default();
        let measured = measure(&runner, 4).await;
        assert_eq!((measured.rounds_run, measured.rounds_skipped, measured.stopped), (3, 0, None));
    }
}
