/* Unit tests for src/import/group.c: grouping keys and fingerprints, the consistency comparison
 * with a candidate primary set (one row per grouping element and per normalization rule), and
 * the import-time length limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "import/group.h"

/* A single-instance document built from the three DICOM objects (JSON object text). */
static json_t *instance(const char *patient, const char *study, const char *series)
{
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"Patient\":{\"DICOM\":%s},\"Study\":{\"DICOM\":%s,\"Series\":{\"1.2.3\":{\"DICOM\":"
             "%s,\"Instances\":{\"1.2.3.4\":{\"DICOM\":{\"SOPInstanceUID\":\"1.2.3.4\"}}}}}}}",
             patient, study, series);
    json_error_t jerr;
    json_t *v = json_loads(buf, JSON_ALLOW_NUL, &jerr);
    if (!v)
        fail_msg("bad test JSON: %s: %s", jerr.text, buf);
    return v;
}

static json_t *dicom_study(json_t *doc)
{
    return json_object_get(json_object_get(doc, "Study"), "DICOM");
}

#define BASE_PATIENT "{\"PatientID\":\"7\",\"PatientName\":\"DOE^J\",\"PatientSex\":\"F\"}"
#define BASE_STUDY                                                                           \
    "{\"StudyInstanceUID\":\"1.2.8\",\"StudyDate\":\"20240101\",\"AccessionNumber\":\"A1\"," \
    "\"StudyID\":\"5\",\"StudyDescription\":\"CHEST\"}"
#define BASE_SERIES                                                                 \
    "{\"SeriesInstanceUID\":\"1.2.3\",\"SeriesNumber\":\"1 \",\"Modality\":\"CT\"," \
    "\"SoftwareVersions\":[\"3.1\"]}"

/* The candidate: the base instance as an image set with a second instance and extra keys. */
static json_t *candidate(void)
{
    json_t *c = instance(BASE_PATIENT, BASE_STUDY, BASE_SERIES);
    json_object_set_new(c, "SchemaVersion", json_string("1.1"));
    json_t *insts = json_object_get(
        json_object_get(json_object_get(json_object_get(c, "Study"), "Series"), "1.2.3"),
        "Instances");
    json_object_set_new(insts, "1.2.3.5",
                        json_pack("{s:{s:s}}", "DICOM", "SOPInstanceUID", "1.2.3.5"));
    return c;
}

struct cmp_case {
    const char *patient, *study, *series;
    int result;
    const char *attribute; /* first conflicting attribute */
    enum ahl_level level;
};

