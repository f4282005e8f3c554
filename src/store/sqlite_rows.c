/* The SQLite backend's rows: the prepared statements every connection caches, and the ops on
 * data stores, tags, image sets, versions, chunks, the frame index and import jobs. (The search
 * index is in sqlite_search.c, the frame backfill queue in sqlite_schema.c.)
 */
#include "store/sqlite_internal.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/banned.h"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_DS_INSERT] = "INSERT INTO datastore(" DS_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
    [ST_DS_UPDATE] = "UPDATE datastore SET name=?2, status=?3, kms_key_arn=?4,"
                     " lambda_authorizer_arn=?5, lossless_storage_format=?6, created_at=?7,"
                     " updated_at=?8 WHERE id=?1",
    [ST_DS_GET] = "SELECT " DS_COLS " FROM datastore WHERE id=?1",
    [ST_DS_LIST] = "SELECT " DS_COLS " FROM datastore WHERE id > ?1 AND (?2 IS NULL OR status=?2)"
                   " ORDER BY id LIMIT ?3",
    [ST_DS_DELETE] = "DELETE FROM datastore WHERE id=?1",
    [ST_DS_COUNT] = "SELECT count(*) FROM imageset WHERE datastore_id=?1 AND state<>'DELETED'",
    [ST_TAG_PUT] = "INSERT OR REPLACE INTO tag(arn, key, value) VALUES(?1,?2,?3)",
    [ST_TAG_DELETE] = "DELETE FROM tag WHERE arn=?1 AND key=?2",
    [ST_TAG_LIST] = "SELECT key, value FROM tag WHERE arn=?1 ORDER BY key",
    [ST_TAG_DELETE_ALL] = "DELETE FROM tag WHERE arn=?1",
    [ST_TAG_SCAN] = "SELECT arn, key, value FROM tag ORDER BY arn, key",
    [ST_IS_INSERT] = "INSERT INTO imageset(" IS_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
    [ST_IS_UPDATE] = "UPDATE imageset SET datastore_id=?2, state=?3, workflow_status=?4,"
                     " message=?5, is_primary=?6, latest_version=?7, created_at=?8,"
                     " updated_at=?9, last_accessed_at=?10, deleted_at=?11 WHERE id=?1",
    /* A set never changes data store: leaving datastore_id out of SET spares the write of its
     * index (SQLite rewrites every index over a column the SET names); a different one fails
     * the compare-and-set instead. */
    [ST_IS_ADVANCE] = "UPDATE imageset SET state=?3, workflow_status=?4,"
                      " message=?5, is_primary=?6, latest_version=?7, created_at=?8,"
                      " updated_at=?9, last_accessed_at=max(last_accessed_at, ?10), deleted_at=?11"
                      " WHERE id=?1 AND datastore_id=?2 AND latest_version=?12",
    [ST_IS_GET] = "SELECT " IS_COLS " FROM imageset WHERE id=?1",
    [ST_IS_LIST] = "SELECT " IS_COLS " FROM imageset WHERE datastore_id=?1 AND id > ?2"
                   " AND state<>'DELETED' ORDER BY id LIMIT ?3",
    [ST_IS_BY_STUDY] = "SELECT i.id, i.datastore_id, i.state, i.workflow_status, i.message,"
                       " i.is_primary, i.latest_version, i.created_at, i.updated_at,"
                       " i.last_accessed_at, i.deleted_at FROM search s"
                       " JOIN imageset i ON i.id = s.imageset_id"
                       " WHERE s.datastore_id=?1 AND s.study_instance_uid=?2"
                       " AND i.state<>'DELETED' AND (?3 = 0 OR i.is_primary = 1) ORDER BY i.id",
    /* An access recorded by a node's flush (ahl_store_imageset_touch): only ever forward. */
    [ST_IS_TOUCH] = "UPDATE imageset SET last_accessed_at=?2 WHERE id=?1 AND last_accessed_at<?2"
                    " AND state<>'DELETED'",
    [ST_S_TOUCH] = "UPDATE search SET last_accessed_at=?2 WHERE imageset_id=?1"
                   " AND last_accessed_at<?2",
    [ST_V_INSERT] = "INSERT INTO version(" V_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
    [ST_V_UPDATE] = "UPDATE version SET state=?4, workflow_status=?5, message=?6, forced=?7,"
                    " updated_at=?9 WHERE imageset_id=?1 AND version=?2",
    [ST_V_GET] = "SELECT " V_COLS " FROM version WHERE imageset_id=?1 AND version=?2",
    [ST_V_LIST] = "SELECT " V_COLS " FROM version WHERE imageset_id=?1 AND version < ?2"
                  " ORDER BY version DESC LIMIT ?3",
    [ST_V_SCAN] = "SELECT " V_COLS " FROM version ORDER BY imageset_id, version",
    [ST_C_PUT] = "INSERT OR IGNORE INTO chunk(hash, kind, ulen, crc, data) VALUES(?1,?2,?3,?4,?5)",
    [ST_C_GET] = "SELECT kind, ulen, crc, data FROM chunk WHERE hash=?1",
    [ST_C_SCAN] = "SELECT hash, kind, ulen, crc, data FROM chunk ORDER BY hash",
    [ST_C_STATS] = "SELECT count(*), coalesce(sum(length(data)) + 32 * count(*), 0) FROM chunk",
    [ST_C_LIST] = "SELECT hash, kind, length(data) FROM chunk",
    [ST_C_DELETE] = "DELETE FROM chunk WHERE hash=?1",
    [ST_GC_ROOTS] = "SELECT " V_COLS " FROM version WHERE imageset_id IN"
                    " (SELECT id FROM imageset WHERE state<>'DELETED')",
    [ST_GC_V_COUNT] = "SELECT count(*), count(DISTINCT imageset_id) FROM version"
                      " WHERE imageset_id NOT IN (SELECT id FROM imageset WHERE state<>'DELETED')",
    [ST_GC_V_DELETE] = "DELETE FROM version WHERE (imageset_id, version) IN"
                       " (SELECT imageset_id, version FROM version WHERE imageset_id NOT IN"
                       " (SELECT id FROM imageset WHERE state<>'DELETED') LIMIT ?1)",
    [ST_FENCE_GET] = "SELECT epoch, until_ms FROM frame_fence WHERE id=1",
    [ST_FENCE_BUMP] = "UPDATE frame_fence SET epoch=epoch+1, until_ms=max(until_ms, ?1) WHERE id=1",
    [ST_S_PUT] = "INSERT OR REPLACE INTO search(" S_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,"
                 "?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24)",
    [ST_S_GET] = "SELECT " S_COLS " FROM search WHERE imageset_id=?1",
    [ST_S_DELETE] = "DELETE FROM search WHERE imageset_id=?1",
    [ST_F_PUT] = "INSERT OR REPLACE INTO frame(imageset_id, frame_id, transfer_syntax)"
                 " VALUES(?1,?2,?3)",
    [ST_F_GET] = "SELECT imageset_id, frame_id, transfer_syntax FROM frame"
                 " WHERE imageset_id=?1 AND frame_id=?2",
    [ST_F_COPY] = "INSERT OR IGNORE INTO frame(imageset_id, frame_id, transfer_syntax)"
                  " SELECT ?2, frame_id, transfer_syntax FROM frame WHERE imageset_id=?1",
    [ST_F_DELETE_SET] = "DELETE FROM frame WHERE imageset_id=?1",
    [ST_F_LIST] = "SELECT imageset_id, frame_id, transfer_syntax FROM frame WHERE imageset_id=?1"
                  " ORDER BY frame_id",
    [ST_F_BACKFILL_NEXT] = "SELECT imageset_id FROM frame_backfill ORDER BY imageset_id LIMIT 1",
    [ST_F_BACKFILL_DONE] = "DELETE FROM frame_backfill WHERE imageset_id=?1",
    [ST_J_INSERT] = "INSERT INTO job(" J_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,"
                    "?13,?14)",
    [ST_J_UPDATE] = "UPDATE job SET datastore_id=?2, name=?3, status=?4, role_arn=?5,"
                    " input_uri=?6, output_uri=?7, message=?8, client_token=?9,"
                    " submitted_at=?10, ended_at=?11, claimed_by=?12, lease_until=?13,"
                    " attempts=?14 WHERE id=?1",
    [ST_J_GET] = "SELECT " J_COLS " FROM job WHERE id=?1",
    /* Newest first; the cursor is the (submitted_at, id) of the last row returned. */
    [ST_J_LIST] = "SELECT " J_COLS " FROM job WHERE datastore_id=?1 AND (?2 IS NULL OR status=?2)"
                  " AND (?3 IS NULL OR (submitted_at, id) < (SELECT submitted_at, id FROM job"
                  " WHERE id=?3)) ORDER BY submitted_at DESC, id DESC LIMIT ?4",
    /* ?1 node, ?2 now, ?3 lease (ms). The status terms match the partial index job_open. */
    [ST_J_CLAIM] = "UPDATE job SET status='IN_PROGRESS', claimed_by=?1, lease_until=?2 + ?3,"
                   " attempts=attempts + 1 WHERE id=(SELECT id FROM job"
                   " WHERE status IN ('SUBMITTED', 'IN_PROGRESS')"
                   " AND (status='SUBMITTED' OR lease_until < ?2)"
                   " ORDER BY submitted_at, id LIMIT 1) RETURNING " J_COLS,
    [ST_J_RENEW] = "UPDATE job SET lease_until=?3 + ?4 WHERE id=?1 AND claimed_by=?2"
                   " AND status='IN_PROGRESS'",
    /* ?2 status, ?3 message, ?4 ended_at, ?5 node. */
    [ST_J_RELEASE] = "UPDATE job SET status=?2, message=?3, ended_at=?4, claimed_by='',"
                     " lease_until=0, attempts=attempts - (?2='SUBMITTED')"
                     " WHERE id=?1 AND claimed_by=?5 AND status='IN_PROGRESS'",
    [ST_J_OPTIONS_PUT] = "UPDATE job SET options=?2 WHERE id=?1",
    [ST_J_OPTIONS_GET] = "SELECT options FROM job WHERE id=?1",
