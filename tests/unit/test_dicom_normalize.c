/* links: json */
/* Unit tests for the HealthImaging normalizer (src/dicom/normalize.c) on datasets built by hand:
 * placement by level, keys, value typing per VR, arrays by VM, private tags and DICOMVRs,
 * sequences, nulls, ImageFrames, and the errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/err.h"
#include "dicom/dataset.h"
#include "dicom/normalize.h"
#include "json/json.h"

#define T AHL_DCM_TAG
#define LEFT_OUT ((const char *)1) /* value left in the file by the reader */

struct el {
    uint32_t tag;
    const char *vr;
    const char *val; /* NULL: zero length; LEFT_OUT: value not in memory */
    size_t len;
};

#define V(lit) lit, sizeof(lit) - 1

static const char STUDY[] = "1.2.3", SERIES[] = "1.2.3.5", SOP[] = "1.2.3.4";

static const struct el base_elems[] = {
    {T(0x0008, 0x0018), "UI", V("1.2.3.4\0")},
    {T(0x0020, 0x000D), "UI", V("1.2.3\0")},
    {T(0x0020, 0x000E), "UI", V("1.2.3.5\0")},
};

static void fill_elem(struct ahl_dcm_elem *e, const struct el *s)
{
    memset(e, 0, sizeof *e);
    e->tag = s->tag;
    memcpy(e->vr, s->vr, 2);
    if (s->val == LEFT_OUT) {
        e->length = (uint32_t)s->len;
        return;
    }
    e->length = (uint32_t)s->len;
    e->value_len = s->len;
    e->value = s->len ? (uint8_t *)s->val : NULL;
}

static int elem_cmp(const void *a, const void *b)
{
    uint32_t x = ((const struct ahl_dcm_elem *)a)->tag, y = ((const struct ahl_dcm_elem *)b)->tag;
    return x < y ? -1 : x > y;
}

/* A file of the base UIDs plus extra (group 0002 goes to the meta group), into storage. The
 * base elements whose tags appear in skip are left out. */
struct built {
    struct ahl_dcm_file f;
    struct ahl_dcm_elem meta[8];
    struct ahl_dcm_elem ds[64];
};

static void build(struct built *b, const struct el *extra, size_t n_extra, uint32_t skip)
{
    memset(b, 0, sizeof *b);
    size_t nm = 0, nd = 0;
    for (size_t i = 0; i < 3; i++)
        if (base_elems[i].tag != skip)
            fill_elem(&b->ds[nd++], &base_elems[i]);
    for (size_t i = 0; i < n_extra; i++) {
        bool replaced = false;
        for (size_t j = 0; j < nd; j++)
            if (b->ds[j].tag == extra[i].tag) {
                fill_elem(&b->ds[j], &extra[i]);
                replaced = true;
            }
        if (replaced)
            continue;
        if (AHL_DCM_GROUP(extra[i].tag) == 0x0002)
            fill_elem(&b->meta[nm++], &extra[i]);
        else
            fill_elem(&b->ds[nd++], &extra[i]);
    }
    qsort(b->ds, nd, sizeof b->ds[0], elem_cmp);
    qsort(b->meta, nm, sizeof b->meta[0], elem_cmp);
    b->f.ds.elems = b->ds;
    b->f.ds.n = nd;
    b->f.meta.elems = b->meta;
    b->f.meta.n = nm;
}

static json_t *level_map(json_t *doc, const char *level)
{
    if (strcmp(level, "Patient") == 0)
        return json_object_get(json_object_get(doc, "Patient"), "DICOM");
    json_t *study = json_object_get(doc, "Study");
    if (strcmp(level, "Study") == 0)
        return json_object_get(study, "DICOM");
    json_t *series = json_object_get(json_object_get(study, "Series"), SERIES);
    if (strcmp(level, "Series") == 0)
        return json_object_get(series, "DICOM");
    json_t *inst = json_object_get(json_object_get(series, "Instances"), SOP);
    if (strcmp(level, "Instance") == 0)
        return json_object_get(inst, "DICOM");
    if (strcmp(level, "InstanceVRs") == 0)
        return json_object_get(inst, "DICOMVRs");
    if (strcmp(level, "ImageFrames") == 0)
        return json_object_get(inst, "ImageFrames");
    return NULL;
}

