/* Importing DICOM Part-10 objects into a data store: the pipeline behind `ahilite import` and the
 * import jobs (docs/import.md).
 *
 * One object goes through two stages:
 *   1. prepare (any thread, no lock): read the file (p10.h) -> normalize it into the
 *      single-instance HealthImaging document (normalize.h) -> check the import limits and find
 *      its grouping key (group.h) -> for each frame: gather its bytes (native slice or fragments),
 *      transcode it as the frames policy says, put it in the frame store, and record its ID,
 *      checksums, min/max and size in the instance's "ImageFrames", with the instance's
 *      "StoredTransferSyntaxUID" and "ChecksumType" (frames.h). Frames are handled one at a time
 *      and read with pread, so memory does not grow with the file. A Basic Offset Table that
 *      does not match the fragments is ignored and flagged (res.invalid_offset_table).
 *   2. commit (per grouping key, serialized): the primary image set of the same study whose series
 *      is the instance's is the candidate; ahl_group_compare decides:
 *        consistent -> the instance goes into that primary set (a new version; re-importing an
 *                      identical instance makes no version);
 *        conflict   -> a non-primary set of the series whose attributes agree with the instance
 *                      (or a new non-primary set); the result carries a warning naming the
 *                      conflicting attribute;
 *        no primary -> a new primary set.
 *
 * Invariants:
 *   - at most one primary image set per (data store, study, series) is created by importers: the
 *     engine creates a primary set only if none of the series exists, checked inside its write
 *     transaction (sole_primary in meta.h), which holds across processes and nodes sharing one
 *     database; a loser retries and joins the winner's set. Commits for one grouping key are also
 *     serialized by a process-wide striped mutex table and, when a lock directory is given, by
 *     flock(2) on a per-stripe lock file (other processes on the same data directory), so that
 *     they rarely race at all; joining an existing set goes through the engine's compare-and-set
 *     on its latest version, retried when another writer advanced it in between;
 *   - a failed object never changes an image set; its result names the AWS exception type and a
 *     reason ("not DICOM", truncation with the offset, missing UIDs, limits, undecodable pixels);
 *   - a batch of instances of one set is committed as ONE version (ahl_import_batch), so a
 *     directory or a job of one series makes a handful of versions, not one per file.
 *
 * Calling sequence:
 *
 *     struct ahl_importer *im;
 *     struct ahl_import_opts o = {.frames_root = "DATA/frames", .lock_dir = "DATA"};
 *     ahl_importer_open(meta, datastore_id, &o, &im, &err);
 *     struct ahl_import_result res;
 *     ahl_import_path(im, "a.dcm", "a.dcm", &res);          // one object, committed alone
 *     -- or, batched from several threads:
 *     struct ahl_import_batch *b;
 *     ahl_import_batch_new(im, on_done, ctx, &b);
 *     for each object (any thread):
 *         struct ahl_import_item *it;
 *         if (ahl_import_prepare_fd(im, fd, name, &it, &res) < 0) on_done(ctx, tag, &res);
 *         else ahl_import_batch_add(b, it, tag);           // may commit in this thread
 *     ahl_import_batch_flush(b);                           // commits what is pending
 *     ahl_import_batch_free(b);
 *     ahl_importer_close(im);
 *
 * An importer may be shared by threads; an ahl_import_batch too.
 */
#ifndef AHL_IMPORT_IMPORT_H
#define AHL_IMPORT_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include "base/err.h"
#include "blob/framestore.h"
#include "frames/frames.h"
#include "meta/meta.h"
#include "store/store.h"

#define AHL_IMPORT_BATCH_DEFAULT 512
/* Memory that the frames being transcoded at one time may take together, by their estimate
 * (frames.h, ahl_frame_transcode_cost): the most one frame may cost, so that any frame the
 * frames module accepts can be imported, one at a time if need be. */
#define AHL_IMPORT_MEMORY_DEFAULT ((uint64_t)2 << 30)

struct ahl_framestore;
struct ahl_mapping_set;

