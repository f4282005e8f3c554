/* The collector: versions of deleted image sets and chunks no live version reaches are removed,
 * and the frames live versions list are told to the caller (meta.h, "garbage collection", gives
 * the protocol and why it is safe beside concurrent writers;
 * docs/architecture.md#garbage-collection).
 *
 * The walk visits each chunk once (the marked set), reading it straight from the store, not
 * through the chunk cache: a collection should not evict what readers use. Instance chunks are
 * inflated only when their text names an "ID" (ImageFrames and BulkData entries), and parsed
 * then. Memory: about 64 bytes per live chunk and per candidate, 64 per listed frame.
 */
#define _GNU_SOURCE /* memmem */
#include "meta/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/codec.h"
#include "base/banned.h"

struct cand {
    uint8_t hash[AHL_SHA256_LEN];
    uint64_t len;
};

struct ahl_meta_gc {
    struct ahl_meta *m;
    struct ahl__hset marked; /* chunks reached from a walked root, each with its whole subtree */
    struct ahl__hset roots;  /* roots walked */
    struct ahl__hset frames; /* SHA-256 of each frame or bulk data id a walked instance lists */
    struct ahl__hset cands;  /* the candidates, for counting rescues */
    struct cand *cand;       /* chunks not marked at the mark, in the order listed */
    size_t ncand, cap, next; /* next: the first candidate not yet swept */
    bool versions_left;      /* versions of deleted sets may remain */
    struct ahl_buf text;
    struct ahl_meta_gc_stats st;
};

struct walk {
    struct ahl_meta_gc *g;
    struct ahl_store_tx *tx;
    int depth;
};

static int walk(void *ctx, const uint8_t *hash);

static int note_id(struct ahl_meta_gc *g, const json_t *entry)
{
    const char *id = json_string_value(json_object_get(entry, "ID"));
    uint8_t h[AHL_SHA256_LEN];
    if (!id)
        return 0;
    ahl_sha256(id, strlen(id), h);
    if (ahl__hset_has(&g->frames, h))
        return 0;
    g->st.live_frames++;
    return ahl__hset_add(&g->frames, h);
}

/* Records the frame and bulk data ids an instance chunk lists. */
static int note_frames(struct ahl_meta_gc *g, const struct ahl_chunk *c)
{
    ahl_buf_reset(&g->text);
    if (ahl__json_text(c, &g->text) < 0)
        return AHL_ECORRUPT;
    if (!memmem(g->text.data, g->text.len, "\"ID\"", 4))
        return 0;
    json_t *j = json_loadb(g->text.data, g->text.len, 0, NULL);
    if (!j)
        return AHL_ECORRUPT;
    int rc = 0;
    const json_t *frames = json_object_get(j, "ImageFrames");
    for (size_t i = 0; rc == 0 && i < json_array_size(frames); i++)
        rc = note_id(g, json_array_get(frames, i));
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(j, "BulkData"), k, v)
    {
        if (rc == 0)
            rc = note_id(g, v);
    }
    json_decref(j);
    return rc;
}

/* Marks hash and, unless it was marked already, everything below it. */
static int walk(void *ctx, const uint8_t *hash)
{
    struct walk *w = ctx;
    struct ahl_meta_gc *g = w->g;
    if (ahl__hash_is_zero(hash) || ahl__hset_has(&g->marked, hash))
        return 0;
    if (w->depth > 2 * AHL__MAP_MAX_DEPTH + 4)
        return AHL_ECORRUPT;
    struct ahl_chunk c;
    struct ahl_buf data;
    ahl_buf_init(&data, AHL__MAX_CHUNK);
    int rc = ahl_store_chunk_get(w->tx, hash, &c, &data);
    if (rc == AHL_ENOTFOUND)
        rc = AHL_ECORRUPT;
    if (rc < 0)
        goto out;
    if ((rc = ahl__hset_add(&g->marked, hash)) < 0)
        goto out;
    g->st.live_chunks++;
    if (ahl__hset_has(&g->cands, hash))
        g->st.rescued++;
    w->depth++;
    if (c.kind == AHL_CHUNK_ROOT) {
        if (c.len != AHL__ROOT_LEN) {
            rc = AHL_ECORRUPT;
        } else {
            const uint8_t *d = c.data;
            for (int i = 0; i < 3 && rc == 0; i++)
                rc = walk(w, d + 4 + i * AHL_SHA256_LEN);
        }
    } else if (c.kind == AHL_CHUNK_MAP) {
        rc = ahl__map_node_refs(&c, walk, w);
    } else if (c.kind == AHL_CHUNK_JSON) {
        rc = note_frames(g, &c);
    } else {
        rc = AHL_ECORRUPT;
    }
    w->depth--;
out:
    ahl_buf_release(&data);
    return rc;
}

