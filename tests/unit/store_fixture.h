/* The store of a unit test: SQLite in a scratch directory, or, when the environment names a
 * PostgreSQL database (AHL_TEST_DATABASE, a libpq URI; CTest sets it for the unit_pg_* runs of
 * these tests, on the cluster tests/pg/cluster.sh starts), a schema of that database of the
 * directory's own. The schema is made on the directory's first open and its name kept in the
 * directory (file "pgschema"), so that reopening the directory reopens the same data, as it does
 * with SQLite, and every new directory starts empty.
 *
 * A test of what only SQLite does defines AHL_TEST_SQLITE_ONLY before including this header: it
 * then always opens SQLite, and CMake does not run it against PostgreSQL. A case of such a kind
 * inside a test that otherwise runs on both skips itself on PostgreSQL (ahl_test_store_is_pg). */
#ifndef AHL_TESTS_STORE_FIXTURE_H
#define AHL_TESTS_STORE_FIXTURE_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "base/err.h"
#include "store/store.h"

/* True when the tests run against PostgreSQL. */
static __attribute__((unused)) bool ahl_test_store_is_pg(void)
{
#ifdef AHL_TEST_SQLITE_ONLY
    return false;
#else
    const char *db = getenv("AHL_TEST_DATABASE");
    return db && *db;
#endif
}

/* Makes schema name on database db: 0, or -1 (printed). */
static __attribute__((unused)) int ahl_test_pg_schema(const char *db, const char *name)
{
    char sql[128];
    PGconn *c = PQconnectdb(db);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        snprintf(sql, sizeof sql, "CREATE SCHEMA %s", name);
        PGresult *r = PQexec(c, sql);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc < 0)
            fprintf(stderr, "store fixture: %s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "store fixture: cannot connect to AHL_TEST_DATABASE: %s",
                PQerrorMessage(c));
    }
    PQfinish(c);
    return rc;
}

/* The URI of schema on database db: its tables first in the search path, and the schema's name
 * as the connections' application_name (a test can find its store's connections by it). */
static __attribute__((unused)) void ahl_test_store_uri(const char *db, const char *schema,
                                                       char *out, size_t cap)
{
    snprintf(out, cap, "%s%soptions=-csearch_path%%3D%s&application_name=%s", db,
             strchr(db, '?') ? "&" : "?", schema, schema);
}

/* The schema of dir's store ("" when it has none yet). */
static __attribute__((unused)) void ahl_test_store_schema(const char *dir, char *out, size_t cap)
{
    char mark[512];
    snprintf(mark, sizeof mark, "%s/pgschema", dir);
    out[0] = '\0';
    FILE *f = fopen(mark, "r");
    if (f) {
        if (!fgets(out, (int)cap, f))
            out[0] = '\0';
        out[strcspn(out, "\n")] = '\0';
        fclose(f);
    }
}

/* Opens the test store of dir (made if missing). max_conns as ahl_store_open_sqlite's
 * max_readers; on PostgreSQL the pool holds one more, the writer's. */
static __attribute__((unused)) int ahl_test_store_open(const char *dir, unsigned max_conns,
                                                       struct ahl_store **out)
{
    if (!ahl_test_store_is_pg())
        return ahl_store_open_sqlite(dir, max_conns, out);
    const char *db = getenv("AHL_TEST_DATABASE");
    char mark[512], schema[64] = "", uri[2048];
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return AHL_EIO;
    snprintf(mark, sizeof mark, "%s/pgschema", dir);
    ahl_test_store_schema(dir, schema, sizeof schema);
    if (!schema[0]) {
        static unsigned seq;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(schema, sizeof schema, "t%ld_%ld_%u", (long)getpid(), (long)ts.tv_nsec,
                 __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
        FILE *f;
        if (ahl_test_pg_schema(db, schema) < 0 || !(f = fopen(mark, "w")))
            return AHL_EIO;
        fprintf(f, "%s\n", schema);
        fclose(f);
    }
    ahl_test_store_uri(db, schema, uri, sizeof uri);
    return ahl_store_open_postgres(uri, max_conns ? max_conns + 1 : 0, out);
}

/* Runs sql (several statements may be given) in the PostgreSQL schema of the test store of dir,
 * e.g. ANALYZE, so that plans are the planner's choice on data with statistics, or a look at the
 * rows behind the backend's back. If out is not NULL, it receives the first column of the first
 * row of the last statement's result (cap bytes, "" when none). 0, or -1 (printed). */
static __attribute__((unused)) int ahl_test_pg_exec(const char *dir, const char *sql, char *out,
                                                    size_t cap)
{
    char mark[512], schema[64] = "", conninfo[2048];
    snprintf(mark, sizeof mark, "%s/pgschema", dir);
    FILE *f = fopen(mark, "r");
    if (!f || !fgets(schema, sizeof schema, f)) {
        if (f)
            fclose(f);
        fprintf(stderr, "store fixture: %s has no PostgreSQL schema\n", dir);
        return -1;
    }
    fclose(f);
    schema[strcspn(schema, "\n")] = '\0';
    const char *db = getenv("AHL_TEST_DATABASE");
    snprintf(conninfo, sizeof conninfo, "%s%soptions=-csearch_path%%3D%s", db ? db : "",
             db && strchr(db, '?') ? "&" : "?", schema);
    PGconn *c = PQconnectdb(conninfo);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
        if (rc < 0)
            fprintf(stderr, "store fixture: %s: %s", sql, PQresultErrorMessage(r));
        if (out && cap) {
            const char *v = rc == 0 && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
            snprintf(out, cap, "%s", v);
        }
        PQclear(r);
    } else {
        fprintf(stderr, "store fixture: cannot connect to AHL_TEST_DATABASE: %s",
                PQerrorMessage(c));
    }
    PQfinish(c);
    return rc;
}

#endif /* AHL_TESTS_STORE_FIXTURE_H */
