/* Unit tests for DICOMweb in src/api (dicomweb.c) over the real engine and SQLite store, without
 * HTTP: which paths are DICOMweb's, the choice of image set (primary by default, any set with
 * imageSetId, a version with versionId), the BulkDataURI, and the errors (codes and statuses as
 * the server presents them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "api/codec.h"
#include "api/dicomweb_internal.h"
#include "api/ops_internal.h"
#include "meta/meta.h"
#include "store/store.h"
#include "store_fixture.h"

#define STUDY "1.2.3"
#define SERIES "1.2.3.4"
#define SOP "1.2.3.4.5"

struct fixture {
    char dir[64];
    struct ahl_store *store;
    struct ahl_meta *meta;
    struct ahl_api_service svc;
    char ds[AHL_ID_LEN + 1];
    char primary[AHL_ID_LEN + 1], other[AHL_ID_LEN + 1];
};

static void create_set(struct fixture *f, const char *name, bool primary, char id[AHL_ID_LEN + 1])
{
    json_t *doc = json_pack(
        "{s:{s:{s:s}},s:{s:{s:s},s:{s:{s:{s:s},s:{s:{s:{s:s,s:i},s:[{s:s}]}}}}}}", "Patient",
        "DICOM", "PatientName", name, "Study", "DICOM", "StudyInstanceUID", STUDY, "Series", SERIES,
        "DICOM", "SeriesInstanceUID", SERIES, "Instances", SOP, "DICOM", "SOPInstanceUID", SOP,
        "BitsAllocated", 16, "ImageFrames", "ID", "0123456789abcdef0123456789abcdef");
    struct ahl_meta_create_opts o = {.is_primary = primary};
    struct ahl_meta_info info;
    struct ahl_err err;
    assert_non_null(doc);
    if (ahl_meta_imageset_create(f->meta, f->ds, doc, &o, &info, &err) < 0)
        fail_msg("create: %s", err.msg);
    json_decref(doc);
    memcpy(id, info.set.id, AHL_ID_LEN + 1);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec ds = {.created_at_ms = 1, .updated_at_ms = 1};
    snprintf(f->dir, sizeof f->dir, "/tmp/ahl-api-dicomweb-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(ahl_test_store_open(f->dir, 0, &f->store), 0);
    assert_int_equal(ahl_meta_open(f->store, NULL, &f->meta), 0);
    f->svc.meta = f->meta;
    f->svc.store = f->store;
    snprintf(f->ds, sizeof f->ds, "%s", "0123456789abcdef0123456789abcdef");
    snprintf(ds.id, sizeof ds.id, "%s", f->ds);
    snprintf(ds.name, sizeof ds.name, "dw");
    snprintf(ds.status, sizeof ds.status, "ACTIVE");
    snprintf(ds.lossless_storage_format, sizeof ds.lossless_storage_format, "HTJ2K");
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_datastore_put(tx, &ds, true), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    create_set(f, "Primary^P", true, f->primary);
    create_set(f, "Other^O", false, f->other);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    ahl_meta_close(f->meta);
    ahl_store_close(f->store);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Runs one request; returns its rc, *out the parsed JSON answer (on success). */
static int serve(struct fixture *f, const char *path_rest, const char *query, json_t **out,
                 struct ahl_err *err)
{
    char path[512];
    snprintf(path, sizeof path, "/datastore/%s%s", f->ds, path_rest);
    struct ahl__dicomweb_request rq = {
        .method = "GET", .path = path, .query = query, .host = "example.test:8080"};
    struct ahl_api_resp resp = {.fd = -1};
    ahl_buf_init(&resp.raw, AHL_BUF_UNLIMITED);
    *out = NULL;
    int rc = ahl__dicomweb_serve(&f->svc, &rq, &resp, err);
    if (rc == 0) {
        assert_int_equal(rq.status, 200);
        assert_string_equal(resp.content_type, "application/dicom+json");
        *out = json_loadb(resp.raw.data, resp.raw.len, 0, NULL);
        assert_non_null(*out);
    }
    ahl_buf_release(&resp.raw);
    return rc;
}

static const char *name_of(const json_t *arr)
{
    return json_string_value(json_object_get(
        json_array_get(
            json_object_get(json_object_get(json_array_get(arr, 0), "00100010"), "Value"), 0),
        "Alphabetic"));
}

