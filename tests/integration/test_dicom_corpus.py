#!/usr/bin/env python3
"""Corpus test of the Part-10 reader: every file of pydicom's test data (test_files and
charset_files, recursively) and DCMTK's sample data sets (the worklist .dump files, turned into
DICOM files with dump2dcm) is read with `ahilite inspect --json`.

- A file either parses, or fails with a clear error. EXPECTED_FAILURES names every file that must
  fail, with a piece of the expected message and why; a file that fails unexpectedly, or parses
  although it is listed, fails the test (a regression in either direction).
- Every file that parses is compared with DCMTK's dcm2json (the oracle), attribute by attribute,
  after the normalizations in `normalize_*` below, which each say which representation difference
  they absorb. Files the oracle cannot convert are listed in ORACLE_UNAVAILABLE (and the test
  checks it still cannot); known, explained differences are in KNOWN_DIFFERENCES.

Run by ctest with AHILITE_BIN set; prints the number of matching files.
"""
import base64
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

AHILITE = os.environ.get("AHILITE_BIN", "build/ahilite")
PYDICOM_DATA = "/usr/lib/python3/dist-packages/pydicom/data"
DCMTK_EXAMPLES = "/usr/share/doc/dcmtk/examples"

NOT_DICOM = "not a DICOM file"
# relative path -> (substring of the error message, why the file must fail)
EXPECTED_FAILURES = {
    "test_files/README.txt": (NOT_DICOM, "text file"),
    "test_files/rtplan.dump": (NOT_DICOM, "text dump of a data set"),
    "test_files/rtstruct.dump": (NOT_DICOM, "text dump of a data set"),
    "test_files/test1.json": (NOT_DICOM, "DICOM JSON, not Part 10"),
    "test_files/test_PN.json": (NOT_DICOM, "DICOM JSON, not Part 10"),
    "test_files/zipMR.gz": (NOT_DICOM, "gzip archive"),
    "test_files/dicomdirtests/README.txt": (NOT_DICOM, "text file"),
    "test_files/dicomdirtests/TINY_ALPHA/README": (NOT_DICOM, "text file"),
    "charset_files/FileInfo.txt": (NOT_DICOM, "text file"),
    "test_files/MR_truncated.dcm": (
        "truncated element (7FE0,0010) at offset 1488: 8192 bytes declared, 8130 left",
        "deliberately truncated pixel data (DCMTK fails too)"),
    "test_files/rtplan_truncated.dcm": (
        "truncated element (300A,00B0) at offset 1410: 976 bytes declared, 711 left",
        "deliberately truncated inside a sequence (DCMTK fails too)"),
    "test_files/no_meta.dcm": (
        "is not a DICOM element (tag (0820,0500), length 173228800)",
        "starts with a stray byte: the first 'element' claims 173 MB; DCMTK fails the same way "
        "and pydicom reads only that one bogus element"),
    "test_files/dicomdirtests/DICOMDIR-nooffset": (
        "truncated item of (0004,1220) at offset 10860: 248 bytes declared, 224 left",
        "the last directory record declares 24 bytes more than the file holds; pydicom and "
        "DCMTK silently read to the end of the file, we refuse partial results"),
}

# relative path -> why dcm2json cannot give a reference (the test checks that it still fails)
# The charset files are also checked against pydicom's decoding of every PN (see pydicom_names).
ORACLE_UNAVAILABLE = {
    "test_files/J2K_pixelrep_mismatch.dcm": "DCMTK cannot open the ISO 2022 IR 87 converter",
    "test_files/SC_rgb_jpeg.dcm": "the meta group says explicit VR but the data set is implicit VR; "
                                  "pydicom and we detect that from the first element, DCMTK fails",
    "charset_files/chrH31.dcm": "DCMTK cannot open the ISO 2022 IR 87 converter (pydicom checks it)",
    "charset_files/chrH32.dcm": "DCMTK cannot open the ISO 2022 IR 13/87 converter (pydicom checks it)",
    "charset_files/chrJapMulti.dcm": "DCMTK cannot open the ISO 2022 IR 87 converter (pydicom checks it)",
    "charset_files/chrJapMultiExplicitIR6.dcm": "DCMTK cannot open the ISO 2022 IR 87 converter "
                                                "(pydicom checks it)",
    "charset_files/chrSQEncoding1.dcm": "DCMTK cannot open the ISO 2022 IR 13/87 converter "
                                        "(pydicom checks it)",
}

# relative path -> {tag: why our value legitimately differs from dcm2json's}
KNOWN_DIFFERENCES = {
    "charset_files/chrSQEncoding.dcm": {
        "00321064": "the item has its own Specific Character Set (ISO 2022 IR 13/87); DCMTK "
                    "converts with the data set's (ISO_IR 192) and outputs escape sequences and "
                    "invalid bytes; we decode it as pydicom does (checked against pydicom below)",
    },
    "test_files/priv_SQ.dcm": {
        "3F031001": "a private element of unknown VR in implicit VR whose value starts with an "
                    "item tag: we (like pydicom) read it as a sequence, DCMTK keeps UN bytes",
    },
}

