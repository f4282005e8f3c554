/* Documents: version roots, storing a normalized document as chunks, assembling a version's
 * document as jansson (for edits and the reference serialisation; the gzip stream of
 * GetImageSetMetadata is gzdoc.c's), the search-index row, and the version commit every writer
 * ends with. */
#include "meta/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/codec.h"
#include "json/json.h"
#include "base/banned.h"

/* ---- roots -------------------------------------------------------------------------------- */

int ahl__root_load(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                   const uint8_t *hash, struct ahl__root *out)
{
    struct ahl__chunk_ref r;
    int rc = ahl__chunk_load(m, tx, b, hash, &r);
    if (rc < 0)
        return rc == AHL_ENOTFOUND ? AHL_ECORRUPT : rc;
    const uint8_t *p = r.c.data;
    if (r.c.kind != AHL_CHUNK_ROOT || r.c.len != AHL__ROOT_LEN || p[0] != 'R' || p[1] != 1) {
        rc = AHL_ECORRUPT;
    } else {
        memcpy(out->patient, p + 4, AHL_SHA256_LEN);
        memcpy(out->study, p + 4 + AHL_SHA256_LEN, AHL_SHA256_LEN);
        memcpy(out->series, p + 4 + 2 * AHL_SHA256_LEN, AHL_SHA256_LEN);
    }
    ahl__chunk_release(m, &r);
    return rc;
}

int ahl__root_store(struct ahl__batch *b, const struct ahl__root *r, uint8_t hash[AHL_SHA256_LEN])
{
    uint8_t p[AHL__ROOT_LEN] = {'R', 1, 0, 0};
    memcpy(p + 4, r->patient, AHL_SHA256_LEN);
    memcpy(p + 4 + AHL_SHA256_LEN, r->study, AHL_SHA256_LEN);
    memcpy(p + 4 + 2 * AHL_SHA256_LEN, r->series, AHL_SHA256_LEN);
    return ahl__batch_add_raw(b, AHL_CHUNK_ROOT, p, sizeof p, hash);
}

json_t *ahl__own(const json_t *node, const char *child_key)
{
    json_t *own = json_object();
    const char *k;
    json_t *v;
    if (!own)
        return NULL;
    json_object_foreach((json_t *)node, k, v)
    {
        if (child_key && !strcmp(k, child_key))
            continue;
        if (json_object_set(own, k, v) < 0) {
            json_decref(own);
            return NULL;
        }
    }
    return own;
}

/* ---- storing a normalized document --------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of obj, sorted (UIDs are ASCII: strcmp order is byte order). */
static const char **sorted_keys(const json_t *obj, size_t *n)
{
    size_t k = json_object_size(obj), i = 0;
    const char **v = malloc((k ? k : 1) * sizeof *v);
    const char *key;
    json_t *val;
    if (!v)
        return NULL;
    json_object_foreach((json_t *)obj, key, val)
    {
        (void)val;
        v[i++] = key;
    }
    qsort(v, i, sizeof *v, cmp_str);
    *n = i;
    return v;
}

/* Checks that a node's UID attribute, when present, equals its key in the map. */
static int check_uid(const json_t *node, const char *attr, const char *key, const char *what,
                     struct ahl_err *err)
{
    const json_t *d = json_object_get(node, "DICOM");
    const json_t *u = d ? json_object_get(d, attr) : NULL;
    if (u && json_is_string(u) && strcmp(json_string_value(u), key) != 0)
        return ahl_fail(err, AHL_EINVAL,
                        "%s['%s'].DICOM.%s is '%s', not the key it is stored under", what, key,
                        attr, json_string_value(u));
    return 0;
}

int ahl__store_obj(struct ahl__batch *b, const json_t *node, const char *child,
                   uint8_t hash[AHL_SHA256_LEN])
{
    json_t *own = ahl__own(node, child);
    if (!own)
        return AHL_ENOMEM;
    int rc = ahl__batch_add_json(b, own, hash);
    json_decref(own);
    return rc;
}

