/* Stage 2 of an import: instances of one grouping key committed into primary or non-primary
 * image sets, serialized per key across threads and processes. */
#include "import/import_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/codec.h"
#include "base/text.h"
#include "base/banned.h"

/* ---- serializing commits per grouping key --------------------------------------------------- */

static pthread_mutex_t stripe_mu[IMPORT_STRIPES];
static pthread_once_t stripe_once = PTHREAD_ONCE_INIT;

static void stripes_init(void)
{
    for (int i = 0; i < IMPORT_STRIPES; i++)
        pthread_mutex_init(&stripe_mu[i], NULL);
}

struct stripe_lock {
    unsigned idx;
    int fd;
};

/* Takes the stripe of (data store, key): the in-process mutex, then (with a lock directory) a
 * POSIX record lock on the stripe's file, which excludes other processes. The mutex makes the
 * record lock's per-process semantics harmless: one thread at a time holds a stripe file open. */
static void stripe_lock(struct ahl_importer *im, const char *key, struct stripe_lock *l)
{
    pthread_once(&stripe_once, stripes_init);
    uint32_t h = ahl_crc32(0, im->ds, strlen(im->ds));
    h = ahl_crc32(h, key, strlen(key));
    l->idx = h % IMPORT_STRIPES;
    l->fd = -1;
    pthread_mutex_lock(&stripe_mu[l->idx]);
    if (!im->lock_dir[0])
        return;
    char path[1200];
    snprintf(path, sizeof path, "%s/stripe-%02u", im->lock_dir, l->idx);
    l->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (l->fd < 0)
        return; /* the in-process mutex still holds; other processes are then not excluded */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    while (fcntl(l->fd, F_SETLKW, &fl) < 0 && errno == EINTR)
        ;
}

static void stripe_unlock(struct stripe_lock *l)
{
    if (l->fd >= 0)
        close(l->fd); /* releases the record lock */
    pthread_mutex_unlock(&stripe_mu[l->idx]);
}

/* ---- stage 2: finding candidates ---------------------------------------------------------- */

struct cand_set {
    char id[AHL_ID_LEN + 1];
    uint64_t version;
    int64_t created_at_ms;
    bool is_primary;
};

struct cand_list {
    struct cand_set v[IMPORT_MAX_SETS];
    size_t n;
};

static int collect_set(void *ctx, const struct ahl_imageset_rec *rec)
{
    struct cand_list *l = ctx;
    if (l->n == IMPORT_MAX_SETS)
        return 1;
    struct cand_set *c = &l->v[l->n++];
    memcpy(c->id, rec->id, sizeof c->id);
    c->version = rec->latest_version;
    c->created_at_ms = rec->created_at_ms;
    c->is_primary = rec->is_primary;
    return 0;
}

static int cand_cmp(const void *a, const void *b)
{
    const struct cand_set *x = a, *y = b;
    if (x->created_at_ms != y->created_at_ms)
        return x->created_at_ms < y->created_at_ms ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* The image sets of the study holding series_uid that are primary (want_primary) or not, oldest
 * first. */
static int find_sets(struct ahl_importer *im, const char *study_uid, const char *series_uid,
                     bool want_primary, struct cand_list *out, struct ahl_err *err)
{
    struct ahl_store_tx *tx = NULL;
    struct ahl_search_row row;
    int rc;
    out->n = 0;
    if ((rc = ahl_store_begin(ahl_meta_store(im->m), false, &tx)) < 0)
        return ahl_fail(err, rc, "cannot read the store: %s", ahl_strerror(rc));
    rc = ahl_store_imageset_by_study(tx, im->ds, study_uid, want_primary, collect_set, out);
    if (rc < 0) {
        rc = ahl_fail(err, rc, "cannot list the study's image sets: %s", ahl_strerror(rc));
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (out->v[i].is_primary != want_primary)
            continue;
        rc = ahl_store_search_get(tx, out->v[i].id, &row);
        if (rc == AHL_ENOTFOUND)
            continue;
        if (rc < 0) {
            rc = ahl_fail(err, rc, "cannot read the search index: %s", ahl_strerror(rc));
            goto out;
        }
        if (strcmp(row.series_instance_uid, series_uid) != 0)
            continue;
        out->v[k++] = out->v[i];
    }
    out->n = k;
    qsort(out->v, out->n, sizeof out->v[0], cand_cmp);
    rc = 0;
out:
    ahl_store_rollback(tx);
    return rc;
}

/* The document of a set at a version with the Instances maps dropped: all that ahl_group_compare
 * looks at. */
static int load_candidate(struct ahl_importer *im, const struct cand_set *c, json_t **out,
                          struct ahl_err *err)
{
    json_t *doc = NULL;
    int rc = ahl_meta_document(im->m, im->ds, c->id, c->version, &doc, err);
    /* Deleted since find_sets saw it: a conflict, so that the caller looks again. */
    if (rc == AHL_ENOTFOUND)
        return ahl_fail(err, AHL_ECONFLICT, "image set %s was deleted meanwhile", c->id);
    if (rc < 0)
        return rc;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), k, v)
        json_object_del(v, "Instances");
    *out = doc;
    return 0;
}

