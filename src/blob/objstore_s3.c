/* The S3 backend of the object store: the objstore operations on an aws/s3.h client, which does
 * the requests, the signing and the reading of replies. */
#include <stdlib.h>

#include "aws/s3.h"
#include "blob/objstore_internal.h"
#include "base/banned.h"

struct s3_store {
    struct ahl_objstore base;
    struct ahl_s3 *s3;
};

struct list_ctx {
    ahl_objstore_list_fn fn;
    void *ctx;
};

static int on_key(void *ctx, const char *key, uint64_t size)
{
    struct list_ctx *l = ctx;
    struct ahl_object_info info = {.key = key, .size = size, .problem = NULL};
    return l->fn(l->ctx, &info);
}

static int s3_list(struct ahl_objstore *os, const char *bucket, const char *prefix,
                   ahl_objstore_list_fn fn, void *ctx, struct ahl_err *err)
{
    struct list_ctx l = {fn, ctx};
    return ahl_s3_list(((struct s3_store *)os)->s3, bucket, prefix, on_key, &l, err);
}

static int s3_get(struct ahl_objstore *os, const char *bucket, const char *key,
                  ahl_objstore_write_fn fn, void *ctx, struct ahl_err *err)
{
    return ahl_s3_get(((struct s3_store *)os)->s3, bucket, key, fn, ctx, err);
}

static int s3_put(struct ahl_objstore *os, const char *bucket, const char *key, const void *data,
                  size_t n, const char *content_type, struct ahl_err *err)
{
    return ahl_s3_put(((struct s3_store *)os)->s3, bucket, key, data, n, content_type, err);
}

static void s3_close(struct ahl_objstore *os)
{
    ahl_s3_close(((struct s3_store *)os)->s3);
    free(os);
}

static const struct ahl__objstore_ops s3_ops = {
    .name = "s3",
    .list = s3_list,
    .get = s3_get,
    .put = s3_put,
    .close = s3_close,
};

int ahl__objstore_s3_new(const struct ahl_s3_config *cfg, struct ahl_objstore **out,
                         struct ahl_err *err)
{
    *out = NULL;
    struct s3_store *s = calloc(1, sizeof *s);
    if (!s)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    int rc = ahl_s3_open(cfg, &s->s3, err);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->base.ops = &s3_ops;
    *out = &s->base;
    return 0;
}
