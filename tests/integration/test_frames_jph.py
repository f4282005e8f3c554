"""GetImageFrame's image/jph answers are JPH files, through boto3: the HTJ2K lossless frames of a
grey CT and an RGB image, imported with `ahilite import`, come as a JPEG 2000 signature box, ftyp
(brand 'jph '), jp2h (ihdr with the frame's size, components and depth; colr) and a jp2c box
holding the stored codestream byte for byte, whose content hash is the frame's ID and whose
length is FrameSizeInBytes. OpenJPEG's opj_decompress decodes the file (as .jph and as .jp2, its
JP2 reader, the one AWS's samples use) to the same samples as the bare codestream (.j2k), and
OpenJPH's ojph_expand decodes the codestream. A client sending `Accept: image/jphc` (added to the
signed request with a botocore event hook) gets the bare codestream labelled image/jphc.
"""
# pg: full (the JPH wrapping of a frame: no storage in question)
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

TF = '/usr/lib/python3/dist-packages/pydicom/data/test_files/'
FILES = {'CT_small.dcm': (128, 128, 1), 'SC_rgb_small_odd.dcm': (3, 3, 3)}
HTJ2K_RPCL = '1.2.840.10008.1.2.4.202'


def decode(tool, path, out):
    """Decodes with opj_decompress or ojph_expand into a raw file; its bytes."""
    if tool == 'opj':
        cmd = ['opj_decompress', '-i', path, '-o', out]
    else:
        cmd = ['ojph_expand', '-i', path, '-o', out]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or not os.path.exists(out):
        raise AssertionError('%s %s: %s' % (cmd[0], path, (r.stdout + r.stderr)[-400:]))
    with open(out, 'rb') as f:
        return f.read()


class FramesAsJph(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        def do_import(server):
            r = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir,
                                '--create-datastore', 'jph'] + [TF + f for f in FILES],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
        cls.server = ahltest.Server(before_start=do_import)
        cls.client = ahltest.boto3_client(cls.server)
        cls.tmp = tempfile.mkdtemp(dir=cls.server.tmp)
        c = cls.client
        cls.ds = c.list_datastores()['datastoreSummaries'][0]['datastoreId']
        cls.frames = {}  # file -> (set, frame entry)
        for s in c.search_image_sets(datastoreId=cls.ds)['imageSetsMetadataSummaries']:
            blob = c.get_image_set_metadata(datastoreId=cls.ds, imageSetId=s['imageSetId'])
            doc = json.loads(gzip.decompress(blob['imageSetMetadataBlob'].read()))
            for series in doc['Study']['Series'].values():
                for inst in series['Instances'].values():
                    assert inst['StoredTransferSyntaxUID'] == HTJ2K_RPCL, inst
                    cols = inst['DICOM']['Columns']
                    name = [f for f, g in FILES.items() if g[0] == cols][0]
                    cls.frames[name] = (s['imageSetId'], inst['ImageFrames'][0])
        assert sorted(cls.frames) == sorted(FILES), cls.frames

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        cls.server.cleanup()
        assert rc == 0, 'server exit status %r' % rc

    def get(self, set_id, frame_id, accept=None):
        def add_accept(request, **kwargs):
            request.headers['Accept'] = accept
        if accept:
            self.client.meta.events.register('before-sign.medical-imaging.GetImageFrame',
                                             add_accept)
        try:
            r = self.client.get_image_frame(datastoreId=self.ds, imageSetId=set_id,
                                            imageFrameInformation={'imageFrameId': frame_id})
            return r['contentType'], r['imageFrameBlob'].read()
        finally:
            if accept:
                self.client.meta.events.unregister('before-sign.medical-imaging.GetImageFrame',
                                                   add_accept)

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def test_jph_file(self):
        for name, (w, h, nc) in sorted(FILES.items()):
            set_id, fr = self.frames[name]
            ctype, blob = self.get(set_id, fr['ID'])
            self.assertEqual(ctype, 'image/jph', name)
            ihdr, colr, cs = jph.parse(blob)
            self.assertEqual((ihdr['width'], ihdr['height'], ihdr['components']), (w, h, nc))
            self.assertEqual(ihdr['compression'], 7)
            self.assertEqual(colr, bytes([1, 0, 0, 0, 0, 0, 17 if nc == 1 else 16]))
            # The jp2c box holds the stored codestream: FrameSizeInBytes long, and the frame ID
            # is its content hash (docs/frames.md).
            self.assertEqual(len(cs), fr['FrameSizeInBytes'])
            self.assertTrue(cs.startswith(b'\xff\x4f\xff\x51'))
            inner = hashlib.sha256(cs).digest()
            self.assertEqual(hashlib.sha256(HTJ2K_RPCL.encode() + b'\0' + inner).hexdigest()[:32],
                             fr['ID'])
            # OpenJPEG reads the file through its JP2 reader (.jph, .jp2) and the codestream
            # (.j2k) to the same samples; OpenJPH decodes the codestream too.
            ext = 'pgm' if nc == 1 else 'ppm'
            bare = decode('opj', self.write(name + '.j2k', cs), self.write(name + '.a.' + ext, b''))
            for suffix in ('jph', 'jp2'):
                got = decode('opj', self.write('%s.%s' % (name, suffix), blob),
                             os.path.join(self.tmp, '%s.%s.%s' % (name, suffix, ext)))
                self.assertEqual(got, bare, '%s as .%s' % (name, suffix))
            decode('ojph', self.write(name + '.j2c', cs), os.path.join(self.tmp, name + '.' + ext))

    def test_bare_codestream_on_request(self):
        for name in sorted(FILES):
            set_id, fr = self.frames[name]
            _, jph_blob = self.get(set_id, fr['ID'])
            ctype, blob = self.get(set_id, fr['ID'], accept='image/jphc')
            self.assertEqual(ctype, 'image/jphc', name)
            self.assertEqual(blob, jph.parse(jph_blob)[2])
            self.assertEqual(len(blob), fr['FrameSizeInBytes'])
            ext = 'pgm' if FILES[name][2] == 1 else 'ppm'
            decode('opj', self.write(name + '.bare.j2k', blob),
                   os.path.join(self.tmp, name + '.bare.' + ext))
            # Without the header again: the default is the JPH file.
            self.assertEqual(self.get(set_id, fr['ID'], accept='*/*')[0], 'image/jph')


if __name__ == '__main__':
    unittest.main(verbosity=2)
