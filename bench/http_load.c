/* ahilite-bench http-load: a small HTTP load generator for `ahilite serve`: N connections (one
 * thread and one keep-alive libcurl handle each), every request SigV4-signed with the project's own
 * signer (aws/sigv4.h), for a fixed time or a fixed number of requests. It prints one JSON line:
 * requests, errors, requests/s, median and p99 latency, bytes received.
 *
 * Modes (what each request is):
 *   get-datastore  GET /datastore/{id}: the server's floor (auth, routing, one store read);
 *   update         UpdateImageSetMetadata of Patient.PatientName, one image set per connection
 *                  (--imagesets, one per connection, reused round-robin when fewer), each request
 *                  passing the latestVersionId the previous response returned; a 409 re-reads the
 *                  version with GetImageSet and is counted as a conflict. With --check, every
 *                  response must be 200 and every new version exactly one above the one before;
 *   metadata       GetImageSetMetadata of --imagesets' first set; the body is counted as it comes
 *                  (gzip, not decoded), the first one is inflated to learn the JSON size, and the
 *                  figure is JSON-equivalent bytes per second;
 *   frames         GetImageFrame, cycling through --frames SET:FRAME,... or the SET:FRAME lines
 *                  of --frames-file FILE (any number: a run over 100,000 frames);
 *   get            GET of each path (with its query) in --paths FILE, one a line, in turn, with
 *                  --accept's Accept header: DICOMweb resources of ahilite (signed) or of another
 *                  server (--unsigned, where --access-key, --secret-key and --datastore are not
 *                  needed); the figure is body bytes per second.
 *
 * usage: ahilite-bench http-load --endpoint URL --access-key K --secret-key S [--region R]
 *            --datastore ID --mode MODE [--imagesets ID,...] [--frames SET:FRAME,...]
 *            [--frames-file FILE]
 *            [--paths FILE] [--accept TYPE] [--unsigned]
 *            [--connections N] [--seconds T | --requests N] [--check] [--dump-metadata FILE]
 * Exit status: 0, 1 when a request failed (any non-2xx other than counted 409s, or a --check
 * violation), 2 usage. bench/http.sh drives it; tests/integration/test_http_load_smoke.sh keeps
 * it correct.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <zlib.h>

#include "bench.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/codec.h"
#include "aws/sigv4.h"

#include "base/banned.h"

#define MAX_CONN 64
#define MAX_IDS 4096

enum mode { M_GET_DATASTORE, M_UPDATE, M_METADATA, M_FRAMES, M_GET };

struct config {
    const char *endpoint, *access_key, *secret_key, *region, *datastore;
    char host[256]; /* host:port, as curl sends it in Host */
    enum mode mode;
    char *imagesets[MAX_IDS];
    size_t n_imagesets;
    char **frame_sets, **frame_ids; /* n_frames of each (--frames, or --frames-file's lines) */
    size_t n_frames;
    char *frames_text; /* --frames-file's contents, which frame_sets and frame_ids point into */
    int connections;
    double seconds;
    long requests; /* total, split over connections; 0: run for seconds */
    int check;
    const char *dump_metadata; /* metadata mode: write the first response (gzip) here */
    char *paths[MAX_IDS];      /* get mode: the lines of --paths */
    size_t n_paths;
    const char *accept; /* get mode: the Accept header, or NULL */
    int unsigned_requests;
};

struct worker {
    const struct config *cfg;
    int index;
    CURL *curl;
    struct ahl_buf body; /* the response being received (capped: metadata is counted, not kept) */
    size_t received;     /* bytes of this response */
    uint64_t bytes;      /* all response bytes */
    double *lat_ms;      /* latencies, one per request */
    size_t n_lat, cap_lat;
    long ok, conflicts, failures;
    char fail_msg[256];
    uint64_t version; /* update mode: the latest version this connection knows */
    char key_date[9]; /* the day signing_key is for, as AWS's SDKs keep it ("" before the first) */
    uint8_t signing_key[AHL_SHA256_LEN];
};

static uint64_t g_deadline_ns;

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    struct worker *w = ctx;
    size_t len = size * n;
    w->received += len;
    /* Keep up to the buffer's cap (small JSON answers); the rest is only counted. */
    size_t room = w->body.max - w->body.len;
    if (room)
        ahl_buf_add(&w->body, p, len < room ? len : room);
    return len;
}

