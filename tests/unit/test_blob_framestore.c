/* links: frames */
/* Unit tests of the filesystem frame store: put/get/exists/delete round trips, idempotent puts,
 * id validation (no path tricks), the fan-out layout, stale temporary files swept at open while
 * another process's recent ones are left alone, streaming through the returned descriptor, the
 * atomic write of base/fileio.h that puts go through, frames held in memory (the cache of
 * verified frames: hits, changed files read again, the budget), and writes made durable in groups
 * (tickets, one syncfs shared by the writes before it, a failed sync never counted as durable). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/fileio.h"
#include "blob/framestore.h"
#include "frames/frames.h"

static char root[256];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/ahl-framestore-XXXXXX");
    if (!mkdtemp(root))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *ID = "0123456789abcdef0123456789abcdef";

static void test_put_get_delete(void **state)
{
    (void)state;
    struct ahl_framestore fs;
    struct ahl_err err = {0};
    char sub[300];
    snprintf(sub, sizeof sub, "%s/nested/frames/", root);
    assert_int_equal(ahl_framestore_open(&fs, sub, &err), 0);
    assert_int_equal(ahl_framestore_exists(&fs, ID), 0);
    const char payload[] = "an HTJ2K codestream would be here";
    assert_int_equal(ahl_framestore_put(&fs, ID, payload, sizeof payload, &err), 0);
    assert_int_equal(ahl_framestore_exists(&fs, ID), 1);

    /* The fan-out layout the header documents. */
    char path[400];
    snprintf(path, sizeof path, "%s/nested/frames/01/23/%s", root, ID);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, sizeof payload);

    uint8_t *data;
    size_t len;
    assert_int_equal(ahl_framestore_get(&fs, ID, &data, &len, &err), 0);
    assert_int_equal(len, sizeof payload);
    assert_memory_equal(data, payload, len);
    free(data);

    /* A second put of the same bytes is a no-op (content-addressed): the file is not rewritten. */
    struct stat again;
    assert_int_equal(ahl_framestore_put(&fs, ID, payload, sizeof payload, &err), 0);
    assert_int_equal(stat(path, &again), 0);
    assert_int_equal(again.st_ino, st.st_ino);
    int fd;
    uint64_t size;
    assert_int_equal(ahl_framestore_open_frame(&fs, ID, &fd, &size, &err), 0);
    assert_int_equal(size, sizeof payload);
    char first[3] = {0};
    assert_int_equal(read(fd, first, 2), 2);
    assert_string_equal(first, "an");
    close(fd);
    /* Other bytes under that id mean the file is not what its name says: it is replaced. */
    assert_int_equal(ahl_framestore_put(&fs, ID, "other", 5, &err), 0);
    assert_int_equal(ahl_framestore_open_frame(&fs, ID, &fd, &size, &err), 0);
    assert_int_equal(size, 5);
    close(fd);

    assert_int_equal(ahl_framestore_delete(&fs, ID, &err), 0);
    assert_int_equal(ahl_framestore_exists(&fs, ID), 0);
    assert_int_equal(ahl_framestore_get(&fs, ID, &data, &len, &err), AHL_ENOTFOUND);
    assert_int_equal(err.code, AHL_ENOTFOUND);
    assert_int_equal(ahl_framestore_delete(&fs, ID, &err), AHL_ENOTFOUND);
    assert_int_equal(ahl_framestore_open_frame(&fs, ID, &fd, &size, &err), AHL_ENOTFOUND);
    assert_int_equal(fd, -1);
}

/* ahl_framestore_check and ahl_framestore_open_verified find each kind of damage and say what
 * they found; the sound frame passes. Table-driven: each row damages one stored frame. */
