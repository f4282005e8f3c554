"""ahilite's DICOMweb beside Orthanc's (Debian's orthanc with the orthanc-dicomweb plugin, started
here on a loopback port; see orthanc.py). The same files (pydicom's 16-bit CT, an RLE MR, a
planar big-endian RGB, a two-frame RLE RGB, an odd-sized RGB and a made three-instance series)
are imported into ahilite with `ahilite import` and stored into Orthanc with its REST
`POST /instances`; then the same DICOMweb requests go to both:

- series, instance and study metadata: the same instances; every attribute both return has the
  same VR (binary ones too; Pixel Data's as docs/dicomweb.md says) and value (FL compared as the
  32-bit float it is: ahilite writes its shortest decimal, Orthanc the double's); a binary value
  ahilite inlines (InlineBinary) is byte for byte what Orthanc's BulkDataURI answers; attributes
  only one side returns are the documented differences listed in ONLY_AHILITE / ONLY_ORTHANC;
- frames as Explicit VR Little Endian: every frame of every instance, the same bytes from both, and
  equal to the source's pixels decoded without either server (DCMTK and pydicom,
  dicom_native.py); the multipart bodies are read with Python's own MIME parser;
- instance retrieve as a Part-10 file in Explicit VR Little Endian: the same attributes with the
  same values and VRs (pydicom reading both; Orthanc also keeps the source's group lengths and
  writes 8-bit pixel data it decompressed as OW), and the source's pixels;
- search (QIDO-RS): the same queries (all studies, by each study's PatientID, StudyDate,
  AccessionNumber, by modality and a date range; each study's series, all series, CT series; each
  series' and each study's instances) find the same studies, series and instances, with equal
  values for every attribute both return (docs/dicomweb.md lists what only one returns).

Exits 77 (skipped) when Orthanc or its DICOMweb plugin is not installed."""
# pg: full (long: a comparison with Orthanc's answers; nothing of it depends on the store)
import base64
import email
import email.policy
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import dicom_native  # noqa: E402
import orthanc  # noqa: E402

SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files'
FILES = ['CT_small.dcm', 'MR_small_RLE.dcm', 'ExplVR_BigEnd.dcm', 'SC_rgb_rle_2frame.dcm',
         'SC_rgb_small_odd.dcm']
SERIES_ROOT = '1.2.826.0.1.3680043.8.498.7070.'
NATIVE_LE = 'multipart/related; type="application/octet-stream"; ' \
            'transfer-syntax=1.2.840.10008.1.2.1'
# Orthanc's DICOMweb plugin (1.7) leaves the pixel data out of the metadata of an instance stored
# compressed (RLE here); ahilite always names the frames resource there.
ONLY_AHILITE = {'7FE00010'}
ONLY_ORTHANC = set()

SRV = ORTH = DS = None
PATHS = []  # every file stored in both
SOURCE = {}  # path -> dicom_native.describe()
TMP = None


def setUpModule():
    # Module cleanups run after tearDownModule, and also when setUpModule fails part way, so
    # neither server outlives a failed start.
    global SRV, ORTH, DS, TMP
    TMP = tempfile.mkdtemp(prefix='ahilite-peer-files-')
    unittest.addModuleCleanup(shutil.rmtree, TMP, ignore_errors=True)
    subprocess.run(['/usr/bin/python3', '-c', ahltest._SERIES_GENERATOR, '3', TMP, SERIES_ROOT,
                    ahltest.CT_SAMPLE], check=True, timeout=120)
    PATHS.extend([os.path.join(SAMPLES, f) for f in FILES] +
                 sorted(os.path.join(TMP, f) for f in os.listdir(TMP)))
    for p in PATHS:
        SOURCE[p] = dicom_native.describe(p)

    SRV = ahltest.Server(before_start=lambda server: ahltest.import_files(server, 'peer', PATHS))
    unittest.addModuleCleanup(SRV.finish)
    DS = ahltest.boto3_client(SRV).list_datastores()['datastoreSummaries'][0]['datastoreId']
    ORTH = orthanc.Orthanc()
    unittest.addModuleCleanup(ORTH.stop)
    for p in PATHS:
        ORTH.upload(p)


def ahilite_get(path, accept):
    return ahltest.raw('GET', SRV.endpoint, '/datastore/%s%s' % (DS, path),
                       headers={'Accept': accept})


def orthanc_get(path, accept):
    return ORTH.get('/dicom-web' + path, {'Accept': accept})


