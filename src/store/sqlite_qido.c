/* The SQLite backend's QIDO-RS index (docs/dicomweb.md#search-qido-rs): the set, series,
 * instance and study rows of store.h's "QIDO-RS index", and the searches over them.
 *
 * Writes touch only the rows named: a set row, a series row (updated in place, so that its id,
 * which its instance rows carry, stays), an instance row. A study row is rebuilt whole from its
 * study's set and series rows (a handful) by qido_study_refresh. PN keys are matched on
 * upper-cased copies (pn_norm, ref_norm; ASCII letters only, as SQLite's upper()), TM keys on
 * 12-digit keys (HHMMSSFFFFFF) written beside the values.
 *
 * A search is one SELECT written here per query (query_sql): the most selective filter chooses
 * the index that drives it (INDEXED BY), every other filtered column is written +col so that
 * SQLite never swaps the plan, and the page is LIMIT/OFFSET in the level's order. Instance
 * searches are driven through the series rows of their study or series.
 */
#include "store/sqlite_internal.h"
#include "store/query_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/banned.h"

/* ---- rows ------------------------------------------------------------------------------------ */

#define SET_COLS                                                                          \
    "imageset_id, datastore_id, root, updated_at, study_uid, patient_name, patient_id,"   \
    " patient_birth_date, patient_birth_time, patient_sex, study_date, study_time,"       \
    " accession_number, referring_physician_name, study_description, study_id, birth_tm," \
    " study_tm"

static void set_row(sqlite3_stmt *st, struct ahl_qido_set *r)
{
    memset(r, 0, sizeof *r);
    ahl__sq_col_text(st, 0, r->imageset_id, sizeof r->imageset_id);
    ahl__sq_col_text(st, 1, r->datastore_id, sizeof r->datastore_id);
    if (sqlite3_column_bytes(st, 2) == AHL_SHA256_LEN)
        memcpy(r->root, sqlite3_column_blob(st, 2), AHL_SHA256_LEN);
    r->updated_at_ms = sqlite3_column_int64(st, 3);
    ahl__sq_col_text(st, 4, r->study_uid, sizeof r->study_uid);
    ahl__sq_col_text(st, 5, r->patient_name, sizeof r->patient_name);
    ahl__sq_col_text(st, 6, r->patient_id, sizeof r->patient_id);
    ahl__sq_col_text(st, 7, r->patient_birth_date, sizeof r->patient_birth_date);
    ahl__sq_col_text(st, 8, r->patient_birth_time, sizeof r->patient_birth_time);
    ahl__sq_col_text(st, 9, r->patient_sex, sizeof r->patient_sex);
    ahl__sq_col_text(st, 10, r->study_date, sizeof r->study_date);
    ahl__sq_col_text(st, 11, r->study_time, sizeof r->study_time);
    ahl__sq_col_text(st, 12, r->accession_number, sizeof r->accession_number);
    ahl__sq_col_text(st, 13, r->referring_physician_name, sizeof r->referring_physician_name);
    ahl__sq_col_text(st, 14, r->study_description, sizeof r->study_description);
    ahl__sq_col_text(st, 15, r->study_id, sizeof r->study_id);
}

static sqlite3_stmt *stmt(struct ahl_store_tx *t, const char *sql)
{
    return ahl__sq_runtime_stmt(CONN(t), sql);
}

int ahl__sq_qido_set_get(struct ahl_store_tx *t, const char *set, struct ahl_qido_set *out)
{
    sqlite3_stmt *st = stmt(t, "SELECT " SET_COLS " FROM qido_set WHERE imageset_id=?1");
    if (!st)
        return AHL_EIO;
    ahl__sq_bind_text(st, 1, set);
    ONE_ROW(CONN(t), st, set_row, out, "qido set get");
}

int ahl__sq_qido_set_put(struct ahl_store_tx *t, const struct ahl_qido_set *r)
{
    char birth_tm[13], study_tm[13];
    sqlite3_stmt *st = stmt(t, "INSERT OR REPLACE INTO qido_set(" SET_COLS ") VALUES(?1,?2,?3,?4,"
                               "?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)");
    if (!st)
        return AHL_EIO;
    ahl__qido_tm_key(r->patient_birth_time, birth_tm);
    ahl__qido_tm_key(r->study_time, study_tm);
    ahl__sq_bind_text(st, 1, r->imageset_id);
    ahl__sq_bind_text(st, 2, r->datastore_id);
    sqlite3_bind_blob(st, 3, r->root, AHL_SHA256_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, r->updated_at_ms);
    ahl__sq_bind_text(st, 5, r->study_uid);
    ahl__sq_bind_text(st, 6, r->patient_name);
    ahl__sq_bind_text(st, 7, r->patient_id);
    ahl__sq_bind_text(st, 8, r->patient_birth_date);
    ahl__sq_bind_text(st, 9, r->patient_birth_time);
    ahl__sq_bind_text(st, 10, r->patient_sex);
    ahl__sq_bind_text(st, 11, r->study_date);
    ahl__sq_bind_text(st, 12, r->study_time);
    ahl__sq_bind_text(st, 13, r->accession_number);
    ahl__sq_bind_text(st, 14, r->referring_physician_name);
    ahl__sq_bind_text(st, 15, r->study_description);
    ahl__sq_bind_text(st, 16, r->study_id);
    ahl__sq_bind_text(st, 17, birth_tm);
    ahl__sq_bind_text(st, 18, study_tm);
    return ahl__sq_step_done(CONN(t), st, "qido set put");
}

