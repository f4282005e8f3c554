/* DICOMweb search (QIDO-RS) below /datastore/{datastoreId}: SearchDICOMStudies, SearchDICOMSeries
 * and SearchDICOMInstances (docs/dicomweb.md#search-qido-rs).
 *
 * The request's path and query become a store search (struct ahl_qido_query): each query
 * parameter naming an attribute (by keyword or by tag) is a filter whose form says how it matches
 * (a comma list of UIDs, a date or time range, '*' and '?' wildcards, a single value); limit,
 * offset, includefield and fuzzymatching shape the answer. Anything else, or a value the key
 * cannot take, is a 400 saying what was wrong: a search silently widened by an ignored filter
 * would answer another question. The rows come from the QIDO-RS index the engine keeps with
 * every committed version (store.h), so an update shows in the next search; the answer is a DICOM
 * JSON array (PS3.18 Annex F), 200 with [] when nothing matches.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/dicomweb_internal.h"
#include "base/text.h"
#include "dicom/dicomjson.h"
#include "dicom/dict.h"
#include "json/json.h"
#include "base/banned.h"

#define QIDO_VALUE_MAX 1024 /* bytes of one decoded query value */

/* How an attribute's value is read from a row. */
enum kind {
    V_STR,    /* text at off */
    V_PN,     /* PN text at off */
    V_MODS,   /* '\\'-separated CS values at off */
    V_U32,    /* uint32_t at off */
    V_U32NZ,  /* uint32_t at off, 0 = absent */
    V_SERNUM, /* the series number, when present */
    V_INSTNUM,
    V_WARNING,
    V_RETRIEVE, /* the level's RetrieveURL */
    V_ONLINE,   /* InstanceAvailability: always ONLINE */
};

#define S (1u << AHL_QIDO_STUDY)
#define E (1u << AHL_QIDO_SERIES)
#define I (1u << AHL_QIDO_INSTANCE)
#define OFF(f) offsetof(struct ahl_qido_row, f)

/* The attributes a search can match or return, in tag order (the order of the answer). def: the
 * levels answering it by default; avail: the levels that can answer it (includefield). */
