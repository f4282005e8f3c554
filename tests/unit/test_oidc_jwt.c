/* Unit tests for src/oidc: JWKS parsing, JWT verification (every way a token is refused, each
 * with its message), the clock-skew edges, and the key file read again when it changes. Keys
 * are made with OpenSSL when the test starts (oidc_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "oidc/oidc.h"
#include "oidc_fixture.h"

#define NOW 1800000000LL
#define ISS "https://idp.example.test"
#define AUD "ahilite"

static EVP_PKEY *rsa1, *ec1, *rsa_other;
static struct ahl_jwks *keys; /* rsa1 as "r1", ec1 as "e1", plus keys that are skipped */

static char *jwks_text(const char *members)
{
    struct ahl_buf b;
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);
    FX_CHECK(ahl_buf_addf(&b, "{\"keys\":[%s]}", members) == 0);
    return ahl_buf_detach(&b, NULL);
}

static int setup(void **state)
{
    (void)state;
    rsa1 = fx_keygen(2048);
    ec1 = fx_keygen(0);
    rsa_other = fx_keygen(2048);
    struct ahl_buf m;
    ahl_buf_init(&m, AHL_BUF_UNLIMITED);
    fx_jwk(rsa1, "r1", ",\"use\":\"sig\",\"alg\":\"RS256\"", &m);
    ahl_buf_addc(&m, ',');
    fx_jwk(ec1, "e1", NULL, &m);
    /* Skipped: an encryption key, a key for another algorithm, another key type. */
    ahl_buf_addc(&m, ',');
    fx_jwk(rsa_other, "enc", ",\"use\":\"enc\"", &m);
    ahl_buf_addc(&m, ',');
    fx_jwk(rsa_other, "ps", ",\"alg\":\"PS256\"", &m);
    ahl_buf_adds(&m, ",{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\",\"kid\":\"ed\"}");
    char *text = jwks_text(m.data);
    struct ahl_err err;
    int rc = ahl_jwks_parse(text, strlen(text), &keys, &err);
    if (rc < 0)
        fprintf(stderr, "%s\n", err.msg);
    free(text);
    ahl_buf_release(&m);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    ahl_jwks_free(keys);
    EVP_PKEY_free(rsa1);
    EVP_PKEY_free(ec1);
    EVP_PKEY_free(rsa_other);
    return 0;
}

/* Verifies a token made from header and payload text; returns the result and fills err. */
static int verify_with(const struct ahl_jwks *set, EVP_PKEY *k, enum fx_sign how,
                       const char *header, const char *payload, struct ahl_oidc_claims *c,
                       struct ahl_err *err)
{
    struct ahl_buf t;
    ahl_buf_init(&t, AHL_BUF_UNLIMITED);
    fx_token(k, how, header, payload, &t);
    struct ahl_jwt_policy pol = {.issuer = ISS, .audience = AUD, .now_s = NOW};
    ahl_err_clear(err);
    int rc = ahl_jwt_verify(set, t.data, t.len, &pol, c, err);
    ahl_buf_release(&t);
    return rc;
}

/* A payload with the usual claims, then extra members (",\"a\":1") or overrides by position:
 * each %s slot is a whole member or "". */
static char *payload(const char *iss, const char *aud, const char *exp, const char *iat,
                     const char *extra)
{
    struct ahl_buf b;
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);
    FX_CHECK(ahl_buf_addf(&b, "{\"sub\":\"u1\"%s%s%s%s%s}", iss, aud, exp, iat, extra) == 0);
    return ahl_buf_detach(&b, NULL);
}

#define STD_ISS ",\"iss\":\"" ISS "\""
#define STD_AUD ",\"aud\":\"" AUD "\""
#define STD_EXP ",\"exp\":1800003600"
#define STD_IAT ",\"iat\":1799999990"
#define READ ",\"scope\":\"openid ahilite:read\""
#define RS "{\"alg\":\"RS256\",\"kid\":\"r1\"}"
#define ES "{\"alg\":\"ES256\",\"kid\":\"e1\"}"

