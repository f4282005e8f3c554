/* GetImageSet, GetImageSetMetadata, ListImageSetVersions, UpdateImageSetMetadata, CopyImageSet,
 * DeleteImageSet: the image-set operations, over the versioned engine (meta.h).
 *
 * The engine does the work synchronously in one transaction and reports the states AWS's
 * asynchronous calls report (LOCKED / UPDATING, COPYING, DELETING); the set is back to ACTIVE by
 * the time the response is read. Engine errors already carry their AWS type and message.
 */
#include "api/ops_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/codec.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/banned.h"

#define VERSIONS_DEFAULT_MAX 50
#define NOMEM(err) ahl_fail(err, AHL_ENOMEM, "out of memory")

static json_t *version_string(uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    return json_string(s);
}

/* The optional ?version= of GetImageSet / GetImageSetMetadata; 0 = latest. */
static int optional_version(const json_t *in, uint64_t *out, struct ahl_err *err)
{
    const char *v = ahl_api_str(in, "versionId");
    *out = 0;
    return v ? ahl__api_parse_version(v, "versionId", out, err) : 0;
}

int ahl__op_GetImageSet(struct ahl_api_service *svc, const json_t *in, struct ahl_api_resp *resp,
                        struct ahl_err *err)
{
    struct ahl_meta_info info;
    const char *ds = ahl_api_str(in, "datastoreId"), *id = ahl_api_str(in, "imageSetId");
    char arn[256];
    uint64_t version;
    int rc;

    if ((rc = optional_version(in, &version, err)) < 0)
        return rc;
    if ((rc = ahl_meta_imageset_get(svc->meta, ds, id, version, &info, err)) < 0)
        return rc;
    /* The latest version reports the set's current state; older ones their own. */
    int latest = info.ver.version == info.set.latest_version;
    json_t *o = resp->json;
    ahl__api_imageset_arn(svc, ds, id, arn, sizeof arn);
    rc = ahl__api_set(o, "datastoreId", json_string(ds));
    rc |= ahl__api_set(o, "imageSetId", json_string(id));
    rc |= ahl__api_set(o, "versionId", version_string(info.ver.version));
    rc |= ahl__api_set(o, "imageSetState", json_string(latest ? info.set.state : info.ver.state));
    rc |= ahl__api_set_str_opt(o, "imageSetWorkflowStatus",
                               latest ? info.set.workflow_status : info.ver.workflow_status);
    rc |= ahl__api_set_ts_opt(o, "createdAt", info.set.created_at_ms);
    rc |= ahl__api_set_ts_opt(o, "updatedAt", info.ver.updated_at_ms);
    rc |= ahl__api_set_ts_opt(o, "deletedAt", info.set.deleted_at_ms);
    rc |= ahl__api_set_str_opt(o, "message", info.ver.message);
    rc |= ahl__api_set(o, "imageSetArn", json_string(arn));
    if (info.ver.forced)
        rc |= ahl__api_set(o, "overrides", json_pack("{s:b}", "forced", 1));
    rc |= ahl__api_set(o, "isPrimary", json_boolean(info.set.is_primary));
    /* GetImageSet is no access itself; one this node has not written yet counts. */
    int64_t last = ahl_meta_last_access(svc->meta, id, info.set.last_accessed_at_ms);
    rc |= ahl__api_set_ts_opt(o, "lastAccessedAt", last);
    rc |= ahl__api_set(o, "storageTier",
                       json_string(ahl_storage_tier_name(ahl_meta_storage_tier(svc->meta, last))));
    return rc ? NOMEM(err) : 0;
}

/* GetImageSetMetadata: the engine assembles the gzip document inside one short read transaction
 * (a consistent snapshot of the version), into a spool (spool.c); the transaction ends before the
 * first byte is sent. A client that reads slowly, or not at all, then holds only its own
 * connection and the spool, never a database reader. Assembly copies stored deflate segments, so
 * even a 100 MB document is spooled in tens of milliseconds. */
