/* STOW-RS: StoreDICOM (POST /datastore/{id}/studies) and StoreDICOMStudy (POST
 * /datastore/{id}/studies/{study}), as docs/dicomweb.md#store-stow-rs describes.
 *
 * The server hands the body over as it arrives (ahl__stow_feed); nothing of it is kept in memory
 * beyond one write buffer. The bytes go through up to three stages: the SHA-256 of the body as
 * received (when the signature covers it), the aws-chunked decoder that checks every chunk's
 * signature (aws/chunked.h, for STREAMING-AWS4-HMAC-SHA256-PAYLOAD), and the multipart parser
 * (multipart.h) that cuts the payload into parts. Each part is written to its own file in a
 * spool directory DATA_DIR/tmp/stow-XXXXXX, which is removed when the request ends however it
 * ends (ahl__stow_free, from the server's completion callback) and swept at start after a
 * crash. Only once the request is authenticated in full does ahl__stow_store import the parts
 * with the import pipeline (import.h: read, normalize, transcode and verify frames, group into
 * primary and non-primary image sets and commit in batches, exactly as an import job), and
 * answer with the PS3.18 store response in DICOM JSON.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/dicomweb_internal.h"
#include "api/multipart.h"
#include "aws/chunked.h"
#include "base/fileio.h"
#include "base/log.h"
#include "json/json.h"
#include "base/text.h"
#include "base/banned.h"

#define WRITE_BUFFER ((size_t)256 << 10)
#define SPOOL_PREFIX "stow-"
/* The private block of the store response's items (docs/dicomweb.md#the-response). */
#define PRIVATE_CREATOR "AHILITE STOW"

/* PS3.18 Failure Reasons (0008,1197) and the Warning Reason (0008,1196) used here. */
enum {
    REASON_PROCESSING = 0x0110,     /* Processing failure */
    REASON_RESOURCES = 0xA700,      /* Out of resources */
    REASON_STUDY_MISMATCH = 0xA900, /* Data set does not match (the study of the request) */
    REASON_UNDERSTAND = 0xC000,     /* Cannot understand */
    REASON_SYNTAX = 0xC122,         /* Referenced transfer syntax not supported */
    WARNING_OFFSET_TABLE = AHL_IMPORT_WARNING_BOT_CODE,
};

struct part {
    uint64_t size;
    bool dicom; /* its Content-Type is application/dicom */
    char type[64];
};

struct ahl__stow {
    char dir[1200];
    char ds[AHL_ID_LEN + 1];
    char study[65]; /* StoreDICOMStudy's study, "" for StoreDICOM */
    bool multipart, chunked, hash;
    struct ahl_multipart mp;
    struct ahl_sigv4_chunked ck;
    struct ahl_sha256_ctx sha;
    uint64_t payload; /* bytes of payload (decoded) so far */
    int fd;           /* the open part's file, or -1 */
    uint8_t *wbuf;
    size_t wlen;
    struct part *parts;
    size_t nparts, cap;
};

