"""`ahilite migrate` end to end. A server on SQLite and frame files gets two data stores: studies
imported with `ahilite import` (two series, a non-primary set), an instance stored with STOW-RS,
an import job, updates making several versions, a revert, a whole-set copy (whose frame rows come
from its source), a deleted copy, and tags on data stores and image sets. Every answer is
recorded (GetDatastore, ListTagsForResource, SearchImageSets, GetImageSet and
GetImageSetMetadata of every version, ListImageSetVersions, GetImageFrame of every frame,
import jobs, DICOMweb QIDO-RS at the three levels); the server is stopped, migrate must refuse a
source that is open, is killed with SIGKILL at growing delays and run again until it finishes
(continuing, never starting over), and a server on the target must give the same answers, with
`ahilite check` clean and the source untouched. The target is another data directory, or with
AHL_TEST_DATABASE (and AHL_TEST_BLOB_STORE) PostgreSQL (and an S3 bucket); the source is always
SQLite and files."""
import contextlib
import gzip
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

ROOT = '1.2.826.0.1.3680043.8.498.913.'
A, B = ROOT + '1', ROOT + '2'

_GENERATOR = r'''
import sys
import pydicom
out, sample, root = sys.argv[1], sys.argv[2], sys.argv[3]
k = 0
# study, series, instances, modality, patient
for st, se, n, mod, pn in ((root + '1', root + '1.1', 4, 'CT', 'Doe^John'),
                           (root + '1', root + '1.2', 3, 'MR', 'Doe^John'),
                           (root + '2', root + '2.1', 3, 'CT', 'Roe^Jane')):
    for i in range(n):
        ds = pydicom.dcmread(sample)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = st, se
        ds.SOPInstanceUID = se + '.%d' % (i + 1)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Modality, ds.InstanceNumber, ds.PatientName = mod, i + 1, pn
        px = bytearray(ds.PixelData)
        px[64 + (k % 200)] ^= 0x55  # no two frames alike
        ds.PixelData = bytes(px)
        ds.save_as('%s/f%03d.dcm' % (out, k))
        k += 1
# A file of the first series whose PatientName disagrees with its primary set: a non-primary set.
ds = pydicom.dcmread('%s/f000.dcm' % out)
ds.SOPInstanceUID = root + '1.1.99'
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.PatientName = 'Other^Person'
ds.save_as('%s/conflict.dcm' % out)
# One more study for STOW-RS and one for an import job.
for name, st in (('stow.dcm', root + '3'), ('job.dcm', root + '4')):
    ds = pydicom.dcmread(sample)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = st, st + '.1'
    ds.SOPInstanceUID = st + '.1.1'
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as('%s/%s' % (out, name))
'''

STORAGE_ENV = ('AHL_TEST_DATABASE', 'AHL_TEST_BLOB_STORE', 'AHL_TEST_S3_ENDPOINT')


