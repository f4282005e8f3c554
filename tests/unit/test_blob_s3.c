/* The object store's S3 backend (blob/objstore_s3.c), the adapter from ahl_objstore_* to the
 * aws/s3.h client, against moto_server started and filled by tests/integration/test_s3_objstore.py
 * (which tests/unit/with_moto.sh runs this under), with the environment test_aws_s3.c describes.
 * The client itself is tested there, against the uploaded manifest; this checks what the adapter
 * adds or passes on, with the client as the oracle: listings as ahl_object_info, downloads into a
 * descriptor, uploads, the checks of the front and S3's errors.
 * Without AHL_TEST_S3_ENDPOINT it exits with 77, which CTest reports as a skip. */
#include <fcntl.h>
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
#include "aws/s3.h"
#include "blob/objstore.h"

struct ctx {
    struct ahl_objstore *os;
    struct ahl_s3 *s3; /* the client alone, to compare with */
    const char *bucket;
};

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);
    c->bucket = getenv("AHL_TEST_S3_BUCKET");
    assert_non_null(c->bucket);
    struct ahl_s3_config cfg = {.endpoint = getenv("AHL_TEST_S3_ENDPOINT")};
    struct ahl_err err;
    if (ahl_objstore_open_s3(&cfg, &c->os, &err) < 0 || ahl_s3_open(&cfg, &c->s3, &err) < 0)
        fail_msg("open: %s", err.msg);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *c = *state;
    ahl_objstore_close(c->os);
    ahl_s3_close(c->s3);
    free(c);
    return 0;
}

/* A listing as text, "key size\n" a line, and its largest object. */
struct listing {
    struct ahl_buf text;
    size_t n;
    size_t stop_after; /* return 9 once n reaches it; 0: never */
    char big_key[AHL_S3_MAX_KEY + 1];
    uint64_t big_size;
};

static int add_key(struct listing *l, const char *key, uint64_t size)
{
    assert_int_equal(ahl_buf_addf(&l->text, "%s %llu\n", key, (unsigned long long)size), 0);
    if (!l->n || size > l->big_size) {
        l->big_size = size;
        snprintf(l->big_key, sizeof l->big_key, "%s", key);
    }
    l->n++;
    return l->stop_after && l->n == l->stop_after ? 9 : 0;
}

static int on_object(void *ctx, const struct ahl_object_info *obj)
{
    assert_null(obj->problem); /* S3 objects never have one */
    return add_key(ctx, obj->key, obj->size);
}

static int on_key(void *ctx, const char *key, uint64_t size)
{
    return add_key(ctx, key, size);
}

/* The objects under a prefix ("in" leaves out what the client's own test uploaded), through the
 * store. */
static void list_store(struct ctx *c, struct listing *l)
{
    struct ahl_err err;
    ahl_buf_init(&l->text, 16 << 20);
    if (ahl_objstore_list(c->os, c->bucket, "in", on_object, l, &err) < 0)
        fail_msg("list: %s", err.msg);
    assert_true(l->n > 0);
}

/* The store lists what the client lists, key for key; the receiver's value stops the listing
 * and comes back. */
static void test_list(void **state)
{
    struct ctx *c = *state;
    struct ahl_err err;
    struct listing via_store = {0}, via_client = {0};
    list_store(c, &via_store);
    ahl_buf_init(&via_client.text, 16 << 20);
    assert_int_equal(ahl_s3_list(c->s3, c->bucket, "in", on_key, &via_client, &err), 0);
    assert_int_equal(via_store.n, via_client.n);
    assert_string_equal(via_store.text.data, via_client.text.data);
    ahl_buf_release(&via_store.text);
    ahl_buf_release(&via_client.text);

    struct listing stopped = {.stop_after = 2};
    ahl_buf_init(&stopped.text, 1 << 20);
    assert_int_equal(ahl_objstore_list(c->os, c->bucket, NULL, on_object, &stopped, &err), 9);
    assert_int_equal(stopped.n, 2);
    ahl_buf_release(&stopped.text);
}

/* The largest object streamed into a file, and an upload read back. */
static void test_get_fd_and_put(void **state)
{
    struct ctx *c = *state;
    struct ahl_err err;
    struct listing l = {0};
    list_store(c, &l);
    ahl_buf_release(&l.text);
    char tmp[] = "/tmp/ahl-s3-get-XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    if (ahl_objstore_get_fd(c->os, c->bucket, l.big_key, fd, &err) < 0)
        fail_msg("get '%s': %s", l.big_key, err.msg);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, l.big_size);
    close(fd);
    unlink(tmp);

    const char body[] = "{\"jobStatus\":\"COMPLETED\"}\n";
    assert_int_equal(ahl_objstore_put(c->os, c->bucket, "out-adapter.json", body, sizeof body - 1,
                                      "application/json", &err),
                     0);
    char tmp2[] = "/tmp/ahl-s3-get-XXXXXX";
    fd = mkstemp(tmp2);
    assert_true(fd >= 0);
    assert_int_equal(ahl_objstore_get_fd(c->os, c->bucket, "out-adapter.json", fd, &err), 0);
    char back[64];
    assert_int_equal(pread(fd, back, sizeof back, 0), sizeof body - 1);
    assert_memory_equal(back, body, sizeof body - 1);
    close(fd);
    unlink(tmp2);
}

/* The front's checks come first; S3's errors pass through with their code and wording. */
static void test_errors(void **state)
{
    struct ctx *c = *state;
    struct ahl_err err;
    struct listing k = {0};
    ahl_buf_init(&k.text, 1024);
    assert_int_equal(ahl_objstore_list(c->os, "Not_A_Bucket", "", on_object, &k, &err), AHL_EPARSE);
    assert_non_null(strstr(err.msg, "bucket name 'Not_A_Bucket'"));
    assert_int_equal(ahl_objstore_put(c->os, c->bucket, "", "x", 1, NULL, &err), AHL_EINVAL);
    assert_int_equal(ahl_objstore_list(c->os, "no-such-bucket-here", "", on_object, &k, &err),
                     AHL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "s3://no-such-bucket-here/: HTTP 404 NoSuchBucket"));
    int fd = open("/dev/null", O_WRONLY);
    assert_int_equal(ahl_objstore_get_fd(c->os, c->bucket, "not-there.dcm", fd, &err),
                     AHL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "HTTP 404 NoSuchKey"));
    close(fd);
    assert_int_equal(k.n, 0);
    ahl_buf_release(&k.text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_get_fd_and_put),
        cmocka_unit_test(test_errors),
    };
    const char *ep = getenv("AHL_TEST_S3_ENDPOINT");
    if (!ep || !*ep) {
        printf("SKIP: AHL_TEST_S3_ENDPOINT is not set: run under tests/unit/with_moto.sh\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
