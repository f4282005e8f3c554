/* The frame store's front, and its file backend: one file per frame under root/<2 hex>/<2
 * hex>/<id>. Writes go to a temporary file in the final directory, are fsynced, renamed into place
 * and the directory is fsynced (ahl_write_file_atomic of base/fileio.h), so a reader sees either no
 * frame or the whole frame, and a put that returned 0 survives a crash (kill -9 or power loss).
 *
 * What a crash cannot do, a disk, a person or a program can: a frame file may later be truncated,
 * overwritten, deleted or replaced by a link. Readers therefore open the fan-out directories and
 * the file without following links, accept only a regular file, and (ahl_framestore_open_verified,
 * ahl_framestore_check) hash the bytes to compare them with the content address the file is named
 * by, so damage is reported, never served.
 *
 * An importer writes frames with ahl_framestore_write instead: the same file, without the fsyncs,
 * and makes a group of them durable with one syncfs before the commit that names them
 * (ahl_framestore_sync); syncfs costs about as much as one fsync, not one per frame.
 *
 * A store opened on S3 (fs->s3 set) hands each call to framestore_s3.c after the same checks of
 * the id; the functions below say where. */
#define _GNU_SOURCE /* syncfs */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/codec.h"
#include "base/fileio.h"
#include "blob/framestore.h"
#include "blob/framestore_internal.h"

#include "base/banned.h"

/* The names of temporary files, which ahl_framestore_open sweeps. */
#define TMP_PREFIX "tmp."

void ahl_frame_id_of_digest(const char *ts, const uint8_t digest[AHL_SHA256_LEN], char id[33])
{
    uint8_t outer[AHL_SHA256_LEN];
    char buf[65 + 1 + AHL_SHA256_LEN];
    size_t tl = strlen(ts);
    if (tl > 64)
        tl = 64;
    memcpy(buf, ts, tl);
    buf[tl] = '\0';
    memcpy(buf + tl + 1, digest, AHL_SHA256_LEN);
    ahl_sha256(buf, tl + 1 + AHL_SHA256_LEN, outer);
    ahl_hex_encode(outer, 16, id);
}

void ahl_frame_id(const char *ts, const uint8_t *data, size_t len, char id[33])
{
    uint8_t inner[AHL_SHA256_LEN];
    ahl_sha256(data, len, inner);
    ahl_frame_id_of_digest(ts, inner, id);
}

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
    if (e == ENOSPC || e == EDQUOT)
        return ahl_fail(err, AHL_ENOSPC, "%s %s: %s", what, path, ahl_strerror(AHL_ENOSPC));
    return ahl_fail(err, e == ENOENT ? AHL_ENOTFOUND : AHL_EIO, "%s %s: %s", what, path,
                    strerror(e));
}

/* mkdir that accepts an existing directory. */
static int ensure_dir(const char *path, struct ahl_err *err)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    return io_fail(err, "cannot create directory", path);
}

/* ensure_dir for a fan-out directory, which must be a directory itself, not a link to one: a
 * frame is never written through a link planted in the store. */
