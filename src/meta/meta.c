/* The engine's simple operations: creating an image set from a normalized document, importing
 * instances into an existing set, reading image sets, versions and documents, and deleting. */
#include "meta/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/codec.h"
#include "json/json.h"
#include "base/text.h"
#include "base/banned.h"

int ahl__merge_own(json_t *node, const json_t *src, const char *child_key)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)src, k, v)
    {
        if (child_key && !strcmp(k, child_key))
            continue;
        json_t *cur = json_object_get(node, k);
        if ((!strcmp(k, "DICOM") || !strcmp(k, "DICOMVRs")) && json_is_object(cur) &&
            json_is_object(v)) {
            if (json_object_update(cur, v) < 0)
                return AHL_ENOMEM;
        } else if (json_object_set(node, k, v) < 0) {
            return AHL_ENOMEM;
        }
    }
    return 0;
}

static int datastore_active(struct ahl_store_tx *tx, const char *ds, struct ahl_err *err)
{
    struct ahl_datastore_rec d;
    int rc = ahl_store_datastore_get(tx, ds, &d);
    if (rc == AHL_ENOTFOUND)
        return ahl_fail(err, rc, "data store %s not found", ds);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "reading the data store");
    if (ahl_datastore_status_parse(d.status) != AHL_DATASTORE_ACTIVE)
        return ahl_fail(err, AHL_ECONFLICT, "data store %s is %s, not %s", ds, d.status,
                        ahl_datastore_status_name(AHL_DATASTORE_ACTIVE));
    return 0;
}

static void info_from(struct ahl_meta_info *out, const struct ahl_imageset_rec *set,
                      const struct ahl_version_rec *v)
{
    if (!out)
        return;
    out->set = *set;
    out->ver = *v;
}

struct primary_probe {
    struct ahl_store_tx *tx;
    const char *series_uid;
    int found; /* 1 found, 0 not, negative AHL_E* */
};

static int probe_primary(void *ctx, const struct ahl_imageset_rec *rec)
{
    struct primary_probe *p = ctx;
    struct ahl_search_row row;
    if (!rec->is_primary)
        return 0;
    int rc = ahl_store_search_get(p->tx, rec->id, &row);
    if (rc == AHL_ENOTFOUND)
        return 0;
    if (rc < 0 || !strcmp(row.series_instance_uid, p->series_uid)) {
        p->found = rc < 0 ? rc : 1;
        return 1;
    }
    return 0;
}

/* AHL_ECONFLICT when the data store holds a primary image set of doc's study and series (see
 * sole_primary in meta.h); 0 when it does not or doc does not name exactly one series. */
static int primary_absent(struct ahl_store_tx *tx, const char *ds, const json_t *doc,
                          struct ahl_err *err)
{
    const json_t *study = json_object_get(doc, "Study");
    const json_t *sd = json_object_get(study, "DICOM");
    const char *study_uid = json_string_value(json_object_get(sd, "StudyInstanceUID"));
    const json_t *series = json_object_get(study, "Series");
    if (!study_uid || !json_is_object(series) || json_object_size(series) != 1)
        return 0;
    struct primary_probe p = {.tx = tx};
    p.series_uid = json_object_iter_key(json_object_iter((json_t *)series));
    int rc = ahl_store_imageset_by_study(tx, ds, study_uid, true, probe_primary, &p);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "listing the study's image sets");
    if (p.found < 0)
        return ahl_meta_store_fail(err, p.found, "reading the search index");
    if (p.found)
        return ahl_fail(err, AHL_ECONFLICT, "series %s already has a primary image set",
                        p.series_uid);
    return 0;
}

/* Reports a version just committed: the set row and the version row it wrote. */
static void info_new(struct ahl_meta_info *out, const struct ahl_imageset_rec *set,
                     const uint8_t *root)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    out->set = *set;
    memcpy(out->ver.imageset_id, set->id, sizeof set->id);
    out->ver.version = set->latest_version;
    memcpy(out->ver.root, root, AHL_SHA256_LEN);
    memcpy(out->ver.state, set->state, sizeof set->state);
    memcpy(out->ver.workflow_status, set->workflow_status, sizeof set->workflow_status);
    out->ver.created_at_ms = out->ver.updated_at_ms = set->updated_at_ms;
}

/* Writes a new version of set from the imported document doc (root already built in b), indexes
 * doc's frames and commits: the common end of creating a set and importing into one. */
