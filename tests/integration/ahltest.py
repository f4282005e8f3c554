"""Shared helpers for the integration suites that drive `ahilite serve` with real AWS clients.

A suite calls start_server() once: it picks a free loopback port, makes a temporary data
directory and a credentials file with a known key pair, starts $AHILITE_BIN serve, and waits until
a signed request is answered. boto3_client() returns a medical-imaging client aimed at it (host
prefix injection off, no retries), raw() sends a hand-made request signed with botocore's own
SigV4 signer, so error paths the SDK would refuse to send can be exercised.
create_active_datastore() and wait_import_job() poll until a data store or an import job is done.

Environment (set by CTest): AHILITE_BIN (the server binary), AHILITE_SRC (the source tree).
With AHL_TEST_BLOB_STORE (s3://bucket/prefix) and AHL_TEST_S3_ENDPOINT set, servers and the
`ahilite import` helpers keep frames in that bucket (blob_store_args(); the AWS_* variables give
the endpoint's credentials).
The service model comes with botocore >= 1.31; when the Python used lacks it, the copy in
$AHILITE_SRC/models is put on AWS_DATA_PATH.

AHL_TEST_DATABASE (a libpq URL, e.g. what tests/pg/cluster.sh start prints) runs the suite on
PostgreSQL: server_binary() then names ahilite_storage.py, which runs the real binary with
`--database` added to every storage command (serve, import, check, export). Each data
directory gets a schema of its own (database_for), so the servers and commands of one test share
their data exactly as they share a data directory, and tests stay independent of each other.
AHL_TEST_BLOB_STORE (s3://BUCKET[/PREFIX]) with AHL_TEST_S3_ENDPOINT puts frames in a bucket the
same way, under a prefix per data directory. A suite that only makes sense on SQLite calls
skip_on_postgres(reason).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import urllib.error

SRC = os.environ.get('AHILITE_SRC') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
ACCESS_KEY = 'AKIAAHILITETEST00001'
SECRET_KEY = 'ahilite/test/secret/key/0000000000000000'
SECOND_ACCESS_KEY = 'AKIAAHILITETEST00002'
SECOND_SECRET_KEY = 'second/secret/key/000000000000000000000000'
REGION = 'us-east-1'
ACCOUNT = '123456789012'


def _ensure_model():
    import botocore.session
    if 'medical-imaging' in botocore.session.get_session().get_available_services():
        return
    models = os.path.join(SRC, 'models')
    os.environ['AWS_DATA_PATH'] = os.path.abspath(models)


def real_binary():
    """The ahilite binary itself (never the storage wrapper)."""
    b = os.environ.get('AHL_TEST_REAL_BIN') or os.environ.get('AHILITE_BIN')
    if b and os.path.basename(b) != 'ahilite_storage.py':
        return b
    for cand in (os.environ.get('AHILITE_BUILD', ''), os.path.join(SRC, 'build')):
        p = os.path.join(cand, 'ahilite')
        if cand and os.path.exists(p):
            return p
    raise SystemExit('set AHILITE_BIN to the ahilite binary')


def server_binary():
    """The command a test runs as `ahilite`: the binary, or on PostgreSQL (AHL_TEST_DATABASE)
    the wrapper that adds the storage options (see the module's description)."""
    real = real_binary()
    if not os.environ.get('AHL_TEST_DATABASE'):
        return real
    os.environ['AHL_TEST_REAL_BIN'] = real
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'ahilite_storage.py')


def on_postgres():
    return bool(os.environ.get('AHL_TEST_DATABASE'))


def frames_in_bucket():
    """Whether the servers and commands of this run keep frames in a bucket (then no frame is a
    file under DATA_DIR/frames for a test to damage)."""
    return bool(os.environ.get('AHL_TEST_BLOB_STORE'))


def skip_on_postgres(reason):
    """Exits 77 (a skip to CTest) with the reason when the suite runs on PostgreSQL."""
    if on_postgres():
        print('skipped on PostgreSQL: ' + reason, flush=True)
        raise SystemExit(77)


