"""Several `ahilite serve` nodes on one PostgreSQL database and one S3 bucket, for the multi-node
suites (test_multinode*.py) and bench/nodes.py.

Cluster(n) starts n nodes, each with a data directory of its own (scratch only) and the same
--database and --blob-store: a fresh schema of the PostgreSQL named by AHL_TEST_DATABASE and a
fresh prefix of AHL_TEST_BLOB_STORE on AHL_TEST_S3_ENDPOINT (CTest's fixtures, through
tests/pg/on_storage.sh); without them it starts a cluster (tests/pg/cluster.sh) and a moto_server
(tests/pg/moto.sh) of its own and stops them in close(). Import jobs read their input from the
same endpoint (--s3-endpoint). kill(i) is SIGKILL, restart(i) starts node i again on its port.

Client is a SigV4-signing HTTP client on keep-alive connections (http.client and botocore's
signer), fast enough for tens of thousands of requests from one Python process: send() writes a
request without reading its answer, so that requests to several nodes can be in flight at once.
"""
import gzip
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

PG = os.path.join(ahltest.SRC, 'tests', 'pg')
# serve's options for a short import-job lease, so that a dead node's job is taken over within
# seconds, and enough attempts for a job whose nodes are killed again and again
# (docs/commands.md#ahilite-serve, docs/import.md#several-nodes).
JOB_ARGS = os.environ.get('AHL_MULTINODE_JOB_ARGS', '--job-lease-ms 3000 --job-poll-ms 250 '
                          '--job-max-attempts 50').split()


class Cluster:
    def __init__(self, nodes=3, extra_args=(), tag='mn'):
        self.tmp = tempfile.mkdtemp(prefix='ahilite-%s-' % tag)
        self.own_pg = self.own_s3 = None
        os.environ.setdefault('AWS_ACCESS_KEY_ID', 'testing')
        os.environ.setdefault('AWS_SECRET_ACCESS_KEY', 'testing')
        os.environ.setdefault('AWS_REGION', 'us-east-1')
        base = os.environ.get('AHL_TEST_DATABASE')
        if not base:
            # As root the cluster runs as user postgres, which must reach its directory.
            os.chmod(self.tmp, 0o711)
            self.own_pg = os.path.join(self.tmp, 'pg')
            base = self._run(['bash', os.path.join(PG, 'cluster.sh'), 'start', self.own_pg])
        self.base_database = base
        self.database = ahltest.database_for(os.path.join(self.tmp, 'shared'), base)
        self.schema = ahltest._schema_of(os.path.join(self.tmp, 'shared'))
        store = os.environ.get('AHL_TEST_BLOB_STORE')
        self.endpoint = os.environ.get('AHL_TEST_S3_ENDPOINT')
        if not store or not self.endpoint:
            self.own_s3 = os.path.join(self.tmp, 's3')
            self.endpoint = self._run(['bash', os.path.join(PG, 'moto.sh'), 'start',
                                       self.own_s3])
            store = 's3://ahl-test/mn'
        self.blob_store = store.rstrip('/') + '/' + self.schema
        self.extra_args = list(extra_args)
        self.ports = [ahltest.free_port() for _ in range(nodes)]
        self.nodes = [None] * nodes
        self.logs = []
        for i in range(nodes):
            self.start(i)

    @staticmethod
    def _run(argv):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=180)
        if p.returncode == 77:
            print('skipped: ' + p.stderr.strip(), flush=True)
            raise SystemExit(77)
        if p.returncode != 0:
            raise RuntimeError('%s failed: %s' % (' '.join(argv), p.stderr))
        return p.stdout.strip().splitlines()[-1]

    def storage_args(self):
        return ['--database', self.database, '--blob-store', self.blob_store,
                '--s3-endpoint', self.endpoint]

    def start(self, i):
        """Starts node i (again) on its port, with a new scratch data directory."""
        port = self.ports[i]
        srv = ahltest.Server(extra_args=self.storage_args() + self.extra_args,
                             port=port)
        self.nodes[i] = srv
        return srv

    def kill(self, i):
        """SIGKILL of node i, with whatever it had in flight."""
        srv = self.nodes[i]
        if srv is None:
            return
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        srv.log.close()
        self.logs.append(srv.log_text())
        srv.cleanup()
        self.nodes[i] = None

    def restart(self, i):
        self.kill(i)
        return self.start(i)

    def endpoints(self):
        return ['http://127.0.0.1:%d' % p for p in self.ports]

    def alive(self):
        return [i for i, s in enumerate(self.nodes) if s is not None]

    def stop_all(self):
        """SIGTERM to every node; each must exit 0."""
        bad = []
        for i, srv in enumerate(self.nodes):
            if srv is None:
                continue
            rc = srv.stop()
            log = srv.log_text()
            srv.cleanup()
            self.nodes[i] = None
            if rc != 0:
                bad.append('node %d exited %r:\n%s' % (i, rc, log[-3000:]))
        if bad:
            raise AssertionError('\n'.join(bad))

    def check(self):
        """`ahilite check` of the shared database and bucket: (exit status, output)."""
        d = os.path.join(self.tmp, 'check')
        os.makedirs(d, exist_ok=True)
        p = subprocess.run([ahltest.real_binary(), 'check', '--data-dir', d] +
                           self.storage_args(), capture_output=True, text=True, timeout=900)
        return p.returncode, p.stdout + p.stderr

    def s3(self):
        import boto3
        return boto3.client('s3', endpoint_url=self.endpoint, region_name='us-east-1',
                            aws_access_key_id='testing', aws_secret_access_key='testing')

    def close(self):
        for i in range(len(self.nodes)):
            if self.nodes[i] is not None:
                self.kill(i)
        if self.own_s3:
            subprocess.run(['bash', os.path.join(PG, 'moto.sh'), 'stop', self.own_s3])
        if self.own_pg:
            subprocess.run(['bash', os.path.join(PG, 'cluster.sh'), 'stop', self.own_pg])
        shutil.rmtree(self.tmp, ignore_errors=True)


