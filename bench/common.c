/* What the benchmarks share: option parsing, percentiles, timing, scratch directories and the
 * data store every engine benchmark starts from. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#include "base/clock.h"
#include "base/codec.h"
#include "store/store.h"
#include "base/banned.h"

int ahl__bench_wants_help(int argc, char **argv, int first)
{
    for (int i = first; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    return 0;
}

static int parse_count(const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end || v <= 0 || v > 10000000)
        return -1;
    *out = v;
    return 0;
}

int ahl__bench_parse(int argc, char **argv, int first, const struct ahl__bench_opt *opts,
                     size_t nopts, const char **data_dir)
{
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "--data-dir") && i + 1 < argc) {
            *data_dir = argv[++i];
            continue;
        }
        size_t k = 0;
        while (k < nopts && strcmp(argv[i], opts[k].name) != 0)
            k++;
        if (k == nopts || i + 1 >= argc || parse_count(argv[++i], opts[k].value) < 0)
            return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

uint64_t ahl__bench_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int ahl__bench_plan_line(void *ctx, const char *line)
{
    char *p = ctx;
    size_t n = strlen(p);
    snprintf(p + n, AHL__BENCH_PLAN_MAX - n, "%s%s", n ? "; " : "", line);
    return 0;
}

double ahl__bench_pct(double *v, size_t n, double p)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

double ahl__bench_ms_since(uint64_t t0_ns)
{
    return (double)(ahl_mono_ns() - t0_ns) / 1e6;
}

double ahl__bench_process_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

double ahl__bench_thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int ahl__bench_scratch_dir(const char *base, const char *prefix, char *dir, size_t cap)
{
    int n = snprintf(dir, cap, "%s/%s-XXXXXX", base ? base : "/tmp", prefix);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(dir) ? 0 : -1;
}

int ahl__bench_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct stat sb;
    char p[4096];
    int rc = 0;
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        int n = snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof p || lstat(p, &sb) < 0) {
            rc = -1;
            continue;
        }
        if (S_ISDIR(sb.st_mode) ? ahl__bench_remove_tree(p) < 0 : unlink(p) < 0)
            rc = -1;
    }
    closedir(d);
    return rmdir(dir) < 0 ? -1 : rc;
}

int ahl__bench_make_datastore(struct ahl_store *s, char *id)
{
    struct ahl_datastore_rec d;
    struct ahl_store_tx *tx;
    memset(&d, 0, sizeof d);
    if (ahl_random_id(d.id) < 0)
        return -1;
    snprintf(d.name, sizeof d.name, "bench");
    snprintf(d.status, sizeof d.status, "ACTIVE");
    snprintf(d.lossless_storage_format, sizeof d.lossless_storage_format, "HTJ2K");
    d.created_at_ms = d.updated_at_ms = ahl_now_ms();
    if (ahl_store_begin(s, true, &tx) < 0)
        return -1;
    if (ahl_store_datastore_put(tx, &d, true) < 0) {
        ahl_store_rollback(tx);
        return -1;
    }
    if (ahl_store_commit(tx) < 0)
        return -1;
    memcpy(id, d.id, AHL_ID_LEN + 1);
    return 0;
}
