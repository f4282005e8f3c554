/* The HealthImaging normalizer: one DICOM file in, the single-instance metadata document out.
 * The rules it applies (placement, keys, value typing, ImageFrames) are listed in normalize.h;
 * this file is their implementation, element by element, with sequences converted recursively
 * up to AHL_HI_MAX_DEPTH (the reader's own depth cap is lower, so real files never hit ours).
 */
#include "dicom/normalize.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/codec.h"
#include "base/text.h"
#include "dicom/dict.h"
#include "dicom/levels.h"
#include "base/banned.h"

#define TAG_STUDY_UID AHL_DCM_TAG(0x0020, 0x000D)
#define TAG_SERIES_UID AHL_DCM_TAG(0x0020, 0x000E)
#define TAG_SOP_UID AHL_DCM_TAG(0x0008, 0x0018)
#define TAG_NUMBER_OF_FRAMES AHL_DCM_TAG(0x0028, 0x0008)
#define TAG_SAMPLES_PER_PIXEL AHL_DCM_TAG(0x0028, 0x0002)
#define TAG_ROWS AHL_DCM_TAG(0x0028, 0x0010)
#define TAG_COLUMNS AHL_DCM_TAG(0x0028, 0x0011)
#define TAG_BITS_ALLOCATED AHL_DCM_TAG(0x0028, 0x0100)
#define TAG_PHOTOMETRIC AHL_DCM_TAG(0x0028, 0x0004)
#define TAG_EXTENDED_OFFSET_TABLE AHL_DCM_TAG(0x7FE0, 0x0001)
#define TAG_EXTENDED_OFFSET_TABLE_LENGTHS AHL_DCM_TAG(0x7FE0, 0x0002)

/* How a VR's value becomes JSON. */
enum ahl__vclass {
    VC_TEXT,     /* string, trailing padding removed */
    VC_TEXT_ONE, /* LT ST UT UR: as VC_TEXT, never split on '\' */
    VC_PN,       /* as VC_TEXT, and empty trailing component groups ("A^B=") dropped */
    VC_NUMSTR,   /* IS DS: string, padding kept */
    VC_US,
    VC_SS,
    VC_UL,
    VC_SL,
    VC_UV,
    VC_SV,
    VC_FL,
    VC_FD,
    VC_AT,
    VC_BYTES, /* OB OW OF OD OL OV UN and anything unrecognised: base64 */
    VC_SQ,
};

struct ahl__norm {
    struct ahl_err *err;
    /* Where we are, for error messages: the tags of the enclosing elements and item numbers. */
    uint32_t path_tag[AHL_HI_MAX_DEPTH + 1];
    size_t path_item[AHL_HI_MAX_DEPTH + 1];
    unsigned depth;
    struct ahl_buf scratch;
};

/* What one element turns into. */
struct ahl__keyed {
    const char *key; /* keyword, or hex below */
    char hex[9];
    bool hex_key;
    char vr[3];    /* recorded in DICOMVRs when hex_key */
    json_t *value; /* NULL: leave the element out */
};

