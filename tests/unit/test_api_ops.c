/* Unit tests for the image-set operations of src/api over the real engine and SQLite store: each
 * request goes through the model decoder and the operation's handler, as the server runs them,
 * with image sets made by the engine (the import runner is tested elsewhere). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <sqlite3.h>
#include <zlib.h>

#include "api/api.h"
#include "api/codec.h"
#include "base/clock.h"
#include "aws/sigv4.h"
#include "api/ops_internal.h"
#include "base/codec.h"
#include "blob/framestore.h"
#include "meta/meta.h"
#include "store/store.h"
#include "store_fixture.h"

struct fixture {
    char dir[64];
    struct ahl_store *store;
    struct ahl_meta *meta;
    struct ahl_api_service svc;
    char ds[33];
    const char *content_type; /* of the last raw response */
};

/* Runs one operation as the server does: decode + validate, then the handler. Returns the
 * handler's rc; *out receives the JSON response (or NULL), raw the raw body. */
static int call(struct fixture *f, enum ahl_op_id op, const char *path, const char *query,
                const char *body, json_t **out, struct ahl_buf *raw, struct ahl_err *err)
{
    struct ahl_api_http http = {.method = ahl_model_ops[op].method,
                                .path = path,
                                .query = query,
                                .body = body,
                                .body_len = body ? strlen(body) : 0};
    json_t *in = NULL;
    struct ahl_api_resp resp = {.fd = -1};
    *out = NULL;
    ahl_err_clear(err);
    int rc = ahl_api_decode(op, &http, &in, err);
    if (rc < 0)
        return rc;
    resp.json = json_object();
    ahl_buf_init(&resp.raw, AHL_BUF_UNLIMITED);
    rc = ahl__api_handlers[op](&f->svc, in, &resp, err);
    f->content_type = resp.content_type;
    json_decref(in);
    if (raw)
        ahl_buf_add(raw, resp.raw.data, resp.raw.len);
    ahl_buf_release(&resp.raw);
    if (resp.fd >= 0) {
        /* A streamed body: read it all, as the server's connection would. */
        char chunk[4096];
        ssize_t n;
        while ((n = read(resp.fd, chunk, sizeof chunk)) > 0)
            if (raw)
                ahl_buf_add(raw, chunk, (size_t)n);
        close(resp.fd);
    }
    if (rc < 0) {
        json_decref(resp.json);
        return rc;
    }
    *out = resp.json;
    return 0;
}

static json_t *ok(struct fixture *f, enum ahl_op_id op, const char *path, const char *query,
                  const char *body)
{
    json_t *out;
    struct ahl_err err;
    int rc = call(f, op, path, query, body, &out, NULL, &err);
    if (rc < 0)
        fail_msg("%s %s?%s: %d %s: %s", ahl_model_ops[op].name, path, query ? query : "", rc,
                 ahl_api_error_type(&err), err.msg);
    return out;
}

static void fails(struct fixture *f, enum ahl_op_id op, const char *path, const char *query,
                  const char *body, const char *aws_type)
{
    json_t *out;
    struct ahl_err err;
    int rc = call(f, op, path, query, body, &out, NULL, &err);
    if (rc == 0 || strcmp(ahl_api_error_type(&err), aws_type) != 0)
        fail_msg("%s %s: rc %d %s (%s), want %s", ahl_model_ops[op].name, path, rc,
                 rc ? ahl_api_error_type(&err) : "-", rc ? err.msg : "", aws_type);
}

