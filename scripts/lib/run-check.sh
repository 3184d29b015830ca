# shellcheck shell=bash
# Sourced by the check scripts: `run_check NAME COMMAND...` runs one check under `set -e`, prints
# one line for it, and the end of its log only when it fails. Counts in $passed and $failed; the
# log is a temporary file, removed after the check.
passed=0
failed=0

run_check() {
  local name=$1
  shift
  local rc=0 log
  log=$(mktemp)
  set +e
  (set -e; "$@") >"$log" 2>&1
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then
    echo "ok    $name"
    passed=$((passed + 1))
  else
    echo "FAIL  $name"
    sed 's/^/      /' "$log" | tail -n 60
    failed=$((failed + 1))
  fi
  rm -f "$log"
}
