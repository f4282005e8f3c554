/* GetDICOMInstanceFrames: frames of one instance as multipart/related, in the transfer syntax the
 * Accept header names (docs/dicomweb.md#frames):
 *   - transfer-syntax=* : each frame's stored bytes, labelled with the stored syntax;
 *   - none, or 1.2.840.10008.1.2.1 (Explicit VR Little Endian, DICOMweb's default): the stored
 *     frame decoded by the frames module into native little-endian samples (export.h);
 *   - the stored syntax itself: the stored bytes;
 *   - anything else: 406, which tells clients to retry with '*', as AWS answers.
 * The Accept negotiation lives here and is shared with the retrieve resources. Frames are read
 * with ahl_framestore_read_verified, so a damaged frame is never served. The answer is spooled
 * (spool.c): memory holds one frame at a time, whatever the number of frames asked for.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/dicomweb_internal.h"
#include "base/codec.h"
#include "base/log.h"
#include "base/text.h"
#include "export/export.h"
#include "base/banned.h"

#define MAX_LISTED 4096

/* The transfer syntax one media range of an Accept header asks for (range[0..n)): its
 * transfer-syntax parameter (name in any case, quotes removed) into out, or AHL__DW_DEFAULT_TS
 * when it has none. */
static void range_syntax(const char *range, size_t n, char *out, size_t cap)
{
    static const char name[] = "transfer-syntax=";
    snprintf(out, cap, "%s", AHL__DW_DEFAULT_TS);
    for (size_t i = 0; i + sizeof name - 1 <= n; i++) {
        if (strncasecmp(range + i, name, sizeof name - 1) != 0)
            continue;
        const char *p = range + i + sizeof name - 1;
        size_t left = n - (i + sizeof name - 1);
        if (left && *p == '"') {
            p++;
            left--;
        }
        size_t len = 0;
        while (len < left && !strchr("\";, \t", p[len]))
            len++;
        snprintf(out, cap, "%.*s", (int)(len < cap ? len : cap - 1), p);
        return;
    }
}

/* true when a media range's type is multipart/related. */
static bool range_multipart(const char *range, size_t n)
{
    static const char type[] = "multipart/related";
    while (n && (*range == ' ' || *range == '\t')) {
        range++;
        n--;
    }
    return n >= sizeof type - 1 && strncasecmp(range, type, sizeof type - 1) == 0;
}

bool ahl__dicomweb_choose_syntax(const char *accept, const char *stored_ts, char *out, size_t cap,
                                 bool *multipart)
{
    const char *p = accept ? accept : "";
    bool first = true;
    char ts[72];
    *multipart = false;
    do {
        size_t n = strcspn(p, ",");
        range_syntax(p, n, ts, sizeof ts);
        if (!strcmp(ts, "*") || (stored_ts[0] && !strcmp(ts, stored_ts)) ||
            !strcmp(ts, AHL__DW_DEFAULT_TS)) {
            snprintf(out, cap, "%s", ts);
            *multipart = range_multipart(p, n);
            return true;
        }
        if (first)
            snprintf(out, cap, "%s", ts);
        first = false;
        p += n;
    } while (*p++ == ',');
    return false;
}

int ahl__dicomweb_not_acceptable(struct ahl__dicomweb_request *rq, const char *want,
                                 const char *stored_ts, struct ahl_api_resp *resp)
{
    char msg[300];
    rq->status = 406;
    resp->content_type = "application/json";
    ahl_buf_reset(&resp->raw);
    snprintf(msg, sizeof msg,
             "Transfer syntax %.70s is not available for this %s: %s%.64s; ask for "
             "transfer-syntax=* or %s",
             want, stored_ts[0] ? "instance" : "request",
             stored_ts[0] ? "it is stored as " : "its instances are stored in several syntaxes",
             stored_ts, AHL__DW_DEFAULT_TS);
    return ahl_api_error_body("NotAcceptableException", msg, &resp->raw);
}

/* The media type of a frame's stored bytes as DICOMweb labels them: the store keeps HTJ2K as a
 * bare codestream, which is image/jphc (GetImageFrame's image/jph wraps it in a JPH file). */
static const char *stored_media_type(const char *ts)
{
    const char *t = ahl_frame_content_type(ts);
    if (!strcmp(t, "image/jph") || !strcmp(ts, AHL_TS_HTJ2K_LOSSLESS))
        return "image/jphc";
    return t;
}

/* "1,3,2": numbers 1..n_frames, distinct, into idx (0-based). */
static int parse_list(const char *list, size_t n_frames, uint32_t *idx, size_t *count,
                      struct ahl_err *err)
{
    size_t k = 0;
    const char *p = list;
    for (;;) {
        char *end;
        if (*p < '0' || *p > '9')
            return ahl_fail(err, AHL_EINVAL,
                            "The frame list '%.80s' is not comma-separated "
                            "frame numbers (1, 2, ...)",
                            list);
        unsigned long v = strtoul(p, &end, 10);
        if (v == 0 || end - p > 9)
            return ahl_fail(err, AHL_EINVAL, "Frame numbers start at 1 ('%.80s')", list);
        if (v > n_frames)
            return ahl_fail(err, AHL_ENOTFOUND, "Frame %lu is not in the instance (it has %zu)", v,
                            n_frames);
        for (size_t i = 0; i < k; i++)
            if (idx[i] == v - 1)
                return ahl_fail(err, AHL_EINVAL, "Frame %lu is listed twice", v);
        if (k == MAX_LISTED)
            return ahl_fail(err, AHL_EINVAL, "More than %d frames in one request", MAX_LISTED);
        idx[k++] = (uint32_t)(v - 1);
        p = end;
        if (*p == '\0')
            break;
        if (*p != ',')
            return ahl_fail(err, AHL_EINVAL,
                            "The frame list '%.80s' is not comma-separated "
                            "frame numbers (1, 2, ...)",
                            list);
        p++;
    }
    *count = k;
    return 0;
}

