#!/usr/bin/env python3
"""An import job whose node is killed (SIGKILL) half done is taken over by another node on the
same data directory once the dead node's lease has expired, and completes with whole outputs
(the first of its two commit batches was committed by the dead node, the second by the other):
every input object in SUCCESS exactly once, nothing in FAILURE, one image set holding every
instance once. The second node's log says it ran the job as attempt 2.

Both nodes are `ahilite serve` processes on one SQLite data directory, with a short lease
(--job-lease-ms 1000 --job-poll-ms 100). The job's objects have unique pixels, so that the job
takes long enough for the kill to cut it.
"""
# pg: no (two nodes on one SQLite data directory; test_multinode_jobs.py kills a node running a job on PostgreSQL)
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

INSTANCES = 1000  # more than one commit batch (512): the kill comes between two
UID_ROOT = '1.2.826.0.1.3680043.8.498.7312.'
LEASE_ARGS = ['--job-lease-ms', '1000', '--job-poll-ms', '100']


class JobTakeover(unittest.TestCase):
    def setUp(self):
        ahltest.skip_on_postgres('two nodes on one SQLite data directory')
        self.tmp = ahltest.tempfile.mkdtemp(prefix='ahilite-takeover-')
        self.data = os.path.join(self.tmp, 'data')
        self.creds = os.path.join(self.tmp, 'credentials')
        with open(self.creds, 'w') as f:
            f.write('[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' %
                    (ahltest.ACCESS_KEY, ahltest.SECRET_KEY))
        self.procs = []

    def tearDown(self):
        for p, log in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
        ahltest.shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, name):
        """A node on the shared data directory; returns (process, endpoint, log path)."""
        port = ahltest.free_port()
        log_path = os.path.join(self.tmp, name + '.log')
        log = open(log_path, 'w')
        p = subprocess.Popen([ahltest.server_binary(), 'serve', '--data-dir', self.data,
                              '--listen', '127.0.0.1:%d' % port, '--credentials', self.creds,
                              '--region', ahltest.REGION, '--account-id', ahltest.ACCOUNT,
                              '--workers', '1', '--http-threads', '2'] + LEASE_ARGS,
                             stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((p, log))
        endpoint = 'http://127.0.0.1:%d' % port
        deadline = time.time() + 20
        while True:
            if p.poll() is not None:
                with open(log_path) as f:
                    self.fail('node %s exited: %s' % (name, f.read()))
            try:
                if ahltest.raw('GET', endpoint, '/datastore')[0] == 200:
                    break
            except OSError:
                pass
            self.assertLess(time.time(), deadline, 'node %s did not start' % name)
            time.sleep(0.05)

        class Node:
            pass
        n = Node()
        n.endpoint, n.proc, n.log_path = endpoint, p, log_path
        return n

    def test_killed_node_job_taken_over(self):
        inp = os.path.join(self.data, 'buckets', 'jobs-in', 'series')
        os.makedirs(inp)
        os.makedirs(os.path.join(self.data, 'buckets', 'jobs-out'))
        ahltest.write_series(INSTANCES, inp, UID_ROOT, unique_pixels=True)
        a = self.start('a')
        ca = ahltest.boto3_client(a)
        ds = ahltest.create_active_datastore(ca, 'takeover')
        job = ca.start_dicom_import_job(
            datastoreId=ds, clientToken='takeover-1', inputS3Uri='s3://jobs-in/series/',
            outputS3Uri='s3://jobs-out/o/',
            dataAccessRoleArn='arn:aws:iam::%s:role/r' % ahltest.ACCOUNT)['jobId']
        deadline = time.time() + 60
        while ca.get_dicom_import_job(datastoreId=ds, jobId=job)['jobProperties'][
                'jobStatus'] != 'IN_PROGRESS':
            self.assertLess(time.time(), deadline, 'the job did not start')
            time.sleep(0.02)
        # Killed once the first batch of instances is committed (the image set exists).
        while not ca.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']:
            self.assertLess(time.time(), deadline, 'no instance committed')
            time.sleep(0.01)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        t_kill = time.monotonic()

        b = self.start('b')
        cb = ahltest.boto3_client(b)
        status = cb.get_dicom_import_job(datastoreId=ds, jobId=job)['jobProperties']['jobStatus']
        self.assertEqual(status, 'IN_PROGRESS', 'the job ended before the kill; nothing tested')
        p = ahltest.wait_import_job(cb, ds, job, 600)
        print('job taken over and completed %.1f s after its node was killed' %
              (time.monotonic() - t_kill), flush=True)
        self.assertEqual(p['jobStatus'], 'COMPLETED', p)

        folder = os.path.join(self.data, 'buckets', 'jobs-out', 'o', '%s-DicomImport-%s' % (ds, job))
        with open(os.path.join(folder, 'SUCCESS', 'success.ndjson')) as f:
            ok = [json.loads(x) for x in f if x.strip()]
        with open(os.path.join(folder, 'FAILURE', 'failure.ndjson')) as f:
            self.assertEqual(f.read(), '')
        files = sorted(x['inputFile'] for x in ok)
        self.assertEqual(len(files), INSTANCES)
        self.assertEqual(len(set(files)), INSTANCES)
        sets = {x['importResponse']['imageSetId'] for x in ok}
        self.assertEqual(len(sets), 1)
        with open(os.path.join(folder, 'job-output-manifest.json')) as f:
            summary = json.load(f)['jobSummary']
        self.assertEqual(summary['numberOfScannedFiles'], INSTANCES)
        self.assertEqual(summary['numberOfImportedFiles'], INSTANCES)
        self.assertEqual(summary['numberOfGeneratedImageSets'], 1)

        found = cb.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']
        self.assertEqual(len(found), 1)
        meta = cb.get_image_set_metadata(datastoreId=ds, imageSetId=sets.pop())
        doc = json.loads(gzip.decompress(meta['imageSetMetadataBlob'].read()))
        n = sum(len(s['Instances']) for s in doc['Study']['Series'].values())
        self.assertEqual(n, INSTANCES)
        with open(b.log_path) as f:
            self.assertRegex(f.read(), r'import job %s: started on node \S+, attempt 2' % job)
        b.proc.send_signal(signal.SIGTERM)
        self.assertEqual(b.proc.wait(timeout=15), 0)


if __name__ == '__main__':
    unittest.main()
