/* The PostgreSQL backend's rows: data stores, tags, image sets, versions, chunks, the frame index
 * and its backfill queue, with the tables that hold them. Every column and every answer is the
 * SQLite backend's (sqlite_rows.c): the same orders, the same AHL_E* codes.
 *
 * Text columns that are ordered or compared by range are COLLATE "C", so that they sort by bytes
 * as SQLite sorts them, whatever the database's locale. Inserts that may meet a duplicate say
 * ON CONFLICT DO NOTHING and report AHL_ECONFLICT when no row was inserted: the transaction goes
 * on as SQLite's does after a constraint failure, where a failed statement would abort it. Chunk
 * bytes, hashes and roots are bytea, sent as binary parameters; chunks are read as binary
 * results. Chunk data is stored uncompressed by PostgreSQL (STORAGE EXTERNAL): JSON chunks are
 * deflate segments already, the others small.
 */
#include "store/pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/banned.h"

const char *const ahl__pg_rows_ddl[] = {
    /* The frame fence of frames in an S3 bucket (store.h, ahl_store_frame_fence_get). */
    "CREATE TABLE IF NOT EXISTS frame_fence(id integer PRIMARY KEY CHECK(id=1),"
    " epoch bigint NOT NULL, until_ms bigint NOT NULL)",
    "INSERT INTO frame_fence VALUES(1, 0, 0) ON CONFLICT DO NOTHING",
    "CREATE TABLE IF NOT EXISTS datastore(id text COLLATE \"C\" PRIMARY KEY, name text NOT NULL,"
    " status text NOT NULL, kms_key_arn text NOT NULL, lambda_authorizer_arn text NOT NULL,"
    " lossless_storage_format text NOT NULL, created_at bigint NOT NULL,"
    " updated_at bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tag(arn text COLLATE \"C\" NOT NULL,"
    " key text COLLATE \"C\" NOT NULL, value text NOT NULL, PRIMARY KEY(arn, key))",
    "CREATE TABLE IF NOT EXISTS imageset(id text COLLATE \"C\" PRIMARY KEY,"
    " datastore_id text COLLATE \"C\" NOT NULL, state text NOT NULL,"
    " workflow_status text NOT NULL, message text NOT NULL, is_primary boolean NOT NULL,"
    " latest_version bigint NOT NULL, created_at bigint NOT NULL, updated_at bigint NOT NULL,"
    " last_accessed_at bigint NOT NULL, deleted_at bigint NOT NULL)",
    "CREATE INDEX IF NOT EXISTS imageset_datastore ON imageset(datastore_id, id)",
    "CREATE TABLE IF NOT EXISTS version(imageset_id text COLLATE \"C\" NOT NULL,"
    " version bigint NOT NULL, root bytea NOT NULL, state text NOT NULL,"
    " workflow_status text NOT NULL, message text NOT NULL, forced boolean NOT NULL,"
    " created_at bigint NOT NULL, updated_at bigint NOT NULL, PRIMARY KEY(imageset_id, version))",
    "CREATE TABLE IF NOT EXISTS chunk(hash bytea PRIMARY KEY, kind integer NOT NULL,"
    " ulen bigint NOT NULL, crc bigint NOT NULL, data bytea NOT NULL)",
    /* SET STORAGE locks the table: only when it is not set yet. */
    "DO $$BEGIN IF (SELECT attstorage FROM pg_attribute WHERE attrelid = 'chunk'::regclass"
    " AND attname = 'data') <> 'e' THEN ALTER TABLE chunk ALTER COLUMN data SET STORAGE"
    " EXTERNAL; END IF; END$$",
    "CREATE TABLE IF NOT EXISTS frame(imageset_id text COLLATE \"C\" NOT NULL,"
    " frame_id text COLLATE \"C\" NOT NULL, transfer_syntax text NOT NULL,"
    " PRIMARY KEY(imageset_id, frame_id))",
    /* Image sets whose frames were never indexed. A PostgreSQL store had the frame index from its
     * first version, so nothing is queued here unless a migration of older data queues it. */
    "CREATE TABLE IF NOT EXISTS frame_backfill(imageset_id text COLLATE \"C\" PRIMARY KEY)",
    /* Schema version 2: the deleted image sets in the order they expire (tombstones). */
    "CREATE INDEX IF NOT EXISTS imageset_deleted ON imageset(deleted_at, id)"
    " WHERE state = 'DELETED'",
    NULL,
};

/* Rows a scan fetches per statement (version and chunk scans page by key). */
#define SCAN_PAGE 256

static const struct ahl__pg_stmt ds_insert = {
    "r_ds_insert", "INSERT INTO datastore(" DS_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8)"
                   " ON CONFLICT DO NOTHING"};
static const struct ahl__pg_stmt ds_update = {
    "r_ds_update", "UPDATE datastore SET name=$2, status=$3, kms_key_arn=$4,"
                   " lambda_authorizer_arn=$5, lossless_storage_format=$6, created_at=$7,"
                   " updated_at=$8 WHERE id=$1"};
static const struct ahl__pg_stmt ds_get = {"r_ds_get",
                                           "SELECT " DS_COLS " FROM datastore WHERE id=$1"};
static const struct ahl__pg_stmt ds_list = {
    "r_ds_list", "SELECT " DS_COLS " FROM datastore WHERE id > $1"
                 " AND ($2::text IS NULL OR status=$2) ORDER BY id LIMIT $3"};
static const struct ahl__pg_stmt ds_delete = {"r_ds_delete", "DELETE FROM datastore WHERE id=$1"};
static const struct ahl__pg_stmt ds_count = {
    "r_ds_count", "SELECT count(*) FROM imageset WHERE datastore_id=$1 AND state<>'DELETED'"};
static const struct ahl__pg_stmt tag_put = {
    "r_tag_put", "INSERT INTO tag(arn, key, value) VALUES($1,$2,$3)"
                 " ON CONFLICT (arn, key) DO UPDATE SET value=EXCLUDED.value"};
