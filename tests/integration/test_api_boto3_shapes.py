"""All 18 operations through boto3 on one server: each success's parsed result checked against
the model's output shape (shapecheck.py), then one error per operation with the AWS error type
boto3 raises, all against a snapshot of everything the API shows (data stores, tags, import jobs,
image sets and their versions) that must be identical afterwards. Import from the server's
default local buckets (DATA_DIR/buckets)."""
import gzip
import json
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import jph  # noqa: E402
import shapecheck  # noqa: E402

SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files/'
ZERO_ID = '0' * 32
ROLE = 'arn:aws:iam::123456789012:role/ImportRole'
SRV = None
MI = None


def setUpModule():
    global SRV, MI
    SRV = ahltest.Server()
    MI = ahltest.boto3_client(SRV)
    inp = os.path.join(SRV.data_dir, 'buckets', 'b3-in', 'samples')
    os.makedirs(inp)
    os.makedirs(os.path.join(SRV.data_dir, 'buckets', 'b3-out'))
    for name in ('CT_small.dcm', 'MR_small.dcm'):
        shutil.copy(SAMPLES + name, inp)


def tearDownModule():
    SRV.finish()


def snapshot():
    """Everything the API shows, to prove an error changed nothing."""
    out = []
    for s in MI.list_datastores()['datastoreSummaries']:
        ds = s['datastoreId']
        tags = MI.list_tags_for_resource(resourceArn=s['datastoreArn'])['tags']
        jobs = MI.list_dicom_import_jobs(datastoreId=ds)['jobSummaries']
        sets = []
        for x in MI.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']:
            vers = MI.list_image_set_versions(datastoreId=ds, imageSetId=x['imageSetId'])
            arn = MI.get_image_set(datastoreId=ds, imageSetId=x['imageSetId'])['imageSetArn']
            sets.append([x, vers['imageSetPropertiesList'],
                         MI.list_tags_for_resource(resourceArn=arn)['tags']])
        out.append([s, tags, jobs, sets])
    return json.dumps(out, sort_keys=True, default=str)