class Client:
    """Signed requests on one keep-alive connection to one node."""

    def __init__(self, endpoint, timeout=60):
        from botocore.credentials import Credentials
        self.endpoint = endpoint
        self.host = endpoint.split('://', 1)[1]
        self.timeout = timeout
        self.creds = Credentials(ahltest.ACCESS_KEY, ahltest.SECRET_KEY)
        self.conn = None

    def _signed(self, method, path, query, body):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        url = self.endpoint + path + ('?' + query if query else '')
        hdrs = {'Content-Type': 'application/json'} if body is not None else {}
        req = AWSRequest(method=method, url=url, data=body, headers=hdrs)
        SigV4Auth(self.creds, 'medical-imaging', ahltest.REGION).add_auth(req)
        return dict(req.headers.items())

    def send(self, method, path, query='', body=None):
        """Writes one request; read its answer with receive()."""
        if isinstance(body, str):
            body = body.encode()
        headers = self._signed(method, path, query, body)
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, timeout=self.timeout)
        self.conn.request(method, path + ('?' + query if query else ''), body=body,
                          headers=headers)

    def receive(self):
        """(status, error type or None, body bytes) of the request sent last."""
        try:
            r = self.conn.getresponse()
            body = r.read()
        except Exception:
            self.close()
            raise
        if r.getheader('Connection', '').lower() == 'close':
            self.close()
        return r.status, r.getheader('x-amzn-ErrorType'), body

    def call(self, method, path, query='', body=None):
        try:
            self.send(method, path, query, body)
            return self.receive()
        except Exception:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # The operations the multi-node suites use.
    def update_send(self, ds, sid, latest, attrs):
        import base64
        body = json.dumps({'DICOMUpdates': {'updatableAttributes': base64.b64encode(
            json.dumps(attrs).encode()).decode()}})
        self.send('POST', '/datastore/%s/imageSet/%s/updateImageSetMetadata' % (ds, sid),
                  'latestVersion=%s' % latest, body)

    def get_image_set(self, ds, sid):
        s, t, b = self.call('POST', '/datastore/%s/imageSet/%s/getImageSet' % (ds, sid))
        if s != 200:
            raise AssertionError('GetImageSet: %d %s %r' % (s, t, b[:300]))
        return json.loads(b)

    def metadata(self, ds, sid, version=None):
        s, t, b = self.call('POST', '/datastore/%s/imageSet/%s/getImageSetMetadata' % (ds, sid),
                            'version=%s' % version if version is not None else '')
        if s != 200:
            raise AssertionError('GetImageSetMetadata %s: %d %s %r' % (version, s, t, b[:300]))
        return json.loads(gzip.decompress(b))


def patient_name(doc):
    return doc['Patient']['DICOM'].get('PatientName')


def list_versions(client, ds, sid):
    """Every version id of an image set (ListImageSetVersions, all pages)."""
    out, token = [], None
    while True:
        q = 'maxResults=50' + ('&nextToken=' + urllib_quote(token) if token else '')
        s, t, b = client.call('POST', '/datastore/%s/imageSet/%s/listImageSetVersions' %
                              (ds, sid), q)
        if s != 200:
            raise AssertionError('ListImageSetVersions: %d %s %r' % (s, t, b[:300]))
        doc = json.loads(b)
        out += [p['versionId'] for p in doc['imageSetPropertiesList']]
        token = doc.get('nextToken')
        if not token:
            return out


def urllib_quote(s):
    import urllib.parse
    return urllib.parse.quote(s, safe='')


def new_token():
    return str(uuid.uuid4())


def wait_until(pred, timeout, what, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError('timed out waiting for ' + what)
