#!/usr/bin/env bash
# Benchmark: `ahilite serve` under load over HTTP, with SigV4 on every request.
#
# One command. It builds ahilite and ahilite-bench (into a temporary directory, or uses
# AHILITE_BUILD=DIR if given, building ahilite-bench there), whose `http-load` is the load
# generator (bench/http_load.c), synthesizes DICOM files with pydicom and imports them with
# `ahilite import` into a temporary data directory:
#   - one CT series of N instances (default 10,000) with a 16x16 frame each: GetImageSetMetadata,
#     GetImageFrame on a large set, and an update on a large set;
#   - 16 one-instance studies: one image set per connection for UpdateImageSetMetadata;
#   - one series of 16 native 256x256 16-bit frames (HTJ2K after import): GetImageFrame;
# then starts `ahilite serve` on a free loopback port and runs http-load, 8 keep-alive connections
# each, for T seconds per mode:
#   get-datastore  GetDatastore: the server's floor (auth, routing, one store read), the baseline;
#   update         UpdateImageSetMetadata of Patient.PatientName, each a new version, over 8
#                  connections (run "update"), then over 1, 2, 4 and 16 (runs update_c1 ...
#                  update_c16, each connection on its own set: the curve); and once more with 1
#                  connection on the N-instance set (cost independent of set size);
#   metadata       GetImageSetMetadata of the N-instance set (gzip on the wire; the rate is
#                  JSON-equivalent bytes per second), with 8 connections and with 1;
#   frames         GetImageFrame: the 16 256x256 frames, then 1,000 frames of the N-instance set.
# Each run prints http-load's JSON line plus the server's CPU seconds during the run (utime+stime
# from /proc), so rates per server CPU-second can be read off on a shared machine; the client runs
# on the same cores. Then the engine alone (`ahilite-bench update`, in process, one thread: its
# median update time gives the single-writer ceiling). At the end: the ratios against the baselines.
#
# usage: bench/http.sh [N_INSTANCES] [SECONDS]   (defaults 10000 and 5)
# env: AHILITE_BUILD=DIR  use this build (its ahilite as it is; ahilite-bench is brought up to
#                         date) instead of building one;
#      HTTP_THREADS=N     the server's --http-threads (default: its own, 4 per CPU, at least 8);
#      COMMIT_DELAY_US=N  the server's --commit-delay-us (default: its own, 1000; 0 to compare);
#      SERVE_ARGS="..."   more options for `ahilite serve` (e.g. --events-file PATH, to measure
#                         what delivering events costs: bench/RESULTS.md);
#      RUNS="NAME ..."    only these runs (names as for PERF_RUN; default all), e.g. RUNS="get_datastore
#                         update update_c1 update_c16" for the update curve alone;
#      PERF_RUN=NAME      record the server with `perf record` during that run (get_datastore,
#                         update, update_c1, update_c2, update_c4, update_c16, update_big_1,
#                         metadata_8, metadata_1, frames, frames_large_set)
#                         into PERF_OUT (default perf-NAME.data); PERF_CALLGRAPH=fp|dwarf,SIZE
#                         picks the unwinder (dwarf works without frame pointers); then
#                         bench/perf_split.py PERF_OUT [CPU_US] splits it into request stages.
set -euo pipefail

N=${1:-10000}
T=${2:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/ahilite-http-bench-XXXXXX)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        # The store's group commit figures over the whole run, logged as the server stops.
        grep -o 'store: [0-9]* commits of .*' "$TMP/server.log" >&2 || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

for tool in /usr/bin/python3 cmake ninja; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done

# 1. Build.
if [ -n "${AHILITE_BUILD:-}" ]; then
    BUILD=$AHILITE_BUILD
    cmake --build "$BUILD" -j2 --target ahilite-bench >/dev/null
else
    BUILD=$TMP/build
    echo "building ahilite and ahilite-bench in $BUILD ..." >&2
    cmake --preset default -S "$HERE" -B "$BUILD" >/dev/null
    cmake --build "$BUILD" -j2 --target ahilite ahilite-bench >/dev/null
fi
[ -x "$BUILD/ahilite" ] && [ -x "$BUILD/ahilite-bench" ] || { echo "no ahilite in $BUILD" >&2; exit 2; }
AHILITE=$BUILD/ahilite

# 2. Data.
echo "synthesizing $N + 16 + 16 instances ..." >&2
mkdir -p "$TMP/big" "$TMP/frames"
/usr/bin/python3 - "$TMP" "$N" <<'EOF'
import math, os, sys
import pydicom
from pydicom.uid import generate_uid, ExplicitVRLittleEndian
out, n = sys.argv[1], int(sys.argv[2])
src = os.path.join(os.path.dirname(pydicom.__file__), 'data', 'test_files', 'CT_small.dcm')