/* The stored bytes of one frame, checked against its content address, into a new buffer. */
static int read_stored(struct ahl_api_service *svc, const char *id, const char *ts, uint8_t **data,
                       size_t *len, struct ahl_err *err)
{
    if (!svc->frames_ready)
        return ahl_fail(err, AHL_ENOTFOUND, "Frame %s: this server has no frame store", id);
    int rc = ahl_framestore_read_verified(&svc->frames, id, ts, data, len, err);
    if (rc == AHL_ECORRUPT)
        ahl_error("DICOMweb frames: %s; run `ahilite check`", err->msg);
    return rc;
}

int ahl__dicomweb_frames(struct ahl_api_service *svc, struct ahl__dicomweb_request *rq,
                         const json_t *instance, const char *list, struct ahl_api_resp *resp,
                         struct ahl_err *err)
{
    const json_t *frames = json_object_get(instance, "ImageFrames");
    const char *stored_ts = ahl_export_transfer_syntax(instance, true);
    char want[72], boundary[33];
    uint32_t *idx = NULL;
    size_t count = 0;
    bool multipart;
    struct ahl__api_spool sp;
    int rc;

    ahl__api_spool_init(&sp, svc, resp);
    if (!(idx = calloc(MAX_LISTED, sizeof *idx)))
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    if ((rc = parse_list(list, json_array_size(frames), idx, &count, err)) < 0)
        goto out;
    if (!ahl__dicomweb_choose_syntax(rq->accept, stored_ts, want, sizeof want, &multipart)) {
        rc = ahl__dicomweb_not_acceptable(rq, want, stored_ts, resp);
        goto out;
    }
    bool stored = !strcmp(want, "*") || !strcmp(want, stored_ts);
    const char *part_type = stored ? stored_media_type(stored_ts) : "application/octet-stream";
    const char *part_ts = stored ? stored_ts : AHL__DW_DEFAULT_TS;
    if ((rc = ahl_random_id(boundary)) < 0) {
        rc = ahl_fail(err, rc, "cannot make a multipart boundary");
        goto out;
    }
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(frames, idx[i]), "ID"));
        uint8_t *bytes = NULL;
        size_t len = 0;
        if (!id) {
            rc = ahl_fail(err, AHL_EINTERNAL, "Frame %u of the instance has no ID", idx[i] + 1);
            break;
        }
        if ((rc = read_stored(svc, id, stored_ts, &bytes, &len, err)) < 0)
            break;
        if (!stored) {
            uint8_t *native = NULL;
            rc = ahl_export_frame_native(instance, bytes, len, &native, &len, err);
            free(bytes);
            bytes = native;
            if (rc < 0) {
                /* A stored frame that cannot be decoded is the server's failure. */
                char why[sizeof err->msg];
                ahl_str_copy_cut(why, sizeof why, err ? err->msg : "");
                rc = ahl_fail(err, rc == AHL_ENOMEM ? rc : AHL_EINTERNAL,
                              "Frame %u cannot be decoded to %s: %.300s", idx[i] + 1,
                              AHL__DW_DEFAULT_TS, why);
                break;
            }
        }
        char head[200];
        int hn = snprintf(head, sizeof head, "--%s\r\nContent-Type: %s; transfer-syntax=%s\r\n\r\n",
                          boundary, part_type, part_ts);
        rc = ahl__api_spool_write(&sp, head, (size_t)hn);
        rc = rc ? rc : ahl__api_spool_write(&sp, bytes, len);
        rc = rc ? rc : ahl__api_spool_write(&sp, "\r\n", 2);
        if (rc < 0)
            rc = ahl_fail(err, rc, "cannot spool the frames: %s", ahl_strerror(rc));
        free(bytes);
    }
    if (rc == 0) {
        char tail[40];
        int tn = snprintf(tail, sizeof tail, "--%s--\r\n", boundary);
        if ((rc = ahl__api_spool_write(&sp, tail, (size_t)tn)) < 0)
            rc = ahl_fail(err, rc, "cannot spool the frames: %s", ahl_strerror(rc));
    }
    if ((rc = ahl__api_spool_finish(&sp, rc, "frames", resp, err)) < 0)
        goto out;
    snprintf(rq->content_type, sizeof rq->content_type,
             "multipart/related; type=\"%s\"; transfer-syntax=%s; boundary=%s", part_type, part_ts,
             boundary);
    resp->content_type = rq->content_type;
    rq->status = 200;
out:
    free(idx);
    if (sp.fd >= 0)
        close(sp.fd);
    return rc;
}
