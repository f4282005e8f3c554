/* Helpers the operation files share: ARNs, opaque paging tokens, optional-member setters, store
 * error mapping, and the table from operation id to handler. */
#include "api/ops_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "base/text.h"
#include "base/banned.h"

#define AHL__API_OP_ENTRY(name) [AHL_OP_##name] = ahl__op_##name,
const ahl_api_op_fn ahl__api_handlers[AHL_OP__COUNT] = {AHL__API_OPS(AHL__API_OP_ENTRY)};
#undef AHL__API_OP_ENTRY

int ahl__api_datastore_arn(const struct ahl_api_service *svc, const char *datastore_id, char *out,
                           size_t cap)
{
    int n = snprintf(out, cap, "arn:aws:medical-imaging:%s:%s:datastore/%s", svc->region,
                     svc->account_id, datastore_id);
    return n < 0 || (size_t)n >= cap ? AHL_ETOOBIG : 0;
}

int ahl__api_imageset_arn(const struct ahl_api_service *svc, const char *datastore_id,
                          const char *imageset_id, char *out, size_t cap)
{
    int n = snprintf(out, cap, "arn:aws:medical-imaging:%s:%s:datastore/%s/imageset/%s",
                     svc->region, svc->account_id, datastore_id, imageset_id);
    return n < 0 || (size_t)n >= cap ? AHL_ETOOBIG : 0;
}

int ahl__api_token_encode(const char *kind, const char *position, json_t *obj)
{
    struct ahl_buf plain, b64;
    int rc;
    ahl_buf_init(&plain, 4096);
    ahl_buf_init(&b64, 8192);
    rc = ahl_buf_addf(&plain, "%s:%s", kind, position);
    if (rc == 0)
        rc = ahl_base64_encode((const uint8_t *)plain.data, plain.len, &b64);
    if (rc == 0)
        rc = ahl__api_set(obj, "nextToken", json_stringn(b64.data, b64.len));
    ahl_buf_release(&plain);
    ahl_buf_release(&b64);
    return rc;
}

int ahl__api_token_decode(const char *kind, const char *token, char *position, size_t cap,
                          struct ahl_err *err)
{
    struct ahl_buf plain;
    int rc = 0;
    size_t klen = strlen(kind);
    ahl_buf_init(&plain, 4096);
    if (ahl_base64_decode(token, strlen(token), &plain) < 0 || plain.len <= klen ||
        memcmp(plain.data, kind, klen) != 0 || plain.data[klen] != ':' ||
        strlen(plain.data) != plain.len || plain.len - klen - 1 >= cap) {
        rc = ahl_fail(err, AHL_EINVAL, "Invalid nextToken: it was not returned by this operation");
        goto out;
    }
    memcpy(position, plain.data + klen + 1, plain.len - klen - 1);
    position[plain.len - klen - 1] = '\0';
out:
    ahl_buf_release(&plain);
    return rc;
}

int ahl__api_page_item(struct ahl__api_page *p, json_t **item)
{
    if (p->seen == p->limit) {
        p->more = 1;
        return 1;
    }
    p->seen++;
    json_t *o = json_object();
    if (!o || json_array_append_new(p->items, o) < 0)
        return AHL_ENOMEM;
    *item = o;
    return 0;
}

int ahl__api_set(json_t *obj, const char *key, json_t *v)
{
    if (!v)
        return AHL_ENOMEM;
    return json_object_set_new(obj, key, v) < 0 ? AHL_ENOMEM : 0;
}

int ahl__api_set_str_opt(json_t *obj, const char *key, const char *s)
{
    if (!s || !*s)
        return 0;
    return ahl__api_set(obj, key, json_string(s));
}

int ahl__api_set_ts_opt(json_t *obj, const char *key, int64_t ms)
{
    if (ms == 0)
        return 0;
    return ahl__api_set(obj, key, ahl_api_timestamp(ms));
}

int ahl__api_copy_member(char *dst, size_t cap, const char *value, const char *member,
                         struct ahl_err *err)
{
    if (ahl_str_copy(dst, cap, value) < 0)
        return ahl_fail(err, AHL_EINVAL, "%s: longer than the %zu bytes this server keeps", member,
                        cap - 1);
    return 0;
}

int ahl__api_set_in_flight(json_t *o, enum ahl_workflow_status workflow)
{
    int rc =
        ahl__api_set(o, "imageSetState", json_string(ahl_imageset_state_name(AHL_IMAGESET_LOCKED)));
    rc |=
        ahl__api_set(o, "imageSetWorkflowStatus", json_string(ahl_workflow_status_name(workflow)));
    return rc ? AHL_ENOMEM : 0;
}

int ahl__api_id_from_token(const char *const *parts, size_t n, char id[AHL_ID_LEN + 1])
{
    struct ahl_sha256_ctx c;
    uint8_t digest[AHL_SHA256_LEN];
    char hex[AHL_SHA256_HEX_LEN + 1];
    if (ahl_sha256_begin(&c) < 0) {
        ahl_sha256_end(&c, digest);
        return AHL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (i)
            ahl_sha256_add(&c, "", 1);
        ahl_sha256_add(&c, parts[i], strlen(parts[i]));
    }
    ahl_sha256_end(&c, digest);
    ahl_hex_encode(digest, AHL_ID_LEN / 2, hex);
    memcpy(id, hex, AHL_ID_LEN);
    id[AHL_ID_LEN] = '\0';
    return 0;
}

int ahl__api_datastore_get(struct ahl_store_tx *tx, const char *datastore_id,
                           struct ahl_datastore_rec *rec, struct ahl_err *err)
{
    struct ahl_datastore_rec tmp;
    int rc = ahl_store_datastore_get(tx, datastore_id, rec ? rec : &tmp);
    if (rc == AHL_ENOTFOUND)
        return ahl_fail(err, rc, "Data store %s does not exist", datastore_id);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "handling data store");
    return 0;
}

int ahl__api_require_datastore(struct ahl_api_service *svc, const char *datastore_id,
                               struct ahl_datastore_rec *rec, struct ahl_err *err)
{
    struct ahl_store_tx *tx = NULL;
    int rc = ahl_store_begin(svc->store, false, &tx);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "handling data store");
    rc = ahl__api_datastore_get(tx, datastore_id, rec, err);
    ahl_store_rollback(tx);
    return rc;
}

int ahl__api_parse_version(const char *s, const char *member, uint64_t *out, struct ahl_err *err)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v == 0)
        return ahl_fail(err, AHL_EINVAL, "Value '%.40s' at '%s' is not a version id (1, 2, ...)", s,
                        member);
    *out = v;
    return 0;
}
