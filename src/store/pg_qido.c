/* The PostgreSQL backend's QIDO-RS index (docs/dicomweb.md#search-qido-rs): the set, series,
 * instance and study rows of store.h's "QIDO-RS index", and the searches over them, answering
 * exactly as the SQLite backend does (sqlite_qido.c): the same rows, in the same order, the same
 * refusals.
 *
 * Text is compared and sorted by byte value, as SQLite does: every text column is COLLATE "C",
 * and upper() under that collation changes ASCII letters only, as SQLite's does. PN keys are
 * matched on upper-cased copies (pn_norm, ref_norm), TM keys on 12-digit keys (HHMMSSFFFFFF)
 * written beside the values; SQLite's GLOB patterns become LIKE patterns ('*' '%', '?' '_', with
 * '%', '_' and '\' escaped).
 *
 * Writes on the update path are one statement each: the set, series and instance rows are
 * upserts, deletes take their dependent rows in the same statement, a study refresh (whole or
 * attributes only) is one statement with data-modifying WITH clauses, and nothing is rewritten
 * when its values did not change.
 *
 * A search is one SELECT written per query shape (kept prepared by the connection), over indexes
 * led by the data store for every search key (instance keys: by series, since instances are read
 * through their series rows). Sequential scans are off for the query (ahl__pg_no_seqscan), so
 * every search is answered from indexes; ahl_store_qido_plan shows which (EXPLAIN). A wildcard
 * with a literal prefix is also written as a range of its column, which its index answers.
 */
#include "store/pg_internal.h"
#include "store/query_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "base/log.h"
#include "base/text.h"
#include "base/banned.h"

/* ---- schema --------------------------------------------------------------------------------- */

#define C " COLLATE \"C\" NOT NULL"

const char *const ahl__pg_qido_ddl[] = {
    "CREATE TABLE IF NOT EXISTS qido_set(imageset_id text COLLATE \"C\" PRIMARY KEY,"
    " datastore_id text" C ", root bytea NOT NULL, updated_at bigint NOT NULL, study_uid text" C
    ", patient_name text" C ", patient_id text" C ", patient_birth_date text" C
    ", patient_birth_time text" C ", birth_tm text" C ", patient_sex text" C ", study_date text" C
    ", study_time text" C ", study_tm text" C ", accession_number text" C
    ", referring_physician_name text" C ", study_description text" C ", study_id text" C ")",
    "CREATE INDEX IF NOT EXISTS qido_set_study ON qido_set(datastore_id, study_uid, updated_at,"
    " imageset_id)",
    /* One row per (data store, study); the index of every study search key. */
    "CREATE TABLE IF NOT EXISTS qido_study(datastore_id text" C ", study_uid text" C
    ", imageset_id text" C ", updated_at bigint NOT NULL, patient_name text" C ", pn_norm text" C
    ", patient_id text" C ", patient_birth_date text" C ", patient_birth_time text" C
    ", birth_tm text" C ", patient_sex text" C ", study_date text" C ", study_time text" C
    ", study_tm text" C ", accession_number text" C ", referring_physician_name text" C
    ", ref_norm text" C ", study_description text" C ", study_id text" C ", modalities text" C
    ", series_count bigint NOT NULL, instance_count bigint NOT NULL,"
    " PRIMARY KEY(datastore_id, study_uid))",
    "CREATE INDEX IF NOT EXISTS qido_study_updated ON qido_study(datastore_id, updated_at,"
    " study_uid)",
    "CREATE INDEX IF NOT EXISTS qido_study_pn ON qido_study(datastore_id, pn_norm)",
    "CREATE INDEX IF NOT EXISTS qido_study_patient ON qido_study(datastore_id, patient_id)",
    "CREATE INDEX IF NOT EXISTS qido_study_birth ON qido_study(datastore_id, patient_birth_date,"
    " birth_tm)",
    "CREATE INDEX IF NOT EXISTS qido_study_date ON qido_study(datastore_id, study_date, study_tm)",
    "CREATE INDEX IF NOT EXISTS qido_study_accession ON qido_study(datastore_id,"
    " accession_number)",
    "CREATE INDEX IF NOT EXISTS qido_study_ref ON qido_study(datastore_id, ref_norm)",
    "CREATE INDEX IF NOT EXISTS qido_study_desc ON qido_study(datastore_id, study_description)",
    "CREATE INDEX IF NOT EXISTS qido_study_id ON qido_study(datastore_id, study_id)",
    "CREATE TABLE IF NOT EXISTS qido_study_modality(datastore_id text" C ", study_uid text" C
    ", modality text" C ", updated_at bigint NOT NULL,"
    " PRIMARY KEY(datastore_id, study_uid, modality))",
    "CREATE INDEX IF NOT EXISTS qido_modality ON qido_study_modality(datastore_id, modality,"
    " updated_at, study_uid)",
    /* Series rows; id is what their instance rows carry. */
    "CREATE TABLE IF NOT EXISTS qido_series(id bigint GENERATED ALWAYS AS IDENTITY,"
    " imageset_id text" C ", datastore_id text" C ", study_uid text" C ", series_uid text" C
    ", updated_at bigint NOT NULL, modality text" C ", series_number integer,"
    " series_description text" C ", series_date text" C ", series_time text" C ", series_tm text" C
    ", body_part text" C ", instances bigint NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS qido_series_key ON qido_series(imageset_id, series_uid)",
    "CREATE INDEX IF NOT EXISTS qido_series_study ON qido_series(datastore_id, study_uid,"
    " updated_at)",
    "CREATE INDEX IF NOT EXISTS qido_series_uid ON qido_series(datastore_id, series_uid)",
    "CREATE INDEX IF NOT EXISTS qido_series_updated ON qido_series(datastore_id, updated_at,"
    " series_uid)",
    "CREATE INDEX IF NOT EXISTS qido_series_modality ON qido_series(datastore_id, modality,"
    " updated_at)",
    "CREATE INDEX IF NOT EXISTS qido_series_number ON qido_series(datastore_id, series_number)",
    "CREATE INDEX IF NOT EXISTS qido_series_desc ON qido_series(datastore_id,"
    " series_description)",
    "CREATE INDEX IF NOT EXISTS qido_series_date ON qido_series(datastore_id, series_date,"
    " series_tm)",
    "CREATE INDEX IF NOT EXISTS qido_series_body ON qido_series(datastore_id, body_part)",
    /* Instance rows, read through their series: by SOPInstanceUID (the key) or in the order of
     * an instance search (InstanceNumber, absent first, as SQLite sorts NULL). */
    "CREATE TABLE IF NOT EXISTS qido_instance(series_id bigint NOT NULL, sop_uid text" C
    ", sop_class text" C ", instance_number integer, rows_ bigint NOT NULL,"
    " columns_ bigint NOT NULL, frames bigint NOT NULL, warning bigint,"
    " PRIMARY KEY(series_id, sop_uid))",
    "CREATE INDEX IF NOT EXISTS qido_instance_number ON qido_instance(series_id,"
    " instance_number NULLS FIRST, sop_uid)",
    "CREATE TABLE IF NOT EXISTS qido_backfill(imageset_id text COLLATE \"C\" PRIMARY KEY)",
    NULL,
};

