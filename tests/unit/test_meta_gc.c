/* The collector's mark and sweep (src/meta/gc.c):
 *   - a deleted set's versions and the chunks only it held are removed; chunks a live set shares
 *     stay, and every version of every live set still reads;
 *   - the frames listed by live versions (ImageFrames and BulkData) are live, a deleted set's
 *     own frames are not;
 *   - a version committed between the mark and the sweep that names a candidate chunk without
 *     writing it (an update turning a Patient back into one only a deleted set had, whose
 *     INSERT OR IGNORE finds the row still there) rescues it: the sweep walks the new roots
 *     inside its write transaction;
 *   - a copy of a set shares its chunks: deleting the source frees nothing the copy needs;
 *   - the counts of a dry run (mark only) change nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "meta_fixture.h"

#define FRAME_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FRAME_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define FRAME_S "cccccccccccccccccccccccccccccccc"
#define BULK_B "dddddddddddddddddddddddddddddddd"

/* A set of one study, one series and two instances: one with frame `own` (and bulk data
 * `bulk` when not NULL), one with the frame FRAME_S every set shares. */
static void make_set(struct fx *f, const char *patient, const char *study, const char *own,
                     const char *bulk, char id[AHL_ID_LEN + 1])
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"Patient\":{\"DICOM\":{\"PatientName\":\"%s\"}},"
             "\"Study\":{\"DICOM\":{\"StudyInstanceUID\":\"%s\"},\"Series\":{\"%s.1\":{"
             "\"DICOM\":{\"SeriesInstanceUID\":\"%s.1\"},\"Instances\":{"
             "\"%s.1.1\":{\"DICOM\":{\"SOPInstanceUID\":\"%s.1.1\"},"
             "\"ImageFrames\":[{\"ID\":\"%s\"}]%s%s%s},"
             "\"%s.1.2\":{\"DICOM\":{\"SOPInstanceUID\":\"%s.1.2\"},"
             "\"ImageFrames\":[{\"ID\":\"" FRAME_S "\"}]}}}}}}",
             patient, study, study, study, study, study, own,
             bulk ? ",\"BulkData\":{\"00091010\":{\"ID\":\"" : "", bulk ? bulk : "",
             bulk ? "\"}}" : "", study, study);
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    struct ahl_meta_info info;
    struct ahl_err err;
    assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, doc, NULL, &info, &err), 0);
    json_decref(doc);
    memcpy(id, info.set.id, AHL_ID_LEN + 1);
}

static void set_patient(struct fx *f, const char *id, uint64_t latest, const char *name)
{
    char p[256];
    struct ahl_err err;
    snprintf(p, sizeof p,
             "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":\"%s\"}}}", name);
    struct ahl_meta_update u = {
        .latest_version = latest, .updatable = p, .updatable_len = strlen(p)};
    assert_int_equal(ahl_meta_update(f->m, f->ds, id, &u, NULL, &err), 0);
}

static uint64_t chunk_count(struct fx *f)
{
    struct ahl_store_tx *tx;
    uint64_t n = 0, bytes = 0;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_chunk_stats(tx, &n, &bytes), 0);
    ahl_store_rollback(tx);
    return n;
}

/* Every version of set id reads whole. */
static void assert_reads(struct fx *f, const char *id, uint64_t versions)
{
    for (uint64_t v = 1; v <= versions; v++) {
        char *text = fx_metadata(f, id, v);
        assert_non_null(text);
        free(text);
    }
}

static void assert_check_clean(struct fx *f)
{
    struct ahl_meta_check_stats st;
    assert_int_equal(ahl_meta_check(f->m, NULL, NULL, &st), 0);
    assert_int_equal(st.problems, 0);
}

static int sweep_all(struct ahl_meta_gc *g, unsigned batch)
{
    struct ahl_err err;
    int rc, rounds = 0;
    while ((rc = ahl_meta_gc_sweep(g, batch, &err)) == 1)
        rounds++;
    assert_int_equal(rc, 0);
    return rounds;
}