static void failf(struct worker *w, const char *fmt, const char *a, long b)
{
    w->failures++;
    if (!w->fail_msg[0])
        snprintf(w->fail_msg, sizeof w->fail_msg, fmt, a, b);
}

/* Appends the SigV4 headers of one request (x-amz-date, x-amz-content-sha256, Authorization) to
 * *list; the strings are copied by curl. The signing key is derived once a day per connection, as
 * AWS's SDKs keep it, so that the client spends on each request what theirs do. 0, or -1 when
 * signing failed. */
static int add_signature(struct worker *w, const char *method, const char *path, const char *query,
                         const char *body, struct curl_slist **list)
{
    const struct config *c = w->cfg;
    char hash[AHL_SHA256_HEX_LEN + 1], h_date[64], h_sha[128], h_auth[1024], now[17];
    ahl_sha256_hex(body ? body : "", body ? strlen(body) : 0, hash);
    struct ahl_sigv4_header hdrs[] = {{"host", c->host}};
    struct ahl_sigv4_sign_input in = {
        .method = method,
        .path = path,
        .query = query,
        .headers = hdrs,
        .n_headers = 1,
        .payload_hash = hash,
        .region = c->region,
        .service = "medical-imaging",
        .uri_mode = AHL_SIGV4_URI_DOUBLE,
        .now_s = ahl_now_ms() / 1000,
        .signing_key = w->signing_key,
    };
    ahl_sigv4_format_time(in.now_s, now);
    if (memcmp(w->key_date, now, 8) != 0) {
        memcpy(w->key_date, now, 8);
        ahl_sigv4_signing_key(c->secret_key, w->key_date, c->region, in.service, w->signing_key);
    }
    struct ahl_sigv4_credentials cred = {c->access_key, c->secret_key, NULL};
    struct ahl_sigv4_signed sig;
    if (ahl_sigv4_sign(&in, &cred, &sig) < 0)
        return -1;
    snprintf(h_date, sizeof h_date, "x-amz-date: %s", sig.amz_date);
    snprintf(h_sha, sizeof h_sha, "x-amz-content-sha256: %s", sig.content_sha256);
    snprintf(h_auth, sizeof h_auth, "Authorization: %s", sig.authorization.data);
    ahl_buf_release(&sig.authorization);
    *list = curl_slist_append(*list, h_date);
    *list = curl_slist_append(*list, h_sha);
    *list = curl_slist_append(*list, h_auth);
    return 0;
}

/* Sends one request, signed unless --unsigned; returns the HTTP status, or -1 on a transport
 * error. */
