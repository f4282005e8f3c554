/* Shared between the frame store's files (framestore.c, framecache.c); nothing outside src/blob
 * includes it. */
#ifndef AHL_BLOB_FRAMESTORE_INTERNAL_H
#define AHL_BLOB_FRAMESTORE_INTERNAL_H

#include <sys/stat.h>

#include "blob/framestore.h"

/* Opens a frame's file without following a link below the root; it must be a regular file. *fd
 * and *st on success; AHL_EINVAL (a malformed id), AHL_ENOTFOUND, AHL_ECORRUPT (something else
 * in its place), AHL_EIO. */
int ahl__framestore_open_regular(const struct ahl_framestore *fs, const char *id, int *fd,
                                 struct stat *st, struct ahl_err *err);
/* Whether the SHA-256 of a frame's size stored bytes gives its id (stored transfer syntax ts,
 * NULL or "" meaning .4.202): 0, or AHL_ECORRUPT saying which frame the bytes are instead. */
int ahl__frame_digest_check(const char *id, const char *ts, const uint8_t digest[AHL_SHA256_LEN],
                            uint64_t size, struct ahl_err *err);

/* ---- the S3 backend (framestore_s3.c), what the front calls when fs->s3 is set ---- */

void ahl__frames3_free(struct ahl__frames3 *b);
/* The object key of a frame: <prefix><id[0..2]>/<id>. */
void ahl__frames3_key(const struct ahl_framestore *fs, const char *id, char *out, size_t cap);
/* PutObject of the frame. 0, AHL_ENOMEM, AHL_EIO (S3's words in err). */
int ahl__frames3_put(struct ahl_framestore *fs, const char *id, const void *data, size_t len,
                     struct ahl_err *err);
/* HeadObject: 0 with *size, AHL_ENOTFOUND, AHL_EIO. */
int ahl__frames3_exists(struct ahl_framestore *fs, const char *id, uint64_t *size,
                        struct ahl_err *err);
/* AHL_ENOTFOUND when absent, else DeleteObject. */
int ahl__frames3_delete(struct ahl_framestore *fs, const char *id, struct ahl_err *err);
/* GetObject into an unlinked temporary file of the store's temporary directory, read back from
 * offset 0 through *fd: never whole in memory. With ts not NULL the bytes are checked against the
 * id while they arrive (ts "" is .4.202), AHL_ECORRUPT when they are not the frame. Also
 * AHL_ENOTFOUND, AHL_EIO, AHL_ENOSPC (the temporary directory's disk), AHL_ENOMEM. */
int ahl__frames3_open(struct ahl_framestore *fs, const char *id, const char *ts, int *fd,
                      uint64_t *size, struct ahl_err *err);
/* GetObject into a new malloc'd block: room bytes, then the frame's *len bytes (the caller frees
 * *block). An object over limit bytes is AHL_ETOOBIG before any of it is read (its
 * Content-Length). ts and the other errors as ahl__frames3_open. */
int ahl__frames3_read(struct ahl_framestore *fs, const char *id, const char *ts, size_t room,
                      uint64_t limit, uint8_t **block, size_t *len, struct ahl_err *err);
/* GetObject, hashed and dropped: ahl_framestore_check on S3. */
int ahl__frames3_check(struct ahl_framestore *fs, const char *id, const char *ts,
                       uint64_t expected_size, struct ahl_err *err);
/* ahl_framestore_list and _reclaim on S3: ListObjectsV2 under the prefix; HeadObject (its
 * Last-Modified) then DeleteObject. */
int ahl__frames3_list(struct ahl_framestore *fs, ahl_framestore_list_cb cb, void *ctx,
                      struct ahl_err *err);
int ahl__frames3_reclaim(struct ahl_framestore *fs, const char *id, int64_t before_ms,
                         uint64_t *freed, struct ahl_err *err);

#endif /* AHL_BLOB_FRAMESTORE_INTERNAL_H */
