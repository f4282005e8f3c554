/* GetImageSetMetadata's body: a version's document as one gzip member, spliced from deflate
 * segments that are compressed once and reused, never recompressed per request.
 *
 * The member is a 10-byte header, then the document in order as a sequence of raw-deflate
 * segments, each ending on a byte boundary with an empty stored block (Z_FULL_FLUSH, no BFINAL):
 *   - the Patient, Study and each Series JSON chunk: the chunk's own stored segment;
 *   - the text between them (keys, braces, commas): stored blocks written per request;
 *   - the instances of one leaf of an Instances map (32 to 64 of them): one group segment,
 *     "uid":{..},"uid":{..}, with a leading comma when the leaf is not the map's first.
 * and a final stored block (BFINAL=1) holding the closing braces; the trailer's CRC is combined
 * from each segment's CRC with crc32_combine_op.
 *
 * Why groups: instances of a series repeat most of their text, but a chunk's own segment is
 * deflated alone and cannot refer to its neighbours (15 times the size of gzip -6 on CT headers).
 * A group segment is compressed with, as its preset dictionary, the last 32 KiB of the text
 * before it: the previous leaf's text, and for a series' first leaf that series' header after it.
 * That is exactly the text a reader has just inflated, so deflate's back references reach across
 * the group boundary and the whole document comes within a few percent of gzip -6
 * (bench/RESULTS.md). A group's text is named by its leaf's hash (a leaf holds its instances'
 * chunk hashes), so its key is SHA-256 of the leaf's hash, the previous leaf's hash and, for a
 * series' first leaf, the series' UID and chunk hash: a version shares every group whose leaf and
 * context it shares, and an update makes the next read compress only the leaf it touched and the
 * one after it.
 *
 * Groups are built on first read (inflating the instances' chunks, then one deflate) and kept
 * in the engine's group cache (chunks.c, opts.gzip_cache_bytes, least recently used dropped
 * first). With no cache, or for a leaf whose text exceeds a quarter of the cache, the
 * instances' own segments are spliced instead, as for the other chunks. */
#include "meta/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "json/json.h"
#include "base/banned.h"

#define GZ_OUT 65536
#define GZ_WINDOW 32768 /* deflate's window: how far back a dictionary can be used */
#define GZ_GROUP_MAX ((size_t)1 << 30)

struct gz {
    struct ahl_meta *m;
    struct ahl_store_tx *tx;
    ahl_meta_write_cb cb;
    void *ctx;
    struct ahl_buf out;  /* pending output */
    struct ahl_buf glue; /* text between segments, not yet emitted */
    uint32_t crc;
    uint64_t total;
    size_t group_max; /* largest group text that is compressed and cached; 0: no groups */
    /* The last GZ_WINDOW bytes of the text of the group built last (leaf tail_leaf), the next
     * group's dictionary; rebuilt from the leaf's chunks when that group came from the cache. */
    struct ahl_buf tail;
    uint8_t tail_leaf[AHL_SHA256_LEN];
    bool tail_valid;
    /* The last leaf emitted, and whether the series just walked ended with it (the next series'
     * first leaf then follows it with only that series' header between). */
    uint8_t last_leaf[AHL_SHA256_LEN];
    bool ended_on_leaf;
};

static int gz_flush_out(struct gz *g, bool force)
{
    if (g->out.len < GZ_OUT && !force)
        return 0;
    if (g->out.len) {
        int rc = g->cb(g->ctx, g->out.data, g->out.len);
        if (rc)
            return rc;
    }
    ahl_buf_reset(&g->out);
    return 0;
}

/* Emits the pending glue as stored blocks (the last one final when fin). */
static int gz_emit_glue(struct gz *g, bool fin)
{
    size_t off = 0;
    int rc;
    g->crc = (uint32_t)crc32(g->crc, (const Bytef *)g->glue.data, (uInt)g->glue.len);
    g->total += g->glue.len;
    do {
        size_t n = g->glue.len - off > 65535 ? 65535 : g->glue.len - off;
        bool last = fin && off + n == g->glue.len;
        uint8_t hdr[5] = {last ? 1 : 0, (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)~n,
                          (uint8_t)(~n >> 8)};
        if ((rc = ahl_buf_add(&g->out, hdr, 5)) < 0 ||
            (rc = ahl_buf_add(&g->out, g->glue.data + off, n)) < 0)
            return rc;
        off += n;
    } while (off < g->glue.len);
    ahl_buf_reset(&g->glue);
    return gz_flush_out(g, false);
}