/* Merges the instance's Patient/Study/Series DICOM attributes into cand: only the missing ones
 * (overwrite false: the candidate used to compare later instances of a batch with what the set
 * will hold), or all of them (overwrite true: the document committed for a batch, merged the way
 * the engine merges an import into a stored set, so that the last instance's values win either
 * way and re-importing the same input changes nothing). */
static int absorb(json_t *cand, const json_t *inst_doc, const char *series_uid, bool overwrite)
{
    json_t *cst = json_object_get(cand, "Study"), *ist = json_object_get(inst_doc, "Study");
    json_t *dst[3] = {
        json_object_get(json_object_get(cand, "Patient"), "DICOM"),
        json_object_get(cst, "DICOM"),
        json_object_get(json_object_get(json_object_get(cst, "Series"), series_uid), "DICOM"),
    };
    json_t *src[3] = {
        json_object_get(json_object_get(inst_doc, "Patient"), "DICOM"),
        json_object_get(ist, "DICOM"),
        json_object_get(json_object_get(json_object_get(ist, "Series"), series_uid), "DICOM"),
    };
    /* Values are copied, not shared: a candidate outlives this item in the cache and is read by
     * other threads while the item's owner frees its document, and jansson's reference counts
     * are no synchronisation between threads. */
    for (int i = 0; i < 3; i++) {
        if (!dst[i] || !src[i])
            continue;
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)src[i], key, v)
        {
            if (!overwrite && json_object_get(dst[i], key))
                continue;
            if (json_object_set_new(dst[i], key, json_deep_copy(v)) < 0)
                return AHL_ENOMEM;
        }
    }
    return 0;
}

/* A candidate built from the first instance of a new set: its document without Instances. */
static json_t *candidate_from(const struct ahl_import_item *it)
{
    json_t *c = json_deep_copy(it->doc);
    if (c)
        json_object_del(
            json_object_get(json_object_get(json_object_get(c, "Study"), "Series"), it->series_uid),
            "Instances");
    return c;
}

/* The document committed for items[0..n) of one series: their Patient/Study/Series attributes
 * merged in order (later ones win), and every instance. */
static json_t *put_document(struct ahl_import_item **items, size_t n)
{
    json_t *doc = json_deep_copy(items[0]->doc);
    const char *series_uid = items[0]->series_uid;
    json_t *ser =
        json_object_get(json_object_get(json_object_get(doc, "Study"), "Series"), series_uid);
    json_t *insts = json_object_get(ser, "Instances");
    if (!doc || !insts)
        goto fail;
    for (size_t i = 1; i < n; i++) {
        const char *sop;
        const char *st, *se;
        json_t *inst;
        if (absorb(doc, items[i]->doc, series_uid, true) < 0 ||
            ahl__import_doc_parts(items[i]->doc, &st, &se, &inst, &sop) < 0 ||
            json_object_set(insts, sop, inst) < 0)
            goto fail;
    }
    return doc;
fail:
    json_decref(doc);
    return NULL;
}

static void res_success(struct ahl_import_item *it, const struct ahl_meta_info *info, bool created,
                        bool unchanged)
{
    it->res.rc = 0;
    memcpy(it->res.imageset_id, info->set.id, sizeof it->res.imageset_id);
    it->res.version = info->ver.version ? info->ver.version : info->set.latest_version;
    it->res.is_primary = info->set.is_primary;
    it->res.created = created;
    it->res.unchanged = unchanged;
}

