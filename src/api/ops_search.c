/* SearchImageSets: filters (ANDed), sort and paging over the per-image-set search rows.
 *
 * Filters, as the model and the API reference allow them:
 *   EQUAL   with one value: DICOMPatientId, DICOMAccessionNumber, DICOMStudyId,
 *           DICOMStudyInstanceUID, DICOMSeriesInstanceUID, isPrimary, and (exact instant)
 *           createdAt, updatedAt, DICOMStudyDateAndTime;
 *   BETWEEN with two values of the same attribute: createdAt, updatedAt, DICOMStudyDateAndTime,
 *           bounds inclusive, (lowerBound, upperBound).
 * Anything else is a ValidationException that says which rule was broken. String matches are
 * exact and case-sensitive. A DICOMStudyDateAndTime without DICOMStudyTime means 00:00:00 of that
 * date. Deleted image sets are never returned; LOCKED ones are. The default order is updatedAt
 * descending; ties are broken by image set id so that paging is stable.
 *
 * The store interface offers the search rows one image set at a time (ahl_store_search_get), so
 * the matching here walks the data store's image sets; see the report of this module for the
 * indexed query the store should grow (ahl_store_search_query).
 */
#include "api/internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/banned.h"

#define SEARCH_DEFAULT_MAX 50
#define SEARCH_MAX_MATCHES 1000000
#define NOMEM(err) ahl_fail(err, AHL_ENOMEM, AHL_AWS_INTERNAL, "out of memory")

enum attr {
    A_PATIENT_ID,
    A_ACCESSION,
    A_STUDY_ID,
    A_STUDY_UID,
    A_SERIES_UID,
    A_CREATED,
    A_UPDATED,
    A_STUDY_DT,
    A_PRIMARY,
};

static const char *const attr_names[] = {
    "DICOMPatientId",
    "DICOMAccessionNumber",
    "DICOMStudyId",
    "DICOMStudyInstanceUID",
    "DICOMSeriesInstanceUID",
    "createdAt",
    "updatedAt",
    "DICOMStudyDateAndTime",
    "isPrimary",
};

struct filter {
    enum attr attr;
    int between;
    char s[2][513]; /* string values, or study date-time keys */
    int64_t t[2];   /* timestamps in ms */
    int b;          /* isPrimary */
};

struct hit {
    char id[AHL_ID_LEN + 1];
    int64_t created, updated;
    char dt[24]; /* study date-time key */
};

struct search {
    struct ahl_store_tx *tx;
    const char *datastore_id;
    struct filter filters[2];
    size_t nfilters;
    struct hit *hits;
    size_t n, cap;
    int overflow;
    char last_id[AHL_ID_LEN + 1];
    unsigned page_seen;
};

/* "YYYYMMDD" + "HHMMSS" + "FFFFFF": comparable as a string. Returns -1 if date is not 8 digits
 * or time has anything but digits, ':' separators and one '.'. */
static int study_dt_key(const char *date, const char *time, char out[24])
{
    if (strlen(date) != 8)
        return -1;
    for (int i = 0; i < 8; i++)
        if (date[i] < '0' || date[i] > '9')
            return -1;
    char hms[7] = "000000", frac[7] = "000000";
    size_t nh = 0, nf = 0;
    int in_frac = 0;
    for (const char *p = time ? time : ""; *p; p++) {
        if (*p == ':' || (*p == ' ' && !p[1]))
            continue;
        if (*p == '.' && !in_frac) {
            in_frac = 1;
            continue;
        }
        if (*p < '0' || *p > '9')
            return -1;
        if (!in_frac && nh < 6)
            hms[nh++] = *p;
        else if (in_frac && nf < 6)
            frac[nf++] = *p;
        else
            return -1;
    }
    snprintf(out, 24, "%s%s%s", date, hms, frac);
    return 0;
}

