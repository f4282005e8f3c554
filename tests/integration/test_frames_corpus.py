#!/usr/bin/env python3
"""Every decodable frame of the packaged DICOM corpus survives ahilite's import pixel pipeline
bit for bit.

For each file of the pydicom test corpus (and the other packaged samples that are present):
  1. `ahilite frames FILE --out STORE` transcodes every frame as import does and prints the
     ImageFrames metadata;
  2. an oracle independent of ahilite produces the source pixels: DCMTK (dcmdjpeg, dcmdrle,
     dcmdjpls, dcmconv +te) rewrites the file as uncompressed explicit VR little endian, and
     pydicom (the system /usr/bin/python3) hands out the raw frame bytes; JPEG 2000 sources, which
     DCMTK cannot decode, go through opj_decompress;
  3. each stored frame is decoded by opj_decompress (HTJ2K) at every resolution level, and must
     equal the oracle's pixels in canonical form (frames.h: little-endian, interleaved, masked or
     sign-extended to BitsStored); frames kept as-is (JPEG baseline, JPEG 2000 lossy) must be the
     source fragments byte for byte;
  4. MinPixelValue/MaxPixelValue and the per-level CRC32 checksums must match values computed
     here from those decodes.
The oracle (steps 2-3) lives in frames_oracle.py, shared with the client suites.
Files the oracle cannot decode either (no pixel data, 32-bit pixels, broken files) are skipped,
and every skip is pinned: frames_corpus_skips.txt lists each corpus file expected to skip with
text its skip message must contain. A skip not on that list, a skip for another reason, and a
listed file that no longer skips all fail, as does any skip of a fixture the test makes itself.
A near-lossless fixture's oracle pixels must also be within NEAR of the pixels it was encoded
from. Prints "N passed, N failed".
"""
import json
import os
import shutil
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from frames_oracle import (  # noqa: E402
    BIN, CORPUS, FIXTURES, KEPT, PYD, OracleFailed, canonical, make_fixtures, near_of,
    opj_decode, oracle_info, oracle_pixels, run)

SKIPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "frames_corpus_skips.txt")


def load_skips():
    """frames_corpus_skips.txt: name -> (text the skip message must contain, why)."""
    out = {}
    with open(SKIPS) as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split("|")]
            if len(parts) != 3 or not all(parts) or parts[0] in out:
                raise ValueError("%s:%d: want one 'name | text | why' per file" % (SKIPS, n))
            out[parts[0]] = (parts[1], parts[2])
    return out


def samples(canon, info):
    """The sample values of canonical frame bytes."""
    step = 1 if info["BitsStored"] <= 8 else 2
    signed = info["PixelRepresentation"] == 1
    return [int.from_bytes(canon[i:i + step], "little", signed=signed)
            for i in range(0, len(canon), step)]


def check_near(expected_pixels, source, near, tmp):
    """A near-lossless fixture: the oracle's decode must be within NEAR of every source sample
    (else the fixture or the oracle is wrong), and must differ somewhere (else the fixture no
    longer tests a lossy reconstruction). Returns an error message or None."""
    work = os.path.join(tmp, "oracle-source")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    first = oracle_info(source, work, "probe")
    if "skip" in first:
        return "source %s: %s" % (source, first["skip"])
    want, info = oracle_pixels(source, first["TransferSyntaxUID"], first, tmp, work)
    if len(want) != len(expected_pixels):
        return "%d frames decoded from %d source frames" % (len(expected_pixels), len(want))
    changed = 0
    for i, (got, src) in enumerate(zip(expected_pixels, want)):
        a, b = samples(got[0], info), samples(src[0], info)
        worst = max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) else None
        if worst is None or worst > near:
            return "frame %d decodes %s from its source, NEAR is %d" % (
                i + 1, "to %d samples" % len(a) if worst is None else "up to %d away" % worst,
                near)
        changed += sum(x != y for x, y in zip(a, b))
    if not changed:
        return "decodes to its source exactly: it no longer tests a near-lossless decode"
    return None


def check_file(path, store, tmp, source=None, near=None):
    """Returns (status, message): status in pass/fail/skip. source and near: the file a
    near-lossless fixture was encoded from, and its NEAR."""
    r = run([BIN, "frames", path, "--out", store], text=True)
    out = r.stdout.strip()
    ours = json.loads(out.splitlines()[-1]) if out else {"error": r.stderr}
    ts = ours.get("TransferSyntaxUID")
    # The oracle's view of the source.
    work = os.path.join(tmp, "oracle")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    first = oracle_info(path, work, "fragments-probe-none")
    if "skip" in first:
        if "error" in ours:
            return "skip", "oracle: %s; ahilite: %s" % (first["skip"], ours["error"])
        return "fail", "oracle: " + first["skip"]
    ts = first["TransferSyntaxUID"]
    if first["BitsAllocated"] not in (1, 8, 16) or first["SamplesPerPixel"] not in (1, 3):
        if "error" in ours:
            return "skip", "unsupported by design: ahilite: " + ours["error"]
        return "fail", "ahilite accepted BitsAllocated %s" % first["BitsAllocated"]
    nf = first["NumberOfFrames"]
    try:
        expected_pixels, info = oracle_pixels(path, ts, first, tmp, work)
    except OracleFailed as e:
        if "error" in ours:
            return "skip", "neither decodes it: ahilite: %s; oracle: %s" % (ours["error"], e)
        return "skip", "ahilite decoded what the oracle cannot, unverified: %s" % e
    if near is not None:
        bad = check_near(expected_pixels, source, near, tmp)
        if bad:
            return "fail", "oracle against the fixture's source: " + bad
    if "error" in ours:
        return "fail", "ahilite: " + ours["error"]
    frames = ours["ImageFrames"]
    if len(frames) != nf:
        return "fail", "%d ImageFrames for %d frames" % (len(frames), nf)
    stored_ts = ours["StoredTransferSyntaxUID"]
    fragments = None
    if stored_ts in KEPT:
        fragments = []
        oracle_info(path, work, "fragments")
        for i in range(nf):
            fragments.append(open(os.path.join(work, str(i)), "rb").read())
    return compare(frames, stored_ts, expected_pixels, fragments, info, store, tmp, ts, nf)



