/* Internal interface of src/api: the service context and response shape every operation file
 * shares. Not included outside src/api.
 *
 * An operation is a function that reads its already-validated input (codec.h), calls the engine or
 * the store, and fills a struct ahl_api_resp: a JSON object, or a stream with its own content type
 * and encoding. On failure it returns a negative AHL_E* with err set; the server turns err into an
 * AWS error response (status from the model, x-amzn-ErrorType, {"__type","message"}).
 */
#ifndef AHL_API_OPS_INTERNAL_H
#define AHL_API_OPS_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "api/codec.h"
#include "api/model.h"
#include "aws/sigv4.h"
#include "base/buf.h"
#include "base/err.h"
#include "blob/framestore.h"
#include "frames/frames.h"
#include "import/import.h"
#include "meta/access.h"
#include "meta/meta.h"
#include "store/store.h"

#define AHL__STOW_IMPORTERS 8

/* What an operation runs against. Read-only after start, but for the STOW-RS importers. */
struct ahl_api_service {
    struct ahl_meta *meta;
    struct ahl_store *store;
    char region[64];
    char account_id[16];
    char s3_root[1024];
    char s3_endpoint[1024];
    char data_dir[1024];
    struct ahl_framestore frames; /* DATA_DIR/frames; valid when frames_ready */
    int frames_ready;
    /* The import-job runner hook: called after a job row is committed as SUBMITTED. NULL while
     * no runner is attached (the job then stays SUBMITTED). */
    void (*job_submitted)(void *ctx, const struct ahl_job_rec *job);
    void *job_ctx;
    unsigned job_max_concurrent; /* api.h, ahl_api_config */
    /* Frame memory of STOW-RS imports, all requests together; valid when frames_ready. */
    struct ahl_import_budget stow_budget;
    /* STOW-RS importers of the data stores stored into lately, kept across requests so that
     * their candidate caches spare each request re-reading its series' image set (import.h).
     * Guarded by stow_mu; an entry in use (users > 0) is never closed. */
    pthread_mutex_t stow_mu;
    struct ahl__stow_importer {
        char ds[AHL_ID_LEN + 1];
        struct ahl_importer *im;
        unsigned users;
        uint64_t used;
    } stow_importers[AHL__STOW_IMPORTERS];
    uint64_t stow_clock;
    /* Rendered DICOMweb metadata answers (dicomweb_cache.h), or NULL: no cache. */
    struct ahl__dwcache *dw_cache;
};

struct ahl_api_resp {
    json_t *json;                 /* a JSON response body (owned), or NULL for a raw body */
    struct ahl_buf raw;           /* a raw body (stream responses), initialised by the server */
    const char *content_type;     /* for raw bodies; static */
    const char *content_encoding; /* for raw bodies, or NULL; static */
    int fd; /* >= 0: stream this file (fd_size bytes), after raw's bytes when raw is not empty */
    uint64_t fd_size;
    /* A frame held in memory (not NULL): send its body_len bytes from body, then release it; the
     * server owns it once the operation returns, whatever it returned. */
    const struct ahl_frame_hold *hold;
    const void *body;
    size_t body_len;
    const char *accept; /* the request's Accept header, or NULL (set by the server) */
};

typedef int (*ahl_api_op_fn)(struct ahl_api_service *svc, const json_t *in,
                             struct ahl_api_resp *resp, struct ahl_err *err);

/* One function per operation, in the ops_*.c files. */
#define AHL__API_OPS(X)     \
    X(CopyImageSet)         \
    X(CreateDatastore)      \
    X(DeleteDatastore)      \
    X(DeleteImageSet)       \
    X(GetDICOMImportJob)    \
    X(GetDatastore)         \
    X(GetImageFrame)        \
    X(GetImageSet)          \
    X(GetImageSetMetadata)  \
    X(ListDICOMImportJobs)  \
    X(ListDatastores)       \
    X(ListImageSetVersions) \
    X(ListTagsForResource)  \
    X(SearchImageSets)      \
    X(StartDICOMImportJob)  \
    X(TagResource)          \
    X(UntagResource)        \
    X(UpdateImageSetMetadata)

