/* The HTTP front of the API: libmicrohttpd, SigV4 on every request, dispatch, one log line each.
 *
 * This is the only file that includes microhttpd.h. A request's life:
 *   1. the URI log callback allocates our per-request state and keeps the raw request target, so
 *      the path is routed and signed exactly as it came (an ARN label's %2F stays one segment);
 *   2. the access handler's first call sees the headers only: they are checked (one length, no
 *      length beside chunked encoding), and the caller is authenticated as far as headers can
 *      prove it (a known access key, right scope and time; the whole signature when the request
 *      carries x-amz-content-sha256) before a byte of the body is read. A caller turned away
 *      there costs no body memory: a small body is read and dropped so the client reads the
 *      error, a large one is not read at all. Accepted bodies are reserved against a server-wide
 *      budget (max_body_memory) and collected, up to AHL_API_MAX_BODY bytes;
 *   3. on the last call: the signature over the body's SHA-256 (botocore sends no
 *      x-amz-content-sha256), routing, decoding + validation, the operation, the response;
 *   4. the completion callback logs "op status duration" and frees the state.
 * Connections are watched apart from requests (struct conn): a connection that takes longer than
 * header_timeout from its request line to the end of its headers (slowloris), or sits idle longer
 * than idle_timeout before its next request, is shut down by the reaper thread. The daemon runs a
 * pool of poll() threads (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL): libmicrohttpd 0.9.75's
 * epoll mode never noticed a client that sent part of a request and closed, and kept such
 * connections in CLOSE-WAIT until their timeout. Operations run on the pool threads directly:
 * store calls are short and no response waits on the database while it is sent.
 */
#include "api/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api/dicomweb_cache.h"
#include "api/ops_internal.h"
#include "api/viewer_internal.h"
#include "base/clock.h"
#include "base/codec.h"
#include "base/log.h"
#include "aws/chunked.h"
#include "aws/sigv4.h"
#include "blob/framestore.h"
#include "json/json.h"
#include "oidc/oidc.h"
#include "base/text.h"
#include "base/banned.h"

/* How much of an oversized body from an authenticated-looking caller is read (and dropped) so that
 * it receives its ValidationException, before the connection is closed instead. */
#define MAX_DISCARD ((size_t)8 << 20)
/* A caller turned away from its headers alone: a body up to this size is read and dropped, so
 * that the client, still sending, reads the error rather than a reset; a larger one is not read. */
#define REJECT_DRAIN ((size_t)64 << 10)
/* How often the reaper looks for connections past their deadlines. */
#define REAPER_PERIOD_MS 500

/* One open connection (MHD_OPTION_NOTIFY_CONNECTION). fd is a duplicate of the socket, so the
 * reaper can shut the connection down from its own thread without racing the reuse of the
 * descriptor number: the socket lives until both are closed. Times are ahl_mono_ns(); the fields
 * below the list links are guarded by conns_lock. */
struct conn {
    struct conn *prev, *next;
    int fd;
    uint64_t waiting_since;   /* accepted, or its last request finished */
    uint64_t request_line_at; /* a request line arrived; its headers are not complete (0: none) */
    int in_request;           /* headers complete, until the request finishes */
    int shut;                 /* the reaper has shut it down */
};

struct ahl_api_server {
    struct MHD_Daemon *daemon;
    struct ahl_api_service svc;
    struct ahl_api_credentials creds;
    struct ahl_sigv4_verifier verifier;
    int verifier_ready;
    struct ahl_oidc *oidc;     /* bearer tokens on DICOMweb resources; NULL: refused */
    struct ahl__viewer viewer; /* viewer.root >= 0: the viewer is served at /viewer/ */
    uint16_t port;
    uint64_t header_timeout_ns, idle_timeout_ns;
    size_t max_body_memory;
    pthread_mutex_t budget_lock;
    size_t body_memory; /* bytes reserved by request bodies now */
    uint64_t max_stow_spool, stow_spool; /* STOW-RS bodies on disk: the limit, reserved now */
    /* connections and the reaper */
    pthread_mutex_t conns_lock;
    pthread_cond_t reaper_wake;
    struct conn *conns;
    int locks_ready, reaper_running, stopping;
    pthread_t reaper;
};

#define HEALTH_PATH "/health"

/* The answer decided before the body was read, sent once it has been read or dropped. */
struct early_error {
    int status; /* 0: none */
    const char *type;
    char message[512];
    char challenge[640]; /* a WWW-Authenticate header to send with it, or "" */
};

struct request {
    struct ahl_api_server *srv;
    struct conn *conn;
    char *target; /* raw request target: path?query */
    uint64_t start_ns;
    int started;       /* the access handler has seen this request */
    int authenticated; /* the whole signature is verified (only a body hash may remain) */
    int viewer;        /* a file of the viewer: public, no authentication */
    int health;        /* GET /health: public, no authentication, no data */
    char body_hash_to_check[AHL_SHA256_HEX_LEN + 1];
    int body_too_big;
    size_t body_seen;
    size_t reserved; /* bytes of the body budget held */
    struct ahl_buf body;
    int is_stow;              /* StoreDICOM or StoreDICOMStudy */
    struct ahl__stow *stow;   /* a STOW-RS body being spooled (dicomweb_stow.c), or NULL */
    uint64_t spool_reserved;  /* bytes of the STOW-RS spool budget held */
    uint64_t dropped;         /* bytes dropped since the body was refused */
    struct early_error early; /* answer without running the operation (status 0: none) */
    int close_after;          /* the response closes the connection */
    const char *op_name;      /* for the log line */
    int status;
    /* Why a 4xx or 5xx was sent, for the log line: the error type and its message (never a
     * secret: messages quote no signature, key or body), control bytes shown as '?'. */
    const char *err_type;
    char err_msg[320];
    char request_id[37];
};

/* ---- headers as sigv4.h and codec.h want them ---------------------------------------------- */

struct header_lookup {
    const char *name;
    size_t nth;
    const char *found;
};

static enum MHD_Result header_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct header_lookup *h = cls;
    (void)kind;
    if (strcasecmp(key, h->name) != 0)
        return MHD_YES;
    if (h->nth == 0) {
        h->found = value ? value : "";
        return MHD_NO;
    }
    h->nth--;
    return MHD_YES;
}

static const char *sigv4_header(void *ctx, const char *name, size_t nth)
{
    struct header_lookup h = {.name = name, .nth = nth};
    MHD_get_connection_values(ctx, MHD_HEADER_KIND, header_iter, &h);
    return h.found;
}

static const char *codec_header(void *ctx, const char *name)
{
    return sigv4_header(ctx, name, 0);
}

/* The request as SigV4 reads it: the method, the raw target's path and query, the headers. */
static struct ahl_sigv4_request sigv4_request(struct MHD_Connection *conn, const char *method,
                                              const char *target)
{
    const char *q = strchr(target, '?');
    return (struct ahl_sigv4_request){
        .method = method,
        .path = target,
        .path_len = q ? (size_t)(q - target) : strlen(target),
        .query = q ? q + 1 : NULL,
        .query_len = q ? strlen(q + 1) : 0,
        .header = sigv4_header,
        .header_ctx = conn,
    };
}

/* ---- credentials --------------------------------------------------------------------------- */

static int lookup_secret(void *ctx, const char *access_key, const char *token, char *secret,
                         size_t cap)
{
    const struct ahl_api_credentials *creds = ctx;
    if (token && *token)
        return AHL_EDENIED; /* no session tokens are issued by this server */
    for (size_t i = 0; i < creds->n; i++) {
        if (strcmp(creds->keys[i].access_key, access_key) == 0)
            return ahl_str_copy(secret, cap, creds->keys[i].secret_key);
    }
    return AHL_ENOTFOUND;
}

/* ---- responses ----------------------------------------------------------------------------- */

/* Request ids must be unique, not unpredictable: a per-thread xorshift128+ generator, seeded once
 * from the system's random source, keeps a call into the OpenSSL RNG (about 5% of a small
 * request's server time, measured with perf on GetDatastore) off every request. */
static _Thread_local uint64_t t_rng[2];

