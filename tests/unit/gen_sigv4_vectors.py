#!/usr/bin/env python3
"""Writes tests/unit/sigv4_botocore_vectors.h: SigV4 signatures made by botocore itself.

The C tests check that ahl_sigv4_verify accepts every request below exactly as botocore signed it,
that the canonical request we compute is byte-for-byte botocore's, and that ahl_sigv4_sign
reproduces botocore's Authorization header for the S3 rows. Run it with the Python that has
botocore (the pyenv one) and commit the output:

    python3 tests/unit/gen_sigv4_vectors.py > tests/unit/sigv4_botocore_vectors.h

With --seeds DIR it also writes each request as a seed for tests/fuzz/fuzz_sigv4.c.
"""
import datetime
import hashlib
import sys
from unittest import mock
from urllib.parse import quote, urlsplit

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FQoGZXIvYXdzEXAMPLE//////////wEaDtoken+with/slash="
NOW = datetime.datetime(2026, 11, 24, 12, 34, 56, tzinfo=datetime.timezone.utc)
DS = "0123456789abcdef0123456789abcdef"
ARN = f"arn:aws:medical-imaging:us-east-1:123456789012:datastore/{DS}"


def c_str(s):
    if isinstance(s, bytes):
        s = s.decode("utf-8")
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append('\\n"\n        "')
        elif 32 <= o < 127:
            out.append(ch)
        else:
            out.append("".join(f'\\x{b:02x}""' for b in ch.encode("utf-8")))
    return '"' + "".join(out) + '"'


def sign(name, method, url, body=b"", headers=None, service="medical-imaging", region="us-east-1",
         s3=False, presign=False, token=None, expires=300,
         unsigned_payload=False):
    creds = Credentials(AKID, SECRET, token)
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    if unsigned_payload:
        # What boto3 does for S3 over https when it is configured not to hash uploads.
        from botocore.config import Config
        req.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    if s3:
        signer = botocore.auth.S3SigV4Auth(creds, service, region)
    elif presign:
        signer = botocore.auth.SigV4QueryAuth(creds, service, region, expires=expires)
    else:
        signer = botocore.auth.SigV4Auth(creds, service, region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        # Record the canonical request botocore builds while signing.
        seen = []
        real = signer.canonical_request
        signer.canonical_request = lambda r: seen.append(real(r)) or seen[-1]
        signer.add_auth(req)
        creq = seen[0]
    parts = urlsplit(req.url)
    wire = [("host", parts.netloc)]
    for k, v in req.headers.items():
        if k.lower() != "authorization":
            wire.append((k.lower(), v))
    # A header botocore never signs: the verifier must ignore it.
    wire.append(("user-agent", "Botocore/" + botocore.__version__))
    return {
        "name": name,
        "service": service,
        "region": region,
        "s3": int(s3),
        "presigned": int(presign),
        "method": method,
        "path": parts.path,
        "query": parts.query,
        "headers": "".join(f"{k}:{v}\n" for k, v in wire),
        "body": body,
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "creq": creq,
        "authorization": req.headers.get("Authorization", ""),
        "token": token or "",
    }


def write_seeds(directory, rows):
    """One file per request in fuzz_sigv4's text form: request line, headers, blank line, body."""
    import os
    for i, r in enumerate(rows):
        target = r["path"] + ("?" + r["query"] if r["query"] else "")
        text = f"{r['method']} {target}\n"
        text += "".join(f"{line.split(':', 1)[0]}: {line.split(':', 1)[1]}\n"
                        for line in r["headers"].splitlines())
        if r["authorization"]:
            text += f"authorization: {r['authorization']}\n"
        body = r["body"] if isinstance(r["body"], bytes) else r["body"].encode()
        with open(os.path.join(directory, f"boto_{i:02d}"), "wb") as f:
            f.write(text.encode() + b"\n" + body)


def main():
    base = "http://127.0.0.1:8080"
    rows = [
        sign("list datastores, query with %2F %2B %3D", "GET",
             f"{base}/datastore?datastoreStatus=ACTIVE&nextToken=tok%2F%2B%3D&maxResults=50"),
        sign("untag: ARN path label, repeated keys, space", "DELETE",
             f"{base}/tags/{quote(ARN, safe='')}?tagKeys=a&tagKeys=b%20c"),
        sign("tag: ARN path label with a JSON body", "POST", f"{base}/tags/{quote(ARN, safe='')}",
             body=b'{"tags": {"k": "v"}}', headers={"Content-Type": "application/json"}),
        sign("search with JSON body and unsorted repeated keys", "POST",
             f"{base}/datastore/{DS}/searchImageSets?z=1&maxResults=10&a=2&a=1&sp=x%20y%20z",
             body=b"{}", headers={"Content-Type": "application/json"}),
        sign("empty body POST on runtime host", "POST",
             f"http://runtime-localhost:8080/datastore/{DS}/imageSet/{DS}/getImageSet?version=1"),
        sign("dot segments and double slashes are normalised", "GET",
             f"{base}/datastore/./x/../{DS}//"),
        sign("session token and an extra signed header with blank runs", "GET",
             f"{base}/datastore/{DS}", token=TOKEN,
             headers={"X-Amz-Meta-Note": "  a   b \t c  "}),
        sign("other region", "GET", f"{base}/datastore", region="eu-west-1"),
        sign("presigned GET", "GET", f"{base}/datastore?maxResults=5", presign=True),
        sign("presigned GET with session token", "GET", f"{base}/datastore/{DS}", presign=True,
             token=TOKEN, expires=900),
        sign("s3 put: key with space and unicode, signed payload", "PUT",
             "http://127.0.0.1:9000/bkt/in/my%20file%20%C3%A9.dcm", body=b"DICM-bytes",
             service="s3", s3=True),
        sign("s3 list v2 with continuation token", "GET",
             "http://127.0.0.1:9000/bkt?list-type=2&prefix=in%2F&continuation-token=abc%2Bdef%3D%3D",
             service="s3", s3=True),
        sign("s3 https PUT: UNSIGNED-PAYLOAD", "PUT",
             "https://s3.example.com/bkt/a%3Ab/c.dcm", body=b"x" * 10, service="s3", s3=True,
             unsigned_payload=True),
    ]
    if len(sys.argv) == 3 and sys.argv[1] == "--seeds":
        write_seeds(sys.argv[2], rows)
    out = sys.stdout
    out.write("/* Generated by tests/unit/gen_sigv4_vectors.py with botocore %s: requests and the\n"
              " * signatures botocore gave them. Do not edit; regenerate. */\n" % botocore.__version__)
    out.write(f"#define BOTO_AKID {c_str(AKID)}\n#define BOTO_SECRET {c_str(SECRET)}\n")
    out.write(f"#define BOTO_NOW {int(NOW.timestamp())}\n\n")
    out.write("static const struct boto_vector boto_vectors[] = {\n")
    for r in rows:
        out.write("    {\n")
        for k in ("name", "service", "region"):
            out.write(f"        .{k} = {c_str(r[k])},\n")
        out.write(f"        .s3 = {r['s3']},\n        .presigned = {r['presigned']},\n")
        for k in ("method", "path", "query", "headers", "body", "body_sha256", "creq",
                  "authorization", "token"):
            out.write(f"        .{k} = {c_str(r[k])},\n")
        out.write("    },\n")
    out.write("};\n")


if __name__ == "__main__":
    main()
