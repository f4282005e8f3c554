"""DICOMweb (WADO-RS) end to end: pydicom's CT, MR and a two-frame RGB sample, and a native
two-frame file made from the CT, imported with `ahilite import`; then the series, instance and
study metadata resources and the frames resource below
/datastore/{id}, signed with botocore's SigV4Auth (service medical-imaging) and once with curl's
--aws-sigv4. The JSON is read back with pydicom (Dataset.from_json, with the system Python, which
has pydicom) and compared, attribute by attribute, with pydicom reading the source file. An
UpdateImageSetMetadata through boto3 shows in the default answer, the older version with
?imageSetId=&versionId=; errors are 404 and 400 with the API's error shapes, and an unsigned
request is refused. Frames come back decoded to Explicit VR Little Endian by default (equal to
the source's native pixel data), as stored with transfer-syntax=* (equal to GetImageFrame's
bytes), and 406 for a syntax that is not stored."""
# pg: full (long: renders metadata and frames; its reads are those of the API suites)
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files'
CT = 'CT_small.dcm'
MR = 'MR_small.dcm'
MULTI = 'SC_rgb_rle_2frame.dcm'
SRV = None
MI = None
DS = None

# Run with the system Python (pydicom): argv[1] a source file, stdin a JSON array of DICOM JSON
# instances; prints a JSON list of the differences between pydicom's reading of the two.
_COMPARE = r'''
import json, sys, warnings
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

def norm(v):
    if isinstance(v, Sequence):
        return [norm_ds(i) for i in v]
    if isinstance(v, (list, pydicom.multival.MultiValue)):
        return [norm(x) for x in v]
    if isinstance(v, (int, float)):
        return '%.6g' % float(v)  # FL values come back as the shortest decimal of the float
    if isinstance(v, PersonName):
        return str(v)
    if isinstance(v, bytes):
        return v.hex()
    return str(v).strip() if v is not None else ''

def norm_ds(ds):
    out = {}
    for el in ds:
        if el.tag.group == 0x0002 or el.tag.element == 0 or el.tag == 0x7FE00010:
            continue
        v = norm(el.value)
        if v in ('', [], None):
            continue
        out['%08X' % int(el.tag)] = v
    return out

src = pydicom.dcmread(sys.argv[1])
sop = src.SOPInstanceUID
instances = json.load(sys.stdin)
with warnings.catch_warnings():
    warnings.simplefilter('error')
    got = [Dataset.from_json(i, bulk_data_uri_handler=lambda tag, vr, uri: b'') for i in instances]
mine = [d for d in got if d.SOPInstanceUID == sop]
problems = []
if len(mine) != 1:
    problems.append('%d instances with SOPInstanceUID %s' % (len(mine), sop))
else:
    a, b = norm_ds(src), norm_ds(mine[0])
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            problems.append('%s: file %r, DICOMweb %r' % (k, str(a.get(k))[:200], str(b.get(k))[:200]))
print(json.dumps(problems))
'''


NATIVE2 = None  # path of the two-frame file, set on import


def import_samples(server):
    global NATIVE2
    NATIVE2 = os.path.join(server.tmp, 'ct_two_frames.dcm')
    ahltest.two_frame_ct(NATIVE2, '1.2.826.0.1.3680043.8.498.4242.')
    p = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir,
                        '--create-datastore', 'dicomweb'] +
                       [os.path.join(SAMPLES, f) for f in (CT, MR, MULTI)] + [NATIVE2],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr


def uids(name):
    p = subprocess.run(['/usr/bin/python3', '-c',
                        'import sys, pydicom; d = pydicom.dcmread(sys.argv[1]); '
                        'print(d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID)',
                        os.path.join(SAMPLES, name)], capture_output=True, text=True, check=True)
    return p.stdout.split()


def setUpModule():
    global SRV, MI, DS
    SRV = ahltest.Server(before_start=import_samples)
    MI = ahltest.boto3_client(SRV)
    DS = [d for d in MI.list_datastores()['datastoreSummaries']
          if d['datastoreName'] == 'dicomweb'][0]['datastoreId']


def tearDownModule():
    SRV.finish()


def get(path, query='', **kw):
    return ahltest.raw('GET', SRV.endpoint, '/datastore/%s%s' % (DS, path), query, **kw)


