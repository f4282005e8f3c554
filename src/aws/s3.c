/* The S3 client (s3.h): ListObjectsV2 (paged), GetObject (streamed), HeadObject, PutObject and
 * DeleteObject against an S3-compatible endpoint, with path-style URLs and SigV4 (sigv4.h) signing.
 *
 * One libcurl easy handle per client keeps connections alive between requests. Replies are read
 * with s3xml.h. Listings ask for encoding-type=url, which s3xml undoes. */
#include "aws/s3.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_internal.h"
#include "aws/s3xml.h"
#include "aws/sigv4.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/codec.h"
#include "base/text.h"
#include "base/banned.h"

#define MAX_LIST_REPLY (16 * 1024 * 1024)
#define MAX_ERROR_REPLY (64 * 1024)
#define MAX_TOKEN (4 * 1024)
#define MAX_PAGES 1000000

struct ahl_s3 {
    CURL *curl;
    char *base_url; /* "http://host:port" */
    char *host;     /* "host:port", the Host header we send and sign */
    char *region, *access_key, *secret_key, *token;
    long timeout_s;
    char expected_owner[16]; /* x-amz-expected-bucket-owner, "" when not sent */
};

/* ---- one signed request ---- */

struct call {
    const char *method;
    const char *bucket;
    const char *key;   /* NULL for a bucket-level request */
    const char *query; /* already encoded, or NULL */
    const void *body;
    size_t body_len;
    const char *content_type;
    /* Where a 2xx body goes: streamed to sink, else collected into collect (capped). sized, when
     * not NULL, gets the body's Content-Length before the first byte reaches sink. */
    ahl_s3_size_fn sized;
    ahl_s3_write_fn sink;
    void *sink_ctx;
    struct ahl_buf *collect;
    /* Filled in while and after it runs: */
    CURL *curl;
    long status;
    int sink_rc;
    int sized_done;
    struct ahl_buf errbody;
};

/* The reply's Content-Length, UINT64_MAX when it has none. */
static uint64_t content_length(CURL *k)
{
    curl_off_t n = -1;
    if (curl_easy_getinfo(k, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &n) != CURLE_OK || n < 0)
        return UINT64_MAX;
    return (uint64_t)n;
}

/* Hands the size to c->sized once; 0, or what it returned (negative, or AHL_EIO). */
static int tell_size(struct call *c)
{
    if (!c->sized || c->sized_done)
        return 0;
    c->sized_done = 1;
    int rc = c->sized(c->sink_ctx, content_length(c->curl));
    return rc == 0 ? 0 : rc < 0 ? rc : AHL_EIO;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *userdata)
{
    struct call *c = userdata;
    size_t n = size * nmemb;
    if (c->status == 0) /* the headers are complete once the body starts */
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &c->status);
    if (c->status >= 200 && c->status < 300) {
        int rc = tell_size(c);
        if (rc == 0 && c->sink)
            rc = c->sink(c->sink_ctx, p, n);
        else if (rc == 0 && c->collect)
            rc = ahl_buf_add(c->collect, p, n);
        if (rc != 0) {
            c->sink_rc = rc < 0 ? rc : AHL_EIO;
            return 0; /* aborts the transfer */
        }
        return n;
    }
    /* An error reply: keep its start for the Code and Message. */
    size_t room = MAX_ERROR_REPLY - c->errbody.len;
    ahl_buf_add(&c->errbody, p, n < room ? n : room);
    return n;
}

/* Where the failed request pointed, for messages: "s3://bkt/key". */
static void where(const struct call *c, char *out, size_t cap)
{
    snprintf(out, cap, "s3://%s/%s", c->bucket, c->key ? c->key : "");
}

/* Turns a non-2xx reply into an error with the status and S3's Code and Message. */
static int status_error(const struct call *c, struct ahl_err *err)
{
    char w[AHL_S3_MAX_KEY + 80];
    where(c, w, sizeof w);
    struct ahl_buf code, msg;
    ahl_buf_init(&code, 256);
    ahl_buf_init(&msg, 1024);
    ahl_s3xml_error(c->errbody.data, c->errbody.len, &code, &msg);
    int rc = c->status == 404   ? AHL_ENOTFOUND
             : c->status == 403 ? AHL_EDENIED
             : c->status == 400 ? AHL_EINVAL
                                : AHL_EIO;
    if (code.len)
        ahl_fail(err, rc, "%.300s: HTTP %ld %s: %s", w, c->status, code.data,
                 msg.len ? msg.data : "(no message)");
    else
        ahl_fail(err, rc, "%.300s: HTTP %ld from the S3 endpoint", w, c->status);
    ahl_buf_release(&code);
    ahl_buf_release(&msg);
    return rc;
}

