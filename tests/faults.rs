//! Faults, on the namespace lab with real iperf3 servers and a real Prometheus: a node without a
//! server, a server killed mid-test, a busy server, a blackholed path, a lossy path, a link going
//! down mid-run, a hung server outlasting the budget, SIGTERM mid-run, and the Kubernetes API
//! failing or slow during discovery and exec (tests/fake_apiserver). Each test checks that the
//! run ends within a bound derived from its flags, that the unaffected pairs are measured and
//! pushed, that the failed pairs carry the right reason in the report and in Prometheus, and
//! the exit code. Needs root (the lab).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fake_apiserver;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use common::{KillOnDrop, Lab, Prometheus, lab_lock, processes_matching, run_monitor, spawn_monitor};
use fake_apiserver::{FakeApiServer, FakeCluster};
use serde_json::Value;

/// (source, destination, protocol).
type Pair = (String, String, String);

/// A finished run: its output, its JSON report and how long it took.
struct Run {
    output: Output,
    report: Value,
    elapsed: Duration,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn measurements(&self) -> Vec<Value> {
        self.report["measurements"].as_array().cloned().unwrap_or_default()
    }

    /// Every measured pair: None for a success, else the failure reason.
    fn outcomes(&self) -> BTreeMap<Pair, Option<String>> {
        self.measurements()
            .iter()
            .map(|m| (pair_of(m), m["outcome"]["failure"]["reason"].as_str().map(str::to_string)))
            .collect()
    }

    fn measurement(&self, source: &str, destination: &str, protocol: &str) -> Value {
        self.measurements()
            .into_iter()
            .find(|m| pair_of(m) == (source.into(), destination.into(), protocol.into()))
            .unwrap_or_else(|| panic!("no {source}→{destination} {protocol} in the report"))
    }
}

fn pair_of(m: &Value) -> Pair {
    let text = |key: &str| m[key].as_str().unwrap().to_string();
    (text("source"), text("destination"), text("protocol"))
}

fn report_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not the JSON report ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}

/// Runs the monitor on `inventory` with a JSON report and remote-write into `prom`.
fn run(inventory: &std::path::Path, prom: &Prometheus, args: &[&str]) -> Run {
    let url = prom.remote_write_url();
    let mut all = vec!["--inventory", inventory.to_str().unwrap(), "--remote-write-url", &url, "--output", "json"];
    all.extend_from_slice(args);
    let started = Instant::now();
    let output = run_monitor(&[], &all);
    let elapsed = started.elapsed();
    Run { report: report_of(&output), output, elapsed }
}

/// Starts the monitor as [`run`] does, for a test that acts while it runs.
fn spawn(inventory: &std::path::Path, prom: &Prometheus, args: &[&str]) -> Child {
    let url = prom.remote_write_url();
    let mut all = vec!["--inventory", inventory.to_str().unwrap(), "--remote-write-url", &url, "--output", "json"];
    all.extend_from_slice(args);
    spawn_monitor(&all)
}

/// What Prometheus holds for each pair: None for a success, else the failure reason.
fn outcomes_in_prometheus(prom: &Prometheus) -> BTreeMap<Pair, Option<String>> {
    let key = |r: &Value| {
        let m = &r["metric"];
        let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
        (text("source_node"), text("destination_node"), text("protocol"))
    };
    let reasons: BTreeMap<Pair, String> = prom
        .query("iperf3_test_failure")
        .iter()
        .map(|r| (key(r), r["metric"]["reason"].as_str().unwrap().to_string()))
        .collect();
    prom.query("iperf3_test_success")
        .iter()
        .map(|r| {
            let pair = key(r);
            let reason = if common::value_of(r) == 1.0 { None } else { Some(reasons[&pair].clone()) };
            (pair, reason)
        })
        .collect()
}

