/* The viewer at /viewer/: a prebuilt web viewer's files (OHIF's dist/) served without
 * authentication, and the configuration it loads, app-config.js, made for each request from the
 * ACTIVE data stores (docs/dicomweb.md#viewer). Shared by server.c, viewer.c and static.c only
 * (and the unit tests and fuzz target); nothing else in the API includes it.
 *
 * static.c holds what reads outside input and the file system: the request path below /viewer/
 * turned into a safe relative path, the file opened beneath the viewer's directory without
 * following a symbolic link, the Accept-Encoding header, media types and cache lifetimes.
 * viewer.c decides the answer from them; server.c sends it (it alone speaks libmicrohttpd).
 */
#ifndef AHL_API_VIEWER_INTERNAL_H
#define AHL_API_VIEWER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "base/buf.h"

struct ahl_api_service;

#define AHL__VIEWER_PREFIX "/viewer"
/* The longest relative path accepted below /viewer/, and the most segments in it. */
#define AHL__STATIC_PATH_MAX 1024
#define AHL__STATIC_SEGMENTS_MAX 32

/* ---- static.c ------------------------------------------------------------------------------ */

/* Turns the raw path below /viewer/ (raw[0..n), without the query, still percent-encoded) into
 * a relative path in out[cap]: percent-decoded; segments separated by single '/'; "" and a
 * trailing '/' name the directory's index.html. Refused (AHL_EINVAL): a malformed or
 * encoded-NUL escape, an encoded '/', a backslash, a control character, an empty segment ("//"),
 * a segment that starts with '.' ("..", ".", hidden files), more than AHL__STATIC_SEGMENTS_MAX
 * segments; AHL_ETOOBIG past AHL__STATIC_PATH_MAX bytes or cap. */
int ahl__static_path(const char *raw, size_t n, char *out, size_t cap);

/* Opens rel (as ahl__static_path makes it) beneath the directory root, one segment at a time
 * with O_NOFOLLOW: a symbolic link anywhere on the way, a name that is not a directory where one
 * is needed, or a final name that is not a regular file is AHL_ENOTFOUND, as is a missing one;
 * AHL_EIO for other failures. On 0, *fd is open for reading and *st describes it. */
int ahl__static_open(int root, const char *rel, int *fd, struct stat *st);

#define AHL__ENC_GZIP 1u
#define AHL__ENC_BR 2u
/* The precompressed encodings an Accept-Encoding header accepts (AHL__ENC_* bits): each listed
 * coding with a q-value above 0, "*" standing for both; NULL or malformed parts accept
 * nothing more. */
unsigned ahl__accept_encodings(const char *header);

/* The Content-Type for a file name, from its extension ("application/octet-stream" when
 * unknown). */
const char *ahl__static_type(const char *name);

/* Whether a file name carries a content hash (a run of at least 16 hex digits, as bundlers name
 * their chunks): such a file never changes under its name and may be cached for good. */
bool ahl__static_hashed(const char *name);

/* ---- viewer.c ------------------------------------------------------------------------------ */

/* Whether a request target (a path, and maybe "?query") belongs to the viewer: "/viewer" or
 * below "/viewer/". */
bool ahl__viewer_path(const char *target);

struct ahl__viewer_request {
    const char *method;
    const char *path; /* raw, without the query, starting with AHL__VIEWER_PREFIX */
    const char *if_none_match;
    const char *accept_encoding;
};

/* What to send. The body is the file fd (size bytes, owned by the answer) when fd >= 0, else
 * body (possibly empty). Header values are static strings or the arrays here ("" or NULL:
 * none). */
struct ahl__viewer_answer {
    int status;
    int fd;
    uint64_t size;
    struct ahl_buf body;
    const char *content_type;
    const char *content_encoding;
    const char *cache_control;
    const char *allow;
    char etag[64];
    char location[64];
    bool vary_encoding;
};

/* The viewer's settings: the directory's descriptor, the data store that app-config.js makes
 * the default ("" for the first ACTIVE one), and OHIF's sign-in: the OpenID provider (the
 * issuer) and the viewer's client id there ("" for none). */
struct ahl__viewer {
    int root;
    char datastore[33];
    char oidc_issuer[512];
    char oidc_client_id[256];
};

void ahl__viewer_answer_init(struct ahl__viewer_answer *a);
void ahl__viewer_answer_release(struct ahl__viewer_answer *a);

/* Answers one viewer request in a (initialised by the caller): 200 with a file or a body,
 * 304, 301 for "/viewer", 400 for a refused path, 404, 405 for methods other than GET and HEAD,
 * 500 when the store cannot list data stores. Returns 0, or AHL_ENOMEM. */
int ahl__viewer_serve(const struct ahl__viewer *v, struct ahl_api_service *svc,
                      const struct ahl__viewer_request *rq, struct ahl__viewer_answer *a);

/* Appends app-config.js for the data stores to out: ids[i] and names[i] for i < n, the default
 * being ids[def]; with v->oidc_client_id, an `oidc` entry that has OHIF sign its users in with
 * that provider. 0 or AHL_ENOMEM / AHL_ETOOBIG. */
int ahl__viewer_config(const struct ahl__viewer *v, const char *const *ids,
                       const char *const *names, size_t n, size_t def, struct ahl_buf *out);

#endif /* AHL_API_VIEWER_INTERNAL_H */
