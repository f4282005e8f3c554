/* The Original Attributes Sequence of an instance (export.h): the set's versions are compared two
 * at a time, oldest first, each instance's attributes merged over its four levels (the lowest
 * level wins, as in the file), and every version that changed some gets one item with the values
 * they had before it. Two documents are held at a time, whatever the number of versions. */
#include "export/export.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dicom/docvr.h"
#include "base/banned.h"

/* The attributes of one instance, merged: {key: value}, and the VRs of hex keys in *vrs. */
static int merged(const json_t *doc, const json_t *series, const json_t *inst, json_t **out,
                  json_t **vrs)
{
    const json_t *nodes[4] = {json_object_get(doc, "Patient"), json_object_get(doc, "Study"),
                              series, inst};
    *out = json_object();
    *vrs = json_object();
    if (!*out || !*vrs)
        return AHL_ENOMEM;
    for (int i = 0; i < 4; i++) {
        const json_t *node_vrs = json_object_get(nodes[i], "DICOMVRs");
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(nodes[i], "DICOM"), key, v)
        {
            uint32_t tag;
            if (!strcmp(key, "DICOMVRs") || !strcmp(key, "OriginalAttributesSequence"))
                continue;
            if (json_object_set(*out, key, v) < 0)
                return AHL_ENOMEM;
            json_t *vr = json_object_get(node_vrs, key);
            if (ahl_dicom_hex_key(key, &tag) && json_is_string(vr) &&
                json_object_set(*vrs, key, vr) < 0)
                return AHL_ENOMEM;
        }
    }
    return 0;
}

/* The DICOM DT of a time in milliseconds since the epoch, in UTC. */
static void dicom_datetime(int64_t ms, char out[64])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 64, "%04d%02d%02d%02d%02d%02d.%06d+0000", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000 + 1000) % 1000 * 1000);
}

/* The item for one instance between two versions, or NULL (rc 0) when nothing changed. */
static json_t *compare(const json_t *old_doc, const json_t *old_series, const json_t *old_inst,
                       const json_t *doc, const json_t *series, const json_t *inst,
                       const char *when, int *rc)
{
    json_t *a = NULL, *avrs = NULL, *b = NULL, *bvrs = NULL, *mod = NULL, *modvrs = NULL;
    json_t *item = NULL;
    const char *key;
    json_t *v;
    *rc = AHL_ENOMEM;
    if (merged(old_doc, old_series, old_inst, &a, &avrs) < 0 ||
        merged(doc, series, inst, &b, &bvrs) < 0 || !(mod = json_object()) ||
        !(modvrs = json_object()))
        goto out;
    json_object_foreach(a, key, v)
    {
        if (json_equal(v, json_object_get(b, key)))
            continue;
        if (json_object_set(mod, key, v) < 0 ||
            (json_object_get(avrs, key) &&
             json_object_set(modvrs, key, json_object_get(avrs, key)) < 0))
            goto out;
    }
    json_object_foreach(b, key, v)
    {
        if (json_object_get(a, key))
            continue;
        /* Added by the version: recorded empty (it had no value before). */
        if (json_object_set_new(mod, key, json_null()) < 0 ||
            (json_object_get(bvrs, key) &&
             json_object_set(modvrs, key, json_object_get(bvrs, key)) < 0))
            goto out;
    }
    *rc = 0;
    if (json_object_size(mod) == 0)
        goto out;
    if (json_object_size(modvrs) && json_object_set(mod, "DICOMVRs", modvrs) < 0) {
        *rc = AHL_ENOMEM;
        goto out;
    }
    item = json_pack("{s:[O],s:s,s:s,s:s,s:n}", "ModifiedAttributesSequence", mod,
                     "AttributeModificationDateTime", when, "ModifyingSystem", "ahilite",
                     "ReasonForTheAttributeModification", "CORRECT", "SourceOfPreviousValues");
    if (!item)
        *rc = AHL_ENOMEM;
out:
    json_decref(a);
    json_decref(avrs);
    json_decref(b);
    json_decref(bvrs);
    json_decref(mod);
    json_decref(modvrs);
    return item;
}

/* Adds to out the items version `doc` (made at `when`) gives the instances of prev it changed. */
static int compare_versions(const json_t *prev, const json_t *doc, const char *when,
                            const char *only, json_t *out)
{
    const char *suid, *sop;
    json_t *series, *inst;
    json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), suid, series)
    {
        json_t *old_series =
            json_object_get(json_object_get(json_object_get(prev, "Study"), "Series"), suid);
        json_object_foreach(json_object_get(series, "Instances"), sop, inst)
        {
            const json_t *old_inst = json_object_get(json_object_get(old_series, "Instances"), sop);
            int rc;
            if ((only && strcmp(only, sop) != 0) || !old_inst)
                continue;
            json_t *item = compare(prev, old_series, old_inst, doc, series, inst, when, &rc);
            if (rc < 0)
                return rc;
            if (!item)
                continue;
            json_t *list = json_object_get(out, sop);
            if (!list && (json_object_set_new(out, sop, list = json_array()) < 0 || !list)) {
                json_decref(item);
                return AHL_ENOMEM;
            }
            if (json_array_append_new(list, item) < 0)
                return AHL_ENOMEM;
        }
    }
    return 0;
}

int ahl_export_history(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                       uint64_t version, const char *series, const char *sop, json_t **out,
                       struct ahl_err *err)
{
    struct ahl_meta_info info;
    json_t *prev = NULL, *doc = NULL;
    int rc = ahl_meta_imageset_get(m, datastore_id, imageset_id, version, &info, err);
    if (rc < 0)
        return rc;
    if (!(*out = json_object()))
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    uint64_t last = info.ver.version;
    if (last < 2)
        return 0; /* the first version changed nothing */
    uint64_t first = last > AHL_EXPORT_MAX_HISTORY ? last - AHL_EXPORT_MAX_HISTORY + 1 : 1;
    for (uint64_t v = first; v <= last; v++) {
        char when[64];
        if ((rc = ahl_meta_imageset_get(m, datastore_id, imageset_id, v, &info, err)) < 0 ||
            (rc = ahl_meta_document_part(m, datastore_id, imageset_id, v, series,
                                         series ? sop : NULL, &doc, err)) < 0)
            break;
        dicom_datetime(info.ver.created_at_ms, when);
        if (prev && (rc = compare_versions(prev, doc, when, sop, *out)) < 0) {
            rc = ahl_fail(err, rc, "out of memory");
            break;
        }
        json_decref(prev);
        prev = doc;
        doc = NULL;
    }
    json_decref(prev);
    json_decref(doc);
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}
