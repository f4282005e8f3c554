/* Unit tests for the Part-10 writer (src/dicom/p10write.c): every file of pydicom's test and
 * character-set sets that our reader and normalizer accept is read, normalized, written back and
 * read again with our reader; the two documents must agree
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

#include <dirent.h>
#include <sys/stat.h>

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

/* The instance object of a single-instance document, and its SOPInstanceUID key in *sop. */
static json_t *only_instance(json_t *doc, const char **sop)
{
    const char *k, *ik;
    json_t *s, *inst;
    json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), k, s)
    {
        json_object_foreach(json_object_get(s, "Instances"), ik, inst)
        {
            if (sop)
                *sop = ik;
            return inst;
        }
    }
    return NULL;
}

/* Drops what the round trip changes on purpose: the meta attributes the writer sets, group
 * lengths, ImageFrames (compared through the pixel bytes instead). */
static void strip(json_t *doc)
{
    json_t *inst = only_instance(doc, NULL);
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
            json_object_del(vrs, k); /* first: deleting from d frees k */
            json_object_del(d, k);
        }
    }
}

/* true when the document holds a non-ASCII character anywhere. */
static bool doc_non_ascii(const json_t *doc)
{
    char *text = json_dumps(doc, 0);
    bool found = false;
    assert_non_null(text);
    for (const char *p = text; *p && !found; p++)
        found = (unsigned char)*p >= 0x80;
    free(text);
    return found;
}