static json_t *make_doc(const char *patient_id, const char *study_uid, const char *series_uid,
                        const char *sop_uid, const char *study_date)
{
    return json_pack("{s:{s:{s:s,s:s}},s:{s:{s:s,s:s,s:s,s:s},s:{s:{s:{s:s,s:s,s:s},s:{s:{s:{s:s,s:"
                     "s}}}}}}}",
                     "Patient", "DICOM", "PatientID", patient_id, "PatientName", "DOE^JANE",
                     "Study", "DICOM", "StudyInstanceUID", study_uid, "StudyDate", study_date,
                     "StudyTime", "101500", "AccessionNumber", "ACC1", "Series", series_uid,
                     "DICOM", "SeriesInstanceUID", series_uid, "Modality", "CT", "SeriesNumber",
                     "3", "Instances", sop_uid, "DICOM", "SOPInstanceUID", sop_uid, "SOPClassUID",
                     "1.2.840.10008.5.1.4.1.1.2");
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ahl-api-ops-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(ahl_test_store_open(f->dir, 0, &f->store), 0);
    assert_int_equal(ahl_meta_open(f->store, NULL, &f->meta), 0);
    f->svc.meta = f->meta;
    f->svc.store = f->store;
    snprintf(f->svc.region, sizeof f->svc.region, "us-east-1");
    snprintf(f->svc.account_id, sizeof f->svc.account_id, "123456789012");
    json_t *r = ok(f, AHL_OP_CreateDatastore, "/datastore", NULL,
                   "{\"clientToken\":\"ops-test\",\"datastoreName\":\"ops\"}");
    snprintf(f->ds, sizeof f->ds, "%s", ahl_api_str(r, "datastoreId"));
    json_decref(r);
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

static void create_set(struct fixture *f, const char *patient, const char *study,
                       const char *series, const char *sop, const char *date, char id[33])
{
    struct ahl_meta_info info;
    struct ahl_err err;
    json_t *doc = make_doc(patient, study, series, sop, date);
    struct ahl_meta_create_opts o = {.is_primary = true};
    int rc = ahl_meta_imageset_create(f->meta, f->ds, doc, &o, &info, &err);
    if (rc < 0)
        fail_msg("create: %s", err.msg);
    json_decref(doc);
    snprintf(id, 33, "%s", info.set.id);
}

static char *b64(const char *s)
{
    struct ahl_buf b;
    ahl_buf_init(&b, 1 << 20);
    assert_int_equal(ahl_base64_encode((const uint8_t *)s, strlen(s), &b), 0);
    return ahl_buf_detach(&b, NULL);
}

static void test_get_update_versions_revert(void **state)
{
    struct fixture *f = *state;
    char id[33], path[256], body[1024], q[64];
    create_set(f, "P1", "1.2.3", "1.2.3.4", "1.2.3.4.5", "20240102", id);

    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageSet", f->ds, id);
    json_t *r = ok(f, AHL_OP_GetImageSet, path, NULL, NULL);
    assert_string_equal(ahl_api_str(r, "versionId"), "1");
    assert_string_equal(ahl_api_str(r, "imageSetState"), "ACTIVE");
    assert_true(json_is_true(json_object_get(r, "isPrimary")));
    assert_true(strstr(ahl_api_str(r, "imageSetArn"), "/imageset/") != NULL);
    json_decref(r);

    /* Update the patient name: version 2, reported LOCKED / UPDATING. */
    char *upd =
        b64("{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":\"ROE^RICHARD\"}}}");
    snprintf(body, sizeof body, "{\"DICOMUpdates\":{\"updatableAttributes\":\"%s\"}}", upd);
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/updateImageSetMetadata", f->ds, id);
    r = ok(f, AHL_OP_UpdateImageSetMetadata, path, "latestVersion=1", body);
    assert_string_equal(ahl_api_str(r, "latestVersionId"), "2");
    assert_string_equal(ahl_api_str(r, "imageSetState"), "LOCKED");
    assert_string_equal(ahl_api_str(r, "imageSetWorkflowStatus"), "UPDATING");
    json_decref(r);
    /* A stale latestVersion is a conflict and changes nothing. */
    fails(f, AHL_OP_UpdateImageSetMetadata, path, "latestVersion=1", body, AHL_AWS_CONFLICT);
    free(upd);
    /* Over the 10,000-byte update quota (but within the model's 30,000): HTTP 402. */
    {
        char big[10100], *bigbody = malloc(20000);
        memset(big, 'A', sizeof big);
        int n = snprintf(big, sizeof big,
                         "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientComments\":\"");
        memset(big + n, 'x', sizeof big - (size_t)n - 8);
        snprintf(big + sizeof big - 8, 8, "\"}}}");
        char *enc = b64(big);
        snprintf(bigbody, 20000, "{\"DICOMUpdates\":{\"updatableAttributes\":\"%s\"}}", enc);
        fails(f, AHL_OP_UpdateImageSetMetadata, path, "latestVersion=2", bigbody, AHL_AWS_QUOTA);
        assert_int_equal(ahl_api_error_status(AHL_AWS_QUOTA), 402);
        free(enc);
        free(bigbody);
    }

    /* The metadata: gzip, and version 1 still has the old name. */
    const char *names[] = {"ROE^RICHARD", "DOE^JANE"};
    for (int v = 0; v < 2; v++) {
        struct ahl_buf gz;
        json_t *out;
        struct ahl_err err;
        ahl_buf_init(&gz, AHL_BUF_UNLIMITED);
        snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageSetMetadata", f->ds, id);
        assert_int_equal(call(f, AHL_OP_GetImageSetMetadata, path, v ? "version=1" : NULL, NULL,
                              &out, &gz, &err),
                         0);
        json_decref(out);
        assert_true(gz.len > 18);
        assert_int_equal((unsigned char)gz.data[0], 0x1f);
        assert_int_equal((unsigned char)gz.data[1], 0x8b);
        char text[65536];
        z_stream z = {0};
        assert_int_equal(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
        z.next_in = (Bytef *)gz.data;
        z.avail_in = (uInt)gz.len;
        z.next_out = (Bytef *)text;
        z.avail_out = sizeof text - 1;
        assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
        text[z.total_out] = '\0';
        inflateEnd(&z);
        ahl_buf_release(&gz);
        json_t *doc = json_loads(text, 0, NULL);
        assert_non_null(doc);
        assert_string_equal(
            json_string_value(json_object_get(
                json_object_get(json_object_get(doc, "Patient"), "DICOM"), "PatientName")),
            names[v]);
        assert_string_equal(json_string_value(json_object_get(doc, "ImageSetID")), id);
        json_decref(doc);
    }

    /* Versions, newest first, one per page. */
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/listImageSetVersions", f->ds, id);
    r = ok(f, AHL_OP_ListImageSetVersions, path, "maxResults=1", NULL);
    json_t *list = json_object_get(r, "imageSetPropertiesList");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(ahl_api_str(json_array_get(list, 0), "versionId"), "2");
    assert_non_null(ahl_api_str(json_array_get(list, 0), "ImageSetWorkflowStatus"));
    const char *tok = ahl_api_str(r, "nextToken");
    assert_non_null(tok);
    struct ahl_buf qb;
    ahl_buf_init(&qb, 4096);
    ahl_buf_addf(&qb, "maxResults=1&nextToken=");
    for (const char *p = tok; *p; p++)
        ahl_buf_addf(&qb, (*p == '+' || *p == '/' || *p == '=') ? "%%%02X" : "%c", *p);
    json_t *r2 = ok(f, AHL_OP_ListImageSetVersions, path, qb.data, NULL);
    ahl_buf_release(&qb);
    list = json_object_get(r2, "imageSetPropertiesList");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(ahl_api_str(json_array_get(list, 0), "versionId"), "1");
    assert_null(json_object_get(r2, "nextToken"));
    json_decref(r);
    json_decref(r2);

    /* Revert to version 1: version 3 with the old content. */
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/updateImageSetMetadata", f->ds, id);
    r = ok(f, AHL_OP_UpdateImageSetMetadata, path, "latestVersion=2",
           "{\"revertToVersionId\":\"1\"}");
    assert_string_equal(ahl_api_str(r, "latestVersionId"), "3");
    json_decref(r);
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageSet", f->ds, id);
    snprintf(q, sizeof q, "version=9");
    fails(f, AHL_OP_GetImageSet, path, q, NULL, AHL_AWS_NOT_FOUND);
    r = ok(f, AHL_OP_GetImageSet, path, "version=2", NULL);
    assert_string_equal(ahl_api_str(r, "versionId"), "2");
    json_decref(r);
}

static void test_search_tags_copy_delete(void **state)
{
    struct fixture *f = *state;
    char a[33], b[33], path[256], body[1024];
    create_set(f, "PA", "1.9.1", "1.9.1.1", "1.9.1.1.1", "20200101", a);
    create_set(f, "PB", "1.9.2", "1.9.2.1", "1.9.2.1.1", "20230615", b);
    snprintf(path, sizeof path, "/datastore/%s/searchImageSets", f->ds);

    json_t *r =
        ok(f, AHL_OP_SearchImageSets, path, NULL,
           "{\"filters\":[{\"values\":[{\"DICOMPatientId\":\"PB\"}],\"operator\":\"EQUAL\"}]}");
    json_t *items = json_object_get(r, "imageSetsMetadataSummaries");
    assert_int_equal(json_array_size(items), 1);
    json_t *it = json_array_get(items, 0);
    assert_string_equal(ahl_api_str(it, "imageSetId"), b);
    json_t *tags = json_object_get(it, "DICOMTags");
    assert_string_equal(ahl_api_str(tags, "DICOMPatientId"), "PB");
    assert_string_equal(ahl_api_str(tags, "DICOMStudyInstanceUID"), "1.9.2");
    assert_string_equal(ahl_api_str(tags, "DICOMSeriesModality"), "CT");
    assert_int_equal(json_integer_value(json_object_get(tags, "DICOMSeriesNumber")), 3);
    json_decref(r);

    r = ok(
        f, AHL_OP_SearchImageSets, path, NULL,
        "{\"filters\":[{\"values\":[{\"DICOMStudyDateAndTime\":{\"DICOMStudyDate\":\"20191231\"}},"
        "{\"DICOMStudyDateAndTime\":{\"DICOMStudyDate\":\"20211231\"}}],\"operator\":\"BETWEEN\"}]"
        "}");
    items = json_object_get(r, "imageSetsMetadataSummaries");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(ahl_api_str(json_array_get(items, 0), "imageSetId"), a);
    json_decref(r);

    r = ok(f, AHL_OP_SearchImageSets, path, "maxResults=1",
           "{\"sort\":{\"sortField\":\"DICOMStudyDateAndTime\",\"sortOrder\":\"ASC\"},"
           "\"filters\":[{\"values\":[{\"createdAt\":0},{\"createdAt\":99999999999}],"
           "\"operator\":\"BETWEEN\"}]}");
    items = json_object_get(r, "imageSetsMetadataSummaries");
    assert_int_equal(json_array_size(items), 1);
    assert_non_null(json_object_get(r, "nextToken"));
    assert_string_equal(ahl_api_str(json_object_get(r, "sort"), "sortOrder"), "ASC");
    json_decref(r);
    fails(f, AHL_OP_SearchImageSets, path, NULL,
          "{\"filters\":[{\"values\":[{\"DICOMStudyDateAndTime\":{\"DICOMStudyDate\":\"2020-01-"
          "01\"}},"
          "{\"DICOMStudyDateAndTime\":{\"DICOMStudyDate\":\"20211231\"}}],\"operator\":\"BETWEEN\"}"
          "]}",
          AHL_AWS_VALIDATION);

    /* Tags on an image set ARN. */
    char arn[256];
    snprintf(arn, sizeof arn,
             "/tags/arn%%3Aaws%%3Amedical-imaging%%3Aus-east-1%%3A123456789012%%3Adatastore%%2F%s"
             "%%2Fimageset%%2F%s",
             f->ds, a);
    json_decref(ok(f, AHL_OP_TagResource, arn, NULL, "{\"tags\":{\"k\":\"v\"}}"));
    r = ok(f, AHL_OP_ListTagsForResource, arn, NULL, NULL);
    assert_string_equal(ahl_api_str(json_object_get(r, "tags"), "k"), "v");
    json_decref(r);

    /* A data store with image sets cannot be deleted. */
    snprintf(path, sizeof path, "/datastore/%s", f->ds);
    fails(f, AHL_OP_DeleteDatastore, path, NULL, NULL, AHL_AWS_CONFLICT);

    /* Copy a into a new set. */
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/copyImageSet", f->ds, a);
    r = ok(f, AHL_OP_CopyImageSet, path, NULL, "{\"sourceImageSet\":{\"latestVersionId\":\"1\"}}");
    const char *dest =
        ahl_api_str(json_object_get(r, "destinationImageSetProperties"), "imageSetId");
    assert_non_null(dest);
    assert_string_not_equal(dest, a);
    assert_string_equal(ahl_api_str(json_object_get(r, "sourceImageSetProperties"), "imageSetId"),
                        a);
    json_decref(r);
    snprintf(body, sizeof body,
             "{\"sourceImageSet\":{\"latestVersionId\":\"1\"},"
             "\"destinationImageSet\":{\"imageSetId\":\"%s\",\"latestVersionId\":\"1\"}}",
             a);
    fails(f, AHL_OP_CopyImageSet, path, NULL, body, AHL_AWS_VALIDATION);

    /* Frames: a real lookup, and this set lists none. */
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageFrame", f->ds, a);
    fails(f, AHL_OP_GetImageFrame, path, NULL,
          "{\"imageFrameId\":\"0123456789abcdef0123456789abcdef\"}", AHL_AWS_NOT_FOUND);

    /* Delete: reported LOCKED/DELETING, then a DELETED tombstone; deleting again reports it. */
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/deleteImageSet", f->ds, b);
    r = ok(f, AHL_OP_DeleteImageSet, path, NULL, NULL);
    assert_string_equal(ahl_api_str(r, "imageSetState"), "LOCKED");
    assert_string_equal(ahl_api_str(r, "imageSetWorkflowStatus"), "DELETING");
    json_decref(r);
    r = ok(f, AHL_OP_DeleteImageSet, path, NULL, NULL);
    assert_string_equal(ahl_api_str(r, "imageSetState"), "DELETED");
    assert_string_equal(ahl_api_str(r, "imageSetWorkflowStatus"), "DELETED");
    json_decref(r);
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageSet", f->ds, b);
    r = ok(f, AHL_OP_GetImageSet, path, NULL, NULL);
    assert_string_equal(ahl_api_str(r, "imageSetState"), "DELETED");
    assert_string_equal(ahl_api_str(r, "imageSetWorkflowStatus"), "DELETED");
    assert_non_null(json_object_get(r, "deletedAt"));
    json_decref(r);
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageSetMetadata", f->ds, b);
    fails(f, AHL_OP_GetImageSetMetadata, path, NULL, NULL, AHL_AWS_NOT_FOUND);
    snprintf(path, sizeof path, "/datastore/%s/searchImageSets", f->ds);
    r = ok(f, AHL_OP_SearchImageSets, path, NULL,
           "{\"filters\":[{\"values\":[{\"DICOMPatientId\":\"PB\"}],\"operator\":\"EQUAL\"}]}");
    assert_int_equal(json_array_size(json_object_get(r, "imageSetsMetadataSummaries")), 0);
    json_decref(r);
}

/* A set of two instances in one series, each with one frame stored as JPEG baseline. */
static void create_framed_set(struct fixture *f, const char *patient, const char *frame1,
                              const char *frame2, char id[33])
{
    struct ahl_meta_info info;
    struct ahl_err err;
    json_t *doc = json_pack(
        "{s:{s:{s:s}},s:{s:{s:s},s:{s:{s:{s:s},s:{s:{s:{s:s},s:s,s:[{s:s}]},s:{s:{s:s},s:s,s:[{"
        "s:s}]}}}}}}",
        "Patient", "DICOM", "PatientID", patient, "Study", "DICOM", "StudyInstanceUID", "1.7.1",
        "Series", "1.7.1.1", "DICOM", "SeriesInstanceUID", "1.7.1.1", "Instances", "1.7.1.1.1",
        "DICOM", "SOPInstanceUID", "1.7.1.1.1", "StoredTransferSyntaxUID", "1.2.840.10008.1.2.4.50",
        "ImageFrames", "ID", frame1, "1.7.1.1.2", "DICOM", "SOPInstanceUID", "1.7.1.1.2",
        "StoredTransferSyntaxUID", "1.2.840.10008.1.2.4.202", "ImageFrames", "ID", frame2);
    assert_non_null(doc);
    if (ahl_meta_imageset_create(f->meta, f->ds, doc, NULL, &info, &err) < 0)
        fail_msg("create: %s", err.msg);
    json_decref(doc);
    snprintf(id, 33, "%s", info.set.id);
}

/* GetImageFrame answers from the frame index: the set must list the frame; copies list what they
 * copied; deleted sets list nothing. */
static void test_frame_index(void **state)
{
    struct fixture *f = *state;
    /* Frames are served only when their bytes are what their ids name: x a JPEG, y an HTJ2K
     * codestream as far as its SIZ (1x1, one 8-bit component), all its JPH header needs. */
    static const uint8_t jpeg[6] = "\xff\xd8jpeg";
    static const uint8_t htj2k[] = {
        0xff, 0x4f, 0xff, 0x51, 0, 41, 0x40, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,    0,   0,
        0,    0,    0,    1,    0, 0,  0,    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 7, 1, 1, 0xff, 0xd9};
    char x[33], y[33], a[33], b[33], path[256], body[512], froot[128];
    struct ahl_err err;
    ahl_frame_id(AHL_TS_JPEG_BASELINE, jpeg, sizeof jpeg, x);
    ahl_frame_id(AHL_TS_HTJ2K_RPCL, htj2k, sizeof htj2k, y);
    snprintf(froot, sizeof froot, "%s/frames", f->dir);
    assert_int_equal(ahl_framestore_open(&f->svc.frames, froot, &err), 0);
    f->svc.frames_ready = 1;
    assert_int_equal(ahl_framestore_put(&f->svc.frames, x, jpeg, sizeof jpeg, &err), 0);
    assert_int_equal(ahl_framestore_put(&f->svc.frames, y, htj2k, sizeof htj2k, &err), 0);
    create_framed_set(f, "FA", x, y, a);
    create_set(f, "FB", "1.8.1", "1.8.1.1", "1.8.1.1.1", "20200101", b);

    struct {
        const char *set, *frame, *type; /* type NULL: ResourceNotFoundException */
    } before[] = {
        {a, x, "image/jpeg"},
        {a, y, "image/jph"},
        {b, x, NULL},
        {a, "00000000000000000000000000000000", NULL},
    };
    for (size_t i = 0; i < sizeof before / sizeof *before; i++) {
        snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageFrame", f->ds,
                 before[i].set);
        snprintf(body, sizeof body, "{\"imageFrameId\":\"%s\"}", before[i].frame);
        if (!before[i].type) {
            fails(f, AHL_OP_GetImageFrame, path, NULL, body, AHL_AWS_NOT_FOUND);
            continue;
        }
        struct ahl_buf raw;
        json_t *out;
        ahl_buf_init(&raw, AHL_BUF_UNLIMITED);
        assert_int_equal(call(f, AHL_OP_GetImageFrame, path, NULL, body, &out, &raw, &err), 0);
        json_decref(out);
        assert_string_equal(f->content_type, before[i].type);
        /* The HTJ2K frame comes as a JPH file: 85 bytes of boxes, then the codestream. */
        assert_int_equal(raw.len, before[i].frame == x ? sizeof jpeg : 85 + sizeof htj2k);
        if (before[i].frame == y)
            assert_memory_equal(raw.data + 85, htj2k, sizeof htj2k);
        ahl_buf_release(&raw);
    }

    /* A set stored before the frame index existed: its rows gone and the set queued, as the
     * schema upgrade leaves it. Opening the engine indexes it. (The SQLite file's own upgrade:
     * a PostgreSQL store had the frame index from its first schema.) */
    if (!ahl_test_store_is_pg()) {
        char db[128], sql[256];
        sqlite3 *h;
        snprintf(db, sizeof db, "%s/%s", f->dir, AHL_STORE_SQLITE_FILE);
        snprintf(sql, sizeof sql,
                 "DELETE FROM frame WHERE imageset_id='%s';"
                 "INSERT INTO frame_backfill VALUES('%s');",
                 a, a);
        assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
        sqlite3_busy_timeout(h, 5000);
        assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(h);
        snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageFrame", f->ds, a);
        snprintf(body, sizeof body, "{\"imageFrameId\":\"%s\"}", x);
        fails(f, AHL_OP_GetImageFrame, path, NULL, body, AHL_AWS_NOT_FOUND);
        ahl_meta_close(f->meta);
        assert_int_equal(ahl_meta_open(f->store, NULL, &f->meta), 0);
        f->svc.meta = f->meta;
        json_decref(ok(f, AHL_OP_GetImageFrame, path, NULL, body));
        snprintf(body, sizeof body, "{\"imageFrameId\":\"%s\"}", y);
        json_decref(ok(f, AHL_OP_GetImageFrame, path, NULL, body));
    }

    /* A whole copy lists both frames; a copy of one instance lists only its frame. */
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/copyImageSet", f->ds, a);
    json_t *r =
        ok(f, AHL_OP_CopyImageSet, path, NULL, "{\"sourceImageSet\":{\"latestVersionId\":\"1\"}}");
    char whole[33], part[33];
    snprintf(whole, sizeof whole, "%s",
             ahl_api_str(json_object_get(r, "destinationImageSetProperties"), "imageSetId"));
    json_decref(r);
    /* copiableAttributes is a JSON document inside a JSON string. */
    json_t *copy = json_pack("{s:{s:s,s:{s:s}}}", "sourceImageSet", "latestVersionId", "1",
                             "DICOMCopies", "copiableAttributes",
                             "{\"SchemaVersion\":\"1.1\",\"Study\":{\"Series\":{\"1.7.1.1\":{"
                             "\"Instances\":{\"1.7.1.1.2\":{}}}}}}");
    char *copy_body = json_dumps(copy, JSON_COMPACT);
    json_decref(copy);
    snprintf(body, sizeof body, "%s", copy_body);
    free(copy_body);
    r = ok(f, AHL_OP_CopyImageSet, path, NULL, body);
    snprintf(part, sizeof part, "%s",
             ahl_api_str(json_object_get(r, "destinationImageSetProperties"), "imageSetId"));
    json_decref(r);

    /* An update makes a new version; the frames stay listed. Then a is deleted. */
    char *upd = b64("{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":\"X^Y\"}}}");
    snprintf(body, sizeof body, "{\"DICOMUpdates\":{\"updatableAttributes\":\"%s\"}}", upd);
    free(upd);
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/updateImageSetMetadata", f->ds, a);
    json_decref(ok(f, AHL_OP_UpdateImageSetMetadata, path, "latestVersion=1", body));
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageFrame", f->ds, a);
    snprintf(body, sizeof body, "{\"imageFrameId\":\"%s\"}", x);
    json_decref(ok(f, AHL_OP_GetImageFrame, path, NULL, body));
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/deleteImageSet", f->ds, a);
    json_decref(ok(f, AHL_OP_DeleteImageSet, path, NULL, NULL));

    struct {
        const char *set, *frame;
        bool found;
    } after[] = {
        {a, x, false},    {a, y, false},   {whole, x, true},
        {whole, y, true}, {part, y, true}, {part, x, false},
    };
    for (size_t i = 0; i < sizeof after / sizeof *after; i++) {
        snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageFrame", f->ds, after[i].set);
        snprintf(body, sizeof body, "{\"imageFrameId\":\"%s\"}", after[i].frame);
        if (after[i].found)
            json_decref(ok(f, AHL_OP_GetImageFrame, path, NULL, body));
        else
            fails(f, AHL_OP_GetImageFrame, path, NULL, body, AHL_AWS_NOT_FOUND);
    }
}

/* Search paging is by keyset: every set once across pages in both orders, tokens bound to the
 * criteria they were issued for. */
static void test_search_paging(void **state)
{
    struct fixture *f = *state;
    char ids[23][33], path[256];
    for (int i = 0; i < 23; i++) {
        char pid[16], study[32], series[32], sop[32];
        snprintf(pid, sizeof pid, "PG%d", i % 2);
        snprintf(study, sizeof study, "1.5.%d", i);
        snprintf(series, sizeof series, "1.5.%d.1", i);
        snprintf(sop, sizeof sop, "1.5.%d.1.1", i);
        create_set(f, pid, study, series, sop, i % 3 ? "20200101" : "20220202", ids[i]);
    }
    snprintf(path, sizeof path, "/datastore/%s/searchImageSets", f->ds);
    static const char *const bodies[] = {
        "{}",
        "{\"sort\":{\"sortField\":\"createdAt\",\"sortOrder\":\"ASC\"}}",
        "{\"sort\":{\"sortField\":\"DICOMStudyDateAndTime\",\"sortOrder\":\"DESC\"}}",
        "{\"filters\":[{\"values\":[{\"DICOMPatientId\":\"PG1\"}],\"operator\":\"EQUAL\"}]}",
        "{\"filters\":[{\"values\":[{\"isPrimary\":true}],\"operator\":\"EQUAL\"},"
        "{\"values\":[{\"DICOMPatientId\":\"PG0\"}],\"operator\":\"EQUAL\"}],"
        "\"sort\":{\"sortField\":\"updatedAt\",\"sortOrder\":\"ASC\"}}",
    };
    static const int want[] = {23, 23, 23, 11, 12};
    for (size_t k = 0; k < sizeof bodies / sizeof *bodies; k++) {
        int seen[23] = {0}, total = 0;
        char token[512] = "", q[600];
        for (int page = 0; page < 30; page++) {
            if (token[0])
                snprintf(q, sizeof q, "maxResults=4&nextToken=%s", token);
            else
                snprintf(q, sizeof q, "maxResults=4");
            json_t *r = ok(f, AHL_OP_SearchImageSets, path, q, bodies[k]);
            json_t *items = json_object_get(r, "imageSetsMetadataSummaries");
            assert_true(json_array_size(items) <= 4);
            for (size_t i = 0; i < json_array_size(items); i++) {
                const char *id = ahl_api_str(json_array_get(items, i), "imageSetId");
                int j = 0;
                while (j < 23 && strcmp(ids[j], id))
                    j++;
                assert_true(j < 23);
                assert_int_equal(seen[j]++, 0);
                total++;
            }
            const char *next = ahl_api_str(r, "nextToken");
            if (!next) {
                json_decref(r);
                break;
            }
            /* The token is base64: percent-encode what the query string needs. */
            size_t o = 0;
            for (const char *c = next; *c && o + 4 < sizeof token; c++)
                o += (size_t)snprintf(token + o, sizeof token - o,
                                      (*c == '+' || *c == '/' || *c == '=') ? "%%%02X" : "%c",
                                      (unsigned char)*c);
            json_decref(r);
            /* Replayed with other criteria, the token is refused. */
            snprintf(q, sizeof q, "nextToken=%s", token);
            fails(f, AHL_OP_SearchImageSets, path, q,
                  "{\"filters\":[{\"values\":[{\"DICOMPatientId\":\"other\"}],\"operator\":"
                  "\"EQUAL\"}]}",
                  AHL_AWS_VALIDATION);
        }
        assert_int_equal(total, want[k]);
    }
    fails(f, AHL_OP_SearchImageSets, path, "nextToken=bm90LWEtdG9rZW4%3D", "{}",
          AHL_AWS_VALIDATION);
    fails(f, AHL_OP_SearchImageSets, path, NULL,
          "{\"filters\":[{\"values\":[{\"createdAt\":20},{\"createdAt\":10}],"
          "\"operator\":\"BETWEEN\"}]}",
          AHL_AWS_VALIDATION);
    fails(f, AHL_OP_SearchImageSets, path, NULL,
          "{\"filters\":[{\"values\":[{\"DICOMPatientId\":\"a\"},{\"DICOMPatientId\":\"b\"}],"
          "\"operator\":\"BETWEEN\"}]}",
          AHL_AWS_VALIDATION);
    fails(f, AHL_OP_SearchImageSets, path, NULL,
          "{\"filters\":[{\"values\":[{\"createdAt\":1},{\"updatedAt\":2}],"
          "\"operator\":\"BETWEEN\"}]}",
          AHL_AWS_VALIDATION);
    fails(f, AHL_OP_SearchImageSets, path, NULL,
          "{\"filters\":[{\"values\":[{\"DICOMPatientId\":\"a\"},{\"DICOMPatientId\":\"b\"}],"
          "\"operator\":\"EQUAL\"}]}",
          AHL_AWS_VALIDATION);
}

/* ---- the same operations over HTTP: the real server, a signed libcurl client ---- */

struct http_reply {
    long status;
    struct ahl_buf body;
    char content_encoding[32];
    char content_type[64];
    char error_type[64];
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    struct http_reply *r = ctx;
    return ahl_buf_add(&r->body, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct http_reply *r = ctx;
    size_t len = size * n;
    static const struct {
        const char *name;
        size_t off, cap;
    } keep[] = {
        {"content-encoding:", offsetof(struct http_reply, content_encoding), 32},
        {"content-type:", offsetof(struct http_reply, content_type), 64},
        {"x-amzn-errortype:", offsetof(struct http_reply, error_type), 64},
    };
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
        size_t nl = strlen(keep[i].name);
        if (len > nl && strncasecmp(p, keep[i].name, nl) == 0) {
            const char *v = p + nl;
            size_t vl = len - nl;
            while (vl && (*v == ' '))
                v++, vl--;
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
                vl--;
            if (vl >= keep[i].cap)
                vl = keep[i].cap - 1;
            memcpy((char *)r + keep[i].off, v, vl);
            ((char *)r + keep[i].off)[vl] = '\0';
        }
    }
    return len;
}

static void http_call(uint16_t port, const char *method, const char *path, const char *secret,
                      struct http_reply *r)
{
    char host[64], url[512], hdr_date[64], hdr_sha[128];
    snprintf(host, sizeof host, "127.0.0.1:%u", (unsigned)port);
    snprintf(url, sizeof url, "http://%s%s", host, path);
    struct ahl_sigv4_header h[] = {{"host", host}};
    struct ahl_sigv4_sign_input in = {.method = method,
                                      .path = path,
                                      .headers = h,
                                      .n_headers = 1,
                                      .payload_hash = AHL_SIGV4_EMPTY_SHA256,
                                      .region = "us-east-1",
                                      .service = "medical-imaging",
                                      .uri_mode = AHL_SIGV4_URI_DOUBLE,
                                      .now_s = ahl_now_ms() / 1000};
    struct ahl_sigv4_credentials cred = {.access_key = "AKIATESTOPS000000001",
                                         .secret_key = secret};
    struct ahl_sigv4_signed sig;
    assert_int_equal(ahl_sigv4_sign(&in, &cred, &sig), 0);
    struct ahl_buf auth;
    ahl_buf_init(&auth, 4096);
    ahl_buf_addf(&auth, "Authorization: %s", sig.authorization.data);
    snprintf(hdr_date, sizeof hdr_date, "x-amz-date: %s", sig.amz_date);
    snprintf(hdr_sha, sizeof hdr_sha, "x-amz-content-sha256: %s", sig.content_sha256);
    struct curl_slist *list = NULL;
    list = curl_slist_append(list, auth.data);
    list = curl_slist_append(list, hdr_date);
    list = curl_slist_append(list, hdr_sha);
    memset(r, 0, sizeof *r);
    ahl_buf_init(&r->body, AHL_BUF_UNLIMITED);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "POST"))
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(c, CURLOPT_POST, !strcmp(method, "POST") ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(list);
    ahl_buf_release(&auth);
    ahl_buf_release(&sig.authorization);
}

