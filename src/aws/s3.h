/* An S3 client, and s3:// URIs.
 *
 * What is where in src/aws:
 *   s3.h / s3.c   this client: ListObjectsV2 (paged), GetObject (streamed), HeadObject, PutObject
 *                 and DeleteObject against an S3-compatible endpoint, path-style URLs
 * (`http://host:port/bucket/key`), one libcurl handle per client, requests signed with sigv4.h;
 *   s3uri.c       s3://bucket/prefix URIs and S3's bucket naming rules (declared below);
 *   s3xml.h/.c    the reader of S3's XML replies (error bodies, ListObjectsV2 pages), pure
 *                 functions over bytes;
 *   sigv4.h/.c    AWS Signature Version 4, for this client and for the server's verifier.
 * The client knows nothing of the object store above it (blob/objstore.h puts it behind the same
 * interface as local buckets).
 *
 * Calling sequence:
 *
 *     struct ahl_s3_config cfg = {.endpoint = "http://127.0.0.1:9000"};  // keys from the env
 *     struct ahl_s3 *s3;
 *     if (ahl_s3_open(&cfg, &s3, &err) < 0) ...
 *     ahl_s3_list(s3, "bkt", "in/", on_key, ctx, &err);           // every key, all pages
 *     ahl_s3_get(s3, "bkt", "in/a.dcm", on_bytes, ctx, &err);     // streamed, bounded memory
 *     ahl_s3_put(s3, "bkt", "out/x.ndjson", data, n, "application/x-ndjson", &err);
 *     ahl_s3_close(s3);
 *
 * Every call checks the bucket and key first (ahl_s3_location_check), so nothing S3 would refuse
 * or that would change the request's path reaches the URL. A client is used by one thread at a
 * time. Errors are negative AHL_E* codes with err saying what
 * failed and where ("s3://bkt/key: ..."): a non-2xx reply carries the HTTP status and S3's error
 * Code and Message ("s3://bkt/: HTTP 404 NoSuchBucket: The specified bucket does not exist") and
 * maps 404 to AHL_ENOTFOUND, 403 to AHL_EDENIED, 400 to AHL_EINVAL, anything else to AHL_EIO;
 * transport failures are AHL_EIO, a malformed reply AHL_EPARSE. */
#ifndef AHL_AWS_S3_H
#define AHL_AWS_S3_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define AHL_S3_MAX_BUCKET 63
#define AHL_S3_MAX_KEY 1024

/* ---- s3://bucket/prefix URIs (s3uri.c) ---- */

struct ahl_s3_uri {
    char bucket[AHL_S3_MAX_BUCKET + 1];
    char prefix[AHL_S3_MAX_KEY + 1]; /* "" for the whole bucket; as written, e.g. "in/" */
};

/* Parses "s3://bucket[/prefix]". The bucket must follow S3's naming rules (3-63 characters of
 * a-z 0-9 . -, starting and ending with a letter or digit, no "..", not an IP address); the prefix
 * is at most 1024 bytes of valid UTF-8 without control characters. AHL_EPARSE with err saying
 * what is wrong. */
int ahl_s3_uri_parse(const char *uri, struct ahl_s3_uri *out, struct ahl_err *err);

/* Checks a bucket name against S3's rules. 0 or AHL_EPARSE (err says why). */
int ahl_s3_bucket_check(const char *bucket, struct ahl_err *err);

/* The check every request makes before anything is sent: ahl_s3_bucket_check, and with key not
 * NULL a key of 1 to AHL_S3_MAX_KEY bytes (else AHL_EINVAL). */
int ahl_s3_location_check(const char *bucket, const char *key, struct ahl_err *err);

/* ---- the client ---- */

struct ahl_s3;

struct ahl_s3_config {
    const char *endpoint;      /* "http://127.0.0.1:9000" (path-style; a trailing '/' is fine) */
    const char *region;        /* NULL: $AWS_REGION, $AWS_DEFAULT_REGION, else "us-east-1" */
    const char *access_key;    /* NULL: $AWS_ACCESS_KEY_ID */
    const char *secret_key;    /* NULL: $AWS_SECRET_ACCESS_KEY */
    const char *session_token; /* NULL: $AWS_SESSION_TOKEN (may be unset) */
    long timeout_s;            /* a request that moves no data this long fails; 0 means 60 */
    /* An account id (12 digits) sent, signed, as x-amz-expected-bucket-owner on every request,
     * so that S3 refuses (HTTP 403) a bucket another account owns; NULL or "": not sent. Endpoints
     * that ignore the header (moto) then check nothing. */
    const char *expected_owner;
};