static void test_delete_then_collect(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_err err;
    struct ahl_meta_gc *g;
    struct ahl_meta_gc_stats st;
    char keep[AHL_ID_LEN + 1], gone[AHL_ID_LEN + 1];
    assert_non_null(f);
    make_set(f, "KEEP^ME", "1.2.3", FRAME_A, NULL, keep);
    make_set(f, "FORGET^ME", "1.2.4", FRAME_B, BULK_B, gone);
    set_patient(f, gone, 1, "FORGET^ME^TOO");
    uint64_t before = chunk_count(f);

    /* Nothing is garbage while both live. */
    assert_int_equal(ahl_meta_gc_mark(f->m, &g, &err), 0);
    ahl_meta_gc_stats(g, &st);
    assert_int_equal(st.chunks, 0);
    assert_int_equal(st.dead_versions, 0);
    assert_int_equal(st.live_versions, 3);
    assert_true(ahl_meta_gc_frame_live(g, FRAME_B));
    assert_true(ahl_meta_gc_frame_live(g, BULK_B));
    ahl_meta_gc_free(g);

    assert_int_equal(ahl_meta_imageset_delete(f->m, f->ds, gone, NULL, NULL, &err), 0);
    assert_int_equal(ahl_meta_gc_mark(f->m, &g, &err), 0);
    ahl_meta_gc_stats(g, &st);
    assert_int_equal(st.dead_sets, 1);
    assert_int_equal(st.dead_versions, 2);
    assert_true(st.chunks > 0);
    assert_true(ahl_meta_gc_frame_live(g, FRAME_A));
    assert_true(ahl_meta_gc_frame_live(g, FRAME_S));
    assert_false(ahl_meta_gc_frame_live(g, FRAME_B));
    assert_false(ahl_meta_gc_frame_live(g, BULK_B));
    /* A mark alone (a dry run) deletes nothing. */
    assert_int_equal(chunk_count(f), before);
    /* Batches of one: every deletion its own transaction. */
    sweep_all(g, 1);
    ahl_meta_gc_stats(g, &st);
    assert_int_equal(st.versions_swept, 2);
    assert_int_equal(st.chunks_swept, st.chunks);
    assert_int_equal(st.rescued, 0);
    assert_int_equal(chunk_count(f), before - st.chunks);
    ahl_meta_gc_free(g);

    /* What stays reads, and the check finds nothing missing. */
    assert_reads(f, keep, 1);
    assert_check_clean(f);
    /* A second collection finds nothing. */
    assert_int_equal(ahl_meta_gc_mark(f->m, &g, &err), 0);
    ahl_meta_gc_stats(g, &st);
    assert_int_equal(st.chunks, 0);
    assert_int_equal(st.dead_versions, 0);
    ahl_meta_gc_free(g);
    fx_free(f);
}

/* The race the sweep's walk of new roots exists for: a candidate named again after the mark. */
static void test_rescue(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_err err;
    struct ahl_meta_gc *g;
    struct ahl_meta_gc_stats st;
    char live[AHL_ID_LEN + 1], gone[AHL_ID_LEN + 1];
    assert_non_null(f);
    make_set(f, "ALIVE^ONE", "1.2.5", FRAME_A, NULL, live);
    make_set(f, "ONLY^DELETED", "1.2.6", FRAME_B, NULL, gone);
    assert_int_equal(ahl_meta_imageset_delete(f->m, f->ds, gone, NULL, NULL, &err), 0);
    assert_int_equal(ahl_meta_gc_mark(f->m, &g, &err), 0);
    ahl_meta_gc_stats(g, &st);
    uint64_t cands = st.chunks;
    assert_true(cands > 0);
    /* After the mark: the live set's Patient becomes the deleted set's, byte for byte. The
     * update's chunk put finds the candidate row and writes nothing. */
    set_patient(f, live, 1, "ONLY^DELETED");
    sweep_all(g, 2);
    ahl_meta_gc_stats(g, &st);
    assert_int_equal(st.rescued, 1);
    assert_int_equal(st.chunks_swept, cands - 1);
    ahl_meta_gc_free(g);
    assert_reads(f, live, 2);
    assert_check_clean(f);
    fx_free(f);
}

static void test_copy_keeps_shared(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_err err;
    struct ahl_meta_gc *g;
    struct ahl_meta_gc_stats st;
    char src[AHL_ID_LEN + 1];
    assert_non_null(f);
    make_set(f, "COPIED^PATIENT", "1.2.7", FRAME_B, BULK_B, src);
    struct ahl_meta_copy c = {.source_latest_version = 1};
    struct ahl_meta_copy_result res;
    assert_int_equal(ahl_meta_copy(f->m, f->ds, src, &c, &res, &err), 0);
    assert_int_equal(ahl_meta_imageset_delete(f->m, f->ds, src, NULL, NULL, &err), 0);
    assert_int_equal(ahl_meta_gc_mark(f->m, &g, &err), 0);
    ahl_meta_gc_stats(g, &st);
    assert_int_equal(st.dead_versions, 1);
    assert_int_equal(st.chunks, 0); /* the copy's version 1 is the source's root */
    assert_true(ahl_meta_gc_frame_live(g, FRAME_B));
    assert_true(ahl_meta_gc_frame_live(g, BULK_B));
    sweep_all(g, 64);
    ahl_meta_gc_free(g);
    assert_reads(f, res.destination.id, 1);
    assert_check_clean(f);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delete_then_collect),
        cmocka_unit_test(test_rescue),
        cmocka_unit_test(test_copy_keeps_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
