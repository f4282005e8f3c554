/* CopyImageSet (docs/metadata.md#copying, docs/decisions.md#copy-consistency): copy a source set's
 * latest version, or the subset named by copiableAttributes, into a new image set or into an
 * existing destination as a new version.
 *
 * A whole copy into a new set costs O(1): the new set's version 1 names the source's root, every
 * chunk is shared. A subset or a merge rewrites only map paths. Into an existing destination,
 * without force the source's Patient and Study DICOM, and the DICOM of every copied series the
 * destination already holds, must equal the destination's (AHL_EINVAL otherwise); with
 * force the destination keeps its own and the version records overrides.forced. Instances with a
 * SOPInstanceUID the destination already holds replace it. The source never changes version.
 */
#include "meta/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/codec.h"
#include "base/banned.h"

/* One copied instance: key and chunk hash. */
struct inst {
    char *key;
    uint8_t h[AHL_SHA256_LEN];
};

struct inst_list {
    struct inst *v;
    size_t n, cap;
};

static void inst_list_free(struct inst_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].key);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int inst_push(struct inst_list *l, const char *key, size_t keylen, const uint8_t *h)
{
    if (l->n == l->cap) {
        struct inst *v = ahl_array_grow(l->v, &l->cap, sizeof *v, 64);
        if (!v)
            return AHL_ENOMEM;
        l->v = v;
    }
    if (!(l->v[l->n].key = malloc(keylen + 1)))
        return AHL_ENOMEM;
    memcpy(l->v[l->n].key, key, keylen);
    l->v[l->n].key[keylen] = '\0';
    memcpy(l->v[l->n].h, h, AHL_SHA256_LEN);
    l->n++;
    return 0;
}

static int collect_inst(void *ctx, const char *key, size_t keylen, const uint8_t *value)
{
    return inst_push(ctx, key, keylen, value);
}

static int cmp_inst(const void *a, const void *b)
{
    return strcmp(((const struct inst *)a)->key, ((const struct inst *)b)->key);
}

/* A series to copy: its source map value and the instances chosen (all when whole). */
struct pick {
    char *uid;
    uint8_t val[2 * AHL_SHA256_LEN];
    struct inst_list inst;
};

struct picks {
    struct pick *v;
    size_t n;
};

static void picks_free(struct picks *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].uid);
        inst_list_free(&p->v[i].inst);
    }
    free(p->v);
    memset(p, 0, sizeof *p);
}

struct all_ctx {
    struct picks *p;
};

static int pick_all(void *ctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct picks *p = ctx;
    struct pick *v = realloc(p->v, (p->n + 1) * sizeof *v);
    if (!v)
        return AHL_ENOMEM;
    p->v = v;
    memset(&v[p->n], 0, sizeof v[p->n]);
    if (!(v[p->n].uid = malloc(keylen + 1)))
        return AHL_ENOMEM;
    memcpy(v[p->n].uid, key, keylen);
    v[p->n].uid[keylen] = '\0';
    memcpy(v[p->n].val, value, sizeof v[p->n].val);
    p->n++;
    return 0;
}