static void test_paths(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        bool dicomweb;
    } cases[] = {
        {"/datastore/abc/studies", true},
        {"/datastore/abc/studies/1.2/metadata", true},
        {"/datastore/abc/series", true},
        {"/datastore/abc/series/1", true},
        {"/datastore/abc", false},
        {"/datastore/abc/imageSet/x/getImageSet", false},
        {"/datastore/abc/studiesX", false},
        {"/datastore//studies", false},
        {"/datastore", false},
        {"/studies/1.2", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (ahl__dicomweb_path(cases[i].path) != cases[i].dicomweb)
            fail_msg("%s: expected %d", cases[i].path, cases[i].dicomweb);
}

/* The Accept header's negotiation, shared by frames and retrieve: the first range that can be
 * given wins, and its type says whether an instance is answered as multipart/related. */
static void test_accept(void **state)
{
    (void)state;
    static const char stored[] = "1.2.840.10008.1.2.4.202";
    static const struct {
        const char *accept, *stored;
        bool ok;
        const char *ts;
        bool multipart;
    } cases[] = {
        {NULL, stored, true, "1.2.840.10008.1.2.1", false},
        {"application/dicom", stored, true, "1.2.840.10008.1.2.1", false},
        {"application/dicom; transfer-syntax=*", stored, true, "*", false},
        {"Multipart/Related; type=\"application/dicom\"; transfer-syntax=*", stored, true, "*",
         true},
        {" multipart/related; type=\"application/dicom\"", stored, true, "1.2.840.10008.1.2.1",
         true},
        {"application/dicom; Transfer-Syntax=\"1.2.840.10008.1.2.4.202\"", stored, true, stored,
         false},
        {"application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50", stored, false,
         "1.2.840.10008.1.2.4.50", false},
        {"application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50, multipart/related; "
         "type=\"application/dicom\"; transfer-syntax=*",
         stored, true, "*", true},
        /* Instances in several syntaxes: only '*' and the default can be given. */
        {"application/dicom; transfer-syntax=1.2.840.10008.1.2.4.202", "", false, stored, false},
        {"application/dicom; transfer-syntax=", "", false, "", false},
        {"application/dicom; transfer-syntax=", stored, false, "", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char ts[72];
        bool multipart = !cases[i].multipart;
        bool ok = ahl__dicomweb_choose_syntax(cases[i].accept, cases[i].stored, ts, sizeof ts,
                                              &multipart);
        if (ok != cases[i].ok || strcmp(ts, cases[i].ts) != 0 ||
            (ok && multipart != cases[i].multipart))
            fail_msg("case %zu (%s): %d %s %d", i, cases[i].accept ? cases[i].accept : "(none)", ok,
                     ts, multipart);
    }
}

static void test_selection(void **state)
{
    struct fixture *f = *state;
    struct ahl_err err;
    json_t *out;
    char q[128];

    /* Default: the primary set only. */
    assert_int_equal(serve(f, "/studies/" STUDY "/series/" SERIES "/metadata", NULL, &out, &err),
                     0);
    assert_int_equal(json_array_size(out), 1);
    assert_string_equal(name_of(out), "Primary^P");
    const char *uri = json_string_value(
        json_object_get(json_object_get(json_array_get(out, 0), "7FE00010"), "BulkDataURI"));
    char want[512];
    snprintf(want, sizeof want,
             "http://example.test:8080/datastore/%s/studies/" STUDY "/series/" SERIES
             "/instances/" SOP "/frames/1",
             f->ds);
    assert_string_equal(uri, want);
    json_decref(out);

    /* A non-primary set by id; its BulkDataURI keeps the selection. */
    snprintf(q, sizeof q, "imageSetId=%s", f->other);
    assert_int_equal(
        serve(f, "/studies/" STUDY "/series/" SERIES "/instances/" SOP "/metadata", q, &out, &err),
        0);
    assert_string_equal(name_of(out), "Other^O");
    uri = json_string_value(
        json_object_get(json_object_get(json_array_get(out, 0), "7FE00010"), "BulkDataURI"));
    assert_non_null(strstr(uri, "/frames/1?imageSetId="));
    json_decref(out);

    /* A version of it, after an update. */
    struct ahl_meta_update u = {
        .latest_version = 1, .updatable = "{\"Patient\":{\"DICOM\":{\"PatientName\":\"New^N\"}}}"};
    u.updatable_len = strlen(u.updatable);
    struct ahl_meta_update_result res;
    if (ahl_meta_update(f->meta, f->ds, f->other, &u, &res, &err) < 0)
        fail_msg("update: %s", err.msg);
    assert_int_equal(serve(f, "/studies/" STUDY "/metadata", q, &out, &err), 0);
    assert_string_equal(name_of(out), "New^N");
    json_decref(out);
    snprintf(q, sizeof q, "imageSetId=%s&versionId=1", f->other);
    assert_int_equal(serve(f, "/studies/" STUDY "/metadata", q, &out, &err), 0);
    assert_string_equal(name_of(out), "Other^O");
    json_decref(out);
}

static void test_errors(void **state)
{
    struct fixture *f = *state;
    struct ahl_err err;
    json_t *out;
    char q1[128], q2[128];
    snprintf(q1, sizeof q1, "imageSetId=%s&versionId=7", f->other);
    snprintf(q2, sizeof q2, "imageSetId=%s&imageSetId=%s", f->other, f->other);
    const struct {
        const char *path, *query;
        int rc;
        int status;
    } cases[] = {
        {"/studies/9.9/metadata", NULL, AHL_ENOTFOUND, 404},
        {"/studies/" STUDY "/series/9.9/metadata", NULL, AHL_ENOTFOUND, 404},
        {"/studies/" STUDY "/series/" SERIES "/instances/9.9/metadata", NULL, AHL_ENOTFOUND, 404},
        {"/studies/" STUDY "/metadata", q1, AHL_ENOTFOUND, 404},
        {"/studies/" STUDY "/metadata", "imageSetId=ffffffffffffffffffffffffffffffff",
         AHL_ENOTFOUND, 404},
        {"/studies/" STUDY "/metadata", q2, AHL_EINVAL, 400},
        {"/studies/" STUDY "/metadata", "versionId=1", AHL_EINVAL, 400},
        {"/studies/" STUDY "/metadata", "imageSetId=ABC", AHL_EINVAL, 400},
        {"/studies/1.2%2E3/metadata", NULL, AHL_EINVAL, 400},
        {"/studies/9.9", NULL, AHL_ENOTFOUND, 404},
        {"/studies/" STUDY "/series/9.9", NULL, AHL_ENOTFOUND, 404},
        {"/studies/" STUDY "/series/" SERIES "/instances/9.9", NULL, AHL_ENOTFOUND, 404},
        {"/studies/" STUDY "/series/" SERIES "/instances/" SOP "/rendered", NULL, AHL_ENOTFOUND,
         404},
        {"/series/" SERIES, NULL, AHL_ENOTFOUND, 404},
        {"/studies/" STUDY "/metadata/x", NULL, AHL_ENOTFOUND, 404},
        {"/studies/" STUDY "/series/" SERIES "/instances/" SOP "/frames/", NULL, AHL_ENOTFOUND,
         404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = serve(f, cases[i].path, cases[i].query, &out, &err);
        if (rc != cases[i].rc)
            fail_msg("%s?%s: rc %d, want %d (%s)", cases[i].path,
                     cases[i].query ? cases[i].query : "", rc, cases[i].rc, err.msg);
        assert_int_equal(ahl_api_error_status(ahl_api_error_type(&err)), cases[i].status);
        assert_true(err.msg[0]);
    }
    /* Another data store, and another method. */
    char path[128];
    snprintf(path, sizeof path, "/datastore/%s/studies/" STUDY "/metadata",
             "ffffffffffffffffffffffffffffffff");
    struct ahl__dicomweb_request rq = {.method = "GET", .path = path};
    struct ahl_api_resp resp = {.fd = -1};
    ahl_buf_init(&resp.raw, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl__dicomweb_serve(&f->svc, &rq, &resp, &err), AHL_ENOTFOUND);
    snprintf(path, sizeof path, "/datastore/%s/studies/" STUDY "/metadata", f->ds);
    rq.method = "POST";
    assert_int_equal(ahl__dicomweb_serve(&f->svc, &rq, &resp, &err), AHL_ENOTFOUND);
    ahl_buf_release(&resp.raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_accept),
        cmocka_unit_test_setup_teardown(test_selection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
