"""Every member and enum value of the service model's output shapes, produced.

One scenario through boto3 touches all 18 operations and their variants (data stores with every
option, an import job with success, warning and failure lines and one that fails, searches with
every sort and paging, updates with DICOMUpdates, removals, force, revert and
includeStudyImageSets, copies into new and existing sets, of a subset, promoted to primary,
deletes, tags, frames, metadata of an older version). Each response is walked against the
installed botocore model's output shape, through structures, lists and maps, collecting every
member path (Shape.member) and every enum value (Enum=VALUE) it holds. The test fails on any
member or enum value of an output shape that was never produced and is not in
model_coverage_allow.txt (one line each: the entry, then why ahilite does not produce it), and on
an allow-list entry that was produced after all, or that the model does not have.
"""
# pg: full (its storage calls are those test_api_boto3_shapes.py and test_api_imagesets.py make on PostgreSQL; its weight is the model walk)
import gzip
import json
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import test_import_jobs  # noqa: E402  (the file with a bad Basic Offset Table)

SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files/'
ALLOW = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'model_coverage_allow.txt')
ROLE = 'arn:aws:iam::123456789012:role/ImportRole'
KMS = 'arn:aws:kms:us-east-1:123456789012:key/0b2c7e4f-1111-2222-3333-444455556666'
LAMBDA = 'arn:aws:lambda:us-east-1:123456789012:function:authorizer'
JOB_INSTANCES = 60  # enough for the job to be seen IN_PROGRESS


def model():
    ahltest._ensure_model()
    import botocore.session
    return botocore.session.get_session().get_service_model('medical-imaging')


def possible(m):
    """Every Shape.member and Enum=VALUE reachable from an operation's output shape."""
    out, seen = set(), set()

    def walk(s):
        if s.name in seen:
            return
        seen.add(s.name)
        if s.type_name == 'structure':
            for k, v in s.members.items():
                out.add('%s.%s' % (s.name, k))
                walk(v)
        elif s.type_name == 'list':
            walk(s.member)
        elif s.type_name == 'map':
            walk(s.key)
            walk(s.value)
        elif s.type_name == 'string' and s.enum:
            out.update('%s=%s' % (s.name, v) for v in s.enum)
    for op in m.operation_names:
        shape = m.operation_model(op).output_shape
        if shape is not None:
            walk(shape)
    return out


def produced(value, shape, into):
    """Adds what a parsed response holds, walked against its shape, to into."""
    t = shape.type_name
    if t == 'structure':
        for k, v in value.items():
            if k == 'ResponseMetadata':
                continue
            assert k in shape.members, '%s has no member %s' % (shape.name, k)
            into.add('%s.%s' % (shape.name, k))
            produced(v, shape.members[k], into)
    elif t == 'list':
        for v in value:
            produced(v, shape.member, into)
    elif t == 'map':
        for k, v in value.items():
            produced(k, shape.key, into)
            produced(v, shape.value, into)
    elif t == 'string' and shape.enum:
        assert value in shape.enum, '%r is not a %s' % (value, shape.name)
        into.add('%s=%s' % (shape.name, value))


def read_allow_list():
    """{entry: reason} from model_coverage_allow.txt ('#' comments and blank lines skipped)."""
    allow = {}
    with open(ALLOW) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            entry, _, reason = line.partition(' ')
            assert reason.strip(), 'line %d: %s has no reason' % (n, entry)
            assert entry not in allow, 'line %d: %s is listed twice' % (n, entry)
            allow[entry] = reason.strip()
    return allow