static int gz_glue(struct gz *g, const char *s)
{
    return ahl_buf_adds(&g->glue, s);
}

static int gz_glue_key(struct gz *g, bool comma, const char *key, size_t keylen)
{
    int rc = comma ? ahl_buf_addc(&g->glue, ',') : 0;
    if (rc == 0)
        rc = ahl_json_write_string(key, keylen, &g->glue);
    if (rc == 0)
        rc = ahl_buf_addc(&g->glue, ':');
    return rc;
}

/* Emits a spliceable segment: its deflate bytes, its text's CRC and length. */
static int gz_emit_segment(struct gz *g, const struct ahl__chunk_ref *r)
{
    int rc;
    if (g->glue.len && (rc = gz_emit_glue(g, false)) < 0)
        return rc;
    if ((rc = ahl_buf_add(&g->out, r->c.data, r->c.len)) < 0)
        return rc;
    g->crc = (uint32_t)crc32_combine_op(g->crc, r->c.crc, r->comb_op);
    g->total += r->c.ulen;
    return gz_flush_out(g, false);
}

/* Emits a chunk's segment (its text without the final '}'); *ulen receives the text length. */
static int gz_segment(struct gz *g, const uint8_t *hash, uint32_t *ulen)
{
    struct ahl__chunk_ref r;
    int rc;
    if ((rc = ahl__chunk_load(g->m, g->tx, NULL, hash, &r)) < 0)
        return rc == AHL_ENOTFOUND ? AHL_ECORRUPT : rc;
    if (r.c.kind != AHL_CHUNK_JSON)
        rc = AHL_ECORRUPT;
    else
        rc = gz_emit_segment(g, &r);
    *ulen = r.c.ulen;
    ahl__chunk_release(g->m, &r);
    return rc;
}

/* One instance: key glue, the chunk's own segment, the closing brace as glue. */
static int gz_instance_own(struct gz *g, bool comma, const char *key, size_t keylen,
                           const uint8_t *hash)
{
    uint32_t ulen;
    int rc = gz_glue_key(g, comma, key, keylen);
    if (rc == 0)
        rc = gz_segment(g, hash, &ulen);
    if (rc == 0)
        rc = gz_glue(g, "}");
    return rc;
}

/* ---- group segments ------------------------------------------------------------------------ */

/* Appends the text of entries e[0..n) of an Instances leaf: "uid":{..} joined by commas. */
static int leaf_text(struct gz *g, const struct ahl__map_entry *e, size_t n, struct ahl_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct ahl__chunk_ref r;
        if ((i && (rc = ahl_buf_addc(out, ',')) < 0) ||
            (rc = ahl_json_write_string(e[i].key, e[i].keylen, out)) < 0 ||
            (rc = ahl_buf_addc(out, ':')) < 0)
            break;
        if ((rc = ahl__chunk_load(g->m, g->tx, NULL, e[i].value, &r)) < 0)
            return rc == AHL_ENOTFOUND ? AHL_ECORRUPT : rc;
        rc = ahl__json_text(&r.c, out);
        ahl__chunk_release(g->m, &r);
    }
    return rc;
}

/* Keeps the last GZ_WINDOW bytes of text as the tail of leaf. */
static int tail_keep(struct gz *g, const uint8_t *leaf, const char *text, size_t len)
{
    size_t k = len > GZ_WINDOW ? GZ_WINDOW : len;
    ahl_buf_reset(&g->tail);
    g->tail_valid = false;
    int rc = ahl_buf_add(&g->tail, text + len - k, k);
    if (rc == 0) {
        memcpy(g->tail_leaf, leaf, AHL_SHA256_LEN);
        g->tail_valid = true;
    }
    return rc;
}

/* The tail of a leaf whose group was not built by this read: the text of its last entries,
 * enough of them to fill the window (at most one more instance than needed). */
