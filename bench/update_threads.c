/* ahilite-bench update-threads: concurrent UpdateImageSetMetadata in one process, without HTTP, to
 * see what the engine and the store's group commit cost per update when several threads write at
 * once.
 *
 * T threads (default 8), each updating Patient.PatientName of its own one-instance primary image
 * set (a study of its own, as an import makes it, so the DICOMweb search index is kept too) as
 * fast as it can (each call passing the version the previous one returned) for S seconds. Prints
 * one JSON line: updates per second, the process's CPU seconds (all threads, including the WAL
 * checkpointer), CPU microseconds per update, SQLite COMMITs and the mean batch size (write
 * transactions per COMMIT, ahl_store_sqlite_stats), WAL frames (database pages) per update, and
 * bytes written per update (wchar of /proc/self/io: WAL frames plus checkpoint copies).
 *
 * usage: ahilite-bench update-threads DATA_DIR [THREADS] [SECONDS] [COMMIT_DELAY_US]
 * (COMMIT_DELAY_US: ahl_store_sqlite_set_commit_delay_us, 0 to compare without; DATA_DIR must not exist
 * yet; the caller removes it). bench/update_threads.sh runs it. DATA_DIR may instead be a
 * PostgreSQL URI (postgresql://...) whose schema holds nothing yet: the updates then go there
 * (the SQLite figures are zero, and the CPU is this process's, not the server's). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#include "base/clock.h"
#include "meta/meta.h"
#include "synth/synth.h"
#include "store/store.h"
#include "base/banned.h"

#define MAX_THREADS 64

struct worker {
    pthread_t th;
    struct ahl_meta *m;
    const char *ds;
    char id[AHL_ID_LEN + 1];
    uint64_t version;
    uint64_t deadline_ns;
    unsigned long done, failed;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    char blob[128];
    while (ahl_mono_ns() < w->deadline_ns) {
        snprintf(blob, sizeof blob, "{\"Patient\":{\"DICOM\":{\"PatientName\":\"B^%llu\"}}}",
                 (unsigned long long)w->version + 1);
        struct ahl_meta_update u = {
            .latest_version = w->version, .updatable = blob, .updatable_len = strlen(blob)};
        struct ahl_meta_update_result res;
        struct ahl_err err;
        if (ahl_meta_update(w->m, w->ds, w->id, &u, &res, &err) < 0) {
            fprintf(stderr, "ahilite-bench update-threads: %s\n", err.msg);
            w->failed++;
            break;
        }
        w->version = res.latest_version;
        w->done++;
    }
    return NULL;
}

static unsigned long long wchar(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    unsigned long long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "wchar: %llu", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static int usage(FILE *f, int status)
{
    fprintf(f,
            "usage: ahilite-bench update-threads DATA_DIR [THREADS] [SECONDS] [COMMIT_DELAY_US]\n"
            "  THREADS (1..%d, default 8) threads each update their own one-instance image"
            " set for\n  SECONDS (default 3) in a new data directory DATA_DIR; prints one"
            " JSON line.\n  COMMIT_DELAY_US: how long a commit waits for announced updates"
            " (default %u; 0: never)\n  DATA_DIR may be a PostgreSQL URI (postgresql://...) of an"
            " empty schema instead\n",
            MAX_THREADS, (unsigned)AHL_STORE_COMMIT_DELAY_US);
    return status;
}

/* Runs the nt workers for secs seconds and prints the JSON line. 0, or 1 when an update failed. */
static int measure(struct ahl_store *store, struct worker *w, long nt, double secs)
{
    struct ahl_store_sqlite_stats s0 = {0}, s1 = {0}; /* zero on another backend */
    ahl_store_sqlite_stats(store, &s0);
    double c0 = ahl__bench_process_cpu_s();
    unsigned long long b0 = wchar();
    uint64_t t0 = ahl_mono_ns();
    for (long i = 0; i < nt; i++) {
        w[i].deadline_ns = t0 + (uint64_t)(secs * 1e9);
        pthread_create(&w[i].th, NULL, run, &w[i]);
    }
    unsigned long done = 0, failed = 0;
    for (long i = 0; i < nt; i++) {
        pthread_join(w[i].th, NULL);
        done += w[i].done;
        failed += w[i].failed;
    }
    double wall = (double)(ahl_mono_ns() - t0) / 1e9;
    double cpu = ahl__bench_process_cpu_s() - c0;
    unsigned long long bytes = wchar() - b0;
    ahl_store_sqlite_stats(store, &s1);
    uint64_t commits = s1.commits - s0.commits, txs = s1.write_txs - s0.write_txs;
    printf("{\"threads\":%ld,\"seconds\":%.2f,\"updates\":%lu,\"failed\":%lu,\"per_s\":%.0f,"
           "\"cpu_s\":%.2f,\"cpu_us_per_update\":%.1f,\"commits\":%llu,\"txs_per_commit\":%.2f,"
           "\"wal_frames_per_update\":%.2f,\"bytes_written_per_update\":%.0f}\n",
           nt, wall, done, failed, (double)done / wall, cpu, done ? cpu * 1e6 / (double)done : 0,
           (unsigned long long)commits, commits ? (double)txs / (double)commits : 0,
           done ? (double)(s1.wal_frames - s0.wal_frames) / (double)done : 0,
           done ? (double)bytes / (double)done : 0);
    return failed ? 1 : 0;
}

