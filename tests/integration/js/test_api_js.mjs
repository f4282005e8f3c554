// Drives `ahilite serve` with @aws-sdk/client-medical-imaging (pinned in package-lock.json):
// data stores, tags, paging, data-plane calls and their errors as the JS SDK surfaces them.
// pg: full (the JS SDK sends what boto3 sends; test_api_boto3*.py run on PostgreSQL in CI)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CreateDatastoreCommand, GetDatastoreCommand, ListDatastoresCommand, DeleteDatastoreCommand,
  TagResourceCommand, UntagResourceCommand, ListTagsForResourceCommand,
  SearchImageSetsCommand, GetImageSetCommand, GetImageSetMetadataCommand,
  ListImageSetVersionsCommand, UpdateImageSetMetadataCommand, GetImageFrameCommand,
  DeleteImageSetCommand, CopyImageSetCommand, ListDICOMImportJobsCommand, GetDICOMImportJobCommand,
  paginateListDatastores,
} from '@aws-sdk/client-medical-imaging';
import { startServer, client } from './ahlserver.mjs';

const ZERO = '0'.repeat(32);
let srv;
let mi;

before(async () => {
  srv = await startServer();
  mi = srv.client;
});

after(async () => {
  const code = await srv.stop();
  assert.equal(code, 0, 'server must exit 0 on SIGTERM');
});

async function rejectsWith(promise, name, status, needle) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.name, name, `${e.name}: ${e.message}`);
    if (status) assert.equal(e.$metadata.httpStatusCode, status);
    if (needle) assert.ok(e.message.includes(needle), e.message);
    assert.ok(e.$metadata.requestId, 'x-amzn-RequestId is read by the SDK');
    return true;
  });
}

test('data store lifecycle with tags', async () => {
  const token = crypto.randomUUID();
  const created = await mi.send(new CreateDatastoreCommand({
    datastoreName: 'js-store', clientToken: token, tags: { env: 'test' },
  }));
  assert.match(created.datastoreId, /^[0-9a-z]{32}$/);
  assert.equal(created.datastoreStatus, 'CREATING');
  const ds = created.datastoreId;

  const { datastoreProperties: p } = await mi.send(new GetDatastoreCommand({ datastoreId: ds }));
  assert.equal(p.datastoreName, 'js-store');
  assert.equal(p.datastoreStatus, 'ACTIVE');
  assert.ok(p.createdAt instanceof Date);
  assert.ok(Math.abs(p.createdAt.getTime() - Date.now()) < 60000);
  assert.equal(p.datastoreArn, `arn:aws:medical-imaging:us-east-1:123456789012:datastore/${ds}`);

  const again = await mi.send(new CreateDatastoreCommand({
    datastoreName: 'js-store', clientToken: token, tags: { env: 'test' },
  }));
  assert.equal(again.datastoreId, ds);
  await rejectsWith(mi.send(new CreateDatastoreCommand({ datastoreName: 'other', clientToken: token })),
    'ConflictException', 409);

  const arn = p.datastoreArn;
  await mi.send(new TagResourceCommand({ resourceArn: arn, tags: { a: '1', 'b/c': '2' } }));
  assert.deepEqual((await mi.send(new ListTagsForResourceCommand({ resourceArn: arn }))).tags,
    { a: '1', 'b/c': '2', env: 'test' });
  await mi.send(new UntagResourceCommand({ resourceArn: arn, tagKeys: ['a', 'env'] }));
  assert.deepEqual((await mi.send(new ListTagsForResourceCommand({ resourceArn: arn }))).tags,
    { 'b/c': '2' });
  await rejectsWith(mi.send(new TagResourceCommand({ resourceArn: arn, tags: { 'aws:x': '1' } })),
    'ValidationException', 400, 'Map keys must satisfy constraint');
  await rejectsWith(mi.send(new ListTagsForResourceCommand({ resourceArn: `${arn.slice(0, -32)}${ZERO}` })),
    'ResourceNotFoundException', 404);

  const del = await mi.send(new DeleteDatastoreCommand({ datastoreId: ds }));
  assert.equal(del.datastoreStatus, 'DELETING');
  // The deleted data store stays visible as DELETED (docs/decisions.md#tombstones).
  const { datastoreProperties: gone } = await mi.send(new GetDatastoreCommand({ datastoreId: ds }));
  assert.equal(gone.datastoreStatus, 'DELETED');
  assert.ok(gone.updatedAt.getTime() >= p.updatedAt.getTime());
  const listed = await mi.send(new ListDatastoresCommand({ datastoreStatus: 'DELETED' }));
  assert.ok(listed.datastoreSummaries.some((s) => s.datastoreId === ds && s.datastoreStatus === 'DELETED'));
  const active = await mi.send(new ListDatastoresCommand({ datastoreStatus: 'ACTIVE' }));
  assert.ok(!active.datastoreSummaries.some((s) => s.datastoreId === ds));
  assert.equal((await mi.send(new DeleteDatastoreCommand({ datastoreId: ds }))).datastoreStatus, 'DELETED');
  assert.deepEqual((await mi.send(new ListTagsForResourceCommand({ resourceArn: arn }))).tags, {});
  await rejectsWith(mi.send(new TagResourceCommand({ resourceArn: arn, tags: { a: '1' } })), 'ConflictException', 409);
});