/* Tombstones: the same oldest `limit` deleted sets (?1 time, ?2 limit) are named by the first
 * three statements of one transaction, through the partial index imageset_deleted. */
#define X_DUE                                                           \
    "(SELECT id FROM imageset WHERE state='DELETED' AND deleted_at<=?1" \
    " ORDER BY deleted_at, id LIMIT ?2)"
    [ST_X_VERSIONS] = "DELETE FROM version WHERE imageset_id IN " X_DUE,
    [ST_X_FRAMES] = "DELETE FROM frame WHERE imageset_id IN " X_DUE,
    [ST_X_SETS] = "DELETE FROM imageset WHERE id IN " X_DUE,
#undef X_DUE
#define X_STORES                                                          \
    "(SELECT id FROM datastore WHERE status='DELETED' AND updated_at<=?1" \
    " AND NOT EXISTS (SELECT 1 FROM imageset WHERE imageset.datastore_id = datastore.id))"
    [ST_X_JOBS] = "DELETE FROM job WHERE datastore_id IN " X_STORES,
    [ST_X_DATASTORES] = "DELETE FROM datastore WHERE id IN " X_STORES,
#undef X_STORES
};

/* The cached statement id of conn, reset and with its bindings cleared. */
sqlite3_stmt *ahl__sq_stmt(struct ahl__sq_conn *c, enum ahl__sq_stmt id)
{
    if (!c->st[id]) {
        if (sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->st[id],
                               NULL) != SQLITE_OK) {
            ahl_error("sqlite: prepare %d: %s", (int)id, sqlite3_errmsg(c->db));
            return NULL;
        }
    } else {
        sqlite3_reset(c->st[id]);
        sqlite3_clear_bindings(c->st[id]);
    }
    return c->st[id];
}

