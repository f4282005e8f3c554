/* Local buckets: bucket `b` is the directory ROOT/b and a key is a relative path inside it.
 *
 * The one rule that matters here is that nothing escapes its bucket. Keys are checked as text
 * first (ahl_objstore_local_key_check). A symbolic link is then honoured only if realpath() puts
 * its target inside the bucket's real directory, and the file is opened through that resolved
 * path one component at a time from the bucket's directory with O_NOFOLLOW, so a link that
 * appears between the check and the open makes the open fail instead of escaping. Listings do
 * not descend into linked directories (no cycles) and report links that leave the bucket as
 * entries with a problem, so a job can record them as failures. Writes go through
 * ahl_write_file_atomic (base/fileio.h) into the key's directory, opened without following links;
 * its temporary files (TMP_PREFIX) are left out of listings. */
/* realpath() is an X/Open function, outside plain POSIX.1-2008. */
#define _XOPEN_SOURCE 700

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/fileio.h"
#include "blob/objstore_internal.h"
#include "base/banned.h"

#define MAX_DEPTH 128
#define MAX_DIR_ENTRIES 200000
#define TMP_PREFIX ".ahl-tmp-"

struct local_store {
    struct ahl_objstore base;
    char root[PATH_MAX]; /* real path, no trailing '/' */
};

/* Whether path is dir itself or lies below it (both real paths). */
static int is_within(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/' || n == 1);
}

/* Resolves ROOT/bucket into real (inside the root) and opens it. Messages name s3://bucket/key
 * only, never a server path: they reach job messages and failure.ndjson. */
static int open_bucket(struct local_store *ls, const char *bucket, char real[PATH_MAX], int *fd,
                       struct ahl_err *err)
{
    char path[PATH_MAX + AHL_S3_MAX_BUCKET + 2];
    snprintf(path, sizeof path, "%s/%s", ls->root, bucket);
    if (!realpath(path, real)) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ahl_fail(err, AHL_ENOTFOUND, "s3://%s/: NoSuchBucket: the bucket does not exist",
                            bucket);
        return ahl_fail(err, AHL_EIO, "s3://%s/: cannot resolve the bucket: %s", bucket,
                        strerror(errno));
    }
    if (!is_within(real, ls->root) || strcmp(real, ls->root) == 0)
        return ahl_fail(err, AHL_EDENIED,
                        "s3://%s/: refused: the bucket directory resolves outside the bucket root",
                        bucket);
    *fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*fd < 0)
        return ahl_fail(err, errno == ENOTDIR ? AHL_ENOTFOUND : AHL_EIO,
                        "s3://%s/: cannot open the bucket: %s", bucket, strerror(errno));
    return 0;
}

/* Opens rel (a '/'-separated path without links, as realpath produced it) below dirfd, refusing
 * any symbolic link on the way. want_dir picks O_DIRECTORY for the last component. */
static int open_beneath(int dirfd, const char *rel, int want_dir)
{
    char comp[NAME_MAX + 1];
    int fd = dup(dirfd);
    if (fd < 0)
        return -1;
    const char *p = rel;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len > NAME_MAX) {
            close(fd);
            errno = EINVAL;
            return -1;
        }
        memcpy(comp, p, len);
        comp[len] = '\0';
        int last = slash == NULL || slash[1] == '\0';
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (!last || want_dir ? O_DIRECTORY : 0);
        int next = openat(fd, comp, flags);
        int saved = errno;
        close(fd);
        if (next < 0) {
            errno = saved;
            return -1;
        }
        fd = next;
        if (last)
            break;
        p = slash + 1;
    }
    return fd;
}

