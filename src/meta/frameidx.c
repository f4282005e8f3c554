/* The frame index kept beside each image set's versions: for every instance a version brings in,
 * the ids under its "ImageFrames" with its "StoredTransferSyntaxUID" become rows of the store's
 * frame index (ahl_store_frame_put), so GetImageFrame can tell whether a set lists a frame, and
 * how the frame is stored, with one row lookup instead of loading the document.
 *
 * Rows are added in the transaction of the version that brings the instances in (create, import,
 * copy) and removed only when the set is deleted: frames cannot be added by UpdateImageSetMetadata
 * (ImageFrames is never updatable), and a frame an older version lists stays readable, since every
 * version of the set stays readable. Cost: one row per frame of the instances written, never a
 * walk of the whole set.
 */
#include "meta/engine.h"

#include <string.h>

#include "base/banned.h"

int ahl__frames_index_instance(struct ahl_store_tx *tx, const char *imageset_id,
                               const json_t *instance)
{
    const json_t *frames = json_object_get(instance, "ImageFrames");
    const char *ts = json_string_value(json_object_get(instance, "StoredTransferSyntaxUID"));
    struct ahl_frame_rec rec;
    int rc;
    if (!json_is_array(frames) || !json_array_size(frames))
        return 0;
    memset(&rec, 0, sizeof rec);
    if ((rc = ahl_store_strset(rec.imageset_id, sizeof rec.imageset_id, imageset_id)) < 0)
        return rc;
    /* A syntax too long to be a UID cannot name a Content-Type: stored as absent (image/jph). */
    if (ts && ahl_store_strset(rec.transfer_syntax, sizeof rec.transfer_syntax, ts) < 0)
        rec.transfer_syntax[0] = '\0';
    for (size_t i = 0; i < json_array_size(frames); i++) {
        const char *id = json_string_value(json_object_get(json_array_get(frames, i), "ID"));
        /* Only ids GetImageFrame can be asked for (32 characters [0-9a-z]) are worth a row. */
        if (!id || strlen(id) != AHL_ID_LEN ||
            strspn(id, "0123456789abcdefghijklmnopqrstuvwxyz") != AHL_ID_LEN)
            continue;
        memcpy(rec.frame_id, id, AHL_ID_LEN + 1);
        if ((rc = ahl_store_frame_put(tx, &rec)) < 0)
            return rc;
    }
    return 0;
}

int ahl__frames_index_doc(struct ahl_store_tx *tx, const char *imageset_id, const json_t *doc)
{
    const json_t *series = json_object_get(json_object_get(doc, "Study"), "Series");
    const char *skey, *ikey;
    json_t *s, *inst;
    int rc;
    json_object_foreach((json_t *)series, skey, s)
    {
        json_object_foreach(json_object_get(s, "Instances"), ikey, inst)
        {
            if ((rc = ahl__frames_index_instance(tx, imageset_id, inst)) < 0)
                return rc;
        }
    }
    return 0;
}
