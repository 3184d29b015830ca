# shellcheck shell=bash
# Sourced by the scripts that start processes and wait for them (scripts/k8s/control-plane.sh,
# scripts/kube-lab.sh).
#
#   wait_until SECONDS PIDS COMMAND...   runs COMMAND (its output discarded) every 0.2 s until
#       it succeeds: returns 0. Returns 1 when SECONDS have passed, and 2 as soon as one of PIDS
#       (a space-separated list, may be empty: the processes that COMMAND waits on) has ended,
#       with $wait_ended_pid set to it, so that a crash is reported at once, not at the timeout.
#   stop_pids SECONDS PID...   SIGTERM to each, SIGKILL to those still running after SECONDS.
#   running PID   whether PID still runs. An exited process that is not reaped yet keeps its
#       PID (kill -0 succeeds) but has no executable any more.
# shellcheck disable=SC2034 # read by the scripts that source this file
wait_ended_pid=""

running() {
  readlink "/proc/$1/exe" >/dev/null 2>&1
}

wait_until() {
  local seconds=$1 pids=$2 pid
  shift 2
  local deadline=$((SECONDS + seconds))
  wait_ended_pid=""
  until "$@" >/dev/null 2>&1; do
    for pid in $pids; do
      if ! running "$pid"; then
        wait_ended_pid=$pid
        return 2
      fi
    done
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# all_ended PID...: none of them runs.
all_ended() {
  local pid
  for pid in "$@"; do
    ! running "$pid" || return 1
  done
}

stop_pids() {
  local seconds=$1
  shift
  [[ $# -gt 0 ]] || return 0
  kill "$@" 2>/dev/null || true
  wait_until "$seconds" "" all_ended "$@" || kill -9 "$@" 2>/dev/null || true
}
