/* The dispatcher of events.h: one thread that holds the store's event lease, reads the outbox in
 * sequence order a batch at a time, delivers every event of the batch to each sink (the NDJSON
 * file: the batch's lines in one write, then fsync; the webhook: one POST per event, in order),
 * and removes what every sink has. Each sink remembers in memory how far it got, so a webhook
 * that fails does not make the file receive the same events twice while this process runs; after
 * a restart the events not yet removed are delivered again (at least once).
 *
 * A failure waits before the next try: 200 ms, doubling to retry_max_ms, reset by a success. The
 * waits and the idle polls are on a condition variable that ahl_events_stop signals, so stopping
 * never waits for a backoff. Memory is one batch (BATCH events) whatever the backlog: the rest
 * stays in the database. */
#include "events/events.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aws/http.h"
#include "base/clock.h"
#include "base/codec.h"
#include "base/fileio.h"
#include "base/log.h"
#include "json/json.h"
#include "base/banned.h"

#define BATCH 64
#define FIRST_RETRY_MS 200

struct ahl_events {
    struct ahl_store *store;
    struct ahl_events_opts o;
    char *webhook_url, *file_path, *account, *region;
    char node[64];
    int fd; /* the NDJSON file, or -1 */
    struct ahl_http *http;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;                     /* under mu */
    struct ahl_events_stats stats; /* under mu */
    /* The thread's own state. */
    struct ahl_event_rec *batch; /* BATCH records */
    unsigned n;
    uint64_t file_done, hook_done; /* the last seq each sink has, this run */
    uint64_t delete_upto;          /* what the next removal takes: every sink has it */
    unsigned backoff_ms;
};

int ahl_events_envelope(const struct ahl_event_rec *rec, const char *account_id, const char *region,
                        struct ahl_buf *out)
{
    char when[32], arn[320];
    struct tm tm;
    time_t t = (time_t)(rec->time_ms / 1000);
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(arn, sizeof arn, "arn:aws:medical-imaging:%s:%s:%s", region, account_id,
             rec->resource);
    size_t start = out->len;
    int rc = ahl_buf_adds(out, "{\"version\":\"0\",\"id\":");
#define STR(s)   \
    if (rc == 0) \
    rc = ahl_json_write_string((s), strlen(s), out)
#define LIT(s)   \
    if (rc == 0) \
    rc = ahl_buf_adds(out, (s))
    STR(rec->id);
    LIT(",\"detail-type\":");
    STR(rec->detail_type);
    LIT(",\"source\":\"aws.medical-imaging\",\"account\":");
    STR(account_id);
    LIT(",\"time\":");
    STR(when);
    LIT(",\"region\":");
    STR(region);
    LIT(",\"resources\":[");
    STR(arn);
    LIT("],\"detail\":");
    LIT(rec->detail[0] ? rec->detail : "{}");
    LIT("}");
#undef STR
#undef LIT
    if (rc < 0)
        ahl_buf_truncate(out, start);
    return rc;
}

/* Waits ms or until stopped; true when stopped. */
static bool wait_ms(struct ahl_events *d, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&d->mu);
    while (!d->stop && pthread_cond_timedwait(&d->cv, &d->mu, &ts) != ETIMEDOUT)
        ;
    bool stop = d->stop;
    pthread_mutex_unlock(&d->mu);
    return stop;
}

static void count(struct ahl_events *d, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&d->mu);
    *field += n;
    pthread_mutex_unlock(&d->mu);
}

/* A failure: counted, and the next try waits (longer each time). */
static bool fail_wait(struct ahl_events *d)
{
    count(d, &d->stats.retries, 1);
    unsigned ms = d->backoff_ms ? d->backoff_ms : FIRST_RETRY_MS;
    d->backoff_ms = ms >= d->o.retry_max_ms / 2 ? d->o.retry_max_ms : ms * 2;
    return wait_ms(d, ms);
}

/* Runs fn in a write transaction of its own. */
static int in_write_tx(struct ahl_events *d, int (*fn)(struct ahl_events *, struct ahl_store_tx *))
{
    struct ahl_store_tx *tx = NULL;
    int rc = ahl_store_begin(d->store, true, &tx);
    if (rc < 0)
        return rc;
    if ((rc = fn(d, tx)) < 0) {
        ahl_store_rollback(tx);
        return rc;
    }
    return ahl_store_commit(tx);
}

