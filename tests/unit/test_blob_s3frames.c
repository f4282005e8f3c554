/* links: frames */
/* The frame store's S3 backend (blob/framestore_s3.c) against moto_server, started by
 * tests/unit/with_moto.sh with the environment test_aws_s3.c describes (AHL_TEST_S3_ENDPOINT,
 * AHL_TEST_S3_BUCKET, AWS_*): the key layout, every read checked against the id (an object
 * overwritten with other bytes is AHL_ECORRUPT, an absent one AHL_ENOTFOUND), writes durable with
 * ticket 0, the verified-frame cache without a look at the object on a hit, many threads sharing
 * one store, and a 64 MB frame streamed through an unlinked temporary file without the process's
 * peak memory growing by the frame, and requests the endpoint failed sent again (against a
 * scripted endpoint of a few lines). The raw S3 client is the oracle and the vandal.
 * Each run writes below a prefix of its own. Without AHL_TEST_S3_ENDPOINT it exits with 77, which
 * CTest reports as a skip. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "aws/s3.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/codec.h"
#include "blob/framestore.h"
#include "frames/frames.h"

static const char *bucket;
static char uri[512], key_prefix[256], tmp_dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(key_prefix, sizeof key_prefix, "frames-test/%ld-%ld", (long)getpid(),
             (long)time(NULL));
    snprintf(uri, sizeof uri, "s3://%s/%s", bucket, key_prefix);
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/ahl-s3frames-XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void open_store(struct ahl_framestore *fs)
{
    struct ahl_s3_config cfg = {.endpoint = getenv("AHL_TEST_S3_ENDPOINT")};
    struct ahl_err err;
    if (ahl_framestore_open_s3(fs, uri, &cfg, tmp_dir, &err) < 0)
        fail_msg("open_s3: %s", err.msg);
}

static struct ahl_s3 *raw_client(void)
{
    struct ahl_s3_config cfg = {.endpoint = getenv("AHL_TEST_S3_ENDPOINT")};
    struct ahl_s3 *s3;
    struct ahl_err err;
    if (ahl_s3_open(&cfg, &s3, &err) < 0)
        fail_msg("s3_open: %s", err.msg);
    return s3;
}

/* A frame of n bytes made from seed, stored as .4.202, and its id. */
static uint8_t *make_frame(size_t n, unsigned seed, char id[33])
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    ahl_frame_id(AHL_TS_HTJ2K_RPCL, p, n, id);
    return p;
}

static void key_of(const char *id, char *key, size_t cap)
{
    snprintf(key, cap, "%s/%.2s/%s", key_prefix, id, id);
}

/* Everything a reader reaches the bytes by, on a frame that must be intact. */
static void assert_reads(struct ahl_framestore *fs, const char *id, const uint8_t *want, size_t n)
{
    struct ahl_err err;
    uint8_t *data, buf[64];
    size_t len;
    int fd;
    uint64_t size;
    assert_int_equal(ahl_framestore_exists(fs, id), 1);
    assert_int_equal(ahl_framestore_get(fs, id, &data, &len, &err), 0);
    assert_int_equal(len, n);
    assert_memory_equal(data, want, n);
    free(data);
    assert_int_equal(ahl_framestore_read_verified(fs, id, AHL_TS_HTJ2K_RPCL, &data, &len, &err), 0);
    assert_int_equal(len, n);
    assert_memory_equal(data, want, n);
    free(data);
    assert_int_equal(ahl_framestore_open_verified(fs, id, NULL, &fd, &size, &err), 0);
    assert_int_equal(size, n);
    size_t head = n < sizeof buf ? n : sizeof buf;
    assert_int_equal(read(fd, buf, head), (ssize_t)head); /* at offset 0 */
    assert_memory_equal(buf, want, head);
    close(fd);
    assert_int_equal(ahl_framestore_check(fs, id, "", n, &err), 0);
    assert_int_equal(ahl_framestore_check(fs, id, NULL, UINT64_MAX, &err), 0);
}

