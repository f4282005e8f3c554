"""DICOMweb search (QIDO-RS) end to end: three studies made from pydicom's CT sample (two series
in the first, CT and MR), plus a file that conflicts with the first study's primary set and so goes
to a non-primary set, imported with `ahilite import`; then /studies, /series,
/studies/{s}/series, /studies/{s}/series/{se}/instances and /studies/{s}/instances, signed with
botocore's SigV4Auth: every study key by keyword and by tag, wildcards, PN case-insensitivity,
date and time ranges, UID lists, paging, includefield, fuzzymatching, the 400s for bad
parameters, UpdateImageSetMetadata showing in the next search (and moving the study first),
non-primary sets left out and deleted sets gone."""
import json
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SRV = None
MI = None
DS = None
ROOT = '1.2.826.0.1.3680043.8.498.777.'
A, B, C = ROOT + '1', ROOT + '2', ROOT + '3'
A1, A2, B1, C1 = A + '.1', A + '.2', B + '.1', C + '.1'

# study, series, sop count, modality, series number, patient name, patient id, study date, time,
# accession, referring, description, study id, birth date
_STUDIES = [
    (A, A1, 3, 'CT', 1, 'Doe^John', 'P1', '20200115', '101500', 'ACC1', 'Smith^Ann',
     'CT CHEST', 'S1', '19600202'),
    (A, A2, 2, 'MR', 2, 'Doe^John', 'P1', '20200115', '101500', 'ACC1', 'Smith^Ann',
     'CT CHEST', 'S1', '19600202'),
    (B, B1, 1, 'MR', 5, 'Roe^Jane', 'P2', '20211201', '093000', 'ACC2', 'Brown^Bob',
     'MR BRAIN', 'S2', '19700303'),
    (C, C1, 1, 'CT', 1, 'doe^jim', 'P3', '19991231', '235959', 'ACC3', '',
     'CT [HEAD]', 'S3', '19500101'),
]

_GENERATOR = r'''
import json, sys
import pydicom
out, sample, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
k = 0
for (st, se, n, mod, num, pn, pid, date, time, acc, ref, desc, sid, birth) in spec:
    for i in range(n):
        ds = pydicom.dcmread(sample)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = st, se
        ds.SOPInstanceUID = se + '.%d' % (i + 1)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = mod, num, n - i
        ds.PatientName, ds.PatientID, ds.StudyDate, ds.StudyTime = pn, pid, date, time
        ds.AccessionNumber, ds.ReferringPhysicianName = acc, ref
        ds.StudyDescription, ds.StudyID, ds.PatientBirthDate = desc, sid, birth
        ds.PatientBirthTime = '0800'
        ds.SeriesDescription = 'series %s' % num
        ds.save_as('%s/f%03d.dcm' % (out, k))
        k += 1
# A file of series A1 whose PatientName disagrees with the primary set: a non-primary set.
ds = pydicom.dcmread('%s/f000.dcm' % out)
ds.SOPInstanceUID = spec[0][1] + '.99'
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.PatientName = 'Other^Person'
ds.save_as('%s/conflict.dcm' % out)
'''


def import_studies(server):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(['/usr/bin/python3', '-c', _GENERATOR, d, ahltest.CT_SAMPLE,
                        json.dumps(_STUDIES)], check=True, timeout=120)
        files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.startswith('f'))
        target = ['--create-datastore', 'qido']
        for batch in (files, [os.path.join(d, 'conflict.dcm')]):
            p = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir]
                               + target + batch, capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, p.stdout + p.stderr
            target = ['--datastore-id', p.stdout.split()[3]]  # "created data store <id> (qido)"


def setUpModule():
    global SRV, MI, DS
    SRV = ahltest.Server(before_start=import_studies)
    MI = ahltest.boto3_client(SRV)
    DS = [d for d in MI.list_datastores()['datastoreSummaries']
          if d['datastoreName'] == 'qido'][0]['datastoreId']


