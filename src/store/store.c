/* The backend-independent half of the storage interface: the documented wrappers of store.h,
 * which dispatch through the backend's ops table, and small record helpers. */
#include "store/store.h"

#include <stdbool.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/banned.h"

bool ahl_store_is_postgres(const char *database)
{
    return database && (!strncmp(database, "postgresql://", 13) || !strncmp(database, "postgres://", 11));
}

int ahl_store_open(const char *database, const char *data_dir, unsigned max_conns,
                   struct ahl_store **out)
{
    if (!database || !*database)
        return ahl_store_open_sqlite(data_dir, max_conns, out);
    if (ahl_store_is_postgres(database))
        return ahl_store_open_postgres(database, max_conns ? max_conns + 1 : 0, out);
    /* Not echoed: it may hold a password. */
    ahl_error("the database is not a PostgreSQL connection URI (postgresql://...)");
    return AHL_EINVAL;
}

void ahl_store_close(struct ahl_store *s)
{
    if (s)
        s->ops->close(s);
}

int ahl_store_compact(struct ahl_store *s, bool full)
{
    return s->ops->compact(s, full);
}

int ahl_store_begin(struct ahl_store *s, bool write, struct ahl_store_tx **out)
{
    return s->ops->begin(s, write, out);
}

int ahl_store_commit(struct ahl_store_tx *tx)
{
    return tx->store->ops->commit(tx);
}

void ahl_store_rollback(struct ahl_store_tx *tx)
{
    if (tx)
        tx->store->ops->rollback(tx);
}

void ahl_store_write_intent(struct ahl_store *s, int delta)
{
    if (s->ops->write_intent)
        s->ops->write_intent(s, delta);
}

/* Every remaining wrapper only forwards its arguments; a macro keeps them from drifting apart. */
#define AHL__FWD(name, params, args)      \
    int ahl_store_##name params           \
    {                                     \
        return tx->store->ops->name args; \
    }

AHL__FWD(datastore_put,
         (struct ahl_store_tx * tx, const struct ahl_datastore_rec *rec, bool create),
         (tx, rec, create))
AHL__FWD(datastore_get, (struct ahl_store_tx * tx, const char *id, struct ahl_datastore_rec *out),
         (tx, id, out))
AHL__FWD(datastore_list,
         (struct ahl_store_tx * tx, const char *status, const char *after_id, unsigned limit,
          ahl_store_datastore_cb cb, void *ctx),
         (tx, status, after_id, limit, cb, ctx))
AHL__FWD(datastore_delete, (struct ahl_store_tx * tx, const char *id), (tx, id))
AHL__FWD(datastore_count_imagesets, (struct ahl_store_tx * tx, const char *id, uint64_t *out),
         (tx, id, out))
AHL__FWD(tag_put, (struct ahl_store_tx * tx, const char *arn, const char *key, const char *value),
         (tx, arn, key, value))
AHL__FWD(tag_delete, (struct ahl_store_tx * tx, const char *arn, const char *key), (tx, arn, key))
AHL__FWD(tag_list, (struct ahl_store_tx * tx, const char *arn, ahl_store_tag_cb cb, void *ctx),
         (tx, arn, cb, ctx))
AHL__FWD(tag_delete_all, (struct ahl_store_tx * tx, const char *arn), (tx, arn))
AHL__FWD(tag_scan, (struct ahl_store_tx * tx, ahl_store_tag_scan_cb cb, void *ctx), (tx, cb, ctx))
AHL__FWD(imageset_put, (struct ahl_store_tx * tx, const struct ahl_imageset_rec *rec, bool create),
         (tx, rec, create))
AHL__FWD(imageset_advance,
         (struct ahl_store_tx * tx, const struct ahl_imageset_rec *rec, uint64_t expected_latest),
         (tx, rec, expected_latest))
AHL__FWD(imageset_get,
         (struct ahl_store_tx * tx, const char *datastore_id, const char *id,
          struct ahl_imageset_rec *out),
         (tx, datastore_id, id, out))
