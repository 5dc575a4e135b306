#!/usr/bin/env bash
# Runs the whole test suite (lint and typecheck are `bun run lint` / `bun run typecheck`).
# Installs what it lacks: Bun from the npm registry, PostgreSQL 15 with apt-get when root.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ensure-tools.sh
source scripts/ensure-tools.sh
# e2e tests start the compiled binary and Postgres and wait for them: Bun's 5 s default per test
# is too short for those.
exec bun test --timeout 120000 "$@"
