/* The accesses of image sets recorded by reads, held in memory and written in batches
 * (access.h; docs/decisions.md#storage-tier-and-last-access).
 *
 * A read calls ahl_meta_touch after its transaction ended. Most calls cost a comparison (the
 * stored access is of today) or a lookup under the table's lock (the table has today's). The
 * first read of a set on a day puts it in the table, dirty; a flush copies the dirty entries
 * out under the lock, writes them in one write transaction with the lock released, then marks
 * clean the entries it wrote that no touch moved meanwhile. Clean entries stay, so that a set
 * read again today costs nothing even when the reader did not read its stored value, until a
 * new set needs their room (the least recently recorded clean entry goes first).
 */
#include "meta/access.h"
#include "meta/engine_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/banned.h"

/* A flushed access: what the flush wrote. */
struct flushed {
    char id[AHL_ID_LEN + 1];
    int64_t ms;
};

const char *ahl_storage_tier_name(enum ahl_storage_tier t)
{
    return t == AHL_TIER_ARCHIVE_INSTANT_ACCESS ? "ARCHIVE_INSTANT_ACCESS" : "FREQUENT_ACCESS";
}

static int64_t day_of(int64_t ms)
{
    return ms / AHL_DAY_MS;
}

/* The entry of id, or NULL. Under a->mu. */
static struct ahl__access_entry *find(struct ahl__access *a, const char *id, uint64_t h)
{
    if (!a->pool)
        return NULL;
    for (struct ahl_lru_link *l = *ahl_lru_bucket(&a->lru, h); l; l = l->next_in_bucket) {
        struct ahl__access_entry *e = AHL_LRU_ENTRY(l, struct ahl__access_entry, link);
        if (l->hash == h && !strcmp(e->id, id))
            return e;
    }
    return NULL;
}

/* Room for one more entry: an unused one of the pool, or the oldest clean entry taken out of
 * the table. NULL when every entry holds an access not yet written. Under a->mu. */
static struct ahl__access_entry *room(struct ahl__access *a)
{
    if (a->used < a->cap)
        return &a->pool[a->used++];
    for (struct ahl_lru_link *l = a->lru.oldest; l; l = l->newer) {
        struct ahl__access_entry *e = AHL_LRU_ENTRY(l, struct ahl__access_entry, link);
        if (!e->dirty) {
            ahl_lru_remove(&a->lru, l);
            return e;
        }
    }
    return NULL;
}

/* Records the access (id, now) in the table. 1 when recorded or already there, 0 when the table
 * has no room. Under a->mu. */
static int record(struct ahl__access *a, const char *id, uint64_t h, int64_t now)
{
    struct ahl__access_entry *e = find(a, id, h);
    if (e) {
        if (day_of(e->ms) >= day_of(now))
            return 1;
        e->ms = now;
        if (!e->dirty)
            a->pending++;
        e->dirty = true;
        ahl_lru_touch(&a->lru, &e->link);
        a->recorded++;
        return 1;
    }
    if (!a->pool && !(a->pool = calloc(a->cap, sizeof *a->pool)))
        return 0;
    if (!(e = room(a)))
        return 0;
    memset(e, 0, sizeof *e);
    memcpy(e->id, id, sizeof e->id - 1);
    e->ms = now;
    e->dirty = true;
    ahl_lru_insert(&a->lru, &e->link, h);
    a->pending++;
    a->recorded++;
    return 1;
}

void ahl_meta_touch(struct ahl_meta *m, const char *imageset_id, int64_t stored_ms)
{
    struct ahl__access *a = &m->access;
    int64_t now = ahl_now_ms();
    if (!imageset_id || strlen(imageset_id) != AHL_ID_LEN)
        return;
    if (stored_ms >= 0 && day_of(stored_ms) >= day_of(now))
        return;
    uint64_t h = ahl_lru_hash(imageset_id);
    pthread_mutex_lock(&a->mu);
    int done = record(a, imageset_id, h, now);
    pthread_mutex_unlock(&a->mu);
    if (done)
        return;
    /* Full of accesses not yet written: write them (one transaction for cap sets), then
     * record this one in the room made. */
    struct ahl_err err = {0};
    int rc = ahl_meta_access_flush(m, &err);
    pthread_mutex_lock(&a->mu);
    done = rc == 0 && record(a, imageset_id, h, now);
    if (!done)
        a->dropped++;
    pthread_mutex_unlock(&a->mu);
    if (!done)
        ahl_warn("storage tiers: the access of image set %s was not recorded: %s", imageset_id,
                 rc < 0 ? err.msg : "no room in the access table");
}

int64_t ahl_meta_last_access(struct ahl_meta *m, const char *imageset_id, int64_t stored_ms)
{
    struct ahl__access *a = &m->access;
    int64_t ms = stored_ms;
    if (!imageset_id)
        return ms;
    uint64_t h = ahl_lru_hash(imageset_id);
    pthread_mutex_lock(&a->mu);
    struct ahl__access_entry *e = find(a, imageset_id, h);
    if (e && e->ms > ms)
        ms = e->ms;
    pthread_mutex_unlock(&a->mu);
    return ms;
}

enum ahl_storage_tier ahl_meta_storage_tier(const struct ahl_meta *m, int64_t last_ms)
{
    int64_t idle = ahl_now_ms() - last_ms;
    return idle >= (int64_t)m->opts.archive_days * AHL_DAY_MS ? AHL_TIER_ARCHIVE_INSTANT_ACCESS
                                                              : AHL_TIER_FREQUENT_ACCESS;
}

