/* The HTTP front of the API: libmicrohttpd, SigV4 on every request, dispatch, one log line each.
 *
 * This is the only file that includes microhttpd.h. A request's life:
 *   1. the URI log callback allocates our per-request state and keeps the raw request target, so
 *      the path is routed and signed exactly as it came (an ARN label's %2F stays one segment);
 *   2. the access handler collects the body, up to AHL_API_MAX_BODY bytes (more is read and
 * dropped, then answered with a ValidationException);
 *   3. on the last call: SigV4 verification (the body's SHA-256 computed here, since botocore sends
 *      no x-amz-content-sha256), routing, decoding + validation, the operation, the response;
 *   4. the completion callback logs "op status duration" and frees the state.
 * The daemon runs a pool of epoll threads (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL);
 * operations run on them directly, since store calls are short.
 */
#include "api/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api/internal.h"
#include "base/clock.h"
#include "base/codec.h"
#include "base/log.h"
#include "base/sigv4.h"
#include "json/json.h"
#include "base/banned.h"

/* How much of an oversized body is read (and dropped) before the connection is closed. */
#define MAX_DISCARD ((size_t)64 << 20)

struct ahl_api_server {
    struct MHD_Daemon *daemon;
    struct ahl_api_service svc;
    struct ahl_api_credentials creds;
    struct ahl_sigv4_verifier verifier;
    int verifier_ready;
    uint16_t port;
};

struct request {
    struct ahl_api_server *srv;
    char *target; /* raw request target: path?query */
    uint64_t start_ns;
    int started; /* the access handler has seen this request */
    int body_too_big;
    size_t body_seen;
    struct ahl_buf body;
    const char *op_name; /* for the log line */
    int status;
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

/* ---- credentials --------------------------------------------------------------------------- */

static int lookup_secret(void *ctx, const char *access_key, const char *token, char *secret,
                         size_t cap)
{
    const struct ahl_api_credentials *creds = ctx;
    if (token && *token)
        return AHL_EDENIED; /* no session tokens are issued by this server */
    for (size_t i = 0; i < creds->n; i++) {
        if (strcmp(creds->keys[i].access_key, access_key) == 0)
            return ahl_store_strset(secret, cap, creds->keys[i].secret_key);
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
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, "x-amzn-RequestId", rq->request_id);
    if (content_encoding)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, content_encoding);
    if (error_type)
        MHD_add_response_header(r, "x-amzn-ErrorType", error_type);
    rq->status = status;
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, struct request *rq, int status,
                                  const char *type, const char *message)
{
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
    const char *type = err->aws_type ? err->aws_type : ahl_err_default_aws_type(err->code);
    int status = ahl_api_error_status(type);
    if (status >= 500)
        ahl_error("request %s: %s: %s", rq->request_id, type, err->msg);
    return send_error(conn, rq, status, type, err->msg[0] ? err->msg : ahl_strerror(err->code));
}