/* Puts items into set c (compare-and-set on c->version) or, with c NULL, creates a set. */
struct fence_ctx {
    struct ahl_importer *im;
    struct ahl_import_item **items;
    size_t n;
};

static int frame_present(struct ahl_importer *im, const json_t *entry, struct ahl_err *err)
{
    const char *id = json_string_value(json_object_get(entry, "ID"));
    if (!id)
        return 0;
    int rc = ahl_framestore_exists(&im->fs, id);
    if (rc == 1)
        return 0;
    if (rc == 0)
        return ahl_fail(err, AHL_EIO,
                        "frame %s was removed by the collector while the import waited to "
                        "commit; import the file again",
                        id);
    return ahl_fail(err, AHL_EIO, "cannot look for frame %s in the blob store: %s", id,
                    ahl_strerror(rc));
}

/* The frame fence's check (meta.h): every frame and bulk data object of the items is still in
 * the bucket. Runs inside the commit's write transaction, where no collector deletes. */
static int frames_present(void *ctx, struct ahl_err *err)
{
    struct fence_ctx *f = ctx;
    int rc = 0;
    for (size_t i = 0; i < f->n && rc == 0; i++) {
        const char *a, *b, *c;
        json_t *inst, *v;
        const char *k;
        if (ahl__import_doc_parts(f->items[i]->doc, &a, &b, &inst, &c) < 0)
            continue;
        const json_t *frames = json_object_get(inst, "ImageFrames");
        for (size_t j = 0; rc == 0 && j < json_array_size(frames); j++)
            rc = frame_present(f->im, json_array_get(frames, j), err);
        json_object_foreach(json_object_get(inst, "BulkData"), k, v)
        {
            if (rc == 0)
                rc = frame_present(f->im, v, err);
        }
    }
    return rc;
}

/* The fence of items: the earliest they read (epochs only grow). NULL when none wrote to S3. */
static const struct ahl_meta_frame_fence *items_fence(struct ahl_import_item **items, size_t n,
                                                      struct fence_ctx *fc,
                                                      struct ahl_meta_frame_fence *f)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (!items[i]->fenced)
            continue;
        if (!any || items[i]->fence_epoch < f->epoch)
            f->epoch = items[i]->fence_epoch;
        if (!any || items[i]->fence_ms < f->read_ms)
            f->read_ms = items[i]->fence_ms;
        any = true;
    }
    f->check = frames_present;
    f->ctx = fc;
    return any ? f : NULL;
}

static int write_items(struct ahl_importer *im, struct ahl_import_item **items, size_t n,
                       const struct cand_set *c, bool primary, struct ahl_meta_info *out,
                       struct ahl_err *err)
{
    struct fence_ctx fc = {im, items, n};
    struct ahl_meta_frame_fence fence;
    const struct ahl_meta_frame_fence *fp = items_fence(items, n, &fc, &fence);
    struct ahl_meta_info info;
    json_t *doc = put_document(items, n);
    int rc;
    if (!doc)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    memset(&info, 0, sizeof info);
    if (c) {
        rc = ahl_meta_imageset_put_fenced(im->m, im->ds, c->id, doc, c->version, fp, &info, err);
    } else {
        struct ahl_meta_create_opts o = {.is_primary = primary,
                                         .workflow_status = AHL_WORKFLOW_IMPORTED,
                                         .sole_primary = primary,
                                         .fence = fp};
        rc = ahl_meta_imageset_create(im->m, im->ds, doc, &o, &info, err);
    }
    json_decref(doc);
    if (rc < 0)
        return rc;
    bool unchanged = c && info.ver.version == c->version;
    for (size_t i = 0; i < n; i++)
        res_success(items[i], &info, !c, unchanged);
    if (out)
        *out = info;
    return 0;
}

/* One conflicting instance: into a non-primary set of its series that agrees with it, else into a
 * new non-primary set. */
