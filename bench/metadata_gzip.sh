#!/usr/bin/env bash
# Benchmark: GetImageSetMetadata's body on the wire, from group segments (src/meta/gzdoc.c),
# against the build before them, in one run.
#
# One command. It builds the current tree's ahilite and ahilite-bench (or uses AHILITE_BUILD=DIR)
# and the commit BASE's (default: the parent of the commit that added src/meta/gzdoc.c, i.e. each
# instance's own deflate segment spliced) into a temporary directory, then for each N:
#   1. in process (`ahilite-bench update --instances N --updates UPDATES`, the synthetic CT series
#      of 1,751 bytes of JSON an instance), base then current: the body's size, and in the
#      current build gzip -6 of the same JSON, the first read (which compresses every group),
#      the warm reads, the read after an update of one instance, and the update's median time and
#      bytes per version in both builds;
#   2. over HTTP, on a CT series of N instances with CT_small.dcm's header (~11.6 KB of JSON an
#      instance, what DICOM files bring; pydicom writes them, the current `ahilite import` imports
#      them once), `ahilite serve` of the base build and then of the current one on the same data
#      directory: the first GetImageSetMetadata after start (curl --aws-sigv4) and 10 more on one
#      connection (`ahilite-bench http-load --mode metadata`), the body's size against `gzip -6`
#      of its JSON; the bodies of both builds must inflate to the same JSON.
#   3. the alternatives, on the same CT body (bench/metadata_gzip_alternatives.py): its size
#      and compression rate as each instance alone, as leaves without a dictionary, as instances
#      primed with the previous one, as leaves primed with the previous leaf (what is served),
#      and as a whole document.
# Then one JSON line per figure, with the ratios. Wall-clock rates move with the machine's load
# (printed).
#
# usage: bench/metadata_gzip.sh [N...]          (default: 1000 10000)
# env: AHILITE_BUILD=DIR  the current build (default: a temporary one);
#      BASE=COMMIT        the build to compare with;
#      BASE_BUILD=DIR     a build of BASE made beforehand (its ahilite and ahilite-bench);
#      UPDATES=K          engine updates timed in step 1 (default 1000);
#      NO_HTTP=1          skip step 2 (no pydicom needed).
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${*:-1000 10000}
UPDATES=${UPDATES:-1000}
TMP=$(mktemp -d /tmp/ahilite-gzip-bench-XXXXXX)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

for tool in /usr/bin/python3 cmake ninja git gzip curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done

# 1. Builds.
if [ -n "${AHILITE_BUILD:-}" ]; then
    NEW=$AHILITE_BUILD
else
    NEW=$TMP/new
    echo "building the current tree in $NEW ..." >&2
    cmake --preset default -S "$HERE" -B "$NEW" >/dev/null
fi
cmake --build "$NEW" -j2 --target ahilite ahilite-bench >/dev/null
if [ -z "${BASE:-}" ]; then
    ADDED=$(git -C "$HERE" log --diff-filter=A --format=%H -- src/meta/gzdoc.c | tail -1)
    [ -n "$ADDED" ] || { echo "no commit adds src/meta/gzdoc.c; set BASE" >&2; exit 2; }
    BASE=$ADDED^
fi
BASE_REV=$(git -C "$HERE" rev-parse --short "$BASE")
OLD=${BASE_BUILD:-$TMP/base}
if [ -z "${BASE_BUILD:-}" ]; then
    echo "building the base $BASE_REV in $OLD ..." >&2
    mkdir -p "$TMP/base-src"
    git -C "$HERE" archive "$BASE_REV" | tar -x -C "$TMP/base-src"
    cmake -S "$TMP/base-src" -B "$OLD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DAHL_WERROR=OFF >/dev/null
    cmake --build "$OLD" -j2 --target ahilite ahilite-bench >/dev/null
fi
NEW_REV=$(git -C "$HERE" rev-parse --short HEAD)$(git -C "$HERE" diff --quiet HEAD -- src bench || echo +)

# 2. In process.
for n in $SIZES; do
    echo "in process, $n instances: base, then current ..." >&2
    "$OLD/ahilite-bench" update --instances "$n" --updates "$UPDATES" >"$TMP/engine-base-$n"
    "$NEW/ahilite-bench" update --instances "$n" --updates "$UPDATES" >"$TMP/engine-new-$n"
done

