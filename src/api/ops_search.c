/* SearchImageSets: the request's filters, sort and page turned into one indexed store query
 * (ahl_store_search_query), and each result row turned into an ImageSetsMetadataSummary.
 *
 * Filters, as the model and the API reference allow them (at most two, ANDed):
 *   EQUAL   with one value: DICOMPatientId, DICOMAccessionNumber, DICOMStudyId,
 *           DICOMStudyInstanceUID, DICOMSeriesInstanceUID, isPrimary, and (exact instant)
 *           createdAt, updatedAt, DICOMStudyDateAndTime;
 *   BETWEEN with two values of the same attribute: createdAt, updatedAt, DICOMStudyDateAndTime,
 *           bounds inclusive, (lowerBound, upperBound) with lowerBound <= upperBound.
 * Anything else is a ValidationException that says which rule was broken. String matches are
 * exact and case-sensitive. A DICOMStudyDateAndTime without DICOMStudyTime means 00:00:00 of that
 * date. Deleted image sets are never returned; LOCKED ones are. The default order is updatedAt
 * descending; ties are broken by image set id in the same direction, so paging is stable.
 *
 * Paging is by keyset, not offset: nextToken carries the sort value and id of the page's last row
 * (base64, opaque to clients) and a check of the data store and searchCriteria it was issued for,
 * so each page costs the same whatever its depth, and a token replayed with other criteria is a
 * ValidationException instead of a silently wrong page. Rows written between pages appear or not
 * according to where they sort, as with any keyset cursor; no row is returned twice.
 *
 * DICOMTags come from the search row the engine keeps per image set (its latest version); no
 * document is loaded.
 */
#include "api/ops_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "base/banned.h"

#define SEARCH_DEFAULT_MAX 50
#define CHECK_HEX 16 /* hex digits of the criteria check in a token */
#define NOMEM(err) ahl_fail(err, AHL_ENOMEM, "out of memory")
#define BAD_TOKEN(err) \
    ahl_fail(err, AHL_EINVAL, "%s", "Invalid nextToken: it was not returned by this operation")

/* Request attribute names in the order of enum ahl_search_attr. */
static const char *const attr_names[AHL_SEARCH_ATTR_COUNT] = {
    [AHL_SEARCH_PATIENT_ID] = "DICOMPatientId",
    [AHL_SEARCH_ACCESSION_NUMBER] = "DICOMAccessionNumber",
    [AHL_SEARCH_STUDY_ID] = "DICOMStudyId",
    [AHL_SEARCH_STUDY_UID] = "DICOMStudyInstanceUID",
    [AHL_SEARCH_SERIES_UID] = "DICOMSeriesInstanceUID",
    [AHL_SEARCH_IS_PRIMARY] = "isPrimary",
    [AHL_SEARCH_CREATED_AT] = "createdAt",
    [AHL_SEARCH_UPDATED_AT] = "updatedAt",
    [AHL_SEARCH_STUDY_DATE_TIME] = "DICOMStudyDateAndTime",
};

/* Study date-time keys of the filters live here while the query runs. */
struct keys {
    char dt[AHL_SEARCH_MAX_FILTERS][2][AHL_STUDY_DT_KEY_LEN + 1];
};

