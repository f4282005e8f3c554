#!/usr/bin/env python3
"""Benchmark: GetImageFrame against Orthanc's raw frames (GET /instances/{id}/frames/0/raw) on the
same files in the same run, and GetImageFrame alone over many small frames.

One command. It synthesizes, with pydicom:
  ct   N instances (--instances, default 1,000) of pydicom's CT_small.dcm (128x128, 16-bit
       native, 39 KB files), each with new UIDs and its first pixels changed so that no two frames
       are alike (frame ids are content addresses: copies would be one frame);
  many F frames (--frames, default 100,000) of 16x16 16-bit native pixels, all different, 1,000
       frames a multi-frame instance (F / 1,000 files): small frames, so that 100,000 of them import
       in a couple of minutes and what is measured is the request, not the bytes;
imports both into a fresh data directory with `ahilite import` and starts `ahilite serve` on it
(tests/integration/ahltest.py), and starts Orthanc (tests/integration/orthanc.py), with its
default 128 MB storage cache, storing the ct files into it with its REST API (POST /instances).
The frame ids come from GetImageSetMetadata, Orthanc's instance ids from its answers.

Each side is warmed with one pass over its frames (Orthanc's cache then holds all of the ct
files; ahilite's frame cache, `serve --frame-cache`, all of its frames), then measured with
`ahilite-bench http-load` (bench/http_load.c; SigV4-signed GetImageFrame POSTs for ahilite,
unsigned GETs for Orthanc; keep-alive connections) for T seconds a run, in rounds A B B A:

  ct-1, ct-8     the N ct frames in turn over 1 and 8 connections (ahilite's answer is the JPH
                 file of the HTJ2K frame, ~15 KB; Orthanc's the 32 KB of native pixels);
  ct-8-uncached  the same over 8 connections against a second Orthanc whose storage cache is off
                 (MaximumStorageCacheSize 0): what Orthanc does once its cache is exceeded;
  many-8         ahilite alone, the F small frames in turn over 8 connections: first the cold
                 pass (each frame read from its file and hashed: --requests F), then warm runs.

With --before BIN (an ahilite binary built before a change), that build serves the same data
directory as a third side, in the rounds A B C C B A, for a before/after in the same run.

Each run prints one JSON line (http-load's, plus its server's CPU seconds from /proc, so that rates
per server CPU-second can be read on a shared machine where the load generator shares the cores);
at the end a table of the means of each side's runs and the ratios against Orthanc.

usage: bench/getframe.py [--instances 1000] [--frames 100000] [--seconds 5] [--before BIN]
                         [--smoke]
env:   AHILITE_BIN (default build/ahilite), AHILITE_BUILD (where ahilite-bench is; default the
       directory of AHILITE_BIN); PERF_RUN=ct-1|ct-8|ct-8-uncached|many-8 records each ahilite
       server with `perf record` during that measure's runs, into PERF_OUT-SIDE-K.data (PERF_OUT
       default perf), call graphs as PERF_CALLGRAPH says (default dwarf,16384). --smoke: 10 ct instances and 300 small frames, 0.5 s runs, for
       the test suite (tests/integration/test_getframe_bench_smoke.py); its figures mean nothing.
"""
import argparse
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(HERE, 'bench'))
import dicomweb  # noqa: E402  (sets up the paths and the environment of ahltest)
import ahltest  # noqa: E402
import orthanc  # noqa: E402

UID_ROOT = '1.2.826.0.1.3680043.8.498.7373.'

GENERATOR = r'''
import sys
import pydicom
from pydicom.uid import ExplicitVRLittleEndian
kind, n, out, root, sample = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ds = pydicom.dcmread(sample)
if kind == 'ct':  # n copies of the sample, each with other first pixels
    px = bytearray(ds.PixelData)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = root + '1', root + '1.1'
    for i in range(n):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = root + '1.1.%d' % i
        ds.InstanceNumber = i + 1
        px[0:4] = bytes((i & 0xFF, (i >> 8) & 0x0F, (i >> 4) & 0xFF, 0))
        ds.PixelData = bytes(px)
        ds.save_as('%s/ct%05d.dcm' % (out, i))
else:  # n different 16x16 frames, per a multi-frame instance
    per = int(sys.argv[6])
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID, ds.SeriesInstanceUID = root + '2', root + '2.1'
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    base = bytes((k * 3) & 0xFF if k % 2 == 0 else 0 for k in range(512))
    for f in range(0, n, per):
        k = min(per, n - f)
        frames = []
        for j in range(f, f + k):
            b = bytearray(base)
            b[0:6] = bytes((j & 0xFF, (j >> 8) & 0x0F, (j >> 12) & 0xFF, 0, (j >> 20) & 0xFF, 0))
            frames.append(bytes(b))
        ds.NumberOfFrames = k
        ds.PixelData = b''.join(frames)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = root + '2.1.%d' % (f // per)
        ds.InstanceNumber = f // per + 1
        ds.save_as('%s/many%05d.dcm' % (out, f // per))
'''


