/* The S3 backend of the object store: ListObjectsV2 (paged), GetObject (streamed) and PutObject
 * against an S3-compatible endpoint, with path-style URLs and SigV4 (aws/sigv4) signing.
 *
 * One libcurl easy handle per store keeps connections alive between requests. Replies are read
 * with a small XML scanner that knows the few elements S3 sends (S3's replies are flat and
 * attribute-free apart from the root's xmlns); entities, including numeric ones, are decoded.
 * Listings ask for encoding-type=url so that keys with characters XML 1.0 cannot carry survive,
 * and decode them ('+' is a space there, as botocore's unquote_plus has it). */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/codec.h"
#include "aws/sigv4.h"
#include "base/text.h"
#include "blob/objstore_internal.h"
#include "base/banned.h"

#define MAX_LIST_REPLY (16 * 1024 * 1024)
#define MAX_ERROR_REPLY (64 * 1024)
#define MAX_PAGES 1000000

struct s3_store {
    struct ahl_objstore base;
    CURL *curl;
    char *base_url; /* "http://host:port" */
    char *host;     /* "host:port", the Host header we send and sign */
    char *region, *access_key, *secret_key, *token;
    long timeout_s;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : AHL_EINTERNAL;
}

/* ---- a minimal reader for S3's XML replies ---- */

/* Finds <tag>...</tag> (or <tag/>) within [p, end); sets the content span. 0 or -1. */
static int xml_find(const char *p, const char *end, const char *tag, const char **vs,
                    const char **ve)
{
    size_t tl = strlen(tag);
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt || (size_t)(end - lt) < tl + 2)
            return -1;
        if (memcmp(lt + 1, tag, tl) == 0) {
            const char *after = lt + 1 + tl;
            if (*after == '/' && after + 1 < end && after[1] == '>') {
                *vs = *ve = after + 2;
                return 0;
            }
            if (*after == '>') {
                const char *s = after + 1;
                for (const char *q = s; q + tl + 3 <= end; q++) {
                    q = memchr(q, '<', (size_t)(end - q));
                    if (!q || (size_t)(end - q) < tl + 3)
                        return -1;
                    if (q[1] == '/' && memcmp(q + 2, tag, tl) == 0 && q[2 + tl] == '>') {
                        *vs = s;
                        *ve = q;
                        return 0;
                    }
                }
                return -1;
            }
        }
        p = lt + 1;
    }
    return -1;
}

static int add_utf8(struct ahl_buf *out, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return AHL_EPARSE;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    }
    return ahl_buf_add(out, u, n);
}

/* Appends the text of [s, e) with XML entities decoded. AHL_EPARSE on an unknown entity. */
static int xml_text(const char *s, const char *e, struct ahl_buf *out)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    int rc = 0;
    while (s < e && rc == 0) {
        const char *amp = memchr(s, '&', (size_t)(e - s));
        if (!amp)
            return ahl_buf_add(out, s, (size_t)(e - s));
        if ((rc = ahl_buf_add(out, s, (size_t)(amp - s))) < 0)
            return rc;
        const char *semi = memchr(amp, ';', (size_t)(e - amp));
        if (!semi || semi - amp > 12)
            return AHL_EPARSE;
        const char *name = amp + 1;
        size_t nl = (size_t)(semi - name);
        rc = AHL_EPARSE;
        if (nl >= 2 && name[0] == '#') {
            int hex = name[1] == 'x' || name[1] == 'X';
            char digits[12];
            size_t dl = nl - 1 - (size_t)hex;
            if (dl >= 1 && dl < sizeof digits) {
                memcpy(digits, name + 1 + hex, dl);
                digits[dl] = '\0';
                char *endp;
                unsigned long cp = strtoul(digits, &endp, hex ? 16 : 10);
                if (*endp == '\0' && digits[0] != '-' && digits[0] != '+')
                    rc = add_utf8(out, cp);
            }
        } else {
            for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
                if (strlen(named[i].name) == nl && memcmp(named[i].name, name, nl) == 0)
                    rc = ahl_buf_addc(out, named[i].c);
            }
        }
        s = semi + 1;
    }
    return rc;
}

/* Decodes S3's encoding-type=url form: %XX escapes, and '+' for a space. */
static int url_decode_plus(struct ahl_buf *b)
{
    for (size_t i = 0; i < b->len; i++) {
        if (b->data[i] == '+')
            b->data[i] = ' ';
    }
    struct ahl_buf tmp;
    ahl_buf_init(&tmp, b->max);
    int rc = ahl_percent_decode(b->data, b->len, &tmp);
    if (rc == 0) {
        ahl_buf_reset(b);
        rc = ahl_buf_add(b, tmp.data, tmp.len);
    }
    ahl_buf_release(&tmp);
    return rc;
}

