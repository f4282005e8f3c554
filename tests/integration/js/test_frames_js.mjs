// GetImageFrame through the JavaScript SDK: a few corpus files (16-bit signed CT, RGB planar
// big endian, multi-frame RLE RGB, a synthetic 3-frame 8-bit signed file, JPEG baseline and
// JPEG 2000 frames stored as-is) are imported with StartDICOMImportJob from a local bucket; every
// frame is fetched with GetImageFrameCommand and judged against an oracle that never runs ahilite's
// code (../frames_oracle.py under the system Python: DCMTK and pydicom decode the sources,
// opj_decompress decodes the served HTJ2K / JPEG 2000 bytes, and OpenJPH's ojph_expand the HTJ2K
// ones again). Checked: Content-Type per stored
// syntax, byte count, decoded pixels' CRC32 against the oracle's and against the metadata's
// full-resolution checksum, min/max, kept frames byte for byte (SHA-256 of the source fragments);
// unknown frame ids and a deleted image set's frames are ResourceNotFoundException.
// pg: full (the JS SDK sends what boto3 sends; test_api_boto3*.py run on PostgreSQL in CI)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  GetImageSetMetadataCommand, GetImageFrameCommand, DeleteImageSetCommand,
} from '@aws-sdk/client-medical-imaging';
import { startServer } from './ahlserver.mjs';
import { TF, oracle, inputBucket, activeDatastore, importJob } from './frames_common.mjs';
import { jp2cOf } from './jph.mjs';

const FILES = ['CT_small.dcm', 'ExplVR_BigEnd.dcm', 'SC_rgb_rle_2frame.dcm', 'JPEG2000.dcm',
  'SC_rgb_jpeg_dcmtk.dcm'].map((n) => TF + n);
const SYNTH = 'synth_s8_3frame.dcm';
const CONTENT_TYPE = {
  '1.2.840.10008.1.2.4.202': 'image/jph',
  '1.2.840.10008.1.2.4.50': 'image/jpeg',
  '1.2.840.10008.1.2.4.91': 'image/j2c',
};

let tmp;
let srv;
let mi;
let ds;
let expected; // source path -> the oracle's expectations (frames_oracle.py expect)
const bySop = new Map(); // SOPInstanceUID -> { setId, inst }

async function metadataOf(imageSetId) {
  const r = await mi.send(new GetImageSetMetadataCommand({ datastoreId: ds, imageSetId }));
  assert.equal(r.contentEncoding, 'gzip');
  return JSON.parse(gunzipSync(Buffer.from(await r.imageSetMetadataBlob.transformToByteArray())));
}

// A frame as served, and for image/jph (a JPH file) the stored codestream it carries.
async function frame(imageSetId, imageFrameId) {
  const r = await mi.send(new GetImageFrameCommand({
    datastoreId: ds, imageSetId, imageFrameInformation: { imageFrameId },
  }));
  const served = Buffer.from(await r.imageFrameBlob.transformToByteArray());
  const bytes = r.contentType === 'image/jph' ? jp2cOf(served) : served;
  return { contentType: r.contentType, bytes };
}