def tearDownModule():
    SRV.finish()


def get(path, **params):
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe='')
    return ahltest.raw('GET', SRV.endpoint, '/datastore/%s%s' % (DS, path), query)


def search(path, **params):
    status, headers, body = get(path, **params)
    if status != 200:
        raise AssertionError('%s %s: %d %s' % (path, params, status, body[:500]))
    assert headers['content-type'] == 'application/dicom+json', headers
    return json.loads(body)


def value(obj, tag):
    return obj.get(tag, {}).get('Value', [None])[0]


def study_uids(path='/studies', **params):
    return [value(s, '0020000D') for s in search(path, **params)]


def bad(path, **params):
    status, headers, body = get(path, **params)
    return status, headers.get('x-amzn-errortype'), json.loads(body).get('message', '')


def set_of(study, series):
    r = MI.search_image_sets(datastoreId=DS, searchCriteria={
        'filters': [{'values': [{'DICOMSeriesInstanceUID': series}], 'operator': 'EQUAL'}]})
    return [s for s in r['imageSetsMetadataSummaries'] if s.get('isPrimary')][0]['imageSetId']


class Qido1Studies(unittest.TestCase):
    def test_1_all_studies_and_their_attributes(self):
        got = search('/studies')
        self.assertEqual(sorted(value(s, '0020000D') for s in got), [A, B, C])
        a = [s for s in got if value(s, '0020000D') == A][0]
        self.assertEqual(a['00100010'], {'vr': 'PN', 'Value': [{'Alphabetic': 'Doe^John'}]})
        self.assertEqual(value(a, '00100020'), 'P1')
        self.assertEqual(value(a, '00080020'), '20200115')
        self.assertEqual(value(a, '00080030'), '101500')
        self.assertEqual(value(a, '00080050'), 'ACC1')
        self.assertEqual(a['00080061']['Value'], ['CT', 'MR'])
        self.assertEqual(value(a, '00201206'), 2)
        self.assertEqual(value(a, '00201208'), 5)  # the conflicting file is not primary
        self.assertEqual(value(a, '00200010'), 'S1')
        self.assertEqual(a['00080090']['Value'], [{'Alphabetic': 'Smith^Ann'}])
        self.assertEqual(value(a, '00100030'), '19600202')
        self.assertEqual(value(a, '00081190'),
                         '%s/datastore/%s/studies/%s' % (SRV.endpoint, DS, A))
        self.assertNotIn('00100032', a)  # PatientBirthTime only when asked for
        c = [s for s in got if value(s, '0020000D') == C][0]
        self.assertEqual(c['00080090'], {'vr': 'PN'})  # empty: present without a value
        self.assertEqual(list(a), sorted(a))  # tags ascending

    def test_2_each_key(self):
        cases = [
            ({'PatientName': 'doe*'}, {A, C}),
            ({'PatientName': 'DOE^JOHN'}, {A}),
            ({'00100010': 'Doe^J?hn'}, {A}),
            ({'PatientName': '*jane'}, {B}),
            ({'PatientID': 'P2'}, {B}),
            ({'00100020': 'P3'}, {C}),
            ({'PatientBirthDate': '19500101'}, {C}),
            ({'PatientBirthDate': '19550101-19650101'}, {A}),
            ({'PatientBirthTime': '0800'}, {A, B, C}),
            ({'StudyDate': '20200101-20201231'}, {A}),
            ({'StudyDate': '-20000101'}, {C}),
            ({'StudyDate': '20210101-'}, {B}),
            ({'StudyDate': '20211201'}, {B}),
            ({'StudyTime': '0900-1000'}, {B}),
            ({'StudyTime': '2300-'}, {C}),
            ({'AccessionNumber': 'ACC1'}, {A}),
            ({'AccessionNumber': 'ACC*'}, {A, B, C}),
            ({'ModalitiesInStudy': 'MR'}, {A, B}),
            ({'ModalitiesInStudy': 'CT'}, {A, C}),
            ({'ModalitiesInStudy': 'CT,MR'}, {A, B, C}),
            ({'ReferringPhysicianName': 'smith*'}, {A}),
            ({'StudyDescription': '*BRAIN'}, {B}),
            ({'StudyDescription': 'CT [HEAD]'}, {C}),
            ({'StudyDescription': 'CT [*'}, {C}),
            ({'StudyDescription': 'ct*'}, set()),  # LO matching is case-sensitive
            ({'StudyInstanceUID': '%s,%s' % (A, B)}, {A, B}),
            ({'0020000D': C}, {C}),
            ({'StudyID': 'S1'}, {A}),
            ({'PatientName': 'doe*', 'StudyDate': '19990101-19991231'}, {C}),
            ({'PatientName': 'doe*', 'ModalitiesInStudy': 'MR'}, {A}),
            ({'PatientName': ''}, {A, B, C}),  # empty: universal matching
        ]
        for params, want in cases:
            self.assertEqual(set(study_uids(**params)), want, params)

    def test_3_fuzzy_matching(self):
        self.assertEqual(study_uids(PatientName='jim'), [])
        self.assertEqual(study_uids(PatientName='jim', fuzzymatching='true'), [C])
        self.assertEqual(set(study_uids(PatientName='DO', fuzzymatching='true')), {A, C})
        self.assertEqual(study_uids(ReferringPhysicianName='bob', fuzzymatching='true'), [B])

    def test_4_paging(self):
        everything = study_uids()
        self.assertEqual(len(everything), 3)
        pages = [study_uids(limit=1, offset=i) for i in range(4)]
        self.assertEqual(pages, [[everything[0]], [everything[1]], [everything[2]], []])
        self.assertEqual(study_uids(limit=2, offset=1), everything[1:])

    def test_5_includefield(self):
        got = search('/studies', StudyInstanceUID=A, includefield='PatientBirthTime')
        self.assertEqual(value(got[0], '00100032'), '0800')
        got = search('/studies', StudyInstanceUID=A, includefield='00100032')
        self.assertIn('00100032', got[0])
        got = search('/studies', StudyInstanceUID=A, includefield='all')
        self.assertIn('00100032', got[0])
        # A known attribute the index does not hold is not answered, and not an error.
        got = search('/studies', StudyInstanceUID=A, includefield='ImageComments,PatientAge')
        self.assertNotIn('00204000', got[0])
        got = search('/series', SeriesInstanceUID=A1, includefield='BodyPartExamined')
        self.assertIn('00180015', got[0])

    def test_6_empty_answer(self):
        status, headers, body = get('/studies', PatientID='nobody')
        self.assertEqual((status, json.loads(body)), (200, []))
        self.assertEqual(headers['content-type'], 'application/dicom+json')