# The large series: CT_small's header with a tiny 16x16 frame each, so the set lists N frames.
ds = pydicom.dcmread(src)
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.SeriesInstanceUID = generate_uid()
ds.Rows, ds.Columns = 16, 16
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
for i in range(n):
    ds.PixelData = bytes((i * 7 + k) & 0xFF if k % 2 == 0 else (i >> 8) & 0x0F for k in range(512))
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.InstanceNumber = i + 1
    ds.save_as("%s/big/%05d.dcm" % (out, i), write_like_original=False)

del ds.PixelData
for k in range(16):  # a study each: one image set per connection
    os.makedirs("%s/upd%02d" % (out, k))
    ds.PatientID = "HTTPBENCH%d" % k
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.save_as("%s/upd%02d/0.dcm" % (out, k), write_like_original=True)

ds = pydicom.dcmread(src)
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.StudyInstanceUID = generate_uid()
ds.SeriesInstanceUID = generate_uid()
W = H = 256
ds.Rows, ds.Columns = H, W
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
row = [int(1000 + 400 * math.sin(x / 9.0)) for x in range(W)]
for i in range(16):
    px = bytearray()
    for y in range(H):
        for x in range(W):
            v = (row[x] + 7 * y + 13 * i + (x * y) % 17) & 0xFFF
            px += bytes((v & 0xFF, v >> 8))
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.InstanceNumber = i + 1
    ds.PixelData = bytes(px)
    ds.save_as("%s/frames/%02d.dcm" % (out, i), write_like_original=False)
EOF

# 3. Import. The first call creates the data store; each call prints the sets it created.
DATA=$TMP/data
echo "importing ..." >&2
"$AHILITE" import --data-dir "$DATA" --create-datastore httpbench "$TMP/big" >"$TMP/imp-big"
DS=$(sed -n 's/^created data store \([0-9a-z]*\).*/\1/p' "$TMP/imp-big")
BIG=$(sed -n 's/^created image set \([0-9a-z]*\).*/\1/p' "$TMP/imp-big")
"$AHILITE" import --data-dir "$DATA" --datastore-id "$DS" "$TMP"/upd?? >"$TMP/imp-upd"
UPD=$(sed -n 's/^created image set \([0-9a-z]*\).*/\1/p' "$TMP/imp-upd" | paste -sd, -)
"$AHILITE" import --data-dir "$DATA" --datastore-id "$DS" "$TMP/frames" >"$TMP/imp-frames"
FRS=$(sed -n 's/^created image set \([0-9a-z]*\).*/\1/p' "$TMP/imp-frames")
[ -n "$DS" ] && [ -n "$BIG" ] && [ -n "$FRS" ] && [ "$(echo "$UPD" | tr , '\n' | wc -l)" = 16 ] || {
    cat "$TMP"/imp-* >&2
    echo "import did not make the expected image sets" >&2
    exit 1
}

# 4. Serve.
AK=AKIAHTTPBENCH0000001
SK=http/bench/secret/key/000000000000000000
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$AK" "$SK" >"$TMP/creds"
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
EP=http://127.0.0.1:$PORT
"$AHILITE" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --credentials "$TMP/creds" \
    --region us-east-1 ${HTTP_THREADS:+--http-threads "$HTTP_THREADS"} \
    ${COMMIT_DELAY_US:+--commit-delay-us "$COMMIT_DELAY_US"} ${SERVE_ARGS:-} >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
LOAD=("$BUILD/ahilite-bench" http-load --endpoint "$EP" --access-key "$AK" --secret-key "$SK" --datastore "$DS")
for _ in $(seq 100); do
    "${LOAD[@]}" --mode get-datastore --connections 1 --requests 1 >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; exit 1; }
    sleep 0.1
done