static int place_nonprimary(struct ahl_importer *im, struct ahl_import_item *it,
                            struct ahl_err *err)
{
    struct cand_list *l = malloc(sizeof *l);
    int rc = 0;
    if (!l)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    for (int attempt = 0; attempt < IMPORT_CAS_RETRIES; attempt++) {
        const struct cand_set *chosen = NULL;
        if ((rc = find_sets(im, it->study_uid, it->series_uid, false, l, err)) < 0)
            break;
        for (size_t i = 0; i < l->n && !chosen; i++) {
            json_t *cand = NULL;
            if ((rc = load_candidate(im, &l->v[i], &cand, err)) == AHL_ECONFLICT) {
                rc = 0; /* deleted meanwhile: not a candidate */
                continue;
            }
            if (rc < 0)
                break;
            rc = ahl_group_compare(cand, it->doc, NULL, err);
            json_decref(cand);
            if (rc == AHL_GROUP_CONSISTENT)
                chosen = &l->v[i];
            else if (rc < 0)
                break;
            rc = 0;
        }
        if (rc < 0)
            break;
        rc = write_items(im, &it, 1, chosen, false, NULL, err);
        if (rc != AHL_ECONFLICT || !chosen)
            break;
    }
    free(l);
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void fail_items(struct ahl_import_item **items, size_t n, int rc, const struct ahl_err *e)
{
    for (size_t i = 0; i < n; i++)
        ahl__import_res_fail(&items[i]->res, rc, e, NULL);
}

static _Atomic int64_t frame_refresh_ms = AHL_IMPORT_FRAME_REFRESH_MS;

void ahl_import_set_frame_refresh_ms(int64_t ms)
{
    frame_refresh_ms = ms < 0 ? 0 : ms;
}

static int refresh_id(struct ahl_importer *im, const json_t *entry, struct ahl_err *err)
{
    const char *id = json_string_value(json_object_get(entry, "ID"));
    return id ? ahl_framestore_refresh(&im->fs, id, err) : 0;
}

/* An item whose frames were written more than half the collector's grace ago makes their times
 * now, so that none becomes old enough to collect before its version commits (the collector
 * takes only unlisted frames older than the grace; docs/decisions.md#gc-grace). */
static int refresh_frames(struct ahl_importer *im, struct ahl_import_item *it, int64_t now,
                          struct ahl_err *err)
{
    const char *a, *b, *c;
    json_t *inst, *v;
    const char *k;
    int rc = 0;
    if (now - it->written_ms < frame_refresh_ms ||
        ahl__import_doc_parts(it->doc, &a, &b, &inst, &c) < 0)
        return 0;
    const json_t *frames = json_object_get(inst, "ImageFrames");
    for (size_t i = 0; rc == 0 && i < json_array_size(frames); i++)
        rc = refresh_id(im, json_array_get(frames, i), err);
    json_object_foreach(json_object_get(inst, "BulkData"), k, v)
    {
        if (rc == 0)
            rc = refresh_id(im, v, err);
    }
    if (rc == 0)
        it->written_ms = now;
    return rc;
}

/* Commits items of ONE grouping key with its stripe held. Fills each item's res. */
void ahl__import_commit(struct ahl_importer *im, struct ahl_import_item **items, size_t n)
{
    struct ahl_import_item **ok = malloc(n * sizeof *ok), **bad = malloc(n * sizeof *bad);
    struct cand_list *l = malloc(sizeof *l);
    struct stripe_lock lk;
    struct ahl_err err;
    struct ahl_group_diff diff;
    int rc = 0;
    size_t nok = 0, nbad = 0;

    ahl_err_clear(&err);
    if (!ok || !bad || !l) {
        rc = ahl_fail(&err, AHL_ENOMEM, "out of memory");
        fail_items(items, n, rc, &err);
        goto out_nolock;
    }
    /* No version may name a frame before the frame is durable: one sync for the frames of every
     * item, before the stripe is taken (a sync waits for the disk). */
    uint64_t ticket = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i]->ticket > ticket)
            ticket = items[i]->ticket;
    if ((rc = ahl_framestore_sync(&im->sync, ticket, &err)) < 0) {
        fail_items(items, n, rc, &err);
        goto out_nolock;
    }
    int64_t now = ahl_wall_ms();
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = refresh_frames(im, items[i], now, &err);
    if (rc < 0) {
        fail_items(items, n, rc, &err);
        goto out_nolock;
    }
    stripe_lock(im, items[0]->key, &lk);
    for (int attempt = 0; attempt < IMPORT_CAS_RETRIES; attempt++) {
        json_t *cand = NULL;
        const struct cand_set *primary = NULL;
        nok = nbad = 0;
        if ((rc = find_sets(im, items[0]->study_uid, items[0]->series_uid, true, l, &err)) < 0)
            break;
        if (l->n) {
            primary = &l->v[0];
            cand = ahl__import_cache_take(im, primary->id, primary->version);
            if (!cand && (rc = load_candidate(im, primary, &cand, &err)) == AHL_ECONFLICT) {
                ahl_err_clear(&err);
                continue; /* deleted meanwhile: look again */
            }
            if (rc < 0)
                break;
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (!cand) {
                if (!(cand = candidate_from(items[i])))
                    rc = ahl_fail(&err, AHL_ENOMEM, "out of memory");
                ok[nok++] = items[i];
                continue;
            }
            int c = ahl_group_compare(cand, items[i]->doc, &diff, &err);
            if (c == AHL_GROUP_CONSISTENT) {
                ok[nok++] = items[i];
                if (absorb(cand, items[i]->doc, items[i]->series_uid, false) < 0)
                    rc = ahl_fail(&err, AHL_ENOMEM, "out of memory");
            } else if (c == AHL_GROUP_CONFLICT) {
                bad[nbad++] = items[i];
                items[i]->res.n_warnings = 1;
                ahl_str_copy_cut(items[i]->res.warning_type, sizeof items[i]->res.warning_type,
                                 "InconsistentWithPrimaryImageSet");
                snprintf(items[i]->res.warning, sizeof items[i]->res.warning,
                         "%s; the instance was put in a non-primary image set", diff.message);
            } else {
                ahl__import_res_fail(&items[i]->res, c, &err, NULL);
            }
        }
        if (rc < 0 || nok == 0) {
            json_decref(cand);
            break;
        }
        struct ahl_meta_info info;
        rc = write_items(im, ok, nok, primary, true, &info, &err);
        if (rc == 0) {
            /* The set now holds what the engine merged: every committed instance's attributes
             * over the candidate's, later ones winning. Keep that for the next batch. */
            for (size_t i = 0; i < nok && cand; i++)
                if (absorb(cand, ok[i]->doc, ok[i]->series_uid, true) < 0) {
                    json_decref(cand);
                    cand = NULL;
                }
            if (cand)
                ahl__import_cache_put(im, info.set.id, info.ver.version, cand);
            cand = NULL;
        }
        json_decref(cand);
        if (rc == AHL_ECONFLICT) {
            /* Another writer advanced the set, or (another process) created the series' primary
             * set first: look again. */
            sleep_ms(attempt < 4 ? 1 : 20);
            continue;
        }
        break;
    }
    if (rc < 0 && nok > 1) {
        /* One instance may spoil a batch (the engine refused it): place each one alone. */
        stripe_unlock(&lk);
        for (size_t i = 0; i < nok; i++)
            ahl__import_commit(im, &ok[i], 1);
        stripe_lock(im, items[0]->key, &lk);
        rc = 0;
    } else if (rc < 0) {
        fail_items(ok, nok, rc, &err);
    }
    if (rc < 0 && nok == 0)
        fail_items(items, n, rc, &err);
    for (size_t i = 0; i < nbad; i++) {
        ahl_err_clear(&err);
        if ((rc = place_nonprimary(im, bad[i], &err)) < 0)
            ahl__import_res_fail(&bad[i]->res, rc, &err, NULL);
    }
    stripe_unlock(&lk);
out_nolock:
    free(ok);
    free(bad);
    free(l);
}

int ahl_import_fd(struct ahl_importer *im, int fd, const char *name, struct ahl_import_result *res)
{
    struct ahl_import_item *it;
    if (ahl_import_prepare_fd(im, fd, name, &it, res) < 0)
        return res->rc;
    ahl__import_commit(im, &it, 1);
    *res = it->res;
    ahl_import_item_free(it);
    return res->rc;
}

int ahl_import_path(struct ahl_importer *im, const char *path, const char *name,
                    struct ahl_import_result *res)
{
    struct ahl_import_item *it;
    if (ahl_import_prepare_path(im, path, name, &it, res) < 0)
        return res->rc;
    ahl__import_commit(im, &it, 1);
    *res = it->res;
    ahl_import_item_free(it);
    return res->rc;
}
