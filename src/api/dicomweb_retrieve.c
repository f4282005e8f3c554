/* WADO-RS retrieve (docs/dicomweb.md#retrieve): GetDICOMInstance, and beyond AWS the series and
 * study resources, answered with Part-10 files rebuilt from the selected version by export.h:
 * its metadata (all levels merged, private attributes with their VRs, edits recorded in the
 * Original Attributes Sequence) and its stored frames.
 *
 * Representation. The instance resource answers one file as `application/dicom`, as AWS's own
 * examples ask for it, unless the Accept range chosen is multipart/related (as DICOMweb clients
 * such as dicomweb-client's retrieveInstance send), which gets one part. Series and study are
 * always multipart/related; type="application/dicom", one part per instance, in series then
 * SOPInstanceUID order.
 *
 * Transfer syntax, as the frames resource negotiates it (ahl__dicomweb_choose_syntax): the
 * default Explicit VR Little Endian with the frames decoded; "*" or the stored syntax: each
 * instance in its StoredTransferSyntaxUID with the stored frames encapsulated; anything else 406.
 * For several instances a named syntax must be every instance's stored one.
 *
 * The answer is spooled (spool.c) instance by instance, frame by frame, so memory does not grow
 * with the size of a series; a slow client holds only its connection and the spool file.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/dicomweb_internal.h"
#include "base/codec.h"
#include "base/log.h"
#include "base/text.h"
#include "export/export.h"
#include "base/banned.h"

/* One instance to answer. */
struct part {
    const json_t *doc;
    const char *sop;
    const json_t *inst;
};

struct parts {
    struct part *v;
    size_t n, cap;
};

static int add_part(struct parts *l, const json_t *doc, const char *sop, const json_t *inst)
{
    if (l->n == l->cap) {
        struct part *v = ahl_array_grow(l->v, &l->cap, sizeof *v, 64);
        if (!v)
            return AHL_ENOMEM;
        l->v = v;
    }
    l->v[l->n++] = (struct part){doc, sop, inst};
    return 0;
}

/* The instances asked for, in document order; for a series or an instance only from the first
 * document that holds the series (a series lives in one primary set). */
static int select_parts(const json_t *docs, const struct ahl__dw_retrieve *sel, struct parts *l,
                        struct ahl_err *err)
{
    size_t i;
    const json_t *doc;
    json_array_foreach(docs, i, doc)
    {
        const char *suid, *sop;
        json_t *series, *inst;
        bool held = false;
        json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), suid, series)
        {
            if (sel->series && strcmp(suid, sel->series) != 0)
                continue;
            held = true;
            json_object_foreach(json_object_get(series, "Instances"), sop, inst)
            {
                if (sel->sop && strcmp(sop, sel->sop) != 0)
                    continue;
                if (add_part(l, doc, sop, inst) < 0)
                    return ahl_fail(err, AHL_ENOMEM, "out of memory");
            }
        }
        if (sel->series && held)
            break;
    }
    if (l->n)
        return 0;
    if (!sel->series)
        return ahl_fail(err, AHL_ENOTFOUND, "Study %s has no instances", sel->study);
    if (!sel->sop)
        return ahl_fail(err, AHL_ENOTFOUND, "Series %s is not in study %s", sel->series,
                        sel->study);
    return ahl_fail(err, AHL_ENOTFOUND, "Instance %s is not in series %s of study %s", sel->sop,
                    sel->series, sel->study);
}

/* The stored syntax every instance with frames shares, or "" when they differ. */
static const char *common_stored_syntax(const struct parts *l)
{
    const char *common = NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (json_array_size(json_object_get(l->v[i].inst, "ImageFrames")) == 0)
            continue;
        const char *ts = ahl_export_transfer_syntax(l->v[i].inst, true);
        if (common && strcmp(common, ts) != 0)
            return "";
        common = ts;
    }
    return common ? common : AHL__DW_DEFAULT_TS;
}

/* Writes one instance into the spool; a failure of ours (not the disk's, nor memory) becomes an
 * internal error naming the instance. */
static int write_instance(struct ahl_api_service *svc, const struct part *p, bool stored,
                          const json_t *originals, struct ahl__api_spool *sp, struct ahl_err *err)
{
    struct ahl_export_opts o = {.stored = stored, .originals = originals};
    int rc = ahl_export_instance(svc->frames_ready ? &svc->frames : NULL, p->doc, p->sop, &o,
                                 ahl__api_spool_write, sp, err);
    if (rc == 0 || rc == AHL_ENOMEM || rc == AHL_ENOTFOUND || sp->write_errno)
        return rc; /* AHL_ENOTFOUND: a frame missing from the store, as the frames resource says */
    char why[sizeof err->msg];
    ahl_str_copy_cut(why, sizeof why, err ? err->msg : "");
    if (rc == AHL_ECORRUPT)
        ahl_error("DICOMweb retrieve: instance %s: %s; run `ahilite check`", p->sop, why);
    return ahl_fail(
        err, AHL_EINTERNAL, "Instance %s cannot be written as a Part-10 file: %.300s%s", p->sop,
        why, rc == AHL_EUNSUPPORTED ? " (ask for transfer-syntax=* to get the stored frames)" : "");
}

