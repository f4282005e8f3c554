/* Unit tests for src/base: buffers, errors, codecs, whole reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/codec.h"
#include "base/err.h"
#include "base/fileio.h"

static void test_buf_cap_keeps_contents(void **state)
{
    (void)state;
    struct ahl_buf b;
    ahl_buf_init(&b, 8);
    assert_string_equal(b.data, "");
    assert_int_equal(ahl_buf_adds(&b, "abcde"), 0);
    assert_int_equal(ahl_buf_adds(&b, "fghi"), AHL_ETOOBIG);
    assert_string_equal(b.data, "abcde");
    assert_int_equal(ahl_buf_addf(&b, "%d", 123), 0);
    assert_string_equal(b.data, "abcde123");
    assert_int_equal(ahl_buf_addc(&b, 'x'), AHL_ETOOBIG);
    size_t len;
    char *p = ahl_buf_detach(&b, &len);
    assert_int_equal(len, 8);
    assert_string_equal(p, "abcde123");
    free(p);
    assert_string_equal(b.data, "");
    ahl_buf_release(&b);
}

static void test_buf_addf_long(void **state)
{
    (void)state;
    struct ahl_buf b;
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);
    char big[1000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(ahl_buf_addf(&b, "<%s>", big), 0);
    assert_int_equal(b.len, 1001);
    assert_int_equal(b.data[1000], '>');
    ahl_buf_release(&b);
}

struct b64_case {
    const char *raw, *enc;
};

static const struct b64_case b64_cases[] = {
    {"", ""},        {"f", "Zg=="},        {"fo", "Zm8="},
    {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"{\"a\":1}", "eyJhIjoxfQ=="},
};

static void test_base64_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof b64_cases / sizeof b64_cases[0]; i++) {
        struct ahl_buf b;
        ahl_buf_init(&b, 1024);
        assert_int_equal(
            ahl_base64_encode((const uint8_t *)b64_cases[i].raw, strlen(b64_cases[i].raw), &b), 0);
        assert_string_equal(b.data, b64_cases[i].enc);
        ahl_buf_reset(&b);
        assert_int_equal(ahl_base64_decode(b64_cases[i].enc, strlen(b64_cases[i].enc), &b), 0);
        assert_string_equal(b.data, b64_cases[i].raw);
        ahl_buf_release(&b);
    }
}

static void test_base64_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {"Zg=", "Z===", "Zm9v!A==", "Zg==Zg==", "Zm 9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ahl_buf b;
        ahl_buf_init(&b, 1024);
        assert_int_equal(ahl_base64_decode(bad[i], strlen(bad[i]), &b), AHL_EPARSE);
        assert_int_equal(b.len, 0);
        ahl_buf_release(&b);
    }
}

/* base64url as JOSE uses it: URL-safe alphabet, no padding, unused bits zero. */
static void test_base64url(void **state)
{
    (void)state;
    static const struct b64_case good[] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"\xfb\xff", "-_8"}, {"?>", "Pz4"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct ahl_buf b;
        ahl_buf_init(&b, 1024);
        assert_int_equal(ahl_base64url_decode(good[i].enc, strlen(good[i].enc), &b), 0);
        assert_int_equal(b.len, strlen(good[i].raw));
        assert_memory_equal(b.data, good[i].raw, b.len);
        ahl_buf_release(&b);
    }
    /* Padding, the standard alphabet, a lone digit, blanks, non-zero unused bits ("Zh" would
     * also decode to "f"). */
    static const char *bad[] = {"Zg==", "Zg=", "+/8", "Z", "Zm9vY", "Zm 9", "Zh", "Zm9", "Pz5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ahl_buf b;
        ahl_buf_init(&b, 1024);
        assert_int_equal(ahl_buf_adds(&b, "kept"), 0);
        assert_int_equal(ahl_base64url_decode(bad[i], strlen(bad[i]), &b), AHL_EPARSE);
        assert_string_equal(b.data, "kept");
        ahl_buf_release(&b);
    }
    /* The cap is exact: three bytes fit a buffer of three. */
    struct ahl_buf b;
    ahl_buf_init(&b, 3);
    assert_int_equal(ahl_base64url_decode("Zm9v", 4, &b), 0);
    assert_int_equal(ahl_base64url_decode("Zg", 2, &b), AHL_ETOOBIG);
    assert_int_equal(b.len, 3);
    ahl_buf_release(&b);
}