static const struct ahl__pg_stmt tag_delete = {"r_tag_delete",
                                               "DELETE FROM tag WHERE arn=$1 AND key=$2"};
static const struct ahl__pg_stmt tag_list = {"r_tag_list",
                                             "SELECT key, value FROM tag WHERE arn=$1 ORDER BY key"};
static const struct ahl__pg_stmt tag_delete_all = {"r_tag_delete_all",
                                                   "DELETE FROM tag WHERE arn=$1"};
static const struct ahl__pg_stmt tag_scan = {"r_tag_scan",
                                             "SELECT arn, key, value FROM tag ORDER BY arn, key"};
static const struct ahl__pg_stmt is_insert = {
    "r_is_insert", "INSERT INTO imageset(" IS_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
                   " ON CONFLICT DO NOTHING"};
static const struct ahl__pg_stmt is_update = {
    "r_is_update", "UPDATE imageset SET datastore_id=$2, state=$3, workflow_status=$4,"
                   " message=$5, is_primary=$6, latest_version=$7, created_at=$8,"
                   " updated_at=$9, last_accessed_at=$10, deleted_at=$11 WHERE id=$1"};
/* The compare-and-set: a set never changes data store, so a different one fails it. */
static const struct ahl__pg_stmt is_advance = {
    "r_is_advance", "UPDATE imageset SET state=$3, workflow_status=$4,"
                    " message=$5, is_primary=$6, latest_version=$7, created_at=$8,"
                    " updated_at=$9, last_accessed_at=GREATEST(last_accessed_at, $10),"
                    " deleted_at=$11 WHERE id=$1 AND datastore_id=$2 AND latest_version=$12"};
/* With the row of its latest version (NULLs when there is none), kept for the version_get that
 * usually follows (ahl__pg_keep_version). The version is a subquery that is not flattened
 * (OFFSET 0), so that it is always looked up by its whole key: as a plain join, a plan made
 * while the tables were small (the connection keeps it) scanned every version of the set. */
static const struct ahl__pg_stmt is_get = {
    "r_is_get", "SELECT s.id, s.datastore_id, s.state, s.workflow_status, s.message, s.is_primary,"
                " s.latest_version, s.created_at, s.updated_at, s.last_accessed_at, s.deleted_at,"
                " v.* FROM imageset s LEFT JOIN LATERAL (SELECT " V_COLS " FROM version WHERE"
                " imageset_id=s.id AND version=s.latest_version OFFSET 0) v ON true WHERE s.id=$1"};
static const struct ahl__pg_stmt is_list = {
    "r_is_list", "SELECT " IS_COLS " FROM imageset WHERE datastore_id=$1 AND id > $2"
                 " AND state<>'DELETED' ORDER BY id LIMIT $3"};
/* The search table is pg_search.c's; its rows carry the study of each set. */
static const struct ahl__pg_stmt is_by_study = {
    "r_is_by_study", "SELECT i.id, i.datastore_id, i.state, i.workflow_status, i.message,"
                     " i.is_primary, i.latest_version, i.created_at, i.updated_at,"
                     " i.last_accessed_at, i.deleted_at FROM search s"
                     " JOIN imageset i ON i.id = s.imageset_id"
                     " WHERE s.datastore_id=$1 AND s.study_instance_uid=$2"
                     " AND i.state<>'DELETED' AND (NOT $3::boolean OR i.is_primary)"
                     " ORDER BY i.id"};
/* An access recorded by a node's flush: only ever forward, whatever order nodes flush in; the
 * set's search row (pg_search.c's table) carries the same value. */
static const struct ahl__pg_stmt is_touch = {
    "r_is_touch", "WITH s AS (UPDATE search SET last_accessed_at=$2 WHERE imageset_id=$1"
                  " AND last_accessed_at < $2) UPDATE imageset SET last_accessed_at=$2"
                  " WHERE id=$1 AND last_accessed_at < $2 AND state<>'DELETED'"};
static const struct ahl__pg_stmt v_insert = {
    "r_v_insert", "INSERT INTO version(" V_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9)"
                  " ON CONFLICT DO NOTHING"};
static const struct ahl__pg_stmt v_update = {
    "r_v_update", "UPDATE version SET state=$3, workflow_status=$4, message=$5, forced=$6,"
                  " updated_at=$7 WHERE imageset_id=$1 AND version=$2"};
static const struct ahl__pg_stmt v_get = {
    "r_v_get", "SELECT " V_COLS " FROM version WHERE imageset_id=$1 AND version=$2"};
static const struct ahl__pg_stmt v_list = {
    "r_v_list", "SELECT " V_COLS " FROM version WHERE imageset_id=$1 AND version < $2"
                " ORDER BY version DESC LIMIT $3"};
static const struct ahl__pg_stmt v_scan = {
    "r_v_scan", "SELECT " V_COLS " FROM version WHERE (imageset_id, version) > ($1, $2)"
                " ORDER BY imageset_id, version LIMIT 256"};
static const struct ahl__pg_stmt c_put = {
    "r_c_put", "INSERT INTO chunk(hash, kind, ulen, crc, data) VALUES($1,$2,$3,$4,$5)"
               " ON CONFLICT (hash) DO NOTHING"};
static const struct ahl__pg_stmt c_get = {"r_c_get",
                                          "SELECT kind, ulen, crc, data FROM chunk WHERE hash=$1"};
static const struct ahl__pg_stmt c_scan = {
    "r_c_scan", "SELECT hash, kind, ulen, crc, data FROM chunk WHERE hash > $1 ORDER BY hash"
                " LIMIT 256"};
static const struct ahl__pg_stmt c_stats = {
    "r_c_stats", "SELECT count(*), coalesce(sum(length(data)) + 32 * count(*), 0) FROM chunk"};
