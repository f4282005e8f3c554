/* ahilite-bench qido: DICOMweb search (QIDO-RS) over the QIDO-RS index at N instances (target,
 * kept in bench/RESULTS.md: 1,000,000 instances, <= 5 ms p95), against a scan baseline run in the
 * same process. Prints one JSON line.
 *
 *   fill     the index rows of N instances written straight through the store interface
 *            (ahl_store_qido_*_put, then ahl_store_qido_study_refresh per study), in transactions
 *            of 1,000 studies: studies of 4 series of N/(4 * studies) instances each (CT, CT, MR,
 *            and one of CR, US, MR), a patient per two studies, study dates over 2000-2024;
 *            no documents, so a million instances take a minute instead of an import. Its time
 *            is the index build time from rows;
 *   queries  ahl_store_qido_query for typical searches, a page of 100, random values each time:
 *            PatientName wildcard (a name prefix), StudyDate range (the year of a study),
 * ModalitiesInStudy (MR, about half the studies), all studies (the first page), the series of a
 * study, the instances of a series: a read transaction, the query, the rows; scan     the baseline:
 * the same searches on the same database file with the indexes switched off (NOT INDEXED), through
 * a read-only SQLite connection of the benchmark's own and its own SQL (the store offers no scan):
 * a scan of the study rows, LIKE over their modalities, a scan of the series rows, a scan of the
 * instance rows.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "bench.h"

#include "base/clock.h"
#include "store/store.h"
#include "base/banned.h"

#define SERIES_PER_STUDY 4
#define STUDIES_PER_TX 1000
#define PAGE 100

#define ROOT "1.2.826.0.1.3680043.9.7"

static void study_uid(uint64_t s, char *out, size_t cap)
{
    snprintf(out, cap, ROOT ".%" PRIu64, s);
}

static void series_uid(uint64_t s, int k, char *out, size_t cap)
{
    snprintf(out, cap, ROOT ".%" PRIu64 ".%d", s, k + 1);
}

/* Study s's patient's family name: NAME<patient>. */
static uint64_t patient_of(uint64_t s)
{
    return ahl__bench_mix(s / 2) % 1000000;
}