static const struct qattr {
    uint32_t tag;
    const char *kw;
    char vr[3];
    int key; /* enum ahl_qido_key, or -1 */
    int kind;
    size_t off;
    unsigned def, avail;
} attrs[] = {
    {0x00080016, "SOPClassUID", "UI", AHL_QK_SOP_CLASS, V_STR, OFF(instance.sop_class_uid), I, I},
    {0x00080018, "SOPInstanceUID", "UI", AHL_QK_SOP_UID, V_STR, OFF(instance.sop_uid), I, I},
    {0x00080020, "StudyDate", "DA", AHL_QK_STUDY_DATE, V_STR, OFF(study.study_date), S, S},
    {0x00080021, "SeriesDate", "DA", AHL_QK_SERIES_DATE, V_STR, OFF(series.series_date), E, E | I},
    {0x00080030, "StudyTime", "TM", AHL_QK_STUDY_TIME, V_STR, OFF(study.study_time), S, S},
    {0x00080031, "SeriesTime", "TM", AHL_QK_SERIES_TIME, V_STR, OFF(series.series_time), E, E | I},
    {0x00080050, "AccessionNumber", "SH", AHL_QK_ACCESSION, V_STR, OFF(study.accession_number), S,
     S},
    {0x00080056, "InstanceAvailability", "CS", -1, V_ONLINE, 0, S | E | I, S | E | I},
    {0x00080060, "Modality", "CS", AHL_QK_MODALITY, V_STR, OFF(series.modality), E, E | I},
    {0x00080061, "ModalitiesInStudy", "CS", AHL_QK_MODALITIES, V_MODS, OFF(modalities_in_study), S,
     S},
    {0x00080090, "ReferringPhysicianName", "PN", AHL_QK_REFERRING, V_PN,
     OFF(study.referring_physician_name), S, S},
    {0x00081030, "StudyDescription", "LO", AHL_QK_STUDY_DESC, V_STR, OFF(study.study_description),
     S, S},
    {0x0008103E, "SeriesDescription", "LO", AHL_QK_SERIES_DESC, V_STR,
     OFF(series.series_description), E, E | I},
    {0x00081190, "RetrieveURL", "UR", -1, V_RETRIEVE, 0, S | E | I, S | E | I},
    {0x00081196, "WarningReason", "US", AHL_QK_WARNING_REASON, V_WARNING, 0, 0, I},
    {0x00100010, "PatientName", "PN", AHL_QK_PATIENT_NAME, V_PN, OFF(study.patient_name), S, S},
    {0x00100020, "PatientID", "LO", AHL_QK_PATIENT_ID, V_STR, OFF(study.patient_id), S, S},
    {0x00100030, "PatientBirthDate", "DA", AHL_QK_BIRTH_DATE, V_STR, OFF(study.patient_birth_date),
     S, S},
    {0x00100032, "PatientBirthTime", "TM", AHL_QK_BIRTH_TIME, V_STR, OFF(study.patient_birth_time),
     0, S},
    {0x00100040, "PatientSex", "CS", -1, V_STR, OFF(study.patient_sex), S, S},
    {0x00180015, "BodyPartExamined", "CS", AHL_QK_BODY_PART, V_STR, OFF(series.body_part_examined),
     0, E | I},
    {0x0020000D, "StudyInstanceUID", "UI", AHL_QK_STUDY_UID, V_STR, OFF(study.study_uid), S | E | I,
     S | E | I},
    {0x0020000E, "SeriesInstanceUID", "UI", AHL_QK_SERIES_UID, V_STR, OFF(series.series_uid), E | I,
     E | I},
    {0x00200010, "StudyID", "SH", AHL_QK_STUDY_ID, V_STR, OFF(study.study_id), S, S},
    {0x00200011, "SeriesNumber", "IS", AHL_QK_SERIES_NUMBER, V_SERNUM, 0, E, E | I},
    {0x00200013, "InstanceNumber", "IS", AHL_QK_INSTANCE_NUMBER, V_INSTNUM, 0, I, I},
    {0x00201206, "NumberOfStudyRelatedSeries", "IS", -1, V_U32, OFF(study_series), S, S},
    {0x00201208, "NumberOfStudyRelatedInstances", "IS", -1, V_U32, OFF(study_instances), S, S},
    {0x00201209, "NumberOfSeriesRelatedInstances", "IS", -1, V_U32, OFF(series.number_of_instances),
     E, E | I},
    {0x00280008, "NumberOfFrames", "IS", -1, V_U32NZ, OFF(instance.number_of_frames), I, I},
    {0x00280010, "Rows", "US", -1, V_U32NZ, OFF(instance.rows), I, I},
    {0x00280011, "Columns", "US", -1, V_U32NZ, OFF(instance.columns), I, I},
};
#define NATTRS (sizeof attrs / sizeof attrs[0])
_Static_assert(NATTRS <= sizeof((struct ahl__qido_request *)0)->include,
               "the request has a flag per attribute");

static const char *const level_names[] = {"studies", "series", "instances"};

/* ---- parsing --------------------------------------------------------------------------------- */

static void *keep(struct ahl__qido_request *r, void *p)
{
    if (!p)
        return NULL;
    if (r->nowned == sizeof r->owned / sizeof r->owned[0]) {
        free(p);
        return NULL;
    }
    return r->owned[r->nowned++] = p;
}

void ahl__qido_request_release(struct ahl__qido_request *r)
{
    for (unsigned i = 0; i < r->nowned; i++)
        free(r->owned[i]);
    r->nowned = 0;
}

static size_t seg(const char *p)
{
    return strcspn(p, "/");
}

static bool seg_eq(const char *p, size_t n, const char *w)
{
    return n == strlen(w) && !memcmp(p, w, n);
}

