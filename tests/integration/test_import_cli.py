"""`ahilite import` of the whole pydicom corpus into a temporary data directory: the exact set of
files that must fail (with reasons), everything else imported, exit status 1 because some failed,
a second run (one worker, other heap contents) that finds every file unchanged, then `ahilite
check` passes. Also the usage errors, and that memory does not grow with --workers beyond the
memory budget (docs/commands.md#ahilite-import).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files'

# Files of the corpus that HealthImaging would refuse, and a word of the reason each must give.
EXPECTED_FAILURES = {
    'README.txt': 'not a DICOM file',
    'MR_truncated.dcm': 'truncated',
    'rtplan_truncated.dcm': 'truncated',
    'rtplan.dump': 'not a DICOM file',
    'rtstruct.dump': 'not a DICOM file',
    'test1.json': 'not a DICOM file',
    'test_PN.json': 'not a DICOM file',
    'zipMR.gz': 'not a DICOM file',
    'no_meta.dcm': 'not a DICOM file',
    'badVR.dcm': 'NumberOfFrames',
    'UN_sequence.dcm': 'StudyInstanceUID',
    'empty_charset_LEI.dcm': 'StudyInstanceUID',
    'meta_missing_tsyntax.dcm': 'StudyInstanceUID',
    'nested_priv_SQ.dcm': 'StudyInstanceUID',
    'no_meta_group_length.dcm': 'StudyInstanceUID',
    'priv_SQ.dcm': 'StudyInstanceUID',
    'SC_rgb_rle_32bit.dcm': 'BitsAllocated 32',
    'SC_rgb_rle_32bit_2frame.dcm': 'BitsAllocated 32',
    'rtdose.dcm': 'BitsAllocated 32',
    'rtdose_1frame.dcm': 'BitsAllocated 32',
    'rtdose_expb.dcm': 'BitsAllocated 32',
    'rtdose_expb_1frame.dcm': 'BitsAllocated 32',
    'rtdose_rle.dcm': 'BitsAllocated 32',
    'rtdose_rle_1frame.dcm': 'BitsAllocated 32',
    # Pixel data the JPEG 2000 decoder refuses (a sequence delimiter inside the codestream).
    'JPEG2000-embedded-sequence-delimiter.dcm': 'JPEG 2000',
    'dicomdirtests/DICOMDIR': 'StudyInstanceUID',
    'dicomdirtests/DICOMDIR-bigEnd': 'StudyInstanceUID',
    'dicomdirtests/DICOMDIR-empty.dcm': 'StudyInstanceUID',
    'dicomdirtests/DICOMDIR-implicit': 'StudyInstanceUID',
    'dicomdirtests/DICOMDIR-nooffset': 'truncated',
    'dicomdirtests/DICOMDIR-nopatient': 'StudyInstanceUID',
    'dicomdirtests/DICOMDIR-reordered': 'StudyInstanceUID',
    'dicomdirtests/README.txt': 'not a DICOM file',
    'dicomdirtests/TINY_ALPHA/DICOMDIR': 'StudyInstanceUID',
    'dicomdirtests/TINY_ALPHA/README': 'not a DICOM file',
}


def run(*args, env=None):
    p = subprocess.run([ahltest.server_binary()] + list(args), capture_output=True, text=True,
                       timeout=600, env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout, p.stderr


def count_files(top):
    return sum(len(files) for _, _, files in os.walk(top))


class ImportCli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='ahilite-import-')
        self.data = os.path.join(self.tmp, 'data')

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def parse(self, out):
        failed = {}
        section = None
        for line in out.splitlines():
            if line.startswith('failed '):
                section = 'failed'
                continue
            if line.startswith('skipped '):
                section = 'skipped'
                continue
            if section == 'failed' and line.startswith('  '):
                path, _, reason = line.strip().partition(': ')
                failed[os.path.relpath(path, CORPUS)] = reason
        m = re.search(r'^imported (\d+) file', out, re.M)
        imported = int(m.group(1)) if m else None
        m = re.search(r'^  (\d+) already imported, unchanged', out, re.M)
        unchanged = int(m.group(1)) if m else 0
        return imported, unchanged, failed

    def test_corpus(self):
        total = count_files(CORPUS)
        rc, out, err = run('import', '--data-dir', self.data, '--create-datastore', 'corpus',
                           '--workers', '2', CORPUS)
        self.assertEqual(rc, 1, out + err)  # some files fail
        imported, _, failed = self.parse(out)
        self.assertEqual(set(failed), set(EXPECTED_FAILURES), out)
        for name, word in EXPECTED_FAILURES.items():
            self.assertIn(word, failed[name], name)
            self.assertTrue(failed[name].startswith('ValidationException: '), failed[name])
        self.assertEqual(imported, total - len(EXPECTED_FAILURES), out)
        created = re.findall(r'^created image set ([0-9a-f]{32}) \((primary|non-primary)\)$',
                             out, re.M)
        self.assertGreater(len(created), 10)
        self.assertIn('primary', [c[1] for c in created])
        # JPEG2000.dcm shares CT_small's series but names another institution: non-primary.
        self.assertIn('non-primary', [c[1] for c in created])
        self.assertRegex(out, r'warning: .*JPEG2000\.dcm: .*InstitutionName')

        # Second run, on one worker and with malloc filling new blocks with other bytes
        # (MALLOC_PERTURB_): the data store is found alone and every file is unchanged, since
        # frame ids are content addresses and HTJ2K encoding must not depend on heap contents.
        rc, out2, err2 = run('import', '--data-dir', self.data, '--workers', '1', CORPUS,
                             env={'MALLOC_PERTURB_': '90'})
        self.assertEqual(rc, 1, out2 + err2)
        imported2, unchanged2, failed2 = self.parse(out2)
        self.assertEqual(set(failed2), set(EXPECTED_FAILURES))
        self.assertEqual(unchanged2, total - len(EXPECTED_FAILURES), out2)
        self.assertEqual(imported2, 0, out2)
        self.assertNotIn('created image set', out2)

        rc, out, err = run('check', '--data-dir', self.data)
        self.assertEqual(rc, 0, out + err)

    def test_only_good_files_exit_zero(self):
        rc, out, err = run('import', '--data-dir', self.data, '--create-datastore', 'x',
                           os.path.join(CORPUS, 'CT_small.dcm'), os.path.join(CORPUS, 'MR_small.dcm'))
        self.assertEqual(rc, 0, out + err)
        self.assertRegex(out, r'imported 2 files')
        self.assertEqual(len(re.findall(r'^created image set', out, re.M)), 2)

    def test_memory_does_not_grow_with_workers(self):
        """40 files of 512x512 16-bit frames (each estimated at 3 MiB to transcode) imported with
        --memory-budget 8 by 1 worker and by 16: the 16 workers' peak RSS stays within the
        1-worker peak plus the budget and 1 MiB a worker (its stack and small buffers), where 16
        frames transcoded at once would take about 48 MiB more."""
        src = os.path.join(self.tmp, 'big')
        os.makedirs(src)
        subprocess.run(['/usr/bin/python3', '-c', '''
import sys, pydicom
from pydicom.uid import ExplicitVRLittleEndian
ds = pydicom.dcmread(sys.argv[1])
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.Rows = ds.Columns = 512
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
base = bytes((k * 7919) % 251 for k in range(512 * 512 * 2))
for i in range(40):
    ds.SOPInstanceUID = '1.2.826.0.1.3680043.8.498.9294.1.1.%d' % i
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    px = bytearray(base)
    px[1::2] = bytes(b & 0x0F for b in px[1::2])
    px[0] = i
    ds.PixelData = bytes(px)
    ds.save_as('%s/b%02d.dcm' % (sys.argv[2], i), write_like_original=False)
''', os.path.join(CORPUS, 'CT_small.dcm'), src], check=True, timeout=300)
        peak = {}
        for workers in (1, 16):
            data = os.path.join(self.tmp, 'data-%d' % workers)
            timing = os.path.join(self.tmp, 'time-%d' % workers)
            p = subprocess.run(['/usr/bin/time', '-o', timing, '-f', '%M',
                                ahltest.server_binary(), 'import', '--data-dir', data,
                                '--create-datastore', 'x', '--workers', str(workers),
                                '--memory-budget', '8', src], capture_output=True, text=True,
                               timeout=600)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertRegex(p.stdout, r'imported 40 files \(40 frames\)')
            with open(timing) as f:
                peak[workers] = int(f.read().split()[-1]) / 1024  # MiB
        self.assertLessEqual(peak[16], peak[1] + 8 + 16, peak)

    def test_usage(self):
        rc, out, _ = run('import', '--help')
        self.assertEqual(rc, 0)
        self.assertIn('--create-datastore', out)
        rc, _, err = run('import', '--data-dir', self.data)
        self.assertEqual(rc, 2)
        rc, _, err = run('import', '--bogus', 'x')
        self.assertEqual(rc, 2)
        rc, _, err = run('import', '--datastore-id', 'a', '--create-datastore', 'b', 'x')
        self.assertEqual(rc, 2)
        # No data store yet and none named.
        rc, _, err = run('import', '--data-dir', self.data, os.path.join(CORPUS, 'CT_small.dcm'))
        self.assertEqual(rc, 1)
        self.assertIn('--create-datastore', err)
        rc, _, err = run('import', '--data-dir', self.data, '--datastore-id',
                         '0' * 32, os.path.join(CORPUS, 'CT_small.dcm'))
        self.assertEqual(rc, 1)
        self.assertIn('does not exist', err)

    def test_lossless_storage_format_usage(self):
        rc, out, _ = run('import', '--help')
        self.assertIn('--lossless-storage-format', out)
        rc, out, _ = run('frames', '--help')
        self.assertIn('JPEG_2000_LOSSLESS', out)
        ct = os.path.join(CORPUS, 'CT_small.dcm')
        data = self.data
        # The format is chosen when a data store is created, and must be one CreateDatastore
        # takes; a refused command creates nothing.
        rc, _, err = run('import', '--data-dir', data, '--lossless-storage-format',
                         'JPEG_2000_LOSSLESS', ct)
        self.assertEqual(rc, 2)
        self.assertIn('--create-datastore', err)
        rc, _, err = run('import', '--data-dir', data, '--create-datastore', 'x',
                         '--lossless-storage-format', 'JPEG2000', ct)
        self.assertEqual(rc, 2)
        self.assertIn("'JPEG2000' is neither HTJ2K nor JPEG_2000_LOSSLESS", err)
        if not ahltest.on_postgres():
            self.assertFalse(os.path.exists(data))
        rc, _, err = run('frames', '--lossless-storage-format', 'j2k', ct)
        self.assertEqual(rc, 2)
        self.assertIn("'j2k' is neither", err)
        # Into a new JPEG 2000 data store, then into it again by id: .4.90 frames both times.
        rc, out, err = run('import', '--data-dir', data, '--create-datastore', 'j2k',
                           '--lossless-storage-format', 'JPEG_2000_LOSSLESS', ct)
        self.assertEqual(rc, 0, out + err)
        rc, out, _ = run('frames', '--lossless-storage-format', 'JPEG_2000_LOSSLESS', ct)
        self.assertEqual(rc, 0)
        frame = json.loads(out)
        self.assertEqual((frame['StoredTransferSyntaxUID'], frame['ContentType']),
                         ('1.2.840.10008.1.2.4.90', 'image/j2c'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
