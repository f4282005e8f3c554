/* Converts a dataset from the Part-10 reader into the DICOM JSON model of PS3.18 Annex F (see
 * dicomjson.h for the rules). Values are already little endian and UTF-8, so this is a matter of
 * splitting, trimming and typing. */
#include "dicom/dicomjson.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/codec.h"

#include "base/banned.h"

#define TAGF "(%04X,%04X)"
#define TAGA(t) (unsigned)AHL_DCM_GROUP(t), (unsigned)AHL_DCM_ELEMENT(t)

static bool vr_is(const struct ahl_dcm_elem *e, const char *vr)
{
    return e->vr[0] == vr[0] && e->vr[1] == vr[1];
}

static bool single_valued_text(const struct ahl_dcm_elem *e)
{
    return vr_is(e, "LT") || vr_is(e, "ST") || vr_is(e, "UT") || vr_is(e, "UR");
}

/* Trims one value in place (by adjusting *s and *n): trailing spaces and NULs always, leading
 * spaces except for the single-valued texts, whose leading spaces are significant. */
static void trim(const struct ahl_dcm_elem *e, const char **s, size_t *n)
{
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\0'))
        (*n)--;
    if (!single_valued_text(e)) {
        while (*n > 0 && (*s)[0] == ' ') {
            (*s)++;
            (*n)--;
        }
    }
}

json_t *ahl_dicomjson_number(bool is_integer, const char *s, size_t n)
{
    char tmp[64];
    char *end;

    if (n == 0 || n >= sizeof(tmp))
        return NULL;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    errno = 0;
    if (is_integer) {
        long long v = strtoll(tmp, &end, 10);
        if (*end == '\0' && errno == 0)
            return json_integer(v);
        return NULL;
    }
    double d = strtod(tmp, &end);
    if (*end != '\0' || errno != 0 || !isfinite(d))
        return NULL;
    return json_real(d);
}

json_t *ahl_dicomjson_pn(const char *s, size_t n)
{
    static const char *const groups[] = {"Alphabetic", "Ideographic", "Phonetic"};
    json_t *o = json_object();
    size_t start = 0;
    int g = 0;

    if (o == NULL)
        return NULL;
    for (size_t i = 0; i <= n && g < 3; i++) {
        if (i < n && s[i] != '=')
            continue;
        size_t len = i - start;
        const char *p = s + start;
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\0'))
            len--;
        if (len > 0 && json_object_set_new(o, groups[g], json_stringn(p, len)) < 0) {
            json_decref(o);
            return NULL;
        }
        g++;
        start = i + 1;
    }
    return o;
}

static int text_values(const struct ahl_dcm_elem *e, json_t *arr)
{
    const char *s = (const char *)e->value;
    size_t n = e->value_len;
    size_t start = 0;
    bool split = !single_valued_text(e);

    for (size_t i = 0; i <= n; i++) {
        if (i < n && (!split || s[i] != '\\'))
            continue;
        const char *p = s + start;
        size_t len = i - start;
        json_t *v;
        trim(e, &p, &len);
        if (vr_is(e, "PN"))
            v = len > 0 ? ahl_dicomjson_pn(p, len) : json_null();
        else if (vr_is(e, "DS") || vr_is(e, "IS"))
            v = len > 0 ? ahl_dicomjson_number(vr_is(e, "IS"), p, len) : json_null();
        else
            v = len > 0 ? json_stringn(p, len) : json_null();
        if (v == NULL && (vr_is(e, "DS") || vr_is(e, "IS")))
            v = json_stringn(p, len); /* not a number: keep the text rather than lose it */
        if (v == NULL || json_array_append_new(arr, v) < 0)
            return AHL_ENOMEM;
        start = i + 1;
    }
    return 0;
}

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static int binary_values(const struct ahl_dcm_elem *e, json_t *arr, struct ahl_err *err)
{
    unsigned unit;
    if (vr_is(e, "US") || vr_is(e, "SS"))
        unit = 2;
    else if (vr_is(e, "UL") || vr_is(e, "SL") || vr_is(e, "FL") || vr_is(e, "AT"))
        unit = 4;
    else
        unit = 8; /* FD UV SV */
    if (e->value_len % unit != 0)
        return ahl_fail(err, AHL_EPARSE,
                        "element " TAGF ": %zu bytes is not a whole number of %s values",
                        TAGA(e->tag), e->value_len, e->vr);
    for (size_t i = 0; i < e->value_len; i += unit) {
        const uint8_t *p = e->value + i;
        uint64_t u = le(p, unit);
        json_t *v;
        if (vr_is(e, "US") || vr_is(e, "UL")) {
            v = json_integer((json_int_t)u);
        } else if (vr_is(e, "SS")) {
            v = json_integer((int16_t)u);
        } else if (vr_is(e, "SL")) {
            v = json_integer((int32_t)u);
        } else if (vr_is(e, "SV")) {
            v = json_integer((json_int_t)(int64_t)u);
        } else if (vr_is(e, "UV")) {
            /* jansson integers are signed 64-bit; beyond that the value goes as a string. */
            if (u > INT64_MAX) {
                char tmp[24];
                snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)u);
                v = json_string(tmp);
            } else {
                v = json_integer((json_int_t)u);
            }
        } else if (vr_is(e, "AT")) {
            char tmp[9];
            snprintf(tmp, sizeof(tmp), "%04X%04X", (unsigned)(u & 0xFFFF),
                     (unsigned)((u >> 16) & 0xFFFF));
            v = json_string(tmp);
        } else if (vr_is(e, "FL")) {
            float f;
            uint32_t w = (uint32_t)u;
            memcpy(&f, &w, 4);
            v = isfinite(f) ? json_real(f) : json_null();
        } else {
            double d;
            memcpy(&d, &u, 8);
            v = isfinite(d) ? json_real(d) : json_null();
        }
        if (v == NULL || json_array_append_new(arr, v) < 0)
            return AHL_ENOMEM;
    }
    return 0;
}

