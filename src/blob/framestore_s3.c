/* The S3 backend of the frame store (framestore.h, "Frames in an S3 bucket"): a frame is the
 * object <prefix><id[0..2]>/<id> of one bucket, written with one PutObject and read with one
 * GetObject through the aws/s3.h client.
 *
 * Keys are content addresses, so nodes writing the same frame at once write the same bytes and
 * nothing needs a lock; a PUT that S3 acknowledged is durable, so an importer's write is the PUT
 * and its sync has nothing left to do. Reads hash the bytes as they arrive and compare the result
 * with the id, as the file backend does, so a replaced or damaged object is AHL_ECORRUPT and never
 * reaches a client. A frame read for streaming goes to an unlinked temporary file (never whole in
 * memory); a frame read for the cache or a caller that wants the bytes goes to one buffer sized
 * from the reply's Content-Length.
 *
 * A client is used by one thread at a time (aws/s3.h), and a frame store by many: requests take
 * an idle client from a small pool, or open one, and give it back after.
 *
 * S3 asks clients to retry a request that failed on the server's side (HTTP 500, 503) or on the
 * way (a dropped connection): every request here is idempotent (a PUT of a content address, a
 * GET, a HEAD), so one that fails with AHL_EIO is sent again, up to ATTEMPTS times, after a
 * short pause. moto_server, for one, answers 500 now and then when two PUTs of one key meet. */
#define _GNU_SOURCE /* O_TMPFILE */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/s3.h"
#include "base/codec.h"
#include "base/fileio.h"
#include "base/text.h"
#include "blob/framestore.h"
#include "blob/framestore_internal.h"

#include "base/banned.h"

/* Idle clients kept for reuse (each keeps its connection alive). */
#define POOL_MAX 32
/* Tries of a request failing with AHL_EIO, 100 ms and then 200 ms apart. */
#define ATTEMPTS 3

/* Whether a request that failed with rc is worth sending again, after the pause that says so. */
static bool again(int rc, int *attempt)
{
    if (rc != AHL_EIO || ++*attempt >= ATTEMPTS)
        return false;
    struct timespec t = {0, 100000000L * *attempt};
    nanosleep(&t, NULL);
    return true;
}

struct ahl__frames3 {
    char bucket[AHL_S3_MAX_BUCKET + 1];
    char prefix[AHL_S3_MAX_KEY + 1]; /* "" or ending in '/' */
    char tmp_dir[4096];
    /* What new clients are opened with (copies). */
    char *endpoint, *region, *access_key, *secret_key, *session_token;
    long timeout_s;
    pthread_mutex_t mu;
    struct ahl_s3 *idle[POOL_MAX];
    unsigned n_idle;
};

static char *dup_opt(const char *s, int *failed)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *failed = 1;
    return d;
}

static int take(struct ahl__frames3 *b, struct ahl_s3 **out, struct ahl_err *err)
{
    pthread_mutex_lock(&b->mu);
    *out = b->n_idle ? b->idle[--b->n_idle] : NULL;
    pthread_mutex_unlock(&b->mu);
    if (*out)
        return 0;
    struct ahl_s3_config cfg = {.endpoint = b->endpoint,
                                .region = b->region,
                                .access_key = b->access_key,
                                .secret_key = b->secret_key,
                                .session_token = b->session_token,
                                .timeout_s = b->timeout_s};
    return ahl_s3_open(&cfg, out, err);
}

static void give(struct ahl__frames3 *b, struct ahl_s3 *s3)
{
    pthread_mutex_lock(&b->mu);
    if (b->n_idle < POOL_MAX) {
        b->idle[b->n_idle++] = s3;
        s3 = NULL;
    }
    pthread_mutex_unlock(&b->mu);
    ahl_s3_close(s3);
}

void ahl__frames3_free(struct ahl__frames3 *b)
{
    if (!b)
        return;
    for (unsigned i = 0; i < b->n_idle; i++)
        ahl_s3_close(b->idle[i]);
    pthread_mutex_destroy(&b->mu);
    free(b->endpoint);
    free(b->region);
    free(b->access_key);
    if (b->secret_key) {
        volatile char *wipe = b->secret_key;
        for (size_t i = 0; wipe[i]; i++)
            wipe[i] = 0;
    }
    free(b->secret_key);
    free(b->session_token);
    free(b);
}

