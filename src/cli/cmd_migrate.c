/* ahilite migrate: copies an embedded install (the SQLite database and the frame files of a data
 * directory) onto another store, through the storage and frame-store interfaces only, so any
 * target works: PostgreSQL with frames in an S3 bucket, or another data directory
 * (docs/commands.md#ahilite-migrate).
 *
 * The source is opened read-only (ahl_store_open_sqlite_read_only: nothing is written to it, not
 * even the -shm file) and refused while another process has it open, since it is read as it is.
 * The work goes in four steps, each safe to repeat, so that a run that was interrupted (even by
 * kill -9) is simply started again and continues:
 *   1. records: data stores, the tags of every ARN (ahl_store_tag_scan), import jobs: upserted;
 *   2. frames: the source's integrity check (ahl_meta_check_with) walks every version of every
 *      image set, deleted ones too, and hands each distinct frame and bulk data object to a
 *      verifier, which here reads it from the source, checks its bytes against its id (a content
 *      hash), and writes it to the target unless the target has it already; the target's frames
 *      are made durable before any image set that names them is committed (step 4);
 *   3. chunks: every stored chunk, INSERT OR IGNORE (content-addressed), skipped when the target
 *      already holds as many chunks and bytes as the source;
 *   4. image sets, one write transaction each: the set's row, every version, its search row, its
 *      frame-index rows (ahl_store_frame_list: copied as they are, since a whole-set copy takes
 *      over its source's rows), and its QIDO-RS rows, rebuilt on the target from the latest
 *      version by the engine (ahl_meta_qido_index). A set whose row on the target already equals
 *      the source's is done and skipped, so a resumed run never writes a set twice; a set changed
 *      on the source since (the source served again between two runs) is written again.
 * Then it verifies: every set's rows compared with the source's, the target checked as `ahilite
 * check` checks a data directory (every chunk re-hashed, every version walked, every frame read
 * and hashed), and the counts of both sides printed. Exit status 0 when they agree and nothing is
 * damaged, 1 otherwise, 2 on a usage error or a store that cannot be opened. */
#include "cli/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/text.h"
#include "blob/framestore.h"
#include "meta/meta.h"
#include "store/store.h"
#include "base/banned.h"

/* Chunks copied per target transaction, and the bytes after which one commits anyway. */
#define CHUNK_BATCH 2000
#define CHUNK_BATCH_BYTES (64u << 20)

struct set_id {
    char id[AHL_ID_LEN + 1];
};

/* What a store holds of one image set (read_set). */
struct set_rows {
    struct ahl_imageset_rec set;
    struct ahl_version_rec *ver;
    size_t nver, capver;
    bool has_search, has_qido;
    struct ahl_search_row search;
    struct ahl_qido_set qido;
    struct ahl_frame_rec *fr;
    size_t nfr, capfr;
};

/* One side's figures for the final table. */
struct counts {
    uint64_t datastores, tags, jobs, sets, versions, chunks, chunk_bytes, frames, frame_bytes;
};

