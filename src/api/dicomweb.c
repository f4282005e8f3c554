/* DICOMweb (WADO-RS) below /datastore/{datastoreId}, on the API's own listener, as AWS
 * HealthImaging serves it on dicom-medical-imaging.<region>.amazonaws.com (docs/dicomweb.md):
 * the study, series and instance metadata resources, and the frames and retrieve resources,
 * whose answers dicomweb_frames.c and dicomweb_retrieve.c build from what is chosen here.
 *
 * The server authenticates the request exactly as it does an API call, then hands it here instead
 * of to the model's router (server.c, ahl__dicomweb_path). A resource is answered from image sets:
 * the primary sets holding the study (and series), or with ?imageSetId= one set (with ?versionId=
 * one of its versions). Each instance's DICOM JSON is built from the set's stored document by
 * dicom/hidoc.h; nothing is read from the original files, so updates show at once.
 *
 * Errors are the API's: ResourceNotFoundException (404) for an unknown data store, set, study,
 * series or instance, ValidationException (400) for a malformed path or parameter. Without
 * imageSetId every primary set of the study is read (in id order, until one holds the series):
 * the importer keeps one primary set per study and series, so that is one document per series.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/dicomweb_cache.h"
#include "api/dicomweb_internal.h"
#include "api/viewer_internal.h"
#include "dicom/hidoc.h"
#include "base/codec.h"
#include "json/json.h"
#include "meta/states.h"
#include "base/text.h"
#include "base/banned.h"

/* How many primary image sets of one study are read at most for one request. */
#define DW_MAX_SETS 1000
#define DW_UID_MAX 64

enum dw_resource {
    DW_STUDY_METADATA,
    DW_SERIES_METADATA,
    DW_INSTANCE_METADATA,
    DW_FRAMES,
    DW_BULKDATA,
    DW_STUDY, /* retrieve (dicomweb_retrieve.c) */
    DW_SERIES,
    DW_INSTANCE,
};

struct dw_target {
    enum dw_resource what;
    char ds[AHL_ID_LEN + 1];
    char study[DW_UID_MAX + 1];
    char series[DW_UID_MAX + 1];
    char sop[DW_UID_MAX + 1];
    char imageset[AHL_ID_LEN + 1]; /* ?imageSetId=, or "" */
    uint64_t version;              /* ?versionId=, 0 when absent */
    const char *frames;            /* the frame list of DW_FRAMES, in the path */
    const char *bulk_id;           /* the id of DW_BULKDATA, in the path */
};

/* One path segment of the raw target: [*p, next '/' or end). */
static size_t seg_len(const char *p)
{
    size_t n = 0;
    while (p[n] && p[n] != '/')
        n++;
    return n;
}

static bool seg_is(const char *p, size_t n, const char *word)
{
    return n == strlen(word) && memcmp(p, word, n) == 0;
}

bool ahl__dicomweb_path(const char *path)
{
    static const char prefix[] = "/datastore/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *p = path + sizeof prefix - 1;
    size_t n = seg_len(p);
    if (n == 0 || p[n] != '/')
        return false;
    p += n + 1;
    n = seg_len(p);
    return seg_is(p, n, "studies") || seg_is(p, n, "series");
}