static void round_trip(const char *path)
{
    struct ahl_dcm_file *f = NULL, *g = NULL;
    json_t *doc = NULL, *doc2 = NULL;
    struct ahl_err err;
    struct ahl_buf out;
    uint8_t *whole = NULL;
    ahl_buf_init(&out, AHL_BUF_UNLIMITED);
    if (ahl_p10_read_path(path, NULL, &f, &err) < 0) {
        print_message("%s: %s\n", path, err.msg);
        fail();
    }
    if (ahl_hi_normalize(f, &doc, &err) < 0) {
        print_message("%s: %s\n", path, err.msg);
        fail();
    }
    const char *sop = NULL;
    assert_non_null(only_instance(doc, &sop));
    /* Native little-endian pixel data is handed over as it is in the file; other pixel data
     * (encapsulated, big-endian, deflated) is left out, its decoding is not this module's. */
    bool pixels = f->pixel.present && !f->pixel.encapsulated && !f->big_endian && !f->deflated &&
                  f->pixel.tag == AHL_TAG_PIXEL_DATA && f->pixel.value_length < (1 << 24);
    bool utf8 = doc_non_ascii(doc);

    struct mem_pixels mp = {0};
    struct ahl_p10_pixels px = {0};
    if (pixels) {
        FILE *fp = fopen(path, "rb");
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
    int rc = ahl_p10_write(doc, sop, pixels ? &px : NULL, buf_sink, &out, &err);
    if (rc < 0)
        print_message("%s: %s\n", path, err.msg);
    assert_int_equal(rc, 0);
    assert_memory_equal(out.data + 128, "DICM", 4);
    if (ahl_p10_read_mem(out.data, out.len, NULL, &g, &err) < 0) {
        print_message("%s: re-read: %s\n", path, err.msg);
        fail();
    }
    assert_string_equal(g->transfer_syntax, AHL_TS_EXPLICIT_LE);
    const struct ahl_dcm_elem *ic = ahl_dcm_find(&g->meta, AHL_DCM_TAG(0x0002, 0x0012));
    assert_non_null(ic);
    assert_memory_equal(ic->value, AHL_P10_IMPLEMENTATION_CLASS_UID,
                        strlen(AHL_P10_IMPLEMENTATION_CLASS_UID));
    assert_int_equal(ahl_hi_normalize(g, &doc2, &err), 0);
    if (pixels) {
        assert_true(g->pixel.present);
        assert_int_equal(g->pixel.value_length, mp.n + (mp.n & 1));
        assert_memory_equal(out.data + g->pixel.value_offset, mp.p, mp.n);
        assert_true(json_equal(json_object_get(only_instance(doc, NULL), "ImageFrames"),
                               json_object_get(only_instance(doc2, NULL), "ImageFrames")));
    } else {
        assert_false(g->pixel.present);
    }
    strip(doc);
    strip(doc2);
    if (utf8) {
        json_t *d2 = json_object_get(only_instance(doc2, NULL), "DICOM");
        json_t *cs = json_object_get(d2, "SpecificCharacterSet");
        const char *s =
            json_is_array(cs) ? json_string_value(json_array_get(cs, 0)) : json_string_value(cs);
        assert_non_null(s);
        assert_string_equal(s, "ISO_IR 192");
        json_object_set(d2, "SpecificCharacterSet",
                        json_object_get(json_object_get(only_instance(doc, NULL), "DICOM"),
                                        "SpecificCharacterSet"));
    }
    if (!json_equal(doc, doc2)) {
        char *a = json_dumps(doc, JSON_SORT_KEYS), *b = json_dumps(doc2, JSON_SORT_KEYS);
        fprintf(stderr, "%s differs:\n%s\n%s\n", path, a, b);
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

/* Round-trips every file of a directory that the reader and the normalizer accept; returns how
 * many. */
static size_t round_trip_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;
    assert_non_null(d);
    while ((de = readdir(d))) {
        char path[1024];
        struct stat st;
        struct ahl_dcm_file *f = NULL;
        json_t *doc = NULL;
        snprintf(path, sizeof path, "%s%s", dir, de->d_name);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (ahl_p10_read_path(path, NULL, &f, NULL) == 0 && ahl_hi_normalize(f, &doc, NULL) == 0) {
            round_trip(path);
            n++;
        }
        json_decref(doc);
        ahl_dcm_file_free(f);
    }
    closedir(d);
    return n;
}

static void test_round_trip(void **state)
{
    (void)state;
    /* Most of both sets import (tests/integration/test_import_cli.py lists the exceptions). */
    size_t n = round_trip_dir(CORPUS);
    print_message("%zu files of %s round-tripped\n", n, CORPUS);
    assert_true(n >= 50);
    n = round_trip_dir(CHARSETS);
    print_message("%zu files of %s round-tripped\n", n, CHARSETS);
    assert_true(n >= 15);
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
        "\"SmallestImagePixelValue\":3,\"LargestImagePixelValue\":40000,\"PixelRepresentation\":1,"
        "\"00091001\":\"abc\",\"00090010\":\"ME\","
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
    e = ahl_dcm_find(&g->ds, AHL_DCM_TAG(0x0028, 0x0106)); /* signed pixels, and it fits */
    assert_string_equal(e->vr, "SS");
    e = ahl_dcm_find(&g->ds, AHL_DCM_TAG(0x0028, 0x0107)); /* too large for SS */
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
    json_t *inst = NULL;
    assert_int_equal(ahl_p10_find_instance(doc, "1.2.3.4", NULL, &inst), 0);
    json_t *d = json_object_get(inst, "DICOM");
    json_object_set_new(d, "Rows", json_string("many"));
    assert_int_equal(ahl_p10_write(doc, "1.2.3.4", NULL, buf_sink, &out, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "Rows"));
    json_object_set_new(d, "Rows", json_integer(65536));
    assert_int_equal(ahl_p10_write(doc, "1.2.3.4", NULL, buf_sink, &out, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "does not fit VR US"));
    json_object_set_new(d, "Rows", json_real(1.5));
    assert_int_equal(ahl_p10_write(doc, "1.2.3.4", NULL, buf_sink, &out, &err), AHL_EINVAL);
    json_object_set_new(d, "Rows", json_real(-1e300));
    assert_int_equal(ahl_p10_write(doc, "1.2.3.4", NULL, buf_sink, &out, &err), AHL_EINVAL);
    json_object_del(d, "Rows");
    json_object_set_new(d, "NoSuchKeyword", json_string("x"));
    assert_int_equal(ahl_p10_write(doc, "1.2.3.4", NULL, buf_sink, &out, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "NoSuchKeyword"));
    assert_int_equal(ahl_p10_write(doc, "9.9", NULL, buf_sink, &out, &err), AHL_ENOTFOUND);
    json_decref(doc);
    ahl_buf_release(&out);
}

/* Two frames of odd and even length as fragments. */
static int write_fragments(void *ctx, ahl_p10_sink_fn sink, void *sink_ctx, struct ahl_err *err)
{
    (void)ctx;
    (void)err;
    int rc = ahl_p10_fragment(sink, sink_ctx, "\xff\x4f\xff\x51\x01", 5);
    return rc < 0 ? rc : ahl_p10_fragment(sink, sink_ctx, "\xff\x4f\xff\x51", 4);
}

/* The options: a compressed syntax in the meta group with encapsulated pixel data, one fragment
 * a frame (odd ones padded), and extra attributes that replace the document's. */
static void test_encapsulated_and_extra(void **state)
{
    (void)state;
    struct ahl_err err;
    struct ahl_buf out;
    struct ahl_dcm_file *g = NULL;
    json_error_t je;
    ahl_buf_init(&out, AHL_BUF_UNLIMITED);
    json_t *doc = json_loads(
        "{\"Patient\":{\"DICOM\":{\"PatientName\":\"NEW^NAME\"}},\"Study\":{\"DICOM\":{},"
        "\"Series\":{\"1.2.5\":{\"DICOM\":{},\"Instances\":{\"1.2.3.4\":{\"DICOM\":{"
        "\"SOPClassUID\":\"1.2.840.10008.5.1.4.1.1.7\",\"SOPInstanceUID\":\"1.2.3.4\","
        "\"WaveformSequence\":[{\"WaveformBitsAllocated\":8,\"WaveformData\":\"AAE=\"},"
        "{\"WaveformBitsAllocated\":16,\"WaveformData\":\"AAE=\"}],"
        "\"OriginalAttributesSequence\":[{\"ModifyingSystem\":\"OLD\"}]}}}}}}}",
        0, &je);
    json_t *extra = json_loads(
        "{\"OriginalAttributesSequence\":[{\"ModifyingSystem\":\"OLD\"},"
        "{\"ModifiedAttributesSequence\":[{\"PatientName\":\"OLD^NAME\",\"00091001\":\"x\","
        "\"DICOMVRs\":{\"00091001\":\"LO\"}}],\"ModifyingSystem\":\"ahilite\","
        "\"SourceOfPreviousValues\":null}]}",
        0, &je);
    assert_non_null(doc);
    assert_non_null(extra);
    struct ahl_p10_pixels px = {.encapsulated = true, .write = write_fragments};
    struct ahl_p10_opts o = {.transfer_syntax = "1.2.840.10008.1.2.4.202", .extra = extra};
    assert_int_equal(ahl_p10_write_with(doc, "1.2.3.4", &o, &px, buf_sink, &out, &err), 0);
    assert_int_equal(ahl_p10_read_mem(out.data, out.len, NULL, &g, &err), 0);
    assert_string_equal(g->transfer_syntax, "1.2.840.10008.1.2.4.202");
    assert_true(g->pixel.present && g->pixel.encapsulated);
    assert_int_equal(g->pixel.n_fragments, 2);
    assert_int_equal(g->pixel.fragments[0].length, 6);
    assert_memory_equal(out.data + g->pixel.fragments[0].offset, "\xff\x4f\xff\x51\x01\x00", 6);
    assert_int_equal(g->pixel.fragments[1].length, 4);
    /* The extra sequence replaced the document's, and its items keep their own VRs. */
    const struct ahl_dcm_elem *e = ahl_dcm_find(&g->ds, AHL_DCM_TAG(0x0400, 0x0561));
    assert_non_null(e);
    assert_int_equal(e->n_items, 2);
    /* WaveformData: OB when the item says its samples are bytes, else OW. */
    e = ahl_dcm_find(&g->ds, AHL_DCM_TAG(0x5400, 0x0100));
    assert_non_null(e);
    assert_int_equal(e->n_items, 2);
    assert_string_equal(ahl_dcm_find(&e->items[0], AHL_DCM_TAG(0x5400, 0x1010))->vr, "OB");
    assert_string_equal(ahl_dcm_find(&e->items[1], AHL_DCM_TAG(0x5400, 0x1010))->vr, "OW");
    ahl_dcm_file_free(g);
    /* A fragment of 4 GiB or more cannot be written. */
    assert_int_equal(ahl_p10_fragment(buf_sink, &out, "", (size_t)0xFFFFFFFFu), AHL_ETOOBIG);
    json_decref(extra);
    json_decref(doc);
    ahl_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_encapsulated_and_extra),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
