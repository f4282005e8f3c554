/* Shared fixture of the OIDC tests: signing keys made with OpenSSL, their public halves as JWK
 * text, and compact JWS tokens signed RS256 or ES256 (or HS256, or not at all) over any header and
 * payload text. Included by tests/unit/test_oidc_*.c and tests/fuzz/fuzz_jwt.c. Every function
 * aborts on an OpenSSL failure: the fixture itself must never be why a test passes. */
#ifndef AHL_TESTS_OIDC_FIXTURE_H
#define AHL_TESTS_OIDC_FIXTURE_H

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/codec.h"

#define FX_CHECK(x)  \
    do {             \
        if (!(x))    \
            abort(); \
    } while (0)

/* A fresh key: RSA of bits (e = 65537), or EC P-256 when bits is 0. */
static inline EVP_PKEY *fx_keygen(unsigned bits)
{
    EVP_PKEY *k = bits ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits)
                       : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    FX_CHECK(k);
    return k;
}

/* A key from PEM text (private). */
static inline EVP_PKEY *fx_key_pem(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    FX_CHECK(k);
    return k;
}

/* Appends the base64url text (no padding) of n bytes. */
static inline void fx_b64url(const void *p, size_t n, struct ahl_buf *out)
{
    size_t start = out->len;
    FX_CHECK(ahl_base64_encode(p, n, out) == 0);
    while (out->len > start && out->data[out->len - 1] == '=')
        out->data[--out->len] = '\0';
    for (size_t i = start; i < out->len; i++)
        out->data[i] = out->data[i] == '+' ? '-' : out->data[i] == '/' ? '_' : out->data[i];
}

static inline void fx_b64url_bn(const BIGNUM *bn, size_t width, struct ahl_buf *out)
{
    unsigned char buf[1024];
    size_t n = width ? width : (size_t)BN_num_bytes(bn);
    FX_CHECK(n <= sizeof buf && BN_bn2binpad(bn, buf, (int)n) == (int)n);
    fx_b64url(buf, n, out);
}

/* Appends the public key as a JWK object: {"kty":…,…,"kid":kid (unless NULL)<extra>}; extra is
 * more members, each starting with a comma (or ""). */
static inline void fx_jwk(EVP_PKEY *k, const char *kid, const char *extra, struct ahl_buf *out)
{
    BIGNUM *a = NULL, *b = NULL;
    if (EVP_PKEY_is_a(k, "RSA")) {
        FX_CHECK(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &a) &&
                 EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &b));
        FX_CHECK(ahl_buf_adds(out, "{\"kty\":\"RSA\",\"n\":\"") == 0);
        fx_b64url_bn(a, 0, out);
        FX_CHECK(ahl_buf_adds(out, "\",\"e\":\"") == 0);
        fx_b64url_bn(b, 0, out);
    } else {
        FX_CHECK(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &a) &&
                 EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &b));
        FX_CHECK(ahl_buf_adds(out, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"") == 0);
        fx_b64url_bn(a, 32, out);
        FX_CHECK(ahl_buf_adds(out, "\",\"y\":\"") == 0);
        fx_b64url_bn(b, 32, out);
    }
    FX_CHECK(ahl_buf_adds(out, "\"") == 0);
    if (kid)
        FX_CHECK(ahl_buf_addf(out, ",\"kid\":\"%s\"", kid) == 0);
    FX_CHECK(ahl_buf_addf(out, "%s}", extra ? extra : "") == 0);
    BN_free(a);
    BN_free(b);
}

enum fx_sign { FX_SIGN_KEY, FX_SIGN_HS256, FX_SIGN_NONE };

/* Appends base64url(header).base64url(payload).signature: by k (RS256 for RSA, ES256 r||s for
 * EC), or an HMAC-SHA-256 with the key "secret", or an empty signature. */
static inline void fx_token(EVP_PKEY *k, enum fx_sign how, const char *header, const char *payload,
                            struct ahl_buf *out)
{
    size_t start = out->len;
    fx_b64url(header, strlen(header), out);
    FX_CHECK(ahl_buf_addc(out, '.') == 0);
    fx_b64url(payload, strlen(payload), out);
    const unsigned char *in = (const unsigned char *)out->data + start;
    size_t in_len = out->len - start;
    unsigned char sig[2048];
    size_t sig_len = sizeof sig;
    if (how == FX_SIGN_HS256) {
        unsigned int hl = 0;
        FX_CHECK(HMAC(EVP_sha256(), "secret", 6, in, in_len, sig, &hl));
        sig_len = hl;
    } else if (how == FX_SIGN_NONE) {
        sig_len = 0;
    } else {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        FX_CHECK(md && EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, k, NULL) == 1 &&
                 EVP_DigestSign(md, sig, &sig_len, in, in_len) == 1);
        EVP_MD_CTX_free(md);
        if (EVP_PKEY_is_a(k, "EC")) {
            const unsigned char *p = sig;
            ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
            FX_CHECK(s);
            FX_CHECK(BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32) == 32 &&
                     BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32) == 32);
            sig_len = 64;
            ECDSA_SIG_free(s);
        }
    }
    FX_CHECK(ahl_buf_addc(out, '.') == 0);
    fx_b64url(sig, sig_len, out);
}

#endif /* AHL_TESTS_OIDC_FIXTURE_H */