#undef C

/* ---- rows ------------------------------------------------------------------------------------ */

/* The set row's columns in the table's order, which ROW(EXCLUDED.*) follows. */
#define SET_COLS                                                                              \
    "imageset_id, datastore_id, root, updated_at, study_uid, patient_name, patient_id,"       \
    " patient_birth_date, patient_birth_time, birth_tm, patient_sex, study_date, study_time," \
    " study_tm, accession_number, referring_physician_name, study_description, study_id"

static const struct ahl__pg_stmt st_set_get = {
    "qido_set_get",
    "SELECT imageset_id, datastore_id, encode(root, 'hex'), updated_at, study_uid, patient_name,"
    " patient_id, patient_birth_date, patient_birth_time, patient_sex, study_date, study_time,"
    " accession_number, referring_physician_name, study_description, study_id FROM qido_set"
    " WHERE imageset_id=$1",
};

/* Written only when it changed. */
static const struct ahl__pg_stmt st_set_put = {
    "qido_set_put",
    "INSERT INTO qido_set(" SET_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,"
    "$16,$17,$18) ON CONFLICT(imageset_id) DO UPDATE SET (" SET_COLS ") = ROW(EXCLUDED.*)"
    " WHERE ROW(qido_set.*) IS DISTINCT FROM ROW(EXCLUDED.*)",
};

/* A set's rows of every kind, its instance rows through its series rows. */
static const struct ahl__pg_stmt st_set_delete = {
    "qido_set_delete",
    "WITH e AS (DELETE FROM qido_series WHERE imageset_id=$1 RETURNING id),"
    " i AS (DELETE FROM qido_instance WHERE series_id IN (SELECT id FROM e))"
    " DELETE FROM qido_set WHERE imageset_id=$1",
};

/* Updated in place, so that its id, which its instance rows carry, stays; not at all when the
 * same. */
#define SERIES_SET                                                                      \
    "datastore_id, study_uid, updated_at, modality, series_number, series_description," \
    " series_date, series_time, series_tm, body_part, instances"
#define SERIES_NEW                                                                       \
    "EXCLUDED.datastore_id, EXCLUDED.study_uid, EXCLUDED.updated_at, EXCLUDED.modality," \
    " EXCLUDED.series_number, EXCLUDED.series_description, EXCLUDED.series_date,"        \
    " EXCLUDED.series_time, EXCLUDED.series_tm, EXCLUDED.body_part, EXCLUDED.instances"
#define SERIES_OLD                                                                      \
    "qido_series.datastore_id, qido_series.study_uid, qido_series.updated_at,"          \
    " qido_series.modality, qido_series.series_number, qido_series.series_description," \
    " qido_series.series_date, qido_series.series_time, qido_series.series_tm,"         \
    " qido_series.body_part, qido_series.instances"

static const struct ahl__pg_stmt st_series_put = {
    "qido_series_put",
    "INSERT INTO qido_series(imageset_id, datastore_id, study_uid, series_uid, updated_at,"
    " modality, series_number, series_description, series_date, series_time, series_tm,"
    " body_part, instances) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)"
    " ON CONFLICT(imageset_id, series_uid) DO UPDATE SET (" SERIES_SET ") = (" SERIES_NEW ")"
    " WHERE (" SERIES_OLD ") IS DISTINCT FROM (" SERIES_NEW ")",
};

