/* The SQLite backend through the storage interface: records round-trip, paging, tags, the
 * image-set compare-and-set, INSERT OR IGNORE chunks, job listing newest first, a reopened
 * database keeping its schema version and data, and a WAL that a long reader made grow being
 * truncated once the reader is gone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#define AHL_FIXTURE_STORE_ONLY 1
#include "meta_fixture.h"

static int count_ds(void *ctx, const struct ahl_datastore_rec *r)
{
    (void)r;
    (*(int *)ctx)++;
    return 0;
}

static int last_ds(void *ctx, const struct ahl_datastore_rec *r)
{
    memcpy(ctx, r->id, AHL_ID_LEN + 1);
    return 0;
}

static int tag_concat(void *ctx, const char *k, const char *v)
{
    char *s = ctx;
    size_t n = strlen(s);
    snprintf(s + n, 256 - n, "%s=%s;", k, v);
    return 0;
}

static int job_order(void *ctx, const struct ahl_job_rec *r)
{
    char *s = ctx;
    size_t n = strlen(s);
    snprintf(s + n, 256 - n, "%s;", r->name);
    return 0;
}

static void test_records(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    /* Data stores: 5 more, paged 2 at a time. */
    for (int i = 0; i < 5; i++) {
        struct ahl_datastore_rec d;
        memset(&d, 0, sizeof d);
        snprintf(d.id, sizeof d.id, "%032x", 100 + i);
        snprintf(d.name, sizeof d.name, "ds%d", i);
        snprintf(d.status, sizeof d.status, i % 2 ? "DELETED" : "ACTIVE");
        snprintf(d.kms_key_arn, sizeof d.kms_key_arn, "arn:aws:kms:us-east-1:123456789012:key/x");
        assert_int_equal(ahl_store_datastore_put(tx, &d, true), 0);
        assert_int_equal(ahl_store_datastore_put(tx, &d, true), AHL_ECONFLICT);
    }
    int n = 0;
    char after[AHL_ID_LEN + 1] = "";
    assert_int_equal(ahl_store_datastore_list(tx, NULL, "", 2, last_ds, after), 0);
    assert_int_equal(ahl_store_datastore_list(tx, NULL, after, 100, count_ds, &n), 0);
    assert_int_equal(n, 4);
    n = 0;
    assert_int_equal(ahl_store_datastore_list(tx, "ACTIVE", NULL, 100, count_ds, &n), 0);
    assert_int_equal(n, 4); /* the fixture's and three of the five */
    struct ahl_datastore_rec got;
    assert_int_equal(ahl_store_datastore_get(tx, "00000000000000000000000000000066", &got), 0);
    assert_string_equal(got.name, "ds2");
    assert_string_equal(got.kms_key_arn, "arn:aws:kms:us-east-1:123456789012:key/x");
    assert_int_equal(ahl_store_datastore_delete(tx, got.id), 0);
    assert_int_equal(ahl_store_datastore_get(tx, got.id, &got), AHL_ENOTFOUND);

    /* Tags. */
    char tags[256] = "";
    assert_int_equal(ahl_store_tag_put(tx, "arn:x", "b", "2"), 0);
    assert_int_equal(ahl_store_tag_put(tx, "arn:x", "a", "1"), 0);
    assert_int_equal(ahl_store_tag_put(tx, "arn:x", "b", "3"), 0);
    assert_int_equal(ahl_store_tag_put(tx, "arn:y", "c", ""), 0);
    assert_int_equal(ahl_store_tag_list(tx, "arn:x", tag_concat, tags), 0);
    assert_string_equal(tags, "a=1;b=3;");
    assert_int_equal(ahl_store_tag_delete(tx, "arn:x", "a"), 0);
    assert_int_equal(ahl_store_tag_delete_all(tx, "arn:y"), 0);
    tags[0] = '\0';
    assert_int_equal(ahl_store_tag_list(tx, "arn:y", tag_concat, tags), 0);
    assert_string_equal(tags, "");

    /* Image sets: compare-and-set on the latest version. */
    struct ahl_imageset_rec s;
    memset(&s, 0, sizeof s);
    snprintf(s.id, sizeof s.id, "%032x", 9);
    memcpy(s.datastore_id, f->ds, sizeof s.datastore_id);
    snprintf(s.state, sizeof s.state, "ACTIVE");
    snprintf(s.workflow_status, sizeof s.workflow_status, "CREATED");
    s.latest_version = 1;
    assert_int_equal(ahl_store_imageset_put(tx, &s, true), 0);
    s.latest_version = 2;
    assert_int_equal(ahl_store_imageset_advance(tx, &s, 1), 0);
    s.latest_version = 3;
    assert_int_equal(ahl_store_imageset_advance(tx, &s, 1), AHL_ECONFLICT);
    struct ahl_imageset_rec g;
    assert_int_equal(ahl_store_imageset_get(tx, f->ds, s.id, &g), 0);
    assert_int_equal(g.latest_version, 2);
    assert_int_equal(ahl_store_imageset_get(tx, "ffffffffffffffffffffffffffffffff", s.id, &g),
                     AHL_ENOTFOUND);
    uint64_t cnt;
    assert_int_equal(ahl_store_datastore_count_imagesets(tx, f->ds, &cnt), 0);
    assert_int_equal(cnt, 1);

    /* Chunks: the same hash twice is stored once. */
    struct ahl_chunk c = {.kind = AHL_CHUNK_MAP, .ulen = 3, .crc = 7, .data = "abc", .len = 3};
    memset(c.hash, 0xab, sizeof c.hash);
    assert_int_equal(ahl_store_chunk_put(tx, &c), 0);
    c.data = "xyz";
    assert_int_equal(ahl_store_chunk_put(tx, &c), 0);
    struct ahl_buf data;
    struct ahl_chunk out;
    ahl_buf_init(&data, 1024);
    assert_int_equal(ahl_store_chunk_get(tx, c.hash, &out, &data), 0);
    assert_memory_equal(out.data, "abc", 3);
    assert_int_equal(out.crc, 7);
    ahl_buf_release(&data);

    /* Jobs, newest first, paged by id. */
    for (int i = 0; i < 3; i++) {
        struct ahl_job_rec j;
        memset(&j, 0, sizeof j);
        snprintf(j.id, sizeof j.id, "job%d", i);
        memcpy(j.datastore_id, f->ds, sizeof j.datastore_id);
        snprintf(j.name, sizeof j.name, "n%d", i);
        snprintf(j.status, sizeof j.status, i == 1 ? "COMPLETED" : "SUBMITTED");
        j.submitted_at_ms = 1000 + i;
        assert_int_equal(ahl_store_job_put(tx, &j, true), 0);
    }
    char order[256] = "";
    assert_int_equal(ahl_store_job_list(tx, f->ds, NULL, NULL, 10, job_order, order), 0);
    assert_string_equal(order, "n2;n1;n0;");
    order[0] = '\0';
    assert_int_equal(ahl_store_job_list(tx, f->ds, NULL, "job2", 10, job_order, order), 0);
    assert_string_equal(order, "n1;n0;");
    order[0] = '\0';
    assert_int_equal(ahl_store_job_list(tx, f->ds, "SUBMITTED", NULL, 10, job_order, order), 0);
    assert_string_equal(order, "n2;n0;");
    assert_int_equal(ahl_store_commit(tx), 0);

    /* Rolled-back writes vanish; committed ones survive a reopen. */
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_tag_put(tx, "arn:z", "k", "v"), 0);
    ahl_store_rollback(tx);
    fx_close(f);
    assert_int_equal(fx_open(f, NULL), 0);
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    tags[0] = '\0';
    assert_int_equal(ahl_store_tag_list(tx, "arn:z", tag_concat, tags), 0);
    assert_string_equal(tags, "");
    assert_int_equal(ahl_store_tag_list(tx, "arn:x", tag_concat, tags), 0);
    assert_string_equal(tags, "b=3;");
    assert_int_equal(ahl_store_imageset_get(tx, NULL, s.id, &g), 0);
    assert_int_equal(g.latest_version, 2);
    ahl_store_rollback(tx);
    fx_free(f);
}