/* Opens a client. Fails (AHL_EINVAL) on a URL that is not http(s)://host[:port][/] or when no
 * credentials are given or found in the environment. Nothing is sent until the first call. */
int ahl_s3_open(const struct ahl_s3_config *cfg, struct ahl_s3 **out, struct ahl_err *err);
/* Frees the client (and wipes its secret); NULL is fine. */
void ahl_s3_close(struct ahl_s3 *s3);

/* Receives one listed key (decoded, NUL-terminated, 1 to AHL_S3_MAX_KEY bytes, valid during the
 * call only) and its size. Return 0 to go on, anything else to stop the listing, which then
 * returns that value. */
typedef int (*ahl_s3_key_fn)(void *ctx, const char *key, uint64_t size);

/* Lists every key of bucket that starts with prefix (NULL or "" for all), in S3's order (byte-wise
 * ascending), following continuation tokens (1000 keys a page) to the end. A truncated page
 * without a new NextContinuationToken is AHL_EPARSE rather than a loop. */
int ahl_s3_list(struct ahl_s3 *s3, const char *bucket, const char *prefix, ahl_s3_key_fn fn,
                void *ctx, struct ahl_err *err);
/* A listed key, its size and its LastModified in ms since 1970 (-1 when the listing has none). */
typedef int (*ahl_s3_entry_fn)(void *ctx, const char *key, uint64_t size, int64_t mtime_ms);
/* ahl_s3_list with each key's LastModified. */
int ahl_s3_list_timed(struct ahl_s3 *s3, const char *bucket, const char *prefix,
                      ahl_s3_entry_fn fn, void *ctx, struct ahl_err *err);

/* Receives the next bytes of an object. Return 0 to go on; anything else aborts the transfer and
 * ahl_s3_get returns that value (if negative) or AHL_EIO. */
typedef int (*ahl_s3_write_fn)(void *ctx, const void *p, size_t n);

/* Streams one object to fn, in pieces of at most 64 KiB; memory use does not depend on the size
 * of the object. If the transfer fails midway fn may have seen part of the object; an error
 * reply's body is never handed to fn. */
int ahl_s3_get(struct ahl_s3 *s3, const char *bucket, const char *key, ahl_s3_write_fn fn,
               void *ctx, struct ahl_err *err);

/* Receives an object's size (its Content-Length; UINT64_MAX when the reply has none) before its
 * first byte. Return 0 to go on; anything else aborts as an ahl_s3_write_fn's would. */
typedef int (*ahl_s3_size_fn)(void *ctx, uint64_t size);

/* ahl_s3_get, telling size_fn (may be NULL) the object's size first, also for an empty object:
 * a receiver can refuse an object too large before any of it arrives, or size a buffer. */
int ahl_s3_get_sized(struct ahl_s3 *s3, const char *bucket, const char *key, ahl_s3_size_fn size_fn,
                     ahl_s3_write_fn fn, void *ctx, struct ahl_err *err);

/* HeadObject: 0 with *size when the object exists, AHL_ENOTFOUND when not (a HEAD reply has no
 * body, so no S3 Code in err), other errors as above. */
int ahl_s3_head(struct ahl_s3 *s3, const char *bucket, const char *key, uint64_t *size,
                struct ahl_err *err);
/* ahl_s3_head, also giving the reply's Last-Modified in ms since 1970 (whole seconds, as HTTP
 * dates are; -1 when the reply has none). */
int ahl_s3_head_timed(struct ahl_s3 *s3, const char *bucket, const char *key, uint64_t *size,
                      int64_t *mtime_ms, struct ahl_err *err);

/* DeleteObject. S3 answers success whether or not the object existed. */
int ahl_s3_delete(struct ahl_s3 *s3, const char *bucket, const char *key, struct ahl_err *err);

/* Stores n bytes as the object bucket/key, replacing any. content_type NULL means
 * application/octet-stream. */
int ahl_s3_put(struct ahl_s3 *s3, const char *bucket, const char *key, const void *data, size_t n,
               const char *content_type, struct ahl_err *err);

#endif /* AHL_AWS_S3_H */
