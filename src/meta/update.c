/* UpdateImageSetMetadata: DICOMUpdates and revertToVersionId, as one new version per image set.
 *
 * Cost follows the change, not the set: only the nodes the blobs name are loaded (Patient, Study,
 * and the addressed Series and Instances, found through the persistent maps), they are edited as
 * jansson objects, and only they and their map paths are written. The rules see a "current"
 * document holding exactly those nodes, which is all they need (existence and current values).
 *
 * Order inside one request: removals first, then updates (so an attribute given in both ends up
 * set); then nodes whose Series/SOP Instance UID changed (force) are re-keyed. Everything happens
 * in one write transaction, ending with the compare-and-set of the latest version; any failure
 * rolls it all back.
 *
 * Concurrency: an update of one set with DICOMUpdates is first computed outside the write
 * transaction, from a read snapshot (prepare()); the write transaction then re-reads the set and,
 * if it is still at the version the work started from (same root, same primary flag: the only
 * inputs besides the request), writes the prepared chunks, version and search row; otherwise it
 * recomputes everything inside the transaction as before. So the compare-and-set and every
 * error are decided inside the write transaction exactly as without the preparation, while
 * concurrent updates prepare in parallel and hold the write lock only to write (and share a group
 * commit, see src/store/sqlite_conn.c).
 *
 * includeStudyImageSets: the other primary image sets whose StudyInstanceUID equals the addressed
 * set's get the same update in the same transaction. Patient and Study parts apply to each; Series
 * and Instance parts apply where that set holds the series/instance (the addressed set must hold
 * every one it names, as always).
 */
#include "meta/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "meta/update_request.h"
#include "base/banned.h"

/* The touched part of one image set's latest version. */
struct work {
    struct ahl__root root;
    json_t *cur;   /* {"Patient":..,"Study":{..,"Series":{uid:{..,"Instances":{uid:..}}}}} */
    json_t *roots; /* series uid -> instances map root, as a 64-hex string */
    json_t *gone;  /* series uid -> {"series":true} or {"instances":{uid:true}} for removals */
};

static void work_release(struct work *w)
{
    json_decref(w->cur);
    json_decref(w->roots);
    json_decref(w->gone);
    memset(w, 0, sizeof *w);
}

static json_t *series_map(struct work *w)
{
    return json_object_get(json_object_get(w->cur, "Study"), "Series");
}

/* Loads the series (and its named instances) the blob names into w->cur. A name the set does not
 * hold is left out (the rules report it for the addressed set; other sets skip it). */
static int load_named(struct ahl_meta *m, struct ahl_store_tx *tx, struct work *w,
                      const json_t *blob)
{
    const json_t *series = json_object_get(json_object_get(blob, "Study"), "Series");
    const char *suid, *iuid;
    json_t *snode, *inode;
    json_t *smap = series_map(w);
    int rc;
    json_object_foreach((json_t *)series, suid, snode)
    {
        json_t *s = json_object_get(smap, suid);
        uint8_t val[2 * AHL_SHA256_LEN];
        if (!s) {
            rc = ahl__map_get(m, tx, NULL, w->root.series, suid, strlen(suid), val, sizeof val);
            if (rc == AHL_ENOTFOUND)
                continue;
            if (rc < 0 || (rc = ahl__json_load(m, tx, NULL, val, &s)) < 0)
                return rc;
            char hex[AHL_SHA256_HEX_LEN + 1];
            ahl_hex_encode(val + AHL_SHA256_LEN, AHL_SHA256_LEN, hex);
            if (json_object_set_new(s, "Instances", json_object()) < 0 ||
                json_object_set_new(smap, suid, s) < 0 ||
                json_object_set_new(w->roots, suid, json_string(hex)) < 0)
                return AHL_ENOMEM;
        }
        json_t *imap = json_object_get(s, "Instances");
        const char *hex = json_string_value(json_object_get(w->roots, suid));
        uint8_t iroot[AHL_SHA256_LEN];
        if (!hex || ahl_hex_decode(hex, iroot, AHL_SHA256_LEN) < 0)
            return AHL_EINTERNAL;
        json_object_foreach(json_object_get(snode, "Instances"), iuid, inode)
        {
            (void)inode;
            if (json_object_get(imap, iuid))
                continue;
            uint8_t h[AHL_SHA256_LEN];
            json_t *o;
            rc = ahl__map_get(m, tx, NULL, iroot, iuid, strlen(iuid), h, sizeof h);
            if (rc == AHL_ENOTFOUND)
                continue;
            if (rc < 0 || (rc = ahl__json_load(m, tx, NULL, h, &o)) < 0)
                return rc;
            if (json_object_set_new(imap, iuid, o) < 0)
                return AHL_ENOMEM;
        }
    }
    return 0;
}

