/* Unit tests for src/api/codec.c and the generated model tables: routing, decoding, validation
 * messages, error bodies. Table-driven: each row is a request and what must come out. */
#include <regex.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/codec.h"
#include "api/model.h"
#include "aws/sigv4.h"
#include "base/text.h"
#include "json/json.h"

#define DS "0123456789abcdef0123456789abcdef"
#define IS "fedcba9876543210fedcba9876543210"
#define ARN_DS "arn%3Aaws%3Amedical-imaging%3Aus-east-1%3A123456789012%3Adatastore%2F" DS

static void test_route_every_operation(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        enum ahl_op_id op;
    } rows[] = {
        {"POST", "/datastore", AHL_OP_CreateDatastore},
        {"GET", "/datastore", AHL_OP_ListDatastores},
        {"GET", "/datastore/" DS, AHL_OP_GetDatastore},
        {"DELETE", "/datastore/" DS, AHL_OP_DeleteDatastore},
        {"POST", "/startDICOMImportJob/datastore/" DS, AHL_OP_StartDICOMImportJob},
        {"GET", "/getDICOMImportJob/datastore/" DS "/job/abc", AHL_OP_GetDICOMImportJob},
        {"GET", "/listDICOMImportJobs/datastore/" DS, AHL_OP_ListDICOMImportJobs},
        {"POST", "/datastore/" DS "/searchImageSets", AHL_OP_SearchImageSets},
        {"POST", "/datastore/" DS "/imageSet/" IS "/getImageSet", AHL_OP_GetImageSet},
        {"POST", "/datastore/" DS "/imageSet/" IS "/getImageSetMetadata",
         AHL_OP_GetImageSetMetadata},
        {"POST", "/datastore/" DS "/imageSet/" IS "/getImageFrame", AHL_OP_GetImageFrame},
        {"POST", "/datastore/" DS "/imageSet/" IS "/listImageSetVersions",
         AHL_OP_ListImageSetVersions},
        {"POST", "/datastore/" DS "/imageSet/" IS "/updateImageSetMetadata",
         AHL_OP_UpdateImageSetMetadata},
        {"POST", "/datastore/" DS "/imageSet/" IS "/copyImageSet", AHL_OP_CopyImageSet},
        {"POST", "/datastore/" DS "/imageSet/" IS "/deleteImageSet", AHL_OP_DeleteImageSet},
        {"POST", "/tags/" ARN_DS, AHL_OP_TagResource},
        {"GET", "/tags/" ARN_DS, AHL_OP_ListTagsForResource},
        {"DELETE", "/tags/" ARN_DS, AHL_OP_UntagResource},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        enum ahl_op_id op = AHL_OP__COUNT;
        struct ahl_err err;
        assert_int_equal(ahl_api_route(rows[i].method, rows[i].path, &op, &err), 0);
        assert_int_equal(op, rows[i].op);
    }
}

