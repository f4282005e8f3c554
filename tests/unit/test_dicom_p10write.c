/* Unit tests for the Part-10 writer (src/dicom/p10write.c): real files from pydicom's test set are
 * read, normalized, written back and read again with our reader; the two documents must agree
 * attribute for attribute (but for the file meta attributes the writer sets itself and the group
 * lengths it leaves out), and native pixel data handed to the writer must come back byte for
 * byte. Also: values the document cannot hold as a file give errors naming the attribute. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/err.h"
#include "dicom/dataset.h"
#include "dicom/normalize.h"
#include "dicom/p10.h"
#include "dicom/p10write.h"

#define CORPUS "/usr/lib/python3/dist-packages/pydicom/data/test_files/"
#define CHARSETS "/usr/lib/python3/dist-packages/pydicom/data/charset_files/"

static int buf_sink(void *ctx, const void *p, size_t n)
{
    return ahl_buf_add(ctx, p, n);
}

struct mem_pixels {
    const uint8_t *p;
    size_t n;
};

/* Hands the pixel bytes over in two pieces, as a frame-by-frame caller would. */
static int write_pixels(void *ctx, ahl_p10_sink_fn sink, void *sink_ctx, struct ahl_err *err)
{
    struct mem_pixels *m = ctx;
    (void)err;
    size_t half = m->n / 2;
    int rc = sink(sink_ctx, m->p, half);
    return rc < 0 ? rc : sink(sink_ctx, m->p + half, m->n - half);
}

/* The instance object of a single-instance document. */
static json_t *instance_dicom(json_t *doc)
{
    const char *k, *ik;
    json_t *s, *inst;
    json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), k, s)
    {
        json_object_foreach(json_object_get(s, "Instances"), ik, inst)
        {
            return inst;
        }
    }
    return NULL;
}

static const char *first_sop(json_t *doc)
{
    const char *k, *ik;
    json_t *s, *inst;
    json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), k, s)
    {
        json_object_foreach(json_object_get(s, "Instances"), ik, inst)
        {
            return ik;
        }
    }
    return NULL;
}

/* Drops what the round trip changes on purpose: the meta attributes the writer sets, group
 * lengths, ImageFrames (compared through the pixel bytes instead). */
