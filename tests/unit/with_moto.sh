#!/usr/bin/env bash
# Runs a command against a local S3 endpoint: moto_server on a free loopback port, filled with the
# bucket the S3 unit tests expect (tests/integration/test_s3_objstore.py --with-moto does the
# starting, filling and stopping), with AHL_TEST_S3_ENDPOINT, AHL_TEST_S3_BUCKET,
# AHL_TEST_S3_MANIFEST and the AWS_* credentials exported to the command. Exits with the command's
# status. Where no Python with moto and boto3 is found, the command runs without an endpoint, and
# the S3 unit tests then exit 77 (a skip to CTest).
#
#     tests/unit/with_moto.sh build-asan/tests/test_aws_s3
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if (($# == 0)); then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi
for py in "${AHILITE_PYTHON:-}" /root/.pyenv/shims/python3 python3; do
  if [ -n "$py" ] && "$py" -c 'import moto, boto3' 2>/dev/null; then
    exec "$py" "$here/../integration/test_s3_objstore.py" --with-moto -- "$@"
  fi
done
echo "with_moto: no Python with moto and boto3; running without an S3 endpoint" >&2
exec "$@"
