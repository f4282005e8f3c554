/* The S3 client (aws/s3.h) against a real S3-compatible endpoint: moto_server, started and filled
 * by tests/integration/test_s3_objstore.py (which tests/unit/with_moto.sh runs this under). Without
 * AHL_TEST_S3_ENDPOINT it exits with 77, which CTest reports as a skip. The Python side passes:
 *   AHL_TEST_S3_ENDPOINT  http://127.0.0.1:PORT
 *   AHL_TEST_S3_BUCKET    the filled bucket
 *   AHL_TEST_S3_MANIFEST  a file of "<sha256> <size> <key>\n" lines, one per uploaded object
 *   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION  the credentials to sign with
 *   AHL_TEST_S3_SIMPLE    "1" against an endpoint that verifies signatures but whose own verifier
 *                         mishandles encoded keys and queries (moto's): plain keys only, no
 *                         prefix listing, no paging requirement
 * and checks that this program ran rather than skipped. tests/unit/test_blob_s3.c does the same for
 * the object store's S3 backend, the adapter over this client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/codec.h"
#include "aws/s3.h"

struct entry {
    char *key;
    uint64_t size;
    char sha[65];
    int seen;
};

struct ctx {
    int simple;
    struct ahl_s3 *s3;
    const char *bucket;
    struct entry *e;
    size_t n;
};

static int setup(void **state)
{
    const char *ep = getenv("AHL_TEST_S3_ENDPOINT");
    struct ctx *c = calloc(1, sizeof *c);
    c->bucket = getenv("AHL_TEST_S3_BUCKET");
    c->simple = getenv("AHL_TEST_S3_SIMPLE") && strcmp(getenv("AHL_TEST_S3_SIMPLE"), "1") == 0;
    const char *manifest = getenv("AHL_TEST_S3_MANIFEST");
    assert_non_null(c->bucket);
    assert_non_null(manifest);
    FILE *f = fopen(manifest, "rb");
    assert_non_null(f);
    char line[4096];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        assert_non_null(sp2);
        if (c->n == cap) {
            cap = cap ? cap * 2 : 256;
            c->e = realloc(c->e, cap * sizeof *c->e);
        }
        struct entry *e = &c->e[c->n++];
        memcpy(e->sha, line, 64);
        e->sha[64] = '\0';
        e->size = strtoull(sp1 + 1, NULL, 10);
        e->key = strdup(sp2 + 1);
        e->seen = 0;
    }
    fclose(f);
    struct ahl_s3_config cfg = {.endpoint = ep};
    struct ahl_err err;
    if (ahl_s3_open(&cfg, &c->s3, &err) < 0)
        fail_msg("open: %s", err.msg);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *c = *state;
    ahl_s3_close(c->s3);
    for (size_t i = 0; i < c->n; i++)
        free(c->e[i].key);
    free(c->e);
    free(c);
    return 0;
}

static struct entry *find(struct ctx *c, const char *key)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->e[i].key, key) == 0)
            return &c->e[i];
    }
    return NULL;
}

struct list_state {
    struct ctx *c;
    size_t count;
    char last[2048];
    int unknown;
};

static int on_key(void *ctx, const char *key, uint64_t size)
{
    struct list_state *ls = ctx;
    /* Keys come in S3's byte order, each once. */
    if (ls->count && strcmp(ls->last, key) >= 0)
        fail_msg("listing out of order: '%s' after '%s'", key, ls->last);
    snprintf(ls->last, sizeof ls->last, "%s", key);
    ls->count++;
    struct entry *e = find(ls->c, key);
    if (!e) {
        print_message("listed a key that was not uploaded: '%s'\n", key);
        ls->unknown++;
        return 0;
    }
    assert_int_equal(size, e->size);
    e->seen++;
    return 0;
}

/* Every uploaded key is listed exactly once, across several pages, with its size; special
 * characters in keys survive the XML and URL encoding. */
static void test_list_complete(void **state)
{
    struct ctx *c = *state;
    assert_true(c->simple || c->n > 1000); /* forces paging */
    struct list_state ls = {.c = c};
    struct ahl_err err;
    if (ahl_s3_list(c->s3, c->bucket, "", on_key, &ls, &err) < 0)
        fail_msg("list: %s", err.msg);
    assert_int_equal(ls.unknown, 0);
    for (size_t i = 0; i < c->n; i++) {
        if (c->e[i].seen != 1)
            fail_msg("key '%s' listed %d times", c->e[i].key, c->e[i].seen);
    }
    assert_int_equal(ls.count, c->n);
    print_message("listed %zu keys\n", ls.count);
    if (c->simple)
        return;

    /* A narrower prefix lists just its keys. */
    size_t want = 0;
    for (size_t i = 0; i < c->n; i++)
        want += strncmp(c->e[i].key, "in/special/", 11) == 0;
    assert_true(want > 3);
    for (size_t i = 0; i < c->n; i++)
        c->e[i].seen = 0;
    struct list_state ls2 = {.c = c};
    assert_int_equal(ahl_s3_list(c->s3, c->bucket, "in/special/", on_key, &ls2, &err), 0);
    assert_int_equal(ls2.count, want);
    struct list_state ls3 = {.c = c};
    assert_int_equal(ahl_s3_list(c->s3, c->bucket, "no/such/prefix/", on_key, &ls3, &err), 0);
    assert_int_equal(ls3.count, 0);
}

struct hashing {
    struct ahl_buf data;
    size_t max_piece;
};

