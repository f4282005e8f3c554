"""Import jobs end to end through boto3: StartDICOMImportJob on `ahilite serve`, polled with
GetDICOMImportJob to COMPLETED, outputs checked in HealthImaging's layout (manifest, SUCCESS,
FAILURE, WARNING ndjson), and the imported instances read back with GetImageSetMetadata and
GetImageFrame. Run twice: with local buckets (--s3-root) and with moto_server as a real S3
endpoint (--s3-endpoint), started here on a free loopback port. A non-DICOM file and a truncated
file must be failure lines while the job completes; a file whose Basic Offset Table does not match
its fragments is imported with HealthImaging's InvalidOffsetTable warning; a second job over the
same input must change nothing (same image sets, same versions) for every file.
"""
import gzip
import json
import os
import shutil
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import jph  # noqa: E402

CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files/'
GOOD = {  # input key -> corpus file
    'dicom_input/ct.dcm': 'CT_small.dcm',
    'dicom_input/mr_rle.dcm': 'MR_small_RLE.dcm',
    'dicom_input/rgb_2frame.dcm': 'SC_rgb_rle_2frame.dcm',
    'dicom_input/nested/deeper/j2k.dcm': 'JPEG2000.dcm',
}
RGB_UID = b'1.2.826.0.1.3680043.8.498.49043964482360854182530167603505525116'


def bad_offset_table_file():
    """SC_rgb_rle_2frame.dcm as another instance of its series (last digit of the SOP instance
    UID changed, in the meta group and the dataset) whose Basic Offset Table's second entry points
    2 bytes into the first frame's fragment instead of at the second fragment."""
    with open(CORPUS + 'SC_rgb_rle_2frame.dcm', 'rb') as f:
        b = f.read()
    assert b.count(RGB_UID) == 2
    b = b.replace(RGB_UID, RGB_UID[:-1] + b'7')
    head = b'\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff\xfe\xff\x00\xe0\x08\x00\x00\x00'
    i = b.find(head)
    assert i > 0, 'SC_rgb_rle_2frame.dcm no longer has a two-entry offset table'
    second = i + len(head) + 4
    (offset,) = struct.unpack_from('<I', b, second)
    return b[:second] + struct.pack('<I', offset + 2) + b[second + 4:]


GENERATED = {'dicom_input/rgb_bad_offsets.dcm': bad_offset_table_file}
BAD = {
    'dicom_input/notes.txt': b'this is not a DICOM file\n' * 10,
    'dicom_input/truncated.dcm': None,  # MR_truncated.dcm
}


def input_objects():
    objs = {}
    for key, name in GOOD.items():
        with open(CORPUS + name, 'rb') as f:
            objs[key] = f.read()
    for key, make in GENERATED.items():
        objs[key] = make()
    objs['dicom_input/notes.txt'] = BAD['dicom_input/notes.txt']
    with open(CORPUS + 'MR_truncated.dcm', 'rb') as f:
        objs['dicom_input/truncated.dcm'] = f.read()
    return objs


