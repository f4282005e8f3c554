// A data store created with losslessStorageFormat JPEG_2000_LOSSLESS, through the JavaScript SDK:
// CreateDatastoreCommand takes the format and GetDatastoreCommand reports it; a few corpus files
// (16-bit signed CT, multi-frame RLE RGB, a JPEG 2000 lossless source, JPEG 2000 kept as-is, a
// synthetic 3-frame 8-bit signed file) imported with StartDICOMImportJob are stored as JPEG 2000
// lossless (1.2.840.10008.1.2.4.90) where lossless; GetImageFrameCommand answers them image/j2c,
// FrameSizeInBytes long, and opj_decompress decodes them to the oracle's source pixels
// (../frames_oracle.py under the system Python), whose CRC32 is the metadata's full-resolution
// checksum. The same files in an HTJ2K data store of the same server are HTJ2K (image/jph).
// pg: full (the JS SDK sends what boto3 sends; test_frames_j2k.py checks the same frames)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  SearchImageSetsCommand, GetImageSetMetadataCommand, GetImageFrameCommand,
} from '@aws-sdk/client-medical-imaging';
import { startServer } from './ahlserver.mjs';
import { TF, oracle, inputBucket, activeDatastore, importJob } from './frames_common.mjs';

const FILES = ['CT_small.dcm', 'SC_rgb_rle_2frame.dcm', 'MR_small_jp2klossless.dcm',
  'JPEG2000.dcm'].map((n) => TF + n);
const SYNTH = 'synth_s8_3frame.dcm';
const J2K = '1.2.840.10008.1.2.4.90';
const HTJ2K = '1.2.840.10008.1.2.4.202';
const CONTENT_TYPE = { [J2K]: 'image/j2c', '1.2.840.10008.1.2.4.91': 'image/j2c', [HTJ2K]: 'image/jph' };

let tmp;
let srv;
let mi;
let files;
const stores = {}; // name -> { ds, bySop: SOPInstanceUID -> { setId, inst } }

async function importInto(name, format) {
  const input = format ? { losslessStorageFormat: format } : {};
  const p = await activeDatastore(mi, { datastoreName: name, ...input });
  const ds = p.datastoreId;
  assert.equal(p.losslessStorageFormat, format || 'HTJ2K');
  await importJob(mi, ds, name, 's3://in-bucket/js/', `s3://out-bucket/${name}/`);
  const bySop = new Map();
  const sets = await mi.send(new SearchImageSetsCommand({ datastoreId: ds }));
  for (const s of sets.imageSetsMetadataSummaries) {
    const r = await mi.send(new GetImageSetMetadataCommand({ datastoreId: ds, imageSetId: s.imageSetId }));
    const doc = JSON.parse(gunzipSync(Buffer.from(await r.imageSetMetadataBlob.transformToByteArray())));
    for (const series of Object.values(doc.Study.Series)) {
      for (const [sop, inst] of Object.entries(series.Instances)) bySop.set(sop, { setId: s.imageSetId, inst });
    }
  }
  stores[name] = { ds, bySop };
}

async function frame(ds, imageSetId, imageFrameId) {
  const r = await mi.send(new GetImageFrameCommand({
    datastoreId: ds, imageSetId, imageFrameInformation: { imageFrameId },
  }));
  return { contentType: r.contentType, bytes: Buffer.from(await r.imageFrameBlob.transformToByteArray()) };
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ahl-frames-j2k-js-'));
  let root;
  ({ root, files } = await inputBucket(tmp, FILES, [SYNTH]));
  srv = await startServer({ extraArgs: ['--s3-root', root] });
  mi = srv.client;
  await importInto('j2k', 'JPEG_2000_LOSSLESS');
  await importInto('htj2k', undefined);
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('a JPEG_2000_LOSSLESS store serves .4.90 frames that decode to the source pixels', async () => {
  const expected = await oracle('expect', '--lossless', J2K, ...files);
  const { ds, bySop } = stores.j2k;
  const blobDir = join(tmp, 'blobs');
  mkdirSync(blobDir);
  let n = 0;
  let j2k = 0;
  for (const [path, want] of Object.entries(expected)) {
    const where = basename(path);
    const { setId, inst } = bySop.get(want.SOPInstanceUID);
    assert.equal(inst.StoredTransferSyntaxUID, want.StoredTransferSyntaxUID, where);
    assert.equal(inst.ImageFrames.length, want.frames.length, `${where}: frame count`);
    const toDecode = [];
    for (const [i, fr] of inst.ImageFrames.entries()) {
      const w = want.frames[i];
      const at = `${where} frame ${i + 1}`;
      const { contentType, bytes } = await frame(ds, setId, fr.ID);
      assert.equal(contentType, CONTENT_TYPE[want.StoredTransferSyntaxUID], at);
      assert.equal(bytes.length, fr.FrameSizeInBytes, at);
      assert.deepEqual([fr.MinPixelValue, fr.MaxPixelValue], [w.min, w.max], `${at}: min/max`);
      const full = fr.PixelDataChecksumFromBaseToFullResolution.at(-1);
      assert.equal(full.Checksum, w.crc32, `${at}: checksum against the oracle's pixels`);
      if (w.fragmentSha256) {
        assert.equal(createHash('sha256').update(bytes).digest('hex'), w.fragmentSha256, at);
      } else {
        // A bare JPEG 2000 Part 1 codestream, its content address the frame's ID.
        assert.deepEqual([...bytes.subarray(0, 4)], [0xff, 0x4f, 0xff, 0x51], at);
        const inner = createHash('sha256').update(bytes).digest();
        assert.equal(createHash('sha256').update(Buffer.concat([Buffer.from(`${J2K}\0`), inner]))
          .digest('hex').slice(0, 32), fr.ID, at);
        j2k++;
      }
      const file = join(blobDir, `${n++}`);
      writeFileSync(file, bytes);
      toDecode.push({ file, at, w });
    }
    const decoded = await oracle('decode', path, ...toDecode.map((d) => d.file));
    for (const [k, d] of toDecode.entries()) {
      assert.deepEqual([decoded[k].width, decoded[k].height], [want.Columns, want.Rows], d.at);
      assert.equal(decoded[k].crc32, d.w.crc32, `${d.at}: opj_decompress differs from the source pixels`);
    }
  }
  assert.equal(j2k, 7); // CT 1, RLE 2, JPEG 2000 lossless 1, synthetic 3 (JPEG2000.dcm is kept)
});

test('an HTJ2K store of the same server still stores HTJ2K', async () => {
  const expected = await oracle('expect', ...files);
  const { ds, bySop } = stores.htj2k;
  for (const want of Object.values(expected)) {
    const { setId, inst } = bySop.get(want.SOPInstanceUID);
    assert.equal(inst.StoredTransferSyntaxUID, want.StoredTransferSyntaxUID);
    const { contentType } = await frame(ds, setId, inst.ImageFrames[0].ID);
    assert.equal(contentType, CONTENT_TYPE[want.StoredTransferSyntaxUID]);
  }
  const ct = expected[TF + 'CT_small.dcm'];
  assert.equal(bySop.get(ct.SOPInstanceUID).inst.StoredTransferSyntaxUID, HTJ2K);
  assert.notEqual(bySop.get(ct.SOPInstanceUID).inst.ImageFrames[0].ID,
    stores.j2k.bySop.get(ct.SOPInstanceUID).inst.ImageFrames[0].ID);
});
