/* Unit tests for src/api/multipart: the streaming multipart/related parser of STOW-RS bodies fed
 * whole and split at every point (the parts and their bytes must come out the same), part data
 * that holds most of a delimiter, preambles and epilogues, every malformed body, and the media
 * type helpers that read Content-Type parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/multipart.h"
#include "base/buf.h"

/* What the callbacks saw, written as text: "[type]data|" for each part. */
struct seen {
    struct ahl_buf out;
};

static int on_begin(void *ctx, const char *type, struct ahl_err *err)
{
    (void)err;
    struct seen *s = ctx;
    return ahl_buf_addf(&s->out, "[%s]", type);
}

static int on_data(void *ctx, const uint8_t *p, size_t n, struct ahl_err *err)
{
    (void)err;
    struct seen *s = ctx;
    return ahl_buf_add(&s->out, p, n);
}

static int on_end(void *ctx, struct ahl_err *err)
{
    (void)err;
    struct seen *s = ctx;
    return ahl_buf_addc(&s->out, '|');
}

static const struct ahl_multipart_callbacks cbs = {on_begin, on_data, on_end};

/* Parses body split into a first piece of `split` bytes and the rest; 0 or the error. */
static int parse(const char *boundary, const char *body, size_t len, size_t split, struct seen *s,
                 struct ahl_err *err)
{
    struct ahl_multipart mp;
    ahl_buf_reset(&s->out);
    int rc = ahl_multipart_init(&mp, boundary, &cbs, s, err);
    if (rc == 0)
        rc = ahl_multipart_feed(&mp, (const uint8_t *)body, split, err);
    if (rc == 0)
        rc = ahl_multipart_feed(&mp, (const uint8_t *)body + split, len - split, err);
    if (rc == 0)
        rc = ahl_multipart_finish(&mp, err);
    return rc;
}

struct good_case {
    const char *name, *boundary, *body, *want;
};