static long send_signed(struct worker *w, const char *method, const char *path, const char *query,
                        const char *body)
{
    const struct config *c = w->cfg;
    char url[2048], h_accept[512];
    size_t body_len = body ? strlen(body) : 0;
    struct curl_slist *list = NULL;
    if (!c->unsigned_requests && add_signature(w, method, path, query, body, &list) < 0)
        return -1;
    if (c->mode != M_GET)
        list = curl_slist_append(list, "Content-Type: application/json");
    if (c->accept) {
        snprintf(h_accept, sizeof h_accept, "Accept: %s", c->accept);
        list = curl_slist_append(list, h_accept);
    }
    list = curl_slist_append(list, "Expect:");
    snprintf(url, sizeof url, "%s%s%s%s", c->endpoint, path, query ? "?" : "", query ? query : "");

    CURL *h = w->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    if (!strcmp(method, "GET")) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    ahl_buf_reset(&w->body);
    w->received = 0;
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(list);
    if (rc != CURLE_OK) {
        failf(w, "transport: %s (%ld)", curl_easy_strerror(rc), (long)rc);
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    w->bytes += w->received;
    return status;
}

/* The decimal value of the JSON string member `"name":"123"` in the response, or 0. */
static uint64_t json_version(const char *body, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\":\"", name);
    const char *p = strstr(body, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static const char *my_imageset(const struct worker *w)
{
    return w->cfg->imagesets[(size_t)w->index % w->cfg->n_imagesets];
}

static int read_version(struct worker *w)
{
    char path[256];
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageSet", w->cfg->datastore,
             my_imageset(w));
    long st = send_signed(w, "POST", path, NULL, NULL);
    if (st != 200) {
        failf(w, "GetImageSet %s: status %ld", my_imageset(w), st);
        return -1;
    }
    w->version = json_version(w->body.data, "versionId");
    return w->version ? 0 : -1;
}

static void record(struct worker *w, uint64_t t0)
{
    if (w->n_lat == w->cap_lat) {
        size_t cap = w->cap_lat ? w->cap_lat * 2 : 4096;
        double *p = realloc(w->lat_ms, cap * sizeof *p);
        if (!p)
            return;
        w->lat_ms = p;
        w->cap_lat = cap;
    }
    w->lat_ms[w->n_lat++] = (double)(ahl_mono_ns() - t0) / 1e6;
}

static int one_request(struct worker *w, long k)
{
    const struct config *c = w->cfg;
    char path[512], query[64], body[1024];
    uint64_t t0 = ahl_mono_ns();
    long st;
    switch (c->mode) {
    case M_GET_DATASTORE:
        snprintf(path, sizeof path, "/datastore/%s", c->datastore);
        st = send_signed(w, "GET", path, NULL, NULL);
        break;
    case M_UPDATE: {
        /* A new name each time, so every update really changes the document. */
        char doc[256], b64[512];
        struct ahl_buf b;
        int n = snprintf(doc, sizeof doc,
                         "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":"
                         "\"Bench^C%d^N%ld\"}}}",
                         w->index, k);
        ahl_buf_init(&b, sizeof b64 - 1);
        if (ahl_base64_encode((const uint8_t *)doc, (size_t)n, &b) < 0)
            return -1;
        snprintf(b64, sizeof b64, "%s", b.data);
        ahl_buf_release(&b);
        snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/updateImageSetMetadata",
                 c->datastore, my_imageset(w));
        snprintf(query, sizeof query, "latestVersion=%llu", (unsigned long long)w->version);
        /* The body is the updateImageSetMetadataUpdates union itself (its payload member). */
        snprintf(body, sizeof body, "{\"DICOMUpdates\":{\"updatableAttributes\":\"%s\"}}", b64);
        st = send_signed(w, "POST", path, query, body);
        if (st == 409) {
            w->conflicts++;
            record(w, t0);
            if (c->check)
                failf(w, "update %s: unexpected conflict (%ld)", my_imageset(w), k);
            return read_version(w);
        }
        if (st == 200) {
            uint64_t v = json_version(w->body.data, "latestVersionId");
            if (c->check && v != w->version + 1)
                failf(w, "update %s: version did not advance by one (now %ld)", my_imageset(w),
                      (long)v);
            w->version = v;
        }
        break;
    }
    case M_METADATA:
        snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageSetMetadata", c->datastore,
                 c->imagesets[0]);
        st = send_signed(w, "POST", path, NULL, NULL);
        break;
    case M_GET: {
        size_t i = ((size_t)k * (size_t)c->connections + (size_t)w->index) % c->n_paths;
        snprintf(path, sizeof path, "%s", c->paths[i]);
        char *q = strchr(path, '?');
        if (q)
            *q++ = '\0';
        st = send_signed(w, "GET", path, q, NULL);
        break;
    }
    case M_FRAMES: {
        size_t i = ((size_t)k * (size_t)c->connections + (size_t)w->index) % c->n_frames;
        snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageFrame", c->datastore,
                 c->frame_sets[i]);
        snprintf(body, sizeof body, "{\"imageFrameId\":\"%s\"}", c->frame_ids[i]);
        st = send_signed(w, "POST", path, NULL, body);
        break;
    }
    default:
        return -1;
    }
    record(w, t0);
    if (st == 200) {
        w->ok++;
        return 0;
    }
    if (st > 0)
        failf(w, "%s: status %ld", w->body.data, st);
    return -1;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    const struct config *c = w->cfg;
    long quota = c->requests ? c->requests / c->connections +
                                   (w->index < c->requests % c->connections ? 1 : 0)
                             : -1;
    if (c->mode == M_UPDATE && read_version(w) < 0)
        return NULL;
    for (long k = 0; quota < 0 || k < quota; k++) {
        if (quota < 0 && ahl_mono_ns() >= g_deadline_ns)
            break;
        if (one_request(w, k) < 0 && c->check)
            break;
    }
    return NULL;
}

