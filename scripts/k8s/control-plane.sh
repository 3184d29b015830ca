#!/usr/bin/env bash
# A real Kubernetes control plane on this machine (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, built by scripts/k8s/build.sh) and kwok nodes for it.
#
#   scripts/k8s/control-plane.sh up NAME [--address ADDR] [--port PORT]
#                                [--apiserver-arg ARG]... [--controller-manager-arg ARG]...
#   scripts/k8s/control-plane.sh add-node NAME NODE --ip IP [--netns NS] [--cidr CIDR]
#                                [--label KEY=VALUE]... [--config FILE]... [--exec-netns-dir DIR]
#   scripts/k8s/control-plane.sh add-fleet NAME PREFIX --count N [--lease-seconds S] [--ready-timeout S]
#                                [--label KEY=VALUE]... [--config FILE]...
#   scripts/k8s/control-plane.sh env NAME
#   scripts/k8s/control-plane.sh down NAME
#
# `up` prints the API server's URL and, on its last line, the path of an admin kubeconfig.
# The API server listens on ADDR only (default 127.0.0.1); for nodes in a lab's network
# namespaces give the lab bridge's host address (198.18.S.254), the one address both this
# machine and the namespaces reach. `add-node` registers Node NODE and starts a kwok for it,
# inside NS when given (then every command exec'd into its pods runs in NS), serving the
# kubelet API on IP:10250. `add-fleet` registers N nodes PREFIX-1..PREFIX-N run by one kwok in
# this machine's namespace, with no kubelet API (so no exec): for tests of scale. `--config`
# replaces the default pod stages and ClusterExec with kwok configuration files of one's own.
# `--exec-netns-dir DIR`: a pod with a network namespace of its own (a pod harness's pod-network
# pod) has a file DIR/<namespace>_<pod> naming it, and pods/exec runs its commands there
# (kwok-exec.patch).
# `env` prints shell exports (KUBECONFIG, and PATH with kubectl). `down` stops everything that
# `up`, `add-node` and `add-fleet` started, by PID, and removes the state.
#
# Addresses: lab ranges only (198.18.0.0/15). Nodes in namespaces have the lab's 198.18.S.i.
# Everything that nothing serves is in 198.19.0.0/16, and `up` makes that range unreachable on
# this machine, so that a connection to such an address fails here instead of leaving by the
# default route:
#   198.19.0.0/18     pods (not hostNetwork) of node 198.18.S.i: a /26 for each i
#   198.19.64.0/18    fleet nodes' InternalIPs (250 in each /24, up to 16,000)
#   198.19.128.0/18   fleet pods (not hostNetwork)
#   198.19.255.0/24   Services (the `kubernetes` Service at 198.19.255.1)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE_ROOT=${IPERF3_MONITOR_K8S_STATE:-/dev/shm/iperf3-monitor-k8s}
UNSERVED=198.19.0.0/16
FLEET_POD_CIDR=198.19.128.0/18
SERVICE_CIDR=198.19.255.0/24
SERVICE_IP=198.19.255.1
KUBELET_PORT=10250

