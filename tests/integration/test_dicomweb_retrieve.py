"""DICOMweb retrieve (WADO-RS GetDICOMInstance, and the series and study resources) end to end:
pydicom's CT (with private attributes), MR, a two-frame RLE RGB sample and a 1-bit segmentation,
and a native two-frame 16-bit file made from the CT, imported with `ahilite import`, then retrieved through
botocore-signed requests and curl --aws-sigv4 (the shape of AWS's GetDICOMInstance example).
Every file that comes back is read by dcmdump and by pydicom: its attributes (private ones and
VRs included) equal the source's; its pixel data equals the source's native pixel data (default
Explicit VR Little Endian) or, with transfer-syntax=*, holds the stored frames as fragments, equal
to GetImageFrame's bytes. Accept chooses application/dicom or multipart/related for an instance;
series and study are multipart; a syntax that is not stored is 406. After two
UpdateImageSetMetadata calls through boto3, a retrieved instance (and `ahilite export`) carries
an Original Attributes Sequence with one item per update holding the replaced PatientName; an
instance of another, unchanged set has none, and version 1 selected explicitly has none."""
# pg: full (long: renders instances; its reads are those test_dicomweb_qido.py and test_dicomweb_stow.py make)
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files'
CT = os.path.join(SAMPLES, 'CT_small.dcm')
MR = os.path.join(SAMPLES, 'MR_small.dcm')
MULTI = os.path.join(SAMPLES, 'SC_rgb_rle_2frame.dcm')
BITS1 = os.path.join(SAMPLES, 'liver_1frame.dcm')  # a segmentation: BitsAllocated 1
EXPLICIT_LE = '1.2.840.10008.1.2.1'
SRV = MI = DS = NATIVE2 = None

# System Python (pydicom): argv[1] a retrieved file, argv[2] its source or '-'; prints JSON:
# the file's transfer syntax, SOPInstanceUID, the differences from the source (attributes outside
# group 0002 and pixel data, values and VRs), the SHA-256 of native pixel data or of each
# fragment, and the Original Attributes Sequence as [{keyword: value}].
_INSPECT = r'''
import hashlib, json, sys, warnings
import pydicom
from pydicom.encaps import generate_pixel_data_frame

def norm(v):
    if isinstance(v, pydicom.sequence.Sequence):
        return [{('%08X' % int(e.tag)): (e.VR, norm(e.value)) for e in i} for i in v]
    if isinstance(v, (list, pydicom.multival.MultiValue)):
        return [norm(x) for x in v]
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, float):
        return '%.6g' % v
    return str(v)

with warnings.catch_warnings():
    warnings.simplefilter('error')
    got = pydicom.dcmread(sys.argv[1])
out = {'ts': str(got.file_meta.TransferSyntaxUID), 'sop': str(got.SOPInstanceUID),
       'problems': [], 'original': None}
if sys.argv[2] != '-':
    src = pydicom.dcmread(sys.argv[2])
    tags = set(e.tag for e in src) | set(e.tag for e in got)
    for t in sorted(tags):
        if t.group == 2 or t.element == 0 or t in (0x7FE00010, 0x04000561):
            continue
        a, b = src.get(t), got.get(t)
        if a is None or b is None:
            if (a is None and b.value not in (None, '', b'')) or (b is None and a.value not in (None, '', b'')):
                out['problems'].append('%s only in %s' % (t, 'file' if b is None else 'source'))
            continue
        if a.VR != b.VR and not (a.VR in ('OB', 'OW', 'UN') and b.VR in ('OB', 'OW', 'UN')):
            out['problems'].append('%s: VR %s, retrieved %s' % (t, a.VR, b.VR))
        if norm(a.value) != norm(b.value):
            out['problems'].append('%s: %r, retrieved %r' % (t, norm(a.value)[:80], norm(b.value)[:80]))
native = ('1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2')
if out['ts'] not in native:  # pydicom 2.3 does not know the HTJ2K syntaxes
    n = int(got.get('NumberOfFrames', 1) or 1)
    out['fragments'] = [hashlib.sha256(f).hexdigest() for f in generate_pixel_data_frame(got.PixelData, n)]
elif 'PixelData' in got:
    out['pixels'] = hashlib.sha256(got.PixelData).hexdigest()
if 'OriginalAttributesSequence' in got:
    out['original'] = [{
        'modified': [{e.keyword or str(e.tag): str(e.value) for e in m}
                     for m in item.ModifiedAttributesSequence],
        'when': str(item.AttributeModificationDateTime),
        'system': str(item.ModifyingSystem),
        'reason': str(item.ReasonForTheAttributeModification),
        'source': str(item.get('SourceOfPreviousValues', '')),
        'has_source': 'SourceOfPreviousValues' in item,
    } for item in got.OriginalAttributesSequence]
print(json.dumps(out))
'''