static const struct ahl__pg_stmt c_list = {
    "r_c_list", "SELECT hash, kind, octet_length(data)::bigint FROM chunk WHERE hash > $1"
                " ORDER BY hash LIMIT 256"};
static const struct ahl__pg_stmt c_delete = {"r_c_delete", "DELETE FROM chunk WHERE hash=$1"};
static const struct ahl__pg_stmt gc_roots_page = {
    "r_gc_roots", "SELECT " V_COLS " FROM version WHERE (imageset_id, version) > ($1, $2)"
                  " AND imageset_id IN (SELECT id FROM imageset WHERE state<>'DELETED')"
                  " ORDER BY imageset_id, version LIMIT 256"};
static const struct ahl__pg_stmt gc_v_count = {
    "r_gc_v_count", "SELECT count(*), count(DISTINCT imageset_id) FROM version"
                    " WHERE imageset_id NOT IN (SELECT id FROM imageset WHERE state<>'DELETED')"};
static const struct ahl__pg_stmt gc_v_delete = {
    "r_gc_v_delete", "DELETE FROM version WHERE (imageset_id, version) IN"
                     " (SELECT imageset_id, version FROM version WHERE imageset_id NOT IN"
                     " (SELECT id FROM imageset WHERE state<>'DELETED') LIMIT $1)"};
static const struct ahl__pg_stmt f_put = {
    "r_f_put", "INSERT INTO frame(imageset_id, frame_id, transfer_syntax) VALUES($1,$2,$3)"
               " ON CONFLICT (imageset_id, frame_id)"
               " DO UPDATE SET transfer_syntax=EXCLUDED.transfer_syntax"};
static const struct ahl__pg_stmt f_get = {
    "r_f_get", "SELECT imageset_id, frame_id, transfer_syntax FROM frame"
               " WHERE imageset_id=$1 AND frame_id=$2"};
static const struct ahl__pg_stmt f_copy = {
    "r_f_copy", "INSERT INTO frame(imageset_id, frame_id, transfer_syntax)"
                " SELECT $2, frame_id, transfer_syntax FROM frame WHERE imageset_id=$1"
                " ON CONFLICT DO NOTHING"};
static const struct ahl__pg_stmt f_delete_set = {"r_f_delete_set",
                                                 "DELETE FROM frame WHERE imageset_id=$1"};
/* Tombstones: the oldest `limit` deleted sets with their versions and frame rows, then the
 * deleted data stores due that hold no set any more, with their jobs (sqlite_rows.c does the
 * same in five statements). */
static const struct ahl__pg_stmt x_sets = {
    "r_x_sets", "WITH due AS (SELECT id FROM imageset WHERE state = 'DELETED' AND deleted_at <= $1"
                " ORDER BY deleted_at, id LIMIT $2 FOR UPDATE),"
                " v AS (DELETE FROM version WHERE imageset_id IN (SELECT id FROM due)),"
                " f AS (DELETE FROM frame WHERE imageset_id IN (SELECT id FROM due))"
                " DELETE FROM imageset WHERE id IN (SELECT id FROM due)"};
static const struct ahl__pg_stmt x_stores = {
    "r_x_stores", "WITH due AS (SELECT id FROM datastore WHERE status = 'DELETED'"
                  " AND updated_at <= $1 AND NOT EXISTS (SELECT 1 FROM imageset"
                  " WHERE imageset.datastore_id = datastore.id) FOR UPDATE),"
                  " j AS (DELETE FROM job WHERE datastore_id IN (SELECT id FROM due))"
                  " DELETE FROM datastore WHERE id IN (SELECT id FROM due)"};
static const struct ahl__pg_stmt f_list = {
    "r_f_list", "SELECT imageset_id, frame_id, transfer_syntax FROM frame WHERE imageset_id=$1"
                " ORDER BY frame_id"};
static const struct ahl__pg_stmt f_backfill_next = {
    "r_f_backfill_next", "SELECT imageset_id FROM frame_backfill ORDER BY imageset_id LIMIT 1"};
static const struct ahl__pg_stmt f_backfill_done = {
    "r_f_backfill_done", "DELETE FROM frame_backfill WHERE imageset_id=$1"};

/* ---- helpers ------------------------------------------------------------------------------- */

#define NPARAMS(a) ((int)(sizeof(a) / sizeof(a)[0]))

/* Runs st (text parameters) and discards its result. */
static int run_text(struct ahl_store_tx *t, const struct ahl__pg_stmt *st, int n,
                    const char *const *vals)
{
    return ahl__pg_run(t, st, n, vals, NULL, NULL, false, NULL);
}

/* The rows a command changed. */
static long changed(PGresult *r)
{
    return strtol(PQcmdTuples(r), NULL, 10);
}

/* Runs st, which must change exactly one row: AHL_ENOTFOUND otherwise (or none, for an insert
 * that met a duplicate: the caller says AHL_ECONFLICT). */
static int run_one_change(struct ahl_store_tx *t, const struct ahl__pg_stmt *st, int n,
                          const char *const *vals, const int *lens, const int *fmts, int none)
{
    PGresult *r = NULL;
    int rc = ahl__pg_run(t, st, n, vals, lens, fmts, false, &r);
    if (rc < 0)
        return rc;
    rc = changed(r) == 1 ? 0 : none;
    PQclear(r);
    return rc;
}

/* Decodes a text bytea ("\x" and hex digits) of exactly cap bytes into out; zeros otherwise. */
static void col_bytes(const PGresult *r, int row, int col, uint8_t *out, size_t cap)
{
    const char *v = PQgetvalue(r, row, col);
    memset(out, 0, cap);
    if (PQgetisnull(r, row, col) || (size_t)PQgetlength(r, row, col) != 2 + 2 * cap ||
        v[0] != '\\' || v[1] != 'x')
        return;
    for (size_t i = 0; i < cap; i++) {
        int b = 0;
        for (int k = 0; k < 2; k++) {
            char ch = v[2 + 2 * i + (size_t)k];
            int d = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (d < 0) {
                memset(out, 0, cap);
                return;
            }
            b = b * 16 + d;
        }
        out[i] = (uint8_t)b;
    }
}

