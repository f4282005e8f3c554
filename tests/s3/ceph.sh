#!/usr/bin/env bash
# A throwaway single-node Ceph cluster with a RADOS Gateway on loopback, as a second S3 endpoint
# for the S3 tests (moto_server is the first): one monitor, one OSD on memstore (in memory,
# nothing on disk but the monitor's store), radosgw's beast frontend on 127.0.0.1, cephx off,
# every pool of size 1. Needs the Debian packages ceph-mon, ceph-osd and radosgw.
#
#     tests/s3/ceph.sh start DIR   starts it with everything under DIR, makes a user and the
#                                  bucket ahl-import-input, prints the endpoint URL, and writes
#                                  DIR/env: the AHL_TEST_S3_* and AWS_* variables the S3 unit
#                                  tests read (`. DIR/env`)
#     tests/s3/ceph.sh stop DIR    stops the daemons it started (by their pid files) and removes
#                                  DIR
#     tests/s3/ceph.sh run DIR COMMAND...   start, run COMMAND with DIR/env, stop; COMMAND's status
#
# Exits 77 (a skip to CTest) when the packages are missing.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR | stop DIR | run DIR COMMAND..." >&2
  exit 2
}
(($# >= 2)) || usage
cmd=$1
dir=$2
shift 2

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Says what failed, with the end of the daemon's log, and exits 1.
fail() {
  echo "ceph.sh: $1" >&2
  [ -f "$2" ] && tail -20 "$2" >&2
  exit 1
}

stop() {
  local d=$1
  for pid_file in "$d"/run/client.rgw.ahl.pid "$d"/run/osd.*.pid "$d"/run/mon.a.pid; do
    if [ -f "$pid_file" ]; then
      local pid
      pid=$(cat "$pid_file")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$d"
}

start() {
  local d=$1
  for tool in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool ceph uuidgen curl; do
    if ! command -v "$tool" >/dev/null; then
      echo "ceph.sh: $tool is missing (apt-get install ceph-mon ceph-osd radosgw)" >&2
      exit 77
    fi
  done
  [ ! -e "$d" ] || {
    echo "ceph.sh: $d exists" >&2
    exit 2
  }
  mkdir -p "$d"/{run,log,mon,osd}
  d=$(cd "$d" && pwd)
  local mon_port rgw_port fsid conf=$d/ceph.conf
  mon_port=$(free_port)
  rgw_port=$(free_port)
  fsid=$(uuidgen)
  cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
# Without cephx a connection cannot be "secure"; daemons (radosgw) ask only for that by default
# and then fail with EACCES (get_initial_auth_request returned -13).
ms mon client mode = crc secure
ms mon service mode = crc secure
ms mon cluster mode = crc secure
ms client mode = crc secure
ms service mode = crc secure
ms cluster mode = crc secure
keyring = $d/keyring
run dir = $d/run
admin socket = $d/run/\$name.asok
log file = $d/log/\$name.log
pid file = $d/run/\$name.pid
mon data = $d/mon/\$id
osd data = $d/osd/\$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
osd max object name len = 460
osd max object namespace len = 64
[client.rgw.ahl]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $d/rgw
rgw dns name = 127.0.0.1
rgw enable usage log = false
EOF
  ceph-authtool --create-keyring "$d/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$d/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
    --cap mgr 'allow *' >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$d/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$d/monmap" --keyring "$d/keyring"
  ceph-mon -c "$conf" -i a || fail "ceph-mon did not start" "$d/log/mon.a.log"
  local osd_uuid osd_id
  osd_uuid=$(uuidgen)
  osd_id=$(ceph -c "$conf" --connect-timeout 30 osd new "$osd_uuid")
  mkdir -p "$d/osd/$osd_id"
  ceph-osd -c "$conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" 2>"$d/log/osd-mkfs.err"
  ceph-osd -c "$conf" -i "$osd_id"
  local up=
  for _ in $(seq 300); do
    ceph -c "$conf" osd dump 2>/dev/null | grep -q "^osd.$osd_id up" && up=1 && break
    sleep 0.2
  done
  [ -n "$up" ] || fail "osd.$osd_id did not come up" "$d/log/osd.$osd_id.log"
  mkdir -p "$d/rgw"
  radosgw -c "$conf" -n client.rgw.ahl
  local key=AKIACEPHTEST00000001 secret=ceph/test/secret/key/00000000000000000000
  up=
  for _ in $(seq 300); do
    curl -s -o /dev/null "http://127.0.0.1:$rgw_port/" && up=1 && break
    sleep 0.2
  done
  [ -n "$up" ] || fail "radosgw did not answer on port $rgw_port" "$d/log/client.rgw.ahl.log"
  radosgw-admin -c "$conf" user create --uid=ahl --display-name=ahl --access-key="$key" \
    --secret="$secret" >/dev/null
  local endpoint=http://127.0.0.1:$rgw_port
  local code
  code=$(curl -s -o "$d/log/create-bucket.out" -w "%{http_code}" -X PUT \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" "$endpoint/ahl-import-input")
  if [ "$code" != 200 ]; then
    echo "ceph.sh: creating the bucket answered HTTP $code: $(cat "$d/log/create-bucket.out")" >&2
    exit 1
  fi
  cat >"$d/env" <<EOF
export AHL_TEST_S3_ENDPOINT=$endpoint
export AHL_TEST_S3_BUCKET=ahl-import-input
export AWS_ACCESS_KEY_ID=$key
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN
EOF
  echo "$endpoint"
}

case $cmd in
start) start "$dir" ;;
stop) stop "$dir" ;;
run)
  (($# >= 1)) || usage
  stop "$dir" # what a killed run left
  trap 'stop "$dir"' EXIT
  trap 'exit 143' TERM INT
  start "$dir" >/dev/null
  # shellcheck disable=SC1091
  (. "$dir/env" && "$@")
  ;;
*) usage ;;
esac
