"""StartDICOMImportJob's importConfiguration (DICOM JSON metadata mappings), inputOwnerAccountId
and the import-job quotas, through boto3 (docs/import.md#metadata-mappings, #limits).

Mappings: a study mapping and a study-and-series mapping enrich CT_small.dcm (the series mapping
wins where both set an attribute), MR_small.dcm, of another study, is left alone, and
GetImageSetMetadata shows each mapped value at its level; GetDICOMImportJob echoes the
configuration. Bad mappings are ValidationExceptions that record no job; a metadata file that is
not JSON, not DICOM JSON, sets an attribute a mapping may not set, or is missing is a failure line,
and the instances of its study fail too (named by the file), so no set is imported half enriched.
Owner: local buckets belong to the server's account. Quotas: files and bytes per job (FAILED
naming the limit) and jobs in flight per data store (ServiceQuotaExceededException). The S3 class
runs the mapping and owner cases against moto_server, which ignores x-amz-expected-bucket-owner.
"""
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files/'
CT_STUDY = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322'
CT_SERIES = '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322'
MR_STUDY = '1.3.6.1.4.1.5962.1.2.4.20040826185059.5457'
ROLE = 'arn:aws:iam::123456789012:role/ImportRole'


def corpus(name):
    with open(CORPUS + name, 'rb') as f:
        return f.read()


STUDY_META = {
    '00100010': {'vr': 'PN', 'Value': [{'Alphabetic': 'Mapped^Patient'}]},
    '00081030': {'vr': 'LO', 'Value': ['From the study mapping']},
    '00080050': {'vr': 'SH', 'Value': ['ACC-42']},
    '0020000D': {'vr': 'UI', 'Value': [CT_STUDY]},
}
SERIES_META = [{
    '0008103E': {'vr': 'LO', 'Value': ['Mapped series']},
    '00081030': {'vr': 'LO', 'Value': ['From the series mapping']},
    '00200011': {'vr': 'IS', 'Value': [7]},
}]

INPUT = {
    'm1/ct.dcm': corpus('CT_small.dcm'),
    'm1/mr.dcm': corpus('MR_small.dcm'),
    'm1/meta/study.json': json.dumps(STUDY_META).encode(),
    'm1/meta/series.json': json.dumps(SERIES_META).encode(),
    # Bad metadata files, each mapped to the study of the file beside it.
    'bad1/ct.dcm': corpus('CT_small.dcm'),
    'bad1/mr.dcm': corpus('MR_small.dcm'),
    'bad1/meta.json': b'{"00100010": {"vr": "PN", "Value": [',
    'bad2/mr.dcm': corpus('MR_small.dcm'),
    'bad2/meta.json': json.dumps({'PatientName': 'x'}).encode(),
    'bad3/mr.dcm': corpus('MR_small.dcm'),
    'bad3/meta.json': json.dumps({'00080016': {'vr': 'UI', 'Value': ['1.2.3']}}).encode(),
    'bad4/mr.dcm': corpus('MR_small.dcm'),
    'bad4/meta.json': json.dumps({'0008103E': {'vr': 'LO', 'Value': ['x']}}).encode(),
    'bad5/mr.dcm': corpus('MR_small.dcm'),
    'bad6/mr.dcm': corpus('MR_small.dcm'),
    'bad6/meta.json': json.dumps({'0020000D': {'vr': 'UI', 'Value': ['1.2.3.4']}}).encode(),
    'owner/ct.dcm': corpus('CT_small.dcm'),
}


def mappings(*entries):
    return {'dicomJsonMetadataImportConfiguration': {'dicomMetadataMappings': list(entries)}}