static char *to_text(const json_t *v)
{
    struct ahl_buf b;
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl_json_write(v, &b), 0);
    return ahl_buf_detach(&b, NULL);
}

static json_t *normalize_ok(const struct ahl_dcm_file *f)
{
    json_t *doc = NULL;
    struct ahl_err err;
    ahl_err_clear(&err);
    int rc = ahl_hi_normalize(f, &doc, &err);
    if (rc != 0)
        fail_msg("normalize failed: %s", err.msg);
    assert_non_null(doc);
    return doc;
}

struct value_case {
    struct el elem;
    const char *level; /* where the key must be (and at no other level) */
    const char *key;   /* NULL: must be absent everywhere */
    const char *json;  /* expected compact JSON of the value */
    const char *vr;    /* expected DICOMVRs entry at the Instance, or NULL for none */
};

static const struct value_case value_cases[] = {
    /* levels */
    {{T(0x0010, 0x0010), "PN", V("Doe^John ")}, "Patient", "PatientName", "\"Doe^John\"", NULL},
    {{T(0x0010, 0x0020), "LO", V("123 ")}, "Patient", "PatientID", "\"123\"", NULL},
    {{T(0x0010, 0x0030), "DA", NULL, 0}, "Patient", "PatientBirthDate", "null", NULL},
    {{T(0x0008, 0x0020), "DA", V("20000101")}, "Study", "StudyDate", "\"20000101\"", NULL},
    {{T(0x0010, 0x1030), "DS", V("72.5 ")}, "Study", "PatientWeight", "\"72.5 \"", NULL},
    {{T(0x0020, 0x0011), "IS", V("1 ")}, "Series", "SeriesNumber", "\"1 \"", NULL},
    {{T(0x0008, 0x0060), "CS", V("CT")}, "Series", "Modality", "\"CT\"", NULL},
    {{T(0x0018, 0x1020), "LO", V("3.1.62")}, "Series", "SoftwareVersions", "[\"3.1.62\"]", NULL},
    {{T(0x0020, 0x0052), "UI", V("1.2.9\0")}, "Series", "FrameOfReferenceUID", "\"1.2.9\"", NULL},
    {{T(0x0008, 0x0016), "UI", V("1.2.840.10008.5.1.4.1.1.2\0")},
     "Instance",
     "SOPClassUID",
     "\"1.2.840.10008.5.1.4.1.1.2\"",
     NULL},
    /* identity UIDs sit at their own levels */
    {{T(0x0020, 0x000D), "UI", V("1.2.3\0")}, "Study", "StudyInstanceUID", "\"1.2.3\"", NULL},
    {{T(0x0020, 0x000E), "UI", V("1.2.3.5\0")}, "Series", "SeriesInstanceUID", "\"1.2.3.5\"", NULL},
    /* text typing and arrays by VM */
    {{T(0x0008, 0x0008), "CS", V("DERIVED\\PRIMARY\\AXIAL ")},
     "Instance",
     "ImageType",
     "[\"DERIVED\",\"PRIMARY\",\"AXIAL\"]",
     NULL},
    {{T(0x0020, 0x0032), "DS", V("0.000000\\0.000000\\-2.625000 ")},
     "Instance",
     "ImagePositionPatient",
     "[\"0.000000\",\"0.000000\",\"-2.625000 \"]",
     NULL},
    {{T(0x0028, 0x1050), "DS", V("0 ")}, "Instance", "WindowCenter", "[\"0 \"]", NULL},
    {{T(0x0028, 0x1052), "DS", V("-1000 ")}, "Instance", "RescaleIntercept", "\"-1000 \"", NULL},
    {{T(0x0020, 0x0013), "IS", V("  ")}, "Instance", "InstanceNumber", "null", NULL},
    {{T(0x0018, 0x1020), "LO", V("a\\\\b")},
     "Series",
     "SoftwareVersions",
     "[\"a\",null,\"b\"]",
     NULL},
    {{T(0x0008, 0x1030), "LO", V("a\\b")}, "Study", "StudyDescription", "\"a\\\\b\"", NULL},
    {{T(0x0010, 0x4000), "LT", V(" two\\lines\r\n ")},
     "Patient",
     "PatientComments",
     "\" two\\\\lines\\r\\n\"",
     NULL},
    {{T(0x0010, 0x0010), "PN", V("Wang^XiaoDong=\xe7\x8e\x8b^\xe5\xb0\x8f\xe6\x9d\xb1= ")},
     "Patient",
     "PatientName",
     "\"Wang^XiaoDong=\xe7\x8e\x8b^\xe5\xb0\x8f\xe6\x9d\xb1\"",
     NULL},
    {{T(0x0008, 0x0090), "PN", V("^^^^")}, "Study", "ReferringPhysicianName", "\"^^^^\"", NULL},
    {{T(0x0010, 0x1001), "PN", V("A^B\\C^D ")},
     "Patient",
     "OtherPatientNames",
     "[\"A^B\",\"C^D\"]",
     NULL},
    {{T(0x0010, 0x0010), "PN", V("Yamada^Tarou=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e")},
     "Patient",
     "PatientName",
     "\"Yamada^Tarou=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e\"",
     NULL},
    /* binary numbers */
    {{T(0x0028, 0x0010), "US", V("\x80\x02")}, "Instance", "Rows", "640", NULL},
    {{T(0x0028, 0x0122), "FL", V("\xcd\xcc\xcc\x3d")},
     "Instance",
     "FloatPixelPaddingValue",
     "0.1",
     NULL},
    {{T(0x0018, 0x9087), "FD", V("\x00\x00\x00\x00\x00\x44\x8f\x40")},
     "Instance",
     "DiffusionBValue",
     "1000.5",
     NULL},
    {{T(0x0018, 0x9087), "FD", V("\x00\x00\x00\x00\x00\x00\xf8\x7f")},
     "Instance",
     "DiffusionBValue",
     "null",
     NULL},
    {{T(0x0008, 0x1161), "UL", V("\x01\x00\x00\x00\xff\xff\xff\xff")},
     "Instance",
     "SimpleFrameList",
     "[1,4294967295]",
     NULL},
    {{T(0x0028, 0x0106), "SS", V("\xfb\xff")}, "Instance", "SmallestImagePixelValue", "-5", NULL},
    {{T(0x0028, 0x0009), "AT", V("\x18\x00\x63\x10")},
     "Instance",
     "FrameIncrementPointer",
     "[\"00181063\"]",
     NULL},
    {{T(0x0028, 0x0010), "US", NULL, 0}, "Instance", "Rows", "null", NULL},
    /* bytes */
    {{T(0x0002, 0x0001), "OB", V("\x00\x01")},
     "Instance",
     "FileMetaInformationVersion",
     "\"AAE=\"",
     NULL},
    {{T(0x0002, 0x0000), "UL", V("\xda\x00\x00\x00")},
     "Instance",
     "FileMetaInformationGroupLength",
     "218",
     NULL},
    /* private and unknown tags */
    {{T(0x0019, 0x10F9), "DS", V("97")}, "Instance", "001910F9", "\"97\"", "DS"},
    {{T(0x0019, 0x0010), "LO", V("GEMS_ACQU_01 ")},
     "Instance",
     "00190010",
     "\"GEMS_ACQU_01\"",
     "LO"},
    {{T(0x0029, 0x1010), "OB", V("abc\0")}, "Instance", "00291010", "\"YWJjAA==\"", "OB"},
    {{T(0x0029, 0x1011), "UN", V("\x01\x02\x03")}, "Instance", "00291011", "\"AQID\"", "UN"},
    {{T(0x0029, 0x1012), "CS", V("A\\B")}, "Instance", "00291012", "[\"A\",\"B\"]", "CS"},
    {{T(0x0018, 0xFFF0), "LO", V("x ")}, "Instance", "0018FFF0", "\"x\"", "LO"},
    {{T(0x0008, 0x0000), "UL", V("\x10\x00\x00\x00")}, "Instance", "00080000", "16", "UL"},
    {{T(0x6000, 0x0010), "US", V("\x02\x00")}, "Instance", "OverlayRows", "2", NULL},
    {{T(0x6002, 0x0010), "US", V("\x02\x00")}, "Instance", "60020010", "2", "US"},
    /* UN typed by the dictionary, or kept raw when it cannot be */
    {{T(0x0028, 0x0010), "UN", V("\x80\x02")}, "Instance", "Rows", "640", NULL},
    {{T(0x0010, 0x0010), "UN", V("Doe^Jane")}, "Patient", "PatientName", "\"Doe^Jane\"", NULL},
    {{T(0x0009, 0x0010), "UN", V("HMC ")}, "Instance", "00090010", "\"HMC\"", "LO"},
    {{T(0x0028, 0x0106), "UN", V("\x01\x00")}, "Instance", "00280106", "\"AQA=\"", "UN"},
    {{T(0x0010, 0x0010), "UN", V("\xff\xfe")}, "Instance", "00100010", "\"//4=\"", "UN"},
    {{T(0x0028, 0x0010), "UN", V("\x80\x02\x00")}, "Instance", "00280010", "\"gAIA\"", "UN"},
    /* left out */
    {{T(0x7FE0, 0x0010), "OW", LEFT_OUT, 512}, "Instance", NULL, NULL, NULL},
    {{T(0x0029, 0x1020), "OB", LEFT_OUT, 5000000}, "Instance", NULL, NULL, NULL},
};

