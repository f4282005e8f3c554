// module: aws
/* Fuzzes the SigV4 parsers and the verifier with whole requests in a small text form:
 *
 *     METHOD PATH[?QUERY]\n
 *     name: value\n        (headers, up to a blank line)
 *     \n
 *     body
 *
 * Every header value goes through the Authorization parser, the query through the pre-signed
 * parser and both canonical-query forms, the path through both canonical-URI forms, and the whole
 * request through ahl_sigv4_verify with a fixed key and clock. Nothing may crash, leak or read out
 * of bounds; the results are checked for their invariants only. */
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/codec.h"
#include "aws/sigv4.h"

#define MAX_HEADERS 64

struct req {
    char *names[MAX_HEADERS], *values[MAX_HEADERS];
    size_t n;
};

static const char *lookup(void *ctx, const char *name, size_t nth)
{
    struct req *r = ctx;
    for (size_t i = 0; i < r->n; i++) {
        if (strcasecmp(r->names[i], name) == 0 && nth-- == 0)
            return r->values[i];
    }
    return NULL;
}

static int secret(void *ctx, const char *access_key, const char *token, char *out, size_t cap)
{
    (void)ctx;
    (void)token;
    if (strcmp(access_key, "AKIDEXAMPLE") != 0)
        return AHL_ENOTFOUND;
    if (cap < 41)
        abort();
    memcpy(out, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 41);
    return 0;
}

static void check_buf(const struct ahl_buf *b)
{
    if (b->len > b->max || b->data[b->len] != '\0')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    size_t body_off = size;
    char *blank = strstr(text, "\n\n");
    if (blank) {
        *blank = '\0';
        body_off = (size_t)(blank - text) + 2;
    }

    struct req r = {.n = 0};
    char *line = text, *next;
    char *method = "GET", *target = "/";
    for (int first = 1; line; line = next, first = 0) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (first) {
            char *sp = strchr(line, ' ');
            method = line;
            if (sp) {
                *sp = '\0';
                target = sp + 1;
            }
            continue;
        }
        char *colon = strchr(line, ':');
        if (!colon || r.n == MAX_HEADERS)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        r.names[r.n] = line;
        r.values[r.n++] = v;
    }
    char *q = strchr(target, '?');
    size_t path_len = q ? (size_t)(q - target) : strlen(target);
    const char *query = q ? q + 1 : NULL;
    size_t query_len = q ? strlen(q + 1) : 0;

    struct ahl_buf b;
    ahl_buf_init(&b, AHL_SIGV4_MAX_CANONICAL);
    ahl_sigv4_canonical_uri(target, path_len, AHL_SIGV4_URI_DOUBLE, &b);
    check_buf(&b);
    ahl_buf_reset(&b);
    ahl_sigv4_canonical_uri(target, path_len, AHL_SIGV4_URI_S3, &b);
    check_buf(&b);
    for (int ex = 0; ex < 2; ex++) {
        ahl_buf_reset(&b);
        ahl_sigv4_canonical_query(query, query_len, ex, &b);
        check_buf(&b);
    }
    struct ahl_sigv4_auth auth;
    struct ahl_err err;
    for (size_t i = 0; i < r.n; i++) {
        if (ahl_sigv4_parse_authorization(r.values[i], &auth, &err) == 0 &&
            (strlen(auth.signature) != 64 || strlen(auth.scope_date) != 8 || !auth.access_key[0]))
            abort();
    }
    if (query && ahl_sigv4_parse_presigned(query, query_len, &auth, &err) == 0 &&
        (strlen(auth.signature) != 64 || !auth.presigned))
        abort();
    ahl_buf_reset(&b);
    ahl_sigv4_canonical_headers("host;x-amz-date", lookup, &r, &b);
    check_buf(&b);

    for (int mode = 0; mode < 2; mode++) {
        struct ahl_sigv4_verifier v;
        struct ahl_sigv4_config cfg = {
            .region = mode ? NULL : "us-east-1",
            .service = mode ? "s3" : "medical-imaging",
            .uri_mode = mode ? AHL_SIGV4_URI_S3 : AHL_SIGV4_URI_DOUBLE,
            .allow_unsigned_payload = mode,
            .secret = secret,
        };
        if (ahl_sigv4_verifier_init(&v, &cfg) < 0)
            abort();
        char hash[65];
        ahl_sha256_hex(data + body_off, size - body_off, hash);
        struct ahl_sigv4_request rq = {
            .method = method,
            .path = target,
            .path_len = path_len,
            .query = query,
            .query_len = query_len,
            .header = lookup,
            .header_ctx = &r,
            .body_sha256_hex = mode ? NULL : hash,
        };
        struct ahl_sigv4_result res;
        int rc = ahl_sigv4_verify(&v, &rq, 1795523696, &res, &err, NULL);
        if (rc < 0 && (err.code != rc || !err.msg[0] || (rc == AHL_EAUTH && !err.detail)))
            abort();
        if (rc < 0 && rc != AHL_EAUTH && rc != AHL_EINVAL && rc != AHL_ENOMEM)
            abort();
        ahl_sigv4_verifier_release(&v);
    }
    ahl_buf_release(&b);
    free(text);
    return 0;
}
