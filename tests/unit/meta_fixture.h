/* Shared fixture of the engine tests: a scratch data directory with an open store, engine and
 * ACTIVE data store, plus helpers to inflate GetImageSetMetadata output and compare it with the
 * reference serialisation. Included by tests/unit/test_meta_*.c, and by test_store_*.c with
 * AHL_FIXTURE_STORE_ONLY defined (no engine: those tests link the store alone). */
#ifndef AHL_TESTS_META_FIXTURE_H
#define AHL_TESTS_META_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "base/buf.h"
#include "base/clock.h"
#include "json/json.h"
#include "meta/meta.h"
#include "store/store.h"
#include "store_fixture.h"

struct fx {
    char dir[64];
    struct ahl_store *store;
    struct ahl_meta *m;
    char ds[AHL_ID_LEN + 1];
};

static __attribute__((unused)) void fx_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    if (!d)
        return;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static __attribute__((unused)) int fx_open(struct fx *f, const struct ahl_meta_opts *opts)
{
    if (ahl_test_store_open(f->dir, 4, &f->store) < 0)
        return -1;
#ifdef AHL_FIXTURE_STORE_ONLY
    (void)opts;
#else
    if (ahl_meta_open(f->store, opts, &f->m) < 0)
        return -1;
#endif
    return 0;
}

static __attribute__((unused)) void fx_close(struct fx *f)
{
#ifndef AHL_FIXTURE_STORE_ONLY
    ahl_meta_close(f->m);
#endif
    ahl_store_close(f->store);
    f->m = NULL;
    f->store = NULL;
}

/* Makes a scratch directory, opens everything and creates an ACTIVE data store. */
static __attribute__((unused)) struct fx *fx_new(const struct ahl_meta_opts *opts)
{
    struct fx *f = calloc(1, sizeof *f);
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec d;
    if (!f)
        return NULL;
    snprintf(f->dir, sizeof f->dir, "/tmp/ahl-test-XXXXXX");
    if (!mkdtemp(f->dir) || fx_open(f, opts) < 0)
        goto fail;
    memset(&d, 0, sizeof d);
    snprintf(d.id, sizeof d.id, "%032x", 7);
    snprintf(d.name, sizeof d.name, "test");
    snprintf(d.status, sizeof d.status, "ACTIVE");
    snprintf(d.lossless_storage_format, sizeof d.lossless_storage_format, "HTJ2K");
    d.created_at_ms = d.updated_at_ms = ahl_now_ms();
    if (ahl_store_begin(f->store, true, &tx) < 0)
        goto fail;
    if (ahl_store_datastore_put(tx, &d, true) < 0 || ahl_store_commit(tx) < 0)
        goto fail;
    memcpy(f->ds, d.id, sizeof f->ds);
    return f;
fail:
    fprintf(stderr, "fixture setup failed in %s\n", f->dir);
    fx_close(f);
    free(f);
    return NULL;
}

static __attribute__((unused)) void fx_free(struct fx *f)
{
    if (!f)
        return;
    fx_close(f);
    fx_rmdir(f->dir);
    free(f);
}

#ifndef AHL_FIXTURE_STORE_ONLY
static __attribute__((unused)) int fx_collect(void *ctx, const void *p, size_t n)
{
    return ahl_buf_add(ctx, p, n);
}

/* Inflates one gzip member with a single zlib inflate call (windowBits 31), as clients do;
 * checks that nothing follows it. */
static __attribute__((unused)) int fx_gunzip(const struct ahl_buf *gz, struct ahl_buf *out)
{
    z_stream z;
    unsigned char tmp[65536];
    int zr;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 31) != Z_OK)
        return -1;
    z.next_in = (Bytef *)gz->data;
    z.avail_in = (uInt)gz->len;
    do {
        z.next_out = tmp;
        z.avail_out = sizeof tmp;
        zr = inflate(&z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END)
            break;
        ahl_buf_add(out, tmp, sizeof tmp - z.avail_out);
    } while (zr != Z_STREAM_END);
    inflateEnd(&z);
    return zr == Z_STREAM_END && z.avail_in == 0 ? 0 : -1;
}

/* The inflated GetImageSetMetadata body of a version, or NULL with a message on stderr. */
static __attribute__((unused)) char *fx_metadata(struct fx *f, const char *id, uint64_t version)
{
    struct ahl_buf gz, text;
    struct ahl_err err;
    ahl_buf_init(&gz, AHL_BUF_UNLIMITED);
    ahl_buf_init(&text, AHL_BUF_UNLIMITED);
    int rc = ahl_meta_metadata_gzip(f->m, f->ds, id, version, fx_collect, &gz, &err);
    if (rc < 0 || fx_gunzip(&gz, &text) < 0) {
        fprintf(stderr, "metadata of %s v%llu: rc %d %s\n", id, (unsigned long long)version, rc,
                rc < 0 ? err.msg : "bad gzip");
        ahl_buf_release(&gz);
        ahl_buf_release(&text);
        return NULL;
    }
    ahl_buf_release(&gz);
    return ahl_buf_detach(&text, NULL);
}

#endif /* AHL_FIXTURE_STORE_ONLY */

#endif /* AHL_TESTS_META_FIXTURE_H */
