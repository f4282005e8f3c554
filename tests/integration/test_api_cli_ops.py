"""Every operation the other AWS CLI suite does not reach, through `aws medical-imaging`, each
with a success whose JSON output is checked against the model's output shape and an error the CLI
prints with the AWS error type, followed by a check that the error changed nothing:
start-dicom-import-job from the server's default local buckets (DATA_DIR/buckets), get/list
import jobs, get-image-frame, copy-image-set (new and existing destination), delete-image-set,
and the error paths of create-datastore, list-datastores, tag/untag/list-tags, search-image-sets,
update-image-set-metadata and delete-datastore."""
# pg: no (the AWS CLI starting once per call is its cost, 230 s; every operation runs on PostgreSQL through boto3 in test_api_boto3_shapes.py and the JS SDK)
import json
import os
import shutil
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import jph  # noqa: E402
import shapecheck  # noqa: E402
import test_api_cli as cli  # noqa: E402  (its aws() helper, bound to cli.SRV)

SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files/'
ZERO_ID = '0' * 32
ROLE = 'arn:aws:iam::123456789012:role/ImportRole'
SRV = None
DS = None
JOB = None


def aws(*args, ok=True):
    return cli.aws(*args, ok=ok)


def setUpModule():
    """A server on its default local buckets, a data store, and one import job of two samples
    (CT and MR: two patients, two image sets) run through the CLI."""
    global SRV, DS, JOB
    ahltest._ensure_model()
    SRV = ahltest.Server()
    cli.SRV = SRV
    inp = os.path.join(SRV.data_dir, 'buckets', 'dicom-in', 'samples')
    os.makedirs(inp)
    os.makedirs(os.path.join(SRV.data_dir, 'buckets', 'dicom-out'))
    for name in ('CT_small.dcm', 'MR_small.dcm'):
        shutil.copy(SAMPLES + name, inp)
    DS = aws('create-datastore', '--datastore-name', 'cli-ops')['datastoreId']
    deadline = time.time() + 20
    while aws('get-datastore', '--datastore-id', DS)['datastoreProperties'][
            'datastoreStatus'] != 'ACTIVE':
        assert time.time() < deadline, 'data store never became ACTIVE'
        time.sleep(0.1)


def tearDownModule():
    SRV.finish()


def start_job(token, ok=True, **kw):
    args = {'--datastore-id': DS, '--job-name': 'cli-job', '--client-token': token,
            '--data-access-role-arn': ROLE, '--input-s3-uri': 's3://dicom-in/samples/',
            '--output-s3-uri': 's3://dicom-out/runs/'}
    args.update(kw)
    flat = [x for kv in args.items() for x in kv]
    return aws('start-dicom-import-job', *flat, ok=ok)


def find_set(patient_id):
    r = aws('search-image-sets', '--datastore-id', DS, '--search-criteria', json.dumps(
        {'filters': [{'values': [{'DICOMPatientId': patient_id}], 'operator': 'EQUAL'}]}))
    return r['imageSetsMetadataSummaries']


