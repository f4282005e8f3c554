/* The versioned image-set metadata engine: create, read, update, revert, copy and delete image
 * sets whose every version stays readable and whose updates cost what they change.
 *
 * Model (docs/metadata.md#storage-cost). An image set's document is
 *   {"SchemaVersion":"1.1","DatastoreID":..,"ImageSetID":..,"Patient":{..},
 *    "Study":{..own keys..,"Series":{uid:{..own keys..,"Instances":{uid:{..}}}}}}
 * Each node's own attributes (the Patient object; the Study object without "Series"; each Series
 * object without "Instances"; each Instance object) are serialised once with ahl_json_write and
 * stored as a chunk named by the SHA-256 of that text, together with a raw-deflate segment of it.
 * The Series map and each Instances map are persistent B+trees of map chunks keyed by UID (byte
 * order), fan-out ~32, so changing one instance writes its chunk and one path of map nodes. A
 * version is a root chunk naming Patient, Study and the Series map. Versions share every chunk
 * that did not change; nothing is ever overwritten, so every version stays readable.
 *
 * Invariants:
 *   - the document of a version is exactly what ahl_json_write produces for the assembled jansson
 *     document: top-level keys in the order above, each node's own keys in stored order with
 *     "Series"/"Instances" last, Series and Instances keys in ascending byte order of the UID;
 *   - the Series / Instances key of a node equals its SeriesInstanceUID / SOPInstanceUID when the
 *     node has one (a forced UID change re-keys the node);
 *   - a new version is written in one store transaction whose last step is a compare-and-set of the
 *     image set's latest version; a failed update changes nothing.
 *
 * Calling sequence:
 *     struct ahl_store *store;  ahl_store_open_sqlite(dir, 0, &store);
 *     struct ahl_meta *m;       ahl_meta_open(store, NULL, &m);
 *     ahl_meta_imageset_create(m, dsid, doc, &copts, &info, &err);
 *     ahl_meta_update(m, dsid, info.set.id, &upd, &res, &err);
 *     ahl_meta_metadata_gzip(m, dsid, id, 0, write_cb, ctx, &err);   // 0 = latest version
 *     ahl_meta_close(m);  ahl_store_close(store);
 * An ahl_meta is safe to use from several threads at once (the store serialises writers; the
 * chunk cache has its own lock).
 *
 * Errors: 0 or a negative AHL_E* with err (optional) carrying the code and a message:
 * AHL_ENOTFOUND (no such set or version), AHL_EINVAL (the request breaks a rule), AHL_ECONFLICT
 * (stale latestVersionId, data store not ACTIVE), AHL_EQUOTA (update blob over the limit),
 * AHL_ECORRUPT / AHL_EIO (the server's own failures). The API names them (api/codec.h).
 *
 * Every operation completes in one store transaction, so the stored state of a set is only ever
 * ACTIVE or DELETED: no set is left LOCKED by an operation in flight. Where AWS's asynchronous
 * calls answer with an in-flight state (LOCKED / UPDATING...), the API reports it (states.h
 * holds the names).
 */
#ifndef AHL_META_META_H
#define AHL_META_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"
#include "meta/states.h"
#include "store/store.h"

struct ahl_meta;

struct ahl_meta_opts {
    size_t cache_bytes;      /* chunk cache budget; 0: 256 MiB */
    size_t max_update_bytes; /* per update blob; 0: 10,000 (AWS's default quota) */
    bool aws_primary_rules;  /* today's AWS restrictions on primary sets (see rules.h) */
    int deflate_level;       /* for chunk and group segments; 0: 6 */
    /* GetImageSetMetadata's group segments kept in memory (docs/architecture.md#metadata-gzip);
     * 0: 128 MiB; AHL_META_NO_GZIP_CACHE: none, the document is spliced from the chunks' own
     * segments (no compression per read, about ten times larger) */
    size_t gzip_cache_bytes;
    /* Storage tiers (access.h): a thread writes the reads recorded by ahl_meta_touch every
     * access_flush_ms (0: no thread; ahl_meta_access_flush and ahl_meta_close still write them);
     * sets held in memory (0: AHL_META_ACCESS_TABLE_DEFAULT); days without an access before a
     * set is in ARCHIVE_INSTANT_ACCESS (0: 30). */
    unsigned access_flush_ms;
    unsigned access_table_max;
    unsigned archive_days;
};

