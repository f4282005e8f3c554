/* The SQLite backend's event outbox (store.h, "The event outbox"; docs/events.md): the table
 * event_outbox, whose INTEGER PRIMARY KEY AUTOINCREMENT gives every event a sequence number
 * never reused, in the order the single writer wrote them, which is commit order; and the
 * one-row table event_lease naming the node that dispatches. Statements are few and fixed, kept
 * in the connection's cache of statements built at run time (ahl__sq_runtime_stmt). */
#include "store/sqlite_internal.h"

#include <string.h>

#include "base/clock.h"
#include "base/banned.h"

static void ev_row(sqlite3_stmt *st, struct ahl_event_rec *o)
{
    o->seq = (uint64_t)sqlite3_column_int64(st, 0);
    ahl__sq_col_text(st, 1, o->id, sizeof o->id);
    o->time_ms = sqlite3_column_int64(st, 2);
    ahl__sq_col_text(st, 3, o->detail_type, sizeof o->detail_type);
    ahl__sq_col_text(st, 4, o->resource, sizeof o->resource);
    ahl__sq_col_text(st, 5, o->detail, sizeof o->detail);
}

#define RUNTIME(st, t, sql)                                \
    sqlite3_stmt *st = ahl__sq_runtime_stmt(CONN(t), sql); \
    if (!st)                                               \
        return AHL_EIO;

int ahl__sq_event_put(struct ahl_store_tx *t, const struct ahl_event_rec *r)
{
    RUNTIME(st, t,
            "INSERT INTO event_outbox(id, time_ms, detail_type, resource, detail)"
            " VALUES(?1, ?2, ?3, ?4, ?5)");
    ahl__sq_bind_text(st, 1, r->id);
    sqlite3_bind_int64(st, 2, r->time_ms);
    ahl__sq_bind_text(st, 3, r->detail_type);
    ahl__sq_bind_text(st, 4, r->resource);
    ahl__sq_bind_text(st, 5, r->detail);
    return ahl__sq_step_done(CONN(t), st, "event put");
}

int ahl__sq_event_list(struct ahl_store_tx *t, uint64_t after_seq, unsigned limit,
                       ahl_store_event_cb cb, void *ctx)
{
    RUNTIME(st, t,
            "SELECT seq, id, time_ms, detail_type, resource, detail FROM event_outbox"
            " WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    struct ahl_event_rec rec;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)after_seq);
    sqlite3_bind_int64(st, 2, limit);
    FOR_ROWS(CONN(t), st, rec, ev_row, cb, ctx, "event list");
}

int ahl__sq_event_delete(struct ahl_store_tx *t, uint64_t upto_seq)
{
    RUNTIME(st, t, "DELETE FROM event_outbox WHERE seq <= ?1");
    sqlite3_bind_int64(st, 1, (sqlite3_int64)upto_seq);
    return ahl__sq_step_done(CONN(t), st, "event delete");
}

int ahl__sq_event_trim(struct ahl_store_tx *t, uint64_t keep, uint64_t *dropped)
{
    RUNTIME(st, t,
            "DELETE FROM event_outbox WHERE seq <= (SELECT max(seq) FROM event_outbox) - ?1");
    sqlite3_bind_int64(st, 1, (sqlite3_int64)keep);
    int rc = ahl__sq_step_done(CONN(t), st, "event trim");
    if (dropped)
        *dropped = rc == 0 ? (uint64_t)sqlite3_changes(CONN(t)->db) : 0;
    return rc;
}

/* Takes the row when it is free, expired or already node's; SQLite's one writer makes the
 * read-and-write of the upsert atomic. "now" is this machine's clock. */
int ahl__sq_event_lease(struct ahl_store_tx *t, const char *node, uint32_t lease_ms)
{
    RUNTIME(st, t,
            "INSERT INTO event_lease(k, node, until_ms) VALUES(1, ?1, ?2 + ?3)"
            " ON CONFLICT(k) DO UPDATE SET node = excluded.node, until_ms = excluded.until_ms"
            " WHERE event_lease.node = excluded.node OR event_lease.until_ms <= ?2");
    ahl__sq_bind_text(st, 1, node);
    sqlite3_bind_int64(st, 2, ahl_now_ms());
    sqlite3_bind_int64(st, 3, lease_ms);
    int rc = ahl__sq_step_one_change(CONN(t), st, "event lease");
    return rc == AHL_ENOTFOUND ? AHL_ECONFLICT : rc;
}