# The commands that open the store, and so take --database and --blob-store.
STORAGE_COMMANDS = ('serve', 'import', 'check', 'export', 'gc', 'diff')


# A data directory names its schema in this file once it exists, so that a copy of the directory
# (a test's stand-in for the disk after a crash) goes on with the same store.
STORE_MARK = 'ahl-test-store'


def _schema_of(data_dir):
    import hashlib
    mark = os.path.join(data_dir, STORE_MARK)
    try:
        with open(mark) as f:
            return f.read().strip()
    except OSError:
        pass
    path = os.path.realpath(os.path.abspath(data_dir))
    name = 't_' + hashlib.sha1(path.encode()).hexdigest()[:24]
    if os.path.isdir(data_dir):
        try:
            with open(mark, 'w') as f:
                f.write(name + '\n')
        except OSError:
            pass
    return name


def _url_with(url, param):
    return url + ('&' if '?' in url else '?') + param


def database_for(data_dir, base=None):
    """The libpq URL of the schema that stands for data_dir on the PostgreSQL of
    AHL_TEST_DATABASE (or base): made on first use with psql (postgresql-client), selected through
    options=-csearch_path, the same for every process that names the same directory."""
    base = base or os.environ['AHL_TEST_DATABASE']
    schema = _schema_of(data_dir)
    for attempt in range(3):
        p = subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', base, '-c',
                            'CREATE SCHEMA IF NOT EXISTS %s' % schema],
                           capture_output=True, text=True, timeout=60)
        if p.returncode == 0:
            break
        # Two processes creating the same schema at once: one of them sees a unique violation.
        if attempt == 2 or 'already exists' not in p.stderr + p.stdout and \
                'duplicate key' not in p.stderr:
            raise RuntimeError('psql could not make schema %s: %s' % (schema, p.stderr))
    return _url_with(base, 'options=-csearch_path%%3D%s' % schema)


def blob_store_for(data_dir):
    """--blob-store and --s3-endpoint for data_dir when AHL_TEST_BLOB_STORE names a bucket: a
    prefix of its own under it, like its schema; [] otherwise."""
    store = os.environ.get('AHL_TEST_BLOB_STORE')
    if not store:
        return []
    args = ['--blob-store', store.rstrip('/') + '/' + _schema_of(data_dir)]
    if os.environ.get('AHL_TEST_S3_ENDPOINT'):
        args += ['--s3-endpoint', os.environ['AHL_TEST_S3_ENDPOINT']]
    return args


def storage_args(argv):
    """The options the wrapper adds to `ahilite ARGV...` on PostgreSQL: --database (and the blob
    store) for a storage command that names none itself; [] for anything else (help, dump, ...)."""
    if not argv or argv[0] not in STORAGE_COMMANDS or not on_postgres():
        return []
    if '--help' in argv or '-h' in argv or '--database' in argv:
        return []
    data_dir = 'ahilite-data'  # the commands' default
    for i, a in enumerate(argv[:-1]):
        if a == '--data-dir':
            data_dir = argv[i + 1]
    args = ['--database', database_for(data_dir)]
    # A suite that names an S3 endpoint of its own for import jobs keeps frames in the data
    # directory; otherwise frames go to the bucket, and import jobs keep reading the local buckets
    # (--s3-root, DATA_DIR/buckets unless the suite names a directory) as they would without it.
    if argv[0] != 'diff' and '--blob-store' not in argv and '--s3-endpoint' not in argv:
        blob = blob_store_for(data_dir)
        args += blob
        if blob and argv[0] == 'serve' and '--s3-root' not in argv:
            args += ['--s3-root', os.path.join(data_dir, 'buckets')]
    return args


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def blob_store_args(extra_args=()):
    """['--blob-store', $AHL_TEST_BLOB_STORE, '--s3-endpoint', $AHL_TEST_S3_ENDPOINT] when both
    are set and extra_args does not choose a blob store itself, else []: frames on S3 for every
    server and `ahilite import|check|export` a suite starts (docs/frames.md#frames-on-s3)."""
    uri = os.environ.get('AHL_TEST_BLOB_STORE')
    endpoint = os.environ.get('AHL_TEST_S3_ENDPOINT')
    # On PostgreSQL the wrapper (ahilite_storage.py) gives every command the blob store of its
    # data directory instead (blob_store_for), so that tests never share frames.
    if on_postgres():
        return []
    if not uri or not endpoint or '--blob-store' in extra_args:
        return []
    args = ['--blob-store', uri]
    if '--s3-endpoint' not in extra_args:
        args += ['--s3-endpoint', endpoint]
    return args