/* A memory budget for frames being transcoded, shared by every thread (and every importer) that
 * is given it: before a thread transcodes a frame it reserves the frame's estimated cost,
 * waiting while others hold too much of it. A server gives all its import jobs one, so that
 * neither --workers nor the number of jobs running at once multiplies the worst case. */
struct ahl_import_budget {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t limit, used;
};

/* limit 0: AHL_IMPORT_MEMORY_DEFAULT. */
void ahl_import_budget_init(struct ahl_import_budget *b, uint64_t limit);
void ahl_import_budget_release(struct ahl_import_budget *b);

struct ahl_import_opts {
    /* The frame store: an open one to share (frames->root; opening sweeps temporary files, so a
     * process opens it once and hands it to every importer), else frames_root is opened. */
    const struct ahl_framestore *frames;
    const char *frames_root; /* the frame store (DATA_DIR/frames) when frames is NULL */
    const char *lock_dir; /* where per-stripe lock files live (DATA_DIR); NULL: in-process only */
    const char *tmp_dir;  /* scratch files (inflated deflate streams); NULL: $TMPDIR or /tmp */
    unsigned batch_max;   /* instances per committed version; 0: AHL_IMPORT_BATCH_DEFAULT */
    /* The importer's memory budget for frames: before a thread transcodes a frame it reserves
     * the frame's estimated cost, waiting while other threads' frames hold too much of it; a
     * frame that costs more than the whole budget fails its instance (AHL_ETOOBIG). So any
     * number of threads sharing the importer never decode more than this at once.
     * 0: AHL_IMPORT_MEMORY_DEFAULT. Ignored when budget is given. */
    uint64_t memory_budget;
    /* A budget shared with other importers (it must outlive this one), or NULL for the
     * importer's own of memory_budget bytes. */
    struct ahl_import_budget *budget;
    /* DICOM JSON metadata mappings (mapping.h) overlaid on each instance after normalization,
     * before the import limits and grouping; it must outlive the importer. NULL: none. */
    const struct ahl_mapping_set *mappings;
};

/* What became of one object. */
struct ahl_import_result {
    int rc;                           /* 0 imported, else the negative AHL_E* of the failure */
    char imageset_id[AHL_ID_LEN + 1]; /* the set the instance is in */
    uint64_t version;                 /* the set's version holding the instance */
    bool is_primary;                  /* the set is a primary image set */
    bool created;                     /* this commit created the set */
    bool unchanged;                   /* an identical re-import: no new version was made */
    uint32_t frames;                  /* frames stored */
    uint64_t bytes;                   /* size of the object read */
    char sop_instance_uid[65];        /* when known */
    char sop_class_uid[65];           /* when known */
    char study_instance_uid[65];      /* when known */
    char series_instance_uid[65];     /* when known */
    char exception_type[40];          /* on failure: ahl_import_exception_type(customer_error) */
    bool customer_error;              /* on failure: the input is at fault (not the server) */
    char message[600];                /* on failure: the reason; else "" */
    unsigned n_warnings;              /* 0 or 1 */
    char warning_type[48];            /* "InconsistentWithPrimaryImageSet" */
    char warning[480];                /* what conflicted, for warning.ndjson */
    /* The pixel data's Basic Offset Table does not describe its frames (frames.h,
     * ahl_frames_map_fragments); the frames were found without it. HealthImaging imports such a
     * file with the warning below, in addition to any warning above. */
    bool invalid_offset_table;
};

/* warning.ndjson's entry for invalid_offset_table, as HealthImaging words it. */
#define AHL_IMPORT_WARNING_BOT_CODE 45330
#define AHL_IMPORT_WARNING_BOT_TYPE "InvalidOffsetTable"
#define AHL_IMPORT_WARNING_BOT_MESSAGE                                                            \
    "The file was imported but contains an invalid offset table, may see issues when retrieving " \
    "certain frames."

struct ahl_importer;
struct ahl_import_item;

/* The collector removes unlisted frames written more than a grace ago (docs/decisions.md#gc-grace).
 * A group whose items wrote their frames more than refresh_ms ago (half the grace) makes their
 * times now before committing, and fails when one is gone. Default AHL_IMPORT_FRAME_REFRESH_MS;
 * the server sets half its --gc-grace. Process-wide; any time. */
