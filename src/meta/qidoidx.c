/* The QIDO-RS index (store.h, docs/dicomweb.md#search-qido-rs): keeping the set, series and
 * instance rows of every primary image set at its latest version, in the transaction that commits
 * the version, and indexing the sets stored before the index existed.
 *
 * The set row remembers the root its rows describe, so a new version is compared with that root
 * chunk by chunk: the Patient and Study nodes give the set row, a series whose map value (its
 * node's hash and its Instances map root) is unchanged is skipped, and within a changed
 * Instances map only the instances whose hashes changed are read. An edit of PatientName reads
 * one node and writes the set row, the study row and the set's series timestamps, and no
 * instance row; a new version of a 10,000-instance set that changes one instance writes one
 * instance row.
 */
#include <limits.h>
#include <string.h>

#include "dicom/hidoc.h"
#include "meta/engine_internal.h"
#include "meta/states.h"
#include "base/banned.h"

struct sync {
    struct ahl_meta *m;
    struct ahl_store_tx *tx;
    const struct ahl__batch *b;
    const struct ahl_qido_set *set;
    bool have_old;
    bool all_series;                    /* rewrite every series row (the study UID changed) */
    uint8_t old_series[AHL_SHA256_LEN]; /* the old series map root (zero: none) */
    const uint8_t *other_map;           /* the map the walk compares against */
    const char *series_uid;             /* the series whose instances are walked */
    bool series_written;                /* a series row was put or deleted */
};

static void set_attrs(struct ahl_qido_set *r, const json_t *patient, const json_t *study)
{
    const json_t *pd = json_object_get(patient, "DICOM"), *sd = json_object_get(study, "DICOM");
    ahl__str_field(pd, "PatientName", r->patient_name, sizeof r->patient_name);
    ahl__str_field(pd, "PatientID", r->patient_id, sizeof r->patient_id);
    ahl__str_field(pd, "PatientBirthDate", r->patient_birth_date, sizeof r->patient_birth_date);
    ahl__str_field(pd, "PatientBirthTime", r->patient_birth_time, sizeof r->patient_birth_time);
    ahl__str_field(pd, "PatientSex", r->patient_sex, sizeof r->patient_sex);
    ahl__str_field(sd, "StudyInstanceUID", r->study_uid, sizeof r->study_uid);
    ahl__str_field(sd, "StudyDate", r->study_date, sizeof r->study_date);
    ahl__str_field(sd, "StudyTime", r->study_time, sizeof r->study_time);
    ahl__str_field(sd, "AccessionNumber", r->accession_number, sizeof r->accession_number);
    ahl__str_field(sd, "ReferringPhysicianName", r->referring_physician_name,
                   sizeof r->referring_physician_name);
    ahl__str_field(sd, "StudyDescription", r->study_description, sizeof r->study_description);
    ahl__str_field(sd, "StudyID", r->study_id, sizeof r->study_id);
}

