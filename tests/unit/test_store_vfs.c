/* The SQLite backend's VFS (src/store/sqlite_vfs.c): a commit's WAL frames reach the file in one
 * write. Checked through the process's count of write system calls (/proc/self/io, syscw): a
 * commit of some twenty pages takes at most two writes, where SQLite alone takes two a page;
 * a commit larger than the buffer (several writes) commits whole; every commit is read back by
 * another connection at once, and after the store is closed and opened again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define AHL_FIXTURE_STORE_ONLY 1
#define AHL_TEST_SQLITE_ONLY 1 /* the SQLite backend's own machinery */
#include "meta_fixture.h"

#define ARN "arn:aws:medical-imaging:us-east-1:123456789012:datastore/vfs"

/* Write system calls of this process so far. */
static unsigned long long syscw(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    unsigned long long v = 0;
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "syscw: %llu", &v) == 1)
            break;
    fclose(f);
    return v;
}

/* Commits n tags with ~1.5 KB values (keys prefix0 ..), two or three to a page. */
static void put_tags(struct ahl_store *s, const char *prefix, int n)
{
    char key[32], value[1500];
    struct ahl_store_tx *tx;
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    assert_int_equal(ahl_store_begin(s, true, &tx), 0);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s%d", prefix, i);
        value[0] = (char)('a' + i % 26);
        assert_int_equal(ahl_store_tag_put(tx, ARN, key, value), 0);
    }
    assert_int_equal(ahl_store_commit(tx), 0);
}

struct count {
    const char *prefix;
    int n;
};

static int count_tag(void *ctx, const char *k, const char *v)
{
    struct count *c = ctx;
    if (!strncmp(k, c->prefix, strlen(c->prefix)) && strlen(v) == 1499)
        c->n++;
    return 0;
}

static int tags(struct ahl_store *s, const char *prefix)
{
    struct count c = {prefix, 0};
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(s, false, &tx), 0);
    assert_int_equal(ahl_store_tag_list(tx, ARN, count_tag, &c), 0);
    ahl_store_rollback(tx);
    return c.n;
}

static void test_commit_is_one_write(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    put_tags(f->store, "warm", 4); /* the WAL exists and has its header */
    struct ahl_store_sqlite_stats s0, s1;
    assert_int_equal(ahl_store_sqlite_stats(f->store, &s0), 0);
    unsigned long long w0 = syscw();
    put_tags(f->store, "k", 20);
    unsigned long long writes = syscw() - w0;
    assert_int_equal(ahl_store_sqlite_stats(f->store, &s1), 0);
    uint64_t pages = s1.wal_frames - s0.wal_frames;
    assert_true(pages >= 10 && pages <= 31); /* it fits the buffer */
    assert_true(writes <= 2);
    assert_int_equal(tags(f->store, "k"), 20);
    fx_free(f);
}

static void test_large_commit(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store_sqlite_stats s0, s1;
    assert_int_equal(ahl_store_sqlite_stats(f->store, &s0), 0);
    unsigned long long w0 = syscw();
    put_tags(f->store, "big", 1000);
    unsigned long long writes = syscw() - w0;
    assert_int_equal(ahl_store_sqlite_stats(f->store, &s1), 0);
    uint64_t pages = s1.wal_frames - s0.wal_frames;
    assert_true(pages > 300);
    assert_true(writes < pages / 10); /* 31 pages a write */
    assert_int_equal(tags(f->store, "big"), 1000);
    put_tags(f->store, "after", 3);
    fx_close(f);
    assert_int_equal(fx_open(f, NULL), 0);
    assert_int_equal(tags(f->store, "big"), 1000);
    assert_int_equal(tags(f->store, "after"), 3);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_is_one_write),
        cmocka_unit_test(test_large_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
