/* Import grouping decisions (see group.h): the primary-set key of an instance, the fingerprint of
 * its grouping elements, the consistency comparison with a candidate primary set, and the
 * import-time length limits. */
#include "import/group.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/codec.h"
#include "base/banned.h"

/* The grouping elements in the order HealthImaging documents them. */
static const struct {
    enum ahl_level level;
    const char *keyword;
} grouping[] = {
    {AHL_LEVEL_STUDY, "StudyDate"},     {AHL_LEVEL_STUDY, "AccessionNumber"},
    {AHL_LEVEL_PATIENT, "PatientID"},   {AHL_LEVEL_STUDY, "StudyInstanceUID"},
    {AHL_LEVEL_STUDY, "StudyID"},       {AHL_LEVEL_SERIES, "SeriesInstanceUID"},
    {AHL_LEVEL_SERIES, "SeriesNumber"},
};
#define NGROUPING (sizeof grouping / sizeof grouping[0])

/* The Patient, Study and Series DICOM objects of a document (NULL when absent). */
struct levels {
    const json_t *patient, *study, *series;
    const char *series_uid;
};

static const json_t *dicom_of(const json_t *node)
{
    const json_t *d = json_is_object(node) ? json_object_get(node, "DICOM") : NULL;
    return json_is_object(d) ? d : NULL;
}

static const json_t *at_level(const struct levels *lv, enum ahl_level level)
{
    switch (level) {
    case AHL_LEVEL_PATIENT:
        return lv->patient;
    case AHL_LEVEL_STUDY:
        return lv->study;
    case AHL_LEVEL_SERIES:
        return lv->series;
    default:
        return NULL;
    }
}

/* Splits a single-instance document into its levels. */
static int single_instance(const json_t *doc, struct levels *lv, struct ahl_err *err)
{
    memset(lv, 0, sizeof *lv);
    if (!json_is_object(doc))
        return ahl_fail(err, AHL_EINVAL, "instance document: must be a JSON object");
    const json_t *study = json_object_get(doc, "Study");
    const json_t *series = json_is_object(study) ? json_object_get(study, "Series") : NULL;
    if (!json_is_object(series) || json_object_size(series) != 1)
        return ahl_fail(err, AHL_EINVAL,
                        "instance document: Study.Series must hold exactly one series");
    void *it = json_object_iter((json_t *)series);
    const json_t *snode = json_object_iter_value(it);
    const json_t *insts = json_is_object(snode) ? json_object_get(snode, "Instances") : NULL;
    if (!json_is_object(insts) || json_object_size(insts) != 1)
        return ahl_fail(err, AHL_EINVAL,
                        "instance document: the series must hold exactly one instance");
    lv->patient = dicom_of(json_object_get(doc, "Patient"));
    lv->study = dicom_of(study);
    lv->series = dicom_of(snode);
    lv->series_uid = json_object_iter_key(it);
    return 0;
}

/* A string value without its trailing padding. */
static size_t trimmed_len(const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\0'))
        n--;
    return n;
}

/* Empty: absent, null, or a string of padding only. */
static bool is_empty(const json_t *v)
{
    if (!v || json_is_null(v))
        return true;
    if (json_is_string(v))
        return trimmed_len(json_string_value(v), json_string_length(v)) == 0;
    return false;
}

/* Equality as group.h defines it. Arrays recurse one level per nesting of the documents the
 * normalizer wrote; sequence items compare with json_equal. */
static bool values_equal(const json_t *a, const json_t *b)
{
    if (is_empty(a) || is_empty(b))
        return is_empty(a) && is_empty(b);
    if (json_is_string(a) && json_is_string(b)) {
        size_t na = trimmed_len(json_string_value(a), json_string_length(a));
        size_t nb = trimmed_len(json_string_value(b), json_string_length(b));
        return na == nb && memcmp(json_string_value(a), json_string_value(b), na) == 0;
    }
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++) {
            const json_t *x = json_array_get(a, i), *y = json_array_get(b, i);
            if (json_is_object(x) || json_is_object(y)) {
                if (!json_equal((json_t *)x, (json_t *)y))
                    return false;
            } else if (json_is_array(x) || json_is_array(y)) {
                if (!json_equal((json_t *)x, (json_t *)y))
                    return false;
            } else if (!values_equal(x, y)) {
                return false;
            }
        }
        return true;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