class Target:
    """One server and the frames to ask it for: http-load's arguments for a run."""

    def __init__(self, name, pid, args):
        self.name, self.pid, self.args = name, pid, args

    def load(self, bench, connections, seconds=None, requests=None, perf=None):
        args = [bench, 'http-load'] + self.args + ['--connections', str(connections)]
        args += ['--requests', str(requests)] if requests else ['--seconds', str(seconds)]
        recorder = None
        if perf:  # perf record of this server during the run, into perf's file
            recorder = subprocess.Popen(['perf', 'record', '-q', '-F', '999', '--call-graph',
                                         os.environ.get('PERF_CALLGRAPH', 'dwarf,16384'), '-p',
                                         str(self.pid), '-o', perf], stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        cpu0 = dicomweb.cpu_seconds(self.pid)
        r = subprocess.run(args, capture_output=True, text=True, timeout=3600)
        cpu = dicomweb.cpu_seconds(self.pid) - cpu0
        if recorder:
            recorder.send_signal(signal.SIGINT)
            recorder.wait()
        if r.returncode != 0:
            raise SystemExit('%s: http-load failed: %s %s' % (self.name, r.stdout, r.stderr))
        out = json.loads(r.stdout)
        out['server_cpu_s'] = round(cpu, 3)
        out['server_cpu_us_per_frame'] = round(cpu / max(out['ok'], 1) * 1e6, 1)
        return out


def ahilite_target(name, server, ds, frames_file):
    return Target(name, server.proc.pid,
                  ['--mode', 'frames', '--endpoint', server.endpoint, '--datastore', ds,
                   '--frames-file', frames_file, '--access-key', ahltest.ACCESS_KEY,
                   '--secret-key', ahltest.SECRET_KEY, '--region', ahltest.REGION])


def orthanc_target(name, orth, paths_file):
    return Target(name, orth.proc.pid, ['--mode', 'get', '--endpoint', orth.endpoint,
                                         '--paths', paths_file, '--unsigned'])


def set_frames(client, ds, set_id):
    """The frame ids of an image set, in instance order."""
    blob = client.get_image_set_metadata(datastoreId=ds, imageSetId=set_id)
    doc = json.loads(gzip.decompress(blob['imageSetMetadataBlob'].read()))
    out = []
    for series in doc['Study']['Series'].values():
        insts = sorted(series['Instances'].values(),
                       key=lambda i: int(i['DICOM'].get('InstanceNumber', 0)))
        for inst in insts:
            out += [f['ID'] for f in inst.get('ImageFrames', [])]
    return out


def rounds(targets, run):
    """run(target) in rounds A B ... B A; {target name: [result, result]}."""
    out = {t.name: [] for t in targets}
    for t in targets + targets[::-1]:
        out[t.name].append(run(t))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--instances', type=int, default=1000)
    ap.add_argument('--frames', type=int, default=100000)
    ap.add_argument('--seconds', type=float, default=5)
    ap.add_argument('--before', help='an older ahilite binary, measured as a third side')
    ap.add_argument('--smoke', action='store_true')
    opt = ap.parse_args()
    if opt.smoke:
        opt.instances, opt.frames, opt.seconds = 10, 300, 0.5
    if not orthanc.available():
        print('Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)',
              file=sys.stderr)
        return 77
    build = os.environ.get('AHILITE_BUILD') or os.path.dirname(ahltest.server_binary())
    bench = os.path.join(build, 'ahilite-bench')
    if not os.access(bench, os.X_OK):
        raise SystemExit('no ahilite-bench in %s (cmake --build %s)' % (build, build))
    per_file = 100 if opt.smoke else 1000

    tmp = tempfile.mkdtemp(prefix='ahilite-getframe-bench-')
    servers, orthancs = [], []
    try:
        ct, many = os.path.join(tmp, 'ct'), os.path.join(tmp, 'many')
        for d, args in ((ct, ['ct', str(opt.instances)]),
                        (many, ['many', str(opt.frames)])):
            os.makedirs(d)
            subprocess.run(['/usr/bin/python3', '-c', GENERATOR] + args[:2] +
                           [d, UID_ROOT, ahltest.CT_SAMPLE, str(per_file)], check=True,
                           timeout=3600)

        def load(server):
            t0 = time.monotonic()
            ahltest.import_files(server, 'getframe', [ct, many])
            print(json.dumps({'run': 'ahilite-import', 'files': len(os.listdir(ct)) +
                              len(os.listdir(many)), 'frames': opt.instances + opt.frames,
                              'seconds': round(time.monotonic() - t0, 2)}), flush=True)
        srv = ahltest.Server(before_start=load)
        servers.append(srv)
        client = ahltest.boto3_client(srv)
        ds = client.list_datastores()['datastoreSummaries'][0]['datastoreId']
        sets = {}
        for s in client.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']:
            ids = set_frames(client, ds, s['imageSetId'])
            sets['ct' if len(ids) == opt.instances else 'many'] = (s['imageSetId'], ids)
        assert sorted(sets) == ['ct', 'many'], sets
        files = {}
        for name, (set_id, ids) in sets.items():
            files[name] = os.path.join(tmp, 'frames-%s.txt' % name)
            with open(files[name], 'w') as f:
                f.write(''.join('%s:%s\n' % (set_id, i) for i in ids))

        ct_files = sorted(os.path.join(ct, f) for f in os.listdir(ct))
        paths = {}
        for name, cfg in (('orthanc', None), ('orthanc-uncached', {'MaximumStorageCacheSize': 0})):
            orth = orthanc.Orthanc(config=cfg)
            orthancs.append(orth)
            t0 = time.monotonic()
            ids = [orth.upload(f) for f in ct_files]
            print(json.dumps({'run': '%s-import' % name, 'files': len(ids),
                              'seconds': round(time.monotonic() - t0, 2)}), flush=True)
            paths[name] = os.path.join(tmp, 'paths-%s.txt' % name)
            with open(paths[name], 'w') as f:
                f.write(''.join('/instances/%s/frames/0/raw\n' % i for i in ids))

        ahl_ct = ahilite_target('ahilite', srv, ds, files['ct'])
        targets = [ahl_ct, orthanc_target('orthanc', orthancs[0], paths['orthanc'])]
        uncached = orthanc_target('orthanc-uncached', orthancs[1], paths['orthanc-uncached'])
        before_many = None
        if opt.before:
            # A build from before --http-threads (its --workers, 2 here as well, was the HTTP
            # threads then) gets the options it knows.
            wrapper = os.path.join(tmp, 'before.sh')
            with open(wrapper, 'w') as f:
                f.write('#!/bin/bash\nif ! "%s" serve --help | grep -q -- --http-threads; then\n'
                        '  a=(); while [ $# -gt 0 ]; do [ "$1" = --http-threads ] && shift 2 '
                        '&& continue; a+=("$1"); shift; done; set -- "${a[@]}"\nfi\n'
                        'exec "%s" "$@"\n' % (opt.before, opt.before))
            os.chmod(wrapper, 0o755)
            saved = ahltest.server_binary()
            os.environ['AHILITE_BIN'] = wrapper
            try:
                before = ahltest.Server(
                    before_start=lambda s: setattr(s, 'data_dir', srv.data_dir))
            finally:
                os.environ['AHILITE_BIN'] = saved
            servers.append(before)
            targets.append(ahilite_target('ahilite-before', before, ds, files['ct']))
            before_many = ahilite_target('ahilite-before', before, ds, files['many'])

        def emit(run, r, target):
            print(json.dumps(dict(r, run=run, server=target)), flush=True)

        # Warm every side: one pass over its frames.
        for t in targets + [uncached]:
            emit('ct-warm', t.load(bench, 1, requests=opt.instances), t.name)
        table, recorded = [], []

        def measure(run, tlist, connections):
            def one(t):
                perf = None
                if os.environ.get('PERF_RUN') == run and t.name.startswith('ahilite'):
                    perf = '%s-%s-%d.data' % (os.environ.get('PERF_OUT', 'perf'), t.name,
                                              len(recorded))
                    recorded.append(perf)
                return t.load(bench, connections, seconds=opt.seconds, perf=perf)
            res = rounds(tlist, one)
            for name, runs in res.items():
                for r in runs:
                    emit(run, r, name)
            rate = {k: dicomweb.mean(v, 'per_s') for k, v in res.items()}
            cpu = {k: sum(r['server_cpu_s'] for r in v) / max(sum(r['ok'] for r in v), 1) * 1e6
                   for k, v in res.items()}
            table.append((run, rate, cpu))

        measure('ct-1', targets, 1)
        measure('ct-8', targets, 8)
        measure('ct-8-uncached', [ahl_ct, uncached], 8)

        # The many small frames: ahilite alone, cold then warm.
        many_targets = [ahilite_target('ahilite', srv, ds, files['many'])]
        if before_many:
            many_targets.append(before_many)
        for t in many_targets:
            r = t.load(bench, 8, requests=opt.frames)
            emit('many-8-cold', r, t.name)
            table.append(('many-8-cold', {t.name: r['per_s']},
                          {t.name: r['server_cpu_us_per_frame']}))
        measure('many-8', many_targets, 8)

        names = [t.name for t in targets] + ['orthanc-uncached']
        print('\n| run | ' + ' | '.join('%s frames/s' % n for n in names) +
              ' | ahilite / Orthanc | ' + ' | '.join('%s server CPU µs/frame' % n for n in names) +
              ' |')
        print('|---|' + '---:|' * (2 * len(names) + 1))
        for run, rate, cpu in table:
            peer = rate.get('orthanc', rate.get('orthanc-uncached'))
            ratio = '%.2f×' % (rate['ahilite'] / peer) if peer and 'ahilite' in rate else '—'
            print('| %s | ' % run +
                  ' | '.join('%.0f' % rate[n] if n in rate else '—' for n in names) +
                  ' | %s | ' % ratio +
                  ' | '.join('%.1f' % cpu[n] if n in cpu else '—' for n in names) + ' |')
        return 0
    finally:
        for orth in orthancs:
            orth.stop()
        for s in servers[::-1]:  # the first holds the data directory the others serve
            s.finish()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
