/* CreateDatastore, GetDatastore, ListDatastores, DeleteDatastore.
 *
 * Lifecycle: a data store is usable as soon as CreateDatastore returns. The call answers CREATING
 * as AWS's asynchronous call does, and the row is written ACTIVE in the same transaction, so a
 * client polling GetDatastore until ACTIVE sees it at once. DeleteDatastore answers DELETING,
 * writes the row DELETED (a tombstone GetDatastore and ListDatastores show until it expires,
 * docs/decisions.md#tombstones) and removes its tags; it is refused (ConflictException) while
 * the store holds image sets that are not deleted, and deleting a DELETED store again answers
 * DELETED.
 *
 * Idempotency: the data store id is derived from the clientToken (the first 128 bits of
 * SHA-256("datastore\0" + token), as hex), so a retried CreateDatastore finds the store its first
 * attempt made, across restarts and server processes, without a token table. The same token with
 * other parameters is a ConflictException, as AWS does for a reused idempotency token.
 */
#include "api/ops_internal.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/codec.h"
#include "meta/events.h"
#include "base/banned.h"

#define LIST_DEFAULT_MAX 50

static int same_parameters(const struct ahl_datastore_rec *a, const struct ahl_datastore_rec *b)
{
    return !strcmp(a->name, b->name) && !strcmp(a->kms_key_arn, b->kms_key_arn) &&
           !strcmp(a->lambda_authorizer_arn, b->lambda_authorizer_arn) &&
           !strcmp(a->lossless_storage_format, b->lossless_storage_format);
}

int ahl__op_CreateDatastore(struct ahl_api_service *svc, const json_t *in,
                            struct ahl_api_resp *resp, struct ahl_err *err)
{
    struct ahl_datastore_rec rec, old;
    struct ahl_store_tx *tx = NULL;
    char arn[256];
    const char *token = ahl_api_str(in, "clientToken");
    const char *name = ahl_api_str(in, "datastoreName");
    const json_t *tags = json_object_get(in, "tags");
    int rc;

    memset(&rec, 0, sizeof rec);
    const char *id_parts[] = {"datastore", token};
    if (ahl__api_id_from_token(id_parts, 2, rec.id) < 0)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    const char *fmt = ahl_api_str(in, "losslessStorageFormat");
    if ((rc = ahl__api_copy_member(rec.name, sizeof rec.name, name ? name : rec.id, "datastoreName",
                                   err)) < 0 ||
        (rc = ahl__api_copy_member(rec.kms_key_arn, sizeof rec.kms_key_arn,
                                   ahl_api_str(in, "kmsKeyArn"), "kmsKeyArn", err)) < 0 ||
        (rc = ahl__api_copy_member(rec.lambda_authorizer_arn, sizeof rec.lambda_authorizer_arn,
                                   ahl_api_str(in, "lambdaAuthorizerArn"), "lambdaAuthorizerArn",
                                   err)) < 0 ||
        (rc = ahl__api_copy_member(rec.lossless_storage_format, sizeof rec.lossless_storage_format,
                                   fmt ? fmt : "HTJ2K", "losslessStorageFormat", err)) < 0)
        return rc;
    ahl_datastore_rec_set_status(&rec, AHL_DATASTORE_ACTIVE);
    rec.created_at_ms = rec.updated_at_ms = ahl_now_ms();
    if ((rc = ahl__api_datastore_arn(svc, rec.id, arn, sizeof arn)) < 0)
        return ahl_fail(err, AHL_EINTERNAL, "data store ARN too long");
    if ((rc = ahl__api_tags_check_count(json_object_size(tags), arn, err)) < 0)
        return rc;