class Qido2SeriesAndInstances(unittest.TestCase):
    def test_1_series_of_a_study(self):
        got = search('/studies/%s/series' % A)
        self.assertEqual(sorted(value(s, '0020000E') for s in got), [A1, A2])
        a2 = [s for s in got if value(s, '0020000E') == A2][0]
        self.assertEqual(value(a2, '00080060'), 'MR')
        self.assertEqual(value(a2, '00200011'), 2)
        self.assertEqual(value(a2, '00201209'), 2)
        self.assertEqual(value(a2, '0008103E'), 'series 2')
        self.assertEqual(value(a2, '0020000D'), A)
        self.assertEqual(value(a2, '00081190'),
                         '%s/datastore/%s/studies/%s/series/%s' % (SRV.endpoint, DS, A, A2))
        self.assertEqual([value(s, '0020000E') for s in search('/studies/%s/series' % A,
                                                                Modality='CT')], [A1])
        self.assertEqual(search('/studies/%s404/series' % ROOT), [])

    def test_2_all_series(self):
        self.assertEqual(sorted(value(s, '0020000E') for s in search('/series', Modality='MR')),
                         [A2, B1])
        self.assertEqual(sorted(value(s, '0020000E') for s in search('/series', Modality='C*')),
                         [A1, C1])
        self.assertEqual(sorted(value(s, '0020000E')
                                for s in search('/series', Modality='CT,MR')), [A1, A2, B1, C1])
        self.assertEqual([value(s, '0020000E') for s in search('/series', SeriesNumber='5')],
                         [B1])
        self.assertEqual([value(s, '0020000E') for s in search('/series', SeriesInstanceUID=C1)],
                         [C1])
        self.assertEqual(len(search('/series', SeriesDescription='series 1')), 2)
        self.assertEqual(len(search('/series', StudyInstanceUID=A)), 2)

    def test_3_instances_of_a_series(self):
        got = search('/studies/%s/series/%s/instances' % (A, A1))
        self.assertEqual([value(i, '00200013') for i in got], [1, 2, 3])
        self.assertEqual([value(i, '00080018') for i in got],
                         [A1 + '.3', A1 + '.2', A1 + '.1'])
        first = got[0]
        self.assertEqual(value(first, '00080016'), '1.2.840.10008.5.1.4.1.1.2')
        self.assertEqual(value(first, '00280010'), 128)
        self.assertEqual(value(first, '00280011'), 128)
        self.assertEqual(value(first, '0020000E'), A1)
        self.assertEqual(value(first, '0020000D'), A)
        self.assertEqual(value(first, '00081190'), '%s/datastore/%s/studies/%s/series/%s/'
                         'instances/%s' % (SRV.endpoint, DS, A, A1, A1 + '.3'))
        self.assertNotIn('00080060', first)
        self.assertEqual(value(search('/studies/%s/series/%s/instances' % (A, A1),
                                      includefield='Modality')[0], '00080060'), 'CT')
        self.assertEqual([value(i, '00080018') for i in search(
            '/studies/%s/series/%s/instances' % (A, A1), InstanceNumber='2')], [A1 + '.2'])
        self.assertEqual([value(i, '00080018') for i in search(
            '/studies/%s/series/%s/instances' % (A, A1), SOPInstanceUID=A1 + '.1')], [A1 + '.1'])
        self.assertEqual(len(search('/studies/%s/series/%s/instances' % (A, A1),
                                    SOPClassUID='1.2.840.10008.5.1.4.1.1.2')), 3)
        self.assertEqual(search('/studies/%s/series/%s/instances' % (A, A1),
                                SOPClassUID='1.2.3'), [])
        self.assertEqual(search('/studies/%s/series/%s/instances' % (B, A1)), [])
        self.assertEqual(search('/studies/%s/series/%s/instances' % (A, A1),
                                WarningReason='45056'), [])

    def test_4_instances_of_a_study(self):
        got = search('/studies/%s/instances' % A)
        self.assertEqual(len(got), 5)
        self.assertEqual(value(search('/studies/%s/instances' % A, limit=1, offset=4)[0],
                               '0020000D'), A)