/* Writes one chunk of 100 KB of distinct bytes (25 WAL frames), named by n. */
static void put_big_chunk(struct ahl_store *store, uint32_t n)
{
    static uint8_t data[100 * 1024];
    for (size_t i = 0; i < sizeof data; i += 4) {
        uint32_t x = (n * 2654435761u) ^ (uint32_t)(i * 40503u);
        memcpy(data + i, &x, 4);
    }
    struct ahl_chunk c = {.kind = AHL_CHUNK_MAP, .data = data, .len = sizeof data};
    memcpy(c.hash, &n, sizeof n);
    c.hash[31] = 0xAB;
    c.ulen = sizeof data;
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(store, true, &tx), 0);
    assert_int_equal(ahl_store_chunk_put(tx, &c), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
}

static off_t wal_size(const struct fx *f)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s-wal", f->dir, AHL_STORE_SQLITE_FILE);
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* A reader held open while ~48 MB are written keeps every checkpoint from finishing, so the WAL
 * grows past its bound; once the reader is gone, the next checkpoint must truncate the WAL (a
 * restart alone would leave the file at journal_size_limit, 64 MB). */
static void test_wal_truncated_after_long_reader(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store_tx *rd;
    struct ahl_datastore_rec d;
    assert_int_equal(ahl_store_begin(f->store, false, &rd), 0);
    assert_int_equal(ahl_store_datastore_get(rd, f->ds, &d), 0); /* takes the snapshot */
    uint32_t n = 0;
    for (; n < 480; n++)
        put_big_chunk(f->store, n);
    assert_true(wal_size(f) > 40 * 1024 * 1024);
    ahl_store_rollback(rd);
    /* Writes go on; within 40 MB more the WAL must have been truncated. */
    off_t least = wal_size(f);
    for (uint32_t more = 0; more < 400 && least >= 8 * 1024 * 1024; more++) {
        put_big_chunk(f->store, n++);
        off_t now = wal_size(f);
        if (now < least)
            least = now;
    }
    assert_true(least < 8 * 1024 * 1024);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_wal_truncated_after_long_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
