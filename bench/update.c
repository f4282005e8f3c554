/* ahilite-bench update: measures what one UpdateImageSetMetadata costs on a synthetic CT set of
 * N instances, against a naive baseline run in the same process, and how fast a version's
 * GetImageSetMetadata body is assembled. Prints one JSON line.
 *
 *   engine  ahl_meta_update of one Patient attribute (PatientName), each a new version, in a
 *           scratch data directory (engine/), on a primary set (as imports make them), so each
 *           version also brings the set's DICOMweb search rows up to date;
 *   naive   load the latest whole document (a gzip blob), inflate, parse, change the attribute,
 *           re-serialise, gzip (level 6) and store the whole document as the new version, one
 *           transaction each (what a versioned JSON store without structure sharing does), in a
 *           database of its own (naive/naive.db, naive.c);
 *   read    ahl_meta_metadata_gzip of the latest version into a discarding sink; the figure is
 *           the JSON-equivalent (decompressed) bytes per second: the first read (which compresses
 *           the groups of instances, src/meta/gzdoc.c), the median of R warm reads, and the read
 *           after one more update that changes one instance in the middle of the series (which
 *           compresses its group and the next); the body's size against gzip -6 of the same
 *           JSON (zlib, in process).
 * The engine's bytes_per_version is the growth of stored chunk bytes (content plus the 32-byte
 * key) per version; each version also writes its version row and rewrites the set's search row
 * (a few hundred bytes of row data, not counted: the database files grow by whole pages and the
 * WAL is recycled, so file sizes do not measure a single version). The naive one is the growth of
 * its stored gzip blobs per version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "naive.h"

#include <zlib.h>

#include "base/buf.h"
#include "base/clock.h"
#include "meta/meta.h"
#include "synth/synth.h"
#include "store/store.h"
#include "base/banned.h"

static int discard(void *ctx, const void *p, size_t n)
{
    (void)p;
    *(size_t *)ctx += n;
    return 0;
}

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: ahilite-bench update [--instances N] [--updates K] [--naive-updates K]"
               " [--reads R]\n"
               "                            [--outbox 1] [--data-dir DIR]\n"
               "  builds a synthetic CT set of N instances (default 1000) in a scratch directory"
               " (removed\n  afterwards), times K engine updates (500), naive whole-document"
               " updates (100; 40 from\n  1000 instances, 10 from 10000), R reads (20) and K diffs of one"
               " Patient and of one\n  instance attribute changed (ahl_meta_diff);"
               " prints one JSON line.\n  --outbox 1: each update also writes its events to the"
               " outbox (docs/events.md),\n  as a server with an event sink does.\n");
    return status;
}

/* Times the engine's updates; bytes receives the growth of the chunk table per update. */
static int engine_updates(struct ahl_store *s, struct ahl_meta *m, const char *ds, const char *id,
                          long updates, double *t, double *bytes)
{
    struct ahl_store_tx *tx;
    struct ahl_err err;
    uint64_t c0, b0, c1, b1;
    if (ahl_store_begin(s, false, &tx) < 0)
        return -1;
    int rc = ahl_store_chunk_stats(tx, &c0, &b0);
    ahl_store_rollback(tx);
    if (rc < 0)
        return -1;
    for (long k = 0; k < updates; k++) {
        char blob[128];
        snprintf(blob, sizeof blob,
                 "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":\"BENCH^%ld\"}}}",
                 k);
        struct ahl_meta_update u = {
            .latest_version = (uint64_t)k + 1, .updatable = blob, .updatable_len = strlen(blob)};
        uint64_t a = ahl_mono_ns();
        if (ahl_meta_update(m, ds, id, &u, NULL, &err) < 0) {
            fprintf(stderr, "ahilite-bench update: update %ld: %s\n", k, err.msg);
            return -1;
        }
        t[k] = ahl__bench_ms_since(a);
    }
    if (ahl_store_begin(s, false, &tx) < 0)
        return -1;
    rc = ahl_store_chunk_stats(tx, &c1, &b1);
    ahl_store_rollback(tx);
    *bytes = (double)(b1 - b0) / (double)updates;
    return rc;
}