static int fill_study(struct ahl_store_tx *tx, const char *ds, uint64_t s, unsigned per_series,
                      int64_t t0)
{
    struct ahl_qido_set set;
    struct ahl_qido_series e;
    struct ahl_qido_instance in;
    uint64_t h = ahl__bench_mix(s);
    int rc;
    memset(&set, 0, sizeof set);
    study_uid(s, set.study_uid, sizeof set.study_uid);
    snprintf(set.patient_name, sizeof set.patient_name, "NAME%" PRIu64 "^GIVEN%u", patient_of(s),
             (unsigned)(h % 50));
    snprintf(set.patient_id, sizeof set.patient_id, "PID%" PRIu64, patient_of(s));
    snprintf(set.patient_birth_date, sizeof set.patient_birth_date, "19%02u0101",
             (unsigned)(h % 100));
    snprintf(set.patient_sex, sizeof set.patient_sex, "%s", h & 1 ? "F" : "M");
    snprintf(set.study_date, sizeof set.study_date, "20%02u%02u%02u", (unsigned)(h % 25),
             (unsigned)(1 + (h >> 8) % 12), (unsigned)(1 + (h >> 16) % 28));
    snprintf(set.study_time, sizeof set.study_time, "%02u%02u00", (unsigned)((h >> 24) % 24),
             (unsigned)((h >> 32) % 60));
    snprintf(set.accession_number, sizeof set.accession_number, "ACC%08" PRIu64, s);
    snprintf(set.referring_physician_name, sizeof set.referring_physician_name, "REF%u^DR",
             (unsigned)(h % 300));
    snprintf(set.study_description, sizeof set.study_description, "STUDY %u", (unsigned)(h % 40));
    snprintf(set.study_id, sizeof set.study_id, "%" PRIu64, s % 100000);
    static const char *const last[] = {"CR", "US", "MR"};
    const char *mods[SERIES_PER_STUDY] = {"CT", "CT", h % 2 ? "MR" : "CT", last[(h >> 4) % 3]};
    /* One primary set per series, as the importer keeps them. */
    for (int k = 0; k < SERIES_PER_STUDY; k++) {
        snprintf(set.imageset_id, sizeof set.imageset_id, "%016" PRIx64 "%016" PRIx64,
                 ahl__bench_mix(s * 8 + (uint64_t)k), ahl__bench_mix(s));
        memcpy(set.datastore_id, ds, AHL_ID_LEN + 1);
        set.updated_at_ms = t0 + (int64_t)(h % 100000000);
        if ((rc = ahl_store_qido_set_put(tx, &set)) < 0)
            return rc;
        memset(&e, 0, sizeof e);
        memcpy(e.imageset_id, set.imageset_id, sizeof e.imageset_id);
        memcpy(e.datastore_id, ds, AHL_ID_LEN + 1);
        memcpy(e.study_uid, set.study_uid, sizeof e.study_uid);
        series_uid(s, k, e.series_uid, sizeof e.series_uid);
        e.updated_at_ms = set.updated_at_ms;
        snprintf(e.modality, sizeof e.modality, "%s", mods[k]);
        e.has_series_number = true;
        e.series_number = k + 1;
        snprintf(e.series_description, sizeof e.series_description, "SERIES %d", k + 1);
        snprintf(e.series_date, sizeof e.series_date, "%s", set.study_date);
        e.number_of_instances = per_series;
        if ((rc = ahl_store_qido_series_put(tx, &e)) < 0)
            return rc;
        for (unsigned i = 0; i < per_series; i++) {
            memset(&in, 0, sizeof in);
            memcpy(in.imageset_id, set.imageset_id, sizeof in.imageset_id);
            memcpy(in.series_uid, e.series_uid, sizeof in.series_uid);
            snprintf(in.sop_uid, sizeof in.sop_uid, ROOT ".%" PRIu64 ".%d.%u", s, k + 1,
                     (i + 1) % 1000000);
            snprintf(in.sop_class_uid, sizeof in.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
            in.has_instance_number = true;
            in.instance_number = (int32_t)i + 1;
            in.rows = in.columns = 512;
            in.number_of_frames = 1;
            if ((rc = ahl_store_qido_instance_put(tx, &in)) < 0)
                return rc;
        }
    }
    return ahl_store_qido_study_refresh(tx, ds, set.study_uid, false);
}

static int fill(struct ahl_store *s, const char *ds, uint64_t studies, unsigned per_series,
                double *secs)
{
    int64_t t0 = ahl_now_ms() - 200000000;
    uint64_t a = ahl_mono_ns();
    for (uint64_t first = 0; first < studies; first += STUDIES_PER_TX) {
        struct ahl_store_tx *tx;
        int rc = ahl_store_begin(s, true, &tx);
        for (uint64_t k = first; rc == 0 && k < first + STUDIES_PER_TX && k < studies; k++)
            rc = fill_study(tx, ds, k, per_series, t0);
        if (rc < 0) {
            ahl_store_rollback(tx);
            return rc;
        }
        if ((rc = ahl_store_commit(tx)) < 0)
            return rc;
    }
    *secs = ahl__bench_ms_since(a) / 1e3;
    return 0;
}

/* ---- the searches ---- */

enum { Q_NAME, Q_DATE, Q_MODALITY, Q_ALL, Q_SERIES, Q_INSTANCES, NQ };
static const char *const qnames[NQ] = {"patient_name_wildcard", "study_date_range",
                                       "modalities_in_study",   "all_studies",
                                       "series_of_study",       "instances_of_series"};

/* The values of search kind q, number k: text in v1 (and v2 for a range). */
static void values(int q, uint64_t k, uint64_t studies, char *v1, char *v2, size_t cap)
{
    uint64_t s = ahl__bench_mix(k + 4242) % studies;
    v2[0] = '\0';
    switch (q) {
    case Q_NAME:
        snprintf(v1, cap, "name%" PRIu64 "^*", patient_of(s)); /* lower case: PN ignores it */
        break;
    case Q_DATE: /* the year of study s */
        snprintf(v1, cap, "20%02u0101", (unsigned)(ahl__bench_mix(s) % 25));
        snprintf(v2, cap, "20%02u1231", (unsigned)(ahl__bench_mix(s) % 25));
        break;
    case Q_MODALITY:
        snprintf(v1, cap, "MR");
        break;
    case Q_SERIES:
        study_uid(s, v1, cap);
        break;
    case Q_INSTANCES:
        study_uid(s, v1, cap);
        series_uid(s, (int)(k % SERIES_PER_STUDY), v2, cap);
        break;
    default:
        v1[0] = '\0';
    }
}

static int count(void *ctx, const struct ahl_qido_row *row)
{
    (void)row;
    (*(unsigned *)ctx)++;
    return 0;
}

static void query_of(int q, const char *v1, const char *v2, struct ahl_qido_query *out)
{
    memset(out, 0, sizeof *out);
    out->limit = PAGE;
    out->level = q == Q_SERIES      ? AHL_QIDO_SERIES
                 : q == Q_INSTANCES ? AHL_QIDO_INSTANCE
                                    : AHL_QIDO_STUDY;
    struct ahl_qido_filter *f = out->f;
    switch (q) {
    case Q_NAME:
        f[out->nf++] =
            (struct ahl_qido_filter){.key = AHL_QK_PATIENT_NAME, .match = AHL_QM_WILD, .value = v1};
        break;
    case Q_DATE:
        f[out->nf++] = (struct ahl_qido_filter){
            .key = AHL_QK_STUDY_DATE, .match = AHL_QM_RANGE, .lo = v1, .hi = v2};
        break;
    case Q_MODALITY:
        f[out->nf++] = (struct ahl_qido_filter){.key = AHL_QK_MODALITIES, .value = v1};
        break;
    case Q_SERIES:
        f[out->nf++] = (struct ahl_qido_filter){.key = AHL_QK_STUDY_UID, .value = v1};
        break;
    case Q_INSTANCES:
        f[out->nf++] = (struct ahl_qido_filter){.key = AHL_QK_STUDY_UID, .value = v1};
        f[out->nf++] = (struct ahl_qido_filter){.key = AHL_QK_SERIES_UID, .value = v2};
        break;
    }
}

/* One store search: the rows found, or a negative AHL_E*; with plan, its plan instead. */
static int store_query(struct ahl_store *s, const char *ds, int q, const char *v1, const char *v2,
                       char *plan)
{
    struct ahl_qido_query qq;
    struct ahl_store_tx *tx;
    unsigned got = 0;
    query_of(q, v1, v2, &qq);
    int rc = ahl_store_begin(s, false, &tx);
    if (rc < 0)
        return rc;
    rc = plan ? ahl_store_qido_plan(tx, ds, &qq, ahl__bench_plan_line, plan)
              : ahl_store_qido_query(tx, ds, &qq, count, &got);
    ahl_store_rollback(tx);
    return rc < 0 ? rc : (int)got;
}

/* The baseline's SQL per search: the store's tables and page, every table NOT INDEXED. */
#define STUDY_COLS                                                                          \
    "s.imageset_id, s.study_uid, s.patient_name, s.patient_id, s.study_date, s.study_time," \
    " s.accession_number, s.modalities, s.series_count, s.instance_count"
static const char *const scan_sql[NQ] = {
    [Q_NAME] = "SELECT " STUDY_COLS " FROM qido_study s NOT INDEXED WHERE s.datastore_id=?1 AND"
               " s.pn_norm GLOB upper(?2) ORDER BY s.updated_at DESC, s.study_uid DESC LIMIT 100",
    [Q_DATE] = "SELECT " STUDY_COLS " FROM qido_study s NOT INDEXED WHERE s.datastore_id=?1 AND"
               " s.study_date BETWEEN ?2 AND ?3 ORDER BY s.updated_at DESC, s.study_uid DESC"
               " LIMIT 100",
    [Q_MODALITY] = "SELECT " STUDY_COLS " FROM qido_study s NOT INDEXED WHERE s.datastore_id=?1"
                   " AND ('\\' || s.modalities || '\\') LIKE ('%\\' || ?2 || '\\%')"
                   " ORDER BY s.updated_at DESC, s.study_uid DESC LIMIT 100",
    [Q_ALL] = "SELECT " STUDY_COLS " FROM qido_study s NOT INDEXED WHERE s.datastore_id=?1"
              " ORDER BY s.updated_at DESC, s.study_uid DESC LIMIT 100",
    [Q_SERIES] = "SELECT e.series_uid, e.modality, e.series_number, e.instances FROM qido_series e"
                 " NOT INDEXED WHERE e.datastore_id=?1 AND e.study_uid=?2"
                 " ORDER BY e.updated_at DESC, e.series_uid DESC LIMIT 100",
    [Q_INSTANCES] = "SELECT i.sop_uid, i.sop_class, i.instance_number, i.rows_ FROM qido_instance"
                    " i NOT INDEXED WHERE i.series_id IN (SELECT id FROM qido_series NOT INDEXED"
                    " WHERE datastore_id=?1 AND study_uid=?2 AND series_uid=?3)"
                    " ORDER BY i.instance_number, i.sop_uid LIMIT 100",
};

static int scan_query(sqlite3 *db, const char *ds, int q, const char *v1, const char *v2)
{
    sqlite3_stmt *st;
    int rc, got = 0;
    if (sqlite3_prepare_v2(db, scan_sql[q], -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "ahilite-bench qido: scan %s: %s\n", qnames[q], sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_text(st, 1, ds, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_text(st, 2, v1, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 3)
        sqlite3_bind_text(st, 3, v2, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(st); i++)
            sqlite3_column_text(st, i);
        got++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? got : -1;
}

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: ahilite-bench qido [--instances N] [--studies S] [--queries Q]"
               " [--scans B] [--data-dir DIR]\n"
               "  fills the QIDO-RS index rows of N instances (default 1000000) in S studies"
               " of 4 series\n  (25000) in a scratch directory (removed afterwards), times Q"
               " searches of each kind (500)\n  through the store and B of each through a scan"
               " baseline (3); prints one JSON line.\n");
    return status;
}

int ahl__bench_qido(int argc, char **argv)
{
    long n = 1000000, studies = 25000, queries = 500, scans = 3;
    const char *base = NULL;
    const struct ahl__bench_opt opts[] = {
        {"--instances", &n},
        {"--studies", &studies},
        {"--queries", &queries},
        {"--scans", &scans},
    };
    if (ahl__bench_wants_help(argc, argv, 1))
        return usage(stdout, 0);
    if (ahl__bench_parse(argc, argv, 1, opts, sizeof opts / sizeof *opts, &base) < 0)
        return usage(stderr, 2);
    unsigned per_series = (unsigned)(n / (studies * SERIES_PER_STUDY));
    if (per_series < 1) {
        fprintf(stderr, "ahilite-bench qido: --instances must be at least 4 x --studies\n");
        return 2;
    }

    char dir[1024], db[1200], path[1300];
    if (ahl__bench_scratch_dir(base, "bench-qido", dir, sizeof dir) < 0) {
        perror("ahilite-bench qido: mkdtemp");
        return 1;
    }
    int status = 1;
    struct ahl_store *s = NULL;
    sqlite3 *scan = NULL;
    double *t = calloc((size_t)queries, sizeof *t), *bt = calloc((size_t)scans, sizeof *bt);
    char ds[AHL_ID_LEN + 1], v1[128], v2[128];
    char(*plans)[AHL__BENCH_PLAN_MAX] = calloc(NQ, sizeof *plans);
    double fill_s = 0;
    if (!t || !bt || !plans) {
        fprintf(stderr, "ahilite-bench qido: out of memory\n");
        goto out;
    }
    if (ahl_store_open_sqlite(dir, 0, &s) < 0 || ahl__bench_make_datastore(s, ds) < 0) {
        fprintf(stderr, "ahilite-bench qido: cannot open a store in %s\n", dir);
        goto out;
    }
    if (fill(s, ds, (uint64_t)studies, per_series, &fill_s) < 0) {
        fprintf(stderr, "ahilite-bench qido: filling the index failed\n");
        goto out;
    }
    /* Reopen, as a restarted server would, so that the fill's WAL is checkpointed. */
    ahl_store_close(s);
    if (ahl_store_open_sqlite(dir, 0, &s) < 0) {
        fprintf(stderr, "ahilite-bench qido: cannot reopen the store in %s\n", dir);
        goto out;
    }
    struct stat sb;
    snprintf(db, sizeof db, "%s/%s", dir, AHL_STORE_SQLITE_FILE);
    double db_mb = stat(db, &sb) == 0 ? (double)sb.st_size / 1048576.0 : 0;
    snprintf(path, sizeof path, "%s-wal", db);
    db_mb += stat(path, &sb) == 0 ? (double)sb.st_size / 1048576.0 : 0;
    if (sqlite3_open_v2(db, &scan, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_exec(scan, "PRAGMA cache_size=-65536", NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "ahilite-bench qido: cannot open %s for the scan baseline\n", db);
        goto out;
    }
    printf("{\"instances\":%" PRIu64 ",\"studies\":%ld,\"series\":%ld,\"fill_s\":%.1f,"
           "\"db_mb\":%.0f,\"queries\":%ld",
           (uint64_t)studies * SERIES_PER_STUDY * per_series, studies, studies * SERIES_PER_STUDY,
           fill_s, db_mb, queries);
    for (int q = 0; q < NQ; q++) {
        long rows = 0;
        values(q, 0, (uint64_t)studies, v1, v2, sizeof v1);
        if (store_query(s, ds, q, v1, v2, plans[q]) < 0)
            goto out;
        for (long k = 0; k < queries; k++) {
            values(q, (uint64_t)k, (uint64_t)studies, v1, v2, sizeof v1);
            uint64_t a = ahl_mono_ns();
            int got = store_query(s, ds, q, v1, v2, NULL);
            t[k] = ahl__bench_ms_since(a);
            if (got < 1) {
                fprintf(stderr, "ahilite-bench qido: %s %s %s: %d rows\n", qnames[q], v1, v2, got);
                goto out;
            }
            rows += got;
        }
        for (long k = 0; k < scans; k++) {
            values(q, (uint64_t)k, (uint64_t)studies, v1, v2, sizeof v1);
            uint64_t a = ahl_mono_ns();
            int got = scan_query(scan, ds, q, v1, v2);
            bt[k] = ahl__bench_ms_since(a);
            if (got < 1) {
                fprintf(stderr, "ahilite-bench qido: scan %s: %d rows\n", qnames[q], got);
                goto out;
            }
        }
        double p50 = ahl__bench_pct(t, (size_t)queries, 0.5);
        double p95 = ahl__bench_pct(t, (size_t)queries, 0.95);
        double b50 = ahl__bench_pct(bt, (size_t)scans, 0.5);
        printf(",\"%s\":{\"rows_per_query\":%.1f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,"
               "\"scan_p50_ms\":%.1f,\"scan_over_p50\":%.0f,\"plan\":\"%s\"}",
               qnames[q], (double)rows / (double)queries, p50, p95, b50, b50 / p50, plans[q]);
        fflush(stdout);
    }
    printf("}\n");
    status = 0;
out:
    free(t);
    free(bt);
    free(plans);
    sqlite3_close(scan);
    ahl_store_close(s);
    if (ahl__bench_remove_tree(dir) < 0)
        fprintf(stderr, "ahilite-bench qido: could not remove %s\n", dir);
    return status;
}
