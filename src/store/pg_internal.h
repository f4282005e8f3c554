/* Internals of the PostgreSQL backend shared by its files (not a public header: src/store only).
 *
 * pg_conn.c    opening, the pool of connections, transactions (writers serialised across every
 *              node by a transaction-level advisory lock, so that a write transaction is
 *              exclusive exactly as store.h promises), running statements, error mapping, the
 *              ops table, closing;
 * pg_schema.c  the schema and its migrations, run under a session advisory lock so that nodes
 *              starting at once migrate once;
 * pg_rows.c    data stores, tags, image sets, versions, chunks, the frame index;
 * pg_search.c  search index rows and search queries;
 * pg_qido.c    the QIDO-RS index and its queries;
 * pg_jobs.c    import jobs;
 * pg_events.c  the event outbox and the dispatcher's lease.
 *
 * Each file but pg_conn.c fills its part of the ops table (ahl__pg_*_ops) and gives its tables'
 * DDL (ahl__pg_*_ddl), which pg_schema.c runs in order. Statements are named: a struct
 * ahl__pg_stmt is prepared on a connection the first time it runs there, and the connection
 * remembers it, so each file keeps its SQL beside the code that binds it. Parameters and results
 * are text unless a format says binary (chunk bytes are bytea, sent and read as binary).
 */
#ifndef AHL_STORE_PG_INTERNAL_H
#define AHL_STORE_PG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "base/err.h"
#include "store/store.h"
#include "store/query_internal.h"

/* A named statement. name is unique within the backend (it is the server-side prepared name). */
struct ahl__pg_stmt {
    const char *name;
    const char *sql;
};

/* The connection of a transaction, with the results of statements sent ahead read (ready for a
 * synchronous call). */
PGconn *ahl__pg_conn(struct ahl_store_tx *tx);

/* Runs st with n parameters: vals[i] (NULL is SQL NULL), lens[i] and fmts[i] (1: binary, then
 * lens[i] is its length; lens and fmts may be NULL for all-text). result_binary asks for binary
 * results. On success *out (may be NULL when the caller wants no result) receives the result, to
 * PQclear. Returns 0, or the store error of the failure (ahl__pg_result_rc), logged with the
 * statement's name. */
int ahl__pg_run(struct ahl_store_tx *tx, const struct ahl__pg_stmt *st, int n,
                const char *const *vals, const int *lens, const int *fmts, bool result_binary,
                PGresult **out);
/* Sends st like ahl__pg_run but does not wait for its result (libpq's pipeline mode): for writes
 * whose result the caller does not need (no rows, no count), several in a row sharing one round
 * trip. Their results are read before the transaction's next statement, COMMIT or ROLLBACK; a
 * failure among them is returned by that next call (and fails the transaction, as any failed
 * statement does). 0, or the failure to send. */
int ahl__pg_send(struct ahl_store_tx *tx, const struct ahl__pg_stmt *st, int n,
                 const char *const *vals, const int *lens, const int *fmts);
/* A version row read together with its image set's row (pg_rows.c reads a set's latest version
 * with it, in the same query), kept until the transaction's next statement: a version_get for it
 * that follows at once is answered from it, as the same query at the same point of the
 * transaction would be. ahl__pg_keep_version keeps v (NULL: none); ahl__pg_kept_version returns
 * it while no statement ran since, else NULL. */
void ahl__pg_keep_version(struct ahl_store_tx *tx, const struct ahl_version_rec *v);
const struct ahl_version_rec *ahl__pg_kept_version(struct ahl_store_tx *tx);
/* The same for SQL built at run time (search and QIDO query shapes): not prepared unless cache is
 * true, in which case the connection keeps it prepared, keyed by its text, among its last few. */
int ahl__pg_run_sql(struct ahl_store_tx *tx, const char *sql, bool cache, int n,
                    const char *const *vals, const int *lens, const int *fmts, bool result_binary,
                    PGresult **out);
/* The store error of a result: 0 for a command or tuples result; AHL_ECONFLICT for a unique
 * violation (23505); AHL_ENOSPC for disk full (53100); AHL_EIO otherwise (and for NULL). */
int ahl__pg_result_rc(const PGresult *r);

/* Reading columns of a text result. */
void ahl__pg_text(const PGresult *r, int row, int col, char *out, size_t cap); /* "" for NULL */
int64_t ahl__pg_int(const PGresult *r, int row, int col);                      /* 0 for NULL */
bool ahl__pg_bool(const PGresult *r, int row, int col); /* 't' or a non-zero number */

/* Writing parameters as text: a small buffer per number. */
struct ahl__pg_num {
    char s[24];
};
const char *ahl__pg_i64(struct ahl__pg_num *n, int64_t v);

/* The backend's parts: each fills its members of the ops table, and lists its DDL (a NULL-ended
 * array of statements, every one idempotent: CREATE ... IF NOT EXISTS). */
void ahl__pg_rows_ops(struct ahl_store_ops *ops);
void ahl__pg_search_ops(struct ahl_store_ops *ops);
void ahl__pg_qido_ops(struct ahl_store_ops *ops);
void ahl__pg_jobs_ops(struct ahl_store_ops *ops);
void ahl__pg_events_ops(struct ahl_store_ops *ops);
extern const char *const ahl__pg_rows_ddl[];
extern const char *const ahl__pg_search_ddl[];
extern const char *const ahl__pg_qido_ddl[];
extern const char *const ahl__pg_jobs_ddl[];
extern const char *const ahl__pg_events_ddl[];

/* Search and QIDO-RS queries (pg_search.c). no_seqscan turns sequential scans off for the rest of
 * the transaction (SET LOCAL), so that every query shape is answered from an index as store.h
 * promises, whatever the planner estimates; run it before each query (a plan the connection
 * keeps prepared was made under it). explain runs EXPLAIN of sql under the same setting and hands
 * each line of the plan to cb. */
int ahl__pg_no_seqscan(struct ahl_store_tx *tx);
int ahl__pg_explain(struct ahl_store_tx *tx, const char *sql, int n, const char *const *vals,
                    ahl_store_plan_cb cb, void *ctx);

/* Creates or migrates the schema (pg_schema.c): under pg_advisory_lock, runs every part's DDL and
 * records the schema version. 0 or AHL_EIO. */
int ahl__pg_schema_migrate(PGconn *c);

#endif /* AHL_STORE_PG_INTERNAL_H */
