/* Converts the nodes of a HealthImaging metadata document back into the DICOM JSON model of one
 * instance (hidoc.h has the rules). The document's values were typed by the normalizer
 * (normalize.h), so this mostly wraps them: scalars into "Value" arrays, PN strings into component
 * groups, IS/DS text into numbers, base64 into InlineBinary; the keys go back to tags through the
 * dictionary. Recursion follows sequence items, bounded by AHL_HIDOC_MAX_DEPTH. */
#include "dicom/hidoc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "dicom/dataset.h"
#include "dicom/dicomjson.h"
#include "dicom/dict.h"
#include "dicom/docvr.h"
#include "base/banned.h"

struct hctx {
    struct ahl_err *err;
    int pixel_rep; /* PixelRepresentation of the instance, -1 when absent */
};

static bool vr_in(const char *vr, const char *list)
{
    for (const char *p = list; p[0] && p[1]; p += 2)
        if (p[0] == vr[0] && p[1] == vr[1])
            return true;
    return false;
}

static bool byte_vr(const char *vr)
{
    return vr_in(vr, "OBODOFOLOVOWUN");
}

/* One text value (a piece between backslashes) as DICOM JSON types it. */
static json_t *text_piece(const char *vr, const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\0'))
        n--;
    if (!vr_in(vr, "LTSTUTUR"))
        while (n > 0 && s[0] == ' ') {
            s++;
            n--;
        }
    if (n == 0)
        return json_null();
    if (vr_in(vr, "PN"))
        return ahl_dicomjson_pn(s, n);
    if (vr_in(vr, "ISDS")) {
        json_t *num = ahl_dicomjson_number(vr[0] == 'I', s, n);
        return num ? num : json_stringn(s, n);
    }
    return json_stringn(s, n);
}

/* Appends the values of one text string (split at '\' unless the VR holds one value) to arr. */
static int text_values(const char *vr, const char *s, json_t *arr)
{
    size_t n = strlen(s), start = 0;
    bool split = !vr_in(vr, "LTSTUTUR");
    for (size_t i = 0; i <= n; i++) {
        if (i < n && (!split || s[i] != '\\'))
            continue;
        json_t *v = text_piece(vr, s + start, i - start);
        if (!v || json_array_append_new(arr, v) < 0)
            return AHL_ENOMEM;
        start = i + 1;
    }
    return 0;
}

static int convert_map(struct hctx *c, const json_t *dicom, const json_t *vrs, bool top,
                       unsigned depth, json_t *out);