static void test_good_bodies_any_split(void **state)
{
    (void)state;
    static const struct good_case cases[] = {
        {"two parts", "XyZ",
         "--XyZ\r\nContent-Type: application/dicom\r\n\r\nDICM1\r\n--XyZ\r\n"
         "content-type:  application/dicom; transfer-syntax=1.2 \r\nX-Other: 1\r\n\r\nDICM2"
         "\r\n--XyZ--\r\n",
         "[application/dicom]DICM1|[application/dicom; transfer-syntax=1.2]DICM2|"},
        {"preamble, padding, epilogue", "b",
         "preamble\r\n--b \t\r\nContent-Type: a/b\r\n\r\nx\r\n--b--epilogue\r\n--b\r\n", "[a/b]x|"},
        {"no headers, empty part", "b", "--b\r\n\r\n\r\n--b\r\n\r\nz\r\n--b--", "[]|[]z|"},
        {"data that almost holds the delimiter", "bound",
         "--bound\r\n\r\n\r\r\n\r\n-\r\n--\r\n--boun\r\n--bounD\r--bound\r\n\r\n--bound--",
         "[]\r\r\n\r\n-\r\n--\r\n--boun\r\n--bounD\r--bound\r\n|"},
        {"delimiter without CRLF inside data is data", "b", "--b\r\n\r\na--b\r\n--b--", "[]a--b|"},
        {"binary data", "=_1", "--=_1\r\n\r\n\x00\x01\r\x02\n\r\n--=_1--", "[]\x00\x01\r\x02\n|"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct good_case *c = &cases[i];
        size_t len = strlen(c->body), want_len = strlen(c->want);
        if (!strcmp(c->name, "binary data")) { /* a NUL inside: lengths from the literals */
            len = sizeof "--=_1\r\n\r\n\x00\x01\r\x02\n\r\n--=_1--" - 1;
            want_len = sizeof "[]\x00\x01\r\x02\n|" - 1;
        }
        for (size_t split = 0; split <= len; split++) {
            struct seen s;
            struct ahl_err err;
            ahl_buf_init(&s.out, AHL_BUF_UNLIMITED);
            int rc = parse(c->boundary, c->body, len, split, &s, &err);
            if (rc != 0)
                fail_msg("%s (split %zu): %d %s", c->name, split, rc, err.msg);
            if (s.out.len != want_len || memcmp(s.out.data, c->want, want_len) != 0)
                fail_msg("%s (split %zu): got %.*s", c->name, split, (int)s.out.len, s.out.data);
            ahl_buf_release(&s.out);
        }
    }
}

struct bad_case {
    const char *name, *boundary, *body;
    int rc;
    const char *msg;
};

static void test_bad_bodies(void **state)
{
    (void)state;
    static char long_headers[AHL_MULTIPART_HEADERS_MAX + 64];
    snprintf(long_headers, sizeof long_headers, "--b\r\nX: %0*d\r\n\r\nx\r\n--b--",
             AHL_MULTIPART_HEADERS_MAX, 0);
    static char long_type[600];
    snprintf(long_type, sizeof long_type, "--b\r\nContent-Type: %0*d\r\n\r\nx\r\n--b--", 300, 0);
    const struct bad_case cases[] = {
        {"no delimiter", "b", "just bytes", AHL_EPARSE, "before its first part"},
        {"wrong boundary", "b", "--c\r\n\r\nx\r\n--c--", AHL_EPARSE, "boundary right"},
        {"no close", "b", "--b\r\n\r\nx", AHL_EPARSE, "inside part 1"},
        {"close cut", "b", "--b\r\n\r\nx\r\n--b-", AHL_EPARSE, "ends inside part 1"},
        {"junk after delimiter", "b", "--b\r\n\r\nx\r\n--bx\r\n", AHL_EPARSE, "part 2"},
        {"bare LF after delimiter", "b", "--b\n\r\nx", AHL_EPARSE, "part 1"},
        {"CR without LF", "b", "--b\rx", AHL_EPARSE, "does not end in CRLF"},
        {"headers never end", "b", "--b\r\nContent-Type: x\r\n", AHL_EPARSE,
         "inside the headers of part 1"},
        {"headers too long", "b", long_headers, AHL_EPARSE, "longer than 8192"},
        {"type too long", "b", long_type, AHL_EPARSE, "Content-Type is longer"},
        {"bad boundary char", "a\"b", "", AHL_EINVAL, "RFC 2046"},
        {"empty boundary", "", "", AHL_EINVAL, "1 to 70"},
        {"boundary ending in space", "a ", "", AHL_EINVAL, "1 to 70"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *c = &cases[i];
        struct seen s;
        struct ahl_err err;
        ahl_buf_init(&s.out, AHL_BUF_UNLIMITED);
        ahl_err_clear(&err);
        int rc = parse(c->boundary, c->body, strlen(c->body), strlen(c->body) / 2, &s, &err);
        if (rc != c->rc || !strstr(err.msg, c->msg))
            fail_msg("%s: rc %d: %s", c->name, rc, err.msg);
        ahl_buf_release(&s.out);
    }
}

static int refuse(void *ctx, const char *type, struct ahl_err *err)
{
    (void)ctx;
    (void)type;
    return ahl_fail(err, AHL_ETOOBIG, "no more parts");
}

static void test_callback_errors_stop_and_stick(void **state)
{
    (void)state;
    struct ahl_multipart mp;
    struct ahl_err err;
    struct ahl_multipart_callbacks cb = {refuse, NULL, NULL};
    const char *body = "--b\r\n\r\nx\r\n--b--";
    assert_int_equal(ahl_multipart_init(&mp, "b", &cb, NULL, &err), 0);
    assert_int_equal(ahl_multipart_feed(&mp, (const uint8_t *)body, strlen(body), &err),
                     AHL_ETOOBIG);
    assert_string_equal(err.msg, "no more parts");
    assert_int_equal(ahl_multipart_feed(&mp, (const uint8_t *)"x", 1, &err), AHL_ETOOBIG);
    assert_int_equal(ahl_multipart_finish(&mp, &err), AHL_ETOOBIG);
}

static void test_media_types(void **state)
{
    (void)state;
    char v[80];
    const char *ct = "Multipart/Related ; type=\"application/dicom\"; BOUNDARY=abc; x=\"q\\\"t\"";
    assert_true(ahl_media_is(ct, "multipart/related"));
    assert_false(ahl_media_is(ct, "multipart/relate"));
    assert_true(ahl_media_is(" application/dicom", "application/dicom"));
    assert_false(ahl_media_is(NULL, "application/dicom"));
    assert_int_equal(ahl_media_param(ct, "type", v, sizeof v), 0);
    assert_string_equal(v, "application/dicom");
    assert_int_equal(ahl_media_param(ct, "boundary", v, sizeof v), 0);
    assert_string_equal(v, "abc");
    assert_int_equal(ahl_media_param(ct, "x", v, sizeof v), 0);
    assert_string_equal(v, "q\"t");
    assert_int_equal(ahl_media_param(ct, "start", v, sizeof v), AHL_ENOTFOUND);
    assert_int_equal(ahl_media_param("a/b; boundary=\"open", "boundary", v, sizeof v), AHL_EPARSE);
    assert_int_equal(ahl_media_param("a/b; boundary=0123456789", "boundary", v, 4), AHL_ETOOBIG);
    assert_int_equal(ahl_media_param("a/b", "boundary", v, sizeof v), AHL_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_bodies_any_split),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_callback_errors_stop_and_stick),
        cmocka_unit_test(test_media_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