/* An integer attribute within [lo, hi]: true with *out, false when absent or out of range. */
static bool int_attr(const json_t *dicom, const char *kw, long lo, long hi, long *out)
{
    long v = ahl_hidoc_int(dicom, kw, LONG_MIN);
    if (v == LONG_MIN || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int instance_row(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct sync *c = vctx;
    struct ahl_qido_instance r;
    json_t *inst = NULL;
    uint8_t h[AHL_SHA256_LEN];
    long v;
    int rc;
    if (c->other_map && (rc = ahl__map_get(c->m, c->tx, c->b, c->other_map, key, keylen, h,
                                           sizeof h)) != AHL_ENOTFOUND) {
        if (rc < 0)
            return rc;
        if (!memcmp(h, value, AHL_SHA256_LEN))
            return 0; /* the same instance node: its row stands */
    }
    if (keylen >= sizeof r.sop_uid)
        return 0; /* not a UID: the document check reports it; nothing to search it by */
    memset(&r, 0, sizeof r);
    memcpy(r.imageset_id, c->set->imageset_id, sizeof r.imageset_id);
    memcpy(r.series_uid, c->series_uid, strlen(c->series_uid) + 1);
    memcpy(r.sop_uid, key, keylen);
    if ((rc = ahl__json_load(c->m, c->tx, c->b, value, &inst)) < 0)
        return rc;
    const json_t *d = json_object_get(inst, "DICOM");
    ahl__str_field(d, "SOPClassUID", r.sop_class_uid, sizeof r.sop_class_uid);
    if ((r.has_instance_number = int_attr(d, "InstanceNumber", INT32_MIN, INT32_MAX, &v)))
        r.instance_number = (int32_t)v;
    if (int_attr(d, "Rows", 0, UINT16_MAX, &v))
        r.rows = (uint32_t)v;
    if (int_attr(d, "Columns", 0, UINT16_MAX, &v))
        r.columns = (uint32_t)v;
    if (int_attr(d, "NumberOfFrames", 0, INT32_MAX, &v))
        r.number_of_frames = (uint32_t)v;
    else
        r.number_of_frames = (uint32_t)json_array_size(json_object_get(inst, "ImageFrames"));
    if ((r.has_warning_reason = int_attr(d, "WarningReason", 0, UINT16_MAX, &v)))
        r.warning_reason = (uint32_t)v;
    json_decref(inst);
    return ahl_store_qido_instance_put(c->tx, &r);
}

/* An instance of the old Instances map that the new one (c->other_map) lacks: its row goes. */
static int instance_gone(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct sync *c = vctx;
    uint8_t h[AHL_SHA256_LEN];
    char sop[AHL_QIDO_UID_LEN];
    (void)value;
    int rc = ahl__map_get(c->m, c->tx, c->b, c->other_map, key, keylen, h, sizeof h);
    if (rc != AHL_ENOTFOUND || keylen >= sizeof sop)
        return rc < 0 && rc != AHL_ENOTFOUND ? rc : 0;
    memcpy(sop, key, keylen);
    sop[keylen] = '\0';
    return ahl_store_qido_instance_delete(c->tx, c->set->imageset_id, c->series_uid, sop);
}

static int series_row(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct sync *c = vctx;
    struct ahl_qido_series r;
    uint8_t old[2 * AHL_SHA256_LEN];
    bool have_old = false;
    json_t *series = NULL;
    uint64_t n = 0;
    long v;
    int rc;
    if (keylen >= sizeof r.series_uid)
        return 0;
    if (c->have_old && !ahl__hash_is_zero(c->old_series)) {
        rc = ahl__map_get(c->m, c->tx, c->b, c->old_series, key, keylen, old, sizeof old);
        if (rc < 0 && rc != AHL_ENOTFOUND)
            return rc;
        have_old = rc == 0;
    }
    if (have_old && !c->all_series && !memcmp(old, value, sizeof old))
        return 0;
    memset(&r, 0, sizeof r);
    memcpy(r.imageset_id, c->set->imageset_id, sizeof r.imageset_id);
    memcpy(r.datastore_id, c->set->datastore_id, sizeof r.datastore_id);
    memcpy(r.study_uid, c->set->study_uid, sizeof r.study_uid);
    memcpy(r.series_uid, key, keylen);
    r.updated_at_ms = c->set->updated_at_ms;
    if ((rc = ahl__json_load(c->m, c->tx, c->b, value, &series)) < 0 ||
        (rc = ahl__map_count(c->m, c->tx, c->b, value + AHL_SHA256_LEN, &n)) < 0)
        goto out;
    const json_t *d = json_object_get(series, "DICOM");
    ahl__str_field(d, "Modality", r.modality, sizeof r.modality);
    ahl__str_field(d, "SeriesDescription", r.series_description, sizeof r.series_description);
    ahl__str_field(d, "SeriesDate", r.series_date, sizeof r.series_date);
    ahl__str_field(d, "SeriesTime", r.series_time, sizeof r.series_time);
    ahl__str_field(d, "BodyPartExamined", r.body_part_examined, sizeof r.body_part_examined);
    if ((r.has_series_number = int_attr(d, "SeriesNumber", INT32_MIN, INT32_MAX, &v)))
        r.series_number = (int32_t)v;
    r.number_of_instances = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    c->series_written = true;
    if ((rc = ahl_store_qido_series_put(c->tx, &r)) < 0)
        goto out;
    /* The instances: all of them for a new series, the changed ones for a changed map. */
    const uint8_t *old_inst = have_old ? old + AHL_SHA256_LEN : NULL;
    if (old_inst && !memcmp(old_inst, value + AHL_SHA256_LEN, AHL_SHA256_LEN))
        goto out;
    struct sync ic = *c;
    ic.series_uid = r.series_uid;
    ic.other_map = old_inst && !ahl__hash_is_zero(old_inst) ? old_inst : NULL;
    if ((rc = ahl__map_walk(c->m, c->tx, c->b, value + AHL_SHA256_LEN, instance_row, &ic)) < 0)
        goto out;
    if (ic.other_map) {
        ic.other_map = value + AHL_SHA256_LEN;
        rc = ahl__map_walk(c->m, c->tx, c->b, old_inst, instance_gone, &ic);
    }
out:
    json_decref(series);
    return rc;
}

/* A series of the old map that the new one (c->other_map) lacks: its rows go. */
static int series_gone(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct sync *c = vctx;
    uint8_t v[2 * AHL_SHA256_LEN];
    char uid[AHL_QIDO_UID_LEN];
    (void)value;
    int rc = ahl__hash_is_zero(c->other_map)
                 ? AHL_ENOTFOUND
                 : ahl__map_get(c->m, c->tx, c->b, c->other_map, key, keylen, v, sizeof v);
    if (rc != AHL_ENOTFOUND || keylen >= sizeof uid)
        return rc < 0 && rc != AHL_ENOTFOUND ? rc : 0;
    memcpy(uid, key, keylen);
    uid[keylen] = '\0';
    c->series_written = true;
    return ahl_store_qido_series_delete(c->tx, c->set->imageset_id, uid);
}

/* Rebuilds the study rows the set was and is in; when it stays in one study and none of its
 * series rows changed (a Patient or Study edit), the study's aggregates (modalities, counts)
 * cannot have changed, and only its attributes and time are copied. */
static int refresh(struct ahl_store_tx *tx, const struct ahl_qido_set *old,
                   const struct ahl_qido_set *now, bool series_written)
{
    int rc = 0;
    bool moved = old && (!now || strcmp(old->study_uid, now->study_uid) != 0 ||
                         strcmp(old->datastore_id, now->datastore_id) != 0);
    if (moved)
        rc = ahl_store_qido_study_refresh(tx, old->datastore_id, old->study_uid, false);
    if (rc == 0 && now)
        rc = ahl_store_qido_study_refresh(tx, now->datastore_id, now->study_uid,
                                          old && !moved && !series_written);
    return rc;
}

int ahl__qido_sync(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                   const struct ahl_imageset_rec *set, const uint8_t *root)
{
    struct ahl_qido_set old, now;
    struct ahl__root r, o;
    json_t *patient = NULL, *study = NULL;
    int rc = ahl_store_qido_set_get(tx, set->id, &old);
    if (rc < 0 && rc != AHL_ENOTFOUND)
        return rc;
    bool have_old = rc == 0;
    if (!set->is_primary || !root || ahl_imageset_state_parse(set->state) == AHL_IMAGESET_DELETED) {
        if (!have_old)
            return 0;
        if ((rc = ahl_store_qido_set_delete(tx, set->id)) < 0)
            return rc;
        return refresh(tx, &old, NULL, true);
    }
    if ((rc = ahl__root_load(m, tx, b, root, &r)) < 0)
        return rc;
    /* An old root that cannot be read (damage: the check reports it) is rebuilt from nothing. */
    if (have_old && ahl__root_load(m, tx, b, old.root, &o) < 0) {
        if ((rc = ahl_store_qido_set_delete(tx, set->id)) < 0)
            return rc;
        have_old = false;
    }
    memset(&now, 0, sizeof now);
    if (have_old && !memcmp(o.patient, r.patient, AHL_SHA256_LEN) &&
        !memcmp(o.study, r.study, AHL_SHA256_LEN)) {
        now = old;
    } else {
        if ((rc = ahl__json_load(m, tx, b, r.patient, &patient)) < 0 ||
            (rc = ahl__json_load(m, tx, b, r.study, &study)) < 0)
            goto out;
        set_attrs(&now, patient, study);
    }
    memcpy(now.imageset_id, set->id, sizeof now.imageset_id);
    memcpy(now.datastore_id, set->datastore_id, sizeof now.datastore_id);
    memcpy(now.root, root, AHL_SHA256_LEN);
    now.updated_at_ms = set->updated_at_ms;
    if ((rc = ahl_store_qido_set_put(tx, &now)) < 0)
        goto out;
    struct sync c = {.m = m, .tx = tx, .b = b, .set = &now, .have_old = have_old};
    if (have_old) {
        memcpy(c.old_series, o.series, AHL_SHA256_LEN);
        c.all_series = strcmp(old.study_uid, now.study_uid) != 0;
    }
    if (!ahl__hash_is_zero(r.series) &&
        (rc = ahl__map_walk(m, tx, b, r.series, series_row, &c)) < 0)
        goto out;
    if (have_old && !ahl__hash_is_zero(o.series) && memcmp(o.series, r.series, AHL_SHA256_LEN)) {
        c.other_map = r.series;
        if ((rc = ahl__map_walk(m, tx, b, o.series, series_gone, &c)) < 0)
            goto out;
    }
    if ((rc = ahl_store_qido_series_touch(tx, set->id, set->updated_at_ms)) < 0)
        goto out;
    rc = refresh(tx, have_old ? &old : NULL, &now, c.series_written);
out:
    json_decref(patient);
    json_decref(study);
    return rc;
}

/* ---- indexing sets written before the index existed ---- */

static int backfill_set(struct ahl_meta *m, struct ahl_store_tx *tx,
                        const struct ahl_imageset_rec *set, const uint8_t *root)
{
    return ahl__qido_sync(m, tx, NULL, set, root);
}

int ahl__qido_backfill(struct ahl_meta *m)
{
    static const struct ahl__backfill bf = {"QIDO index", ahl_store_qido_backfill_next,
                                            ahl_store_qido_backfill_done, backfill_set};
    return ahl__backfill(m, &bf);
}

/* ---- indexing a set copied from another store ---- */

int ahl_meta_qido_index(struct ahl_meta *m, struct ahl_store_tx *tx,
                        const struct ahl_imageset_rec *set)
{
    struct ahl_version_rec ver;
    int rc = 0;
    if (set->latest_version)
        rc = ahl_store_version_get(tx, set->id, set->latest_version, &ver);
    if (rc < 0 && rc != AHL_ENOTFOUND)
        return rc;
    return ahl__qido_sync(m, tx, NULL, set, set->latest_version && rc == 0 ? ver.root : NULL);
}