int ahl__doc_store(struct ahl__batch *b, const json_t *doc, uint8_t root[AHL_SHA256_LEN],
                   struct ahl_err *err)
{
    struct ahl__root r;
    json_t *empty = json_object();
    const char **skeys = NULL, **ikeys = NULL;
    struct ahl__map_entry *se = NULL, *ie = NULL;
    uint8_t(*svals)[2 * AHL_SHA256_LEN] = NULL;
    uint8_t(*ivals)[AHL_SHA256_LEN] = NULL;
    size_t ns = 0, ni;
    int rc;
    memset(&r, 0, sizeof r);
    if (!empty)
        return AHL_ENOMEM;
    if (!json_is_object(doc)) {
        rc = ahl_fail(err, AHL_EINVAL, "document: expected a JSON object");
        goto out;
    }
    const json_t *patient = json_object_get(doc, "Patient");
    const json_t *study = json_object_get(doc, "Study");
    if ((patient && !json_is_object(patient)) || (study && !json_is_object(study))) {
        rc = ahl_fail(err, AHL_EINVAL, "document: Patient and Study must be objects");
        goto out;
    }
    if ((rc = ahl__store_obj(b, patient ? patient : empty, NULL, r.patient)) < 0 ||
        (rc = ahl__store_obj(b, study ? study : empty, "Series", r.study)) < 0)
        goto out;
    const json_t *series = study ? json_object_get(study, "Series") : NULL;
    if (series && !json_is_object(series)) {
        rc = ahl_fail(err, AHL_EINVAL, "Study.Series: expected an object");
        goto out;
    }
    if (series && json_object_size(series)) {
        if (!(skeys = sorted_keys(series, &ns)) || !(se = calloc(ns, sizeof *se)) ||
            !(svals = calloc(ns, sizeof *svals))) {
            rc = AHL_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < ns; i++) {
            const json_t *s = json_object_get(series, skeys[i]);
            if (!json_is_object(s)) {
                rc = ahl_fail(err, AHL_EINVAL, "Study.Series['%s']: expected an object", skeys[i]);
                goto out;
            }
            if ((rc = check_uid(s, "SeriesInstanceUID", skeys[i], "Study.Series", err)) < 0 ||
                (rc = ahl__store_obj(b, s, "Instances", svals[i])) < 0)
                goto out;
            const json_t *inst = json_object_get(s, "Instances");
            if (inst && !json_is_object(inst)) {
                rc = ahl_fail(err, AHL_EINVAL, "Study.Series['%s'].Instances: expected an object",
                              skeys[i]);
                goto out;
            }
            ni = 0;
            if (inst && json_object_size(inst)) {
                if (!(ikeys = sorted_keys(inst, &ni)) || !(ie = calloc(ni, sizeof *ie)) ||
                    !(ivals = calloc(ni, sizeof *ivals))) {
                    rc = AHL_ENOMEM;
                    goto out;
                }
                for (size_t j = 0; j < ni; j++) {
                    const json_t *o = json_object_get(inst, ikeys[j]);
                    if (!json_is_object(o)) {
                        rc = ahl_fail(err, AHL_EINVAL,
                                      "Study.Series['%s'].Instances['%s']: expected an object",
                                      skeys[i], ikeys[j]);
                        goto out;
                    }
                    if ((rc = check_uid(o, "SOPInstanceUID", ikeys[j], "Instances", err)) < 0 ||
                        (rc = ahl__store_obj(b, o, NULL, ivals[j])) < 0)
                        goto out;
                    ie[j] = (struct ahl__map_entry){ikeys[j], strlen(ikeys[j]), ivals[j]};
                }
            }
            rc = ahl__map_build(b, ie, ni, AHL_SHA256_LEN, svals[i] + AHL_SHA256_LEN);
            free(ikeys);
            free(ie);
            free(ivals);
            ikeys = NULL;
            ie = NULL;
            ivals = NULL;
            if (rc < 0)
                goto out;
            se[i] = (struct ahl__map_entry){skeys[i], strlen(skeys[i]), svals[i]};
        }
        if ((rc = ahl__map_build(b, se, ns, 2 * AHL_SHA256_LEN, r.series)) < 0)
            goto out;
    }
    rc = ahl__root_store(b, &r, root);
out:
    free(skeys);
    free(se);
    free(svals);
    free(ikeys);
    free(ie);
    free(ivals);
    json_decref(empty);
    return rc;
}

