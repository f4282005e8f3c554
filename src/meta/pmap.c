/* Persistent maps: an immutable B+tree of UID -> fixed-size value whose nodes are map chunks.
 *
 * Why: the Series map and each Instances map of an image set may hold tens of thousands of
 * entries; storing them as one chunk would make every instance change rewrite the whole map.
 * As a B+tree of ~32-entry nodes, setting one key rewrites one root-to-leaf path, O(log n), and
 * every other node is shared with the previous version.
 *
 * Shape: leaves hold (key, value); inner nodes hold (smallest key of the child, child hash, child
 * entry count). A node over AHL__MAP_MAX entries splits in two; an emptied node disappears from
 * its parent; underfull nodes are allowed (they cost space, never correctness); a root inner node
 * with one child is replaced by the child. Depth is capped by AHL__MAP_MAX_DEPTH, so the
 * recursion below is bounded even on damaged data. Format in engine_internal.h.
 */
#include "meta/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/banned.h"

#define HDR_LEN 16
#define INNER_VLEN (AHL_SHA256_LEN + 8)

struct entry {
    const char *key;
    size_t keylen;
    const uint8_t *val;
};

struct node {
    int level;
    size_t vlen;
    uint32_t n;
    uint64_t total;
    struct entry *e;
};

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static int keycmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static int node_parse(const struct ahl_chunk *c, struct node *nd)
{
    const uint8_t *p = c->data;
    memset(nd, 0, sizeof *nd);
    if (c->kind != AHL_CHUNK_MAP || c->len < HDR_LEN || p[0] != 'M')
        return AHL_ECORRUPT;
    nd->level = p[1];
    nd->vlen = (size_t)get_le(p + 2, 2);
    nd->n = (uint32_t)get_le(p + 4, 4);
    nd->total = get_le(p + 8, 8);
    if (nd->level > AHL__MAP_MAX_DEPTH || nd->n == 0 || nd->n > AHL__MAP_MAX + 1 ||
        (nd->level > 0 && nd->vlen != INNER_VLEN))
        return AHL_ECORRUPT;
    if (!(nd->e = malloc(nd->n * sizeof *nd->e)))
        return AHL_ENOMEM;
    size_t off = HDR_LEN;
    for (uint32_t i = 0; i < nd->n; i++) {
        if (c->len - off < 2)
            goto bad;
        size_t kl = (size_t)get_le(p + off, 2);
        off += 2;
        if (c->len - off < kl + nd->vlen)
            goto bad;
        nd->e[i].key = (const char *)p + off;
        nd->e[i].keylen = kl;
        nd->e[i].val = p + off + kl;
        off += kl + nd->vlen;
        if (i && keycmp(nd->e[i - 1].key, nd->e[i - 1].keylen, nd->e[i].key, kl) >= 0)
            goto bad;
    }
    if (off != c->len)
        goto bad;
    return 0;
bad:
    free(nd->e);
    nd->e = NULL;
    return AHL_ECORRUPT;
}

int ahl__map_node_refs(const struct ahl_chunk *c, int (*cb)(void *ctx, const uint8_t *hash),
                       void *ctx)
{
    struct node nd;
    int rc = node_parse(c, &nd);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < nd.n && rc == 0; i++) {
        if (nd.level > 0) {
            rc = cb(ctx, nd.e[i].val);
            continue;
        }
        for (size_t off = 0; off + AHL_SHA256_LEN <= nd.vlen && rc == 0; off += AHL_SHA256_LEN)
            if (!ahl__hash_is_zero(nd.e[i].val + off))
                rc = cb(ctx, nd.e[i].val + off);
    }
    free(nd.e);
    return rc;
}

