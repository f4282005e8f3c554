/* Internals of the metadata engine shared by its files (not a public header: src/meta only).
 *
 * chunks.c  the chunk codec (canonical JSON text -> hash + raw-deflate segment), loading chunks
 *           through the byte-budgeted cache, and the engine handle itself;
 * pmap.c    persistent B+tree maps of UID -> fixed-size value, stored as map chunks;
 * doc.c     version roots, assembling documents as jansson, the search row, the version commit;
 * gzdoc.c   GetImageSetMetadata's gzip body, spliced from chunk and group segments;
 * meta.c    creating, importing, reading and deleting image sets;
 * update.c  UpdateImageSetMetadata and revert, over update_request.c (parsing and checking the
 *           DICOMUpdates blobs) and rules.c (the per-attribute rules);
 * copy.c    CopyImageSet; frameidx.c the frame index; qidoidx.c the QIDO-RS index; check.c the
 *           check;
 * states.c  the one table of states and statuses (states.h).
 *
 * Chunk formats (all integers little-endian):
 *   JSON  stored data = raw deflate (Z_FULL_FLUSH) of the text without its final '}', so the
 *         assembler can append members before closing the object; ulen/crc describe that prefix;
 *         hash = SHA-256 of the whole text.
 *   MAP   'M', level u8 (0 = leaf), vlen u16, count u32, total u64 (entries in the subtree), then
 *         count entries: keylen u16, key, value (leaf: vlen bytes; inner: child hash 32 + child
 *         total u64). Keys ascending; an inner entry's key is its child's smallest key.
 *   ROOT  'R', 1, 0, 0, patient hash 32, study hash 32, series-map root 32 (zero: empty map).
 * hash = SHA-256 of the stored bytes for MAP and ROOT.
 */
#ifndef AHL_META_ENGINE_INTERNAL_H
#define AHL_META_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <zlib.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/lru.h"
#include "meta/events.h"
#include "meta/meta.h"
#include "store/store.h"

#define AHL__MAP_FANOUT 32    /* entries per node when bulk-built */
#define AHL__MAP_MAX 64       /* a node with more entries splits */
#define AHL__MAP_MAX_DEPTH 12 /* deeper than this is damage, not data */
#define AHL__ROOT_LEN (4 + 3 * AHL_SHA256_LEN)
#define AHL__MAX_CHUNK (64u << 20) /* no stored chunk is larger */
#define AHL__GROUP_CLAIMS 64       /* groups built at once; past it, builds are not shared */

struct ahl__cache_entry;

/* A byte-budgeted cache of immutable byte strings keyed by a SHA-256: chained hash table + LRU
 * list, everything guarded by lock. */
struct ahl__cache {
    pthread_mutex_t lock;
    struct ahl__cache_entry **buckets;
    size_t nbuckets, count, bytes, budget;
    struct ahl__cache_entry *lru_head, *lru_tail; /* head = most recently used */
};

/* One set's last read access held in memory (access.c); dirty until a flush has written it. */
struct ahl__access_entry {
    struct ahl_lru_link link;
    char id[AHL_ID_LEN + 1];
    int64_t ms;
    bool dirty;
};

/* The accesses recorded by reads (access.h). Entries come from pool (allocated at the first
 * touch, cap of them, never freed before close); the table and the counters are under mu, a
 * leaf lock; flush_mu lets one flush run at a time (held while it commits, by a thread in no
 * transaction). The flusher thread waits on cv. */
struct ahl__access {
    pthread_mutex_t mu;
    pthread_mutex_t flush_mu;
    pthread_cond_t cv;
    struct ahl_lru lru;
    struct ahl__access_entry *pool;
    size_t cap, used, pending;
    uint64_t recorded, flushes, sets_written, flush_failures, dropped;
    pthread_t thread;
    bool thread_running, stop;
};

