/* links: synth */
/* GetImageSetMetadata's gzip body from group segments (src/meta/gzdoc.c):
 *   - every version's body inflates to exactly its reference serialisation, with the group cache
 *     on, off, and too small to hold a group;
 *   - the body is within 1.5 times gzip -6 of the same JSON on synthetic sets of one series and
 *     of several; a series' first group is primed across the series boundary;
 *   - a second read compresses nothing; after an update of one instance only its leaf's group
 *     and the next one are compressed again, and a Patient update compresses none; older
 *     versions are still served from the cache;
 *   - the cache stays within its budget;
 *   - readers of several versions racing updates and each other each get their version's
 *     document, and readers of one uncached version build each group once between them (run
 *     under ThreadSanitizer with the threaded tests). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "meta_fixture.h"
#include "synth/synth.h"

#define SEED 9

static void create_set(struct fx *f, unsigned nseries, unsigned ninst, char id[AHL_ID_LEN + 1])
{
    json_t *doc = ahl_synth_doc(nseries, ninst, SEED);
    struct ahl_meta_info info;
    struct ahl_err err;
    assert_non_null(doc);
    int rc = ahl_meta_imageset_create(f->m, f->ds, doc, NULL, &info, &err);
    if (rc < 0)
        fail_msg("create: %s", err.msg);
    json_decref(doc);
    memcpy(id, info.set.id, AHL_ID_LEN + 1);
}

/* The gzip body of a version; its length in *gz_len. Checks it against the reference. */
static void check_version(struct fx *f, const char *id, uint64_t v, size_t *gz_len,
                          size_t *json_len)
{
    struct ahl_buf ref, gz, text;
    struct ahl_err err;
    ahl_buf_init(&ref, AHL_BUF_UNLIMITED);
    ahl_buf_init(&gz, AHL_BUF_UNLIMITED);
    ahl_buf_init(&text, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl_meta_metadata_json(f->m, f->ds, id, v, &ref, &err), 0);
    assert_int_equal(ahl_meta_metadata_gzip(f->m, f->ds, id, v, fx_collect, &gz, &err), 0);
    assert_int_equal(fx_gunzip(&gz, &text), 0);
    assert_int_equal(text.len, ref.len);
    assert_memory_equal(text.data, ref.data, ref.len);
    if (gz_len)
        *gz_len = gz.len;
    if (json_len)
        *json_len = ref.len;
    ahl_buf_release(&ref);
    ahl_buf_release(&gz);
    ahl_buf_release(&text);
}

static void update(struct fx *f, const char *id, uint64_t latest, const char *blob)
{
    struct ahl_meta_update u = {
        .latest_version = latest, .updatable = blob, .updatable_len = strlen(blob)};
    struct ahl_err err;
    int rc = ahl_meta_update(f->m, f->ds, id, &u, NULL, &err);
    if (rc < 0)
        fail_msg("update: %s", err.msg);
}

/* An update of instance i of series 0's ImageComments. */
static void update_instance(struct fx *f, const char *id, uint64_t latest, unsigned i,
                            const char *value)
{
    char series[64], inst[64], blob[512];
    ahl_synth_series_uid(SEED, 0, series);
    ahl_synth_instance_uid(SEED, 0, i, inst);
    snprintf(blob, sizeof blob,
             "{\"SchemaVersion\":1.1,\"Study\":{\"Series\":{\"%s\":{\"Instances\":{\"%s\":"
             "{\"DICOM\":{\"ImageComments\":\"%s\"}}}}}}}",
             series, inst, value);
    update(f, id, latest, blob);
}

static size_t gzip6_len(const struct ahl_buf *text)
{
    uLongf n = compressBound((uLong)text->len);
    Bytef *p = malloc(n);
    assert_non_null(p);
    assert_int_equal(compress2(p, &n, (const Bytef *)text->data, (uLong)text->len, 6), Z_OK);
    free(p);
    return (size_t)n + 18 - 6; /* a gzip wrapper instead of zlib's */
}

