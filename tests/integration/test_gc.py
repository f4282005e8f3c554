"""Deleting an image set and running `ahilite gc` removes its data (docs/decisions.md#gc-grace).

A study of twelve instances with frames of noise and the PatientName GCFORGET^PATIENT is imported
with StartDICOMImportJob into one data store; one of its files, renamed to another patient and
study, into a second data store, so that the two sets share that one frame (imported first). The first set is
deleted and `ahilite gc --grace 0` runs beside the server. Then (on SQLite) no stored byte of any
chunk gc removed, nor the PatientName the search and QIDO-RS rows held, is anywhere in the
database file or its WAL; no frame file of the deleted set is left and a run of bytes of one of
its stored frames is in no file of the data directory; the data directory's files take within a
few percent of what they took before the import; the second set still serves the shared frame
bit for bit; `ahilite check` is clean. A whole copy of a set keeps everything when its source is
deleted. --dry-run counts and changes nothing, and `ahilite check` counts the same as
reclaimable, exiting 0. A server with --gc-interval 1 collects a deleted set by itself.

With frames in an S3 bucket (the pg label: AHL_TEST_BLOB_STORE) the frame checks run on the
bucket, listed with boto3 directly: after the deletion and gc no object of the deleted set's own
frames is left under the store's prefix, and no object there holds a run of one of its bytes; the
shared frame's object stays.
"""
import gzip
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

NAME = 'GCFORGET^PATIENT'
_GEN = r'''
import random, sys
import pydicom
out, n, root, name, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rnd = random.Random(int(seed))
for i in range(n):
    ds = pydicom.dcmread(sys.argv[6])
    ds.PatientName = name
    ds.PatientID = 'GC-' + seed
    ds.StudyInstanceUID = root + '1'
    ds.SeriesInstanceUID = root + '1.1'
    ds.SOPInstanceUID = root + '1.1.%d' % (i + 1)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = i + 1
    px = bytearray(rnd.randbytes(ds.Rows * ds.Columns * 2))
    ds.PixelData = bytes(px)
    ds.save_as('%s/i%03d.dcm' % (out, i))
'''


def generate(out, n, root, name, seed):
    os.makedirs(out, exist_ok=True)
    subprocess.run(['/usr/bin/python3', '-c', _GEN, out, str(n), root, name, str(seed),
                    ahltest.CT_SAMPLE], check=True, timeout=120)


def files_usage(root):
    """Bytes the regular files under root take on disk (fan-out directories left aside)."""
    total = 0
    for d, _, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def all_bytes(root):
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            try:
                with open(p, 'rb') as fh:
                    yield p, fh.read()
            except (FileNotFoundError, PermissionError):
                pass


