/* File-descriptor helpers (fileio.h). */
#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "base/codec.h"
#include "base/err.h"
#include "base/banned.h"

int ahl_pread_all(int fd, void *p, size_t n, off_t off, size_t *got)
{
    char *c = p;
    size_t done = 0;
    int rc = 0;
    while (done < n) {
        ssize_t r = pread(fd, c + done, n - done, off + (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? AHL_EIO : AHL_EPARSE;
            break;
        }
        done += (size_t)r;
    }
    if (got)
        *got = done;
    return rc;
}

int ahl_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return AHL_EIO;
        if (w == 0) {
            errno = EIO;
            return AHL_EIO;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Records a failed step with the errno it left and returns the code for it. */
static int failed(struct ahl_write_failure *why, const char *step, const char *entry, int e)
{
    if (why) {
        why->step = step;
        snprintf(why->entry, sizeof why->entry, "%s", entry);
        why->errnum = e;
    }
    return e == ENOSPC || e == EDQUOT ? AHL_ENOSPC : AHL_EIO;
}

/* ahl_write_file_atomic, with the two fsyncs only when durable. */
static int write_file(int dirfd, const char *name, const char *tmp_prefix, mode_t mode,
                      const void *data, size_t n, bool durable, struct ahl_write_failure *why)
{
    char rnd[33], tmp[256];
    if (ahl_random_id(rnd) < 0)
        return failed(why, "pick a temporary name", "", EIO);
    if (snprintf(tmp, sizeof tmp, "%s%s", tmp_prefix, rnd) >= (int)sizeof tmp)
        return failed(why, "pick a temporary name", "", ENAMETOOLONG);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return failed(why, "create", tmp, errno);
    const char *step = NULL;
    if (ahl_write_all(fd, data, n) < 0)
        step = "write";
    else if (durable && fsync(fd) != 0)
        step = "fsync";
    int e = errno;
    if (close(fd) != 0 && !step) {
        step = "close";
        e = errno;
    }
    if (!step && renameat(dirfd, tmp, dirfd, name) != 0) {
        int rc = failed(why, "rename into place", name, errno);
        unlinkat(dirfd, tmp, 0);
        return rc;
    }
    if (step) {
        unlinkat(dirfd, tmp, 0);
        return failed(why, step, tmp, e);
    }
    if (durable && fsync(dirfd) != 0)
        return failed(why, "fsync directory", "", errno);
    return 0;
}

int ahl_write_file_atomic(int dirfd, const char *name, const char *tmp_prefix, mode_t mode,
                          const void *data, size_t n, struct ahl_write_failure *why)
{
    return write_file(dirfd, name, tmp_prefix, mode, data, n, true, why);
}

int ahl_write_file_replace(int dirfd, const char *name, const char *tmp_prefix, mode_t mode,
                           const void *data, size_t n, struct ahl_write_failure *why)
{
    return write_file(dirfd, name, tmp_prefix, mode, data, n, false, why);
}
