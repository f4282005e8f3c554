#!/usr/bin/env python3
"""Where a server's CPU goes per request: splits the samples of a `perf record -g` of
`ahilite serve` (bench/http.sh with PERF_RUN=NAME PERF_CALLGRAPH=dwarf,16384) into the stages of a
request, and prints each stage's share and its microseconds per request.

usage: bench/perf_split.py PERF_DATA [CPU_US_PER_REQUEST]
  CPU_US_PER_REQUEST: the server's CPU microseconds per request of the same run (1e6 divided by
  http.sh's per_server_cpu_s); without it only the shares are printed.

Each sample goes to the first stage (in the order below) one of whose functions is on its stack,
so an engine stage counts the SQLite, jansson, zlib, allocator and kernel time beneath it.
"""
import subprocess
import sys

# (stage, functions that mark it), most specific first.
STAGES = [
    ('DICOMweb search index rows (qido)', ('ahl__qido_sync',)),
    ('search row, chunks, version, set rows', ('ahl__version_commit_row', 'ahl__version_commit')),
    ('COMMIT: WAL frames, group commit hand-offs', ('ahl__commit_publish',)),
    ('compute the update outside the lock (read, apply, hash, deflate)', ('prepare',)),
    ('begin: write lock, read and check the set', ('ahl_store_begin', 'ahl__set_find',
                                                  'ahl_store_version_get')),
    ('rest of the engine call', ('ahl_meta_update',)),
    ('SigV4 verification', ('ahl_sigv4_verify', 'ahl_sigv4_parse_authorization')),
    ('request decoding and validation', ('ahl_api_decode', 'ahl_api_route', 'route')),
    ('response JSON', ('ahl_json_write', 'ahl__api_respond', 'respond')),
    ('operation glue', ('ahl__op_',)),
    ('request bookkeeping and the log line', ('completed', 'uri_logger', 'ahl_log')),
    ('checkpointer thread', ('checkpointer',)),
    ('connection reaper', ('reaper_main',)),
    ('HTTP: headers, body, access handler', ('access_handler', 'handle')),
    ('socket I/O (send, recv, poll)', ('__libc_sendmsg', '__libc_recv', '__libc_send', 'recv',
                                       'sendmsg', '__poll', '__GI___poll', 'do_sys_poll')),
    ('thread wake-ups (futex, scheduler)', ('futex', 'schedule', 'pthread_cond')),
]


def stage_of(frames):
    for name, marks in STAGES:
        for f in frames:
            if any(f == m or f.startswith(m) for m in marks):
                return name
    return 'other (libmicrohttpd internals, kernel, unresolved)'


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    per_req = float(sys.argv[2]) if len(sys.argv) == 3 else None
    out = subprocess.run(['perf', 'script', '-F', 'comm,ip,sym', '-i', sys.argv[1]],
                         capture_output=True, text=True, check=True).stdout
    counts, total, frames = {}, 0, []

    def flush():
        nonlocal total
        if frames:
            s = stage_of(frames)
            counts[s] = counts.get(s, 0) + 1
            total += 1

    for line in out.splitlines():
        if not line.strip():
            flush()
            frames = []
        elif line.startswith((' ', '\t')):
            parts = line.split()
            if len(parts) >= 2:
                frames.append(parts[1].split('+')[0])
        else:
            flush()
            frames = []
    flush()
    if not total:
        sys.exit('no samples in %s' % sys.argv[1])
    print('| stage | share | %s' % ('µs per request |' if per_req else ''))
    print('|---|---:|%s' % ('---:|' if per_req else ''))
    order = [n for n, _ in STAGES] + ['other (libmicrohttpd internals, kernel, unresolved)']
    for name in order:
        if name in counts:
            share = counts[name] / total
            print('| %s | %.1f%% |%s' % (name, 100 * share,
                                         ' %.0f |' % (share * per_req) if per_req else ''))
    print('| (samples) | %d |%s' % (total, ' %.0f |' % per_req if per_req else ''))


if __name__ == '__main__':
    main()