static uint64_t next_random(void)
{
    if (!t_rng[0] && !t_rng[1]) {
        if (ahl_random_bytes((uint8_t *)t_rng, sizeof t_rng) < 0 || (!t_rng[0] && !t_rng[1])) {
            t_rng[0] = ahl_mono_ns() | 1;
            t_rng[1] = (uint64_t)(uintptr_t)&t_rng;
        }
    }
    uint64_t a = t_rng[0], b = t_rng[1];
    t_rng[0] = b;
    a ^= a << 23;
    t_rng[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return t_rng[1] + b;
}

static void make_request_id(char out[37])
{
    uint8_t r[16];
    char hex[33];
    uint64_t x = next_random(), y = next_random();
    memcpy(r, &x, 8);
    memcpy(r + 8, &y, 8);
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    ahl_hex_encode(r, sizeof r, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* A body of bytes in memory followed by a file: GetImageFrame's JPH boxes (resp.raw, ~100 bytes)
 * before the stored codestream (resp.fd, fd_size bytes), streamed without copying the file. */
struct prefixed_body {
    char *prefix;
    size_t prefix_len;
    int fd;
};

static ssize_t prefixed_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct prefixed_body *b = cls;
    if (pos < b->prefix_len) {
        size_t n = b->prefix_len - (size_t)pos < max ? b->prefix_len - (size_t)pos : max;
        memcpy(buf, b->prefix + pos, n);
        return (ssize_t)n;
    }
    ssize_t r;
    do
        r = pread(b->fd, buf, max, (off_t)(pos - b->prefix_len));
    while (r < 0 && errno == EINTR);
    /* The file shorter than when it was checked: end the connection rather than pad. */
    return r > 0 ? r : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void prefixed_free(void *cls)
{
    struct prefixed_body *b = cls;
    close(b->fd);
    free(b->prefix);
    free(b);
}

/* The response of resp.raw then resp.fd; owns both (resp.fd is set to -1) on success. */
static struct MHD_Response *prefixed_response(struct ahl_api_resp *resp)
{
    struct prefixed_body *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->prefix = ahl_buf_detach(&resp->raw, &b->prefix_len);
    b->fd = resp->fd;
    struct MHD_Response *r =
        b->prefix ? MHD_create_response_from_callback(b->prefix_len + resp->fd_size, 64 * 1024,
                                                      prefixed_read, b, prefixed_free)
                  : NULL;
    if (!r) {
        free(b->prefix);
        free(b);
        return NULL;
    }
    resp->fd = -1;
    return r;
}

/* Adds our headers to r and queues it (and drops our reference to it). */
static enum MHD_Result queue(struct MHD_Connection *conn, struct request *rq, int status,
                             struct MHD_Response *r, const char *content_type,
                             const char *content_encoding, const char *error_type)
{
    if (content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, "x-amzn-RequestId", rq->request_id);
    if (content_encoding)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, content_encoding);
    if (error_type)
        MHD_add_response_header(r, "x-amzn-ErrorType", error_type);
    if (rq->early.challenge[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, rq->early.challenge);
    if (rq->close_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    rq->status = status;
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_buffer(struct MHD_Connection *conn, struct request *rq, int status,
                                   struct ahl_buf *body, const char *content_type,
                                   const char *content_encoding, const char *error_type)
{
    size_t len;
    char *data = ahl_buf_detach(body, &len);
    if (!data)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(data);
        return MHD_NO;
    }
    return queue(conn, rq, status, r, content_type, content_encoding, error_type);
}

/* Keeps why the request failed for its log line, on one line. */
static void note_error(struct request *rq, const char *type, const char *message)
{
    size_t i = 0;
    rq->err_type = type;
    for (; message && message[i] && i + 1 < sizeof rq->err_msg; i++)
        rq->err_msg[i] = (unsigned char)message[i] < 0x20 || message[i] == 0x7f ? '?' : message[i];
    while (message && i > 0 && ((unsigned char)message[i] & 0xC0) == 0x80)
        i--; /* cut before a character, not inside it */
    rq->err_msg[i] = '\0';
}

static enum MHD_Result send_error(struct MHD_Connection *conn, struct request *rq, int status,
                                  const char *type, const char *message)
{
    note_error(rq, type, message);
    struct ahl_buf b;
    ahl_buf_init(&b, 8192);
    if (ahl_api_error_body(type, message, &b) < 0) {
        ahl_buf_reset(&b);
        ahl_buf_adds(&b, "{\"__type\":\"InternalServerException\",\"message\":\"internal\"}");
    }
    return send_buffer(conn, rq, status, &b, "application/json", NULL, type);
}

static enum MHD_Result send_err(struct MHD_Connection *conn, struct request *rq,
                                const struct ahl_err *err)
{
    const char *type = ahl_api_error_type(err);
    int status = ahl_api_error_status(type);
    if (status >= 500)
        ahl_error("request %s: %s: %s", rq->request_id, type, err->msg);
    return send_error(conn, rq, status, type, err->msg[0] ? err->msg : ahl_strerror(err->code));
}

/* A raw response: resp->raw, or a file (resp->fd), or bytes in memory then a file. Takes
 * resp->fd (set to -1) when it queues it. */
static void hold_release(void *cls)
{
    ahl_frame_hold_release(cls);
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, struct request *rq, int status,
                                 struct ahl_api_resp *resp)
{
    if (resp->hold) { /* sent from the held frame's memory, released when the send is done */
        struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
            resp->body_len, (void *)(uintptr_t)resp->body, hold_release, (void *)resp->hold);
        if (!r)
            return MHD_NO;
        resp->hold = NULL;
        return queue(conn, rq, status, r, resp->content_type, resp->content_encoding, NULL);
    }
    if (resp->fd < 0)
        return send_buffer(conn, rq, status, &resp->raw, resp->content_type, resp->content_encoding,
                           NULL);
    struct MHD_Response *r = resp->raw.len ? prefixed_response(resp)
                                           : MHD_create_response_from_fd64(resp->fd_size, resp->fd);
    if (!r)
        return MHD_NO;
    resp->fd = -1; /* the response owns it now */
    return queue(conn, rq, status, r, resp->content_type, resp->content_encoding, NULL);
}

/* A viewer answer (viewer.c): a file streamed from its descriptor, or a body in memory. */
static enum MHD_Result send_viewer(struct MHD_Connection *conn, struct request *rq,
                                   const char *method, const char *path)
{
    struct ahl__viewer_answer a;
    struct ahl__viewer_request vr = {
        .method = method,
        .path = path,
        .if_none_match = codec_header(conn, MHD_HTTP_HEADER_IF_NONE_MATCH),
        .accept_encoding = codec_header(conn, MHD_HTTP_HEADER_ACCEPT_ENCODING),
    };
    struct MHD_Response *r = NULL;
    enum MHD_Result ret = MHD_NO;

    ahl__viewer_answer_init(&a);
    if (ahl__viewer_serve(&rq->srv->viewer, &rq->srv->svc, &vr, &a) < 0)
        goto out;
    if (a.fd >= 0) {
        if ((r = MHD_create_response_from_fd64(a.size, a.fd)))
            a.fd = -1; /* the response owns it now */
    } else {
        size_t len;
        char *data = ahl_buf_detach(&a.body, &len);
        if (data && !(r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE)))
            free(data);
    }
    if (!r)
        goto out;
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (a.cache_control)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, a.cache_control);
    if (a.etag[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, a.etag);
    if (a.vary_encoding)
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    if (a.location[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, a.location);
    if (a.allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, a.allow);
    ret = queue(conn, rq, a.status, r, a.status == 304 ? NULL : a.content_type, a.content_encoding,
                NULL);
out:
    ahl__viewer_answer_release(&a);
    return ret;
}

/* ---- the body budget ----------------------------------------------------------------------- */

static int budget_reserve(struct ahl_api_server *srv, size_t n)
{
    int ok;
    pthread_mutex_lock(&srv->budget_lock);
    ok = srv->body_memory + n <= srv->max_body_memory;
    if (ok)
        srv->body_memory += n;
    pthread_mutex_unlock(&srv->budget_lock);
    return ok;
}

static void budget_release(struct ahl_api_server *srv, size_t n)
{
    pthread_mutex_lock(&srv->budget_lock);
    srv->body_memory -= n;
    pthread_mutex_unlock(&srv->budget_lock);
}

/* The STOW-RS spool budget, in bytes of disk, reserved as a body grows. */
static int spool_reserve(struct ahl_api_server *srv, struct request *rq, uint64_t n)
{
    int ok;
    pthread_mutex_lock(&srv->budget_lock);
    ok = srv->stow_spool + n <= srv->max_stow_spool;
    if (ok)
        srv->stow_spool += n;
    pthread_mutex_unlock(&srv->budget_lock);
    if (ok)
        rq->spool_reserved += n;
    return ok;
}

static void spool_release(struct ahl_api_server *srv, struct request *rq)
{
    pthread_mutex_lock(&srv->budget_lock);
    srv->stow_spool -= rq->spool_reserved;
    pthread_mutex_unlock(&srv->budget_lock);
    rq->spool_reserved = 0;
}

/* ---- the request pipeline ------------------------------------------------------------------ */

static enum MHD_Result send_early(struct MHD_Connection *conn, struct request *rq)
{
    return send_error(conn, rq, rq->early.status, rq->early.type, rq->early.message);
}

static void set_early(struct request *rq, int status, const char *type, const char *message)
{
    rq->early.status = status;
    rq->early.type = type;
    ahl_str_copy_cut(rq->early.message, sizeof rq->early.message, message);
}

/* ---- STOW-RS bodies, spooled to disk as they arrive (dicomweb_stow.c) ------------------------ */

/* STOW-RS bodies are dropped at most this far past the point they were refused, so that a client
 * still sending reads the answer; then the connection is closed. */
#define STOW_DRAIN ((uint64_t)8 << 20)
/* The spool budget is reserved in steps of this many bytes as a body of unknown length grows. */
#define STOW_RESERVE_STEP ((uint64_t)16 << 20)
#define AHL_AWS_UNSUPPORTED_MEDIA "UnsupportedMediaTypeException"

/* A STOW-RS failure becomes the answer decided before the rest of the body is read. */
static void stow_refuse(struct request *rq, const struct ahl_err *err)
{
    const char *type;
    int status;
    if (err->code == AHL_EAUTH) {
        type = ahl_api_auth_error_type(err);
        status = ahl_api_error_status(type);
    } else if (err->code == AHL_EUNSUPPORTED && err->detail == AHL__STOW_FAIL_MEDIA_TYPE) {
        type = AHL_AWS_UNSUPPORTED_MEDIA;
        status = 415;
    } else if (err->code == AHL_ETOOBIG && err->detail == AHL__STOW_FAIL_TOO_LARGE) {
        type = AHL_AWS_VALIDATION;
        status = 413;
    } else {
        type = ahl_api_error_type(err);
        status = ahl_api_error_status(type);
    }
    if (status >= 500)
        ahl_error("request %s: STOW-RS: %s", rq->request_id, err->msg);
    set_early(rq, status, type, err->msg[0] ? err->msg : ahl_strerror(err->code));
    /* The spool goes at once: nothing of a refused body is kept. */
    ahl__stow_free(rq->stow);
    rq->stow = NULL;
}

/* Whether the request's Content-Encoding names aws-chunked (alone or in a list). */
static int aws_chunked(struct MHD_Connection *conn)
{
    const char *ce = sigv4_header(conn, "content-encoding", 0);
    return ce && strstr(ce, "aws-chunked") != NULL;
}

/* admit() for StoreDICOM / StoreDICOMStudy: authenticates what the headers prove (unless a
 * bearer token has proved it all), decides how the body is verified
 * (docs/dicomweb.md#authentication-of-the-body) and starts the spool. */
static void admit_stow(struct MHD_Connection *conn, struct request *rq, const char *method,
                       size_t path_len, uint64_t length, int bearer)
{
    struct ahl_api_server *srv = rq->srv;
    const char *x = sigv4_header(conn, "x-amz-content-sha256", 0);
    struct ahl_sigv4_request sreq = sigv4_request(conn, method, rq->target);
    sreq.credentials_only = !x; /* botocore's: the body's hash is signed, known at the end */
    sreq.allow_streaming = 1;
    struct ahl_sigv4_result sres = {.streaming = 0};
    struct ahl_err err;
    ahl_err_clear(&err);
    /* Refused from its headers, a body too large to drain is not read: the connection closes. */
    rq->close_after = length > REJECT_DRAIN;
    if (bearer) {
        x = NULL; /* nothing of SigV4 applies */
    } else if (ahl_sigv4_verify(&srv->verifier, &sreq, ahl_wall_ms() / 1000, &sres, &err, NULL) <
               0) {
        const char *type = ahl_api_auth_error_type(&err);
        set_early(rq, ahl_api_error_status(type), type, err.msg);
        return;
    }
    rq->authenticated = bearer || !sreq.credentials_only;
    memcpy(rq->body_hash_to_check, sres.body_hash_to_check, sizeof rq->body_hash_to_check);

    char path[256]; /* ahl__stow_request took only shorter paths */
    snprintf(path, sizeof path, "%.*s", (int)path_len, rq->target);
    struct ahl__stow_args a = {
        .path = path,
        .content_type = sigv4_header(conn, "content-type", 0),
        .hash_body = !rq->authenticated || rq->body_hash_to_check[0],
    };
    /* The payload's length: x-amz-decoded-content-length under aws-chunked, else the body's. */
    uint64_t payload = length;
    const char *dl = sigv4_header(conn, "x-amz-decoded-content-length", 0);
    char *end = NULL;
    unsigned long long decoded = dl && *dl >= '0' && *dl <= '9' ? strtoull(dl, &end, 10) : 0;
    int chunked = aws_chunked(conn);
    if (chunked && !sres.streaming) {
        set_early(rq, 400, AHL_AWS_VALIDATION,
                  "Content-Encoding: aws-chunked needs x-amz-content-sha256: "
                  "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
        return;
    }
    if ((chunked || (dl && length != UINT64_MAX)) && (!end || *end)) {
        set_early(rq, 400, AHL_AWS_VALIDATION,
                  "x-amz-decoded-content-length must be the payload's length in bytes");
        return;
    }
    if (chunked) {
        a.chunked = &sres;
        a.decoded_length = decoded;
        payload = decoded;
    } else if (dl && length != UINT64_MAX && decoded != length) {
        /* A plain body with the streaming header (the AWS documentation's curl example): its
         * declared length must still be what came. */
        set_early(rq, 400, AHL_AWS_VALIDATION,
                  "x-amz-decoded-content-length differs from Content-Length on a body that is "
                  "not aws-chunked");
        return;
    }
    if (payload != UINT64_MAX && payload > AHL__STOW_MAX_BODY) {
        rq->close_after = 1;
        ahl_fail_detail(&err, AHL_ETOOBIG, AHL__STOW_FAIL_TOO_LARGE,
                        "The request body (%llu bytes) is larger than the STOW-RS limit of %llu "
                        "bytes; send fewer instances per request",
                        (unsigned long long)payload, (unsigned long long)AHL__STOW_MAX_BODY);
        stow_refuse(rq, &err);
        return;
    }
    if (length != UINT64_MAX && !spool_reserve(srv, rq, length)) {
        rq->close_after = 1;
        set_early(rq, 429, AHL_AWS_THROTTLING,
                  "The server is receiving too many STOW-RS bodies at once; retry shortly");
        return;
    }
    if (ahl__stow_begin(&srv->svc, &a, &rq->stow, &err) < 0)
        stow_refuse(rq, &err);
    else
        rq->close_after = 0; /* accepted: the connection is kept for the next request */
    /* The decoder has its own copy of the signing key. */
    volatile uint8_t *wipe = sres.signing_key;
    for (size_t i = 0; i < sizeof sres.signing_key; i++)
        wipe[i] = 0;
}

/* The next bytes of a STOW-RS body. */
static enum MHD_Result stow_data(struct request *rq, const char *data, size_t n)
{
    struct ahl_err err;
    if (rq->early.status) {
        rq->dropped += n;
        return rq->dropped > STOW_DRAIN ? MHD_NO : MHD_YES;
    }
    if (rq->body_seen > rq->spool_reserved &&
        !spool_reserve(rq->srv, rq, rq->body_seen - rq->spool_reserved + STOW_RESERVE_STEP)) {
        ahl_fail(&err, AHL_EQUOTA, "The server is receiving too many STOW-RS bodies at once");
        stow_refuse(rq, &err);
        rq->early.status = 429;
        rq->early.type = AHL_AWS_THROTTLING;
        return MHD_YES;
    }
    ahl_err_clear(&err);
    if (ahl__stow_feed(rq->stow, data, n, &err) < 0)
        stow_refuse(rq, &err);
    return MHD_YES;
}

/* The whole STOW-RS body is in: the rest of the authentication, then the store. */
static enum MHD_Result finish_stow(struct MHD_Connection *conn, struct request *rq,
                                   const char *method, const char *path, const char *q,
                                   struct ahl_api_resp *resp)
{
    struct ahl_api_server *srv = rq->srv;
    struct ahl_err err;
    char hash[AHL_SHA256_HEX_LEN + 1];
    ahl_err_clear(&err);
    if (ahl__stow_end(rq->stow, hash, &err) < 0) {
        stow_refuse(rq, &err);
        return send_early(conn, rq);
    }
    if (!rq->authenticated) {
        struct ahl_sigv4_request sreq = sigv4_request(conn, method, rq->target);
        sreq.body_sha256_hex = hash;
        struct ahl_sigv4_result sres;
        if (ahl_sigv4_verify(&srv->verifier, &sreq, ahl_wall_ms() / 1000, &sres, &err, NULL) < 0) {
            stow_refuse(rq, &err);
            return send_early(conn, rq);
        }
    } else if (rq->body_hash_to_check[0] && strcasecmp(rq->body_hash_to_check, hash) != 0) {
        return send_error(conn, rq, 403, AHL_AWS_INVALID_SIGNATURE,
                          "The provided 'x-amz-content-sha256' header does not match what was "
                          "computed.");
    }
    struct ahl__dicomweb_request dw = {.method = method,
                                       .path = path,
                                       .query = q,
                                       .host = codec_header(conn, "Host"),
                                       .accept = codec_header(conn, MHD_HTTP_HEADER_ACCEPT)};
    int rc = ahl__stow_store(&srv->svc, rq->stow, &dw, resp, &err);
    /* The spool is gone before the client hears the answer. */
    ahl__stow_free(rq->stow);
    rq->stow = NULL;
    if (rc < 0)
        return send_err(conn, rq, &err);
    return send_buffer(conn, rq, dw.status, &resp->raw, resp->content_type, NULL, NULL);
}

/* GET or HEAD /health: whether the store can be read, in a read transaction listing at most one
 * data store. The answer names no resource, count or version: it is public. */
static int health_seen(void *ctx, const struct ahl_datastore_rec *rec)
{
    (void)ctx;
    (void)rec;
    return 0;
}

static enum MHD_Result send_health(struct MHD_Connection *conn, struct request *rq,
                                   const char *method)
{
    struct ahl_buf b;
    struct ahl_store_tx *tx = NULL;
    int rc, status = 200;

    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        return send_error(conn, rq, 405, AHL_AWS_VALIDATION, "/health answers GET and HEAD only");
    }
    ahl_buf_init(&b, 256);
    rc = ahl_store_begin(rq->srv->svc.store, false, &tx);
    if (rc == 0)
        rc = ahl_store_datastore_list(tx, NULL, NULL, 1, health_seen, NULL);
    ahl_store_rollback(tx);
    if (rc < 0) {
        ahl_error("request %s: health: the store cannot be read: %s", rq->request_id,
                  ahl_strerror(rc));
        status = 503;
        note_error(rq, "Unavailable", "the store cannot be read");
        ahl_buf_adds(&b, "{\"status\":\"unavailable\",\"reason\":\"the store cannot be read\"}");
    } else {
        ahl_buf_adds(&b, "{\"status\":\"ok\"}");
    }
    struct MHD_Response *r;
    size_t len;
    char *data = ahl_buf_detach(&b, &len);
    if (!data)
        return MHD_NO;
    if (!(r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE))) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return queue(conn, rq, status, r, "application/json", NULL, NULL);
}

static enum MHD_Result handle(struct MHD_Connection *conn, struct request *rq, const char *method)
{
    struct ahl_api_server *srv = rq->srv;
    struct ahl_err err;
    char body_hash[AHL_SHA256_HEX_LEN + 1];
    const char *q = strchr(rq->target, '?');
    size_t path_len = q ? (size_t)(q - rq->target) : strlen(rq->target);
    char *path = strndup(rq->target, path_len);
    json_t *input = NULL;
    struct ahl_api_resp resp = {.fd = -1};
    enum MHD_Result ret;
    enum ahl_op_id op;

    ahl_err_clear(&err);
    ahl_buf_init(&resp.raw, AHL_BUF_UNLIMITED);
    if (!path)
        return MHD_NO;
    if (q)
        q++;

    if (rq->viewer) { /* public files: no authentication (admit decided) */
        rq->op_name = "Viewer";
        ret = rq->early.status ? send_early(conn, rq) : send_viewer(conn, rq, method, path);
        goto out;
    }
    if (rq->health) { /* public, no data (admit decided) */
        rq->op_name = "Health";
        ret = rq->early.status ? send_early(conn, rq) : send_health(conn, rq, method);
        goto out;
    }

    /* The operation is known before authentication only so that the log line can name it. */
    struct ahl_err route_err;
    bool dicomweb = ahl__dicomweb_path(path);
    bool diff = !dicomweb && ahl__diff_path(path);
    int route_rc = dicomweb || diff ? 0 : ahl_api_route(method, path, &op, &route_err);
    if (dicomweb)
        rq->op_name = "DICOMweb";
    else if (diff)
        rq->op_name = "VersionDiff";
    else if (route_rc == 0)
        rq->op_name = ahl_model_ops[op].name;

    /* 1. Authentication, finished: what the headers could not prove is proved with the body. */
    if (rq->early.status) {
        ret = send_early(conn, rq);
        goto out;
    }
    if (rq->stow) {
        ret = finish_stow(conn, rq, method, path, q, &resp);
        goto out;
    }
    if (rq->body_too_big) {
        ret = send_error(conn, rq, 400, AHL_AWS_VALIDATION,
                         "The request body is larger than the limit of 1048576 bytes");
        goto out;
    }
    ahl_sha256_hex(rq->body.data, rq->body.len, body_hash);
    if (!rq->authenticated) {
        struct ahl_sigv4_request sreq = sigv4_request(conn, method, rq->target);
        sreq.body_sha256_hex = body_hash;
        struct ahl_sigv4_result sres;
        if (ahl_sigv4_verify(&srv->verifier, &sreq, ahl_wall_ms() / 1000, &sres, &err, NULL) < 0) {
            const char *type = ahl_api_auth_error_type(&err);
            ret = send_error(conn, rq, ahl_api_error_status(type), type, err.msg);
            goto out;
        }
    } else if (rq->body_hash_to_check[0] && strcasecmp(rq->body_hash_to_check, body_hash) != 0) {
        ret = send_error(conn, rq, 403, AHL_AWS_INVALID_SIGNATURE,
                         "The provided 'x-amz-content-sha256' header does not match what was "
                         "computed.");
        goto out;
    }

    if (dicomweb) { /* DICOMweb is not in the service model: its own handler (dicomweb.c) */
        struct ahl__dicomweb_request dw = {.method = method,
                                           .path = path,
                                           .query = q,
                                           .host = codec_header(conn, "Host"),
                                           .accept = codec_header(conn, MHD_HTTP_HEADER_ACCEPT),
                                           .accept_encoding =
                                               codec_header(conn, MHD_HTTP_HEADER_ACCEPT_ENCODING)};
        if (ahl__dicomweb_serve(&srv->svc, &dw, &resp, &err) < 0)
            ret = send_err(conn, rq, &err);
        else
            ret = send_resp(conn, rq, dw.status, &resp);
        goto out;
    }

    if (diff) { /* beyond the service model (ops_diff.c) */
        if (ahl__diff_serve(&srv->svc, method, path, q, &resp, &err) < 0)
            ret = send_err(conn, rq, &err);
        else
            ret = send_resp(conn, rq, 200, &resp);
        goto out;
    }

    /* 2. Routing (already done for the log line), decoding, validation. */
    if (route_rc < 0) {
        ret = send_err(conn, rq, &route_err);
        goto out;
    }
    struct ahl_api_http http = {
        .method = method,
        .path = path,
        .query = q,
        .body = rq->body.data,
        .body_len = rq->body.len,
        .header = codec_header,
        .header_ctx = conn,
    };
    if (ahl_api_decode(op, &http, &input, &err) < 0) {
        ret = send_err(conn, rq, &err);
        goto out;
    }
    /* The body has been decoded: its memory goes back to the budget now, not when the response
     * has been sent to a client that may read it slowly. */
    ahl_buf_release(&rq->body);
    if (rq->reserved) {
        budget_release(srv, rq->reserved);
        rq->reserved = 0;
    }

    /* 3. The operation. */
    resp.accept = codec_header(conn, MHD_HTTP_HEADER_ACCEPT);
    resp.json = json_object();
    if (!resp.json) {
        ahl_fail(&err, AHL_ENOMEM, "out of memory");
        ret = send_err(conn, rq, &err);
        goto out;
    }
    if (ahl__api_handlers[op](&srv->svc, input, &resp, &err) < 0) {
        ret = send_err(conn, rq, &err);
        goto out;
    }
    if (resp.content_type) {
        ret = send_resp(conn, rq, ahl_model_ops[op].status, &resp);
    } else {
        struct ahl_buf out;
        ahl_buf_init(&out, AHL_BUF_UNLIMITED);
        if (ahl_json_write(resp.json, &out) < 0) {
            ahl_buf_release(&out);
            ahl_fail(&err, AHL_ENOMEM, "could not encode the response");
            ret = send_err(conn, rq, &err);
            goto out;
        }
        ret = send_buffer(conn, rq, ahl_model_ops[op].status, &out, "application/json", NULL, NULL);
        ahl_buf_release(&out);
    }
out:
    if (resp.fd >= 0)
        close(resp.fd);
    ahl_frame_hold_release(resp.hold);
    json_decref(resp.json);
    ahl_buf_release(&resp.raw);
    json_decref(input);
    free(path);
    return ret;
}

/* The framing of the body, from the headers: exactly one Content-Length, or chunked encoding
 * without one (RFC 9112 6.3: both together, or two lengths, are how requests are smuggled past a
 * proxy). 0 with *length (UINT64_MAX: chunked, unknown), or -1 with the reason in why. */
struct framing_scan {
    int lengths, chunked, other_coding;
    const char *length;
};

static enum MHD_Result framing_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct framing_scan *f = cls;
    (void)kind;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        f->lengths++;
        f->length = value;
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        if (value && !strcasecmp(value, "chunked"))
            f->chunked++;
        else
            f->other_coding = 1;
    }
    return MHD_YES;
}

