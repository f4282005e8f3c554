/* The PostgreSQL backend's import jobs: the job table, put/get/list, and the leases that let
 * several nodes share the jobs (store.h, "Import-job leases").
 *
 * Lease times are the server's clock (clock_timestamp(), in ms since the epoch), so that the
 * nodes' own clocks need not agree. A claim reads its candidate with FOR UPDATE SKIP LOCKED: a
 * row another transaction is claiming is passed over, not waited for. (Write transactions are
 * also serialised by the backend's advisory lock, pg_conn.c; the row lock keeps the claim right
 * on its own.) The partial index job_open holds only the jobs not ended, in claim order, so a
 * claim costs the same however many ended jobs the table keeps.
 */
#include "store/pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/banned.h"

const char *const ahl__pg_jobs_ddl[] = {
    "CREATE TABLE IF NOT EXISTS job(id text PRIMARY KEY, datastore_id text NOT NULL,"
    " name text NOT NULL, status text NOT NULL, role_arn text NOT NULL, input_uri text NOT NULL,"
    " output_uri text NOT NULL, message text NOT NULL, client_token text NOT NULL,"
    " submitted_at bigint NOT NULL, ended_at bigint NOT NULL,"
    " claimed_by text NOT NULL DEFAULT '', lease_until bigint NOT NULL DEFAULT 0,"
    " attempts integer NOT NULL DEFAULT 0, options text NOT NULL DEFAULT '')",
    "CREATE INDEX IF NOT EXISTS job_datastore ON job(datastore_id, submitted_at, id)",
    "CREATE INDEX IF NOT EXISTS job_open ON job(submitted_at, id)"
    " WHERE status IN ('SUBMITTED', 'IN_PROGRESS')",
    NULL,
};

#define J_NCOLS 14
/* The server's clock in ms since the epoch. */
#define PG_NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

static const struct ahl__pg_stmt st_insert = {
    "job_insert", "INSERT INTO job(" J_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,"
                  "$14)"};
static const struct ahl__pg_stmt st_update = {
    "job_update", "UPDATE job SET datastore_id=$2, name=$3, status=$4, role_arn=$5, input_uri=$6,"
                  " output_uri=$7, message=$8, client_token=$9, submitted_at=$10, ended_at=$11,"
                  " claimed_by=$12, lease_until=$13, attempts=$14 WHERE id=$1"};
static const struct ahl__pg_stmt st_get = {"job_get", "SELECT " J_COLS " FROM job WHERE id=$1"};
/* Newest first; the cursor is the (submitted_at, id) of the last row returned. */
static const struct ahl__pg_stmt st_list = {
    "job_list", "SELECT " J_COLS " FROM job WHERE datastore_id=$1 AND ($2::text IS NULL OR"
                " status=$2) AND ($3::text IS NULL OR (submitted_at, id) < (SELECT submitted_at,"
                " id FROM job WHERE id=$3)) ORDER BY submitted_at DESC, id DESC LIMIT $4"};
/* $1 node, $2 lease (ms). The status terms match the partial index job_open. */
static const struct ahl__pg_stmt st_claim = {
    "job_claim",
    "UPDATE job SET status='IN_PROGRESS', claimed_by=$1, lease_until=" PG_NOW_MS " + $2::bigint,"
    " attempts=attempts + 1 WHERE id=(SELECT id FROM job WHERE status IN ('SUBMITTED',"
    " 'IN_PROGRESS') AND (status='SUBMITTED' OR lease_until < " PG_NOW_MS ")"
    " ORDER BY submitted_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING " J_COLS};
static const struct ahl__pg_stmt st_renew = {
    "job_renew", "UPDATE job SET lease_until=" PG_NOW_MS " + $3::bigint WHERE id=$1 AND"
                 " claimed_by=$2 AND status='IN_PROGRESS'"};
/* $2 status, $3 message, $4 ended_at, $5 node. */
static const struct ahl__pg_stmt st_release = {
    "job_release",
    "UPDATE job SET status=$2, message=$3, ended_at=$4, claimed_by='', lease_until=0,"
    " attempts=attempts - CASE WHEN $2='SUBMITTED' THEN 1 ELSE 0 END"
    " WHERE id=$1 AND claimed_by=$5 AND status='IN_PROGRESS'"};

static void j_row(const PGresult *r, int row, struct ahl_job_rec *o)
{
    memset(o, 0, sizeof *o);
    ahl__pg_text(r, row, 0, o->id, sizeof o->id);
    ahl__pg_text(r, row, 1, o->datastore_id, sizeof o->datastore_id);
    ahl__pg_text(r, row, 2, o->name, sizeof o->name);
    ahl__pg_text(r, row, 3, o->status, sizeof o->status);
    ahl__pg_text(r, row, 4, o->role_arn, sizeof o->role_arn);
    ahl__pg_text(r, row, 5, o->input_uri, sizeof o->input_uri);
    ahl__pg_text(r, row, 6, o->output_uri, sizeof o->output_uri);
    ahl__pg_text(r, row, 7, o->message, sizeof o->message);
    ahl__pg_text(r, row, 8, o->client_token, sizeof o->client_token);
    o->submitted_at_ms = ahl__pg_int(r, row, 9);
    o->ended_at_ms = ahl__pg_int(r, row, 10);
    ahl__pg_text(r, row, 11, o->claimed_by, sizeof o->claimed_by);
    o->lease_until_ms = ahl__pg_int(r, row, 12);
    o->attempts = (uint32_t)ahl__pg_int(r, row, 13);
}

