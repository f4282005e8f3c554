/* Internals of the SQLite backend shared by its files (not a public header: src/store only).
 *
 * sqlite_conn.c    connections: opening (and the read-only fallback on a full disk), the pool of
 *                  readers, the single writer and its group commit, the checkpointer thread,
 *                  stats, the integrity check, closing; the ops table;
 * sqlite_schema.c  the schema and its migrations, the frame backfill queue;
 * sqlite_rows.c    the prepared statements and the rows of data stores, tags, image sets,
 *                  versions, chunks, the frame index and import jobs;
 * sqlite_search.c  search index rows and search queries (SQL per query shape, plans);
 * sqlite_qido.c    the QIDO-RS index: set, series, instance and study rows, and its queries;
 * sqlite_events.c  the event outbox and the dispatcher's lease;
 * sqlite_vfs.c     the VFS every connection opens the database through (one write per commit).
 *
 * Every connection caches its prepared statements, indexed by enum ahl__sq_stmt (their SQL is in
 * sqlite_rows.c). The ops reach a transaction's connection with CONN(tx).
 */
#ifndef AHL_STORE_SQLITE_INTERNAL_H
#define AHL_STORE_SQLITE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sqlite3.h>

#include "base/buf.h"
#include "base/err.h"
#include "store/store.h"
#include "store/query_internal.h"

/* The name of the VFS of sqlite_vfs.c, and that VFS, registered on the first call: NULL (the
 * default VFS) if it could not be. */
#define AHL__SQ_VFS "ahilite"
const char *ahl__sq_vfs(void);

enum ahl__sq_stmt {
    ST_DS_INSERT,
    ST_DS_UPDATE,
    ST_DS_GET,
    ST_DS_LIST,
    ST_DS_DELETE,
    ST_DS_COUNT,
    ST_TAG_PUT,
    ST_TAG_DELETE,
    ST_TAG_LIST,
    ST_TAG_DELETE_ALL,
    ST_TAG_SCAN,
    ST_IS_INSERT,
    ST_IS_UPDATE,
    ST_IS_ADVANCE,
    ST_IS_GET,
    ST_IS_LIST,
    ST_IS_BY_STUDY,
    ST_IS_TOUCH,
    ST_S_TOUCH,
    ST_V_INSERT,
    ST_V_UPDATE,
    ST_V_GET,
    ST_V_LIST,
    ST_V_SCAN,
    ST_C_PUT,
    ST_C_GET,
    ST_C_SCAN,
    ST_C_STATS,
    ST_C_LIST,
    ST_C_DELETE,
    ST_GC_ROOTS,
    ST_GC_V_COUNT,
    ST_GC_V_DELETE,
    ST_FENCE_GET,
    ST_FENCE_BUMP,
    ST_S_PUT,
    ST_S_GET,
    ST_S_DELETE,
    ST_F_PUT,
    ST_F_GET,
    ST_F_COPY,
    ST_F_DELETE_SET,
    ST_F_LIST,
    ST_F_BACKFILL_NEXT,
    ST_F_BACKFILL_DONE,
    ST_J_INSERT,
    ST_J_UPDATE,
    ST_J_GET,
    ST_J_LIST,
    ST_J_CLAIM,
    ST_J_RENEW,
    ST_J_RELEASE,
    ST_J_OPTIONS_PUT,
    ST_J_OPTIONS_GET,
    ST_X_VERSIONS,
    ST_X_FRAMES,
    ST_X_SETS,
    ST_X_JOBS,
    ST_X_DATASTORES,
    ST_COUNT
};

/* Search statements differ by query shape (which filters, which sort, a cursor or not); each
 * connection keeps the last few it prepared, keyed by their SQL text. */
#define SEARCH_CACHE 64

struct ahl__sq_cached {
    char *sql;
    sqlite3_stmt *st;
};

/* Transaction control, prepared once per connection like the other statements (every write
 * transaction runs four of them). */
enum ahl__sq_ctl {
    CTL_BEGIN,
    CTL_BEGIN_IMMEDIATE,
    CTL_COMMIT,
    CTL_ROLLBACK,
    CTL_SAVEPOINT,
    CTL_RELEASE,
    CTL_ROLLBACK_TO,
    CTL_COUNT
};

struct ahl__sq_conn {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    sqlite3_stmt *ctl[CTL_COUNT];
    struct ahl__sq_cached search[SEARCH_CACHE];
    unsigned search_next;      /* the slot replaced next when the cache is full */
    struct ahl__sq_conn *next; /* in the idle list */
};