static const struct ahl__pg_stmt st_series_delete = {
    "qido_series_delete",
    "WITH e AS (DELETE FROM qido_series WHERE imageset_id=$1 AND series_uid=$2 RETURNING id)"
    " DELETE FROM qido_instance WHERE series_id IN (SELECT id FROM e)",
};

static const struct ahl__pg_stmt st_series_touch = {
    "qido_series_touch",
    "UPDATE qido_series SET updated_at=$2 WHERE imageset_id=$1 AND updated_at<>$2",
};

/* Inserts or updates an instance row under its series row: no row at all when the series row
 * is missing (AHL_ENOTFOUND). */
static const struct ahl__pg_stmt st_instance_put = {
    "qido_instance_put",
    "INSERT INTO qido_instance(series_id, sop_uid, sop_class, instance_number, rows_, columns_,"
    " frames, warning) SELECT id, $3, $4, $5::integer, $6::bigint, $7::bigint, $8::bigint,"
    " $9::bigint FROM qido_series WHERE imageset_id=$1 AND series_uid=$2"
    " ON CONFLICT(series_id, sop_uid) DO UPDATE SET (sop_class, instance_number, rows_,"
    " columns_, frames, warning) = (EXCLUDED.sop_class, EXCLUDED.instance_number,"
    " EXCLUDED.rows_, EXCLUDED.columns_, EXCLUDED.frames, EXCLUDED.warning)",
};

static const struct ahl__pg_stmt st_instance_delete = {
    "qido_instance_delete",
    "DELETE FROM qido_instance WHERE sop_uid=$3 AND series_id=(SELECT id FROM qido_series"
    " WHERE imageset_id=$1 AND series_uid=$2)",
};

/* The newest set of a study, whose Patient and Study attributes the study row shows. */
#define NEWEST_SET                                                                            \
    "n AS (SELECT * FROM qido_set WHERE datastore_id=$1 AND study_uid=$2 ORDER BY updated_at" \
    " DESC, imageset_id DESC LIMIT 1)"

/* The study row's columns that come from the newest set, and what each is made of. */
#define STUDY_ATTRS                                                                   \
    "imageset_id, updated_at, patient_name, pn_norm, patient_id, patient_birth_date," \
    " patient_birth_time, birth_tm, patient_sex, study_date, study_time, study_tm,"   \
    " accession_number, referring_physician_name, ref_norm, study_description, study_id"
#define STUDY_ATTRS_OF_N                                                                       \
    "n.imageset_id, n.updated_at, n.patient_name, upper(n.patient_name COLLATE \"C\"),"        \
    " n.patient_id, n.patient_birth_date, n.patient_birth_time, n.birth_tm, n.patient_sex,"    \
    " n.study_date, n.study_time, n.study_tm, n.accession_number, n.referring_physician_name," \
    " upper(n.referring_physician_name COLLATE \"C\"), n.study_description, n.study_id"
/* Every column of the study row, in the table's order (which ROW(EXCLUDED.*) follows). */
#define STUDY_COLS \
    "datastore_id, study_uid, " STUDY_ATTRS ", modalities, series_count, instance_count"

/* Rebuilds the study row of ($1, $2) from its set and series rows (removing it when no set row
 * is left), and its modality rows: those of modalities no series has any more are removed, the
 * others inserted or given the study's time. Rows that would not change are not written. */
static const struct ahl__pg_stmt st_study_refresh = {
    "qido_study_refresh",
    "WITH " NEWEST_SET ","
    " a AS (SELECT coalesce(string_agg(DISTINCT modality, '\\' ORDER BY modality)"
    " FILTER (WHERE modality<>''), '') AS modalities, count(*) AS series_count,"
    " coalesce(sum(instances), 0) AS instance_count FROM qido_series WHERE datastore_id=$1"
    " AND study_uid=$2),"
    " up AS (INSERT INTO qido_study(" STUDY_COLS ") SELECT $1, $2, " STUDY_ATTRS_OF_N ","
    " a.modalities, a.series_count, a.instance_count FROM n, a"
    " ON CONFLICT(datastore_id, study_uid) DO UPDATE SET (" STUDY_COLS ") = ROW(EXCLUDED.*)"
    " WHERE ROW(qido_study.*) IS DISTINCT FROM ROW(EXCLUDED.*)),"
    " gone AS (DELETE FROM qido_study WHERE datastore_id=$1 AND study_uid=$2 AND NOT EXISTS"
    " (SELECT 1 FROM n)),"
    " m AS (SELECT DISTINCT e.modality FROM qido_series e, n WHERE e.datastore_id=$1 AND"
    " e.study_uid=$2 AND e.modality<>''),"
    " mgone AS (DELETE FROM qido_study_modality x WHERE x.datastore_id=$1 AND x.study_uid=$2"
    " AND x.modality NOT IN (SELECT modality FROM m))"
    " INSERT INTO qido_study_modality(datastore_id, study_uid, modality, updated_at)"
    " SELECT $1, $2, m.modality, n.updated_at FROM m, n"
    " ON CONFLICT(datastore_id, study_uid, modality) DO UPDATE SET updated_at=EXCLUDED.updated_at"
    " WHERE qido_study_modality.updated_at<>EXCLUDED.updated_at",
};

