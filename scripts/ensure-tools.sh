#!/usr/bin/env bash
# Sourced by the README commands and by .ci/run: makes `bun` available (from the npm registry,
# into .tools/ of this checkout) and, when run as root, installs PostgreSQL 15 with apt-get.
# Prints one line saying what to install when it cannot do it itself.
BUN_VERSION="${BUN_VERSION:-1.4.5}"
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v bun >/dev/null 2>&1; then
  if [ -x "$_root/.tools/node_modules/.bin/bun" ]; then
    export PATH="$_root/.tools/node_modules/.bin:$PATH"
  elif command -v npm >/dev/null 2>&1; then
    echo "installing bun@$BUN_VERSION from the npm registry into .tools/" >&2
    npm install --silent --no-audit --no-fund --prefix "$_root/.tools" "bun@$BUN_VERSION" >&2 || {
      echo "error: could not install bun with npm; install Node.js/npm or Bun $BUN_VERSION" >&2
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
  (cd "$_root" && bun install --frozen-lockfile >&2 2>/dev/null || bun install >&2) || {
    echo "error: bun install failed" >&2
    return 1 2>/dev/null || exit 1
  }
fi
