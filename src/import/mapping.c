/* DICOM JSON metadata mappings (mapping.h): the request's mappings checked, a mapped DICOM JSON
 * file turned into the attributes it sets per level, and those overlaid on the instances a job
 * imports. The per-attribute rules are UpdateImageSetMetadata's without force (meta/rules.h), so
 * that a mapping can set no more than an update of the image set could afterwards. */
#include "import/mapping.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/text.h"
#include "dicom/dict.h"
#include "dicom/docvr.h"
#include "dicom/levels.h"
#include "meta/rules.h"
#include "base/banned.h"

/* ---- the request ---------------------------------------------------------------------------- */

static bool bad_uid(const char *uid)
{
    json_t *v = json_string(uid);
    bool bad = !v || !uid[0] || ahl_rules_vr_problem("UI", v) != NULL;
    json_decref(v);
    return bad;
}

/* A path that stays under the input prefix: relative, no empty, "." or ".." segment. */
static bool bad_path(const char *p)
{
    if (!p[0] || p[0] == '/')
        return true;
    for (const char *s = p;;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return true;
        if (!e)
            return false;
        s = e + 1;
    }
}

int ahl_mapping_check_config(const json_t *mappings, struct ahl_err *err)
{
    const char *base = "importConfiguration.dicomJsonMetadataImportConfiguration."
                       "dicomMetadataMappings";
    if (!json_is_array(mappings) || json_array_size(mappings) == 0)
        return ahl_fail(err, AHL_EINVAL, "%s: a list of 1 to %d mappings is required", base,
                        AHL_MAPPING_MAX);
    if (json_array_size(mappings) > AHL_MAPPING_MAX)
        return ahl_fail(err, AHL_EINVAL, "%s: %zu mappings; at most %d are allowed", base,
                        json_array_size(mappings), AHL_MAPPING_MAX);
    size_t i;
    const json_t *m;
    json_array_foreach(mappings, i, m)
    {
        const char *st = json_string_value(json_object_get(m, "studyInstanceUID"));
        const json_t *jse = json_object_get(m, "seriesInstanceUID");
        const char *se = json_string_value(jse);
        const char *path = json_string_value(json_object_get(m, "metadataFilePath"));
        if (!st || bad_uid(st))
            return ahl_fail(err, AHL_EINVAL,
                            "%s[%zu].studyInstanceUID: \"%.80s\" is not a valid "
                            "UID (1 to 64 digits and dots, no empty or zero-led component)",
                            base, i, st ? st : "");
        if (jse && (!se || bad_uid(se)))
            return ahl_fail(err, AHL_EINVAL,
                            "%s[%zu].seriesInstanceUID: \"%.80s\" is not a valid "
                            "UID (1 to 64 digits and dots, no empty or zero-led component)",
                            base, i, se ? se : "");
        if (!path || bad_path(path))
            return ahl_fail(err, AHL_EINVAL,
                            "%s[%zu].metadataFilePath: \"%.200s\" must be a path "
                            "relative to inputS3Uri, without empty, \".\" or \"..\" segments",
                            base, i, path ? path : "");
        for (size_t k = 0; k < i; k++) {
            const json_t *o = json_array_get(mappings, k);
            const char *ost = json_string_value(json_object_get(o, "studyInstanceUID"));
            const char *ose = json_string_value(json_object_get(o, "seriesInstanceUID"));
            if (ost && strcmp(ost, st) == 0 && (se ? ose && strcmp(ose, se) == 0 : !ose)) {
                if (se)
                    return ahl_fail(err, AHL_EINVAL,
                                    "%s[%zu]: study %.64s series %.64s is "
                                    "already mapped by entry %zu",
                                    base, i, st, se, k);
                return ahl_fail(err, AHL_EINVAL,
                                "%s[%zu]: study %.64s is already mapped by entry "
                                "%zu",
                                base, i, st, k);
            }
        }
    }
    return 0;
}

