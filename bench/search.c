/* ahilite-bench search: SearchImageSets by PatientID among N image sets (target, kept in
 * bench/RESULTS.md: 1,000,000 sets, <= 1 ms median), against a full-scan baseline run in the same
 * process. Prints one JSON line.
 *
 *   fill     N search rows written straight through the store interface in one transaction
 *            (the rows the engine keeps per image set; no documents, so a million sets take
 *            seconds instead of an import), N/5 patients with five sets each, scattered;
 *   store    ahl_store_search_query, PatientID EQUAL, default order (updatedAt DESC), a page of
 *            50: a read transaction, the query and the rows;
 *   handler  the whole SearchImageSets operation in-process (ahl_api_invoke): request decoding
 *            and validation, the data store check, the query, the summaries and the JSON text of
 *            the response; everything but HTTP and SigV4;
 *   scan     the baseline: the same query on the same database file with the index switched
 *            off (NOT INDEXED), a full scan of the search table and a sort, through a read-only
 *            SQLite connection of the benchmark's own and its own SQL (the product's store offers
 *            no table scan); the table and columns are those of src/store's schema.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "bench.h"

#include "api/api.h"
#include "base/clock.h"
#include "meta/meta.h"
#include "store/store.h"
#include "base/banned.h"

#define SETS_PER_PATIENT 5

static void bench_row(const char *ds, uint64_t i, uint64_t npatients, int64_t t0,
                      struct ahl_search_row *r)
{
    memset(r, 0, sizeof *r);
    uint64_t h = ahl__bench_mix(i);
    snprintf(r->imageset_id, sizeof r->imageset_id, "%016" PRIx64 "%016" PRIx64, h,
             ahl__bench_mix(h));
    memcpy(r->datastore_id, ds, AHL_ID_LEN + 1);
    r->is_primary = i % 10 != 0;
    r->version = 1 + i % 3;
    r->created_at_ms = t0 + (int64_t)i;
    r->updated_at_ms = t0 + (int64_t)i + (int64_t)(h % 1000);
    snprintf(r->patient_id, sizeof r->patient_id, "PAT%09" PRIu64,
             ahl__bench_mix(i % npatients) % 1000000000);
    snprintf(r->patient_name, sizeof r->patient_name, "BENCH^%" PRIu64, i % npatients);
    snprintf(r->patient_birth_date, sizeof r->patient_birth_date, "19%02u0101",
             (unsigned)(h % 100));
    snprintf(r->patient_sex, sizeof r->patient_sex, "%s", h & 1 ? "F" : "M");
    snprintf(r->study_instance_uid, sizeof r->study_instance_uid, "1.2.826.0.1.3680043.9.%" PRIu64,
             i);
    snprintf(r->study_id, sizeof r->study_id, "%" PRIu64, i % 10000);
    snprintf(r->study_description, sizeof r->study_description, "CT CHEST");
    snprintf(r->accession_number, sizeof r->accession_number, "ACC%08" PRIu64, i / 2);
    snprintf(r->study_date, sizeof r->study_date, "20%02u%02u%02u", (unsigned)(h % 25),
             (unsigned)(1 + (h >> 8) % 12), (unsigned)(1 + (h >> 16) % 28));
    snprintf(r->study_time, sizeof r->study_time, "%02u%02u00", (unsigned)((h >> 24) % 24),
             (unsigned)((h >> 32) % 60));
    snprintf(r->series_instance_uid, sizeof r->series_instance_uid,
             "1.2.826.0.1.3680043.9.%" PRIu64 ".1", i);
    snprintf(r->modality, sizeof r->modality, "CT");
    r->has_series_number = true;
    r->series_number = 1;
    r->number_of_series = 1;
    r->number_of_instances = 100;
}

static int fill(struct ahl_store *s, const char *ds, uint64_t n, double *secs)
{
    struct ahl_store_tx *tx;
    struct ahl_search_row r;
    uint64_t npatients = n / SETS_PER_PATIENT ? n / SETS_PER_PATIENT : 1;
    int64_t t0 = ahl_now_ms() - (int64_t)n - 1000;
    uint64_t a = ahl_mono_ns();
    int rc = ahl_store_begin(s, true, &tx);
    if (rc < 0)
        return rc;
    for (uint64_t i = 0; i < n; i++) {
        bench_row(ds, i, npatients, t0, &r);
        if ((rc = ahl_store_search_put(tx, &r)) < 0) {
            ahl_store_rollback(tx);
            return rc;
        }
    }
    rc = ahl_store_commit(tx);
    *secs = ahl__bench_ms_since(a) / 1e3;
    return rc;
}

static int count_row(void *ctx, const struct ahl_search_row *row)
{
    (void)row;
    (*(unsigned *)ctx)++;
    return 0;
}

/* One store query for a patient: returns the rows found, or a negative AHL_E*. */
static int store_query(struct ahl_store *s, const char *ds, const char *patient, char *plan)
{
    struct ahl_search_query q;
    struct ahl_store_tx *tx;
    unsigned got = 0;
    memset(&q, 0, sizeof q);
    q.nfilters = 1;
    q.filters[0].attr = AHL_SEARCH_PATIENT_ID;
    q.filters[0].text[0] = patient;
    q.sort = AHL_SEARCH_SORT_UPDATED_AT;
    q.desc = true;
    q.limit = 51;
    int rc = ahl_store_begin(s, false, &tx);
    if (rc < 0)
        return rc;
    rc = plan ? ahl_store_search_plan(tx, ds, &q, ahl__bench_plan_line, plan)
              : ahl_store_search_query(tx, ds, &q, count_row, &got);
    ahl_store_rollback(tx);
    return rc < 0 ? rc : (int)got;
}

