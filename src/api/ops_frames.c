/* GetImageFrame: the stored bytes of one frame, with the Content-Type of its stored transfer
 * syntax, from the frame store (DATA_DIR/frames): held in memory, or streamed from its file.
 *
 * A frame is served only if the image set lists it: the store's frame index (kept by the engine
 * with each version, src/meta/frameidx.c) holds a row per (image set, frame id) that some
 * version of the set lists under an instance's ImageFrames, with that instance's
 * StoredTransferSyntaxUID. An id the set does not list is a ResourceNotFoundException even when
 * another set holds those bytes (frame ids are content addresses and may be shared), and the
 * frames of a deleted set are gone with it. The request costs two row lookups and an open(),
 * whatever the size of the set, plus the check below.
 *
 * Damaged frames are never served. A frame is read whole and its bytes hashed and compared with
 * the content address it is named by, its file opened without following links, then kept in
 * memory with its JPH boxes in front (ahl_framestore_hold: serve --frame-cache), so that later
 * requests cost one lstat proving the file unchanged and are sent from those checked bytes in one
 * write; a file changed since is read and checked again. A damaged frame is an
 * InternalServerException saying the stored frame is damaged, with an error line in the log
 * (docs/frames.md#damaged-frames-are-never-served). Without the cache, or for a frame too large
 * for it, the file is checked at every request (ahl_framestore_open_verified) and streamed from
 * its descriptor.
 *
 * HTJ2K lossless frames (image/jph) are answered as JPH files (ISO/IEC 15444-15): a header of
 * about 100 bytes built from the codestream's SIZ (ahl_jph_header), then the stored codestream,
 * unchanged. A client that asks for the bare codestream
 * (Accept: image/jphc, preferred to image/jph) gets it labelled image/jphc.
 */
#include "api/ops_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/log.h"
#include "blob/framestore.h"
#include "base/banned.h"

/* The q value (0..1000) an Accept header gives media type `type`, or -1 when no range covers
 * it. The most specific range wins: the type itself (*spec 2), then its major type with a
 * wildcard subtype (1), then the wildcard of everything (0). A missing q is 1. */
static int accept_q(const char *accept, const char *type, int *spec_out)
{
    int best = -1, best_spec = -1;
    const char *p = accept;
    size_t tlen = strlen(type);
    const char *slash = strchr(type, '/');
    size_t major = slash ? (size_t)(slash - type) : tlen;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *r = p;
        while (n && (*r == ' ' || *r == '	'))
            r++, n--;
        size_t rlen = strcspn(r, ";, 	");
        if (rlen > n)
            rlen = n;
        int spec = -1;
        if (rlen == tlen && !strncasecmp(r, type, tlen))
            spec = 2;
        else if (rlen == major + 2 && !strncasecmp(r, type, major) && !strncmp(r + major, "/*", 2))
            spec = 1;
        else if (rlen == 3 && !strncmp(r, "*/*", 3))
            spec = 0;
        if (spec > best_spec) {
            int q = 1000;
            for (const char *a = r + rlen; a < r + n; a++) {
                if (*a != ';')
                    continue;
                a++;
                while (a < r + n && (*a == ' ' || *a == '	'))
                    a++;
                if (a + 2 <= r + n && (a[0] == 'q' || a[0] == 'Q') && a[1] == '=') {
                    /* q = 0, 1 or 0.ddd */
                    q = a + 2 < r + n && a[2] == '1' ? 1000 : 0;
                    if (a + 3 < r + n && a[2] == '0' && a[3] == '.') {
                        int scale = 100;
                        for (const char *d = a + 4; d < r + n && *d >= '0' && *d <= '9' && scale;
                             d++, scale /= 10)
                            q += (*d - '0') * scale;
                    }
                }
            }
            best = q;
            best_spec = spec;
        }
        p = end ? end + 1 : NULL;
    }
    *spec_out = best_spec;
    return best;
}

/* Does the client prefer the bare HTJ2K codestream to the JPH file? Only when Accept gives
 * image/jphc a q above zero and above image/jph's, or the same q through a more specific range
 * ("image/jphc" beside a wildcard). The JPH file is the default: no Accept, a wildcard,
 * application/octet-stream, or both types named alike. */
static bool wants_bare_codestream(const char *accept)
{
    int jphc_spec, jph_spec;
    if (!accept)
        return false;
    int jphc = accept_q(accept, "image/jphc", &jphc_spec);
    int jph = accept_q(accept, "image/jph", &jph_spec);
    return jphc > 0 && (jphc > jph || (jphc == jph && jphc_spec > jph_spec));
}

/* The JPH boxes before an HTJ2K codestream (ahl_frame_wrap_fn): built once, when the frame is
 * read into memory. A codestream JPH cannot describe is AHL_EUNSUPPORTED (the server's failure,
 * reported as such), never damage: the bytes were checked against their id. */
static int jph_wrap(const uint8_t *data, size_t len, struct ahl_buf *prefix, struct ahl_err *err)
{
    int rc = ahl_jph_header(data, len, len, prefix, err);
    return rc == AHL_ENOMEM || rc == 0 ? rc : ahl_fail(err, AHL_EUNSUPPORTED, "%s", err->msg);
}

