#!/usr/bin/env bash
# A multi-node lab on one machine: N network namespaces joined by a bridge, each running
# `iperf3 -s`, each node shaped to its own known rate.
#
#   tests/lab/lab.sh up NAME --rates 40,60,80,100 [--subnet S] [--ipv6] [--pod-network FRACTION] [--udp-loss NODE:PROBABILITY]... [--shared-ack-queue] [--auth USER:PASSWORD] [--cpu-quota CPUS]
#   tests/lab/lab.sh down NAME
#
# `up` prints the path of an inventory file for `iperf3-monitor run --inventory`. Node i is
# `n<i>` at 198.18.S.i (S defaults to 0), in namespace NAME-n<i>; the host side of the bridge is
# 198.18.S.254. NAME is at most 8 characters (it prefixes interface names). --ipv6 makes the lab
# dual-stack: node i also has 2001:db8:S::i (the bridge 2001:db8:S::fe), and the inventory lists
# both addresses.
# --pod-network gives every node a second server, on a "pod network": namespace NAME-p<i> at
# 198.18.S.(100+i) (and 2001:db8:S::1:i with --ipv6), shaped to FRACTION of the node's rate (e.g.
# 0.5), listed in the inventory as node n<i> again with `network: pod`. The path i→j on it runs at
# FRACTION × min(rate[i], rate[j]): a CNI whose cost is known. Its server and clients share the
# node's CPU cgroup (--cpu-quota), as a pod shares its node's CPUs.
#
# Shaping: node i sends and receives at most rate[i] Mbit/s, so the path i→j runs at
# min(rate[i], rate[j]). Egress is shaped on the node's eth0, ingress on the bridge-side veth,
# each with an htb class at the node's rate. In a mesh round every node sends one test and
# receives another; if the ACKs of the incoming test queued behind the node's own outgoing
# test, the incoming numbers would come out 15-65% low. So TCP from port 5201 (the servers'
# ACKs and control traffic) goes to an unshaped class, as a real NIC's multi-queue and fair
# queueing largely do. --shared-ack-queue leaves that class out (the worst case).
# --udp-loss drops UDP data datagrams to node i's server at random (iptables statistic; no netem
# here).
# --auth starts every server with RSA authentication: a fresh key pair and an authorized users
# file with USER and PASSWORD in STATE/auth/ (the clients need STATE/auth/public.pem).
# --cpu-quota gives each node a CPU cgroup of its own, capped at CPUS CPUs (e.g. 0.25; period
# 100 ms, as a Kubernetes CPU limit), holding the node's server and every client the job starts
# on it: the inventory's client_command first moves itself into the node's cgroup, then enters
# its namespace. cgroup v2 (cpu.max) or v1 (cpu.cfs_quota_us), whichever has the cpu controller.
#
# Only addresses in 198.18.0.0/15 and 2001:db8::/32, inside namespaces this script makes, carry
# lab traffic.
set -euo pipefail

PORT=5201
STATE_ROOT=${IPERF3_MONITOR_LAB_STATE:-/run/iperf3-monitor-lab}
CPU_PERIOD_US=100000
# `sh -c "$ENTER_CGROUP" PROCS COMMAND...`: joins the cgroup whose cgroup.procs is PROCS, then
# becomes COMMAND (argv untouched; children stay in the cgroup).
# shellcheck disable=SC2016 # expanded by that sh, not here
ENTER_CGROUP='echo $$ >"$0" && exec "$@"'

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

need_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "lab.sh: needs root (network namespaces, tc, iptables)" >&2
        exit 2
    fi
}

check_name() {
    if [[ ! $1 =~ ^[a-z][a-z0-9]{0,7}$ ]]; then
        echo "lab.sh: NAME '$1' must be 1-8 lowercase letters or digits, starting with a letter" >&2
        exit 2
    fi
}

