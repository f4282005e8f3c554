/* links: synth */
/* The metadata engine end to end through a real SQLite store: UpdateImageSetMetadata semantics
 * as a table of accepted and rejected requests, revert, includeStudyImageSets, deleted sets,
 * import into an existing set, deletion, version listing, and GetImageSetMetadata's gzip stream
 * checked by inflating it with zlib and comparing with the reference serialisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "meta_fixture.h"
#include "synth/synth.h"

#define SEED 5
#define STUDY "1.2.826.0.1.3680043.10.5.1"
#define S1 "1.2.826.0.1.3680043.10.5.2.1"
#define S2 "1.2.826.0.1.3680043.10.5.2.2"
#define I11 "1.2.826.0.1.3680043.10.5.3.1.1"
#define I12 "1.2.826.0.1.3680043.10.5.3.1.2"
#define I21 "1.2.826.0.1.3680043.10.5.3.2.1"

static int setup(void **state)
{
    *state = fx_new(NULL);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

static void create_set(struct fx *f, unsigned nseries, unsigned ninst, uint32_t seed, bool primary,
                       char id[AHL_ID_LEN + 1])
{
    json_t *doc = ahl_synth_doc(nseries, ninst, seed);
    struct ahl_meta_info info;
    struct ahl_err err;
    struct ahl_meta_create_opts o = {.is_primary = primary};
    assert_non_null(doc);
    int rc = ahl_meta_imageset_create(f->m, f->ds, doc, &o, &info, &err);
    if (rc < 0)
        fail_msg("create: %s", err.msg);
    json_decref(doc);
    assert_int_equal(info.set.latest_version, 1);
    memcpy(id, info.set.id, AHL_ID_LEN + 1);
}

/* sole_primary: a second primary set of the same series is refused inside the write transaction
 * (what keeps two nodes importing one series from making two primaries); another series, or a
 * non-primary set of the same series, is not. */
static void test_sole_primary(void **state)
{
    struct fx *f = *state;
    struct ahl_meta_info info;
    struct ahl_err err;
    struct ahl_meta_create_opts o = {.is_primary = true, .sole_primary = true};
    json_t *a = ahl_synth_doc(1, 2, SEED), *b = ahl_synth_doc(1, 2, SEED + 1);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, a, &o, &info, &err), 0);
    assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, a, &o, &info, &err), AHL_ECONFLICT);
    assert_non_null(strstr(err.msg, "already has a primary image set"));
    assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, b, &o, &info, &err), 0);
    o.is_primary = false;
    assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, a, &o, &info, &err), 0);
    json_decref(a);
    json_decref(b);
}

/* Asserts that the gzip stream of a version inflates to exactly the reference serialisation. */
static void assert_gzip_matches(struct fx *f, const char *id, uint64_t v)
{
    struct ahl_buf ref;
    struct ahl_err err;
    ahl_buf_init(&ref, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl_meta_metadata_json(f->m, f->ds, id, v, &ref, &err), 0);
    char *got = fx_metadata(f, id, v);
    assert_non_null(got);
    assert_string_equal(got, ref.data);
    free(got);
    ahl_buf_release(&ref);
}

/* Follows a '/'-separated path of keys; NULL when absent. */
static json_t *at(json_t *doc, const char *path)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = doc;
    for (char *save = NULL, *k = strtok_r(buf, "/", &save); k && v; k = strtok_r(NULL, "/", &save))
        v = json_object_get(v, k);
    return v;
}

struct update_case {
    const char *name;
    const char *updatable;
    const char *removable;
    bool force;
    int stale; /* latestVersion off by this much */
    uint64_t revert;
    int rc;
    const char *msg;    /* substring of the error message */
    const char *path;   /* checked after success */
    const char *expect; /* JSON of the value at path, or NULL: absent */
    const char *path2;  /* a second path that must be absent */
};

#define PATIENT(x) "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":" x "}}"
#define STUDYD(x) "{\"SchemaVersion\":\"1.1\",\"Study\":{\"DICOM\":" x "}}"
#define INST(s, i, x) "{\"Study\":{\"Series\":{\"" s "\":{\"Instances\":{\"" i "\":" x "}}}}}"
#define SER(s, x) "{\"Study\":{\"Series\":{\"" s "\":" x "}}}"