static const char *const levels[] = {"Patient", "Study", "Series", "Instance"};

static void test_value_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof value_cases / sizeof value_cases[0]; i++) {
        const struct value_case *c = &value_cases[i];
        struct built b;
        build(&b, &c->elem, 1, 0);
        json_t *doc = normalize_ok(&b.f);
        for (size_t l = 0; l < 4; l++) {
            json_t *map = level_map(doc, levels[l]);
            assert_non_null(map);
            const char *key = c->key ? c->key : "";
            json_t *v = json_object_get(map, key);
            if (c->key && strcmp(levels[l], c->level) == 0) {
                if (!v)
                    fail_msg("case %zu: %s missing at %s", i, c->key, c->level);
                char *text = to_text(v);
                if (strcmp(text, c->json) != 0)
                    fail_msg("case %zu: %s = %s, expected %s", i, c->key, text, c->json);
                free(text);
            } else if (v) {
                fail_msg("case %zu: %s also at %s", i, key, levels[l]);
            }
        }
        /* nothing with the tag leaks in under another name */
        char hex[9];
        snprintf(hex, sizeof hex, "%08X", c->elem.tag);
        if (!c->key || strcmp(c->key, hex) != 0)
            assert_null(json_object_get(level_map(doc, "Instance"), hex));
        json_t *vrs = level_map(doc, "InstanceVRs");
        assert_non_null(vrs);
        if (c->vr) {
            json_t *vr = json_object_get(vrs, c->key);
            assert_non_null(vr);
            assert_string_equal(json_string_value(vr), c->vr);
            assert_int_equal(json_object_size(vrs), 1);
        } else {
            assert_int_equal(json_object_size(vrs), 0);
        }
        json_decref(doc);
    }
}

