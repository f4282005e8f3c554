#!/usr/bin/env python3
"""Integration test of `ahilite dump`: the HealthImaging document of every corpus file.

Corpus: the same files as test_dicom_corpus.py (pydicom's test_files and charset_files, DCMTK's
examples), with its lists of files the reader must refuse. For each file `ahilite dump` either
prints a document or fails with a clear message:

1. Files the reader refuses (test_dicom_corpus.EXPECTED_FAILURES), files without a Study, Series
   or SOP Instance UID (HealthImaging cannot place them) and NORMALIZER_FAILURES must fail, with
   the expected message.
2. Every other document must equal, key for key, the one dump_oracle.py computes independently
   with pydicom (levels from HealthImaging's keyword lists, typing, arrays by dictionary VM,
   private tags with DICOMVRs, sequences, nulls, ImageFrames), except PYDICOM_DIFFERENCES.
3. Its attribute values must match dcm2json's (the DCMTK oracle), once dcm2json's DICOM JSON is
   mapped to HealthImaging typing; the representation differences that mapping absorbs are
   listed in REPRESENTATION and the per-file exceptions in DCM2JSON_DIFFERENCES.
4. The command line: --json-lines over many files, exit status 1 when one fails with the others
   still printed, --pretty equal to compact, --help, usage errors.
"""
import base64
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_dicom_corpus as corpus  # noqa: E402  (shared corpus lists and dcm2json helpers)

AHILITE = os.environ.get("AHILITE_BIN", "build/ahilite")
ORACLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dump_oracle.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # the Python with pydicom

# relative path -> (substring of the message, why the normalizer refuses a file the reader reads)
NORMALIZER_FAILURES = {
    "test_files/badVR.dcm": ('(0028,0008) NumberOfFrames: "1A" is not a frame count',
                             "the frame count is not a number, so ImageFrames cannot be built"),
}

UN_SQ = ("(300C,0002) ReferencedRTPlanSequence is written as explicit UN with a defined length; "
         "pydicom and DCMTK parse such a UN as the implicit-VR sequence the dictionary says it "
         "is, our reader keeps UN bytes (it parses only undefined-length UN), so the document "
         "has 300C0002 as UN base64 instead of ReferencedRTPlanSequence")
# relative path -> {key: why our document legitimately differs from the pydicom oracle's}
PYDICOM_DIFFERENCES = {
    "test_files/rtdose_rle.dcm": {"300C0002": UN_SQ, "ReferencedRTPlanSequence": UN_SQ},
    "test_files/rtdose_rle_1frame.dcm": {"300C0002": UN_SQ, "ReferencedRTPlanSequence": UN_SQ},
}

# How dcm2json's DICOM JSON maps to HealthImaging typing (absorbed in expect_value below):
REPRESENTATION = {
    "IS/DS": "dcm2json writes numbers, HealthImaging strings with padding: compared as numbers",
    "PN": "dcm2json writes {Alphabetic, Ideographic, Phonetic}, HealthImaging the plain "
          "'A=I=P' string",
    "empty": "dcm2json leaves out Value for an empty attribute, HealthImaging writes null",
    "PN delimiters": "dcm2json drops a name made only of delimiters ('^^^^'); we keep the text "
                     "(as pydicom does): compared as empty",
    "text padding": "dcm2json trims leading spaces of some VRs; compared after strip()",
    "VM": "dcm2json's Value is always a list; HealthImaging's is a scalar when the VM is 1",
    "UN": "an explicit UN of a known tag is typed by its dictionary VR in HealthImaging (as "
          "pydicom does); dcm2json keeps InlineBinary: compared only for UN kept as bytes",
    "0008,0005": "dcm2json rewrites Specific Character Set to ISO_IR 192 after converting",
    "meta": "dcm2json prints the data set only; the meta group (0002) is checked by pydicom",
    "pixel data": "not carried by HealthImaging; ImageFrames is checked against pydicom",
}

# relative path -> {tag: why our value differs from dcm2json's}, on top of the reader's list
DCM2JSON_DIFFERENCES = {
    "test_files/rtdose_rle.dcm": {"300C0002": UN_SQ},
    "test_files/rtdose_rle_1frame.dcm": {"300C0002": UN_SQ},
}