static const struct update_case update_cases[] = {
    {"patient name", PATIENT("{\"PatientName\":\"MX^MX\"}"), NULL, false, 0, 0, 0, NULL,
     "Patient/DICOM/PatientName", "\"MX^MX\"", NULL},
    {"schema version as string", STUDYD("{\"StudyDescription\":\"HEAD\"}"), NULL, false, 0, 0, 0,
     NULL, "Study/DICOM/StudyDescription", "\"HEAD\"", NULL},
    {"new study attribute", STUDYD("{\"StudyID\":\"40934\"}"), NULL, false, 0, 0, AHL_EINVAL,
     "StudyID", NULL, NULL, NULL},
    {"patient attribute at study level", STUDYD("{\"PatientName\":\"A^B\"}"), NULL, false, 0, 0,
     AHL_EINVAL, "PatientName", NULL, NULL, NULL},
    {"missing series", SER("1.2.3.999", "{\"DICOM\":{\"SeriesDescription\":\"X\"}}"), NULL, false,
     0, 0, AHL_EINVAL, "no such series", NULL, NULL, NULL},
    {"missing instance", INST(S1, "1.2.3.999", "{\"DICOM\":{\"InstanceNumber\":\"5\"}}"), NULL,
     false, 0, 0, AHL_EINVAL, "no such instance", NULL, NULL, NULL},
    {"series attribute", SER(S1, "{\"DICOM\":{\"SeriesDescription\":\"NEW\"}}"), NULL, false, 0, 0,
     0, NULL, "Study/Series/" S1 "/DICOM/SeriesDescription", "\"NEW\"", NULL},
    {"instance attribute", INST(S2, I21, "{\"DICOM\":{\"InstanceNumber\":\"77\"}}"), NULL, false, 0,
     0, 0, NULL, "Study/Series/" S2 "/Instances/" I21 "/DICOM/InstanceNumber", "\"77\"", NULL},
    {"remove attribute", NULL, STUDYD("{\"StudyDescription\":\"CT CHEST\"}"), false, 0, 0, 0, NULL,
     "Study/DICOM/StudyDescription", NULL, NULL},
    {"remove instance", NULL, INST(S1, I12, "{}"), false, 0, 0, 0, NULL,
     "Study/Series/" S1 "/Instances/" I12, NULL, NULL},
    {"remove series", NULL, SER(S2, "{}"), false, 0, 0, 0, NULL, "Study/Series/" S2, NULL, NULL},
    {"remove missing series", NULL, SER("1.2.3.4", "{}"), false, 0, 0, AHL_EINVAL, "no such series",
     NULL, NULL, NULL},
    {"both blobs", PATIENT("{\"PatientSex\":\"M\"}"), STUDYD("{\"AccessionNumber\":null}"), false,
     0, 0, 0, NULL, "Patient/DICOM/PatientSex", "\"M\"", "Study/DICOM/AccessionNumber"},
    {"SOP UID change needs force", INST(S1, I11, "{\"DICOM\":{\"SOPInstanceUID\":\"1.2.3.9\"}}"),
     NULL, false, 0, 0, AHL_EINVAL, "SOPInstanceUID", NULL, NULL, NULL},
    {"forced SOP UID change re-keys", INST(S1, I11, "{\"DICOM\":{\"SOPInstanceUID\":\"1.2.3.9\"}}"),
     NULL, true, 0, 0, 0, NULL, "Study/Series/" S1 "/Instances/1.2.3.9/DICOM/SOPInstanceUID",
     "\"1.2.3.9\"", "Study/Series/" S1 "/Instances/" I11},
    {"forced series UID change re-keys", SER(S1, "{\"DICOM\":{\"SeriesInstanceUID\":\"1.2.3.8\"}}"),
     NULL, true, 0, 0, 0, NULL, "Study/Series/1.2.3.8/DICOM/SeriesInstanceUID", "\"1.2.3.8\"",
     "Study/Series/" S1},
    {"forced re-key onto an existing instance",
     INST(S1, I11, "{\"DICOM\":{\"SOPInstanceUID\":\"" I12 "\"}}"), NULL, true, 0, 0, AHL_EINVAL,
     "already", NULL, NULL, NULL},
    {"stale latestVersionId", PATIENT("{\"PatientName\":\"A\"}"), NULL, false, -1, 0, AHL_ECONFLICT,
     "latest", NULL, NULL, NULL},
    {"future latestVersionId", PATIENT("{\"PatientName\":\"A\"}"), NULL, false, 1, 0, AHL_ECONFLICT,
     "latest", NULL, NULL, NULL},
    {"revert together with updates", PATIENT("{\"PatientName\":\"A\"}"), NULL, false, 0, 1,
     AHL_EINVAL, "revertToVersionId", NULL, NULL, NULL},
    {"revert to a missing version", NULL, NULL, false, 0, 9, AHL_EINVAL, "no such version", NULL,
     NULL, NULL},
    {"revert to the current version", NULL, NULL, false, 0, 1, 0, NULL, "Patient/DICOM/PatientName",
     "\"DOE^JANE\"", NULL},
    {"not an object", "[1,2]", NULL, false, 0, 0, AHL_EINVAL, "object", NULL, NULL, NULL},
    {"not JSON", "{\"Patient\":", NULL, false, 0, 0, AHL_EINVAL, NULL, NULL, NULL, NULL},
    {"generated key", INST(S1, I11, "{\"ImageFrames\":[]}"), NULL, true, 0, 0, AHL_EINVAL,
     "ImageFrames", NULL, NULL, NULL},
    {"DatastoreID", "{\"DatastoreID\":\"x\"}", NULL, true, 0, 0, AHL_EINVAL, "DatastoreID", NULL,
     NULL, NULL},
    {"private tag needs force",
     INST(S1, I11,
          "{\"DICOM\":{\"001910F9\":\"97\"},\"DICOMVRs\":"
          "{\"001910F9\":\"DS\"}}"),
     NULL, false, 0, 0, AHL_EINVAL, "001910F9", NULL, NULL, NULL},
    {"forced private tag",
     INST(S1, I11,
          "{\"DICOM\":{\"001910F9\":\"97\"},\"DICOMVRs\":"
          "{\"001910F9\":\"DS\"}}"),
     NULL, true, 0, 0, 0, NULL, "Study/Series/" S1 "/Instances/" I11 "/DICOMVRs/001910F9", "\"DS\"",
     NULL},
    {"sequence needs force",
     STUDYD("{\"ProcedureCodeSequence\":[{\"CodeValue\":\"1\",\"CodingSchemeDesignator\":\"L\"}]}"),
     NULL, false, 0, 0, AHL_EINVAL, "ProcedureCodeSequence", NULL, NULL, NULL},
    {"multi-valued needs force", SER(S1, "{\"DICOM\":{\"SoftwareVersions\":[\"1\",\"2\"]}}"), NULL,
     false, 0, 0, AHL_EINVAL, "SoftwareVersions", NULL, NULL, NULL},
    {"VR violation", STUDYD("{\"StudyDate\":\"2024-01-01\"}"), NULL, false, 0, 0, AHL_EINVAL,
     "StudyDate", NULL, NULL, NULL},
    {"forced VR violation", STUDYD("{\"StudyDate\":\"2024-01-01\"}"), NULL, true, 0, 0, 0, NULL,
     "Study/DICOM/StudyDate", "\"2024-01-01\"", NULL},
};

