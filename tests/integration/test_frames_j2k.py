"""Data stores created with losslessStorageFormat JPEG_2000_LOSSLESS, through boto3 and DICOMweb:
their lossless frames are stored as JPEG 2000 lossless (1.2.840.10008.1.2.4.90), by every path
that writes frames into a store, while an HTJ2K store of the same server keeps storing HTJ2K.

- CreateDatastore with JPEG_2000_LOSSLESS (and the default, HTJ2K); corpus files of many syntaxes
  and layouts (8, 12, 13 and 16 bits, signed and unsigned, grey and RGB, several frames, JPEG 2000
  lossless sources, and the lossy syntaxes kept as they are) imported into both by
  StartDICOMImportJob from a local bucket;
- in the JPEG 2000 store, StoredTransferSyntaxUID is .4.90 for every lossless source (a .4.90
  source included) and the source syntax for the kept ones; GetImageFrame answers image/j2c with a
  bare Part 1 codestream that opj_decompress decodes to exactly the source pixels (frames_oracle:
  DCMTK and pydicom decode the sources), FrameSizeInBytes long, its ID the content address, min,
  max and every level's checksum as opj_decompress -r gives them (test_frames_clients.py's
  check_frame); the HTJ2K store has the same frames as .4.202 (image/jph);
- STOW-RS into a JPEG 2000 store and `ahilite import --create-datastore NAME
  --lossless-storage-format JPEG_2000_LOSSLESS` store the same .4.90 frames (the same IDs: the
  encoding is deterministic);
- DICOMweb retrieve of an instance stored as .4.90: Explicit VR Little Endian by default (the
  source's pixels), the stored JPEG 2000 fragments with transfer-syntax=* or =.4.90, 406 for a
  syntax not stored (.4.202); the frames resource the same way; the HTJ2K store's copy is 406 for
  .4.90;
- CopyImageSet in a JPEG 2000 store lists and serves the same frames (they are shared, never
  encoded again).
"""
# pg: full (frame encoding and decoding: its storage calls are those of the import suites)
import concurrent.futures
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import frames_oracle as fo  # noqa: E402
import test_frames_clients as tfc  # noqa: E402

TF = fo.PYD + '/test_files/'
CORPUS = [
    'CT_small.dcm',                      # explicit LE, 16-bit signed
    'image_dfl.dcm',                     # deflated, 8-bit unsigned
    'dicomdirtests/77654033/CR1/6154',   # 16-bit unsigned, 12 bits stored
    'SC_rgb_small_odd.dcm',              # RGB 3x3
    'SC_rgb_rle_2frame.dcm',             # RLE RGB, 2 frames
    'SC_rgb_rle_16bit_2frame.dcm',       # RLE RGB 16-bit, 2 frames
    'JPEG-lossy.dcm',                    # JPEG extended, 12-bit: its decode stored losslessly
    'SC_rgb_jpeg_gdcm.dcm',              # JPEG lossless SV1, RGB
    'MR_small_jp2klossless.dcm',         # JPEG 2000 lossless
    'GDCMJ2K_TextGBR.dcm',               # JPEG 2000 lossless, RGB (RCT)
    'J2K_pixelrep_mismatch.dcm',         # JPEG 2000 lossless, 13 bits signed
    'JPEG2000.dcm',                      # JPEG 2000 (lossy allowed): kept
    'SC_rgb_jpeg_dcmtk.dcm',             # JPEG baseline: kept
    'liver_1frame.dcm',                  # 1-bit segmentation: kept native
]
STOWED = ['CT_small.dcm', 'SC_rgb_jpeg_gdcm.dcm']
CLI = ['CT_small.dcm', 'SC_rgb_small_odd.dcm']
J2K = fo.J2K_LOSSLESS
UIDS = tfc.UIDS