def import_samples(server):
    global NATIVE2
    NATIVE2 = os.path.join(server.tmp, 'ct_two_frames.dcm')
    ahltest.two_frame_ct(NATIVE2, '1.2.826.0.1.3680043.8.498.4243.')
    p = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir,
                        '--create-datastore', 'retrieve', CT, MR, MULTI, NATIVE2, BITS1],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr


def setUpModule():
    global SRV, MI, DS
    SRV = ahltest.Server(before_start=import_samples)
    MI = ahltest.boto3_client(SRV)
    DS = MI.list_datastores()['datastoreSummaries'][0]['datastoreId']


def tearDownModule():
    SRV.finish()


def uids(path):
    p = subprocess.run(['/usr/bin/python3', '-c',
                        'import sys, pydicom; d = pydicom.dcmread(sys.argv[1]); '
                        'print(d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID)', path],
                       capture_output=True, text=True, check=True)
    return p.stdout.split()


def get(path, query='', accept=None):
    return ahltest.raw('GET', SRV.endpoint, '/datastore/%s%s' % (DS, path), query,
                       headers={'Accept': accept} if accept else None)


def instance_path(path):
    return '/studies/%s/series/%s/instances/%s' % tuple(uids(path))


def inspect(data, source=None):
    """dcmdump and pydicom read the file; pydicom's findings (see _INSPECT)."""
    with tempfile.NamedTemporaryFile(suffix='.dcm') as f:
        f.write(data)
        f.flush()
        d = subprocess.run(['dcmdump', '-q', '+E', f.name], capture_output=True, text=True,
                           timeout=60)
        assert d.returncode == 0 and 'E:' not in d.stderr, d.stderr
        p = subprocess.run(['/usr/bin/python3', '-c', _INSPECT, f.name, source or '-'],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)


def native_pixels_sha(path):
    p = subprocess.run(['/usr/bin/python3', '-c', 'import hashlib, sys, pydicom; '
                        'print(hashlib.sha256(pydicom.dcmread(sys.argv[1]).PixelData).hexdigest())',
                        path], capture_output=True, text=True, check=True)
    return p.stdout.strip()


def image_set_of(path):
    r = MI.search_image_sets(datastoreId=DS, searchCriteria={'filters': [{
        'values': [{'DICOMStudyInstanceUID': uids(path)[0]}], 'operator': 'EQUAL'}]})
    return r['imageSetsMetadataSummaries'][0]['imageSetId']


def stored_frames(path):
    """GetImageFrame's bytes of each frame of the instance, and its stored syntax."""
    import gzip
    set_id = image_set_of(path)
    doc = json.loads(gzip.decompress(MI.get_image_set_metadata(
        datastoreId=DS, imageSetId=set_id)['imageSetMetadataBlob'].read()))
    sop = uids(path)[2]
    inst = [i for s in doc['Study']['Series'].values() for k, i in s['Instances'].items()
            if k == sop][0]
    frames = [MI.get_image_frame(datastoreId=DS, imageSetId=set_id,
                                 imageFrameInformation={'imageFrameId': f['ID']}
                                 )['imageFrameBlob'].read() for f in inst['ImageFrames']]
    return frames, inst['StoredTransferSyntaxUID']