int ahl_framestore_open_s3(struct ahl_framestore *fs, const char *uri,
                           const struct ahl_s3_config *cfg, const char *tmp_dir,
                           struct ahl_err *err)
{
    struct ahl_s3_uri u;
    struct ahl_s3 *first = NULL;
    memset(fs, 0, sizeof *fs);
    int rc = ahl_s3_uri_parse(uri, &u, err);
    if (rc < 0)
        return rc;
    size_t pl = strlen(u.prefix);
    while (pl && u.prefix[pl - 1] == '/')
        u.prefix[--pl] = '\0';
    /* The longest key: prefix '/' 2 '/' 32. */
    if (pl + 1 + 2 + 1 + 32 > AHL_S3_MAX_KEY)
        return ahl_fail(err, AHL_EINVAL, "the prefix of the blob store %.200s is too long", uri);
    if (!tmp_dir || ahl_str_copy(fs->root, sizeof fs->root, uri) < 0)
        return ahl_fail(err, AHL_EINVAL, "the blob store %.200s needs a temporary directory", uri);
    struct ahl__frames3 *b = calloc(1, sizeof *b);
    if (!b)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    pthread_mutex_init(&b->mu, NULL);
    memcpy(b->bucket, u.bucket, sizeof b->bucket);
    snprintf(b->prefix, sizeof b->prefix, "%s%s", u.prefix, pl ? "/" : "");
    int failed = ahl_str_copy(b->tmp_dir, sizeof b->tmp_dir, tmp_dir) < 0;
    b->endpoint = dup_opt(cfg->endpoint, &failed);
    b->region = dup_opt(cfg->region, &failed);
    b->access_key = dup_opt(cfg->access_key, &failed);
    b->secret_key = dup_opt(cfg->secret_key, &failed);
    b->session_token = dup_opt(cfg->session_token, &failed);
    b->timeout_s = cfg->timeout_s;
    if (failed) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory, or a temporary directory path too long");
        goto fail;
    }
    /* One client now: a bad endpoint or missing credentials fail here, not at the first frame. */
    if ((rc = take(b, &first, err)) < 0)
        goto fail;
    give(b, first);
    fs->s3 = b;
    return 0;
fail:
    ahl__frames3_free(b);
    return rc;
}

void ahl__frames3_key(const struct ahl_framestore *fs, const char *id, char *out, size_t cap)
{
    /* Fits: open_s3 keeps the prefix short enough for every key. */
    if (snprintf(out, cap, "%s%.2s/%s", fs->s3->prefix, id, id) >= (int)cap)
        out[0] = '\0';
}

/* S3's answer for a frame as the frame store's: 404 is the frame not found, anything else a
 * server-side failure of the store (AHL_EIO) with S3's words. */
static int s3_fail(int rc, const char *id, const struct ahl_err *s3err, struct ahl_err *err)
{
    if (rc == AHL_ENOTFOUND)
        return ahl_fail(err, AHL_ENOTFOUND, "image frame %s not found", id);
    if (rc == AHL_ENOMEM)
        return ahl_fail(err, rc, "%s", s3err->msg);
    return ahl_fail(err, AHL_EIO, "frame %s in the blob store: %s", id, s3err->msg);
}

int ahl__frames3_put(struct ahl_framestore *fs, const char *id, const void *data, size_t len,
                     struct ahl_err *err)
{
    struct ahl__frames3 *b = fs->s3;
    struct ahl_s3 *s3;
    struct ahl_err e;
    char key[AHL_S3_MAX_KEY + 1];
    ahl_err_clear(&e);
    int rc = take(b, &s3, err);
    if (rc < 0)
        return rc;
    ahl__frames3_key(fs, id, key, sizeof key);
    int attempt = 0;
    do
        rc = ahl_s3_put(s3, b->bucket, key, data, len, "application/octet-stream", &e);
    while (again(rc, &attempt));
    give(b, s3);
    return rc < 0 ? ahl_fail(err, rc == AHL_ENOMEM ? rc : AHL_EIO, "cannot store frame %s: %s", id,
                             e.msg)
                  : 0;
}