static void test_update_table(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < sizeof update_cases / sizeof update_cases[0]; i++) {
        const struct update_case *c = &update_cases[i];
        char id[AHL_ID_LEN + 1];
        struct ahl_buf before, after;
        struct ahl_err err;
        struct ahl_meta_update_result res;
        create_set(f, 2, 3, SEED, false, id);
        ahl_buf_init(&before, AHL_BUF_UNLIMITED);
        ahl_buf_init(&after, AHL_BUF_UNLIMITED);
        assert_int_equal(ahl_meta_metadata_json(f->m, f->ds, id, 0, &before, &err), 0);
        struct ahl_meta_update u = {
            .latest_version = (uint64_t)(1 + c->stale),
            .force = c->force,
            .updatable = c->updatable,
            .updatable_len = c->updatable ? strlen(c->updatable) : 0,
            .removable = c->removable,
            .removable_len = c->removable ? strlen(c->removable) : 0,
            .revert_to_version = c->revert,
        };
        ahl_err_clear(&err);
        int rc = ahl_meta_update(f->m, f->ds, id, &u, &res, &err);
        if (rc != c->rc)
            fail_msg("%s: rc %d (%s), want %d", c->name, rc, err.msg, c->rc);
        if (c->msg && !strstr(err.msg, c->msg))
            fail_msg("%s: message '%s' lacks '%s'", c->name, err.msg, c->msg);
        struct ahl_meta_info info;
        assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, id, 0, &info, &err), 0);
        if (rc < 0) {
            /* Nothing changed. */
            assert_int_equal(info.set.latest_version, 1);
            assert_int_equal(ahl_meta_metadata_json(f->m, f->ds, id, 0, &after, &err), 0);
            assert_string_equal(before.data, after.data);
        } else {
            assert_int_equal(res.latest_version, 2);
            assert_int_equal(info.set.latest_version, 2);
            assert_string_equal(info.set.state, "ACTIVE");
            assert_string_equal(info.ver.workflow_status, "UPDATED");
            assert_int_equal(info.ver.forced, c->force && !c->revert);
            json_t *doc = NULL;
            assert_int_equal(ahl_meta_document(f->m, f->ds, id, 0, &doc, &err), 0);
            json_t *v = at(doc, c->path);
            if (!c->expect) {
                if (v)
                    fail_msg("%s: %s still present", c->name, c->path);
            } else {
                json_t *want = json_loads(c->expect, JSON_DECODE_ANY, NULL);
                if (!v || !json_equal(v, want))
                    fail_msg("%s: %s is not %s", c->name, c->path, c->expect);
                json_decref(want);
            }
            if (c->path2 && at(doc, c->path2))
                fail_msg("%s: %s still present", c->name, c->path2);
            json_decref(doc);
            assert_gzip_matches(f, id, 2);
            /* The old version is untouched. */
            assert_int_equal(ahl_meta_metadata_json(f->m, f->ds, id, 1, &after, &err), 0);
            assert_string_equal(before.data, after.data);
        }
        ahl_buf_release(&before);
        ahl_buf_release(&after);
    }
}

static void test_quota(void **state)
{
    struct fx *f = *state;
    char id[AHL_ID_LEN + 1];
    struct ahl_err err;
    create_set(f, 1, 1, 11, false, id);
    struct ahl_buf big;
    ahl_buf_init(&big, AHL_BUF_UNLIMITED);
    ahl_buf_adds(&big, "{\"Patient\":{\"DICOM\":{\"PatientComments\":\"");
    for (int i = 0; i < 10000; i++)
        ahl_buf_addc(&big, 'x');
    ahl_buf_adds(&big, "\"}}}");
    struct ahl_meta_update u = {
        .latest_version = 1, .updatable = big.data, .updatable_len = big.len};
    assert_int_equal(ahl_meta_update(f->m, f->ds, id, &u, NULL, &err), AHL_EQUOTA);
    assert_int_equal(err.code, AHL_EQUOTA);
    ahl_buf_release(&big);
}