static int body_framing(struct MHD_Connection *conn, uint64_t *length, const char **why)
{
    struct framing_scan f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_iter, &f);
    *length = 0;
    if (f.lengths > 1) {
        *why = "The request has more than one Content-Length header";
        return -1;
    }
    if (f.lengths && (f.chunked || f.other_coding)) {
        *why = "The request has both Content-Length and Transfer-Encoding";
        return -1;
    }
    if (f.other_coding || f.chunked > 1) {
        *why = "The only Transfer-Encoding accepted is a single chunked";
        return -1;
    }
    if (f.chunked) {
        *length = UINT64_MAX;
        return 0;
    }
    if (f.lengths) {
        const char *v = f.length ? f.length : "";
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (!*v || *end || errno || *v == '-' || *v == '+' || *v == ' ') {
            *why = "The request's Content-Length is not a number";
            return -1;
        }
        *length = n;
    }
    return 0;
}

/* The token of an Authorization header in the Bearer scheme (RFC 6750 2.1; the scheme's name in
 * any case), or NULL. */
static const char *bearer_token(const char *authz)
{
    if (!authz || strncasecmp(authz, "Bearer", 6) != 0 || (authz[6] != ' ' && authz[6] != '\t'))
        return NULL;
    authz += 6;
    while (*authz == ' ' || *authz == '\t')
        authz++;
    return authz;
}