class Checks:
    """Shared cases; subclasses provide the server, its client and the data store."""

    def start(self, token, prefix, config=None, owner=None, out='out'):
        kw = dict(jobName='mapping-test', datastoreId=self.ds, dataAccessRoleArn=ROLE,
                  clientToken=token, inputS3Uri='s3://in-bucket/%s/' % prefix,
                  outputS3Uri='s3://out-bucket/%s/' % out)
        if config is not None:
            kw['importConfiguration'] = config
        if owner is not None:
            kw['inputOwnerAccountId'] = owner
        return self.client.start_dicom_import_job(**kw)

    def run_job(self, token, prefix, config=None, owner=None):
        r = self.start(token, prefix, config, owner)
        props = ahltest.wait_import_job(self.client, self.ds, r['jobId'], 120)
        folder = 'out/%s-DicomImport-%s/' % (self.ds, r['jobId'])
        if props['jobStatus'] != 'COMPLETED':
            return props, None, None, None

        def lines(name):
            return [json.loads(x) for x in self.read_output(folder + name).splitlines()
                    if x.strip()]
        manifest = json.loads(self.read_output(folder + 'job-output-manifest.json'))
        return props, manifest, lines('SUCCESS/success.ndjson'), lines('FAILURE/failure.ndjson')

    def metadata(self, set_id):
        import gzip
        b = self.client.get_image_set_metadata(datastoreId=self.ds, imageSetId=set_id)
        return json.loads(gzip.decompress(b['imageSetMetadataBlob'].read()))

    def test_mappings_applied(self):
        config = mappings(
            {'studyInstanceUID': CT_STUDY, 'metadataFilePath': 'meta/study.json'},
            {'studyInstanceUID': CT_STUDY, 'seriesInstanceUID': CT_SERIES,
             'metadataFilePath': 'meta/series.json'})
        props, manifest, ok, bad = self.run_job('map-ok', 'm1', config)
        self.assertEqual(props['jobStatus'], 'COMPLETED', props.get('message'))
        self.assertEqual(props['importConfiguration'], config)
        self.assertEqual(bad, [])
        # The metadata files are read, not imported as DICOM.
        self.assertEqual(sorted(x['inputFile'] for x in ok), ['m1/ct.dcm', 'm1/mr.dcm'])
        self.assertEqual(manifest['jobSummary']['numberOfScannedFiles'], 2)
        sets = {x['inputFile']: x['importResponse']['imageSetId'] for x in ok}
        ct = self.metadata(sets['m1/ct.dcm'])
        self.assertEqual(ct['Patient']['DICOM']['PatientName'], 'Mapped^Patient')
        self.assertEqual(ct['Patient']['DICOM']['PatientID'], '1CT1')  # not mapped: kept
        # Both mappings set StudyDescription: the study-and-series one wins.
        self.assertEqual(ct['Study']['DICOM']['StudyDescription'], 'From the series mapping')
        self.assertEqual(ct['Study']['DICOM']['AccessionNumber'], 'ACC-42')
        series = ct['Study']['Series'][CT_SERIES]['DICOM']
        self.assertEqual(series['SeriesDescription'], 'Mapped series')
        self.assertEqual(series['SeriesNumber'], '7')
        mr = self.metadata(sets['m1/mr.dcm'])
        self.assertEqual(mr['Patient']['DICOM']['PatientName'], 'CompressedSamples^MR1')
        self.assertNotIn('StudyDescription', mr['Study']['DICOM'])
        # Search sees the mapped values too.
        found = self.client.search_image_sets(datastoreId=self.ds, searchCriteria={'filters': [
            {'operator': 'EQUAL', 'values': [{'DICOMStudyInstanceUID': CT_STUDY}]}]})
        tags = [s['DICOMTags'] for s in found['imageSetsMetadataSummaries']
                if s['imageSetId'] == sets['m1/ct.dcm']][0]
        self.assertEqual(tags['DICOMPatientName'], 'Mapped^Patient')

    def check_bad(self, token, prefix, config, file_key, words):
        props, manifest, ok, bad = self.run_job(token, prefix, config)
        self.assertEqual(props['jobStatus'], 'COMPLETED', props.get('message'))
        failed = {x['inputFile']: x['exception'] for x in bad}
        self.assertIn(file_key, failed)
        self.assertEqual(failed[file_key]['exceptionType'], 'ValidationException')
        for w in words:
            self.assertIn(w, failed[file_key]['message'])
        mr = prefix + '/mr.dcm'
        self.assertIn(mr, failed, 'an instance of the mapped study was imported')
        self.assertIn(file_key, failed[mr]['message'])
        self.assertNotIn(mr, [x['inputFile'] for x in ok])
        return ok, failed

    def test_bad_metadata_files(self):
        m = {'studyInstanceUID': MR_STUDY, 'metadataFilePath': 'meta.json'}
        ok, failed = self.check_bad('bad-1', 'bad1', mappings(m), 'bad1/meta.json', ['not JSON'])
        # The other study's file is imported, unenriched.
        self.assertEqual([x['inputFile'] for x in ok], ['bad1/ct.dcm'])
        self.check_bad('bad-2', 'bad2', mappings(m), 'bad2/meta.json', ['8 hex digits'])
        self.check_bad('bad-3', 'bad3', mappings(m), 'bad3/meta.json', ['instance-level'])
        self.check_bad('bad-4', 'bad4', mappings(m), 'bad4/meta.json', ['seriesInstanceUID'])
        self.check_bad('bad-5', 'bad5', mappings(m), 'bad5/meta.json', ['meta.json'])
        self.check_bad('bad-6', 'bad6', mappings(m), 'bad6/meta.json',
                       ['StudyInstanceUID', 'force'])
        # Nothing of the MR study was stored by any of these jobs.
        found = self.client.search_image_sets(datastoreId=self.ds, searchCriteria={'filters': [
            {'operator': 'EQUAL', 'values': [{'DICOMStudyInstanceUID': MR_STUDY}]}]})
        for s in found['imageSetsMetadataSummaries']:
            self.assertNotEqual(s['DICOMTags'].get('DICOMPatientName'), 'x')

    def test_validation_errors(self):
        before = len(self.client.list_dicom_import_jobs(datastoreId=self.ds)['jobSummaries'])
        cases = [
            ({'studyInstanceUID': '1.02.3', 'metadataFilePath': 'a.json'}, 'studyInstanceUID'),
            ({'studyInstanceUID': '', 'metadataFilePath': 'a.json'}, 'studyInstanceUID'),
            ({'studyInstanceUID': '1.2', 'seriesInstanceUID': '1..2',
              'metadataFilePath': 'a.json'}, 'seriesInstanceUID'),
            ({'studyInstanceUID': '1.2', 'metadataFilePath': '/etc/a.json'}, 'metadataFilePath'),
            ({'studyInstanceUID': '1.2', 'metadataFilePath': 'x/../../a.json'},
             'metadataFilePath'),
            ({'studyInstanceUID': '1.2', 'metadataFilePath': 'x//a.json'}, 'metadataFilePath'),
        ]
        for i, (m, word) in enumerate(cases):
            with self.assertRaises(self.client.exceptions.ValidationException) as cm:
                self.start('val-%d' % i, 'm1', mappings(m))
            self.assertIn(word, str(cm.exception))
        with self.assertRaises(self.client.exceptions.ValidationException) as cm:
            self.start('val-dup', 'm1', mappings(
                {'studyInstanceUID': '1.2', 'metadataFilePath': 'a.json'},
                {'studyInstanceUID': '1.2', 'metadataFilePath': 'b.json'}))
        self.assertIn('already mapped', str(cm.exception))
        with self.assertRaises(self.client.exceptions.ValidationException):
            self.start('val-many', 'm1', mappings(*[
                {'studyInstanceUID': '1.2.%d' % i, 'metadataFilePath': 'a.json'}
                for i in range(1001)]))
        after = len(self.client.list_dicom_import_jobs(datastoreId=self.ds)['jobSummaries'])
        self.assertEqual(after, before)

    def test_idempotency_covers_options(self):
        m = mappings({'studyInstanceUID': CT_STUDY, 'metadataFilePath': 'meta/study.json'})
        r1 = self.start('idem', 'm1', m)
        self.assertEqual(self.start('idem', 'm1', m)['jobId'], r1['jobId'])
        with self.assertRaises(self.client.exceptions.ConflictException):
            self.start('idem', 'm1', m, owner=ahltest.ACCOUNT)
        ahltest.wait_import_job(self.client, self.ds, r1['jobId'], 120)

    def test_owner_matches(self):
        props, manifest, ok, bad = self.run_job('owner-ok', 'owner', owner=ahltest.ACCOUNT)
        self.assertEqual(props['jobStatus'], 'COMPLETED', props.get('message'))
        self.assertEqual([x['inputFile'] for x in ok], ['owner/ct.dcm'])