/* The size of text as one gzip member at level 6, as `gzip -6` writes it (0: out of memory). */
static size_t gzip6_len(const struct ahl_buf *text)
{
    z_stream z;
    unsigned char out[65536];
    size_t n = 0;
    int zr;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    z.next_in = (Bytef *)text->data;
    z.avail_in = (uInt)text->len;
    do {
        z.next_out = out;
        z.avail_out = sizeof out;
        zr = deflate(&z, Z_FINISH);
        n += sizeof out - z.avail_out;
    } while (zr == Z_OK);
    deflateEnd(&z);
    return zr == Z_STREAM_END ? n : 0;
}

struct reads {
    size_t json_len, gz_len, gzip6_len;
    double first_ms, after_update_ms;
};

/* One read of the latest version: its time, and its size in *gz_len. */
static int read_once(struct ahl_meta *m, const char *ds, const char *id, double *ms, size_t *gz_len)
{
    struct ahl_err err;
    size_t got = 0;
    uint64_t a = ahl_mono_ns();
    if (ahl_meta_metadata_gzip(m, ds, id, 0, discard, &got, &err) < 0) {
        fprintf(stderr, "ahilite-bench update: read: %s\n", err.msg);
        return -1;
    }
    *ms = ahl__bench_ms_since(a);
    *gz_len = got;
    return 0;
}

/* Times reads of the latest version (version `latest`): the first, `reads` warm ones into t,
 * and one after an update of instance n/2. */
static int reads_of_latest(struct ahl_meta *m, const char *ds, const char *id, uint64_t latest,
                           long n, long reads, double *t, struct reads *out)
{
    struct ahl_err err;
    struct ahl_buf ref;
    ahl_buf_init(&ref, AHL_BUF_UNLIMITED);
    int rc = ahl_meta_metadata_json(m, ds, id, 0, &ref, &err);
    out->json_len = ref.len;
    out->gzip6_len = rc == 0 ? gzip6_len(&ref) : 0;
    ahl_buf_release(&ref);
    if (rc < 0) {
        fprintf(stderr, "ahilite-bench update: read: %s\n", err.msg);
        return -1;
    }
    if (read_once(m, ds, id, &out->first_ms, &out->gz_len) < 0)
        return -1;
    for (long k = 0; k < reads; k++)
        if (read_once(m, ds, id, &t[k], &out->gz_len) < 0)
            return -1;
    char series[64], inst[64], blob[512];
    size_t len;
    ahl_synth_series_uid(1, 0, series);
    ahl_synth_instance_uid(1, 0, (unsigned)(n / 2), inst);
    snprintf(blob, sizeof blob,
             "{\"SchemaVersion\":1.1,\"Study\":{\"Series\":{\"%s\":{\"Instances\":{\"%s\":"
             "{\"DICOM\":{\"ImageComments\":\"BENCH\"}}}}}}}",
             series, inst);
    struct ahl_meta_update u = {
        .latest_version = latest, .updatable = blob, .updatable_len = strlen(blob)};
    if (ahl_meta_update(m, ds, id, &u, NULL, &err) < 0) {
        fprintf(stderr, "ahilite-bench update: instance update: %s\n", err.msg);
        return -1;
    }
    return read_once(m, ds, id, &out->after_update_ms, &len);
}

/* Times the naive baseline's updates of doc in DIR/naive.db; bytes receives the growth of its
 * stored blobs per update. */
static int naive_updates_run(const char *dir, const json_t *doc, long updates, double *t,
                             double *bytes)
{
    struct ahl__naive *n = NULL;
    uint64_t b0, b1;
    int rc = -1;
    if (ahl__naive_open(dir, &n) < 0 || ahl__naive_put(n, doc) < 0 || ahl__naive_bytes(n, &b0) < 0)
        goto out;
    for (long k = 0; k < updates; k++) {
        uint64_t a = ahl_mono_ns();
        if (ahl__naive_step(n, k) < 0) {
            fprintf(stderr, "ahilite-bench update: naive update %ld failed\n", k);
            goto out;
        }
        t[k] = ahl__bench_ms_since(a);
    }
    if (ahl__naive_bytes(n, &b1) < 0)
        goto out;
    *bytes = (double)(b1 - b0) / (double)updates;
    rc = 0;
out:
    ahl__naive_close(n);
    return rc;
}

