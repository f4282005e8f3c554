/* The rendered-answer cache of DICOMweb metadata (dicomweb_cache.h): a chained hash table of
 * entries on a doubly linked recency list, under one mutex. Lookups copy the body out while
 * holding the lock, so an entry is never freed while a request reads it; a copy of a few MB costs
 * a fraction of a millisecond, far less than rendering. Also the gzip helpers the metadata
 * resources use (compress once, when an answer is stored). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "api/dicomweb_cache.h"
#include "base/err.h"
#include "base/lru.h"
#include "base/banned.h"

struct entry {
    struct ahl_lru_link link; /* table and recency list */
    size_t cost;
    size_t plain_len, gz_len;
    char *plain, *gz;
    char key[];
};

struct ahl__dwcache {
    pthread_mutex_t lock;
    size_t budget, bytes;
    struct ahl_lru lru;
};

static struct entry *entry_of(struct ahl_lru_link *l)
{
    return AHL_LRU_ENTRY(l, struct entry, link);
}

int ahl__dwcache_new(size_t budget, struct ahl__dwcache **out)
{
    struct ahl__dwcache *c = calloc(1, sizeof *c);
    if (!c)
        return AHL_ENOMEM;
    c->budget = budget;
    if (ahl_lru_init(&c->lru, 256) < 0) {
        free(c);
        return AHL_ENOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return 0;
}

static void entry_free(struct entry *e)
{
    free(e->plain);
    free(e->gz);
    free(e);
}

void ahl__dwcache_free(struct ahl__dwcache *c)
{
    if (!c)
        return;
    for (struct ahl_lru_link *l = c->lru.newest, *next; l; l = next) {
        struct entry *e = entry_of(l);
        next = l->older;
        entry_free(e);
    }
    pthread_mutex_destroy(&c->lock);
    ahl_lru_release(&c->lru);
    free(c);
}

static struct entry *find(struct ahl__dwcache *c, const char *key, uint64_t h)
{
    for (struct ahl_lru_link *l = *ahl_lru_bucket(&c->lru, h); l; l = l->next_in_bucket)
        if (l->hash == h && strcmp(entry_of(l)->key, key) == 0)
            return entry_of(l);
    return NULL;
}

static void drop(struct ahl__dwcache *c, struct entry *e)
{
    ahl_lru_remove(&c->lru, &e->link);
    c->bytes -= e->cost;
    entry_free(e);
}

int ahl__dwcache_get(struct ahl__dwcache *c, const char *key, bool gzip, struct ahl_buf *out)
{
    uint64_t h = ahl_lru_hash(key);
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    struct entry *e = find(c, key, h);
    if (e) {
        ahl_lru_touch(&c->lru, &e->link);
        rc = ahl_buf_add(out, gzip ? e->gz : e->plain, gzip ? e->gz_len : e->plain_len) < 0
                 ? AHL_ENOMEM
                 : 1;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static char *dup_bytes(const void *p, size_t n)
{
    char *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

int ahl__dwcache_put(struct ahl__dwcache *c, const char *key, const void *plain, size_t plain_len,
                     const void *gz, size_t gz_len)
{
    size_t klen = strlen(key);
    size_t cost = sizeof(struct entry) + klen + 1 + plain_len + gz_len;
    if (cost > c->budget / 4)
        return 0;
    struct entry *e = calloc(1, sizeof *e + klen + 1);
    if (!e)
        return AHL_ENOMEM;
    memcpy(e->key, key, klen + 1);
    e->cost = cost;
    e->plain_len = plain_len;
    e->gz_len = gz_len;
    e->plain = dup_bytes(plain, plain_len);
    e->gz = dup_bytes(gz, gz_len);
    if (!e->plain || !e->gz) {
        entry_free(e);
        return AHL_ENOMEM;
    }
    uint64_t h = ahl_lru_hash(key);
    pthread_mutex_lock(&c->lock);
    struct entry *old = find(c, key, h);
    if (old)
        drop(c, old);
    while (c->lru.oldest && c->bytes + cost > c->budget)
        drop(c, entry_of(c->lru.oldest));
    ahl_lru_insert(&c->lru, &e->link, h);
    c->bytes += cost;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

size_t ahl__dwcache_bytes(struct ahl__dwcache *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->bytes;
    pthread_mutex_unlock(&c->lock);
    return n;
}

size_t ahl__dwcache_count(struct ahl__dwcache *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->lru.count;
    pthread_mutex_unlock(&c->lock);
    return n;
}

int ahl__gzip(const void *p, size_t n, struct ahl_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* windowBits 15 + 16: a gzip wrapper. Level 6: compressed once, served many times. */
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return AHL_ENOMEM;
    size_t start = out->len;
    size_t bound = deflateBound(&z, (uLong)n);
    int rc = ahl_buf_reserve(out, bound);
    if (rc == 0) {
        z.next_in = (Bytef *)(uintptr_t)p;
        z.avail_in = (uInt)n;
        z.next_out = (Bytef *)out->data + start;
        z.avail_out = (uInt)bound;
        rc = deflate(&z, Z_FINISH) == Z_STREAM_END ? 0 : AHL_ENOMEM;
        if (rc == 0)
            out->len = start + z.total_out;
    }
    deflateEnd(&z);
    return rc;
}