/* ---- the request pipeline ------------------------------------------------------------------ */

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

    /* The operation is known before authentication only so that the log line can name it. */
    struct ahl_err route_err;
    int route_rc = ahl_api_route(method, path, &op, &route_err);
    if (route_rc == 0)
        rq->op_name = ahl_model_ops[op].name;

    /* 1. Authentication. An oversized body cannot be hashed (it was not kept), so it is refused
     * first, as it would be by a front-end limit. */
    if (rq->body_too_big) {
        ret = send_error(conn, rq, 400, AHL_AWS_VALIDATION,
                         "The request body is larger than the limit of 1048576 bytes");
        goto out;
    }
    ahl_sha256_hex(rq->body.data, rq->body.len, body_hash);
    struct ahl_sigv4_request sreq = {
        .method = method,
        .path = path,
        .path_len = path_len,
        .query = q,
        .query_len = q ? strlen(q) : 0,
        .header = sigv4_header,
        .header_ctx = conn,
        .body_sha256_hex = body_hash,
    };
    struct ahl_sigv4_result sres;
    if (ahl_sigv4_verify(&srv->verifier, &sreq, ahl_now_ms() / 1000, &sres, &err, NULL) < 0) {
        const char *type = err.aws_type ? err.aws_type : AHL_SIGV4_AWS_INVALID;
        ret = send_error(conn, rq, ahl_sigv4_error_status(&err), type, err.msg);
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

    /* 3. The operation. */
    resp.accept = codec_header(conn, MHD_HTTP_HEADER_ACCEPT);
    resp.json = json_object();
    if (!resp.json) {
        ahl_fail(&err, AHL_ENOMEM, AHL_AWS_INTERNAL, "out of memory");
        ret = send_err(conn, rq, &err);
        goto out;
    }
    if (ahl__api_handlers[op](&srv->svc, input, &resp, &err) < 0) {
        ret = send_err(conn, rq, &err);
        goto out;
    }
    if (resp.content_type && resp.fd >= 0) {
        struct MHD_Response *r = MHD_create_response_from_fd64(resp.fd_size, resp.fd);
        if (!r) {
            ret = MHD_NO;
            goto out;
        }
        resp.fd = -1; /* the response owns it now */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp.content_type);
        MHD_add_response_header(r, "x-amzn-RequestId", rq->request_id);
        if (resp.content_encoding)
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, resp.content_encoding);
        rq->status = ahl_model_ops[op].status;
        ret = MHD_queue_response(conn, (unsigned)rq->status, r);
        MHD_destroy_response(r);
    } else if (resp.content_type) {
        ret = send_buffer(conn, rq, ahl_model_ops[op].status, &resp.raw, resp.content_type,
                          resp.content_encoding, NULL);
    } else {
        struct ahl_buf out;
        ahl_buf_init(&out, AHL_BUF_UNLIMITED);
        if (ahl_json_write(resp.json, &out) < 0) {
            ahl_buf_release(&out);
            ahl_fail(&err, AHL_ENOMEM, AHL_AWS_INTERNAL, "could not encode the response");
            ret = send_err(conn, rq, &err);
            goto out;
        }
        ret = send_buffer(conn, rq, ahl_model_ops[op].status, &out, "application/json", NULL, NULL);
        ahl_buf_release(&out);
    }
out:
    if (resp.fd >= 0)
        close(resp.fd);
    json_decref(resp.json);
    ahl_buf_release(&resp.raw);
    json_decref(input);
    free(path);
    return ret;
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)conn;
    struct request *rq = calloc(1, sizeof *rq);
    if (!rq)
        return NULL;
    rq->srv = cls;
    rq->target = strdup(uri ? uri : "/");
    rq->start_ns = ahl_mono_ns();
    ahl_buf_init(&rq->body, AHL_API_MAX_BODY);
    make_request_id(rq->request_id);
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
        /* A declared length over the cap is not kept; the body is read and dropped so that the
         * client, still sending, gets the ValidationException rather than a reset connection. */
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > AHL_API_MAX_BODY)
            rq->body_too_big = 1;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!rq->body_too_big && ahl_buf_add(&rq->body, upload_data, *upload_data_size) < 0) {
            rq->body_too_big = 1;
            ahl_buf_release(&rq->body);
        }
        rq->body_seen += *upload_data_size;
        *upload_data_size = 0;
        /* Dropping bytes costs little, but not forever: past this, close the connection. */
        return rq->body_seen > MAX_DISCARD ? MHD_NO : MHD_YES;
    }
    return handle(conn, rq, method);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct request *rq = *con_cls;
    (void)cls;
    (void)conn;
    if (!rq)
        return;
    double ms = (double)(ahl_mono_ns() - rq->start_ns) / 1e6;
    if (rq->status)
        ahl_info("%s %d %.2fms %s", rq->op_name ? rq->op_name : "-", rq->status, ms,
                 rq->request_id);
    else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        ahl_info("%s aborted(%d) %.2fms %s", rq->op_name ? rq->op_name : "-", (int)toe, ms,
                 rq->request_id);
    ahl_buf_release(&rq->body);
    free(rq->target);
    free(rq);
    *con_cls = NULL;
}

