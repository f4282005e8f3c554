// StartDICOMImportJob's importConfiguration, inputOwnerAccountId and the import-job quotas through
// @aws-sdk/client-medical-imaging (docs/import.md#metadata-mappings, #limits). The installed SDK
// predates importConfiguration and would drop it, so a build-step middleware adds it to the JSON
// body before the request is signed, as a newer SDK sends it; its effect is read back through the
// SDK (GetImageSetMetadata). Owner: local buckets belong to the server's account. Quotas: a job
// over the files quota is FAILED naming it; a second job while one is in flight is refused with
// ServiceQuotaExceededException (402), and nothing is recorded for it.
// pg: full (the JS SDK sends what boto3 sends; test_import_mappings.py runs on PostgreSQL in CI)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  CreateDatastoreCommand, GetDatastoreCommand, StartDICOMImportJobCommand, GetDICOMImportJobCommand,
  ListDICOMImportJobsCommand, GetImageSetMetadataCommand, SearchImageSetsCommand,
} from '@aws-sdk/client-medical-imaging';
import { startServer } from './ahlserver.mjs';

const SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files/';
const ROLE = 'arn:aws:iam::123456789012:role/ImportRole';
const CT_STUDY = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';
const CT_SERIES = '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322';
let srv;
let mi;
let ds;

before(async () => {
  srv = await startServer({
    extraArgs: ['--job-max-files', '3', '--job-max-concurrent', '1'],
    beforeStart: ({ dataDir: d }) => {
      const put = (key, data) => {
        const p = join(d, 'buckets', 'js-in', key);
        mkdirSync(join(p, '..'), { recursive: true });
        writeFileSync(p, data);
      };
      put('map/meta/series.json', JSON.stringify({
        '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Js^Mapped' }] },
        '0008103E': { vr: 'LO', Value: ['JS series'] },
      }));
      mkdirSync(join(d, 'buckets', 'js-in', 'map'), { recursive: true });
      copyFileSync(SAMPLES + 'CT_small.dcm', join(d, 'buckets', 'js-in', 'map', 'ct.dcm'));
      mkdirSync(join(d, 'buckets', 'js-in', 'one'), { recursive: true });
      copyFileSync(SAMPLES + 'MR_small.dcm', join(d, 'buckets', 'js-in', 'one', 'mr.dcm'));
      mkdirSync(join(d, 'buckets', 'js-in', 'many'), { recursive: true });
      for (let i = 0; i < 4; i++) copyFileSync(SAMPLES + 'MR_small.dcm', join(d, 'buckets', 'js-in', 'many', `m${i}.dcm`));
      mkdirSync(join(d, 'buckets', 'js-in', 'slow'), { recursive: true });
      for (let i = 0; i < 3; i++) copyFileSync(SAMPLES + 'JPEG2000.dcm', join(d, 'buckets', 'js-in', 'slow', `j${i}.dcm`));
      mkdirSync(join(d, 'buckets', 'js-out'), { recursive: true });
    },
  });
  mi = srv.client;
  ds = (await mi.send(new CreateDatastoreCommand({ datastoreName: 'js-import-options' }))).datastoreId;
  while ((await mi.send(new GetDatastoreCommand({ datastoreId: ds }))).datastoreProperties.datastoreStatus !== 'ACTIVE') {
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, 'server must exit 0 on SIGTERM');
});

function startCommand(token, prefix, over = {}, importConfiguration = undefined) {
  const cmd = new StartDICOMImportJobCommand({
    datastoreId: ds, clientToken: token, dataAccessRoleArn: ROLE,
    inputS3Uri: `s3://js-in/${prefix}/`, outputS3Uri: 's3://js-out/out/', ...over,
  });
  if (importConfiguration) {
    cmd.middlewareStack.add((next) => async (args) => {
      const body = JSON.parse(args.request.body);
      body.importConfiguration = importConfiguration;
      args.request.body = JSON.stringify(body);
      args.request.headers['content-length'] = String(Buffer.byteLength(args.request.body));
      return next(args);
    }, { step: 'build', name: 'addImportConfiguration' });
  }
  return cmd;
}

