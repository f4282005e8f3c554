/* Where import jobs read their input objects and write their outputs: one interface over
 *   (a) local buckets: a root directory (`--s3-root DIR`) in which bucket `b` is the directory
 *       `DIR/b` and a key is a relative path inside it (objstore_local.c), and
 *   (b) a real S3-compatible endpoint (`--s3-endpoint URL`) through the S3 client of aws/s3.h
 *       (objstore_s3.c adapts it; requests, signing and the reading of S3's XML are aws/'s).
 * objstore.c is the front: the checks every call makes, then dispatch to the backend
 * (objstore_internal.h). Input and output locations arrive as `s3://bucket/prefix/` URIs
 * (StartDICOMImportJob's inputS3Uri/outputS3Uri), parsed by ahl_s3_uri_parse of aws/s3.h, which
 * this header includes along with struct ahl_s3_config.
 *
 * The rest of src/blob: framestore.h, frame files named by content address. Both stores write a
 * file with base/fileio.h's ahl_write_file_atomic (temporary name, fsync, rename, fsync of the
 * directory).
 *
 * Local buckets never let a key or prefix escape its bucket: absolute keys, empty, "." and ".."
 * segments and NUL bytes are refused before any file system access, and symbolic links are
 * followed only when they resolve inside the bucket (checked with realpath, then opened with
 * O_NOFOLLOW component by component from the bucket's directory, so a link swapped in after the
 * check makes the open fail rather than escape).
 *
 * Calling sequence:
 *
 *     struct ahl_objstore *os;
 *     if (ahl_objstore_open_local("/srv/buckets", &os, &err) < 0) ...   // or _open_s3(&cfg,...)
 *     ahl_objstore_list(os, "bkt", "in/", on_object, ctx, &err);        // every key, paged
 *     ahl_objstore_get(os, "bkt", "in/a.dcm", on_bytes, ctx, &err);     // streamed, bounded memory
 *     ahl_objstore_put(os, "bkt", "out/x.ndjson", data, n, "application/x-ndjson", &err);
 *     ahl_objstore_close(os);
 *
 * A handle is used by one thread at a time (each import job opens its own). Errors are negative
 * AHL_E* codes with err telling what failed and where: AHL_ENOTFOUND for a missing bucket or key,
 * AHL_EDENIED for a refused key (escape attempt) or an HTTP 403, AHL_EIO for transport and file
 * system failures, AHL_ENOSPC for a full disk under a local bucket, AHL_EPARSE for a malformed
 * reply. S3 errors carry the HTTP status and S3's error Code and Message ("s3://bkt/: HTTP 404
 * NoSuchBucket: The specified bucket does not exist"). */
#ifndef AHL_BLOB_OBJSTORE_H
#define AHL_BLOB_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "aws/s3.h"
#include "base/err.h"

/* Checks that a key (or, with is_prefix, a listing prefix, which may be empty and end in '/')
 * stays inside its bucket on a file system: relative, no empty, "." or ".." segment, at most
 * AHL_S3_MAX_KEY bytes. 0 or AHL_EDENIED (err says why). */
int ahl_objstore_local_key_check(const char *key, int is_prefix, struct ahl_err *err);

/* ---- the store ---- */

struct ahl_objstore;

/* Opens the local bucket root dir (which must exist and be a directory). */
int ahl_objstore_open_local(const char *root, struct ahl_objstore **out, struct ahl_err *err);
/* Opens an S3 endpoint with ahl_s3_open: fails (AHL_EINVAL) on a URL that is not
 * http(s)://host[:port][/] or when no credentials are given or found in the environment. Nothing
 * is sent until the first call. */
int ahl_objstore_open_s3(const struct ahl_s3_config *cfg, struct ahl_objstore **out,
                         struct ahl_err *err);
/* Frees the handle; NULL is fine. */
void ahl_objstore_close(struct ahl_objstore *os);

struct ahl_object_info {
    const char *key; /* the full key ("in/a b.dcm"), decoded, NUL-terminated */
    uint64_t size;
    /* Local buckets only: non-NULL when the entry exists but cannot be imported (a symbolic link
     * out of the bucket, a special file). The listing goes on; the job records a failure. */
    const char *problem;
};

/* Receives one object. Return 0 to go on, anything else to stop the listing (which then
 * returns that value). The pointers are valid during the call only. */
typedef int (*ahl_objstore_list_fn)(void *ctx, const struct ahl_object_info *obj);

/* Lists every object whose key starts with prefix ("" for all), following S3 paging (continuation
 * tokens, 1000 keys a page) until the end. Keys come in S3's order (byte-wise ascending) from S3;
 * from local buckets sorted within each directory. */
int ahl_objstore_list(struct ahl_objstore *os, const char *bucket, const char *prefix,
                      ahl_objstore_list_fn fn, void *ctx, struct ahl_err *err);

/* Receives the next bytes of an object. Return 0 to go on; anything else aborts the transfer and
 * ahl_objstore_get returns that value (if negative) or AHL_EIO. */
typedef int (*ahl_objstore_write_fn)(void *ctx, const void *p, size_t n);

/* Streams one object to fn, in pieces of at most 64 KiB; memory use does not depend on the size
 * of the object. If the transfer fails midway fn may have seen part of the object. */
int ahl_objstore_get(struct ahl_objstore *os, const char *bucket, const char *key,
                     ahl_objstore_write_fn fn, void *ctx, struct ahl_err *err);

/* Streams one object into an open file descriptor (written from its current offset). */
int ahl_objstore_get_fd(struct ahl_objstore *os, const char *bucket, const char *key, int fd,
                        struct ahl_err *err);

/* Stores n bytes as the object bucket/key, replacing any. Locally the file is written to a
 * temporary name, fsync'ed and renamed, and missing directories are created. content_type may be
 * NULL. */
int ahl_objstore_put(struct ahl_objstore *os, const char *bucket, const char *key, const void *data,
                     size_t n, const char *content_type, struct ahl_err *err);

#endif /* AHL_BLOB_OBJSTORE_H */