function isNotFound(e) {
  return e.name === 'ResourceNotFoundException' && e.$metadata.httpStatusCode === 404;
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ahl-frames-js-'));
  const { root, files } = await inputBucket(tmp, FILES, [SYNTH]);
  const expecting = oracle('expect', ...files); // runs while the server imports

  srv = await startServer({ extraArgs: ['--s3-root', root] });
  mi = srv.client;
  ds = (await activeDatastore(mi, { datastoreName: 'frames-js' })).datastoreId;
  const jobId = await importJob(mi, ds, 'frames-js', 's3://in-bucket/js/', 's3://out-bucket/out/');
  const out = join(root, 'out-bucket', 'out', `${ds}-DicomImport-${jobId}`);
  const lines = (name) => readFileSync(join(out, name), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  assert.deepEqual(lines('FAILURE/failure.ndjson'), []);
  const ok = lines('SUCCESS/success.ndjson');
  assert.deepEqual(ok.map((l) => l.inputFile).sort(), files.map((f) => `js/${basename(f)}`).sort());
  for (const setId of new Set(ok.map((l) => l.importResponse.imageSetId))) {
    const doc = await metadataOf(setId);
    for (const series of Object.values(doc.Study.Series)) {
      for (const [sop, inst] of Object.entries(series.Instances)) bySop.set(sop, { setId, inst });
    }
  }
  expected = await expecting;
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('every frame fetched with the JS SDK matches the oracle', async () => {
  const compared = {};
  const blobDir = join(tmp, 'blobs');
  mkdirSync(blobDir);
  let n = 0;
  let ojph = 0;
  for (const [path, want] of Object.entries(expected)) {
    const where = basename(path);
    const got = bySop.get(want.SOPInstanceUID);
    assert.ok(got, `${where}: instance ${want.SOPInstanceUID} is in no image set`);
    const { setId, inst } = got;
    assert.equal(inst.StoredTransferSyntaxUID, want.StoredTransferSyntaxUID, where);
    assert.equal(inst.ImageFrames.length, want.frames.length, `${where}: frame count`);
    const toDecode = [];
    for (const [i, fr] of inst.ImageFrames.entries()) {
      const w = want.frames[i];
      const at = `${where} frame ${i + 1}`;
      const { contentType, bytes } = await frame(setId, fr.ID);
      assert.equal(contentType, CONTENT_TYPE[want.StoredTransferSyntaxUID], at);
      assert.equal(bytes.length, fr.FrameSizeInBytes, at);
      assert.deepEqual([fr.MinPixelValue, fr.MaxPixelValue], [w.min, w.max], `${at}: min/max`);
      const full = fr.PixelDataChecksumFromBaseToFullResolution.at(-1);
      assert.deepEqual([full.Width, full.Height], [want.Columns, want.Rows], `${at}: full size`);
      assert.equal(full.Checksum, w.crc32, `${at}: checksum against the oracle's pixels`);
      if (w.fragmentSha256) {
        assert.equal(createHash('sha256').update(bytes).digest('hex'), w.fragmentSha256,
          `${at}: a frame kept as-is must be the source fragments`);
      }
      if (want.StoredTransferSyntaxUID !== '1.2.840.10008.1.2.4.50') {
        const file = join(blobDir, `${n++}`);
        writeFileSync(file, bytes);
        toDecode.push({ file, at, w, full });
      }
    }
    if (toDecode.length) {
      const htj2k = want.StoredTransferSyntaxUID === '1.2.840.10008.1.2.4.202';
      const decoded = await oracle('decode', ...(htj2k ? ['--ojph'] : []), path, ...toDecode.map((d) => d.file));
      for (const [k, d] of toDecode.entries()) {
        assert.deepEqual([decoded[k].width, decoded[k].height], [want.Columns, want.Rows], d.at);
        assert.equal(decoded[k].crc32, d.w.crc32, `${d.at}: opj_decompress of the served frame differs from the source pixels`);
        assert.equal(decoded[k].crc32, d.full.Checksum, d.at);
        if (htj2k) {
          // OpenJPH's decoder too (its raw output shows negative samples as 0: ojph_view).
          assert.equal(decoded[k].ojphCrc32, decoded[k].ojphViewOfOpjCrc32, `${d.at}: ojph_expand disagrees`);
          ojph++;
        }
      }
    }
    const key = `${want.TransferSyntaxUID} -> ${want.StoredTransferSyntaxUID}`;
    compared[key] = (compared[key] || 0) + want.frames.length;
  }
  const total = Object.values(compared).reduce((a, b) => a + b, 0);
  console.log(`${total} frames of ${Object.keys(expected).length} files compared through the JS SDK:`, compared);
  assert.equal(total, 9); // CT 1, RGB planar 1, RLE 2, JPEG 2000 1, JPEG 1, synthetic 3
  assert.equal(Object.keys(compared).length, 5);
  assert.equal(ojph, 7); // the HTJ2K ones: all but the JPEG and JPEG 2000 frames kept as-is
});

test('unknown frame ids and a deleted image set\'s frames are ResourceNotFoundException', async () => {
  const ct = expected[TF + 'CT_small.dcm'];
  const { setId, inst } = bySop.get(ct.SOPInstanceUID);
  const other = bySop.get(expected[join(tmp, SYNTH)].SOPInstanceUID);
  assert.notEqual(other.setId, setId);
  await assert.rejects(frame(setId, '0123456789abcdef0123456789abcdef'), isNotFound);
  await assert.rejects(frame(setId, other.inst.ImageFrames[0].ID), isNotFound);

  const ids = Object.values((await metadataOf(setId)).Study.Series)
    .flatMap((s) => Object.values(s.Instances)).flatMap((i) => i.ImageFrames.map((f) => f.ID));
  assert.ok(ids.includes(inst.ImageFrames[0].ID));
  assert.equal((await frame(setId, ids[0])).contentType, 'image/jph');
  await mi.send(new DeleteImageSetCommand({ datastoreId: ds, imageSetId: setId }));
  for (const id of ids) await assert.rejects(frame(setId, id), isNotFound);
  // Another image set is untouched.
  assert.equal((await frame(other.setId, other.inst.ImageFrames[0].ID)).bytes.length,
    other.inst.ImageFrames[0].FrameSizeInBytes);
});