@contextlib.contextmanager
def embedded():
    """The harness's storage variables set aside: the source is an embedded install."""
    saved = {k: os.environ.pop(k) for k in STORAGE_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def arn(ds, imageset=None):
    return 'arn:aws:medical-imaging:%s:%s:datastore/%s%s' % (
        ahltest.REGION, ahltest.ACCOUNT, ds, '/imageset/' + imageset if imageset else '')


def error_code(call):
    try:
        call()
    except Exception as e:  # botocore.exceptions.ClientError
        return getattr(e, 'response', {}).get('Error', {}).get('Code', repr(e))
    return None


def answers(server, known_sets):
    """Every answer the API gives about what the server holds, with the server's own address
    taken out of DICOMweb URLs."""
    mi = ahltest.boto3_client(server)
    out = {}
    dss = sorted(d['datastoreId'] for d in mi.list_datastores()['datastoreSummaries'])
    for ds in dss:
        p = mi.get_datastore(datastoreId=ds)['datastoreProperties']
        out['datastore', ds] = p
        out['tags', ds] = mi.list_tags_for_resource(resourceArn=arn(ds))['tags']
        jobs = mi.list_dicom_import_jobs(datastoreId=ds)['jobSummaries']
        out['jobs', ds] = jobs
        for j in jobs:
            out['job', j['jobId']] = mi.get_dicom_import_job(datastoreId=ds,
                                                             jobId=j['jobId'])['jobProperties']
        found, token = [], None
        while True:
            kw = {'nextToken': token} if token else {}
            r = mi.search_image_sets(datastoreId=ds, searchCriteria={}, maxResults=50, **kw)
            found += r['imageSetsMetadataSummaries']
            token = r.get('nextToken')
            if not token:
                break
        out['search', ds] = found
        for s in sorted({s['imageSetId'] for s in found} | set(known_sets.get(ds, ()))):
            latest = error_code(lambda: mi.get_image_set(datastoreId=ds, imageSetId=s))
            if latest:
                out['gone', s] = latest  # expired
                continue
            info = mi.get_image_set(datastoreId=ds, imageSetId=s)
            if info['imageSetState'] == 'DELETED':
                info.pop('ResponseMetadata')
                out['deleted', s] = info  # a tombstone: nothing else of it is readable
                continue
            out['tags', s] = mi.list_tags_for_resource(resourceArn=arn(ds, s))['tags']
            versions = mi.list_image_set_versions(datastoreId=ds, imageSetId=s,
                                                  maxResults=50)['imageSetPropertiesList']
            out['versions', s] = versions
            frames = set()
            for v in versions:
                vid = v['versionId']
                info = mi.get_image_set(datastoreId=ds, imageSetId=s, versionId=vid)
                info.pop('ResponseMetadata')
                out['imageset', s, vid] = info
                blob = mi.get_image_set_metadata(datastoreId=ds, imageSetId=s,
                                                 versionId=vid)['imageSetMetadataBlob'].read()
                doc = gzip.decompress(blob)
                out['metadata', s, vid] = hashlib.sha256(doc).hexdigest()
                for se in json.loads(doc)['Study']['Series'].values():
                    for inst in se['Instances'].values():
                        frames |= {f['ID'] for f in inst.get('ImageFrames', [])}
            for f in sorted(frames):
                blob = mi.get_image_frame(datastoreId=ds, imageSetId=s,
                                          imageFrameInformation={'imageFrameId': f})
                out['frame', s, f] = hashlib.sha256(blob['imageFrameBlob'].read()).hexdigest()
        host = server.endpoint.split('//', 1)[1]
        for path in ['/studies'] + ['/studies/%s/%s' % (st, lvl) for st in
                                    (A, B, ROOT + '3', ROOT + '4') for lvl in ('series',
                                                                               'instances')]:
            status, _, body = ahltest.raw('GET', server.endpoint, '/datastore/%s%s' % (ds, path))
            out['qido', ds, path] = (status, body.decode().replace(host, 'HOST'))
    for k, v in out.items():
        if isinstance(v, dict):
            v.pop('ResponseMetadata', None)
    return out


def migrate_args(source, target_dir):
    """The command that migrates source into the data directory target_dir of the harness's
    storage (PostgreSQL and a bucket with AHL_TEST_DATABASE, as ahltest's wrapper names them)."""
    args = [ahltest.real_binary(), 'migrate', '--from', source]
    if ahltest.on_postgres():
        args += ['--to', ahltest.database_for(target_dir), '--to-data-dir', target_dir]
        return args + ahltest.blob_store_for(target_dir)
    return args + ['--to', target_dir] + ahltest.blob_store_args()


def tree_digest(directory):
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(directory)):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            st = os.stat(p)
            h.update(('%s %d %d\n' % (os.path.relpath(p, directory), st.st_size,
                                      st.st_mtime_ns)).encode())
    return h.hexdigest()