/* Loads and parses a node; the chunk reference is kept in r (entries point into it). */
static int node_load(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                     const uint8_t *hash, struct ahl__chunk_ref *r, struct node *nd)
{
    int rc = ahl__chunk_load(m, tx, b, hash, r);
    if (rc < 0)
        return rc == AHL_ENOTFOUND ? AHL_ECORRUPT : rc;
    if ((rc = node_parse(&r->c, nd)) < 0)
        ahl__chunk_release(m, r);
    return rc;
}

static void node_drop(struct ahl_meta *m, struct ahl__chunk_ref *r, struct node *nd)
{
    free(nd->e);
    nd->e = NULL;
    ahl__chunk_release(m, r);
}

/* Encodes entries e[0..n) of one level and adds the node to the batch. */
static int node_store(struct ahl__batch *b, int level, size_t vlen, const struct entry *e, size_t n,
                      uint8_t hash[AHL_SHA256_LEN], uint64_t *total)
{
    struct ahl_buf buf;
    uint8_t hdr[HDR_LEN];
    uint64_t t = 0;
    int rc = 0;
    ahl_buf_init(&buf, AHL__MAX_CHUNK);
    for (size_t i = 0; i < n; i++)
        t += level ? get_le(e[i].val + AHL_SHA256_LEN, 8) : 1;
    hdr[0] = 'M';
    hdr[1] = (uint8_t)level;
    put_le(hdr + 2, vlen, 2);
    put_le(hdr + 4, n, 4);
    put_le(hdr + 8, t, 8);
    rc = ahl_buf_add(&buf, hdr, sizeof hdr);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint8_t kl[2];
        if (e[i].keylen > 0xffff) {
            rc = AHL_ETOOBIG;
            break;
        }
        put_le(kl, e[i].keylen, 2);
        if ((rc = ahl_buf_add(&buf, kl, 2)) == 0 &&
            (rc = ahl_buf_add(&buf, e[i].key, e[i].keylen)) == 0)
            rc = ahl_buf_add(&buf, e[i].val, vlen);
    }
    if (rc == 0)
        rc = ahl__batch_add_raw(b, AHL_CHUNK_MAP, buf.data, buf.len, hash);
    ahl_buf_release(&buf);
    *total = t;
    return rc;
}

/* A node produced by a level below: its smallest key (owned), hash and entry count. */
struct part {
    char *key;
    size_t keylen;
    uint8_t val[INNER_VLEN]; /* hash + count */
};

static int part_make(struct part *p, const struct entry *first, const uint8_t *hash, uint64_t total)
{
    if (!(p->key = malloc(first->keylen + 1)))
        return AHL_ENOMEM;
    memcpy(p->key, first->key, first->keylen);
    p->keylen = first->keylen;
    memcpy(p->val, hash, AHL_SHA256_LEN);
    put_le(p->val + AHL_SHA256_LEN, total, 8);
    return 0;
}

/* Stores e[0..n) as one node, or two halves if it overflows: nparts 1 or 2 (0 when n == 0). */
static int store_split(struct ahl__batch *b, int level, size_t vlen, const struct entry *e,
                       size_t n, struct part parts[2], int *nparts)
{
    uint8_t h[AHL_SHA256_LEN];
    uint64_t t;
    int rc;
    *nparts = 0;
    if (n == 0)
        return 0;
    size_t cut = n > AHL__MAP_MAX ? n / 2 : n;
    if ((rc = node_store(b, level, vlen, e, cut, h, &t)) < 0 ||
        (rc = part_make(&parts[0], &e[0], h, t)) < 0)
        return rc;
    *nparts = 1;
    if (cut < n) {
        if ((rc = node_store(b, level, vlen, e + cut, n - cut, h, &t)) < 0 ||
            (rc = part_make(&parts[1], &e[cut], h, t)) < 0)
            return rc;
        *nparts = 2;
    }
    return 0;
}

