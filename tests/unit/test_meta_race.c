/* links: synth */
/* Concurrency: threads racing UpdateImageSetMetadata on one image set.
 *   - rounds: every thread sends an update with the same latestVersionId at the same moment;
 *     exactly one wins each round, every other gets ConflictException, and each version holds
 *     the winner's change;
 *   - retry loops: each thread applies its own updates, retrying on conflict; no update is lost
 *     (every one appears in exactly one version) while readers stream metadata concurrently. */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "meta_fixture.h"
#include "synth/synth.h"

#define THREADS 4
#define ROUNDS 40
#define PER_THREAD 60

struct race {
    struct fx *f;
    char id[AHL_ID_LEN + 1];
    pthread_barrier_t barrier;
    int winners[ROUNDS];   /* thread that won each round */
    int conflicts, others; /* outcomes of losing calls */
    pthread_mutex_t lock;
    atomic_int stop_readers;
    int read_failures;
};

static int atoi_safe(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end ? (int)v : -100;
}

struct arg {
    struct race *r;
    int t;
};

static void *round_thread(void *p)
{
    struct arg *a = p;
    struct race *r = a->r;
    for (int round = 0; round < ROUNDS; round++) {
        char blob[128];
        struct ahl_err err;
        snprintf(blob, sizeof blob, "{\"Patient\":{\"DICOM\":{\"PatientComments\":\"T%dR%d\"}}}",
                 a->t, round);
        struct ahl_meta_update u = {.latest_version = (uint64_t)round + 1,
                                    .updatable = blob,
                                    .updatable_len = strlen(blob)};
        pthread_barrier_wait(&r->barrier);
        int rc = ahl_meta_update(r->f->m, r->f->ds, r->id, &u, NULL, &err);
        pthread_mutex_lock(&r->lock);
        if (rc == 0)
            r->winners[round] = r->winners[round] == -1 ? a->t : -2; /* -2: two winners */
        else if (rc == AHL_ECONFLICT && err.code == AHL_ECONFLICT)
            r->conflicts++;
        else
            r->others++;
        pthread_mutex_unlock(&r->lock);
        pthread_barrier_wait(&r->barrier);
    }
    return NULL;
}

static void test_rounds(void **state)
{
    (void)state;
    struct race r;
    memset(&r, 0, sizeof r);
    r.f = fx_new(NULL);
    assert_non_null(r.f);
    json_t *doc = ahl_synth_doc(1, 20, 3);
    struct ahl_meta_info info;
    struct ahl_err err;
    assert_int_equal(ahl_meta_imageset_create(r.f->m, r.f->ds, doc, NULL, &info, &err), 0);
    json_decref(doc);
    memcpy(r.id, info.set.id, sizeof r.id);
    for (int i = 0; i < ROUNDS; i++)
        r.winners[i] = -1;
    pthread_barrier_init(&r.barrier, NULL, THREADS);
    pthread_mutex_init(&r.lock, NULL);
    pthread_t th[THREADS];
    struct arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct arg){&r, t};
        pthread_create(&th[t], NULL, round_thread, &args[t]);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(r.others, 0);
    assert_int_equal(r.conflicts, ROUNDS * (THREADS - 1));
    for (int i = 0; i < ROUNDS; i++) {
        assert_true(r.winners[i] >= 0);
        json_t *d = NULL;
        assert_int_equal(ahl_meta_document(r.f->m, r.f->ds, r.id, (uint64_t)i + 2, &d, &err), 0);
        char want[32];
        snprintf(want, sizeof want, "T%dR%d", r.winners[i], i);
        assert_string_equal(
            json_string_value(json_object_get(
                json_object_get(json_object_get(d, "Patient"), "DICOM"), "PatientComments")),
            want);
        json_decref(d);
    }
    assert_int_equal(ahl_meta_imageset_get(r.f->m, r.f->ds, r.id, 0, &info, &err), 0);
    assert_int_equal(info.set.latest_version, ROUNDS + 1);
    pthread_barrier_destroy(&r.barrier);
    pthread_mutex_destroy(&r.lock);
    fx_free(r.f);
}