static const struct cmp_case cmp_cases[] = {
    {BASE_PATIENT, BASE_STUDY, BASE_SERIES, AHL_GROUP_CONSISTENT, "", 0},
    /* padding and empty values are not differences */
    {BASE_PATIENT,
     "{\"StudyInstanceUID\":\"1.2.8\\u0000\",\"StudyDate\":\"20240101 \",\"AccessionNumber\":"
     "\"A1\",\"StudyID\":\"5 \",\"StudyDescription\":\"CHEST \"}",
     "{\"SeriesInstanceUID\":\"1.2.3\",\"SeriesNumber\":\"1\",\"Modality\":\"CT\"}",
     AHL_GROUP_CONSISTENT, "", 0},
    /* attributes present on one side only are merged, not conflicts */
    {"{\"PatientID\":\"7\"}",
     "{\"StudyInstanceUID\":\"1.2.8\",\"StudyDate\":\"20240101\",\"AccessionNumber\":\"A1\","
     "\"StudyID\":\"5\",\"StudyComments\":\"new\"}",
     "{\"SeriesInstanceUID\":\"1.2.3\",\"SeriesNumber\":\"1\"}", AHL_GROUP_CONSISTENT, "", 0},
    /* each grouping element */
    {BASE_PATIENT,
     "{\"StudyInstanceUID\":\"1.2.8\",\"StudyDate\":\"20240102\",\"AccessionNumber\":\"A1\","
     "\"StudyID\":\"5\"}",
     BASE_SERIES, AHL_GROUP_CONFLICT, "StudyDate", AHL_LEVEL_STUDY},
    {BASE_PATIENT,
     "{\"StudyInstanceUID\":\"1.2.8\",\"StudyDate\":\"20240101\",\"AccessionNumber\":\"A2\","
     "\"StudyID\":\"5\"}",
     BASE_SERIES, AHL_GROUP_CONFLICT, "AccessionNumber", AHL_LEVEL_STUDY},
    {BASE_PATIENT, "{\"StudyInstanceUID\":\"1.2.8\",\"StudyDate\":\"20240101\",\"StudyID\":\"5\"}",
     BASE_SERIES, AHL_GROUP_CONFLICT, "AccessionNumber", AHL_LEVEL_STUDY}, /* absent vs A1 */
    {"{\"PatientID\":\"8\"}", BASE_STUDY, BASE_SERIES, AHL_GROUP_CONFLICT, "PatientID",
     AHL_LEVEL_PATIENT},
    {BASE_PATIENT,
     "{\"StudyInstanceUID\":\"1.2.9\",\"StudyDate\":\"20240101\",\"AccessionNumber\":\"A1\","
     "\"StudyID\":\"5\"}",
     BASE_SERIES, AHL_GROUP_CONFLICT, "StudyInstanceUID", AHL_LEVEL_STUDY},
    {BASE_PATIENT,
     "{\"StudyInstanceUID\":\"1.2.8\",\"StudyDate\":\"20240101\",\"AccessionNumber\":\"A1\","
     "\"StudyID\":null}",
     BASE_SERIES, AHL_GROUP_CONFLICT, "StudyID", AHL_LEVEL_STUDY},
    {BASE_PATIENT, BASE_STUDY, "{\"SeriesInstanceUID\":\"1.2.3\",\"SeriesNumber\":\"2\"}",
     AHL_GROUP_CONFLICT, "SeriesNumber", AHL_LEVEL_SERIES},
    {BASE_PATIENT, BASE_STUDY, "{\"SeriesInstanceUID\":\"1.2.3.9\",\"SeriesNumber\":\"1\"}",
     AHL_GROUP_CONFLICT, "SeriesInstanceUID", AHL_LEVEL_SERIES},
    /* the grouping elements are checked first, in the documented order */
    {"{\"PatientID\":\"8\",\"PatientName\":\"X\"}",
     "{\"StudyInstanceUID\":\"1.2.8\",\"StudyDate\":\"20240102\",\"AccessionNumber\":\"A1\","
     "\"StudyID\":\"5\"}",
     BASE_SERIES, AHL_GROUP_CONFLICT, "StudyDate", AHL_LEVEL_STUDY},
    /* normalization consistency at every level */
    {"{\"PatientID\":\"7\",\"PatientName\":\"DOE^JANE\"}", BASE_STUDY, BASE_SERIES,
     AHL_GROUP_CONFLICT, "PatientName", AHL_LEVEL_PATIENT},
    {BASE_PATIENT,
     "{\"StudyInstanceUID\":\"1.2.8\",\"StudyDate\":\"20240101\",\"AccessionNumber\":\"A1\","
     "\"StudyID\":\"5\",\"StudyDescription\":\"HEAD\"}",
     BASE_SERIES, AHL_GROUP_CONFLICT, "StudyDescription", AHL_LEVEL_STUDY},
    {BASE_PATIENT, BASE_STUDY,
     "{\"SeriesInstanceUID\":\"1.2.3\",\"SeriesNumber\":\"1\",\"Modality\":\"MR\"}",
     AHL_GROUP_CONFLICT, "Modality", AHL_LEVEL_SERIES},
    {BASE_PATIENT, BASE_STUDY,
     "{\"SeriesInstanceUID\":\"1.2.3\",\"SeriesNumber\":\"1\",\"SoftwareVersions\":[\"3.1\","
     "\"4\"]}",
     AHL_GROUP_CONFLICT, "SoftwareVersions", AHL_LEVEL_SERIES},
    {BASE_PATIENT, BASE_STUDY,
     "{\"SeriesInstanceUID\":\"1.2.3\",\"SeriesNumber\":\"1\",\"SoftwareVersions\":[\"3.1 \"]}",
     AHL_GROUP_CONSISTENT, "", 0},
    {"{\"PatientID\":\"7\",\"PatientSex\":null}", BASE_STUDY, BASE_SERIES, AHL_GROUP_CONFLICT,
     "PatientSex", AHL_LEVEL_PATIENT},
};