int ahl__map_build(struct ahl__batch *b, const struct ahl__map_entry *in, size_t n, size_t vlen,
                   uint8_t root[AHL_SHA256_LEN])
{
    struct entry *cur = NULL;
    struct part *parts = NULL;
    size_t nparts = 0, ncur = n;
    int rc = 0, level = 0;
    memset(root, 0, AHL_SHA256_LEN);
    if (n == 0)
        return 0;
    if (!(cur = malloc(n * sizeof *cur)))
        return AHL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        cur[i].key = in[i].key;
        cur[i].keylen = in[i].keylen;
        cur[i].val = in[i].value;
    }
    for (;;) {
        size_t nn = (ncur + AHL__MAP_FANOUT - 1) / AHL__MAP_FANOUT;
        struct part *np = calloc(nn, sizeof *np);
        if (!np) {
            rc = AHL_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < nn && rc == 0; i++) {
            size_t lo = i * AHL__MAP_FANOUT,
                   k = ncur - lo < AHL__MAP_FANOUT ? ncur - lo : AHL__MAP_FANOUT;
            uint8_t h[AHL_SHA256_LEN];
            uint64_t t;
            if ((rc = node_store(b, level, level ? INNER_VLEN : vlen, cur + lo, k, h, &t)) == 0)
                rc = part_make(&np[i], &cur[lo], h, t);
        }
        for (size_t i = 0; i < nparts; i++)
            free(parts[i].key);
        free(parts);
        parts = np;
        nparts = nn;
        if (rc < 0)
            goto out;
        if (nn == 1) {
            memcpy(root, parts[0].val, AHL_SHA256_LEN);
            goto out;
        }
        if (++level > AHL__MAP_MAX_DEPTH) {
            rc = AHL_ETOOBIG;
            goto out;
        }
        for (size_t i = 0; i < nn; i++) {
            cur[i].key = parts[i].key;
            cur[i].keylen = parts[i].keylen;
            cur[i].val = parts[i].val;
        }
        ncur = nn;
    }
out:
    for (size_t i = 0; i < nparts; i++)
        free(parts[i].key);
    free(parts);
    free(cur);
    return rc;
}