/* Copies the newest set's attributes and time into the existing study row, and the time into
 * its modality rows, writing only what changed. Answers whether the study row and a set row
 * exist (else the caller rebuilds). */
static const struct ahl__pg_stmt st_study_attrs = {
    "qido_study_attrs",
    "WITH " NEWEST_SET ","
    " up AS (UPDATE qido_study s SET (" STUDY_ATTRS ") = (" STUDY_ATTRS_OF_N ") FROM n WHERE"
    " s.datastore_id=$1 AND s.study_uid=$2 AND ROW(s.*) IS DISTINCT FROM ROW(s.datastore_id,"
    " s.study_uid, " STUDY_ATTRS_OF_N ", s.modalities, s.series_count, s.instance_count)),"
    " m AS (UPDATE qido_study_modality x SET updated_at=n.updated_at FROM n WHERE"
    " x.datastore_id=$1 AND x.study_uid=$2 AND x.updated_at<>n.updated_at)"
    " SELECT EXISTS (SELECT 1 FROM qido_study WHERE datastore_id=$1 AND study_uid=$2) AND"
    " EXISTS (SELECT 1 FROM n)",
};

static const struct ahl__pg_stmt st_backfill_next = {
    "qido_backfill_next",
    "SELECT imageset_id FROM qido_backfill ORDER BY imageset_id LIMIT 1",
};
static const struct ahl__pg_stmt st_backfill_done = {
    "qido_backfill_done",
    "DELETE FROM qido_backfill WHERE imageset_id=$1",
};

static int qido_set_get(struct ahl_store_tx *t, const char *set, struct ahl_qido_set *r)
{
    PGresult *res;
    const char *v[1] = {set};
    int rc = ahl__pg_run(t, &st_set_get, 1, v, NULL, NULL, false, &res);
    if (rc < 0)
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return AHL_ENOTFOUND;
    }
    memset(r, 0, sizeof *r);
    ahl__pg_text(res, 0, 0, r->imageset_id, sizeof r->imageset_id);
    ahl__pg_text(res, 0, 1, r->datastore_id, sizeof r->datastore_id);
    const char *hex = PQgetvalue(res, 0, 2);
    if (strlen(hex) == 2 * AHL_SHA256_LEN)
        ahl_hex_decode(hex, r->root, AHL_SHA256_LEN);
    r->updated_at_ms = ahl__pg_int(res, 0, 3);
    ahl__pg_text(res, 0, 4, r->study_uid, sizeof r->study_uid);
    ahl__pg_text(res, 0, 5, r->patient_name, sizeof r->patient_name);
    ahl__pg_text(res, 0, 6, r->patient_id, sizeof r->patient_id);
    ahl__pg_text(res, 0, 7, r->patient_birth_date, sizeof r->patient_birth_date);
    ahl__pg_text(res, 0, 8, r->patient_birth_time, sizeof r->patient_birth_time);
    ahl__pg_text(res, 0, 9, r->patient_sex, sizeof r->patient_sex);
    ahl__pg_text(res, 0, 10, r->study_date, sizeof r->study_date);
    ahl__pg_text(res, 0, 11, r->study_time, sizeof r->study_time);
    ahl__pg_text(res, 0, 12, r->accession_number, sizeof r->accession_number);
    ahl__pg_text(res, 0, 13, r->referring_physician_name, sizeof r->referring_physician_name);
    ahl__pg_text(res, 0, 14, r->study_description, sizeof r->study_description);
    ahl__pg_text(res, 0, 15, r->study_id, sizeof r->study_id);
    PQclear(res);
    return 0;
}

static int qido_set_put(struct ahl_store_tx *t, const struct ahl_qido_set *r)
{
    char birth_tm[13], study_tm[13];
    struct ahl__pg_num num;
    ahl__qido_tm_key(r->patient_birth_time, birth_tm);
    ahl__qido_tm_key(r->study_time, study_tm);
    const char *v[18] = {r->imageset_id,        r->datastore_id,
                         (const char *)r->root, ahl__pg_i64(&num, r->updated_at_ms),
                         r->study_uid,          r->patient_name,
                         r->patient_id,         r->patient_birth_date,
                         r->patient_birth_time, birth_tm,
                         r->patient_sex,        r->study_date,
                         r->study_time,         study_tm,
                         r->accession_number,   r->referring_physician_name,
                         r->study_description,  r->study_id};
    int lens[18] = {[2] = AHL_SHA256_LEN}, fmts[18] = {[2] = 1};
    return ahl__pg_send(t, &st_set_put, 18, v, lens, fmts);
}

static int run1(struct ahl_store_tx *t, const struct ahl__pg_stmt *st, const char *a, const char *b,
                const char *c)
{
    const char *v[3] = {a, b, c};
    return ahl__pg_run(t, st, c ? 3 : b ? 2 : 1, v, NULL, NULL, false, NULL);
}

static int qido_set_delete(struct ahl_store_tx *t, const char *set)
{
    return run1(t, &st_set_delete, set, NULL, NULL);
}

