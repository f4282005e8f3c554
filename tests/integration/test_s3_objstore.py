#!/usr/bin/env python3
"""The S3 client (aws/s3.h) and the object store's S3 backend against a real S3-compatible endpoint.

Starts moto_server on a free loopback port, fills a bucket with boto3 (more than 1000 keys so that
listings page, keys with spaces, unicode, XML-special and URL-special characters, one object of
several megabytes), writes a manifest of what it uploaded, and runs the C side:
$AHILITE_BUILD/tests/test_aws_s3, which lists, downloads, compares, uploads and provokes errors
through ahl_s3_* with our own SigV4 signer, and $AHILITE_BUILD/tests/test_blob_s3, which does the
same through ahl_objstore_*. Fails if the C side fails or skips.

With --with-moto COMMAND..., it instead starts and fills one moto_server (the full feature set),
runs COMMAND with the AHL_TEST_S3_* and AWS_* variables the C tests read, stops moto and exits
with COMMAND's status: tests/unit/with_moto.sh runs the unit tests that way (also in the
sanitizer build).
"""
import concurrent.futures
import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

REGION = "us-east-1"
BUCKET = "ahl-import-input"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_session_dying_with_parent():
    """In the child before exec: a session of its own (so that it can be stopped as a group), and
    SIGTERM when this process dies, however it dies (a test runner's kill on timeout included)."""
    os.setsid()
    try:
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def start_moto(port, logf, verify_signatures=False):
    """moto_server on port. With verify_signatures, moto checks SigV4 on every request after the
    first three (which create the IAM user, its key and its policy): a request not signed
    correctly with a known key is refused with 403 SignatureDoesNotMatch."""
    exe = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server")
    env = dict(os.environ)
    if verify_signatures:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=logf, stderr=logf,
                            preexec_fn=own_session_dying_with_parent, env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("moto_server exited early")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return proc
        except Exception:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def objects():
    """(key, bytes) pairs: special keys first, then many small ones, then a big one."""
    special = [
        "in/special/with space.dcm",
        "in/special/unicod\u00e9/\u00fc\u00df\u65e5\u672c.dcm",
        "in/special/a&b<c>\"q'.dcm",
        "in/special/plus+sign=eq.dcm",
        "in/special/pct%20literal.dcm",
        "in/special/tilde~_-.dcm",
        "in/special/semi;colon:comma,.dcm",
        "in/special/emoji\U0001F600.dcm",
        "in/special/deep/er/still/x.dcm",
    ]
    out = [(k, f"DICM special {i} {k}".encode()) for i, k in enumerate(special)]
    out += [(f"in/many/{i:05d}.dcm", (f"object {i} " * (1 + i % 7)).encode())
            for i in range(1100)]
    big = bytes((i * 7919) % 251 for i in range(5 * 1024 * 1024 + 123))
    out.append(("in/big/large.bin", big))
    out.append(("top-level.dcm", b"top"))
    return out


def credentials(endpoint, verify_signatures):
    """A key pair moto accepts: a fresh IAM user's key when moto verifies signatures."""
    if not verify_signatures:
        return "AKIAOBJSTORETEST0001", "objstore/test/secret+key/000000000000000"
    iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION,
                       aws_access_key_id="AKIASETUP0000000000", aws_secret_access_key="setup")
    iam.create_user(UserName="importer")
    key = iam.create_access_key(UserName="importer")["AccessKey"]
    iam.put_user_policy(UserName="importer", PolicyName="s3", PolicyDocument=(
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*",'
        '"Resource":"*"}]}'))
    return key["AccessKeyId"], key["SecretAccessKey"]


def run_c_side(binary, env):
    res = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=600)
    return res.returncode, res.stdout + res.stderr