PIXEL_TAGS = {"7FE00010", "7FE00008", "7FE00009"}


def run(cmd):
    p = subprocess.run(cmd, capture_output=True)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def normalize_pn(v):
    # dcm2json drops a PN made only of component/group delimiters ("^^^^"); so do we here.
    if isinstance(v, dict) and all(set(s) <= set("^= ") for s in v.values()):
        return None
    return v


def same_number(a, b):
    # DS/IS/FL/FD: dcm2json writes DS as written in the file and FL through its own float
    # formatting, we write the shortest round-trip double: compare the numbers.
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-30)
    return a == b


def same_binary(a, b):
    # DCMTK pads odd-length binary values to even length with one NUL byte.
    x, y = base64.b64decode(a or ""), base64.b64decode(b or "")
    if len(y) == len(x) + 1 and len(x) % 2 == 1 and y.endswith(b"\0"):
        y = y[:-1]
    return x == y


def compare(ours, theirs, path, known, diffs):
    for tag in sorted(set(ours) | set(theirs)):
        where = path + tag
        if tag in known:
            continue
        if tag not in ours:
            diffs.append("%s: only dcm2json has it: %s" % (where, json.dumps(theirs[tag])[:120]))
            continue
        if tag not in theirs:
            diffs.append("%s: only we have it: %s" % (where, json.dumps(ours[tag])[:120]))
            continue
        a, b = ours[tag], theirs[tag]
        if a.get("vr") != b.get("vr"):
            diffs.append("%s: VR %s, dcm2json %s" % (where, a.get("vr"), b.get("vr")))
            continue
        if tag == "00080005":
            continue  # dcm2json rewrites it to "ISO_IR 192" after converting text to UTF-8
        if tag in PIXEL_TAGS or "BulkDataURI" in a or not (set(a) - {"vr"}):
            # Pixel data and values over the inline limit are never read by the reader: the
            # element must exist with the right VR (checked above); its bytes are not compared.
            if tag in PIXEL_TAGS or ("Value" not in b and "InlineBinary" not in b):
                continue
        if a.get("vr") == "SQ":
            ia, ib = a.get("Value", []), b.get("Value", [])
            if len(ia) != len(ib):
                diffs.append("%s: %d items, dcm2json %d" % (where, len(ia), len(ib)))
                continue
            for i, (x, y) in enumerate(zip(ia, ib)):
                compare(x, y, "%s[%d]." % (where, i), {}, diffs)
            continue
        if "InlineBinary" in a or "InlineBinary" in b:
            if not same_binary(a.get("InlineBinary"), b.get("InlineBinary")):
                diffs.append("%s: binary value differs" % where)
            continue
        va, vb = a.get("Value"), b.get("Value")
        if a.get("vr") == "PN":
            va = [normalize_pn(v) for v in va] if va else va
            vb = [normalize_pn(v) for v in vb] if vb else vb
            if va == [None]:
                va = None
            if vb == [None]:
                vb = None
        if va == vb:
            continue
        if va is not None and vb is not None and len(va) == len(vb) and all(
                same_number(x, y) for x, y in zip(va, vb)):
            continue
        diffs.append("%s: %s, dcm2json %s" % (where, json.dumps(va, ensure_ascii=False)[:150],
                                               json.dumps(vb, ensure_ascii=False)[:150]))


def oracle(path, tmp):
    """dcm2json's JSON of path, whether pixel data was stripped first, and an error text."""
    rc, out, err = run(["dcm2json", "-q", path])
    stripped = False
    if rc != 0 and "compressed pixel data" in err:
        # dcm2json cannot write encapsulated pixel data inline: compare a copy without it.
        copy = os.path.join(tmp, "nopixel.dcm")
        shutil.copyfile(path, copy)
        rc2, _, err2 = run(["dcmodify", "-q", "-nb", "-ea", "(7fe0,0010)", copy])
        if rc2 != 0:
            return None, False, err2
        rc, out, err = run(["dcm2json", "-q", copy])
        stripped = True
    if rc != 0:
        return None, False, err
    # DCMTK copies undecodable bytes through; replace them as we would, to compare the rest.
    return json.loads(out.decode("utf-8", "replace")), stripped, ""


PYDICOM_PN_SCRIPT = r"""
import json, sys, pydicom
out = {}
for f in sys.argv[1:]:
    names = []
    def cb(ds, e):
        if e.VR == "PN":
            vals = e.value if isinstance(e.value, pydicom.multival.MultiValue) else [e.value]
            names.append(["%08X" % e.tag] + [str(v) for v in vals])
    pydicom.dcmread(f).walk(cb)
    out[f] = names
print(json.dumps(out))
"""


def pydicom_names(paths):
    """pydicom's decoded person names per file: {path: [[tag, value, ...], ...]}."""
    rc, out, err = run(["/usr/bin/python3", "-c", PYDICOM_PN_SCRIPT] + paths)
    if rc != 0:
        raise SystemExit("pydicom failed: " + err)
    return json.loads(out)


