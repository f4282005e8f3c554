/* Unit tests for src/json: number formatting, string escaping, key order, failure leaves the
 * buffer untouched, pretty layout. Expected real texts are Python's repr() of the same doubles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/err.h"
#include "json/json.h"

struct real_case {
    double d;
    const char *text;
};

static const struct real_case real_cases[] = {
    {0.1, "0.1"},
    {0.3, "0.3"},
    {1.5, "1.5"},
    {1.0, "1.0"},
    {100.0, "100.0"},
    {-0.0, "-0.0"},
    {0.0, "0.0"},
    {1e300, "1e+300"},
    {1e-300, "1e-300"},
    {5e-324, "5e-324"},
    {4.9406564584124654e-323, "5e-323"},
    {2.2250738585072014e-308, "2.2250738585072014e-308"},
    {1.7976931348623157e308, "1.7976931348623157e+308"},
    {123456789012345678.0, "1.2345678901234568e+17"},
    {1e16, "1e+16"},
    {1e15, "1000000000000000.0"},
    {1e-5, "1e-05"},
    {0.0001, "0.0001"},
    {2.5e-7, "2.5e-07"},
    {3.14159, "3.14159"},
    {-1.5e-10, "-1.5e-10"},
    {1e22, "1e+22"},
    {1e23, "1e+23"},
    {0.1 + 0.2, "0.30000000000000004"},
    {-2.625, "-2.625"},
    {1234.5678, "1234.5678"},
};

static void test_real_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof real_cases / sizeof real_cases[0]; i++) {
        struct ahl_buf b;
        ahl_buf_init(&b, 128);
        assert_int_equal(ahl_json_write_real(real_cases[i].d, &b), 0);
        assert_string_equal(b.data, real_cases[i].text);
        /* The text reads back to the same double, sign of zero included. */
        double back = strtod(b.data, NULL);
        assert_true(back == real_cases[i].d);
        assert_int_equal(!!signbit(back), !!signbit(real_cases[i].d));
        ahl_buf_release(&b);
    }
}

static void test_real_nonfinite_refused(void **state)
{
    (void)state;
    struct ahl_buf b;
    ahl_buf_init(&b, 128);
    assert_int_equal(ahl_buf_adds(&b, "x"), 0);
    assert_int_equal(ahl_json_write_real(NAN, &b), AHL_EINVAL);
    assert_int_equal(ahl_json_write_real(INFINITY, &b), AHL_EINVAL);
    assert_int_equal(ahl_json_write_real(-INFINITY, &b), AHL_EINVAL);
    assert_string_equal(b.data, "x");
    ahl_buf_release(&b);
}

struct string_case {
    const char *raw;
    size_t len;
    const char *text;
};

#define S(lit) lit, sizeof(lit) - 1

static const struct string_case string_cases[] = {
    {S(""), "\"\""},
    {S("plain"), "\"plain\""},
    {S("a\"b\\c"), "\"a\\\"b\\\\c\""},
    {S("/slash/"), "\"/slash/\""}, /* '/' is never escaped */
    {S("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\""},
    {S("\x01\x1f"), "\"\\u0001\\u001f\""},
    {S("nul\0inside"), "\"nul\\u0000inside\""},
    {S("\x7f"), "\"\x7f\""},
    {S("Yamada^Tarou=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e"),
     "\"Yamada^Tarou=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e\""},
    {S("\xf0\x9f\x98\x80 emoji"), "\"\xf0\x9f\x98\x80 emoji\""},
    {S("\xe2\x80\xa8"), "\"\xe2\x80\xa8\""}, /* U+2028 passes through */
};

static void test_string_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof string_cases / sizeof string_cases[0]; i++) {
        struct ahl_buf b;
        ahl_buf_init(&b, 256);
        assert_int_equal(ahl_json_write_string(string_cases[i].raw, string_cases[i].len, &b), 0);
        assert_string_equal(b.data, string_cases[i].text);
        ahl_buf_release(&b);
    }
}

struct doc_case {
    const char *in;  /* parsed with jansson */
    const char *out; /* what the writer must produce */
};