/* How a write transaction's own writes are undone on rollback (see "Group commit" in
 * sqlite_conn.c). */
enum ahl__sq_undo {
    UNDO_ALL,       /* it opened the SQLite transaction: ROLLBACK (nothing else is in it yet) */
    UNDO_SAVEPOINT, /* a later member: ROLLBACK TO its savepoint */
    UNDO_NOTHING,   /* its savepoint could not be opened: it wrote nothing */
};

struct ahl__sq_tx {
    struct ahl_store_tx base;
    struct ahl__sq_conn *conn;
    struct ahl__sq_store *owner;
    enum ahl__sq_undo undo; /* write transactions */
};

/* ---- shared functions --------------------------------------------------------------------- */

/* sqlite_conn.c: the AHL_E* code of a failed SQLite call on db (NULL: none) with result rc, logged
 * when it is an I/O error or a full disk (what names the call). */
int ahl__sq_err(sqlite3 *db, int rc, const char *what);
/* sqlite_conn.c: runs sql, one or more statements, on db. */
int ahl__sq_exec(sqlite3 *db, const char *sql);

/* sqlite_schema.c: the schema version this program writes (the number of migration steps). */
int ahl__sq_schema_version(void);
/* sqlite_schema.c: puts db in WAL mode and migrates its schema to ahl__sq_schema_version() in one
 * transaction. */
int ahl__sq_migrate(sqlite3 *db);

/* sqlite_rows.c: the cached statement id of c, reset and with its bindings cleared. */
sqlite3_stmt *ahl__sq_stmt(struct ahl__sq_conn *c, enum ahl__sq_stmt id);

/* ---- binding and reading helpers ---------------------------------------------------------- */

#define CONN(t) (((struct ahl__sq_tx *)(t))->conn)

static inline void ahl__sq_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_STATIC);
}

static inline void ahl__sq_bind_opt_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s && *s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static inline void ahl__sq_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    size_t n = s ? (size_t)sqlite3_column_bytes(st, i) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Steps a statement that returns no rows. */
static inline int ahl__sq_step_done(struct ahl__sq_conn *c, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return ahl__sq_err(c->db, rc, what);
    return 0;
}

/* Steps a statement expected to change exactly one row (AHL_ENOTFOUND otherwise). */
static inline int ahl__sq_step_one_change(struct ahl__sq_conn *c, sqlite3_stmt *st,
                                          const char *what)
{
    int rc = ahl__sq_step_done(c, st, what);
    if (rc == 0 && sqlite3_changes(c->db) != 1)
        rc = AHL_ENOTFOUND;
    return rc;
}

#define PREP(st, conn, id)                     \
    sqlite3_stmt *st = ahl__sq_stmt(conn, id); \
    if (!st)                                   \
        return AHL_EIO;

/* Steps a query returning rows, calling rowfn(st, rec) and cb(ctx, rec) for each. */
#define FOR_ROWS(conn, st, rec, rowfn, cb, ctx, what)   \
    do {                                                \
        int r_;                                         \
        while ((r_ = sqlite3_step(st)) == SQLITE_ROW) { \
            rowfn(st, &(rec));                          \
            int u_ = cb(ctx, &(rec));                   \
            if (u_) {                                   \
                sqlite3_reset(st);                      \
                return u_;                              \
            }                                           \
        }                                               \
        if (r_ != SQLITE_DONE)                          \
            return ahl__sq_err((conn)->db, r_, what);   \
        return 0;                                       \
    } while (0)

/* Steps a query expected to return at most one row into *out: 0, or AHL_ENOTFOUND. */
#define ONE_ROW(conn, st, rowfn, out, what)                                           \
    do {                                                                              \
        int r_ = sqlite3_step(st);                                                    \
        if (r_ == SQLITE_ROW) {                                                       \
            rowfn(st, out);                                                           \
            sqlite3_reset(st);                                                        \
            return 0;                                                                 \
        }                                                                             \
        return r_ == SQLITE_DONE ? AHL_ENOTFOUND : ahl__sq_err((conn)->db, r_, what); \
    } while (0)

/* ---- the ops (struct ahl_store_ops, whose table is in sqlite_conn.c) ----------------------- */

/* sqlite_rows.c */
int ahl__sq_datastore_put(struct ahl_store_tx *t, const struct ahl_datastore_rec *r, bool create);
int ahl__sq_datastore_get(struct ahl_store_tx *t, const char *id, struct ahl_datastore_rec *out);
int ahl__sq_datastore_list(struct ahl_store_tx *t, const char *status, const char *after_id,
                           unsigned limit, ahl_store_datastore_cb cb, void *ctx);
