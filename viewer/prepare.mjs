// Makes viewer/dist, the viewer `ahilite serve` offers at /viewer/ (docs/dicomweb.md#viewer),
// from OHIF's prebuilt node_modules/@ohif/app/dist. Run by `npm ci` (postinstall) in this
// directory; idempotent.
//
// OHIF's published build is made for the root of a site: index.html names its files "/app…",
// sets window.PUBLIC_URL="/", and webpack's public path (where chunks, workers and WebAssembly
// are fetched from) is compiled into each entry bundle as __webpack_require__.p = "/". Each of
// these is moved below /viewer/ here, once, so the server sends files exactly as they are on
// disk. app-config.js is left out: the server makes it for each request. Text files and
// WebAssembly also get precompressed siblings (NAME.br, NAME.gz) that the server sends to
// clients that accept them.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const from = path.join(here, 'node_modules', '@ohif', 'app', 'dist');
const to = path.join(here, 'dist');
const BASE = '/viewer/';
const COMPRESS = new Set(['.js', '.css', '.html', '.json', '.wasm', '.svg', '.map', '.txt']);

function rebase(name, text) {
  const ext = path.extname(name);
  if (name === 'index.html' || ext === '.html') {
    // Attribute values and window.PUBLIC_URL="/": every `="/` that is not `="//`.
    return text.replace(/="\/(?!\/)/g, `="${BASE}`);
  }
  if (ext === '.css') return text.replace(/url\(\/(?!\/)/g, `url(${BASE}`);
  if (name === 'manifest.json') return text.replace(/"\/assets\//g, `"${BASE}assets/`);
  if (ext === '.js') return text.split('__webpack_require__.p = "/";').join(`__webpack_require__.p = "${BASE}";`);
  return null;
}

function copyTree(src, dst, rel = '') {
  fs.mkdirSync(dst, { recursive: true });
  let publicPaths = 0;
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, entry.name);
    const d = path.join(dst, entry.name);
    const r = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      publicPaths += copyTree(s, d, r);
      continue;
    }
    if (!entry.isFile() || r === 'app-config.js') continue;
    let data = fs.readFileSync(s);
    const ext = path.extname(entry.name);
    if (['.html', '.css', '.js', '.json'].includes(ext)) {
      const text = data.toString('utf8');
      const moved = rebase(r, text);
      if (moved !== null && moved !== text) {
        if (ext === '.js') publicPaths++;
        data = Buffer.from(moved, 'utf8');
      }
    }
    fs.writeFileSync(d, data);
    if (COMPRESS.has(ext) && data.length >= 1024) {
      fs.writeFileSync(`${d}.gz`, zlib.gzipSync(data, { level: 9 }));
      fs.writeFileSync(`${d}.br`, zlib.brotliCompressSync(data, {
        params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 6,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length },
      }));
    }
  }
  return publicPaths;
}

if (!fs.existsSync(path.join(from, 'index.html'))) {
  console.error(`prepare: ${from} has no index.html; run npm ci here first`);
  process.exit(1);
}
const tmp = `${to}.tmp-${process.pid}`;
fs.rmSync(tmp, { recursive: true, force: true });
const publicPaths = copyTree(from, tmp);
const index = fs.readFileSync(path.join(tmp, 'index.html'), 'utf8');
if (!publicPaths || !index.includes(`window.PUBLIC_URL="${BASE}"`)) {
  fs.rmSync(tmp, { recursive: true, force: true });
  console.error('prepare: this OHIF build does not set its public path as expected ' +
    '(__webpack_require__.p = "/" and window.PUBLIC_URL="/"); it cannot be moved below /viewer/');
  process.exit(1);
}
fs.rmSync(to, { recursive: true, force: true });
fs.renameSync(tmp, to);
console.log(`prepare: ${path.relative(process.cwd(), to) || to} ready (public path ${BASE}, ` +
  `${publicPaths} bundles moved)`);