def get_json(path, query=''):
    status, headers, body = get(path, query)
    if status != 200:
        raise AssertionError('%s: %d %s' % (path, status, body[:500]))
    assert headers['content-type'] == 'application/dicom+json', headers
    return json.loads(body)


def compare_with_source(name, instances):
    p = subprocess.run(['/usr/bin/python3', '-c', _COMPARE, os.path.join(SAMPLES, name)],
                       input=json.dumps(instances), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def image_set_of(study):
    r = MI.search_image_sets(datastoreId=DS, searchCriteria={
        'filters': [{'values': [{'DICOMStudyInstanceUID': study}], 'operator': 'EQUAL'}]})
    sets = r['imageSetsMetadataSummaries']
    assert len(sets) == 1, sets
    return sets[0]['imageSetId']


def patient_name(instance):
    return instance['00100010']['Value'][0]['Alphabetic']


class DICOMwebMetadata(unittest.TestCase):
    def test_1_series_metadata_matches_the_file(self):
        for name in (CT, MR, MULTI):
            study, series, sop = uids(name)
            got = get_json('/studies/%s/series/%s/metadata' % (study, series))
            self.assertEqual(len(got), 1, name)
            self.assertEqual(got[0]['00080018'], {'vr': 'UI', 'Value': [sop]})
            self.assertEqual(compare_with_source(name, got), [], name)

    def test_2_instance_metadata_and_pixel_data_uri(self):
        study, series, sop = uids(MULTI)
        got = get_json('/studies/%s/series/%s/instances/%s/metadata' % (study, series, sop))
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]['00280008']['Value'], [2])
        px = got[0]['7FE00010']
        self.assertEqual(px['vr'], 'OB')  # 8-bit samples
        self.assertEqual(px['BulkDataURI'],
                         '%s/datastore/%s/studies/%s/series/%s/instances/%s/frames/1,2' %
                         (SRV.endpoint, DS, study, series, sop))
        self.assertEqual(compare_with_source(MULTI, got), [])
        study, series, sop = uids(CT)
        got = get_json('/studies/%s/series/%s/instances/%s/metadata' % (study, series, sop))
        self.assertEqual(got[0]['7FE00010']['vr'], 'OW')  # 16-bit samples
        self.assertTrue(got[0]['7FE00010']['BulkDataURI'].endswith('/frames/1'))

    def test_3_study_metadata(self):
        study, _, sop = uids(CT)
        got = get_json('/studies/%s/metadata' % study)
        self.assertEqual([i['00080018']['Value'][0] for i in got], [sop])
        self.assertEqual(compare_with_source(CT, got), [])

    def test_4_curl_aws_sigv4(self):
        study, series, sop = uids(MR)
        url = '%s/datastore/%s/studies/%s/series/%s/metadata' % (SRV.endpoint, DS, study, series)
        p = subprocess.run(['curl', '-sS', '--fail-with-body', '--aws-sigv4',
                            'aws:amz:%s:medical-imaging' % ahltest.REGION, '--user',
                            '%s:%s' % (ahltest.ACCESS_KEY, ahltest.SECRET_KEY),
                            '-H', 'Accept: application/dicom+json', url],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        got = json.loads(p.stdout)
        self.assertEqual(got[0]['00080018']['Value'], [sop])

    def test_5_updates_show_and_versions_select(self):
        study, series, _ = uids(CT)
        set_id = image_set_of(study)
        before = get_json('/studies/%s/series/%s/metadata' % (study, series))
        old = patient_name(before[0])
        latest = MI.get_image_set(datastoreId=DS, imageSetId=set_id)['versionId']
        change = {'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': 'Roe^Richard'}}}
        MI.update_image_set_metadata(
            datastoreId=DS, imageSetId=set_id, latestVersionId=latest,
            updateImageSetMetadataUpdates={'DICOMUpdates': {
                'updatableAttributes': json.dumps(change).encode()}})
        now = get_json('/studies/%s/series/%s/metadata' % (study, series))
        self.assertEqual(patient_name(now[0]), 'Roe^Richard')
        chosen = get_json('/studies/%s/series/%s/metadata' % (study, series),
                          'imageSetId=%s' % set_id)
        self.assertEqual(patient_name(chosen[0]), 'Roe^Richard')
        v1 = get_json('/studies/%s/series/%s/metadata' % (study, series),
                      'imageSetId=%s&versionId=1' % set_id)
        self.assertEqual(patient_name(v1[0]), old)
        self.assertTrue(v1[0]['7FE00010']['BulkDataURI'].endswith(
            '?imageSetId=%s&versionId=1' % set_id))

    def test_6_errors(self):
        study, series, sop = uids(CT)
        mr_set = image_set_of(uids(MR)[0])
        cases = [
            ('/studies/1.2.3/series/%s/metadata' % series, '', 404),
            ('/studies/%s/series/1.2.3/metadata' % study, '', 404),
            ('/studies/%s/series/%s/instances/1.2.3/metadata' % (study, series), '', 404),
            ('/studies/%s/metadata' % '9.9', '', 404),
            ('/studies/%s/series/%s/metadata' % (study, series), 'imageSetId=%s' % mr_set, 404),
            ('/studies/%s/series/%s/metadata' % (study, series), 'imageSetId=%s' % ('0' * 32),
             404),
            ('/studies/%s/series/%s/metadata' % (study, series),
             'imageSetId=%s&versionId=99' % image_set_of(study), 404),
            ('/studies/%s/series/%s/metadata' % (study, series), 'versionId=1', 400),
            ('/studies/%s/series/%s/metadata' % (study, series), 'imageSetId=nope', 400),
            ('/studies/%s/series/%s/metadata' % (study, series),
             'imageSetId=%s&versionId=0' % mr_set, 400),
            ('/studies/not-a-uid/metadata', '', 400),
            ('/series/%s' % series, '', 404),
            ('/studies/%s/series/%s/instances/%s/rendered' % (study, series, sop), '', 404),
        ]
        for path, query, want in cases:
            status, headers, body = get(path, query)
            self.assertEqual(status, want, (path, query, body))
            err = json.loads(body)
            self.assertIn(headers['x-amzn-errortype'],
                          ('ResourceNotFoundException', 'ValidationException'))
            self.assertTrue(err['message'], body)
        status, _, _ = ahltest.raw('GET', SRV.endpoint,
                                   '/datastore/%s/studies/%s/metadata' % ('f' * 32, study))
        self.assertEqual(status, 404)

    def test_7_unsigned_and_badly_signed(self):
        study, series, _ = uids(CT)
        path = '/studies/%s/series/%s/metadata' % (study, series)
        status, headers, _ = get(path, sign=False)
        self.assertEqual(status, 403)
        self.assertEqual(headers['x-amzn-errortype'], 'MissingAuthenticationTokenException')
        status, _, _ = get(path, secret_key='wrong/secret')
        self.assertEqual(status, 403)
        # The API beside it is unchanged.
        self.assertEqual(MI.get_datastore(datastoreId=DS)['datastoreProperties']['datastoreId'],
                         DS)