/* Inside the commit's write transaction, which no collector's deletions overlap: when a collector
 * may have deleted objects since the importer read the fence, the importer checks its frames. */
static int fence_check(struct ahl_store_tx *tx, const struct ahl_meta_frame_fence *f,
                       struct ahl_err *err)
{
    uint64_t epoch;
    int64_t until_ms;
    if (!f)
        return 0;
    int rc = ahl_store_frame_fence_get(tx, &epoch, &until_ms);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "reading the frame fence");
    if (epoch == f->epoch && until_ms + AHL_META_FENCE_SKEW_MS < f->read_ms)
        return 0;
    return f->check(f->ctx, err);
}

static int commit_imported(struct ahl_meta *m, struct ahl_store_tx **tx, struct ahl__batch *b,
                           struct ahl_imageset_rec *set, uint64_t expected, const uint8_t *root,
                           enum ahl_workflow_status workflow, const json_t *doc,
                           const struct ahl_meta_frame_fence *fence, struct ahl_err *err)
{
    int rc = fence_check(*tx, fence, err);
    if (rc < 0)
        return rc;
    rc = ahl__version_commit(m, *tx, b, set, expected, root, false, workflow, err);
    if (rc < 0)
        return rc;
    if ((rc = ahl__frames_index_doc(*tx, set->id, doc)) < 0)
        return ahl_meta_store_fail(err, rc, "indexing frames");
    /* A new set is created; instances imported into an existing one update it
     * (docs/events.md#which-events). */
    if ((rc = ahl__events_imageset(
             *tx, AHL_EVENT_TYPE_COUNT,
             expected ? AHL_EVENT_IMAGE_SET_UPDATED : AHL_EVENT_IMAGE_SET_CREATED, set, err)) < 0)
        return rc;
    return ahl__commit_publish(tx, b, err);
}

int ahl_meta_imageset_create(struct ahl_meta *m, const char *datastore_id, const json_t *doc,
                             const struct ahl_meta_create_opts *opts, struct ahl_meta_info *out,
                             struct ahl_err *err)
{
    struct ahl__batch b;
    struct ahl_store_tx *tx = NULL;
    struct ahl_imageset_rec set;
    uint8_t root[AHL_SHA256_LEN];
    int rc;
    ahl_err_clear(err);
    ahl__batch_init(&b, m);
    memset(&set, 0, sizeof set);
    enum ahl_workflow_status wf = opts ? opts->workflow_status : AHL_WORKFLOW_CREATED;
    if ((rc = ahl__doc_store(&b, doc, root, err)) < 0)
        goto out;
    if (opts && opts->imageset_id) {
        if (ahl_str_copy(set.id, sizeof set.id, opts->imageset_id) < 0) {
            rc = ahl_fail(err, AHL_EINVAL, "image set id too long");
            goto out;
        }
    } else if ((rc = ahl_random_id(set.id)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "making an id");
        goto out;
    }
    if (ahl_str_copy(set.datastore_id, sizeof set.datastore_id, datastore_id) < 0) {
        rc = ahl_fail(err, AHL_ENOTFOUND, "data store not found");
        goto out;
    }
    set.is_primary = opts ? opts->is_primary : false;
    set.latest_version = 1;
    set.created_at_ms = set.updated_at_ms = ahl_now_ms();
    if ((rc = ahl_store_begin(m->store, true, &tx)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "starting a transaction");
        goto out;
    }
    if ((rc = datastore_active(tx, datastore_id, err)) < 0)
        goto out;
    if (set.is_primary && opts->sole_primary &&
        (rc = primary_absent(tx, datastore_id, doc, err)) < 0)
        goto out;
    if ((rc = commit_imported(m, &tx, &b, &set, 0, root, wf, doc, opts ? opts->fence : NULL,
                              err)) < 0)
        goto out;
    info_new(out, &set, root);
out:
    /* Failures below the engine (a key too long for a map node, memory) still get a message. */
    if (rc < 0 && err && !err->code)
        ahl_meta_store_fail(err, rc, "storing the document");
    ahl_store_rollback(tx);
    ahl__batch_release(&b);
    return rc;
}

/* Merges one series of an import document into the series map: new instances added, existing
 * ones replaced, the series' own attributes merged. */
