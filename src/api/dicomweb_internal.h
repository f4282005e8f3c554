/* Shared between the DICOMweb files of src/api: the resource code (dicomweb.c), the frames
 * resource (dicomweb_frames.c) and search (dicomweb_qido.c). Not included outside src/api. */
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

/* The Host header when it is a plain host[:port] (no scheme, path or space), else "localhost":
 * what URIs in answers name (dicomweb.c). */
const char *ahl__dicomweb_host(const char *host);

/* Writes a DICOM JSON answer into resp->raw, with its Content-Type and rq->status 200. 0 or
 * AHL_ENOMEM. */
int ahl__dicomweb_answer_json(const json_t *answer, struct ahl__dicomweb_request *rq,
                              struct ahl_api_resp *resp, struct ahl_err *err);

/* ---- search (QIDO-RS, dicomweb_qido.c) ---- */

/* A search request: the data store, the UIDs of the path, the store query, and which of the
 * answerable attributes are asked for (includefield, or matched). Strings the query points at
 * are owned by the request (ahl__qido_request_release). */
struct ahl__qido_request {
    char ds[AHL_ID_LEN + 1];
    char study[65], series[65];
    struct ahl_qido_query q;
    bool include_all;
    bool include[40]; /* by position in dicomweb_qido.c's attribute table */
    void *owned[2 * AHL_QIDO_MAX_FILTERS + 64];
    unsigned nowned;
};

/* Whether path is a search resource: /datastore/{ds}/studies, /series, /studies/{s}/series,
 * /studies/{s}/series/{se}/instances or /studies/{s}/instances. */
bool ahl__qido_path(const char *path);
/* Parses a search's path and query (raw, percent-encoded; NULL: none) into *r (released by the
 * caller with ahl__qido_request_release, whatever the result). 0, AHL_EINVAL with a message
 * naming the parameter and what it may be, AHL_ENOTFOUND (not a search path), AHL_ENOMEM. */
int ahl__qido_parse(const char *path, const char *query, struct ahl__qido_request *r,
                    struct ahl_err *err);
void ahl__qido_request_release(struct ahl__qido_request *r);
/* Answers a GET of a search resource: a DICOM JSON array in resp->raw, rq->status 200. */
int ahl__dicomweb_qido(struct ahl_api_service *svc, struct ahl__dicomweb_request *rq,
                       struct ahl_api_resp *resp, struct ahl_err *err);

#endif /* AHL_API_DICOMWEB_INTERNAL_H */
