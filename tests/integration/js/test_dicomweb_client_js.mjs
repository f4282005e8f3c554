// DICOMweb through dicomweb-client (the npm DICOMweb client the OHIF viewer uses), a client
// written without ahilite in mind. It is a browser library built on XMLHttpRequest: in node the
// xhr2 package provides XMLHttpRequest, and since the library cannot sign requests itself, a
// request hook (its `requestHooks` option) signs each one with SigV4 (@smithy/signature-v4 with
// @aws-crypto/sha256-js, service medical-imaging) just before it is sent.
//
// pydicom's CT, an RLE MR, a planar big-endian RGB and a two-frame RLE RGB are imported with
// `ahilite import`; then retrieveSeriesMetadata, retrieveInstanceMetadata and
// retrieveStudyMetadata must give what pydicom reads from the source files (compared by
// ../dicom_native.py compare, under the system Python), retrieveInstanceFrames the source's pixels
// bit for bit (../dicom_native.py decodes them with DCMTK and pydicom), frames asked for with
// transfer-syntax=* the stored HTJ2K codestream GetImageFrame serves, and errors the client's own
// rejection with the HTTP status (403 unsigned, 404 unknown series). searchForStudies,
// searchForSeries and searchForInstances (QIDO-RS) find the imported studies, series and instances. The same client with an OIDC
// bearer token instead (its `headers` option; the server started with --oidc-jwks, the RS256 key
// and the token made here with node's crypto) reads the same, and a token that has expired or was
// signed by another key is a 401. storeInstances (STOW-RS, a multipart/related body) stores new
// instances, signed by the hook (the body's hash in the signature) or with a bearer token of
// scope ahilite:write (one of ahilite:read is refused), and the calls above read them back.
// retrieveInstance (GetDICOMInstance, asked for as multipart/related; type="application/dicom")
// gives a Part-10 file in Explicit VR Little Endian whose frames are the source's pixels.
// pg: full (the JS SDK sends what boto3 sends; test_api_boto3*.py run on PostgreSQL in CI)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import XHR from 'xhr2';
import dicomweb from 'dicomweb-client';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@aws-crypto/sha256-js';
import {
  ListDatastoresCommand, SearchImageSetsCommand, GetImageSetMetadataCommand, GetImageFrameCommand,
} from '@aws-sdk/client-medical-imaging';
import { startServer, ACCESS_KEY, SECRET_KEY, REGION } from './ahlserver.mjs';
import { jp2cOf } from './jph.mjs';

globalThis.XMLHttpRequest = XHR;
const { DICOMwebClient } = dicomweb.api;
const run = promisify(execFile);
const NATIVE = join(dirname(fileURLToPath(import.meta.url)), '..', 'dicom_native.py');
const SYS_PY = '/usr/bin/python3';
const TF = '/usr/lib/python3/dist-packages/pydicom/data/test_files/';
const FILES = ['CT_small.dcm', 'MR_small_RLE.dcm', 'ExplVR_BigEnd.dcm', 'SC_rgb_rle_2frame.dcm']
  .map((n) => TF + n);
// ExplVR_BigEnd.dcm's dates are in the old ACR-NEMA form (1997.04.24), which ahilite (like
// Orthanc) passes on as stored and pydicom's JSON reader refuses: its metadata is not compared.
const META_FILES = FILES.filter((f) => !f.endsWith('ExplVR_BigEnd.dcm'));

let srv;
let ds;
let keyDir;
const ISSUER = 'https://idp.example.org/realms/imaging';
const AUDIENCE = 'ahilite-js';
const keyPair = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const b64url = (buf) => Buffer.from(buf).toString('base64url');

// An RS256 JWT with the claims a provider's access token has, signed with privateKey.
function token({ scope = 'ahilite:read', expiresIn = 3600, privateKey = keyPair.privateKey } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'js-key-1' }));
  const body = b64url(JSON.stringify({
    iss: ISSUER, aud: AUDIENCE, iat: now - 60, exp: now + expiresIn, sub: 'viewer-user', scope,
  }));
  return `${head}.${body}.${b64url(sign('sha256', Buffer.from(`${head}.${body}`), privateKey))}`;
}
let source; // path -> { study, series, sop, transferSyntax, frames: [sha256 of native bytes] }

