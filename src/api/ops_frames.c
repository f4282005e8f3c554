/* GetImageFrame: the stored bytes of one frame, with the Content-Type of its stored transfer
 * syntax, streamed from the frame store (DATA_DIR/frames) by file descriptor.
 *
 * A frame is served only if the image set lists it: the store's frame index (kept by the engine
 * with each version, src/meta/frameidx.c) holds a row per (image set, frame id) that some
 * version of the set lists under an instance's ImageFrames, with that instance's
 * StoredTransferSyntaxUID. An id the set does not list is a ResourceNotFoundException even when
 * another set holds those bytes (frame ids are content addresses and may be shared), and the
 * frames of a deleted set are gone with it. The request costs two row lookups and an open(),
 * whatever the size of the set.
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
    struct ahl_store_tx *tx = NULL;
    struct ahl_imageset_rec set;
    struct ahl_frame_rec frame;
    int rc;

    if ((rc = ahl_store_begin(svc->store, false, &tx)) < 0)
        return ahl__api_store_fail(rc, err, "image set");
    rc = ahl_store_imageset_get(tx, ds, id, &set);
    if (rc == AHL_ENOTFOUND || (rc == 0 && !strcmp(set.state, "DELETED"))) {
        rc = ahl_fail(err, AHL_ENOTFOUND, AHL_AWS_NOT_FOUND,
                      "image set %s not found in data store %s", id, ds);
        goto out;
    }
    if (rc < 0) {
        rc = ahl__api_store_fail(rc, err, "image set");
        goto out;
    }
    rc = ahl_store_frame_get(tx, id, frame_id, &frame);
    if (rc == AHL_ENOTFOUND) {
        rc = ahl_fail(err, rc, AHL_AWS_NOT_FOUND, "Image frame %s does not exist in image set %s",
                      frame_id, id);
        goto out;
    }
    if (rc < 0) {
        rc = ahl__api_store_fail(rc, err, "image frame");
        goto out;
    }
    ahl_store_rollback(tx);
    tx = NULL;
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
    resp->content_type =
        ahl_frame_content_type(frame.transfer_syntax[0] ? frame.transfer_syntax : NULL);
out:
    ahl_store_rollback(tx);
    return rc;
}
