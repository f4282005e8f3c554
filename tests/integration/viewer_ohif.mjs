// The OHIF viewer that `ahilite serve` offers at /viewer/, driven in headless Chromium
// (puppeteer-core, the system's chromium): a study of a three-slice CT series and a four-frame
// instance is imported; the viewer opens the study list, the CT series and the multi-frame
// series, and each image must render (the viewport's screenshot is not blank: its pixels vary).
// PatientName is then changed with the AWS CLI (UpdateImageSetMetadata), and after a reload the
// viewer shows the new name. The viewer signs in at a small OpenID provider run here (its RSA
// key's JWKS given to the server) and reaches DICOMweb with the access token it gets.
//
// Run by tests/integration/test_viewer_ohif.sh (which skips, 77, without chromium or
// viewer/node_modules). Screenshots: $AHILITE_BUILD/test-artifacts/viewer/ (docs/dicomweb.md#viewer).
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SRC = process.env.AHILITE_SRC || path.resolve(here, '../..');
const BUILD = process.env.AHILITE_BUILD || path.join(SRC, 'build');
const BIN = process.env.AHILITE_BIN || path.join(BUILD, 'ahilite');
const CHROMIUM = process.env.AHILITE_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(BUILD, 'test-artifacts', 'viewer');
const SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const AUDIENCE = 'ahilite';
const CLIENT_ID = 'ahilite-viewer';
const ACCESS_KEY = 'AKIAAHILITEVIEWER001';
const SECRET_KEY = 'viewer/test/secret/key/0000000000000000000';
const STUDY = '1.2.826.0.1.3680043.8.498.777.1';
const CT_SERIES = `${STUDY}.1`;
const MF_SERIES = `${STUDY}.2`;
const puppeteer = createRequire(path.join(SRC, 'viewer', 'package.json'))('puppeteer-core');

let failures = 0;
let passes = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok' : 'FAIL'}: ${what}`);
  if (ok) passes++;
  else failures++;
  return ok;
}

