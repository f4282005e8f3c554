/* Unit tests for src/api/dicomweb_cache.c: hits and misses, keys that differ in one part, the
 * byte budget and least-recently-used eviction, replacement, the gzip form, and
 * concurrent use (run under ThreadSanitizer in the tsan build). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "api/dicomweb_cache.h"
#include "base/err.h"

static int get(struct ahl__dwcache *c, const char *key, bool gz, char *out, size_t cap)
{
    struct ahl_buf b;
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);
    int rc = ahl__dwcache_get(c, key, gz, &b);
    if (rc == 1) {
        assert_true(b.len < cap);
        memcpy(out, b.data, b.len);
        out[b.len] = '\0';
    }
    ahl_buf_release(&b);
    return rc;
}

static void put(struct ahl__dwcache *c, const char *key, const char *plain, const char *gz)
{
    assert_int_equal(ahl__dwcache_put(c, key, plain, strlen(plain), gz, strlen(gz)), 0);
}

static void test_hit_miss_and_keys(void **state)
{
    (void)state;
    struct ahl__dwcache *c;
    char out[256];
    assert_int_equal(ahl__dwcache_new(1 << 20, &c), 0);
    assert_int_equal(get(c, "k", false, out, sizeof out), 0);
    /* Keys as dicomweb.c makes them: differing by Host, selection or version are distinct. */
    static const char *const keys[] = {
        "1|http://a:1/datastore/d|1.2|1.3||||s:1:ab",
        "1|http://b:1/datastore/d|1.2|1.3||||s:1:ab",
        "1|http://a:1/datastore/d|1.2|1.3||s|0|s:1:ab",
        "1|http://a:1/datastore/d|1.2|1.3||s|1|s:1:ab",
        "1|http://a:1/datastore/d|1.2|1.3||||s:2:cd",
        "2|http://a:1/datastore/d|1.2|1.3|1.4|||s:1:ab",
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char plain[32], gz[32];
        snprintf(plain, sizeof plain, "plain%zu", i);
        snprintf(gz, sizeof gz, "gz%zu", i);
        assert_int_equal(get(c, keys[i], false, out, sizeof out), 0);
        put(c, keys[i], plain, gz);
    }
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char want[32];
        snprintf(want, sizeof want, "plain%zu", i);
        assert_int_equal(get(c, keys[i], false, out, sizeof out), 1);
        assert_string_equal(out, want);
        snprintf(want, sizeof want, "gz%zu", i);
        assert_int_equal(get(c, keys[i], true, out, sizeof out), 1);
        assert_string_equal(out, want);
    }
    assert_int_equal(ahl__dwcache_count(c), 6);
    /* The same key again replaces the entry. */
    put(c, keys[0], "new", "newgz");
    assert_int_equal(get(c, keys[0], false, out, sizeof out), 1);
    assert_string_equal(out, "new");
    assert_int_equal(ahl__dwcache_count(c), 6);
    ahl__dwcache_free(c);
}

static void test_budget_evicts_least_recently_used(void **state)
{
    (void)state;
    struct ahl__dwcache *c;
    char out[8192], body[1001];
    memset(body, 'x', 1000);
    body[1000] = '\0';
    /* Each entry costs a little over 2,000 bytes: ten fit in 24,000, not eleven or twelve. */
    assert_int_equal(ahl__dwcache_new(24000, &c), 0);
    for (int i = 0; i < 10; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        put(c, key, body, body);
    }
    assert_int_equal(ahl__dwcache_count(c), 10);
    assert_true(ahl__dwcache_bytes(c) <= 24000);
    assert_int_equal(get(c, "k0", false, out, sizeof out), 1); /* k0 is now the most recent */
    put(c, "k10", body, body);
    put(c, "k11", body, body);
    assert_true(ahl__dwcache_bytes(c) <= 24000);
    assert_int_equal(get(c, "k0", false, out, sizeof out), 1);
    assert_int_equal(get(c, "k1", false, out, sizeof out), 0); /* the oldest went first */
    assert_int_equal(get(c, "k11", true, out, sizeof out), 1);
    /* An answer larger than a quarter of the budget is not kept. */
    char *big = calloc(1, 7000);
    assert_non_null(big);
    assert_int_equal(ahl__dwcache_put(c, "big", big, 7000, "", 0), 0);
    assert_int_equal(get(c, "big", false, out, sizeof out), 0);
    free(big);
    ahl__dwcache_free(c);
    /* A zero budget keeps nothing. */
    assert_int_equal(ahl__dwcache_new(0, &c), 0);
    put(c, "k", "v", "g");
    assert_int_equal(get(c, "k", false, out, sizeof out), 0);
    ahl__dwcache_free(c);
}

static void test_many_entries_grow_the_table(void **state)
{
    (void)state;
    struct ahl__dwcache *c;
    char out[64];
    assert_int_equal(ahl__dwcache_new(64 << 20, &c), 0);
    for (int i = 0; i < 5000; i++) {
        char key[16], v[16];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(v, sizeof v, "v%d", i);
        put(c, key, v, v);
    }
    assert_int_equal(ahl__dwcache_count(c), 5000);
    for (int i = 0; i < 5000; i += 7) {
        char key[16], v[16];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(v, sizeof v, "v%d", i);
        assert_int_equal(get(c, key, false, out, sizeof out), 1);
        assert_string_equal(out, v);
    }
    ahl__dwcache_free(c);
}

static void test_gzip_round_trip(void **state)
{
    (void)state;
    static const char text[] = "[{\"00080018\":{\"vr\":\"UI\",\"Value\":[\"1.2.3\"]}}]";
    struct ahl_buf gz;
    ahl_buf_init(&gz, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl__gzip(text, strlen(text), &gz), 0);
    assert_true(gz.len > 18);
    assert_int_equal((unsigned char)gz.data[0], 0x1f);
    assert_int_equal((unsigned char)gz.data[1], 0x8b);
    char out[256];
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)gz.data;
    z.avail_in = (uInt)gz.len;
    z.next_out = (Bytef *)out;
    z.avail_out = sizeof out;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, strlen(text));
    assert_memory_equal(out, text, strlen(text));
    inflateEnd(&z);
    ahl_buf_release(&gz);
}

struct worker_arg {
    struct ahl__dwcache *c;
    int id;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    struct ahl_buf b;
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);
    for (int i = 0; i < 2000; i++) {
        char key[32], v[48];
        snprintf(key, sizeof key, "k%d", (i * 7 + a->id) % 50);
        snprintf(v, sizeof v, "value-%s", key);
        if (ahl__dwcache_get(a->c, key, i & 1, &b) == 1) {
            if (b.len != strlen(v) || memcmp(b.data, v, b.len) != 0)
                return (void *)1;
        } else if (ahl__dwcache_put(a->c, key, v, strlen(v), v, strlen(v)) < 0) {
            return (void *)1;
        }
        ahl_buf_reset(&b);
    }
    ahl_buf_release(&b);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct ahl__dwcache *c;
    /* A small budget, so that threads evict what others read. */
    assert_int_equal(ahl__dwcache_new(2000, &c), 0);
    pthread_t t[4];
    struct worker_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct worker_arg){c, i};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
    assert_true(ahl__dwcache_bytes(c) <= 2000);
    ahl__dwcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss_and_keys),
        cmocka_unit_test(test_budget_evicts_least_recently_used),
        cmocka_unit_test(test_many_entries_grow_the_table),
        cmocka_unit_test(test_gzip_round_trip),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
