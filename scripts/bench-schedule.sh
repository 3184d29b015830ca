#!/usr/bin/env bash
# Measures the scheduling figures of issue 19 on this machine and prints one Markdown report,
# also written to target/bench/schedule.md (raw JSON in target/bench/schedule/):
#   1. an 8-node lab at 100 Mbit/s, 3-s TCP tests, default flags: healthy; with one hung server
#      (SIGSTOP) and one blackholed node; with one blackholed path;
#   2. a healthy 16-node lab;
#   3. coverage at the chart's defaults (the CronJob's rendered arguments, 5-minute schedule) for
#      1,000 and 5,000 nodes at the default --concurrency and at --concurrency = N.
# Needs root (the lab) and helm (scripts/check-chart.sh --install-tools). About 3 minutes once
# built.
#
#   sudo ./scripts/bench-schedule.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/check-chart.sh --install-tools >/dev/null
helm=${IPERF3_MONITOR_TOOLS:-$HOME/.cache/iperf3-monitor-tools}/bin/helm

out=target/bench
raw=$out/schedule
rm -rf "$raw"
mkdir -p "$raw"
raw=$(realpath "$raw")
lab=bnsched duration=3 rate=100

echo "bench-schedule: building (release)" >&2
cargo build --release --locked --quiet --bin iperf3-monitor --example bench
monitor=$PWD/target/release/iperf3-monitor
bench=$PWD/target/release/examples/bench

cleanup() {
    [[ -n ${stopped_pid:-} ]] && kill -CONT "$stopped_pid" 2>/dev/null
    tests/lab/lab.sh down "$lab" || true
}
trap cleanup EXIT

# run NAME INVENTORY: one TCP run of the job with default flags, its report in NAME.json.
run() {
    echo "bench-schedule: $1" >&2
    "$monitor" run --inventory "$2" --protocols tcp --duration "$duration" --output json \
        >"$raw/$1.json" 2>"$raw/$1.log" || true
}

# rates N: N nodes at $rate, comma-separated.
rates() { local r=() i; for ((i = 0; i < $1; i++)); do r+=("$rate"); done; local IFS=,; echo "${r[*]}"; }

inventory=$(tests/lab/lab.sh up "$lab" --rates "$(rates 16)" --subnet 72)
"$bench" inventory --take 8 --from "$inventory" >"$raw/n8.yaml"
run healthy-n16 "$inventory"
run healthy-n8 "$raw/n8.yaml"

# n4's server hangs (the kernel still accepts its connections); n7 drops every packet.
state=${IPERF3_MONITOR_LAB_STATE:-/run/iperf3-monitor-lab}/$lab
stopped_pid=$(cat "$state/n4.pid")
kill -STOP "$stopped_pid"
for chain in INPUT OUTPUT; do ip netns exec "$lab-n7" iptables -A "$chain" -j DROP; done
run sick-n8 "$raw/n8.yaml"
kill -CONT "$stopped_pid"
stopped_pid=
for chain in INPUT OUTPUT; do ip netns exec "$lab-n7" iptables -D "$chain" -j DROP; done
# A server left waiting by a client that vanished needs a moment: restart the lab's servers.
tests/lab/lab.sh down "$lab"
inventory=$(tests/lab/lab.sh up "$lab" --rates "$(rates 8)" --subnet 72)
# n2 drops what it sends to n6: both directions of that one path fail.
ip netns exec "$lab-n2" iptables -A OUTPUT -d 198.18.72.6 -j DROP
run path-n8 "$inventory"
tests/lab/lab.sh down "$lab"

# The chart's defaults, as the CronJob passes them.
"$helm" template bench chart --set push.remoteWrite.url=http://p:9090/api/v1/write \
    --show-only templates/cronjob.yaml >"$raw/cronjob.yaml"
