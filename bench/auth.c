/* ahilite-bench auth: what authenticating one request costs, in-process and single-threaded: an
 * OIDC bearer token (RS256 with a 2048-bit key, ES256 with P-256) verified in full
 * (ahl_jwt_verify: what a server pays the first time it sees a token) and as the server does it
 * for a token it has seen (ahl_oidc_verify: the key file's stat, the token's SHA-256, a hit among
 * the remembered tokens), against the baseline every other request pays, a SigV4 verification of
 * a DICOMweb GET (ahl_sigv4_verify, signing key cached as in the server).
 * Keys and tokens are made at start (tests/unit/oidc_fixture.h, shared with the tests). Prints
 * one JSON line: microseconds per verification (median of 5 rounds) and the ratio to SigV4. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bench.h"

#include "aws/sigv4.h"
#include "base/clock.h"
#include "oidc/oidc.h"
#include "../tests/unit/oidc_fixture.h"

#include "base/banned.h"

#define ROUNDS 5
#define NOW 1800000000LL

struct hdrs {
    const struct ahl_sigv4_header *h;
    size_t n;
};

static const char *lookup(void *ctx, const char *name, size_t nth)
{
    const struct hdrs *hs = ctx;
    for (size_t i = 0; i < hs->n; i++)
        if (!strcasecmp(hs->h[i].name, name) && nth-- == 0)
            return hs->h[i].value;
    return NULL;
}

static int secret_of(void *ctx, const char *access_key, const char *token, char *out, size_t cap)
{
    (void)ctx;
    (void)token;
    if (strcmp(access_key, "AKIABENCH") != 0)
        return AHL_ENOTFOUND;
    snprintf(out, cap, "bench/secret");
    return 0;
}

enum kind { SIGV4, JWT_RS256, JWT_ES256, OIDC_RS256, OIDC_ES256 };

struct ctx {
    struct ahl_sigv4_verifier verifier;
    struct ahl_sigv4_request sreq;
    struct ahl_jwks *keys;
    struct ahl_oidc *oidc;
    char *token_rs, *token_es;
};

static int once(struct ctx *c, enum kind k)
{
    struct ahl_jwt_policy pol = {.issuer = "https://idp", .audience = "ahilite", .now_s = NOW};
    struct ahl_oidc_claims claims;
    struct ahl_sigv4_result res;
    switch (k) {
    case SIGV4:
        return ahl_sigv4_verify(&c->verifier, &c->sreq, NOW, &res, NULL, NULL);
    case JWT_RS256:
        return ahl_jwt_verify(c->keys, c->token_rs, strlen(c->token_rs), &pol, &claims, NULL);
    case JWT_ES256:
        return ahl_jwt_verify(c->keys, c->token_es, strlen(c->token_es), &pol, &claims, NULL);
    case OIDC_RS256:
        return ahl_oidc_verify(c->oidc, c->token_rs, strlen(c->token_rs), NOW, &claims, NULL);
    case OIDC_ES256:
        return ahl_oidc_verify(c->oidc, c->token_es, strlen(c->token_es), NOW, &claims, NULL);
    }
    return -1;
}

/* Microseconds per call: the median of ROUNDS rounds of n calls (CPU time of this thread). */
static double measure(struct ctx *c, enum kind k, long n)
{
    double us[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = ahl__bench_thread_cpu_s();
        for (long i = 0; i < n; i++)
            if (once(c, k) != 0) {
                fprintf(stderr, "ahilite-bench auth: verification %d failed\n", (int)k);
                exit(1);
            }
        us[r] = (ahl__bench_thread_cpu_s() - t0) * 1e6 / (double)n;
    }
    return ahl__bench_pct(us, ROUNDS, 0.5);
}

