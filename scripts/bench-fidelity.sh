#!/usr/bin/env bash
# Measures the fidelity figures of issue 18 on this machine and prints one Markdown report, also
# written to target/bench/fidelity.md (raw JSON in target/bench/fidelity/): each pair measured
# with the default pairing (auto) and with --pairing duplex, against the same pair in exclusive
# rounds, on
#   1. 4 unshaped nodes (several Gbit/s, CPU-limited) with 0.25 and 0.5 CPU per node (cgroup
#      quota over each node's server and the clients run on it);
#   2. 4 nodes whose ACKs share the node's egress queue (30-60 Mbit/s);
#   3. the default lab (8 nodes, 30-100 Mbit/s): the default's wall time against the duplex
#      lower bound.
# Needs root (the lab). About 4 minutes once built.
#
#   sudo ./scripts/bench-fidelity.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
out=target/bench
raw=$out/fidelity
rm -rf "$raw"
mkdir -p "$raw"
raw=$(realpath "$raw")
lab=bnfid duration=3

echo "bench-fidelity: building (release)" >&2
cargo build --release --locked --quiet --bin iperf3-monitor
monitor=$PWD/target/release/iperf3-monitor
trap 'tests/lab/lab.sh down "$lab" || true' EXIT

# run NAME INVENTORY ARGS...: one TCP run, its report in NAME.json.
run() {
    local name=$1 inventory=$2
    shift 2
    echo "bench-fidelity: $name" >&2
    "$monitor" run --inventory "$inventory" --protocols tcp --duration "$duration" --output json "$@" \
        >"$raw/$name.json" 2>"$raw/$name.log" || true
}

# lab_runs PREFIX LAB-ARGS...: the three pairings on one lab, exclusive twice (before and
# after): their mean is the reference, and how far apart they are is the lab's own noise.
lab_runs() {
    local prefix=$1
    shift
    local inventory
    inventory=$(tests/lab/lab.sh up "$lab" --subnet 73 "$@")
    run "$prefix-exclusive" "$inventory" --pairing exclusive
    run "$prefix-auto" "$inventory"
    run "$prefix-duplex" "$inventory" --pairing duplex
    run "$prefix-exclusive2" "$inventory" --pairing exclusive
    tests/lab/lab.sh down "$lab"
}

lab_runs cpu025 --rates 10000,10000,10000,10000 --cpu-quota 0.25
lab_runs cpu050 --rates 10000,10000,10000,10000 --cpu-quota 0.5
lab_runs ack --rates 30,40,50,60 --shared-ack-queue
inventory=$(tests/lab/lab.sh up "$lab" --subnet 73 --rates 30,40,50,60,70,80,90,100)
run default-auto "$inventory"
tests/lab/lab.sh down "$lab"

python3 - "$raw" "$duration" <<'EOF'
import json, os, sys
raw, duration = sys.argv[1], float(sys.argv[2])

def report(name):
    with open(os.path.join(raw, name + ".json")) as f:
        return json.load(f)

def rates(r):
    return {(m["source"], m["destination"]): m["outcome"]["success"]["received_bytes_per_second"]
            for m in r["measurements"] if "success" in m["outcome"]}

print("#### Fidelity with the default pairing: each pair ÷ the same pair in exclusive rounds (3-s TCP tests, 4 nodes)\n")
print("| lab | pairing | wall | switched to exclusive | pair ÷ exclusive, min / mean / max | CPU-bound tests |")
print("|---|---|---|---|---|---|")
for prefix, label in [("cpu025", "unshaped, 0.25 CPU per node"), ("cpu050", "unshaped, 0.5 CPU per node"),
                      ("ack", "ACKs share the egress queue, 30-60 Mbit/s")]:
    first, second = rates(report(f"{prefix}-exclusive")), rates(report(f"{prefix}-exclusive2"))
    reference = {k: (v + second[k]) / 2 for k, v in first.items() if k in second}
    for pairing, shown_as in [("exclusive", "exclusive, first run"), ("exclusive2", "exclusive, second run"),
                              ("auto", "auto (default)"), ("duplex", "duplex")]:
        r = report(f"{prefix}-{pairing}")
        ratios = [v / reference[k] for k, v in rates(r).items() if k in reference]
        cpu_bound = sum(1 for m in r["measurements"] if m.get("cpu_bound"))
        print(f"| {label} | {shown_as} | {r['duration_seconds']:.1f} s | {'yes' if r.get('switched_to_exclusive') else 'no'} "
              f"| {min(ratios):.2f} / {sum(ratios) / len(ratios):.2f} / {max(ratios):.2f} | {cpu_bound} of {len(r['measurements'])} |")
print("\nThe reference is each pair's mean over the two exclusive runs; their own spread is the lab's noise "
      "(the CPU-limited labs share this 2-core machine with whatever else runs on it).")
r = report("default-auto")
n = len(r["nodes"])
bound = (n - 1) * duration
print(f"\nDefault lab (ACKs unshaped, {n} nodes, 30-100 Mbit/s), default pairing: {r['duration_seconds']:.2f} s ÷ duplex lower bound "
      f"{bound:.0f} s = **{r['duration_seconds'] / bound:.3f}**, switched to exclusive: {'yes' if r.get('switched_to_exclusive') else 'no'}.")
EOF
