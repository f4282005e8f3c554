/* The Part-10 writer (p10write.h): turns the "DICOM" maps of one instance's levels back into
 * Explicit VR Little Endian elements. Everything but the pixel data is encoded into one buffer,
 * so that sequence and item lengths can be filled in once their contents are known; the pixel
 * data goes straight from the caller's callback to the sink. */
#include "dicom/p10write.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/codec.h"
#include "base/fileio.h"
#include "dicom/dataset.h"
#include "dicom/dict.h"
#include "dicom/docvr.h"
#include "dicom/normalize.h"
#include "dicom/p10.h"
#include "base/banned.h"

#define TAG_SPECIFIC_CHARACTER_SET AHL_DCM_TAG(0x0008, 0x0005)
#define TAG_SOP_CLASS_UID AHL_DCM_TAG(0x0008, 0x0016)
#define TAG_PIXEL_REPRESENTATION AHL_DCM_TAG(0x0028, 0x0103)

/* One attribute to write: where its key and value are in the document. */
struct wel {
    uint32_t tag;
    unsigned level; /* 0 Patient .. 3 Instance: the lowest level wins a duplicate */
    const char *key;
    const json_t *value;
    const json_t *vrs; /* the DICOMVRs map beside the key, or NULL */
    const json_t *map; /* the map holding it */
};

struct wlist {
    struct wel *v;
    size_t n, cap;
};

struct writer {
    struct ahl_buf out;
    ahl_p10_sink_fn sink;
    void *sink_ctx;
    struct ahl_err *err;
    bool utf8;          /* some text is not ASCII: SpecificCharacterSet becomes ISO_IR 192 */
    bool signed_pixels; /* PixelRepresentation 1 */
    struct ahl_buf scratch;
};

/* The tag of a key: a keyword (dictionary) or 8 hex digits. */
static int key_tag(struct writer *w, const char *key, uint32_t *tag)
{
    if (ahl_dicom_hex_key(key, tag))
        return 0;
    const struct ahl_dict_entry *de = ahl_dict_by_keyword(key);
    if (!de)
        return ahl_fail(w->err, AHL_EINVAL, "%s: neither a DICOM keyword nor an 8-digit hex tag",
                        key);
    *tag = de->tag;
    return 0;
}

static bool skipped_tag(uint32_t tag)
{
    return AHL_DCM_ELEMENT(tag) == 0 || AHL_DCM_GROUP(tag) == 0xFFFE || tag == AHL_TAG_PIXEL_DATA ||
           tag == AHL_TAG_FLOAT_PIXEL_DATA || tag == AHL_TAG_DOUBLE_FLOAT_PIXEL_DATA;
}

/* Adds the attributes of one DICOM map (item objects carry their DICOMVRs inside). */
static int collect(struct writer *w, struct wlist *l, const json_t *map, const json_t *vrs,
                   unsigned level)
{
    const char *key;
    json_t *value;
    if (!json_is_object(map))
        return 0;
    json_object_foreach((json_t *)map, key, value)
    {
        uint32_t tag = 0;
        int rc;
        if (!strcmp(key, "DICOMVRs"))
            continue;
        if ((rc = key_tag(w, key, &tag)) < 0)
            return rc;
        if (l->n == l->cap) {
            struct wel *v = ahl_array_grow(l->v, &l->cap, sizeof *v, 64);
            if (!v)
                return ahl_fail(w->err, AHL_ENOMEM, "out of memory");
            l->v = v;
        }
        l->v[l->n++] = (struct wel){tag, level, key, value, vrs, map};
    }
    return 0;
}

static int wel_cmp(const void *a, const void *b)
{
    const struct wel *x = a, *y = b;
    if (x->tag != y->tag)
        return x->tag < y->tag ? -1 : 1;
    return x->level < y->level ? -1 : x->level > y->level;
}