int ahl__op_GetImageSetMetadata(struct ahl_api_service *svc, const json_t *in,
                                struct ahl_api_resp *resp, struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId"), *id = ahl_api_str(in, "imageSetId");
    struct ahl__api_spool sp;
    struct ahl_imageset_rec set;
    uint64_t version;
    int rc;

    if ((rc = optional_version(in, &version, err)) < 0)
        return rc;
    ahl__api_spool_init(&sp, svc, resp);
    rc = ahl_meta_metadata_gzip_row(svc->meta, ds, id, version, ahl__api_spool_write, &sp, &set,
                                    err);
    if ((rc = ahl__api_spool_finish(&sp, rc, "metadata", resp, err)) < 0)
        return rc;
    /* An access, recorded in memory: a read never becomes a write transaction (access.h). */
    ahl_meta_touch(svc->meta, id, set.last_accessed_at_ms);
    resp->content_type = "application/json";
    resp->content_encoding = "gzip";
    return 0;
}

struct versions_ctx {
    struct ahl__api_page page;
    bool is_primary;
    int64_t set_created_ms;
    int64_t set_deleted_ms;
    uint64_t last;
};

static int version_item(void *vctx, const struct ahl_version_rec *v)
{
    struct versions_ctx *c = vctx;
    json_t *o;
    int rc = ahl__api_page_item(&c->page, &o);
    if (rc != 0)
        return rc;
    c->last = v->version;
    rc = ahl__api_set(o, "imageSetId", json_string(v->imageset_id));
    rc |= ahl__api_set(o, "versionId", version_string(v->version));
    rc |= ahl__api_set(o, "imageSetState", json_string(v->state));
    /* The model really spells this member with a capital I here. */
    rc |= ahl__api_set_str_opt(o, "ImageSetWorkflowStatus", v->workflow_status);
    rc |= ahl__api_set_ts_opt(o, "createdAt", v->created_at_ms);
    rc |= ahl__api_set_ts_opt(o, "updatedAt", v->updated_at_ms);
    rc |= ahl__api_set_ts_opt(o, "deletedAt", c->set_deleted_ms);
    rc |= ahl__api_set_str_opt(o, "message", v->message);
    if (v->forced)
        rc |= ahl__api_set(o, "overrides", json_pack("{s:b}", "forced", 1));
    rc |= ahl__api_set(o, "isPrimary", json_boolean(c->is_primary));
    return rc ? AHL_ENOMEM : 0;
}

int ahl__op_ListImageSetVersions(struct ahl_api_service *svc, const json_t *in,
                                 struct ahl_api_resp *resp, struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId"), *id = ahl_api_str(in, "imageSetId");
    const char *token = ahl_api_str(in, "nextToken");
    struct ahl_meta_info info;
    struct versions_ctx c = {0};
    char pos[32];
    uint64_t below = 0;
    int rc;

    c.page.limit = (unsigned)ahl_api_int(in, "maxResults", VERSIONS_DEFAULT_MAX);
    if (token) {
        if ((rc = ahl__api_token_decode("v", token, pos, sizeof pos, err)) < 0 ||
            (rc = ahl__api_parse_version(pos, "nextToken", &below, err)) < 0)
            return ahl_fail(err, AHL_EINVAL,
                            "Invalid nextToken: it was not returned by this operation");
    }
    if ((rc = ahl_meta_imageset_get(svc->meta, ds, id, 0, &info, err)) < 0)
        return rc;
    c.is_primary = info.set.is_primary;
    c.set_deleted_ms = info.set.deleted_at_ms;
    c.page.items = json_array();
    if (!c.page.items || ahl__api_set(resp->json, "imageSetPropertiesList", c.page.items) < 0)
        return NOMEM(err);
    rc = ahl_meta_versions_list(svc->meta, ds, id, below, c.page.limit + 1, version_item, &c, err);
    if (rc == AHL_ENOMEM)
        return NOMEM(err);
    if (rc < 0)
        return rc;
    if (c.page.more) {
        snprintf(pos, sizeof pos, "%" PRIu64, c.last);
        if (ahl__api_token_encode("v", pos, resp->json) < 0)
            return NOMEM(err);
    }
    return 0;
}

/* Decodes a base64 DICOMUpdates blob (the model has checked it is valid base64 of 1..30000
 * bytes). */