# 3. Over HTTP.
AK=AKIAGZIPBENCH0000001
SK=gzip/bench/secret/key/000000000000000000
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$AK" "$SK" >"$TMP/creds"
# serve BUILD DATA: starts that build's server; sets SERVER_PID and EP.
serve() {
    local port
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    EP=http://127.0.0.1:$port
    "$1/ahilite" serve --data-dir "$2" --listen "127.0.0.1:$port" --credentials "$TMP/creds" \
        --region us-east-1 >>"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        "$NEW/ahilite-bench" http-load --endpoint "$EP" --access-key "$AK" --secret-key "$SK" \
            --datastore "$DS" --mode get-datastore --connections 1 --requests 1 >/dev/null 2>&1 && return
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "the server did not start" >&2
    exit 1
}
stop() {
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
if [ -z "${NO_HTTP:-}" ]; then
    for n in $SIZES; do
        echo "over HTTP, $n CT instances: synthesizing and importing ..." >&2
        rm -rf "$TMP/ct" "$TMP/data"
        mkdir -p "$TMP/ct"
        /usr/bin/python3 - "$TMP/ct" "$n" <<'EOF'
import os, sys
import pydicom
from pydicom.uid import generate_uid, ExplicitVRLittleEndian
out, n = sys.argv[1], int(sys.argv[2])
ds = pydicom.dcmread(os.path.join(os.path.dirname(pydicom.__file__), 'data', 'test_files',
                                  'CT_small.dcm'))
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.SeriesInstanceUID = generate_uid()
ds.Rows = ds.Columns = 16
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
for i in range(n):
    ds.PixelData = bytes(((i + k) * 7) & 0xFF for k in range(512))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.InstanceNumber = i + 1
    ds.save_as(os.path.join(out, '%06d.dcm' % i), write_like_original=False)
EOF
        "$NEW/ahilite" import --data-dir "$TMP/data" --create-datastore gzbench "$TMP/ct" >"$TMP/imp"
        DS=$(sed -n 's/^created data store \([0-9a-z]*\).*/\1/p' "$TMP/imp")
        SET=$(sed -n 's/^created image set \([0-9a-z]*\).*/\1/p' "$TMP/imp")
        [ -n "$DS" ] && [ -n "$SET" ] || { cat "$TMP/imp" >&2; exit 1; }
        for which in base new; do
            build=$OLD
            [ "$which" = new ] && build=$NEW
            serve "$build" "$TMP/data"
            LOAD=("$NEW/ahilite-bench" http-load --endpoint "$EP" --access-key "$AK"
                --secret-key "$SK" --datastore "$DS" --mode metadata --imagesets "$SET"
                --connections 1)
            # The first read after start, with curl (http-load reads the body once untimed first).
            curl -sS -o "$TMP/body-$which-$n.gz" -w '%{http_code} %{time_total}\n' -X POST \
                --aws-sigv4 "aws:amz:us-east-1:medical-imaging" --user "$AK:$SK" \
                "$EP/datastore/$DS/imageSet/$SET/getImageSetMetadata" >"$TMP/http-first-$which-$n"
            grep -q '^200 ' "$TMP/http-first-$which-$n" || { cat "$TMP/http-first-$which-$n" >&2; exit 1; }
            "${LOAD[@]}" --requests 10 >"$TMP/http-warm-$which-$n"
            stop
        done
        gzip -t "$TMP/body-new-$n.gz"
        zcat "$TMP/body-new-$n.gz" | cmp - <(zcat "$TMP/body-base-$n.gz")
        zcat "$TMP/body-new-$n.gz" | gzip -6 | wc -c >"$TMP/gzip6-$n"
        /usr/bin/python3 "$HERE/bench/metadata_gzip_alternatives.py" "$TMP/body-new-$n.gz" \
            >"$TMP/alternatives-$n"
    done
fi

# 4. The table.
/usr/bin/python3 - "$TMP" "$BASE_REV" "$NEW_REV" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "${NO_HTTP:-}" $SIZES <<'EOF'
import json, os, sys
tmp, base_rev, new_rev, load, no_http, sizes = sys.argv[1], sys.argv[2], sys.argv[3], \
    sys.argv[4], sys.argv[5], sys.argv[6:]
def j(name):
    return json.load(open(os.path.join(tmp, name)))
print('base %s, current %s, load average %s, nproc %d' % (base_rev, new_rev, load, os.cpu_count()))
for n in sizes:
    a, b = j('engine-base-%s' % n), j('engine-new-%s' % n)
    ra, rb = a['read'], b['read']
    out = {
        'instances': int(n), 'where': 'in process, synthetic', 'json_bytes': b['json_bytes'],
        'gzip6_bytes': rb['gzip6_bytes'],
        'base_bytes': ra['gzip_bytes'], 'base_vs_gzip6': round(ra['gzip_bytes'] / rb['gzip6_bytes'], 3),
        'new_bytes': rb['gzip_bytes'], 'new_vs_gzip6': rb['vs_gzip6'],
        'base_read_json_gb_s': ra['json_gb_per_s'],
        'new_first_read_json_gb_s': rb['first_json_gb_per_s'],
        'new_warm_read_json_gb_s': rb['json_gb_per_s'],
        'new_read_after_update_json_gb_s': rb['after_update_json_gb_per_s'],
        'base_update_median_ms': a['median_ms'], 'new_update_median_ms': b['median_ms'],
        'base_bytes_per_version': a['bytes_per_version'],
        'new_bytes_per_version': b['bytes_per_version'],
    }
    print(json.dumps(out))
    if no_http:
        continue
    g6 = int(open(os.path.join(tmp, 'gzip6-%s' % n)).read())
    row = {'instances': int(n), 'where': 'HTTP, CT headers', 'gzip6_bytes': g6}
    for which in ('base', 'new'):
        w = j('http-warm-%s-%s' % (which, n))
        first_ms = float(open(os.path.join(tmp, 'http-first-%s-%s' % (which, n))).read().split()[1]) * 1e3
        row['json_bytes'] = w['json_bytes']
        row[which + '_bytes'] = w['gzip_bytes']
        row[which + '_vs_gzip6'] = round(w['gzip_bytes'] / g6, 3)
        row[which + '_first_ms'] = round(first_ms, 2)
        row[which + '_first_json_gb_s'] = round(w['json_bytes'] / first_ms / 1e6, 3)
        row[which + '_warm_median_ms'] = w['median_ms']
        row[which + '_warm_json_gb_s'] = round(w['json_bytes'] / w['median_ms'] / 1e6, 3)
    print(json.dumps(row))
    for line in open(os.path.join(tmp, 'alternatives-%s' % n)):
        print(line.rstrip())
EOF