usage() {
    sed -n '5,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

die() {
    echo "control-plane.sh: $*" >&2
    exit 1
}

check_name() {
    [[ $1 =~ ^[a-z][a-z0-9-]{0,30}$ ]] || die "NAME '$1' must be lowercase letters, digits and '-'"
}

# A free TCP port on ADDR, from the kernel; nothing else binds it in the moment before we do.
free_port() {
    python3 -c 'import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# shellcheck source-path=SCRIPTDIR source=../lib/wait.sh
source "$here/../lib/wait.sh"

# wait_for STATE WHAT SECONDS COMMAND...: retries COMMAND every 0.2 s until it succeeds; fails
# at once, with the end of its log, when a process that STATE started has ended.
wait_for() {
    local state=$1 what=$2 seconds=$3 pidfile component rc=0 pids=()
    shift 3
    for pidfile in "$state"/pids/*.pid; do pids+=("$(cat "$pidfile")"); done
    wait_until "$seconds" "${pids[*]}" "$@" || rc=$?
    case $rc in
        0) return 0 ;;
        2)
            for pidfile in "$state"/pids/*.pid; do
                [[ $(cat "$pidfile") == "$wait_ended_pid" ]] || continue
                component=$(basename "$pidfile" .pid)
                echo "control-plane.sh: $component has ended; the end of its log:" >&2
                tail -n 15 "$state/logs/$component.log" >&2
            done
            ;;
        *) echo "control-plane.sh: $what not ready after ${seconds} s" >&2 ;;
    esac
    return 1
}

# start STATE NAME COMMAND...: runs COMMAND in its own session (so that a Ctrl-C or the end
# of the caller's process group does not take it down half-way), logging to logs/NAME.log.
start() {
    local state=$1 name=$2
    shift 2
    setsid "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$state/pids/$name.pid"
}

# issue STATE NAME SUBJECT EXTENSIONS: an EC key and a certificate signed by the lab's CA.
issue() {
    local pki=$1/pki name=$2 subject=$3 extensions=$4
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
        -CAcreateserial -days 30 -out "$pki/$name.crt" \
        -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n%s\n' "$extensions") 2>/dev/null
    rm "$pki/$name.csr"
}

# kubeconfig STATE NAME USER: a kubeconfig with the CA and NAME's client certificate embedded,
# so that any client (kubectl, kwok, a Rust test) can read it without the files beside it.
kubeconfig() {
    local state=$1 name=$2 user=$3
    local pki=$state/pki
    cat >"$state/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: $(cat "$state/server")
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$pki/$name.crt")
    client-key-data: $(base64 -w0 "$pki/$name.key")
contexts:
- name: lab
  context: {cluster: lab, user: $user}
current-context: lab
EOF
}

curl_api() {
    local state=$1 path=$2
    local pki=$state/pki
    curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "$(cat "$state/server")$path"
}

# shellcheck disable=SC2317,SC2329 # called by the EXIT trap
up_failed() {
    local state=$STATE_ROOT/$UP_NAME
    echo "control-plane.sh: starting $UP_NAME failed; its logs are in $state.failed-logs" >&2
    rm -rf "$state.failed-logs"
    cp -r "$state/logs" "$state.failed-logs" 2>/dev/null || true
    down "$UP_NAME"
}

up() {
    local name=$1
    shift
    local address=127.0.0.1 port="" apiserver_args=() kcm_args=()
    while [[ $# -gt 0 ]]; do
        case $1 in
            --address) address=$2; shift 2 ;;
            --port) port=$2; shift 2 ;;
            --apiserver-arg) apiserver_args+=("$2"); shift 2 ;;
            --apiserver-arg=*) apiserver_args+=("${1#*=}"); shift ;;
            --controller-manager-arg) kcm_args+=("$2"); shift 2 ;;
            --controller-manager-arg=*) kcm_args+=("${1#*=}"); shift ;;
            *) usage ;;
        esac
    done
    case $address in
        127.0.0.1) ;;
        198.1[89].*) [[ $(ip -o -4 addr show) == *" inet $address/"* ]] || die "no interface has the address $address" ;;
        *) die "--address must be 127.0.0.1 or a lab (198.18.0.0/15) address of this machine, not $address" ;;
    esac

    local bin
    bin=$("$here/build.sh" | tail -n 1)
    down "$name" 2>/dev/null || true
    local state=$STATE_ROOT/$name
    mkdir -p "$state"/{pki,logs,pids}
    mkdir -m 700 "$state/etcd"
    # Shared by every control plane here; down removes it with the last one.
    [[ -n $(ip route show type unreachable "$UNSERVED") ]] || ip route add unreachable "$UNSERVED"
    chmod 700 "$state"
    echo "$bin" >"$state/bin"
    # Whatever fails below (set -e may exit from any function), leave nothing running; keep
    # the logs, which say why.
    UP_NAME=$name
    trap up_failed EXIT

    [[ -n $port ]] || port=$(free_port "$address")
    echo "https://$address:$port" >"$state/server"
    local etcd_port etcd_peer_port kcm_port scheduler_port
    etcd_port=$(free_port 127.0.0.1)
    etcd_peer_port=$(free_port 127.0.0.1)
    kcm_port=$(free_port 127.0.0.1)
    scheduler_port=$(free_port 127.0.0.1)

    # Certificates: one CA for everything; the API server's serving certificate names every
    # address a client may use (this machine's, and the `kubernetes` Service's for pods).
    local pki=$state/pki
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$pki/ca.key" -out "$pki/ca.crt" -subj "/CN=iperf3-monitor-lab-ca-$name" -days 30 \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    local sans="IP:$address,IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes"
    sans+=",DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    issue "$state" apiserver "/CN=kube-apiserver" \
        "extendedKeyUsage=serverAuth"$'\n'"subjectAltName=$sans"
    issue "$state" admin "/O=system:masters/CN=lab-admin" "extendedKeyUsage=clientAuth"
    issue "$state" controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
    issue "$state" scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
    # The identity the API server presents to kubelets (kwok) for exec, logs and port-forward.
    issue "$state" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" \
        "extendedKeyUsage=clientAuth"
    # The front proxy's identity: aggregated API servers and the controllers' delegated
    # authentication expect a request-header CA (without it they log errors every second).
    issue "$state" front-proxy-client "/CN=front-proxy-client" "extendedKeyUsage=clientAuth"
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    for k in admin controller-manager scheduler; do
        kubeconfig "$state" "$k" "$k"
    done

    # etcd's data only lives as long as the cluster: tmpfs (the state directory is under
    # /dev/shm by default) and no fsync, as envtest runs it.
    start "$state" etcd "$bin/etcd" --name="$name" --data-dir="$state/etcd" \
        --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
        --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
        --initial-cluster="$name=http://127.0.0.1:$etcd_peer_port" \
        --unsafe-no-fsync --log-level=warn
    wait_for "$state" etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

    # The `kubernetes` Service's endpoint is the advertised address, and an Endpoints object
    # may not hold a loopback address: on 127.0.0.1 the Service gets no endpoint.
    local reconciler=lease
    [[ $address != 127.0.0.1 ]] || reconciler=none
    start "$state" kube-apiserver "$bin/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$etcd_port" \
        --bind-address="$address" --advertise-address="$address" --secure-port="$port" \
        --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --client-ca-file="$pki/ca.crt" --endpoint-reconciler-type="$reconciler" \
        --requestheader-client-ca-file="$pki/ca.crt" --requestheader-allowed-names=front-proxy-client \
        --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
        --requestheader-extra-headers-prefix=X-Remote-Extra- \
        --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
        --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
        --allow-privileged=true \
        --kubelet-preferred-address-types=InternalIP \
        --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
        --profiling=false \
        "${apiserver_args[@]}"
    wait_for "$state" kube-apiserver 60 curl_api "$state" /readyz

    # The controllers' client limit is raised from 20 requests a second: at the default, the
    # node lifecycle controller takes minutes to lift the not-ready taints of a 5,000-node fleet.
    start "$state" kube-controller-manager "$bin/kube-controller-manager" \
        --kubeconfig="$state/controller-manager.kubeconfig" \
        --authentication-kubeconfig="$state/controller-manager.kubeconfig" \
        --authorization-kubeconfig="$state/controller-manager.kubeconfig" \
        --bind-address=127.0.0.1 --secure-port="$kcm_port" --cert-dir="$state/controller-manager" \
        --leader-elect=false --use-service-account-credentials=true \
        --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" \
        --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --kube-api-qps=200 --kube-api-burst=400 \
        --profiling=false \
        "${kcm_args[@]}"
    start "$state" kube-scheduler "$bin/kube-scheduler" \
        --kubeconfig="$state/scheduler.kubeconfig" \
        --authentication-kubeconfig="$state/scheduler.kubeconfig" \
        --authorization-kubeconfig="$state/scheduler.kubeconfig" \
        --bind-address=127.0.0.1 --secure-port="$scheduler_port" --cert-dir="$state/scheduler" \
        --leader-elect=false --profiling=false
    wait_for "$state" kube-controller-manager 60 curl -fsSk "https://127.0.0.1:$kcm_port/healthz"
    wait_for "$state" kube-scheduler 60 curl -fsSk "https://127.0.0.1:$scheduler_port/healthz"
    # Pods can be created in a namespace once its `default` ServiceAccount exists: the sign
    # that the controllers work, and what a caller's first pod needs.
    wait_for "$state" "ServiceAccount default/default" 60 curl_api "$state" /api/v1/namespaces/default/serviceaccounts/default
    trap - EXIT
    rm -rf "$state.failed-logs"
    echo "api-server: $(cat "$state/server")"
    echo "$state/admin.kubeconfig"
}

# kwok_config STATE FILE [CONFIG...]: kwok's stages (from its module, copied by build.sh):
# nodes become Ready and keep a lease; pods become Running, a Job's pods Succeeded; ClusterExec:
# pods/exec runs the command locally, that is, in the namespace kwok runs in. CONFIGs replace
# all but the node stages.
kwok_config() {
    local state=$1 file=$2 stages f
    shift 2
    stages=$(cat "$state/bin")/../kwok-stages
    {
        for f in "$stages"/node-*.yaml; do cat "$f"; echo "---"; done
        if [[ $# -eq 0 ]]; then
            for f in "$stages"/pod-*.yaml; do cat "$f"; echo "---"; done
            cat "$here/kwok-local-exec.yaml"
        else
            for f in "$@"; do cat "$f"; echo "---"; done
        fi
    } >"$file"
}

# node_yaml NODE IP [LABEL...]: a List item for a Node as a kubelet would register it, with no
# taint (so that DaemonSets land) and its InternalIP, which kwok keeps.
node_yaml() {
    local node=$1 ip=$2 label
    shift 2
    cat <<EOF
- apiVersion: v1
  kind: Node
  metadata:
    name: $node
    annotations:
      kwok.x-k8s.io/node: fake
    labels:
      kubernetes.io/hostname: $node
      kubernetes.io/os: linux
      kubernetes.io/arch: amd64
EOF
    for label in "$@"; do
        echo "      ${label%%=*}: \"${label#*=}\""
    done
    cat <<EOF
  status:
    addresses:
    - {type: InternalIP, address: $ip}
    - {type: Hostname, address: $node}
EOF
}

# plane_state NAME: the state directory of control plane NAME, which must be up.
plane_state() {
    [[ -f $STATE_ROOT/$1/server ]] || die "no control plane '$1' (run up first)"
    echo "$STATE_ROOT/$1"
}

add_node() {
    local name=$1 node=$2
    shift 2
    local ip="" netns="" cidr="" labels=() configs=() run=()
    while [[ $# -gt 0 ]]; do
        case $1 in
            --ip) ip=$2; shift 2 ;;
            --netns) netns=$2; shift 2 ;;
            --exec-netns-dir) run=(env "KWOK_EXEC_NETNS_DIR=$2"); shift 2 ;;
            --cidr) cidr=$2; shift 2 ;;
            --label) labels+=("$2"); shift 2 ;;
            --config) configs+=("$2"); shift 2 ;;
            *) usage ;;
        esac
    done
    local state
    state=$(plane_state "$name")
    [[ $node =~ ^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$ ]] || die "NODE '$node' is not a valid node name"
    [[ $ip =~ ^198\.1[89]\.[0-9]+\.([0-9]+)$ ]] || die "--ip must be a lab address (198.18.0.0/15), not '$ip'"
    # kwok's default pod CIDR is 10.0.0.0/24: never let it pick that.
    if [[ -z $cidr ]]; then
        local offset=$((BASH_REMATCH[1] * 64))
        cidr=198.19.$((offset / 256)).$((offset % 256))/26
    fi
    [[ $cidr == 198.1[89].* ]] || die "--cidr must be in 198.18.0.0/15, not '$cidr'"
    local bin
    bin=$(cat "$state/bin")
    if [[ -n $netns ]]; then
        [[ $(ip -n "$netns" -o -4 addr show) == *" inet $ip/"* ]] || die "namespace $netns has no address $ip"
        # kwok in the namespace must reach the API server from there.
        local server_address
        server_address=$(sed 's#https://\(.*\):[0-9]*$#\1#' "$state/server")
        [[ $server_address != 127.* ]] ||
            die "the API server listens on $server_address, which namespace $netns cannot reach; up with --address of the lab bridge"
        run+=(ip netns exec "$netns")
    fi

    # kwok's heartbeat stage writes the Node's status every 10 minutes and relies on a lease
    # for the rest (as kubelets do): without --node-lease-duration-seconds there is no lease,
    # and the node lifecycle controller marks the node NotReady after 40 s and its pods not
    # Ready, and kwok's next status marks it Ready again, in turns.
    { echo "apiVersion: v1"; echo "kind: List"; echo "items:"; node_yaml "$node" "$ip" "${labels[@]}"; } |
        "$bin/kubectl" --kubeconfig="$state/admin.kubeconfig" apply -f - >/dev/null
    kwok_config "$state" "$state/kwok-$node.yaml" "${configs[@]}"
    start "$state" "kwok-$node" "${run[@]}" "$bin/kwok" --config="$state/kwok-$node.yaml" \
        --kubeconfig="$state/admin.kubeconfig" --manage-single-node="$node" \
        --node-ip="$ip" --node-name="$node" --node-port="$KUBELET_PORT" \
        --server-address="$ip:$KUBELET_PORT" --cidr="$cidr" --node-lease-duration-seconds=40
    if ! "$bin/kubectl" --kubeconfig="$state/admin.kubeconfig" wait --for=condition=Ready "node/$node" --timeout=60s >/dev/null; then
        tail -n 20 "$state/logs/kwok-$node.log" >&2
        die "node $node not Ready"
    fi
    echo "node $node Ready at $ip (kwok pid $(cat "$state/pids/kwok-$node.pid"))"
}

# fleet_ready STATE SELECTOR COUNT: are COUNT nodes with the label SELECTOR Ready?
fleet_ready() {
    local ready
    ready=$("$(cat "$1/bin")/kubectl" --kubeconfig="$1/admin.kubeconfig" get nodes -l "$2" \
        -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)
    [[ $ready -eq $3 ]]
}

add_fleet() {
    local name=$1 prefix=$2
    shift 2
    local count="" lease=40 ready_timeout="" labels=() configs=()
    while [[ $# -gt 0 ]]; do
        case $1 in
            --count) count=$2; shift 2 ;;
            --lease-seconds) lease=$2; shift 2 ;;
            --ready-timeout) ready_timeout=$2; shift 2 ;;
            --label) labels+=("$2"); shift 2 ;;
            --config) configs+=("$2"); shift 2 ;;
            *) usage ;;
        esac
    done
    local state
    state=$(plane_state "$name")
    [[ $prefix =~ ^[a-z]([a-z0-9-]{0,40}[a-z0-9])?$ ]] || die "PREFIX '$prefix' is not a valid node name prefix"
    [[ $count =~ ^[0-9]+$ && $count -ge 1 && $count -le 16000 ]] || die "--count must be 1 to 16000"
    [[ ! -f $state/pids/kwok-$prefix.pid ]] || die "there is a fleet or node $prefix already"
    [[ -z $ready_timeout || $ready_timeout =~ ^[1-9][0-9]*$ ]] || die "--ready-timeout must be a number of seconds"
    local bin k
    bin=$(cat "$state/bin")
    local selector=iperf3-monitor.lab/fleet=$prefix
    {
        echo "apiVersion: v1"; echo "kind: List"; echo "items:"
        for ((k = 0; k < count; k++)); do
            node_yaml "$prefix-$((k + 1))" "198.19.$((64 + k / 250)).$((k % 250 + 1))" "$selector" "${labels[@]}"
        done
    } | "$bin/kubectl" --kubeconfig="$state/admin.kubeconfig" create -f - >/dev/null
    kwok_config "$state" "$state/kwok-$prefix.yaml" "${configs[@]}"
    # One kwok for all of them, logging only warnings (at INFO, a line for every patch). It
    # renews each node's lease every lease/4 s: at the default 40 s, 5,000 nodes make 500
    # writes a second. For a big fleet give a longer lease, and the controller manager a
    # --node-monitor-grace-period longer than the lease, or the node lifecycle controller and
    # kwok take turns at marking the nodes NotReady and Ready.
    start "$state" "kwok-$prefix" "$bin/kwok" --config="$state/kwok-$prefix.yaml" \
        --kubeconfig="$state/admin.kubeconfig" --manage-nodes-with-label-selector="$selector" \
        --node-lease-duration-seconds="$lease" --cidr="$FLEET_POD_CIDR" --v=WARN
    # One list a time (`kubectl wait` on many objects waits for them one after the other). 4,000
    # nodes took over 140 s with both cores busy: 15 a second, plus a minute, by default; on a
    # machine loaded by other work 4,000 took longer than 326 s, so callers may give more.
    [[ -n $ready_timeout ]] || ready_timeout=$((60 + count / 15))
    if ! wait_for "$state" "fleet $prefix" "$ready_timeout" fleet_ready "$state" "$selector" "$count"; then
        tail -n 20 "$state/logs/kwok-$prefix.log" >&2
        die "fleet $prefix not Ready"
    fi
    echo "fleet $prefix: $count nodes Ready (kwok pid $(cat "$state/pids/kwok-$prefix.pid"))"
}

env_() {
    local state
    state=$(plane_state "$1")
    echo "export KUBECONFIG=$state/admin.kubeconfig"
    echo "export PATH=$(cat "$state/bin"):\$PATH"
}

# stop BIN PIDFILE...: TERM to all, KILL to any still there after 10 s. Only a process that
# still runs one of our binaries: a PID can have been reused.
stop() {
    local bin=$1 pidfile pid pids=()
    shift
    for pidfile in "$@"; do
        [[ -f $pidfile ]] || continue
        pid=$(cat "$pidfile")
        [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$bin"/* ]] && pids+=("$pid")
    done
    stop_pids 10 "${pids[@]}"
}

down() {
    local name=$1 state=$STATE_ROOT/$1
    [[ -d $state ]] || return 0
    local bin
    bin=$(cat "$state/bin" 2>/dev/null || echo /nonexistent)
    # The API server's clients, then the API server, then etcd: each takes about a second
    # like this, while an etcd stopped under a live API server waits for it (and it for etcd).
    stop "$bin" "$state"/pids/kwok-*.pid "$state/pids/kube-scheduler.pid" "$state/pids/kube-controller-manager.pid"
    stop "$bin" "$state/pids/kube-apiserver.pid"
    stop "$bin" "$state/pids/etcd.pid"
    rm -rf "$state"
    if ! compgen -G "$STATE_ROOT/*/server" >/dev/null; then
        ip route del unreachable "$UNSERVED" 2>/dev/null || true
    fi
}

[[ $# -ge 2 ]] || usage
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces)"
command=$1 name=$2
shift 2
check_name "$name"
case $command in
    up) up "$name" "$@" ;;
    add-node) [[ $# -ge 1 ]] || usage; add_node "$name" "$@" ;;
    add-fleet) [[ $# -ge 1 ]] || usage; add_fleet "$name" "$@" ;;
    env) env_ "$name" ;;
    down) down "$name" ;;
    *) usage ;;
esac