struct roots {
    struct ahl_meta_gc *g;
    uint8_t (*v)[AHL_SHA256_LEN];
    size_t n, cap;
};

static int collect_root(void *ctx, const struct ahl_version_rec *rec)
{
    struct roots *r = ctx;
    if (ahl__hset_has(&r->g->roots, rec->root))
        return 0;
    r->g->st.live_versions++;
    if (r->n == r->cap) {
        void *v = ahl_array_grow(r->v, &r->cap, sizeof *r->v, 256);
        if (!v)
            return AHL_ENOMEM;
        r->v = v;
    }
    memcpy(r->v[r->n++], rec->root, AHL_SHA256_LEN);
    return 0;
}

/* Walks the roots of live versions not walked yet. Roots are listed first and walked after, so
 * that no statement of the store is open while the walk reads chunks. */
static int walk_new_roots(struct ahl_meta_gc *g, struct ahl_store_tx *tx, struct ahl_err *err)
{
    struct roots r = {g, NULL, 0, 0};
    struct walk w = {g, tx, 0};
    int rc = ahl_store_gc_roots(tx, collect_root, &r);
    if (rc < 0) {
        free(r.v);
        return ahl_meta_store_fail(err, rc, "listing live versions");
    }
    for (size_t i = 0; i < r.n && rc == 0; i++) {
        if (ahl__hset_has(&g->roots, r.v[i]))
            continue;
        if ((rc = walk(&w, r.v[i])) == 0)
            rc = ahl__hset_add(&g->roots, r.v[i]);
        if (rc == AHL_ECORRUPT) {
            char hex[AHL_SHA256_HEX_LEN + 1];
            ahl_hex_encode(r.v[i], AHL_SHA256_LEN, hex);
            rc = ahl_fail(err, rc,
                          "a live version (root %s) needs a chunk that is missing or damaged: "
                          "nothing is collected; run `ahilite check`",
                          hex);
        } else if (rc < 0) {
            rc = ahl_meta_store_fail(err, rc, "walking live versions");
        }
    }
    free(r.v);
    return rc;
}

static int collect_cand(void *ctx, const struct ahl_chunk *c)
{
    struct ahl_meta_gc *g = ctx;
    if (ahl__hset_has(&g->marked, c->hash))
        return 0;
    if (g->ncand == g->cap) {
        void *v = ahl_array_grow(g->cand, &g->cap, sizeof *g->cand, 256);
        if (!v)
            return AHL_ENOMEM;
        g->cand = v;
    }
    memcpy(g->cand[g->ncand].hash, c->hash, AHL_SHA256_LEN);
    g->cand[g->ncand++].len = c->len;
    g->st.chunks++;
    g->st.chunk_bytes += c->len;
    return ahl__hset_add(&g->cands, c->hash);
}

void ahl_meta_gc_free(struct ahl_meta_gc *g)
{
    if (!g)
        return;
    ahl__hset_release(&g->marked);
    ahl__hset_release(&g->roots);
    ahl__hset_release(&g->frames);
    ahl__hset_release(&g->cands);
    free(g->cand);
    ahl_buf_release(&g->text);
    free(g);
}

int ahl_meta_gc_mark(struct ahl_meta *m, struct ahl_meta_gc **out, struct ahl_err *err)
{
    struct ahl_store_tx *tx = NULL;
    struct ahl_meta_gc *g = calloc(1, sizeof *g);
    int rc;
    ahl_err_clear(err);
    *out = NULL;
    if (!g)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    g->m = m;
    ahl_buf_init(&g->text, AHL__MAX_CHUNK);
    if ((rc = ahl_store_begin(m->store, false, &tx)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "starting a transaction");
        goto out;
    }
    if ((rc = ahl_store_gc_versions(tx, 0, &g->st.dead_versions, &g->st.dead_sets)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "counting versions of deleted image sets");
        goto out;
    }
    g->versions_left = g->st.dead_versions > 0;
    if ((rc = walk_new_roots(g, tx, err)) < 0)
        goto out;
    if ((rc = ahl_store_chunk_list(tx, collect_cand, g)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "listing chunks");
        goto out;
    }
    *out = g;
    g = NULL;
out:
    ahl_store_rollback(tx);
    ahl_meta_gc_free(g);
    return rc;
}