static int ensure_fanout_dir(const char *path, struct ahl_err *err)
{
    struct stat st;
    int rc = ensure_dir(path, err);
    if (rc < 0)
        return rc;
    if (lstat(path, &st) != 0)
        return io_fail(err, "cannot stat directory", path);
    if (!S_ISDIR(st.st_mode))
        return ahl_fail(err, AHL_ECORRUPT,
                        "%s is not a directory (a symbolic link?); frames are not written "
                        "through it",
                        path);
    return 0;
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

void ahl_framestore_path(const struct ahl_framestore *fs, const char *id, char *out, size_t cap)
{
    if (fs->s3) {
        char key[AHL_S3_MAX_KEY + 1];
        struct ahl_s3_uri u;
        ahl__frames3_key(fs, id, key, sizeof key);
        if (ahl_s3_uri_parse(fs->root, &u, NULL) == 0)
            snprintf(out, cap, "s3://%s/%s", u.bucket, key);
        else
            snprintf(out, cap, "%s", key);
        return;
    }
    frame_path(fs, id, out, cap);
}

/* What an open of name in dir failed on with errno e, worded for a report, or NULL when e means
 * something else (EIO, EMFILE...). Linux reports a link opened with O_NOFOLLOW as ELOOP, or as
 * ENOTDIR when O_DIRECTORY is also given, so the entry itself is looked at. */
static const char *found_instead(int dir, const char *name, int e, bool want_dir)
{
    struct stat st;
    if (e != ELOOP && e != ENOTDIR)
        return NULL;
    bool link = fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
    if (want_dir)
        return link ? "a fan-out directory is a symbolic link"
                    : "a fan-out directory is not a directory";
    return link ? "the file is a symbolic link" : "it is not a regular file";
}

/* Opens a frame's file for reading without following a link below the root: the two fan-out
 * directories and the file are each opened with O_NOFOLLOW, relative to the one before, and the
 * file must be a regular file (O_NONBLOCK keeps a planted FIFO from blocking the open; it has
 * no effect on a regular file). *fd and *st on success; AHL_ENOTFOUND when absent; AHL_ECORRUPT
 * when something else stands in its place; AHL_EIO. */
int ahl__framestore_open_regular(const struct ahl_framestore *fs, const char *id, int *fd,
                                 struct stat *st, struct ahl_err *err)
{
    char part[3] = {0};
    int dir = -1, sub = -1, f = -1, rc = 0;
    *fd = -1;
    if (!valid_id(id))
        return ahl_fail(err, AHL_EINVAL, "frame id must be 32 lowercase hex digits");
    if ((dir = open(fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = io_fail(err, "cannot open frame store", fs->root);
        goto out;
    }
    for (int level = 0; level < 2; level++) {
        memcpy(part, id + 2 * level, 2);
        sub = openat(dir, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            int e = errno;
            const char *what = found_instead(dir, part, e, true);
            rc = e == ENOENT ? ahl_fail(err, AHL_ENOTFOUND, "image frame %s not found", id)
                 : what ? ahl_fail(err, AHL_ECORRUPT, "stored frame %s is damaged: %s", id, what)
                        : ahl_fail(err, AHL_EIO, "cannot open the directory of frame %s: %s", id,
                                   strerror(e));
            goto out;
        }
        close(dir);
        dir = sub;
    }
    f = openat(dir, id, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (f < 0) {
        int e = errno;
        const char *what = found_instead(dir, id, e, false);
        rc = e == ENOENT ? ahl_fail(err, AHL_ENOTFOUND, "image frame %s not found", id)
             : what      ? ahl_fail(err, AHL_ECORRUPT, "stored frame %s is damaged: %s", id, what)
                         : ahl_fail(err, AHL_EIO, "cannot open frame %s: %s", id, strerror(e));
        goto out;
    }
    if (fstat(f, st) != 0) {
        rc = ahl_fail(err, AHL_EIO, "cannot stat frame %s: %s", id, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st->st_mode)) {
        rc =
            ahl_fail(err, AHL_ECORRUPT, "stored frame %s is damaged: it is not a regular file", id);
        goto out;
    }
    *fd = f;
    f = -1;
out:
    if (f >= 0)
        close(f);
    if (dir >= 0)
        close(dir);
    return rc;
}

int ahl__frame_digest_check(const char *id, const char *ts, const uint8_t digest[AHL_SHA256_LEN],
                            uint64_t size, struct ahl_err *err)
{
    char got[33];
    ahl_frame_id_of_digest(ts && ts[0] ? ts : "1.2.840.10008.1.2.4.202", digest, got);
    if (strcmp(got, id) == 0)
        return 0;
    return ahl_fail(err, AHL_ECORRUPT,
                    "stored frame %s is damaged: its %llu bytes are frame %s, other bytes than the "
                    "ones its id names",
                    id, (unsigned long long)size, got);
}

/* Reads size bytes of fd from offset 0 and checks that they are the frame id names. When want
 * is not NULL the bytes must also equal want (a put comparing a file with the frame it would
 * write). 0, AHL_ECORRUPT (what differs in err), AHL_ENOMEM or AHL_EIO. */
static int verify_bytes(int fd, uint64_t size, const char *id, const char *ts, const void *want,
                        struct ahl_err *err)
{
    static const size_t block = 64 * 1024; /* under malloc's mmap threshold: no page faults */
    struct ahl_sha256_ctx sha = {NULL};
    uint8_t digest[AHL_SHA256_LEN], *buf = malloc(block);
    uint64_t off = 0;
    int rc = 0;
    if (!buf || ahl_sha256_begin(&sha) < 0) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory to check frame %s", id);
        goto out;
    }
    while (off < size) {
        size_t n = size - off < block ? (size_t)(size - off) : block;
        ssize_t r = pread(fd, buf, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = ahl_fail(err, AHL_EIO, "cannot read frame %s: %s", id, strerror(errno));
            goto out;
        }
        if (r == 0) { /* shrank since fstat */
            rc = ahl_fail(err, AHL_ECORRUPT,
                          "stored frame %s is damaged: it ends after %llu of its %llu bytes", id,
                          (unsigned long long)off, (unsigned long long)size);
            goto out;
        }
        if (want && memcmp(buf, (const uint8_t *)want + off, (size_t)r) != 0) {
            rc = ahl_fail(err, AHL_ECORRUPT, "stored frame %s is damaged: its bytes differ", id);
            goto out;
        }
        ahl_sha256_add(&sha, buf, (size_t)r);
        off += (uint64_t)r;
    }
    ahl_sha256_end(&sha, digest);
    if (ts)
        rc = ahl__frame_digest_check(id, ts, digest, size, err);
out:
    ahl_sha256_end(&sha, digest);
    free(buf);
    return rc;
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
        else if (depth == 2 && strncmp(e->d_name, TMP_PREFIX, sizeof TMP_PREFIX - 1) == 0 &&
                 lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
                 now - st.st_mtime >= AHL_FRAMESTORE_TMP_MAX_AGE)
            unlink(path);
    }
    closedir(d);
}

int ahl_framestore_attach(struct ahl_framestore *fs, const char *root, struct ahl_err *err)
{
    size_t n = root ? strlen(root) : 0;
    if (n == 0 || n >= sizeof fs->root - 64)
        return ahl_fail(err, AHL_EINVAL, "frame store root must be 1..%zu characters",
                        sizeof fs->root - 65);
    memcpy(fs->root, root, n + 1);
    fs->cache = NULL;
    fs->s3 = NULL;
    while (n > 1 && fs->root[n - 1] == '/')
        fs->root[--n] = '\0';
    return 0;
}

int ahl_framestore_open(struct ahl_framestore *fs, const char *root, struct ahl_err *err)
{
    int rc = ahl_framestore_attach(fs, root, err);
    if (rc < 0)
        return rc;
    /* Create the root and its parents. */
    char path[sizeof fs->root];
    memcpy(path, fs->root, strlen(fs->root) + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            rc = ensure_dir(path, err);
            *p = '/';
            if (rc < 0)
                return rc;
        }
    }
    if ((rc = ensure_dir(path, err)) < 0)
        return rc;
    sweep_temporaries(fs->root, 0, time(NULL));
    return 0;
}

int ahl_framestore_open_dir(struct ahl_framestore *fs, const char *data_dir, const char *blob_store,
                            const char *s3_endpoint, bool read_only, struct ahl_err *err)
{
    char path[4096];
    memset(fs, 0, sizeof *fs);
    if (!blob_store || !*blob_store) {
        if (snprintf(path, sizeof path, "%s/frames", data_dir) >= (int)sizeof path)
            return ahl_fail(err, AHL_EINVAL, "data directory path too long");
        return read_only ? ahl_framestore_attach(fs, path, err)
                         : ahl_framestore_open(fs, path, err);
    }
    if (strncmp(blob_store, "s3://", 5) != 0)
        return ahl_fail(err, AHL_EINVAL, "--blob-store takes s3://bucket/prefix, not '%.200s'",
                        blob_store);
    if (!s3_endpoint || !*s3_endpoint)
        return ahl_fail(err, AHL_EINVAL,
                        "--blob-store %.200s needs --s3-endpoint URL (the S3 endpoint holding "
                        "the bucket)",
                        blob_store);
    if (snprintf(path, sizeof path, "%s/tmp", data_dir) >= (int)sizeof path)
        return ahl_fail(err, AHL_EINVAL, "data directory path too long");
    if (!read_only && mkdir(path, 0700) < 0 && errno != EEXIST)
        return io_fail(err, "cannot create directory", path);
    struct ahl_s3_config cfg = {.endpoint = s3_endpoint};
    return ahl_framestore_open_s3(fs, blob_store, &cfg, path, err);
}

void ahl_framestore_close(struct ahl_framestore *fs)
{
    ahl_framestore_cache_close(fs);
    ahl__frames3_free(fs->s3);
    fs->s3 = NULL;
}

int ahl_framestore_exists(struct ahl_framestore *fs, const char *id)
{
    if (!valid_id(id))
        return AHL_EINVAL;
    if (fs->s3) {
        uint64_t size;
        int rc = ahl__frames3_exists(fs, id, &size, NULL);
        return rc == 0 ? 1 : rc == AHL_ENOTFOUND ? 0 : rc;
    }
    char path[sizeof fs->root + 64];
    frame_path(fs, id, path, sizeof path);
    struct stat st;
    if (lstat(path, &st) == 0)
        return 1;
    return errno == ENOENT ? 0 : AHL_EIO;
}

/* A put, durable at once or (durable false) once synced. */
static int put(struct ahl_framestore *fs, const char *id, const void *data, size_t len,
               bool durable, struct ahl_err *err)
{
    if (!valid_id(id))
        return ahl_fail(err, AHL_EINVAL, "frame id must be 32 lowercase hex digits");
    if (fs->s3)
        return ahl__frames3_put(fs, id, data, len, err);
    char dir[sizeof fs->root + 16];
    /* Content-addressed: a file with this id holding these bytes is this frame already. Anything
     * else there (damage, a link) is replaced by the rename in ahl_write_file_atomic, which swaps
     * a link itself, never its target. */
    int fd;
    struct stat st;
    int rc = ahl__framestore_open_regular(fs, id, &fd, &st, err);
    if (rc == 0) {
        if ((uint64_t)st.st_size == len)
            rc = verify_bytes(fd, len, id, NULL, data, err);
        else
            rc = AHL_ECORRUPT;
        close(fd);
        /* Present already: its time is made now, so that the collector, which removes only
         * unlisted frames older than its grace, leaves it to the version about to list it. By
         * path, after the check: a collector that moved it aside meanwhile makes this ENOENT,
         * and the frame is written again below (docs/decisions.md#gc-grace). */
        if (rc == 0) {
            char path[sizeof fs->root + 64];
            frame_path(fs, id, path, sizeof path);
            if (utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW) == 0)
                return 0;
            if (errno != ENOENT)
                return io_fail(err, "cannot touch", path);
            rc = AHL_ENOTFOUND;
        }
    }
    if (rc != AHL_ENOTFOUND && rc != AHL_ECORRUPT)
        return rc;
    ahl_err_clear(err);
    snprintf(dir, sizeof dir, "%s/%.2s", fs->root, id);
    if ((rc = ensure_fanout_dir(dir, err)) < 0)
        return rc;
    frame_dir(fs, id, dir, sizeof dir);
    if ((rc = ensure_fanout_dir(dir, err)) < 0)
        return rc;
    /* The leaf fan-out directory is checked above and opened without following a link, so the
     * frame lands where its id says. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return io_fail(err, "cannot open directory", dir);
    struct ahl_write_failure why;
    rc = durable ? ahl_write_file_atomic(dfd, id, TMP_PREFIX, 0644, data, len, &why)
                 : ahl_write_file_replace(dfd, id, TMP_PREFIX, 0644, data, len, &why);
    close(dfd);
    if (rc < 0) {
        char what[64], where[sizeof dir + sizeof why.entry + 1];
        snprintf(what, sizeof what, "cannot %s", why.step);
        snprintf(where, sizeof where, "%s%s%s", dir, why.entry[0] ? "/" : "", why.entry);
        errno = why.errnum;
        return io_fail(err, what, where);
    }
    return 0;
}

int ahl_framestore_put(struct ahl_framestore *fs, const char *id, const void *data, size_t len,
                       struct ahl_err *err)
{
    return put(fs, id, data, len, true, err);
}

/* ---- durable in groups ---- */

static int default_syncfs(int fd)
{
    return syncfs(fd);
}

int ahl_framestore_sync_open(const struct ahl_framestore *fs, struct ahl_framestore_sync *s,
                             struct ahl_err *err)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    if (fs->s3)
        return 0; /* nothing to sync: writes return once S3 has them (syncfs_fn stays NULL) */
    s->fd = open(fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->fd < 0)
        return io_fail(err, "cannot open frame store", fs->root);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->syncfs_fn = default_syncfs;
    return 0;
}