#define AHL__API_OP_DECL(name)                                                                   \
    int ahl__op_##name(struct ahl_api_service *svc, const json_t *in, struct ahl_api_resp *resp, \
                       struct ahl_err *err);
AHL__API_OPS(AHL__API_OP_DECL)
#undef AHL__API_OP_DECL

/* The handler of each operation id. */
extern const ahl_api_op_fn ahl__api_handlers[AHL_OP__COUNT];

/* ---- helpers shared by the operation files (ops_common.c) ---- */

/* arn:aws:medical-imaging:REGION:ACCOUNT:datastore/ID[/imageset/ID] */
int ahl__api_datastore_arn(const struct ahl_api_service *svc, const char *datastore_id, char *out,
                           size_t cap);
int ahl__api_imageset_arn(const struct ahl_api_service *svc, const char *datastore_id,
                          const char *imageset_id, char *out, size_t cap);

/* Paging tokens are opaque to clients: base64 of "<kind>:<position>". decode checks the kind and
 * the shape (ValidationException "Invalid nextToken"). position receives at most cap bytes. */
int ahl__api_token_encode(const char *kind, const char *position, json_t *obj);
int ahl__api_token_decode(const char *kind, const char *token, char *position, size_t cap,
                          struct ahl_err *err);

/* One page of a List operation. The store is asked for limit + 1 rows: the extra row is not
 * returned, it only says that a next page exists. */
struct ahl__api_page {
    json_t *items; /* the response's summaries array */
    unsigned limit, seen;
    int more;
};
/* Called once per row from a List callback: when the page already holds limit rows, sets more and
 * returns 1 (stop listing); otherwise appends a new empty object to items for the caller to fill,
 * points *item at it and returns 0 (AHL_ENOMEM if it cannot). */
int ahl__api_page_item(struct ahl__api_page *p, json_t **item);

/* Sets key to a new value unless v is NULL (then fails with ENOMEM). */
int ahl__api_set(json_t *obj, const char *key, json_t *v);
/* Sets key to a string unless s is NULL or empty (optional members are left out). */
int ahl__api_set_str_opt(json_t *obj, const char *key, const char *s);
/* Sets key to a timestamp unless ms is 0. */
int ahl__api_set_ts_opt(json_t *obj, const char *key, int64_t ms);

/* Makes sure the data store exists (ResourceNotFoundException otherwise) and fills rec if not NULL.
 */
int ahl__api_require_datastore(struct ahl_api_service *svc, const char *datastore_id,
                               struct ahl_datastore_rec *rec, struct ahl_err *err);
/* The same inside a transaction the caller holds (and keeps, whatever the result). */
int ahl__api_datastore_get(struct ahl_store_tx *tx, const char *datastore_id,
                           struct ahl_datastore_rec *rec, struct ahl_err *err);

/* The limit of 50 tags a resource may carry (AWS's): ValidationException naming arn when a
 * request would leave total tags on it (ops_tags.c; CreateDatastore checks its tags too). */
int ahl__api_tags_check_count(size_t total, const char *arn, struct ahl_err *err);

/* Copies a request member's value (NULL: "") into a record field: 0, or AHL_EINVAL naming the
 * member when the value is longer than the field holds (the model limits characters; a field
 * holds bytes). */
int ahl__api_copy_member(char *dst, size_t cap, const char *value, const char *member,
                         struct ahl_err *err);

/* Sets imageSetState and imageSetWorkflowStatus of o as AWS answers a call it runs
 * asynchronously (UpdateImageSetMetadata, CopyImageSet, DeleteImageSet): LOCKED and the
 * operation's in-flight workflow status. The engine has finished the work by then (the stored set
 * is ACTIVE or DELETED), but clients read the response as AWS's. 0 or AHL_ENOMEM. */