struct ahl_meta {
    struct ahl_store *store;
    struct ahl_meta_opts opts;
    struct ahl__cache chunks; /* stored chunks by hash (opts.cache_bytes) */
    /* GetImageSetMetadata's group segments by group key (opts.gzip_cache_bytes; budget 0: none,
     * the document is spliced from the chunks' own segments); the counters under groups.lock */
    struct ahl__cache groups;
    uint64_t groups_built, groups_reused, groups_waited;
    /* Keys of groups being built, so that concurrent first reads build each group once: a
     * reader missing a claimed group waits on groups_cond for its builder (under groups.lock). */
    uint8_t group_claims[AHL__GROUP_CLAIMS][AHL_SHA256_LEN];
    int ngroup_claims;
    pthread_cond_t groups_cond;
    /* idle deflate streams, reused to avoid deflateInit2 per chunk */
    pthread_mutex_t zlock;
    z_stream *zfree[8];
    int nzfree;
    struct ahl__access access;
};

/* The access table's life (access.c): init at open (starting the flusher when
 * opts.access_flush_ms is set), release at close (stopping it and flushing last). */
int ahl__access_init(struct ahl_meta *m);
void ahl__access_release(struct ahl_meta *m);

/* A loaded chunk: meta.data points at bytes kept alive by ref until ahl__chunk_release. */
struct ahl__chunk_ref {
    struct ahl_chunk c;
    uint32_t comb_op; /* crc32_combine_gen(c.ulen) */
    struct ahl__cache_entry *ref;
};

/* A chunk produced by an operation and not yet written: owns its bytes. */
struct ahl__newchunk {
    struct ahl_chunk c;
    void *bytes;
    bool written; /* reachable from a committed root and handed to the store */
};

/* The chunks an operation produces. Editing a persistent map one key at a time produces
 * intermediate nodes that the final root no longer reaches; only chunks reachable from a root
 * being committed are written (ahl__batch_write_reachable), so no garbage reaches the store.
 * Written chunks go into the cache after the commit. idx is a hash index over v. */
struct ahl__batch {
    struct ahl__newchunk *v;
    size_t n, cap;
    size_t *idx; /* open addressing: 1 + position in v, 0 = empty */
    size_t icap;
    z_stream *z;
    struct ahl_meta *m;
};

void ahl__batch_init(struct ahl__batch *b, struct ahl_meta *m);
void ahl__batch_release(struct ahl__batch *b);
/* Writes (INSERT OR IGNORE) every chunk of b reachable from root that is not yet written. */
int ahl__batch_write_reachable(struct ahl__batch *b, struct ahl_store_tx *tx, const uint8_t *root);
/* After a successful commit: hands the written chunks to the cache. */
void ahl__batch_publish(struct ahl__batch *b);
/* Looks for a chunk produced in this batch (operations read their own new nodes). */
const struct ahl_chunk *ahl__batch_find(const struct ahl__batch *b, const uint8_t *hash);

/* Serialises obj with ahl_json_write, hashes it, deflates it and adds it to b. */
int ahl__batch_add_json(struct ahl__batch *b, const json_t *obj, uint8_t hash[AHL_SHA256_LEN]);
/* Adds a MAP or ROOT chunk of the given bytes (copied). */
int ahl__batch_add_raw(struct ahl__batch *b, int kind, const void *p, size_t n,
                       uint8_t hash[AHL_SHA256_LEN]);

/* Loads a chunk: from batch b (may be NULL), the cache, or the store through tx. */
int ahl__chunk_load(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                    const uint8_t *hash, struct ahl__chunk_ref *out);
void ahl__chunk_release(struct ahl_meta *m, struct ahl__chunk_ref *r);
/* Drops a chunk from the cache (the collector deleted it); held references stay valid. */
void ahl__chunk_forget(struct ahl_meta *m, const uint8_t *hash);

/* An open-addressing set of SHA-256 hashes (hset.c); the zero hash is never a member. Zeroed is
 * empty. */
