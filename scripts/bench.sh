#!/usr/bin/env bash
# Measures the figures of issue 7 on this machine and prints one table, also written to
# target/bench/report.md (the JSON it is computed from stays in target/bench/raw/):
#   1. a full TCP mesh on the namespace lab, wall time against the lower bound (N-1) x duration,
#      beside one test at a time and a naive 4-at-a-time baseline;
#   2. fidelity, each pair's throughput against the same pair alone; duplex against exclusive
#      pairing, on the default lab and on one whose ACKs share the node's egress queue;
#   3. the job's own wall time, CPU and peak RSS: a lab run, dry runs of 100, 1,000 and 5,000
#      nodes, and 1,000-node runs with a stand-in iperf3 client;
#   4. the plan of a 5,000-node mesh (criterion: cargo bench --bench schedule);
#   5. remote-write of 10,000 and 100,000 samples into a real Prometheus;
#   6. runs until every pair of 100, 1,000 and 5,000 nodes has been measured.
# Ratios are measured side by side in one run, because the machine is shared and noisy. Needs
# root (the lab). About 10 minutes once built; --quick: fewer and shorter lab tests, about 4.
#
#   sudo ./scripts/bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/prometheus.sh
source scripts/lib/prometheus.sh

quick=0
case ${1:-} in
    --quick) quick=1 ;;
    "") ;;
    *) echo "usage: sudo $0 [--quick]" >&2; exit 2 ;;
esac

scripts/setup.sh

# Lab nodes n1..n8 send and receive at these rates (Mbit/s); a path runs at the lower of its two.
rates=30,40,50,60,70,80,90,100
# The simulated 1,000-node runs: at the default --concurrency 64 a round takes 16 waves and a
# 270-s run holds 2 rounds; with a wave per round (--concurrency 1000) it holds 45.
if [[ $quick -eq 1 ]]; then
    duration=2 sizes=(4 5) exclusive_nodes=4 ack_nodes=4 sim_concurrency=(64 250) criterion_args=(--quick)
else
    duration=3 sizes=(4 5 6 8) exclusive_nodes=6 ack_nodes=4 sim_concurrency=(64 1000) criterion_args=()
fi
largest=${sizes[-1]}
dry_run_nodes=(100 1000 5000)
coverage_nodes=(100 1000 5000)
sim_nodes=1000
sim_budget=270
lab=bnlab ack_lab=bnack

out=target/bench
raw=$out/raw
rm -rf "$raw"
mkdir -p "$raw"/{lab,ack,scale,fake}
raw=$(realpath "$raw")

echo "bench: building (release)" >&2
cargo build --release --locked --quiet --bin iperf3-monitor --example bench
monitor=$PWD/target/release/iperf3-monitor
bench=$PWD/target/release/examples/bench

cleanup() {
    stop_prometheus
    tests/lab/lab.sh down "$lab" || true
    tests/lab/lab.sh down "$ack_lab" || true
    rm -rf "$raw/prometheus"
}
trap cleanup EXIT

started=$(date +%s)
load_average=$(cat /proc/loadavg)

# job NAME ARGS...: one TCP run of the job on the lab, its JSON report in NAME.json and its
# wall time, CPU and peak RSS in NAME.usage.json.
job() {
    local name=$1
    shift
    echo "bench: $name" >&2
    RUST_LOG=warn "$bench" usage --out "$raw/$name.usage.json" -- \
        "$monitor" run --protocols tcp --duration "$duration" --output json "$@" \
        >"$raw/$name.json" 2>"$raw/$name.log" || true
    local code
    code=$(jq -r .exit_code "$raw/$name.usage.json")
    if [[ $code != 0 ]]; then
        echo "bench: $name exited $code; see $raw/$name.log" >&2
        exit 1
    fi
}

echo "bench: lab of ${largest} nodes at $rates Mbit/s" >&2
inventory=$(tests/lab/lab.sh up "$lab" --rates "$rates" --subnet 70)
for n in "${sizes[@]}"; do
    "$bench" inventory --take "$n" --from "$inventory" >"$raw/lab/n$n.yaml"
done
# The stand-in client of the simulated runs prints a real iperf3 report from this lab.
ip netns exec "$lab-n1" iperf3 --client 198.18.70.2 --json --interval 0 --time 1 >"$raw/fake/tcp.json"
printf '#!/bin/sh\n# Stands in for the iperf3 client: prints a real iperf3 3.12 report captured on the lab.\nexec cat %q\n' \
    "$raw/fake/tcp.json" >"$raw/fake/iperf3"
chmod +x "$raw/fake/iperf3"