/* The refusal of a bearer token, with RFC 6750's challenge; the description is cut to the
 * characters the header's quoted string allows. */
static void set_bearer_early(struct request *rq, int status, const char *type, const char *error,
                             const char *message)
{
    char desc[400];
    size_t i = 0;
    for (; message[i] && i + 1 < sizeof desc; i++) {
        unsigned char c = (unsigned char)message[i];
        desc[i] = c < 0x20 || c > 0x7e || c == '\\' ? '?' : c == '"' ? '\'' : (char)c;
    }
    desc[i] = '\0';
    set_early(rq, status, type, message);
    snprintf(rq->early.challenge, sizeof rq->early.challenge,
             "Bearer realm=\"ahilite\", error=\"%s\", error_description=\"%s\"", error, desc);
}

/* Authentication by an OIDC bearer token (docs/dicomweb.md#bearer-tokens): DICOMweb resources
 * only, and the token's scope decides the methods. 0 when admitted, or -1 with rq->early set.
 * The token itself is never logged nor quoted. */
static int admit_bearer(struct MHD_Connection *conn, struct request *rq, const char *method,
                        const char *token)
{
    struct ahl_api_server *srv = rq->srv;
    struct ahl_oidc_claims claims;
    struct ahl_err err;
    char *path = strndup(rq->target, strcspn(rq->target, "?"));
    bool dicomweb = path && ahl__dicomweb_path(path);
    free(path);

    if (!dicomweb) {
        /* What AWS answers: the API takes SigV4 alone, and a Bearer header is not SigV4. */
        set_early(rq, ahl_api_error_status(AHL_AWS_INCOMPLETE_SIGNATURE),
                  AHL_AWS_INCOMPLETE_SIGNATURE,
                  "Authorization header uses the Bearer scheme, which is accepted on DICOMweb "
                  "resources only (/datastore/{id}/studies..., /datastore/{id}/series...); "
                  "HealthImaging API operations are signed with AWS4-HMAC-SHA256");
        return -1;
    }
    if (sigv4_header(conn, "authorization", 1)) {
        set_early(rq, 400, AHL_AWS_VALIDATION,
                  "The request has more than one Authorization header");
        return -1;
    }
    if (!srv->oidc) {
        set_early(rq, 403, AHL_AWS_ACCESS_DENIED,
                  "Bearer tokens are not accepted: the server was started without --oidc-jwks, "
                  "--oidc-issuer and --oidc-audience; sign the request with AWS Signature "
                  "Version 4");
        return -1;
    }
    ahl_err_clear(&err);
    if (ahl_oidc_verify(srv->oidc, token, strlen(token), ahl_wall_ms() / 1000, &claims, &err) < 0) {
        if (err.code != AHL_EAUTH)
            set_early(rq, 500, AHL_AWS_INTERNAL, err.msg);
        else
            set_bearer_early(rq, 401, AHL_AWS_UNAUTHORIZED, "invalid_token", err.msg);
        return -1;
    }
    if (claims.access == AHL_OIDC_ACCESS_NONE) {
        set_bearer_early(rq, 403, AHL_AWS_ACCESS_DENIED, "insufficient_scope",
                         "The token's scope holds neither " AHL_OIDC_SCOPE_READ
                         " nor " AHL_OIDC_SCOPE_WRITE);
        return -1;
    }
    if (claims.access == AHL_OIDC_ACCESS_READ && strcmp(method, "GET") && strcmp(method, "HEAD")) {
        char why[200];
        snprintf(why, sizeof why,
                 "The token's scope " AHL_OIDC_SCOPE_READ
                 " allows GET and HEAD only; %.16s needs " AHL_OIDC_SCOPE_WRITE,
                 method);
        set_bearer_early(rq, 403, AHL_AWS_ACCESS_DENIED, "insufficient_scope", why);
        return -1;
    }
    return 0;
}

