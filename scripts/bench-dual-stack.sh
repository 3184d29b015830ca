#!/usr/bin/env bash
# Measures the dual-stack figures of issue 14 on this machine: a dual-stack lab of N nodes
# (default 8; tests/lab/lab.sh --ipv6) at RATE Mbit/s each (default 100), one TCP run with
# default flags and 3-s tests. Prints, per IP family, the pairs measured and the worst and best
# ratio of a pair's throughput to its shaped rate, and the run's wall time of measuring against
# the lower bound 2(N-1) × duration (each family its own N-1 duplex rounds). Raw JSON and log in
# target/bench/dual-stack/. Needs root (the lab). About a minute once built.
#
#   sudo ./scripts/bench-dual-stack.sh [N] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-8} rate=${2:-100} duration=3 lab=bndual

scripts/setup.sh
echo "bench-dual-stack: building (release)" >&2
cargo build --release --locked --quiet --bin iperf3-monitor
raw=target/bench/dual-stack
mkdir -p "$raw"
exec 8>/run/iperf3-monitor-lab.lock
flock 8
trap 'tests/lab/lab.sh down "$lab" || true' EXIT
rates=$(printf "$rate,%.0s" $(seq "$nodes"))
inventory=$(tests/lab/lab.sh up "$lab" --rates "${rates%,}" --subnet 74 --ipv6)
echo "bench-dual-stack: $nodes nodes at $rate Mbit/s, both families" >&2
target/release/iperf3-monitor run --inventory "$inventory" --protocols tcp --duration "$duration" \
    --output json >"$raw/run.json" 2>"$raw/run.log" || true
python3 - "$raw/run.json" "$nodes" "$rate" "$duration" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
nodes, rate, duration = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ms = report["measurements"]
start = min(m["finished_at_unix_seconds"] - m["duration_seconds"] for m in ms)
end = max(m["finished_at_unix_seconds"] for m in ms)
bound = 2 * (nodes - 1) * duration
print(f"| family | pairs ok | worst ratio | best ratio |")
print(f"|---|---|---|---|")
for family in report["ip_families"]:
    ok = [m for m in ms if m["ip_family"] == family and "success" in m["outcome"]]
    ratios = [m["outcome"]["success"]["received_bytes_per_second"] * 8 / (rate * 1e6) for m in ok]
    print(f"| {family} | {len(ok)} of {nodes * (nodes - 1)} | {min(ratios):.3f} | {max(ratios):.3f} |")
print()
print(f"measuring: {end - start:.2f} s for {len(ms)} tests in {report['rounds_run']} rounds; "
      f"lower bound 2(N-1) × {duration:.0f} s = {bound:.0f} s; {(end - start) / bound:.3f} × the bound "
      f"(target ≤ 1.1 ×); failed: {sum(1 for m in ms if 'failure' in m['outcome'])}")
PY