static void test_layout_round_trip(void **state)
{
    (void)state;
    struct ahl_framestore fs;
    struct ahl_err err;
    char id[33], key[600], path[700], want[700];
    uint64_t size;
    open_store(&fs);
    uint8_t *p = make_frame(40000, 1, id);
    assert_int_equal(ahl_framestore_exists(&fs, id), 0);
    assert_int_equal(ahl_framestore_put(&fs, id, p, 40000, &err), 0);
    /* Where it went: <prefix>/<id[0..2]>/<id>, as the raw client sees it. */
    struct ahl_s3 *s3 = raw_client();
    key_of(id, key, sizeof key);
    assert_int_equal(ahl_s3_head(s3, bucket, key, &size, &err), 0);
    assert_int_equal(size, 40000);
    ahl_framestore_path(&fs, id, path, sizeof path);
    snprintf(want, sizeof want, "s3://%s/%s", bucket, key);
    assert_string_equal(path, want);
    assert_reads(&fs, id, p, 40000);
    /* A put of the same frame again is harmless (content address). */
    assert_int_equal(ahl_framestore_put(&fs, id, p, 40000, &err), 0);
    assert_reads(&fs, id, p, 40000);
    /* A trailing '/' on the prefix names the same keys. */
    struct ahl_framestore fs2;
    struct ahl_s3_config cfg = {.endpoint = getenv("AHL_TEST_S3_ENDPOINT")};
    char uri2[600];
    snprintf(uri2, sizeof uri2, "%s//", uri);
    assert_int_equal(ahl_framestore_open_s3(&fs2, uri2, &cfg, tmp_dir, &err), 0);
    assert_reads(&fs2, id, p, 40000);
    ahl_framestore_close(&fs2);
    /* Delete, then absent everywhere. */
    assert_int_equal(ahl_framestore_delete(&fs, id, &err), 0);
    assert_int_equal(ahl_s3_head(s3, bucket, key, &size, &err), AHL_ENOTFOUND);
    assert_int_equal(ahl_framestore_delete(&fs, id, &err), AHL_ENOTFOUND);
    /* An empty frame is a frame too. */
    char eid[33];
    uint8_t *e = make_frame(0, 2, eid);
    assert_int_equal(ahl_framestore_put(&fs, eid, e, 0, &err), 0);
    assert_reads(&fs, eid, e, 0);
    free(e);
    ahl_s3_close(s3);
    free(p);
    ahl_framestore_close(&fs);
}

