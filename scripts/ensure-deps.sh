#!/usr/bin/env bash
# Installs the npm dependencies when node_modules is missing or out of date with
# package-lock.json or patches/ (applied by postinstall), so `npm start` and `npm test` work on a
# fresh clone. `npm install` rather than `npm ci`: ci refuses a lock whose optional per-platform
# packages (@swc/core's darwin and win32 builds) a registry mirror does not carry, while install
# skips them.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${NIGHTWATCH_CACHE:-$HOME/.cache/nightwatch}
stamp=node_modules/.package-lock.json
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ] && [ -x node_modules/.bin/vitest ] && [ -z "$(find patches -newer "$stamp" -print -quit 2>/dev/null)" ]; then
  exit 0
fi
# Prisma's CLI fetches its schema engine at start-up; nightwatch needs only `prisma generate`
# (no engine) and applies migrations with its own runner, so point it at a stub and skip the
# download and update check. Set only here, never in .env: a real `prisma migrate` needs the engine.
mkdir -p "$cache"
stub=$cache/prisma-schema-engine-stub
printf '#!/bin/sh\necho "nightwatch: the Prisma schema engine is not installed; use npm run db:migrate" >&2\nexit 1\n' >"$stub"
chmod +x "$stub"
export PRISMA_SCHEMA_ENGINE_BINARY=$stub CHECKPOINT_DISABLE=1
echo "[deps] npm install…" >&2
t0=$SECONDS
npm install --no-audit --no-fund --loglevel=error
touch node_modules/.package-lock.json
echo "[deps] installed in $((SECONDS - t0)) s" >&2
