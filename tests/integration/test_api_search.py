"""SearchImageSets end to end through boto3: 60 primary image sets made from pydicom's CT sample
(one per study, each with its own patient group, accession number, study id, UIDs and study
date-time) imported with `ahilite import` before the server starts, plus non-primary copies made
through the API. Every filter attribute and operator, both sort orders of every sort field, the
boto3 paginator over more than one 50-result page, isPrimary, deleted sets left out, and
nextTokens that are not this search's."""
import datetime
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SAMPLE = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm'
N = 60
ROOT = '1.2.826.0.1.3680043.9.7777.'
SRV = None
MI = None
DS = None

# Written with the system Python, which has pydicom (the test's Python has boto3).
GENERATE = r'''
import datetime, sys
import pydicom
n, out, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
for i in range(n):
    ds = pydicom.dcmread(sys.argv[4])
    ds.PatientID = 'SRCH%02d' % (i % 20)
    ds.PatientName = 'SEARCH^%02d' % (i % 20)
    ds.AccessionNumber = 'ACC%d' % (i % 7)
    ds.StudyID = 'ST%d' % (i % 5)
    ds.StudyInstanceUID = root + str(i)
    ds.SeriesInstanceUID = root + '%d.1' % i
    ds.SOPInstanceUID = root + '%d.1.1' % i
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyDate = (datetime.date(2020, 1, 1) + datetime.timedelta(days=i)).strftime('%Y%m%d')
    ds.StudyTime = '%02d%02d00' % (i % 24, i % 60)
    ds.save_as('%s/s%02d.dcm' % (out, i))
'''


def study(i):
    return {'date': (datetime.date(2020, 1, 1) + datetime.timedelta(days=i)).strftime('%Y%m%d'),
            'time': '%02d%02d00' % (i % 24, i % 60)}


def import_sets(server):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(['/usr/bin/python3', '-c', GENERATE, str(N), d, ROOT, SAMPLE],
                       check=True, timeout=120)
        p = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir,
                            '--create-datastore', 'search', d],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr


def setUpModule():
    global SRV, MI, DS
    SRV = ahltest.Server(before_start=import_sets)
    MI = ahltest.boto3_client(SRV)
    DS = MI.list_datastores()['datastoreSummaries'][0]['datastoreId']


def tearDownModule():
    SRV.finish()


def search_all(criteria=None, page_size=None):
    """Every result through boto3's paginator, and the number of pages it took."""
    kw = {'datastoreId': DS}
    if criteria is not None:
        kw['searchCriteria'] = criteria
    if page_size:
        kw['PaginationConfig'] = {'PageSize': page_size}
    pages = list(MI.get_paginator('search_image_sets').paginate(**kw))
    items = [s for p in pages for s in p['imageSetsMetadataSummaries']]
    return items, len(pages)


def eq(attr, value):
    return {'filters': [{'values': [{attr: value}], 'operator': 'EQUAL'}]}


def between(attr, lo, hi):
    return {'filters': [{'values': [{attr: lo}, {attr: hi}], 'operator': 'BETWEEN'}]}


def patient_index(s):
    return int(s['DICOMTags']['DICOMPatientId'][4:])


def study_index(s):
    return int(s['DICOMTags']['DICOMStudyInstanceUID'][len(ROOT):])