static void test_check_finds_damage(void **state)
{
    (void)state;
    struct ahl_framestore fs;
    struct ahl_err err = {0};
    static const struct {
        const char *name;
        const char *damage; /* shell command run with $F the frame's path, $D its directory */
        uint64_t size;      /* expected size passed to the check (UINT64_MAX: unknown) */
        int rc;
        const char *says;
    } cases[] = {
        {"sound", "true", 0, 0, NULL},
        {"size unknown", "true", UINT64_MAX, 0, NULL},
        {"missing", "rm \"$F\"", 0, AHL_ENOTFOUND, "not found"},
        {"truncated", "truncate -s 10 \"$F\"", 0, AHL_ECORRUPT, "FrameSizeInBytes"},
        {"truncated, size unknown", "truncate -s 10 \"$F\"", UINT64_MAX, AHL_ECORRUPT,
         "other bytes than the ones its id names"},
        {"overwritten", "printf Z | dd of=\"$F\" bs=1 seek=5 conv=notrunc 2>/dev/null", 0,
         AHL_ECORRUPT, "other bytes than the ones its id names"},
        {"symbolic link", "cp \"$F\" \"$F.copy\" && ln -sf \"$F.copy\" \"$F\"", 0, AHL_ECORRUPT,
         "the file is a symbolic link"},
        {"directory", "rm \"$F\" && mkdir \"$F\"", 0, AHL_ECORRUPT, "not a regular file"},
        {"linked fan-out directory", "mv \"$D\" \"$D.x\" && ln -s \"$D.x\" \"$D\"", 0, AHL_ECORRUPT,
         "a fan-out directory is a symbolic link"},
    };
    static const uint8_t frame[] = "an HTJ2K codestream, as far as the store is concerned";
    char id[33], path[400], dir[400], cmd[1400];
    ahl_frame_id(AHL_TS_HTJ2K_RPCL, frame, sizeof frame, id);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char sub[300];
        snprintf(sub, sizeof sub, "%s/case%zu", root, i);
        assert_int_equal(ahl_framestore_open(&fs, sub, &err), 0);
        assert_int_equal(ahl_framestore_put(&fs, id, frame, sizeof frame, &err), 0);
        ahl_framestore_path(&fs, id, path, sizeof path);
        snprintf(dir, sizeof dir, "%s", path);
        *strrchr(dir, '/') = '\0';
        snprintf(cmd, sizeof cmd, "F='%s' D='%s'; %s", path, dir, cases[i].damage);
        assert_int_equal(system(cmd), 0);
        uint64_t want = cases[i].size == UINT64_MAX ? UINT64_MAX : sizeof frame;
        ahl_err_clear(&err);
        int rc = ahl_framestore_check(&fs, id, AHL_TS_HTJ2K_RPCL, want, &err);
        if (rc != cases[i].rc || (cases[i].says && !strstr(err.msg, cases[i].says)))
            fail_msg("%s: rc %d '%s', expected %d '%s'", cases[i].name, rc, err.msg, cases[i].rc,
                     cases[i].says ? cases[i].says : "");
        int fd;
        uint64_t size;
        rc = ahl_framestore_open_verified(&fs, id, AHL_TS_HTJ2K_RPCL, &fd, &size, &err);
        assert_int_equal(rc < 0, cases[i].rc < 0);
        if (rc == 0) {
            assert_int_equal(size, sizeof frame);
            close(fd);
        } else {
            assert_int_equal(fd, -1);
        }
        /* The same bytes under another transfer syntax are another frame. */
        if (cases[i].rc == 0)
            assert_int_equal(ahl_framestore_check(&fs, id, AHL_TS_HTJ2K, want, &err), AHL_ECORRUPT);
    }
}

/* A wrap that puts "HEAD:" and the frame's length before it. */
static int test_wrap(const uint8_t *data, size_t len, struct ahl_buf *prefix, struct ahl_err *err)
{
    (void)data;
    (void)err;
    char head[32];
    int n = snprintf(head, sizeof head, "HEAD%zu:", len);
    return ahl_buf_add(prefix, head, (size_t)n);
}

static int refuse_wrap(const uint8_t *data, size_t len, struct ahl_buf *prefix, struct ahl_err *err)
{
    (void)data;
    (void)len;
    (void)prefix;
    return ahl_fail(err, AHL_EUNSUPPORTED, "cannot wrap this");
}