static void test_compare_table(void **state)
{
    (void)state;
    json_t *cand = candidate();
    for (size_t i = 0; i < sizeof cmp_cases / sizeof cmp_cases[0]; i++) {
        const struct cmp_case *c = &cmp_cases[i];
        json_t *inst = instance(c->patient, c->study, c->series);
        struct ahl_group_diff diff;
        struct ahl_err err;
        int rc = ahl_group_compare(cand, inst, &diff, &err);
        if (rc != c->result)
            fail_msg("row %zu: expected %d, got %d (%s)", i, c->result, rc, diff.message);
        if (strcmp(diff.attribute, c->attribute) != 0)
            fail_msg("row %zu: expected conflict on '%s', got '%s'", i, c->attribute,
                     diff.attribute);
        if (rc == AHL_GROUP_CONFLICT) {
            assert_int_equal(diff.level, c->level);
            assert_non_null(strstr(diff.message, c->attribute));
            assert_non_null(strstr(diff.message, "differs from the primary image set"));
        } else {
            assert_string_equal(diff.message, "");
        }
        /* a NULL diff is accepted */
        assert_int_equal(ahl_group_compare(cand, inst, NULL, NULL), c->result);
        json_decref(inst);
    }
    json_decref(cand);
}

static void test_diff_message(void **state)
{
    (void)state;
    json_t *cand = candidate();
    json_t *inst = instance("{\"PatientID\":\"8\"}", BASE_STUDY, BASE_SERIES);
    struct ahl_group_diff diff;
    assert_int_equal(ahl_group_compare(cand, inst, &diff, NULL), AHL_GROUP_CONFLICT);
    assert_string_equal(diff.message, "Patient-level attribute PatientID of the instance (\"8\") "
                                      "differs from the primary image set (\"7\")");
    assert_string_equal(diff.candidate, "\"7\"");
    assert_string_equal(diff.instance, "\"8\"");
    json_decref(inst);
    /* long values are shortened on a UTF-8 boundary */
    char study[1024];
    char longdesc[400];
    memset(longdesc, 0, sizeof longdesc);
    for (size_t i = 0; i + 2 < 300; i += 2)
        memcpy(longdesc + i, "\xc3\xa9", 2);
    snprintf(
        study, sizeof study,
        "{\"StudyInstanceUID\":\"1.2.8\",\"StudyDate\":\"20240101\",\"AccessionNumber\":\"A1\","
        "\"StudyID\":\"5\",\"StudyDescription\":\"%s\"}",
        longdesc);
    inst = instance(BASE_PATIENT, study, BASE_SERIES);
    assert_int_equal(ahl_group_compare(cand, inst, &diff, NULL), AHL_GROUP_CONFLICT);
    size_t n = strlen(diff.instance);
    assert_true(n < sizeof diff.instance);
    assert_string_equal(diff.instance + n - 3, "...");
    json_t *shortened = json_stringn(diff.instance + 1, n - 4); /* NULL unless valid UTF-8 */
    assert_non_null(shortened);
    json_decref(shortened);
    json_decref(inst);
    json_decref(cand);
}