static void test_revert(void **state)
{
    struct fx *f = *state;
    char id[AHL_ID_LEN + 1];
    struct ahl_err err;
    struct ahl_buf v1, v3;
    create_set(f, 1, 4, 12, false, id);
    const char *p = PATIENT("{\"PatientName\":\"CHANGED^ONE\"}");
    struct ahl_meta_update u = {.latest_version = 1, .updatable = p, .updatable_len = strlen(p)};
    assert_int_equal(ahl_meta_update(f->m, f->ds, id, &u, NULL, &err), 0);
    struct ahl_meta_update r = {.latest_version = 2, .revert_to_version = 1};
    struct ahl_meta_update_result res;
    assert_int_equal(ahl_meta_update(f->m, f->ds, id, &r, &res, &err), 0);
    assert_int_equal(res.latest_version, 3);
    ahl_buf_init(&v1, AHL_BUF_UNLIMITED);
    ahl_buf_init(&v3, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl_meta_metadata_json(f->m, f->ds, id, 1, &v1, &err), 0);
    assert_int_equal(ahl_meta_metadata_json(f->m, f->ds, id, 3, &v3, &err), 0);
    assert_string_equal(v1.data, v3.data);
    struct ahl_meta_info a, b;
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, id, 1, &a, &err), 0);
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, id, 3, &b, &err), 0);
    assert_memory_equal(a.ver.root, b.ver.root, AHL_SHA256_LEN);
    char *v2 = fx_metadata(f, id, 2);
    assert_non_null(strstr(v2, "CHANGED^ONE"));
    free(v2);
    /* Revert and includeStudyImageSets do not mix. */
    struct ahl_meta_update bad = {
        .latest_version = 3, .revert_to_version = 1, .include_study_image_sets = true};
    assert_int_equal(ahl_meta_update(f->m, f->ds, id, &bad, NULL, &err), AHL_EINVAL);
    ahl_buf_release(&v1);
    ahl_buf_release(&v3);
}

static void test_include_study(void **state)
{
    struct fx *f = *state;
    char a[AHL_ID_LEN + 1], b[AHL_ID_LEN + 1], c[AHL_ID_LEN + 1];
    struct ahl_err err;
    /* a and b: primary sets of the same study (same seed = same study UID); c non-primary. */
    create_set(f, 1, 2, 21, true, a);
    create_set(f, 1, 2, 21, true, b);
    create_set(f, 1, 2, 21, false, c);
    const char *p = PATIENT("{\"PatientName\":\"STUDY^WIDE\"}");
    struct ahl_meta_update u = {.latest_version = 1,
                                .updatable = p,
                                .updatable_len = strlen(p),
                                .include_study_image_sets = true};
    struct ahl_meta_update_result res;
    assert_int_equal(ahl_meta_update(f->m, f->ds, a, &u, &res, &err), 0);
    assert_int_equal(res.study_sets_updated, 1);
    struct ahl_meta_info ib, ic;
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, b, 0, &ib, &err), 0);
    assert_int_equal(ib.set.latest_version, 2);
    /* The other set's version says why it was made; the addressed set's is UPDATED. */
    assert_string_equal(ib.set.state, "ACTIVE");
    assert_string_equal(ib.set.workflow_status, "UPDATING_FOR_STUDY_CONSISTENCY");
    assert_string_equal(ib.ver.workflow_status, "UPDATING_FOR_STUDY_CONSISTENCY");
    struct ahl_meta_info ia;
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, a, 0, &ia, &err), 0);
    assert_string_equal(ia.set.workflow_status, "UPDATED");
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, c, 0, &ic, &err), 0);
    assert_int_equal(ic.set.latest_version, 1);
    char *doc = fx_metadata(f, b, 2);
    assert_non_null(strstr(doc, "STUDY^WIDE"));
    free(doc);
    /* The search index follows the latest version. */
    struct ahl_store_tx *tx;
    struct ahl_search_row row;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_search_get(tx, b, &row), 0);
    ahl_store_rollback(tx);
    assert_string_equal(row.patient_name, "STUDY^WIDE");
    assert_int_equal(row.version, 2);
    assert_int_equal(row.number_of_instances, 2);
    assert_string_equal(row.study_instance_uid, "1.2.826.0.1.3680043.10.21.1");
}

static int collect_version(void *ctx, const struct ahl_version_rec *v)
{
    struct ahl_version_rec *out = ctx;
    out[out[0].version ? 1 : 0] = *v;
    return 0;
}