class Boto3Shapes(unittest.TestCase):
    def ok(self, op, call, **kw):
        r = call(**kw)
        shapecheck.assert_output(self, op, r)
        return r

    def test_every_operation(self):
        mi = MI
        r = self.ok('CreateDatastore', mi.create_datastore, datastoreName='b3-shapes',
                    tags={'k': 'v'})
        ds = r['datastoreId']
        deadline = time.time() + 20
        while self.ok('GetDatastore', mi.get_datastore, datastoreId=ds)[
                'datastoreProperties']['datastoreStatus'] != 'ACTIVE':
            self.assertLess(time.time(), deadline)
            time.sleep(0.1)
        arn = mi.get_datastore(datastoreId=ds)['datastoreProperties']['datastoreArn']
        self.ok('ListDatastores', mi.list_datastores)
        self.ok('TagResource', mi.tag_resource, resourceArn=arn, tags={'n': '1'})
        self.ok('UntagResource', mi.untag_resource, resourceArn=arn, tagKeys=['n'])
        self.assertEqual(self.ok('ListTagsForResource', mi.list_tags_for_resource,
                                 resourceArn=arn)['tags'], {'k': 'v'})

        job = self.ok('StartDICOMImportJob', mi.start_dicom_import_job, datastoreId=ds,
                      jobName='b3', clientToken='b3-token', dataAccessRoleArn=ROLE,
                      inputS3Uri='s3://b3-in/samples/', outputS3Uri='s3://b3-out/o/')['jobId']
        deadline = time.time() + 60
        while True:
            p = self.ok('GetDICOMImportJob', mi.get_dicom_import_job, datastoreId=ds,
                        jobId=job)['jobProperties']
            if p['jobStatus'] in ('COMPLETED', 'FAILED'):
                break
            self.assertLess(time.time(), deadline, 'import job did not finish')
            time.sleep(0.2)
        self.assertEqual(p['jobStatus'], 'COMPLETED', p.get('message'))
        self.ok('ListDICOMImportJobs', mi.list_dicom_import_jobs, datastoreId=ds)

        found = self.ok('SearchImageSets', mi.search_image_sets, datastoreId=ds, searchCriteria={
            'filters': [{'values': [{'DICOMPatientId': '1CT1'}], 'operator': 'EQUAL'}],
            'sort': {'sortField': 'updatedAt', 'sortOrder': 'DESC'}})
        sid = found['imageSetsMetadataSummaries'][0]['imageSetId']
        self.ok('GetImageSet', mi.get_image_set, datastoreId=ds, imageSetId=sid)
        m = self.ok('GetImageSetMetadata', mi.get_image_set_metadata, datastoreId=ds,
                    imageSetId=sid)
        doc = json.loads(gzip.decompress(m['imageSetMetadataBlob'].read()))
        fr = [i for s in doc['Study']['Series'].values()
              for i in s['Instances'].values()][0]['ImageFrames'][0]
        f = self.ok('GetImageFrame', mi.get_image_frame, datastoreId=ds, imageSetId=sid,
                    imageFrameInformation={'imageFrameId': fr['ID']})
        self.assertEqual(f['contentType'], 'image/jph')
        codestream = jph.parse(f['imageFrameBlob'].read())[2]  # a JPH file around it
        self.assertEqual(len(codestream), fr['FrameSizeInBytes'])
        u = self.ok('UpdateImageSetMetadata', mi.update_image_set_metadata, datastoreId=ds,
                    imageSetId=sid, latestVersionId='1', updateImageSetMetadataUpdates={
                        'DICOMUpdates': {'updatableAttributes': json.dumps(
                            {'SchemaVersion': 1.1,
                             'Patient': {'DICOM': {'PatientName': 'B3^SHAPES'}}}).encode()}})
        self.assertEqual(u['latestVersionId'], '2')
        self.ok('ListImageSetVersions', mi.list_image_set_versions, datastoreId=ds,
                imageSetId=sid)
        c = self.ok('CopyImageSet', mi.copy_image_set, datastoreId=ds, sourceImageSetId=sid,
                    copyImageSetInformation={'sourceImageSet': {'latestVersionId': '2'}})
        copy = c['destinationImageSetProperties']['imageSetId']
        self.ok('DeleteImageSet', mi.delete_image_set, datastoreId=ds, imageSetId=copy)

        # One error per operation; none may change anything.
        E = mi.exceptions
        before = snapshot()
        missing_arn = arn[:-32] + ZERO_ID
        errors = [
            (E.ValidationException, mi.create_datastore, dict(datastoreName='no spaces')),
            (E.ValidationException, mi.get_datastore, dict(datastoreId='BAD')),
            (E.ValidationException, mi.list_datastores, dict(datastoreStatus='SLEEPING')),
            (E.ConflictException, mi.delete_datastore, dict(datastoreId=ds)),
            (E.ResourceNotFoundException, mi.tag_resource,
             dict(resourceArn=missing_arn, tags={'a': 'b'})),
            (E.ValidationException, mi.untag_resource, dict(resourceArn=arn, tagKeys=['aws:k'])),
            (E.ResourceNotFoundException, mi.list_tags_for_resource,
             dict(resourceArn=missing_arn)),
            (E.ValidationException, mi.start_dicom_import_job,
             dict(datastoreId=ds, jobName='b3', clientToken='other', dataAccessRoleArn=ROLE,
                  inputS3Uri='s3://Bad_Bucket/', outputS3Uri='s3://b3-out/o/')),
            (E.ResourceNotFoundException, mi.get_dicom_import_job,
             dict(datastoreId=ds, jobId=ZERO_ID)),
            (E.ResourceNotFoundException, mi.list_dicom_import_jobs,
             dict(datastoreId=ZERO_ID)),
            (E.ResourceNotFoundException, mi.get_image_set,
             dict(datastoreId=ds, imageSetId=ZERO_ID)),
            (E.ResourceNotFoundException, mi.get_image_set_metadata,
             dict(datastoreId=ds, imageSetId=sid, versionId='9')),
            (E.ResourceNotFoundException, mi.list_image_set_versions,
             dict(datastoreId=ds, imageSetId=ZERO_ID)),
            (E.ValidationException, mi.search_image_sets,
             dict(datastoreId=ds, searchCriteria={'sort': {'sortField': 'nothing',
                                                           'sortOrder': 'ASC'}})),
            (E.ConflictException, mi.update_image_set_metadata,
             dict(datastoreId=ds, imageSetId=sid, latestVersionId='1',
                  updateImageSetMetadataUpdates={'revertToVersionId': '1'})),
            (E.ConflictException, mi.copy_image_set,
             dict(datastoreId=ds, sourceImageSetId=sid,
                  copyImageSetInformation={'sourceImageSet': {'latestVersionId': '1'}})),
            (E.ResourceNotFoundException, mi.delete_image_set,
             dict(datastoreId=ds, imageSetId=ZERO_ID)),
            (E.ResourceNotFoundException, mi.get_image_frame,
             dict(datastoreId=ds, imageSetId=copy,
                  imageFrameInformation={'imageFrameId': fr['ID']})),
        ]
        self.assertEqual(len({e[1].__name__ for e in errors}), 18)
        for exc, call, kw in errors:
            with self.assertRaises(exc, msg=call.__name__) as cm:
                call(**kw)
            self.assertTrue(cm.exception.response['Error']['Message'], call.__name__)
        self.assertEqual(snapshot(), before)


if __name__ == '__main__':
    unittest.main(verbosity=2)
