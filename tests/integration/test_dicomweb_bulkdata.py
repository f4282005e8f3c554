"""GetDICOMBulkdata end to end. pydicom (the system Python) writes a CT with a 2 MB
EncapsulatedDocument (0042,0011) OB and a 300 KB private OW value, both larger than the Part-10
reader's inline limit, plus a big-endian and a deflated copy of it; `ahilite import` stores them. Instance, series
and study metadata give each value as a BulkDataURI below the instance's bulkdata resource (with
?imageSetId=&versionId= when the request selects a set); the resource answers the value's bytes,
identical to the source, as multipart/related (botocore-signed) or as application/octet-stream;
the retrieved instance (GetDICOMInstance) and `ahilite export` hold the values again, byte for
byte, read by pydicom. UpdateImageSetMetadata cannot set BulkData, even with force. An id the
instance does not list is 404; a stored object damaged on disk is
a 500 and never served, and `ahilite check` reports it."""
import gzip
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SRV = None
MI = None
DS = None
ROOT = '1.2.826.0.1.3680043.8.498.4711.'
SRC = None     # the little-endian file
SRC_BE = None  # its explicit VR big endian copy (another SOP instance, same series)
SRC_DF = None  # its deflated copy (a third one)

_MAKE = r'''
import sys, os
import pydicom
from pydicom.uid import ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian
out, root, sample = sys.argv[1], sys.argv[2], sys.argv[3]
doc = bytes((i * 7 + 3) % 251 for i in range(2 * 1024 * 1024))
priv = bytes((i * 13 + 1) % 256 for i in range(300 * 1024))
for name, sop, ts in (('le.dcm', '1.1.1', None), ('be.dcm', '1.1.2', ExplicitVRBigEndian),
                      ('df.dcm', '1.1.3', DeflatedExplicitVRLittleEndian)):
    ds = pydicom.dcmread(sample)
    ds.StudyInstanceUID = root + '1'
    ds.SeriesInstanceUID = root + '1.1'
    ds.SOPInstanceUID = root + sop
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.add_new(0x00420011, 'OB', doc)
    blk = ds.private_block(0x0099, 'AHL TEST', create=True)
    blk.add_new(0x10, 'OW', priv)
    if ts:
        ds.file_meta.TransferSyntaxUID = ts
        ds.is_little_endian = ts != ExplicitVRBigEndian
        ds.is_implicit_VR = False
    ds.save_as(os.path.join(out, name))
'''

# argv[1] a Part-10 file, argv[2] the source: prints the two values' equality as JSON.
_CHECK = r'''
import sys, json
from array import array
import pydicom

def words(ds):  # the OW value as numbers, whatever the file's byte order
    w = array('H', ds[0x00991010].value)
    if not ds.is_little_endian:
        w.byteswap()
    return w.tolist()

a, b = pydicom.dcmread(sys.argv[1]), pydicom.dcmread(sys.argv[2])
print(json.dumps({'doc': a[0x00420011].value == b[0x00420011].value,
                  'priv': words(a) == words(b),
                  'vr': [a[0x00420011].VR, a[0x00991010].VR],
                  'sop': str(a.SOPInstanceUID)}))
'''


def make_and_import(server):
    global SRC, SRC_BE, SRC_DF
    subprocess.run(['/usr/bin/python3', '-c', _MAKE, server.tmp, ROOT, ahltest.CT_SAMPLE],
                   check=True, timeout=120)
    SRC, SRC_BE, SRC_DF = (os.path.join(server.tmp, n) for n in ('le.dcm', 'be.dcm', 'df.dcm'))
    ahltest.import_files(server, 'bulk', [SRC, SRC_BE, SRC_DF])


def setUpModule():
    global SRV, MI, DS
    SRV = ahltest.Server(before_start=make_and_import)
    MI = ahltest.boto3_client(SRV)
    DS = MI.list_datastores()['datastoreSummaries'][0]['datastoreId']


def tearDownModule():
    SRV.finish()


def get(path, query='', accept=None):
    return ahltest.raw('GET', SRV.endpoint, '/datastore/%s%s' % (DS, path), query,
                       headers={'Accept': accept} if accept else None)


def source_values(path):
    p = subprocess.run(['/usr/bin/python3', '-c',
                        'import sys, pydicom; d = pydicom.dcmread(sys.argv[1]); '
                        'sys.stdout.buffer.write(d[0x00420011].value); '
                        'sys.stdout.buffer.write(d[0x00991010].value)', path],
                       capture_output=True, check=True, timeout=60)
    return p.stdout[:2 * 1024 * 1024], p.stdout[2 * 1024 * 1024:]


