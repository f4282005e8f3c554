/* Frame blobs named by content address: files on the local file system, or objects in an S3
 * bucket.
 *
 * A frame's id is 32 lowercase hex digits derived from its stored transfer syntax and its stored
 * bytes (ahl_frame_id): the first 16 bytes of SHA-256(syntax NUL SHA-256(bytes)). Two frames with
 * the same bytes and syntax are one file (or object) however many image sets hold them.
 *
 * One interface, two backends: a store opened with ahl_framestore_open / _attach holds files
 * (below), one opened with ahl_framestore_open_s3 holds objects ("Frames in an S3 bucket"
 * further down); callers do not care which, and every function says where the two differ.
 */
#ifndef AHL_BLOB_FRAMESTORE_H
#define AHL_BLOB_FRAMESTORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aws/s3.h"
#include "base/buf.h"
#include "base/codec.h"
#include "base/err.h"

/* The frame id of stored bytes; stored_transfer_syntax NULL or "" means 1.2.840.10008.1.2.4.202. */
void ahl_frame_id(const char *stored_transfer_syntax, const uint8_t *data, size_t len, char id[33]);
/* The same from the SHA-256 of the stored bytes, for bytes hashed in pieces (a file). */
void ahl_frame_id_of_digest(const char *stored_transfer_syntax,
                            const uint8_t digest[AHL_SHA256_LEN], char id[33]);

/* ---- the frame store ---- */

/* Frame blobs as files under root: root/<id[0..2]>/<id[2..4]>/<id>. A put writes a temporary
 * file in the target directory, fsyncs it, renames it into place and fsyncs the directory, so a
 * frame is either entirely visible or not at all, and an acknowledged put survives a crash.
 * Temporary files left by a crash start with "tmp." and are removed by ahl_framestore_open()
 * once they are AHL_FRAMESTORE_TMP_MAX_AGE seconds old: younger ones may belong to a write in
 * progress in another process sharing the store (a server and `ahilite import` on one data dir).
 * Ids must be exactly 32 lowercase hex digits (anything else is AHL_EINVAL, so no path tricks).
 *
 * Damage. A frame's id is a content address (ahl_frame_id), so the bytes of a frame file can be
 * checked against its name. Readers never follow a symbolic link below the root (the two fan-out
 * directories and the file are opened with O_NOFOLLOW) and accept only regular files: anything
 * else found at a frame's place is damage, AHL_ECORRUPT (a server-side error) with a
 * message saying what was found. The root itself may be a link (a data directory moved to
 * another disk). */
#define AHL_FRAMESTORE_TMP_MAX_AGE 3600

/* The largest frame file ahl_framestore_get reads into memory (AHL_FRAME_MAX_BYTES of frames.h). */
#define AHL_FRAMESTORE_MAX_BYTES ((size_t)1 << 30)

struct ahl__framecache;
struct ahl__frames3;

/* A plain value: an importer may copy it (the copy shares the cache and the S3 clients, and is
 * never closed). */
struct ahl_framestore {
    char root[4096]; /* the directory, or "s3://bucket/prefix" */
    struct ahl__framecache
        *cache;              /* verified frames kept in memory (ahl_framestore_hold), or NULL */
    struct ahl__frames3 *s3; /* frames in an S3 bucket, or NULL: files under root */
};

/* ---- frames in an S3 bucket ----
 *
 * Frame id X of the store s3://bucket/prefix is the object prefix/X[0..2]/X (docs/frames.md,
 * "Frames on S3"), written with one PutObject whose x-amz-content-sha256 S3 checks on receipt.
 * Keys are content addresses: nodes writing the same frame at once write the same bytes, and
 * nothing is locked. A put always sends the frame, with no HeadObject first: against moto_server
 * a HEAD took 4.4 ms and the PUT of a 40 KB frame 5.6 ms, so asking first would nearly double the
 * cost of every new frame to save a little on frames stored already (docs/frames.md#frames-on-s3);
 * and a PUT also replaces a damaged object, as a put over a damaged file does.
 *
 * Durability: a frame is durable once S3 acknowledged its PUT, so ahl_framestore_write is that
 * PUT and hands out ticket 0, and ahl_framestore_sync has nothing to wait for: the importer's
 * contract (no version names a frame before it is durable) holds as written.
 *
 * Reading: every read that checks (open_verified, read_verified, hold, check) hashes the bytes
 * as they arrive and compares them with the id: an object replaced by other bytes, cut short or
 * swapped is AHL_ECORRUPT as for a file, never served; an absent object is AHL_ENOTFOUND; other
 * failures of the endpoint are AHL_EIO with S3's words. ahl_framestore_open_frame and
 * _open_verified download into an unlinked temporary file of tmp_dir and hand back its
 * descriptor, so a large frame is streamed from disk and never held whole in memory;
 * ahl_framestore_get and _read_verified download into one buffer sized from the reply's
 * Content-Length. ahl_framestore_path gives "s3://bucket/key".
 *
 * The verified-frame cache (ahl_framestore_hold) keeps frames across requests as for files, but
 * with no lstat on a hit: objects are immutable content addresses, so a held frame is never
 * stale, whatever another node writes (the same bytes) or a person damages later (what is held
 * was checked when it was read; `ahilite check` finds the damage).
 *
 * Region and credentials come from cfg or the usual AWS_* environment variables (aws/s3.h). The
 * bucket must exist. 0, AHL_EPARSE (the URI), AHL_EINVAL (endpoint, credentials), AHL_ENOMEM.
 * Nothing is sent until the first frame. */
