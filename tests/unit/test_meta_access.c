/* links: synth */
/* Storage tiers (meta/access.h): reads recorded in memory at a day's resolution, written in one
 * write transaction per flush, counted at once in this process's answers, only ever moving a
 * set's last access forward; the tier from the last access and the clock; a full table flushed
 * by the touching thread; the flusher thread (started with pthread_create by the engine) and the
 * flush at close. Runs on SQLite and PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "meta/access.h"
#include "meta_fixture.h"
#include "synth/synth.h"

#define DAY AHL_DAY_MS

static void create_set(struct fx *f, uint32_t seed, char id[AHL_ID_LEN + 1])
{
    json_t *doc = ahl_synth_doc(1, 2, seed);
    struct ahl_meta_info info;
    struct ahl_err err;
    struct ahl_meta_create_opts o = {0};
    assert_non_null(doc);
    if (ahl_meta_imageset_create(f->m, f->ds, doc, &o, &info, &err) < 0)
        fail_msg("create: %s", err.msg);
    json_decref(doc);
    memcpy(id, info.set.id, AHL_ID_LEN + 1);
}

static struct ahl_imageset_rec stored_set(struct fx *f, const char *id)
{
    struct ahl_store_tx *tx;
    struct ahl_imageset_rec set;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_imageset_get(tx, NULL, id, &set), 0);
    ahl_store_rollback(tx);
    return set;
}

static int64_t stored_search_access(struct fx *f, const char *id)
{
    struct ahl_store_tx *tx;
    struct ahl_search_row row;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_search_get(tx, id, &row), 0);
    ahl_store_rollback(tx);
    return row.last_accessed_at_ms;
}

/* Sets the stored last access of a set, row and search row (as if it was last read then). */
static void age_set(struct fx *f, const char *id, int64_t ms)
{
    struct ahl_store_tx *tx;
    struct ahl_imageset_rec set;
    struct ahl_search_row row;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_imageset_get(tx, NULL, id, &set), 0);
    set.last_accessed_at_ms = ms;
    assert_int_equal(ahl_store_imageset_put(tx, &set, false), 0);
    assert_int_equal(ahl_store_search_get(tx, id, &row), 0);
    row.last_accessed_at_ms = ms;
    assert_int_equal(ahl_store_search_put(tx, &row), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
}

/* Write transactions the SQLite store committed so far (UINT64_MAX on PostgreSQL, which has no
 * such counter: the flush count stands for it there). */
static uint64_t write_txs(struct fx *f)
{
    struct ahl_store_sqlite_stats st;
    return ahl_store_sqlite_stats(f->store, &st) == 0 ? st.write_txs : UINT64_MAX;
}

static struct ahl_meta_access_stats stats(struct fx *f)
{
    struct ahl_meta_access_stats s;
    ahl_meta_access_stats(f->m, &s);
    return s;
}

/* A new version records its own access, on the set's row and its search row, with no table. */
static void test_write_records_access(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    char id[AHL_ID_LEN + 1];
    int64_t before = ahl_now_ms();
    create_set(f, 1, id);
    struct ahl_imageset_rec set = stored_set(f, id);
    assert_true(set.last_accessed_at_ms >= before && set.last_accessed_at_ms <= ahl_now_ms());
    assert_int_equal(set.last_accessed_at_ms, set.updated_at_ms);
    assert_int_equal(stored_search_access(f, id), set.last_accessed_at_ms);
    assert_int_equal(stats(f).entries, 0);
    assert_int_equal(ahl_meta_storage_tier(f->m, set.last_accessed_at_ms),
                     AHL_TIER_FREQUENT_ACCESS);
    fx_free(f);
}

/* A thousand reads of one set: one entry, one flush, one write transaction; the reads after the
 * flush cost nothing at all. */
