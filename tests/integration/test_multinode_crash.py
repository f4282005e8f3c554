#!/usr/bin/env python3
"""SIGKILL of random nodes during imports and updates loses nothing acknowledged.

Three nodes on one PostgreSQL database and one bucket (multinode.py). For AHL_MULTINODE_SECONDS
(default 15): one client thread per image set loops UpdateImageSetMetadata through a random live
node, and another thread starts an import job every second or so, each of its own batch of
unique-pixel instances (a study of its own) in an S3 input bucket; meanwhile a node chosen at
random is killed with SIGKILL every 1.5-3 s and started again a moment later. A request cut by a
kill (or answered 5xx) is not acknowledged: the client reads the set's latest version through
another node and goes on; a ConflictException after such a failure means the cut request was
committed, which is allowed.

Afterwards, with every node up: every acknowledged update is the version it was acknowledged as,
with its PatientName, read through a node; no set went backwards; every acknowledged import job
reaches COMPLETED with each of its instances in SUCCESS and in its image set exactly once; then
the nodes stop (exit 0) and `ahilite check` of the database and bucket is clean.
"""
import gzip
import json
import os
import random
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import multinode  # noqa: E402

NODES = 3
SETS = 6
SECONDS = float(os.environ.get('AHL_MULTINODE_SECONDS', '15'))
BATCH = 8            # instances per import job
BATCHES = 16         # batches made ready (more than the run starts at one a second)
UID_SETS = '1.2.826.0.1.3680043.8.498.7312.%d.'
UID_JOBS = '1.2.826.0.1.3680043.8.498.7313.%d.'


