#!/usr/bin/env bash
# Assembles the whole root file system of the runtime image in ROOT, for the Dockerfile's
# `FROM scratch` stage: run inside a Debian stage that has iperf3 and ca-certificates installed,
# with ROOT/usr/local/bin/iperf3-monitor already in place.
#
#   scripts/image-rootfs.sh ROOT
#
# What runs in the image, and nothing else (docs/image.md):
#   iperf3               the server of the DaemonSet, and the client of mesh mode's pods/exec
#   timeout              mesh mode execs `timeout -s KILL … iperf3 …` in the server pod
#   iperf3-monitor       the job, and `with-password`, which replaces itself with iperf3
# each with the shared objects that ldd says it loads (at the path the loader looks for them), the
# CA bundle (TLS to the push targets), passwd/group with the user 65532, a /tmp, and for scanners
# the dpkg records and copyright files of the Debian packages those files come from.
set -euo pipefail

root=${1:?usage: $0 ROOT}
programs=(/usr/bin/iperf3 /usr/bin/timeout)
[[ -x $root/usr/local/bin/iperf3-monitor ]] || { echo "$0: $root/usr/local/bin/iperf3-monitor is missing" >&2; exit 1; }

# place FILE: copies FILE (its target, if a symlink) to the same path under ROOT.
place() {
  mkdir -p "$root$(dirname "$1")"
  cp --dereference --preserve=mode "$1" "$root$1"
}

# shared_objects ELF...: every shared object the ELFs load, as ldd resolves them, the loader too.
shared_objects() {
  local elf
  for elf in "$@"; do
    if ldd "$elf" | grep "not found" >&2; then
      echo "$0: $elf needs a library that is not installed" >&2
      return 1
    fi
    # "libc.so.6 => /lib/…/libc.so.6 (0x…)" and "/lib64/ld-linux-x86-64.so.2 (0x…)"; the vDSO
    # ("linux-vdso.so.1 (0x…)") is the kernel's.
    ldd "$elf" | awk '$2 == "=>" { print $3; next } $1 ~ /^\// { print $1 }'
  done | sort -u
}

# package_of FILE: the Debian package that installed FILE (with or without the usr merge).
package_of() {
  local path
  for path in "$1" "$(readlink -f "$1")" "/usr$1" "${1#/usr}"; do
    dpkg-query --search "$path" 2>/dev/null | sed -n '1s/:.*//p' | grep . && return 0
  done
  echo "$0: no Debian package owns $1" >&2
  return 1
}

for program in "${programs[@]}"; do
  place "$program"
done
mapfile -t libraries < <(shared_objects "${programs[@]}" "$root/usr/local/bin/iperf3-monitor")
for library in "${libraries[@]}"; do
  place "$library"
done
place /etc/ssl/certs/ca-certificates.crt
place /etc/os-release

mkdir -p "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' \
  'iperf3-monitor:x:65532:65532:iperf3-monitor:/nonexistent:/usr/sbin/nologin' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'iperf3-monitor:x:65532:' >"$root/etc/group"
# glibc's built-in files and dns modules only: without this file it would try others first.
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$root/etc/nsswitch.conf"

# One dpkg status record per package, as distroless keeps them: SBOM generators and
# vulnerability scanners read them to name the packages and versions inside.
mkdir -p "$root/var/lib/dpkg/status.d"
# The CA bundle is made by update-ca-certificates, so no package lists it: name its own.
{
  for file in "${programs[@]}" "${libraries[@]}"; do
    package_of "$file"
  done
  echo ca-certificates
} | sort -u | while read -r package; do
  dpkg-query --status "$package" >"$root/var/lib/dpkg/status.d/$package"
  if [[ -f /usr/share/doc/$package/copyright ]]; then
    mkdir -p "$root/usr/share/doc/$package"
    cp /usr/share/doc/"$package"/copyright "$root/usr/share/doc/$package/"
  fi
done
