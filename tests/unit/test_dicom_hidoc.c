/* links: json */
/* Unit tests for the conversion of HealthImaging documents into DICOM JSON (src/dicom/hidoc.c):
 * a round trip through real files (Part-10 -> normalize -> hidoc, against dicomjson.c's JSON of the
 * same dataset), and hand-made documents for what files do not cover: keywords vs hex keys,
 * DICOMVRs, ambiguous VRs, PN groups, IS/DS text, nulls, the pixel data BulkDataURI, merging of
 * levels and the errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/err.h"
#include "dicom/dicomjson.h"
#include "dicom/hidoc.h"
#include "dicom/normalize.h"
#include "dicom/p10.h"

#define CORPUS "/usr/lib/python3/dist-packages/pydicom/data/test_files/"

/* Equal JSON, reals compared as the float an FL holds too: the normalizer writes an FL as the
 * shortest decimal of the float, DICOM JSON from the file as the float's exact double. */
static bool same(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        return x == y || (float)x == (float)y;
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v) if (!same(v, json_object_get(b, k))) return false;
        return true;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

static json_t *first_value(const json_t *map)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)map, k, v) return v;
    return NULL;
}

/* The instance of a single-instance document, converted. */
static json_t *convert_doc(const json_t *doc, const char *bulk)
{
    const json_t *study = json_object_get(doc, "Study");
    const json_t *series = first_value(json_object_get(study, "Series"));
    const json_t *inst = first_value(json_object_get(series, "Instances"));
    struct ahl_hidoc_opts o = {.pixel_bulk_uri = bulk};
    struct ahl_err err;
    json_t *out = NULL;
    int rc =
        ahl_hidoc_instance(json_object_get(doc, "Patient"), study, series, inst, &o, &out, &err);
    if (rc != 0)
        fail_msg("hidoc: %s", err.msg);
    return out;
}

static void round_trip(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, CORPUS "%s", name);
    if (access(path, R_OK) != 0) {
        print_message("%s: not installed (pydicom's test files)\n", path);
        skip();
    }
    struct ahl_dcm_file *f = NULL;
    struct ahl_err err;
    json_t *doc = NULL, *ref = NULL;
    if (ahl_p10_read_path(path, NULL, &f, &err) != 0 || ahl_hi_normalize(f, &doc, &err) != 0 ||
        ahl_dicomjson_from_dataset(&f->ds, NULL, &ref, &err) != 0)
        fail_msg("%s: %s", name, err.msg);
    json_t *got = convert_doc(doc, "http://h/frames/1");

    /* Every attribute of the file the document holds comes back as the file's DICOM JSON has it;
     * pixel data is the BulkDataURI; values the reader left in the file are in neither. */
    unsigned compared = 0, bad = 0;
    const char *k;
    json_t *want;
    json_object_foreach(ref, k, want)
    {
        json_t *have = json_object_get(got, k);
        if (strcmp(k, "7FE00010") == 0)
            continue;
        if (!have) {
            if (json_object_size(want) == 1)
                continue; /* no value: either a value left in the file or truly empty */
            print_message("%s: %s missing\n", name, k);
            bad++;
            continue;
        }
        compared++;
        if (!same(want, have)) {
            char *a = json_dumps(want, JSON_COMPACT), *b = json_dumps(have, JSON_COMPACT);
            print_message("%s: %s differs:\n  file %.300s\n  doc  %.300s\n", name, k, a, b);
            free(a);
            free(b);
            bad++;
        }
    }
    json_object_foreach(got, k, want)
    {
        if (strcmp(k, "7FE00010") != 0 && !json_object_get(ref, k)) {
            print_message("%s: %s not in the file\n", name, k);
            bad++;
        }
    }
    if (f->pixel.present) {
        json_t *px = json_object_get(got, "7FE00010");
        assert_non_null(px);
        assert_string_equal(json_string_value(json_object_get(px, "BulkDataURI")),
                            "http://h/frames/1");
    }
    assert_true(compared > 10);
    assert_int_equal(bad, 0);
    json_decref(got);
    json_decref(ref);
    json_decref(doc);
    ahl_dcm_file_free(f);
}