class Search(unittest.TestCase):
    def test_1_paginator_and_default_order(self):
        items, pages = search_all()
        self.assertEqual(len(items), N)
        self.assertEqual(pages, 2)  # 50 + 10 with the default page size
        self.assertEqual(len({s['imageSetId'] for s in items}), N)
        # updatedAt descending, ties by image set id descending.
        keys = [(s['updatedAt'], s['imageSetId']) for s in items]
        self.assertEqual(keys, sorted(keys, reverse=True))
        small, pages = search_all(page_size=7)
        self.assertEqual(pages, 9)
        self.assertEqual([s['imageSetId'] for s in small], [s['imageSetId'] for s in items])
        s = items[0]
        self.assertTrue(s['isPrimary'])
        self.assertEqual(s['version'], 1)
        self.assertEqual(s['storageTier'], 'FREQUENT_ACCESS')
        tags = s['DICOMTags']
        i = study_index(s)
        self.assertEqual(tags['DICOMPatientName'], 'SEARCH^%02d' % (i % 20))
        self.assertEqual(tags['DICOMStudyDate'], study(i)['date'])
        self.assertEqual(tags['DICOMStudyTime'], study(i)['time'])
        self.assertEqual(tags['DICOMSeriesModality'], 'CT')
        self.assertEqual(tags['DICOMNumberOfStudyRelatedInstances'], 1)
        self.assertEqual(tags['DICOMNumberOfStudyRelatedSeries'], 1)

    def test_2_every_sort(self):
        for field in ('updatedAt', 'createdAt', 'DICOMStudyDateAndTime'):
            for order in ('ASC', 'DESC'):
                sort = {'sortField': field, 'sortOrder': order}
                items, _ = search_all({'sort': sort}, page_size=9)
                self.assertEqual(len(items), N, sort)
                self.assertEqual(len({s['imageSetId'] for s in items}), N, sort)
                if field == 'DICOMStudyDateAndTime':
                    keys = [(s['DICOMTags']['DICOMStudyDate'] + s['DICOMTags']['DICOMStudyTime'],
                             s['imageSetId']) for s in items]
                else:
                    keys = [(s[field], s['imageSetId']) for s in items]
                self.assertEqual(keys, sorted(keys, reverse=order == 'DESC'), sort)
                r = MI.search_image_sets(datastoreId=DS, searchCriteria={'sort': sort})
                self.assertEqual(r['sort'], sort)

    def test_3_equal_filters(self):
        cases = [
            ('DICOMPatientId', 'SRCH07', lambda i: i % 20 == 7),
            ('DICOMAccessionNumber', 'ACC3', lambda i: i % 7 == 3),
            ('DICOMStudyId', 'ST4', lambda i: i % 5 == 4),
            ('DICOMStudyInstanceUID', ROOT + '42', lambda i: i == 42),
            ('DICOMSeriesInstanceUID', ROOT + '42.1', lambda i: i == 42),
            ('DICOMPatientId', 'nobody', lambda i: False),
            ('DICOMPatientId', 'srch07', lambda i: False),  # case-sensitive
        ]
        for attr, value, want in cases:
            items, _ = search_all(eq(attr, value), page_size=4)
            primary = [s for s in items if s['isPrimary']]
            self.assertEqual(sorted(study_index(s) for s in primary),
                             [i for i in range(N) if want(i)], (attr, value))

    def test_4_between_filters(self):
        lo, hi = study(10), study(19)
        items, _ = search_all(between('DICOMStudyDateAndTime',
                                      {'DICOMStudyDate': lo['date'], 'DICOMStudyTime': lo['time']},
                                      {'DICOMStudyDate': hi['date'], 'DICOMStudyTime': hi['time']}))
        self.assertEqual(sorted(study_index(s) for s in items if s['isPrimary']),
                         list(range(10, 20)))
        # Without a time, the bound is 00:00:00 of the day: day 19 at 19:19 is after it.
        items, _ = search_all(between('DICOMStudyDateAndTime', {'DICOMStudyDate': lo['date']},
                                      {'DICOMStudyDate': hi['date']}))
        self.assertEqual(sorted(study_index(s) for s in items if s['isPrimary']),
                         list(range(10, 19)))
        everything, _ = search_all()
        times = sorted(s['createdAt'] for s in everything)
        lo_t = times[0].replace(microsecond=0)
        hi_t = times[-1].replace(microsecond=0) + datetime.timedelta(seconds=1)
        for attr in ('createdAt', 'updatedAt'):
            items, _ = search_all(between(attr, lo_t, hi_t))
            self.assertGreaterEqual(len(items), N, attr)
            items, _ = search_all(between(attr, lo_t - datetime.timedelta(days=2),
                                          lo_t - datetime.timedelta(days=1)))
            self.assertEqual(items, [], attr)
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.search_image_sets(datastoreId=DS, searchCriteria=between('createdAt', hi_t, lo_t))
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.search_image_sets(datastoreId=DS,
                                 searchCriteria=between('DICOMPatientId', 'SRCH01', 'SRCH02'))
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.search_image_sets(datastoreId=DS, searchCriteria=eq(
                'DICOMStudyDateAndTime', {'DICOMStudyDate': '2020-01-01'}))

    def test_5_primary_copies_deleted(self):
        src = search_all(eq('DICOMPatientId', 'SRCH03'))[0]
        base = [s for s in src if s['isPrimary']][0]
        copies = []
        for _ in range(3):
            c = MI.copy_image_set(datastoreId=DS, sourceImageSetId=base['imageSetId'],
                                  copyImageSetInformation={'sourceImageSet': {
                                      'latestVersionId': str(base['version'])}})
            copies.append(c['destinationImageSetProperties']['imageSetId'])
        nonprimary, _ = search_all(eq('isPrimary', False))
        self.assertEqual(sorted(s['imageSetId'] for s in nonprimary), sorted(copies))
        primary, pages = search_all(eq('isPrimary', True))
        self.assertEqual((len(primary), pages), (N, 2))
        both = {'filters': [{'values': [{'isPrimary': False}], 'operator': 'EQUAL'},
                            {'values': [{'DICOMPatientId': 'SRCH03'}], 'operator': 'EQUAL'}],
                'sort': {'sortField': 'createdAt', 'sortOrder': 'ASC'}}
        self.assertEqual([s['imageSetId'] for s in search_all(both, page_size=1)[0]], copies)

        MI.delete_image_set(datastoreId=DS, imageSetId=copies[1])
        MI.delete_image_set(datastoreId=DS, imageSetId=base['imageSetId'])
        gone = {copies[1], base['imageSetId']}
        everything, _ = search_all()
        self.assertEqual(len(everything), N + 3 - 2)
        self.assertFalse(gone & {s['imageSetId'] for s in everything})
        by_patient, _ = search_all(eq('DICOMPatientId', 'SRCH03'))
        self.assertFalse(gone & {s['imageSetId'] for s in by_patient})
        self.assertEqual(len(by_patient), 3 + 3 - 2)
        self.assertEqual([s['imageSetId'] for s in search_all(both)[0]], [copies[0], copies[2]])

        # An update moves a set to the front of the default order, with its new version.
        target = [s for s in everything if s['isPrimary']][-1]
        MI.update_image_set_metadata(
            datastoreId=DS, imageSetId=target['imageSetId'],
            latestVersionId=str(target['version']),
            updateImageSetMetadataUpdates={'DICOMUpdates': {'updatableAttributes':
                b'{"SchemaVersion":1.1,"Patient":{"DICOM":{"PatientID":"MOVED"}}}'}})
        first = MI.search_image_sets(datastoreId=DS, maxResults=1)['imageSetsMetadataSummaries']
        self.assertEqual((first[0]['imageSetId'], first[0]['version']),
                         (target['imageSetId'], target['version'] + 1))
        moved = search_all(eq('DICOMPatientId', 'MOVED'))[0]
        self.assertEqual([s['imageSetId'] for s in moved], [target['imageSetId']])

    def test_6_tokens(self):
        r = MI.search_image_sets(datastoreId=DS, maxResults=5, searchCriteria=eq('isPrimary', True))
        token = r['nextToken']
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.search_image_sets(datastoreId=DS, nextToken=token,
                                 searchCriteria=eq('isPrimary', False))
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.search_image_sets(datastoreId=DS, nextToken=token)
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.search_image_sets(datastoreId=DS, nextToken='bm90IGEgdG9rZW4=')
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.search_image_sets(datastoreId=DS, nextToken='%%%')
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.search_image_sets(datastoreId=DS, maxResults=51)
        nxt = MI.search_image_sets(datastoreId=DS, maxResults=5, nextToken=token,
                                   searchCriteria=eq('isPrimary', True))
        ids = {s['imageSetId'] for s in r['imageSetsMetadataSummaries']}
        self.assertFalse(ids & {s['imageSetId'] for s in nxt['imageSetsMetadataSummaries']})
        with self.assertRaises(MI.exceptions.ResourceNotFoundException):
            MI.search_image_sets(datastoreId='0' * 32)


if __name__ == '__main__':
    unittest.main(verbosity=2)
