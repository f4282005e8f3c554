/* The changes between two versions of one image set (docs/metadata.md#version-diff).
 *
 * Versions share every unchanged chunk, so the diff compares hashes top-down: the Patient and
 * Study chunks, then the Series map and, for each series whose value differs, its Instances map
 * (ahl__map_diff loads only the nodes on differing paths). Only chunks that differ are parsed,
 * so a one-attribute change costs a few chunk loads whatever the size of the set.
 *
 * A key removed and a key added whose values are equal (same chunk hashes: the same content
 * under a new UID) are reported as re-keyed rather than as a removal and an addition.
 */
#include "meta/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/banned.h"

/* ---- attribute diff of two node objects ---- */

/* Sets name in parent to v when v is a non-empty object or array; takes v's reference. */
static int set_nonempty(json_t *parent, const char *name, json_t *v)
{
    int rc = 0;
    if (v && (json_object_size(v) || json_array_size(v)))
        rc = json_object_set(parent, name, v) < 0 ? AHL_ENOMEM : 0;
    json_decref(v);
    return rc;
}

/* After rc (members go in only on success), the three members of a level; takes the references. */
static int set_three(json_t *res, int rc, const char *n1, json_t *v1, const char *n2, json_t *v2,
                     const char *n3, json_t *v3)
{
    json_t *v[3] = {v1, v2, v3};
    const char *n[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++) {
        if (rc == 0)
            rc = set_nonempty(res, n[i], v[i]);
        else
            json_decref(v[i]);
    }
    return rc;
}


static int put_path(json_t *obj, struct ahl_buf *path, json_t *v)
{
    if (!v)
        return AHL_ENOMEM;
    int rc = json_object_setn_new(obj, path->data, path->len, v);
    return rc < 0 ? AHL_ENOMEM : 0;
}

/* An object with members is descended into (paths joined with '.'); anything else, an empty
 * object included, is one attribute. */
static bool is_branch(const json_t *v)
{
    return json_is_object(v) && json_object_size(v) > 0;
}

static int attr_walk(const json_t *a, const json_t *b, struct ahl_buf *path, json_t *added,
                     json_t *removed, json_t *changed);

static int attr_one(const char *k, const json_t *va, const json_t *vb, struct ahl_buf *path,
                    json_t *added, json_t *removed, json_t *changed)
{
    size_t keep = path->len;
    int rc = 0;
    if ((keep && (rc = ahl_buf_addc(path, '.')) < 0) ||
        (rc = ahl_buf_adds(path, k)) < 0)
        return rc;
    if (va && vb && is_branch(va) && is_branch(vb))
        rc = attr_walk(va, vb, path, added, removed, changed);
    else if (va && is_branch(va) && !vb)
        rc = attr_walk(va, NULL, path, added, removed, changed);
    else if (vb && is_branch(vb) && !va)
        rc = attr_walk(NULL, vb, path, added, removed, changed);
    else if (!vb)
        rc = put_path(removed, path, json_deep_copy(va));
    else if (!va)
        rc = put_path(added, path, json_deep_copy(vb));
    else if (!json_equal(va, vb))
        rc = put_path(changed, path,
                      json_pack("{s:O,s:O}", "Old", va, "New", vb));
    ahl_buf_truncate(path, keep);
    return rc;
}

static int attr_walk(const json_t *a, const json_t *b, struct ahl_buf *path, json_t *added,
                     json_t *removed, json_t *changed)
{
    const char *k;
    json_t *v;
    int rc = 0;
    if (a)
        json_object_foreach((json_t *)a, k, v)
        {
            if ((rc = attr_one(k, v, b ? json_object_get(b, k) : NULL, path, added, removed,
                               changed)) < 0)
                return rc;
        }
    if (b)
        json_object_foreach((json_t *)b, k, v)
        {
            if (a && json_object_get(a, k))
                continue;
            if ((rc = attr_one(k, NULL, v, path, added, removed, changed)) < 0)
                return rc;
        }
    return 0;
}