def compare(frames, stored_ts, expected_pixels, fragments, info, store, tmp, ts, nf):
    for i, fr in enumerate(frames):
        fid = fr["ID"]
        blob = open(os.path.join(store, fid[:2], fid[2:4], fid), "rb").read()
        where = "frame %d (%s)" % (i + 1, fid)
        if fr["FrameSizeInBytes"] != len(blob):
            return "fail", where + ": FrameSizeInBytes %d != stored %d" % (
                fr["FrameSizeInBytes"], len(blob))
        levels = fr["PixelDataChecksumFromBaseToFullResolution"]
        exp = expected_pixels[i]
        if exp[0] == "bits":
            got = [(blob[k // 8] >> (k % 8)) & 1 for k in range(len(exp[1]))]
            if got != exp[1]:
                return "fail", where + ": 1-bit frame differs"
            if (fr["MinPixelValue"], fr["MaxPixelValue"]) != (min(exp[1]), max(exp[1])):
                return "fail", where + ": min/max"
            continue
        want, mn, mx = exp
        if (fr["MinPixelValue"], fr["MaxPixelValue"]) != (mn, mx):
            return "fail", where + ": min/max %s/%s, oracle %s/%s" % (
                fr["MinPixelValue"], fr["MaxPixelValue"], mn, mx)
        if levels[-1]["Checksum"] != zlib.crc32(want):
            return "fail", where + ": full-resolution checksum differs from the oracle's pixels"
        if stored_ts in KEPT:
            if blob != fragments[i]:
                return "fail", where + ": frame kept as-is differs from the source fragments"
            if stored_ts == "1.2.840.10008.1.2.4.50":
                continue
        # Decode the stored codestream independently at every level.
        for k, lv in enumerate(levels):
            reduce = len(levels) - 1 - k
            w, h, nc, vals = opj_decode(blob, tmp, reduce)
            got, _, _ = canonical(vals, info)
            if (w, h) != (lv["Width"], lv["Height"]):
                return "fail", where + ": level %d is %dx%d, metadata says %dx%d" % (
                    k, w, h, lv["Width"], lv["Height"])
            if zlib.crc32(got) != lv["Checksum"]:
                return "fail", where + ": level %d checksum differs from opj_decompress" % k
            if reduce == 0 and got != want:
                return "fail", where + ": stored frame decodes to different pixels"
    return "pass", "%s -> %s, %d frame(s)" % (ts, stored_ts, nf)


def main():
    if not os.path.exists(BIN):
        print("ahilite binary not found at %s" % BIN)
        print("0 passed, 1 failed")
        return 1
    for tool in ("opj_decompress", "opj_dump", "dcmdjpeg", "dcmdrle", "dcmdjpls", "dcmconv"):
        if not shutil.which(tool):
            print("missing tool %s (scripts/setup installs it)" % tool)
            print("0 passed, 1 failed")
            return 1
    pinned = load_skips()
    passed = failed = skipped = 0
    with tempfile.TemporaryDirectory(prefix="ahl-frames-") as tmp:
        store = os.path.join(tmp, "store")
        sources = {}
        fixtures = make_fixtures(tmp, sources)
        for name, _, _ in FIXTURES:
            if name not in sources:
                print("fail fixture %s: DCMTK (or pydicom) could not make it" % name)
                failed += 1
        corpus = [] if os.environ.get("FRAMES_FIXTURES_ONLY") else CORPUS
        seen = set()
        for path in corpus + fixtures:
            fixture = path in fixtures
            name = os.path.basename(path) if fixture else (
                os.path.relpath(path, PYD) if path.startswith(PYD + "/") else path)
            try:
                status, msg = check_file(path, store, tmp, sources.get(name) if fixture else None,
                                         near_of(name) if fixture else None)
            except Exception as e:  # a crash of the checker is a failure of this file
                status, msg = "fail", "checker: %r" % (e,)
            if fixture:
                name = "fixture " + name
                if status == "skip":  # the test made it to be checked: it must be
                    status, msg = "fail", "a fixture this test makes was skipped: " + msg
            else:
                seen.add(name)
                if status == "skip" and name not in pinned:
                    status, msg = "fail", "skipped, and not in %s: %s" % (
                        os.path.basename(SKIPS), msg)
                elif status == "skip" and pinned[name][0] not in msg:
                    status, msg = "fail", "skipped without %r (%s): %s" % (
                        pinned[name][0], pinned[name][1], msg)
                elif status != "skip" and name in pinned:
                    msg = "%s, but %s says it skips (%s): %s" % (
                        "passes" if status == "pass" else "fails", os.path.basename(SKIPS),
                        pinned[name][1], msg)
                    status = "fail"
            if status == "pass":
                passed += 1
            elif status == "skip":
                skipped += 1
            else:
                failed += 1
            if status != "pass" or os.environ.get("VERBOSE"):
                print("%-4s %s: %s" % (status, name, " ".join(msg.split())))
        if corpus:
            for name in sorted(set(pinned) - seen):
                print("fail %s: listed in %s as skipping, but not in the corpus" % (
                    name, os.path.basename(SKIPS)))
                failed += 1
    print("%d files skipped, each as %s expects" % (skipped, os.path.basename(SKIPS)))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
