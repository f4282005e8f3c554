/* The filesystem frame store: one file per frame under root/<2 hex>/<2 hex>/<id>. Writes go to a
 * temporary file in the final directory, are fsynced, renamed into place and the directory is
 * fsynced, so a reader sees either no frame or the whole frame, and a put that returned 0
 * survives a crash (kill -9 or power loss). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/codec.h"
#include "frames/frames.h"
#include "frames/frames_internal.h"

#include "base/banned.h"

static bool valid_id(const char *id)
{
    if (!id)
        return false;
    for (int i = 0; i < 32; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return id[32] == '\0';
}

static int io_fail(struct ahl_err *err, const char *what, const char *path)
{
    int e = errno;
    return ahl_fail(err, e == ENOENT ? AHL_ENOTFOUND : AHL_EIO, NULL, "%s %s: %s", what, path,
                    strerror(e));
}

/* mkdir that accepts an existing directory. */
static int ensure_dir(const char *path, struct ahl_err *err)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    return io_fail(err, "cannot create directory", path);
}

static int fsync_dir(const char *path, struct ahl_err *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return io_fail(err, "cannot open directory", path);
    int rc = fsync(fd) == 0 ? 0 : io_fail(err, "cannot fsync directory", path);
    close(fd);
    return rc;
}

static void frame_dir(const struct ahl_framestore *fs, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%.2s/%.2s", fs->root, id, id + 2);
}

static void frame_path(const struct ahl_framestore *fs, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%.2s/%.2s/%s", fs->root, id, id + 2, id);
}

/* Removes tmp.* files a crash left behind, in the two levels of fan-out directories. Only files
 * not modified for AHL_FRAMESTORE_TMP_MAX_AGE seconds go: another process (a server, or an
 * `ahilite import` next to it) may be writing into the same store right now, and its temporary
 * file is live until it is renamed. A write in progress touches its file continually. */
static void sweep_temporaries(const char *dir, int depth, time_t now)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096 + 300];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (depth < 2 && strlen(e->d_name) == 2)
            sweep_temporaries(path, depth + 1, now);
        else if (depth == 2 && strncmp(e->d_name, "tmp.", 4) == 0 && lstat(path, &st) == 0 &&
                 S_ISREG(st.st_mode) && now - st.st_mtime >= AHL_FRAMESTORE_TMP_MAX_AGE)
            unlink(path);
    }
    closedir(d);
}

int ahl_framestore_open(struct ahl_framestore *fs, const char *root, struct ahl_err *err)
{
    size_t n = root ? strlen(root) : 0;
    if (n == 0 || n >= sizeof fs->root - 64)
        return ahl_fail(err, AHL_EINVAL, NULL, "frame store root must be 1..%zu characters",
                        sizeof fs->root - 65);
    memcpy(fs->root, root, n + 1);
    while (n > 1 && fs->root[n - 1] == '/')
        fs->root[--n] = '\0';
    /* Create the root and its parents. */
    char path[sizeof fs->root];
    memcpy(path, fs->root, n + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            int rc = ensure_dir(path, err);
            *p = '/';
            if (rc < 0)
                return rc;
        }
    }
    int rc = ensure_dir(path, err);
    if (rc < 0)
        return rc;
    sweep_temporaries(fs->root, 0, time(NULL));
    return 0;
}

int ahl_framestore_exists(struct ahl_framestore *fs, const char *id)
{
    if (!valid_id(id))
        return AHL_EINVAL;
    char path[sizeof fs->root + 64];
    frame_path(fs, id, path, sizeof path);
    struct stat st;
    if (stat(path, &st) == 0)
        return 1;
    return errno == ENOENT ? 0 : AHL_EIO;
}

