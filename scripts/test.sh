#!/usr/bin/env bash
# Runs every test and check: formatting, lints, unit tests, the command-line contract, the
# end-to-end tests on the namespace lab with real iperf3 and a real Prometheus, and the
# dashboard and alert checks, the chart checks, actionlint on the workflows, and the container
# image (the release binary on scratch) build and smoke test;
# the chart installed on a real Kubernetes control plane whose nodes are the lab
# (tests/real_cluster_e2e.rs, scripts/kube-lab.sh). Prints the time of each phase.
# Needs root (the lab, podman). Installs what it needs first.
#
#   sudo ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# phase NAME: prints the time the previous phase took, and NAME.
phase_name="" phase_start=$SECONDS
phase() {
    [[ -z $phase_name ]] || echo "== $phase_name: $((SECONDS - phase_start)) s" >&2
    phase_name=$1 phase_start=$SECONDS
    [[ -z $phase_name ]] || echo "== $phase_name" >&2
}

phase setup
scripts/setup.sh
# tests/real_cluster_e2e.rs needs helm (pinned, installed by check-chart.sh) and the Kubernetes
# control plane built from Go modules (cached outside the repository: minutes only when cold).
phase "tools: helm and the chart checks' tools"
scripts/check-chart.sh --install-tools
phase "tools: actionlint (scripts/check-workflows.sh)"
scripts/check-workflows.sh --install-tools
phase "tools: Kubernetes control plane (scripts/k8s/build.sh)"
scripts/k8s/build.sh >/dev/null
phase "tools: Prometheus 3 (scripts/prometheus3/build.sh)"; scripts/prometheus3/build.sh >/dev/null

phase "cargo fmt --check"
cargo fmt --check
phase "cargo clippy"
cargo clippy --locked --all-targets --quiet -- -D warnings
phase "cargo test"
cargo test --locked
phase "dashboards and alerts"
scripts/check-dashboards.sh
phase chart
scripts/check-chart.sh
phase "workflows (actionlint)"
scripts/check-workflows.sh
# The image as released: the release binary (the one release build of the run) on `scratch`.
phase "container image"
scripts/build-image.sh
scripts/smoke-image.sh
phase ""
