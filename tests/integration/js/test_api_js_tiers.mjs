// Storage tiers through the JavaScript SDK (docs/decisions.md#storage-tier-and-last-access): two
// image sets imported with `ahilite import` are FREQUENT_ACCESS, last accessed at their import;
// the same data directory served again with the clock 31 days ahead (AHILITE_CLOCK_OFFSET) says
// ARCHIVE_INSTANT_ACCESS in GetImageSet and SearchImageSets, which are no accesses; a
// GetImageFrame brings its set back at once, and still after a restart, the other staying
// archived.
// pg: full (the JS SDK sends what boto3 sends; test_api_tiers.py runs on PostgreSQL in CI)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import {
  ListDatastoresCommand, SearchImageSetsCommand, GetImageSetCommand, GetImageSetMetadataCommand,
  GetImageFrameCommand,
} from '@aws-sdk/client-medical-imaging';
import { startServer } from './ahlserver.mjs';

const TF = '/usr/lib/python3/dist-packages/pydicom/data/test_files/';
const DAY = 86400;
let srv;

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0);
});

async function restart(days) {
  const { dir } = srv;
  assert.equal(await srv.stop({ keep: true }), 0);
  srv = await startServer({ dir, env: { AHILITE_CLOCK_OFFSET: String(days * DAY) } });
}

// { imageSetId: [storageTier, lastAccessedAt in ms] } from GetImageSet, checked against the search.
async function tiers(ds, ids) {
  const mi = srv.client;
  const got = {};
  for (const id of ids) {
    const r = await mi.send(new GetImageSetCommand({ datastoreId: ds, imageSetId: id }));
    assert.ok(r.lastAccessedAt instanceof Date);
    got[id] = [r.storageTier, r.lastAccessedAt.getTime()];
  }
  const found = await mi.send(new SearchImageSetsCommand({ datastoreId: ds }));
  for (const s of found.imageSetsMetadataSummaries) {
    assert.deepEqual([s.storageTier, s.lastAccessedAt.getTime()], got[s.imageSetId]);
  }
  assert.equal(found.imageSetsMetadataSummaries.length, ids.length);
  return got;
}

test('imported, archived after 31 days, back on GetImageFrame, kept across a restart', async () => {
  let t0;
  let t1;
  srv = await startServer({
    beforeStart: ({ bin, dataDir }) => {
      t0 = Date.now();
      const r = spawnSync(bin, ['import', '--data-dir', dataDir, '--create-datastore', 'js-tiers',
        `${TF}CT_small.dcm`, `${TF}MR_small.dcm`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      t1 = Date.now();
    },
  });
  const ds = (await srv.client.send(new ListDatastoresCommand({}))).datastoreSummaries[0].datastoreId;
  const found = await srv.client.send(new SearchImageSetsCommand({ datastoreId: ds }));
  const ids = found.imageSetsMetadataSummaries.map((s) => s.imageSetId).sort();
  assert.equal(ids.length, 2);
  const [read, idle] = ids;

  let got = await tiers(ds, ids);
  for (const id of ids) {
    assert.equal(got[id][0], 'FREQUENT_ACCESS');
    assert.ok(got[id][1] >= t0 - 1000 && got[id][1] <= t1 + 1000, `${got[id][1]} not in ${t0}..${t1}`);
  }
  const imported = got;
  // The frame to read later (reading the metadata today moves nothing: the import was today).
  const meta = await srv.client.send(new GetImageSetMetadataCommand({ datastoreId: ds, imageSetId: read }));
  const doc = JSON.parse(gunzipSync(Buffer.from(await meta.imageSetMetadataBlob.transformToByteArray())));
  const frameId = Object.values(Object.values(doc.Study.Series)[0].Instances)[0].ImageFrames[0].ID;

  await restart(31);
  for (let i = 0; i < 3; i++) {
    got = await tiers(ds, ids);
    assert.deepEqual(got, { [read]: ['ARCHIVE_INSTANT_ACCESS', imported[read][1]], [idle]: ['ARCHIVE_INSTANT_ACCESS', imported[idle][1]] });
  }

  const f = await srv.client.send(new GetImageFrameCommand({
    datastoreId: ds, imageSetId: read, imageFrameInformation: { imageFrameId: frameId },
  }));
  assert.ok((await f.imageFrameBlob.transformToByteArray()).length > 0);
  got = await tiers(ds, ids);
  assert.equal(got[read][0], 'FREQUENT_ACCESS');
  assert.ok(Math.abs(got[read][1] - (Date.now() + 31 * DAY * 1000)) < 30000);
  assert.deepEqual(got[idle], ['ARCHIVE_INSTANT_ACCESS', imported[idle][1]]);
  const day31 = got;

  await restart(31); // the read is written at shutdown
  assert.deepEqual(await tiers(ds, ids), day31);
});