/* ---- data stores -------------------------------------------------------------------------- */

static void ds_row(sqlite3_stmt *st, struct ahl_datastore_rec *r)
{
    memset(r, 0, sizeof *r);
    ahl__sq_col_text(st, 0, r->id, sizeof r->id);
    ahl__sq_col_text(st, 1, r->name, sizeof r->name);
    ahl__sq_col_text(st, 2, r->status, sizeof r->status);
    ahl__sq_col_text(st, 3, r->kms_key_arn, sizeof r->kms_key_arn);
    ahl__sq_col_text(st, 4, r->lambda_authorizer_arn, sizeof r->lambda_authorizer_arn);
    ahl__sq_col_text(st, 5, r->lossless_storage_format, sizeof r->lossless_storage_format);
    r->created_at_ms = sqlite3_column_int64(st, 6);
    r->updated_at_ms = sqlite3_column_int64(st, 7);
}

int ahl__sq_datastore_put(struct ahl_store_tx *t, const struct ahl_datastore_rec *r, bool create)
{
    PREP(st, CONN(t), create ? ST_DS_INSERT : ST_DS_UPDATE);
    ahl__sq_bind_text(st, 1, r->id);
    ahl__sq_bind_text(st, 2, r->name);
    ahl__sq_bind_text(st, 3, r->status);
    ahl__sq_bind_text(st, 4, r->kms_key_arn);
    ahl__sq_bind_text(st, 5, r->lambda_authorizer_arn);
    ahl__sq_bind_text(st, 6, r->lossless_storage_format);
    sqlite3_bind_int64(st, 7, r->created_at_ms);
    sqlite3_bind_int64(st, 8, r->updated_at_ms);
    return create ? ahl__sq_step_done(CONN(t), st, "datastore insert")
                  : ahl__sq_step_one_change(CONN(t), st, "datastore update");
}

int ahl__sq_datastore_get(struct ahl_store_tx *t, const char *id, struct ahl_datastore_rec *out)
{
    PREP(st, CONN(t), ST_DS_GET);
    ahl__sq_bind_text(st, 1, id);
    ONE_ROW(CONN(t), st, ds_row, out, "datastore get");
}

int ahl__sq_datastore_list(struct ahl_store_tx *t, const char *status, const char *after_id,
                           unsigned limit, ahl_store_datastore_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_DS_LIST);
    struct ahl_datastore_rec rec;
    ahl__sq_bind_text(st, 1, after_id);
    ahl__sq_bind_opt_text(st, 2, status);
    sqlite3_bind_int64(st, 3, limit);
    FOR_ROWS(CONN(t), st, rec, ds_row, cb, ctx, "datastore list");
}

int ahl__sq_datastore_delete(struct ahl_store_tx *t, const char *id)
{
    PREP(st, CONN(t), ST_DS_DELETE);
    ahl__sq_bind_text(st, 1, id);
    return ahl__sq_step_one_change(CONN(t), st, "datastore delete");
}

int ahl__sq_datastore_count_imagesets(struct ahl_store_tx *t, const char *id, uint64_t *out)
{
    PREP(st, CONN(t), ST_DS_COUNT);
    ahl__sq_bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return ahl__sq_err(CONN(t)->db, rc, "datastore count");
    *out = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

int ahl__sq_tombstones_expire(struct ahl_store_tx *t, int64_t before_ms, unsigned limit,
                              uint64_t *imagesets, uint64_t *datastores)
{
    static const enum ahl__sq_stmt steps[] = {ST_X_VERSIONS, ST_X_FRAMES, ST_X_SETS, ST_X_JOBS,
                                              ST_X_DATASTORES};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        PREP(st, CONN(t), steps[i]);
        sqlite3_bind_int64(st, 1, before_ms);
        if (steps[i] <= ST_X_SETS)
            sqlite3_bind_int64(st, 2, limit);
        int rc = ahl__sq_step_done(CONN(t), st, "tombstone expiry");
        if (rc < 0)
            return rc;
        if (steps[i] == ST_X_SETS)
            *imagesets = (uint64_t)sqlite3_changes(CONN(t)->db);
        else if (steps[i] == ST_X_DATASTORES)
            *datastores = (uint64_t)sqlite3_changes(CONN(t)->db);
    }
    return 0;
}

