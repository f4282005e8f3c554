/* Frame blobs on the local file system, named by content address.
 *
 * A frame's id is 32 lowercase hex digits derived from its stored transfer syntax and its stored
 * bytes (ahl_frame_id): the first 16 bytes of SHA-256(syntax NUL SHA-256(bytes)). Two frames with
 * the same bytes and syntax are one file however many image sets hold them.
 */
#ifndef AHL_BLOB_FRAMESTORE_H
#define AHL_BLOB_FRAMESTORE_H

#include <stddef.h>
#include <stdint.h>

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

struct ahl_framestore {
    char root[4096];
};

/* Creates root (and parents) if needed and sweeps stale temporary files (see above). */
int ahl_framestore_open(struct ahl_framestore *fs, const char *root, struct ahl_err *err);
/* Uses the store at root for reading only: nothing is created or removed (`ahilite check`). A
 * root that does not exist holds no frames. */
int ahl_framestore_attach(struct ahl_framestore *fs, const char *root, struct ahl_err *err);
/* Stores a frame. An existing frame file with this id and exactly these bytes is left alone (ids
 * are content addresses); one that is not (a damaged, truncated or replaced file, a planted
 * link) is replaced, so importing the source again repairs a damaged frame. 0, AHL_EINVAL,
 * AHL_EIO (with errno text in err). */
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
/* The path of a frame's file (for reports). */
void ahl_framestore_path(const struct ahl_framestore *fs, const char *id, char *out, size_t cap);
/* 1 when present, 0 when absent, negative AHL_E* on error. */
int ahl_framestore_exists(struct ahl_framestore *fs, const char *id);
/* Removes a frame (and fsyncs its directory). Deleting an absent frame is AHL_ENOTFOUND. */
int ahl_framestore_delete(struct ahl_framestore *fs, const char *id, struct ahl_err *err);

#endif /* AHL_BLOB_FRAMESTORE_H */