/// Every pair in the report, and only those, is in Prometheus with the same outcome, and each
/// outcome is the expected one: `expect(source, destination)` gives None for a success or the
/// failure reasons allowed (among them `success` when a success is allowed too).
fn assert_outcomes(run: &Run, prom: &Prometheus, expect: impl Fn(&str, &str) -> Option<&'static [&'static str]>) {
    let outcomes = run.outcomes();
    for ((source, destination, protocol), outcome) in &outcomes {
        match (expect(source, destination), outcome) {
            (None, None) => {}
            (Some(reasons), Some(reason)) if reasons.contains(&reason.as_str()) => {}
            (Some(reasons), None) if reasons.contains(&"success") => {}
            (expected, got) => panic!(
                "{source}→{destination} {protocol}: expected {expected:?}, got {got:?}: {}",
                run.measurement(source, destination, protocol)["outcome"]
            ),
        }
    }
    assert_eq!(outcomes_in_prometheus(prom), outcomes, "Prometheus and the report differ");
}

fn names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("n{i}")).collect()
}

/// Every ordered pair of `count` nodes, for each protocol.
fn mesh(count: usize, protocols: &[&str]) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for s in names(count) {
        for d in names(count) {
            for p in protocols {
                if s != d {
                    pairs.push((s.clone(), d.clone(), p.to_string()));
                }
            }
        }
    }
    pairs.sort();
    pairs
}

fn assert_all_pairs_measured(run: &Run, count: usize, protocols: &[&str]) {
    assert_eq!(run.outcomes().keys().cloned().collect::<Vec<_>>(), mesh(count, protocols), "pairs in the report");
}

/// Reads a child's stderr line by line on a thread, calling `on_line` with each, and hands
/// the whole text back at the end.
fn follow_stderr(child: &mut Child, mut on_line: impl FnMut(&str) + Send + 'static) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            on_line(&line);
            text.push_str(&line);
            text.push('\n');
        }
        text
    })
}

/// Waits for the child and collects what it printed.
fn finish(mut child: Child, stderr: std::thread::JoinHandle<String>, started: Instant) -> Run {
    let mut stdout = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
    let status = child.wait().unwrap();
    let elapsed = started.elapsed();
    let stderr = stderr.join().unwrap();
    eprintln!("--- iperf3-monitor stderr ---\n{stderr}");
    let output = Output { status, stdout, stderr: stderr.into_bytes() };
    Run { report: report_of(&output), output, elapsed }
}

/// Resumes a stopped process on drop, so a failed assertion leaves no server frozen.
struct Resume(i32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), nix::sys::signal::Signal::SIGCONT);
    }
}

fn seconds(m: &Value) -> f64 {
    m["duration_seconds"].as_f64().unwrap()
}

#[test]
fn a_node_without_a_server_is_refused_and_the_rest_is_measured() {
    let _lock = lab_lock();
    let lab = Lab::up("ftnosrv", 90, &[50, 50, 50], &[]);
    lab.signal_server(3, nix::sys::signal::Signal::SIGKILL);
    let prom = Prometheus::start();
    let run = run(&lab.inventory, &prom, &["--protocols", "tcp", "--duration", "1", "--test-timeout", "6"]);
    assert_eq!(run.code(), Some(1), "some tests failed, all delivered");
    assert_all_pairs_measured(&run, 3, &["tcp"]);
    assert_outcomes(&run, &prom, |_, dst| (dst == "n3").then_some(&["refused"][..]));
    // Two rounds: a refused connection fails at once, so no round lasts past its 1 s tests by much.
    assert!(run.elapsed < Duration::from_secs(2 * 6), "{:?}", run.elapsed);
    eprintln!("no server: {:.2}s for 2 rounds of 1 s tests", run.elapsed.as_secs_f64());
}

