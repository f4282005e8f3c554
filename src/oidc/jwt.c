/* JSON Web Token verification: compact JWS, RS256 and ES256, and the claims oidc.h lists.
 *
 * The order matters. The header is read first, only to choose the algorithm and the key; the
 * signature is checked over the first two parts as received; only then is the payload decoded
 * and its claims believed. A token is refused at its first fault, and the message says which.
 */
#include "oidc/oidc_internal.h"

#include <jansson.h>
#include <math.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <string.h>

#include "base/buf.h"
#include "base/codec.h"
#include "base/text.h"
#include "base/banned.h"

#define MAX_HEADER 4096
#define MAX_SIGNATURE 2048 /* an RSA-16384 signature */
#define P256_SIG 64

#define fail(err, ...) ahl_fail_detail(err, AHL_EAUTH, AHL_OIDC_FAIL_TOKEN, __VA_ARGS__)

/* Decodes one part of the token (base64url, then JSON object when obj is not NULL). */
static int decode_part(const char *what, const char *s, size_t n, size_t max, struct ahl_buf *raw,
                       json_t **obj, struct ahl_err *err)
{
    ahl_buf_init(raw, max);
    int rc = ahl_base64url_decode(s, n, raw);
    if (rc == AHL_ENOMEM)
        return ahl_fail(err, rc, "out of memory");
    if (rc == AHL_ETOOBIG)
        return fail(err, "The token's %s is longer than %zu bytes", what, max);
    if (rc < 0)
        return fail(err, "The token's %s is not base64url (unpadded, URL-safe alphabet)", what);
    if (!obj)
        return 0;
    json_error_t jerr;
    *obj = json_loadb(raw->data, raw->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*obj)
        return fail(err, "The token's %s is not valid JSON: %s", what, jerr.text);
    if (!json_is_object(*obj))
        return fail(err, "The token's %s is not a JSON object", what);
    return 0;
}

/* ES256 signatures are r||s, 32 bytes each (RFC 7518 3.4); OpenSSL verifies DER. */
static int es256_der(const unsigned char *sig, unsigned char *der, size_t cap, size_t *len)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, P256_SIG / 2, NULL),
           *ss = BN_bin2bn(sig + P256_SIG / 2, P256_SIG / 2, NULL);
    int ok = s && r && ss && ECDSA_SIG_set0(s, r, ss);
    if (!ok) {
        BN_free(r);
        BN_free(ss);
    }
    int n = ok ? i2d_ECDSA_SIG(s, NULL) : -1;
    if (n > 0 && (size_t)n <= cap) {
        unsigned char *p = der;
        n = i2d_ECDSA_SIG(s, &p);
    } else {
        n = -1;
    }
    ECDSA_SIG_free(s);
    if (n <= 0)
        return AHL_ENOMEM;
    *len = (size_t)n;
    return 0;
}

static int check_signature(const struct ahl__jwk *key, const char *signed_part, size_t signed_len,
                           const struct ahl_buf *sig, struct ahl_err *err)
{
    unsigned char der[80];
    const unsigned char *s = (const unsigned char *)sig->data;
    size_t slen = sig->len;
    int rc;
    if (key->alg == AHL__JWK_ES256) {
        if (sig->len != P256_SIG)
            return fail(err, "The token's ES256 signature is %zu bytes, not %d", sig->len,
                        P256_SIG);
        if ((rc = es256_der(s, der, sizeof der, &slen)) < 0)
            return ahl_fail(err, rc, "out of memory");
        s = der;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    int ok = EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, key->pkey, NULL) == 1 &&
             EVP_DigestVerify(md, s, slen, (const unsigned char *)signed_part, signed_len) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return fail(err, "The token's signature does not verify");
    return 0;
}

/* A NumericDate claim: 0 with *v, 1 when absent, or the failure. */
static int date_claim(json_t *claims, const char *name, double *v, struct ahl_err *err)
{
    json_t *c = json_object_get(claims, name);
    if (!c)
        return 1;
    if (!json_is_number(c) || !isfinite(json_number_value(c)))
        return fail(err, "The token's '%s' claim is not a number of seconds", name);
    *v = json_number_value(c);
    return 0;
}

