#!/usr/bin/env python3
"""Racing UpdateImageSetMetadata through three nodes on one PostgreSQL and one bucket: exactly one
winner per version, and no update lost.

Three `ahilite serve` nodes share a database and a bucket (multinode.py). Image sets of one CT
instance each are imported by an import job through one node. Then one thread per image set runs
rounds: it sends the same update with the same latestVersionId through all three nodes at once
(three keep-alive connections, all three requests written before any answer is read), each
naming its node and round in PatientName. In every round exactly one node must answer 200 with
the next version, the other two ConflictException; every node must win some rounds. Afterwards
every image set has exactly one version per round plus the first, and each version's metadata,
read back through a node other than its winner, holds the winner's PatientName.

AHL_MULTINODE_ROUNDS sets the rounds in total (default 1,500 for CI; bench/RESULTS.md records a
run of 10,000). Prints the rounds per second.
"""
import json
import os
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import multinode  # noqa: E402

NODES = 3
SETS = 8
ROUNDS = int(os.environ.get('AHL_MULTINODE_ROUNDS', '1500'))
UID_ROOT = '1.2.826.0.1.3680043.8.498.7310.%d.'


def import_sets(cluster, mi, ds, n, tag):
    """n image sets of one instance each (a study each), imported by one job through node 0;
    returns their ids."""
    s3 = cluster.s3()
    bucket = 'mn-in-' + tag
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket + '-out')
    with tempfile.TemporaryDirectory() as d:
        for k in range(n):
            sub = os.path.join(d, str(k))
            os.makedirs(sub)
            ahltest.write_series(1, sub, UID_ROOT % k)
            s3.upload_file(os.path.join(sub, 'i00000.dcm'), bucket, 'in/%d.dcm' % k)
    job = mi.start_dicom_import_job(
        datastoreId=ds, clientToken=multinode.new_token(), inputS3Uri='s3://%s/in/' % bucket,
        outputS3Uri='s3://%s-out/o/' % bucket,
        dataAccessRoleArn='arn:aws:iam::%s:role/r' % ahltest.ACCOUNT)
    p = ahltest.wait_import_job(mi, ds, job['jobId'], 300)
    assert p['jobStatus'] == 'COMPLETED', p
    sets = [s['imageSetId'] for s in mi.search_image_sets(
        datastoreId=ds, maxResults=50)['imageSetsMetadataSummaries']]
    assert len(sets) == n, sets
    return sets


class RacingUpdates(unittest.TestCase):
    def test_one_winner_per_version_no_lost_update(self):
        cluster = multinode.Cluster(NODES, tag='race')
        try:
            self.run_race(cluster)
            cluster.stop_all()
            rc, out = cluster.check()
            self.assertEqual(rc, 0, out)
        finally:
            cluster.close()

    def run_race(self, cluster):
        mi = ahltest.boto3_client(cluster.nodes[0])
        ds = ahltest.create_active_datastore(mi, 'race')
        sets = import_sets(cluster, mi, ds, SETS, 'race')
        endpoints = cluster.endpoints()
        won = {}           # (set, version) -> (PatientName, node)
        wins = [0] * NODES
        errors = []
        lock = threading.Lock()
        rounds = [ROUNDS // SETS + (1 if k < ROUNDS % SETS else 0) for k in range(SETS)]

        def racer(k, sid):
            clients = [multinode.Client(e) for e in endpoints]
            version = int(clients[0].get_image_set(ds, sid)['versionId'])
            try:
                for r in range(rounds[k]):
                    order = [(r + j) % NODES for j in range(NODES)]
                    names = {}
                    for i in order:
                        names[i] = 'RACE^%d^%d^N%d' % (k, r, i)
                        clients[i].update_send(ds, sid, version, {
                            'SchemaVersion': 1.1,
                            'Patient': {'DICOM': {'PatientName': names[i]}}})
                    answers = {i: clients[i].receive() for i in order}
                    winners = [i for i, a in answers.items() if a[0] == 200]
                    if len(winners) != 1:
                        raise AssertionError('set %d round %d: %d winners: %r' % (
                            k, r, len(winners), answers))
                    for i, (status, etype, body) in answers.items():
                        if i != winners[0] and (status != 409 or
                                                'ConflictException' not in (etype or '')):
                            raise AssertionError('set %d round %d node %d: %d %s %r' % (
                                k, r, i, status, etype, body[:200]))
                    w = winners[0]
                    new = int(json.loads(answers[w][2])['latestVersionId'])
                    if new != version + 1:
                        raise AssertionError('set %d round %d: version %d after %d' % (
                            k, r, new, version))
                    with lock:
                        won[(sid, new)] = (names[w], w)
                        wins[w] += 1
                    version = new
            except Exception as e:
                errors.append(repr(e))
            finally:
                for c in clients:
                    c.close()

        threads = [threading.Thread(target=racer, args=(k, sid)) for k, sid in enumerate(sets)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        self.assertEqual(errors, [])
        print('%d rounds (%d updates sent) through %d nodes in %.1f s: %.0f rounds/s, wins per '
              'node %r' % (ROUNDS, ROUNDS * NODES, NODES, wall, ROUNDS / wall, wins), flush=True)
        self.assertEqual(len(won), ROUNDS)
        self.assertTrue(all(wins), 'every node won rounds: %r' % wins)
        self.verify(endpoints, ds, sets, rounds, won)

    def verify(self, endpoints, ds, sets, rounds, won):
        """Every set has exactly its rounds + 1 versions; each holds its winner's update, read
        through another node."""
        errors = []
        for k, sid in enumerate(sets):
            c = multinode.Client(endpoints[k % NODES])
            versions = sorted(int(v) for v in multinode.list_versions(c, ds, sid))
            c.close()
            if versions != list(range(1, rounds[k] + 2)):
                errors.append('set %s: versions %r... (%d), expected 1..%d' % (
                    sid, versions[:5], len(versions), rounds[k] + 1))
        self.assertEqual(errors, [])
        items = sorted(won.items())
        checked = [0]

        def reader(part):
            clients = [multinode.Client(e) for e in endpoints]
            try:
                for (sid, v), (name, node) in part:
                    got = multinode.patient_name(
                        clients[(node + 1) % NODES].metadata(ds, sid, v))
                    if got != name:
                        errors.append('%s version %d: %r, the winner wrote %r' % (
                            sid, v, got, name))
                    checked[0] += 1
            except Exception as e:
                errors.append(repr(e))
            finally:
                for c in clients:
                    c.close()
        threads = [threading.Thread(target=reader, args=(items[j::6],)) for j in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors[:5], [])
        self.assertEqual(checked[0], len(won))


if __name__ == '__main__':
    unittest.main(verbosity=2)