/* A big-endian integer of a binary result column of n bytes (2, 4 or 8). */
static int64_t bin_int(const PGresult *r, int row, int col)
{
    const uint8_t *p = (const uint8_t *)PQgetvalue(r, row, col);
    int n = PQgetlength(r, row, col);
    uint64_t v = 0;
    if (n != 2 && n != 4 && n != 8)
        return 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    if (n == 4)
        return (int32_t)(uint32_t)v;
    if (n == 2)
        return (int16_t)(uint16_t)v;
    return (int64_t)v;
}

/* ---- data stores --------------------------------------------------------------------------- */

static void ds_row(const PGresult *r, int i, struct ahl_datastore_rec *d)
{
    memset(d, 0, sizeof *d);
    ahl__pg_text(r, i, 0, d->id, sizeof d->id);
    ahl__pg_text(r, i, 1, d->name, sizeof d->name);
    ahl__pg_text(r, i, 2, d->status, sizeof d->status);
    ahl__pg_text(r, i, 3, d->kms_key_arn, sizeof d->kms_key_arn);
    ahl__pg_text(r, i, 4, d->lambda_authorizer_arn, sizeof d->lambda_authorizer_arn);
    ahl__pg_text(r, i, 5, d->lossless_storage_format, sizeof d->lossless_storage_format);
    d->created_at_ms = ahl__pg_int(r, i, 6);
    d->updated_at_ms = ahl__pg_int(r, i, 7);
}

static int datastore_put(struct ahl_store_tx *t, const struct ahl_datastore_rec *d, bool create)
{
    struct ahl__pg_num n[2];
    const char *v[] = {d->id,
                       d->name,
                       d->status,
                       d->kms_key_arn,
                       d->lambda_authorizer_arn,
                       d->lossless_storage_format,
                       ahl__pg_i64(&n[0], d->created_at_ms),
                       ahl__pg_i64(&n[1], d->updated_at_ms)};
    return run_one_change(t, create ? &ds_insert : &ds_update, NPARAMS(v), v, NULL, NULL,
                          create ? AHL_ECONFLICT : AHL_ENOTFOUND);
}

/* Runs a query of text parameters and gives its result: 0, or the store error. */
static int query(struct ahl_store_tx *t, const struct ahl__pg_stmt *st, int n,
                 const char *const *vals, PGresult **out)
{
    return ahl__pg_run(t, st, n, vals, NULL, NULL, false, out);
}

/* Reads the first row of a query into *out with rowfn: 0, or AHL_ENOTFOUND. */
#define ONE_ROW(t, st, vals, rowfn, out)                           \
    do {                                                           \
        PGresult *r_ = NULL;                                       \
        int rc_ = query(t, st, NPARAMS(vals), vals, &r_);          \
        if (rc_ < 0)                                               \
            return rc_;                                            \
        rc_ = PQntuples(r_) > 0 ? 0 : AHL_ENOTFOUND;               \
        if (rc_ == 0)                                              \
            rowfn(r_, 0, out);                                     \
        PQclear(r_);                                               \
        return rc_;                                                \
    } while (0)

/* Calls rowfn and cb for every row of a query's result. */
#define FOR_ROWS(t, st, vals, rec, rowfn, cb, ctx)                 \
    do {                                                           \
        PGresult *r_ = NULL;                                       \
        int rc_ = query(t, st, NPARAMS(vals), vals, &r_);          \
        if (rc_ < 0)                                               \
            return rc_;                                            \
        for (int i_ = 0; i_ < PQntuples(r_) && rc_ == 0; i_++) {   \
            rowfn(r_, i_, &(rec));                                 \
            rc_ = cb(ctx, &(rec));                                 \
        }                                                          \
        PQclear(r_);                                               \
        return rc_;                                                \
    } while (0)

static int datastore_get(struct ahl_store_tx *t, const char *id, struct ahl_datastore_rec *out)
{
    const char *v[] = {id};
    ONE_ROW(t, &ds_get, v, ds_row, out);
}

static int datastore_list(struct ahl_store_tx *t, const char *status, const char *after_id,
                          unsigned limit, ahl_store_datastore_cb cb, void *ctx)
{
    struct ahl__pg_num n;
    struct ahl_datastore_rec rec;
    const char *v[] = {after_id ? after_id : "", status && *status ? status : NULL,
                       ahl__pg_i64(&n, limit)};
    FOR_ROWS(t, &ds_list, v, rec, ds_row, cb, ctx);
}

static int datastore_delete(struct ahl_store_tx *t, const char *id)
{
    const char *v[] = {id};
    return run_one_change(t, &ds_delete, NPARAMS(v), v, NULL, NULL, AHL_ENOTFOUND);
}

static int datastore_count_imagesets(struct ahl_store_tx *t, const char *id, uint64_t *out)
{
    PGresult *r = NULL;
    const char *v[] = {id};
    int rc = query(t, &ds_count, NPARAMS(v), v, &r);
    if (rc < 0)
        return rc;
    *out = PQntuples(r) == 1 ? (uint64_t)ahl__pg_int(r, 0, 0) : 0;
    PQclear(r);
    return 0;
}

/* ---- tags ---------------------------------------------------------------------------------- */

static int tag_put_(struct ahl_store_tx *t, const char *arn, const char *key, const char *value)
{
    const char *v[] = {arn, key, value ? value : ""};
    return run_text(t, &tag_put, NPARAMS(v), v);
}

static int tag_delete_(struct ahl_store_tx *t, const char *arn, const char *key)
{
    const char *v[] = {arn, key};
    return run_text(t, &tag_delete, NPARAMS(v), v);
}

