/* Unit tests for src/import/mapping.c: the request's mappings checked, DICOM JSON metadata files
 * parsed into per-level attributes (accepted and refused, as tables), and the mappings overlaid on
 * a single-instance document, the study-and-series mapping winning over the study one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "import/mapping.h"

#define ST "1.2.840.1"
#define SE "1.2.840.1.2"

/* ---- the request ---------------------------------------------------------------------------- */

struct config_case {
    const char *json;   /* the dicomMetadataMappings array */
    const char *phrase; /* NULL: accepted */
};

static const struct config_case config_cases[] = {
    {"[{\"studyInstanceUID\":\"1.2.3\",\"metadataFilePath\":\"a.json\"}]", NULL},
    {"[{\"studyInstanceUID\":\"1.2.3\",\"seriesInstanceUID\":\"1.2.3.4\","
     "\"metadataFilePath\":\"meta/a b.json\"},"
     "{\"studyInstanceUID\":\"1.2.3\",\"metadataFilePath\":\"meta/a b.json\"}]",
     NULL},
    {"[]", "1 to 1000"},
    {"[{\"studyInstanceUID\":\"\",\"metadataFilePath\":\"a.json\"}]", "[0].studyInstanceUID"},
    {"[{\"studyInstanceUID\":\"1.02\",\"metadataFilePath\":\"a.json\"}]", "not a valid UID"},
    {"[{\"studyInstanceUID\":\"1..2\",\"metadataFilePath\":\"a.json\"}]", "not a valid UID"},
    {"[{\"studyInstanceUID\":\"1.2\",\"seriesInstanceUID\":\"\",\"metadataFilePath\":\"a\"}]",
     "[0].seriesInstanceUID"},
    {"[{\"studyInstanceUID\":\"1.2\",\"metadataFilePath\":\"/a.json\"}]", "metadataFilePath"},
    {"[{\"studyInstanceUID\":\"1.2\",\"metadataFilePath\":\"../a.json\"}]", "metadataFilePath"},
    {"[{\"studyInstanceUID\":\"1.2\",\"metadataFilePath\":\"a/./b\"}]", "metadataFilePath"},
    {"[{\"studyInstanceUID\":\"1.2\",\"metadataFilePath\":\"a//b\"}]", "metadataFilePath"},
    {"[{\"studyInstanceUID\":\"1.2\",\"metadataFilePath\":\"a/\"}]", "metadataFilePath"},
    {"[{\"studyInstanceUID\":\"1.2\",\"metadataFilePath\":\"a\"},"
     "{\"studyInstanceUID\":\"1.2\",\"metadataFilePath\":\"b\"}]",
     "[1]: study 1.2 is already mapped by entry 0"},
    {"[{\"studyInstanceUID\":\"1.2\",\"seriesInstanceUID\":\"3\",\"metadataFilePath\":\"a\"},"
     "{\"studyInstanceUID\":\"1.2\",\"seriesInstanceUID\":\"3\",\"metadataFilePath\":\"b\"}]",
     "series 3 is already mapped"},
};

static void test_check_config(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof config_cases / sizeof config_cases[0]; i++) {
        json_t *m = json_loads(config_cases[i].json, 0, NULL);
        struct ahl_err err;
        ahl_err_clear(&err);
        assert_non_null(m);
        int rc = ahl_mapping_check_config(m, &err);
        if (!config_cases[i].phrase) {
            if (rc != 0)
                fail_msg("case %zu refused: %s", i, err.msg);
        } else {
            assert_int_equal(rc, AHL_EINVAL);
            if (!strstr(err.msg, config_cases[i].phrase))
                fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, config_cases[i].phrase);
        }
        json_decref(m);
    }
}

static void test_too_many(void **state)
{
    (void)state;
    json_t *m = json_array();
    char uid[32];
    for (int i = 0; i <= AHL_MAPPING_MAX; i++) {
        snprintf(uid, sizeof uid, "1.2.%d", i + 1);
        json_array_append_new(
            m, json_pack("{s:s,s:s}", "studyInstanceUID", uid, "metadataFilePath", "a.json"));
    }
    struct ahl_err err;
    assert_int_equal(ahl_mapping_check_config(m, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "at most 1000"));
    json_array_remove(m, 0);
    assert_int_equal(ahl_mapping_check_config(m, &err), 0);
    json_decref(m);
}

static void test_object_key(void **state)
{
    (void)state;
    char k[32];
    assert_int_equal(ahl_mapping_object_key("in/", "m.json", k, sizeof k), 0);
    assert_string_equal(k, "in/m.json");
    assert_int_equal(ahl_mapping_object_key("in", "m.json", k, sizeof k), 0);
    assert_string_equal(k, "in/m.json");
    assert_int_equal(ahl_mapping_object_key("", "m.json", k, sizeof k), 0);
    assert_string_equal(k, "m.json");
    assert_int_equal(
        ahl_mapping_object_key("in/", "a-much-longer-name-than-fits.json", k, sizeof k),
        AHL_ETOOBIG);
}