/* Frames held in memory: read and checked once, then served from memory while the file is the
 * one that was read; a file damaged, removed or replaced since is read again and refused as
 * without the cache, and the bytes held by a reader outlive their entry. */
static void test_hold(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *damage; /* as in test_check_finds_damage */
        int rc;
        const char *says;
    } cases[] = {
        {"unchanged", "true", 0, NULL},
        {"missing", "rm \"$F\"", AHL_ENOTFOUND, "not found"},
        {"truncated", "truncate -s 10 \"$F\"", AHL_ECORRUPT, "other bytes than the ones"},
        /* Later than the read: a write within the clock tick of the read leaves the times as they
         * were, and the bytes read then are served (they were checked). */
        {"overwritten",
         "printf Z | dd of=\"$F\" bs=1 seek=5 conv=notrunc 2>/dev/null && "
         "touch -m -d @2000000000 \"$F\"",
         AHL_ECORRUPT, "other bytes than the ones"},
        {"replaced",
         "cp \"$F\" \"$F.new\" && printf Z | dd of=\"$F.new\" bs=1 seek=5 "
         "conv=notrunc 2>/dev/null && mv \"$F.new\" \"$F\"",
         AHL_ECORRUPT, "other bytes than the ones"},
        {"symbolic link", "cp \"$F\" \"$F.copy\" && ln -sf \"$F.copy\" \"$F\"", AHL_ECORRUPT,
         "the file is a symbolic link"},
        {"directory", "rm \"$F\" && mkdir \"$F\"", AHL_ECORRUPT, "not a regular file"},
        /* The file itself is unchanged (same inode and times): its checked bytes are served;
         * `ahilite check` reports the link. */
        {"linked fan-out directory", "mv \"$D\" \"$D.x\" && ln -s \"$D.x\" \"$D\"", 0, NULL},
    };
    static const uint8_t frame[] = "an HTJ2K codestream, held in memory";
    char id[33], path[400], dir[400], cmd[1400];
    struct ahl_err err = {0};
    ahl_frame_id(AHL_TS_HTJ2K_RPCL, frame, sizeof frame, id);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ahl_framestore fs;
        char sub[300];
        const struct ahl_frame_hold *h, *again;
        snprintf(sub, sizeof sub, "%s/hold%zu", root, i);
        assert_int_equal(ahl_framestore_open(&fs, sub, &err), 0);
        assert_int_equal(ahl_framestore_put(&fs, id, frame, sizeof frame, &err), 0);
        /* No cache: the caller streams the file. */
        assert_int_equal(ahl_framestore_hold(&fs, id, AHL_TS_HTJ2K_RPCL, NULL, &h, &err),
                         AHL_ETOOBIG);
        assert_int_equal(ahl_framestore_cache_open(&fs, 1 << 20), 0);
        assert_int_equal(ahl_framestore_hold(&fs, id, AHL_TS_HTJ2K_RPCL, test_wrap, &h, &err), 0);
        assert_int_equal(h->len, sizeof frame);
        assert_memory_equal(h->data, frame, sizeof frame);
        assert_int_equal(h->prefix_len, strlen("HEAD36:"));
        assert_memory_equal(h->prefix, "HEAD36:", h->prefix_len);
        assert_ptr_equal(h->prefix + h->prefix_len, h->data);
        /* A hit: the same bytes, not read again. */
        assert_int_equal(ahl_framestore_hold(&fs, id, AHL_TS_HTJ2K_RPCL, test_wrap, &again, &err),
                         0);
        assert_ptr_equal(again, h);
        ahl_frame_hold_release(again);

        ahl_framestore_path(&fs, id, path, sizeof path);
        snprintf(dir, sizeof dir, "%s", path);
        *strrchr(dir, '/') = '\0';
        snprintf(cmd, sizeof cmd, "F='%s' D='%s'; %s", path, dir, cases[i].damage);
        assert_int_equal(system(cmd), 0);
        ahl_err_clear(&err);
        int rc = ahl_framestore_hold(&fs, id, AHL_TS_HTJ2K_RPCL, test_wrap, &again, &err);
        if (rc != cases[i].rc || (cases[i].says && !strstr(err.msg, cases[i].says)))
            fail_msg("%s: rc %d '%s', expected %d '%s'", cases[i].name, rc, err.msg, cases[i].rc,
                     cases[i].says ? cases[i].says : "");
        size_t frames, bytes;
        ahl_framestore_cache_stats(&fs, &frames, &bytes);
        assert_int_equal(frames, rc == 0 ? 1 : 0); /* a changed file's entry is dropped */
        if (rc == 0) {
            assert_ptr_equal(again, h);
            ahl_frame_hold_release(again);
        }
        /* The first reader's bytes are intact after the entry left the cache, and after the
         * cache is closed. */
        ahl_framestore_cache_close(&fs);
        assert_memory_equal(h->data, frame, sizeof frame);
        ahl_frame_hold_release(h);
    }
}

