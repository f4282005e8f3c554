"""`ahilite export` end to end: pydicom's CT and MR samples, a multi-frame MR and a two-frame
planar RGB file made from them, MR_small compressed as RLE and JPEG-LS, and the corpus's two-frame
RLE RGB files (checked against DCMTK's decompression), are imported with
`ahilite import`, exported, and checked with pydicom (the system Python has it; no numpy, so
pixels are compared as raw bytes) and with DCMTK's dcmdump: every file parses, the SOP Class and
Instance UIDs match, every attribute of the source that the metadata holds has the source's value,
and the pixel data is the source's byte for byte (for the compressed sources: MR_small's native
bytes). Then PatientName is updated through the server (boto3), and the latest version and version
1 are exported, each with its own name. Also the usage errors.
"""
# pg: full (long: Part-10 writing, checked with DCMTK and pydicom; its reads are those of the API suites)
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

CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files/'

# Writes the made-up sources: a 3-frame MR (16-bit signed) and a 2-frame 3x3 RGB image with
# PlanarConfiguration 1, each with its own UIDs and pixel bytes that differ per frame.
_MAKE_SOURCES = r'''
import sys
import pydicom
corpus, out = sys.argv[1], sys.argv[2]
ds = pydicom.dcmread(corpus + 'MR_small.dcm')
px = ds.PixelData
ds.NumberOfFrames = 3
ds.PixelData = px + px[::-1] + bytes((b * 7 + 3) & 255 for b in px)
ds.SeriesInstanceUID = '1.2.826.0.1.3680043.8.498.7001'
ds.SOPInstanceUID = '1.2.826.0.1.3680043.8.498.7001.1'
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.save_as(out + '/mr_3frame.dcm')
ds = pydicom.dcmread(corpus + 'SC_rgb_small_odd.dcm')
ds.PlanarConfiguration = 1
ds.NumberOfFrames = 2
ds.PixelData = bytes((i * 37 + 11) & 255 for i in range(54))
ds.StudyInstanceUID = '1.2.826.0.1.3680043.8.498.7002'
ds.SeriesInstanceUID = '1.2.826.0.1.3680043.8.498.7002.1'
ds.SOPInstanceUID = '1.2.826.0.1.3680043.8.498.7002.1.1'
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.save_as(out + '/rgb_planar_2frame.dcm')
'''

# Compares an exported file with its source; prints a JSON report. argv: source, exported,
# pixel source (the file whose native PixelData the export must hold), expected PatientName or ''.
_COMPARE = r'''
import json
import sys
import pydicom
src_path, out_path, px_path, name = sys.argv[1:5]
src = pydicom.dcmread(src_path)
out = pydicom.dcmread(out_path)
rep = {'mismatch': [], 'missing': []}
meta_set = {0x00020000, 0x00020001, 0x00020010, 0x00020012, 0x00020013}
for e in src.file_meta:
    if e.tag in meta_set:
        continue
    if e.tag not in out.file_meta or out.file_meta[e.tag].value != e.value:
        rep['mismatch'].append(str(e.tag))
for e in src:
    if e.tag.element == 0 or e.tag in (0x7FE00010,):
        continue
    if name and e.tag == 0x00100010:
        continue
    if e.tag not in out:
        rep['missing'].append(str(e.tag))
    elif out[e.tag].value != e.value:
        rep['mismatch'].append('%s %r != %r' % (e.tag, out[e.tag].value, e.value))
rep['ts'] = str(out.file_meta.TransferSyntaxUID)
rep['impl'] = str(out.file_meta.ImplementationClassUID)
rep['sop'] = [str(out.SOPClassUID), str(out.SOPInstanceUID),
              str(out.file_meta.MediaStorageSOPClassUID),
              str(out.file_meta.MediaStorageSOPInstanceUID)]
rep['src_sop'] = [str(src.SOPClassUID), str(src.SOPInstanceUID)]
rep['name'] = str(out.PatientName)
want = pydicom.dcmread(px_path).PixelData
rep['pixels_equal'] = out.PixelData == want
rep['pixels_len'] = [len(out.PixelData), len(want)]
print(json.dumps(rep))
'''


def run(*args):
    p = subprocess.run([ahltest.server_binary()] + list(args), capture_output=True, text=True,
                       timeout=600)
    return p.returncode, p.stdout, p.stderr


def import_file(data, path, datastore_name=None, datastore_id=None):
    """Imports one file; returns (data store id, image set id)."""
    args = ['import', '--data-dir', data]
    args += ['--create-datastore', datastore_name] if datastore_name else \
        ['--datastore-id', datastore_id]
    rc, out, err = run(*(args + [path]))
    assert rc == 0, out + err
    ds = re.search(r'^created data store ([0-9a-f]{32})', out, re.M)
    sets = re.findall(r'^created image set ([0-9a-f]{32}) \(primary\)$', out, re.M)
    assert len(sets) == 1, out
    return (ds.group(1) if ds else datastore_id), sets[0]


class ExportCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='ahilite-export-')
        cls.src = os.path.join(cls.tmp, 'src')
        os.mkdir(cls.src)
        subprocess.run(['/usr/bin/python3', '-c', _MAKE_SOURCES, CORPUS, cls.src], check=True,
                       timeout=120)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def compare(self, src, exported, pixels_from=None, name=''):
        p = subprocess.run(['/usr/bin/python3', '-c', _COMPARE, src, exported,
                            pixels_from or src, name], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        rep = json.loads(p.stdout)
        self.assertEqual(rep['mismatch'], [], exported)
        self.assertEqual(rep['missing'], [], exported)
        self.assertEqual(rep['ts'], '1.2.840.10008.1.2.1')
        self.assertTrue(rep['impl'].startswith('2.25.'))
        self.assertEqual(rep['sop'], rep['src_sop'] * 2)
        self.assertTrue(rep['pixels_equal'], (exported, rep['pixels_len']))
        d = subprocess.run(['dcmdump', '-q', exported], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertNotRegex(d.stderr, r'(?m)^[EW]:', d.stderr)
        self.assertIn('(7fe0,0010)', d.stdout)
        return rep

    def export(self, data, ds, s, out, *extra):
        rc, stdout, err = run('export', '--data-dir', data, '--datastore-id', ds,
                              '--image-set-id', s, *extra, out)
        self.assertEqual(rc, 0, stdout + err)
        self.assertRegex(stdout, r'^exported 1 instance of image set %s' % s)
        files = os.listdir(out)
        self.assertEqual(len(files), 1, files)
        return os.path.join(out, files[0])

    def test_native_sources(self):
        data = os.path.join(self.tmp, 'native')
        sources = [CORPUS + 'CT_small.dcm', CORPUS + 'MR_small.dcm',
                   os.path.join(self.src, 'mr_3frame.dcm'),
                   os.path.join(self.src, 'rgb_planar_2frame.dcm')]
        ds = None
        for i, path in enumerate(sources):
            ds, s = import_file(data, path, None if ds else 'native', ds)
            out = os.path.join(self.tmp, 'out-native-%d' % i)
            exported = self.export(data, ds, s, out)
            self.compare(path, exported)

    def test_compressed_sources(self):
        # Each in a data store of its own: they share MR_small's UIDs.
        for name in ('MR_small_RLE.dcm', 'MR_small_jpeg_ls_lossless.dcm'):
            data = os.path.join(self.tmp, 'c-' + name)
            ds, s = import_file(data, CORPUS + name, datastore_name='c')
            exported = self.export(data, ds, s, os.path.join(self.tmp, 'out-' + name))
            self.compare(CORPUS + name, exported, pixels_from=CORPUS + 'MR_small.dcm')

    def test_multiframe_rle(self):
        # The corpus's own multi-frame files (RLE, RGB, 8 and 16 bits), checked against DCMTK's
        # decompression of the source (pydicom needs numpy to decode RLE).
        for name in ('SC_rgb_rle_2frame.dcm', 'SC_rgb_rle_16bit_2frame.dcm'):
            data = os.path.join(self.tmp, 'm-' + name)
            ds, s = import_file(data, CORPUS + name, datastore_name='m')
            exported = self.export(data, ds, s, os.path.join(self.tmp, 'out-' + name))
            native = os.path.join(self.tmp, 'native-' + name)
            subprocess.run(['dcmdrle', CORPUS + name, native], check=True, timeout=60,
                           capture_output=True)
            self.compare(CORPUS + name, exported, pixels_from=native)

    def test_versions(self):
        ids = {}

        def before_start(srv):
            ids['ds'], ids['set'] = import_file(srv.data_dir, CORPUS + 'CT_small.dcm', 'v')

        srv = ahltest.Server(before_start=before_start)
        try:
            mi = ahltest.boto3_client(srv)
            upd = {'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': 'DOE^JANE'}}}
            r = mi.update_image_set_metadata(
                datastoreId=ids['ds'], imageSetId=ids['set'], latestVersionId='1',
                updateImageSetMetadataUpdates={'DICOMUpdates': {
                    'updatableAttributes': json.dumps(upd).encode()}})
            self.assertEqual(r['latestVersionId'], '2')
            self.assertEqual(srv.stop(), 0, srv.log_text())
            latest = self.export(srv.data_dir, ids['ds'], ids['set'],
                                 os.path.join(srv.tmp, 'latest'))
            rep = self.compare(CORPUS + 'CT_small.dcm', latest, name='DOE^JANE')
            self.assertEqual(rep['name'], 'DOE^JANE')
            v1 = self.export(srv.data_dir, ids['ds'], ids['set'], os.path.join(srv.tmp, 'v1'),
                             '--version-id', '1')
            rep = self.compare(CORPUS + 'CT_small.dcm', v1)
            self.assertEqual(rep['name'], 'CompressedSamples^CT1')
            rc, out, err = run('export', '--data-dir', srv.data_dir, '--datastore-id', ids['ds'],
                               '--image-set-id', ids['set'], '--version-id', '3',
                               os.path.join(srv.tmp, 'v3'))
            self.assertEqual(rc, 1, out + err)
            self.assertIn('ahilite export: ', err)
        finally:
            srv.stop()
            srv.cleanup()

    def test_usage(self):
        rc, out, _ = run('export', '--help')
        self.assertEqual(rc, 0)
        self.assertIn('usage: ahilite export', out)
        rc, _, err = run('export', '--data-dir', self.tmp, 'out')
        self.assertEqual(rc, 2)
        self.assertIn('required', err)
        rc, _, err = run('export', '--datastore-id', 'a', '--image-set-id', 'b',
                         '--version-id', 'x', 'out')
        self.assertEqual(rc, 2)
        if os.environ.get('AHL_TEST_DATABASE'):
            return  # the database is PostgreSQL's, not a file the data directory may lack
        rc, _, err = run('export', '--data-dir', os.path.join(self.tmp, 'none'),
                         '--datastore-id', 'a', '--image-set-id', 'b', 'out')
        self.assertEqual(rc, 2)
        self.assertIn('no database', err)


if __name__ == '__main__':
    unittest.main(verbosity=2)
