#!/usr/bin/env python3
"""An import job started on node A completes after node A is killed with SIGKILL.

Node A starts alone on a PostgreSQL database and a bucket (multinode.py), so that it is the one
to claim the job: StartDICOMImportJob through A of a series of unique-pixel CT instances in an S3
input bucket. Once the job is IN_PROGRESS nodes B and C start, then A is killed (SIGKILL) while the
job runs. The job must still be IN_PROGRESS when B is first asked, then reach COMPLETED through B
once A's lease has lapsed (a short lease, JOB_ARGS), with every instance in SUCCESS and none in
FAILURE; the image set holds each instance once; `ahilite check` of the database and bucket is
clean.
"""
import gzip
import json
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import multinode  # noqa: E402

INSTANCES = int(os.environ.get('AHL_MULTINODE_JOB_INSTANCES', '300'))
UID_ROOT = '1.2.826.0.1.3680043.8.498.7311.'


class JobFailover(unittest.TestCase):
    def test_job_completes_after_its_node_dies(self):
        cluster = multinode.Cluster(1, extra_args=multinode.JOB_ARGS, tag='jobs')
        try:
            self.run_failover(cluster)
            cluster.stop_all()
            rc, out = cluster.check()
            self.assertEqual(rc, 0, out)
        finally:
            cluster.close()

    def run_failover(self, cluster):
        s3 = cluster.s3()
        s3.create_bucket(Bucket='jobs-in')
        s3.create_bucket(Bucket='jobs-out')
        with tempfile.TemporaryDirectory() as d:
            ahltest.write_series(INSTANCES, d, UID_ROOT, unique_pixels=True)
            for f in sorted(os.listdir(d)):
                s3.upload_file(os.path.join(d, f), 'jobs-in', 'series/' + f)
        a = ahltest.boto3_client(cluster.nodes[0])
        ds = ahltest.create_active_datastore(a, 'failover')
        job = a.start_dicom_import_job(
            datastoreId=ds, clientToken=multinode.new_token(), inputS3Uri='s3://jobs-in/series/',
            outputS3Uri='s3://jobs-out/o/',
            dataAccessRoleArn='arn:aws:iam::%s:role/r' % ahltest.ACCOUNT)['jobId']
        multinode.wait_until(lambda: a.get_dicom_import_job(datastoreId=ds, jobId=job)[
            'jobProperties']['jobStatus'] == 'IN_PROGRESS', 60, 'the job to start', 0.02)
        # B and C come up while A runs the job; then A dies with it half done.
        cluster.ports += [ahltest.free_port(), ahltest.free_port()]
        cluster.nodes += [None, None]
        cluster.start(1)
        cluster.start(2)
        time.sleep(0.5)
        cluster.kill(0)
        t_kill = time.monotonic()
        b = ahltest.boto3_client(cluster.nodes[1])
        status = b.get_dicom_import_job(datastoreId=ds, jobId=job)['jobProperties']['jobStatus']
        self.assertEqual(status, 'IN_PROGRESS', 'the job was not cut short by the kill; '
                         'raise AHL_MULTINODE_JOB_INSTANCES')
        p = ahltest.wait_import_job(b, ds, job, 600)
        print('job taken over and completed %.1f s after its node was killed' %
              (time.monotonic() - t_kill), flush=True)
        self.assertEqual(p['jobStatus'], 'COMPLETED', p)
        folder = 'o/%s-DicomImport-%s/' % (ds, job)

        def lines(key):
            try:
                body = s3.get_object(Bucket='jobs-out', Key=folder + key)['Body'].read()
            except s3.exceptions.NoSuchKey:
                return []
            return [json.loads(x) for x in body.decode().splitlines() if x.strip()]
        ok, bad = lines('SUCCESS/success.ndjson'), lines('FAILURE/failure.ndjson')
        self.assertEqual(bad, [])
        self.assertEqual(len(ok), INSTANCES, 'one SUCCESS line per instance')
        sets = b.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']
        self.assertEqual(len(sets), 1, 'the instances A imported are not imported twice: %r'
                         % sets)
        primary = sets
        blob = b.get_image_set_metadata(datastoreId=ds, imageSetId=primary[0]['imageSetId'])
        doc = json.loads(gzip.decompress(blob['imageSetMetadataBlob'].read()))
        instances = [uid for st in doc['Study']['Series'].values()
                     for uid in st['Instances']]
        self.assertEqual(len(instances), INSTANCES)
        self.assertEqual(sorted(instances),
                         sorted(UID_ROOT + '1.1.%d' % i for i in range(INSTANCES)))


if __name__ == '__main__':
    unittest.main(verbosity=2)
