/* The PostgreSQL backend's search index: one row per image set, and SearchImageSets queries,
 * answering exactly as the SQLite backend does (sqlite_search.c): the same rows, in the same
 * order, the same refusals.
 *
 * Text is compared and sorted by byte value, as SQLite's BINARY collation does, whatever the
 * database's locale: every text column is declared COLLATE "C". A row is written with one
 * upsert, which skips the write when nothing changed.
 *
 * A query is one SELECT per shape (kept prepared by the connection). PostgreSQL's planner picks
 * among the indexes below, which lead with the data store and cover every shape the interface
 * allows: an EQUAL identifier's index carries updated_at and the id (the default order with a
 * keyset cursor is one index range), the time sorts and ranges have (datastore_id, time, id).
 * Sequential scans are turned off for the query's transaction (ahl__pg_no_seqscan), so the answer
 * always comes from an index, as store.h promises; ahl_store_search_plan shows which (EXPLAIN).
 */
#include "store/pg_internal.h"
#include "store/query_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/text.h"
#include "base/banned.h"

/* ---- schema --------------------------------------------------------------------------------- */

const char *const ahl__pg_search_ddl[] = {
    "CREATE TABLE IF NOT EXISTS search(imageset_id text COLLATE \"C\" PRIMARY KEY,"
    " datastore_id text COLLATE \"C\" NOT NULL, is_primary boolean NOT NULL,"
    " version bigint NOT NULL, created_at bigint NOT NULL, updated_at bigint NOT NULL,"
    " patient_id text COLLATE \"C\" NOT NULL, patient_name text COLLATE \"C\" NOT NULL,"
    " patient_birth_date text COLLATE \"C\" NOT NULL, patient_sex text COLLATE \"C\" NOT NULL,"
    " study_instance_uid text COLLATE \"C\" NOT NULL, study_id text COLLATE \"C\" NOT NULL,"
    " study_description text COLLATE \"C\" NOT NULL,"
    " accession_number text COLLATE \"C\" NOT NULL, study_date text COLLATE \"C\" NOT NULL,"
    " study_time text COLLATE \"C\" NOT NULL, series_instance_uid text COLLATE \"C\" NOT NULL,"
    " modality text COLLATE \"C\" NOT NULL, body_part_examined text COLLATE \"C\" NOT NULL,"
    " series_number integer, number_of_series bigint NOT NULL,"
    " number_of_instances bigint NOT NULL, study_dt text COLLATE \"C\" NOT NULL,"
    " last_accessed_at bigint NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS search_patient ON search(datastore_id, patient_id, updated_at,"
    " imageset_id)",
    "CREATE INDEX IF NOT EXISTS search_accession ON search(datastore_id, accession_number,"
    " updated_at, imageset_id)",
    "CREATE INDEX IF NOT EXISTS search_study_id ON search(datastore_id, study_id, updated_at,"
    " imageset_id)",
    "CREATE INDEX IF NOT EXISTS search_study ON search(datastore_id, study_instance_uid,"
    " updated_at, imageset_id)",
    "CREATE INDEX IF NOT EXISTS search_series ON search(datastore_id, series_instance_uid,"
    " updated_at, imageset_id)",
    "CREATE INDEX IF NOT EXISTS search_primary ON search(datastore_id, is_primary, updated_at,"
    " imageset_id)",
    "CREATE INDEX IF NOT EXISTS search_updated ON search(datastore_id, updated_at, imageset_id)",
    "CREATE INDEX IF NOT EXISTS search_created ON search(datastore_id, created_at, imageset_id)",
    "CREATE INDEX IF NOT EXISTS search_study_dt ON search(datastore_id, study_dt, imageset_id)",
    NULL,
};

/* ---- search index ------------------------------------------------------------------------- */

#define S_NCOLS 24

/* The upsert sets every column (S_COLS is the table's order, which ROW(EXCLUDED.*) follows) and
 * writes nothing when the row is the same (no new tuple, no index entries). */
static const struct ahl__pg_stmt st_put = {
    "search_put",
    "INSERT INTO search(" S_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,"
    "$16,$17,$18,$19,$20,$21,$22,$23,$24) ON CONFLICT(imageset_id) DO UPDATE SET (" S_COLS
    ") = ROW(EXCLUDED.*) WHERE ROW(search.*) IS DISTINCT FROM ROW(EXCLUDED.*)",
};
static const struct ahl__pg_stmt st_get = {"search_get",
                                           "SELECT " S_COLS " FROM search WHERE imageset_id=$1"};
