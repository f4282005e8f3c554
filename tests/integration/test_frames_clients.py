"""GetImageFrame end to end through boto3: pixel-bearing corpus files of every syntax and layout
ahilite imports are put in a local bucket (`ahilite serve --s3-root`), imported with
StartDICOMImportJob, and every frame of every imported instance is fetched with GetImageFrame and
checked against an oracle that never runs ahilite's code (frames_oracle.py: DCMTK and pydicom for
the source pixels, opj_decompress for the served JPEG 2000 / HTJ2K frames, and OpenJPH's
ojph_expand as a second decoder of the HTJ2K ones):

- StoredTransferSyntaxUID follows the storage policy and the Content-Type is HealthImaging's for
  it (image/jph for HTJ2K lossless, image/jpeg, image/j2c and image/jphc for frames kept as-is,
  application/octet-stream for 1-bit frames kept native);
- image/jph answers are JPH files (jph.parse) whose jp2c box holds the stored codestream, which
  opj_decompress reads through its JP2 reader; ojph_expand is given the codestream;
- the served bytes (for image/jph, the codestream) are FrameSizeInBytes long; HTJ2K and JPEG 2000 frames decode to exactly the
  oracle's source pixels (HTJ2K with both decoders; ojph_expand's raw output shows negative
  samples as 0, see frames_oracle.ojph_view); frames kept as-is are the source fragments byte
  for byte; 1-bit frames unpack to the source bits;
- MinPixelValue / MaxPixelValue and the full-resolution entry of
  PixelDataChecksumFromBaseToFullResolution (CRC32 of the decoded frame, computed here with
  zlib.crc32) match; the levels run from the lowest resolution up, each half the next, the last
  the image's size, and for the first frame of each syntax every level's checksum is checked
  against opj_decompress -r;
- an unknown frame id, or a frame id the image set does not list, is ResourceNotFoundException;
- after DeleteImageSet its frames are ResourceNotFoundException, while another image set holding
  the same pixels (the same content-addressed frame) still serves them.

Each corpus file is uploaded with a SOPInstanceUID of its own (same length, patched in place), so
files that are variants of one instance (MR_small in five syntaxes) stay distinct instances.
"""
# pg: full (long: frame decoding by every client against an oracle)
import concurrent.futures
import gzip
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import unittest
import zlib
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import frames_oracle as fo  # noqa: E402
import jph  # noqa: E402

TF = fo.PYD + "/test_files/"
# One or more corpus files per syntax and layout (see the frames corpus test for all of them).
CORPUS = [
    "CT_small.dcm",                       # explicit LE, 16-bit signed
    "MR_small.dcm",                       # explicit LE, 16-bit signed
    "MR_small_implicit.dcm",              # implicit LE
    "MR_small_bigendian.dcm",             # explicit BE
    "ExplVR_BigEnd.dcm",                  # explicit BE, RGB planar configuration 1
    "image_dfl.dcm",                      # deflated, 8-bit unsigned
    "dicomdirtests/77654033/CR1/6154",    # MONOCHROME1, 16-bit unsigned, 12 bits stored
    "SC_rgb_small_odd.dcm",               # RGB interleaved, 3x3
    "SC_rgb_jpeg_dcmd.dcm",               # implicit LE RGB 256x256
    "SC_ybr_full_422_uncompressed.dcm",   # YBR_FULL_422 native
    "liver_1frame.dcm",                   # 1-bit segmentation, kept native
    "MR_small_RLE.dcm",                   # RLE 16-bit signed
    "SC_rgb_rle.dcm",                     # RLE RGB 8-bit
    "SC_rgb_rle_2frame.dcm",              # RLE RGB, 2 frames
    "SC_rgb_rle_16bit_2frame.dcm",        # RLE RGB 16-bit, 2 frames
    "SC_rgb_jpeg_dcmtk.dcm",              # JPEG baseline YBR_FULL (kept)
    "SC_jpeg_no_color_transform.dcm",     # JPEG baseline RGB without colour transform (kept)
    "SC_rgb_dcmtk_+eb+cy+s2.dcm",         # JPEG baseline YBR_FULL_422, subsampled (kept)
    "SC_rgb_small_odd_jpeg.dcm",          # JPEG baseline 3x3 (kept)
    "JPEG-lossy.dcm",                     # JPEG extended, 12-bit
    "JPGExtended.dcm",                    # JPEG extended, 12-bit
    "SC_rgb_jpeg_gdcm.dcm",               # JPEG lossless SV1, RGB
    "MR_small_jpeg_ls_lossless.dcm",      # JPEG-LS lossless
    "MR_small_jp2klossless.dcm",          # JPEG 2000 lossless
    "GDCMJ2K_TextGBR.dcm",                # JPEG 2000 lossless, RGB (RCT)
    "J2K_pixelrep_mismatch.dcm",          # JPEG 2000 lossless, 13 bits signed
    "JPEG2000.dcm",                       # JPEG 2000 (lossy allowed), kept
    "SC_rgb_gdcm_KY.dcm",                 # JPEG 2000 RGB, kept
]
TWIN = "CT_small.dcm"  # also imported as another study, to share its frame between image sets

