#!/usr/bin/env bash
# Benchmark: concurrent metadata updates in one process (bench/update_threads.c), no HTTP.
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
ninja -C "$BUILD" -j2 ahl_meta ahl_store ahl_json ahl_dicom ahl_base >/dev/null
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -I"$HERE/src" \
    "$HERE/bench/update_threads.c" "$BUILD/libahl_meta.a" "$BUILD/libahl_store.a" \
    "$BUILD/libahl_json.a" "$BUILD/libahl_dicom.a" "$BUILD/libahl_base.a" -ljansson -lsqlite3 -lcrypto -lz -lpthread \
    -o "$TMP/update_threads"
for t in ${@:-1 2 8}; do
    "$TMP/update_threads" "$TMP/data-$t" "$t" "${SECONDS_PER_RUN:-3}"
done