/* ---- tags --------------------------------------------------------------------------------- */

int ahl__sq_tag_put(struct ahl_store_tx *t, const char *arn, const char *key, const char *value)
{
    PREP(st, CONN(t), ST_TAG_PUT);
    ahl__sq_bind_text(st, 1, arn);
    ahl__sq_bind_text(st, 2, key);
    ahl__sq_bind_text(st, 3, value);
    return ahl__sq_step_done(CONN(t), st, "tag put");
}

int ahl__sq_tag_delete(struct ahl_store_tx *t, const char *arn, const char *key)
{
    PREP(st, CONN(t), ST_TAG_DELETE);
    ahl__sq_bind_text(st, 1, arn);
    ahl__sq_bind_text(st, 2, key);
    return ahl__sq_step_done(CONN(t), st, "tag delete");
}

int ahl__sq_tag_list(struct ahl_store_tx *t, const char *arn, ahl_store_tag_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_TAG_LIST);
    ahl__sq_bind_text(st, 1, arn);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int u = cb(ctx, (const char *)sqlite3_column_text(st, 0),
                   (const char *)sqlite3_column_text(st, 1));
        if (u) {
            sqlite3_reset(st);
            return u;
        }
    }
    return rc == SQLITE_DONE ? 0 : ahl__sq_err(CONN(t)->db, rc, "tag list");
}

int ahl__sq_tag_delete_all(struct ahl_store_tx *t, const char *arn)
{
    PREP(st, CONN(t), ST_TAG_DELETE_ALL);
    ahl__sq_bind_text(st, 1, arn);
    return ahl__sq_step_done(CONN(t), st, "tag delete all");
}

int ahl__sq_tag_scan(struct ahl_store_tx *t, ahl_store_tag_scan_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_TAG_SCAN);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int u =
            cb(ctx, (const char *)sqlite3_column_text(st, 0),
               (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2));
        if (u) {
            sqlite3_reset(st);
            return u;
        }
    }
    return rc == SQLITE_DONE ? 0 : ahl__sq_err(CONN(t)->db, rc, "tag scan");
}

/* ---- image sets --------------------------------------------------------------------------- */

static void is_row(sqlite3_stmt *st, struct ahl_imageset_rec *r)
{
    memset(r, 0, sizeof *r);
    ahl__sq_col_text(st, 0, r->id, sizeof r->id);
    ahl__sq_col_text(st, 1, r->datastore_id, sizeof r->datastore_id);
    ahl__sq_col_text(st, 2, r->state, sizeof r->state);
    ahl__sq_col_text(st, 3, r->workflow_status, sizeof r->workflow_status);
    ahl__sq_col_text(st, 4, r->message, sizeof r->message);
    r->is_primary = sqlite3_column_int(st, 5) != 0;
    r->latest_version = (uint64_t)sqlite3_column_int64(st, 6);
    r->created_at_ms = sqlite3_column_int64(st, 7);
    r->updated_at_ms = sqlite3_column_int64(st, 8);
    r->last_accessed_at_ms = sqlite3_column_int64(st, 9);
    r->deleted_at_ms = sqlite3_column_int64(st, 10);
}

static void is_bind(sqlite3_stmt *st, const struct ahl_imageset_rec *r)
{
    ahl__sq_bind_text(st, 1, r->id);
    ahl__sq_bind_text(st, 2, r->datastore_id);
    ahl__sq_bind_text(st, 3, r->state);
    ahl__sq_bind_text(st, 4, r->workflow_status);
    ahl__sq_bind_text(st, 5, r->message);
    sqlite3_bind_int(st, 6, r->is_primary);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)r->latest_version);
    sqlite3_bind_int64(st, 8, r->created_at_ms);
    sqlite3_bind_int64(st, 9, r->updated_at_ms);
    sqlite3_bind_int64(st, 10, r->last_accessed_at_ms);
    sqlite3_bind_int64(st, 11, r->deleted_at_ms);
}

int ahl__sq_imageset_put(struct ahl_store_tx *t, const struct ahl_imageset_rec *r, bool create)
{
    PREP(st, CONN(t), create ? ST_IS_INSERT : ST_IS_UPDATE);
    is_bind(st, r);
    return create ? ahl__sq_step_done(CONN(t), st, "imageset insert")
                  : ahl__sq_step_one_change(CONN(t), st, "imageset update");
}

int ahl__sq_imageset_advance(struct ahl_store_tx *t, const struct ahl_imageset_rec *r,
                             uint64_t expected)
{
    PREP(st, CONN(t), ST_IS_ADVANCE);
    is_bind(st, r);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)expected);
    int rc = ahl__sq_step_one_change(CONN(t), st, "imageset advance");
    return rc == AHL_ENOTFOUND ? AHL_ECONFLICT : rc;
}

