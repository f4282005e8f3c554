"""OIDC bearer tokens on DICOMweb: `ahilite serve --oidc-jwks --oidc-issuer --oidc-audience` with an
RSA and an EC P-256 key made by openssl at test time, and JWTs minted here (jwtmint.py, openssl
dgst). Series metadata and frames read with RS256 and ES256 tokens equal what SigV4 reads, through
urllib and curl; a read-only token is refused for POST (STOW-RS) and a token without either scope
for everything; expired, foreign, unsigned and tampered tokens get 401 with RFC 6750's challenge
and a JSON body; an API operation refuses a bearer token (SigV4 only); the JWKS file is re-read
when it changes (a new key works, a removed one stops working, a broken file keeps the old keys);
a server started without the options refuses bearer tokens with a 403 saying why; the options
must come together and a bad key file stops the start; RS256 and ES256 tokens and JWKs made by
PyJWT are accepted, its HS256 tokens refused. No token ever reaches the log."""
# pg: full (bearer-token authentication: no storage in question)
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ahltest  # noqa: E402
import jwtmint  # noqa: E402

SAMPLES = '/usr/lib/python3/dist-packages/pydicom/data/test_files'
CT = 'CT_small.dcm'
ISSUER = 'https://idp.example.test/realms/imaging'
AUDIENCE = 'ahilite-dicomweb'
SRV = None
MI = None
DS = None
KEYS = None  # temporary directory of keys and the JWKS file
RSA = EC = None
STUDY = SERIES = SOP = None
TOKENS = []  # every token sent, to prove none is logged


