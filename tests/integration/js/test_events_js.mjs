// HealthImaging's EventBridge events (docs/events.md) for calls made with the JS SDK: a data
// store created, tagged and deleted through @aws-sdk/client-medical-imaging, its events received
// by a webhook (node:http) and appended to an NDJSON file, both in commit order with AWS's
// envelope.
// pg: full (the JS SDK sends what boto3 sends; test_events.py runs on PostgreSQL in CI)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateDatastoreCommand, GetDatastoreCommand, DeleteDatastoreCommand,
} from '@aws-sdk/client-medical-imaging';
import { startServer } from './ahlserver.mjs';

let srv;
let hook;
let dir;
const received = [];

before(async () => {
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      received.push({ type: req.headers['content-type'], event: JSON.parse(body) });
      res.writeHead(200, { 'content-length': '0' });
      res.end();
    });
  });
  await new Promise((r) => hook.listen(0, '127.0.0.1', r));
  dir = mkdtempSync(join(tmpdir(), 'ahilite-js-events-'));
  srv = await startServer({
    extraArgs: ['--events-webhook', `http://127.0.0.1:${hook.address().port}/e`,
      '--events-file', join(dir, 'events.ndjson')],
  });
});

after(async () => {
  const code = await srv.stop();
  hook.close();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 0, 'server must exit 0 on SIGTERM');
});

async function waitFor(pred) {
  const deadline = Date.now() + 20000;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`events not delivered: ${JSON.stringify(received)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a data store created and deleted with the JS SDK makes its four events', async () => {
  const mi = srv.client;
  const { datastoreId } = await mi.send(new CreateDatastoreCommand({ datastoreName: 'js-events' }));
  const got = await mi.send(new GetDatastoreCommand({ datastoreId }));
  assert.equal(got.datastoreProperties.datastoreStatus, 'ACTIVE');
  await mi.send(new DeleteDatastoreCommand({ datastoreId }));
  await waitFor(() => received.length >= 4);
  assert.deepEqual(received.map((r) => r.event['detail-type']),
    ['Data Store Creating', 'Data Store Created', 'Data Store Deleting', 'Data Store Deleted']);
  assert.deepEqual(received.map((r) => r.event.detail.datastoreStatus),
    ['CREATING', 'ACTIVE', 'DELETING', 'DELETED']);
  for (const { type, event } of received) {
    assert.equal(type, 'application/json');
    assert.deepEqual(Object.keys(event),
      ['version', 'id', 'detail-type', 'source', 'account', 'time', 'region', 'resources', 'detail']);
    assert.equal(event.source, 'aws.medical-imaging');
    assert.equal(event.account, '123456789012');
    assert.equal(event.region, 'us-east-1');
    assert.deepEqual(event.resources,
      [`arn:aws:medical-imaging:us-east-1:123456789012:datastore/${datastoreId}`]);
    assert.deepEqual(event.detail, {
      imagingVersion: '1.0', datastoreId, datastoreName: 'js-events',
      datastoreStatus: event.detail.datastoreStatus,
    });
  }
  const lines = readFileSync(join(dir, 'events.ndjson'), 'utf8').trim().split('\n');
  assert.deepEqual(lines.map((l) => JSON.parse(l).id), received.map((r) => r.event.id));
});