static void test_document_shape(void **state)
{
    (void)state;
    static const struct el extra[] = {
        {T(0x0002, 0x0010), "UI", V("1.2.840.10008.1.2.1\0")},
        {T(0x0008, 0x0060), "CS", V("CT")},
        {T(0x0010, 0x0010), "PN", V("MISTER^CT ")},
        {T(0x0010, 0x1010), "AS", V("045Y")},
        {T(0x0019, 0x10F9), "DS", V("97")},
    };
    struct built b;
    build(&b, extra, sizeof extra / sizeof extra[0], 0);
    json_t *doc = normalize_ok(&b.f);
    char *text = to_text(doc);
    assert_string_equal(text, "{\"Patient\":{\"DICOM\":{\"PatientName\":\"MISTER^CT\"}},"
                              "\"Study\":{\"DICOM\":{\"PatientAge\":\"045Y\","
                              "\"StudyInstanceUID\":\"1.2.3\"},"
                              "\"Series\":{\"1.2.3.5\":{\"DICOM\":{\"Modality\":\"CT\","
                              "\"SeriesInstanceUID\":\"1.2.3.5\"},"
                              "\"Instances\":{\"1.2.3.4\":{\"DICOM\":{"
                              "\"TransferSyntaxUID\":\"1.2.840.10008.1.2.1\","
                              "\"SOPInstanceUID\":\"1.2.3.4\",\"001910F9\":\"97\"},"
                              "\"DICOMVRs\":{\"001910F9\":\"DS\"},\"ImageFrames\":[]}}}}}}");
    free(text);
    json_decref(doc);
    (void)STUDY;
}

