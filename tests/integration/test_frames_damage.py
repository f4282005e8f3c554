"""Damage in a real data directory is found by `ahilite check` and never served by GetImageFrame.

A few sample files are imported with `ahilite import`; `ahilite check` finds the directory sound
and every frame is served. Then the directory is damaged the ways disks, people and programs do:
one frame file overwritten in place (same size), one truncated, one deleted, one replaced by a
symbolic link (to a sound copy of itself, which must still be refused), and a frame-index row
deleted. Through boto3, GetImageFrame answers InternalServerException for the overwritten,
truncated and linked frames (never 200 with wrong bytes), ResourceNotFoundException for the
deleted one, and still serves a sound frame. `ahilite check` then exits 1 and names each problem:
the image set, version, place and frame, what was expected and what was found. Last, pages of the
SQLite file are overwritten (pages of an index the engine's walk never reads, so only SQLite's own
check can see them) and `ahilite check` exits 1 with SQLite's report.
"""
# pg: no (it damages frame files and SQLite's pages; damaged objects on S3: test_frames_s3.py)
import glob
import gzip
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

TF = '/usr/lib/python3/dist-packages/pydicom/data/test_files/'
# Distinct instances whose frames are all distinct (MR_small's variants would share its frame).
FILES = ['CT_small.dcm', 'MR_small.dcm', 'SC_rgb_rle_2frame.dcm', 'SC_rgb_small_odd.dcm',
         'image_dfl.dcm']


