#!/usr/bin/env bash
# A lab cluster: the namespace lab (tests/lab/lab.sh) as the nodes of a real Kubernetes control
# plane (scripts/k8s/control-plane.sh), whose pods run for real as the nodes' processes.
#
#   scripts/kube-lab.sh up NAME --nodes N [--rates R1,R2,...] [--subnet S] [--bin CMD=PATH]...
#                       [--lab-servers] [--ipv6] [--pod-network FRACTION] [--apiserver-arg ARG]...
#   scripts/kube-lab.sh down NAME
#
# `up` makes lab NAME (node i: namespace NAME-n<i> at 198.18.S.i, shaped to R<i> Mbit/s; 100
# when --rates is left out), a control plane whose API server listens on the lab bridge's
# 198.18.S.254, one kwok per node inside its namespace (pods/exec runs there) and the pod
# harness tests/real_cluster/kubelet.py: every pod bound to a lab node runs its container's
# command and args (the image is ignored; `--bin CMD=PATH` runs PATH for the command CMD) in
# the node's namespace, as its runAsUser, with its environment (downward API included), its
# ServiceAccount token (TokenRequest, bound to the pod) at
# /var/run/secrets/kubernetes.io/serviceaccount, its Secrets and ConfigMaps, and its exit
# reported as the pod's status. --ipv6 makes the nodes dual-stack (lab.sh --ipv6: node i also
# has 2001:db8:S::i), and the pods' status.podIPs (hostIPs) list both addresses, IPv4 first.
# --pod-network gives each node a pod network (lab.sh --pod-network: namespace NAME-p<i> at
# 198.18.S.(100+i), shaped to FRACTION of the node's rate): the node's pods that are not
# hostNetwork run there, with that podIP, and so do the commands exec'd into them; without it
# they share the node's namespace and address. The lab's own iperf3 servers are stopped (the
# chart's server pods take their place) unless --lab-servers. Prints `host-address: 198.18.S.254` (where
# tests start what the pods push to) and, on its last line, the admin kubeconfig's path.
# `down` stops every process and removes the namespaces and the state, also after a failed up.
# Root only; traffic stays on 198.18.0.0/15 and loopback. Pod logs: STATE/logs/NS_POD.log,
# where STATE is ${IPERF3_MONITOR_KUBE_LAB_STATE:-/run/iperf3-monitor-kube-lab}/NAME.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE_ROOT=${IPERF3_MONITOR_KUBE_LAB_STATE:-/run/iperf3-monitor-kube-lab}
K8S_STATE_ROOT=${IPERF3_MONITOR_K8S_STATE:-/dev/shm/iperf3-monitor-k8s}
LAB_STATE_ROOT=${IPERF3_MONITOR_LAB_STATE:-/run/iperf3-monitor-lab}
# shellcheck source-path=SCRIPTDIR source=lib/wait.sh
source "$repo/scripts/lib/wait.sh"

