#!/usr/bin/env bash
# A throwaway S3 endpoint for the tests and benchmarks that keep frames in a bucket: moto_server on
# a free loopback port, in the background until stopped, with one empty bucket.
#
#     tests/pg/moto.sh start DIR [BUCKET]  -- prints the endpoint URL (also kept in DIR/endpoint)
#     tests/pg/moto.sh url DIR             -- prints it again
#     tests/pg/moto.sh stop DIR            -- stops the server and removes DIR
#
# BUCKET defaults to ahl-test. Moto keeps objects in memory and checks no signatures. Exit 77 when
# no Python with moto is found (a skip to CTest).
set -euo pipefail
cmd=${1:-}
dir=${2:-}
bucket=${3:-ahl-test}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|url|stop DIR [BUCKET]" >&2
  exit 2
fi
case "$cmd" in
start)
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    cat "$dir/endpoint"
    exit 0
  fi
  exe=
  for py in "${AHILITE_PYTHON:-}" /root/.pyenv/shims/python3 python3; do
    if [ -n "$py" ] && "$py" -c 'import moto' 2>/dev/null; then
      exe=$("$py" -c 'import os, shutil, sys
print(shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server"))')
      pick=$py
      break
    fi
  done
  if [ -z "$exe" ] || [ ! -x "$exe" ]; then
    echo "moto.sh: no Python with moto (moto_server)" >&2
    exit 77
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  port=$("$pick" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  setsid nohup "$exe" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  url="http://127.0.0.1:$port"
  for _ in $(seq 150); do
    if curl -sf -o /dev/null "$url/moto-api/"; then
      curl -sf -o /dev/null -X PUT "$url/$bucket" || { echo "moto.sh: cannot make bucket $bucket" >&2; exit 1; }
      echo "$url" >"$dir/endpoint"
      echo "$url"
      exit 0
    fi
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
    sleep 0.2
  done
  cat "$dir/moto.log" >&2
  echo "moto.sh: moto_server did not start" >&2
  exit 1
  ;;
url)
  cat "$dir/endpoint"
  ;;
stop)
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|url|stop DIR [BUCKET]" >&2
  exit 2
  ;;
esac
