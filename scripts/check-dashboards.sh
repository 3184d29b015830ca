#!/usr/bin/env bash
# Checks dashboards/*.json and alerts/iperf3-monitor.rules.yml without Grafana or a cluster.
#
# Usage: scripts/check-dashboards.sh
#
#   generated     dashboards/*.json and chart/dashboards/*.json are byte for byte what their
#                 source, dashboards/src/, generates (scripts/generate-dashboards.sh --check)
#   schema        each dashboard type-checks against @grafana/schema (tsc, tests/dashboards/),
#                 and tests/dashboards/strictness.ts proves the type still rejects broken ones
#   lint          dashboards and rules name only metrics of the job's contract; every variable
#                 is defined; stat/table panels use instant queries, graphs range queries
#   promql        every dashboard query and variable selector parses (promtool), with the
#                 template variables replaced by sample values
#   rules         promtool check rules alerts/iperf3-monitor.rules.yml
#   rules tests   promtool test rules tests/dashboards/iperf3-monitor.rules.test.yml
#   live queries  every query returns data from a throwaway Prometheus on 127.0.0.1 filled with
#                 synthetic results, shaped like remote-write and like the Pushgateway
#
# Installs what is missing, idempotently: npm packages into tests/dashboards/node_modules and
# dashboards/src/node_modules from their committed package-lock.json (npm ci), and
# promtool/prometheus from Debian's `prometheus`
# package. Needs node, npm and python3. Prints one line per check and a closing
# "check-dashboards: N passed, M failed"; exits non-zero if any check failed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
checks="$repo/tests/dashboards"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$repo"

# --------------------------------------------------------------------------------- install
# shellcheck source-path=SCRIPTDIR source=lib/apt.sh
source "$repo/scripts/lib/apt.sh"
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  apt_install prometheus
fi
if ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
for tool in python3 node npm promtool prometheus; do
  command -v "$tool" >/dev/null || { echo "check-dashboards: $tool not found" >&2; exit 1; }
done
# shellcheck source-path=SCRIPTDIR source=lib/npm-ci.sh
source "$repo/scripts/lib/npm-ci.sh"
npm_ci "$checks"

# --------------------------------------------------------------------------------- checks
# Each check runs as the condition of an `if`, where bash ignores `set -e`: the check functions
# return on the first failing step themselves.
passed=0
failed=0
# run_check NAME COMMAND...: runs the command, prints "ok   NAME <its last line>" or
# "FAIL NAME" followed by its output less its "ok" lines.
run_check() {
  local name=$1
  shift
  local log="$tmp/check.log"
  if "$@" >"$log" 2>&1; then
    printf 'ok   %-13s %s\n' "$name" "$(grep -v '^\s*$' "$log" | tail -n 1 | sed 's/^\s*//')"
    passed=$((passed + 1))
  else
    printf 'FAIL %-13s\n' "$name"
    grep -v '^ok ' "$log" | sed 's/^/     /'
    failed=$((failed + 1))
  fi
}

# The dashboard JSON goes into a .ts file verbatim, starting on line 1, so tsc's line numbers are
# the JSON's; the output names the JSON file.
schema_check() {
  local generated="$checks/.generated"
  rm -rf "$generated"
  mkdir -p "$generated" || return 1
  local count=0
  for dashboard in dashboards/*.json; do
    {
      printf 'const dashboard: CheckedDashboard = '
      cat "$dashboard"
      printf ';\nexport default dashboard;\nimport type { CheckedDashboard } from "../dashboard-types";\n'
    } >"$generated/$(basename "$dashboard" .json).ts"
    count=$((count + 1))
  done
  [[ $count -gt 0 ]] || { echo "no dashboards in dashboards/"; return 1; }
  local status=0
  (cd "$checks" && node_modules/.bin/tsc -p . --pretty false) | sed -E 's#^\.generated/([^(]+)\.ts#dashboards/\1.json#' || status=$?
  [[ $status -eq 0 ]] && echo "$count dashboards match @grafana/schema $(node -p "require('$checks/node_modules/@grafana/schema/package.json').version")"
  return "$status"
}

lint_check() {
  python3 "$checks/dashboard_queries.py" metric-names alerts/*.yml || return 1
  python3 "$checks/dashboard_queries.py" lint
}

promql_check() {
  local rules="$tmp/dashboard-queries.rules.json" expected
  python3 "$checks/dashboard_queries.py" rules-file >"$rules" || return 1
  expected=$(python3 -c 'import json, sys; print(sum(len(g["rules"]) for g in json.load(open(sys.argv[1]))["groups"]))' "$rules") || return 1
  promtool check rules "$rules" >"$tmp/promtool.log" 2>&1 || { cat "$tmp/promtool.log"; return 1; }
  # An empty file would pass too: the count must be the number of queries extracted.
  if [[ $expected -eq 0 ]] || ! grep -q "SUCCESS: $expected rules found" "$tmp/promtool.log"; then
    cat "$tmp/promtool.log"
    echo "expected $expected rules"
    return 1
  fi
  echo "$expected queries and variable selectors parse"
}

# Every alert of the rules file needs a test where it fires and one where it stays quiet.
rules_tests_check() {
  promtool test rules "$checks/iperf3-monitor.rules.test.yml" || return 1
  python3 - alerts/iperf3-monitor.rules.yml "$checks/iperf3-monitor.rules.test.yml" <<'PY'
import re, sys
rules, tests = (open(p, encoding="utf-8").read() for p in sys.argv[1:3])
alerts = re.findall(r"^\s*- alert:\s*(\S+)", rules, re.M)
cases = {}
for name, exp in re.findall(r"^\s*alertname:\s*(\S+)\s*\n\s*exp_alerts:(.*)$", tests, re.M):
    cases.setdefault(name, set()).add("quiet" if exp.strip() == "[]" else "firing")
missing = [f"{a}: no {kind} case" for a in alerts for kind in ("firing", "quiet") if kind not in cases.get(a, set())]
unknown = sorted(set(cases) - set(alerts))
for line in missing + [f"{a}: tested but not in the rules file" for a in unknown]:
    print(f"FAIL {line}")
if missing or unknown or not alerts:
    sys.exit(1)
print(f"{len(alerts)} alerts, each tested firing and quiet")
PY
}

run_check "generated" scripts/generate-dashboards.sh --check
run_check "schema" schema_check
run_check "lint" lint_check
run_check "promql" promql_check
run_check "rules" promtool check rules alerts/iperf3-monitor.rules.yml
run_check "rules tests" rules_tests_check
run_check "live queries" "$checks/check-queries-on-synthetic-data.sh"

echo "check-dashboards: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