/* The first call of a request: its headers are complete, nothing of the body is read. Decides
 * whether the body will be read at all. */
static void admit(struct MHD_Connection *conn, struct request *rq, const char *method)
{
    struct ahl_api_server *srv = rq->srv;
    const char *why;
    uint64_t length;
    struct ahl_err err;

    if (body_framing(conn, &length, &why) < 0) {
        rq->close_after = 1;
        set_early(rq, 400, AHL_AWS_VALIDATION, why);
        return;
    }
    if (srv->viewer.root >= 0 && ahl__viewer_path(rq->target)) {
        rq->viewer = 1;
        if (length) {
            set_early(rq, 400, AHL_AWS_VALIDATION, "The viewer's files take no request body");
            rq->close_after = length > REJECT_DRAIN;
        }
        return;
    }
    const char *q = strchr(rq->target, '?');
    size_t path_len = q ? (size_t)(q - rq->target) : strlen(rq->target);
    if (path_len == strlen(HEALTH_PATH) && !memcmp(rq->target, HEALTH_PATH, path_len)) {
        rq->health = 1; /* no HealthImaging or DICOMweb path is /health */
        if (length) {
            set_early(rq, 400, AHL_AWS_VALIDATION, "/health takes no request body");
            rq->close_after = length > REJECT_DRAIN;
        }
        return;
    }
    bool stow = ahl__stow_request(method, rq->target, path_len);
    rq->is_stow = stow;
    /* A bearer token proves everything from the headers; the body is only read (below). */
    const char *token = bearer_token(sigv4_header(conn, "authorization", 0));
    if (token) {
        if (admit_bearer(conn, rq, method, token) < 0) {
            if (length > REJECT_DRAIN)
                rq->close_after = 1;
            return;
        }
        rq->authenticated = 1;
        if (stow) {
            admit_stow(conn, rq, method, path_len, length, 1);
            return;
        }
        goto body;
    }
    if (stow) {
        admit_stow(conn, rq, method, path_len, length, 0);
        return;
    }
    const char *x = sigv4_header(conn, "x-amz-content-sha256", 0);
    struct ahl_sigv4_request sreq = sigv4_request(conn, method, rq->target);
    /* Without a body its hash is known now; with x-amz-content-sha256 the signature covers the
     * hash the body must have, checked once it is in. Otherwise only the credentials can be. */
    if (length == 0)
        sreq.body_sha256_hex = AHL_SIGV4_EMPTY_SHA256;
    else if (!x)
        sreq.credentials_only = 1;
    struct ahl_sigv4_result sres;
    ahl_err_clear(&err);
    if (ahl_sigv4_verify(&srv->verifier, &sreq, ahl_wall_ms() / 1000, &sres, &err, NULL) < 0) {
        const char *type = ahl_api_auth_error_type(&err);
        set_early(rq, ahl_api_error_status(type), type, err.msg);
        if (length > REJECT_DRAIN)
            rq->close_after = 1;
        return;
    }
    rq->authenticated = !sreq.credentials_only;
    memcpy(rq->body_hash_to_check, sres.body_hash_to_check, sizeof rq->body_hash_to_check);
body:
    if (length == 0)
        return;
    if (length > AHL_API_MAX_BODY && length != UINT64_MAX) {
        /* Dropped as it arrives (up to MAX_DISCARD), then answered with a ValidationException. */
        rq->body_too_big = 1;
        if (length > MAX_DISCARD)
            rq->close_after = 1;
        return;
    }
    size_t want = length == UINT64_MAX ? AHL_API_MAX_BODY : (size_t)length;
    if (!budget_reserve(srv, want)) {
        rq->close_after = 1;
        set_early(rq, 429, AHL_AWS_THROTTLING,
                  "The server is receiving too many request bodies at once; retry shortly");
        return;
    }
    rq->reserved = want;
    if (length != UINT64_MAX && ahl_buf_reserve(&rq->body, want) < 0)
        rq->body_too_big = 1;
}