static int qido_series_put(struct ahl_store_tx *t, const struct ahl_qido_series *r)
{
    char series_tm[13];
    struct ahl__pg_num num[3];
    ahl__qido_tm_key(r->series_time, series_tm);
    const char *v[13] = {
        r->imageset_id,
        r->datastore_id,
        r->study_uid,
        r->series_uid,
        ahl__pg_i64(&num[0], r->updated_at_ms),
        r->modality,
        r->has_series_number ? ahl__pg_i64(&num[1], r->series_number) : NULL,
        r->series_description,
        r->series_date,
        r->series_time,
        series_tm,
        r->body_part_examined,
        ahl__pg_i64(&num[2], r->number_of_instances),
    };
    return ahl__pg_send(t, &st_series_put, 13, v, NULL, NULL);
}

static int qido_series_delete(struct ahl_store_tx *t, const char *set, const char *series)
{
    return run1(t, &st_series_delete, set, series, NULL);
}

static int qido_series_touch(struct ahl_store_tx *t, const char *set, int64_t updated_at_ms)
{
    struct ahl__pg_num num;
    const char *v[2] = {set, ahl__pg_i64(&num, updated_at_ms)};
    return ahl__pg_send(t, &st_series_touch, 2, v, NULL, NULL);
}

static int qido_instance_put(struct ahl_store_tx *t, const struct ahl_qido_instance *r)
{
    struct ahl__pg_num num[5];
    PGresult *res;
    const char *v[9] = {
        r->imageset_id,
        r->series_uid,
        r->sop_uid,
        r->sop_class_uid,
        r->has_instance_number ? ahl__pg_i64(&num[0], r->instance_number) : NULL,
        ahl__pg_i64(&num[1], r->rows),
        ahl__pg_i64(&num[2], r->columns),
        ahl__pg_i64(&num[3], r->number_of_frames),
        r->has_warning_reason ? ahl__pg_i64(&num[4], r->warning_reason) : NULL,
    };
    int rc = ahl__pg_run(t, &st_instance_put, 9, v, NULL, NULL, false, &res);
    if (rc < 0)
        return rc;
    if (strcmp(PQcmdTuples(res), "1") != 0)
        rc = AHL_ENOTFOUND;
    PQclear(res);
    return rc;
}

static int qido_instance_delete(struct ahl_store_tx *t, const char *set, const char *series,
                                const char *sop)
{
    return run1(t, &st_instance_delete, set, series, sop);
}

static int qido_study_refresh(struct ahl_store_tx *t, const char *ds, const char *study,
                              bool attrs_only)
{
    const char *v[2] = {ds, study};
    if (attrs_only) {
        PGresult *res;
        int rc = ahl__pg_run(t, &st_study_attrs, 2, v, NULL, NULL, false, &res);
        if (rc < 0)
            return rc;
        bool found = PQntuples(res) == 1 && ahl__pg_bool(res, 0, 0);
        PQclear(res);
        if (found)
            return 0;
        /* No study row (or no set row left): rebuild it. */
    }
    return ahl__pg_send(t, &st_study_refresh, 2, v, NULL, NULL);
}

static int qido_backfill_next(struct ahl_store_tx *t, char id[AHL_ID_LEN + 1])
{
    PGresult *res;
    int rc = ahl__pg_run(t, &st_backfill_next, 0, NULL, NULL, NULL, false, &res);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 1)
        ahl__pg_text(res, 0, 0, id, AHL_ID_LEN + 1);
    else
        rc = AHL_ENOTFOUND;
    PQclear(res);
    return rc;
}

static int qido_backfill_done(struct ahl_store_tx *t, const char *id)
{
    return run1(t, &st_backfill_done, id, NULL, NULL);
}

/* ---- searches -------------------------------------------------------------------------------- */

/* ---- the SQL of a search ---- */

#define MAX_PARAMS (AHL_QIDO_MAX_FILTERS * (AHL_QIDO_MAX_LIST + 4) + 4)