#define AHL_META_NO_GZIP_CACHE ((size_t)-1)

/* The state of an image set at one version, as GetImageSet reports it. */
struct ahl_meta_info {
    struct ahl_imageset_rec set; /* the image-set row (latest version, state, primary) */
    struct ahl_version_rec ver;  /* the version asked for */
};

/* Records the failure of a call below the caller's own checks (the store, chunk encoding,
 * memory) made while `what` ("reading the image set"), and returns the code to pass on:
 * AHL_ENOTFOUND, AHL_ECONFLICT, AHL_ENOMEM, AHL_ENOSPC, AHL_ECORRUPT, AHL_EIO, AHL_ETOOBIG,
 * AHL_EQUOTA and AHL_EINTERNAL as they are; any other code (AHL_EINVAL, AHL_EPARSE...), which would
 * blame the request for what a call of ours rejected, becomes AHL_EINTERNAL. Used by the engine
 * and by the API for every store failure. */
int ahl_meta_store_fail(struct ahl_err *err, int rc, const char *what);

/* Opens the engine over an open store (which must outlive it). opts may be NULL. */
int ahl_meta_open(struct ahl_store *store, const struct ahl_meta_opts *opts, struct ahl_meta **out);
/* NULL is accepted. */
void ahl_meta_close(struct ahl_meta *m);
/* The store the engine was opened with (data stores, tags and jobs are used through it). */
struct ahl_store *ahl_meta_store(struct ahl_meta *m);

/* ---- creating and importing ---------------------------------------------------------------- */

/* The frame fence (docs/architecture.md#garbage-collection): what an importer writing frames to
 * an S3 bucket read before its first frame (ahl_meta_frame_fence_read), and how it checks its
 * frames. Inside the write transaction that commits the version, when a collector may have
 * deleted objects since (the epoch moved, or a collector's deletion window reaches back to
 * read_ms), check is called: 0 lets the commit go on, anything negative fails it (nothing is
 * committed) with that code and err. */
struct ahl_meta_frame_fence {
    uint64_t epoch;
    int64_t read_ms; /* the wall clock when the epoch was read */
    int (*check)(void *ctx, struct ahl_err *err);
    void *ctx;
};

/* How far apart the clocks of nodes sharing a store may be, for the frame fence. */
#define AHL_META_FENCE_SKEW_MS 30000

/* The frame fence's epoch now, in one read transaction; *read_ms the wall clock before it. */
int ahl_meta_frame_fence_read(struct ahl_meta *m, uint64_t *epoch, int64_t *read_ms,
                              struct ahl_err *err);
/* A collector about to delete frames from an S3 bucket until until_ms (wall clock): moves the
 * epoch and records until_ms, committed before the first deletion. */
int ahl_meta_frame_fence_bump(struct ahl_meta *m, int64_t until_ms, struct ahl_err *err);

struct ahl_meta_create_opts {
    bool is_primary;
    enum ahl_workflow_status workflow_status; /* 0: CREATED. The importer passes IMPORTED */
    const char *imageset_id;                  /* NULL: a fresh random id */
    /* With is_primary: AHL_ECONFLICT, creating nothing, when the data store already holds a
     * primary image set of the document's study and (only) series. Checked inside the write
     * transaction, which is exclusive on every backend, so two processes (two nodes) creating the
     * primary set of one series at once make one set and one conflict, never two primaries. */
    bool sole_primary;
    /* NULL, or the frame fence of the frames doc lists (above). */
    const struct ahl_meta_frame_fence *fence;
};

/* Creates an image set, version 1, from a normalized document
 *   {"Patient":{"DICOM":..},"Study":{"DICOM":..,"Series":{uid:{"DICOM":..,"Instances":{uid:{..}}}}}}
 * (SchemaVersion, DatastoreID and ImageSetID, if present, are ignored and regenerated). The data
 * store must exist and be ACTIVE. */
int ahl_meta_imageset_create(struct ahl_meta *m, const char *datastore_id, const json_t *doc,
                             const struct ahl_meta_create_opts *opts, struct ahl_meta_info *out,
                             struct ahl_err *err);

/* Adds or replaces instances of an existing set from a normalized document of the same shape,
 * making a new version (import into an existing primary set). Patient, Study and Series DICOM
 * attributes in doc are merged into the stored ones; each given instance replaces the stored one
 * with the same SOPInstanceUID. Re-importing identical content still makes a version, as AWS does,
 * unless expected_latest is given and the content is unchanged (then no version; out reports the
 * current one). expected_latest: 0 = whatever is latest, else compare-and-set. AHL_ECONFLICT
 * also when the set is DELETED (the caller chose it before the delete). */