static int import_series(struct ahl_meta *m, struct ahl_store_tx *tx, struct ahl__batch *b,
                         uint8_t *series_root, const char *uid, const json_t *src,
                         struct ahl_err *err)
{
    uint8_t val[2 * AHL_SHA256_LEN], inst_root[AHL_SHA256_LEN];
    json_t *own = NULL;
    int rc = ahl__map_get(m, tx, b, series_root, uid, strlen(uid), val, sizeof val);
    if (rc == 0) {
        if ((rc = ahl__json_load(m, tx, b, val, &own)) < 0)
            return ahl_meta_store_fail(err, rc, "reading a series");
        memcpy(inst_root, val + AHL_SHA256_LEN, AHL_SHA256_LEN);
    } else if (rc == AHL_ENOTFOUND) {
        if (!(own = json_object()))
            return AHL_ENOMEM;
        memset(inst_root, 0, sizeof inst_root);
    } else {
        return ahl_meta_store_fail(err, rc, "reading the series map");
    }
    const json_t *sd = json_object_get(src, "DICOM");
    const json_t *su = sd ? json_object_get(sd, "SeriesInstanceUID") : NULL;
    if (su && (!json_is_string(su) || strcmp(json_string_value(su), uid))) {
        rc = ahl_fail(err, AHL_EINVAL,
                      "Study.Series['%s'].DICOM.SeriesInstanceUID differs from its key", uid);
        goto out;
    }
    if ((rc = ahl__merge_own(own, src, "Instances")) < 0)
        goto out;
    const json_t *inst = json_object_get(src, "Instances");
    const char *k;
    json_t *v;
    if (inst && !json_is_object(inst)) {
        rc = ahl_fail(err, AHL_EINVAL, "Study.Series['%s'].Instances: expected an object", uid);
        goto out;
    }
    json_object_foreach((json_t *)inst, k, v)
    {
        uint8_t h[AHL_SHA256_LEN];
        const json_t *d = json_is_object(v) ? json_object_get(v, "DICOM") : NULL;
        const json_t *u = d ? json_object_get(d, "SOPInstanceUID") : NULL;
        if (!json_is_object(v) || (u && (!json_is_string(u) || strcmp(json_string_value(u), k)))) {
            rc = ahl_fail(err, AHL_EINVAL,
                          "Study.Series['%s'].Instances['%s']: expected an object whose "
                          "SOPInstanceUID is its key",
                          uid, k);
            goto out;
        }
        if ((rc = ahl__store_obj(b, v, NULL, h)) < 0 ||
            (rc = ahl__map_set(b, tx, inst_root, k, strlen(k), h, AHL_SHA256_LEN, inst_root)) < 0) {
            rc = ahl_meta_store_fail(err, rc, "writing an instance");
            goto out;
        }
    }
    if ((rc = ahl__store_obj(b, own, NULL, val)) < 0)
        goto out;
    memcpy(val + AHL_SHA256_LEN, inst_root, AHL_SHA256_LEN);
    if ((rc = ahl__map_set(b, tx, series_root, uid, strlen(uid), val, sizeof val, series_root)) < 0)
        rc = ahl_meta_store_fail(err, rc, "writing the series map");
out:
    json_decref(own);
    return rc;
}

int ahl_meta_imageset_put_instances(struct ahl_meta *m, const char *datastore_id,
                                    const char *imageset_id, const json_t *doc,
                                    uint64_t expected_latest, struct ahl_meta_info *out,
                                    struct ahl_err *err)
{
    return ahl_meta_imageset_put_fenced(m, datastore_id, imageset_id, doc, expected_latest, NULL,
                                        out, err);
}