# System Python: argv[1] a native file, argv[2] a 0-based frame; prints the SHA-256 of that
# frame's bytes in the file's pixel data (native little endian, as Explicit VR Little Endian).
_FRAME_HASH = r'''
import hashlib, sys
import pydicom
ds = pydicom.dcmread(sys.argv[1])
n = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
i = int(sys.argv[2])
print(hashlib.sha256(ds.PixelData[i * n:(i + 1) * n]).hexdigest())
'''


def frame_hash(path, index):
    p = subprocess.run(['/usr/bin/python3', '-c', _FRAME_HASH, path, str(index)],
                       capture_output=True, text=True, check=True, timeout=60)
    return p.stdout.strip()


class DICOMwebFrames(unittest.TestCase):
    def frames(self, name, frames, accept=None):
        study, series, sop = uids(name)
        return get('/studies/%s/series/%s/instances/%s/frames/%s' % (study, series, sop, frames),
                   headers={'Accept': accept} if accept else None)

    def test_1_default_is_explicit_little_endian(self):
        import hashlib
        for name, frames in ((CT, '1'), (NATIVE2, '2,1')):
            status, headers, body = self.frames(name, frames)
            self.assertEqual(status, 200, body[:300])
            self.assertIn('type="application/octet-stream"', headers['content-type'])
            self.assertIn('transfer-syntax=1.2.840.10008.1.2.1;', headers['content-type'])
            parts = ahltest.parts_of(headers, body)
            numbers = [int(f) for f in frames.split(',')]
            self.assertEqual(len(parts), len(numbers))
            for (ctype, data), n in zip(parts, numbers):
                self.assertEqual(ctype, 'application/octet-stream; '
                                        'transfer-syntax=1.2.840.10008.1.2.1')
                self.assertEqual(hashlib.sha256(data).hexdigest(),
                                 frame_hash(os.path.join(SAMPLES, name), n - 1), (name, n))
        # The pixel data's BulkDataURI in the metadata names this resource.
        study, series, sop = uids(NATIVE2)
        meta = get_json('/studies/%s/series/%s/instances/%s/metadata' % (study, series, sop))
        uri = meta[0]['7FE00010']['BulkDataURI']
        self.assertTrue(uri.startswith(SRV.endpoint), uri)
        status, headers, body = ahltest.raw('GET', SRV.endpoint, uri[len(SRV.endpoint):])
        self.assertEqual(status, 200)
        self.assertEqual(len(ahltest.parts_of(headers, body)), 2)
        # 8-bit RGB (RLE at the source): interleaved samples, one byte each.
        status, headers, body = self.frames(MULTI, '1,2')
        self.assertEqual(status, 200, body[:300])
        parts = ahltest.parts_of(headers, body)
        self.assertEqual([len(d) for _, d in parts], [100 * 100 * 3] * 2)
        self.assertNotEqual(parts[0][1], parts[1][1])

    def test_2_stored_syntax_with_star(self):
        import gzip
        study, _, sop = uids(MULTI)
        set_id = image_set_of(study)
        doc = json.loads(gzip.decompress(MI.get_image_set_metadata(
            datastoreId=DS, imageSetId=set_id)['imageSetMetadataBlob'].read()))
        inst = [i for s in doc['Study']['Series'].values() for k, i in s['Instances'].items()
                if k == sop][0]
        stored = inst['StoredTransferSyntaxUID']
        status, headers, body = self.frames(
            MULTI, '1,2', 'multipart/related; type="application/octet-stream"; transfer-syntax=*')
        self.assertEqual(status, 200, body[:300])
        parts = ahltest.parts_of(headers, body)
        self.assertEqual(len(parts), 2)
        for (ctype, data), f in zip(parts, inst['ImageFrames']):
            self.assertTrue(ctype.endswith('; transfer-syntax=' + stored), ctype)
            frame = MI.get_image_frame(datastoreId=DS, imageSetId=set_id,
                                       imageFrameInformation={'imageFrameId': f['ID']})
            raw_frame = frame['imageFrameBlob'].read()
            self.assertIn(data, raw_frame)  # GetImageFrame may wrap HTJ2K in a JPH file
        # The stored syntax named explicitly is the same.
        status, headers, _ = self.frames(
            MULTI, '1', 'multipart/related; type="application/octet-stream"; '
                        'transfer-syntax=%s' % stored)
        self.assertEqual(status, 200)

    def test_3_errors(self):
        status, _, body = self.frames(
            MULTI, '1', 'multipart/related; type="image/jpeg"; '
                        'transfer-syntax=1.2.840.10008.1.2.4.50')
        self.assertEqual(status, 406, body)
        self.assertIn('transfer-syntax=*', json.loads(body)['message'])
        # The parameter's name is matched in any case.
        status, _, body = self.frames(
            MULTI, '1', 'multipart/related; type="image/jpeg"; '
                        'Transfer-Syntax=1.2.840.10008.1.2.4.50')
        self.assertEqual(status, 406, body)
        # Media ranges are tried in order: the first that can be given is answered.
        status, headers, body = self.frames(
            MULTI, '1', 'multipart/related; type="image/jpeg"; '
                        'transfer-syntax=1.2.840.10008.1.2.4.50, '
                        'multipart/related; type="application/octet-stream"; transfer-syntax=*')
        self.assertEqual(status, 200, body[:300])
        self.assertNotIn('transfer-syntax=1.2.840.10008.1.2.4.50', headers['content-type'])
        for frames, want in (('3', 404), ('1,1', 400), ('0', 400), ('1;2', 400), ('a', 400)):
            status, _, body = self.frames(MULTI, frames)
            self.assertEqual(status, want, (frames, body))


if __name__ == '__main__':
    unittest.main(verbosity=2)
