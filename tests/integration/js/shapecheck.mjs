// Checks a JS SDK result against the service model's output shape: only members the model names,
// required body members present, strings within the model's enums, patterns and lengths, numbers
// as numbers, timestamps as Date objects (what the SDK makes of epoch seconds). Streaming blobs
// are checked by the tests themselves. The model is the copy in the source tree
// ($AHILITE_SRC/models/..., see models/README.md), else the one botocore ships (the same model) in
// the Python the suites use ($AHILITE_PYTHON).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const REL = join('models', 'medical-imaging', '2023-07-19', 'service-2.json');

function loadModel() {
  const here = dirname(fileURLToPath(import.meta.url));
  const cands = [];
  if (process.env.AHILITE_SRC) cands.push(join(process.env.AHILITE_SRC, REL));
  cands.push(join(here, '..', '..', '..', REL));
  for (const c of cands) if (existsSync(c)) return JSON.parse(readFileSync(c, 'utf8'));
  for (const py of [process.env.AHILITE_PYTHON, 'python3', '/usr/bin/python3']) {
    if (!py) continue;
    let dir;
    try {
      dir = execFileSync(py, ['-c', 'import botocore, os; print(os.path.dirname(botocore.__file__))'],
                         { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch { continue; }
    const base = join(dir, 'data', 'medical-imaging', '2023-07-19', 'service-2.json');
    cands.push(base + '[.gz]');
    if (existsSync(base)) return JSON.parse(readFileSync(base, 'utf8'));
    if (existsSync(base + '.gz')) return JSON.parse(gunzipSync(readFileSync(base + '.gz')).toString('utf8'));
  }
  throw new Error(`service model not found in ${cands.join(', ')}`);
}

const model = loadModel();

function walk(value, shapeName, where, problems, depth) {
  const shape = model.shapes[shapeName];
  if (depth > 32) { problems.push(`${where}: nested too deeply`); return; }
  switch (shape.type) {
    case 'structure': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        problems.push(`${where}: expected an object`);
        return;
      }
      for (const [k, v] of Object.entries(value)) {
        if (k === '$metadata' || v === undefined) continue;
        const m = shape.members[k];
        if (!m) { problems.push(`${where}: member ${k} is not in ${shapeName}`); continue; }
        if (m.streaming || model.shapes[m.shape].streaming) continue;
        walk(v, m.shape, `${where}.${k}`, problems, depth + 1);
      }
      for (const req of shape.required || []) {
        const m = shape.members[req];
        if (m.location || model.shapes[m.shape].streaming || model.shapes[m.shape].type === 'blob') continue;
        if (value[req] === undefined) problems.push(`${where}: required member ${req} missing`);
      }
      return;
    }
    case 'list':
      if (!Array.isArray(value)) { problems.push(`${where}: expected a list`); return; }
      value.forEach((v, i) => walk(v, shape.member.shape, `${where}[${i}]`, problems, depth + 1));
      return;
    case 'map':
      if (typeof value !== 'object' || value === null) { problems.push(`${where}: expected a map`); return; }
      for (const [k, v] of Object.entries(value)) {
        walk(k, shape.key.shape, `${where}<key ${k}>`, problems, depth + 1);
        walk(v, shape.value.shape, `${where}[${k}]`, problems, depth + 1);
      }
      return;
    case 'string':
      if (typeof value !== 'string') { problems.push(`${where}: expected a string, got ${value}`); return; }
      if (shape.enum && !shape.enum.includes(value)) problems.push(`${where}: ${value} not in ${shape.enum}`);
      if (shape.min !== undefined && value.length < shape.min) problems.push(`${where}: shorter than ${shape.min}`);
      if (shape.max !== undefined && value.length > shape.max) problems.push(`${where}: longer than ${shape.max}`);
      if (shape.pattern && !new RegExp(`^(?:${shape.pattern})$`).test(value)) {
        problems.push(`${where}: ${value} does not match ${shape.pattern}`);
      }
      return;
    case 'integer':
    case 'long':
      if (!Number.isInteger(value)) problems.push(`${where}: expected an integer, got ${value}`);
      else if ((shape.min !== undefined && value < shape.min) || (shape.max !== undefined && value > shape.max)) {
        problems.push(`${where}: ${value} out of range`);
      }
      return;
    case 'boolean':
      if (typeof value !== 'boolean') problems.push(`${where}: expected a boolean`);
      return;
    case 'timestamp':
      if (!(value instanceof Date) || Number.isNaN(value.getTime())) problems.push(`${where}: not a Date`);
      return;
    default:
  }
}

// Asserts that result (a resolved `client.send(new XCommand(...))`) fits operation's output shape.
export function assertOutputShape(operation, result) {
  const op = model.operations[operation];
  assert.ok(op, `no operation ${operation} in the model`);
  const problems = [];
  walk(result, op.output.shape, '$', problems, 0);
  assert.deepEqual(problems, [], `${operation} output does not fit the model`);
}