int ahl_mapping_object_key(const char *input_prefix, const char *path, char *out, size_t cap)
{
    size_t n = strlen(input_prefix);
    const char *sep = n && input_prefix[n - 1] != '/' ? "/" : "";
    int w = snprintf(out, cap, "%s%s%s", input_prefix, sep, path);
    return w < 0 || (size_t)w >= cap ? AHL_ETOOBIG : 0;
}

/* ---- the DICOM JSON file -------------------------------------------------------------------- */

/* A PN value's object {"Alphabetic", "Ideographic", "Phonetic"} as the document's string:
 * the groups joined by '=', empty trailing groups left out. */
static json_t *pn_string(const char *where, const json_t *o, struct ahl_err *err)
{
    static const char *const groups[] = {"Alphabetic", "Ideographic", "Phonetic"};
    char buf[3 * 200 + 3];
    size_t len = 0, keep = 0;
    if (!json_is_object(o)) {
        ahl_fail(err, AHL_EINVAL,
                 "%s: a PN value is an object with Alphabetic, Ideographic "
                 "and Phonetic",
                 where);
        return NULL;
    }
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        bool known = false;
        for (int g = 0; g < 3; g++)
            known |= strcmp(k, groups[g]) == 0;
        if (!known || !json_is_string(v)) {
            ahl_fail(err, AHL_EINVAL,
                     "%s: PN member \"%.40s\" is not one of Alphabetic, "
                     "Ideographic, Phonetic with a string value",
                     where, k);
            return NULL;
        }
    }
    for (int g = 0; g < 3; g++) {
        const char *s = json_string_value(json_object_get(o, groups[g]));
        size_t n = s ? strlen(s) : 0;
        if (n > 200) {
            ahl_fail(err, AHL_EINVAL, "%s: PN %s is longer than 64 characters", where, groups[g]);
            return NULL;
        }
        if (g)
            buf[len++] = '=';
        memcpy(buf + len, s ? s : "", n);
        len += n;
        if (n)
            keep = len;
    }
    return json_stringn(buf, keep);
}

/* An IS or DS value given as a JSON number, as the document keeps it: its text. */
static json_t *number_text(const json_t *v)
{
    char buf[40];
    if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        snprintf(buf, sizeof buf, "%.15g", json_real_value(v));
    return json_string(buf);
}

static bool vr_is(const char *vr, const char *list)
{
    for (const char *p = list; p[0] && p[1]; p += 2)
        if (vr[0] == p[0] && vr[1] == p[1])
            return true;
    return false;
}

/* One value of a "Value" array in the document's form, by VR. */
static json_t *one_value(const char *where, const char *vr, const json_t *x, struct ahl_err *err)
{
    if (json_is_null(x))
        return json_null();
    if (strcmp(vr, "PN") == 0)
        return pn_string(where, x, err);
    if (vr_is(vr, "ISDS") && json_is_number(x))
        return number_text(x);
    if (vr_is(vr, "USSSULSLUVSVFLFD")) {
        if (json_is_number(x))
            return json_deep_copy(x);
    } else if (json_is_string(x)) {
        return json_deep_copy(x);
    }
    ahl_fail(err, AHL_EINVAL, "%s: a JSON %s is not a value of VR %s", where,
             json_is_string(x)   ? "string"
             : json_is_number(x) ? "number"
                                 : "value of this type",
             vr);
    return NULL;
}