static const struct doc_case doc_cases[] = {
    {"{}", "{}"},
    {"[]", "[]"},
    {"null", "null"},
    {"[true, false, null]", "[true,false,null]"},
    {"123456789012345678", "123456789012345678"},
    {"-9223372036854775808", "-9223372036854775808"},
    {"[0.1, 1e300, -0.0, 5e-324, 1.0, 1E2]", "[0.1,1e+300,-0.0,5e-324,1.0,100.0]"},
    /* insertion order, not sorted */
    {"{\"z\": 1, \"a\": 2, \"m\": {\"y\": [], \"b\": {}}}",
     "{\"z\":1,\"a\":2,\"m\":{\"y\":[],\"b\":{}}}"},
    {"{\"k\\u0001ey\": \"v\\u0000\\u00e9\\ud83d\\ude00\"}",
     "{\"k\\u0001ey\":\"v\\u0000\xc3\xa9\xf0\x9f\x98\x80\"}"},
    {"{\"Patient\":{\"DICOM\":{\"PatientName\":\"A^B\",\"PatientBirthDate\":null}}}",
     "{\"Patient\":{\"DICOM\":{\"PatientName\":\"A^B\",\"PatientBirthDate\":null}}}"},
};

static void test_document_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof doc_cases / sizeof doc_cases[0]; i++) {
        json_error_t jerr;
        json_t *v = json_loads(doc_cases[i].in, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        assert_non_null(v);
        struct ahl_buf b;
        ahl_buf_init(&b, 4096);
        assert_int_equal(ahl_json_write(v, &b), 0);
        assert_string_equal(b.data, doc_cases[i].out);
        /* What we write, jansson reads back to an equal value. */
        json_t *back = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        assert_non_null(back);
        assert_true(json_equal(v, back));
        json_decref(back);
        json_decref(v);
        ahl_buf_release(&b);
    }
}

static void test_failure_leaves_buffer(void **state)
{
    (void)state;
    json_t *v = json_pack("{s:s, s:[i,i]}", "key", "a fairly long string value", "n", 1, 2);
    assert_non_null(v);
    struct ahl_buf b;
    ahl_buf_init(&b, 20);
    assert_int_equal(ahl_buf_adds(&b, "prefix"), 0);
    assert_int_equal(ahl_json_write(v, &b), AHL_ETOOBIG);
    assert_string_equal(b.data, "prefix");
    assert_int_equal(b.len, 6);
    assert_int_equal(ahl_json_write_pretty(v, 2, &b), AHL_ETOOBIG);
    assert_string_equal(b.data, "prefix");
    assert_int_equal(ahl_json_write(NULL, &b), AHL_EINVAL);
    json_decref(v);
    ahl_buf_release(&b);
}

static void test_depth_capped(void **state)
{
    (void)state;
    /* 3000 nested arrays built by hand (the parser would refuse them). */
    json_t *root = json_array();
    json_t *cur = root;
    for (int i = 0; i < 3000; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    struct ahl_buf b;
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl_json_write(root, &b), AHL_ETOOBIG);
    assert_int_equal(b.len, 0);
    json_decref(root);
    ahl_buf_release(&b);
}

static void test_pretty_layout(void **state)
{
    (void)state;
    json_t *v = json_loads("{\"a\":[1,0.5,{}],\"b\":{\"c\":null},\"e\":[]}", 0, NULL);
    assert_non_null(v);
    struct ahl_buf b;
    ahl_buf_init(&b, 4096);
    assert_int_equal(ahl_json_write_pretty(v, 2, &b), 0);
    assert_string_equal(b.data, "{\n"
                                "  \"a\": [\n"
                                "    1,\n"
                                "    0.5,\n"
                                "    {}\n"
                                "  ],\n"
                                "  \"b\": {\n"
                                "    \"c\": null\n"
                                "  },\n"
                                "  \"e\": []\n"
                                "}");
    assert_int_equal(ahl_json_write_pretty(v, 0, &b), AHL_EINVAL);
    json_decref(v);
    ahl_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_table),
        cmocka_unit_test(test_real_nonfinite_refused),
        cmocka_unit_test(test_string_table),
        cmocka_unit_test(test_document_table),
        cmocka_unit_test(test_failure_leaves_buffer),
        cmocka_unit_test(test_depth_capped),
        cmocka_unit_test(test_pretty_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
