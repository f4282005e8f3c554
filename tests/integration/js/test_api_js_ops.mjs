// The operations the other JS suites reach only on their error paths (or not at all), through
// @aws-sdk/client-medical-imaging, each with a success whose result is checked against the model's
// output shape and errors with the AWS error name the SDK surfaces, followed by a check that the
// error changed nothing: import jobs from the server's default local buckets (DATA_DIR/buckets),
// copy into a new and an existing image set, delete, data stores that hold image sets, tag errors,
// and the validation errors of create, list, search and update.
// pg: full (the JS SDK sends what boto3 sends; test_api_boto3*.py run on PostgreSQL in CI)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  CreateDatastoreCommand, GetDatastoreCommand, ListDatastoresCommand, DeleteDatastoreCommand,
  TagResourceCommand, UntagResourceCommand, ListTagsForResourceCommand,
  StartDICOMImportJobCommand, GetDICOMImportJobCommand, ListDICOMImportJobsCommand,
  SearchImageSetsCommand, GetImageSetCommand, GetImageSetMetadataCommand, ListImageSetVersionsCommand,
  UpdateImageSetMetadataCommand, CopyImageSetCommand, DeleteImageSetCommand, GetImageFrameCommand,
} from '@aws-sdk/client-medical-imaging';
import { startServer } from './ahlserver.mjs';
import { jp2cOf } from './jph.mjs';
import { assertOutputShape } from './shapecheck.mjs';

const SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files/';
const ZERO = '0'.repeat(32);
const ROLE = 'arn:aws:iam::123456789012:role/ImportRole';
let srv;
let mi;
let ds;
let dataDir;

async function rejectsWith(promise, name, status) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.name, name, `${e.name}: ${e.message}`);
    assert.equal(e.$metadata.httpStatusCode, status);
    assert.ok(e.message, 'the error carries its message');
    return true;
  });
}

async function ok(operation, command) {
  const r = await mi.send(command);
  assertOutputShape(operation, r);
  return r;
}

async function sets() {
  const r = await mi.send(new SearchImageSetsCommand({ datastoreId: ds }));
  return r.imageSetsMetadataSummaries.map((s) => `${s.imageSetId}@${s.version}`).sort();
}

async function setOf(patientId) {
  const r = await ok('SearchImageSets', new SearchImageSetsCommand({
    datastoreId: ds,
    searchCriteria: { filters: [{ values: [{ DICOMPatientId: patientId }], operator: 'EQUAL' }] },
  }));
  assert.equal(r.imageSetsMetadataSummaries.length, 1, patientId);
  return r.imageSetsMetadataSummaries[0].imageSetId;
}

before(async () => {
  srv = await startServer({
    beforeStart: ({ dataDir: d }) => {
      dataDir = d;
      mkdirSync(join(d, 'buckets', 'js-in', 'samples'), { recursive: true });
      mkdirSync(join(d, 'buckets', 'js-out'), { recursive: true });
      for (const n of ['CT_small.dcm', 'MR_small.dcm']) copyFileSync(SAMPLES + n, join(d, 'buckets', 'js-in', 'samples', n));
    },
  });
  mi = srv.client;
  ds = (await mi.send(new CreateDatastoreCommand({ datastoreName: 'js-ops' }))).datastoreId;
  while ((await mi.send(new GetDatastoreCommand({ datastoreId: ds }))).datastoreProperties.datastoreStatus !== 'ACTIVE') {
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, 'server must exit 0 on SIGTERM');
});

function startArgs(over = {}) {
  return {
    datastoreId: ds, jobName: 'js-job', clientToken: 'js-job-token', dataAccessRoleArn: ROLE,
    inputS3Uri: 's3://js-in/samples/', outputS3Uri: 's3://js-out/runs/', ...over,
  };
}