static void test_absent_and_bad_ids(void **state)
{
    (void)state;
    struct ahl_framestore fs;
    struct ahl_err err;
    char id[33];
    uint8_t *data;
    size_t len;
    int fd;
    uint64_t size;
    const struct ahl_frame_hold *h;
    open_store(&fs);
    free(make_frame(100, 3, id)); /* never stored */
    assert_int_equal(ahl_framestore_exists(&fs, id), 0);
    assert_int_equal(ahl_framestore_get(&fs, id, &data, &len, &err), AHL_ENOTFOUND);
    assert_int_equal(ahl_framestore_read_verified(&fs, id, "", &data, &len, &err), AHL_ENOTFOUND);
    assert_non_null(strstr(err.msg, id));
    assert_int_equal(ahl_framestore_open_verified(&fs, id, "", &fd, &size, &err), AHL_ENOTFOUND);
    assert_int_equal(fd, -1);
    assert_int_equal(ahl_framestore_open_frame(&fs, id, &fd, &size, &err), AHL_ENOTFOUND);
    assert_int_equal(ahl_framestore_check(&fs, id, "", 100, &err), AHL_ENOTFOUND);
    assert_int_equal(ahl_framestore_cache_open(&fs, 1 << 20), 0);
    assert_int_equal(ahl_framestore_hold(&fs, id, "", NULL, &h, &err), AHL_ENOTFOUND);
    static const char *const bad[] = {"", "0123", "0123456789ABCDEF0123456789abcdef",
                                      "../../../../../../../../etc/passwd0",
                                      "0123456789abcdef0123456789abcdeg"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(ahl_framestore_put(&fs, bad[i], "x", 1, &err), AHL_EINVAL);
        assert_int_equal(ahl_framestore_get(&fs, bad[i], &data, &len, &err), AHL_EINVAL);
        assert_int_equal(ahl_framestore_exists(&fs, bad[i]), AHL_EINVAL);
        assert_int_equal(ahl_framestore_open_verified(&fs, bad[i], "", &fd, &size, &err),
                         AHL_EINVAL);
        assert_int_equal(ahl_framestore_check(&fs, bad[i], "", 1, &err), AHL_EINVAL);
        assert_int_equal(ahl_framestore_delete(&fs, bad[i], &err), AHL_EINVAL);
        if (strlen(bad[i]) == 32)
            assert_int_equal(ahl_framestore_hold(&fs, bad[i], "", NULL, &h, &err), AHL_EINVAL);
    }
    ahl_framestore_close(&fs);

    /* What the commands are given. */
    assert_int_equal(ahl_framestore_open_dir(&fs, tmp_dir, "s3://bucket-x/p", NULL, true, &err),
                     AHL_EINVAL);
    assert_non_null(strstr(err.msg, "--s3-endpoint"));
    assert_int_equal(
        ahl_framestore_open_dir(&fs, tmp_dir, "/srv/frames", "http://127.0.0.1:1", true, &err),
        AHL_EINVAL);
    assert_int_equal(ahl_framestore_open_dir(&fs, tmp_dir, "s3://Not_A_Bucket/p",
                                             "http://127.0.0.1:1", true, &err),
                     AHL_EPARSE);
    char data_dir[300], spool[320];
    struct stat st;
    snprintf(data_dir, sizeof data_dir, "%s/data", tmp_dir);
    assert_int_equal(mkdir(data_dir, 0700), 0);
    assert_int_equal(
        ahl_framestore_open_dir(&fs, data_dir, uri, getenv("AHL_TEST_S3_ENDPOINT"), false, &err),
        0);
    assert_non_null(fs.s3);
    assert_string_equal(fs.root, uri);
    snprintf(spool, sizeof spool, "%s/tmp", data_dir);
    assert_int_equal(stat(spool, &st), 0); /* where frames are spooled */
    assert_true(S_ISDIR(st.st_mode));
    ahl_framestore_close(&fs);
    snprintf(spool, sizeof spool, "rm -rf '%s'", data_dir);
    assert_int_equal(system(spool), 0);
}

/* Overwrites the object of id with other bytes through the raw client. */
static void vandalize(const char *id, const void *bytes, size_t n)
{
    struct ahl_s3 *s3 = raw_client();
    struct ahl_err err;
    char key[600];
    key_of(id, key, sizeof key);
    if (ahl_s3_put(s3, bucket, key, bytes, n, NULL, &err) < 0)
        fail_msg("vandalize: %s", err.msg);
    ahl_s3_close(s3);
}

static void assert_damaged(struct ahl_framestore *fs, const char *id, size_t n)
{
    struct ahl_err err;
    uint8_t *data;
    size_t len;
    int fd;
    uint64_t size;
    const struct ahl_frame_hold *h;
    assert_int_equal(ahl_framestore_open_verified(fs, id, "", &fd, &size, &err), AHL_ECORRUPT);
    assert_non_null(strstr(err.msg, "is damaged"));
    assert_int_equal(fd, -1);
    assert_int_equal(ahl_framestore_read_verified(fs, id, AHL_TS_HTJ2K_RPCL, &data, &len, &err),
                     AHL_ECORRUPT);
    assert_null(data);
    assert_int_equal(ahl_framestore_check(fs, id, "", n, &err), AHL_ECORRUPT);
    assert_int_equal(ahl_framestore_check(fs, id, "", UINT64_MAX, &err), AHL_ECORRUPT);
    assert_int_equal(ahl_framestore_hold(fs, id, "", NULL, &h, &err), AHL_ECORRUPT);
    assert_null(h);
}