int ahl_meta_gc_sweep(struct ahl_meta_gc *g, unsigned batch, struct ahl_err *err)
{
    struct ahl_store_tx *tx = NULL;
    uint64_t versions = 0, sets = 0;
    size_t from = g->next, to = g->next;
    int rc;
    ahl_err_clear(err);
    if (!batch)
        batch = 1;
    if (!g->versions_left && g->next >= g->ncand)
        return 0;
    if ((rc = ahl_store_begin(g->m->store, true, &tx)) < 0)
        return ahl_meta_store_fail(err, rc, "starting a transaction");
    if ((rc = walk_new_roots(g, tx, err)) < 0)
        goto out;
    if (g->versions_left) {
        /* Versions first, so that no version row ever names a chunk already gone. */
        if ((rc = ahl_store_gc_versions(tx, batch, &versions, &sets)) < 0) {
            rc = ahl_meta_store_fail(err, rc, "deleting versions of deleted image sets");
            goto out;
        }
    } else {
        unsigned n = 0;
        for (; to < g->ncand && n < batch; to++) {
            if (ahl__hset_has(&g->marked, g->cand[to].hash))
                continue;
            if ((rc = ahl_store_chunk_delete(tx, g->cand[to].hash)) < 0) {
                rc = ahl_meta_store_fail(err, rc, "deleting a chunk");
                goto out;
            }
            n++;
        }
    }
    rc = ahl_store_commit(tx);
    tx = NULL;
    if (rc < 0) {
        rc = ahl_meta_store_fail(err, rc, "committing");
        goto out;
    }
    if (g->versions_left) {
        g->st.versions_swept += versions;
        g->versions_left = versions >= batch;
    }
    for (size_t i = from; i < to; i++) {
        if (ahl__hset_has(&g->marked, g->cand[i].hash))
            continue;
        ahl__chunk_forget(g->m, g->cand[i].hash);
        g->st.chunks_swept++;
        g->st.chunk_bytes_swept += g->cand[i].len;
    }
    g->next = to;
    rc = g->versions_left || g->next < g->ncand ? 1 : 0;
out:
    ahl_store_rollback(tx);
    return rc;
}

int ahl_meta_gc_locked(struct ahl_meta_gc *g, ahl_meta_gc_fn fn, void *ctx, struct ahl_err *err)
{
    struct ahl_store_tx *tx = NULL;
    int rc;
    ahl_err_clear(err);
    if ((rc = ahl_store_begin(g->m->store, true, &tx)) < 0)
        return ahl_meta_store_fail(err, rc, "starting a transaction");
    if ((rc = walk_new_roots(g, tx, err)) == 0)
        rc = fn(ctx, g);
    ahl_store_rollback(tx);
    return rc;
}

bool ahl_meta_gc_frame_live(const struct ahl_meta_gc *g, const char *id)
{
    uint8_t h[AHL_SHA256_LEN];
    ahl_sha256(id, strlen(id), h);
    return ahl__hset_has(&g->frames, h);
}

void ahl_meta_gc_stats(const struct ahl_meta_gc *g, struct ahl_meta_gc_stats *out)
{
    *out = g->st;
}

int ahl_meta_frame_fence_read(struct ahl_meta *m, uint64_t *epoch, int64_t *read_ms,
                              struct ahl_err *err)
{
    struct ahl_store_tx *tx = NULL;
    int64_t until_ms;
    *read_ms = ahl_wall_ms();
    int rc = ahl_store_begin(m->store, false, &tx);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "starting a transaction");
    if ((rc = ahl_store_frame_fence_get(tx, epoch, &until_ms)) < 0)
        rc = ahl_meta_store_fail(err, rc, "reading the frame fence");
    ahl_store_rollback(tx);
    return rc;
}

int ahl_meta_frame_fence_bump(struct ahl_meta *m, int64_t until_ms, struct ahl_err *err)
{
    struct ahl_store_tx *tx = NULL;
    int rc = ahl_store_begin(m->store, true, &tx);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "starting a transaction");
    if ((rc = ahl_store_frame_fence_bump(tx, until_ms)) < 0) {
        ahl_store_rollback(tx);
        return ahl_meta_store_fail(err, rc, "moving the frame fence");
    }
    if ((rc = ahl_store_commit(tx)) < 0)
        return ahl_meta_store_fail(err, rc, "moving the frame fence");
    return 0;
}

int ahl_meta_gc_pending(struct ahl_meta *m, uint64_t *versions, struct ahl_err *err)
{
    struct ahl_store_tx *tx = NULL;
    uint64_t sets = 0;
    int rc = ahl_store_begin(m->store, false, &tx);
    *versions = 0;
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "starting a transaction");
    if ((rc = ahl_store_gc_versions(tx, 0, versions, &sets)) < 0)
        rc = ahl_meta_store_fail(err, rc, "counting versions of deleted image sets");
    ahl_store_rollback(tx);
    return rc;
}