/* Takes or renews the lease and keeps the outbox within max_backlog. */
static int lease_and_trim(struct ahl_events *d, struct ahl_store_tx *tx)
{
    uint64_t dropped = 0;
    int rc = ahl_store_event_lease(tx, d->node, d->o.lease_ms);
    if (rc == 0)
        rc = ahl_store_event_trim(tx, d->o.max_backlog, &dropped);
    if (rc == 0 && dropped) {
        count(d, &d->stats.dropped, dropped);
        ahl_warn("events: the outbox held more than %llu events: the %llu oldest were dropped "
                 "undelivered (%llu in all since start)",
                 (unsigned long long)d->o.max_backlog, (unsigned long long)dropped,
                 (unsigned long long)d->stats.dropped);
        /* What was dropped is gone for every sink. */
    }
    return rc;
}

static int take(void *ctx, const struct ahl_event_rec *rec)
{
    struct ahl_events *d = ctx;
    d->batch[d->n++] = *rec;
    return 0;
}

/* Reads the next batch: the events after the last one every sink has. */
static int read_batch(struct ahl_events *d, uint64_t after)
{
    struct ahl_store_tx *tx = NULL;
    d->n = 0;
    int rc = ahl_store_begin(d->store, false, &tx);
    if (rc < 0)
        return rc;
    rc = ahl_store_event_list(tx, after, BATCH, take, d);
    ahl_store_rollback(tx);
    return rc;
}

/* Appends the batch's events the file lacks, one line each, then fsyncs. A failed write is cut
 * off again, so the file holds whole lines only. */
static int deliver_file(struct ahl_events *d, struct ahl_buf *lines)
{
    ahl_buf_reset(lines);
    uint64_t last = d->file_done;
    for (unsigned i = 0; i < d->n; i++) {
        if (d->batch[i].seq <= d->file_done)
            continue;
        int rc = ahl_events_envelope(&d->batch[i], d->account, d->region, lines);
        if (rc == 0)
            rc = ahl_buf_addc(lines, '\n');
        if (rc < 0)
            return rc;
        last = d->batch[i].seq;
    }
    if (!lines->len)
        return 0;
    struct stat st;
    if (fstat(d->fd, &st) < 0)
        return AHL_EIO;
    int rc = ahl_write_all(d->fd, lines->data, lines->len);
    if (rc == 0 && fsync(d->fd) < 0)
        rc = AHL_EIO;
    if (rc < 0) {
        ahl_warn("events: writing %s failed (%s); retrying", d->file_path, strerror(errno));
        if (ftruncate(d->fd, st.st_size) < 0)
            ahl_warn("events: cannot cut %s back to its last whole line", d->file_path);
        return rc;
    }
    d->file_done = last;
    return 0;
}

/* POSTs the batch's events the webhook lacks, in order, stopping at the first failure. */
static int deliver_hook(struct ahl_events *d, struct ahl_buf *body)
{
    for (unsigned i = 0; i < d->n; i++) {
        if (d->batch[i].seq <= d->hook_done)
            continue;
        struct ahl_err err;
        long status = 0;
        ahl_buf_reset(body);
        int rc = ahl_events_envelope(&d->batch[i], d->account, d->region, body);
        if (rc == 0)
            rc = ahl_http_post(d->http, "application/json", body->data, body->len, &status, &err);
        if (rc < 0) {
            ahl_warn("events: %s; event %s kept for a retry", err.msg, d->batch[i].id);
            return rc;
        }
        d->hook_done = d->batch[i].seq;
    }
    return 0;
}

static int delete_delivered(struct ahl_events *d, struct ahl_store_tx *tx)
{
    return ahl_store_event_delete(tx, d->delete_upto);
}

/* Gives the lease up (it expires at once), so that a node started next dispatches without
 * waiting for it. */
static int release_lease(struct ahl_events *d, struct ahl_store_tx *tx)
{
    return ahl_store_event_lease(tx, d->node, 0);
}