static void test_damaged_objects(void **state)
{
    (void)state;
    struct ahl_framestore fs;
    struct ahl_err err;
    char id[33], other_id[33];
    uint8_t *data;
    size_t len;
    open_store(&fs);
    assert_int_equal(ahl_framestore_cache_open(&fs, 8 << 20), 0);
    uint8_t *p = make_frame(5000, 4, id);
    uint8_t *other = make_frame(5000, 5, other_id);
    assert_int_equal(ahl_framestore_put(&fs, id, p, 5000, &err), 0);

    /* Same size, other bytes: only the hash can tell. */
    vandalize(id, other, 5000);
    assert_damaged(&fs, id, 5000);
    /* The unchecked read hands what is there (ahl_framestore_get says so). */
    assert_int_equal(ahl_framestore_get(&fs, id, &data, &len, &err), 0);
    assert_memory_equal(data, other, 5000);
    free(data);
    /* The message names the frame the bytes are instead. */
    int fd;
    uint64_t size;
    assert_int_equal(ahl_framestore_open_verified(&fs, id, "", &fd, &size, &err), AHL_ECORRUPT);
    assert_non_null(strstr(err.msg, other_id));

    /* Cut short, and a size that is not FrameSizeInBytes. */
    vandalize(id, p, 4999);
    assert_damaged(&fs, id, 5000);
    assert_int_equal(ahl_framestore_check(&fs, id, "", 5000, &err), AHL_ECORRUPT);
    assert_non_null(strstr(err.msg, "FrameSizeInBytes 5000"));
    /* The right bytes but the wrong FrameSizeInBytes in the metadata. */
    vandalize(id, p, 5000);
    assert_int_equal(ahl_framestore_check(&fs, id, "", 4000, &err), AHL_ECORRUPT);
    /* Another syntax than the one the id was made with. */
    assert_int_equal(ahl_framestore_check(&fs, id, AHL_TS_EXPLICIT_LE, 5000, &err), AHL_ECORRUPT);

    /* Put again repairs it. */
    vandalize(id, other, 5000);
    assert_int_equal(ahl_framestore_put(&fs, id, p, 5000, &err), 0);
    assert_reads(&fs, id, p, 5000);
    free(p);
    free(other);
    ahl_framestore_close(&fs);
}

static int test_wrap(const uint8_t *data, size_t len, struct ahl_buf *prefix, struct ahl_err *err)
{
    (void)err;
    return ahl_buf_addf(prefix, "<%zu:%02x>", len, len ? data[0] : 0);
}

