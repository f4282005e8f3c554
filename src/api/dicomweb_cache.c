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
#include "base/banned.h"

struct entry {
    struct entry *next_in_bucket;
    struct entry *newer, *older; /* recency list */
    uint64_t hash;
    size_t cost;
    size_t plain_len, gz_len;
    char *plain, *gz;
    char key[];
};

struct ahl__dwcache {
    pthread_mutex_t lock;
    size_t budget, bytes, count;
    struct entry **buckets;
    size_t nbuckets; /* a power of two */
    struct entry *newest, *oldest;
};

static uint64_t key_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int ahl__dwcache_new(size_t budget, struct ahl__dwcache **out)
{
    struct ahl__dwcache *c = calloc(1, sizeof *c);
    if (!c)
        return AHL_ENOMEM;
    c->budget = budget;
    c->nbuckets = 256;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    if (!c->buckets) {
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
    for (struct entry *e = c->newest, *next; e; e = next) {
        next = e->older;
        entry_free(e);
    }
    pthread_mutex_destroy(&c->lock);
    free(c->buckets);
    free(c);
}

static void list_unlink(struct ahl__dwcache *c, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void list_push(struct ahl__dwcache *c, struct entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    c->newest = e;
    if (!c->oldest)
        c->oldest = e;
}

static struct entry **find(struct ahl__dwcache *c, const char *key, uint64_t h)
{
    struct entry **p = &c->buckets[h & (c->nbuckets - 1)];
    while (*p && ((*p)->hash != h || strcmp((*p)->key, key) != 0))
        p = &(*p)->next_in_bucket;
    return p;
}

static void drop(struct ahl__dwcache *c, struct entry **slot)
{
    struct entry *e = *slot;
    *slot = e->next_in_bucket;
    list_unlink(c, e);
    c->bytes -= e->cost;
    c->count--;
    entry_free(e);
}

/* Doubles the table when it holds more entries than buckets; a failed allocation keeps the
 * table as it is (longer chains, still correct). */
static void maybe_grow(struct ahl__dwcache *c)
{
    if (c->count <= c->nbuckets)
        return;
    size_t n = c->nbuckets * 2;
    struct entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < c->nbuckets; i++)
        for (struct entry *e = c->buckets[i], *next; e; e = next) {
            next = e->next_in_bucket;
            e->next_in_bucket = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

int ahl__dwcache_get(struct ahl__dwcache *c, const char *key, bool gzip, struct ahl_buf *out)
{
    uint64_t h = key_hash(key);
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    struct entry *e = *find(c, key, h);
    if (e) {
        list_unlink(c, e);
        list_push(c, e);
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
    e->hash = key_hash(key);
    e->cost = cost;
    e->plain_len = plain_len;
    e->gz_len = gz_len;
    e->plain = dup_bytes(plain, plain_len);
    e->gz = dup_bytes(gz, gz_len);
    if (!e->plain || !e->gz) {
        entry_free(e);
        return AHL_ENOMEM;
    }
    pthread_mutex_lock(&c->lock);
    struct entry **slot = find(c, key, e->hash);
    if (*slot)
        drop(c, slot);
    while (c->oldest && c->bytes + cost > c->budget)
        drop(c, find(c, c->oldest->key, c->oldest->hash));
    slot = &c->buckets[e->hash & (c->nbuckets - 1)];
    e->next_in_bucket = *slot;
    *slot = e;
    list_push(c, e);
    c->bytes += cost;
    c->count++;
    maybe_grow(c);
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
    size_t n = c->count;
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