/* Fetches the metadata once and inflates it: the JSON-equivalent size of one response. */
static int metadata_json_size(struct worker *w, size_t *gz, size_t *json)
{
    char path[256];
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageSetMetadata", w->cfg->datastore,
             w->cfg->imagesets[0]);
    ahl_buf_init(&w->body, (size_t)1 << 30);
    long st = send_signed(w, "POST", path, NULL, NULL);
    if (st != 200) {
        fprintf(stderr, "ahilite-bench http-load: GetImageSetMetadata: status %ld\n", st);
        return -1;
    }
    *gz = w->body.len;
    if (w->cfg->dump_metadata) {
        FILE *f = fopen(w->cfg->dump_metadata, "wb");
        if (!f || fwrite(w->body.data, 1, w->body.len, f) != w->body.len || fclose(f) != 0) {
            fprintf(stderr, "ahilite-bench http-load: cannot write %s\n", w->cfg->dump_metadata);
            return -1;
        }
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 31) != Z_OK)
        return -1;
    unsigned char out[1 << 16];
    size_t total = 0;
    int zr;
    z.next_in = (Bytef *)w->body.data;
    z.avail_in = (uInt)w->body.len;
    do {
        z.next_out = out;
        z.avail_out = sizeof out;
        zr = inflate(&z, Z_NO_FLUSH);
        total += sizeof out - z.avail_out;
    } while (zr == Z_OK);
    inflateEnd(&z);
    ahl_buf_release(&w->body);
    if (zr != Z_STREAM_END) {
        fprintf(stderr, "ahilite-bench http-load: the metadata is not a whole gzip stream\n");
        return -1;
    }
    *json = total;
    return 0;
}

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: ahilite-bench http-load --endpoint URL --access-key K --secret-key S"
               " [--region R]\n"
               "           --datastore ID --mode get-datastore|update|metadata|frames|get\n"
               "           [--imagesets ID,...] [--frames SET:FRAME,... | --frames-file FILE]\n"
               "           [--paths FILE] [--accept TYPE] [--unsigned]\n"
               "           [--connections N] [--seconds T | --requests N] [--check]\n"
               "           [--dump-metadata FILE]\n"
               "  sends SigV4-signed requests to a running ahilite serve; prints one JSON"
               " line.\n");
    return status;
}

/* get mode: the lines of --paths FILE that start with '/', kept for the whole run. 0, or -1 after
 * saying why. */
static int read_paths(const char *file, struct config *cfg)
{
    if (!file) {
        fprintf(stderr, "ahilite-bench http-load: --mode get needs --paths FILE\n");
        return -1;
    }
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "ahilite-bench http-load: cannot open %s\n", file);
        return -1;
    }
    char line[1024];
    while (cfg->n_paths < MAX_IDS && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '/' && !(cfg->paths[cfg->n_paths++] = strdup(line)))
            break;
    }
    fclose(f);
    if (!cfg->n_paths || !cfg->paths[cfg->n_paths - 1]) {
        fprintf(stderr, "ahilite-bench http-load: no paths (lines starting with /) in %s\n", file);
        return -1;
    }
    return 0;
}

/* The whole of a file as a string, or NULL. */
static char *read_text(const char *file)
{
    FILE *f = fopen(file, "rb");
    char *s = NULL;
    long n;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (s = malloc((size_t)n + 1)) && fread(s, 1, (size_t)n, f) == (size_t)n) {
        s[n] = '\0';
    } else {
        free(s);
        s = NULL;
    }
    if (f)
        fclose(f);
    return s;
}

/* Splits s, SET:FRAME pairs separated by commas, spaces or line ends, in place into
 * cfg->frame_sets and cfg->frame_ids. 0, or -1 out of memory. */
static int add_frames(char *s, struct config *cfg)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ':';
    cfg->frame_sets = malloc(cap * sizeof *cfg->frame_sets);
    cfg->frame_ids = malloc(cap * sizeof *cfg->frame_ids);
    if (!cfg->frame_sets || !cfg->frame_ids)
        return -1;
    for (char *tok = s; *tok;) {
        size_t n = strcspn(tok, ", \r\n");
        char *next = tok + n + (tok[n] ? 1 : 0), *colon = memchr(tok, ':', n);
        tok[n] = '\0';
        if (colon) {
            *colon = '\0';
            cfg->frame_sets[cfg->n_frames] = tok;
            cfg->frame_ids[cfg->n_frames++] = colon + 1;
        }
        tok = next;
    }
    return 0;
}