static int decode_blob(const json_t *updates, const char *member, struct ahl_buf *out,
                       struct ahl_err *err)
{
    const char *b64 = ahl_api_str(updates, member);
    if (!b64)
        return 0;
    if (ahl_base64_decode(b64, strlen(b64), out) < 0)
        return ahl_fail(err, AHL_EINVAL,
                        "updateImageSetMetadataUpdates.DICOMUpdates.%s is not valid base64",
                        member);
    return 0;
}

int ahl__op_UpdateImageSetMetadata(struct ahl_api_service *svc, const json_t *in,
                                   struct ahl_api_resp *resp, struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId"), *id = ahl_api_str(in, "imageSetId");
    const json_t *updates = json_object_get(in, "updateImageSetMetadataUpdates");
    const json_t *dicom = json_object_get(updates, "DICOMUpdates");
    const char *revert = ahl_api_str(updates, "revertToVersionId");
    struct ahl_meta_update u = {0};
    struct ahl_meta_update_result res;
    struct ahl_buf updatable, removable;
    int rc;

    ahl_buf_init(&updatable, 64 * 1024);
    ahl_buf_init(&removable, 64 * 1024);
    if ((rc = ahl__api_parse_version(ahl_api_str(in, "latestVersionId"), "latestVersionId",
                                     &u.latest_version, err)) < 0)
        goto out;
    u.force = ahl_api_bool(in, "force", 0);
    u.include_study_image_sets = ahl_api_bool(in, "includeStudyImageSets", 0);
    if (revert) {
        if ((rc = ahl__api_parse_version(revert, "revertToVersionId", &u.revert_to_version, err)) <
            0)
            goto out;
    } else {
        if ((rc = decode_blob(dicom, "updatableAttributes", &updatable, err)) < 0 ||
            (rc = decode_blob(dicom, "removableAttributes", &removable, err)) < 0)
            goto out;
        if (!json_object_get(dicom, "updatableAttributes") &&
            !json_object_get(dicom, "removableAttributes")) {
            rc = ahl_fail(err, AHL_EINVAL,
                          "DICOMUpdates needs updatableAttributes, removableAttributes or both");
            goto out;
        }
        if (json_object_get(dicom, "updatableAttributes")) {
            u.updatable = updatable.data;
            u.updatable_len = updatable.len;
        }
        if (json_object_get(dicom, "removableAttributes")) {
            u.removable = removable.data;
            u.removable_len = removable.len;
        }
    }
    if ((rc = ahl_meta_update(svc->meta, ds, id, &u, &res, err)) < 0)
        goto out;
    json_t *o = resp->json;
    rc = ahl__api_set(o, "datastoreId", json_string(ds));
    rc |= ahl__api_set(o, "imageSetId", json_string(id));
    rc |= ahl__api_set(o, "latestVersionId", version_string(res.latest_version));
    rc |= ahl__api_set_in_flight(o, AHL_WORKFLOW_UPDATING);
    rc |= ahl__api_set_ts_opt(o, "createdAt", res.created_at_ms);
    rc |= ahl__api_set_ts_opt(o, "updatedAt", res.updated_at_ms);
    if (rc)
        rc = NOMEM(err);
out:
    ahl_buf_release(&updatable);
    ahl_buf_release(&removable);
    return rc;
}