int ahl__sq_datastore_delete(struct ahl_store_tx *t, const char *id);
int ahl__sq_datastore_count_imagesets(struct ahl_store_tx *t, const char *id, uint64_t *out);
int ahl__sq_tombstones_expire(struct ahl_store_tx *t, int64_t before_ms, unsigned limit,
                              uint64_t *imagesets, uint64_t *datastores);
int ahl__sq_tag_put(struct ahl_store_tx *t, const char *arn, const char *key, const char *value);
int ahl__sq_tag_delete(struct ahl_store_tx *t, const char *arn, const char *key);
int ahl__sq_tag_list(struct ahl_store_tx *t, const char *arn, ahl_store_tag_cb cb, void *ctx);
int ahl__sq_tag_delete_all(struct ahl_store_tx *t, const char *arn);
int ahl__sq_tag_scan(struct ahl_store_tx *t, ahl_store_tag_scan_cb cb, void *ctx);
int ahl__sq_imageset_put(struct ahl_store_tx *t, const struct ahl_imageset_rec *r, bool create);
int ahl__sq_imageset_touch(struct ahl_store_tx *t, const char *id, int64_t at_ms);
int ahl__sq_imageset_advance(struct ahl_store_tx *t, const struct ahl_imageset_rec *r,
                             uint64_t expected);
int ahl__sq_imageset_get(struct ahl_store_tx *t, const char *ds, const char *id,
                         struct ahl_imageset_rec *out);
int ahl__sq_imageset_list(struct ahl_store_tx *t, const char *ds, const char *after_id,
                          unsigned limit, ahl_store_imageset_cb cb, void *ctx);
int ahl__sq_imageset_by_study(struct ahl_store_tx *t, const char *ds, const char *study,
                              bool primary_only, ahl_store_imageset_cb cb, void *ctx);
int ahl__sq_version_put(struct ahl_store_tx *t, const struct ahl_version_rec *r);
int ahl__sq_version_update(struct ahl_store_tx *t, const struct ahl_version_rec *r);
int ahl__sq_version_get(struct ahl_store_tx *t, const char *id, uint64_t version,
                        struct ahl_version_rec *out);
int ahl__sq_version_list(struct ahl_store_tx *t, const char *id, uint64_t below, unsigned limit,
                         ahl_store_version_cb cb, void *ctx);
int ahl__sq_version_scan(struct ahl_store_tx *t, ahl_store_version_cb cb, void *ctx);
int ahl__sq_chunk_put(struct ahl_store_tx *t, const struct ahl_chunk *c);
int ahl__sq_chunk_get(struct ahl_store_tx *t, const uint8_t hash[AHL_SHA256_LEN],
                      struct ahl_chunk *meta, struct ahl_buf *data);
int ahl__sq_chunk_scan(struct ahl_store_tx *t, ahl_store_chunk_cb cb, void *ctx);
int ahl__sq_chunk_stats(struct ahl_store_tx *t, uint64_t *count, uint64_t *bytes);
int ahl__sq_chunk_list(struct ahl_store_tx *t, ahl_store_chunk_cb cb, void *ctx);
int ahl__sq_chunk_delete(struct ahl_store_tx *t, const uint8_t hash[AHL_SHA256_LEN]);
int ahl__sq_frame_fence_get(struct ahl_store_tx *t, uint64_t *epoch, int64_t *until_ms);
int ahl__sq_frame_fence_bump(struct ahl_store_tx *t, int64_t until_ms);
int ahl__sq_gc_roots(struct ahl_store_tx *t, ahl_store_version_cb cb, void *ctx);
int ahl__sq_gc_versions(struct ahl_store_tx *t, unsigned limit, uint64_t *versions,
                        uint64_t *sets);
int ahl__sq_frame_put(struct ahl_store_tx *t, const struct ahl_frame_rec *r);
int ahl__sq_frame_get(struct ahl_store_tx *t, const char *set, const char *frame,
                      struct ahl_frame_rec *out);
int ahl__sq_frame_copy(struct ahl_store_tx *t, const char *from, const char *to);
int ahl__sq_frame_delete_set(struct ahl_store_tx *t, const char *set);
int ahl__sq_frame_list(struct ahl_store_tx *t, const char *set, ahl_store_frame_cb cb, void *ctx);
int ahl__sq_job_put(struct ahl_store_tx *t, const struct ahl_job_rec *r, bool create);
int ahl__sq_job_get(struct ahl_store_tx *t, const char *ds, const char *id,
                    struct ahl_job_rec *out);