// A dicomweb-client request hook: signs the XMLHttpRequest with SigV4 when it is sent. Signing
// is asynchronous and hooks are not, so the hook wraps send().
function sigv4Hook(credentials) {
  const signer = new SignatureV4({
    service: 'medical-imaging', region: REGION, credentials, sha256: Sha256,
  });
  return function hook(xhr, metadata) {
    const send = xhr.send.bind(xhr);
    xhr.send = (body) => {
      const url = new URL(metadata.url);
      const query = {};
      for (const [k, v] of url.searchParams) query[k] = v;
      signer.sign({
        method: metadata.method.toUpperCase(),
        protocol: url.protocol,
        hostname: url.hostname,
        port: Number(url.port),
        path: url.pathname,
        query,
        headers: { host: url.host },
        body: body === undefined ? undefined : new Uint8Array(body),
      }).then((signed) => {
        for (const [k, v] of Object.entries(signed.headers)) {
          if (k !== 'host') xhr.setRequestHeader(k, v);
        }
        send(body);
      });
    };
    return xhr;
  };
}

function client({ signed = true, bearer } = {}) {
  return new DICOMwebClient({
    url: `${srv.endpoint}/datastore/${ds}`,
    requestHooks: signed && !bearer ? [sigv4Hook({ accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY })] : [],
    headers: bearer ? { Authorization: `Bearer ${bearer}` } : {},
    verbose: false,
  });
}

async function differencesFromSource(path, instances) {
  const child = execFile(SYS_PY, [NATIVE, 'compare', path], { maxBuffer: 64 << 20 });
  const out = new Promise((resolve, reject) => {
    let text = '';
    let err = '';
    child.stdout.on('data', (d) => { text += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(text))
      : reject(new Error(`dicom_native.py compare ${path} exited ${code}: ${err}`))));
  });
  child.stdin.end(JSON.stringify(instances));
  return out;
}

const sha256 = (buf) => createHash('sha256').update(Buffer.from(buf)).digest('hex');

