# shellcheck shell=bash
# Sourced by the check scripts that install pinned tools of their own (scripts/check-chart.sh,
# scripts/check-workflows.sh) into one directory, $tools: $IPERF3_MONITOR_TOOLS, by default
# ~/.cache/iperf3-monitor-tools, with the programs in $tools/bin. Each installation leaves a
# stamp file holding its pins, so a script installs once and again only when a pin changes.
#
#   tools_installed STAMP PINS   true when $tools/STAMP holds exactly PINS
#   tools_stamp STAMP PINS       records PINS as installed (the last step of an installation)
#   tools_on_path                puts $tools/bin first on PATH
tools="${IPERF3_MONITOR_TOOLS:-$HOME/.cache/iperf3-monitor-tools}"

tools_installed() {
  [[ -f "$tools/$1" && "$(cat "$tools/$1")" == "$2" ]]
}

tools_stamp() {
  echo "$2" >"$tools/$1"
}

tools_on_path() {
  export PATH="$tools/bin:$PATH"
}
