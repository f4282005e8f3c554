"""Storage tiers through boto3 (docs/decisions.md#storage-tier-and-last-access): image sets
imported with `ahilite import` are in FREQUENT_ACCESS with lastAccessedAt at their import; the
same server restarted with its clock 31 days ahead (AHILITE_CLOCK_OFFSET) reports them in
ARCHIVE_INSTANT_ACCESS through GetImageSet and SearchImageSets, which are no accesses
themselves; GetImageFrame, GetImageSetMetadata, UpdateImageSetMetadata, a DICOMweb retrieve and
a copy's destination bring a set back at once, and still after a restart (the reads are written
at shutdown, one write for a thousand GetImageFrame calls, counted in the server's log); the
source of a copy and `ahilite export` are no accesses; 62 days on, every set is archived again.
"""
import datetime
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

DAY = 86400
ROOT = '1.2.826.0.1.3680043.9.7781.'
NAMES = ('frame', 'metadata', 'update', 'dicomweb', 'idle')
FLUSHED = re.compile(r'storage tiers: recorded the last access of (\d+) image sets?')


def offset_env(days):
    env = os.environ.copy()
    env['AHILITE_CLOCK_OFFSET'] = str(days * DAY)
    return env


class Tiers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='ahl-tiers-')
        dirs = []
        for i, name in enumerate(NAMES):
            d = os.path.join(cls.tmp, name)
            os.mkdir(d)
            ahltest.write_series(2, d, ROOT + '%d.' % i)
            dirs.append(d)

        def before(srv):
            cls.t_import = (time.time(), None)
            ahltest.import_files(srv, 'tiers', dirs)
            cls.t_import = (cls.t_import[0], time.time())

        # Reads are written at shutdown only (an hour between flushes), so that the log counts
        # the writes of each phase exactly.
        cls.srv = ahltest.Server(extra_args=['--access-flush-s', '3600'], before_start=before)
        cls.mi = ahltest.boto3_client(cls.srv)
        cls.ds = cls.mi.list_datastores()['datastoreSummaries'][0]['datastoreId']
        cls.sets = {}
        for s in cls.search():
            i = int(s['DICOMTags']['DICOMStudyInstanceUID'][len(ROOT):].split('.')[0])
            cls.sets[NAMES[i]] = s['imageSetId']
        assert len(cls.sets) == len(NAMES), cls.sets

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()
        subprocess.run(['rm', '-rf', cls.tmp])

    @classmethod
    def search(cls):
        return cls.mi.search_image_sets(datastoreId=cls.ds, maxResults=50)['imageSetsMetadataSummaries']

    def tiers(self):
        """{name: (GetImageSet's tier, its lastAccessedAt in s)}, checked against the search."""
        got = {}
        for name, sid in self.sets.items():
            r = self.mi.get_image_set(datastoreId=self.ds, imageSetId=sid)
            got[name] = (r['storageTier'], r['lastAccessedAt'].timestamp())
        by_id = {s['imageSetId']: s for s in self.search()}
        for name, sid in self.sets.items():
            s = by_id[sid]
            self.assertEqual((s['storageTier'], s['lastAccessedAt'].timestamp()), got[name],
                             name)
        return got

    def flushes(self):
        """The sets written by each flush so far, from the log."""
        return [int(n) for n in FLUSHED.findall(self.srv.log_text())]

    def frame_id(self, sid):
        doc = json.loads(gzip.decompress(self.mi.get_image_set_metadata(
            datastoreId=self.ds, imageSetId=sid)['imageSetMetadataBlob'].read()))
        series = next(iter(doc['Study']['Series'].values()))
        return next(iter(series['Instances'].values()))['ImageFrames'][0]['ID']

    def get_frame(self, sid, fid):
        body = self.mi.get_image_frame(datastoreId=self.ds, imageSetId=sid,
                                       imageFrameInformation={'imageFrameId': fid})
        self.assertGreater(len(body['imageFrameBlob'].read()), 0)

    def assert_now(self, t, days):
        now = time.time() + days * DAY
        self.assertLess(abs(t - now), 30, datetime.datetime.fromtimestamp(t))

    def test_tiers(self):
        mi, ds, sets = self.mi, self.ds, self.sets
        # Imported: FREQUENT_ACCESS, last accessed when imported.
        fid = self.frame_id(sets['frame'])  # read on the import's day: no change of day
        for name, (tier, t) in self.tiers().items():
            self.assertEqual(tier, 'FREQUENT_ACCESS', name)
            self.assertGreaterEqual(t, self.t_import[0] - 1, name)
            self.assertLessEqual(t, self.t_import[1] + 1, name)
        imported = self.tiers()['idle'][1]

        # 31 days later every set is archived; asking (GetImageSet, search, versions) is no
        # access.
        self.srv.restart(env=offset_env(31))
        writes = len(self.flushes())
        for _ in range(3):
            for name, (tier, t) in self.tiers().items():
                self.assertEqual(tier, 'ARCHIVE_INSTANT_ACCESS', name)
            mi.list_image_set_versions(datastoreId=ds, imageSetId=sets['idle'])
        self.assertEqual(self.tiers()['idle'][1], imported)

        # Each kind of access brings its set back at once, on this node.
        for _ in range(1000):
            self.get_frame(sets['frame'], fid)
        mi.get_image_set_metadata(datastoreId=ds, imageSetId=sets['metadata'])['imageSetMetadataBlob'].read()
        mi.update_image_set_metadata(
            datastoreId=ds, imageSetId=sets['update'], latestVersionId='1',
            updateImageSetMetadataUpdates={'DICOMUpdates': {'updatableAttributes': json.dumps(
                {'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': 'TIERS^UPDATED'}}}
            ).encode()}})
        study = ROOT + '3.1'
        status, _, _ = ahltest.raw('GET', self.srv.endpoint,
                                   '/datastore/%s/studies/%s/metadata' % (ds, study))
        self.assertEqual(status, 200)
        copy = mi.copy_image_set(datastoreId=ds, sourceImageSetId=sets['idle'],
                                 copyImageSetInformation={'sourceImageSet': {
                                     'latestVersionId': '1'}})
        dest = copy['destinationImageSetProperties']['imageSetId']
        got = self.tiers()
        for name in ('frame', 'metadata', 'update', 'dicomweb'):
            self.assertEqual(got[name][0], 'FREQUENT_ACCESS', name)
            self.assertNotEqual(got[name][1], imported, name)
            self.assert_now(got[name][1], 31)
        # The copy's source is no access; its destination is a new set, accessed now.
        self.assertEqual(got['idle'], ('ARCHIVE_INSTANT_ACCESS', imported))
        r = mi.get_image_set(datastoreId=ds, imageSetId=dest)
        self.assertEqual(r['storageTier'], 'FREQUENT_ACCESS')
        self.assert_now(r['lastAccessedAt'].timestamp(), 31)
        # Not one of those reads wrote anything yet.
        self.assertEqual(len(self.flushes()), writes)

        # `ahilite export` reads the idle set: no access either.
        with tempfile.TemporaryDirectory() as out:
            p = subprocess.run([ahltest.server_binary(), 'export', '--data-dir',
                                self.srv.data_dir, '--datastore-id', ds, '--image-set-id',
                                sets['idle']] + ahltest.blob_store_args() + [out],
                               capture_output=True, text=True, timeout=120,
                               env=offset_env(31))
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        # At shutdown the reads are written, in one transaction: three sets (the update and
        # the copy wrote their own access), however many reads each had.
        self.srv.restart(env=offset_env(31))
        self.assertEqual(self.flushes()[writes:], [3])
        writes = len(self.flushes())
        got = self.tiers()
        for name in ('frame', 'metadata', 'update', 'dicomweb'):
            self.assertEqual(got[name][0], 'FREQUENT_ACCESS', name)
            self.assert_now(got[name][1], 31)
        self.assertEqual(got['idle'], ('ARCHIVE_INSTANT_ACCESS', imported))
        # Read again the same day: the stored access is of today, nothing to write.
        for _ in range(100):
            self.get_frame(sets['frame'], fid)
        day31 = got

        # 62 days on, the sets accessed at day 31 are archived again.
        self.srv.restart(env=offset_env(62))
        self.assertEqual(self.flushes()[writes:], [])
        for name, (tier, t) in self.tiers().items():
            self.assertEqual(tier, 'ARCHIVE_INSTANT_ACCESS', name)
            self.assertEqual(t, day31[name][1], name)


if __name__ == '__main__':
    unittest.main(verbosity=2)