int ahl_meta_imageset_put_fenced(struct ahl_meta *m, const char *datastore_id,
                                 const char *imageset_id, const json_t *doc,
                                 uint64_t expected_latest,
                                 const struct ahl_meta_frame_fence *fence,
                                 struct ahl_meta_info *out, struct ahl_err *err)
{
    struct ahl__batch b;
    struct ahl_store_tx *tx = NULL;
    struct ahl_imageset_rec set;
    struct ahl_version_rec cur;
    struct ahl__root r;
    json_t *patient = NULL, *study = NULL;
    uint8_t root[AHL_SHA256_LEN];
    int rc;
    ahl_err_clear(err);
    ahl__batch_init(&b, m);
    if (!json_is_object(doc)) {
        rc = ahl_fail(err, AHL_EINVAL, "document: expected a JSON object");
        goto out;
    }
    if ((rc = ahl_store_begin(m->store, true, &tx)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "starting a transaction");
        goto out;
    }
    /* A set deleted since the caller chose it is a conflict, not a missing set: the importer
     * looks again and starts a new set, as it would have had the delete come first. */
    if ((rc = ahl__set_find_writable(tx, datastore_id, imageset_id, &set, err)) < 0)
        goto out;
    if (expected_latest && expected_latest != set.latest_version) {
        rc = ahl_fail(err, AHL_ECONFLICT, "image set %s: version %llu is not the latest",
                      imageset_id, (unsigned long long)expected_latest);
        goto out;
    }
    if ((rc = ahl_store_version_get(tx, set.id, set.latest_version, &cur)) < 0 ||
        (rc = ahl__root_load(m, tx, NULL, cur.root, &r)) < 0 ||
        (rc = ahl__json_load(m, tx, NULL, r.patient, &patient)) < 0 ||
        (rc = ahl__json_load(m, tx, NULL, r.study, &study)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "reading the latest version");
        goto out;
    }
    const json_t *p = json_object_get(doc, "Patient");
    const json_t *s = json_object_get(doc, "Study");
    if ((p && !json_is_object(p)) || (s && !json_is_object(s))) {
        rc = ahl_fail(err, AHL_EINVAL, "document: Patient and Study must be objects");
        goto out;
    }
    if ((p && (rc = ahl__merge_own(patient, p, NULL)) < 0) ||
        (s && (rc = ahl__merge_own(study, s, "Series")) < 0))
        goto out;
    if ((rc = ahl__store_obj(&b, patient, NULL, r.patient)) < 0 ||
        (rc = ahl__store_obj(&b, study, NULL, r.study)) < 0)
        goto out;
    const json_t *series = s ? json_object_get(s, "Series") : NULL;
    const char *k;
    json_t *v;
    if (series && !json_is_object(series)) {
        rc = ahl_fail(err, AHL_EINVAL, "Study.Series: expected an object");
        goto out;
    }
    json_object_foreach((json_t *)series, k, v)
    {
        if (!json_is_object(v)) {
            rc = ahl_fail(err, AHL_EINVAL, "Study.Series['%s']: expected an object", k);
            goto out;
        }
        if ((rc = import_series(m, tx, &b, r.series, k, v, err)) < 0)
            goto out;
    }
    if ((rc = ahl__root_store(&b, &r, root)) < 0)
        goto out;
    if (expected_latest && !memcmp(root, cur.root, AHL_SHA256_LEN)) {
        /* Nothing changed and the caller asked for compare-and-set: no new version. */
        info_from(out, &set, &cur);
        goto out;
    }
    uint64_t expected = set.latest_version;
    set.latest_version++;
    set.updated_at_ms = ahl_now_ms();
    if ((rc = commit_imported(m, &tx, &b, &set, expected, root, AHL_WORKFLOW_IMPORTED, doc, fence,
                              err)) < 0)
        goto out;
    info_new(out, &set, root);
out:
    if (rc < 0 && err && !err->code)
        ahl_meta_store_fail(err, rc, "importing instances");
    json_decref(patient);
    json_decref(study);
    ahl_store_rollback(tx);
    ahl__batch_release(&b);
    return rc;
}

/* Opens a read transaction and finds the set and the version asked for. */
static int read_begin(struct ahl_meta *m, const char *ds, const char *id, uint64_t version,
                      struct ahl_store_tx **tx, struct ahl_imageset_rec *set,
                      struct ahl_version_rec *ver, struct ahl_err *err)
{
    int rc = ahl_store_begin(m->store, false, tx);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "starting a transaction");
    if ((rc = ahl__set_find(*tx, ds, id, set, err)) < 0)
        goto fail;
    uint64_t v = version ? version : set->latest_version;
    rc = ahl_store_version_get(*tx, id, v, ver);
    if (rc == AHL_ENOTFOUND) {
        rc = ahl_fail(err, rc, "image set %s has no version %llu", id, (unsigned long long)v);
        goto fail;
    }
    if (rc < 0) {
        rc = ahl_meta_store_fail(err, rc, "reading the version");
        goto fail;
    }
    return 0;
fail:
    ahl_store_rollback(*tx);
    *tx = NULL;
    return rc;
}

