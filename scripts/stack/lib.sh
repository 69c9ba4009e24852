# Shared by the stack scripts: where things live and how they report.
NW_CACHE=${NIGHTWATCH_CACHE:-$HOME/.cache/nightwatch}
log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }
bin_dir() { printf '%s/bin/%s-%s' "$NW_CACHE" "$1" "$2"; }