static int tail_cb(void *vctx, const uint8_t *hash, const struct ahl__map_entry *e, size_t n)
{
    struct gz *g = vctx;
    struct ahl_buf text;
    size_t from = n, sum = 0;
    int rc = 0;
    while (from > 0 && sum < GZ_WINDOW) {
        struct ahl__chunk_ref r;
        from--;
        if ((rc = ahl__chunk_load(g->m, g->tx, NULL, e[from].value, &r)) < 0)
            return rc == AHL_ENOTFOUND ? AHL_ECORRUPT : rc;
        sum += (size_t)r.c.ulen + e[from].keylen + 4;
        ahl__chunk_release(g->m, &r);
    }
    ahl_buf_init(&text, g->group_max);
    if ((rc = leaf_text(g, e + from, n - from, &text)) == 0)
        rc = tail_keep(g, hash, text.data, text.len);
    ahl_buf_release(&text);
    return rc;
}

struct gz_map {
    struct gz *g;
    bool first;
    /* The first leaf of this map follows the previous series' last leaf (prev), with only this
     * series' header between: "}}," "suid": series text, "Instances":{ */
    bool chain;
    uint8_t prev[AHL_SHA256_LEN]; /* the previous leaf, when !first or chain */
    const uint8_t *series;        /* this series' map value: its JSON chunk hash first */
    const char *suid;
    size_t suidlen;
};

/* The cache key of a leaf's group: its text and its dictionary are named by the leaf's hash,
 * the previous leaf's, and for a series' first leaf the series' key and chunk between them. */
static void group_key(const struct gz_map *w, const uint8_t *leaf, int level,
                      uint8_t key[AHL_SHA256_LEN])
{
    static const char tag[] = "ahilite gzip group 2";
    uint8_t hdr[2] = {(uint8_t)level, (uint8_t)(w->first ? (w->chain ? 2 : 0) : 1)};
    struct ahl_sha256_ctx c;
    if (ahl_sha256_begin(&c) < 0) {
        /* Cannot happen once OpenSSL is loaded; a key no group matches keeps reads correct. */
        memset(key, 0, AHL_SHA256_LEN);
        return;
    }
    ahl_sha256_add(&c, tag, sizeof tag);
    ahl_sha256_add(&c, hdr, sizeof hdr);
    ahl_sha256_add(&c, leaf, AHL_SHA256_LEN);
    if (hdr[1])
        ahl_sha256_add(&c, w->prev, AHL_SHA256_LEN);
    if (hdr[1] == 2) {
        ahl_sha256_add(&c, w->series, AHL_SHA256_LEN);
        ahl_sha256_add(&c, w->suid, w->suidlen);
    }
    ahl_sha256_end(&c, key);
}

/* Appends the text between the previous series' last leaf and this series' first one. */
static int series_between(struct gz *g, const struct gz_map *w, struct ahl_buf *out)
{
    struct ahl__chunk_ref r;
    int rc;
    if ((rc = ahl_buf_adds(out, "}},")) < 0 ||
        (rc = ahl_json_write_string(w->suid, w->suidlen, out)) < 0 ||
        (rc = ahl_buf_addc(out, ':')) < 0)
        return rc;
    if ((rc = ahl__chunk_load(g->m, g->tx, NULL, w->series, &r)) < 0)
        return rc == AHL_ENOTFOUND ? AHL_ECORRUPT : rc;
    uint32_t ulen = r.c.ulen;
    rc = ahl__json_text(&r.c, out);
    ahl__chunk_release(g->m, &r);
    if (rc < 0)
        return rc;
    ahl_buf_truncate(out, out->len - 1); /* the segment stops before the final brace */
    return ahl_buf_adds(out, ulen > 1 ? ",\"Instances\":{" : "\"Instances\":{");
}

/* Compresses text, primed with dict (the text just before it, at most GZ_WINDOW bytes of it
 * used), into seg->data (malloc'd). */
static int group_deflate(struct gz *g, const struct ahl_buf *text, const struct ahl_buf *dict,
                         struct ahl_chunk *seg)
{
    z_stream *z = ahl__z_get(g->m);
    size_t skip = dict->len > GZ_WINDOW ? dict->len - GZ_WINDOW : 0;
    int rc = 0;
    if (!z)
        return AHL_ENOMEM;
    if (dict->len && deflateSetDictionary(z, (const Bytef *)dict->data + skip,
                                          (uInt)(dict->len - skip)) != Z_OK) {
        rc = AHL_EINTERNAL;
        goto out;
    }
    size_t cap = deflateBound(z, text->len) + 16;
    uint8_t *p = malloc(cap);
    if (!p) {
        rc = AHL_ENOMEM;
        goto out;
    }
    z->next_in = (Bytef *)text->data;
    z->avail_in = (uInt)text->len;
    z->next_out = p;
    z->avail_out = (uInt)cap;
    if (deflate(z, Z_FULL_FLUSH) != Z_OK || z->avail_in != 0 || z->avail_out == 0) {
        free(p);
        rc = AHL_EINTERNAL;
        goto out;
    }
    seg->kind = AHL_CHUNK_JSON;
    seg->ulen = (uint32_t)text->len;
    seg->crc = (uint32_t)crc32(0, (const Bytef *)text->data, (uInt)text->len);
    seg->data = p;
    seg->len = cap - z->avail_out;
out:
    ahl__z_put(g->m, z);
    return rc;
}

