/* Small file-descriptor helpers shared by the modules that write files and sockets, and the one
 * way files are written atomically (the frame store and local buckets both use it), durable at
 * once or later. */
#ifndef AHL_BASE_FILEIO_H
#define AHL_BASE_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

/* Writes all n bytes, retrying short writes and EINTR. 0, or AHL_EIO with errno left as write()
 * set it (ENOSPC, EPIPE...), so the caller can say why. */
int ahl_write_all(int fd, const void *p, size_t n);

/* Reads n bytes at offset off, retrying short reads and EINTR; *got (when not NULL) receives the
 * bytes read. 0 when all n were read; AHL_EPARSE when the file ended first; AHL_EIO with errno
 * left as pread() set it. */
int ahl_pread_all(int fd, void *p, size_t n, off_t off, size_t *got);

/* Why ahl_write_file_atomic failed, for the caller to word in its own terms: the step, as it
 * reads after "cannot " ("pick a temporary name", "create", "write", "fsync", "close",
 * "rename into place", "fsync directory"); the entry of the directory it concerns (the temporary
 * file, the final name for the rename, "" for the directory itself); and errno there. */
struct ahl_write_failure {
    const char *step;
    char entry[256];
    int errnum;
};

/* Writes n bytes as the file `name` (one path component) in the directory dirfd, so that readers
 * see either what was there before or all n bytes, and the new file survives a crash once this
 * returns 0: a new temporary file tmp_prefix + 32 random hex digits is created beside it
 * (O_EXCL | O_NOFOLLOW, mode), written, fsync'ed and closed, renamed over name, and dirfd is
 * fsync'ed. The rename replaces whatever is at name, a symbolic link itself rather than its
 * target. The caller opens dirfd (safely: the directory is where the file lands) and chooses the
 * prefix its own sweeps and listings recognise. On failure the temporary file is removed and
 * *why (when not NULL) says where: AHL_ENOSPC when the file system is full (ENOSPC, EDQUOT),
 * AHL_EIO otherwise. */
int ahl_write_file_atomic(int dirfd, const char *name, const char *tmp_prefix, mode_t mode,
                          const void *data, size_t n, struct ahl_write_failure *why);

/* ahl_write_file_atomic without its two fsyncs: readers still see the old file or all n bytes,
 * but the new file is durable only once the caller has synced it (the frame store syncs a group
 * of them with one syncfs before it lets anything name them). */
int ahl_write_file_replace(int dirfd, const char *name, const char *tmp_prefix, mode_t mode,
                           const void *data, size_t n, struct ahl_write_failure *why);

#endif