struct ahl__hset {
    uint8_t (*v)[AHL_SHA256_LEN];
    size_t cap, n;
};
bool ahl__hset_has(const struct ahl__hset *s, const uint8_t *h);
/* 0, or AHL_ENOMEM (the set unchanged). */
int ahl__hset_add(struct ahl__hset *s, const uint8_t *h);
/* Forgets every member, keeping the table. */
void ahl__hset_clear(struct ahl__hset *s);
void ahl__hset_release(struct ahl__hset *s);
/* Loads a JSON chunk and parses it (new reference in *out). */
int ahl__json_load(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                   const uint8_t *hash, json_t **out);
/* Inflates a JSON chunk's stored segment into text, appending the final '}'. */
int ahl__json_text(const struct ahl_chunk *c, struct ahl_buf *out);
/* A deflate stream (raw, opts.deflate_level) from the engine's idle ones, reset; NULL: no
 * memory. ahl__z_put gives it back (NULL is accepted). */
z_stream *ahl__z_get(struct ahl_meta *m);
void ahl__z_put(struct ahl_meta *m, z_stream *z);

/* ---- GetImageSetMetadata's group segments (gzdoc.c; cached in chunks.c) ---- */

/* Looks a group segment up by its key: 0 with a reference in out (released with
 * ahl__chunk_release; c.ulen/c.crc describe the text, c.data/c.len the deflate bytes), or
 * AHL_ENOTFOUND with the group claimed for the caller to build (*claimed true; false when too
 * many are being built). When another thread is building it, waits for that thread first. */
int ahl__group_get(struct ahl_meta *m, const uint8_t *key, struct ahl__chunk_ref *out,
                   bool *claimed);
/* Caches a copy of a group segment just built (seg->hash is its key); counts the build. */
void ahl__group_put(struct ahl_meta *m, const struct ahl_chunk *seg);
/* Ends a claim of ahl__group_get (after ahl__group_put, or when the group was not built),
 * waking the readers waiting for it. */
void ahl__group_unclaim(struct ahl_meta *m, const uint8_t *key);

/* ---- persistent maps (pmap.c) ---- */

struct ahl__map_entry {
    const char *key;
    size_t keylen;
    const uint8_t *value;
};

/* Builds a map from n entries sorted by key (no duplicates); root is zero for n == 0. */
int ahl__map_build(struct ahl__batch *b, const struct ahl__map_entry *e, size_t n, size_t vlen,
                   uint8_t root[AHL_SHA256_LEN]);
/* Finds key: 0 with value copied (vlen bytes), or AHL_ENOTFOUND. */
int ahl__map_get(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                 const uint8_t *root, const char *key, size_t keylen, uint8_t *value, size_t vlen);
/* Sets key to value (NULL: deletes it, vlen ignored; deleting a missing key is AHL_ENOTFOUND). */
int ahl__map_set(struct ahl__batch *b, struct ahl_store_tx *tx, const uint8_t *root,
                 const char *key, size_t keylen, const uint8_t *value, size_t vlen,
                 uint8_t newroot[AHL_SHA256_LEN]);
/* Number of entries. */
int ahl__map_count(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                   const uint8_t *root, uint64_t *out);
typedef int (*ahl__map_cb)(void *ctx, const char *key, size_t keylen, const uint8_t *value);
/* Visits every entry in key order. */
int ahl__map_walk(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                  const uint8_t *root, ahl__map_cb cb, void *ctx);
/* Visits every leaf in key order: its hash and its n entries. */
typedef int (*ahl__map_leaf_cb)(void *ctx, const uint8_t *hash, const struct ahl__map_entry *e,
                                size_t n);
int ahl__map_walk_leaves(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                         const uint8_t *root, ahl__map_leaf_cb cb, void *ctx);
/* Visits every map chunk hash of the tree (for the check), including inner nodes. */
int ahl__map_walk_nodes(struct ahl_meta *m, struct ahl_store_tx *tx, const uint8_t *root,
                        int (*cb)(void *ctx, const uint8_t *hash, bool leaf, const uint8_t *v,
                                  size_t vlen),
                        void *ctx);

/* Visits, in key order, every key whose value differs between the maps of roots a and b (zero:
 * empty) with leaf values of vlen bytes: va NULL = only in b, vb NULL = only in a. Loads only
 * the nodes on paths whose hashes differ, so the cost follows the difference, not the maps. */
typedef int (*ahl__map_diff_cb)(void *ctx, const char *key, size_t keylen, const uint8_t *va,
                                const uint8_t *vb);