static const struct ahl__pg_stmt st_delete = {"search_delete",
                                              "DELETE FROM search WHERE imageset_id=$1"};

static void s_row(const PGresult *res, int i, struct ahl_search_row *r)
{
    memset(r, 0, sizeof *r);
    ahl__pg_text(res, i, 0, r->imageset_id, sizeof r->imageset_id);
    ahl__pg_text(res, i, 1, r->datastore_id, sizeof r->datastore_id);
    r->is_primary = ahl__pg_bool(res, i, 2);
    r->version = (uint64_t)ahl__pg_int(res, i, 3);
    r->created_at_ms = ahl__pg_int(res, i, 4);
    r->updated_at_ms = ahl__pg_int(res, i, 5);
    ahl__pg_text(res, i, 6, r->patient_id, sizeof r->patient_id);
    ahl__pg_text(res, i, 7, r->patient_name, sizeof r->patient_name);
    ahl__pg_text(res, i, 8, r->patient_birth_date, sizeof r->patient_birth_date);
    ahl__pg_text(res, i, 9, r->patient_sex, sizeof r->patient_sex);
    ahl__pg_text(res, i, 10, r->study_instance_uid, sizeof r->study_instance_uid);
    ahl__pg_text(res, i, 11, r->study_id, sizeof r->study_id);
    ahl__pg_text(res, i, 12, r->study_description, sizeof r->study_description);
    ahl__pg_text(res, i, 13, r->accession_number, sizeof r->accession_number);
    ahl__pg_text(res, i, 14, r->study_date, sizeof r->study_date);
    ahl__pg_text(res, i, 15, r->study_time, sizeof r->study_time);
    ahl__pg_text(res, i, 16, r->series_instance_uid, sizeof r->series_instance_uid);
    ahl__pg_text(res, i, 17, r->modality, sizeof r->modality);
    ahl__pg_text(res, i, 18, r->body_part_examined, sizeof r->body_part_examined);
    r->has_series_number = !PQgetisnull(res, i, 19);
    r->series_number = (int32_t)ahl__pg_int(res, i, 19);
    r->number_of_series = (uint32_t)ahl__pg_int(res, i, 20);
    r->number_of_instances = (uint32_t)ahl__pg_int(res, i, 21);
    ahl__pg_text(res, i, 22, r->study_dt, sizeof r->study_dt);
    r->last_accessed_at_ms = ahl__pg_int(res, i, 23);
}

static int search_put(struct ahl_store_tx *t, const struct ahl_search_row *r)
{
    char key[AHL_STUDY_DT_KEY_LEN + 1];
    struct ahl__pg_num num[7];
    ahl_store_study_dt_key(r->study_date, r->study_time, key);
    const char *v[S_NCOLS] = {
        r->imageset_id,
        r->datastore_id,
        r->is_primary ? "t" : "f",
        ahl__pg_i64(&num[0], (int64_t)r->version),
        ahl__pg_i64(&num[1], r->created_at_ms),
        ahl__pg_i64(&num[2], r->updated_at_ms),
        r->patient_id,
        r->patient_name,
        r->patient_birth_date,
        r->patient_sex,
        r->study_instance_uid,
        r->study_id,
        r->study_description,
        r->accession_number,
        r->study_date,
        r->study_time,
        r->series_instance_uid,
        r->modality,
        r->body_part_examined,
        r->has_series_number ? ahl__pg_i64(&num[3], r->series_number) : NULL,
        ahl__pg_i64(&num[4], r->number_of_series),
        ahl__pg_i64(&num[5], r->number_of_instances),
        key,
        ahl__pg_i64(&num[6], r->last_accessed_at_ms),
    };
    return ahl__pg_send(t, &st_put, S_NCOLS, v, NULL, NULL);
}

static int search_get(struct ahl_store_tx *t, const char *id, struct ahl_search_row *out)
{
    PGresult *res;
    const char *v[1] = {id};
    int rc = ahl__pg_run(t, &st_get, 1, v, NULL, NULL, false, &res);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 1)
        s_row(res, 0, out);
    else
        rc = AHL_ENOTFOUND;
    PQclear(res);
    return rc;
}

