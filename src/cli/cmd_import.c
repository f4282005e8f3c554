/* ahilite import: imports DICOM files and directories (recursively) into a data store of a data
 * directory, without a server, through the same pipeline as import jobs (src/import/import.h):
 * worker threads prepare files (read, normalize, transcode frames) and commit them in batches,
 * one version per batch of a series. Shows a progress bar on a terminal, plain progress lines
 * otherwise, and ends with a summary: imported, skipped (unchanged re-imports, non-regular files)
 * and failed files with their reasons, and the image sets created. */
#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/codec.h"
#include "base/text.h"
#include "import/import.h"
#include "meta/meta.h"
#include "meta/states.h"
#include "store/store.h"
#include "base/banned.h"

#define IMPORT_MAX_DEPTH 64
#define IMPORT_MAX_FILES 10000000u

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: ahilite import [OPTIONS] PATH...\n\n"
        "Imports DICOM Part-10 files into a data store, as an import job would: instances are\n"
        "grouped into image sets by study and series (primary sets; instances that conflict\n"
        "with a primary set go to non-primary sets), lossless frames are stored as the data\n"
        "store's losslessStorageFormat says (HTJ2K or JPEG 2000 lossless).\n"
        "Directories are read recursively. Re-importing an unchanged instance changes nothing.\n\n"
        "options:\n"
        "  --data-dir DIR          the data directory (default ./ahilite-data)\n"
        "  --database URI          the PostgreSQL database the server keeps its metadata in\n"
        "                          (postgresql://...; default: SQLite in the data directory)\n"
        "  --blob-store s3://BUCKET/PREFIX\n"
        "                          store frames in this bucket of --s3-endpoint, as a\n"
        "                          server given the same options reads them\n"
        "  --s3-endpoint URL       the S3-compatible endpoint of --blob-store (region and\n"
        "                          keys: AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)\n"
        "  --datastore-id ID       import into this data store\n"
        "  --create-datastore NAME create a data store named NAME and import into it\n"
        "                          (without either: the only ACTIVE data store)\n"
        "  --lossless-storage-format FORMAT\n"
        "                          with --create-datastore: HTJ2K (default) or\n"
        "                          JPEG_2000_LOSSLESS, as CreateDatastore takes it\n"
        "  --workers N             files prepared in parallel (default: number of CPUs)\n"
        "  --memory-budget MIB     memory the frames being transcoded at once may take\n"
        "                          together, by their estimate (default 2048: one frame of the\n"
        "                          largest supported cost)\n"
        "  --help                  this text\n\n"
        "Exit status: 0 every file imported or skipped, 1 some file failed, 2 usage.\n");
}

enum file_state { F_PENDING, F_IMPORTED, F_UNCHANGED, F_SKIPPED, F_FAILED };

struct file {
    char *path;
    uint64_t size;
    enum file_state state;
    bool is_primary, created;
    char set[AHL_ID_LEN + 1];
    char *message; /* failure reason or warning */
};

struct run {
    struct file *files;
    size_t n, cap;
    struct ahl_importer *im;
    struct ahl_import_batch *batch;
    atomic_size_t next;
    atomic_size_t done;
    atomic_ullong bytes_done;
    uint64_t bytes_total;
    unsigned long long frames;
    pthread_mutex_t mu;
    bool failed_walk;
};