# Every pair alone (one test at a time), then per N: our rounds beside the naive baseline.
job lab/alone --inventory "$raw/lab/n$largest.yaml" --concurrency 1
for n in "${sizes[@]}"; do
    job "lab/n$n-duplex" --inventory "$raw/lab/n$n.yaml"
    echo "bench: lab/n$n-naive" >&2
    "$bench" naive --inventory "$raw/lab/n$n.yaml" --duration "$duration" --concurrency 4 >"$raw/lab/n$n-naive.json"
done
job "lab/n$exclusive_nodes-exclusive" --inventory "$raw/lab/n$exclusive_nodes.yaml" --pairing exclusive
tests/lab/lab.sh down "$lab"

echo "bench: lab of ${ack_nodes} nodes whose ACKs share the egress queue" >&2
ack_inventory=$(tests/lab/lab.sh up "$ack_lab" --rates "$(cut -d, -f1-"$ack_nodes" <<<"$rates")" --subnet 71 --shared-ack-queue)
job ack/alone --inventory "$ack_inventory" --concurrency 1
job "ack/n$ack_nodes-duplex" --inventory "$ack_inventory"
job "ack/n$ack_nodes-exclusive" --inventory "$ack_inventory" --pairing exclusive
tests/lab/lab.sh down "$ack_lab"

echo "bench: a real Prometheus on 127.0.0.1" >&2
start_prometheus "$raw/prometheus"
port=$prometheus_port

echo "bench: delivery" >&2
"$bench" deliver --prometheus "http://127.0.0.1:$port/" --samples 10000,100000 >"$raw/delivery.json"

for n in "${dry_run_nodes[@]}"; do
    echo "bench: scale/dry-n$n" >&2
    "$bench" inventory --generate "$n" >"$raw/scale/n$n.yaml"
    "$bench" usage --out "$raw/scale/dry-n$n.usage.json" -- "$monitor" run --inventory "$raw/scale/n$n.yaml" \
        --dry-run --duration 5 --budget 270 --concurrency "$n" >"$raw/scale/dry-n$n.out" 2>"$raw/scale/dry-n$n.log"
done

# A 1,000-node run's results: every client is the stand-in, run where the job runs.
[[ -f $raw/scale/n$sim_nodes.yaml ]] || "$bench" inventory --generate "$sim_nodes" >"$raw/scale/n$sim_nodes.yaml"
for c in "${sim_concurrency[@]}"; do
    echo "bench: scale/sim-c$c" >&2
    RUST_LOG=warn "$bench" usage --out "$raw/scale/sim-c$c.usage.json" -- "$monitor" run \
        --inventory "$raw/scale/n$sim_nodes.yaml" --iperf3 "$raw/fake/iperf3" --protocols tcp --duration 5 \
        --budget "$sim_budget" --concurrency "$c" --remote-write-url "http://127.0.0.1:$port/api/v1/write" \
        >"$raw/scale/sim-c$c.out" 2>"$raw/scale/sim-c$c.log" || true
    [[ $(jq -r .exit_code "$raw/scale/sim-c$c.usage.json") == 0 ]] ||
        { echo "bench: scale/sim-c$c failed; see $raw/scale/sim-c$c.log" >&2; exit 1; }
done
stop_prometheus

echo "bench: scale/plan" >&2
"$bench" usage --out "$raw/scale/plan.usage.json" -- "$bench" plan --nodes 5000 >"$raw/scale/plan.json"
for n in "${coverage_nodes[@]}"; do
    "$bench" coverage --nodes "$n" --interval 300 --duration 5 --budget 270 >"$raw/scale/coverage-n$n.json"
done

echo "bench: criterion (cargo bench --bench schedule)" >&2
rm -rf target/criterion
cargo bench --locked --quiet --bench schedule -- "${criterion_args[@]}" >"$raw/criterion.txt" 2>&1

join() { local IFS=,; echo "$*"; }
command="sudo ./scripts/bench.sh"
[[ $quick -eq 1 ]] && command+=" --quick"
cat >"$raw/settings.json" <<EOF
{
  "command": "$command",
  "date": "$(date -u +%Y-%m-%dT%H:%MZ)",
  "seconds": $(($(date +%s) - started)),
  "load_average": "$load_average",
  "rates": "$rates",
  "duration": $duration,
  "sizes": [$(join "${sizes[@]}")],
  "exclusive_nodes": $exclusive_nodes,
  "ack_nodes": $ack_nodes,
  "dry_run_nodes": [$(join "${dry_run_nodes[@]}")],
  "coverage_nodes": [$(join "${coverage_nodes[@]}")],
  "sim_nodes": $sim_nodes,
  "sim_concurrency": [$(join "${sim_concurrency[@]}")],
  "sim_budget": $sim_budget
}
EOF
"$bench" report "$raw" --criterion target/criterion >"$out/report.md"
cat "$out/report.md"
echo "bench: written to $out/report.md" >&2