arg() { grep -oE -- "--$1=[0-9]+" "$raw/cronjob.yaml" | cut -d= -f2; }
budget=$(arg budget) interval=$(arg interval)
chart_duration=$(grep -A1 -- '--duration' "$raw/cronjob.yaml" | grep -oE '[0-9]+' | head -1 || true)
chart_duration=${chart_duration:-5}
default_concurrency=$("$monitor" run --help | grep -A8 -- "--concurrency" | grep -oE "default: [0-9]+" | head -1 | grep -oE "[0-9]+")
for n in 1000 5000; do
    for c in "$default_concurrency" "$n"; do
        echo "bench-schedule: coverage n=$n c=$c" >&2
        "$bench" coverage --nodes "$n" --interval "$interval" --duration "$chart_duration" --budget "$budget" \
            --concurrency "$c" >"$raw/coverage-n$n-c$c.json"
    done
done

python3 - "$raw" "$rate" "$duration" "$budget" "$interval" <<'EOF'
import glob, json, os, sys
raw, rate, duration, budget, interval = sys.argv[1], float(sys.argv[2]) * 1e6, float(sys.argv[3]), *sys.argv[4:]

def report(name):
    with open(os.path.join(raw, name + ".json")) as f:
        return json.load(f)

print("#### Scheduling under faults: 3-s TCP tests, default flags, every node shaped to 100 Mbit/s\n")
print("| lab | N | wall | bound (N-1)×3 s | wall ÷ bound | target | healthy pairs ÷ shaped rate (min / mean) | pairs failed (reasons) |")
print("|---|---|---|---|---|---|---|---|")
for name, label, target in [
    ("healthy-n8", "healthy", lambda b, t: 1.03 * b),
    ("healthy-n16", "healthy", lambda b, t: 1.05 * b),
    ("sick-n8", "n4's server hung, n7 blackholed", lambda b, t: 1.15 * b + t),
    ("path-n8", "path n2↔n6 blackholed", lambda b, t: 1.15 * b + t),
]:
    r = report(name)
    n = len(r["nodes"])
    bound = (n - 1) * duration
    timeout = duration + 2 + 2
    wall = r["duration_seconds"]
    ok = [m["outcome"]["success"]["received_bytes_per_second"] * 8 / rate for m in r["measurements"] if "success" in m["outcome"]]
    failed = {}
    for m in r["measurements"]:
        if "failure" in m["outcome"]:
            reason = m["outcome"]["failure"]["reason"]
            failed[reason] = failed.get(reason, 0) + 1
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(failed.items())) or "–"
    limit = target(bound, timeout)
    print(f"| {label} | {n} | {wall:.2f} s | {bound:.0f} s | {wall / bound:.3f} | ≤ {limit:.2f} s: {'met' if wall <= limit else 'NOT met'} "
          f"| {min(ok):.3f} / {sum(ok) / len(ok):.3f} ({len(ok)} pairs) | {sum(failed.values())} ({reasons}) |")
print(f"\nTargets: healthy N = 8 ≤ 1.03 × bound, N = 16 ≤ 1.05 × bound; with faults ≤ 1.15 × bound + one default test timeout (3 + 2 + 2 = 7 s). "
      "The shaped rate is htb's 100 Mbit/s; TCP goodput through it is about 0.96 of it.\n")
print(f"#### Coverage at the chart's defaults: `--budget {budget} --interval {interval}` as the CronJob renders them, TCP + UDP, 5-s tests\n")
print("| nodes | tests at once | tests per run | interval spent measuring | runs until every pair was measured | `Plan` says | ideal | ÷ ideal |")
print("|---|---|---|---|---|---|---|---|")
for path in sorted(glob.glob(os.path.join(raw, "coverage-*.json")), key=lambda p: (len(p), p)):
    with open(path) as f:
        c = json.load(f)
    ideal = c["ideal_runs"]
    print(f"| {c['nodes']} | {c['max_parallel_tests']} | {c['tests_per_run']} | {c['measuring_seconds'] / c['interval_seconds']:.0%} "
          f"| {c['runs_to_cover']} | {c['plan_cycle_runs']} | {ideal:.1f} | {c['runs_to_cover'] / ideal:.3f} |")
print("\nIdeal: all test-seconds of the cycle ÷ (interval × tests at once). Measuring: waves × duration ÷ interval.")
EOF
