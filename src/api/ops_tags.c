/* TagResource, UntagResource, ListTagsForResource on data store and image set ARNs.
 *
 * The model's pattern has already checked the ARN's shape. Here it must also name this server's
 * region and account and a resource that exists (a data store, or an image set that is not
 * deleted); otherwise ResourceNotFoundException, as for any other unknown resource. Tags are kept
 * under the canonical ARN, so the partition spelling of the request does not matter. A resource
 * holds at most 50 tags (AWS's limit); a TagResource that would exceed it changes nothing.
 */
#include "api/ops_internal.h"

#include <stdio.h>
#include <string.h>

#include "base/banned.h"

#define MAX_TAGS_PER_RESOURCE 50

struct resource {
    char datastore_id[AHL_ID_LEN + 1];
    char imageset_id[AHL_ID_LEN + 1]; /* "" for a data store */
    char arn[256];                    /* canonical */
};

/* Splits "arn:PARTITION:medical-imaging:REGION:ACCOUNT:datastore/ID[/imageset/ID]". */
static int parse_arn(struct ahl_api_service *svc, const char *arn, struct resource *r,
                     struct ahl_err *err)
{
    char region[64], account[16];
    const char *p = arn;
    memset(r, 0, sizeof *r);
    /* Fields 4 and 5 (region, account) sit between the 3rd..5th colons. */
    for (int i = 0; i < 3; i++) {
        p = strchr(p, ':');
        if (!p)
            goto bad;
        p++;
    }
    const char *e = strchr(p, ':');
    if (!e || (size_t)(e - p) >= sizeof region)
        goto bad;
    memcpy(region, p, (size_t)(e - p));
    region[e - p] = '\0';
    p = e + 1;
    e = strchr(p, ':');
    if (!e || (size_t)(e - p) >= sizeof account)
        goto bad;
    memcpy(account, p, (size_t)(e - p));
    account[e - p] = '\0';
    p = e + 1;
    if (strncmp(p, "datastore/", 10) != 0 || strlen(p + 10) < AHL_ID_LEN)
        goto bad;
    memcpy(r->datastore_id, p + 10, AHL_ID_LEN);
    p += 10 + AHL_ID_LEN;
    if (*p) {
        if (strncmp(p, "/imageset/", 10) != 0 || strlen(p + 10) != AHL_ID_LEN)
            goto bad;
        memcpy(r->imageset_id, p + 10, AHL_ID_LEN);
    }
    if (strcmp(region, svc->region) != 0 || strcmp(account, svc->account_id) != 0)
        return ahl_fail(err, AHL_ENOTFOUND,
                        "Resource %s not found: this server serves region %s, account %s", arn,
                        svc->region, svc->account_id);
    if (r->imageset_id[0])
        ahl__api_imageset_arn(svc, r->datastore_id, r->imageset_id, r->arn, sizeof r->arn);
    else
        ahl__api_datastore_arn(svc, r->datastore_id, r->arn, sizeof r->arn);
    return 0;
bad:
    return ahl_fail(err, AHL_EINVAL, "Malformed resource ARN %.300s", arn);
}

/* The resource must exist. A tombstone (docs/decisions.md#tombstones) has no tags (they went
 * with it): ListTagsForResource answers none, and writing tags to it is a ConflictException,
 * as any write to a deleted resource is. */
static int require_resource(struct ahl_store_tx *tx, const struct resource *r, bool write,
                            struct ahl_err *err)
{
    struct ahl_imageset_rec set;
    struct ahl_datastore_rec ds;
    int rc = ahl__api_datastore_get(tx, r->datastore_id, &ds, err);
    if (rc < 0)
        return rc;
    bool deleted = ahl_datastore_status_parse(ds.status) == AHL_DATASTORE_DELETED;
    if (r->imageset_id[0]) {
        rc = ahl_store_imageset_get(tx, r->datastore_id, r->imageset_id, &set);
        if (rc == AHL_ENOTFOUND)
            return ahl_fail(err, AHL_ENOTFOUND, "Image set %s does not exist in data store %s",
                            r->imageset_id, r->datastore_id);
        if (rc < 0)
            return ahl_meta_store_fail(err, rc, "handling image set");
        deleted = ahl_imageset_state_parse(set.state) == AHL_IMAGESET_DELETED;
    }
    if (deleted && write)
        return ahl_fail(err, AHL_ECONFLICT, "%s is DELETED: its tags can no longer be changed",
                        r->arn);
    return 0;
}