static void test_round_trip_files(void **state)
{
    (void)state;
    static const char *const files[] = {
        "CT_small.dcm",          "MR_small.dcm",
        "MR_small_implicit.dcm", "rtplan.dcm",
        "rtstruct.dcm",          "rtdose.dcm",
        "reportsi.dcm",          "test-SR.dcm",
        "SC_rgb_jpeg_dcmtk.dcm", "MR_small_bigendian.dcm",
        "SC_rgb_rle_2frame.dcm", "waveform_ecg.dcm",
        "JPEG2000.dcm",          "liver_1frame.dcm",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        round_trip(files[i]);
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static json_t *convert_levels(const char *pat, const char *study, const char *series,
                              const char *inst, const char *bulk, int want_rc)
{
    json_t *p = pat ? parse(pat) : NULL, *st = study ? parse(study) : NULL;
    json_t *se = series ? parse(series) : NULL, *in = parse(inst);
    struct ahl_hidoc_opts o = {.pixel_bulk_uri = bulk};
    struct ahl_err err;
    json_t *out = NULL;
    assert_int_equal(ahl_hidoc_instance(p, st, se, in, &o, &out, &err), want_rc);
    if (want_rc != 0)
        print_message("expected failure: %s\n", err.msg);
    json_decref(p);
    json_decref(st);
    json_decref(se);
    json_decref(in);
    return out;
}

static void expect(const json_t *got, const char *want_text)
{
    json_t *want = parse(want_text);
    if (!json_equal((json_t *)got, want)) {
        char *a = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("got %s\nwant %s", a, want_text);
    }
    json_decref(want);
}

static void test_values_by_vr(void **state)
{
    (void)state;
    json_t *got = convert_levels(
        "{\"DICOM\":{\"PatientName\":\"Doe^Jane=\\u5c71\\u7530\",\"PatientID\":null,"
        "\"OtherPatientNames\":[\"A^B\",null]}}",
        "{\"DICOM\":{\"StudyInstanceUID\":\"1.2\",\"StudyDate\":\"20200101\"},\"Series\":{}}",
        "{\"DICOM\":{\"SeriesInstanceUID\":\"1.2.3\",\"SeriesNumber\":\"7 \","
        "\"StudyDate\":\"19990101\"},\"Instances\":{}}",
        "{\"DICOM\":{\"SOPInstanceUID\":\"1.2.3.4\",\"ImageType\":[\"ORIGINAL\",\"PRIMARY\"],"
        "\"PixelSpacing\":[\"0.5 \",\"0.25\"],\"SliceThickness\":\"x\",\"Rows\":2,"
        "\"BitsAllocated\":16,\"PixelRepresentation\":1,\"SmallestImagePixelValue\":3,"
        "\"ImageComments\":\"  lead\",\"FrameIncrementPointer\":\"00181063\","
        "\"TransferSyntaxUID\":\"1.2.840.10008.1.2.1\",\"NoSuchKeyword\":1,"
        "\"00091001\":\"GE\",\"00091002\":\"AAE=\",\"00280011\":3,"
        "\"ReferencedImageSequence\":[{\"ReferencedSOPInstanceUID\":\"9.9\","
        "\"00291001\":\"x\",\"DICOMVRs\":{\"00291001\":\"SH\"}}],\"ReferencedSeriesSequence\":null}"
        ","
        "\"DICOMVRs\":{\"00091001\":\"LO\",\"00091002\":\"OB\"},"
        "\"ImageFrames\":[{\"ID\":\"abc\"}],\"StoredTransferSyntaxUID\":\"1.2.840.10008.1.2.1\"}",
        "http://x/frames/1", 0);
    expect(got, "{"
                "\"00080008\":{\"vr\":\"CS\",\"Value\":[\"ORIGINAL\",\"PRIMARY\"]},"
                "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.4\"]},"
                "\"00080020\":{\"vr\":\"DA\",\"Value\":[\"19990101\"]},"
                "\"00081140\":{\"vr\":\"SQ\",\"Value\":[{"
                "\"00081155\":{\"vr\":\"UI\",\"Value\":[\"9.9\"]},"
                "\"00291001\":{\"vr\":\"SH\",\"Value\":[\"x\"]}}]},"
                "\"00081115\":{\"vr\":\"SQ\"},"
                "\"00091001\":{\"vr\":\"LO\",\"Value\":[\"GE\"]},"
                "\"00091002\":{\"vr\":\"OB\",\"InlineBinary\":\"AAE=\"},"
                "\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"Doe^Jane\","
                "\"Ideographic\":\"\\u5c71\\u7530\"}]},"
                "\"00100020\":{\"vr\":\"LO\"},"
                "\"00101001\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"A^B\"},null]},"
                "\"00180050\":{\"vr\":\"DS\",\"Value\":[\"x\"]},"
                "\"00280009\":{\"vr\":\"AT\",\"Value\":[\"00181063\"]},"
                "\"00280011\":{\"vr\":\"US\",\"Value\":[3]},"
                "\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"1.2\"]},"
                "\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"1.2.3\"]},"
                "\"00200011\":{\"vr\":\"IS\",\"Value\":[7]},"
                "\"00204000\":{\"vr\":\"LT\",\"Value\":[\"  lead\"]},"
                "\"00280010\":{\"vr\":\"US\",\"Value\":[2]},"
                "\"00280030\":{\"vr\":\"DS\",\"Value\":[0.5,0.25]},"
                "\"00280100\":{\"vr\":\"US\",\"Value\":[16]},"
                "\"00280103\":{\"vr\":\"US\",\"Value\":[1]},"
                "\"00280106\":{\"vr\":\"SS\",\"Value\":[3]},"
                "\"7FE00010\":{\"vr\":\"OW\",\"BulkDataURI\":\"http://x/frames/1\"}"
                "}");
    json_decref(got);
}

static void test_errors(void **state)
{
    (void)state;
    assert_null(convert_levels(NULL, NULL, NULL, "{\"DICOM\":[]}", NULL, AHL_EPARSE));
    assert_null(convert_levels(NULL, NULL, NULL, "{\"DICOM\":{\"ReferencedImageSequence\":1}}",
                               NULL, AHL_EPARSE));
    assert_null(convert_levels(NULL, NULL, NULL,
                               "{\"DICOM\":{\"00091002\":5},\"DICOMVRs\":{\"00091002\":\"OB\"}}",
                               NULL, AHL_EPARSE));
    assert_null(
        convert_levels(NULL, NULL, NULL, "{\"DICOM\":{\"PatientName\":{}}}", NULL, AHL_EPARSE));
    /* Nesting beyond the cap. */
    char deep[AHL_HIDOC_MAX_DEPTH * 40 + 64];
    size_t n = 0;
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"DICOM\":{");
    for (int i = 0; i <= AHL_HIDOC_MAX_DEPTH; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "\"ReferencedImageSequence\":[{");
    n += (size_t)snprintf(deep + n, sizeof deep - n, "\"Rows\":1");
    for (int i = 0; i <= AHL_HIDOC_MAX_DEPTH; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "}]");
    snprintf(deep + n, sizeof deep - n, "}}");
    assert_null(convert_levels(NULL, NULL, NULL, deep, NULL, AHL_ETOOBIG));
}

/* An instance's "BulkData" entries become BulkDataURIs, in tag order among the attributes, and
 * are left out without a prefix; an entry without ID or VR is a parse error. */
static void test_bulk_data_uris(void **state)
{
    (void)state;
    static const char inst[] =
        "{\"DICOM\":{\"Rows\":2,\"MIMETypeOfEncapsulatedDocument\":\"application/pdf\"},"
        "\"DICOMVRs\":{},\"BulkData\":{\"00420011\":{\"ID\":\"abc\",\"VR\":\"OB\","
        "\"Length\":4000000},\"00991010\":{\"ID\":\"def\",\"VR\":\"OW\",\"Length\":2}}}";
    json_t *in = parse(inst), *out = NULL;
    struct ahl_hidoc_opts o = {.bulk_uri_prefix = "http://h/x/bulkdata/",
                               .bulk_uri_suffix = "?imageSetId=s"};
    struct ahl_err err;
    assert_int_equal(ahl_hidoc_instance(NULL, NULL, NULL, in, &o, &out, &err), 0);
    expect(
        out,
        "{\"00280010\":{\"vr\":\"US\",\"Value\":[2]},"
        "\"00420011\":{\"vr\":\"OB\",\"BulkDataURI\":\"http://h/x/bulkdata/abc?imageSetId=s\"},"
        "\"00420012\":{\"vr\":\"LO\",\"Value\":[\"application/pdf\"]},"
        "\"00991010\":{\"vr\":\"OW\",\"BulkDataURI\":\"http://h/x/bulkdata/def?imageSetId=s\"}}");
    const char *prev = "";
    const char *key;
    json_t *v;
    json_object_foreach(out, key, v)
    {
        assert_true(strcmp(prev, key) < 0);
        prev = key;
    }
    json_decref(out);
    out = convert_levels(NULL, NULL, NULL, inst, NULL, 0);
    assert_null(json_object_get(out, "00420011"));
    json_decref(out);
    json_decref(in);
    in = parse("{\"DICOM\":{},\"BulkData\":{\"00420011\":{\"VR\":\"OB\"}}}");
    assert_int_equal(ahl_hidoc_instance(NULL, NULL, NULL, in, &o, &out, &err), AHL_EPARSE);
    json_decref(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_files),
        cmocka_unit_test(test_bulk_data_uris),
        cmocka_unit_test(test_values_by_vr),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
