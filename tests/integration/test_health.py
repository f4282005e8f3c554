"""GET /health on `ahilite serve`: answered without credentials, it says only whether the store
can be read ({"status":"ok"}), never which data stores, image sets, counts or versions exist; it
takes GET and HEAD only and no body, and paths beside it are not public."""
# pg: full (one read transaction, as every suite's requests make; the 503 renames a table on either)
import json
import os
import sqlite3
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402


def request(srv, path, method='GET', data=None):
    req = urllib.request.Request(srv.endpoint + path, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def rename(srv, table, to):
    sql = 'ALTER TABLE %s RENAME TO %s' % (table, to)
    if ahltest.on_postgres():
        subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d',
                        ahltest.database_for(srv.data_dir), '-c', sql], check=True, timeout=60)
        return
    db = sqlite3.connect(os.path.join(srv.data_dir, 'ahilite.db'), timeout=30)
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


class Health(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = ahltest.Server()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()

    def test_ok_without_credentials(self):
        status, headers, body = request(self.srv, '/health')
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {'status': 'ok'})
        self.assertEqual(headers['Content-Type'], 'application/json')
        self.assertEqual(headers['Cache-Control'], 'no-store')
        self.assertRegex(headers['x-amzn-RequestId'], r'^[0-9a-f-]{36}$')
        status, _, body = request(self.srv, '/health?verbose=1')
        self.assertEqual((status, json.loads(body)), (200, {'status': 'ok'}))
        status, headers, body = request(self.srv, '/health', method='HEAD')
        self.assertEqual((status, body), (200, b''))
        self.assertIn('Health 200', self.srv.log_text())

    def test_reveals_nothing(self):
        _, before_headers, before = request(self.srv, '/health')
        client = ahltest.boto3_client(self.srv)
        ds = ahltest.create_active_datastore(client, 'health-secret-name')
        client.tag_resource(resourceArn=client.get_datastore(datastoreId=ds)
                            ['datastoreProperties']['datastoreArn'], tags={'k': 'v'})
        _, after_headers, after = request(self.srv, '/health')
        self.assertEqual(before, after)
        self.assertEqual(after, b'{"status":"ok"}')
        everything = after.decode() + json.dumps(after_headers)
        for secret in (ds, 'health-secret-name', ahltest.ACCESS_KEY, ahltest.ACCOUNT):
            self.assertNotIn(secret, everything)
        self.assertEqual(sorted(k.lower() for k in before_headers),
                         sorted(k.lower() for k in after_headers))

    def test_methods_and_bodies_refused(self):
        status, _, body = request(self.srv, '/health', method='POST', data=b'')
        self.assertEqual(status, 405, body)
        self.assertIn('GET and HEAD only', json.loads(body)['message'])
        status, _, body = request(self.srv, '/health', method='GET', data=b'{"a":1}')
        self.assertEqual(status, 400, body)
        self.assertIn('no request body', json.loads(body)['message'])

    def test_unreadable_store_is_503(self):
        # Another process renames the table the check reads: the store can no longer be read.
        rename(self.srv, 'datastore', 'datastore_away')
        try:
            status, headers, body = request(self.srv, '/health')
        finally:
            rename(self.srv, 'datastore_away', 'datastore')
        self.assertEqual(status, 503, body)
        self.assertEqual(json.loads(body), {'status': 'unavailable',
                                            'reason': 'the store cannot be read'})
        self.assertNotIn('datastore_away', body.decode())
        rid = headers['x-amzn-RequestId']
        deadline = time.monotonic() + 10
        while rid not in self.srv.log_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIn('Health 503', self.srv.log_text())
        status, _, body = request(self.srv, '/health')
        self.assertEqual((status, body), (200, b'{"status":"ok"}'))

    def test_neighbours_are_not_public(self):
        for path in ('/health/', '/healthz', '/health/x', '/datastore'):
            status, _, body = request(self.srv, path)
            self.assertIn(status, (400, 403, 404), (path, body))
            self.assertNotEqual(body, b'{"status":"ok"}')


if __name__ == '__main__':
    unittest.main()
