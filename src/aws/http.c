/* The HTTP client of http.h, and libcurl's global initialisation for src/aws (aws_internal.h). */
#include "aws/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_internal.h"
#include "base/banned.h"

#define MAX_REPLY (64 * 1024)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : AHL_EINTERNAL;
}

int ahl__aws_curl_init(void)
{
    pthread_once(&curl_once, curl_init);
    return curl_init_rc;
}

struct ahl_http {
    CURL *curl;
    char *url;
    int shown; /* the bytes of url messages show: its query may hold a secret */
    long timeout_ms;
};

int ahl_http_open(const char *url, unsigned timeout_ms, struct ahl_http **out, struct ahl_err *err)
{
    *out = NULL;
    int rc = ahl__aws_curl_init();
    if (rc < 0)
        return ahl_fail(err, rc, "libcurl could not be initialised");
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        return ahl_fail(err, AHL_EINVAL, "'%.200s' is not an http:// or https:// URL",
                        url ? url : "");
    struct ahl_http *h = calloc(1, sizeof *h);
    if (!h || !(h->url = strdup(url)) || !(h->curl = curl_easy_init())) {
        ahl_http_close(h);
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    }
    h->timeout_ms = timeout_ms ? (long)timeout_ms : 10000;
    size_t shown = strcspn(url, "?#");
    h->shown = shown > 200 ? 200 : (int)shown;
    *out = h;
    return 0;
}

/* Drops the reply's body, refusing more than MAX_REPLY bytes. */
static size_t drop(char *p, size_t size, size_t n, void *ctx)
{
    size_t *got = ctx;
    (void)p;
    *got += size * n;
    return *got > MAX_REPLY ? 0 : size * n;
}

int ahl_http_post(struct ahl_http *h, const char *content_type, const void *body, size_t n,
                  long *status, struct ahl_err *err)
{
    char ct[128];
    struct curl_slist *hdrs = NULL, *t;
    size_t got = 0;
    *status = 0;
    snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
    if (!(t = curl_slist_append(hdrs, ct)))
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    hdrs = t;
    /* No "Expect: 100-continue" round trip before the body. */
    if (!(t = curl_slist_append(hdrs, "Expect:"))) {
        curl_slist_free_all(hdrs);
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    }
    hdrs = t;
    CURL *c = h->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, drop);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(hdrs);
    if (cc != CURLE_OK)
        return ahl_fail(err, AHL_EIO, "POST %.*s: %s", h->shown, h->url, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (*status < 200 || *status > 299)
        return ahl_fail(err, AHL_EIO, "POST %.*s: HTTP %ld", h->shown, h->url, *status);
    return 0;
}

void ahl_http_close(struct ahl_http *h)
{
    if (!h)
        return;
    if (h->curl)
        curl_easy_cleanup(h->curl);
    free(h->url);
    free(h);
}