static void test_versions_and_reuse(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_meta_gzip_stats s0, s1, s2, s3, s4;
    char id[AHL_ID_LEN + 1];
    assert_non_null(f);
    create_set(f, 1, 320, id); /* 10 leaves of 32 */
    ahl_meta_gzip_stats(f->m, &s0);
    assert_int_equal(s0.groups_built, 0);
    check_version(f, id, 1, NULL, NULL);
    ahl_meta_gzip_stats(f->m, &s1);
    assert_int_equal(s1.groups_built, 10);
    check_version(f, id, 1, NULL, NULL);
    ahl_meta_gzip_stats(f->m, &s2);
    assert_int_equal(s2.groups_built, 10);
    assert_int_equal(s2.groups_reused - s1.groups_reused, 10);
    /* Keys are in byte order: instance 100 (UID ending .101) is in the first leaf; it and the
     * second (whose dictionary it is) change. */
    update_instance(f, id, 1, 100, "CHANGED");
    check_version(f, id, 2, NULL, NULL);
    ahl_meta_gzip_stats(f->m, &s3);
    assert_int_equal(s3.groups_built - s2.groups_built, 2);
    /* Instance 98 (.99) is in the last leaf, which has no successor: one group. A Patient
     * update: none. */
    update_instance(f, id, 2, 98, "LAST");
    update(f, id, 3, "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":\"X^Y\"}}}");
    check_version(f, id, 4, NULL, NULL);
    ahl_meta_gzip_stats(f->m, &s4);
    assert_int_equal(s4.groups_built - s3.groups_built, 1);
    /* Every older version is still served, from the cache. */
    for (uint64_t v = 1; v <= 4; v++)
        check_version(f, id, v, NULL, NULL);
    ahl_meta_gzip_stats(f->m, &s1);
    assert_int_equal(s1.groups_built, s4.groups_built); /* version 3's leaves are version 4's */
    fx_free(f);
}

static void test_size_within_gzip6(void **state)
{
    (void)state;
    /* One series (what an import makes), and several of tens of instances (copies merged). */
    static const unsigned shapes[][2] = {{2, 500}, {20, 40}, {5, 200}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        struct fx *f = fx_new(NULL);
        char id[AHL_ID_LEN + 1];
        struct ahl_buf ref;
        struct ahl_err err;
        size_t gz, json;
        assert_non_null(f);
        create_set(f, shapes[k][0], shapes[k][1], id);
        check_version(f, id, 1, &gz, &json);
        ahl_buf_init(&ref, AHL_BUF_UNLIMITED);
        assert_int_equal(ahl_meta_metadata_json(f->m, f->ds, id, 1, &ref, &err), 0);
        size_t g6 = gzip6_len(&ref);
        ahl_buf_release(&ref);
        print_message("%u series x %u: json %zu, served %zu, gzip -6 %zu (%.2fx)\n", shapes[k][0],
                      shapes[k][1], json, gz, g6, (double)gz / (double)g6);
        assert_true(gz * 2 <= g6 * 3);
        /* The warm read is the same size: it splices the same segments. */
        size_t again;
        check_version(f, id, 1, &again, NULL);
        assert_int_equal(again, gz);
        fx_free(f);
    }
}

/* A series' first leaf is primed with the previous series' last leaf and its own header: a
 * change of a series' attributes rebuilds that one group, the first series' none. */
