/* The frame index kept beside each image set's versions: for every instance a version brings in,
 * the ids under its "ImageFrames" with its "StoredTransferSyntaxUID" become rows of the store's
 * frame index (ahl_store_frame_put), so GetImageFrame can tell whether a set lists a frame, and
 * how the frame is stored, with one row lookup instead of loading the document.
 *
 * Rows are added in the transaction of the version that brings the instances in (create, import,
 * copy) and removed only when the set is deleted: frames cannot be added by UpdateImageSetMetadata
 * (ImageFrames is never updatable), and a frame an older version lists stays readable, since every
 * version of the set stays readable. Cost: one row per frame of the instances written, never a
 * walk of the whole set.
 *
 * Sets stored before the index existed are queued by the schema upgrade; ahl_meta_open indexes
 * them once, from their latest version (frames only an older version lists are not indexed).
 */
#include "meta/engine_internal.h"

#include <string.h>

#include "base/log.h"
#include "base/text.h"
#include "base/banned.h"

int ahl__frames_index_instance(struct ahl_store_tx *tx, const char *imageset_id,
                               const json_t *instance)
{
    const json_t *frames = json_object_get(instance, "ImageFrames");
    const char *ts = json_string_value(json_object_get(instance, "StoredTransferSyntaxUID"));
    struct ahl_frame_rec rec;
    int rc;
    if (!json_is_array(frames) || !json_array_size(frames))
        return 0;
    memset(&rec, 0, sizeof rec);
    if ((rc = ahl_str_copy(rec.imageset_id, sizeof rec.imageset_id, imageset_id)) < 0)
        return rc;
    /* A syntax too long to be a UID cannot name a Content-Type: stored as absent (image/jph). */
    if (ts && ahl_str_copy(rec.transfer_syntax, sizeof rec.transfer_syntax, ts) < 0)
        rec.transfer_syntax[0] = '\0';
    for (size_t i = 0; i < json_array_size(frames); i++) {
        const char *id = json_string_value(json_object_get(json_array_get(frames, i), "ID"));
        /* Only ids GetImageFrame can be asked for (32 characters [0-9a-z]) are worth a row. */
        if (!id || strlen(id) != AHL_ID_LEN ||
            strspn(id, "0123456789abcdefghijklmnopqrstuvwxyz") != AHL_ID_LEN)
            continue;
        memcpy(rec.frame_id, id, AHL_ID_LEN + 1);
        if ((rc = ahl_store_frame_put(tx, &rec)) < 0)
            return rc;
    }
    return 0;
}

int ahl__frames_index_doc(struct ahl_store_tx *tx, const char *imageset_id, const json_t *doc)
{
    const json_t *series = json_object_get(json_object_get(doc, "Study"), "Series");
    const char *skey, *ikey;
    json_t *s, *inst;
    int rc;
    json_object_foreach((json_t *)series, skey, s)
    {
        json_object_foreach(json_object_get(s, "Instances"), ikey, inst)
        {
            if ((rc = ahl__frames_index_instance(tx, imageset_id, inst)) < 0)
                return rc;
        }
    }
    return 0;
}

/* ---- indexing sets written before the index existed ---- */

struct backfill {
    struct ahl_meta *m;
    struct ahl_store_tx *tx;
    const char *imageset_id;
};

static int backfill_instance(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct backfill *c = vctx;
    json_t *inst = NULL;
    (void)key;
    (void)keylen;
    int rc = ahl__json_load(c->m, c->tx, NULL, value, &inst);
    if (rc == 0)
        rc = ahl__frames_index_instance(c->tx, c->imageset_id, inst);
    json_decref(inst);
    return rc;
}

static int backfill_series(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct backfill *c = vctx;
    (void)key;
    (void)keylen;
    /* A series map value is the series chunk's hash, then its Instances map root. */
    return ahl__map_walk(c->m, c->tx, NULL, value + AHL_SHA256_LEN, backfill_instance, c);
}

/* The frame rows of a set stored before the frame index existed. */
static int backfill_frames(struct ahl_meta *m, struct ahl_store_tx *tx,
                           const struct ahl_imageset_rec *set, const uint8_t *root_hash)
{
    struct ahl__root root;
    struct backfill c = {m, tx, set->id};
    int rc;
    if (ahl_imageset_state_parse(set->state) == AHL_IMAGESET_DELETED)
        return 0;
    if ((rc = ahl__root_load(m, tx, NULL, root_hash, &root)) < 0)
        return rc;
    return ahl__map_walk(m, tx, NULL, root.series, backfill_series, &c);
}

/* Indexes one queued set from its latest version, in its own write transaction. */
static int backfill_one(struct ahl_meta *m, const struct ahl__backfill *bf, bool *more)
{
    struct ahl_store_tx *tx = NULL;
    struct ahl_imageset_rec set;
    struct ahl_version_rec ver;
    char id[AHL_ID_LEN + 1];
    int rc = ahl_store_begin(m->store, true, &tx);
    *more = false;
    if (rc < 0)
        return rc;
    if ((rc = bf->next(tx, id)) < 0) {
        rc = rc == AHL_ENOTFOUND ? 0 : rc;
        goto out;
    }
    *more = true;
    rc = ahl_store_imageset_get(tx, NULL, id, &set);
    if (rc == 0 && set.latest_version &&
        (rc = ahl_store_version_get(tx, id, set.latest_version, &ver)) == 0)
        rc = bf->index(m, tx, &set, ver.root);
    if (rc == AHL_ENOTFOUND || rc == AHL_ECORRUPT) {
        /* Gone, or damaged (ahilite check reports which chunk): nothing more to index. The rows
         * written before the damage was met are rolled back. */
        ahl_warn("%s: image set %s: %s; it is not indexed", bf->what, id, ahl_strerror(rc));
        ahl_store_rollback(tx);
        if ((rc = ahl_store_begin(m->store, true, &tx)) < 0)
            return rc;
        rc = 0;
    }
    if (rc == 0 && (rc = bf->done(tx, id)) == 0) {
        rc = ahl_store_commit(tx);
        tx = NULL;
    }
out:
    ahl_store_rollback(tx);
    return rc;
}

int ahl__backfill(struct ahl_meta *m, const struct ahl__backfill *bf)
{
    bool more = true;
    unsigned long n = 0;
    int rc = 0;
    while (more && (rc = backfill_one(m, bf, &more)) == 0)
        n += more;
    if (n)
        ahl_info("%s: indexed %lu image sets stored before it existed", bf->what, n);
    return rc;
}

int ahl__frames_backfill(struct ahl_meta *m)
{
    static const struct ahl__backfill bf = {"frame index", ahl_store_frame_backfill_next,
                                            ahl_store_frame_backfill_done, backfill_frames};
    return ahl__backfill(m, &bf);
}