static int ahl__fail(struct ahl__norm *n, int code, uint32_t tag, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int ahl__fail(struct ahl__norm *n, int code, uint32_t tag, const char *fmt, ...)
{
    char where[AHL_HI_MAX_DEPTH * 24 + 32];
    size_t w = 0;
    where[0] = '\0';
    for (unsigned i = 0; i < n->depth && w < sizeof where - 32; i++)
        w += (size_t)snprintf(where + w, sizeof where - w, "(%04X,%04X)[%zu].",
                              AHL_DCM_GROUP(n->path_tag[i]), AHL_DCM_ELEMENT(n->path_tag[i]),
                              n->path_item[i]);
    snprintf(where + w, sizeof where - w, "(%04X,%04X)", AHL_DCM_GROUP(tag), AHL_DCM_ELEMENT(tag));
    const struct ahl_dict_entry *de = (AHL_DCM_GROUP(tag) & 1) ? NULL : ahl_dict_by_tag(tag);
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ahl_fail(n->err, code, "%s%s%s: %s", where, de ? " " : "", de ? de->keyword : "", msg);
}

static enum ahl__vclass ahl__classify(const char *vr)
{
    switch (((unsigned)(unsigned char)vr[0] << 8) | (unsigned char)vr[1]) {
    case 'A' << 8 | 'E':
    case 'A' << 8 | 'S':
    case 'C' << 8 | 'S':
    case 'D' << 8 | 'A':
    case 'D' << 8 | 'T':
    case 'L' << 8 | 'O':
    case 'S' << 8 | 'H':
    case 'T' << 8 | 'M':
    case 'U' << 8 | 'C':
    case 'U' << 8 | 'I':
        return VC_TEXT;
    case 'L' << 8 | 'T':
    case 'S' << 8 | 'T':
    case 'U' << 8 | 'T':
    case 'U' << 8 | 'R':
        return VC_TEXT_ONE;
    case 'I' << 8 | 'S':
    case 'D' << 8 | 'S':
        return VC_NUMSTR;
    case 'P' << 8 | 'N':
        return VC_PN;
    case 'U' << 8 | 'S':
        return VC_US;
    case 'S' << 8 | 'S':
        return VC_SS;
    case 'U' << 8 | 'L':
        return VC_UL;
    case 'S' << 8 | 'L':
        return VC_SL;
    case 'U' << 8 | 'V':
        return VC_UV;
    case 'S' << 8 | 'V':
        return VC_SV;
    case 'F' << 8 | 'L':
        return VC_FL;
    case 'F' << 8 | 'D':
        return VC_FD;
    case 'A' << 8 | 'T':
        return VC_AT;
    case 'S' << 8 | 'Q':
        return VC_SQ;
    default:
        return VC_BYTES;
    }
}

static bool ahl__is_text(enum ahl__vclass c)
{
    return c == VC_TEXT || c == VC_TEXT_ONE || c == VC_NUMSTR || c == VC_PN;
}

/* Bytes per value of a binary numeric VR; 0 for the others. */
static size_t ahl__value_size(enum ahl__vclass c)
{
    switch (c) {
    case VC_US:
    case VC_SS:
        return 2;
    case VC_UL:
    case VC_SL:
    case VC_FL:
    case VC_AT:
        return 4;
    case VC_UV:
    case VC_SV:
    case VC_FD:
        return 8;
    default:
        return 0;
    }
}

static bool ahl__utf8_valid(const uint8_t *s, size_t n)
{
    return ahl_utf8_valid((const char *)s, n) != 0;
}

static uint16_t ahl__le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t ahl__le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t ahl__le64(const uint8_t *p)
{
    return (uint64_t)ahl__le32(p) | ((uint64_t)ahl__le32(p + 4) << 32);
}

/* One text value (a whole VM-1 value or one component): padding handled per VR; null when
 * nothing but padding is left. */
static json_t *ahl__text_piece(const uint8_t *p, size_t len, enum ahl__vclass c)
{
    size_t end = len;
    while (end > 0 &&
           (p[end - 1] == ' ' || p[end - 1] == '\0' || (c == VC_PN && p[end - 1] == '=')))
        end--;
    if (end == 0)
        return json_null();
    if (c == VC_NUMSTR) {
        /* keep the padding spaces, drop only NULs */
        end = len;
        while (end > 0 && p[end - 1] == '\0')
            end--;
    }
    return json_stringn_nocheck((const char *)p, end);
}

/* Text values. multi: the dictionary VM allows several (or, unknown tag, the value holds
 * several); then the result is an array of components. */
static int ahl__text_value(const uint8_t *p, size_t len, enum ahl__vclass c, bool multi,
                           json_t **out)
{
    *out = NULL;
    if (!multi) {
        *out = ahl__text_piece(p, len, c);
        return *out ? 0 : AHL_ENOMEM;
    }
    json_t *arr = json_array();
    if (!arr)
        return AHL_ENOMEM;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != '\\')
            continue;
        if (json_array_append_new(arr, ahl__text_piece(p + start, i - start, c)) < 0) {
            json_decref(arr);
            return AHL_ENOMEM;
        }
        start = i + 1;
    }
    *out = arr;
    return 0;
}