int ahl__bench_auth(int argc, char **argv)
{
    long n = 2000;
    const char *unused_dir = NULL;
    const struct ahl__bench_opt opts[] = {{"--iterations", &n}};
    if (ahl__bench_wants_help(argc, argv, 1) ||
        ahl__bench_parse(argc, argv, 1, opts, 1, &unused_dir) < 0) {
        fprintf(stderr,
                "usage: ahilite-bench auth [--iterations N]   (default 2000 per round, "
                "%d rounds)\n",
                ROUNDS);
        return ahl__bench_wants_help(argc, argv, 1) ? 0 : 2;
    }
    struct ctx c;
    memset(&c, 0, sizeof c);
    char dir[256] = "", path[300], date[17];
    int status = 1, verifier_ready = 0;
    EVP_PKEY *rsa = fx_keygen(2048), *ec = fx_keygen(0);
    struct ahl_buf b;
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);

    /* SigV4: a signed GET of series metadata, as a DICOMweb client sends it. */
    struct ahl_sigv4_config scfg = {.region = "us-east-1",
                                    .service = "medical-imaging",
                                    .uri_mode = AHL_SIGV4_URI_DOUBLE,
                                    .max_skew_s = 900,
                                    .secret = secret_of};
    const char *path_s = "/datastore/0123456789abcdef0123456789abcdef/studies/1.2.3/series/1.2.3.4/"
                         "metadata";
    struct ahl_sigv4_header in_h[] = {{"host", "127.0.0.1:8080"}};
    struct ahl_sigv4_sign_input in = {.method = "GET",
                                      .path = path_s,
                                      .headers = in_h,
                                      .n_headers = 1,
                                      .payload_hash = AHL_SIGV4_EMPTY_SHA256,
                                      .region = "us-east-1",
                                      .service = "medical-imaging",
                                      .uri_mode = AHL_SIGV4_URI_DOUBLE,
                                      .now_s = NOW};
    struct ahl_sigv4_credentials cred = {"AKIABENCH", "bench/secret", NULL};
    struct ahl_sigv4_signed sig;
    ahl_buf_init(&sig.authorization, 0);
    if (ahl_sigv4_verifier_init(&c.verifier, &scfg) < 0)
        goto out;
    verifier_ready = 1;
    if (ahl_sigv4_sign(&in, &cred, &sig) < 0)
        goto out;
    memcpy(date, sig.amz_date, sizeof date);
    struct ahl_sigv4_header all[] = {{"host", "127.0.0.1:8080"},
                                     {"x-amz-date", date},
                                     {"x-amz-content-sha256", sig.content_sha256},
                                     {"authorization", sig.authorization.data}};
    struct hdrs hs = {all, 4};
    c.sreq = (struct ahl_sigv4_request){.method = "GET",
                                        .path = path_s,
                                        .path_len = strlen(path_s),
                                        .header = lookup,
                                        .header_ctx = &hs,
                                        .body_sha256_hex = AHL_SIGV4_EMPTY_SHA256};

    /* Tokens and keys, and the key file for ahl_oidc_verify. */
    const char *claims = "{\"iss\":\"https://idp\",\"aud\":\"ahilite\",\"sub\":\"u\",\"iat\":"
                         "1799999990,\"exp\":1800003600,\"scope\":\"ahilite:read\"}";
    fx_token(rsa, FX_SIGN_KEY, "{\"alg\":\"RS256\",\"kid\":\"r\"}", claims, &b);
    c.token_rs = ahl_buf_detach(&b, NULL);
    fx_token(ec, FX_SIGN_KEY, "{\"alg\":\"ES256\",\"kid\":\"e\"}", claims, &b);
    c.token_es = ahl_buf_detach(&b, NULL);
    FX_CHECK(ahl_buf_adds(&b, "{\"keys\":[") == 0);
    fx_jwk(rsa, "r", NULL, &b);
    FX_CHECK(ahl_buf_addc(&b, ',') == 0);
    fx_jwk(ec, "e", NULL, &b);
    FX_CHECK(ahl_buf_adds(&b, "]}") == 0);
    if (ahl__bench_scratch_dir(NULL, "ahl-bench-auth", dir, sizeof dir) < 0)
        goto out;
    snprintf(path, sizeof path, "%s/jwks.json", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(b.data, f) < 0 || fclose(f) != 0)
        goto out;
    struct ahl_oidc_config ocfg = {
        .jwks_path = path, .issuer = "https://idp", .audience = "ahilite"};
    if (ahl_jwks_parse(b.data, b.len, &c.keys, NULL) < 0 || ahl_oidc_open(&ocfg, &c.oidc, NULL) < 0)
        goto out;

    double sigv4 = measure(&c, SIGV4, n), rs = measure(&c, JWT_RS256, n);
    double es = measure(&c, JWT_ES256, n), seen_rs = measure(&c, OIDC_RS256, n);
    double seen_es = measure(&c, OIDC_ES256, n);
    if (ahl_oidc_cache_hits(c.oidc) + 2 != (uint64_t)(2 * ROUNDS * n)) {
        fprintf(stderr, "ahilite-bench auth: the remembered tokens were not used\n");
        goto out;
    }
    printf("{\"bench\":\"auth\",\"iterations\":%ld,\"rounds\":%d,\"us_sigv4\":%.2f,"
           "\"us_jwt_rs256\":%.2f,\"us_jwt_es256\":%.2f,\"us_oidc_seen_rs256\":%.2f,"
           "\"us_oidc_seen_es256\":%.2f,\"rs256_over_sigv4\":%.2f,\"es256_over_sigv4\":%.2f,"
           "\"seen_over_sigv4\":%.2f}\n",
           n, ROUNDS, sigv4, rs, es, seen_rs, seen_es, rs / sigv4, es / sigv4, seen_es / sigv4);
    status = 0;
out:
    if (status)
        fprintf(stderr, "ahilite-bench auth: setting up failed\n");
    if (verifier_ready)
        ahl_sigv4_verifier_release(&c.verifier);
    ahl_buf_release(&sig.authorization);
    ahl_oidc_close(c.oidc);
    ahl_jwks_free(c.keys);
    free(c.token_rs);
    free(c.token_es);
    ahl_buf_release(&b);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    if (dir[0])
        ahl__bench_remove_tree(dir);
    return status;
}