/* A UID from the path: 1 to 64 digits and dots (PS3.5 9.1). */
static int copy_uid(char out[DW_UID_MAX + 1], const char *p, size_t n, const char *what,
                    struct ahl_err *err)
{
    if (n == 0 || n > DW_UID_MAX || strspn(p, "0123456789.") < n)
        return ahl_fail(err, AHL_EINVAL,
                        "The %s in the path is not a UID (1 to 64 digits and dots)", what);
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static bool is_id(const char *p, size_t n)
{
    return n == AHL_ID_LEN && strspn(p, "0123456789abcdefghijklmnopqrstuvwxyz") >= n;
}

static int not_served(const char *path, struct ahl_err *err)
{
    return ahl_fail(err, AHL_ENOTFOUND,
                    "No DICOMweb resource at %.200s: this server answers only "
                    "the retrieve, metadata, frames and bulkdata resources (docs/dicomweb.md)",
                    path);
}

/* /datastore/{ds}/studies/{study}[/series/{series}[/instances/{sop}]][/metadata], and
 * /datastore/{ds}/studies/{study}/series/{series}/instances/{sop}/frames/{list} */
static int parse_path(const char *path, struct dw_target *t, struct ahl_err *err)
{
    const char *p = path + strlen("/datastore/");
    size_t n = seg_len(p);
    if (!is_id(p, n))
        return ahl_fail(err, AHL_EINVAL,
                        "The data store id in the path is not 32 characters "
                        "of [0-9a-z]");
    memcpy(t->ds, p, n);
    t->ds[n] = '\0';
    p += n + 1;

    static const char *const level_names[] = {"studies", "series", "instances"};
    static const char *const uid_names[] = {"StudyInstanceUID", "SeriesInstanceUID",
                                            "SOPInstanceUID"};
    char *uids[] = {t->study, t->series, t->sop};
    int depth = 0;
    for (;;) {
        n = seg_len(p);
        if (depth < 3 && seg_is(p, n, level_names[depth]) && p[n] == '/') {
            p += n + 1;
            n = seg_len(p);
            int rc = copy_uid(uids[depth], p, n, uid_names[depth], err);
            if (rc < 0)
                return rc;
            depth++;
            p += n;
            if (*p == '\0') {
                t->what = depth == 1 ? DW_STUDY : depth == 2 ? DW_SERIES : DW_INSTANCE;
                return 0;
            }
            if (*p != '/')
                return not_served(path, err);
            p++;
            continue;
        }
        if (depth == 3 && seg_is(p, n, "frames") && p[n] == '/' && p[n + 1]) {
            t->what = DW_FRAMES;
            t->frames = p + n + 1;
            return 0;
        }
        if (depth == 3 && seg_is(p, n, "bulkdata") && p[n] == '/' && p[n + 1] &&
            !strchr(p + n + 1, '/')) {
            t->what = DW_BULKDATA;
            t->bulk_id = p + n + 1;
            return 0;
        }
        if (depth > 0 && seg_is(p, n, "metadata") && p[n] == '\0') {
            t->what = depth == 1   ? DW_STUDY_METADATA
                      : depth == 2 ? DW_SERIES_METADATA
                                   : DW_INSTANCE_METADATA;
            return 0;
        }
        return not_served(path, err);
    }
}

/* ?imageSetId=<id>&versionId=<n>; other parameters are ignored, as DICOMweb servers ignore
 * parameters they do not support. */
static int parse_query(const char *q, struct dw_target *t, struct ahl_err *err)
{
    bool have_set = false, have_version = false;
    while (q && *q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t kn = eq ? (size_t)(eq - q) : n;
        const char *v = eq ? eq + 1 : q + n;
        size_t vn = (size_t)(q + n - v);
        if (seg_is(q, kn, "imageSetId")) {
            if (have_set || !is_id(v, vn))
                return ahl_fail(err, AHL_EINVAL,
                                "imageSetId must be given once, as 32 "
                                "characters of [0-9a-z]");
            memcpy(t->imageset, v, vn);
            t->imageset[vn] = '\0';
            have_set = true;
        } else if (seg_is(q, kn, "versionId")) {
            char tmp[24];
            if (have_version || vn == 0 || vn >= sizeof tmp)
                return ahl_fail(err, AHL_EINVAL, "versionId must be given once, as 1, 2, ...");
            memcpy(tmp, v, vn);
            tmp[vn] = '\0';
            int rc = ahl__api_parse_version(tmp, "versionId", &t->version, err);
            if (rc < 0)
                return rc;
            have_version = true;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    if (have_version && !have_set)
        return ahl_fail(err, AHL_EINVAL, "versionId requires imageSetId");
    return 0;
}

/* ---- choosing image sets --------------------------------------------------------------------- */

struct set_list {
    char (*ids)[AHL_ID_LEN + 1];
    uint64_t *versions; /* the version each set is read at; 0: unresolved (read the latest) */
    int64_t *accessed;  /* each set's stored last access; -1: unresolved (not read) */
    size_t n, cap;
};

static int collect_primary(void *ctx, const struct ahl_imageset_rec *rec)
{
    struct set_list *l = ctx;
    if (!rec->is_primary)
        return 0;
    if (l->n == l->cap)
        return 1; /* stop: DW_MAX_SETS is documented */
    memcpy(l->ids[l->n++], rec->id, AHL_ID_LEN + 1);
    return 0;
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The sets to answer from, each with the version it is read at: the one set asked for, or every
 * primary set of the study in id order, at its latest version. When key is not NULL, appends to
 * it what the answer is built from (each live set's id, version and document root), the rendered
 * answer cache's key (dicomweb_cache.h); a set that cannot be resolved (unknown, deleted, no such
 * version) leaves the key empty, and is then read as the request says so that it fails as usual. */
static int resolve_sets(struct ahl_api_service *svc, const struct dw_target *t, struct set_list *l,
                        struct ahl_buf *key, struct ahl_err *err)
{
    struct ahl_store_tx *tx = NULL;
    l->cap = t->imageset[0] ? 1 : DW_MAX_SETS;
    l->ids = calloc(l->cap, sizeof *l->ids);
    l->versions = calloc(l->cap, sizeof *l->versions);
    l->accessed = calloc(l->cap, sizeof *l->accessed);
    if (!l->ids || !l->versions || !l->accessed)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    int rc = ahl_store_begin(svc->store, false, &tx);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "listing the study's image sets");
    if (t->imageset[0]) {
        memcpy(l->ids[0], t->imageset, AHL_ID_LEN + 1);
        l->versions[0] = t->version;
        l->n = 1;
    } else {
        rc = ahl_store_imageset_by_study(tx, t->ds, t->study, true, collect_primary, l);
        if (rc < 0) {
            rc = ahl_meta_store_fail(err, rc, "listing the study's image sets");
            goto out;
        }
        qsort(l->ids, l->n, sizeof *l->ids, id_cmp);
    }
    for (size_t i = 0; i < l->n; i++) {
        struct ahl_imageset_rec set;
        struct ahl_version_rec ver;
        l->accessed[i] = -1;
        if (ahl_store_imageset_get(tx, t->ds, l->ids[i], &set) < 0 ||
            ahl_imageset_state_parse(set.state) == AHL_IMAGESET_DELETED ||
            ahl_store_version_get(tx, l->ids[i],
                                  l->versions[i] ? l->versions[i] : set.latest_version, &ver) < 0) {
            if (key)
                ahl_buf_reset(key);
            key = NULL;
            continue;
        }
        l->versions[i] = ver.version;
        l->accessed[i] = set.last_accessed_at_ms;
        char root[2 * AHL_SHA256_LEN + 1];
        ahl_hex_encode(ver.root, AHL_SHA256_LEN, root);
        if (key && ahl_buf_addf(key, "|%s:%llu:%s", l->ids[i], (unsigned long long)ver.version,
                                root) < 0) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            goto out;
        }
    }
out:
    ahl_store_rollback(tx);
    return rc;
}

static void set_list_release(struct set_list *l)
{
    free(l->ids);
    free(l->versions);
    free(l->accessed);
}

/* A retrieve answered from the sets of l is an access of each (docs/decisions.md#storage-tier-
 * and-last-access): recorded in memory, written later in one batch (meta/access.h). */
static void touch_sets(struct ahl_api_service *svc, const struct set_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->accessed[i] >= 0)
            ahl_meta_touch(svc->meta, l->ids[i], l->accessed[i]);
}

/* The documents of the sets l names, appended to docs (a JSON array). A set whose study is
 * another is not found. */
static int load_documents(struct ahl_api_service *svc, const struct dw_target *t,
                          const struct set_list *l, json_t *docs, struct ahl_err *err)
{
    /* Only the series (and instance) asked for is read: a frame costs one instance, not the set. */
    const char *series = t->what == DW_STUDY_METADATA || t->what == DW_STUDY ? NULL : t->series;
    const char *sop = t->what == DW_INSTANCE_METADATA || t->what == DW_FRAMES ||
                              t->what == DW_BULKDATA || t->what == DW_INSTANCE
                          ? t->sop
                          : NULL;
    int rc = 0;
    if (t->imageset[0]) {
        json_t *doc = NULL;
        rc = ahl_meta_document_part(svc->meta, t->ds, t->imageset, l->versions[0], series, sop,
                                    &doc, err);
        if (rc < 0)
            return rc;
        const char *study = json_string_value(json_object_get(
            json_object_get(json_object_get(doc, "Study"), "DICOM"), "StudyInstanceUID"));
        if (!study || strcmp(study, t->study) != 0) {
            json_decref(doc);
            return ahl_fail(err, AHL_ENOTFOUND, "Image set %s does not hold study %s", t->imageset,
                            t->study);
        }
        return json_array_append_new(docs, doc) < 0 ? ahl_fail(err, AHL_ENOMEM, "out of memory")
                                                    : 0;
    }

    for (size_t i = 0; i < l->n; i++) {
        json_t *doc = NULL;
        rc = ahl_meta_document_part(svc->meta, t->ds, l->ids[i], l->versions[i], series, sop, &doc,
                                    err);
        if (rc == AHL_ENOTFOUND)
            continue; /* deleted since it was listed */
        if (rc < 0)
            break;
        if (json_array_append_new(docs, doc) < 0) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            break;
        }
    }
    if (rc < 0 && rc != AHL_ENOTFOUND)
        return rc;
    if (json_array_size(docs) == 0)
        return ahl_fail(err, AHL_ENOTFOUND, "Study %s is not in data store %s", t->study, t->ds);
    return 0;
}