/* The rows an UPDATE or INSERT changed. */
static long changed(const PGresult *r)
{
    return strtol(PQcmdTuples((PGresult *)r), NULL, 10);
}

static int job_put(struct ahl_store_tx *tx, const struct ahl_job_rec *j, bool create)
{
    struct ahl__pg_num sub, end, lease, att;
    const char *v[J_NCOLS] = {j->id,
                              j->datastore_id,
                              j->name,
                              j->status,
                              j->role_arn,
                              j->input_uri,
                              j->output_uri,
                              j->message,
                              j->client_token,
                              ahl__pg_i64(&sub, j->submitted_at_ms),
                              ahl__pg_i64(&end, j->ended_at_ms),
                              j->claimed_by,
                              ahl__pg_i64(&lease, j->lease_until_ms),
                              ahl__pg_i64(&att, j->attempts)};
    PGresult *r = NULL;
    int rc = ahl__pg_run(tx, create ? &st_insert : &st_update, J_NCOLS, v, NULL, NULL, false, &r);
    if (rc == 0 && !create && changed(r) != 1)
        rc = AHL_ENOTFOUND;
    PQclear(r);
    return rc;
}

static int job_get(struct ahl_store_tx *tx, const char *ds, const char *id, struct ahl_job_rec *out)
{
    const char *v[1] = {id};
    PGresult *r = NULL;
    int rc = ahl__pg_run(tx, &st_get, 1, v, NULL, NULL, false, &r);
    if (rc == 0 && PQntuples(r) != 1)
        rc = AHL_ENOTFOUND;
    if (rc == 0) {
        j_row(r, 0, out);
        if (ds && strcmp(ds, out->datastore_id) != 0)
            rc = AHL_ENOTFOUND;
    }
    PQclear(r);
    return rc;
}

static int job_list(struct ahl_store_tx *tx, const char *ds, const char *status,
                    const char *after_id, unsigned limit, ahl_store_job_cb cb, void *ctx)
{
    struct ahl__pg_num lim;
    const char *v[4] = {ds, status, after_id && *after_id ? after_id : NULL,
                        ahl__pg_i64(&lim, limit)};
    PGresult *r = NULL;
    int rc = ahl__pg_run(tx, &st_list, 4, v, NULL, NULL, false, &r);
    struct ahl_job_rec rec;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        j_row(r, i, &rec);
        rc = cb(ctx, &rec);
    }
    PQclear(r);
    return rc;
}

static int job_claim(struct ahl_store_tx *tx, const char *node, uint32_t lease_ms,
                     struct ahl_job_rec *out)
{
    struct ahl__pg_num lease;
    const char *v[2] = {node, ahl__pg_i64(&lease, lease_ms)};
    PGresult *r = NULL;
    int rc = ahl__pg_run(tx, &st_claim, 2, v, NULL, NULL, false, &r);
    if (rc == 0 && PQntuples(r) != 1)
        rc = AHL_ENOTFOUND;
    if (rc == 0)
        j_row(r, 0, out);
    PQclear(r);
    return rc;
}

static int job_renew(struct ahl_store_tx *tx, const char *id, const char *node, uint32_t lease_ms)
{
    struct ahl__pg_num lease;
    const char *v[3] = {id, node, ahl__pg_i64(&lease, lease_ms)};
    PGresult *r = NULL;
    int rc = ahl__pg_run(tx, &st_renew, 3, v, NULL, NULL, false, &r);
    if (rc == 0 && changed(r) != 1)
        rc = AHL_ECONFLICT;
    PQclear(r);
    return rc;
}

static int job_release(struct ahl_store_tx *tx, const struct ahl_job_rec *j, const char *node)
{
    struct ahl__pg_num end;
    const char *v[5] = {j->id, j->status, j->message, ahl__pg_i64(&end, j->ended_at_ms), node};
    PGresult *r = NULL;
    int rc = ahl__pg_run(tx, &st_release, 5, v, NULL, NULL, false, &r);
    if (rc == 0 && changed(r) != 1)
        rc = AHL_ECONFLICT;
    PQclear(r);
    return rc;
}

static const struct ahl__pg_stmt st_options_put = {"job_options_put",
                                                   "UPDATE job SET options=$2 WHERE id=$1"};
static const struct ahl__pg_stmt st_options_get = {"job_options_get",
                                                   "SELECT options FROM job WHERE id=$1"};

static int job_options_put(struct ahl_store_tx *tx, const char *id, const char *options)
{
    const char *v[2] = {id, options};
    PGresult *r = NULL;
    int rc = ahl__pg_run(tx, &st_options_put, 2, v, NULL, NULL, false, &r);
    if (rc == 0 && changed(r) != 1)
        rc = AHL_ENOTFOUND;
    PQclear(r);
    return rc;
}

static int job_options_get(struct ahl_store_tx *tx, const char *id, char **out)
{
    const char *v[1] = {id};
    PGresult *r = NULL;
    *out = NULL;
    int rc = ahl__pg_run(tx, &st_options_get, 1, v, NULL, NULL, false, &r);
    if (rc == 0 && PQntuples(r) != 1)
        rc = AHL_ENOTFOUND;
    if (rc == 0 && !(*out = strdup(PQgetvalue(r, 0, 0))))
        rc = AHL_ENOMEM;
    PQclear(r);
    return rc;
}

void ahl__pg_jobs_ops(struct ahl_store_ops *ops)
{
    ops->job_options_put = job_options_put;
    ops->job_options_get = job_options_get;
    ops->job_put = job_put;
    ops->job_get = job_get;
    ops->job_list = job_list;
    ops->job_claim = job_claim;
    ops->job_renew = job_renew;
    ops->job_release = job_release;
}