/* The one version record a deleted set still shows (docs/decisions.md#tombstones): its last
 * version, DELETED / DELETED since the deletion. It names no root: the data is not readable. */
static void tombstone_version(const struct ahl_imageset_rec *set, struct ahl_version_rec *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->imageset_id, set->id, sizeof out->imageset_id);
    out->version = set->latest_version;
    ahl_version_rec_set_state(out, AHL_IMAGESET_DELETED, AHL_WORKFLOW_DELETED);
    out->created_at_ms = set->created_at_ms;
    out->updated_at_ms = set->deleted_at_ms;
}

/* Reads the row of a set that may be a tombstone: 1 (and *set) when it is DELETED, 0 when it is
 * not (the caller reads it the ordinary way), or the failure. */
static int find_tombstone(struct ahl_meta *m, const char *ds, const char *id,
                          struct ahl_imageset_rec *set, struct ahl_err *err)
{
    struct ahl_store_tx *tx;
    int rc = ahl_store_begin(m->store, false, &tx);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "starting a transaction");
    rc = ahl_store_imageset_get(tx, ds, id, set);
    ahl_store_rollback(tx);
    if (rc == AHL_ENOTFOUND)
        return 0; /* the ordinary read reports it */
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "reading the image set");
    return ahl_imageset_state_parse(set->state) == AHL_IMAGESET_DELETED;
}

int ahl_meta_imageset_get(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                          uint64_t version, struct ahl_meta_info *out, struct ahl_err *err)
{
    struct ahl_store_tx *tx;
    int rc = find_tombstone(m, datastore_id, imageset_id, &out->set, err);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        if (version && version != out->set.latest_version)
            return ahl_fail(err, AHL_ENOTFOUND,
                            "image set %s was deleted; only its last version, %llu, is shown",
                            imageset_id, (unsigned long long)out->set.latest_version);
        tombstone_version(&out->set, &out->ver);
        return 0;
    }
    rc = read_begin(m, datastore_id, imageset_id, version, &tx, &out->set, &out->ver, err);
    if (rc == 0)
        ahl_store_rollback(tx);
    return rc;
}

int ahl_meta_versions_list(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                           uint64_t below, unsigned limit, ahl_store_version_cb cb, void *ctx,
                           struct ahl_err *err)
{
    struct ahl_store_tx *tx;
    struct ahl_imageset_rec set;
    int rc = find_tombstone(m, datastore_id, imageset_id, &set, err);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        struct ahl_version_rec v;
        tombstone_version(&set, &v);
        return below && below <= v.version ? 0 : cb(ctx, &v);
    }
    if ((rc = ahl_store_begin(m->store, false, &tx)) < 0)
        return ahl_meta_store_fail(err, rc, "starting a transaction");
    if ((rc = ahl__set_find(tx, datastore_id, imageset_id, &set, err)) == 0) {
        rc = ahl_store_version_list(tx, imageset_id, below, limit ? limit : 50, cb, ctx);
        if (rc < 0)
            rc = ahl_meta_store_fail(err, rc, "listing versions");
    }
    ahl_store_rollback(tx);
    return rc;
}

int ahl_meta_metadata_gzip(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                           uint64_t version, ahl_meta_write_cb cb, void *ctx, struct ahl_err *err)
{
    return ahl_meta_metadata_gzip_row(m, datastore_id, imageset_id, version, cb, ctx, NULL, err);
}

int ahl_meta_metadata_gzip_row(struct ahl_meta *m, const char *datastore_id,
                               const char *imageset_id, uint64_t version, ahl_meta_write_cb cb,
                               void *ctx, struct ahl_imageset_rec *row, struct ahl_err *err)
{
    struct ahl_store_tx *tx;
    struct ahl_imageset_rec set;
    struct ahl_version_rec ver;
    int rc = read_begin(m, datastore_id, imageset_id, version, &tx, &set, &ver, err);
    if (rc < 0)
        return rc;
    if (row)
        *row = set;
    rc = ahl__doc_gzip(m, tx, datastore_id, imageset_id, ver.root, cb, ctx);
    if (rc < 0)
        rc = ahl_meta_store_fail(err, rc, "reading metadata");
    ahl_store_rollback(tx);
    return rc;
}

int ahl_meta_document(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                      uint64_t version, json_t **out, struct ahl_err *err)
{
    return ahl_meta_document_part(m, datastore_id, imageset_id, version, NULL, NULL, out, err);
}