usage() {
    sed -n '5,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

die() {
    echo "kube-lab.sh: $*" >&2
    exit 1
}

phase() {
    echo "kube-lab.sh: $1 in $(($(date +%s%N) / 1000000 - PHASE_START)) ms" >&2
    PHASE_START=$(($(date +%s%N) / 1000000))
}

# shellcheck disable=SC2317,SC2329 # called by the EXIT trap
up_failed() {
    echo "kube-lab.sh: starting $UP_NAME failed; tearing it down" >&2
    down "$UP_NAME"
}

up() {
    local name=$1
    shift
    local nodes="" rates="" subnet=90 bins=() lab_servers=0 apiserver_args=() ipv6=() pod_network=()
    while [[ $# -gt 0 ]]; do
        case $1 in
            --nodes) nodes=$2; shift 2 ;;
            --rates) rates=$2; shift 2 ;;
            --subnet) subnet=$2; shift 2 ;;
            --bin) bins+=(--bin "$2"); shift 2 ;;
            --lab-servers) lab_servers=1; shift ;;
            --ipv6) ipv6=(--ipv6); shift ;;
            --pod-network) pod_network=(--pod-network "$2"); shift 2 ;;
            --apiserver-arg) apiserver_args+=(--apiserver-arg "$2"); shift 2 ;;
            *) usage ;;
        esac
    done
    [[ $nodes =~ ^[0-9]+$ && $nodes -ge 1 && $nodes -le 60 ]] || die "--nodes must be 1 to 60"
    [[ $subnet =~ ^[0-9]+$ && $subnet -le 255 ]] || die "--subnet must be 0-255"
    if [[ -z $rates ]]; then
        rates=$(printf '100%.0s,' $(seq "$nodes"))
        rates=${rates%,}
    fi
    IFS=, read -r -a rate_list <<<"$rates"
    [[ ${#rate_list[@]} -eq $nodes ]] || die "--rates lists ${#rate_list[@]} rates for $nodes nodes"
    local b
    for b in "${bins[@]}"; do
        [[ $b == --bin ]] && continue
        [[ $b == *=/* && -x ${b#*=} ]] || die "--bin $b: CMD=PATH with an executable absolute PATH"
    done

    PHASE_START=$(($(date +%s%N) / 1000000))
    local bin
    bin=$("$repo/scripts/k8s/build.sh" | tail -n 1)
    phase "binaries ($bin)"
    down "$name" 2>/dev/null || true
    UP_NAME=$name
    trap up_failed EXIT
    local state=$STATE_ROOT/$name
    mkdir -p "$state/logs"
    chmod 755 "$STATE_ROOT" "$state"
    echo "$subnet" >"$state/subnet"
    echo "$nodes" >"$state/nodes"

    "$repo/tests/lab/lab.sh" up "$name" --rates "$rates" --subnet "$subnet" "${ipv6[@]}" "${pod_network[@]}" \
        >/dev/null
    if [[ $lab_servers -eq 0 ]]; then
        local pidfile pid
        for pidfile in "$LAB_STATE_ROOT/$name"/[np]*.pid; do
            pid=$(cat "$pidfile")
            [[ $(cat "/proc/$pid/comm" 2>/dev/null) == iperf3 ]] && kill "$pid"
            rm -f "$pidfile"
        done
    fi
    phase "lab $name ($nodes nodes, rates $rates Mbit/s)"

    local host=198.18.$subnet.254
    "$repo/scripts/k8s/control-plane.sh" up "$name" --address "$host" "${apiserver_args[@]}" >/dev/null
    local k8s=$K8S_STATE_ROOT/$name
    phase "control plane"

    # kwok keeps the nodes Ready and serves pods/exec (run in the node's namespace); pods'
    # status is the harness's: no pod stages.
    local i node_args=()
    for ((i = 1; i <= nodes; i++)); do
        "$repo/scripts/k8s/control-plane.sh" add-node "$name" "n$i" --ip "198.18.$subnet.$i" \
            --netns "$name-n$i" --config "$repo/scripts/k8s/kwok-local-exec.yaml" \
            --exec-netns-dir "$state/exec-netns" >/dev/null
        node_args+=(--node "n$i=$name-n$i=198.18.$subnet.$i${ipv6:+,2001:db8:$subnet::$i}")
        if [[ ${#pod_network[@]} -gt 0 ]]; then
            node_args+=(--pod-network "n$i=$name-p$i=198.18.$subnet.$((100 + i))${ipv6:+,2001:db8:$subnet::1:$i}")
        fi
    done
    phase "nodes"

    local server port
    server=$(cat "$k8s/server")
    port=${server##*:}
    setsid python3 "$repo/tests/real_cluster/kubelet.py" --server "$server" \
        --ca "$k8s/pki/ca.crt" --cert "$k8s/pki/admin.crt" --key "$k8s/pki/admin.key" \
        --api-host "$host" --api-port "$port" --state "$state" --log-dir "$state/logs" \
        "${node_args[@]}" "${bins[@]}" >"$state/logs/kubelet.log" 2>&1 </dev/null &
    echo $! >"$state/kubelet.pid"
    local rc=0
    wait_until 30 "$(cat "$state/kubelet.pid")" grep -q "watching pods" "$state/logs/kubelet.log" || rc=$?
    if [[ $rc -ne 0 ]]; then
        cat "$state/logs/kubelet.log" >&2
        [[ $rc -eq 2 ]] && die "the pod harness ended"
        die "the pod harness is not watching pods after 30 s"
    fi
    phase "pod harness"
    trap - EXIT
    echo "api-server: $server"
    echo "pod-logs: $state/logs"
    echo "host-address: $host"
    echo "$k8s/admin.kubeconfig"
}

down() {
    local name=$1 state=$STATE_ROOT/$1
    if [[ -f $state/kubelet.pid ]]; then
        local pid
        pid=$(cat "$state/kubelet.pid")
        if [[ $(cat "/proc/$pid/cmdline" 2>/dev/null | tr '\0' ' ') == *real_cluster/kubelet.py* ]]; then
            stop_pids 8 "$pid"
        fi
    fi
    # Pods the harness left (it ended by SIGKILL): each is a session of its own.
    local pidfile pid
    for pidfile in "$state"/pods/*/pid; do
        [[ -f $pidfile ]] || continue
        pid=$(cat "$pidfile")
        kill -9 -- "-$pid" 2>/dev/null || true
    done
    "$repo/scripts/k8s/control-plane.sh" down "$name" || true
    "$repo/tests/lab/lab.sh" down "$name" || true
    # Mount points the harness made on this machine for pods' volumes, deepest first.
    if [[ -f $state/created-mount-points ]]; then
        local dir
        while read -r dir; do
            rmdir "$dir" 2>/dev/null || true
        done < <(sort -ru "$state/created-mount-points" | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
    fi
    rm -rf "$state"
}

[[ $# -ge 2 ]] || usage
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces)"
command=$1 name=$2
shift 2
[[ $name =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "NAME '$name' must be 1-8 lowercase letters or digits, starting with a letter"
case $command in
    up) up "$name" "$@" ;;
    down) down "$name" ;;
    *) usage ;;
esac
