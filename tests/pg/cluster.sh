#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and benchmarks: Debian's PostgreSQL binaries,
# initdb in DIR, listening only on a Unix socket in DIR/sock (no TCP port), torn down with stop.
#
#     tests/pg/cluster.sh start DIR [fast]  -- prints the libpq URL of database "ahilite" on it
#     tests/pg/cluster.sh url DIR     -- prints that URL again
#     tests/pg/cluster.sh stop DIR    -- stops the server and removes DIR
#
# PostgreSQL refuses to run as root: when run as root, DIR is given to the "postgres" user (made by
# Debian's postgresql package) and the server runs as that user. "fast" turns fsync and
# synchronous commits off: what the test suites use, since they kill ahilite's processes, never
# this server, so nothing it acknowledged can be lost while it runs; the benchmarks keep the
# default, durable settings. Exit 77 when no PostgreSQL
# binaries are installed (a skip to CTest).
set -euo pipefail
cmd=${1:-}
dir=${2:-}
mode=${3:-durable}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|url|stop DIR" >&2
  exit 2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "cluster.sh: no PostgreSQL server binaries under /usr/lib/postgresql" >&2
  exit 77
fi
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}
url() {
  local sock
  sock=$(cd "$dir/sock" && pwd)
  echo "postgresql:///ahilite?host=${sock}&user=ahilite"
}
case "$cmd" in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    url
    exit 0
  fi
  rm -rf "$dir/data" "$dir/sock"
  mkdir -p "$dir/sock"
  [ "$(id -u)" -ne 0 ] || chown -R postgres: "$dir"
  as_owner "$bin/initdb" -D "$dir/data" -U ahilite -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  # Settings of a test server: no TCP, enough connections for several nodes and their pools.
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir/sock'
max_connections = 300
shared_buffers = 256MB
max_locks_per_transaction = 256
log_min_messages = warning
CONF
  if [ "$mode" = fast ]; then
    printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' >>"$dir/data/postgresql.conf"
  fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  as_owner "$bin/createdb" -h "$dir/sock" -U ahilite ahilite
  url
  ;;
url)
  url
  ;;
stop)
  if [ -d "$dir/data" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|url|stop DIR" >&2
  exit 2
  ;;
esac