/* Copies the dirty entries into out (room for a->cap). Under a->mu. */
static size_t snapshot(struct ahl__access *a, struct flushed *out)
{
    size_t n = 0;
    for (struct ahl_lru_link *l = a->lru.newest; l && n < a->cap; l = l->older) {
        struct ahl__access_entry *e = AHL_LRU_ENTRY(l, struct ahl__access_entry, link);
        if (!e->dirty)
            continue;
        memcpy(out[n].id, e->id, sizeof out[n].id);
        out[n].ms = e->ms;
        n++;
    }
    return n;
}

static int write_all(struct ahl_meta *m, const struct flushed *v, size_t n, struct ahl_err *err)
{
    struct ahl_store_tx *tx = NULL;
    int rc = ahl_store_begin(m->store, true, &tx);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = ahl_store_imageset_touch(tx, v[i].id, v[i].ms);
    if (rc == 0)
        rc = ahl_store_commit(tx);
    else
        ahl_store_rollback(tx);
    return rc < 0 ? ahl_meta_store_fail(err, rc, "recording image set accesses") : 0;
}

int ahl_meta_access_flush(struct ahl_meta *m, struct ahl_err *err)
{
    struct ahl__access *a = &m->access;
    struct flushed *v = NULL;
    size_t n = 0;
    int rc = 0;

    pthread_mutex_lock(&a->flush_mu);
    pthread_mutex_lock(&a->mu);
    if (a->pending && (v = malloc(a->pending * sizeof *v)))
        n = snapshot(a, v);
    else if (a->pending)
        rc = ahl_fail(err, AHL_ENOMEM, "recording image set accesses: out of memory");
    pthread_mutex_unlock(&a->mu);
    if (n)
        rc = write_all(m, v, n, err);
    pthread_mutex_lock(&a->mu);
    if (rc < 0) {
        a->flush_failures++;
    } else if (n) {
        a->flushes++;
        a->sets_written += n;
        /* An entry a touch moved since the snapshot stays dirty, for the next flush. */
        for (size_t i = 0; i < n; i++) {
            struct ahl__access_entry *e = find(a, v[i].id, ahl_lru_hash(v[i].id));
            if (e && e->dirty && e->ms == v[i].ms) {
                e->dirty = false;
                a->pending--;
            }
        }
    }
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_unlock(&a->flush_mu);
    if (n && rc == 0)
        ahl_info("storage tiers: recorded the last access of %zu image set%s", n,
                 n == 1 ? "" : "s");
    free(v);
    return rc;
}

void ahl_meta_access_stats(struct ahl_meta *m, struct ahl_meta_access_stats *out)
{
    struct ahl__access *a = &m->access;
    pthread_mutex_lock(&a->mu);
    out->recorded = a->recorded;
    out->flushes = a->flushes;
    out->sets_written = a->sets_written;
    out->flush_failures = a->flush_failures;
    out->dropped = a->dropped;
    out->entries = a->lru.count;
    out->pending = a->pending;
    pthread_mutex_unlock(&a->mu);
}

/* ---- the flusher thread --------------------------------------------------------------------- */

static void *flusher(void *arg)
{
    struct ahl_meta *m = arg;
    struct ahl__access *a = &m->access;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        struct timespec until =
            ahl_deadline(CLOCK_MONOTONIC, (uint64_t)m->opts.access_flush_ms * 1000);
        int w = 0;
        while (!a->stop && w != ETIMEDOUT)
            w = pthread_cond_timedwait(&a->cv, &a->mu, &until);
        if (a->stop || !a->pending)
            continue;
        pthread_mutex_unlock(&a->mu);
        struct ahl_err err = {0};
        if (ahl_meta_access_flush(m, &err) < 0)
            ahl_warn("storage tiers: %s; retrying at the next flush", err.msg);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int ahl__access_init(struct ahl_meta *m)
{
    struct ahl__access *a = &m->access;
    if (!m->opts.access_table_max)
        m->opts.access_table_max = AHL_META_ACCESS_TABLE_DEFAULT;
    if (!m->opts.archive_days)
        m->opts.archive_days = AHL_META_ARCHIVE_DAYS_DEFAULT;
    a->cap = m->opts.access_table_max;
    if (ahl_lru_init(&a->lru, 64) < 0)
        return AHL_ENOMEM;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->flush_mu, NULL);
    if (m->opts.access_flush_ms) {
        if (pthread_create(&a->thread, NULL, flusher, m) != 0) {
            ahl_lru_release(&a->lru);
            pthread_cond_destroy(&a->cv);
            pthread_mutex_destroy(&a->mu);
            pthread_mutex_destroy(&a->flush_mu);
            return AHL_ENOMEM;
        }
        a->thread_running = true;
    }
    return 0;
}

void ahl__access_release(struct ahl_meta *m)
{
    struct ahl__access *a = &m->access;
    if (a->thread_running) {
        pthread_mutex_lock(&a->mu);
        a->stop = true;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
        a->thread_running = false;
    }
    struct ahl_err err = {0};
    if (a->pending && ahl_meta_access_flush(m, &err) < 0)
        ahl_error("storage tiers: the accesses of %zu image sets were not recorded: %s", a->pending,
                  err.msg);
    ahl_lru_release(&a->lru);
    free(a->pool);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->flush_mu);
}
