//! Drives a run's rounds through a client runner and records one [`Measurement`] per test.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::{Protocol, TestSettings};
use crate::iperf3::{self, Failure, FailureReason, TestResult};
use crate::runner::{ClientCommand, ClientOutput, ClientRunner, MAX_OUTPUT_BYTES, RunError};
use crate::schedule::{Pair, Plan, Round, Schedule};
use crate::targets::Node;

/// How often a test whose server was not taking tests (busy, or between two tests) is tried again.
const RETRIES: u32 = 2;
/// Wait before the first retry; doubles each time.
const BACKOFF: Duration = Duration::from_secs(1);
/// Most measurements room is made for before the run (160 MB of address space, 160 bytes each).
const MAX_RESERVED_MEASUREMENTS: usize = 1 << 20;
/// Most characters of a client's stderr kept in a failure's detail.
const MAX_DETAIL_CHARS: usize = 500;

/// One test's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    /// Node names, shared by every measurement of the node: a 1,000-node run has 45,000 tests.
    pub source: Arc<str>,
    pub destination: Arc<str>,
    pub protocol: Protocol,
    /// When the test ended (the timestamp of its samples).
    #[serde(rename = "finished_at_unix_seconds", serialize_with = "unix_seconds")]
    pub finished_at: SystemTime,
    /// Wall time of the test, retries included.
    pub duration_seconds: f64,
    /// Cycle index of the round the test ran in.
    pub round: usize,
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

/// What the measuring stage did.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Every finished test, those of an abandoned round included.
    pub measurements: Vec<Measurement>,
    /// Rounds measured whole.
    pub rounds_run: usize,
    /// Planned rounds not measured whole: the budget ran out, or the run was told to stop.
    pub rounds_skipped: usize,
    /// Why rounds were skipped, if they were.
    pub stopped: Option<StopReason>,
}

/// Why a run measured fewer rounds than it planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// SIGTERM or SIGINT (a CronJob's deadline, Ctrl-C).
    Signal,
    /// The next round would have ended after the run's --budget.
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
    pub concurrency: usize,
    /// No round starts unless its estimate ends before this (tokio's clock, so tests can
    /// pause it).
    pub deadline: Option<tokio::time::Instant>,
}