/* FL values print as the shortest decimal that reads back to the same float: the double we
 * store is that decimal's nearest double. */
static double ahl__float_as_double(float f)
{
    if (!isfinite(f) || f == 0)
        return (double)f;
    char text[32];
    int p = fabsf(f) >= FLT_MIN ? 6 : 1;
    for (; p <= 9; p++) {
        snprintf(text, sizeof text, "%.*g", p, (double)f);
        if (strtof(text, NULL) == f)
            break;
    }
    return strtod(text, NULL);
}

static json_t *ahl__binary_one(const uint8_t *p, enum ahl__vclass c)
{
    switch (c) {
    case VC_US:
        return json_integer(ahl__le16(p));
    case VC_SS:
        return json_integer((int16_t)ahl__le16(p));
    case VC_UL:
        return json_integer(ahl__le32(p));
    case VC_SL:
        return json_integer((int32_t)ahl__le32(p));
    case VC_SV:
        return json_integer((json_int_t)(int64_t)ahl__le64(p));
    case VC_UV: {
        uint64_t v = ahl__le64(p);
        return v <= INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
    }
    case VC_FL: {
        uint32_t bits = ahl__le32(p);
        float f;
        memcpy(&f, &bits, sizeof f);
        return isfinite(f) ? json_real(ahl__float_as_double(f)) : json_null();
    }
    case VC_FD: {
        uint64_t bits = ahl__le64(p);
        double d;
        memcpy(&d, &bits, sizeof d);
        return isfinite(d) ? json_real(d) : json_null();
    }
    case VC_AT: {
        char hex[9];
        snprintf(hex, sizeof hex, "%04X%04X", ahl__le16(p), ahl__le16(p + 2));
        return json_stringn_nocheck(hex, 8);
    }
    default:
        return NULL;
    }
}

/* Binary numbers: len must be a multiple of the value size (checked by the caller). */
static int ahl__binary_value(const uint8_t *p, size_t len, enum ahl__vclass c, bool multi,
                             json_t **out)
{
    size_t size = ahl__value_size(c);
    size_t count = len / size;
    *out = NULL;
    if (!multi && count == 1) {
        *out = ahl__binary_one(p, c);
        return *out ? 0 : AHL_ENOMEM;
    }
    json_t *arr = json_array();
    if (!arr)
        return AHL_ENOMEM;
    for (size_t i = 0; i < count; i++) {
        if (json_array_append_new(arr, ahl__binary_one(p + i * size, c)) < 0) {
            json_decref(arr);
            return AHL_ENOMEM;
        }
    }
    *out = arr;
    return 0;
}

static int ahl__bytes_value(struct ahl__norm *n, const uint8_t *p, size_t len, json_t **out)
{
    ahl_buf_reset(&n->scratch);
    int rc = ahl_base64_encode(p, len, &n->scratch);
    if (rc < 0)
        return rc;
    *out = json_stringn_nocheck(n->scratch.data, n->scratch.len);
    return *out ? 0 : AHL_ENOMEM;
}

static int ahl__dataset(struct ahl__norm *n, const struct ahl_dcm_dataset *ds, json_t **out);

