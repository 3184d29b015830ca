# shellcheck shell=bash
# Sourced by the scripts that run a project's pinned npm packages (scripts/check-dashboards.sh,
# scripts/generate-dashboards.sh). `npm_ci DIR` installs DIR/package-lock.json into
# DIR/node_modules (gitignored) with `npm ci`, only when the lock changed since the last install:
# npm ci wipes node_modules, so running it every time would cost a download each run.
npm_ci() {
  local dir=$1 lock_sum stamp
  stamp="$dir/node_modules/.installed-lock-sha256"
  lock_sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$lock_sum" ]]; then
    echo "$(basename "$0"): installing npm packages into ${dir#"$(pwd)"/}/node_modules" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$lock_sum" >"$stamp"
  fi
}
