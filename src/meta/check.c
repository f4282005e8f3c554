/* The integrity check behind `ahilite check`: re-hash every stored chunk, then walk every version
 * of every image set and make sure each chunk it needs is present and sound.
 *
 * Pass 1 scans the chunk table once: a JSON chunk is inflated (its crc and length must match) and
 * its text re-hashed; a map or root chunk is re-hashed as stored. Every hash seen goes into a set
 * of present chunks, every failure into a set of damaged ones, and is reported.
 * Pass 2 walks versions. Each version needs its root, Patient and Study chunks, every node of its
 * Series map, each series chunk, and every node and instance chunk of each Instances map. A
 * subtree already found sound is not walked again (versions share almost everything), so the
 * walk costs the distinct data, not versions x size. Reports name the image set, the version and
 * the place in the document ("Study.Series['1.2.3'].Instances['1.2.3.4']"). Pass 3 makes sure
 * every live image set's latest version has its version row.
 */
#include "meta/engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "base/banned.h"

/* An open-addressing set of SHA-256 hashes. */
struct hset {
    uint8_t (*v)[AHL_SHA256_LEN];
    size_t cap, n;
};

static size_t hslot(const uint8_t *h, size_t cap)
{
    uint64_t x;
    memcpy(&x, h, sizeof x);
    return (size_t)(x & (cap - 1));
}

static bool hset_has(const struct hset *s, const uint8_t *h)
{
    if (!s->cap)
        return false;
    for (size_t i = hslot(h, s->cap);; i = (i + 1) & (s->cap - 1)) {
        if (ahl__hash_is_zero(s->v[i]))
            return false;
        if (!memcmp(s->v[i], h, AHL_SHA256_LEN))
            return true;
    }
}

static int hset_add(struct hset *s, const uint8_t *h)
{
    if (ahl__hash_is_zero(h) || hset_has(s, h))
        return 0;
    if ((s->n + 1) * 2 > s->cap) {
        struct hset g = {NULL, s->cap ? s->cap * 2 : 1024, 0};
        if (!(g.v = calloc(g.cap, AHL_SHA256_LEN)))
            return AHL_ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (!ahl__hash_is_zero(s->v[i]))
                hset_add(&g, s->v[i]);
        free(s->v);
        *s = g;
    }
    size_t i = hslot(h, s->cap);
    while (!ahl__hash_is_zero(s->v[i]))
        i = (i + 1) & (s->cap - 1);
    memcpy(s->v[i], h, AHL_SHA256_LEN);
    s->n++;
    return 0;
}

struct check {
    struct ahl_meta *m;
    struct ahl_store_tx *tx;
    ahl_meta_report_cb cb;
    void *ctx;
    struct ahl_meta_check_stats st;
    struct hset present, bad, good;
    struct ahl_buf text;
    /* the version being walked */
    const struct ahl_version_rec *ver;
    const char *series_key;
    /* paging cursors: the last image set and data store visited */
    char last_set[AHL_ID_LEN + 1], last_ds[AHL_ID_LEN + 1];
};