int ahl_meta_imageset_put_instances(struct ahl_meta *m, const char *datastore_id,
                                    const char *imageset_id, const json_t *doc,
                                    uint64_t expected_latest, struct ahl_meta_info *out,
                                    struct ahl_err *err);
/* The same with the frame fence of the frames doc lists (NULL: none). */
int ahl_meta_imageset_put_fenced(struct ahl_meta *m, const char *datastore_id,
                                 const char *imageset_id, const json_t *doc,
                                 uint64_t expected_latest,
                                 const struct ahl_meta_frame_fence *fence,
                                 struct ahl_meta_info *out, struct ahl_err *err);

/* ---- reading -------------------------------------------------------------------------------- */

/* The image set and one of its versions (0: the latest). AHL_ENOTFOUND for a version that does
 * not exist. A DELETED set that has not expired (a tombstone, docs/decisions.md#tombstones)
 * answers for its last version (or 0) only, with ver DELETED / DELETED, updated at its deletion,
 * and a zero root: nothing of it is readable. */
int ahl_meta_imageset_get(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                          uint64_t version, struct ahl_meta_info *out, struct ahl_err *err);

/* Versions newest first, below `below` (0: from the newest), at most limit (1..50). A tombstone
 * lists one: its last version as ahl_meta_imageset_get shows it. */
int ahl_meta_versions_list(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                           uint64_t below, unsigned limit, ahl_store_version_cb cb, void *ctx,
                           struct ahl_err *err);

/* Receives the response body piece by piece; non-zero stops the stream (returned as is). */
typedef int (*ahl_meta_write_cb)(void *ctx, const void *p, size_t n);

/* GetImageSetMetadata: the document of a version (0: latest) as one gzip member, spliced from
 * deflate segments (each Instances-map leaf's instances compressed together once, on first read,
 * and cached; the Patient, Study and Series chunks' stored segments) plus freshly written stored
 * blocks for the glue between them; the trailer's CRC is combined with crc32_combine (gzdoc.c,
 * docs/architecture.md#metadata-gzip). Inflated, it equals
 * ahl_meta_metadata_json() byte for byte. cb runs inside a read transaction (a consistent
 * snapshot) and holds one of the store's reader connections until it returns, so it must not wait
 * on anything slow (a client): the server spools the document and sends it afterwards. */
int ahl_meta_metadata_gzip(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                           uint64_t version, ahl_meta_write_cb cb, void *ctx, struct ahl_err *err);
/* The same, also giving the image set's row as read in the same snapshot (row may be NULL): the
 * server records the read as an access against its stored last access (access.h). */
int ahl_meta_metadata_gzip_row(struct ahl_meta *m, const char *datastore_id,
                               const char *imageset_id, uint64_t version, ahl_meta_write_cb cb,
                               void *ctx, struct ahl_imageset_rec *row, struct ahl_err *err);

/* The document of a version as a jansson object (caller json_decref's it). */
int ahl_meta_document(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                      uint64_t version, json_t **out, struct ahl_err *err);
/* Part of that document, shaped like the whole: only the series series_uid (an empty Series
 * object when the version has no such series), and of it only the instance sop_uid when that is
 * not NULL (an empty Instances object when the series has none). series_uid NULL: the whole
 * document. Costs what the part holds, not the size of the set (DICOMweb reads one series or one
 * instance this way). */
int ahl_meta_document_part(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                           uint64_t version, const char *series_uid, const char *sop_uid,
                           json_t **out, struct ahl_err *err);

/* The changes from version `from` to version `to` of a set, as a new JSON object
 * (docs/metadata.md#version-diff): FromVersion, ToVersion, and when they differ Patient and
 * Study (attribute diffs) and Series (Added, Removed, Rekeyed, Changed by SeriesInstanceUID, each
 * an attribute diff with Instances: the same by SOPInstanceUID). Costs what differs: only
 * chunks whose hashes differ are read. AHL_ENOTFOUND for an unknown set or version. */