static int work_load(struct ahl_meta *m, struct ahl_store_tx *tx, const uint8_t *root,
                     const struct ahl_updates *u, struct work *w)
{
    json_t *patient = NULL, *study = NULL;
    int rc;
    memset(w, 0, sizeof *w);
    if ((rc = ahl__root_load(m, tx, NULL, root, &w->root)) < 0 ||
        (rc = ahl__json_load(m, tx, NULL, w->root.patient, &patient)) < 0 ||
        (rc = ahl__json_load(m, tx, NULL, w->root.study, &study)) < 0)
        goto fail;
    if (!(w->cur = json_object()) || !(w->roots = json_object()) || !(w->gone = json_object()) ||
        json_object_set_new(study, "Series", json_object()) < 0 ||
        json_object_set_new(w->cur, "Patient", patient) < 0) {
        patient = NULL;
        rc = AHL_ENOMEM;
        goto fail;
    }
    patient = NULL;
    if (json_object_set_new(w->cur, "Study", study) < 0) {
        study = NULL;
        rc = AHL_ENOMEM;
        goto fail;
    }
    study = NULL;
    if ((u->removable && (rc = load_named(m, tx, w, u->removable)) < 0) ||
        (u->updatable && (rc = load_named(m, tx, w, u->updatable)) < 0))
        goto fail;
    return 0;
fail:
    json_decref(patient);
    json_decref(study);
    work_release(w);
    return rc;
}

/* Removes the keys of src's DICOM from node's DICOM (and their DICOMVRs entries). */
static void remove_attrs(json_t *node, const json_t *src)
{
    json_t *d = json_object_get(node, "DICOM");
    json_t *vrs = json_object_get(node, "DICOMVRs");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(src, "DICOM"), k, v)
    {
        (void)v;
        if (d)
            json_object_del(d, k);
        if (vrs)
            json_object_del(vrs, k);
    }
}

/* Sets the attributes of src's DICOM and DICOMVRs into node (deep copies). */
static int set_attrs(json_t *node, const json_t *src)
{
    static const char *const parts[] = {"DICOM", "DICOMVRs"};
    for (int i = 0; i < 2; i++) {
        const json_t *in = json_object_get(src, parts[i]);
        if (!in)
            continue;
        json_t *d = json_object_get(node, parts[i]);
        if (!json_is_object(d)) {
            if (!(d = json_object()) || json_object_set_new(node, parts[i], d) < 0)
                return AHL_ENOMEM;
        }
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)in, k, v)
        {
            if (json_object_set_new(d, k, json_deep_copy(v)) < 0)
                return AHL_ENOMEM;
        }
    }
    return 0;
}

static int mark_gone(struct work *w, const char *suid, const char *iuid)
{
    json_t *g = json_object_get(w->gone, suid);
    if (!g) {
        if (!(g = json_object()) || json_object_set_new(w->gone, suid, g) < 0)
            return AHL_ENOMEM;
    }
    if (!iuid)
        return json_object_set_new(g, "series", json_true()) < 0 ? AHL_ENOMEM : 0;
    json_t *is = json_object_get(g, "instances");
    if (!is) {
        if (!(is = json_object()) || json_object_set_new(g, "instances", is) < 0)
            return AHL_ENOMEM;
    }
    return json_object_set_new(is, iuid, json_true()) < 0 ? AHL_ENOMEM : 0;
}