static void test_deleted(void **state)
{
    struct fx *f = *state;
    char id[AHL_ID_LEN + 1];
    struct ahl_err err;
    struct ahl_store_tx *tx;
    struct ahl_imageset_rec set;
    create_set(f, 1, 1, 31, false, id);
    const char *p = PATIENT("{\"PatientName\":\"X\"}");
    struct ahl_meta_update u = {.latest_version = 1, .updatable = p, .updatable_len = strlen(p)};
    assert_int_equal(ahl_meta_update(f->m, f->ds, id, &u, NULL, &err), 0);
    u.latest_version = 2;
    /* Delete: the row becomes a tombstone, DELETED / DELETED (no operation leaves a set LOCKED). */
    struct ahl_imageset_rec out;
    bool again = true;
    int64_t before = ahl_now_ms();
    assert_int_equal(ahl_meta_imageset_delete(f->m, f->ds, id, &out, &again, &err), 0);
    assert_false(again);
    assert_int_equal(ahl_imageset_state_parse(out.state), AHL_IMAGESET_DELETED);
    assert_int_equal(ahl_workflow_status_parse(out.workflow_status), AHL_WORKFLOW_DELETED);
    assert_true(out.deleted_at_ms >= before);
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_imageset_get(tx, f->ds, id, &set), 0);
    ahl_store_rollback(tx);
    assert_string_equal(set.state, "DELETED");
    assert_string_equal(set.workflow_status, "DELETED");
    assert_string_equal(set.message, "");
    /* Deleting again succeeds and changes nothing. */
    struct ahl_imageset_rec out2;
    assert_int_equal(ahl_meta_imageset_delete(f->m, f->ds, id, &out2, &again, &err), 0);
    assert_true(again);
    assert_int_equal(out2.deleted_at_ms, out.deleted_at_ms);
    /* GetImageSet shows the tombstone at its last version, and only that version. */
    struct ahl_meta_info info;
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, id, 0, &info, &err), 0);
    assert_int_equal(info.ver.version, 2);
    assert_string_equal(info.set.state, "DELETED");
    assert_string_equal(info.ver.state, "DELETED");
    assert_string_equal(info.ver.workflow_status, "DELETED");
    assert_int_equal(info.set.deleted_at_ms, out.deleted_at_ms);
    assert_int_equal(info.ver.updated_at_ms, out.deleted_at_ms);
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, id, 2, &info, &err), 0);
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, id, 1, &info, &err), AHL_ENOTFOUND);
    /* The version list is the tombstone alone. */
    struct ahl_version_rec vs[2];
    memset(vs, 0, sizeof vs);
    assert_int_equal(ahl_meta_versions_list(f->m, f->ds, id, 0, 50, collect_version, vs, &err), 0);
    assert_int_equal(vs[0].version, 2);
    assert_string_equal(vs[0].state, "DELETED");
    assert_int_equal(vs[1].version, 0);
    memset(vs, 0, sizeof vs);
    assert_int_equal(ahl_meta_versions_list(f->m, f->ds, id, 2, 50, collect_version, vs, &err), 0);
    assert_int_equal(vs[0].version, 0);
    /* Its data is not readable; it can no longer be written. */
    struct ahl_buf b;
    ahl_buf_init(&b, 1 << 20);
    assert_int_equal(ahl_meta_metadata_json(f->m, f->ds, id, 0, &b, &err), AHL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "was deleted"));
    ahl_buf_release(&b);
    assert_int_equal(ahl_meta_update(f->m, f->ds, id, &u, NULL, &err), AHL_ECONFLICT);
    struct ahl_meta_copy c = {.source_latest_version = 2};
    assert_int_equal(ahl_meta_copy(f->m, f->ds, id, &c, NULL, &err), AHL_ECONFLICT);
    char live[AHL_ID_LEN + 1];
    create_set(f, 1, 1, 33, false, live);
    struct ahl_meta_copy into = {
        .source_latest_version = 1, .destination_id = id, .destination_latest_version = 2};
    assert_int_equal(ahl_meta_copy(f->m, f->ds, live, &into, NULL, &err), AHL_ECONFLICT);
    /* Wrong data store. */
    char other[AHL_ID_LEN + 1];
    create_set(f, 1, 1, 32, false, other);
    assert_int_equal(
        ahl_meta_imageset_get(f->m, "0000000000000000000000000000ffff", other, 0, &info, &err),
        AHL_ENOTFOUND);
    /* Expiry: nothing before the retention has passed, then the tombstone and its versions. */
    struct ahl_meta_expire_stats st;
    int64_t day = 86400000;
    assert_int_equal(ahl_meta_tombstones_expire(f->m, out.deleted_at_ms + day - 1, day, &st, &err),
                     0);
    assert_int_equal(st.imagesets, 0);
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, id, 0, &info, &err), 0);
    assert_int_equal(ahl_meta_tombstones_expire(f->m, out.deleted_at_ms + day, day, &st, &err), 0);
    assert_int_equal(st.imagesets, 1);
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, id, 0, &info, &err), AHL_ENOTFOUND);
    assert_int_equal(ahl_meta_imageset_delete(f->m, f->ds, id, NULL, NULL, &err), AHL_ENOTFOUND);
    struct ahl_version_rec v;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_version_get(tx, id, 1, &v), AHL_ENOTFOUND);
    assert_int_equal(ahl_store_imageset_get(tx, f->ds, live, &set), 0);
    ahl_store_rollback(tx);
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, live, 0, &info, &err), 0);
}

static int count_version(void *ctx, const struct ahl_version_rec *v)
{
    uint64_t *expect = ctx;
    assert_int_equal(v->version, *expect);
    (*expect)--;
    return 0;
}

static void test_versions_list_and_import(void **state)
{
    struct fx *f = *state;
    char id[AHL_ID_LEN + 1];
    struct ahl_err err;
    create_set(f, 1, 3, 41, true, id);
    /* Import more instances of the same series (and one existing one, replaced). */
    json_t *more = ahl_synth_doc(1, 6, 41);
    json_t *i0 = json_object_get(
        json_object_get(json_object_get(json_object_get(json_object_get(more, "Study"), "Series"),
                                        "1.2.826.0.1.3680043.10.41.2.1"),
                        "Instances"),
        "1.2.826.0.1.3680043.10.41.3.1.1");
    json_object_set_new(json_object_get(i0, "DICOM"), "ImageComments", json_string("again"));
    struct ahl_meta_info info;
    assert_int_equal(ahl_meta_imageset_put_instances(f->m, f->ds, id, more, 0, &info, &err), 0);
    assert_int_equal(info.set.latest_version, 2);
    /* Same content with compare-and-set: no new version. */
    assert_int_equal(ahl_meta_imageset_put_instances(f->m, f->ds, id, more, 2, &info, &err), 0);
    assert_int_equal(info.set.latest_version, 2);
    json_t *doc = NULL;
    assert_int_equal(ahl_meta_document(f->m, f->ds, id, 0, &doc, &err), 0);
    json_t *inst = at(doc, "Study/Series/1.2.826.0.1.3680043.10.41.2.1/Instances");
    assert_int_equal(json_object_size(inst), 6);
    assert_string_equal(
        json_string_value(at(doc, "Study/Series/1.2.826.0.1.3680043.10.41.2.1/Instances/"
                                  "1.2.826.0.1.3680043.10.41.3.1.1/DICOM/ImageComments")),
        "again");
    json_decref(doc);
    json_decref(more);
    for (uint64_t v = 2; v < 7; v++) {
        const char *p = PATIENT("{\"PatientName\":\"V\"}");
        struct ahl_meta_update u = {
            .latest_version = v, .updatable = p, .updatable_len = strlen(p)};
        assert_int_equal(ahl_meta_update(f->m, f->ds, id, &u, NULL, &err), 0);
    }
    uint64_t expect = 7;
    assert_int_equal(ahl_meta_versions_list(f->m, f->ds, id, 0, 3, count_version, &expect, &err),
                     0);
    assert_int_equal(expect, 4);
    assert_int_equal(ahl_meta_versions_list(f->m, f->ds, id, 5, 50, count_version, &expect, &err),
                     0);
    assert_int_equal(expect, 0);
    for (uint64_t v = 1; v <= 7; v++)
        assert_gzip_matches(f, id, v);
}