static int to_buf(void *ctx, const void *p, size_t n)
{
    struct hashing *h = ctx;
    if (n > h->max_piece)
        h->max_piece = n;
    return ahl_buf_add(&h->data, p, n);
}

/* Downloads are byte-identical: every special key and every 37th of the rest. */
static void test_get_bytes(void **state)
{
    struct ctx *c = *state;
    size_t checked = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct entry *e = &c->e[i];
        if (strncmp(e->key, "in/many/", 8) == 0 && i % 37 != 0)
            continue;
        struct hashing h = {.max_piece = 0};
        ahl_buf_init(&h.data, 64 << 20);
        struct ahl_err err;
        if (ahl_s3_get(c->s3, c->bucket, e->key, to_buf, &h, &err) < 0)
            fail_msg("get '%s': %s", e->key, err.msg);
        char sha[65];
        ahl_sha256_hex(h.data.data, h.data.len, sha);
        if (strcmp(sha, e->sha) != 0)
            fail_msg("'%s': downloaded %zu bytes that differ from the upload", e->key, h.data.len);
        assert_true(h.max_piece <= 64 * 1024);
        ahl_buf_release(&h.data);
        checked++;
    }
    print_message("downloaded and compared %zu objects\n", checked);
}

/* PutObject round trip, including a key that needs encoding. */
static void test_put_round_trip(void **state)
{
    struct ctx *c = *state;
    const char *key =
        c->simple ? "out-rt.ndjson" : "out/ds-DicomImport-j\xc3\xa9/a b&c<d>+e%f.ndjson";
    char body[3000];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)('a' + i % 26);
    struct ahl_err err;
    if (ahl_s3_put(c->s3, c->bucket, key, body, sizeof body, "application/x-ndjson", &err) < 0)
        fail_msg("put: %s", err.msg);
    struct hashing h = {.max_piece = 0};
    ahl_buf_init(&h.data, 1 << 20);
    assert_int_equal(ahl_s3_get(c->s3, c->bucket, key, to_buf, &h, &err), 0);
    assert_int_equal(h.data.len, sizeof body);
    assert_memory_equal(h.data.data, body, sizeof body);
    ahl_buf_release(&h.data);
    /* An empty object too. */
    assert_int_equal(ahl_s3_put(c->s3, c->bucket, "out-empty", "", 0, NULL, &err), 0);
    ahl_buf_init(&h.data, 1 << 20);
    assert_int_equal(ahl_s3_get(c->s3, c->bucket, "out-empty", to_buf, &h, &err), 0);
    assert_int_equal(h.data.len, 0);
    ahl_buf_release(&h.data);
}

static int count_only(void *ctx, const char *key, uint64_t size)
{
    (void)key, (void)size;
    (*(int *)ctx)++;
    return 0;
}

static int stop_listing(void *ctx, const char *key, uint64_t size)
{
    (void)ctx, (void)key, (void)size;
    return 5;
}

static int refuse(void *ctx, const void *p, size_t n)
{
    (void)ctx, (void)p, (void)n;
    return AHL_EQUOTA;
}

/* Errors carry the status and S3's Code and Message. */
static void test_errors(void **state)
{
    struct ctx *c = *state;
    struct ahl_err err;
    int count = 0;
    assert_int_equal(ahl_s3_list(c->s3, "no-such-bucket-here", "", count_only, &count, &err),
                     AHL_ENOTFOUND);
    print_message("missing bucket: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "s3://no-such-bucket-here/: HTTP 404 NoSuchBucket"));
    struct hashing h = {.max_piece = 0};
    ahl_buf_init(&h.data, 1 << 20);
    assert_int_equal(ahl_s3_get(c->s3, c->bucket, "not-there.dcm", to_buf, &h, &err),
                     AHL_ENOTFOUND);
    print_message("missing key: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "HTTP 404 NoSuchKey"));
    assert_int_equal(h.data.len, 0); /* the error body is not handed over as object bytes */
    assert_int_equal(ahl_s3_put(c->s3, "no-such-bucket-here", "k", "x", 1, NULL, &err),
                     AHL_ENOTFOUND);
    ahl_buf_release(&h.data);
    /* The receiver refusing bytes stops the download with its code. */
    assert_int_equal(ahl_s3_get(c->s3, c->bucket, c->e[0].key, refuse, NULL, &err), AHL_EQUOTA);
    /* A listing's receiver stops it the same way, on the first page. */
    assert_int_equal(ahl_s3_list(c->s3, c->bucket, "", stop_listing, &count, &err), 5);

    /* Locations S3 would refuse, or that would change the request's path, never reach it. */
    assert_int_equal(ahl_s3_list(c->s3, "Bad_Bucket", "", count_only, &count, &err), AHL_EPARSE);
    assert_int_equal(ahl_s3_get(c->s3, "b/../x", "k", to_buf, &h, &err), AHL_EPARSE);
    assert_int_equal(ahl_s3_put(c->s3, c->bucket, "", "x", 1, NULL, &err), AHL_EINVAL);
    char longkey[AHL_S3_MAX_KEY + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_int_equal(ahl_s3_put(c->s3, c->bucket, longkey, "x", 1, NULL, &err), AHL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_complete),
        cmocka_unit_test(test_get_bytes),
        cmocka_unit_test(test_put_round_trip),
        cmocka_unit_test(test_errors),
    };
    const char *ep = getenv("AHL_TEST_S3_ENDPOINT");
    if (!ep || !*ep) {
        printf("SKIP: AHL_TEST_S3_ENDPOINT is not set: run under tests/unit/with_moto.sh\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