/* Index of the last entry whose key is <= key, or -1. */
static long find_le(const struct node *nd, const char *key, size_t keylen, bool *exact)
{
    long lo = 0, hi = (long)nd->n - 1, ans = -1;
    *exact = false;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        int c = keycmp(nd->e[mid].key, nd->e[mid].keylen, key, keylen);
        if (c <= 0) {
            ans = mid;
            if (c == 0) {
                *exact = true;
                break;
            }
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return ans;
}

int ahl__map_get(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                 const uint8_t *root, const char *key, size_t keylen, uint8_t *value, size_t vlen)
{
    uint8_t h[AHL_SHA256_LEN];
    if (ahl__hash_is_zero(root))
        return AHL_ENOTFOUND;
    memcpy(h, root, AHL_SHA256_LEN);
    for (int depth = 0; depth <= AHL__MAP_MAX_DEPTH; depth++) {
        struct ahl__chunk_ref r;
        struct node nd;
        bool exact;
        int rc = node_load(m, tx, b, h, &r, &nd);
        if (rc < 0)
            return rc;
        long i = find_le(&nd, key, keylen, &exact);
        if (nd.level == 0) {
            rc = AHL_ENOTFOUND;
            if (exact && nd.vlen == vlen) {
                memcpy(value, nd.e[i].val, vlen);
                rc = 0;
            } else if (exact) {
                rc = AHL_ECORRUPT;
            }
            node_drop(m, &r, &nd);
            return rc;
        }
        if (i < 0) {
            node_drop(m, &r, &nd);
            return AHL_ENOTFOUND;
        }
        memcpy(h, nd.e[i].val, AHL_SHA256_LEN);
        node_drop(m, &r, &nd);
    }
    return AHL_ECORRUPT;
}

/* Sets or deletes key below node hash; the replacement nodes are returned as parts. */
static int set_rec(struct ahl__batch *b, struct ahl_store_tx *tx, const uint8_t *hash, int depth,
                   const char *key, size_t keylen, const uint8_t *value, size_t vlen,
                   struct part out[2], int *nout)
{
    struct ahl_meta *m = b->m;
    struct ahl__chunk_ref r;
    struct node nd;
    struct entry *ne = NULL;
    struct part sub[2] = {{0}, {0}};
    int nsub = 0, rc;
    bool exact;
    if (depth > AHL__MAP_MAX_DEPTH)
        return AHL_ECORRUPT;
    if ((rc = node_load(m, tx, b, hash, &r, &nd)) < 0)
        return rc;
    if (!(ne = malloc((nd.n + 2) * sizeof *ne))) {
        rc = AHL_ENOMEM;
        goto out;
    }
    long i = find_le(&nd, key, keylen, &exact);
    size_t n = 0;
    if (nd.level == 0) {
        if (value && nd.vlen != vlen) {
            rc = AHL_ECORRUPT;
            goto out;
        }
        if (!value && !exact) {
            rc = AHL_ENOTFOUND;
            goto out;
        }
        for (long k = 0; k <= i; k++)
            if (!(exact && k == i))
                ne[n++] = nd.e[k];
        if (value)
            ne[n++] = (struct entry){key, keylen, value};
        for (long k = i + 1; k < (long)nd.n; k++)
            ne[n++] = nd.e[k];
        rc = store_split(b, 0, nd.vlen, ne, n, out, nout);
        goto out;
    }
    if (i < 0) {
        if (!value) {
            rc = AHL_ENOTFOUND;
            goto out;
        }
        i = 0; /* a key below every other goes to the first child */
    }
    if ((rc = set_rec(b, tx, nd.e[i].val, depth + 1, key, keylen, value, vlen, sub, &nsub)) < 0)
        goto out;
    for (long k = 0; k < i; k++)
        ne[n++] = nd.e[k];
    for (int k = 0; k < nsub; k++)
        ne[n++] = (struct entry){sub[k].key, sub[k].keylen, sub[k].val};
    for (long k = i + 1; k < (long)nd.n; k++)
        ne[n++] = nd.e[k];
    rc = store_split(b, nd.level, INNER_VLEN, ne, n, out, nout);
out:
    for (int k = 0; k < 2; k++)
        free(sub[k].key);
    free(ne);
    node_drop(m, &r, &nd);
    return rc;
}

int ahl__map_set(struct ahl__batch *b, struct ahl_store_tx *tx, const uint8_t *root,
                 const char *key, size_t keylen, const uint8_t *value, size_t vlen,
                 uint8_t newroot[AHL_SHA256_LEN])
{
    struct part parts[2] = {{0}, {0}};
    int nparts = 0, rc;
    if (ahl__hash_is_zero(root)) {
        if (!value)
            return AHL_ENOTFOUND;
        struct ahl__map_entry e = {key, keylen, value};
        return ahl__map_build(b, &e, 1, vlen, newroot);
    }
    if ((rc = set_rec(b, tx, root, 0, key, keylen, value, vlen, parts, &nparts)) < 0)
        goto out;
    if (nparts == 0) {
        memset(newroot, 0, AHL_SHA256_LEN);
    } else if (nparts == 1) {
        /* Collapse inner roots with a single child so depth follows the size. */
        uint8_t h[AHL_SHA256_LEN];
        memcpy(h, parts[0].val, AHL_SHA256_LEN);
        for (int d = 0; d <= AHL__MAP_MAX_DEPTH; d++) {
            struct ahl__chunk_ref r;
            struct node nd;
            if ((rc = node_load(b->m, tx, b, h, &r, &nd)) < 0)
                goto out;
            bool collapse = nd.level > 0 && nd.n == 1;
            if (collapse)
                memcpy(h, nd.e[0].val, AHL_SHA256_LEN);
            node_drop(b->m, &r, &nd);
            if (!collapse)
                break;
        }
        memcpy(newroot, h, AHL_SHA256_LEN);
    } else {
        struct ahl__chunk_ref r;
        struct node nd;
        if ((rc = node_load(b->m, tx, b, parts[0].val, &r, &nd)) < 0)
            goto out;
        int level = nd.level + 1;
        node_drop(b->m, &r, &nd);
        struct entry e[2] = {{parts[0].key, parts[0].keylen, parts[0].val},
                             {parts[1].key, parts[1].keylen, parts[1].val}};
        uint64_t t;
        rc = node_store(b, level, INNER_VLEN, e, 2, newroot, &t);
    }
out:
    free(parts[0].key);
    free(parts[1].key);
    return rc;
}

int ahl__map_count(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                   const uint8_t *root, uint64_t *out)
{
    struct ahl__chunk_ref r;
    struct node nd;
    *out = 0;
    if (ahl__hash_is_zero(root))
        return 0;
    int rc = node_load(m, tx, b, root, &r, &nd);
    if (rc < 0)
        return rc;
    *out = nd.total;
    node_drop(m, &r, &nd);
    return 0;
}

static int leaves_rec(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                      const uint8_t *hash, int depth, ahl__map_leaf_cb cb, void *ctx)
{
    struct ahl__chunk_ref r;
    struct node nd;
    if (depth > AHL__MAP_MAX_DEPTH)
        return AHL_ECORRUPT;
    int rc = node_load(m, tx, b, hash, &r, &nd);
    if (rc < 0)
        return rc;
    if (nd.level == 0) {
        struct ahl__map_entry e[AHL__MAP_MAX + 1];
        for (uint32_t i = 0; i < nd.n; i++)
            e[i] = (struct ahl__map_entry){nd.e[i].key, nd.e[i].keylen, nd.e[i].val};
        rc = cb(ctx, hash, e, nd.n);
    }
    for (uint32_t i = 0; nd.level > 0 && i < nd.n && rc == 0; i++)
        rc = leaves_rec(m, tx, b, nd.e[i].val, depth + 1, cb, ctx);
    node_drop(m, &r, &nd);
    return rc;
}

int ahl__map_walk_leaves(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                         const uint8_t *root, ahl__map_leaf_cb cb, void *ctx)
{
    if (ahl__hash_is_zero(root))
        return 0;
    return leaves_rec(m, tx, b, root, 0, cb, ctx);
}

struct entry_walk {
    ahl__map_cb cb;
    void *ctx;
};

static int walk_entries(void *vctx, const uint8_t *hash, const struct ahl__map_entry *e, size_t n)
{
    struct entry_walk *w = vctx;
    int rc = 0;
    (void)hash;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = w->cb(w->ctx, e[i].key, e[i].keylen, e[i].value);
    return rc;
}

int ahl__map_walk(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                  const uint8_t *root, ahl__map_cb cb, void *ctx)
{
    struct entry_walk w = {cb, ctx};
    return ahl__map_walk_leaves(m, tx, b, root, walk_entries, &w);
}

static int nodes_rec(struct ahl_meta *m, struct ahl_store_tx *tx, const uint8_t *hash, int depth,
                     int (*cb)(void *, const uint8_t *, bool, const uint8_t *, size_t), void *ctx)
{
    struct ahl__chunk_ref r;
    struct node nd;
    if (depth > AHL__MAP_MAX_DEPTH)
        return AHL_ECORRUPT;
    int rc = node_load(m, tx, NULL, hash, &r, &nd);
    if (rc < 0)
        return rc;
    rc = cb(ctx, hash, false, NULL, 0);
    for (uint32_t i = 0; i < nd.n && rc == 0; i++) {
        if (nd.level == 0)
            rc = cb(ctx, NULL, true, nd.e[i].val, nd.vlen);
        else
            rc = nodes_rec(m, tx, nd.e[i].val, depth + 1, cb, ctx);
    }
    node_drop(m, &r, &nd);
    return rc;
}

int ahl__map_walk_nodes(struct ahl_meta *m, struct ahl_store_tx *tx, const uint8_t *root,
                        int (*cb)(void *ctx, const uint8_t *hash, bool leaf, const uint8_t *v,
                                  size_t vlen),
                        void *ctx)
{
    if (ahl__hash_is_zero(root))
        return 0;
    return nodes_rec(m, tx, root, 0, cb, ctx);
}

/* ---- diff of two maps ----
 * Both trees are held as a frontier of items in key order: unexpanded subtrees (hash, level)
 * and leaf entries. Each round drops the subtrees whose hash the other side's frontier also
 * holds (equal hash, equal entries), then expands the remaining subtrees of the highest level
 * into their children. Subtrees of different levels never have equal hashes, so expanding from
 * the top keeps equal ones comparable; only nodes on differing paths are ever loaded. */

struct ditem {
    const char *key;
    size_t keylen;
    const uint8_t *val; /* subtree: its hash; entry: its value */
    int level;          /* subtree: its level; entry: -1 */
};

struct dside {
    struct ditem *v;
    size_t n, cap;
};

struct dstate {
    struct ahl_meta *m;
    struct ahl_store_tx *tx;
    size_t vlen;
    struct ahl__chunk_ref *refs;
    size_t nrefs, caprefs;
};

static int dside_push(struct dside *s, struct ditem it)
{
    if (s->n == s->cap) {
        struct ditem *v = ahl_array_grow(s->v, &s->cap, sizeof *v, 16);
        if (!v)
            return AHL_ENOMEM;
        s->v = v;
    }
    s->v[s->n++] = it;
    return 0;
}

/* Loads a subtree's node, keeps its chunk for the whole diff, and appends its items to out. */
static int dexpand(struct dstate *d, const struct ditem *it, struct dside *out)
{
    if (d->nrefs == d->caprefs) {
        struct ahl__chunk_ref *v = ahl_array_grow(d->refs, &d->caprefs, sizeof *v, 16);
        if (!v)
            return AHL_ENOMEM;
        d->refs = v;
    }
    struct node nd;
    int rc = node_load(d->m, d->tx, NULL, it->val, &d->refs[d->nrefs], &nd);
    if (rc < 0)
        return rc;
    d->nrefs++;
    if ((it->level >= 0 && nd.level != it->level) || (nd.level == 0 && nd.vlen != d->vlen)) {
        free(nd.e);
        return AHL_ECORRUPT;
    }
    for (uint32_t i = 0; i < nd.n && rc == 0; i++)
        rc = dside_push(out, (struct ditem){nd.e[i].key, nd.e[i].keylen, nd.e[i].val,
                                            nd.level ? nd.level - 1 : -1});
    free(nd.e);
    return rc;
}

static int dhashes(const struct dside *s, struct ahl__hset *hs)
{
    ahl__hset_clear(hs);
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].level >= 0) {
            int rc = ahl__hset_add(hs, s->v[i].val);
            if (rc < 0)
                return rc;
        }
    return 0;
}