static int parse_filter(const json_t *jf, unsigned idx, struct ahl_search_filter *f,
                        char dt[2][AHL_STUDY_DT_KEY_LEN + 1], struct ahl_err *err)
{
    const json_t *values = json_object_get(jf, "values");
    size_t nv = json_array_size(values);
    int attr = -1;
    memset(f, 0, sizeof *f);
    f->between = !strcmp(ahl_api_str(jf, "operator"), "BETWEEN");
    if (nv != (f->between ? 2u : 1u))
        return ahl_fail(err, AHL_EINVAL, "searchCriteria.filters.%u.member: %s takes exactly %s",
                        idx + 1, f->between ? "BETWEEN" : "EQUAL",
                        f->between ? "two values (lowerBound, upperBound)" : "one value");
    for (size_t i = 0; i < nv; i++) {
        const json_t *v = json_array_get(values, i);
        const char *key = json_object_iter_key(json_object_iter((json_t *)v));
        int a = -1;
        for (int k = 0; key && k < AHL_SEARCH_ATTR_COUNT; k++)
            if (!strcmp(key, attr_names[k]))
                a = k;
        if (a < 0)
            return ahl_fail(err, AHL_EINVAL,
                            "searchCriteria.filters.%u.member.values.%zu.member: no search "
                            "attribute given",
                            idx + 1, i + 1);
        if (attr >= 0 && a != attr)
            return ahl_fail(err, AHL_EINVAL,
                            "searchCriteria.filters.%u.member.values: both values must name the "
                            "same attribute (%s and %s)",
                            idx + 1, attr_names[attr], key);
        attr = a;
        const json_t *x = json_object_get(v, key);
        switch (a) {
        case AHL_SEARCH_CREATED_AT:
        case AHL_SEARCH_UPDATED_AT:
            f->ms[i] = ahl_api_timestamp_ms(x);
            break;
        case AHL_SEARCH_STUDY_DATE_TIME:
            if (ahl_store_study_dt_key(ahl_api_str(x, "DICOMStudyDate"),
                                       ahl_api_str(x, "DICOMStudyTime"), dt[i]) < 0)
                return ahl_fail(err, AHL_EINVAL,
                                "searchCriteria.filters.%u.member.values.%zu.member."
                                "DICOMStudyDateAndTime: DICOMStudyDate must be YYYYMMDD and "
                                "DICOMStudyTime HHMMSS[.FFFFFF]",
                                idx + 1, i + 1);
            f->text[i] = dt[i];
            break;
        case AHL_SEARCH_IS_PRIMARY:
            f->flag = json_is_true(x);
            break;
        default:
            f->text[i] = json_string_value(x);
            break;
        }
    }
    f->attr = attr;
    if (f->between) {
        if (attr != AHL_SEARCH_CREATED_AT && attr != AHL_SEARCH_UPDATED_AT &&
            attr != AHL_SEARCH_STUDY_DATE_TIME)
            return ahl_fail(err, AHL_EINVAL,
                            "searchCriteria.filters.%u.member: BETWEEN applies to createdAt, "
                            "updatedAt and DICOMStudyDateAndTime, not %s",
                            idx + 1, attr_names[attr]);
        bool reversed =
            attr == AHL_SEARCH_STUDY_DATE_TIME ? strcmp(dt[0], dt[1]) > 0 : f->ms[0] > f->ms[1];
        if (reversed)
            return ahl_fail(err, AHL_EINVAL,
                            "searchCriteria.filters.%u.member: BETWEEN values must be "
                            "(lowerBound, upperBound); %s's lowerBound is after its upperBound",
                            idx + 1, attr_names[attr]);
    }
    return 0;
}

/* The check a token carries: the first bytes of SHA-256 over the data store id and the
 * canonical (compact, key-sorted) searchCriteria. */
static int criteria_check(const char *ds, const json_t *criteria, char out[CHECK_HEX + 1])
{
    char *text = criteria ? json_dumps(criteria, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    struct ahl_buf b;
    uint8_t h[AHL_SHA256_LEN];
    int rc;
    if (criteria && !text)
        return AHL_ENOMEM;
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);
    rc = ahl_buf_addf(&b, "%s\n%s", ds, text ? text : "");
    free(text);
    if (rc == 0) {
        ahl_sha256(b.data, b.len, h);
        ahl_hex_encode(h, CHECK_HEX / 2, out);
    }
    ahl_buf_release(&b);
    return rc;
}

/* Token position: "<check>.<sort value>.<image set id>"; the sort value is milliseconds, or the
 * study date-time key (possibly empty). */