/* The value of one DICOM JSON element {"vr", "Value" | "InlineBinary"} in the document's form. */
static int element_value(const char *where, const struct ahl_dict_entry *e, const char *vr,
                         const json_t *el, json_t **out, struct ahl_err *err)
{
    const json_t *val = json_object_get(el, "Value");
    const json_t *bin = json_object_get(el, "InlineBinary");
    *out = NULL;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)el, k, v)
    {
        if (strcmp(k, "vr") && strcmp(k, "Value") && strcmp(k, "InlineBinary"))
            return ahl_fail(err, AHL_EINVAL, "%s: %s", where,
                            strcmp(k, "BulkDataURI") == 0
                                ? "BulkDataURI values cannot be fetched; give the value inline"
                                : "an element has only vr, Value or InlineBinary");
    }
    if (strcmp(vr, "SQ") == 0)
        return ahl_fail(err, AHL_EINVAL,
                        "%s: sequence (SQ) attributes cannot be set by a "
                        "metadata mapping",
                        where);
    if (val && bin)
        return ahl_fail(err, AHL_EINVAL, "%s: both Value and InlineBinary", where);
    if (bin) {
        if (!json_is_string(bin) || !vr_is(vr, "OBODOFOLOVOWUN"))
            return ahl_fail(err, AHL_EINVAL,
                            "%s: InlineBinary is a base64 string, for VRs OB OD "
                            "OF OL OV OW UN",
                            where);
        *out = json_deep_copy(bin);
        return *out ? 0 : AHL_ENOMEM;
    }
    if (!val || (json_is_array(val) && json_array_size(val) == 0)) {
        *out = json_null();
        return 0;
    }
    if (!json_is_array(val))
        return ahl_fail(err, AHL_EINVAL, "%s: Value is an array", where);
    if (vr_is(vr, "OBODOFOLOVOWUN"))
        return ahl_fail(err, AHL_EINVAL, "%s: VR %s takes InlineBinary, not Value", where, vr);
    size_t n = json_array_size(val);
    json_t *arr = json_array();
    if (!arr)
        return AHL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *x = one_value(where, vr, json_array_get(val, i), err);
        if (!x || json_array_append_new(arr, x) < 0) {
            json_decref(arr);
            return x ? AHL_ENOMEM : AHL_EINVAL;
        }
    }
    /* One value is a scalar unless the dictionary allows several (normalize.h). */
    if (n == 1 && !ahl_dict_vm_multi(e)) {
        *out = json_incref(json_array_get(arr, 0));
        json_decref(arr);
    } else {
        *out = arr;
    }
    return 0;
}

static const char *const level_keys[] = {"Patient", "Study", "Series"};