static int imageset_get_any(struct ahl_store_tx *t, const char *id, struct ahl_imageset_rec *out)
{
    PREP(st, CONN(t), ST_IS_GET);
    ahl__sq_bind_text(st, 1, id);
    ONE_ROW(CONN(t), st, is_row, out, "imageset get");
}

int ahl__sq_imageset_get(struct ahl_store_tx *t, const char *ds, const char *id,
                         struct ahl_imageset_rec *out)
{
    int rc = imageset_get_any(t, id, out);
    return rc == 0 && ds && strcmp(ds, out->datastore_id) != 0 ? AHL_ENOTFOUND : rc;
}

int ahl__sq_imageset_list(struct ahl_store_tx *t, const char *ds, const char *after_id,
                          unsigned limit, ahl_store_imageset_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_IS_LIST);
    struct ahl_imageset_rec rec;
    ahl__sq_bind_text(st, 1, ds);
    ahl__sq_bind_text(st, 2, after_id);
    sqlite3_bind_int64(st, 3, limit);
    FOR_ROWS(CONN(t), st, rec, is_row, cb, ctx, "imageset list");
}

int ahl__sq_imageset_by_study(struct ahl_store_tx *t, const char *ds, const char *study,
                              bool primary_only, ahl_store_imageset_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_IS_BY_STUDY);
    struct ahl_imageset_rec rec;
    ahl__sq_bind_text(st, 1, ds);
    ahl__sq_bind_text(st, 2, study);
    sqlite3_bind_int(st, 3, primary_only);
    FOR_ROWS(CONN(t), st, rec, is_row, cb, ctx, "imageset by study");
}

int ahl__sq_imageset_touch(struct ahl_store_tx *t, const char *id, int64_t at_ms)
{
    int rc;
    PREP(st, CONN(t), ST_IS_TOUCH);
    ahl__sq_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, at_ms);
    if ((rc = ahl__sq_step_done(CONN(t), st, "imageset touch")) < 0)
        return rc;
    PREP(ss, CONN(t), ST_S_TOUCH);
    ahl__sq_bind_text(ss, 1, id);
    sqlite3_bind_int64(ss, 2, at_ms);
    return ahl__sq_step_done(CONN(t), ss, "search touch");
}

/* ---- versions ----------------------------------------------------------------------------- */

static void v_row(sqlite3_stmt *st, struct ahl_version_rec *r)
{
    memset(r, 0, sizeof *r);
    ahl__sq_col_text(st, 0, r->imageset_id, sizeof r->imageset_id);
    r->version = (uint64_t)sqlite3_column_int64(st, 1);
    if (sqlite3_column_bytes(st, 2) == AHL_SHA256_LEN)
        memcpy(r->root, sqlite3_column_blob(st, 2), AHL_SHA256_LEN);
    ahl__sq_col_text(st, 3, r->state, sizeof r->state);
    ahl__sq_col_text(st, 4, r->workflow_status, sizeof r->workflow_status);
    ahl__sq_col_text(st, 5, r->message, sizeof r->message);
    r->forced = sqlite3_column_int(st, 6) != 0;
    r->created_at_ms = sqlite3_column_int64(st, 7);
    r->updated_at_ms = sqlite3_column_int64(st, 8);
}

static void v_bind(sqlite3_stmt *st, const struct ahl_version_rec *r)
{
    ahl__sq_bind_text(st, 1, r->imageset_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)r->version);
    sqlite3_bind_blob(st, 3, r->root, AHL_SHA256_LEN, SQLITE_STATIC);
    ahl__sq_bind_text(st, 4, r->state);
    ahl__sq_bind_text(st, 5, r->workflow_status);
    ahl__sq_bind_text(st, 6, r->message);
    sqlite3_bind_int(st, 7, r->forced);
    sqlite3_bind_int64(st, 8, r->created_at_ms);
    sqlite3_bind_int64(st, 9, r->updated_at_ms);
}

int ahl__sq_version_put(struct ahl_store_tx *t, const struct ahl_version_rec *r)
{
    PREP(st, CONN(t), ST_V_INSERT);
    v_bind(st, r);
    return ahl__sq_step_done(CONN(t), st, "version insert");
}

int ahl__sq_version_update(struct ahl_store_tx *t, const struct ahl_version_rec *r)
{
    PREP(st, CONN(t), ST_V_UPDATE);
    v_bind(st, r);
    return ahl__sq_step_one_change(CONN(t), st, "version update");
}

int ahl__sq_version_get(struct ahl_store_tx *t, const char *id, uint64_t version,
                        struct ahl_version_rec *out)
{
    PREP(st, CONN(t), ST_V_GET);
    ahl__sq_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)version);
    ONE_ROW(CONN(t), st, v_row, out, "version get");
}

int ahl__sq_version_list(struct ahl_store_tx *t, const char *id, uint64_t below, unsigned limit,
                         ahl_store_version_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_V_LIST);
    struct ahl_version_rec rec;
    ahl__sq_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, below ? (sqlite3_int64)below : INT64_MAX);
    sqlite3_bind_int64(st, 3, limit);
    FOR_ROWS(CONN(t), st, rec, v_row, cb, ctx, "version list");
}

