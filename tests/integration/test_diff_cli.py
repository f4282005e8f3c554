"""`ahilite diff` end to end: a three-instance series is imported, then changed through the
server with boto3 (PatientName updated, an instance's ImageComments changed, an instance removed), and
the diff of each pair of versions printed by the command must name exactly those changes, in both
directions; the server's GET .../diff (SigV4-signed through botocore) answers the same JSON, 400
for bad queries, 404 for an unknown version, 403 for a wrong signature. Also the exit statuses: 1 for an unknown version or image set, 2 for usage errors.
"""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402


def run(*args):
    p = subprocess.run([ahltest.server_binary()] + list(args), capture_output=True, text=True,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


class DiffCli(unittest.TestCase):
    def update(self, mi, version, upd=None, rem=None):
        u = {}
        if upd:
            u['updatableAttributes'] = json.dumps(upd).encode()
        if rem:
            u['removableAttributes'] = json.dumps(rem).encode()
        r = mi.update_image_set_metadata(datastoreId=self.ds, imageSetId=self.set,
                                         latestVersionId=str(version),
                                         updateImageSetMetadataUpdates={'DICOMUpdates': u})
        self.assertEqual(r['latestVersionId'], str(version + 1))

    def diff(self, a, b):
        rc, out, err = run('diff', '--data-dir', self.srv.data_dir, '--datastore-id', self.ds,
                           '--image-set-id', self.set, '--from', str(a), '--to', str(b))
        self.assertEqual(rc, 0, out + err)
        return json.loads(out)

    def http_checks(self, d_expected_patient):
        """GET .../diff over HTTP, signed with SigV4 like the operations."""
        path = '/datastore/%s/imageSet/%s/diff' % (self.ds, self.set)
        st, _, body = ahltest.raw('GET', self.srv.endpoint, path, 'from=2&to=1')
        self.assertEqual(st, 200, body)
        d = json.loads(body)
        self.assertEqual((d['FromVersion'], d['ToVersion']), (2, 1))
        new, old = d_expected_patient
        self.assertEqual(d['Patient'], {'Changed': {'DICOM.PatientName': {'Old': new,
                                                                          'New': old}}})
        self.assertEqual(d, self.cli_diff_running(2, 1))
        st, _, body = ahltest.raw('GET', self.srv.endpoint, path, 'from=1&to=9')
        self.assertEqual(st, 404, body)
        self.assertIn(b'has no version 9', body)
        for bad in ('from=1', 'from=x&to=2', 'from=1&to=2&from=3', 'since=1&to=2'):
            st, _, body = ahltest.raw('GET', self.srv.endpoint, path, bad)
            self.assertEqual(st, 400, (bad, body))
            self.assertIn(b'ValidationException', body)
        st, _, body = ahltest.raw('POST', self.srv.endpoint, path, 'from=1&to=2', body='{}')
        self.assertEqual(st, 400, body)
        st, _, body = ahltest.raw('GET', self.srv.endpoint, path, 'from=1&to=2',
                                  secret_key='wrong' * 8)
        self.assertEqual(st, 403, body)
        self.assertNotIn(b'Patient', body)

    def cli_diff_running(self, a, b):
        """The command reads the store while the server runs."""
        return self.diff(a, b)

    def test_diff(self):
        self.srv = ahltest.Server(
            before_start=lambda s: ahltest.import_series(s, 3, '1.2.826.0.1.3680043.8.498.61.',
                                                         'diff'))
        try:
            mi = ahltest.boto3_client(self.srv)
            self.ds = mi.list_datastores()['datastoreSummaries'][0]['datastoreId']
            self.set = mi.search_image_sets(datastoreId=self.ds)['imageSetsMetadataSummaries'][
                0]['imageSetId']
            doc = json.loads(__import__('gzip').decompress(mi.get_image_set_metadata(
                datastoreId=self.ds, imageSetId=self.set)['imageSetMetadataBlob'].read()))
            old_name = doc['Patient']['DICOM']['PatientName']
            (suid, series), = doc['Study']['Series'].items()
            sops = sorted(series['Instances'])
            old_comment = series['Instances'][sops[0]]['DICOM']['ImageComments']
            self.update(mi, 1, upd={'SchemaVersion': 1.1,
                                    'Patient': {'DICOM': {'PatientName': 'DIFF^NEW'}}})
            self.update(mi, 2, upd={'SchemaVersion': 1.1, 'Study': {'Series': {suid: {
                'Instances': {sops[0]: {'DICOM': {'ImageComments': 'checked'}}}}}}})
            self.update(mi, 3, rem={'SchemaVersion': 1.1, 'Study': {'Series': {suid: {
                'Instances': {sops[2]: {}}}}}})
            self.http_checks(d_expected_patient=('DIFF^NEW', old_name))
            self.assertEqual(self.srv.stop(), 0, self.srv.log_text())

            d = self.diff(1, 2)
            self.assertEqual(d['FromVersion'], 1)
            self.assertEqual(d['ToVersion'], 2)
            self.assertEqual(d['Patient'], {'Changed': {'DICOM.PatientName': {
                'Old': old_name, 'New': 'DIFF^NEW'}}})
            self.assertNotIn('Study', d)
            self.assertNotIn('Series', d)

            d = self.diff(2, 3)
            self.assertEqual(set(d) - {'DatastoreID', 'ImageSetID', 'FromVersion', 'ToVersion'},
                             {'Series'})
            self.assertEqual(d['Series'], {'Changed': {suid: {'Instances': {'Changed': {
                sops[0]: {'Changed': {'DICOM.ImageComments': {'Old': old_comment,
                                                              'New': 'checked'}}}}}}}})

            d = self.diff(3, 4)
            self.assertEqual(d['Series'], {'Changed': {suid: {'Instances': {
                'Removed': [sops[2]]}}}})

            d = self.diff(4, 1)  # backwards: the reverse of everything
            self.assertEqual(d['Patient'], {'Changed': {'DICOM.PatientName': {
                'Old': 'DIFF^NEW', 'New': old_name}}})
            inst = d['Series']['Changed'][suid]['Instances']
            self.assertEqual(inst['Added'], [sops[2]])
            self.assertEqual(inst['Changed'], {sops[0]: {'Changed': {
                'DICOM.ImageComments': {'Old': 'checked', 'New': old_comment}}}})

            d = self.diff(3, 3)
            self.assertEqual(set(d), {'DatastoreID', 'ImageSetID', 'FromVersion', 'ToVersion'})

            rc, out, err = run('diff', '--data-dir', self.srv.data_dir, '--datastore-id', self.ds,
                               '--image-set-id', self.set, '--from', '1', '--to', '5')
            self.assertEqual(rc, 1, out + err)
            self.assertIn('has no version 5', err)
            rc, out, err = run('diff', '--data-dir', self.srv.data_dir, '--datastore-id', self.ds,
                               '--image-set-id', '0' * 32, '--from', '1', '--to', '2')
            self.assertEqual(rc, 1, out + err)
            self.assertEqual(out, '')
        finally:
            self.srv.stop()
            self.srv.cleanup()

    def test_usage(self):
        rc, out, _ = run('diff', '--help')
        self.assertEqual(rc, 0)
        self.assertIn('usage: ahilite diff', out)
        self.assertIn('--from N', out)
        rc, _, err = run('diff', '--datastore-id', 'a', '--image-set-id', 'b', '--from', '1')
        self.assertEqual(rc, 2)
        self.assertIn('required', err)
        rc, _, err = run('diff', '--datastore-id', 'a', '--image-set-id', 'b', '--from', 'x',
                         '--to', '2')
        self.assertEqual(rc, 2)
        self.assertIn('--from expects a version number', err)
        if os.environ.get('AHL_TEST_DATABASE'):
            return  # the database is PostgreSQL's, not a file the data directory may lack
        rc, _, err = run('diff', '--data-dir', '/nonexistent-ahilite', '--datastore-id', 'a',
                         '--image-set-id', 'b', '--from', '1', '--to', '2')
        self.assertEqual(rc, 2)
        self.assertIn('no database', err)


if __name__ == '__main__':
    unittest.main(verbosity=2)