/* Sorts by tag and keeps, of attributes sharing a tag, the one of the lowest level. */
static void sort_unique(struct wlist *l)
{
    qsort(l->v, l->n, sizeof *l->v, wel_cmp);
    size_t o = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (o && l->v[o - 1].tag == l->v[i].tag)
            o--;
        l->v[o++] = l->v[i];
    }
    l->n = o;
}

static bool has_long_length(const char *vr)
{
    static const char long_vrs[] = "OBODOFOLOVOWSQUCUNURUTSVUV";
    for (size_t i = 0; i + 1 < sizeof long_vrs; i += 2)
        if (long_vrs[i] == vr[0] && long_vrs[i + 1] == vr[1])
            return true;
    return false;
}

static bool vr_is(const char *vr, const char *name)
{
    return vr[0] == name[0] && vr[1] == name[1];
}

/* Bytes per value of a binary number VR; 0 for the others. */
static size_t number_size(const char *vr)
{
    if (vr_is(vr, "US") || vr_is(vr, "SS"))
        return 2;
    if (vr_is(vr, "UL") || vr_is(vr, "SL") || vr_is(vr, "FL") || vr_is(vr, "AT"))
        return 4;
    if (vr_is(vr, "UV") || vr_is(vr, "SV") || vr_is(vr, "FD"))
        return 8;
    return 0;
}

/* The VR of an attribute (docvr.h). */
static void pick_vr(struct writer *w, const struct wel *e, char vr[3])
{
    ahl_dicom_value_vr(e->tag, json_string_value(json_object_get(e->vrs, e->key)), e->map, e->value,
                       w->signed_pixels, vr);
}