static void test_good_tokens(void **state)
{
    (void)state;
    struct ahl_oidc_claims c;
    struct ahl_err err;
    char *p = payload(STD_ISS, STD_AUD, STD_EXP, STD_IAT, READ);
    assert_int_equal(
        verify_with(keys, rsa1, FX_SIGN_KEY, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", p, &c, &err), 0);
    assert_int_equal(c.access, AHL_OIDC_ACCESS_READ);
    assert_string_equal(c.sub, "u1");
    assert_int_equal(c.exp, 1800003600);
    assert_int_equal(verify_with(keys, ec1, FX_SIGN_KEY,
                                 "{\"typ\":\"JWT\",\"alg\":\"ES256\",\"kid\":\"e1\"}", p, &c, &err),
                     0);
    assert_int_equal(c.access, AHL_OIDC_ACCESS_READ);
    free(p);

    /* Scopes: write wins over read; neither is none; an audience array; fractional times. */
    static const struct {
        const char *extra;
        enum ahl_oidc_access access;
    } scopes[] = {
        {",\"scope\":\"ahilite:write\"", AHL_OIDC_ACCESS_WRITE},
        {",\"scope\":\"ahilite:read  ahilite:write\"", AHL_OIDC_ACCESS_WRITE},
        {",\"scope\":\"ahilite:write ahilite:read\"", AHL_OIDC_ACCESS_WRITE},
        {",\"scope\":\"openid\"", AHL_OIDC_ACCESS_NONE},
        {",\"scope\":\"ahilite:reads xahilite:write\"", AHL_OIDC_ACCESS_NONE},
        {",\"scope\":[\"ahilite:write\"]", AHL_OIDC_ACCESS_NONE},
        {"", AHL_OIDC_ACCESS_NONE},
    };
    for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++) {
        p = payload(STD_ISS, ",\"aud\":[\"x\",\"" AUD "\"]", ",\"exp\":1800003600.5",
                    ",\"iat\":1799999990.25", scopes[i].extra);
        assert_int_equal(
            verify_with(keys, ec1, FX_SIGN_KEY, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", p, &c, &err),
            0);
        assert_int_equal(c.access, scopes[i].access);
        free(p);
    }
}

/* The 60 seconds of skew, to the second, on each time claim. */
static void test_clock_skew_edges(void **state)
{
    (void)state;
    static const struct {
        const char *exp, *iat, *nbf;
        int ok;
    } cases[] = {
        {",\"exp\":1799999941", STD_IAT, "", 1},      /* expired 59 s ago */
        {",\"exp\":1799999940", STD_IAT, "", 0},      /* 60 s ago */
        {STD_EXP, STD_IAT, ",\"nbf\":1800000060", 1}, /* valid in 60 s */
        {STD_EXP, STD_IAT, ",\"nbf\":1800000061", 0}, /* in 61 s */
        {STD_EXP, ",\"iat\":1800000060", "", 1},      /* issued 60 s ahead */
        {STD_EXP, ",\"iat\":1800000061", "", 0},      /* 61 s ahead */
        {STD_EXP, ",\"iat\":1799956740", "", 1},      /* 12 h + 60 s old */
        {STD_EXP, ",\"iat\":1799956739", "", 0},      /* 12 h + 61 s old */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ahl_oidc_claims c;
        struct ahl_err err;
        char *p = payload(STD_ISS, STD_AUD, cases[i].exp, cases[i].iat, cases[i].nbf);
        int rc =
            verify_with(keys, rsa1, FX_SIGN_KEY, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", p, &c, &err);
        if (cases[i].ok != (rc == 0))
            fail_msg("case %zu: rc %d (%s)", i, rc, err.msg);
        free(p);
    }
}

/* The window a verification reports is exactly the times at which a full check accepts. */
static void test_validity_window(void **state)
{
    (void)state;
    static const char *const times[] = {
        ",\"exp\":1800000100.5,\"iat\":1799999990,\"nbf\":1800000003.2",
        ",\"exp\":1800090000,\"iat\":1799999990.7",
        ",\"exp\":1800001000,\"iat\":1799956840.5,\"nbf\":1799000000",
    };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        struct ahl_buf t;
        ahl_buf_init(&t, AHL_BUF_UNLIMITED);
        char *p = payload(STD_ISS, STD_AUD, times[i], "", READ);
        fx_token(ec1, FX_SIGN_KEY, ES, p, &t);
        free(p);
        struct ahl_oidc_claims c, w;
        struct ahl_err err;
        struct ahl_jwt_policy pol = {.issuer = ISS, .audience = AUD, .now_s = NOW + 30};
        assert_int_equal(ahl_jwt_verify(keys, t.data, t.len, &pol, &w, &err), 0);
        assert_true(w.valid_from <= NOW + 30 && NOW + 30 < w.valid_until);
        for (int64_t at = NOW - 200; at < NOW + 200; at++) {
            pol.now_s = at;
            int ok = ahl_jwt_verify(keys, t.data, t.len, &pol, &c, &err) == 0;
            if (ok != (at >= w.valid_from && at < w.valid_until))
                fail_msg("case %zu at %lld: %d, window [%lld, %lld)", i, (long long)at, ok,
                         (long long)w.valid_from, (long long)w.valid_until);
        }
        ahl_buf_release(&t);
    }
}

struct bad_case {
    const char *name;
    int ec; /* signed by ec1 rather than rsa1 */
    enum fx_sign how;
    const char *header;
    const char *iss, *aud, *exp, *iat, *extra;
    const char *words; /* in the message */
};

static const struct bad_case bad_cases[] = {
    {"expired", 0, FX_SIGN_KEY, RS, STD_ISS, STD_AUD, ",\"exp\":1799990000", STD_IAT, "",
     "has expired"},
    {"nbf ahead", 0, FX_SIGN_KEY, RS, STD_ISS, STD_AUD, STD_EXP, STD_IAT, ",\"nbf\":1800000600",
     "not valid yet"},
    {"iat > 12 h", 1, FX_SIGN_KEY, ES, STD_ISS, STD_AUD, STD_EXP, ",\"iat\":1799950000", "",
     "more than 12 hours"},
    {"iat ahead", 0, FX_SIGN_KEY, RS, STD_ISS, STD_AUD, STD_EXP, ",\"iat\":1800000600", "",
     "in the future"},
    {"no exp", 0, FX_SIGN_KEY, RS, STD_ISS, STD_AUD, "", STD_IAT, "", "no 'exp'"},
    {"no iat", 0, FX_SIGN_KEY, RS, STD_ISS, STD_AUD, STD_EXP, "", "", "no 'iat'"},
    {"exp a string", 0, FX_SIGN_KEY, RS, STD_ISS, STD_AUD, ",\"exp\":\"1800003600\"", STD_IAT, "",
     "'exp' claim is not a number"},
    {"nbf null", 0, FX_SIGN_KEY, RS, STD_ISS, STD_AUD, STD_EXP, STD_IAT, ",\"nbf\":null",
     "'nbf' claim is not a number"},
    {"wrong iss", 0, FX_SIGN_KEY, RS, ",\"iss\":\"https://evil.test\"", STD_AUD, STD_EXP, STD_IAT,
     "", "issuer 'https://evil.test' is not"},
    {"iss prefix", 0, FX_SIGN_KEY, RS, ",\"iss\":\"" ISS "/\"", STD_AUD, STD_EXP, STD_IAT, "",
     "issuer"},
    {"no iss", 0, FX_SIGN_KEY, RS, "", STD_AUD, STD_EXP, STD_IAT, "", "no 'iss'"},
    {"wrong aud", 0, FX_SIGN_KEY, RS, STD_ISS, ",\"aud\":\"other\"", STD_EXP, STD_IAT, "",
     "audience 'other' is not"},
    {"aud array without", 1, FX_SIGN_KEY, ES, STD_ISS, ",\"aud\":[\"a\",1]", STD_EXP, STD_IAT, "",
     "audiences do not include"},
    {"no aud", 0, FX_SIGN_KEY, RS, STD_ISS, "", STD_EXP, STD_IAT, "", "no 'aud'"},
    {"unknown kid", 0, FX_SIGN_KEY, "{\"alg\":\"RS256\",\"kid\":\"zz\"}", STD_ISS, STD_AUD, STD_EXP,
     STD_IAT, "", "kid 'zz' names no key"},
    {"skipped key's kid", 0, FX_SIGN_KEY, "{\"alg\":\"RS256\",\"kid\":\"enc\"}", STD_ISS, STD_AUD,
     STD_EXP, STD_IAT, "", "names no key"},
    {"no kid, two keys", 0, FX_SIGN_KEY, "{\"alg\":\"RS256\"}", STD_ISS, STD_AUD, STD_EXP, STD_IAT,
     "", "no 'kid'"},
    {"alg none", 0, FX_SIGN_NONE, "{\"alg\":\"none\",\"kid\":\"r1\"}", STD_ISS, STD_AUD, STD_EXP,
     STD_IAT, "", "not signed"},
    {"HS256", 0, FX_SIGN_HS256, "{\"alg\":\"HS256\",\"kid\":\"r1\"}", STD_ISS, STD_AUD, STD_EXP,
     STD_IAT, "", "alg 'HS256' is not accepted"},
    {"RS384", 0, FX_SIGN_KEY, "{\"alg\":\"RS384\",\"kid\":\"r1\"}", STD_ISS, STD_AUD, STD_EXP,
     STD_IAT, "", "not accepted"},
    {"no alg", 0, FX_SIGN_KEY, "{\"kid\":\"r1\"}", STD_ISS, STD_AUD, STD_EXP, STD_IAT, "",
     "no 'alg'"},
    {"RS256 on the EC key", 1, FX_SIGN_KEY, "{\"alg\":\"RS256\",\"kid\":\"e1\"}", STD_ISS, STD_AUD,
     STD_EXP, STD_IAT, "", "does not fit the key 'e1'"},
    {"ES256 on the RSA key", 0, FX_SIGN_KEY, "{\"alg\":\"ES256\",\"kid\":\"r1\"}", STD_ISS, STD_AUD,
     STD_EXP, STD_IAT, "", "does not fit the key 'r1'"},
    {"signed by another key", 1, FX_SIGN_KEY, ES, STD_ISS, STD_AUD, STD_EXP, STD_IAT, "", NULL},
    {"crit", 0, FX_SIGN_KEY, "{\"alg\":\"RS256\",\"kid\":\"r1\",\"crit\":[\"b64\"]}", STD_ISS,
     STD_AUD, STD_EXP, STD_IAT, "", "'crit'"},
    {"kid a number", 0, FX_SIGN_KEY, "{\"alg\":\"RS256\",\"kid\":1}", STD_ISS, STD_AUD, STD_EXP,
     STD_IAT, "", "'kid' is not a string"},
    {"header not JSON", 0, FX_SIGN_KEY, "{\"alg\":\"RS256\",", STD_ISS, STD_AUD, STD_EXP, STD_IAT,
     "", "header is not valid JSON"},
    {"header an array", 0, FX_SIGN_KEY, "[\"RS256\"]", STD_ISS, STD_AUD, STD_EXP, STD_IAT, "",
     "header is not a JSON object"},
    {"duplicate alg", 0, FX_SIGN_KEY, "{\"alg\":\"none\",\"alg\":\"RS256\",\"kid\":\"r1\"}",
     STD_ISS, STD_AUD, STD_EXP, STD_IAT, "", "header is not valid JSON"},
};

static void test_bad_tokens(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        struct ahl_oidc_claims c;
        struct ahl_err err;
        char *p = payload(b->iss, b->aud, b->exp, b->iat, b->extra);
        /* Without words: signed by a fresh EC key under ec1's kid. */
        EVP_PKEY *other = b->words ? NULL : fx_keygen(0);
        EVP_PKEY *k = other ? other : b->ec ? ec1 : rsa1;
        int rc = verify_with(keys, k, b->how, b->header, p, &c, &err);
        const char *words = b->words ? b->words : "signature does not verify";
        if (rc != AHL_EAUTH || err.detail != AHL_OIDC_FAIL_TOKEN || !strstr(err.msg, words))
            fail_msg("%s: rc %d detail %d message '%s', expected '%s'", b->name, rc, err.detail,
                     err.msg, words);
        EVP_PKEY_free(other);
        free(p);
    }
}

struct text_case {
    const char *name;
    char *text;
    const char *words;
};

/* Bytes changed after signing, and tokens that are not JWS at all. */
static void test_malformed_and_tampered(void **state)
{
    (void)state;
    struct ahl_buf t;
    ahl_buf_init(&t, AHL_BUF_UNLIMITED);
    char *p = payload(STD_ISS, STD_AUD, STD_EXP, STD_IAT, READ);
    fx_token(rsa1, FX_SIGN_KEY, RS, p, &t);
    char *good = ahl_buf_detach(&t, NULL);
    fx_token(ec1, FX_SIGN_KEY, ES, p, &t);
    char *good_ec = ahl_buf_detach(&t, NULL);
    free(p);
    struct ahl_jwt_policy pol = {.issuer = ISS, .audience = AUD, .now_s = NOW};
    struct ahl_oidc_claims c;
    struct ahl_err err;
    assert_int_equal(ahl_jwt_verify(keys, good, strlen(good), &pol, &c, &err), 0);

    char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');
    struct text_case cases[8];
    size_t n = 0;
    char *s;
    /* A payload claiming write access, with the signature of the read one. */
    p = payload(STD_ISS, STD_AUD, STD_EXP, STD_IAT, ",\"scope\":\"ahilite:write\"");
    ahl_buf_add(&t, good, (size_t)(dot1 - good) + 1);
    fx_b64url(p, strlen(p), &t);
    ahl_buf_adds(&t, dot2);
    free(p);
    cases[n++] =
        (struct text_case){"tampered payload", ahl_buf_detach(&t, NULL), "does not verify"};
    s = strdup(good);
    s[strlen(s) - 5] = s[strlen(s) - 5] == 'A' ? 'B' : 'A';
    cases[n++] = (struct text_case){"tampered signature", s, "does not verify"};
    s = strdup(good_ec);
    s[strlen(s) - 3] = s[strlen(s) - 3] == 'A' ? 'B' : 'A';
    cases[n++] = (struct text_case){"tampered ES256 signature", s, "does not verify"};
    ahl_buf_addf(&t, "%s=", good);
    cases[n++] = (struct text_case){"padded", ahl_buf_detach(&t, NULL), "base64url"};
    s = strdup(good);
    s[1] = '+';
    cases[n++] = (struct text_case){"standard alphabet", s, "header is not base64url"};
    ahl_buf_add(&t, good, (size_t)(dot2 - good));
    cases[n++] = (struct text_case){"two parts", ahl_buf_detach(&t, NULL), "not a JWT"};
    ahl_buf_addf(&t, "%s.", good);
    cases[n++] = (struct text_case){"four parts", ahl_buf_detach(&t, NULL), "not a JWT"};
    ahl_buf_add(&t, good_ec, (size_t)(strrchr(good_ec, '.') - good_ec) + 1);
    ahl_buf_adds(&t, "AAAA");
    cases[n++] =
        (struct text_case){"short ES256 signature", ahl_buf_detach(&t, NULL), "3 bytes, not 64"};
    for (size_t i = 0; i < n; i++) {
        ahl_err_clear(&err);
        int rc = ahl_jwt_verify(keys, cases[i].text, strlen(cases[i].text), &pol, &c, &err);
        if (rc != AHL_EAUTH || !strstr(err.msg, cases[i].words))
            fail_msg("%s: rc %d '%s'", cases[i].name, rc, err.msg);
        assert_int_equal(c.access, AHL_OIDC_ACCESS_NONE); /* nothing is filled on failure */
        free(cases[i].text);
    }
    /* Longer than the cap, whatever it holds. */
    char *big = calloc(1, AHL_OIDC_MAX_TOKEN + 2);
    memset(big, 'a', AHL_OIDC_MAX_TOKEN + 1);
    assert_int_equal(ahl_jwt_verify(keys, big, strlen(big), &pol, &c, &err), AHL_EAUTH);
    assert_non_null(strstr(err.msg, "longer than"));
    free(big);
    free(good);
    free(good_ec);
    ahl_buf_release(&t);
}

/* Without a kid a token is accepted when the set has exactly one usable key. */
static void test_single_key_without_kid(void **state)
{
    (void)state;
    struct ahl_buf m;
    ahl_buf_init(&m, AHL_BUF_UNLIMITED);
    fx_jwk(ec1, NULL, NULL, &m);
    ahl_buf_adds(&m, ",");
    fx_jwk(rsa_other, "enc", ",\"use\":\"enc\"", &m);
    char *text = jwks_text(m.data);
    struct ahl_jwks *one;
    struct ahl_err err;
    assert_int_equal(ahl_jwks_parse(text, strlen(text), &one, &err), 0);
    assert_int_equal(ahl_jwks_count(one), 1);
    struct ahl_oidc_claims c;
    char *p = payload(STD_ISS, STD_AUD, STD_EXP, STD_IAT, READ);
    assert_int_equal(verify_with(one, ec1, FX_SIGN_KEY, "{\"alg\":\"ES256\"}", p, &c, &err), 0);
    assert_int_equal(
        verify_with(one, ec1, FX_SIGN_KEY, "{\"alg\":\"ES256\",\"kid\":\"x\"}", p, &c, &err),
        AHL_EAUTH);
    assert_int_equal(verify_with(one, rsa1, FX_SIGN_KEY, "{\"alg\":\"RS256\"}", p, &c, &err),
                     AHL_EAUTH);
    assert_non_null(strstr(err.msg, "does not fit"));
    free(p);
    free(text);
    ahl_buf_release(&m);
    ahl_jwks_free(one);
}

struct jwks_case {
    const char *name;
    char *text;
    int rc;
    const char *words;
};

static void test_jwks_errors(void **state)
{
    (void)state;
    EVP_PKEY *small = fx_keygen(1024);
    struct ahl_buf m;
    ahl_buf_init(&m, AHL_BUF_UNLIMITED);
    struct jwks_case cases[20];
    size_t n = 0;
#define CASE(nm, txt, code, w) cases[n++] = (struct jwks_case){nm, txt, code, w}
    CASE("not JSON", strdup("{\"keys\":"), AHL_EPARSE, "not valid JSON");
    CASE("no keys", strdup("{\"key\":[]}"), AHL_EPARSE, "no \"keys\" array");
    CASE("empty", jwks_text(""), AHL_EINVAL, "no usable key");
    CASE("only skipped keys", jwks_text("{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}"), AHL_EINVAL,
         "no usable key");
    CASE("not an object", jwks_text("1"), AHL_EPARSE, "keys[0] is not an object");
    CASE("no kty", jwks_text("{\"n\":\"AQAB\"}"), AHL_EPARSE, "'kty'");
    CASE("EC without y", jwks_text("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\"}"), AHL_EPARSE,
         "'y' is missing");
    CASE("EC x short",
         jwks_text("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}"), AHL_EPARSE,
         "'x' and 'y' must be 32 bytes");
    fx_jwk(small, "s", NULL, &m);
    CASE("RSA-1024", jwks_text(m.data), AHL_EINVAL, "1024 bits");
    ahl_buf_reset(&m);
    fx_jwk(ec1, "e", NULL, &m);
    /* Change a digit of y: almost surely off the curve. */
    char *y = strstr(m.data, "\"y\":\"") + 5;
    y[3] = y[3] == 'A' ? 'B' : 'A';
    CASE("point off the curve", jwks_text(m.data), AHL_EPARSE, "not a point of P-256");
    ahl_buf_reset(&m);
    fx_jwk(rsa1, "d", NULL, &m);
    ahl_buf_addc(&m, ',');
    fx_jwk(rsa_other, "d", NULL, &m);
    CASE("duplicate kid", jwks_text(m.data), AHL_EINVAL, "'d' is used twice");
    ahl_buf_reset(&m);
    fx_jwk(rsa1, "p", ",\"n\":\"AQAB=\"", &m);
    CASE("duplicate member", jwks_text(m.data), AHL_EPARSE, "not valid JSON");
    ahl_buf_reset(&m);
    CASE("padded base64", jwks_text("{\"kty\":\"RSA\",\"n\":\"AQAB==\",\"e\":\"AQAB\"}"),
         AHL_EPARSE, "'n' is not base64url");
    CASE("tiny modulus", jwks_text("{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}"), AHL_EINVAL,
         "17 bits");
    fx_jwk(rsa1, "x", NULL, &m);
    memcpy(strstr(m.data, "\"e\":\"AQAB\"") + 5, "AAAC", 4); /* e = 2 */
    CASE("even exponent", jwks_text(m.data), AHL_EPARSE, "not an odd number");
    ahl_buf_reset(&m);
    CASE("kid not a string", jwks_text("{\"kty\":\"RSA\",\"kid\":7,\"n\":\"AQAB\",\"e\":\"AQAB\"}"),
         AHL_EPARSE, "'kid' is not a string");
#undef CASE
    for (size_t i = 0; i < n; i++) {
        struct ahl_jwks *set = (struct ahl_jwks *)1;
        struct ahl_err err;
        ahl_err_clear(&err);
        int rc = ahl_jwks_parse(cases[i].text, strlen(cases[i].text), &set, &err);
        if (rc != cases[i].rc || !strstr(err.msg, cases[i].words) || set)
            fail_msg("%s: rc %d '%s'", cases[i].name, rc, err.msg);
        free(cases[i].text);
    }
    ahl_buf_release(&m);
    EVP_PKEY_free(small);
}

/* The key file: read at open, again when it changes; a bad new file keeps the old keys. */
static void write_file(const char *path, const char *text)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    FX_CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0 && rename(tmp, path) == 0);
}