static void test_reads_batched(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    char id[AHL_ID_LEN + 1];
    struct ahl_err err;
    create_set(f, 2, id);
    int64_t old = ahl_now_ms() - 40 * DAY;
    age_set(f, id, old);
    assert_int_equal(ahl_meta_storage_tier(f->m, stored_set(f, id).last_accessed_at_ms),
                     AHL_TIER_ARCHIVE_INSTANT_ACCESS);

    uint64_t w0 = write_txs(f);
    int64_t t0 = ahl_now_ms();
    for (int i = 0; i < 1000; i++)
        ahl_meta_touch(f->m, id, old);
    struct ahl_meta_access_stats s = stats(f);
    assert_int_equal(s.recorded, 1);
    assert_int_equal(s.pending, 1);
    assert_int_equal(s.flushes, 0);
    assert_int_equal(write_txs(f), w0); /* no read wrote anything */
    /* Counted at once here, though not written yet. */
    int64_t seen = ahl_meta_last_access(f->m, id, old);
    assert_true(seen >= t0 && seen <= ahl_now_ms());
    assert_int_equal(ahl_meta_storage_tier(f->m, seen), AHL_TIER_FREQUENT_ACCESS);
    assert_int_equal(stored_set(f, id).last_accessed_at_ms, old);

    assert_int_equal(ahl_meta_access_flush(f->m, &err), 0);
    s = stats(f);
    assert_int_equal(s.flushes, 1);
    assert_int_equal(s.sets_written, 1);
    assert_int_equal(s.pending, 0);
    if (w0 != UINT64_MAX)
        assert_int_equal(write_txs(f), w0 + 1);
    assert_int_equal(stored_set(f, id).last_accessed_at_ms, seen);
    assert_int_equal(stored_search_access(f, id), seen);

    /* Read again today: by the stored value, or by the table when it was not read. */
    for (int i = 0; i < 1000; i++) {
        ahl_meta_touch(f->m, id, seen);
        ahl_meta_touch(f->m, id, -1);
    }
    assert_int_equal(ahl_meta_access_flush(f->m, &err), 0);
    s = stats(f);
    assert_int_equal(s.recorded, 1);
    assert_int_equal(s.flushes, 1);
    if (w0 != UINT64_MAX)
        assert_int_equal(write_txs(f), w0 + 1);
    fx_free(f);
}

/* The tier: ARCHIVE_INSTANT_ACCESS from archive_days on, whatever the days are set to. */
static void test_tier(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    int64_t now = ahl_now_ms();
    assert_int_equal(ahl_meta_storage_tier(f->m, now), AHL_TIER_FREQUENT_ACCESS);
    assert_int_equal(ahl_meta_storage_tier(f->m, now - 29 * DAY), AHL_TIER_FREQUENT_ACCESS);
    assert_int_equal(ahl_meta_storage_tier(f->m, now - 30 * DAY - 1000),
                     AHL_TIER_ARCHIVE_INSTANT_ACCESS);
    assert_string_equal(ahl_storage_tier_name(AHL_TIER_FREQUENT_ACCESS), "FREQUENT_ACCESS");
    assert_string_equal(ahl_storage_tier_name(AHL_TIER_ARCHIVE_INSTANT_ACCESS),
                        "ARCHIVE_INSTANT_ACCESS");
    fx_free(f);
    struct ahl_meta_opts o = {.archive_days = 2};
    f = fx_new(&o);
    assert_int_equal(ahl_meta_storage_tier(f->m, now - DAY), AHL_TIER_FREQUENT_ACCESS);
    assert_int_equal(ahl_meta_storage_tier(f->m, now - 2 * DAY - 1000),
                     AHL_TIER_ARCHIVE_INSTANT_ACCESS);
    fx_free(f);
}

/* A flush never moves a stored access back: another node (or a write) recorded a later one. A
 * deleted or unknown set is no error. */
static void test_only_forward(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    char id[AHL_ID_LEN + 1], gone[AHL_ID_LEN + 1];
    struct ahl_store_tx *tx;
    struct ahl_err err;
    create_set(f, 3, id);
    create_set(f, 4, gone);
    int64_t later = ahl_now_ms() + DAY;
    age_set(f, id, later);
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_imageset_touch(tx, id, later - 5000), 0);
    assert_int_equal(ahl_store_imageset_touch(tx, "0123456789abcdef0123456789abcdef", later), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    assert_int_equal(stored_set(f, id).last_accessed_at_ms, later);
    assert_int_equal(stored_search_access(f, id), later);

    /* A read recorded before the set was deleted: the flush skips it and succeeds. */
    age_set(f, gone, ahl_now_ms() - 3 * DAY);
    ahl_meta_touch(f->m, gone, -1);
    assert_int_equal(ahl_meta_imageset_delete(f->m, f->ds, gone, NULL, NULL, &err), 0);
    assert_int_equal(ahl_meta_access_flush(f->m, &err), 0);
    assert_int_equal(stats(f).pending, 0);
    fx_free(f);
}

