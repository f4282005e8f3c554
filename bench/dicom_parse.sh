#!/usr/bin/env bash
# Benchmark: metadata parse speed of `ahilite dump --json-lines` against DCMTK's dcm2json.
#
# Synthesizes a 1,000-file series from one corpus file (pydicom, new SOPInstanceUID and
# InstanceNumber per file) in a temporary directory, then, pinned to one core:
#   - ahilite dump --json-lines over all files in one process (the metadata path: read, normalize,
#     serialize; pixel data located but never read),
#   - ahilite dump once per file (same process count as dcm2json, for a like-for-like figure),
#   - dcm2json once per file (it takes one file per run).
# Prints files/s for each, the ratios, and peak RSS (/usr/bin/time -v) for 100 and 1,000 files to
# show memory stays flat. Output goes to /dev/null; files are warmed in the page cache first.
#
# usage: bench/dicom_parse.sh [N_FILES] [SOURCE_FILE]      (env AHILITE_BIN, default build/ahilite)
set -euo pipefail

N=${1:-1000}
SRC=${2:-/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm}
HERE=$(cd "$(dirname "$0")/.." && pwd)
AHILITE=${AHILITE_BIN:-$HERE/build/ahilite}
CORE=${BENCH_CORE:-0}

for tool in /usr/bin/python3 dcm2json /usr/bin/time taskset; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
[ -x "$AHILITE" ] || { echo "no ahilite binary at $AHILITE (build first or set AHILITE_BIN)" >&2; exit 2; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

/usr/bin/python3 - "$SRC" "$TMP" "$N" <<'EOF'
import sys, pydicom
from pydicom.uid import generate_uid
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ds = pydicom.dcmread(src)
series = generate_uid()
ds.SeriesInstanceUID = series
for i in range(n):
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.InstanceNumber = i + 1
    ds.save_as("%s/%05d.dcm" % (out, i), write_like_original=True)
EOF

mapfile -t FILES < <(ls "$TMP"/*.dcm)
cat "${FILES[@]}" >/dev/null # page cache

# measure LABEL CMD...: wall seconds and CPU seconds (user+sys, children included) into
# WALL_<LABEL> / CPU_<LABEL>. The machine may be shared: CPU time is the per-core figure.
measure() {
    local label=$1
    shift
    /usr/bin/time -o "$TMP/time" -f "%e %U %S" "$@" >/dev/null 2>/dev/null
    read -r w u s <"$TMP/time"
    printf -v "WALL_$label" '%s' "$w"
    printf -v "CPU_$label" '%s' "$(python3 -c "print($u + $s)")"
}
rate() { python3 -c "print('%.0f' % ($N / max($1, 0.005)))"; }

export AHILITE CORE
# 1) ahilite, one process for all files (the metadata path)
measure ahl taskset -c "$CORE" "$AHILITE" dump --json-lines "${FILES[@]}"
# sanity: one document per file
lines=$("$AHILITE" dump --json-lines "${FILES[@]}" | wc -l)
[ "$lines" -eq "$N" ] || { echo "expected $N documents, got $lines" >&2; exit 1; }
# 2) ahilite, one process per file (like-for-like with dcm2json's process count)
measure ahlproc bash -c 'for f in "$@"; do taskset -c "$CORE" "$AHILITE" dump "$f"; done' _ "${FILES[@]}"
# 3) dcm2json, one process per file (its only mode)
measure dcm bash -c 'for f in "$@"; do taskset -c "$CORE" dcm2json "$f"; done' _ "${FILES[@]}"

peak_rss() { # KB
    /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}'
}
rss_100=$(peak_rss "$AHILITE" dump --json-lines "${FILES[@]:0:100}")
rss_all=$(peak_rss "$AHILITE" dump --json-lines "${FILES[@]}")
rss_dcm=$(peak_rss dcm2json "${FILES[0]}")

size=$(stat -c %s "${FILES[0]}")
ratio() { python3 -c "print('%.1fx' % (max($2, 0.005) / max($1, 0.005)))"; }
echo "dicom_parse: $N files of $size bytes from $(basename "$SRC"), pinned to cpu $CORE, $(nproc) cpus"
echo "                                          files/s wall   files/s per CPU-second"
printf "  %-38s %14s   %22s\n" "ahilite dump --json-lines (1 process)" "$(rate "$WALL_ahl")" "$(rate "$CPU_ahl")"
printf "  %-38s %14s   %22s\n" "ahilite dump (1 process per file)" "$(rate "$WALL_ahlproc")" "$(rate "$CPU_ahlproc")"
printf "  %-38s %14s   %22s\n" "dcm2json (1 process per file)" "$(rate "$WALL_dcm")" "$(rate "$CPU_dcm")"
echo "  ratio ahilite (1 process) / dcm2json:  $(ratio "$WALL_ahl" "$WALL_dcm") wall, $(ratio "$CPU_ahl" "$CPU_dcm") CPU"
echo "  ratio ahilite (per file) / dcm2json:   $(ratio "$WALL_ahlproc" "$WALL_dcm") wall, $(ratio "$CPU_ahlproc" "$CPU_dcm") CPU"
echo "  peak RSS ahilite: ${rss_100} KB for 100 files, ${rss_all} KB for $N files; dcm2json ${rss_dcm} KB per file"
echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