/* ---- the metadata file ---------------------------------------------------------------------- */

struct parse_case {
    const char *json;
    bool series;        /* mapped to ST and SE, else to ST only */
    const char *expect; /* accepted: the levels as compact JSON with sorted keys */
    const char *phrase; /* refused: a phrase of the message */
};

static const struct parse_case parse_cases[] = {
    {"{\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"Doe^Jane\","
     "\"Ideographic\":\"X\"}]},\"00081030\":{\"vr\":\"LO\",\"Value\":[\"CT head\"]}}",
     false,
     "{\"Patient\":{\"PatientName\":\"Doe^Jane=X\"},\"Study\":{\"StudyDescription\":"
     "\"CT head\"}}",
     NULL},
    /* An array of one dataset; IS from a number; an empty value; a restated UID. */
    {"[{\"00200011\":{\"vr\":\"IS\",\"Value\":[12]},\"00080050\":{\"vr\":\"SH\"},"
     "\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"" SE "\"]},"
     "\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"" ST "\"]}}]",
     true,
     "{\"Series\":{\"SeriesInstanceUID\":\"" SE "\",\"SeriesNumber\":\"12\"},"
     "\"Study\":{\"AccessionNumber\":null,\"StudyInstanceUID\":\"" ST "\"}}",
     NULL},
    /* Lower-case hex keys, a DS from a real, a VM 1-n attribute as an array. */
    {"{\"00101030\":{\"vr\":\"DS\",\"Value\":[71.5]},"
     "\"00100030\":{\"vr\":\"DA\",\"Value\":[\"19700101\"]},"
     "\"00081060\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"Reader^A\"}]}}",
     false,
     "{\"Patient\":{\"PatientBirthDate\":\"19700101\"},\"Study\":{\"NameOfPhysiciansReadingStudy\":"
     "[\"Reader^A\"],\"PatientWeight\":\"71.5\"}}",
     NULL},
    {"{}", false, "{}", NULL},
    {"[", false, NULL, "not JSON"},
    {"{\"a\":1,\"a\":2}", false, NULL, "not JSON"},
    {"[{},{}]", false, NULL, "holds 2"},
    {"\"x\"", false, NULL, "not DICOM JSON"},
    {"{\"PatientName\":{\"vr\":\"PN\"}}", false, NULL, "8 hex digits"},
    {"{\"00100010\":\"Doe\"}", false, NULL, "with a vr"},
    {"{\"00100010\":{\"vr\":\"XX\"}}", false, NULL, "with a vr"},
    {"{\"00100010\":{\"vr\":\"LO\",\"Value\":[\"x\"]}}", false, NULL, "VR"},
    {"{\"00091001\":{\"vr\":\"LO\",\"Value\":[\"x\"]}}", false, NULL, "private"},
    {"{\"00090010\":{\"vr\":\"LO\",\"Value\":[\"x\"]}}", false, NULL, "private"},
    {"{\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2\"]}}", false, NULL, "instance-level"},
    {"{\"7FE00010\":{\"vr\":\"OW\",\"InlineBinary\":\"AAAA\"}}", false, NULL, "instance-level"},
    {"{\"0008103E\":{\"vr\":\"LO\",\"Value\":[\"x\"]}}", false, NULL, "seriesInstanceUID"},
    {"{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"1.2.3\"]}}", false, NULL, "needs force"},
    {"{\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"1.2.3\"]}}", true, NULL, "needs force"},
    {"{\"00200010\":{\"vr\":\"SH\",\"Value\":[\"S1\"]}}", false, NULL, "needs force"},
    {"{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"a\",\"b\"]}}", false, NULL, "multi"},
    {"{\"00081032\":{\"vr\":\"SQ\",\"Value\":[{}]}}", false, NULL, "sequence"},
    {"{\"00100010\":{\"vr\":\"PN\",\"BulkDataURI\":\"http://x\"}}", false, NULL, "BulkDataURI"},
    {"{\"00100010\":{\"vr\":\"PN\",\"Value\":[\"Doe\"]}}", false, NULL, "PN value is an object"},
    {"{\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Family\":\"Doe\"}]}}", false, NULL,
     "not one of Alphabetic"},
    {"{\"00100030\":{\"vr\":\"DA\",\"Value\":[\"2024-01-01\"]}}", false, NULL, "VR DA"},
    {"{\"00100030\":{\"vr\":\"DA\",\"Value\":[20240101]}}", false, NULL, "number"},
    {"{\"00101010\":{\"vr\":\"AS\",\"Value\":\"040Y\"}}", false, NULL, "Value is an array"},
    {"{\"00100010\":{\"vr\":\"PN\",\"Value\":[],\"InlineBinary\":\"AA==\"}}", false, NULL, "both"},
    {"{\"00100010\":{\"vr\":\"PN\",\"InlineBinary\":\"AA==\"}}", false, NULL, "InlineBinary"},
    {"{\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"x\"}],\"extra\":1}}", false, NULL,
     "only vr, Value or InlineBinary"},
};