int ahl_framestore_open_s3(struct ahl_framestore *fs, const char *uri,
                           const struct ahl_s3_config *cfg, const char *tmp_dir,
                           struct ahl_err *err);

/* The frame store of a data directory as `ahilite serve|import|check|export` choose it: with
 * blob_store NULL or "", files under DATA_DIR/frames (ahl_framestore_open, or with read_only
 * ahl_framestore_attach); with "s3://bucket/prefix", objects there on the endpoint s3_endpoint
 * (which must then be given), temporary files in DATA_DIR/tmp (created unless read_only). */
int ahl_framestore_open_dir(struct ahl_framestore *fs, const char *data_dir, const char *blob_store,
                            const char *s3_endpoint, bool read_only, struct ahl_err *err);

/* Frees what the store holds: its cache (ahl_framestore_cache_close) and its S3 clients. A
 * zeroed store is fine; a copy must not be closed. */
void ahl_framestore_close(struct ahl_framestore *fs);

/* ---- frames as files ---- */

/* Creates root (and parents) if needed and sweeps stale temporary files (see above). */
int ahl_framestore_open(struct ahl_framestore *fs, const char *root, struct ahl_err *err);
/* Uses the store at root for reading only: nothing is created or removed (`ahilite check`). A
 * root that does not exist holds no frames. */
int ahl_framestore_attach(struct ahl_framestore *fs, const char *root, struct ahl_err *err);
/* Stores a frame. An existing frame file with this id and exactly these bytes is left alone (ids
 * are content addresses); one that is not (a damaged, truncated or replaced file, a planted
 * link) is replaced, so importing the source again repairs a damaged frame. On S3: one PutObject.
 * 0, AHL_EINVAL, AHL_EIO (with errno text, or S3's, in err). */
int ahl_framestore_put(struct ahl_framestore *fs, const char *id, const void *data, size_t len,
                       struct ahl_err *err);
/* Reads a whole frame into a new malloc'd buffer. AHL_ENOTFOUND when absent, AHL_ECORRUPT when
 * what is there is not a regular file. The bytes are not checked against the id. */
int ahl_framestore_get(struct ahl_framestore *fs, const char *id, uint8_t **data, size_t *len,
                       struct ahl_err *err);
/* ahl_framestore_open_verified, then the whole frame into a new malloc'd buffer (at most
 * AHL_FRAMESTORE_MAX_BYTES, else AHL_ETOOBIG): what a reader that needs the bytes calls. */
int ahl_framestore_read_verified(struct ahl_framestore *fs, const char *id,
                                 const char *stored_transfer_syntax, uint8_t **data, size_t *len,
                                 struct ahl_err *err);
/* Opens a frame for streaming: *fd (O_RDONLY|O_CLOEXEC, the caller closes it) and *size.
 * AHL_ENOTFOUND when absent, AHL_ECORRUPT when not a regular file. Not checked against the id:
 * ahl_framestore_open_verified is the reader's call. */
int ahl_framestore_open_frame(struct ahl_framestore *fs, const char *id, int *fd, uint64_t *size,
                              struct ahl_err *err);
/* ahl_framestore_open_frame, then reads the whole file and checks that its bytes are the frame
 * the id names (ahl_frame_id with stored_transfer_syntax; NULL or "" means .4.202), so a
 * truncated, overwritten or swapped file is AHL_ECORRUPT (a server-side error, "stored frame
 * ... is damaged: ...") instead of being served. The fd is left at offset 0. Costs one read of the
 * file and its SHA-256 (about 0.7 ms of CPU per MB here; the page cache keeps the bytes for the
 * send). */
int ahl_framestore_open_verified(struct ahl_framestore *fs, const char *id,
                                 const char *stored_transfer_syntax, int *fd, uint64_t *size,
                                 struct ahl_err *err);
