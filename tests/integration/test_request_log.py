"""The request log of `ahilite serve`: every line names the client's address, and a 4xx or 5xx
says why (the error type and its message: the SigV4 failure for a 403, the validation message
for a 400), with the request id the client got in x-amzn-RequestId, and never a secret key, a
signature or a body. --log-level drops the lines below it."""
# pg: full (the requests fail before or without touching the store, or read one data store)
import json
import os
import re
import subprocess
import sys
import time
import unittest

import botocore.exceptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402

WRONG_SECRET = 'wrong/secret/never-in-a-log/000000000000'
UNKNOWN_KEY = 'AKIAUNKNOWNKEY000042'
UNKNOWN_SECRET = 'unknown/secret/never-in-a-log/0000000000'
BODY_MARKER = 'body-marker-never-in-a-log'


def signatures(client):
    """The Signature= values of the client's requests, caught as they are sent."""
    seen = []

    def grab(request, **_):
        auth = request.headers.get('Authorization', b'')
        if isinstance(auth, bytes):
            auth = auth.decode()
        m = re.search(r'Signature=([0-9a-f]{64})', auth)
        if m:
            seen.append(m.group(1))
    client.meta.events.register('before-send.medical-imaging', grab)
    return seen


def failing(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response['Error']['Code'], e.response['ResponseMetadata']['RequestId']
    raise AssertionError('the call succeeded')


def line_of(log, request_id):
    lines = [ln for ln in log.splitlines() if request_id in ln]
    assert len(lines) == 1, (request_id, log[-3000:])
    return lines[0]


def logged(srv, request_id, timeout=10):
    """The log once the request's line is in it (written after its response is sent)."""
    deadline = time.monotonic() + timeout
    while True:
        log = srv.log_text()
        if request_id in log or time.monotonic() > deadline:
            return log
        time.sleep(0.02)


class RequestLog(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = ahltest.Server()
        cls.client = ahltest.boto3_client(cls.srv)

    @classmethod
    def tearDownClass(cls):
        cls.srv.finish()

    def assert_no_secret(self, log, *extra):
        for secret in (ahltest.SECRET_KEY, ahltest.SECOND_SECRET_KEY, WRONG_SECRET,
                       UNKNOWN_SECRET, BODY_MARKER) + extra:
            self.assertNotIn(secret, log)

    def test_bad_signature(self):
        bad = ahltest.boto3_client(self.srv, secret_key=WRONG_SECRET)
        sent = signatures(bad)
        code, rid = failing(lambda: bad.list_datastores())
        self.assertEqual(code, 'InvalidSignatureException')
        log = logged(self.srv, rid)
        line = line_of(log, rid)
        self.assertIn(' warn ListDatastores 403 ', line)
        self.assertIn(' 127.0.0.1 InvalidSignatureException: The request signature we '
                      'calculated does not match', line)
        self.assertTrue(sent)
        self.assert_no_secret(log, *sent)

    def test_unknown_key(self):
        other = ahltest.boto3_client(self.srv, access_key=UNKNOWN_KEY, secret_key=UNKNOWN_SECRET)
        sent = signatures(other)
        code, rid = failing(lambda: other.list_datastores())
        self.assertEqual(code, 'UnrecognizedClientException')
        log = logged(self.srv, rid)
        self.assertIn(' 127.0.0.1 UnrecognizedClientException: The security token included in '
                      'the request is invalid.', line_of(log, rid))
        self.assert_no_secret(log, *sent)

    def test_wrong_region(self):
        other = ahltest.boto3_client(self.srv, region='eu-west-1')
        code, rid = failing(lambda: other.list_datastores())
        self.assertEqual(code, 'InvalidSignatureException')
        line = line_of(logged(self.srv, rid), rid)
        self.assertIn("InvalidSignatureException: Credential should be scoped to a valid region, "
                      "not 'eu-west-1'.", line)

    def test_validation_message(self):
        code, rid = failing(lambda: self.client.get_datastore(datastoreId='not-an-id'))
        self.assertEqual(code, 'ValidationException')
        line = line_of(logged(self.srv, rid), rid)
        self.assertIn(' warn GetDatastore 400 ', line)
        self.assertIn(" 127.0.0.1 ValidationException: 1 validation error detected: Value "
                      "'not-an-id' at 'datastoreId' failed to satisfy constraint", line)

    def test_body_not_logged(self):
        # A body that fails validation for another member: its other contents stay out.
        code, rid = failing(lambda: self.client.create_datastore(
            datastoreName='x' * 300, tags={'note': BODY_MARKER}))
        self.assertEqual(code, 'ValidationException')
        log = logged(self.srv, rid)
        self.assertIn('ValidationException: ', line_of(log, rid))
        self.assert_no_secret(log)

    def test_not_found_and_success(self):
        code, rid = failing(lambda: self.client.get_datastore(datastoreId='0' * 32))
        self.assertEqual(code, 'ResourceNotFoundException')
        self.assertIn(' 127.0.0.1 ResourceNotFoundException: ', line_of(logged(self.srv, rid), rid))
        r = self.client.list_datastores()
        rid = r['ResponseMetadata']['RequestId']
        self.assertEqual(r['ResponseMetadata']['HTTPHeaders']['x-amzn-requestid'], rid)
        line = line_of(logged(self.srv, rid), rid)
        self.assertRegex(line, r' info ListDatastores 200 [0-9.]+ms ' + rid + r' 127\.0\.0\.1$')


class LogLevel(unittest.TestCase):
    def run_with(self, level):
        srv = ahltest.Server(extra_args=['--log-level', level])
        try:
            client = ahltest.boto3_client(srv)
            ok = client.list_datastores()['ResponseMetadata']['RequestId']
            _, bad = failing(lambda: client.get_datastore(datastoreId='not-an-id'))
        finally:
            rc = srv.stop()  # every line is written by now
            log = srv.log_text()
            srv.cleanup()
        self.assertEqual(rc, 0, log)
        return log, ok, bad

    def test_warn_keeps_failures_only(self):
        log, ok, bad = self.run_with('warn')
        self.assertNotIn(ok, log)
        self.assertIn('ValidationException', line_of(log, bad))
        self.assertNotIn(' info ', log)

    def test_error_drops_client_errors(self):
        log, ok, bad = self.run_with('error')
        self.assertNotIn(ok, log)
        self.assertNotIn(bad, log)

    def test_debug_keeps_all(self):
        log, ok, bad = self.run_with('debug')
        self.assertIn(ok, log)
        self.assertIn(bad, log)

    def test_bad_level_and_help(self):
        p = subprocess.run([ahltest.server_binary(), 'serve', '--log-level', 'loud'],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--log-level takes debug, info, warn or error, not 'loud'", p.stderr)
        p = subprocess.run([ahltest.server_binary(), 'serve', '--help'],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0)
        self.assertIn('--log-level L', p.stdout)


if __name__ == '__main__':
    unittest.main()
