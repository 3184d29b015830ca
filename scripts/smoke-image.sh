#!/usr/bin/env bash
# Runs the image the way the chart runs it (user 65532, read-only root with a
# writable /tmp, no capabilities, no privilege escalation) and checks:
#   - the image holds what runs and nothing more: at most SMOKE_MAX_IMAGE_MB
#     (default 40) uncompressed, iperf3, timeout, the binary, a CA bundle, the
#     user 65532, no shell and no package manager (docs/image.md);
#   - iperf3 runs, the binary's --help and `run --help` work;
#   - the arguments the chart passes to `iperf3-monitor run` (three renders)
#     are accepted: a dry run against an inventory exits 0;
#   - a real measurement: one container serves `iperf3 -s`, a second runs
#     `iperf3-monitor run` in star mode with an inventory pointing at it;
#   - mesh mode: the job measures both directions between two server
#     containers, and the argv it execs in a server pod (`timeout -s KILL …
#     iperf3 …`) runs there through `podman exec`, as pods/exec would run it,
#     and `timeout` does kill a client that outlives it;
#   - authenticated servers (iperf3Auth): star mode with the job's
#     credentials, and mesh mode's `timeout … iperf3-monitor with-password
#     --password-file … -- iperf3 …` exec'd in the server; a wrong password is
#     refused;
#   - TLS to a push target: the job pushes to an HTTPS Pushgateway stand-in
#     whose CA is only in the image's system bundle (mounted over it), and
#     refuses the same server with the image's own bundle.
# Every container uses the host network and binds 127.0.0.1 only.
#
#   scripts/smoke-image.sh [IMAGE]     (default localhost/iperf3-monitor:dev)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=${1:-localhost/iperf3-monitor:dev}
port=${SMOKE_PORT:-15201}
max_image_mb=${SMOKE_MAX_IMAGE_MB:-40}
scratch=$(mktemp -d)
# Named, so that the trap finds them even though the checks run in subshells.
server="iperf3-monitor-smoke-$$"
containers=("$server" "$server-a" "$server-b" "$server-auth" "$server-push" "$server-files")
push_server_pid_file="$scratch/push-server.pid"
cleanup() {
  local container
  for container in "${containers[@]}"; do
    podman rm --force --ignore --time 0 "$container" >/dev/null 2>&1 || true
  done
  if [[ -s $push_server_pid_file ]]; then
    kill "$(cat "$push_server_pid_file")" 2>/dev/null || true
  fi
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

# The image's files, from a container that is created and never started.
image_files() {
  podman create --name "$server-files" "$image" >/dev/null
  podman export "$server-files" | tar -t | sed 's|^\./||; s|/$||' | sort >"$scratch/files.txt"
  podman cp "$server-files:/etc/ssl/certs/ca-certificates.crt" "$scratch/image-ca-certificates.crt"
  podman cp "$server-files:/etc/passwd" "$scratch/passwd"
  podman rm --force "$server-files" >/dev/null
}

only_what_runs() {
  local size_bytes size_mb file problems=0
  size_bytes=$(podman image inspect --format '{{.Size}}' "$image")
  size_mb=$(awk -v b="$size_bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
  echo "image: $size_mb MB uncompressed (limit $max_image_mb MB)"
  if ! awk -v b="$size_bytes" -v max="$max_image_mb" 'BEGIN { exit !(b <= max * 1e6) }'; then
    echo "the image is $size_mb MB, over $max_image_mb MB"
    problems=1
  fi
  image_files
  echo "$(wc -l <"$scratch/files.txt") files and directories"
  for file in usr/bin/iperf3 usr/bin/timeout usr/local/bin/iperf3-monitor etc/ssl/certs/ca-certificates.crt \
    etc/passwd etc/group tmp; do
    grep -qx "$file" "$scratch/files.txt" || { echo "missing: /$file"; problems=1; }
  done
  for file in bin/sh usr/bin/sh bin/bash usr/bin/bash bin/busybox usr/bin/apt-get usr/bin/dpkg; do
    if grep -qx "$file" "$scratch/files.txt"; then echo "present: /$file"; problems=1; fi
  done
  grep -q '^iperf3-monitor:x:65532:65532:' "$scratch/passwd" || { echo "no user 65532 in /etc/passwd"; problems=1; }
  local roots
  roots=$(grep -c "BEGIN CERTIFICATE" "$scratch/image-ca-certificates.crt")
  echo "CA bundle: $roots certificates"
  [[ $roots -ge 100 ]] || { echo "the CA bundle holds $roots certificates, not the system's roots"; problems=1; }
  return $problems
}

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
  start_server "$server" "$port"
  write_inventory "$port"
  local rc=0
  podman run "${run_flags[@]}" --volume "$scratch/inventory.yaml:/etc/iperf3-monitor/inventory.yaml:ro" \
    --env NODE_NAME=smoke-job \
    "$image" run --inventory /etc/iperf3-monitor/inventory.yaml --mode star \
    --protocols tcp,udp --duration 1 --udp-bitrate 10M --output json --log-format json \
    >"$scratch/report.json" || rc=$?
  echo "iperf3-monitor run exited with $rc"
  expect_tests "$scratch/report.json" "smoke-job>smoke-server/tcp" "smoke-job>smoke-server/udp"
  podman rm --force --time 0 "$server" >/dev/null
  [[ $rc -eq 0 ]]
}

# start_server NAME PORT [VOLUME_FLAGS... --] [IPERF3_ARGS...]: a detached `iperf3 -s` on
# 127.0.0.1:PORT, as the DaemonSet runs it; returns once it accepts connections.
start_server() {
  local name=$1 port=$2 volumes=()
  shift 2
  while [[ $# -gt 0 && $1 != -- ]]; do volumes+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift
  podman run --detach "${run_flags[@]}" --name "$name" "${volumes[@]}" \
    --entrypoint iperf3 "$image" --server --bind 127.0.0.1 --port "$port" "$@" >/dev/null
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the server $name does not accept connections on 127.0.0.1:$port"
  podman logs "$name"
  return 1
}

# expect_tests REPORT PAIR... : every PAIR ("source>destination/protocol") succeeded in the
# job's JSON report, with bytes received.
expect_tests() {
  python3 - "$@" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
wanted = set(sys.argv[2:])
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
    success = (test.get("outcome") or {}).get("success") or {}
    if "source" in test and success.get("received_bytes_per_second", 0) > 0:
        found.add(f"{test['source']}>{test['destination']}/{test.get('protocol')}")
missing = wanted - found
if missing:
    sys.exit(f"no successful {sorted(missing)} in the report (found {sorted(found)})")
print(f"succeeded: {sorted(wanted)}")
EOF
}

# expect_iperf3_json FILE: an iperf3 client's --json report that received bytes.
expect_iperf3_json() {
  python3 - "$1" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
received = report.get("end", {}).get("sum_received", {}).get("bytes", 0)
if report.get("error") or not received:
    sys.exit(f"iperf3: {report.get('error') or 'nothing received'}")
print(f"iperf3 received {received} bytes")
EOF
}

# Mesh mode: the job runs a client for every ordered pair of its nodes. With an inventory it
# starts them itself (here: in its own container); in Kubernetes it execs `timeout -s KILL
# <limit>s iperf3 …` in the source node's server pod (src/runner/pod_exec.rs), which
# `podman exec` reproduces: the same container, user, read-only root and no capabilities.
mesh_mode() {
  local port_a=$((port + 1)) port_b=$((port + 2)) rc=0 start elapsed
  start_server "$server-a" "$port_a"
  start_server "$server-b" "$port_b"
  cat >"$scratch/mesh.yaml" <<EOF
nodes:
  - name: smoke-a
    address: 127.0.0.1
    port: $port_a
  - name: smoke-b
    address: 127.0.0.1
    port: $port_b
EOF
  chmod 0644 "$scratch/mesh.yaml"
  podman run "${run_flags[@]}" --volume "$scratch/mesh.yaml:/etc/iperf3-monitor/inventory.yaml:ro" \
    "$image" run --inventory /etc/iperf3-monitor/inventory.yaml --mode mesh \
    --protocols tcp --duration 1 --output json --log-format json >"$scratch/mesh.json" || rc=$?
  echo "iperf3-monitor run --mode mesh exited with $rc"
  expect_tests "$scratch/mesh.json" "smoke-a>smoke-b/tcp" "smoke-b>smoke-a/tcp"
  [[ $rc -eq 0 ]]

  # The exec'd argv, in smoke-a's server container, towards smoke-b.
  podman exec "$server-a" timeout -s KILL 12s \
    iperf3 --client 127.0.0.1 --port "$port_b" --time 1 --json >"$scratch/exec.json"
  expect_iperf3_json "$scratch/exec.json"
  # A client that outlives the limit is killed: 128 + SIGKILL.
  start=$SECONDS rc=0
  podman exec "$server-a" timeout -s KILL 1s \
    iperf3 --client 127.0.0.1 --port "$port_b" --time 20 >/dev/null || rc=$?
  elapsed=$((SECONDS - start))
  echo "timeout -s KILL 1s iperf3 --time 20: exit $rc after ${elapsed} s"
  [[ $rc -eq 137 && $elapsed -lt 10 ]]
  podman rm --force --time 0 "$server-a" "$server-b" >/dev/null
}

# iperf3Auth: servers that let in only the user of authorized-users.csv, laid out as the chart
# mounts the Secret in the server pods (mesh mode's keys included).
authenticated_server() {
  local port_auth=$((port + 3)) auth=$scratch/iperf3-auth-server rc=0
  mkdir -p "$auth" "$scratch/wrong"
  openssl genrsa -out "$auth/private.pem" 2048 2>/dev/null
  openssl rsa -in "$auth/private.pem" -pubout -out "$auth/public.pem" 2>/dev/null
  printf 'smoke-iperf3-password\n' >"$auth/password"
  printf 'not-the-password\n' >"$scratch/wrong/password"
  # iperf3's format: one `user,sha256("{user}password")` per line.
  printf 'iperf3-monitor,%s\n' "$(printf '{iperf3-monitor}smoke-iperf3-password' | sha256sum | cut -d' ' -f1)" \
    >"$auth/authorized-users.csv"
  chmod 0755 "$auth" "$scratch/wrong"
  chmod 0644 "$auth"/* "$scratch/wrong/password"
  local dir=/etc/iperf3-monitor/iperf3-auth
  start_server "$server-auth" "$port_auth" --volume "$auth:$dir:ro" --volume "$scratch/wrong:/etc/wrong:ro" -- \
    --rsa-private-key-path "$dir/private.pem" --authorized-users-path "$dir/authorized-users.csv"

  # Star mode: the job is the client, with the chart's --iperf3-* flags.
  write_inventory "$port_auth"
  podman run "${run_flags[@]}" --env NODE_NAME=smoke-job \
    --volume "$scratch/inventory.yaml:/etc/iperf3-monitor/inventory.yaml:ro" --volume "$auth:$dir:ro" \
    "$image" run --inventory /etc/iperf3-monitor/inventory.yaml --mode star --protocols tcp --duration 1 \
    --iperf3-username iperf3-monitor --iperf3-public-key-file "$dir/public.pem" \
    --iperf3-password-file "$dir/password" --output json --log-format json >"$scratch/auth-star.json" || rc=$?
  echo "iperf3-monitor run --mode star with credentials exited with $rc"
  expect_tests "$scratch/auth-star.json" "smoke-job>smoke-server/tcp"
  [[ $rc -eq 0 ]]

  # Mesh mode's exec: with-password reads the file and replaces itself with the client.
  local client=(iperf3 --client 127.0.0.1 --port "$port_auth" --username iperf3-monitor
    --rsa-public-key-path "$dir/public.pem" --time 1 --json)
  podman exec "$server-auth" timeout -s KILL 12s \
    iperf3-monitor with-password --password-file "$dir/password" -- "${client[@]}" >"$scratch/auth-exec.json"
  expect_iperf3_json "$scratch/auth-exec.json"
  # iperf3 --json reports a refused client in its JSON (and exits 0).
  podman exec "$server-auth" timeout -s KILL 12s \
    iperf3-monitor with-password --password-file /etc/wrong/password -- "${client[@]}" \
    >"$scratch/auth-wrong.json" || true
  if ! grep '"error":.*authorization failed' "$scratch/auth-wrong.json"; then
    echo "a wrong password was not refused:"
    head -c 2000 "$scratch/auth-wrong.json"
    return 1
  fi
  podman rm --force --time 0 "$server-auth" >/dev/null
}

# TLS to a push target: an HTTPS stand-in for the Pushgateway whose certificate is signed by a
# throwaway CA. The job is given no --tls-ca-file: it must verify the server through the system
# bundle at /etc/ssl/certs/ca-certificates.crt, so the CA is appended to a copy of the image's
# own bundle mounted over it. With the image's bundle as shipped the same push must fail.
push_over_tls() {
  local port_push=$((port + 4)) tls=$scratch/push-tls rc=0
  mkdir -p "$tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "/CN=smoke CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/server.ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 1 \
    -extfile "$tls/server.ext" -out "$tls/server.crt" 2>/dev/null
  [[ -f $scratch/image-ca-certificates.crt ]] || image_files
  cat "$scratch/image-ca-certificates.crt" "$tls/ca.crt" >"$tls/bundle.crt"
  chmod 0644 "$tls/bundle.crt"

  python3 - "$port_push" "$tls" >"$tls/server.log" 2>&1 <<'EOF' &
import http.server, ssl, sys
port, tls = int(sys.argv[1]), sys.argv[2]
class Pushgateway(http.server.BaseHTTPRequestHandler):
    def handle_push(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        print(f"{self.command} {self.path}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_PUT = do_POST = do_DELETE = handle_push
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(f"{tls}/server.crt", f"{tls}/server.key")
server = http.server.HTTPServer(("127.0.0.1", port), Pushgateway)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
EOF
  echo $! >"$push_server_pid_file"
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port_push") 2>/dev/null && break
    sleep 0.1
  done
  start_server "$server-push" "$port"
  write_inventory "$port"
  local job=(run --inventory /etc/iperf3-monitor/inventory.yaml --mode star --protocols tcp --duration 1
    --pushgateway-url "https://127.0.0.1:$port_push" --push-retries 0 --push-deadline 10 --log-format json)
  podman run "${run_flags[@]}" --env NODE_NAME=smoke-job \
    --volume "$scratch/inventory.yaml:/etc/iperf3-monitor/inventory.yaml:ro" \
    --volume "$tls/bundle.crt:/etc/ssl/certs/ca-certificates.crt:ro" \
    "$image" "${job[@]}" >"$scratch/push.out" 2>"$scratch/push.log" || rc=$?
  echo "push through the system bundle (throwaway CA added): exit $rc"
  grep -E "^(PUT|POST) /metrics/job/iperf3-monitor" "$tls/server.log" || { tail -n 20 "$scratch/push.log"; return 1; }
  [[ $rc -eq 0 ]] || { tail -n 20 "$scratch/push.log"; return 1; }

  : >"$tls/server.log"
  rc=0
  podman run "${run_flags[@]}" --env NODE_NAME=smoke-job \
    --volume "$scratch/inventory.yaml:/etc/iperf3-monitor/inventory.yaml:ro" \
    "$image" "${job[@]}" >"$scratch/push-refused.out" 2>"$scratch/push-refused.log" || rc=$?
  echo "push with the image's own bundle: exit $rc"
  if [[ $rc -eq 0 ]] || grep -E "^(PUT|POST) " "$tls/server.log"; then
    echo "the job pushed to a server its bundle does not trust"
    return 1
  fi
  grep -i -m 1 "certificate\|tls" "$scratch/push-refused.log"
  podman rm --force --time 0 "$server-push" >/dev/null
}

run_check "image: only what runs (size, files, CA bundle, user 65532, no shell)" only_what_runs
run_check "image: iperf3 --version" iperf3_version
run_check "image: iperf3-monitor --help and run --help" binary_help
run_check "image: the chart's CronJob arguments are accepted (dry run, 3 renders)" chart_args_accepted
run_check "image: star-mode measurement between two containers (tcp and udp)" measure_between_containers
run_check "image: mesh mode, and its exec'd 'timeout -s KILL … iperf3' in a server container" mesh_mode
run_check "image: authenticated server: star mode with credentials, mesh mode's with-password exec" \
  authenticated_server
run_check "image: TLS push through the system CA bundle (and refused without the CA)" push_over_tls
echo "smoke-image: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