    if ((rc = ahl_store_begin(svc->store, true, &tx)) < 0)
        return ahl_meta_store_fail(err, rc, "handling data store");
    rc = ahl_store_datastore_get(tx, rec.id, &old);
    if (rc == 0) {
        ahl_store_rollback(tx);
        if (!same_parameters(&old, &rec))
            return ahl_fail(err, AHL_ECONFLICT,
                            "The clientToken was already used to create data store %s with "
                            "different parameters",
                            old.id);
        if (ahl__api_set(resp->json, "datastoreId", json_string(old.id)) < 0 ||
            ahl__api_set(resp->json, "datastoreStatus", json_string(old.status)) < 0)
            return ahl_fail(err, AHL_ENOMEM, "out of memory");
        return 0;
    }
    if (rc != AHL_ENOTFOUND)
        goto store_fail;
    if ((rc = ahl_store_datastore_put(tx, &rec, true)) < 0 ||
        (rc = ahl_event_datastore(tx, AHL_EVENT_DATASTORE_CREATING, &rec)) < 0 ||
        (rc = ahl_event_datastore(tx, AHL_EVENT_DATASTORE_CREATED, &rec)) < 0)
        goto store_fail;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)tags, key, value)
    {
        if ((rc = ahl_store_tag_put(tx, arn, key, json_string_value(value))) < 0)
            goto store_fail;
    }
    if ((rc = ahl_store_commit(tx)) < 0) {
        tx = NULL;
        goto store_fail;
    }
    tx = NULL;
    /* The data store is ACTIVE already; the response says what AWS's asynchronous call does. */
    if (ahl__api_set(resp->json, "datastoreId", json_string(rec.id)) < 0 ||
        ahl__api_set(resp->json, "datastoreStatus",
                     json_string(ahl_datastore_status_name(AHL_DATASTORE_CREATING))) < 0)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    return 0;

store_fail:
    ahl_store_rollback(tx);
    return ahl_meta_store_fail(err, rc, "handling data store");
}

int ahl__op_GetDatastore(struct ahl_api_service *svc, const json_t *in, struct ahl_api_resp *resp,
                         struct ahl_err *err)
{
    struct ahl_datastore_rec rec;
    char arn[256];
    const char *id = ahl_api_str(in, "datastoreId");
    int rc = ahl__api_require_datastore(svc, id, &rec, err);
    if (rc < 0)
        return rc;
    json_t *p = json_object();
    if (!p || ahl__api_set(resp->json, "datastoreProperties", p) < 0)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    ahl__api_datastore_arn(svc, rec.id, arn, sizeof arn);
    rc = ahl__api_set(p, "datastoreId", json_string(rec.id));
    rc |= ahl__api_set(p, "datastoreName", json_string(rec.name));
    rc |= ahl__api_set(p, "datastoreStatus", json_string(rec.status));
    rc |= ahl__api_set_str_opt(p, "kmsKeyArn", rec.kms_key_arn);
    rc |= ahl__api_set_str_opt(p, "lambdaAuthorizerArn", rec.lambda_authorizer_arn);
    rc |= ahl__api_set_str_opt(p, "losslessStorageFormat", rec.lossless_storage_format);
    rc |= ahl__api_set(p, "datastoreArn", json_string(arn));
    rc |= ahl__api_set_ts_opt(p, "createdAt", rec.created_at_ms);
    rc |= ahl__api_set_ts_opt(p, "updatedAt", rec.updated_at_ms);
    return rc ? ahl_fail(err, AHL_ENOMEM, "out of memory") : 0;
}

struct list_ctx {
    struct ahl_api_service *svc;
    struct ahl__api_page page;
    char last_id[AHL_ID_LEN + 1];
};

static int list_one(void *vctx, const struct ahl_datastore_rec *rec)
{
    struct list_ctx *c = vctx;
    char arn[256];
    json_t *s;
    int rc = ahl__api_page_item(&c->page, &s);
    if (rc != 0)
        return rc;
    memcpy(c->last_id, rec->id, sizeof c->last_id);
    ahl__api_datastore_arn(c->svc, rec->id, arn, sizeof arn);
    rc = ahl__api_set(s, "datastoreId", json_string(rec->id));
    rc |= ahl__api_set(s, "datastoreName", json_string(rec->name));
    rc |= ahl__api_set(s, "datastoreStatus", json_string(rec->status));
    rc |= ahl__api_set(s, "datastoreArn", json_string(arn));
    rc |= ahl__api_set_ts_opt(s, "createdAt", rec->created_at_ms);
    rc |= ahl__api_set_ts_opt(s, "updatedAt", rec->updated_at_ms);
    return rc ? AHL_ENOMEM : 0;
}