static void *dispatcher(void *arg)
{
    struct ahl_events *d = arg;
    struct ahl_buf buf;
    ahl_buf_init(&buf, (size_t)BATCH * (AHL_EVENT_DETAIL_MAX + 1024));
    uint64_t renew_at = 0;
    bool holding = false;
    for (;;) {
        uint64_t now = ahl_mono_ns() / 1000000;
        if (now >= renew_at) {
            int rc = in_write_tx(d, lease_and_trim);
            if (rc < 0 && holding)
                ahl_info("events: node %s no longer dispatches (%s)", d->node,
                         rc == AHL_ECONFLICT ? "another node holds the lease" : ahl_strerror(rc));
            else if (rc == 0 && !holding)
                ahl_info("events: node %s dispatches", d->node);
            holding = rc == 0;
            /* A lease lost meanwhile: start again from what the outbox still holds. */
            if (!holding)
                d->file_done = d->hook_done = 0;
            renew_at = now + d->o.lease_ms / 3;
        }
        if (!holding) {
            if (wait_ms(d, d->o.lease_ms / 3))
                break;
            continue;
        }
        uint64_t after = UINT64_MAX;
        if (d->fd >= 0)
            after = d->file_done;
        if (d->http && d->hook_done < after)
            after = d->hook_done;
        int rc = read_batch(d, after);
        if (rc < 0) {
            if (fail_wait(d))
                break;
            continue;
        }
        if (d->n == 0) {
            if (wait_ms(d, d->o.poll_ms))
                break;
            continue;
        }
        if (d->fd >= 0 && (rc = deliver_file(d, &buf)) < 0) {
            if (fail_wait(d))
                break;
            continue;
        }
        if (d->http && (rc = deliver_hook(d, &buf)) < 0) {
            if (fail_wait(d))
                break;
            continue;
        }
        d->backoff_ms = 0;
        uint64_t done = d->batch[d->n - 1].seq;
        if (d->fd >= 0 && d->file_done < done)
            done = d->file_done;
        if (d->http && d->hook_done < done)
            done = d->hook_done;
        d->delete_upto = done;
        if ((rc = in_write_tx(d, delete_delivered)) < 0) {
            if (fail_wait(d))
                break;
            continue;
        }
        count(d, &d->stats.delivered, d->n);
        pthread_mutex_lock(&d->mu);
        bool stop = d->stop;
        pthread_mutex_unlock(&d->mu);
        if (stop)
            break;
    }
    if (holding)
        in_write_tx(d, release_lease);
    ahl_buf_release(&buf);
    return NULL;
}

static void free_all(struct ahl_events *d)
{
    if (!d)
        return;
    if (d->fd >= 0)
        close(d->fd);
    ahl_http_close(d->http);
    free(d->webhook_url);
    free(d->file_path);
    free(d->account);
    free(d->region);
    free(d->batch);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}

int ahl_events_start(struct ahl_store *s, const struct ahl_events_opts *o, struct ahl_events **out,
                     struct ahl_err *err)
{
    *out = NULL;
    if (!o->webhook_url && !o->file_path)
        return ahl_fail(err, AHL_EINVAL, "events: neither a webhook nor a file to deliver to");
    struct ahl_events *d = calloc(1, sizeof *d);
    if (!d)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    d->fd = -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    d->store = s;
    d->o = *o;
    if (!d->o.max_backlog)
        d->o.max_backlog = 1000000;
    if (!d->o.retry_max_ms)
        d->o.retry_max_ms = 60000;
    if (!d->o.poll_ms)
        d->o.poll_ms = 100;
    if (!d->o.lease_ms)
        d->o.lease_ms = 15000;
    int rc;
    if (!(d->account = strdup(o->account_id ? o->account_id : "123456789012")) ||
        !(d->region = strdup(o->region ? o->region : "us-east-1")) ||
        !(d->batch = calloc(BATCH, sizeof *d->batch)) ||
        (o->webhook_url && !(d->webhook_url = strdup(o->webhook_url))) ||
        (o->file_path && !(d->file_path = strdup(o->file_path)))) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto fail;
    }
    if (o->webhook_url && (rc = ahl_http_open(o->webhook_url, o->timeout_ms, &d->http, err)) < 0)
        goto fail;
    if (o->file_path &&
        (d->fd = open(o->file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        rc = ahl_fail(err, AHL_EIO, "events: cannot open %s: %s", o->file_path, strerror(errno));
        goto fail;
    }
    uint32_t rnd = 0;
    if (ahl_random_bytes(&rnd, sizeof rnd) < 0)
        rnd = (uint32_t)ahl_mono_ns();
    snprintf(d->node, sizeof d->node, "events-%ld-%08x", (long)getpid(), (unsigned)rnd);
    if (pthread_create(&d->thread, NULL, dispatcher, d) != 0) {
        rc = ahl_fail(err, AHL_EINTERNAL, "events: cannot start the dispatcher thread");
        goto fail;
    }
    *out = d;
    return 0;
fail:
    free_all(d);
    return rc;
}

void ahl_events_stop(struct ahl_events *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    free_all(d);
}

void ahl_events_stats(struct ahl_events *d, struct ahl_events_stats *out)
{
    pthread_mutex_lock(&d->mu);
    *out = d->stats;
    pthread_mutex_unlock(&d->mu);
}