int ahl_meta_diff(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                  uint64_t from, uint64_t to, json_t **out, struct ahl_err *err);
/* The attribute diff of two node objects (NULL: empty): {Added: {path: value}, Removed:
 * {path: value}, Changed: {path: {Old, New}}}, members only when not empty. Objects with
 * members are descended into, paths joined with '.' (DICOM.PatientName). */
int ahl_meta_attr_diff(const json_t *a, const json_t *b, json_t **out);

/* The reference serialisation: ahl_json_write of ahl_meta_document(). Appends to out. */
int ahl_meta_metadata_json(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                           uint64_t version, struct ahl_buf *out, struct ahl_err *err);

/* ---- UpdateImageSetMetadata ----------------------------------------------------------------- */

struct ahl_meta_update {
    uint64_t latest_version; /* the request's latestVersion: compare-and-set */
    bool force;
    bool include_study_image_sets;
    /* DICOMUpdates: the decoded blobs (NULL when absent). Each must be a JSON object of at most
     * max_update_bytes bytes. */
    const char *updatable;
    size_t updatable_len;
    const char *removable;
    size_t removable_len;
    uint64_t revert_to_version; /* revertToVersionId; 0 when absent. Exclusive with the blobs. */
};

struct ahl_meta_update_result {
    uint64_t latest_version;     /* the new version */
    int64_t created_at_ms;       /* the image set's */
    int64_t updated_at_ms;       /* the new version's */
    unsigned study_sets_updated; /* with include_study_image_sets: other sets given a version */
};

/* Applies an update (or a revert) as one new version. Every attribute is checked with
 * ahl_rules_check_set / ahl_rules_check_remove before anything is written. On success the set
 * is ACTIVE / UPDATED at the new version (the work is done synchronously in one transaction). */
int ahl_meta_update(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                    const struct ahl_meta_update *u, struct ahl_meta_update_result *res,
                    struct ahl_err *err);

/* ---- CopyImageSet --------------------------------------------------------------------------- */

struct ahl_meta_copy {
    uint64_t source_latest_version;
    const char *destination_id; /* NULL: copy into a new image set */
    uint64_t destination_latest_version;
    /* NULL: everything; else the copiableAttributes JSON string (docs/metadata.md#copying) */
    const char *copiable_attributes;
    size_t copiable_len;
    bool force;
    bool promote_to_primary;
};

struct ahl_meta_copy_result {
    struct ahl_imageset_rec source; /* the source's row (ACTIVE) */
    struct ahl_imageset_rec
        destination; /* the destination's row: ACTIVE / COPIED, the new version */
};

/* Copies the source set's latest version (or the subset named by copiable_attributes) into a new
 * set, or merges it into an existing destination as a new version. Instances whose SOPInstanceUID
 * already exists in the destination are replaced. Without force, the source's Patient, Study and
 * Series attributes must agree with the destination's (AHL_EINVAL otherwise); with force
 * the destination's keep theirs and the version records overrides.forced. promote_to_primary
 * makes the new destination primary. Completed synchronously: afterwards both are ACTIVE, the
 * destination COPIED. */
int ahl_meta_copy(struct ahl_meta *m, const char *datastore_id, const char *source_id,
                  const struct ahl_meta_copy *c, struct ahl_meta_copy_result *res,
                  struct ahl_err *err);

/* DeleteImageSet: makes the set a tombstone, DELETED / DELETED with deleted_at_ms (its search,
 * QIDO and frame rows go; GetImageSet still shows it until ahl_meta_tombstones_expire removes
 * it; its data is reclaimed by the collector). Deleting a tombstone again succeeds and changes
 * nothing (*was_deleted, may be NULL, then says so). out (may be NULL) receives the set's row.
 * Updates and copies of a tombstone are AHL_ECONFLICT; its metadata and frames AHL_ENOTFOUND. */
int ahl_meta_imageset_delete(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                             struct ahl_imageset_rec *out, bool *was_deleted, struct ahl_err *err);

struct ahl_meta_expire_stats {
    uint64_t imagesets;  /* image-set tombstones removed */
    uint64_t datastores; /* data-store tombstones removed */
};

/* Removes the tombstones older than retention_ms at now_ms: the rows of image sets deleted at or
 * before now_ms - retention_ms (with any version and frame rows left of them), then the rows of
 * data stores deleted by then that hold no image set any more (with their import jobs); after
 * it they are ResourceNotFoundException. Runs in write transactions of at most 500 sets each,
 * so that other writers are not held up. stats may be NULL. 0 or the store's error. */