static void test_route_misses(void **state)
{
    (void)state;
    static const char *const rows[][2] = {
        {"GET", "/"},
        {"PUT", "/datastore"},
        {"GET", "/datastore/"},
        {"GET", "/datastore/" DS "/"},
        {"GET", "/datastores"},
        {"POST",
         "/tags/arn:aws:medical-imaging:us-east-1:123456789012:datastore/" DS "/imageset/x"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        enum ahl_op_id op;
        struct ahl_err err;
        assert_int_equal(ahl_api_route(rows[i][0], rows[i][1], &op, &err), AHL_ENOTFOUND);
        assert_string_equal(ahl_api_error_type(&err), AHL_AWS_UNKNOWN_OPERATION);
    }
}

struct decode_row {
    enum ahl_op_id op;
    const char *path;
    const char *query;
    const char *body;
    int rc;
    const char *expect; /* exact message, or a substring when prefixed with '~' */
};

/* Decodes one request of operation op sent with the operation's own method; body, when given, is
 * NUL-terminated. */
static int decode_request(enum ahl_op_id op, const char *path, const char *query, const char *body,
                          json_t **in, struct ahl_err *err)
{
    struct ahl_api_http http = {
        .method = ahl_model_ops[op].method,
        .path = path,
        .query = query,
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
    ahl_err_clear(err);
    return ahl_api_decode(op, &http, in, err);
}

static void run_decode_rows(const struct decode_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_t *in = NULL;
        struct ahl_err err;
        int rc = decode_request(rows[i].op, rows[i].path, rows[i].query, rows[i].body, &in, &err);
        if (rc != rows[i].rc)
            fail_msg("row %zu: rc %d, want %d (%s)", i, rc, rows[i].rc, err.msg);
        if (rc == 0) {
            assert_non_null(in);
        } else {
            assert_null(in);
            assert_string_equal(ahl_api_error_type(&err), AHL_AWS_VALIDATION);
        }
        if (rows[i].expect && rows[i].expect[0] == '~') {
            if (!strstr(err.msg, rows[i].expect + 1))
                fail_msg("row %zu: message '%s' lacks '%s'", i, err.msg, rows[i].expect + 1);
        } else if (rows[i].expect && strcmp(err.msg, rows[i].expect) != 0) {
            fail_msg("row %zu: message\n  '%s'\nwant\n  '%s'", i, err.msg, rows[i].expect);
        }
        json_decref(in);
    }
}

static void test_decode_validation_messages(void **state)
{
    (void)state;
    static const struct decode_row rows[] = {
        {AHL_OP_CreateDatastore, "/datastore", NULL, "{\"clientToken\":\"t1\"}", 0, NULL},
        {AHL_OP_CreateDatastore, "/datastore", NULL, "", AHL_EPARSE,
         "1 validation error detected: Value null at 'clientToken' failed to satisfy constraint: "
         "Member must not be null"},
        {AHL_OP_CreateDatastore, "/datastore", NULL, "{\"clientToken\":\"t\",\"x\":[1,{}]}", 0,
         NULL},
        {AHL_OP_CreateDatastore, "/datastore", NULL,
         "{\"clientToken\":\"t\",\"datastoreName\":\"a b\"}", AHL_EPARSE,
         "1 validation error detected: Value 'a b' at 'datastoreName' failed to satisfy "
         "constraint: Member must satisfy regular expression pattern: [A-Za-z0-9._/#-]+"},
        {AHL_OP_CreateDatastore, "/datastore", NULL, "{\"clientToken\":5}", AHL_EPARSE,
         "1 validation error detected: Value '5' at 'clientToken' failed to satisfy constraint: "
         "Member must be a string"},
        {AHL_OP_CreateDatastore, "/datastore", NULL, "{\"clientToken\":\"\"}", AHL_EPARSE,
         "~Member must have length greater than or equal to 1"},
        {AHL_OP_CreateDatastore, "/datastore", NULL,
         "{\"clientToken\":\"t\",\"losslessStorageFormat\":\"PNG\"}", AHL_EPARSE,
         "~Member must satisfy enum value set: [HTJ2K, JPEG_2000_LOSSLESS]"},
        {AHL_OP_CreateDatastore, "/datastore", NULL,
         "{\"clientToken\":\"t\",\"tags\":{\"aws:x\":\"v\"}}", AHL_EPARSE,
         "1 validation error detected: Value 'aws:x' at 'tags' failed to satisfy constraint: Map "
         "keys must satisfy constraint: [Member must satisfy regular expression pattern: "
         "(?!aws:)[a-zA-Z+-=._:/]+]"},
        {AHL_OP_CreateDatastore, "/datastore", NULL,
         "{\"clientToken\":\"t\",\"tags\":{\"k9\":\"v\"}}", 0, NULL},
        {AHL_OP_CreateDatastore, "/datastore", NULL, "{\"clientToken\":\"t\",\"tags\":{\"k\":1}}",
         AHL_EPARSE, "~Map value must satisfy constraint: [Member must be a string]"},
        {AHL_OP_CreateDatastore, "/datastore", NULL, "{\"clientToken\":", AHL_EPARSE,
         "~The request body is not valid JSON"},
        {AHL_OP_CreateDatastore, "/datastore", NULL, "[1]", AHL_EPARSE,
         "The request body must be a JSON object"},
        {AHL_OP_CreateDatastore, "/datastore", NULL,
         "{\"clientToken\":\"a\",\"clientToken\":\"b\"}", AHL_EPARSE, "~not valid JSON"},
        {AHL_OP_CreateDatastore, "/datastore", NULL,
         "{\"datastoreName\":\"a b\",\"kmsKeyArn\":\"x\"}", AHL_EPARSE,
         "~3 validation errors detected: "},
        {AHL_OP_GetDatastore, "/datastore/ABC", NULL, NULL, AHL_EPARSE,
         "1 validation error detected: Value 'ABC' at 'datastoreId' failed to satisfy "
         "constraint: Member must satisfy regular expression pattern: [0-9a-z]{32}"},
        {AHL_OP_GetDatastore, "/datastore/%zz", NULL, NULL, AHL_EPARSE,
         "~Member must be correctly percent-encoded"},
        {AHL_OP_GetDatastore, "/datastore/" DS, NULL, "not json, ignored", 0, NULL},
        /* A decoded NUL would end the C string early and the rest be ignored. */
        {AHL_OP_GetDatastore, "/datastore/" DS "%00junk", NULL, NULL, AHL_EPARSE,
         "1 validation error detected: Value at 'datastoreId' failed to satisfy constraint: "
         "Member must not contain a NUL character (%00)"},
        {AHL_OP_ListDatastores, "/datastore", "datastoreStatus=ACTIVE%00junk", NULL, AHL_EPARSE,
         "The query string holds a NUL character (%00)"},
        {AHL_OP_ListDatastores, "/datastore", "maxResults%00x=5", NULL, AHL_EPARSE,
         "The query string holds a NUL character (%00)"},
        {AHL_OP_ListDatastores, "/datastore", "maxResults=51", NULL, AHL_EPARSE,
         "1 validation error detected: Value '51' at 'maxResults' failed to satisfy constraint: "
         "Member must have value less than or equal to 50"},
        {AHL_OP_ListDatastores, "/datastore", "maxResults=0", NULL, AHL_EPARSE,
         "~Member must have value greater than or equal to 1"},
        {AHL_OP_ListDatastores, "/datastore", "maxResults=ten", NULL, AHL_EPARSE,
         "1 validation error detected: Value 'ten' at 'maxResults' failed to satisfy "
         "constraint: Member must be an integer"},
        {AHL_OP_ListDatastores, "/datastore", "datastoreStatus=ACTIVE&maxResults=5&unknown=1", NULL,
         0, NULL},
        {AHL_OP_ListDatastores, "/datastore", "datastoreStatus=active", NULL, AHL_EPARSE,
         "~Member must satisfy enum value set: [CREATING, CREATE_FAILED, ACTIVE, DELETING, "
         "DELETED]"},
        {AHL_OP_ListDatastores, "/datastore", "nextToken=%E9", NULL, AHL_EPARSE, "~valid UTF-8"},
        {AHL_OP_UntagResource, "/tags/" ARN_DS, "tagKeys=a&tagKeys=b%2Fc", NULL, 0, NULL},
        {AHL_OP_UntagResource, "/tags/" ARN_DS, NULL, NULL, 0, NULL},
        {AHL_OP_UntagResource, "/tags/arn%3Aaws%3As3%3A%3A%3Ab", "tagKeys=a", NULL, AHL_EPARSE,
         "~at 'resourceArn' failed to satisfy constraint: Member must satisfy regular "
         "expression pattern"},
        {AHL_OP_UpdateImageSetMetadata, "/datastore/" DS "/imageSet/" IS "/updateImageSetMetadata",
         "latestVersion=1", "{\"revertToVersionId\":\"1\"}", 0, NULL},
        {AHL_OP_UpdateImageSetMetadata, "/datastore/" DS "/imageSet/" IS "/updateImageSetMetadata",
         "latestVersion=1", "{}", AHL_EPARSE,
         "~at 'updateImageSetMetadataUpdates' failed to satisfy constraint: Member must have "
         "exactly one of its members set (it has 0)"},
        {AHL_OP_UpdateImageSetMetadata, "/datastore/" DS "/imageSet/" IS "/updateImageSetMetadata",
         "latestVersion=1",
         "{\"revertToVersionId\":\"1\",\"DICOMUpdates\":{\"updatableAttributes\":\"e30=\"}}",
         AHL_EPARSE, "~(it has 2)"},
        {AHL_OP_UpdateImageSetMetadata, "/datastore/" DS "/imageSet/" IS "/updateImageSetMetadata",
         "latestVersion=1", "{\"DICOMUpdates\":{\"updatableAttributes\":\"e30\"}}", AHL_EPARSE,
         "1 validation error detected: Value at "
         "'updateImageSetMetadataUpdates.DICOMUpdates.updatableAttributes' failed to satisfy "
         "constraint: Member must be valid base64 (standard alphabet, padded)"},
        {AHL_OP_UpdateImageSetMetadata, "/datastore/" DS "/imageSet/" IS "/updateImageSetMetadata",
         "latestVersion=1&force=yes", "{\"revertToVersionId\":\"1\"}", AHL_EPARSE,
         "~Value 'yes' at 'force' failed to satisfy constraint: Member must be a boolean"},
        {AHL_OP_UpdateImageSetMetadata, "/datastore/" DS "/imageSet/" IS "/updateImageSetMetadata",
         NULL, "{\"revertToVersionId\":\"x1\"}", AHL_EPARSE,
         "~2 validation errors detected: Value null at 'latestVersionId'"},
        {AHL_OP_SearchImageSets, "/datastore/" DS "/searchImageSets", NULL, "", 0, NULL},
        {AHL_OP_SearchImageSets, "/datastore/" DS "/searchImageSets", NULL,
         "{\"filters\":[{\"values\":[{\"DICOMPatientId\":\"p\"}],\"operator\":\"EQUAL\"}]}", 0,
         NULL},
        {AHL_OP_SearchImageSets, "/datastore/" DS "/searchImageSets", NULL,
         "{\"filters\":[{\"values\":[],\"operator\":\"EQUAL\"}]}", AHL_EPARSE,
         "1 validation error detected: Value at 'searchCriteria.filters.1.member.values' failed "
         "to satisfy constraint: Member must have length greater than or equal to 1"},
        {AHL_OP_SearchImageSets, "/datastore/" DS "/searchImageSets", NULL,
         "{\"filters\":[{\"values\":[{\"createdAt\":\"yesterday\"}]}]}", AHL_EPARSE,
         "~2 validation errors detected: "},
        {AHL_OP_GetImageFrame, "/datastore/" DS "/imageSet/" IS "/getImageFrame", NULL,
         "{\"imageFrameId\":\"" DS "\"}", 0, NULL},
        {AHL_OP_GetImageFrame, "/datastore/" DS "/imageSet/" IS "/getImageFrame", NULL, "",
         AHL_EPARSE, "~Value null at 'imageFrameInformation.imageFrameId'"},
        {AHL_OP_StartDICOMImportJob, "/startDICOMImportJob/datastore/" DS, NULL,
         "{\"clientToken\":\"c\",\"dataAccessRoleArn\":\"arn:aws:iam::123456789012:role/r\","
         "\"inputS3Uri\":\"s3://bkt/in/\",\"outputS3Uri\":\"s3://bkt/out/\"}",
         0, NULL},
        {AHL_OP_StartDICOMImportJob, "/startDICOMImportJob/datastore/" DS, NULL,
         "{\"clientToken\":\"c\",\"dataAccessRoleArn\":\"arn:aws:iam::123456789012:role/r\","
         "\"inputS3Uri\":\"s3://B/in/\",\"outputS3Uri\":\"s3://bkt/out/\","
         "\"inputOwnerAccountId\":\"12345678901x\"}",
         AHL_EPARSE, "~2 validation errors detected"},
    };
    run_decode_rows(rows, sizeof rows / sizeof *rows);
}

static void test_decode_types_and_bindings(void **state)
{
    (void)state;
    struct ahl_api_http http = {
        .method = "POST",
        .path = "/datastore/" DS "/imageSet/" IS "/updateImageSetMetadata",
        .query = "latestVersion=3&force=true&includeStudyImageSets=false",
        .body = "{\"revertToVersionId\":\"1\"}",
    };
    http.body_len = strlen(http.body);
    json_t *in = NULL;
    struct ahl_err err;
    assert_int_equal(ahl_api_decode(AHL_OP_UpdateImageSetMetadata, &http, &in, &err), 0);
    assert_string_equal(ahl_api_str(in, "datastoreId"), DS);
    assert_string_equal(ahl_api_str(in, "imageSetId"), IS);
    assert_string_equal(ahl_api_str(in, "latestVersionId"), "3");
    assert_true(json_is_true(json_object_get(in, "force")));
    assert_true(json_is_false(json_object_get(in, "includeStudyImageSets")));
    assert_string_equal(
        ahl_api_str(json_object_get(in, "updateImageSetMetadataUpdates"), "revertToVersionId"),
        "1");
    json_decref(in);

    struct ahl_api_http tags = {.method = "DELETE",
                                .path = "/tags/" ARN_DS,
                                .query = "tagKeys=a&tagKeys=b%2Fc&tagKeys=%2B"};
    assert_int_equal(ahl_api_decode(AHL_OP_UntagResource, &tags, &in, &err), 0);
    assert_string_equal(ahl_api_str(in, "resourceArn"),
                        "arn:aws:medical-imaging:us-east-1:123456789012:datastore/" DS);
    json_t *keys = json_object_get(in, "tagKeys");
    assert_int_equal(json_array_size(keys), 3);
    assert_string_equal(json_string_value(json_array_get(keys, 1)), "b/c");
    assert_string_equal(json_string_value(json_array_get(keys, 2)), "+");
    json_decref(in);

    struct ahl_api_http list = {.method = "GET", .path = "/datastore", .query = "maxResults=7"};
    assert_int_equal(ahl_api_decode(AHL_OP_ListDatastores, &list, &in, &err), 0);
    assert_int_equal(ahl_api_int(in, "maxResults", 0), 7);
    json_decref(in);
}

static void test_body_cap(void **state)
{
    (void)state;
    size_t n = AHL_API_MAX_BODY + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    struct ahl_api_http http = {.method = "POST", .path = "/datastore", .body = big, .body_len = n};
    json_t *in = NULL;
    struct ahl_err err;
    assert_int_equal(ahl_api_decode(AHL_OP_CreateDatastore, &http, &in, &err), AHL_ETOOBIG);
    assert_string_equal(ahl_api_error_type(&err), AHL_AWS_VALIDATION);
    free(big);
}

/* Every pattern of the model compiles (a bad translation aborts) and behaves like the model's
 * Java pattern on a few probes. */
/* Every model pattern the table matcher takes agrees with regexec on strings built from every
 * byte, near the lengths that matter; and the patterns it must leave to regexec are left. */
static void test_simple_patterns_match_as_regexec(void **state)
{
    (void)state;
    size_t taken = 0;
    for (int i = 0; i < AHL_SHAPE__COUNT; i++) {
        const char *re = ahl_model_shapes[i].regex;
        struct ahl__api_simple_pattern sp;
        if (!re || !ahl__api_simple_pattern(re, &sp))
            continue;
        taken++;
        regex_t rx;
        assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
        char s[40];
        for (unsigned b = 1; b < 256; b++) {
            for (size_t len = 1; len < sizeof s - 1; len += 15) {
                /* all b; b after valid bytes; valid bytes with b last */
                for (int form = 0; form < 3; form++) {
                    for (size_t k = 0; k < len; k++)
                        s[k] = (char)(form == 0                   ? b
                                      : form == 1 && k + 1 == len ? b
                                      : form == 2 && k == len / 2 ? b
                                                                  : '1');
                    s[len] = '\0';
                    bool want = regexec(&rx, s, 0, NULL, 0) == 0;
                    if (ahl__api_simple_match(&sp, s) != want)
                        fail_msg("%s on \"%s\" (byte %u): regexec says %d", re, s, b, want);
                }
            }
        }
        /* the exact length and one either side */
        for (size_t len = 1; len <= 34 && len < sizeof s; len++) {
            memset(s, 'a', len);
            s[len] = '\0';
            assert_int_equal(ahl__api_simple_match(&sp, s), regexec(&rx, s, 0, NULL, 0) == 0);
        }
        regfree(&rx);
    }
    assert_true(taken >= 8); /* the ids, names, UIDs and tokens */
    static const char *left[] = {
        "^([^a])$",   "^([[:alpha:]]+)$", "^([a\\]]+)$", "^(a[0-9]+)$",
        "^([0-9]*)$", "^([0-9]{2,3})$",   "^([0-9]+)?$", "^(arn:aws:x)$",
    };
    for (size_t i = 0; i < sizeof left / sizeof *left; i++) {
        struct ahl__api_simple_pattern sp;
        assert_false(ahl__api_simple_pattern(left[i], &sp));
    }
    /* '+-=' is the range from '+' to '=', as in POSIX, and a '-' before ']' is itself */
    struct ahl__api_simple_pattern sp;
    assert_true(ahl__api_simple_pattern("^([a+-=_-]+)$", &sp));
    assert_true(ahl__api_simple_match(&sp, "a,9=-_"));
    assert_false(ahl__api_simple_match(&sp, "a>"));
}

static void test_patterns(void **state)
{
    (void)state;
    static const struct {
        enum ahl_shape_id shape;
        const char *value;
        int ok;
    } rows[] = {
        {AHL_SHAPE_DatastoreId, DS, 1},
        {AHL_SHAPE_DatastoreId, DS "0", 0},
        {AHL_SHAPE_DatastoreId, "0123456789ABCDEF0123456789abcdef", 0},
        {AHL_SHAPE_ImageSetExternalVersionId, "12", 1},
        {AHL_SHAPE_ImageSetExternalVersionId, "1a", 0},
        {AHL_SHAPE_TagKey, "Project-1", 1},
        {AHL_SHAPE_TagKey, "aws:x", 0},
        {AHL_SHAPE_TagKey, "awsx", 1},
        {AHL_SHAPE_TagKey, "a b", 0},
        {AHL_SHAPE_S3Uri, "s3://my-bucket.x/prefix/", 1},
        {AHL_SHAPE_S3Uri, "s3://My/x", 0},
        {AHL_SHAPE_S3Uri, "s3://a-/x", 0},
        {AHL_SHAPE_RoleArn, "arn:aws:iam::123456789012:role/r", 1},
        {AHL_SHAPE_RoleArn, "arn:aws:iam::12345678901:role/r", 0},
        {AHL_SHAPE_LambdaArn, "arn:aws:lambda:us-east-1:123456789012:function:my_fn-1:$LATEST", 1},
        {AHL_SHAPE_LambdaArn, "arn:aws:lambda:us-east-1:123456789012:function:f:a*", 0},
        {AHL_SHAPE_KmsKeyArn, "arn:aws:kms:us-east-1:123456789012:alias/my-key", 1},
        {AHL_SHAPE_KmsKeyArn,
         "arn:aws:kms:us-east-1:123456789012:key/0123abcd-0123-abcd-0123-0123456789ab", 1},
        {AHL_SHAPE_KmsKeyArn, "arn:aws:kms:us-east-1:123456789012:key/nope", 0},
        {AHL_SHAPE_Arn, "arn:aws:medical-imaging:us-east-1:123456789012:datastore/" DS, 1},
        {AHL_SHAPE_Arn,
         "arn:aws-cn:medical-imaging:cn-north-1:123456789012:datastore/" DS "/imageset/" IS, 1},
        {AHL_SHAPE_Arn, "arn:aws:medical-imaging:us-east-1:123456789012:datastore/" DS "/", 0},
        {AHL_SHAPE_NextToken, "abc/+=", 1},
        {AHL_SHAPE_NextToken, "caf\xc3\xa9", 0},
        {AHL_SHAPE_MetadataFilePath, "a/b c.json", 1},
        {AHL_SHAPE_MetadataFilePath, "a ", 0},
        {AHL_SHAPE_DICOMStudyInstanceUID, "1.2.840", 1},
        {AHL_SHAPE_DICOMStudyInstanceUID, "1.2.a", 0},
        {AHL_SHAPE_AwsAccountId, "123456789012", 1},
        {AHL_SHAPE_JobName, "job #1", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        json_t *v = json_string(rows[i].value);
        struct ahl_err err;
        int rc = ahl_api_validate(rows[i].shape, v, "x", &err);
        if ((rc == 0) != rows[i].ok)
            fail_msg("row %zu: %s '%s': rc %d (%s)", i, ahl_model_shapes[rows[i].shape].name,
                     rows[i].value, rc, rc ? err.msg : "");
        json_decref(v);
    }
}

static void test_error_encoding(void **state)
{
    (void)state;
    assert_int_equal(ahl_api_error_status("ValidationException"), 400);
    assert_int_equal(ahl_api_error_status("ServiceQuotaExceededException"), 402);
    assert_int_equal(ahl_api_error_status("ConflictException"), 409);
    assert_int_equal(ahl_api_error_status("ResourceNotFoundException"), 404);
    assert_int_equal(ahl_api_error_status("InternalServerException"), 500);
    assert_int_equal(ahl_api_error_status("ThrottlingException"), 429);
    assert_int_equal(ahl_api_error_status("AccessDeniedException"), 403);
    assert_int_equal(ahl_api_error_status("InvalidSignatureException"), 403);
    assert_int_equal(ahl_api_error_status("UnknownOperationException"), 404);
    struct ahl_buf b;
    ahl_buf_init(&b, 1024);
    assert_int_equal(ahl_api_error_body("ConflictException", "say \"hi\"", &b), 0);
    assert_string_equal(b.data,
                        "{\"__type\":\"ConflictException\",\"message\":\"say \\\"hi\\\"\"}");
    ahl_buf_release(&b);

    /* A message from below this layer that quotes non-UTF-8 bytes still makes a UTF-8 body. */
    ahl_buf_init(&b, 1024);
    assert_int_equal(ahl_api_error_body("InvalidSignatureException",
                                        "key 'A\xff"
                                        "B\xc3'",
                                        &b),
                     0);
    assert_string_equal(b.data,
                        "{\"__type\":\"InvalidSignatureException\",\"message\":\"key 'A?B?'\"}");
    ahl_buf_release(&b);

    json_t *t = ahl_api_timestamp(1680042357432);
    assert_int_equal(ahl_api_timestamp_ms(t), 1680042357432);
    ahl_buf_init(&b, 1024);
    assert_int_equal(ahl_json_write(t, &b), 0);
    assert_string_equal(b.data, "1680042357.432");
    ahl_buf_release(&b);
    json_decref(t);
}

/* The one mapping from what a layer reports (code, and for this layer and SigV4 a detail) to the
 * AWS type and status the response carries. */
static void test_error_types(void **state)
{
    (void)state;
    static const struct {
        int code, detail;
        const char *type;
        int status;
    } rows[] = {
        {AHL_EINVAL, 0, "ValidationException", 400},
        {AHL_EPARSE, 0, "ValidationException", 400},
        {AHL_ETOOBIG, 0, "ValidationException", 400},
        {AHL_EUNSUPPORTED, 0, "ValidationException", 400},
        {AHL_ENOTFOUND, 0, "ResourceNotFoundException", 404},
        {AHL_ENOTFOUND, AHL_API_FAIL_UNKNOWN_OPERATION, "UnknownOperationException", 404},
        {AHL_ECONFLICT, 0, "ConflictException", 409},
        {AHL_EAUTH, 0, "AccessDeniedException", 403},
        {AHL_EDENIED, 0, "AccessDeniedException", 403},
        {AHL_EQUOTA, 0, "ServiceQuotaExceededException", 402},
        {AHL_ENOMEM, 0, "InternalServerException", 500},
        {AHL_EIO, 0, "InternalServerException", 500},
        {AHL_ECORRUPT, 0, "InternalServerException", 500},
        {AHL_EINTERNAL, 0, "InternalServerException", 500},
        {AHL_ENOSPC, 0, "InternalServerException", 500},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct ahl_err e;
        ahl_fail_detail(&e, rows[i].code, rows[i].detail, "row %zu", i);
        assert_string_equal(ahl_api_error_type(&e), rows[i].type);
        assert_int_equal(ahl_api_error_status(ahl_api_error_type(&e)), rows[i].status);
    }
    static const struct {
        int code, detail;
        const char *type;
        int status;
    } auth[] = {
        {AHL_EAUTH, AHL_SIGV4_FAIL_MISSING, "MissingAuthenticationTokenException", 403},
        {AHL_EAUTH, AHL_SIGV4_FAIL_INCOMPLETE, "IncompleteSignatureException", 400},
        {AHL_EAUTH, AHL_SIGV4_FAIL_UNRECOGNIZED, "UnrecognizedClientException", 403},
        {AHL_EAUTH, AHL_SIGV4_FAIL_INVALID, "InvalidSignatureException", 403},
        {AHL_ENOMEM, 0, "InternalServerException", 500}, /* the server's own failure */
        {AHL_EINVAL, 0, "InternalServerException", 500}, /* a caller's misuse of the verifier */
    };
    for (size_t i = 0; i < sizeof auth / sizeof auth[0]; i++) {
        struct ahl_err e;
        ahl_fail_detail(&e, auth[i].code, auth[i].detail, "auth row %zu", i);
        assert_string_equal(ahl_api_auth_error_type(&e), auth[i].type);
        assert_int_equal(ahl_api_error_status(ahl_api_auth_error_type(&e)), auth[i].status);
    }
}

/* Error messages travel in JSON bodies that SDKs parse, so they must be valid UTF-8 whatever the
 * request held: values quoted from it are cut between characters, bytes that are not UTF-8 are
 * shown as '?', and a message cut at the size of ahl_err.msg loses a partial last character.
 * (Found by fuzz_api_codec: a 300-character tag value of 'é' was quoted cut inside a character.) */
static void test_messages_are_utf8(void **state)
{
    (void)state;
    static const char E14[] =
        "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9";
    char body[4096], query[1024];
    size_t o = (size_t)snprintf(body, sizeof body, "{\"tags\":{\"k\":\"x");
    for (int i = 0; i < 300; i++)
        o += (size_t)snprintf(body + o, sizeof body - o, "\xc3\xa9");
    snprintf(body + o, sizeof body - o, "\"}}");
    snprintf(query, sizeof query, "maxResults=%s", E14);
    static const char *const odd_bytes[] = {"maxResults=%E9", "maxResults=1%ED%A0%80",
                                            "maxResults=%F0%9F%98"};
    struct {
        enum ahl_op_id op;
        const char *path, *query, *body, *expect;
    } rows[] = {
        /* 1 + 300 two-byte characters: the quote keeps 'x' and 49 whole characters (99 bytes). */
        {AHL_OP_TagResource, "/tags/" ARN_DS, NULL, body, "Value 'x\xc3\xa9\xc3\xa9"},
        {AHL_OP_ListDatastores, "/datastore", query, NULL, "Value '\xc3\xa9\xc3\xa9"},
        {AHL_OP_ListDatastores, "/datastore", odd_bytes[0], NULL, "Value '?' at 'maxResults'"},
        {AHL_OP_ListDatastores, "/datastore", odd_bytes[1], NULL,
         "Value '1??"
         "?' at"},
        {AHL_OP_ListDatastores, "/datastore", odd_bytes[2], NULL,
         "Value '??"
         "?' at"},
        /* A surrogate is not UTF-8, even where the bytes have the right shape. */
        {AHL_OP_ListDatastores, "/datastore", "nextToken=%ED%A0%80", NULL, "valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        json_t *in = NULL;
        struct ahl_err err;
        assert_int_equal(
            decode_request(rows[i].op, rows[i].path, rows[i].query, rows[i].body, &in, &err),
            AHL_EPARSE);
        if (!ahl_utf8_valid(err.msg, strlen(err.msg)))
            fail_msg("row %zu: message is not UTF-8: %s", i, err.msg);
        if (!strstr(err.msg, rows[i].expect))
            fail_msg("row %zu: message '%s' lacks '%s'", i, err.msg, rows[i].expect);
    }

    /* The body's quote is cut at 100 bytes, between characters, and says so. */
    struct ahl_api_http http = {
        .method = "POST", .path = "/tags/" ARN_DS, .body = body, .body_len = strlen(body)};
    json_t *in = NULL;
    struct ahl_err err;
    assert_int_equal(ahl_api_decode(AHL_OP_TagResource, &http, &in, &err), AHL_EPARSE);
    const char *q = strstr(err.msg, "Value '") + 7, *dots = strstr(q, "...'");
    assert_non_null(dots);
    assert_int_equal(dots - q, 99);

    /* jansson's message quotes the bytes near a syntax error; they are shown as '?' when they are
     * not UTF-8 (found by fuzz_api_codec). */
    http.body = "{\"k\": \"\\u0\xcd\x9a\"}";
    http.body_len = strlen(http.body);
    assert_int_equal(ahl_api_decode(AHL_OP_TagResource, &http, &in, &err), AHL_EPARSE);
    assert_true(ahl_utf8_valid(err.msg, strlen(err.msg)));
    if (!strstr(err.msg, "invalid escape near '\"\\u0?'"))
        fail_msg("message: %s", err.msg);

    /* Routing quotes the raw path; a path that is not UTF-8 is shown with '?'. */
    enum ahl_op_id op;
    assert_int_equal(ahl_api_route("PUT", "/nothing/\xc3/\xff\xfe", &op, &err), AHL_ENOTFOUND);
    assert_string_equal(err.msg, "No operation matches PUT /nothing/?/??");
    assert_int_equal(ahl_api_route("G\xc3T", "/datastore", &op, &err), AHL_ENOTFOUND);
    assert_string_equal(err.msg, "No operation matches method G?T on this path");

    /* Ten long validation errors exceed ahl_err.msg; the cut never splits a character. */
    for (size_t shift = 0; shift < 4; shift++) {
        char msg[600];
        memset(msg, 'a', shift);
        for (size_t k = shift; k + 3 < sizeof msg; k += 3)
            memcpy(msg + k, "\xe2\x82\xac", 3);
        msg[sizeof msg - 1 - (sizeof msg - 1 - shift) % 3] = '\0';
        ahl_fail(&err, AHL_EPARSE, "%s", msg);
        size_t n = strlen(err.msg);
        assert_true(n >= sizeof err.msg - 4 && n < sizeof err.msg);
        if (!ahl_utf8_valid(err.msg, n))
            fail_msg("shift %zu: a cut message is not UTF-8", shift);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_every_operation),
        cmocka_unit_test(test_route_misses),
        cmocka_unit_test(test_decode_validation_messages),
        cmocka_unit_test(test_decode_types_and_bindings),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_simple_patterns_match_as_regexec),
        cmocka_unit_test(test_error_encoding),
        cmocka_unit_test(test_error_types),
        cmocka_unit_test(test_messages_are_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
