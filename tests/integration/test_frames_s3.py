"""Frames in an S3 bucket (`ahilite serve --blob-store s3://BUCKET/PREFIX --s3-endpoint URL`)
against moto_server, end to end.

Two servers import the same DICOM files with StartDICOMImportJob from one moto input bucket: one
keeps its frames in a moto bucket, the other in its data directory as by default. The job's
outputs (manifest, SUCCESS) land in the output bucket as always. Every frame is found at its
content-addressed key <prefix>/<id[0:2]>/<id>, of its FrameSizeInBytes, and GetImageFrame answers
the same bytes from both servers (the server on S3 started with a 1 MiB frame cache, so the
largest frame, ~0.5 MB of noise, is streamed through a temporary file while the others are held in
memory). `ahilite check --blob-store ...` finds the bucket sound. Then one object never read yet
is overwritten with other bytes through boto3: GetImageFrame answers InternalServerException,
never the wrong bytes, and `ahilite check` exits 1 naming the object. One object already held in
memory is also overwritten: it keeps being served from the bytes that were checked (objects are
content addresses; docs/frames.md#frames-on-s3) while `ahilite check` finds it.
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files/'
FILES = ['CT_small.dcm', 'MR_small_RLE.dcm', 'SC_rgb_rle_2frame.dcm', 'JPEG2000.dcm']
# A 512x512 frame of noise: its HTJ2K codestream (~0.5 MB) is over what a 1 MiB cache holds.
_NOISE = r'''
import random, sys
import pydicom
ds = pydicom.dcmread(sys.argv[2])
ds.StudyInstanceUID = '1.2.826.0.1.3680043.8.498.777.1'
ds.SeriesInstanceUID = ds.StudyInstanceUID + '.1'
ds.SOPInstanceUID = ds.SeriesInstanceUID + '.1'
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.Rows = ds.Columns = 512
ds.PixelData = random.Random(7).randbytes(512 * 512 * 2)
ds.save_as(sys.argv[1])
'''


def noise_file():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'noise.dcm')
        subprocess.run(['/usr/bin/python3', '-c', _NOISE, path, CORPUS + 'CT_small.dcm'],
                       check=True, timeout=60)
        with open(path, 'rb') as f:
            return f.read()
FRAMES_BUCKET = 'frames-bucket'
PREFIX = 'ahl/frames'
BLOB_STORE = 's3://%s/%s' % (FRAMES_BUCKET, PREFIX)


def start_moto():
    port = ahltest.free_port()
    proc = subprocess.Popen([sys.executable, '-m', 'moto.server', '-H', '127.0.0.1', '-p',
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = 'http://127.0.0.1:%d' % port
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(url + '/', timeout=1).read()
            return proc, url
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError('moto_server did not start')
            time.sleep(0.2)


class FramesOnS3(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import boto3
        # This suite chooses its blob stores itself.
        for k in ('AHL_TEST_BLOB_STORE', 'AHL_TEST_S3_ENDPOINT'):
            os.environ.pop(k, None)
        cls.moto, cls.url = start_moto()
        cls.env = dict(os.environ, AWS_ACCESS_KEY_ID='testing', AWS_SECRET_ACCESS_KEY='testing',
                       AWS_REGION='us-east-1')
        cls.s3 = boto3.client('s3', endpoint_url=cls.url, region_name='us-east-1',
                              aws_access_key_id='testing', aws_secret_access_key='testing')
        for b in ('in-bucket', 'out-bucket', FRAMES_BUCKET):
            cls.s3.create_bucket(Bucket=b)
        for name in FILES:
            with open(CORPUS + name, 'rb') as f:
                cls.s3.put_object(Bucket='in-bucket', Key='dicom/' + name, Body=f.read())
        cls.s3.put_object(Bucket='in-bucket', Key='dicom/noise.dcm', Body=noise_file())
        cls.on_s3 = ahltest.Server(extra_args=['--s3-endpoint', cls.url, '--blob-store',
                                               BLOB_STORE, '--frame-cache', '1'], env=cls.env)
        cls.on_files = ahltest.Server(extra_args=['--s3-endpoint', cls.url], env=cls.env)
        cls.c_s3 = ahltest.boto3_client(cls.on_s3)
        cls.c_files = ahltest.boto3_client(cls.on_files)
        cls.ds_s3 = ahltest.create_active_datastore(cls.c_s3, 'on-s3')
        cls.ds_files = ahltest.create_active_datastore(cls.c_files, 'on-files')
        cls.jobs = {}
        for name, c, ds in (('s3', cls.c_s3, cls.ds_s3), ('files', cls.c_files, cls.ds_files)):
            r = c.start_dicom_import_job(
                jobName='frames', datastoreId=ds, clientToken='frames-' + name,
                dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole',
                inputS3Uri='s3://in-bucket/dicom/', outputS3Uri='s3://out-bucket/%s/' % name)
            cls.jobs[name] = ahltest.wait_import_job(c, ds, r['jobId'], 180)
        # SOPInstanceUID -> (image set, [frame entries]) on each server.
        cls.frames_s3 = cls.instances(cls.c_s3, cls.ds_s3)
        cls.frames_files = cls.instances(cls.c_files, cls.ds_files)

    @staticmethod
    def instances(client, ds):
        out = {}
        for s in client.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']:
            blob = client.get_image_set_metadata(datastoreId=ds, imageSetId=s['imageSetId'])
            doc = json.loads(gzip.decompress(blob['imageSetMetadataBlob'].read()))
            for series in doc['Study']['Series'].values():
                for sop, inst in series['Instances'].items():
                    out[sop] = (s['imageSetId'], inst.get('ImageFrames', []))
        return out

    @classmethod
    def tearDownClass(cls):
        rcs = []
        for srv in (cls.on_s3, cls.on_files):
            rcs.append(srv.stop())
            srv.cleanup()
        cls.moto.terminate()
        cls.moto.wait(timeout=10)
        assert rcs == [0, 0], 'server exit statuses %r' % rcs

    def get(self, client, ds, set_id, frame_id):
        r = client.get_image_frame(datastoreId=ds, imageSetId=set_id,
                                   imageFrameInformation={'imageFrameId': frame_id})
        return r['imageFrameBlob'].read()

    def check(self):
        r = subprocess.run([ahltest.server_binary(), 'check', '--data-dir', self.on_s3.data_dir,
                            '--blob-store', BLOB_STORE, '--s3-endpoint', self.url],
                           capture_output=True, text=True, timeout=120, env=self.env)
        return r.returncode, r.stdout + r.stderr

    def key(self, frame_id):
        return '%s/%s/%s' % (PREFIX, frame_id[:2], frame_id)

    def test_frames_on_s3(self):
        for name, job in self.jobs.items():
            self.assertEqual(job['jobStatus'], 'COMPLETED', (name, job.get('message')))
            # The job's outputs still go to the output bucket (objstore), frames or not.
            folder = '%s/%s-DicomImport-%s/' % (name, job['datastoreId'], job['jobId'])
            manifest = json.loads(self.s3.get_object(
                Bucket='out-bucket', Key=folder + 'job-output-manifest.json')['Body'].read())
            self.assertEqual(manifest['jobSummary']['numberOfImportedFiles'], len(FILES) + 1)
            ok = self.s3.get_object(Bucket='out-bucket', Key=folder + 'SUCCESS/success.ndjson')
            self.assertEqual(len(ok['Body'].read().splitlines()), len(FILES) + 1)
        self.assertEqual(sorted(self.frames_s3), sorted(self.frames_files))

        # The bucket holds exactly the frames, at their content-addressed keys.
        all_frames = {}
        for sop, (set_id, frames) in self.frames_s3.items():
            self.assertEqual([f['ID'] for f in frames],
                             [f['ID'] for f in self.frames_files[sop][1]], sop)
            for f in frames:
                all_frames[f['ID']] = (sop, set_id, f)
        listed = {o['Key']: o['Size'] for p in self.s3.get_paginator('list_objects_v2').paginate(
            Bucket=FRAMES_BUCKET) for o in p.get('Contents', [])}
        self.assertEqual(listed, {self.key(i): f['FrameSizeInBytes']
                                  for i, (_, _, f) in all_frames.items()})
        # Nothing of the frames in the data directory of the server on S3.
        self.assertFalse(os.path.exists(os.path.join(self.on_s3.data_dir, 'frames')) and
                         os.listdir(os.path.join(self.on_s3.data_dir, 'frames')))
        biggest = max(all_frames, key=lambda i: all_frames[i][2]['FrameSizeInBytes'])
        self.assertGreater(all_frames[biggest][2]['FrameSizeInBytes'], 128 * 1024)

        # One frame is left unread (it is damaged below); every other one is served alike by
        # both servers, twice (the second time from the cache, or streamed again).
        victim = sorted(i for i in all_frames if i != biggest)[0]
        for frame_id, (sop, set_id, f) in sorted(all_frames.items()):
            if frame_id == victim:
                continue
            want = self.get(self.c_files, self.ds_files, self.frames_files[sop][0], frame_id)
            for _ in range(2):
                got = self.get(self.c_s3, self.ds_s3, set_id, frame_id)
                self.assertEqual(got, want, frame_id)
            self.assertGreaterEqual(len(got), f['FrameSizeInBytes'])
        # Temporary files of streamed frames do not stay behind.
        tmp = os.path.join(self.on_s3.data_dir, 'tmp')
        self.assertEqual([n for n in os.listdir(tmp) if n.startswith('frame-')], [])

        rc, out = self.check()
        self.assertEqual(rc, 0, out)
        self.assertIn('%d frames: 0 problems' % len(all_frames), out)

        # Damage: the unread victim, and a frame already held in memory.
        held = sorted(i for i in all_frames if i not in (victim, biggest))[0]
        for frame_id in (victim, held):
            size = all_frames[frame_id][2]['FrameSizeInBytes']
            self.s3.put_object(Bucket=FRAMES_BUCKET, Key=self.key(frame_id),
                               Body=bytes((i * 7 + 3) % 256 for i in range(size)))
        _, set_id, _ = all_frames[victim]
        with self.assertRaises(self.c_s3.exceptions.InternalServerException) as cm:
            self.get(self.c_s3, self.ds_s3, set_id, victim)
        self.assertIn('the stored frame is damaged', str(cm.exception))
        self.assertIn('stored frame %s is damaged' % victim, self.on_s3.log_text())
        sop, set_id, _ = all_frames[held]
        self.assertEqual(self.get(self.c_s3, self.ds_s3, set_id, held),
                         self.get(self.c_files, self.ds_files, self.frames_files[sop][0], held))

        rc, out = self.check()
        self.assertEqual(rc, 1, out)
        lines = [x for x in out.splitlines() if x.startswith('damage: ')]
        self.assertEqual(len(lines), 2, out)
        for frame_id in (victim, held):
            where = 's3://%s/%s' % (FRAMES_BUCKET, self.key(frame_id))
            self.assertTrue(any(frame_id in x and where in x and 'is damaged' in x
                                for x in lines), (frame_id, out))

        # Importing the source again repairs what it stores: the same job, the victim rewritten.
        r = self.c_s3.start_dicom_import_job(
            jobName='again', datastoreId=self.ds_s3, clientToken='again',
            dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole',
            inputS3Uri='s3://in-bucket/dicom/', outputS3Uri='s3://out-bucket/again/')
        job = ahltest.wait_import_job(self.c_s3, self.ds_s3, r['jobId'], 180)
        self.assertEqual(job['jobStatus'], 'COMPLETED', job.get('message'))
        rc, out = self.check()
        self.assertEqual(rc, 0, out)


if __name__ == '__main__':
    unittest.main(verbosity=2)