class Server:
    """A running `ahilite serve` on a temporary data directory (on a free port unless port is
    given: a node started again on its own)."""

    def __init__(self, extra_args=(), env=None, before_start=None, port=None):
        self.tmp = tempfile.mkdtemp(prefix='ahilite-test-')
        self.data_dir = os.path.join(self.tmp, 'data')
        self.cred_file = os.path.join(self.tmp, 'credentials')
        with open(self.cred_file, 'w') as f:
            f.write('[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n'
                    '[second]\naws_access_key_id=%s\naws_secret_access_key=%s\n' %
                    (ACCESS_KEY, SECRET_KEY, SECOND_ACCESS_KEY, SECOND_SECRET_KEY))
        if before_start:
            before_start(self)  # e.g. `ahilite import` into self.data_dir
        self.port = port or free_port()
        self.endpoint = 'http://127.0.0.1:%d' % self.port
        self.log_path = os.path.join(self.tmp, 'server.log')
        self.log = open(self.log_path, 'w')
        args = [server_binary(), 'serve', '--data-dir', self.data_dir,
                '--listen', '127.0.0.1:%d' % self.port, '--credentials', self.cred_file,
                '--region', REGION, '--account-id', ACCOUNT, '--workers', '2',
                '--http-threads', '2']
        args += list(extra_args) + blob_store_args(extra_args)
        self.args = args
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env or os.environ.copy())
        self._wait_ready()

    def restart(self, env=None):
        """stop() (the server must exit 0), then the same server again on the same data
        directory and port, with env (e.g. another AHILITE_CLOCK_OFFSET); the log goes on."""
        rc = self.stop()
        assert rc in (0, None), 'server exited with %r\n%s' % (rc, self.log_text())
        self.log = open(self.log_path, 'a')
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env or os.environ.copy())
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('ahilite serve exited with %d:\n%s' %
                                   (self.proc.returncode, self.log_text()))
            try:
                status, _, _ = raw('GET', self.endpoint, '/datastore')
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError('ahilite serve did not become ready:\n' + self.log_text())

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        """SIGTERM, and the server must exit 0 promptly."""
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError('ahilite serve did not stop on SIGTERM')
        self.log.close()
        return rc

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def finish(self):
        """stop() and cleanup(), then insist that the server exited 0 (with its log if not)."""
        rc = self.stop()
        log = self.log_text()
        self.cleanup()
        assert rc == 0, 'server exited with %r\n%s' % (rc, log)


def boto3_client(server, access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION):
    _ensure_model()
    import boto3
    from botocore.config import Config
    return boto3.client('medical-imaging', endpoint_url=server.endpoint, region_name=region,
                        aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                        config=Config(inject_host_prefix=False,
                                      retries={'max_attempts': 1, 'mode': 'standard'}))


def create_active_datastore(client, name, timeout=20):
    """Creates a data store and waits until it is ACTIVE; returns its id."""
    ds = client.create_datastore(datastoreName=name)['datastoreId']
    deadline = time.time() + timeout
    while client.get_datastore(datastoreId=ds)['datastoreProperties']['datastoreStatus'] != \
            'ACTIVE':
        if time.time() > deadline:
            raise AssertionError('data store not ACTIVE')
        time.sleep(0.1)
    return ds


