#!/usr/bin/env python3
"""Benchmark: ahilite's import with frames against Orthanc's REST import, on the same unique-pixel
files in the same run.

One command. For each size N (default 1,000 and 5,000) it writes N copies of pydicom's
CT_small.dcm as one series with pydicom (tests/integration/ahltest.py, write_series with
unique_pixels: 128x128 16-bit native frames, four pixels changed per instance, so no two frames
are equal and the frame store's content addressing saves nothing), then stores them, each run into
a fresh server:

  ahilite  `ahilite serve --workers 2` (tests/integration/ahltest.py) and one StartDICOMImportJob
           over the files in a local bucket (hard links into DATA_DIR/buckets), as a user would
           import them: timed from the call until GetDICOMImportJob says COMPLETED (polled every
           50 ms); every instance must be in success.ndjson, none in failure.ndjson. Each frame
           is decoded, encoded as HTJ2K lossless, verified and stored, and made durable before
           the version naming it is committed.
  orthanc  Debian's Orthanc (tests/integration/orthanc.py), POST /instances of each file by
           --clients client threads (default 4), each on its own keep-alive connection, the files
           read into memory before timing; Orthanc's statistics must count N instances after.
  cli      `ahilite import --workers 2` of the same files into a fresh data directory (the
           command-line import, no server), timed by its wall clock and its own CPU.

Rounds A B B A (ahilite, Orthanc, Orthanc, ahilite); the figure is the mean of a side's two runs.
Each run also records its server's CPU seconds (utime+stime from /proc; the import CLI's own
rusage), so rates per CPU-second can be read on a shared machine. The client threads that feed
Orthanc run on the same cores (their CPU is printed as client_cpu_s). --baseline-bin BUILD/ahilite
adds, in the same rounds, another ahilite build (A B C C B A): before and after a change in one run.

Prints one JSON line per run, then a table: instances/s for each side, the ratio, and per CPU-second.

usage: bench/import_orthanc.py [--instances 1000,5000] [--clients 4] [--baseline-bin PATH]
                               [--skip-cli] [--smoke]
env:   AHILITE_BIN (default build/ahilite). --smoke: 20 instances, one round (A B), for the test
       suite (tests/integration/test_import_bench_smoke.py); its figures mean nothing.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(HERE, 'tests', 'integration'))
os.environ.setdefault('AHILITE_SRC', HERE)
os.environ.setdefault('AHILITE_BIN', os.path.join(HERE, 'build', 'ahilite'))
import ahltest  # noqa: E402
import orthanc  # noqa: E402

UID_ROOT = '1.2.826.0.1.3680043.8.498.9292.%d.'


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def own_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def result(side, n, wall, cpu, **extra):
    out = {'side': side, 'instances': n, 'wall_s': round(wall, 3), 'cpu_s': round(cpu, 3),
           'per_s': round(n / wall, 1), 'per_cpu_s': round(n / cpu, 1) if cpu > 0 else None}
    out.update(extra)
    return out


def run_ahilite(name, binary, files, n):
    """One StartDICOMImportJob of the files into a fresh `ahilite serve`."""
    saved = os.environ['AHILITE_BIN']
    os.environ['AHILITE_BIN'] = binary  # the build Server starts
    try:
        srv = ahltest.Server()
    finally:
        os.environ['AHILITE_BIN'] = saved
    try:
        mi = ahltest.boto3_client(srv)
        bucket = os.path.join(srv.data_dir, 'buckets', 'in-bucket', 'series')
        os.makedirs(bucket)
        os.makedirs(os.path.join(srv.data_dir, 'buckets', 'out-bucket'))
        for f in files:
            os.link(f, os.path.join(bucket, os.path.basename(f)))
        ds = ahltest.create_active_datastore(mi, 'bench')
        cpu0, t0 = cpu_seconds(srv.proc.pid), time.monotonic()
        job = mi.start_dicom_import_job(
            datastoreId=ds, clientToken=str(uuid.uuid4()), inputS3Uri='s3://in-bucket/series/',
            outputS3Uri='s3://out-bucket/o/', dataAccessRoleArn='arn:aws:iam::%s:role/r' %
            ahltest.ACCOUNT)
        while True:
            p = mi.get_dicom_import_job(datastoreId=ds, jobId=job['jobId'])['jobProperties']
            if p['jobStatus'] in ('COMPLETED', 'FAILED'):
                break
            time.sleep(0.05)
        wall, cpu = time.monotonic() - t0, cpu_seconds(srv.proc.pid) - cpu0
        if p['jobStatus'] != 'COMPLETED':
            raise SystemExit('%s: the import job ended %s' % (name, p))
        out = os.path.join(srv.data_dir, 'buckets', 'out-bucket', 'o',
                           '%s-DicomImport-%s' % (ds, job['jobId']))

        def lines(rel):
            path = os.path.join(out, rel)
            return sum(1 for _ in open(path)) if os.path.exists(path) else 0
        ok, failed = lines('SUCCESS/success.ndjson'), lines('FAILURE/failure.ndjson')
        if ok != n or failed:
            raise SystemExit('%s: %d of %d instances imported, %d failed' % (name, ok, n, failed))
        return result(name, n, wall, cpu, how='StartDICOMImportJob, serve --workers 2')
    finally:
        srv.finish()


def run_orthanc(files, n, clients):
    """POST /instances of every file from `clients` threads into a fresh Orthanc."""
    blobs = []
    for f in files:
        with open(f, 'rb') as fh:
            blobs.append(fh.read())
    orth = orthanc.Orthanc()
    try:
        own0 = own_cpu()
        wall, cpu, _ = orth.post_instances(blobs, clients)
        return result('orthanc', n, wall, cpu, how='REST POST /instances, %d clients' % clients,
                      client_cpu_s=round(own_cpu() - own0, 3))
    finally:
        orth.stop()


def run_cli(binary, directory, n):
    """`ahilite import --workers 2` of the directory into a fresh data directory."""
    data = tempfile.mkdtemp(prefix='ahilite-import-bench-')
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        p = subprocess.run([binary, 'import', '--data-dir', data, '--create-datastore', 'bench',
                            '--workers', '2', directory], capture_output=True, text=True,
                           timeout=3600)
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0 or ('imported %d files' % n) not in p.stdout:
            raise SystemExit('ahilite import failed: %s %s' % (p.stdout[-500:], p.stderr[-500:]))
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return result('ahilite-cli', n, wall, cpu, how='ahilite import --workers 2')
    finally:
        shutil.rmtree(data, ignore_errors=True)


def mean(runs, key):
    return sum(r[key] for r in runs) / len(runs)


def per_cpu(runs):
    return sum(r['instances'] for r in runs) / max(sum(r['cpu_s'] for r in runs), 1e-9)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--instances', default='1000,5000')
    ap.add_argument('--clients', type=int, default=4)
    ap.add_argument('--baseline-bin', help='another ahilite build to run in the same rounds')
    ap.add_argument('--skip-cli', action='store_true', help='no `ahilite import` runs')
    ap.add_argument('--smoke', action='store_true')
    opt = ap.parse_args()
    if opt.smoke:
        opt.instances = '20'
    sizes = [int(x) for x in opt.instances.split(',')]
    if not orthanc.available():
        print('Orthanc or its DICOMweb plugin is not installed (apt-get install orthanc '
              'orthanc-dicomweb)', file=sys.stderr)
        return 77
    binary = ahltest.server_binary()
    sides = [('ahilite', binary)]
    if opt.baseline_bin:
        sides.append(('ahilite-baseline', opt.baseline_bin))
    tmp = tempfile.mkdtemp(prefix='ahilite-import-orthanc-')
    table = []
    try:
        for k, n in enumerate(sizes):
            d = os.path.join(tmp, 'series-%d' % n)
            os.makedirs(d)
            ahltest.write_series(n, d, UID_ROOT % k, unique_pixels=True)
            files = [os.path.join(d, f) for f in sorted(os.listdir(d))]
            order = [s for s in sides] + [('orthanc', None)]
            if not opt.smoke:
                order = order + order[::-1]
            runs = {}
            for name, b in order:
                if name == 'orthanc':
                    r = run_orthanc(files, n, opt.clients)
                else:
                    r = run_ahilite(name, b, files, n)
                print(json.dumps(r), flush=True)
                runs.setdefault(name, []).append(r)
                if not opt.skip_cli and name != 'orthanc':
                    c = run_cli(b, d, n)
                    c['side'] = name + '-cli'
                    print(json.dumps(c), flush=True)
                    runs.setdefault(c['side'], []).append(c)
            o = runs['orthanc']
            for name in runs:
                if name == 'orthanc':
                    continue
                a = runs[name]
                row = {'instances': n, 'side': name, 'per_s': round(mean(a, 'per_s'), 1),
                       'orthanc_per_s': round(mean(o, 'per_s'), 1),
                       'ratio': round(mean(a, 'per_s') / mean(o, 'per_s'), 2),
                       'per_cpu_s': round(per_cpu(a), 1),
                       'orthanc_per_cpu_s': round(per_cpu(o), 1),
                       'ratio_per_cpu_s': round(per_cpu(a) / per_cpu(o), 2)}
                print(json.dumps(dict(row, run='summary')), flush=True)
                table.append(row)
            shutil.rmtree(d, ignore_errors=True)
        print('\n| instances | ahilite side | ahilite inst/s | Orthanc inst/s | ratio | '
              'ahilite per CPU-s | Orthanc per CPU-s | ratio per CPU-s |')
        print('|---:|---|---:|---:|---:|---:|---:|---:|')
        for r in table:
            print('| %d | %s | %.1f | %.1f | %.2f× | %.1f | %.1f | %.2f× |' % (
                r['instances'], r['side'], r['per_s'], r['orthanc_per_s'], r['ratio'],
                r['per_cpu_s'], r['orthanc_per_cpu_s'], r['ratio_per_cpu_s']))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
