"""Signing keys, JWKS documents and JWTs for the tests of `ahilite serve --oidc-*`, made with the
openssl command line only (no Python crypto package is needed).

    key = Key.generate('rsa', 'kid-1', tmpdir)       # or 'ec' (P-256)
    write_jwks(path, [key.jwk(), ...])
    token = key.token({'iss': ..., 'aud': ..., 'exp': ..., 'iat': ..., 'scope': 'ahilite:read'})
    token = mint(key, ISSUER, AUDIENCE, 'ahilite:read')   # claims valid for an hour
"""
import base64
import json
import os
import subprocess
import time


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def _der_ecdsa_to_raw(der):
    """An ASN.1 ECDSA-Sig-Value (SEQUENCE of two INTEGERs) as JOSE's 64-byte r||s."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = b''
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b'\0')
        out += v.rjust(32, b'\0')
        i += 2 + n
    return out


class Key:
    def __init__(self, kind, kid, pem_path):
        self.kind, self.kid, self.pem = kind, kid, pem_path
        self.alg = 'RS256' if kind == 'rsa' else 'ES256'

    @classmethod
    def generate(cls, kind, kid, directory, bits=2048):
        path = os.path.join(directory, '%s-%s.pem' % (kind, kid or 'nokid'))
        if kind == 'rsa':
            args = ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:%d' % bits]
        else:
            args = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']
        subprocess.run(['openssl', 'genpkey'] + args + ['-out', path], check=True,
                       capture_output=True)
        return cls(kind, kid, path)

    def _public_der(self):
        return subprocess.run(['openssl', 'pkey', '-in', self.pem, '-pubout', '-outform', 'DER'],
                              check=True, capture_output=True).stdout

    def jwk(self, **extra):
        """The public key as a JWK (with kid unless it is None); extra members are added."""
        if self.kind == 'rsa':
            text = subprocess.run(['openssl', 'rsa', '-in', self.pem, '-noout', '-modulus'],
                                  check=True, capture_output=True).stdout.decode()
            n = bytes.fromhex(text.strip().split('=', 1)[1])
            info = subprocess.run(['openssl', 'rsa', '-in', self.pem, '-noout', '-text'],
                                  check=True, capture_output=True).stdout.decode()
            e = int(info.split('publicExponent: ')[1].split()[0])
            k = {'kty': 'RSA', 'n': b64url(n), 'e': b64url(e.to_bytes((e.bit_length() + 7) // 8,
                                                                      'big'))}
        else:
            point = self._public_der()[-65:]
            assert point[0] == 4
            k = {'kty': 'EC', 'crv': 'P-256', 'x': b64url(point[1:33]), 'y': b64url(point[33:])}
        k['use'] = 'sig'
        if self.kid is not None:
            k['kid'] = self.kid
        k.update(extra)
        return k

    def sign(self, data):
        """The JWS signature of data (bytes) with this key."""
        der = subprocess.run(['openssl', 'dgst', '-sha256', '-sign', self.pem], input=data,
                             check=True, capture_output=True).stdout
        return der if self.kind == 'rsa' else _der_ecdsa_to_raw(der)

    def token(self, claims, header=None, alg=None):
        h = {'alg': alg or self.alg, 'typ': 'JWT'}
        if self.kid is not None:
            h['kid'] = self.kid
        if header:
            h.update(header)
        signing_input = (b64url(json.dumps(h).encode()) + '.' +
                         b64url(json.dumps(claims).encode())).encode()
        return signing_input.decode() + '.' + b64url(self.sign(signing_input))


def write_jwks(path, jwks):
    """Writes a JWKS document by rename, as a key-rotation job would."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump({'keys': jwks}, f)
    os.replace(tmp, path)


def claims(issuer, audience, scope, now=None, **override):
    now = int(time.time()) if now is None else now
    c = {'iss': issuer, 'aud': audience, 'sub': 'viewer-user', 'iat': now - 5, 'exp': now + 3600,
         'scope': scope}
    c.update(override)
    return {k: v for k, v in c.items() if v is not None}


def mint(key, issuer, audience, scope, **override):
    """A token valid for an hour (override or drop claims with keyword arguments; None drops)."""
    return key.token(claims(issuer, audience, scope, **override))
