/* ahilite bench update (ahilite bench search lives in cmd_bench_search.c): measures what one
 * UpdateImageSetMetadata costs on a synthetic CT set of N instances, against a naive baseline run
 * in the same process, and how fast a version's GetImageSetMetadata body is assembled. Prints one
 * JSON line.
 *
 *   engine  ahl_meta_update of one Patient attribute (PatientName), each a new version;
 *   naive   load the latest whole document (a gzip blob), inflate, parse, change the attribute,
 *           re-serialise, gzip (level 6) and store the whole document as the new version, one
 *           transaction each (what a versioned JSON store without structure sharing does);
 *   read    ahl_meta_metadata_gzip of the latest version into a discarding sink; the figure is
 *           the JSON-equivalent (decompressed) bytes per second.
 * bytes_per_version is the growth of stored chunk bytes (content plus the 32-byte key) per
 * version; each version also writes its version row and rewrites the set's search row (a few
 * hundred bytes of row data, not counted: the database files grow by whole pages and the WAL is
 * recycled, so file sizes do not measure a single version).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <zlib.h>

#include "base/clock.h"
#include "base/codec.h"
#include "cli/cli.h"
#include "json/json.h"
#include "meta/meta.h"
#include "meta/synth.h"
#include "store/store.h"
#include "base/banned.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double ahl__bench_pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    if (!d)
        return;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
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
    if (ahl_store_datastore_put(tx, &d, true) < 0 || ahl_store_commit(tx) < 0)
        return -1;
    memcpy(id, d.id, AHL_ID_LEN + 1);
    return 0;
}

static int discard(void *ctx, const void *p, size_t n)
{
    (void)p;
    *(size_t *)ctx += n;
    return 0;
}

/* The naive baseline's whole-document gzip, stored as one chunk per version. */
static int gzip_whole(const char *p, size_t n, struct ahl_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, n) + 64;
    if (ahl_buf_reserve(out, cap) < 0) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data;
    z.avail_out = (uInt)cap;
    int zr = deflate(&z, Z_FINISH);
    out->len = cap - z.avail_out;
    deflateEnd(&z);
    return zr == Z_STREAM_END ? 0 : -1;
}

static int gunzip_whole(const void *p, size_t n, struct ahl_buf *out)
{
    z_stream z;
    unsigned char tmp[1 << 16];
    int zr;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 31) != Z_OK)
        return -1;
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    do {
        z.next_out = tmp;
        z.avail_out = sizeof tmp;
        zr = inflate(&z, Z_NO_FLUSH);
        if ((zr != Z_OK && zr != Z_STREAM_END) || ahl_buf_add(out, tmp, sizeof tmp - z.avail_out))
            break;
    } while (zr != Z_STREAM_END);
    inflateEnd(&z);
    return zr == Z_STREAM_END ? 0 : -1;
}

/* One naive version: load the previous whole document, change PatientName, store it all. */
static int naive_step(struct ahl_store *s, uint8_t cur[AHL_SHA256_LEN], int k)
{
    struct ahl_store_tx *tx = NULL;
    struct ahl_buf stored, text, gz;
    struct ahl_chunk c;
    json_t *doc = NULL;
    int rc = -1;
    char name[32];
    ahl_buf_init(&stored, AHL_BUF_UNLIMITED);
    ahl_buf_init(&text, AHL_BUF_UNLIMITED);
    ahl_buf_init(&gz, AHL_BUF_UNLIMITED);
    if (ahl_store_begin(s, true, &tx) < 0)
        goto out;
    if (ahl_store_chunk_get(tx, cur, &c, &stored) < 0 || gunzip_whole(c.data, c.len, &text) < 0)
        goto out;
    if (!(doc = json_loadb(text.data, text.len, 0, NULL)))
        goto out;
    snprintf(name, sizeof name, "NAIVE^%d", k);
    json_object_set_new(json_object_get(json_object_get(doc, "Patient"), "DICOM"), "PatientName",
                        json_string(name));
    ahl_buf_reset(&text);
    if (ahl_json_write(doc, &text) < 0 || gzip_whole(text.data, text.len, &gz) < 0)
        goto out;
    memset(&c, 0, sizeof c);
    ahl_sha256(gz.data, gz.len, c.hash);
    c.kind = AHL_CHUNK_ROOT;
    c.ulen = (uint32_t)text.len;
    c.data = gz.data;
    c.len = gz.len;
    if (ahl_store_chunk_put(tx, &c) < 0)
        goto out;
    rc = ahl_store_commit(tx);
    tx = NULL;
    memcpy(cur, c.hash, AHL_SHA256_LEN);
out:
    ahl_store_rollback(tx);
    json_decref(doc);
    ahl_buf_release(&stored);
    ahl_buf_release(&text);
    ahl_buf_release(&gz);
    return rc;
}

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: ahilite bench update --instances N [--updates K] [--naive-updates K]"
                    " [--reads R] [--data-dir DIR]\n"
                    "       ahilite bench search [--sets N] [--queries Q] [--scans S]"
                    " [--data-dir DIR]\n"
                    "  update: builds a synthetic CT set of N instances in a scratch directory"
                    " (removed\n  afterwards) and prints one JSON line of update and read"
                    " figures.\n  search: see ahilite bench search --help.\n");
    return status;
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