# The frames' ids, from the small set's metadata (gzip JSON).
FRAMES=$("${LOAD[@]}" --mode metadata --imagesets "$FRS" --connections 1 --requests 1 \
    --dump-metadata "$TMP/frames.json.gz" >/dev/null && /usr/bin/python3 - "$TMP/frames.json.gz" "$FRS" <<'EOF'
import gzip, json, sys
doc = json.load(gzip.open(sys.argv[1]))
ids = []
for series in doc['Study']['Series'].values():
    for inst in series['Instances'].values():
        ids += [f['ID'] for f in inst.get('ImageFrames', [])]
print(','.join('%s:%s' % (sys.argv[2], i) for i in ids))
EOF
)
[ -n "$FRAMES" ] || { echo "no frames found in the frames set" >&2; exit 1; }
# And 1,000 of the large set's frames, spread over it.
BIGFRAMES=$("${LOAD[@]}" --mode metadata --imagesets "$BIG" --connections 1 --requests 1 \
    --dump-metadata "$TMP/big.json.gz" >/dev/null && /usr/bin/python3 - "$TMP/big.json.gz" "$BIG" <<'EOF'
import gzip, json, sys
doc = json.load(gzip.open(sys.argv[1]))
ids = [f['ID'] for s in doc['Study']['Series'].values() for i in s['Instances'].values()
       for f in i.get('ImageFrames', [])]
step = max(1, len(ids) // 1000)
print(','.join('%s:%s' % (sys.argv[2], i) for i in ids[::step][:1000]))
EOF
)
[ -n "$BIGFRAMES" ] || { echo "no frames found in the large set" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
HZ=$(getconf CLK_TCK)
# run NAME ARGS...: one http-load run; prints its JSON line with the server's CPU seconds added.
run() {
    local name=$1
    shift
    case " ${RUNS:-$name} " in *" $name "*) ;; *) return 0 ;; esac
    local t0 t1 perf_pid=
    if [ "${PERF_RUN:-}" = "$name" ]; then
        perf record -q -F 499 --call-graph ${PERF_CALLGRAPH:-fp} -p "$SERVER_PID" -o "${PERF_OUT:-perf-$name.data}" 2>/dev/null &
        perf_pid=$!
        sleep 0.5
    fi
    t0=$(cpu_ticks)
    "${LOAD[@]}" "$@" >"$TMP/run-$name" || { cat "$TMP/run-$name" >&2; echo "$name failed" >&2; exit 1; }
    t1=$(cpu_ticks)
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
    fi
    /usr/bin/python3 -c "
import json, sys
r = json.load(open('$TMP/run-$name'))
r['run'] = '$name'
r['server_cpu_s'] = round(($t1 - $t0) / $HZ, 2)
r['per_server_cpu_s'] = round(r['ok'] / max(r['server_cpu_s'], 0.01), 1)
print(json.dumps(r))" | tee -a "$TMP/results"
}

echo "running: $T s per mode, 8 connections (nproc $(nproc)) ..." >&2
run get_datastore --mode get-datastore --connections 8 --seconds "$T"
run update --mode update --imagesets "$UPD" --connections 8 --seconds "$T"
for c in 1 2 4 16; do
    run update_c$c --mode update --imagesets "$UPD" --connections $c --seconds "$T"
done
run update_big_1 --mode update --imagesets "$BIG" --connections 1 --seconds "$T"
run metadata_8 --mode metadata --imagesets "$BIG" --connections 8 --seconds "$T"
run metadata_1 --mode metadata --imagesets "$BIG" --connections 1 --seconds "$T"
run frames --mode frames --frames "$FRAMES" --connections 8 --seconds "$T"
run frames_large_set --mode frames --frames "$BIGFRAMES" --connections 8 --seconds "$T"

if [ -n "${RUNS:-}" ]; then
    exit 0 # a partial run: no summary
fi
# The engine alone, in one process without HTTP (ahilite-bench update, one thread): the ceiling the
# HTTP figures are held against.
"$BUILD/ahilite-bench" update --instances 100 --updates 3000 --naive-updates 1 >"$TMP/engine"
ENGINE_MEDIAN=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median_ms"])' "$TMP/engine")
echo "{\"run\": \"engine_in_process\", \"median_ms\": $ENGINE_MEDIAN}" | tee -a "$TMP/results"

/usr/bin/python3 - "$TMP/results" "$N" <<'EOF'
import json, sys
runs = {r['run']: r for r in map(json.loads, open(sys.argv[1]))}
base, upd = runs['get_datastore'], runs['update']
print(json.dumps({
    'summary': 'http', 'instances': int(sys.argv[2]),
    'get_datastore_per_s': base['per_s'],
    'updates_per_s': upd['per_s'], 'update_median_ms': upd['median_ms'],
    'update_p99_ms': upd['p99_ms'], 'update_conflicts': upd['conflicts'],
    'update_over_get_datastore': round(upd['per_s'] / base['per_s'], 3),
    'update_over_get_datastore_per_server_cpu': round(
        upd['per_server_cpu_s'] / base['per_server_cpu_s'], 3),
    'engine_in_process_median_ms': runs['engine_in_process']['median_ms'],
    'update_over_engine_one_thread': round(
        upd['per_s'] * runs['engine_in_process']['median_ms'] / 1000, 3),
    'updates_per_s_by_connections': {c: runs['update_c%d' % c if c != 8 else 'update']['per_s']
                                     for c in (1, 2, 4, 8, 16)},
    'update_large_set_1conn_median_ms': runs['update_big_1']['median_ms'],
    'update_large_set_1conn_per_s': runs['update_big_1']['per_s'],
    'metadata_json_mb_s_8conn': runs['metadata_8']['json_mb_s'],
    'metadata_json_mb_s_1conn': runs['metadata_1']['json_mb_s'],
    'metadata_json_bytes': runs['metadata_8']['json_bytes'],
    'metadata_gzip_bytes': runs['metadata_8']['gzip_bytes'],
    'frames_per_s': runs['frames']['per_s'], 'frame_mb_s': runs['frames']['frame_mb_s'],
    'frames_large_set_per_s': runs['frames_large_set']['per_s'],
    'frames_large_set_median_ms': runs['frames_large_set']['median_ms'],
}))
EOF