/* The Original Attributes Sequence items of a document's instances (export.h), read once per
 * document: *hist is replaced when doc is not the one it was made for. */
static int history_of(struct ahl_api_service *svc, const struct ahl__dw_retrieve *sel,
                      const json_t *doc, const json_t **hist_doc, json_t **hist,
                      struct ahl_err *err)
{
    if (*hist_doc == doc)
        return 0;
    json_decref(*hist);
    *hist = NULL;
    *hist_doc = doc;
    const char *set = json_string_value(json_object_get(doc, "ImageSetID"));
    if (!set)
        return ahl_fail(err, AHL_EINTERNAL, "a stored document has no ImageSetID");
    return ahl_export_history(svc->meta, sel->datastore_id, set, sel->version, sel->series,
                              sel->sop, hist, err);
}

int ahl__dicomweb_retrieve(struct ahl_api_service *svc, struct ahl__dicomweb_request *rq,
                           const json_t *docs, const struct ahl__dw_retrieve *sel,
                           struct ahl_api_resp *resp, struct ahl_err *err)
{
    struct parts l = {0};
    struct ahl__api_spool sp;
    const json_t *hist_doc = NULL;
    json_t *hist = NULL;
    char want[72], boundary[33], head[200];
    const char *one_ts = NULL; /* the syntax of every part, or "" when they differ */
    bool multipart;
    int rc;

    ahl__api_spool_init(&sp, svc, resp);
    if ((rc = select_parts(docs, sel, &l, err)) < 0)
        goto out;
    const char *common = common_stored_syntax(&l);
    if (!ahl__dicomweb_choose_syntax(rq->accept, common, want, sizeof want, &multipart)) {
        rc = ahl__dicomweb_not_acceptable(rq, want, common, resp);
        goto out;
    }
    bool stored = !strcmp(want, "*") || (common[0] && !strcmp(want, common));
    multipart = multipart || !sel->sop;
    if ((rc = ahl_random_id(boundary)) < 0) {
        rc = ahl_fail(err, rc, "cannot make a multipart boundary");
        goto out;
    }
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        const struct part *p = &l.v[i];
        bool has_frames = json_array_size(json_object_get(p->inst, "ImageFrames")) > 0;
        const char *ts = ahl_export_transfer_syntax(p->inst, stored && has_frames);
        if (!strcmp(ts, AHL_TS_IMPLICIT_LE) || !strcmp(ts, AHL_TS_EXPLICIT_BE) ||
            !strcmp(ts, AHL_TS_DEFLATED_LE))
            ts = AHL__DW_DEFAULT_TS; /* stored natively: written as Explicit VR Little Endian */
        one_ts = !one_ts || !strcmp(one_ts, ts) ? ts : "";
        if ((rc = history_of(svc, sel, p->doc, &hist_doc, &hist, err)) < 0)
            break;
        if (multipart) {
            int hn = snprintf(head, sizeof head,
                              "--%s\r\nContent-Type: application/dicom; transfer-syntax=%s\r\n\r\n",
                              boundary, ts);
            if ((rc = ahl__api_spool_write(&sp, head, (size_t)hn)) < 0)
                break;
        }
        rc = write_instance(svc, p, stored, json_object_get(hist, p->sop), &sp, err);
        if (rc == 0 && multipart)
            rc = ahl__api_spool_write(&sp, "\r\n", 2);
    }
    if (rc == 0 && multipart) {
        int tn = snprintf(head, sizeof head, "--%s--\r\n", boundary);
        rc = ahl__api_spool_write(&sp, head, (size_t)tn);
    }
    if (rc < 0 && sp.write_errno == 0 && rc == AHL_ENOMEM)
        rc = ahl_fail(err, rc, "out of memory");
    if ((rc = ahl__api_spool_finish(&sp, rc, "DICOM", resp, err)) < 0)
        goto out;
    if (!multipart)
        snprintf(rq->content_type, sizeof rq->content_type, "application/dicom; transfer-syntax=%s",
                 one_ts);
    else if (one_ts[0])
        snprintf(rq->content_type, sizeof rq->content_type,
                 "multipart/related; type=\"application/dicom\"; transfer-syntax=%s; boundary=%s",
                 one_ts, boundary);
    else
        snprintf(rq->content_type, sizeof rq->content_type,
                 "multipart/related; type=\"application/dicom\"; boundary=%s", boundary);
    resp->content_type = rq->content_type;
    rq->status = 200;
out:
    json_decref(hist);
    free(l.v);
    if (sp.fd >= 0)
        close(sp.fd);
    return rc;
}