static void test_hold_and_durable_writes(void **state)
{
    (void)state;
    struct ahl_framestore fs, copy;
    struct ahl_framestore_sync s;
    struct ahl_err err;
    char id[33], big_id[33], other_id[33];
    uint64_t ticket = 99;
    size_t frames, bytes;
    const struct ahl_frame_hold *h, *again;
    open_store(&fs);
    uint8_t *p = make_frame(3000, 6, id);
    uint8_t *other = make_frame(3000, 7, other_id);
    uint8_t *big = make_frame(200000, 8, big_id);

    /* An importer's copy writes; durable at once, ticket 0, the sync has nothing to do. */
    copy = fs;
    assert_int_equal(ahl_framestore_sync_open(&copy, &s, &err), 0);
    assert_int_equal(ahl_framestore_write(&copy, &s, id, p, 3000, &ticket, &err), 0);
    assert_int_equal(ticket, 0);
    assert_int_equal(ahl_framestore_write(&copy, &s, big_id, big, 200000, &ticket, &err), 0);
    assert_int_equal(ticket, 0);
    assert_int_equal(ahl_framestore_sync(&s, ticket, &err), 0);
    ahl_framestore_sync_close(&s);
    assert_reads(&fs, id, p, 3000);

    /* The cache: a miss reads and wraps, a hit is the same entry. */
    assert_int_equal(ahl_framestore_cache_open(&fs, 1 << 20), 0);
    assert_int_equal(ahl_framestore_hold(&fs, id, "", test_wrap, &h, &err), 0);
    assert_int_equal(h->len, 3000);
    assert_memory_equal(h->data, p, 3000);
    char want[32];
    snprintf(want, sizeof want, "<3000:%02x>", p[0]);
    assert_int_equal(h->prefix_len, strlen(want));
    assert_memory_equal(h->prefix, want, strlen(want));
    assert_ptr_equal(h->prefix + h->prefix_len, h->data);
    ahl_framestore_cache_stats(&fs, &frames, &bytes);
    assert_int_equal(frames, 1);
    /* A hit does not look at the object: damage after the read is not seen by the cache, and
     * what it serves is still the checked bytes (the documented trade, framestore.h). */
    vandalize(id, other, 3000);
    assert_int_equal(ahl_framestore_hold(&fs, id, "", test_wrap, &again, &err), 0);
    assert_ptr_equal(again, h);
    assert_memory_equal(again->data, p, 3000);
    ahl_frame_hold_release(again);
    ahl_frame_hold_release(h);
    /* ...while every uncached read sees it. */
    assert_int_equal(ahl_framestore_check(&fs, id, "", 3000, &err), AHL_ECORRUPT);
    /* Over budget / 8 (128 KiB here): not held, the caller streams it. */
    assert_int_equal(ahl_framestore_hold(&fs, big_id, "", test_wrap, &h, &err), AHL_ETOOBIG);
    assert_null(h);
    ahl_framestore_cache_stats(&fs, &frames, &bytes);
    assert_int_equal(frames, 1);
    assert_int_equal(ahl_framestore_put(&fs, id, p, 3000, &err), 0);
    free(p);
    free(other);
    free(big);
    ahl_framestore_close(&fs);
}

/* ---- many threads on one store (each request takes a client of the pool) ---- */

struct worker {
    struct ahl_framestore *fs;
    const char (*ids)[33];
    int n, failures;
};

static void *reader(void *arg)
{
    struct worker *w = arg;
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < w->n; i++) {
            struct ahl_err err;
            int fd;
            uint64_t size;
            const struct ahl_frame_hold *h;
            if (ahl_framestore_open_verified(w->fs, w->ids[i], "", &fd, &size, &err) < 0) {
                print_error("open_verified: %s\n", err.msg);
                w->failures++;
            } else {
                close(fd);
            }
            int rc = ahl_framestore_hold(w->fs, w->ids[i], "", NULL, &h, &err);
            if (rc < 0 && rc != AHL_ETOOBIG) {
                print_error("hold: %s\n", err.msg);
                w->failures++;
            }
            if (rc == 0)
                ahl_frame_hold_release(h);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct ahl_framestore fs;
    struct ahl_err err;
    char ids[6][33];
    pthread_t t[4];
    struct worker w[4];
    open_store(&fs);
    assert_int_equal(ahl_framestore_cache_open(&fs, 40000), 0); /* holds about one of them */
    for (int i = 0; i < 6; i++) {
        uint8_t *p = make_frame(2000 + (size_t)i * 700, 10 + (unsigned)i, ids[i]);
        assert_int_equal(ahl_framestore_put(&fs, ids[i], p, 2000 + (size_t)i * 700, &err), 0);
        free(p);
    }
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.fs = &fs, .ids = (const char(*)[33])ids, .n = 6};
        assert_int_equal(pthread_create(&t[i], NULL, reader, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    ahl_framestore_close(&fs);
}

/* ---- a large frame is streamed ---- */

/* A field of /proc/self/status in kB, or -1. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static void test_large_frame_streamed(void **state)
{
    (void)state;
    const size_t n = (size_t)64 << 20;
    struct ahl_framestore fs;
    struct ahl_err err;
    char id[33];
    int fd;
    uint64_t size;
    struct stat st;
    open_store(&fs);
    uint8_t *p = make_frame(n, 9, id);
    assert_int_equal(ahl_framestore_put(&fs, id, p, n, &err), 0);
    uint32_t crc = ahl_crc32(0, p, n);
    free(p); /* a 64 MB block is its own mapping: free gives it back */

    /* Peak RSS from here on: /proc/self/clear_refs "5" resets VmHWM to the current RSS. */
    int cr = open("/proc/self/clear_refs", O_WRONLY);
    assert_true(cr >= 0);
    assert_int_equal(write(cr, "5", 1), 1);
    close(cr);
    long base = status_kb("VmHWM");
    assert_true(base > 0);

    assert_int_equal(ahl_framestore_open_verified(&fs, id, "", &fd, &size, &err), 0);
    long peak = status_kb("VmHWM");
    assert_int_equal(size, n);
    /* An unlinked regular file in the temporary directory, the whole frame in it. */
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_nlink, 0);
    assert_int_equal((uint64_t)st.st_size, n);
    print_message("64 MB frame: peak RSS grew by %ld kB during open_verified\n", peak - base);
    assert_true(peak - base < 16 * 1024);
    /* The bytes read back from offset 0 are the frame's. */
    uint8_t *buf = malloc(1 << 20);
    uint32_t got = 0;
    size_t total = 0;
    ssize_t r;
    while ((r = read(fd, buf, 1 << 20)) > 0) {
        got = ahl_crc32(got, buf, (size_t)r);
        total += (size_t)r;
    }
    free(buf);
    close(fd);
    assert_int_equal(total, n);
    assert_int_equal(got, crc);
    /* Nothing left in the temporary directory. */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", tmp_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(ahl_framestore_delete(&fs, id, &err), 0);
    ahl_framestore_close(&fs);
}