#define AHL_IMPORT_FRAME_REFRESH_MS (12LL * 3600 * 1000)
void ahl_import_set_frame_refresh_ms(int64_t ms);

/* Opens an importer writing into data store datastore_id through the engine m (which must outlive
 * it). The data store must exist and be ACTIVE (AHL_ENOTFOUND / AHL_ECONFLICT otherwise). */
int ahl_importer_open(struct ahl_meta *m, const char *datastore_id,
                      const struct ahl_import_opts *opts, struct ahl_importer **out,
                      struct ahl_err *err);
/* NULL is accepted. */
void ahl_importer_close(struct ahl_importer *im);

/* Stage 1 on an open descriptor (read from offset 0; not closed) or a path. name identifies the
 * object for the caller (results carry the SOP instance UID, not the name). On success *out is the
 * prepared instance (committed with the batch calls, or freed with ahl_import_item_free) and res
 * holds bytes/frames/SOP UID; on failure *out is NULL and res says why (res->rc, exception_type,
 * message). */
int ahl_import_prepare_fd(struct ahl_importer *im, int fd, const char *name,
                          struct ahl_import_item **out, struct ahl_import_result *res);
int ahl_import_prepare_path(struct ahl_importer *im, const char *path, const char *name,
                            struct ahl_import_item **out, struct ahl_import_result *res);
/* As ahl_import_prepare_fd, for an object that must belong to study (STOW-RS to one study, POST
 * /studies/{study}): an instance of another study fails with AHL_ECONFLICT (the input's fault)
 * before any of its frames is stored. study NULL: any. */
int ahl_import_prepare_fd_of_study(struct ahl_importer *im, int fd, const char *name,
                                   const char *study, struct ahl_import_item **out,
                                   struct ahl_import_result *res);
void ahl_import_item_free(struct ahl_import_item *it);

/* Both stages for one object, committed on its own. Returns res->rc. */
int ahl_import_fd(struct ahl_importer *im, int fd, const char *name, struct ahl_import_result *res);
int ahl_import_path(struct ahl_importer *im, const char *path, const char *name,
                    struct ahl_import_result *res);

/* ---- batching: several prepared instances committed per version --------------------------- */

/* Receives the result of each item added to a batch, once it is committed (tag as given to
 * ahl_import_batch_add). Called from whichever thread commits; must be thread-safe. */
typedef void (*ahl_import_done_fn)(void *ctx, void *tag, const struct ahl_import_result *res);

struct ahl_import_batch;

int ahl_import_batch_new(struct ahl_importer *im, ahl_import_done_fn done, void *ctx,
                         struct ahl_import_batch **out);
/* Takes ownership of it. Items are grouped by grouping key; a group that reaches batch_max, or a
 * batch holding too many groups, is committed right away in the calling thread. Within a group,
 * items are committed in ascending tag order (compared as uintptr_t): pass input indexes as tags
 * so that, of several objects with the same SOP instance, the last one in input order wins. */
void ahl_import_batch_add(struct ahl_import_batch *b, struct ahl_import_item *it, void *tag);
/* Commits every pending item (call after the last add). */
void ahl_import_batch_flush(struct ahl_import_batch *b);
/* Flushes, then frees. NULL is accepted. */
void ahl_import_batch_free(struct ahl_import_batch *b);

/* Transcodes one frame as import stores it in a data store whose lossless frames are stored in
 * fmt (ahl_frame_transcode_as) and names it by its content address (ahl_frame_id); on failure
 * err's message is prefixed "frame <frame>: ". */
int ahl_import_transcode_frame(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                               enum ahl_lossless_format fmt, uint32_t frame,
                               struct ahl_stored_frame *sf, struct ahl_err *err);

/* The exceptionType HealthImaging's job output format (failure.ndjson) gives a failure: it names
 * two, ValidationException for the input's fault and InternalServerException for the server's. */
const char *ahl_import_exception_type(bool customer_error);
/* Records in res whose fault its failure is, and the exceptionType that follows. */
void ahl_import_result_blame(struct ahl_import_result *res, bool customer_error);

#endif /* AHL_IMPORT_IMPORT_H */
