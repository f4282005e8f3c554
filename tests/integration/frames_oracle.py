"""The pixel oracle shared by the frames suites: the source pixels of a DICOM file's frames,
decoded without ahilite, in the canonical form frames.h defines (little-endian samples, colour
interleaved, masked or sign-extended to BitsStored), and an independent decode of stored
JPEG 2000 / HTJ2K frames.

- oracle_pixels(): DCMTK (dcmdjpeg, dcmdrle, dcmdjpls, dcmconv +te) rewrites the file as
  uncompressed explicit VR little endian and pydicom (the system /usr/bin/python3) hands out the
  raw frame bytes; JPEG 2000 sources, which DCMTK cannot decode, go through opj_decompress.
- oracle_info(..., "fragments"): each frame's encapsulated bytes, as pydicom splits them.
- opj_decode(): opj_decompress (and opj_dump for the geometry) on a codestream; ojph_decode():
  OpenJPH's ojph_expand on an HTJ2K codestream, a second decoder.
- make_fixtures(): the syntaxes and layouts the packaged corpus lacks, made with DCMTK's encoders
  (and, for HTJ2K sources, with `ahilite frames`).

Used by test_frames_corpus.py (the `ahilite frames` pipeline), test_frames_clients.py (frames
through boto3) and, through `frames_oracle.py expect|decode` (see cli()), by the JS SDK test.
"""
import glob
import hashlib
import json
import os
import subprocess
import sys
import zlib

SRC = os.environ.get("AHILITE_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("AHILITE_BIN") or os.path.join(SRC, "build", "ahilite")
SYS_PY = "/usr/bin/python3"
PYD = "/usr/lib/python3/dist-packages/pydicom/data"

CORPUS = sorted(
    glob.glob(PYD + "/test_files/*.dcm")
    + glob.glob(PYD + "/test_files/dicomdirtests/**/*", recursive=True)
    + [p for p in [
        "/usr/share/octave/packages/dicom-0.5.1/imdata/CT-MONO2-16-ankle.dcm",
        "/usr/share/octave/packages/dicom-0.5.1/imdata/US-PAL-8-10x-echo.dcm",
        "/usr/share/doc/libgdcm3.0/examples/00191113.dcm",
        "/usr/lib/python3/dist-packages/nibabel/nicom/tests/data/slicethickness_empty_string.dcm",
    ] if os.path.exists(p)])
CORPUS = [p for p in CORPUS if os.path.isfile(p) and not p.endswith("DICOMDIR")]


# Run under the system Python, which has pydicom: writes each frame's raw bytes of an
# uncompressed little-endian file (or the encapsulated fragments of a compressed one) and prints
# the Image Pixel module as JSON.
#
# "DatasetVRDiffers" is true when the data set is not encoded as its transfer syntax says
# (implicit VR under an explicit VR syntax or the reverse): pydicom reads such a file anyway,
# DCMTK does not, so oracle_pixels() has pydicom write it again first.
ORACLE = r'''
import json, re, sys, warnings, pydicom
from pydicom.encaps import generate_pixel_data_frame
path, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ds = pydicom.dcmread(path)
    ds.get("PixelData")  # pydicom reads lazily: the VR warning comes with the first element
vr_differs = any(re.search("Expected (ex|im)plicit VR, but found (ex|im)plicit VR", str(w.message))
                 for w in caught)
if "PixelData" not in ds:
    print(json.dumps({"skip": "no PixelData"})); sys.exit(0)
nf = int(ds.get("NumberOfFrames", 1) or 1)
info = {k: ds.get(k) for k in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated",
        "BitsStored", "PixelRepresentation", "PlanarConfiguration")}
info["PhotometricInterpretation"] = str(ds.get("PhotometricInterpretation", ""))
info["NumberOfFrames"] = nf
info["TransferSyntaxUID"] = str(ds.file_meta.TransferSyntaxUID)
info["DatasetVRDiffers"] = vr_differs
for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
    info[k] = str(ds.get(k, ""))
if mode == "fragments":
    for i, fr in enumerate(generate_pixel_data_frame(ds.PixelData, nf)):
        open("%s/%d" % (out, i), "wb").write(fr)
        info["frames_written"] = i + 1
else:
    open(out + "/native", "wb").write(ds.PixelData)
print(json.dumps(info))
'''

DCMTK_FOR = {
    "1.2.840.10008.1.2.4.50": "dcmdjpeg", "1.2.840.10008.1.2.4.51": "dcmdjpeg",
    "1.2.840.10008.1.2.4.57": "dcmdjpeg", "1.2.840.10008.1.2.4.70": "dcmdjpeg",
    "1.2.840.10008.1.2.5": "dcmdrle",
    "1.2.840.10008.1.2.4.80": "dcmdjpls", "1.2.840.10008.1.2.4.81": "dcmdjpls",
}
J2K = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
       "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")