/* Builds, caches and emits the group of a leaf; the instances' own segments when its text is
 * too large to cache. */
static int group_build(struct gz_map *w, const uint8_t *leaf, const struct ahl__map_entry *e,
                       size_t n, const uint8_t *key)
{
    struct gz *g = w->g;
    struct ahl_buf text, dict;
    struct ahl_chunk seg = {0};
    bool has_prev = !w->first || w->chain;
    int rc;
    /* The dictionary: the end of the text just before the group, which is the previous leaf's
     * text, then for a series' first leaf that series' header (none for the document's first
     * leaf). Any end of it is valid: when the previous leaf's tail is too large to build, the
     * header alone, or nothing. */
    if (has_prev && !(g->tail_valid && !memcmp(g->tail_leaf, w->prev, AHL_SHA256_LEN)) &&
        (rc = ahl__map_walk_leaves(g->m, g->tx, NULL, w->prev, tail_cb, g)) < 0 &&
        rc != AHL_ETOOBIG)
        return rc;
    ahl_buf_init(&dict, AHL_BUF_UNLIMITED);
    if ((has_prev && g->tail_valid && !memcmp(g->tail_leaf, w->prev, AHL_SHA256_LEN) &&
         (rc = ahl_buf_add(&dict, g->tail.data, g->tail.len)) < 0) ||
        (w->first && w->chain && (rc = series_between(g, w, &dict)) < 0)) {
        ahl_buf_release(&dict);
        return rc;
    }
    ahl_buf_init(&text, g->group_max);
    if ((!w->first && (rc = ahl_buf_addc(&text, ',')) < 0) ||
        (rc = leaf_text(g, e, n, &text)) < 0) {
        ahl_buf_release(&text);
        ahl_buf_release(&dict);
        if (rc != AHL_ETOOBIG)
            return rc;
        g->tail_valid = false;
        for (size_t i = 0; i < n; i++)
            if ((rc = gz_instance_own(g, !w->first || i, e[i].key, e[i].keylen, e[i].value)) < 0)
                return rc;
        return 0;
    }
    rc = group_deflate(g, &text, &dict, &seg);
    ahl_buf_release(&dict);
    if (rc == 0) {
        memcpy(seg.hash, key, AHL_SHA256_LEN);
        ahl__group_put(g->m, &seg);
        struct ahl__chunk_ref r = {.c = seg};
        r.comb_op = (uint32_t)crc32_combine_gen((z_off_t)seg.ulen);
        rc = gz_emit_segment(g, &r);
    }
    if (rc == 0) {
        size_t skip = w->first ? 0 : 1; /* the leading comma is not the leaf's own text */
        rc = tail_keep(g, leaf, text.data + skip, text.len - skip);
    }
    free((void *)seg.data);
    ahl_buf_release(&text);
    return rc;
}

static int gz_leaf(void *vctx, const uint8_t *hash, const struct ahl__map_entry *e, size_t n)
{
    struct gz_map *w = vctx;
    struct gz *g = w->g;
    struct ahl__chunk_ref r;
    uint8_t key[AHL_SHA256_LEN];
    bool claimed;
    int rc;
    group_key(w, hash, g->m->opts.deflate_level, key);
    if (ahl__group_get(g->m, key, &r, &claimed) == 0) {
        rc = gz_emit_segment(g, &r);
        ahl__chunk_release(g->m, &r);
    } else {
        rc = group_build(w, hash, e, n, key);
        if (claimed)
            ahl__group_unclaim(g->m, key);
    }
    w->first = false;
    memcpy(w->prev, hash, AHL_SHA256_LEN);
    memcpy(g->last_leaf, hash, AHL_SHA256_LEN);
    g->ended_on_leaf = true;
    return rc;
}