static int add_file(struct run *r, const char *path, uint64_t size, enum file_state st,
                    const char *why)
{
    if (r->n == IMPORT_MAX_FILES) {
        fprintf(stderr, "ahilite import: more than %u files\n", IMPORT_MAX_FILES);
        return -1;
    }
    if (r->n == r->cap) {
        struct file *v = ahl_array_grow(r->files, &r->cap, sizeof *v, 256);
        if (!v)
            return -1;
        r->files = v;
    }
    struct file *f = &r->files[r->n];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    f->message = why ? strdup(why) : NULL;
    if (!f->path)
        return -1;
    f->size = size;
    f->state = st;
    r->n++;
    r->bytes_total += st == F_PENDING ? size : 0;
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds path: a regular file, or a directory walked recursively in name order. Symbolic links are
 * followed for files; links to directories are not descended into (no cycles). */
static int walk(struct run *r, const char *path, unsigned depth, bool top)
{
    struct stat st;
    if ((top ? stat(path, &st) : lstat(path, &st)) < 0) {
        fprintf(stderr, "ahilite import: %s: %s\n", path, strerror(errno));
        r->failed_walk = true;
        return 0;
    }
    if (S_ISLNK(st.st_mode)) {
        if (stat(path, &st) < 0 || S_ISDIR(st.st_mode))
            return add_file(r, path, 0, F_SKIPPED,
                            S_ISDIR(st.st_mode) ? "symbolic link to a directory"
                                                : "dangling symbolic link");
    }
    if (S_ISREG(st.st_mode))
        return add_file(r, path, (uint64_t)st.st_size, F_PENDING, NULL);
    if (!S_ISDIR(st.st_mode))
        return add_file(r, path, 0, F_SKIPPED, "not a regular file");
    if (depth >= IMPORT_MAX_DEPTH) {
        fprintf(stderr, "ahilite import: %s: deeper than %d directories, not read\n", path,
                IMPORT_MAX_DEPTH);
        r->failed_walk = true;
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "ahilite import: %s: %s\n", path, strerror(errno));
        r->failed_walk = true;
        return 0;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **v = realloc(names, cap * sizeof *v);
            if (!v) {
                rc = -1;
                break;
            }
            names = v;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0)
        qsort(names, n, sizeof *names, name_cmp);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            size_t pl = strlen(path), nl = strlen(names[i]);
            char *child = malloc(pl + nl + 2);
            if (!child) {
                rc = -1;
            } else {
                memcpy(child, path, pl);
                size_t k = pl;
                if (pl && path[pl - 1] != '/')
                    child[k++] = '/';
                memcpy(child + k, names[i], nl + 1);
                rc = walk(r, child, depth + 1, false);
                free(child);
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static void on_done(void *ctx, void *tag, const struct ahl_import_result *res)
{
    struct run *r = ctx;
    struct file *f = &r->files[(size_t)(uintptr_t)tag];
    pthread_mutex_lock(&r->mu);
    if (res->rc == 0) {
        f->state = res->unchanged ? F_UNCHANGED : F_IMPORTED;
        memcpy(f->set, res->imageset_id, sizeof f->set);
        f->is_primary = res->is_primary;
        f->created = res->created;
        r->frames += res->frames;
        if (res->n_warnings || res->invalid_offset_table) {
            size_t n = strlen(res->warning) + sizeof AHL_IMPORT_WARNING_BOT_TYPE +
                       sizeof AHL_IMPORT_WARNING_BOT_MESSAGE + 8;
            if ((f->message = malloc(n)))
                snprintf(f->message, n, "%s%s%s", res->n_warnings ? res->warning : "",
                         res->n_warnings && res->invalid_offset_table ? "; " : "",
                         res->invalid_offset_table ? AHL_IMPORT_WARNING_BOT_TYPE
                             ": " AHL_IMPORT_WARNING_BOT_MESSAGE
                                                   : "");
        }
    } else {
        f->state = F_FAILED;
        size_t n = strlen(res->exception_type) + strlen(res->message) + 3;
        if ((f->message = malloc(n)))
            snprintf(f->message, n, "%s: %s", res->exception_type, res->message);
    }
    pthread_mutex_unlock(&r->mu);
}

static void *worker(void *arg)
{
    struct run *r = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&r->next, 1);
        if (i >= r->n)
            break;
        struct file *f = &r->files[i];
        if (f->state != F_PENDING) {
            atomic_fetch_add(&r->done, 1);
            continue;
        }
        struct ahl_import_item *it;
        struct ahl_import_result res;
        if (ahl_import_prepare_path(r->im, f->path, f->path, &it, &res) < 0)
            on_done(r, (void *)(uintptr_t)i, &res);
        else
            ahl_import_batch_add(r->batch, it, (void *)(uintptr_t)i);
        atomic_fetch_add(&r->bytes_done, f->size);
        atomic_fetch_add(&r->done, 1);
    }
    return NULL;
}

static void fmt_duration(double s, char *out, size_t cap)
{
    long t = s < 0 ? 0 : (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
}

static void progress(struct run *r, bool tty, double elapsed, bool final)
{
    size_t done = atomic_load(&r->done);
    double mb = (double)atomic_load(&r->bytes_done) / 1e6;
    double rate = elapsed > 0 ? mb / elapsed : 0;
    double frac = r->bytes_total ? (double)atomic_load(&r->bytes_done) / (double)r->bytes_total
                                 : (r->n ? (double)done / (double)r->n : 1);
    char eta[32];
    fmt_duration(frac > 0 ? elapsed / frac - elapsed : 0, eta, sizeof eta);
    if (tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %zu/%zu files  %.1f MB/s  ETA %s ", bar, done, r->n, rate, eta);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "import: %zu/%zu files, %.1f MB, %.1f MB/s, ETA %s\n", done, r->n, mb, rate,
                eta);
    }
    fflush(stderr);
}