struct mig {
    struct ahl_store *src, *dst;
    struct ahl_meta *srcm, *dstm;
    struct ahl_framestore sfs, tfs;
    struct ahl_framestore_sync sync;
    bool sync_open;
    uint64_t ticket; /* the last frame write to make durable */
    struct ahl_err err;
    /* the target transaction a step streams into */
    struct ahl_store_tx *dtx;
    unsigned batch_n;
    size_t batch_bytes;
    /* the sets, in id order */
    struct set_id *sets;
    size_t nsets, capsets;
    /* progress */
    uint64_t t0, last_print, step_t0;
    uint64_t frames_copied, frames_present, frame_bytes_copied, chunks_done, sets_done,
        sets_skipped;
    struct counts src_n, dst_n;
    uint64_t src_problems, dst_problems, differences;
    unsigned threads;   /* frames copied or verified at once */
    bool fresh;         /* the target held no data store when this run began */
    pthread_mutex_t mu; /* the counters above and err, while frame workers run */
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ahilite migrate: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static double secs(uint64_t from)
{
    return (double)(ahl_mono_ns() - from) / 1e9;
}

/* At most one progress line a second (force: now). */
static bool progress_due(struct mig *g, bool force)
{
    uint64_t now = ahl_mono_ns();
    if (!force && now - g->last_print < 1000000000ull)
        return false;
    g->last_print = now;
    return true;
}

static void frames_progress(struct mig *g, bool force)
{
    if (!progress_due(g, force))
        return;
    double s = secs(g->step_t0);
    say("frames: %" PRIu64 " copied (%.1f MB, %.1f MB/s), %" PRIu64 " already there, %.0f s",
        g->frames_copied, (double)g->frame_bytes_copied / 1e6,
        s > 0 ? (double)g->frame_bytes_copied / 1e6 / s : 0.0, g->frames_present, s);
}

static void sets_progress(struct mig *g, bool force)
{
    if (!progress_due(g, force))
        return;
    say("image sets: %" PRIu64 " / %zu done (%" PRIu64 " already there), %.0f s", g->sets_done,
        g->nsets, g->sets_skipped, secs(g->step_t0));
}

/* ---- reading one set's rows ------------------------------------------------------------------ */

static void set_rows_release(struct set_rows *r)
{
    free(r->ver);
    free(r->fr);
    memset(r, 0, sizeof *r);
}

static int collect_version(void *ctx, const struct ahl_version_rec *v)
{
    struct set_rows *r = ctx;
    if (r->nver == r->capver) {
        size_t cap = r->capver ? r->capver * 2 : 8;
        struct ahl_version_rec *p = realloc(r->ver, cap * sizeof *p);
        if (!p)
            return AHL_ENOMEM;
        r->ver = p;
        r->capver = cap;
    }
    r->ver[r->nver++] = *v;
    return 0;
}

static int collect_frame(void *ctx, const struct ahl_frame_rec *f)
{
    struct set_rows *r = ctx;
    if (r->nfr == r->capfr) {
        size_t cap = r->capfr ? r->capfr * 2 : 64;
        struct ahl_frame_rec *p = realloc(r->fr, cap * sizeof *p);
        if (!p)
            return AHL_ENOMEM;
        r->fr = p;
        r->capfr = cap;
    }
    r->fr[r->nfr++] = *f;
    return 0;
}

/* Reads every row a store keeps of set id (AHL_ENOTFOUND when it has no such set). Versions come
 * newest first. */
static int read_set(struct ahl_store *s, const char *id, struct set_rows *r)
{
    struct ahl_store_tx *tx = NULL;
    int rc;
    memset(r, 0, sizeof *r);
    if ((rc = ahl_store_begin(s, false, &tx)) < 0)
        return rc;
    if ((rc = ahl_store_imageset_get(tx, NULL, id, &r->set)) < 0)
        goto out;
    uint64_t below = 0;
    do {
        size_t before = r->nver;
        if ((rc = ahl_store_version_list(tx, id, below, 1000, collect_version, r)) < 0)
            goto out;
        if (r->nver == before)
            break;
        below = r->ver[r->nver - 1].version;
    } while (below > 1);
    rc = ahl_store_search_get(tx, id, &r->search);
    if (rc < 0 && rc != AHL_ENOTFOUND)
        goto out;
    r->has_search = rc == 0;
    rc = ahl_store_qido_set_get(tx, id, &r->qido);
    if (rc < 0 && rc != AHL_ENOTFOUND)
        goto out;
    r->has_qido = rc == 0;
    rc = ahl_store_frame_list(tx, id, collect_frame, r);
out:
    ahl_store_rollback(tx);
    if (rc < 0)
        set_rows_release(r);
    return rc;
}

/* ---- comparing rows ----------------------------------------------------------------------------
 */

#define SAME_S(a, b, f) (strcmp((a)->f, (b)->f) == 0)
#define SAME_N(a, b, f) ((a)->f == (b)->f)

static bool set_equal(const struct ahl_imageset_rec *a, const struct ahl_imageset_rec *b)
{
    return SAME_S(a, b, id) && SAME_S(a, b, datastore_id) && SAME_S(a, b, state) &&
           SAME_S(a, b, workflow_status) && SAME_S(a, b, message) && SAME_N(a, b, is_primary) &&
           SAME_N(a, b, latest_version) && SAME_N(a, b, created_at_ms) &&
           SAME_N(a, b, updated_at_ms) && SAME_N(a, b, last_accessed_at_ms) &&
           SAME_N(a, b, deleted_at_ms);
}

static bool version_equal(const struct ahl_version_rec *a, const struct ahl_version_rec *b)
{
    return SAME_S(a, b, imageset_id) && SAME_N(a, b, version) &&
           !memcmp(a->root, b->root, sizeof a->root) && SAME_S(a, b, state) &&
           SAME_S(a, b, workflow_status) && SAME_S(a, b, message) && SAME_N(a, b, forced) &&
           SAME_N(a, b, created_at_ms) && SAME_N(a, b, updated_at_ms);
}

static bool search_equal(const struct ahl_search_row *a, const struct ahl_search_row *b)
{
    return SAME_S(a, b, imageset_id) && SAME_S(a, b, datastore_id) && SAME_N(a, b, is_primary) &&
           SAME_N(a, b, version) && SAME_N(a, b, created_at_ms) && SAME_N(a, b, updated_at_ms) &&
           SAME_S(a, b, patient_id) && SAME_S(a, b, patient_name) &&
           SAME_S(a, b, patient_birth_date) && SAME_S(a, b, patient_sex) &&
           SAME_S(a, b, study_instance_uid) && SAME_S(a, b, study_id) &&
           SAME_S(a, b, study_description) && SAME_S(a, b, accession_number) &&
           SAME_S(a, b, study_date) && SAME_S(a, b, study_time) &&
           SAME_S(a, b, series_instance_uid) && SAME_S(a, b, modality) &&
           SAME_S(a, b, body_part_examined) && SAME_N(a, b, has_series_number) &&
           (!a->has_series_number || SAME_N(a, b, series_number)) &&
           SAME_N(a, b, number_of_series) && SAME_N(a, b, number_of_instances) &&
           SAME_S(a, b, study_dt) && SAME_N(a, b, last_accessed_at_ms);
}

static bool qido_equal(const struct ahl_qido_set *a, const struct ahl_qido_set *b)
{
    return SAME_S(a, b, imageset_id) && SAME_S(a, b, datastore_id) &&
           !memcmp(a->root, b->root, sizeof a->root) && SAME_N(a, b, updated_at_ms) &&
           SAME_S(a, b, study_uid) && SAME_S(a, b, patient_name) && SAME_S(a, b, patient_id) &&
           SAME_S(a, b, patient_birth_date) && SAME_S(a, b, patient_birth_time) &&
           SAME_S(a, b, patient_sex) && SAME_S(a, b, study_date) && SAME_S(a, b, study_time) &&
           SAME_S(a, b, accession_number) && SAME_S(a, b, referring_physician_name) &&
           SAME_S(a, b, study_description) && SAME_S(a, b, study_id);
}

/* The first difference between two sides' rows of a set, or NULL. */
static const char *set_rows_differ(const struct set_rows *a, const struct set_rows *b)
{
    if (!set_equal(&a->set, &b->set))
        return "its image-set row";
    if (a->nver != b->nver)
        return "its number of versions";
    for (size_t i = 0; i < a->nver; i++)
        if (!version_equal(&a->ver[i], &b->ver[i]))
            return "a version row";
    if (a->has_search != b->has_search || (a->has_search && !search_equal(&a->search, &b->search)))
        return "its search row";
    if (a->has_qido != b->has_qido || (a->has_qido && !qido_equal(&a->qido, &b->qido)))
        return "its QIDO-RS set row";
    if (a->nfr != b->nfr)
        return "its number of frame-index rows";
    for (size_t i = 0; i < a->nfr; i++)
        if (strcmp(a->fr[i].frame_id, b->fr[i].frame_id) ||
            strcmp(a->fr[i].transfer_syntax, b->fr[i].transfer_syntax))
            return "a frame-index row";
    return NULL;
}

/* ---- step 1: data stores, tags, jobs -----------------------------------------------------------
 */

struct rec_walk {
    struct mig *g;
    struct ahl_store_tx *dtx; /* NULL: count only */
    struct counts *n;
    char last[AHL_ID_LEN + 1];
    unsigned seen;
    /* the data stores, listed first */
    struct ahl_datastore_rec *ds;
    size_t nds, capds;
};

static int copy_datastore(void *ctx, const struct ahl_datastore_rec *d)
{
    struct rec_walk *w = ctx;
    memcpy(w->last, d->id, sizeof w->last);
    w->seen++;
    w->n->datastores++;
    if (w->nds == w->capds) {
        size_t cap = w->capds ? w->capds * 2 : 16;
        struct ahl_datastore_rec *p = realloc(w->ds, cap * sizeof *p);
        if (!p)
            return AHL_ENOMEM;
        w->ds = p;
        w->capds = cap;
    }
    w->ds[w->nds++] = *d;
    if (!w->dtx)
        return 0;
    /* Looked up first: on PostgreSQL a failed insert would abort the whole transaction. */
    struct ahl_datastore_rec have;
    int rc = ahl_store_datastore_get(w->dtx, d->id, &have);
    if (rc < 0 && rc != AHL_ENOTFOUND)
        return rc;
    return ahl_store_datastore_put(w->dtx, d, rc == AHL_ENOTFOUND);
}

static int copy_tag(void *ctx, const char *arn, const char *key, const char *value)
{
    struct rec_walk *w = ctx;
    w->n->tags++;
    return w->dtx ? ahl_store_tag_put(w->dtx, arn, key, value) : 0;
}

static int copy_job(void *ctx, const struct ahl_job_rec *j)
{
    struct rec_walk *w = ctx;
    memcpy(w->last, j->id, sizeof w->last);
    w->seen++;
    w->n->jobs++;
    if (!w->dtx)
        return 0;
    struct ahl_job_rec have;
    int rc = ahl_store_job_get(w->dtx, j->datastore_id, j->id, &have);
    if (rc < 0 && rc != AHL_ENOTFOUND)
        return rc;
    return ahl_store_job_put(w->dtx, j, rc == AHL_ENOTFOUND);
}

/* Walks the data stores, tags and jobs of s, counting them into n and, with dst, upserting them
 * into dst in one transaction. */
static int walk_records(struct mig *g, struct ahl_store *s, struct ahl_store *dst, struct counts *n)
{
    struct ahl_store_tx *tx = NULL;
    struct rec_walk w = {.g = g, .n = n};
    int rc;
    n->datastores = n->tags = n->jobs = 0;
    if ((rc = ahl_store_begin(s, false, &tx)) < 0)
        return rc;
    if (dst && (rc = ahl_store_begin(dst, true, &w.dtx)) < 0)
        goto out;
    do {
        char after[AHL_ID_LEN + 1];
        memcpy(after, w.last, sizeof after);
        w.seen = 0;
        if ((rc = ahl_store_datastore_list(tx, NULL, after, 100, copy_datastore, &w)) < 0)
            goto out;
    } while (w.seen == 100);
    if ((rc = ahl_store_tag_scan(tx, copy_tag, &w)) < 0)
        goto out;
    for (size_t i = 0; i < w.nds; i++) {
        bool first = true;
        do {
            char after[AHL_ID_LEN + 1];
            memcpy(after, w.last, sizeof after);
            w.seen = 0;
            if ((rc = ahl_store_job_list(tx, w.ds[i].id, NULL, first ? NULL : after, 100, copy_job,
                                         &w)) < 0)
                goto out;
            first = false;
        } while (w.seen == 100);
    }
    if (w.dtx) {
        rc = ahl_store_commit(w.dtx);
        w.dtx = NULL;
    }
out:
    ahl_store_rollback(w.dtx);
    ahl_store_rollback(tx);
    free(w.ds);
    return rc;
}

/* Every data store on the target must be one of the source's: the target is empty, or a
 * migration of this source began it. */
static int target_fits(struct mig *g)
{
    struct ahl_store_tx *stx = NULL, *dtx = NULL;
    struct counts n = {0};
    struct rec_walk w = {.g = g, .n = &n};
    int rc;
    if ((rc = ahl_store_begin(g->dst, false, &dtx)) < 0 ||
        (rc = ahl_store_begin(g->src, false, &stx)) < 0)
        goto out;
    do {
        char after[AHL_ID_LEN + 1];
        memcpy(after, w.last, sizeof after);
        w.seen = 0;
        if ((rc = ahl_store_datastore_list(dtx, NULL, after, 100, copy_datastore, &w)) < 0)
            goto out;
    } while (w.seen == 100);
    g->fresh = w.nds == 0;
    for (size_t i = 0; i < w.nds; i++) {
        struct ahl_datastore_rec d;
        if ((rc = ahl_store_datastore_get(stx, w.ds[i].id, &d)) == AHL_ENOTFOUND) {
            say("the target holds data store %s, which the source does not: migrate into an "
                "empty store, or into one that a migration of this source began",
                w.ds[i].id);
            rc = AHL_ECONFLICT;
            goto out;
        }
        if (rc < 0)
            goto out;
    }
out:
    ahl_store_rollback(stx);
    ahl_store_rollback(dtx);
    free(w.ds);
    return rc;
}

/* ---- step 2: frames ----------------------------------------------------------------------------
 */

static void source_problem(void *ctx, const char *line)
{
    (void)ctx;
    printf("source damage: %s\n", line);
}

static void target_problem(void *ctx, const char *line)
{
    (void)ctx;
    printf("target damage: %s\n", line);
}

/* Damage of a frame as the check reports it: AHL_ENOTFOUND or AHL_ECORRUPT with what was found. */
static int frame_damage(const struct ahl_framestore *fs, const char *id, int rc,
                        const struct ahl_err *err, char *problem, size_t cap)
{
    char path[sizeof fs->root + 64];
    ahl_framestore_path(fs, id, path, sizeof path);
    if (rc == AHL_ENOTFOUND)
        snprintf(problem, cap, "%s is missing", path);
    else
        snprintf(problem, cap, "%s (%s)", err->msg, path);
    return rc;
}

/* A failure that stops the work (not damage): recorded once, for the final message. */
static int hard_fail(struct mig *g, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int hard_fail(struct mig *g, int rc, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g->mu);
    if (!g->err.code)
        ahl_fail(&g->err, rc, "%s", msg);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* Copies one frame the source lists, unless the target holds it already: read whole and checked
 * against its id first. Damage is AHL_ENOTFOUND or AHL_ECORRUPT with problem filled. */
static int copy_one(struct mig *g, const struct ahl_meta_frame_ref *ref, char *problem, size_t cap)
{
    uint8_t *data = NULL;
    size_t len = 0;
    uint64_t ticket = 0;
    struct ahl_err err;
    /* Into a store that held nothing when this run began no earlier run copied anything: each
     * frame is written without asking first (on S3 a question costs about what the write does). */
    int rc = g->fresh ? 0 : ahl_framestore_exists(&g->tfs, ref->frame_id);
    if (rc == AHL_EINVAL) {
        snprintf(problem, cap, "its ID is not a frame id the frame store can hold");
        return AHL_ECORRUPT;
    }
    if (rc < 0)
        return hard_fail(g, rc, "frame %s: cannot look for it on the target: %s", ref->frame_id,
                         ahl_strerror(rc));
    if (rc == 1) {
        /* Copied by an earlier run: only its size is wanted, for the count. */
        int fd;
        uint64_t size = 0;
        ahl_err_clear(&err);
        if ((rc = ahl_framestore_open_frame(&g->sfs, ref->frame_id, &fd, &size, &err)) < 0) {
            if (rc == AHL_ENOTFOUND || rc == AHL_ECORRUPT)
                return frame_damage(&g->sfs, ref->frame_id, rc, &err, problem, cap);
            return hard_fail(g, rc, "%s", err.msg);
        }
        close(fd);
        pthread_mutex_lock(&g->mu);
        g->frames_present++;
        g->src_n.frame_bytes += size;
        frames_progress(g, false);
        pthread_mutex_unlock(&g->mu);
        return 0;
    }
    ahl_err_clear(&err);
    rc = ahl_framestore_read_verified(&g->sfs, ref->frame_id, ref->stored_transfer_syntax, &data,
                                      &len, &err);
    if (rc == AHL_ENOTFOUND || rc == AHL_ECORRUPT)
        return frame_damage(&g->sfs, ref->frame_id, rc, &err, problem, cap);
    if (rc < 0)
        return hard_fail(g, rc, "%s", err.msg);
    if (ref->size != UINT64_MAX && ref->size != len) {
        free(data);
        snprintf(problem, cap, "its FrameSizeInBytes is %" PRIu64 ", the stored frame has %zu",
                 ref->size, len);
        return AHL_ECORRUPT;
    }
    ahl_err_clear(&err);
    rc = ahl_framestore_write(&g->tfs, &g->sync, ref->frame_id, data, len, &ticket, &err);
    free(data);
    if (rc < 0)
        return hard_fail(g, rc, "writing frame %s to the target: %s", ref->frame_id, err.msg);
    pthread_mutex_lock(&g->mu);
    if (ticket > g->ticket)
        g->ticket = ticket;
    g->frames_copied++;
    g->frame_bytes_copied += len;
    g->src_n.frame_bytes += len;
    frames_progress(g, false);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

/* Reads one frame of the target whole, checked against its id, and counts its bytes. */
static int verify_one(struct mig *g, const struct ahl_meta_frame_ref *ref, char *problem,
                      size_t cap)
{
    uint8_t *data = NULL;
    size_t len = 0;
    struct ahl_err err;
    ahl_err_clear(&err);
    int rc = ahl_framestore_read_verified(&g->tfs, ref->frame_id, ref->stored_transfer_syntax,
                                          &data, &len, &err);
    if (rc == AHL_EINVAL) {
        snprintf(problem, cap, "its ID is not a frame id the frame store can hold");
        return AHL_ECORRUPT;
    }
    if (rc == AHL_ENOTFOUND || rc == AHL_ECORRUPT)
        return frame_damage(&g->tfs, ref->frame_id, rc, &err, problem, cap);
    if (rc < 0)
        return hard_fail(g, rc, "%s", err.msg);
    free(data);
    if (ref->size != UINT64_MAX && ref->size != len) {
        snprintf(problem, cap, "its FrameSizeInBytes is %" PRIu64 ", the stored frame has %zu",
                 ref->size, len);
        return AHL_ECORRUPT;
    }
    pthread_mutex_lock(&g->mu);
    g->dst_n.frame_bytes += len;
    pthread_mutex_unlock(&g->mu);
    return 0;
}

/* ---- frames copied and verified by several threads ----
 *
 * The check walks the versions in one thread and hands each distinct frame to its verifier; here
 * the verifier only queues the frame, and g->threads workers copy (or verify) the queued frames
 * at once, since against S3 each frame costs a round trip or two. A damaged frame a worker finds
 * is reported as the check reports damage, and counted; a failure stops the queue, and the
 * verifier then fails the check with it. */

#define QUEUE_CAP 64
#define MAX_THREADS 64

struct frame_job {
    char imageset_id[AHL_ID_LEN + 1];
    uint64_t version;
    char where[512];
    char frame_id[AHL_ID_LEN + 1];
    char ts[65];
    uint64_t size;
};

struct pool {
    struct mig *g;
    int (*work)(struct mig *g, const struct ahl_meta_frame_ref *ref, char *problem, size_t cap);
    const char *side; /* "source" or "target", for damage lines */
    pthread_mutex_t mu;
    pthread_cond_t cv_item, cv_space, cv_done;
    struct frame_job q[QUEUE_CAP];
    size_t head, n;
    unsigned busy;
    bool closing;
    int rc;       /* the first failure */
    uint64_t bad; /* damaged frames found */
    pthread_t th[MAX_THREADS];
    unsigned nth;
};

static void *pool_worker(void *arg)
{
    struct pool *p = arg;
    char problem[900];
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->n && !p->closing)
            pthread_cond_wait(&p->cv_item, &p->mu);
        if (!p->n)
            break;
        struct frame_job j = p->q[p->head];
        p->head = (p->head + 1) % QUEUE_CAP;
        p->n--;
        p->busy++;
        pthread_cond_signal(&p->cv_space);
        pthread_mutex_unlock(&p->mu);
        struct ahl_meta_frame_ref ref = {.imageset_id = j.imageset_id,
                                         .version = j.version,
                                         .where = j.where,
                                         .frame_id = j.frame_id,
                                         .stored_transfer_syntax = j.ts,
                                         .size = j.size};
        problem[0] = '\0';
        int rc = p->work(p->g, &ref, problem, sizeof problem);
        pthread_mutex_lock(&p->mu);
        p->busy--;
        if (rc == AHL_ENOTFOUND || rc == AHL_ECORRUPT) {
            printf("%s damage: image set %s version %" PRIu64 ": %s frame %s: %s\n", p->side,
                   j.imageset_id, j.version, j.where, j.frame_id, problem);
            p->bad++;
        } else if (rc < 0 && !p->rc) {
            p->rc = rc;
        }
        if (!p->n && !p->busy)
            pthread_cond_broadcast(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* The check's frame verifier: queues the frame for the workers. */
static int pool_queue(void *ctx, const struct ahl_meta_frame_ref *ref, char *problem, size_t cap)
{
    struct pool *p = ctx;
    (void)problem;
    (void)cap;
    pthread_mutex_lock(&p->mu);
    while (p->n == QUEUE_CAP && !p->rc)
        pthread_cond_wait(&p->cv_space, &p->mu);
    int rc = p->rc;
    if (!rc) {
        struct frame_job *j = &p->q[(p->head + p->n) % QUEUE_CAP];
        snprintf(j->imageset_id, sizeof j->imageset_id, "%s", ref->imageset_id);
        j->version = ref->version;
        snprintf(j->where, sizeof j->where, "%s", ref->where);
        snprintf(j->frame_id, sizeof j->frame_id, "%s", ref->frame_id);
        snprintf(j->ts, sizeof j->ts, "%s", ref->stored_transfer_syntax);
        j->size = ref->size;
        p->n++;
        pthread_cond_signal(&p->cv_item);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int pool_start(struct pool *p, struct mig *g,
                      int (*work)(struct mig *, const struct ahl_meta_frame_ref *, char *, size_t),
                      const char *side)
{
    memset(p, 0, sizeof *p);
    p->g = g;
    p->work = work;
    p->side = side;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_item, NULL);
    pthread_cond_init(&p->cv_space, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    for (; p->nth < g->threads; p->nth++)
        if (pthread_create(&p->th[p->nth], NULL, pool_worker, p) != 0)
            break;
    return p->nth ? 0 : AHL_ENOMEM;
}

/* Waits until every queued frame is done, stops the workers, and returns the first failure. */
static int pool_finish(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->n || p->busy)
        pthread_cond_wait(&p->cv_done, &p->mu);
    p->closing = true;
    pthread_cond_broadcast(&p->cv_item);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nth; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_item);
    pthread_cond_destroy(&p->cv_space);
    pthread_cond_destroy(&p->cv_done);
    return p->rc;
}

/* Runs the check of m with its frames handed to work by the pool's threads. */
static int check_with_pool(struct mig *g, struct ahl_meta *m,
                           int (*work)(struct mig *, const struct ahl_meta_frame_ref *, char *,
                                       size_t),
                           const char *side, ahl_meta_report_cb report,
                           struct ahl_meta_check_stats *st, uint64_t *bad)
{
    struct pool p;
    int rc = pool_start(&p, g, work, side);
    if (rc < 0)
        return rc;
    struct ahl_meta_check_opts opts = {.verify_frame = pool_queue, .verify_ctx = &p};
    rc = ahl_meta_check_with(m, &opts, report, NULL, st);
    /* A worker's failure stops the check through the verifier: its code is the one to report. */
    int prc = pool_finish(&p);
    *bad = p.bad;
    if (prc < 0)
        return prc;
    /* Frames found damaged by a worker were counted sound when queued. */
    st->frames -= p.bad < st->frames ? p.bad : st->frames;
    st->problems += p.bad;
    return rc == 0 && p.bad ? AHL_ECORRUPT : rc;
}

static int copy_frames(struct mig *g)
{
    struct ahl_meta_check_stats st;
    uint64_t bad = 0;
    memset(&st, 0, sizeof st);
    g->step_t0 = ahl_mono_ns();
    say("copying frames (the source's check walks every version of every image set; %u "
        "thread%s copy)",
        g->threads, g->threads == 1 ? "" : "s");
    int rc = check_with_pool(g, g->srcm, copy_one, "source", source_problem, &st, &bad);
    frames_progress(g, true);
    g->src_problems = st.problems;
    g->src_n.chunks = st.chunks;
    g->src_n.versions = st.versions;
    g->src_n.frames = st.frames;
    if (rc < 0 && rc != AHL_ECORRUPT) {
        if (!g->err.code)
            ahl_fail(&g->err, rc, "the source's check stopped: %s", ahl_strerror(rc));
        return rc;
    }
    if (st.problems)
        say("the source has %" PRIu64 " problem%s (the 'source damage:' lines): what is "
            "damaged there is not copied",
            st.problems, st.problems == 1 ? "" : "s");
    /* Every frame written is made durable before any version naming it is committed. */
    if ((rc = ahl_framestore_sync(&g->sync, g->ticket, &g->err)) < 0)
        return rc;
    return 0;
}

/* ---- step 3: chunks ----------------------------------------------------------------------------
 */

static int copy_chunk(void *ctx, const struct ahl_chunk *c)
{
    struct mig *g = ctx;
    int rc = ahl_store_chunk_put(g->dtx, c);
    if (rc < 0)
        return rc;
    g->chunks_done++;
    g->batch_bytes += c->len;
    if (++g->batch_n >= CHUNK_BATCH || g->batch_bytes >= CHUNK_BATCH_BYTES) {
        rc = ahl_store_commit(g->dtx);
        g->dtx = NULL;
        g->batch_n = 0;
        g->batch_bytes = 0;
        if (rc < 0 || (rc = ahl_store_begin(g->dst, true, &g->dtx)) < 0)
            return rc;
        if (progress_due(g, false))
            say("chunks: %" PRIu64 " / %" PRIu64 " copied", g->chunks_done, g->src_n.chunks);
    }
    return 0;
}

static int chunk_stats(struct ahl_store *s, uint64_t *count, uint64_t *bytes)
{
    struct ahl_store_tx *tx = NULL;
    int rc = ahl_store_begin(s, false, &tx);
    if (rc == 0)
        rc = ahl_store_chunk_stats(tx, count, bytes);
    ahl_store_rollback(tx);
    return rc;
}

static int copy_chunks(struct mig *g)
{
    uint64_t sn, sb, dn, db;
    struct ahl_store_tx *stx = NULL;
    int rc;
    if ((rc = chunk_stats(g->src, &sn, &sb)) < 0 || (rc = chunk_stats(g->dst, &dn, &db)) < 0)
        return rc;
    g->src_n.chunks = sn;
    g->src_n.chunk_bytes = sb;
    if (sn == dn && sb == db) {
        say("chunks: the target holds all %" PRIu64 " already", sn);
        return 0;
    }
    say("copying %" PRIu64 " chunks (%.1f MB)", sn, (double)sb / 1e6);
    if ((rc = ahl_store_begin(g->src, false, &stx)) < 0 ||
        (rc = ahl_store_begin(g->dst, true, &g->dtx)) < 0)
        goto out;
    g->batch_n = 0;
    g->batch_bytes = 0;
    if ((rc = ahl_store_chunk_scan(stx, copy_chunk, g)) < 0)
        goto out;
    rc = ahl_store_commit(g->dtx);
    g->dtx = NULL;
out:
    ahl_store_rollback(g->dtx);
    g->dtx = NULL;
    ahl_store_rollback(stx);
    return rc;
}

/* ---- step 4: image sets ------------------------------------------------------------------------
 */

static int collect_set(void *ctx, const struct ahl_version_rec *v)
{
    struct mig *g = ctx;
    if (g->nsets && !strcmp(g->sets[g->nsets - 1].id, v->imageset_id))
        return 0;
    if (g->nsets == g->capsets) {
        size_t cap = g->capsets ? g->capsets * 2 : 256;
        struct set_id *p = realloc(g->sets, cap * sizeof *p);
        if (!p)
            return AHL_ENOMEM;
        g->sets = p;
        g->capsets = cap;
    }
    memcpy(g->sets[g->nsets++].id, v->imageset_id, AHL_ID_LEN + 1);
    return 0;
}

/* The sets of the source that have versions, deleted ones too, in id order. */
static int list_sets(struct mig *g)
{
    struct ahl_store_tx *tx = NULL;
    int rc = ahl_store_begin(g->src, false, &tx);
    if (rc == 0)
        rc = ahl_store_version_scan(tx, collect_set, g);
    ahl_store_rollback(tx);
    return rc;
}

static int copy_set(struct mig *g, const char *id)
{
    struct set_rows r;
    struct ahl_imageset_rec have;
    struct ahl_store_tx *tx = NULL;
    int rc;
    if ((rc = read_set(g->src, id, &r)) < 0)
        return ahl_fail(&g->err, rc, "image set %s: reading it from the source: %s", id,
                        ahl_strerror(rc));
    if ((rc = ahl_store_begin(g->dst, true, &tx)) < 0)
        goto out;
    rc = ahl_store_imageset_get(tx, NULL, id, &have);
    if (rc == 0 && set_equal(&have, &r.set)) {
        g->sets_skipped++; /* written by an earlier run, in one transaction with all its rows */
        goto out;
    }
    if (rc < 0 && rc != AHL_ENOTFOUND)
        goto out;
    if ((rc = ahl_store_imageset_put(tx, &r.set, rc == AHL_ENOTFOUND)) < 0)
        goto out;
    for (size_t i = r.nver; i-- > 0;) {
        struct ahl_version_rec v;
        rc = ahl_store_version_get(tx, id, r.ver[i].version, &v);
        if (rc == 0)
            rc = version_equal(&v, &r.ver[i]) ? 0 : ahl_store_version_update(tx, &r.ver[i]);
        else if (rc == AHL_ENOTFOUND)
            rc = ahl_store_version_put(tx, &r.ver[i]);
        if (rc < 0)
            goto out;
    }
    rc = r.has_search ? ahl_store_search_put(tx, &r.search) : ahl_store_search_delete(tx, id);
    if (rc < 0 && rc != AHL_ENOTFOUND)
        goto out;
    for (size_t i = 0; i < r.nfr; i++)
        if ((rc = ahl_store_frame_put(tx, &r.fr[i])) < 0)
            goto out;
    /* The QIDO rows carry the time of the commit that wrote them, which later changes of the
     * set's row without a version do not move: the source's own time is kept. */
    struct ahl_imageset_rec q = r.set;
    if (r.has_qido)
        q.updated_at_ms = r.qido.updated_at_ms;
    if ((rc = ahl_meta_qido_index(g->dstm, tx, &q)) < 0)
        goto out;
    rc = ahl_store_commit(tx);
    tx = NULL;
out:
    ahl_store_rollback(tx);
    set_rows_release(&r);
    if (rc < 0 && !g->err.code)
        ahl_fail(&g->err, rc, "image set %s: writing it to the target: %s", id, ahl_strerror(rc));
    return rc;
}

static int copy_sets(struct mig *g)
{
    int rc;
    if ((rc = list_sets(g)) < 0)
        return rc;
    g->step_t0 = ahl_mono_ns();
    say("copying %zu image sets", g->nsets);
    for (size_t i = 0; i < g->nsets; i++) {
        if ((rc = copy_set(g, g->sets[i].id)) < 0)
            return rc;
        g->sets_done++;
        sets_progress(g, false);
    }
    sets_progress(g, true);
    return 0;
}

/* ---- verifying ---------------------------------------------------------------------------------
 */

static int print_db_problem(void *ctx, const char *text)
{
    struct mig *g = ctx;
    while (*text) {
        size_t n = strcspn(text, "\n");
        if (n && strncmp(text, "*** in database ", 16) != 0) {
            printf("target damage: database: %.*s\n", (int)n, text);
            g->dst_problems++;
        }
        text += n + (text[n] == '\n');
    }
    return 0;
}

struct set_count {
    struct counts *n;
    char last[AHL_ID_LEN + 1];
};

static int count_set(void *ctx, const struct ahl_version_rec *v)
{
    struct set_count *c = ctx;
    if (!c->n->versions++ || strcmp(c->last, v->imageset_id))
        c->n->sets++;
    memcpy(c->last, v->imageset_id, sizeof c->last);
    return 0;
}

/* Sets (those with versions) and versions of a store. */
static int count_sets(struct ahl_store *s, struct counts *n)
{
    struct ahl_store_tx *tx = NULL;
    struct set_count c = {.n = n};
    n->sets = n->versions = 0;
    int rc = ahl_store_begin(s, false, &tx);
    if (rc == 0)
        rc = ahl_store_version_scan(tx, count_set, &c);
    ahl_store_rollback(tx);
    return rc;
}

static int verify(struct mig *g)
{
    int rc;
    g->step_t0 = ahl_mono_ns();
    say("verifying: comparing every image set's rows");
    for (size_t i = 0; i < g->nsets; i++) {
        struct set_rows a, b;
        if ((rc = read_set(g->src, g->sets[i].id, &a)) < 0)
            return rc;
        rc = read_set(g->dst, g->sets[i].id, &b);
        const char *what = rc == AHL_ENOTFOUND ? "the whole set" : NULL;
        if (rc < 0 && rc != AHL_ENOTFOUND) {
            set_rows_release(&a);
            return rc;
        }
        if (rc == 0)
            what = set_rows_differ(&a, &b);
        if (what) {
            printf("difference: image set %s: %s differs on the target\n", g->sets[i].id, what);
            g->differences++;
        }
        set_rows_release(&a);
        set_rows_release(&b);
    }
    say("verifying: checking the target as `ahilite check` does (every chunk, version, frame)");
    struct ahl_meta_check_stats st;
    uint64_t bad = 0;
    memset(&st, 0, sizeof st);
    unsigned db_problems = 0;
    rc = ahl_store_sqlite_integrity_check(g->dst, false, print_db_problem, g, &db_problems);
    if (rc < 0 && rc != AHL_ECORRUPT && rc != AHL_EINVAL)
        return rc;
    rc = check_with_pool(g, g->dstm, verify_one, "target", target_problem, &st, &bad);
    if (rc < 0 && rc != AHL_ECORRUPT)
        return rc;
    g->dst_problems += st.problems;
    g->dst_n.frames = st.frames;
    uint64_t versions_checked = st.versions;
    if ((rc = chunk_stats(g->dst, &g->dst_n.chunks, &g->dst_n.chunk_bytes)) < 0 ||
        (rc = count_sets(g->src, &g->src_n)) < 0 || (rc = count_sets(g->dst, &g->dst_n)) < 0 ||
        (rc = walk_records(g, g->src, NULL, &g->src_n)) < 0 ||
        (rc = walk_records(g, g->dst, NULL, &g->dst_n)) < 0)
        return rc;
    if (versions_checked != g->dst_n.versions)
        g->differences++;
    return 0;
}

static void print_counts(struct mig *g)
{
    static const struct {
        const char *name;
        size_t off;
    } rows[] = {
        {"data stores", offsetof(struct counts, datastores)},
        {"tags", offsetof(struct counts, tags)},
        {"import jobs", offsetof(struct counts, jobs)},
        {"image sets", offsetof(struct counts, sets)},
        {"versions", offsetof(struct counts, versions)},
        {"chunks", offsetof(struct counts, chunks)},
        {"chunk bytes", offsetof(struct counts, chunk_bytes)},
        {"frames", offsetof(struct counts, frames)},
        {"frame bytes", offsetof(struct counts, frame_bytes)},
    };
    printf("%-12s %16s %16s\n", "", "source", "target");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint64_t a, b;
        memcpy(&a, (const char *)&g->src_n + rows[i].off, sizeof a);
        memcpy(&b, (const char *)&g->dst_n + rows[i].off, sizeof b);
        printf("%-12s %16" PRIu64 " %16" PRIu64 "%s\n", rows[i].name, a, b,
               a == b ? "" : "  DIFFERENT");
        if (a != b)
            g->differences++;
    }
}

/* ---- the command -------------------------------------------------------------------------------
 */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ahilite migrate --from DATA_DIR --to TARGET [--to-data-dir DIR]\n"
            "                       [--blob-store s3://BUCKET/PREFIX --s3-endpoint URL]\n\n"
            "Copies everything the embedded install in DATA_DIR holds (its SQLite database and\n"
            "frame files) onto another store, then verifies the copy. Stop the server on\n"
            "DATA_DIR first: the source is read without writing, and refused while open.\n"
            "An interrupted run continues where it stopped when started again.\n\n"
            "  --from DATA_DIR     the data directory to copy (read only)\n"
            "  --to TARGET         a PostgreSQL URI (postgresql://...), or a data directory\n"
            "                      (SQLite, created if missing)\n"
            "  --to-data-dir DIR   the target's data directory, for its frames (DIR/frames) when\n"
            "                      no --blob-store is given (default: TARGET when it is a\n"
            "                      directory; required with a PostgreSQL TARGET and no\n"
            "                      --blob-store)\n"
            "  --blob-store URI    put the frames in this S3 bucket (s3://BUCKET/PREFIX)\n"
            "  --s3-endpoint URL   the S3-compatible endpoint of --blob-store\n"
            "  --threads N         frames copied, and verified, at once (default 8, at most\n"
            "                      %d)\n\n"
            "Progress goes to stderr; the counts of both sides and any difference or damage\n"
            "to stdout. Exit status: 0 the copy is complete and sound, 1 a difference, damage\n"
            "or a failure, 2 usage or a store that cannot be opened.\n",
            MAX_THREADS);
}

int ahl_cmd_migrate(int argc, char **argv)
{
    const char *from = NULL, *to = NULL, *to_data_dir = NULL, *blob_store = NULL,
               *s3_endpoint = NULL, *threads = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **opt = !strcmp(a, "--from")          ? &from
                           : !strcmp(a, "--to")          ? &to
                           : !strcmp(a, "--to-data-dir") ? &to_data_dir
                           : !strcmp(a, "--blob-store")  ? &blob_store
                           : !strcmp(a, "--s3-endpoint") ? &s3_endpoint
                           : !strcmp(a, "--threads")     ? &threads
                                                         : NULL;
        if (opt && i + 1 < argc) {
            *opt = argv[++i];
            continue;
        }
        bool help = !strcmp(a, "--help") || !strcmp(a, "-h");
        if (!help)
            fprintf(stderr, "ahilite migrate: unknown or incomplete option %s\n", a);
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    if (!from || !to) {
        usage(stderr);
        return 2;
    }
    bool to_postgres = ahl_store_is_postgres(to);
    if (!to_data_dir && !to_postgres)
        to_data_dir = to;
    if (!to_data_dir && !(blob_store && *blob_store)) {
        fprintf(stderr, "ahilite migrate: a PostgreSQL target needs --blob-store for its frames, "
                        "or --to-data-dir DIR to keep them in DIR/frames\n");
        return 2;
    }
    if ((blob_store && *blob_store) != (s3_endpoint && *s3_endpoint)) {
        fprintf(stderr, "ahilite migrate: give --blob-store and --s3-endpoint together\n");
        return 2;
    }

    struct mig g;
    char scratch[4096] = "";
    memset(&g, 0, sizeof g);
    g.threads = 8;
    if (threads) {
        char *end;
        unsigned long n = strtoul(threads, &end, 10);
        if (*end || !*threads || n < 1 || n > MAX_THREADS) {
            fprintf(stderr, "ahilite migrate: --threads takes 1..%d\n", MAX_THREADS);
            return 2;
        }
        g.threads = (unsigned)n;
    }
    ahl_err_clear(&g.err);
    g.t0 = ahl_mono_ns();
    int status = 2, rc;
    char path[4200];
    struct stat sa, sb;
    if (!to_postgres && stat(from, &sa) == 0 && stat(to, &sb) == 0 && sa.st_dev == sb.st_dev &&
        sa.st_ino == sb.st_ino) {
        fprintf(stderr, "ahilite migrate: --from and --to name the same directory\n");
        return 2;
    }
    pthread_mutex_init(&g.mu, NULL);
    if ((rc = ahl_store_open_sqlite_read_only(from, 2, &g.src)) < 0) {
        fprintf(stderr, "ahilite migrate: cannot open the source in %s: %s\n", from,
                ahl_strerror(rc));
        goto out;
    }
    /* Sets queued for indexing (a schema upgrade no server finished) would be indexed by a
     * write: the source must be served once first. */
    struct ahl_store_tx *tx = NULL;
    char queued[AHL_ID_LEN + 1];
    if ((rc = ahl_store_begin(g.src, false, &tx)) == 0) {
        rc = ahl_store_frame_backfill_next(tx, queued);
        if (rc == AHL_ENOTFOUND)
            rc = ahl_store_qido_backfill_next(tx, queued);
        ahl_store_rollback(tx);
    }
    if (rc != AHL_ENOTFOUND) {
        fprintf(stderr,
                "ahilite migrate: %s%s: start and stop `ahilite serve` on %s once, then run "
                "this again\n",
                rc == 0 ? "the source has image sets not yet indexed since an upgrade, e.g. "
                        : "cannot read the source: ",
                rc == 0 ? queued : ahl_strerror(rc), from);
        goto out;
    }
    snprintf(path, sizeof path, "%s/frames", from);
    if (ahl_framestore_attach(&g.sfs, path, &g.err) < 0) {
        fprintf(stderr, "ahilite migrate: %s\n", g.err.msg);
        goto out;
    }
    if ((rc = ahl_meta_open(g.src, NULL, &g.srcm)) < 0) {
        fprintf(stderr, "ahilite migrate: cannot read the source's metadata: %s\n",
                ahl_strerror(rc));
        goto out;
    }
    rc = ahl_store_open(to_postgres ? to : NULL, to_postgres ? to_data_dir : to, 0, &g.dst);
    if (rc < 0) {
        fprintf(stderr, "ahilite migrate: cannot open the target: %s\n", ahl_strerror(rc));
        goto out;
    }
    if ((rc = ahl_meta_open(g.dst, NULL, &g.dstm)) < 0) {
        fprintf(stderr, "ahilite migrate: cannot open the target's metadata: %s\n",
                ahl_strerror(rc));
        goto out;
    }
    /* Frames in a bucket need a directory only for temporary files: a private one when the
     * target has no data directory. */
    if (!to_data_dir) {
        const char *t = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/ahilite-migrate-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(scratch)) {
            fprintf(stderr, "ahilite migrate: cannot make a temporary directory in %s: %s\n",
                    t && *t ? t : "/tmp", strerror(errno));
            goto out;
        }
        to_data_dir = scratch;
    } else if (mkdir(to_data_dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "ahilite migrate: cannot create %s: %s\n", to_data_dir, strerror(errno));
        goto out;
    }
    if (ahl_framestore_open_dir(&g.tfs, to_data_dir, blob_store, s3_endpoint, false, &g.err) < 0) {
        fprintf(stderr, "ahilite migrate: the target's frames: %s\n", g.err.msg);
        goto out;
    }
    if ((rc = ahl_framestore_sync_open(&g.tfs, &g.sync, &g.err)) < 0) {
        fprintf(stderr, "ahilite migrate: the target's frames: %s\n", g.err.msg);
        goto out;
    }
    g.sync_open = true;
    if ((rc = target_fits(&g)) < 0)
        goto out;