static void test_gzip_large(void **state)
{
    struct fx *f = *state;
    char id[AHL_ID_LEN + 1];
    struct ahl_err err;
    create_set(f, 3, 150, 51, false, id);
    assert_gzip_matches(f, id, 1);
    /* The stream is one gzip member with a correct trailer (Python's and zcat's check too). */
    struct ahl_buf gz;
    ahl_buf_init(&gz, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl_meta_metadata_gzip(f->m, f->ds, id, 1, fx_collect, &gz, &err), 0);
    assert_true(gz.len > 18);
    assert_int_equal((unsigned char)gz.data[0], 0x1f);
    assert_int_equal((unsigned char)gz.data[1], 0x8b);
    /* Flip one byte of the trailer CRC: inflate must now fail. */
    gz.data[gz.len - 8] ^= 1;
    struct ahl_buf text;
    ahl_buf_init(&text, AHL_BUF_UNLIMITED);
    assert_int_not_equal(fx_gunzip(&gz, &text), 0);
    ahl_buf_release(&text);
    ahl_buf_release(&gz);
    /* And the document is the one created, modulo the generated keys. */
    json_t *doc = NULL, *src = ahl_synth_doc(3, 150, 51);
    assert_int_equal(ahl_meta_document(f->m, f->ds, id, 1, &doc, &err), 0);
    assert_true(json_equal(json_object_get(doc, "Study"), json_object_get(src, "Study")));
    assert_true(json_equal(json_object_get(doc, "Patient"), json_object_get(src, "Patient")));
    assert_string_equal(json_string_value(json_object_get(doc, "ImageSetID")), id);
    json_decref(doc);
    json_decref(src);
}

/* A part of a document is exactly the whole document's series (or instance), and nothing else. */
static void test_document_part(void **state)
{
    struct fx *f = *state;
    char id[AHL_ID_LEN + 1];
    struct ahl_err err;
    create_set(f, 3, 70, 53, false, id);
    json_t *whole = NULL, *part = NULL;
    assert_int_equal(ahl_meta_document(f->m, f->ds, id, 1, &whole, &err), 0);
    json_t *series_map = at(whole, "Study/Series");
    assert_int_equal(json_object_size(series_map), 3);
    const char *suid;
    json_t *series;
    json_object_foreach(series_map, suid, series)
    {
        assert_int_equal(ahl_meta_document_part(f->m, f->ds, id, 1, suid, NULL, &part, &err), 0);
        json_t *ps = at(part, "Study/Series");
        assert_int_equal(json_object_size(ps), 1);
        assert_true(json_equal(json_object_get(ps, suid), series));
        assert_true(
            json_equal(json_object_get(part, "Patient"), json_object_get(whole, "Patient")));
        json_decref(part);
        /* The last instance of the series, alone. */
        const char *sop = NULL, *k;
        json_t *inst = NULL, *v;
        json_object_foreach(json_object_get(series, "Instances"), k, v)
        {
            sop = k;
            inst = v;
        }
        assert_non_null(sop);
        assert_int_equal(ahl_meta_document_part(f->m, f->ds, id, 1, suid, sop, &part, &err), 0);
        json_t *pi = json_object_get(json_object_get(at(part, "Study/Series"), suid), "Instances");
        assert_int_equal(json_object_size(pi), 1);
        assert_true(json_equal(json_object_get(pi, sop), inst));
        json_t *own = json_deep_copy(series),
               *pown = json_deep_copy(json_object_get(at(part, "Study/Series"), suid));
        json_object_del(own, "Instances");
        json_object_del(pown, "Instances");
        assert_true(json_equal(own, pown));
        json_decref(own);
        json_decref(pown);
        json_decref(part);
        /* An instance the series does not hold: the series with no instances. */
        assert_int_equal(ahl_meta_document_part(f->m, f->ds, id, 1, suid, "1.2.3.4", &part, &err),
                         0);
        pi = json_object_get(json_object_get(at(part, "Study/Series"), suid), "Instances");
        assert_int_equal(json_object_size(pi), 0);
        json_decref(part);
    }
    /* A series the set does not hold: no series. */
    assert_int_equal(ahl_meta_document_part(f->m, f->ds, id, 1, "1.2.3", NULL, &part, &err), 0);
    assert_int_equal(json_object_size(at(part, "Study/Series")), 0);
    assert_true(json_equal(at(part, "Study/DICOM"), at(whole, "Study/DICOM")));
    json_decref(part);
    /* Unknown version: not found, as for the whole document. */
    assert_int_equal(ahl_meta_document_part(f->m, f->ds, id, 9, "1.2.3", NULL, &part, &err),
                     AHL_ENOTFOUND);
    json_decref(whole);
}