static int apply_blob(struct work *w, const json_t *blob, bool removing, bool lenient,
                      struct ahl_err *err)
{
    const char *which = removing ? "removableAttributes" : "updatableAttributes";
    json_t *patient = json_object_get(w->cur, "Patient");
    json_t *study = json_object_get(w->cur, "Study");
    json_t *smap = series_map(w);
    const json_t *bp = json_object_get(blob, "Patient");
    const json_t *bs = json_object_get(blob, "Study");
    int rc;
    if (bp) {
        if (removing)
            remove_attrs(patient, bp);
        else if ((rc = set_attrs(patient, bp)) < 0)
            return rc;
    }
    if (!bs)
        return 0;
    if (removing)
        remove_attrs(study, bs);
    else if ((rc = set_attrs(study, bs)) < 0)
        return rc;
    const char *suid, *iuid;
    json_t *snode, *inode;
    json_object_foreach(json_object_get(bs, "Series"), suid, snode)
    {
        json_t *s = json_object_get(smap, suid);
        if (!s) {
            if (lenient && !json_object_get(w->gone, suid))
                continue;
            return ahl_fail(err, AHL_EINVAL,
                            "%s.Study.Series['%s']: no such series in the image set", which, suid);
        }
        if (removing && json_object_size(snode) == 0) {
            json_object_del(smap, suid);
            if ((rc = mark_gone(w, suid, NULL)) < 0)
                return rc;
            continue;
        }
        if (removing)
            remove_attrs(s, snode);
        else if ((rc = set_attrs(s, snode)) < 0)
            return rc;
        json_t *imap = json_object_get(s, "Instances");
        json_object_foreach(json_object_get(snode, "Instances"), iuid, inode)
        {
            json_t *o = json_object_get(imap, iuid);
            if (!o) {
                if (lenient)
                    continue;
                return ahl_fail(err, AHL_EINVAL,
                                "%s.Study.Series['%s'].Instances['%s']: no such instance in the "
                                "image set",
                                which, suid, iuid);
            }
            if (removing && json_object_size(inode) == 0) {
                json_object_del(imap, iuid);
                if ((rc = mark_gone(w, suid, iuid)) < 0)
                    return rc;
                continue;
            }
            if (removing)
                remove_attrs(o, inode);
            else if ((rc = set_attrs(o, inode)) < 0)
                return rc;
        }
    }
    return 0;
}

/* The key a node must live under: its UID attribute when it is a string, else its old key. */
static const char *node_key(const json_t *node, const char *attr, const char *old)
{
    const json_t *u = json_object_get(json_object_get(node, "DICOM"), attr);
    return json_is_string(u) && json_string_length(u) > 0 ? json_string_value(u) : old;
}

/* Writes the edited nodes and their map paths; the new root is returned. */
static int work_store(struct ahl_meta *m, struct ahl_store_tx *tx, struct ahl__batch *b,
                      struct work *w, uint8_t newroot[AHL_SHA256_LEN], struct ahl_err *err)
{
    struct ahl__root r = w->root;
    json_t *smap = series_map(w);
    const char *suid, *iuid;
    json_t *s, *o, *g;
    uint8_t probe[2 * AHL_SHA256_LEN];
    int rc;
    if ((rc = ahl__store_obj(b, json_object_get(w->cur, "Patient"), NULL, r.patient)) < 0 ||
        (rc = ahl__store_obj(b, json_object_get(w->cur, "Study"), "Series", r.study)) < 0)
        return rc;
    /* Removed series first, so a re-key may take a freed UID. */
    json_object_foreach(w->gone, suid, g)
    {
        if (json_object_get(g, "series") &&
            (rc = ahl__map_set(b, tx, r.series, suid, strlen(suid), NULL, 0, r.series)) < 0)
            return rc;
    }
    json_object_foreach(smap, suid, s)
    {
        uint8_t iroot[AHL_SHA256_LEN], val[2 * AHL_SHA256_LEN];
        const char *hex = json_string_value(json_object_get(w->roots, suid));
        if (!hex || ahl_hex_decode(hex, iroot, AHL_SHA256_LEN) < 0)
            return AHL_EINTERNAL;
        json_t *ig = json_object_get(json_object_get(w->gone, suid), "instances");
        json_t *t;
        json_object_foreach(ig, iuid, t)
        {
            (void)t;
            if ((rc = ahl__map_set(b, tx, iroot, iuid, strlen(iuid), NULL, 0, iroot)) < 0)
                return rc;
        }
        json_t *imap = json_object_get(s, "Instances");
        json_object_foreach(imap, iuid, o)
        {
            uint8_t h[AHL_SHA256_LEN];
            const char *key = node_key(o, "SOPInstanceUID", iuid);
            if (strcmp(key, iuid) != 0) {
                if ((rc = ahl__map_set(b, tx, iroot, iuid, strlen(iuid), NULL, 0, iroot)) < 0)
                    return rc;
                if (ahl__map_get(m, tx, b, iroot, key, strlen(key), h, sizeof h) == 0)
                    return ahl_fail(err, AHL_EINVAL,
                                    "Study.Series['%s'].Instances['%s']: SOPInstanceUID '%s' "
                                    "is already an instance of the series",
                                    suid, iuid, key);
            }
            if ((rc = ahl__store_obj(b, o, NULL, h)) < 0 ||
                (rc = ahl__map_set(b, tx, iroot, key, strlen(key), h, sizeof h, iroot)) < 0)
                return rc;
        }
        if ((rc = ahl__store_obj(b, s, "Instances", val)) < 0)
            return rc;
        memcpy(val + AHL_SHA256_LEN, iroot, AHL_SHA256_LEN);
        const char *key = node_key(s, "SeriesInstanceUID", suid);
        if (strcmp(key, suid) != 0) {
            if ((rc = ahl__map_set(b, tx, r.series, suid, strlen(suid), NULL, 0, r.series)) < 0)
                return rc;
            if (ahl__map_get(m, tx, b, r.series, key, strlen(key), probe, sizeof probe) == 0)
                return ahl_fail(err, AHL_EINVAL,
                                "Study.Series['%s']: SeriesInstanceUID '%s' is already a series "
                                "of the image set",
                                suid, key);
        }
        if ((rc = ahl__map_set(b, tx, r.series, key, strlen(key), val, sizeof val, r.series)) < 0)
            return rc;
    }
    return ahl__root_store(b, &r, newroot);
}