static void strip(json_t *doc)
{
    json_t *inst = instance_dicom(doc);
    json_t *d = json_object_get(inst, "DICOM");
    static const char *const keys[] = {
        "FileMetaInformationGroupLength", "TransferSyntaxUID",          "ImplementationClassUID",
        "ImplementationVersionName",      "FileMetaInformationVersion", "MediaStorageSOPClassUID",
        "MediaStorageSOPInstanceUID"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        json_object_del(d, keys[i]);
    json_object_del(inst, "ImageFrames");
    json_t *vrs = json_object_get(inst, "DICOMVRs");
    const char *k;
    json_t *v, *tmp;
    json_object_foreach_safe(d, tmp, k, v)
    {
        if (strlen(k) == 8 && !strcmp(k + 4, "0000")) {
            json_object_del(d, k);
            json_object_del(vrs, k);
        }
    }
}

struct round_case {
    const char *path;
    bool pixels; /* hand the native pixel bytes to the writer */
    bool utf8;   /* non-ASCII text: SpecificCharacterSet comes back as ISO_IR 192 */
};

static const struct round_case round_cases[] = {
    {CORPUS "CT_small.dcm", true, false},
    {CORPUS "MR_small.dcm", true, false},
    {CORPUS "MR_small_implicit.dcm", true, false},
    {CORPUS "rtplan.dcm", false, false},
    {CORPUS "rtdose.dcm", true, false},
    {CORPUS "rtstruct.dcm", false, false},
    {CORPUS "SC_rgb_small_odd.dcm", true, false},
    {CORPUS "JPEG2000.dcm", false, false},
    {CORPUS "test-SR.dcm", false, true},
    {CORPUS "waveform_ecg.dcm", false, false},
    {CORPUS "MR_small_bigendian.dcm", false, false},
    {CHARSETS "chrGerm.dcm", false, true},
    {CHARSETS "chrH31.dcm", false, true},
};

static void round_trip(const struct round_case *c)
{
    struct ahl_dcm_file *f = NULL, *g = NULL;
    json_t *doc = NULL, *doc2 = NULL;
    struct ahl_err err;
    struct ahl_buf out;
    uint8_t *whole = NULL;
    ahl_buf_init(&out, AHL_BUF_UNLIMITED);
    if (ahl_p10_read_path(c->path, NULL, &f, &err) < 0) {
        print_message("%s: %s\n", c->path, err.msg);
        fail();
    }
    if (ahl_hi_normalize(f, &doc, &err) < 0) {
        print_message("%s: %s\n", c->path, err.msg);
        fail();
    }
    const char *sop = first_sop(doc);
    assert_non_null(sop);

    struct mem_pixels mp = {0};
    struct ahl_p10_pixels px = {0};
    if (c->pixels) {
        assert_true(f->pixel.present && !f->pixel.encapsulated);
        FILE *fp = fopen(c->path, "rb");
        assert_non_null(fp);
        whole = malloc(1 << 24);
        size_t whole_len = fread(whole, 1, 1 << 24, fp);
        fclose(fp);
        assert_true(f->pixel.value_offset + f->pixel.value_length <= whole_len);
        mp.p = whole + f->pixel.value_offset;
        mp.n = (size_t)f->pixel.value_length;
        px = (struct ahl_p10_pixels){
            .tag = f->pixel.tag, .length = mp.n, .write = write_pixels, .ctx = &mp};
        memcpy(px.vr, f->pixel.vr, 3);
    }
    int rc = ahl_p10_write(doc, sop, c->pixels ? &px : NULL, buf_sink, &out, &err);
    if (rc < 0)
        print_message("%s: %s\n", c->path, err.msg);
    assert_int_equal(rc, 0);
    assert_memory_equal(out.data + 128, "DICM", 4);
    if (ahl_p10_read_mem(out.data, out.len, NULL, &g, &err) < 0) {
        print_message("%s: re-read: %s\n", c->path, err.msg);
        fail();
    }
    assert_string_equal(g->transfer_syntax, AHL_TS_EXPLICIT_LE);
    const struct ahl_dcm_elem *ic = ahl_dcm_find(&g->meta, AHL_DCM_TAG(0x0002, 0x0012));
    assert_non_null(ic);
    assert_memory_equal(ic->value, AHL_P10_IMPLEMENTATION_CLASS_UID,
                        strlen(AHL_P10_IMPLEMENTATION_CLASS_UID));
    assert_int_equal(ahl_hi_normalize(g, &doc2, &err), 0);
    if (c->pixels) {
        assert_true(g->pixel.present);
        assert_int_equal(g->pixel.value_length, mp.n + (mp.n & 1));
        assert_memory_equal(out.data + g->pixel.value_offset, mp.p, mp.n);
        assert_true(json_equal(json_object_get(instance_dicom(doc), "ImageFrames"),
                               json_object_get(instance_dicom(doc2), "ImageFrames")));
    } else {
        assert_false(g->pixel.present);
    }
    strip(doc);
    strip(doc2);
    if (c->utf8) {
        json_t *d2 = json_object_get(instance_dicom(doc2), "DICOM");
        json_t *cs = json_object_get(d2, "SpecificCharacterSet");
        const char *s =
            json_is_array(cs) ? json_string_value(json_array_get(cs, 0)) : json_string_value(cs);
        assert_non_null(s);
        assert_string_equal(s, "ISO_IR 192");
        json_object_set(
            d2, "SpecificCharacterSet",
            json_object_get(json_object_get(instance_dicom(doc), "DICOM"), "SpecificCharacterSet"));
    }
    if (!json_equal(doc, doc2)) {
        char *a = json_dumps(doc, JSON_SORT_KEYS), *b = json_dumps(doc2, JSON_SORT_KEYS);
        fprintf(stderr, "%s differs:\n%s\n%s\n", c->path, a, b);
        free(a);
        free(b);
        fail();
    }
    json_decref(doc);
    json_decref(doc2);
    ahl_dcm_file_free(f);
    ahl_dcm_file_free(g);
    ahl_buf_release(&out);
    free(whole);
}

static void test_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof round_cases / sizeof round_cases[0]; i++)
        round_trip(&round_cases[i]);
}

