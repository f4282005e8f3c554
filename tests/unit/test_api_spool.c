/* Unit tests for response spools (src/api/spool.c): a small answer stays in the response's
 * buffer; a large one moves to an unlinked file in DATA_DIR/tmp, byte for byte, leaving no name
 * behind; a spool that cannot be written fails with a message naming the directory and leaves
 * the response empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "api/ops_internal.h"

static size_t entries(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void test_spool(void **state)
{
    (void)state;
    static struct ahl_api_service svc; /* large: not on the stack */
    struct ahl_api_resp resp = {.fd = -1};
    struct ahl__api_spool sp;
    struct ahl_err err;
    char root[64], tmp[80];
    uint8_t block[10000];
    snprintf(root, sizeof root, "/tmp/ahl-spool-XXXXXX");
    assert_non_null(mkdtemp(root));
    snprintf(tmp, sizeof tmp, "%s/tmp", root);
    assert_int_equal(mkdir(tmp, 0700), 0);
    snprintf(svc.data_dir, sizeof svc.data_dir, "%s", root);
    for (size_t i = 0; i < sizeof block; i++)
        block[i] = (uint8_t)(i * 7);
    ahl_buf_init(&resp.raw, AHL_BUF_UNLIMITED);

    /* Small: in memory. */
    ahl__api_spool_init(&sp, &svc, &resp);
    assert_int_equal(ahl__api_spool_write(&sp, block, 100), 0);
    assert_int_equal(ahl__api_spool_finish(&sp, 0, "test", &resp, &err), 0);
    assert_int_equal(resp.fd, -1);
    assert_int_equal(resp.raw.len, 100);
    ahl_buf_reset(&resp.raw);

    /* Large: a file holding every byte, with no name. */
    ahl__api_spool_init(&sp, &svc, &resp);
    for (int i = 0; i < 100; i++)
        assert_int_equal(ahl__api_spool_write(&sp, block, sizeof block), 0);
    assert_int_equal(ahl__api_spool_finish(&sp, 0, "test", &resp, &err), 0);
    assert_true(resp.fd >= 0);
    assert_int_equal(resp.fd_size, 100 * sizeof block);
    assert_int_equal(resp.raw.len, 0);
    assert_int_equal(entries(tmp), 0);
    uint8_t back[sizeof block];
    for (int i = 0; i < 100; i++) {
        assert_int_equal(read(resp.fd, back, sizeof back), (ssize_t)sizeof back);
        assert_memory_equal(back, block, sizeof block);
    }
    assert_int_equal(read(resp.fd, back, 1), 0);
    close(resp.fd);
    resp.fd = -1;

    /* A failure of the answer drops the spool, file and all. */
    ahl__api_spool_init(&sp, &svc, &resp);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ahl__api_spool_write(&sp, block, sizeof block), 0);
    assert_int_equal(ahl__api_spool_finish(&sp, AHL_ECORRUPT, "test", &resp, &err), AHL_ECORRUPT);
    assert_int_equal(resp.fd, -1);
    assert_int_equal(resp.raw.len, 0);

    /* Nowhere to spool: the message says where and why. */
    assert_int_equal(rmdir(tmp), 0);
    ahl__api_spool_init(&sp, &svc, &resp);
    int rc = 0;
    for (int i = 0; rc == 0 && i < 10; i++)
        rc = ahl__api_spool_write(&sp, block, sizeof block);
    assert_int_equal(rc, AHL_EIO);
    assert_int_equal(ahl__api_spool_finish(&sp, rc, "test", &resp, &err), AHL_EIO);
    assert_non_null(strstr(err.msg, "cannot spool the test response in"));
    assert_non_null(strstr(err.msg, tmp));
    assert_int_equal(resp.fd, -1);
    assert_int_equal(resp.raw.len, 0);

    ahl_buf_release(&resp.raw);
    assert_int_equal(rmdir(root), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