/* Resolves bucket_real/key and opens it if it stays inside the bucket. */
static int open_key(const char *bucket, const char *bucket_real, int bucket_fd, const char *key,
                    int want_dir, int *fd, struct ahl_err *err)
{
    char path[PATH_MAX + AHL_S3_MAX_KEY + 2], real[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", bucket_real, key);
    if (!realpath(path, real)) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ahl_fail(err, AHL_ENOTFOUND, "s3://%s/%s: NoSuchKey: the object does not exist",
                            bucket, key);
        return ahl_fail(err, AHL_EIO, "s3://%s/%s: cannot resolve the key: %s", bucket, key,
                        strerror(errno));
    }
    if (!is_within(real, bucket_real) || strcmp(real, bucket_real) == 0)
        return ahl_fail(err, AHL_EDENIED,
                        "s3://%s/%s: refused: a symbolic link leads outside the bucket", bucket,
                        key);
    *fd = open_beneath(bucket_fd, real + strlen(bucket_real) + 1, want_dir);
    if (*fd < 0) {
        int e = errno;
        if (e == ELOOP || e == ENOTDIR)
            return ahl_fail(err, AHL_EDENIED,
                            "s3://%s/%s: refused: the path changed into a symbolic link while it "
                            "was being opened",
                            bucket, key);
        return ahl_fail(err, e == ENOENT ? AHL_ENOTFOUND : AHL_EIO,
                        "s3://%s/%s: cannot open the object: %s", bucket, key, strerror(e));
    }
    return 0;
}

/* ---- listing ---- */

struct walk {
    const char *bucket, *bucket_real, *prefix;
    size_t prefix_len;
    ahl_objstore_list_fn fn;
    void *ctx;
    struct ahl_err *err;
    struct ahl_buf key; /* the key of the directory being walked, "" or "a/b/" */
};

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether anything below the directory key dir_key ("a/b/") can match the prefix. */
static int dir_may_match(const struct walk *w, const char *dir_key, size_t n)
{
    size_t m = n < w->prefix_len ? n : w->prefix_len;
    return strncmp(dir_key, w->prefix, m) == 0;
}

static int emit(struct walk *w, const char *key, uint64_t size, const char *problem)
{
    if (strncmp(key, w->prefix, w->prefix_len) != 0)
        return 0;
    struct ahl_object_info info = {.key = key, .size = size, .problem = problem};
    return w->fn(w->ctx, &info);
}