/* ---- the document -------------------------------------------------------------------------- */

struct gz_walk {
    struct gz *g;
    bool first;
};

static int gz_instance(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct gz_walk *w = vctx;
    int rc = gz_instance_own(w->g, !w->first, key, keylen, value);
    w->first = false;
    return rc;
}

static int gz_series(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct gz_walk *w = vctx;
    struct gz *g = w->g;
    uint32_t ulen;
    int rc = gz_glue_key(g, !w->first, key, keylen);
    w->first = false;
    if (rc == 0)
        rc = gz_segment(g, value, &ulen);
    if (rc == 0)
        rc = gz_glue(g, ulen > 1 ? ",\"Instances\":{" : "\"Instances\":{");
    if (rc < 0)
        return rc;
    const uint8_t *inst = value + AHL_SHA256_LEN;
    if (g->group_max) {
        struct gz_map sub = {.g = g,
                             .first = true,
                             .chain = g->ended_on_leaf,
                             .series = value,
                             .suid = key,
                             .suidlen = keylen};
        memcpy(sub.prev, g->last_leaf, AHL_SHA256_LEN);
        g->ended_on_leaf = false;
        rc = ahl__map_walk_leaves(g->m, g->tx, NULL, inst, gz_leaf, &sub);
    } else {
        struct gz_walk sub = {g, true};
        rc = ahl__map_walk(g->m, g->tx, NULL, inst, gz_instance, &sub);
    }
    if (rc == 0)
        rc = gz_glue(g, "}}");
    return rc;
}

int ahl__doc_gzip(struct ahl_meta *m, struct ahl_store_tx *tx, const char *datastore_id,
                  const char *imageset_id, const uint8_t *root, ahl_meta_write_cb cb, void *ctx)
{
    static const uint8_t head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    struct gz g = {.m = m, .tx = tx, .cb = cb, .ctx = ctx};
    struct ahl__root r;
    uint32_t ulen;
    int rc;
    g.group_max = m->groups.budget / 4 < GZ_GROUP_MAX ? m->groups.budget / 4 : GZ_GROUP_MAX;
    ahl_buf_init(&g.out, AHL_BUF_UNLIMITED);
    ahl_buf_init(&g.glue, AHL_BUF_UNLIMITED);
    ahl_buf_init(&g.tail, GZ_WINDOW);
    if ((rc = ahl__root_load(m, tx, NULL, root, &r)) < 0)
        goto out;
    if ((rc = ahl_buf_reserve(&g.out, GZ_OUT + 4096)) < 0 ||
        (rc = ahl_buf_add(&g.out, head, sizeof head)) < 0)
        goto out;
    if ((rc = gz_glue(&g, "{\"SchemaVersion\":\"1.1\",\"DatastoreID\":")) < 0 ||
        (rc = ahl_json_write_string(datastore_id, strlen(datastore_id), &g.glue)) < 0 ||
        (rc = gz_glue(&g, ",\"ImageSetID\":")) < 0 ||
        (rc = ahl_json_write_string(imageset_id, strlen(imageset_id), &g.glue)) < 0 ||
        (rc = gz_glue(&g, ",\"Patient\":")) < 0 || (rc = gz_segment(&g, r.patient, &ulen)) < 0 ||
        (rc = gz_glue(&g, "},\"Study\":")) < 0 || (rc = gz_segment(&g, r.study, &ulen)) < 0 ||
        (rc = gz_glue(&g, ulen > 1 ? ",\"Series\":{" : "\"Series\":{")) < 0)
        goto out;
    struct gz_walk w = {&g, true};
    if ((rc = ahl__map_walk(m, tx, NULL, r.series, gz_series, &w)) < 0 ||
        (rc = gz_glue(&g, "}}}")) < 0 || (rc = gz_emit_glue(&g, true)) < 0)
        goto out;
    uint8_t trailer[8];
    for (int i = 0; i < 4; i++) {
        trailer[i] = (uint8_t)(g.crc >> (8 * i));
        trailer[4 + i] = (uint8_t)(g.total >> (8 * i));
    }
    if ((rc = ahl_buf_add(&g.out, trailer, sizeof trailer)) < 0)
        goto out;
    rc = gz_flush_out(&g, true);
out:
    ahl_buf_release(&g.out);
    ahl_buf_release(&g.glue);
    ahl_buf_release(&g.tail);
    return rc;
}