int ahl__op_ListDatastores(struct ahl_api_service *svc, const json_t *in, struct ahl_api_resp *resp,
                           struct ahl_err *err)
{
    struct list_ctx c = {.svc = svc, .page.limit = LIST_DEFAULT_MAX};
    struct ahl_store_tx *tx = NULL;
    char after[AHL_ID_LEN + 1] = "";
    const char *token = ahl_api_str(in, "nextToken");
    int rc;

    c.page.limit = (unsigned)ahl_api_int(in, "maxResults", LIST_DEFAULT_MAX);
    if (token && (rc = ahl__api_token_decode("ds", token, after, sizeof after, err)) < 0)
        return rc;
    c.page.items = json_array();
    if (!c.page.items || ahl__api_set(resp->json, "datastoreSummaries", c.page.items) < 0)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    if ((rc = ahl_store_begin(svc->store, false, &tx)) < 0)
        return ahl_meta_store_fail(err, rc, "handling data stores");
    rc = ahl_store_datastore_list(tx, ahl_api_str(in, "datastoreStatus"), after, c.page.limit + 1,
                                  list_one, &c);
    ahl_store_rollback(tx);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "handling data stores");
    if (c.page.more && ahl__api_token_encode("ds", c.last_id, resp->json) < 0)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    return 0;
}

int ahl__op_DeleteDatastore(struct ahl_api_service *svc, const json_t *in,
                            struct ahl_api_resp *resp, struct ahl_err *err)
{
    struct ahl_datastore_rec rec;
    struct ahl_store_tx *tx = NULL;
    uint64_t sets = 0;
    char arn[256];
    const char *id = ahl_api_str(in, "datastoreId");
    int rc;

    if ((rc = ahl_store_begin(svc->store, true, &tx)) < 0)
        return ahl_meta_store_fail(err, rc, "handling data store");
    if ((rc = ahl__api_datastore_get(tx, id, &rec, err)) < 0) {
        ahl_store_rollback(tx);
        return rc;
    }
    if (ahl_datastore_status_parse(rec.status) == AHL_DATASTORE_DELETED) {
        /* Deleting again (the operation is idempotent) reports the tombstone as it is. */
        ahl_store_rollback(tx);
        if (ahl__api_set(resp->json, "datastoreId", json_string(id)) < 0 ||
            ahl__api_set(resp->json, "datastoreStatus", json_string(rec.status)) < 0)
            return ahl_fail(err, AHL_ENOMEM, "out of memory");
        return 0;
    }
    if ((rc = ahl_store_datastore_count_imagesets(tx, id, &sets)) < 0)
        goto store_fail;
    if (sets > 0) {
        ahl_store_rollback(tx);
        return ahl_fail(err, AHL_ECONFLICT,
                        "Data store %s still holds %llu image set%s; delete them first", id,
                        (unsigned long long)sets, sets == 1 ? "" : "s");
    }
    /* The row stays as a tombstone, DELETED since updated_at, until
     * ahl_meta_tombstones_expire removes it; its tags go now (docs/decisions.md#tombstones). */
    ahl__api_datastore_arn(svc, id, arn, sizeof arn);
    ahl_datastore_rec_set_status(&rec, AHL_DATASTORE_DELETED);
    rec.updated_at_ms = ahl_now_ms();
    if ((rc = ahl_store_datastore_put(tx, &rec, false)) < 0 ||
        (rc = ahl_store_tag_delete_all(tx, arn)) < 0 ||
        (rc = ahl_event_datastore(tx, AHL_EVENT_DATASTORE_DELETING, &rec)) < 0 ||
        (rc = ahl_event_datastore(tx, AHL_EVENT_DATASTORE_DELETED, &rec)) < 0)
        goto store_fail;
    rc = ahl_store_commit(tx);
    tx = NULL;
    if (rc < 0)
        goto store_fail;
    /* The data store is DELETED already; the response says what AWS's asynchronous call does. */
    if (ahl__api_set(resp->json, "datastoreId", json_string(id)) < 0 ||
        ahl__api_set(resp->json, "datastoreStatus",
                     json_string(ahl_datastore_status_name(AHL_DATASTORE_DELETING))) < 0)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    return 0;

store_fail:
    ahl_store_rollback(tx);
    return ahl_meta_store_fail(err, rc, "handling data store");
}
