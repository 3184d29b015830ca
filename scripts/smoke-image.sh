#!/usr/bin/env bash
# Runs the image the way the chart runs it (user 65532, read-only root with a
# writable /tmp, no capabilities, no privilege escalation) and checks:
#   - iperf3 runs, the binary's --help and `run --help` work;
#   - the arguments the chart passes to `iperf3-monitor run` (three renders)
#     are accepted: a dry run against an inventory exits 0;
#   - a real measurement: one container serves `iperf3 -s`, a second runs
#     `iperf3-monitor run` in star mode with an inventory pointing at it.
# Both containers use the host network and bind 127.0.0.1 only.
#
#   scripts/smoke-image.sh [IMAGE]     (default localhost/iperf3-monitor:dev)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=${1:-localhost/iperf3-monitor:dev}
port=${SMOKE_PORT:-15201}
scratch=$(mktemp -d)
# Named, so that the trap finds it even though the checks run in subshells.
server="iperf3-monitor-smoke-$$"
cleanup() {
  podman rm --force --ignore --time 0 "$server" >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT

# The chart's pod security, as podman flags. Explicit, low rlimits: podman's
# defaults raise them, which needs CAP_SYS_RESOURCE that some sandboxes lack.
# shellcheck disable=SC2054 # the commas are tmpfs mount options
run_flags=(
  --rm --runtime=runc --network=host
  --user 65532:65532 --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,size=16m
  --cap-drop=ALL --security-opt=no-new-privileges
  --ulimit nofile=4096:4096 --ulimit nproc=4096:4096
)

# shellcheck source-path=SCRIPTDIR source=lib/run-check.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/run-check.sh"
check_log="$scratch/check.log"

iperf3_version() {
  podman run "${run_flags[@]}" --entrypoint iperf3 "$image" --version >"$scratch/iperf3-version.txt"
  cat "$scratch/iperf3-version.txt" >&2
  grep -q "^iperf 3\." "$scratch/iperf3-version.txt"
}

binary_help() {
  # To a file, not a pipe: grep -q leaves at its first match and podman would fail on the
  # closed pipe.
  podman run "${run_flags[@]}" "$image" --help >"$scratch/help.txt"
  grep -q "run" "$scratch/help.txt"
  podman run "${run_flags[@]}" "$image" run --help >"$scratch/run-help.txt"
  grep -q -- "--inventory" "$scratch/run-help.txt"
}

# The CronJob's arguments as the chart renders them (defaults, star mode with a
# bearer token, every feature on), run by the image as a dry run against an
# inventory: every flag must exist and every value must be accepted, the
# credential and TLS files included (exit 0).
chart_args_accepted() {
  local tools="${IPERF3_MONITOR_TOOLS:-$HOME/.cache/iperf3-monitor-tools}" values rc failed=0
  "$repo/scripts/check-chart.sh" --install-tools
  # The Secrets the chart mounts, with throwaway contents: a self-signed
  # certificate is CA, client certificate and key at once.
  mkdir -p "$scratch/auth" "$scratch/tls" "$scratch/iperf3-auth"
  printf 'smoke-token\n' >"$scratch/auth/token"
  printf 'smoke-password\n' >"$scratch/auth/password"
  # iperf3Auth's password, under both keys the CI values use (the job reads it: --inventory).
  printf 'smoke-iperf3-password\n' >"$scratch/iperf3-auth/password"
  cp "$scratch/iperf3-auth/password" "$scratch/iperf3-auth/client-password"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=smoke \
    -keyout "$scratch/tls/tls.key" -out "$scratch/tls/tls.crt" 2>/dev/null
  cp "$scratch/tls/tls.crt" "$scratch/tls/ca.crt"
  chmod 0755 "$scratch/auth" "$scratch/tls" "$scratch/iperf3-auth"
  chmod 0644 "$scratch"/auth/* "$scratch"/tls/* "$scratch"/iperf3-auth/*
  write_inventory 15299
  for values in default star-pod-network all-features; do
    "$tools/bin/helm" template smoke "$repo/chart" --values "$repo/chart/ci/$values-values.yaml" \
      | "$tools/venv/bin/python" -c '
import sys, yaml
for doc in yaml.safe_load_all(sys.stdin):
    if doc and doc["kind"] == "CronJob":
        container = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        sys.stdout.write("".join(arg + "\0" for arg in container["args"]))
' >"$scratch/args-$values"
    mapfile -d '' -t args <"$scratch/args-$values"
    rc=0
    podman run "${run_flags[@]}" --env NODE_NAME=smoke-job \
      --volume "$scratch/inventory.yaml:/etc/iperf3-monitor/inventory.yaml:ro" \
      --volume "$scratch/auth:/etc/iperf3-monitor/auth:ro" --volume "$scratch/tls:/etc/iperf3-monitor/tls:ro" \
      --volume "$scratch/iperf3-auth:/etc/iperf3-monitor/iperf3-auth:ro" \
      "$image" "${args[@]}" --inventory /etc/iperf3-monitor/inventory.yaml --dry-run \
      >"$scratch/dry-run-$values.log" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]]; then
      echo "ci/$values-values.yaml: ${#args[@]} arguments accepted"
    else
      echo "ci/$values-values.yaml: iperf3-monitor ${args[*]} exited with $rc:"
      tail -n 20 "$scratch/dry-run-$values.log"
      failed=1
    fi
  done
  return $failed
}

# write_inventory PORT: the job's node and one server on 127.0.0.1:PORT.
write_inventory() {
  cat >"$scratch/inventory.yaml" <<EOF
nodes:
  - name: smoke-job
    address: 127.0.0.1
  - name: smoke-server
    address: 127.0.0.1
    port: $1
EOF
  chmod 0644 "$scratch/inventory.yaml"
}

measure_between_containers() {
  podman run --detach "${run_flags[@]}" --name "$server" \
    --entrypoint iperf3 "$image" --server --bind 127.0.0.1 --port "$port" >/dev/null
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  write_inventory "$port"
  local rc=0
  podman run "${run_flags[@]}" --volume "$scratch/inventory.yaml:/etc/iperf3-monitor/inventory.yaml:ro" \
    --env NODE_NAME=smoke-job \
    "$image" run --inventory /etc/iperf3-monitor/inventory.yaml --mode star \
    --protocols tcp,udp --duration 1 --udp-bitrate 10M --output json --log-format json \
    >"$scratch/report.json" || rc=$?
  echo "iperf3-monitor run exited with $rc"
  python3 - "$scratch/report.json" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
report = json.loads(text)
# Every smoke-job -> smoke-server test of the report, wherever it sits.
def walk(value):
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)
found = set()
for test in walk(report):
    if test.get("source") == "smoke-job" and test.get("destination") == "smoke-server":
        success = (test.get("outcome") or {}).get("success") or {}
        if success.get("received_bytes_per_second", 0) > 0:
            found.add(test.get("protocol"))
if found != {"tcp", "udp"}:
    sys.exit(f"no successful tcp and udp smoke-job -> smoke-server results in the report (found {sorted(found)})")
EOF
  podman rm --force --time 0 "$server" >/dev/null
  [[ $rc -eq 0 ]]
}

run_check "image: iperf3 --version" iperf3_version
run_check "image: iperf3-monitor --help and run --help" binary_help
run_check "image: the chart's CronJob arguments are accepted (dry run, 3 renders)" chart_args_accepted
run_check "image: star-mode measurement between two containers (tcp and udp)" measure_between_containers
echo "smoke-image: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