/* Sequences: SourceImageSequence with a nested code sequence and a private tag in an item, an
 * empty sequence, and a Patient-level sequence. */
static void test_sequences(void **state)
{
    (void)state;
    struct ahl_dcm_elem code_elems[3];
    static const struct el code_spec[] = {
        {T(0x0008, 0x0100), "SH", V("121320")},
        {T(0x0008, 0x0102), "SH", V("DCM ")},
        {T(0x0008, 0x0104), "LO", V("Uncompressed predecessor")},
    };
    for (int i = 0; i < 3; i++)
        fill_elem(&code_elems[i], &code_spec[i]);
    struct ahl_dcm_dataset code_item = {code_elems, 3};

    struct ahl_dcm_elem src_elems[3];
    static const struct el src_spec[] = {
        {T(0x0008, 0x1150), "UI", V("1.2.840.10008.5.1.4.1.1.2\0")},
        {T(0x0029, 0x1001), "US", V("\x07\x00")},
        {T(0x0040, 0xA170), "SQ", NULL, 0},
    };
    for (int i = 0; i < 3; i++)
        fill_elem(&src_elems[i], &src_spec[i]);
    src_elems[2].length = AHL_DCM_UNDEFINED_LENGTH;
    src_elems[2].items = &code_item;
    src_elems[2].n_items = 1;
    struct ahl_dcm_dataset src_items[2] = {{src_elems, 3}, {NULL, 0}};

    struct ahl_dcm_elem pid_elems[1];
    static const struct el pid_spec = {T(0x0010, 0x0020), "LO", V("OTHER1")};
    fill_elem(&pid_elems[0], &pid_spec);
    struct ahl_dcm_dataset pid_item = {pid_elems, 1};

    static const struct el seq_spec[] = {
        {T(0x0008, 0x2112), "SQ", NULL, 0},
        {T(0x0008, 0x1140), "SQ", NULL, 0},
        {T(0x0010, 0x1002), "SQ", NULL, 0},
    };
    struct built b;
    build(&b, seq_spec, 3, 0);
    for (size_t i = 0; i < b.f.ds.n; i++) {
        struct ahl_dcm_elem *e = &b.ds[i];
        if (e->tag == T(0x0008, 0x2112)) {
            e->items = src_items;
            e->n_items = 2;
        } else if (e->tag == T(0x0010, 0x1002)) {
            e->items = &pid_item;
            e->n_items = 1;
        }
    }
    json_t *doc = normalize_ok(&b.f);
    char *text = to_text(json_object_get(level_map(doc, "Instance"), "SourceImageSequence"));
    assert_string_equal(text, "[{\"ReferencedSOPClassUID\":\"1.2.840.10008.5.1.4.1.1.2\","
                              "\"00291001\":7,"
                              "\"PurposeOfReferenceCodeSequence\":[{\"CodeValue\":\"121320\","
                              "\"CodingSchemeDesignator\":\"DCM\","
                              "\"CodeMeaning\":\"Uncompressed predecessor\"}],"
                              "\"DICOMVRs\":{\"00291001\":\"US\"}},{}]");
    free(text);
    text = to_text(json_object_get(level_map(doc, "Instance"), "ReferencedImageSequence"));
    assert_string_equal(text, "null");
    free(text);
    text = to_text(json_object_get(level_map(doc, "Patient"), "OtherPatientIDsSequence"));
    assert_string_equal(text, "[{\"PatientID\":\"OTHER1\"}]");
    free(text);
    assert_null(json_object_get(level_map(doc, "Instance"), "OtherPatientIDsSequence"));
    /* nested private VRs stay in their item */
    assert_int_equal(json_object_size(level_map(doc, "InstanceVRs")), 0);
    json_decref(doc);
}