struct ds_pick {
    unsigned n;
    char id[AHL_ID_LEN + 1];
};

/* Counts ACTIVE data stores and keeps the first id. */
static int on_ds(void *ctx, const struct ahl_datastore_rec *r)
{
    struct ds_pick *f = ctx;
    if (f->n++ == 0)
        memcpy(f->id, r->id, sizeof f->id);
    return 0;
}

static int pick_datastore(struct ahl_store *store, const char *id, const char *create_name,
                          const char *format, char out[AHL_ID_LEN + 1])
{
    struct ahl_store_tx *tx = NULL;
    struct ahl_datastore_rec d;
    int rc;
    if (create_name) {
        memset(&d, 0, sizeof d);
        if (ahl_random_id(d.id) < 0 || ahl_str_copy(d.name, sizeof d.name, create_name) < 0) {
            fprintf(stderr, "ahilite import: bad data store name '%s'\n", create_name);
            return -1;
        }
        ahl_datastore_rec_set_status(&d, AHL_DATASTORE_ACTIVE);
        ahl_str_copy_cut(d.lossless_storage_format, sizeof d.lossless_storage_format,
                         format ? format : "HTJ2K");
        d.created_at_ms = d.updated_at_ms = ahl_now_ms();
        if ((rc = ahl_store_begin(store, true, &tx)) < 0 ||
            (rc = ahl_store_datastore_put(tx, &d, true)) < 0 || (rc = ahl_store_commit(tx)) < 0) {
            if (tx && rc != 0)
                ahl_store_rollback(tx);
            fprintf(stderr, "ahilite import: cannot create the data store: %s\n", ahl_strerror(rc));
            return -1;
        }
        memcpy(out, d.id, AHL_ID_LEN + 1);
        printf("created data store %s (%s)\n", d.id, d.name);
        return 0;
    }
    if (id) {
        if (ahl_str_copy(out, AHL_ID_LEN + 1, id) < 0) {
            fprintf(stderr, "ahilite import: data store %s does not exist\n", id);
            return -1;
        }
        return 0;
    }
    /* Neither option: the only ACTIVE data store, if there is exactly one. */
    struct ds_pick found = {0};
    if ((rc = ahl_store_begin(store, false, &tx)) < 0)
        return -1;
    rc = ahl_store_datastore_list(tx, ahl_datastore_status_name(AHL_DATASTORE_ACTIVE), NULL, 2,
                                  on_ds, &found);
    ahl_store_rollback(tx);
    if (rc < 0 || found.n != 1) {
        fprintf(stderr,
                "ahilite import: %s; name one with --datastore-id ID or make one with "
                "--create-datastore NAME\n",
                found.n ? "there are several data stores" : "there is no data store yet");
        return -1;
    }
    memcpy(out, found.id, AHL_ID_LEN + 1);
    return 0;
}

static int set_cmp(const void *a, const void *b)
{
    const struct file *x = *(const struct file *const *)a, *y = *(const struct file *const *)b;
    return strcmp(x->set, y->set);
}

