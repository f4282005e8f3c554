/* The SQLite backend's search index: one row per image set (kept with UPDATEs that touch only the
 * changed columns), and SearchImageSets queries, written per query shape so that each is answered
 * from the index chosen here (query_driver), never from a table scan.
 */
#include "store/sqlite_internal.h"
#include "store/query_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/banned.h"

/* ---- search index ------------------------------------------------------------------------- */

static void s_row(sqlite3_stmt *st, struct ahl_search_row *r)
{
    memset(r, 0, sizeof *r);
    ahl__sq_col_text(st, 0, r->imageset_id, sizeof r->imageset_id);
    ahl__sq_col_text(st, 1, r->datastore_id, sizeof r->datastore_id);
    r->is_primary = sqlite3_column_int(st, 2) != 0;
    r->version = (uint64_t)sqlite3_column_int64(st, 3);
    r->created_at_ms = sqlite3_column_int64(st, 4);
    r->updated_at_ms = sqlite3_column_int64(st, 5);
    ahl__sq_col_text(st, 6, r->patient_id, sizeof r->patient_id);
    ahl__sq_col_text(st, 7, r->patient_name, sizeof r->patient_name);
    ahl__sq_col_text(st, 8, r->patient_birth_date, sizeof r->patient_birth_date);
    ahl__sq_col_text(st, 9, r->patient_sex, sizeof r->patient_sex);
    ahl__sq_col_text(st, 10, r->study_instance_uid, sizeof r->study_instance_uid);
    ahl__sq_col_text(st, 11, r->study_id, sizeof r->study_id);
    ahl__sq_col_text(st, 12, r->study_description, sizeof r->study_description);
    ahl__sq_col_text(st, 13, r->accession_number, sizeof r->accession_number);
    ahl__sq_col_text(st, 14, r->study_date, sizeof r->study_date);
    ahl__sq_col_text(st, 15, r->study_time, sizeof r->study_time);
    ahl__sq_col_text(st, 16, r->series_instance_uid, sizeof r->series_instance_uid);
    ahl__sq_col_text(st, 17, r->modality, sizeof r->modality);
    ahl__sq_col_text(st, 18, r->body_part_examined, sizeof r->body_part_examined);
    r->has_series_number = sqlite3_column_type(st, 19) != SQLITE_NULL;
    r->series_number = sqlite3_column_int(st, 19);
    r->number_of_series = (uint32_t)sqlite3_column_int64(st, 20);
    r->number_of_instances = (uint32_t)sqlite3_column_int64(st, 21);
    ahl__sq_col_text(st, 22, r->study_dt, sizeof r->study_dt);
    r->last_accessed_at_ms = sqlite3_column_int64(st, 23);
}

/* Binds a whole search row to a statement numbered like ST_S_PUT (?1..?24, S_COLS order). A
 * narrower UPDATE (search_update) names only some of the numbers; binding the others fails with
 * SQLITE_RANGE, which is harmless and ignored. */
static void s_bind(sqlite3_stmt *st, const struct ahl_search_row *r, const char *study_dt)
{
    ahl__sq_bind_text(st, 1, r->imageset_id);
    ahl__sq_bind_text(st, 2, r->datastore_id);
    sqlite3_bind_int(st, 3, r->is_primary);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)r->version);
    sqlite3_bind_int64(st, 5, r->created_at_ms);
    sqlite3_bind_int64(st, 6, r->updated_at_ms);
    ahl__sq_bind_text(st, 7, r->patient_id);
    ahl__sq_bind_text(st, 8, r->patient_name);
    ahl__sq_bind_text(st, 9, r->patient_birth_date);
    ahl__sq_bind_text(st, 10, r->patient_sex);
    ahl__sq_bind_text(st, 11, r->study_instance_uid);
    ahl__sq_bind_text(st, 12, r->study_id);
    ahl__sq_bind_text(st, 13, r->study_description);
    ahl__sq_bind_text(st, 14, r->accession_number);
    ahl__sq_bind_text(st, 15, r->study_date);
    ahl__sq_bind_text(st, 16, r->study_time);
    ahl__sq_bind_text(st, 17, r->series_instance_uid);
    ahl__sq_bind_text(st, 18, r->modality);
    ahl__sq_bind_text(st, 19, r->body_part_examined);
    if (r->has_series_number)
        sqlite3_bind_int(st, 20, r->series_number);
    else
        sqlite3_bind_null(st, 20);
    sqlite3_bind_int64(st, 21, r->number_of_series);
    sqlite3_bind_int64(st, 22, r->number_of_instances);
    sqlite3_bind_text(st, 23, study_dt, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 24, r->last_accessed_at_ms);
}