class Gc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inputs = tempfile.mkdtemp(prefix='ahl-gc-in-')
        os.makedirs(os.path.join(cls.inputs, 'gcout'))
        cls.srv = ahltest.Server(extra_args=['--s3-root', cls.inputs])
        cls.c = ahltest.boto3_client(cls.srv)
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()
        shutil.rmtree(cls.inputs, ignore_errors=True)

    def gc(self, *args):
        p = subprocess.run([ahltest.server_binary(), 'gc', '--data-dir', self.srv.data_dir] +
                           list(args), capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout

    def check(self):
        p = subprocess.run([ahltest.server_binary(), 'check', '--data-dir', self.srv.data_dir],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout

    def import_dir(self, ds, key):
        Gc.n += 1
        r = self.c.start_dicom_import_job(
            jobName='gc', datastoreId=ds, clientToken='gc-%d' % Gc.n,
            dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole',
            inputS3Uri='s3://gcin/%s/' % key, outputS3Uri='s3://gcout/%s/' % key)
        job = ahltest.wait_import_job(self.c, ds, r['jobId'], 180)
        self.assertEqual(job['jobStatus'], 'COMPLETED', job.get('message'))

    def sets(self, ds):
        return [s['imageSetId'] for s in
                self.c.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']]

    def frames(self, ds, set_id):
        blob = self.c.get_image_set_metadata(datastoreId=ds, imageSetId=set_id)
        doc = json.loads(gzip.decompress(blob['imageSetMetadataBlob'].read()))
        return [f['ID'] for s in doc['Study']['Series'].values()
                for i in s['Instances'].values() for f in i.get('ImageFrames', [])]

    def frame(self, ds, set_id, frame_id):
        r = self.c.get_image_frame(datastoreId=ds, imageSetId=set_id,
                                   imageFrameInformation={'imageFrameId': frame_id})
        return r['imageFrameBlob'].read()

    def frame_path(self, frame_id):
        return os.path.join(self.srv.data_dir, 'frames', frame_id[:2], frame_id[2:4], frame_id)

    def bucket(self):
        """(boto3 client, bucket, prefix) of the server's blob store."""
        import boto3
        args = (ahltest.blob_store_for(self.srv.data_dir) if ahltest.on_postgres()
                else ahltest.blob_store_args())
        uri = args[args.index('--blob-store') + 1]
        bucket, _, prefix = uri[len('s3://'):].partition('/')
        s3 = boto3.client('s3', endpoint_url=os.environ['AHL_TEST_S3_ENDPOINT'],
                          region_name='us-east-1',
                          aws_access_key_id=os.environ.get('AWS_ACCESS_KEY_ID', 'testing'),
                          aws_secret_access_key=os.environ.get('AWS_SECRET_ACCESS_KEY', 'testing'))
        return s3, bucket, prefix.strip('/') + '/' if prefix.strip('/') else ''

    def stored_frames(self):
        """{frame id: where} of every frame stored: files, or objects of the bucket."""
        if not ahltest.frames_in_bucket():
            return {os.path.basename(p): p for p, _ in
                    all_bytes(os.path.join(self.srv.data_dir, 'frames'))}
        s3, bucket, prefix = self.bucket()
        return {o['Key'].rsplit('/', 1)[1]: o['Key']
                for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket,
                                                                         Prefix=prefix)
                for o in page.get('Contents', [])}

    def stored_bytes(self, frame_id):
        if not ahltest.frames_in_bucket():
            with open(self.frame_path(frame_id), 'rb') as f:
                return f.read()
        s3, bucket, _ = self.bucket()
        return s3.get_object(Bucket=bucket, Key=self.stored_frames()[frame_id])['Body'].read()

    def chunks(self):
        db = sqlite3.connect('file:%s/ahilite.db?mode=ro' % self.srv.data_dir, uri=True)
        try:
            return dict(db.execute('SELECT hash, data FROM chunk'))
        finally:
            db.close()

    def db_bytes(self):
        out = b''
        for suffix in ('', '-wal'):
            try:
                with open(os.path.join(self.srv.data_dir, 'ahilite.db' + suffix), 'rb') as f:
                    out += f.read()
            except FileNotFoundError:
                pass
        return out

    def test_delete_reclaims(self):
        sqlite = not ahltest.on_postgres()
        local = not ahltest.frames_in_bucket()
        generate(os.path.join(self.inputs, 'gcin', 'forget'), 12, '1.2.826.0.1.3680043.8.498.31.',
                 NAME, 31)
        keep = os.path.join(self.inputs, 'gcin', 'keep')
        generate(keep, 1, '1.2.826.0.1.3680043.8.498.32.', 'GCKEEP^OTHER', 31)
        ds_a = ahltest.create_active_datastore(self.c, 'gc-a')
        ds_b = ahltest.create_active_datastore(self.c, 'gc-b')
        # The set that stays is imported first: what it holds is not the deleted set's.
        self.import_dir(ds_b, 'keep')
        self.gc('--grace', '0')
        before = files_usage(self.srv.data_dir)
        self.import_dir(ds_a, 'forget')
        grown = files_usage(self.srv.data_dir)
        [gone] = self.sets(ds_a)
        [kept] = self.sets(ds_b)
        gone_frames = self.frames(ds_a, gone)
        [shared] = self.frames(ds_b, kept)
        self.assertEqual(len(gone_frames), 12)
        self.assertIn(shared, gone_frames)
        shared_bytes = self.frame(ds_b, kept, shared)
        own = [f for f in gone_frames if f != shared]
        stored = self.stored_bytes(own[0])
        run = stored[len(stored) // 2:len(stored) // 2 + 64]
        self.assertLessEqual(set(gone_frames), set(self.stored_frames()))
        if sqlite:
            chunks_before = self.chunks()
            self.assertIn(NAME.encode(), self.db_bytes())

        self.c.delete_image_set(datastoreId=ds_a, imageSetId=gone)
        if not local:
            time.sleep(1.1)  # an object's LastModified has whole seconds
        out = self.gc('--grace', '0')
        m = re.search(r'reclaimed: (\d+) versions?, (\d+) chunks? \((\d+) bytes\), (\d+) frame', out)
        self.assertIsNotNone(m, out)
        self.assertGreaterEqual(int(m.group(1)), 1, out)
        self.assertGreater(int(m.group(2)), 0, out)
        self.assertEqual(int(m.group(4)), len(own), out)

        # The set sharing one frame still serves it bit for bit; the check is clean.
        self.assertEqual(self.frame(ds_b, kept, shared), shared_bytes)
        self.check()
        if local:
            for f in own:
                self.assertFalse(os.path.exists(self.frame_path(f)), f)
            self.assertTrue(os.path.exists(self.frame_path(shared)))
            for path, data in all_bytes(self.srv.data_dir):
                self.assertNotIn(run, data, path)
        else:
            left = self.stored_frames()
            for f in own:
                self.assertNotIn(f, left)
            self.assertIn(shared, left)
            s3, bucket, _ = self.bucket()
            for key in left.values():
                self.assertNotIn(run, s3.get_object(Bucket=bucket, Key=key)['Body'].read(), key)
        if sqlite:
            after = self.chunks()
            removed = set(chunks_before) - set(after)
            self.assertEqual(len(removed), int(m.group(2)))
            raw = self.db_bytes()
            self.assertNotIn(NAME.encode(), raw)
            for h in removed:
                data = chunks_before[h]
                if len(data) >= 24:
                    self.assertNotIn(data, raw, 'chunk %s' % h.hex())
            usage = files_usage(self.srv.data_dir)
            print('data directory: %d bytes before the import, %d after it, %d after gc' %
                  (before, grown, usage), file=sys.stderr)
            self.assertGreater(grown - before, 300000)
            self.assertLess(abs(usage - before), before * 0.05,
                            'before %d after %d' % (before, usage))

    def test_copy_survives_its_source(self):
        generate(os.path.join(self.inputs, 'gcin', 'copy'), 3, '1.2.826.0.1.3680043.8.498.33.',
                 'GCCOPY^PATIENT', 33)
        ds = ahltest.create_active_datastore(self.c, 'gc-copy')
        self.import_dir(ds, 'copy')
        [src] = self.sets(ds)
        frames = {f: self.frame(ds, src, f) for f in self.frames(ds, src)}
        r = self.c.copy_image_set(datastoreId=ds, sourceImageSetId=src,
                                  copyImageSetInformation={'sourceImageSet': {
                                      'latestVersionId': '1'}})
        dst = r['destinationImageSetProperties']['imageSetId']
        self.c.delete_image_set(datastoreId=ds, imageSetId=src)
        out = self.gc('--grace', '0')
        self.assertIn('reclaimed: 1 version, 0 chunks', out)
        self.assertEqual(sorted(self.frames(ds, dst)), sorted(frames))
        for f, data in frames.items():
            self.assertEqual(self.frame(ds, dst, f), data)
        self.check()

    def test_dry_run_changes_nothing(self):
        generate(os.path.join(self.inputs, 'gcin', 'dry'), 2, '1.2.826.0.1.3680043.8.498.34.',
                 'GCDRY^PATIENT', 34)
        ds = ahltest.create_active_datastore(self.c, 'gc-dry')
        self.import_dir(ds, 'dry')
        [s] = self.sets(ds)
        self.c.delete_image_set(datastoreId=ds, imageSetId=s)
        listing = sorted(self.stored_frames())
        out = self.gc('--dry-run', '--grace', '0')
        self.assertRegex(out, r'reclaimable: \d+ versions? of \d+ deleted image sets?, [1-9]\d* '
                              r'chunks?')
        self.assertNotIn('reclaimed', out)
        self.assertEqual(sorted(self.stored_frames()), listing)
        again = self.gc('--dry-run', '--grace', '0')
        self.assertEqual(out.splitlines()[0], again.splitlines()[0])
        # `ahilite check` counts it as reclaimable, not as damage.
        self.assertRegex(self.check(), r'reclaimable \(not damage.*\): 1 version of 1 deleted '
                                       r'image set, [1-9]\d* chunks')
        self.gc('--grace', '0')
        self.assertNotIn('reclaimable', self.check())


class BackgroundGc(unittest.TestCase):
    """serve --gc-interval 1 --gc-grace 0 collects a deleted set by itself."""

    def test_background_pass(self):
        inputs = tempfile.mkdtemp(prefix='ahl-gcbg-in-')
        os.makedirs(os.path.join(inputs, 'gcout'))
        generate(os.path.join(inputs, 'gcin', 'bg'), 3, '1.2.826.0.1.3680043.8.498.35.',
                 'GCBACKGROUND^PATIENT', 35)
        srv = ahltest.Server(extra_args=['--s3-root', inputs, '--gc-interval', '1',
                                         '--gc-grace', '0'])
        try:
            c = ahltest.boto3_client(srv)
            ds = ahltest.create_active_datastore(c, 'gc-bg')
            r = c.start_dicom_import_job(
                jobName='bg', datastoreId=ds, clientToken='bg',
                dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole',
                inputS3Uri='s3://gcin/bg/', outputS3Uri='s3://gcout/bg/')
            self.assertEqual(ahltest.wait_import_job(c, ds, r['jobId'], 120)['jobStatus'],
                             'COMPLETED')
            [sid] = [x['imageSetId'] for x in
                     c.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']]
            c.delete_image_set(datastoreId=ds, imageSetId=sid)
            deadline = time.time() + 30
            while 'gc: removed' not in srv.log_text():
                self.assertLess(time.time(), deadline, srv.log_text())
                time.sleep(0.2)
            p = subprocess.run([ahltest.server_binary(), 'gc', '--dry-run', '--data-dir',
                                srv.data_dir, '--grace', '0'],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn('reclaimable: 0 versions of 0 deleted image sets, 0 chunks (0 bytes)',
                          p.stdout)
            if not ahltest.frames_in_bucket():
                self.assertIn(', 0 frames (0 bytes)', p.stdout)
        finally:
            srv.finish()
            shutil.rmtree(inputs, ignore_errors=True)


if __name__ == '__main__':
    unittest.main()