/* ---- loading a whole document ------------------------------------------------------------ */

struct load_ctx {
    struct ahl_meta *m;
    struct ahl_store_tx *tx;
    json_t *map; /* the Series or Instances object being filled */
};

static int load_instance(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct load_ctx *c = vctx;
    json_t *o = NULL;
    int rc = ahl__json_load(c->m, c->tx, NULL, value, &o);
    if (rc < 0)
        return rc;
    if (json_object_setn_new(c->map, key, keylen, o) < 0)
        return AHL_ENOMEM;
    return 0;
}

static int load_series(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct load_ctx *c = vctx;
    json_t *s = NULL, *inst = json_object();
    int rc;
    if (!inst)
        return AHL_ENOMEM;
    if ((rc = ahl__json_load(c->m, c->tx, NULL, value, &s)) < 0) {
        json_decref(inst);
        return rc;
    }
    struct load_ctx sub = {c->m, c->tx, inst};
    if ((rc = ahl__map_walk(c->m, c->tx, NULL, value + AHL_SHA256_LEN, load_instance, &sub)) < 0 ||
        json_object_set_new(s, "Instances", inst) < 0) {
        json_decref(s);
        return rc < 0 ? rc : AHL_ENOMEM;
    }
    if (json_object_setn_new(c->map, key, keylen, s) < 0)
        return AHL_ENOMEM;
    return 0;
}

/* The one series of a part load: its node with an Instances map of every instance, or of the one
 * named sop_uid (none when the series does not hold it). */
static int load_one_series(struct ahl_meta *m, struct ahl_store_tx *tx, const uint8_t *series_root,
                           const char *series_uid, const char *sop_uid, json_t *series_map)
{
    uint8_t v[2 * AHL_SHA256_LEN], inst_hash[AHL_SHA256_LEN];
    int rc = ahl__map_get(m, tx, NULL, series_root, series_uid, strlen(series_uid), v, sizeof v);
    if (rc == AHL_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (!sop_uid) {
        struct load_ctx c = {m, tx, series_map};
        return load_series(&c, series_uid, strlen(series_uid), v);
    }
    json_t *s = NULL, *inst = json_object(), *o = NULL;
    if (!inst)
        return AHL_ENOMEM;
    if ((rc = ahl__json_load(m, tx, NULL, v, &s)) < 0)
        goto out;
    rc = ahl__map_get(m, tx, NULL, v + AHL_SHA256_LEN, sop_uid, strlen(sop_uid), inst_hash,
                      sizeof inst_hash);
    if (rc == 0 && (rc = ahl__json_load(m, tx, NULL, inst_hash, &o)) == 0 &&
        json_object_set_new(inst, sop_uid, o) < 0)
        rc = AHL_ENOMEM;
    if (rc < 0 && rc != AHL_ENOTFOUND)
        goto out;
    if (json_object_set(s, "Instances", inst) < 0 || json_object_set(series_map, series_uid, s) < 0)
        rc = AHL_ENOMEM;
    else
        rc = 0;
out:
    json_decref(inst);
    json_decref(s);
    return rc;
}

int ahl__doc_load(struct ahl_meta *m, struct ahl_store_tx *tx, const char *datastore_id,
                  const char *imageset_id, const uint8_t *root, const char *series_uid,
                  const char *sop_uid, json_t **out)
{
    struct ahl__root r;
    json_t *doc = NULL, *patient = NULL, *study = NULL, *series = NULL;
    int rc;
    if ((rc = ahl__root_load(m, tx, NULL, root, &r)) < 0)
        return rc;
    if ((rc = ahl__json_load(m, tx, NULL, r.patient, &patient)) < 0 ||
        (rc = ahl__json_load(m, tx, NULL, r.study, &study)) < 0)
        goto out;
    if (!(series = json_object()) || !(doc = json_object())) {
        rc = AHL_ENOMEM;
        goto out;
    }
    struct load_ctx c = {m, tx, series};
    if (series_uid)
        rc = ahl__hash_is_zero(r.series)
                 ? 0
                 : load_one_series(m, tx, r.series, series_uid, sop_uid, series);
    else
        rc = ahl__map_walk(m, tx, NULL, r.series, load_series, &c);
    if (rc < 0)
        goto out;
    if (json_object_set_new(study, "Series", series) < 0 ||
        json_object_set_new(doc, "SchemaVersion", json_string("1.1")) < 0 ||
        json_object_set_new(doc, "DatastoreID", json_string(datastore_id)) < 0 ||
        json_object_set_new(doc, "ImageSetID", json_string(imageset_id)) < 0 ||
        json_object_set_new(doc, "Patient", patient) < 0 ||
        json_object_set_new(doc, "Study", study) < 0) {
        series = patient = study = NULL;
        rc = AHL_ENOMEM;
        goto out;
    }
    *out = doc;
    return 0;
out:
    json_decref(doc);
    json_decref(patient);
    json_decref(study);
    json_decref(series);
    return rc;
}

/* ---- search row ------------------------------------------------------------------------------ */

void ahl__str_field(const json_t *dicom, const char *key, char *dst, size_t cap)
{
    const json_t *v = dicom ? json_object_get(dicom, key) : NULL;
    dst[0] = '\0';
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if (n < cap) {
            memcpy(dst, json_string_value(v), n);
            dst[n] = '\0';
        }
    }
}