class Qido3Errors(unittest.TestCase):
    def test_bad_parameters(self):
        cases = [
            ('/studies', {'limit': '1001'}, 'limit'),
            ('/studies', {'limit': '0'}, 'limit'),
            ('/studies', {'limit': 'ten'}, 'limit'),
            ('/studies', {'offset': '9001'}, 'offset'),
            ('/studies', {'offset': '-1'}, 'offset'),
            ('/studies', {'Bogus': '1'}, 'Bogus'),
            ('/studies', {'Modality': 'CT'}, 'not a search key'),
            ('/studies', {'PatientSex': 'M'}, 'not a search key'),
            ('/studies', {'StudyDate': '2020'}, 'StudyDate'),
            ('/studies', {'StudyDate': '20200101-20200102-20200103'}, 'StudyDate'),
            ('/studies', {'StudyDate': '2020*'}, 'StudyDate'),
            ('/studies', {'StudyTime': 'noon'}, 'StudyTime'),
            ('/studies', {'StudyInstanceUID': 'abc'}, 'StudyInstanceUID'),
            ('/studies', {'StudyInstanceUID': '1.2*'}, 'StudyInstanceUID'),
            ('/studies', {'ModalitiesInStudy': 'C*'}, 'wildcards'),
            ('/studies', {'includefield': 'NoSuchKeyword'}, 'includefield'),
            ('/studies', {'fuzzymatching': 'maybe'}, 'fuzzymatching'),
            ('/series', {'SeriesNumber': 'one'}, 'SeriesNumber'),
            ('/series', {'PatientName': 'x'}, 'not a search key'),
        ]
        for path, params, word in cases:
            status, kind, msg = bad(path, **params)
            self.assertEqual((status, kind), (400, 'ValidationException'), (params, msg))
            self.assertIn(word, msg, params)

    def test_malformed_queries(self):
        for query in ('PatientID=%zz', 'PatientID=a&PatientID=b', 'limit=1&limit=2',
                      'PatientID=a%00b'):
            status, headers, body = ahltest.raw('GET', SRV.endpoint, '/datastore/%s/studies' % DS,
                                                query)
            self.assertEqual(status, 400, query)
        status, _, _ = ahltest.raw('GET', SRV.endpoint, '/datastore/%s/studies/1.2/series' % ('0' * 32),
                                   '')
        self.assertEqual(status, 404)  # unknown data store
        status, _, _ = ahltest.raw('GET', SRV.endpoint, '/datastore/%s/studies/x/series' % DS, '')
        self.assertEqual(status, 400)
        status, _, _ = ahltest.raw('GET', SRV.endpoint, '/datastore/%s/studies' % DS, '',
                                   sign=False)
        self.assertEqual(status, 403)


