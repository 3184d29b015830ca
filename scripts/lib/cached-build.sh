# shellcheck shell=bash
# Sourced by the scripts that build Go programs into a cache directory outside the repository
# (scripts/k8s/build.sh, scripts/prometheus3/build.sh). Each prints the bin directory on the
# last line of stdout and the time of each phase on stderr, and returns at once when the build
# is complete already, so callers can always run it.
#
#   cached_build_start DIR   sets $bin to DIR/bin; exits 0 printing it (and that it is cached,
#                            on stderr) when DIR/bin/.complete exists; otherwise takes
#                            DIR/.lock (two callers at once, a test run and a developer, must
#                            not build into the same directory), checks again (the other
#                            caller may have just finished), and that there is a Go toolchain
#   phase NAME / phase_done NAME   the start and the time of one phase
#   cached_build_done        marks the build complete and prints the total time and $bin
#
# Go builds here: reproducible paths, no VCS stamping, 2 packages at a time (2 cores; more only
# adds memory pressure while the big packages compile and link), no cgo (the binaries then do
# not depend on the host's libc).
export GOFLAGS="-trimpath -buildvcs=false -p=2"
export CGO_ENABLED=0

bin=""
phase_start=0
build_start=0

phase() { phase_start=$SECONDS; echo "build.sh: $1..." >&2; }
phase_done() { echo "build.sh: $1 took $((SECONDS - phase_start)) s" >&2; }

cached_build_start() {
  local dir=$1
  bin=$dir/bin
  if [[ -f $bin/.complete ]]; then
    echo "build.sh: built already, cached in $bin" >&2
    echo "$bin"
    exit 0
  fi
  mkdir -p "$dir"
  # The lock is held until the script exits (fd 9 stays open in the script's shell).
  exec 9>"$dir/.lock"
  flock 9
  if [[ -f $bin/.complete ]]; then
    echo "build.sh: built meanwhile by another caller, cached in $bin" >&2
    echo "$bin"
    exit 0
  fi
  if ! command -v go >/dev/null; then
    echo "build.sh: no Go toolchain (1.26 or newer) to build $(basename "$dir"): install one from https://go.dev/dl/" >&2
    exit 2
  fi
  mkdir -p "$bin"
  build_start=$SECONDS
}

cached_build_done() {
  touch "$bin/.complete"
  echo "build.sh: built in $((SECONDS - build_start)) s" >&2
  echo "$bin"
}
