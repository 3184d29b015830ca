#!/usr/bin/env bash
# Installs what the lab, the demo and the tests need on Debian 12 (as root). Idempotent: a
# package already installed is left alone.
set -euo pipefail

packages=(iperf3 prometheus prometheus-pushgateway iproute2 iptables procps curl jq ca-certificates openssl
    python3 util-linux)

if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: run as root (it installs Debian packages): sudo $0" >&2
    exit 2
fi

# shellcheck source-path=SCRIPTDIR source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
apt_install "${packages[@]}"

if ! command -v cargo >/dev/null; then
    echo "setup.sh: no Rust toolchain: install one with rustup (https://rustup.rs), then run this again" >&2
    exit 2
fi

# scripts/k8s/build.sh builds the lab cluster's control plane from Go modules (tests/real_cluster_e2e.rs).
if ! command -v go >/dev/null && [[ -z $(compgen -G "${IPERF3_MONITOR_CACHE:-/var/cache/iperf3-monitor}/k8s-*/bin/.complete") ]]; then
    echo "setup.sh: no Go toolchain (1.26 or newer) to build the Kubernetes control plane (scripts/k8s/build.sh)" >&2
    exit 2
fi