static int ahl__sequence_value(struct ahl__norm *n, const struct ahl_dcm_elem *e, json_t **out)
{
    *out = NULL;
    if (e->n_items == 0) {
        *out = json_null();
        return *out ? 0 : AHL_ENOMEM;
    }
    if (n->depth >= AHL_HI_MAX_DEPTH)
        return ahl__fail(n, AHL_ETOOBIG, e->tag, "sequences nested deeper than %d",
                         AHL_HI_MAX_DEPTH);
    json_t *arr = json_array();
    if (!arr)
        return AHL_ENOMEM;
    int rc = 0;
    n->path_tag[n->depth] = e->tag;
    n->depth++;
    for (size_t i = 0; i < e->n_items; i++) {
        n->path_item[n->depth - 1] = i;
        json_t *item = NULL;
        rc = ahl__dataset(n, &e->items[i], &item);
        if (rc < 0)
            break;
        if (json_array_append_new(arr, item) < 0) {
            rc = AHL_ENOMEM;
            break;
        }
    }
    n->depth--;
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

static bool ahl__is_pixel_tag(uint32_t tag)
{
    return tag == AHL_TAG_PIXEL_DATA || tag == AHL_TAG_FLOAT_PIXEL_DATA ||
           tag == AHL_TAG_DOUBLE_FLOAT_PIXEL_DATA;
}

/* Decides the key, the VR to record and the value of one element (k->value NULL: left out). */
static int ahl__convert(struct ahl__norm *n, const struct ahl_dcm_elem *e, struct ahl__keyed *k)
{
    static const char hexdig[] = "0123456789ABCDEF";
    memset(k, 0, sizeof *k);
    for (int i = 0; i < 8; i++)
        k->hex[i] = hexdig[(e->tag >> (28 - 4 * i)) & 15];
    k->hex[8] = '\0';
    memcpy(k->vr, e->vr[0] ? e->vr : "UN", 3);
    k->vr[2] = '\0';
    if (ahl__is_pixel_tag(e->tag))
        return 0;

    /* For private tags this finds only the rule-based PrivateCreator / PrivateGroupLength. */
    const struct ahl_dict_entry *de = ahl_dict_by_tag(e->tag);
    /* Keywords only where they name this one tag: exact entries and the base group of a
     * repeating-group entry. Rule-based entries (mask 0: creators, group lengths) never. */
    bool keyword_ok = de && !(AHL_DCM_GROUP(e->tag) & 1) && de->keyword[0] &&
                      (de->mask == 0xFFFFFFFFu || (de->mask != 0 && e->tag == de->tag));
    k->hex_key = !keyword_ok;
    k->key = keyword_ok ? de->keyword : k->hex;

    enum ahl__vclass c = ahl__classify(k->vr);
    if (c == VC_SQ || e->items) {
        return ahl__sequence_value(n, e, &k->value);
    }
    if (!e->value && e->length != 0)
        return 0; /* the reader left a large value in the file */
    if (e->value_len == 0) {
        k->value = json_null();
        return k->value ? 0 : AHL_ENOMEM;
    }

    const uint8_t *p = e->value;
    size_t len = e->value_len;
    if (c == VC_BYTES && strcmp(k->vr, "UN") == 0 && de) {
        /* An explicit UN whose tag the dictionary knows: typed by the dictionary's VR when that
         * VR is unambiguous and the bytes fit it; left as bytes when the dictionary says bytes
         * anyway (OB, "OB or OW"); otherwise kept raw under its hex tag so that no consumer
         * mistakes the base64 text for a value of the dictionary's type. */
        enum ahl__vclass dc = ahl__classify(de->vr);
        bool all_bytes = dc == VC_BYTES;
        for (const char *a = de->vr_alt; all_bytes && a[0] && a[1]; a += 2)
            all_bytes = ahl__classify(a) == VC_BYTES;
        size_t size = ahl__value_size(dc);
        bool fits = !de->vr_alt[0] && dc != VC_BYTES && dc != VC_SQ &&
                    (ahl__is_text(dc) ? ahl__utf8_valid(p, len) : size && len % size == 0);
        if (fits) {
            c = dc;
            memcpy(k->vr, de->vr, 3); /* what DICOMVRs records if the key is hex */
        } else if (!all_bytes) {
            k->hex_key = true;
            k->key = k->hex;
        }
    }

    bool multi;
    if (ahl__is_text(c)) {
        if (!ahl__utf8_valid(p, len))
            return ahl__fail(n, AHL_EPARSE, e->tag, "%s value is not valid UTF-8", k->vr);
        if (c == VC_TEXT_ONE)
            multi = false;
        else if (de)
            multi = ahl_dict_vm_multi(de);
        else
            multi = memchr(p, '\\', len) != NULL;
        return ahl__text_value(p, len, c, multi, &k->value);
    }
    size_t size = ahl__value_size(c);
    if (size) {
        if (len % size != 0)
            return ahl__fail(n, AHL_EPARSE, e->tag,
                             "%s value of %zu bytes is not a whole number of %zu-byte values",
                             k->vr, len, size);
        multi = de ? ahl_dict_vm_multi(de) : false;
        return ahl__binary_value(p, len, c, multi, &k->value);
    }
    return ahl__bytes_value(n, p, len, &k->value);
}

/* Adds a converted element to a DICOM map (and its VR to vrs, created on first use when *vrs is
 * NULL). Keeps the first of two elements that would share a key. */
static int ahl__put(json_t *dicom, json_t **vrs, struct ahl__keyed *k)
{
    if (!k->value)
        return 0;
    if (json_object_get(dicom, k->key)) {
        if (k->hex_key || json_object_get(dicom, k->hex)) {
            json_decref(k->value);
            k->value = NULL;
            return 0;
        }
        k->hex_key = true;
        k->key = k->hex;
    }
    if (json_object_set_new_nocheck(dicom, k->key, k->value) < 0)
        return AHL_ENOMEM;
    k->value = NULL;
    if (k->hex_key) {
        if (!*vrs && !(*vrs = json_object()))
            return AHL_ENOMEM;
        if (json_object_set_new_nocheck(*vrs, k->hex, json_stringn_nocheck(k->vr, 2)) < 0)
            return AHL_ENOMEM;
    }
    return 0;
}

/* A sequence item: its attributes, and a DICOMVRs map when any of them has a hex key. */
static int ahl__dataset(struct ahl__norm *n, const struct ahl_dcm_dataset *ds, json_t **out)
{
    json_t *obj = json_object();
    json_t *vrs = NULL;
    int rc = obj ? 0 : AHL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < ds->n; i++) {
        struct ahl__keyed k;
        rc = ahl__convert(n, &ds->elems[i], &k);
        if (rc == 0)
            rc = ahl__put(obj, &vrs, &k);
    }
    if (rc == 0 && vrs) {
        rc = json_object_set_new_nocheck(obj, "DICOMVRs", vrs) < 0 ? AHL_ENOMEM : 0;
        vrs = NULL;
    }
    json_decref(vrs);
    if (rc < 0) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

/* The UID an identity attribute holds, padding removed, into buf. */
static int ahl__identity_uid(struct ahl__norm *n, const struct ahl_dcm_dataset *ds, uint32_t tag,
                             const char *name, char *buf, size_t cap)
{
    const struct ahl_dcm_elem *e = ahl_dcm_find(ds, tag);
    size_t len = e && e->value ? e->value_len : 0;
    while (len > 0 && (e->value[len - 1] == ' ' || e->value[len - 1] == '\0'))
        len--;
    if (len == 0)
        return ahl__fail(n, AHL_EPARSE, tag,
                         "%s is %s; HealthImaging needs it to place the instance", name,
                         e ? "empty" : "missing");
    if (len >= cap || !ahl__utf8_valid(e->value, len) || memchr(e->value, '\\', len) ||
        memchr(e->value, '\0', len))
        return ahl__fail(n, AHL_EPARSE, tag, "%s is not a single UID (%zu bytes)", name, len);
    memcpy(buf, e->value, len);
    buf[len] = '\0';
    return 0;
}

/* A US attribute of the top-level dataset; -1 when absent or empty. */
static long ahl__us(const struct ahl_dcm_dataset *ds, uint32_t tag)
{
    const struct ahl_dcm_elem *e = ahl_dcm_find(ds, tag);
    if (!e || !e->value || e->value_len < 2)
        return -1;
    return ahl__le16(e->value);
}

static int ahl__number_of_frames(struct ahl__norm *n, const struct ahl_dcm_dataset *ds,
                                 uint64_t *frames)
{
    const struct ahl_dcm_elem *e = ahl_dcm_find(ds, TAG_NUMBER_OF_FRAMES);
    *frames = 1;
    if (!e || !e->value)
        return 0;
    size_t i = 0, len = e->value_len;
    while (i < len && e->value[i] == ' ')
        i++;
    while (len > i && (e->value[len - 1] == ' ' || e->value[len - 1] == '\0'))
        len--;
    if (i == len)
        return 0;
    if (e->value[i] == '+')
        i++;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (e->value[i] < '0' || e->value[i] > '9' || v > AHL_HI_MAX_FRAMES)
            return ahl__fail(n, AHL_EPARSE, TAG_NUMBER_OF_FRAMES,
                             "\"%.*s\" is not a frame count up to %d", (int)e->value_len,
                             (const char *)e->value, AHL_HI_MAX_FRAMES);
        v = v * 10 + (uint64_t)(e->value[i] - '0');
    }
    if (v > AHL_HI_MAX_FRAMES)
        return ahl__fail(n, AHL_ETOOBIG, TAG_NUMBER_OF_FRAMES, "%llu frames; at most %d",
                         (unsigned long long)v, AHL_HI_MAX_FRAMES);
    *frames = v;
    return 0;
}

