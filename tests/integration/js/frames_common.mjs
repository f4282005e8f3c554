// What the JS frames suites share: the pixel oracle (../frames_oracle.py under the system Python,
// which has pydicom and DCMTK's tools at hand), local buckets for `ahilite serve --s3-root`, a data
// store made ACTIVE, and an import job run to its end.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  CreateDatastoreCommand, GetDatastoreCommand, StartDICOMImportJobCommand, GetDICOMImportJobCommand,
} from '@aws-sdk/client-medical-imaging';

const run = promisify(execFile);
const ORACLE = join(dirname(fileURLToPath(import.meta.url)), '..', 'frames_oracle.py');
export const TF = '/usr/lib/python3/dist-packages/pydicom/data/test_files/';

// frames_oracle.py's command line (synth, expect, decode), its JSON answer parsed.
export async function oracle(...args) {
  const r = await run('/usr/bin/python3', [ORACLE, ...args], { maxBuffer: 64 << 20 });
  return JSON.parse(r.stdout);
}

// Local buckets under DIR/s3 for `--s3-root`: in-bucket/js/ holding files and the oracle's
// synthetic files named synth (made in dir), and an empty out-bucket. { root, files }: the root
// and the paths of every file put in the bucket.
export async function inputBucket(dir, files, synth) {
  const root = join(dir, 's3');
  mkdirSync(join(root, 'in-bucket', 'js'), { recursive: true });
  mkdirSync(join(root, 'out-bucket'), { recursive: true });
  const all = [...files, ...await oracle('synth', dir, ...synth)];
  for (const f of all) copyFileSync(f, join(root, 'in-bucket', 'js', basename(f)));
  return { root, files: all };
}

// CreateDatastore with input, then GetDatastore until ACTIVE; the data store's properties.
export async function activeDatastore(mi, input) {
  const { datastoreId } = await mi.send(new CreateDatastoreCommand(input));
  for (;;) {
    const p = (await mi.send(new GetDatastoreCommand({ datastoreId }))).datastoreProperties;
    if (p.datastoreStatus === 'ACTIVE') return p;
    await new Promise((r) => setTimeout(r, 100));
  }
}

// StartDICOMImportJob (name doubles as the client token), polled until it ends; asserts that it
// COMPLETED and returns its jobId.
export async function importJob(mi, datastoreId, name, inputS3Uri, outputS3Uri) {
  const job = await mi.send(new StartDICOMImportJobCommand({
    jobName: name, datastoreId, clientToken: name,
    dataAccessRoleArn: 'arn:aws:iam::123456789012:role/ImportRole', inputS3Uri, outputS3Uri,
  }));
  const deadline = Date.now() + 120000;
  let props;
  for (;;) {
    props = (await mi.send(new GetDICOMImportJobCommand({ datastoreId, jobId: job.jobId }))).jobProperties;
    if (props.jobStatus === 'COMPLETED' || props.jobStatus === 'FAILED') break;
    assert.ok(Date.now() < deadline, 'import job did not finish');
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(props.jobStatus, 'COMPLETED', props.message);
  return job.jobId;
}