/* ---- failures of the endpoint: a scripted one ---- */

struct reply {
    int status; /* 0: close the connection without answering */
    const void *body;
    size_t len;
};

struct script {
    int listener;
    const struct reply *replies;
    int n, served;
};

/* Answers one request per connection with the next reply of the script, then closes it. */
static void *scripted_endpoint(void *arg)
{
    struct script *sc = arg;
    for (; sc->served < sc->n; sc->served++) {
        int c = accept(sc->listener, NULL, NULL);
        if (c < 0)
            break;
        char req[8192];
        size_t got = 0;
        while (got < sizeof req - 1) { /* the request's head (GET and HEAD have no body) */
            ssize_t r = read(c, req + got, sizeof req - 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
            req[got] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        const struct reply *rp = &sc->replies[sc->served];
        if (rp->status) {
            char head[256];
            int n = snprintf(head, sizeof head,
                             "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                             rp->status, rp->len);
            if (write(c, head, (size_t)n) != n || (rp->len && write(c, rp->body, rp->len) < 0))
                break;
        }
        close(c);
    }
    return NULL;
}

/* Runs fn against an endpoint answering with replies, and returns how many requests it saw. */
static int with_script(const struct reply *replies, int n, int (*fn)(struct ahl_framestore *))
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    struct script sc = {.listener = socket(AF_INET, SOCK_STREAM, 0), .replies = replies, .n = n};
    assert_true(sc.listener >= 0);
    assert_int_equal(bind(sc.listener, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(sc.listener, 8), 0);
    assert_int_equal(getsockname(sc.listener, (struct sockaddr *)&a, &al), 0);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", ntohs(a.sin_port));
    struct ahl_s3_config cfg = {.endpoint = endpoint, .timeout_s = 5};
    struct ahl_framestore fs;
    struct ahl_err err;
    pthread_t t;
    assert_int_equal(ahl_framestore_open_s3(&fs, "s3://scripted/frames", &cfg, tmp_dir, &err), 0);
    assert_int_equal(pthread_create(&t, NULL, scripted_endpoint, &sc), 0);
    int rc = fn(&fs);
    shutdown(sc.listener, SHUT_RDWR); /* ends an accept still waiting */
    pthread_join(t, NULL);
    close(sc.listener);
    ahl_framestore_close(&fs);
    assert_int_equal(rc, 0);
    return sc.served;
}

static uint8_t retry_frame[3000];
static char retry_id[33];

static int read_intact(struct ahl_framestore *fs)
{
    struct ahl_err err;
    int fd;
    uint64_t size;
    uint8_t *data;
    size_t len;
    if (ahl_framestore_open_verified(fs, retry_id, "", &fd, &size, &err) < 0)
        fail_msg("open_verified: %s", err.msg);
    uint8_t back[sizeof retry_frame];
    assert_int_equal(size, sizeof retry_frame);
    assert_int_equal(read(fd, back, sizeof back), (ssize_t)sizeof back);
    assert_memory_equal(back, retry_frame, sizeof back);
    close(fd);
    if (ahl_framestore_read_verified(fs, retry_id, "", &data, &len, &err) < 0)
        fail_msg("read_verified: %s", err.msg);
    assert_memory_equal(data, retry_frame, len);
    free(data);
    return 0;
}

static int read_fails(struct ahl_framestore *fs, int want)
{
    struct ahl_err err;
    int fd;
    uint64_t size;
    assert_int_equal(ahl_framestore_open_verified(fs, retry_id, "", &fd, &size, &err), want);
    return 0;
}
static int read_corrupt(struct ahl_framestore *fs)
{
    return read_fails(fs, AHL_ECORRUPT);
}
static int read_missing(struct ahl_framestore *fs)
{
    return read_fails(fs, AHL_ENOTFOUND);
}
static int read_broken(struct ahl_framestore *fs)
{
    return read_fails(fs, AHL_EIO);
}
static int put_frame(struct ahl_framestore *fs)
{
    struct ahl_err err;
    if (ahl_framestore_put(fs, retry_id, retry_frame, sizeof retry_frame, &err) < 0)
        fail_msg("put: %s", err.msg);
    return 0;
}

static void test_endpoint_failures_retried(void **state)
{
    (void)state;
    uint8_t *p = make_frame(sizeof retry_frame, 20, retry_id);
    memcpy(retry_frame, p, sizeof retry_frame);
    free(p);
    const struct reply ok = {200, retry_frame, sizeof retry_frame};
    const struct reply fail500 = {500, "", 0}, fail503 = {503, "", 0}, dropped = {0, NULL, 0};
    /* A 500, a dropped connection: sent again, and the frame arrives whole (twice: into a
     * temporary file, then into memory). */
    const struct reply a[] = {fail500, ok, dropped, ok};
    assert_int_equal(with_script(a, 4, read_intact), 4);
    /* Three failures in a row are the end of it. */
    const struct reply b[] = {fail503, fail500, fail503};
    assert_int_equal(with_script(b, 3, read_broken), 3);
    /* Other bytes are damage, not a failure of the endpoint: not asked again. A 404 neither. */
    const struct reply c[] = {{200, retry_frame, sizeof retry_frame - 1}, ok};
    assert_int_equal(with_script(c, 1, read_corrupt), 1);
    const struct reply d[] = {{404, "", 0}};
    assert_int_equal(with_script(d, 1, read_missing), 1);
    /* A PUT is sent again too. The scripted endpoint reads no request body: it answers once it has
     * the head (curl sends no Expect: 100-continue, the head comes first). */
    const struct reply e[] = {fail503, {200, "", 0}};
    assert_int_equal(with_script(e, 2, put_frame), 2);
}

struct listed {
    struct ahl_framestore_entry v[8];
    size_t n;
};

static int on_frame(void *ctx, const struct ahl_framestore_entry *e)
{
    struct listed *l = ctx;
    if (l->n < 8)
        l->v[l->n++] = *e;
    return 0;
}

/* The collector's view of the bucket (framestore.h, "collecting frames"): every frame object under
 * the store's prefix with its size and LastModified, nothing else; a removal takes only an object
 * last written before the time given, as its HeadObject says. */
static void test_list_and_reclaim(void **state)
{
    (void)state;
    struct ahl_framestore fs;
    struct ahl_err err;
    char uri2[600], id1[33], id2[33], key[700];
    uint64_t freed = 0;
    snprintf(uri2, sizeof uri2, "%s-gc", uri);
    struct ahl_s3_config cfg = {.endpoint = getenv("AHL_TEST_S3_ENDPOINT")};
    assert_int_equal(ahl_framestore_open_s3(&fs, uri2, &cfg, tmp_dir, &err), 0);
    int64_t before = ahl_wall_ms();
    uint8_t *p1 = make_frame(3000, 21, id1), *p2 = make_frame(5000, 22, id2);
    assert_int_equal(ahl_framestore_put(&fs, id1, p1, 3000, &err), 0);
    assert_int_equal(ahl_framestore_put(&fs, id2, p2, 5000, &err), 0);
    /* Objects under the prefix that are not frames are not listed, nor removed. */
    struct ahl_s3 *s3 = raw_client();
    snprintf(key, sizeof key, "%s-gc/%.2s/not-a-frame", key_prefix, id1);
    assert_int_equal(ahl_s3_put(s3, bucket, key, "x", 1, NULL, &err), 0);
    snprintf(key, sizeof key, "%s-gc/zz/%s", key_prefix, id1);
    assert_int_equal(ahl_s3_put(s3, bucket, key, "x", 1, NULL, &err), 0);

    struct listed l = {.n = 0};
    assert_int_equal(ahl_framestore_list(&fs, on_frame, &l, &err), 0);
    assert_int_equal(l.n, 2);
    for (size_t i = 0; i < l.n; i++) {
        bool one = !strcmp(l.v[i].id, id1);
        assert_true(one || !strcmp(l.v[i].id, id2));
        assert_int_equal(l.v[i].size, one ? 3000 : 5000);
        /* LastModified: whole seconds on moto, within a few seconds of the put. */
        assert_true(l.v[i].mtime_ms >= before - 2000 && l.v[i].mtime_ms <= ahl_wall_ms() + 2000);
    }
    /* Written after the time given: kept. */
    assert_int_equal(ahl_framestore_reclaim(&fs, id1, before - 5000, &freed, &err), 0);
    assert_int_equal(freed, 0);
    assert_int_equal(ahl_framestore_exists(&fs, id1), 1);
    /* Written before it: removed, its size reported; a second removal finds nothing. */
    sleep(1); /* Last-Modified has whole seconds */
    int64_t later = ahl_wall_ms() + 1000;
    assert_int_equal(ahl_framestore_reclaim(&fs, id1, later, &freed, &err), 1);
    assert_int_equal(freed, 3000);
    assert_int_equal(ahl_framestore_exists(&fs, id1), 0);
    assert_int_equal(ahl_framestore_reclaim(&fs, id1, later, &freed, &err), 0);
    assert_int_equal(ahl_framestore_reclaim(&fs, "nothex", later, &freed, &err), AHL_EINVAL);
    l.n = 0;
    assert_int_equal(ahl_framestore_list(&fs, on_frame, &l, &err), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].id, id2);
    assert_int_equal(ahl_s3_head(s3, bucket, key, &freed, &err), 0); /* the stray object stays */
    ahl_s3_close(s3);
    free(p1);
    free(p2);
    ahl_framestore_close(&fs);
}

int main(void)
{
    bucket = getenv("AHL_TEST_S3_BUCKET");
    if (!getenv("AHL_TEST_S3_ENDPOINT") || !bucket) {
        fprintf(stderr,
                "no S3 endpoint (AHL_TEST_S3_ENDPOINT): run under tests/unit/with_moto.sh\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_round_trip), cmocka_unit_test(test_absent_and_bad_ids),
        cmocka_unit_test(test_damaged_objects),   cmocka_unit_test(test_hold_and_durable_writes),
        cmocka_unit_test(test_threads),           cmocka_unit_test(test_large_frame_streamed),
        cmocka_unit_test(test_endpoint_failures_retried),
        cmocka_unit_test(test_list_and_reclaim),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