UIDS = r"""
import json, sys, pydicom
print(json.dumps({p: [str(getattr(pydicom.dcmread(p, stop_before_pixels=True), k))
                      for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")]
                  for p in sys.argv[1:]}))
"""


class FramesThroughBoto3(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        t0 = time.time()
        cls.tmp = tempfile.mkdtemp(prefix='ahl-frameclients-')
        fixtures = fo.make_fixtures(cls.tmp)
        assert len(fixtures) == len(fo.FIXTURES), fixtures
        paths = [TF + n for n in CORPUS] + fixtures + fo.make_synthetic(cls.tmp)
        r = fo.run([fo.SYS_PY, '-c', UIDS] + paths, text=True)
        assert r.returncode == 0, r.stderr
        uids = json.loads(r.stdout)

        # Inputs: key -> (source path, SOPInstanceUID it is imported under).
        cls.root = os.path.join(cls.tmp, 's3')
        os.makedirs(os.path.join(cls.root, 'out-bucket'))
        cls.inputs = {}
        for path in paths + [TF + TWIN]:
            sop, study, series = uids[path]
            twin = path == TF + TWIN and any(v[0] == path for v in cls.inputs.values())
            name = os.path.relpath(path, TF) if path.startswith(TF) else os.path.basename(path)
            key = 'frames/%s%s' % ('twin/' if twin else '', name.replace('/', '_'))
            mapping = {sop: fo.same_length_uid(sop, key)}
            if twin:  # another study and series: a primary image set of its own
                mapping[study] = fo.same_length_uid(study, key)
                mapping[series] = fo.same_length_uid(series, key)
            with open(path, 'rb') as f:
                data = fo.rewrite_uids(f.read(), mapping)
            dst = os.path.join(cls.root, 'in-bucket', key)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, 'wb') as f:
                f.write(data)
            cls.inputs[key] = (path, mapping[sop])

        cls.server = ahltest.Server(extra_args=['--s3-root', cls.root])
        cls.client = ahltest.boto3_client(cls.server)
        c = cls.client
        cls.ds = ahltest.create_active_datastore(c, 'frames-clients')
        job = c.start_dicom_import_job(
            jobName='frames', datastoreId=cls.ds, clientToken='frames-clients',
            dataAccessRoleArn='arn:aws:iam::123456789012:role/ImportRole',
            inputS3Uri='s3://in-bucket/frames/', outputS3Uri='s3://out-bucket/out/')

        # The oracle runs while the server imports (each file in a directory of its own).
        def oracle(item):
            k, path = item
            work = os.path.join(cls.tmp, 'oracle-%d' % k)
            os.makedirs(work)
            try:
                return path, fo.expected_frames(path, work)
            except fo.OracleFailed as e:
                return path, e
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            cls.oracle = dict(pool.map(oracle, enumerate(paths)))

        cls.job = ahltest.wait_import_job(c, cls.ds, job['jobId'], 150)
        folder = 'out/%s-DicomImport-%s/' % (cls.ds, job['jobId'])
        out = os.path.join(cls.root, 'out-bucket', folder)
        with open(out + 'SUCCESS/success.ndjson') as f:
            cls.ok = [json.loads(x) for x in f if x.strip()]
        with open(out + 'FAILURE/failure.ndjson') as f:
            cls.failed = [json.loads(x) for x in f if x.strip()]

        # Every instance of every image set the job touched, by SOPInstanceUID.
        cls.instances = {}
        sets = {x['importResponse']['imageSetId'] for x in cls.ok}
        for set_id in sets:
            for sop, inst in cls.instances_of(set_id).items():
                cls.instances[sop] = (set_id, inst)
        cls.setup_seconds = time.time() - t0

    @classmethod
    def instances_of(cls, set_id):
        body = cls.client.get_image_set_metadata(
            datastoreId=cls.ds, imageSetId=set_id)['imageSetMetadataBlob'].read()
        doc = json.loads(gzip.decompress(body))
        return {sop: inst for s in doc['Study']['Series'].values()
                for sop, inst in s['Instances'].items()}

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        cls.server.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert rc == 0, 'server exit status %r' % rc

    def get_frame(self, set_id, frame_id):
        r = self.client.get_image_frame(datastoreId=self.ds, imageSetId=set_id,
                                        imageFrameInformation={'imageFrameId': frame_id})
        return r['contentType'], r['imageFrameBlob'].read()

    @staticmethod
    def stored_bytes(ctype, blob):
        """The stored frame in an answer: the jp2c payload of a JPH file, else the answer."""
        return jph.parse(blob)[2] if ctype == 'image/jph' else blob

    def test_1_every_frame_matches_the_oracle(self):
        self.assertEqual(self.job['jobStatus'], 'COMPLETED', self.job.get('message'))
        self.assertEqual(self.failed, [], 'the job failed files the oracle may decode')
        self.assertEqual(sorted(x['inputFile'] for x in self.ok), sorted(self.inputs))
        problems, compared, layouts = [], Counter(), []
        dec = os.path.join(self.tmp, 'decode')
        os.makedirs(dec, exist_ok=True)
        for key, (path, sop) in sorted(self.inputs.items()):
            expected = self.oracle[path]
            if isinstance(expected, fo.OracleFailed):
                problems.append('%s: the oracle cannot decode it: %s' % (key, expected))
                continue
            info, frames = expected
            src = info['source']
            if sop not in self.instances:
                problems.append('%s: instance %s in no image set' % (key, sop))
                continue
            set_id, inst = self.instances[sop]
            stored = fo.stored_syntax_for(src['TransferSyntaxUID'], src['BitsAllocated'])
            if inst.get('StoredTransferSyntaxUID') != stored:
                problems.append('%s: StoredTransferSyntaxUID %s, policy says %s' % (
                    key, inst.get('StoredTransferSyntaxUID'), stored))
                continue
            entries = inst.get('ImageFrames', [])
            if len(entries) != len(frames):
                problems.append('%s: %d ImageFrames for %d frames' % (key, len(entries),
                                                                      len(frames)))
                continue
            for i, (fr, want) in enumerate(zip(entries, frames)):
                where = '%s frame %d (%s)' % (key, i + 1, fr['ID'])
                # Every resolution level is decoded for the first frame of each syntax pair.
                all_levels = compared[(src['TransferSyntaxUID'], stored)] == 0
                msg = self.check_frame(set_id, fr, want, stored, info, dec, all_levels)
                if msg:
                    problems.append('%s: %s' % (where, msg))
                else:
                    compared[(src['TransferSyntaxUID'], stored)] += 1
            layouts.append('%s %s bits %d/%d pr %d spp %d %s pc %s, %d frame(s) -> %s' % (
                key, src['TransferSyntaxUID'], src['BitsAllocated'], src['BitsStored'],
                src['PixelRepresentation'], src['SamplesPerPixel'],
                src['PhotometricInterpretation'], src['PlanarConfiguration'], len(frames), stored))
        if os.environ.get('VERBOSE'):
            print('\n'.join(layouts), file=sys.stderr)
            for (ts, st), n in sorted(compared.items()):
                print('%-24s -> %-24s %3d frame(s)' % (ts, st, n), file=sys.stderr)
        print('\n%d frames of %d files compared through boto3 (%d syntax pairs); setup %.1fs' % (
            sum(compared.values()), len(self.inputs), len(compared), self.setup_seconds),
            file=sys.stderr)
        self.assertFalse(problems, '\n' + '\n'.join(problems))
        # The selection must really span the syntaxes: every policy branch was exercised.
        stored_kinds = {st for _, st in compared}
        # (JPEG 2000 lossless is stored only by JPEG_2000_LOSSLESS stores: test_frames_j2k.py.)
        self.assertEqual(stored_kinds, set(fo.CONTENT_TYPE) - {fo.J2K_LOSSLESS})
        self.assertGreaterEqual(len(compared), 16)

    def check_frame(self, set_id, fr, want, stored, info, dec, all_levels):
        """None when GetImageFrame's answer for ImageFrames entry fr is right, else what is
        wrong. all_levels: also decode the served frame at every lower resolution level and
        check that level's checksum."""
        ctype, served = self.get_frame(set_id, fr['ID'])
        if ctype != fo.CONTENT_TYPE[stored]:
            return 'Content-Type %s for %s' % (ctype, stored)
        try:
            blob = self.stored_bytes(ctype, served)
        except ValueError as e:
            return 'the image/jph answer is not a JPH file: %s' % e
        if len(blob) != fr['FrameSizeInBytes']:
            return '%d bytes served, FrameSizeInBytes %d' % (len(blob), fr['FrameSizeInBytes'])
        if (fr['MinPixelValue'], fr['MaxPixelValue']) != (want['min'], want['max']):
            return 'min/max %s/%s, oracle %s/%s' % (fr['MinPixelValue'], fr['MaxPixelValue'],
                                                    want['min'], want['max'])
        levels = fr['PixelDataChecksumFromBaseToFullResolution']
        full = levels[-1]
        if (full['Width'], full['Height']) != (info['Columns'], info['Rows']):
            return 'full-resolution level %dx%d' % (full['Width'], full['Height'])
        # Lowest resolution first, each level half the next (rounded up, as J2K reduces).
        wavelet = stored not in (fo.EXPLICIT_LE, '1.2.840.10008.1.2.4.50')
        if not wavelet and len(levels) != 1:
            return '%d resolution levels for a non-wavelet frame' % len(levels)
        if wavelet and len(levels) < 2 and min(info['Rows'], info['Columns']) >= 32:
            return 'only %d resolution level(s)' % len(levels)
        for k, lv in enumerate(levels):
            r = len(levels) - 1 - k
            want_wh = (-(-info['Columns'] // (1 << r)), -(-info['Rows'] // (1 << r)))
            if (lv['Width'], lv['Height']) != want_wh:
                return 'level %d is %dx%d, expected %dx%d' % ((k, lv['Width'], lv['Height']) +
                                                            want_wh)
        if want['bits'] is not None:  # 1-bit: packed bits, checksum over the stored bytes
            if len(blob) != (len(want['bits']) + 7) // 8 or \
                    fo.unpack_bits(blob, len(want['bits'])) != want['bits']:
                return 'served bits differ from the source bits'
            if full['Checksum'] != zlib.crc32(blob):
                return 'checksum %d, CRC32 of the served bytes %d' % (full['Checksum'],
                                                                     zlib.crc32(blob))
            return None
        if full['Checksum'] != want['crc32']:
            return 'full-resolution checksum %d, CRC32 of the oracle pixels %d' % (
                full['Checksum'], want['crc32'])
        if want['fragment'] is not None and blob != want['fragment']:
            return 'frame kept as-is differs from the source fragments'
        if stored == '1.2.840.10008.1.2.4.50':
            return None  # its pixels were checked through the checksum (DCMTK's decode)
        try:
            # A JPH answer is decoded as served, by OpenJPEG's JP2 reader.
            w, h, got = fo.decode_stored(served, info, dec)
        except RuntimeError as e:
            return 'the served frame does not decode: %s' % ' '.join(str(e).split())[-160:]
        if (w, h) != (info['Columns'], info['Rows']):
            return 'opj_decompress gives %dx%d' % (w, h)
        if got != want['pixels']:
            return 'opj_decompress of the served frame differs from the source pixels'
        if zlib.crc32(got) != full['Checksum']:
            return 'checksum differs from the CRC32 of opj_decompress\'s decode'
        if stored in (fo.HTJ2K_RPCL, '1.2.840.10008.1.2.4.203'):
            try:
                if fo.ojph_decode(blob, info, dec) != fo.ojph_view(want['pixels'], info):
                    return 'ojph_expand of the served frame differs from the source pixels'
            except RuntimeError as e:
                return 'ojph_expand cannot decode the served frame: %s' % str(e)[-160:]
        for k, lv in enumerate(levels[:-1] if all_levels else []):
            reduce = len(levels) - 1 - k
            _, _, _, vals = fo.opj_decode(blob, dec, reduce)
            got, _, _ = fo.canonical(vals, info)
            if zlib.crc32(got) != lv['Checksum']:
                return 'level %d (%dx%d) checksum differs from opj_decompress -r %d' % (
                    k, lv['Width'], lv['Height'], reduce)
        return None

    def test_2_unknown_frame_ids(self):
        nf = self.client.exceptions.ResourceNotFoundException
        sop = self.inputs['frames/CT_small.dcm'][1]
        set_id, inst = self.instances[sop]
        with self.assertRaises(nf):
            self.get_frame(set_id, secrets.token_hex(16))
        # A frame that exists in the store but that this image set never listed.
        other = self.instances[self.inputs['frames/synth_s8_3frame.dcm'][1]]
        self.assertNotEqual(other[0], set_id)
        foreign = other[1]['ImageFrames'][0]['ID']
        self.assertEqual(len(self.stored_bytes(*self.get_frame(other[0], foreign))),
                         other[1]['ImageFrames'][0]['FrameSizeInBytes'])
        with self.assertRaises(nf):
            self.get_frame(set_id, foreign)
        # A well-formed request for an image set that does not exist.
        with self.assertRaises(nf):
            self.get_frame(secrets.token_hex(16), inst['ImageFrames'][0]['ID'])

    def test_3_deleted_set_frames_are_gone(self):
        nf = self.client.exceptions.ResourceNotFoundException
        set_id, inst = self.instances[self.inputs['frames/CT_small.dcm'][1]]
        twin_set, twin = self.instances[self.inputs['frames/twin/CT_small.dcm'][1]]
        self.assertNotEqual(twin_set, set_id)
        shared = inst['ImageFrames'][0]['ID']
        self.assertEqual(twin['ImageFrames'][0]['ID'], shared, 'same pixels, same frame id')
        ids = [f['ID'] for i in self.instances_of(set_id).values()
               for f in i.get('ImageFrames', [])]
        before = self.get_frame(set_id, shared)[1]
        r = self.client.delete_image_set(datastoreId=self.ds, imageSetId=set_id)
        self.assertEqual(r['imageSetId'], set_id)
        for fid in ids:
            with self.assertRaises(nf, msg=fid):
                self.get_frame(set_id, fid)
        with self.assertRaises(nf):
            self.client.get_image_set_metadata(datastoreId=self.ds, imageSetId=set_id)
        # The twin's set still lists the shared frame: it must still be served, unchanged.
        self.assertEqual(self.get_frame(twin_set, shared), ('image/jph', before))


if __name__ == '__main__':
    unittest.main(verbosity=2)