/* HeadObject of a frame: its size and Last-Modified (ms, -1 when the reply has none). */
static int head(struct ahl_framestore *fs, const char *id, uint64_t *size, int64_t *mtime_ms,
                struct ahl_err *err)
{
    struct ahl__frames3 *b = fs->s3;
    struct ahl_s3 *s3;
    struct ahl_err e;
    char key[AHL_S3_MAX_KEY + 1];
    ahl_err_clear(&e);
    int rc = take(b, &s3, err);
    if (rc < 0)
        return rc;
    ahl__frames3_key(fs, id, key, sizeof key);
    int attempt = 0;
    do
        rc = ahl_s3_head_timed(s3, b->bucket, key, size, mtime_ms, &e);
    while (again(rc, &attempt));
    give(b, s3);
    return rc < 0 ? s3_fail(rc, id, &e, err) : 0;
}

int ahl__frames3_exists(struct ahl_framestore *fs, const char *id, uint64_t *size,
                        struct ahl_err *err)
{
    int64_t mtime_ms;
    return head(fs, id, size, &mtime_ms, err);
}

/* DeleteObject of a frame (S3 answers 204 whether or not it was there). */
static int delete_object(struct ahl_framestore *fs, const char *id, struct ahl_err *err)
{
    struct ahl__frames3 *b = fs->s3;
    struct ahl_s3 *s3;
    struct ahl_err e;
    char key[AHL_S3_MAX_KEY + 1];
    ahl_err_clear(&e);
    int rc = take(b, &s3, err);
    if (rc < 0)
        return rc;
    ahl__frames3_key(fs, id, key, sizeof key);
    rc = ahl_s3_delete(s3, b->bucket, key, &e);
    give(b, s3);
    return rc < 0 ? s3_fail(rc, id, &e, err) : 0;
}

int ahl__frames3_delete(struct ahl_framestore *fs, const char *id, struct ahl_err *err)
{
    uint64_t size;
    /* S3 deletes absent objects without complaint; the frame store's contract says. */
    int rc = ahl__frames3_exists(fs, id, &size, err);
    if (rc < 0)
        return rc;
    return delete_object(fs, id, err);
}

/* ---- collecting (framestore.h, "collecting frames") ---- */

struct listing {
    const struct ahl__frames3 *b;
    ahl_framestore_list_cb cb;
    void *ctx;
};

static int on_object(void *ctx, const char *key, uint64_t size, int64_t mtime_ms)
{
    struct listing *l = ctx;
    size_t np = strlen(l->b->prefix);
    /* prefix + "ab/" + 32 hex digits starting with ab; anything else is not a frame. */
    if (strlen(key) != np + 35 || key[np + 2] != '/')
        return 0;
    const char *id = key + np + 3;
    if (strspn(id, "0123456789abcdef") != 32 || memcmp(id, key + np, 2) != 0)
        return 0;
    struct ahl_framestore_entry fe;
    memcpy(fe.id, id, 33);
    fe.size = size;
    /* An object the listing gives no time for is never old enough to collect. */
    fe.mtime_ms = mtime_ms < 0 ? INT64_MAX : mtime_ms;
    return l->cb(l->ctx, &fe);
}

int ahl__frames3_list(struct ahl_framestore *fs, ahl_framestore_list_cb cb, void *ctx,
                      struct ahl_err *err)
{
    struct ahl__frames3 *b = fs->s3;
    struct ahl_s3 *s3;
    struct listing l = {b, cb, ctx};
    int rc = take(b, &s3, err);
    if (rc < 0)
        return rc;
    rc = ahl_s3_list_timed(s3, b->bucket, b->prefix, on_object, &l, err);
    give(b, s3);
    return rc;
}