KEPT = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def run(args, **kw):
    return subprocess.run(args, capture_output=True, **kw)


def oracle_info(path, out, mode):
    r = run([SYS_PY, "-c", ORACLE, path, out, mode], text=True)
    if r.returncode != 0:
        return {"skip": "pydicom: " + r.stderr.strip().splitlines()[-1] if r.stderr else "?"}
    return json.loads(r.stdout)


def canonical(samples, info, signed_src=None):
    """samples: list of ints (interleaved, one per sample). Applies frames.h's canonical rules."""
    bits = info["BitsStored"]
    signed = info["PixelRepresentation"] == 1
    mask = (1 << bits) - 1
    out = []
    for v in samples:
        v &= mask
        if signed and v & (1 << (bits - 1)):
            v -= 1 << bits
        out.append(v)
    nbytes = 1 if bits <= 8 else 2
    b = bytearray()
    for v in out:
        b += (v & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little")
    return bytes(b), min(out), max(out)


def native_samples(buf, info):
    """Interleaved sample list of one native little-endian frame."""
    rows, cols, spp = info["Rows"], info["Columns"], info["SamplesPerPixel"]
    ba = info["BitsAllocated"]
    step = ba // 8
    vals = [int.from_bytes(buf[i:i + step], "little") for i in range(0, len(buf), step)]
    n = rows * cols
    pi = info["PhotometricInterpretation"]
    if spp == 3 and pi in ("YBR_FULL_422", "YBR_PARTIAL_422"):
        out = []
        for p in range(0, n, 2):
            y1, y2, cb, cr = vals[2 * p:2 * p + 4]
            out += [y1, cb, cr, y2, cb, cr]
        return out
    if spp == 3 and info.get("PlanarConfiguration") == 1:
        return [vals[c * n + p] for p in range(n) for c in range(3)]
    return vals


def opj_decode(codestream, tmp, reduce=0):
    """opj_decompress a codestream: (width, height, ncomp, interleaved sample ints)."""
    src = os.path.join(tmp, "in.j2k" if codestream[:2] == b"\xff\x4f" else "in.jp2")
    with open(src, "wb") as f:
        f.write(codestream)
    dst = os.path.join(tmp, "out.rawl")
    if os.path.exists(dst):
        os.remove(dst)
    r = run(["opj_decompress", "-i", src, "-o", dst, "-r", str(reduce)], text=True)
    if r.returncode != 0:
        raise RuntimeError("opj_decompress: " + (r.stdout + r.stderr)[-300:])
    # The raw writer prints the geometry it wrote; parse the codestream header instead of logs:
    # opj_dump gives component sizes and precision.
    d = run(["opj_dump", "-i", src], text=True).stdout
    comps = []
    for line in d.splitlines():
        line = line.strip()
        if line.startswith("dx=") or line.startswith("prec="):
            comps.append(line)
    w = h = None
    for line in d.splitlines():
        if "x1=" in line and "y1=" in line and w is None:
            parts = dict(p.split("=") for p in line.replace(",", " ").split() if "=" in p)
            w = int(parts["x1"]) - int(parts.get("x0", 0))
            h = int(parts["y1"]) - int(parts.get("y0", 0))
    precs = [int(p.split("prec=")[1].split(",")[0].split()[0]) for p in d.split()
             if p.startswith("prec=")]
    sgnd = [int(p.split("sgnd=")[1].split(",")[0]) for p in d.split() if p.startswith("sgnd=")]
    nc = len(precs)
    raw = read_bytes(dst)
    step = 1 if precs[0] <= 8 else 2
    w = -(-w // (1 << reduce))
    h = -(-h // (1 << reduce))
    plane = w * h
    if len(raw) != plane * nc * step:
        raise RuntimeError("opj_decompress wrote %d bytes for %dx%dx%d" % (len(raw), w, h, nc))
    vals = []
    for p in range(plane):
        for c in range(nc):
            off = (c * plane + p) * step
            v = int.from_bytes(raw[off:off + step], "little", signed=bool(sgnd[c]))
            vals.append(v)
    return w, h, nc, vals



class OracleFailed(Exception):
    pass


# Writes a file again with its data set encoded as its transfer syntax says; the pixel data (and
# its fragments) are copied as they are.
REENCODE = r'''
import sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
for _ in ds.iterall():  # elements read as implicit VR get their VR from the dictionary
    pass
ts = ds.file_meta.TransferSyntaxUID
ds.is_implicit_VR, ds.is_little_endian = ts.is_implicit_VR, ts.is_little_endian
ds.save_as(sys.argv[2], write_like_original=False)
'''


def oracle_pixels(path, ts, first, tmp, work):
    """The source frames in canonical form, decoded without ahilite."""
    nf = first["NumberOfFrames"]
    expected_pixels = []  # canonical bytes per frame
    if ts in J2K:
        # DCMTK has no JPEG 2000 codec: the oracle decodes the source fragments with opj_decompress.
        info = oracle_info(path, work, "fragments")
        for i in range(nf):
            try:
                w, h, nc, vals = opj_decode(read_bytes(os.path.join(work, str(i))), tmp)
            except Exception as e:
                raise OracleFailed(str(e)[-200:])
            expected_pixels.append(canonical(vals, info))
    else:
        conv = os.path.join(tmp, "native.dcm")
        if first.get("DatasetVRDiffers"):
            # e.g. SC_rgb_jpeg.dcm: implicit VR under JPEG baseline, which DCMTK cannot parse.
            fixed = os.path.join(tmp, "reencoded.dcm")
            rr = run([SYS_PY, "-c", REENCODE, path, fixed], text=True)
            if rr.returncode != 0:
                raise OracleFailed("pydicom rewriting the data set: " + rr.stderr.strip()[-200:])
            path = fixed
        tool = DCMTK_FOR.get(ts, "dcmconv")
        args = [tool]
        if tool == "dcmdjpeg" and ts in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51") \
                and first["BitsStored"] <= 8:
            args.append("+cg")  # convert YCbCr as the JPEG markers say, as libjpeg does
        if tool == "dcmconv":
            args.append("+te")
        rr = run(args + [path, conv], text=True)
        if rr.returncode != 0:
            raise OracleFailed("%s: %s" % (tool, rr.stderr.strip()[-200:]))
        info = oracle_info(conv, work, "native")
        native = read_bytes(os.path.join(work, "native"))
        if info["BitsAllocated"] == 1:
            n = info["Rows"] * info["Columns"]
            for i in range(nf):
                bits = [(native[(i * n + k) // 8] >> ((i * n + k) % 8)) & 1 for k in range(n)]
                expected_pixels.append(("bits", bits))
        else:
            size = (info["Rows"] * info["Columns"] * info["SamplesPerPixel"] *
                    info["BitsAllocated"] // 8)
            if info["PhotometricInterpretation"] in ("YBR_FULL_422", "YBR_PARTIAL_422"):
                size = size * 2 // 3
            if len(native) < size * nf:
                raise OracleFailed("pixel data too short for %d frames" % nf)
            for i in range(nf):
                vals = native_samples(native[i * size:(i + 1) * size], info)
                expected_pixels.append(canonical(vals, info))

    return expected_pixels, info



# The part of the generator scripts below that makes a Secondary Capture dataset named after
# the fixture (file meta, UIDs derived from the name, patient and study identity).
SYNTH_DATASET = r'''
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[name, "sop"])
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset()
ds.file_meta = meta
ds.is_little_endian, ds.is_implicit_VR = True, False
ds.SOPClassUID = meta.MediaStorageSOPClassUID
ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
ds.StudyInstanceUID = generate_uid(entropy_srcs=[name, "study"])
ds.SeriesInstanceUID = generate_uid(entropy_srcs=[name, "series"])
ds.PatientID, ds.PatientName, ds.Modality = "SYNTH-" + name, "Synthetic^" + name, "OT"
ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", "1", "1"
'''

# The source of the near-lossless JPEG-LS fixture, written with pydicom: 2 frames of 45x63 RGB
# (odd rows and columns), 8 bits, a gradient per channel plus deterministic noise, so that NEAR
# really changes samples. It is not SC_rgb_small_odd (3x3): dcmcjpls (DCMTK 3.6.7) encodes a
# near-lossless frame into a buffer the size of the uncompressed frame, the stream of a 3x3 frame
# (51 bytes against 27) overruns it, and the frame it wrote was corrupt (its SOF55 marker came out
# as FF 00), so CharLS and DCMTK both rightly refused it.
TEXTURE_RGB = "synth_rgb_odd_texture.dcm"
TEXTURE = r'''
import sys, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
out, name = sys.argv[1], sys.argv[2]
frames, rows, cols = 2, 45, 63
{DATASET}ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.NumberOfFrames = rows, cols, 3, frames
ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
x, px = 4321, bytearray()
for f in range(frames):
    for r in range(rows):
        for c in range(cols):
            for k in range(3):
                x = (x * 1103515245 + 12345) & 0x7fffffff
                px.append(20 + (3 * c + 2 * r + 50 * k + 70 * f) % 200 + (x >> 16) % 16)
ds.PixelData = bytes(px)
ds["PixelData"].VR = "OB"
ds.save_as(out, write_like_original=False)
'''.replace("{DATASET}", SYNTH_DATASET)


# Syntaxes and sample layouts the packaged corpus lacks, made with DCMTK's encoders:
# (output name, tool and options, source: a pydicom test file or TEXTURE_RGB).
FIXTURES = [
    ("ct_jpeg_lossless_sv1_s16.dcm", ["dcmcjpeg", "+e1"], "CT_small.dcm"),
    ("ct_jpeg_lossless_p14_s16.dcm", ["dcmcjpeg", "+el"], "CT_small.dcm"),
    ("rgb_odd_jpegls_near.dcm", ["dcmcjpls", "+en", "+md", "2"], TEXTURE_RGB),
    ("ct_jpegls_lossless_s16.dcm", ["dcmcjpls", "+el"], "CT_small.dcm"),
    ("rgb_odd_jpeg_lossless.dcm", ["dcmcjpeg", "+e1"], "SC_rgb_small_odd.dcm"),
    ("rgb_odd_jpegls.dcm", ["dcmcjpls", "+el"], "SC_rgb_small_odd.dcm"),
    ("rgb_odd_rle.dcm", ["dcmcrle"], "SC_rgb_small_odd.dcm"),
    ("mr_rle_s16.dcm", ["dcmcrle"], "MR_small.dcm"),
    ("rgb_2frame_jpeg_lossless.dcm", ["dcmcjpeg", "+e1"], "SC_rgb_rle_2frame.dcm"),
    ("rgb_2frame_native.dcm", ["dcmconv", "+te"], "SC_rgb_rle_2frame.dcm"),
    ("rgb_2frame_native_planar.dcm", ["planar"], "SC_rgb_rle_2frame.dcm"),
    # HTJ2K sources (no packaged file has one): frames encoded by ahilite itself, wrapped in
    # DICOM; the decode of these by ahilite is still checked against opj_decompress.
    ("ct_htj2k_201.dcm", ["htj2k", "1.2.840.10008.1.2.4.201"], "CT_small.dcm"),
    ("rgb_htj2k_202.dcm", ["htj2k", "1.2.840.10008.1.2.4.202"], "SC_rgb_small_odd.dcm"),
    # HTJ2K (lossy allowed) is kept as-is: served as image/jphc.
    ("mr_htj2k_203.dcm", ["htj2k", "1.2.840.10008.1.2.4.203"], "MR_small.dcm"),
]


# Rewrites an interleaved RGB file as PlanarConfiguration 1 (DCMTK's tools cannot).
TO_PLANAR = r'''
import sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
n, f = ds.Rows * ds.Columns, int(ds.get("NumberOfFrames", 1) or 1)
b = ds.BitsAllocated // 8
src, out = ds.PixelData, bytearray()
for k in range(f):
    fr = src[k * n * 3 * b:(k + 1) * n * 3 * b]
    for c in range(3):
        for p in range(n):
            out += fr[(p * 3 + c) * b:(p * 3 + c + 1) * b]
ds.PixelData = bytes(out)
ds.PlanarConfiguration = 1
ds.save_as(sys.argv[2])
'''


# Rewrites a file with the given codestreams as its encapsulated frames and transfer syntax.
# pydicom 2.3 does not know the HTJ2K UIDs, so the file is written as JPEG 2000 lossless and the
# UID (and the meta group length) patched afterwards.
TO_ENCAPSULATED = r'''
import io, struct, sys, pydicom
from pydicom.encaps import encapsulate
ds = pydicom.dcmread(sys.argv[1])
frames = [open(p, "rb").read() for p in sys.argv[4:]]
j2k = "1.2.840.10008.1.2.4.90"
ds.file_meta.TransferSyntaxUID = j2k
ds.PixelData = encapsulate(frames)
ds["PixelData"].VR = "OB"
buf = io.BytesIO()
ds.save_as(buf)
b = buf.getvalue()
uid = sys.argv[3].encode()
uid += b"\0" * (len(uid) % 2)
old = b"\x02\x00\x10\x00UI" + struct.pack("<H", len(j2k)) + j2k.encode()
assert b.count(old) == 1
b = b.replace(old, b"\x02\x00\x10\x00UI" + struct.pack("<H", len(uid)) + uid)
gl = b.index(b"\x02\x00\x00\x00UL\x04\x00") + 8
n = struct.unpack("<I", b[gl:gl + 4])[0] + len(uid) - len(j2k)
b = b[:gl] + struct.pack("<I", n) + b[gl + 4:]
open(sys.argv[2], "wb").write(b)
'''


def near_of(name):
    """NEAR of a near-lossless JPEG-LS fixture (the largest error dcmcjpls allowed itself per
    sample), None for the others."""
    for fname, cmd, _ in FIXTURES:
        if fname == name and cmd[:2] == ["dcmcjpls", "+en"]:
            return int(cmd[cmd.index("+md") + 1]) if "+md" in cmd else 2
    return None


def make_fixtures(tmp, sources=None):
    """Writes the FIXTURES into tmp and returns the paths of those made. sources, a dict if
    given, receives each fixture's name -> the uncompressed file it was made from."""
    out = []
    for name, cmd, src in FIXTURES:
        dst = os.path.join(tmp, name)
        source = os.path.join(PYD, "test_files", src)
        if src == TEXTURE_RGB:
            source = os.path.join(tmp, src)
            if not os.path.exists(source):
                run([SYS_PY, "-c", TEXTURE, source, src], check=True)
        if "rle" in src:
            plain = os.path.join(tmp, "plain_" + src)
            run(["dcmdrle", source, plain], check=True)
            source = plain
        if cmd == ["planar"]:
            r = run([SYS_PY, "-c", TO_PLANAR, source, dst])
        elif cmd[0] == "htj2k":
            store = os.path.join(tmp, "fixture_store")
            r = run([BIN, "frames", source, "--out", store], text=True)
            if r.returncode != 0:
                continue
            ids = [f["ID"] for f in json.loads(r.stdout)["ImageFrames"]]
            blobs = [os.path.join(store, i[:2], i[2:4], i) for i in ids]
            r = run([SYS_PY, "-c", TO_ENCAPSULATED, source, dst, cmd[1]] + blobs)
        else:
            r = run(cmd + [source, dst])
        if r.returncode == 0:
            out.append(dst)
            if sources is not None:
                sources[name] = source
    return out



# ---- what GetImageFrame must serve (frames.h's storage policy, HealthImaging's table) ----

EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
HTJ2K_RPCL = "1.2.840.10008.1.2.4.202"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"  # data stores created with JPEG_2000_LOSSLESS
# HealthImaging's GetImageFrame Content-Type per stored transfer syntax
# (docs/frames.md#transfer-syntaxes).
CONTENT_TYPE = {
    EXPLICIT_LE: "application/octet-stream",
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.91": "image/j2c",
    HTJ2K_RPCL: "image/jph",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    J2K_LOSSLESS: "image/j2c",
}


def stored_syntax_for(source_ts, bits_allocated, lossless=HTJ2K_RPCL):
    """StoredTransferSyntaxUID under frames.h's policy: lossy JPEG baseline / JPEG 2000 / HTJ2K
    kept as they are, 1-bit frames as explicit little endian, everything else as the data store's
    lossless format says (lossless: HTJ2K_RPCL, or J2K_LOSSLESS for a JPEG_2000_LOSSLESS store)."""
    if bits_allocated == 1:
        return EXPLICIT_LE
    if source_ts in KEPT:
        return source_ts
    return lossless


def expected_frames(path, tmp):
    """The oracle's view of every frame of path: (info, frames), where each frame is a dict with
    'pixels' (canonical bytes; for 1-bit frames None and 'bits' the pixel bits), 'min', 'max',
    'crc32' (of the canonical bytes) and 'fragment' (the source's encapsulated bytes of the frame
    when its syntax is stored as-is, else None). tmp must be private to the call.
    Raises OracleFailed when the oracle cannot decode the file."""
    work = os.path.join(tmp, "oracle")
    os.makedirs(work, exist_ok=True)
    first = oracle_info(path, work, "probe")
    if "skip" in first:
        raise OracleFailed(first["skip"])
    if first["BitsAllocated"] not in (1, 8, 16) or first["SamplesPerPixel"] not in (1, 3):
        raise OracleFailed("BitsAllocated %s / SamplesPerPixel %s" % (
            first["BitsAllocated"], first["SamplesPerPixel"]))
    ts = first["TransferSyntaxUID"]
    pixels, info = oracle_pixels(path, ts, first, tmp, work)
    fragments = [None] * len(pixels)
    if ts in KEPT:
        oracle_info(path, work, "fragments")
        fragments = [read_bytes(os.path.join(work, str(i))) for i in range(len(pixels))]
    frames = []
    for px, frag in zip(pixels, fragments):
        if px[0] == "bits":
            frames.append({"pixels": None, "bits": px[1], "min": min(px[1]), "max": max(px[1]),
                           "crc32": None, "fragment": frag})
        else:
            frames.append({"pixels": px[0], "bits": None, "min": px[1], "max": px[2],
                           "crc32": zlib.crc32(px[0]), "fragment": frag})
    info["source"] = first
    return info, frames


def decode_stored(blob, info, tmp):
    """An independent full-resolution decode of a stored JPEG 2000 / HTJ2K frame
    (opj_decompress) in canonical form: (width, height, canonical bytes)."""
    w, h, _, vals = opj_decode(blob, tmp)
    got, _, _ = canonical(vals, info)
    return w, h, got


def ojph_decode(codestream, info, tmp):
    """A second independent decode of a stored HTJ2K frame, by OpenJPH's ojph_expand (the decoder
    family web viewers of HealthImaging use): the full-resolution canonical bytes. Grey frames are
    written as raw little-endian samples, colour frames as PPM (big-endian above 8 bits)."""
    spp = info["SamplesPerPixel"]
    src = os.path.join(tmp, "ojph.j2c")
    dst = os.path.join(tmp, "ojph." + ("raw" if spp == 1 else "ppm"))
    with open(src, "wb") as f:
        f.write(codestream)
    if os.path.exists(dst):
        os.remove(dst)
    r = run(["ojph_expand", "-i", src, "-o", dst], text=True)
    if r.returncode != 0 or not os.path.exists(dst):
        raise RuntimeError("ojph_expand: " + " ".join((r.stdout + r.stderr).split())[-300:])
    data = read_bytes(dst)
    step = 1 if info["BitsStored"] <= 8 else 2
    if spp == 1:
        signed = info["PixelRepresentation"] == 1
        vals = [int.from_bytes(data[i:i + step], "little", signed=signed)
                for i in range(0, len(data), step)]
    else:  # P6 header: magic, width, height, maxval, one whitespace byte, then the samples
        fields, pos = [], 0
        while len(fields) < 4:
            while data[pos:pos + 1].isspace():
                pos += 1
            start = pos
            while pos < len(data) and not data[pos:pos + 1].isspace():
                pos += 1
            fields.append(data[start:pos])
        body = data[pos + 1:]
        step = 2 if int(fields[3]) > 255 else 1
        vals = [int.from_bytes(body[i:i + step], "big") for i in range(0, len(body), step)]
    if len(vals) != info["Rows"] * info["Columns"] * spp:
        raise RuntimeError("ojph_expand wrote %d samples for %dx%dx%d" % (
            len(vals), info["Columns"], info["Rows"], spp))
    got, _, _ = canonical(vals, info)
    return got


def ojph_view(pixels, info):
    """What ojph_expand can show of canonical pixels: OpenJPH 0.9.0's raw writer saturates to the
    unsigned range, so negative samples of signed frames come out as 0 (its positive samples are
    exact). Compare ojph_decode()'s output with this."""
    if info["PixelRepresentation"] != 1:
        return pixels
    step = 1 if info["BitsStored"] <= 8 else 2
    out = bytearray(pixels)
    for i in range(0, len(out), step):
        if out[i + step - 1] & 0x80:
            out[i:i + step] = bytes(step)
    return bytes(out)


def unpack_bits(blob, n):
    """The first n pixels of a 1-bit frame stored packed, least significant bit first."""
    return [(blob[k // 8] >> (k % 8)) & 1 for k in range(n)]


# ---- input files for import jobs ----

def same_length_uid(old, salt):
    """A UID as long as old, unique per salt: 2.25.<digits of SHA-256(old, salt)>."""
    digits = str(int.from_bytes(hashlib.sha256((old + "\0" + salt).encode()).digest(), "big"))
    n = len(old) - len("2.25.")
    if n < 1:
        raise ValueError("UID %r too short to replace" % old)
    body = (digits * (n // len(digits) + 1))[:n]
    if body[0] == "0" and n > 1:
        body = "1" + body[1:]
    return "2.25." + body


def rewrite_uids(data, mapping):
    """data (a Part-10 file) with each UID in mapping replaced by its value of the same length, in
    the meta group and the dataset (inflated and deflated again for the deflated syntax), so one
    corpus file can be imported as several distinct instances with its pixel data untouched."""
    import struct
    for old, new in mapping.items():
        if len(old) != len(new):
            raise ValueError("replacement UID of another length")
    if data[128:132] != b"DICM" or data[132:136] != b"\x02\x00\x00\x00":
        raise ValueError("no meta group length")
    body_at = 144 + struct.unpack_from("<I", data, 140)[0]
    meta, body = data[:body_at], data[body_at:]
    deflated = DEFLATED_LE.encode() in meta
    if deflated:
        body = zlib.decompress(body, -15)
    for old, new in mapping.items():
        if old.encode() not in body:
            raise ValueError("UID %s not found in the dataset" % old)
        meta = meta.replace(old.encode(), new.encode())
        body = body.replace(old.encode(), new.encode())
    if deflated:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = c.compress(body) + c.flush()
        body += b"\0" * (len(body) % 2)
    return meta + body


# Native fixtures the corpus lacks, written with pydicom: 8-bit signed (3 frames, odd width),
# 16-bit unsigned with 12 bits stored and junk above HighBit (2 frames), 16-bit signed with 12 bits
# stored. Pixel values are a deterministic pseudo-random sequence over the whole container.
SYNTH = r"""
import sys, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
out, name = sys.argv[1], sys.argv[2]
ba, bs, pr, frames, rows, cols = map(int, sys.argv[3:])
{DATASET}ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
ds.PhotometricInterpretation = "MONOCHROME2"
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = ba, bs, bs - 1, pr
if frames > 1:
    ds.NumberOfFrames = frames
x, px = 12345, bytearray()
for _ in range(frames * rows * cols):
    x = (x * 1103515245 + 12345) & 0x7fffffff
    px += (x >> 7).to_bytes(4, "little")[:ba // 8]
ds.PixelData = bytes(px)
ds["PixelData"].VR = "OB" if ba == 8 else "OW"
ds.save_as(out, write_like_original=False)
""".replace("{DATASET}", SYNTH_DATASET)

SYNTHETIC = [  # name, BitsAllocated, BitsStored, PixelRepresentation, frames, rows, columns
    ("synth_s8_3frame.dcm", 8, 8, 1, 3, 23, 37),
    ("synth_u16_bs12_2frame.dcm", 16, 12, 0, 2, 19, 41),
    ("synth_s16_bs12.dcm", 16, 12, 1, 1, 33, 33),
]


def make_synthetic(tmp, names=None):
    """Writes the SYNTHETIC files (those in names, or all) into tmp; returns their paths."""
    out = []
    for name, ba, bs, pr, nf, rows, cols in SYNTHETIC:
        if names and name not in names:
            continue
        dst = os.path.join(tmp, name)
        r = run([SYS_PY, "-c", SYNTH, dst, name] + [str(v) for v in (ba, bs, pr, nf, rows, cols)],
                text=True)
        if r.returncode != 0:
            raise RuntimeError("synthetic %s: %s" % (name, r.stderr[-300:]))
        out.append(dst)
    return out


def cli(argv):
    """For suites in other languages (the JS SDK test); runs under any Python 3 and prints JSON:
      frames_oracle.py synth DIR NAME...     writes those SYNTHETIC files into DIR
      frames_oracle.py expect [--lossless UID] FILE...
                                             per file: transfer syntax, SOPInstanceUID, the
                                             expected stored syntax (lossless frames in UID,
                                             default HTJ2K RPCL), and per frame the oracle's
                                             crc32/min/max and the SHA-256 of a kept fragment
      frames_oracle.py decode [--ojph] LIKE BLOB...
                                             each stored J2K/HTJ2K blob decoded by opj_decompress:
                                             width, height, CRC32 of the canonical pixels (for
                                             LIKE's pixel module); with --ojph (HTJ2K blobs) also
                                             ojphCrc32, the same by ojph_expand, and
                                             ojphViewOfOpjCrc32, what ojph_expand should give
                                             (ojph_view) if both decoders agree"""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="ahl-oracle-") as tmp:
        if argv[:1] == ["synth"]:
            res = make_synthetic(argv[1], set(argv[2:]))
        elif argv[:1] == ["expect"]:
            res = {}
            lossless = HTJ2K_RPCL
            if argv[1:2] == ["--lossless"]:
                lossless, argv = argv[2], argv[2:]
            for k, path in enumerate(argv[1:]):
                t = os.path.join(tmp, str(k))
                os.makedirs(t)
                info, frames = expected_frames(path, t)
                src = info["source"]
                res[path] = {
                    "TransferSyntaxUID": src["TransferSyntaxUID"],
                    "SOPInstanceUID": src["SOPInstanceUID"],
                    "StoredTransferSyntaxUID": stored_syntax_for(src["TransferSyntaxUID"],
                                                                 src["BitsAllocated"], lossless),
                    "Rows": info["Rows"], "Columns": info["Columns"],
                    "frames": [{"crc32": f["crc32"], "min": f["min"], "max": f["max"],
                                "fragmentSha256": hashlib.sha256(f["fragment"]).hexdigest()
                                if f["fragment"] is not None else None} for f in frames]}
        elif argv[:1] == ["decode"]:
            ojph = argv[1:2] == ["--ojph"]
            argv = argv[1:] if ojph else argv
            info = oracle_info(argv[1], tmp, "probe")
            res = []
            for blob in argv[2:]:
                w, h, got = decode_stored(read_bytes(blob), info, tmp)
                res.append({"width": w, "height": h, "crc32": zlib.crc32(got)})
                if ojph:  # compare with ojph_view() of the expected pixels
                    res[-1]["ojphCrc32"] = zlib.crc32(ojph_decode(read_bytes(blob), info, tmp))
                    res[-1]["ojphViewOfOpjCrc32"] = zlib.crc32(ojph_view(got, info))
        else:
            raise SystemExit("usage: frames_oracle.py synth|expect|decode ...")
    print(json.dumps(res))


if __name__ == "__main__":
    cli(sys.argv[1:])
