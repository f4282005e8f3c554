/* Verified frames held in memory (ahl_framestore_hold in framestore.h): a chained hash table of
 * entries keyed by frame id on a recency list, under one mutex, within a byte budget.
 *
 * An entry holds a frame's bytes, read whole and hashed against the frame's content address when
 * it was read, after AHL_FRAME_PREFIX_MAX bytes of room where the caller's wrap (GetImageFrame's
 * JPH boxes) is written once, so an answer is one contiguous buffer sent without a copy. Entries
 * are reference-counted: the cache holds one reference and every reader one, so an entry dropped
 * from the cache (budget, or its file changed) is freed when the last response that sends it is
 * done.
 *
 * What is checked on a hit is that the file is still the one that was read: lstat of its path
 * must give the same device, inode, size and modification and change times. A file rewritten,
 * truncated, removed or replaced since is read and hashed again, and its damage reported, as
 * without the cache. A change lstat cannot see (a disk returning other bytes for an unchanged
 * file) is not seen until the entry leaves the cache, but nothing damaged is served either way:
 * the bytes sent are those that were hashed (docs/frames.md#damaged-frames-are-never-served).
 *
 * On S3 a hit looks at nothing: an object is an immutable content address, so the bytes held are
 * the frame whatever happens to the bucket later, and there is no cheap equivalent of lstat to ask
 * (a HeadObject per request would cost a round trip, the very thing the cache saves). A miss is
 * one GetObject into the entry, sized from the reply's Content-Length (framestore_s3.c). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/lru.h"
#include "blob/framestore.h"
#include "blob/framestore_internal.h"

#include "base/banned.h"

struct entry {
    struct ahl_frame_hold pub; /* first: a hold is its entry */
    atomic_uint refs;
    struct ahl_lru_link link; /* table and recency list */
    int in_cache;
    size_t cost;
    /* the file as it was when read */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    char id[33];
    uint8_t bytes[]; /* AHL_FRAME_PREFIX_MAX bytes of room, then the frame */
};

struct ahl__framecache {
    int root; /* the store's root, opened once: a hit's lstat resolves two names below it */
    pthread_mutex_t lock;
    size_t budget, bytes;
    struct ahl_lru lru;
};

int ahl_framestore_cache_open(struct ahl_framestore *fs, size_t budget)
{
    if (!budget)
        return 0;
    struct ahl__framecache *c = calloc(1, sizeof *c);
    if (!c)
        return AHL_ENOMEM;
    c->budget = budget;
    int rc = ahl_lru_init(&c->lru, 1024);
    c->root = fs->s3 ? AT_FDCWD : open(fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rc < 0 || (c->root < 0 && !fs->s3)) {
        if (c->root >= 0)
            close(c->root);
        ahl_lru_release(&c->lru);
        free(c);
        return rc < 0 ? rc : AHL_EIO;
    }
    pthread_mutex_init(&c->lock, NULL);
    fs->cache = c;
    return 0;
}

static void entry_unref(struct entry *e)
{
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        free(e);
}

void ahl_frame_hold_release(const struct ahl_frame_hold *h)
{
    if (h)
        entry_unref((struct entry *)h);
}

static struct entry *entry_of(struct ahl_lru_link *l)
{
    return AHL_LRU_ENTRY(l, struct entry, link);
}

/* Takes e out of the cache (under the lock) and drops the cache's reference. */
static void remove_entry(struct ahl__framecache *c, struct entry *e)
{
    ahl_lru_remove(&c->lru, &e->link);
    e->in_cache = 0;
    c->bytes -= e->cost;
    entry_unref(e);
}

/* The cached entry of id (under the lock), or NULL. */
static struct entry *find(struct ahl__framecache *c, const char *id, uint64_t hash)
{
    for (struct ahl_lru_link *l = *ahl_lru_bucket(&c->lru, hash); l; l = l->next_in_bucket)
        if (l->hash == hash && !strcmp(entry_of(l)->id, id))
            return entry_of(l);
    return NULL;
}