/* Applies u to the version of set whose root is `from`, giving the new root. The result depends
 * only on from, u, force, lenient, set->is_primary and the engine's options. */
static int apply_to_root(struct ahl_meta *m, struct ahl_store_tx *tx, struct ahl__batch *b,
                         const struct ahl_imageset_rec *set, const uint8_t *from,
                         const struct ahl_updates *u, bool force, bool lenient,
                         uint8_t newroot[AHL_SHA256_LEN], struct ahl_err *err)
{
    struct work w;
    int rc;
    if ((rc = work_load(m, tx, from, u, &w)) < 0)
        return ahl_meta_store_fail(err, rc, "reading the latest version");
    struct ahl_rules_opts ro = {force, m->opts.aws_primary_rules, set->is_primary};
    /* Other sets of the study are checked against what they hold, without existence checks. */
    if ((rc = ahl_updates_check(u, lenient ? NULL : w.cur, &ro, err)) < 0)
        goto out;
    if ((u->removable && (rc = apply_blob(&w, u->removable, true, lenient, err)) < 0) ||
        (u->updatable && (rc = apply_blob(&w, u->updatable, false, lenient, err)) < 0))
        goto out;
    if ((rc = work_store(m, tx, b, &w, newroot, err)) < 0 && !err->msg[0])
        rc = ahl_meta_store_fail(err, rc, "writing the new version");
out:
    work_release(&w);
    return rc;
}

/* Applies u to one image set's latest version, giving the new root. */
static int apply_to_set(struct ahl_meta *m, struct ahl_store_tx *tx, struct ahl__batch *b,
                        const struct ahl_imageset_rec *set, const struct ahl_updates *u, bool force,
                        bool lenient, uint8_t newroot[AHL_SHA256_LEN], struct ahl_err *err)
{
    struct ahl_version_rec cur;
    int rc = ahl_store_version_get(tx, set->id, set->latest_version, &cur);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "reading the latest version");
    return apply_to_root(m, tx, b, set, cur.root, u, force, lenient, newroot, err);
}

struct study_sets {
    struct ahl_imageset_rec *v;
    size_t n, cap;
    const char *skip;
};

static int collect_set(void *ctx, const struct ahl_imageset_rec *rec)
{
    struct study_sets *s = ctx;
    if (!strcmp(rec->id, s->skip))
        return 0;
    if (s->n == s->cap) {
        struct ahl_imageset_rec *v = ahl_array_grow(s->v, &s->cap, sizeof *v, 4);
        if (!v)
            return AHL_ENOMEM;
        s->v = v;
    }
    s->v[s->n++] = *rec;
    return 0;
}

/* An update computed ahead of its write transaction (see ahl_meta_update). */
struct prepared {
    bool ok;
    uint64_t version; /* the latest version it was computed from */
    bool is_primary;  /* the set's flag then (the rules depend on it) */
    uint8_t from[AHL_SHA256_LEN];
    uint8_t root[AHL_SHA256_LEN]; /* the new version's root; its chunks are in the batch */
    struct ahl_search_row row;    /* the new root's search row, to be stamped with the set's row */
};