static void *retry_thread(void *p)
{
    struct arg *a = p;
    struct race *r = a->r;
    for (int k = 0; k < PER_THREAD; k++) {
        char blob[160];
        snprintf(blob, sizeof blob,
                 "{\"Study\":{\"Series\":{\"1.2.826.0.1.3680043.10.4.2.1\":{\"Instances\":{"
                 "\"1.2.826.0.1.3680043.10.4.3.1.%d\":{\"DICOM\":{\"ImageComments\":\"%d\"}}}}}}}",
                 a->t + 1, k);
        for (;;) {
            struct ahl_meta_info info;
            struct ahl_err err;
            if (ahl_meta_imageset_get(r->f->m, r->f->ds, r->id, 0, &info, &err) < 0)
                break;
            struct ahl_meta_update u = {.latest_version = info.set.latest_version,
                                        .updatable = blob,
                                        .updatable_len = strlen(blob)};
            int rc = ahl_meta_update(r->f->m, r->f->ds, r->id, &u, NULL, &err);
            if (rc == 0)
                break;
            if (rc != AHL_ECONFLICT) {
                pthread_mutex_lock(&r->lock);
                r->others++;
                pthread_mutex_unlock(&r->lock);
                return NULL;
            }
        }
    }
    return NULL;
}

static void *reader_thread(void *p)
{
    struct race *r = p;
    while (!atomic_load(&r->stop_readers)) {
        char *doc = fx_metadata(r->f, r->id, 0);
        if (!doc) {
            pthread_mutex_lock(&r->lock);
            r->read_failures++;
            pthread_mutex_unlock(&r->lock);
        }
        free(doc);
    }
    return NULL;
}

static void test_no_update_lost(void **state)
{
    (void)state;
    struct race r;
    memset(&r, 0, sizeof r);
    r.f = fx_new(NULL);
    assert_non_null(r.f);
    json_t *doc = ahl_synth_doc(1, THREADS, 4);
    struct ahl_meta_info info;
    struct ahl_err err;
    assert_int_equal(ahl_meta_imageset_create(r.f->m, r.f->ds, doc, NULL, &info, &err), 0);
    json_decref(doc);
    memcpy(r.id, info.set.id, sizeof r.id);
    pthread_mutex_init(&r.lock, NULL);
    pthread_t th[THREADS], rd[2];
    struct arg args[THREADS];
    for (int i = 0; i < 2; i++)
        pthread_create(&rd[i], NULL, reader_thread, &r);
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct arg){&r, t};
        pthread_create(&th[t], NULL, retry_thread, &args[t]);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    atomic_store(&r.stop_readers, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(rd[i], NULL);
    assert_int_equal(r.others, 0);
    assert_int_equal(r.read_failures, 0);
    assert_int_equal(ahl_meta_imageset_get(r.f->m, r.f->ds, r.id, 0, &info, &err), 0);
    assert_int_equal(info.set.latest_version, 1 + THREADS * PER_THREAD);
    /* Each thread's counter went up by exactly one per version it won: walking the versions,
     * every thread's value steps 0, 1, 2, ... PER_THREAD-1 with no gap. */
    int next[THREADS] = {0};
    for (uint64_t v = 2; v <= info.set.latest_version; v++) {
        json_t *d = NULL;
        assert_int_equal(ahl_meta_document(r.f->m, r.f->ds, r.id, v, &d, &err), 0);
        json_t *inst =
            json_object_get(json_object_get(json_object_get(json_object_get(d, "Study"), "Series"),
                                            "1.2.826.0.1.3680043.10.4.2.1"),
                            "Instances");
        int changed = 0;
        for (int t = 0; t < THREADS; t++) {
            char uid[64];
            snprintf(uid, sizeof uid, "1.2.826.0.1.3680043.10.4.3.1.%d", t + 1);
            const char *c = json_string_value(json_object_get(
                json_object_get(json_object_get(inst, uid), "DICOM"), "ImageComments"));
            int val = c ? atoi_safe(c) : -1;
            if (val == next[t]) {
                next[t]++;
                changed++;
            } else {
                assert_int_equal(val, next[t] - 1);
            }
        }
        assert_int_equal(changed, 1);
        json_decref(d);
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(next[t], PER_THREAD);
    pthread_mutex_destroy(&r.lock);
    fx_free(r.f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rounds),
        cmocka_unit_test(test_no_update_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