/* The request's header lines, each one NUL-terminated in h, as a curl list in *out. */
static int build_headers(const struct ahl_s3 *s, const struct call *c,
                         const struct ahl_sigv4_signed *sig, struct ahl_buf *h,
                         struct curl_slist **out)
{
    size_t offs[8], nl = 0;
    int rc = 0;
#define LINE(...)                                                                        \
    do {                                                                                 \
        offs[nl++] = h->len;                                                             \
        if ((rc = ahl_buf_addf(h, __VA_ARGS__)) < 0 || (rc = ahl_buf_addc(h, '\0')) < 0) \
            return rc;                                                                   \
    } while (0)
    LINE("Host: %s", s->host);
    LINE("x-amz-date: %s", sig->amz_date);
    LINE("x-amz-content-sha256: %s", sig->content_sha256);
    LINE("Authorization: %s", sig->authorization.data);
    if (s->token)
        LINE("x-amz-security-token: %s", s->token);
    if (s->expected_owner[0])
        LINE("x-amz-expected-bucket-owner: %s", s->expected_owner);
    LINE("Content-Type: %s", c->content_type ? c->content_type : "");
#undef LINE
    /* The lines point into h, which no longer grows. "Expect:" saves uploads the
     * 100-continue round trip. */
    for (size_t i = 0; i <= nl; i++) {
        struct curl_slist *n = curl_slist_append(*out, i < nl ? h->data + offs[i] : "Expect:");
        if (!n)
            return AHL_ENOMEM;
        *out = n;
    }
    return 0;
}

