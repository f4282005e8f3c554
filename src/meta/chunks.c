/* Chunks: turning a node's attributes into a content-addressed chunk (canonical JSON text ->
 * SHA-256 + an independent raw-deflate segment), batching the chunks of one operation, and
 * loading chunks through a byte-budgeted LRU cache shared by every thread. Also the engine
 * handle's life cycle. Formats are described in engine_internal.h. */
#include "meta/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/codec.h"
#include "base/log.h"
#include "json/json.h"
#include "base/banned.h"

struct ahl__cache_entry {
    uint8_t hash[AHL_SHA256_LEN];
    int kind;
    uint32_t ulen, crc;
    uint32_t comb_op; /* crc32_combine_gen(ulen), so a read combines in one step */
    size_t len;
    unsigned refs;                 /* holders outside the cache, plus one while in the table */
    struct ahl__cache *owner;      /* whose lock guards refs; NULL: a private copy */
    struct ahl__cache_entry *next; /* bucket chain */
    struct ahl__cache_entry *lru_prev, *lru_next;
    uint8_t data[];
};

#define ENTRY_OVERHEAD (sizeof(struct ahl__cache_entry) + 16)

bool ahl__hash_is_zero(const uint8_t *h)
{
    for (int i = 0; i < AHL_SHA256_LEN; i++)
        if (h[i])
            return false;
    return true;
}

static size_t bucket_of(const struct ahl__cache *c, const uint8_t *h)
{
    uint64_t x;
    memcpy(&x, h, sizeof x);
    return (size_t)(x & (c->nbuckets - 1));
}

static int cache_init(struct ahl__cache *c, size_t budget)
{
    memset(c, 0, sizeof *c);
    c->budget = budget;
    c->nbuckets = 1024;
    if (!(c->buckets = calloc(c->nbuckets, sizeof *c->buckets)))
        return AHL_ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    return 0;
}

static void cache_destroy(struct ahl__cache *c)
{
    if (!c->buckets)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct ahl__cache_entry *e = c->buckets[i];
        while (e) {
            struct ahl__cache_entry *n = e->next;
            free(e);
            e = n;
        }
    }
    free(c->buckets);
    c->buckets = NULL;
    pthread_mutex_destroy(&c->lock);
}

/* ---- engine handle ---------------------------------------------------------------------- */

