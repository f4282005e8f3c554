/* Internals of the importer shared by its files (not a public header: src/import only).
 *
 * import.c  the importer handle (open/close), failure results, the candidate cache;
 * read.c    stage 1: one DICOM object read, normalized, its frames transcoded and written (not yet
 *           durable), under the frame memory budget;
 * commit.c  stage 2: the frames of the instances made durable (one sync), then instances of one
 *           grouping key committed into primary or non-primary image sets, serialized per key
 *           (stripe locks), with compare-and-set retries;
 * batch.c   batches: instances gathered per grouping key and committed together.
 */
#ifndef AHL_IMPORT_IMPORT_INTERNAL_H
#define AHL_IMPORT_IMPORT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"
#include "blob/framestore.h"
#include "import/group.h"
#include "import/import.h"

#define IMPORT_STRIPES 64
#define IMPORT_MAX_GROUPS 64    /* pending groups in a batch before everything is committed */
#define IMPORT_MAX_PENDING 4096 /* pending items in a batch before the largest group is */
#define IMPORT_CACHE 16         /* candidates kept per importer */
#define IMPORT_MAX_SETS 256     /* candidate image sets examined per study */
#define IMPORT_CAS_RETRIES 16   /* another writer advanced the set in between: try again */
#define IMPORT_MAX_INFLATED ((uint64_t)4 << 30) /* HealthImaging's per-file quota */

struct ahl_importer {
    struct ahl_meta *m;
    char ds[AHL_ID_LEN + 1];
    enum ahl_lossless_format format; /* the data store's losslessStorageFormat */
    struct ahl_framestore fs;
    char lock_dir[1024]; /* "" when only in-process locking applies */
    char tmp_dir[1024];
    unsigned batch_max;
    /* Candidates of recently written primary sets (their documents without Instances), so a
     * series committed in several batches is not re-read, whole, before each batch. An entry
     * is used only while the set's latest version is the one it describes. */
    pthread_mutex_t cache_mu;
    struct cand_cache {
        char id[AHL_ID_LEN + 1];
        uint64_t version;
        json_t *cand;
        uint64_t used;
    } cache[IMPORT_CACHE];
    uint64_t cache_clock;
    /* The frame memory budget (import.h): the one given in the options, or own_budget. */
    struct ahl_import_budget own_budget, *budget;
    /* Frames and bulk data are written without syncing and made durable together before the
     * commit that names them (blob/framestore.h, docs/frames.md#durability). */
    struct ahl_framestore_sync sync;
    const struct ahl_mapping_set *mappings; /* import.h, opts->mappings */
};

struct ahl_import_item {
    json_t *doc;
    char key[AHL_GROUP_KEY_LEN + 1];
    const char *study_uid, *series_uid, *sop_uid; /* borrowed from doc */
    struct ahl_import_result res;                 /* bytes, frames, SOP UID so far */
    uint64_t ticket; /* of its last frame or bulk data write: synced before it is committed */
    int64_t written_ms; /* wall clock before its first frame write (docs/decisions.md#gc-grace) */
    /* Frames in an S3 bucket: the frame fence read before the first write (meta.h,
     * ahl_meta_frame_fence). */
    bool fenced;
    uint64_t fence_epoch;
    int64_t fence_ms;
};

/* Resets a result to "nothing yet". */
void ahl__import_res_init(struct ahl_import_result *res);
/* Records a failure (rc, err's message after prefix) and returns rc. */
int ahl__import_res_fail(struct ahl_import_result *res, int rc, const struct ahl_err *err,
                         const char *prefix);

/* Takes the cached candidate of set id at version (NULL when not cached); the caller owns it. */
json_t *ahl__import_cache_take(struct ahl_importer *im, const char *id, uint64_t version);
/* Keeps cand (ownership passes) as the candidate of set id at version. */
void ahl__import_cache_put(struct ahl_importer *im, const char *id, uint64_t version, json_t *cand);

/* The one series and one instance of a normalized single-instance document (pointers into doc).
 * AHL_EINVAL when it holds anything else. */
int ahl__import_doc_parts(json_t *doc, const char **study, const char **series, json_t **inst,
                          const char **sop);

/* Commits items[0..n) of ONE grouping key with its stripe held; fills each item's result. */
void ahl__import_commit(struct ahl_importer *im, struct ahl_import_item **items, size_t n);

#endif /* AHL_IMPORT_IMPORT_INTERNAL_H */