static int walk_dir(struct walk *w, int dirfd, int depth)
{
    if (depth > MAX_DEPTH) {
        close(dirfd);
        return ahl_fail(w->err, AHL_ETOOBIG, "s3://%s/%s: directories nest deeper than %d levels",
                        w->bucket, w->key.data, MAX_DEPTH);
    }
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return ahl_fail(w->err, AHL_EIO, "s3://%s/%s: cannot read: %s", w->bucket, w->key.data,
                        strerror(errno));
    }
    /* Names of directories get a trailing '/' so that sorting them gives S3's key order. */
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0 ||
            strncmp(nm, TMP_PREFIX, sizeof TMP_PREFIX - 1) == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* vanished meanwhile */
        if (n == cap) {
            if (cap >= MAX_DIR_ENTRIES) {
                rc = ahl_fail(w->err, AHL_ETOOBIG,
                              "s3://%s/%s: more than %d entries in one directory", w->bucket,
                              w->key.data, MAX_DIR_ENTRIES);
                goto out;
            }
            size_t ncap = cap ? cap * 2 : 64;
            char **p = realloc(names, ncap * sizeof *p);
            if (!p) {
                rc = ahl_fail(w->err, AHL_ENOMEM, "out of memory listing a directory");
                goto out;
            }
            names = p, cap = ncap;
        }
        size_t len = strlen(nm);
        char *copy = malloc(len + 2);
        if (!copy) {
            rc = ahl_fail(w->err, AHL_ENOMEM, "out of memory listing a directory");
            goto out;
        }
        memcpy(copy, nm, len);
        copy[len] = S_ISDIR(st.st_mode) ? '/' : '\0';
        copy[len + 1] = '\0';
        names[n++] = copy;
        errno = 0;
    }
    if (errno) {
        rc = ahl_fail(w->err, AHL_EIO, "s3://%s/%s: cannot read: %s", w->bucket, w->key.data,
                      strerror(errno));
        goto out;
    }
    qsort(names, n, sizeof *names, name_cmp);

    size_t base = w->key.len;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *nm = names[i];
        size_t len = strlen(nm);
        int is_dir = nm[len - 1] == '/';
        ahl_buf_truncate(&w->key, base);
        if ((rc = ahl_buf_add(&w->key, nm, len)) < 0) {
            rc = ahl_fail(w->err, rc, "s3://%s/%s%s: key is too long", w->bucket, w->key.data, nm);
            break;
        }
        if (is_dir) {
            if (!dir_may_match(w, w->key.data, w->key.len))
                continue;
            nm[len - 1] = '\0';
            int sub = openat(dirfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                rc = emit(w, w->key.data, 0, "the directory cannot be opened");
                continue;
            }
            rc = walk_dir(w, sub, depth + 1);
            continue;
        }
        struct stat st;
        if (fstatat(dirfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISREG(st.st_mode)) {
            rc = emit(w, w->key.data, (uint64_t)st.st_size, NULL);
        } else if (S_ISLNK(st.st_mode)) {
            char path[PATH_MAX + AHL_S3_MAX_KEY + 2], real[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", w->bucket_real, w->key.data);
            struct stat target;
            if (!realpath(path, real) || stat(real, &target) < 0)
                rc = emit(w, w->key.data, 0, "a symbolic link whose target does not exist");
            else if (!is_within(real, w->bucket_real))
                rc = emit(w, w->key.data, 0,
                          "a symbolic link that resolves outside its bucket; refused");
            else if (S_ISREG(target.st_mode))
                rc = emit(w, w->key.data, (uint64_t)target.st_size, NULL);
            else if (S_ISDIR(target.st_mode))
                rc = emit(w, w->key.data, 0,
                          "a symbolic link to a directory; linked directories are not followed");
            else
                rc = emit(w, w->key.data, 0, "not a regular file");
        } else {
            rc = emit(w, w->key.data, 0, "not a regular file");
        }
    }
    ahl_buf_truncate(&w->key, base);
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

static int local_list(struct ahl_objstore *os, const char *bucket, const char *prefix,
                      ahl_objstore_list_fn fn, void *ctx, struct ahl_err *err)
{
    struct local_store *ls = (struct local_store *)os;
    char real[PATH_MAX];
    int bfd = -1, dfd = -1, rc;
    struct walk w = {.bucket = bucket,
                     .bucket_real = real,
                     .prefix = prefix,
                     .prefix_len = strlen(prefix),
                     .fn = fn,
                     .ctx = ctx,
                     .err = err};
    ahl_buf_init(&w.key, AHL_S3_MAX_KEY + NAME_MAX + 2);
    if ((rc = ahl_objstore_local_key_check(prefix, 1, err)) < 0)
        goto out;
    if ((rc = open_bucket(ls, bucket, real, &bfd, err)) < 0)
        goto out;
    /* Start at the deepest directory the prefix names ("in/sub/x" starts in in/sub/). */
    const char *last = strrchr(prefix, '/');
    if (last) {
        char dir[AHL_S3_MAX_KEY + 1];
        size_t dlen = (size_t)(last - prefix);
        memcpy(dir, prefix, dlen);
        dir[dlen] = '\0';
        rc = open_key(bucket, real, bfd, dir, 1, &dfd, err);
        if (rc == AHL_ENOTFOUND) {
            rc = 0; /* nothing under this prefix: an empty listing, as S3 gives */
            goto out;
        }
        if (rc < 0)
            goto out;
        if ((rc = ahl_buf_add(&w.key, prefix, dlen + 1)) < 0)
            goto out;
    } else {
        dfd = dup(bfd);
        if (dfd < 0) {
            rc = ahl_fail(err, AHL_EIO, "dup: %s", strerror(errno));
            goto out;
        }
    }
    rc = walk_dir(&w, dfd, 0);
    dfd = -1; /* walk_dir owns it */
out:
    if (bfd >= 0)
        close(bfd);
    if (dfd >= 0)
        close(dfd);
    ahl_buf_release(&w.key);
    return rc;
}

static int local_get(struct ahl_objstore *os, const char *bucket, const char *key,
                     ahl_objstore_write_fn fn, void *ctx, struct ahl_err *err)
{
    struct local_store *ls = (struct local_store *)os;
    char real[PATH_MAX];
    int bfd = -1, fd = -1, rc;
    char *chunk = NULL;
    if ((rc = ahl_objstore_local_key_check(key, 0, err)) < 0 ||
        (rc = open_bucket(ls, bucket, real, &bfd, err)) < 0 ||
        (rc = open_key(bucket, real, bfd, key, 0, &fd, err)) < 0)
        goto out;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = ahl_fail(err, AHL_ENOTFOUND, "s3://%s/%s: NoSuchKey: not a regular file", bucket, key);
        goto out;
    }
    chunk = malloc(AHL__OBJSTORE_CHUNK);
    if (!chunk) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, chunk, AHL__OBJSTORE_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc =
                ahl_fail(err, AHL_EIO, "s3://%s/%s: read failed: %s", bucket, key, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        int frc = fn(ctx, chunk, (size_t)r);
        if (frc != 0) {
            rc = ahl_fail(err, frc < 0 ? frc : AHL_EIO,
                          "s3://%s/%s: the receiver of the object stopped the transfer (%s)",
                          bucket, key, ahl_strerror(frc < 0 ? frc : AHL_EIO));
            goto out;
        }
    }
    rc = 0;
out:
    free(chunk);
    if (fd >= 0)
        close(fd);
    if (bfd >= 0)
        close(bfd);
    return rc;
}

