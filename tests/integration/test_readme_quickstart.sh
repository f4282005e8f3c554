#!/usr/bin/env bash
# Runs the README's quick start exactly as written (the shell block after "<!-- quickstart -->"),
# against `ahilite serve` started the way the README starts it, in a fresh folder. The only change
# is the port: the server listens on a free one, and the block's 127.0.0.1:8080 is rewritten to it.
set -euo pipefail
: "${AHILITE_BIN:?}" "${AHILITE_SRC:?}"
work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

port=$("${AHILITE_PYTHON:-python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$AHILITE_BIN" serve --listen "127.0.0.1:$port" >serve.log 2>&1 &
server=$!
for _ in $(seq 100); do
  grep -q "listening on" serve.log && break
  sleep 0.1
done
grep -q "listening on" serve.log || { cat serve.log; exit 1; }

awk '/<!-- quickstart -->/{f=1; next} f && /^```sh/{on=1; next} on && /^```/{exit} on' \
  "$AHILITE_SRC/README.md" | sed "s/127\.0\.0\.1:8080/127.0.0.1:$port/g" >quickstart.sh
[ -s quickstart.sh ] || { echo "no quick start block found in README.md"; exit 1; }

# The AWS CLI must be the one beside the Python that has it.
export PATH="$(dirname "${AHILITE_PYTHON:-python3}"):$PATH"
timeout 300 bash -euo pipefail quickstart.sh >out.txt 2>&1 || { cat out.txt serve.log; exit 1; }
cat out.txt

expect() {
  grep -q -- "$1" out.txt || { echo "FAIL: quick start output lacks: $1"; exit 1; }
}
expect '"COMPLETED"'
expect $'^2\tUPDATED'
expect $'^1\tIMPORTED'
expect '"latestVersionId": "3"'
[ "$(grep -o '"PatientName":"[^"]*"' out.txt | sed -n 1p)" = '"PatientName":"DOE^JANE"' ] ||
  { echo "FAIL: version 2 does not carry the new name"; exit 1; }
[ "$(grep -o '"PatientName":"[^"]*"' out.txt | sed -n 2p)" = '"PatientName":"CompressedSamples^CT1"' ] ||
  { echo "FAIL: the revert did not restore the name"; exit 1; }
echo "1 passed, 0 failed"