/* The baseline's SQL: the store's query for PatientID EQUAL in the default order (its columns,
 * filter, order and page), with NOT INDEXED instead of the patient index. */
#define SCAN_SQL                                                                           \
    "SELECT imageset_id, datastore_id, is_primary, version, created_at, updated_at,"       \
    " patient_id, patient_name, patient_birth_date, patient_sex, study_instance_uid,"      \
    " study_id, study_description, accession_number, study_date, study_time,"              \
    " series_instance_uid, modality, body_part_examined, series_number, number_of_series," \
    " number_of_instances, study_dt FROM search NOT INDEXED WHERE datastore_id=? AND"      \
    " patient_id=? ORDER BY updated_at DESC, imageset_id DESC LIMIT ?"

struct scan {
    sqlite3 *db;
    sqlite3_stmt *st;
};

static void scan_close(struct scan *sc)
{
    sqlite3_finalize(sc->st);
    sqlite3_close(sc->db);
    memset(sc, 0, sizeof *sc);
}

/* Opens the store's database file read-only with the store's page cache (64 MB), so the scan
 * reads the same pages the same way, and prepares the query. The store keeps the file in WAL
 * mode and stays open beside it. 0 or -1. */
static int scan_open(struct scan *sc, const char *path)
{
    memset(sc, 0, sizeof *sc);
    if (sqlite3_open_v2(path, &sc->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_exec(sc->db, "PRAGMA cache_size=-65536", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(sc->db, SCAN_SQL, -1, &sc->st, NULL) != SQLITE_OK) {
        fprintf(stderr, "ahilite-bench search: the scan baseline on %s: %s\n", path,
                sc->db ? sqlite3_errmsg(sc->db) : "out of memory");
        scan_close(sc);
        return -1;
    }
    return 0;
}

/* One full-scan query for a patient: reads every column of the rows found, as the store turns
 * them into search rows. Returns the rows found, or -1. */
static int scan_query(struct scan *sc, const char *ds, const char *patient)
{
    int rc, got = 0;
    sqlite3_reset(sc->st);
    sqlite3_bind_text(sc->st, 1, ds, -1, SQLITE_STATIC);
    sqlite3_bind_text(sc->st, 2, patient, -1, SQLITE_STATIC);
    sqlite3_bind_int(sc->st, 3, 51);
    while ((rc = sqlite3_step(sc->st)) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(sc->st); i++)
            sqlite3_column_text(sc->st, i);
        got++;
    }
    sqlite3_reset(sc->st);
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "ahilite-bench search: scan: %s\n", sqlite3_errmsg(sc->db));
        return -1;
    }
    return got;
}