class KillNodes(unittest.TestCase):
    def test_nothing_acknowledged_is_lost(self):
        cluster = multinode.Cluster(NODES, extra_args=multinode.JOB_ARGS, tag='crash')
        try:
            self.run_chaos(cluster)
            cluster.stop_all()
            rc, out = cluster.check()
            self.assertEqual(rc, 0, out)
        finally:
            cluster.close()

    def prepare(self, cluster, mi, ds):
        s3 = cluster.s3()
        for b in ('crash-in', 'crash-out'):
            s3.create_bucket(Bucket=b)
        with tempfile.TemporaryDirectory() as d:
            for k in range(SETS):
                sub = os.path.join(d, 's%d' % k)
                os.makedirs(sub)
                ahltest.write_series(1, sub, UID_SETS % k)
                s3.upload_file(os.path.join(sub, 'i00000.dcm'), 'crash-in', 'sets/%d.dcm' % k)
            for j in range(BATCHES):
                sub = os.path.join(d, 'b%d' % j)
                os.makedirs(sub)
                ahltest.write_series(BATCH, sub, UID_JOBS % j, unique_pixels=True)
                for f in os.listdir(sub):
                    s3.upload_file(os.path.join(sub, f), 'crash-in', 'b%d/%s' % (j, f))
        job = mi.start_dicom_import_job(
            datastoreId=ds, clientToken=multinode.new_token(), inputS3Uri='s3://crash-in/sets/',
            outputS3Uri='s3://crash-out/sets/',
            dataAccessRoleArn='arn:aws:iam::%s:role/r' % ahltest.ACCOUNT)
        p = ahltest.wait_import_job(mi, ds, job['jobId'], 300)
        self.assertEqual(p['jobStatus'], 'COMPLETED', p)
        sets = [s['imageSetId'] for s in mi.search_image_sets(
            datastoreId=ds, maxResults=50)['imageSetsMetadataSummaries']]
        self.assertEqual(len(sets), SETS)
        return s3, sets

    def run_chaos(self, cluster):
        mi = ahltest.boto3_client(cluster.nodes[0])
        ds = ahltest.create_active_datastore(mi, 'crash')
        s3, sets = self.prepare(cluster, mi, ds)
        endpoints = cluster.endpoints()
        stop = threading.Event()
        acked = {}          # set -> {version: PatientName}
        jobs = []           # (job id, batch)
        errors = []
        cut = [0]
        lock = threading.Lock()
        rng = random.Random(int(os.environ.get('AHL_MULTINODE_SEED', '0')) or None)

        def latest(sid, avoid):
            """The set's latest version, asked of nodes other than `avoid` until one answers."""
            for _ in range(200):
                for i in rng.sample(range(NODES), NODES):
                    if i == avoid:
                        continue
                    c = multinode.Client(endpoints[i], timeout=10)
                    try:
                        return int(c.get_image_set(ds, sid)['versionId'])
                    except Exception:
                        pass
                    finally:
                        c.close()
                time.sleep(0.1)
            raise AssertionError('no node answered GetImageSet')

        def updater(k, sid):
            clients = [multinode.Client(e, timeout=20) for e in endpoints]
            mine = acked.setdefault(sid, {})
            version = latest(sid, None)
            n = 0
            try:
                while not stop.is_set():
                    i = rng.randrange(NODES)
                    name = 'CRASH^%d^%d' % (k, n)
                    n += 1
                    try:
                        clients[i].update_send(ds, sid, version, {
                            'SchemaVersion': 1.1, 'Patient': {'DICOM': {'PatientName': name}}})
                        status, etype, body = clients[i].receive()
                    except Exception:
                        clients[i].close()
                        with lock:
                            cut[0] += 1
                        version = latest(sid, i)
                        continue
                    if status == 200:
                        new = int(json.loads(body)['latestVersionId'])
                        if new != version + 1:
                            errors.append('%s: version %d acknowledged after %d' % (
                                sid, new, version))
                            return
                        mine[new] = name
                        version = new
                    elif status == 409 or status >= 500:
                        # A request cut earlier may have committed (409), or the node was dying.
                        version = latest(sid, i)
                    else:
                        errors.append('%s: %d %s %r' % (sid, status, etype, body[:200]))
                        return
            except Exception as e:
                errors.append(repr(e))
            finally:
                for c in clients:
                    c.close()

        def importer():
            j = 0
            while not stop.is_set() and j < BATCHES:
                i = rng.randrange(NODES)
                c = multinode.Client(endpoints[i], timeout=20)
                body = json.dumps({
                    'jobName': 'b%d' % j, 'clientToken': multinode.new_token(),
                    'inputS3Uri': 's3://crash-in/b%d/' % j, 'outputS3Uri': 's3://crash-out/b/',
                    'dataAccessRoleArn': 'arn:aws:iam::%s:role/r' % ahltest.ACCOUNT})
                try:
                    status, etype, resp = c.call('POST', '/startDICOMImportJob/datastore/%s' % ds,
                                                 body=body)
                except Exception:
                    status = None
                finally:
                    c.close()
                if status == 200:
                    jobs.append((json.loads(resp)['jobId'], j))
                    j += 1
                elif status is not None and status < 500:
                    errors.append('StartDICOMImportJob: %d %s %r' % (status, etype, resp[:200]))
                    return
                time.sleep(1.0)

        kills = [0]

        def killer():
            while not stop.wait(rng.uniform(1.5, 3.0)):
                i = rng.randrange(NODES)
                cluster.kill(i)
                kills[0] += 1
                time.sleep(rng.uniform(0.2, 1.0))
                try:
                    cluster.start(i)
                except Exception as e:
                    errors.append('node %d did not start again: %r' % (i, e))
                    return

        threads = [threading.Thread(target=updater, args=(k, sid)) for k, sid in enumerate(sets)]
        threads += [threading.Thread(target=importer)]
        chaos = threading.Thread(target=killer)
        for t in threads + [chaos]:
            t.start()
        time.sleep(SECONDS)
        stop.set()
        chaos.join()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        n_acked = sum(len(v) for v in acked.values())
        print('%.0f s: %d kills, %d updates acknowledged, %d cut by a kill, %d import jobs '
              'started' % (SECONDS, kills[0], n_acked, cut[0], len(jobs)), flush=True)
        self.assertGreater(kills[0], 0)
        self.assertGreater(n_acked, 0)
        self.assertGreater(len(jobs), 0)
        for i in range(NODES):
            if cluster.nodes[i] is None:
                cluster.start(i)
        self.verify_updates(endpoints, ds, acked)
        self.verify_jobs(cluster, s3, ds, jobs)

    def verify_updates(self, endpoints, ds, acked):
        c = multinode.Client(endpoints[0])
        try:
            for sid, versions in acked.items():
                if not versions:
                    continue
                now = int(c.get_image_set(ds, sid)['versionId'])
                self.assertGreaterEqual(now, max(versions))
                for v, name in versions.items():
                    got = multinode.patient_name(c.metadata(ds, sid, v))
                    self.assertEqual(got, name, '%s version %d' % (sid, v))
        finally:
            c.close()

    def verify_jobs(self, cluster, s3, ds, jobs):
        b = ahltest.boto3_client(cluster.nodes[1])
        for job, j in jobs:
            p = ahltest.wait_import_job(b, ds, job, 300)
            self.assertEqual(p['jobStatus'], 'COMPLETED', p)
            key = 'b/%s-DicomImport-%s/SUCCESS/success.ndjson' % (ds, job)
            ok = s3.get_object(Bucket='crash-out', Key=key)['Body'].read().decode().splitlines()
            self.assertEqual(len([x for x in ok if x.strip()]), BATCH, job)
            study = (UID_JOBS % j) + '1'
            found = b.search_image_sets(datastoreId=ds, searchCriteria={'filters': [{
                'values': [{'DICOMStudyInstanceUID': study}], 'operator': 'EQUAL'}]})[
                'imageSetsMetadataSummaries']
            self.assertEqual(len(found), 1, 'batch %d: %r' % (j, found))
            blob = b.get_image_set_metadata(datastoreId=ds, imageSetId=found[0]['imageSetId'])
            doc = json.loads(gzip.decompress(blob['imageSetMetadataBlob'].read()))
            uids = sorted(u for s in doc['Study']['Series'].values() for u in s['Instances'])
            self.assertEqual(uids, sorted((UID_JOBS % j) + '1.1.%d' % i for i in range(BATCH)))


if __name__ == '__main__':
    unittest.main(verbosity=2)