static void summary(struct run *r, double elapsed)
{
    size_t imported = 0, unchanged = 0, skipped = 0, failed = 0, created = 0;
    struct file **made = calloc(r->n ? r->n : 1, sizeof *made);
    for (size_t i = 0; i < r->n; i++) {
        struct file *f = &r->files[i];
        imported += f->state == F_IMPORTED;
        unchanged += f->state == F_UNCHANGED;
        skipped += f->state == F_SKIPPED;
        failed += f->state == F_FAILED;
        if (made && f->created)
            made[created++] = f;
    }
    if (made) {
        qsort(made, created, sizeof *made, set_cmp);
        for (size_t i = 0; i < created; i++)
            if (i == 0 || strcmp(made[i]->set, made[i - 1]->set))
                printf("created image set %s (%s)\n", made[i]->set,
                       made[i]->is_primary ? "primary" : "non-primary");
    }
    for (size_t i = 0; i < r->n; i++) {
        struct file *f = &r->files[i];
        if ((f->state == F_IMPORTED || f->state == F_UNCHANGED) && f->message)
            printf("warning: %s: %s\n", f->path, f->message);
    }
    double mb = (double)atomic_load(&r->bytes_done) / 1e6;
    printf("imported %zu file%s (%llu frames) in %.2f s (%.1f files/s, %.1f MB/s)\n", imported,
           imported == 1 ? "" : "s", r->frames, elapsed,
           elapsed > 0 ? (double)imported / elapsed : 0, elapsed > 0 ? mb / elapsed : 0);
    if (unchanged + skipped) {
        printf("skipped %zu file%s:\n", unchanged + skipped, unchanged + skipped == 1 ? "" : "s");
        if (unchanged)
            printf("  %zu already imported, unchanged\n", unchanged);
        for (size_t i = 0; i < r->n; i++)
            if (r->files[i].state == F_SKIPPED)
                printf("  %s: %s\n", r->files[i].path,
                       r->files[i].message ? r->files[i].message : "skipped");
    }
    if (failed) {
        printf("failed %zu file%s:\n", failed, failed == 1 ? "" : "s");
        for (size_t i = 0; i < r->n; i++)
            if (r->files[i].state == F_FAILED)
                printf("  %s: %s\n", r->files[i].path,
                       r->files[i].message ? r->files[i].message : "failed");
    }
    free(made);
}

int ahl_cmd_import(int argc, char **argv)
{
    const char *data_dir = "./ahilite-data", *ds_id = NULL, *create_name = NULL, *format = NULL;
    const char *blob_store = NULL, *s3_endpoint = NULL, *database = NULL;
    struct ahl_framestore fs;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned workers = ncpu > 0 ? (unsigned)ncpu : 2;
    uint64_t memory_budget = 0;
    struct ahl_store *store = NULL;
    struct ahl_meta *meta = NULL;
    struct run r;
    struct ahl_err err;
    char ds[AHL_ID_LEN + 1];
    pthread_t *threads = NULL;
    int status = 1, npaths = 0;
    char **paths = calloc((size_t)argc + 1, sizeof *paths);

    memset(&r, 0, sizeof r);
    memset(&fs, 0, sizeof fs);
    pthread_mutex_init(&r.mu, NULL);
    if (!paths)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            status = 0;
            goto out;
        }
        if (!strcmp(a, "--data-dir"))
            dst = &data_dir;
        else if (!strcmp(a, "--database"))
            dst = &database;
        else if (!strcmp(a, "--datastore-id"))
            dst = &ds_id;
        else if (!strcmp(a, "--create-datastore"))
            dst = &create_name;
        else if (!strcmp(a, "--lossless-storage-format"))
            dst = &format;
        else if (!strcmp(a, "--blob-store"))
            dst = &blob_store;
        else if (!strcmp(a, "--s3-endpoint"))
            dst = &s3_endpoint;
        else if (!strcmp(a, "--memory-budget")) {
            char *end;
            unsigned long long mib = i + 1 < argc ? strtoull(argv[++i], &end, 10) : 0;
            if (mib == 0 || mib > (1ull << 24) || *end) {
                fprintf(stderr, "ahilite import: --memory-budget takes a number of MiB from 1 "
                                "to 16777216\n");
                status = 2;
                goto out;
            }
            memory_budget = (uint64_t)mib << 20;
            continue;
        } else if (!strcmp(a, "--workers")) {
            char *end;
            unsigned long w = i + 1 < argc ? strtoul(argv[++i], &end, 10) : 0;
            if (w == 0 || w > 256 || *end) {
                fprintf(stderr, "ahilite import: --workers takes a number from 1 to 256\n");
                status = 2;
                goto out;
            }
            workers = (unsigned)w;
            continue;
        } else if (!strcmp(a, "--")) {
            while (++i < argc)
                paths[npaths++] = argv[i];
            break;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ahilite import: unknown option '%s'\n\n", a);
            usage(stderr);
            status = 2;
            goto out;
        } else {
            paths[npaths++] = argv[i];
            continue;
        }
        if (i + 1 >= argc || !argv[i + 1][0]) {
            fprintf(stderr, "ahilite import: %s needs a value\n", a);
            status = 2;
            goto out;
        }
        *dst = argv[++i];
    }
    if (!npaths) {
        fprintf(stderr, "ahilite import: no PATH given\n\n");
        usage(stderr);
        status = 2;
        goto out;
    }
    if (ds_id && create_name) {
        fprintf(stderr, "ahilite import: give --datastore-id or --create-datastore, not both\n");
        status = 2;
        goto out;
    }
    enum ahl_lossless_format fmt;
    if (format && (!create_name || ahl_lossless_format_parse(format, &fmt, &err) < 0)) {
        fprintf(stderr, "ahilite import: %s\n",
                create_name ? err.msg
                            : "--lossless-storage-format is chosen when the data store is "
                              "created: give it with --create-datastore");
        status = 2;
        goto out;
    }
    if (mkdir(data_dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "ahilite import: cannot create %s: %s\n", data_dir, strerror(errno));
        goto out;
    }
    int rc;
    if ((rc = ahl_store_open(database, data_dir, 0, &store)) < 0) {
        fprintf(stderr, "ahilite import: cannot open the store %s%s: %s\n",
                database ? "on " : "in ", database ? "PostgreSQL" : data_dir, ahl_strerror(rc));
        goto out;
    }
    /* A small chunk cache: an import writes far more than it reads back. */
    struct ahl_meta_opts mo = {.cache_bytes = 32u << 20};
    if ((rc = ahl_meta_open(store, &mo, &meta)) < 0) {
        fprintf(stderr, "ahilite import: cannot open the metadata engine: %s\n", ahl_strerror(rc));
        goto out;
    }
    if (pick_datastore(store, ds_id, create_name, format, ds) < 0)
        goto out;
    if (ahl_framestore_open_dir(&fs, data_dir, blob_store, s3_endpoint, false, &err) < 0) {
        fprintf(stderr, "ahilite import: %s\n", err.msg);
        goto out;
    }
    struct ahl_import_opts o = {
        .frames = &fs, .lock_dir = data_dir, .memory_budget = memory_budget};
    if (ahl_importer_open(meta, ds, &o, &r.im, &err) < 0) {
        fprintf(stderr, "ahilite import: %s\n", err.msg);
        goto out;
    }
    for (int i = 0; i < npaths; i++)
        if (walk(&r, paths[i], 0, true) < 0) {
            fprintf(stderr, "ahilite import: out of memory listing files\n");
            goto out;
        }
    if (ahl_import_batch_new(r.im, on_done, &r, &r.batch) < 0)
        goto out;

    bool tty = isatty(STDERR_FILENO);
    uint64_t t0 = ahl_mono_ns();