impl<R: ClientRunner> Measure<'_, R> {
    /// Runs the planned rounds one after the other. When `stop` turns true (SIGTERM), the
    /// round in progress is abandoned (its clients killed) and what was measured, including the
    /// tests of that round that had finished, is returned.
    pub async fn run(&self, schedule: &Schedule, plan: &Plan, mut stop: watch::Receiver<bool>) -> Measured {
        let names: Vec<Arc<str>> = self.nodes.iter().map(|n| Arc::from(n.name.as_str())).collect();
        // Room for every planned test up front: growing by doubling would hold up to twice that.
        // Pages are only used as tests finish; the cap bounds what a run without --budget over a
        // huge mesh (millions of planned tests) reserves.
        let planned = plan.tests(schedule);
        let mut measured = Measured {
            measurements: Vec::with_capacity(planned.min(MAX_RESERVED_MEASUREMENTS)),
            ..Measured::default()
        };
        for (i, round) in plan.rounds(schedule).enumerate() {
            let rounds_left = plan.rounds - i;
            if *stop.borrow() {
                tracing::warn!(rounds_left, "stopping early: the run was told to stop");
                measured.stop(StopReason::Signal, rounds_left);
                break;
            }
            // The first round always starts: the plan fits the budget, and what discovery took
            // before it (bounded by --api-timeout) would otherwise skip a round that fits exactly.
            if let Some(deadline) = self.deadline
                && i > 0
                && tokio::time::Instant::now() + plan.round_estimate > deadline
            {
                tracing::warn!(
                    rounds_left,
                    "the run's budget is spent; the remaining rounds are skipped (raise --budget or lower --duration)"
                );
                measured.stop(StopReason::Budget, rounds_left);
                break;
            }
            let started = Instant::now();
            let mut tests = Vec::new();
            let mut running = std::pin::pin!(
                futures::stream::iter(round.pairs())
                    .map(|pair| self.test(&names, round, pair))
                    .buffer_unordered(self.concurrency.max(1))
            );
            let abandoned = loop {
                tokio::select! {
                    test = running.next() => match test {
                        Some(test) => tests.push(test),
                        None => break false,
                    },
                    _ = stop.wait_for(|stop| *stop) => break true,
                }
            };
            let failed = tests.iter().filter(|m| m.failure().is_some()).count();
            if abandoned {
                tracing::warn!(
                    round = i + 1,
                    finished = tests.len(),
                    "stopping early: the run was told to stop; tests in progress are abandoned, finished ones kept"
                );
                measured.measurements.extend(tests);
                measured.stop(StopReason::Signal, rounds_left);
                break;
            }
            tracing::info!(
                round = format!("{}/{}", i + 1, plan.rounds),
                protocol = %round.protocol,
                tests = tests.len(),
                failed,
                seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
                "round done"
            );
            measured.measurements.extend(tests);
            measured.rounds_run += 1;
        }
        measured
    }

    async fn test(&self, names: &[Arc<str>], round: Round, pair: Pair) -> Measurement {
        let source = &self.nodes[pair.source];
        let destination = &self.nodes[pair.destination];
        let credentials = destination.credentials.as_ref();
        let argv =
            iperf3::client_argv(self.settings, round.protocol, &destination.address, destination.port, credentials);
        let command = ClientCommand { argv: &argv, credentials };
        let started = Instant::now();
        let mut attempt = 0;
        let outcome = loop {
            let outcome = match self.runner.run(source, command, self.settings.timeout).await {
                Ok(output) => judge(round.protocol, &output),
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
                Err(failure) if is_transient(&failure) && attempt < RETRIES => {
                    tokio::time::sleep(BACKOFF * 2u32.pow(attempt)).await;
                    attempt += 1;
                }
                outcome => break outcome,
            }
        };
        let measurement = Measurement {
            source: names[pair.source].clone(),
            destination: names[pair.destination].clone(),
            protocol: round.protocol,
            finished_at: SystemTime::now(),
            duration_seconds: started.elapsed().as_secs_f64(),
            round: round.index,
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
                received_bits_per_second = result.received_bytes_per_second() * 8.0,
                "test done"
            ),
            Outcome::Failure(failure) => tracing::warn!(
                source = %measurement.source,
                destination = %measurement.destination,
                protocol = %measurement.protocol,
                reason = %failure.reason,
                detail = %failure.detail,
                "test failed"
            ),
        }
        measurement
    }
}

/// Failures that say the server was not taking a test just then: busy with another client, or
/// resetting the connection while it gets ready for the next test (iperf3 reopens its listening
/// socket after each test; a client arriving in that gap, as the next round starts, is reset).
fn is_transient(failure: &Failure) -> bool {
    failure.reason == FailureReason::Busy
        || (failure.reason == FailureReason::Error
            && failure.detail.to_ascii_lowercase().starts_with("unable to connect to server: connection reset"))
}

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

impl Measured {
    fn stop(&mut self, reason: StopReason, rounds_left: usize) {
        self.stopped = Some(reason);
        self.rounds_skipped = rounds_left;
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
        // A 1,000-node run holds 45,000 of them until it ends (README, "Memory of large runs").
        assert!(std::mem::size_of::<Measurement>() <= 160, "{}", std::mem::size_of::<Measurement>());
    }