def json_of(answer, who):
    status, headers, body = answer
    assert status == 200, '%s: %d %s' % (who, status, body[:300])
    assert headers['content-type'].startswith('application/dicom+json'), (who, headers)
    return json.loads(body)


def mime_parts(answer, who):
    """The parts of a multipart/related answer, read by Python's email package."""
    status, headers, body = answer
    assert status == 200, '%s: %d %s' % (who, status, body[:300])
    msg = email.message_from_bytes(b'Content-Type: ' + headers['content-type'].encode() +
                                   b'\r\n\r\n' + body, policy=email.policy.HTTP)
    assert msg.is_multipart(), (who, headers['content-type'])
    return [p.get_payload(decode=True) for p in msg.iter_parts()]


def orthanc_bulk(uri):
    """The bytes behind one of Orthanc's BulkDataURIs."""
    assert uri.startswith(ORTH.dicomweb), uri
    parts = mime_parts(orthanc_get(uri[len(ORTH.dicomweb):],
                                   'multipart/related; type="application/octet-stream"'),
                       'Orthanc ' + uri)
    assert len(parts) == 1, uri
    return parts[0]


def norm_values(vr, values):
    if vr == 'SQ':
        return [norm_item(i) for i in values]
    if vr in ('FL', 'OF'):  # 32-bit floats: compare the float, not its decimal
        return [struct.unpack('<f', struct.pack('<f', v))[0] if isinstance(v, float) else v
                for v in values]
    if vr in ('DS', 'IS', 'FD', 'SL', 'SS', 'UL', 'US', 'SV', 'UV'):
        return [float(v) if isinstance(v, (int, float)) else v for v in values]
    return values


def norm_item(item):
    return {k: (e.get('vr'), norm_values(e.get('vr'), e['Value']) if 'Value' in e else None)
            for k, e in item.items()}


def pixel_vr(instance):
    """The Pixel Data VR ahilite gives (docs/dicomweb.md): the document does not keep the file's,
    so it follows BitsAllocated, where Orthanc repeats the file's (an 8-bit file may say OW)."""
    return 'OW' if instance['00280100']['Value'][0] > 8 else 'OB'


def differences(mine, theirs, where):
    """What differs between ahilite's and Orthanc's DICOM JSON of one instance (or item)."""
    problems = []
    for tag in sorted(set(mine) | set(theirs)):
        a, b = mine.get(tag), theirs.get(tag)
        if a is None or b is None:
            if tag not in (ONLY_ORTHANC if a is None else ONLY_AHILITE):
                problems.append('%s %s: only %s has it: %s' % (
                    where, tag, 'Orthanc' if a is None else 'ahilite', json.dumps(a or b)[:200]))
            continue
        pixel_vr_ok = tag == '7FE00010' and a.get('vr') == pixel_vr(mine)
        if a.get('vr') != b.get('vr') and not pixel_vr_ok:
            problems.append('%s %s: VR %s / %s' % (where, tag, a.get('vr'), b.get('vr')))
            continue
        if 'BulkDataURI' in a or 'BulkDataURI' in b:
            if tag == '7FE00010':
                continue  # the frames, compared below
            if 'InlineBinary' in a and 'BulkDataURI' in b:
                # Orthanc moves binary values out of the JSON; the bytes must be the same.
                if base64.b64decode(a['InlineBinary']) != orthanc_bulk(b['BulkDataURI']):
                    problems.append('%s %s: inline bytes differ from Orthanc\'s bulk data' %
                                    (where, tag))
                continue
            problems.append('%s %s: %s / %s' % (where, tag, json.dumps(a)[:200],
                                                  json.dumps(b)[:200]))
            continue
        if a.get('vr') == 'SQ':
            items_a, items_b = a.get('Value', []), b.get('Value', [])
            if len(items_a) != len(items_b):
                problems.append('%s %s: %d / %d items' % (where, tag, len(items_a),
                                                          len(items_b)))
            for k, (ia, ib) in enumerate(zip(items_a, items_b)):
                problems += differences(ia, ib, '%s %s[%d]' % (where, tag, k))
        elif norm_item({tag: a}) != norm_item({tag: b}):
            problems.append('%s %s: %s / %s' % (where, tag, json.dumps(a)[:200],
                                                  json.dumps(b)[:200]))
    return problems


def by_sop(instances):
    return {i['00080018']['Value'][0]: i for i in instances}