    status = 1;
    say("copying data stores, tags and import jobs");
    if ((rc = walk_records(&g, g.src, g.dst, &g.src_n)) < 0) {
        ahl_fail(&g.err, rc, "copying data stores, tags and jobs: %s", ahl_strerror(rc));
        goto fail;
    }
    if ((rc = copy_frames(&g)) < 0 || (rc = copy_chunks(&g)) < 0 || (rc = copy_sets(&g)) < 0)
        goto fail;
    if ((rc = verify(&g)) < 0) {
        if (!g.err.code)
            ahl_fail(&g.err, rc, "verifying: %s", ahl_strerror(rc));
        goto fail;
    }
    print_counts(&g);
    printf("migrated in %.1f s: %" PRIu64 " frames copied (%.1f MB), %" PRIu64
           " already there; %zu image sets, %" PRIu64 " already there; %" PRIu64
           " difference%s, %" PRIu64 " problem%s on the target, %" PRIu64 " on the source\n",
           secs(g.t0), g.frames_copied, (double)g.frame_bytes_copied / 1e6, g.frames_present,
           g.nsets, g.sets_skipped, g.differences, g.differences == 1 ? "" : "s", g.dst_problems,
           g.dst_problems == 1 ? "" : "s", g.src_problems);
    status = g.differences || g.dst_problems || g.src_problems ? 1 : 0;
    goto out;
fail:
    fprintf(stderr, "ahilite migrate: %s (run it again to continue)\n",
            g.err.code ? g.err.msg : ahl_strerror(rc));
out:
    if (g.sync_open)
        ahl_framestore_sync_close(&g.sync);
    ahl_meta_close(g.dstm);
    ahl_store_close(g.dst);
    ahl_meta_close(g.srcm);
    ahl_store_close(g.src);
    ahl_framestore_close(&g.tfs);
    ahl_framestore_close(&g.sfs);
    if (*scratch) {
        snprintf(path, sizeof path, "%s/tmp", scratch);
        rmdir(path);
        rmdir(scratch);
    }
    free(g.sets);
    pthread_mutex_destroy(&g.mu);
    return status;
}