static void test_keys(void **state)
{
    (void)state;
    char k1[AHL_GROUP_KEY_LEN + 1], k2[AHL_GROUP_KEY_LEN + 1];
    char f1[AHL_GROUP_KEY_LEN + 1], f2[AHL_GROUP_KEY_LEN + 1];
    struct ahl_err err;
    json_t *a = instance(BASE_PATIENT, BASE_STUDY, BASE_SERIES);
    /* differs only in a grouping element: same key, other fingerprint */
    json_t *b = instance("{\"PatientID\":\"8\"}", BASE_STUDY, BASE_SERIES);
    /* differs only in padding and non-grouping attributes: same key and fingerprint */
    json_t *c = instance("{\"PatientID\":\"7 \",\"PatientName\":\"OTHER\"}", BASE_STUDY,
                         "{\"SeriesInstanceUID\":\"1.2.3\",\"SeriesNumber\":\"1\"}");
    assert_int_equal(ahl_group_key(a, k1, &err), 0);
    assert_int_equal(strlen(k1), AHL_GROUP_KEY_LEN);
    assert_int_equal(ahl_group_key(b, k2, &err), 0);
    assert_string_equal(k1, k2);
    assert_int_equal(ahl_group_fingerprint(a, f1, &err), 0);
    assert_int_equal(ahl_group_fingerprint(b, f2, &err), 0);
    assert_string_not_equal(f1, f2);
    assert_int_equal(ahl_group_fingerprint(c, f2, &err), 0);
    assert_string_equal(f1, f2);
    assert_string_not_equal(k1, f1);
    assert_int_equal(ahl_group_key(c, k2, &err), 0);
    assert_string_equal(k1, k2);
    json_decref(b);
    /* another series: another key */
    b = instance(BASE_PATIENT, BASE_STUDY, "{\"SeriesInstanceUID\":\"1.2.4\"}");
    assert_int_equal(ahl_group_key(b, k2, &err), 0);
    assert_string_not_equal(k1, k2);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

struct bad_doc {
    const char *json;
    const char *msg;
};

static const struct bad_doc bad_docs[] = {
    {"[]", "must be a JSON object"},
    {"{}", "exactly one series"},
    {"{\"Study\":{\"Series\":{}}}", "exactly one series"},
    {"{\"Study\":{\"Series\":{\"1\":{},\"2\":{}}}}", "exactly one series"},
    {"{\"Study\":{\"Series\":{\"1\":{\"Instances\":{}}}}}", "exactly one instance"},
    {"{\"Study\":{\"Series\":{\"1\":{\"Instances\":{\"a\":{},\"b\":{}}}}}}",
     "exactly one instance"},
    {"{\"Study\":{\"Series\":{\"1\":{\"DICOM\":{\"SeriesInstanceUID\":\"1\"},\"Instances\":{\"a\":"
     "{}}}}}}",
     "DICOM attribute StudyInstanceUID does not exist"},
    {"{\"Study\":{\"DICOM\":{\"StudyInstanceUID\":\"1\"},\"Series\":{\"1\":{\"Instances\":{\"a\":"
     "{}}}}}}",
     "DICOM attribute SeriesInstanceUID does not exist"},
    {"{\"Study\":{\"DICOM\":{\"StudyInstanceUID\":\" \"},\"Series\":{\"1\":{\"DICOM\":{"
     "\"SeriesInstanceUID\":\"1\"},\"Instances\":{\"a\":{}}}}}}",
     "DICOM attribute StudyInstanceUID does not exist"},
};

static void test_bad_documents(void **state)
{
    (void)state;
    json_t *cand = candidate();
    for (size_t i = 0; i < sizeof bad_docs / sizeof bad_docs[0]; i++) {
        json_t *d = json_loads(bad_docs[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(d);
        char k[AHL_GROUP_KEY_LEN + 1];
        struct ahl_err err;
        ahl_err_clear(&err);
        assert_int_equal(ahl_group_key(d, k, &err), AHL_EINVAL);
        if (!strstr(err.msg, bad_docs[i].msg))
            fail_msg("row %zu: message lacks '%s': %s", i, bad_docs[i].msg, err.msg);
        assert_int_equal(err.code, AHL_EINVAL);
        assert_int_equal(ahl_group_fingerprint(d, k, &err), AHL_EINVAL);
        json_decref(d);
    }
    json_t *inst = instance(BASE_PATIENT, BASE_STUDY, BASE_SERIES);
    json_t *notdoc = json_array();
    assert_int_equal(ahl_group_compare(notdoc, inst, NULL, NULL), AHL_EINVAL);
    assert_int_equal(ahl_group_compare(cand, notdoc, NULL, NULL), AHL_EINVAL);
    json_t *badseries = json_pack("{s:{s:[]}}", "Study", "Series");
    assert_int_equal(ahl_group_compare(badseries, inst, NULL, NULL), AHL_EINVAL);
    json_decref(badseries);
    json_decref(notdoc);
    json_decref(inst);
    json_decref(cand);
}

/* A document agrees with itself even when its series node has no DICOM object (found by the
 * fuzzer: the series used to count as missing). */
static void test_self_consistent(void **state)
{
    (void)state;
    json_t *d = json_loads("{\"Study\":{\"Series\":{\"1.2.3\":{\"Instances\":{\"1.2.3.4\":{}}}}}}",
                           0, NULL);
    assert_non_null(d);
    assert_int_equal(ahl_group_compare(d, d, NULL, NULL), AHL_GROUP_CONSISTENT);
    json_t *inst = instance(BASE_PATIENT, BASE_STUDY, BASE_SERIES);
    struct ahl_group_diff diff;
    assert_int_equal(ahl_group_compare(d, inst, &diff, NULL), AHL_GROUP_CONFLICT);
    assert_string_equal(diff.attribute, "StudyDate");
    json_decref(inst);
    json_decref(d);
}

struct limit_case {
    const char *keyword;
    size_t max;
};

static const struct limit_case limit_cases[] = {
    {"PatientName", 256},      {"PatientID", 256},        {"PatientBirthDate", 18},
    {"PatientSex", 16},        {"StudyInstanceUID", 256}, {"StudyID", 256},
    {"StudyDescription", 256}, {"AccessionNumber", 256},  {"StudyDate", 18},
    {"StudyTime", 28},         {"SOPInstanceUID", 256},   {"SeriesInstanceUID", 256},
};

/* Each limited attribute is accepted at its limit and rejected one byte over, in whichever
 * DICOM object of the document it sits (the instance's here, to prove every level is read). */
static void test_limits_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof limit_cases / sizeof limit_cases[0]; i++) {
        for (size_t extra = 0; extra <= 1; extra++) {
            json_t *doc = instance(BASE_PATIENT, BASE_STUDY, BASE_SERIES);
            json_t *idicom = json_object_get(
                json_object_get(
                    json_object_get(
                        json_object_get(json_object_get(json_object_get(doc, "Study"), "Series"),
                                        "1.2.3"),
                        "Instances"),
                    "1.2.3.4"),
                "DICOM");
            char *val = malloc(limit_cases[i].max + 2);
            memset(val, '1', limit_cases[i].max + extra);
            val[limit_cases[i].max + extra] = '\0';
            json_object_set_new(idicom, limit_cases[i].keyword, json_string(val));
            free(val);
            struct ahl_err err;
            ahl_err_clear(&err);
            int rc = ahl_group_check_limits(doc, &err);
            if (extra == 0 && rc != 0)
                fail_msg("%s at its limit rejected: %s", limit_cases[i].keyword, err.msg);
            if (extra == 1) {
                char want[160];
                snprintf(want, sizeof want,
                         "DICOM attribute %s is %zu bytes long; the maximum is %zu",
                         limit_cases[i].keyword, limit_cases[i].max + 1, limit_cases[i].max);
                assert_int_equal(rc, AHL_EINVAL);
                assert_string_equal(err.msg, want);
            }
            json_decref(doc);
        }
    }
}

static void test_limits_counts_and_arrays(void **state)
{
    (void)state;
    struct ahl_err err;
    json_t *doc = instance(BASE_PATIENT,
                           "{\"StudyInstanceUID\":\"1.2.8\",\"NumberOfStudyRelatedInstances\":"
                           "\"1000000 \",\"NumberOfStudyRelatedSeries\":\"x\"}",
                           BASE_SERIES);
    assert_int_equal(ahl_group_check_limits(doc, &err), 0);
    json_object_set_new(dicom_study(doc), "NumberOfStudyRelatedInstances", json_string("1000001"));
    assert_int_equal(ahl_group_check_limits(doc, &err), AHL_EINVAL);
    assert_string_equal(err.msg,
                        "DICOM attribute NumberOfStudyRelatedInstances is 1000001; the maximum is "
                        "1000000");
    json_object_set_new(dicom_study(doc), "NumberOfStudyRelatedInstances", json_null());
    json_object_set_new(dicom_study(doc), "NumberOfStudyRelatedSeries", json_integer(2000000));
    assert_int_equal(ahl_group_check_limits(doc, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "NumberOfStudyRelatedSeries is 2000000"));
    json_object_del(dicom_study(doc), "NumberOfStudyRelatedSeries");
    /* multi-valued: values plus separators */
    json_t *pid = json_array();
    char v[129];
    memset(v, 'a', 128);
    v[128] = '\0';
    json_array_append_new(pid, json_string(v));
    json_array_append_new(pid, json_string(v));
    json_object_set_new(json_object_get(json_object_get(doc, "Patient"), "DICOM"), "PatientName",
                        pid);
    assert_int_equal(ahl_group_check_limits(doc, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "PatientName is 257 bytes"));
    json_decref(doc);
    json_t *arr = json_array();
    assert_int_equal(ahl_group_check_limits(arr, &err), AHL_EINVAL);
    json_decref(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_table),
        cmocka_unit_test(test_diff_message),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_bad_documents),
        cmocka_unit_test(test_limits_table),
        cmocka_unit_test(test_self_consistent),
        cmocka_unit_test(test_limits_counts_and_arrays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