static int perform(struct ahl_s3 *s, struct call *c, struct ahl_err *err)
{
    struct ahl_buf path, url, h;
    ahl_buf_init(&path, 4 * AHL_S3_MAX_KEY);
    ahl_buf_init(&url, 16 * AHL_S3_MAX_KEY);
    ahl_buf_init(&h, 16 * 1024);
    ahl_buf_init(&c->errbody, MAX_ERROR_REPLY);
    struct curl_slist *headers = NULL;
    struct ahl_sigv4_signed sig = {0};
    ahl_buf_init(&sig.authorization, 1);
    char w[AHL_S3_MAX_KEY + 80];
    where(c, w, sizeof w);
    c->curl = s->curl;
    c->status = 0;
    c->sink_rc = 0;
    c->sized_done = 0;
    int rc;

    if ((rc = ahl_buf_addc(&path, '/')) < 0 || (rc = ahl_buf_adds(&path, c->bucket)) < 0 ||
        (c->key && ((rc = ahl_buf_addc(&path, '/')) < 0 ||
                    (rc = ahl_sigv4_uri_encode(c->key, strlen(c->key), 1, &path)) < 0)))
        goto nomem;
    if ((rc = ahl_buf_addf(&url, "%s%s%s%s", s->base_url, path.data, c->query ? "?" : "",
                           c->query ? c->query : "")) < 0)
        goto nomem;

    char payload_hash[AHL_SHA256_HEX_LEN + 1];
    ahl_sha256_hex(c->body ? c->body : "", c->body ? c->body_len : 0, payload_hash);
    struct ahl_sigv4_header signed_headers[] = {{"host", s->host},
                                                {"x-amz-expected-bucket-owner", s->expected_owner}};
    struct ahl_sigv4_sign_input in = {
        .method = c->method,
        .path = path.data,
        .query = c->query,
        .headers = signed_headers,
        .n_headers = s->expected_owner[0] ? 2 : 1,
        .payload_hash = payload_hash,
        .region = s->region,
        .service = "s3",
        .uri_mode = AHL_SIGV4_URI_S3,
        .now_s = ahl_wall_ms() / 1000,
    };
    struct ahl_sigv4_credentials cred = {s->access_key, s->secret_key, s->token};
    if ((rc = ahl_sigv4_sign(&in, &cred, &sig)) < 0) {
        rc = ahl_fail(err, rc, "%.300s: cannot sign the request: %s", w, ahl_strerror(rc));
        goto out;
    }
    if ((rc = build_headers(s, c, &sig, &h, &headers)) < 0)
        goto nomem;

    CURL *k = s->curl;
    curl_easy_reset(k);
    curl_easy_setopt(k, CURLOPT_URL, url.data);
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST, c->method);
    curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(k, CURLOPT_CONNECTTIMEOUT, 10L);
    /* A stall limit rather than a total one: a multi-gigabyte object may take long, but a
     * connection that moves nothing for timeout_s is dead. */
    curl_easy_setopt(k, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(k, CURLOPT_LOW_SPEED_TIME, s->timeout_s);
    curl_easy_setopt(k, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(k, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(k, CURLOPT_WRITEDATA, c);
    /* A HEAD reply announces a body it does not send: curl must not wait for it. */
    if (!strcmp(c->method, "HEAD"))
        curl_easy_setopt(k, CURLOPT_NOBODY, 1L);
    /* Last-Modified, for ahl_s3_head_timed. */
    curl_easy_setopt(k, CURLOPT_FILETIME, strcmp(c->method, "HEAD") ? 0L : 1L);
    if (c->body) {
        curl_easy_setopt(k, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    }
    CURLcode cc = curl_easy_perform(k);
    if (c->status == 0)
        curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &c->status);
    if (c->sink_rc) {
        rc = c->sink_rc;
        if (rc == AHL_ETOOBIG)
            rc = ahl_fail(err, rc, "%.300s: the reply is larger than %d bytes", w, MAX_LIST_REPLY);
        else
            rc = ahl_fail(err, rc, "%.300s: the receiver of the object stopped the transfer (%s)",
                          w, ahl_strerror(rc));
        goto out;
    }
    if (cc != CURLE_OK) {
        rc = ahl_fail(err, AHL_EIO, "%.300s: request to %s failed: %s", w, s->base_url,
                      curl_easy_strerror(cc));
        goto out;
    }
    if (c->status < 200 || c->status >= 300) {
        rc = status_error(c, err);
        goto out;
    }
    /* An empty object has no body for on_body to see: its size is told here. */
    if ((rc = tell_size(c)) != 0) {
        rc = ahl_fail(err, rc, "%.300s: the receiver of the object stopped the transfer (%s)", w,
                      ahl_strerror(rc));
        goto out;
    }
    rc = 0;
    goto out;
nomem:
    rc = rc < 0 ? rc : AHL_ENOMEM;
    rc = ahl_fail(err, rc, "%.300s: cannot build the request: %s", w, ahl_strerror(rc));
out:
    curl_slist_free_all(headers);
    ahl_buf_release(&sig.authorization);
    ahl_buf_release(&path);
    ahl_buf_release(&url);
    ahl_buf_release(&h);
    ahl_buf_release(&c->errbody);
    return rc;
}

/* ---- operations ---- */

int ahl_s3_list(struct ahl_s3 *s, const char *bucket, const char *prefix, ahl_s3_key_fn fn,
                void *ctx, struct ahl_err *err)
{
    struct ahl__s3_untimed u = {fn, ctx};
    return ahl_s3_list_timed(s, bucket, prefix, ahl__s3_drop_time, &u, err);
}

int ahl_s3_list_timed(struct ahl_s3 *s, const char *bucket, const char *prefix,
                      ahl_s3_entry_fn fn, void *ctx, struct ahl_err *err)
{
    int rc = ahl_s3_location_check(bucket, NULL, err);
    if (rc < 0)
        return rc;
    if (!prefix)
        prefix = "";
    struct ahl_buf reply, query, token, prev;
    ahl_buf_init(&reply, MAX_LIST_REPLY);
    ahl_buf_init(&query, 8 * 1024);
    ahl_buf_init(&token, MAX_TOKEN);
    ahl_buf_init(&prev, MAX_TOKEN);
    for (long page = 0;; page++) {
        if (page == MAX_PAGES) {
            rc = ahl_fail(err, AHL_ETOOBIG, "s3://%s/%s: more than %d pages of keys", bucket,
                          prefix, MAX_PAGES);
            goto out;
        }
        ahl_buf_reset(&query);
        ahl_buf_reset(&reply);
        if (token.len && ((rc = ahl_buf_adds(&query, "continuation-token=")) < 0 ||
                          (rc = ahl_sigv4_uri_encode(token.data, token.len, 0, &query)) < 0 ||
                          (rc = ahl_buf_addc(&query, '&')) < 0))
            goto nomem;
        if ((rc = ahl_buf_adds(&query, "encoding-type=url&list-type=2&max-keys=1000&prefix=")) <
                0 ||
            (rc = ahl_sigv4_uri_encode(prefix, strlen(prefix), 0, &query)) < 0)
            goto nomem;
        struct call c = {.method = "GET", .bucket = bucket, .query = query.data, .collect = &reply};
        if ((rc = perform(s, &c, err)) < 0)
            goto out;

        ahl_buf_reset(&prev);
        if ((rc = ahl_buf_add(&prev, token.data, token.len)) < 0)
            goto nomem;
        ahl_buf_reset(&token);
        int truncated = 0;
        struct ahl_err perr;
        ahl_err_clear(&perr);
        rc = ahl_s3xml_list_page_timed(reply.data, reply.len, fn, ctx, &truncated, &token, &perr);
        if (rc != 0) {
            if (perr.code) /* the page, not fn, stopped it */
                rc = ahl_fail(err, rc, "s3://%s/%s: %s", bucket, prefix, perr.msg);
            goto out;
        }
        if (!truncated)
            break;
        if (token.len == 0 ||
            (prev.len == token.len && memcmp(prev.data, token.data, token.len) == 0)) {
            rc = ahl_fail(err, AHL_EPARSE,
                          "s3://%s/%s: a truncated listing without a new NextContinuationToken",
                          bucket, prefix);
            goto out;
        }
    }
    rc = 0;
    goto out;
nomem:
    rc = ahl_fail(err, rc, "s3://%s/%s: cannot build the listing request: %s", bucket, prefix,
                  ahl_strerror(rc));
out:
    ahl_buf_release(&reply);
    ahl_buf_release(&query);
    ahl_buf_release(&token);
    ahl_buf_release(&prev);
    return rc;
}

int ahl_s3_get_sized(struct ahl_s3 *s, const char *bucket, const char *key, ahl_s3_size_fn size_fn,
                     ahl_s3_write_fn fn, void *ctx, struct ahl_err *err)
{
    int rc = ahl_s3_location_check(bucket, key, err);
    if (rc < 0)
        return rc;
    struct call c = {.method = "GET",
                     .bucket = bucket,
                     .key = key,
                     .sized = size_fn,
                     .sink = fn,
                     .sink_ctx = ctx};
    return perform(s, &c, err);
}

int ahl_s3_get(struct ahl_s3 *s, const char *bucket, const char *key, ahl_s3_write_fn fn, void *ctx,
               struct ahl_err *err)
{
    return ahl_s3_get_sized(s, bucket, key, NULL, fn, ctx, err);
}

int ahl_s3_head(struct ahl_s3 *s, const char *bucket, const char *key, uint64_t *size,
                struct ahl_err *err)
{
    int64_t mtime;
    return ahl_s3_head_timed(s, bucket, key, size, &mtime, err);
}

int ahl_s3_head_timed(struct ahl_s3 *s, const char *bucket, const char *key, uint64_t *size,
                      int64_t *mtime_ms, struct ahl_err *err)
{
    *size = 0;
    *mtime_ms = -1;
    int rc = ahl_s3_location_check(bucket, key, err);
    if (rc < 0)
        return rc;
    struct call c = {.method = "HEAD", .bucket = bucket, .key = key};
    if ((rc = perform(s, &c, err)) < 0)
        return rc;
    uint64_t n = content_length(s->curl);
    if (n == UINT64_MAX)
        return ahl_fail(err, AHL_EPARSE, "s3://%.63s/%.300s: HEAD reply without Content-Length",
                        bucket, key);
    *size = n;
    curl_off_t t = -1;
    if (curl_easy_getinfo(s->curl, CURLINFO_FILETIME_T, &t) == CURLE_OK && t >= 0)
        *mtime_ms = (int64_t)t * 1000;
    return 0;
}

int ahl_s3_delete(struct ahl_s3 *s, const char *bucket, const char *key, struct ahl_err *err)
{
    int rc = ahl_s3_location_check(bucket, key, err);
    if (rc < 0)
        return rc;
    struct call c = {.method = "DELETE", .bucket = bucket, .key = key};
    return perform(s, &c, err);
}

int ahl_s3_put(struct ahl_s3 *s, const char *bucket, const char *key, const void *data, size_t n,
               const char *content_type, struct ahl_err *err)
{
    int rc = ahl_s3_location_check(bucket, key, err);
    if (rc < 0)
        return rc;
    struct call c = {.method = "PUT",
                     .bucket = bucket,
                     .key = key,
                     .body = data ? data : "",
                     .body_len = n,
                     .content_type = content_type ? content_type : "application/octet-stream"};
    return perform(s, &c, err);
}

/* ---- opening and closing ---- */

void ahl_s3_close(struct ahl_s3 *s)
{
    if (!s)
        return;
    if (s->curl)
        curl_easy_cleanup(s->curl);
    free(s->base_url);
    free(s->host);
    free(s->region);
    free(s->access_key);
    if (s->secret_key) {
        volatile char *wipe = s->secret_key;
        for (size_t i = 0; wipe[i]; i++)
            wipe[i] = 0;
    }
    free(s->secret_key);
    free(s->token);
    free(s);
}

/* The configured value, else the first non-empty of two environment variables, else NULL. */
static const char *pick(const char *explicit_value, const char *env1, const char *env2)
{
    if (explicit_value)
        return explicit_value;
    const char *v = env1 ? getenv(env1) : NULL;
    if ((!v || !*v) && env2)
        v = getenv(env2);
    return v && *v ? v : NULL;
}

static char *dup_or_null(const char *s, int *failed)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *failed = 1;
    return d;
}

int ahl_s3_open(const struct ahl_s3_config *cfg, struct ahl_s3 **out, struct ahl_err *err)
{
    *out = NULL;
    int init_rc = ahl__aws_curl_init();
    if (init_rc < 0)
        return ahl_fail(err, init_rc, "libcurl could not be initialised");
    const char *ep = cfg->endpoint ? cfg->endpoint : "";
    const char *auth = NULL;
    if (strncmp(ep, "http://", 7) == 0)
        auth = ep + 7;
    else if (strncmp(ep, "https://", 8) == 0)
        auth = ep + 8;
    size_t alen = auth ? strcspn(auth, "/?#") : 0;
    if (!auth || alen == 0 || (auth[alen] && strcmp(auth + alen, "/") != 0) ||
        memchr(auth, '@', alen) || alen > 255)
        return ahl_fail(err, AHL_EINVAL,
                        "S3 endpoint '%.200s' must look like http://host:port or https://host "
                        "(path-style addressing, no path, no user information)",
                        ep);
    const char *ak = pick(cfg->access_key, "AWS_ACCESS_KEY_ID", NULL);
    const char *sk = pick(cfg->secret_key, "AWS_SECRET_ACCESS_KEY", NULL);
    const char *tok = pick(cfg->session_token, "AWS_SESSION_TOKEN", NULL);
    const char *region = pick(cfg->region, "AWS_REGION", "AWS_DEFAULT_REGION");
    if (!ak || !sk)
        return ahl_fail(err, AHL_EINVAL,
                        "S3 endpoint %.200s: no credentials (set AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY)",
                        ep);
    if (strlen(sk) > AHL_SIGV4_MAX_SECRET)
        return ahl_fail(err, AHL_EINVAL, "the S3 secret key is longer than %d characters",
                        AHL_SIGV4_MAX_SECRET);

    struct ahl_s3 *s = calloc(1, sizeof *s);
    if (!s)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    int failed = 0;
    size_t blen = (size_t)(auth - ep) + alen;
    s->base_url = malloc(blen + 1);
    s->host = malloc(alen + 1);
    if (s->base_url && s->host) {
        memcpy(s->base_url, ep, blen);
        s->base_url[blen] = '\0';
        memcpy(s->host, auth, alen);
        s->host[alen] = '\0';
    } else {
        failed = 1;
    }
    s->region = dup_or_null(region ? region : "us-east-1", &failed);
    s->access_key = dup_or_null(ak, &failed);
    s->secret_key = dup_or_null(sk, &failed);
    s->token = dup_or_null(tok, &failed);
    s->timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 60;
    if (cfg->expected_owner &&
        ahl_str_copy(s->expected_owner, sizeof s->expected_owner, cfg->expected_owner) < 0)
        failed = 1;
    s->curl = curl_easy_init();
    if (failed || !s->curl) {
        ahl_s3_close(s);
        return ahl_fail(err, AHL_ENOMEM, "out of memory setting up the S3 client");
    }
    *out = s;
    return 0;
}