struct count_ctx {
    struct ahl_meta *m;
    struct ahl_store_tx *tx;
    const struct ahl__batch *b;
    uint64_t instances;
    uint8_t first[AHL_SHA256_LEN];
    bool have_first;
};

static int count_series(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct count_ctx *c = vctx;
    uint64_t n;
    (void)key;
    (void)keylen;
    if (!c->have_first) {
        memcpy(c->first, value, AHL_SHA256_LEN);
        c->have_first = true;
    }
    int rc = ahl__map_count(c->m, c->tx, c->b, value + AHL_SHA256_LEN, &n);
    c->instances += n;
    return rc;
}

void ahl__search_row_stamp(struct ahl_search_row *row, const struct ahl_imageset_rec *set)
{
    memcpy(row->imageset_id, set->id, sizeof row->imageset_id);
    memcpy(row->datastore_id, set->datastore_id, sizeof row->datastore_id);
    row->is_primary = set->is_primary;
    row->version = set->latest_version;
    row->created_at_ms = set->created_at_ms;
    row->updated_at_ms = set->updated_at_ms;
    row->last_accessed_at_ms = set->last_accessed_at_ms;
}

/* The search row of root. With old_root and old (the row of old_root), only the parts whose
 * chunks differ are read again: the Patient node, the Study node, the Series map (series fields
 * of the first series, the counts). An update of one Patient attribute so parses one node. */