static void test_reopen_keeps_commits(void **state)
{
    struct fx *f = *state;
    char id[AHL_ID_LEN + 1];
    struct ahl_err err;
    create_set(f, 1, 5, 61, false, id);
    for (uint64_t v = 1; v <= 5; v++) {
        char p[128];
        snprintf(p, sizeof p, PATIENT("{\"PatientName\":\"R^%llu\"}"), (unsigned long long)v);
        struct ahl_meta_update u = {
            .latest_version = v, .updatable = p, .updatable_len = strlen(p)};
        assert_int_equal(ahl_meta_update(f->m, f->ds, id, &u, NULL, &err), 0);
        /* Reopen as a restarted server would: the commit and the cache-free read agree. */
        fx_close(f);
        assert_int_equal(fx_open(f, NULL), 0);
        struct ahl_meta_info info;
        assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, id, 0, &info, &err), 0);
        assert_int_equal(info.set.latest_version, v + 1);
        char *doc = fx_metadata(f, id, v + 1);
        assert_non_null(doc);
        char name[64];
        snprintf(name, sizeof name, "\"PatientName\":\"R^%llu\"", (unsigned long long)v);
        assert_non_null(strstr(doc, name));
        free(doc);
    }
}

static size_t instance_count(struct fx *f, const char *id, uint64_t v)
{
    json_t *doc = NULL;
    struct ahl_err err;
    assert_int_equal(ahl_meta_document(f->m, f->ds, id, v, &doc, &err), 0);
    size_t n = 0;
    const char *k;
    json_t *s;
    json_object_foreach(at(doc, "Study/Series"), k, s)
    {
        n += json_object_size(json_object_get(s, "Instances"));
    }
    json_decref(doc);
    return n;
}

static void test_copy(void **state)
{
    struct fx *f = *state;
    char src[AHL_ID_LEN + 1], dst[AHL_ID_LEN + 1], other[AHL_ID_LEN + 1];
    struct ahl_err err;
    struct ahl_meta_copy_result res;
    create_set(f, 1, 5, 71, false, src);

    /* Whole copy into a new set: the same document under a new id, the source untouched. */
    struct ahl_meta_copy c = {.source_latest_version = 1};
    assert_int_equal(ahl_meta_copy(f->m, f->ds, src, &c, &res, &err), 0);
    assert_string_equal(res.source.workflow_status, "CREATED");
    assert_string_equal(res.destination.workflow_status, "COPIED");
    assert_int_equal(res.destination.latest_version, 1);
    struct ahl_meta_info info;
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, res.destination.id, 0, &info, &err), 0);
    assert_string_equal(info.ver.workflow_status, "COPIED");
    assert_string_equal(info.set.state, "ACTIVE");
    json_t *a = NULL, *b = NULL;
    assert_int_equal(ahl_meta_document(f->m, f->ds, src, 1, &a, &err), 0);
    assert_int_equal(ahl_meta_document(f->m, f->ds, res.destination.id, 1, &b, &err), 0);
    assert_true(json_equal(json_object_get(a, "Study"), json_object_get(b, "Study")));
    json_decref(a);
    json_decref(b);
    assert_gzip_matches(f, res.destination.id, 1);
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, src, 0, &info, &err), 0);
    assert_int_equal(info.set.latest_version, 1);

    /* A subset, promoted to primary. */
    const char *sel = "{\"SchemaVersion\":\"1.1\",\"Study\":{\"Series\":{"
                      "\"1.2.826.0.1.3680043.10.71.2.1\":{\"Instances\":{"
                      "\"1.2.826.0.1.3680043.10.71.3.1.2\":{},"
                      "\"1.2.826.0.1.3680043.10.71.3.1.4\":{}}}}}}";
    struct ahl_meta_copy sub = {.source_latest_version = 1,
                                .copiable_attributes = sel,
                                .copiable_len = strlen(sel),
                                .promote_to_primary = true};
    assert_int_equal(ahl_meta_copy(f->m, f->ds, src, &sub, &res, &err), 0);
    assert_true(res.destination.is_primary);
    assert_int_equal(instance_count(f, res.destination.id, 1), 2);
    assert_gzip_matches(f, res.destination.id, 1);
    const char *bad = "{\"Study\":{\"Series\":{\"1.2.826.0.1.3680043.10.71.2.1\":{"
                      "\"Instances\":{\"9.9\":{}}}}}}";
    struct ahl_meta_copy badc = {
        .source_latest_version = 1, .copiable_attributes = bad, .copiable_len = strlen(bad)};
    assert_int_equal(ahl_meta_copy(f->m, f->ds, src, &badc, &res, &err), AHL_EINVAL);

    /* Into an existing, consistent destination: its instances plus the source's. */
    create_set(f, 1, 2, 71, false, dst);
    struct ahl_meta_copy into = {
        .source_latest_version = 1, .destination_id = dst, .destination_latest_version = 1};
    assert_int_equal(ahl_meta_copy(f->m, f->ds, src, &into, &res, &err), 0);
    assert_int_equal(res.destination.latest_version, 2);
    assert_int_equal(instance_count(f, dst, 2), 5);
    assert_int_equal(instance_count(f, dst, 1), 2);
    assert_gzip_matches(f, dst, 2);
    /* Stale destination version. */
    assert_int_equal(ahl_meta_copy(f->m, f->ds, src, &into, &res, &err), AHL_ECONFLICT);

    /* Into an inconsistent destination: refused without force; with force the destination keeps
     * its Patient and the version records forced. */
    create_set(f, 1, 2, 72, false, other);
    struct ahl_meta_copy x = {
        .source_latest_version = 1, .destination_id = other, .destination_latest_version = 1};
    const char *p = PATIENT("{\"PatientName\":\"OTHER^PERSON\"}");
    struct ahl_meta_update u = {.latest_version = 1, .updatable = p, .updatable_len = strlen(p)};
    assert_int_equal(ahl_meta_update(f->m, f->ds, other, &u, NULL, &err), 0);
    x.destination_latest_version = 2;
    assert_int_equal(ahl_meta_copy(f->m, f->ds, src, &x, &res, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "don't match"));
    x.force = true;
    assert_int_equal(ahl_meta_copy(f->m, f->ds, src, &x, &res, &err), 0);
    assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, other, 0, &info, &err), 0);
    assert_int_equal(info.set.latest_version, 3);
    assert_true(info.ver.forced);
    assert_int_equal(instance_count(f, other, 3), 7);
    char *doc = fx_metadata(f, other, 3);
    assert_non_null(strstr(doc, "OTHER^PERSON"));
    free(doc);
    /* Stale source. */
    c.source_latest_version = 2;
    assert_int_equal(ahl_meta_copy(f->m, f->ds, src, &c, &res, &err), AHL_ECONFLICT);
}