/* Keeps paths and query values exactly as received: routing, signing and the codec decode them
 * themselves (MHD would turn %2F into '/' before routing). */
static size_t no_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    ahl_warn("http: %s", line);
}

/* ---- start / stop -------------------------------------------------------------------------- */

int ahl_api_server_start(const struct ahl_api_config *cfg, struct ahl_meta *meta,
                         struct ahl_api_server **out, struct ahl_err *err)
{
    struct ahl_api_server *srv = calloc(1, sizeof *srv);
    struct addrinfo hints = {0}, *ai = NULL;
    char port[8];
    int rc;

    *out = NULL;
    if (!srv)
        return ahl_fail(err, AHL_ENOMEM, NULL, "out of memory");
    srv->svc.meta = meta;
    srv->svc.store = ahl_meta_store(meta);
    if (ahl_store_strset(srv->svc.region, sizeof srv->svc.region, cfg->region) < 0 ||
        ahl_store_strset(srv->svc.account_id, sizeof srv->svc.account_id, cfg->account_id) < 0 ||
        ahl_store_strset(srv->svc.s3_root, sizeof srv->svc.s3_root, cfg->s3_root) < 0 ||
        ahl_store_strset(srv->svc.s3_endpoint, sizeof srv->svc.s3_endpoint, cfg->s3_endpoint) < 0) {
        rc = ahl_fail(err, AHL_EINVAL, NULL, "region, account id or S3 setting too long");
        goto fail;
    }
    if (cfg->credentials)
        srv->creds = *cfg->credentials;
    srv->svc.job_submitted = cfg->job_submitted;
    srv->svc.job_ctx = cfg->job_ctx;
    if (cfg->data_dir) {
        char root[1100];
        if (ahl_store_strset(srv->svc.data_dir, sizeof srv->svc.data_dir, cfg->data_dir) < 0) {
            rc = ahl_fail(err, AHL_EINVAL, NULL, "data directory path too long");
            goto fail;
        }
        /* Responses spooled to disk (GetImageSetMetadata) go to DATA_DIR/tmp. */
        snprintf(root, sizeof root, "%s/tmp", cfg->data_dir);
        if (mkdir(root, 0700) < 0 && errno != EEXIST) {
            rc = ahl_fail(err, AHL_EIO, NULL, "cannot create %s: %s", root, strerror(errno));
            goto fail;
        }
        snprintf(root, sizeof root, "%s/frames", cfg->data_dir);
        if ((rc = ahl_framestore_open(&srv->svc.frames, root, err)) < 0)
            goto fail;
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
        ahl_fail(err, rc, NULL, "cannot set up SigV4 verification");
        goto fail;
    }
    srv->verifier_ready = 1;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof port, "%u", (unsigned)cfg->port);
    if ((rc = getaddrinfo(cfg->listen_host, port, &hints, &ai)) != 0) {
        rc = ahl_fail(err, AHL_EINVAL, NULL, "cannot resolve listen address %s: %s",
                      cfg->listen_host, gai_strerror(rc));
        goto fail;
    }
    unsigned workers = cfg->workers;
    if (workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n > 0 ? (unsigned)n : 2;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The logger goes first: libmicrohttpd reports problems with the options after it through
     * it, and warns on stderr when it comes later. */
    srv->daemon = MHD_start_daemon(
        flags, cfg->port, NULL, NULL, access_handler, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, workers,
        MHD_OPTION_URI_LOG_CALLBACK, uri_logger, srv, MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
        MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, srv, MHD_OPTION_CONNECTION_LIMIT, 1024u,
        MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)128 * 1024,
        MHD_OPTION_END);
    if (!srv->daemon) {
        rc = ahl_fail(err, AHL_EIO, NULL, "cannot listen on %s:%u (address in use?)",
                      cfg->listen_host, (unsigned)cfg->port);
        goto fail;
    }
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
    if (srv->verifier_ready)
        ahl_sigv4_verifier_release(&srv->verifier);
    free(srv);
}
