#!/usr/bin/env bash
# Runs every panel query of dashboards/*.json against a live Prometheus and checks the answers.
#
# Usage: scripts/check-dashboard-queries.sh PROM_URL [--nodes N] [--protocols tcp,udp]
#                                           [--time UNIX] [--step SECONDS] [--dashboard FILE]...
#
#   PROM_URL      base URL of a Prometheus holding the results of a real run, e.g. http://127.0.0.1:9090
#   --nodes N     nodes the run measured: the matrix must have exactly N x (N-1) cells per protocol
#   --protocols   protocols the run measured; each must be found [default: whatever the data has]
#   --time UNIX   evaluate at this time instead of now (results stay on the dashboards for the
#                 result window, 15 minutes by default, after their test)
#   --dashboard   check only this dashboard (repeatable) [default: dashboards/*.json]
#   --cni-cost PROTOCOL=RATIO  the CNI-cost matrix (pod ÷ host network) must read RATIO for every
#                 pair of PROTOCOL, within --cni-cost-tolerance (relative, default 0.1); repeatable
#
# Variables are resolved like Grafana does: a variable's own label_values() query is sent to
# PROM_URL, single-value variables take the first value, All takes the allValue, panels repeated
# over a variable are checked once per value. Then every query must return data, except queries
# on iperf3_test_failure (only emitted for failed tests) and those keeping CPU-bound tests
# (iperf3_test_cpu_bound == 1: a healthy run may have none), and each throughput matrix must have one
# cell per directed pair of distinct nodes. Prints one line per query and a closing
# "dashboard-queries: N passed, M failed"; exits non-zero if anything failed.
#
# Needs python3 (standard library only). Sends requests to PROM_URL only.
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec python3 "$repo/tests/dashboards/dashboard_queries.py" live "$@"