static uint64_t chunk_count(struct fx *f)
{
    struct ahl_store_tx *tx;
    uint64_t n, bytes;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_chunk_stats(tx, &n, &bytes), 0);
    ahl_store_rollback(tx);
    return n;
}

/* Importing many instances into an existing set edits the Instances map one key at a time; the
 * intermediate map nodes must not be stored, only what the new version reaches. */
static void test_no_garbage_chunks(void **state)
{
    struct fx *f = *state;
    char id[AHL_ID_LEN + 1];
    struct ahl_err err;
    create_set(f, 1, 200, 91, false, id);
    uint64_t before = chunk_count(f);
    json_t *doc = ahl_synth_doc(1, 400, 91); /* instances 0..199 again, and 200 new ones */
    struct ahl_meta_info info;
    assert_int_equal(ahl_meta_imageset_put_instances(f->m, f->ds, id, doc, 0, &info, &err), 0);
    json_decref(doc);
    uint64_t added = chunk_count(f) - before;
    /* 200 instance chunks, a new root, and at most a few dozen map nodes (400 keys in nodes of
     * up to 64). Storing every intermediate node would add more than one per instance. */
    if (added < 200 || added > 200 + 40)
        fail_msg("import stored %llu chunks", (unsigned long long)added);
    assert_int_equal(instance_count(f, id, 2), 400);
    assert_gzip_matches(f, id, 2);
    struct ahl_meta_check_stats st;
    assert_int_equal(ahl_meta_check(f->m, NULL, NULL, &st), 0);
    /* A multi-instance update likewise stores only the final nodes. */
    before = chunk_count(f);
    struct ahl_buf blob;
    ahl_buf_init(&blob, AHL_BUF_UNLIMITED);
    ahl_buf_adds(&blob, "{\"Study\":{\"Series\":{\"1.2.826.0.1.3680043.10.91.2.1\":{"
                        "\"Instances\":{");
    for (int i = 0; i < 40; i++)
        ahl_buf_addf(&blob,
                     "%s\"1.2.826.0.1.3680043.10.91.3.1.%d\":{\"DICOM\":{"
                     "\"ImageComments\":\"c%d\"}}",
                     i ? "," : "", 1 + i * 10, i);
    ahl_buf_adds(&blob, "}}}}}");
    struct ahl_meta_update u = {
        .latest_version = 2, .updatable = blob.data, .updatable_len = blob.len};
    assert_int_equal(ahl_meta_update(f->m, f->ds, id, &u, NULL, &err), 0);
    ahl_buf_release(&blob);
    added = chunk_count(f) - before;
    /* 40 instances, one series chunk at most, a root, and the touched leaves and inner nodes. */
    if (added > 40 + 2 + 20)
        fail_msg("a 40-instance update stored %llu chunks", (unsigned long long)added);
    assert_gzip_matches(f, id, 3);
}

/* With the server's --aws-primary-rules option, a primary set refuses Patient-level edits; the
 * same edit on a non-primary set, or without the option, is accepted. */
static void test_aws_primary_rules(void **state)
{
    (void)state;
    struct ahl_meta_opts o = {.aws_primary_rules = true};
    struct fx *f = fx_new(&o);
    char prim[AHL_ID_LEN + 1], non[AHL_ID_LEN + 1];
    struct ahl_err err;
    assert_non_null(f);
    create_set(f, 1, 1, 81, true, prim);
    create_set(f, 1, 1, 82, false, non);
    const char *p = PATIENT("{\"PatientName\":\"A^B\"}");
    struct ahl_meta_update u = {.latest_version = 1, .updatable = p, .updatable_len = strlen(p)};
    assert_int_equal(ahl_meta_update(f->m, f->ds, prim, &u, NULL, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "primary"));
    assert_int_equal(ahl_meta_update(f->m, f->ds, non, &u, NULL, &err), 0);
    const char *st = STUDYD("{\"StudyDescription\":\"OK\"}");
    struct ahl_meta_update s = {.latest_version = 1, .updatable = st, .updatable_len = strlen(st)};
    assert_int_equal(ahl_meta_update(f->m, f->ds, prim, &s, NULL, &err), 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_update_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_include_study, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions_list_and_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_document_part, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sole_primary, setup, teardown),
        cmocka_unit_test(test_aws_primary_rules),
        cmocka_unit_test_setup_teardown(test_no_garbage_chunks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