/* Computes a DICOMUpdates update of one set from a read snapshot, without the write lock: loads
 * the touched nodes, applies and checks the blobs, builds the new chunks into b and the search
 * row. Anything unusual (set missing, stale version, a rule failing, a store error)
 * leaves p->ok false and b empty: the write transaction then does the whole update itself and
 * reports the error as it always has. */
static void prepare(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                    const struct ahl_meta_update *u, const struct ahl_updates *upd,
                    struct ahl__batch *b, struct prepared *p)
{
    struct ahl_store_tx *tx;
    struct ahl_imageset_rec set;
    struct ahl_version_rec cur;
    struct ahl_search_row old;
    struct ahl_err err;
    memset(p, 0, sizeof *p);
    if (ahl_store_begin(m->store, false, &tx) < 0)
        return;
    if (ahl__set_find(tx, datastore_id, imageset_id, &set, &err) == 0 &&
        u->latest_version == set.latest_version &&
        ahl_store_version_get(tx, set.id, set.latest_version, &cur) == 0 &&
        apply_to_root(m, tx, b, &set, cur.root, upd, u->force, false, p->root, &err) == 0 &&
        /* The stored search row describes the latest version when it says so: then only
         * the nodes the update changed are read for the new one. */
        (ahl_store_search_get(tx, set.id, &old) == 0 && old.version == set.latest_version
             ? ahl__search_row_from(m, tx, b, cur.root, &old, p->root, &set, &p->row)
             : ahl__search_row(m, tx, b, p->root, &set, &p->row)) == 0) {
        p->ok = true;
        p->version = set.latest_version;
        p->is_primary = set.is_primary;
        memcpy(p->from, cur.root, AHL_SHA256_LEN);
    }
    ahl_store_rollback(tx);
    if (!p->ok) {
        ahl__batch_release(b);
        ahl__batch_init(b, m);
    }
}