class ModelCoverage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The data directory exists before the start, so that on PostgreSQL it records its schema
        # and the copy the restart below runs on names the same one.
        cls.srv = ahltest.Server(before_start=lambda s: os.makedirs(s.data_dir))
        cls.mi = ahltest.boto3_client(cls.srv)
        cls.model = model()
        cls.seen = set()
        cls.calls = set()
        cls.later = None

    @classmethod
    def tearDownClass(cls):
        if cls.later:  # the first server was stopped and checked already
            cls.srv.cleanup()
            cls.later.finish()
        else:
            cls.srv.finish()

    def call(self, op, **kw):
        """Calls the operation named as the model names it and records what it produced."""
        name = self.mi.meta.method_to_api_mapping
        method = {v: k for k, v in name.items()}[op]
        r = getattr(self.mi, method)(**kw)
        for blob in ('imageFrameBlob', 'imageSetMetadataBlob'):
            if blob in r:
                r[blob] = r[blob].read()
        produced(r, self.model.operation_model(op).output_shape, self.seen)
        self.calls.add(op)
        return r

    def bucket(self, *parts):
        path = os.path.join(self.srv.data_dir, 'buckets', *parts)
        os.makedirs(path, exist_ok=True)
        return path

    def wait_job(self, ds, job):
        statuses = []
        deadline = time.time() + 50
        while True:
            p = self.call('GetDICOMImportJob', datastoreId=ds, jobId=job)['jobProperties']
            statuses.append(p['jobStatus'])
            if p['jobStatus'] in ('COMPLETED', 'FAILED'):
                return p, statuses
            self.assertLess(time.time(), deadline, 'import job did not end')
            time.sleep(0.002)

    def test_every_member_and_state(self):
        t0 = time.time()
        self.scenario()
        self.assertEqual(len(self.calls), len(self.model.operation_names),
                         set(self.model.operation_names) - self.calls)
        want = possible(self.model)
        allow = read_allow_list()
        problems = {
            'never produced (produce them, or list them in model_coverage_allow.txt with the '
            'reason)': sorted(want - self.seen - set(allow)),
            'produced after all (remove them from model_coverage_allow.txt)':
                sorted(set(allow) & self.seen),
            'listed in model_coverage_allow.txt but not in the model': sorted(set(allow) - want),
        }
        self.assertEqual({k: v for k, v in problems.items() if v}, {})
        self.assertLess(time.time() - t0, 60)

    def scenario(self):
        c = self.call
        # Data stores: every option, both lossless formats, paging, tags.
        a = c('CreateDatastore', datastoreName='coverage', tags={'team': 'imaging'},
              kmsKeyArn=KMS, lambdaAuthorizerArn=LAMBDA, losslessStorageFormat='HTJ2K')
        ds = a['datastoreId']
        b = c('CreateDatastore', datastoreName='coverage-j2k',
              losslessStorageFormat='JPEG_2000_LOSSLESS')['datastoreId']
        arn = c('GetDatastore', datastoreId=ds)['datastoreProperties']['datastoreArn']
        c('GetDatastore', datastoreId=b)
        page = c('ListDatastores', maxResults=1)
        c('ListDatastores', nextToken=page['nextToken'])
        c('TagResource', resourceArn=arn, tags={'stage': 'test'})
        c('UntagResource', resourceArn=arn, tagKeys=['stage'])
        self.assertEqual(c('ListTagsForResource', resourceArn=arn)['tags'], {'team': 'imaging'})

        # An import job with success, warning and failure lines, seen in progress; one failing.
        job_in = self.bucket('cov-in', 'job')
        self.bucket('cov-out')
        shutil.copy(SAMPLES + 'CT_small.dcm', job_in)
        shutil.copy(SAMPLES + 'MR_small.dcm', job_in)
        with open(os.path.join(job_in, 'rgb_bad_offsets.dcm'), 'wb') as f:
            f.write(test_import_jobs.bad_offset_table_file())
        with open(os.path.join(job_in, 'notes.txt'), 'w') as f:
            f.write('not a DICOM file\n')
        with open(os.path.join(self.bucket('cov-in', 'job', 'meta'), 'series.json'), 'w') as f:
            json.dump({'00081030': {'vr': 'LO', 'Value': ['CT, mapped']}}, f)
        ahltest.write_series(JOB_INSTANCES, self.bucket('cov-in', 'job', 'series'),
                             '1.2.826.0.1.3680043.8.498.77.')
        job = c('StartDICOMImportJob', datastoreId=ds, jobName='coverage',
                dataAccessRoleArn=ROLE, inputS3Uri='s3://cov-in/job/',
                outputS3Uri='s3://cov-out/o/', importConfiguration={
                    'dicomJsonMetadataImportConfiguration': {'dicomMetadataMappings': [{
                        'studyInstanceUID': '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322',
                        'seriesInstanceUID': '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322',
                        'metadataFilePath': 'meta/series.json'}]}})['jobId']
        props, statuses = self.wait_job(ds, job)
        self.assertEqual(props['jobStatus'], 'COMPLETED', props.get('message'))
        self.assertIn('IN_PROGRESS', statuses)
        out = os.path.join(self.srv.data_dir, 'buckets', 'cov-out', 'o',
                           '%s-DicomImport-%s' % (ds, job))
        for kind in ('SUCCESS/success.ndjson', 'WARNING/warning.ndjson',
                     'FAILURE/failure.ndjson'):
            with open(os.path.join(out, kind)) as f:
                self.assertTrue(f.read().strip(), kind)
        failed = c('StartDICOMImportJob', datastoreId=ds, dataAccessRoleArn=ROLE,
                   inputS3Uri='s3://no-such-bucket/x/', outputS3Uri='s3://cov-out/o/')['jobId']
        self.assertEqual(self.wait_job(ds, failed)[0]['jobStatus'], 'FAILED')
        page = c('ListDICOMImportJobs', datastoreId=ds, maxResults=1)
        c('ListDICOMImportJobs', datastoreId=ds, nextToken=page['nextToken'])
        c('ListDICOMImportJobs', datastoreId=ds, jobStatus='FAILED')

        # Search: every sort, both orders, paging.
        for field, order in (('updatedAt', 'DESC'), ('createdAt', 'ASC'),
                             ('DICOMStudyDateAndTime', 'DESC')):
            page = c('SearchImageSets', datastoreId=ds, maxResults=1, searchCriteria={
                'sort': {'sortField': field, 'sortOrder': order}})
        c('SearchImageSets', datastoreId=ds, nextToken=page['nextToken'], searchCriteria={
            'sort': {'sortField': 'DICOMStudyDateAndTime', 'sortOrder': 'DESC'}})
        found = c('SearchImageSets', datastoreId=ds, searchCriteria={'filters': [
            {'values': [{'DICOMPatientId': '1CT1'}], 'operator': 'EQUAL'}]})
        ct = [s['imageSetId'] for s in found['imageSetsMetadataSummaries']
              if s['DICOMTags']['DICOMSeriesInstanceUID'] ==
              '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322'][0]
        mr = c('SearchImageSets', datastoreId=ds, searchCriteria={'filters': [
            {'values': [{'DICOMPatientId': '4MR1'}], 'operator': 'EQUAL'}]})[
            'imageSetsMetadataSummaries'][0]['imageSetId']

        # Reads of the CT set: properties, metadata, a frame.
        g = c('GetImageSet', datastoreId=ds, imageSetId=ct)
        self.assertEqual((g['imageSetState'], g['imageSetWorkflowStatus']), ('ACTIVE', 'IMPORTED'))
        doc = json.loads(gzip.decompress(c('GetImageSetMetadata', datastoreId=ds,
                                           imageSetId=ct)['imageSetMetadataBlob']))
        series_uid, series = next(iter(doc['Study']['Series'].items()))
        sop_uid, inst = next(iter(series['Instances'].items()))
        c('GetImageFrame', datastoreId=ds, imageSetId=ct,
          imageFrameInformation={'imageFrameId': inst['ImageFrames'][0]['ID']})

        # Copies: a second primary set of the study (promoted), a subset into a new set, the MR
        # set into an existing one with force.
        p = c('CopyImageSet', datastoreId=ds, sourceImageSetId=ct, promoteToPrimary=True,
              copyImageSetInformation={'sourceImageSet': {'latestVersionId': '1'}})
        twin = p['destinationImageSetProperties']['imageSetId']
        sub = c('CopyImageSet', datastoreId=ds, sourceImageSetId=ct, copyImageSetInformation={
            'sourceImageSet': {'latestVersionId': '1', 'DICOMCopies': {
                'copiableAttributes': json.dumps({'SchemaVersion': '1.1', 'Study': {'Series': {
                    series_uid: {'Instances': {sop_uid: {}}}}}})}}}
        )['destinationImageSetProperties']['imageSetId']
        c('CopyImageSet', datastoreId=ds, sourceImageSetId=mr, force=True,
          copyImageSetInformation={'sourceImageSet': {'latestVersionId': '1'},
                                   'destinationImageSet': {'imageSetId': sub,
                                                           'latestVersionId': '1'}})

        # Updates of the CT set: attributes every search tag shows, forced, the whole study;
        # a removal; a revert.
        upd = {'SchemaVersion': 1.1,
               'Patient': {'DICOM': {'PatientBirthDate': '19700101', 'PatientSex': 'O'}},
               'Study': {'DICOM': {'StudyDescription': 'COVERAGE', 'StudyID': 'S1',
                                   'AccessionNumber': 'ACC-1'},
                         'Series': {series_uid: {'DICOM': {'BodyPartExamined': 'CHEST'}}}}}
        c('UpdateImageSetMetadata', datastoreId=ds, imageSetId=ct, latestVersionId='1',
          force=True, includeStudyImageSets=True, updateImageSetMetadataUpdates={
              'DICOMUpdates': {'updatableAttributes': json.dumps(upd)}})
        c('UpdateImageSetMetadata', datastoreId=ds, imageSetId=ct, latestVersionId='2',
          updateImageSetMetadataUpdates={'DICOMUpdates': {'removableAttributes': json.dumps(
              {'SchemaVersion': 1.1, 'Study': {'DICOM': {'StudyDescription': ''}}})}})
        c('UpdateImageSetMetadata', datastoreId=ds, imageSetId=ct, latestVersionId='3',
          updateImageSetMetadataUpdates={'revertToVersionId': '2'})
        c('SearchImageSets', datastoreId=ds, searchCriteria={'filters': [
            {'values': [{'DICOMAccessionNumber': 'ACC-1'}], 'operator': 'EQUAL'}]})
        states = [c('GetImageSet', datastoreId=ds, imageSetId=sid)['imageSetWorkflowStatus']
                  for sid in (ct, twin, sub)]
        self.assertEqual(states, ['UPDATED', 'UPDATING_FOR_STUDY_CONSISTENCY', 'COPIED'])
        c('GetImageSet', datastoreId=ds, imageSetId=ct, versionId='2')
        page = c('ListImageSetVersions', datastoreId=ds, imageSetId=ct, maxResults=1)
        c('ListImageSetVersions', datastoreId=ds, imageSetId=ct, nextToken=page['nextToken'])
        c('ListImageSetVersions', datastoreId=ds, imageSetId=sub)
        c('GetImageSetMetadata', datastoreId=ds, imageSetId=ct, versionId='1')

        # Deletion: an image set and a data store, and their tombstones.
        c('DeleteImageSet', datastoreId=ds, imageSetId=sub)
        c('DeleteImageSet', datastoreId=ds, imageSetId=sub)
        c('GetImageSet', datastoreId=ds, imageSetId=sub)
        c('ListImageSetVersions', datastoreId=ds, imageSetId=sub)
        c('DeleteDatastore', datastoreId=b)
        c('GetDatastore', datastoreId=b)
        c('ListDatastores', datastoreStatus='DELETED')

        # A month later (the server restarted with its clock moved): sets not accessed since are
        # in the archive tier.
        self.assertEqual(self.srv.stop(), 0)
        data = self.srv.data_dir
        type(self).later = ahltest.Server(
            env=dict(os.environ, AHILITE_CLOCK_OFFSET=str(31 * 86400)),
            before_start=lambda s: shutil.copytree(data, s.data_dir))
        self.mi = ahltest.boto3_client(self.later)
        self.assertEqual(c('GetImageSet', datastoreId=ds, imageSetId=mr)['storageTier'],
                         'ARCHIVE_INSTANT_ACCESS')
        c('SearchImageSets', datastoreId=ds)


if __name__ == '__main__':
    unittest.main(verbosity=2)