int ahl_meta_document_part(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                           uint64_t version, const char *series_uid, const char *sop_uid,
                           json_t **out, struct ahl_err *err)
{
    struct ahl_store_tx *tx;
    struct ahl_imageset_rec set;
    struct ahl_version_rec ver;
    int rc = read_begin(m, datastore_id, imageset_id, version, &tx, &set, &ver, err);
    if (rc < 0)
        return rc;
    rc = ahl__doc_load(m, tx, datastore_id, imageset_id, ver.root, series_uid, sop_uid, out);
    if (rc < 0)
        rc = ahl_meta_store_fail(err, rc, "reading metadata");
    ahl_store_rollback(tx);
    return rc;
}

int ahl_meta_metadata_json(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                           uint64_t version, struct ahl_buf *out, struct ahl_err *err)
{
    json_t *doc = NULL;
    int rc = ahl_meta_document(m, datastore_id, imageset_id, version, &doc, err);
    if (rc < 0)
        return rc;
    rc = ahl_json_write(doc, out);
    json_decref(doc);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "serialising metadata");
    return 0;
}

int ahl_meta_imageset_delete(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                             struct ahl_imageset_rec *out, bool *was_deleted, struct ahl_err *err)
{
    struct ahl_store_tx *tx = NULL;
    struct ahl_imageset_rec set;
    if (was_deleted)
        *was_deleted = false;
    int rc = ahl_store_begin(m->store, true, &tx);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "starting a transaction");
    rc = ahl_store_imageset_get(tx, datastore_id, imageset_id, &set);
    if (rc == 0 && ahl_imageset_state_parse(set.state) == AHL_IMAGESET_DELETED) {
        /* DeleteImageSet is idempotent: deleting a tombstone changes nothing. */
        if (was_deleted)
            *was_deleted = true;
        if (out)
            *out = set;
        goto out;
    }
    if ((rc = ahl__set_find(tx, datastore_id, imageset_id, &set, err)) < 0)
        goto out;
    /* The row becomes a tombstone: ids, states and times only (docs/decisions.md#tombstones). */
    set.updated_at_ms = set.deleted_at_ms = ahl_now_ms();
    set.message[0] = '\0';
    ahl_imageset_rec_set_state(&set, AHL_IMAGESET_DELETED, AHL_WORKFLOW_DELETED);
    if ((rc = ahl_store_imageset_put(tx, &set, false)) < 0 ||
        (rc = ahl_store_search_delete(tx, set.id)) < 0 ||
        (rc = ahl_store_frame_delete_set(tx, set.id)) < 0 ||
        (rc = ahl__qido_sync(m, tx, NULL, &set, NULL)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "deleting the image set");
        goto out;
    }
    if ((rc = ahl__events_imageset(tx, AHL_EVENT_IMAGE_SET_DELETING, AHL_EVENT_IMAGE_SET_DELETED,
                                   &set, err)) < 0)
        goto out;
    rc = ahl_store_commit(tx);
    tx = NULL;
    if (rc < 0) {
        rc = ahl_meta_store_fail(err, rc, "committing");
        goto out;
    }
    if (out)
        *out = set;
out:
    ahl_store_rollback(tx);
    return rc;
}

int ahl_meta_tombstones_expire(struct ahl_meta *m, int64_t now_ms, int64_t retention_ms,
                               struct ahl_meta_expire_stats *stats, struct ahl_err *err)
{
    enum { BATCH = 500 };
    struct ahl_meta_expire_stats total = {0};
    int rc = 0;
    for (;;) {
        struct ahl_store_tx *tx;
        uint64_t sets = 0, stores = 0;
        if ((rc = ahl_store_begin(m->store, true, &tx)) < 0) {
            rc = ahl_meta_store_fail(err, rc, "starting a transaction");
            break;
        }
        rc = ahl_store_tombstones_expire(tx, now_ms - retention_ms, BATCH, &sets, &stores);
        if (rc < 0) {
            ahl_store_rollback(tx);
            rc = ahl_meta_store_fail(err, rc, "removing expired tombstones");
            break;
        }
        if ((rc = ahl_store_commit(tx)) < 0) {
            rc = ahl_meta_store_fail(err, rc, "committing");
            break;
        }
        total.imagesets += sets;
        total.datastores += stores;
        if (sets < BATCH)
            break;
    }
    if (stats)
        *stats = total;
    return rc;
}