def check_file(data, source):
    with tempfile.NamedTemporaryFile(suffix='.dcm') as f:
        f.write(data)
        f.flush()
        p = subprocess.run(['/usr/bin/python3', '-c', _CHECK, f.name, source],
                           capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def source_of(text):
    """The source file of the instance whose SOPInstanceUID text holds."""
    for sop, src in (('1.1.1', SRC), ('1.1.2', SRC_BE), ('1.1.3', SRC_DF)):
        if ROOT + sop in text:
            return src
    raise AssertionError('no known SOPInstanceUID')


def set_of_study():
    return MI.search_image_sets(datastoreId=DS, searchCriteria={'filters': [
        {'values': [{'DICOMStudyInstanceUID': ROOT + '1'}], 'operator': 'EQUAL'}]}
    )['imageSetsMetadataSummaries'][0]['imageSetId']


INST = '/studies/%s1/series/%s1.1/instances/%s1.1.1' % (ROOT, ROOT, ROOT)


class Bulkdata(unittest.TestCase):
    def metadata(self, path, query=''):
        status, headers, body = get(path, query)
        self.assertEqual(status, 200, body[:300])
        return json.loads(body)

    def test_1_metadata_gives_bulk_data_uris(self):
        got = self.metadata(INST + '/metadata')
        self.assertEqual(len(got), 1)
        doc, priv = got[0]['00420011'], got[0]['00991010']
        self.assertEqual(doc['vr'], 'OB')
        self.assertEqual(priv['vr'], 'OW')
        prefix = '%s/datastore/%s%s/bulkdata/' % (SRV.endpoint, DS, INST)
        self.assertTrue(doc['BulkDataURI'].startswith(prefix), doc)
        self.assertTrue(priv['BulkDataURI'].startswith(prefix), priv)
        self.assertNotIn('InlineBinary', doc)
        series = self.metadata('/studies/%s1/series/%s1.1/metadata' % (ROOT, ROOT))
        self.assertEqual(len(series), 3)
        for inst in series:
            self.assertIn('BulkDataURI', inst['00420011'])
        study = self.metadata('/studies/%s1/metadata' % ROOT)
        self.assertEqual(sorted(i['00420011']['BulkDataURI'] for i in study),
                         sorted(i['00420011']['BulkDataURI'] for i in series))
        # The selection parameters follow, as for the pixel data's URI.
        set_id = set_of_study()
        sel = self.metadata(INST + '/metadata', 'imageSetId=%s&versionId=1' % set_id)
        self.assertTrue(sel[0]['00420011']['BulkDataURI'].endswith(
            '?imageSetId=%s&versionId=1' % set_id), sel[0]['00420011'])

    def bulk(self, uri, accept=None):
        path = uri.split('/datastore/%s' % DS, 1)[1]
        path, _, query = path.partition('?')
        return get(path, query, accept)

    def test_2_bulkdata_returns_the_bytes(self):
        for src, sop in ((SRC, '1.1.1'), (SRC_BE, '1.1.2'), (SRC_DF, '1.1.3')):
            want_doc, want_priv = source_values(src)
            if src == SRC_BE:  # OW words of a big-endian file are answered little endian
                want_priv = b''.join(want_priv[i + 1:i + 2] + want_priv[i:i + 1]
                                     for i in range(0, len(want_priv), 2))
            inst = self.metadata('/studies/%s1/series/%s1.1/instances/%s%s/metadata' %
                                 (ROOT, ROOT, ROOT, sop))[0]
            for tag, want in (('00420011', want_doc), ('00991010', want_priv)):
                status, headers, body = self.bulk(inst[tag]['BulkDataURI'])
                self.assertEqual(status, 200, body[:300])
                self.assertTrue(headers['content-type'].startswith(
                    'multipart/related; type="application/octet-stream"'), headers)
                parts = ahltest.parts_of(headers, body)
                self.assertEqual(len(parts), 1)
                self.assertEqual(parts[0][0], 'application/octet-stream')
                self.assertEqual(parts[0][1], want, (src, tag))
                status, headers, body = self.bulk(inst[tag]['BulkDataURI'],
                                                  accept='application/octet-stream')
                self.assertEqual(status, 200)
                self.assertEqual(headers['content-type'], 'application/octet-stream')
                self.assertEqual(body, want)

    def test_3_retrieved_and_exported_instances_hold_the_values(self):
        status, headers, body = get(INST, accept='application/dicom')
        self.assertEqual(status, 200, body[:300])
        got = check_file(body, SRC)
        self.assertEqual(got, {'doc': True, 'priv': True, 'vr': ['OB', 'OW'],
                               'sop': ROOT + '1.1.1'})
        status, headers, body = get(INST[:-len('/instances/%s1.1.1' % ROOT)],
                                    accept='multipart/related; type="application/dicom"')
        self.assertEqual(status, 200)
        parts = ahltest.parts_of(headers, body)
        self.assertEqual(len(parts), 3)
        sops = []
        for _, data in parts:
            got = check_file(data, source_of(data.decode('latin-1')))
            self.assertEqual((got['doc'], got['priv']), (True, True), got['sop'])
            sops.append(got['sop'])
        self.assertEqual(sorted(sops), [ROOT + '1.1.1', ROOT + '1.1.2', ROOT + '1.1.3'])
        with tempfile.TemporaryDirectory() as out:
            p = subprocess.run([ahltest.server_binary(), 'export', '--data-dir', SRV.data_dir,
                                '--datastore-id', DS, '--image-set-id', set_of_study(), out],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            files = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
            self.assertEqual(len(files), 3, files)
            for f in files:
                with open(f, 'rb') as fh:
                    got = check_file(fh.read(), source_of(f))
                self.assertTrue(got['doc'] and got['priv'], (f, got))

    def test_4_unknown_id_is_not_found(self):
        status, headers, body = get(INST + '/bulkdata/' + '0' * 32)
        self.assertEqual(status, 404, body[:300])
        status, headers, body = get(INST + '/bulkdata/nonsense')
        self.assertEqual(status, 404, body[:300])
        status, headers, body = get(
            '/studies/%s1/series/%s1.1/instances/%s9.9/bulkdata/%s' % (ROOT, ROOT, ROOT, '0' * 32))
        self.assertEqual(status, 404, body[:300])

    def test_4b_updates_cannot_touch_bulk_data(self):
        set_id = set_of_study()
        latest = MI.get_image_set(datastoreId=DS, imageSetId=set_id)['versionId']
        forged = {'ID': '0' * 32, 'VR': 'OB', 'Length': 1}
        for where in ({'BulkData': {'00420011': forged}},
                      {'DICOM': {'BulkData': {'00420011': forged}}}):
            change = {'SchemaVersion': 1.1, 'Study': {'Series': {ROOT + '1.1': {
                'Instances': {ROOT + '1.1.1': where}}}}}
            for force in (False, True):
                with self.assertRaises(MI.exceptions.ValidationException):
                    MI.update_image_set_metadata(
                        datastoreId=DS, imageSetId=set_id, latestVersionId=latest, force=force,
                        updateImageSetMetadataUpdates={'DICOMUpdates': {
                            'updatableAttributes': json.dumps(change).encode()}})
        blob = MI.get_image_set_metadata(datastoreId=DS, imageSetId=set_id)['imageSetMetadataBlob']
        meta = json.loads(gzip.decompress(blob.read()))
        inst = meta['Study']['Series'][ROOT + '1.1']['Instances'][ROOT + '1.1.1']
        self.assertEqual(sorted(inst['BulkData']), ['00420011', '00991010'])
        self.assertEqual(inst['BulkData']['00420011']['Length'], 2 * 1024 * 1024)
        self.assertEqual(inst['BulkData']['00420011']['VR'], 'OB')

    @unittest.skipIf(os.environ.get('AHL_TEST_BLOB_STORE'),
                     'it damages a frame file; damaged objects on S3: test_frames_s3.py')
    def test_5_damaged_object_is_never_served(self):
        inst = self.metadata(INST + '/metadata')[0]
        uri = inst['00991010']['BulkDataURI']
        oid = uri.rsplit('/', 1)[1].split('?')[0]
        path = os.path.join(SRV.data_dir, 'frames', oid[:2], oid[2:4], oid)
        with open(path, 'r+b') as f:
            f.seek(1000)
            b = f.read(1)
            f.seek(1000)
            f.write(bytes([b[0] ^ 0xFF]))
        try:
            status, headers, body = self.bulk(uri)
            self.assertEqual(status, 500, body[:300])
            self.assertNotIn(b'\r\n\r\n', body[:200])
            status, headers, body = get(INST, accept='application/dicom')
            self.assertEqual(status, 500, body[:300])
            p = subprocess.run([ahltest.server_binary(), 'check', '--data-dir', SRV.data_dir],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn("BulkData['00991010']", p.stdout + p.stderr)
        finally:
            with open(path, 'r+b') as f:
                f.seek(1000)
                f.write(b)
        status, headers, body = self.bulk(uri)
        self.assertEqual(status, 200)
        p = subprocess.run([ahltest.server_binary(), 'check', '--data-dir', SRV.data_dir],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


if __name__ == '__main__':
    unittest.main()
