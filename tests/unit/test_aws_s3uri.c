/* Unit tests of s3:// URIs, S3's bucket naming rules and the location check every S3 request
 * makes first (aws/s3uri.c), table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "aws/s3.h"

struct uri_case {
    const char *uri;
    int rc;
    const char *bucket, *prefix; /* on success */
    const char *msg_part;        /* on failure */
};

static const struct uri_case uri_cases[] = {
    {"s3://bkt/in/", 0, "bkt", "in/", NULL},
    {"s3://bkt", 0, "bkt", "", NULL},
    {"s3://bkt/", 0, "bkt", "", NULL},
    {"s3://my.bucket-1/a b/c\xc3\xa9/", 0, "my.bucket-1", "a b/c\xc3\xa9/", NULL},
    {"s3://bkt/../x", 0, "bkt", "../x", NULL}, /* S3 allows it; local buckets refuse it later */
    {"http://bkt/in/", AHL_EPARSE, NULL, NULL, "must start with s3://"},
    {"s3:/bkt/in/", AHL_EPARSE, NULL, NULL, "must start with s3://"},
    {"s3://", AHL_EPARSE, NULL, NULL, "3 to 63"},
    {"s3://ab/", AHL_EPARSE, NULL, NULL, "3 to 63"},
    {"s3://Bucket/", AHL_EPARSE, NULL, NULL, "lower-case"},
    {"s3://bk_t/", AHL_EPARSE, NULL, NULL, "lower-case letters, digits"},
    {"s3://-bkt/", AHL_EPARSE, NULL, NULL, "begin and end"},
    {"s3://bkt./", AHL_EPARSE, NULL, NULL, "begin and end"},
    {"s3://b..t/", AHL_EPARSE, NULL, NULL, "adjacent periods"},
    {"s3://192.168.5.4/", AHL_EPARSE, NULL, NULL, "IP address"},
    {"s3://xn--bkt/", AHL_EPARSE, NULL, NULL, "reserves"},
    {"s3://bkt/a\x01"
     "b",
     AHL_EPARSE, NULL, NULL, "control character (0x01) at byte 1"},
    {"s3://bkt/\xc3(", AHL_EPARSE, NULL, NULL, "not valid UTF-8"},
    {"s3://bkt/\xed\xa0\x80", AHL_EPARSE, NULL, NULL, "not valid UTF-8"},
    {"s3://bkt/\xc0\xaf", AHL_EPARSE, NULL, NULL, "not valid UTF-8"},
    {"s3://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/", AHL_EPARSE, NULL,
     NULL, "3 to 63"},
};

static void test_uri_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof uri_cases / sizeof uri_cases[0]; i++) {
        const struct uri_case *c = &uri_cases[i];
        struct ahl_s3_uri u;
        struct ahl_err err;
        ahl_err_clear(&err);
        int rc = ahl_s3_uri_parse(c->uri, &u, &err);
        if (rc != c->rc)
            fail_msg("'%s': rc %d, want %d (%s)", c->uri, rc, c->rc, err.msg);
        if (rc == 0) {
            assert_string_equal(u.bucket, c->bucket);
            assert_string_equal(u.prefix, c->prefix);
        } else {
            assert_int_equal(err.code, rc);
            if (!strstr(err.msg, c->msg_part))
                fail_msg("'%s': message '%s' lacks '%s'", c->uri, err.msg, c->msg_part);
        }
    }
    /* Longer than the model's 1024 characters. */
    char longuri[1100];
    memset(longuri, 'a', sizeof longuri - 1);
    memcpy(longuri, "s3://bkt/", 9);
    longuri[sizeof longuri - 1] = '\0';
    struct ahl_s3_uri u;
    assert_int_equal(ahl_s3_uri_parse(longuri, &u, NULL), AHL_EPARSE);
}

static void test_location_check(void **state)
{
    (void)state;
    char key[AHL_S3_MAX_KEY + 2];
    memset(key, 'k', sizeof key - 1);
    key[AHL_S3_MAX_KEY] = '\0';
    struct ahl_err err;
    assert_int_equal(ahl_s3_location_check("bkt", NULL, &err), 0);
    assert_int_equal(ahl_s3_location_check("bkt", "a", &err), 0);
    assert_int_equal(ahl_s3_location_check("bkt", key, &err), 0);
    key[AHL_S3_MAX_KEY] = 'k';
    key[AHL_S3_MAX_KEY + 1] = '\0';
    assert_int_equal(ahl_s3_location_check("bkt", key, &err), AHL_EINVAL);
    assert_int_equal(ahl_s3_location_check("bkt", "", &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "1 to 1024 bytes"));
    /* A name that would change the request's path never passes. */
    assert_int_equal(ahl_s3_location_check("bkt/x", "k", &err), AHL_EPARSE);
    assert_int_equal(ahl_s3_location_check("bkt?x", NULL, &err), AHL_EPARSE);
    assert_int_equal(ahl_s3_location_check("", NULL, NULL), AHL_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_table),
        cmocka_unit_test(test_location_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