void ahl_framestore_sync_close(struct ahl_framestore_sync *s)
{
    if (!s || !s->syncfs_fn)
        return;
    close(s->fd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    memset(s, 0, sizeof *s);
}

int ahl_framestore_write(struct ahl_framestore *fs, struct ahl_framestore_sync *s, const char *id,
                         const void *data, size_t len, uint64_t *ticket, struct ahl_err *err)
{
    *ticket = 0;
    int rc = put(fs, id, data, len, false, err);
    if (rc < 0 || fs->s3)
        return rc; /* on S3 durable already: ticket 0 */
    /* The ticket is taken after the frame is in place, so a syncfs started after this returns
     * covers it, whoever wrote the file. */
    pthread_mutex_lock(&s->mu);
    *ticket = ++s->written;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int ahl_framestore_sync(struct ahl_framestore_sync *s, uint64_t ticket, struct ahl_err *err)
{
    int rc = 0;
    if (ticket == 0)
        return 0;
    pthread_mutex_lock(&s->mu);
    while (rc == 0 && ticket > s->synced) {
        if (ticket <= s->failed) {
            rc = ahl_fail(err, AHL_EIO,
                          "frames written before a failed sync of the frame store may not be on "
                          "disk");
        } else if (s->syncing) {
            /* The running syncfs covers this ticket (its target is at least the ticket), or it
             * started before this write: either way wait for it, then look again. */
            pthread_cond_wait(&s->cv, &s->mu);
        } else {
            uint64_t target = s->written;
            s->syncing = true;
            pthread_mutex_unlock(&s->mu);
            int r = s->syncfs_fn(s->fd), e = errno;
            pthread_mutex_lock(&s->mu);
            s->syncing = false;
            if (r == 0) {
                if (target > s->synced)
                    s->synced = target;
            } else {
                if (target > s->failed)
                    s->failed = target;
                rc = ahl_fail(err, e == ENOSPC || e == EDQUOT ? AHL_ENOSPC : AHL_EIO,
                              "cannot sync the frame store: %s", strerror(e));
            }
            pthread_cond_broadcast(&s->cv);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int ahl_framestore_open_frame(struct ahl_framestore *fs, const char *id, int *fd, uint64_t *size,
                              struct ahl_err *err)
{
    struct stat st;
    *size = 0;
    if (fs->s3) {
        *fd = -1;
        if (!valid_id(id))
            return ahl_fail(err, AHL_EINVAL, "frame id must be 32 lowercase hex digits");
        return ahl__frames3_open(fs, id, NULL, fd, size, err);
    }
    int rc = ahl__framestore_open_regular(fs, id, fd, &st, err);
    if (rc == 0)
        *size = (uint64_t)st.st_size;
    return rc;
}

/* Opens a frame and checks it: expected_size bytes long (UINT64_MAX: not compared) and holding
 * the bytes its id names. On failure nothing is left open. */
static int open_checked(struct ahl_framestore *fs, const char *id, const char *ts,
                        uint64_t expected_size, int *fd, uint64_t *size, struct ahl_err *err)
{
    if (fs->s3) {
        *fd = -1;
        *size = 0;
        if (!valid_id(id))
            return ahl_fail(err, AHL_EINVAL, "frame id must be 32 lowercase hex digits");
        return ahl__frames3_open(fs, id, ts ? ts : "", fd, size, err);
    }
    int rc = ahl_framestore_open_frame(fs, id, fd, size, err);
    if (rc < 0)
        return rc;
    if (expected_size != UINT64_MAX && *size != expected_size)
        rc = ahl_fail(err, AHL_ECORRUPT,
                      "stored frame %s is damaged: the file is %llu bytes, FrameSizeInBytes %llu",
                      id, (unsigned long long)*size, (unsigned long long)expected_size);
    else
        rc = verify_bytes(*fd, *size, id, ts ? ts : "", NULL, err);
    if (rc < 0) {
        close(*fd);
        *fd = -1;
        *size = 0;
    }
    return rc;
}

int ahl_framestore_open_verified(struct ahl_framestore *fs, const char *id,
                                 const char *stored_transfer_syntax, int *fd, uint64_t *size,
                                 struct ahl_err *err)
{
    return open_checked(fs, id, stored_transfer_syntax, UINT64_MAX, fd, size, err);
}

int ahl_framestore_check(struct ahl_framestore *fs, const char *id,
                         const char *stored_transfer_syntax, uint64_t expected_size,
                         struct ahl_err *err)
{
    if (fs->s3) {
        if (!valid_id(id))
            return ahl_fail(err, AHL_EINVAL, "frame id must be 32 lowercase hex digits");
        return ahl__frames3_check(fs, id, stored_transfer_syntax, expected_size, err);
    }
    int fd;
    uint64_t size;
    int rc = open_checked(fs, id, stored_transfer_syntax, expected_size, &fd, &size, err);
    if (rc == 0)
        close(fd);
    return rc;
}

/* Reads the size bytes of an open frame file into a new buffer and closes fd. */
static int read_whole(int fd, uint64_t size, const char *id, uint8_t **data, size_t *len,
                      struct ahl_err *err)
{
    int rc;
    if (size > AHL_FRAMESTORE_MAX_BYTES) {
        close(fd);
        return ahl_fail(err, AHL_ETOOBIG, "frame %s is %llu bytes, over the limit", id,
                        (unsigned long long)size);
    }
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return ahl_fail(err, AHL_ENOMEM, "out of memory for frame %s", id);
    }
    if ((rc = ahl_pread_all(fd, buf, size, 0, NULL)) < 0) {
        rc = rc == AHL_EPARSE
                 ? ahl_fail(err, AHL_ECORRUPT, "frame %s is shorter than its size", id)
                 : ahl_fail(err, AHL_EIO, "cannot read frame %s: %s", id, strerror(errno));
        free(buf);
        close(fd);
        return rc;
    }
    close(fd);
    *data = buf;
    *len = size;
    return 0;
}

/* On S3: the object straight into a buffer (no temporary file), checked when ts is not NULL. */
static int read_s3(struct ahl_framestore *fs, const char *id, const char *ts, uint8_t **data,
                   size_t *len, struct ahl_err *err)
{
    if (!valid_id(id))
        return ahl_fail(err, AHL_EINVAL, "frame id must be 32 lowercase hex digits");
    return ahl__frames3_read(fs, id, ts, 0, AHL_FRAMESTORE_MAX_BYTES, data, len, err);
}

int ahl_framestore_get(struct ahl_framestore *fs, const char *id, uint8_t **data, size_t *len,
                       struct ahl_err *err)
{
    int fd;
    uint64_t size;
    *data = NULL;
    *len = 0;
    if (fs->s3)
        return read_s3(fs, id, NULL, data, len, err);
    int rc = ahl_framestore_open_frame(fs, id, &fd, &size, err);
    return rc < 0 ? rc : read_whole(fd, size, id, data, len, err);
}

int ahl_framestore_read_verified(struct ahl_framestore *fs, const char *id,
                                 const char *stored_transfer_syntax, uint8_t **data, size_t *len,
                                 struct ahl_err *err)
{
    int fd;
    uint64_t size;
    *data = NULL;
    *len = 0;
    if (fs->s3)
        return read_s3(fs, id, stored_transfer_syntax ? stored_transfer_syntax : "", data, len,
                       err);
    int rc = ahl_framestore_open_verified(fs, id, stored_transfer_syntax, &fd, &size, err);
    return rc < 0 ? rc : read_whole(fd, size, id, data, len, err);
}

int ahl_framestore_delete(struct ahl_framestore *fs, const char *id, struct ahl_err *err)
{
    if (!valid_id(id))
        return ahl_fail(err, AHL_EINVAL, "frame id must be 32 lowercase hex digits");
    if (fs->s3)
        return ahl__frames3_delete(fs, id, err);
    char dir[sizeof fs->root + 16], path[sizeof fs->root + 64];
    frame_dir(fs, id, dir, sizeof dir);
    frame_path(fs, id, path, sizeof path);
    if (unlink(path) != 0) {
        if (errno == ENOENT)
            return ahl_fail(err, AHL_ENOTFOUND, "image frame %s not found", id);
        return io_fail(err, "cannot delete", path);
    }
    return fsync_dir(dir, err);
}
