"""The ways of making GetImageSetMetadata's body out of precompressed pieces, measured on one body:
how large each is against gzip -6 of the whole JSON, how fast its pieces compress (the first
read's cost; zlib through Python, one thread), and how much text the first read after an update
of one instance must compress again. Run by bench/metadata_gzip.sh on the CT body it fetched.

  per-instance        each instance deflated alone (what was served before group segments)
  leaf, no dictionary each group of G instances (a map leaf: 32 when bulk-built, up to 64)
                      deflated alone
  per-instance, dict  each instance primed with the previous instance's text (32 KiB window)
  leaf + dictionary   each group of G primed with the last 32 KiB of the previous group's text
                      (src/meta/gzdoc.c, G = 32)
  whole document      one deflate of the whole JSON, cached per version

usage: metadata_gzip_alternatives.py BODY.json.gz   (prints one JSON line per alternative)
"""
import gzip
import json
import sys
import time
import zlib

WINDOW = 32768


def deflate(text, zdict=None):
    args = [zdict] if zdict else []
    c = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, *args)
    return len(c.compress(text) + c.flush(zlib.Z_FULL_FLUSH))


def pieces(texts, group, chained):
    """Total compressed size and seconds, groups of `group` instances."""
    total, prev, t0 = 0, b'', time.perf_counter()
    for i in range(0, len(texts), group):
        t = ((b',' if i else b'') + b','.join(texts[i:i + group]))
        total += deflate(t, prev[-WINDOW:] if chained and prev else None)
        prev = t[1:] if i else t
    return total, time.perf_counter() - t0


def main():
    raw = gzip.open(sys.argv[1]).read()
    doc = json.loads(raw)
    texts = []
    for s in doc['Study']['Series'].values():
        for k in sorted(s['Instances']):
            texts.append(json.dumps(k).encode() + b':' +
                         json.dumps(s['Instances'][k], separators=(',', ':'),
                                    ensure_ascii=False).encode())
    n, per = len(texts), sum(map(len, texts)) / len(texts)
    t0 = time.perf_counter()
    whole = len(gzip.compress(raw, 6))
    whole_s = time.perf_counter() - t0
    rows = [('whole document', whole, whole_s, len(raw))]
    for name, group, chained, redo in (('per-instance', 1, False, 1),
                                       ('per-instance, dict', 1, True, 2),
                                       ('leaf 32, no dictionary', 32, False, 32),
                                       ('leaf 64, no dictionary', 64, False, 64),
                                       ('leaf 32 + dictionary', 32, True, 64)):
        size, secs = pieces(texts, group, chained)
        rows.append((name, size, secs, redo * per))
    for name, size, secs, redo in rows:
        print(json.dumps({'alternative': name, 'instances': n, 'json_bytes': len(raw),
                          'bytes': size, 'vs_gzip6': round(size / whole, 3),
                          'compress_json_mb_s': round(len(raw) / secs / 1e6, 1),
                          'recompressed_after_update_bytes': int(redo)}))


if __name__ == '__main__':
    main()