/* Rewrites only the columns of an existing search row that differ from *old: SQLite then
 * touches only the indexes over those columns (an UPDATE keeps the rowid; INSERT OR REPLACE
 * would delete and re-insert the row and every index entry). A new version always changes
 * version and updated_at, so the indexes carrying updated_at are rewritten; the others
 * (created_at, study date-time, the primary key) only when their columns change. */
static int search_update(struct ahl__sq_conn *c, const struct ahl_search_row *old,
                         const struct ahl_search_row *r, const char *study_dt)
{
    static const char *const col[] = {NULL,
                                      "imageset_id",
                                      "datastore_id",
                                      "is_primary",
                                      "version",
                                      "created_at",
                                      "updated_at",
                                      "patient_id",
                                      "patient_name",
                                      "patient_birth_date",
                                      "patient_sex",
                                      "study_instance_uid",
                                      "study_id",
                                      "study_description",
                                      "accession_number",
                                      "study_date",
                                      "study_time",
                                      "series_instance_uid",
                                      "modality",
                                      "body_part_examined",
                                      "series_number",
                                      "number_of_series",
                                      "number_of_instances",
                                      "study_dt",
                                      "last_accessed_at"};
    bool diff[25] = {false};
    diff[2] = strcmp(old->datastore_id, r->datastore_id) != 0;
    diff[3] = old->is_primary != r->is_primary;
    diff[4] = old->version != r->version;
    diff[5] = old->created_at_ms != r->created_at_ms;
    diff[6] = old->updated_at_ms != r->updated_at_ms;
    diff[7] = strcmp(old->patient_id, r->patient_id) != 0;
    diff[8] = strcmp(old->patient_name, r->patient_name) != 0;
    diff[9] = strcmp(old->patient_birth_date, r->patient_birth_date) != 0;
    diff[10] = strcmp(old->patient_sex, r->patient_sex) != 0;
    diff[11] = strcmp(old->study_instance_uid, r->study_instance_uid) != 0;
    diff[12] = strcmp(old->study_id, r->study_id) != 0;
    diff[13] = strcmp(old->study_description, r->study_description) != 0;
    diff[14] = strcmp(old->accession_number, r->accession_number) != 0;
    diff[15] = strcmp(old->study_date, r->study_date) != 0;
    diff[16] = strcmp(old->study_time, r->study_time) != 0;
    diff[17] = strcmp(old->series_instance_uid, r->series_instance_uid) != 0;
    diff[18] = strcmp(old->modality, r->modality) != 0;
    diff[19] = strcmp(old->body_part_examined, r->body_part_examined) != 0;
    diff[20] = old->has_series_number != r->has_series_number ||
               (r->has_series_number && old->series_number != r->series_number);
    diff[21] = old->number_of_series != r->number_of_series;
    diff[22] = old->number_of_instances != r->number_of_instances;
    diff[23] = strcmp(old->study_dt, study_dt) != 0;
    diff[24] = old->last_accessed_at_ms != r->last_accessed_at_ms;
    char sql[1024];
    size_t n = (size_t)snprintf(sql, sizeof sql, "UPDATE search SET ");
    bool any = false;
    for (int i = 2; i < 25; i++) {
        if (!diff[i])
            continue;
        n += (size_t)snprintf(sql + n, sizeof sql - n, "%s%s=?%d", any ? ", " : "", col[i], i);
        any = true;
    }
    if (!any)
        return 0; /* the same row: nothing to write */
    snprintf(sql + n, sizeof sql - n, " WHERE imageset_id=?1");
    sqlite3_stmt *st = ahl__sq_runtime_stmt(c, sql);
    if (!st)
        return AHL_EIO;
    s_bind(st, r, study_dt);
    int rc = ahl__sq_step_done(c, st, "search update");
    sqlite3_reset(st);
    return rc;
}

int ahl__sq_search_put(struct ahl_store_tx *t, const struct ahl_search_row *r)
{
    char key[AHL_STUDY_DT_KEY_LEN + 1];
    struct ahl_search_row old;
    ahl_store_study_dt_key(r->study_date, r->study_time, key);
    PREP(get, CONN(t), ST_S_GET);
    ahl__sq_bind_text(get, 1, r->imageset_id);
    int rc = sqlite3_step(get);
    if (rc == SQLITE_ROW) {
        s_row(get, &old);
        sqlite3_reset(get);
        return search_update(CONN(t), &old, r, key);
    }
    sqlite3_reset(get);
    if (rc != SQLITE_DONE)
        return ahl__sq_err(CONN(t)->db, rc, "search get");
    PREP(st, CONN(t), ST_S_PUT);
    s_bind(st, r, key);
    return ahl__sq_step_done(CONN(t), st, "search put");
}

