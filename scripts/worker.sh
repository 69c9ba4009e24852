#!/usr/bin/env bash
# `npm run worker`: one worker replica (src/worker.ts), run by Node with a malloc that gives memory
# back and a bounded young generation. Arguments are Node's options (`npm run worker -- --inspect`).
# The process becomes node itself (exec), so signals and its pid are the worker's.
#
# WORKER_MALLOC picks the allocator of the worker's native side (the Temporal core's Rust threads,
# Node's buffers): `auto` (the default) preloads mimalloc, else jemalloc, when the machine has one
# (Debian's libmimalloc2.0 or libjemalloc2; the image installs mimalloc); `system` keeps glibc's; a
# path preloads that library. glibc's per-thread arenas hold on to what those threads free: with
# 2,000 long tasks in flight, 362 MB of the worker's RSS outside its two heaps against 247 MB with
# mimalloc and 237 MB with jemalloc (README, "Memory").
set -euo pipefail
cd "$(dirname "$0")/.."

malloc=
case "${WORKER_MALLOC:-auto}" in
  system) ;;
  auto)
    for name in libmimalloc.so.2 libjemalloc.so.2; do
      for dir in /usr/local/lib "/usr/lib/$(uname -m)-linux-gnu" /usr/lib64 /usr/lib; do
        if [[ -f $dir/$name ]]; then malloc=$dir/$name; break 2; fi
      done
    done
    ;;
  *)
    if [[ ! -f $WORKER_MALLOC ]]; then
      echo "WORKER_MALLOC=$WORKER_MALLOC: no such file; use auto, system or the path of a malloc library" >&2
      exit 2
    fi
    malloc=$WORKER_MALLOC
    ;;
esac
if [[ -n $malloc ]]; then export LD_PRELOAD="$malloc${LD_PRELOAD:+:$LD_PRELOAD}"; fi

# WORKER_SEMI_SPACE_MB caps V8's young generation, in every heap of the process (the flag is V8's,
# process-wide: the main thread's and the SDK's workflow threads'). V8 sizes it from the machine's
# memory by default: 64 MB semi-spaces, 128 MB of new space per heap on a 24 GB machine, most of it
# resident once a busy worker has cycled through it. `0` leaves it to V8 (README, "Memory").
semi_space=${WORKER_SEMI_SPACE_MB:-8}
if [[ ! $semi_space =~ ^[0-9]{1,4}$ ]] || ((10#$semi_space > 1024)); then
  echo "WORKER_SEMI_SPACE_MB=$semi_space: must be a whole number of MB from 0 (V8's own) to 1024" >&2
  exit 2
fi
node_flags=()
if ((10#$semi_space > 0)); then node_flags+=("--max-semi-space-size=$((10#$semi_space))"); fi
exec "${NODE:-node}" "${node_flags[@]}" "$@" src/worker.ts