/* The budget: least recently used frames leave first, a frame over an eighth of it is not held,
 * and a wrap's failure fails the hold and keeps nothing. */
static void test_hold_budget(void **state)
{
    (void)state;
    struct ahl_framestore fs;
    struct ahl_err err = {0};
    char ids[40][33];
    uint8_t frame[2000];
    const struct ahl_frame_hold *h;
    assert_int_equal(ahl_framestore_open(&fs, root, &err), 0);
    assert_int_equal(ahl_framestore_cache_open(&fs, 64 * 1024), 0);
    for (int i = 0; i < 40; i++) {
        memset(frame, i, sizeof frame);
        ahl_frame_id(AHL_TS_HTJ2K_RPCL, frame, sizeof frame, ids[i]);
        assert_int_equal(ahl_framestore_put(&fs, ids[i], frame, sizeof frame, &err), 0);
        assert_int_equal(ahl_framestore_hold(&fs, ids[i], AHL_TS_HTJ2K_RPCL, NULL, &h, &err), 0);
        assert_int_equal(h->data[0], i);
        assert_int_equal(h->prefix_len, 0);
        ahl_frame_hold_release(h);
        size_t frames, bytes;
        ahl_framestore_cache_stats(&fs, &frames, &bytes);
        assert_true(bytes <= 64 * 1024);
        assert_true(frames >= (i < 20 ? (size_t)i + 1 : 20)); /* ~2.5 KB each */
    }
    size_t frames, bytes;
    ahl_framestore_cache_stats(&fs, &frames, &bytes);
    assert_true(frames >= 20 && frames < 40);
    /* The newest are the ones kept: the last frame is a hit (the entry itself), the first was
     * dropped (read again into a new entry). */
    const struct ahl_frame_hold *h2;
    assert_int_equal(ahl_framestore_hold(&fs, ids[39], AHL_TS_HTJ2K_RPCL, NULL, &h, &err), 0);
    assert_int_equal(ahl_framestore_hold(&fs, ids[39], AHL_TS_HTJ2K_RPCL, NULL, &h2, &err), 0);
    assert_ptr_equal(h, h2);
    ahl_frame_hold_release(h);
    ahl_frame_hold_release(h2);
    assert_int_equal(ahl_framestore_hold(&fs, ids[0], AHL_TS_HTJ2K_RPCL, NULL, &h, &err), 0);
    assert_int_equal(h->data[0], 0);
    ahl_frame_hold_release(h);
    /* Too large for the budget: streamed by the caller instead. */
    uint8_t big[9 * 1024];
    char big_id[33];
    memset(big, 7, sizeof big);
    ahl_frame_id(AHL_TS_HTJ2K_RPCL, big, sizeof big, big_id);
    assert_int_equal(ahl_framestore_put(&fs, big_id, big, sizeof big, &err), 0);
    assert_int_equal(ahl_framestore_hold(&fs, big_id, AHL_TS_HTJ2K_RPCL, NULL, &h, &err),
                     AHL_ETOOBIG);
    /* A failing wrap: the error, and nothing kept. */
    memset(frame, 99, sizeof frame);
    char id[33];
    ahl_frame_id(AHL_TS_HTJ2K_RPCL, frame, sizeof frame, id);
    assert_int_equal(ahl_framestore_put(&fs, id, frame, sizeof frame, &err), 0);
    size_t before;
    ahl_framestore_cache_stats(&fs, &before, &bytes);
    assert_int_equal(ahl_framestore_hold(&fs, id, AHL_TS_HTJ2K_RPCL, refuse_wrap, &h, &err),
                     AHL_EUNSUPPORTED);
    assert_null(h);
    ahl_framestore_cache_stats(&fs, &frames, &bytes);
    assert_int_equal(frames, before);
    /* A malformed id is refused before any file is looked at. */
    assert_int_equal(ahl_framestore_hold(&fs, "../../etc/passwd", NULL, NULL, &h, &err),
                     AHL_EINVAL);
    ahl_framestore_cache_close(&fs);
}