int ahl_meta_attr_diff(const json_t *a, const json_t *b, json_t **out)
{
    json_t *added = json_object(), *removed = json_object(), *changed = json_object();
    json_t *res = json_object();
    struct ahl_buf path;
    ahl_buf_init(&path, 1u << 20);
    int rc = added && removed && changed && res ? 0 : AHL_ENOMEM;
    if (rc == 0)
        rc = attr_walk(a, b, &path, added, removed, changed);
    rc = set_three(res, rc, "Added", added, "Removed", removed, "Changed", changed);
    ahl_buf_release(&path);
    if (rc < 0) {
        json_decref(res);
        return rc;
    }
    *out = res;
    return 0;
}

/* ---- map level ---- */

struct dent {
    char *key;
    uint8_t a[2 * AHL_SHA256_LEN], b[2 * AHL_SHA256_LEN];
    bool has_a, has_b, paired;
};

struct dlist {
    struct dent *v;
    size_t n, cap, vlen;
};

static void dlist_free(struct dlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].key);
    free(l->v);
}

static int dlist_cb(void *ctx, const char *key, size_t keylen, const uint8_t *va, const uint8_t *vb)
{
    struct dlist *l = ctx;
    if (l->n == l->cap) {
        struct dent *v = ahl_array_grow(l->v, &l->cap, sizeof *v, 16);
        if (!v)
            return AHL_ENOMEM;
        l->v = v;
    }
    struct dent *e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    if (!(e->key = malloc(keylen + 1)))
        return AHL_ENOMEM;
    memcpy(e->key, key, keylen);
    e->key[keylen] = '\0';
    if ((e->has_a = va != NULL))
        memcpy(e->a, va, l->vlen);
    if ((e->has_b = vb != NULL))
        memcpy(e->b, vb, l->vlen);
    l->n++;
    return 0;
}

static int arr_add(json_t *arr, json_t *v)
{
    return v && json_array_append_new(arr, v) == 0 ? 0 : AHL_ENOMEM;
}

/* Added, Removed and Rekeyed of one map level into res (members only when not empty). Each
 * removed key, in key order, pairs with the first added key of equal value not yet paired. */
static int level_keys(struct dlist *l, json_t *res)
{
    json_t *added = json_array(), *removed = json_array(), *rekeyed = json_array();
    int rc = added && removed && rekeyed ? 0 : AHL_ENOMEM;
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        struct dent *r = &l->v[i];
        if (!r->has_a || r->has_b)
            continue;
        for (size_t j = 0; j < l->n; j++) {
            struct dent *ad = &l->v[j];
            if (ad->has_a || !ad->has_b || ad->paired || memcmp(ad->b, r->a, l->vlen))
                continue;
            r->paired = ad->paired = true;
            rc = arr_add(rekeyed, json_pack("{s:s,s:s}", "From", r->key, "To", ad->key));
            break;
        }
    }
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        struct dent *e = &l->v[i];
        if (e->paired || (e->has_a && e->has_b))
            continue;
        rc = arr_add(e->has_a ? removed : added, json_string(e->key));
    }
    return set_three(res, rc, "Added", added, "Removed", removed, "Rekeyed", rekeyed);
}

struct dctx {
    struct ahl_meta *m;
    struct ahl_store_tx *tx;
};

/* The attribute diff of two JSON chunks (NULL when the hashes are equal). */
static int chunk_diff(struct dctx *c, const uint8_t *ha, const uint8_t *hb, json_t **out)
{
    json_t *a = NULL, *b = NULL;
    int rc;
    *out = NULL;
    if (!memcmp(ha, hb, AHL_SHA256_LEN))
        return 0;
    if ((rc = ahl__json_load(c->m, c->tx, NULL, ha, &a)) == 0 &&
        (rc = ahl__json_load(c->m, c->tx, NULL, hb, &b)) == 0)
        rc = ahl_meta_attr_diff(a, b, out);
    json_decref(a);
    json_decref(b);
    return rc;
}

/* One map level: series (vlen 64: chunk hash + Instances root, whose differences go into
 * "Instances") or instances (vlen 32: chunk hash). */
