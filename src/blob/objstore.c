/* The object store's front: the key rules of local buckets, the checks every call makes, and
 * dispatch to the local or S3 backend (objstore_local.c, objstore_s3.c). */
#include "blob/objstore.h"

#include <string.h>

#include "base/fileio.h"
#include "blob/objstore_internal.h"
#include "base/banned.h"

int ahl_objstore_local_key_check(const char *key, int is_prefix, struct ahl_err *err)
{
    size_t n = strlen(key);
    if (n == 0 && !is_prefix)
        return ahl_fail(err, AHL_EDENIED, "an object key must not be empty");
    if (n > AHL_S3_MAX_KEY)
        return ahl_fail(err, AHL_EDENIED, "key '%.60s...' is longer than 1024 bytes", key);
    if (key[0] == '/')
        return ahl_fail(err, AHL_EDENIED,
                        "key '%.200s' is absolute; keys are paths inside their bucket", key);
    const char *p = key;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0)
            return ahl_fail(err, AHL_EDENIED, "key '%.200s' has an empty path segment ('//')", key);
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return ahl_fail(err, AHL_EDENIED,
                            "key '%.200s' has a '%.*s' segment, which would leave its place in "
                            "the bucket",
                            key, (int)len, p);
        if (!slash)
            break;
        p = slash + 1;
        if (!*p && !is_prefix)
            return ahl_fail(err, AHL_EDENIED,
                            "key '%.200s' ends in '/': that names a directory, not an object", key);
    }
    return 0;
}

int ahl_objstore_open_local(const char *root, struct ahl_objstore **out, struct ahl_err *err)
{
    return ahl__objstore_local_new(root, out, err);
}

int ahl_objstore_open_s3(const struct ahl_s3_config *cfg, struct ahl_objstore **out,
                         struct ahl_err *err)
{
    return ahl__objstore_s3_new(cfg, out, err);
}

void ahl_objstore_close(struct ahl_objstore *os)
{
    if (os)
        os->ops->close(os);
}

int ahl_objstore_list(struct ahl_objstore *os, const char *bucket, const char *prefix,
                      ahl_objstore_list_fn fn, void *ctx, struct ahl_err *err)
{
    int rc = ahl_s3_location_check(bucket, NULL, err);
    if (rc < 0)
        return rc;
    return os->ops->list(os, bucket, prefix ? prefix : "", fn, ctx, err);
}

int ahl_objstore_get(struct ahl_objstore *os, const char *bucket, const char *key,
                     ahl_objstore_write_fn fn, void *ctx, struct ahl_err *err)
{
    int rc = ahl_s3_location_check(bucket, key, err);
    if (rc < 0)
        return rc;
    return os->ops->get(os, bucket, key, fn, ctx, err);
}

static int write_to_fd(void *ctx, const void *p, size_t n)
{
    return ahl_write_all(*(int *)ctx, p, n);
}

int ahl_objstore_get_fd(struct ahl_objstore *os, const char *bucket, const char *key, int fd,
                        struct ahl_err *err)
{
    return ahl_objstore_get(os, bucket, key, write_to_fd, &fd, err);
}

int ahl_objstore_put(struct ahl_objstore *os, const char *bucket, const char *key, const void *data,
                     size_t n, const char *content_type, struct ahl_err *err)
{
    int rc = ahl_s3_location_check(bucket, key, err);
    if (rc < 0)
        return rc;
    return os->ops->put(os, bucket, key, data, n, content_type, err);
}