    #[derive(Default)]
    struct FakeRunner {
        answers: HashMap<String, Vec<Result<ClientOutput, &'static str>>>,
        calls: Mutex<Vec<(String, Vec<String>)>>,
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
            match self.answers.get(&address).and_then(|a| a.get(call).or(a.last())) {
                None => Ok(output(TCP_OK, 0)),
                Some(Ok(out)) => Ok(out.clone()),
                Some(Err("timeout")) => Err(RunError::Timeout(timeout)),
                Some(Err("hang")) => {
                    tokio::time::sleep(timeout).await;
                    Err(RunError::Timeout(timeout))
                }
                Some(Err(other)) => Err(RunError::Spawn(other.to_string())),
            }
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
            timeout: Duration::from_secs(3),
        }
    }

    async fn measure(runner: &FakeRunner, n: usize) -> Measured {
        let nodes = nodes(n);
        let settings = settings();
        let schedule =
            Schedule::new(Topology::Mesh { nodes: n, pairing: crate::config::Pairing::Duplex }, vec![Protocol::Tcp]);
        let plan = Plan::new(&schedule, None, Duration::from_secs(1), 64, 0).unwrap();
        let (_tx, stop) = watch::channel(false);
        let measure = Measure { runner, nodes: &nodes, settings: &settings, concurrency: 8, deadline: None };
        measure.run(&schedule, &plan, stop).await
    }

    /// A TCP mesh of `n` nodes, 1-s tests (2-s waves), `concurrency` at once, planned as run
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
        let schedule =
            Schedule::new(Topology::Mesh { nodes: n, pairing: crate::config::Pairing::Duplex }, vec![Protocol::Tcp]);
        let plan = Plan::new(&schedule, Some(budget), Duration::from_secs(1), concurrency, run).unwrap();
        let deadline = Some(tokio::time::Instant::now() + budget);
        tokio::time::advance(discovery).await;
        let (_tx, stop) = watch::channel(false);
        let measure = Measure { runner, nodes: &nodes, settings: &settings, concurrency, deadline };
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
        assert!(!is_transient(&iperf3::parse(Protocol::Tcp, refused.as_bytes()).unwrap_err()));
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
        let schedule =
            Schedule::new(Topology::Mesh { nodes: 4, pairing: crate::config::Pairing::Duplex }, vec![Protocol::Tcp]);
        let plan = Plan::new(&schedule, None, Duration::from_secs(1), 64, 0).unwrap();
        let (tx, stop) = watch::channel(false);
        tx.send(true).unwrap();
        let measure = Measure { runner: &runner, nodes: &nodes, settings: &settings, concurrency: 8, deadline: None };
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
        let schedule =
            Schedule::new(Topology::Mesh { nodes: 4, pairing: crate::config::Pairing::Duplex }, vec![Protocol::Tcp]);
        let plan = Plan::new(&schedule, None, Duration::from_secs(1), 64, 0).unwrap();
        let (tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            tx.send(true).unwrap();
            std::future::pending::<()>().await;
        });
        let measure = Measure { runner: &runner, nodes: &nodes, settings: &settings, concurrency: 8, deadline: None };
        let measured = measure.run(&schedule, &plan, stop).await;
        // Round 1 is n0→n1, n1→n2, n2→n3, n3→n0: all but the hanging test towards n1 finished.
        assert_eq!((measured.rounds_run, measured.rounds_skipped), (0, 3));
        assert_eq!(measured.stopped, Some(StopReason::Signal));
        let mut finished: Vec<_> = measured.measurements.iter().map(|m| &*m.destination).collect();
        finished.sort_unstable();
        assert_eq!(finished, ["n0", "n2", "n3"]);
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_that_no_longer_fit_the_budget_are_skipped_and_reported() {
        let mut runner = FakeRunner::default();
        // Every test towards n1 hangs until --test-timeout (3s), so round 1 takes 3s, not 2s.
        runner.answers.insert("a1".into(), vec![Err("hang")]);
        let (plan, measured) = measure_budgeted(&runner, 4, 8, Duration::from_secs(6), 0, Duration::ZERO).await;
        assert_eq!(plan.rounds, 3);
        // Rounds 1 (0-3s) and 2 (3-6s) ran; round 3 would end at 8s > 6s.
        assert_eq!((measured.rounds_run, measured.rounds_skipped), (2, 1));
        assert_eq!(measured.stopped, Some(StopReason::Budget));
        assert_eq!(measured.measurements.len(), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_of_a_split_round_measures_only_its_part() {
        let runner = FakeRunner::default();
        // 10 tests, 2 at once: 5 waves of 2s; 4s hold 2 waves: parts of 4, 4 and 2 tests.
        let (plan, measured) = measure_budgeted(&runner, 10, 2, Duration::from_secs(4), 2, Duration::ZERO).await;
        assert_eq!((plan.round_parts, plan.part, plan.rounds), (3, 2, 1));
        assert_eq!((measured.rounds_run, measured.rounds_skipped, measured.stopped), (1, 0, None));
        let mut sources: Vec<&str> = measured.measurements.iter().map(|m| &*m.source).collect();
        sources.sort_unstable();
        // Round 1 pairs node i with i+1; its third part is the last two tests.
        assert_eq!(sources, ["n8", "n9"]);
        assert!(measured.measurements.iter().all(|m| m.round == 0));
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
    async fn a_run_that_fits_its_budget_is_not_stopped() {
        let runner = FakeRunner::default();
        let measured = measure(&runner, 4).await;
        assert_eq!((measured.rounds_run, measured.rounds_skipped, measured.stopped), (3, 0, None));
    }
}