int ahl_meta_tombstones_expire(struct ahl_meta *m, int64_t now_ms, int64_t retention_ms,
                               struct ahl_meta_expire_stats *stats, struct ahl_err *err);

/* ---- copying a store ------------------------------------------------------------------------ */

/* Writes the QIDO-RS rows of set (docs/dicomweb.md#search-qido-rs) from its latest version, whose
 * version row and chunks must already be in the store, inside the caller's write transaction:
 * exactly the rows the commit of that version wrote, set->updated_at_ms their time, and the
 * study rows of its study rebuilt. A set that is not primary, or DELETED, gets no rows (any it
 * had are removed). `ahilite migrate` copies image sets row by row and indexes each so, since
 * the store offers no way to list a set's QIDO rows. 0 or the store's error. */
int ahl_meta_qido_index(struct ahl_meta *m, struct ahl_store_tx *tx,
                        const struct ahl_imageset_rec *set);

/* ---- garbage collection (gc.c, docs/architecture.md#garbage-collection) ----------------------
 *
 * Removes the versions of DELETED image sets and every chunk that no version of a live set
 * reaches, and tells the caller which frames (and bulk data objects) live versions list, so that
 * it can remove the others from the frame store. Safe while any number of writers (imports,
 * copies, updates, STOW-RS) run, in this process or others sharing the store:
 *
 *   mark    one read transaction (a snapshot S): the roots of every version of every live set
 *           are walked, each chunk once; the chunks reached are marked, the frame ids their
 *           instances list are recorded; every stored chunk not marked is a candidate.
 *   sweep   bounded write transactions. Each first walks the roots of the live versions not yet
 *           walked (committed after S, or in an earlier sweep), descending only into chunks not
 *           yet marked (a marked chunk's subtree is marked whole): a candidate they reach is
 *           rescued. Then it deletes versions of DELETED sets, or up to `batch` candidates not
 *           rescued. Write transactions are exclusive on every backend, so nothing commits
 *           between the walk and the deletes.
 * A chunk deleted is thus reachable from no live version at its deletion; a writer that commits
 * afterwards and names it either wrote it in its own transaction (every chunk a batch builds is
 * written, INSERT OR IGNORE: ahl__batch_write_reachable), or took it from a version of a set it
 * found live inside its write transaction (updates, reverts, imports into a set, copies all
 * re-read the set there, ahl__set_find), whose chunks are never candidates. Collectors running
 * at once (several nodes) are as safe as one; they only repeat work.
 *
 *     struct ahl_meta_gc *g;
 *     ahl_meta_gc_mark(m, &g, err);
 *     while ((rc = ahl_meta_gc_sweep(g, 512, err)) == 1) ;   // 0 when done
 *     ahl_meta_gc_locked(g, sweep_frames, ctx, err);            // frames, see below
 *     ahl_meta_gc_free(g);
 */
struct ahl_meta_gc;

struct ahl_meta_gc_stats {
    uint64_t live_versions; /* versions of live sets walked */
    uint64_t live_chunks;   /* chunks they reach */
    uint64_t live_frames;   /* distinct frame and bulk data ids they list */
    uint64_t dead_sets;     /* DELETED sets that still had versions at the mark */
    uint64_t dead_versions; /* their versions */
    uint64_t chunks;        /* chunks no live version reached at the mark (candidates) */
    uint64_t chunk_bytes;   /* their stored bytes */
    uint64_t rescued;       /* candidates a version committed since the mark reached */
    uint64_t versions_swept, chunks_swept, chunk_bytes_swept;
};

/* The mark. *out is freed with ahl_meta_gc_free. AHL_ECORRUPT when a live version needs a chunk
 * that is missing or does not parse (`ahilite check` says which): nothing is collected then. */
int ahl_meta_gc_mark(struct ahl_meta *m, struct ahl_meta_gc **out, struct ahl_err *err);
/* One sweep transaction of at most batch deletions (versions of deleted sets first, then
 * chunks). 1 when there is more to sweep, 0 when done, or a negative AHL_E*. */
int ahl_meta_gc_sweep(struct ahl_meta_gc *g, unsigned batch, struct ahl_err *err);
/* Runs fn inside a write transaction (nothing commits meanwhile), after walking the live
 * versions committed since the mark: what ahl_meta_gc_frame_live says inside fn holds until the
 * transaction ends. The frame sweep removes unlisted frames so (docs/decisions.md#gc-grace).
 * Writes nothing; fn's result is returned. */