def our_names(ds, acc):
    for tag, attr in ds.items():
        if attr.get("vr") == "SQ":
            for item in attr.get("Value", []):
                our_names(item, acc)
        elif attr.get("vr") == "PN":
            vals = []
            for v in attr.get("Value", []) or []:
                v = v or {}
                groups = [v.get(g, "") for g in ("Alphabetic", "Ideographic", "Phonetic")]
                vals.append("=".join(groups).rstrip("="))
            acc.append([tag] + vals)
    return acc


def meaningful(names):
    # Empty names and names made only of delimiters say nothing about decoding.
    return sorted(n for n in (tuple([e[0]] + [v for v in e[1:] if v.strip("^= ")])
                              for e in names) if len(n) > 1)


def collect(tmp):
    files = []
    for sub in ("test_files", "charset_files"):
        root = os.path.join(PYDICOM_DATA, sub)
        for dirpath, dirnames, names in os.walk(root):
            dirnames.sort()
            for n in sorted(names):
                full = os.path.join(dirpath, n)
                files.append((os.path.relpath(full, PYDICOM_DATA), full))
    made = os.path.join(tmp, "dcmtk")
    os.makedirs(made)
    if os.path.isdir(DCMTK_EXAMPLES):
        for dirpath, _, names in os.walk(DCMTK_EXAMPLES):
            for n in sorted(names):
                if not n.endswith(".dump"):
                    continue
                out = os.path.join(made, n.replace(".dump", ".dcm"))
                rc, _, err = run(["dump2dcm", "-q", os.path.join(dirpath, n), out])
                if rc != 0:
                    raise SystemExit("dump2dcm failed on %s: %s" % (n, err))
                files.append(("dcmtk/" + n, out))
    return files


def main():
    failures, matched, failed_as_expected, oracle_skipped = [], 0, 0, 0
    charset_checks, charset_matched = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        files = collect(tmp)
        if len(files) < 150:
            failures.append("only %d corpus files found: is python3-pydicom installed?" % len(files))
        seen = set()
        for rel, path in files:
            seen.add(rel)
            rc, out, err = run([AHILITE, "inspect", "--json", path])
            expected = EXPECTED_FAILURES.get(rel)
            if rc != 0:
                if rc != 1 or "ahilite inspect: " not in err:
                    failures.append("%s: exit %d without a proper message: %s" % (rel, rc, err))
                elif expected is None:
                    failures.append("%s: unexpected failure: %s" % (rel, err.strip()))
                elif expected[0] not in err:
                    failures.append("%s: failed with %r, expected %r" % (rel, err.strip(),
                                                                          expected[0]))
                else:
                    failed_as_expected += 1
                continue
            if expected is not None:
                failures.append("%s: parsed, but must fail (%s)" % (rel, expected[1]))
                continue
            try:
                ours = json.loads(out.decode("utf-8"))  # strict: our output must be valid UTF-8
            except (UnicodeDecodeError, ValueError) as e:
                failures.append("%s: invalid JSON/UTF-8 from inspect: %s" % (rel, e))
                continue
            if rel.startswith("charset_files/"):
                charset_checks.append((rel, path, ours))
            theirs, stripped, why = oracle(path, tmp)
            if rel in ORACLE_UNAVAILABLE:
                if theirs is not None:
                    failures.append("%s: listed as oracle-unavailable but dcm2json works now" % rel)
                oracle_skipped += 1
                continue
            if theirs is None:
                failures.append("%s: dcm2json failed: %s" % (rel, why.strip()[:200]))
                continue
            diffs = []
            known = dict(KNOWN_DIFFERENCES.get(rel, {}))
            if stripped:
                # Compared against a copy without pixel data, which dcmodify writes without the
                # Data Set Trailing Padding too.
                known.update({t: "stripped" for t in PIXEL_TAGS | {"FFFCFFFC"}})
            compare(ours, theirs, "", known, diffs)
            if diffs:
                failures.append("%s: %d differences from dcm2json:\n    %s" % (
                    rel, len(diffs), "\n    ".join(diffs[:10])))
            else:
                matched += 1
        # Character sets: every person name must decode as pydicom decodes it.
        if charset_checks:
            theirs_by_path = pydicom_names([p for _, p, _ in charset_checks])
            for rel, path, ours in charset_checks:
                a, b = meaningful(our_names(ours, [])), meaningful(theirs_by_path[path])
                if a != b:
                    failures.append("%s: person names differ from pydicom's:\n    ours    %s\n"
                                    "    pydicom %s" % (rel, a, b))
                else:
                    charset_matched += 1
        for rel in sorted(set(EXPECTED_FAILURES) | set(ORACLE_UNAVAILABLE) | set(KNOWN_DIFFERENCES)):
            if rel not in seen:
                failures.append("%s: listed but not in the corpus" % rel)
    print("corpus: %d files; %d match dcm2json; %d failed as expected; %d without dcm2json "
          "oracle; %d files with known differences; %d charset files match pydicom's names"
          % (len(files), matched, failed_as_expected, oracle_skipped, len(KNOWN_DIFFERENCES),
             charset_matched))
    if failures:
        print("FAILURES (%d):" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