int ahl__map_diff(struct ahl_meta *m, struct ahl_store_tx *tx, const uint8_t *a,
                  const uint8_t *b, size_t vlen, ahl__map_diff_cb cb, void *ctx);
bool ahl__hash_is_zero(const uint8_t *h);
/* Calls cb for every chunk hash a MAP chunk refers to (children, or the hashes in its leaf
 * values). AHL_ECORRUPT if the node does not parse. */
int ahl__map_node_refs(const struct ahl_chunk *c, int (*cb)(void *ctx, const uint8_t *hash),
                       void *ctx);

/* ---- documents (doc.c) ---- */

struct ahl__root {
    uint8_t patient[AHL_SHA256_LEN];
    uint8_t study[AHL_SHA256_LEN];
    uint8_t series[AHL_SHA256_LEN]; /* map root; zero = no series */
};

int ahl__root_load(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                   const uint8_t *hash, struct ahl__root *out);
int ahl__root_store(struct ahl__batch *b, const struct ahl__root *r, uint8_t hash[AHL_SHA256_LEN]);

/* Writes a normalized document's nodes as chunks: root hash out. Checks structure (objects where
 * objects belong; Series/Instances keys equal to the node's UID when the node carries one). */
int ahl__doc_store(struct ahl__batch *b, const json_t *doc, uint8_t root[AHL_SHA256_LEN],
                   struct ahl_err *err);
/* The document of a root (SchemaVersion, DatastoreID, ImageSetID first): whole when series_uid
 * is NULL; else only that series (none when the root lacks it), and of it only the instance
 * sop_uid when that is not NULL (none when the series lacks it). A part costs the nodes it holds
 * and one map path each, not the size of the set. */
int ahl__doc_load(struct ahl_meta *m, struct ahl_store_tx *tx, const char *datastore_id,
                  const char *imageset_id, const uint8_t *root, const char *series_uid,
                  const char *sop_uid, json_t **out);
/* Streams the gzip member of a root's document (see doc.c). */
int ahl__doc_gzip(struct ahl_meta *m, struct ahl_store_tx *tx, const char *datastore_id,
                  const char *imageset_id, const uint8_t *root, ahl_meta_write_cb cb, void *ctx);
/* Stores a node without its child map key as a JSON chunk. */
int ahl__store_obj(struct ahl__batch *b, const json_t *node, const char *child,
                   uint8_t hash[AHL_SHA256_LEN]);
/* Merges the own attributes of src into node: DICOM and DICOMVRs objects key by key, other
 * keys replaced; child_key (Series/Instances) skipped. */
int ahl__merge_own(json_t *node, const json_t *src, const char *child_key);
/* Copies the string value of dicom[key] into dst ("" when absent, not a string or longer than
 * dst holds). */
void ahl__str_field(const json_t *dicom, const char *key, char *dst, size_t cap);
/* The search row of a version. */
int ahl__search_row(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                    const uint8_t *root, const struct ahl_imageset_rec *set,
                    struct ahl_search_row *row);
/* The same, given the search row `old` of the version whose root is old_root: only the nodes
 * whose chunks changed between the two roots are read. */
int ahl__search_row_from(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                         const uint8_t *old_root, const struct ahl_search_row *old,
                         const uint8_t *root, const struct ahl_imageset_rec *set,
                         struct ahl_search_row *row);
/* Sets the fields of a search row that come from the image-set row (ids, primary flag, version,
 * timestamps) rather than from the document. */
void ahl__search_row_stamp(struct ahl_search_row *row, const struct ahl_imageset_rec *set);
/* The own-attributes object of a node (the node without child_key). */
json_t *ahl__own(const json_t *node, const char *child_key);

/* Common: finds a non-deleted image set, with the error AWS gives. */
int ahl__set_find(struct ahl_store_tx *tx, const char *datastore_id, const char *id,
                  struct ahl_imageset_rec *out, struct ahl_err *err);
/* The same for a set about to be written (updated, copied from or into): a DELETED set, whose
 * tombstone GetImageSet still shows, is AHL_ECONFLICT rather than missing
 * (docs/decisions.md#tombstones). */