int ahl__sq_version_scan(struct ahl_store_tx *t, ahl_store_version_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_V_SCAN);
    struct ahl_version_rec rec;
    FOR_ROWS(CONN(t), st, rec, v_row, cb, ctx, "version scan");
}

/* ---- chunks ------------------------------------------------------------------------------- */

int ahl__sq_chunk_put(struct ahl_store_tx *t, const struct ahl_chunk *c)
{
    PREP(st, CONN(t), ST_C_PUT);
    sqlite3_bind_blob(st, 1, c->hash, AHL_SHA256_LEN, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, c->kind);
    sqlite3_bind_int64(st, 3, c->ulen);
    sqlite3_bind_int64(st, 4, c->crc);
    sqlite3_bind_blob64(st, 5, c->len ? c->data : "", c->len, SQLITE_STATIC);
    return ahl__sq_step_done(CONN(t), st, "chunk put");
}

int ahl__sq_chunk_get(struct ahl_store_tx *t, const uint8_t hash[AHL_SHA256_LEN],
                      struct ahl_chunk *meta, struct ahl_buf *data)
{
    PREP(st, CONN(t), ST_C_GET);
    sqlite3_bind_blob(st, 1, hash, AHL_SHA256_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? AHL_ENOTFOUND : ahl__sq_err(CONN(t)->db, rc, "chunk get");
    memcpy(meta->hash, hash, AHL_SHA256_LEN);
    meta->kind = sqlite3_column_int(st, 0);
    meta->ulen = (uint32_t)sqlite3_column_int64(st, 1);
    meta->crc = (uint32_t)sqlite3_column_int64(st, 2);
    const void *p = sqlite3_column_blob(st, 3);
    size_t n = (size_t)sqlite3_column_bytes(st, 3);
    size_t off = data->len;
    rc = ahl_buf_add(data, p, n);
    sqlite3_reset(st);
    if (rc < 0)
        return rc;
    meta->data = data->data + off;
    meta->len = n;
    return 0;
}

/* The chunk rows of statement id (hash, kind, then ulen, crc and data when with_data, else the
 * data's length) handed to cb in turn: the chunk scan and the collector's listing. */
static int chunk_rows(struct ahl_store_tx *t, int id, bool with_data, ahl_store_chunk_cb cb,
                      void *ctx)
{
    PREP(st, CONN(t), id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ahl_chunk c;
        memset(&c, 0, sizeof c);
        if (sqlite3_column_bytes(st, 0) == AHL_SHA256_LEN)
            memcpy(c.hash, sqlite3_column_blob(st, 0), AHL_SHA256_LEN);
        c.kind = sqlite3_column_int(st, 1);
        if (with_data) {
            c.ulen = (uint32_t)sqlite3_column_int64(st, 2);
            c.crc = (uint32_t)sqlite3_column_int64(st, 3);
            c.data = sqlite3_column_blob(st, 4);
            c.len = (size_t)sqlite3_column_bytes(st, 4);
        } else {
            c.len = (size_t)sqlite3_column_int64(st, 2);
        }
        int u = cb(ctx, &c);
        if (u) {
            sqlite3_reset(st);
            return u;
        }
    }
    return rc == SQLITE_DONE
               ? 0
               : ahl__sq_err(CONN(t)->db, rc, with_data ? "chunk scan" : "chunk list");
}

int ahl__sq_chunk_scan(struct ahl_store_tx *t, ahl_store_chunk_cb cb, void *ctx)
{
    return chunk_rows(t, ST_C_SCAN, true, cb, ctx);
}

int ahl__sq_chunk_stats(struct ahl_store_tx *t, uint64_t *count, uint64_t *bytes)
{
    PREP(st, CONN(t), ST_C_STATS);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return ahl__sq_err(CONN(t)->db, rc, "chunk stats");
    *count = (uint64_t)sqlite3_column_int64(st, 0);
    *bytes = (uint64_t)sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    return 0;
}

/* ---- garbage collection ------------------------------------------------------------------ */

int ahl__sq_chunk_list(struct ahl_store_tx *t, ahl_store_chunk_cb cb, void *ctx)
{
    return chunk_rows(t, ST_C_LIST, false, cb, ctx);
}

int ahl__sq_chunk_delete(struct ahl_store_tx *t, const uint8_t hash[AHL_SHA256_LEN])
{
    PREP(st, CONN(t), ST_C_DELETE);
    sqlite3_bind_blob(st, 1, hash, AHL_SHA256_LEN, SQLITE_STATIC);
    return ahl__sq_step_done(CONN(t), st, "chunk delete");
}

int ahl__sq_gc_roots(struct ahl_store_tx *t, ahl_store_version_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_GC_ROOTS);
    struct ahl_version_rec rec;
    FOR_ROWS(CONN(t), st, rec, v_row, cb, ctx, "live versions");
}

int ahl__sq_gc_versions(struct ahl_store_tx *t, unsigned limit, uint64_t *versions, uint64_t *sets)
{
    *versions = *sets = 0;
    if (!limit) {
        PREP(st, CONN(t), ST_GC_V_COUNT);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            return ahl__sq_err(CONN(t)->db, rc, "counting dead versions");
        *versions = (uint64_t)sqlite3_column_int64(st, 0);
        *sets = (uint64_t)sqlite3_column_int64(st, 1);
        sqlite3_reset(st);
        return 0;
    }
    PREP(st, CONN(t), ST_GC_V_DELETE);
    sqlite3_bind_int64(st, 1, limit);
    int rc = ahl__sq_step_done(CONN(t), st, "deleting dead versions");
    if (rc == 0)
        *versions = (uint64_t)sqlite3_changes(CONN(t)->db);
    return rc;
}

