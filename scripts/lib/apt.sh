# shellcheck shell=bash
# Sourced by the scripts that install Debian packages. `apt_install PACKAGE...` installs those of
# the packages that are not installed yet, quietly, without recommends; `apt-get update` runs at
# most once per script, and only when something is missing. Idempotent: with everything
# installed it does nothing, and needs no root. Without root, when something is missing, it
# fails naming the packages and the command to run.
apt_updated=false

apt_install() {
  local package missing=()
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  if [[ $(id -u) -ne 0 ]]; then
    echo "$(basename "$0"): missing Debian packages ${missing[*]}: run as root, or apt-get install ${missing[*]}" >&2
    return 1
  fi
  echo "$(basename "$0"): installing ${missing[*]} (Debian packages)" >&2
  if ! $apt_updated; then
    apt-get update -qq
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