AHL__FWD(imageset_list,
         (struct ahl_store_tx * tx, const char *datastore_id, const char *after_id, unsigned limit,
          ahl_store_imageset_cb cb, void *ctx),
         (tx, datastore_id, after_id, limit, cb, ctx))
AHL__FWD(imageset_by_study,
         (struct ahl_store_tx * tx, const char *datastore_id, const char *study_uid,
          bool primary_only, ahl_store_imageset_cb cb, void *ctx),
         (tx, datastore_id, study_uid, primary_only, cb, ctx))
AHL__FWD(imageset_touch, (struct ahl_store_tx * tx, const char *id, int64_t at_ms),
         (tx, id, at_ms))
AHL__FWD(version_put, (struct ahl_store_tx * tx, const struct ahl_version_rec *rec), (tx, rec))
AHL__FWD(version_update, (struct ahl_store_tx * tx, const struct ahl_version_rec *rec), (tx, rec))
AHL__FWD(version_get,
         (struct ahl_store_tx * tx, const char *imageset_id, uint64_t version,
          struct ahl_version_rec *out),
         (tx, imageset_id, version, out))
AHL__FWD(version_list,
         (struct ahl_store_tx * tx, const char *imageset_id, uint64_t below, unsigned limit,
          ahl_store_version_cb cb, void *ctx),
         (tx, imageset_id, below, limit, cb, ctx))
AHL__FWD(version_scan, (struct ahl_store_tx * tx, ahl_store_version_cb cb, void *ctx),
         (tx, cb, ctx))
AHL__FWD(chunk_put, (struct ahl_store_tx * tx, const struct ahl_chunk *c), (tx, c))
AHL__FWD(chunk_get,
         (struct ahl_store_tx * tx, const uint8_t hash[AHL_SHA256_LEN], struct ahl_chunk *meta,
          struct ahl_buf *data),
         (tx, hash, meta, data))
AHL__FWD(chunk_scan, (struct ahl_store_tx * tx, ahl_store_chunk_cb cb, void *ctx), (tx, cb, ctx))
AHL__FWD(chunk_stats, (struct ahl_store_tx * tx, uint64_t *count, uint64_t *bytes),
         (tx, count, bytes))
AHL__FWD(chunk_list, (struct ahl_store_tx * tx, ahl_store_chunk_cb cb, void *ctx), (tx, cb, ctx))
AHL__FWD(chunk_delete, (struct ahl_store_tx * tx, const uint8_t hash[AHL_SHA256_LEN]), (tx, hash))
AHL__FWD(gc_roots, (struct ahl_store_tx * tx, ahl_store_version_cb cb, void *ctx), (tx, cb, ctx))
AHL__FWD(gc_versions,
         (struct ahl_store_tx * tx, unsigned limit, uint64_t *versions, uint64_t *sets),
         (tx, limit, versions, sets))
AHL__FWD(frame_fence_get, (struct ahl_store_tx * tx, uint64_t *epoch, int64_t *until_ms),
         (tx, epoch, until_ms))
AHL__FWD(frame_fence_bump, (struct ahl_store_tx * tx, int64_t until_ms), (tx, until_ms))
AHL__FWD(search_put, (struct ahl_store_tx * tx, const struct ahl_search_row *row), (tx, row))
AHL__FWD(search_get,
         (struct ahl_store_tx * tx, const char *imageset_id, struct ahl_search_row *out),
         (tx, imageset_id, out))
AHL__FWD(search_delete, (struct ahl_store_tx * tx, const char *imageset_id), (tx, imageset_id))
AHL__FWD(search_query,
         (struct ahl_store_tx * tx, const char *datastore_id, const struct ahl_search_query *q,
          ahl_store_search_cb cb, void *ctx),
         (tx, datastore_id, q, cb, ctx))
AHL__FWD(search_plan,
         (struct ahl_store_tx * tx, const char *datastore_id, const struct ahl_search_query *q,
          ahl_store_plan_cb cb, void *ctx),
         (tx, datastore_id, q, cb, ctx))