struct error_case {
    struct el elem;
    uint32_t skip; /* base element to drop */
    int code;
    const char *msg_part;
};

static const struct error_case error_cases[] = {
    {{T(0x0008, 0x0060), "CS", V("CT")},
     T(0x0020, 0x000D),
     AHL_EPARSE,
     "StudyInstanceUID is missing"},
    {{T(0x0020, 0x000E), "UI", V("  ")},
     0,
     AHL_EPARSE,
     "(0020,000E) SeriesInstanceUID: SeriesInstanceUID is empty"},
    {{T(0x0008, 0x0060), "CS", V("CT")},
     T(0x0008, 0x0018),
     AHL_EPARSE,
     "SOPInstanceUID is missing"},
    {{T(0x0028, 0x0010), "US", V("\x01\x02\x03")},
     0,
     AHL_EPARSE,
     "(0028,0010) Rows: US value of 3 bytes"},
    {{T(0x0008, 0x1030), "LO", V("caf\xe9")},
     0,
     AHL_EPARSE,
     "(0008,1030) StudyDescription: LO value is not valid UTF-8"},
    {{T(0x0008, 0x1030), "LO", V("\xed\xa0\x80")}, 0, AHL_EPARSE, "not valid UTF-8"},
    {{T(0x0019, 0x1001), "FD", V("1234567")}, 0, AHL_EPARSE, "(0019,1001): FD value of 7 bytes"},
};

static void test_error_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const struct error_case *c = &error_cases[i];
        struct built b;
        build(&b, &c->elem, 1, c->skip);
        json_t *doc = (json_t *)1;
        struct ahl_err err;
        ahl_err_clear(&err);
        assert_int_equal(ahl_hi_normalize(&b.f, &doc, &err), c->code);
        assert_null(doc);
        if (!strstr(err.msg, c->msg_part))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, c->msg_part);
    }
}

static void test_error_path_in_sequence(void **state)
{
    (void)state;
    struct ahl_dcm_elem bad;
    static const struct el bad_spec = {T(0x0028, 0x0010), "US", V("\x01")};
    fill_elem(&bad, &bad_spec);
    struct ahl_dcm_dataset items[2] = {{NULL, 0}, {&bad, 1}};
    static const struct el seq = {T(0x0008, 0x2112), "SQ", NULL, 0};
    struct built b;
    build(&b, &seq, 1, 0);
    for (size_t i = 0; i < b.f.ds.n; i++)
        if (b.ds[i].tag == seq.tag) {
            b.ds[i].items = items;
            b.ds[i].n_items = 2;
        }
    json_t *doc = NULL;
    struct ahl_err err;
    assert_int_equal(ahl_hi_normalize(&b.f, &doc, &err), AHL_EPARSE);
    assert_non_null(strstr(err.msg, "(0008,2112)[1].(0028,0010) Rows: US value of 1 bytes"));
}