bool ahl__stow_request(const char *method, const char *path, size_t path_len)
{
    static const char prefix[] = "/datastore/";
    char buf[256];
    if (strcmp(method, "POST") != 0 || path_len >= sizeof buf)
        return false;
    memcpy(buf, path, path_len);
    buf[path_len] = '\0';
    if (strncmp(buf, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *p = strchr(buf + sizeof prefix - 1, '/');
    if (!p || strncmp(p, "/studies", 8) != 0)
        return false;
    p += 8;
    if (*p == '\0')
        return true;
    return *p == '/' && p[1] && !strchr(p + 1, '/');
}

/* /datastore/{id}/studies[/{study}]: the data store id and the study (both checked). */
static int parse_path(struct ahl__stow *st, const char *path, struct ahl_err *err)
{
    const char *p = path + strlen("/datastore/");
    size_t n = strcspn(p, "/");
    if (n != AHL_ID_LEN || strspn(p, "0123456789abcdefghijklmnopqrstuvwxyz") < n)
        return ahl_fail(err, AHL_EINVAL,
                        "The data store id in the path is not 32 characters of [0-9a-z]");
    memcpy(st->ds, p, n);
    st->ds[n] = '\0';
    p += n + strlen("/studies");
    if (*p == '/') {
        p++;
        n = strlen(p);
        if (n == 0 || n > 64 || strspn(p, "0123456789.") < n)
            return ahl_fail(err, AHL_EINVAL,
                            "The StudyInstanceUID in the path is not a UID (1 to 64 digits and "
                            "dots)");
        memcpy(st->study, p, n + 1);
    }
    return 0;
}

/* ---- spooling --------------------------------------------------------------------------- */

static int spool_error(const char *what, struct ahl_err *err)
{
    int e = errno;
    return ahl_fail(err, e == ENOSPC || e == EDQUOT ? AHL_ENOSPC : AHL_EIO,
                    "cannot spool the request body (%s): %s", what, strerror(e));
}

static int flush(struct ahl__stow *st, struct ahl_err *err)
{
    if (st->wlen && st->fd >= 0 && ahl_write_all(st->fd, st->wbuf, st->wlen) < 0)
        return spool_error("write", err);
    st->wlen = 0;
    return 0;
}

static int part_begin(void *ctx, const char *content_type, struct ahl_err *err)
{
    struct ahl__stow *st = ctx;
    char path[1300];
    if (st->nparts >= AHL__STOW_MAX_PARTS)
        return ahl_fail_detail(err, AHL_ETOOBIG, AHL__STOW_FAIL_TOO_LARGE,
                               "The request holds more than %d parts; send at most %d instances "
                               "per request",
                               AHL__STOW_MAX_PARTS, AHL__STOW_MAX_PARTS);
    if (st->nparts == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        struct part *np = realloc(st->parts, cap * sizeof *np);
        if (!np)
            return ahl_fail(err, AHL_ENOMEM, "out of memory");
        st->parts = np;
        st->cap = cap;
    }
    struct part *pt = &st->parts[st->nparts++];
    memset(pt, 0, sizeof *pt);
    pt->dicom = ahl_media_is(content_type, "application/dicom");
    ahl_str_copy_cut(pt->type, sizeof pt->type, content_type[0] ? content_type : "(none)");
    if (!pt->dicom)
        return 0; /* not kept: it fails without being read */
    snprintf(path, sizeof path, "%s/%zu", st->dir, st->nparts - 1);
    st->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    return st->fd < 0 ? spool_error("create", err) : 0;
}

static int part_data(void *ctx, const uint8_t *p, size_t n, struct ahl_err *err)
{
    struct ahl__stow *st = ctx;
    int rc;
    st->parts[st->nparts - 1].size += n;
    if (st->fd < 0)
        return 0;
    while (n) {
        size_t take = WRITE_BUFFER - st->wlen < n ? WRITE_BUFFER - st->wlen : n;
        memcpy(st->wbuf + st->wlen, p, take);
        st->wlen += take;
        p += take;
        n -= take;
        if (st->wlen == WRITE_BUFFER && (rc = flush(st, err)) < 0)
            return rc;
    }
    return 0;
}

static int part_end(void *ctx, struct ahl_err *err)
{
    struct ahl__stow *st = ctx;
    int rc = flush(st, err);
    if (st->fd >= 0 && close(st->fd) < 0 && rc == 0)
        rc = spool_error("close", err);
    st->fd = -1;
    return rc;
}

/* Decoded payload: counted against the limit, then cut into parts (or the one instance). */
static int payload(void *ctx, const uint8_t *p, size_t n, struct ahl_err *err)
{
    struct ahl__stow *st = ctx;
    if (n > AHL__STOW_MAX_BODY - st->payload)
        return ahl_fail_detail(err, AHL_ETOOBIG, AHL__STOW_FAIL_TOO_LARGE,
                               "The request body is larger than the STOW-RS limit of %llu bytes",
                               (unsigned long long)AHL__STOW_MAX_BODY);
    st->payload += n;
    if (st->multipart)
        return ahl_multipart_feed(&st->mp, p, n, err);
    return part_data(st, p, n, err);
}

static const struct ahl_multipart_callbacks part_callbacks = {part_begin, part_data, part_end};

int ahl__stow_begin(struct ahl_api_service *svc, const struct ahl__stow_args *a,
                    struct ahl__stow **out, struct ahl_err *err)
{
    struct ahl__stow *st = calloc(1, sizeof *st);
    char boundary[AHL_MULTIPART_BOUNDARY_MAX + 2], type[128];
    int rc;
    *out = NULL;
    if (!st)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    st->fd = -1;
    if ((rc = parse_path(st, a->path, err)) < 0)
        goto fail;
    if (ahl_media_is(a->content_type, "multipart/related")) {
        rc = ahl_media_param(a->content_type, "type", type, sizeof type);
        if (rc == 0 && !ahl_media_is(type, "application/dicom")) {
            rc = ahl_fail_detail(err, AHL_EUNSUPPORTED, AHL__STOW_FAIL_MEDIA_TYPE,
                                 "multipart/related of type \"%.100s\" is not supported: STOW-RS "
                                 "here takes application/dicom parts",
                                 type);
            goto fail;
        }
        if (ahl_media_param(a->content_type, "boundary", boundary, sizeof boundary) < 0) {
            rc = ahl_fail(err, AHL_EINVAL,
                          "The multipart/related Content-Type has no usable "
                          "boundary parameter");
            goto fail;
        }
        if ((rc = ahl_multipart_init(&st->mp, boundary, &part_callbacks, st, err)) < 0)
            goto fail;
        st->multipart = true;
    } else if (!ahl_media_is(a->content_type, "application/dicom")) {
        rc = ahl_fail_detail(err, AHL_EUNSUPPORTED, AHL__STOW_FAIL_MEDIA_TYPE,
                             "Content-Type %.100s is not supported: STOW-RS takes "
                             "application/dicom or multipart/related; type=\"application/dicom\"",
                             a->content_type ? a->content_type : "(none)");
        goto fail;
    }
    if ((rc = ahl__api_require_datastore(svc, st->ds, NULL, err)) < 0)
        goto fail;
    if (!(st->wbuf = malloc(WRITE_BUFFER))) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto fail;
    }
    if (a->hash_body && ahl_sha256_begin(&st->sha) < 0) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto fail;
    }
    st->hash = a->hash_body;
    if (a->chunked) {
        ahl_sigv4_chunked_init(&st->ck, a->chunked, a->decoded_length);
        st->chunked = true;
    }
    snprintf(st->dir, sizeof st->dir, "%s/tmp/" SPOOL_PREFIX "XXXXXX",
             svc->data_dir[0] ? svc->data_dir : ".");
    if (!mkdtemp(st->dir)) {
        st->dir[0] = '\0';
        rc = spool_error("mkdtemp", err);
        goto fail;
    }
    if (!st->multipart && (rc = part_begin(st, "application/dicom", err)) < 0)
        goto fail;
    *out = st;
    return 0;
fail:
    ahl__stow_free(st);
    return rc;
}

