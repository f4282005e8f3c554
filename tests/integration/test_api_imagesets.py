"""The image-set operations end to end through boto3, on pydicom's sample files imported with
`ahilite import` into the server's data directory before it starts: search, get, metadata (gzip),
frames, update (and its conflicts), versions, revert, copy, tags on image sets, delete, and the
data store that cannot be deleted while it holds image sets."""
import base64
import gzip
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import jph  # noqa: E402

SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files'
CT = ('CT_small.dcm', '1CT1', '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322', '20040119')
MR = ('MR_small.dcm', '4MR1', '1.3.6.1.4.1.5962.1.2.4.20040826185059.5457', '20040826')
SRV = None
MI = None
DS = None


def import_samples(server):
    p = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir,
                        '--create-datastore', 'samples',
                        os.path.join(SAMPLES, CT[0]), os.path.join(SAMPLES, MR[0])],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def setUpModule():
    global SRV, MI, DS
    SRV = ahltest.Server(before_start=import_samples)
    MI = ahltest.boto3_client(SRV)
    DS = [d for d in MI.list_datastores()['datastoreSummaries']
          if d['datastoreName'] == 'samples'][0]['datastoreId']


def tearDownModule():
    SRV.finish()


def find_set(patient_id):
    r = MI.search_image_sets(datastoreId=DS, searchCriteria={
        'filters': [{'values': [{'DICOMPatientId': patient_id}], 'operator': 'EQUAL'}]})
    sets = r['imageSetsMetadataSummaries']
    assert len(sets) == 1, sets
    return sets[0]


def metadata(image_set_id, version=None):
    kw = {'versionId': version} if version else {}
    r = MI.get_image_set_metadata(datastoreId=DS, imageSetId=image_set_id, **kw)
    assert r['contentEncoding'] == 'gzip', r
    assert r['contentType'] == 'application/json', r
    return json.loads(gzip.decompress(r['imageSetMetadataBlob'].read()))


def b64json(doc):
    return json.dumps(doc).encode()  # boto3 base64-encodes blobs itself