/* Chooses what to copy from the source root: everything, or copiableAttributes' subset. */
static int choose(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__root *src,
                  const struct ahl_meta_copy *c, struct picks *p, struct ahl_err *err)
{
    int rc = ahl__map_walk(m, tx, NULL, src->series, pick_all, p);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "reading the source");
    for (size_t i = 0; i < p->n; i++)
        if ((rc = ahl__map_walk(m, tx, NULL, p->v[i].val + AHL_SHA256_LEN, collect_inst,
                                &p->v[i].inst)) < 0)
            return ahl_meta_store_fail(err, rc, "reading the source");
    if (!c->copiable_attributes)
        return 0;
    json_error_t jerr;
    json_t *sel =
        json_loadb(c->copiable_attributes, c->copiable_len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *series = json_object_get(json_object_get(sel, "Study"), "Series");
    if (!json_is_object(sel) || (series && !json_is_object(series))) {
        json_decref(sel);
        return ahl_fail(err, AHL_EINVAL,
                        "copiableAttributes: expected {\"SchemaVersion\":\"1.1\",\"Study\":"
                        "{\"Series\":{uid:{\"Instances\":{uid:{}}}}}}");
    }
    /* Keep the picked series; a series named but absent is an error. */
    struct picks kept = {NULL, 0};
    const char *suid;
    json_t *snode;
    rc = 0;
    if (!(kept.v = calloc(p->n ? p->n : 1, sizeof *kept.v))) {
        json_decref(sel);
        return AHL_ENOMEM;
    }
    json_object_foreach((json_t *)series, suid, snode)
    {
        size_t i = 0;
        while (i < p->n && (!p->v[i].uid || strcmp(p->v[i].uid, suid)))
            i++;
        /* Some SDK samples put the literal "imageSetId" where the series UID belongs: with one
         * series in the source, take it as that series. */
        if (i == p->n && p->n == 1 && p->v[0].uid)
            i = 0;
        if (i == p->n) {
            rc = ahl_fail(err, AHL_EINVAL,
                          "copiableAttributes.Study.Series['%s']: no such series in the source",
                          suid);
            break;
        }
        struct pick *k = &kept.v[kept.n++];
        *k = p->v[i];
        memset(&p->v[i], 0, sizeof p->v[i]);
        const json_t *want = json_object_get(snode, "Instances");
        if (!want || !json_object_size(want))
            continue;
        struct inst_list chosen = {NULL, 0, 0};
        const char *iuid;
        json_t *inode;
        json_object_foreach((json_t *)want, iuid, inode)
        {
            (void)inode;
            size_t j = 0;
            while (j < k->inst.n && strcmp(k->inst.v[j].key, iuid))
                j++;
            if (j == k->inst.n) {
                rc = ahl_fail(err, AHL_EINVAL,
                              "copiableAttributes.Study.Series['%s'].Instances['%s']: no such "
                              "instance in the source",
                              suid, iuid);
                break;
            }
            if ((rc = inst_push(&chosen, iuid, strlen(iuid), k->inst.v[j].h)) < 0)
                break;
        }
        inst_list_free(&k->inst);
        k->inst = chosen;
        if (rc < 0)
            break;
        qsort(k->inst.v, k->inst.n, sizeof *k->inst.v, cmp_inst);
        /* The series' instance map is rebuilt from the chosen instances. */
        memset(k->val + AHL_SHA256_LEN, 0, AHL_SHA256_LEN);
    }
    json_decref(sel);
    picks_free(p);
    *p = kept;
    return rc;
}

static int dicom_equal(struct ahl_meta *m, struct ahl_store_tx *tx, const uint8_t *a,
                       const uint8_t *b, bool *eq)
{
    json_t *x = NULL, *y = NULL;
    int rc;
    if (!memcmp(a, b, AHL_SHA256_LEN)) {
        *eq = true;
        return 0;
    }
    if ((rc = ahl__json_load(m, tx, NULL, a, &x)) == 0 &&
        (rc = ahl__json_load(m, tx, NULL, b, &y)) == 0)
        *eq = json_equal(json_object_get(x, "DICOM"), json_object_get(y, "DICOM"));
    json_decref(x);
    json_decref(y);
    return rc;
}

/* Writes the picked series into the series map of r (new or existing destination). */
static int merge_into(struct ahl_meta *m, struct ahl_store_tx *tx, struct ahl__batch *b,
                      struct ahl__root *r, struct picks *p, bool force, bool *forced,
                      struct ahl_err *err)
{
    int rc;
    for (size_t i = 0; i < p->n; i++) {
        struct pick *k = &p->v[i];
        uint8_t dval[2 * AHL_SHA256_LEN], val[2 * AHL_SHA256_LEN];
        memcpy(val, k->val, sizeof val);
        rc = ahl__map_get(m, tx, b, r->series, k->uid, strlen(k->uid), dval, sizeof dval);
        bool exists = rc == 0;
        if (rc < 0 && rc != AHL_ENOTFOUND)
            return ahl_meta_store_fail(err, rc, "reading the destination");
        if (exists) {
            bool eq;
            if ((rc = dicom_equal(m, tx, dval, k->val, &eq)) < 0)
                return ahl_meta_store_fail(err, rc, "reading the destination");
            if (!eq && !force)
                return ahl_fail(err, AHL_EINVAL,
                                "INVALID_REQUEST: Series of SourceImageSet and "
                                "DestinationImageSet don't match (Study.Series['%s']); use "
                                "force to copy anyway",
                                k->uid);
            if (!eq)
                *forced = true;
            /* The destination keeps its own series attributes and instances. */
            memcpy(val, dval, sizeof val);
        }
        bool whole = !ahl__hash_is_zero(k->val + AHL_SHA256_LEN);
        if (!exists && whole) {
            /* Share the source's whole instance map. */
        } else if (!exists) {
            struct ahl__map_entry *e = calloc(k->inst.n ? k->inst.n : 1, sizeof *e);
            if (!e)
                return AHL_ENOMEM;
            for (size_t j = 0; j < k->inst.n; j++)
                e[j] = (struct ahl__map_entry){k->inst.v[j].key, strlen(k->inst.v[j].key),
                                               k->inst.v[j].h};
            rc = ahl__map_build(b, e, k->inst.n, AHL_SHA256_LEN, val + AHL_SHA256_LEN);
            free(e);
            if (rc < 0)
                return rc;
        } else {
            for (size_t j = 0; j < k->inst.n; j++)
                if ((rc = ahl__map_set(b, tx, val + AHL_SHA256_LEN, k->inst.v[j].key,
                                       strlen(k->inst.v[j].key), k->inst.v[j].h, AHL_SHA256_LEN,
                                       val + AHL_SHA256_LEN)) < 0)
                    return rc;
        }
        if ((rc = ahl__map_set(b, tx, r->series, k->uid, strlen(k->uid), val, sizeof val,
                               r->series)) < 0)
            return rc;
    }
    return 0;
}