/* Runs a statement binding ?1 (and ?2, ?3 when given) as text. */
static int exec3(struct ahl_store_tx *t, const char *sql, const char *a, const char *b,
                 const char *c, const char *what)
{
    sqlite3_stmt *st = stmt(t, sql);
    if (!st)
        return AHL_EIO;
    ahl__sq_bind_text(st, 1, a);
    if (b)
        ahl__sq_bind_text(st, 2, b);
    if (c)
        ahl__sq_bind_text(st, 3, c);
    return ahl__sq_step_done(CONN(t), st, what);
}

int ahl__sq_qido_set_delete(struct ahl_store_tx *t, const char *set)
{
    int rc;
    if ((rc = exec3(t,
                    "DELETE FROM qido_instance WHERE series_id IN"
                    " (SELECT id FROM qido_series WHERE imageset_id=?1)",
                    set, NULL, NULL, "qido delete instances")) < 0 ||
        (rc = exec3(t, "DELETE FROM qido_series WHERE imageset_id=?1", set, NULL, NULL,
                    "qido delete series")) < 0)
        return rc;
    return exec3(t, "DELETE FROM qido_set WHERE imageset_id=?1", set, NULL, NULL,
                 "qido delete set");
}

int ahl__sq_qido_series_put(struct ahl_store_tx *t, const struct ahl_qido_series *r)
{
    char series_tm[13];
    sqlite3_stmt *st = stmt(
        t, "INSERT INTO qido_series(imageset_id, datastore_id, study_uid, series_uid,"
           " updated_at, modality, series_number, series_description, series_date, series_time,"
           " series_tm, body_part, instances) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)"
           " ON CONFLICT(imageset_id, series_uid) DO UPDATE SET datastore_id=?2, study_uid=?3,"
           " updated_at=?5, modality=?6, series_number=?7, series_description=?8,"
           " series_date=?9, series_time=?10, series_tm=?11, body_part=?12, instances=?13");
    if (!st)
        return AHL_EIO;
    ahl__qido_tm_key(r->series_time, series_tm);
    ahl__sq_bind_text(st, 1, r->imageset_id);
    ahl__sq_bind_text(st, 2, r->datastore_id);
    ahl__sq_bind_text(st, 3, r->study_uid);
    ahl__sq_bind_text(st, 4, r->series_uid);
    sqlite3_bind_int64(st, 5, r->updated_at_ms);
    ahl__sq_bind_text(st, 6, r->modality);
    if (r->has_series_number)
        sqlite3_bind_int(st, 7, r->series_number);
    ahl__sq_bind_text(st, 8, r->series_description);
    ahl__sq_bind_text(st, 9, r->series_date);
    ahl__sq_bind_text(st, 10, r->series_time);
    ahl__sq_bind_text(st, 11, series_tm);
    ahl__sq_bind_text(st, 12, r->body_part_examined);
    sqlite3_bind_int64(st, 13, r->number_of_instances);
    return ahl__sq_step_done(CONN(t), st, "qido series put");
}

int ahl__sq_qido_series_delete(struct ahl_store_tx *t, const char *set, const char *series)
{
    int rc = exec3(t,
                   "DELETE FROM qido_instance WHERE series_id IN"
                   " (SELECT id FROM qido_series WHERE imageset_id=?1 AND series_uid=?2)",
                   set, series, NULL, "qido delete instances");
    if (rc < 0)
        return rc;
    return exec3(t, "DELETE FROM qido_series WHERE imageset_id=?1 AND series_uid=?2", set, series,
                 NULL, "qido delete series");
}

int ahl__sq_qido_series_touch(struct ahl_store_tx *t, const char *set, int64_t updated_at_ms)
{
    sqlite3_stmt *st = stmt(t, "UPDATE qido_series SET updated_at=?2 WHERE imageset_id=?1 AND"
                               " updated_at<>?2");
    if (!st)
        return AHL_EIO;
    ahl__sq_bind_text(st, 1, set);
    sqlite3_bind_int64(st, 2, updated_at_ms);
    return ahl__sq_step_done(CONN(t), st, "qido series touch");
}

