#!/usr/bin/env python3
"""Benchmark: what recording reads as accesses (storage tiers, src/meta/access.c) costs
GetImageFrame and GetImageSetMetadata, against a build from before it, on the same data in the
same run.

One command. It synthesizes N instances (--instances, default 500) of pydicom's CT_small.dcm as
one series with frames all different (tests/integration/ahltest.py write_series), imports them
with `ahilite import` into a fresh data directory, and serves that directory with both builds at
once, their clocks 31 days ahead (AHILITE_CLOCK_OFFSET) so that the stored access of the set is
old and every read of the new build is recorded. Two phases, each in rounds A B B A of T seconds
(--seconds, default 5) a run, measured with `ahilite-bench http-load`:

  table    the new build with --access-flush-s 86400: its access stays in the table, so every
           read looks it up under the table's lock (the most a read pays);
  stored   the new build again (default options) once the first has written the access at its
           shutdown: every read finds the stored access of today and takes no lock (what reads
           pay once an access of the day is written);

and in each, against the old build: frames (GetImageFrame over the N frames in turn, 8
connections, warm: one pass first) and metadata (GetImageSetMetadata of the set, 1 connection).
Each run prints one JSON line (http-load's, with the server's CPU seconds from /proc); at the end
a table of the means, requests/s and server CPU µs per request, new over old.

usage: bench/tiers.py --before BIN [--instances 500] [--seconds 5] [--smoke]
env:   AHILITE_BIN (default build/ahilite), AHILITE_BUILD (where ahilite-bench is; default the
       directory of AHILITE_BIN). --smoke: 20 instances, 0.5 s runs; its figures mean nothing.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(HERE, 'bench'))
import getframe  # noqa: E402  (sets up the paths and the environment of ahltest)
import ahltest  # noqa: E402

DAY = 86400
UID_ROOT = '1.2.826.0.1.3680043.8.498.7374.'


def start(binary, data_dir, extra=()):
    saved = os.environ.get('AHILITE_BIN')
    os.environ['AHILITE_BIN'] = binary
    env = os.environ.copy()
    env['AHILITE_CLOCK_OFFSET'] = str(31 * DAY)
    try:
        return ahltest.Server(extra_args=list(extra), env=env,
                              before_start=lambda s: setattr(s, 'data_dir', data_dir))
    finally:
        if saved is None:
            del os.environ['AHILITE_BIN']
        else:
            os.environ['AHILITE_BIN'] = saved


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--before', required=True, help='an ahilite build from before the change')
    ap.add_argument('--instances', type=int, default=500)
    ap.add_argument('--seconds', type=float, default=5)
    ap.add_argument('--smoke', action='store_true')
    opt = ap.parse_args()
    if opt.smoke:
        opt.instances, opt.seconds = 20, 0.5
    after = os.path.abspath(os.environ.get('AHILITE_BIN', os.path.join(HERE, 'build', 'ahilite')))
    build = os.environ.get('AHILITE_BUILD', os.path.dirname(after))
    bench = os.path.join(build, 'ahilite-bench')
    os.environ['AHILITE_BIN'] = after

    tmp = tempfile.mkdtemp(prefix='ahilite-tiers-bench-')
    servers = []
    try:
        series = os.path.join(tmp, 'ct')
        os.makedirs(series)
        ahltest.write_series(opt.instances, series, UID_ROOT, unique_pixels=True)
        data = os.path.join(tmp, 'data')
        # Imported by the old build (whose schema the new one upgrades when it starts, the old
        # server running on), with the real clock: the set's access is 31 days old for both.
        holder = type('S', (), {'data_dir': data})
        os.environ['AHILITE_BIN'] = opt.before
        ahltest.import_files(holder, 'tiers-bench', [series])
        os.environ['AHILITE_BIN'] = after
        old = start(opt.before, data)
        servers.append(old)
        client = ahltest.boto3_client(old)
        ds = client.list_datastores()['datastoreSummaries'][0]['datastoreId']
        set_id = client.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries'][0][
            'imageSetId']
        ids = getframe.set_frames(client, ds, set_id)  # the old build records nothing
        frames_file = os.path.join(tmp, 'frames.txt')
        with open(frames_file, 'w') as f:
            f.write(''.join('%s:%s\n' % (set_id, i) for i in ids))

        def targets(srv, name):
            frames = getframe.ahilite_target(name, srv, ds, frames_file)
            meta = getframe.Target(name, srv.proc.pid,
                                   ['--mode', 'metadata', '--endpoint', srv.endpoint,
                                    '--datastore', ds, '--imagesets', set_id,
                                    '--access-key', ahltest.ACCESS_KEY,
                                    '--secret-key', ahltest.SECRET_KEY,
                                    '--region', ahltest.REGION])
            return frames, meta

        table = []
        for phase, extra in (('table', ['--access-flush-s', '86400']), ('stored', [])):
            new = start(after, data, extra)
            servers.append(new)
            sides = [targets(old, 'before'), targets(new, 'after')]
            for frames, _ in sides:  # warm: every frame in the frame cache, the access recorded
                frames.load(bench, 1, requests=len(ids))
            for mode, k, conns in (('frames', 0, 8), ('metadata', 1, 1)):
                res = getframe.rounds([s[k] for s in sides],
                                      lambda t: t.load(bench, conns, seconds=opt.seconds))
                for name, runs in res.items():
                    for r in runs:
                        print(json.dumps(dict(r, phase=phase, mode=mode, server=name)),
                              flush=True)
                mean = {}
                for name, runs in res.items():
                    rate = sum(r['ok'] / r['seconds'] for r in runs) / len(runs)
                    cpu = sum(r['server_cpu_s'] / max(r['ok'], 1) for r in runs) / len(runs)
                    mean[name] = (rate, cpu * 1e6)
                table.append((phase, mode, mean))
            new.stop()  # the new build writes the access it recorded
            servers.remove(new)
        print('\n%-8s %-9s %12s %12s %8s %14s %14s %8s' %
              ('phase', 'mode', 'before/s', 'after/s', 'ratio', 'before cpu us',
               'after cpu us', 'ratio'))
        for phase, mode, m in table:
            (rb, cb), (ra, ca) = m['before'], m['after']
            print('%-8s %-9s %12.0f %12.0f %8.3f %14.1f %14.1f %8.3f' %
                  (phase, mode, rb, ra, ra / rb, cb, ca, ca / cb))
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
