/* One collection over a store and its frame store: the engine's mark and sweep of versions and
 * chunks (meta.h, "garbage collection"), then the frames no live version lists and that are
 * older than the grace, each removed inside a write transaction so that no version listing it
 * can commit meanwhile (docs/decisions.md#gc-grace), then the space given back. */
#include "cli/cli.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "blob/framestore.h"
#include "meta/meta.h"
#include "store/store.h"
#include "base/banned.h"

#define FRAME_BATCH 64
/* On S3, each batch's deletions happen within this long after the frame fence recorded them
 * (docs/architecture.md#garbage-collection), and stop this much before its end, for a DELETE
 * still on its way. */
#define FENCE_WINDOW_MS 60000
#define FENCE_MARGIN_MS 10000

struct frame_cands {
    struct ahl_meta_gc *g;
    struct ahl_framestore *fs;
    int64_t before_ms;
    struct ahl_framestore_entry *v;
    size_t n, cap, next;
    struct ahl_gc_report *r;
    struct ahl_err *err;
    int64_t deadline_ms; /* S3: no deletion from this time on (wall clock); else INT64_MAX */
};

static int collect_frame(void *ctx, const struct ahl_framestore_entry *e)
{
    struct frame_cands *c = ctx;
    if (ahl_meta_gc_frame_live(c->g, e->id))
        return 0;
    if (e->mtime_ms >= c->before_ms) {
        c->r->young_frames++;
        return 0;
    }
    if (c->n == c->cap) {
        void *v = ahl_array_grow(c->v, &c->cap, sizeof *c->v, 256);
        if (!v)
            return AHL_ENOMEM;
        c->v = v;
    }
    c->v[c->n++] = *e;
    c->r->frames++;
    c->r->frame_bytes += e->size;
    return 0;
}

/* Inside the write transaction of ahl_meta_gc_locked: the next batch of frames. */
static int reclaim_batch(void *ctx, struct ahl_meta_gc *g)
{
    struct frame_cands *c = ctx;
    for (size_t k = 0; c->next < c->n && k < FRAME_BATCH; c->next++, k++) {
        const char *id = c->v[c->next].id;
        if (ahl_wall_ms() >= c->deadline_ms)
            break; /* the rest in the next batch, under a new fence */
        uint64_t freed = 0;
        if (ahl_meta_gc_frame_live(g, id))
            continue;
        int rc = ahl_framestore_reclaim(c->fs, id, c->before_ms, &freed, c->err);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            c->r->frames_swept++;
            c->r->frame_bytes_swept += freed;
        }
    }
    return 0;
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    if (ms)
        nanosleep(&ts, NULL);
}

static bool stopping(const struct ahl_gc_opts *o)
{
    return o->stop && o->stop(o->stop_ctx);
}

int ahl_gc_pass(struct ahl_meta *m, struct ahl_store *s, struct ahl_framestore *fs,
                const struct ahl_gc_opts *o, struct ahl_gc_report *r, struct ahl_err *err)
{
    struct ahl_meta_gc *g = NULL;
    struct ahl_meta_gc_stats st;
    struct frame_cands fc;
    int rc;
    memset(r, 0, sizeof *r);
    memset(&fc, 0, sizeof fc);
    if (!o->dry_run && o->tombstone_retention_ms > 0) {
        struct ahl_meta_expire_stats ex;
        if ((rc = ahl_meta_tombstones_expire(m, ahl_now_ms(), o->tombstone_retention_ms, &ex,
                                             err)) < 0)
            return rc;
        r->tombstone_sets = ex.imagesets;
        r->tombstone_stores = ex.datastores;
    }
    if ((rc = ahl_meta_gc_mark(m, &g, err)) < 0)
        return rc;
    fc.g = g;
    fc.fs = fs;
    fc.r = r;
    fc.err = err;
    fc.before_ms = ahl_wall_ms() - o->grace_ms;
    if (fs && (rc = ahl_framestore_list(fs, collect_frame, &fc, err)) < 0)
        goto out;
    ahl_meta_gc_stats(g, &st);
    r->dead_sets = st.dead_sets;
    r->dead_versions = st.dead_versions;
    r->chunks = st.chunks;
    r->chunk_bytes = st.chunk_bytes;
    if (o->dry_run)
        goto out;
    unsigned batch = o->batch ? o->batch : 512;
    pause_ms(o->pause_ms);
    while (!stopping(o) && (rc = ahl_meta_gc_sweep(g, batch, err)) == 1)
        pause_ms(o->pause_ms);
    if (rc < 0)
        goto out;
    while (!stopping(o) && fc.next < fc.n) {
        fc.deadline_ms = INT64_MAX;
        if (fs->s3) {
            /* S3 has no rename to move an object aside: importers learn from the fence that
             * objects may have been deleted under them (ahl_meta_frame_fence_bump). */
            int64_t until = ahl_wall_ms() + FENCE_WINDOW_MS;
            if ((rc = ahl_meta_frame_fence_bump(m, until, err)) < 0)
                goto out;
            fc.deadline_ms = until - FENCE_MARGIN_MS;
        }
        if ((rc = ahl_meta_gc_locked(g, reclaim_batch, &fc, err)) < 0)
            goto out;
        pause_ms(o->pause_ms);
    }
    if (!stopping(o) && (rc = ahl_store_compact(s, o->vacuum)) < 0) {
        rc = ahl_fail(err, rc, "giving the space back: %s", ahl_strerror(rc));
        goto out;
    }
    rc = 0;
out:
    if (g) {
        ahl_meta_gc_stats(g, &st);
        r->versions_swept = st.versions_swept;
        r->chunks_swept = st.chunks_swept;
        r->chunk_bytes_swept = st.chunk_bytes_swept;
        r->rescued = st.rescued;
    }
    free(fc.v);
    ahl_meta_gc_free(g);
    return rc;
}

