/* Unit tests for src/aws/chunked: the aws-chunked decoder of STREAMING-AWS4-HMAC-SHA256-PAYLOAD
 * bodies against the worked example of the S3 streaming specification (66,560 bytes of 'a' in
 * chunks of 65,536 and 1,024, with its published signatures), fed whole and split at every size
 * down to single bytes; then every way a stream can be wrong: a changed data byte, a changed or
 * malformed signature, a missing CRLF, a truncated stream, data after the final chunk, and a
 * length other than x-amz-decoded-content-length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "aws/chunked.h"
#include "base/buf.h"

#define SEED "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
#define SIG1 "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
#define SIG2 "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
#define SIG3 "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
#define TOTAL 66560

static struct ahl_sigv4_result example_result(void)
{
    struct ahl_sigv4_result r;
    memset(&r, 0, sizeof r);
    r.streaming = 1;
    ahl_sigv4_signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3",
                          r.signing_key);
    memcpy(r.amz_date, "20130524T000000Z", 17);
    snprintf(r.scope, sizeof r.scope, "20130524/us-east-1/s3/aws4_request");
    memcpy(r.seed_signature, SEED, sizeof r.seed_signature);
    return r;
}

/* The example's body: chunk sizes 0x10000, 0x400, then the final chunk. */
static void example_body(struct ahl_buf *b)
{
    ahl_buf_init(b, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl_buf_adds(b, "10000;chunk-signature=" SIG1 "\r\n"), 0);
    for (int i = 0; i < 65536; i++)
        assert_int_equal(ahl_buf_addc(b, 'a'), 0);
    assert_int_equal(ahl_buf_adds(b, "\r\n400;chunk-signature=" SIG2 "\r\n"), 0);
    for (int i = 0; i < 1024; i++)
        assert_int_equal(ahl_buf_addc(b, 'a'), 0);
    assert_int_equal(ahl_buf_adds(b, "\r\n0;chunk-signature=" SIG3 "\r\n\r\n"), 0);
}

struct sink {
    uint64_t n;
    int bad; /* a byte other than 'a' */
};

static int count(void *ctx, const uint8_t *p, size_t n, struct ahl_err *err)
{
    struct sink *s = ctx;
    (void)err;
    for (size_t i = 0; i < n; i++)
        s->bad |= p[i] != 'a';
    s->n += n;
    return 0;
}

/* Feeds body in pieces of step bytes; returns the first error (feed or finish), 0 when good. */
static int run(const char *body, size_t len, size_t step, uint64_t declared, struct sink *s,
               struct ahl_err *err)
{
    struct ahl_sigv4_result r = example_result();
    struct ahl_sigv4_chunked d;
    int rc = 0;
    ahl_sigv4_chunked_init(&d, &r, declared);
    memset(s, 0, sizeof *s);
    for (size_t off = 0; off < len && rc == 0; off += step) {
        size_t n = len - off < step ? len - off : step;
        rc = ahl_sigv4_chunked_feed(&d, (const uint8_t *)body + off, n, count, s, err);
    }
    if (rc == 0)
        rc = ahl_sigv4_chunked_finish(&d, err);
    ahl_sigv4_chunked_release(&d);
    return rc;
}

static void test_example_any_split(void **state)
{
    (void)state;
    struct ahl_buf b;
    struct sink s;
    struct ahl_err err;
    example_body(&b);
    static const size_t steps[] = {1, 2, 3, 7, 64, 1000, 4096, 65537, 1 << 20};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        ahl_err_clear(&err);
        assert_int_equal(run(b.data, b.len, steps[i], TOTAL, &s, &err), 0);
        assert_int_equal(s.n, TOTAL);
        assert_false(s.bad);
    }
    ahl_buf_release(&b);
}

static void test_signature_of_each_chunk(void **state)
{
    (void)state;
    struct ahl_sigv4_result r = example_result();
    char sig[AHL_SHA256_HEX_LEN + 1];
    ahl_sigv4_chunk_signature(r.signing_key, r.amz_date, r.scope, SIG2, AHL_SIGV4_EMPTY_SHA256,
                              sig);
    assert_string_equal(sig, SIG3);
}