/* The baseline's query plan, in the store plan's form ("SCAN search; ..."). 0 or -1. */
static int scan_explain(struct scan *sc, char *plan)
{
    sqlite3_stmt *st;
    int rc;
    if (sqlite3_prepare_v2(sc->db, "EXPLAIN QUERY PLAN " SCAN_SQL, -1, &st, NULL) != SQLITE_OK)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ahl__bench_plan_line(plan, (const char *)sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: ahilite-bench search [--sets N] [--queries Q] [--scans S]"
               " [--data-dir DIR]\n"
               "  fills N image sets' search rows (default 1000000) in a scratch directory"
               " (removed\n  afterwards), times Q PatientID searches (2000) through the store"
               " and through the\n  SearchImageSets handler, and S full-scan baseline queries"
               " (5); prints one JSON line.\n");
    return status;
}

int ahl__bench_search(int argc, char **argv)
{
    long n = 1000000, queries = 2000, scans = 5;
    const char *base = NULL;
    const struct ahl__bench_opt opts[] = {
        {"--sets", &n},
        {"--queries", &queries},
        {"--scans", &scans},
    };
    if (ahl__bench_wants_help(argc, argv, 1))
        return usage(stdout, 0);
    if (ahl__bench_parse(argc, argv, 1, opts, sizeof opts / sizeof *opts, &base) < 0)
        return usage(stderr, 2);

    char dir[1024], db[1200], path[1300];
    if (ahl__bench_scratch_dir(base, "bench-search", dir, sizeof dir) < 0) {
        perror("ahilite-bench search: mkdtemp");
        return 1;
    }
    int status = 1;
    struct ahl_store *s = NULL;
    struct ahl_meta *m = NULL;
    struct scan sc = {NULL, NULL};
    double *st = calloc((size_t)queries, sizeof *st), *ht = calloc((size_t)queries, sizeof *ht);
    double *bt = calloc((size_t)scans, sizeof *bt);
    struct ahl_buf out;
    struct ahl_err err;
    char ds[AHL_ID_LEN + 1], plan[AHL__BENCH_PLAN_MAX] = "", scan_plan[AHL__BENCH_PLAN_MAX] = "";
    double fill_s = 0;
    ahl_buf_init(&out, AHL_BUF_UNLIMITED);
    if (!st || !ht || !bt) {
        fprintf(stderr, "ahilite-bench search: out of memory\n");
        goto out;
    }
    if (ahl_store_open_sqlite(dir, 0, &s) < 0 || ahl_meta_open(s, NULL, &m) < 0 ||
        ahl__bench_make_datastore(s, ds) < 0) {
        fprintf(stderr, "ahilite-bench search: cannot open a store in %s\n", dir);
        goto out;
    }
    if (fill(s, ds, (uint64_t)n, &fill_s) < 0) {
        fprintf(stderr, "ahilite-bench search: filling %ld rows failed\n", n);
        goto out;
    }
    /* Reopen, as a restarted server would: closing checkpoints the fill's WAL into the database,
     * so the queries measure the steady state, not reads through a 1 GB WAL with the
     * checkpointer copying it underneath. */
    ahl_meta_close(m);
    ahl_store_close(s);
    m = NULL;
    if (ahl_store_open_sqlite(dir, 0, &s) < 0 || ahl_meta_open(s, NULL, &m) < 0) {
        fprintf(stderr, "ahilite-bench search: cannot reopen the store in %s\n", dir);
        goto out;
    }
    struct stat sb;
    snprintf(db, sizeof db, "%s/%s", dir, AHL_STORE_SQLITE_FILE);
    double db_mb = stat(db, &sb) == 0 ? (double)sb.st_size / 1048576.0 : 0;
    snprintf(path, sizeof path, "%s-wal", db);
    db_mb += stat(path, &sb) == 0 ? (double)sb.st_size / 1048576.0 : 0;
    if (scan_open(&sc, db) < 0)
        goto out;

    uint64_t npatients = (uint64_t)n / SETS_PER_PATIENT ? (uint64_t)n / SETS_PER_PATIENT : 1;
    char patient[32], uri[128], body[256];
    snprintf(uri, sizeof uri, "/datastore/%s/searchImageSets", ds);
    snprintf(patient, sizeof patient, "PAT%09" PRIu64, ahl__bench_mix(0) % 1000000000);
    if (store_query(s, ds, patient, plan) < 0 || scan_explain(&sc, scan_plan) < 0)
        goto out;
    long rows = 0;
    for (long k = 0; k < queries; k++) {
        uint64_t p = ahl__bench_mix((uint64_t)k + 12345) % npatients;
        snprintf(patient, sizeof patient, "PAT%09" PRIu64, ahl__bench_mix(p) % 1000000000);
        uint64_t a = ahl_mono_ns();
        int got = store_query(s, ds, patient, NULL);
        st[k] = ahl__bench_ms_since(a);
        if (got < 1) {
            fprintf(stderr, "ahilite-bench search: %s: %d rows\n", patient, got);
            goto out;
        }
        rows += got;
        /* Another patient for the handler, so it does not find the store query's pages
         * warm. searchCriteria is the operation's HTTP payload: the body is the criteria. */
        p = ahl__bench_mix((uint64_t)k + 999999) % npatients;
        snprintf(patient, sizeof patient, "PAT%09" PRIu64, ahl__bench_mix(p) % 1000000000);
        snprintf(body, sizeof body,
                 "{\"filters\":[{\"values\":[{\"DICOMPatientId\":\"%s\"}],"
                 "\"operator\":\"EQUAL\"}]}",
                 patient);
        out.len = 0;
        a = ahl_mono_ns();
        if (ahl_api_invoke(m, "POST", uri, NULL, body, &out, &err) < 0) {
            fprintf(stderr, "ahilite-bench search: SearchImageSets: %s\n", err.msg);
            goto out;
        }
        ht[k] = ahl__bench_ms_since(a);
        if (ahl_buf_add(&out, "", 1) < 0 || !strstr(out.data, patient)) {
            fprintf(stderr, "ahilite-bench search: the response lacks %s: %.300s\n", patient,
                    out.data);
            goto out;
        }
    }
    for (long k = 0; k < scans; k++) {
        snprintf(patient, sizeof patient, "PAT%09" PRIu64,
                 ahl__bench_mix(ahl__bench_mix((uint64_t)k + 777) % npatients) % 1000000000);
        uint64_t a = ahl_mono_ns();
        int got = scan_query(&sc, ds, patient);
        bt[k] = ahl__bench_ms_since(a);
        if (got < 1) {
            fprintf(stderr, "ahilite-bench search: scan for %s: %d rows\n", patient, got);
            goto out;
        }
    }
    double smed = ahl__bench_pct(st, (size_t)queries, 0.5),
           sp90 = ahl__bench_pct(st, (size_t)queries, 0.9);
    double sp99 = ahl__bench_pct(st, (size_t)queries, 0.99);
    double hmed = ahl__bench_pct(ht, (size_t)queries, 0.5),
           hp90 = ahl__bench_pct(ht, (size_t)queries, 0.9);
    double hp99 = ahl__bench_pct(ht, (size_t)queries, 0.99);
    double bmed = ahl__bench_pct(bt, (size_t)scans, 0.5);
    printf("{\"sets\":%ld,\"patients\":%" PRIu64 ",\"fill_s\":%.1f,\"db_mb\":%.0f,"
           "\"queries\":%ld,\"rows_per_query\":%.2f,"
           "\"store\":{\"median_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f},"
           "\"handler\":{\"median_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f},"
           "\"scan\":{\"queries\":%ld,\"median_ms\":%.1f},"
           "\"scan_over_store\":%.0f,\"scan_over_handler\":%.0f,"
           "\"plan\":\"%s\",\"scan_plan\":\"%s\"}\n",
           n, npatients, fill_s, db_mb, queries, (double)rows / (double)queries, smed, sp90, sp99,
           hmed, hp90, hp99, scans, bmed, bmed / smed, bmed / hmed, plan, scan_plan);
    status = 0;
out:
    ahl_buf_release(&out);
    free(st);
    free(ht);
    free(bt);
    scan_close(&sc);
    ahl_meta_close(m);
    ahl_store_close(s);
    if (ahl__bench_remove_tree(dir) < 0)
        fprintf(stderr, "ahilite-bench search: could not remove %s\n", dir);
    return status;
}
