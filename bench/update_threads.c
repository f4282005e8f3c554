/* Benchmark: concurrent UpdateImageSetMetadata in one process, without HTTP, to see what the
 * engine and the store's group commit cost per update when several threads write at once.
 *
 * T threads (default 8), each updating Patient.PatientName of its own one-instance image set as
 * fast as it can (each call passing the version the previous one returned) for S seconds. Prints
 * one JSON line: updates per second, the process's CPU seconds (all threads, including the WAL
 * checkpointer), CPU microseconds per update, SQLite COMMITs and the mean batch size (write
 * transactions per COMMIT, ahl_store_sqlite_stats), and bytes written per update (wchar of
 * /proc/self/io: WAL frames plus checkpoint copies).
 *
 * usage: update_threads DATA_DIR [THREADS] [SECONDS]   (DATA_DIR must not exist yet)
 * Built and run by bench/update_threads.sh. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/clock.h"
#include "meta/meta.h"
#include "meta/synth.h"
#include "store/store.h"

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
            fprintf(stderr, "update_threads: %s\n", err.msg);
            w->failed++;
            break;
        }
        w->version = res.latest_version;
        w->done++;
    }
    return NULL;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
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

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: update_threads DATA_DIR [THREADS] [SECONDS]\n");
        return 2;
    }
    int nt = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 8;
    double secs = argc > 3 ? strtod(argv[3], NULL) : 3;
    if (nt < 1 || nt > MAX_THREADS || secs <= 0) {
        fprintf(stderr, "update_threads: THREADS 1..%d, SECONDS > 0\n", MAX_THREADS);
        return 2;
    }
    struct ahl_store *store;
    struct ahl_meta *m;
    struct ahl_err err;
    if (ahl_store_open_sqlite(argv[1], 0, &store) < 0 || ahl_meta_open(store, NULL, &m) < 0)
        return 1;
    struct ahl_datastore_rec d;
    struct ahl_store_tx *tx;
    memset(&d, 0, sizeof d);
    snprintf(d.id, sizeof d.id, "%032x", 1);
    snprintf(d.name, sizeof d.name, "bench");
    snprintf(d.status, sizeof d.status, "ACTIVE");
    snprintf(d.lossless_storage_format, sizeof d.lossless_storage_format, "HTJ2K");
    d.created_at_ms = d.updated_at_ms = ahl_now_ms();
    if (ahl_store_begin(store, true, &tx) < 0 || ahl_store_datastore_put(tx, &d, true) < 0 ||
        ahl_store_commit(tx) < 0)
        return 1;
    static struct worker w[MAX_THREADS];
    for (int i = 0; i < nt; i++) {
        json_t *doc = ahl_synth_doc(1, 1, (uint32_t)(100 + i));
        struct ahl_meta_info info;
        if (!doc || ahl_meta_imageset_create(m, d.id, doc, NULL, &info, &err) < 0) {
            fprintf(stderr, "update_threads: create: %s\n", err.msg);
            return 1;
        }
        json_decref(doc);
        w[i].m = m;
        w[i].ds = d.id;
        memcpy(w[i].id, info.set.id, sizeof w[i].id);
        w[i].version = info.set.latest_version;
    }
    struct ahl_store_sqlite_stats s0, s1;
    ahl_store_sqlite_stats(store, &s0);
    double c0 = cpu_s();
    unsigned long long b0 = wchar();
    uint64_t t0 = ahl_mono_ns();
    for (int i = 0; i < nt; i++) {
        w[i].deadline_ns = t0 + (uint64_t)(secs * 1e9);
        pthread_create(&w[i].th, NULL, run, &w[i]);
    }
    unsigned long done = 0, failed = 0;
    for (int i = 0; i < nt; i++) {
        pthread_join(w[i].th, NULL);
        done += w[i].done;
        failed += w[i].failed;
    }
    double wall = (double)(ahl_mono_ns() - t0) / 1e9;
    double cpu = cpu_s() - c0;
    unsigned long long bytes = wchar() - b0;
    ahl_store_sqlite_stats(store, &s1);
    uint64_t commits = s1.commits - s0.commits, txs = s1.write_txs - s0.write_txs;
    printf("{\"threads\":%d,\"seconds\":%.2f,\"updates\":%lu,\"failed\":%lu,\"per_s\":%.0f,"
           "\"cpu_s\":%.2f,\"cpu_us_per_update\":%.1f,\"commits\":%llu,\"txs_per_commit\":%.2f,"
           "\"bytes_written_per_update\":%.0f}\n",
           nt, wall, done, failed, (double)done / wall, cpu, done ? cpu * 1e6 / (double)done : 0,
           (unsigned long long)commits, commits ? (double)txs / (double)commits : 0,
           done ? (double)bytes / (double)done : 0);
    ahl_meta_close(m);
    ahl_store_close(store);
    return failed ? 1 : 0;
}
