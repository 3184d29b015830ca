#!/usr/bin/env bash
# Measures the figures of issue 14 on this machine: a lab of N nodes (default 8) at RATE Mbit/s
# each (default 100), dual-stack (tests/lab/lab.sh --ipv6) or with a second server per node on a
# "pod network" shaped to FRACTION of the node's rate (--pod-network), or both; one TCP run with
# default flags and 3-s tests. Prints, per mesh (network × IP family), the pairs measured and the
# worst and best ratio of a pair's throughput to its shaped rate; with --pod-network also each
# pair's pod ÷ host throughput (the CNI cost, expected FRACTION); and the run's wall time of
# measuring against the lower bound M × (N-1) × duration (each of the M meshes its own N-1 duplex
# rounds). Raw JSON and log in target/bench/meshes/. Needs root (the lab). About a minute once
# built.
#
#   sudo ./scripts/bench-meshes.sh [--ipv6] [--pod-network FRACTION] [N] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
lab_flags=() fraction=1 subnet=74
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --ipv6) lab_flags+=(--ipv6); shift ;;
        --pod-network) fraction=$2; lab_flags+=(--pod-network "$2"); subnet=75; shift 2 ;;
        *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
[[ ${#lab_flags[@]} -gt 0 ]] || lab_flags=(--ipv6)
nodes=${1:-8} rate=${2:-100} duration=3 lab=bnmesh

scripts/setup.sh
echo "bench-meshes: building (release)" >&2
cargo build --release --locked --quiet --bin iperf3-monitor
raw=target/bench/meshes
mkdir -p "$raw"
exec 8>/run/iperf3-monitor-lab.lock
flock 8
trap 'tests/lab/lab.sh down "$lab" || true' EXIT
rates=$(printf "$rate,%.0s" $(seq "$nodes"))
inventory=$(tests/lab/lab.sh up "$lab" --rates "${rates%,}" --subnet "$subnet" "${lab_flags[@]}")
echo "bench-meshes: $nodes nodes at $rate Mbit/s, ${lab_flags[*]}" >&2
target/release/iperf3-monitor run --inventory "$inventory" --protocols tcp --duration "$duration" \
    --output json >"$raw/run.json" 2>"$raw/run.log" || true
python3 - "$raw/run.json" "$nodes" "$rate" "$duration" "$fraction" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
nodes, rate, duration, fraction = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
ms = report["measurements"]
start = min(m["finished_at_unix_seconds"] - m["duration_seconds"] for m in ms)
end = max(m["finished_at_unix_seconds"] for m in ms)
meshes = [(n, f) for n in report["networks"] for f in report["ip_families"]]
bound = len(meshes) * (nodes - 1) * duration
bps = lambda m: m["outcome"]["success"]["received_bytes_per_second"] * 8
ok = lambda m: "success" in m["outcome"]
print("| network | family | pairs ok | worst ratio | best ratio |")
print("|---|---|---|---|---|")
for network, family in meshes:
    shaped = rate * 1e6 * (fraction if network == "pod" else 1)
    mesh = [m for m in ms if m["network"] == network and m["ip_family"] == family and ok(m)]
    ratios = [bps(m) / shaped for m in mesh] or [float("nan")]
    print(f"| {network} | {family} | {len(mesh)} of {nodes * (nodes - 1)} | {min(ratios):.3f} | {max(ratios):.3f} |")
if "pod" in report["networks"] and "host" in report["networks"]:
    print()
    for family in report["ip_families"]:
        by = {(m["network"], m["source"], m["destination"]): bps(m) for m in ms if m["ip_family"] == family and ok(m)}
        cost = [by[("pod", s, d)] / by[("host", s, d)] for (n, s, d) in by if n == "host" and ("pod", s, d) in by]
        print(f"CNI cost over {family} (pod ÷ host, expected {fraction}): {len(cost)} pairs, "
              f"{min(cost):.3f}–{max(cost):.3f}")
print()
print(f"measuring: {end - start:.2f} s for {len(ms)} tests in {report['rounds_run']} rounds; "
      f"lower bound {len(meshes)} meshes × (N-1) × {duration:.0f} s = {bound:.0f} s; {(end - start) / bound:.3f} × the bound "
      f"(target ≤ 1.1 ×); failed: {sum(1 for m in ms if 'failure' in m['outcome'])}")
PY
