/* Unit tests for src/base/text: strict percent-decoding and UTF-8 validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/err.h"
#include "base/text.h"

struct decode_case {
    const char *in;
    int rc;
    const char *out;
};

static const struct decode_case decode_cases[] = {
    {"", 0, ""},
    {"abc", 0, "abc"},
    {"a%20b", 0, "a b"},
    {"a+b", 0, "a+b"},
    {"%2f%2F%3a", 0, "//:"},
    {"%C3%A9", 0, "\xc3\xa9"},
    {"%", AHL_EPARSE, NULL},
    {"%4", AHL_EPARSE, NULL},
    {"a%4g", AHL_EPARSE, NULL},
    {"%%41", AHL_EPARSE, NULL},
};

static void test_percent_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof decode_cases / sizeof decode_cases[0]; i++) {
        const struct decode_case *c = &decode_cases[i];
        struct ahl_buf b;
        ahl_buf_init(&b, 1024);
        assert_int_equal(ahl_buf_adds(&b, "pre:"), 0);
        int rc = ahl_percent_decode(c->in, strlen(c->in), &b);
        if (rc != c->rc)
            fail_msg("'%s': rc %d, want %d", c->in, rc, c->rc);
        if (rc == 0) {
            assert_string_equal(b.data + 4, c->out);
        } else {
            assert_string_equal(b.data, "pre:"); /* unchanged on failure */
        }
        ahl_buf_release(&b);
    }
    /* The decoded bytes may hold a NUL; the length says so. */
    struct ahl_buf b;
    ahl_buf_init(&b, 1024);
    assert_int_equal(ahl_percent_decode("a%00b", 5, &b), 0);
    assert_int_equal(b.len, 3);
    ahl_buf_release(&b);
}

struct utf8_case {
    const char *s;
    size_t n;
    int valid;
};

static const struct utf8_case utf8_cases[] = {
    {"", 0, 1},
    {"plain", 5, 1},
    {"\xc3\xa9", 2, 1},
    {"\xe6\x97\xa5", 3, 1},
    {"\xf0\x9f\x98\x80", 4, 1},
    {"\xc3", 1, 0},             /* truncated */
    {"\xc3(", 2, 0},            /* bad continuation */
    {"\xc0\xaf", 2, 0},         /* overlong '/' */
    {"\xe0\x80\xaf", 3, 0},     /* overlong */
    {"\xed\xa0\x80", 3, 0},     /* surrogate */
    {"\xf4\x90\x80\x80", 4, 0}, /* above U+10FFFF */
    {"\xff", 1, 0},
    {"a\0b", 3, 1},
};

static void test_utf8(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
        if (ahl_utf8_valid(utf8_cases[i].s, utf8_cases[i].n) != utf8_cases[i].valid)
            fail_msg("case %zu: want %d", i, utf8_cases[i].valid);
    }
}

static void test_str_copy(void **state)
{
    (void)state;
    char d[6];
    assert_int_equal(ahl_str_copy(d, sizeof d, "abcde"), 0);
    assert_string_equal(d, "abcde");
    assert_int_equal(ahl_str_copy(d, sizeof d, NULL), 0);
    assert_string_equal(d, "");
    assert_int_equal(ahl_str_copy(d, sizeof d, "abcdef"), AHL_ETOOBIG);
    assert_string_equal(d, "abcde");
    /* "abc" + U+00E9 (2 bytes) + "x": the cut falls inside the character, which goes whole. */
    assert_int_equal(ahl_str_copy(d, sizeof d, "abcd\xc3\xa9"), AHL_ETOOBIG);
    assert_string_equal(d, "abcd");
    /* A 3-byte character ending exactly at the limit stays. */
    assert_int_equal(ahl_str_copy(d, sizeof d, "ab\xe2\x82\xacz"), AHL_ETOOBIG);
    assert_string_equal(d, "ab\xe2\x82\xac");
    ahl_str_copy_cut(d, sizeof d, "0123456789");
    assert_string_equal(d, "01234");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_str_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