def run_py(code, *args):
    p = subprocess.run([fo.SYS_PY, '-c', code] + list(args), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


class J2kStores(unittest.TestCase):
    check_frame = tfc.FramesThroughBoto3.check_frame
    stored_bytes = staticmethod(tfc.FramesThroughBoto3.stored_bytes)

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='ahl-frames-j2k-')
        paths = [TF + n for n in CORPUS] + fo.make_synthetic(cls.tmp, {'synth_s8_3frame.dcm'})
        cls.uids = json.loads(run_py(UIDS, *paths))
        cls.root = os.path.join(cls.tmp, 's3')
        os.makedirs(os.path.join(cls.root, 'out-bucket'))
        cls.inputs = {}  # key -> (source path, SOPInstanceUID it is imported under)
        for path in paths:
            sop = cls.uids[path][0]
            name = os.path.relpath(path, TF) if path.startswith(TF) else os.path.basename(path)
            key = 'j2k/%s' % name.replace('/', '_')
            # Variants of one instance (the MR_small family) stay distinct instances.
            mapping = {sop: fo.same_length_uid(sop, key)}
            with open(path, 'rb') as f:
                data = fo.rewrite_uids(f.read(), mapping)
            dst = os.path.join(cls.root, 'in-bucket', key)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, 'wb') as f:
                f.write(data)
            cls.inputs[key] = (path, mapping[sop])

        def cli_import(server):
            p = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir,
                                '--create-datastore', 'cli-j2k', '--lossless-storage-format',
                                'JPEG_2000_LOSSLESS'] + ahltest.blob_store_args() +
                               [TF + n for n in CLI], capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, p.stdout + p.stderr

        cls.server = ahltest.Server(extra_args=['--s3-root', cls.root], before_start=cli_import)
        c = cls.client = ahltest.boto3_client(cls.server)
        cls.cli_ds = c.list_datastores()['datastoreSummaries'][0]['datastoreId']
        cls.ds = {}
        for name, fmt in (('j2k', 'JPEG_2000_LOSSLESS'), ('htj2k', None),
                          ('stow', 'JPEG_2000_LOSSLESS')):
            kw = {'losslessStorageFormat': fmt} if fmt else {}
            ds = c.create_datastore(datastoreName=name, **kw)['datastoreId']
            for _ in range(200):
                p = c.get_datastore(datastoreId=ds)['datastoreProperties']
                if p['datastoreStatus'] == 'ACTIVE':
                    break
                time.sleep(0.1)
            assert p['datastoreStatus'] == 'ACTIVE', p
            cls.ds[name] = ds
        jobs = {}
        for name in ('j2k', 'htj2k'):
            jobs[name] = c.start_dicom_import_job(
                jobName=name, datastoreId=cls.ds[name], clientToken='frames-' + name,
                dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole',
                inputS3Uri='s3://in-bucket/j2k/', outputS3Uri='s3://out-bucket/%s/' % name)

        # The oracle runs while the server imports (each file in a directory of its own).
        def oracle(item):
            k, path = item
            work = os.path.join(cls.tmp, 'oracle-%d' % k)
            os.makedirs(work)
            return path, fo.expected_frames(path, work)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            cls.oracle = dict(pool.map(oracle, enumerate(paths)))
        cls.jobs = {n: ahltest.wait_import_job(c, cls.ds[n], j['jobId'], 150)
                    for n, j in jobs.items()}
        cls.set_ds = {}  # image set -> its data store, for get_frame
        cls.instances = {n: cls.instances_in(cls.ds[n]) for n in ('j2k', 'htj2k')}

    @classmethod
    def instances_in(cls, ds):
        """{SOPInstanceUID: (image set, instance)} of every image set of ds."""
        out = {}
        c = cls.client
        for s in c.search_image_sets(datastoreId=ds)['imageSetsMetadataSummaries']:
            cls.set_ds[s['imageSetId']] = ds
            doc = json.loads(gzip.decompress(c.get_image_set_metadata(
                datastoreId=ds, imageSetId=s['imageSetId'])['imageSetMetadataBlob'].read()))
            for series in doc['Study']['Series'].values():
                for sop, inst in series['Instances'].items():
                    out[sop] = (s['imageSetId'], inst)
        return out

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        cls.server.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert rc == 0, 'server exit status %r' % rc

    def get_frame(self, set_id, frame_id):
        r = self.client.get_image_frame(datastoreId=self.set_ds[set_id], imageSetId=set_id,
                                        imageFrameInformation={'imageFrameId': frame_id})
        return r['contentType'], r['imageFrameBlob'].read()

    def frames_of(self, store, key):
        return self.instances[store][self.inputs[key][1]]

    def test_1_data_stores_report_their_format(self):
        c = self.client
        got = {s['datastoreName']: c.get_datastore(datastoreId=s['datastoreId'])[
            'datastoreProperties'].get('losslessStorageFormat')
            for s in c.list_datastores()['datastoreSummaries']}
        self.assertEqual(got, {'cli-j2k': 'JPEG_2000_LOSSLESS', 'j2k': 'JPEG_2000_LOSSLESS',
                               'stow': 'JPEG_2000_LOSSLESS', 'htj2k': 'HTJ2K'})
        for name in ('j2k', 'htj2k'):
            self.assertEqual(self.jobs[name]['jobStatus'], 'COMPLETED', self.jobs[name])

    def check_store(self, store, lossless):
        """Every frame of every instance of store against the oracle; the source syntaxes whose
        frames were stored in the lossless format."""
        dec = os.path.join(self.tmp, 'decode-' + store)
        os.makedirs(dec, exist_ok=True)
        problems, seen, pairs = [], set(), set()
        for key, (path, sop) in sorted(self.inputs.items()):
            info, frames = self.oracle[path]
            src = info['source']
            if sop not in self.instances[store]:
                problems.append('%s: not imported' % key)
                continue
            set_id, inst = self.instances[store][sop]
            stored = fo.stored_syntax_for(src['TransferSyntaxUID'], src['BitsAllocated'],
                                          lossless)
            if inst.get('StoredTransferSyntaxUID') != stored:
                problems.append('%s: StoredTransferSyntaxUID %s, expected %s' % (
                    key, inst.get('StoredTransferSyntaxUID'), stored))
                continue
            self.assertEqual(len(inst['ImageFrames']), len(frames), key)
            for i, (fr, want) in enumerate(zip(inst['ImageFrames'], frames)):
                # Every level is decoded for the first frame of each pair of syntaxes.
                pair = (src['TransferSyntaxUID'], stored)
                msg = self.check_frame(set_id, fr, want, stored, info, dec, pair not in pairs)
                pairs.add(pair)
                if msg:
                    problems.append('%s frame %d: %s' % (key, i + 1, msg))
                elif stored == lossless:
                    ctype, blob = self.get_frame(set_id, fr['ID'])
                    cs = self.stored_bytes(ctype, blob)
                    inner = hashlib.sha256(cs).digest()
                    self.assertEqual(hashlib.sha256(lossless.encode() + b'\0' + inner)
                                     .hexdigest()[:32], fr['ID'], key)
                    seen.add(src['TransferSyntaxUID'])
        self.assertFalse(problems, '\n' + '\n'.join(problems))
        return seen

    def test_2_j2k_store_stores_jpeg_2000_lossless(self):
        seen = self.check_store('j2k', J2K)
        # Native, deflated, RLE, JPEG (lossy and lossless) and JPEG 2000 lossless sources were
        # all encoded as JPEG 2000 lossless.
        self.assertTrue({'1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.5',
                         '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.70', J2K} <= seen, seen)
        # A bare Part 1 codestream: SOC SIZ, Rsiz without the HTJ2K capability bit, no CAP marker.
        set_id, inst = self.frames_of('j2k', 'j2k/CT_small.dcm')
        ctype, blob = self.get_frame(set_id, inst['ImageFrames'][0]['ID'])
        self.assertEqual(ctype, 'image/j2c')
        self.assertEqual(blob[:4], b'\xff\x4f\xff\x51')
        self.assertEqual(blob[6] & 0x40, 0)
        self.assertNotIn(b'\xff\x50', blob[:200])

    def test_3_htj2k_store_still_stores_htj2k(self):
        # The syntax and the Content-Type of every instance; what HTJ2K frames hold is
        # test_frames_clients.py's subject.
        for key, (path, sop) in sorted(self.inputs.items()):
            src = self.oracle[path][0]['source']
            stored = fo.stored_syntax_for(src['TransferSyntaxUID'], src['BitsAllocated'])
            set_id, inst = self.instances['htj2k'][sop]
            self.assertEqual(inst['StoredTransferSyntaxUID'], stored, key)
            for fr in inst['ImageFrames']:
                ctype, blob = self.get_frame(set_id, fr['ID'])
                self.assertEqual(ctype, fo.CONTENT_TYPE[stored], key)
                self.assertEqual(len(self.stored_bytes(ctype, blob)), fr['FrameSizeInBytes'])
        # A JPEG 2000 lossless source became HTJ2K there, and its pixels have other frame IDs.
        key = 'j2k/MR_small_jp2klossless.dcm'
        self.assertEqual(self.frames_of('htj2k', key)[1]['StoredTransferSyntaxUID'],
                         fo.HTJ2K_RPCL)
        self.assertNotEqual(self.frames_of('htj2k', key)[1]['ImageFrames'][0]['ID'],
                            self.frames_of('j2k', key)[1]['ImageFrames'][0]['ID'])

    def test_4_stow_and_cli_store_the_same_frames(self):
        expect = {n: [f['ID'] for f in self.frames_of('j2k', 'j2k/' + n)[1]['ImageFrames']]
                  for n in set(STOWED) | set(CLI)}
        boundary = 'j2k-stow'
        body = b''
        for n in STOWED:
            with open(TF + n, 'rb') as f:
                body += b'--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n' % (
                    boundary.encode(), f.read())
        body += b'--%s--\r\n' % boundary.encode()
        status, _, resp = ahltest.raw(
            'POST', self.server.endpoint, '/datastore/%s/studies' % self.ds['stow'], body=body,
            headers={'Content-Type': 'multipart/related; type="application/dicom"; boundary=' +
                     boundary, 'Accept': 'application/dicom+json'})
        self.assertEqual(status, 200, resp[:400])
        for ds, names in ((self.ds['stow'], STOWED), (self.cli_ds, CLI)):
            insts = self.instances_in(ds)
            for n in names:
                set_id, inst = insts[self.uids[TF + n][0]]
                self.assertEqual(inst['StoredTransferSyntaxUID'], J2K, n)
                self.assertEqual([f['ID'] for f in inst['ImageFrames']], expect[n], n)
                ctype, blob = self.get_frame(set_id, inst['ImageFrames'][0]['ID'])
                self.assertEqual((ctype, len(blob)),
                                 ('image/j2c', inst['ImageFrames'][0]['FrameSizeInBytes']))

    def dicomweb(self, store, key, suffix='', accept=None):
        path, sop = self.inputs[key]
        study, series = self.uids[path][1], self.uids[path][2]
        return ahltest.raw('GET', self.server.endpoint,
                           '/datastore/%s/studies/%s/series/%s/instances/%s%s' % (
                               self.ds[store], study, series, sop, suffix),
                           headers={'Accept': accept} if accept else None)

    def test_5_dicomweb_retrieve_negotiates(self):
        key = 'j2k/CT_small.dcm'
        set_id, inst = self.frames_of('j2k', key)
        _, stored = self.get_frame(set_id, inst['ImageFrames'][0]['ID'])
        inspect = r'''
import hashlib, json, sys, pydicom
from pydicom.encaps import generate_pixel_data_frame
d = pydicom.dcmread(sys.argv[1])
ts = str(d.file_meta.TransferSyntaxUID)
frames = [f.hex() for f in generate_pixel_data_frame(d.PixelData, 1)] \
    if d.file_meta.TransferSyntaxUID.is_compressed else []
print(json.dumps({'ts': ts, 'native': hashlib.sha256(d.PixelData).hexdigest(), 'frames': frames}))
'''
        src_px = json.loads(run_py(inspect, TF + 'CT_small.dcm'))['native']
        part10 = os.path.join(self.tmp, 'retrieved.dcm')

        def look(data):
            with open(part10, 'wb') as f:
                f.write(data)
            return json.loads(run_py(inspect, part10))

        # No transfer syntax asked for: Explicit VR Little Endian, the source's pixels.
        status, headers, body = self.dicomweb('j2k', key)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(headers['content-type'],
                         'application/dicom; transfer-syntax=1.2.840.10008.1.2.1')
        got = look(body)
        self.assertEqual((got['ts'], got['native']), ('1.2.840.10008.1.2.1', src_px))
        # The stored syntax, by '*' or by name: the stored JPEG 2000 frame as its fragment.
        for ts in ('*', J2K):
            status, headers, body = self.dicomweb('j2k', key,
                                                  accept='application/dicom; transfer-syntax=' + ts)
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(headers['content-type'], 'application/dicom; transfer-syntax=' + J2K)
            got = look(body)
            self.assertEqual(got['ts'], J2K)
            # One fragment: the stored codestream, padded to an even length as DICOM wants.
            self.assertEqual(got['frames'], [(stored + b'\0' * (len(stored) % 2)).hex()])
        # A syntax it is not stored in.
        status, _, body = self.dicomweb('j2k', key, accept='application/dicom; '
                                        'transfer-syntax=' + fo.HTJ2K_RPCL)
        self.assertEqual(status, 406, body[:300])
        self.assertIn('stored as ' + J2K, json.loads(body)['message'])
        # The HTJ2K store's copy of the instance is not JPEG 2000.
        status, _, _ = self.dicomweb('htj2k', key, accept='application/dicom; transfer-syntax=' +
                                     J2K)
        self.assertEqual(status, 406)
        # The frames resource: native by default, the stored bytes with '*', labelled .4.90.
        status, headers, body = self.dicomweb('j2k', key, '/frames/1')
        self.assertEqual(status, 200, body[:300])
        parts = ahltest.parts_of(headers, body)
        self.assertEqual(parts[0][0], 'application/octet-stream; '
                                      'transfer-syntax=1.2.840.10008.1.2.1')
        self.assertEqual(hashlib.sha256(parts[0][1]).hexdigest(), src_px)
        status, headers, body = self.dicomweb(
            'j2k', key, '/frames/1',
            accept='multipart/related; type="application/octet-stream"; transfer-syntax=*')
        self.assertEqual(status, 200, body[:300])
        parts = ahltest.parts_of(headers, body)
        self.assertEqual(parts, [('image/j2c; transfer-syntax=' + J2K, stored)])

    def test_6_copy_shares_the_stored_frames(self):
        # CopyImageSet copies within the data store: the copy lists the same .4.90 frames, which
        # it serves byte for byte; nothing is encoded again.
        c = self.client
        ds = self.ds['j2k']
        set_id, inst = self.frames_of('j2k', 'j2k/SC_rgb_rle_2frame.dcm')
        version = c.get_image_set(datastoreId=ds, imageSetId=set_id)['versionId']
        copy = c.copy_image_set(datastoreId=ds, sourceImageSetId=set_id, copyImageSetInformation={
            'sourceImageSet': {'latestVersionId': version}})[
            'destinationImageSetProperties']['imageSetId']
        doc = json.loads(gzip.decompress(c.get_image_set_metadata(
            datastoreId=ds, imageSetId=copy)['imageSetMetadataBlob'].read()))
        sop = self.inputs['j2k/SC_rgb_rle_2frame.dcm'][1]
        got = [i for s in doc['Study']['Series'].values() for k, i in s['Instances'].items()
               if k == sop]
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]['StoredTransferSyntaxUID'], J2K)
        self.assertEqual(got[0]['ImageFrames'], inst['ImageFrames'])
        self.set_ds[copy] = ds
        for fr in inst['ImageFrames']:
            self.assertEqual(self.get_frame(copy, fr['ID']), self.get_frame(set_id, fr['ID']))


if __name__ == '__main__':
    unittest.main(verbosity=2)