int ahl__sq_qido_instance_put(struct ahl_store_tx *t, const struct ahl_qido_instance *r)
{
    sqlite3_stmt *st =
        stmt(t, "INSERT INTO qido_instance(series_id, sop_uid, sop_class, instance_number, rows_,"
                " columns_, frames, warning) SELECT id, ?3, ?4, ?5, ?6, ?7, ?8, ?9 FROM qido_series"
                " WHERE imageset_id=?1 AND series_uid=?2 ON CONFLICT(series_id, sop_uid) DO UPDATE"
                " SET sop_class=?4, instance_number=?5, rows_=?6, columns_=?7, frames=?8,"
                " warning=?9");
    if (!st)
        return AHL_EIO;
    ahl__sq_bind_text(st, 1, r->imageset_id);
    ahl__sq_bind_text(st, 2, r->series_uid);
    ahl__sq_bind_text(st, 3, r->sop_uid);
    ahl__sq_bind_text(st, 4, r->sop_class_uid);
    if (r->has_instance_number)
        sqlite3_bind_int(st, 5, r->instance_number);
    sqlite3_bind_int64(st, 6, r->rows);
    sqlite3_bind_int64(st, 7, r->columns);
    sqlite3_bind_int64(st, 8, r->number_of_frames);
    if (r->has_warning_reason)
        sqlite3_bind_int64(st, 9, r->warning_reason);
    return ahl__sq_step_one_change(CONN(t), st, "qido instance put");
}

int ahl__sq_qido_instance_delete(struct ahl_store_tx *t, const char *set, const char *series,
                                 const char *sop)
{
    return exec3(t,
                 "DELETE FROM qido_instance WHERE sop_uid=?3 AND series_id=(SELECT id FROM"
                 " qido_series WHERE imageset_id=?1 AND series_uid=?2)",
                 set, series, sop, "qido delete instance");
}

/* The study row's columns that come from the study's newest set, and what each is made of. */
static const char *const study_attr_col[] = {
    "imageset_id", "updated_at", "patient_name", "pn_norm", "patient_id", "patient_birth_date",
    "patient_birth_time", "birth_tm", "patient_sex", "study_date", "study_time", "study_tm",
    "accession_number", "referring_physician_name", "ref_norm", "study_description", "study_id",
};
#define STUDY_ATTRS (sizeof study_attr_col / sizeof study_attr_col[0])

/* Copies the newest set's attributes into the study row, setting only the columns whose values
 * differ: SQLite rewrites the entry of every index on a column an UPDATE sets, changed or not,
 * and the study row has ten indexes, so a PatientName edit rewrote ten pages instead of three.
 * Then the study's time into its modality rows, when it moved. *found: the study row exists. */
static int study_attrs(struct ahl_store_tx *t, const char *ds, const char *study, bool *found)
{
    sqlite3_stmt *st = stmt(
        t, "SELECT s.id, n.imageset_id, n.updated_at, n.patient_name, upper(n.patient_name),"
           " n.patient_id, n.patient_birth_date, n.patient_birth_time, n.birth_tm, n.patient_sex,"
           " n.study_date, n.study_time, n.study_tm, n.accession_number,"
           " n.referring_physician_name, upper(n.referring_physician_name), n.study_description,"
           " n.study_id, s.imageset_id, s.updated_at, s.patient_name, s.pn_norm, s.patient_id,"
           " s.patient_birth_date, s.patient_birth_time, s.birth_tm, s.patient_sex, s.study_date,"
           " s.study_time, s.study_tm, s.accession_number, s.referring_physician_name,"
           " s.ref_norm, s.study_description, s.study_id FROM qido_study s, (SELECT * FROM"
           " qido_set INDEXED BY qido_set_study WHERE datastore_id=?1 AND study_uid=?2 ORDER BY"
           " updated_at DESC, imageset_id DESC LIMIT 1) n WHERE s.datastore_id=?1 AND"
           " s.study_uid=?2");
    if (!st)
        return AHL_EIO;
    ahl__sq_bind_text(st, 1, ds);
    ahl__sq_bind_text(st, 2, study);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : ahl__sq_err(CONN(t)->db, rc, "qido study attributes");
    }
    /* The values to set, copied: preparing the UPDATE may evict this statement. */
    sqlite3_value *v[STUDY_ATTRS];
    size_t n = 0;
    sqlite3_int64 id = sqlite3_column_int64(st, 0);
    bool moved = false;
    char sql[1024];
    size_t len = (size_t)snprintf(sql, sizeof sql, "UPDATE qido_study SET");
    rc = 0;
    for (size_t i = 0; i < STUDY_ATTRS; i++) {
        int a = (int)i + 1, b = (int)(i + 1 + STUDY_ATTRS);
        int ta = sqlite3_column_type(st, a), tb = sqlite3_column_type(st, b);
        int na = sqlite3_column_bytes(st, a);
        bool same = ta == tb && (ta == SQLITE_INTEGER
                                     ? sqlite3_column_int64(st, a) == sqlite3_column_int64(st, b)
                                     : na == sqlite3_column_bytes(st, b) &&
                                           (!na || !memcmp(sqlite3_column_blob(st, a),
                                                           sqlite3_column_blob(st, b),
                                                           (size_t)na)));
        if (same)
            continue;
        if (!(v[n] = sqlite3_value_dup(sqlite3_column_value(st, a)))) {
            rc = AHL_ENOMEM;
            break;
        }
        moved |= !strcmp(study_attr_col[i], "updated_at");
        len += (size_t)snprintf(sql + len, sizeof sql - len, "%s %s=?%zu", n ? "," : "",
                                study_attr_col[i], n + 2);
        n++;
    }
    sqlite3_reset(st);
    if (rc == 0 && n) {
        snprintf(sql + len, sizeof sql - len, " WHERE id=?1");
        sqlite3_stmt *up = stmt(t, sql);
        if (!up) {
            rc = AHL_EIO;
        } else {
            sqlite3_bind_int64(up, 1, id);
            for (size_t k = 0; k < n; k++)
                sqlite3_bind_value(up, (int)k + 2, v[k]);
            rc = ahl__sq_step_done(CONN(t), up, "qido study attributes");
        }
    }
    for (size_t k = 0; k < n; k++)
        sqlite3_value_free(v[k]);
    if (rc == 0 && moved)
        rc = exec3(t,
                   "UPDATE qido_study_modality SET updated_at=(SELECT updated_at FROM qido_study"
                   " WHERE datastore_id=?1 AND study_uid=?2) WHERE datastore_id=?1 AND"
                   " study_uid=?2",
                   ds, study, NULL, "qido study modality time");
    return rc;
}