int ahl__sq_search_get(struct ahl_store_tx *t, const char *id, struct ahl_search_row *out)
{
    PREP(st, CONN(t), ST_S_GET);
    ahl__sq_bind_text(st, 1, id);
    ONE_ROW(CONN(t), st, s_row, out, "search get");
}

int ahl__sq_search_delete(struct ahl_store_tx *t, const char *id)
{
    PREP(st, CONN(t), ST_S_DELETE);
    ahl__sq_bind_text(st, 1, id);
    return ahl__sq_step_done(CONN(t), st, "search delete");
}

/* ---- search queries ----------------------------------------------------------------------- */

/* The column and index of each attribute. Every index leads with datastore_id. */
static const struct {
    const char *col, *index;
} search_attr[AHL_SEARCH_ATTR_COUNT] = {
    [AHL_SEARCH_PATIENT_ID] = {"patient_id", "search_patient"},
    [AHL_SEARCH_ACCESSION_NUMBER] = {"accession_number", "search_accession"},
    [AHL_SEARCH_STUDY_ID] = {"study_id", "search_study_id"},
    [AHL_SEARCH_STUDY_UID] = {"study_instance_uid", "search_study"},
    [AHL_SEARCH_SERIES_UID] = {"series_instance_uid", "search_series"},
    [AHL_SEARCH_IS_PRIMARY] = {"is_primary", "search_primary"},
    [AHL_SEARCH_CREATED_AT] = {"created_at", "search_created"},
    [AHL_SEARCH_UPDATED_AT] = {"updated_at", "search_updated"},
    [AHL_SEARCH_STUDY_DATE_TIME] = {"study_dt", "search_study_dt"},
};

/* The index that drives a query: an identifier EQUAL (selective), else a filtered time range,
 * else isPrimary when the order is its index's (updatedAt), else the sort order's index. */
static int query_driver(const struct ahl_search_query *q)
{
    int sa = ahl__search_sort_attr(q->sort), range = -1;
    bool primary = false;
    for (unsigned i = 0; i < q->nfilters; i++) {
        int a = q->filters[i].attr;
        if (ahl__search_attr_is_ident(a))
            return a;
        if (ahl__search_attr_is_range(a) && (range < 0 || a == sa))
            range = a;
        primary |= a == AHL_SEARCH_IS_PRIMARY;
    }
    if (range >= 0)
        return range;
    if (primary && sa == AHL_SEARCH_UPDATED_AT)
        return AHL_SEARCH_IS_PRIMARY;
    return sa;
}

/* Writes the SQL of q into sql. The driving index is named with INDEXED BY and every other
 * column is written as +col, which keeps SQLite from using it for an index, so the plan is the
 * one chosen here whatever statistics say. Placeholders are numbered in the order
 * query_bind() binds them. */
static int query_sql(const struct ahl_search_query *q, char *sql, size_t cap)
{
    int drv = query_driver(q), sa = ahl__search_sort_attr(q->sort);
    /* Does the driving index deliver rows in the sort order (so the cursor is an index range)? */
    bool ordered = drv == sa || (sa == AHL_SEARCH_UPDATED_AT &&
                                 (ahl__search_attr_is_ident(drv) || drv == AHL_SEARCH_IS_PRIMARY));
    size_t n = 0;
#define ADD(...)                                          \
    do {                                                  \
        int w_ = snprintf(sql + n, cap - n, __VA_ARGS__); \
        if (w_ < 0 || (size_t)w_ >= cap - n)              \
            return AHL_ETOOBIG;                           \
        n += (size_t)w_;                                  \
    } while (0)
    ADD("SELECT " S_COLS " FROM search INDEXED BY %s WHERE datastore_id=?", search_attr[drv].index);
    for (unsigned i = 0; i < q->nfilters; i++) {
        const struct ahl_search_filter *f = &q->filters[i];
        const char *plus = f->attr == drv ? "" : "+";
        if (f->between)
            ADD(" AND %s%s BETWEEN ? AND ?", plus, search_attr[f->attr].col);
        else
            ADD(" AND %s%s=?", plus, search_attr[f->attr].col);
    }
    const char *dir = q->desc ? "DESC" : "ASC";
    if (q->after.set) {
        /* An EQUAL on the sort column already fixes it: the index then runs in id order and the
         * cursor must not displace that equality as the index constraint. */
        bool eq_sort = false;
        for (unsigned i = 0; i < q->nfilters; i++)
            eq_sort |=
                q->filters[i].attr == sa && q->filters[i].attr == drv && !q->filters[i].between;
        const char *plus = ordered && !eq_sort ? "" : "+";
        ADD(" AND (%s%s, %simageset_id) %s (?, ?)", plus, search_attr[sa].col, plus,
            q->desc ? "<" : ">");
    }
    ADD(" ORDER BY %s %s, imageset_id %s LIMIT ?", search_attr[sa].col, dir, dir);
#undef ADD
    return 0;
}