class Metadata(unittest.TestCase):
    def test_1_series_metadata(self):
        for series in sorted({(s['study'], s['series']) for s in SOURCE.values()}):
            path = '/studies/%s/series/%s/metadata' % series
            mine = by_sop(json_of(ahilite_get(path, 'application/dicom+json'), 'ahilite'))
            theirs = by_sop(json_of(orthanc_get(path, 'application/dicom+json'), 'Orthanc'))
            expected = {s['sop'] for s in SOURCE.values() if (s['study'], s['series']) == series}
            self.assertEqual(set(mine), expected, path)
            self.assertEqual(set(theirs), expected, path)
            problems = []
            for sop in sorted(expected):
                problems += differences(mine[sop], theirs[sop], sop)
            self.assertEqual(problems, [], path)

    def test_3_study_metadata(self):  # beyond AWS; both serve it
        for study in sorted({s['study'] for s in SOURCE.values()}):
            path = '/studies/%s/metadata' % study
            mine = by_sop(json_of(ahilite_get(path, 'application/dicom+json'), 'ahilite'))
            theirs = by_sop(json_of(orthanc_get(path, 'application/dicom+json'), 'Orthanc'))
            self.assertEqual(set(mine), {s['sop'] for s in SOURCE.values() if s['study'] == study})
            self.assertEqual(set(mine), set(theirs), path)
            problems = []
            for sop in sorted(mine):
                problems += differences(mine[sop], theirs[sop], sop)
            self.assertEqual(problems, [], path)

    def test_2_instance_metadata(self):
        for s in SOURCE.values():
            path = '/studies/%s/series/%s/instances/%s/metadata' % (s['study'], s['series'],
                                                                    s['sop'])
            mine = json_of(ahilite_get(path, 'application/dicom+json'), 'ahilite')
            theirs = json_of(orthanc_get(path, 'application/dicom+json'), 'Orthanc')
            self.assertEqual(len(mine), 1)
            self.assertEqual(len(theirs), 1)
            self.assertEqual(differences(mine[0], theirs[0], s['sop']), [], path)
            # The documented difference is the one seen: Orthanc names no pixel data for the
            # instances stored compressed.
            self.assertIn('BulkDataURI', mine[0]['7FE00010'])
            self.assertEqual('7FE00010' in theirs[0],
                             s['transferSyntax'] != '1.2.840.10008.1.2.5', path)


def by_uid(answer, tag):
    out = {}
    for item in answer:
        uid = item[tag]['Value'][0]
        assert uid not in out, 'two results for %s' % uid
        out[uid] = item
    return out


# Attributes left out of the QIDO comparison: each server's own URL.
QIDO_OWN = {'00081190'}


class Search(unittest.TestCase):
    """The same QIDO-RS queries to both: the same studies, series or instances, and the same
    value for every attribute both return."""

    def compare(self, path, level_tag, expected):
        mine = json_of(ahilite_get(path, 'application/dicom+json'), 'ahilite ' + path)
        theirs = json_of(orthanc_get(path, 'application/dicom+json'), 'Orthanc ' + path)
        mine, theirs = by_uid(mine, level_tag), by_uid(theirs, level_tag)
        self.assertEqual(set(mine), expected, 'ahilite ' + path)
        self.assertEqual(set(theirs), expected, 'Orthanc ' + path)
        problems = []
        for uid in sorted(expected):
            a = {k: v for k, v in mine[uid].items() if k in theirs[uid] and k not in QIDO_OWN}
            b = {k: v for k, v in theirs[uid].items() if k in mine[uid] and k not in QIDO_OWN}
            problems += differences(a, b, path + ' ' + uid)
        self.assertEqual(problems, [], path)
        return mine, theirs

    def test_1_studies(self):
        studies = {s['study'] for s in SOURCE.values()}
        mine, _ = self.compare('/studies', '0020000D', studies)
        # Each study's patient, date and modality keys, each alone, find what they find in both.
        for study, item in sorted(mine.items()):
            for tag, key in (('00100020', 'PatientID'), ('00080020', 'StudyDate'),
                             ('00080050', 'AccessionNumber')):
                value = item.get(tag, {}).get('Value', [None])[0]
                if value and (key != 'StudyDate' or value.isdigit()):  # not 1997.04.24
                    self.compare('/studies?%s=%s' % (key, value), '0020000D',
                                 {u for u, i in mine.items()
                                  if i.get(tag, {}).get('Value', [None])[0] == value})
        self.compare('/studies?ModalitiesInStudy=MR', '0020000D',
                     {u for u, i in mine.items() if 'MR' in i['00080061']['Value']})
        self.compare('/studies?StudyDate=19000101-20031231', '0020000D',
                     {u for u, i in mine.items()
                      if i.get('00080020', {}).get('Value', ['99999999'])[0] <= '20031231'})

    def test_2_series(self):
        for study in sorted({s['study'] for s in SOURCE.values()}):
            self.compare('/studies/%s/series' % study, '0020000E',
                         {s['series'] for s in SOURCE.values() if s['study'] == study})
        mine, _ = self.compare('/series', '0020000E', {s['series'] for s in SOURCE.values()})
        self.compare('/series?Modality=CT', '0020000E',
                     {u for u, i in mine.items() if i['00080060']['Value'] == ['CT']})

    def test_3_instances(self):
        for study, series in sorted({(s['study'], s['series']) for s in SOURCE.values()}):
            self.compare('/studies/%s/series/%s/instances' % (study, series), '00080018',
                         {s['sop'] for s in SOURCE.values() if s['series'] == series})
        for study in sorted({s['study'] for s in SOURCE.values()}):
            self.compare('/studies/%s/instances' % study, '00080018',
                         {s['sop'] for s in SOURCE.values() if s['study'] == study})


