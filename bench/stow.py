#!/usr/bin/env python3
"""Benchmark: STOW-RS throughput against an import job of the same files, in the same run.

Synthesizes N instances from pydicom's CT_small.dcm (128x128 16-bit native pixel data, so each
frame is decoded, encoded as HTJ2K lossless, verified and stored; new SOPInstanceUID per file,
one series), starts `ahilite serve` on a scratch data directory, and stores them twice into two
fresh data stores:
  1. baseline: one StartDICOMImportJob over the files in a local bucket, timed from the call to
     COMPLETED (polled every 50 ms);
  2. STOW-RS: POST /datastore/{id}/studies, multipart/related bodies of B instances each, signed
     with botocore's SigV4Auth (the body's hash in the signature), sent one after another over one
     connection; timed from the first request to the last answer.
For both: instances/s (wall) and per CPU-second of the server (utime + stime from /proc), and
the server's peak RSS at the end. The client (this script, signing and hashing each body) runs
on the same machine. Prints one JSON line per run and the ratio.

usage: bench/stow.py [N] [B]   (defaults 500 and 50; env AHILITE_BIN)
"""
import json
import os
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(HERE, 'tests', 'integration'))
import ahltest  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
B = int(sys.argv[2]) if len(sys.argv) > 2 else 50

_SYNTH = r'''
import sys
import pydicom
from pydicom.uid import generate_uid
out, n = sys.argv[1], int(sys.argv[2])
ds = pydicom.dcmread('/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm')
ds.SeriesInstanceUID = generate_uid()
for i in range(n):
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = i + 1
    ds.save_as('%s/%05d.dcm' % (out, i), write_like_original=True)
'''


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def peak_rss_mib(pid):
    with open('/proc/%d/status' % pid) as f:
        return int([x for x in f if x.startswith('VmHWM:')][0].split()[1]) / 1024


def main():
    srv = ahltest.Server()
    try:
        mi = ahltest.boto3_client(srv)
        bucket = os.path.join(srv.data_dir, 'buckets', 'in-bucket', 'bench')
        os.makedirs(bucket)
        os.makedirs(os.path.join(srv.data_dir, 'buckets', 'out-bucket'))
        subprocess.run(['/usr/bin/python3', '-c', _SYNTH, bucket, str(N)], check=True)
        files = sorted(os.path.join(bucket, f) for f in os.listdir(bucket))
        datas = []
        for p in files:
            with open(p, 'rb') as f:
                datas.append(f.read())
        runs = {}

        ds = ahltest.create_active_datastore(mi, 'bench-job')
        cpu0, t0 = cpu_seconds(srv.proc.pid), time.monotonic()
        job = mi.start_dicom_import_job(
            datastoreId=ds, clientToken=str(uuid.uuid4()), inputS3Uri='s3://in-bucket/bench/',
            outputS3Uri='s3://out-bucket/o/', dataAccessRoleArn='arn:aws:iam::123456789012:role/r')
        while True:
            p = mi.get_dicom_import_job(datastoreId=ds, jobId=job['jobId'])['jobProperties']
            if p['jobStatus'] in ('COMPLETED', 'FAILED'):
                break
            time.sleep(0.05)
        assert p['jobStatus'] == 'COMPLETED', p
        runs['import_job'] = (time.monotonic() - t0, cpu_seconds(srv.proc.pid) - cpu0)

        ds = ahltest.create_active_datastore(mi, 'bench-stow')
        boundary = 'bench-boundary'
        cpu0, t0 = cpu_seconds(srv.proc.pid), time.monotonic()
        stored = 0
        for i in range(0, N, B):
            body = b''.join(b'--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n' %
                            (boundary.encode(), d) for d in datas[i:i + B])
            body += b'--%s--\r\n' % boundary.encode()
            st, _, b = ahltest.raw(
                'POST', srv.endpoint, '/datastore/%s/studies' % ds, body=body,
                headers={'Content-Type': 'multipart/related; type="application/dicom"; '
                                         'boundary=' + boundary})
            assert st == 200, b[:300]
            stored += len(json.loads(b)['00081199']['Value'])
        assert stored == N, stored
        runs['stow'] = (time.monotonic() - t0, cpu_seconds(srv.proc.pid) - cpu0)

        for name, (wall, cpu) in runs.items():
            print(json.dumps({'run': name, 'instances': N, 'per_request': B if name == 'stow'
                              else None, 'wall_s': round(wall, 3), 'server_cpu_s': round(cpu, 3),
                              'instances_per_s': round(N / wall, 1),
                              'instances_per_cpu_s': round(N / cpu, 1) if cpu else None}))
        print(json.dumps({
            'stow_vs_job_wall': round(runs['import_job'][0] / runs['stow'][0], 2),
            'stow_vs_job_per_cpu': round(runs['import_job'][1] / runs['stow'][1], 2),
            'server_peak_rss_mib': round(peak_rss_mib(srv.proc.pid), 1)}))
    finally:
        srv.finish()


if __name__ == '__main__':
    main()