int ahl__stow_feed(struct ahl__stow *st, const void *p, size_t n, struct ahl_err *err)
{
    if (st->hash)
        ahl_sha256_add(&st->sha, p, n);
    if (st->chunked)
        return ahl_sigv4_chunked_feed(&st->ck, p, n, payload, st, err);
    return payload(st, p, n, err);
}

int ahl__stow_end(struct ahl__stow *st, char body_sha256[AHL_SHA256_HEX_LEN + 1],
                  struct ahl_err *err)
{
    int rc;
    body_sha256[0] = '\0';
    if (st->chunked && (rc = ahl_sigv4_chunked_finish(&st->ck, err)) < 0)
        return rc;
    if (st->multipart && (rc = ahl_multipart_finish(&st->mp, err)) < 0)
        return rc;
    if (!st->multipart && (rc = part_end(st, err)) < 0)
        return rc;
    if (st->nparts == 0)
        return ahl_fail(err, AHL_EPARSE, "The multipart body holds no parts");
    if (st->hash) {
        uint8_t h[AHL_SHA256_LEN];
        ahl_sha256_end(&st->sha, h);
        ahl_hex_encode(h, sizeof h, body_sha256);
    }
    return 0;
}

/* ---- storing ------------------------------------------------------------------------------ */

struct outcome {
    bool done;
    struct ahl_import_result res;
};