int ahl__api_set_in_flight(json_t *o, enum ahl_workflow_status workflow);

/* The id of a resource a request with an idempotency token creates, so a retry names the same
 * one: the first AHL_ID_LEN hex digits of SHA-256 over the n parts joined by NUL bytes. The first
 * part names the kind of resource and the rest scope the token:
 *     {"datastore", clientToken}            CreateDatastore
 *     {"job", datastoreId, clientToken}     StartDICOMImportJob
 * so ids of different kinds, or of one token in different data stores, never coincide. Stored
 * data depends on these values: never change the scheme or a kind's parts. 0 or AHL_ENOMEM. */
int ahl__api_id_from_token(const char *const *parts, size_t n, char id[AHL_ID_LEN + 1]);

/* Parses an ImageSetExternalVersionId ("1", "2", ...; validated by the model as \d+) into a
 * positive integer; ValidationException for 0 or an overflow. */
int ahl__api_parse_version(const char *s, const char *member, uint64_t *out, struct ahl_err *err);

/* ---- DICOMweb (dicomweb.c, docs/dicomweb.md) ---- */

/* A DICOMweb request as the server hands it on once it is authenticated, and the two things of
 * its answer an operation's response does not carry. */
struct ahl__dicomweb_request {
    const char *method;
    const char *path;            /* raw path, without the query */
    const char *query;           /* raw query after '?', or NULL */
    const char *host;            /* the Host header (for BulkDataURIs), or NULL */
    const char *accept;          /* the Accept header, or NULL */
    const char *accept_encoding; /* the Accept-Encoding header, or NULL */
    int status;                  /* set by ahl__dicomweb_serve: 200, or 406 */
    char content_type[256];      /* resp->content_type points here when it has a parameter */
};

/* A response made whole before it is sent (spool.c): in resp->raw up to 64 KiB, past that in an
 * unlinked temporary file in DATA_DIR/tmp that becomes resp->fd. */
struct ahl__api_spool {
    struct ahl_buf *mem;
    char dir[1100];
    int fd;
    uint64_t size;
    int write_errno; /* why the spool file could not be written, or 0 */
};

void ahl__api_spool_init(struct ahl__api_spool *sp, const struct ahl_api_service *svc,
                         struct ahl_api_resp *resp);
/* A sink (ahl_p10_sink_fn, ahl_meta_write_cb): 0, AHL_ENOMEM or AHL_EIO. */
int ahl__api_spool_write(void *ctx, const void *p, size_t n);
/* Ends a spool after the answer was made with result rc: on success resp->fd (rewound) and
 * resp->fd_size are set when the spool moved to a file; on failure the spool is dropped and a
 * write failure is reworded (AHL_ENOSPC for a full disk) naming `what` ("metadata"). Returns the
 * code to pass on. */
int ahl__api_spool_finish(struct ahl__api_spool *sp, int rc, const char *what,
                          struct ahl_api_resp *resp, struct ahl_err *err);

/* Whether a request path belongs to DICOMweb (/datastore/{id}/studies... or /series...) rather
 * than to the service model's operations. */
bool ahl__dicomweb_path(const char *path);

/* The version diff (ops_diff.c, docs/api.md#version-diff): GET
 * /datastore/{id}/imageSet/{id}/diff?from=N&to=M, beyond the service model. */
bool ahl__diff_path(const char *path);
/* Parses a diff request (method, path, query with or without its '?'): ids into ds and set
 * (AHL_ID_LEN + 1 bytes each), versions into v; AHL_ENOTFOUND for another path, AHL_EINVAL. */
int ahl__diff_target(const char *method, const char *path, const char *q, char *ds, char *set,
                     uint64_t v[2], struct ahl_err *err);
int ahl__diff_serve(struct ahl_api_service *svc, const char *method, const char *path,
                    const char *q, struct ahl_api_resp *resp, struct ahl_err *err);