/* Appends the normalized text of a grouping value: trimmed strings, array values joined by
 * backslashes, numbers as JSON, empty as "". */
static int add_normalized(struct ahl_buf *b, const json_t *v)
{
    if (is_empty(v))
        return 0;
    if (json_is_string(v))
        return ahl_buf_add(b, json_string_value(v),
                           trimmed_len(json_string_value(v), json_string_length(v)));
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach((json_t *)v, i, x)
        {
            int rc = (i ? ahl_buf_addc(b, '\\') : 0);
            if (rc == 0 && !json_is_array(x) && !json_is_object(x))
                rc = add_normalized(b, x);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!text)
        return AHL_ENOMEM;
    int rc = ahl_buf_adds(b, text);
    free(text);
    return rc;
}

static int require_uid(const struct levels *lv, enum ahl_level level, const char *kw,
                       struct ahl_err *err)
{
    const json_t *d = at_level(lv, level);
    const json_t *v = d ? json_object_get(d, kw) : NULL;
    if (!json_is_string(v) || is_empty(v))
        return ahl_fail(err, AHL_EINVAL, "DICOM attribute %s does not exist", kw);
    return 0;
}

static int hash_fields(const struct levels *lv, bool all, char out[AHL_GROUP_KEY_LEN + 1],
                       struct ahl_err *err)
{
    struct ahl_buf b;
    int rc = 0;
    ahl_buf_init(&b, 1 << 16);
    for (size_t i = 0; i < NGROUPING; i++) {
        bool uid = strcmp(grouping[i].keyword, "StudyInstanceUID") == 0 ||
                   strcmp(grouping[i].keyword, "SeriesInstanceUID") == 0;
        if (!all && !uid)
            continue;
        const json_t *d = at_level(lv, grouping[i].level);
        if ((rc = ahl_buf_adds(&b, grouping[i].keyword)) < 0 || (rc = ahl_buf_addc(&b, '=')) < 0 ||
            (rc = add_normalized(&b, d ? json_object_get(d, grouping[i].keyword) : NULL)) < 0 ||
            (rc = ahl_buf_addc(&b, '\n')) < 0)
            goto out;
    }
    ahl_sha256_hex(b.data, b.len, out);
out:
    ahl_buf_release(&b);
    if (rc < 0)
        return ahl_fail(err, rc, "grouping elements: %s", ahl_strerror(rc));
    return 0;
}

/* The key (the two UIDs) or the fingerprint (all grouping elements) of an instance document. */
static int instance_hash(const json_t *instance_doc, bool all, char out[AHL_GROUP_KEY_LEN + 1],
                         struct ahl_err *err)
{
    struct levels lv;
    int rc = single_instance(instance_doc, &lv, err);
    if (rc == 0)
        rc = require_uid(&lv, AHL_LEVEL_STUDY, "StudyInstanceUID", err);
    if (rc == 0)
        rc = require_uid(&lv, AHL_LEVEL_SERIES, "SeriesInstanceUID", err);
    if (rc == 0)
        rc = hash_fields(&lv, all, out, err);
    return rc;
}

int ahl_group_key(const json_t *instance_doc, char out[AHL_GROUP_KEY_LEN + 1], struct ahl_err *err)
{
    return instance_hash(instance_doc, false, out, err);
}

int ahl_group_fingerprint(const json_t *instance_doc, char out[AHL_GROUP_KEY_LEN + 1],
                          struct ahl_err *err)
{
    return instance_hash(instance_doc, true, out, err);
}

/* ---- comparison -------------------------------------------------------------------------- */

