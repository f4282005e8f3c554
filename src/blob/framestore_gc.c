/* Listing and removing frame files for the collector (framestore.h, "collecting frames"). A
 * removal is a rename aside, a second look at the file's time and an unlink, so that a put
 * refreshing the frame's time between the collector's first look and its unlink is seen, and the
 * frame kept (docs/decisions.md#gc-grace). The directory is not fsynced after an unlink, which runs
 * inside the collector's write transaction: an unlink a crash undoes leaves a frame the next
 * collection removes. */
#define _GNU_SOURCE /* renameat2 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob/framestore.h"
#include "blob/framestore_internal.h"
#include "base/banned.h"

#define GC_PREFIX "gc."

static bool hex_name(const char *s, size_t n)
{
    return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

static int64_t mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

static int dir_fail(struct ahl_err *err, const char *what, const char *path)
{
    return ahl_fail(err, errno == ENOSPC ? AHL_ENOSPC : AHL_EIO, "%s %s: %s", what, path,
                    strerror(errno));
}

/* A "gc.<id>" left by a collector that stopped between its rename and its unlink: moved back
 * unless the frame was written again meanwhile (then the copy aside goes). */
static void restore(int dfd, const char *name)
{
    if (renameat2(dfd, name, dfd, name + strlen(GC_PREFIX), RENAME_NOREPLACE) != 0 &&
        errno == EEXIST)
        unlinkat(dfd, name, 0);
}

/* The frames of one leaf directory root/a/b. */
static int list_leaf(const char *path, const char *ab, ahl_framestore_list_cb cb, void *ctx,
                     struct ahl_err *err)
{
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP
                   ? 0
                   : dir_fail(err, "cannot open", path);
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return dir_fail(err, "cannot read", path);
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (!strncmp(e->d_name, GC_PREFIX, strlen(GC_PREFIX)) &&
            hex_name(e->d_name + strlen(GC_PREFIX), 32)) {
            restore(dirfd(d), e->d_name);
            continue;
        }
        struct stat st;
        if (!hex_name(e->d_name, 32) || memcmp(e->d_name, ab, 4) != 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        struct ahl_framestore_entry fe;
        memcpy(fe.id, e->d_name, 33);
        fe.size = (uint64_t)st.st_size;
        fe.mtime_ms = mtime_ms(&st);
        rc = cb(ctx, &fe);
    }
    closedir(d);
    return rc;
}

int ahl_framestore_list(struct ahl_framestore *fs, ahl_framestore_list_cb cb, void *ctx,
                        struct ahl_err *err)
{
    if (fs->s3)
        return ahl__frames3_list(fs, cb, ctx, err);
    DIR *top = opendir(fs->root);
    if (!top)
        return errno == ENOENT ? 0 : dir_fail(err, "cannot read", fs->root);
    int rc = 0;
    struct dirent *a;
    while (rc == 0 && (a = readdir(top))) {
        if (!hex_name(a->d_name, 2))
            continue;
        char mid[sizeof fs->root + 8];
        snprintf(mid, sizeof mid, "%s/%.2s", fs->root, a->d_name);
        DIR *md = opendir(mid);
        if (!md)
            continue;
        struct dirent *b;
        while (rc == 0 && (b = readdir(md))) {
            if (!hex_name(b->d_name, 2))
                continue;
            char leaf[sizeof mid + 8], ab[5];
            snprintf(leaf, sizeof leaf, "%s/%.2s", mid, b->d_name);
            snprintf(ab, sizeof ab, "%.2s%.2s", a->d_name, b->d_name);
            rc = list_leaf(leaf, ab, cb, ctx, err);
        }
        closedir(md);
    }
    closedir(top);
    return rc;
}

int ahl_framestore_reclaim(struct ahl_framestore *fs, const char *id, int64_t before_ms,
                           uint64_t *freed, struct ahl_err *err)
{
    char dir[sizeof fs->root + 16], aside[40];
    struct stat st;
    *freed = 0;
    if (!hex_name(id, 32))
        return ahl_fail(err, AHL_EINVAL, "frame id must be 32 lowercase hex digits");
    if (fs->s3)
        return ahl__frames3_reclaim(fs, id, before_ms, freed, err);
    snprintf(dir, sizeof dir, "%s/%.2s/%.2s", fs->root, id, id + 2);
    snprintf(aside, sizeof aside, GC_PREFIX "%s", id);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : dir_fail(err, "cannot open", dir);
    int rc = 0;
    if (fstatat(dfd, id, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
        mtime_ms(&st) >= before_ms)
        goto out;
    if (renameat(dfd, id, dfd, aside) != 0) {
        rc = errno == ENOENT ? 0 : dir_fail(err, "cannot move aside", id);
        goto out;
    }
    /* A put that touched the file before the rename shows here; one after it found no file and
     * wrote a new one. */
    if (fstatat(dfd, aside, &st, AT_SYMLINK_NOFOLLOW) != 0 || mtime_ms(&st) >= before_ms) {
        restore(dfd, aside);
        goto out;
    }
    if (unlinkat(dfd, aside, 0) != 0) {
        rc = dir_fail(err, "cannot remove", aside);
        restore(dfd, aside);
        goto out;
    }
    *freed = (uint64_t)st.st_size;
    rc = 1;
out:
    close(dfd);
    return rc;
}

int ahl_framestore_refresh(struct ahl_framestore *fs, const char *id, struct ahl_err *err)
{
    char path[sizeof fs->root + 64];
    if (fs->s3)
        return 0;
    if (!hex_name(id, 32))
        return ahl_fail(err, AHL_EINVAL, "frame id must be 32 lowercase hex digits");
    snprintf(path, sizeof path, "%s/%.2s/%.2s/%s", fs->root, id, id + 2, id);
    if (utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    if (errno == ENOENT)
        return ahl_fail(err, AHL_ENOTFOUND,
                        "frame %s was removed by the collector while the import waited to "
                        "commit; import the file again",
                        id);
    return dir_fail(err, "cannot touch", path);
}