static bool is_uid(const char *p, size_t n)
{
    return n > 0 && n <= 64 && strspn(p, "0123456789.") >= n;
}

/* /datastore/{ds}/studies | /studies/{s}/series | /series | /studies/{s}/series/{se}/instances |
 * /studies/{s}/instances. false when the path is none of these (another resource). */
bool ahl__qido_path(const char *path)
{
    static const char pre[] = "/datastore/";
    if (strncmp(path, pre, sizeof pre - 1) != 0)
        return false;
    const char *p = path + sizeof pre - 1;
    p += seg(p);
    const char *segs[6];
    size_t lens[6];
    int n = 0;
    while (*p == '/' && n < 6) {
        p++;
        segs[n] = p;
        lens[n] = seg(p);
        p += lens[n++];
    }
    if (*p || n == 0)
        return false;
    const char *last = segs[n - 1];
    size_t ll = lens[n - 1];
    if (n == 1)
        return seg_eq(last, ll, "studies") || seg_eq(last, ll, "series");
    if (!seg_eq(segs[0], lens[0], "studies"))
        return false;
    if (n == 3)
        return seg_eq(last, ll, "series") || seg_eq(last, ll, "instances");
    return n == 5 && seg_eq(segs[2], lens[2], "series") && seg_eq(last, ll, "instances");
}

static int bad(struct ahl_err *err, const char *fmt, const char *a, const char *b)
{
    return ahl_fail(err, AHL_EINVAL, fmt, a, b);
}

static int parse_path(const char *path, struct ahl__qido_request *r, struct ahl_err *err)
{
    const char *p = path + strlen("/datastore/");
    size_t n = seg(p);
    if (n != AHL_ID_LEN || strspn(p, "0123456789abcdefghijklmnopqrstuvwxyz") < n)
        return ahl_fail(err, AHL_EINVAL,
                        "The data store id in the path is not 32 characters of [0-9a-z]");
    memcpy(r->ds, p, n);
    r->ds[n] = '\0';
    p += n + 1;
    /* The segments alternate level names and UIDs; the last is the level searched. */
    char *uids[] = {r->study, r->series};
    const char *what[] = {"StudyInstanceUID", "SeriesInstanceUID"};
    for (int depth = 0;; depth++) {
        n = seg(p);
        if (!p[n]) {
            r->q.level = seg_eq(p, n, "studies")  ? AHL_QIDO_STUDY
                         : seg_eq(p, n, "series") ? AHL_QIDO_SERIES
                                                  : AHL_QIDO_INSTANCE;
            return 0;
        }
        p += n + 1;
        n = seg(p);
        if (!is_uid(p, n))
            return ahl_fail(err, AHL_EINVAL,
                            "The %s in the path is not a UID (1 to 64 digits and dots)",
                            what[depth]);
        memcpy(uids[depth], p, n);
        uids[depth][n] = '\0';
        p += n + 1;
    }
}

/* The attribute a parameter name means: a keyword or 8 hex digits. NULL with *known set when
 * the dictionary knows it but a search cannot use it, unset when it is no attribute at all. */
static const struct qattr *attr_of(const char *name, bool *known)
{
    const struct ahl_dict_entry *d = NULL;
    *known = false;
    if (strlen(name) == 8 && strspn(name, "0123456789abcdefABCDEF") == 8) {
        uint32_t tag = (uint32_t)strtoul(name, NULL, 16);
        for (size_t i = 0; i < NATTRS; i++)
            if (attrs[i].tag == tag)
                return &attrs[i];
        d = ahl_dict_by_tag(tag);
    } else {
        for (size_t i = 0; i < NATTRS; i++)
            if (!strcmp(attrs[i].kw, name))
                return &attrs[i];
        d = ahl_dict_by_keyword(name);
    }
    *known = d != NULL;
    return NULL;
}