/* ImageFrames: what the header says about the pixel data. */
struct frame_case {
    const char *name;
    const char *frames_is; /* NumberOfFrames, NULL for absent */
    uint16_t rows, cols, bits, spp;
    bool present, encapsulated;
    uint64_t value_length; /* native */
    uint32_t frag_len[4];  /* encapsulated */
    size_t n_frags;
    uint32_t bot[4];
    size_t n_bot;
    const char *json; /* expected ImageFrames, or NULL for an error */
    const char *msg_part;
};

static const struct frame_case frame_cases[] = {
    {"no pixel data", NULL, 2, 3, 16, 1, false, false, 0, {0}, 0, {0}, 0, "[]", NULL},
    {"native single",
     NULL,
     2,
     3,
     16,
     1,
     true,
     false,
     12,
     {0},
     0,
     {0},
     0,
     "[{\"FrameSizeInBytes\":12}]",
     NULL},
    {"native two frames, padded",
     "2 ",
     2,
     3,
     16,
     1,
     true,
     false,
     25,
     {0},
     0,
     {0},
     0,
     "[{\"FrameSizeInBytes\":12},{\"FrameSizeInBytes\":12}]",
     NULL},
    {"native rgb",
     "1",
     2,
     2,
     8,
     3,
     true,
     false,
     12,
     {0},
     0,
     {0},
     0,
     "[{\"FrameSizeInBytes\":12}]",
     NULL},
    {"native ybr 4:2:2",
     "1",
     2,
     2,
     8,
     3,
     true,
     false,
     8,
     {0},
     0,
     {0},
     0,
     "[{\"FrameSizeInBytes\":8}]",
     NULL},
    {"native 1-bit packed",
     "2",
     3,
     3,
     1,
     1,
     true,
     false,
     4,
     {0},
     0,
     {0},
     0,
     "[{\"FrameSizeInBytes\":2},{\"FrameSizeInBytes\":2}]",
     NULL},
    {"native too short",
     "3",
     2,
     3,
     16,
     1,
     true,
     false,
     24,
     {0},
     0,
     {0},
     0,
     NULL,
     "24 bytes of pixel data cannot hold 3 frames"},
    {"zero frames", "0", 2, 3, 16, 1, true, false, 0, {0}, 0, {0}, 0, "[]", NULL},
    {"bad frame count",
     "two",
     2,
     3,
     16,
     1,
     true,
     false,
     24,
     {0},
     0,
     {0},
     0,
     NULL,
     "(0028,0008) NumberOfFrames: \"two\" is not a frame count"},
    {"missing rows",
     NULL,
     0,
     3,
     16,
     1,
     true,
     false,
     24,
     {0},
     0,
     {0},
     0,
     NULL,
     "Rows, Columns or BitsAllocated is missing"},
    {"fragment per frame",
     "3",
     2,
     3,
     16,
     1,
     true,
     true,
     0,
     {10, 20, 30},
     3,
     {0},
     0,
     "[{\"FrameSizeInBytes\":10},{\"FrameSizeInBytes\":20},{\"FrameSizeInBytes\":30}]",
     NULL},
    {"one frame, fragments",
     NULL,
     2,
     3,
     16,
     1,
     true,
     true,
     0,
     {10, 20, 30},
     3,
     {0},
     0,
     "[{\"FrameSizeInBytes\":60}]",
     NULL},
    /* fragments at item-stream positions 0, 18, 46 (8-byte item headers) */
    {"basic offset table",
     "2",
     2,
     3,
     16,
     1,
     true,
     true,
     0,
     {10, 20, 30},
     3,
     {0, 46},
     2,
     "[{\"FrameSizeInBytes\":30},{\"FrameSizeInBytes\":30}]",
     NULL},
    {"shared fragments, no table",
     "2",
     2,
     3,
     16,
     1,
     true,
     true,
     0,
     {10, 20, 30},
     3,
     {0},
     0,
     "[{},{}]",
     NULL},
    {"too few fragments",
     "3",
     2,
     3,
     16,
     1,
     true,
     true,
     0,
     {10, 20},
     2,
     {0},
     0,
     NULL,
     "2 pixel data fragments cannot hold 3 frames"},
};