def run(cmd, stdin=None):
    p = subprocess.run(cmd, capture_output=True, input=stdin)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def same_scalar(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if a == b:
            return True
        # FL: we write the shortest decimal of the float, pydicom the double it widens to
        try:
            return struct.pack("<f", a) == struct.pack("<f", b)
        except OverflowError:
            return False
    return a == b


def diff_docs(ours, theirs, path, out):
    """Appends to out a line for every difference between two JSON values."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for k in list(ours) + [k for k in theirs if k not in ours]:
            if k not in theirs:
                out.append("%s.%s: only ours: %s" % (path, k, json.dumps(ours[k])[:100]))
            elif k not in ours:
                out.append("%s.%s: only pydicom's: %s" % (path, k, json.dumps(theirs[k])[:100]))
            else:
                diff_docs(ours[k], theirs[k], path + "." + k, out)
        if not out and list(ours) != [k for k in ours if k in theirs]:
            out.append("%s: key order" % path)
        return
    if isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            out.append("%s: %d values, pydicom %d" % (path, len(ours), len(theirs)))
            return
        for i, (a, b) in enumerate(zip(ours, theirs)):
            diff_docs(a, b, "%s[%d]" % (path, i), out)
        return
    if not same_scalar(ours, theirs):
        out.append("%s: %s, pydicom %s" % (path, json.dumps(ours, ensure_ascii=False)[:100],
                                          json.dumps(theirs, ensure_ascii=False)[:100]))


def as_list(v):
    return v if isinstance(v, list) else [v]


def pn_text(v):
    if v is None:
        return None
    groups = [v.get(g, "") for g in ("Alphabetic", "Ideographic", "Phonetic")]
    s = "=".join(groups).rstrip("=")
    return s or None


def compare_with_dcm2json(ours, theirs, keys, path, known, diffs):
    """ours: a DICOM map (or a sequence item); theirs: dcm2json's object for the same data set."""
    for tag in sorted(theirs):
        attr = theirs[tag]
        where = path + tag
        if tag in known or tag in corpus.PIXEL_TAGS or tag == "00080005" or tag.endswith("0000"):
            continue
        if tag == "FFFCFFFC":
            continue  # Data Set Trailing Padding: dcmodify drops it, nobody carries it
        key = keys.get(tag, tag)
        if key not in ours:
            diffs.append("%s (%s): missing from our document" % (where, key))
            continue
        mine, vr = ours[key], attr.get("vr")
        if vr == "SQ":
            items = attr.get("Value", [])
            if not items:
                if mine is not None:
                    diffs.append("%s: empty sequence, ours %s" % (where, json.dumps(mine)[:80]))
                continue
            if not isinstance(mine, list) or len(mine) != len(items):
                diffs.append("%s: %d items, ours %s" % (where, len(items), json.dumps(mine)[:80]))
                continue
            for i, (a, b) in enumerate(zip(mine, items)):
                compare_with_dcm2json(a, b, keys, "%s[%d]." % (where, i), {}, diffs)
            continue
        if "InlineBinary" in attr:
            if vr == "UN" and key != tag:
                continue  # typed by the dictionary VR (REPRESENTATION["UN"])
            try:
                same = isinstance(mine, str) and corpus.same_binary(mine, attr["InlineBinary"])
            except ValueError:
                same = False
            if not same:
                diffs.append("%s: binary value differs: ours %s" % (where, json.dumps(mine)[:80]))
            continue
        if "BulkDataURI" in attr:
            continue
        values = attr.get("Value")
        mine_list = as_list(mine)
        if vr == "PN":
            values = [pn_text(corpus.normalize_pn(v)) for v in values] if values else None
            mine_list = [None if v is None or set(v) <= set("^= ") else v for v in mine_list]
        if values is None:
            if not all(v is None for v in mine_list):
                diffs.append("%s: dcm2json empty, ours %s" % (where, json.dumps(mine)[:80]))
            continue
        if vr in ("IS", "DS"):
            mine_list = [float(v) if v is not None and v.strip() else None for v in mine_list]
        elif mine_list and all(isinstance(v, str) or v is None for v in mine_list):
            mine_list = [v.strip() if v is not None else None for v in mine_list]
            values = [v.strip() if isinstance(v, str) else v for v in values]
            if len(mine_list) == 1 and len(values) > 1:
                values = ["\\".join(v or "" for v in values)]  # VM 1 value holding a '\'
        values = [None if v == "" else v for v in values]
        mine_list = [None if v == "" else v for v in mine_list]
        if len(mine_list) != len(values) or not all(
                corpus.same_number(a, b) if isinstance(a, (int, float)) else a == b
                for a, b in zip(mine_list, values)):
            diffs.append("%s: ours %s, dcm2json %s" % (where, json.dumps(mine, ensure_ascii=False)[:120],
                                                       json.dumps(values, ensure_ascii=False)[:120]))


def flatten_levels(doc):
    """The four DICOM maps of a single-instance document merged (each key is at one level)."""
    series = next(iter(doc["Study"]["Series"].values()))
    inst = next(iter(series["Instances"].values()))
    merged = {}
    for m in (doc["Patient"]["DICOM"], doc["Study"]["DICOM"], series["DICOM"], inst["DICOM"]):
        for k, v in m.items():
            if k in merged:
                raise AssertionError("%s appears at two levels" % k)
            merged[k] = v
    return merged


def check_cli(files, failures):
    good = [p for p in files[:3]]
    bad = "/nonexistent/x.dcm"
    rc, out, err = run([AHILITE, "dump", "--json-lines"] + good + [bad])
    lines = out.decode().splitlines()
    if rc != 1 or len(lines) != len(good) or bad not in err:
        failures.append("--json-lines with a missing file: exit %d, %d lines, stderr %r" %
                        (rc, len(lines), err[:200]))
    for line in lines:
        d = json.loads(line)
        if list(d)[:3] != ["SchemaVersion", "Patient", "Study"] or d["SchemaVersion"] != "1.1":
            failures.append("document does not start with SchemaVersion 1.1: %s" % list(d))
    rc1, compact, _ = run([AHILITE, "dump", good[0]])
    rc2, pretty, _ = run([AHILITE, "dump", "--pretty", good[0]])
    if rc1 or rc2 or json.loads(compact) != json.loads(pretty) or b"\n  " not in pretty \
            or compact.count(b"\n") != 1:
        failures.append("--pretty and compact output differ or are not laid out as promised")
    rc, out, _ = run([AHILITE, "dump", "--help"])
    if rc != 0 or b"--json-lines" not in out or b"DatastoreID" not in out:
        failures.append("--help: exit %d" % rc)
    for args in (["--bogus", good[0]], [], ["--pretty", "--json-lines", good[0]]):
        rc, _, err = run([AHILITE, "dump"] + args)
        if rc != 2 or "ahilite dump:" not in err:
            failures.append("usage error %s: exit %d, %r" % (args, rc, err[:100]))


def main():
    failures = []
    counts = dict(pydicom=0, dcm2json=0, failed=0, no_uid=0)
    with tempfile.TemporaryDirectory() as tmp:
        files = corpus.collect(tmp)
        paths = {rel: path for rel, path in files}
        rc, out, err = run([SYSTEM_PYTHON, ORACLE], "\n".join(p for _, p in files).encode())
        if rc != 0:
            raise SystemExit("dump_oracle.py failed: " + err)
        expect = {}
        for line in out.decode().splitlines():
            r = json.loads(line)
            expect[r["path"]] = r
        for rel, path in files:
            rc, out, err = run([AHILITE, "dump", path])
            exp = expect[path]
            must_fail = corpus.EXPECTED_FAILURES.get(rel) or NORMALIZER_FAILURES.get(rel)
            if "error" in exp and not must_fail:
                must_fail = ("%s is " % exp["error"], "no %s: HealthImaging cannot place it"
                             % exp["error"])
                counts["no_uid"] += 1
            if must_fail:
                if rc != 1 or must_fail[0] not in err or not err.startswith("ahilite dump: "):
                    failures.append("%s: must fail with %r (%s); exit %d, %r" % (
                        rel, must_fail[0], must_fail[1], rc, err.strip()[:200]))
                else:
                    counts["failed"] += 1
                continue
            if rc != 0:
                failures.append("%s: unexpected failure: %s" % (rel, err.strip()[:300]))
                continue
            if "pydicom_error" in exp:
                failures.append("%s: we read it, pydicom cannot (%s)" % (rel, exp["pydicom_error"]))
                continue
            doc = json.loads(out.decode("utf-8"))
            if doc.pop("SchemaVersion", None) != "1.1":
                failures.append("%s: SchemaVersion is not \"1.1\"" % rel)
            diffs = []
            diff_docs(doc, exp["doc"], "", diffs)
            known = PYDICOM_DIFFERENCES.get(rel, {})
            diffs = [d for d in diffs if not any(d.split(":")[0].endswith("." + k) for k in known)]
            if diffs:
                failures.append("%s: %d differences from pydicom:\n    %s" % (
                    rel, len(diffs), "\n    ".join(diffs[:8])))
            else:
                counts["pydicom"] += 1
            # dcm2json, mapped to HealthImaging typing
            if rel in corpus.ORACLE_UNAVAILABLE:
                continue
            theirs, stripped, why = corpus.oracle(path, tmp)
            if theirs is None:
                failures.append("%s: dcm2json failed: %s" % (rel, why.strip()[:200]))
                continue
            known = dict(corpus.KNOWN_DIFFERENCES.get(rel, {}))
            known.update(DCM2JSON_DIFFERENCES.get(rel, {}))
            diffs = []
            compare_with_dcm2json(flatten_levels(doc), theirs, exp["keys"], "", known, diffs)
            if diffs:
                failures.append("%s: %d differences from dcm2json:\n    %s" % (
                    rel, len(diffs), "\n    ".join(diffs[:8])))
            else:
                counts["dcm2json"] += 1
        check_cli([paths[r] for r in ("test_files/CT_small.dcm", "test_files/MR_small.dcm",
                                      "test_files/rtdose.dcm")], failures)
    print("dump corpus: %d files; %d documents equal pydicom's; %d match dcm2json; %d failed as "
          "expected (%d without identity UIDs)" % (len(files), counts["pydicom"],
                                                    counts["dcm2json"], counts["failed"],
                                                    counts["no_uid"]))
    if failures:
        print("FAILURES (%d):" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