// A CT series of three slices made from pydicom's CT sample, and a four-frame 16-bit instance
// (Multi-frame Grayscale Word Secondary Capture) in a second series of the same study.
const MAKE_SAMPLES = String.raw`
import sys, pydicom
src = sys.argv[1]
out = sys.argv[2]
for i in range(3):
    ds = pydicom.dcmread(src)
    ds.PatientName = 'Viewer^Before'
    ds.StudyInstanceUID = '${STUDY}'
    ds.SeriesInstanceUID = '${CT_SERIES}'
    ds.SOPInstanceUID = '${CT_SERIES}.%d' % (i + 1)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = i + 1
    ds.SeriesNumber = 1
    ds.SeriesDescription = 'CT three slices'
    x, y, z = ds.ImagePositionPatient
    ds.ImagePositionPatient = [x, y, float(z) + 5 * i]
    ds.SliceLocation = float(z) + 5 * i
    px = bytearray(ds.PixelData)
    if i:  # each slice its own pixels: the sample's, shifted by rows
        shift = 2 * ds.Columns * 8 * i
        px = px[shift:] + px[:shift]
    ds.PixelData = bytes(px)
    ds.save_as('%s/ct_%d.dcm' % (out, i + 1))
ds = pydicom.dcmread(src)
ds.PatientName = 'Viewer^Before'
ds.StudyInstanceUID = '${STUDY}'
ds.SeriesInstanceUID = '${MF_SERIES}'
ds.SOPInstanceUID = '${MF_SERIES}.1'
ds.SOPClassUID = '1.2.840.10008.5.1.4.1.1.7.3'
ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.Modality = 'OT'
ds.SeriesNumber = 2
ds.SeriesDescription = 'Four frames'
ds.InstanceNumber = 1
ds.NumberOfFrames = 4
frame = bytes(ds.PixelData)
ds.PixelData = frame + bytes(reversed(frame)) + frame[::-1][::2] + frame[::2] + frame
ds.PixelData = ds.PixelData[:4 * len(frame)]
ds.save_as('%s/multiframe.dcm' % out)
`;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// A small OpenID provider on a loopback port, as the viewer's sign-in meets one: discovery, an
// authorization endpoint that signs the user in at once (no login form) and redirects back with
// a code, a token endpoint that trades the code (checking the redirect URI and the PKCE
// verifier) for an RS256 access token (aud AUDIENCE, scope ahilite:read) and an ID token (aud the
// viewer's client id), and the JWKS, which is also written to a file for `--oidc-jwks`. CORS is
// open, as a provider's token endpoint is for browser clients.
async function startProvider(dir) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = publicKey.export({ format: 'jwk' });
  const kid = 'viewer-test-key';
  const jwks = { keys: [{ kty: 'RSA', kid, use: 'sig', alg: 'RS256', n: jwk.n, e: jwk.e }] };
  const jwksPath = path.join(dir, 'jwks.json');
  fs.writeFileSync(jwksPath, JSON.stringify(jwks));
  const sign = (claims) => {
    const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }));
    const body = b64url(JSON.stringify(claims));
    return `${head}.${body}.${b64url(crypto.sign('sha256', Buffer.from(`${head}.${body}`), privateKey))}`;
  };
  const codes = new Map();
  const calls = [];
  const tokens = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, issuer);
    const json = (status, obj) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-allow-headers', '*');
    if (req.method === 'OPTIONS') {
      res.writeHead(204);
      res.end();
      return;
    }
    calls.push(`${req.method} ${u.pathname}`);
    if (u.pathname === '/.well-known/openid-configuration') {
      json(200, {
        issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`, userinfo_endpoint: `${issuer}/userinfo`,
        end_session_endpoint: `${issuer}/logout`, response_types_supported: ['code'],
        subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'],
        code_challenge_methods_supported: ['S256'], scopes_supported: ['openid', 'ahilite:read'],
      });
    } else if (u.pathname === '/jwks') {
      json(200, jwks);
    } else if (u.pathname === '/authorize') {
      const q = u.searchParams;
      if (q.get('client_id') !== CLIENT_ID || q.get('response_type') !== 'code' ||
          q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
        json(400, { error: 'invalid_request', error_description: u.search });
        return;
      }
      const code = crypto.randomBytes(16).toString('hex');
      codes.set(code, { challenge: q.get('code_challenge'), nonce: q.get('nonce'),
        redirect: q.get('redirect_uri'), scope: q.get('scope') });
      const back = new URL(q.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state'));
      res.writeHead(302, { location: back.toString() });
      res.end();
    } else if (u.pathname === '/token' && req.method === 'POST') {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        const f = new URLSearchParams(body);
        const c = codes.get(f.get('code'));
        codes.delete(f.get('code'));
        const verifier = f.get('code_verifier') || '';
        if (!c || f.get('grant_type') !== 'authorization_code' ||
            f.get('redirect_uri') !== c.redirect ||
            b64url(crypto.createHash('sha256').update(verifier).digest()) !== c.challenge) {
          json(400, { error: 'invalid_grant' });
          return;
        }
        const now = Math.floor(Date.now() / 1000);
        const access = sign({ iss: issuer, aud: AUDIENCE, sub: 'viewer-test', iat: now,
          exp: now + 3600, scope: c.scope, client_id: CLIENT_ID });
        tokens.push(access);
        json(200, {
          access_token: access, token_type: 'Bearer', expires_in: 3600, scope: c.scope,
          id_token: sign({ iss: issuer, aud: CLIENT_ID, sub: 'viewer-test', iat: now,
            exp: now + 3600, name: 'Viewer Test', ...(c.nonce ? { nonce: c.nonce } : {}) }),
        });
      });
    } else if (u.pathname === '/userinfo') {
      json(200, { sub: 'viewer-test', name: 'Viewer Test' });
    } else {
      json(404, { error: 'not_found' });
    }
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { issuer, jwksPath, calls, tokens, close: () => new Promise((r) => server.close(r)) };
}

function awsBinary() {
  const py = process.env.AHILITE_PYTHON;
  const beside = py ? path.join(path.dirname(py), 'aws') : '';
  return beside && fs.existsSync(beside) ? beside : 'aws';
}

function aws(endpoint, credFile, ...args) {
  const env = {
    ...process.env,
    AWS_SHARED_CREDENTIALS_FILE: credFile,
    AWS_CONFIG_FILE: os.devnull,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_DISABLE_HOST_PREFIX_INJECTION: 'true',
    AWS_MAX_ATTEMPTS: '1',
  };
  delete env.AWS_ACCESS_KEY_ID;
  delete env.AWS_SECRET_ACCESS_KEY;
  delete env.AWS_SESSION_TOKEN;
  delete env.AWS_PROFILE;
  const p = spawnSync(awsBinary(), ['medical-imaging', ...args, '--endpoint-url', endpoint,
    '--output', 'json'], { env, encoding: 'utf8', timeout: 120000 });
  if (p.status !== 0) throw new Error(`aws ${args.join(' ')}: ${p.stderr || p.error}`);
  return p.stdout.trim() ? JSON.parse(p.stdout) : {};
}

async function startServer(dir, idp) {
  const dataDir = path.join(dir, 'data');
  const samples = path.join(dir, 'samples');
  fs.mkdirSync(samples);
  let p = spawnSync('/usr/bin/python3', ['-c', MAKE_SAMPLES, path.join(SAMPLES, 'CT_small.dcm'),
    samples], { encoding: 'utf8' });
  if (p.status !== 0) throw new Error(`making the samples: ${p.stderr}`);
  p = spawnSync(BIN, ['import', '--data-dir', dataDir, '--create-datastore', 'viewer-test',
    ...fs.readdirSync(samples).sort().map((f) => path.join(samples, f))], { encoding: 'utf8' });
  if (p.status !== 0) throw new Error(`ahilite import: ${p.stdout}${p.stderr}`);
  const credFile = path.join(dir, 'credentials');
  fs.writeFileSync(credFile,
    `[default]\naws_access_key_id = ${ACCESS_KEY}\naws_secret_access_key = ${SECRET_KEY}\n`);
  const port = await freePort();
  const logPath = path.join(dir, 'server.log');
  const log = fs.openSync(logPath, 'w');
  const args = ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`,
    '--credentials', credFile, '--workers', '2',
    '--viewer', path.join(SRC, 'viewer', 'dist'),
    '--oidc-jwks', idp.jwksPath, '--oidc-issuer', idp.issuer, '--oidc-audience', AUDIENCE,
    '--viewer-oidc-client-id', CLIENT_ID];
  const proc = spawn(BIN, args, { stdio: ['ignore', log, log] });
  let exited = null;
  proc.on('exit', (code) => { exited = code; });
  const endpoint = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 20000; ;) {
    if (exited !== null) throw new Error(`ahilite serve exited ${exited}:\n${fs.readFileSync(logPath, 'utf8')}`);
    try {
      if ((await fetch(`${endpoint}/viewer/app-config.js`)).ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error('ahilite serve did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    endpoint, credFile, logPath,
    async stop() {
      if (exited !== null) return exited;
      const done = new Promise((r) => proc.once('exit', (code) => r(code)));
      proc.kill('SIGTERM');
      return done;
    },
  };
}

// The pixel variance of a PNG screenshot, decoded by the browser itself.
async function variance(page, png) {
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width;
    c.height = img.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let sum = 0; let sq = 0; const n = d.length / 4;
    for (let i = 0; i < d.length; i += 4) {
      const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
      sum += v;
      sq += v * v;
    }
    const mean = sum / n;
    return sq / n - mean * mean;
  }, Buffer.from(png).toString('base64'));
}

// Waits until the active viewport's canvas shows an image (variance above a blank canvas's),
// saves the screenshot as name.png, and returns the variance.
async function waitForImage(page, name, timeoutMs = 45000) {
  const deadline = Date.now() + timeoutMs;
  let v = 0;
  let shot = null;
  for (;;) {
    const canvas = await page.$('.cornerstone-canvas, [data-viewport-uid] canvas');
    if (canvas) {
      const box = await canvas.boundingBox();
      if (box && box.width > 50 && box.height > 50) {
        shot = await page.screenshot({ clip: box });
        v = await variance(page, shot);
        if (v > 50) break;
      }
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
  if (shot) fs.writeFileSync(path.join(ARTIFACTS, `${name}-viewport.png`), shot);
  return v;
}

// Closes OHIF's first-visit tour when it shows, so that it covers nothing in the screenshots.
async function skipTour(page) {
  await page.evaluate(() => {
    for (const b of document.querySelectorAll('button, a, span')) {
      if (b.textContent.trim() === 'Skip all') b.click();
    }
  });
}

// Opens the patient details in the viewer's header (its "Patient" toggle) and waits for name.
async function patientDetails(page, name, timeoutMs = 20000) {
  const toggle = await page.$('::-p-text(Patient)');
  if (toggle) await toggle.click();
  return waitForText(page, name, timeoutMs);
}

// Goes to a route of the viewer inside the running app, as a link does: a full page load of a
// route with a query sends OHIF through its sign-in again. OHIF 3.13, signed in with OIDC,
// doubles the '?' of the first route it is sent to after a sign-in (`viewer??StudyInstanceUIDs`,
// which opens nothing); the route is then given again.
async function openInApp(page, route) {
  for (let attempt = 0; attempt < 3; attempt++) {
    await page.evaluate((r) => {
      window.history.pushState({}, '', r);
      window.dispatchEvent(new PopStateEvent('popstate', { state: {} }));
    }, route);
    await new Promise((r) => setTimeout(r, 3000));
    if (!page.url().includes('??')) return;
    console.log(`note: OHIF went to ${page.url()}; going to ${route} again`);
  }
}

// The text of the viewport's overlay (series description, W/L, image index), from the canvas up
// to the first ancestor that shows the window level.
async function viewportText(page) {
  return page.evaluate(() => {
    let e = document.querySelector('.cornerstone-canvas, [data-viewport-uid] canvas');
    while (e && !(e.innerText || '').includes('W:')) e = e.parentElement;
    return e ? e.innerText : '';
  });
}

// Double-clicks the study browser's thumbnail of a series (by its description), which loads it
// into the active viewport, until the viewport's overlay names it (a tour's popup or a thumbnail
// still loading can take the first double-click).
async function openSeries(page, description) {
  await page.waitForSelector('[data-cy="study-browser-thumbnail"]', { timeout: 30000 });
  for (let attempt = 0; attempt < 4; attempt++) {
    await skipTour(page);
    for (const t of await page.$$('[data-cy="study-browser-thumbnail"]')) {
      if ((await t.evaluate((e) => e.innerText)).includes(description)) {
        await t.click({ count: 2 });
        break;
      }
    }
    try {
      await page.waitForFunction((d) => {
        let e = document.querySelector('.cornerstone-canvas, [data-viewport-uid] canvas');
        while (e && !(e.innerText || '').includes('W:')) e = e.parentElement;
        return e && e.innerText.includes(d);
      }, { timeout: 10000 }, description);
      return;
    } catch { /* again */ }
  }
}

async function bodyText(page) {
  return page.evaluate(() => document.body.innerText);
}

async function waitForText(page, text, timeoutMs = 30000) {
  try {
    await page.waitForFunction((t) => document.body.innerText.includes(t), { timeout: timeoutMs },
      text);
    return true;
  } catch {
    return false;
  }
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ahilite-viewer-'));
  const idp = await startProvider(dir);
  const srv = await startServer(dir, idp);
  const ds = aws(srv.endpoint, srv.credFile, 'list-datastores').datastoreSummaries[0].datastoreId;
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--enable-unsafe-swiftshader', '--use-angle=swiftshader',
      '--ignore-gpu-blocklist', '--window-size=1400,900'],
    defaultViewport: { width: 1400, height: 900 },
  });
  const consoleLines = [];
  const dicomweb = [];
  try {
    const page = await browser.newPage();
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    page.on('response', (r) => {
      if (r.url().includes('/datastore/')) dicomweb.push(`${r.status()} ${r.url()}`);
    });
    const bearers = new Set();
    page.on('request', (req) => {
      const auth = req.headers().authorization || '';
      if (req.url().includes('/datastore/') && auth.startsWith('Bearer ')) bearers.add(auth.slice(7));
    });

    // The viewer's files are public; the data behind DICOMweb is not.
    const config = await fetch(`${srv.endpoint}/viewer/app-config.js`);
    const configText = await config.text();
    check(config.status === 200 && configText.includes(`"${ds}","viewer-test"`),
      'app-config.js is served without credentials and names the data store');
    const bare = await fetch(`${srv.endpoint}/datastore/${ds}/studies`);
    check(bare.status === 403, `DICOMweb without a token is refused (${bare.status})`);

    // Signing in: OHIF goes to the provider and comes back to /viewer/callback with a code,
    // trades it for tokens, and sends the access token to DICOMweb.
    // The study list (QIDO-RS /studies; OHIF also searches a study before it opens it).
    await page.goto(`${srv.endpoint}/viewer/`, { waitUntil: 'networkidle2', timeout: 60000 });
    await waitForText(page, 'Study List', 30000);
    check(idp.calls.includes('GET /authorize') && idp.calls.includes('POST /token'),
      `the viewer signed in at the provider (${idp.calls.join(', ')})`);
    const listed = await waitForText(page, 'Viewer', 20000);
    await page.screenshot({ path: path.join(ARTIFACTS, 'study-list.png') });
    check(listed && (await bodyText(page)).includes('Before'), 'the study list shows the study');

    // The study opens on its first series, the CT; the multi-frame series is then opened from
    // its thumbnail in the study browser.
    await openInApp(page, `/viewer/viewer?StudyInstanceUIDs=${STUDY}`);
    await skipTour(page);
    for (const [name, description, index] of [['ct', 'CT three slices', '/3)'],
      ['multiframe', 'Four frames', '/4)']]) {
      if (name === 'multiframe') await openSeries(page, description);
      await skipTour(page);
      const v = await waitForImage(page, name);
      const overlay = await viewportText(page);
      check(v > 50 && overlay.includes(description) && overlay.includes(index),
        `the ${name} series renders (viewport pixel variance ${v.toFixed(1)}; overlay ` +
        `${JSON.stringify(overlay.replace(/\s+/g, ' ').slice(0, 120))})`);
    }

    // A new PatientName through the AWS CLI shows after a reload.
    const sets = aws(srv.endpoint, srv.credFile, 'search-image-sets', '--datastore-id', ds,
      '--search-criteria', JSON.stringify({
        filters: [{ values: [{ DICOMStudyInstanceUID: STUDY }], operator: 'EQUAL' }],
      })).imageSetsMetadataSummaries;
    for (const s of sets) {
      aws(srv.endpoint, srv.credFile, 'update-image-set-metadata', '--datastore-id', ds,
        '--image-set-id', s.imageSetId, '--latest-version-id', String(s.version),
        '--update-image-set-metadata-updates', JSON.stringify({
          DICOMUpdates: {
            updatableAttributes: JSON.stringify({
              SchemaVersion: 1.1, Patient: { DICOM: { PatientName: 'Viewer^After' } },
            }),
          },
        }));
    }
    // Reloaded: the study list (a new page, signed in again), then the multi-frame series.
    await page.goto(`${srv.endpoint}/viewer/`, { waitUntil: 'networkidle2', timeout: 60000 });
    const listed2 = await waitForText(page, 'After', 30000);
    await page.screenshot({ path: path.join(ARTIFACTS, 'study-list-after-update.png') });
    check(listed2 && !(await bodyText(page)).includes('Before'),
      'the study list shows the PatientName set with the AWS CLI');
    await openInApp(page, `/viewer/viewer?StudyInstanceUIDs=${STUDY}`);
    await skipTour(page);
    await openSeries(page, 'Four frames');
    check(await waitForImage(page, 'after-update') > 50 &&
      (await viewportText(page)).includes('Four frames'), 'the multi-frame image renders after the update');
    const inViewer = await patientDetails(page, 'After');
    await page.screenshot({ path: path.join(ARTIFACTS, 'after-update-patient.png') });
    check(inViewer && !(await bodyText(page)).includes('Before'),
      'the viewer\'s patient details show the PatientName set with the AWS CLI');
    check(bearers.size > 0 && [...bearers].every((t) => idp.tokens.includes(t)),
      'the viewer sent the access token from its sign-in to DICOMweb');
    const failed = dicomweb.filter((line) => !line.startsWith('2'));
    check(dicomweb.length > 0 && failed.length === 0,
      `the viewer's ${dicomweb.length} DICOMweb requests succeeded${failed.length ? `; not: ${failed.slice(0, 3).join(', ')}` : ''}`);
  } finally {
    await browser.close();
    fs.writeFileSync(path.join(ARTIFACTS, 'browser-console.txt'), consoleLines.join('\n'));
    fs.writeFileSync(path.join(ARTIFACTS, 'dicomweb-requests.txt'), dicomweb.join('\n'));
    const rc = await srv.stop();
    await idp.close();
    fs.copyFileSync(srv.logPath, path.join(ARTIFACTS, 'server.log'));
    check(rc === 0, 'the server exits 0 on SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (e) {
  console.log(`FAIL: ${e.stack || e}`);
  failures++;
}
console.log(`${passes} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
