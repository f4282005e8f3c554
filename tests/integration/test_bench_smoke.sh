#!/usr/bin/env bash
# Keeps ahilite-bench (bench/) running and its figures sane, at sizes that take seconds: `update`,
# `search` and `qido` print their JSON line with every key bench/RESULTS.md reads and plausible
# values, `update-threads`, `frames` and `auth` run, `ahilite bench ...` reaches ahilite-bench
# through the alias, and an ahilite without ahilite-bench beside it says so. Never judges timings
# beyond "> 0".
#
# Environment (set by CTest): AHILITE_BIN, AHILITE_BUILD.
set -euo pipefail

SRC=${AHILITE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${AHILITE_BIN:-$SRC/build/ahilite}
BUILD=${AHILITE_BUILD:-$(dirname "$BIN")}
BENCH=$BUILD/ahilite-bench
PY=/usr/bin/python3
[ -x "$BENCH" ] || { echo "FAIL: no ahilite-bench in $BUILD (cmake --build $BUILD)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/ahilite-bench-smoke-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# check_update FILE INSTANCES UPDATES: an update JSON line with its keys and sane values.
check_update() {
    "$PY" - "$@" <<'EOF' || fail "bench update output: $(cat "$1")"
import json, sys
r = json.load(open(sys.argv[1]))
n, k = int(sys.argv[2]), int(sys.argv[3])
for key in ('instances', 'json_bytes', 'create_ms', 'updates', 'median_ms', 'p99_ms',
            'bytes_per_version', 'naive', 'speedup', 'read'):
    assert key in r, key
assert set(r['naive']) == {'updates', 'median_ms', 'p99_ms', 'bytes_per_version'}, r['naive']
assert set(r['read']) == {'gzip_bytes', 'median_ms', 'json_gb_per_s', 'gzip6_bytes', 'vs_gzip6',
                          'first_ms', 'first_json_gb_per_s', 'after_update_ms',
                          'after_update_json_gb_per_s'}, r['read']
assert r['instances'] == n and r['updates'] == k, r
assert r['json_bytes'] > 1000 * n, r  # ~1.75 KB of JSON per synthetic instance
assert 0 < r['median_ms'] <= r['p99_ms'], r
assert r['bytes_per_version'] > 0, r
nv = r['naive']
assert nv['updates'] > 0 and 0 < nv['median_ms'] <= nv['p99_ms'], nv
# The naive store rewrites the whole gzip'd document: far more bytes per version than the engine.
assert nv['bytes_per_version'] > 5 * r['bytes_per_version'], r
assert r['speedup'] > 0, r
rd = r['read']
assert 0 < rd['gzip_bytes'] < r['json_bytes'] and rd['median_ms'] > 0, rd
assert rd['json_gb_per_s'] > 0, rd
assert 0 < rd['gzip6_bytes'] < r['json_bytes'], rd
assert set(r['diff']) == {'patient_attr_median_ms', 'instance_attr_median_ms'}, r['diff']
assert all(v > 0 for v in r['diff'].values()), r['diff']
# The body is within 1.5 times gzip -6 of its JSON (group segments, src/meta/gzdoc.c).
assert abs(rd['vs_gzip6'] - rd['gzip_bytes'] / rd['gzip6_bytes']) < 0.01 and rd['vs_gzip6'] <= 1.5, rd
assert rd['first_ms'] > 0 and rd['first_json_gb_per_s'] > 0, rd
assert rd['after_update_ms'] > 0 and rd['after_update_json_gb_per_s'] > 0, rd
EOF
}

"$BENCH" update --instances 50 --updates 20 >"$TMP/update" || fail "bench update: $(cat "$TMP/update")"
check_update "$TMP/update" 50 20

"$BENCH" search --sets 2000 --queries 50 --scans 2 --data-dir "$TMP" >"$TMP/search" ||
    fail "bench search: $(cat "$TMP/search")"
"$PY" - "$TMP/search" <<'EOF' || fail "bench search output: $(cat "$TMP/search")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['sets'] == 2000 and r['patients'] == 400 and r['queries'] == 50, r
assert r['rows_per_query'] == 5, r  # five sets per patient, every query finds them all
assert r['db_mb'] >= 0 and r['fill_s'] >= 0, r
for part in ('store', 'handler'):
    p = r[part]
    assert 0 < p['median_ms'] <= p['p90_ms'] <= p['p99_ms'], (part, p)
assert r['scan']['queries'] == 2 and r['scan']['median_ms'] >= 0, r['scan']
assert r['scan_over_store'] >= 0 and r['scan_over_handler'] >= 0, r
assert 'USING INDEX search_patient' in r['plan'], r['plan']
assert r['scan_plan'].startswith('SCAN search'), r['scan_plan']
EOF
# The scratch directory under --data-dir is gone afterwards.
[ -z "$(find "$TMP" -mindepth 1 -maxdepth 1 -name 'bench-search-*')" ] ||
    fail "bench search left its scratch directory: $(ls "$TMP")"

"$BENCH" qido --instances 800 --studies 40 --queries 20 --scans 1 --data-dir "$TMP" >"$TMP/qido" ||
    fail "bench qido: $(cat "$TMP/qido")"
"$PY" - "$TMP/qido" <<'EOF' || fail "bench qido output: $(cat "$TMP/qido")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['instances'] == 800 and r['studies'] == 40 and r['series'] == 160, r
assert r['fill_s'] >= 0 and r['db_mb'] >= 0 and r['queries'] == 20, r
kinds = ('patient_name_wildcard', 'study_date_range', 'modalities_in_study', 'all_studies',
         'series_of_study', 'instances_of_series')
for k in kinds:
    q = r[k]
    assert q['rows_per_query'] > 0 and 0 < q['p50_ms'] <= q['p95_ms'], (k, q)
    assert q['scan_p50_ms'] >= 0 and 'USING' in q['plan'], (k, q)
    assert 'SCAN' not in q['plan'], (k, q)  # every search is driven by an index
assert r['series_of_study']['rows_per_query'] == 4, r
assert r['instances_of_series']['rows_per_query'] == 5, r
EOF
[ -z "$(find "$TMP" -mindepth 1 -maxdepth 1 -name 'bench-qido-*')" ] ||
    fail "bench qido left its scratch directory: $(ls "$TMP")"

"$BENCH" update-threads "$TMP/threads" 2 0.3 >"$TMP/threads.json" ||
    fail "bench update-threads: $(cat "$TMP/threads.json")"
"$PY" - "$TMP/threads.json" <<'EOF' || fail "bench update-threads output: $(cat "$TMP/threads.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['threads'] == 2 and r['updates'] > 0 and r['failed'] == 0, r
assert r['per_s'] > 0 and r['commits'] > 0 and r['txs_per_commit'] >= 1, r
assert r['wal_frames_per_update'] > 0, r
EOF

mkdir "$TMP/pgm"
"$BENCH" frames 1 64 64 "$TMP/pgm" >"$TMP/frames" || fail "bench frames: $(cat "$TMP/frames")"
grep -q '^frames 1$' "$TMP/frames" && grep -q '^encode_mpix_per_s [0-9.]*$' "$TMP/frames" &&
    [ -s "$TMP/pgm/frame000.pgm" ] || fail "bench frames output: $(cat "$TMP/frames")"

"$BENCH" auth --iterations 20 >"$TMP/auth" || fail "bench auth: $(cat "$TMP/auth")"
"$PY" - "$TMP/auth" <<'EOF' || fail "bench auth output: $(cat "$TMP/auth")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['iterations'] == 20 and r['rounds'] == 5, r
for key in ('us_sigv4', 'us_jwt_rs256', 'us_jwt_es256', 'us_oidc_seen_rs256',
            'us_oidc_seen_es256', 'rs256_over_sigv4', 'es256_over_sigv4', 'seen_over_sigv4'):
    assert r[key] > 0, (key, r)
EOF

# bench/metadata_gzip.sh, with this build as its own base (no second build): every row it prints,
# and the served body within 1.5 times gzip -6 over HTTP too.
AHILITE_BUILD=$BUILD BASE_BUILD=$BUILD UPDATES=10 "$SRC/bench/metadata_gzip.sh" 40 \
    >"$TMP/gzip-bench" 2>"$TMP/gzip-bench.err" ||
    fail "bench/metadata_gzip.sh: $(cat "$TMP/gzip-bench.err")"
"$PY" - "$TMP/gzip-bench" <<'EOF' || fail "bench/metadata_gzip.sh output: $(cat "$TMP/gzip-bench")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines[0].startswith('base '), lines[0]
rows = [json.loads(line) for line in lines[1:]]
where = {r.get('where') for r in rows}
assert where == {'in process, synthetic', 'HTTP, CT headers', None}, where
alts = {r['alternative'] for r in rows if 'alternative' in r}
assert len(alts) == 6 and 'leaf 32 + dictionary' in alts, alts
for r in rows:
    if r.get('where'):
        assert r['instances'] == 40 and 0 < r['new_vs_gzip6'] <= 1.5, r
        assert r['base_bytes'] == r['new_bytes'], r  # the same build on both sides
EOF

# ahilite bench: the same program, found beside ahilite.
"$BIN" bench update --instances 20 --updates 10 --naive-updates 5 --reads 3 >"$TMP/alias" ||
    fail "ahilite bench update: $(cat "$TMP/alias")"
check_update "$TMP/alias" 20 10
"$BIN" bench --help | grep -q 'update-threads' || fail "ahilite bench --help"
status=0
"$BIN" bench >/dev/null 2>&1 || status=$?
[ "$status" = 2 ] || fail "ahilite bench without a command exited $status, want 2"

# Without ahilite-bench beside it, ahilite bench fails and says what is missing.
mkdir "$TMP/alone"
cp "$BIN" "$TMP/alone/ahilite"
status=0
"$TMP/alone/ahilite" bench update >"$TMP/alone/out" 2>&1 || status=$?
[ "$status" = 1 ] && grep -q "ahilite-bench" "$TMP/alone/out" ||
    fail "ahilite bench without ahilite-bench: status $status: $(cat "$TMP/alone/out")"
echo "ok: ahilite-bench smoke (update, search, qido, update-threads, frames, auth, the ahilite bench alias)"