static int search_row(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                      const uint8_t *root, const struct ahl_imageset_rec *set,
                      const uint8_t *old_root, const struct ahl_search_row *old,
                      struct ahl_search_row *row)
{
    struct ahl__root r, o;
    json_t *patient = NULL, *study = NULL, *series = NULL;
    bool same_patient = false, same_study = false, same_series = false;
    int rc;
    memset(row, 0, sizeof *row);
    if ((rc = ahl__root_load(m, tx, b, root, &r)) < 0)
        goto out;
    if (old_root) {
        if ((rc = ahl__root_load(m, tx, b, old_root, &o)) < 0)
            goto out;
        *row = *old;
        same_patient = !memcmp(o.patient, r.patient, AHL_SHA256_LEN);
        same_study = !memcmp(o.study, r.study, AHL_SHA256_LEN);
        same_series = !memcmp(o.series, r.series, AHL_SHA256_LEN);
    }
    if (!same_patient) {
        if ((rc = ahl__json_load(m, tx, b, r.patient, &patient)) < 0)
            goto out;
        const json_t *pd = json_object_get(patient, "DICOM");
        ahl__str_field(pd, "PatientID", row->patient_id, sizeof row->patient_id);
        ahl__str_field(pd, "PatientName", row->patient_name, sizeof row->patient_name);
        ahl__str_field(pd, "PatientBirthDate", row->patient_birth_date,
                       sizeof row->patient_birth_date);
        ahl__str_field(pd, "PatientSex", row->patient_sex, sizeof row->patient_sex);
    }
    if (!same_study) {
        if ((rc = ahl__json_load(m, tx, b, r.study, &study)) < 0)
            goto out;
        const json_t *sd = json_object_get(study, "DICOM");
        ahl__str_field(sd, "StudyInstanceUID", row->study_instance_uid,
                       sizeof row->study_instance_uid);
        ahl__str_field(sd, "StudyID", row->study_id, sizeof row->study_id);
        ahl__str_field(sd, "StudyDescription", row->study_description,
                       sizeof row->study_description);
        ahl__str_field(sd, "AccessionNumber", row->accession_number, sizeof row->accession_number);
        ahl__str_field(sd, "StudyDate", row->study_date, sizeof row->study_date);
        ahl__str_field(sd, "StudyTime", row->study_time, sizeof row->study_time);
    }
    if (!same_series) {
        uint64_t nseries = 0;
        struct count_ctx c = {.m = m, .tx = tx, .b = b};
        if ((rc = ahl__map_count(m, tx, b, r.series, &nseries)) < 0 ||
            (rc = ahl__map_walk(m, tx, b, r.series, count_series, &c)) < 0)
            goto out;
        if (c.have_first && (rc = ahl__json_load(m, tx, b, c.first, &series)) < 0)
            goto out;
        const json_t *ed = series ? json_object_get(series, "DICOM") : NULL;
        ahl__str_field(ed, "SeriesInstanceUID", row->series_instance_uid,
                       sizeof row->series_instance_uid);
        ahl__str_field(ed, "Modality", row->modality, sizeof row->modality);
        ahl__str_field(ed, "BodyPartExamined", row->body_part_examined,
                       sizeof row->body_part_examined);
        char num[32];
        ahl__str_field(ed, "SeriesNumber", num, sizeof num);
        row->has_series_number = false;
        row->series_number = 0;
        if (num[0]) {
            char *end;
            long v = strtol(num, &end, 10);
            while (*end == ' ')
                end++;
            if (!*end && end != num && v >= INT32_MIN && v <= INT32_MAX) {
                row->has_series_number = true;
                row->series_number = (int32_t)v;
            }
        }
        row->number_of_series = (uint32_t)nseries;
        row->number_of_instances = (uint32_t)c.instances;
    }
    ahl__search_row_stamp(row, set);
out:
    json_decref(patient);
    json_decref(study);
    json_decref(series);
    return rc;
}

int ahl__search_row(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                    const uint8_t *root, const struct ahl_imageset_rec *set,
                    struct ahl_search_row *row)
{
    return search_row(m, tx, b, root, set, NULL, NULL, row);
}

int ahl__search_row_from(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                         const uint8_t *old_root, const struct ahl_search_row *old,
                         const uint8_t *root, const struct ahl_imageset_rec *set,
                         struct ahl_search_row *row)
{
    return search_row(m, tx, b, root, set, old_root, old, row);
}

/* ---- shared helpers for writers ------------------------------------------------------------- */

int ahl_meta_store_fail(struct ahl_err *err, int rc, const char *what)
{
    switch (rc) {
    case AHL_ENOTFOUND:
        return ahl_fail(err, rc, "%s: not found", what);
    case AHL_ECONFLICT:
        return ahl_fail(err, rc, "%s: changed concurrently; retry", what);
    case AHL_ENOSPC:
        return ahl_fail(err, rc,
                        "The disk holding the data directory is full (while %s); nothing was "
                        "changed: free space on it, then retry",
                        what);
    case AHL_ENOMEM:
    case AHL_ECORRUPT:
    case AHL_EIO:
    case AHL_ETOOBIG:
    case AHL_EQUOTA:
    case AHL_EINTERNAL:
        return ahl_fail(err, rc, "%s: %s", what, ahl_strerror(rc));
    default:
        return ahl_fail(err, AHL_EINTERNAL, "%s: internal error (%s)", what, ahl_strerror(rc));
    }
}

int ahl__commit_publish(struct ahl_store_tx **tx, struct ahl__batch *b, struct ahl_err *err)
{
    int rc = ahl_store_commit(*tx);
    *tx = NULL;
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "committing");
    ahl__batch_publish(b);
    return 0;
}