int ahl__sq_frame_fence_get(struct ahl_store_tx *t, uint64_t *epoch, int64_t *until_ms)
{
    PREP(st, CONN(t), ST_FENCE_GET);
    int rc = sqlite3_step(st);
    *epoch = 0;
    *until_ms = 0;
    if (rc == SQLITE_ROW) {
        *epoch = (uint64_t)sqlite3_column_int64(st, 0);
        *until_ms = sqlite3_column_int64(st, 1);
    } else if (rc != SQLITE_DONE) {
        return ahl__sq_err(CONN(t)->db, rc, "reading the frame fence");
    }
    sqlite3_reset(st);
    return 0;
}

int ahl__sq_frame_fence_bump(struct ahl_store_tx *t, int64_t until_ms)
{
    PREP(st, CONN(t), ST_FENCE_BUMP);
    sqlite3_bind_int64(st, 1, until_ms);
    return ahl__sq_step_done(CONN(t), st, "moving the frame fence");
}

/* ---- frame index -------------------------------------------------------------------------- */

static void f_row(sqlite3_stmt *st, struct ahl_frame_rec *r)
{
    memset(r, 0, sizeof *r);
    ahl__sq_col_text(st, 0, r->imageset_id, sizeof r->imageset_id);
    ahl__sq_col_text(st, 1, r->frame_id, sizeof r->frame_id);
    ahl__sq_col_text(st, 2, r->transfer_syntax, sizeof r->transfer_syntax);
}

int ahl__sq_frame_put(struct ahl_store_tx *t, const struct ahl_frame_rec *r)
{
    PREP(st, CONN(t), ST_F_PUT);
    ahl__sq_bind_text(st, 1, r->imageset_id);
    ahl__sq_bind_text(st, 2, r->frame_id);
    ahl__sq_bind_text(st, 3, r->transfer_syntax);
    return ahl__sq_step_done(CONN(t), st, "frame put");
}

int ahl__sq_frame_get(struct ahl_store_tx *t, const char *set, const char *frame,
                      struct ahl_frame_rec *out)
{
    PREP(st, CONN(t), ST_F_GET);
    ahl__sq_bind_text(st, 1, set);
    ahl__sq_bind_text(st, 2, frame);
    ONE_ROW(CONN(t), st, f_row, out, "frame get");
}

int ahl__sq_frame_copy(struct ahl_store_tx *t, const char *from, const char *to)
{
    PREP(st, CONN(t), ST_F_COPY);
    ahl__sq_bind_text(st, 1, from);
    ahl__sq_bind_text(st, 2, to);
    return ahl__sq_step_done(CONN(t), st, "frame copy");
}

int ahl__sq_frame_delete_set(struct ahl_store_tx *t, const char *set)
{
    PREP(st, CONN(t), ST_F_DELETE_SET);
    ahl__sq_bind_text(st, 1, set);
    return ahl__sq_step_done(CONN(t), st, "frame delete");
}

int ahl__sq_frame_list(struct ahl_store_tx *t, const char *set, ahl_store_frame_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_F_LIST);
    ahl__sq_bind_text(st, 1, set);
    struct ahl_frame_rec r;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        f_row(st, &r);
        int u = cb(ctx, &r);
        if (u) {
            sqlite3_reset(st);
            return u;
        }
    }
    return rc == SQLITE_DONE ? 0 : ahl__sq_err(CONN(t)->db, rc, "frame list");
}

/* ---- import jobs -------------------------------------------------------------------------- */

static void j_row(sqlite3_stmt *st, struct ahl_job_rec *r)
{
    memset(r, 0, sizeof *r);
    ahl__sq_col_text(st, 0, r->id, sizeof r->id);
    ahl__sq_col_text(st, 1, r->datastore_id, sizeof r->datastore_id);
    ahl__sq_col_text(st, 2, r->name, sizeof r->name);
    ahl__sq_col_text(st, 3, r->status, sizeof r->status);
    ahl__sq_col_text(st, 4, r->role_arn, sizeof r->role_arn);
    ahl__sq_col_text(st, 5, r->input_uri, sizeof r->input_uri);
    ahl__sq_col_text(st, 6, r->output_uri, sizeof r->output_uri);
    ahl__sq_col_text(st, 7, r->message, sizeof r->message);
    ahl__sq_col_text(st, 8, r->client_token, sizeof r->client_token);
    r->submitted_at_ms = sqlite3_column_int64(st, 9);
    r->ended_at_ms = sqlite3_column_int64(st, 10);
    ahl__sq_col_text(st, 11, r->claimed_by, sizeof r->claimed_by);
    r->lease_until_ms = sqlite3_column_int64(st, 12);
    r->attempts = (uint32_t)sqlite3_column_int64(st, 13);
}