static const char *plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

void ahl_gc_report_print(const char *label, const struct ahl_gc_report *r, bool swept)
{
    uint64_t v = swept ? r->versions_swept : r->dead_versions;
    uint64_t c = swept ? r->chunks_swept : r->chunks;
    uint64_t cb = swept ? r->chunk_bytes_swept : r->chunk_bytes;
    uint64_t f = swept ? r->frames_swept : r->frames;
    uint64_t fb = swept ? r->frame_bytes_swept : r->frame_bytes;
    printf("%s: %llu version%s", label, (unsigned long long)v, plural(v));
    if (!swept)
        printf(" of %llu deleted image set%s", (unsigned long long)r->dead_sets,
               plural(r->dead_sets));
    printf(", %llu chunk%s (%llu bytes), %llu frame%s (%llu bytes)\n", (unsigned long long)c,
           plural(c), (unsigned long long)cb, (unsigned long long)f, plural(f),
           (unsigned long long)fb);
}

/* ---- the background pass of serve ---- */

struct ahl_gc_background {
    struct ahl_meta *m;
    struct ahl_store *s;
    struct ahl_framestore fs;
    unsigned interval_s;
    int64_t grace_ms;
    uint64_t idle_passes; /* intervals since the last whole collection */
    int64_t tombstone_retention_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static bool bg_stopping(void *ctx)
{
    struct ahl_gc_background *b = ctx;
    pthread_mutex_lock(&b->mu);
    bool stop = b->stop;
    pthread_mutex_unlock(&b->mu);
    return stop;
}

static void *bg_main(void *arg)
{
    struct ahl_gc_background *b = arg;
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += b->interval_s;
        pthread_mutex_lock(&b->mu);
        while (!b->stop && pthread_cond_timedwait(&b->cv, &b->mu, &until) == 0)
            ;
        bool stop = b->stop;
        pthread_mutex_unlock(&b->mu);
        if (stop)
            break;
        /* Tombstones past their retention go at every interval: an index finds them, and a
         * whole collection may not be due. */
        struct ahl_meta_expire_stats ex;
        struct ahl_err xerr;
        if (ahl_meta_tombstones_expire(b->m, ahl_now_ms(), b->tombstone_retention_ms, &ex,
                                       &xerr) < 0)
            ahl_warn("gc: removing expired tombstones: %s", xerr.msg);
        else if (ex.imagesets || ex.datastores)
            ahl_info("gc: removed %llu deleted image sets and %llu deleted data stores past their "
                     "retention",
                     (unsigned long long)ex.imagesets, (unsigned long long)ex.datastores);
        /* A whole collection reads every live chunk: only when a set was deleted since, or once
         * a day for what nothing counts (frames of imports that failed, chunks left by a
         * collection that stopped part way). */
        uint64_t pending = 0;
        struct ahl_err perr;
        bool full_due = ++b->idle_passes * (uint64_t)b->interval_s >= AHL_GC_FULL_EVERY_S;
        if (!full_due && ahl_meta_gc_pending(b->m, &pending, &perr) == 0 && !pending)
            continue;
        b->idle_passes = 0;
        struct ahl_gc_opts o = {.grace_ms = b->grace_ms,
                                .batch = 128,
                                .pause_ms = 20,
                                .stop = bg_stopping,
                                .stop_ctx = b};
        struct ahl_gc_report r;
        struct ahl_err err;
        ahl_err_clear(&err);
        if (ahl_gc_pass(b->m, b->s, &b->fs, &o, &r, &err) < 0)
            ahl_warn("gc: %s", err.msg);
        else if (r.versions_swept || r.chunks_swept || r.frames_swept)
            ahl_info("gc: removed %llu versions of deleted image sets, %llu chunks (%llu bytes) "
                     "and %llu frames (%llu bytes)",
                     (unsigned long long)r.versions_swept, (unsigned long long)r.chunks_swept,
                     (unsigned long long)r.chunk_bytes_swept, (unsigned long long)r.frames_swept,
                     (unsigned long long)r.frame_bytes_swept);
    }
    return NULL;
}

int ahl_gc_background_start(struct ahl_meta *m, struct ahl_store *s, const char *data_dir,
                            const char *blob_store, const char *s3_endpoint, unsigned interval_s,
                            int64_t grace_ms, int64_t tombstone_retention_ms,
                            struct ahl_gc_background **out, struct ahl_err *err)
{
    struct ahl_gc_background *b = calloc(1, sizeof *b);
    pthread_condattr_t ca;
    *out = NULL;
    if (!b)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    int rc = ahl_framestore_open_dir(&b->fs, data_dir, blob_store, s3_endpoint, false, err);
    if (rc < 0) {
        free(b);
        return rc;
    }
    b->m = m;
    b->s = s;
    b->interval_s = interval_s;
    b->grace_ms = grace_ms;
    b->tombstone_retention_ms = tombstone_retention_ms;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&b->thread, NULL, bg_main, b) != 0) {
        ahl_framestore_close(&b->fs);
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return ahl_fail(err, AHL_ENOMEM, "cannot start the collector's thread");
    }
    *out = b;
    return 0;
}

void ahl_gc_background_stop(struct ahl_gc_background *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    ahl_framestore_close(&b->fs);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