static struct conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct ahl_api_server *srv = cls;
    struct request *rq = calloc(1, sizeof *rq);
    if (!rq)
        return NULL;
    rq->srv = srv;
    rq->target = strdup(uri ? uri : "/");
    rq->start_ns = ahl_mono_ns();
    ahl_buf_init(&rq->body, AHL_API_MAX_BODY);
    make_request_id(rq->request_id);
    if ((rq->conn = conn_of(conn))) {
        pthread_mutex_lock(&srv->conns_lock);
        rq->conn->request_line_at = rq->start_ns;
        pthread_mutex_unlock(&srv->conns_lock);
    }
    return rq;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    struct request *rq = *con_cls;
    (void)cls;
    (void)url;
    (void)version;
    if (!rq || !rq->target)
        return MHD_NO; /* out of memory in the URI logger */
    if (!rq->started) {
        rq->started = 1;
        if (rq->conn) {
            pthread_mutex_lock(&rq->srv->conns_lock);
            rq->conn->in_request = 1;
            rq->conn->request_line_at = 0;
            pthread_mutex_unlock(&rq->srv->conns_lock);
        }
        admit(conn, rq, method);
        /* Turned away with a body too large to drain: answer now; the connection closes. */
        if (rq->early.status && rq->close_after)
            return send_early(conn, rq);
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        rq->body_seen += n;
        if (rq->is_stow)
            return stow_data(rq, upload_data, n);
        if (rq->early.status)
            return rq->body_seen > REJECT_DRAIN ? MHD_NO : MHD_YES;
        if (!rq->body_too_big && ahl_buf_add(&rq->body, upload_data, n) < 0) {
            rq->body_too_big = 1;
            ahl_buf_release(&rq->body);
        }
        /* Dropping bytes costs little, but not forever: past this, close the connection. */
        return rq->body_seen > MAX_DISCARD ? MHD_NO : MHD_YES;
    }
    return handle(conn, rq, method);
}

/* The client's numeric address ("-" when unknown). */
static void client_address(struct MHD_Connection *conn, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        conn ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS) : NULL;
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    socklen_t len =
        sa && sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
        getnameinfo(sa, len, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, cap, "-");
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct ahl_api_server *srv = cls;
    struct request *rq = *con_cls;
    if (!rq)
        return;
    double ms = (double)(ahl_mono_ns() - rq->start_ns) / 1e6;
    char client[INET6_ADDRSTRLEN + 8];
    client_address(conn, client, sizeof client);
    if (rq->status >= 400)
        ahl_log(rq->status >= 500 ? AHL_LOG_ERROR : AHL_LOG_WARN, "%s %d %.2fms %s %s%s%s%s%s",
                rq->op_name ? rq->op_name : "-", rq->status, ms, rq->request_id, client,
                rq->err_type ? " " : "", rq->err_type ? rq->err_type : "", rq->err_type ? ": " : "",
                rq->err_type ? rq->err_msg : "");
    else if (rq->status)
        ahl_info("%s %d %.2fms %s %s", rq->op_name ? rq->op_name : "-", rq->status, ms,
                 rq->request_id, client);
    else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        ahl_info("%s aborted(%d) %.2fms %s %s", rq->op_name ? rq->op_name : "-", (int)toe, ms,
                 rq->request_id, client);
    if (rq->conn) {
        pthread_mutex_lock(&srv->conns_lock);
        rq->conn->in_request = 0;
        rq->conn->request_line_at = 0;
        rq->conn->waiting_since = ahl_mono_ns();
        pthread_mutex_unlock(&srv->conns_lock);
    }
    if (rq->reserved)
        budget_release(srv, rq->reserved);
    ahl__stow_free(rq->stow);
    if (rq->spool_reserved)
        spool_release(srv, rq);
    ahl_buf_release(&rq->body);
    free(rq->target);
    free(rq);
    *con_cls = NULL;
}

/* ---- connections and their deadlines -------------------------------------------------------- */

static void notify_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    struct ahl_api_server *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            return; /* not watched by the reaper; libmicrohttpd's idle timeout still applies */
        c->fd = ci ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
        if (c->fd < 0) {
            free(c);
            return;
        }
        c->waiting_since = ahl_mono_ns();
        pthread_mutex_lock(&srv->conns_lock);
        c->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = c;
        srv->conns = c;
        pthread_mutex_unlock(&srv->conns_lock);
        *socket_context = c;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct conn *c = *socket_context;
        if (!c)
            return;
        pthread_mutex_lock(&srv->conns_lock);
        if (c->prev)
            c->prev->next = c->next;
        else
            srv->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        pthread_mutex_unlock(&srv->conns_lock);
        close(c->fd);
        free(c);
        *socket_context = NULL;
    }
}