/* ---- building the answer --------------------------------------------------------------------- */

struct dw_ctx {
    struct ahl_api_service *svc;
    const struct dw_target *t;
    const char *base;       /* "http://host/datastore/<ds>" */
    json_t *out;            /* the response array */
    const json_t *instance; /* DW_FRAMES: the instance found */
};

/* The pixel data's BulkDataURI: the instance's frames resource listing every frame, with the
 * selection parameters of the request, so that it names the frames of the set that was read. */
static int pixel_uri(const struct dw_ctx *c, const char *series, const char *sop,
                     const json_t *instance, struct ahl_buf *b)
{
    size_t frames = json_array_size(json_object_get(instance, "ImageFrames"));
    int rc = ahl_buf_addf(b, "%s/studies/%s/series/%s/instances/%s/frames/1", c->base, c->t->study,
                          series, sop);
    for (size_t i = 2; rc == 0 && i <= frames; i++)
        rc = ahl_buf_addf(b, ",%zu", i);
    if (rc == 0 && c->t->imageset[0])
        rc = ahl_buf_addf(b, "?imageSetId=%s", c->t->imageset);
    if (rc == 0 && c->t->version)
        rc = ahl_buf_addf(b, "&versionId=%llu", (unsigned long long)c->t->version);
    return rc;
}