async function waitJob(jobId) {
  const deadline = Date.now() + 60000;
  for (;;) {
    const p = (await mi.send(new GetDICOMImportJobCommand({ datastoreId: ds, jobId }))).jobProperties;
    if (['COMPLETED', 'FAILED'].includes(p.jobStatus)) return p;
    assert.ok(Date.now() < deadline, 'import job did not finish');
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function rejectsWith(promise, name, status, phrase) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.name, name, `${e.name}: ${e.message}`);
    assert.equal(e.$metadata.httpStatusCode, status);
    if (phrase) assert.ok(e.message.includes(phrase), e.message);
    return true;
  });
}

test('a study-and-series mapping enriches the imported instance', async () => {
  const cfg = { dicomJsonMetadataImportConfiguration: { dicomMetadataMappings: [
    { studyInstanceUID: CT_STUDY, seriesInstanceUID: CT_SERIES, metadataFilePath: 'meta/series.json' }] } };
  const s = await mi.send(startCommand('js-map', 'map', {}, cfg));
  const p = await waitJob(s.jobId);
  assert.equal(p.jobStatus, 'COMPLETED', p.message);
  const found = await mi.send(new SearchImageSetsCommand({ datastoreId: ds, searchCriteria: { filters: [
    { operator: 'EQUAL', values: [{ DICOMStudyInstanceUID: CT_STUDY }] }] } }));
  assert.equal(found.imageSetsMetadataSummaries.length, 1);
  const set = found.imageSetsMetadataSummaries[0];
  assert.equal(set.DICOMTags.DICOMPatientName, 'Js^Mapped');
  const m = await mi.send(new GetImageSetMetadataCommand({ datastoreId: ds, imageSetId: set.imageSetId }));
  const doc = JSON.parse(gunzipSync(Buffer.from(await m.imageSetMetadataBlob.transformToByteArray())));
  assert.equal(doc.Patient.DICOM.PatientName, 'Js^Mapped');
  assert.equal(doc.Study.Series[CT_SERIES].DICOM.SeriesDescription, 'JS series');
});

test('bad mappings are ValidationExceptions that record no job', async () => {
  const before = (await mi.send(new ListDICOMImportJobsCommand({ datastoreId: ds }))).jobSummaries.length;
  for (const [i, m, phrase] of [
    [1, { studyInstanceUID: '1.2', metadataFilePath: '../up.json' }, 'metadataFilePath'],
    [2, { studyInstanceUID: '1.02', metadataFilePath: 'a.json' }, 'studyInstanceUID'],
  ]) {
    await rejectsWith(mi.send(startCommand(`js-bad-${i}`, 'map', {},
      { dicomJsonMetadataImportConfiguration: { dicomMetadataMappings: [m] } })), 'ValidationException', 400, phrase);
  }
  const after = (await mi.send(new ListDICOMImportJobsCommand({ datastoreId: ds }))).jobSummaries.length;
  assert.equal(after, before);
});

test('inputOwnerAccountId must name the owner of the input bucket', async () => {
  let p = await waitJob((await mi.send(startCommand('js-owner-ok', 'one', { inputOwnerAccountId: '123456789012' }))).jobId);
  assert.equal(p.jobStatus, 'COMPLETED', p.message);
  p = await waitJob((await mi.send(startCommand('js-owner-bad', 'one', { inputOwnerAccountId: '210987654321' }))).jobId);
  assert.equal(p.jobStatus, 'FAILED');
  assert.ok(p.message.includes('210987654321') && p.message.includes('123456789012'), p.message);
});

test('the files quota fails a job; the concurrency quota refuses one', async (t) => {
  const p = await waitJob((await mi.send(startCommand('js-files', 'many'))).jobId);
  assert.equal(p.jobStatus, 'FAILED');
  assert.ok(p.message.includes('3 files per import job'), p.message);

  const first = await mi.send(startCommand('js-first', 'slow'));
  const state = (await mi.send(new GetDICOMImportJobCommand({ datastoreId: ds, jobId: first.jobId }))).jobProperties.jobStatus;
  const second = mi.send(startCommand('js-second', 'one'));
  if (['COMPLETED', 'FAILED'].includes(state)) {
    await second.catch(() => {});
    t.skip('the first job ended before the second was started');
    return;
  }
  await rejectsWith(second, 'ServiceQuotaExceededException', 402, 'concurrent import jobs');
  await waitJob(first.jobId);
  const p2 = await waitJob((await mi.send(startCommand('js-second', 'one'))).jobId);
  assert.equal(p2.jobStatus, 'COMPLETED', p2.message);
});