class ImportJobChecks:
    """Shared checks; subclasses provide the server and read_output(key)."""

    def run_job(self, token):
        r = self.client.start_dicom_import_job(
            jobName='import-test', datastoreId=self.ds,
            dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole', clientToken=token,
            inputS3Uri='s3://in-bucket/dicom_input/', outputS3Uri='s3://out-bucket/job_output/')
        self.assertEqual(r['jobStatus'], 'SUBMITTED')
        props = ahltest.wait_import_job(self.client, self.ds, r['jobId'], 120)
        self.assertEqual(props['jobStatus'], 'COMPLETED', props.get('message'))
        folder = 'job_output/%s-DicomImport-%s/' % (self.ds, r['jobId'])
        self.assertEqual(props['outputS3Uri'], 's3://out-bucket/' + folder)
        manifest = json.loads(self.read_output(folder + 'job-output-manifest.json'))
        ok = [json.loads(x) for x in self.read_output(folder + 'SUCCESS/success.ndjson')
              .splitlines() if x.strip()]
        bad = [json.loads(x) for x in self.read_output(folder + 'FAILURE/failure.ndjson')
               .splitlines() if x.strip()]
        warn = [json.loads(x) for x in self.read_output(folder + 'WARNING/warning.ndjson')
                .splitlines() if x.strip()]
        return r['jobId'], folder, manifest, ok, bad, warn

    def check_outputs(self, job_id, folder, manifest, ok, bad):
        s = manifest['jobSummary']
        self.assertEqual(s['jobId'], job_id)
        self.assertEqual(s['datastoreId'], self.ds)
        self.assertEqual(s['inputS3Uri'], 's3://in-bucket/dicom_input/')
        self.assertEqual(s['outputS3Uri'], 's3://out-bucket/' + folder)
        self.assertEqual(s['successOutputS3Uri'], 's3://out-bucket/' + folder + 'SUCCESS/')
        self.assertEqual(s['failureOutputS3Uri'], 's3://out-bucket/' + folder + 'FAILURE/')
        self.assertEqual(s['warningsOutputS3Uri'], 's3://out-bucket/' + folder + 'WARNING/')
        self.assertEqual(s['numberOfScannedFiles'], len(GOOD) + len(GENERATED) + len(BAD))
        self.assertEqual(s['numberOfImportedFiles'], len(GOOD) + len(GENERATED))
        self.assertEqual(s['numberOfFilesWithCustomerError'], len(BAD))
        self.assertEqual(s['numberOfFilesWithServerError'], 0)
        self.assertEqual(sorted(x['inputFile'] for x in ok), sorted(list(GOOD) + list(GENERATED)))
        self.assertEqual(sorted(x['inputFile'] for x in bad), sorted(BAD))
        for line in bad:
            self.assertEqual(line['exception']['exceptionType'], 'ValidationException')
            self.assertTrue(line['exception']['message'])
        trunc = [x for x in bad if x['inputFile'].endswith('truncated.dcm')][0]
        self.assertIn('truncated', trunc['exception']['message'])
        sets = {x['imageSetId'] for x in s['imageSetsSummary']}
        self.assertEqual(s['numberOfGeneratedImageSets'], len(sets))
        for line in ok:
            r = line['importResponse']
            self.assertIn(r['imageSetId'], sets)
            self.assertIsInstance(r['isPrimary'], bool)
            self.assertGreaterEqual(r['imageSetVersion'], 1)
        self.assertEqual(sum(x['numberOfMatchedSOPInstances'] for x in s['imageSetsSummary']),
                         len(GOOD) + len(GENERATED))

    def check_metadata(self, ok):
        frames_seen = 0
        for line in ok:
            set_id = line['importResponse']['imageSetId']
            body = self.client.get_image_set_metadata(
                datastoreId=self.ds, imageSetId=set_id)['imageSetMetadataBlob'].read()
            try:
                doc = json.loads(gzip.decompress(body))
            except OSError:
                doc = json.loads(body)
            self.assertEqual(doc['ImageSetID'], set_id)
            instances = [i for s in doc['Study']['Series'].values()
                         for i in s['Instances'].values()]
            self.assertGreaterEqual(len(instances), 1)
            for inst in instances:
                for fr in inst.get('ImageFrames', []):
                    frames_seen += 1
                    self.assertEqual(len(fr['ID']), 32)
                    out = self.client.get_image_frame(
                        datastoreId=self.ds, imageSetId=set_id,
                        imageFrameInformation={'imageFrameId': fr['ID']})
                    data = out['imageFrameBlob'].read()
                    if out['contentType'] == 'image/jph':
                        data = jph.parse(data)[2]  # the stored codestream of the JPH file
                    self.assertEqual(len(data), fr['FrameSizeInBytes'])
        # CT 1 + MR 1 + RGB 2 + J2K 1
        self.assertGreaterEqual(frames_seen, 5)

    def check_offset_table_warning(self, ok, warn):
        # Exactly the file with the bad Basic Offset Table has warning 45330, worded as
        # HealthImaging words it, next to its success line.
        flagged = {}
        for line in warn:
            for w in line['importResponse']['warnings']:
                if w['type'] == 'InvalidOffsetTable':
                    flagged[line['inputFile']] = (line['importResponse'], w)
        self.assertEqual(set(flagged), set(GENERATED))
        resp, w = flagged['dicom_input/rgb_bad_offsets.dcm']
        self.assertEqual(w, {
            'warning_reason_code': 45330, 'type': 'InvalidOffsetTable',
            'message': 'The file was imported but contains an invalid offset table, may see '
                       'issues when retrieving certain frames.'})
        success = {x['inputFile']: x['importResponse'] for x in ok}
        for k in ('imageSetId', 'imageSetVersion', 'isPrimary'):
            self.assertEqual(resp[k], success['dicom_input/rgb_bad_offsets.dcm'][k])

    def test_job_end_to_end(self):
        job_id, folder, manifest, ok, bad, warn = self.run_job('token-one')
        self.check_outputs(job_id, folder, manifest, ok, bad)
        self.check_offset_table_warning(ok, warn)
        self.check_metadata(ok)
        jobs = self.client.list_dicom_import_jobs(datastoreId=self.ds)['jobSummaries']
        self.assertIn(job_id, [j['jobId'] for j in jobs if j['jobStatus'] == 'COMPLETED'])
        first = {x['inputFile']: x['importResponse'] for x in ok}

        # The same input again: the same image sets, no new versions.
        job2, folder2, manifest2, ok2, bad2, warn2 = self.run_job('token-two')
        self.assertNotEqual(job2, job_id)
        self.check_outputs(job2, folder2, manifest2, ok2, bad2)
        self.check_offset_table_warning(ok2, warn2)
        again = {x['inputFile']: x['importResponse'] for x in ok2}
        self.maxDiff = None
        self.assertEqual({k: v['imageSetId'] for k, v in again.items()},
                         {k: v['imageSetId'] for k, v in first.items()})
        # Frame ids are content addresses and HTJ2K encoding is deterministic, so every file,
        # colour frames included, is unchanged: same set, same version.
        self.assertEqual(again, first)


