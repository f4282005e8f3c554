/* Shared between the DICOMweb files of src/api: the resource code (dicomweb.c), the frames
 * resource and the Accept negotiation (dicomweb_frames.c), the retrieve resources
 * (dicomweb_retrieve.c) and search (dicomweb_qido.c). Not included outside src/api. */
#ifndef AHL_API_DICOMWEB_INTERNAL_H
#define AHL_API_DICOMWEB_INTERNAL_H

#include <jansson.h>

#include "api/ops_internal.h"

/* The DICOMweb transfer syntax answered when the request names none: Explicit VR Little Endian. */
#define AHL__DW_DEFAULT_TS "1.2.840.10008.1.2.1"

/* The transfer syntax to answer in: the first media range of the Accept header (comma-separated)
 * whose transfer-syntax parameter (or, without one, AHL__DW_DEFAULT_TS) can be given: "*", the
 * default, or stored_ts ("" when the instances asked for are stored in several syntaxes). true
 * with it in out and *multipart telling whether that range's type is multipart/related; when none
 * can, false with the first range's syntax in out (for the 406). */
bool ahl__dicomweb_choose_syntax(const char *accept, const char *stored_ts, char *out, size_t cap,
                                 bool *multipart);

/* The 406 answer (NotAcceptableException) for a syntax that cannot be given, into rq and resp
 * (resp->raw is replaced). 0, or AHL_ENOMEM. */
int ahl__dicomweb_not_acceptable(struct ahl__dicomweb_request *rq, const char *want,
                                 const char *stored_ts, struct ahl_api_resp *resp);

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

/* GetDICOMBulkdata (dicomweb_bulk.c): the value of instance's "BulkData" map whose content id is
 * id, as multipart/related (or application/octet-stream when Accept asks for it first), spooled.
 * AHL_ENOTFOUND for an id the instance does not list, AHL_ECORRUPT for a damaged object. */
int ahl__dicomweb_bulkdata(struct ahl_api_service *svc, struct ahl__dicomweb_request *rq,
                           const json_t *instance, const char *id, struct ahl_api_resp *resp,
                           struct ahl_err *err);

/* The Host header when it is a plain host[:port] (no scheme, path or space), else "localhost":
 * what URIs in answers name (dicomweb.c). */
const char *ahl__dicomweb_host(const char *host);

/* Writes a DICOM JSON answer into resp->raw, with its Content-Type and rq->status 200. 0 or
 * AHL_ENOMEM. */
int ahl__dicomweb_answer_json(const json_t *answer, struct ahl__dicomweb_request *rq,
                              struct ahl_api_resp *resp, struct ahl_err *err);

/* ---- search (QIDO-RS, dicomweb_qido.c) ---- */

/* The most query parameters a search takes. */
#define AHL__QIDO_MAX_PARAMS 64

/* A search request: the data store, the UIDs of the path, the store query, and which of the
 * answerable attributes are asked for (includefield, or matched). Strings the query points at
 * are owned by the request (ahl__qido_request_release). */
struct ahl__qido_request {
    char ds[AHL_ID_LEN + 1];
    char study[65], series[65];
    struct ahl_qido_query q;
    bool include_all;
    bool include[40]; /* by position in dicomweb_qido.c's attribute table */
    void *owned[2 * AHL__QIDO_MAX_PARAMS + AHL_QIDO_MAX_FILTERS]; /* names, values, lists */
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

/* What a retrieve resource asks for: the instances of the study (series NULL), of one series
 * (sop NULL) or one instance, read from docs (the documents dicomweb.c chose, a JSON array), and
 * for the Original Attributes Sequence the version they are: the set's latest, or `version`. */
struct ahl__dw_retrieve {
    const char *datastore_id;
    const char *study, *series, *sop;
    uint64_t version; /* ?versionId=, or 0 */
};

/* GetDICOMInstance, and the series and study retrieve (docs/dicomweb.md#retrieve): Part-10 files
 * as application/dicom or multipart/related, in the transfer syntax rq->accept asks for, spooled
 * into resp. 0 with rq->status 200 or 406 (JSON body); or a negative AHL_E* as
 * ahl__dicomweb_frames (AHL_ENOTFOUND: no instance matches). */
int ahl__dicomweb_retrieve(struct ahl_api_service *svc, struct ahl__dicomweb_request *rq,
                           const json_t *docs, const struct ahl__dw_retrieve *sel,
                           struct ahl_api_resp *resp, struct ahl_err *err);

#endif /* AHL_API_DICOMWEB_INTERNAL_H */
