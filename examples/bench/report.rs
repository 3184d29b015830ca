//! The table of issue 7's figures, computed from what `scripts/bench.sh` measured and left in
//! a results directory (layout below). Nothing here is measured: every number is read from a
//! file the script wrote during this run, or from the machine (its description).
//!
//! ```text
//! settings.json                  test duration, lab sizes, which N the pairing comparison used, ...
//! lab/alone.{json,usage.json}    the largest lab mesh, one test at a time (--concurrency 1)
//! lab/n<N>-duplex.{json,usage.json}, lab/n<N>-naive.json, lab/n<N>-exclusive.{json,usage.json}
//! ack/alone.json, ack/n<N>-{duplex,exclusive}.{json,usage.json}   the --shared-ack-queue lab
//! scale/dry-n<N>.usage.json, scale/sim-c<C>.{usage.json,out}, scale/plan.{json,usage.json},
//! scale/coverage-n<N>.json, delivery.json, criterion/<group>/<bench>/new/estimates.json
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The results directory (target/bench/raw).
    dir: PathBuf,
    /// Criterion's output directory (target/criterion).
    #[arg(long)]
    criterion: PathBuf,
}

/// Goals of issue 7.
const WALL_TARGET: f64 = 1.05;
const FIDELITY_TARGET: f64 = 0.95;
const RSS_TARGET_MB: f64 = 30.0;
const PLAN_SECONDS_TARGET: f64 = 0.2;
const PLAN_RSS_TARGET_MB: f64 = 20.0;
const DELIVERY_SECONDS_TARGET: f64 = 2.0;

pub fn run(args: Args) -> Result<()> {
    let results = Results { dir: args.dir.clone(), criterion: args.criterion };
    let mut out = String::new();
    let mut targets = Vec::new();
    results.header(&mut out)?;
    results.mesh(&mut out, &mut targets)?;
    results.pairing(&mut out)?;
    results.overhead(&mut out, &mut targets)?;
    results.plan(&mut out, &mut targets)?;
    results.delivery(&mut out, &mut targets)?;
    results.coverage(&mut out)?;
    let _ = writeln!(out, "\n#### Targets (issue 7)\n\n| target | measured | met |\n|---|---|---|");
    for (target, measured, met) in targets {
        let _ = writeln!(out, "| {target} | {measured} | {} |", if met { "yes" } else { "**no**" });
    }
    print!("{out}");
    Ok(())
}

struct Results {
    dir: PathBuf,
    criterion: PathBuf,
}

type Targets = Vec<(String, String, bool)>;

/// A pair's received throughput, by (source, destination).
type Throughputs = HashMap<(String, String), f64>;

impl Results {
    fn json(&self, name: &str) -> Result<Value> {
        read_json(&self.dir.join(name))
    }

    fn settings(&self) -> Result<Value> {
        self.json("settings.json")
    }

