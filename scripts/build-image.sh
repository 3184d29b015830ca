#!/usr/bin/env bash
# Builds the iperf3-monitor image with podman on a machine that reaches no
# container registry: the Debian stage that supplies iperf3, its libraries and
# the CA bundle is made here with debootstrap; the image itself is `scratch`
# plus the files that run (Dockerfile, scripts/image-rootfs.sh, docs/image.md).
#
#   scripts/build-image.sh [--from-source | --debug] [--tag IMAGE] [--refresh-base]
#
# Default (from binary): `cargo build --release --locked` on this host, then
# the Dockerfile's `runtime-from-binary` target copies that binary, with what
# it and iperf3 load, onto `scratch`. The host must be Debian 12 (bookworm),
# the runtime's release, so that the binary's glibc matches. This is what CI
# smoke-tests (scripts/test.sh): the release binary, built once.
#
# --debug: the same with `cargo build --locked` (the dev profile), its symbols
# stripped. After `cargo test`, which builds that very binary, it compiles
# nothing; its image is about 44 MB, over the smoke test's 40-MB limit
# (SMOKE_MAX_IMAGE_MB=50 scripts/smoke-image.sh). For trying changes, not for
# publishing (the release workflow builds from source, in release mode).
#
# --from-source: the Dockerfile's default target, which compiles in its
# `build` stage. Its builder base is the debootstrap rootfs plus gcc and this
# host's Rust toolchain (rustup cannot download here); crates come from
# crates.io through the host network. Slower (a full release build in the
# container), and what the release workflow does with the public base images.
#
# --refresh-base: rebuild the base images even if they exist.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tag="localhost/iperf3-monitor:dev"
from_source=false
debug=false
refresh_base=false
usage="usage: $0 [--from-source | --debug] [--tag IMAGE] [--refresh-base]"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --from-source) from_source=true ;;
    --debug) debug=true ;;
    --tag) tag=$2; shift ;;
    --refresh-base) refresh_base=true ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
if $from_source && $debug; then
  echo "$usage" >&2
  exit 2
fi

suite="bookworm"
mirror="http://deb.debian.org/debian"
runtime_base="localhost/iperf3-monitor-base/debian:$suite"
# Under /var/tmp: the root file system trees take hundreds of MB.
scratch=$(mktemp -d /var/tmp/iperf3-monitor-image.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

log() { echo "build-image: $*" >&2; }

# shellcheck source-path=SCRIPTDIR source=lib/apt.sh
source "$repo/scripts/lib/apt.sh"
ensure_packages() {
  local missing=() tool
  for tool in podman runc debootstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
}

# make_rootfs DIR [PACKAGE,...]: a minimal Debian tree with the security and
# updates suites enabled, without apt's caches.
make_rootfs() {
  local dir=$1 include=${2:-}
  debootstrap --variant=minbase ${include:+--include="$include"} "$suite" "$dir" "$mirror" >"$scratch/debootstrap.log" 2>&1 \
    || { tail -n 20 "$scratch/debootstrap.log" >&2; return 1; }
  cat >"$dir/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
EOF
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
}

ensure_runtime_base() {
  if ! $refresh_base && podman image exists "$runtime_base"; then
    return 0
  fi
  log "making $runtime_base with debootstrap"
  make_rootfs "$scratch/runtime"
  tar -C "$scratch/runtime" -c . | podman import --quiet - "$runtime_base" >/dev/null
  rm -rf "$scratch/runtime"
}

# The builder base carries the host's own Rust toolchain (its sysroot: rustc,
# cargo and the standard library), not rustup: nothing is downloaded.
ensure_builder_base() {
  local sysroot version
  sysroot=$(rustc --print sysroot)
  version=$(rustc --version | awk '{print $2}')
  builder_base="localhost/iperf3-monitor-base/rust:$version-$suite"
  if ! $refresh_base && podman image exists "$builder_base"; then
    return 0
  fi
  log "making $builder_base with debootstrap and the toolchain in $sysroot"
  make_rootfs "$scratch/builder" gcc,libc6-dev,ca-certificates
  # Trust what this host trusts: its way to crates.io may re-sign TLS.
  cp /etc/ssl/certs/ca-certificates.crt "$scratch/builder/etc/ssl/certs/ca-certificates.crt"
  mkdir -p "$scratch/builder/usr/local/rust"
  cp -a "$sysroot/bin" "$sysroot/lib" "$scratch/builder/usr/local/rust/"
  tar -C "$scratch/builder" -c . | podman import --quiet \
    --change "ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV CARGO_HOME=/usr/local/cargo" \
    - "$builder_base" >/dev/null
  rm -rf "$scratch/builder"
}

ensure_packages
ensure_runtime_base
build_args=(--isolation=chroot --build-arg "RUNTIME_IMAGE=$runtime_base" --file "$repo/Dockerfile" --tag "$tag")
if $from_source; then
  ensure_builder_base
  log "building $tag from source (target runtime)"
  podman build "${build_args[@]}" --build-arg "BUILDER_IMAGE=$builder_base" --target runtime "$repo"
else
  # shellcheck source=/dev/null
  if [[ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" != "$suite" ]]; then
    log "this host is not Debian $suite: its binary may need a newer glibc than the image has; use --from-source"
    exit 2
  fi
  target_dir=$(cd "$repo" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  # A context of just the binary and the script that assembles the root file system.
  mkdir -p "$scratch/context/target/release" "$scratch/context/scripts"
  cp "$repo/scripts/image-rootfs.sh" "$scratch/context/scripts/"
  if $debug; then
    log "cargo build --locked (dev profile; nothing to compile after cargo test)"
    (cd "$repo" && cargo build --locked --quiet)
    objcopy --strip-all "$target_dir/debug/iperf3-monitor" "$scratch/context/target/release/iperf3-monitor"
  else
    log "cargo build --release --locked"
    (cd "$repo" && cargo build --release --locked --quiet)
    cp "$target_dir/release/iperf3-monitor" "$scratch/context/target/release/"
  fi
  log "building $tag from the host binary (target runtime-from-binary)"
  podman build "${build_args[@]}" --target runtime-from-binary "$scratch/context"
fi
log "built $tag: $(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1 / 1e6}') uncompressed"
