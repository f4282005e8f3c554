#!/usr/bin/env python3
"""Checks the generated data dictionary (src/dicom/dict_table.c) two ways:

1. Reproducibility: running tools/gen_dict.py on /usr/share/libdcmtk17/dicom.dic gives exactly
   the committed file.
2. Agreement with pydicom's dictionary (/usr/lib/python3/dist-packages/pydicom/_dicom_dict.py):
   for every tag both dictionaries hold, keyword, VR (as a set: "US or SS" is our US + SS),
   VM and the retired flag must agree; repeating groups are compared with pydicom's
   RepeatersDictionary. DCMTK's dicom.dic is PS3.6 2022b; pydicom 2.3's is a slightly different
   edition, so a few entries really differ: KNOWN_DIFFERENCES lists each with the reason, and the
   test fails on any other mismatch, and on a listed one that no longer occurs.
"""
import json
import os
import re
import subprocess
import sys

SRC = os.environ.get("AHILITE_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
TABLE = os.path.join(SRC, "src", "dicom", "dict_table.c")
GEN = os.path.join(SRC, "tools", "gen_dict.py")
DIC = "/usr/share/libdcmtk17/dicom.dic"

# "GGGGEEEE field" -> why DCMTK's 2022b dictionary and pydicom's differ there.
KNOWN_DIFFERENCES = {
    "00283006 vr": "LUTData: DCMTK's pseudo-VR 'lt' (US, SS or OW: some writers store signed LUT "
                   "data), which dict.h maps to OW + US/SS; PS3.6 and pydicom say 'US or OW'",
    "213000A0 retired": "ProposedStudySequence: retired in a PS3.6 edition later than DCMTK's 2022b",
    "213000C0 retired": "OriginalImageSequence: retired in a PS3.6 edition later than DCMTK's 2022b",
}

PYDICOM_SCRIPT = r"""
import json
from pydicom._dicom_dict import DicomDictionary, RepeatersDictionary
out = {"exact": {"%08X" % k: v for k, v in DicomDictionary.items()},
       "masked": {k: v for k, v in RepeatersDictionary.items()}}
print(json.dumps(out))
"""

ROW = re.compile(r'^\s*\{0x([0-9A-F]{8}), 0x([0-9A-F]{8}), "([A-Z]*)", "([A-Z]*)", "([^"]*)", '
                 r'"([^"]*)", (true|false)\},$')


def read_table(path):
    exact, masked = {}, []
    with open(path, encoding="ascii") as f:
        for line in f:
            m = ROW.match(line)
            if not m:
                continue
            tag, mask, vr, alt, vm, kw, retired = m.groups()
            vrs = {vr} | {alt[i:i + 2] for i in range(0, len(alt), 2)} if vr else set()
            entry = {"vrs": vrs, "vm": vm, "keyword": kw, "retired": retired == "true"}
            if mask == "FFFFFFFF":
                exact[tag] = entry
            else:
                masked.append((int(tag, 16), int(mask, 16), entry))
    return exact, masked


def pydicom_vrs(vr):
    if vr == "NONE":
        return set()
    return set(vr.split(" or "))


def compare(tag, ours, theirs, problems):
    vr, vm, _name, retired, keyword = theirs
    checks = [
        ("keyword", ours["keyword"], keyword),
        ("vr", sorted(ours["vrs"]), sorted(pydicom_vrs(vr))),
        ("vm", ours["vm"], vm),
        ("retired", ours["retired"], retired == "Retired"),
    ]
    for field, a, b in checks:
        if a != b:
            problems["%s %s" % (tag, field)] = "ours %r, pydicom %r" % (a, b)


def main():
    failures = []
    if os.path.exists(DIC):
        regen = subprocess.run([sys.executable, GEN, DIC], capture_output=True, check=True).stdout
        with open(TABLE, "rb") as f:
            if f.read() != regen:
                failures.append("tools/gen_dict.py %s does not reproduce %s" % (DIC, TABLE))
    else:
        failures.append("%s missing (package libdcmtk17)" % DIC)

    exact, masked = read_table(TABLE)
    if len(exact) < 4500 or len(masked) < 40:
        failures.append("table too small: %d exact, %d masked rows" % (len(exact), len(masked)))
    p = subprocess.run(["/usr/bin/python3", "-c", PYDICOM_SCRIPT], capture_output=True, text=True)
    if p.returncode != 0:
        print("pydicom unavailable: " + p.stderr)
        return 1
    py = json.loads(p.stdout)

    problems = {}
    compared = 0
    for tag, theirs in sorted(py["exact"].items()):
        if tag in exact:
            compare(tag, exact[tag], theirs, problems)
            compared += 1
    # pydicom writes repeaters as '60xx3000' (group) or '002031xx' (element).
    masked_compared = 0
    for key, theirs in sorted(py["masked"].items()):
        tag = int(key.replace("x", "0"), 16)
        hit = [e for t, m, e in masked if t == tag]
        if hit:
            compare(key.upper(), hit[0], theirs, problems)
            masked_compared += 1
    only_ours = sorted(set(exact) - set(py["exact"]))
    only_theirs = sorted(set(py["exact"]) - set(exact))

    for key, what in sorted(problems.items()):
        if key not in KNOWN_DIFFERENCES:
            failures.append("mismatch %s: %s" % (key, what))
    for key in sorted(KNOWN_DIFFERENCES):
        if key not in problems:
            failures.append("listed difference %s no longer occurs: remove it" % key)
    if compared < 4000:
        failures.append("only %d entries in common with pydicom" % compared)
    print("dictionary: %d exact + %d masked rows; compared %d exact and %d repeating entries "
          "with pydicom: %d known differences; %d tags only in dicom.dic (e.g. %s), %d only in "
          "pydicom (e.g. %s)" % (len(exact), len(masked), compared, masked_compared,
                                 len(KNOWN_DIFFERENCES), len(only_ours), only_ours[:3],
                                 len(only_theirs), only_theirs[:3]))
    if failures:
        print("FAILURES (%d):" % len(failures))
        for f in failures[:80]:
            print("  " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