static void test_frame_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof frame_cases / sizeof frame_cases[0]; i++) {
        const struct frame_case *c = &frame_cases[i];
        uint8_t rows[2] = {(uint8_t)c->rows, (uint8_t)(c->rows >> 8)};
        uint8_t cols[2] = {(uint8_t)c->cols, (uint8_t)(c->cols >> 8)};
        uint8_t bits[2] = {(uint8_t)c->bits, 0};
        uint8_t spp[2] = {(uint8_t)c->spp, 0};
        bool ybr = strstr(c->name, "ybr") != NULL;
        struct el extra[7] = {
            {T(0x0028, 0x0002), "US", (const char *)spp, 2},
            {T(0x0028, 0x0011), "US", (const char *)cols, 2},
            {T(0x0028, 0x0100), "US", (const char *)bits, 2},
            {T(0x0028, 0x0010), "US", (const char *)rows, c->rows ? 2 : 0},
        };
        size_t n = 4;
        if (ybr)
            extra[n++] = (struct el){T(0x0028, 0x0004), "CS", "YBR_FULL_422", 12};
        if (c->frames_is)
            extra[n++] = (struct el){T(0x0028, 0x0008), "IS", c->frames_is, strlen(c->frames_is)};
        if (c->present)
            extra[n++] = (struct el){AHL_TAG_PIXEL_DATA, "OW", LEFT_OUT, c->value_length};
        struct built b;
        build(&b, extra, n, 0);
        struct ahl_dcm_fragment frags[4];
        b.f.pixel.present = c->present;
        b.f.pixel.encapsulated = c->encapsulated;
        b.f.pixel.tag = AHL_TAG_PIXEL_DATA;
        b.f.pixel.value_length = c->value_length;
        uint64_t off = 1000 + 8;
        for (size_t j = 0; j < c->n_frags; j++) {
            frags[j].offset = off;
            frags[j].length = c->frag_len[j];
            off += c->frag_len[j] + 8;
        }
        b.f.pixel.fragments = frags;
        b.f.pixel.n_fragments = c->n_frags;
        b.f.pixel.offset_table = (uint32_t *)c->bot;
        b.f.pixel.n_offsets = c->n_bot;

        json_t *doc = NULL;
        struct ahl_err err;
        ahl_err_clear(&err);
        int rc = ahl_hi_normalize(&b.f, &doc, &err);
        if (c->json) {
            if (rc != 0)
                fail_msg("%s: %s", c->name, err.msg);
            char *text = to_text(level_map(doc, "ImageFrames"));
            if (strcmp(text, c->json) != 0)
                fail_msg("%s: ImageFrames %s, expected %s", c->name, text, c->json);
            free(text);
            /* pixel data itself is never carried */
            assert_null(json_object_get(level_map(doc, "Instance"), "PixelData"));
            json_decref(doc);
        } else {
            assert_int_not_equal(rc, 0);
            assert_null(doc);
            if (!strstr(err.msg, c->msg_part))
                fail_msg("%s: message \"%s\" lacks \"%s\"", c->name, err.msg, c->msg_part);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_table),
        cmocka_unit_test(test_document_shape),
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_error_path_in_sequence),
        cmocka_unit_test(test_frame_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
