"""kill -9 in the middle of a collection and of an import leaves nothing broken.

A study of 40 instances is imported and its set deleted; `ahilite gc --grace 0 --batch 1
--pause 10` (one deletion per transaction) is killed with SIGKILL part way through its sweep,
then the server is killed while an import job runs. A server started again on the data
directory: `ahilite check` is clean (what was left is reclaimable, not damage), a new `ahilite gc`
finishes the work and the check stays clean, and the deleted set's frames are gone.
"""
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
from test_gc import generate  # noqa: E402


class GcCrash(unittest.TestCase):
    def test_kill_mid_gc_and_mid_import(self):
        inputs = tempfile.mkdtemp(prefix='ahl-gccrash-in-')
        os.makedirs(os.path.join(inputs, 'crout'))
        generate(os.path.join(inputs, 'crin', 'a'), 40, '1.2.826.0.1.3680043.8.498.61.',
                 'GCCRASH^A', 61)
        generate(os.path.join(inputs, 'crin', 'b'), 40, '1.2.826.0.1.3680043.8.498.62.',
                 'GCCRASH^B', 62)
        srv = ahltest.Server(extra_args=['--s3-root', inputs])
        again = None
        try:
            c = ahltest.boto3_client(srv)
            ds = ahltest.create_active_datastore(c, 'gc-crash')
            r = c.start_dicom_import_job(
                jobName='a', datastoreId=ds, clientToken='a',
                dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole',
                inputS3Uri='s3://crin/a/', outputS3Uri='s3://crout/a/')
            self.assertEqual(ahltest.wait_import_job(c, ds, r['jobId'], 180)['jobStatus'],
                             'COMPLETED')
            [sid] = [s['imageSetId'] for s in
                     c.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']]
            blob = c.get_image_set_metadata(datastoreId=ds, imageSetId=sid)
            doc = json.loads(gzip.decompress(blob['imageSetMetadataBlob'].read()))
            frames = [f['ID'] for se in doc['Study']['Series'].values()
                      for i in se['Instances'].values() for f in i['ImageFrames']]
            self.assertEqual(len(frames), 40)
            c.delete_image_set(datastoreId=ds, imageSetId=sid)

            gc = subprocess.Popen([ahltest.server_binary(), 'gc', '--data-dir', srv.data_dir,
                                   '--grace', '0', '--batch', '1', '--pause', '50'],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(random.uniform(0.4, 0.8))
            self.assertIsNone(gc.poll(), 'gc ended before it could be killed: ' +
                              gc.communicate()[0])
            gc.send_signal(signal.SIGKILL)
            gc.wait()

            c.start_dicom_import_job(
                jobName='b', datastoreId=ds, clientToken='b',
                dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole',
                inputS3Uri='s3://crin/b/', outputS3Uri='s3://crout/b/')
            time.sleep(random.uniform(0.3, 1.0))
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
            data = srv.data_dir
            again = ahltest.Server(before_start=lambda s: shutil.copytree(data, s.data_dir),
                                   extra_args=['--s3-root', inputs])
        finally:
            srv.log.close()
            srv.cleanup()
        try:
            self.check(again)
            p = subprocess.run([ahltest.server_binary(), 'gc', '--data-dir', again.data_dir,
                                '--grace', '0'], capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertRegex(p.stdout, r'reclaimed: \d+ versions?, \d+ chunks?')
            self.check(again)
            if not ahltest.frames_in_bucket():
                for f in frames:
                    self.assertFalse(os.path.exists(os.path.join(
                        again.data_dir, 'frames', f[:2], f[2:4], f)), f)
            self.assertEqual(again.stop(), 0)
        finally:
            again.log.close()
            again.cleanup()
            shutil.rmtree(inputs, ignore_errors=True)

    def check(self, srv):
        p = subprocess.run([ahltest.server_binary(), 'check', '--data-dir', srv.data_dir],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn('damage', p.stdout)


if __name__ == '__main__':
    unittest.main()
