/* ahl_api_invoke: one operation run in-process, the way server.c runs it once a request is
 * authenticated (route, decode, handler, JSON out), without HTTP or signing. Benchmarks use it to
 * time an operation's own work apart from the network stack. */
#include "api/ops_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/banned.h"

int ahl_api_invoke(struct ahl_meta *meta, const char *method, const char *path, const char *query,
                   const char *body, struct ahl_buf *response, struct ahl_err *err)
{
    struct ahl_api_service svc;
    struct ahl_api_http http = {.method = method,
                                .path = path,
                                .query = query,
                                .body = body,
                                .body_len = body ? strlen(body) : 0};
    struct ahl_api_resp resp = {.fd = -1};
    enum ahl_op_id op;
    json_t *in = NULL;
    char *text = NULL;
    int rc;

    ahl_err_clear(err);
    memset(&svc, 0, sizeof svc);
    svc.meta = meta;
    svc.store = ahl_meta_store(meta);
    memcpy(svc.region, "us-east-1", sizeof "us-east-1");
    memcpy(svc.account_id, "000000000000", sizeof "000000000000");
    ahl_buf_init(&resp.raw, AHL_BUF_UNLIMITED);
    if ((rc = ahl_api_route(method, path, &op, err)) < 0 ||
        (rc = ahl_api_decode(op, &http, &in, err)) < 0)
        goto out;
    if (!(resp.json = json_object())) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = ahl__api_handlers[op](&svc, in, &resp, err)) < 0)
        goto out;
    if (resp.fd >= 0 || resp.raw.len) {
        /* A raw body: its bytes, read as the connection would send them. */
        char chunk[65536];
        ssize_t n;
        rc = ahl_buf_add(response, resp.raw.data, resp.raw.len);
        while (rc == 0 && resp.fd >= 0 && (n = read(resp.fd, chunk, sizeof chunk)) > 0)
            rc = ahl_buf_add(response, chunk, (size_t)n);
    } else if (!(text = json_dumps(resp.json, JSON_COMPACT)) ||
               (rc = ahl_buf_add(response, text, strlen(text))) < 0) {
        rc = AHL_ENOMEM;
    }
    if (rc < 0)
        rc = ahl_fail(err, rc == AHL_ENOMEM ? rc : AHL_EINTERNAL, "cannot hold the response: %s",
                      ahl_strerror(rc));
out:
    free(text);
    if (resp.fd >= 0)
        close(resp.fd);
    json_decref(in);
    json_decref(resp.json);
    ahl_buf_release(&resp.raw);
    return rc;
}