/* Fills attr's "Value" (or "InlineBinary") from the document's value v of VR vr. */
static int fill_value(struct hctx *c, const char *key, const char *vr, const json_t *v,
                      unsigned depth, json_t *attr)
{
    if (json_is_null(v))
        return 0;
    if (vr_in(vr, "SQ")) {
        if (!json_is_array(v))
            return ahl_fail(c->err, AHL_EPARSE, "%s: a sequence must be an array of items", key);
        if (json_array_size(v) == 0)
            return 0;
        if (depth >= AHL_HIDOC_MAX_DEPTH)
            return ahl_fail(c->err, AHL_ETOOBIG, "%s: sequences nested deeper than %d", key,
                            AHL_HIDOC_MAX_DEPTH);
        json_t *arr = json_array();
        if (!arr || json_object_set_new(attr, "Value", arr) < 0)
            return ahl_fail(c->err, AHL_ENOMEM, "out of memory");
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item)
        {
            json_t *o = json_object();
            if (!o || json_array_append_new(arr, o) < 0)
                return ahl_fail(c->err, AHL_ENOMEM, "out of memory");
            if (!json_is_object(item))
                return ahl_fail(c->err, AHL_EPARSE, "%s[%zu]: an item must be an object", key, i);
            int rc = convert_map(c, item, json_object_get(item, "DICOMVRs"), false, depth + 1, o);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    if (byte_vr(vr)) {
        if (!json_is_string(v))
            return ahl_fail(c->err, AHL_EPARSE, "%s: a %s value must be a base64 string", key, vr);
        if (json_object_set(attr, "InlineBinary", (json_t *)v) < 0)
            return ahl_fail(c->err, AHL_ENOMEM, "out of memory");
        return 0;
    }
    json_t *arr = json_array();
    if (!arr || json_object_set_new(attr, "Value", arr) < 0)
        return ahl_fail(c->err, AHL_ENOMEM, "out of memory");
    bool text = !vr_in(vr, "USSSULSLUVSVFLFDAT");
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
        int rc = 0;
        if (json_is_null(x))
            rc = json_array_append_new(arr, json_null());
        else if (text && json_is_string(x))
            rc = text_values(vr, json_string_value(x), arr);
        else if (json_is_string(x) || json_is_number(x))
            rc = json_array_append(arr, (json_t *)x);
        else
            return ahl_fail(c->err, AHL_EPARSE, "%s: a %s value must be a string or a number", key,
                            vr);
        if (rc < 0)
            return ahl_fail(c->err, AHL_ENOMEM, "out of memory");
    }
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Reorders obj's keys ascending ("GGGGEEEE" strings sort in tag order). */
static int sort_keys(json_t *obj)
{
    size_t n = json_object_size(obj), i = 0;
    if (n < 2)
        return 0;
    const char **keys = malloc(n * sizeof *keys);
    json_t *copy = json_object();
    int rc = keys && copy ? 0 : AHL_ENOMEM;
    const char *k;
    json_t *v;
    if (rc == 0) {
        json_object_foreach(obj, k, v) keys[i++] = k;
        qsort(keys, n, sizeof *keys, key_cmp);
        for (i = 0; rc == 0 && i < n; i++)
            if (json_object_set(copy, keys[i], json_object_get(obj, keys[i])) < 0)
                rc = AHL_ENOMEM;
    }
    /* obj's keys die with its entries: copy every entry before clearing it. */
    if (rc == 0 && (json_object_clear(obj) < 0 || json_object_update(obj, copy) < 0))
        rc = AHL_ENOMEM;
    free(keys);
    json_decref(copy);
    return rc;
}

static int convert_map(struct hctx *c, const json_t *dicom, const json_t *vrs, bool top,
                       unsigned depth, json_t *out)
{
    const char *key;
    const json_t *v;
    if (!json_is_object(dicom))
        return ahl_fail(c->err, AHL_EPARSE, "an item is not an object");
    json_object_foreach((json_t *)dicom, key, v)
    {
        uint32_t tag;
        char vr[3] = "UN";
        if (!top && strcmp(key, "DICOMVRs") == 0)
            continue;
        if (!ahl_dicom_hex_key(key, &tag)) {
            const struct ahl_dict_entry *de = ahl_dict_by_keyword(key);
            if (!de)
                continue; /* not an attribute: nothing DICOM can carry */
            tag = de->tag;
        }
        ahl_dicom_value_vr(tag, json_string_value(json_object_get(vrs, key)), dicom, v,
                           c->pixel_rep == 1, vr);
        if (AHL_DCM_ELEMENT(tag) == 0 || (top && AHL_DCM_GROUP(tag) == 0x0002))
            continue;
        char tkey[9];
        snprintf(tkey, sizeof tkey, "%08X", (unsigned)tag);
        json_t *attr = json_object();
        if (!attr || json_object_set_new(out, tkey, attr) < 0 ||
            json_object_set_new(attr, "vr", json_string(vr)) < 0)
            return ahl_fail(c->err, AHL_ENOMEM, "out of memory");
        int rc = fill_value(c, key, vr, v, depth, attr);
        if (rc < 0)
            return rc;
    }
    if (sort_keys(out) < 0)
        return ahl_fail(c->err, AHL_ENOMEM, "out of memory");
    return 0;
}

/* An integer attribute of the instance (Instance level first, then Series), or -1. */
static long level_int(const json_t *const nodes[4], const char *keyword)
{
    for (int i = 3; i >= 0; i--) {
        const json_t *v = json_object_get(json_object_get(nodes[i], "DICOM"), keyword);
        if (json_is_array(v))
            v = json_array_get(v, 0);
        if (json_is_integer(v))
            return (long)json_integer_value(v);
    }
    return -1;
}

int ahl_hidoc_instance(const json_t *patient, const json_t *study, const json_t *series,
                       const json_t *instance, const struct ahl_hidoc_opts *opts, json_t **out,
                       struct ahl_err *err)
{
    const json_t *nodes[4] = {patient, study, series, instance};
    struct hctx c = {.err = err};
    json_t *obj = json_object();
    int rc = 0;

    *out = NULL;
    if (!obj)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    c.pixel_rep = (int)level_int(nodes, "PixelRepresentation");
    static const char *const names[4] = {"Patient", "Study", "Series", "Instance"};
    for (int i = 0; rc == 0 && i < 4; i++) {
        const json_t *dicom = json_object_get(nodes[i], "DICOM");
        if (!dicom)
            continue;
        if (!json_is_object(dicom)) {
            rc = ahl_fail(err, AHL_EPARSE, "%s.DICOM: not an object", names[i]);
            break;
        }
        const json_t *vrs = json_object_get(nodes[i], "DICOMVRs");
        json_t *level = json_object();
        if (!level) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            break;
        }
        rc = convert_map(&c, dicom, vrs, true, 0, level);
        if (rc == 0 && json_object_update(obj, level) < 0)
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        json_decref(level);
        if (rc < 0 && rc != AHL_ENOMEM && err) {
            char msg[sizeof err->msg];
            ahl_str_copy_cut(msg, sizeof msg, err->msg);
            ahl_fail(err, rc, "%s.DICOM.%s", names[i], msg);
        }
    }
    if (rc == 0 && opts && opts->pixel_bulk_uri) {
        json_t *px =
            json_pack("{s:s,s:s}", "vr", level_int(nodes, "BitsAllocated") > 8 ? "OW" : "OB",
                      "BulkDataURI", opts->pixel_bulk_uri);
        if (!px || json_object_set_new(obj, "7FE00010", px) < 0)
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
    }
    const char *tag;
    const json_t *b;
    json_object_foreach((json_t *)json_object_get(instance, "BulkData"), tag, b)
    {
        const char *id = json_string_value(json_object_get(b, "ID"));
        const char *vr = json_string_value(json_object_get(b, "VR"));
        if (rc < 0 || !opts || !opts->bulk_uri_prefix)
            break;
        if (!id || !vr || strlen(tag) != 8) {
            rc = ahl_fail(err, AHL_EPARSE, "Instance.BulkData.%s: no ID or VR", tag);
            break;
        }
        json_t *v = json_pack("{s:s,s:s++}", "vr", vr, "BulkDataURI", opts->bulk_uri_prefix, id,
                              opts->bulk_uri_suffix ? opts->bulk_uri_suffix : "");
        if (!v || json_object_set_new(obj, tag, v) < 0)
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
    }
    if (rc == 0 && sort_keys(obj) < 0)
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
    if (rc < 0) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

long ahl_hidoc_int(const json_t *dicom, const char *keyword, long dflt)
{
    const json_t *v = json_object_get(dicom, keyword);
    if (json_is_array(v))
        v = json_array_get(v, 0);
    if (json_is_integer(v))
        return (long)json_integer_value(v);
    if (json_is_string(v)) { /* IS values keep their text, e.g. NumberOfFrames "2 " */
        char *end;
        long n = strtol(json_string_value(v), &end, 10);
        return end != json_string_value(v) ? n : dflt;
    }
    return dflt;
}