void ahl_framestore_cache_close(struct ahl_framestore *fs)
{
    struct ahl__framecache *c = fs->cache;
    if (!c)
        return;
    while (c->lru.oldest)
        remove_entry(c, entry_of(c->lru.oldest));
    pthread_mutex_destroy(&c->lock);
    if (c->root >= 0)
        close(c->root);
    ahl_lru_release(&c->lru);
    free(c);
    fs->cache = NULL;
}

void ahl_framestore_cache_stats(struct ahl_framestore *fs, size_t *frames, size_t *bytes)
{
    struct ahl__framecache *c = fs->cache;
    *frames = *bytes = 0;
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    *frames = c->lru.count;
    *bytes = c->bytes;
    pthread_mutex_unlock(&c->lock);
}

static bool same_file(const struct entry *e, const struct stat *st)
{
    return S_ISREG(st->st_mode) && st->st_dev == e->dev && st->st_ino == e->ino &&
           st->st_size == e->size && st->st_mtim.tv_sec == e->mtime.tv_sec &&
           st->st_mtim.tv_nsec == e->mtime.tv_nsec && st->st_ctim.tv_sec == e->ctime.tv_sec &&
           st->st_ctim.tv_nsec == e->ctime.tv_nsec;
}

/* The cached entry of id whose file is unchanged, with a reference for the caller, or NULL. An
 * entry whose file changed is dropped. */
