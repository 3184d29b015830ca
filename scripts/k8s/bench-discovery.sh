#!/usr/bin/env bash
# Discovery at scale through the real API server: the chart's server DaemonSet on kwok fleet
# nodes (no processes: nothing execs into them), then `iperf3-monitor run --dry-run` as the
# chart's ServiceAccount with the chart's page size, timed, with its peak RSS.
#
#   scripts/k8s/bench-discovery.sh BINARY [COUNT]...     (default COUNT: 1000 5000)
#
# Holds the lab lock (/run/iperf3-monitor-lab.lock) while it runs, as the lab tests do: the
# fleet keeps both cores busy for minutes. Prints three lines per COUNT: pods, wall seconds of
# the run (discovery, planning and the printed plan), the seconds until the job logged the end of
# the list, peak RSS, the seconds `kubectl get pods --chunk-size=500` took just before (the
# API server's share), and the load average then. Control plane `bench` on 127.0.0.1, removed at
# the end (also after a failure).
#
# The fleet is added 1,000 nodes at a time (a kwok each), each given up to FLEET_READY_SECONDS
# (default 900) to be Ready: on a machine loaded by other work, 4,000 nodes at once were not
# Ready within add-fleet's default of 326 s, twice.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
binary=${1:?usage: bench-discovery.sh BINARY [COUNT]...}
shift
counts=("$@")
[[ ${#counts[@]} -gt 0 ]] || counts=(1000 5000)
tools=${IPERF3_MONITOR_TOOLS:-$HOME/.cache/iperf3-monitor-tools}
"$repo/scripts/check-chart.sh" --install-tools >/dev/null
work=$(mktemp -d)
exec 8>/run/iperf3-monitor-lab.lock
flock 8

cleanup() {
    "$repo/scripts/k8s/control-plane.sh" down bench || true
    rm -rf "$work"
}
trap cleanup EXIT

"$repo/scripts/k8s/control-plane.sh" up bench \
    --controller-manager-arg=--node-monitor-grace-period=20m >/dev/null
eval "$("$repo/scripts/k8s/control-plane.sh" env bench)"
ns=iperf3-monitor
kubectl create namespace "$ns" >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=privileged >/dev/null
"$tools/bin/helm" install r "$repo/chart" --namespace "$ns" --set job.dryRun=true --set job.suspend=true >/dev/null
token=$(kubectl -n "$ns" create token r-iperf3-monitor --duration=1h)
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
cat >"$work/sa.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "$server", certificate-authority-data: "$ca"}
users:
- name: sa
  user: {token: "$token"}
contexts:
- name: lab
  context: {cluster: lab, user: sa, namespace: $ns}
current-context: lab
YAML
selector=app.kubernetes.io/component=server,app.kubernetes.io/instance=r,app.kubernetes.io/name=iperf3-monitor
ready_seconds=${FLEET_READY_SECONDS:-900}
chunk=1000
have=0
for count in "${counts[@]}"; do
    start=$SECONDS
    while [[ $have -lt $count ]]; do
        add=$((count - have < chunk ? count - have : chunk))
        "$repo/scripts/k8s/control-plane.sh" add-fleet bench "f$((have + add))" --count "$add" \
            --lease-seconds 600 --ready-timeout "$ready_seconds" >/dev/null
        have=$((have + add))
        echo "bench-discovery: $have nodes Ready after $((SECONDS - start)) s" >&2
    done
    until [[ $(kubectl -n "$ns" get pods -l "$selector" --chunk-size=1000 \
        -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c Running) -ge $count ]]; do
        [[ $((SECONDS - start)) -lt $((ready_seconds * 2)) ]] ||
            { echo "bench-discovery: fewer than $count server pods Running after $((SECONDS - start)) s" >&2; exit 1; }
        sleep 5
    done
    echo "bench-discovery: $count server pods Running in $((SECONDS - start)) s" >&2
    for attempt in 1 2 3; do
        # The API server's share: the same pages, listed by kubectl as the same ServiceAccount.
        kubectl_started=$(date +%s.%N)
        KUBECONFIG="$work/sa.kubeconfig" kubectl get pods -l "$selector" --chunk-size=500 -o name >/dev/null
        kubectl_list=$(python3 -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.2f}")' "$kubectl_started")
        started=$(date +%s.%N)
        /usr/bin/time -f "%e %M" -o "$work/time" env KUBECONFIG="$work/sa.kubeconfig" "$binary" run --dry-run \
            --namespace "$ns" --selector "$selector" --page-size 500 --protocols tcp --log-format json \
            >"$work/plan" 2>"$work/log"
        read -r wall rss <"$work/time"
        discovered=$(grep -o '"pods":[0-9]*' "$work/log" | head -n 1)
        # From the start to the log line of the finished list (its JSON timestamp).
        listed=$(python3 -c 'import datetime, json, sys
for line in open(sys.argv[1]):
    if "discovered iperf3 server pods" in line:
        t = datetime.datetime.fromisoformat(json.loads(line)["timestamp"].replace("Z", "+00:00"))
        print(f"{t.timestamp() - float(sys.argv[2]):.2f}")
        break' "$work/log" "$started")
        echo "pods=$count attempt=$attempt wall=${wall}s listed_after=${listed}s peak_rss=$((rss / 1024))MB kubectl_list=${kubectl_list}s ${discovered} load=$(cut -d' ' -f1-3 /proc/loadavg)"
    done
done
