"""A full disk: writes are refused with an InternalServerException saying the disk is full (not
an I/O error), reads go on (DICOMweb retrieve of a small instance too), and the server starts on the full disk, both with the WAL of a server
stopped on it and after a clean stop (then read-only).

The data directory is a 16 MB tmpfs mounted in a private mount namespace: the test re-runs itself
under `unshare -m` (root, as in CI), and fills the tmpfs with a file."""
# pg: no (SQLite's WAL and files on a full disk; skips on PostgreSQL)
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SAMPLE = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm'
CT_STUDY = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322'
CT_SERIES = '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322'
CT_SOP = '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322'

if os.environ.get('AHL_DISK_FULL_NS') != '1':
    # A private mount namespace, so that the tmpfs is seen by this test and its server only.
    os.environ['AHL_DISK_FULL_NS'] = '1'
    os.execvp('unshare', ['unshare', '-m', '--propagation', 'private', sys.executable,
                          os.path.abspath(__file__)] + sys.argv[1:])


def mount_and_import(server):
    os.makedirs(server.data_dir)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', server.data_dir],
                   check=True)
    p = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir,
                        '--create-datastore', 'full', SAMPLE],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def fill(data_dir):
    """Writes a file until the disk has no room left."""
    path = os.path.join(data_dir, 'fill')
    block = b'\0' * 65536
    with open(path, 'wb', buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        try:
            while True:
                f.write(b'\0')
        except OSError:
            pass
    return path


class DiskFull(unittest.TestCase):
    def setUp(self):
        self.servers = []
        self.mounted = None

    def tearDown(self):
        for s in self.servers:
            s.stop()
        if self.mounted:
            subprocess.run(['umount', self.mounted])
        for s in self.servers:
            s.cleanup()

    def start(self, data_dir=None):
        """A server on data_dir (default: a new tmpfs with the sample imported)."""
        if data_dir is None:
            s = ahltest.Server(before_start=mount_and_import)
            self.mounted = s.data_dir
        else:
            s = ahltest.Server(extra_args=['--data-dir', data_dir])
        self.servers.append(s)
        return s

    def assert_writes_refused(self, mi, ds, sid):
        for call in (lambda: mi.create_datastore(datastoreName='more'),
                     lambda: mi.update_image_set_metadata(
                         datastoreId=ds, imageSetId=sid, latestVersionId='1',
                         updateImageSetMetadataUpdates={'DICOMUpdates': {
                             'updatableAttributes':
                                 b'{"SchemaVersion":1.1,"Patient":{"DICOM":{"PatientName":"X"}}}'}})):
            with self.assertRaises(mi.exceptions.InternalServerException) as cm:
                call()
            msg = cm.exception.response['Error']['Message']
            self.assertIn('the disk holding the data directory is full', msg.lower())
            self.assertNotIn('i/o error', msg)

    def assert_reads_answered(self, mi, ds, sid):
        self.assertEqual(mi.get_datastore(datastoreId=ds)['datastoreProperties']['datastoreName'],
                         'full')
        self.assertEqual(mi.get_image_set(datastoreId=ds, imageSetId=sid)['versionId'], '1')
        blob = mi.get_image_set_metadata(datastoreId=ds, imageSetId=sid)['imageSetMetadataBlob']
        self.assertGreater(len(blob.read()), 100)
        # A DICOMweb retrieve of the CT (39 KB, spooled in memory) is answered too.
        status, headers, body = ahltest.raw(
            'GET', mi.meta.endpoint_url, '/datastore/%s/studies/%s/series/%s/instances/%s' % (
                ds, CT_STUDY, CT_SERIES, CT_SOP))
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(body[128:132], b'DICM')

    def test_full_disk(self):
        first = self.start()
        mi = ahltest.boto3_client(first)
        ds = mi.list_datastores()['datastoreSummaries'][0]['datastoreId']
        sid = mi.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries'][0]['imageSetId']
        data_dir = first.data_dir
        filler = fill(data_dir)

        # Running when the disk fills: writes refused with the reason, reads answered.
        self.assert_writes_refused(mi, ds, sid)
        self.assert_reads_answered(mi, ds, sid)
        # An import beside it says why its file was not imported, and blames the disk.
        mr = os.path.join(os.path.dirname(SAMPLE), 'MR_small.dcm')
        p = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', data_dir,
                            '--datastore-id', ds, mr], capture_output=True, text=True, timeout=120)
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('the disk holding the data directory is full', p.stdout + p.stderr)
        self.assertEqual(first.stop(), 0, first.log_text())

        # Started again on the full disk, whatever the stop left behind.
        second = self.start(data_dir)
        mi = ahltest.boto3_client(second)
        self.assert_reads_answered(mi, ds, sid)
        self.assert_writes_refused(mi, ds, sid)
        os.unlink(filler)
        self.assertEqual(second.stop(), 0, second.log_text())
        self.assertFalse(os.path.exists(os.path.join(data_dir, 'ahilite.db-wal')),
                         'a clean stop with free space removes the WAL')

        # Stopped cleanly, then the disk filled: the server starts read-only.
        filler = fill(data_dir)
        third = self.start(data_dir)
        mi = ahltest.boto3_client(third)
        self.assert_reads_answered(mi, ds, sid)
        self.assert_writes_refused(mi, ds, sid)
        self.assertIn('serving it read-only', third.log_text())


if __name__ == '__main__':
    ahltest.skip_on_postgres("a full disk under SQLite's database and WAL in the data directory")
    unittest.main()