/* Marks (level -2) the subtrees that both sides hold. */
static int dcancel(struct dside *a, struct dside *b, struct ahl__hset *ha, struct ahl__hset *hb)
{
    int rc;
    if ((rc = dhashes(a, ha)) < 0 || (rc = dhashes(b, hb)) < 0)
        return rc;
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].level >= 0 && ahl__hset_has(hb, a->v[i].val))
            a->v[i].level = -2;
    for (size_t i = 0; i < b->n; i++)
        if (b->v[i].level >= 0 && ahl__hset_has(ha, b->v[i].val))
            b->v[i].level = -2;
    return 0;
}

/* Rebuilds s without dropped items, expanding the subtrees of level top. */
static int dround(struct dstate *d, struct dside *s, int top)
{
    struct dside out = {0};
    int rc = 0;
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        if (s->v[i].level == -2)
            continue;
        if (s->v[i].level == top)
            rc = dexpand(d, &s->v[i], &out);
        else
            rc = dside_push(&out, s->v[i]);
    }
    free(s->v);
    *s = out;
    return rc;
}

int ahl__map_diff(struct ahl_meta *m, struct ahl_store_tx *tx, const uint8_t *ra,
                  const uint8_t *rb, size_t vlen, ahl__map_diff_cb cb, void *ctx)
{
    struct dstate d = {.m = m, .tx = tx, .vlen = vlen};
    struct dside a = {0}, b = {0};
    struct ahl__hset ha = {0}, hb = {0};
    int rc = 0;
    if (!memcmp(ra, rb, AHL_SHA256_LEN))
        return 0;
    /* The roots' levels are unknown until loaded: expand them first (level -1 check skipped). */
    struct ditem top = {"", 0, NULL, AHL__MAP_MAX_DEPTH + 1};
    if (!ahl__hash_is_zero(ra)) {
        top.val = ra;
        rc = dside_push(&a, top);
    }
    if (rc == 0 && !ahl__hash_is_zero(rb)) {
        top.val = rb;
        rc = dside_push(&b, top);
    }
    for (int round = 0; rc == 0; round++) {
        if (round > AHL__MAP_MAX_DEPTH + 2) {
            rc = AHL_ECORRUPT;
            break;
        }
        int max = -1;
        if ((rc = dcancel(&a, &b, &ha, &hb)) < 0)
            break;
        for (size_t i = 0; i < a.n; i++)
            max = a.v[i].level > max ? a.v[i].level : max;
        for (size_t i = 0; i < b.n; i++)
            max = b.v[i].level > max ? b.v[i].level : max;
        if (round == 0) {
            /* Expand both roots whatever their levels. */
            struct dside na = {0}, nb = {0};
            for (size_t i = 0; i < a.n && rc == 0; i++)
                rc = dexpand(&d, &(struct ditem){"", 0, a.v[i].val, -1}, &na);
            for (size_t i = 0; i < b.n && rc == 0; i++)
                rc = dexpand(&d, &(struct ditem){"", 0, b.v[i].val, -1}, &nb);
            free(a.v);
            free(b.v);
            a = na;
            b = nb;
            continue;
        }
        /* max < 0: nothing left to expand, the round only drops cancelled subtrees. */
        int expand = max >= 0 ? max : AHL__MAP_MAX_DEPTH + 5;
        if ((rc = dround(&d, &a, expand)) < 0 || (rc = dround(&d, &b, expand)) < 0 || max < 0)
            break;
    }
    /* Only entries remain, each side in key order: merge them. */
    for (size_t i = 0, j = 0; rc == 0 && (i < a.n || j < b.n);) {
        int c = i == a.n ? 1 : j == b.n ? -1 : keycmp(a.v[i].key, a.v[i].keylen, b.v[j].key, b.v[j].keylen);
        if (c < 0) {
            rc = cb(ctx, a.v[i].key, a.v[i].keylen, a.v[i].val, NULL);
            i++;
        } else if (c > 0) {
            rc = cb(ctx, b.v[j].key, b.v[j].keylen, NULL, b.v[j].val);
            j++;
        } else {
            if (memcmp(a.v[i].val, b.v[j].val, vlen))
                rc = cb(ctx, a.v[i].key, a.v[i].keylen, a.v[i].val, b.v[j].val);
            i++;
            j++;
        }
    }
    free(a.v);
    free(b.v);
    ahl__hset_release(&ha);
    ahl__hset_release(&hb);
    for (size_t i = 0; i < d.nrefs; i++)
        ahl__chunk_release(m, &d.refs[i]);
    free(d.refs);
    return rc;
}