static int search_delete(struct ahl_store_tx *t, const char *id)
{
    const char *v[1] = {id};
    return ahl__pg_run(t, &st_delete, 1, v, NULL, NULL, false, NULL);
}

/* ---- search queries ----------------------------------------------------------------------- */

int ahl__pg_no_seqscan(struct ahl_store_tx *t)
{
    return ahl__pg_run_sql(t, "SET LOCAL enable_seqscan = off", false, 0, NULL, NULL, NULL, false,
                           NULL);
}

/* The column of each attribute, and the type its parameters are cast to. */
static const struct {
    const char *col, *type;
} search_attr[AHL_SEARCH_ATTR_COUNT] = {
    [AHL_SEARCH_PATIENT_ID] = {"patient_id", "text"},
    [AHL_SEARCH_ACCESSION_NUMBER] = {"accession_number", "text"},
    [AHL_SEARCH_STUDY_ID] = {"study_id", "text"},
    [AHL_SEARCH_STUDY_UID] = {"study_instance_uid", "text"},
    [AHL_SEARCH_SERIES_UID] = {"series_instance_uid", "text"},
    [AHL_SEARCH_IS_PRIMARY] = {"is_primary", "boolean"},
    [AHL_SEARCH_CREATED_AT] = {"created_at", "bigint"},
    [AHL_SEARCH_UPDATED_AT] = {"updated_at", "bigint"},
    [AHL_SEARCH_STUDY_DATE_TIME] = {"study_dt", "text"},
};

/* A query's SQL and its parameters (text), numbered in order. */
struct query {
    char sql[2048];
    size_t n;
    bool fail;
    const char *v[12];
    int nv;
    struct ahl__pg_num num[12];
    int nnum;
    char dt[4][AHL_STUDY_DT_KEY_LEN + 2];
    int ndt;
};

static void add(struct query *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct query *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(s->sql + s->n, sizeof s->sql - s->n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= sizeof s->sql - s->n)
        s->fail = true;
    else
        s->n += (size_t)w;
}

/* Adds a parameter and returns its number. */
static int param(struct query *s, const char *v)
{
    s->v[s->nv] = v;
    return ++s->nv;
}

/* The text of a number parameter, kept in s. */
static const char *num(struct query *s, int64_t v)
{
    return ahl__pg_i64(&s->num[s->nnum++], v);
}

/* A study date-time bound that is not UTF-8 (PostgreSQL refuses such text) replaced by one that
 * compares the same with every stored key: the keys are ASCII digits (or ""), so everything from
 * the first byte that is not ASCII compares like one DEL character, above every digit. */
static const char *dt_bound(struct query *s, const char *v)
{
    size_t n = strlen(v);
    if (ahl_utf8_valid(v, n) || s->ndt == 4)
        return v;
    char *o = s->dt[s->ndt++];
    size_t k = 0;
    while (k < n && (unsigned char)v[k] < 0x80 && k < AHL_STUDY_DT_KEY_LEN)
        o[k] = v[k], k++;
    o[k++] = 0x7f;
    o[k] = '\0';
    return o;
}

/* Writes q's SQL and parameters. Filters on an identifier with text that is not UTF-8 match
 * nothing (every stored value is UTF-8); PostgreSQL would refuse the parameter. */