static int token_parse(const char *pos, const char *check, int sort, struct ahl_search_cursor *c,
                       struct ahl_err *err)
{
    const char *p1 = strchr(pos, '.'), *p2 = p1 ? strchr(p1 + 1, '.') : NULL;
    if (!p2 || (size_t)(p1 - pos) != CHECK_HEX || strlen(p2 + 1) != AHL_ID_LEN)
        return BAD_TOKEN(err);
    if (memcmp(pos, check, CHECK_HEX) != 0)
        return ahl_fail(err, AHL_EINVAL,
                        "Invalid nextToken: it was issued for a different data store or "
                        "searchCriteria; repeat the request that returned it");
    memset(c, 0, sizeof *c);
    size_t vlen = (size_t)(p2 - p1 - 1);
    const char *v = p1 + 1;
    for (size_t i = 0; i < vlen; i++)
        if ((v[i] < '0' || v[i] > '9') && !(i == 0 && v[i] == '-'))
            return BAD_TOKEN(err);
    if (sort == AHL_SEARCH_SORT_STUDY_DATE_TIME) {
        if (vlen != 0 && vlen != AHL_STUDY_DT_KEY_LEN)
            return BAD_TOKEN(err);
        memcpy(c->dt, v, vlen);
        c->dt[vlen] = '\0';
    } else {
        char *end;
        if (vlen == 0 || vlen > 19)
            return BAD_TOKEN(err);
        c->ms = strtoll(v, &end, 10);
        if (end != p2)
            return BAD_TOKEN(err);
    }
    for (size_t i = 0; i < AHL_ID_LEN; i++) {
        char ch = p2[1 + i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z')))
            return BAD_TOKEN(err);
        c->imageset_id[i] = ch;
    }
    c->set = true;
    return 0;
}

static int summary_tags(json_t *tags, const struct ahl_search_row *r)
{
    int rc = 0;
    rc |= ahl__api_set_str_opt(tags, "DICOMPatientId", r->patient_id);
    rc |= ahl__api_set_str_opt(tags, "DICOMPatientName", r->patient_name);
    rc |= ahl__api_set_str_opt(tags, "DICOMPatientBirthDate", r->patient_birth_date);
    rc |= ahl__api_set_str_opt(tags, "DICOMPatientSex", r->patient_sex);
    rc |= ahl__api_set_str_opt(tags, "DICOMStudyInstanceUID", r->study_instance_uid);
    rc |= ahl__api_set_str_opt(tags, "DICOMStudyId", r->study_id);
    rc |= ahl__api_set_str_opt(tags, "DICOMStudyDescription", r->study_description);
    rc |= ahl__api_set(tags, "DICOMNumberOfStudyRelatedSeries", json_integer(r->number_of_series));
    rc |= ahl__api_set(tags, "DICOMNumberOfStudyRelatedInstances",
                       json_integer(r->number_of_instances));
    rc |= ahl__api_set_str_opt(tags, "DICOMAccessionNumber", r->accession_number);
    rc |= ahl__api_set_str_opt(tags, "DICOMSeriesInstanceUID", r->series_instance_uid);
    rc |= ahl__api_set_str_opt(tags, "DICOMSeriesModality", r->modality);
    rc |= ahl__api_set_str_opt(tags, "DICOMSeriesBodyPart", r->body_part_examined);
    if (r->has_series_number)
        rc |= ahl__api_set(tags, "DICOMSeriesNumber", json_integer(r->series_number));
    rc |= ahl__api_set_str_opt(tags, "DICOMStudyDate", r->study_date);
    rc |= ahl__api_set_str_opt(tags, "DICOMStudyTime", r->study_time);
    return rc;
}

/* The search row carries its set's stored last access; an access this node has recorded and not
 * written yet counts too (meta/access.h). Searching is no access. */
static json_t *summary(struct ahl_meta *m, const struct ahl_search_row *r)
{
    int64_t last = ahl_meta_last_access(m, r->imageset_id, r->last_accessed_at_ms);
    json_t *o = json_object(), *tags = json_object();
    int rc = (!o || !tags) ? AHL_ENOMEM : 0;
    if (rc == 0) {
        rc |= ahl__api_set(o, "imageSetId", json_string(r->imageset_id));
        rc |= ahl__api_set(o, "version", json_integer((json_int_t)r->version));
        rc |= ahl__api_set_ts_opt(o, "createdAt", r->created_at_ms);
        rc |= ahl__api_set_ts_opt(o, "updatedAt", r->updated_at_ms);
        rc |= ahl__api_set_ts_opt(o, "lastAccessedAt", last);
        rc |= ahl__api_set(o, "storageTier",
                           json_string(ahl_storage_tier_name(ahl_meta_storage_tier(m, last))));
        rc |= summary_tags(tags, r);
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

struct page {
    struct ahl_meta *meta;
    json_t *items;
    unsigned limit, n;
    struct ahl_search_row last; /* the limit-th row, where the next page starts */
    bool more;
};

static int add_row(void *ctx, const struct ahl_search_row *row)
{
    struct page *p = ctx;
    if (p->n == p->limit) {
        p->more = true; /* the extra row asked for only says that another page exists */
        return 1;
    }
    json_t *it = summary(p->meta, row);
    if (!it || json_array_append_new(p->items, it) < 0)
        return AHL_ENOMEM;
    p->last = *row;
    p->n++;
    return 0;
}

int ahl__op_SearchImageSets(struct ahl_api_service *svc, const json_t *in,
                            struct ahl_api_resp *resp, struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId");
    const json_t *criteria = json_object_get(in, "searchCriteria");
    const json_t *filters = json_object_get(criteria, "filters");
    const json_t *sort = json_object_get(criteria, "sort");
    const char *token = ahl_api_str(in, "nextToken");
    struct ahl_search_query q;
    struct keys keys;
    struct page page = {.meta = svc->meta,
                        .limit = (unsigned)ahl_api_int(in, "maxResults", SEARCH_DEFAULT_MAX)};
    struct ahl_store_tx *tx = NULL;
    char check[CHECK_HEX + 1], pos[256];
    int rc;

    memset(&q, 0, sizeof q);
    q.sort = AHL_SEARCH_SORT_UPDATED_AT;
    q.desc = true;
    if (sort) {
        const char *sf = ahl_api_str(sort, "sortField");
        q.sort = !strcmp(sf, "createdAt")               ? AHL_SEARCH_SORT_CREATED_AT
                 : !strcmp(sf, "DICOMStudyDateAndTime") ? AHL_SEARCH_SORT_STUDY_DATE_TIME
                                                        : AHL_SEARCH_SORT_UPDATED_AT;
        q.desc = !strcmp(ahl_api_str(sort, "sortOrder"), "DESC");
    }
    size_t nf = json_array_size(filters);
    if (nf > AHL_SEARCH_MAX_FILTERS)
        return ahl_fail(err, AHL_EINVAL, "searchCriteria.filters: at most %d filters",
                        AHL_SEARCH_MAX_FILTERS);
    for (size_t i = 0; i < nf; i++)
        if ((rc = parse_filter(json_array_get(filters, i), (unsigned)i, &q.filters[i], keys.dt[i],
                               err)) < 0)
            return rc;
    q.nfilters = (unsigned)nf;
    if (criteria_check(ds, criteria, check) < 0)
        return NOMEM(err);
    if (token) {
        if ((rc = ahl__api_token_decode("s", token, pos, sizeof pos, err)) < 0 ||
            (rc = token_parse(pos, check, q.sort, &q.after, err)) < 0)
            return rc;
    }
    q.limit = page.limit + 1;

    if ((rc = ahl_store_begin(svc->store, false, &tx)) < 0)
        return ahl_meta_store_fail(err, rc, "handling image sets");
    if ((rc = ahl__api_datastore_get(tx, ds, NULL, err)) < 0)
        goto out;
    page.items = json_array();
    if (!page.items || ahl__api_set(resp->json, "imageSetsMetadataSummaries", page.items) < 0) {
        rc = NOMEM(err);
        goto out;
    }
    rc = ahl_store_search_query(tx, ds, &q, add_row, &page);
    if (rc < 0) {
        rc = rc == AHL_ENOMEM ? NOMEM(err) : ahl_meta_store_fail(err, rc, "handling image sets");
        goto out;
    }
    rc = 0;
    if (sort && json_object_set(resp->json, "sort", (json_t *)sort) < 0) {
        rc = NOMEM(err);
        goto out;
    }
    if (page.more) {
        const struct ahl_search_row *l = &page.last;
        if (q.sort == AHL_SEARCH_SORT_STUDY_DATE_TIME)
            snprintf(pos, sizeof pos, "%s.%s.%s", check, l->study_dt, l->imageset_id);
        else
            snprintf(pos, sizeof pos, "%s.%" PRId64 ".%s", check,
                     q.sort == AHL_SEARCH_SORT_CREATED_AT ? l->created_at_ms : l->updated_at_ms,
                     l->imageset_id);
        if (ahl__api_token_encode("s", pos, resp->json) < 0)
            rc = NOMEM(err);
    }
out:
    ahl_store_rollback(tx);
    return rc;
}
