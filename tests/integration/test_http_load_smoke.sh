#!/usr/bin/env bash
# Keeps `ahilite-bench http-load` (bench/http_load.c, the HTTP benchmark's load generator)
# correct: imports four one-instance studies with frames into a fresh data directory, starts
# `ahilite serve`, and sends a few hundred signed requests of every mode over 4 connections with
# the ahilite-bench built beside ahilite. Checks correctness only, never timings: every response is 200, every update
# advances its set's version by exactly one (http-load --check), the counts add up, and the
# server's log shows each acknowledged update once.
#
# Environment (set by CTest): AHILITE_BIN, AHILITE_SRC, AHILITE_BUILD.
set -euo pipefail

SRC=${AHILITE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${AHILITE_BIN:-$SRC/build/ahilite}
BUILD=${AHILITE_BUILD:-$(dirname "$BIN")}
BENCH=$BUILD/ahilite-bench
SAMPLE=/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm
[ -x "$BENCH" ] || { echo "FAIL: no ahilite-bench in $BUILD (cmake --build $BUILD)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/ahilite-load-smoke-XXXXXX)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    [ -f "$TMP/server.log" ] && tail -20 "$TMP/server.log" >&2
    exit 1
}

/usr/bin/python3 - "$SAMPLE" "$TMP" <<'EOF'
import os, sys
import pydicom
from pydicom.uid import generate_uid
src, out = sys.argv[1], sys.argv[2]
for k in range(4):
    ds = pydicom.dcmread(src)
    ds.PatientID = "SMOKE%d" % k
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    os.makedirs("%s/in%d" % (out, k))
    ds.save_as("%s/in%d/0.dcm" % (out, k))
EOF
DATA=$TMP/data
"$BIN" import --data-dir "$DATA" --create-datastore smoke "$TMP"/in? >"$TMP/import" ||
    fail "import: $(cat "$TMP/import")"
DS=$(sed -n 's/^created data store \([0-9a-z]*\).*/\1/p' "$TMP/import")
SETS=$(sed -n 's/^created image set \([0-9a-z]*\).*/\1/p' "$TMP/import" | paste -sd, -)
[ "$(echo "$SETS" | tr , '\n' | wc -l)" = 4 ] || fail "expected 4 image sets: $(cat "$TMP/import")"

AK=AKIALOADSMOKE0000001
SK=load/smoke/secret/key/00000000000000000
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$AK" "$SK" >"$TMP/creds"
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --credentials "$TMP/creds" \
    --region us-east-1 --workers 2 --http-threads 2 >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
LOAD=("$BENCH" http-load --endpoint "http://127.0.0.1:$PORT" --access-key "$AK" --secret-key "$SK"
      --datastore "$DS")
for _ in $(seq 100); do
    "${LOAD[@]}" --mode get-datastore --connections 1 --requests 1 >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited"
    sleep 0.1
done

# ok_count MODE-OUTPUT: the "ok" figure of an http-load JSON line.
ok_count() { sed -n 's/.*"ok":\([0-9]*\).*/\1/p' "$1"; }

"${LOAD[@]}" --mode get-datastore --connections 4 --requests 200 --check >"$TMP/r1" ||
    fail "get-datastore: $(cat "$TMP/r1")"
[ "$(ok_count "$TMP/r1")" = 200 ] || fail "get-datastore: $(cat "$TMP/r1")"

"${LOAD[@]}" --mode update --imagesets "$SETS" --connections 4 --requests 400 --check >"$TMP/r2" ||
    fail "update: $(cat "$TMP/r2")"
[ "$(ok_count "$TMP/r2")" = 400 ] || fail "update: $(cat "$TMP/r2")"
grep -q '"conflicts":0,' "$TMP/r2" || fail "update conflicts: $(cat "$TMP/r2")"

# The first set's document holds the name its connection wrote last (its 100th update, N99).
"${LOAD[@]}" --mode metadata --imagesets "${SETS%%,*}" --connections 2 --requests 20 --check \
    --dump-metadata "$TMP/meta.json.gz" >"$TMP/r3" || fail "metadata: $(cat "$TMP/r3")"
[ "$(ok_count "$TMP/r3")" = 20 ] || fail "metadata: $(cat "$TMP/r3")"
FRAMES=$(/usr/bin/python3 - "$TMP/meta.json.gz" "${SETS%%,*}" <<'EOF'
import gzip, json, sys
doc = json.load(gzip.open(sys.argv[1]))
name = doc['Patient']['DICOM']['PatientName']
assert name.startswith('Bench^C') and name.endswith('^N99'), name
ids = [f['ID'] for s in doc['Study']['Series'].values() for i in s['Instances'].values()
       for f in i.get('ImageFrames', [])]
assert ids, 'no frames'
print(','.join('%s:%s' % (sys.argv[2], i) for i in ids))
EOF
) || fail "metadata after the updates"
"${LOAD[@]}" --mode frames --frames "$FRAMES" --connections 4 --requests 40 --check >"$TMP/r4" ||
    fail "frames: $(cat "$TMP/r4")"
[ "$(ok_count "$TMP/r4")" = 40 ] || fail "frames: $(cat "$TMP/r4")"

# One more checked update per set starts from the version GetImageSet reports; the server's log
# shows every update acknowledged once.
for set in ${SETS//,/ }; do
    "${LOAD[@]}" --mode update --imagesets "$set" --connections 1 --requests 1 --check >"$TMP/r5" ||
        fail "one more update of $set: $(cat "$TMP/r5")"
done
N=$(grep -c 'UpdateImageSetMetadata 200' "$TMP/server.log" || true)
[ "$N" = 404 ] || fail "server logged $N successful updates, want 404"
# Every request got its own well-formed (version 4 UUID) request id, logged before the client's
# address.
grep -oE ' [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12} [0-9a-f.:]+$' \
    "$TMP/server.log" | awk '{print $1}' >"$TMP/ids" || true
[ "$(wc -l <"$TMP/ids")" -ge 664 ] || fail "only $(wc -l <"$TMP/ids") request ids logged"
[ -z "$(sort "$TMP/ids" | uniq -d)" ] || fail "repeated request ids"
echo "ok: http-load smoke (get-datastore 200, update 400+4, metadata 20, frames 40)"
