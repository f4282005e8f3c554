/* The PostgreSQL backend's schema: every part's tables (their DDL, CREATE ... IF NOT EXISTS, in
 * the order rows, search, QIDO, jobs, events), created or completed in one transaction, and the schema
 * version this program writes, recorded in table ahl_schema.
 *
 * Nodes starting at once migrate one after another: the migration holds a session advisory lock
 * keyed (AHL_PG_LOCK_SCHEMA, OID of the schema), so the second node finds the tables made. A
 * schema recorded by a newer program is refused (AHL_EUNSUPPORTED), as the SQLite backend refuses
 * a newer user_version. Changing a table in a later version means appending a step that brings
 * the older tables to it and raising PG_SCHEMA_VERSION.
 */
#include "store/pg_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/banned.h"

/* 1: the first schema; 2: the event outbox (pg_events.c), whose tables a database of version 1
 * gets from the same idempotent DDL; 3: storage tiers (step3 below); 4: a job's options (step4);
 * 5: the tombstones' index (pg_rows.c's DDL, run on every upgrade); 6: the frame fence (also
 * pg_rows.c's DDL). */
#define PG_SCHEMA_VERSION 6
#define AHL_PG_LOCK_SCHEMA 0x61686c53 /* "ahlS" */

/* Runs sql on c; logs a failure. */
static int run(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int rc = ahl__pg_result_rc(r);
    if (rc < 0) {
        const char *msg = PQresultErrorMessage(r);
        if (!*msg)
            msg = PQerrorMessage(c);
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            n--;
        ahl_error("postgres: schema: %.60s: %.*s", sql, (int)n, msg);
        rc = rc == AHL_ENOSPC ? rc : AHL_EIO;
    }
    PQclear(r);
    return rc;
}

static int lock_schema(PGconn *c, bool lock)
{
    char sql[192];
    snprintf(sql, sizeof sql,
             "SELECT pg_advisory_%slock(%d, (SELECT oid::int4 FROM pg_namespace"
             " WHERE nspname = current_schema()))",
             lock ? "" : "un", AHL_PG_LOCK_SCHEMA);
    return run(c, sql);
}

/* The version recorded, 0 for none. */
static int stored_version(PGconn *c, int *out)
{
    PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM ahl_schema");
    int rc = ahl__pg_result_rc(r);
    if (rc == 0 && PQntuples(r) == 1)
        *out = (int)ahl__pg_int(r, 0, 0);
    else if (rc == 0)
        rc = AHL_EIO;
    PQclear(r);
    return rc;
}

/* The steps that bring a schema recorded at version N-1 to N, run after the tables' DDL (which
 * makes fresh tables in their newest form, so each step must also hold on those). */
static const char *const step3[] = {
    /* Storage tiers (docs/decisions.md#storage-tier-and-last-access): the search row carries its
     * set's last access; sets written before had none recorded, their last write stands for it. */
    "ALTER TABLE search ADD COLUMN IF NOT EXISTS last_accessed_at bigint NOT NULL DEFAULT 0",
    "UPDATE imageset SET last_accessed_at = GREATEST(created_at, updated_at)"
    " WHERE last_accessed_at = 0",
    "UPDATE search s SET last_accessed_at = i.last_accessed_at FROM imageset i"
    " WHERE i.id = s.imageset_id AND s.last_accessed_at <> i.last_accessed_at",
    NULL,
};

static const char *const step4[] = {
    /* A job's options (store.h, ahl_store_job_options_put): importConfiguration and
     * inputOwnerAccountId as one JSON object, '' for a job started without them. */
    "ALTER TABLE job ADD COLUMN IF NOT EXISTS options text NOT NULL DEFAULT ''",
    NULL,
};

static const char *const *const steps[PG_SCHEMA_VERSION + 1] = {
    [3] = step3,
    [4] = step4,
};

static int run_all(PGconn *c, const char *const *ddl)
{
    int rc = 0;
    for (; *ddl && rc == 0; ddl++)
        rc = run(c, *ddl);
    return rc;
}

int ahl__pg_schema_migrate(PGconn *c)
{
    int have = 0, rc;
    if ((rc = lock_schema(c, true)) < 0)
        return rc;
    if ((rc = run(c, "BEGIN")) < 0)
        goto out;
    if ((rc = run(c, "CREATE TABLE IF NOT EXISTS ahl_schema(version integer NOT NULL)")) < 0 ||
        (rc = stored_version(c, &have)) < 0)
        goto fail;
    if (have > PG_SCHEMA_VERSION) {
        ahl_error("postgres: database schema %d is newer than this program (%d)", have,
                  PG_SCHEMA_VERSION);
        rc = AHL_EUNSUPPORTED;
        goto fail;
    }
    /* A current schema needs nothing: no DDL runs on an ordinary open, so a node starting
     * beside busy ones takes no table lock. A table added later comes with a version step. */
    if (have != PG_SCHEMA_VERSION) {
        char sql[96];
        if ((rc = run_all(c, ahl__pg_rows_ddl)) < 0 ||
            (rc = run_all(c, ahl__pg_search_ddl)) < 0 ||
            (rc = run_all(c, ahl__pg_qido_ddl)) < 0 || (rc = run_all(c, ahl__pg_jobs_ddl)) < 0 ||
            (rc = run_all(c, ahl__pg_events_ddl)) < 0)
            goto fail;
        for (int v = have + 1; v <= PG_SCHEMA_VERSION; v++)
            if (steps[v] && (rc = run_all(c, steps[v])) < 0)
                goto fail;
        snprintf(sql, sizeof sql, "DELETE FROM ahl_schema; INSERT INTO ahl_schema VALUES(%d)",
                 PG_SCHEMA_VERSION);
        if ((rc = run(c, sql)) < 0)
            goto fail;
    }
    rc = run(c, "COMMIT");
    goto out;
fail:
    run(c, "ROLLBACK");
out:
    if (PQstatus(c) == CONNECTION_OK)
        lock_schema(c, false);
    return rc;
}