static void test_series_chain(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_meta_gzip_stats s0, s1, s2;
    char id[AHL_ID_LEN + 1], series[64], blob[512];
    assert_non_null(f);
    create_set(f, 3, 40, id); /* two leaves a series */
    check_version(f, id, 1, NULL, NULL);
    ahl_meta_gzip_stats(f->m, &s0);
    assert_int_equal(s0.groups_built, 6);
    ahl_synth_series_uid(SEED, 1, series);
    snprintf(blob, sizeof blob,
             "{\"SchemaVersion\":1.1,\"Study\":{\"Series\":{\"%s\":{\"DICOM\":"
             "{\"SeriesDescription\":\"CHAINED\"}}}}}",
             series);
    update(f, id, 1, blob);
    check_version(f, id, 2, NULL, NULL);
    ahl_meta_gzip_stats(f->m, &s1);
    assert_int_equal(s1.groups_built - s0.groups_built, 1);
    ahl_synth_series_uid(SEED, 0, series);
    snprintf(blob, sizeof blob,
             "{\"SchemaVersion\":1.1,\"Study\":{\"Series\":{\"%s\":{\"DICOM\":"
             "{\"SeriesDescription\":\"FIRST\"}}}}}",
             series);
    update(f, id, 2, blob);
    check_version(f, id, 3, NULL, NULL);
    ahl_meta_gzip_stats(f->m, &s2);
    assert_int_equal(s2.groups_built, s1.groups_built);
    for (uint64_t v = 1; v <= 3; v++)
        check_version(f, id, v, NULL, NULL);
    fx_free(f);
}

static void test_cache_off_and_small(void **state)
{
    (void)state;
    /* No cache: the chunks' own segments, as before groups; larger, never compressed per read. */
    struct ahl_meta_opts off = {.gzip_cache_bytes = AHL_META_NO_GZIP_CACHE};
    struct fx *f = fx_new(&off);
    struct ahl_meta_gzip_stats s;
    char id[AHL_ID_LEN + 1];
    size_t gz_off, gz_small;
    assert_non_null(f);
    create_set(f, 2, 96, id);
    update_instance(f, id, 1, 40, "OFF");
    check_version(f, id, 1, &gz_off, NULL);
    check_version(f, id, 2, NULL, NULL);
    ahl_meta_gzip_stats(f->m, &s);
    assert_int_equal(s.groups_built, 0);
    assert_int_equal(s.cache_bytes, 0);
    fx_free(f);

    /* 64 KiB: a group's text (32 instances, ~56 KB) is over a quarter of it, so each leaf falls
     * back to its chunks' own segments; 1 MiB: groups are built, within the budget. */
    size_t budgets[] = {64 << 10, 1 << 20};
    for (int k = 0; k < 2; k++) {
        struct ahl_meta_opts small = {.gzip_cache_bytes = budgets[k]};
        assert_non_null(f = fx_new(&small));
        create_set(f, 2, 96, id);
        update_instance(f, id, 1, 40, "OFF");
        for (int round = 0; round < 3; round++) {
            check_version(f, id, 1, &gz_small, NULL);
            check_version(f, id, 2, NULL, NULL);
        }
        ahl_meta_gzip_stats(f->m, &s);
        assert_true(s.cache_bytes <= budgets[k]);
        if (k == 0) {
            assert_int_equal(s.groups_built, 0);
            assert_int_equal(gz_small, gz_off);
        } else {
            assert_true(s.groups_built > 0);
            assert_true(gz_small < gz_off / 2);
        }
        fx_free(f);
    }
}

/* ---- readers racing updates ------------------------------------------------------------ */

#define READERS 3
#define UPDATES 12

struct race {
    struct fx *f;
    char id[AHL_ID_LEN + 1];
    char *ref[UPDATES + 2]; /* reference text of each version, filled before the readers start */
    pthread_mutex_t lock;
    int failures;
    int stop;
};

static void *reader(void *p)
{
    struct race *r = p;
    for (unsigned k = 0;; k++) {
        pthread_mutex_lock(&r->lock);
        int stop = r->stop;
        pthread_mutex_unlock(&r->lock);
        if (stop)
            break;
        uint64_t v = 1 + k % (UPDATES + 1);
        char *got = fx_metadata(r->f, r->id, v);
        int bad = !got || strcmp(got, r->ref[v]) != 0;
        free(got);
        if (bad) {
            pthread_mutex_lock(&r->lock);
            r->failures++;
            pthread_mutex_unlock(&r->lock);
        }
    }
    return NULL;
}

