/* GetImageFrame: the stored bytes of one frame, with the Content-Type of its stored transfer
 * syntax, streamed from the frame store (DATA_DIR/frames) by file descriptor.
 *
 * A frame is served only if the image set's latest version lists its id under some instance's
 * ImageFrames, as AWS does; an id that the set does not reference is a ResourceNotFoundException
 * even when another set holds those bytes (frame ids are content addresses and may be shared).
 * Which frames a version lists is read from its document once and kept (frame_index.c), so a
 * request costs one image-set row read and a binary search, whatever the set's size.
 */
#include "api/internal.h"

#include <string.h>

#include "base/banned.h"

int ahl__op_GetImageFrame(struct ahl_api_service *svc, const json_t *in, struct ahl_api_resp *resp,
                          struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId"), *id = ahl_api_str(in, "imageSetId");
    const char *frame_id =
        ahl_api_str(json_object_get(in, "imageFrameInformation"), "imageFrameId");
    const char *content_type;
    struct ahl_meta_info info;
    int rc;

    if ((rc = ahl_meta_imageset_get(svc->meta, ds, id, 0, &info, err)) < 0)
        return rc;
    rc = ahl__frame_index_find(svc->frame_index, svc->meta, ds, id, info.ver.version, frame_id,
                               &content_type, err);
    if (rc < 0)
        return rc;
    if (!content_type)
        return ahl_fail(err, AHL_ENOTFOUND, AHL_AWS_NOT_FOUND,
                        "Image frame %s does not exist in image set %s", frame_id, id);
    if (!svc->frames_ready)
        return ahl_fail(err, AHL_ENOTFOUND, AHL_AWS_NOT_FOUND,
                        "Image frame %s: this server has no frame store", frame_id);
    rc = ahl_framestore_open_frame(&svc->frames, frame_id, &resp->fd, &resp->fd_size, err);
    if (rc == AHL_ENOTFOUND)
        return ahl_fail(err, rc, AHL_AWS_NOT_FOUND,
                        "Image frame %s is listed in image set %s but its pixel data is missing",
                        frame_id, id);
    if (rc < 0)
        return rc;
    resp->content_type = content_type;
    return 0;
}