static void test_http_streams(void **state)
{
    struct fixture *f = *state;
    struct ahl_api_credentials creds = {0};
    struct ahl_api_server *srv;
    struct ahl_err err;
    char id[33], path[256];
    create_set(f, "PH", "1.7.1", "1.7.1.1", "1.7.1.1.1", "20220202", id);
    assert_int_equal(ahl_api_credentials_add(&creds, "AKIATESTOPS000000001", "ops/secret"), 0);
    struct ahl_api_config cfg = {.listen_host = "127.0.0.1",
                                 .port = 0,
                                 .region = "us-east-1",
                                 .account_id = "123456789012",
                                 .workers = 2,
                                 .data_dir = f->dir,
                                 .credentials = &creds};
    if (ahl_api_server_start(&cfg, f->meta, &srv, &err) < 0)
        fail_msg("server: %s", err.msg);
    uint16_t port = ahl_api_server_port(srv);
    assert_true(port > 0);

    struct http_reply r;
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageSetMetadata", f->ds, id);
    http_call(port, "POST", path, "ops/secret", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_encoding, "gzip");
    assert_string_equal(r.content_type, "application/json");
    struct ahl_buf expect;
    ahl_buf_init(&expect, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl_meta_metadata_json(f->meta, f->ds, id, 0, &expect, &err), 0);
    char *text = malloc(expect.len + 1);
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
    z.next_in = (Bytef *)r.body.data;
    z.avail_in = (uInt)r.body.len;
    z.next_out = (Bytef *)text;
    z.avail_out = (uInt)expect.len + 1;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, expect.len);
    assert_memory_equal(text, expect.data, expect.len);
    inflateEnd(&z);
    free(text);
    ahl_buf_release(&expect);
    ahl_buf_release(&r.body);

    /* Errors over HTTP: unknown set, wrong secret, unknown route. */
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%032d/getImageSetMetadata", f->ds, 0);
    http_call(port, "POST", path, "ops/secret", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.error_type, "ResourceNotFoundException");
    ahl_buf_release(&r.body);
    http_call(port, "GET", "/datastore", "not/the/secret", &r);
    assert_int_equal(r.status, 403);
    assert_string_equal(r.error_type, "InvalidSignatureException");
    ahl_buf_release(&r.body);
    http_call(port, "GET", "/nowhere", "ops/secret", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.error_type, "UnknownOperationException");
    ahl_buf_release(&r.body);
    ahl_api_server_stop(srv);
}

