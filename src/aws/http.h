/* A plain HTTP client for POSTing one body at a time (the event webhook, docs/events.md).
 *
 * One libcurl easy handle per client keeps the connection alive between posts; a client is used
 * by one thread at a time. Only http:// and https:// URLs are accepted; redirects are not
 * followed; the reply's body is read and dropped (at most 64 KiB of it). Messages show the URL
 * without its query, which may hold a secret.
 *
 *     struct ahl_http *h;
 *     if (ahl_http_open(url, 10000, &h, &err) < 0) ...
 *     long status;
 *     rc = ahl_http_post(h, "application/json", body, n, &status, &err);  // 0: a 2xx reply
 *     ahl_http_close(h);
 *
 * Errors: AHL_EINVAL for a URL that is not http(s), AHL_ENOMEM; ahl_http_post: AHL_EIO for a
 * transport failure or a reply that is not 2xx (status holds it, 0 when there was none), with err
 * saying which.
 */
#ifndef AHL_AWS_HTTP_H
#define AHL_AWS_HTTP_H

#include <stddef.h>

#include "base/err.h"

struct ahl_http;

/* timeout_ms bounds each post, connection included (0: 10 s). */
int ahl_http_open(const char *url, unsigned timeout_ms, struct ahl_http **out, struct ahl_err *err);
int ahl_http_post(struct ahl_http *h, const char *content_type, const void *body, size_t n,
                  long *status, struct ahl_err *err);
/* NULL is accepted. */
void ahl_http_close(struct ahl_http *h);

#endif /* AHL_AWS_HTTP_H */