int ahl_meta_update(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                    const struct ahl_meta_update *u, struct ahl_meta_update_result *res,
                    struct ahl_err *err)
{
    struct ahl_updates upd = {NULL, NULL};
    struct ahl__batch b;
    struct ahl_store_tx *tx = NULL;
    struct ahl_imageset_rec set;
    struct study_sets others = {NULL, 0, 0, imageset_id};
    struct ahl_err local;
    uint8_t root[AHL_SHA256_LEN];
    bool have_blobs = u->updatable || u->removable;
    int rc;
    if (!err)
        err = &local;
    ahl_err_clear(err);
    ahl__batch_init(&b, m);
    if (u->revert_to_version && have_blobs) {
        rc = ahl_fail(err, AHL_EINVAL,
                      "revertToVersionId and DICOMUpdates cannot be given together");
        goto out;
    }
    if (u->revert_to_version && u->include_study_image_sets) {
        rc = ahl_fail(err, AHL_EINVAL,
                      "includeStudyImageSets cannot be used with revertToVersionId");
        goto out;
    }
    if (!u->revert_to_version && !have_blobs) {
        rc = ahl_fail(err, AHL_EINVAL,
                      "updateImageSetMetadataUpdates: give DICOMUpdates or revertToVersionId");
        goto out;
    }
    if (have_blobs &&
        (rc = ahl_updates_parse(u->updatable, u->updatable_len, u->removable, u->removable_len,
                                m->opts.max_update_bytes, &upd, err)) < 0)
        goto out;
    /* A single-set DICOMUpdates update is computed before the write lock is taken, so that
     * concurrent updates do that work in parallel and the write transaction (one at a time)
     * only checks that the set is still at the version the work started from and writes. */
    struct prepared pre = {0};
    bool announced = have_blobs && !u->include_study_image_sets;
    if (announced) {
        /* Concurrent committers wait a little for this one to share their commit (store.h). */
        ahl_store_write_intent(m->store, +1);
        prepare(m, datastore_id, imageset_id, u, &upd, &b, &pre);
    }
    rc = ahl_store_begin(m->store, true, &tx);
    if (announced)
        ahl_store_write_intent(m->store, -1);
    if (rc < 0) {
        rc = ahl_meta_store_fail(err, rc, "starting a transaction");
        goto out;
    }
    if ((rc = ahl__set_find_writable(tx, datastore_id, imageset_id, &set, err)) < 0)
        goto out;
    if (u->latest_version != set.latest_version) {
        rc = ahl_fail(err, AHL_ECONFLICT,
                      "image set %s: latestVersionId %llu is not the latest version (%llu)",
                      imageset_id, (unsigned long long)u->latest_version,
                      (unsigned long long)set.latest_version);
        goto out;
    }
    bool forced = false;
    if (u->revert_to_version) {
        struct ahl_version_rec target;
        rc = ahl_store_version_get(tx, set.id, u->revert_to_version, &target);
        if (rc == AHL_ENOTFOUND) {
            rc = ahl_fail(err, AHL_EINVAL,
                          "revertToVersionId %llu: image set %s has no such version",
                          (unsigned long long)u->revert_to_version, imageset_id);
            goto out;
        }
        if (rc < 0) {
            rc = ahl_meta_store_fail(err, rc, "reading the version to revert to");
            goto out;
        }
        memcpy(root, target.root, AHL_SHA256_LEN);
    } else {
        struct ahl_version_rec cur;
        if (pre.ok && pre.version == set.latest_version && pre.is_primary == set.is_primary &&
            (rc = ahl_store_version_get(tx, set.id, set.latest_version, &cur)) == 0 &&
            !memcmp(cur.root, pre.from, AHL_SHA256_LEN)) {
            memcpy(root, pre.root, AHL_SHA256_LEN); /* the same inputs give the same result */
        } else {
            pre.ok = false;
            ahl__batch_release(&b);
            ahl__batch_init(&b, m);
            if ((rc = apply_to_set(m, tx, &b, &set, &upd, u->force, false, root, err)) < 0)
                goto out;
        }
        forced = u->force;
    }
    if (u->include_study_image_sets) {
        struct ahl_search_row row;
        if ((rc = ahl_store_search_get(tx, set.id, &row)) < 0) {
            rc = ahl_meta_store_fail(err, rc, "reading the search index");
            goto out;
        }
        if (row.study_instance_uid[0] &&
            (rc = ahl_store_imageset_by_study(tx, datastore_id, row.study_instance_uid, true,
                                              collect_set, &others)) < 0) {
            rc = ahl_meta_store_fail(err, rc, "finding the study's image sets");
            goto out;
        }
    }
    int64_t now = ahl_now_ms();
    set.latest_version++;
    set.updated_at_ms = now;
    if ((rc = ahl__version_commit_row(m, tx, &b, &set, u->latest_version, root, forced,
                                      AHL_WORKFLOW_UPDATED, pre.ok ? &pre.row : NULL, err)) < 0 ||
        (rc = ahl__events_imageset(tx, AHL_EVENT_IMAGE_SET_UPDATING, AHL_EVENT_IMAGE_SET_UPDATED,
                                   &set, err)) < 0)
        goto out;
    for (size_t i = 0; i < others.n; i++) {
        struct ahl_imageset_rec *o = &others.v[i];
        uint8_t oroot[AHL_SHA256_LEN];
        if ((rc = apply_to_set(m, tx, &b, o, &upd, u->force, true, oroot, err)) < 0)
            goto out;
        uint64_t expected = o->latest_version;
        o->latest_version++;
        o->updated_at_ms = now;
        /* Their versions say why they were made (docs/decisions.md#include-study-image-sets). */
        if ((rc = ahl__version_commit(m, tx, &b, o, expected, oroot, u->force,
                                      AHL_WORKFLOW_UPDATING_FOR_STUDY_CONSISTENCY, err)) < 0 ||
            (rc = ahl__events_imageset(tx, AHL_EVENT_IMAGE_SET_UPDATING,
                                       AHL_EVENT_IMAGE_SET_UPDATED, o, err)) < 0)
            goto out;
    }
    rc = ahl__commit_publish(&tx, &b, err);
    if (rc < 0)
        goto out;
    if (res) {
        memset(res, 0, sizeof *res);
        res->latest_version = set.latest_version;
        res->created_at_ms = set.created_at_ms;
        res->updated_at_ms = now;
        res->study_sets_updated = (unsigned)others.n;
    }
out:
    if (rc < 0 && !err->code)
        ahl_meta_store_fail(err, rc, "updating");
    free(others.v);
    ahl_store_rollback(tx);
    ahl__batch_release(&b);
    ahl_updates_release(&upd);
    return rc;
}