static void test_key_file_rotation(void **state)
{
    (void)state;
    char dir[] = "/tmp/ahl-oidc-XXXXXX", path[512];
    FX_CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/jwks.json", dir);
    struct ahl_buf m, t1, t2;
    ahl_buf_init(&m, AHL_BUF_UNLIMITED);
    ahl_buf_init(&t1, AHL_BUF_UNLIMITED);
    ahl_buf_init(&t2, AHL_BUF_UNLIMITED);
    char *p = payload(STD_ISS, STD_AUD, ",\"exp\":4000000000", ",\"iat\":1799999990", READ);
    fx_token(rsa1, FX_SIGN_KEY, RS, p, &t1);
    fx_token(rsa_other, FX_SIGN_KEY, "{\"alg\":\"RS256\",\"kid\":\"r2\"}", p, &t2);
    free(p);
    struct ahl_oidc_config cfg = {.jwks_path = path, .issuer = ISS, .audience = AUD};
    struct ahl_oidc *o;
    struct ahl_oidc_claims c;
    struct ahl_err err;

    assert_int_equal(ahl_oidc_open(&cfg, &o, &err), AHL_EIO); /* no file yet */
    assert_non_null(strstr(err.msg, "jwks.json"));
    write_file(path, "{\"keys\":[]}");
    assert_int_equal(ahl_oidc_open(&cfg, &o, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "no usable key"));

    fx_jwk(rsa1, "r1", NULL, &m);
    char *text = jwks_text(m.data);
    write_file(path, text);
    free(text);
    assert_int_equal(ahl_oidc_open(&cfg, &o, &err), 0);
    assert_int_equal(ahl_oidc_verify(o, t1.data, t1.len, NOW, &c, &err), 0);
    assert_int_equal(ahl_oidc_verify(o, t2.data, t2.len, NOW, &c, &err), AHL_EAUTH);

    /* Remembered: the second verification is a hit with the same claims; a failure is not
     * remembered; a remembered token past its times is refused, and says why. */
    assert_int_equal(ahl_oidc_cache_hits(o), 0);
    assert_int_equal(ahl_oidc_verify(o, t1.data, t1.len, NOW + 1, &c, &err), 0);
    assert_int_equal(ahl_oidc_cache_hits(o), 1);
    assert_int_equal(c.access, AHL_OIDC_ACCESS_READ);
    assert_string_equal(c.sub, "u1");
    assert_int_equal(ahl_oidc_verify(o, t2.data, t2.len, NOW, &c, &err), AHL_EAUTH);
    assert_int_equal(ahl_oidc_cache_hits(o), 1);
    assert_int_equal(ahl_oidc_verify(o, t1.data, t1.len, 1799999990 + 43200 + 61, &c, &err),
                     AHL_EAUTH);
    assert_non_null(strstr(err.msg, "12 hours"));
    assert_int_equal(ahl_oidc_verify(o, t1.data, t1.len, 1799999990 - 61, &c, &err), AHL_EAUTH);
    assert_non_null(strstr(err.msg, "future"));
    assert_int_equal(ahl_oidc_cache_hits(o), 1);
    /* One byte more or less is another token: verified in full (and refused). */
    assert_int_equal(ahl_oidc_verify(o, t1.data, t1.len - 1, NOW, &c, &err), AHL_EAUTH);
    assert_int_equal(ahl_oidc_cache_hits(o), 1);

    /* Rotated: r2 in, r1 out. */
    ahl_buf_reset(&m);
    fx_jwk(rsa_other, "r2", NULL, &m);
    text = jwks_text(m.data);
    write_file(path, text);
    free(text);
    assert_int_equal(ahl_oidc_verify(o, t2.data, t2.len, NOW, &c, &err), 0);
    /* t1 was remembered under the old key set: refused now that r1 is gone. */
    uint64_t hits = ahl_oidc_cache_hits(o);
    assert_int_equal(ahl_oidc_verify(o, t1.data, t1.len, NOW, &c, &err), AHL_EAUTH);
    assert_non_null(strstr(err.msg, "names no key"));
    assert_int_equal(ahl_oidc_cache_hits(o), hits);

    /* Broken, then gone: the keys read before stay. */
    write_file(path, "{\"keys\": [");
    assert_int_equal(ahl_oidc_verify(o, t2.data, t2.len, NOW, &c, &err), 0);
    FX_CHECK(unlink(path) == 0);
    assert_int_equal(ahl_oidc_verify(o, t2.data, t2.len, NOW, &c, &err), 0);

    /* Back, with both. */
    ahl_buf_addc(&m, ',');
    fx_jwk(rsa1, "r1", NULL, &m);
    text = jwks_text(m.data);
    write_file(path, text);
    free(text);
    assert_int_equal(ahl_oidc_verify(o, t1.data, t1.len, NOW, &c, &err), 0);
    assert_int_equal(ahl_oidc_verify(o, t2.data, t2.len, NOW, &c, &err), 0);

    ahl_oidc_close(o);
    unlink(path);
    rmdir(dir);
    ahl_buf_release(&m);
    ahl_buf_release(&t1);
    ahl_buf_release(&t2);
}

