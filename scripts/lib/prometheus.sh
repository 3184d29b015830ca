# shellcheck shell=bash
# Sourced by scripts that need a throwaway Prometheus with the remote-write receiver on
# 127.0.0.1. `start_prometheus DIR` starts it with its config, data and log in DIR and waits until
# it is ready (it fails, pointing at the log, if it is not within 30 s); it sets $prometheus_port
# and $prometheus_pid. `stop_prometheus` stops it; safe to call twice or before a start.
prometheus_pid=""
prometheus_port=""

start_prometheus() {
  local dir=$1
  mkdir -p "$dir"
  prometheus_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'global:\n  scrape_interval: 15s\n' >"$dir/prometheus.yml"
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$prometheus_port" --web.enable-remote-write-receiver >"$dir/prometheus.log" 2>&1 &
  prometheus_pid=$!
  local _
  for _ in $(seq 150); do
    curl -sf "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null && return 0
    kill -0 "$prometheus_pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "prometheus did not start on 127.0.0.1:$prometheus_port; see $dir/prometheus.log:" >&2
  tail -n 20 "$dir/prometheus.log" >&2
  return 1
}

stop_prometheus() {
  if [[ -n $prometheus_pid ]]; then
    kill "$prometheus_pid" 2>/dev/null || true
    wait "$prometheus_pid" 2>/dev/null || true
    prometheus_pid=""
  fi
}