class LocalBuckets(ImportJobChecks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix='ahilite-s3root-')
        for key, data in input_objects().items():
            p = os.path.join(cls.root, 'in-bucket', key)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, 'wb') as f:
                f.write(data)
        os.makedirs(os.path.join(cls.root, 'out-bucket'))
        cls.server = ahltest.Server(extra_args=['--s3-root', cls.root])
        cls.client = ahltest.boto3_client(cls.server)
        cls.ds = ahltest.create_active_datastore(cls.client, 'imports')

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        cls.server.cleanup()
        shutil.rmtree(cls.root, ignore_errors=True)
        assert rc == 0, 'server exit status %r' % rc

    def read_output(self, key):
        with open(os.path.join(self.root, 'out-bucket', key), 'rb') as f:
            return f.read().decode()

    def test_missing_bucket_fails_job(self):
        r = self.client.start_dicom_import_job(
            datastoreId=self.ds, dataAccessRoleArn='arn:aws:iam::123456789012:role/R',
            clientToken='missing-bucket', inputS3Uri='s3://no-such-bucket/x/',
            outputS3Uri='s3://out-bucket/o/')
        props = ahltest.wait_import_job(self.client, self.ds, r['jobId'], 120)
        self.assertEqual(props['jobStatus'], 'FAILED')
        self.assertIn('no-such-bucket', props['message'])


class S3Endpoint(ahltest.S3JobServer, ImportJobChecks, unittest.TestCase):
    DATASTORE_NAME = 'imports'

    @classmethod
    def input_objects(cls):
        return input_objects()


if __name__ == '__main__':
    unittest.main(verbosity=2)