static int local_put(struct ahl_objstore *os, const char *bucket, const char *key, const void *data,
                     size_t n, const char *content_type, struct ahl_err *err)
{
    (void)content_type;
    struct local_store *ls = (struct local_store *)os;
    char real[PATH_MAX], comp[NAME_MAX + 1];
    int bfd = -1, dfd = -1, rc;
    if ((rc = ahl_objstore_local_key_check(key, 0, err)) < 0 ||
        (rc = open_bucket(ls, bucket, real, &bfd, err)) < 0)
        goto out;
    /* Walk (creating) the directories of the key without following any link. */
    if ((dfd = dup(bfd)) < 0) {
        rc = ahl_fail(err, AHL_EIO, "dup: %s", strerror(errno));
        goto out;
    }
    const char *p = key;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len > NAME_MAX) {
            rc = ahl_fail(err, AHL_EINVAL, "s3://%s/%s: a path segment is longer than %d bytes",
                          bucket, key, NAME_MAX);
            goto out;
        }
        memcpy(comp, p, len);
        comp[len] = '\0';
        if (!slash)
            break;
        if (mkdirat(dfd, comp, 0755) < 0 && errno != EEXIST) {
            rc = ahl_fail(err, AHL_EIO, "s3://%s/%s: cannot create %s: %s", bucket, key, comp,
                          strerror(errno));
            goto out;
        }
        int next = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            int e = errno;
            rc = ahl_fail(err, e == ELOOP || e == ENOTDIR ? AHL_EDENIED : AHL_EIO,
                          "s3://%s/%s: '%s' is %s; objects are never written through links", bucket,
                          key, comp,
                          e == ELOOP || e == ENOTDIR ? "a symbolic link or a file" : strerror(e));
            goto out;
        }
        close(dfd);
        dfd = next;
        p = slash + 1;
    }
    /* rename replaces a link at the final name itself, never its target. */
    struct ahl_write_failure why;
    if ((rc = ahl_write_file_atomic(dfd, comp, TMP_PREFIX, 0644, data, n, &why)) < 0) {
        rc = ahl_fail(err, rc, "s3://%s/%s: cannot %s: %s", bucket, key, why.step,
                      strerror(why.errnum));
        goto out;
    }
    rc = 0;
out:
    if (dfd >= 0)
        close(dfd);
    if (bfd >= 0)
        close(bfd);
    return rc;
}

static void local_close(struct ahl_objstore *os)
{
    free(os);
}

static const struct ahl__objstore_ops local_ops = {
    .name = "local",
    .list = local_list,
    .get = local_get,
    .put = local_put,
    .close = local_close,
};

int ahl__objstore_local_new(const char *root, struct ahl_objstore **out, struct ahl_err *err)
{
    *out = NULL;
    struct local_store *ls = calloc(1, sizeof *ls);
    if (!ls)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    struct stat st;
    errno = 0;
    if (!realpath(root, ls->root) || stat(ls->root, &st) < 0 || !S_ISDIR(st.st_mode)) {
        int e = errno ? errno : ENOTDIR;
        free(ls);
        return ahl_fail(err, AHL_EINVAL, "the S3 root '%s' is not a directory: %s", root,
                        strerror(e));
    }
    ls->base.ops = &local_ops;
    *out = &ls->base;
    return 0;
}