static int ahl__append_frame(json_t *frames, bool known, uint64_t size)
{
    json_t *fr = json_object();
    if (!fr || json_array_append_new(frames, fr) < 0)
        return AHL_ENOMEM;
    if (known &&
        json_object_set_new_nocheck(fr, "FrameSizeInBytes", json_integer((json_int_t)size)) < 0)
        return AHL_ENOMEM;
    return 0;
}

/* Frame sizes of encapsulated pixel data, into sizes[0..nframes) ; *known false when the
 * header does not say where frames start. */
static int ahl__encapsulated_sizes(struct ahl__norm *n, const struct ahl_dcm_file *f,
                                   uint64_t nframes, uint64_t *sizes, bool *known)
{
    const struct ahl_dcm_pixel *px = &f->pixel;
    const struct ahl_dcm_elem *eot = ahl_dcm_find(&f->ds, TAG_EXTENDED_OFFSET_TABLE);
    const struct ahl_dcm_elem *eotl = ahl_dcm_find(&f->ds, TAG_EXTENDED_OFFSET_TABLE_LENGTHS);
    *known = true;
    if (eot && eotl && eotl->value && eotl->value_len == nframes * 8) {
        for (uint64_t i = 0; i < nframes; i++)
            sizes[i] = ahl__le64(eotl->value + i * 8);
        return 0;
    }
    if (nframes == px->n_fragments) {
        for (uint64_t i = 0; i < nframes; i++)
            sizes[i] = px->fragments[i].length;
        return 0;
    }
    if (nframes == 1) {
        sizes[0] = 0;
        for (size_t j = 0; j < px->n_fragments; j++)
            sizes[0] += px->fragments[j].length;
        return 0;
    }
    if (px->n_offsets == nframes && px->n_fragments > 0 && px->offset_table[0] == 0) {
        /* Basic Offset Table entries are positions in the item stream, counted from the first
         * fragment's item tag; fragment offsets point after each 8-byte item header. */
        size_t j = 0;
        uint64_t base = px->fragments[0].offset;
        for (uint64_t i = 0; i < nframes; i++) {
            uint64_t end = i + 1 < nframes ? px->offset_table[i + 1] : UINT64_MAX;
            if (i + 1 < nframes && end <= px->offset_table[i])
                break;
            sizes[i] = 0;
            while (j < px->n_fragments && px->fragments[j].offset - base < end) {
                sizes[i] += px->fragments[j].length;
                j++;
            }
            if (i + 1 == nframes)
                return 0;
        }
    }
    if (px->n_fragments < nframes)
        return ahl__fail(n, AHL_EPARSE, px->tag, "%zu pixel data fragments cannot hold %llu frames",
                         px->n_fragments, (unsigned long long)nframes);
    *known = false;
    return 0;
}

