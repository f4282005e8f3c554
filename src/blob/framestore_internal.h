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

#endif /* AHL_BLOB_FRAMESTORE_INTERNAL_H */
