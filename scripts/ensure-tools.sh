#!/usr/bin/env bash
# Sourced by the README commands and by .ci/run: makes `bun` available (from the npm registry,
# into .tools/ of this checkout) and, when run as root, installs PostgreSQL 15 with apt-get.
# Prints one line saying what to install when it cannot do it itself.
BUN_VERSION="${BUN_VERSION:-1.4.5}"
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# npm --prefix also moves npm's global config file (<prefix>/etc/npmrc), so the machine-wide
# one (registry, proxy, CA file) would be skipped: it is named explicitly. The user's ~/.npmrc and
# the environment (npm_config_*) apply as usual. npm's own error is shown (--loglevel=error), and
# a failed download is retried once after 2 s instead of npm's default of about 70 s in silence.
_install_bun() {
  local globalconfig
  globalconfig="$(npm config get globalconfig 2>/dev/null || true)"
  echo "installing bun@$BUN_VERSION from the npm registry into .tools/ (first run only: a ~40 MB download, usually 5-60 s)" >&2
  npm install --no-save --no-audit --no-fund --loglevel=error \
    --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=10000 \
    ${globalconfig:+--globalconfig "$globalconfig"} \
    --prefix "$_root/.tools" "bun@$BUN_VERSION" >&2
}

if ! command -v bun >/dev/null 2>&1; then
  if [ -x "$_root/.tools/node_modules/.bin/bun" ]; then
    export PATH="$_root/.tools/node_modules/.bin:$PATH"
  elif command -v npm >/dev/null 2>&1; then
    _install_bun || {
      echo "error: npm could not install bun@$BUN_VERSION (npm's error is above); fix that, or install Bun $BUN_VERSION yourself (https://bun.sh) and run this again" >&2
      return 1 2>/dev/null || exit 1
    }
    export PATH="$_root/.tools/node_modules/.bin:$PATH"
  else
    echo "error: bun is missing and npm is not available: install Node.js (npm) or Bun $BUN_VERSION" >&2
    return 1 2>/dev/null || exit 1
  fi
fi

PG_BINDIR="${PG_BINDIR:-/usr/lib/postgresql/15/bin}"
if [ ! -x "$PG_BINDIR/postgres" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing postgresql-15 with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq postgresql-15; } >&2 || {
      echo "error: apt-get could not install postgresql-15" >&2
      return 1 2>/dev/null || exit 1
    }
  else
    echo "error: PostgreSQL 15 not found at $PG_BINDIR: install postgresql-15 (apt-get install postgresql-15) or set PG_BINDIR" >&2
    return 1 2>/dev/null || exit 1
  fi
fi
export PG_BINDIR

if [ ! -d "$_root/node_modules" ] || [ "$_root/package.json" -nt "$_root/node_modules" ]; then
  # Errors only: the install itself is not news.
  (cd "$_root" && { bun install --frozen-lockfile --no-progress --no-summary >/dev/null 2>&1 ||
    bun install --no-progress --no-summary >/dev/null; }) || {
    echo "error: bun install failed" >&2
    return 1 2>/dev/null || exit 1
  }
fi
