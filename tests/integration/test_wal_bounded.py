"""The SQLite write-ahead log stays bounded under a sustained mix of reads and updates.

Six clients loop UpdateImageSetMetadata, GetImageSet and GetImageSetMetadata on one image set
while the test samples the size of ahilite.db-wal. Readers that overlap one another keep a passive
checkpoint from ever copying the whole log back, so without a checkpoint that waits for them the
log only grows (1.6 GB in two minutes once). The log must stay under 64 MB throughout and the
server must answer every request; conflicts between the updaters are expected and retried.
"""
# pg: no (the size of SQLite's WAL; skips on PostgreSQL)
import base64
import http.client
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

INSTANCES = 1000
CLIENTS = 6
LOAD_SECONDS = 35
WAL_LIMIT = 64 * 1024 * 1024

def import_series(server):
    # About 95 KB of gzipped metadata, so a metadata read lasts long enough to overlap others.
    ahltest.import_series(server, INSTANCES, '1.2.826.0.1.3680043.9.7781.2.', 'wal')


def call(conn, method, path, query='', body=None):
    """One request signed with botocore's SigV4 signer on a kept-alive connection."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    url = 'http://127.0.0.1:%d%s%s' % (conn.port, path, '?' + query if query else '')
    req = AWSRequest(method=method, url=url, data=body,
                     headers={'Content-Type': 'application/json'} if body else {})
    SigV4Auth(Credentials(ahltest.ACCESS_KEY, ahltest.SECRET_KEY), 'medical-imaging',
              ahltest.REGION).add_auth(req)
    conn.request(method, path + ('?' + query if query else ''), body=body,
                 headers=dict(req.headers.items()))
    r = conn.getresponse()
    return r.status, r.read()


class WalBounded(unittest.TestCase):
    def test_wal_stays_bounded_under_mixed_load(self):
        srv = ahltest.Server(before_start=import_series)
        try:
            self.run_load(srv)
        finally:
            rc = srv.stop()
            log = srv.log_text()
            srv.cleanup()
        self.assertEqual(rc, 0, log)

    def run_load(self, srv):
        mi = ahltest.boto3_client(srv)
        ds = mi.list_datastores()['datastoreSummaries'][0]['datastoreId']
        sid = mi.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries'][0]['imageSetId']
        wal = os.path.join(srv.data_dir, 'ahilite.db-wal')
        stop = threading.Event()
        errors = []
        counts = {'updates': 0, 'conflicts': 0, 'reads': 0}
        lock = threading.Lock()

        def client(n):
            # Raw signed requests on one keep-alive connection: boto3's own overhead would keep
            # six Python threads from loading the server enough.
            conn = http.client.HTTPConnection('127.0.0.1', srv.port, timeout=30)
            base = '/datastore/%s/imageSet/%s' % (ds, sid)
            i = 0
            try:
                while not stop.is_set():
                    i += 1
                    status, body = call(conn, 'POST', base + '/getImageSet')
                    if status != 200:
                        raise AssertionError('GetImageSet: %d %r' % (status, body[:200]))
                    latest = json.loads(body)['versionId']
                    # Incompressible text, so each version stores a few pages of new chunks.
                    doc = {'SchemaVersion': 1.1, 'Patient': {'DICOM': {
                        'PatientName': 'CLIENT%d^UPDATE%d' % (n, i),
                        'PatientComments': base64.b64encode(os.urandom(6000)).decode()}}}
                    status, body = call(conn, 'POST', base + '/updateImageSetMetadata',
                                        'latestVersion=' + latest, json.dumps({'DICOMUpdates': {
                                            'updatableAttributes': base64.b64encode(
                                                json.dumps(doc).encode()).decode()}}))
                    if status not in (200, 409):
                        raise AssertionError('UpdateImageSetMetadata: %d %r' % (status, body))
                    key = 'updates' if status == 200 else 'conflicts'
                    status, body = call(conn, 'POST', base + '/getImageSetMetadata')
                    if status != 200:
                        raise AssertionError('GetImageSetMetadata: %d %r' % (status, body[:200]))
                    with lock:
                        counts[key] += 1
                        counts['reads'] += 2
            except Exception as e:  # noqa: BLE001 - any failure of a client fails the test
                errors.append('client %d: %r' % (n, e))
                stop.set()
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        peak = 0
        deadline = time.time() + LOAD_SECONDS
        while time.time() < deadline and not stop.is_set():
            try:
                peak = max(peak, os.path.getsize(wal))
            except FileNotFoundError:
                pass
            if peak > WAL_LIMIT:
                break
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        print('WAL peak %.1f MB, database %.1f MB, %r' % (
            peak / 1e6, os.path.getsize(os.path.join(srv.data_dir, 'ahilite.db')) / 1e6, counts),
            file=sys.stderr)
        self.assertEqual(errors, [])
        self.assertGreater(counts['updates'], 0)
        self.assertLess(peak, WAL_LIMIT, 'the WAL grew to %d bytes' % peak)


if __name__ == '__main__':
    ahltest.skip_on_postgres("it measures SQLite's WAL file")
    unittest.main()