static int parse_filter(const json_t *f, size_t idx, struct filter *out, struct ahl_err *err)
{
    const json_t *values = json_object_get(f, "values");
    const char *op = ahl_api_str(f, "operator");
    size_t nv = json_array_size(values);
    int attr = -1;
    memset(out, 0, sizeof *out);
    out->between = !strcmp(op, "BETWEEN");
    for (size_t i = 0; i < nv; i++) {
        const json_t *v = json_array_get(values, i);
        const char *key = json_object_iter_key(json_object_iter((json_t *)v));
        int a = -1;
        for (size_t k = 0; k < sizeof attr_names / sizeof *attr_names; k++)
            if (!strcmp(key, attr_names[k]))
                a = (int)k;
        if (attr >= 0 && a != attr)
            return ahl_fail(err, AHL_EINVAL, AHL_AWS_VALIDATION,
                            "searchCriteria.filters.%zu.member.values: both values must name the "
                            "same attribute (%s and %s)",
                            idx + 1, attr_names[attr], key);
        attr = a;
        const json_t *x = json_object_get(v, key);
        switch ((enum attr)a) {
        case A_CREATED:
        case A_UPDATED:
            out->t[i] = ahl_api_timestamp_ms(x);
            break;
        case A_STUDY_DT:
            if (study_dt_key(ahl_api_str(x, "DICOMStudyDate"), ahl_api_str(x, "DICOMStudyTime"),
                             out->s[i]) < 0)
                return ahl_fail(err, AHL_EINVAL, AHL_AWS_VALIDATION,
                                "searchCriteria.filters.%zu.member.values.%zu.member."
                                "DICOMStudyDateAndTime: DICOMStudyDate must be YYYYMMDD and "
                                "DICOMStudyTime HHMMSS[.FFFFFF]",
                                idx + 1, i + 1);
            break;
        case A_PRIMARY:
            out->b = json_is_true(x);
            break;
        default:
            snprintf(out->s[i], sizeof out->s[i], "%s", json_string_value(x));
            break;
        }
    }
    out->attr = (enum attr)attr;
    if (out->between) {
        if (nv != 2)
            return ahl_fail(err, AHL_EINVAL, AHL_AWS_VALIDATION,
                            "searchCriteria.filters.%zu.member: BETWEEN takes exactly two values "
                            "(lowerBound, upperBound)",
                            idx + 1);
        if (attr != A_CREATED && attr != A_UPDATED && attr != A_STUDY_DT)
            return ahl_fail(err, AHL_EINVAL, AHL_AWS_VALIDATION,
                            "searchCriteria.filters.%zu.member: BETWEEN applies to createdAt, "
                            "updatedAt and DICOMStudyDateAndTime, not %s",
                            idx + 1, attr_names[attr]);
    } else if (nv != 1) {
        return ahl_fail(err, AHL_EINVAL, AHL_AWS_VALIDATION,
                        "searchCriteria.filters.%zu.member: EQUAL takes exactly one value",
                        idx + 1);
    }
    return 0;
}

static int str_match(const struct filter *f, const char *v)
{
    return strcmp(f->s[0], v) == 0;
}

static int matches(const struct search *s, const struct ahl_search_row *r, const char *dt)
{
    for (size_t i = 0; i < s->nfilters; i++) {
        const struct filter *f = &s->filters[i];
        int ok = 0;
        switch (f->attr) {
        case A_PATIENT_ID:
            ok = str_match(f, r->patient_id);
            break;
        case A_ACCESSION:
            ok = str_match(f, r->accession_number);
            break;
        case A_STUDY_ID:
            ok = str_match(f, r->study_id);
            break;
        case A_STUDY_UID:
            ok = str_match(f, r->study_instance_uid);
            break;
        case A_SERIES_UID:
            ok = str_match(f, r->series_instance_uid);
            break;
        case A_PRIMARY:
            ok = r->is_primary == (f->b != 0);
            break;
        case A_CREATED:
        case A_UPDATED: {
            int64_t t = f->attr == A_CREATED ? r->created_at_ms : r->updated_at_ms;
            ok = f->between ? (t >= f->t[0] && t <= f->t[1]) : t == f->t[0];
            break;
        }
        case A_STUDY_DT:
            ok = dt[0] && (f->between ? (strcmp(dt, f->s[0]) >= 0 && strcmp(dt, f->s[1]) <= 0)
                                      : strcmp(dt, f->s[0]) == 0);
            break;
        }
        if (!ok)
            return 0;
    }
    return 1;
}