static int query_sql(const char *ds, const struct ahl_search_query *q, struct query *s)
{
    int sa = ahl__search_sort_attr(q->sort);
    memset(s, 0, sizeof *s);
    add(s, "SELECT " S_COLS " FROM search WHERE datastore_id=$%d", param(s, ds));
    for (unsigned i = 0; i < q->nfilters; i++) {
        const struct ahl_search_filter *f = &q->filters[i];
        const char *col = search_attr[f->attr].col, *type = search_attr[f->attr].type;
        const char *val[2] = {NULL, NULL};
        for (int k = 0; k < (f->between ? 2 : 1); k++) {
            if (f->attr == AHL_SEARCH_IS_PRIMARY)
                val[k] = f->flag ? "t" : "f";
            else if (f->attr == AHL_SEARCH_CREATED_AT || f->attr == AHL_SEARCH_UPDATED_AT)
                val[k] = num(s, f->ms[k]);
            else if (f->attr == AHL_SEARCH_STUDY_DATE_TIME && f->between)
                val[k] = dt_bound(s, f->text[k]);
            else
                val[k] = f->text[k];
        }
        if (!f->between &&
            (ahl__search_attr_is_ident(f->attr) || f->attr == AHL_SEARCH_STUDY_DATE_TIME) &&
            !ahl_utf8_valid(val[0], strlen(val[0]))) {
            add(s, " AND false");
            continue;
        }
        if (f->between) {
            int a = param(s, val[0]), b = param(s, val[1]);
            add(s, " AND %s BETWEEN $%d::%s AND $%d::%s", col, a, type, b, type);
        } else {
            add(s, " AND %s=$%d::%s", col, param(s, val[0]), type);
        }
    }
    const char *dir = q->desc ? "DESC" : "ASC";
    if (q->after.set) {
        const char *v =
            sa == AHL_SEARCH_STUDY_DATE_TIME ? dt_bound(s, q->after.dt) : num(s, q->after.ms);
        int a = param(s, v);
        const char *id = q->after.imageset_id;
        if (!ahl_utf8_valid(id, strlen(id)))
            id = ""; /* ids are hex: not reached from the API */
        int b = param(s, id);
        add(s, " AND (%s, imageset_id) %s ($%d::%s, $%d::text)", search_attr[sa].col,
            q->desc ? "<" : ">", a, search_attr[sa].type, b);
    }
    add(s, " ORDER BY %s %s, imageset_id %s LIMIT $%d::bigint", search_attr[sa].col, dir, dir,
        param(s, num(s, q->limit)));
    return s->fail ? AHL_ETOOBIG : 0;
}

static int search_query(struct ahl_store_tx *t, const char *ds, const struct ahl_search_query *q,
                        ahl_store_search_cb cb, void *ctx)
{
    struct query *s = malloc(sizeof *s);
    PGresult *res = NULL;
    int rc;
    if (!s)
        return AHL_ENOMEM;
    if ((rc = ahl__search_query_check(q)) < 0 || (rc = query_sql(ds, q, s)) < 0 ||
        (rc = ahl__pg_no_seqscan(t)) < 0 ||
        (rc = ahl__pg_run_sql(t, s->sql, true, s->nv, s->v, NULL, NULL, false, &res)) < 0)
        goto out;
    struct ahl_search_row rec;
    for (int i = 0, n = PQntuples(res); i < n && rc == 0; i++) {
        s_row(res, i, &rec);
        rc = cb(ctx, &rec);
    }
out:
    PQclear(res);
    free(s);
    return rc;
}

/* Runs EXPLAIN of a query's SQL and hands each line of the plan to cb. */
int ahl__pg_explain(struct ahl_store_tx *t, const char *sql, int n, const char *const *v,
                    ahl_store_plan_cb cb, void *ctx)
{
    size_t len = strlen(sql) + 9;
    char *ex = malloc(len);
    PGresult *res = NULL;
    int rc;
    if (!ex)
        return AHL_ENOMEM;
    snprintf(ex, len, "EXPLAIN %s", sql);
    if ((rc = ahl__pg_no_seqscan(t)) == 0 &&
        (rc = ahl__pg_run_sql(t, ex, false, n, v, NULL, NULL, false, &res)) == 0)
        for (int i = 0, rows = PQntuples(res); i < rows && rc == 0; i++)
            rc = cb(ctx, PQgetvalue(res, i, 0));
    PQclear(res);
    free(ex);
    return rc;
}

static int search_plan(struct ahl_store_tx *t, const char *ds, const struct ahl_search_query *q,
                       ahl_store_plan_cb cb, void *ctx)
{
    struct query *s = malloc(sizeof *s);
    int rc;
    if (!s)
        return AHL_ENOMEM;
    if ((rc = ahl__search_query_check(q)) == 0 && (rc = query_sql(ds, q, s)) == 0)
        rc = ahl__pg_explain(t, s->sql, s->nv, s->v, cb, ctx);
    free(s);
    return rc;
}

void ahl__pg_search_ops(struct ahl_store_ops *ops)
{
    ops->search_put = search_put;
    ops->search_get = search_get;
    ops->search_delete = search_delete;
    ops->search_query = search_query;
    ops->search_plan = search_plan;
}