/* A time as whole seconds, held within what int64_t and the checks above can meet. */
static int64_t seconds(double t)
{
    return t >= 4e18 ? (int64_t)4e18 : t <= -4e18 ? -(int64_t)4e18 : (int64_t)t;
}

static int check_times(json_t *claims, int64_t now_s, struct ahl_oidc_claims *out,
                       struct ahl_err *err)
{
    double now = (double)now_s, exp, nbf, iat;
    int rc;
    if ((rc = date_claim(claims, "exp", &exp, err)) != 0)
        return rc < 0 ? rc : fail(err, "The token has no 'exp' claim");
    if (now >= exp + AHL_OIDC_SKEW_S)
        return fail(err, "The token has expired (exp %.0f, %.0f seconds ago)", exp, now - exp);
    if ((rc = date_claim(claims, "nbf", &nbf, err)) < 0)
        return rc;
    int has_nbf = rc == 0;
    if (has_nbf && nbf > now + AHL_OIDC_SKEW_S)
        return fail(err, "The token is not valid yet (nbf %.0f, %.0f seconds from now)", nbf,
                    nbf - now);
    if ((rc = date_claim(claims, "iat", &iat, err)) != 0)
        return rc < 0 ? rc : fail(err, "The token has no 'iat' claim");
    if (iat > now + AHL_OIDC_SKEW_S)
        return fail(err, "The token was issued in the future (iat %.0f, %.0f seconds from now)",
                    iat, iat - now);
    if (iat < now - AHL_OIDC_MAX_AGE_S - AHL_OIDC_SKEW_S)
        return fail(
            err, "The token was issued more than 12 hours ago (iat %.0f); ask for a new one", iat);
    /* The same conditions as a window of whole seconds, for a verifier that remembers tokens. */
    double from = ceil(iat - AHL_OIDC_SKEW_S), until = ceil(exp + AHL_OIDC_SKEW_S);
    if (has_nbf && ceil(nbf - AHL_OIDC_SKEW_S) > from)
        from = ceil(nbf - AHL_OIDC_SKEW_S);
    if (floor(iat + AHL_OIDC_MAX_AGE_S + AHL_OIDC_SKEW_S) + 1 < until)
        until = floor(iat + AHL_OIDC_MAX_AGE_S + AHL_OIDC_SKEW_S) + 1;
    out->exp = seconds(exp);
    out->valid_from = seconds(from);
    out->valid_until = seconds(until);
    return 0;
}

static int check_audience(json_t *claims, const char *audience, struct ahl_err *err)
{
    json_t *aud = json_object_get(claims, "aud");
    if (json_is_string(aud)) {
        if (!strcmp(json_string_value(aud), audience))
            return 0;
        return fail(err, "The token's audience '%.100s' is not '%s'", json_string_value(aud),
                    audience);
    }
    if (!json_is_array(aud))
        return fail(err, "The token has no 'aud' claim (a string or an array of strings)");
    size_t i;
    json_t *a;
    json_array_foreach(aud, i, a) if (json_is_string(a) &&
                                      !strcmp(json_string_value(a), audience)) return 0;
    return fail(err, "The token's audiences do not include '%s'", audience);
}

/* The access the space-separated scope names; the widest wins. */
static enum ahl_oidc_access scope_access(json_t *claims)
{
    json_t *scope = json_object_get(claims, "scope");
    enum ahl_oidc_access access = AHL_OIDC_ACCESS_NONE;
    if (!json_is_string(scope))
        return access;
    const char *p = json_string_value(scope);
    while (*p) {
        size_t n = strcspn(p, " ");
        if (n == sizeof AHL_OIDC_SCOPE_WRITE - 1 && !memcmp(p, AHL_OIDC_SCOPE_WRITE, n))
            access = AHL_OIDC_ACCESS_WRITE;
        else if (n == sizeof AHL_OIDC_SCOPE_READ - 1 && !memcmp(p, AHL_OIDC_SCOPE_READ, n) &&
                 access == AHL_OIDC_ACCESS_NONE)
            access = AHL_OIDC_ACCESS_READ;
        p += n;
        while (*p == ' ')
            p++;
    }
    return access;
}

