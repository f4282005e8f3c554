/* The importer handle (import.h): opening and closing it, the failure results every stage
 * records, and the cache of candidate documents. The pipeline itself is in read.c, commit.c and
 * batch.c (see import_internal.h). */
#include "import/import_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/text.h"
#include "frames/frames.h"
#include "meta/states.h"
#include "base/banned.h"

/* ---- results ------------------------------------------------------------------------------ */

void ahl__import_res_init(struct ahl_import_result *res)
{
    memset(res, 0, sizeof *res);
}

/* The failure's exceptionType as HealthImaging's job output format has it (failure.ndjson): the
 * format names two, the input's fault and the server's. */
const char *ahl_import_exception_type(bool customer_error)
{
    return customer_error ? "ValidationException" : "InternalServerException";
}

void ahl_import_result_blame(struct ahl_import_result *res, bool customer_error)
{
    res->customer_error = customer_error;
    ahl_str_copy_cut(res->exception_type, sizeof res->exception_type,
                     ahl_import_exception_type(customer_error));
}

/* Records a failure. The input is at fault unless the failure is the server's own (memory, I/O on
 * our side, damaged stored data, internal errors). */
int ahl__import_res_fail(struct ahl_import_result *res, int rc, const struct ahl_err *err,
                         const char *prefix)
{
    res->rc = rc < 0 ? rc : AHL_EINTERNAL;
    ahl_import_result_blame(res, !(res->rc == AHL_ENOMEM || res->rc == AHL_EINTERNAL ||
                                   res->rc == AHL_ECORRUPT || res->rc == AHL_EIO ||
                                   res->rc == AHL_ENOSPC));
    const char *msg = err && err->msg[0] ? err->msg : ahl_strerror(res->rc);
    snprintf(res->message, sizeof res->message, "%s%s", prefix ? prefix : "", msg);
    return res->rc;
}

/* ---- opening ------------------------------------------------------------------------------ */

int ahl_importer_open(struct ahl_meta *m, const char *datastore_id,
                      const struct ahl_import_opts *opts, struct ahl_importer **out,
                      struct ahl_err *err)
{
    struct ahl_importer *im = NULL;
    struct ahl_store_tx *tx = NULL;
    struct ahl_datastore_rec d;
    int rc;
    *out = NULL;
    if (!opts || (!opts->frames && !opts->frames_root) || !datastore_id)
        return ahl_fail(err, AHL_EINVAL, "an importer needs a data store and a frame store");
    if (!(im = calloc(1, sizeof *im)))
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    im->m = m;
    pthread_mutex_init(&im->cache_mu, NULL);
    ahl_import_budget_init(&im->own_budget, opts->memory_budget);
    im->budget = opts->budget ? opts->budget : &im->own_budget;
    im->mappings = opts->mappings;
    im->batch_max = opts->batch_max ? opts->batch_max : AHL_IMPORT_BATCH_DEFAULT;
    if (ahl_str_copy(im->ds, sizeof im->ds, datastore_id) < 0) {
        rc = ahl_fail(err, AHL_ENOTFOUND, "data store %.40s does not exist", datastore_id);
        goto out;
    }
    if ((rc = ahl_store_begin(ahl_meta_store(m), false, &tx)) < 0) {
        rc = ahl_fail(err, rc, "cannot read the store: %s", ahl_strerror(rc));
        goto out;
    }
    rc = ahl_store_datastore_get(tx, datastore_id, &d);
    ahl_store_rollback(tx);
    if (rc == AHL_ENOTFOUND) {
        rc = ahl_fail(err, rc, "data store %s does not exist", datastore_id);
        goto out;
    }
    if (rc < 0) {
        rc = ahl_fail(err, rc, "cannot read data store %s: %s", datastore_id, ahl_strerror(rc));
        goto out;
    }
    if (ahl_datastore_status_parse(d.status) != AHL_DATASTORE_ACTIVE) {
        rc =
            ahl_fail(err, AHL_ECONFLICT, "data store %s is %s, not ACTIVE", datastore_id, d.status);
        goto out;
    }
    /* Every frame the importer encodes is encoded as the data store says
     * (docs/frames.md#jpeg-2000-lossless-data-stores). */
    struct ahl_err why = {0};
    if ((rc = ahl_lossless_format_parse(d.lossless_storage_format, &im->format, &why)) < 0) {
        rc = ahl_fail(err, AHL_EINTERNAL, "data store %s: %s", datastore_id, why.msg);
        goto out;
    }
    if (opts->frames)
        im->fs = *opts->frames;
    else if ((rc = ahl_framestore_open(&im->fs, opts->frames_root, err)) < 0)
        goto out;
    if ((rc = ahl_framestore_sync_open(&im->fs, &im->sync, err)) < 0)
        goto out;
    if (opts->lock_dir) {
        int w = snprintf(im->lock_dir, sizeof im->lock_dir, "%s/import-locks", opts->lock_dir);
        if (w < 0 || (size_t)w >= sizeof im->lock_dir) {
            rc = ahl_fail(err, AHL_ETOOBIG, "lock directory path too long");
            goto out;
        }
        if (mkdir(im->lock_dir, 0700) < 0 && errno != EEXIST) {
            rc = ahl_fail(err, AHL_EIO, "cannot create %s: %s", im->lock_dir, strerror(errno));
            goto out;
        }
    }
    const char *t = opts->tmp_dir ? opts->tmp_dir : getenv("TMPDIR");
    ahl_str_copy_cut(im->tmp_dir, sizeof im->tmp_dir, t && *t ? t : "/tmp");
    *out = im;
    im = NULL;
    rc = 0;
out:
    if (im) {
        ahl_framestore_sync_close(&im->sync);
        pthread_mutex_destroy(&im->cache_mu);
        ahl_import_budget_release(&im->own_budget);
    }
    free(im);
    return rc;
}

void ahl_importer_close(struct ahl_importer *im)
{
    if (!im)
        return;
    for (int i = 0; i < IMPORT_CACHE; i++)
        json_decref(im->cache[i].cand);
    pthread_mutex_destroy(&im->cache_mu);
    ahl_import_budget_release(&im->own_budget);
    ahl_framestore_sync_close(&im->sync);
    free(im);
}

/* Takes the cached candidate of set id at version (NULL when not cached); the caller owns it. */
json_t *ahl__import_cache_take(struct ahl_importer *im, const char *id, uint64_t version)
{
    json_t *c = NULL;
    pthread_mutex_lock(&im->cache_mu);
    for (int i = 0; i < IMPORT_CACHE; i++) {
        struct cand_cache *e = &im->cache[i];
        if (e->cand && !strcmp(e->id, id)) {
            if (e->version == version)
                c = e->cand;
            else
                json_decref(e->cand);
            e->cand = NULL;
        }
    }
    pthread_mutex_unlock(&im->cache_mu);
    return c;
}

/* Keeps cand (ownership passes) as the candidate of set id at version, evicting the least
 * recently stored entry. */
void ahl__import_cache_put(struct ahl_importer *im, const char *id, uint64_t version, json_t *cand)
{
    pthread_mutex_lock(&im->cache_mu);
    struct cand_cache *v = &im->cache[0];
    for (int i = 0; i < IMPORT_CACHE; i++) {
        struct cand_cache *e = &im->cache[i];
        if (!e->cand || !strcmp(e->id, id)) {
            v = e;
            break;
        }
        if (e->used < v->used)
            v = e;
    }
    json_decref(v->cand);
    memcpy(v->id, id, sizeof v->id);
    v->version = version;
    v->cand = cand;
    v->used = ++im->cache_clock;
    pthread_mutex_unlock(&im->cache_mu);
}