class Migrate(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='ahilite-migrate-')
        self.dicom = os.path.join(self.tmp, 'dicom')
        os.makedirs(self.dicom)
        subprocess.run(['/usr/bin/python3', '-c', _GENERATOR, self.dicom, ahltest.CT_SAMPLE,
                        ROOT], check=True, timeout=120)

    def tearDown(self):
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    def make_source(self):
        """The embedded install to migrate, with everything the API can store in it; returns the
        server (running) and the ids of sets that search does not list (deleted)."""
        files = sorted(os.path.join(self.dicom, f) for f in os.listdir(self.dicom)
                       if f.startswith('f'))

        def before(server):
            p = subprocess.run([ahltest.real_binary(), 'import', '--data-dir', server.data_dir,
                                '--create-datastore', 'one'] + files,
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            ds = p.stdout.split()[3]  # "created data store <id> (one)"
            p = subprocess.run([ahltest.real_binary(), 'import', '--data-dir', server.data_dir,
                                '--datastore-id', ds, os.path.join(self.dicom, 'conflict.dcm')],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            bucket = os.path.join(server.data_dir, 'buckets', 'in-bucket', 'input')
            os.makedirs(bucket)
            os.makedirs(os.path.join(server.data_dir, 'buckets', 'out-bucket'))
            with open(os.path.join(self.dicom, 'job.dcm'), 'rb') as f, \
                    open(os.path.join(bucket, 'job.dcm'), 'wb') as g:
                g.write(f.read())

        with embedded():
            src = ahltest.Server(before_start=before)
        mi = ahltest.boto3_client(src)
        one = [d for d in mi.list_datastores()['datastoreSummaries']
               if d['datastoreName'] == 'one'][0]['datastoreId']
        two = ahltest.create_active_datastore(mi, 'two')
        mi.tag_resource(resourceArn=arn(one), tags={'team': 'radiology', 'env': 'test'})
        mi.tag_resource(resourceArn=arn(two), tags={'team': 'research'})

        # STOW-RS into the second data store, and an import job there.
        with open(os.path.join(self.dicom, 'stow.dcm'), 'rb') as f:
            part = f.read()
        boundary = 'migrate-boundary'
        body = (b'--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n--%s--\r\n' %
                (boundary.encode(), part, boundary.encode()))
        status, _, answer = ahltest.raw(
            'POST', src.endpoint, '/datastore/%s/studies' % two, body=body,
            headers={'Content-Type': 'multipart/related; type="application/dicom"; boundary=%s'
                     % boundary, 'Accept': 'application/dicom+json'})
        self.assertEqual(status, 200, answer)
        job = mi.start_dicom_import_job(
            jobName='migrate-test', datastoreId=two,
            dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole',
            inputS3Uri='s3://in-bucket/input/', outputS3Uri='s3://out-bucket/output/')
        props = ahltest.wait_import_job(mi, two, job['jobId'], 120)
        self.assertEqual(props['jobStatus'], 'COMPLETED', props.get('message'))

        # Versions: two updates and a revert of the primary set of study A's first series.
        sets = mi.search_image_sets(datastoreId=one, searchCriteria={})[
            'imageSetsMetadataSummaries']
        by_series = {}
        for s in sets:
            by_series.setdefault(s['DICOMTags'].get('DICOMSeriesInstanceUID'), []).append(s)
        a1 = [s for s in by_series[A + '.1'] if s['isPrimary']][0]['imageSetId']
        b1 = by_series[B + '.1'][0]['imageSetId']
        latest = '1'
        for upd in ({'Patient': {'DICOM': {'PatientName': 'Doe^Johnny'}}},
                    {'Study': {'DICOM': {'StudyDescription': 'after migration?'}}}):
            r = mi.update_image_set_metadata(
                datastoreId=one, imageSetId=a1, latestVersionId=latest,
                updateImageSetMetadataUpdates={'DICOMUpdates': {
                    'updatableAttributes': json.dumps({'SchemaVersion': '1.1', **upd}).encode()}})
            latest = r['latestVersionId']
        r = mi.update_image_set_metadata(
            datastoreId=one, imageSetId=a1, latestVersionId=latest,
            updateImageSetMetadataUpdates={'revertToVersionId': '2'})
        latest = r['latestVersionId']
        self.assertEqual(latest, '4')
        mi.tag_resource(resourceArn=arn(one, a1), tags={'reviewed': 'yes'})

        # A whole copy of B's set (it takes over B's frame rows), and a copy that is deleted.
        copy = mi.copy_image_set(datastoreId=one, sourceImageSetId=b1, copyImageSetInformation={
            'sourceImageSet': {'latestVersionId': '1'}})['destinationImageSetProperties'][
            'imageSetId']
        mi.tag_resource(resourceArn=arn(one, copy), tags={'copy': 'of b'})
        gone = mi.copy_image_set(datastoreId=one, sourceImageSetId=b1, copyImageSetInformation={
            'sourceImageSet': {'latestVersionId': '1'}})['destinationImageSetProperties'][
            'imageSetId']
        mi.delete_image_set(datastoreId=one, imageSetId=gone)
        return src, {one: [gone]}

    def run_migrate(self, source, target_dir):
        p = subprocess.run(migrate_args(source, target_dir), capture_output=True, text=True,
                           timeout=600)
        return p.returncode, p.stdout, p.stderr

    def test_migrate(self):
        src, known = self.make_source()
        try:
            before = answers(src, known)
            # The source is refused while a server has it open.
            code, out, err = self.run_migrate(src.data_dir,
                                              os.path.join(self.tmp, 'refused'))
            self.assertEqual(code, 2, out + err)
            self.assertIn('open in another process', err)
        finally:
            self.assertEqual(src.stop(), 0, src.log_text())
        source_files = tree_digest(src.data_dir)
        p = subprocess.run([ahltest.real_binary(), 'check', '--data-dir', src.data_dir],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        source_files = tree_digest(src.data_dir)
        runs = []

        def migrate_into(server):
            # Killed with SIGKILL as soon as it says it has begun copying frames, then chunks,
            # then image sets; each run continues where the one before stopped, and the last
            # one finishes.
            for marker in ('copying frames', 'copying chunks', 'copying image sets', None):
                proc = subprocess.Popen(migrate_args(src.data_dir, server.data_dir),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                if marker is None:
                    out, err = proc.communicate(timeout=600)
                    break
                seen = ''
                for line in proc.stderr:
                    seen += line
                    if re.search(marker.replace('copying ', r'copying (\d+ )?'), line):
                        proc.send_signal(signal.SIGKILL)
                        break
                proc.communicate()
                runs.append(seen)
            self.assertEqual(proc.returncode, 0, out + err)
            self.assertIn('0 differences, 0 problems on the target, 0 on the source', out)
            # The counts of both sides agree, row by row.
            for line in out.splitlines():
                m = re.match(r'^([a-z ]+?)\s+(\d+)\s+(\d+)', line)
                if m:
                    self.assertEqual(m.group(2), m.group(3), line)
            self.final_out = out
            self.final_err = err

        dst = ahltest.Server(before_start=migrate_into)
        try:
            after = answers(dst, known)
        finally:
            self.assertEqual(dst.stop(), 0, dst.log_text())
        # Some run was killed in the middle of the work (after it began copying, before it
        # verified), so a later one continued it.
        self.assertEqual(len(runs), 3, runs)
        self.assertTrue([e for e in runs if 'copying' in e and 'verifying' not in e],
                        'no run of migrate was interrupted halfway: %r' % runs)
        self.assertEqual(sorted(before), sorted(after))
        for k in before:
            self.assertEqual(before[k], after[k], k)
        # Enough was compared to mean something: versions, frames, QIDO answers.
        self.assertEqual(max(len(v) for k, v in before.items() if k[0] == 'versions'), 4)
        self.assertGreaterEqual(sum(1 for k in before if k[0] == 'frame'), 12)
        self.assertGreaterEqual(sum(1 for k in before if k[0] == 'metadata'), 10)
        studies = json.loads(before['qido', sorted(k[1] for k in before if k[0] == 'qido')[0],
                                    '/studies'][1])
        self.assertGreaterEqual(len(studies), 2)
        # The target is sound, and the source was not written.
        p = subprocess.run([ahltest.server_binary(), 'check', '--data-dir', dst.data_dir] +
                           ahltest.blob_store_args(), capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(tree_digest(src.data_dir), source_files)
        # Run again on a complete target: nothing is copied, everything verified.
        code, out, err = self.run_migrate(src.data_dir, dst.data_dir)
        self.assertEqual(code, 0, out + err)
        self.assertRegex(out, r' 0 frames copied .* already there; \d+ image sets, \d+ already')
        m = re.search(r'(\d+) image sets, (\d+) already there', out)
        self.assertEqual(m.group(1), m.group(2))
        dst.cleanup()
        src.cleanup()

    def test_damaged_source_frame(self):
        """A source frame whose bytes are not the ones its id names is reported, not copied, and
        the run exits 1, the target's check naming the frame as missing."""
        src = os.path.join(self.tmp, 'src')
        files = [os.path.join(self.dicom, f) for f in ('f000.dcm', 'f001.dcm')]
        p = subprocess.run([ahltest.real_binary(), 'import', '--data-dir', src,
                            '--create-datastore', 'small'] + files,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        frames = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(src, 'frames'))
                        for f in fs)
        self.assertEqual(len(frames), 2)
        with open(frames[0], 'ab') as f:
            f.write(b'xx')
        bad = os.path.basename(frames[0])
        with embedded():
            code, out, err = self.run_migrate(src, os.path.join(self.tmp, 'dst'))
        self.assertEqual(code, 1, out + err)
        self.assertRegex(out, r'source damage: image set [0-9a-f]{32} version 1: .*ImageFrames\[0\] '
                              r'frame %s: stored frame %s is damaged' % (bad, bad))
        self.assertRegex(out, r'target damage: .* frame %s: .* is missing' % bad)
        self.assertRegex(out, r'frames +1 +1\n')
        self.assertIn('0 differences, 1 problem on the target, 1 on the source', out)


if __name__ == '__main__':
    unittest.main()