int ahl_mapping_parse(const char *text, size_t len, const char *study_uid, const char *series_uid,
                      json_t **out, struct ahl_err *err)
{
    json_t *root = NULL, *levels = NULL, *vrs = NULL, *cur = NULL;
    json_error_t je;
    int rc = 0;
    *out = NULL;
    if (len > AHL_MAPPING_MAX_BYTES)
        return ahl_fail(err, AHL_ETOOBIG,
                        "the metadata file is %zu bytes; at most %zu are "
                        "allowed",
                        len, AHL_MAPPING_MAX_BYTES);
    if (!(root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je)))
        return ahl_fail(err, AHL_EPARSE, "not JSON: %.200s (line %d, column %d)", je.text, je.line,
                        je.column);
    const json_t *ds = root;
    if (json_is_array(root)) {
        if (json_array_size(root) != 1) {
            rc = ahl_fail(err, AHL_EINVAL,
                          "a DICOM JSON metadata file holds one dataset; this "
                          "array holds %zu",
                          json_array_size(root));
            goto out;
        }
        ds = json_array_get(root, 0);
    }
    if (!json_is_object(ds)) {
        rc = ahl_fail(err, AHL_EINVAL,
                      "not DICOM JSON: a dataset is a JSON object keyed by tags "
                      "(\"00100010\")");
        goto out;
    }
    if (!(levels = json_object()) || !(vrs = json_object())) {
        rc = AHL_ENOMEM;
        goto out;
    }
    const char *key;
    json_t *el;
    struct ahl_rules_opts ro = {.force = false};
    json_object_foreach((json_t *)ds, key, el)
    {
        uint32_t tag;
        char where[160];
        snprintf(where, sizeof where, "element %.40s", key);
        if (!ahl_dicom_hex_key(key, &tag)) {
            rc = ahl_fail(err, AHL_EINVAL,
                          "not DICOM JSON: key \"%.40s\" is not a tag of 8 hex "
                          "digits",
                          key);
            goto out;
        }
        const char *vr = json_string_value(json_object_get(el, "vr"));
        if (!json_is_object(el) || !vr || strlen(vr) != 2 || !ahl_rules_is_vr(vr)) {
            rc = ahl_fail(err, AHL_EINVAL, "not DICOM JSON: %s is not an object with a vr", where);
            goto out;
        }
        const struct ahl_dict_entry *e = ahl_dict_by_tag(tag);
        if ((tag >> 16) & 1 || !e || e->mask == 0) {
            rc = ahl_fail(err, AHL_EINVAL,
                          "%s: private and unknown tags cannot be set by a "
                          "metadata mapping",
                          where);
            goto out;
        }
        snprintf(where, sizeof where, "element %.8s (%s)", key, e->keyword);
        enum ahl_level lv = ahl_level_of_tag(tag);
        if (lv == AHL_LEVEL_INSTANCE) {
            rc = ahl_fail(err, AHL_EINVAL,
                          "%s: instance-level attributes cannot be set by a "
                          "metadata mapping (only Patient, Study and Series ones)",
                          where);
            goto out;
        }
        if (lv == AHL_LEVEL_SERIES && !series_uid) {
            rc = ahl_fail(err, AHL_EINVAL,
                          "%s: a series-level attribute needs a mapping with a "
                          "seriesInstanceUID",
                          where);
            goto out;
        }
        json_t *value = NULL;
        if ((rc = element_value(where, e, vr, el, &value, err)) < 0)
            goto out;
        /* The update rules: the VR given must be the dictionary's (or one it allows), the value
         * must fit it, and a UID may only be restated. */
        json_object_clear(vrs);
        json_decref(cur);
        cur = NULL;
        if (strcmp(e->keyword, "StudyInstanceUID") == 0)
            cur = json_string(study_uid);
        else if (strcmp(e->keyword, "SeriesInstanceUID") == 0 && series_uid)
            cur = json_string(series_uid);
        char path[32];
        snprintf(path, sizeof path, "%s.DICOM", ahl_level_name(lv));
        if (json_object_set_new(vrs, e->keyword, json_string(vr)) < 0 ||
            (rc = ahl_rules_check_set(lv, path, e->keyword, value, vrs, cur, &ro, err)) < 0) {
            json_decref(value);
            rc = rc < 0 ? rc : AHL_ENOMEM;
            goto out;
        }
        json_t *lvl = json_object_get(levels, level_keys[lv]);
        if (!lvl && json_object_set_new(levels, level_keys[lv], lvl = json_object()) < 0) {
            json_decref(value);
            rc = AHL_ENOMEM;
            goto out;
        }
        if (!lvl || json_object_set_new(lvl, e->keyword, value) < 0) {
            rc = AHL_ENOMEM;
            goto out;
        }
    }
    *out = levels;
    levels = NULL;
out:
    json_decref(cur);
    json_decref(vrs);
    json_decref(levels);
    json_decref(root);
    return rc;
}

/* ---- applying them ------------------------------------------------------------------------- */

struct entry {
    char *study, *series, *file, *problem;
    json_t *levels;
};

struct ahl_mapping_set {
    struct entry *v;
    size_t n, cap;
};

struct ahl_mapping_set *ahl_mapping_set_new(void)
{
    return calloc(1, sizeof(struct ahl_mapping_set));
}

void ahl_mapping_set_free(struct ahl_mapping_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].study);
        free(s->v[i].series);
        free(s->v[i].file);
        free(s->v[i].problem);
        json_decref(s->v[i].levels);
    }
    free(s->v);
    free(s);
}