static void test_sha256_and_hex(void **state)
{
    (void)state;
    char hex[65];
    ahl_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    uint8_t d[32];
    assert_int_equal(ahl_hex_decode(hex, d, 32), 0);
    assert_int_equal(d[0], 0xba);
    assert_int_equal(ahl_hex_decode("zz", d, 1), AHL_EPARSE);
    assert_int_equal(ahl_crc32(0, "123456789", 9), 0xCBF43926u);
}

static void test_random_id_shape(void **state)
{
    (void)state;
    char a[33], b[33];
    assert_int_equal(ahl_random_id(a), 0);
    assert_int_equal(ahl_random_id(b), 0);
    assert_int_equal(strlen(a), 32);
    assert_true(strspn(a, "0123456789abcdef") == 32);
    assert_string_not_equal(a, b);
}

static void test_array_grow(void **state)
{
    (void)state;
    size_t cap = 0;
    int *v = ahl_array_grow(NULL, &cap, sizeof *v, 4);
    assert_non_null(v);
    assert_int_equal(cap, 4);
    for (int i = 0; i < 4; i++)
        v[i] = i;
    int *w = ahl_array_grow(v, &cap, sizeof *w, 4);
    assert_non_null(w);
    assert_int_equal(cap, 8);
    assert_int_equal(w[3], 3);
    size_t huge = ((size_t)-1) / 8;
    assert_null(ahl_array_grow(w, &huge, 16, 4));
    assert_int_equal(huge, ((size_t)-1) / 8);
    free(w);
}

static void test_err_fail(void **state)
{
    (void)state;
    struct ahl_err e;
    ahl_err_clear(&e);
    assert_int_equal(ahl_fail(&e, AHL_ENOTFOUND, "image set %s", "x"), AHL_ENOTFOUND);
    assert_int_equal(e.code, AHL_ENOTFOUND);
    assert_int_equal(e.detail, 0);
    assert_string_equal(e.msg, "image set x");
    assert_string_equal(ahl_err_name(AHL_ECONFLICT), "ECONFLICT");
    assert_int_equal(ahl_fail(NULL, AHL_EINVAL, "ignored"), AHL_EINVAL);
}

/* ahl_pread_all: all bytes at an offset; a file ending first; a bad descriptor. */
static void test_pread_all(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    int fd = fileno(f);
    assert_int_equal(ahl_write_all(fd, "0123456789", 10), 0);
    char buf[16] = {0};
    size_t got = 99;
    assert_int_equal(ahl_pread_all(fd, buf, 4, 3, &got), 0);
    assert_int_equal(got, 4);
    assert_memory_equal(buf, "3456", 4);
    assert_int_equal(ahl_pread_all(fd, buf, 8, 6, &got), AHL_EPARSE);
    assert_int_equal(got, 4);
    assert_memory_equal(buf, "6789", 4);
    assert_int_equal(ahl_pread_all(fd, buf, 0, 0, NULL), 0);
    fclose(f);
    assert_int_equal(ahl_pread_all(-1, buf, 1, 0, &got), AHL_EIO);
    assert_int_equal(errno, EBADF);
    assert_int_equal(got, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap_keeps_contents),
        cmocka_unit_test(test_buf_addf_long),
        cmocka_unit_test(test_base64_table),
        cmocka_unit_test(test_base64_rejects),
        cmocka_unit_test(test_sha256_and_hex),
        cmocka_unit_test(test_random_id_shape),
        cmocka_unit_test(test_err_fail),
        cmocka_unit_test(test_array_grow),
        cmocka_unit_test(test_base64url),
        cmocka_unit_test(test_pread_all),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