static void test_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        json_t *out = NULL;
        struct ahl_err err;
        ahl_err_clear(&err);
        int rc = ahl_mapping_parse(c->json, strlen(c->json), ST, c->series ? SE : NULL, &out, &err);
        if (c->expect) {
            if (rc != 0)
                fail_msg("case %zu refused: %s", i, err.msg);
            char *s = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
            if (strcmp(s, c->expect) != 0)
                fail_msg("case %zu: %s, not %s", i, s, c->expect);
            free(s);
            json_decref(out);
        } else {
            if (rc == 0)
                fail_msg("case %zu accepted", i);
            assert_null(out);
            if (!strstr(err.msg, c->phrase))
                fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, c->phrase);
        }
    }
}

static void test_parse_size_cap(void **state)
{
    (void)state;
    size_t n = AHL_MAPPING_MAX_BYTES + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    json_t *out = NULL;
    struct ahl_err err;
    assert_int_equal(ahl_mapping_parse(big, n, ST, NULL, &out, &err), AHL_ETOOBIG);
    assert_int_equal(ahl_mapping_parse(big + 1, n - 1, ST, NULL, &out, &err) == 0, false);
    big[1] = '{';
    assert_int_equal(ahl_mapping_parse(big + 1, n - 1, ST, NULL, &out, &err), 0);
    json_decref(out);
    free(big);
}

/* ---- applying ------------------------------------------------------------------------------ */

static json_t *instance_doc(const char *study, const char *series)
{
    return json_pack("{s:{s:{s:s}},s:{s:{s:s,s:s},s:{s:{s:{s:s},s:{s:{s:{s:s}}}}}}}", "Patient",
                     "DICOM", "PatientName", "Orig", "Study", "DICOM", "StudyInstanceUID", study,
                     "StudyDescription", "orig", "Series", series, "DICOM", "Modality", "CT",
                     "Instances", "1.9", "DICOM", "SOPInstanceUID", "1.9");
}

static json_t *levels(const char *json)
{
    json_t *v = json_loads(json, 0, NULL);
    assert_non_null(v);
    return v;
}

static void test_apply(void **state)
{
    (void)state;
    struct ahl_mapping_set *s = ahl_mapping_set_new();
    struct ahl_err err;
    assert_non_null(s);
    /* The series mapping is added first: it must still win over the study mapping. The study
     * mapping restates StudyInstanceUID, replacing the string the matching started from. */
    assert_int_equal(ahl_mapping_set_add(s, ST, SE, "in/series.json",
                                         levels("{\"Study\":{\"StudyDescription\":\"series\"},"
                                                "\"Series\":{\"SeriesDescription\":\"S\"}}"),
                                         NULL),
                     0);
    assert_int_equal(ahl_mapping_set_add(s, ST, NULL, "in/study.json",
                                         levels("{\"Patient\":{\"PatientName\":\"Mapped\"},"
                                                "\"Study\":{\"StudyDescription\":\"study\","
                                                "\"StudyInstanceUID\":\"" ST "\"}}"),
                                         NULL),
                     0);
    assert_int_equal(ahl_mapping_set_add(s, "1.2.3", NULL, "in/bad.json", NULL, "not JSON"), 0);

    json_t *doc = instance_doc(ST, SE);
    assert_int_equal(ahl_mapping_set_apply(s, doc, &err), 0);
    json_t *st = json_object_get(doc, "Study");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_object_get(doc, "Patient"), "DICOM"),
                                          "PatientName")),
        "Mapped");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(st, "DICOM"), "StudyDescription")),
        "series");
    json_t *ser = json_object_get(json_object_get(st, "Series"), SE);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(ser, "DICOM"), "SeriesDescription")),
        "S");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(ser, "DICOM"), "Modality")), "CT");
    json_decref(doc);

    /* Another series of the study: the study mapping only. */
    doc = instance_doc(ST, "1.2.840.1.9");
    assert_int_equal(ahl_mapping_set_apply(s, doc, &err), 0);
    st = json_object_get(doc, "Study");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(st, "DICOM"), "StudyDescription")),
        "study");
    json_decref(doc);

    /* A study whose file could not be used: refused, naming the file; the document untouched. */
    doc = instance_doc("1.2.3", SE);
    assert_int_equal(ahl_mapping_set_apply(s, doc, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "in/bad.json"));
    assert_non_null(strstr(err.msg, "not JSON"));
    st = json_object_get(doc, "Study");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(st, "DICOM"), "StudyDescription")),
        "orig");
    json_decref(doc);

    /* A study without mappings, and no set at all: nothing changes. */
    doc = instance_doc("1.2.4", SE);
    json_t *copy = json_deep_copy(doc);
    assert_int_equal(ahl_mapping_set_apply(s, doc, &err), 0);
    assert_int_equal(ahl_mapping_set_apply(NULL, doc, &err), 0);
    assert_true(json_equal(doc, copy));
    json_decref(copy);
    json_decref(doc);
    ahl_mapping_set_free(s);
    ahl_mapping_set_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_config),   cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_object_key),     cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_size_cap), cmocka_unit_test(test_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
