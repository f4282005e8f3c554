#!/usr/bin/env python3
"""Benchmark: ahilite's DICOMweb against Orthanc's (Debian's orthanc + orthanc-dicomweb), on the
same files in the same run.

One command. It synthesizes CT series with pydicom (copies of pydicom's CT_small.dcm: 128x128
16-bit native frames, 39 KB files, new UIDs and an ImageComments per instance), imports them into
a fresh ahilite data directory with `ahilite import` and starts `ahilite serve` on a loopback port
(tests/integration/ahltest.py), starts Orthanc with its DICOMweb plugin on another
(tests/integration/orthanc.py) and stores the same files into it with its REST API
(POST /instances, one request a file, timed: Orthanc's import rate). Then, with
`ahilite-bench http-load --mode get` as the load generator (SigV4-signed for ahilite, unsigned for
Orthanc, keep-alive connections; bench/http_load.c), for T seconds a run:

  metadata-N  GET .../studies/{s}/series/{se}/metadata of each N-instance series, 1 connection,
              Accept application/dicom+json, no compression on either side: JSON MB/s, and
              instances described per second (the answers' sizes differ);
  frames      GET .../instances/{sop}/frames/1 of every instance of the largest series in turn,
              8 connections, Accept multipart/related; type="application/octet-stream";
              transfer-syntax=1.2.840.10008.1.2.1 (both decode to native: ahilite from the HTJ2K it
              stored, Orthanc from the file): frames/s.

  store-1     storing instances one a request: ahilite's STOW-RS (POST .../studies,
              Content-Type application/dicom) against Orthanc's REST import (POST /instances):
              instances/s;
  store-B     storing B instances a request (--stow-batch, default 50) as multipart/related:
              ahilite's STOW-RS against Orthanc's (POST /dicom-web/studies).
              Each store run gets instances never stored before (new UIDs), sent by one Python
              keep-alive connection (signed with botocore for ahilite), so the client's cost is
              the same for both sides; skipped when the ahilite build does not serve STOW-RS.

Each measurement runs in rounds A B B A (ahilite, Orthanc, Orthanc, ahilite); the figure is the
mean of a side's two runs, and each run also records its server's CPU seconds (utime+stime from
/proc), so rates per server CPU-second can be read on a shared machine (the client shares the
cores). Every answer must be 200, and before timing, the first answer of each side is checked
(the same instances; the same frame bytes). At the end: one JSON line per run and a table of
ratios.

The first answer of each side (checked for agreement before timing) is also timed: for ahilite
that is the cold, uncached answer (docs/dicomweb.md#performance); the timed runs repeat one path,
so they measure the warm answer. --ahilite-args "--dicomweb-cache 0" measures without the cache.

usage: bench/dicomweb.py [--instances 100,1000] [--seconds 5] [--frame-connections 8]
                        [--stow-instances 200] [--stow-batch 50] [--smoke]
                        [--ahilite-args "--dicomweb-cache 0"]
env:   AHILITE_BIN (default build/ahilite), AHILITE_BUILD (where ahilite-bench is; default the
       directory of AHILITE_BIN). --smoke: 5- and 20-instance series, 0.5 s runs, 6 instances a
       store run in batches of 3, for the test suite
       (tests/integration/test_dicomweb_bench_smoke.py); its figures mean nothing.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(HERE, 'tests', 'integration'))
os.environ.setdefault('AHILITE_SRC', HERE)
os.environ.setdefault('AHILITE_BIN', os.path.join(HERE, 'build', 'ahilite'))
import ahltest  # noqa: E402
import orthanc  # noqa: E402

NATIVE_LE = 'multipart/related; type="application/octet-stream"; ' \
            'transfer-syntax=1.2.840.10008.1.2.1'
UID_ROOT = '1.2.826.0.1.3680043.8.498.9191.%d.'


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class Side:
    """One server under test: how to reach it with http-load."""

    def __init__(self, name, endpoint, prefix, pid, signed):
        self.name, self.endpoint, self.prefix, self.pid, self.signed = \
            name, endpoint, prefix, pid, signed

    def load(self, bench, tmp, paths, accept, connections, seconds):
        paths_file = os.path.join(tmp, 'paths-%s.txt' % self.name)
        with open(paths_file, 'w') as f:
            f.write(''.join(self.prefix + p + '\n' for p in paths))
        args = [bench, 'http-load', '--mode', 'get', '--endpoint', self.endpoint,
                '--paths', paths_file, '--accept', accept, '--connections', str(connections),
                '--seconds', str(seconds)]
        args += (['--access-key', ahltest.ACCESS_KEY, '--secret-key', ahltest.SECRET_KEY,
                  '--region', ahltest.REGION] if self.signed else ['--unsigned'])
        cpu0 = cpu_seconds(self.pid)
        r = subprocess.run(args, capture_output=True, text=True, timeout=seconds * 10 + 120)
        cpu = cpu_seconds(self.pid) - cpu0
        if r.returncode != 0:
            raise SystemExit('%s: http-load failed: %s %s' % (self.name, r.stdout, r.stderr))
        out = json.loads(r.stdout)
        out['server_cpu_s'] = round(cpu, 3)
        return out


def make_series(tmp, sizes):
    """One directory of files per series size: {size: (dir, study, series, [sop...])}."""
    out = {}
    for k, n in enumerate(sizes):
        d = os.path.join(tmp, 'series-%d' % n)
        os.makedirs(d)
        root = UID_ROOT % k
        subprocess.run(['/usr/bin/python3', '-c', ahltest._SERIES_GENERATOR, str(n), d, root,
                        ahltest.CT_SAMPLE], check=True, timeout=600)
        out[n] = (d, root + '1', root + '1.1', [root + '1.1.%d' % i for i in range(n)])
    return out


def first_answers_agree(sides, path, accept):
    """The first answer of each side, checked before timing: DICOM JSON with the same
    SOPInstanceUIDs, or multipart frames with the same bytes (a frames path)."""
    import email
    import email.policy
    got = []
    for s in sides:
        cpu0, t0 = cpu_seconds(s.pid), time.monotonic()
        if s.signed:
            st, h, body = ahltest.raw('GET', s.endpoint, s.prefix + path,
                                      headers={'Accept': accept}, timeout=600)
        else:
            r = orthanc.urllib.request.Request(s.endpoint + s.prefix + path,
                                               headers={'Accept': accept})
            with orthanc.urllib.request.urlopen(r, timeout=600) as resp:
                st, h, body = resp.status, {k.lower(): v for k, v in resp.headers.items()}, \
                    resp.read()
        print(json.dumps({'run': 'first', 'server': s.name, 'path': path, 'bytes': len(body),
                          'seconds': round(time.monotonic() - t0, 4),
                          'server_cpu_s': round(cpu_seconds(s.pid) - cpu0, 3)}))
        if st != 200:
            raise SystemExit('%s %s: %d %s' % (s.name, path, st, body[:300]))
        if '/frames/' in path:
            msg = email.message_from_bytes(b'Content-Type: ' + h['content-type'].encode() +
                                           b'\r\n\r\n' + body, policy=email.policy.HTTP)
            got.append([p.get_payload(decode=True) for p in msg.iter_parts()])
        else:
            got.append(sorted(i['00080018']['Value'][0] for i in json.loads(body)))
    if any(g != got[0] for g in got):
        raise SystemExit('the servers answer %s differently' % path)


class Poster:
    """One keep-alive connection storing DICOM files into a side: run(files) stores them, one a
    request or `batch` a multipart request, and returns {instances, seconds, server_cpu_s}."""

    def __init__(self, side, batch):
        import http.client
        self.side, self.batch = side, batch
        host = side.endpoint.split('://', 1)[1]
        self.conn = http.client.HTTPConnection(host, timeout=300)

    def post(self, path, body, ctype):
        headers = {'Content-Type': ctype, 'Accept': 'application/dicom+json'}
        if self.side.signed:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
            req = AWSRequest(method='POST', url=self.side.endpoint + path, data=body,
                             headers=headers)
            SigV4Auth(Credentials(ahltest.ACCESS_KEY, ahltest.SECRET_KEY), 'medical-imaging',
                      ahltest.REGION).add_auth(req)
            headers = dict(req.headers.items())
        self.conn.request('POST', path, body, headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, data

    def store(self, blobs):
        """Stores blobs (file contents) in one request; raises unless every one was stored."""
        s = self.side
        if len(blobs) == 1 and not s.signed:
            status, data = self.post('/instances', blobs[0], 'application/dicom')  # REST
        elif len(blobs) == 1:
            status, data = self.post(s.prefix + '/studies', blobs[0], 'application/dicom')
        else:
            boundary = 'dicomweb-bench-boundary-7f3a'
            body = b''.join(b'--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n' %
                            (boundary.encode(), b) for b in blobs) + b'--%s--\r\n' % \
                boundary.encode()
            status, data = self.post(s.prefix + '/studies', body,
                                     'multipart/related; type="application/dicom"; '
                                     'boundary=%s' % boundary)
        if status != 200:
            raise SystemExit('%s store: %d %s' % (s.name, status, data[:300]))
        if len(blobs) > 1 or s.signed:
            answer = json.loads(data)
            stored = len(answer.get('00081199', {}).get('Value', []))
            failed = len(answer.get('00081198', {}).get('Value', []))  # Orthanc: an empty one
            if stored != len(blobs) or failed:
                raise SystemExit('%s stored %d of %d: %s' % (s.name, stored, len(blobs),
                                                             data[:300]))

    def run(self, files):
        blobs = []
        for f in files:
            with open(f, 'rb') as fh:
                blobs.append(fh.read())
        cpu0, t0 = cpu_seconds(self.side.pid), time.monotonic()
        for i in range(0, len(blobs), self.batch):
            self.store(blobs[i:i + self.batch])
        wall = time.monotonic() - t0
        return {'instances': len(blobs), 'seconds': round(wall, 3),
                'per_s': round(len(blobs) / wall, 1),
                'server_cpu_s': round(cpu_seconds(self.side.pid) - cpu0, 3)}


def serves_stow(side):
    """Whether ahilite answers POST .../studies (a build before STOW-RS says it is not served)."""
    status, _, body = ahltest.raw('POST', side.endpoint, side.prefix + '/studies', body=b'',
                                  headers={'Content-Type': 'application/dicom'})
    return not (status == 404 and b'not served' in body)


def abba(sides, run):
    """Runs run(side) in rounds A B B A; returns {side name: [result, result]}."""
    a, b = sides
    out = {a.name: [], b.name: []}
    for s in (a, b, b, a):
        out[s.name].append(run(s))
    return out


def mean(results, key):
    return sum(r[key] for r in results) / len(results)


def store_runs(sides, tmp, opt):
    """The store measures, each A B B A on its own fresh instances; rows for the table."""
    rows = []
    for batch in (1, opt.stow_batch):
        name = 'store-%d' % batch
        fresh = iter(range(4))

        def run(side):
            k = next(fresh)
            d = os.path.join(tmp, '%s-%d' % (name, k))
            os.makedirs(d)
            subprocess.run(['/usr/bin/python3', '-c', ahltest._SERIES_GENERATOR,
                            str(opt.stow_instances), d, UID_ROOT % (100 + 10 * batch + k),
                            ahltest.CT_SAMPLE], check=True, timeout=600)
            return Poster(side, batch).run([os.path.join(d, f) for f in sorted(os.listdir(d))])
        res = abba(sides, run)
        for side_name, runs in res.items():
            for r in runs:
                print(json.dumps(dict(r, run=name, server=side_name)))
        rate = {k: mean(v, 'per_s') for k, v in res.items()}
        per_cpu = {k: sum(r['instances'] for r in v) / max(sum(r['server_cpu_s'] for r in v), 1e-9)
                   for k, v in res.items()}
        what = ('instances stored/s, one a request (Orthanc: REST POST /instances)' if batch == 1
                else 'instances stored/s, %d a request (both STOW-RS)' % batch)
        rows.append((what, rate, per_cpu))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--instances', default='100,1000')
    ap.add_argument('--seconds', type=float, default=5)
    ap.add_argument('--frame-connections', type=int, default=8)
    ap.add_argument('--stow-instances', type=int, default=200)
    ap.add_argument('--stow-batch', type=int, default=50)
    ap.add_argument('--smoke', action='store_true')
    ap.add_argument('--ahilite-args', default='',
                    help='more `ahilite serve` options, space-separated (e.g. "--dicomweb-cache 0")')
    opt = ap.parse_args()
    if opt.smoke:
        opt.instances, opt.seconds, opt.stow_instances, opt.stow_batch = '5,20', 0.5, 6, 3
    sizes = sorted(int(x) for x in opt.instances.split(','))
    if not orthanc.available():
        print('Orthanc or its DICOMweb plugin is not installed (apt-get install orthanc '
              'orthanc-dicomweb)', file=sys.stderr)
        return 77
    build = os.environ.get('AHILITE_BUILD') or os.path.dirname(ahltest.server_binary())
    bench = os.path.join(build, 'ahilite-bench')
    if not os.access(bench, os.X_OK):
        raise SystemExit('no ahilite-bench in %s (cmake --build %s)' % (build, build))

    tmp = tempfile.mkdtemp(prefix='ahilite-dicomweb-bench-')
    srv = orth = None
    try:
        series = make_series(tmp, sizes)
        files = [os.path.join(d, f) for d, _, _, _ in series.values()
                 for f in sorted(os.listdir(d))]

        def load(server):
            t0 = time.monotonic()
            ahltest.import_files(server, 'bench', [d for d, _, _, _ in series.values()])
            print(json.dumps({'run': 'ahilite-import', 'instances': len(files),
                              'seconds': round(time.monotonic() - t0, 3)}))
        srv = ahltest.Server(extra_args=opt.ahilite_args.split(), before_start=load)
        ds = ahltest.boto3_client(srv).list_datastores()['datastoreSummaries'][0]['datastoreId']
        orth = orthanc.Orthanc()
        cpu0, t0 = cpu_seconds(orth.proc.pid), time.monotonic()
        for f in files:
            orth.upload(f)
        wall, cpu = time.monotonic() - t0, cpu_seconds(orth.proc.pid) - cpu0
        print(json.dumps({'run': 'orthanc-rest-import', 'instances': len(files),
                          'seconds': round(wall, 3), 'per_s': round(len(files) / wall, 1),
                          'server_cpu_s': round(cpu, 3)}))

        sides = [Side('ahilite', srv.endpoint, '/datastore/' + ds, srv.proc.pid, True),
                 Side('orthanc', orth.endpoint, '/dicom-web', orth.proc.pid, False)]
        table = []
        for n in sizes:
            _, study, ser, _ = series[n]
            path = '/studies/%s/series/%s/metadata' % (study, ser)
            first_answers_agree(sides, path, 'application/dicom+json')
            res = abba(sides, lambda s: s.load(bench, tmp, [path], 'application/dicom+json', 1,
                                               opt.seconds))
            for name, runs in res.items():
                for r in runs:
                    print(json.dumps(dict(r, run='metadata-%d' % n, server=name)))
            mb = {k: mean(v, 'body_mb_s') for k, v in res.items()}
            per_cpu = {k: sum(r['bytes'] for r in v) / 1e6 / max(sum(r['server_cpu_s'] for r in v),
                                                                  1e-9) for k, v in res.items()}
            table.append(('series metadata, %d instances (MB/s)' % n, mb, per_cpu))
            # The two answers differ in size (Orthanc's bulk data URIs, ahilite's inline binary
            # values): instances described per second compares the same work.
            inst = {k: mean(v, 'per_s') * n for k, v in res.items()}
            inst_cpu = {k: sum(r['ok'] for r in v) * n / max(sum(r['server_cpu_s'] for r in v),
                                                             1e-9) for k, v in res.items()}
            table.append(('series metadata, %d instances (instances/s)' % n, inst, inst_cpu))

        _, study, ser, sops = series[sizes[-1]]
        frame_paths = ['/studies/%s/series/%s/instances/%s/frames/1' % (study, ser, sop)
                       for sop in sops]
        first_answers_agree(sides, frame_paths[0], NATIVE_LE)
        res = abba(sides, lambda s: s.load(bench, tmp, frame_paths, NATIVE_LE,
                                           opt.frame_connections, opt.seconds))
        for name, runs in res.items():
            for r in runs:
                print(json.dumps(dict(r, run='frames', server=name)))
        fps = {k: mean(v, 'per_s') for k, v in res.items()}
        per_cpu = {k: sum(r['ok'] for r in v) / max(sum(r['server_cpu_s'] for r in v), 1e-9)
                   for k, v in res.items()}
        table.append(('frames/s, %d connections' % opt.frame_connections, fps, per_cpu))

        if serves_stow(sides[0]):
            table += store_runs(sides, tmp, opt)
        else:
            print(json.dumps({'run': 'store', 'skipped': 'this ahilite does not serve STOW-RS'}))

        print('\n| measure | ahilite | Orthanc | ratio | ahilite per server CPU-s | '
              'Orthanc per server CPU-s | ratio per CPU-s |')
        print('|---|---:|---:|---:|---:|---:|---:|')
        for what, wall, cpu in table:
            print('| %s | %.1f | %.1f | %.1f× | %.1f | %.1f | %.1f× |' % (
                what, wall['ahilite'], wall['orthanc'], wall['ahilite'] / wall['orthanc'],
                cpu['ahilite'], cpu['orthanc'], cpu['ahilite'] / cpu['orthanc']))
        return 0
    finally:
        if orth:
            orth.stop()
        if srv:
            srv.finish()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
