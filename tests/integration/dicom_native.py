"""The source side of a DICOMweb frames check: what a file's frames are as native pixel data
(Explicit VR Little Endian, DICOMweb's default frame syntax), decoded without ahilite.

DCMTK rewrites the file uncompressed little endian (dcmdrle for RLE, dcmdjpls for JPEG-LS,
dcmconv +te for native files of any byte order; the tools frames_oracle.py names), and pydicom
under the system Python hands out each frame's bytes. Planar configuration is kept as the file
has it. Used by test_dicomweb_orthanc.py and, as a command, by js/test_dicomweb_client_js.mjs:

    dicom_native.py FILE...   prints {"FILE": {"study", "series", "sop", "frames": [sha256...]}}
    dicom_native.py compare FILE < instances.json
                              prints the differences (a JSON list) between pydicom's reading of
                              FILE and of the DICOM JSON instance with its SOPInstanceUID, by the
                              comparison test_dicomweb_wado.py makes
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from frames_oracle import DCMTK_FOR  # noqa: E402

SYS_PY = '/usr/bin/python3'

# System Python: argv[1] a file, argv[2] its native rewrite (or the file itself); prints the UIDs
# and each frame's SHA-256.
_FRAMES = r'''
import hashlib, json, sys
import pydicom
src, native = pydicom.dcmread(sys.argv[1]), pydicom.dcmread(sys.argv[2])
n = native.Rows * native.Columns * native.SamplesPerPixel * native.BitsAllocated // 8
count = int(native.get('NumberOfFrames') or 1)
pixels = native.PixelData
print(json.dumps({'study': src.StudyInstanceUID, 'series': src.SeriesInstanceUID,
                  'sop': src.SOPInstanceUID, 'transferSyntax': str(src.file_meta.TransferSyntaxUID),
                  'frames': [hashlib.sha256(pixels[i * n:(i + 1) * n]).hexdigest()
                             for i in range(count)]}))
'''


# System Python: argv[1], argv[2] two Part-10 files; prints what differs between their data sets
# (the file meta group left out): tags only in one, tags whose value differs, and tags whose VR
# differs.
_DIFF = r'''
import json, sys
import pydicom
a, b = pydicom.dcmread(sys.argv[1]), pydicom.dcmread(sys.argv[2])
def items(ds):
    return {'%08X' % int(e.tag): e for e in ds if e.tag.group != 0x0002}
def value(e):
    if e.VR == 'SQ':
        return [sorted((k, value(v)) for k, v in items(i).items()) for i in e.value]
    if isinstance(e.value, bytes):
        return e.value.hex()
    return repr(e.value)
ia, ib = items(a), items(b)
both = sorted(set(ia) & set(ib))
print(json.dumps({'only_first': sorted(set(ia) - set(ib)), 'only_second': sorted(set(ib) - set(ia)),
                  'differ': ['%s: %.80s / %.80s' % (k, value(ia[k]), value(ib[k]))
                             for k in both if value(ia[k]) != value(ib[k])],
                  'vr_differ': {k: [ia[k].VR, ib[k].VR] for k in both if ia[k].VR != ib[k].VR}}))
'''


def diff(first, second):
    """What differs between two Part-10 files' data sets (pydicom): {only_first, only_second,
    differ, vr_differ}."""
    r = subprocess.run([SYS_PY, '-c', _DIFF, first, second], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError('pydicom comparing %s and %s: %s' % (first, second,
                                                                r.stderr.strip()[-300:]))
    return json.loads(r.stdout)


def describe(path):
    """The file's UIDs and the SHA-256 of each of its frames as native little-endian bytes."""
    with tempfile.TemporaryDirectory(prefix='ahl-native-') as tmp:
        ts = subprocess.run([SYS_PY, '-c', 'import sys, pydicom; print(pydicom.dcmread('
                             'sys.argv[1], stop_before_pixels=True).file_meta.TransferSyntaxUID)',
                             path], capture_output=True, text=True, check=True).stdout.strip()
        native = path
        if ts != '1.2.840.10008.1.2.1':
            native = os.path.join(tmp, 'native.dcm')
            tool = DCMTK_FOR.get(ts, 'dcmconv')
            args = [tool] + (['+te'] if tool == 'dcmconv' else []) + [path, native]
            r = subprocess.run(args, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError('%s: %s' % (' '.join(args), r.stderr.strip()))
        r = subprocess.run([SYS_PY, '-c', _FRAMES, path, native], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError('pydicom on %s: %s' % (path, r.stderr.strip()[-300:]))
        return json.loads(r.stdout)


if __name__ == '__main__':
    if sys.argv[1:2] == ['compare']:
        from test_dicomweb_wado import _COMPARE
        sys.exit(subprocess.run([SYS_PY, '-c', _COMPARE, sys.argv[2]]).returncode)
    print(json.dumps({p: describe(p) for p in sys.argv[1:]}))