#[test]
fn a_server_killed_mid_test_fails_that_test_and_later_ones_are_refused() {
    let _lock = lab_lock();
    let lab = Lab::up("ftkill", 91, &[50, 50, 50], &[]);
    let prom = Prometheus::start();
    let pid = lab.server_pid(3);
    // Round 1 is n1→n2, n2→n3, n3→n1: kill n3's server a second into n2→n3.
    let client = format!("--client {} ", lab.address(3));
    let killer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while processes_matching(&client).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_secs(1));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    });
    let run = run(&lab.inventory, &prom, &["--protocols", "tcp", "--duration", "4", "--test-timeout", "10"]);
    killer.join().unwrap();
    assert_eq!(run.code(), Some(1));
    assert_all_pairs_measured(&run, 3, &["tcp"]);
    assert_outcomes(&run, &prom, |src, dst| match (src, dst) {
        ("n2", "n3") => Some(&["interrupted"]),
        ("n1", "n3") => Some(&["refused"]),
        _ => None,
    });
    let killed = run.measurement("n2", "n3", "tcp");
    let detail = killed["outcome"]["failure"]["detail"].as_str().unwrap();
    // Which socket notices first depends on timing: the control one, or the data one.
    assert!(
        detail.contains("control socket has closed unexpectedly") || detail.contains("stream socket: Connection reset"),
        "{detail}"
    );
    // The client noticed at once rather than waiting for --test-timeout.
    assert!(seconds(&killed) < 10.0, "{killed}");
}