/* A search's SQL and its parameters (text, numbered in order), with the strings it made. */
struct sql {
    char *p;
    size_t n, cap;
    bool fail;
    const char *v[MAX_PARAMS];
    int nv;
    char *owned[AHL_QIDO_MAX_FILTERS * 4];
    unsigned nowned;
    struct ahl__pg_num num[AHL_QIDO_MAX_FILTERS + 4];
    unsigned nnum;
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

/* Adds a parameter (NULL: out of memory, which fails the build) and returns its number. */
static int param(struct sql *s, const char *v)
{
    if (!v || s->nv == MAX_PARAMS) {
        s->fail = true;
        return 1;
    }
    s->v[s->nv] = v;
    return ++s->nv;
}

static const char *num(struct sql *s, long long v)
{
    return ahl__pg_i64(&s->num[s->nnum++], v);
}

/* Keeps a string made for the search until the search ends. */
static const char *own(struct sql *s, char *p)
{
    if (!p || s->nowned == sizeof s->owned / sizeof s->owned[0]) {
        free(p);
        s->fail = true;
        return NULL;
    }
    return s->owned[s->nowned++] = p;
}

static bool utf8(const char *v)
{
    return ahl_utf8_valid(v, strlen(v));
}

static char upper_ascii(char c, bool upper)
{
    return upper && c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* A LIKE pattern of a DICOM wildcard value ('*' any run, '?' one character; '%', '_' and '\'
 * escaped with '\'), upper-cased (ASCII) for PN keys: what SQLite's GLOB matches. */
static char *like_of(const char *v, bool upper)
{
    char *p = malloc(2 * strlen(v) + 1), *o = p;
    if (!p)
        return NULL;
    for (; *v; v++) {
        if (*v == '*') {
            *o++ = '%';
        } else if (*v == '?') {
            *o++ = '_';
        } else {
            if (*v == '%' || *v == '_' || *v == '\\')
                *o++ = '\\';
            *o++ = upper_ascii(*v, upper);
        }
    }
    *o = '\0';
    return p;
}

/* The smallest UTF-8 string above every string starting with prefix (itself UTF-8, not empty):
 * its last character replaced by the next one (U+10FFFF dropped and the one before advanced),
 * since UTF-8's byte order is the order of the characters. NULL when there is none. */
static char *prefix_end(const char *prefix)
{
    size_t n = strlen(prefix);
    char *e = malloc(n + 5);
    if (!e)
        return NULL;
    memcpy(e, prefix, n + 1);
    while (n > 0) {
        size_t start = n - 1;
        while (start > 0 && ((unsigned char)e[start] & 0xC0) == 0x80)
            start--;
        const unsigned char *u = (const unsigned char *)e + start;
        uint32_t cp =
            u[0] < 0x80   ? u[0]
            : u[0] < 0xE0 ? (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F)
            : u[0] < 0xF0
                ? (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F)
                : (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 |
                      (uint32_t)(u[2] & 0x3F) << 6 | (u[3] & 0x3F);
        n = start;
        if (cp == 0x10FFFF)
            continue;
        cp = cp == 0xD7FF ? 0xE000 : cp + 1;
        unsigned char *o = (unsigned char *)e + n;
        if (cp < 0x80) {
            *o++ = (unsigned char)cp;
        } else if (cp < 0x800) {
            *o++ = (unsigned char)(0xC0 | cp >> 6);
            *o++ = (unsigned char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            *o++ = (unsigned char)(0xE0 | cp >> 12);
            *o++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            *o++ = (unsigned char)(0x80 | (cp & 0x3F));
        } else {
            *o++ = (unsigned char)(0xF0 | cp >> 18);
            *o++ = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
            *o++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            *o++ = (unsigned char)(0x80 | (cp & 0x3F));
        }
        *o = '\0';
        return e;
    }
    free(e);
    return NULL;
}

/* One filter's condition. Text that is not UTF-8 (PostgreSQL refuses it as a parameter) equals
 * no stored value, which all are UTF-8: such a SINGLE or WILD value matches nothing, and a list
 * keeps its other values. */
static void add_filter(const struct ahl_qido_query *q, const struct ahl_qido_filter *f, bool drv,
                       struct sql *s)
{
    int type = ahl__qido_keys[f->key].type;
    const char *col = ahl__qido_key_col(f->key, q->level);
    bool list = f->match == AHL_QM_LIST;
    unsigned nv = list ? f->nlist : 1, added = 0;
    if (type == K_MODS) {
        if (drv) {
            if (utf8(f->value))
                add(s, " AND m.modality=$%d", param(s, f->value));
            else
                add(s, " AND false");
            return;
        }
        add(s, " AND EXISTS (SELECT 1 FROM qido_study_modality x WHERE"
               " x.datastore_id=s.datastore_id AND x.study_uid=s.study_uid AND x.modality IN (");
        for (unsigned i = 0; i < nv; i++) {
            const char *v = list ? f->list[i] : f->value;
            if (utf8(v))
                add(s, added++ ? ",$%d" : "$%d", param(s, v));
        }
        add(s, added ? "))" : "NULL))");
        return;
    }
    switch (f->match) {
    case AHL_QM_SINGLE:
        if (type == K_INT) {
            long long v = 0;
            ahl__qido_parse_int(f->value, &v);
            add(s, " AND %s=$%d::bigint", col, param(s, num(s, v)));
        } else if (type == K_TIME) {
            char k[13];
            ahl__qido_tm_key(f->value, k);
            add(s, " AND %s=$%d", col, param(s, own(s, strdup(k))));
        } else if (!utf8(f->value)) {
            add(s, " AND false");
        } else if (type == K_PN && q->fuzzy) {
            goto wild;
        } else {
            add(s, " AND %s=$%d", col,
                param(s, type == K_PN ? own(s, ahl__qido_upper_of(f->value)) : f->value));
        }
        return;
    case AHL_QM_WILD:
    wild : {
        bool pn = type == K_PN;
        if (!utf8(f->value)) {
            add(s, " AND false");
            return;
        }
        int p = param(s, own(s, like_of(f->value, pn)));
        if (pn && q->fuzzy) {
            /* Any word of the name beginning with the value. */
            add(s,
                " AND (%s LIKE $%d::text || '%%' OR %s LIKE '%%^' || $%d::text || '%%' OR %s"
                " LIKE '%% ' || $%d::text || '%%' OR %s LIKE '%%=' || $%d::text || '%%' OR %s"
                " LIKE '%%,' || $%d::text || '%%')",
                col, p, col, p, col, p, col, p, col, p);
            return;
        }
        if (strcspn(f->value, "*?") > 0 && ahl__qido_keys[f->key].indexed) {
            const char *pre = own(s, ahl__qido_prefix_of(f->value, pn));
            add(s, " AND %s>=$%d", col, param(s, pre));
            char *end = pre ? prefix_end(pre) : NULL;
            if (end)
                add(s, " AND %s<$%d", col, param(s, own(s, end)));
        }
        add(s, " AND %s LIKE $%d", col, p);
        return;
    }
    case AHL_QM_RANGE:
        for (int i = 0; i < 2; i++) {
            const char *v = i ? f->hi : f->lo;
            if (!*v)
                continue;
            if (type == K_TIME) {
                char k[13];
                ahl__qido_tm_key(v, k);
                v = own(s, strdup(k));
            }
            add(s, " AND %s%s$%d", col, i ? "<=" : ">=", param(s, v));
        }
        return;
    case AHL_QM_LIST:
        add(s, " AND %s IN (", col);
        for (unsigned i = 0; i < nv; i++)
            if (utf8(f->list[i]))
                add(s, added++ ? ",$%d" : "$%d", param(s, f->list[i]));
        add(s, added ? ")" : "NULL)");
        return;
    }
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

/* Writes q's SQL and parameters ($1 is the data store). The orders are sqlite_qido.c's (series
 * whose update time and UID tie, one series in two primary sets, newest row first). */
static int query_sql(const char *ds, const struct ahl_qido_query *q, struct sql *s)
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
    bool by_modality = q->level == AHL_QIDO_STUDY && drv >= 0 && q->f[drv].key == AHL_QK_MODALITIES;
    param(s, ds);
    if (by_modality)
        add(s, "SELECT " STUDY_SEL " FROM qido_study_modality m JOIN qido_study s ON"
               " s.datastore_id=m.datastore_id AND s.study_uid=m.study_uid WHERE"
               " m.datastore_id=$1");
    else if (q->level == AHL_QIDO_STUDY)
        add(s, "SELECT " STUDY_SEL " FROM qido_study s WHERE s.datastore_id=$1");
    else if (q->level == AHL_QIDO_SERIES)
        add(s, "SELECT " SERIES_SEL " FROM qido_series e WHERE e.datastore_id=$1");
    else
        add(s, "SELECT " INSTANCE_SEL " FROM qido_series e JOIN qido_instance i ON"
               " i.series_id=e.id WHERE e.datastore_id=$1");
    for (unsigned i = 0; i < q->nf; i++)
        add_filter(q, &q->f[i], (int)i == drv, s);
    if (by_modality)
        add(s, " ORDER BY m.updated_at DESC, m.study_uid DESC");
    else if (q->level == AHL_QIDO_STUDY)
        add(s, " ORDER BY s.updated_at DESC, s.study_uid DESC");
    else if (q->level == AHL_QIDO_SERIES)
        add(s, " ORDER BY e.updated_at DESC, e.series_uid DESC, e.id DESC");
    else
        add(s, " ORDER BY e.series_uid, e.id, i.instance_number NULLS FIRST, i.sop_uid");
    int a = param(s, num(s, q->limit)), b = param(s, num(s, q->offset));
    add(s, " LIMIT $%d::bigint OFFSET $%d::bigint", a, b);
    return s->fail ? AHL_ENOMEM : 0;
}

static void sql_release(struct sql *s)
{
    for (unsigned i = 0; i < s->nowned; i++)
        free(s->owned[i]);
    free(s->p);
    free(s);
}

/* Builds q's SQL; *out is released with sql_release. */
static int build(const char *ds, const struct ahl_qido_query *q, struct sql **out)
{
    struct sql *s = calloc(1, sizeof *s);
    *out = s;
    if (!s)
        return AHL_ENOMEM;
    s->cap = 65536;
    if (!(s->p = malloc(s->cap)))
        return AHL_ENOMEM;
    s->p[0] = '\0';
    return query_sql(ds, q, s);
}

static void series_cols(const PGresult *res, int i, struct ahl_qido_row *r)
{
    struct ahl_qido_series *e = &r->series;
    ahl__pg_text(res, i, 0, e->imageset_id, sizeof e->imageset_id);
    ahl__pg_text(res, i, 1, e->datastore_id, sizeof e->datastore_id);
    ahl__pg_text(res, i, 2, e->study_uid, sizeof e->study_uid);
    ahl__pg_text(res, i, 3, e->series_uid, sizeof e->series_uid);
    e->updated_at_ms = ahl__pg_int(res, i, 4);
    ahl__pg_text(res, i, 5, e->modality, sizeof e->modality);
    e->has_series_number = !PQgetisnull(res, i, 6);
    e->series_number = (int32_t)ahl__pg_int(res, i, 6);
    ahl__pg_text(res, i, 7, e->series_description, sizeof e->series_description);
    ahl__pg_text(res, i, 8, e->series_date, sizeof e->series_date);
    ahl__pg_text(res, i, 9, e->series_time, sizeof e->series_time);
    ahl__pg_text(res, i, 10, e->body_part_examined, sizeof e->body_part_examined);
    e->number_of_instances = (uint32_t)ahl__pg_int(res, i, 11);
    memcpy(r->study.study_uid, e->study_uid, sizeof r->study.study_uid);
}

static void result_row(const PGresult *res, int i, int level, struct ahl_qido_row *r)
{
    memset(r, 0, sizeof *r);
    if (level == AHL_QIDO_STUDY) {
        struct ahl_qido_set *s = &r->study;
        ahl__pg_text(res, i, 0, s->imageset_id, sizeof s->imageset_id);
        ahl__pg_text(res, i, 1, s->datastore_id, sizeof s->datastore_id);
        s->updated_at_ms = ahl__pg_int(res, i, 2);
        ahl__pg_text(res, i, 3, s->study_uid, sizeof s->study_uid);
        ahl__pg_text(res, i, 4, s->patient_name, sizeof s->patient_name);
        ahl__pg_text(res, i, 5, s->patient_id, sizeof s->patient_id);
        ahl__pg_text(res, i, 6, s->patient_birth_date, sizeof s->patient_birth_date);
        ahl__pg_text(res, i, 7, s->patient_birth_time, sizeof s->patient_birth_time);
        ahl__pg_text(res, i, 8, s->patient_sex, sizeof s->patient_sex);
        ahl__pg_text(res, i, 9, s->study_date, sizeof s->study_date);
        ahl__pg_text(res, i, 10, s->study_time, sizeof s->study_time);
        ahl__pg_text(res, i, 11, s->accession_number, sizeof s->accession_number);
        ahl__pg_text(res, i, 12, s->referring_physician_name, sizeof s->referring_physician_name);
        ahl__pg_text(res, i, 13, s->study_description, sizeof s->study_description);
        ahl__pg_text(res, i, 14, s->study_id, sizeof s->study_id);
        ahl__pg_text(res, i, 15, r->modalities_in_study, sizeof r->modalities_in_study);
        r->study_series = (uint32_t)ahl__pg_int(res, i, 16);
        r->study_instances = (uint32_t)ahl__pg_int(res, i, 17);
        return;
    }
    series_cols(res, i, r);
    if (level == AHL_QIDO_INSTANCE) {
        struct ahl_qido_instance *n = &r->instance;
        memcpy(n->imageset_id, r->series.imageset_id, sizeof n->imageset_id);
        memcpy(n->series_uid, r->series.series_uid, sizeof n->series_uid);
        ahl__pg_text(res, i, 12, n->sop_uid, sizeof n->sop_uid);
        ahl__pg_text(res, i, 13, n->sop_class_uid, sizeof n->sop_class_uid);
        n->has_instance_number = !PQgetisnull(res, i, 14);
        n->instance_number = (int32_t)ahl__pg_int(res, i, 14);
        n->rows = (uint32_t)ahl__pg_int(res, i, 15);
        n->columns = (uint32_t)ahl__pg_int(res, i, 16);
        n->number_of_frames = (uint32_t)ahl__pg_int(res, i, 17);
        n->has_warning_reason = !PQgetisnull(res, i, 18);
        n->warning_reason = (uint32_t)ahl__pg_int(res, i, 18);
    }
}

static int qido_query(struct ahl_store_tx *t, const char *ds, const struct ahl_qido_query *q,
                      ahl_store_qido_cb cb, void *ctx)
{
    struct sql *s = NULL;
    struct ahl_qido_row *row = NULL;
    PGresult *res = NULL;
    int rc = build(ds, q, &s);
    if (rc < 0 || (rc = ahl__pg_no_seqscan(t)) < 0 ||
        (rc = ahl__pg_run_sql(t, s->p, true, s->nv, s->v, NULL, NULL, false, &res)) < 0)
        goto out;
    if (!(row = malloc(sizeof *row))) {
        rc = AHL_ENOMEM;
        goto out;
    }
    for (int i = 0, n = PQntuples(res); i < n && rc == 0; i++) {
        result_row(res, i, q->level, row);
        rc = cb(ctx, row);
    }
out:
    PQclear(res);
    free(row);
    if (s)
        sql_release(s);
    return rc;
}

static int qido_plan(struct ahl_store_tx *t, const char *ds, const struct ahl_qido_query *q,
                     ahl_store_plan_cb cb, void *ctx)
{
    struct sql *s = NULL;
    int rc = build(ds, q, &s);
    if (rc == 0)
        rc = ahl__pg_explain(t, s->p, s->nv, s->v, cb, ctx);
    if (s)
        sql_release(s);
    return rc;
}

void ahl__pg_qido_ops(struct ahl_store_ops *ops)
{
    ops->qido_set_get = qido_set_get;
    ops->qido_set_put = qido_set_put;
    ops->qido_set_delete = qido_set_delete;
    ops->qido_series_put = qido_series_put;
    ops->qido_series_delete = qido_series_delete;
    ops->qido_series_touch = qido_series_touch;
    ops->qido_instance_put = qido_instance_put;
    ops->qido_instance_delete = qido_instance_delete;
    ops->qido_study_refresh = qido_study_refresh;
    ops->qido_query = qido_query;
    ops->qido_plan = qido_plan;
    ops->qido_backfill_next = qido_backfill_next;
    ops->qido_backfill_done = qido_backfill_done;
}
