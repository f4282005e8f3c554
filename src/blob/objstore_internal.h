/* Internal to the object store: the backend interface behind objstore.h and the constructors
 * of the two backends (objstore_local.c, objstore_s3.c). Not for use outside src/blob. */
#ifndef AHL_BLOB_OBJSTORE_INTERNAL_H
#define AHL_BLOB_OBJSTORE_INTERNAL_H

#include "blob/objstore.h"

/* Every backend implements these; objstore.c validates the bucket name before calling. */
struct ahl__objstore_ops {
    const char *name; /* "local" or "s3", for messages */
    int (*list)(struct ahl_objstore *os, const char *bucket, const char *prefix,
                ahl_objstore_list_fn fn, void *ctx, struct ahl_err *err);
    int (*get)(struct ahl_objstore *os, const char *bucket, const char *key,
               ahl_objstore_write_fn fn, void *ctx, struct ahl_err *err);
    int (*put)(struct ahl_objstore *os, const char *bucket, const char *key, const void *data,
               size_t n, const char *content_type, struct ahl_err *err);
    void (*close)(struct ahl_objstore *os);
};

/* The first member of every backend's handle. */
struct ahl_objstore {
    const struct ahl__objstore_ops *ops;
};

/* Pieces handed to the callback at most this large. */
#define AHL__OBJSTORE_CHUNK (64 * 1024)

int ahl__objstore_local_new(const char *root, struct ahl_objstore **out, struct ahl_err *err);
int ahl__objstore_s3_new(const struct ahl_s3_config *cfg, struct ahl_objstore **out,
                         struct ahl_err *err);

#endif /* AHL_BLOB_OBJSTORE_INTERNAL_H */