static int map_level_diff(struct dctx *c, const uint8_t *ra, const uint8_t *rb, size_t vlen,
                          json_t **out)
{
    struct dlist l = {.vlen = vlen};
    json_t *res = json_object(), *changed = json_object();
    int rc = res && changed ? 0 : AHL_ENOMEM;
    if (rc == 0)
        rc = ahl__map_diff(c->m, c->tx, ra, rb, vlen, dlist_cb, &l);
    if (rc == 0)
        rc = level_keys(&l, res);
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        struct dent *e = &l.v[i];
        json_t *d = NULL, *inst = NULL;
        if (!e->has_a || !e->has_b)
            continue;
        if ((rc = chunk_diff(c, e->a, e->b, &d)) == 0 && !d && !(d = json_object()))
            rc = AHL_ENOMEM;
        if (rc == 0 && vlen > AHL_SHA256_LEN &&
            memcmp(e->a + AHL_SHA256_LEN, e->b + AHL_SHA256_LEN, AHL_SHA256_LEN) &&
            (rc = map_level_diff(c, e->a + AHL_SHA256_LEN, e->b + AHL_SHA256_LEN,
                                 AHL_SHA256_LEN, &inst)) == 0)
            rc = set_nonempty(d, "Instances", inst);
        if (rc == 0)
            rc = set_nonempty(changed, e->key, d);
        else
            json_decref(d);
    }
    if (rc == 0)
        rc = set_nonempty(res, "Changed", changed);
    else
        json_decref(changed);
    dlist_free(&l);
    if (rc < 0) {
        json_decref(res);
        return rc;
    }
    *out = res;
    return 0;
}

static int version_root(struct ahl_store_tx *tx, const char *id, uint64_t v, uint8_t *root,
                        struct ahl_err *err)
{
    struct ahl_version_rec ver;
    int rc = ahl_store_version_get(tx, id, v, &ver);
    if (rc == AHL_ENOTFOUND)
        return ahl_fail(err, rc, "image set %s has no version %llu", id, (unsigned long long)v);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "reading the version");
    memcpy(root, ver.root, AHL_SHA256_LEN);
    return 0;
}

int ahl_meta_diff(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                  uint64_t from, uint64_t to, json_t **out, struct ahl_err *err)
{
    struct ahl_store_tx *tx;
    struct ahl_imageset_rec set;
    uint8_t ha[AHL_SHA256_LEN], hb[AHL_SHA256_LEN];
    struct ahl__root a, b;
    json_t *res = NULL, *d;
    int rc = ahl_store_begin(m->store, false, &tx);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "starting a transaction");
    if ((rc = ahl__set_find(tx, datastore_id, imageset_id, &set, err)) < 0 ||
        (rc = version_root(tx, imageset_id, from, ha, err)) < 0 ||
        (rc = version_root(tx, imageset_id, to, hb, err)) < 0)
        goto out;
    struct dctx c = {m, tx};
    if ((rc = ahl__root_load(m, tx, NULL, ha, &a)) < 0 ||
        (rc = ahl__root_load(m, tx, NULL, hb, &b)) < 0)
        goto fail;
    if (!(res = json_pack("{s:s,s:s,s:I,s:I}", "DatastoreID", datastore_id, "ImageSetID",
                          imageset_id, "FromVersion", (json_int_t)from, "ToVersion",
                          (json_int_t)to))) {
        rc = AHL_ENOMEM;
        goto fail;
    }
    if ((rc = chunk_diff(&c, a.patient, b.patient, &d)) < 0 ||
        (rc = set_nonempty(res, "Patient", d)) < 0 ||
        (rc = chunk_diff(&c, a.study, b.study, &d)) < 0 ||
        (rc = set_nonempty(res, "Study", d)) < 0)
        goto fail;
    if (memcmp(a.series, b.series, AHL_SHA256_LEN) &&
        ((rc = map_level_diff(&c, a.series, b.series, 2 * AHL_SHA256_LEN, &d)) < 0 ||
         (rc = set_nonempty(res, "Series", d)) < 0))
        goto fail;
    *out = res;
    res = NULL;
    goto out;
fail:
    rc = ahl_meta_store_fail(err, rc, "comparing versions");
out:
    json_decref(res);
    ahl_store_rollback(tx);
    return rc;
}