static int visit_set(void *ctx, const struct ahl_imageset_rec *set)
{
    struct search *s = ctx;
    struct ahl_search_row row;
    char dt[24] = "";
    memcpy(s->last_id, set->id, sizeof s->last_id);
    s->page_seen++;
    if (!strcmp(set->state, "DELETED"))
        return 0;
    int rc = ahl_store_search_get(s->tx, set->id, &row);
    if (rc == AHL_ENOTFOUND)
        return 0; /* a set still being created has no search row yet */
    if (rc < 0)
        return rc;
    if (row.study_date[0] && study_dt_key(row.study_date, row.study_time, dt) < 0)
        dt[0] = '\0';
    if (!matches(s, &row, dt))
        return 0;
    if (s->n == SEARCH_MAX_MATCHES) {
        s->overflow = 1;
        return 1;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        struct hit *h = realloc(s->hits, cap * sizeof *h);
        if (!h)
            return AHL_ENOMEM;
        s->hits = h;
        s->cap = cap;
    }
    struct hit *h = &s->hits[s->n++];
    memcpy(h->id, set->id, sizeof h->id);
    h->created = row.created_at_ms;
    h->updated = row.updated_at_ms;
    memcpy(h->dt, dt, sizeof h->dt);
    return 0;
}

static int g_sort_field; /* set under qsort only; see sort_hits */
static int g_sort_desc;

static int cmp_hits(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    int c = 0;
    if (g_sort_field == 0)
        c = (x->updated > y->updated) - (x->updated < y->updated);
    else if (g_sort_field == 1)
        c = (x->created > y->created) - (x->created < y->created);
    else
        c = strcmp(x->dt, y->dt);
    if (g_sort_desc)
        c = -c;
    return c ? c : strcmp(x->id, y->id);
}

/* qsort has no context argument in C11; the comparison settings are process-wide, so sorting is
 * serialised. */
static pthread_mutex_t g_sort_lock = PTHREAD_MUTEX_INITIALIZER;

static void sort_hits(struct hit *h, size_t n, int field, int desc)
{
    if (n < 2)
        return; /* h may be NULL when nothing matched */
    pthread_mutex_lock(&g_sort_lock);
    g_sort_field = field;
    g_sort_desc = desc;
    qsort(h, n, sizeof *h, cmp_hits);
    pthread_mutex_unlock(&g_sort_lock);
}

static int add_tag_str(json_t *tags, const char *key, const char *v)
{
    return ahl__api_set_str_opt(tags, key, v);
}

