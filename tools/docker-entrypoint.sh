#!/bin/sh
# Entry point of the Recluster image: `recluster "$@"`, after seeding numba's cache.
#
# numba only uses a cache directory it can write to (it probes with a temporary
# file), and the root filesystem is read-only in the cluster. The kernels
# compiled at build time live in $RECLUSTER_NUMBA_CACHE_SEED; they are copied
# (about 5 MB, milliseconds) into $NUMBA_CACHE_DIR under the writable /tmp, so a
# Job loads machine code instead of compiling for 20-60 s.
set -eu

seed="${RECLUSTER_NUMBA_CACHE_SEED:-}"
cache="${NUMBA_CACHE_DIR:-}"
if [ -n "$seed" ] && [ -n "$cache" ] && [ -d "$seed" ] && [ ! -e "$cache" ]; then
  if ! cp -R "$seed" "$cache" 2>/dev/null; then
    echo "recluster: cannot write $cache; numba kernels will be compiled on first use" >&2
  fi
fi
exec recluster "$@"