class CliOps(unittest.TestCase):
    def assertCliError(self, p, code):
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn('(%s)' % code, p.stderr)

    def assertShape(self, op, value):
        # The CLI's paginator prints a paginated command's non-aggregate keys (search's `sort`)
        # as null when the server left them out, as AWS does without a sort: not in the model.
        shapecheck.assert_output(self, op, {k: v for k, v in value.items() if v is not None})

    def test_1_import_job(self):
        global JOB
        token = str(uuid.uuid4())
        r = start_job(token)
        self.assertShape('StartDICOMImportJob', r)
        self.assertEqual((r['datastoreId'], r['jobStatus']), (DS, 'SUBMITTED'))
        JOB = r['jobId']
        self.assertEqual(start_job(token)['jobId'], JOB, 'clientToken is idempotent')

        deadline = time.time() + 60
        while True:
            g = aws('get-dicom-import-job', '--datastore-id', DS, '--job-id', JOB)
            if g['jobProperties']['jobStatus'] in ('COMPLETED', 'FAILED'):
                break
            self.assertLess(time.time(), deadline, 'import job did not finish')
            time.sleep(0.2)
        self.assertShape('GetDICOMImportJob', g)
        p = g['jobProperties']
        self.assertEqual(p['jobStatus'], 'COMPLETED', p.get('message'))
        self.assertEqual((p['jobId'], p['jobName'], p['datastoreId'], p['dataAccessRoleArn']),
                         (JOB, 'cli-job', DS, ROLE))
        self.assertEqual(p['inputS3Uri'], 's3://dicom-in/samples/')
        self.assertEqual(p['outputS3Uri'], 's3://dicom-out/runs/%s-DicomImport-%s/' % (DS, JOB))
        self.assertIn('endedAt', p)
        out = os.path.join(SRV.data_dir, 'buckets', 'dicom-out', 'runs',
                           '%s-DicomImport-%s' % (DS, JOB))
        with open(os.path.join(out, 'SUCCESS', 'success.ndjson')) as f:
            ok = [json.loads(line) for line in f if line.strip()]
        self.assertEqual(sorted(x['inputFile'] for x in ok),
                         ['samples/CT_small.dcm', 'samples/MR_small.dcm'])

        listed = aws('list-dicom-import-jobs', '--datastore-id', DS)
        self.assertShape('ListDICOMImportJobs', listed)
        self.assertEqual([(j['jobId'], j['jobStatus']) for j in listed['jobSummaries']],
                         [(JOB, 'COMPLETED')])
        self.assertEqual(len(find_set('1CT1')), 1)
        self.assertEqual(len(find_set('4MR1')), 1)

        # Errors: none may record a job or touch the image sets.
        self.assertCliError(start_job(token, ok=False, **{'--job-name': 'other-name'}),
                            'ConflictException')
        self.assertCliError(start_job(str(uuid.uuid4()), ok=False,
                                      **{'--datastore-id': ZERO_ID}),
                            'ResourceNotFoundException')
        self.assertCliError(start_job(str(uuid.uuid4()), ok=False,
                                      **{'--input-s3-uri': 's3://Bad_Bucket/in/'}),
                            'ValidationException')
        self.assertCliError(start_job(str(uuid.uuid4()), ok=False,
                                      **{'--job-name': 'no spaces allowed'}),
                            'ValidationException')
        self.assertCliError(aws('get-dicom-import-job', '--datastore-id', DS, '--job-id',
                                ZERO_ID, ok=False), 'ResourceNotFoundException')
        self.assertCliError(aws('get-dicom-import-job', '--datastore-id', DS, '--job-id',
                                'Not_A_Job', ok=False), 'ValidationException')
        self.assertCliError(aws('list-dicom-import-jobs', '--datastore-id', ZERO_ID, ok=False),
                            'ResourceNotFoundException')
        self.assertCliError(aws('list-dicom-import-jobs', '--datastore-id', DS,
                                '--job-status', 'DONE', ok=False), 'ValidationException')
        self.assertEqual(aws('list-dicom-import-jobs', '--datastore-id', DS)['jobSummaries'],
                         listed['jobSummaries'])
        self.assertEqual(len(aws('search-image-sets', '--datastore-id', DS)[
            'imageSetsMetadataSummaries']), 2)

    def test_2_get_image_set_and_frame(self):
        import gzip
        sid = find_set('1CT1')[0]['imageSetId']
        g = aws('get-image-set', '--datastore-id', DS, '--image-set-id', sid)
        self.assertShape('GetImageSet', g)
        self.assertEqual((g['imageSetId'], g['versionId'], g['imageSetState']),
                         (sid, '1', 'ACTIVE'))
        meta = os.path.join(SRV.tmp, 'ct-meta.json.gz')
        m = aws('get-image-set-metadata', '--datastore-id', DS, '--image-set-id', sid, meta)
        self.assertShape('GetImageSetMetadata', m)
        with gzip.open(meta) as f:
            doc = json.load(f)
        inst = [i for s in doc['Study']['Series'].values() for i in s['Instances'].values()][0]
        fr = inst['ImageFrames'][0]
        out = os.path.join(SRV.tmp, 'frame.jph')
        r = aws('get-image-frame', '--datastore-id', DS, '--image-set-id', sid,
                '--image-frame-information', 'imageFrameId=' + fr['ID'], out)
        self.assertShape('GetImageFrame', r)
        self.assertEqual(r['contentType'], 'image/jph')
        with open(out, 'rb') as f:
            data = jph.parse(f.read())[2]  # the JPH file's codestream
        self.assertEqual(len(data), fr['FrameSizeInBytes'])
        self.assertEqual(data[:4], b'\xff\x4f\xff\x51', 'a JPEG 2000 codestream (SOC, SIZ)')

        os.unlink(out)
        for bad_id, code in ((ZERO_ID, 'ResourceNotFoundException'),
                             ('NOT-A-FRAME', 'ValidationException')):
            p = aws('get-image-frame', '--datastore-id', DS, '--image-set-id', sid,
                    '--image-frame-information', 'imageFrameId=' + bad_id, out, ok=False)
            self.assertCliError(p, code)
        self.assertCliError(aws('get-image-frame', '--datastore-id', DS, '--image-set-id',
                                ZERO_ID, '--image-frame-information', 'imageFrameId=' + fr['ID'],
                                out, ok=False), 'ResourceNotFoundException')
        # The frame is still served after the errors.
        aws('get-image-frame', '--datastore-id', DS, '--image-set-id', sid,
            '--image-frame-information', 'imageFrameId=' + fr['ID'], out)
        with open(out, 'rb') as f:
            self.assertEqual(jph.parse(f.read())[2], data)

    def test_3_copy_and_delete(self):
        src = find_set('4MR1')[0]['imageSetId']
        c = aws('copy-image-set', '--datastore-id', DS, '--source-image-set-id', src,
                '--copy-image-set-information',
                json.dumps({'sourceImageSet': {'latestVersionId': '1'}}))
        self.assertShape('CopyImageSet', c)
        dest = c['destinationImageSetProperties']['imageSetId']
        self.assertNotEqual(dest, src)
        self.assertEqual((c['datastoreId'], c['sourceImageSetProperties']['imageSetId']),
                         (DS, src))
        self.assertEqual(c['destinationImageSetProperties']['latestVersionId'], '1')
        self.assertEqual(aws('get-image-set', '--datastore-id', DS, '--image-set-id', dest)[
            'versionId'], '1')

        # Into the existing destination: with its latestVersionId it makes version 2.
        c2 = aws('copy-image-set', '--datastore-id', DS, '--source-image-set-id', src,
                 '--copy-image-set-information', json.dumps({
                     'sourceImageSet': {'latestVersionId': '1'},
                     'destinationImageSet': {'imageSetId': dest, 'latestVersionId': '1'}}),
                 '--force')
        self.assertShape('CopyImageSet', c2)
        self.assertEqual(c2['destinationImageSetProperties']['imageSetId'], dest)
        self.assertEqual(c2['destinationImageSetProperties']['latestVersionId'], '2')

        def state():
            sets = aws('search-image-sets', '--datastore-id', DS)['imageSetsMetadataSummaries']
            return sorted((s['imageSetId'], s['version']) for s in sets)
        before = state()
        self.assertEqual(len(before), 3)
        for info, code in (
                ({'sourceImageSet': {'latestVersionId': '7'}}, 'ConflictException'),
                ({'sourceImageSet': {'latestVersionId': '1'},
                  'destinationImageSet': {'imageSetId': dest, 'latestVersionId': '1'}},
                 'ConflictException'),
                ({'sourceImageSet': {'latestVersionId': '1'},
                  'destinationImageSet': {'imageSetId': ZERO_ID, 'latestVersionId': '1'}},
                 'ResourceNotFoundException'),
                ({'sourceImageSet': {'latestVersionId': 'one'}}, 'ValidationException')):
            p = aws('copy-image-set', '--datastore-id', DS, '--source-image-set-id', src,
                    '--copy-image-set-information', json.dumps(info), ok=False)
            self.assertCliError(p, code)
        self.assertCliError(aws('copy-image-set', '--datastore-id', DS, '--source-image-set-id',
                                ZERO_ID, '--copy-image-set-information',
                                json.dumps({'sourceImageSet': {'latestVersionId': '1'}}),
                                ok=False), 'ResourceNotFoundException')
        self.assertEqual(state(), before)

        # A data store holding image sets cannot be deleted.
        self.assertCliError(aws('delete-datastore', '--datastore-id', DS, ok=False),
                            'ConflictException')
        self.assertEqual(aws('get-datastore', '--datastore-id', DS)['datastoreProperties'][
            'datastoreStatus'], 'ACTIVE')

        d = aws('delete-image-set', '--datastore-id', DS, '--image-set-id', dest)
        self.assertShape('DeleteImageSet', d)
        self.assertEqual((d['datastoreId'], d['imageSetId'], d['imageSetState'],
                          d['imageSetWorkflowStatus']), (DS, dest, 'LOCKED', 'DELETING'))
        g = aws('get-image-set', '--datastore-id', DS, '--image-set-id', dest)
        self.assertShape('GetImageSet', g)
        self.assertEqual((g['imageSetState'], g['imageSetWorkflowStatus']), ('DELETED', 'DELETED'))
        self.assertIn('deletedAt', g)
        d = aws('delete-image-set', '--datastore-id', DS, '--image-set-id', dest)
        self.assertEqual((d['imageSetState'], d['imageSetWorkflowStatus']), ('DELETED', 'DELETED'))
        self.assertCliError(aws('get-image-set-metadata', '--datastore-id', DS, '--image-set-id',
                                dest, os.devnull, ok=False), 'ResourceNotFoundException')
        self.assertCliError(aws('delete-image-set', '--datastore-id', DS, '--image-set-id',
                                'not-an-id', ok=False), 'ValidationException')
        self.assertEqual(state(), [x for x in before if x[0] != dest])
        self.assertEqual(aws('get-image-set', '--datastore-id', DS, '--image-set-id', src)[
            'versionId'], '1', 'the source is untouched')

    def test_4_update_and_search_errors(self):
        sid = find_set('1CT1')[0]['imageSetId']
        before = aws('get-image-set', '--datastore-id', DS, '--image-set-id', sid)
        updates = json.dumps({'DICOMUpdates': {'updatableAttributes': '{"SchemaVersion": 1.1, '
                                               '"Patient": {"DICOM": {"PatientName": "A^B"}}}'}})
        for args, code in (
                (['--latest-version-id', '9', '--update-image-set-metadata-updates', updates],
                 'ConflictException'),
                (['--latest-version-id', '1', '--update-image-set-metadata-updates',
                  json.dumps({'DICOMUpdates': {'updatableAttributes': 'not json'}})],
                 'ValidationException'),
                (['--latest-version-id', '1', '--update-image-set-metadata-updates',
                  json.dumps({'revertToVersionId': '5'})], 'ValidationException')):
            p = aws('update-image-set-metadata', '--datastore-id', DS, '--image-set-id', sid,
                    *args, ok=False)
            self.assertCliError(p, code)
        after = aws('get-image-set', '--datastore-id', DS, '--image-set-id', sid)
        self.assertEqual((after['versionId'], after['imageSetState'], after['updatedAt']),
                         (before['versionId'], before['imageSetState'], before['updatedAt']))
        u = aws('update-image-set-metadata', '--datastore-id', DS, '--image-set-id', sid,
                '--latest-version-id', before['versionId'],
                '--update-image-set-metadata-updates', updates)
        self.assertShape('UpdateImageSetMetadata', u)

        s = aws('search-image-sets', '--datastore-id', DS, '--search-criteria', json.dumps(
            {'filters': [{'values': [{'DICOMPatientId': '1CT1'}], 'operator': 'EQUAL'}]}))
        self.assertShape('SearchImageSets', s)
        v = aws('list-image-set-versions', '--datastore-id', DS, '--image-set-id', sid)
        self.assertShape('ListImageSetVersions', v)
        for crit in (
                {'filters': [{'values': [{'DICOMPatientId': 'a'}, {'DICOMPatientId': 'b'}],
                              'operator': 'EQUAL'}]},
                {'filters': [{'values': [{'DICOMStudyDateAndTime': {'DICOMStudyDate': '2004'}},
                                         {'DICOMStudyDateAndTime': {'DICOMStudyDate': '2005'}}],
                              'operator': 'BETWEEN'}]},
                {'sort': {'sortField': 'nothing', 'sortOrder': 'ASC'}}):
            p = aws('search-image-sets', '--datastore-id', DS, '--search-criteria',
                    json.dumps(crit), ok=False)
            self.assertCliError(p, 'ValidationException')
        self.assertCliError(aws('search-image-sets', '--datastore-id', ZERO_ID, ok=False),
                            'ResourceNotFoundException')

    def test_5_datastore_and_tag_errors(self):
        r = aws('create-datastore', '--datastore-name', 'cli-ops-tags', '--tags', 'k=v')
        self.assertShape('CreateDatastore', r)
        ds = r['datastoreId']
        g = aws('get-datastore', '--datastore-id', ds)
        self.assertShape('GetDatastore', g)
        arn = g['datastoreProperties']['datastoreArn']
        lst = aws('list-datastores')
        self.assertShape('ListDatastores', lst)

        names = sorted(s['datastoreName'] for s in lst['datastoreSummaries'])
        self.assertCliError(aws('create-datastore', '--datastore-name', 'no spaces', ok=False),
                            'ValidationException')
        self.assertCliError(aws('create-datastore', '--datastore-name', 'x' * 257, ok=False),
                            'ValidationException')
        self.assertCliError(aws('list-datastores', '--datastore-status', 'SLEEPING', ok=False),
                            'ValidationException')
        self.assertCliError(aws('list-datastores', '--page-size', '51', ok=False),
                            'ValidationException')
        self.assertEqual(sorted(s['datastoreName'] for s in aws('list-datastores')[
            'datastoreSummaries']), names)

        t = aws('list-tags-for-resource', '--resource-arn', arn)
        self.assertShape('ListTagsForResource', t)
        self.assertEqual(t['tags'], {'k': 'v'})
        missing = arn[:-32] + ZERO_ID
        for args, code in (
                (['untag-resource', '--resource-arn', missing, '--tag-keys', 'k'],
                 'ResourceNotFoundException'),
                (['untag-resource', '--resource-arn', 'arn:aws:s3:::bucket', '--tag-keys', 'k'],
                 'ValidationException'),
                (['untag-resource', '--resource-arn', arn, '--tag-keys', 'aws:k'],
                 'ValidationException'),
                (['tag-resource', '--resource-arn', missing, '--tags', 'a=b'],
                 'ResourceNotFoundException'),
                (['tag-resource', '--resource-arn', arn, '--tags', 'a=' + 'v' * 257],
                 'ValidationException'),
                (['list-tags-for-resource', '--resource-arn', missing],
                 'ResourceNotFoundException'),
                (['list-tags-for-resource', '--resource-arn', 'not-an-arn'],
                 'ValidationException')):
            self.assertCliError(aws(*args, ok=False), code)
        self.assertEqual(aws('list-tags-for-resource', '--resource-arn', arn)['tags'],
                         {'k': 'v'})
        self.assertEqual(aws('untag-resource', '--resource-arn', arn, '--tag-keys', 'k'), {})
        self.assertEqual(aws('tag-resource', '--resource-arn', arn, '--tags', 'n=1'), {})
        self.assertEqual(aws('list-tags-for-resource', '--resource-arn', arn)['tags'],
                         {'n': '1'})

        self.assertCliError(aws('delete-datastore', '--datastore-id', 'BAD', ok=False),
                            'ValidationException')
        d = aws('delete-datastore', '--datastore-id', ds)
        self.assertShape('DeleteDatastore', d)
        self.assertEqual((d['datastoreId'], d['datastoreStatus']), (ds, 'DELETING'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
