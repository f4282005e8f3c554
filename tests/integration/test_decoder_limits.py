"""Decoder resource limits and job messages, through the real binary.

- `ahilite frames` on the inputs of decoder_attacks.py (a JP2 with a decoy SIZ before a codestream
  of 65,025 tiles; a half-megabyte deflated file holding a 512 MiB frame) is refused with a reason
  and a small peak RSS (both used 0.8 GB and 3.2 GB before the limits judged what the decoder
  would really allocate); a legitimate 4096x4096 RGB 16-bit frame is still transcoded.
- An import job over those files, a frame over the server's --import-memory, and a symbolic
  link leading out of the bucket: the job
  completes, each failure says why, and no job message or output line names a server path (the
  bucket root, the data directory or its scratch directory), only s3://bucket/key.
"""
# pg: no (the decoders' limits: no storage in question)
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import decoder_attacks  # noqa: E402

MIB = 1 << 20


def frames_peak_rss(path):
    """Runs `ahilite frames path` in a child of its own and returns (output, peak RSS bytes)."""
    code = ('import resource, subprocess, sys\n'
            'p = subprocess.run(sys.argv[1:], capture_output=True)\n'
            'sys.stdout.write(p.stdout.decode())\n'
            'print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n')
    out = subprocess.run([sys.executable, '-c', code, ahltest.server_binary(), 'frames', path],
                         capture_output=True, check=True, timeout=120).stdout.decode()
    lines = out.strip().splitlines()
    return json.loads(lines[0]), int(lines[-1]) * 1024


class FramesCommand(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix='ahilite-limits-')
        for name, data in (('decoy.dcm', decoder_attacks.j2k_decoy_dicom()),
                           ('bomb.dcm', decoder_attacks.deflated_bomb_dicom())):
            with open(os.path.join(cls.dir, name), 'wb') as f:
                f.write(data)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_decoy_siz(self):
        out, rss = frames_peak_rss(os.path.join(self.dir, 'decoy.dcm'))
        self.assertIn('65025 tiles of 3 components', out['error'])
        self.assertLess(rss, 200 * MIB)

    def test_deflated_bomb(self):
        out, rss = frames_peak_rss(os.path.join(self.dir, 'bomb.dcm'))
        self.assertIn('16384x16384 frame', out['error'])
        self.assertIn('at most 2048 MiB per frame', out['error'])
        self.assertLess(rss, 200 * MIB)

    def test_large_legitimate_frame(self):
        path = os.path.join(self.dir, 'rgb16.dcm')
        with open(path, 'wb') as f:
            f.write(decoder_attacks.native_dicom(decoder_attacks.TS_DEFLATED, '1.2.3.4.5', 4096,
                                                 4096, 16, 3))
        out, rss = frames_peak_rss(path)
        self.assertNotIn('error', out)
        self.assertEqual(out['ImageFrames'][0]['PixelDataChecksumFromBaseToFullResolution'][-1]
                         ['Width'], 4096)
        self.assertLess(rss, 2048 * MIB)


class JobMessages(unittest.TestCase):
    def test_no_server_paths(self):
        root = tempfile.mkdtemp(prefix='ahilite-s3root-')
        outside = tempfile.mkdtemp(prefix='ahilite-outside-')
        try:
            bucket = os.path.join(root, 'in-bucket', 'attacks')
            os.makedirs(bucket)
            os.makedirs(os.path.join(root, 'out-bucket'))
            with open(os.path.join(bucket, 'decoy.dcm'), 'wb') as f:
                f.write(decoder_attacks.j2k_decoy_dicom())
            with open(os.path.join(bucket, 'bomb.dcm'), 'wb') as f:
                f.write(decoder_attacks.deflated_bomb_dicom())
            # Under the cost limit of one frame, over the server's import memory of 64 MiB.
            with open(os.path.join(bucket, 'large.dcm'), 'wb') as f:
                f.write(decoder_attacks.deflated_bomb_dicom('1.2.826.0.1.3680043.8.498.9003',
                                                            side=4096))
            with open(os.path.join(outside, 'secret.dcm'), 'wb') as f:
                f.write(b'not for the job')
            os.symlink(os.path.join(outside, 'secret.dcm'), os.path.join(bucket, 'link.dcm'))
            server = ahltest.Server(extra_args=['--s3-root', root, '--import-memory', '64'])
            try:
                client = ahltest.boto3_client(server)
                ds = ahltest.create_active_datastore(client, 'limits')
                r = client.start_dicom_import_job(
                    datastoreId=ds, dataAccessRoleArn='arn:aws:iam::123456789012:role/R',
                    clientToken='limits', inputS3Uri='s3://in-bucket/attacks/',
                    outputS3Uri='s3://out-bucket/o/')
                props = ahltest.wait_import_job(client, ds, r['jobId'], 120)
                self.assertEqual(props['jobStatus'], 'COMPLETED', props.get('message'))
                folder = os.path.join(root, 'out-bucket', 'o', '%s-DicomImport-%s' %
                                      (ds, r['jobId']))
                with open(os.path.join(folder, 'FAILURE', 'failure.ndjson')) as f:
                    failures = {json.loads(x)['inputFile']: json.loads(x)['exception']['message']
                                for x in f if x.strip()}
                self.assertEqual(sorted(failures), ['attacks/bomb.dcm', 'attacks/decoy.dcm',
                                                    'attacks/large.dcm', 'attacks/link.dcm'])
                self.assertIn("import's memory budget of 64 MiB", failures['attacks/large.dcm'])
                self.assertIn('65025 tiles', failures['attacks/decoy.dcm'])
                self.assertIn('MiB', failures['attacks/bomb.dcm'])
                self.assertIn('outside its bucket', failures['attacks/link.dcm'])
                failed = client.start_dicom_import_job(
                    datastoreId=ds, dataAccessRoleArn='arn:aws:iam::123456789012:role/R',
                    clientToken='missing', inputS3Uri='s3://no-such-bucket/x/',
                    outputS3Uri='s3://out-bucket/o/')
                gone = ahltest.wait_import_job(client, ds, failed['jobId'], 120)
                self.assertEqual(gone['jobStatus'], 'FAILED')
                texts = [gone.get('message', ''), props.get('message', '')]
                for dirpath, _, names in os.walk(folder):
                    for name in names:
                        with open(os.path.join(dirpath, name)) as f:
                            texts.append(f.read())
                for text in texts:
                    for path in (root, outside, os.path.realpath(root),
                                 os.path.realpath(outside), server.data_dir):
                        self.assertNotIn(path, text)
            finally:
                rc = server.stop()
                server.cleanup()
                self.assertEqual(rc, 0)
        finally:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(outside, ignore_errors=True)


if __name__ == '__main__':
    unittest.main(verbosity=2)