int ahl__frames3_reclaim(struct ahl_framestore *fs, const char *id, int64_t before_ms,
                         uint64_t *freed, struct ahl_err *err)
{
    uint64_t size = 0;
    int64_t mtime = -1;
    *freed = 0;
    int rc = head(fs, id, &size, &mtime, err);
    if (rc == AHL_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    /* Written again since the listing (or no time to judge by): kept. Last-Modified has whole
     * seconds, so "before" is rounded down to one. */
    if (mtime < 0 || mtime >= before_ms - before_ms % 1000)
        return 0;
    if ((rc = delete_object(fs, id, err)) < 0)
        return rc;
    *freed = size;
    return 1;
}

/* ---- reading ---- */

/* One GetObject of a frame, hashed as it arrives and kept in one of three places. */
struct fetch {
    const char *id;
    uint64_t expected; /* FrameSizeInBytes to compare with, or UINT64_MAX */
    uint64_t limit;    /* a larger object is AHL_ETOOBIG before any byte of it is read */
    int fd;            /* spool here (an unlinked temporary file), or -1 */
    size_t room;       /* into memory: a block of room bytes, then the frame */
    uint8_t *block;
    bool to_memory;
    uint64_t size, got;
    struct ahl_sha256_ctx sha;
    struct ahl_err why; /* the receiver's own reason for stopping the transfer */
};

static int on_size(void *ctx, uint64_t size)
{
    struct fetch *f = ctx;
    f->size = size;
    if (size == UINT64_MAX && f->to_memory)
        return ahl_fail(&f->why, AHL_EIO,
                        "frame %s in the blob store: the reply does not say its size", f->id);
    if (f->expected != UINT64_MAX && size != UINT64_MAX && size != f->expected)
        return ahl_fail(&f->why, AHL_ECORRUPT,
                        "stored frame %s is damaged: the object is %llu bytes, FrameSizeInBytes "
                        "%llu",
                        f->id, (unsigned long long)size, (unsigned long long)f->expected);
    if (size != UINT64_MAX && size > f->limit)
        return ahl_fail(&f->why, AHL_ETOOBIG, "frame %s is %llu bytes, over the limit", f->id,
                        (unsigned long long)size);
    if (f->to_memory && !(f->block = malloc(f->room + (size_t)size + 1)))
        return ahl_fail(&f->why, AHL_ENOMEM, "out of memory for frame %s", f->id);
    return 0;
}

static int on_bytes(void *ctx, const void *p, size_t n)
{
    struct fetch *f = ctx;
    if (f->got + n > f->limit || (f->size != UINT64_MAX && f->got + n > f->size))
        return ahl_fail(&f->why, AHL_EIO, "frame %s in the blob store: more bytes than announced",
                        f->id);
    if (f->fd >= 0 && ahl_write_all(f->fd, p, n) < 0) {
        int e = errno;
        return ahl_fail(&f->why, e == ENOSPC || e == EDQUOT ? AHL_ENOSPC : AHL_EIO,
                        "cannot spool frame %s: %s", f->id, strerror(e));
    }
    if (f->to_memory)
        memcpy(f->block + f->room + f->got, p, n);
    ahl_sha256_add(&f->sha, p, n);
    f->got += n;
    return 0;
}

/* Runs the GetObject of f->id and, with ts not NULL, checks the bytes against the id (ts "" is
 * .4.202). On failure f->block is freed. */
static int fetch(struct ahl_framestore *fs, struct fetch *f, const char *ts, struct ahl_err *err)
{
    struct ahl__frames3 *b = fs->s3;
    struct ahl_s3 *s3 = NULL;
    struct ahl_err e;
    char key[AHL_S3_MAX_KEY + 1];
    uint8_t digest[AHL_SHA256_LEN];
    ahl_err_clear(&e);
    ahl_err_clear(&f->why);
    f->size = UINT64_MAX;
    f->got = 0;
    f->block = NULL;
    f->sha.md = NULL;
    int rc;
    if (ahl_sha256_begin(&f->sha) < 0) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory to check frame %s", f->id);
        goto out;
    }
    if ((rc = take(b, &s3, err)) < 0)
        goto out;
    ahl__frames3_key(fs, f->id, key, sizeof key);
    for (int attempt = 0;;) {
        rc = ahl_s3_get_sized(s3, b->bucket, key, on_size, on_bytes, f, &e);
        /* A failure the receiver chose (damage, a limit, a full disk) is not the endpoint's. */
        if (f->why.code || !again(rc, &attempt))
            break;
        /* Start over: what arrived of the failed try is dropped. */
        ahl_sha256_end(&f->sha, digest);
        free(f->block);
        f->block = NULL;
        f->size = UINT64_MAX;
        f->got = 0;
        if (ahl_sha256_begin(&f->sha) < 0 ||
            (f->fd >= 0 && (ftruncate(f->fd, 0) != 0 || lseek(f->fd, 0, SEEK_SET) != 0))) {
            rc = ahl_fail(&f->why, AHL_EIO, "cannot start frame %s over", f->id);
            break;
        }
    }
    give(b, s3);
    if (rc < 0) {
        rc = f->why.code ? ahl_fail(err, f->why.code, "%s", f->why.msg)
                         : s3_fail(rc, f->id, &e, err);
        goto out;
    }
    if (f->size != UINT64_MAX && f->got != f->size) {
        rc = ahl_fail(err, AHL_EIO, "frame %s in the blob store: %llu of its %llu bytes arrived",
                      f->id, (unsigned long long)f->got, (unsigned long long)f->size);
        goto out;
    }
    if (f->expected != UINT64_MAX && f->got != f->expected) {
        rc = ahl_fail(err, AHL_ECORRUPT,
                      "stored frame %s is damaged: the object is %llu bytes, FrameSizeInBytes %llu",
                      f->id, (unsigned long long)f->got, (unsigned long long)f->expected);
        goto out;
    }
    ahl_sha256_end(&f->sha, digest);
    if (ts)
        rc = ahl__frame_digest_check(f->id, ts, digest, f->got, err);
out:
    ahl_sha256_end(&f->sha, digest);
    if (rc < 0) {
        free(f->block);
        f->block = NULL;
    }
    return rc;
}