def wait_import_job(client, ds, job_id, timeout):
    """Polls GetDICOMImportJob until the job is COMPLETED or FAILED; returns its properties."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = client.get_dicom_import_job(datastoreId=ds, jobId=job_id)['jobProperties']
        if p['jobStatus'] in ('COMPLETED', 'FAILED'):
            return p
        time.sleep(0.2)
    raise AssertionError('job %s did not finish' % job_id)


def raw(method, endpoint, path, query='', body=None, headers=None, access_key=ACCESS_KEY,
        secret_key=SECRET_KEY, sign=True, region=REGION, timestamp=None, tamper=None, timeout=30):
    """Sends one request signed with botocore's SigV4Auth (unless sign=False) and returns
    (status, headers dict with lower-case names, body bytes). tamper(headers) may alter the signed
    headers before sending."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    url = endpoint + path + ('?' + query if query else '')
    data = body.encode() if isinstance(body, str) else body
    hdrs = dict(headers or {})
    if data is not None and 'Content-Type' not in hdrs:
        hdrs['Content-Type'] = 'application/json'
    req = AWSRequest(method=method, url=url, data=data, headers=hdrs)
    if sign:
        signer = SigV4Auth(Credentials(access_key, secret_key), 'medical-imaging', region)
        if timestamp is not None:
            import datetime
            from unittest import mock
            fixed = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).replace(
                tzinfo=None)
            with mock.patch('botocore.auth.get_current_datetime', return_value=fixed):
                signer.add_auth(req)
        else:
            signer.add_auth(req)
    prepared = dict(req.headers.items())
    if tamper:
        tamper(prepared)
    r = urllib.request.Request(url, data=data, method=method, headers=prepared)
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def error_of(status_headers_body):
    """(status, x-amzn-ErrorType, message) of a raw() result."""
    status, headers, body = status_headers_body
    try:
        msg = json.loads(body or b'{}').get('message')
    except ValueError:
        msg = None
    return status, headers.get('x-amzn-errortype'), msg


