/* GetImageFrame's lookup of a frame id in an image-set version, with a small cache.
 *
 * AWS serves a frame only if the set's latest version lists its id under some instance's
 * ImageFrames. Finding that out means reading the version's whole document: for a 10,000-instance
 * set, tens of megabytes of JSON per frame request. Versions never change once written, so the
 * frame ids of a version (each with the Content-Type of its instance's stored transfer syntax) are
 * read once into a sorted array and kept: later requests for that version cost one binary search.
 * A request names the set's latest version, so an update simply makes the next request miss and
 * index the new version; an entry for an older version of the same set is dropped then.
 *
 * Bounds: at most AHL__FRAME_INDEX_SLOTS versions and max_frames ids in all (least recently used
 * versions go first); a version with more ids than max_frames is searched once and not kept.
 * One mutex guards the slots; documents are read and sorted outside it.
 */
#include "api/internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/banned.h"

#define AHL__FRAME_INDEX_SLOTS 16

struct frame_ref {
    char id[AHL_ID_LEN + 1];
    const char *content_type; /* static, from ahl_frame_content_type */
};

struct slot {
    char datastore_id[AHL_ID_LEN + 1];
    char imageset_id[AHL_ID_LEN + 1];
    uint64_t version; /* 0: empty slot */
    struct frame_ref *frames;
    size_t n;
    uint64_t used;
};

struct ahl__frame_index {
    pthread_mutex_t lock;
    size_t max_frames, total;
    uint64_t tick;
    struct slot slots[AHL__FRAME_INDEX_SLOTS];
};

int ahl__frame_index_new(size_t max_frames, struct ahl__frame_index **out)
{
    struct ahl__frame_index *ix = calloc(1, sizeof *ix);
    *out = NULL;
    if (!ix)
        return AHL_ENOMEM;
    pthread_mutex_init(&ix->lock, NULL);
    ix->max_frames = max_frames;
    *out = ix;
    return 0;
}

static void slot_clear(struct ahl__frame_index *ix, struct slot *s)
{
    ix->total -= s->n;
    free(s->frames);
    memset(s, 0, sizeof *s);
}

void ahl__frame_index_free(struct ahl__frame_index *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < AHL__FRAME_INDEX_SLOTS; i++)
        slot_clear(ix, &ix->slots[i]);
    pthread_mutex_destroy(&ix->lock);
    free(ix);
}

static int ref_cmp(const void *a, const void *b)
{
    return strcmp(((const struct frame_ref *)a)->id, ((const struct frame_ref *)b)->id);
}

static const char *search(const struct frame_ref *frames, size_t n, const char *frame_id)
{
    struct frame_ref key;
    if (n == 0 || strlen(frame_id) > AHL_ID_LEN)
        return NULL;
    memcpy(key.id, frame_id, strlen(frame_id) + 1);
    const struct frame_ref *hit = bsearch(&key, frames, n, sizeof *frames, ref_cmp);
    return hit ? hit->content_type : NULL;
}

/* Reads a version's document and collects Study.Series.*.Instances.*.ImageFrames[].ID, sorted.
 * Ids that no request could name (not strings of at most AHL_ID_LEN characters) are left out. */
static int collect(struct ahl_meta *meta, const char *ds, const char *set, uint64_t version,
                   struct frame_ref **out, size_t *count, struct ahl_err *err)
{
    json_t *doc = NULL;
    struct frame_ref *frames = NULL;
    size_t n = 0, cap = 0;
    const char *skey, *ikey;
    const json_t *s, *inst;
    int rc = ahl_meta_document(meta, ds, set, version, &doc, err);
    if (rc < 0)
        return rc;
    const json_t *series = json_object_get(json_object_get(doc, "Study"), "Series");
    json_object_foreach((json_t *)series, skey, s)
    {
        json_object_foreach(json_object_get(s, "Instances"), ikey, inst)
        {
            const json_t *list = json_object_get(inst, "ImageFrames");
            const char *type = NULL;
            for (size_t i = 0; i < json_array_size(list); i++) {
                const json_t *id = json_object_get(json_array_get(list, i), "ID");
                if (!json_is_string(id) || json_string_length(id) > AHL_ID_LEN)
                    continue;
                if (!type)
                    type = ahl_frame_content_type(
                        json_string_value(json_object_get(inst, "StoredTransferSyntaxUID")));
                if (n == cap) {
                    size_t ncap = cap ? cap * 2 : 64;
                    struct frame_ref *p = realloc(frames, ncap * sizeof *p);
                    if (!p) {
                        rc = ahl_fail(err, AHL_ENOMEM, AHL_AWS_INTERNAL, "out of memory");
                        goto out;
                    }
                    frames = p;
                    cap = ncap;
                }
                memcpy(frames[n].id, json_string_value(id), json_string_length(id) + 1);
                frames[n].content_type = type;
                n++;
            }
        }
    }
    if (n)
        qsort(frames, n, sizeof *frames, ref_cmp);
    *out = frames;
    *count = n;
    frames = NULL;
out:
    free(frames);
    json_decref(doc);
    return rc;
}

