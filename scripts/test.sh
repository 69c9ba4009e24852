#!/usr/bin/env bash
# `npm test`: install what is missing, build and start the local stack (a no-op when it is
# up), type-check, run every vitest project against it, and stop the stack again if this run
# started it.
# Extra arguments go to vitest, e.g. `npm test -- --project unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
# The browser tests drive Debian's Chromium (test tools cannot download their own browser here).
if ! command -v chromium >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "[test] Chromium is missing: apt-get install chromium" >&2; exit 1; }
  echo "[test] installing Debian's chromium for the browser tests…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi
stack=scripts/stack/stack.sh
if bash "$stack" status >/dev/null 2>&1; then
  started_here=0
else
  started_here=1
  [ "${NW_KEEP_STACK:-0}" = 1 ] || trap 'bash "$stack" stop' EXIT
fi
bash "$stack" start
eval "$(bash "$stack" env)"
echo "[test] type-checking…" >&2
npm exec --no -- tsc --noEmit -p .
t0=$SECONDS
status=0
npm exec --no -- vitest run "$@" || status=$?
echo "[test] vitest finished in $((SECONDS - t0)) s (exit $status)" >&2
[ $started_here = 1 ] && [ "${NW_KEEP_STACK:-0}" != 1 ] && echo "[test] stopping the stack this run started (NW_KEEP_STACK=1 keeps it)" >&2
exit $status