int ahl_framestore_put(struct ahl_framestore *fs, const char *id, const void *data, size_t len,
                       struct ahl_err *err)
{
    if (!valid_id(id))
        return ahl_fail(err, AHL_EINVAL, NULL, "frame id must be 32 lowercase hex digits");
    char dir[sizeof fs->root + 16], path[sizeof fs->root + 64], tmp[sizeof fs->root + 80];
    int rc = ahl_framestore_exists(fs, id);
    if (rc == 1)
        return 0; /* content-addressed: the same id is the same bytes */
    if (rc < 0)
        return ahl_fail(err, rc, NULL, "cannot check frame %s", id);
    snprintf(dir, sizeof dir, "%s/%.2s", fs->root, id);
    if ((rc = ensure_dir(dir, err)) < 0)
        return rc;
    frame_dir(fs, id, dir, sizeof dir);
    if ((rc = ensure_dir(dir, err)) < 0)
        return rc;
    frame_path(fs, id, path, sizeof path);
    char rnd[33];
    if (ahl_random_id(rnd) < 0)
        return ahl_fail(err, AHL_EIO, NULL, "no randomness for a temporary name");
    snprintf(tmp, sizeof tmp, "%s/tmp.%s", dir, rnd);

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_fail(err, "cannot create", tmp);
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = io_fail(err, "cannot write", tmp);
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        rc = io_fail(err, "cannot fsync", tmp);
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = io_fail(err, "cannot close", tmp);
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = io_fail(err, "cannot rename into place", path);
        goto fail;
    }
    return fsync_dir(dir, err);
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

int ahl_framestore_open_frame(struct ahl_framestore *fs, const char *id, int *fd, uint64_t *size,
                              struct ahl_err *err)
{
    *fd = -1;
    *size = 0;
    if (!valid_id(id))
        return ahl_fail(err, AHL_EINVAL, AHL_AWS_VALIDATION,
                        "frame id must be 32 lowercase hex digits");
    char path[sizeof fs->root + 64];
    frame_path(fs, id, path, sizeof path);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        if (errno == ENOENT)
            return ahl_fail(err, AHL_ENOTFOUND, AHL_AWS_NOT_FOUND, "image frame %s not found", id);
        return io_fail(err, "cannot open", path);
    }
    struct stat st;
    if (fstat(f, &st) != 0) {
        int rc = io_fail(err, "cannot stat", path);
        close(f);
        return rc;
    }
    *fd = f;
    *size = (uint64_t)st.st_size;
    return 0;
}

int ahl_framestore_get(struct ahl_framestore *fs, const char *id, uint8_t **data, size_t *len,
                       struct ahl_err *err)
{
    *data = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    int rc = ahl_framestore_open_frame(fs, id, &fd, &size, err);
    if (rc < 0)
        return rc;
    if (size > AHL_FRAME_MAX_BYTES) {
        close(fd);
        return ahl_fail(err, AHL_ETOOBIG, NULL, "frame %s is %llu bytes, over the limit", id,
                        (unsigned long long)size);
    }
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return ahl_fail(err, AHL_ENOMEM, NULL, "out of memory for frame %s", id);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r == 0 ? ahl_fail(err, AHL_ECORRUPT, NULL, "frame %s is shorter than its size", id)
                        : ahl_fail(err, AHL_EIO, NULL, "cannot read frame %s: %s", id,
                                   strerror(errno));
            free(buf);
            close(fd);
            return rc;
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *len = size;
    return 0;
}

int ahl_framestore_delete(struct ahl_framestore *fs, const char *id, struct ahl_err *err)
{
    if (!valid_id(id))
        return ahl_fail(err, AHL_EINVAL, NULL, "frame id must be 32 lowercase hex digits");
    char dir[sizeof fs->root + 16], path[sizeof fs->root + 64];
    frame_dir(fs, id, dir, sizeof dir);
    frame_path(fs, id, path, sizeof path);
    if (unlink(path) != 0) {
        if (errno == ENOENT)
            return ahl_fail(err, AHL_ENOTFOUND, AHL_AWS_NOT_FOUND, "image frame %s not found", id);
        return io_fail(err, "cannot delete", path);
    }
    return fsync_dir(dir, err);
}