static size_t split_list(char *s, char **out, size_t cap)
{
    size_t n = 0;
    for (char *p = s; p && *p && n < cap;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        out[n++] = p;
        p = comma ? comma + 1 : NULL;
    }
    return n;
}

/* Reads the options into cfg and *mode. The id lists are split in place, in argv's own strings.
 * 0, or -1 after printing why (a usage error). */
static int parse_args(int argc, char **argv, struct config *cfg, const char **mode)
{
    char *frames_arg = NULL, *sets_arg = NULL;
    const char *paths_arg = NULL, *frames_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--check")) {
            cfg->check = 1;
            continue;
        }
        if (!strcmp(a, "--unsigned")) {
            cfg->unsigned_requests = 1;
            continue;
        }
        if (!v)
            return usage(stderr, -1);
        i++;
        if (!strcmp(a, "--endpoint"))
            cfg->endpoint = v;
        else if (!strcmp(a, "--access-key"))
            cfg->access_key = v;
        else if (!strcmp(a, "--secret-key"))
            cfg->secret_key = v;
        else if (!strcmp(a, "--region"))
            cfg->region = v;
        else if (!strcmp(a, "--datastore"))
            cfg->datastore = v;
        else if (!strcmp(a, "--mode"))
            *mode = v;
        else if (!strcmp(a, "--imagesets"))
            sets_arg = v;
        else if (!strcmp(a, "--frames"))
            frames_arg = v;
        else if (!strcmp(a, "--frames-file"))
            frames_file = v;
        else if (!strcmp(a, "--connections"))
            cfg->connections = (int)strtol(v, NULL, 10);
        else if (!strcmp(a, "--seconds"))
            cfg->seconds = strtod(v, NULL);
        else if (!strcmp(a, "--dump-metadata"))
            cfg->dump_metadata = v;
        else if (!strcmp(a, "--requests"))
            cfg->requests = strtol(v, NULL, 10);
        else if (!strcmp(a, "--paths"))
            paths_arg = v;
        else if (!strcmp(a, "--accept"))
            cfg->accept = v;
        else
            return usage(stderr, -1);
    }
    int need_keys = !cfg->unsigned_requests, need_store = !*mode || strcmp(*mode, "get");
    if (!cfg->endpoint || (need_keys && (!cfg->access_key || !cfg->secret_key)) ||
        (need_store && !cfg->datastore) || !*mode || cfg->connections < 1 ||
        cfg->connections > MAX_CONN || strncmp(cfg->endpoint, "http://", 7))
        return usage(stderr, -1);
    snprintf(cfg->host, sizeof cfg->host, "%s", cfg->endpoint + 7);
    cfg->host[strcspn(cfg->host, "/")] = '\0';
    if (!strcmp(*mode, "get-datastore"))
        cfg->mode = M_GET_DATASTORE;
    else if (!strcmp(*mode, "update"))
        cfg->mode = M_UPDATE;
    else if (!strcmp(*mode, "metadata"))
        cfg->mode = M_METADATA;
    else if (!strcmp(*mode, "frames"))
        cfg->mode = M_FRAMES;
    else if (!strcmp(*mode, "get"))
        cfg->mode = M_GET;
    else
        return usage(stderr, -1);
    if (cfg->mode == M_GET && read_paths(paths_arg, cfg) < 0)
        return -1;
    cfg->n_imagesets = split_list(sets_arg, cfg->imagesets, MAX_IDS);
    if (frames_file && !(frames_arg = cfg->frames_text = read_text(frames_file))) {
        fprintf(stderr, "ahilite-bench http-load: cannot read %s\n", frames_file);
        return -1;
    }
    if (frames_arg && add_frames(frames_arg, cfg) < 0) {
        fprintf(stderr, "ahilite-bench http-load: out of memory for the frames\n");
        return -1;
    }
    if ((cfg->mode == M_UPDATE || cfg->mode == M_METADATA) && !cfg->n_imagesets) {
        fprintf(stderr, "ahilite-bench http-load: --mode %s needs --imagesets\n", *mode);
        return -1;
    }
    if (cfg->mode == M_FRAMES && !cfg->n_frames) {
        fprintf(stderr, "ahilite-bench http-load: --mode frames needs --frames SET:FRAME,... or "
                        "--frames-file FILE\n");
        return -1;
    }
    return 0;
}