/* A table full of accesses not yet written is flushed by the thread that needs room (one
 * transaction for them all); written entries make room for new sets without a flush. */
static void test_full_table(void **state)
{
    (void)state;
    struct ahl_meta_opts o = {.access_table_max = 4};
    struct fx *f = fx_new(&o);
    char id[8][AHL_ID_LEN + 1];
    int64_t old = ahl_now_ms() - 40 * DAY;
    for (int i = 0; i < 8; i++) {
        create_set(f, 10 + (uint32_t)i, id[i]);
        age_set(f, id[i], old);
    }
    for (int i = 0; i < 4; i++)
        ahl_meta_touch(f->m, id[i], old);
    struct ahl_meta_access_stats s = stats(f);
    assert_int_equal(s.pending, 4);
    assert_int_equal(s.flushes, 0);
    ahl_meta_touch(f->m, id[4], old); /* no room: the four are written first */
    s = stats(f);
    assert_int_equal(s.flushes, 1);
    assert_int_equal(s.sets_written, 4);
    assert_int_equal(s.pending, 1);
    assert_int_equal(s.entries, 4);
    assert_int_equal(s.dropped, 0);
    for (int i = 0; i < 4; i++)
        assert_true(stored_set(f, id[i]).last_accessed_at_ms > old);
    assert_true(ahl_meta_last_access(f->m, id[4], old) > old);
    /* Room from written entries: no flush. */
    ahl_meta_touch(f->m, id[5], old);
    ahl_meta_touch(f->m, id[6], old);
    s = stats(f);
    assert_int_equal(s.flushes, 1);
    assert_int_equal(s.pending, 3);
    assert_int_equal(s.entries, 4);
    fx_free(f);
}

/* The flusher thread writes within its period; closing the engine writes what is left. */
static void test_flusher_and_close(void **state)
{
    (void)state;
    struct ahl_meta_opts o = {.access_flush_ms = 50};
    struct fx *f = fx_new(&o);
    char a[AHL_ID_LEN + 1], b[AHL_ID_LEN + 1];
    int64_t old = ahl_now_ms() - 40 * DAY;
    create_set(f, 20, a);
    create_set(f, 21, b);
    age_set(f, a, old);
    age_set(f, b, old);
    ahl_meta_touch(f->m, a, old);
    for (int i = 0; i < 200 && stats(f).pending; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(stats(f).pending, 0);
    assert_true(stored_set(f, a).last_accessed_at_ms > old);
    fx_close(f);

    o.access_flush_ms = 0; /* no thread: only the close writes */
    assert_int_equal(fx_open(f, &o), 0);
    ahl_meta_touch(f->m, b, old);
    assert_int_equal(stored_set(f, b).last_accessed_at_ms, old);
    fx_close(f);
    assert_int_equal(fx_open(f, &o), 0);
    assert_true(stored_set(f, b).last_accessed_at_ms > old);
    assert_true(stored_search_access(f, b) > old);
    fx_free(f);
}

/* Two nodes (two engines on one store, as two servers on one database) record reads of one set;
 * the later read is written first: the earlier one, written after, leaves it. */
static void test_two_nodes(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_meta *other = NULL;
    char id[AHL_ID_LEN + 1];
    struct ahl_err err;
    int64_t old = ahl_now_ms() - 40 * DAY;
    assert_int_equal(ahl_meta_open(f->store, NULL, &other), 0);
    create_set(f, 30, id);
    age_set(f, id, old);
    ahl_meta_touch(f->m, id, old);
    int64_t first = ahl_meta_last_access(f->m, id, old);
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ahl_meta_touch(other, id, old);
    int64_t second = ahl_meta_last_access(other, id, old);
    assert_true(second > first);
    assert_int_equal(ahl_meta_access_flush(other, &err), 0);
    assert_int_equal(ahl_meta_access_flush(f->m, &err), 0);
    assert_int_equal(stored_set(f, id).last_accessed_at_ms, second);
    assert_int_equal(stored_search_access(f, id), second);
    ahl_meta_close(other);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_records_access),
        cmocka_unit_test(test_reads_batched),
        cmocka_unit_test(test_tier),
        cmocka_unit_test(test_only_forward),
        cmocka_unit_test(test_full_table),
        cmocka_unit_test(test_flusher_and_close),
        cmocka_unit_test(test_two_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
