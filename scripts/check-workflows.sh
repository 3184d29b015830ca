#!/usr/bin/env bash
# Lints the GitHub workflows with actionlint: expressions and their types, `needs:` and job
# outputs, runner labels, the inputs of well-known actions, permissions, and shellcheck on every
# `run:` step. The workflows cannot run here (no GitHub, no registry), so this and the schema
# check of scripts/check-chart.sh are what checks them before a tag does.
#
#   scripts/check-workflows.sh                   check; exit 1 on any finding
#   scripts/check-workflows.sh --install-tools   only install actionlint
#
# actionlint is built from its Go module (pinned below; needs Go 1.26 and the module proxy) into
# $IPERF3_MONITOR_TOOLS/bin, by default ~/.cache/iperf3-monitor-tools/bin beside the chart checks'
# tools, once. Its shellcheck is theirs (scripts/check-chart.sh --install-tools).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/tools.sh
source "$repo/scripts/lib/tools.sh"

ACTIONLINT_MODULE="github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"

install_only=false
case "${1:-}" in
  --install-tools) install_only=true ;;
  "") ;;
  *) echo "usage: $0 [--install-tools]" >&2; exit 2 ;;
esac

install_actionlint() {
  tools_installed .actionlint-installed "$ACTIONLINT_MODULE" && [[ -x "$tools/bin/actionlint" ]] && return 0
  if ! command -v go >/dev/null; then
    echo "check-workflows: no Go toolchain (1.26 or newer) to build actionlint: install one from https://go.dev/dl/" >&2
    exit 2
  fi
  echo "installing actionlint ($ACTIONLINT_MODULE) into $tools/bin"
  mkdir -p "$tools/bin"
  (cd /tmp && GOBIN="$tools/bin" GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0 go install "$ACTIONLINT_MODULE")
  tools_stamp .actionlint-installed "$ACTIONLINT_MODULE"
}

# check-chart.sh reinstalls its tools into a fresh $tools when its pins change: its tools first.
"$repo/scripts/check-chart.sh" --install-tools
install_actionlint
$install_only && exit 0
tools_on_path
# shellcheck source-path=SCRIPTDIR source=lib/run-check.sh
source "$repo/scripts/lib/run-check.sh"

lint_workflows() {
  command -v shellcheck >/dev/null || { echo "no shellcheck on PATH: actionlint would skip the run: steps"; return 1; }
  actionlint -version | head -n 1
  (cd "$repo" && actionlint -no-color .github/workflows/*.yml)
}
run_check "actionlint: .github/workflows/*.yml (with shellcheck on the run: steps)" lint_workflows

echo "check-workflows: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