    fn header(&self, out: &mut String) -> Result<()> {
        let settings = self.settings()?;
        let cpu = std::fs::read_to_string("/proc/cpuinfo")?
            .lines()
            .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_string()))
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim().to_string();
        let iperf3 = command_line("iperf3", &["--version"]);
        let prometheus = command_line("prometheus", &["--version"]);
        let _ = writeln!(
            out,
            "Machine: {cores} × {cpu}, Linux {kernel}, {iperf3}, {prometheus}; load average {} at the start \
             (others' builds share these cores). Measured by `{}` on {} in {:.1} min.\n",
            str_of(&settings["load_average"]).split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            str_of(&settings["command"]),
            str_of(&settings["date"]),
            num(&settings["seconds"]) / 60.0,
        );
        Ok(())
    }

    /// §1 and §2: wall time against the lower bound, and fidelity, per N.
    fn mesh(&self, out: &mut String, targets: &mut Targets) -> Result<()> {
        let settings = self.settings()?;
        let d = num(&settings["duration"]);
        let sizes: Vec<usize> =
            settings["sizes"].as_array().context("sizes")?.iter().map(|v| num(v) as usize).collect();
        let alone_report = self.json("lab/alone.json")?;
        let alone = throughputs(&alone_report);
        let _ = writeln!(
            out,
            "#### 1–2. Full TCP mesh on the lab ({d:.0}-s tests): wall time ÷ lower bound (N-1)×{d:.0} s, and fidelity \
             (each pair's throughput ÷ the same pair measured alone)\n"
        );
        let _ = writeln!(
            out,
            "| N | lower bound | rounds (bound) | **ours**: wall ÷ bound | sequential ÷ bound | naive, 4 at a time ÷ bound \
             | **ours**: fidelity min / mean | naive: fidelity min / mean |\n|---|---|---|---|---|---|---|---|"
        );
        let mut all_rounds_at_bound = true;
        let mut worst_fidelity = f64::INFINITY;
        for &n in &sizes {
            let bound = (n - 1) as f64 * d;
            let ours = self.json(&format!("lab/n{n}-duplex.json"))?;
            let ours_wall = num(&self.json(&format!("lab/n{n}-duplex.usage.json"))?["wall_seconds"]);
            let rounds = num(&ours["rounds_run"]) as usize;
            all_rounds_at_bound &= rounds == n - 1 && failures(&ours) == 0;
            let nodes: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
            // One test at a time: the alone run's tests among these nodes, back to back.
            let sequential: f64 = measurements(&alone_report)
                .filter(|m| nodes.contains(&string(&m["source"])) && nodes.contains(&string(&m["destination"])))
                .map(|m| num(&m["duration_seconds"]))
                .sum();
            let naive = self.json(&format!("lab/n{n}-naive.json"))?;
            let (ours_min, ours_mean) = fidelity(&throughputs(&ours), &alone);
            let (naive_min, naive_mean) = fidelity(&throughputs(&naive), &alone);
            worst_fidelity = worst_fidelity.min(ours_min);
            let _ = writeln!(
                out,
                "| {n} | {bound:.0} s | {rounds} ({}) | **{:.3}** | {:.2} | {:.2} ({} retries) | **{ours_min:.3} / {ours_mean:.3}** \
                 | {naive_min:.2} / {naive_mean:.2} |",
                n - 1,
                ours_wall / bound,
                sequential / bound,
                num(&naive["wall_seconds"]) / bound,
                num(&naive["retries"]),
            );
            if n == *sizes.iter().max().unwrap_or(&n) {
                targets.push((
                    format!("mesh wall ≤ {WALL_TARGET} × lower bound at N = {n}"),
                    format!("{:.3} ({ours_wall:.2} s ÷ {bound:.0} s)", ours_wall / bound),
                    ours_wall / bound <= WALL_TARGET,
                ));
            }
        }
        let _ = writeln!(
            out,
            "\nWall is the job process's, start to exit. Sequential: the per-test wall times of those pairs in one run \
             of the largest mesh with `--concurrency 1` (that run also gives the \"alone\" throughputs). Naive: every \
             ordered pair in random order, 4 tests at a time, no rounds; a test that finds its server busy is tried again 0.2 s later \
             (`examples/bench/naive.rs`)."
        );
        targets.insert(
            0,
            (
                "rounds = lower bound (N-1 per protocol)".into(),
                format!(
                    "N = {}: {}",
                    sizes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                    if all_rounds_at_bound { "N-1 rounds each, no failed test" } else { "see the table" }
                ),
                all_rounds_at_bound,
            ),
        );
        targets.insert(
            1,
            (
                format!("fidelity ≥ {FIDELITY_TARGET} for every pair"),
                format!("lowest pair {worst_fidelity:.3} (default lab, duplex)"),
                worst_fidelity >= FIDELITY_TARGET,
            ),
        );
        Ok(())
    }

    /// §2: duplex against exclusive pairing, with and without a shared ACK queue.
    fn pairing(&self, out: &mut String) -> Result<()> {
        let settings = self.settings()?;
        let d = num(&settings["duration"]);
        let _ = writeln!(
            out,
            "\n#### 2. Duplex rounds (send one test, receive another) vs exclusive pairing (one test per node)\n\n\
             | lab | N | pairing | rounds (lower bound) | wall ÷ (N-1)×{d:.0} s | fidelity min / mean |\n|---|---|---|---|---|---|"
        );
        for (lab, dir, n) in [
            ("ACKs unshaped (default)", "lab", num(&settings["exclusive_nodes"]) as usize),
            ("`--shared-ack-queue` (worst case)", "ack", num(&settings["ack_nodes"]) as usize),
        ] {
            let alone = throughputs(&self.json(&format!("{dir}/alone.json"))?);
            for pairing in ["duplex", "exclusive"] {
                let report = self.json(&format!("{dir}/n{n}-{pairing}.json"))?;
                let wall = num(&self.json(&format!("{dir}/n{n}-{pairing}.usage.json"))?["wall_seconds"]);
                let bound = if pairing == "duplex" {
                    n - 1
                } else if n % 2 == 0 {
                    2 * (n - 1)
                } else {
                    2 * n
                };
                let (min, mean) = fidelity(&throughputs(&report), &alone);
                let _ = writeln!(
                    out,
                    "| {lab} | {n} | {pairing} | {} ({bound}) | {:.2} | {min:.3} / {mean:.3} |",
                    num(&report["rounds_run"]),
                    wall / ((n - 1) as f64 * d),
                );
            }
        }
        Ok(())
    }

    /// §3: what the job costs besides iperf3.
    fn overhead(&self, out: &mut String, targets: &mut Targets) -> Result<()> {
        let settings = self.settings()?;
        let largest = settings["sizes"].as_array().context("sizes")?.iter().map(num).fold(0.0, f64::max) as usize;
        let _ = writeln!(
            out,
            "\n#### 3. Job overhead (the job process itself; its iperf3 clients' CPU apart)\n\n\
             | run | tests | wall | inside iperf3 | iperf3 beyond `--time` | the job's own (wall − inside) | job CPU | job peak RSS |\n|---|---|---|---|---|---|---|---|"
        );
        let d = num(&settings["duration"]);
        let mut row = |name: String, report: Option<Value>, usage: Value, per_test: bool| {
            let wall = num(&usage["wall_seconds"]);
            let (tests, inside, rounds) = match &report {
                Some(report) => {
                    (measurements(report).count(), inside_iperf3(report), num(&report["rounds_run"]) as usize)
                }
                None => (0, 0.0, 0),
            };
            // One test at a time: per test says more than per round.
            // The lab rounds are one wave each (N tests, --concurrency 64).
            let (unit, count) = if per_test { ("test", tests) } else { ("round", rounds) };
            let (job, iperf3) = if count > 0 {
                let job = (wall - inside) / count as f64 * 1e3;
                let iperf3 = (inside / count as f64 - d) * 1e3;
                (format!("{job:.1} ms per {unit}"), format!("{iperf3:.0} ms per {unit}"))
            } else {
                ("–".into(), "–".into())
            };
            let inside = if report.is_some() { format!("{inside:.2} s") } else { "–".into() };
            let _ = writeln!(
                out,
                "| {name} | {tests} | {wall:.2} s | {inside} | {iperf3} | {job} | {:.2} s | {:.1} MB |",
                num(&usage["cpu_seconds"]),
                mb(&usage["peak_rss_bytes"]),
            );
        };
        row(
            format!("lab, N = {largest}, ours"),
            Some(self.json(&format!("lab/n{largest}-duplex.json"))?),
            self.json(&format!("lab/n{largest}-duplex.usage.json"))?,
            false,
        );
        row(
            format!("lab, N = {largest}, one test at a time"),
            Some(self.json("lab/alone.json")?),
            self.json("lab/alone.usage.json")?,
            true,
        );
        for n in nums(&settings["dry_run_nodes"]) {
            row(format!("`--dry-run`, {n} nodes"), None, self.json(&format!("scale/dry-n{n}.usage.json"))?, false);
        }
        let sim_nodes = num(&settings["sim_nodes"]) as usize;
        let mut sim_rss = Vec::new();
        for c in nums(&settings["sim_concurrency"]) {
            let usage = self.json(&format!("scale/sim-c{c}.usage.json"))?;
            let summary = std::fs::read_to_string(self.dir.join(format!("scale/sim-c{c}.out")))?;
            let summary = summary.lines().last().unwrap_or_default().to_string();
            let tests: usize = summary.split_whitespace().next().and_then(|t| t.parse().ok()).unwrap_or(0);
            let rounds: usize = summary
                .split("; ")
                .find_map(|part| part.split(" of ").next().and_then(|r| r.trim().parse().ok()))
                .unwrap_or(0);
            let wall = num(&usage["wall_seconds"]);
            let _ = writeln!(
                out,
                "| simulated {sim_nodes}-node run, `--concurrency {c}`: {rounds} rounds, remote-write to Prometheus | {tests} | {wall:.2} s | – | – | – | {:.2} s | {:.1} MB |",
                num(&usage["cpu_seconds"]),
                mb(&usage["peak_rss_bytes"]),
            );
            sim_rss.push((c, rounds, tests, mb(&usage["peak_rss_bytes"])));
        }
        let _ = writeln!(
            out,
            "\nInside iperf3: the time at least one test was running, each from its client's start to its exit \
             (`ip netns exec` included); beyond `--time`: that time less the tests' duration, i.e. iperf3's own start, \
             connection, parameter exchange and results; the job's own: wall time outside any test (start-up, planning, \
             samples, delivery, output). \
             CPU and peak RSS: the job process alone (`/proc/PID/stat` of the exited job before it is reaped; `VmHWM` \
             sampled every 2 ms; `examples/bench/usage.rs`). The simulated runs use a stand-in iperf3 client that prints \
             a real iperf3 3.12 report captured on the lab, {sim_nodes} inventory nodes, 5-s tests and `--budget {}`, \
             the matrix printed on stdout (the chart's default `--output table`).",
            num(&settings["sim_budget"]),
        );
        for (c, rounds, tests, rss) in sim_rss {
            targets.push((
                format!("peak RSS ≤ {RSS_TARGET_MB} MB for a {sim_nodes}-node run's results"),
                format!("{rss:.1} MB with `--concurrency {c}` ({rounds} rounds, {tests} tests)"),
                rss <= RSS_TARGET_MB,
            ));
        }
        Ok(())
    }

    /// §4: the plan of a 5,000-node mesh.
    fn plan(&self, out: &mut String, targets: &mut Targets) -> Result<()> {
        let plan = self.json("scale/plan.json")?;
        let usage = self.json("scale/plan.usage.json")?;
        let nodes = num(&plan["nodes"]) as usize;
        let dry = self.json(&format!("scale/dry-n{nodes}.usage.json"))?;
        let estimate = |group: &str, bench: &str| -> Result<f64> {
            let path = self.criterion.join(group).join(bench).join("new/estimates.json");
            Ok(num(&read_json(&path)?["mean"]["point_estimate"]) / 1e9)
        };
        let walk = estimate("schedule", &format!("walk_every_pair_{nodes}_nodes"))?;
        let plan_new = estimate("schedule", &format!("plan_new_{nodes}_nodes"))?;
        let _ = writeln!(
            out,
            "\n#### 4. Plan at scale: {nodes} nodes, {} directed pairs per protocol\n\n| part | time | memory |\n|---|---|---|",
            nodes * (nodes - 1)
        );
        let _ = writeln!(out, "| `Schedule` + `Plan::new` (criterion mean) | {} | – |", seconds(plan_new));
        let _ = writeln!(
            out,
            "| walk every pair of every round, one protocol: {} pairs (criterion mean) | {} | – |",
            nodes * (nodes - 1),
            seconds(walk)
        );
        let _ = writeln!(
            out,
            "| one process: schedule and plan {}, a run's rounds' pairs {}, the whole cycle's {} pairs {} | {:.2} s wall | {:.1} MB peak RSS |",
            seconds(num(&plan["schedule_and_plan_seconds"])),
            seconds(num(&plan["walk_run_seconds"])),
            num(&plan["pairs_walked"]),
            seconds(num(&plan["walk_cycle_seconds"])),
            num(&usage["wall_seconds"]),
            mb(&usage["peak_rss_bytes"]),
        );
        let dry_wall = num(&dry["wall_seconds"]);
        let dry_rss = mb(&dry["peak_rss_bytes"]);
        let _ = writeln!(
            out,
            "| `iperf3-monitor run --dry-run` on a {nodes}-node inventory (reading the YAML included) | {dry_wall:.3} s wall | {dry_rss:.1} MB peak RSS |"
        );
        targets.push((
            format!("{nodes}-node plan < {PLAN_SECONDS_TARGET} s and < {PLAN_RSS_TARGET_MB} MB"),
            format!("`--dry-run`: {dry_wall:.3} s, {dry_rss:.1} MB"),
            dry_wall < PLAN_SECONDS_TARGET && dry_rss < PLAN_RSS_TARGET_MB,
        ));
        Ok(())
    }

    /// §5: remote-write into a real Prometheus.
    fn delivery(&self, out: &mut String, targets: &mut Targets) -> Result<()> {
        let text = std::fs::read_to_string(self.dir.join("delivery.json"))?;
        let _ = writeln!(
            out,
            "\n#### 5. Delivery to a real Prometheus over remote-write (`RemoteWriteSink`, 127.0.0.1)\n\n\
             | samples | requests | encode + compress (criterion mean) | push (encode, send, answers) | samples/s | bytes per sample on the wire | series in Prometheus after |\n\
             |---|---|---|---|---|---|---|"
        );
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let figures: Value = serde_json::from_str(line)?;
            let samples = num(&figures["samples"]) as usize;
            let encode = self
                .criterion
                .join("remote_write")
                .join(format!("encode_{samples}_samples"))
                .join("new/estimates.json");
            let encode =
                read_json(&encode).map(|e| seconds(num(&e["mean"]["point_estimate"]) / 1e9)).unwrap_or("–".into());
            let push = num(&figures["push_seconds"]);
            let _ = writeln!(
                out,
                "| {samples} | {} | {encode} | {} | {:.0} | {:.1} | {} |",
                num(&figures["requests"]),
                seconds(push),
                num(&figures["samples_per_second"]),
                num(&figures["wire_bytes_per_sample"]),
                num(&figures["series_in_prometheus"]),
            );
            if samples >= 100_000 {
                targets.push((
                    format!("{samples} samples delivered < {DELIVERY_SECONDS_TARGET} s"),
                    seconds(push),
                    push < DELIVERY_SECONDS_TARGET,
                ));
            }
        }
        let _ = writeln!(
            out,
            "\nSamples shaped like a run's (9 per TCP test, cloud-length node names, `cluster` label). Bytes on the wire: \
             what the client sent through a counting proxy (HTTP headers included), for a second push of as many samples."
        );
        Ok(())
    }

    /// §6: runs until every pair was measured.
    fn coverage(&self, out: &mut String) -> Result<()> {
        let settings = self.settings()?;
        let _ = writeln!(
            out,
            "\n#### 6. Coverage at scale: TCP + UDP, 5-s tests, one run every 300 s, `--budget 270`\n\n\
             | nodes | tests at once | rounds per run | rounds in the cycle | runs until every pair was measured | `Plan` says | ideal | ÷ ideal | every pair every |\n\
             |---|---|---|---|---|---|---|---|---|"
        );
        for n in nums(&settings["coverage_nodes"]) {
            let c = self.json(&format!("scale/coverage-n{n}.json"))?;
            let runs = num(&c["runs_to_cover"]);
            let ideal = num(&c["ideal_runs"]);
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {} | {runs} | {} | {ideal:.1} | {:.2} | {} |",
                num(&c["max_parallel_tests"]),
                num(&c["rounds_per_run"]),
                num(&c["cycle_rounds"]),
                num(&c["plan_cycle_runs"]),
                runs / ideal.ceil(),
                hours(runs * num(&c["interval_seconds"])),
            );
        }
        let _ = writeln!(
            out,
            "\nRuns until every pair was measured: `Plan` for consecutive run indexes, every pair of every planned round \
             marked in a bitmap. Ideal: total test-seconds ÷ (interval × most tests at once), i.e. as if every second of \
             every interval ran N tests and no test had any overhead. The gap is the budget (270 of 300 s) and the \
             1-s allowance per round for process start and connection set-up."
        );
        Ok(())
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn num(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

fn nums(value: &Value) -> Vec<usize> {
    value.as_array().map(|a| a.iter().map(|v| num(v) as usize).collect()).unwrap_or_default()
}

fn string(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn mb(bytes: &Value) -> f64 {
    num(bytes) / 1e6
}

fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.1} µs", s * 1e6)
    } else {
        format!("{:.0} ns", s * 1e9)
    }
}