/* The check of one frame for `ahilite check`: present, a regular file, expected_size bytes long
 * (UINT64_MAX: size unknown, not compared) and holding the bytes its id names. 0, AHL_ENOTFOUND,
 * AHL_ECORRUPT (what was found in err), AHL_EIO. Reads only. */
int ahl_framestore_check(struct ahl_framestore *fs, const char *id,
                         const char *stored_transfer_syntax, uint64_t expected_size,
                         struct ahl_err *err);
/* ---- verified frames held in memory ---- */

/* A frame read whole and checked against its id (as ahl_framestore_open_verified checks it), held
 * in memory for a reader that sends it: prefix_len bytes of the caller's wrap (below) lie right
 * before data, so prefix..data+len is one contiguous answer. Read-only; released with
 * ahl_frame_hold_release from any thread. */
struct ahl_frame_hold {
    const uint8_t *prefix;
    size_t prefix_len;
    const uint8_t *data;
    size_t len;
};

/* Builds the bytes sent before a frame (at most AHL_FRAME_PREFIX_MAX) from its data: called once
 * when a frame is read into memory. 0, or a negative AHL_E* with err (the hold fails with it). */
typedef int (*ahl_frame_wrap_fn)(const uint8_t *data, size_t len, struct ahl_buf *prefix,
                                 struct ahl_err *err);
#define AHL_FRAME_PREFIX_MAX 256

/* Keeps up to budget bytes of verified frames in memory (0 turns the cache off), the least
 * recently used dropped first; a frame over budget / 8 bytes is not held (ahl_framestore_hold
 * answers AHL_ETOOBIG and the caller streams it from its file). 0, AHL_ENOMEM, or AHL_EIO when
 * the root cannot be opened (it is opened once, here; on S3 there is none). Call once, after
 * ahl_framestore_open and before any reader; ahl_framestore_cache_close frees what is not held by a
 * reader. */
int ahl_framestore_cache_open(struct ahl_framestore *fs, size_t budget);
void ahl_framestore_cache_close(struct ahl_framestore *fs);
/* Frames and bytes in the cache now (tests, the log). */
void ahl_framestore_cache_stats(struct ahl_framestore *fs, size_t *frames, size_t *bytes);

/* On S3 a hit is served without looking at the object (see "Frames in an S3 bucket"), and a miss
 * is one GetObject, refused from its Content-Length when over budget / 8.
 *
 * A verified frame in memory: from the cache when its file has not changed since it was read, or
 * else read whole, checked against the id (ahl_frame_id with stored_transfer_syntax), wrapped
 * with wrap (NULL: no prefix) and kept. A file has not changed while lstat gives the same device,
 * inode, size, modification and change times, so a frame file rewritten, truncated, removed or
 * replaced (by another file or a link) since is read and checked again, and its damage reported
 * as by ahl_framestore_open_verified; the bytes held were checked when they were read, so what is
 * served always hashes to its id. 0 with *out (release it), AHL_ENOTFOUND, AHL_ECORRUPT, AHL_EIO,
 * AHL_ENOMEM, the wrap's error, or AHL_ETOOBIG when the cache is off or the frame too large for
 * it (the caller streams it with ahl_framestore_open_verified). */
int ahl_framestore_hold(struct ahl_framestore *fs, const char *id,
                        const char *stored_transfer_syntax, ahl_frame_wrap_fn wrap,
                        const struct ahl_frame_hold **out, struct ahl_err *err);
void ahl_frame_hold_release(const struct ahl_frame_hold *h);

/* The path of a frame's file, or on S3 "s3://bucket/key" (for reports). */
void ahl_framestore_path(const struct ahl_framestore *fs, const char *id, char *out, size_t cap);
/* 1 when present, 0 when absent, negative AHL_E* on error (on S3: HeadObject). */
int ahl_framestore_exists(struct ahl_framestore *fs, const char *id);
/* Removes a frame (and fsyncs its directory). Deleting an absent frame is AHL_ENOTFOUND. */
int ahl_framestore_delete(struct ahl_framestore *fs, const char *id, struct ahl_err *err);

/* ---- collecting frames no version lists (framestore_gc.c) ----
 *
 * The collector (src/meta/gc.c, docs/decisions.md#gc-grace) removes the frames that no live
 * version lists and that were last written more than a grace period ago, since a frame is
 * written before the version that lists it commits. A put of a frame already present makes its
 * time now (utimensat by path: a collector that moved the file aside meanwhile turns that into
 * a fresh write). A removal moves the file aside to "gc.<id>" in its directory first, looks at
 * its time again and moves it back when it was written meanwhile, so that no put that returned
 * is undone; a "gc.<id>" left by a crash is moved back by the next listing. On S3 the listing is
 * ListObjectsV2 under the prefix (LastModified for the time; keys not of a frame's form are left
 * out) and a removal is HeadObject (Last-Modified still before before_ms, whole seconds) then
 * DeleteObject: nothing stops a put landing between the two, so the caller holds the frame
 * fence (docs/architecture.md#garbage-collection). */