# Group lengths (gggg,0000), retired outside the file meta group: Orthanc writes the source's
# into a retrieved file, ahilite none.
def group_length(tag):
    return tag.endswith('0000')


class Retrieve(unittest.TestCase):
    def test_1_instances_as_part10(self):
        """Each instance retrieved from both as Explicit VR Little Endian (the multipart form
        dicomweb-client asks for): the same attributes and values, and the source's pixels."""
        accept = 'multipart/related; type="application/dicom"; ' \
                 'transfer-syntax=1.2.840.10008.1.2.1'
        for p, s in SOURCE.items():
            path = '/studies/%s/series/%s/instances/%s' % (s['study'], s['series'], s['sop'])
            files = []
            for who, answer in (('ahilite', ahilite_get(path, accept)),
                                ('orthanc', orthanc_get(path, accept))):
                [part] = mime_parts(answer, who + ' ' + path)
                files.append(os.path.join(TMP, '%s-%s.dcm' % (who, s['sop'])))
                with open(files[-1], 'wb') as f:
                    f.write(part)
            got = dicom_native.describe(files[0])  # Orthanc's pixels are compared with these
            self.assertEqual((got['sop'], got['transferSyntax']),
                             (s['sop'], '1.2.840.10008.1.2.1'))
            self.assertEqual(got['frames'], s['frames'], '%s: pixels' % p)
            d = dicom_native.diff(*files)
            self.assertEqual(d['only_first'], [], p)
            self.assertEqual([t for t in d['only_second'] if not group_length(t)], [], p)
            self.assertEqual(d['differ'], [], p)
            # Pixel Data's VR follows BitsAllocated in ahilite (as in its metadata); Orthanc's
            # transcoder writes OW for an 8-bit RLE source.
            vr = d['vr_differ'].pop('7FE00010', None)
            self.assertIn(vr, (None, ['OB', 'OW']), p)
            self.assertEqual(d['vr_differ'], {}, p)


class Frames(unittest.TestCase):
    def test_1_native_frames_are_the_same_bytes(self):
        for p, s in SOURCE.items():
            frames = ','.join(str(k + 1) for k in range(len(s['frames'])))
            path = '/studies/%s/series/%s/instances/%s/frames/%s' % (
                s['study'], s['series'], s['sop'], frames)
            mine = mime_parts(ahilite_get(path, NATIVE_LE), 'ahilite ' + path)
            theirs = mime_parts(orthanc_get(path, NATIVE_LE), 'Orthanc ' + path)
            self.assertEqual(len(mine), len(s['frames']), p)
            self.assertEqual(len(theirs), len(s['frames']), p)
            for k, (a, b) in enumerate(zip(mine, theirs)):
                self.assertEqual(a, b, '%s frame %d: ahilite and Orthanc differ' % (p, k + 1))
                self.assertEqual(hashlib.sha256(a).hexdigest(), s['frames'][k],
                                 '%s frame %d: not the source\'s pixels' % (p, k + 1))


if __name__ == '__main__':
    if not orthanc.available():
        print('SKIP: Orthanc or its DICOMweb plugin is not installed')
        sys.exit(77)
    unittest.main(verbosity=2)
