#!/usr/bin/env bash
# Runs compute_ctl locally (see scripts/dev.ts). Installs what it lacks: Bun from the npm
# registry, PostgreSQL 15 with apt-get when root.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ensure-tools.sh
source scripts/ensure-tools.sh
exec bun scripts/dev.ts "$@"
