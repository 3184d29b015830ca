#!/usr/bin/env bash
# Builds Prometheus 3 (cmd/prometheus of the Go module github.com/prometheus/prometheus, whose
# v0.3XX.Y is Prometheus 3.XX.Y) into a cache directory outside the repository, keyed by the
# version, for the remote-write 2.0 tests (tests/prometheus3_e2e.rs).
#
#   scripts/prometheus3/build.sh
#
# Prints the bin directory on the last line of stdout; the time of each phase goes to stderr.
# When that directory is complete already it returns at once, so callers can always run it.
# Environment: IPERF3_MONITOR_CACHE (default /var/cache/iperf3-monitor), PROMETHEUS3_MODULE_VERSION
# (the pinned default below).
set -euo pipefail

VERSION=${PROMETHEUS3_MODULE_VERSION:-v0.316.0}
CACHE=${IPERF3_MONITOR_CACHE:-/var/cache/iperf3-monitor}
dir=$CACHE/prometheus-$VERSION

# shellcheck source-path=SCRIPTDIR source=../lib/cached-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/cached-build.sh"
cached_build_start "$dir"

# The module has no replace directives, so `go install pkg@version` builds it as published.
# The web UI's assets are not in the module (they are built by npm in a release); without the
# `builtinassets` tag the UI pages are absent but every API, the remote-write receiver
# included, is there.
phase "prometheus $VERSION: download"
(cd /tmp && go mod download "github.com/prometheus/prometheus@$VERSION")
phase_done "download"

# The same version variables that Prometheus's .promu.yml sets, so /api/v1/status/buildinfo
# and --version name the release (module v0.316.0 = Prometheus 3.16.0).
release=3.$(echo "${VERSION#v0.}" | sed -E 's/^3?([0-9]+)\./\1./; s/^0+([0-9])/\1/')
ldflags="-s -w -X github.com/prometheus/common/version.Version=$release"
ldflags+=" -X github.com/prometheus/common/version.Revision=module-$VERSION"
ldflags+=" -X github.com/prometheus/common/version.Branch=module"
ldflags+=" -X github.com/prometheus/common/version.BuildUser=iperf3-monitor"
ldflags+=" -X github.com/prometheus/common/version.BuildDate=19700101-00:00:00"
phase "prometheus $VERSION: build"
rm -rf "$dir/gobin"
GOBIN=$dir/gobin go install -ldflags "$ldflags" "github.com/prometheus/prometheus/cmd/prometheus@$VERSION"
mv "$dir/gobin/prometheus" "$bin/prometheus"
rm -rf "$dir/gobin"
phase_done "build"

"$bin/prometheus" --version >&2
cached_build_done
