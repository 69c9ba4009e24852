#!/usr/bin/env bash
# `npm start`: the whole system on the built-in local stack. Installs what is missing, builds
# and starts the stack (Temporal + Web UI, Kubernetes with KWOK, MariaDB), migrates and seeds
# the `nightwatch` database, then runs one worker and the API/web page in the foreground.
# Ctrl-C stops the worker and the API; the stack keeps running (`npm run stack stop`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
bash scripts/stack/stack.sh start
eval "$(bash scripts/stack/stack.sh env)"
# The built-in local-only token for the demo user, unless the operator configured tokens of their own.
LOCAL_API_TOKENS=dev-token:demo
export API_TOKENS=${API_TOKENS:-$LOCAL_API_TOKENS}
npm run -s db:migrate
npm run -s db:seed

# Node itself, not `npm run`: npm does not pass SIGTERM on, and both processes shut down
# gracefully on it (in-flight activities and requests finish). Each runs in a session of its own,
# so that Ctrl-C reaches only this script, which passes on one SIGTERM: a terminal's Ctrl-C goes to
# its whole process group, and a second signal (the group's SIGINT, then this script's SIGTERM)
# ends a Temporal worker at once, skipping its drain (the SDK stops listening after the first).
# Further Ctrl-Cs while they drain (npm passes its own SIGINT on too) are ignored here.
node=node_modules/.bin/node
pids=()
stop() {
  trap '' INT TERM
  trap - EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT
NODE=$node setsid bash scripts/worker.sh & pids+=($!)
setsid "$node" src/api/server.ts & pids+=($!)

api="http://${API_HOST:-127.0.0.1}:${API_PORT:-8080}"
for _ in $(seq 1 120); do curl -sf "$api/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
LOCAL_API_TOKENS=$LOCAL_API_TOKENS bash scripts/start-banner.sh "$api"
wait -n "${pids[@]}"