@contextlib.contextmanager
def moto_fixture(work, verify_signatures):
    """One moto_server, filled. Yields (env for the C side, boto3 client, moto's log path);
    stops moto on the way out."""
    port = free_port()
    logpath = os.path.join(work, f"moto-{port}.log")
    logf = open(logpath, "wb")
    proc = start_moto(port, logf, verify_signatures)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        access_key, secret_key = credentials(endpoint, verify_signatures)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                          aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                          config=Config(s3={"addressing_style": "path"},
                                        max_pool_connections=16))
        s3.create_bucket(Bucket=BUCKET)
        objs = objects()
        if verify_signatures:
            # moto's own verifier rejects correctly signed requests whose key or query needs
            # percent-encoding (boto3's too), so this phase keeps to plain keys and one page.
            objs = [(k.replace("/", "-"), v) for k, v in objs[9:29]]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda kv: s3.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1]), objs))
        manifest = os.path.join(work, f"manifest-{port}.txt")
        with open(manifest, "wb") as f:
            for k, v in objs:
                f.write(f"{hashlib.sha256(v).hexdigest()} {len(v)} {k}\n".encode())
        # The fixture itself, as boto3 lists it.
        seen = sum(len(p.get("Contents", []))
                   for p in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET))
        assert seen == len(objs), (seen, len(objs))

        env = dict(os.environ)
        env.pop("AWS_SESSION_TOKEN", None)
        env.update({
            "AHL_TEST_S3_ENDPOINT": endpoint,
            "AHL_TEST_S3_BUCKET": BUCKET,
            "AHL_TEST_S3_MANIFEST": manifest,
            "AHL_TEST_S3_SIMPLE": "1" if verify_signatures else "0",
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_REGION": REGION,
        })
        logf.flush()
        yield env, s3, logpath, logf
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        logf.close()


# The C programs the phases run, with how many tests each must pass.
C_SIDE = (("test_aws_s3", 4), ("test_blob_s3", 3))


def phase(work, build, verify_signatures):
    """One moto_server, filled and driven. Returns an error text or None."""
    with moto_fixture(work, verify_signatures) as (env, s3, logpath, logf):
        for name, count in C_SIDE:
            t0 = time.time()
            rc, out = run_c_side(os.path.join(build, "tests", name), env)
            print(out)
            print(f"{name} took {time.time() - t0:.1f}s")
            if rc != 0 or "SKIPPED" in out or f"PASSED  ] {count} test(s)" not in out:
                return f"{name} failed or skipped"

        if verify_signatures:
            # The check is live: the same run with a wrong secret is refused by the endpoint.
            bad = dict(env, AWS_SECRET_ACCESS_KEY="wrong" + env["AWS_SECRET_ACCESS_KEY"][5:])
            rc, out = run_c_side(os.path.join(build, "tests", "test_aws_s3"), bad)
            if rc == 0 or "SignatureDoesNotMatch" not in out:
                print(out)
                return "a request signed with a wrong secret was not refused"
            body = s3.get_object(Bucket=BUCKET, Key="out-rt.ndjson")["Body"].read()
        else:
            # Paging really happened: the client came back with a continuation token.
            logf.flush()
            with open(logpath, "rb") as f:
                log = f.read().decode("utf-8", "replace")
            pages = [l for l in log.splitlines() if "list-type=2" in l]
            if not any("continuation-token=" in l for l in pages):
                return "no second listing page was asked for"
            # What the C side put is there, as boto3 sees it.
            key = "out/ds-DicomImport-j\u00e9/a b&c<d>+e%f.ndjson"
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        if len(body) != 3000 or body[:3] != b"abc":
            return "the object the C side put reads back wrong"
        return None


def with_moto(command):
    """Runs command against a filled moto_server; its exit status."""
    # A runner's SIGTERM still stops moto and removes the work directory.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    work = tempfile.mkdtemp(prefix="ahl-s3-moto-")
    try:
        with moto_fixture(work, False) as (env, _s3, _logpath, _logf):
            return subprocess.run(command, env=env).returncode
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--with-moto":
        command = sys.argv[2:]
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            print("usage: test_s3_objstore.py --with-moto [--] COMMAND [ARG...]", file=sys.stderr)
            return 2
        return with_moto(command)
    build = os.environ.get("AHILITE_BUILD")
    if not build:
        src = os.environ.get("AHILITE_SRC") or os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(__file__))))
        build = os.path.join(src, "build")
    for name, _count in C_SIDE:
        binary = os.path.join(build, "tests", name)
        if not os.access(binary, os.X_OK):
            print(f"FAIL: {binary} is not built", file=sys.stderr)
            return 1
    work = tempfile.mkdtemp(prefix="ahl-s3-test-")
    try:
        for verify in (False, True):
            name = "signature-verifying endpoint" if verify else "full feature set"
            print(f"--- moto_server: {name}")
            problem = phase(work, build, verify)
            if problem:
                print(f"FAIL ({name}): {problem}", file=sys.stderr)
                return 1
        print("PASS")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