static bool is_binary_vr(const struct ahl_dcm_elem *e)
{
    return vr_is(e, "US") || vr_is(e, "SS") || vr_is(e, "UL") || vr_is(e, "SL") || vr_is(e, "FL") ||
           vr_is(e, "FD") || vr_is(e, "UV") || vr_is(e, "SV") || vr_is(e, "AT");
}

static int convert(const struct ahl_dcm_dataset *ds, const struct ahl_dicomjson_opts *o,
                   json_t *obj, struct ahl_err *err);

static int element(const struct ahl_dcm_elem *e, const struct ahl_dicomjson_opts *o, json_t *attr,
                   struct ahl_err *err)
{
    int rc = 0;
    json_t *arr = NULL;

    if (vr_is(e, "SQ") || e->n_items > 0) {
        if (e->n_items == 0)
            return 0;
        arr = json_array();
        for (size_t i = 0; arr != NULL && i < e->n_items && rc == 0; i++) {
            json_t *item = json_object();
            if (item == NULL || json_array_append_new(arr, item) < 0)
                rc = AHL_ENOMEM;
            else
                rc = convert(&e->items[i], o, item, err);
        }
        goto set_value;
    }
    if (e->value == NULL) {
        if (e->length == 0 || e->length == AHL_DCM_UNDEFINED_LENGTH || o == NULL ||
            o->bulk_base == NULL)
            return 0;
        char uri[1200];
        snprintf(uri, sizeof(uri), "%s?offset=%llu&length=%u", o->bulk_base,
                 (unsigned long long)e->value_offset, e->length);
        return json_object_set_new(attr, "BulkDataURI", json_string(uri)) < 0 ? AHL_ENOMEM : 0;
    }
    if (e->value_len == 0)
        return 0;
    if (vr_is(e, "OB") || vr_is(e, "OW") || vr_is(e, "OD") || vr_is(e, "OF") || vr_is(e, "OL") ||
        vr_is(e, "OV") || vr_is(e, "UN")) {
        struct ahl_buf b;
        ahl_buf_init(&b, AHL_BUF_UNLIMITED);
        rc = ahl_base64_encode(e->value, e->value_len, &b);
        if (rc == 0 && json_object_set_new(attr, "InlineBinary", json_stringn(b.data, b.len)) < 0)
            rc = AHL_ENOMEM;
        ahl_buf_release(&b);
        return rc;
    }
    arr = json_array();
    if (arr == NULL)
        return AHL_ENOMEM;
    if (is_binary_vr(e))
        rc = binary_values(e, arr, err);
    else
        rc = text_values(e, arr);
set_value:
    if (arr == NULL)
        return AHL_ENOMEM;
    if (rc == 0 && json_object_set_new(attr, "Value", arr) < 0)
        rc = AHL_ENOMEM;
    else if (rc != 0)
        json_decref(arr);
    return rc;
}

static int convert(const struct ahl_dcm_dataset *ds, const struct ahl_dicomjson_opts *o,
                   json_t *obj, struct ahl_err *err)
{
    for (size_t i = 0; i < ds->n; i++) {
        const struct ahl_dcm_elem *e = &ds->elems[i];
        char key[9], vr[3] = {e->vr[0], e->vr[1], 0};
        int rc;
        if (AHL_DCM_ELEMENT(e->tag) == 0x0000)
            continue; /* group lengths are not part of the JSON model */
        if (e->n_items > 0 || e->length == AHL_DCM_UNDEFINED_LENGTH)
            if (!(e->vr[0] == 'O' || e->tag == AHL_TAG_PIXEL_DATA))
                memcpy(vr, "SQ", 3); /* a UN holding items can only be written as SQ */
        snprintf(key, sizeof(key), "%04X%04X", (unsigned)AHL_DCM_GROUP(e->tag),
                 (unsigned)AHL_DCM_ELEMENT(e->tag));
        json_t *attr = json_object();
        if (attr == NULL || json_object_set_new(obj, key, attr) < 0 ||
            json_object_set_new(attr, "vr", json_string(vr)) < 0)
            return ahl_fail(err, AHL_ENOMEM, "out of memory");
        if ((rc = element(e, o, attr, err)) < 0) {
            if (rc == AHL_ENOMEM)
                return ahl_fail(err, AHL_ENOMEM, "out of memory");
            return rc;
        }
    }
    return 0;
}

int ahl_dicomjson_from_dataset(const struct ahl_dcm_dataset *ds, const struct ahl_dicomjson_opts *o,
                               json_t **out, struct ahl_err *err)
{
    json_t *obj = json_object();
    int rc;

    *out = NULL;
    if (obj == NULL)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    rc = convert(ds, o, obj, err);
    if (rc < 0) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}