typedef int (*ahl_meta_gc_fn)(void *ctx, struct ahl_meta_gc *g);
int ahl_meta_gc_locked(struct ahl_meta_gc *g, ahl_meta_gc_fn fn, void *ctx, struct ahl_err *err);
/* The versions of deleted image sets waiting for a collection, in one read transaction: a cheap
 * look (no walk) for a background pass deciding whether to run. */
int ahl_meta_gc_pending(struct ahl_meta *m, uint64_t *versions, struct ahl_err *err);
/* Whether a live version walked so far lists frame (or bulk data object) id. */
bool ahl_meta_gc_frame_live(const struct ahl_meta_gc *g, const char *id);
void ahl_meta_gc_stats(const struct ahl_meta_gc *g, struct ahl_meta_gc_stats *out);
/* NULL is accepted. */
void ahl_meta_gc_free(struct ahl_meta_gc *g);

/* ---- integrity ---------------------------------------------------------------------------- */

/* Receives one line per problem found, e.g. "chunk 3fa2..: stored bytes hash to 91c0..". */
typedef void (*ahl_meta_report_cb)(void *ctx, const char *line);

struct ahl_meta_check_stats {
    uint64_t chunks;
    uint64_t versions;
    uint64_t problems;
    uint64_t frame_refs; /* ImageFrames entries examined (a frame once per image set and place) */
    uint64_t frames;     /* distinct frames whose stored bytes were verified sound */
};

/* A frame a version lists, as the check hands it to a frame verifier. */
struct ahl_meta_frame_ref {
    const char *imageset_id;
    uint64_t version;
    const char *where;    /* "Study.Series['1.2'].Instances['1.2.3'].ImageFrames[0]" */
    const char *frame_id; /* its ID */
    const char *stored_transfer_syntax; /* the instance's StoredTransferSyntaxUID, or "" */
    uint64_t size;                      /* its FrameSizeInBytes, UINT64_MAX when absent */
};

/* Checks the stored bytes of one frame (the engine does not know where frames are kept). 0 when
 * sound; AHL_ENOTFOUND or AHL_ECORRUPT with what was found written into problem (cap bytes) for
 * damage, which the check reports; any other error stops the check. */
typedef int (*ahl_meta_frame_verify_cb)(void *ctx, const struct ahl_meta_frame_ref *ref,
                                        char *problem, size_t cap);

struct ahl_meta_check_opts {
    ahl_meta_frame_verify_cb verify_frame; /* NULL: frame files are not looked at */
    void *verify_ctx;
};

/* Re-hashes every chunk and walks every version of every image set, reporting each damaged or
 * missing chunk with the versions that need it. For every frame an instance of a version lists
 * under ImageFrames it also checks that the frame index has the row GetImageFrame needs (for
 * image sets that are not deleted) with the instance's StoredTransferSyntaxUID, and hands the
 * frame to opts->verify_frame when given (each distinct frame found sound is verified once).
 * Reads only. 0 if everything is sound, AHL_ECORRUPT if anything was reported, another AHL_E*
 * if the check itself could not run. opts may be NULL. */
int ahl_meta_check_with(struct ahl_meta *m, const struct ahl_meta_check_opts *opts,
                        ahl_meta_report_cb cb, void *ctx, struct ahl_meta_check_stats *stats);
/* ahl_meta_check_with without a frame verifier. */
int ahl_meta_check(struct ahl_meta *m, ahl_meta_report_cb cb, void *ctx,
                   struct ahl_meta_check_stats *stats);

/* Bytes held by the chunk cache (for tests and the bench). */
size_t ahl_meta_cache_bytes(struct ahl_meta *m);

/* What GetImageSetMetadata's group-segment cache holds and has done since ahl_meta_open. */
struct ahl_meta_gzip_stats {
    size_t cache_bytes;     /* held, entry overhead included; at most opts.gzip_cache_bytes */
    size_t cache_entries;   /* segments held */
    uint64_t groups_built;  /* segments compressed (a miss) */
    uint64_t groups_reused; /* segments served from the cache (a hit) */
    uint64_t groups_waited; /* waits for another reader building the same segment */
};
void ahl_meta_gzip_stats(struct ahl_meta *m, struct ahl_meta_gzip_stats *out);

#endif /* AHL_META_META_H */