static void query_bind(sqlite3_stmt *st, const char *ds, const struct ahl_search_query *q)
{
    int k = 1;
    ahl__sq_bind_text(st, k++, ds);
    for (unsigned i = 0; i < q->nfilters; i++) {
        const struct ahl_search_filter *f = &q->filters[i];
        for (int v = 0; v < (f->between ? 2 : 1); v++) {
            if (f->attr == AHL_SEARCH_IS_PRIMARY)
                sqlite3_bind_int(st, k++, f->flag);
            else if (f->attr == AHL_SEARCH_CREATED_AT || f->attr == AHL_SEARCH_UPDATED_AT)
                sqlite3_bind_int64(st, k++, f->ms[v]);
            else
                ahl__sq_bind_text(st, k++, f->text[v]);
        }
    }
    if (q->after.set) {
        if (q->sort == AHL_SEARCH_SORT_STUDY_DATE_TIME)
            ahl__sq_bind_text(st, k++, q->after.dt);
        else
            sqlite3_bind_int64(st, k++, q->after.ms);
        ahl__sq_bind_text(st, k++, q->after.imageset_id);
    }
    sqlite3_bind_int64(st, k, q->limit);
}

sqlite3_stmt *ahl__sq_runtime_stmt(struct ahl__sq_conn *c, const char *sql)
{
    for (int i = 0; i < SEARCH_CACHE; i++)
        if (c->search[i].sql && !strcmp(c->search[i].sql, sql)) {
            sqlite3_reset(c->search[i].st);
            sqlite3_clear_bindings(c->search[i].st);
            return c->search[i].st;
        }
    struct ahl__sq_cached *slot = &c->search[c->search_next];
    c->search_next = (c->search_next + 1) % SEARCH_CACHE;
    sqlite3_finalize(slot->st);
    free(slot->sql);
    slot->st = NULL;
    if (!(slot->sql = strdup(sql)))
        return NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &slot->st, NULL) !=
        SQLITE_OK) {
        ahl_error("sqlite: prepare: %s: %s", sqlite3_errmsg(c->db), sql);
        sqlite3_finalize(slot->st);
        slot->st = NULL;
        free(slot->sql);
        slot->sql = NULL;
        return NULL;
    }
    return slot->st;
}

int ahl__sq_search_query(struct ahl_store_tx *t, const char *ds, const struct ahl_search_query *q,
                         ahl_store_search_cb cb, void *ctx)
{
    char sql[2048];
    int rc;
    if ((rc = ahl__search_query_check(q)) < 0 || (rc = query_sql(q, sql, sizeof sql)) < 0)
        return rc;
    sqlite3_stmt *st = ahl__sq_runtime_stmt(CONN(t), sql);
    if (!st)
        return AHL_EIO;
    query_bind(st, ds, q);
    struct ahl_search_row rec;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        s_row(st, &rec);
        int u = cb(ctx, &rec);
        if (u) {
            sqlite3_reset(st);
            return u;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : ahl__sq_err(CONN(t)->db, rc, "search query");
}

int ahl__sq_search_plan(struct ahl_store_tx *t, const char *ds, const struct ahl_search_query *q,
                        ahl_store_plan_cb cb, void *ctx)
{
    char sql[2100];
    sqlite3_stmt *st = NULL;
    int rc;
    memcpy(sql, "EXPLAIN QUERY PLAN ", 19);
    if ((rc = ahl__search_query_check(q)) < 0 || (rc = query_sql(q, sql + 19, sizeof sql - 19)) < 0)
        return rc;
    if (sqlite3_prepare_v2(CONN(t)->db, sql, -1, &st, NULL) != SQLITE_OK)
        return ahl__sq_err(CONN(t)->db, SQLITE_ERROR, "search plan");
    query_bind(st, ds, q);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int u = cb(ctx, (const char *)sqlite3_column_text(st, 3));
        if (u) {
            sqlite3_finalize(st);
            return u;
        }
    }
    rc = rc == SQLITE_DONE ? 0 : ahl__sq_err(CONN(t)->db, rc, "search plan");
    sqlite3_finalize(st);
    return rc;
}
