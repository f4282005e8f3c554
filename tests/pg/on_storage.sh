#!/usr/bin/env bash
# Runs a test on PostgreSQL and an S3 bucket: the environment of the fixtures CTest starts for the
# integ_pg_* tests (the cluster of tests/pg/cluster.sh in BUILD/pgtest, moto_server of
# tests/pg/moto.sh in BUILD/s3test), exported as ahltest.py reads it, then COMMAND exec'd.
#
#     tests/pg/on_storage.sh BUILD COMMAND [ARG...]
#
# AHL_TEST_DATABASE is the cluster's URL (ahltest.py makes a schema per data directory in it);
# AHL_TEST_BLOB_STORE / AHL_TEST_S3_ENDPOINT name a prefix of the moto bucket, unless
# AHL_TEST_NO_BLOB_STORE=1 (frames then stay in the data directory). AHILITE_BIN becomes the
# wrapper tests/integration/ahilite_storage.py (AHL_TEST_REAL_BIN the binary) so that suites that
# start `ahilite` themselves, the JS ones included, go through it too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: on_storage.sh BUILD COMMAND [ARG...]}
shift
AHL_TEST_DATABASE=$("$here/cluster.sh" url "$build/pgtest")
export AHL_TEST_DATABASE
if [ "${AHL_TEST_NO_BLOB_STORE:-0}" != 1 ] && [ -f "$build/s3test/endpoint" ]; then
  AHL_TEST_S3_ENDPOINT=$(cat "$build/s3test/endpoint")
  export AHL_TEST_S3_ENDPOINT AHL_TEST_BLOB_STORE=s3://ahl-test/integ
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
fi
export AHL_TEST_REAL_BIN=${AHL_TEST_REAL_BIN:-${AHILITE_BIN:-$build/ahilite}}
# The help is read whole first: grep -q stopping early would kill serve with SIGPIPE, which
# pipefail reports as a failed pipeline.
help=$("$AHL_TEST_REAL_BIN" serve --help 2>&1 || true)
if ! grep -q -- '--database' <<<"$help"; then
  echo "on_storage.sh: $AHL_TEST_REAL_BIN has no --database (built without PostgreSQL)" >&2
  exit 77
fi
export AHILITE_BIN=$here/../integration/ahilite_storage.py
exec "$@"
