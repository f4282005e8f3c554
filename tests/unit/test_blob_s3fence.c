/* links: import meta cli jobs */
/* The frame fence between the collector and importers writing frames to an S3 bucket
 * (docs/architecture.md#garbage-collection), against moto_server (tests/unit/with_moto.sh): an
 * instance whose frames were written, then deleted by a collection before its commit, fails
 * cleanly and commits nothing; one whose frames are all there commits although a collection ran
 * meanwhile; a deletion inside a collector's recorded window is caught although the importer read
 * the epoch after the collector moved it (a collector that died before finishing); and importing
 * the file again afterwards stores it whole. Without AHL_TEST_S3_ENDPOINT it exits with 77. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "blob/framestore.h"
#include "cli/cli.h"
#include "import/import.h"
#include "meta/meta.h"
#include "store/store.h"

#include "jobs_fixture.h"

#define CORPUS "/usr/lib/python3/dist-packages/pydicom/data/test_files/"
#define MR CORPUS "MR_small.dcm"

struct fx {
    char dir[64];
    struct ahl_store *store;
    struct ahl_meta *m;
    struct ahl_framestore fs;
    struct ahl_importer *im;
    char ds[AHL_ID_LEN + 1];
    char study[70]; /* MR's, from its preparation */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    struct ahl_err err;
    char uri[300];
    snprintf(f->dir, sizeof f->dir, "/tmp/ahl-s3fence-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    jobs_fx_open(f->dir, 7, &f->store, &f->m, f->ds);
    /* A prefix of this test's own: the collections below see only its frames. */
    snprintf(uri, sizeof uri, "s3://%s/fence-test/%ld-%ld-%ld", getenv("AHL_TEST_S3_BUCKET"),
             (long)getpid(), (long)time(NULL), (long)rand());
    struct ahl_s3_config cfg = {.endpoint = getenv("AHL_TEST_S3_ENDPOINT")};
    assert_int_equal(ahl_framestore_open_s3(&f->fs, uri, &cfg, f->dir, &err), 0);
    struct ahl_import_opts o = {.frames = &f->fs, .lock_dir = f->dir, .tmp_dir = f->dir};
    assert_int_equal(ahl_importer_open(f->m, f->ds, &o, &f->im, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ahl_importer_close(f->im);
    ahl_framestore_close(&f->fs);
    ahl_meta_close(f->m);
    ahl_store_close(f->store);
    jobs_fx_rmtree(f->dir);
    free(f);
    return 0;
}

static void on_done(void *ctx, void *tag, const struct ahl_import_result *res)
{
    (void)tag;
    *(struct ahl_import_result *)ctx = *res;
}

/* Commits a prepared item through a batch, as jobs and STOW-RS do. */
static void commit(struct fx *f, struct ahl_import_item *it, struct ahl_import_result *res)
{
    struct ahl_import_batch *b;
    assert_int_equal(ahl_import_batch_new(f->im, on_done, res, &b), 0);
    ahl_import_batch_add(b, it, (void *)1);
    ahl_import_batch_free(b);
}

static int count_set(void *ctx, const struct ahl_imageset_rec *r)
{
    (void)r;
    ++*(size_t *)ctx;
    return 0;
}

static size_t study_sets(struct fx *f)
{
    struct ahl_store_tx *tx;
    size_t n = 0;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_imageset_by_study(tx, f->ds, f->study, false, count_set, &n), 0);
    ahl_store_rollback(tx);
    return n;
}

struct ids {
    char v[8][33];
    size_t n;
};

static int on_frame(void *ctx, const struct ahl_framestore_entry *e)
{
    struct ids *l = ctx;
    if (l->n < 8)
        memcpy(l->v[l->n++], e->id, 33);
    return 0;
}

static void frames_in_bucket(struct fx *f, struct ids *l)
{
    struct ahl_err err;
    l->n = 0;
    assert_int_equal(ahl_framestore_list(&f->fs, on_frame, l, &err), 0);
}

static void prepare(struct fx *f, struct ahl_import_item **it)
{
    struct ahl_import_result res;
    assert_int_equal(ahl_import_prepare_path(f->im, MR, "mr", it, &res), 0);
    snprintf(f->study, sizeof f->study, "%s", res.study_instance_uid);
    assert_true(f->study[0] != '\0');
}

/* The import commits after a collection deleted the frame it had written (no live version listed
 * it, and it was older than the grace): its file fails, nothing is committed; importing it again
 * stores the frame and the set. */
static void test_collected_before_commit(void **state)
{
    struct fx *f = *state;
    struct ahl_import_item *it;
    struct ahl_import_result res;
    struct ahl_gc_report r;
    struct ahl_err err;
    struct ids l;
    prepare(f, &it);
    frames_in_bucket(f, &l);
    assert_int_equal(l.n, 1);
    sleep(2); /* LastModified has whole seconds: the frame is now older than a grace of 0 */
    struct ahl_gc_opts o = {.grace_ms = 0, .batch = 16};
    assert_int_equal(ahl_gc_pass(f->m, f->store, &f->fs, &o, &r, &err), 0);
    assert_int_equal(r.frames_swept, 1);
    frames_in_bucket(f, &l);
    assert_int_equal(l.n, 0);
    memset(&res, 0, sizeof res);
    commit(f, it, &res);
    assert_true(res.rc < 0);
    assert_string_equal(res.exception_type, "InternalServerException");
    assert_non_null(strstr(res.message, "removed by the collector"));
    assert_int_equal(study_sets(f), 0);
    /* Again: stored whole. */
    assert_int_equal(ahl_import_path(f->im, MR, "mr", &res), 0);
    assert_int_equal(study_sets(f), 1);
    frames_in_bucket(f, &l);
    assert_int_equal(l.n, 1);
}

/* A collection ran between the frames' write and the commit, but took other objects: the importer
 * looks (the epoch moved), finds its frames and commits. */
static void test_collection_beside_commit(void **state)
{
    struct fx *f = *state;
    struct ahl_import_item *it;
    struct ahl_import_result res;
    struct ahl_gc_report r;
    struct ahl_err err;
    char other[33];
    uint8_t junk[100] = {7};
    ahl_frame_id("1.2.840.10008.1.2.1", junk, sizeof junk, other);
    assert_int_equal(ahl_framestore_put(&f->fs, other, junk, sizeof junk, &err), 0);
    sleep(2);
    prepare(f, &it); /* its frame is younger than the grace below */
    struct ahl_gc_opts o = {.grace_ms = 1000, .batch = 16};
    assert_int_equal(ahl_gc_pass(f->m, f->store, &f->fs, &o, &r, &err), 0);
    assert_int_equal(r.frames_swept, 1);
    assert_int_equal(ahl_framestore_exists(&f->fs, other), 0);
    memset(&res, 0, sizeof res);
    commit(f, it, &res);
    assert_int_equal(res.rc, 0);
    assert_int_equal(study_sets(f), 1);
}

/* A collector recorded its window and moved the epoch, then the importer read the fence and wrote
 * its frame, then the collector deleted that frame and stopped before doing anything else (it
 * died): the epoch has not moved since the importer read it, but the deletion lies inside the
 * recorded window, so the importer looks and fails its file. */
static void test_deletion_inside_window(void **state)
{
    struct fx *f = *state;
    struct ahl_import_item *it;
    struct ahl_import_result res;
    struct ahl_err err;
    struct ids l;
    assert_int_equal(ahl_meta_frame_fence_bump(f->m, ahl_wall_ms() + 60000, &err), 0);
    prepare(f, &it);
    frames_in_bucket(f, &l);
    assert_int_equal(l.n, 1);
    assert_int_equal(ahl_framestore_delete(&f->fs, l.v[0], &err), 0);
    memset(&res, 0, sizeof res);
    commit(f, it, &res);
    assert_true(res.rc < 0);
    assert_non_null(strstr(res.message, l.v[0]));
    assert_int_equal(study_sets(f), 0);
}

int main(void)
{
    if (!getenv("AHL_TEST_S3_ENDPOINT") || !getenv("AHL_TEST_S3_BUCKET")) {
        fprintf(stderr,
                "no S3 endpoint (AHL_TEST_S3_ENDPOINT): run under tests/unit/with_moto.sh\n");
        return 77;
    }
    if (access(MR, R_OK) != 0) {
        fprintf(stderr, "no pydicom test files (%s)\n", MR);
        return 77;
    }
    srand((unsigned)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_collected_before_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collection_beside_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deletion_inside_window, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