/* The decoded text of s[0..n), kept with the request. */
static int decode(struct ahl__qido_request *r, const char *s, size_t n, const char *what,
                  char **out, struct ahl_err *err)
{
    struct ahl_buf b;
    ahl_buf_init(&b, QIDO_VALUE_MAX + 1);
    int rc = ahl_percent_decode(s, n, &b);
    if (rc == 0)
        rc = ahl_buf_add(&b, "", 1);
    if (rc == 0 && strlen(b.data) + 1 != b.len)
        rc = AHL_EPARSE; /* a %00 */
    if (rc < 0) {
        ahl_buf_release(&b);
        if (rc == AHL_ENOMEM)
            return ahl_fail(err, rc, "out of memory");
        return ahl_fail(err, AHL_EINVAL,
                        rc == AHL_ETOOBIG ? "The query parameter %s is longer than 1024 bytes"
                                          : "The query parameter %s is not well percent-encoded "
                                            "(every %% followed by two hex digits, no %%00)",
                        what);
    }
    if (!(*out = keep(r, b.data))) /* keep has freed it */
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    return 0;
}

static int parse_uint(const char *v, unsigned max, const char *name, unsigned *out,
                      struct ahl_err *err)
{
    char *end;
    if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 9 || strtoul(v, &end, 10) > max)
        return ahl_fail(err, AHL_EINVAL, "%s must be a whole number from 0 to %u", name, max);
    *out = (unsigned)strtoul(v, &end, 10);
    return 0;
}