int ahl_jwt_verify(const struct ahl_jwks *keys, const char *token, size_t n,
                   const struct ahl_jwt_policy *pol, struct ahl_oidc_claims *out,
                   struct ahl_err *err)
{
    struct ahl_buf header_raw, payload_raw, sig;
    json_t *header = NULL, *claims = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    ahl_buf_init(&header_raw, 0);
    ahl_buf_init(&payload_raw, 0);
    ahl_buf_init(&sig, 0);
    if (n > AHL_OIDC_MAX_TOKEN) {
        rc = fail(err, "The token is longer than %d bytes", AHL_OIDC_MAX_TOKEN);
        goto out;
    }
    const char *dot1 = memchr(token, '.', n);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', n - (size_t)(dot2 + 1 - token))) {
        rc = fail(err, "The token is not a JWT: it must be three base64url parts joined by '.'");
        goto out;
    }

    /* 1. The header: which algorithm, which key. */
    if ((rc = decode_part("header", token, (size_t)(dot1 - token), MAX_HEADER, &header_raw, &header,
                          err)) < 0)
        goto out;
    json_t *alg = json_object_get(header, "alg"), *kid = json_object_get(header, "kid");
    if (!json_is_string(alg)) {
        rc = fail(err, "The token's header has no 'alg'");
        goto out;
    }
    const char *alg_name = json_string_value(alg);
    enum ahl__jwk_alg want;
    if (!strcmp(alg_name, "RS256")) {
        want = AHL__JWK_RS256;
    } else if (!strcmp(alg_name, "ES256")) {
        want = AHL__JWK_ES256;
    } else if (!strcmp(alg_name, "none")) {
        rc = fail(err, "The token is not signed (alg none); tokens must be signed with RS256 or "
                       "ES256");
        goto out;
    } else {
        rc = fail(err, "The token's alg '%.32s' is not accepted; only RS256 and ES256 are",
                  alg_name);
        goto out;
    }
    if (json_object_get(header, "crit")) {
        rc = fail(err, "The token's header has 'crit' extensions, none of which are understood");
        goto out;
    }
    if (kid && !json_is_string(kid)) {
        rc = fail(err, "The token's 'kid' is not a string");
        goto out;
    }
    const struct ahl__jwk *key =
        ahl__jwks_find(keys, kid ? json_string_value(kid) : NULL, want, err);
    if (!key) {
        rc = AHL_EAUTH;
        goto out;
    }

    /* 2. The signature over header.payload as received. */
    const char *sig_text = dot2 + 1;
    if ((rc = decode_part("signature", sig_text, n - (size_t)(sig_text - token), MAX_SIGNATURE,
                          &sig, NULL, err)) < 0 ||
        (rc = check_signature(key, token, (size_t)(dot2 - token), &sig, err)) < 0)
        goto out;

    /* 3. The claims. */
    if ((rc = decode_part("payload", dot1 + 1, (size_t)(dot2 - dot1 - 1), AHL_OIDC_MAX_TOKEN,
                          &payload_raw, &claims, err)) < 0)
        goto out;
    json_t *iss = json_object_get(claims, "iss");
    if (!json_is_string(iss)) {
        rc = fail(err, "The token has no 'iss' claim");
        goto out;
    }
    if (strcmp(json_string_value(iss), pol->issuer) != 0) {
        rc = fail(err, "The token's issuer '%.100s' is not '%s'", json_string_value(iss),
                  pol->issuer);
        goto out;
    }
    if ((rc = check_audience(claims, pol->audience, err)) < 0 ||
        (rc = check_times(claims, pol->now_s, out, err)) < 0)
        goto out;
    json_t *sub = json_object_get(claims, "sub");
    if (json_is_string(sub))
        ahl_str_copy_cut(out->sub, sizeof out->sub, json_string_value(sub));
    out->access = scope_access(claims);
out:
    json_decref(header);
    json_decref(claims);
    ahl_buf_release(&header_raw);
    ahl_buf_release(&payload_raw);
    ahl_buf_release(&sig);
    return rc;
}