/* Adds the frame-index rows of every copied instance to the destination (each instance's
 * chunk is read: the cost of the instances copied, like the map edits of a merge). */
static int index_picks(struct ahl_meta *m, struct ahl_store_tx *tx, const struct picks *p,
                       const char *dst_id, struct ahl_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < p->n && rc == 0; i++)
        for (size_t j = 0; j < p->v[i].inst.n && rc == 0; j++) {
            json_t *inst = NULL;
            if ((rc = ahl__json_load(m, tx, NULL, p->v[i].inst.v[j].h, &inst)) == 0)
                rc = ahl__frames_index_instance(tx, dst_id, inst);
            json_decref(inst);
        }
    return rc < 0 ? ahl_meta_store_fail(err, rc, "indexing the copied frames") : 0;
}

int ahl_meta_copy(struct ahl_meta *m, const char *datastore_id, const char *source_id,
                  const struct ahl_meta_copy *c, struct ahl_meta_copy_result *res,
                  struct ahl_err *err)
{
    struct ahl__batch b;
    struct ahl_store_tx *tx = NULL;
    struct ahl_imageset_rec src, dst;
    struct ahl_version_rec sv, dv;
    struct ahl__root sr, dr;
    struct picks p = {NULL, 0};
    struct ahl_err local;
    uint8_t root[AHL_SHA256_LEN];
    bool forced = false;
    int rc;
    if (!err)
        err = &local;
    ahl_err_clear(err);
    ahl__batch_init(&b, m);
    memset(&dst, 0, sizeof dst);
    if (c->copiable_attributes && c->copiable_len > 260000) {
        rc = ahl_fail(err, AHL_EINVAL, "copiableAttributes: longer than 260000 characters");
        goto out;
    }
    if ((rc = ahl_store_begin(m->store, true, &tx)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "starting a transaction");
        goto out;
    }
    if ((rc = ahl__set_find_writable(tx, datastore_id, source_id, &src, err)) < 0)
        goto out;
    if (c->source_latest_version != src.latest_version) {
        rc = ahl_fail(err, AHL_ECONFLICT,
                      "source image set %s: latestVersionId %llu is not the latest version",
                      source_id, (unsigned long long)c->source_latest_version);
        goto out;
    }
    if ((rc = ahl_store_version_get(tx, src.id, src.latest_version, &sv)) < 0 ||
        (rc = ahl__root_load(m, tx, NULL, sv.root, &sr)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "reading the source");
        goto out;
    }
    int64_t now = ahl_now_ms();
    if (!c->destination_id) {
        if (!c->copiable_attributes) {
            memcpy(root, sv.root, AHL_SHA256_LEN);
        } else {
            if ((rc = choose(m, tx, &sr, c, &p, err)) < 0)
                goto out;
            dr = sr;
            memset(dr.series, 0, sizeof dr.series);
            if ((rc = merge_into(m, tx, &b, &dr, &p, c->force, &forced, err)) < 0 ||
                (rc = ahl__root_store(&b, &dr, root)) < 0)
                goto out;
        }
        if ((rc = ahl_random_id(dst.id)) < 0)
            goto out;
        memcpy(dst.datastore_id, src.datastore_id, sizeof dst.datastore_id);
        dst.is_primary = c->promote_to_primary;
        dst.latest_version = 1;
        dst.created_at_ms = dst.updated_at_ms = now;
        if ((rc = ahl__version_commit(m, tx, &b, &dst, 0, root, c->force, AHL_WORKFLOW_COPIED,
                                      err)) < 0)
            goto out;
        /* A whole copy shares the source's document, so it takes over the source's frame rows
         * in one statement (the copy stays O(1) in the set's size). */
        if (!c->copiable_attributes) {
            if ((rc = ahl_store_frame_copy(tx, src.id, dst.id)) < 0) {
                rc = ahl_meta_store_fail(err, rc, "indexing the copied frames");
                goto out;
            }
        } else if ((rc = index_picks(m, tx, &p, dst.id, err)) < 0) {
            goto out;
        }
    } else {
        if ((rc = ahl__set_find_writable(tx, datastore_id, c->destination_id, &dst, err)) < 0)
            goto out;
        if (!strcmp(dst.id, src.id)) {
            rc = ahl_fail(err, AHL_EINVAL, "the destination image set must differ from the source");
            goto out;
        }
        if (c->destination_latest_version != dst.latest_version) {
            rc = ahl_fail(err, AHL_ECONFLICT,
                          "destination image set %s: latestVersionId %llu is not the latest "
                          "version",
                          dst.id, (unsigned long long)c->destination_latest_version);
            goto out;
        }
        if ((rc = ahl_store_version_get(tx, dst.id, dst.latest_version, &dv)) < 0 ||
            (rc = ahl__root_load(m, tx, NULL, dv.root, &dr)) < 0) {
            rc = ahl_meta_store_fail(err, rc, "reading the destination");
            goto out;
        }
        bool eq_p, eq_s;
        if ((rc = dicom_equal(m, tx, sr.patient, dr.patient, &eq_p)) < 0 ||
            (rc = dicom_equal(m, tx, sr.study, dr.study, &eq_s)) < 0) {
            rc = ahl_meta_store_fail(err, rc, "comparing source and destination");
            goto out;
        }
        if ((!eq_p || !eq_s) && !c->force) {
            rc = ahl_fail(err, AHL_EINVAL,
                          "INVALID_REQUEST: %s of SourceImageSet and DestinationImageSet don't "
                          "match; use force to copy anyway",
                          !eq_p ? "Patient" : "Study");
            goto out;
        }
        forced = !eq_p || !eq_s;
        if ((rc = choose(m, tx, &sr, c, &p, err)) < 0)
            goto out;
        /* A whole series the destination lacks may share the source's instance map; one it has
         * takes the instances one by one. */
        if ((rc = merge_into(m, tx, &b, &dr, &p, c->force, &forced, err)) < 0 ||
            (rc = ahl__root_store(&b, &dr, root)) < 0)
            goto out;
        uint64_t expected = dst.latest_version;
        dst.latest_version++;
        dst.updated_at_ms = now;
        if (c->promote_to_primary)
            dst.is_primary = true;
        if ((rc = ahl__version_commit(m, tx, &b, &dst, expected, root, c->force || forced,
                                      AHL_WORKFLOW_COPIED, err)) < 0 ||
            (rc = index_picks(m, tx, &p, dst.id, err)) < 0)
            goto out;
    }
    /* The copy's events in AWS's order: the source locked for reading, the destination copying,
     * the destination copied, the source released (docs/events.md#which-events). */
    if ((rc = ahl__events_imageset(tx, AHL_EVENT_TYPE_COUNT,
                                   AHL_EVENT_IMAGE_SET_COPYING_READ_ONLY, &src, err)) < 0 ||
        (rc = ahl__events_imageset(tx, AHL_EVENT_IMAGE_SET_COPYING, AHL_EVENT_IMAGE_SET_COPIED,
                                   &dst, err)) < 0 ||
        (rc = ahl__events_imageset(tx, AHL_EVENT_TYPE_COUNT, AHL_EVENT_IMAGE_SET_COPIED, &src,
                                   err)) < 0)
        goto out;
    rc = ahl__commit_publish(&tx, &b, err);
    if (rc < 0)
        goto out;
    if (res) {
        res->source = src;
        res->destination = dst;
    }
out:
    if (rc < 0 && !err->code)
        ahl_meta_store_fail(err, rc, "copying");
    picks_free(&p);
    ahl_store_rollback(tx);
    ahl__batch_release(&b);
    return rc;
}