static json_t *copy_properties(struct ahl_api_service *svc, const char *ds,
                               const struct ahl_imageset_rec *r, enum ahl_workflow_status workflow)
{
    char arn[256];
    json_t *o = json_object();
    if (!o)
        return NULL;
    ahl__api_imageset_arn(svc, ds, r->id, arn, sizeof arn);
    int rc = ahl__api_set(o, "imageSetId", json_string(r->id));
    rc |= ahl__api_set(o, "latestVersionId", version_string(r->latest_version));
    rc |= ahl__api_set_in_flight(o, workflow);
    rc |= ahl__api_set_ts_opt(o, "createdAt", r->created_at_ms);
    rc |= ahl__api_set_ts_opt(o, "updatedAt", r->updated_at_ms);
    rc |= ahl__api_set(o, "imageSetArn", json_string(arn));
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int ahl__op_CopyImageSet(struct ahl_api_service *svc, const json_t *in, struct ahl_api_resp *resp,
                         struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId");
    const char *src = ahl_api_str(in, "sourceImageSetId");
    const json_t *info = json_object_get(in, "copyImageSetInformation");
    const json_t *source = json_object_get(info, "sourceImageSet");
    const json_t *dest = json_object_get(info, "destinationImageSet");
    const json_t *copies = json_object_get(source, "DICOMCopies");
    struct ahl_meta_copy c = {0};
    struct ahl_meta_copy_result res;
    int rc;

    if ((rc = ahl__api_parse_version(ahl_api_str(source, "latestVersionId"),
                                     "copyImageSetInformation.sourceImageSet.latestVersionId",
                                     &c.source_latest_version, err)) < 0)
        return rc;
    if (dest) {
        c.destination_id = ahl_api_str(dest, "imageSetId");
        if ((rc = ahl__api_parse_version(
                 ahl_api_str(dest, "latestVersionId"),
                 "copyImageSetInformation.destinationImageSet.latestVersionId",
                 &c.destination_latest_version, err)) < 0)
            return rc;
        if (!strcmp(c.destination_id, src))
            return ahl_fail(err, AHL_EINVAL,
                            "The destination image set must differ from the source image set");
    }
    if (copies) {
        c.copiable_attributes = ahl_api_str(copies, "copiableAttributes");
        c.copiable_len = strlen(c.copiable_attributes);
    }
    c.force = ahl_api_bool(in, "force", 0);
    c.promote_to_primary = ahl_api_bool(in, "promoteToPrimary", 0);
    if ((rc = ahl_meta_copy(svc->meta, ds, src, &c, &res, err)) < 0)
        return rc;
    rc = ahl__api_set(resp->json, "datastoreId", json_string(ds));
    rc |= ahl__api_set(
        resp->json, "sourceImageSetProperties",
        copy_properties(svc, ds, &res.source, AHL_WORKFLOW_COPYING_WITH_READ_ONLY_ACCESS));
    rc |= ahl__api_set(resp->json, "destinationImageSetProperties",
                       copy_properties(svc, ds, &res.destination, AHL_WORKFLOW_COPYING));
    return rc ? NOMEM(err) : 0;
}

/* A deleted set's tags go with it: a tombstone keeps ids, states and times only
 * (docs/decisions.md#tombstones). The set is deleted already, so a failure here is logged, not
 * answered; TagResource and ListTagsForResource refuse a deleted set anyway. */
static void drop_tags(struct ahl_api_service *svc, const char *ds, const char *id)
{
    struct ahl_store_tx *tx = NULL;
    char arn[256];
    ahl__api_imageset_arn(svc, ds, id, arn, sizeof arn);
    int rc = ahl_store_begin(svc->store, true, &tx);
    if (rc == 0 && (rc = ahl_store_tag_delete_all(tx, arn)) == 0) {
        rc = ahl_store_commit(tx);
        tx = NULL;
    }
    ahl_store_rollback(tx);
    if (rc < 0)
        ahl_warn("image set %s was deleted but its tags could not be removed: %s", id,
                 ahl_strerror(rc));
}

int ahl__op_DeleteImageSet(struct ahl_api_service *svc, const json_t *in, struct ahl_api_resp *resp,
                           struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId"), *id = ahl_api_str(in, "imageSetId");
    struct ahl_imageset_rec r;
    bool was_deleted;
    int rc = ahl_meta_imageset_delete(svc->meta, ds, id, &r, &was_deleted, err);
    if (rc < 0)
        return rc;
    if (!was_deleted)
        drop_tags(svc, ds, id);
    rc = ahl__api_set(resp->json, "datastoreId", json_string(ds));
    rc |= ahl__api_set(resp->json, "imageSetId", json_string(id));
    if (was_deleted) {
        /* Deleting again (the operation is idempotent) reports the tombstone as it is. */
        rc |= ahl__api_set(resp->json, "imageSetState", json_string(r.state));
        rc |= ahl__api_set(resp->json, "imageSetWorkflowStatus", json_string(r.workflow_status));
    } else {
        rc |= ahl__api_set_in_flight(resp->json, AHL_WORKFLOW_DELETING);
    }
    return rc ? NOMEM(err) : 0;
}