test('list paging and the paginator', async () => {
  const made = [];
  for (let i = 0; i < 4; i += 1) {
    made.push((await mi.send(new CreateDatastoreCommand({ datastoreName: `js-page-${i}` }))).datastoreId);
  }
  const seen = [];
  for await (const page of paginateListDatastores({ client: mi, pageSize: 3 }, {})) {
    assert.ok(page.datastoreSummaries.length <= 3);
    seen.push(...page.datastoreSummaries.map((s) => s.datastoreId));
  }
  for (const ds of made) assert.ok(seen.includes(ds));
  assert.equal(new Set(seen).size, seen.length);
  await rejectsWith(mi.send(new ListDatastoresCommand({ maxResults: 51 })), 'ValidationException', 400,
    "Value '51' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 50");
  for (const ds of made) await mi.send(new DeleteDatastoreCommand({ datastoreId: ds }));
});

test('data-plane calls on unknown image sets', async () => {
  const { datastoreId: ds } = await mi.send(new CreateDatastoreCommand({ datastoreName: 'js-runtime' }));
  const s = await mi.send(new SearchImageSetsCommand({ datastoreId: ds }));
  assert.deepEqual(s.imageSetsMetadataSummaries, []);
  const s2 = await mi.send(new SearchImageSetsCommand({
    datastoreId: ds,
    searchCriteria: {
      filters: [{ values: [{ createdAt: new Date(0) }, { createdAt: new Date() }], operator: 'BETWEEN' }],
      sort: { sortField: 'createdAt', sortOrder: 'DESC' },
    },
  }));
  assert.deepEqual(s2.imageSetsMetadataSummaries, []);
  assert.deepEqual(s2.sort, { sortField: 'createdAt', sortOrder: 'DESC' });
  const ids = { datastoreId: ds, imageSetId: ZERO };
  for (const cmd of [
    new GetImageSetCommand(ids),
    new GetImageSetCommand({ ...ids, versionId: '2' }),
    new GetImageSetMetadataCommand(ids),
    new ListImageSetVersionsCommand(ids),
    new DeleteImageSetCommand(ids),
    new GetImageFrameCommand({ ...ids, imageFrameInformation: { imageFrameId: ZERO } }),
    new UpdateImageSetMetadataCommand({
      ...ids,
      latestVersionId: '1',
      updateImageSetMetadataUpdates: { DICOMUpdates: { updatableAttributes: new TextEncoder().encode('{"SchemaVersion":1.1}') } },
    }),
    new CopyImageSetCommand({
      datastoreId: ds, sourceImageSetId: ZERO,
      copyImageSetInformation: { sourceImageSet: { latestVersionId: '1' } },
    }),
  ]) {
    await rejectsWith(mi.send(cmd), 'ResourceNotFoundException', 404);
  }
  await rejectsWith(mi.send(new GetImageSetCommand({ ...ids, versionId: 'v1' })), 'ValidationException', 400,
    "at 'versionId' failed to satisfy constraint: Member must satisfy regular expression pattern");
  assert.deepEqual((await mi.send(new ListDICOMImportJobsCommand({ datastoreId: ds }))).jobSummaries, []);
  await rejectsWith(mi.send(new GetDICOMImportJobCommand({ datastoreId: ds, jobId: 'nope' })),
    'ResourceNotFoundException', 404);
  await mi.send(new DeleteDatastoreCommand({ datastoreId: ds }));
});

test('signature errors', async () => {
  await rejectsWith(client(srv.endpoint, 'AKIAUNKNOWNKEY000000', 'x').send(new ListDatastoresCommand({})),
    'UnrecognizedClientException', 403);
  await rejectsWith(client(srv.endpoint, undefined, 'wrong-secret').send(new ListDatastoresCommand({})),
    'InvalidSignatureException', 403);
});