class ImageSets(unittest.TestCase):
    def test_1_search_and_get(self):
        everything = MI.search_image_sets(datastoreId=DS)['imageSetsMetadataSummaries']
        self.assertEqual(len(everything), 2)
        ct = find_set(CT[1])
        tags = ct['DICOMTags']
        self.assertEqual(tags['DICOMStudyInstanceUID'], CT[2])
        self.assertEqual(tags['DICOMStudyDate'], CT[3])
        self.assertEqual(tags['DICOMPatientName'], 'CompressedSamples^CT1')
        self.assertTrue(ct['isPrimary'])
        self.assertEqual(ct['version'], 1)
        by_study = MI.search_image_sets(datastoreId=DS, searchCriteria={
            'filters': [{'values': [{'DICOMStudyInstanceUID': MR[2]}], 'operator': 'EQUAL'}]})
        self.assertEqual(len(by_study['imageSetsMetadataSummaries']), 1)
        dated = MI.search_image_sets(datastoreId=DS, searchCriteria={
            'filters': [{'values': [
                {'DICOMStudyDateAndTime': {'DICOMStudyDate': '20040101'}},
                {'DICOMStudyDateAndTime': {'DICOMStudyDate': '20040501'}}],
                'operator': 'BETWEEN'}],
            'sort': {'sortField': 'DICOMStudyDateAndTime', 'sortOrder': 'ASC'}})
        self.assertEqual([s['imageSetId'] for s in dated['imageSetsMetadataSummaries']],
                         [ct['imageSetId']])
        pages = list(MI.get_paginator('search_image_sets').paginate(
            datastoreId=DS, PaginationConfig={'PageSize': 1}))
        self.assertEqual(sum(len(p['imageSetsMetadataSummaries']) for p in pages), 2)

        g = MI.get_image_set(datastoreId=DS, imageSetId=ct['imageSetId'])
        self.assertEqual((g['versionId'], g['imageSetState']), ('1', 'ACTIVE'))
        self.assertTrue(g['imageSetArn'].endswith('/imageset/' + ct['imageSetId']))

    def test_2_metadata_and_frames(self):
        ct = find_set(CT[1])
        doc = metadata(ct['imageSetId'])
        self.assertEqual(doc['ImageSetID'], ct['imageSetId'])
        self.assertEqual(doc['DatastoreID'], DS)
        self.assertEqual(doc['Patient']['DICOM']['PatientID'], CT[1])
        series = next(iter(doc['Study']['Series'].values()))
        instance = next(iter(series['Instances'].values()))
        frame = instance['ImageFrames'][0]
        r = MI.get_image_frame(datastoreId=DS, imageSetId=ct['imageSetId'],
                               imageFrameInformation={'imageFrameId': frame['ID']})
        body = jph.parse(r['imageFrameBlob'].read())[2]  # the JPH file's codestream
        self.assertEqual(r['contentType'], 'image/jph')
        self.assertEqual(len(body), frame['FrameSizeInBytes'])
        self.assertEqual(body[:4], b'\xff\x4f\xff\x51')  # a JPEG 2000 codestream (SOC, SIZ)
        mr = find_set(MR[1])
        with self.assertRaises(MI.exceptions.ResourceNotFoundException):
            MI.get_image_frame(datastoreId=DS, imageSetId=mr['imageSetId'],
                               imageFrameInformation={'imageFrameId': frame['ID']})

    def test_3_update_versions_revert(self):
        ct = find_set(CT[1])
        sid = ct['imageSetId']
        upd = {'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': 'RENAMED^PATIENT'}}}
        r = MI.update_image_set_metadata(
            datastoreId=DS, imageSetId=sid, latestVersionId='1',
            updateImageSetMetadataUpdates={'DICOMUpdates': {'updatableAttributes': b64json(upd)}})
        self.assertEqual((r['latestVersionId'], r['imageSetState'],
                          r['imageSetWorkflowStatus']), ('2', 'LOCKED', 'UPDATING'))
        g = MI.get_image_set(datastoreId=DS, imageSetId=sid)
        self.assertEqual((g['versionId'], g['imageSetState']), ('2', 'ACTIVE'))
        self.assertEqual(metadata(sid)['Patient']['DICOM']['PatientName'], 'RENAMED^PATIENT')
        self.assertEqual(metadata(sid, '1')['Patient']['DICOM']['PatientName'],
                         'CompressedSamples^CT1')
        with self.assertRaises(MI.exceptions.ConflictException):
            MI.update_image_set_metadata(
                datastoreId=DS, imageSetId=sid, latestVersionId='1',
                updateImageSetMetadataUpdates={'DICOMUpdates': {
                    'updatableAttributes': b64json(upd)}})
        with self.assertRaises(MI.exceptions.ValidationException):
            MI.update_image_set_metadata(
                datastoreId=DS, imageSetId=sid, latestVersionId='2',
                updateImageSetMetadataUpdates={'DICOMUpdates': {
                    'updatableAttributes': b'not json'}})
        with self.assertRaises(MI.exceptions.ServiceQuotaExceededException) as cm:
            big = {'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientComments': 'x' * 10050}}}
            MI.update_image_set_metadata(
                datastoreId=DS, imageSetId=sid, latestVersionId='2',
                updateImageSetMetadataUpdates={'DICOMUpdates': {
                    'updatableAttributes': b64json(big)}})
        self.assertEqual(cm.exception.response['ResponseMetadata']['HTTPStatusCode'], 402)
        versions = MI.list_image_set_versions(datastoreId=DS, imageSetId=sid)
        self.assertEqual([v['versionId'] for v in versions['imageSetPropertiesList']], ['2', '1'])
        self.assertIn('ImageSetWorkflowStatus', versions['imageSetPropertiesList'][0])

        r = MI.update_image_set_metadata(datastoreId=DS, imageSetId=sid, latestVersionId='2',
                                         updateImageSetMetadataUpdates={'revertToVersionId': '1'})
        self.assertEqual(r['latestVersionId'], '3')
        self.assertEqual(metadata(sid)['Patient']['DICOM']['PatientName'],
                         'CompressedSamples^CT1')
        self.assertEqual(find_set(CT[1])['version'], 3)

    def test_4_tags_copy_delete(self):
        mr = find_set(MR[1])
        sid = mr['imageSetId']
        arn = MI.get_image_set(datastoreId=DS, imageSetId=sid)['imageSetArn']
        MI.tag_resource(resourceArn=arn, tags={'reviewed': 'yes'})
        self.assertEqual(MI.list_tags_for_resource(resourceArn=arn)['tags'], {'reviewed': 'yes'})

        c = MI.copy_image_set(datastoreId=DS, sourceImageSetId=sid, copyImageSetInformation={
            'sourceImageSet': {'latestVersionId': '1'}})
        dest = c['destinationImageSetProperties']['imageSetId']
        self.assertNotEqual(dest, sid)
        self.assertEqual(c['sourceImageSetProperties']['imageSetId'], sid)
        self.assertEqual(metadata(dest)['Patient']['DICOM']['PatientID'], MR[1])
        with self.assertRaises(MI.exceptions.ConflictException):
            MI.copy_image_set(datastoreId=DS, sourceImageSetId=sid, copyImageSetInformation={
                'sourceImageSet': {'latestVersionId': '7'}})

        with self.assertRaises(MI.exceptions.ConflictException):
            MI.delete_datastore(datastoreId=DS)
        d = MI.delete_image_set(datastoreId=DS, imageSetId=dest)
        self.assertEqual((d['imageSetState'], d['imageSetWorkflowStatus']), ('LOCKED', 'DELETING'))
        g = MI.get_image_set(datastoreId=DS, imageSetId=dest)
        self.assertEqual((g['imageSetState'], g['imageSetWorkflowStatus']), ('DELETED', 'DELETED'))
        self.assertIn('deletedAt', g)
        with self.assertRaises(MI.exceptions.ResourceNotFoundException):
            MI.get_image_set_metadata(datastoreId=DS, imageSetId=dest)
        self.assertEqual(len(MI.search_image_sets(datastoreId=DS)['imageSetsMetadataSummaries']),
                         2)


if __name__ == '__main__':
    unittest.main(verbosity=2)