static int add_instance(struct dw_ctx *c, const json_t *doc, const char *series_uid,
                        const json_t *series, const char *sop, const json_t *instance,
                        struct ahl_err *err)
{
    struct ahl_buf uri;
    json_t *obj = NULL;
    const json_t *study = json_object_get(doc, "Study");
    ahl_buf_init(&uri, AHL_BUF_UNLIMITED);
    int rc = pixel_uri(c, series_uid, sop, instance, &uri);
    if (rc < 0 || ahl_buf_add(&uri, "", 1) < 0) {
        ahl_buf_release(&uri);
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    }
    /* Bulk data values: <instance>/bulkdata/<id> with the same selection parameters. */
    size_t px_len = uri.len;
    char sel[160];
    ahl_str_copy_cut(sel, sizeof sel, uri.data + strcspn(uri.data, "?"));
    if (ahl_buf_addf(&uri, "%s/studies/%s/series/%s/instances/%s/bulkdata/", c->base, c->t->study,
                     series_uid, sop) < 0 ||
        ahl_buf_add(&uri, "", 1) < 0 || ahl_buf_add(&uri, sel, strlen(sel) + 1) < 0) {
        ahl_buf_release(&uri);
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    }
    bool has_pixels = json_array_size(json_object_get(instance, "ImageFrames")) > 0;
    struct ahl_hidoc_opts o = {.pixel_bulk_uri = has_pixels ? uri.data : NULL,
                               .bulk_uri_prefix = uri.data + px_len,
                               .bulk_uri_suffix =
                                   uri.data + px_len + strlen(uri.data + px_len) + 1};
    rc =
        ahl_hidoc_instance(json_object_get(doc, "Patient"), study, series, instance, &o, &obj, err);
    ahl_buf_release(&uri);
    if (rc < 0 && rc != AHL_ENOMEM && err) {
        /* The stored document is ours: a value the conversion cannot read is our fault. */
        char msg[sizeof err->msg];
        ahl_str_copy_cut(msg, sizeof msg, err->msg);
        return ahl_fail(err, AHL_EINTERNAL, "instance %s: %s", sop, msg);
    }
    if (rc < 0)
        return rc;
    if (json_array_append_new(c->out, obj) < 0)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    return 0;
}