#ifdef __GLIBC__
    /* Each frame is transcoded in buffers of a few hundred KiB to a few MiB (its source, its
     * decode, the encoder's lines and output, the level checksums' bands), allocated and freed
     * per frame. With glibc's defaults each such buffer became its own mapping or was returned
     * to the system when freed, so every frame faulted its pages in again: a third of the CPU of
     * a 512x512 import. They now stay in the arenas, and there are at most as many arenas as
     * CPUs, so what the arenas keep grows with the frames being transcoded at once (held by the
     * memory budget), not with --workers (docs/commands.md#ahilite-import). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_ARENA_MAX, ncpu > 0 ? (int)ncpu : 2);
#endif
    if (workers > r.n)
        workers = r.n ? (unsigned)r.n : 1;
    if (!(threads = calloc(workers, sizeof *threads)))
        goto out;
    unsigned started = 0;
    for (; started < workers; started++)
        if (pthread_create(&threads[started], NULL, worker, &r) != 0)
            break;
    if (!started)
        worker(&r);
    uint64_t last = t0;
    while (atomic_load(&r.done) < r.n) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        uint64_t now = ahl_mono_ns();
        if (now - last >= (tty ? 200000000ull : 5000000000ull)) {
            progress(&r, tty, (double)(now - t0) / 1e9, false);
            last = now;
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    ahl_import_batch_flush(r.batch);
    double elapsed = (double)(ahl_mono_ns() - t0) / 1e9;
    if (tty)
        progress(&r, tty, elapsed, true);
    summary(&r, elapsed);
    status = 0;
    for (size_t i = 0; i < r.n; i++)
        if (r.files[i].state == F_FAILED)
            status = 1;
    if (r.failed_walk)
        status = 1;
out:
    ahl_import_batch_free(r.batch);
    ahl_importer_close(r.im);
    ahl_framestore_close(&fs);
    ahl_meta_close(meta);
    ahl_store_close(store);
    for (size_t i = 0; i < r.n; i++) {
        free(r.files[i].path);
        free(r.files[i].message);
    }
    free(r.files);
    free(threads);
    free(paths);
    pthread_mutex_destroy(&r.mu);
    return status;
}
