// Image-set operations through the JavaScript SDK on pydicom samples imported with
// `ahilite import` before the server starts: search, metadata stream (gzip), frame, update,
// versions, revert.
// pg: full (the JS SDK sends what boto3 sends; test_api_boto3*.py run on PostgreSQL in CI)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import {
  ListDatastoresCommand, SearchImageSetsCommand, GetImageSetCommand, GetImageSetMetadataCommand,
  GetImageFrameCommand, UpdateImageSetMetadataCommand, ListImageSetVersionsCommand,
} from '@aws-sdk/client-medical-imaging';
import { startServer } from './ahlserver.mjs';
import { jp2cOf } from './jph.mjs';

const SAMPLE = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';
let srv;
let mi;
let ds;

before(async () => {
  srv = await startServer({
    beforeStart: ({ bin, dataDir }) => {
      const r = spawnSync(bin, ['import', '--data-dir', dataDir, '--create-datastore', 'js-samples', SAMPLE],
        { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    },
  });
  mi = srv.client;
  ds = (await mi.send(new ListDatastoresCommand({}))).datastoreSummaries[0].datastoreId;
});

after(async () => {
  assert.equal(await srv.stop(), 0);
});

async function metadata(imageSetId, versionId) {
  const r = await mi.send(new GetImageSetMetadataCommand({ datastoreId: ds, imageSetId, versionId }));
  assert.equal(r.contentEncoding, 'gzip');
  return JSON.parse(gunzipSync(Buffer.from(await r.imageSetMetadataBlob.transformToByteArray())).toString());
}

test('search, metadata, frame, update, versions, revert', async () => {
  const found = await mi.send(new SearchImageSetsCommand({
    datastoreId: ds,
    searchCriteria: { filters: [{ values: [{ DICOMPatientId: '1CT1' }], operator: 'EQUAL' }] },
  }));
  assert.equal(found.imageSetsMetadataSummaries.length, 1);
  const id = found.imageSetsMetadataSummaries[0].imageSetId;
  assert.ok(found.imageSetsMetadataSummaries[0].createdAt instanceof Date);

  const doc = await metadata(id);
  assert.equal(doc.ImageSetID, id);
  const series = Object.values(doc.Study.Series)[0];
  const inst = Object.values(series.Instances)[0];
  const frameId = inst.ImageFrames[0].ID;
  const f = await mi.send(new GetImageFrameCommand({ datastoreId: ds, imageSetId: id, imageFrameInformation: { imageFrameId: frameId } }));
  assert.equal(f.contentType, 'image/jph');
  const bytes = jp2cOf(Buffer.from(await f.imageFrameBlob.transformToByteArray()));
  assert.equal(bytes.length, inst.ImageFrames[0].FrameSizeInBytes);

  const upd = new TextEncoder().encode(JSON.stringify({ SchemaVersion: '1.1', Patient: { DICOM: { PatientName: 'JS^EDIT' } } }));
  const u = await mi.send(new UpdateImageSetMetadataCommand({
    datastoreId: ds, imageSetId: id, latestVersionId: '1',
    updateImageSetMetadataUpdates: { DICOMUpdates: { updatableAttributes: upd } },
  }));
  assert.equal(u.latestVersionId, '2');
  assert.equal(u.imageSetState, 'LOCKED');
  assert.equal((await metadata(id)).Patient.DICOM.PatientName, 'JS^EDIT');
  assert.equal((await metadata(id, '1')).Patient.DICOM.PatientName, 'CompressedSamples^CT1');
  await assert.rejects(mi.send(new UpdateImageSetMetadataCommand({
    datastoreId: ds, imageSetId: id, latestVersionId: '1',
    updateImageSetMetadataUpdates: { revertToVersionId: '1' },
  })), (e) => e.name === 'ConflictException' && e.$metadata.httpStatusCode === 409);

  const v = await mi.send(new ListImageSetVersionsCommand({ datastoreId: ds, imageSetId: id }));
  assert.deepEqual(v.imageSetPropertiesList.map((x) => x.versionId), ['2', '1']);
  const r = await mi.send(new UpdateImageSetMetadataCommand({
    datastoreId: ds, imageSetId: id, latestVersionId: '2',
    updateImageSetMetadataUpdates: { revertToVersionId: '1' },
  }));
  assert.equal(r.latestVersionId, '3');
  const g = await mi.send(new GetImageSetCommand({ datastoreId: ds, imageSetId: id }));
  assert.equal(g.versionId, '3');
  assert.equal((await metadata(id)).Patient.DICOM.PatientName, 'CompressedSamples^CT1');
});
