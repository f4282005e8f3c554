"""The collector racing writers (docs/architecture.md#garbage-collection).

A server collects in the background every second (--gc-interval 1, --gc-grace 5) while
`ahilite gc --grace 5 --batch 4 --pause 50` runs in a loop beside it (its pauses hold the
window between its mark and its deletes open for seconds), and for AHL_GC_RACE_SECONDS (12)
threads through boto3: import studies with StartDICOMImportJob (the same few studies again and
again, their frames and Patient chunks equal to those of sets deleted a moment before), delete
image sets, update PatientName among the names those studies carry (so that an update names a
chunk only a deleted set had, which the collector may be about to remove), and copy sets whose
source may be deleted meanwhile. Afterwards every import job COMPLETED, no file failed but for
the set being deleted under it,
`ahilite check` finds no missing chunk, frame or row, every version of every live set reads, every
frame of every live set is served, and a last collection with nothing running leaves the check
clean.
"""
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

SECONDS = float(os.environ.get('AHL_GC_RACE_SECONDS', '12'))
NAMES = ['RACE^ALPHA', 'RACE^BRAVO', 'RACE^CHARLIE', 'RACE^DELTA', 'RACE^ECHO', 'RACE^FOXTROT']
STUDIES = 6
_GEN = r'''
import random, sys
import pydicom
out, root, name, seed, tmpl = sys.argv[1:6]
for i in range(3):
    ds = pydicom.dcmread(tmpl)
    ds.PatientName = name
    ds.PatientID = 'RACE'
    ds.StudyInstanceUID = root + '1'
    ds.SeriesInstanceUID = root + '1.1'
    ds.SOPInstanceUID = root + '1.1.%d' % (i + 1)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    # Pixels from a pool of four: studies share frames.
    ds.PixelData = random.Random((int(seed) + i) % 4).randbytes(ds.Rows * ds.Columns * 2)
    ds.save_as('%s/i%d.dcm' % (out, i))
'''
ALLOWED = {'ConflictException', 'ResourceNotFoundException', 'ValidationException'}


