"""Runs Debian's Orthanc with its DICOMweb plugin as a peer to compare ahilite with (the
interoperability test and bench/dicomweb.py).

Orthanc() starts /usr/sbin/Orthanc on a free loopback port with a configuration and a storage
directory of its own in a temporary directory: no DICOM listener, no authentication, no remote
access, the plugin's DICOMweb root at /dicom-web/. Nothing in it needs root; it stops with SIGTERM.
available() says whether the binary and the plugin are installed (the packages orthanc and
orthanc-dicomweb); callers skip (exit 77) when they are not.
"""
import glob
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

BINARY = '/usr/sbin/Orthanc'
PLUGIN_GLOBS = ('/usr/share/orthanc/plugins/libOrthancDicomWeb.so*',
                '/usr/lib/orthanc/libOrthancDicomWeb.so*')


def plugin_path():
    for pattern in PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def available():
    return os.access(BINARY, os.X_OK) and plugin_path() is not None


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Orthanc:
    """A running Orthanc with the DICOMweb plugin; dicomweb is its DICOMweb root URL. config adds
    to or overrides its configuration (e.g. {'MaximumStorageCacheSize': 0})."""

    def __init__(self, threads=None, config=None):
        self.tmp = tempfile.mkdtemp(prefix='ahilite-orthanc-')
        self.port = _free_port()
        self.endpoint = 'http://127.0.0.1:%d' % self.port
        self.dicomweb = self.endpoint + '/dicom-web'
        storage = os.path.join(self.tmp, 'storage')
        settings = {
            'Name': 'ahilite-peer',
            'StorageDirectory': storage,
            'IndexDirectory': storage,
            'HttpPort': self.port,
            'DicomServerEnabled': False,
            'RemoteAccessAllowed': False,
            'AuthenticationEnabled': False,
            'HttpCompressionEnabled': False,
            'KeepAlive': True,
            'Plugins': [plugin_path()],
            'DicomWeb': {'Enable': True, 'Root': '/dicom-web/',
                         'Host': '127.0.0.1:%d' % self.port, 'Ssl': False},
        }
        if threads:
            settings['HttpThreadsCount'] = threads
        settings.update(config or {})
        self.config_path = os.path.join(self.tmp, 'orthanc.json')
        with open(self.config_path, 'w') as f:
            json.dump(settings, f, indent=1)
        self.log_path = os.path.join(self.tmp, 'orthanc.log')
        self.log = open(self.log_path, 'w')
        self.proc = subprocess.Popen([BINARY, self.config_path], cwd=self.tmp, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            why = None
            if self.proc.poll() is not None:
                why = 'Orthanc exited with %d' % self.proc.returncode
            else:
                try:
                    if self.get('/system')[0] == 200:
                        break
                except OSError:
                    pass
                if time.time() > deadline:
                    why = 'Orthanc did not start'
            if why:
                log = self.log_text()
                self.stop()
                raise RuntimeError('%s:\n%s' % (why, log))
            time.sleep(0.1)

    def log_text(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def request(self, method, path, body=None, headers=None):
        """(status, headers with lower-case names, body) of one request to Orthanc."""
        r = urllib.request.Request(self.endpoint + path, data=body, method=method,
                                   headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(r, timeout=120) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def get(self, path, headers=None):
        return self.request('GET', path, headers=headers)

    def upload(self, path):
        """Stores one DICOM file through the REST API (POST /instances); returns Orthanc's id."""
        with open(path, 'rb') as f:
            status, _, body = self.request('POST', '/instances', f.read(),
                                           {'Content-Type': 'application/dicom'})
        if status != 200:
            raise RuntimeError('Orthanc refused %s: %d %s' % (path, status, body[:300]))
        return json.loads(body)['ID']

    def cpu_seconds(self):
        """CPU seconds (user + system) Orthanc's process has used so far."""
        with open('/proc/%d/stat' % self.proc.pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')

    def post_instances(self, blobs, clients):
        """POST /instances of every Part-10 object in blobs from `clients` threads (its REST
        import, as the benchmarks compare with). A 503, which Orthanc's PostgreSQL index answers
        when two of its connections' write transactions collide and asks be sent again, is sent
        again (up to 20 times). Returns (wall seconds, Orthanc's CPU seconds, 503s sent again);
        SystemExit when Orthanc refuses an object or then holds another number of instances."""
        host = self.endpoint.split('://', 1)[1]
        lock, nxt, errors, retries = threading.Lock(), [0], [], [0]

        def client():
            conn = http.client.HTTPConnection(host, timeout=300)
            while not errors:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= len(blobs):
                    break
                for _ in range(20):
                    conn.request('POST', '/instances', blobs[i],
                                 {'Content-Type': 'application/dicom'})
                    resp = conn.getresponse()
                    body = resp.read()
                    if resp.status != 503:
                        break
                    with lock:
                        retries[0] += 1
                if resp.status != 200:
                    errors.append('%d %s' % (resp.status, body[:200]))
            conn.close()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        cpu0, t0 = self.cpu_seconds(), time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall, cpu = time.monotonic() - t0, self.cpu_seconds() - cpu0
        if errors:
            raise SystemExit('Orthanc refused an instance: %s' % errors[0])
        status, _, body = self.get('/statistics')
        stored = json.loads(body)['CountInstances'] if status == 200 else -1
        if stored != len(blobs):
            raise SystemExit('Orthanc holds %d instances, not %d' % (stored, len(blobs)))
        return wall, cpu, retries[0]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
