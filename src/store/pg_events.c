/* The PostgreSQL backend's event outbox (store.h, "The event outbox"; docs/events.md).
 *
 * Sequence numbers come from the bigserial of event_outbox, taken inside the write transaction.
 * A sequence is not in commit order by itself, but write transactions are serialised across
 * every node by the writers' advisory lock (pg_conn.c), held until each commits, so a number
 * taken inside one is larger than every number of the transactions committed before it: list's
 * seq order is commit order. The dispatcher's lease is the one row of event_lease, with times
 * from the server's clock as for job leases (pg_jobs.c), so the nodes' clocks need not agree.
 */
#include "store/pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/banned.h"

#define PG_NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

const char *const ahl__pg_events_ddl[] = {
    "CREATE TABLE IF NOT EXISTS event_outbox(seq bigserial PRIMARY KEY, id text NOT NULL,"
    " time_ms bigint NOT NULL, detail_type text NOT NULL, resource text NOT NULL,"
    " detail text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS event_lease(k integer PRIMARY KEY CHECK (k = 1),"
    " node text NOT NULL, until_ms bigint NOT NULL)",
    NULL,
};

static const struct ahl__pg_stmt st_put = {
    "event_put", "INSERT INTO event_outbox(id, time_ms, detail_type, resource, detail)"
                 " VALUES($1, $2, $3, $4, $5)"};
static const struct ahl__pg_stmt st_list = {
    "event_list", "SELECT seq, id, time_ms, detail_type, resource, detail FROM event_outbox"
                  " WHERE seq > $1 ORDER BY seq LIMIT $2"};
static const struct ahl__pg_stmt st_delete = {"event_delete",
                                              "DELETE FROM event_outbox WHERE seq <= $1"};
static const struct ahl__pg_stmt st_trim = {
    "event_trim", "DELETE FROM event_outbox WHERE seq <= (SELECT max(seq) FROM event_outbox) - $1"};
static const struct ahl__pg_stmt st_lease = {
    "event_lease",
    "INSERT INTO event_lease(k, node, until_ms) VALUES(1, $1, " PG_NOW_MS " + $2::bigint)"
    " ON CONFLICT(k) DO UPDATE SET node = excluded.node, until_ms = excluded.until_ms"
    " WHERE event_lease.node = excluded.node OR event_lease.until_ms <= " PG_NOW_MS};

static long changed(const PGresult *r)
{
    return strtol(PQcmdTuples((PGresult *)r), NULL, 10);
}

static int event_put(struct ahl_store_tx *tx, const struct ahl_event_rec *e)
{
    struct ahl__pg_num t;
    const char *v[5] = {e->id, ahl__pg_i64(&t, e->time_ms), e->detail_type, e->resource, e->detail};
    return ahl__pg_send(tx, &st_put, 5, v, NULL, NULL);
}

static int event_list(struct ahl_store_tx *tx, uint64_t after_seq, unsigned limit,
                      ahl_store_event_cb cb, void *ctx)
{
    struct ahl__pg_num a, l;
    const char *v[2] = {ahl__pg_i64(&a, (int64_t)after_seq), ahl__pg_i64(&l, limit)};
    PGresult *r = NULL;
    int rc = ahl__pg_run(tx, &st_list, 2, v, NULL, NULL, false, &r);
    struct ahl_event_rec rec;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        memset(&rec, 0, sizeof rec);
        rec.seq = (uint64_t)ahl__pg_int(r, i, 0);
        ahl__pg_text(r, i, 1, rec.id, sizeof rec.id);
        rec.time_ms = ahl__pg_int(r, i, 2);
        ahl__pg_text(r, i, 3, rec.detail_type, sizeof rec.detail_type);
        ahl__pg_text(r, i, 4, rec.resource, sizeof rec.resource);
        ahl__pg_text(r, i, 5, rec.detail, sizeof rec.detail);
        rc = cb(ctx, &rec);
    }
    PQclear(r);
    return rc;
}

static int event_delete(struct ahl_store_tx *tx, uint64_t upto_seq)
{
    struct ahl__pg_num u;
    const char *v[1] = {ahl__pg_i64(&u, (int64_t)upto_seq)};
    PGresult *r = NULL;
    int rc = ahl__pg_run(tx, &st_delete, 1, v, NULL, NULL, false, &r);
    PQclear(r);
    return rc;
}

static int event_trim(struct ahl_store_tx *tx, uint64_t keep, uint64_t *dropped)
{
    struct ahl__pg_num k;
    const char *v[1] = {ahl__pg_i64(&k, (int64_t)keep)};
    PGresult *r = NULL;
    int rc = ahl__pg_run(tx, &st_trim, 1, v, NULL, NULL, false, &r);
    if (dropped)
        *dropped = rc == 0 ? (uint64_t)changed(r) : 0;
    PQclear(r);
    return rc;
}

static int event_lease(struct ahl_store_tx *tx, const char *node, uint32_t lease_ms)
{
    struct ahl__pg_num l;
    const char *v[2] = {node, ahl__pg_i64(&l, lease_ms)};
    PGresult *r = NULL;
    int rc = ahl__pg_run(tx, &st_lease, 2, v, NULL, NULL, false, &r);
    if (rc == 0 && changed(r) != 1)
        rc = AHL_ECONFLICT;
    PQclear(r);
    return rc;
}

void ahl__pg_events_ops(struct ahl_store_ops *ops)
{
    ops->event_put = event_put;
    ops->event_list = event_list;
    ops->event_delete = event_delete;
    ops->event_trim = event_trim;
    ops->event_lease = event_lease;
}
