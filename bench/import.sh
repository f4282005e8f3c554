#!/usr/bin/env bash
# Benchmark: `ahilite import` throughput and peak memory.
#
#   1. metadata only: a synthesized N-instance series (pydicom's CT_small.dcm header, pixel data
#      removed, new SOPInstanceUID/InstanceNumber per file), imported into a fresh data directory
#      with 2 workers: instances/s (wall and per CPU-second) and peak RSS;
#   2. with frames: a synthesized M-instance 512x512 16-bit (12 bits stored) CT series, a smooth
#      phantom with noise that differs per slice, native explicit VR LE, so every frame is decoded,
#      encoded as HTJ2K lossless, verified and stored: instances/s and peak RSS.
# Peak RSS comes from /usr/bin/time -v ("Maximum resident set size"). Files are warmed in the page
# cache first. Prints one JSON line per run.
#
# usage: bench/import.sh [N_METADATA] [N_FRAMES]   (defaults 1000 and 200; env AHILITE_BIN,
#        WORKERS=2)
set -euo pipefail

N=${1:-1000}
M=${2:-200}
WORKERS=${WORKERS:-2}
HERE=$(cd "$(dirname "$0")/.." && pwd)
AHILITE=${AHILITE_BIN:-$HERE/build/ahilite}
SRC=/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm

for tool in /usr/bin/python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
[ -x "$AHILITE" ] || { echo "no ahilite binary at $AHILITE (build first or set AHILITE_BIN)" >&2; exit 2; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/meta" "$TMP/frames"

/usr/bin/python3 - "$SRC" "$TMP" "$N" "$M" <<'EOF'
import array, math, random, sys
import pydicom
from pydicom.uid import generate_uid, ExplicitVRLittleEndian
src, out, n, m = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

ds = pydicom.dcmread(src)
del ds.PixelData
ds.SeriesInstanceUID = generate_uid()
for i in range(n):
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.InstanceNumber = i + 1
    ds.save_as("%s/meta/%05d.dcm" % (out, i), write_like_original=True)

# A 512x512 phantom: a body ellipse with two inner structures, values in 12 bits.
W = H = 512
rnd = random.Random(7)
base = array.array('H', bytes(W * H * 2))
for y in range(H):
    for x in range(W):
        dx, dy = (x - 256) / 220.0, (y - 256) / 180.0
        v = 24
        if dx * dx + dy * dy < 1:
            v = 1040 + int(30 * math.sin(x / 17.0) * math.cos(y / 23.0))
            if (x - 180) ** 2 + (y - 240) ** 2 < 40 ** 2:
                v = 1800
            if (x - 330) ** 2 + (y - 270) ** 2 < 25 ** 2:
                v = 300
        base[y * W + x] = v
noise = [rnd.randint(-12, 12) for _ in range(W * 8)]
ds = pydicom.dcmread(src)
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.SeriesInstanceUID = generate_uid()
ds.Rows, ds.Columns = H, W
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
for i in range(m):
    img = array.array('H', base)
    off = (i * 977) % len(noise)
    for k in range(0, W * H, 7):  # slice-dependent noise, cheap to make
        img[k] = max(0, min(4095, img[k] + noise[(k + off) % len(noise)]))
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.InstanceNumber = i + 1
    ds.PixelData = img.tobytes()
    ds.save_as("%s/frames/%05d.dcm" % (out, i), write_like_original=False)
EOF

cat "$TMP"/meta/* "$TMP"/frames/* >/dev/null # page cache

# run LABEL COUNT DIR: imports DIR into a fresh data directory and prints a JSON line.
run() {
    local label=$1 count=$2 dir=$3 data="$TMP/data-$1"
    /usr/bin/time -o "$TMP/time" -f "%e %U %S %M" "$AHILITE" import --data-dir "$data" \
        --create-datastore bench --workers "$WORKERS" "$dir" >"$TMP/out" 2>/dev/null || {
        cat "$TMP/out" >&2
        echo "import failed" >&2
        exit 1
    }
    read -r wall user sys rss <"$TMP/time"
    grep -q "^imported $count files" "$TMP/out" || { cat "$TMP/out" >&2; exit 1; }
    python3 -c "
import json
wall, cpu, rss = $wall, $user + $sys, $rss
print(json.dumps({'run': '$label', 'instances': $count, 'workers': $WORKERS,
                  'wall_s': wall, 'cpu_s': round(cpu, 2),
                  'instances_per_s': round($count / max(wall, 0.001), 1),
                  'instances_per_cpu_s': round($count / max(cpu, 0.001), 1),
                  'peak_rss_mb': round(rss / 1024, 1)}))"
}

run metadata_only "$N" "$TMP/meta"
run with_frames_512x512x16 "$M" "$TMP/frames"