int ahl__sq_qido_study_refresh(struct ahl_store_tx *t, const char *ds, const char *study,
                               bool attrs_only)
{
    if (attrs_only) {
        bool found;
        int rc = study_attrs(t, ds, study, &found);
        if (rc < 0 || found)
            return rc;
        /* No study row: build it. */
    }
    static const char *const sql[] = {
        "DELETE FROM qido_study WHERE datastore_id=?1 AND study_uid=?2",
        "DELETE FROM qido_study_modality WHERE datastore_id=?1 AND study_uid=?2",
        /* The newest set of the study gives the Patient and Study attributes. */
        "INSERT INTO qido_study(datastore_id, study_uid, imageset_id, updated_at, patient_name,"
        " pn_norm, patient_id, patient_birth_date, patient_birth_time, birth_tm, patient_sex,"
        " study_date, study_time, study_tm, accession_number, referring_physician_name,"
        " ref_norm, study_description, study_id, modalities, series_count, instance_count)"
        " SELECT datastore_id, study_uid, imageset_id, updated_at, patient_name,"
        " upper(patient_name), patient_id, patient_birth_date, patient_birth_time, birth_tm,"
        " patient_sex, study_date, study_time, study_tm, accession_number,"
        " referring_physician_name, upper(referring_physician_name), study_description, study_id,"
        " (SELECT ifnull(group_concat(m, '\\'), '') FROM (SELECT DISTINCT modality AS m FROM"
        " qido_series INDEXED BY qido_series_study WHERE datastore_id=?1 AND study_uid=?2 AND"
        " modality<>'' ORDER BY 1)),"
        " (SELECT count(*) FROM qido_series INDEXED BY qido_series_study WHERE datastore_id=?1"
        " AND study_uid=?2),"
        " (SELECT ifnull(sum(instances), 0) FROM qido_series INDEXED BY qido_series_study"
        " WHERE datastore_id=?1 AND study_uid=?2)"
        " FROM qido_set INDEXED BY qido_set_study WHERE datastore_id=?1 AND study_uid=?2"
        " ORDER BY updated_at DESC, imageset_id DESC LIMIT 1",
        "INSERT INTO qido_study_modality(datastore_id, study_uid, modality, updated_at)"
        " SELECT DISTINCT e.datastore_id, e.study_uid, e.modality, s.updated_at FROM qido_series e"
        " INDEXED BY qido_series_study JOIN qido_study s ON s.datastore_id=e.datastore_id AND "
        "s.study_uid=e.study_uid"
        " WHERE e.datastore_id=?1 AND e.study_uid=?2 AND e.modality<>''",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        int rc = exec3(t, sql[i], ds, study, NULL, "qido study refresh");
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ahl__sq_qido_backfill_next(struct ahl_store_tx *t, char id[AHL_ID_LEN + 1])
{
    sqlite3_stmt *st = stmt(t, "SELECT imageset_id FROM qido_backfill ORDER BY imageset_id"
                               " LIMIT 1");
    if (!st)
        return AHL_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        ahl__sq_col_text(st, 0, id, AHL_ID_LEN + 1);
        sqlite3_reset(st);
        return 0;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? AHL_ENOTFOUND : ahl__sq_err(CONN(t)->db, rc, "qido backfill");
}

int ahl__sq_qido_backfill_done(struct ahl_store_tx *t, const char *id)
{
    return exec3(t, "DELETE FROM qido_backfill WHERE imageset_id=?1", id, NULL, NULL,
                 "qido backfill done");
}

/* ---- searches -------------------------------------------------------------------------------- */

/* The index each key drives a search with (INDEXED BY; NULL: never drives, or, for
 * StudyInstanceUID, the level's study_index; instance keys are filtered within their series). */
static const char *const key_index[AHL_QK_COUNT] = {
    [AHL_QK_PATIENT_NAME] = "qido_study_pn",
    [AHL_QK_PATIENT_ID] = "qido_study_patient",
    [AHL_QK_BIRTH_DATE] = "qido_study_birth",
    [AHL_QK_STUDY_DATE] = "qido_study_date",
    [AHL_QK_ACCESSION] = "qido_study_accession",
    [AHL_QK_MODALITIES] = "qido_modality",
    [AHL_QK_REFERRING] = "qido_study_ref",
    [AHL_QK_STUDY_DESC] = "qido_study_desc",
    [AHL_QK_STUDY_ID] = "qido_study_id",
    [AHL_QK_SERIES_UID] = "qido_series_uid",
    [AHL_QK_MODALITY] = "qido_series_modality",
    [AHL_QK_SERIES_NUMBER] = "qido_series_number",
    [AHL_QK_SERIES_DESC] = "qido_series_desc",
    [AHL_QK_SERIES_DATE] = "qido_series_date",
    [AHL_QK_BODY_PART] = "qido_series_body",
};

/* What query_sql binds, in placeholder order. */
struct binds {
    struct {
        const char *text; /* NULL: integer */
        long long i;
    } v[AHL_QIDO_MAX_FILTERS * (AHL_QIDO_MAX_LIST + 4) + 4];
    unsigned n;
    char *owned[AHL_QIDO_MAX_FILTERS * 4]; /* converted values, freed with the binds */
    unsigned nowned;
};

static void binds_release(struct binds *b)
{
    for (unsigned i = 0; i < b->nowned; i++)
        free(b->owned[i]);
    b->nowned = 0;
}

static const char *own(struct binds *b, char *s)
{
    if (!s || b->nowned == sizeof b->owned / sizeof b->owned[0]) {
        free(s);
        return NULL;
    }
    return b->owned[b->nowned++] = s;
}

/* A GLOB pattern of a DICOM wildcard value ('[' quoted), upper-cased for PN keys. */
static char *glob_of(const char *v, bool upper)
{
    size_t n = strlen(v);
    char *g = malloc(3 * n + 1), *o = g;
    if (!g)
        return NULL;
    for (; *v; v++) {
        if (*v == '[') {
            memcpy(o, "[[]", 3);
            o += 3;
        } else {
            *o++ = upper && *v >= 'a' && *v <= 'z' ? (char)(*v - 'a' + 'A') : *v;
        }
    }
    *o = '\0';
    return g;
}

/* The smallest string above every string starting with prefix (its last byte below 0xFF
 * incremented), or NULL when there is none (out of memory is reported as NULL too: the caller
 * then writes no upper bound, which is still correct). */
static char *prefix_end(const char *prefix)
{
    char *e = strdup(prefix);
    size_t n = e ? strlen(e) : 0;
    while (n > 0 && (unsigned char)e[n - 1] == 0xFF)
        n--;
    if (n == 0) {
        free(e);
        return NULL;
    }
    e[n - 1] = (char)((unsigned char)e[n - 1] + 1);
    e[n] = '\0';
    return e;
}

struct sql {
    char *p;
    size_t n, cap;
    bool fail;
};

static void add(struct sql *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct sql *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(s->p + s->n, s->cap - s->n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= s->cap - s->n)
        s->fail = true;
    else
        s->n += (size_t)w;
}

static void bind_text(struct binds *b, const char *t)
{
    b->v[b->n].text = t ? t : "";
    b->v[b->n++].i = 0;
}

static void bind_int(struct binds *b, long long i)
{
    b->v[b->n].text = NULL;
    b->v[b->n++].i = i;
}

/* The index of the level's default order, and the study UID index of each level. */
static const char *const order_index[] = {"qido_study_updated", "qido_series_updated",
                                          "qido_series_updated"};
static const char *const study_index[] = {"qido_study_uid", "qido_series_study",
                                          "qido_series_study"};

/* One filter's condition; drv when it drives (its column then written without '+'). */
static int add_filter(const struct ahl_qido_query *q, const struct ahl_qido_filter *f, bool drv,
                      struct sql *s, struct binds *b)
{
    int type = ahl__qido_keys[f->key].type;
    const char *col = ahl__qido_key_col(f->key, q->level);
    /* SOPInstanceUID is in the index the instances are read by (query_sql). */
    const char *plus = drv || f->key == AHL_QK_SOP_UID ? "" : "+";
    if (type == K_MODS) {
        if (drv) {
            add(s, " AND m.modality=?");
            bind_text(b, f->value);
            return 0;
        }
        add(s,
            " AND EXISTS (SELECT 1 FROM qido_study_modality x WHERE x.datastore_id=s.datastore_id"
            " AND x.study_uid=s.study_uid AND x.modality IN (");
        for (unsigned i = 0; i < (f->match == AHL_QM_LIST ? f->nlist : 1); i++) {
            add(s, i ? ",?" : "?");
            bind_text(b, f->match == AHL_QM_LIST ? f->list[i] : f->value);
        }
        add(s, "))");
        return 0;
    }
    switch (f->match) {
    case AHL_QM_SINGLE:
        if (type == K_INT) {
            long long v = 0;
            ahl__qido_parse_int(f->value, &v);
            add(s, " AND %s%s=?", plus, col);
            bind_int(b, v);
        } else if (type == K_TIME) {
            char k[13];
            ahl__qido_tm_key(f->value, k);
            add(s, " AND %s%s=?", plus, col);
            bind_text(b, own(b, strdup(k)));
        } else if (type == K_PN && q->fuzzy) {
            goto wild;
        } else {
            add(s, " AND %s%s=?", plus, col);
            bind_text(b, type == K_PN ? own(b, ahl__qido_upper_of(f->value)) : f->value);
        }
        return 0;
    case AHL_QM_WILD:
    wild : {
        bool pn = type == K_PN;
        const char *g = own(b, glob_of(f->value, pn));
        if (!g)
            return AHL_ENOMEM;
        if (pn && q->fuzzy) {
            /* Any word of the name beginning with the value. */
            add(s, " AND (%s GLOB ? || '*' OR %s GLOB '*[ =,^]' || ? || '*')", col, col);
            bind_text(b, g);
            bind_text(b, g);
            return 0;
        }
        if (drv) {
            const char *pre = own(b, ahl__qido_prefix_of(f->value, pn));
            if (!pre)
                return AHL_ENOMEM;
            add(s, " AND %s>=?", col);
            bind_text(b, pre);
            char *end = prefix_end(pre);
            if (end) {
                add(s, " AND %s<?", col);
                bind_text(b, own(b, end));
            }
        }
        add(s, " AND +%s GLOB ?", col);
        bind_text(b, g);
        return 0;
    }
    case AHL_QM_RANGE:
        for (int i = 0; i < 2; i++) {
            const char *v = i ? f->hi : f->lo;
            if (!*v)
                continue;
            add(s, " AND %s%s%s?", plus, col, i ? "<=" : ">=");
            if (type == K_TIME) {
                char k[13];
                ahl__qido_tm_key(v, k);
                bind_text(b, own(b, strdup(k)));
            } else {
                bind_text(b, v);
            }
        }
        return 0;
    case AHL_QM_LIST:
        add(s, " AND %s%s IN (", plus, col);
        for (unsigned i = 0; i < f->nlist; i++) {
            add(s, i ? ",?" : "?");
            bind_text(b, f->list[i]);
        }
        add(s, ")");
        return 0;
    }
    return AHL_EINVAL;
}

#define STUDY_SEL                                                                             \
    "s.imageset_id, s.datastore_id, s.updated_at, s.study_uid, s.patient_name, s.patient_id," \
    " s.patient_birth_date, s.patient_birth_time, s.patient_sex, s.study_date, s.study_time," \
    " s.accession_number, s.referring_physician_name, s.study_description, s.study_id,"       \
    " s.modalities, s.series_count, s.instance_count"
#define SERIES_SEL                                                                        \
    "e.imageset_id, e.datastore_id, e.study_uid, e.series_uid, e.updated_at, e.modality," \
    " e.series_number, e.series_description, e.series_date, e.series_time, e.body_part,"  \
    " e.instances"
#define INSTANCE_SEL                                                                         \
    SERIES_SEL ", i.sop_uid, i.sop_class, i.instance_number, i.rows_, i.columns_, i.frames," \
               " i.warning"

/* Does an instance search name its SOPInstanceUIDs (then the instances' key index drives)? */
static bool has_sop(const struct ahl_qido_query *q)
{
    for (unsigned i = 0; i < q->nf; i++)
        if (q->f[i].key == AHL_QK_SOP_UID &&
            (q->f[i].match == AHL_QM_SINGLE || q->f[i].match == AHL_QM_LIST))
            return true;
    return false;
}

static int query_sql(const struct ahl_qido_query *q, struct sql *s, struct binds *b)
{
    int rc;
    if (q->level < AHL_QIDO_STUDY || q->level > AHL_QIDO_INSTANCE || q->nf > AHL_QIDO_MAX_FILTERS ||
        q->limit < 1 || q->limit > AHL_QIDO_MAX_LIMIT || q->offset > AHL_QIDO_MAX_OFFSET)
        return AHL_EINVAL;
    int drv = -1;
    for (unsigned i = 0; i < q->nf; i++) {
        if ((rc = ahl__qido_check_filter(q, &q->f[i])) < 0)
            return rc;
        if (ahl__qido_can_drive(q, &q->f[i]) &&
            (drv < 0 || ahl__qido_keys[q->f[i].key].rank < ahl__qido_keys[q->f[drv].key].rank))
            drv = (int)i;
    }
    int dkey = drv >= 0 ? q->f[drv].key : -1;
    const char *index = dkey < 0                   ? order_index[q->level]
                        : dkey == AHL_QK_STUDY_UID ? study_index[q->level]
                                                   : key_index[dkey];
    /* A study search driven by a key that does not give the order (a date range may match
     * thousands) picks the page's ids first, from the index where it covers the order (StudyDate's
     * holds updated_at and the UID), so that only the page's rows are read whole. */
    bool two_stage = q->level == AHL_QIDO_STUDY && dkey >= 0 && dkey != AHL_QK_MODALITIES &&
                     dkey != AHL_QK_STUDY_UID;
    bind_text(b, NULL); /* ?1: the data store, bound by bind_all */
    if (q->level == AHL_QIDO_STUDY && dkey == AHL_QK_MODALITIES)
        add(s, "SELECT " STUDY_SEL " FROM qido_study_modality m INDEXED BY qido_modality CROSS JOIN"
               " qido_study s ON s.datastore_id=m.datastore_id AND s.study_uid=m.study_uid"
               " WHERE m.datastore_id=?1");
    else if (q->level == AHL_QIDO_STUDY && two_stage)
        add(s,
            "SELECT " STUDY_SEL " FROM qido_study s WHERE s.id IN (SELECT s.id FROM qido_study s"
            " INDEXED BY %s WHERE s.datastore_id=?1",
            index);
    else if (q->level == AHL_QIDO_STUDY)
        add(s, "SELECT " STUDY_SEL " FROM qido_study s INDEXED BY %s WHERE s.datastore_id=?1",
            index);
    else if (q->level == AHL_QIDO_SERIES)
        add(s, "SELECT " SERIES_SEL " FROM qido_series e INDEXED BY %s WHERE e.datastore_id=?1",
            index);
    else
        add(s,
            "SELECT " INSTANCE_SEL " FROM qido_series e INDEXED BY %s CROSS JOIN"
            " qido_instance i INDEXED BY %s ON i.series_id=e.id WHERE e.datastore_id=?1",
            index, has_sop(q) ? "qido_instance_key" : "qido_instance_number");
    for (unsigned i = 0; i < q->nf; i++)
        if ((rc = add_filter(q, &q->f[i], (int)i == drv, s, b)) < 0)
            return rc;
    if (q->level == AHL_QIDO_STUDY)
        add(s, dkey == AHL_QK_MODALITIES ? " ORDER BY m.updated_at DESC, m.study_uid DESC"
                                         : " ORDER BY s.updated_at DESC, s.study_uid DESC");
    else if (q->level == AHL_QIDO_SERIES)
        add(s, " ORDER BY e.updated_at DESC, e.series_uid DESC, e.id DESC");
    else
        add(s, " ORDER BY e.series_uid, e.id, i.instance_number, i.sop_uid");
    add(s, " LIMIT ? OFFSET ?");
    bind_int(b, q->limit);
    bind_int(b, q->offset);
    if (two_stage)
        add(s, ") ORDER BY s.updated_at DESC, s.study_uid DESC");
    return s->fail ? AHL_ETOOBIG : 0;
}

static void bind_all(sqlite3_stmt *st, const char *ds, const struct binds *b)
{
    ahl__sq_bind_text(st, 1, ds);
    for (unsigned i = 1; i < b->n; i++) {
        if (b->v[i].text)
            sqlite3_bind_text(st, (int)i + 1, b->v[i].text, -1, SQLITE_STATIC);
        else
            sqlite3_bind_int64(st, (int)i + 1, b->v[i].i);
    }
}

static void series_cols(sqlite3_stmt *st, struct ahl_qido_row *r)
{
    struct ahl_qido_series *e = &r->series;
    ahl__sq_col_text(st, 0, e->imageset_id, sizeof e->imageset_id);
    ahl__sq_col_text(st, 1, e->datastore_id, sizeof e->datastore_id);
    ahl__sq_col_text(st, 2, e->study_uid, sizeof e->study_uid);
    ahl__sq_col_text(st, 3, e->series_uid, sizeof e->series_uid);
    e->updated_at_ms = sqlite3_column_int64(st, 4);
    ahl__sq_col_text(st, 5, e->modality, sizeof e->modality);
    e->has_series_number = sqlite3_column_type(st, 6) != SQLITE_NULL;
    e->series_number = sqlite3_column_int(st, 6);
    ahl__sq_col_text(st, 7, e->series_description, sizeof e->series_description);
    ahl__sq_col_text(st, 8, e->series_date, sizeof e->series_date);
    ahl__sq_col_text(st, 9, e->series_time, sizeof e->series_time);
    ahl__sq_col_text(st, 10, e->body_part_examined, sizeof e->body_part_examined);
    e->number_of_instances = (uint32_t)sqlite3_column_int64(st, 11);
    memcpy(r->study.study_uid, e->study_uid, sizeof r->study.study_uid);
}

static void result_row(sqlite3_stmt *st, int level, struct ahl_qido_row *r)
{
    memset(r, 0, sizeof *r);
    if (level == AHL_QIDO_STUDY) {
        struct ahl_qido_set *s = &r->study;
        ahl__sq_col_text(st, 0, s->imageset_id, sizeof s->imageset_id);
        ahl__sq_col_text(st, 1, s->datastore_id, sizeof s->datastore_id);
        s->updated_at_ms = sqlite3_column_int64(st, 2);
        ahl__sq_col_text(st, 3, s->study_uid, sizeof s->study_uid);
        ahl__sq_col_text(st, 4, s->patient_name, sizeof s->patient_name);
        ahl__sq_col_text(st, 5, s->patient_id, sizeof s->patient_id);
        ahl__sq_col_text(st, 6, s->patient_birth_date, sizeof s->patient_birth_date);
        ahl__sq_col_text(st, 7, s->patient_birth_time, sizeof s->patient_birth_time);
        ahl__sq_col_text(st, 8, s->patient_sex, sizeof s->patient_sex);
        ahl__sq_col_text(st, 9, s->study_date, sizeof s->study_date);
        ahl__sq_col_text(st, 10, s->study_time, sizeof s->study_time);
        ahl__sq_col_text(st, 11, s->accession_number, sizeof s->accession_number);
        ahl__sq_col_text(st, 12, s->referring_physician_name, sizeof s->referring_physician_name);
        ahl__sq_col_text(st, 13, s->study_description, sizeof s->study_description);
        ahl__sq_col_text(st, 14, s->study_id, sizeof s->study_id);
        ahl__sq_col_text(st, 15, r->modalities_in_study, sizeof r->modalities_in_study);
        r->study_series = (uint32_t)sqlite3_column_int64(st, 16);
        r->study_instances = (uint32_t)sqlite3_column_int64(st, 17);
        return;
    }
    series_cols(st, r);
    if (level == AHL_QIDO_INSTANCE) {
        struct ahl_qido_instance *i = &r->instance;
        memcpy(i->imageset_id, r->series.imageset_id, sizeof i->imageset_id);
        memcpy(i->series_uid, r->series.series_uid, sizeof i->series_uid);
        ahl__sq_col_text(st, 12, i->sop_uid, sizeof i->sop_uid);
        ahl__sq_col_text(st, 13, i->sop_class_uid, sizeof i->sop_class_uid);
        i->has_instance_number = sqlite3_column_type(st, 14) != SQLITE_NULL;
        i->instance_number = sqlite3_column_int(st, 14);
        i->rows = (uint32_t)sqlite3_column_int64(st, 15);
        i->columns = (uint32_t)sqlite3_column_int64(st, 16);
        i->number_of_frames = (uint32_t)sqlite3_column_int64(st, 17);
        i->has_warning_reason = sqlite3_column_type(st, 18) != SQLITE_NULL;
        i->warning_reason = (uint32_t)sqlite3_column_int64(st, 18);
    }
}

/* Builds q's SQL (prefixed with prefix) and its bindings; *b and *s must be released. */
static int build(const struct ahl_qido_query *q, const char *prefix, struct sql *s,
                 struct binds **b)
{
    *b = calloc(1, sizeof **b);
    s->cap = 16384;
    s->p = malloc(s->cap);
    if (!*b || !s->p)
        return AHL_ENOMEM;
    s->n = 0;
    add(s, "%s", prefix);
    return query_sql(q, s, *b);
}

static void build_release(struct sql *s, struct binds *b)
{
    if (b)
        binds_release(b);
    free(b);
    free(s->p);
}

int ahl__sq_qido_query(struct ahl_store_tx *t, const char *ds, const struct ahl_qido_query *q,
                       ahl_store_qido_cb cb, void *ctx)
{
    struct sql s = {0};
    struct binds *b = NULL;
    struct ahl_qido_row *row = NULL;
    int rc = build(q, "", &s, &b);
    if (rc < 0)
        goto out;
    sqlite3_stmt *st = ahl__sq_runtime_stmt(CONN(t), s.p);
    if (!st || !(row = malloc(sizeof *row))) {
        rc = st ? AHL_ENOMEM : AHL_EIO;
        goto out;
    }
    bind_all(st, ds, b);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        result_row(st, q->level, row);
        int u = cb(ctx, row);
        if (u) {
            sqlite3_reset(st);
            rc = u;
            goto out;
        }
    }
    sqlite3_reset(st);
    rc = rc == SQLITE_DONE ? 0 : ahl__sq_err(CONN(t)->db, rc, "qido query");
out:
    free(row);
    build_release(&s, b);
    return rc;
}

int ahl__sq_qido_plan(struct ahl_store_tx *t, const char *ds, const struct ahl_qido_query *q,
                      ahl_store_plan_cb cb, void *ctx)
{
    struct sql s = {0};
    struct binds *b = NULL;
    sqlite3_stmt *st = NULL;
    int rc = build(q, "EXPLAIN QUERY PLAN ", &s, &b);
    if (rc < 0)
        goto out;
    if (sqlite3_prepare_v2(CONN(t)->db, s.p, -1, &st, NULL) != SQLITE_OK) {
        rc = ahl__sq_err(CONN(t)->db, SQLITE_ERROR, "qido plan");
        goto out;
    }
    bind_all(st, ds, b);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int u = cb(ctx, (const char *)sqlite3_column_text(st, 3));
        if (u) {
            rc = u;
            goto out;
        }
    }
    rc = rc == SQLITE_DONE ? 0 : ahl__sq_err(CONN(t)->db, rc, "qido plan");
out:
    sqlite3_finalize(st);
    build_release(&s, b);
    return rc;
}