def run_check(data_dir):
    r = subprocess.run([ahltest.server_binary(), 'check', '--data-dir', data_dir],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


class FramesDamage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        def do_import(server):
            r = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir,
                                '--create-datastore', 'damage', '--workers', '2'] +
                               [TF + f for f in FILES], capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
        cls.server = ahltest.Server(before_start=do_import)
        cls.client = ahltest.boto3_client(cls.server)
        c = cls.client
        cls.ds = c.list_datastores()['datastoreSummaries'][0]['datastoreId']
        # Every frame of every image set: (set, version 1, where, frame entry, stored syntax).
        cls.frames = []
        for s in c.search_image_sets(datastoreId=cls.ds)['imageSetsMetadataSummaries']:
            blob = c.get_image_set_metadata(datastoreId=cls.ds, imageSetId=s['imageSetId'])
            doc = json.loads(gzip.decompress(blob['imageSetMetadataBlob'].read()))
            for skey, series in doc['Study']['Series'].items():
                for ikey, inst in series['Instances'].items():
                    for k, fr in enumerate(inst.get('ImageFrames', [])):
                        where = "Study.Series['%s'].Instances['%s'].ImageFrames[%d]" % (
                            skey, ikey, k)
                        cls.frames.append((s['imageSetId'], where, fr))
        assert len(cls.frames) >= 6, cls.frames

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        cls.server.cleanup()
        assert rc == 0, 'server exit status %r' % rc

    def path(self, frame_id):
        return os.path.join(self.server.data_dir, 'frames', frame_id[:2], frame_id[2:4], frame_id)

    def get(self, set_id, frame_id):
        r = self.client.get_image_frame(datastoreId=self.ds, imageSetId=set_id,
                                        imageFrameInformation={'imageFrameId': frame_id})
        return r['imageFrameBlob'].read()

    def test_damage_is_found_and_never_served(self):
        rc, out = run_check(self.server.data_dir)
        self.assertEqual(rc, 0, out)
        for set_id, _, fr in self.frames:
            self.assertGreaterEqual(len(self.get(set_id, fr['ID'])), fr['FrameSizeInBytes'])

        (s_over, w_over, f_over), (s_trunc, w_trunc, f_trunc), (s_del, w_del, f_del), \
            (s_link, w_link, f_link), (s_idx, w_idx, f_idx), (s_ok, _, f_ok) = self.frames[:6]
        # Overwritten in place: same size, some bytes changed.
        with open(self.path(f_over['ID']), 'r+b') as f:
            f.seek(f_over['FrameSizeInBytes'] // 2)
            f.write(b'\x00\x11\x22\x33')
        # Truncated to half its size.
        os.truncate(self.path(f_trunc['ID']), f_trunc['FrameSizeInBytes'] // 2)
        # Deleted.
        os.unlink(self.path(f_del['ID']))
        # A symbolic link to a sound copy of itself planted in its place.
        link = self.path(f_link['ID'])
        shutil.copy(link, link + '.elsewhere')
        os.unlink(link)
        os.symlink(link + '.elsewhere', link)
        # Its frame-index row deleted (the server keeps running: SQLite in WAL mode).
        db = sqlite3.connect(os.path.join(self.server.data_dir, 'ahilite.db'), timeout=10)
        with db:
            n = db.execute('DELETE FROM frame WHERE imageset_id=? AND frame_id=?',
                           (s_idx, f_idx['ID'])).rowcount
        db.close()
        self.assertEqual(n, 1)

        internal = self.client.exceptions.InternalServerException
        not_found = self.client.exceptions.ResourceNotFoundException
        for set_id, fr in ((s_over, f_over), (s_trunc, f_trunc), (s_link, f_link)):
            with self.assertRaises(internal, msg=fr['ID']) as cm:
                self.get(set_id, fr['ID'])
            self.assertIn('the stored frame is damaged', str(cm.exception))
        with self.assertRaises(not_found):
            self.get(s_del, f_del['ID'])
        with self.assertRaises(not_found):
            self.get(s_idx, f_idx['ID'])
        self.assertGreaterEqual(len(self.get(s_ok, f_ok['ID'])), f_ok['FrameSizeInBytes'])
        log = self.server.log_text()
        self.assertIn('GetImageFrame: image set %s: stored frame %s is damaged' % (
            s_over, f_over['ID']), log)

        rc, out = run_check(self.server.data_dir)
        self.assertEqual(rc, 1, out)
        lines = [x for x in out.splitlines() if x.startswith('damage: ')]
        self.assertEqual(len(lines), 5, out)

        def line_for(set_id, where, frame_id):
            head = 'damage: image set %s version 1: %s' % (set_id, where)
            found = [x for x in lines if x.startswith(head) and frame_id in x]
            self.assertEqual(len(found), 1, 'no line for %s %s:\n%s' % (head, frame_id, out))
            return found[0]
        self.assertIn('the file is %d bytes, FrameSizeInBytes %d' % (
            f_trunc['FrameSizeInBytes'] // 2, f_trunc['FrameSizeInBytes']),
            line_for(s_trunc, w_trunc, f_trunc['ID']))
        self.assertIn('other bytes than the ones its id names',
                      line_for(s_over, w_over, f_over['ID']))
        self.assertIn('its file %s is missing' % self.path(f_del['ID']),
                      line_for(s_del, w_del, f_del['ID']))
        self.assertIn('the file is a symbolic link', line_for(s_link, w_link, f_link['ID']))
        self.assertIn('the frame index has no row for it', line_for(s_idx, w_idx, f_idx['ID']))

    def test_z_overwritten_database_pages(self):
        """Runs last (after the server stopped writing): a copy of the data directory whose
        database has the pages of one index overwritten."""
        copy = os.path.join(self.server.tmp, 'pages')
        # A consistent copy of the database (the server may hold part of it in its WAL).
        os.makedirs(copy)
        src = sqlite3.connect(os.path.join(self.server.data_dir, 'ahilite.db'), timeout=10)
        dst = sqlite3.connect(os.path.join(copy, 'ahilite.db'))
        src.backup(dst)
        src.close()
        dst.execute('PRAGMA journal_mode=DELETE')
        dst.close()
        # No frame files beside this copy: every frame is reported missing, the database sound.
        rc, out = run_check(copy)
        self.assertEqual(rc, 1, out)
        self.assertNotIn('damage: database: ', out)
        db = sqlite3.connect(os.path.join(copy, 'ahilite.db'))
        page_size = db.execute('PRAGMA page_size').fetchone()[0]
        # The pages of an index of the search table: the engine's walk never reads them.
        try:
            pages = [p for (p,) in db.execute(
                "SELECT pageno FROM dbstat WHERE name='search_patient'")]
        except sqlite3.OperationalError:  # no dbstat in this SQLite: the index's root page
            pages = [db.execute("SELECT rootpage FROM sqlite_master WHERE name='search_patient'"
                                ).fetchone()[0]]
        db.close()
        self.assertTrue(pages)
        with open(os.path.join(copy, 'ahilite.db'), 'r+b') as f:
            for p in pages:
                f.seek((p - 1) * page_size)
                f.write(b'\xa5' * page_size)
        rc, out = run_check(copy)
        self.assertEqual(rc, 1, out)
        self.assertIn('damage: database: ', out)


if __name__ == '__main__':
    ahltest.skip_on_postgres("it damages frame files and SQLite's pages")
    unittest.main(verbosity=2)
