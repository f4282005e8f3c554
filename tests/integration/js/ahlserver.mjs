// Starts `ahilite serve` for a JS test file: a free loopback port, a temporary data directory, a
// credentials file with a known key pair; resolves once a signed request is answered.
// AHILITE_BIN names the server binary (set by CTest); extraArgs are appended to `ahilite serve`'s
// arguments (e.g. ['--s3-root', dir] for import jobs).
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MedicalImagingClient, ListDatastoresCommand } from '@aws-sdk/client-medical-imaging';

export const ACCESS_KEY = 'AKIAAHILITEJSTEST001';
export const SECRET_KEY = 'js/test/secret/key/00000000000000000000000';
export const REGION = 'us-east-1';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function client(endpoint, accessKeyId = ACCESS_KEY, secretAccessKey = SECRET_KEY) {
  return new MedicalImagingClient({
    endpoint,
    region: REGION,
    credentials: { accessKeyId, secretAccessKey },
    disableHostPrefix: true,
    maxAttempts: 1,
  });
}

// dir: start again on the data directory of a server stopped with stop({ keep: true }); env: more
// environment for the server (e.g. AHILITE_CLOCK_OFFSET).
export async function startServer({ beforeStart, extraArgs = [], dir: again, env = {} } = {}) {
  const bin = process.env.AHILITE_BIN;
  if (!bin) throw new Error('set AHILITE_BIN to the ahilite binary');
  const dir = again || mkdtempSync(join(tmpdir(), 'ahilite-js-'));
  const creds = join(dir, 'credentials');
  writeFileSync(creds, `[default]\naws_access_key_id = ${ACCESS_KEY}\naws_secret_access_key = ${SECRET_KEY}\n`);
  if (beforeStart) beforeStart({ bin, dataDir: join(dir, 'data') });
  const port = await freePort();
  const logPath = join(dir, 'server.log');
  const log = openSync(logPath, again ? 'a' : 'w');
  const proc = spawn(bin, ['serve', '--data-dir', join(dir, 'data'), '--listen', `127.0.0.1:${port}`,
    '--credentials', creds, '--region', REGION, '--account-id', '123456789012', '--workers', '2',
    ...extraArgs],
  { stdio: ['ignore', log, log], env: { ...process.env, ...env } });
  let exited = null;
  proc.on('exit', (code) => { exited = code; });
  const endpoint = `http://127.0.0.1:${port}`;
  const mi = client(endpoint);
  const deadline = Date.now() + 20000;
  for (;;) {
    if (exited !== null) throw new Error(`ahilite serve exited ${exited}:\n${readFileSync(logPath, 'utf8')}`);
    try {
      await mi.send(new ListDatastoresCommand({}));
      break;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`server not ready: ${e}\n${readFileSync(logPath, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    endpoint,
    port,
    dir,
    client: mi,
    log: () => readFileSync(logPath, 'utf8'),
    async stop({ keep = false } = {}) {
      if (exited === null) {
        const done = new Promise((r) => proc.once('exit', (code) => r(code)));
        proc.kill('SIGTERM');
        exited = await done;
      }
      if (!keep) rmSync(dir, { recursive: true, force: true });
      return exited;
    },
  };
}