/* JSON text of v shortened to fit n bytes, cut on a UTF-8 boundary, "absent" for NULL. */
static void show_value(const json_t *v, char *out, size_t n)
{
    if (!v) {
        snprintf(out, n, "absent");
        return;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!text) {
        snprintf(out, n, "?");
        return;
    }
    size_t len = strlen(text);
    if (len < n) {
        memcpy(out, text, len + 1);
    } else {
        size_t cut = n - 4;
        while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
            cut--;
        memcpy(out, text, cut);
        memcpy(out + cut, "...", 4);
    }
    free(text);
}

static int conflict(struct ahl_group_diff *diff, enum ahl_level level, const char *attr,
                    const json_t *cand, const json_t *inst)
{
    if (!diff)
        return AHL_GROUP_CONFLICT;
    diff->level = level;
    snprintf(diff->attribute, sizeof diff->attribute, "%s", attr);
    show_value(cand, diff->candidate, sizeof diff->candidate);
    show_value(inst, diff->instance, sizeof diff->instance);
    snprintf(diff->message, sizeof diff->message,
             "%s-level attribute %s of the instance (%s) differs from the primary image set (%s)",
             ahl_level_name(level), diff->attribute, diff->instance, diff->candidate);
    return AHL_GROUP_CONFLICT;
}

static bool is_grouping(const char *kw)
{
    for (size_t i = 0; i < NGROUPING; i++)
        if (strcmp(kw, grouping[i].keyword) == 0)
            return true;
    return false;
}

int ahl_group_compare(const json_t *candidate_doc, const json_t *instance_doc,
                      struct ahl_group_diff *diff, struct ahl_err *err)
{
    struct levels in;
    int rc = single_instance(instance_doc, &in, err);
    if (rc < 0)
        return rc;
    if (diff)
        memset(diff, 0, sizeof *diff);
    if (!json_is_object(candidate_doc))
        return ahl_fail(err, AHL_EINVAL, "candidate image set: must be a JSON object");
    const json_t *cstudy = json_object_get(candidate_doc, "Study");
    const json_t *cseries_map = json_is_object(cstudy) ? json_object_get(cstudy, "Series") : NULL;
    if (cseries_map && !json_is_object(cseries_map))
        return ahl_fail(err, AHL_EINVAL, "candidate image set: Study.Series must be a JSON object");
    const json_t *cseries_node = cseries_map ? json_object_get(cseries_map, in.series_uid) : NULL;
    struct levels cand = {
        .patient = dicom_of(json_object_get(candidate_doc, "Patient")),
        .study = dicom_of(cstudy),
        .series = dicom_of(cseries_node),
    };

    /* Grouping elements, study level first; then the series itself must be there. */
    for (size_t i = 0; i < NGROUPING; i++) {
        if (grouping[i].level == AHL_LEVEL_SERIES && !json_is_object(cseries_node)) {
            const json_t *uid = in.series ? json_object_get(in.series, "SeriesInstanceUID") : NULL;
            return conflict(diff, AHL_LEVEL_SERIES, "SeriesInstanceUID", NULL, uid);
        }
        const json_t *c = json_object_get(at_level(&cand, grouping[i].level), grouping[i].keyword);
        const json_t *v = json_object_get(at_level(&in, grouping[i].level), grouping[i].keyword);
        if (!values_equal(c, v))
            return conflict(diff, grouping[i].level, grouping[i].keyword, c, v);
    }

    /* The rest of the normalized Patient, Study and Series attributes. */
    static const enum ahl_level levels[] = {AHL_LEVEL_PATIENT, AHL_LEVEL_STUDY, AHL_LEVEL_SERIES};
    for (size_t l = 0; l < 3; l++) {
        const json_t *idicom = at_level(&in, levels[l]), *cdicom = at_level(&cand, levels[l]);
        if (!idicom || !cdicom)
            continue;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)idicom, k, v)
        {
            if (is_grouping(k))
                continue;
            const json_t *c = json_object_get(cdicom, k);
            if (c && !values_equal(c, v))
                return conflict(diff, levels[l], k, c, v);
        }
    }
    return AHL_GROUP_CONSISTENT;
}