test('import job: start, get, list, and its errors', async () => {
  const s = await ok('StartDICOMImportJob', new StartDICOMImportJobCommand(startArgs()));
  assert.equal(s.datastoreId, ds);
  assert.equal(s.jobStatus, 'SUBMITTED');
  assert.ok(Math.abs(s.submittedAt.getTime() - Date.now()) < 60000);
  assert.equal((await mi.send(new StartDICOMImportJobCommand(startArgs()))).jobId, s.jobId, 'clientToken is idempotent');

  const deadline = Date.now() + 60000;
  let g;
  for (;;) {
    g = await ok('GetDICOMImportJob', new GetDICOMImportJobCommand({ datastoreId: ds, jobId: s.jobId }));
    if (['COMPLETED', 'FAILED'].includes(g.jobProperties.jobStatus)) break;
    assert.ok(Date.now() < deadline, 'import job did not finish');
    await new Promise((r) => setTimeout(r, 200));
  }
  const p = g.jobProperties;
  assert.equal(p.jobStatus, 'COMPLETED', p.message);
  assert.deepEqual([p.jobId, p.jobName, p.datastoreId, p.dataAccessRoleArn, p.inputS3Uri],
    [s.jobId, 'js-job', ds, ROLE, 's3://js-in/samples/']);
  assert.equal(p.outputS3Uri, `s3://js-out/runs/${ds}-DicomImport-${s.jobId}/`);
  assert.ok(p.endedAt instanceof Date);
  const out = join(dataDir, 'buckets', 'js-out', 'runs', `${ds}-DicomImport-${s.jobId}`);
  const success = readFileSync(join(out, 'SUCCESS', 'success.ndjson'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.deepEqual(success.map((l) => l.inputFile).sort(), ['samples/CT_small.dcm', 'samples/MR_small.dcm']);

  const l = await ok('ListDICOMImportJobs', new ListDICOMImportJobsCommand({ datastoreId: ds }));
  assert.deepEqual(l.jobSummaries.map((j) => [j.jobId, j.jobStatus]), [[s.jobId, 'COMPLETED']]);
  const before = await sets();
  assert.equal(before.length, 2);

  await rejectsWith(mi.send(new StartDICOMImportJobCommand(startArgs({ jobName: 'other' }))), 'ConflictException', 409);
  await rejectsWith(mi.send(new StartDICOMImportJobCommand(startArgs({ clientToken: 'x1', datastoreId: ZERO }))),
    'ResourceNotFoundException', 404);
  await rejectsWith(mi.send(new StartDICOMImportJobCommand(startArgs({ clientToken: 'x2', inputS3Uri: 'http://js-in/samples/' }))),
    'ValidationException', 400);
  await rejectsWith(mi.send(new StartDICOMImportJobCommand(startArgs({ clientToken: 'x3', dataAccessRoleArn: 'role' }))),
    'ValidationException', 400);
  await rejectsWith(mi.send(new GetDICOMImportJobCommand({ datastoreId: ds, jobId: ZERO })), 'ResourceNotFoundException', 404);
  await rejectsWith(mi.send(new GetDICOMImportJobCommand({ datastoreId: ds, jobId: 'Bad_Job' })), 'ValidationException', 400);
  await rejectsWith(mi.send(new ListDICOMImportJobsCommand({ datastoreId: ZERO })), 'ResourceNotFoundException', 404);
  await rejectsWith(mi.send(new ListDICOMImportJobsCommand({ datastoreId: ds, maxResults: 0 })), 'ValidationException', 400);
  assert.deepEqual((await mi.send(new ListDICOMImportJobsCommand({ datastoreId: ds }))).jobSummaries, l.jobSummaries);
  assert.deepEqual(await sets(), before);
});

test('image set reads: get, metadata, versions, frame', async () => {
  const id = await setOf('1CT1');
  const g = await ok('GetImageSet', new GetImageSetCommand({ datastoreId: ds, imageSetId: id }));
  assert.deepEqual([g.imageSetId, g.versionId, g.imageSetState], [id, '1', 'ACTIVE']);
  const m = await ok('GetImageSetMetadata', new GetImageSetMetadataCommand({ datastoreId: ds, imageSetId: id }));
  assert.equal(m.contentEncoding, 'gzip');
  const doc = JSON.parse(gunzipSync(Buffer.from(await m.imageSetMetadataBlob.transformToByteArray())));
  const inst = Object.values(Object.values(doc.Study.Series)[0].Instances)[0];
  const f = await ok('GetImageFrame', new GetImageFrameCommand({
    datastoreId: ds, imageSetId: id, imageFrameInformation: { imageFrameId: inst.ImageFrames[0].ID },
  }));
  assert.equal(f.contentType, 'image/jph');
  const bytes = jp2cOf(Buffer.from(await f.imageFrameBlob.transformToByteArray()));
  assert.equal(bytes.length, inst.ImageFrames[0].FrameSizeInBytes);
  assert.deepEqual([...bytes.slice(0, 4)], [0xff, 0x4f, 0xff, 0x51]);
  const v = await ok('ListImageSetVersions', new ListImageSetVersionsCommand({ datastoreId: ds, imageSetId: id }));
  assert.deepEqual(v.imageSetPropertiesList.map((x) => x.versionId), ['1']);
  await rejectsWith(mi.send(new GetImageSetMetadataCommand({ datastoreId: ds, imageSetId: id, versionId: '9' })),
    'ResourceNotFoundException', 404);
  await rejectsWith(mi.send(new GetImageFrameCommand({
    datastoreId: ds, imageSetId: id, imageFrameInformation: { imageFrameId: 'NOT-A-FRAME' },
  })), 'ValidationException', 400);
  await rejectsWith(mi.send(new ListImageSetVersionsCommand({ datastoreId: ds, imageSetId: id, maxResults: 0 })),
    'ValidationException', 400);
});

test('update and search errors change nothing', async () => {
  const id = await setOf('1CT1');
  const before = await mi.send(new GetImageSetCommand({ datastoreId: ds, imageSetId: id }));
  const enc = (o) => new TextEncoder().encode(typeof o === 'string' ? o : JSON.stringify(o));
  for (const [latestVersionId, updates, name, status] of [
    ['9', { revertToVersionId: '1' }, 'ConflictException', 409],
    ['1', { DICOMUpdates: { updatableAttributes: enc('not json') } }, 'ValidationException', 400],
    ['1', { revertToVersionId: '5' }, 'ValidationException', 400],
  ]) {
    await rejectsWith(mi.send(new UpdateImageSetMetadataCommand({
      datastoreId: ds, imageSetId: id, latestVersionId, updateImageSetMetadataUpdates: updates,
    })), name, status);
  }
  const after = await mi.send(new GetImageSetCommand({ datastoreId: ds, imageSetId: id }));
  assert.deepEqual([after.versionId, after.imageSetState, after.updatedAt], [before.versionId, before.imageSetState, before.updatedAt]);
  const u = await ok('UpdateImageSetMetadata', new UpdateImageSetMetadataCommand({
    datastoreId: ds, imageSetId: id, latestVersionId: '1',
    updateImageSetMetadataUpdates: { DICOMUpdates: { updatableAttributes: enc({ SchemaVersion: 1.1, Patient: { DICOM: { PatientName: 'JS^OPS' } } }) } },
  }));
  assert.equal(u.latestVersionId, '2');

  for (const searchCriteria of [
    { filters: [{ values: [{ DICOMPatientId: 'a' }, { DICOMPatientId: 'b' }], operator: 'EQUAL' }] },
    { filters: [{ values: [{ DICOMStudyDateAndTime: { DICOMStudyDate: '2004' } }, { DICOMStudyDateAndTime: { DICOMStudyDate: '2005' } }], operator: 'BETWEEN' }] },
    { sort: { sortField: 'nothing', sortOrder: 'ASC' } },
  ]) {
    await rejectsWith(mi.send(new SearchImageSetsCommand({ datastoreId: ds, searchCriteria })), 'ValidationException', 400);
  }
  await rejectsWith(mi.send(new SearchImageSetsCommand({ datastoreId: ZERO })), 'ResourceNotFoundException', 404);
});

test('copy to a new and an existing image set, delete, and their errors', async () => {
  const src = await setOf('4MR1');
  const c = await ok('CopyImageSet', new CopyImageSetCommand({
    datastoreId: ds, sourceImageSetId: src, copyImageSetInformation: { sourceImageSet: { latestVersionId: '1' } },
  }));
  const dest = c.destinationImageSetProperties.imageSetId;
  assert.notEqual(dest, src);
  assert.deepEqual([c.datastoreId, c.sourceImageSetProperties.imageSetId, c.destinationImageSetProperties.latestVersionId],
    [ds, src, '1']);
  const c2 = await ok('CopyImageSet', new CopyImageSetCommand({
    datastoreId: ds, sourceImageSetId: src, force: true,
    copyImageSetInformation: {
      sourceImageSet: { latestVersionId: '1' }, destinationImageSet: { imageSetId: dest, latestVersionId: '1' },
    },
  }));
  assert.deepEqual([c2.destinationImageSetProperties.imageSetId, c2.destinationImageSetProperties.latestVersionId], [dest, '2']);

  const before = await sets();
  assert.equal(before.length, 3);
  for (const [info, name, status] of [
    [{ sourceImageSet: { latestVersionId: '7' } }, 'ConflictException', 409],
    [{ sourceImageSet: { latestVersionId: '1' }, destinationImageSet: { imageSetId: dest, latestVersionId: '1' } }, 'ConflictException', 409],
    [{ sourceImageSet: { latestVersionId: '1' }, destinationImageSet: { imageSetId: ZERO, latestVersionId: '1' } }, 'ResourceNotFoundException', 404],
    [{ sourceImageSet: { latestVersionId: 'one' } }, 'ValidationException', 400],
  ]) {
    await rejectsWith(mi.send(new CopyImageSetCommand({ datastoreId: ds, sourceImageSetId: src, copyImageSetInformation: info })), name, status);
  }
  assert.deepEqual(await sets(), before);

  await rejectsWith(mi.send(new DeleteDatastoreCommand({ datastoreId: ds })), 'ConflictException', 409);
  assert.equal((await mi.send(new GetDatastoreCommand({ datastoreId: ds }))).datastoreProperties.datastoreStatus, 'ACTIVE');

  const d = await ok('DeleteImageSet', new DeleteImageSetCommand({ datastoreId: ds, imageSetId: dest }));
  assert.deepEqual([d.datastoreId, d.imageSetId, d.imageSetState, d.imageSetWorkflowStatus], [ds, dest, 'LOCKED', 'DELETING']);
  // A deleted set stays visible as DELETED, at its last version (docs/decisions.md#tombstones).
  const t = await ok('GetImageSet', new GetImageSetCommand({ datastoreId: ds, imageSetId: dest }));
  assert.deepEqual([t.imageSetState, t.imageSetWorkflowStatus, t.versionId], ['DELETED', 'DELETED', '2']);
  assert.ok(t.deletedAt instanceof Date && Math.abs(t.deletedAt.getTime() - Date.now()) < 60000);
  const tv = await ok('ListImageSetVersions', new ListImageSetVersionsCommand({ datastoreId: ds, imageSetId: dest }));
  assert.deepEqual(tv.imageSetPropertiesList.map((v) => [v.versionId, v.imageSetState, v.ImageSetWorkflowStatus]),
    [['2', 'DELETED', 'DELETED']]);
  assert.equal(tv.imageSetPropertiesList[0].deletedAt.getTime(), t.deletedAt.getTime());
  const again = await ok('DeleteImageSet', new DeleteImageSetCommand({ datastoreId: ds, imageSetId: dest }));
  assert.deepEqual([again.imageSetState, again.imageSetWorkflowStatus], ['DELETED', 'DELETED']);
  await rejectsWith(mi.send(new GetImageSetMetadataCommand({ datastoreId: ds, imageSetId: dest })), 'ResourceNotFoundException', 404);
  await rejectsWith(mi.send(new CopyImageSetCommand({ datastoreId: ds, sourceImageSetId: dest, copyImageSetInformation: { sourceImageSet: { latestVersionId: '2' } } })), 'ConflictException', 409);
  await rejectsWith(mi.send(new DeleteImageSetCommand({ datastoreId: ds, imageSetId: 'not-an-id' })), 'ValidationException', 400);
  assert.deepEqual(await sets(), before.filter((x) => !x.startsWith(dest)));
  assert.equal((await mi.send(new GetImageSetCommand({ datastoreId: ds, imageSetId: src }))).versionId, '1', 'the source is untouched');
});

test('data store and tag errors change nothing', async () => {
  const cr = await ok('CreateDatastore', new CreateDatastoreCommand({ datastoreName: 'js-ops-tags', tags: { k: 'v' } }));
  const g = await ok('GetDatastore', new GetDatastoreCommand({ datastoreId: cr.datastoreId }));
  const arn = g.datastoreProperties.datastoreArn;
  const names = async () => (await ok('ListDatastores', new ListDatastoresCommand({}))).datastoreSummaries.map((s) => s.datastoreName).sort();
  const known = await names();
  await rejectsWith(mi.send(new CreateDatastoreCommand({ datastoreName: 'no spaces' })), 'ValidationException', 400);
  await rejectsWith(mi.send(new CreateDatastoreCommand({ datastoreName: 'x'.repeat(257) })), 'ValidationException', 400);
  await rejectsWith(mi.send(new ListDatastoresCommand({ datastoreStatus: 'SLEEPING' })), 'ValidationException', 400);
  await rejectsWith(mi.send(new GetDatastoreCommand({ datastoreId: 'BAD' })), 'ValidationException', 400);
  await rejectsWith(mi.send(new DeleteDatastoreCommand({ datastoreId: ZERO })), 'ResourceNotFoundException', 404);
  assert.deepEqual(await names(), known);

  assert.deepEqual((await ok('ListTagsForResource', new ListTagsForResourceCommand({ resourceArn: arn }))).tags, { k: 'v' });
  const missing = `${arn.slice(0, -32)}${ZERO}`;
  for (const [cmd, name, status] of [
    [new UntagResourceCommand({ resourceArn: missing, tagKeys: ['k'] }), 'ResourceNotFoundException', 404],
    [new UntagResourceCommand({ resourceArn: 'arn:aws:s3:::bucket', tagKeys: ['k'] }), 'ValidationException', 400],
    [new UntagResourceCommand({ resourceArn: arn, tagKeys: ['aws:k'] }), 'ValidationException', 400],
    [new TagResourceCommand({ resourceArn: missing, tags: { a: 'b' } }), 'ResourceNotFoundException', 404],
    [new TagResourceCommand({ resourceArn: arn, tags: { a: 'v'.repeat(257) } }), 'ValidationException', 400],
    [new ListTagsForResourceCommand({ resourceArn: 'not-an-arn' }), 'ValidationException', 400],
  ]) {
    await rejectsWith(mi.send(cmd), name, status);
  }
  assert.deepEqual((await mi.send(new ListTagsForResourceCommand({ resourceArn: arn }))).tags, { k: 'v' });
  await ok('UntagResource', new UntagResourceCommand({ resourceArn: arn, tagKeys: ['k'] }));
  await ok('TagResource', new TagResourceCommand({ resourceArn: arn, tags: { n: '1' } }));
  assert.deepEqual((await mi.send(new ListTagsForResourceCommand({ resourceArn: arn }))).tags, { n: '1' });
  const d = await ok('DeleteDatastore', new DeleteDatastoreCommand({ datastoreId: cr.datastoreId }));
  assert.deepEqual([d.datastoreId, d.datastoreStatus], [cr.datastoreId, 'DELETING']);
});