def import_ct(server):
    p = subprocess.run([ahltest.server_binary(), 'import', '--data-dir', server.data_dir,
                        '--create-datastore', 'bearer', os.path.join(SAMPLES, CT)],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr


def jwks_path():
    return os.path.join(KEYS, 'jwks.json')


def oidc_args():
    return ['--oidc-jwks', jwks_path(), '--oidc-issuer', ISSUER, '--oidc-audience', AUDIENCE]


def setUpModule():
    global SRV, MI, DS, KEYS, RSA, EC, STUDY, SERIES, SOP
    KEYS = tempfile.mkdtemp(prefix='ahilite-oidc-')
    RSA = jwtmint.Key.generate('rsa', 'rsa-1', KEYS)
    EC = jwtmint.Key.generate('ec', 'ec-1', KEYS)
    jwtmint.write_jwks(jwks_path(), [RSA.jwk(), EC.jwk()])
    SRV = ahltest.Server(extra_args=oidc_args(), before_start=import_ct)
    MI = ahltest.boto3_client(SRV)
    DS = [d for d in MI.list_datastores()['datastoreSummaries']
          if d['datastoreName'] == 'bearer'][0]['datastoreId']
    p = subprocess.run(['/usr/bin/python3', '-c',
                        'import sys, pydicom; d = pydicom.dcmread(sys.argv[1]); '
                        'print(d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID)',
                        os.path.join(SAMPLES, CT)], capture_output=True, text=True, check=True)
    STUDY, SERIES, SOP = p.stdout.split()


def tearDownModule():
    try:
        log = SRV.log_text()
        for t in TOKENS:
            # The signature is the part no one but the holder has; the header and payload are
            # never quoted either.
            for part in t.split('.'):
                assert len(part) < 8 or part not in log, 'a token part is in the server log'
    finally:
        SRV.finish()
        shutil.rmtree(KEYS, ignore_errors=True)


def series_path():
    return '/datastore/%s/studies/%s/series/%s/metadata' % (DS, STUDY, SERIES)


def frames_path():
    return '/datastore/%s/studies/%s/series/%s/instances/%s/frames/1' % (DS, STUDY, SERIES, SOP)


def bearer(method, path, token, body=None, headers=None, endpoint=None):
    """(status, lower-case headers, body) of a request carrying Authorization: Bearer token."""
    TOKENS.append(token)
    h = {'Authorization': 'Bearer ' + token}
    h.update(headers or {})
    r = urllib.request.Request((endpoint or SRV.endpoint) + path, data=body, method=method,
                               headers=h)
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def token(key=None, scope='ahilite:read', **override):
    return jwtmint.mint(key or RSA, ISSUER, AUDIENCE, scope, **override)


class Bearer(unittest.TestCase):
    def assert_invalid_token(self, answer, words):
        status, headers, body = answer
        self.assertEqual(status, 401, body)
        challenge = headers.get('www-authenticate', '')
        self.assertTrue(challenge.startswith('Bearer '), challenge)
        self.assertIn('error="invalid_token"', challenge)
        self.assertIn('error_description="', challenge)
        err = json.loads(body)
        self.assertEqual(err['__type'], 'UnauthorizedException')
        self.assertEqual(headers.get('x-amzn-errortype'), 'UnauthorizedException')
        self.assertIn(words, err['message'])

    def test_rs256_and_es256_read_what_sigv4_reads(self):
        status, _, signed = ahltest.raw('GET', SRV.endpoint, series_path())
        self.assertEqual(status, 200, signed[:300])
        for key in (RSA, EC):
            for scope in ('ahilite:read', 'ahilite:write', 'openid ahilite:read profile'):
                with self.subTest(alg=key.alg, scope=scope):
                    status, headers, body = bearer('GET', series_path(), token(key, scope))
                    self.assertEqual(status, 200, body[:300])
                    self.assertEqual(headers['content-type'], 'application/dicom+json')
                    self.assertEqual(json.loads(body), json.loads(signed))

    def test_frames_with_a_token(self):
        status, _, signed = ahltest.raw('GET', SRV.endpoint, frames_path(),
                                        headers={'Accept': 'multipart/related; type="application/'
                                                 'octet-stream"; transfer-syntax=*'})
        self.assertEqual(status, 200)
        status, headers, body = bearer('GET', frames_path(), token(EC),
                                       headers={'Accept': 'multipart/related; type="application/'
                                                'octet-stream"; transfer-syntax=*'})
        self.assertEqual(status, 200, body[:300])
        self.assertTrue(headers['content-type'].startswith('multipart/related'))
        # The parts hold the same bytes; only the random boundary differs.
        self.assertEqual(len(body), len(signed))

    def test_curl_with_a_bearer_token(self):
        t = token(RSA)
        TOKENS.append(t)
        p = subprocess.run(['curl', '-sS', '--fail-with-body', '-H', 'Authorization: Bearer ' + t,
                            '-H', 'Accept: application/dicom+json', SRV.endpoint + series_path()],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout[:300])
        self.assertEqual(json.loads(p.stdout)[0]['00080018']['Value'], [SOP])

    def test_scope_decides_the_methods(self):
        stow = '/datastore/%s/studies' % DS
        status, headers, body = bearer('POST', stow, token(RSA, 'ahilite:read'), body=b'x' * 100,
                                       headers={'Content-Type': 'application/dicom'})
        self.assertEqual(status, 403, body)
        self.assertEqual(json.loads(body)['__type'], 'AccessDeniedException')
        self.assertIn('ahilite:write', json.loads(body)['message'])
        self.assertIn('error="insufficient_scope"', headers['www-authenticate'])
        # With ahilite:write the request gets past authentication to the resource itself.
        status, _, body = bearer('POST', stow, token(RSA, 'ahilite:write'), body=b'x' * 100,
                                 headers={'Content-Type': 'application/dicom'})
        self.assertEqual(status, 409, body)  # stored nothing: the body is not DICOM
        self.assertEqual(json.loads(body)['00081198']['Value'][0]['00081197']['Value'], [0xC000])
        with open(os.path.join(SAMPLES, CT), 'rb') as f:
            status, _, body = bearer('POST', stow, token(RSA, 'ahilite:write'), body=f.read(),
                                     headers={'Content-Type': 'application/dicom'})
        self.assertEqual(status, 200, body)  # STOW-RS with a token (an unchanged re-store)
        self.assertEqual(json.loads(body)['00081199']['Value'][0]['00081155']['Value'], [SOP])
        for scope in (None, '', 'openid profile', 'ahilite:reader', 'AHILITE:READ'):
            with self.subTest(scope=scope):
                status, headers, body = bearer('GET', series_path(), token(RSA, scope))
                self.assertEqual(status, 403, body)
                self.assertEqual(json.loads(body)['__type'], 'AccessDeniedException')
                self.assertIn('error="insufficient_scope"', headers['www-authenticate'])

    def test_bad_tokens_are_401(self):
        now = int(time.time())
        cases = [
            ('expired', token(exp=now - 120), 'expired'),
            ('not yet valid', token(nbf=now + 600), 'not valid yet'),
            ('issued over 12 hours ago', token(iat=now - 13 * 3600, exp=now + 600), '12 hours'),
            ('issued in the future', token(iat=now + 600), 'future'),
            ('no exp', token(exp=None), "no 'exp'"),
            ('no iat', token(iat=None), "no 'iat'"),
            ('other issuer', token(iss='https://evil.example.test'), 'issuer'),
            ('other audience', token(aud='someone-else'), 'audience'),
            ('audience list without ours', token(aud=['a', 'b']), 'audiences'),
            ('unknown kid', jwtmint.Key('rsa', 'rsa-unknown', RSA.pem).token(
                jwtmint.claims(ISSUER, AUDIENCE, 'ahilite:read')), 'names no key'),
            ('RS256 header on the EC key', jwtmint.Key('rsa', 'ec-1', RSA.pem).token(
                jwtmint.claims(ISSUER, AUDIENCE, 'ahilite:read')), 'does not fit'),
            ('HS256', RSA.token(jwtmint.claims(ISSUER, AUDIENCE, 'ahilite:read'), alg='HS256'),
             'HS256'),
            ('not a JWT', 'abc.def', 'not a JWT'),
            ('padded base64', token() + '=', 'base64url'),
        ]
        unsigned = token().rsplit('.', 1)[0]
        h = jwtmint.b64url(json.dumps({'alg': 'none', 'kid': 'rsa-1'}).encode())
        cases.append(('alg none', h + '.' + unsigned.split('.')[1] + '.', 'not signed'))
        good = token()
        head, payload, sig = good.split('.')
        forged = json.loads(jwtmint.base64.urlsafe_b64decode(payload + '==='))
        forged['scope'] = 'ahilite:write'
        cases.append(('tampered payload', '.'.join(
            [head, jwtmint.b64url(json.dumps(forged).encode()), sig]), 'does not verify'))
        cases.append(('tampered signature', '.'.join(
            [head, payload, sig[:10] + ('A' if sig[10] != 'A' else 'B') + sig[11:]]),
            'does not verify'))
        for name, t, words in cases:
            with self.subTest(name):
                self.assert_invalid_token(bearer('GET', series_path(), t), words)
        # The scheme's name in any case, as RFC 7235 has it.
        status, _, body = bearer('GET', series_path(), '', headers={
            'Authorization': 'bEARER ' + token()})
        self.assertEqual(status, 200, body[:300])

    def test_a_second_authorization_header_is_refused(self):
        import http.client
        t = token()
        TOKENS.append(t)
        conn = http.client.HTTPConnection('127.0.0.1', SRV.port, timeout=30)
        conn.putrequest('GET', series_path())
        conn.putheader('Authorization', 'Bearer ' + t)
        conn.putheader('Authorization', 'Bearer ' + t)
        conn.endheaders()
        r = conn.getresponse()
        body = r.read()
        conn.close()
        self.assertEqual(r.status, 400, body)
        self.assertIn('more than one Authorization', json.loads(body)['message'])

    def test_api_operations_take_sigv4_only(self):
        for method, path in (('GET', '/datastore'), ('GET', '/datastore/' + DS),
                             ('POST', '/datastore/%s/searchImageSets' % DS)):
            with self.subTest(path=path):
                status, _, body = bearer(method, path, token(RSA, 'ahilite:write'),
                                         body=b'{}' if method == 'POST' else None)
                self.assertIn(status, (400, 403), body)
                err = json.loads(body)
                self.assertEqual(err['__type'], 'IncompleteSignatureException')
                self.assertIn('DICOMweb', err['message'])

    def test_z_jwks_rotation(self):
        r2 = jwtmint.Key.generate('rsa', 'rsa-2', KEYS)
        # Before the file names it, the new key is unknown.
        self.assert_invalid_token(bearer('GET', series_path(), token(r2)), 'names no key')
        jwtmint.write_jwks(jwks_path(), [r2.jwk(), EC.jwk()])
        status, _, body = bearer('GET', series_path(), token(r2))
        self.assertEqual(status, 200, body[:300])
        self.assert_invalid_token(bearer('GET', series_path(), token(RSA)), 'names no key')
        # A broken file (rewritten in place) keeps the keys read before, and the log says why.
        with open(jwks_path(), 'w') as f:
            f.write('{"keys": [')
        status, _, body = bearer('GET', series_path(), token(r2))
        self.assertEqual(status, 200, body[:300])
        self.assertIn('keeping the 2 key(s) read before', SRV.log_text())
        os.unlink(jwks_path())
        status, _, body = bearer('GET', series_path(), token(EC))
        self.assertEqual(status, 200, body[:300])
        jwtmint.write_jwks(jwks_path(), [RSA.jwk(), EC.jwk()])
        status, _, body = bearer('GET', series_path(), token(RSA))
        self.assertEqual(status, 200, body[:300])


# Run with the system Python (Debian's python3-jwt and python3-cryptography): argv[1] the issuer,
# argv[2] the audience; prints {"jwks": [...], "tokens": [[alg, token], ...], "forged": [...]}:
# an RSA-3072 and a P-256 key made and published by PyJWT, a token signed by each, and for each
# kid an HS256 token, the confusion a JWKS verifier must refuse.
_PYJWT = r'''
import json, sys, time
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
iss, aud = sys.argv[1], sys.argv[2]
now = int(time.time())
keys = {'pyjwt-rsa': ('RS256', rsa.generate_private_key(public_exponent=65537, key_size=3072)),
        'pyjwt-ec': ('ES256', ec.generate_private_key(ec.SECP256R1()))}
out = {'jwks': [], 'tokens': [], 'forged': []}
for kid, (alg, priv) in keys.items():
    algo = jwt.algorithms.RSAAlgorithm if alg == 'RS256' else jwt.algorithms.ECAlgorithm
    k = json.loads(algo.to_jwk(priv.public_key()))
    k.update(kid=kid, use='sig', alg=alg)
    out['jwks'].append(k)
    claims = {'iss': iss, 'aud': [aud, 'other'], 'iat': now, 'nbf': now - 10, 'exp': now + 300,
              'sub': 'pyjwt-user', 'scope': 'openid ahilite:read'}
    out['tokens'].append([alg, jwt.encode(claims, priv, algorithm=alg, headers={'kid': kid})])
    out['forged'].append(jwt.encode(dict(claims, scope='ahilite:write'), 'not-the-key',
                                    algorithm='HS256', headers={'kid': kid}))
print(json.dumps(out))
'''


class PyJWT(unittest.TestCase):
    """Tokens and JWKs made by PyJWT, an implementation nobody here wrote."""

    def test_pyjwt_tokens(self):
        p = subprocess.run(['/usr/bin/python3', '-c', _PYJWT, ISSUER, AUDIENCE],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        made = json.loads(p.stdout)
        jwtmint.write_jwks(jwks_path(), [RSA.jwk(), EC.jwk()] + made['jwks'])
        try:
            for alg, t in made['tokens']:
                with self.subTest(alg=alg):
                    status, _, body = bearer('GET', series_path(), t)
                    self.assertEqual(status, 200, body[:300])
                    self.assertEqual(json.loads(body)[0]['00080018']['Value'], [SOP])
            for t in made['forged']:
                self.assert_refused(bearer('GET', series_path(), t))
        finally:
            jwtmint.write_jwks(jwks_path(), [RSA.jwk(), EC.jwk()])

    def assert_refused(self, answer):
        status, headers, body = answer
        self.assertEqual(status, 401, body)
        self.assertIn("alg 'HS256' is not accepted", json.loads(body)['message'])


class WithoutOidc(unittest.TestCase):
    def test_bearer_refused_with_a_reason(self):
        srv = ahltest.Server()
        try:
            status, _, body = bearer('GET', '/datastore/%s/studies/1.2/series/1.3/metadata' % DS,
                                     token(), endpoint=srv.endpoint)
            self.assertEqual(status, 403, body)
            err = json.loads(body)
            self.assertEqual(err['__type'], 'AccessDeniedException')
            self.assertIn('--oidc-jwks', err['message'])
        finally:
            srv.finish()

    def run_serve(self, *args):
        p = subprocess.run([ahltest.server_binary(), 'serve', '--data-dir',
                            os.path.join(KEYS, 'unused'), '--listen', '127.0.0.1:%d' %
                            ahltest.free_port()] + list(args),
                           capture_output=True, text=True, timeout=30)
        return p.returncode, p.stderr

    def test_options_go_together(self):
        for args in (['--oidc-jwks', jwks_path()], ['--oidc-issuer', ISSUER],
                     ['--oidc-jwks', jwks_path(), '--oidc-audience', AUDIENCE]):
            with self.subTest(args=args):
                rc, err = self.run_serve(*args)
                self.assertEqual(rc, 2, err)
                self.assertIn('go together', err)

    def test_bad_key_file_stops_the_start(self):
        bad = os.path.join(KEYS, 'bad.json')
        for text, words in (('{"keys": []}', 'no usable key'), ('not json', 'not valid JSON'),
                            ('{"keys": [{"kty": "RSA", "kid": "x", "n": "AQAB", "e": "AQAB"}]}',
                             'RSA modulus')):
            with self.subTest(words=words):
                with open(bad, 'w') as f:
                    f.write(text)
                rc, err = self.run_serve('--oidc-jwks', bad, '--oidc-issuer', ISSUER,
                                         '--oidc-audience', AUDIENCE)
                self.assertEqual(rc, 1, err)
                self.assertIn(words, err)
        rc, err = self.run_serve('--oidc-jwks', os.path.join(KEYS, 'missing.json'),
                                 '--oidc-issuer', ISSUER, '--oidc-audience', AUDIENCE)
        self.assertEqual(rc, 1, err)
        self.assertIn('missing.json', err)

    def test_help_names_the_options(self):
        p = subprocess.run([ahltest.server_binary(), 'serve', '--help'], capture_output=True,
                           text=True, timeout=30)
        for opt in ('--oidc-jwks', '--oidc-issuer', '--oidc-audience', 'ahilite:read'):
            self.assertIn(opt, p.stdout)


if __name__ == '__main__':
    unittest.main()