static int tag_list_(struct ahl_store_tx *t, const char *arn, ahl_store_tag_cb cb, void *ctx)
{
    PGresult *r = NULL;
    const char *v[] = {arn};
    int rc = query(t, &tag_list, NPARAMS(v), v, &r);
    if (rc < 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++)
        rc = cb(ctx, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    PQclear(r);
    return rc;
}

static int tag_delete_all_(struct ahl_store_tx *t, const char *arn)
{
    const char *v[] = {arn};
    return run_text(t, &tag_delete_all, NPARAMS(v), v);
}

static int tag_scan_(struct ahl_store_tx *t, ahl_store_tag_scan_cb cb, void *ctx)
{
    PGresult *r = NULL;
    int rc = query(t, &tag_scan, 0, NULL, &r);
    if (rc < 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++)
        rc = cb(ctx, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    PQclear(r);
    return rc;
}

/* ---- image sets ---------------------------------------------------------------------------- */

/* A version row (V_COLS) from column c of row i. */
static void v_cols(const PGresult *r, int i, int c, struct ahl_version_rec *v)
{
    memset(v, 0, sizeof *v);
    ahl__pg_text(r, i, c, v->imageset_id, sizeof v->imageset_id);
    v->version = (uint64_t)ahl__pg_int(r, i, c + 1);
    col_bytes(r, i, c + 2, v->root, AHL_SHA256_LEN);
    ahl__pg_text(r, i, c + 3, v->state, sizeof v->state);
    ahl__pg_text(r, i, c + 4, v->workflow_status, sizeof v->workflow_status);
    ahl__pg_text(r, i, c + 5, v->message, sizeof v->message);
    v->forced = ahl__pg_bool(r, i, c + 6);
    v->created_at_ms = ahl__pg_int(r, i, c + 7);
    v->updated_at_ms = ahl__pg_int(r, i, c + 8);
}

static void is_row(const PGresult *r, int i, struct ahl_imageset_rec *s)
{
    memset(s, 0, sizeof *s);
    ahl__pg_text(r, i, 0, s->id, sizeof s->id);
    ahl__pg_text(r, i, 1, s->datastore_id, sizeof s->datastore_id);
    ahl__pg_text(r, i, 2, s->state, sizeof s->state);
    ahl__pg_text(r, i, 3, s->workflow_status, sizeof s->workflow_status);
    ahl__pg_text(r, i, 4, s->message, sizeof s->message);
    s->is_primary = ahl__pg_bool(r, i, 5);
    s->latest_version = (uint64_t)ahl__pg_int(r, i, 6);
    s->created_at_ms = ahl__pg_int(r, i, 7);
    s->updated_at_ms = ahl__pg_int(r, i, 8);
    s->last_accessed_at_ms = ahl__pg_int(r, i, 9);
    s->deleted_at_ms = ahl__pg_int(r, i, 10);
}

/* The eleven parameters of an image set row, and a twelfth (the expected latest version). */
struct is_params {
    struct ahl__pg_num n[6];
    const char *v[12];
};

static void is_bind(struct is_params *p, const struct ahl_imageset_rec *s, uint64_t expected)
{
    p->v[0] = s->id;
    p->v[1] = s->datastore_id;
    p->v[2] = s->state;
    p->v[3] = s->workflow_status;
    p->v[4] = s->message;
    p->v[5] = s->is_primary ? "t" : "f";
    p->v[6] = ahl__pg_i64(&p->n[0], (int64_t)s->latest_version);
    p->v[7] = ahl__pg_i64(&p->n[1], s->created_at_ms);
    p->v[8] = ahl__pg_i64(&p->n[2], s->updated_at_ms);
    p->v[9] = ahl__pg_i64(&p->n[3], s->last_accessed_at_ms);
    p->v[10] = ahl__pg_i64(&p->n[4], s->deleted_at_ms);
    p->v[11] = ahl__pg_i64(&p->n[5], (int64_t)expected);
}

static int imageset_put(struct ahl_store_tx *t, const struct ahl_imageset_rec *s, bool create)
{
    struct is_params p;
    is_bind(&p, s, 0);
    return run_one_change(t, create ? &is_insert : &is_update, 11, p.v, NULL, NULL,
                          create ? AHL_ECONFLICT : AHL_ENOTFOUND);
}

static int imageset_advance(struct ahl_store_tx *t, const struct ahl_imageset_rec *s,
                            uint64_t expected)
{
    struct is_params p;
    is_bind(&p, s, expected);
    return run_one_change(t, &is_advance, 12, p.v, NULL, NULL, AHL_ECONFLICT);
}

static int imageset_get(struct ahl_store_tx *t, const char *ds, const char *id,
                        struct ahl_imageset_rec *out)
{
    PGresult *r = NULL;
    const char *v[] = {id};
    int rc = query(t, &is_get, NPARAMS(v), v, &r);
    if (rc < 0)
        return rc;
    rc = PQntuples(r) > 0 ? 0 : AHL_ENOTFOUND;
    if (rc == 0) {
        is_row(r, 0, out);
        if (!PQgetisnull(r, 0, 11)) {
            struct ahl_version_rec ver;
            v_cols(r, 0, 11, &ver);
            ahl__pg_keep_version(t, &ver);
        }
    }
    PQclear(r);
    return rc == 0 && ds && strcmp(ds, out->datastore_id) != 0 ? AHL_ENOTFOUND : rc;
}

static int imageset_list(struct ahl_store_tx *t, const char *ds, const char *after_id,
                         unsigned limit, ahl_store_imageset_cb cb, void *ctx)
{
    struct ahl__pg_num n;
    struct ahl_imageset_rec rec;
    const char *v[] = {ds ? ds : "", after_id ? after_id : "", ahl__pg_i64(&n, limit)};
    FOR_ROWS(t, &is_list, v, rec, is_row, cb, ctx);
}

static int imageset_by_study(struct ahl_store_tx *t, const char *ds, const char *study,
                             bool primary_only, ahl_store_imageset_cb cb, void *ctx)
{
    struct ahl_imageset_rec rec;
    const char *v[] = {ds ? ds : "", study ? study : "", primary_only ? "t" : "f"};
    FOR_ROWS(t, &is_by_study, v, rec, is_row, cb, ctx);
}

static int imageset_touch(struct ahl_store_tx *t, const char *id, int64_t at_ms)
{
    struct ahl__pg_num n;
    const char *v[] = {id, ahl__pg_i64(&n, at_ms)};
    return ahl__pg_send(t, &is_touch, NPARAMS(v), v, NULL, NULL);
}

/* ---- versions ------------------------------------------------------------------------------ */

static void v_row(const PGresult *r, int i, struct ahl_version_rec *v)
{
    v_cols(r, i, 0, v);
}

struct v_params {
    struct ahl__pg_num n[3];
    const char *v[9];
    int len[9];
    int fmt[9];
};

static void v_bind(struct v_params *p, const struct ahl_version_rec *v)
{
    memset(p->len, 0, sizeof p->len);
    memset(p->fmt, 0, sizeof p->fmt);
    p->v[0] = v->imageset_id;
    p->v[1] = ahl__pg_i64(&p->n[0], (int64_t)v->version);
    p->v[2] = (const char *)v->root;
    p->len[2] = AHL_SHA256_LEN;
    p->fmt[2] = 1;
    p->v[3] = v->state;
    p->v[4] = v->workflow_status;
    p->v[5] = v->message;
    p->v[6] = v->forced ? "t" : "f";
    p->v[7] = ahl__pg_i64(&p->n[1], v->created_at_ms);
    p->v[8] = ahl__pg_i64(&p->n[2], v->updated_at_ms);
}

static int version_put(struct ahl_store_tx *t, const struct ahl_version_rec *v)
{
    struct v_params p;
    v_bind(&p, v);
    return run_one_change(t, &v_insert, 9, p.v, p.len, p.fmt, AHL_ECONFLICT);
}

static int version_update(struct ahl_store_tx *t, const struct ahl_version_rec *v)
{
    struct ahl__pg_num n[2];
    const char *p[] = {v->imageset_id, ahl__pg_i64(&n[0], (int64_t)v->version), v->state,
                       v->workflow_status, v->message, v->forced ? "t" : "f",
                       ahl__pg_i64(&n[1], v->updated_at_ms)};
    return run_one_change(t, &v_update, NPARAMS(p), p, NULL, NULL, AHL_ENOTFOUND);
}

static int version_get(struct ahl_store_tx *t, const char *id, uint64_t version,
                       struct ahl_version_rec *out)
{
    const struct ahl_version_rec *kept = ahl__pg_kept_version(t);
    if (kept && kept->version == version && !strcmp(kept->imageset_id, id)) {
        *out = *kept;
        return 0;
    }
    struct ahl__pg_num n;
    const char *v[] = {id, ahl__pg_i64(&n, (int64_t)version)};
    ONE_ROW(t, &v_get, v, v_row, out);
}

static int version_list(struct ahl_store_tx *t, const char *id, uint64_t below, unsigned limit,
                        ahl_store_version_cb cb, void *ctx)
{
    struct ahl__pg_num n[2];
    struct ahl_version_rec rec;
    const char *v[] = {id, ahl__pg_i64(&n[0], below ? (int64_t)below : INT64_MAX),
                       ahl__pg_i64(&n[1], limit)};
    FOR_ROWS(t, &v_list, v, rec, v_row, cb, ctx);
}

/* The versions a paged statement gives ($1, $2: the last imageset_id and version seen), a page at
 * a time, so that memory stays bounded. */
static int versions_paged(struct ahl_store_tx *t, const struct ahl__pg_stmt *st,
                          ahl_store_version_cb cb, void *ctx)
{
    struct ahl_version_rec rec;
    char last_id[AHL_ID_LEN + 1] = "";
    int64_t last_version = -1;
    for (;;) {
        struct ahl__pg_num n;
        PGresult *r = NULL;
        const char *v[] = {last_id, ahl__pg_i64(&n, last_version)};
        int rc = query(t, st, NPARAMS(v), v, &r);
        if (rc < 0)
            return rc;
        int rows = PQntuples(r);
        for (int i = 0; i < rows && rc == 0; i++) {
            v_row(r, i, &rec);
            memcpy(last_id, rec.imageset_id, sizeof last_id);
            last_version = (int64_t)rec.version;
            rc = cb(ctx, &rec);
        }
        PQclear(r);
        if (rc || rows < SCAN_PAGE)
            return rc;
    }
}

static int version_scan(struct ahl_store_tx *t, ahl_store_version_cb cb, void *ctx)
{
    return versions_paged(t, &v_scan, cb, ctx);
}

/* ---- chunks -------------------------------------------------------------------------------- */

static int chunk_put(struct ahl_store_tx *t, const struct ahl_chunk *c)
{
    struct ahl__pg_num n[3];
    const char *v[] = {(const char *)c->hash, ahl__pg_i64(&n[0], c->kind),
                       ahl__pg_i64(&n[1], c->ulen), ahl__pg_i64(&n[2], c->crc),
                       c->len ? (const char *)c->data : ""};
    int len[] = {AHL_SHA256_LEN, 0, 0, 0, (int)c->len};
    int fmt[] = {1, 0, 0, 0, 1};
    if (c->len > INT32_MAX)
        return AHL_EINVAL;
    /* Nothing to read back (a duplicate is the same chunk): the engine writes a version's new
     * chunks one after another, and they share the round trip of its next statement. */
    return ahl__pg_send(t, &c_put, NPARAMS(v), v, len, fmt);
}

static int chunk_get(struct ahl_store_tx *t, const uint8_t hash[AHL_SHA256_LEN],
                     struct ahl_chunk *meta, struct ahl_buf *data)
{
    PGresult *r = NULL;
    const char *v[] = {(const char *)hash};
    int len[] = {AHL_SHA256_LEN};
    int fmt[] = {1};
    int rc = ahl__pg_run(t, &c_get, 1, v, len, fmt, true, &r);
    if (rc < 0)
        return rc;
    if (PQntuples(r) < 1) {
        PQclear(r);
        return AHL_ENOTFOUND;
    }
    memcpy(meta->hash, hash, AHL_SHA256_LEN);
    meta->kind = (int)bin_int(r, 0, 0);
    meta->ulen = (uint32_t)bin_int(r, 0, 1);
    meta->crc = (uint32_t)bin_int(r, 0, 2);
    size_t n = (size_t)PQgetlength(r, 0, 3);
    size_t off = data->len;
    rc = ahl_buf_add(data, PQgetvalue(r, 0, 3), n);
    PQclear(r);
    if (rc < 0)
        return rc;
    meta->data = data->data + off;
    meta->len = n;
    return 0;
}

/* Every chunk in hash order, a page at a time from the last hash seen, by statement q (hash,
 * kind, then ulen, crc and data when with_data, else the data's length): the chunk scan and the
 * collector's listing. */
static int chunk_rows(struct ahl_store_tx *t, const struct ahl__pg_stmt *q, bool with_data,
                      ahl_store_chunk_cb cb, void *ctx)
{
    uint8_t last[AHL_SHA256_LEN];
    int last_len = 0; /* the empty bytea sorts before every hash */
    for (;;) {
        PGresult *r = NULL;
        const char *v[] = {(const char *)last};
        int len[] = {last_len};
        int fmt[] = {1};
        int rc = ahl__pg_run(t, q, 1, v, len, fmt, true, &r);
        if (rc < 0)
            return rc;
        int rows = PQntuples(r);
        for (int i = 0; i < rows && rc == 0; i++) {
            struct ahl_chunk c;
            memset(&c, 0, sizeof c);
            if (PQgetlength(r, i, 0) == AHL_SHA256_LEN)
                memcpy(c.hash, PQgetvalue(r, i, 0), AHL_SHA256_LEN);
            c.kind = (int)bin_int(r, i, 1);
            if (with_data) {
                c.ulen = (uint32_t)bin_int(r, i, 2);
                c.crc = (uint32_t)bin_int(r, i, 3);
                c.data = PQgetvalue(r, i, 4);
                c.len = (size_t)PQgetlength(r, i, 4);
            } else {
                c.len = (size_t)bin_int(r, i, 2);
            }
            memcpy(last, c.hash, AHL_SHA256_LEN);
            last_len = AHL_SHA256_LEN;
            rc = cb(ctx, &c);
        }
        PQclear(r);
        if (rc || rows < SCAN_PAGE)
            return rc;
    }
}

static int chunk_scan(struct ahl_store_tx *t, ahl_store_chunk_cb cb, void *ctx)
{
    return chunk_rows(t, &c_scan, true, cb, ctx);
}

static int chunk_stats(struct ahl_store_tx *t, uint64_t *count, uint64_t *bytes)
{
    PGresult *r = NULL;
    int rc = ahl__pg_run(t, &c_stats, 0, NULL, NULL, NULL, false, &r);
    if (rc < 0)
        return rc;
    *count = PQntuples(r) == 1 ? (uint64_t)ahl__pg_int(r, 0, 0) : 0;
    *bytes = PQntuples(r) == 1 ? (uint64_t)ahl__pg_int(r, 0, 1) : 0;
    PQclear(r);
    return 0;
}

/* ---- garbage collection -------------------------------------------------------------------- */

/* Every chunk's hash, kind and length in hash order, a page at a time (one snapshot: the read
 * transaction is REPEATABLE READ). */
static int chunk_list(struct ahl_store_tx *t, ahl_store_chunk_cb cb, void *ctx)
{
    return chunk_rows(t, &c_list, false, cb, ctx);
}

static int chunk_delete(struct ahl_store_tx *t, const uint8_t hash[AHL_SHA256_LEN])
{
    const char *v[] = {(const char *)hash};
    int len[] = {AHL_SHA256_LEN};
    int fmt[] = {1};
    return ahl__pg_send(t, &c_delete, 1, v, len, fmt);
}

static const struct ahl__pg_stmt fence_get = {
    "r_fence_get", "SELECT epoch, until_ms FROM frame_fence WHERE id=1"};
static const struct ahl__pg_stmt fence_bump = {
    "r_fence_bump",
    "UPDATE frame_fence SET epoch=epoch+1, until_ms=GREATEST(until_ms, $1) WHERE id=1"};

static int frame_fence_get(struct ahl_store_tx *t, uint64_t *epoch, int64_t *until_ms)
{
    PGresult *r = NULL;
    int rc = query(t, &fence_get, 0, NULL, &r);
    *epoch = 0;
    *until_ms = 0;
    if (rc < 0)
        return rc;
    if (PQntuples(r) == 1) {
        *epoch = (uint64_t)ahl__pg_int(r, 0, 0);
        *until_ms = ahl__pg_int(r, 0, 1);
    }
    PQclear(r);
    return 0;
}

static int frame_fence_bump(struct ahl_store_tx *t, int64_t until_ms)
{
    struct ahl__pg_num n;
    const char *v[] = {ahl__pg_i64(&n, until_ms)};
    return ahl__pg_send(t, &fence_bump, 1, v, NULL, NULL);
}

static int gc_roots(struct ahl_store_tx *t, ahl_store_version_cb cb, void *ctx)
{
    return versions_paged(t, &gc_roots_page, cb, ctx);
}

static int gc_versions(struct ahl_store_tx *t, unsigned limit, uint64_t *versions,
                       uint64_t *sets)
{
    PGresult *r = NULL;
    int rc;
    *versions = *sets = 0;
    if (!limit) {
        if ((rc = query(t, &gc_v_count, 0, NULL, &r)) < 0)
            return rc;
        if (PQntuples(r) == 1) {
            *versions = (uint64_t)ahl__pg_int(r, 0, 0);
            *sets = (uint64_t)ahl__pg_int(r, 0, 1);
        }
        PQclear(r);
        return 0;
    }
    struct ahl__pg_num n;
    const char *v[] = {ahl__pg_i64(&n, limit)};
    if ((rc = query(t, &gc_v_delete, 1, v, &r)) < 0)
        return rc;
    *versions = strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

/* ---- frame index --------------------------------------------------------------------------- */

static void f_row(const PGresult *r, int i, struct ahl_frame_rec *f)
{
    memset(f, 0, sizeof *f);
    ahl__pg_text(r, i, 0, f->imageset_id, sizeof f->imageset_id);
    ahl__pg_text(r, i, 1, f->frame_id, sizeof f->frame_id);
    ahl__pg_text(r, i, 2, f->transfer_syntax, sizeof f->transfer_syntax);
}

static int frame_put(struct ahl_store_tx *t, const struct ahl_frame_rec *f)
{
    const char *v[] = {f->imageset_id, f->frame_id, f->transfer_syntax};
    return ahl__pg_send(t, &f_put, NPARAMS(v), v, NULL, NULL); /* a set's frames, in a row */
}

static int frame_get(struct ahl_store_tx *t, const char *set, const char *frame,
                     struct ahl_frame_rec *out)
{
    const char *v[] = {set, frame};
    ONE_ROW(t, &f_get, v, f_row, out);
}

static int frame_copy(struct ahl_store_tx *t, const char *from, const char *to)
{
    const char *v[] = {from, to};
    return run_text(t, &f_copy, NPARAMS(v), v);
}

static int frame_delete_set(struct ahl_store_tx *t, const char *set)
{
    const char *v[] = {set};
    return run_text(t, &f_delete_set, NPARAMS(v), v);
}

static int tombstones_expire(struct ahl_store_tx *t, int64_t before_ms, unsigned limit,
                             uint64_t *imagesets, uint64_t *datastores)
{
    struct ahl__pg_num n1, n2;
    const char *v[] = {ahl__pg_i64(&n1, before_ms), ahl__pg_i64(&n2, limit)};
    PGresult *r = NULL;
    int rc = ahl__pg_run(t, &x_sets, 2, v, NULL, NULL, false, &r);
    if (rc < 0)
        return rc;
    *imagesets = (uint64_t)changed(r);
    PQclear(r);
    r = NULL;
    if ((rc = ahl__pg_run(t, &x_stores, 1, v, NULL, NULL, false, &r)) < 0)
        return rc;
    *datastores = (uint64_t)changed(r);
    PQclear(r);
    return 0;
}

static int frame_list(struct ahl_store_tx *t, const char *set, ahl_store_frame_cb cb, void *ctx)
{
    struct ahl_frame_rec rec;
    const char *v[] = {set};
    FOR_ROWS(t, &f_list, v, rec, f_row, cb, ctx);
}

static int frame_backfill_next(struct ahl_store_tx *t, char id[AHL_ID_LEN + 1])
{
    PGresult *r = NULL;
    int rc = ahl__pg_run(t, &f_backfill_next, 0, NULL, NULL, NULL, false, &r);
    if (rc < 0)
        return rc;
    rc = PQntuples(r) > 0 ? 0 : AHL_ENOTFOUND;
    if (rc == 0)
        ahl__pg_text(r, 0, 0, id, AHL_ID_LEN + 1);
    PQclear(r);
    return rc;
}

static int frame_backfill_done(struct ahl_store_tx *t, const char *id)
{
    const char *v[] = {id};
    return run_text(t, &f_backfill_done, NPARAMS(v), v);
}

void ahl__pg_rows_ops(struct ahl_store_ops *ops)
{
    ops->datastore_put = datastore_put;
    ops->datastore_get = datastore_get;
    ops->datastore_list = datastore_list;
    ops->datastore_delete = datastore_delete;
    ops->datastore_count_imagesets = datastore_count_imagesets;
    ops->tag_put = tag_put_;
    ops->tag_delete = tag_delete_;
    ops->tag_list = tag_list_;
    ops->tag_delete_all = tag_delete_all_;
    ops->tag_scan = tag_scan_;
    ops->imageset_put = imageset_put;
    ops->imageset_advance = imageset_advance;
    ops->imageset_get = imageset_get;
    ops->imageset_list = imageset_list;
    ops->imageset_by_study = imageset_by_study;
    ops->imageset_touch = imageset_touch;
    ops->version_put = version_put;
    ops->version_update = version_update;
    ops->version_get = version_get;
    ops->version_list = version_list;
    ops->version_scan = version_scan;
    ops->chunk_put = chunk_put;
    ops->chunk_get = chunk_get;
    ops->chunk_scan = chunk_scan;
    ops->chunk_stats = chunk_stats;
    ops->chunk_list = chunk_list;
    ops->chunk_delete = chunk_delete;
    ops->gc_roots = gc_roots;
    ops->gc_versions = gc_versions;
    ops->frame_fence_get = frame_fence_get;
    ops->frame_fence_bump = frame_fence_bump;
    ops->frame_put = frame_put;
    ops->frame_get = frame_get;
    ops->frame_copy = frame_copy;
    ops->frame_delete_set = frame_delete_set;
    ops->tombstones_expire = tombstones_expire;
    ops->frame_list = frame_list;
    ops->frame_backfill_next = frame_backfill_next;
    ops->frame_backfill_done = frame_backfill_done;
}
