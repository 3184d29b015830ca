#!/usr/bin/env bash
# The quick start: sets up a fresh Debian 12 machine, builds iperf3-monitor, starts a lab of five
# shaped nodes (network namespaces) and a real Prometheus on 127.0.0.1, measures the whole mesh
# over TCP and UDP, prints the matrix, and shows what landed in Prometheus. Cleans up after itself.
#
#   sudo ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/prometheus.sh
source scripts/lib/prometheus.sh

scripts/setup.sh
echo "demo: building iperf3-monitor" >&2
cargo build --locked --quiet

work=$(mktemp -d)
# shellcheck disable=SC2317,SC2329 # called by the EXIT trap
cleanup() {
    stop_prometheus
    tests/lab/lab.sh down demo
    rm -rf "$work"
}
trap cleanup EXIT

# Node n<i> sends and receives at the i-th rate (Mbit/s); 2% of the UDP to n4 is dropped.
inventory=$(tests/lab/lab.sh up demo --rates 50,100,150,200,250 --subnet 200 --udp-loss 4:0.02)
echo "demo: lab up: $inventory" >&2

start_prometheus "$work/prometheus"
port=$prometheus_port
echo "demo: prometheus on http://127.0.0.1:$port" >&2

status=0
mkdir -p target/demo
target/debug/iperf3-monitor run --inventory "$inventory" --duration 3 --udp-bitrate 20M \
    --remote-write-url "http://127.0.0.1:$port/api/v1/write" --cluster demo \
    --matrix-svg target/demo/matrix.svg || status=$?
echo "demo: the matrix as an SVG heatmap: target/demo/matrix.svg" >&2

echo
echo "Prometheus now holds, for example (iperf3_received_bytes_per_second * 8 / 1e6, tcp):"
curl -sf "http://127.0.0.1:$port/api/v1/query" \
    --data-urlencode 'query=sort_desc(iperf3_received_bytes_per_second{protocol="tcp"} * 8 / 1e6)' |
    jq -r 'limit(5; .data.result[]) | "  \(.metric.source_node) → \(.metric.destination_node): \(.value[1] | tonumber | . * 10 | round / 10) Mbit/s"'
echo "  ... and the run's own metrics:"
curl -sf "http://127.0.0.1:$port/api/v1/query" --data-urlencode 'query={__name__=~"iperf3_monitor_.*"}' |
    jq -r '.data.result[] | "  \(.metric.__name__)\(if .metric.protocol then "{protocol=\"" + .metric.protocol + "\"}" elif .metric.result then "{result=\"" + .metric.result + "\"}" else "" end) \(.value[1])"'
exit "$status"
