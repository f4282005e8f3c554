#!/usr/bin/env bash
# HTJ2K lossless encode throughput: ahilite's frames module (OpenJPH through our shim) against
# ojph_compress on the same synthesized frames in the same run, in MPixel/s per core (CPU time, so
# the figure holds on a shared machine). Also reports the full per-frame import cost (decode +
# encode + bit-exact verification + per-level checksums), and the same two for JPEG 2000 lossless
# (OpenJPEG), what a data store created with losslessStorageFormat JPEG_2000_LOSSLESS pays. Then
# both formats on the pydicom sample files through `ahilite frames --lossless-storage-format`
# (whole pipeline per file, in CPU time of the process, and the stored bytes).
#
# Our side is `ahilite-bench frames` (bench/frames.c), built with CMake in the build directory.
#
# Usage: bench/frames.sh            (N=16 frames of 512x512, 12 bits stored; env N, W, H, BUILD)
# env: BUILD (or AHILITE_BUILD)=DIR  the build directory (default build/; configured with the
#      default preset when it does not exist yet).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-${AHILITE_BUILD:-build}}
N=${N:-16}
W=${W:-512}
H=${H:-512}
[ -d "$BUILD" ] || cmake --preset default -B "$BUILD" >/dev/null
cmake --build "$BUILD" -j2 --target ahilite-bench >/dev/null
tmp=$(mktemp -d /tmp/ahl-frames-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
PIN=""
command -v taskset >/dev/null && PIN="taskset -c 0"
$PIN "$BUILD/ahilite-bench" frames "$N" "$W" "$H" "$tmp" > "$tmp/ours.txt"

python3 - "$tmp" "$N" "$W" "$H" "$PIN" <<'PY'
import os, re, resource, subprocess, sys
tmp, n, w, h, pin = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ours = dict(l.split() for l in open(os.path.join(tmp, "ours.txt")))
pre = pin.split() if pin else []
args = ["-num_decomps", "5", "-reversible", "true", "-block_size", "{64,64}", "-prog_order", "RPCL"]

def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

# Process start-up and PGM reading cost, measured on a 1x1 image, is subtracted per run.
with open(os.path.join(tmp, "one.pgm"), "wb") as f:
    f.write(b"P5\n1 1\n4095\n\x00\x01")
t0 = children_cpu()
for _ in range(5):
    subprocess.run(pre + ["ojph_compress", "-i", os.path.join(tmp, "one.pgm"), "-o",
                          os.path.join(tmp, "one.j2c")] + args, check=True, capture_output=True)
startup = (children_cpu() - t0) / 5

t0 = children_cpu()
elapsed = 0.0
size = 0
for k in range(n):
    src = os.path.join(tmp, "frame%03d.pgm" % k)
    dst = os.path.join(tmp, "frame%03d.j2c" % k)
    r = subprocess.run(pre + ["ojph_compress", "-i", src, "-o", dst] + args, check=True,
                       capture_output=True, text=True)
    m = re.search(r"Elapsed time = ([0-9.]+)", r.stdout + r.stderr)
    elapsed += float(m.group(1)) if m else 0.0
    size += os.path.getsize(dst)
cpu = children_cpu() - t0
mpix = w * h * n / 1e6
ojph_cpu = max(cpu - startup * n, 1e-9)
ours_rate = float(ours["encode_mpix_per_s"])
print("HTJ2K lossless encode, %d frames of %dx%d, 12 bits stored in 16 (%.1f MPixel)" % (n, w, h, mpix))
print("  ahilite encode (ahl_htj2k_encode)   %8.1f MPixel/s per core  (%.0f bytes/frame)" % (
    ours_rate, float(ours["bytes_per_frame"])))
print("  ojph_compress, CPU minus start-up   %8.1f MPixel/s per core  (%.0f bytes/frame)" % (
    mpix / ojph_cpu, size / n))
print("  ojph_compress, its own timer        %8.1f MPixel/s (wall, encode + file I/O)" % (
    mpix / max(elapsed, 1e-9)))
print("  ojph_compress start-up per run      %8.1f ms CPU" % (startup * 1000))
print("  ratio ahilite / ojph_compress (CPU) %8.2f" % (ours_rate / (mpix / ojph_cpu)))
print("  ahilite full import per frame       %8.1f MPixel/s per core (decode, encode, verify, checksums at %s)" % (
    float(ours["import_mpix_per_s"]), "all levels"))
print("JPEG 2000 lossless (OpenJPEG), the same frames")
print("  ahilite encode (ahl_j2k_encode)     %8.1f MPixel/s per core  (%.0f bytes/frame, %.2fx HTJ2K's)" % (
    float(ours["j2k_encode_mpix_per_s"]), float(ours["j2k_bytes_per_frame"]),
    float(ours["j2k_bytes_per_frame"]) / float(ours["bytes_per_frame"])))
print("  ahilite full import per frame       %8.1f MPixel/s per core (decode, encode, OpenJPEG verify, checksums)" % (
    float(ours["j2k_import_mpix_per_s"])))
print("  ratio JPEG 2000 / HTJ2K encode      %8.2f (speed)" % (
    float(ours["j2k_encode_mpix_per_s"]) / ours_rate))
PY

# The sample files: every pixel-bearing file of pydicom's test data that ahilite stores losslessly,
# through `ahilite frames` in each format (the files whose frames are kept as they are in both
# formats are left out: they cost the same).
SAMPLES=${SAMPLES:-/usr/lib/python3/dist-packages/pydicom/data/test_files}
if [ -d "$SAMPLES" ]; then
  python3 - "$BUILD/ahilite" "$SAMPLES" "$PIN" <<'PY'
import glob, json, os, resource, subprocess, sys
ahilite, samples, pin = sys.argv[1], sys.argv[2], sys.argv[3]
pre = pin.split() if pin else []
files = []
for p in sorted(glob.glob(samples + "/*.dcm")):
    r = subprocess.run([ahilite, "frames", p], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        d = json.loads(line)
        if d.get("StoredTransferSyntaxUID") == "1.2.840.10008.1.2.4.202":
            files.append(p)
def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
# Process start-up and reading a file, measured on one without pixel data, is subtracted per run.
t0 = cpu()
for _ in range(10):
    subprocess.run(pre + [ahilite, "frames", samples + "/rtplan.dcm"], capture_output=True)
startup = (cpu() - t0) / 10
res = {}
for fmt in ("HTJ2K", "JPEG_2000_LOSSLESS"):
    t0, size, frames, pixels = cpu(), 0, 0, 0
    for rep in range(3):
        for p in files:
            r = subprocess.run(pre + [ahilite, "frames", "--lossless-storage-format", fmt, p],
                               capture_output=True, text=True, check=True)
            if rep == 0:
                for line in r.stdout.splitlines():
                    for f in json.loads(line).get("ImageFrames", []):
                        size += f["FrameSizeInBytes"]
                        lv = f["PixelDataChecksumFromBaseToFullResolution"][-1]
                        frames += 1
                        pixels += lv["Width"] * lv["Height"]
    res[fmt] = ((cpu() - t0) / 3 - startup * len(files), size, frames, pixels)
h, j = res["HTJ2K"], res["JPEG_2000_LOSSLESS"]
print("pydicom sample files stored losslessly: %d files, %d frames, %.1f MPixel" % (
    len(files), h[2], h[3] / 1e6))
for name, (t, size, _, _) in (("HTJ2K", h), ("JPEG 2000 lossless", j)):
    print("  %-20s %7.3f s CPU for all (ahilite frames, minus %.1f ms start-up per file)  %9d bytes stored" % (
        name, t, startup * 1000, size))
print("  JPEG 2000 / HTJ2K   %7.2fx CPU  %9.3fx bytes" % (j[0] / h[0], j[1] / h[1]))
PY
fi