int ahl__sq_job_put(struct ahl_store_tx *t, const struct ahl_job_rec *r, bool create)
{
    PREP(st, CONN(t), create ? ST_J_INSERT : ST_J_UPDATE);
    ahl__sq_bind_text(st, 1, r->id);
    ahl__sq_bind_text(st, 2, r->datastore_id);
    ahl__sq_bind_text(st, 3, r->name);
    ahl__sq_bind_text(st, 4, r->status);
    ahl__sq_bind_text(st, 5, r->role_arn);
    ahl__sq_bind_text(st, 6, r->input_uri);
    ahl__sq_bind_text(st, 7, r->output_uri);
    ahl__sq_bind_text(st, 8, r->message);
    ahl__sq_bind_text(st, 9, r->client_token);
    sqlite3_bind_int64(st, 10, r->submitted_at_ms);
    sqlite3_bind_int64(st, 11, r->ended_at_ms);
    ahl__sq_bind_text(st, 12, r->claimed_by);
    sqlite3_bind_int64(st, 13, r->lease_until_ms);
    sqlite3_bind_int64(st, 14, r->attempts);
    return create ? ahl__sq_step_done(CONN(t), st, "job insert")
                  : ahl__sq_step_one_change(CONN(t), st, "job update");
}

static int job_get_any(struct ahl_store_tx *t, const char *id, struct ahl_job_rec *out)
{
    PREP(st, CONN(t), ST_J_GET);
    ahl__sq_bind_text(st, 1, id);
    ONE_ROW(CONN(t), st, j_row, out, "job get");
}

int ahl__sq_job_get(struct ahl_store_tx *t, const char *ds, const char *id, struct ahl_job_rec *out)
{
    int rc = job_get_any(t, id, out);
    return rc == 0 && ds && strcmp(ds, out->datastore_id) != 0 ? AHL_ENOTFOUND : rc;
}

int ahl__sq_job_list(struct ahl_store_tx *t, const char *ds, const char *status,
                     const char *after_id, unsigned limit, ahl_store_job_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_J_LIST);
    struct ahl_job_rec rec;
    ahl__sq_bind_text(st, 1, ds);
    ahl__sq_bind_opt_text(st, 2, status);
    ahl__sq_bind_opt_text(st, 3, after_id);
    sqlite3_bind_int64(st, 4, limit);
    FOR_ROWS(CONN(t), st, rec, j_row, cb, ctx, "job list");
}

/* The lease calls run with SQLite's one writer: no other transaction can claim at the same time,
 * so the claim needs no row locking. "now" is this machine's clock. */
int ahl__sq_job_claim(struct ahl_store_tx *t, const char *node, uint32_t lease_ms,
                      struct ahl_job_rec *out)
{
    PREP(st, CONN(t), ST_J_CLAIM);
    ahl__sq_bind_text(st, 1, node);
    sqlite3_bind_int64(st, 2, ahl_now_ms());
    sqlite3_bind_int64(st, 3, lease_ms);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        j_row(st, out);
        rc = sqlite3_step(st); /* ends the statement: RETURNING rows are written at its end */
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : ahl__sq_err(CONN(t)->db, rc, "job claim");
    }
    return rc == SQLITE_DONE ? AHL_ENOTFOUND : ahl__sq_err(CONN(t)->db, rc, "job claim");
}

int ahl__sq_job_renew(struct ahl_store_tx *t, const char *id, const char *node, uint32_t lease_ms)
{
    PREP(st, CONN(t), ST_J_RENEW);
    ahl__sq_bind_text(st, 1, id);
    ahl__sq_bind_text(st, 2, node);
    sqlite3_bind_int64(st, 3, ahl_now_ms());
    sqlite3_bind_int64(st, 4, lease_ms);
    int rc = ahl__sq_step_one_change(CONN(t), st, "job renew");
    return rc == AHL_ENOTFOUND ? AHL_ECONFLICT : rc;
}

int ahl__sq_job_release(struct ahl_store_tx *t, const struct ahl_job_rec *r, const char *node)
{
    PREP(st, CONN(t), ST_J_RELEASE);
    ahl__sq_bind_text(st, 1, r->id);
    ahl__sq_bind_text(st, 2, r->status);
    ahl__sq_bind_text(st, 3, r->message);
    sqlite3_bind_int64(st, 4, r->ended_at_ms);
    ahl__sq_bind_text(st, 5, node);
    int rc = ahl__sq_step_one_change(CONN(t), st, "job release");
    return rc == AHL_ENOTFOUND ? AHL_ECONFLICT : rc;
}

int ahl__sq_job_options_put(struct ahl_store_tx *t, const char *id, const char *options)
{
    PREP(st, CONN(t), ST_J_OPTIONS_PUT);
    ahl__sq_bind_text(st, 1, id);
    ahl__sq_bind_text(st, 2, options);
    return ahl__sq_step_one_change(CONN(t), st, "job options put");
}

int ahl__sq_job_options_get(struct ahl_store_tx *t, const char *id, char **out)
{
    PREP(st, CONN(t), ST_J_OPTIONS_GET);
    *out = NULL;
    ahl__sq_bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *out = strdup(v ? v : "");
        sqlite3_reset(st);
        return *out ? 0 : AHL_ENOMEM;
    }
    return rc == SQLITE_DONE ? AHL_ENOTFOUND : ahl__sq_err(CONN(t)->db, rc, "job options get");
}