struct bad_case {
    const char *name;
    const char *find, *replace; /* edit of the example body (first occurrence) */
    uint64_t declared;
    int rc, detail;
    const char *msg; /* part of the message */
};

static void test_bad_streams(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"data changed", "aaaa\r\n400", "aaab\r\n400", TOTAL, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
         "chunk 1 (65536 bytes) does not match"},
        {"signature changed", "=ad80", "=bd80", TOTAL, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
         "chunk 1"},
        {"final signature changed", "=b6c6", "=b6c7", TOTAL, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
         "chunk 3 (0 bytes)"},
        {"second chunk dropped", "\r\n400;chunk-signature=" SIG2 "\r\n",
         "\r\n0;chunk-signature=" SIG3 "\r\n\r\n", TOTAL, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
         "chunk 2"},
        {"no signature", ";chunk-signature=" SIG1, ";chunk-sig=" SIG1, TOTAL, AHL_EPARSE, 0,
         "chunk 1's header"},
        {"short signature", SIG1 "\r\n", "ad80\r\n", TOTAL, AHL_EPARSE, 0, "64 hex"},
        {"no size", "10000;", ";", TOTAL, AHL_EPARSE, 0, "hexadecimal size"},
        {"bare LF", SIG1 "\r\n", SIG1 "\n", TOTAL, AHL_EPARSE, 0, "CRLF"},
        {"size too small", "400;", "3ff;", TOTAL, AHL_EPARSE, 0, "not followed by CRLF"},
        {"more than declared", "10000;", "10000;", TOTAL - 1, AHL_EPARSE, 0,
         "past x-amz-decoded-content-length"},
        {"less than declared", "10000;", "10000;", TOTAL + 1, AHL_EPARSE, 0,
         "x-amz-decoded-content-length is 66561"},
        {"truncated", "0;chunk-signature=" SIG3 "\r\n\r\n", "", TOTAL, AHL_EPARSE, 0,
         "ends before its final"},
        {"data after the end", SIG3 "\r\n\r\n", SIG3 "\r\n\r\nx", TOTAL, AHL_EPARSE, 0,
         "after the final"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *c = &cases[i];
        struct ahl_buf b, e;
        struct sink s;
        struct ahl_err err;
        example_body(&b);
        char *at = strstr(b.data, c->find);
        assert_non_null(at);
        ahl_buf_init(&e, AHL_BUF_UNLIMITED);
        assert_int_equal(ahl_buf_add(&e, b.data, (size_t)(at - b.data)), 0);
        assert_int_equal(ahl_buf_adds(&e, c->replace), 0);
        assert_int_equal(ahl_buf_adds(&e, at + strlen(c->find)), 0);
        for (size_t step = 1; step <= 1 << 20; step *= 64) {
            ahl_err_clear(&err);
            int rc = run(e.data, e.len, step, c->declared, &s, &err);
            if (rc != c->rc || err.detail != c->detail || !strstr(err.msg, c->msg))
                fail_msg("%s (step %zu): rc %d detail %d: %s", c->name, step, rc, err.detail,
                         err.msg);
        }
        ahl_buf_release(&b);
        ahl_buf_release(&e);
    }
}

static void test_failures_stick(void **state)
{
    (void)state;
    struct ahl_buf b;
    struct sink s;
    struct ahl_err err;
    example_body(&b);
    assert_int_equal(run(b.data, b.len, 999, TOTAL, &s, &err), 0);

    struct ahl_sigv4_result r = example_result();
    struct ahl_sigv4_chunked d;
    ahl_sigv4_chunked_init(&d, &r, TOTAL);
    assert_int_equal(ahl_sigv4_chunked_feed(&d, (const uint8_t *)"zz\r\n", 4, count, &s, &err),
                     AHL_EPARSE);
    assert_int_equal(ahl_sigv4_chunked_feed(&d, (const uint8_t *)b.data, b.len, count, &s, &err),
                     AHL_EPARSE);
    assert_int_equal(ahl_sigv4_chunked_finish(&d, &err), AHL_EPARSE);
    ahl_sigv4_chunked_release(&d);
    ahl_sigv4_chunked_release(&d);
    ahl_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_any_split),
        cmocka_unit_test(test_signature_of_each_chunk),
        cmocka_unit_test(test_bad_streams),
        cmocka_unit_test(test_failures_stick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