int ahl__bench_update_threads(int argc, char **argv)
{
    if (ahl__bench_wants_help(argc, argv, 1))
        return usage(stdout, 0);
    if (argc < 2 || argc > 5)
        return usage(stderr, 2);
    char *end;
    long nt = argc > 2 ? strtol(argv[2], &end, 10) : 8;
    if (argc > 2 && (*argv[2] == '\0' || *end))
        return usage(stderr, 2);
    double secs = argc > 3 ? strtod(argv[3], &end) : 3;
    if (argc > 3 && (*argv[3] == '\0' || *end))
        return usage(stderr, 2);
    long delay = argc > 4 ? strtol(argv[4], &end, 10) : -1;
    if (argc > 4 && (*argv[4] == '\0' || *end || delay < 0 || delay > 60000000))
        return usage(stderr, 2);
    if (nt < 1 || nt > MAX_THREADS || secs <= 0)
        return usage(stderr, 2);
    struct ahl_store *store = NULL;
    struct ahl_meta *m = NULL;
    struct ahl_err err;
    char ds[AHL_ID_LEN + 1];
    static struct worker w[MAX_THREADS];
    int status = 1;
    bool pg = ahl_store_is_postgres(argv[1]);
    if (ahl_store_open(pg ? argv[1] : NULL, argv[1], pg ? (unsigned)nt + 2 : 0, &store) < 0 ||
        ahl_meta_open(store, NULL, &m) < 0 || ahl__bench_make_datastore(store, ds) < 0 ||
        (delay >= 0 && !pg && ahl_store_sqlite_set_commit_delay_us(store, (unsigned)delay) < 0)) {
        fprintf(stderr, "ahilite-bench update-threads: cannot open a store in %s\n", argv[1]);
        goto out;
    }
    for (long i = 0; i < nt; i++) {
        json_t *doc = ahl_synth_doc(1, 1, (uint32_t)(100 + i));
        struct ahl_meta_info info;
        /* Primary, as imports make them: the DICOMweb search index covers them. */
        const struct ahl_meta_create_opts primary = {.is_primary = true};
        int rc = doc ? ahl_meta_imageset_create(m, ds, doc, &primary, &info, &err) : -1;
        json_decref(doc);
        if (rc < 0) {
            fprintf(stderr, "ahilite-bench update-threads: create: %s\n",
                    doc ? err.msg : "out of memory");
            goto out;
        }
        w[i].m = m;
        w[i].ds = ds;
        memcpy(w[i].id, info.set.id, sizeof w[i].id);
        w[i].version = info.set.latest_version;
    }
    status = measure(store, w, nt, secs);
out:
    ahl_meta_close(m);
    ahl_store_close(store);
    return status;
}