static struct entry *lookup(struct ahl_framestore *fs, const char *id, uint64_t hash)
{
    struct ahl__framecache *c = fs->cache;
    pthread_mutex_lock(&c->lock);
    struct entry *e = find(c, id, hash);
    if (e) {
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        ahl_lru_touch(&c->lru, &e->link);
    }
    pthread_mutex_unlock(&c->lock);
    if (!e || fs->s3)
        return e;
    char path[2 + 1 + 2 + 1 + 33];
    struct stat st;
    snprintf(path, sizeof path, "%.2s/%.2s/%s", id, id + 2, id);
    if (fstatat(c->root, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && same_file(e, &st))
        return e;
    pthread_mutex_lock(&c->lock);
    if (e->in_cache)
        remove_entry(c, e);
    pthread_mutex_unlock(&c->lock);
    entry_unref(e);
    return NULL;
}

/* Puts e in the cache (replacing an entry of the same id) and drops the least recently used
 * entries to stay within the budget. */
static void insert(struct ahl__framecache *c, struct entry *e, uint64_t hash)
{
    pthread_mutex_lock(&c->lock);
    struct entry *old = find(c, e->id, hash);
    if (old)
        remove_entry(c, old);
    while (c->lru.oldest && c->bytes + e->cost > c->budget)
        remove_entry(c, entry_of(c->lru.oldest));
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    e->in_cache = 1;
    ahl_lru_insert(&c->lru, &e->link, hash);
    c->bytes += e->cost;
    pthread_mutex_unlock(&c->lock);
}

/* Wraps the frame of a new entry and fills in the rest of it. */
static int finish_entry(struct entry *e, size_t size, size_t cost, const char *id,
                        ahl_frame_wrap_fn wrap, struct ahl_err *err)
{
    struct ahl_buf prefix;
    uint8_t *data = e->bytes + AHL_FRAME_PREFIX_MAX;
    int rc = 0;
    ahl_buf_init(&prefix, AHL_FRAME_PREFIX_MAX);
    if (wrap && (rc = wrap(data, size, &prefix, err)) < 0)
        goto out;
    memcpy(data - prefix.len, prefix.data, prefix.len);
    e->pub = (struct ahl_frame_hold){
        .prefix = data - prefix.len, .prefix_len = prefix.len, .data = data, .len = size};
    atomic_init(&e->refs, 1);
    e->cost = cost;
    memcpy(e->id, id, 33);
out:
    ahl_buf_release(&prefix);
    return rc;
}

/* On S3: the object straight into a new entry, checked against id on the way. */
static int read_entry_s3(struct ahl_framestore *fs, const char *id, const char *ts,
                         ahl_frame_wrap_fn wrap, struct entry **out, struct ahl_err *err)
{
    size_t room = offsetof(struct entry, bytes) + AHL_FRAME_PREFIX_MAX, size;
    size_t most = fs->cache->budget / 8;
    uint8_t *block;
    if (strspn(id, "0123456789abcdef") != 32)
        return ahl_fail(err, AHL_EINVAL, "frame id must be 32 lowercase hex digits");
    if (most <= room)
        return AHL_ETOOBIG;
    int rc = ahl__frames3_read(fs, id, ts ? ts : "", room, most - room, &block, &size, err);
    if (rc == AHL_ETOOBIG) {
        ahl_err_clear(err);
        return rc; /* streamed from a temporary file instead */
    }
    if (rc < 0)
        return rc;
    struct entry *e = (struct entry *)block;
    memset(e, 0, sizeof *e);
    if ((rc = finish_entry(e, size, room + size, id, wrap, err)) < 0) {
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

/* Reads the frame's file whole into a new entry and checks it against id. */
static int read_entry(struct ahl_framestore *fs, const char *id, const char *ts,
                      ahl_frame_wrap_fn wrap, struct entry **out, struct ahl_err *err)
{
    struct stat st;
    int fd = -1, rc;
    struct entry *e = NULL;
    uint8_t digest[AHL_SHA256_LEN];

    if ((rc = ahl__framestore_open_regular(fs, id, &fd, &st, err)) < 0)
        goto out;
    size_t size = (size_t)st.st_size;
    size_t cost = sizeof *e + AHL_FRAME_PREFIX_MAX + size;
    if ((uint64_t)st.st_size > fs->cache->budget / 8 || cost > fs->cache->budget / 8) {
        rc = AHL_ETOOBIG; /* streamed from the file instead */
        goto out;
    }
    if (!(e = malloc(cost))) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory to read frame %s", id);
        goto out;
    }
    memset(e, 0, sizeof *e);
    uint8_t *data = e->bytes + AHL_FRAME_PREFIX_MAX;
    size_t got;
    if ((rc = ahl_pread_all(fd, data, size, 0, &got)) < 0) {
        rc = rc == AHL_EIO
                 ? ahl_fail(err, AHL_EIO, "cannot read frame %s: %s", id, strerror(errno))
                 : ahl_fail(err, AHL_ECORRUPT,
                            "stored frame %s is damaged: it ends after %zu of its %zu bytes", id,
                            got, size);
        goto out;
    }
    ahl_sha256(data, size, digest);
    if ((rc = ahl__frame_digest_check(id, ts, digest, size, err)) < 0 ||
        (rc = finish_entry(e, size, cost, id, wrap, err)) < 0)
        goto out;
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->size = st.st_size;
    e->mtime = st.st_mtim;
    e->ctime = st.st_ctim;
    *out = e;
    e = NULL;
out:
    free(e);
    if (fd >= 0)
        close(fd);
    return rc;
}

int ahl_framestore_hold(struct ahl_framestore *fs, const char *id,
                        const char *stored_transfer_syntax, ahl_frame_wrap_fn wrap,
                        const struct ahl_frame_hold **out, struct ahl_err *err)
{
    struct entry *e;
    *out = NULL;
    if (!fs->cache)
        return AHL_ETOOBIG;
    if (!id || strlen(id) != 32)
        return ahl_fail(err, AHL_EINVAL, "frame id must be 32 lowercase hex digits");
    uint64_t hash = ahl_lru_hash(id);
    if (!(e = lookup(fs, id, hash))) {
        int rc = fs->s3 ? read_entry_s3(fs, id, stored_transfer_syntax, wrap, &e, err)
                        : read_entry(fs, id, stored_transfer_syntax, wrap, &e, err);
        if (rc < 0)
            return rc;
        insert(fs->cache, e, hash);
    }
    *out = &e->pub;
    return 0;
}