static json_t *summary(const struct ahl_search_row *r)
{
    json_t *o = json_object(), *tags = json_object();
    int rc = (!o || !tags) ? AHL_ENOMEM : 0;
    if (rc == 0) {
        rc |= ahl__api_set(o, "imageSetId", json_string(r->imageset_id));
        rc |= ahl__api_set(o, "version", json_integer((json_int_t)r->version));
        rc |= ahl__api_set_ts_opt(o, "createdAt", r->created_at_ms);
        rc |= ahl__api_set_ts_opt(o, "updatedAt", r->updated_at_ms);
        rc |= ahl__api_set(o, "storageTier", json_string("FREQUENT_ACCESS"));
        rc |= add_tag_str(tags, "DICOMPatientId", r->patient_id);
        rc |= add_tag_str(tags, "DICOMPatientName", r->patient_name);
        rc |= add_tag_str(tags, "DICOMPatientBirthDate", r->patient_birth_date);
        rc |= add_tag_str(tags, "DICOMPatientSex", r->patient_sex);
        rc |= add_tag_str(tags, "DICOMStudyInstanceUID", r->study_instance_uid);
        rc |= add_tag_str(tags, "DICOMStudyId", r->study_id);
        rc |= add_tag_str(tags, "DICOMStudyDescription", r->study_description);
        rc |= ahl__api_set(tags, "DICOMNumberOfStudyRelatedSeries",
                           json_integer(r->number_of_series));
        rc |= ahl__api_set(tags, "DICOMNumberOfStudyRelatedInstances",
                           json_integer(r->number_of_instances));
        rc |= add_tag_str(tags, "DICOMAccessionNumber", r->accession_number);
        rc |= add_tag_str(tags, "DICOMSeriesInstanceUID", r->series_instance_uid);
        rc |= add_tag_str(tags, "DICOMSeriesModality", r->modality);
        rc |= add_tag_str(tags, "DICOMSeriesBodyPart", r->body_part_examined);
        if (r->has_series_number)
            rc |= ahl__api_set(tags, "DICOMSeriesNumber", json_integer(r->series_number));
        rc |= add_tag_str(tags, "DICOMStudyDate", r->study_date);
        rc |= add_tag_str(tags, "DICOMStudyTime", r->study_time);
        rc |= ahl__api_set(o, "DICOMTags", tags);
        tags = NULL;
        rc |= ahl__api_set(o, "isPrimary", json_boolean(r->is_primary));
    }
    json_decref(tags);
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int ahl__op_SearchImageSets(struct ahl_api_service *svc, const json_t *in,
                            struct ahl_api_resp *resp, struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId");
    const json_t *criteria = json_object_get(in, "searchCriteria");
    const json_t *filters = json_object_get(criteria, "filters");
    const json_t *sort = json_object_get(criteria, "sort");
    const char *token = ahl_api_str(in, "nextToken");
    unsigned limit = (unsigned)ahl_api_int(in, "maxResults", SEARCH_DEFAULT_MAX);
    struct search s = {.datastore_id = ds};
    char pos[32];
    size_t offset = 0;
    int rc;

    if (token) {
        char *end;
        if ((rc = ahl__api_token_decode("s", token, pos, sizeof pos, err)) < 0)
            return rc;
        offset = strtoul(pos, &end, 10);
        if (*end || !*pos)
            return ahl_fail(err, AHL_EINVAL, AHL_AWS_VALIDATION,
                            "Invalid nextToken: it was not returned by this operation");
    }
    for (size_t i = 0; i < json_array_size(filters); i++)
        if ((rc = parse_filter(json_array_get(filters, i), i, &s.filters[s.nfilters++], err)) < 0)
            return rc;
    int field = 0, desc = 1;
    if (sort) {
        const char *sf = ahl_api_str(sort, "sortField");
        field = !strcmp(sf, "updatedAt") ? 0 : !strcmp(sf, "createdAt") ? 1 : 2;
        desc = !strcmp(ahl_api_str(sort, "sortOrder"), "DESC");
    }
    if ((rc = ahl__api_require_datastore(svc, ds, NULL, err)) < 0)
        return rc;

    if ((rc = ahl_store_begin(svc->store, false, &s.tx)) < 0)
        return ahl__api_store_fail(rc, err, "image sets");
    s.last_id[0] = '\0';
    do {
        s.page_seen = 0;
        char after[AHL_ID_LEN + 1];
        memcpy(after, s.last_id, sizeof after);
        rc = ahl_store_imageset_list(s.tx, ds, after, 1000, visit_set, &s);
    } while (rc == 0 && s.page_seen == 1000 && !s.overflow);
    if (rc == 1)
        rc = 0;
    if (rc < 0) {
        rc = ahl__api_store_fail(rc, err, "image sets");
        goto out;
    }
    if (s.overflow) {
        rc = ahl_fail(err, AHL_EINVAL, AHL_AWS_VALIDATION,
                      "More than %d image sets match; add a filter", SEARCH_MAX_MATCHES);
        goto out;
    }
    sort_hits(s.hits, s.n, field, desc);

    json_t *items = json_array();
    if (!items || ahl__api_set(resp->json, "imageSetsMetadataSummaries", items) < 0) {
        rc = NOMEM(err);
        goto out;
    }
    for (size_t i = offset; i < s.n && i < offset + limit; i++) {
        struct ahl_search_row row;
        if ((rc = ahl_store_search_get(s.tx, s.hits[i].id, &row)) < 0) {
            rc = ahl__api_store_fail(rc, err, "image set");
            goto out;
        }
        if (json_array_append_new(items, summary(&row)) < 0) {
            rc = NOMEM(err);
            goto out;
        }
    }
    if (sort && json_object_set(resp->json, "sort", (json_t *)sort) < 0) {
        rc = NOMEM(err);
        goto out;
    }
    if (offset + limit < s.n) {
        snprintf(pos, sizeof pos, "%zu", offset + limit);
        if (ahl__api_token_encode("s", pos, resp->json) < 0)
            rc = NOMEM(err);
    }
out:
    ahl_store_rollback(s.tx);
    free(s.hits);
    return rc;
}