/* ---- one signed request ---- */

struct call {
    const char *method;
    const char *bucket;
    const char *key;   /* NULL for a bucket-level request */
    const char *query; /* already encoded, or NULL */
    const void *body;
    size_t body_len;
    const char *content_type;
    /* Where a 2xx body goes: streamed to sink, else collected into collect (capped). */
    ahl_objstore_write_fn sink;
    void *sink_ctx;
    struct ahl_buf *collect;
    /* Filled in while and after it runs: */
    CURL *curl;
    long status;
    int sink_rc;
    struct ahl_buf errbody;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *userdata)
{
    struct call *c = userdata;
    size_t n = size * nmemb;
    if (c->status == 0) /* the headers are complete once the body starts */
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &c->status);
    if (c->status >= 200 && c->status < 300) {
        int rc = 0;
        if (c->sink)
            rc = c->sink(c->sink_ctx, p, n);
        else if (c->collect)
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
    const char *s = c->errbody.data, *e = s + c->errbody.len, *vs, *ve;
    if (xml_find(s, e, "Code", &vs, &ve) == 0)
        xml_text(vs, ve, &code);
    if (xml_find(s, e, "Message", &vs, &ve) == 0)
        xml_text(vs, ve, &msg);
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

static int perform(struct s3_store *s, struct call *c, struct ahl_err *err)
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
    struct ahl_sigv4_header signed_headers[] = {{"host", s->host}};
    struct ahl_sigv4_sign_input in = {
        .method = c->method,
        .path = path.data,
        .query = c->query,
        .headers = signed_headers,
        .n_headers = 1,
        .payload_hash = payload_hash,
        .region = s->region,
        .service = "s3",
        .uri_mode = AHL_SIGV4_URI_S3,
        .now_s = ahl_now_ms() / 1000,
    };
    struct ahl_sigv4_credentials cred = {s->access_key, s->secret_key, s->token};
    if ((rc = ahl_sigv4_sign(&in, &cred, &sig)) < 0) {
        rc = ahl_fail(err, rc, "%.300s: cannot sign the request: %s", w, ahl_strerror(rc));
        goto out;
    }

    /* Every header line goes through h so one failure check covers them. */
    const char *lines[6];
    size_t nl = 0;
    size_t offs[6];
#define LINE(...)                                                                          \
    do {                                                                                   \
        offs[nl++] = h.len;                                                                \
        if ((rc = ahl_buf_addf(&h, __VA_ARGS__)) < 0 || (rc = ahl_buf_addc(&h, '\0')) < 0) \
            goto nomem;                                                                    \
    } while (0)
    LINE("Host: %s", s->host);
    LINE("x-amz-date: %s", sig.amz_date);
    LINE("x-amz-content-sha256: %s", sig.content_sha256);
    LINE("Authorization: %s", sig.authorization.data);
    if (s->token)
        LINE("x-amz-security-token: %s", s->token);
    LINE("Content-Type: %s", c->content_type ? c->content_type : "");
#undef LINE
    for (size_t i = 0; i < nl; i++) {
        lines[i] = h.data + offs[i];
        struct curl_slist *n = curl_slist_append(headers, lines[i]);
        if (!n)
            goto nomem;
        headers = n;
    }
    /* No "Expect: 100-continue" round trip for uploads. */
    struct curl_slist *n = curl_slist_append(headers, "Expect:");
    if (!n)
        goto nomem;
    headers = n;

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
    rc = 0;
    goto out;
nomem:
    rc = ahl_fail(err, rc < 0 ? rc : AHL_ENOMEM, "%.300s: cannot build the request: %s", w,
                  ahl_strerror(rc < 0 ? rc : AHL_ENOMEM));
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

static int s3_list(struct ahl_objstore *os, const char *bucket, const char *prefix,
                   ahl_objstore_list_fn fn, void *ctx, struct ahl_err *err)
{
    struct s3_store *s = (struct s3_store *)os;
    struct ahl_buf reply, query, key, token, prev;
    ahl_buf_init(&reply, MAX_LIST_REPLY);
    ahl_buf_init(&query, 8 * 1024);
    ahl_buf_init(&key, 4 * AHL_S3_MAX_KEY);
    ahl_buf_init(&token, 4 * 1024);
    ahl_buf_init(&prev, 4 * 1024);
    int rc = 0;
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

        const char *p = reply.data, *end = reply.data + reply.len, *vs, *ve;
        if (!strstr(p, "<ListBucketResult")) {
            rc = ahl_fail(err, AHL_EPARSE,
                          "s3://%s/%s: the endpoint's reply is not a ListBucketResult", bucket,
                          prefix);
            goto out;
        }
        int url_encoded = xml_find(p, end, "EncodingType", &vs, &ve) == 0 && ve - vs == 3 &&
                          memcmp(vs, "url", 3) == 0;
        const char *cur = p;
        while (xml_find(cur, end, "Contents", &vs, &ve) == 0) {
            const char *cs = vs, *ce = ve, *ks, *ke, *ss, *se;
            cur = ce;
            ahl_buf_reset(&key);
            if (xml_find(cs, ce, "Key", &ks, &ke) < 0 || xml_text(ks, ke, &key) < 0 ||
                (url_encoded && url_decode_plus(&key) < 0) || key.len == 0 ||
                key.len > AHL_S3_MAX_KEY || memchr(key.data, '\0', key.len)) {
                rc = ahl_fail(err, AHL_EPARSE,
                              "s3://%s/%s: the listing holds an unreadable or bad Key", bucket,
                              prefix);
                goto out;
            }
            uint64_t size = 0;
            if (xml_find(cs, ce, "Size", &ss, &se) == 0) {
                for (const char *q = ss; q < se; q++) {
                    if (*q < '0' || *q > '9' || size > UINT64_MAX / 10 - 1) {
                        rc = ahl_fail(err, AHL_EPARSE, "s3://%s/%s: bad Size for key '%.200s'",
                                      bucket, key.data, key.data);
                        goto out;
                    }
                    size = size * 10 + (uint64_t)(*q - '0');
                }
            }
            struct ahl_object_info info = {.key = key.data, .size = size, .problem = NULL};
            if ((rc = fn(ctx, &info)) != 0)
                goto out;
        }
        int truncated = xml_find(p, end, "IsTruncated", &vs, &ve) == 0 && ve - vs == 4 &&
                        memcmp(vs, "true", 4) == 0;
        if (!truncated)
            break;
        ahl_buf_reset(&prev);
        if ((rc = ahl_buf_add(&prev, token.data, token.len)) < 0)
            goto nomem;
        ahl_buf_reset(&token);
        if (xml_find(p, end, "NextContinuationToken", &vs, &ve) < 0 ||
            xml_text(vs, ve, &token) < 0 || token.len == 0 ||
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
    ahl_buf_release(&key);
    ahl_buf_release(&token);
    ahl_buf_release(&prev);
    return rc;
}

static int s3_get(struct ahl_objstore *os, const char *bucket, const char *key,
                  ahl_objstore_write_fn fn, void *ctx, struct ahl_err *err)
{
    struct call c = {.method = "GET", .bucket = bucket, .key = key, .sink = fn, .sink_ctx = ctx};
    return perform((struct s3_store *)os, &c, err);
}

static int s3_put(struct ahl_objstore *os, const char *bucket, const char *key, const void *data,
                  size_t n, const char *content_type, struct ahl_err *err)
{
    struct call c = {.method = "PUT",
                     .bucket = bucket,
                     .key = key,
                     .body = data ? data : "",
                     .body_len = n,
                     .content_type = content_type ? content_type : "application/octet-stream"};
    return perform((struct s3_store *)os, &c, err);
}

static void s3_close(struct ahl_objstore *os)
{
    struct s3_store *s = (struct s3_store *)os;
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

static const struct ahl__objstore_ops s3_ops = {
    .name = "s3",
    .list = s3_list,
    .get = s3_get,
    .put = s3_put,
    .close = s3_close,
};

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

int ahl__objstore_s3_new(const struct ahl_s3_config *cfg, struct ahl_objstore **out,
                         struct ahl_err *err)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc < 0)
        return ahl_fail(err, curl_init_rc, "libcurl could not be initialised");
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

    struct s3_store *s = calloc(1, sizeof *s);
    if (!s)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    s->base.ops = &s3_ops;
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
    s->curl = curl_easy_init();
    if (failed || !s->curl) {
        s3_close(&s->base);
        return ahl_fail(err, AHL_ENOMEM, "out of memory setting up the S3 client");
    }
    *out = &s->base;
    return 0;
}