static int include_field(struct ahl__qido_request *r, char *v, struct ahl_err *err)
{
    for (char *f = v; f;) {
        char *comma = strchr(f, ',');
        if (comma)
            *comma = '\0';
        if (!strcmp(f, "all")) {
            r->include_all = true;
        } else {
            bool known;
            const struct qattr *a = attr_of(f, &known);
            if (a)
                r->include[a - attrs] = true;
            else if (!known)
                return bad(err,
                           "includefield: %.64s%s is not a DICOM attribute keyword or tag (8 hex "
                           "digits), nor 'all'",
                           f, "");
            /* A known attribute the index does not hold is not answered
             * (docs/dicomweb.md#search-qido-rs). */
        }
        f = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* Splits v at commas into a list kept with the request. */
static int split_list(struct ahl__qido_request *r, char *v, struct ahl_qido_filter *f,
                      const char *kw, struct ahl_err *err)
{
    unsigned n = 1;
    for (const char *p = v; *p; p++)
        n += *p == ',';
    if (n > AHL_QIDO_MAX_LIST)
        return bad(err, "%s: a list holds at most 256 values%s", kw, "");
    const char **list = keep(r, calloc(n, sizeof *list));
    if (!list)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    n = 0;
    for (char *p = v; p;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        list[n++] = p;
        p = comma ? comma + 1 : NULL;
    }
    f->match = AHL_QM_LIST;
    f->list = list;
    f->nlist = n;
    return 0;
}

/* One attribute filter: how its value matches, checked against what the key's VR allows. */
static int add_filter(struct ahl__qido_request *r, const struct qattr *a, char *v,
                      struct ahl_err *err)
{
    if (!*v || !strcmp(v, "*"))
        return 0; /* universal matching: every row */
    if (r->q.nf == AHL_QIDO_MAX_FILTERS)
        return bad(err, "Too many search keys%s%s", "", "");
    struct ahl_qido_filter *f = &r->q.f[r->q.nf];
    memset(f, 0, sizeof *f);
    f->key = a->key;
    f->match = AHL_QM_SINGLE;
    f->value = v;
    bool wild = strpbrk(v, "*?") != NULL;
    if (!strcmp(a->vr, "UI")) {
        int rc = split_list(r, v, f, a->kw, err);
        if (rc < 0)
            return rc;
        for (unsigned i = 0; i < f->nlist; i++)
            if (!is_uid(f->list[i], strlen(f->list[i])))
                return bad(err,
                           "%s: %.80s is not a UID (1 to 64 digits and dots); UIDs match exactly, "
                           "several separated by commas",
                           a->kw, f->list[i]);
        if (f->nlist == 1) {
            f->match = AHL_QM_SINGLE;
            f->value = f->list[0];
        }
    } else if (!strcmp(a->vr, "DA") || !strcmp(a->vr, "TM")) {
        bool da = a->vr[0] == 'D';
        char *dash = strchr(v, '-');
        if (dash) {
            *dash = '\0';
            f->match = AHL_QM_RANGE;
            f->lo = v;
            f->hi = dash + 1;
            if (strchr(f->hi, '-') || (!*f->lo && !*f->hi))
                return bad(err, "%s: a range is <from>-<to>, one dash, at most one end open%s",
                           a->kw, "");
        }
        const char *parts[] = {dash ? f->lo : v, dash ? f->hi : ""};
        for (int i = 0; i < (dash ? 2 : 1); i++) {
            const char *s = parts[i];
            bool ok = !*s  ? dash != NULL
                      : da ? strlen(s) == 8 && strspn(s, "0123456789") == 8
                           : strspn(s, "0123456789.:") == strlen(s) && s[0] != '.';
            if (!ok)
                return bad(err,
                           da ? "%s: %.80s is not a date (YYYYMMDD) or a range of dates "
                                "(YYYYMMDD-YYYYMMDD, either end open)"
                              : "%s: %.80s is not a time (HHMMSS.FFFFFF, shorter forms allowed) "
                                "or a range of times",
                           a->kw, s);
        }
    } else if (!strcmp(a->vr, "IS") || !strcmp(a->vr, "US")) {
        if (!*v || strspn(v, "-0123456789") != strlen(v) || strlen(v) > 11)
            return bad(err, "%s: %.80s is not an integer", a->kw, v);
    } else if (a->key == AHL_QK_MODALITY || a->key == AHL_QK_MODALITIES) {
        if (strchr(v, ',')) {
            if (wild)
                return bad(err, "%s: a list of values cannot hold wildcards (%.80s)", a->kw, v);
            int rc = split_list(r, v, f, a->kw, err);
            if (rc < 0)
                return rc;
        } else if (wild && a->key == AHL_QK_MODALITIES) {
            return bad(err, "%s: wildcards are not supported for this key (%.80s)", a->kw, v);
        } else if (wild) {
            f->match = AHL_QM_WILD;
        }
    } else if (wild) {
        f->match = AHL_QM_WILD;
    }
    r->q.nf++;
    return 0;
}

static int parse_query(const char *query, struct ahl__qido_request *r, struct ahl_err *err)
{
    bool seen[NATTRS] = {false}, have_limit = false, have_offset = false, have_fuzzy = false;
    unsigned params = 0;
    for (const char *q = query; q && *q;) {
        size_t n = strcspn(q, "&");
        if (n == 0) { /* an empty pair ("a=1&&b=2") */
            q++;
            continue;
        }
        if (++params > AHL__QIDO_MAX_PARAMS)
            return bad(err, "A search takes at most 64 query parameters%s%s", "", "");
        const char *eq = memchr(q, '=', n);
        size_t kn = eq ? (size_t)(eq - q) : n;
        int rc;
        char *name, *v = "";
        if ((rc = decode(r, q, kn, "name", &name, err)) < 0 ||
            (eq && (rc = decode(r, eq + 1, n - kn - 1, name, &v, err)) < 0))
            return rc;
        if (!*name) {
            /* "=value": no parameter */
        } else if (!strcmp(name, "limit") || !strcmp(name, "offset")) {
            bool lim = name[0] == 'l';
            if (lim ? have_limit : have_offset)
                return bad(err, "%s is given twice%s", name, "");
            if ((rc = parse_uint(v, lim ? AHL_QIDO_MAX_LIMIT : AHL_QIDO_MAX_OFFSET, name,
                                 lim ? &r->q.limit : &r->q.offset, err)) < 0)
                return rc;
            if (lim && r->q.limit == 0)
                return bad(err, "limit must be a whole number from 1 to 1000%s%s", "", "");
            *(lim ? &have_limit : &have_offset) = true;
        } else if (!strcmp(name, "includefield")) {
            if ((rc = include_field(r, v, err)) < 0)
                return rc;
        } else if (!strcmp(name, "fuzzymatching")) {
            if (have_fuzzy || (strcmp(v, "true") && strcmp(v, "false")))
                return bad(err, "fuzzymatching must be given once, as true or false%s%s", "", "");
            r->q.fuzzy = v[0] == 't';
            have_fuzzy = true;
        } else {
            bool known;
            const struct qattr *a = attr_of(name, &known);
            if (!a || a->key < 0 || !(ahl_qido_key_levels(a->key) & (1u << r->q.level))) {
                if (!known && !a)
                    return bad(err,
                               "Unknown query parameter %.64s: not limit, offset, includefield, "
                               "fuzzymatching, nor a DICOM attribute keyword or tag%s",
                               name, "");
                return bad(err,
                           "%.64s is not a search key of the %s resource "
                           "(docs/dicomweb.md#search-qido-rs lists the keys)",
                           name, level_names[r->q.level]);
            }
            if (seen[a - attrs])
                return bad(err, "%s is given twice; give one value, a list or a range%s", a->kw,
                           "");
            seen[a - attrs] = true;
            r->include[a - attrs] = true; /* matched keys are answered */
            if ((rc = add_filter(r, a, v, err)) < 0)
                return rc;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

/* The UIDs of the path as filters. */
static int path_filters(struct ahl__qido_request *r, struct ahl_err *err)
{
    const char *uids[] = {r->study, r->series};
    const int keys[] = {AHL_QK_STUDY_UID, AHL_QK_SERIES_UID};
    for (int i = 0; i < 2; i++) {
        if (!uids[i][0])
            continue;
        if (r->q.nf == AHL_QIDO_MAX_FILTERS)
            return bad(err, "Too many search keys%s%s", "", "");
        struct ahl_qido_filter *f = &r->q.f[r->q.nf++];
        memset(f, 0, sizeof *f);
        f->key = keys[i];
        f->match = AHL_QM_SINGLE;
        f->value = uids[i];
    }
    return 0;
}

int ahl__qido_parse(const char *path, const char *query, struct ahl__qido_request *r,
                    struct ahl_err *err)
{
    int rc;
    memset(r, 0, sizeof *r);
    r->q.limit = AHL_QIDO_MAX_LIMIT;
    if (!ahl__qido_path(path))
        return ahl_fail(err, AHL_ENOTFOUND, "No DICOMweb search resource at %.200s", path);
    if ((rc = parse_path(path, r, err)) < 0 || (rc = parse_query(query, r, err)) < 0 ||
        (rc = path_filters(r, err)) < 0)
        return rc;
    return 0;
}

/* ---- the answer ------------------------------------------------------------------------------ */

static int set_attr(json_t *obj, const struct qattr *a, json_t *value)
{
    char tag[9];
    snprintf(tag, sizeof tag, "%08X", a->tag);
    json_t *el = json_pack("{s:s}", "vr", a->vr);
    if (!el || (value && json_object_set_new(el, "Value", value) < 0)) {
        json_decref(el);
        json_decref(value);
        return -1;
    }
    return json_object_set_new(obj, tag, el);
}

struct answer {
    const struct ahl__qido_request *r;
    const char *base; /* http://host/datastore/<ds> */
    json_t *out;
};

static json_t *value_of(const struct answer *c, const struct qattr *a,
                        const struct ahl_qido_row *row)
{
    const char *text = (const char *)row + a->off;
    uint32_t u = 0;
    switch (a->kind) {
    case V_STR:
        return *text ? json_pack("[s]", text) : NULL;
    case V_PN:
        return *text ? json_pack("[o]", ahl_dicomjson_pn(text, strlen(text))) : NULL;
    case V_MODS: {
        json_t *arr = *text ? json_array() : NULL;
        for (const char *p = text; arr && *p;) {
            size_t n = strcspn(p, "\\");
            json_array_append_new(arr, json_stringn(p, n));
            p += n + (p[n] == '\\');
        }
        return arr;
    }
    case V_U32:
    case V_U32NZ:
        memcpy(&u, text, sizeof u);
        return a->kind == V_U32NZ && !u ? NULL : json_pack("[I]", (json_int_t)u);
    case V_SERNUM:
        return row->series.has_series_number ? json_pack("[i]", row->series.series_number) : NULL;
    case V_INSTNUM:
        return row->instance.has_instance_number ? json_pack("[i]", row->instance.instance_number)
                                                 : NULL;
    case V_WARNING:
        return row->instance.has_warning_reason
                   ? json_pack("[I]", (json_int_t)row->instance.warning_reason)
                   : NULL;
    case V_ONLINE:
        return json_pack("[s]", "ONLINE");
    case V_RETRIEVE: {
        char url[512];
        int level = c->r->q.level;
        if (level == AHL_QIDO_STUDY)
            snprintf(url, sizeof url, "%s/studies/%s", c->base, row->study.study_uid);
        else if (level == AHL_QIDO_SERIES)
            snprintf(url, sizeof url, "%s/studies/%s/series/%s", c->base, row->study.study_uid,
                     row->series.series_uid);
        else
            snprintf(url, sizeof url, "%s/studies/%s/series/%s/instances/%s", c->base,
                     row->study.study_uid, row->series.series_uid, row->instance.sop_uid);
        return json_pack("[s]", url);
    }
    }
    return NULL;
}

static int add_row(void *ctx, const struct ahl_qido_row *row)
{
    struct answer *c = ctx;
    unsigned lv = 1u << c->r->q.level;
    json_t *obj = json_object();
    if (!obj)
        return AHL_ENOMEM;
    for (size_t i = 0; i < NATTRS; i++) {
        const struct qattr *a = &attrs[i];
        if (!(a->avail & lv) || !((a->def & lv) || c->r->include_all || c->r->include[i]))
            continue;
        if (set_attr(obj, a, value_of(c, a, row)) < 0) {
            json_decref(obj);
            return AHL_ENOMEM;
        }
    }
    return json_array_append_new(c->out, obj) < 0 ? AHL_ENOMEM : 0;
}

int ahl__dicomweb_qido(struct ahl_api_service *svc, struct ahl__dicomweb_request *rq,
                       struct ahl_api_resp *resp, struct ahl_err *err)
{
    struct ahl__qido_request *r = calloc(1, sizeof *r);
    struct ahl_store_tx *tx = NULL;
    char base[512];
    struct answer c = {.r = r, .base = base};
    int rc;
    if (!r)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    if ((rc = ahl__qido_parse(rq->path, rq->query, r, err)) < 0 ||
        (rc = ahl__api_require_datastore(svc, r->ds, NULL, err)) < 0)
        goto out;
    snprintf(base, sizeof base, "http://%s/datastore/%s", ahl__dicomweb_host(rq->host), r->ds);
    if (!(c.out = json_array())) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = ahl_store_begin(svc->store, false, &tx)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "searching");
        goto out;
    }
    rc = ahl_store_qido_query(tx, r->ds, &r->q, add_row, &c);
    ahl_store_rollback(tx);
    if (rc == AHL_EINVAL) {
        rc = ahl_fail(err, rc,
                      "The search cannot be run as asked (a key with a value it cannot "
                      "take); docs/dicomweb.md#search-qido-rs");
        goto out;
    }
    if (rc < 0) {
        rc = ahl_meta_store_fail(err, rc, "searching");
        goto out;
    }
    rc = ahl__dicomweb_answer_json(c.out, rq, resp, err);
out:
    json_decref(c.out);
    ahl__qido_request_release(r);
    free(r);
    return rc;
}
