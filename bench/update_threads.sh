#!/usr/bin/env bash
# Benchmark: concurrent metadata updates in one process (`ahilite-bench update-threads`,
# bench/update_threads.c), no HTTP.
# usage: bench/update_threads.sh [THREADS...]   (default: 1 2 8)
# env: AHILITE_BUILD=DIR  a configured build directory (default: build one in a temporary dir);
#      SECONDS_PER_RUN=S  (default 3).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/ahilite-upd-bench-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
if [ -n "${AHILITE_BUILD:-}" ]; then
    BUILD=$AHILITE_BUILD
else
    BUILD=$TMP/build
    cmake --preset default -S "$HERE" -B "$BUILD" >/dev/null
fi
cmake --build "$BUILD" -j2 --target ahilite-bench >/dev/null
for t in ${@:-1 2 8}; do
    "$BUILD/ahilite-bench" update-threads "$TMP/data-$t" "$t" "${SECONDS_PER_RUN:-3}"
done
