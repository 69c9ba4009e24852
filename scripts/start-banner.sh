#!/usr/bin/env bash
# What `npm start` prints once everything runs (scripts/start.sh): where the page, the API, the
# Temporal Web UI and the kubeconfig are. It names a token only when API_TOKENS is the built-in
# local one (LOCAL_API_TOKENS, dev-token:demo); tokens an operator configured are never printed,
# since terminal output ends up in scrollback, CI logs and screen shares.
# Usage: LOCAL_API_TOKENS=… API_TOKENS=… TEMPORAL_UI_URL=… KUBECONFIG=… start-banner.sh <api-url>
set -euo pipefail
api=$1
if [[ -n ${LOCAL_API_TOKENS:-} && ${API_TOKENS:-} == "$LOCAL_API_TOKENS" ]]; then
  tokens="token: ${LOCAL_API_TOKENS%%:*} for user ${LOCAL_API_TOKENS#*:} — local only"
else
  tokens="a token from API_TOKENS; configured tokens are not shown"
fi
cat <<MSG

nightwatch is running
  web page          $api/   ($tokens)
  HTTP API          $api/tasks
  Temporal Web UI   ${TEMPORAL_UI_URL:-}
  kubeconfig        ${KUBECONFIG:-}
  Ctrl-C stops the worker and the API; \`npm run stack stop\` stops the stack.
MSG