class Qido4Changes(unittest.TestCase):
    def test_1_non_primary_sets_are_left_out(self):
        self.assertEqual(study_uids(PatientName='other*'), [])
        got = search('/studies/%s/series/%s/instances' % (A, A1))
        self.assertNotIn(A1 + '.99', [value(i, '00080018') for i in got])

    def test_2_updates_show_in_the_next_search(self):
        set_id = set_of(C, C1)
        latest = MI.get_image_set(datastoreId=DS, imageSetId=set_id)['versionId']
        change = {'SchemaVersion': 1.1,
                  'Patient': {'DICOM': {'PatientName': 'Renamed^Jim'}},
                  'Study': {'DICOM': {'StudyDescription': 'CT HEAD RENAMED'}}}
        MI.update_image_set_metadata(
            datastoreId=DS, imageSetId=set_id, latestVersionId=latest,
            updateImageSetMetadataUpdates={'DICOMUpdates': {
                'updatableAttributes': json.dumps(change).encode()}})
        self.assertEqual(study_uids(PatientName='renamed*'), [C])
        self.assertEqual(study_uids(PatientName='doe^jim'), [])
        self.assertEqual(study_uids(StudyDescription='*RENAMED'), [C])
        self.assertEqual(study_uids()[0], C)  # newest update first
        # The series and instances of the set are still found.
        self.assertEqual(len(search('/studies/%s/series/%s/instances' % (C, C1))), 1)

    def test_3_deleted_sets_are_gone(self):
        set_id = set_of(B, B1)
        MI.delete_image_set(datastoreId=DS, imageSetId=set_id)
        self.assertNotIn(B, study_uids())
        self.assertEqual(search('/series', SeriesInstanceUID=B1), [])
        self.assertEqual(search('/studies/%s/series/%s/instances' % (B, B1)), [])
        self.assertEqual(set(study_uids(ModalitiesInStudy='MR')), {A})


if __name__ == '__main__':
    unittest.main()