int ahl__set_find_writable(struct ahl_store_tx *tx, const char *datastore_id, const char *id,
                           struct ahl_imageset_rec *out, struct ahl_err *err);
/* Writes a new version of set (whose row is *set, already updated in memory with the new
 * latest_version and timestamps) with CAS on expected, plus its search row. */
int ahl__version_commit(struct ahl_meta *m, struct ahl_store_tx *tx, struct ahl__batch *b,
                        struct ahl_imageset_rec *set, uint64_t expected, const uint8_t *root,
                        bool forced, enum ahl_workflow_status workflow, struct ahl_err *err);
/* The same with the search row's document fields computed beforehand (pre: a row of the same
 * root from ahl__search_row, stamped here with *set's fields); pre NULL computes it. */
int ahl__version_commit_row(struct ahl_meta *m, struct ahl_store_tx *tx, struct ahl__batch *b,
                            struct ahl_imageset_rec *set, uint64_t expected, const uint8_t *root,
                            bool forced, enum ahl_workflow_status workflow,
                            const struct ahl_search_row *pre, struct ahl_err *err);
/* Commits *tx (which is then ended and set to NULL) and, on success, publishes b's written
 * chunks to the cache. */
int ahl__commit_publish(struct ahl_store_tx **tx, struct ahl__batch *b, struct ahl_err *err);
/* Writes the events of set's change in tx (events.h): first (a transient state, or none when
 * AHL_EVENT_TYPE_COUNT), then last. 0, or the store's failure recorded in err. */
int ahl__events_imageset(struct ahl_store_tx *tx, enum ahl_event_type first,
                         enum ahl_event_type last, const struct ahl_imageset_rec *set,
                         struct ahl_err *err);
/* ---- the frame index (frameidx.c) ---- */

/* Adds the frame-index rows of one instance object (its ImageFrames ids, its stored transfer
 * syntax) for imageset_id; an instance without frames adds nothing. */
int ahl__frames_index_instance(struct ahl_store_tx *tx, const char *imageset_id,
                               const json_t *instance);
/* The same for every instance of a normalized document {"Study":{"Series":{..{"Instances"..}}}}. */
int ahl__frames_index_doc(struct ahl_store_tx *tx, const char *imageset_id, const json_t *doc);
/* An index the store queued sets for when its schema was upgraded (frameidx.c runs them): what
 * it is called in the log, its queue, and what indexes one set at its latest version (root). */
struct ahl__backfill {
    const char *what;
    int (*next)(struct ahl_store_tx *tx, char imageset_id[AHL_ID_LEN + 1]);
    int (*done)(struct ahl_store_tx *tx, const char *imageset_id);
    int (*index)(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl_imageset_rec *set,
                 const uint8_t *root);
};
/* Indexes every queued set, one write transaction per set; a set that is gone or damaged is
 * logged and dequeued. */
int ahl__backfill(struct ahl_meta *m, const struct ahl__backfill *bf);
/* Indexes every set the store queued for it (ahl_store_frame_backfill_next), one write
 * transaction per set; called by ahl_meta_open. */
int ahl__frames_backfill(struct ahl_meta *m);

/* ---- the QIDO-RS index (qidoidx.c) ---- */

/* Brings the QIDO-RS rows of set (its row as just written) to the version whose root is root,
 * in the caller's write transaction: rows removed for a set that is not primary, is DELETED or
 * has no root (NULL); otherwise only the rows of the parts whose chunks differ from the root the
 * rows describe are rewritten, and the study rows of the studies touched are refreshed. */
int ahl__qido_sync(struct ahl_meta *m, struct ahl_store_tx *tx, const struct ahl__batch *b,
                   const struct ahl_imageset_rec *set, const uint8_t *root);
/* Indexes every set queued by the schema upgrade (ahl_store_qido_backfill_next), one write
 * transaction per set; called by ahl_meta_open. */
int ahl__qido_backfill(struct ahl_meta *m);

#endif /* AHL_META_ENGINE_INTERNAL_H */