AHL__FWD(frame_put, (struct ahl_store_tx * tx, const struct ahl_frame_rec *rec), (tx, rec))
AHL__FWD(frame_get,
         (struct ahl_store_tx * tx, const char *imageset_id, const char *frame_id,
          struct ahl_frame_rec *out),
         (tx, imageset_id, frame_id, out))
AHL__FWD(frame_copy,
         (struct ahl_store_tx * tx, const char *from_imageset_id, const char *to_imageset_id),
         (tx, from_imageset_id, to_imageset_id))
AHL__FWD(frame_delete_set, (struct ahl_store_tx * tx, const char *imageset_id), (tx, imageset_id))
AHL__FWD(frame_list,
         (struct ahl_store_tx * tx, const char *imageset_id, ahl_store_frame_cb cb, void *ctx),
         (tx, imageset_id, cb, ctx))
AHL__FWD(frame_backfill_next, (struct ahl_store_tx * tx, char imageset_id[AHL_ID_LEN + 1]),
         (tx, imageset_id))
AHL__FWD(frame_backfill_done, (struct ahl_store_tx * tx, const char *imageset_id),
         (tx, imageset_id))
AHL__FWD(qido_set_get,
         (struct ahl_store_tx * tx, const char *imageset_id, struct ahl_qido_set *out),
         (tx, imageset_id, out))
AHL__FWD(qido_set_put, (struct ahl_store_tx * tx, const struct ahl_qido_set *rec), (tx, rec))
AHL__FWD(qido_set_delete, (struct ahl_store_tx * tx, const char *imageset_id), (tx, imageset_id))
AHL__FWD(qido_series_put, (struct ahl_store_tx * tx, const struct ahl_qido_series *rec), (tx, rec))
AHL__FWD(qido_series_delete,
         (struct ahl_store_tx * tx, const char *imageset_id, const char *series_uid),
         (tx, imageset_id, series_uid))
AHL__FWD(qido_series_touch,
         (struct ahl_store_tx * tx, const char *imageset_id, int64_t updated_at_ms),
         (tx, imageset_id, updated_at_ms))
AHL__FWD(qido_instance_put, (struct ahl_store_tx * tx, const struct ahl_qido_instance *rec),
         (tx, rec))
AHL__FWD(qido_instance_delete,
         (struct ahl_store_tx * tx, const char *imageset_id, const char *series_uid,
          const char *sop_uid),
         (tx, imageset_id, series_uid, sop_uid))
AHL__FWD(qido_study_refresh,
         (struct ahl_store_tx * tx, const char *datastore_id, const char *study_uid,
          bool attrs_only),
         (tx, datastore_id, study_uid, attrs_only))
AHL__FWD(qido_query,
         (struct ahl_store_tx * tx, const char *datastore_id, const struct ahl_qido_query *q,
          ahl_store_qido_cb cb, void *ctx),
         (tx, datastore_id, q, cb, ctx))
AHL__FWD(qido_plan,
         (struct ahl_store_tx * tx, const char *datastore_id, const struct ahl_qido_query *q,
          ahl_store_plan_cb cb, void *ctx),
         (tx, datastore_id, q, cb, ctx))
AHL__FWD(qido_backfill_next, (struct ahl_store_tx * tx, char imageset_id[AHL_ID_LEN + 1]),
         (tx, imageset_id))
AHL__FWD(qido_backfill_done, (struct ahl_store_tx * tx, const char *imageset_id), (tx, imageset_id))
AHL__FWD(job_put, (struct ahl_store_tx * tx, const struct ahl_job_rec *rec, bool create),
         (tx, rec, create))
AHL__FWD(job_get,
         (struct ahl_store_tx * tx, const char *datastore_id, const char *id,
          struct ahl_job_rec *out),
         (tx, datastore_id, id, out))