static int put16(struct ahl_buf *b, uint16_t v)
{
    uint8_t p[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return ahl_buf_add(b, p, 2);
}

static int put32(struct ahl_buf *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return ahl_buf_add(b, p, 4);
}

static int put64(struct ahl_buf *b, uint64_t v)
{
    int rc = put32(b, (uint32_t)v);
    return rc < 0 ? rc : put32(b, (uint32_t)(v >> 32));
}

static void patch32(struct ahl_buf *b, size_t at, uint32_t v)
{
    uint8_t *p = (uint8_t *)b->data + at;
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* An element header with a placeholder length; *len_at says where to patch it. */
static int put_header(struct ahl_buf *b, uint32_t tag, const char *vr, size_t *len_at)
{
    int rc = 0;
    rc = rc ? rc : put16(b, AHL_DCM_GROUP(tag));
    rc = rc ? rc : put16(b, AHL_DCM_ELEMENT(tag));
    rc = rc ? rc : ahl_buf_add(b, vr, 2);
    if (has_long_length(vr)) {
        rc = rc ? rc : put16(b, 0);
        *len_at = b->len;
        rc = rc ? rc : put32(b, 0);
    } else {
        *len_at = b->len;
        rc = rc ? rc : put16(b, 0);
    }
    return rc;
}

/* Sets the length of the element whose header put_header wrote. */
static int finish_length(struct writer *w, const char *vr, size_t len_at, const struct wel *e)
{
    size_t start = len_at + (has_long_length(vr) ? 4 : 2);
    size_t n = w->out.len - start;
    if (has_long_length(vr)) {
        if (n >= AHL_DCM_UNDEFINED_LENGTH)
            return ahl_fail(w->err, AHL_ETOOBIG, "%s: value of %zu bytes is too long", e->key, n);
        patch32(&w->out, len_at, (uint32_t)n);
        return 0;
    }
    if (n > 0xFFFF)
        return ahl_fail(w->err, AHL_ETOOBIG,
                        "%s: value of %zu bytes is too long for VR %s (at most 65534)", e->key, n,
                        vr);
    uint8_t *p = (uint8_t *)w->out.data + len_at;
    p[0] = (uint8_t)n;
    p[1] = (uint8_t)(n >> 8);
    return 0;
}

/* One text component: a string, a number (IS, DS written as numbers) or null (empty). */
static int put_text_one(struct writer *w, const json_t *v, const struct wel *e, const char *vr)
{
    char num[40];
    if (json_is_null(v))
        return 0;
    if (json_is_string(v))
        return ahl_buf_add(&w->out, json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        snprintf(num, sizeof num, "%" PRIdMAX, (intmax_t)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(num, sizeof num, "%.10g", json_real_value(v));
    else
        return ahl_fail(w->err, AHL_EINVAL, "%s: VR %s expects text", e->key, vr);
    return ahl_buf_adds(&w->out, num);
}

static int put_text(struct writer *w, const struct wel *e, const char *vr)
{
    int rc = 0;
    if (e->tag == TAG_SPECIFIC_CHARACTER_SET && w->utf8)
        rc = ahl_buf_adds(&w->out, "ISO_IR 192");
    else if (json_is_array(e->value)) {
        for (size_t i = 0; rc == 0 && i < json_array_size(e->value); i++) {
            if (i)
                rc = ahl_buf_addc(&w->out, '\\');
            rc = rc ? rc : put_text_one(w, json_array_get(e->value, i), e, vr);
        }
    } else {
        rc = put_text_one(w, e->value, e, vr);
    }
    return rc;
}

static int put_number(struct writer *w, const json_t *v, const struct wel *e, const char *vr)
{
    if (vr_is(vr, "AT")) {
        const char *s = json_string_value(v);
        uint32_t t;
        if (!s || !ahl_dicom_hex_key(s, &t))
            return ahl_fail(w->err, AHL_EINVAL, "%s: VR AT expects \"GGGGEEEE\" hex tags", e->key);
        int rc = put16(&w->out, AHL_DCM_GROUP(t));
        return rc < 0 ? rc : put16(&w->out, AHL_DCM_ELEMENT(t));
    }
    if (!json_is_null(v) && !json_is_number(v))
        return ahl_fail(w->err, AHL_EINVAL, "%s: VR %s expects numbers", e->key, vr);
    if (vr_is(vr, "FL")) {
        float f = json_is_null(v) ? NAN : (float)json_number_value(v);
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        return put32(&w->out, bits);
    }
    if (vr_is(vr, "FD")) {
        double d = json_is_null(v) ? NAN : json_number_value(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        return put64(&w->out, bits);
    }
    /* Integers; UV above 2^63-1 arrives as a real (normalize.h). */
    size_t size = number_size(vr);
    bool is_signed = vr[0] == 'S';
    int64_t i;
    uint64_t u;
    if (json_is_real(v)) {
        double r = json_real_value(v);
        bool in_range = r >= -9.2e18 && r <= 1.8e19; /* false for NaN too */
        u = !in_range ? 0 : r < 0 ? (uint64_t)(int64_t)r : (uint64_t)r;
        if (!in_range || (r < 0 ? (double)(int64_t)u : (double)u) != r)
            return ahl_fail(w->err, AHL_EINVAL, "%s: %g is not an integer VR %s can hold", e->key,
                            r, vr);
        i = (int64_t)u;
    } else {
        i = json_is_null(v) ? 0 : (int64_t)json_integer_value(v);
        u = (uint64_t)i;
    }
    if (size < 8) {
        int64_t lo = is_signed ? -((int64_t)1 << (size * 8 - 1)) : 0;
        int64_t hi =
            is_signed ? ((int64_t)1 << (size * 8 - 1)) - 1 : ((int64_t)1 << (size * 8)) - 1;
        if (i < lo || i > hi)
            return ahl_fail(w->err, AHL_EINVAL, "%s: %" PRId64 " does not fit VR %s", e->key, i,
                            vr);
    } else if (!is_signed && i < 0 && !json_is_real(v)) {
        return ahl_fail(w->err, AHL_EINVAL, "%s: %" PRId64 " does not fit VR %s", e->key, i, vr);
    }
    switch (size) {
    case 2:
        return put16(&w->out, (uint16_t)u);
    case 4:
        return put32(&w->out, (uint32_t)u);
    default:
        return put64(&w->out, u);
    }
}

static int put_bytes(struct writer *w, const json_t *v, const struct wel *e, const char *vr)
{
    if (json_is_null(v))
        return 0;
    const char *s = json_string_value(v);
    if (!s)
        return ahl_fail(w->err, AHL_EINVAL, "%s: VR %s expects a base64 string", e->key, vr);
    ahl_buf_reset(&w->scratch);
    int rc = ahl_base64_decode(s, json_string_length(v), &w->scratch);
    if (rc < 0)
        return rc == AHL_ENOMEM ? ahl_fail(w->err, rc, "out of memory")
                                : ahl_fail(w->err, AHL_EINVAL, "%s: not valid base64", e->key);
    return ahl_buf_add(&w->out, w->scratch.data, w->scratch.len);
}

static int put_dataset(struct writer *w, struct wlist *l, unsigned depth);

static int put_sequence(struct writer *w, const struct wel *e, unsigned depth)
{
    if (json_is_null(e->value))
        return 0;
    if (!json_is_array(e->value))
        return ahl_fail(w->err, AHL_EINVAL, "%s: a sequence must be an array of items", e->key);
    if (depth >= AHL_HI_MAX_DEPTH)
        return ahl_fail(w->err, AHL_ETOOBIG, "%s: sequences nested deeper than %d", e->key,
                        AHL_HI_MAX_DEPTH);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(e->value); i++) {
        const json_t *item = json_array_get(e->value, i);
        struct wlist l = {0};
        size_t len_at;
        if (!json_is_object(item)) {
            rc = ahl_fail(w->err, AHL_EINVAL, "%s[%zu]: an item must be an object", e->key, i);
            break;
        }
        rc = put16(&w->out, 0xFFFE);
        rc = rc ? rc : put16(&w->out, 0xE000);
        len_at = w->out.len;
        rc = rc ? rc : put32(&w->out, 0);
        rc = rc ? rc : collect(w, &l, item, json_object_get(item, "DICOMVRs"), 0);
        if (rc == 0) {
            sort_unique(&l);
            rc = put_dataset(w, &l, depth + 1);
        }
        if (rc == 0)
            patch32(&w->out, len_at, (uint32_t)(w->out.len - len_at - 4));
        free(l.v);
    }
    return rc;
}

static int put_element(struct writer *w, const struct wel *e, unsigned depth)
{
    char vr[3];
    size_t len_at, start;
    pick_vr(w, e, vr);
    int rc = put_header(&w->out, e->tag, vr, &len_at);
    start = w->out.len;
    size_t size = number_size(vr);
    if (rc < 0)
        return ahl_fail(w->err, rc, "%s: the encoded attributes exceed %zu MiB or memory", e->key,
                        AHL_P10_MAX_HEADER >> 20);
    if (vr_is(vr, "SQ") || json_is_object(ahl_dicom_first_value(e->value))) {
        if (!vr_is(vr, "SQ"))
            return ahl_fail(w->err, AHL_EINVAL, "%s: an array of items needs VR SQ, not %s", e->key,
                            vr);
        rc = put_sequence(w, e, depth);
    } else if (ahl_dcm_vr_is_text(vr)) {
        rc = put_text(w, e, vr);
        if (rc == 0 && (w->out.len - start) % 2)
            rc = ahl_buf_addc(&w->out, vr_is(vr, "UI") ? '\0' : ' ');
    } else if (size) {
        if (json_is_array(e->value)) {
            for (size_t i = 0; rc == 0 && i < json_array_size(e->value); i++)
                rc = put_number(w, json_array_get(e->value, i), e, vr);
        } else if (!json_is_null(e->value)) {
            rc = put_number(w, e->value, e, vr);
        }
    } else {
        rc = put_bytes(w, e->value, e, vr);
        if (rc == 0 && (w->out.len - start) % 2)
            rc = ahl_buf_addc(&w->out, '\0');
    }
    if (rc == AHL_ENOMEM || rc == AHL_ETOOBIG)
        return ahl_fail(w->err, rc, "%s: the encoded attributes exceed %zu MiB or memory", e->key,
                        AHL_P10_MAX_HEADER >> 20);
    return rc < 0 ? rc : finish_length(w, vr, len_at, e);
}

static int put_dataset(struct writer *w, struct wlist *l, unsigned depth)
{
    for (size_t i = 0; i < l->n; i++) {
        if (skipped_tag(l->v[i].tag) || AHL_DCM_GROUP(l->v[i].tag) == 0x0002)
            continue;
        int rc = put_element(w, &l->v[i], depth);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* true when any string in v (at any depth) holds a byte outside ASCII. */
static bool has_non_ascii(const json_t *v)
{
    if (json_is_string(v)) {
        const unsigned char *s = (const unsigned char *)json_string_value(v);
        for (size_t i = 0; i < json_string_length(v); i++)
            if (s[i] >= 0x80)
                return true;
        return false;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (has_non_ascii(json_array_get(v, i)))
                return true;
        return false;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            if (has_non_ascii(x))
                return true;
        }
    }
    return false;
}

int ahl_p10_find_instance(const json_t *doc, const char *sop_instance_uid, json_t **series,
                          json_t **instance)
{
    const char *uid;
    json_t *s;
    json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), uid, s)
    {
        json_t *inst = json_object_get(json_object_get(s, "Instances"), sop_instance_uid);
        if (json_is_object(inst)) {
            if (series)
                *series = s;
            if (instance)
                *instance = inst;
            return 0;
        }
    }
    return AHL_ENOTFOUND;
}

int ahl_p10_sink_fd(void *ctx, const void *p, size_t n)
{
    return ahl_write_all(*(int *)ctx, p, n);
}

/* Hands the buffered bytes to the sink and empties the buffer. */
static int flush(struct writer *w)
{
    int rc = w->out.len ? w->sink(w->sink_ctx, w->out.data, w->out.len) : 0;
    ahl_buf_reset(&w->out);
    return rc < 0 ? ahl_fail(w->err, rc, "cannot write the file: %s", ahl_strerror(rc)) : 0;
}

struct counter {
    ahl_p10_sink_fn sink;
    void *ctx;
    uint64_t n;
};

static int count_sink(void *ctx, const void *p, size_t n)
{
    struct counter *c = ctx;
    c->n += n;
    return c->sink(c->ctx, p, n);
}

int ahl_p10_fragment(ahl_p10_sink_fn sink, void *sink_ctx, const void *p, size_t n)
{
    uint64_t padded = (uint64_t)n + (n & 1);
    if (padded >= AHL_DCM_UNDEFINED_LENGTH)
        return AHL_ETOOBIG;
    uint8_t h[8] = {0xFE,
                    0xFF,
                    0x00,
                    0xE0,
                    (uint8_t)padded,
                    (uint8_t)(padded >> 8),
                    (uint8_t)(padded >> 16),
                    (uint8_t)(padded >> 24)};
    int rc = sink(sink_ctx, h, sizeof h);
    rc = rc ? rc : sink(sink_ctx, p, n);
    return rc || !(n & 1) ? rc : sink(sink_ctx, "", 1);
}

/* Encapsulated pixel data: OB of undefined length, an empty Basic Offset Table, the caller's
 * fragments, the sequence delimiter. */
static int put_encapsulated(struct writer *w, const struct ahl_p10_pixels *px)
{
    size_t len_at;
    int rc = put_header(&w->out, px->tag ? px->tag : AHL_TAG_PIXEL_DATA, "OB", &len_at);
    if (rc == 0) {
        patch32(&w->out, len_at, AHL_DCM_UNDEFINED_LENGTH);
        rc = put16(&w->out, 0xFFFE);
        rc = rc ? rc : put16(&w->out, 0xE000);
        rc = rc ? rc : put32(&w->out, 0);
    }
    if (rc < 0)
        return ahl_fail(w->err, rc, "out of memory");
    if ((rc = flush(w)) < 0 || (rc = px->write(px->ctx, w->sink, w->sink_ctx, w->err)) < 0)
        return rc;
    static const uint8_t end[8] = {0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0};
    if ((rc = w->sink(w->sink_ctx, end, sizeof end)) < 0)
        return ahl_fail(w->err, rc, "cannot write the file: %s", ahl_strerror(rc));
    return 0;
}

static int put_pixels(struct writer *w, const struct ahl_p10_pixels *px)
{
    size_t len_at;
    if (px->encapsulated)
        return put_encapsulated(w, px);
    const char *vr = px->vr[0] ? px->vr : "OW";
    uint64_t padded = px->length + (px->length & 1);
    if (padded >= AHL_DCM_UNDEFINED_LENGTH)
        return ahl_fail(w->err, AHL_ETOOBIG, "pixel data of %" PRIu64 " bytes is too long",
                        px->length);
    int rc = put_header(&w->out, px->tag ? px->tag : AHL_TAG_PIXEL_DATA, vr, &len_at);
    if (rc < 0)
        return ahl_fail(w->err, rc, "out of memory");
    patch32(&w->out, len_at, (uint32_t)padded);
    if ((rc = flush(w)) < 0)
        return rc;
    struct counter c = {w->sink, w->sink_ctx, 0};
    if ((rc = px->write(px->ctx, count_sink, &c, w->err)) < 0)
        return rc;
    if (c.n != px->length)
        return ahl_fail(w->err, AHL_EINTERNAL,
                        "the pixel data callback wrote %" PRIu64 " bytes, not %" PRIu64, c.n,
                        px->length);
    if (px->length & 1) {
        rc = w->sink(w->sink_ctx, "", 1);
        if (rc < 0)
            return ahl_fail(w->err, rc, "cannot write the file: %s", ahl_strerror(rc));
    }
    return 0;
}

/* The file meta group into w->out, preamble first. */
static int put_meta(struct writer *w, const struct wlist *all, const char *sop_instance_uid,
                    const char *ts)
{
    const char *sop_class = NULL;
    for (size_t i = 0; i < all->n; i++)
        if (all->v[i].tag == TAG_SOP_CLASS_UID)
            sop_class = json_string_value(all->v[i].value);
    if (!sop_class)
        return ahl_fail(w->err, AHL_EINVAL, "instance %s has no SOPClassUID", sop_instance_uid);
    json_t *fixed = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "FileMetaInformationVersion",
                              "AAE=", "MediaStorageSOPClassUID", sop_class,
                              "MediaStorageSOPInstanceUID", sop_instance_uid, "TransferSyntaxUID",
                              ts, "ImplementationClassUID", AHL_P10_IMPLEMENTATION_CLASS_UID,
                              "ImplementationVersionName", AHL_P10_IMPLEMENTATION_VERSION_NAME);
    struct wlist l = {0};
    int rc = fixed ? collect(w, &l, fixed, NULL, 1) : ahl_fail(w->err, AHL_ENOMEM, "out of memory");
    /* The document's other meta attributes (level 0: the fixed ones win). */
    for (size_t i = 0; rc == 0 && i < all->n; i++) {
        if (AHL_DCM_GROUP(all->v[i].tag) != 0x0002 || skipped_tag(all->v[i].tag))
            continue;
        if (l.n == l.cap) {
            struct wel *v = ahl_array_grow(l.v, &l.cap, sizeof *v, 16);
            if (!v) {
                rc = ahl_fail(w->err, AHL_ENOMEM, "out of memory");
                break;
            }
            l.v = v;
        }
        l.v[l.n] = all->v[i];
        l.v[l.n++].level = 0;
    }
    static const uint8_t preamble[128];
    size_t len_at = 0;
    if (rc == 0) {
        sort_unique(&l);
        rc = ahl_buf_add(&w->out, preamble, sizeof preamble);
        rc = rc ? rc : ahl_buf_add(&w->out, "DICM", 4);
        rc = rc ? rc : put_header(&w->out, AHL_DCM_TAG(0x0002, 0x0000), "UL", &len_at);
        rc = rc ? rc : put32(&w->out, 0);
        if (rc < 0)
            rc = ahl_fail(w->err, rc, "out of memory");
    }
    if (rc == 0) {
        ((uint8_t *)w->out.data)[len_at] = 4; /* (0002,0000) is one UL; its value follows */
        size_t start = w->out.len;
        for (size_t i = 0; rc == 0 && i < l.n; i++)
            rc = put_element(w, &l.v[i], 0);
        if (rc == 0)
            patch32(&w->out, start - 4, (uint32_t)(w->out.len - start));
    }
    free(l.v);
    json_decref(fixed);
    return rc;
}

int ahl_p10_write(const json_t *doc, const char *sop_instance_uid, const struct ahl_p10_pixels *px,
                  ahl_p10_sink_fn sink, void *sink_ctx, struct ahl_err *err)
{
    return ahl_p10_write_with(doc, sop_instance_uid, NULL, px, sink, sink_ctx, err);
}

int ahl_p10_write_with(const json_t *doc, const char *sop_instance_uid,
                       const struct ahl_p10_opts *opts, const struct ahl_p10_pixels *px,
                       ahl_p10_sink_fn sink, void *sink_ctx, struct ahl_err *err)
{
    const json_t *extra = opts ? opts->extra : NULL;
    const char *ts = opts && opts->transfer_syntax ? opts->transfer_syntax : AHL_TS_EXPLICIT_LE;
    struct writer w = {.sink = sink, .sink_ctx = sink_ctx, .err = err};
    struct wlist l = {0};
    json_t *series = NULL, *inst = NULL;
    const json_t *maps[5];
    int rc;

    ahl_buf_init(&w.out, AHL_P10_MAX_HEADER);
    ahl_buf_init(&w.scratch, AHL_P10_MAX_HEADER);
    if (ahl_p10_find_instance(doc, sop_instance_uid, &series, &inst) < 0) {
        rc = ahl_fail(err, AHL_ENOTFOUND, "no instance %s in the image set", sop_instance_uid);
        goto out;
    }
    maps[0] = json_object_get(json_object_get(doc, "Patient"), "DICOM");
    maps[1] = json_object_get(json_object_get(doc, "Study"), "DICOM");
    maps[2] = json_object_get(series, "DICOM");
    maps[3] = json_object_get(inst, "DICOM");
    maps[4] = extra;
    for (unsigned i = 0; i < 5; i++) {
        const json_t *vrs = i == 3   ? json_object_get(inst, "DICOMVRs")
                            : i == 4 ? json_object_get(extra, "DICOMVRs")
                                     : NULL;
        if ((rc = collect(&w, &l, maps[i], vrs, i)) < 0)
            goto out;
        w.utf8 = w.utf8 || has_non_ascii(maps[i]);
    }
    sort_unique(&l);
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].tag == TAG_PIXEL_REPRESENTATION)
            w.signed_pixels = json_integer_value(l.v[i].value) == 1;
    if ((rc = put_meta(&w, &l, sop_instance_uid, ts)) < 0)
        goto out;
    uint32_t px_tag = px ? (px->tag ? px->tag : AHL_TAG_PIXEL_DATA) : 0;
    bool px_done = !px;
    for (size_t i = 0; i < l.n; i++) {
        const struct wel *e = &l.v[i];
        if (!px_done && e->tag > px_tag) {
            if ((rc = put_pixels(&w, px)) < 0)
                goto out;
            px_done = true;
        }
        if (skipped_tag(e->tag) || AHL_DCM_GROUP(e->tag) == 0x0002)
            continue;
        if ((rc = put_element(&w, e, 0)) < 0)
            goto out;
    }
    if (!px_done && (rc = put_pixels(&w, px)) < 0)
        goto out;
    rc = flush(&w);
out:
    free(l.v);
    ahl_buf_release(&w.out);
    ahl_buf_release(&w.scratch);
    return rc;
}
