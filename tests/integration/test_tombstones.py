"""Deleted image sets and data stores through boto3: what each operation answers about a
tombstone (DELETED with deletedAt, its last version only, no data, no writes, no tags), and that
the tombstones are gone once the retention has passed (the server restarted with its clock moved
by AHILITE_CLOCK_OFFSET), leaving the live sets as they were (docs/decisions.md#tombstones)."""
import gzip
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files/'
DAY = 86400


def import_samples(server):
    ahltest.import_files(server, 'tombstones',
                         [SAMPLES + 'CT_small.dcm', SAMPLES + 'MR_small.dcm'])


def restarted(old, clock_offset_s, extra_args=()):
    """A server on a copy of old's stopped data directory, its clock moved by clock_offset_s."""
    env = dict(os.environ, AHILITE_CLOCK_OFFSET=str(clock_offset_s))
    return ahltest.Server(extra_args=extra_args, env=env,
                          before_start=lambda s: shutil.copytree(old.data_dir, s.data_dir))


class Tombstones(unittest.TestCase):
    def test_deleted_then_expired(self):
        srv = ahltest.Server(before_start=import_samples)
        servers = [srv]
        try:
            self.run_scenario(servers)
        finally:
            for s in servers:
                s.stop()
                s.cleanup()

    def run_scenario(self, servers):
        srv = servers[0]
        mi = ahltest.boto3_client(srv)
        E = mi.exceptions
        ds = mi.list_datastores()['datastoreSummaries'][0]['datastoreId']
        sets = {s['DICOMTags']['DICOMPatientId']: s['imageSetId'] for s in
                mi.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']}
        gone, kept = sets['1CT1'], sets['4MR1']
        blob = mi.get_image_set_metadata(datastoreId=ds, imageSetId=gone)['imageSetMetadataBlob']
        doc = json.loads(gzip.decompress(blob.read()))
        frame = [i for s in doc['Study']['Series'].values() for i in s['Instances'].values()][0][
            'ImageFrames'][0]['ID']
        u = mi.update_image_set_metadata(
            datastoreId=ds, imageSetId=gone, latestVersionId='1', updateImageSetMetadataUpdates={
                'DICOMUpdates': {'updatableAttributes': json.dumps(
                    {'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': 'GONE^SOON'}}})}})
        self.assertEqual(u['latestVersionId'], '2')
        arn = mi.get_image_set(datastoreId=ds, imageSetId=gone)['imageSetArn']
        mi.tag_resource(resourceArn=arn, tags={'owner': 'ward-7'})

        d = mi.delete_image_set(datastoreId=ds, imageSetId=gone)
        self.assertEqual((d['imageSetState'], d['imageSetWorkflowStatus']), ('LOCKED', 'DELETING'))

        # The tombstone as each operation shows it.
        g = mi.get_image_set(datastoreId=ds, imageSetId=gone)
        self.assertEqual((g['imageSetState'], g['imageSetWorkflowStatus'], g['versionId']),
                         ('DELETED', 'DELETED', '2'))
        self.assertEqual(g['deletedAt'], g['updatedAt'])
        self.assertLess(g['createdAt'], g['deletedAt'])
        self.assertNotIn('message', g)
        self.assertEqual(mi.get_image_set(datastoreId=ds, imageSetId=gone, versionId='2')[
            'imageSetState'], 'DELETED')
        with self.assertRaises(E.ResourceNotFoundException):
            mi.get_image_set(datastoreId=ds, imageSetId=gone, versionId='1')
        v = mi.list_image_set_versions(datastoreId=ds, imageSetId=gone)['imageSetPropertiesList']
        self.assertEqual([(x['versionId'], x['imageSetState'], x['ImageSetWorkflowStatus'],
                           x['deletedAt']) for x in v], [('2', 'DELETED', 'DELETED', g['deletedAt'])])
        for call, kw in ((mi.get_image_set_metadata, {}),
                         (mi.get_image_set_metadata, {'versionId': '1'}),
                         (mi.get_image_frame, {'imageFrameInformation': {'imageFrameId': frame}})):
            with self.assertRaises(E.ResourceNotFoundException) as cm:
                call(datastoreId=ds, imageSetId=gone, **kw)
            self.assertIn('deleted', cm.exception.response['Error']['Message'])
        found = mi.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']
        self.assertEqual([s['imageSetId'] for s in found], [kept])
        with self.assertRaises(E.ConflictException):
            mi.update_image_set_metadata(
                datastoreId=ds, imageSetId=gone, latestVersionId='2',
                updateImageSetMetadataUpdates={'revertToVersionId': '1'})
        with self.assertRaises(E.ConflictException):
            mi.copy_image_set(datastoreId=ds, sourceImageSetId=gone, copyImageSetInformation={
                'sourceImageSet': {'latestVersionId': '2'}})
        with self.assertRaises(E.ConflictException):
            mi.copy_image_set(datastoreId=ds, sourceImageSetId=kept, copyImageSetInformation={
                'sourceImageSet': {'latestVersionId': '1'},
                'destinationImageSet': {'imageSetId': gone, 'latestVersionId': '2'}})
        again = mi.delete_image_set(datastoreId=ds, imageSetId=gone)
        self.assertEqual((again['imageSetState'], again['imageSetWorkflowStatus']),
                         ('DELETED', 'DELETED'))
        self.assertEqual(mi.get_image_set(datastoreId=ds, imageSetId=gone)['deletedAt'],
                         g['deletedAt'])
        self.assertEqual(mi.list_tags_for_resource(resourceArn=arn)['tags'], {})
        with self.assertRaises(E.ConflictException):
            mi.tag_resource(resourceArn=arn, tags={'a': 'b'})
        with self.assertRaises(E.ConflictException):
            mi.untag_resource(resourceArn=arn, tagKeys=['owner'])
        # DICOMweb: the deleted set's study is not found.
        study = doc['Study']['DICOM']['StudyInstanceUID']
        status, _, _ = ahltest.raw('GET', srv.endpoint,
                                   '/datastore/%s/studies/%s/metadata' % (ds, study))
        self.assertEqual(status, 404)

        # A data store: refused while it holds the live set, then a tombstone of its own.
        empty = ahltest.create_active_datastore(mi, 'tombstone-empty')
        with self.assertRaises(E.ConflictException):
            mi.delete_datastore(datastoreId=ds)
        self.assertEqual(mi.delete_datastore(datastoreId=empty)['datastoreStatus'], 'DELETING')
        p = mi.get_datastore(datastoreId=empty)['datastoreProperties']
        self.assertEqual(p['datastoreStatus'], 'DELETED')
        self.assertEqual([s['datastoreId'] for s in mi.list_datastores(
            datastoreStatus='DELETED')['datastoreSummaries']], [empty])
        with self.assertRaises(E.ConflictException):
            mi.start_dicom_import_job(datastoreId=empty, dataAccessRoleArn='arn:aws:iam::'
                                      '123456789012:role/R', inputS3Uri='s3://in-bucket/',
                                      outputS3Uri='s3://out-bucket/')
        before_kept = mi.get_image_set(datastoreId=ds, imageSetId=kept)
        before_kept.pop('ResponseMetadata')

        # Within the retention (30 days by default) nothing changes...
        srv.stop()
        later = restarted(srv, 29 * DAY)
        servers.append(later)
        mi = ahltest.boto3_client(later)
        self.assertEqual(mi.get_image_set(datastoreId=ds, imageSetId=gone)['imageSetState'],
                         'DELETED')
        self.assertEqual(mi.get_datastore(datastoreId=empty)['datastoreProperties'][
            'datastoreStatus'], 'DELETED')
        # ...past it the tombstones are gone, as if they had never been.
        later.stop()
        expired = restarted(later, 31 * DAY)
        servers.append(expired)
        self.assertIn('removed 1 deleted image set and 1 deleted data store',
                      expired.log_text())
        mi = ahltest.boto3_client(expired)
        with self.assertRaises(E.ResourceNotFoundException):
            mi.get_image_set(datastoreId=ds, imageSetId=gone)
        with self.assertRaises(E.ResourceNotFoundException):
            mi.list_image_set_versions(datastoreId=ds, imageSetId=gone)
        with self.assertRaises(E.ResourceNotFoundException):
            mi.delete_image_set(datastoreId=ds, imageSetId=gone)
        with self.assertRaises(E.ResourceNotFoundException):
            mi.list_tags_for_resource(resourceArn=arn)
        with self.assertRaises(E.ResourceNotFoundException):
            mi.get_datastore(datastoreId=empty)
        self.assertEqual(mi.list_datastores(datastoreStatus='DELETED')['datastoreSummaries'], [])
        now_kept = mi.get_image_set(datastoreId=ds, imageSetId=kept)
        now_kept.pop('ResponseMetadata')
        for changed in ('storageTier',):  # a month without access moves it to the archive tier
            now_kept.pop(changed)
            before_kept.pop(changed)
        self.assertEqual(now_kept, before_kept)
        mi.get_image_set_metadata(datastoreId=ds, imageSetId=kept)['imageSetMetadataBlob'].read()
        expired.stop()
        p = subprocess.run([ahltest.server_binary(), 'check', '--data-dir', expired.data_dir],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_retention_option(self):
        """serve --deleted-retention 0 removes a tombstone at the next check (here: the restart),
        `ahilite gc --deleted-retention 0` at once; a bad value is refused."""
        srv = ahltest.Server(before_start=import_samples, extra_args=['--deleted-retention', '0'])
        servers = [srv]
        try:
            mi = ahltest.boto3_client(srv)
            ds = mi.list_datastores()['datastoreSummaries'][0]['datastoreId']
            sid = mi.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries'][0][
                'imageSetId']
            mi.delete_image_set(datastoreId=ds, imageSetId=sid)
            self.assertEqual(mi.get_image_set(datastoreId=ds, imageSetId=sid)['imageSetState'],
                             'DELETED')
            srv.stop()
            again = restarted(srv, 1, ['--deleted-retention', '0'])
            servers.append(again)
            mi = ahltest.boto3_client(again)
            with self.assertRaises(mi.exceptions.ResourceNotFoundException):
                mi.get_image_set(datastoreId=ds, imageSetId=sid)
            empty = ahltest.create_active_datastore(mi, 'tombstone-gc')
            mi.delete_datastore(datastoreId=empty)
            self.assertEqual(mi.get_datastore(datastoreId=empty)['datastoreProperties'][
                'datastoreStatus'], 'DELETED')
            again.stop()
            p = subprocess.run([ahltest.server_binary(), 'gc', '--data-dir', again.data_dir,
                                '--deleted-retention', '0'],
                               env=dict(os.environ, AHILITE_CLOCK_OFFSET='2'),  # as `again`'s
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn('expired: 0 deleted image sets and 1 deleted data store', p.stdout)
            third = restarted(again, 2)
            servers.append(third)
            with self.assertRaises(mi.exceptions.ResourceNotFoundException):
                ahltest.boto3_client(third).get_datastore(datastoreId=empty)
        finally:
            for s in servers:
                s.stop()
                s.cleanup()
        p = subprocess.run([ahltest.server_binary(), 'serve', '--deleted-retention', '-1'],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn('--deleted-retention takes a number from 0 to 36500', p.stderr)


if __name__ == '__main__':
    unittest.main(verbosity=2)