class GcRace(unittest.TestCase):
    def setUp(self):
        self.inputs = tempfile.mkdtemp(prefix='ahl-gcrace-in-')
        os.makedirs(os.path.join(self.inputs, 'raceout'))
        for s in range(STUDIES):
            d = os.path.join(self.inputs, 'racein', 's%d' % s)
            os.makedirs(d)
            subprocess.run(['/usr/bin/python3', '-c', _GEN, d,
                            '1.2.826.0.1.3680043.8.498.50%d.' % s, NAMES[s % len(NAMES)],
                            str(s), ahltest.CT_SAMPLE], check=True, timeout=120)
        self.srv = ahltest.Server(extra_args=['--s3-root', self.inputs, '--gc-interval', '1',
                                              '--gc-grace', '5', '--workers', '2'])
        self.c = ahltest.boto3_client(self.srv)
        self.ds = ahltest.create_active_datastore(self.c, 'gc-race')
        self.lock = threading.Lock()
        self.errors = []
        self.jobs = []
        self.counts = {}
        self.stop = threading.Event()

    def tearDown(self):
        self.srv.finish()
        shutil.rmtree(self.inputs, ignore_errors=True)

    def note(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def call(self, what, fn, **kw):
        try:
            r = fn(**kw)
            self.note(what)
            return r
        except Exception as e:  # noqa: BLE001 - every other failure is recorded
            code = getattr(e, 'response', {}).get('Error', {}).get('Code')
            if code not in ALLOWED:
                with self.lock:
                    self.errors.append('%s: %r' % (what, e))
            return None

    def live_sets(self, c):
        r = c.search_image_sets(datastoreId=self.ds, maxResults=50)
        return [s['imageSetId'] for s in r['imageSetsMetadataSummaries']]

    def importer(self):
        c = ahltest.boto3_client(self.srv)
        n = 0
        while not self.stop.is_set():
            n += 1
            s = random.randrange(STUDIES)
            r = self.call('import', c.start_dicom_import_job, jobName='race',
                          datastoreId=self.ds, clientToken='race-%d-%d' % (n, time.time_ns()),
                          dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole',
                          inputS3Uri='s3://racein/s%d/' % s, outputS3Uri='s3://raceout/j%d/' % n)
            if r:
                job = ahltest.wait_import_job(c, self.ds, r['jobId'], 120)
                with self.lock:
                    self.jobs.append(job)

    def deleter(self):
        c = ahltest.boto3_client(self.srv)
        while not self.stop.is_set():
            sets = self.live_sets(c)
            if len(sets) > 2:
                self.call('delete', c.delete_image_set, datastoreId=self.ds,
                          imageSetId=random.choice(sets))
            time.sleep(0.3)

    def updater(self):
        c = ahltest.boto3_client(self.srv)
        while not self.stop.is_set():
            sets = self.live_sets(c)
            if not sets:
                time.sleep(0.1)
                continue
            s = random.choice(sets)
            got = self.call('get', c.get_image_set, datastoreId=self.ds, imageSetId=s)
            if not got:
                continue
            blob = json.dumps({'SchemaVersion': 1.1, 'Patient': {'DICOM': {
                'PatientName': random.choice(NAMES)}}}).encode()
            self.call('update', c.update_image_set_metadata, datastoreId=self.ds, imageSetId=s,
                      latestVersionId=got['versionId'],
                      updateImageSetMetadataUpdates={'DICOMUpdates': {'updatableAttributes': blob}})

    def copier(self):
        c = ahltest.boto3_client(self.srv)
        while not self.stop.is_set():
            sets = self.live_sets(c)
            if not sets:
                time.sleep(0.1)
                continue
            s = random.choice(sets)
            got = self.call('get', c.get_image_set, datastoreId=self.ds, imageSetId=s)
            if got:
                self.call('copy', c.copy_image_set, datastoreId=self.ds, sourceImageSetId=s,
                          copyImageSetInformation={'sourceImageSet': {
                              'latestVersionId': got['versionId']}})
            time.sleep(0.2)

    def collector(self):
        while not self.stop.is_set():
            p = subprocess.run([ahltest.server_binary(), 'gc', '--data-dir', self.srv.data_dir,
                                '--grace', '5', '--batch', '4', '--pause', '50'],
                               capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                with self.lock:
                    self.errors.append('gc exited %d: %s' % (p.returncode, p.stdout + p.stderr))
            self.note('gc')

    def check(self):
        p = subprocess.run([ahltest.server_binary(), 'check', '--data-dir', self.srv.data_dir],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn('damage', p.stdout)

    def test_race(self):
        threads = [threading.Thread(target=f) for f in
                   (self.importer, self.importer, self.deleter, self.updater, self.copier,
                    self.collector)]
        for t in threads:
            t.start()
        time.sleep(SECONDS)
        self.stop.set()
        for t in threads:
            t.join(timeout=300)
        print('gc race: %r' % self.counts, file=sys.stderr)
        self.assertEqual(self.errors, [])
        for op in ('import', 'delete', 'update', 'copy', 'gc'):
            self.assertGreater(self.counts.get(op, 0), 0, op)
        for job in self.jobs:
            self.assertEqual(job['jobStatus'], 'COMPLETED', job.get('message'))
        for d, _, files in os.walk(os.path.join(self.inputs, 'raceout')):
            for f in files:
                if f == 'failure.ndjson':
                    with open(os.path.join(d, f)) as fh:
                        # No instance may fail: one whose set the deleter deleted while the
                        # import wrote into it goes to a new set, and the collector never takes
                        # a frame an import is about to commit.
                        self.assertEqual(fh.read().strip(), '', d)
        self.check()
        self.assert_all_read()
        p = subprocess.run([ahltest.server_binary(), 'gc', '--data-dir', self.srv.data_dir,
                            '--grace', '0'], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.check()
        self.assert_all_read()

    def assert_all_read(self):
        token = None
        while True:
            kw = {'datastoreId': self.ds, 'maxResults': 50}
            if token:
                kw['nextToken'] = token
            r = self.c.search_image_sets(**kw)
            for s in r['imageSetsMetadataSummaries']:
                sid = s['imageSetId']
                latest = int(self.c.get_image_set(datastoreId=self.ds,
                                                  imageSetId=sid)['versionId'])
                for v in range(1, latest + 1):
                    blob = self.c.get_image_set_metadata(datastoreId=self.ds, imageSetId=sid,
                                                         versionId=str(v))
                    doc = json.loads(gzip.decompress(blob['imageSetMetadataBlob'].read()))
                for series in doc['Study']['Series'].values():
                    for inst in series['Instances'].values():
                        for f in inst.get('ImageFrames', []):
                            self.c.get_image_frame(
                                datastoreId=self.ds, imageSetId=sid,
                                imageFrameInformation={'imageFrameId': f['ID']})['imageFrameBlob'].read()
            token = r.get('nextToken')
            if not token:
                return


if __name__ == '__main__':
    unittest.main()