before(async () => {
  keyDir = mkdtempSync(join(tmpdir(), 'ahl-jwks-'));
  const jwk = { ...keyPair.publicKey.export({ format: 'jwk' }), kid: 'js-key-1', alg: 'RS256', use: 'sig' };
  writeFileSync(join(keyDir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
  srv = await startServer({
    extraArgs: ['--oidc-jwks', join(keyDir, 'jwks.json'), '--oidc-issuer', ISSUER,
      '--oidc-audience', AUDIENCE],
    beforeStart: ({ bin, dataDir }) => execFileSync(bin, ['import', '--data-dir', dataDir,
      '--create-datastore', 'dicomweb-client', ...FILES], { stdio: 'pipe' }),
  });
  const list = await srv.client.send(new ListDatastoresCommand({}));
  ds = list.datastoreSummaries[0].datastoreId;
  source = JSON.parse((await run(SYS_PY, [NATIVE, ...FILES], { maxBuffer: 64 << 20 })).stdout);
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0);
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
});

test('retrieveSeriesMetadata, retrieveInstanceMetadata and retrieveStudyMetadata give the source attributes', async () => {
  const dw = client();
  for (const path of META_FILES) {
    const s = source[path];
    const series = await dw.retrieveSeriesMetadata({
      studyInstanceUID: s.study, seriesInstanceUID: s.series,
    });
    assert.ok(Array.isArray(series) && series.length >= 1, path);
    assert.deepEqual(await differencesFromSource(path, series), [], path);
    const instance = await dw.retrieveInstanceMetadata({
      studyInstanceUID: s.study, seriesInstanceUID: s.series, sopInstanceUID: s.sop,
    });
    assert.equal(instance.length, 1);
    assert.deepEqual(await differencesFromSource(path, instance), [], path);
    const study = await dw.retrieveStudyMetadata({ studyInstanceUID: s.study });
    assert.ok(study.some((i) => i['00080018'].Value[0] === s.sop), path);
  }
});

test('retrieveInstanceFrames gives the source pixels as native little endian', async () => {
  const dw = client();
  for (const path of FILES) {
    const s = source[path];
    const frameNumbers = s.frames.map((_, k) => k + 1).reverse();
    const parts = await dw.retrieveInstanceFrames({
      studyInstanceUID: s.study, seriesInstanceUID: s.series, sopInstanceUID: s.sop, frameNumbers,
    });
    assert.equal(parts.length, frameNumbers.length, path);
    parts.forEach((part, k) => {
      assert.equal(sha256(part), s.frames[frameNumbers[k] - 1], `${path} frame ${frameNumbers[k]}`);
    });
    // The same, naming the syntax.
    const named = await dw.retrieveInstanceFrames({
      studyInstanceUID: s.study, seriesInstanceUID: s.series, sopInstanceUID: s.sop,
      frameNumbers: [1],
      mediaTypes: [{ mediaType: 'application/octet-stream', transferSyntaxUID: '1.2.840.10008.1.2.1' }],
    });
    assert.equal(sha256(named[0]), s.frames[0], path);
  }
});

test('retrieveInstanceFrames with transfer-syntax=* gives the stored codestream', async () => {
  const dw = client();
  const path = TF + 'SC_rgb_rle_2frame.dcm';
  const s = source[path];
  const found = await srv.client.send(new SearchImageSetsCommand({
    datastoreId: ds,
    searchCriteria: { filters: [{ operator: 'EQUAL', values: [{ DICOMStudyInstanceUID: s.study }] }] },
  }));
  const imageSetId = found.imageSetsMetadataSummaries[0].imageSetId;
  const meta = await srv.client.send(new GetImageSetMetadataCommand({ datastoreId: ds, imageSetId }));
  const doc = JSON.parse(gunzipSync(Buffer.from(await meta.imageSetMetadataBlob.transformToByteArray())));
  const inst = doc.Study.Series[s.series].Instances[s.sop];
  const parts = await dw.retrieveInstanceFrames({
    studyInstanceUID: s.study, seriesInstanceUID: s.series, sopInstanceUID: s.sop, frameNumbers: [1, 2],
    mediaTypes: [{ mediaType: 'application/octet-stream', transferSyntaxUID: '*' }],
  });
  assert.equal(parts.length, 2);
  for (const [k, part] of parts.entries()) {
    const r = await srv.client.send(new GetImageFrameCommand({
      datastoreId: ds, imageSetId, imageFrameInformation: { imageFrameId: inst.ImageFrames[k].ID },
    }));
    const served = Buffer.from(await r.imageFrameBlob.transformToByteArray());
    const stored = r.contentType === 'image/jph' ? jp2cOf(served) : served;
    assert.ok(Buffer.from(part).equals(stored), `frame ${k + 1}`);
  }
});

test('errors reach the client with their status', async () => {
  const s = source[FILES[0]];
  await assert.rejects(
    client({ signed: false }).retrieveSeriesMetadata({ studyInstanceUID: s.study, seriesInstanceUID: s.series }),
    (e) => e.status === 403,
  );
  await assert.rejects(
    client().retrieveSeriesMetadata({ studyInstanceUID: s.study, seriesInstanceUID: '1.2.3.4' }),
    (e) => e.status === 404,
  );
  await assert.rejects(
    client().retrieveInstanceFrames({
      studyInstanceUID: s.study, seriesInstanceUID: s.series, sopInstanceUID: s.sop, frameNumbers: [2],
    }),
    (e) => e.status === 404,
  );
});

test('a bearer token in the client\'s headers reads metadata and frames', async () => {
  const dw = client({ bearer: token() });
  const path = TF + 'SC_rgb_rle_2frame.dcm';
  const s = source[path];
  const series = await dw.retrieveSeriesMetadata({ studyInstanceUID: s.study, seriesInstanceUID: s.series });
  assert.deepEqual(await differencesFromSource(path, series), []);
  const parts = await dw.retrieveInstanceFrames({
    studyInstanceUID: s.study, seriesInstanceUID: s.series, sopInstanceUID: s.sop, frameNumbers: [1, 2],
  });
  assert.deepEqual(parts.map(sha256), s.frames);
  for (const bad of [token({ expiresIn: -120 }), token({ privateKey: otherKey })]) {
    await assert.rejects(
      client({ bearer: bad }).retrieveSeriesMetadata({ studyInstanceUID: s.study, seriesInstanceUID: s.series }),
      (e) => e.status === 401,
    );
  }
});

test('searchForStudies, searchForSeries and searchForInstances find the imported instances', async () => {
  const dw = client();
  const studies = await dw.searchForStudies();
  const want = [...new Set(FILES.map((f) => source[f].study))].sort();
  assert.deepEqual(studies.map((s) => s['0020000D'].Value[0]).sort(), want);
  const s = source[TF + 'CT_small.dcm'];
  const ct = await dw.searchForStudies({ queryParams: { StudyInstanceUID: s.study, ModalitiesInStudy: 'CT' } });
  assert.equal(ct.length, 1);
  assert.equal(ct[0]['00201208'].Value[0], 1);
  const paged = await dw.searchForStudies({ queryParams: { limit: 1, offset: 1 } });
  assert.equal(paged.length, 1);
  const series = await dw.searchForSeries({ studyInstanceUID: s.study });
  assert.deepEqual(series.map((e) => e['0020000E'].Value[0]), [s.series]);
  const all = await dw.searchForSeries({ queryParams: { Modality: 'CT' } });
  assert.ok(all.some((e) => e['0020000E'].Value[0] === s.series));
  const instances = await dw.searchForInstances({
    studyInstanceUID: s.study, seriesInstanceUID: s.series,
  });
  assert.deepEqual(instances.map((i) => i['00080018'].Value[0]), [s.sop]);
  assert.equal(instances[0]['00280010'].Value[0], 128);
  assert.deepEqual(await dw.searchForStudies({ queryParams: { PatientID: 'nobody' } }), []);
});

// Copies of sample files with new UIDs, written by the system Python into dir.
const COPY_WITH_NEW_UIDS = `
import sys, pydicom
from pydicom.uid import generate_uid
out = sys.argv[1]
study = generate_uid(prefix=None)  # 2.25.<uuid>: room for the suffixes below
for k, path in enumerate(sys.argv[2:]):
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = study + '.%d' % (k + 1)
    ds.SOPInstanceUID = ds.SeriesInstanceUID + '.1'
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as('%s/%d.dcm' % (out, k))
`;

test('storeInstances stores what the retrieve calls then read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ahl-stow-js-'));
  try {
    await run(SYS_PY, ['-c', COPY_WITH_NEW_UIDS, dir, TF + 'MR_small.dcm', TF + 'SC_rgb_rle_2frame.dcm']);
    const files = readdirSync(dir).sort().map((f) => join(dir, f));
    const made = JSON.parse((await run(SYS_PY, [NATIVE, ...files], { maxBuffer: 64 << 20 })).stdout);
    const bytes = (f) => { const b = readFileSync(f); return b.buffer.slice(b.byteOffset, b.byteOffset + b.length); };
    await assert.rejects(client({ bearer: token() }).storeInstances({ datasets: [bytes(files[0])] }),
      (e) => e.status === 403);
    const stored = [
      await client().storeInstances({ datasets: [bytes(files[0])] }),
      await client({ bearer: token({ scope: 'ahilite:write' }) }).storeInstances({ datasets: [bytes(files[1])] }),
    ];
    for (const [k, answer] of stored.entries()) {
      const json = typeof answer === 'string' ? JSON.parse(answer) : answer;
      const refs = json['00081199'].Value;
      assert.equal(refs.length, 1);
      assert.equal(refs[0]['00081155'].Value[0], made[files[k]].sop);
      assert.ok(!json['00081198'] || !json['00081198'].Value, JSON.stringify(json));
    }
    const dw = client();
    for (const f of files) {
      const s = made[f];
      const series = await dw.retrieveSeriesMetadata({ studyInstanceUID: s.study, seriesInstanceUID: s.series });
      assert.deepEqual(await differencesFromSource(f, series), [], f);
      const parts = await dw.retrieveInstanceFrames({
        studyInstanceUID: s.study, seriesInstanceUID: s.series, sopInstanceUID: s.sop,
        frameNumbers: s.frames.map((_, i) => i + 1),
      });
      assert.deepEqual(parts.map(sha256), s.frames, f);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('retrieveInstance gives a Part-10 file of the source pixels', async () => {
  const dw = client();
  const dir = mkdtempSync(join(tmpdir(), 'ahl-retrieve-js-'));
  try {
    for (const path of FILES) {
      const s = source[path];
      const file = await dw.retrieveInstance({
        studyInstanceUID: s.study, seriesInstanceUID: s.series, sopInstanceUID: s.sop,
      });
      const out = join(dir, `${s.sop}.dcm`);
      writeFileSync(out, Buffer.from(file));
      const got = JSON.parse((await run(SYS_PY, [NATIVE, out], { maxBuffer: 64 << 20 })).stdout)[out];
      assert.equal(got.sop, s.sop, path);
      assert.equal(got.transferSyntax, '1.2.840.10008.1.2.1', path);
      assert.deepEqual(got.frames, s.frames, path);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
