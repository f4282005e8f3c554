/* links: synth */
/* UpdateImageSetMetadata under group commit: updates that queue behind one open write
 * transaction run as one batch (one SQLite COMMIT), each still all-or-nothing on its own. The
 * test holds a write transaction open, lines up seven updates behind it (the store reports how
 * many writers wait), then commits. In the batch: two valid updates of their own sets, a stale
 * latestVersionId (ConflictException) and an update naming a series the set lacks
 * (ValidationException) on a third set, two updates racing on one set with the same latestVersionId
 * (exactly one winner), and an update of a deleted set (ResourceNotFoundException). Afterwards:
 * one COMMIT
 * carried the batch, the winners' versions hold their changes, the failures changed nothing,
 * every error message is the one a lone update gets, and the check finds no damage. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define AHL_TEST_SQLITE_ONLY 1 /* counts the SQLite backend's batches */
#include "meta_fixture.h"
#include "synth/synth.h"

#define SETS 5
#define JOBS 7

struct job {
    pthread_t th;
    struct fx *f;
    const char *id;
    uint64_t latest;
    char blob[160];
    int rc;
    struct ahl_err err;
};

static void *run(void *p)
{
    struct job *j = p;
    struct ahl_meta_update u = {
        .latest_version = j->latest, .updatable = j->blob, .updatable_len = strlen(j->blob)};
    j->rc = ahl_meta_update(j->f->m, j->f->ds, j->id, &u, NULL, &j->err);
    return NULL;
}

static uint64_t latest(struct fx *f, const char *id)
{
    struct ahl_meta_info info;
    struct ahl_err err;
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, id, 0, &info, &err), 0);
    return info.set.latest_version;
}

static bool holds(struct fx *f, const char *id, const char *needle)
{
    char *text = fx_metadata(f, id, 0);
    assert_non_null(text);
    bool r = strstr(text, needle) != NULL;
    free(text);
    return r;
}

static void test_batch(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    char ids[SETS][AHL_ID_LEN + 1];
    for (int i = 0; i < SETS; i++) {
        struct ahl_meta_info info;
        struct ahl_err err;
        json_t *doc = ahl_synth_doc(1, 3, (uint32_t)(40 + i));
        assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, doc, NULL, &info, &err), 0);
        json_decref(doc);
        memcpy(ids[i], info.set.id, sizeof ids[i]);
    }
    /* Set 4 is deleted. */
    struct ahl_store_tx *tx;
    struct ahl_err derr;
    assert_int_equal(ahl_meta_imageset_delete(f->m, f->ds, ids[4], NULL, NULL, &derr), 0);

    static struct job j[JOBS];
    memset(j, 0, sizeof j);
    const char *name = "{\"Patient\":{\"DICOM\":{\"PatientName\":\"%s\"}}}";
    for (int i = 0; i < JOBS; i++) {
        j[i].f = f;
        j[i].latest = 1;
    }
    j[0].id = ids[0], snprintf(j[0].blob, sizeof j[0].blob, name, "Ok^Zero");
    j[1].id = ids[1], snprintf(j[1].blob, sizeof j[1].blob, name, "Stale^One");
    j[1].latest = 5;
    j[2].id = ids[1];
    snprintf(j[2].blob, sizeof j[2].blob,
             "{\"Study\":{\"Series\":{\"9.9.9\":{\"DICOM\":{\"Modality\":\"MR\"}}}}}");
    j[3].id = ids[3], snprintf(j[3].blob, sizeof j[3].blob, name, "Race^A");
    j[4].id = ids[3], snprintf(j[4].blob, sizeof j[4].blob, name, "Race^B");
    j[5].id = ids[2], snprintf(j[5].blob, sizeof j[5].blob, name, "Ok^Two");
    j[6].id = ids[4], snprintf(j[6].blob, sizeof j[6].blob, name, "Deleted^Four");

    struct ahl_store_sqlite_stats s0, s1;
    assert_int_equal(ahl_store_sqlite_stats(f->store, &s0), 0);
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    for (int i = 0; i < JOBS; i++)
        assert_int_equal(pthread_create(&j[i].th, NULL, run, &j[i]), 0);
    for (int n = 0;; n++) {
        assert_int_equal(ahl_store_sqlite_stats(f->store, &s1), 0);
        if (s1.write_waiting == JOBS)
            break;
        assert_true(n < 10000);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    /* Our empty transaction hands the batch to the queued updates; this returns after their
     * COMMIT. */
    assert_int_equal(ahl_store_commit(tx), 0);
    for (int i = 0; i < JOBS; i++)
        pthread_join(j[i].th, NULL);
    assert_int_equal(ahl_store_sqlite_stats(f->store, &s1), 0);
    assert_int_equal(s1.commits - s0.commits, 1);
    /* Ours, set 0, set 2 (job 5), and one of the racers. */
    assert_int_equal(s1.write_txs - s0.write_txs, 4);

    assert_int_equal(j[0].rc, 0);
    assert_int_equal(latest(f, ids[0]), 2);
    assert_true(holds(f, ids[0], "Ok^Zero"));

    assert_int_equal(j[1].rc, AHL_ECONFLICT);
    char want[160];
    snprintf(want, sizeof want, "image set %s: latestVersionId 5 is not the latest version (1)",
             ids[1]);
    assert_string_equal(j[1].err.msg, want);
    assert_int_equal(latest(f, ids[1]), 1);

    assert_int_equal(j[2].rc, AHL_EINVAL);
    assert_non_null(strstr(j[2].err.msg, "9.9.9"));
    assert_int_equal(latest(f, ids[1]), 1);
    assert_int_equal(j[5].rc, 0);
    assert_int_equal(latest(f, ids[2]), 2);
    assert_true(holds(f, ids[2], "Ok^Two"));

    assert_true((j[3].rc == 0) != (j[4].rc == 0));
    struct job *win = j[3].rc == 0 ? &j[3] : &j[4], *lose = j[3].rc == 0 ? &j[4] : &j[3];
    assert_int_equal(lose->rc, AHL_ECONFLICT);
    snprintf(want, sizeof want, "image set %s: latestVersionId 1 is not the latest version (2)",
             ids[3]);
    assert_string_equal(lose->err.msg, want);
    assert_int_equal(latest(f, ids[3]), 2);
    assert_true(holds(f, ids[3], win == &j[3] ? "Race^A" : "Race^B"));
    assert_false(holds(f, ids[3], win == &j[3] ? "Race^B" : "Race^A"));

    assert_int_equal(j[6].rc, AHL_ECONFLICT);
    snprintf(want, sizeof want, "image set %s is DELETED: it can no longer be written", ids[4]);
    assert_string_equal(j[6].err.msg, want);

    struct ahl_meta_check_stats cs;
    assert_int_equal(ahl_meta_check(f->m, NULL, NULL, &cs), 0);
    assert_int_equal(cs.versions, SETS + 3);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