/* Threads verifying while the key file is replaced under them: the token of the key that stays is
 * always accepted, the other's comes and goes, and no set is freed while in use (ASan, TSan). */
struct hammer {
    struct ahl_oidc *o;
    const struct ahl_buf *stay, *comes_and_goes;
    atomic_int *stop;
    int failures, rounds;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    for (; !atomic_load(h->stop); h->rounds++) {
        struct ahl_oidc_claims c;
        struct ahl_err err;
        if (ahl_oidc_verify(h->o, h->stay->data, h->stay->len, NOW, &c, &err) != 0)
            h->failures++;
        int rc =
            ahl_oidc_verify(h->o, h->comes_and_goes->data, h->comes_and_goes->len, NOW, &c, &err);
        if (rc != 0 && rc != AHL_EAUTH)
            h->failures++;
    }
    return NULL;
}

static void test_key_file_replaced_under_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/ahl-oidc-XXXXXX", path[512];
    FX_CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/jwks.json", dir);
    struct ahl_buf one, two, t1, t2;
    ahl_buf_init(&one, AHL_BUF_UNLIMITED);
    ahl_buf_init(&two, AHL_BUF_UNLIMITED);
    ahl_buf_init(&t1, AHL_BUF_UNLIMITED);
    ahl_buf_init(&t2, AHL_BUF_UNLIMITED);
    fx_jwk(rsa1, "r1", NULL, &one);
    fx_jwk(rsa1, "r1", NULL, &two);
    ahl_buf_addc(&two, ',');
    fx_jwk(ec1, "e1", NULL, &two);
    char *text_one = jwks_text(one.data), *text_two = jwks_text(two.data);
    char *p = payload(STD_ISS, STD_AUD, STD_EXP, STD_IAT, READ);
    fx_token(rsa1, FX_SIGN_KEY, RS, p, &t1);
    fx_token(ec1, FX_SIGN_KEY, ES, p, &t2);
    free(p);
    write_file(path, text_two);
    struct ahl_oidc_config cfg = {.jwks_path = path, .issuer = ISS, .audience = AUD};
    struct ahl_oidc *o;
    assert_int_equal(ahl_oidc_open(&cfg, &o, NULL), 0);
    struct hammer h[4];
    pthread_t th[4];
    atomic_int stop = 0;
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){o, &t1, &t2, &stop, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < 40; i++) {
        write_file(path, i % 2 ? text_two : text_one);
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(h[i].failures, 0);
        assert_true(h[i].rounds > 0);
    }
    ahl_oidc_close(o);
    unlink(path);
    rmdir(dir);
    free(text_one);
    free(text_two);
    ahl_buf_release(&one);
    ahl_buf_release(&two);
    ahl_buf_release(&t1);
    ahl_buf_release(&t2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_tokens),
        cmocka_unit_test(test_clock_skew_edges),
        cmocka_unit_test(test_validity_window),
        cmocka_unit_test(test_bad_tokens),
        cmocka_unit_test(test_malformed_and_tampered),
        cmocka_unit_test(test_single_key_without_kid),
        cmocka_unit_test(test_jwks_errors),
        cmocka_unit_test(test_key_file_rotation),
        cmocka_unit_test(test_key_file_replaced_under_load),
    };
    return cmocka_run_group_tests_name("oidc", tests, setup, teardown);
}