def signed_bytes(method, endpoint, path, query='', body=None, headers=None,
                 access_key=ACCESS_KEY, secret_key=SECRET_KEY):
    """One request signed with botocore's SigV4Auth, as the bytes to write on a socket, for tests
    that must control the connection itself (slow readers, partial sends, pipelining)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    url = endpoint + path + ('?' + query if query else '')
    data = body.encode() if isinstance(body, str) else body
    req = AWSRequest(method=method, url=url, data=data, headers=dict(headers or {}))
    SigV4Auth(Credentials(access_key, secret_key), 'medical-imaging', REGION).add_auth(req)
    host = endpoint.split('://', 1)[1]
    lines = ['%s %s HTTP/1.1' % (method, path + ('?' + query if query else '')),
             'Host: %s' % host]
    lines += ['%s: %s' % (k, v) for k, v in req.headers.items() if k.lower() != 'host']
    if data is not None:
        lines.append('Content-Length: %d' % len(data))
    return ('\r\n'.join(lines) + '\r\n\r\n').encode() + (data or b'')


CT_SAMPLE = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm'

# Copies of the CT sample as one series, written with the system Python, which has pydicom (the
# tests' Python has boto3). ImageComments differ per instance so no two metadata chunks are equal.
# With a fifth argument 'unique-pixels' four pixels differ too (the first two hold the instance's
# index, two more sit at places that move with it), so no two frames are equal and storing them
# cannot be saved by the frame store's content addressing.
_SERIES_GENERATOR = r'''
import sys
import pydicom
n, out, root, sample = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
unique = len(sys.argv) > 5 and sys.argv[5] == 'unique-pixels'
for i in range(n):
    ds = pydicom.dcmread(sample)
    ds.StudyInstanceUID = root + '1'
    ds.SeriesInstanceUID = root + '1.1'
    ds.SOPInstanceUID = root + '1.1.%d' % i
    ds.InstanceNumber = i + 1
    ds.ImageComments = 'instance %d of a series made to have sizeable metadata' % i
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if unique:
        px = bytearray(ds.PixelData)
        npix = len(px) // 2
        for k, (at, v) in enumerate([(0, i & 0xFFFF), (1, i >> 16),
                                     (2 + (i * 37) % (npix - 2), (i * 7919) & 0x7FFF),
                                     (2 + (i * 4099 + 1) % (npix - 2), (i * 104729) & 0x7FFF)]):
            px[2 * at:2 * at + 2] = v.to_bytes(2, 'little')
        ds.PixelData = bytes(px)
    ds.save_as('%s/i%05d.dcm' % (out, i))
'''


def write_series(instances, directory, uid_root, unique_pixels=False):
    """Writes `instances` copies of the CT sample as one series of study uid_root + '1' into
    directory (i00000.dcm, ...); with unique_pixels, no two of them have the same frame."""
    subprocess.run(['/usr/bin/python3', '-c', _SERIES_GENERATOR, str(instances), directory,
                    uid_root, CT_SAMPLE] + (['unique-pixels'] if unique_pixels else []),
                   check=True, timeout=3600)


def import_files(server, datastore_name, paths):
    """Imports DICOM files (or directories) into a new data store named datastore_name in
    server.data_dir with `ahilite import`, before the server starts (call it from
    Server(before_start=...))."""
    p = subprocess.run([server_binary(), 'import', '--data-dir', server.data_dir,
                        '--create-datastore', datastore_name] + blob_store_args() + list(paths),
                       capture_output=True, text=True, timeout=3600)
    assert p.returncode == 0, p.stdout + p.stderr


def import_series(server, instances, uid_root, datastore_name):
    """Imports `instances` copies of the CT sample as one series of study uid_root + '1' into a
    new data store named datastore_name in server.data_dir, with `ahilite import` (before the
    server starts: pass as Server(before_start=...)). 1,000 instances make ~95 KB of gzipped
    metadata."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(['/usr/bin/python3', '-c', _SERIES_GENERATOR, str(instances), d,
                        uid_root, CT_SAMPLE], check=True, timeout=120)
        p = subprocess.run([server_binary(), 'import', '--data-dir', server.data_dir,
                            '--create-datastore', datastore_name] + blob_store_args() + [d],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr


def parts_of(headers, body):
    """The parts of a multipart/related body (a DICOMweb answer): [(content-type, bytes)]."""
    ctype = headers['content-type']
    assert ctype.startswith('multipart/related;'), ctype
    boundary = ctype.split('boundary=', 1)[1].split(';')[0].strip('"').encode()
    assert body.endswith(b'--' + boundary + b'--\r\n'), body[-80:]
    out = []
    for chunk in body.split(b'--' + boundary)[1:-1]:
        head, data = chunk[2:].split(b'\r\n\r\n', 1)
        assert data.endswith(b'\r\n')
        fields = dict(line.split(': ', 1) for line in head.decode().split('\r\n'))
        out.append((fields['Content-Type'], data[:-2]))
    return out


def stalled_reader(endpoint, method, path, headers=None, rcvbuf=4096):
    """A connection that sends one signed request and then reads nothing (its receive buffer
    small, so the server cannot finish sending): a stalled client, or with trickle() a slow one."""
    host, port = endpoint.split('://', 1)[1].split(':')
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect((host, int(port)))
    s.sendall(signed_bytes(method, endpoint, path, headers=headers))
    return s


def trickle(sock, stop, size=64, pause=0.2):
    """Reads size bytes every pause seconds from sock until stop is set or the answer ends."""
    sock.settimeout(30)
    while not stop.is_set():
        try:
            if not sock.recv(size):
                return
        except OSError:
            return
        time.sleep(pause)


def request_loop(name, method, endpoint, path, stop, counts, errors, check=None):
    """Sends signed requests until stop is set, counting answers with status 200 (and for which
    check(body) holds) in counts[name]; the first failure or exception goes to errors and ends
    the loop (a timeout is the hang the slow-client tests look for)."""
    counts[name] = 0
    while not stop.is_set():
        try:
            status, _, body = raw(method, endpoint, path)
        except Exception as e:
            errors.append('%s: %r' % (name, e))
            return
        if status != 200 or (check and not check(body)):
            errors.append('%s: status %d, %d bytes %r' % (name, status, len(body), body[:200]))
            return
        counts[name] += 1


# A native two-frame 16-bit file made from the CT sample, with the system Python (pydicom, no
# NumPy: frames are compared as the bytes of native pixel data). argv: output, sample, UID root.
_TWO_FRAMES = r'''
import sys
import pydicom
ds = pydicom.dcmread(sys.argv[2])
ds.StudyInstanceUID = sys.argv[3] + '1'
ds.SeriesInstanceUID = sys.argv[3] + '1.1'
ds.SOPInstanceUID = sys.argv[3] + '1.1.1'
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.NumberOfFrames = 2
ds.PixelData = ds.PixelData + bytes(reversed(ds.PixelData))
ds.save_as(sys.argv[1])
'''


def two_frame_ct(path, uid_root):
    """Writes at path a native two-frame copy of the CT sample (the second frame the first's
    bytes reversed) as study uid_root + '1', series + '1.1', instance + '1.1.1'."""
    subprocess.run(['/usr/bin/python3', '-c', _TWO_FRAMES, path, CT_SAMPLE, uid_root],
                   check=True, timeout=60)


class Moto:
    """moto_server on a free loopback port as an S3 endpoint for import jobs, with the buckets
    given, and a boto3 S3 client of it (keys 'testing'); env is the environment a server using
    it as --s3-endpoint needs."""

    def __init__(self, buckets=()):
        import sys
        import boto3
        self.log = tempfile.TemporaryFile()
        port = free_port()
        self.proc = subprocess.Popen([sys.executable, '-m', 'moto.server', '-H', '127.0.0.1',
                                      '-p', str(port)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.url = 'http://127.0.0.1:%d' % port
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + '/', timeout=1).read()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError('moto_server did not start')
                time.sleep(0.2)
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID='testing',
                        AWS_SECRET_ACCESS_KEY='testing', AWS_REGION='us-east-1')
        self.s3 = boto3.client('s3', endpoint_url=self.url, region_name='us-east-1',
                               aws_access_key_id='testing', aws_secret_access_key='testing')
        for b in buckets:
            self.s3.create_bucket(Bucket=b)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


class S3JobServer:
    """A unittest.TestCase mixin: a server importing from moto, whose 'in-bucket' holds
    input_objects() (key -> bytes) and whose job outputs go to 'out-bucket', with one ACTIVE data
    store named DATASTORE_NAME. Sets cls.moto, cls.s3, cls.server, cls.client, cls.ds."""

    DATASTORE_NAME = 'imports'

    @classmethod
    def input_objects(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.moto = Moto(buckets=('in-bucket', 'out-bucket'))
        cls.s3 = cls.moto.s3
        for key, data in cls.input_objects().items():
            cls.s3.put_object(Bucket='in-bucket', Key=key, Body=data)
        cls.server = Server(extra_args=['--s3-endpoint', cls.moto.url], env=cls.moto.env)
        cls.client = boto3_client(cls.server)
        cls.ds = create_active_datastore(cls.client, cls.DATASTORE_NAME)

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        cls.server.cleanup()
        cls.moto.stop()
        assert rc == 0, 'server exit status %r' % rc

    def read_output(self, key):
        return self.s3.get_object(Bucket='out-bucket', Key=key)['Body'].read().decode()