/* Ids derived from idempotency tokens are stored: these values were made by the first releases
 * and must never change, or a retried request would create a second resource. */
static void test_ids_from_tokens(void **state)
{
    struct fixture *f = *state;
    char id[33];
    const char *ds_parts[] = {"datastore", "my-token-1"};
    assert_int_equal(ahl__api_id_from_token(ds_parts, 2, id), 0);
    assert_string_equal(id, "593d3844b1bbf9b2e7c4a72f0da5076a");
    const char *job_parts[] = {"job", "0123456789abcdef0123456789abcdef", "my-token-1"};
    assert_int_equal(ahl__api_id_from_token(job_parts, 3, id), 0);
    assert_string_equal(id, "b82bb8addbb30a37f52d901d361a5cc9");

    /* The same token names the same data store, and CreateDatastore returns that id. */
    json_t *r = ok(f, AHL_OP_CreateDatastore, "/datastore", NULL,
                   "{\"clientToken\":\"my-token-1\",\"datastoreName\":\"tokens\"}");
    assert_string_equal(ahl_api_str(r, "datastoreId"), "593d3844b1bbf9b2e7c4a72f0da5076a");
    json_decref(r);
    r = ok(f, AHL_OP_CreateDatastore, "/datastore", NULL,
           "{\"clientToken\":\"my-token-1\",\"datastoreName\":\"tokens\"}");
    assert_string_equal(ahl_api_str(r, "datastoreId"), "593d3844b1bbf9b2e7c4a72f0da5076a");
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_update_versions_revert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_tags_copy_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_from_tokens, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