# cpu_cgroups: one line `VERSION DIR` for each hierarchy with the cpu controller (v2: cgroup2 with
# cpu in cgroup.controllers; v1: a cgroup mount with the cpu option), the preferred first.
cpu_cgroups() {
    local dir
    while read -r dir; do
        grep -qw cpu "$dir/cgroup.controllers" 2>/dev/null && echo "2 $dir"
    done < <(awk '$3 == "cgroup2" {print $2}' /proc/self/mounts)
    awk '$3 == "cgroup" && $4 ~ /(^|,)cpu(,|$)/ {print "1 " $2}' /proc/self/mounts
}

# shape DEV RATE [ip -n NS]: htb with the node's rate (a tc rate: 100mbit, 50000kbit) as the
# default class and, unless the ACK queue is shared, an unshaped class for TCP from the iperf3 port.
shape() {
    local dev=$1 rate=$2
    shift 2
    local tc=(tc)
    [[ $# -gt 0 ]] && tc=(ip netns exec "$1" tc)
    "${tc[@]}" qdisc add dev "$dev" root handle 1: htb default 10
    "${tc[@]}" class add dev "$dev" parent 1: classid 1:1 htb rate 10gbit quantum 60000
    "${tc[@]}" class add dev "$dev" parent 1:1 classid 1:10 htb rate "$rate" ceil "$rate" quantum 60000
    if [[ $SHARED_ACK_QUEUE -eq 0 ]]; then
        "${tc[@]}" class add dev "$dev" parent 1:1 classid 1:20 htb rate 5gbit ceil 10gbit quantum 60000
        "${tc[@]}" filter add dev "$dev" parent 1: protocol ip prio 1 u32 \
            match ip protocol 6 0xff match ip sport "$PORT" 0xffff flowid 1:20
        # The same over IPv6 (TCP right after the fixed header, as iperf3's packets are).
        "${tc[@]}" filter add dev "$dev" parent 1: protocol ipv6 prio 2 u32 \
            match ip6 protocol 6 0xff match ip6 sport "$PORT" 0xffff flowid 1:20
    fi
}

# add_server NS HOST_IF V4 V6 RATE FILE NETWORK CLIENT_COMMAND: namespace NS on the bridge through
# veth HOST_IF at 198.18.S.V4 (and 2001:db8:S::V6 with --ipv6), shaped to RATE both ways, running
# an iperf3 server (its pid and log STATE/FILE.pid, .log) inside "${enter[@]}" (the node's
# cgroup); appends node n$i on NETWORK to the inventory. Uses up()'s locals.
add_server() {
    local ns=$1 host_if=$2 v4=198.18.$subnet.$3 v6=2001:db8:$subnet::$4 rate=$5 file=$6 network=$7
    ip netns add "$ns"
    ip link add "$host_if" type veth peer name eth0 netns "$ns"
    ip link set "$host_if" master "$bridge" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$v4/24" dev eth0
    [[ $ipv6 -eq 0 ]] || ip -n "$ns" addr add "$v6/64" dev eth0 nodad
    ip -n "$ns" link set eth0 up
    shape eth0 "$rate" "$ns"
    shape "$host_if" "$rate"
    "${enter[@]}" ip netns exec "$ns" iperf3 --server --port "$PORT" --daemon \
        --pidfile "$state/$file.pid" --logfile "$state/$file.log" "${server_auth[@]}"
    {
        echo "  - name: n$i"
        [[ $network == host ]] || echo "    network: $network"
        if [[ $ipv6 -eq 0 ]]; then echo "    address: $v4"; else echo "    addresses: [$v4, '$v6']"; fi
        echo "    port: $PORT"
        echo "    client_command: [$8]"
        # The job tells a CPU-bound test from a slow path by the CPU the node has.
        if [[ -n $cpu_quota ]]; then echo "    cpu: $cpu_quota"; fi
    } >>"$state/inventory.yaml"
}

up() {
    local name=$1
    shift
    local rates="" subnet=0 losses=() auth="" cpu_quota="" ipv6=0 pod_fraction=""
    SHARED_ACK_QUEUE=0
    while [[ $# -gt 0 ]]; do
        case $1 in
            --rates) rates=$2; shift 2 ;;
            --subnet) subnet=$2; shift 2 ;;
            --ipv6) ipv6=1; shift ;;
            --pod-network) pod_fraction=$2; shift 2 ;;
            --udp-loss) losses+=("$2"); shift 2 ;;
            --shared-ack-queue) SHARED_ACK_QUEUE=1; shift ;;
            --auth) auth=$2; shift 2 ;;
            --cpu-quota) cpu_quota=$2; shift 2 ;;
            *) usage ;;
        esac
    done
    [[ -n $rates ]] || usage
    [[ $subnet =~ ^[0-9]+$ && $subnet -le 255 ]] || { echo "lab.sh: --subnet must be 0-255" >&2; exit 2; }
    IFS=, read -r -a rate_list <<<"$rates"
    local n=${#rate_list[@]}
    [[ $n -ge 1 && $n -le 250 ]] || { echo "lab.sh: --rates lists 1 to 250 nodes" >&2; exit 2; }
    if [[ -n $pod_fraction ]]; then
        awk -v f="$pod_fraction" 'BEGIN {exit !(f ~ /^[0-9]*\.?[0-9]+$/ && f > 0 && f <= 1)}' ||
            { echo "lab.sh: --pod-network is a fraction of the node's rate, above 0 and at most 1" >&2; exit 2; }
        [[ $n -le 100 ]] || { echo "lab.sh: --pod-network takes at most 100 nodes" >&2; exit 2; }
    fi
    local quota_us="" cgroup_version="" cgroup=""
    if [[ -n $cpu_quota ]]; then
        [[ $cpu_quota =~ ^[0-9]*\.?[0-9]+$ ]] && quota_us=$(awk -v c="$cpu_quota" -v p="$CPU_PERIOD_US" 'BEGIN {printf "%d", c * p}')
        [[ ${quota_us:-0} -ge 1000 ]] || { echo "lab.sh: --cpu-quota is a number of CPUs, at least 0.01" >&2; exit 2; }
        read -r cgroup_version cgroup < <(cpu_cgroups) || true
        [[ -n $cgroup ]] || { echo "lab.sh: --cpu-quota needs the cgroup cpu controller (v2 or v1)" >&2; exit 2; }
        cgroup=$cgroup/iperf3-monitor-lab-$name
    fi

    down "$name" 2>/dev/null || true
    local state=$STATE_ROOT/$name
    mkdir -p "$state"
    # Whatever fails below, leave nothing half made.
    trap 'echo "lab.sh: setting up $name failed; tearing it down" >&2; down "$name"' ERR

    local server_auth=()
    if [[ -n $auth ]]; then
        local user=${auth%%:*} password=${auth#*:}
        [[ $auth == *:* && -n $user && $user != *,* ]] || { echo "lab.sh: --auth is USER:PASSWORD" >&2; exit 2; }
        mkdir -p "$state/auth"
        openssl genrsa -out "$state/auth/private.pem" 2048 2>/dev/null
        openssl rsa -in "$state/auth/private.pem" -pubout -out "$state/auth/public.pem" 2>/dev/null
        # iperf3's format: one `user,sha256("{user}password")` per line.
        printf '%s,%s\n' "$user" "$(printf '{%s}%s' "$user" "$password" | sha256sum | cut -d' ' -f1)" \
            >"$state/auth/users.csv"
        server_auth=(--rsa-private-key-path "$state/auth/private.pem" --authorized-users-path "$state/auth/users.csv")
    fi
    if [[ -n $cgroup ]]; then
        mkdir "$cgroup"
        # v2: a cgroup's children get the cpu controller only when its parent hands it down.
        if [[ $cgroup_version -eq 2 ]]; then
            grep -qw cpu "${cgroup%/*}/cgroup.subtree_control" || echo +cpu >"${cgroup%/*}/cgroup.subtree_control"
            echo +cpu >"$cgroup/cgroup.subtree_control"
        fi
    fi

    local bridge=${name}br
    ip link add "$bridge" type bridge
    ip addr add "198.18.$subnet.254/24" dev "$bridge"
    # nodad: the addresses are usable at once (duplicate address detection takes a second or two).
    [[ $ipv6 -eq 0 ]] || ip addr add "2001:db8:$subnet::fe/64" dev "$bridge" nodad
    ip link set "$bridge" up
    {
        echo "# lab $name: rates ${rates} Mbit/s${cpu_quota:+, $cpu_quota CPU per node (cgroup v$cgroup_version)}"
        echo "nodes:"
    } >"$state/inventory.yaml"
    for ((i = 1; i <= n; i++)); do
        local ns=$name-n$i rate=${rate_list[i - 1]}
        # In the node's cgroup before its namespace: `ip netns exec` mounts a /sys of its own.
        local enter=() client_command="ip, netns, exec, $ns"
        if [[ -n $cgroup ]]; then
            mkdir "$cgroup/n$i"
            if [[ $cgroup_version -eq 2 ]]; then
                echo "$quota_us $CPU_PERIOD_US" >"$cgroup/n$i/cpu.max"
            else
                echo "$CPU_PERIOD_US" >"$cgroup/n$i/cpu.cfs_period_us"
                echo "$quota_us" >"$cgroup/n$i/cpu.cfs_quota_us"
            fi
            enter=(sh -c "$ENTER_CGROUP" "$cgroup/n$i/cgroup.procs")
            client_command="sh, -c, '$ENTER_CGROUP', $cgroup/n$i/cgroup.procs, $client_command"
        fi
        add_server "$ns" "${name}v$i" "$i" "$i" "${rate}mbit" "n$i" host "$client_command"
        if [[ -n $pod_fraction ]]; then
            add_server "$name-p$i" "${name}p$i" "$((100 + i))" "1:$i" \
                "$(awk -v r="$rate" -v f="$pod_fraction" 'BEGIN {printf "%dkbit", r * f * 1000}')" \
                "p$i" pod "${client_command%"$ns"}$name-p$i"
        fi
    done
    for loss in "${losses[@]}"; do
        local node=${loss%%:*} probability=${loss#*:}
        # Data datagrams only: iperf3 3.12 opens a UDP test with a 4-byte datagram and waits for
        # it without retrying, so losing that one hangs the test until --test-timeout.
        ip netns exec "$name-n$node" iptables -A INPUT -p udp --dport "$PORT" -m length --length 64:65535 \
            -m statistic --mode random --probability "$probability" -j DROP
    done
    # The servers are up when they listen.
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^$name-[np][0-9]+$"); do
        for _ in $(seq 50); do
            ip netns exec "$ns" ss -Hltn "sport = :$PORT" | grep -q . && break
            sleep 0.1
        done
    done
    trap - ERR
    echo "$state/inventory.yaml"
}

down() {
    local name=$1 state=$STATE_ROOT/$1
    if [[ -d $state ]]; then
        for pidfile in "$state"/*.pid; do
            [[ -f $pidfile ]] || continue
            kill "$(cat "$pidfile")" 2>/dev/null || true
        done
    fi
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^$name-[np][0-9]+$" || true); do
        # Anything still running inside (a client) goes with its namespace.
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns"
    done
    # A namespace lives on while sockets of its dead processes wait out their timeouts (a downed
    # link leaves TCP retransmitting), and with it the host end of its veth: delete those too, so
    # that the lab can be made again at once.
    for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^${name}[vp][0-9]+$" || true); do
        ip link del "$link" 2>/dev/null || true
    done
    ip link del "${name}br" 2>/dev/null || true
    # The nodes' CPU cgroups, once the processes killed above are gone (rmdir fails before).
    local cgroup leaf
    while read -r _ cgroup; do
        cgroup=$cgroup/iperf3-monitor-lab-$name
        [[ -d $cgroup ]] || continue
        for leaf in "$cgroup"/n*/ "$cgroup"/; do
            [[ -d $leaf ]] || continue
            xargs -r kill -9 <"$leaf/cgroup.procs" 2>/dev/null || true
            for _ in $(seq 50); do
                rmdir "$leaf" 2>/dev/null && break
                sleep 0.1
            done
        done
    done < <(cpu_cgroups)
    rm -rf "$state"
}

[[ $# -ge 2 ]] || usage
need_root
command=$1 name=$2
shift 2
check_name "$name"
case $command in
    up) up "$name" "$@" ;;
    down) down "$name" ;;
    *) usage ;;
esac