class Retrieve(unittest.TestCase):
    def test_1_instance_default_is_explicit_le_equal_to_source(self):
        for src in (CT, MR, NATIVE2, BITS1):
            status, headers, body = get(instance_path(src))
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(headers['content-type'],
                             'application/dicom; transfer-syntax=' + EXPLICIT_LE)
            got = inspect(body, src)
            self.assertEqual(got['ts'], EXPLICIT_LE)
            self.assertEqual(got['problems'], [], src)
            self.assertEqual(got['pixels'], native_pixels_sha(src), src)
            self.assertIsNone(got['original'])
        # 1-bit frames are kept as they came: the frames resource answers them too, and '*' gives
        # the same native file.
        status, _, body = get(instance_path(BITS1) + '/frames/1')
        self.assertEqual(status, 200, body[:300])
        frame = ahltest.parts_of(*get(instance_path(BITS1) + '/frames/1')[1:])[0][1]
        self.assertEqual(hashlib.sha256(frame).hexdigest(), native_pixels_sha(BITS1))
        status, headers, body = get(instance_path(BITS1),
                                    accept='application/dicom; transfer-syntax=*')
        self.assertEqual(headers['content-type'],
                         'application/dicom; transfer-syntax=' + EXPLICIT_LE)
        self.assertEqual(inspect(body, BITS1)['pixels'], native_pixels_sha(BITS1))
        # The RLE source: its frames decoded, equal to what the frames resource answers.
        status, headers, body = get(instance_path(MULTI), accept='application/dicom')
        self.assertEqual(status, 200, body[:300])
        got = inspect(body, MULTI)
        self.assertEqual(got['problems'], [])
        pixels = b''.join(d for _, d in ahltest.parts_of(*get(instance_path(MULTI) + '/frames/1,2')[1:]))
        self.assertEqual(got['pixels'], hashlib.sha256(pixels).hexdigest())

    def test_2_stored_syntax_encapsulated(self):
        for src in (CT, MULTI):
            frames, stored = stored_frames(src)
            for accept in ('application/dicom; transfer-syntax=*',
                           'application/dicom; transfer-syntax=%s' % stored):
                status, headers, body = get(instance_path(src), accept=accept)
                self.assertEqual(status, 200, body[:300])
                self.assertEqual(headers['content-type'],
                                 'application/dicom; transfer-syntax=' + stored)
                got = inspect(body, src)
                self.assertEqual(got['ts'], stored)
                self.assertEqual(got['problems'], [])
                self.assertEqual(len(got['fragments']), len(frames))
                for sha, frame in zip(got['fragments'], frames):
                    # GetImageFrame may wrap an HTJ2K codestream in a JPH file: the fragment is
                    # the codestream, at the end of it.
                    fragment = [frame[i:] for i in range(0, 400)
                                if hashlib.sha256(frame[i:]).hexdigest() == sha]
                    self.assertTrue(fragment, src)

    def test_3_curl_aws_sigv4_as_in_the_aws_example(self):
        path = instance_path(CT)
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, 'ct.dcm')
            p = subprocess.run(['curl', '-sS', '--fail-with-body', '--aws-sigv4',
                                'aws:amz:%s:medical-imaging' % ahltest.REGION, '--user',
                                '%s:%s' % (ahltest.ACCESS_KEY, ahltest.SECRET_KEY),
                                '-H', 'Accept: application/dicom; transfer-syntax=%s' % EXPLICIT_LE,
                                '%s/datastore/%s%s' % (SRV.endpoint, DS, path), '-o', out],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            with open(out, 'rb') as f:
                got = inspect(f.read(), CT)
        self.assertEqual(got['problems'], [])
        self.assertEqual(got['pixels'], native_pixels_sha(CT))

    def test_4_multipart_instance_series_and_study(self):
        # An instance in multipart/related when the Accept asks for it.
        status, headers, body = get(instance_path(CT),
                                    accept='multipart/related; type="application/dicom"')
        self.assertEqual(status, 200, body[:300])
        parts = ahltest.parts_of(headers, body)
        self.assertEqual([c for c, _ in parts],
                         ['application/dicom; transfer-syntax=' + EXPLICIT_LE])
        self.assertEqual(inspect(parts[0][1], CT)['problems'], [])
        # A series, and a study, with every instance a part.
        study, series, sop = uids(NATIVE2)
        for path in ('/studies/%s/series/%s' % (study, series), '/studies/%s' % study):
            status, headers, body = get(path)
            self.assertEqual(status, 200, body[:300])
            self.assertIn('type="application/dicom"', headers['content-type'])
            parts = ahltest.parts_of(headers, body)
            self.assertEqual(len(parts), 1)
            got = inspect(parts[0][1], NATIVE2)
            self.assertEqual((got['sop'], got['problems']), (sop, []))
            self.assertEqual(got['pixels'], native_pixels_sha(NATIVE2))
        status, headers, body = get('/studies/%s' % uids(MULTI)[0],
                                    accept='multipart/related; type="application/dicom"; '
                                           'transfer-syntax=*')
        self.assertEqual(status, 200, body[:300])
        parts = ahltest.parts_of(headers, body)
        self.assertEqual(len(parts), 1)
        self.assertNotEqual(inspect(parts[0][1], MULTI).get('fragments'), None)

    def test_5_errors(self):
        status, headers, body = get(instance_path(CT), accept='application/dicom; '
                                    'transfer-syntax=1.2.840.10008.1.2.4.50')
        self.assertEqual(status, 406, body)
        self.assertEqual(json.loads(body)['__type'], 'NotAcceptableException')
        self.assertIn('transfer-syntax=*', json.loads(body)['message'])
        study, series, _ = uids(CT)
        for path, want in (('/studies/%s/series/%s/instances/1.2.3' % (study, series), 404),
                           ('/studies/%s/series/1.2.3' % study, 404),
                           ('/studies/1.2.3', 404),
                           ('/studies/%s/series/x' % study, 400)):
            status, _, body = get(path)
            self.assertEqual(status, want, (path, body))
        status, _, _ = ahltest.raw('GET', SRV.endpoint, '/datastore/%s%s' % (DS, instance_path(CT)),
                                   sign=False)
        self.assertEqual(status, 403)

    def test_6_original_attributes_after_two_updates(self):
        set_id = image_set_of(CT)
        first = get(instance_path(CT))[2]
        names = []
        for name in ('Roe^Richard', 'Doe^Jane'):
            latest = MI.get_image_set(datastoreId=DS, imageSetId=set_id)['versionId']
            change = {'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': name}}}
            MI.update_image_set_metadata(
                datastoreId=DS, imageSetId=set_id, latestVersionId=latest,
                updateImageSetMetadataUpdates={'DICOMUpdates': {
                    'updatableAttributes': json.dumps(change).encode()}})
            names.append(name)
        status, _, body = get(instance_path(CT))
        self.assertEqual(status, 200)
        got = inspect(body)
        original = got['original']
        source_name = inspect(first)
        self.assertIsNone(source_name['original'])
        self.assertEqual(len(original), 2, original)
        self.assertEqual(original[0]['modified'], [{'PatientName': 'CompressedSamples^CT1'}])
        self.assertEqual(original[1]['modified'], [{'PatientName': 'Roe^Richard'}])
        for item in original:
            self.assertEqual((item['system'], item['reason']), ('ahilite', 'CORRECT'))
            self.assertTrue(item['has_source'])
            self.assertEqual(item['source'], '')
            self.assertRegex(item['when'], r'^\d{14}\.\d{6}\+0000$')
        self.assertLessEqual(original[0]['when'], original[1]['when'])
        # Version 1 selected: nothing changed yet. Version 2: one item.
        for version, items in (('1', None), ('2', 1)):
            status, _, body = get(instance_path(CT), 'imageSetId=%s&versionId=%s' % (set_id,
                                                                                      version))
            self.assertEqual(status, 200, body[:300])
            o = inspect(body)['original']
            self.assertEqual(None if o is None else len(o), items)
        # Another set, never updated: no sequence.
        self.assertIsNone(inspect(get(instance_path(MR))[2])['original'])
        # `ahilite export` writes the same record.
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.run([ahltest.server_binary(), 'export', '--data-dir', SRV.data_dir,
                                '--datastore-id', DS, '--image-set-id', set_id, d],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            with open(os.path.join(d, uids(CT)[2] + '.dcm'), 'rb') as f:
                exported = inspect(f.read())
        self.assertEqual(exported['original'], original)


if __name__ == '__main__':
    unittest.main(verbosity=2)