static int ahl__image_frames(struct ahl__norm *n, const struct ahl_dcm_file *f, json_t **out)
{
    const struct ahl_dcm_pixel *px = &f->pixel;
    uint64_t *sizes = NULL;
    json_t *frames = json_array();
    int rc = frames ? 0 : AHL_ENOMEM;
    if (rc < 0 || !px->present)
        goto out;
    uint64_t nframes;
    rc = ahl__number_of_frames(n, &f->ds, &nframes);
    if (rc < 0 || nframes == 0)
        goto out;
    if (px->encapsulated) {
        sizes = malloc(nframes * sizeof *sizes);
        if (!sizes) {
            rc = AHL_ENOMEM;
            goto out;
        }
        bool known;
        rc = ahl__encapsulated_sizes(n, f, nframes, sizes, &known);
        for (uint64_t i = 0; rc == 0 && i < nframes; i++)
            rc = ahl__append_frame(frames, known, sizes[i]);
        goto out;
    }
    long rows = ahl__us(&f->ds, TAG_ROWS), cols = ahl__us(&f->ds, TAG_COLUMNS);
    long bits = ahl__us(&f->ds, TAG_BITS_ALLOCATED), spp = ahl__us(&f->ds, TAG_SAMPLES_PER_PIXEL);
    if (spp < 0)
        spp = 1;
    if (rows < 0 || cols < 0 || bits <= 0) {
        rc = ahl__fail(n, AHL_EPARSE, px->tag,
                       "pixel data present but Rows, Columns or BitsAllocated is missing");
        goto out;
    }
    if (spp > 64 || bits > 64) {
        rc = ahl__fail(n, AHL_EPARSE, px->tag,
                       "implausible SamplesPerPixel %ld or BitsAllocated %ld", spp, bits);
        goto out;
    }
    /* At most 2^32 * 2^12 bits: no overflow. */
    uint64_t frame_bits = (uint64_t)rows * (uint64_t)cols * (uint64_t)spp * (uint64_t)bits;
    /* Native 4:2:2 colour stores two samples per pixel, not three (PS3.5 8.2.1). */
    const struct ahl_dcm_elem *pi = ahl_dcm_find(&f->ds, TAG_PHOTOMETRIC);
    if (pi && pi->value && spp == 3 && pi->value_len >= 12 &&
        (memcmp(pi->value, "YBR_FULL_422", 12) == 0 ||
         (pi->value_len >= 15 && memcmp(pi->value, "YBR_PARTIAL_422", 15) == 0)))
        frame_bits = frame_bits / 3 * 2;
    /* 1-bit frames are packed back to back; the byte size of one is rounded up. */
    uint64_t frame_bytes = (frame_bits + 7) / 8;
    if (frame_bits > px->value_length * 8 / nframes) {
        rc = ahl__fail(n, AHL_EPARSE, px->tag,
                       "%llu bytes of pixel data cannot hold %llu frames of %ldx%ldx%ld at %ld "
                       "bits",
                       (unsigned long long)px->value_length, (unsigned long long)nframes, rows,
                       cols, spp, bits);
        goto out;
    }
    for (uint64_t i = 0; rc == 0 && i < nframes; i++)
        rc = ahl__append_frame(frames, true, frame_bytes);
out:
    free(sizes);
    if (rc < 0) {
        json_decref(frames);
        return rc;
    }
    *out = frames;
    return 0;
}