/* Times the diff of one attribute changed: the Patient's (versions 1 and 2, from the updates
 * timed before) and an instance's (one more update on the set's first instance, then the
 * latest version and the one before), each `runs` times; the medians in pat_ms and inst_ms. */
static int diff_times(struct ahl_meta *m, const char *ds, const char *id, const json_t *doc,
                      long runs, double *t, double *pat_ms, double *inst_ms)
{
    struct ahl_err err;
    const char *suid, *sop;
    json_t *series = json_object_get(json_object_get(doc, "Study"), "Series"), *sv, *iv;
    json_object_foreach(series, suid, sv)
    {
        json_object_foreach(json_object_get(sv, "Instances"), sop, iv)
        {
            goto found;
        }
    }
    return -1;
found:;
    struct ahl_meta_info info;
    if (ahl_meta_imageset_get(m, ds, id, 0, &info, &err) < 0)
        return -1;
    uint64_t latest = info.set.latest_version;
    char blob[1024];
    snprintf(blob, sizeof blob,
             "{\"SchemaVersion\":1.1,\"Study\":{\"Series\":{\"%s\":{\"Instances\":{\"%s\":"
             "{\"DICOM\":{\"ImageComments\":\"BENCH\"}}}}}}}",
             suid, sop);
    struct ahl_meta_update u = {
        .latest_version = latest, .updatable = blob, .updatable_len = strlen(blob)};
    if (ahl_meta_update(m, ds, id, &u, NULL, &err) < 0) {
        fprintf(stderr, "ahilite-bench update: instance update: %s\n", err.msg);
        return -1;
    }
    for (int pass = 0; pass < 2; pass++) {
        uint64_t a = pass ? latest : 1;
        for (long k = 0; k < runs; k++) {
            json_t *d = NULL;
            uint64_t t0 = ahl_mono_ns();
            int rc = ahl_meta_diff(m, ds, id, a, a + 1, &d, &err);
            t[k] = ahl__bench_ms_since(t0);
            /* exactly one level changed: Patient, or Series */
            if (rc < 0 || json_object_size(d) != 5) {
                fprintf(stderr, "ahilite-bench update: diff %llu: %s\n", (unsigned long long)a,
                        rc < 0 ? err.msg : "not one change");
                json_decref(d);
                return -1;
            }
            json_decref(d);
        }
        *(pass ? inst_ms : pat_ms) = ahl__bench_pct(t, (size_t)runs, 0.5);
    }
    return 0;
}

