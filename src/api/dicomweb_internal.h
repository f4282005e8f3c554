/* Shared between the DICOMweb files of src/api: the resource code (dicomweb.c) and the frames
 * resource (dicomweb_frames.c). Not included outside src/api. */
#ifndef AHL_API_DICOMWEB_INTERNAL_H
#define AHL_API_DICOMWEB_INTERNAL_H

#include <jansson.h>

#include "api/ops_internal.h"

/* The DICOMweb transfer syntax answered when the request names none: Explicit VR Little Endian. */
#define AHL__DW_DEFAULT_TS "1.2.840.10008.1.2.1"
/* The most bytes of frames one response holds in memory. */
#define AHL__DW_MAX_FRAMES_BYTES ((size_t)256 << 20)

/* GetDICOMInstanceFrames for one instance node of a document ({"DICOM":..,"ImageFrames":..,
 * "StoredTransferSyntaxUID":..}): the frames numbered in list ("1,3", 1-based, distinct) as a
 * multipart/related body in resp->raw, its Content-Type (with the boundary) written into rq,
 * in the transfer syntax rq->accept asks for (docs/dicomweb.md#frames). 0 with rq->status 200,
 * or 406 with a JSON body when the syntax asked for cannot be given; or a negative AHL_E*:
 * AHL_EINVAL (malformed list), AHL_ENOTFOUND (a frame the instance does not have), AHL_ETOOBIG,
 * AHL_ECORRUPT (a damaged stored frame, logged), AHL_ENOMEM, AHL_EIO. */
int ahl__dicomweb_frames(struct ahl_api_service *svc, struct ahl__dicomweb_request *rq,
                         const json_t *instance, const char *list, struct ahl_api_resp *resp,
                         struct ahl_err *err);

#endif /* AHL_API_DICOMWEB_INTERNAL_H */