#[test]
fn a_busy_server_is_retried_then_reported_busy() {
    let _lock = lab_lock();
    let lab = Lab::up("ftbusy", 92, &[50, 50, 50, 50], &[]);
    let dir = tempfile::tempdir().unwrap();
    // n4 is outside the run: its long test keeps n2's server busy for the whole run.
    let inventory = lab.inventory_of_first(3, dir.path());
    let n2 = lab.address(2);
    let _other = KillOnDrop(
        std::process::Command::new("ip")
            .args(["netns", "exec", &lab.namespace(4), "iperf3", "--client", &n2, "--time", "120", "--bitrate", "1M"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let busy = format!("{n2}:5201");
    let deadline = Instant::now() + Duration::from_secs(10);
    let established = || {
        let ss = std::process::Command::new("ip")
            .args(["netns", "exec", &lab.namespace(4), "ss", "-Htn", "state", "established"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ss.stdout).contains(&busy)
    };
    while !established() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let prom = Prometheus::start();
    let run = run(&inventory, &prom, &["--protocols", "tcp", "--duration", "1", "--test-timeout", "6"]);
    assert_eq!(run.code(), Some(1));
    assert_all_pairs_measured(&run, 3, &["tcp"]);
    assert_outcomes(&run, &prom, |_, dst| (dst == "n2").then_some(&["busy"][..]));
    for src in ["n1", "n3"] {
        let m = run.measurement(src, "n2", "tcp");
        // Three tries, 1 s and 2 s apart, then given up: not one try, not endless.
        assert!((3.0..3.0 + 3.0 * 6.0).contains(&seconds(&m)), "{m}");
        assert!(m["outcome"]["failure"]["detail"].as_str().unwrap().contains("busy"), "{m}");
    }
    assert_eq!(run.stderr().matches("reason=busy").count(), 2, "one warning per busy pair, after its retries");
}

#[test]
fn a_blackholed_path_is_unreachable_within_the_test_timeout() {
    let _lock = lab_lock();
    let lab = Lab::up("ftdrop", 93, &[50, 50, 50], &[]);
    // n1 drops everything it sends to n3: n1→n3 gets no SYN-ACK, n3→n1 neither.
    lab.exec_in(1, &["iptables", "-A", "OUTPUT", "-d", &lab.address(3), "-j", "DROP"]);
    let prom = Prometheus::start();
    // --test-timeout 8 with 2 s tests; iperf3's --connect-timeout is 2 s by default.
    let run = run(&lab.inventory, &prom, &["--protocols", "tcp", "--duration", "2", "--test-timeout", "8"]);
    assert_eq!(run.code(), Some(1));
    assert_all_pairs_measured(&run, 3, &["tcp"]);
    assert_outcomes(&run, &prom, |src, dst| {
        matches!((src, dst), ("n1", "n3") | ("n3", "n1")).then_some(&["unreachable"][..])
    });
    for (src, dst) in [("n1", "n3"), ("n3", "n1")] {
        let m = run.measurement(src, dst, "tcp");
        eprintln!("blackholed {src}→{dst}: failed after {:.2}s", seconds(&m));
        assert!((1.5..4.0).contains(&seconds(&m)), "gave up at the connect timeout, before the test timeout: {m}");
    }
    // One bad path condemns neither node: no test was skipped.
    assert!(!run.stderr().contains("its other tests"), "{}", run.stderr());
    // Two rounds, each at most one --test-timeout.
    assert!(run.elapsed < Duration::from_secs(2 * 8 + 5), "{:?}", run.elapsed);
}

/// Issue 19's fault classes together: a server that hangs (SIGSTOP: the kernel still accepts
/// connections, nothing answers) and a node that drops every packet. Each is tried from two
/// good peers, then its remaining tests on that side are recorded as skipped; the hung node
/// still sends, every other pair is measured, and the log warns once per node and side.
#[test]
fn a_hung_server_and_a_dark_node_are_tried_twice_then_skipped() {
    let _lock = lab_lock();
    let lab = Lab::up("ftsick", 89, &[50, 50, 50, 50, 50, 50], &[]);
    let _resume = Resume(lab.signal_server(2, nix::sys::signal::Signal::SIGSTOP));
    for chain in ["INPUT", "OUTPUT"] {
        lab.exec_in(5, &["iptables", "-A", chain, "-j", "DROP"]);
    }
    let prom = Prometheus::start();
    let run = run(&lab.inventory, &prom, &["--protocols", "tcp", "--duration", "2"]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert_all_pairs_measured(&run, 6, &["tcp"]);
    assert_outcomes(&run, &prom, |src, dst| match (src, dst) {
        (_, "n5") | ("n5", _) => Some(&["unreachable", "skipped"]),
        (_, "n2") => Some(&["timeout", "skipped"]),
        _ => None,
    });
    let count = |pred: &dyn Fn(&str, &str, &str) -> bool| {
        run.outcomes().iter().filter(|((s, d, _), r)| pred(s, d, r.as_deref().unwrap_or("success"))).count()
    };
    assert_eq!(count(&|_, d, r| d == "n2" && r == "timeout"), 2, "tried from two sources");
    assert_eq!(count(&|s, d, r| s != "n5" && d == "n2" && r == "skipped"), 2);
    assert!(count(&|s, d, r| (s == "n5" || d == "n5") && r == "skipped") >= 4, "{:?}", run.outcomes());
    let skipped = run.measurements().into_iter().find(|m| m["outcome"]["failure"]["reason"] == "skipped").unwrap();
    assert!(skipped["outcome"]["failure"]["detail"].as_str().unwrap().contains("the next run tries again"));
    // One warning per node and side, not one per pair.
    let stderr = run.stderr();
    let warned = |node: &str, side: &str| {
        let node = format!("node={node}");
        stderr.lines().filter(|l| l.contains("its other tests") && l.contains(&node) && l.contains(side)).count()
    };
    assert_eq!(warned("n2", "as a destination"), 1, "{stderr}");
    assert_eq!(warned("n2", "as a source"), 0, "the hung server's node still sends");
    assert_eq!(warned("n5", "as a destination"), 1, "{stderr}");
    assert_eq!(warned("n5", "as a source"), 1, "{stderr}");
    eprintln!("sick mesh of 6 nodes, 2-s tests: {:.1}s (lower bound 10 s)", run.elapsed.as_secs_f64());
}

#[test]
fn a_path_with_30_percent_loss_is_still_measured_and_low() {
    let _lock = lab_lock();
    // 30 % of the UDP data datagrams to n3's server are dropped (lab.sh spares iperf3's UDP
    // opener, whose loss fails a 3.12 test outright), and 30 % of the TCP segments, SYNs aside (a
    // lost SYN waits 1, 3, 7 s... and the connect timeout would turn loss into unreachable).
    let lab = Lab::up("ftloss", 94, &[50, 50, 50], &["--udp-loss", "3:0.3"]);
    let rule = "iptables -A INPUT -p tcp ! --syn --dport 5201 -m statistic --mode random --probability 0.3 -j DROP";
    lab.exec_in(3, &rule.split(' ').collect::<Vec<_>>());
    let prom = Prometheus::start();
    let run = run(&lab.inventory, &prom, &["--duration", "3", "--test-timeout", "40", "--udp-bitrate", "5M"]);
    assert_eq!(run.code(), Some(0), "loss is measured, not a failure");
    assert_all_pairs_measured(&run, 3, &["tcp", "udp"]);
    assert_outcomes(&run, &prom, |_, _| None);
    let received = prom.by_pair("iperf3_received_bytes_per_second{protocol=\"tcp\"}");
    let retransmits = prom.by_pair("iperf3_retransmits");
    for ((src, dst), bytes) in &received {
        let share = bytes * 8.0 / lab.path_rate_bits(src, dst);
        eprintln!(
            "tcp {src}→{dst}: {:.1}% of the shaped rate, {} retransmits",
            share * 100.0,
            retransmits[&(src.clone(), dst.clone())]
        );
        if dst == "n3" {
            assert!(share < 0.5, "{src}→{dst} at {share} of its rate through 30% loss");
            assert!(retransmits[&(src.clone(), dst.clone())] > 0.0);
        } else {
            assert!(share > 0.8, "{src}→{dst} at {share} of its rate without loss");
        }
    }
    for ((src, dst), ratio) in prom.by_pair("iperf3_loss_ratio") {
        let expected = if dst == "n3" { 0.2..0.4 } else { 0.0..0.03 };
        assert!(expected.contains(&ratio), "udp {src}→{dst}: loss {ratio}");
    }
}

#[test]
fn a_link_going_down_mid_run_fails_only_its_node() {
    let _lock = lab_lock();
    let lab = Lab::up("ftdown", 95, &[50, 50, 50, 50], &[]);
    let prom = Prometheus::start();
    let started = Instant::now();
    let mut child = spawn(&lab.inventory, &prom, &["--protocols", "tcp", "--duration", "2", "--test-timeout", "8"]);
    let namespace = lab.namespace(3);
    let mut down = false;
    let stderr = follow_stderr(&mut child, move |line| {
        // Round 1's four tests have ended; round 2 is starting.
        if !down && line.contains("tests=\"4/12\"") {
            down = true;
            let status = std::process::Command::new("ip")
                .args(["-n", &namespace, "link", "set", "eth0", "down"])
                .status()
                .unwrap();
            assert!(status.success());
        }
    });
    let run = finish(child, stderr, started);
    assert_eq!(run.code(), Some(1));
    assert_all_pairs_measured(&run, 4, &["tcp"]);
    let round = |src: &str, dst: &str| run.measurement(src, dst, "tcp")["round"].as_u64().unwrap();
    let first_round = round("n1", "n2");
    // A test from n3 that had connected before the link went down leaves its server waiting
    // for a client that is gone (iperf3's server has no idle timeout shorter than this run),
    // so a later test to that server may find it hung or busy.
    let left_waiting = |dst: &str| run.measurement("n3", dst, "tcp")["outcome"]["failure"]["reason"] == "timeout";
    assert_outcomes(&run, &prom, |src, dst| {
        let involved = src == "n3" || dst == "n3";
        match round(src, dst) - first_round {
            _ if !involved && left_waiting(dst) && round(src, dst) > round("n3", dst) => {
                Some(&["success", "timeout", "busy"])
            }
            _ if !involved => None,
            0 => None,
            // Tests with n3 after the link went down: those that had connected time out, the
            // others find no route; once two good peers saw n3 fail, its other tests are skipped.
            _ => Some(&["unreachable", "timeout", "skipped"]),
        }
    });
    let skipped: Vec<String> = run
        .outcomes()
        .into_iter()
        .filter(|(_, reason)| reason.as_deref() == Some("skipped"))
        .map(|(p, _)| format!("{p:?}"))
        .collect();
    assert!(skipped.iter().all(|p| p.contains("n3")), "{skipped:?}");
    // Three rounds, each at most one --test-timeout.
    assert!(run.elapsed < Duration::from_secs(3 * 8 + 5), "{:?}", run.elapsed);
}

#[test]
fn a_hung_server_outlasting_the_budget_leaves_only_the_tests_it_holds_up_and_exits_5() {
    let _lock = lab_lock();
    let lab = Lab::up("ftbudget", 96, &[50, 50, 50], &[]);
    // A stopped server still completes TCP handshakes (the kernel does) but never answers.
    let _resume = Resume(lab.signal_server(3, nix::sys::signal::Signal::SIGSTOP));
    let prom = Prometheus::start();
    // 1-s tests are planned at 1.1 s: a budget of 4 s plans both rounds. n2→n3 hangs for 5 s
    // (--test-timeout), holding up n2's next test (n2→n1) and the next test to n3 (n1→n3);
    // when it ends, neither fits in the budget any more. Every other test ran meanwhile.
    let run =
        run(&lab.inventory, &prom, &["--protocols", "tcp", "--duration", "1", "--test-timeout", "5", "--budget", "4"]);
    assert_eq!(run.code(), Some(5), "stopped early: {}", run.stderr());
    assert_eq!(run.report["stopped"], "budget");
    assert_eq!((run.report["rounds_run"].as_u64(), run.report["rounds_skipped"].as_u64()), (Some(1), Some(1)));
    assert_eq!(run.report["plan"]["rounds"], 2);
    assert_outcomes(&run, &prom, |src, dst| (src, dst).eq(&("n2", "n3")).then_some(&["timeout"][..]));
    assert_eq!(run.outcomes().len(), 4, "round 1 and n3→n2 of round 2");
    assert_eq!(run.report["tests_not_run"], 2);
    assert!(run.stderr().contains("the run's budget is spent"), "{}", run.stderr());
    let skipped = prom.query("iperf3_monitor_run_rounds_skipped");
    assert_eq!(common::value_of(&skipped[0]), 1.0);
    // Budget plus at most one --test-timeout: no round starts after the budget.
    assert!(run.elapsed < Duration::from_secs(4 + 5 + 5), "{:?}", run.elapsed);
}

#[test]
fn sigterm_mid_run_delivers_what_was_measured_and_exits_5() {
    let _lock = lab_lock();
    let lab = Lab::up("ftterm", 97, &[50, 50, 50, 50], &[]);
    let prom = Prometheus::start();
    let started = Instant::now();
    // Six rounds of 2 s tests (tcp, udp).
    let mut child = spawn(&lab.inventory, &prom, &["--duration", "2", "--udp-bitrate", "5M"]);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let signalled = std::sync::Arc::new(std::sync::Mutex::new(None));
    let stamp = signalled.clone();
    let stderr = follow_stderr(&mut child, move |line| {
        let mut stamp = stamp.lock().unwrap();
        // The first progress line: round 1's four tests are ending.
        if stamp.is_none() && line.contains("progress") {
            // Half a second into round 2: its tests are in flight.
            std::thread::sleep(Duration::from_millis(500));
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
            *stamp = Some(Instant::now());
        }
    });
    let run = finish(child, stderr, started);
    let signalled = signalled.lock().unwrap().expect("SIGTERM sent");
    let after_signal = signalled.elapsed();
    assert_eq!(run.code(), Some(5), "stopped early");
    assert_eq!(run.report["stopped"], "signal");
    let rounds_run = run.report["rounds_run"].as_u64().unwrap();
    let skipped = run.report["rounds_skipped"].as_u64().unwrap();
    assert_eq!((rounds_run, skipped), (1, 5), "round 1 measured, round 2 abandoned, 3 to 6 skipped");
    // What was measured is what Prometheus holds, with the run-level series.
    assert_eq!(run.outcomes().len(), 4);
    assert_outcomes(&run, &prom, |_, _| None);
    assert_eq!(common::value_of(&prom.query("iperf3_monitor_run_rounds_skipped")[0]), 5.0);
    assert_eq!(common::value_of(&prom.query("iperf3_monitor_run_rounds")[0]), 1.0);
    assert!(run.stderr().contains("SIGTERM: delivering what was measured so far"), "{}", run.stderr());
    // The round in flight was abandoned, not waited for (its tests are not in the report), and
    // its clients are gone.
    eprintln!("exited {:.2}s after SIGTERM", after_signal.as_secs_f64());
    assert!(after_signal < Duration::from_secs(10), "{after_signal:?}");
    assert_eq!(processes_matching(&format!("--client 198.18.{}.", lab.subnet)), "");
    let full_run = 6.0 * 3.0;
    assert!(run.elapsed.as_secs_f64() < full_run, "{:?}", run.elapsed);
}

const NS: &str = "monitoring";

fn run_k8s(kubeconfig: &std::path::Path, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = common::monitor_command()
        .arg("run")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .env_remove("NODE_NAME")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    eprintln!("--- iperf3-monitor stderr ---\n{}", String::from_utf8_lossy(&output.stderr));
    (output, started.elapsed())
}

#[test]
fn the_api_server_failing_or_slow_during_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let prom = Prometheus::start();
    let url = prom.remote_write_url();
    let dry = ["--dry-run", "--output", "json"];
    let server = FakeApiServer::start(FakeCluster::lab("nolab", 98, 3, NS));
    let kubeconfig = server.kubeconfig(dir.path(), NS);
    let listed = |server: &FakeApiServer| -> Vec<u16> {
        server.requests().iter().filter(|r| r.path.ends_with("/pods")).map(|r| r.status).collect()
    };

    // 503 is retried by the Kubernetes client itself: the list succeeds on the third answer.
    server.fail_requests("/pods", 503, 2);
    let (output, _) = run_k8s(&kubeconfig, &dry);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(report_of(&output)["nodes"], serde_json::json!(["n1", "n2", "n3"]));
    assert_eq!(listed(&server), [503, 503, 200]);

    // Slow, but within --api-timeout.
    server.delay_requests("/pods", Duration::from_secs(2), 1);
    let (output, elapsed) = run_k8s(&kubeconfig, &["--dry-run", "--api-timeout", "10"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");

    // A 500 is asked for again (1 s later): the list succeeds on the second answer.
    let before = listed(&server).len();
    server.fail_requests("/pods", 500, 1);
    let (output, elapsed) = run_k8s(&kubeconfig, &dry);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(listed(&server)[before..], [500, 200]);
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");

    // 500 for good: two retries (1 s, 2 s), then exit 4 naming the answer, and nothing pushed.
    let before = listed(&server).len();
    server.fail_requests("/pods", 500, 3);
    let (output, elapsed) = run_k8s(&kubeconfig, &["--protocols", "tcp", "--remote-write-url", &url]);
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the Kubernetes API answered 500"), "{stderr}");
    assert_eq!(listed(&server)[before..], [500, 500, 500]);
    assert!(elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(13), "{elapsed:?}");

    // 503 for good: the client's own retries are cut by --api-timeout.
    server.fail_requests("/pods", 503, 10_000);
    let (output, elapsed) =
        run_k8s(&kubeconfig, &["--protocols", "tcp", "--remote-write-url", &url, "--api-timeout", "3"]);
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("did not answer within 3s"), "{stderr}");
    eprintln!("persistent 503 with --api-timeout 3: exit 4 after {:.2}s", elapsed.as_secs_f64());
    assert!(elapsed < Duration::from_secs(3 + 5), "{elapsed:?}");

    // SIGTERM while the list hangs: the run ends at once with exit 5 rather than waiting for
    // --api-timeout (a pod's grace period is shorter than a slow list of a large cluster).
    server.delay_requests("/pods", Duration::from_secs(20), 1);
    let before = server.arrived().len();
    let started = Instant::now();
    let child = common::monitor_command()
        .args(["run", "--protocols", "tcp", "--remote-write-url", &url, "--api-timeout", "30"])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .env_remove("NODE_NAME")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The signal goes once the list has reached the server (and hangs there).
    while !server.arrived()[before..].iter().any(|target| target.contains("/pods")) {
        assert!(started.elapsed() < Duration::from_secs(10), "the list never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let signalled = Instant::now();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("stopped by a signal during discovery"), "{stderr}");
    eprintln!("SIGTERM during a hanging list: exit 5 after {:.2}s", signalled.elapsed().as_secs_f64());
    assert!(signalled.elapsed() < Duration::from_secs(5), "{:?}", signalled.elapsed());
    assert!(prom.query("{__name__=~\"iperf3_.*\"}").is_empty(), "nothing may be pushed");
}

#[test]
fn the_api_server_failing_or_slow_during_exec() {
    let _lock = lab_lock();
    let lab = Lab::up("ftexec", 99, &[50, 50, 50, 50], &[]);
    let server = FakeApiServer::start(FakeCluster::lab(&lab.name, lab.subnet, 4, NS));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), NS);
    let prom = Prometheus::start();
    let pod = |node: &str| format!("/pods/iperf3-monitor-server-{node}/exec");
    // n1's first two execs answer 503 (retried by the client), n2's always 500 (not retried),
    // n3's answer only after --test-timeout.
    server.fail_requests(&pod("n1"), 503, 2);
    server.fail_requests(&pod("n2"), 500, 1000);
    server.delay_requests(&pod("n3"), Duration::from_secs(15), 1000);
    let url = prom.remote_write_url();
    let args = [
        "--protocols",
        "tcp",
        "--duration",
        "1",
        "--test-timeout",
        "6",
        "--remote-write-url",
        &url,
        "--output",
        "json",
    ];
    let (output, elapsed) = run_k8s(&kubeconfig, &args);
    assert_eq!(output.status.code(), Some(1), "some tests failed, all delivered");
    let run = Run { report: report_of(&output), output, elapsed };
    assert_all_pairs_measured(&run, 4, &["tcp"]);
    assert_outcomes(&run, &prom, |src, _| match src {
        "n2" => Some(&["spawn"]),
        // Two timeouts towards good receivers, then n3 is taken as down as a source.
        "n3" => Some(&["timeout", "skipped"]),
        _ => None,
    });
    let from_n3 =
        |reason: &str| run.outcomes().iter().filter(|((s, _, _), r)| s == "n3" && r.as_deref() == Some(reason)).count();
    assert_eq!((from_n3("timeout"), from_n3("skipped")), (2, 1));
    for m in run.measurements().iter().filter(|m| m["source"] == "n2") {
        let detail = m["outcome"]["failure"]["detail"].as_str().unwrap();
        assert!(detail.contains("exec into pod monitoring/iperf3-monitor-server-n2: 500"), "{detail}");
    }
    let n1: Vec<u16> = server.requests().iter().filter(|r| r.path.ends_with(&pod("n1"))).map(|r| r.status).collect();
    assert_eq!(n1, [503, 503, 101, 101, 101], "n1's execs: two retried 503s, then its three tests");
    // Two timeouts of n3's, the rest alongside.
    assert!(run.elapsed < Duration::from_secs(2 * 6 + 5), "{:?}", run.elapsed);
}