fn hours(s: f64) -> String {
    if s >= 48.0 * 3600.0 { format!("{:.1} days", s / 86_400.0) } else { format!("{:.1} h", s / 3600.0) }
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
        .unwrap_or_else(|| format!("{program}: not found"))
}

fn measurements(report: &Value) -> impl Iterator<Item = &Value> {
    report["measurements"].as_array().into_iter().flatten()
}

fn failures(report: &Value) -> usize {
    measurements(report).filter(|m| m["outcome"].get("failure").is_some()).count()
}

fn throughputs(report: &Value) -> Throughputs {
    measurements(report)
        .filter_map(|m| {
            let received = m["outcome"]["success"]["received_bytes_per_second"].as_f64()?;
            Some(((string(&m["source"]), string(&m["destination"])), received))
        })
        .collect()
}

/// (lowest, mean) of each pair's throughput ÷ its throughput alone.
fn fidelity(under: &Throughputs, alone: &Throughputs) -> (f64, f64) {
    let ratios: Vec<f64> = under.iter().filter_map(|(pair, t)| Some(t / alone.get(pair)?)).collect();
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    (min, ratios.iter().sum::<f64>() / ratios.len().max(1) as f64)
}

/// The time at least one test was running: the union of the tests' intervals (each ends at
/// its `finished_at` and lasted its `duration_seconds`, client start to exit).
fn inside_iperf3(report: &Value) -> f64 {
    let mut intervals: Vec<(f64, f64)> = measurements(report)
        .map(|m| {
            let end = num(&m["finished_at_unix_seconds"]);
            (end - num(&m["duration_seconds"]), end)
        })
        .collect();
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut total, mut covered_to) = (0.0, f64::NEG_INFINITY);
    for (start, end) in intervals {
        let start = start.max(covered_to);
        if end > start {
            total += end - start;
            covered_to = end;
        }
    }
    total
}