int ahl_mapping_set_add(struct ahl_mapping_set *s, const char *study_uid, const char *series_uid,
                        const char *file, json_t *levels, const char *problem)
{
    if (s->n == s->cap) {
        struct entry *v = ahl_array_grow(s->v, &s->cap, sizeof *v, 16);
        if (!v) {
            json_decref(levels);
            return AHL_ENOMEM;
        }
        s->v = v;
    }
    struct entry *e = &s->v[s->n];
    memset(e, 0, sizeof *e);
    e->levels = levels;
    e->study = strdup(study_uid);
    e->series = series_uid ? strdup(series_uid) : NULL;
    e->file = strdup(file);
    e->problem = problem ? strdup(problem) : NULL;
    s->n++;
    if (!e->study || (series_uid && !e->series) || !e->file || (problem && !e->problem))
        return AHL_ENOMEM; /* the entry is kept, freed with the set */
    return 0;
}

/* doc's node for a level: Patient, Study or its one Series; NULL when the document lacks it. */
static json_t *level_node(json_t *doc, int lv)
{
    if (lv == 0)
        return json_object_get(doc, "Patient");
    json_t *st = json_object_get(doc, "Study");
    if (lv == 1)
        return st;
    void *it = json_object_iter(json_object_get(st, "Series"));
    return it ? json_object_iter_value(it) : NULL;
}

static int overlay(json_t *doc, const json_t *levels)
{
    for (int lv = 0; lv < 3; lv++) {
        json_t *set = json_object_get(levels, level_keys[lv]);
        json_t *node = level_node(doc, lv);
        if (!set)
            continue;
        if (!json_is_object(node))
            return AHL_EINVAL;
        json_t *dicom = json_object_get(node, "DICOM");
        if (!dicom && json_object_set_new(node, "DICOM", dicom = json_object()) < 0)
            return AHL_ENOMEM;
        const char *k;
        json_t *v;
        json_object_foreach(set, k, v)
        {
            if (json_object_set_new(dicom, k, json_deep_copy(v)) < 0)
                return AHL_ENOMEM;
        }
    }
    return 0;
}

int ahl_mapping_set_apply(const struct ahl_mapping_set *s, json_t *doc, struct ahl_err *err)
{
    if (!s || !s->n)
        return 0;
    /* Copies: a mapping may restate StudyInstanceUID, which replaces the string in doc. */
    json_t *st = json_object_get(doc, "Study");
    const char *uid =
        json_string_value(json_object_get(json_object_get(st, "DICOM"), "StudyInstanceUID"));
    void *it = json_object_iter(json_object_get(st, "Series"));
    char study[AHL_MAPPING_UID_MAX + 1], series_buf[AHL_MAPPING_UID_MAX + 1];
    const char *series = NULL;
    if (!uid || ahl_str_copy(study, sizeof study, uid) < 0)
        return 0; /* no study, or one no mapping can name */
    if (it && ahl_str_copy(series_buf, sizeof series_buf, json_object_iter_key(it)) == 0)
        series = series_buf;
    /* Study mappings first, so that a study-and-series mapping overrides them. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < s->n; i++) {
            const struct entry *e = &s->v[i];
            if ((pass == 0) != !e->series || strcmp(e->study, study) != 0 ||
                (e->series && (!series || strcmp(e->series, series) != 0)))
                continue;
            if (!e->levels)
                return ahl_fail(err, AHL_EINVAL,
                                "the metadata file %.300s mapped to this %s "
                                "could not be used: %.300s",
                                e->file, e->series ? "series" : "study",
                                e->problem ? e->problem : "?");
            int rc = overlay(doc, e->levels);
            if (rc < 0)
                return rc == AHL_ENOMEM ? ahl_fail(err, rc, "out of memory")
                                        : ahl_fail(err, rc,
                                                   "the document has no %s level to "
                                                   "map the metadata file %.300s onto",
                                                   e->series ? "series" : "study", e->file);
        }
    }
    return 0;
}