/* Shuts down connections past their deadline: headers still incomplete header_timeout after the
 * request line, or nothing asked idle_timeout after the last answer (or the accept). shutdown()
 * wakes the connection's poll() with end-of-file, and libmicrohttpd closes it as if the client
 * had. */
static void *reaper_main(void *arg)
{
    struct ahl_api_server *srv = arg;
    uint64_t last_report = 0;
    unsigned slow_headers = 0, idle = 0;
    pthread_mutex_lock(&srv->conns_lock);
    while (!srv->stopping) {
        struct timespec until = ahl_deadline(CLOCK_REALTIME, REAPER_PERIOD_MS * 1000);
        pthread_cond_timedwait(&srv->reaper_wake, &srv->conns_lock, &until);
        uint64_t now = ahl_mono_ns();
        for (struct conn *c = srv->conns; c && !srv->stopping; c = c->next) {
            if (c->shut || c->in_request)
                continue;
            int late_headers =
                c->request_line_at && now - c->request_line_at > srv->header_timeout_ns;
            int late_request = !c->request_line_at && now - c->waiting_since > srv->idle_timeout_ns;
            if (!late_headers && !late_request)
                continue;
            shutdown(c->fd, SHUT_RDWR);
            c->shut = 1;
            if (late_headers)
                slow_headers++;
            else
                idle++;
        }
        if ((slow_headers || idle) && now - last_report > 10ull * 1000000000ull) {
            ahl_warn("http: closed %u connection(s) whose request headers took over %llus and %u "
                     "idle over %llus",
                     slow_headers, (unsigned long long)(srv->header_timeout_ns / 1000000000ull),
                     idle, (unsigned long long)(srv->idle_timeout_ns / 1000000000ull));
            slow_headers = idle = 0;
            last_report = now;
        }
    }
    pthread_mutex_unlock(&srv->conns_lock);
    return NULL;
}

/* Keeps paths and query values exactly as received: routing, signing and the codec decode them
 * themselves (MHD would turn %2F into '/' before routing). */
static size_t no_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

/* libmicrohttpd's messages, at most LOG_BURST a second: a flood of bad connections must not
 * become a flood of log lines (disk, and the operator's attention). What is held back is
 * counted and reported with the next line let through. */
#define LOG_BURST 20

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t window;
    static unsigned in_window, held_back;
    char line[512];
    (void)cls;
    uint64_t now_s = ahl_mono_ns() / 1000000000ull;
    unsigned dropped = 0;
    pthread_mutex_lock(&lock);
    if (now_s != window) {
        window = now_s;
        in_window = 0;
    }
    int pass = in_window < LOG_BURST;
    if (pass) {
        in_window++;
        dropped = held_back;
        held_back = 0;
    } else {
        held_back++;
    }
    pthread_mutex_unlock(&lock);
    if (!pass)
        return;
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    if (dropped)
        ahl_warn("http: %s (and %u more messages held back)", line, dropped);
    else
        ahl_warn("http: %s", line);
}

/* ---- start / stop -------------------------------------------------------------------------- */

/* Each connection holds up to three descriptors (its socket, the reaper's duplicate, a file being
 * sent), and the store, frame files and import jobs need their own: the connection limit must fit
 * the process's descriptor limit, raised to its hard limit when that helps. */
static int fit_connection_limit(unsigned *max_conns, struct ahl_err *err)
{
    struct rlimit rl;
    const rlim_t reserve = 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    rlim_t need = (rlim_t)*max_conns * 3 + reserve;
    if (rl.rlim_cur < need && rl.rlim_cur != RLIM_INFINITY) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        struct rlimit raised = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = want;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        if (rl.rlim_cur < reserve + 3 * 16)
            return ahl_fail(err, AHL_EINVAL,
                            "the open-file limit (%llu) is too low to serve; raise ulimit -n",
                            (unsigned long long)rl.rlim_cur);
        unsigned fit = (unsigned)((rl.rlim_cur - reserve) / 3);
        ahl_warn("http: the open-file limit (%llu) allows %u connections, not %u; raise ulimit -n "
                 "for more",
                 (unsigned long long)rl.rlim_cur, fit, *max_conns);
        *max_conns = fit;
    }
    return 0;
}