/* ---- import limits ------------------------------------------------------------------------- */

static const struct {
    const char *keyword;
    size_t max;
} length_limits[] = {
    {"PatientName", 256},      {"PatientID", 256},        {"PatientBirthDate", 18},
    {"PatientSex", 16},        {"StudyInstanceUID", 256}, {"StudyID", 256},
    {"StudyDescription", 256}, {"AccessionNumber", 256},  {"StudyDate", 18},
    {"StudyTime", 28},         {"SOPInstanceUID", 256},   {"SeriesInstanceUID", 256},
};

#define MAX_STUDY_RELATED 1000000

/* Bytes of a value as DICOM would hold it: strings as they are, arrays joined by one separator. */
static size_t value_bytes(const json_t *v)
{
    if (json_is_string(v))
        return json_string_length(v);
    if (!json_is_array(v))
        return 0;
    size_t n = 0, i;
    json_t *x;
    json_array_foreach((json_t *)v, i, x)
    {
        n += (i ? 1 : 0) + (json_is_string(x) ? json_string_length(x) : 0);
    }
    return n;
}

/* A count as the document holds it: an IS string (padding allowed) or a JSON integer. -1 when
 * the value is not a plain integer (the VR check reports that elsewhere). */
static long long count_of(const json_t *v)
{
    if (json_is_array(v) && json_array_size(v) == 1)
        v = json_array_get(v, 0);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (!json_is_string(v))
        return -1;
    const char *s = json_string_value(v);
    char *end;
    while (*s == ' ')
        s++;
    if (*s == '\0')
        return -1;
    long long n = strtoll(s, &end, 10);
    while (*end == ' ')
        end++;
    return *end == '\0' ? n : -1;
}

static int check_dicom_limits(const json_t *dicom, struct ahl_err *err)
{
    if (!json_is_object(dicom))
        return 0;
    for (size_t i = 0; i < sizeof length_limits / sizeof length_limits[0]; i++) {
        const json_t *v = json_object_get(dicom, length_limits[i].keyword);
        size_t n = v ? value_bytes(v) : 0;
        if (n > length_limits[i].max)
            return ahl_fail(err, AHL_EINVAL,
                            "DICOM attribute %s is %zu bytes long; the maximum is %zu",
                            length_limits[i].keyword, n, length_limits[i].max);
    }
    static const char *const counts[] = {"NumberOfStudyRelatedSeries",
                                         "NumberOfStudyRelatedInstances"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(dicom, counts[i]);
        long long n = v ? count_of(v) : -1;
        if (n > MAX_STUDY_RELATED)
            return ahl_fail(err, AHL_EINVAL, "DICOM attribute %s is %lld; the maximum is %d",
                            counts[i], n, MAX_STUDY_RELATED);
    }
    return 0;
}

int ahl_group_check_limits(const json_t *doc, struct ahl_err *err)
{
    int rc;
    if (!json_is_object(doc))
        return ahl_fail(err, AHL_EINVAL, "document: must be a JSON object");
    const json_t *study = json_object_get(doc, "Study");
    if ((rc = check_dicom_limits(dicom_of(json_object_get(doc, "Patient")), err)) < 0 ||
        (rc = check_dicom_limits(dicom_of(study), err)) < 0)
        return rc;
    const json_t *series = json_is_object(study) ? json_object_get(study, "Series") : NULL;
    if (!json_is_object(series))
        return 0;
    const char *suid;
    json_t *snode;
    json_object_foreach((json_t *)series, suid, snode)
    {
        if ((rc = check_dicom_limits(dicom_of(snode), err)) < 0)
            return rc;
        const json_t *insts = json_is_object(snode) ? json_object_get(snode, "Instances") : NULL;
        if (!json_is_object(insts))
            continue;
        const char *iuid;
        json_t *inode;
        json_object_foreach((json_t *)insts, iuid, inode)
        {
            if ((rc = check_dicom_limits(dicom_of(inode), err)) < 0)
                return rc;
        }
    }
    return 0;
}