int ahl__sq_job_list(struct ahl_store_tx *t, const char *ds, const char *status,
                     const char *after_id, unsigned limit, ahl_store_job_cb cb, void *ctx);
int ahl__sq_job_claim(struct ahl_store_tx *t, const char *node, uint32_t lease_ms,
                      struct ahl_job_rec *out);
int ahl__sq_job_renew(struct ahl_store_tx *t, const char *id, const char *node, uint32_t lease_ms);
int ahl__sq_job_release(struct ahl_store_tx *t, const struct ahl_job_rec *r, const char *node);
int ahl__sq_job_options_put(struct ahl_store_tx *t, const char *id, const char *options);
int ahl__sq_job_options_get(struct ahl_store_tx *t, const char *id, char **out);

/* sqlite_search.c */
int ahl__sq_search_put(struct ahl_store_tx *t, const struct ahl_search_row *r);
int ahl__sq_search_get(struct ahl_store_tx *t, const char *id, struct ahl_search_row *out);
int ahl__sq_search_delete(struct ahl_store_tx *t, const char *id);
int ahl__sq_search_query(struct ahl_store_tx *t, const char *ds, const struct ahl_search_query *q,
                         ahl_store_search_cb cb, void *ctx);
int ahl__sq_search_plan(struct ahl_store_tx *t, const char *ds, const struct ahl_search_query *q,
                        ahl_store_plan_cb cb, void *ctx);

/* sqlite_schema.c */
int ahl__sq_frame_backfill_next(struct ahl_store_tx *t, char id[AHL_ID_LEN + 1]);
int ahl__sq_frame_backfill_done(struct ahl_store_tx *t, const char *id);

/* sqlite_qido.c */
int ahl__sq_qido_set_get(struct ahl_store_tx *t, const char *set, struct ahl_qido_set *out);
int ahl__sq_qido_set_put(struct ahl_store_tx *t, const struct ahl_qido_set *r);
int ahl__sq_qido_set_delete(struct ahl_store_tx *t, const char *set);
int ahl__sq_qido_series_put(struct ahl_store_tx *t, const struct ahl_qido_series *r);
int ahl__sq_qido_series_delete(struct ahl_store_tx *t, const char *set, const char *series);
int ahl__sq_qido_series_touch(struct ahl_store_tx *t, const char *set, int64_t updated_at_ms);
int ahl__sq_qido_instance_put(struct ahl_store_tx *t, const struct ahl_qido_instance *r);
int ahl__sq_qido_instance_delete(struct ahl_store_tx *t, const char *set, const char *series,
                                 const char *sop);
int ahl__sq_qido_study_refresh(struct ahl_store_tx *t, const char *ds, const char *study,
                               bool attrs_only);
int ahl__sq_qido_query(struct ahl_store_tx *t, const char *ds, const struct ahl_qido_query *q,
                       ahl_store_qido_cb cb, void *ctx);
int ahl__sq_qido_plan(struct ahl_store_tx *t, const char *ds, const struct ahl_qido_query *q,
                      ahl_store_plan_cb cb, void *ctx);
int ahl__sq_qido_backfill_next(struct ahl_store_tx *t, char id[AHL_ID_LEN + 1]);
int ahl__sq_qido_backfill_done(struct ahl_store_tx *t, const char *id);
/* sqlite_events.c */
int ahl__sq_event_put(struct ahl_store_tx *t, const struct ahl_event_rec *r);
int ahl__sq_event_list(struct ahl_store_tx *t, uint64_t after_seq, unsigned limit,
                       ahl_store_event_cb cb, void *ctx);
int ahl__sq_event_delete(struct ahl_store_tx *t, uint64_t upto_seq);
int ahl__sq_event_trim(struct ahl_store_tx *t, uint64_t keep, uint64_t *dropped);
int ahl__sq_event_lease(struct ahl_store_tx *t, const char *node, uint32_t lease_ms);
/* sqlite_search.c: the connection's prepared statement for sql, from its cache of statements
 * built at run time (search and QIDO queries), or prepared and cached; reset, bindings cleared.
 * NULL (logged) when sql does not prepare. */
sqlite3_stmt *ahl__sq_runtime_stmt(struct ahl__sq_conn *c, const char *sql);

#endif /* AHL_STORE_SQLITE_INTERNAL_H */