/* Moves *value into obj under key (jansson steals it even on failure). */
static int ahl__move(json_t *obj, const char *key, json_t **value)
{
    json_t *v = *value;
    *value = NULL;
    return json_object_set_new(obj, key, v) < 0 ? AHL_ENOMEM : 0;
}

/* {key: *value} as a new object in *out, *value moved. */
static int ahl__wrap(const char *key, json_t **value, json_t **out)
{
    *out = json_object();
    if (!*out) {
        json_decref(*value);
        *value = NULL;
        return AHL_ENOMEM;
    }
    return ahl__move(*out, key, value);
}

int ahl_hi_normalize(const struct ahl_dcm_file *f, json_t **out, struct ahl_err *err)
{
    struct ahl__norm n = {.err = err};
    ahl_buf_init(&n.scratch, AHL_BUF_UNLIMITED);
    json_t *level[4] = {json_object(), json_object(), json_object(), json_object()};
    json_t *vrs = json_object();
    json_t *frames = NULL, *instance = NULL, *instances = NULL, *series = NULL;
    json_t *series_map = NULL, *study = NULL, *patient = NULL, *doc = NULL;
    char study_uid[65], series_uid[65], sop_uid[65];
    int rc = 0;
    *out = NULL;
    for (int i = 0; i < 4; i++)
        if (!level[i])
            rc = AHL_ENOMEM;
    if (!vrs)
        rc = AHL_ENOMEM;
    if (rc == 0)
        rc = ahl__identity_uid(&n, &f->ds, TAG_STUDY_UID, "StudyInstanceUID", study_uid,
                               sizeof study_uid);
    if (rc == 0)
        rc = ahl__identity_uid(&n, &f->ds, TAG_SERIES_UID, "SeriesInstanceUID", series_uid,
                               sizeof series_uid);
    if (rc == 0)
        rc = ahl__identity_uid(&n, &f->ds, TAG_SOP_UID, "SOPInstanceUID", sop_uid, sizeof sop_uid);

    /* The file meta group first, then the dataset: both in tag order, so every map lists its
     * attributes in tag order. */
    for (size_t i = 0; rc == 0 && i < f->meta.n; i++) {
        struct ahl__keyed k;
        rc = ahl__convert(&n, &f->meta.elems[i], &k);
        if (rc == 0)
            rc = ahl__put(level[AHL_LEVEL_INSTANCE], &vrs, &k);
    }
    for (size_t i = 0; rc == 0 && i < f->ds.n; i++) {
        const struct ahl_dcm_elem *e = &f->ds.elems[i];
        struct ahl__keyed k;
        rc = ahl__convert(&n, e, &k);
        if (rc < 0)
            break;
        enum ahl_level lv = k.hex_key ? AHL_LEVEL_INSTANCE : ahl_level_of_tag(e->tag);
        rc = ahl__put(level[lv], &vrs, &k);
    }
    if (rc == 0)
        rc = ahl__image_frames(&n, f, &frames);
    if (rc < 0)
        goto out;

    /* Assemble bottom-up. */
    if (!(instance = json_object()) || !(series = json_object()) || !(study = json_object()) ||
        !(doc = json_object()))
        rc = AHL_ENOMEM;
    if (rc == 0)
        rc = ahl__move(instance, "DICOM", &level[AHL_LEVEL_INSTANCE]);
    if (rc == 0)
        rc = ahl__move(instance, "DICOMVRs", &vrs);
    if (rc == 0)
        rc = ahl__move(instance, "ImageFrames", &frames);
    if (rc == 0)
        rc = ahl__wrap(sop_uid, &instance, &instances);
    if (rc == 0)
        rc = ahl__move(series, "DICOM", &level[AHL_LEVEL_SERIES]);
    if (rc == 0)
        rc = ahl__move(series, "Instances", &instances);
    if (rc == 0)
        rc = ahl__wrap(series_uid, &series, &series_map);
    if (rc == 0)
        rc = ahl__move(study, "DICOM", &level[AHL_LEVEL_STUDY]);
    if (rc == 0)
        rc = ahl__move(study, "Series", &series_map);
    if (rc == 0)
        rc = ahl__wrap("DICOM", &level[AHL_LEVEL_PATIENT], &patient);
    if (rc == 0)
        rc = ahl__move(doc, "Patient", &patient);
    if (rc == 0)
        rc = ahl__move(doc, "Study", &study);
    if (rc < 0) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory building the document");
        goto out;
    }
    *out = doc;
    doc = NULL;
out:
    json_decref(doc);
    json_decref(patient);
    json_decref(study);
    json_decref(series_map);
    json_decref(series);
    json_decref(instances);
    json_decref(instance);
    json_decref(frames);
    json_decref(vrs);
    for (int i = 0; i < 4; i++)
        json_decref(level[i]);
    ahl_buf_release(&n.scratch);
    return rc;
}