static void test_readers_race(void **state)
{
    (void)state;
    /* A budget of a few groups, so that readers also race eviction. */
    struct ahl_meta_opts o = {.gzip_cache_bytes = 256 << 10};
    struct race r = {0};
    struct ahl_err err;
    pthread_t th[READERS];
    assert_non_null(r.f = fx_new(&o));
    create_set(r.f, 1, 200, r.id);
    for (unsigned u = 0; u < UPDATES; u++) {
        char value[32];
        snprintf(value, sizeof value, "U%u", u);
        update_instance(r.f, r.id, 1 + u, (u * 37) % 200, value);
    }
    for (uint64_t v = 1; v <= UPDATES + 1; v++) {
        struct ahl_buf ref;
        ahl_buf_init(&ref, AHL_BUF_UNLIMITED);
        assert_int_equal(ahl_meta_metadata_json(r.f->m, r.f->ds, r.id, v, &ref, &err), 0);
        r.ref[v] = ahl_buf_detach(&ref, NULL);
    }
    pthread_mutex_init(&r.lock, NULL);
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, &r), 0);
    /* More versions while they read. */
    for (unsigned u = 0; u < 6; u++)
        update(r.f, r.id, UPDATES + 1 + u,
               "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":\"R^W\"}}}");
    for (unsigned k = 0; k < 20; k++)
        check_version(r.f, r.id, 1 + k % (UPDATES + 1), NULL, NULL);
    pthread_mutex_lock(&r.lock);
    r.stop = 1;
    pthread_mutex_unlock(&r.lock);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(r.failures, 0);
    struct ahl_meta_gzip_stats s;
    ahl_meta_gzip_stats(r.f->m, &s);
    assert_true(s.cache_bytes <= o.gzip_cache_bytes);
    for (int v = 0; v < UPDATES + 2; v++)
        free(r.ref[v]);
    pthread_mutex_destroy(&r.lock);
    fx_free(r.f);
}

struct together {
    struct fx *f;
    const char *id;
    pthread_barrier_t start;
    const char *ref;
    int failures;
    pthread_mutex_t lock;
};

static void *read_together(void *p)
{
    struct together *t = p;
    pthread_barrier_wait(&t->start);
    char *got = fx_metadata(t->f, t->id, 1);
    int bad = !got || strcmp(got, t->ref) != 0;
    free(got);
    pthread_mutex_lock(&t->lock);
    t->failures += bad;
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

static void test_first_reads_share_builds(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    char id[AHL_ID_LEN + 1];
    struct ahl_buf ref;
    struct ahl_err err;
    struct together t = {.f = f, .id = id};
    pthread_t th[4];
    assert_non_null(f);
    create_set(f, 1, 320, id); /* 10 leaves */
    ahl_buf_init(&ref, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl_meta_metadata_json(f->m, f->ds, id, 1, &ref, &err), 0);
    t.ref = ref.data;
    pthread_mutex_init(&t.lock, NULL);
    pthread_barrier_init(&t.start, NULL, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, read_together, &t), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(t.failures, 0);
    struct ahl_meta_gzip_stats s;
    ahl_meta_gzip_stats(f->m, &s);
    assert_int_equal(s.groups_built, 10);
    assert_int_equal(s.groups_reused, 30);
    print_message("waits for another reader's build: %llu\n", (unsigned long long)s.groups_waited);
    pthread_barrier_destroy(&t.start);
    pthread_mutex_destroy(&t.lock);
    ahl_buf_release(&ref);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions_and_reuse), cmocka_unit_test(test_size_within_gzip6),
        cmocka_unit_test(test_series_chain),       cmocka_unit_test(test_cache_off_and_small),
        cmocka_unit_test(test_readers_race),       cmocka_unit_test(test_first_reads_share_builds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
