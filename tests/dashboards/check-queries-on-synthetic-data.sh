#!/usr/bin/env bash
# Runs scripts/check-dashboard-queries.sh against a throwaway Prometheus on 127.0.0.1, filled
# with synthetic results (synthetic_metrics.py) shaped once like remote-write and once like the
# Pushgateway, on the host and the pod network, and checks that the CNI-cost matrix shows the
# data's pod ÷ host ratio, and that the check fails when the matrix does not match the node count
# or the ratio is not the one expected.
#
# Usage: tests/dashboards/check-queries-on-synthetic-data.sh
# Needs: python3, prometheus and promtool (Debian package prometheus). Cleans up after itself.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
nodes=4
# The synthetic pod network carries this share of the host network's tcp throughput.
pod_network_ratio=0.5
tmp=$(mktemp -d)
prometheus_pid=""

stop_prometheus() {
  if [[ -n $prometheus_pid ]]; then
    kill "$prometheus_pid" 2>/dev/null || true
    wait "$prometheus_pid" 2>/dev/null || true
    prometheus_pid=""
  fi
}
cleanup() {
  stop_prometheus
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

printf 'global:\n  scrape_interval: 1m\n' >"$tmp/prometheus.yml"

# shape, then the generator's extra flags: remote-write without cluster and zones labels,
# Pushgateway with both, so that both kinds of variable values are exercised.
for case in "remote-write" "pushgateway --cluster lab --zones"; do
  read -r shape flags <<<"$case"
  now=$(date +%s)
  # shellcheck disable=SC2086 # flags are words
  python3 "$here/synthetic_metrics.py" --shape "$shape" --nodes "$nodes" --end "$now" \
    --pod-network-ratio "$pod_network_ratio" $flags >"$tmp/$shape.om"
  promtool tsdb create-blocks-from openmetrics "$tmp/$shape.om" "$tmp/$shape-data" >"$tmp/$shape-blocks.log"

  port=$(free_port)
  prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/$shape-data" \
    --web.listen-address="127.0.0.1:$port" >"$tmp/$shape-prometheus.log" 2>&1 &
  prometheus_pid=$!
  url="http://127.0.0.1:$port"
  for _ in $(seq 60); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/-/ready", timeout=1)' "$url" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$prometheus_pid" 2>/dev/null; then
      echo "prometheus exited; its log:" >&2
      cat "$tmp/$shape-prometheus.log" >&2
      exit 1
    fi
    sleep 0.5
  done

  echo "== $shape: $nodes nodes, tcp and udp, host and pod network, one node gone after the first hour"
  "$repo/scripts/check-dashboard-queries.sh" "$url" --nodes "$nodes" --protocols tcp,udp --time "$now" \
    --cni-cost "tcp=$pod_network_ratio"

  # The same data claimed to come from one node more must fail on the matrix.
  if "$repo/scripts/check-dashboard-queries.sh" "$url" --nodes $((nodes + 1)) --protocols tcp,udp --time "$now" >"$tmp/$shape-negative.log"; then
    echo "FAIL the query check passed with --nodes $((nodes + 1)) on data of $nodes nodes:" >&2
    cat "$tmp/$shape-negative.log" >&2
    exit 1
  fi
  grep -q "expected $((nodes + 1))x$nodes" "$tmp/$shape-negative.log"
  echo "ok   $shape: the check fails when the matrix has not --nodes x (--nodes - 1) cells"

  # And when the CNI-cost matrix does not show the ratio expected.
  if "$repo/scripts/check-dashboard-queries.sh" "$url" --nodes "$nodes" --protocols tcp,udp --time "$now" \
    --cni-cost tcp=0.8 >"$tmp/$shape-cni.log"; then
    echo "FAIL the query check passed with --cni-cost tcp=0.8 on data of ratio $pod_network_ratio:" >&2
    cat "$tmp/$shape-cni.log" >&2
    exit 1
  fi
  grep -q "cells off 0.8 by more than 10%" "$tmp/$shape-cni.log"
  echo "ok   $shape: the check fails when the CNI-cost matrix is not at the ratio expected"
  stop_prometheus
done
echo "every query answered on remote-write and Pushgateway shaped data; the matrix has exactly $nodes x $((nodes - 1)) cells; the CNI-cost matrix shows $pod_network_ratio"