static void report(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(struct check *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->st.problems++;
    if (c->cb)
        c->cb(c->ctx, line);
}

static int scan_chunk(void *vctx, const struct ahl_chunk *ch)
{
    struct check *c = vctx;
    char hex[AHL_SHA256_HEX_LEN + 1], got[AHL_SHA256_HEX_LEN + 1];
    uint8_t h[AHL_SHA256_LEN];
    int rc;
    c->st.chunks++;
    ahl_hex_encode(ch->hash, AHL_SHA256_LEN, hex);
    if ((rc = hset_add(&c->present, ch->hash)) < 0)
        return rc;
    const char *problem = NULL;
    if (ch->kind == AHL_CHUNK_JSON) {
        ahl_buf_reset(&c->text);
        if (ahl__json_text(ch, &c->text) < 0)
            problem = "its deflate segment does not inflate to its recorded length and crc32";
        else
            ahl_sha256(c->text.data, c->text.len, h);
    } else if (ch->kind == AHL_CHUNK_MAP || ch->kind == AHL_CHUNK_ROOT) {
        if (ch->ulen != ch->len || crc32(0, ch->data, (uInt)ch->len) != ch->crc)
            problem = "its bytes do not match their recorded length and crc32";
        ahl_sha256(ch->data, ch->len, h);
    } else {
        problem = "it has an unknown kind";
    }
    if (!problem && memcmp(h, ch->hash, AHL_SHA256_LEN) != 0) {
        ahl_hex_encode(h, AHL_SHA256_LEN, got);
        report(c, "chunk %s (%s): content hashes to %s", hex,
               ch->kind == AHL_CHUNK_JSON  ? "json"
               : ch->kind == AHL_CHUNK_MAP ? "map"
                                           : "root",
               got);
        return hset_add(&c->bad, ch->hash);
    }
    if (problem) {
        report(c, "chunk %s: %s", hex, problem);
        return hset_add(&c->bad, ch->hash);
    }
    return 0;
}

/* Is a chunk the version needs present and sound? Reports it when not. */
static bool need(struct check *c, const uint8_t *h, const char *what)
{
    char hex[AHL_SHA256_HEX_LEN + 1];
    if (hset_has(&c->present, h) && !hset_has(&c->bad, h))
        return true;
    ahl_hex_encode(h, AHL_SHA256_LEN, hex);
    report(c, "image set %s version %llu: %s needs chunk %s, which is %s", c->ver->imageset_id,
           (unsigned long long)c->ver->version, what, hex,
           hset_has(&c->present, h) ? "damaged" : "missing");
    return false;
}

static int inst_node(void *vctx, const uint8_t *hash, bool leaf, const uint8_t *v, size_t vlen)
{
    struct check *c = vctx;
    char what[700];
    (void)v;
    if (leaf) {
        if (vlen != AHL_SHA256_LEN)
            report(c,
                   "image set %s version %llu: Study.Series['%s'].Instances map has %zu-byte "
                   "values",
                   c->ver->imageset_id, (unsigned long long)c->ver->version, c->series_key, vlen);
        return 0;
    }
    snprintf(what, sizeof what, "Study.Series['%s'].Instances (map node)", c->series_key);
    need(c, hash, what);
    return 0;
}

static int inst_entry(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct check *c = vctx;
    char what[700];
    snprintf(what, sizeof what, "Study.Series['%s'].Instances['%.*s']", c->series_key,
             (int)(keylen < 256 ? keylen : 256), key);
    need(c, value, what);
    return 0;
}

struct series_walk {
    struct check *c;
};

static int series_entry(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct check *c = vctx;
    char skey[300], what[700];
    snprintf(skey, sizeof skey, "%.*s", (int)(keylen < 256 ? keylen : 256), key);
    snprintf(what, sizeof what, "Study.Series['%s']", skey);
    need(c, value, what);
    const uint8_t *iroot = value + AHL_SHA256_LEN;
    if (ahl__hash_is_zero(iroot) || hset_has(&c->good, iroot))
        return 0;
    uint64_t before = c->st.problems;
    c->series_key = skey;
    int rc = ahl__map_walk_nodes(c->m, c->tx, iroot, inst_node, c);
    if (rc == 0)
        rc = ahl__map_walk(c->m, c->tx, NULL, iroot, inst_entry, c);
    if (rc == AHL_ECORRUPT) {
        report(c, "image set %s version %llu: Study.Series['%s'].Instances map cannot be read",
               c->ver->imageset_id, (unsigned long long)c->ver->version, skey);
        return 0;
    }
    if (rc < 0)
        return rc;
    if (c->st.problems == before)
        return hset_add(&c->good, iroot);
    return 0;
}

static int series_node(void *vctx, const uint8_t *hash, bool leaf, const uint8_t *v, size_t vlen)
{
    (void)v;
    (void)vlen;
    if (!leaf)
        need(vctx, hash, "the Series map (map node)");
    return 0;
}

static int check_version(void *vctx, const struct ahl_version_rec *ver)
{
    struct check *c = vctx;
    struct ahl__root r;
    int rc;
    c->st.versions++;
    c->ver = ver;
    if (!need(c, ver->root, "its root"))
        return 0;
    if ((rc = ahl__root_load(c->m, c->tx, NULL, ver->root, &r)) < 0) {
        if (rc != AHL_ECORRUPT)
            return rc;
        report(c, "image set %s version %llu: its root cannot be read", ver->imageset_id,
               (unsigned long long)ver->version);
        return 0;
    }
    need(c, r.patient, "Patient");
    need(c, r.study, "Study");
    if (ahl__hash_is_zero(r.series) || hset_has(&c->good, r.series))
        return 0;
    uint64_t before = c->st.problems;
    rc = ahl__map_walk_nodes(c->m, c->tx, r.series, series_node, c);
    if (rc == 0)
        rc = ahl__map_walk(c->m, c->tx, NULL, r.series, series_entry, c);
    if (rc == AHL_ECORRUPT) {
        report(c, "image set %s version %llu: the Series map cannot be read", ver->imageset_id,
               (unsigned long long)ver->version);
        return 0;
    }
    if (rc < 0)
        return rc;
    if (c->st.problems == before)
        return hset_add(&c->good, r.series);
    return 0;
}

/* Every live image set's latest version must exist. */
static int check_set(void *vctx, const struct ahl_imageset_rec *set)
{
    struct check *c = vctx;
    struct ahl_version_rec v;
    memcpy(c->last_set, set->id, sizeof c->last_set);
    int rc = ahl_store_version_get(c->tx, set->id, set->latest_version, &v);
    if (rc == AHL_ENOTFOUND) {
        report(c, "image set %s: its latest version %llu has no version row", set->id,
               (unsigned long long)set->latest_version);
        return 0;
    }
    return rc;
}

static int check_datastore(void *vctx, const struct ahl_datastore_rec *ds)
{
    struct check *c = vctx;
    char after[AHL_ID_LEN + 1] = "";
    int rc;
    memcpy(c->last_ds, ds->id, sizeof c->last_ds);
    do {
        c->last_set[0] = '\0';
        if ((rc = ahl_store_imageset_list(c->tx, ds->id, after, 500, check_set, c)) < 0)
            return rc;
        memcpy(after, c->last_set, sizeof after);
    } while (after[0]);
    return 0;
}

int ahl_meta_check(struct ahl_meta *m, ahl_meta_report_cb cb, void *ctx,
                   struct ahl_meta_check_stats *stats)
{
    struct check c;
    int rc;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.cb = cb;
    c.ctx = ctx;
    ahl_buf_init(&c.text, AHL__MAX_CHUNK);
    if ((rc = ahl_store_begin(m->store, false, &c.tx)) < 0)
        goto out;
    if ((rc = ahl_store_chunk_scan(c.tx, scan_chunk, &c)) < 0)
        goto out;
    if ((rc = ahl_store_version_scan(c.tx, check_version, &c)) < 0)
        goto out;
    /* Every live image set's latest version exists: data stores a page at a time. */
    char after[AHL_ID_LEN + 1] = "";
    do {
        c.last_ds[0] = '\0';
        if ((rc = ahl_store_datastore_list(c.tx, NULL, after, 100, check_datastore, &c)) < 0)
            goto out;
        memcpy(after, c.last_ds, sizeof after);
    } while (after[0]);
out:
    ahl_store_rollback(c.tx);
    ahl_buf_release(&c.text);
    free(c.present.v);
    free(c.bad.v);
    free(c.good.v);
    if (stats)
        *stats = c.st;
    if (rc < 0)
        return rc;
    return c.st.problems ? AHL_ECORRUPT : 0;
}