int ahl__set_find(struct ahl_store_tx *tx, const char *datastore_id, const char *id,
                  struct ahl_imageset_rec *out, struct ahl_err *err)
{
    int rc = ahl_store_imageset_get(tx, datastore_id, id, out);
    if (rc == AHL_ENOTFOUND)
        return ahl_fail(err, AHL_ENOTFOUND, "image set %s not found in data store %s", id,
                        datastore_id);
    if (rc == 0 && ahl_imageset_state_parse(out->state) == AHL_IMAGESET_DELETED)
        return ahl_fail(err, AHL_ENOTFOUND, "image set %s of data store %s was deleted", id,
                        datastore_id);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "reading the image set");
    return 0;
}

int ahl__set_find_writable(struct ahl_store_tx *tx, const char *datastore_id, const char *id,
                           struct ahl_imageset_rec *out, struct ahl_err *err)
{
    int rc = ahl_store_imageset_get(tx, datastore_id, id, out);
    if (rc == 0 && ahl_imageset_state_parse(out->state) == AHL_IMAGESET_DELETED)
        return ahl_fail(err, AHL_ECONFLICT, "image set %s is DELETED: it can no longer be written",
                        id);
    return ahl__set_find(tx, datastore_id, id, out, err);
}

int ahl__version_commit(struct ahl_meta *m, struct ahl_store_tx *tx, struct ahl__batch *b,
                        struct ahl_imageset_rec *set, uint64_t expected, const uint8_t *root,
                        bool forced, enum ahl_workflow_status workflow, struct ahl_err *err)
{
    return ahl__version_commit_row(m, tx, b, set, expected, root, forced, workflow, NULL, err);
}

int ahl__version_commit_row(struct ahl_meta *m, struct ahl_store_tx *tx, struct ahl__batch *b,
                            struct ahl_imageset_rec *set, uint64_t expected, const uint8_t *root,
                            bool forced, enum ahl_workflow_status workflow,
                            const struct ahl_search_row *pre, struct ahl_err *err)
{
    struct ahl_version_rec v;
    struct ahl_search_row row;
    int rc;
    memset(&v, 0, sizeof v);
    memcpy(v.imageset_id, set->id, sizeof v.imageset_id);
    v.version = set->latest_version;
    memcpy(v.root, root, AHL_SHA256_LEN);
    ahl_version_rec_set_state(&v, AHL_IMAGESET_ACTIVE, workflow);
    v.forced = forced;
    v.created_at_ms = set->updated_at_ms;
    v.updated_at_ms = set->updated_at_ms;
    ahl_imageset_rec_set_state(set, AHL_IMAGESET_ACTIVE, workflow);
    set->message[0] = '\0';
    /* A new version is an access (docs/decisions.md#storage-tier-and-last-access), recorded
     * here in the transaction that writes the set's row anyway. */
    set->last_accessed_at_ms = set->updated_at_ms;
    if ((rc = ahl__batch_write_reachable(b, tx, root)) < 0)
        return ahl_meta_store_fail(err, rc, "writing chunks");
    if ((rc = ahl_store_version_put(tx, &v)) < 0) {
        if (rc == AHL_ECONFLICT)
            return ahl_fail(err, rc, "image set %s: version %llu exists", set->id,
                            (unsigned long long)v.version);
        return ahl_meta_store_fail(err, rc, "writing the version");
    }
    rc = expected ? ahl_store_imageset_advance(tx, set, expected)
                  : ahl_store_imageset_put(tx, set, true);
    if (rc == AHL_ECONFLICT)
        return ahl_fail(err, rc, "image set %s: latestVersionId %llu is not the latest version",
                        set->id, (unsigned long long)expected);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "writing the image set");
    if (pre) {
        row = *pre;
        ahl__search_row_stamp(&row, set);
    } else if ((rc = ahl__search_row(m, tx, b, root, set, &row)) < 0) {
        return ahl_meta_store_fail(err, rc, "writing the search row");
    }
    if ((rc = ahl_store_search_put(tx, &row)) < 0)
        return ahl_meta_store_fail(err, rc, "writing the search row");
    if ((rc = ahl__qido_sync(m, tx, b, set, root)) < 0)
        return ahl_meta_store_fail(err, rc, "writing the QIDO-RS index");
    return 0;
}
