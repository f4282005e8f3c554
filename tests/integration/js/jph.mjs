// Reading the JPH files (ISO/IEC 15444-15) GetImageFrame answers for HTJ2K frames, as a client
// would, without ahilite's code.
import assert from 'node:assert/strict';

// The codestream of a JPH file (ISO/IEC 15444-15): the signature box, ftyp with brand 'jph ',
// then boxes that tile the file, the last one jp2c.
export function jp2cOf(file) {
  const signature = Buffer.from('0000000c6a5020200d0a870a', 'hex');
  assert.ok(file.subarray(0, 12).equals(signature), 'image/jph answer without the JPEG 2000 signature box');
  const kinds = [];
  let pos = 0;
  let payload;
  while (pos < file.length) {
    const len = file.readUInt32BE(pos);
    const kind = file.toString('latin1', pos + 4, pos + 8);
    assert.ok(len >= 8 && pos + len <= file.length, `box ${kind} at ${pos} has length ${len}`);
    kinds.push(kind);
    payload = file.subarray(pos + 8, pos + len);
    if (kind === 'ftyp') assert.equal(payload.toString('latin1', 0, 4), 'jph ');
    pos += len;
  }
  assert.deepEqual([kinds[1], kinds.at(-1)], ['ftyp', 'jp2c'], `boxes ${kinds}`);
  assert.ok(kinds.includes('jp2h'), `boxes ${kinds}`);
  return payload;
}