/* The slot holding this version, or NULL. Called with the lock held. */
static struct slot *find_slot(struct ahl__frame_index *ix, const char *ds, const char *set,
                              uint64_t version)
{
    for (size_t i = 0; i < AHL__FRAME_INDEX_SLOTS; i++) {
        struct slot *s = &ix->slots[i];
        if (s->version == version && !strcmp(s->imageset_id, set) && !strcmp(s->datastore_id, ds))
            return s;
    }
    return NULL;
}

/* Keeps frames (ownership passes) as this version's entry, making room first. Called with the
 * lock held; returns the slot. */
static struct slot *insert(struct ahl__frame_index *ix, const char *ds, const char *set,
                           uint64_t version, struct frame_ref *frames, size_t n)
{
    /* Other versions of the same set are superseded: requests name the latest. */
    for (size_t i = 0; i < AHL__FRAME_INDEX_SLOTS; i++) {
        struct slot *s = &ix->slots[i];
        if (s->version && !strcmp(s->imageset_id, set) && !strcmp(s->datastore_id, ds))
            slot_clear(ix, s);
    }
    for (;;) {
        struct slot *empty = NULL, *lru = NULL;
        for (size_t i = 0; i < AHL__FRAME_INDEX_SLOTS; i++) {
            struct slot *s = &ix->slots[i];
            if (!s->version)
                empty = empty ? empty : s;
            else if (!lru || s->used < lru->used)
                lru = s;
        }
        if (empty && ix->total + n <= ix->max_frames) {
            memcpy(empty->datastore_id, ds, strlen(ds) + 1);
            memcpy(empty->imageset_id, set, strlen(set) + 1);
            empty->version = version;
            empty->frames = frames;
            empty->n = n;
            empty->used = ++ix->tick;
            ix->total += n;
            return empty;
        }
        slot_clear(ix, lru); /* n <= max_frames, so this ends */
    }
}

int ahl__frame_index_find(struct ahl__frame_index *ix, struct ahl_meta *meta, const char *ds,
                          const char *set, uint64_t version, const char *frame_id,
                          const char **content_type, struct ahl_err *err)
{
    struct frame_ref *frames = NULL;
    size_t n = 0;
    int rc;
    *content_type = NULL;
    if (strlen(ds) > AHL_ID_LEN || strlen(set) > AHL_ID_LEN || version == 0)
        return ahl_fail(err, AHL_EINVAL, AHL_AWS_VALIDATION, "bad image set or version");
    if (ix) {
        pthread_mutex_lock(&ix->lock);
        struct slot *s = find_slot(ix, ds, set, version);
        if (s) {
            s->used = ++ix->tick;
            *content_type = search(s->frames, s->n, frame_id);
        }
        pthread_mutex_unlock(&ix->lock);
        if (s)
            return 0;
    }
    if ((rc = collect(meta, ds, set, version, &frames, &n, err)) < 0)
        return rc;
    *content_type = search(frames, n, frame_id);
    if (!ix || n > ix->max_frames) {
        free(frames);
        return 0;
    }
    pthread_mutex_lock(&ix->lock);
    if (find_slot(ix, ds, set, version))
        free(frames); /* another request indexed this version meanwhile */
    else
        insert(ix, ds, set, version, frames, n);
    pthread_mutex_unlock(&ix->lock);
    return 0;
}

size_t ahl__frame_index_cached(struct ahl__frame_index *ix)
{
    size_t n = 0;
    pthread_mutex_lock(&ix->lock);
    for (size_t i = 0; i < AHL__FRAME_INDEX_SLOTS; i++)
        n += ix->slots[i].version != 0;
    pthread_mutex_unlock(&ix->lock);
    return n;
}