static void test_bad_ids(void **state)
{
    (void)state;
    struct ahl_framestore fs;
    struct ahl_err err = {0};
    assert_int_equal(ahl_framestore_open(&fs, root, &err), 0);
    static const char *bad[] = {
        "",
        "0123456789ABCDEF0123456789abcdef",  /* upper case */
        "0123456789abcdef0123456789abcde",   /* 31 */
        "0123456789abcdef0123456789abcdef0", /* 33 */
        "../../../../etc/passwd/0123456789ab",
        "0123456789abcdef0123456789abcd/f",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *data;
        size_t len;
        assert_int_equal(ahl_framestore_put(&fs, bad[i], "x", 1, &err), AHL_EINVAL);
        assert_int_equal(ahl_framestore_get(&fs, bad[i], &data, &len, &err), AHL_EINVAL);
        assert_int_equal(ahl_framestore_exists(&fs, bad[i]), AHL_EINVAL);
        assert_int_equal(ahl_framestore_delete(&fs, bad[i], &err), AHL_EINVAL);
    }
    assert_int_equal(ahl_framestore_put(&fs, NULL, "x", 1, &err), AHL_EINVAL);
    assert_int_equal(ahl_framestore_open(&fs, "", &err), AHL_EINVAL);
}

static void test_sweeps_temporaries_and_empty_frames(void **state)
{
    (void)state;
    struct ahl_framestore fs;
    struct ahl_err err = {0};
    assert_int_equal(ahl_framestore_open(&fs, root, &err), 0);
    /* A crash between create and rename leaves tmp.* behind; open removes it, not frames. */
    const char *id2 = "ffeeddccbbaa99887766554433221100";
    assert_int_equal(ahl_framestore_put(&fs, id2, "", 0, &err), 0); /* empty frames are fine */
    char tmp[400], live[400];
    snprintf(tmp, sizeof tmp, "%s/ff/ee/tmp.deadbeef", root);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs("torn", f);
    fclose(f);
    /* Left by a crash: last written just over the sweep age ago. */
    struct timespec old[2] = {{0, UTIME_OMIT}, {time(NULL) - AHL_FRAMESTORE_TMP_MAX_AGE - 5, 0}};
    assert_int_equal(utimensat(AT_FDCWD, tmp, old, 0), 0);
    /* Another process's write in progress (written a minute ago, well within the sweep age):
     * opening the store must not pull it from under that writer. */
    snprintf(live, sizeof live, "%s/ff/ee/tmp.inflight", root);
    f = fopen(live, "w");
    assert_non_null(f);
    fputs("half", f);
    fclose(f);
    struct timespec recent[2] = {{0, UTIME_OMIT}, {time(NULL) - 60, 0}};
    assert_int_equal(utimensat(AT_FDCWD, live, recent, 0), 0);
    assert_int_equal(ahl_framestore_open(&fs, root, &err), 0);
    struct stat st;
    assert_int_not_equal(stat(tmp, &st), 0);
    assert_int_equal(stat(live, &st), 0);
    assert_int_equal(st.st_size, 4);
    /* Once it is as old as a crash's leftover, the next open removes it too. */
    old[1].tv_sec = time(NULL) - AHL_FRAMESTORE_TMP_MAX_AGE;
    assert_int_equal(utimensat(AT_FDCWD, live, old, 0), 0);
    assert_int_equal(ahl_framestore_open(&fs, root, &err), 0);
    assert_int_not_equal(stat(live, &st), 0);
    assert_int_equal(ahl_framestore_exists(&fs, id2), 1);
    uint8_t *data;
    size_t len;
    assert_int_equal(ahl_framestore_get(&fs, id2, &data, &len, &err), 0);
    assert_int_equal(len, 0);
    free(data);
}