class LocalBuckets(Checks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix='ahilite-s3root-')
        for key, data in INPUT.items():
            p = os.path.join(cls.root, 'in-bucket', key)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, 'wb') as f:
                f.write(data)
        # Quota inputs: four files; one sparse file of 2 MiB.
        for i in range(4):
            p = os.path.join(cls.root, 'in-bucket', 'many', 'f%d.dcm' % i)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, 'wb') as f:
                f.write(corpus('CT_small.dcm'))
        big = os.path.join(cls.root, 'in-bucket', 'big', 'big.dcm')
        os.makedirs(os.path.dirname(big))
        with open(big, 'wb') as f:
            f.truncate(2 << 20)
        for i in range(3):
            p = os.path.join(cls.root, 'in-bucket', 'slow', 'f%d.dcm' % i)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, 'wb') as f:
                f.write(corpus('JPEG2000.dcm'))
        os.makedirs(os.path.join(cls.root, 'out-bucket'))
        cls.server = ahltest.Server(extra_args=['--s3-root', cls.root])
        cls.client = ahltest.boto3_client(cls.server)
        cls.ds = ahltest.create_active_datastore(cls.client, 'mappings')

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        cls.server.cleanup()
        shutil.rmtree(cls.root, ignore_errors=True)
        assert rc == 0, 'server exit status %r' % rc

    def read_output(self, key):
        with open(os.path.join(self.root, 'out-bucket', key), 'rb') as f:
            return f.read().decode()

    def test_owner_mismatch_fails_job(self):
        props, _, _, _ = self.run_job('owner-bad', 'owner', owner='111111111111')
        self.assertEqual(props['jobStatus'], 'FAILED')
        self.assertIn('111111111111', props['message'])
        self.assertIn(ahltest.ACCOUNT, props['message'])

    def test_quotas(self):
        server = ahltest.Server(extra_args=['--s3-root', self.root, '--job-max-files', '3',
                                            '--job-max-mib', '1', '--job-max-concurrent', '1'])
        try:
            client = ahltest.boto3_client(server)
            ds = ahltest.create_active_datastore(client, 'quotas')

            def start(token, prefix):
                return client.start_dicom_import_job(
                    datastoreId=ds, dataAccessRoleArn=ROLE, clientToken=token,
                    inputS3Uri='s3://in-bucket/%s/' % prefix,
                    outputS3Uri='s3://out-bucket/quota/')
            r = start('files', 'many')
            props = ahltest.wait_import_job(client, ds, r['jobId'], 120)
            self.assertEqual(props['jobStatus'], 'FAILED')
            self.assertIn('4 files', props['message'])
            self.assertIn('3 files per import job', props['message'])
            r = start('bytes', 'big')
            props = ahltest.wait_import_job(client, ds, r['jobId'], 120)
            self.assertEqual(props['jobStatus'], 'FAILED')
            self.assertIn('1 MiB per import job', props['message'])
            # One job in flight is the limit: a second one is refused until the first ends.
            r = start('in-flight', 'slow')
            first = client.get_dicom_import_job(datastoreId=ds, jobId=r['jobId'])
            with self.assertRaises(client.exceptions.ServiceQuotaExceededException) as cm:
                start('second', 'owner')
            if first['jobProperties']['jobStatus'] in ('COMPLETED', 'FAILED'):
                self.skipTest('the first job ended before the second was started')
            self.assertIn('1 concurrent import jobs', str(cm.exception))
            # The same token again is the same job, not a new one: no quota applies.
            self.assertEqual(start('in-flight', 'slow')['jobId'], r['jobId'])
            ahltest.wait_import_job(client, ds, r['jobId'], 120)
            r2 = start('second', 'owner')
            props = ahltest.wait_import_job(client, ds, r2['jobId'], 120)
            self.assertEqual(props['jobStatus'], 'COMPLETED', props.get('message'))
        finally:
            rc = server.stop()
            server.cleanup()
            self.assertEqual(rc, 0)


class S3Endpoint(ahltest.S3JobServer, Checks, unittest.TestCase):
    DATASTORE_NAME = 'mappings'

    @classmethod
    def input_objects(cls):
        return INPUT


if __name__ == '__main__':
    unittest.main(verbosity=2)