int ahl__bench_update(int argc, char **argv)
{
    long n = 1000, updates = 500, naive_updates = 0, reads = 20, outbox = 0;
    const char *base = NULL;
    if (ahl__bench_wants_help(argc, argv, 1))
        return usage(stdout, 0);
    const struct ahl__bench_opt opts[] = {
        {"--instances", &n},
        {"--updates", &updates},
        {"--naive-updates", &naive_updates},
        {"--reads", &reads},
        {"--outbox", &outbox},
    };
    if (ahl__bench_parse(argc, argv, 1, opts, sizeof opts / sizeof *opts, &base) < 0)
        return usage(stderr, 2);
    if (!naive_updates)
        naive_updates = n >= 10000 ? 10 : n >= 1000 ? 40 : 100;

    char dir[1024], sub[1100], ndir[1100];
    if (ahl__bench_scratch_dir(base, base ? "bench" : "ahilite-bench", dir, sizeof dir) < 0) {
        perror("ahilite-bench update: mkdtemp");
        return 1;
    }
    snprintf(sub, sizeof sub, "%s/engine", dir);
    snprintf(ndir, sizeof ndir, "%s/naive", dir);
    int status = 1;
    struct ahl_store *s = NULL;
    struct ahl_meta *m = NULL;
    struct ahl_err err;
    json_t *doc = NULL;
    double *t = NULL, *nt = NULL, *rt = NULL, *dt = NULL;
    char ds[AHL_ID_LEN + 1];
    /* AHL_BENCH_DATABASE: the engine's store on that database (a PostgreSQL URI) instead. */
    const char *database = getenv("AHL_BENCH_DATABASE");
    if (ahl_store_open(database, sub, 0, &s) < 0 || ahl_meta_open(s, NULL, &m) < 0 ||
        ahl__bench_make_datastore(s, ds) < 0) {
        fprintf(stderr, "ahilite-bench update: cannot open a store in %s\n", sub);
        goto out;
    }
    ahl_store_outbox_enable(s, outbox != 0);
    if (!(doc = ahl_synth_doc(1, (unsigned)n, 1)) || !(t = calloc((size_t)updates, sizeof *t)) ||
        !(dt = calloc((size_t)updates, sizeof *dt)) ||
        !(nt = calloc((size_t)naive_updates, sizeof *nt)) ||
        !(rt = calloc((size_t)reads, sizeof *rt))) {
        fprintf(stderr, "ahilite-bench update: out of memory\n");
        goto out;
    }
    struct ahl_meta_info info;
    uint64_t t0 = ahl_mono_ns();
    /* Primary, as an import makes it: every version then also keeps its QIDO-RS rows. */
    const struct ahl_meta_create_opts primary = {.is_primary = true};
    if (ahl_meta_imageset_create(m, ds, doc, &primary, &info, &err) < 0) {
        fprintf(stderr, "ahilite-bench update: create: %s\n", err.msg);
        goto out;
    }
    double create_ms = ahl__bench_ms_since(t0);
    char id[AHL_ID_LEN + 1];
    memcpy(id, info.set.id, sizeof id);

    double bytes = 0, nbytes = 0, diff_pat = 0, diff_inst = 0;
    struct reads rd = {0};
    if (engine_updates(s, m, ds, id, updates, t, &bytes) < 0 ||
        reads_of_latest(m, ds, id, (uint64_t)updates + 1, n, reads, rt, &rd) < 0 ||
        diff_times(m, ds, id, doc, updates, dt, &diff_pat, &diff_inst) < 0)
        goto out;
    if (mkdir(ndir, 0700) < 0 || naive_updates_run(ndir, doc, naive_updates, nt, &nbytes) < 0) {
        fprintf(stderr, "ahilite-bench update: the naive baseline failed in %s\n", ndir);
        goto out;
    }

    double med = ahl__bench_pct(t, (size_t)updates, 0.5),
           p99 = ahl__bench_pct(t, (size_t)updates, 0.99);
    double nmed = ahl__bench_pct(nt, (size_t)naive_updates, 0.5);
    double np99 = ahl__bench_pct(nt, (size_t)naive_updates, 0.99);
    double rmed = ahl__bench_pct(rt, (size_t)reads, 0.5);
    double gb = (double)rd.json_len / 1e9;
    printf("{\"instances\":%ld,\"outbox\":%s,\"json_bytes\":%zu,\"create_ms\":%.1f,\"updates\":%ld,"
           "\"median_ms\":%.4f,\"p99_ms\":%.4f,\"bytes_per_version\":%.0f,"
           "\"naive\":{\"updates\":%ld,\"median_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"bytes_per_version\":%.0f},\"speedup\":%.0f,"
           "\"read\":{\"gzip_bytes\":%zu,\"median_ms\":%.3f,\"json_gb_per_s\":%.2f,"
           "\"gzip6_bytes\":%zu,\"vs_gzip6\":%.3f,\"first_ms\":%.3f,"
           "\"first_json_gb_per_s\":%.3f,\"after_update_ms\":%.3f,"
           "\"after_update_json_gb_per_s\":%.3f},"
           "\"diff\":{\"patient_attr_median_ms\":%.4f,\"instance_attr_median_ms\":%.4f}}\n",
           n, outbox ? "true" : "false", rd.json_len, create_ms, updates, med, p99, bytes, naive_updates, nmed, np99, nbytes,
           nmed / med, rd.gz_len, rmed, gb / (rmed / 1e3), rd.gzip6_len,
           rd.gzip6_len ? (double)rd.gz_len / (double)rd.gzip6_len : 0.0, rd.first_ms,
           gb / (rd.first_ms / 1e3), rd.after_update_ms, gb / (rd.after_update_ms / 1e3), diff_pat,
           diff_inst);
    status = 0;
out:
    json_decref(doc);
    free(t);
    free(dt);
    free(nt);
    free(rt);
    ahl_meta_close(m);
    ahl_store_close(s);
    if (ahl__bench_remove_tree(dir) < 0)
        fprintf(stderr, "ahilite-bench update: could not remove %s\n", dir);
    return status;
}
