#!/usr/bin/env bash
# Runs every test and check: formatting, lints, unit tests, the command-line contract, the
# end-to-end tests on the namespace lab with real iperf3 and a real Prometheus, and the
# dashboard and alert checks, the chart checks, and the container image build and smoke test.
# Needs root (the lab, podman). Installs what it needs first.
#
#   sudo ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt --check" >&2
cargo fmt --check
echo "== cargo clippy" >&2
cargo clippy --locked --all-targets --quiet -- -D warnings
echo "== cargo test" >&2
cargo test --locked
echo "== dashboards and alerts" >&2
scripts/check-dashboards.sh
echo "== chart" >&2
scripts/check-chart.sh
echo "== container image" >&2
scripts/build-image.sh --debug
scripts/smoke-image.sh
