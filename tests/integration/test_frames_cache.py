"""GetImageFrame answered from frames held in memory (`serve --frame-cache`, docs/frames.md), through
boto3, is what it was without them, and a deletion takes effect at once.

Two image sets hold the same frame (CT_small.dcm in two studies: frame ids are content
addresses). Each is served repeatedly, as a JPH file and as the bare codestream (Accept:
image/jphc), from the one verified copy in memory: the JPH file's jp2c box is the codestream byte
for byte, the codestream hashes to the frame's ID, and a second server on the same data directory
with `--frame-cache 0` (every request reads and hashes the file) answers the same bytes. Then one
set is deleted: its GetImageFrame is a ResourceNotFoundException on the very next request, while
the other set, which still lists the frame, keeps being served. Damage after a frame was served
from memory is test_frames_damage.py's: it serves every frame before it damages the files.
"""
# pg: full (the frame cache; test_frames_s3.py checks frames on S3 with it)
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import jph  # noqa: E402

HTJ2K_RPCL = b'1.2.840.10008.1.2.4.202'

# CT_small.dcm twice, in two studies: the same pixels, so the same frame.
TWO_STUDIES = r'''
import sys
import pydicom
out, sample = sys.argv[1], sys.argv[2]
for k in range(2):
    ds = pydicom.dcmread(sample)
    root = '1.2.826.0.1.3680043.8.498.4242.%d.' % k
    ds.StudyInstanceUID, ds.SeriesInstanceUID = root + '1', root + '1.1'
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = root + '1.1.1'
    ds.save_as('%s/s%d.dcm' % (out, k))
'''


class FramesCache(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.src = tempfile.mkdtemp(prefix='ahilite-frames-cache-')
        subprocess.run(['/usr/bin/python3', '-c', TWO_STUDIES, cls.src, ahltest.CT_SAMPLE],
                       check=True, timeout=60)
        cls.server = ahltest.Server(
            before_start=lambda s: ahltest.import_files(s, 'cache', [cls.src]))
        cls.client = ahltest.boto3_client(cls.server)
        c = cls.client
        cls.ds = c.list_datastores()['datastoreSummaries'][0]['datastoreId']
        cls.sets = {}  # image set id -> its one frame id
        for s in c.search_image_sets(datastoreId=cls.ds)['imageSetsMetadataSummaries']:
            blob = c.get_image_set_metadata(datastoreId=cls.ds, imageSetId=s['imageSetId'])
            doc = json.loads(gzip.decompress(blob['imageSetMetadataBlob'].read()))
            ids = [f['ID'] for se in doc['Study']['Series'].values()
                   for i in se['Instances'].values() for f in i['ImageFrames']]
            cls.sets[s['imageSetId']] = ids[0]
        assert len(cls.sets) == 2 and len(set(cls.sets.values())) == 1, cls.sets

    @classmethod
    def tearDownClass(cls):
        cls.server.finish()
        subprocess.run(['rm', '-rf', cls.src], check=True)

    def get(self, client, set_id, frame_id, accept=None):
        def add_accept(request, **kwargs):
            request.headers['Accept'] = accept
        event = 'before-sign.medical-imaging.GetImageFrame'
        if accept:
            client.meta.events.register(event, add_accept)
        try:
            r = client.get_image_frame(datastoreId=self.ds, imageSetId=set_id,
                                       imageFrameInformation={'imageFrameId': frame_id})
            return r['contentType'], r['imageFrameBlob'].read()
        finally:
            if accept:
                client.meta.events.unregister(event, add_accept)

    def test_a_served_from_memory_as_from_the_file(self):
        (set_a, frame), (set_b, _) = sorted(self.sets.items())
        answers = {}
        for _ in range(3):
            for set_id in (set_a, set_b):
                for accept in (None, 'image/jphc'):
                    got = self.get(self.client, set_id, frame, accept)
                    self.assertEqual(answers.setdefault(accept, got), got)
        ctype, jph_file = answers[None]
        self.assertEqual(ctype, 'image/jph')
        ctype, codestream = answers['image/jphc']
        self.assertEqual(ctype, 'image/jphc')
        _, _, cs = jph.parse(jph_file)
        self.assertEqual(cs, codestream)
        self.assertTrue(jph_file.endswith(codestream))
        inner = hashlib.sha256(codestream).digest()
        self.assertEqual(hashlib.sha256(HTJ2K_RPCL + b'\0' + inner).hexdigest()[:32], frame)

        # The same data directory served without the cache: the same bytes.
        plain = ahltest.Server(extra_args=['--frame-cache', '0'],
                               before_start=lambda s: setattr(s, 'data_dir',
                                                              self.server.data_dir))
        try:
            client = ahltest.boto3_client(plain)
            for accept in (None, 'image/jphc'):
                self.assertEqual(self.get(client, set_a, frame, accept), answers[accept])
        finally:
            plain.stop()
            plain.cleanup()

    def test_b_deleted_set_is_not_found_at_once(self):
        (set_a, frame), (set_b, _) = sorted(self.sets.items())
        for set_id in (set_a, set_b):
            self.assertEqual(self.get(self.client, set_id, frame)[0], 'image/jph')
        self.client.delete_image_set(datastoreId=self.ds, imageSetId=set_a)
        with self.assertRaises(self.client.exceptions.ResourceNotFoundException):
            self.get(self.client, set_a, frame)
        # The other set still lists the same frame: still served.
        self.assertEqual(self.get(self.client, set_b, frame)[0], 'image/jph')


if __name__ == '__main__':
    unittest.main(verbosity=2)
