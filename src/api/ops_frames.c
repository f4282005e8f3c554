/* GetImageFrame: the stored bytes of one frame, with the Content-Type of its stored transfer
 * syntax, streamed from the frame store (DATA_DIR/frames) by file descriptor.
 *
 * A frame is served only if the image set's latest version lists its id under some instance's
 * ImageFrames, as AWS does; an id that the set does not reference is a ResourceNotFoundException
 * even when another set holds those bytes (frame ids are content addresses and may be shared).
 * Finding the frame walks the set's document; a frame-id index in the store would make this
 * independent of the set size.
 */
#include "api/internal.h"

#include <string.h>

#include "base/banned.h"

/* Finds frame_id under Study.Series.*.Instances.*.ImageFrames[].ID; returns the instance or NULL.
 */
static const json_t *find_frame(const json_t *doc, const char *frame_id)
{
    const json_t *series = json_object_get(json_object_get(doc, "Study"), "Series");
    const char *skey, *ikey;
    const json_t *s, *inst;
    json_object_foreach((json_t *)series, skey, s)
    {
        json_object_foreach(json_object_get(s, "Instances"), ikey, inst)
        {
            const json_t *frames = json_object_get(inst, "ImageFrames");
            for (size_t i = 0; i < json_array_size(frames); i++) {
                const char *id =
                    json_string_value(json_object_get(json_array_get(frames, i), "ID"));
                if (id && !strcmp(id, frame_id))
                    return inst;
            }
        }
    }
    return NULL;
}

int ahl__op_GetImageFrame(struct ahl_api_service *svc, const json_t *in, struct ahl_api_resp *resp,
                          struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId"), *id = ahl_api_str(in, "imageSetId");
    const char *frame_id =
        ahl_api_str(json_object_get(in, "imageFrameInformation"), "imageFrameId");
    json_t *doc = NULL;
    int rc;

    if ((rc = ahl_meta_document(svc->meta, ds, id, 0, &doc, err)) < 0)
        return rc;
    const json_t *inst = find_frame(doc, frame_id);
    if (!inst) {
        rc = ahl_fail(err, AHL_ENOTFOUND, AHL_AWS_NOT_FOUND,
                      "Image frame %s does not exist in image set %s", frame_id, id);
        goto out;
    }
    const char *content_type =
        ahl_frame_content_type(json_string_value(json_object_get(inst, "StoredTransferSyntaxUID")));
    if (!svc->frames_ready) {
        rc = ahl_fail(err, AHL_ENOTFOUND, AHL_AWS_NOT_FOUND,
                      "Image frame %s: this server has no frame store", frame_id);
        goto out;
    }
    rc = ahl_framestore_open_frame(&svc->frames, frame_id, &resp->fd, &resp->fd_size, err);
    if (rc == AHL_ENOTFOUND) {
        rc = ahl_fail(err, rc, AHL_AWS_NOT_FOUND,
                      "Image frame %s is listed in image set %s but its pixel data is missing",
                      frame_id, id);
        goto out;
    }
    if (rc < 0)
        goto out;
    resp->content_type = content_type;
out:
    json_decref(doc);
    return rc;
}