/* Entries of dir, not counting "." and "..". */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* The atomic write both stores use (base/fileio.h): the file appears whole, nothing temporary is
 * left, a link at the name is replaced rather than written through, and a failure names its step
 * and leaves no temporary file. */
static void test_atomic_write(void **state)
{
    (void)state;
    char dir[300], path[400], outside[400];
    snprintf(dir, sizeof dir, "%s/w", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    struct ahl_write_failure why;
    assert_int_equal(ahl_write_file_atomic(dfd, "f", "tmp.", 0640, "hello", 5, &why), 0);
    snprintf(path, sizeof path, "%s/f", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 5);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(count_entries(dir), 1);

    /* A link at the name: the link is replaced, its target keeps its bytes. */
    snprintf(outside, sizeof outside, "%s/outside", root);
    FILE *f = fopen(outside, "w");
    assert_non_null(f);
    fputs("SECRET", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/link", dir);
    assert_int_equal(symlink(outside, path), 0);
    assert_int_equal(ahl_write_file_atomic(dfd, "link", "tmp.", 0644, "new", 3, &why), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(stat(outside, &st), 0);
    assert_int_equal(st.st_size, 6);

    /* A directory at the name cannot be replaced: the rename fails, and says so. */
    snprintf(path, sizeof path, "%s/d", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/d/x", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(ahl_write_file_atomic(dfd, "d", "tmp.", 0644, "x", 1, &why), AHL_EIO);
    assert_string_equal(why.step, "rename into place");
    assert_string_equal(why.entry, "d");
    assert_true(why.errnum != 0);
    assert_int_equal(count_entries(dir), 3); /* f, link, d: no temporary file */
    /* Without a place to report to, the same failure is just the code. */
    assert_int_equal(ahl_write_file_atomic(dfd, "d", "tmp.", 0644, "x", 1, NULL), AHL_EIO);
    close(dfd);

    /* A put's failure names the file as the store sees it. */
    struct ahl_framestore fs;
    struct ahl_err err = {0};
    assert_int_equal(ahl_framestore_open(&fs, root, &err), 0);
    snprintf(path, sizeof path, "%s/01/23/%s/x", root, ID);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(ahl_framestore_put(&fs, ID, "x", 1, &err), AHL_EIO);
    snprintf(path, sizeof path, "cannot rename into place %s/01/23/%s:", root, ID);
    if (!strstr(err.msg, path))
        fail_msg("message '%s' lacks '%s'", err.msg, path);
    snprintf(path, sizeof path, "%s/01/23", root);
    assert_int_equal(count_entries(path), 1);
}

static void test_stores_transcoded_frames(void **state)
{
    (void)state;
    struct ahl_framestore fs;
    struct ahl_err err = {0};
    assert_int_equal(ahl_framestore_open(&fs, root, &err), 0);
    struct ahl_pixel_desc d =
        ahl_pixel_desc_make(16, 15, 1, 16, 16, 0, "MONOCHROME2", AHL_TS_EXPLICIT_LE);
    uint8_t px[16 * 15 * 2];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(i * 7);
    struct ahl_stored_frame sf;
    assert_int_equal(ahl_frame_transcode(&d, px, sizeof px, &sf, &err), 0);
    ahl_frame_id(sf.stored_transfer_syntax, sf.data, sf.len, sf.id);
    assert_int_equal(ahl_framestore_put(&fs, sf.id, sf.data, sf.len, &err), 0);
    uint8_t *data;
    size_t len;
    assert_int_equal(ahl_framestore_get(&fs, sf.id, &data, &len, &err), 0);
    assert_int_equal(len, sf.frame_size_in_bytes);
    assert_memory_equal(data, sf.data, len);
    /* The id is the content address of what was stored. */
    char id[33];
    ahl_frame_id(sf.stored_transfer_syntax, data, len, id);
    assert_string_equal(id, sf.id);
    free(data);
    ahl_stored_frame_release(&sf);
}

static unsigned syncs;
static bool sync_fails;
static int (*real_syncfs)(int fd);

static int counting_syncfs(int fd)
{
    syncs++;
    if (sync_fails) {
        errno = EIO;
        return -1;
    }
    return real_syncfs(fd);
}

static void test_write_and_sync(void **state)
{
    (void)state;
    struct ahl_framestore fs;
    struct ahl_framestore_sync s;
    struct ahl_err err = {0};
    static const char *ids[] = {"00112233445566778899aabbccddeeff",
                                "ffeeddccbbaa99887766554433221100",
                                "0f1e2d3c4b5a69788796a5b4c3d2e1f0"};
    uint64_t t[4];
    syncs = 0;
    sync_fails = false;
    assert_int_equal(ahl_framestore_open(&fs, root, &err), 0);
    assert_int_equal(ahl_framestore_sync_open(&fs, &s, &err), 0);
    real_syncfs = s.syncfs_fn;
    s.syncfs_fn = counting_syncfs;
    assert_int_equal(ahl_framestore_sync(&s, 0, &err), 0); /* nothing written: nothing to do */
    assert_int_equal(syncs, 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(ahl_framestore_write(&fs, &s, ids[i], ids[i], 32, &t[i], &err), 0);
    assert_true(t[0] > 0 && t[1] > t[0]);
    /* Written frames are there to read at once, whole. */
    uint8_t *data;
    size_t len;
    assert_int_equal(ahl_framestore_get(&fs, ids[1], &data, &len, &err), 0);
    assert_int_equal(len, 32);
    assert_memory_equal(data, ids[1], 32);
    free(data);
    /* One sync covers every write before it; a ticket it covered needs no other. */
    assert_int_equal(ahl_framestore_sync(&s, t[1], &err), 0);
    assert_int_equal(syncs, 1);
    assert_int_equal(ahl_framestore_sync(&s, t[0], &err), 0);
    assert_int_equal(syncs, 1);
    /* The same frame again: the file is left alone, and gets a new ticket to sync. */
    assert_int_equal(ahl_framestore_write(&fs, &s, ids[0], ids[0], 32, &t[2], &err), 0);
    assert_true(t[2] > t[1]);
    /* A failed sync: its tickets never count as durable, whatever later syncs do. */
    sync_fails = true;
    assert_int_equal(ahl_framestore_sync(&s, t[2], &err), AHL_EIO);
    assert_non_null(strstr(err.msg, "sync"));
    sync_fails = false;
    assert_int_equal(ahl_framestore_sync(&s, t[2], &err), AHL_EIO);
    assert_int_equal(syncs, 2); /* refused without trying again */
    /* Writes after it are synced by the next sync. */
    assert_int_equal(ahl_framestore_write(&fs, &s, ids[2], ids[2], 32, &t[3], &err), 0);
    assert_int_equal(ahl_framestore_sync(&s, t[3], &err), 0);
    assert_int_equal(syncs, 3);
    ahl_framestore_sync_close(&s);
    ahl_framestore_sync_close(&s); /* closing twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_finds_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweeps_temporaries_and_empty_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stores_transcoded_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_and_sync, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
