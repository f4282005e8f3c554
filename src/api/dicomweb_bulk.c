/* GetDICOMBulkdata: one binary value that the instance's metadata gives as a BulkDataURI
 * (docs/dicomweb.md#bulk-data). The importer keeps top-level binary values larger than the Part-10
 * reader's inline limit as content-addressed objects in the frame store, listed in the instance
 * node's "BulkData" map; the id in the path is such an object's content id, and an id the
 * instance does not list is not found. The object is checked against its id before a byte is
 * sent (a damaged object is a server-side error, never served) and copied into the response
 * spool in pieces, so memory holds one piece whatever the value's size.
 *
 * Answer: multipart/related; type="application/octet-stream" with one part holding the bytes
 * (little-endian values, as in Explicit VR Little Endian), or the bare bytes when the first media
 * range of Accept is application/octet-stream. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/dicomweb_internal.h"
#include "base/log.h"
#include "base/text.h"
#include "frames/frames.h"
#include "base/banned.h"

/* true when the first media range of accept is application/octet-stream; false for none,
 * multipart/related, * / * and anything else a client may send. */
static bool wants_single(const char *accept)
{
    static const char type[] = "application/octet-stream";
    const char *p = accept ? accept : "";
    p += strspn(p, " \t");
    return strncasecmp(p, type, sizeof type - 1) == 0 && strchr(";, \t", p[sizeof type - 1]);
}

/* The "BulkData" entry of instance whose ID is id, or NULL. */
static const json_t *find_entry(const json_t *instance, const char *id)
{
    const char *tag;
    const json_t *e;
    json_object_foreach((json_t *)json_object_get(instance, "BulkData"), tag, e)
    {
        const char *eid = json_string_value(json_object_get(e, "ID"));
        if (eid && !strcmp(eid, id))
            return e;
    }
    return NULL;
}

/* Copies the rest of fd into the spool. */
static int copy_fd(int fd, struct ahl__api_spool *sp)
{
    char buf[65536];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return AHL_EIO;
        if (r == 0)
            return 0;
        int rc = ahl__api_spool_write(sp, buf, (size_t)r);
        if (rc < 0)
            return rc;
    }
}

int ahl__dicomweb_bulkdata(struct ahl_api_service *svc, struct ahl__dicomweb_request *rq,
                           const json_t *instance, const char *id, struct ahl_api_resp *resp,
                           struct ahl_err *err)
{
    struct ahl__api_spool sp;
    char boundary[33];
    int rc, fd = -1;
    uint64_t size = 0;
    bool single = wants_single(rq->accept);

    if (!find_entry(instance, id))
        return ahl_fail(err, AHL_ENOTFOUND, "Bulk data %.64s is not in the instance", id);
    if (!svc->frames_ready)
        return ahl_fail(err, AHL_ENOTFOUND, "Bulk data %.64s: this server has no frame store", id);
    rc = ahl_framestore_open_verified(&svc->frames, id, AHL_TS_EXPLICIT_LE, &fd, &size, err);
    if (rc == AHL_ECORRUPT)
        ahl_error("DICOMweb bulk data: %s; run `ahilite check`", err->msg);
    if (rc < 0)
        return rc == AHL_ENOTFOUND
                   ? ahl_fail(err, AHL_EINTERNAL, "Bulk data %.64s is listed but not stored", id)
                   : rc;
    if ((rc = ahl_random_id(boundary)) < 0) {
        close(fd);
        return ahl_fail(err, rc, "cannot make a multipart boundary");
    }
    ahl__api_spool_init(&sp, svc, resp);
    char head[160];
    int hn = snprintf(head, sizeof head, "--%s\r\nContent-Type: application/octet-stream\r\n\r\n",
                      boundary);
    rc = single ? 0 : ahl__api_spool_write(&sp, head, (size_t)hn);
    rc = rc ? rc : copy_fd(fd, &sp);
    if (rc == 0 && !single) {
        hn = snprintf(head, sizeof head, "\r\n--%s--\r\n", boundary);
        rc = ahl__api_spool_write(&sp, head, (size_t)hn);
    }
    close(fd);
    if (rc < 0)
        rc = ahl_fail(err, rc, "cannot spool the bulk data: %s", ahl_strerror(rc));
    if ((rc = ahl__api_spool_finish(&sp, rc, "bulk data", resp, err)) < 0)
        return rc;
    if (single)
        snprintf(rq->content_type, sizeof rq->content_type, "application/octet-stream");
    else
        snprintf(rq->content_type, sizeof rq->content_type,
                 "multipart/related; type=\"application/octet-stream\"; boundary=%s", boundary);
    resp->content_type = rq->content_type;
    rq->status = 200;
    return 0;
}