/* Answers one DICOMweb request: 0 with resp->raw, resp->content_type and rq->status set, or a
 * negative AHL_E* with err (ENOTFOUND, EINVAL, or the server's own failures), which the server
 * presents as it presents an operation's errors. */
int ahl__dicomweb_serve(struct ahl_api_service *svc, struct ahl__dicomweb_request *rq,
                        struct ahl_api_resp *resp, struct ahl_err *err);

/* ---- STOW-RS (dicomweb_stow.c, docs/dicomweb.md#store-stow-rs) ---- */

/* The most payload one STOW-RS request may carry (after aws-chunked decoding), and parts. */
#define AHL__STOW_MAX_BODY ((uint64_t)1 << 30)
#define AHL__STOW_MAX_PARTS 10000

/* The failures of a STOW-RS body that are neither authentication nor a malformed body, in
 * struct ahl_err's detail: the server answers them with their own status. */
enum ahl__stow_failure {
    AHL__STOW_FAIL_MEDIA_TYPE = 415, /* not application/dicom or multipart/related of it */
    AHL__STOW_FAIL_TOO_LARGE = 413,  /* more than AHL__STOW_MAX_BODY bytes */
};

struct ahl__stow;

/* Whether the request is StoreDICOM or StoreDICOMStudy: POST /datastore/{id}/studies[/{uid}]. */
bool ahl__stow_request(const char *method, const char *path, size_t path_len);

struct ahl__stow_args {
    const char *path;         /* raw path, without the query */
    const char *content_type; /* the request's Content-Type, or NULL */
    /* The body is aws-chunked: its chunks are verified against this (the verified request's
     * result, streaming set) and must decode to decoded_length bytes. NULL: a plain body. */
    const struct ahl_sigv4_result *chunked;
    uint64_t decoded_length;
    int hash_body; /* compute the SHA-256 of the body as received (ahl__stow_end gives it) */
};

/* Starts spooling a STOW-RS body under DATA_DIR/tmp. AHL_EUNSUPPORTED with detail
 * AHL__STOW_FAIL_MEDIA_TYPE for a content type STOW-RS does not take, AHL_EINVAL for a
 * malformed path or boundary, AHL_EIO when the spool cannot be made. */
int ahl__stow_begin(struct ahl_api_service *svc, const struct ahl__stow_args *a,
                    struct ahl__stow **out, struct ahl_err *err);
/* Takes the next bytes of the body as received. AHL_EPARSE (framing), AHL_EAUTH (a chunk's
 * signature), AHL_ETOOBIG (detail AHL__STOW_FAIL_TOO_LARGE), AHL_EIO / AHL_ENOSPC (the spool). */
int ahl__stow_feed(struct ahl__stow *st, const void *p, size_t n, struct ahl_err *err);
/* The body is complete: checks that it ended where its framing says, and gives the SHA-256 of
 * the body as received when hash_body was set. Same errors as feed. */
int ahl__stow_end(struct ahl__stow *st, char body_sha256[AHL_SHA256_HEX_LEN + 1],
                  struct ahl_err *err);
/* Imports every spooled part (only after the request is authenticated in full) and answers
 * with the PS3.18 store response: rq->status 200, 202 or 409 and resp->raw holding the DICOM
 * JSON. A negative AHL_E* only when nothing could be tried (unknown data store, ...). */
int ahl__stow_store(struct ahl_api_service *svc, struct ahl__stow *st,
                    struct ahl__dicomweb_request *rq, struct ahl_api_resp *resp,
                    struct ahl_err *err);
/* Removes the spool (every path, also an aborted upload). NULL is accepted. */
void ahl__stow_free(struct ahl__stow *st);
/* Removes spools a previous process left (DATA_DIR/tmp/stow-*) at start. */
void ahl__stow_sweep(const char *data_dir);
/* Closes the kept importers (at server stop, when no request runs). */
void ahl__stow_close_importers(struct ahl_api_service *svc);

#endif /* AHL_API_OPS_INTERNAL_H */