int ahl__bench_http_load(int argc, char **argv)
{
    static struct config cfg = {.region = "us-east-1", .connections = 8, .seconds = 5};
    const char *mode = NULL;
    if (ahl__bench_wants_help(argc, argv, 1))
        return usage(stdout, 0);
    if (parse_args(argc, argv, &cfg, &mode) < 0)
        return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    static struct worker workers[MAX_CONN];
    for (int i = 0; i < cfg.connections; i++) {
        struct worker *w = &workers[i];
        w->cfg = &cfg;
        w->index = i;
        w->curl = curl_easy_init();
        ahl_buf_init(&w->body, 64 * 1024);
        curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, w);
        curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(w->curl, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(w->curl, CURLOPT_TIMEOUT, 60L);
    }

    size_t gz = 0, json = 0;
    int status = 1;
    double *all = NULL;
    if (cfg.mode == M_METADATA && metadata_json_size(&workers[0], &gz, &json) < 0)
        goto out;
    if (cfg.mode == M_METADATA)
        ahl_buf_init(&workers[0].body, 64 * 1024);

    uint64_t start = ahl_mono_ns();
    g_deadline_ns = start + (uint64_t)(cfg.seconds * 1e9);
    pthread_t th[MAX_CONN];
    for (int i = 0; i < cfg.connections; i++)
        pthread_create(&th[i], NULL, run, &workers[i]);
    for (int i = 0; i < cfg.connections; i++)
        pthread_join(th[i], NULL);
    double elapsed = (double)(ahl_mono_ns() - start) / 1e9;

    long ok = 0, conflicts = 0, failures = 0;
    uint64_t bytes = 0;
    size_t n = 0;
    const char *first_fail = NULL;
    for (int i = 0; i < cfg.connections; i++) {
        ok += workers[i].ok;
        conflicts += workers[i].conflicts;
        failures += workers[i].failures;
        bytes += workers[i].bytes;
        n += workers[i].n_lat;
        if (!first_fail && workers[i].fail_msg[0])
            first_fail = workers[i].fail_msg;
    }
    all = malloc((n ? n : 1) * sizeof *all);
    size_t o = 0;
    for (int i = 0; i < cfg.connections && all; i++) {
        memcpy(all + o, workers[i].lat_ms, workers[i].n_lat * sizeof *all);
        o += workers[i].n_lat;
    }
    double median = 0, p99 = 0;
    if (all && n) {
        median = ahl__bench_pct(all, n, 0.5);
        p99 = ahl__bench_pct(all, n, 0.99);
    }
    printf("{\"mode\":\"%s\",\"connections\":%d,\"seconds\":%.3f,\"ok\":%ld,\"conflicts\":%ld,"
           "\"failures\":%ld,\"per_s\":%.1f,\"median_ms\":%.3f,\"p99_ms\":%.3f,\"bytes\":%llu",
           mode, cfg.connections, elapsed, ok, conflicts, failures, (double)ok / elapsed, median,
           p99, (unsigned long long)bytes);
    if (cfg.mode == M_METADATA)
        printf(",\"gzip_bytes\":%zu,\"json_bytes\":%zu,\"json_mb_s\":%.1f,\"wire_mb_s\":%.1f", gz,
               json, (double)ok * (double)json / elapsed / 1e6, (double)bytes / elapsed / 1e6);
    if (cfg.mode == M_FRAMES)
        printf(",\"frame_mb_s\":%.1f", (double)bytes / elapsed / 1e6);
    if (cfg.mode == M_GET)
        printf(",\"body_mb_s\":%.1f", (double)bytes / elapsed / 1e6);
    printf("}\n");
    if (first_fail)
        fprintf(stderr, "ahilite-bench http-load: first failure: %s\n", first_fail);
    status = failures ? 1 : 0;
out:
    for (int i = 0; i < cfg.connections; i++) {
        curl_easy_cleanup(workers[i].curl);
        ahl_buf_release(&workers[i].body);
        free(workers[i].lat_ms);
    }
    free(all);
    for (size_t i = 0; i < cfg.n_paths; i++)
        free(cfg.paths[i]);
    free(cfg.frame_sets);
    free(cfg.frame_ids);
    free(cfg.frames_text);
    curl_global_cleanup();
    return status;
}