/* A hand-made document: ambiguous VRs follow the value, an edited instance-level value wins,
 * multi-valued text and nulls. */
static void test_values(void **state)
{
    (void)state;
    struct ahl_err err;
    struct ahl_buf out;
    struct ahl_dcm_file *g = NULL;
    ahl_buf_init(&out, AHL_BUF_UNLIMITED);
    json_error_t je;
    json_t *doc = json_loads(
        "{\"Patient\":{\"DICOM\":{\"PatientName\":\"DOE^JANE\",\"PatientID\":null}},"
        "\"Study\":{\"DICOM\":{\"StudyInstanceUID\":\"1.2.3\"},\"Series\":{\"1.2.3.5\":{"
        "\"DICOM\":{\"SeriesInstanceUID\":\"1.2.3.5\",\"PixelPaddingValue\":-5},"
        "\"Instances\":{\"1.2.3.4\":{\"DICOM\":{\"SOPClassUID\":\"1.2.840.10008.5.1.4.1.1.7\","
        "\"SOPInstanceUID\":\"1.2.3.4\",\"ImageType\":[\"ORIGINAL\",null,\"AXIAL\"],"
        "\"SmallestImagePixelValue\":3,\"00091001\":\"abc\",\"00090010\":\"ME\","
        "\"FrameIncrementPointer\":[\"00181063\"],\"ImagePositionPatient\":[\"1\",\"2\",\"3\"],"
        "\"OtherPatientIDsSequence\":[{\"PatientID\":\"X\"}]},"
        "\"DICOMVRs\":{\"00091001\":\"LO\",\"00090010\":\"LO\"},\"ImageFrames\":[]}}}}}}",
        0, &je);
    assert_non_null(doc);
    assert_int_equal(ahl_p10_write(doc, "1.2.3.4", NULL, buf_sink, &out, &err), 0);
    assert_int_equal(ahl_p10_read_mem(out.data, out.len, NULL, &g, &err), 0);
    const struct ahl_dcm_elem *e = ahl_dcm_find(&g->ds, AHL_DCM_TAG(0x0028, 0x0120));
    assert_non_null(e);
    assert_string_equal(e->vr, "SS");
    e = ahl_dcm_find(&g->ds, AHL_DCM_TAG(0x0028, 0x0106));
    assert_string_equal(e->vr, "US");
    e = ahl_dcm_find(&g->ds, AHL_DCM_TAG(0x0008, 0x0008));
    assert_int_equal(e->value_len, 16);
    assert_memory_equal(e->value, "ORIGINAL\\\\AXIAL ", 16);
    e = ahl_dcm_find(&g->ds, AHL_DCM_TAG(0x0010, 0x0020));
    assert_non_null(e);
    assert_int_equal(e->value_len, 0);
    e = ahl_dcm_find(&g->ds, AHL_DCM_TAG(0x0009, 0x1001));
    assert_string_equal(e->vr, "LO");
    e = ahl_dcm_find(&g->ds, AHL_DCM_TAG(0x0028, 0x0009));
    assert_string_equal(e->vr, "AT");
    assert_memory_equal(e->value, "\x18\x00\x63\x10", 4);
    e = ahl_dcm_find(&g->ds, AHL_DCM_TAG(0x0010, 0x1002));
    assert_int_equal(e->n_items, 1);
    ahl_dcm_file_free(g);

    /* Errors name the attribute. */
    ahl_buf_reset(&out);
    json_t *d = json_object_get(
        json_object_get(
            json_object_get(
                json_object_get(json_object_get(json_object_get(doc, "Study"), "Series"),
                                "1.2.3.5"),
                "Instances"),
            "1.2.3.4"),
        "DICOM");
    json_object_set_new(d, "Rows", json_string("many"));
    assert_int_equal(ahl_p10_write(doc, "1.2.3.4", NULL, buf_sink, &out, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "Rows"));
    json_object_del(d, "Rows");
    json_object_set_new(d, "NoSuchKeyword", json_string("x"));
    assert_int_equal(ahl_p10_write(doc, "1.2.3.4", NULL, buf_sink, &out, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "NoSuchKeyword"));
    assert_int_equal(ahl_p10_write(doc, "9.9", NULL, buf_sink, &out, &err), AHL_ENOTFOUND);
    json_decref(doc);
    ahl_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