AHL__FWD(job_list,
         (struct ahl_store_tx * tx, const char *datastore_id, const char *status,
          const char *after_id, unsigned limit, ahl_store_job_cb cb, void *ctx),
         (tx, datastore_id, status, after_id, limit, cb, ctx))
AHL__FWD(job_claim,
         (struct ahl_store_tx * tx, const char *node, uint32_t lease_ms, struct ahl_job_rec *out),
         (tx, node, lease_ms, out))
AHL__FWD(job_renew,
         (struct ahl_store_tx * tx, const char *id, const char *node, uint32_t lease_ms),
         (tx, id, node, lease_ms))
AHL__FWD(job_release, (struct ahl_store_tx * tx, const struct ahl_job_rec *rec, const char *node),
         (tx, rec, node))
AHL__FWD(job_options_put, (struct ahl_store_tx * tx, const char *id, const char *options),
         (tx, id, options))
AHL__FWD(job_options_get, (struct ahl_store_tx * tx, const char *id, char **out), (tx, id, out))

AHL__FWD(event_list,
         (struct ahl_store_tx * tx, uint64_t after_seq, unsigned limit, ahl_store_event_cb cb,
          void *ctx),
         (tx, after_seq, limit, cb, ctx))
AHL__FWD(event_delete, (struct ahl_store_tx * tx, uint64_t upto_seq), (tx, upto_seq))
AHL__FWD(event_trim, (struct ahl_store_tx * tx, uint64_t keep, uint64_t *dropped),
         (tx, keep, dropped))
AHL__FWD(event_lease, (struct ahl_store_tx * tx, const char *node, uint32_t lease_ms),
         (tx, node, lease_ms))

void ahl_store_outbox_enable(struct ahl_store *s, bool on)
{
    s->outbox = on;
}

bool ahl_store_outbox_on(const struct ahl_store *s)
{
    return s->outbox;
}

int ahl_store_event_put(struct ahl_store_tx *tx, const struct ahl_event_rec *rec)
{
    if (!tx->store->outbox)
        return 0;
    return tx->store->ops->event_put(tx, rec);
}

int ahl_store_tombstones_expire(struct ahl_store_tx *tx, int64_t before_ms, unsigned limit,
                                uint64_t *imagesets, uint64_t *datastores)
{
    uint64_t sets = 0, stores = 0;
    int rc = tx->store->ops->tombstones_expire(tx, before_ms, limit, &sets, &stores);
    if (imagesets)
        *imagesets = sets;
    if (datastores)
        *datastores = stores;
    return rc;
}

int ahl_store_study_dt_key(const char *date, const char *time, char out[AHL_STUDY_DT_KEY_LEN + 1])
{
    char key[AHL_STUDY_DT_KEY_LEN + 1] = "00000000000000000000";
    size_t nh = 0, nf = 0;
    bool in_frac = false;
    out[0] = '\0';
    if (!date || strlen(date) != 8)
        return AHL_EINVAL;
    for (int i = 0; i < 8; i++) {
        if (date[i] < '0' || date[i] > '9')
            return AHL_EINVAL;
        key[i] = date[i];
    }
    /* TM is HH[MM[SS[.F{1,6}]]], older files HH:MM:SS; values are padded with trailing spaces. */
    for (const char *p = time ? time : ""; *p; p++) {
        if (*p == ' ') {
            while (*p == ' ')
                p++;
            if (*p)
                return AHL_EINVAL;
            break;
        }
        if (*p == ':' && !in_frac && nh && nh % 2 == 0 && nh < 6)
            continue;
        if (*p == '.' && !in_frac && nh == 6) {
            in_frac = true;
            continue;
        }
        if (*p < '0' || *p > '9')
            return AHL_EINVAL;
        if (!in_frac && nh < 6)
            key[8 + nh++] = *p;
        else if (in_frac && nf < 6)
            key[14 + nf++] = *p;
        else
            return AHL_EINVAL;
    }
    if (nh % 2 != 0 || (in_frac && nf == 0))
        return AHL_EINVAL;
    memcpy(out, key, sizeof key);
    return 0;
}