int ahl_cmd_bench(int argc, char **argv)
{
    long n = 1000, updates = 500, naive_updates = 0, reads = 20;
    const char *base = NULL;
    if (argc >= 2 && !strcmp(argv[1], "search"))
        return ahl__cmd_bench_search(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
        return usage(stdout, 0);
    const struct ahl__bench_opt opts[] = {
        {"--instances", &n},
        {"--updates", &updates},
        {"--naive-updates", &naive_updates},
        {"--reads", &reads},
    };
    if (argc < 2 || strcmp(argv[1], "update") != 0 ||
        ahl__bench_parse(argc, argv, 2, opts, sizeof opts / sizeof *opts, &base) < 0)
        return usage(stderr, 2);
    if (!naive_updates)
        naive_updates = n >= 10000 ? 10 : n >= 1000 ? 40 : 100;

    char dir[1024], ndir[1100];
    if (base)
        snprintf(dir, sizeof dir, "%s/bench-XXXXXX", base);
    else
        snprintf(dir, sizeof dir, "/tmp/ahilite-bench-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("ahilite bench: mkdtemp");
        return 1;
    }
    snprintf(ndir, sizeof ndir, "%s/naive", dir);
    int status = 1;
    struct ahl_store *s = NULL, *ns = NULL;
    struct ahl_meta *m = NULL;
    struct ahl_err err;
    json_t *doc = NULL;
    double *t = NULL, *nt = NULL, *rt = NULL;
    char ds[AHL_ID_LEN + 1];
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/engine", dir);
    if (ahl_store_open_sqlite(sub, 0, &s) < 0 || ahl_meta_open(s, NULL, &m) < 0 ||
        ahl__bench_make_datastore(s, ds) < 0) {
        fprintf(stderr, "ahilite bench: cannot open a store in %s\n", sub);
        goto out;
    }
    if (!(doc = ahl_synth_doc(1, (unsigned)n, 1)) || !(t = calloc((size_t)updates, sizeof *t)) ||
        !(nt = calloc((size_t)naive_updates, sizeof *nt)) ||
        !(rt = calloc((size_t)reads, sizeof *rt))) {
        fprintf(stderr, "ahilite bench: out of memory\n");
        goto out;
    }
    struct ahl_meta_info info;
    uint64_t t0 = ahl_mono_ns();
    if (ahl_meta_imageset_create(m, ds, doc, NULL, &info, &err) < 0) {
        fprintf(stderr, "ahilite bench: create: %s\n", err.msg);
        goto out;
    }
    double create_ms = (double)(ahl_mono_ns() - t0) / 1e6;
    char id[AHL_ID_LEN + 1];
    memcpy(id, info.set.id, sizeof id);

    /* Engine updates. */
    struct ahl_store_tx *tx;
    uint64_t c0, b0, c1, b1;
    if (ahl_store_begin(s, false, &tx) < 0 || ahl_store_chunk_stats(tx, &c0, &b0) < 0)
        goto out;
    ahl_store_rollback(tx);
    for (long k = 0; k < updates; k++) {
        char blob[128];
        snprintf(blob, sizeof blob,
                 "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":\"BENCH^%ld\"}}}",
                 k);
        struct ahl_meta_update u = {
            .latest_version = (uint64_t)k + 1, .updatable = blob, .updatable_len = strlen(blob)};
        uint64_t a = ahl_mono_ns();
        if (ahl_meta_update(m, ds, id, &u, NULL, &err) < 0) {
            fprintf(stderr, "ahilite bench: update %ld: %s\n", k, err.msg);
            goto out;
        }
        t[k] = (double)(ahl_mono_ns() - a) / 1e6;
    }
    if (ahl_store_begin(s, false, &tx) < 0 || ahl_store_chunk_stats(tx, &c1, &b1) < 0)
        goto out;
    ahl_store_rollback(tx);

    /* Reads of the latest version. */
    size_t json_len = 0, gz_len = 0;
    {
        struct ahl_buf ref;
        ahl_buf_init(&ref, AHL_BUF_UNLIMITED);
        if (ahl_meta_metadata_json(m, ds, id, 0, &ref, &err) < 0) {
            fprintf(stderr, "ahilite bench: read: %s\n", err.msg);
            ahl_buf_release(&ref);
            goto out;
        }
        json_len = ref.len;
        ahl_buf_release(&ref);
    }
    for (long k = 0; k < reads; k++) {
        size_t got = 0;
        uint64_t a = ahl_mono_ns();
        if (ahl_meta_metadata_gzip(m, ds, id, 0, discard, &got, &err) < 0) {
            fprintf(stderr, "ahilite bench: read: %s\n", err.msg);
            goto out;
        }
        rt[k] = (double)(ahl_mono_ns() - a) / 1e6;
        gz_len = got;
    }

    /* Naive baseline, in its own database. */
    uint8_t cur[AHL_SHA256_LEN];
    uint64_t nc0, nb0, nc1, nb1;
    {
        struct ahl_buf text, gz;
        struct ahl_chunk c;
        ahl_buf_init(&text, AHL_BUF_UNLIMITED);
        ahl_buf_init(&gz, AHL_BUF_UNLIMITED);
        int ok = ahl_store_open_sqlite(ndir, 0, &ns) == 0 && ahl_json_write(doc, &text) == 0 &&
                 gzip_whole(text.data, text.len, &gz) == 0;
        if (ok) {
            memset(&c, 0, sizeof c);
            ahl_sha256(gz.data, gz.len, c.hash);
            c.kind = AHL_CHUNK_ROOT;
            c.data = gz.data;
            c.len = gz.len;
            memcpy(cur, c.hash, sizeof cur);
            ok = ahl_store_begin(ns, true, &tx) == 0;
            ok = ok && ahl_store_chunk_put(tx, &c) == 0 && ahl_store_commit(tx) == 0;
        }
        ahl_buf_release(&text);
        ahl_buf_release(&gz);
        if (!ok || ahl_store_begin(ns, false, &tx) < 0) {
            fprintf(stderr, "ahilite bench: naive store failed\n");
            goto out;
        }
        ahl_store_chunk_stats(tx, &nc0, &nb0);
        ahl_store_rollback(tx);
    }
    for (long k = 0; k < naive_updates; k++) {
        uint64_t a = ahl_mono_ns();
        if (naive_step(ns, cur, (int)k) < 0) {
            fprintf(stderr, "ahilite bench: naive update %ld failed\n", k);
            goto out;
        }
        nt[k] = (double)(ahl_mono_ns() - a) / 1e6;
    }
    if (ahl_store_begin(ns, false, &tx) < 0 || ahl_store_chunk_stats(tx, &nc1, &nb1) < 0)
        goto out;
    ahl_store_rollback(tx);

    double med = ahl__bench_pct(t, (size_t)updates, 0.5),
           p99 = ahl__bench_pct(t, (size_t)updates, 0.99);
    double nmed = ahl__bench_pct(nt, (size_t)naive_updates, 0.5);
    double np99 = ahl__bench_pct(nt, (size_t)naive_updates, 0.99);
    double rmed = ahl__bench_pct(rt, (size_t)reads, 0.5);
    printf("{\"instances\":%ld,\"json_bytes\":%zu,\"create_ms\":%.1f,\"updates\":%ld,"
           "\"median_ms\":%.4f,\"p99_ms\":%.4f,\"bytes_per_version\":%.0f,"
           "\"naive\":{\"updates\":%ld,\"median_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"bytes_per_version\":%.0f},\"speedup\":%.0f,"
           "\"read\":{\"gzip_bytes\":%zu,\"median_ms\":%.3f,\"json_gb_per_s\":%.2f}}\n",
           n, json_len, create_ms, updates, med, p99, (double)(b1 - b0) / (double)updates,
           naive_updates, nmed, np99, (double)(nb1 - nb0) / (double)naive_updates, nmed / med,
           gz_len, rmed, (double)json_len / (rmed / 1e3) / 1e9);
    status = 0;
out:
    json_decref(doc);
    free(t);
    free(nt);
    free(rt);
    ahl_meta_close(m);
    ahl_store_close(s);
    ahl_store_close(ns);
    rm_dir(ndir);
    rm_dir(sub);
    rmdir(dir);
    return status;
}
