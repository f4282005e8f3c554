#!/usr/bin/env python3
"""Benchmark: ahilite on 1, 2 and 3 nodes sharing PostgreSQL and an S3 bucket, against the embedded
default (SQLite and files) and against Orthanc with its PostgreSQL index, in one run.

One command. It starts a PostgreSQL cluster (tests/pg/cluster.sh: Unix socket only, fsync on) and
moto_server (tests/pg/moto.sh) in a scratch directory, then measures:

  ceiling   PostgreSQL's own commit rate on this machine: pgbench of a one-row INSERT per
            transaction with 1 and 8 clients (-n, -T SECONDS).
  updates   UpdateImageSetMetadata of PatientName, each a new version, over 16 keep-alive
            connections (ahilite-bench http-load --mode update, one image set of one instance per
            connection, the connections spread over the nodes as a load balancer would), for
            SECONDS: on SQLite (one node) and on PostgreSQL with 1, 2 and 3 nodes. Each run prints
            the updates/s, their median and p99, the nodes' CPU seconds and PostgreSQL's commits in
            the run (pg_stat_database.xact_commit), so updates per commit can be read.
  big       the same update over 1 connection on an image set of 100 and of --big (10,000)
            instances, on SQLite and on PostgreSQL (1 node): the cost of an update must not grow
            with the set.
  import    the series of bench/import_orthanc.py (--instances, default 1,000 and 5,000 copies of
            CT_small.dcm with unique pixels): ahilite by StartDICOMImportJob (SQLite: one node,
            input in its local bucket; PostgreSQL: one job per node at once, the series split
            between them, input and frames in the moto bucket), timed until every job is
            COMPLETED; Orthanc (Debian's orthanc + orthanc-postgresql, a database of its own on
            the same cluster, files on disk, as many index connections as clients; a 503 it
            answers when two of them collide is sent again, and counted) and Orthanc on its
            default SQLite index, by REST POST /instances from --clients (4) threads.
            Instances/s and per server CPU-second.

Every server is fresh for its run. moto_server is a Python stand-in for S3 that runs on the same
cores, so the PostgreSQL+S3 import figures include its CPU (printed as moto_cpu_s).

Prints one JSON line per run, then Markdown tables.

usage: bench/nodes.py [--seconds 10] [--nodes 1,2,3] [--instances 1000,5000] [--big 10000]
                      [--clients 4] [--only ceiling,updates,big,import] [--smoke]
       (--only orthanc: the Orthanc import runs alone)
env:   AHILITE_BIN (default build/ahilite; ahilite-bench is taken from beside it).
       --smoke: tiny sizes, one-second runs, for a quick check that the script works.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(HERE, 'tests', 'integration'))
os.environ.setdefault('AHILITE_SRC', HERE)
os.environ.setdefault('AHILITE_BIN', os.path.join(HERE, 'build', 'ahilite'))
os.environ.setdefault('AWS_ACCESS_KEY_ID', 'testing')
os.environ.setdefault('AWS_SECRET_ACCESS_KEY', 'testing')
os.environ.setdefault('AWS_REGION', 'us-east-1')
import ahltest  # noqa: E402
import orthanc  # noqa: E402

PG = os.path.join(HERE, 'tests', 'pg')
ROLE = 'arn:aws:iam::%s:role/r' % ahltest.ACCOUNT


def cpu_seconds(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def sh(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop('timeout', 7200), **kw)
    if p.returncode != 0:
        raise SystemExit('%s failed (%d): %s %s' % (' '.join(argv[:3]), p.returncode,
                                                    p.stdout[-800:], p.stderr[-800:]))
    return p.stdout


def emit(row):
    print(json.dumps(row), flush=True)
    return row


class Env:
    """The PostgreSQL cluster and moto_server of the run."""

    def __init__(self, tmp):
        self.tmp = tmp
        os.chmod(tmp, 0o711)  # as root, the cluster runs as postgres and must reach its directory
        self.pg_dir = os.path.join(tmp, 'pg')
        self.url = sh(['bash', os.path.join(PG, 'cluster.sh'), 'start', self.pg_dir]).split()[-1]
        self.s3_dir = os.path.join(tmp, 's3')
        self.endpoint = sh(['bash', os.path.join(PG, 'moto.sh'), 'start', self.s3_dir]).split()[-1]
        with open(os.path.join(self.s3_dir, 'pid')) as f:
            self.moto_pid = int(f.read())
        self.n = 0

    def psql(self, sql, url=None):
        return sh(['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', url or self.url,
                   '-c', sql]).strip()

    def fresh(self):
        """A fresh schema and bucket prefix: (database URL, blob store URI)."""
        self.n += 1
        d = os.path.join(self.tmp, 'store%d' % self.n)
        return (ahltest.database_for(d, self.url),
                's3://ahl-test/' + ahltest._schema_of(d))

    def commits(self):
        return int(self.psql("SELECT xact_commit FROM pg_stat_database "
                             "WHERE datname = current_database()"))

    def close(self):
        subprocess.run(['bash', os.path.join(PG, 'moto.sh'), 'stop', self.s3_dir])
        subprocess.run(['bash', os.path.join(PG, 'cluster.sh'), 'stop', self.pg_dir])


class Store:
    """Where a run keeps its data: SQLite in each node's data directory (one node only), or a
    schema and bucket prefix shared by its nodes."""

    def __init__(self, env, postgres):
        self.env, self.postgres = env, postgres
        self.data_dir = tempfile.mkdtemp(prefix='ahilite-nodes-data-')
        if postgres:
            self.database, self.blob = env.fresh()

    def args(self):
        if not self.postgres:
            return []
        return ['--database', self.database, '--blob-store', self.blob,
                '--s3-endpoint', self.env.endpoint]

    def import_cli(self, directory):
        # One worker: the sets to update are set up, not measured, and their copies of one frame
        # then reach the bucket one at a time.
        sh([ahltest.real_binary(), 'import', '--data-dir', self.data_dir] + self.args() +
           ['--create-datastore', 'bench', '--workers', '1', directory])

    def start(self, nodes, extra=()):
        servers = []
        for i in range(nodes):
            def same_dir(s):
                if not self.postgres:
                    s.data_dir = self.data_dir  # the SQLite store of import_cli
            servers.append(ahltest.Server(extra_args=self.args() + list(extra),
                                          before_start=same_dir))
        return servers

    def close(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)


def stop(servers):
    for s in servers:
        s.finish()


def write_studies(n, directory, root):
    """n one-instance studies (an image set each)."""
    for k in range(n):
        sub = os.path.join(directory, 's%d' % k)
        os.makedirs(sub)
        ahltest.write_series(1, sub, root + '%d.' % k)


def http_load(servers, ds, sets, connections, seconds):
    """http-load --mode update over `connections` connections spread over the servers, one set
    each, all at once; returns the summed figures."""
    bench = os.path.join(os.path.dirname(ahltest.real_binary()), 'ahilite-bench')
    per = [[] for _ in servers]
    for c in range(connections):
        per[c % len(servers)].append(sets[c])
    procs = []
    for srv, mine in zip(servers, per):
        if not mine:
            continue
        procs.append(subprocess.Popen(
            [bench, 'http-load', '--endpoint', srv.endpoint, '--access-key', ahltest.ACCESS_KEY,
             '--secret-key', ahltest.SECRET_KEY, '--region', ahltest.REGION, '--datastore', ds,
             '--mode', 'update', '--imagesets', ','.join(mine), '--connections', str(len(mine)),
             '--seconds', str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    outs = []
    for p in procs:
        o, e = p.communicate(timeout=seconds + 300)
        if p.returncode != 0:
            raise SystemExit('http-load failed: %s %s' % (o, e))
        outs.append(json.loads(o.strip().splitlines()[-1]))
    return {'per_s': round(sum(o['per_s'] for o in outs), 1),
            'ok': sum(o['ok'] for o in outs),
            'failures': sum(o['failures'] for o in outs),
            'median_ms': round(max(o['median_ms'] for o in outs), 3),
            'p99_ms': round(max(o['p99_ms'] for o in outs), 3)}


def datastore_and_sets(server):
    mi = ahltest.boto3_client(server)
    ds = mi.list_datastores()['datastoreSummaries'][0]['datastoreId']
    sets, token = [], None
    while True:
        kw = {'nextToken': token} if token else {}
        r = mi.search_image_sets(datastoreId=ds, maxResults=50, **kw)
        sets += [s['imageSetId'] for s in r['imageSetsMetadataSummaries']]
        token = r.get('nextToken')
        if not token:
            return ds, sets


def run_updates(env, postgres, nodes, studies_dir, seconds, connections=16):
    store = Store(env, postgres)
    try:
        store.import_cli(studies_dir)
        servers = store.start(nodes)
        try:
            ds, sets = datastore_and_sets(servers[0])
            c0 = env.commits() if postgres else 0
            cpu0 = [cpu_seconds(s.proc.pid) for s in servers]
            r = http_load(servers, ds, sets, connections, seconds)
            cpu = sum(cpu_seconds(s.proc.pid) - c for s, c in zip(servers, cpu0))
            commits = env.commits() - c0 if postgres else None
        finally:
            stop(servers)
        row = dict(run='updates', store='postgresql' if postgres else 'sqlite', nodes=nodes,
                   connections=connections, seconds=seconds, server_cpu_s=round(cpu, 2),
                   cpu_us_per_update=round(cpu / max(r['ok'], 1) * 1e6), **r)
        if commits is not None:
            row['pg_commits'] = commits
            row['pg_commits_per_s'] = round(commits / seconds, 1)
            row['updates_per_commit'] = round(r['ok'] / max(commits, 1), 2)
        return emit(row)
    finally:
        store.close()


def run_big(env, postgres, series_dir, n, seconds):
    store = Store(env, postgres)
    try:
        store.import_cli(series_dir)
        servers = store.start(1)
        try:
            ds, sets = datastore_and_sets(servers[0])
            r = http_load(servers, ds, sets[:1], 1, seconds)
        finally:
            stop(servers)
        return emit(dict(run='big', store='postgresql' if postgres else 'sqlite', instances=n,
                         **r))
    finally:
        store.close()


def run_import_ahilite(env, postgres, nodes, files, n):
    store = Store(env, postgres)
    try:
        servers = store.start(nodes)
        try:
            mi = ahltest.boto3_client(servers[0])
            ds = ahltest.create_active_datastore(mi, 'bench')
            parts = [files[i::nodes] for i in range(nodes)]
            prefixes = []
            if postgres:
                s3 = boto_s3(env)
                bucket = 'in-' + uuid.uuid4().hex[:12]
                s3.create_bucket(Bucket=bucket)
                s3.create_bucket(Bucket=bucket + '-out')

                def up(part, k):
                    for f in part:
                        s3.upload_file(f, bucket, 'p%d/%s' % (k, os.path.basename(f)))
                ts = [threading.Thread(target=up, args=(p, k)) for k, p in enumerate(parts)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                prefixes = [('s3://%s/p%d/' % (bucket, k), 's3://%s-out/o%d/' % (bucket, k))
                            for k in range(nodes)]
            else:
                d = os.path.join(servers[0].data_dir, 'buckets', 'in-bucket', 'series')
                os.makedirs(d)
                os.makedirs(os.path.join(servers[0].data_dir, 'buckets', 'out-bucket'))
                for f in files:
                    os.link(f, os.path.join(d, os.path.basename(f)))
                prefixes = [('s3://in-bucket/series/', 's3://out-bucket/o/')]
            clients = [ahltest.boto3_client(s) for s in servers]
            cpu0 = [cpu_seconds(s.proc.pid) for s in servers]
            moto0 = cpu_seconds(env.moto_pid)
            t0 = time.monotonic()
            jobs = []
            for k, (inp, out) in enumerate(prefixes):
                c = clients[k % len(clients)]
                jobs.append((c, c.start_dicom_import_job(
                    datastoreId=ds, clientToken=str(uuid.uuid4()), inputS3Uri=inp,
                    outputS3Uri=out, dataAccessRoleArn=ROLE)['jobId']))
            for c, job in jobs:
                while True:
                    p = c.get_dicom_import_job(datastoreId=ds, jobId=job)['jobProperties']
                    if p['jobStatus'] in ('COMPLETED', 'FAILED'):
                        break
                    time.sleep(0.05)
                if p['jobStatus'] != 'COMPLETED':
                    raise SystemExit('import job ended %s' % p)
            wall = time.monotonic() - t0
            cpu = sum(cpu_seconds(s.proc.pid) - c for s, c in zip(servers, cpu0))
            moto = cpu_seconds(env.moto_pid) - moto0
        finally:
            stop(servers)
        row = dict(run='import', side='ahilite-%s-%dn' % ('pg' if postgres else 'sqlite', nodes),
                   instances=n, wall_s=round(wall, 2), per_s=round(n / wall, 1),
                   server_cpu_s=round(cpu, 2), per_cpu_s=round(n / cpu, 1) if cpu else None)
        if postgres:
            row['moto_cpu_s'] = round(moto, 2)
        return emit(row)
    finally:
        store.close()


def boto_s3(env):
    import boto3
    return boto3.client('s3', endpoint_url=env.endpoint, region_name='us-east-1',
                        aws_access_key_id='testing', aws_secret_access_key='testing')


def run_import_orthanc(env, postgres, files, n, clients):
    config = None
    if postgres:
        db = 'orthanc_' + uuid.uuid4().hex[:8]
        env.psql('CREATE DATABASE %s' % db)
        url = env.url.replace('postgresql:///ahilite', 'postgresql:///' + db)
        config = {'Plugins': [orthanc.plugin_path(),
                              '/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so'],
                  'PostgreSQL': {'EnableIndex': True, 'EnableStorage': False,
                                 'ConnectionUri': url, 'Lock': False,
                                 'IndexConnectionsCount': clients}}
    blobs = []
    for f in files:
        with open(f, 'rb') as fh:
            blobs.append(fh.read())
    orth = orthanc.Orthanc(config=config)
    try:
        wall, cpu, retried = orth.post_instances(blobs, clients)
        if postgres and 'PostgreSQL' not in orth.log_text() and \
                'postgresql' not in orth.log_text().lower():
            raise SystemExit('Orthanc did not load its PostgreSQL index plugin')
    finally:
        orth.stop()
    return emit(dict(run='import', side='orthanc-%s' % ('pg' if postgres else 'sqlite'),
                     instances=n, wall_s=round(wall, 2), per_s=round(n / wall, 1),
                     server_cpu_s=round(cpu, 2), per_cpu_s=round(n / cpu, 1) if cpu else None,
                     retried_503=retried))


def run_ceiling(env, seconds):
    env.psql('CREATE TABLE IF NOT EXISTS public.bench_commit (id bigserial PRIMARY KEY, v int)')
    script = os.path.join(env.tmp, 'commit.sql')
    with open(script, 'w') as f:
        f.write('INSERT INTO public.bench_commit (v) VALUES (1);\n')
    rows = []
    for c in (1, 8):
        out = sh(['pgbench', '-n', '-c', str(c), '-j', str(min(c, 2)), '-T', str(seconds), '-f',
                  script, env.url])
        tps = [line for line in out.splitlines() if line.startswith('tps')]
        value = float(tps[0].split('=')[1].split()[0])
        rows.append(emit(dict(run='ceiling', what='pgbench one-row INSERT per transaction',
                              clients=c, tps=round(value, 1))))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seconds', type=float, default=10)
    ap.add_argument('--nodes', default='1,2,3')
    ap.add_argument('--instances', default='1000,5000')
    ap.add_argument('--big', type=int, default=10000)
    ap.add_argument('--clients', type=int, default=4)
    ap.add_argument('--only', default='ceiling,updates,big,import')
    ap.add_argument('--smoke', action='store_true')
    opt = ap.parse_args()
    if opt.smoke:
        opt.seconds, opt.instances, opt.big = 1, '20', 200
    only = set(opt.only.split(','))
    nodes = [int(x) for x in opt.nodes.split(',')]
    tmp = tempfile.mkdtemp(prefix='ahilite-nodes-bench-')
    env = Env(tmp)
    seconds = int(opt.seconds) if opt.seconds >= 1 else 1
    rows = []
    try:
        emit(dict(run='machine', nproc=os.cpu_count(), load=os.getloadavg(),
                  postgresql=env.psql('SHOW server_version')))
        if 'ceiling' in only:
            rows += run_ceiling(env, seconds)
        if 'updates' in only:
            d = os.path.join(tmp, 'studies')
            write_studies(16, d, '1.2.826.0.1.3680043.8.498.7320.')
            rows.append(run_updates(env, False, 1, d, seconds))
            for n in nodes:
                rows.append(run_updates(env, True, n, d, seconds))
        if 'big' in only:
            for n in (100, opt.big):
                d = os.path.join(tmp, 'big%d' % n)
                os.makedirs(d)
                ahltest.write_series(n, d, '1.2.826.0.1.3680043.8.498.7321.%d.' % n)
                rows.append(run_big(env, False, d, n, seconds))
                rows.append(run_big(env, True, d, n, seconds))
                shutil.rmtree(d, ignore_errors=True)
        if 'import' in only or 'orthanc' in only:
            for k, n in enumerate(int(x) for x in opt.instances.split(',')):
                d = os.path.join(tmp, 'series%d' % n)
                os.makedirs(d)
                ahltest.write_series(n, d, '1.2.826.0.1.3680043.8.498.7322.%d.' % k,
                                     unique_pixels=True)
                files = [os.path.join(d, f) for f in sorted(os.listdir(d))]
                if 'import' in only:
                    rows.append(run_import_ahilite(env, False, 1, files, n))
                    for m in nodes:
                        rows.append(run_import_ahilite(env, True, m, files, n))
                if orthanc.available():
                    rows.append(run_import_orthanc(env, True, files, n, opt.clients))
                    rows.append(run_import_orthanc(env, False, files, n, opt.clients))
                shutil.rmtree(d, ignore_errors=True)
        table(rows)
        return 0
    finally:
        env.close()
        shutil.rmtree(tmp, ignore_errors=True)


def table(rows):
    ups = [r for r in rows if r['run'] == 'updates']
    if ups:
        print('\n| store | nodes | updates/s | median ms | p99 ms | server CPU µs/update | '
              'PG commits/s | updates/commit |')
        print('|---|---:|---:|---:|---:|---:|---:|---:|')
        for r in ups:
            print('| %s | %d | %.0f | %.2f | %.2f | %d | %s | %s |' % (
                r['store'], r['nodes'], r['per_s'], r['median_ms'], r['p99_ms'],
                r['cpu_us_per_update'], r.get('pg_commits_per_s', '–'),
                r.get('updates_per_commit', '–')))
    big = [r for r in rows if r['run'] == 'big']
    if big:
        print('\n| store | instances in the set | updates/s (1 connection) | median ms | p99 ms |')
        print('|---|---:|---:|---:|---:|')
        for r in big:
            print('| %s | %d | %.0f | %.2f | %.2f |' % (r['store'], r['instances'], r['per_s'],
                                                     r['median_ms'], r['p99_ms']))
    imp = [r for r in rows if r['run'] == 'import']
    if imp:
        print('\n| side | instances | wall s | instances/s | server CPU s | per CPU-s |')
        print('|---|---:|---:|---:|---:|---:|')
        for r in imp:
            print('| %s | %d | %.1f | %.1f | %.1f | %s |' % (
                r['side'], r['instances'], r['wall_s'], r['per_s'], r['server_cpu_s'],
                r['per_cpu_s']))
    ceil = [r for r in rows if r['run'] == 'ceiling']
    for r in ceil:
        print('\nPostgreSQL ceiling: %d client(s), %.0f commits/s' % (r['clients'], r['tps']))


if __name__ == '__main__':
    sys.exit(main())