static void on_done(void *ctx, void *tag, const struct ahl_import_result *res)
{
    struct outcome *o = &((struct outcome *)ctx)[(uintptr_t)tag - 1];
    o->res = *res;
    o->done = true;
}

static void fail_part(struct outcome *o, int rc, bool customer, const char *fmt, const char *arg)
{
    o->done = true;
    o->res.rc = rc;
    o->res.customer_error = customer;
    snprintf(o->res.message, sizeof o->res.message, fmt, arg);
}

static int reason_of(const struct ahl_import_result *r)
{
    switch (r->rc) {
    case AHL_ECONFLICT:
        return REASON_STUDY_MISMATCH;
    case AHL_EUNSUPPORTED:
        return REASON_SYNTAX;
    case AHL_ETOOBIG:
    case AHL_ENOMEM:
    case AHL_ENOSPC:
    case AHL_EQUOTA:
        return REASON_RESOURCES;
    default:
        return r->customer_error ? REASON_UNDERSTAND : REASON_PROCESSING;
    }
}

static json_t *attr(const char *vr, json_t *value)
{
    json_t *a = json_object();
    json_t *v = value ? json_array() : NULL;
    if (!a || (value && (!v || json_array_append_new(v, value) < 0)) ||
        json_object_set_new(a, "vr", json_string(vr)) < 0 ||
        (v && json_object_set_new(a, "Value", v) < 0)) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* Sets tag to a one-valued attribute; an empty string is left out. 0 or -1. */
static int set_str(json_t *item, const char *tag, const char *vr, const char *s)
{
    if (!s || !*s)
        return 0;
    json_t *a = attr(vr, json_string(s));
    return a && json_object_set_new(item, tag, a) == 0 ? 0 : -1;
}

static int set_int(json_t *item, const char *tag, const char *vr, long long n)
{
    json_t *a = attr(vr, json_integer(n));
    return a && json_object_set_new(item, tag, a) == 0 ? 0 : -1;
}

struct import_view {
    const struct ahl_import_result *r;
    bool stored;
};

/* One item of ReferencedSOPSequence or FailedSOPSequence, keys in tag order. */
static json_t *item_of(const char *base, size_t index, const struct import_view *v)
{
    const struct ahl_import_result *r = v->r;
    json_t *it = json_object();
    char url[1200], version[24];
    int bad = !it;
    bad = bad || set_str(it, "00081150", "UI", r->sop_class_uid) < 0;
    bad = bad || set_str(it, "00081155", "UI", r->sop_instance_uid) < 0;
    if (v->stored) {
        snprintf(url, sizeof url, "%s/studies/%s/series/%s/instances/%s?imageSetId=%s", base,
                 r->study_instance_uid, r->series_instance_uid, r->sop_instance_uid,
                 r->imageset_id);
        bad = bad || set_str(it, "00081190", "UR", url) < 0;
        if (r->invalid_offset_table)
            bad = bad || set_int(it, "00081196", "US", WARNING_OFFSET_TABLE) < 0;
    } else {
        bad = bad || set_int(it, "00081197", "US", reason_of(r)) < 0;
    }
    bad = bad || set_str(it, "00090010", "LO", PRIVATE_CREATOR) < 0;
    bad = bad || set_int(it, "00091001", "UL", (long long)index + 1) < 0;
    if (v->stored) {
        snprintf(version, sizeof version, "%llu", (unsigned long long)r->version);
        bad = bad || set_str(it, "00091002", "LO", r->imageset_id) < 0;
        bad = bad || set_str(it, "00091003", "LO", version) < 0;
        bad = bad || set_str(it, "00091004", "CS", r->is_primary ? "PRIMARY" : "NON_PRIMARY") < 0;
    }
    const char *text = v->stored ? r->warning : r->message;
    bad = bad || set_str(it, "00091005", "LT", text) < 0;
    if (bad) {
        json_decref(it);
        return NULL;
    }
    return it;
}

/* The PS3.18 store response of the outcomes, with the status that goes with it. */
static int respond(const struct ahl__stow *st, const char *base, const struct outcome *o,
                   struct ahl__dicomweb_request *rq, struct ahl_api_resp *resp, struct ahl_err *err)
{
    json_t *body = json_object(), *ok = json_array(), *failed = json_array();
    const char *study = NULL;
    bool one_study = true;
    int rc = -1;
    if (!body || !ok || !failed)
        goto out;
    for (size_t i = 0; i < st->nparts; i++) {
        struct import_view v = {.r = &o[i].res, .stored = o[i].res.rc == 0};
        json_t *it = item_of(base, i, &v);
        if (!it || json_array_append_new(v.stored ? ok : failed, it) < 0)
            goto out;
        if (v.stored) {
            if (study && strcmp(study, o[i].res.study_instance_uid) != 0)
                one_study = false;
            study = o[i].res.study_instance_uid;
        }
    }
    char url[1200];
    if (st->study[0] || (study && one_study)) {
        snprintf(url, sizeof url, "%s/studies/%s", base, st->study[0] ? st->study : study);
        if (set_str(body, "00081190", "UR", url) < 0)
            goto out;
    }
    json_t *sq;
    if (json_array_size(failed) &&
        (!(sq = attr("SQ", NULL)) || json_object_set_new(body, "00081198", sq) < 0 ||
         json_object_set(sq, "Value", failed) < 0))
        goto out;
    if (json_array_size(ok) &&
        (!(sq = attr("SQ", NULL)) || json_object_set_new(body, "00081199", sq) < 0 ||
         json_object_set(sq, "Value", ok) < 0))
        goto out;
    if (ahl_json_write(body, &resp->raw) < 0)
        goto out;
    resp->content_type = "application/dicom+json";
    rq->status = json_array_size(failed) == 0 ? 200 : json_array_size(ok) ? 202 : 409;
    rc = 0;
out:
    json_decref(body);
    json_decref(ok);
    json_decref(failed);
    return rc < 0 ? ahl_fail(err, AHL_ENOMEM, "could not encode the store response") : 0;
}

/* The kept importer of data store ds (opened when there is none), marked in use; when every
 * slot is in use, an importer of the request's own (*own set: close it after). */
static int importer_get(struct ahl_api_service *svc, const char *ds, struct ahl_importer **out,
                        bool *own, struct ahl_err *err)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s/tmp", svc->data_dir);
    struct ahl_import_opts opts = {.frames = &svc->frames,
                                   .lock_dir = svc->data_dir,
                                   .tmp_dir = tmp,
                                   .budget = &svc->stow_budget};
    struct ahl__stow_importer *slot = NULL;
    *own = false;
    pthread_mutex_lock(&svc->stow_mu);
    for (size_t i = 0; i < AHL__STOW_IMPORTERS; i++) {
        struct ahl__stow_importer *e = &svc->stow_importers[i];
        if (e->im && !strcmp(e->ds, ds)) {
            e->users++;
            e->used = ++svc->stow_clock;
            *out = e->im;
            pthread_mutex_unlock(&svc->stow_mu);
            return 0;
        }
        if (!e->users && (!slot || !e->im || (slot->im && e->used < slot->used)))
            slot = e;
    }
    /* The slot is claimed before the importer is opened outside the lock. */
    struct ahl_importer *old = NULL;
    if (slot) {
        old = slot->im;
        slot->im = NULL;
        slot->users = 1;
    }
    pthread_mutex_unlock(&svc->stow_mu);
    ahl_importer_close(old);
    int rc = ahl_importer_open(svc->meta, ds, &opts, out, err);
    pthread_mutex_lock(&svc->stow_mu);
    if (slot && rc == 0) {
        memcpy(slot->ds, ds, sizeof slot->ds);
        slot->im = *out;
        slot->used = ++svc->stow_clock;
    } else if (slot) {
        slot->users = 0;
    }
    pthread_mutex_unlock(&svc->stow_mu);
    *own = rc == 0 && !slot;
    return rc;
}