static int add_series(struct dw_ctx *c, const json_t *doc, const char *series_uid,
                      const json_t *series, struct ahl_err *err)
{
    const json_t *instances = json_object_get(series, "Instances");
    const char *sop;
    json_t *inst;
    json_object_foreach((json_t *)instances, sop, inst)
    {
        if ((c->t->what == DW_INSTANCE_METADATA || c->t->what == DW_FRAMES ||
             c->t->what == DW_BULKDATA) &&
            strcmp(sop, c->t->sop) != 0)
            continue;
        if (c->t->what == DW_FRAMES || c->t->what == DW_BULKDATA) {
            c->instance = inst;
            return 0;
        }
        int rc = add_instance(c, doc, series_uid, series, sop, inst, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int build(struct dw_ctx *c, const json_t *docs, struct ahl_err *err)
{
    size_t i;
    const json_t *doc;
    json_array_foreach(docs, i, doc)
    {
        const json_t *series_map = json_object_get(json_object_get(doc, "Study"), "Series");
        const char *uid;
        json_t *series;
        json_object_foreach((json_t *)series_map, uid, series)
        {
            if (c->t->what != DW_STUDY_METADATA && strcmp(uid, c->t->series) != 0)
                continue;
            int rc = add_series(c, doc, uid, series, err);
            if (rc < 0)
                return rc;
        }
        /* A series lives in one primary set: the first that holds it answers. */
        if (c->t->what != DW_STUDY_METADATA && (json_array_size(c->out) > 0 || c->instance))
            break;
    }
    if (json_array_size(c->out) > 0 || c->instance)
        return 0;
    if (c->t->what == DW_STUDY_METADATA)
        return ahl_fail(err, AHL_ENOTFOUND, "Study %s has no instances", c->t->study);
    if (c->t->what == DW_SERIES_METADATA)
        return ahl_fail(err, AHL_ENOTFOUND, "Series %s is not in study %s%s%s", c->t->series,
                        c->t->study, c->t->imageset[0] ? " of image set " : "", c->t->imageset);
    return ahl_fail(err, AHL_ENOTFOUND, "Instance %s is not in series %s of study %s%s%s",
                    c->t->sop, c->t->series, c->t->study, c->t->imageset[0] ? " of image set " : "",
                    c->t->imageset);
}

int ahl__dicomweb_answer_json(const json_t *answer, struct ahl__dicomweb_request *rq,
                              struct ahl_api_resp *resp, struct ahl_err *err)
{
    if (ahl_json_write(answer, &resp->raw) < 0)
        return ahl_fail(err, AHL_ENOMEM, "could not encode the response");
    resp->content_type = "application/dicom+json";
    rq->status = 200;
    return 0;
}

const char *ahl__dicomweb_host(const char *host)
{
    if (!host || !*host || strlen(host) > 255 ||
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") !=
            strlen(host))
        return "localhost";
    return host;
}

/* The cache key of a metadata answer: the resource and the parts of the request that change its
 * bytes (the UIDs, the BulkDataURI base from Host, the selection parameters); resolve_sets adds
 * the versions read. */
static int cache_key(const struct dw_target *t, const char *base, struct ahl_buf *key)
{
    return ahl_buf_addf(key, "%d|%s|%s|%s|%s|%s|%llu", (int)t->what, base, t->study, t->series,
                        t->sop, t->imageset, (unsigned long long)t->version);
}

/* Stores a rendered metadata answer in the cache and, when the client accepts gzip, answers the
 * gzip'd form instead. Compression costs once per answer that is cached. */
static int finish_metadata(struct ahl_api_service *svc, const struct ahl_buf *key, bool gzip,
                           struct ahl_api_resp *resp, struct ahl_err *err)
{
    struct ahl_buf gz;
    ahl_buf_init(&gz, AHL_BUF_UNLIMITED);
    if (!gzip && !key->len)
        return 0;
    int rc = ahl__gzip(resp->raw.data, resp->raw.len, &gz);
    if (rc == 0 && key->len)
        rc = ahl__dwcache_put(svc->dw_cache, key->data, resp->raw.data, resp->raw.len, gz.data,
                              gz.len);
    if (rc == 0 && gzip) {
        struct ahl_buf plain = resp->raw;
        resp->raw = gz;
        gz = plain;
        resp->content_encoding = "gzip";
    }
    ahl_buf_release(&gz);
    return rc < 0 ? ahl_fail(err, AHL_ENOMEM, "out of memory") : 0;
}

/* Frames: the instance's node of the document ({"DICOM", "ImageFrames", ...}), kept as JSON text
 * under the request's key, which names the version read: the frame list and pixel description of
 * an instance never change in a version. Each frame is still read and verified against its
 * content address on every request (ahl__dicomweb_frames), so a damaged frame is never served. */
static int keep_instance(struct ahl_api_service *svc, const struct ahl_buf *key,
                         const json_t *instance, struct ahl_err *err)
{
    struct ahl_buf text;
    ahl_buf_init(&text, AHL_BUF_UNLIMITED);
    int rc = ahl_json_write(instance, &text);
    if (rc == 0)
        rc = ahl__dwcache_put(svc->dw_cache, key->data, text.data, text.len, "", 0);
    ahl_buf_release(&text);
    return rc < 0 ? ahl_fail(err, AHL_ENOMEM, "out of memory") : 0;
}

/* Answers a frames request from a kept instance node: *answered tells whether there was one. */
static int frames_from_cache(struct ahl_api_service *svc, struct ahl__dicomweb_request *rq,
                             const struct dw_target *t, const struct ahl_buf *key,
                             struct ahl_api_resp *resp, bool *answered, struct ahl_err *err)
{
    struct ahl_buf text;
    ahl_buf_init(&text, AHL_BUF_UNLIMITED);
    int rc = ahl__dwcache_get(svc->dw_cache, key->data, false, &text);
    json_t *instance = rc == 1 ? json_loadb(text.data, text.len, 0, NULL) : NULL;
    ahl_buf_release(&text);
    if (rc < 0 || (rc == 1 && !instance))
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    if (!instance)
        return 0;
    *answered = true;
    rc = ahl__dicomweb_frames(svc, rq, instance, t->frames, resp, err);
    json_decref(instance);
    return rc;
}

static int serve(struct ahl_api_service *svc, struct ahl__dicomweb_request *rq,
                 struct ahl_api_resp *resp, struct ahl_err *err)
{
    struct dw_target t;
    char base[512];
    json_t *docs = NULL;
    struct dw_ctx c = {.svc = svc, .t = &t, .base = base};
    struct set_list sets = {0};
    struct ahl_buf key;
    int rc;

    memset(&t, 0, sizeof t);
    ahl_buf_init(&key, AHL_BUF_UNLIMITED);
    if (strcmp(rq->method, "GET") == 0 && ahl__qido_path(rq->path))
        return ahl__dicomweb_qido(svc, rq, resp, err);
    if (strcmp(rq->method, "GET") != 0)
        return ahl_fail(err, AHL_ENOTFOUND,
                        "DICOMweb: %s is not served here; only GET of the "
                        "retrieve, metadata, frames and bulkdata resources (docs/dicomweb.md)",
                        rq->method);
    if ((rc = parse_path(rq->path, &t, err)) < 0 || (rc = parse_query(rq->query, &t, err)) < 0)
        return rc;
    if ((rc = ahl__api_require_datastore(svc, t.ds, NULL, err)) < 0)
        return rc;
    snprintf(base, sizeof base, "http://%s/datastore/%s", ahl__dicomweb_host(rq->host), t.ds);
    bool metadata = t.what <= DW_INSTANCE_METADATA; /* the resources cached and gzip'd */
    /* Frames keep the instance's node (its frame list and pixel description), not the answer. */
    bool cached = (metadata || t.what == DW_FRAMES) && svc->dw_cache;
    bool gzip = metadata && (ahl__accept_encodings(rq->accept_encoding) & AHL__ENC_GZIP);
    if (cached && cache_key(&t, base, &key) < 0) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = resolve_sets(svc, &t, &sets, cached ? &key : NULL, err)) < 0)
        goto out;
    if (t.what == DW_FRAMES && key.len) {
        bool answered = false;
        if ((rc = frames_from_cache(svc, rq, &t, &key, resp, &answered, err)) < 0 || answered)
            goto out;
    }
    if (metadata && key.len &&
        (rc = ahl__dwcache_get(svc->dw_cache, key.data, gzip, &resp->raw)) != 0) {
        if (rc < 0) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            goto out;
        }
        resp->content_type = "application/dicom+json";
        resp->content_encoding = gzip ? "gzip" : NULL;
        rq->status = 200;
        rc = 0;
        goto out;
    }
    if (!(docs = json_array()) || !(c.out = json_array())) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = load_documents(svc, &t, &sets, docs, err)) < 0)
        goto out;
    if (t.what >= DW_STUDY) {
        struct ahl__dw_retrieve sel = {.datastore_id = t.ds,
                                       .study = t.study,
                                       .series = t.what >= DW_SERIES ? t.series : NULL,
                                       .sop = t.what == DW_INSTANCE ? t.sop : NULL,
                                       .version = t.version};
        rc = ahl__dicomweb_retrieve(svc, rq, docs, &sel, resp, err);
        goto out;
    }
    if ((rc = build(&c, docs, err)) < 0)
        goto out;
    if (t.what == DW_FRAMES) {
        if (key.len && (rc = keep_instance(svc, &key, c.instance, err)) < 0)
            goto out;
        rc = ahl__dicomweb_frames(svc, rq, c.instance, t.frames, resp, err);
        goto out;
    }
    if (t.what == DW_BULKDATA) {
        rc = ahl__dicomweb_bulkdata(svc, rq, c.instance, t.bulk_id, resp, err);
        goto out;
    }
    if ((rc = ahl__dicomweb_answer_json(c.out, rq, resp, err)) == 0)
        rc = finish_metadata(svc, &key, gzip, resp, err);
out:
    if (rc == 0 && sets.accessed)
        touch_sets(svc, &sets);
    json_decref(c.out);
    json_decref(docs);
    set_list_release(&sets);
    ahl_buf_release(&key);
    return rc;
}

int ahl__dicomweb_serve(struct ahl_api_service *svc, struct ahl__dicomweb_request *rq,
                        struct ahl_api_resp *resp, struct ahl_err *err)
{
    int rc = serve(svc, rq, resp, err);
    /* Messages quote the method, the path or the frame list, which may hold any bytes (or be cut
     * inside a character): keep them valid UTF-8, as the API's own messages are, for the error
     * body and the log. Bytes above 0x7F become '?': a well-formed request target is ASCII. */
    size_t n = rc < 0 && err ? strnlen(err->msg, sizeof err->msg) : 0;
    if (n && !ahl_utf8_valid(err->msg, n))
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)err->msg[i] >= 0x80)
                err->msg[i] = '?';
    return rc;
}