/* Opens the viewer's directory, which must hold an index.html (a build of the viewer). */
static int open_viewer(struct ahl__viewer *v, const struct ahl_api_config *cfg, struct ahl_err *err)
{
    struct stat st;
    int fd;
    if (ahl_str_copy(v->datastore, sizeof v->datastore,
                     cfg->viewer_datastore ? cfg->viewer_datastore : "") < 0)
        return ahl_fail(err, AHL_EINVAL, "the viewer's data store id is too long");
    if (cfg->viewer_oidc_client_id && !cfg->oidc_issuer)
        return ahl_fail(err, AHL_EINVAL, "the viewer's sign-in needs the OpenID issuer");
    if (ahl_str_copy(v->oidc_client_id, sizeof v->oidc_client_id,
                     cfg->viewer_oidc_client_id ? cfg->viewer_oidc_client_id : "") < 0 ||
        ahl_str_copy(v->oidc_issuer, sizeof v->oidc_issuer,
                     cfg->viewer_oidc_client_id ? cfg->oidc_issuer : "") < 0)
        return ahl_fail(err, AHL_EINVAL, "the viewer's OpenID issuer or client id is too long");
    v->root = open(cfg->viewer_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (v->root < 0)
        return ahl_fail(err, AHL_EINVAL, "cannot open the viewer's directory %s: %s",
                        cfg->viewer_dir, strerror(errno));
    if (ahl__static_open(v->root, "index.html", &fd, &st) < 0)
        return ahl_fail(err, AHL_EINVAL,
                        "%s has no index.html (a regular file, not a link): it is not a build of "
                        "the viewer",
                        cfg->viewer_dir);
    close(fd);
    return 0;
}

int ahl_api_server_start(const struct ahl_api_config *cfg, struct ahl_meta *meta,
                         struct ahl_api_server **out, struct ahl_err *err)
{
    struct ahl_api_server *srv = calloc(1, sizeof *srv);
    struct addrinfo hints = {0}, *ai = NULL;
    char port[8];
    int rc;

    *out = NULL;
    if (!srv)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    srv->viewer.root = -1;
    srv->svc.meta = meta;
    srv->svc.store = ahl_meta_store(meta);
    if (ahl_str_copy(srv->svc.region, sizeof srv->svc.region, cfg->region) < 0 ||
        ahl_str_copy(srv->svc.account_id, sizeof srv->svc.account_id, cfg->account_id) < 0 ||
        ahl_str_copy(srv->svc.s3_root, sizeof srv->svc.s3_root, cfg->s3_root) < 0 ||
        ahl_str_copy(srv->svc.s3_endpoint, sizeof srv->svc.s3_endpoint, cfg->s3_endpoint) < 0) {
        rc = ahl_fail(err, AHL_EINVAL, "region, account id or S3 setting too long");
        goto fail;
    }
    if (cfg->credentials)
        srv->creds = *cfg->credentials;
    if (cfg->viewer_dir && (rc = open_viewer(&srv->viewer, cfg, err)) < 0)
        goto fail;
    srv->svc.job_submitted = cfg->job_submitted;
    srv->svc.job_ctx = cfg->job_ctx;
    srv->svc.job_max_concurrent =
        cfg->job_max_concurrent ? cfg->job_max_concurrent : AHL_API_JOB_MAX_CONCURRENT;
    if (cfg->dicomweb_cache != AHL_API_NO_DICOMWEB_CACHE &&
        ahl__dwcache_new(cfg->dicomweb_cache ? cfg->dicomweb_cache : AHL_API_DEFAULT_DICOMWEB_CACHE,
                         &srv->svc.dw_cache) < 0) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto fail;
    }
    if (cfg->data_dir) {
        char root[1100];
        if (ahl_str_copy(srv->svc.data_dir, sizeof srv->svc.data_dir, cfg->data_dir) < 0) {
            rc = ahl_fail(err, AHL_EINVAL, "data directory path too long");
            goto fail;
        }
        /* Responses spooled to disk (spool.c: metadata, DICOMweb retrieve) go to DATA_DIR/tmp. */
        snprintf(root, sizeof root, "%s/tmp", cfg->data_dir);
        if (mkdir(root, 0700) < 0 && errno != EEXIST) {
            rc = ahl_fail(err, AHL_EIO, "cannot create %s: %s", root, strerror(errno));
            goto fail;
        }
        ahl__stow_sweep(cfg->data_dir);
        if ((rc = ahl_framestore_open_dir(&srv->svc.frames, cfg->data_dir, cfg->blob_store,
                                          cfg->blob_endpoint, false, err)) < 0)
            goto fail;
        if (cfg->frame_cache != AHL_API_NO_FRAME_CACHE &&
            (rc = ahl_framestore_cache_open(&srv->svc.frames,
                                            cfg->frame_cache ? cfg->frame_cache
                                                             : AHL_API_DEFAULT_FRAME_CACHE)) < 0) {
            ahl_fail(err, rc, "cannot keep frames in memory for %s: %s", srv->svc.frames.root,
                     ahl_strerror(rc));
            goto fail;
        }
        ahl_import_budget_init(&srv->svc.stow_budget, 0);
        pthread_mutex_init(&srv->svc.stow_mu, NULL);
        srv->svc.frames_ready = 1;
    }
    struct ahl_sigv4_config scfg = {
        .region = srv->svc.region,
        .service = "medical-imaging",
        .uri_mode = AHL_SIGV4_URI_DOUBLE,
        .max_skew_s = 900,
        .allow_unsigned_payload = 1,
        .allow_streaming_payload = 0,
        .secret = lookup_secret,
        .secret_ctx = &srv->creds,
    };
    if ((rc = ahl_sigv4_verifier_init(&srv->verifier, &scfg)) < 0) {
        ahl_fail(err, rc, "cannot set up SigV4 verification");
        goto fail;
    }
    srv->verifier_ready = 1;
    if (cfg->oidc_jwks) {
        struct ahl_oidc_config ocfg = {.jwks_path = cfg->oidc_jwks,
                                       .issuer = cfg->oidc_issuer,
                                       .audience = cfg->oidc_audience};
        if ((rc = ahl_oidc_open(&ocfg, &srv->oidc, err)) < 0)
            goto fail;
    }

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof port, "%u", (unsigned)cfg->port);
    if ((rc = getaddrinfo(cfg->listen_host, port, &hints, &ai)) != 0) {
        rc = ahl_fail(err, AHL_EINVAL, "cannot resolve listen address %s: %s", cfg->listen_host,
                      gai_strerror(rc));
        goto fail;
    }
    unsigned workers = cfg->workers;
    if (workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n > 0 ? (unsigned)n * AHL_API_THREADS_PER_CPU : AHL_API_MIN_THREADS;
        if (workers < AHL_API_MIN_THREADS)
            workers = AHL_API_MIN_THREADS;
    }
    unsigned max_conns =
        cfg->max_connections ? cfg->max_connections : AHL_API_DEFAULT_MAX_CONNECTIONS;
    unsigned per_ip = cfg->no_per_ip_limit          ? 0
                      : cfg->max_connections_per_ip ? cfg->max_connections_per_ip
                                                    : AHL_API_DEFAULT_MAX_CONNECTIONS_PER_IP;
    unsigned header_s =
        cfg->header_timeout_s ? cfg->header_timeout_s : AHL_API_DEFAULT_HEADER_TIMEOUT_S;
    unsigned idle_s = cfg->idle_timeout_s ? cfg->idle_timeout_s : AHL_API_DEFAULT_IDLE_TIMEOUT_S;
    srv->header_timeout_ns = (uint64_t)header_s * 1000000000ull;
    srv->idle_timeout_ns = (uint64_t)idle_s * 1000000000ull;
    srv->max_body_memory =
        cfg->max_body_memory ? cfg->max_body_memory : AHL_API_DEFAULT_MAX_BODY_MEMORY;
    srv->max_stow_spool =
        cfg->max_stow_spool ? cfg->max_stow_spool : AHL_API_DEFAULT_MAX_STOW_SPOOL;
    if ((rc = fit_connection_limit(&max_conns, err)) < 0)
        goto fail;
    /* Request bodies are allocated whole from their Content-Length. A fixed mmap threshold makes
     * every allocation of 4 MiB or more its own mapping, returned to the system when freed:
     * glibc's adaptive threshold would otherwise rise after the first free and keep later bodies
     * in arenas that never shrink, so RSS would stay at its peak after a burst. Fixing it also
     * fixes the trim threshold at its default of 128 KiB, and then every free of a 64 KiB
     * buffer (a frame's read block) shrank a thread's heap with madvise: TLB shootdowns and
     * page faults that cost GetImageFrame ~0.25 ms each. The heaps keep up to 16 MiB free.
     * The threshold was 256 KiB; but OpenJPH takes 1 MiB blocks for every frame it encodes or
     * decodes, and as mappings their page faults cost import jobs 40% of their CPU. */
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
    pthread_mutex_init(&srv->budget_lock, NULL);
    pthread_mutex_init(&srv->conns_lock, NULL);
    pthread_cond_init(&srv->reaper_wake, NULL);
    srv->locks_ready = 1;
    if (pthread_create(&srv->reaper, NULL, reaper_main, srv) != 0) {
        rc = ahl_fail(err, AHL_EIO, "cannot start the connection reaper thread");
        goto fail;
    }
    srv->reaper_running = 1;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The logger goes first: libmicrohttpd reports problems with the options after it through
     * it, and warns on stderr when it comes later. A connection's memory (its headers, and the
     * buffer bodies are read through) is 32 KiB: libmicrohttpd zeroes all of it after every
     * request, which at 128 KiB cost ~3 µs, 5% of a small request's server time. */
    srv->daemon = MHD_start_daemon(
        flags, cfg->port, NULL, NULL, access_handler, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, workers,
        MHD_OPTION_URI_LOG_CALLBACK, uri_logger, srv, MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, notify_connection, srv, MHD_OPTION_UNESCAPE_CALLBACK,
        no_unescape, srv, MHD_OPTION_CONNECTION_LIMIT, max_conns,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_CONNECTION_TIMEOUT, idle_s,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)32 * 1024, MHD_OPTION_END);
    if (!srv->daemon) {
        rc = ahl_fail(err, AHL_EIO, "cannot listen on %s:%u (address in use?)", cfg->listen_host,
                      (unsigned)cfg->port);
        goto fail;
    }
    ahl_info("http: at most %u connections, %u per client address%s; headers within %us, idle "
             "connections closed after %us; request bodies held at once: at most %zu MiB",
             max_conns, per_ip, per_ip ? "" : " (no limit)", header_s, idle_s,
             srv->max_body_memory >> 20);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->port;
    freeaddrinfo(ai);
    *out = srv;
    return 0;
fail:
    if (ai)
        freeaddrinfo(ai);
    ahl_api_server_stop(srv);
    return rc;
}

uint16_t ahl_api_server_port(const struct ahl_api_server *srv)
{
    return srv->port;
}

void ahl_api_server_stop(struct ahl_api_server *srv)
{
    if (!srv)
        return;
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    if (srv->reaper_running) {
        pthread_mutex_lock(&srv->conns_lock);
        srv->stopping = 1;
        pthread_cond_signal(&srv->reaper_wake);
        pthread_mutex_unlock(&srv->conns_lock);
        pthread_join(srv->reaper, NULL);
    }
    if (srv->locks_ready) {
        pthread_mutex_destroy(&srv->budget_lock);
        pthread_mutex_destroy(&srv->conns_lock);
        pthread_cond_destroy(&srv->reaper_wake);
    }
    if (srv->verifier_ready)
        ahl_sigv4_verifier_release(&srv->verifier);
    ahl_oidc_close(srv->oidc);
    if (srv->viewer.root >= 0)
        close(srv->viewer.root);
    if (srv->svc.frames_ready) {
        ahl__stow_close_importers(&srv->svc);
        pthread_mutex_destroy(&srv->svc.stow_mu);
        ahl_import_budget_release(&srv->svc.stow_budget);
    }
    ahl_framestore_close(&srv->svc.frames);
    ahl__dwcache_free(srv->svc.dw_cache);
    free(srv);
}