struct ahl_framestore_entry {
    char id[33];
    uint64_t size;
    int64_t mtime_ms; /* last written (the wall clock, not AHILITE_CLOCK_OFFSET's) */
};
typedef int (*ahl_framestore_list_cb)(void *ctx, const struct ahl_framestore_entry *e);
/* Every frame file (bulk data objects too: they are stored as frames), in no order. cb's
 * non-zero result stops the listing and is returned. AHL_EIO. */
int ahl_framestore_list(struct ahl_framestore *fs, ahl_framestore_list_cb cb, void *ctx,
                        struct ahl_err *err);
/* Removes frame id when it was last written before before_ms: 1 removed (*freed its size), 0
 * left (younger, or absent), or AHL_EINVAL, AHL_EIO. */
int ahl_framestore_reclaim(struct ahl_framestore *fs, const char *id, int64_t before_ms,
                           uint64_t *freed, struct ahl_err *err);

/* Makes a stored frame's time now, as a put of it would (an import whose frames have waited
 * long for their commit, docs/decisions.md#gc-grace). 0, AHL_ENOTFOUND when the frame is gone
 * (the collector took it), AHL_EINVAL, AHL_EIO. On S3 0: a put always rewrites the object, and
 * the frame fence protects a waiting import there. */
int ahl_framestore_refresh(struct ahl_framestore *fs, const char *id, struct ahl_err *err);

/* ---- writing frames durable in groups ----
 *
 * ahl_framestore_put makes each frame durable on its own, with two fsyncs (the file, then its
 * directory). An importer writes many frames and commits the metadata that names them only
 * afterwards, so it writes them without syncing and makes them durable together, with one
 * syncfs(2) of the frame store's file system, just before that commit (docs/frames.md#durability):
 *
 *     struct ahl_framestore_sync s;
 *     ahl_framestore_sync_open(fs, &s, err);                 -- before the writes it will cover
 *     uint64_t ticket;
 *     ahl_framestore_write(fs, &s, id, data, len, &ticket, err);   -- any thread, any number
 *     ...
 *     ahl_framestore_sync(&s, ticket, err);  -- 0: every write up to that ticket is durable
 *     -- now commit what names those frames
 *     ahl_framestore_sync_close(&s);
 *
 * Tickets grow with each write. A sync covers every write that returned before it started, so
 * threads syncing at once share one syncfs: a caller whose ticket an earlier or running syncfs
 * covers waits for it instead of starting another. syncfs flushes the whole file system the
 * frame store is on (other files there too); the descriptor it is called on is the store's root,
 * opened before the writes, so the write-back errors that syncfs reports (Linux 5.8 and later)
 * are those of the writes it covers. After a failed syncfs the frames written before it may not
 * be on disk although the page cache still holds them: the tickets it was to cover never become
 * durable (AHL_EIO for them ever after); later writes get later tickets and a later sync. */
struct ahl_framestore_sync {
    int fd; /* the frame store's root */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t written;         /* the last ticket handed out */
    uint64_t synced;          /* every ticket up to this is durable */
    uint64_t failed;          /* no ticket up to this ever will be */
    bool syncing;             /* a syncfs is running */
    int (*syncfs_fn)(int fd); /* syncfs(2); a test may put another here */
};

/* Opens the root for syncing. 0 or AHL_EIO. On S3 there is nothing to open: writes are durable
 * when they return, with ticket 0. */
int ahl_framestore_sync_open(const struct ahl_framestore *fs, struct ahl_framestore_sync *s,
                             struct ahl_err *err);
/* NULL and a zeroed struct are accepted. */
void ahl_framestore_sync_close(struct ahl_framestore_sync *s);
/* ahl_framestore_put without its fsyncs: readers see the whole frame or none, and *ticket is what
 * to pass to ahl_framestore_sync to make it durable. A frame already present with these bytes is
 * left alone, and still gets a ticket: it may have been written, not yet synced, by another
 * thread. Errors as ahl_framestore_put. */
int ahl_framestore_write(struct ahl_framestore *fs, struct ahl_framestore_sync *s, const char *id,
                         const void *data, size_t len, uint64_t *ticket, struct ahl_err *err);
/* Makes every write up to ticket durable (ticket 0: nothing to do). 0, or AHL_EIO when a syncfs
 * that was to cover it failed (err says so; see above). */
int ahl_framestore_sync(struct ahl_framestore_sync *s, uint64_t ticket, struct ahl_err *err);

#endif /* AHL_BLOB_FRAMESTORE_H */