int ahl_meta_open(struct ahl_store *store, const struct ahl_meta_opts *opts, struct ahl_meta **out)
{
    struct ahl_meta *m = calloc(1, sizeof *m);
    if (!m)
        return AHL_ENOMEM;
    m->store = store;
    if (opts)
        m->opts = *opts;
    if (!m->opts.cache_bytes)
        m->opts.cache_bytes = (size_t)256 << 20;
    if (!m->opts.gzip_cache_bytes)
        m->opts.gzip_cache_bytes = (size_t)128 << 20;
    else if (m->opts.gzip_cache_bytes == AHL_META_NO_GZIP_CACHE)
        m->opts.gzip_cache_bytes = 0;
    if (!m->opts.max_update_bytes)
        m->opts.max_update_bytes = 10000;
    if (m->opts.deflate_level <= 0 || m->opts.deflate_level > 9)
        m->opts.deflate_level = 6;
    if (cache_init(&m->chunks, m->opts.cache_bytes) < 0 ||
        cache_init(&m->groups, m->opts.gzip_cache_bytes) < 0) {
        cache_destroy(&m->chunks);
        free(m);
        return AHL_ENOMEM;
    }
    pthread_mutex_init(&m->zlock, NULL);
    pthread_cond_init(&m->groups_cond, NULL);
    if (ahl__access_init(m) < 0) {
        cache_destroy(&m->chunks);
        cache_destroy(&m->groups);
        pthread_mutex_destroy(&m->zlock);
        pthread_cond_destroy(&m->groups_cond);
        free(m);
        return AHL_ENOMEM;
    }
    /* Sets stored before the frame index or the QIDO-RS index existed get their rows now, once. */
    int rc = ahl__frames_backfill(m);
    if (rc < 0) {
        ahl_error("frame index: cannot index older image sets: %s", ahl_strerror(rc));
        ahl_meta_close(m);
        return rc;
    }
    if ((rc = ahl__qido_backfill(m)) < 0) {
        ahl_error("QIDO index: cannot index older image sets: %s", ahl_strerror(rc));
        ahl_meta_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void ahl_meta_close(struct ahl_meta *m)
{
    if (!m)
        return;
    ahl__access_release(m);
    cache_destroy(&m->chunks);
    cache_destroy(&m->groups);
    for (int i = 0; i < m->nzfree; i++) {
        deflateEnd(m->zfree[i]);
        free(m->zfree[i]);
    }
    pthread_mutex_destroy(&m->zlock);
    pthread_cond_destroy(&m->groups_cond);
    free(m);
}

struct ahl_store *ahl_meta_store(struct ahl_meta *m)
{
    return m->store;
}

size_t ahl_meta_cache_bytes(struct ahl_meta *m)
{
    pthread_mutex_lock(&m->chunks.lock);
    size_t n = m->chunks.bytes;
    pthread_mutex_unlock(&m->chunks.lock);
    return n;
}

void ahl_meta_gzip_stats(struct ahl_meta *m, struct ahl_meta_gzip_stats *out)
{
    pthread_mutex_lock(&m->groups.lock);
    out->cache_bytes = m->groups.bytes;
    out->cache_entries = m->groups.count;
    out->groups_built = m->groups_built;
    out->groups_reused = m->groups_reused;
    out->groups_waited = m->groups_waited;
    pthread_mutex_unlock(&m->groups.lock);
}

/* ---- caches (each under its own lock) ------------------------------------------------------ */

static void lru_unlink(struct ahl__cache *c, struct ahl__cache_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct ahl__cache *c, struct ahl__cache_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
}

static void entry_unref(struct ahl__cache_entry *e)
{
    if (--e->refs == 0)
        free(e);
}

static struct ahl__cache_entry *cache_find(struct ahl__cache *c, const uint8_t *h)
{
    for (struct ahl__cache_entry *e = c->buckets[bucket_of(c, h)]; e; e = e->next)
        if (!memcmp(e->hash, h, AHL_SHA256_LEN))
            return e;
    return NULL;
}

static void cache_remove(struct ahl__cache *c, struct ahl__cache_entry *e)
{
    struct ahl__cache_entry **pp = &c->buckets[bucket_of(c, e->hash)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    lru_unlink(c, e);
    c->count--;
    c->bytes -= e->len + ENTRY_OVERHEAD;
    entry_unref(e);
}

void ahl__chunk_forget(struct ahl_meta *m, const uint8_t *hash)
{
    pthread_mutex_lock(&m->chunks.lock);
    struct ahl__cache_entry *e = cache_find(&m->chunks, hash);
    if (e)
        cache_remove(&m->chunks, e);
    pthread_mutex_unlock(&m->chunks.lock);
}

static void cache_grow(struct ahl__cache *c)
{
    size_t nb = c->nbuckets * 2;
    struct ahl__cache_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* a longer chain is slower, not wrong */
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct ahl__cache_entry *e = c->buckets[i];
        while (e) {
            struct ahl__cache_entry *n = e->next;
            uint64_t x;
            memcpy(&x, e->hash, sizeof x);
            size_t k = (size_t)(x & (nb - 1));
            e->next = b[k];
            b[k] = e;
            e = n;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

/* A private copy of ch, outside any cache (one reference, freed by its release). */
static struct ahl__cache_entry *entry_new(const struct ahl_chunk *ch)
{
    struct ahl__cache_entry *e = malloc(sizeof *e + ch->len);
    if (!e)
        return NULL;
    memcpy(e->hash, ch->hash, AHL_SHA256_LEN);
    e->kind = ch->kind;
    e->ulen = ch->ulen;
    e->crc = ch->crc;
    e->comb_op = (uint32_t)crc32_combine_gen((z_off_t)ch->ulen);
    e->len = ch->len;
    memcpy(e->data, ch->data, ch->len);
    e->refs = 1;
    e->owner = NULL;
    e->next = e->lru_prev = e->lru_next = NULL;
    return e;
}

/* Inserts a copy of ch into c; returns the entry with one extra reference for the caller (or NULL
 * when out of memory or larger than a quarter of the budget: the caller then keeps its own
 * copy). */
static struct ahl__cache_entry *cache_insert(struct ahl__cache *c, const struct ahl_chunk *ch,
                                             bool want_ref)
{
    if (ch->len + ENTRY_OVERHEAD > c->budget / 4)
        return NULL;
    struct ahl__cache_entry *e = entry_new(ch);
    if (!e)
        return NULL;
    e->refs = 1 + (want_ref ? 1 : 0);
    e->owner = c;
    pthread_mutex_lock(&c->lock);
    struct ahl__cache_entry *old = cache_find(c, ch->hash);
    if (old) {
        /* Another thread loaded it first: use that one. */
        if (want_ref)
            old->refs++;
        lru_unlink(c, old);
        lru_push_front(c, old);
        pthread_mutex_unlock(&c->lock);
        free(e);
        return want_ref ? old : NULL;
    }
    size_t k = bucket_of(c, e->hash);
    e->next = c->buckets[k];
    c->buckets[k] = e;
    lru_push_front(c, e);
    c->count++;
    c->bytes += e->len + ENTRY_OVERHEAD;
    while (c->bytes > c->budget && c->lru_tail && c->lru_tail != e)
        cache_remove(c, c->lru_tail);
    if (c->count > c->nbuckets)
        cache_grow(c);
    pthread_mutex_unlock(&c->lock);
    return want_ref ? e : NULL;
}

/* Finds hash in c and takes a reference; NULL when absent. */
static struct ahl__cache_entry *cache_get(struct ahl__cache *c, const uint8_t *hash)
{
    pthread_mutex_lock(&c->lock);
    struct ahl__cache_entry *e = cache_find(c, hash);
    if (e) {
        e->refs++;
        lru_unlink(c, e);
        lru_push_front(c, e);
    }
    pthread_mutex_unlock(&c->lock);
    return e;
}

static void ref_fill(struct ahl__chunk_ref *out, struct ahl__cache_entry *e)
{
    memcpy(out->c.hash, e->hash, AHL_SHA256_LEN);
    out->c.kind = e->kind;
    out->c.ulen = e->ulen;
    out->c.crc = e->crc;
    out->c.data = e->data;
    out->c.len = e->len;
    out->comb_op = e->comb_op;
    out->ref = e;
}

int ahl__chunk_load(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                    const uint8_t *hash, struct ahl__chunk_ref *out)
{
    memset(out, 0, sizeof *out);
    if (b) {
        const struct ahl_chunk *c = ahl__batch_find(b, hash);
        if (c) {
            out->c = *c;
            out->comb_op = (uint32_t)crc32_combine_gen((z_off_t)c->ulen);
            return 0;
        }
    }
    struct ahl__cache_entry *e = cache_get(&m->chunks, hash);
    if (!e) {
        struct ahl_buf data;
        struct ahl_chunk c;
        ahl_buf_init(&data, AHL__MAX_CHUNK);
        int rc = ahl_store_chunk_get(tx, hash, &c, &data);
        if (rc < 0) {
            ahl_buf_release(&data);
            return rc;
        }
        /* Not cacheable: hand out a private entry the release frees. */
        if (!(e = cache_insert(&m->chunks, &c, true)) && !(e = entry_new(&c))) {
            ahl_buf_release(&data);
            return AHL_ENOMEM;
        }
        ahl_buf_release(&data);
    }
    ref_fill(out, e);
    return 0;
}

void ahl__chunk_release(struct ahl_meta *m, struct ahl__chunk_ref *r)
{
    struct ahl__cache_entry *e = r->ref;
    (void)m;
    if (!e)
        return;
    r->ref = NULL;
    if (!e->owner) {
        free(e);
        return;
    }
    struct ahl__cache *c = e->owner;
    pthread_mutex_lock(&c->lock);
    entry_unref(e);
    pthread_mutex_unlock(&c->lock);
}

static int claim_find(const struct ahl_meta *m, const uint8_t *key)
{
    for (int i = 0; i < m->ngroup_claims; i++)
        if (!memcmp(m->group_claims[i], key, AHL_SHA256_LEN))
            return i;
    return -1;
}

int ahl__group_get(struct ahl_meta *m, const uint8_t *key, struct ahl__chunk_ref *out,
                   bool *claimed)
{
    struct ahl__cache *c = &m->groups;
    struct ahl__cache_entry *e;
    memset(out, 0, sizeof *out);
    *claimed = false;
    pthread_mutex_lock(&c->lock);
    while (!(e = cache_find(c, key)) && claim_find(m, key) >= 0) {
        m->groups_waited++;
        pthread_cond_wait(&m->groups_cond, &c->lock);
    }
    if (e) {
        e->refs++;
        lru_unlink(c, e);
        lru_push_front(c, e);
        m->groups_reused++;
    } else if (m->ngroup_claims < AHL__GROUP_CLAIMS) {
        memcpy(m->group_claims[m->ngroup_claims++], key, AHL_SHA256_LEN);
        *claimed = true;
    }
    pthread_mutex_unlock(&c->lock);
    if (!e)
        return AHL_ENOTFOUND;
    ref_fill(out, e);
    return 0;
}

void ahl__group_put(struct ahl_meta *m, const struct ahl_chunk *seg)
{
    cache_insert(&m->groups, seg, false);
    pthread_mutex_lock(&m->groups.lock);
    m->groups_built++;
    pthread_mutex_unlock(&m->groups.lock);
}

void ahl__group_unclaim(struct ahl_meta *m, const uint8_t *key)
{
    pthread_mutex_lock(&m->groups.lock);
    int i = claim_find(m, key);
    if (i >= 0) {
        memmove(m->group_claims[i], m->group_claims[m->ngroup_claims - 1], AHL_SHA256_LEN);
        m->ngroup_claims--;
        pthread_cond_broadcast(&m->groups_cond);
    }
    pthread_mutex_unlock(&m->groups.lock);
}

/* ---- codec ---------------------------------------------------------------------------------- */

z_stream *ahl__z_get(struct ahl_meta *m)
{
    z_stream *z = NULL;
    pthread_mutex_lock(&m->zlock);
    if (m->nzfree)
        z = m->zfree[--m->nzfree];
    pthread_mutex_unlock(&m->zlock);
    if (z) {
        deflateReset(z);
        return z;
    }
    z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    if (deflateInit2(z, m->opts.deflate_level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void ahl__z_put(struct ahl_meta *m, z_stream *z)
{
    if (!z)
        return;
    pthread_mutex_lock(&m->zlock);
    if (m->nzfree < (int)(sizeof m->zfree / sizeof m->zfree[0])) {
        m->zfree[m->nzfree++] = z;
        z = NULL;
    }
    pthread_mutex_unlock(&m->zlock);
    if (z) {
        deflateEnd(z);
        free(z);
    }
}

void ahl__batch_init(struct ahl__batch *b, struct ahl_meta *m)
{
    memset(b, 0, sizeof *b);
    b->m = m;
}

void ahl__batch_release(struct ahl__batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->v[i].bytes);
    free(b->v);
    free(b->idx);
    if (b->z)
        ahl__z_put(b->m, b->z);
    memset(b, 0, sizeof *b);
}

/* Position of hash in b->v, or SIZE_MAX. */
static size_t batch_pos(const struct ahl__batch *b, const uint8_t *hash)
{
    if (!b->icap)
        return SIZE_MAX;
    uint64_t x;
    memcpy(&x, hash, sizeof x);
    for (size_t i = (size_t)(x & (b->icap - 1));; i = (i + 1) & (b->icap - 1)) {
        size_t p = b->idx[i];
        if (!p)
            return SIZE_MAX;
        if (!memcmp(b->v[p - 1].c.hash, hash, AHL_SHA256_LEN))
            return p - 1;
    }
}

static void index_put(size_t *idx, size_t icap, const uint8_t *hash, size_t pos)
{
    uint64_t x;
    memcpy(&x, hash, sizeof x);
    size_t i = (size_t)(x & (icap - 1));
    while (idx[i])
        i = (i + 1) & (icap - 1);
    idx[i] = pos + 1;
}

const struct ahl_chunk *ahl__batch_find(const struct ahl__batch *b, const uint8_t *hash)
{
    size_t p = batch_pos(b, hash);
    return p == SIZE_MAX ? NULL : &b->v[p].c;
}

static int batch_push(struct ahl__batch *b, const struct ahl_chunk *c, void *bytes)
{
    if (b->n == b->cap) {
        struct ahl__newchunk *v = ahl_array_grow(b->v, &b->cap, sizeof *v, 16);
        if (!v) {
            free(bytes);
            return AHL_ENOMEM;
        }
        b->v = v;
    }
    if ((b->n + 1) * 2 > b->icap) {
        size_t icap = b->icap ? b->icap * 2 : 64;
        size_t *idx = calloc(icap, sizeof *idx);
        if (!idx) {
            free(bytes);
            return AHL_ENOMEM;
        }
        for (size_t i = 0; i < b->n; i++)
            index_put(idx, icap, b->v[i].c.hash, i);
        free(b->idx);
        b->idx = idx;
        b->icap = icap;
    }
    b->v[b->n].c = *c;
    b->v[b->n].c.data = bytes;
    b->v[b->n].bytes = bytes;
    b->v[b->n].written = false;
    index_put(b->idx, b->icap, c->hash, b->n);
    b->n++;
    return 0;
}

int ahl__batch_add_json(struct ahl__batch *b, const json_t *obj, uint8_t hash[AHL_SHA256_LEN])
{
    struct ahl_buf text;
    int rc;
    uint8_t *z = NULL;
    ahl_buf_init(&text, AHL__MAX_CHUNK);
    if ((rc = ahl_json_write(obj, &text)) < 0)
        goto out;
    if (text.len < 2 || text.data[text.len - 1] != '}') {
        rc = AHL_EINVAL;
        goto out;
    }
    ahl_sha256(text.data, text.len, hash);
    if (ahl__batch_find(b, hash)) {
        rc = 0;
        goto out;
    }
    if (!b->z && !(b->z = ahl__z_get(b->m))) {
        rc = AHL_ENOMEM;
        goto out;
    }
    deflateReset(b->z);
    size_t plen = text.len - 1;
    size_t cap = deflateBound(b->z, plen) + 16;
    if (!(z = malloc(cap))) {
        rc = AHL_ENOMEM;
        goto out;
    }
    b->z->next_in = (Bytef *)text.data;
    b->z->avail_in = (uInt)plen;
    b->z->next_out = z;
    b->z->avail_out = (uInt)cap;
    if (deflate(b->z, Z_FULL_FLUSH) != Z_OK || b->z->avail_in != 0 || b->z->avail_out == 0) {
        rc = AHL_EINTERNAL;
        goto out;
    }
    struct ahl_chunk c;
    memcpy(c.hash, hash, AHL_SHA256_LEN);
    c.kind = AHL_CHUNK_JSON;
    c.ulen = (uint32_t)plen;
    c.crc = (uint32_t)crc32(0, (const Bytef *)text.data, (uInt)plen);
    c.len = cap - b->z->avail_out;
    c.data = NULL;
    rc = batch_push(b, &c, z);
    z = NULL;
out:
    free(z);
    ahl_buf_release(&text);
    return rc;
}

int ahl__batch_add_raw(struct ahl__batch *b, int kind, const void *p, size_t n,
                       uint8_t hash[AHL_SHA256_LEN])
{
    ahl_sha256(p, n, hash);
    if (ahl__batch_find(b, hash))
        return 0;
    void *copy = malloc(n ? n : 1);
    if (!copy)
        return AHL_ENOMEM;
    memcpy(copy, p, n);
    struct ahl_chunk c;
    memcpy(c.hash, hash, AHL_SHA256_LEN);
    c.kind = kind;
    c.ulen = (uint32_t)n;
    c.crc = (uint32_t)crc32(0, p, (uInt)n);
    c.len = n;
    c.data = NULL;
    return batch_push(b, &c, copy);
}

struct reach {
    struct ahl__batch *b;
    struct ahl_store_tx *tx;
    int depth;
};

/* Writes the batch chunk hash (if it is one and not yet written) and what it refers to. Chunks
 * outside the batch are already stored, with everything below them. Depth is bounded by the
 * document's shape: root, Series map levels, leaf, Instances map levels, leaf. */
static int reach_write(void *ctx, const uint8_t *hash)
{
    struct reach *r = ctx;
    size_t p = batch_pos(r->b, hash);
    if (p == SIZE_MAX || r->b->v[p].written)
        return 0;
    if (r->depth > 2 * AHL__MAP_MAX_DEPTH + 4)
        return AHL_ECORRUPT;
    struct ahl__newchunk *nc = &r->b->v[p];
    int rc = ahl_store_chunk_put(r->tx, &nc->c);
    if (rc < 0)
        return rc;
    nc->written = true;
    r->depth++;
    if (nc->c.kind == AHL_CHUNK_ROOT && nc->c.len == AHL__ROOT_LEN) {
        const uint8_t *d = nc->c.data;
        for (int i = 0; i < 3 && rc == 0; i++)
            if (!ahl__hash_is_zero(d + 4 + i * AHL_SHA256_LEN))
                rc = reach_write(r, d + 4 + i * AHL_SHA256_LEN);
    } else if (nc->c.kind == AHL_CHUNK_MAP) {
        rc = ahl__map_node_refs(&nc->c, reach_write, r);
    }
    r->depth--;
    return rc;
}

int ahl__batch_write_reachable(struct ahl__batch *b, struct ahl_store_tx *tx, const uint8_t *root)
{
    struct reach r = {b, tx, 0};
    return reach_write(&r, root);
}

void ahl__batch_publish(struct ahl__batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->v[i].written)
            cache_insert(&b->m->chunks, &b->v[i].c, false);
}

int ahl__json_text(const struct ahl_chunk *c, struct ahl_buf *out)
{
    if (c->kind != AHL_CHUNK_JSON)
        return AHL_ECORRUPT;
    size_t off = out->len;
    int rc = ahl_buf_reserve(out, (size_t)c->ulen + 1);
    if (rc < 0)
        return rc;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK)
        return AHL_ENOMEM;
    z.next_in = (Bytef *)c->data;
    z.avail_in = (uInt)c->len;
    z.next_out = (Bytef *)out->data + off;
    z.avail_out = (uInt)c->ulen;
    int zr = inflate(&z, Z_SYNC_FLUSH);
    bool ok = (zr == Z_OK || zr == Z_BUF_ERROR || zr == Z_STREAM_END) && z.avail_out == 0 &&
              z.total_out == c->ulen;
    /* Nothing may follow the text but the empty stored block of the flush. */
    if (ok && z.avail_in) {
        unsigned char extra;
        z.next_out = &extra;
        z.avail_out = 1;
        zr = inflate(&z, Z_SYNC_FLUSH);
        ok = z.avail_out == 1 && z.avail_in == 0;
    }
    inflateEnd(&z);
    if (!ok)
        return AHL_ECORRUPT;
    out->len = off + c->ulen;
    out->data[out->len++] = '}';
    out->data[out->len] = '\0';
    if (crc32(0, (const Bytef *)out->data + off, (uInt)c->ulen) != c->crc) {
        ahl_buf_truncate(out, off);
        return AHL_ECORRUPT;
    }
    return 0;
}

int ahl__json_load(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                   const uint8_t *hash, json_t **out)
{
    struct ahl__chunk_ref r;
    struct ahl_buf text;
    int rc = ahl__chunk_load(m, tx, b, hash, &r);
    if (rc < 0)
        return rc;
    ahl_buf_init(&text, AHL__MAX_CHUNK);
    rc = ahl__json_text(&r.c, &text);
    ahl__chunk_release(m, &r);
    if (rc == 0) {
        json_error_t jerr;
        *out = json_loadb(text.data, text.len, JSON_ALLOW_NUL, &jerr);
        if (!*out || !json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            rc = AHL_ECORRUPT;
        }
    }
    ahl_buf_release(&text);
    return rc;
}