/* An unlinked temporary file in the store's temporary directory. */
static int temp_file(struct ahl__frames3 *b, const char *id, struct ahl_err *err)
{
    int fd = open(b->tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        char path[sizeof b->tmp_dir + 32];
        snprintf(path, sizeof path, "%s/frame-XXXXXX", b->tmp_dir);
        if ((fd = mkstemp(path)) >= 0)
            unlink(path);
    }
    if (fd < 0)
        return ahl_fail(err, AHL_EIO, "cannot create a temporary file in %s for frame %s: %s",
                        b->tmp_dir, id, strerror(errno));
    return fd;
}

int ahl__frames3_open(struct ahl_framestore *fs, const char *id, const char *ts, int *fd,
                      uint64_t *size, struct ahl_err *err)
{
    struct fetch f = {.id = id, .expected = UINT64_MAX, .limit = UINT64_MAX};
    *fd = -1;
    *size = 0;
    int rc = temp_file(fs->s3, id, err);
    if (rc < 0)
        return rc;
    f.fd = rc;
    if ((rc = fetch(fs, &f, ts, err)) == 0 && lseek(f.fd, 0, SEEK_SET) != 0)
        rc = ahl_fail(err, AHL_EIO, "cannot rewind the spooled frame %s: %s", id, strerror(errno));
    if (rc < 0) {
        close(f.fd);
        return rc;
    }
    *fd = f.fd;
    *size = f.got;
    return 0;
}

int ahl__frames3_read(struct ahl_framestore *fs, const char *id, const char *ts, size_t room,
                      uint64_t limit, uint8_t **block, size_t *len, struct ahl_err *err)
{
    struct fetch f = {
        .id = id, .expected = UINT64_MAX, .limit = limit, .fd = -1, .room = room, .to_memory = 1};
    *block = NULL;
    *len = 0;
    int rc = fetch(fs, &f, ts, err);
    if (rc < 0)
        return rc;
    *block = f.block;
    *len = (size_t)f.got;
    return 0;
}

int ahl__frames3_check(struct ahl_framestore *fs, const char *id, const char *ts,
                       uint64_t expected_size, struct ahl_err *err)
{
    struct fetch f = {.id = id, .expected = expected_size, .limit = UINT64_MAX, .fd = -1};
    return fetch(fs, &f, ts ? ts : "", err);
}