int ahl__api_tags_check_count(size_t total, const char *arn, struct ahl_err *err)
{
    if (total <= MAX_TAGS_PER_RESOURCE)
        return 0;
    return ahl_fail(err, AHL_EINVAL,
                    "A resource may carry at most %d tags; this request would leave %zu on %s",
                    MAX_TAGS_PER_RESOURCE, total, arn);
}

static int collect_tag(void *ctx, const char *key, const char *value)
{
    return json_object_set_new(ctx, key, json_string(value)) < 0 ? AHL_ENOMEM : 0;
}

int ahl__op_TagResource(struct ahl_api_service *svc, const json_t *in, struct ahl_api_resp *resp,
                        struct ahl_err *err)
{
    struct resource r;
    struct ahl_store_tx *tx = NULL;
    const json_t *tags = json_object_get(in, "tags");
    json_t *current = json_object();
    int rc;
    (void)resp;

    if (!current)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    if ((rc = parse_arn(svc, ahl_api_str(in, "resourceArn"), &r, err)) < 0)
        goto out;
    if ((rc = ahl_store_begin(svc->store, true, &tx)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "handling tags");
        goto out;
    }
    if ((rc = require_resource(tx, &r, true, err)) < 0)
        goto out;
    if ((rc = ahl_store_tag_list(tx, r.arn, collect_tag, current)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "handling tags");
        goto out;
    }
    size_t total = json_object_size(current);
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)tags, key, value)
    {
        if (!json_object_get(current, key))
            total++;
    }
    if ((rc = ahl__api_tags_check_count(total, r.arn, err)) < 0)
        goto out;
    json_object_foreach((json_t *)tags, key, value)
    {
        if ((rc = ahl_store_tag_put(tx, r.arn, key, json_string_value(value))) < 0) {
            rc = ahl_meta_store_fail(err, rc, "handling tags");
            goto out;
        }
    }
    rc = ahl_store_commit(tx);
    tx = NULL;
    if (rc < 0)
        rc = ahl_meta_store_fail(err, rc, "handling tags");
out:
    ahl_store_rollback(tx);
    json_decref(current);
    return rc;
}

int ahl__op_UntagResource(struct ahl_api_service *svc, const json_t *in, struct ahl_api_resp *resp,
                          struct ahl_err *err)
{
    struct resource r;
    struct ahl_store_tx *tx = NULL;
    const json_t *keys = json_object_get(in, "tagKeys");
    int rc;
    (void)resp;

    if ((rc = parse_arn(svc, ahl_api_str(in, "resourceArn"), &r, err)) < 0)
        return rc;
    if ((rc = ahl_store_begin(svc->store, true, &tx)) < 0)
        return ahl_meta_store_fail(err, rc, "handling tags");
    if ((rc = require_resource(tx, &r, true, err)) < 0)
        goto out;
    for (size_t i = 0; i < json_array_size(keys); i++) {
        rc = ahl_store_tag_delete(tx, r.arn, json_string_value(json_array_get(keys, i)));
        if (rc == AHL_ENOTFOUND)
            rc = 0; /* removing a tag that is not there is not an error */
        if (rc < 0) {
            rc = ahl_meta_store_fail(err, rc, "handling tags");
            goto out;
        }
    }
    rc = ahl_store_commit(tx);
    tx = NULL;
    if (rc < 0)
        rc = ahl_meta_store_fail(err, rc, "handling tags");
out:
    ahl_store_rollback(tx);
    return rc;
}

int ahl__op_ListTagsForResource(struct ahl_api_service *svc, const json_t *in,
                                struct ahl_api_resp *resp, struct ahl_err *err)
{
    struct resource r;
    struct ahl_store_tx *tx = NULL;
    json_t *tags = json_object();
    int rc;

    if (!tags || ahl__api_set(resp->json, "tags", tags) < 0)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    if ((rc = parse_arn(svc, ahl_api_str(in, "resourceArn"), &r, err)) < 0)
        return rc;
    if ((rc = ahl_store_begin(svc->store, false, &tx)) < 0)
        return ahl_meta_store_fail(err, rc, "handling tags");
    if ((rc = require_resource(tx, &r, false, err)) == 0 &&
        (rc = ahl_store_tag_list(tx, r.arn, collect_tag, tags)) < 0)
        rc = ahl_meta_store_fail(err, rc, "handling tags");
    ahl_store_rollback(tx);
    return rc;
}