/* The JPH boxes of a frame streamed from resp->fd, into resp->raw: 0, AHL_EUNSUPPORTED (unreadable,
 * or a codestream JPH cannot describe) or AHL_ENOMEM. */
static int stream_jph_header(struct ahl_api_resp *resp, struct ahl_err *err)
{
    /* SOC and a SIZ of up to three components fit in 64 bytes. */
    uint8_t head[64];
    ssize_t n = pread(resp->fd, head, sizeof head, 0);
    if (n < 0)
        return ahl_fail(err, AHL_EUNSUPPORTED, "cannot read it: %s", strerror(errno));
    int rc = ahl_jph_header(head, (size_t)n, resp->fd_size, &resp->raw, err);
    return rc == AHL_ENOMEM || rc == 0 ? rc : ahl_fail(err, AHL_EUNSUPPORTED, "%s", err->msg);
}

int ahl__op_GetImageFrame(struct ahl_api_service *svc, const json_t *in, struct ahl_api_resp *resp,
                          struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId"), *id = ahl_api_str(in, "imageSetId");
    const char *frame_id =
        ahl_api_str(json_object_get(in, "imageFrameInformation"), "imageFrameId");
    struct ahl_store_tx *tx = NULL;
    struct ahl_imageset_rec set;
    struct ahl_frame_rec frame;
    int rc;

    if ((rc = ahl_store_begin(svc->store, false, &tx)) < 0)
        return ahl_meta_store_fail(err, rc, "handling image set");
    rc = ahl_store_imageset_get(tx, ds, id, &set);
    if (rc == AHL_ENOTFOUND) {
        rc = ahl_fail(err, AHL_ENOTFOUND, "image set %s not found in data store %s", id, ds);
        goto out;
    }
    if (rc == 0 && ahl_imageset_state_parse(set.state) == AHL_IMAGESET_DELETED) {
        rc = ahl_fail(err, AHL_ENOTFOUND, "image set %s of data store %s was deleted", id, ds);
        goto out;
    }
    if (rc < 0) {
        rc = ahl_meta_store_fail(err, rc, "handling image set");
        goto out;
    }
    rc = ahl_store_frame_get(tx, id, frame_id, &frame);
    if (rc == AHL_ENOTFOUND) {
        rc = ahl_fail(err, rc, "Image frame %s does not exist in image set %s", frame_id, id);
        goto out;
    }
    if (rc < 0) {
        rc = ahl_meta_store_fail(err, rc, "handling image frame");
        goto out;
    }
    ahl_store_rollback(tx);
    tx = NULL;
    /* An access (docs/decisions.md#storage-tier-and-last-access), recorded in memory: a read
     * never becomes a write transaction (meta/access.h). */
    ahl_meta_touch(svc->meta, id, set.last_accessed_at_ms);
    if (!svc->frames_ready) {
        rc = ahl_fail(err, AHL_ENOTFOUND, "Image frame %s: this server has no frame store",
                      frame_id);
        goto out;
    }
    const char *ts = frame.transfer_syntax[0] ? frame.transfer_syntax : NULL;
    resp->content_type = ahl_frame_content_type(ts);
    bool jph = !strcmp(resp->content_type, "image/jph");
    if (jph && wants_bare_codestream(resp->accept))
        resp->content_type = "image/jphc";
    bool wrapped = !strcmp(resp->content_type, "image/jph");
    rc = ahl_framestore_hold(&svc->frames, frame_id, ts, jph ? jph_wrap : NULL, &resp->hold, err);
    if (rc == 0) {
        resp->body = wrapped ? resp->hold->prefix : resp->hold->data;
        resp->body_len = resp->hold->len + (wrapped ? resp->hold->prefix_len : 0);
        goto out;
    }
    if (rc == AHL_ETOOBIG) { /* no cache, or a frame too large for it: streamed from its file */
        ahl_err_clear(err);
        rc = ahl_framestore_open_verified(&svc->frames, frame_id, ts, &resp->fd, &resp->fd_size,
                                          err);
        if (rc == 0 && wrapped)
            rc = stream_jph_header(resp, err);
    }
    if (rc == AHL_ENOTFOUND) {
        rc = ahl_fail(err, rc,
                      "Image frame %s is listed in image set %s but its pixel data is missing",
                      frame_id, id);
    } else if (rc == AHL_ECORRUPT) {
        ahl_error("GetImageFrame: image set %s: %s; run `ahilite check`", id, err->msg);
        rc = ahl_fail(err, rc,
                      "Image frame %s of image set %s cannot be served: the stored frame is "
                      "damaged",
                      frame_id, id);
    } else if (rc == AHL_EUNSUPPORTED) {
        ahl_error("GetImageFrame: image set %s frame %s: cannot wrap it as JPH: %s", id, frame_id,
                  err->msg);
        /* Whatever the reason (damage, a codestream JPH cannot describe), it is the server's:
         * the client asked for a frame that exists. */
        rc = ahl_fail(err, AHL_EINTERNAL,
                      "Image frame %s of image set %s cannot be served as image/jph", frame_id, id);
    }
out:
    ahl_store_rollback(tx);
    if (rc < 0 && resp->fd >= 0) {
        close(resp->fd);
        resp->fd = -1;
    }
    return rc;
}