static void importer_put(struct ahl_api_service *svc, struct ahl_importer *im, bool own)
{
    if (own) {
        ahl_importer_close(im);
        return;
    }
    pthread_mutex_lock(&svc->stow_mu);
    for (size_t i = 0; i < AHL__STOW_IMPORTERS; i++)
        if (svc->stow_importers[i].im == im)
            svc->stow_importers[i].users--;
    pthread_mutex_unlock(&svc->stow_mu);
}

void ahl__stow_close_importers(struct ahl_api_service *svc)
{
    for (size_t i = 0; i < AHL__STOW_IMPORTERS; i++) {
        ahl_importer_close(svc->stow_importers[i].im);
        svc->stow_importers[i].im = NULL;
    }
}

int ahl__stow_store(struct ahl_api_service *svc, struct ahl__stow *st,
                    struct ahl__dicomweb_request *rq, struct ahl_api_resp *resp,
                    struct ahl_err *err)
{
    struct ahl_importer *im = NULL;
    struct ahl_import_batch *b = NULL;
    struct outcome *o = calloc(st->nparts, sizeof *o);
    char base[400], path[1300];
    bool own = false;
    int rc;
    if (!o)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    if (!svc->frames_ready) {
        rc = ahl_fail(err, AHL_EINTERNAL, "the server has no data directory to store into");
        goto out;
    }
    /* Checked again: the data store may have been deleted while the body was received. */
    if ((rc = ahl__api_require_datastore(svc, st->ds, NULL, err)) < 0 ||
        (rc = importer_get(svc, st->ds, &im, &own, err)) < 0)
        goto out;
    if ((rc = ahl_import_batch_new(im, on_done, o, &b)) < 0) {
        rc = ahl_fail(err, rc, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < st->nparts; i++) {
        if (!st->parts[i].dicom) {
            fail_part(&o[i], AHL_EPARSE, true,
                      "The part's Content-Type is %s, not application/dicom", st->parts[i].type);
            continue;
        }
        snprintf(path, sizeof path, "%s/%zu", st->dir, i);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fail_part(&o[i], AHL_EIO, false, "cannot read the spooled part: %s", strerror(errno));
            continue;
        }
        struct ahl_import_item *it;
        struct ahl_import_result res;
        if (ahl_import_prepare_fd_of_study(im, fd, path, st->study[0] ? st->study : NULL, &it,
                                           &res) < 0) {
            o[i].res = res;
            o[i].done = true;
        } else {
            ahl_import_batch_add(b, it, (void *)(uintptr_t)(i + 1));
        }
        close(fd);
        /* A part is read once: its file goes now, not with the spool, to free the disk early. */
        unlink(path);
    }
    ahl_import_batch_flush(b);
    snprintf(base, sizeof base, "http://%s/datastore/%s", ahl__dicomweb_host(rq->host), st->ds);
    for (size_t i = 0; i < st->nparts; i++)
        if (o[i].res.rc < 0 && !o[i].res.customer_error)
            ahl_warn("STOW-RS part %zu of data store %s: %s", i + 1, st->ds, o[i].res.message);
    rc = respond(st, base, o, rq, resp, err);
out:
    ahl_import_batch_free(b);
    if (im)
        importer_put(svc, im, own);
    free(o);
    return rc;
}

/* Removes a spool directory and the part files in it. */
static void remove_spool(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1400];
    if (d) {
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                unlink(path);
            }
        closedir(d);
    }
    if (rmdir(dir) < 0 && errno != ENOENT)
        ahl_warn("cannot remove the STOW-RS spool %s: %s", dir, strerror(errno));
}

void ahl__stow_free(struct ahl__stow *st)
{
    if (!st)
        return;
    if (st->fd >= 0)
        close(st->fd);
    if (st->dir[0])
        remove_spool(st->dir);
    if (st->chunked)
        ahl_sigv4_chunked_release(&st->ck);
    if (st->sha.md) {
        uint8_t h[AHL_SHA256_LEN];
        ahl_sha256_end(&st->sha, h);
    }
    free(st->wbuf);
    free(st->parts);
    free(st);
}

void ahl__stow_sweep(const char *data_dir)
{
    char tmp[1100], path[1400];
    snprintf(tmp, sizeof tmp, "%s/tmp", data_dir);
    DIR *d = opendir(tmp);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, SPOOL_PREFIX, strlen(SPOOL_PREFIX))) {
            snprintf(path, sizeof path, "%s/%s", tmp, e->d_name);
            remove_spool(path);
        }
    closedir(d);
}
