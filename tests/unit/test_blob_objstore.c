/* Unit tests for the object store's key rules and the local-bucket backend: listing order and
 * prefixes, streaming reads, atomic writes, and every way a key could try to leave its bucket
 * (.., absolute paths, symbolic links, a linked bucket). s3:// URIs and bucket names are tested
 * in test_aws_s3uri.c, the S3 backend against moto in test_blob_s3.c. */
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
#include "blob/objstore.h"

/* ---- key rules, table-driven ---- */

struct key_case {
    const char *key;
    int is_prefix;
    int rc;
};

static const struct key_case key_cases[] = {
    {"a.dcm", 0, 0},
    {"in/sub/a b.dcm", 0, 0},
    {"..a/b..", 0, 0},
    {".hidden", 0, 0},
    {"", 1, 0},
    {"in/", 1, 0},
    {"in/pre", 1, 0},
    {"", 0, AHL_EDENIED},
    {"in/", 0, AHL_EDENIED},
    {"/etc/passwd", 0, AHL_EDENIED},
    {"/", 1, AHL_EDENIED},
    {"..", 0, AHL_EDENIED},
    {"../x", 0, AHL_EDENIED},
    {"in/../../x", 0, AHL_EDENIED},
    {"in/..", 1, AHL_EDENIED},
    {"in/./x", 0, AHL_EDENIED},
    {"in//x", 0, AHL_EDENIED},
    {"in//", 1, AHL_EDENIED},
};

static void test_local_key_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof key_cases / sizeof key_cases[0]; i++) {
        const struct key_case *c = &key_cases[i];
        struct ahl_err err;
        ahl_err_clear(&err);
        int rc = ahl_objstore_local_key_check(c->key, c->is_prefix, &err);
        if (rc != c->rc)
            fail_msg("key '%s' (prefix %d): rc %d, want %d", c->key, c->is_prefix, rc, c->rc);
        if (rc)
            assert_true(strstr(err.msg, c->key) != NULL || c->key[0] == '\0');
    }
}

/* ---- a scratch tree of local buckets ---- */

struct fixture {
    char root[256];    /* the --s3-root */
    char outside[256]; /* a directory next to it that keys must never reach */
    struct ahl_objstore *os;
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void pathf(char *out, size_t cap, const char *a, const char *b)
{
    snprintf(out, cap, "%s/%s", a, b);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    char base[] = "/tmp/ahl-objstore-XXXXXX";
    assert_non_null(mkdtemp(base));
    snprintf(fx->root, sizeof fx->root, "%s/root", base);
    snprintf(fx->outside, sizeof fx->outside, "%s/outside", base);
    assert_int_equal(mkdir(fx->root, 0755), 0);
    assert_int_equal(mkdir(fx->outside, 0755), 0);
    char p[512], q[512];
    const char *dirs[] = {"bkt", "bkt/in", "bkt/in/sub", "bkt/in-x", "other"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        pathf(p, sizeof p, fx->root, dirs[i]);
        assert_int_equal(mkdir(p, 0755), 0);
    }
    const char *files[][2] = {
        {"bkt/in/a.dcm", "AAAA"},    {"bkt/in/b c.dcm", "BB"}, {"bkt/in/sub/d\xc3\xa9.dcm", "D"},
        {"bkt/in-x/e.dcm", "EEEEE"}, {"bkt/top.dcm", "T"},     {"other/o.dcm", "O"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        pathf(p, sizeof p, fx->root, files[i][0]);
        write_file(p, files[i][1]);
    }
    pathf(p, sizeof p, fx->outside, "secret.txt");
    write_file(p, "SECRET");
    /* Links: one to a file outside the root, one to a directory outside, one inside the
     * bucket, one to another bucket (inside the root but outside this bucket), a linked
     * bucket pointing outside the root. */
    pathf(q, sizeof q, fx->outside, "secret.txt");
    pathf(p, sizeof p, fx->root, "bkt/in/escape.dcm");
    assert_int_equal(symlink(q, p), 0);
    pathf(p, sizeof p, fx->root, "bkt/in/escdir");
    assert_int_equal(symlink(fx->outside, p), 0);
    pathf(p, sizeof p, fx->root, "bkt/in/alias.dcm");
    assert_int_equal(symlink("a.dcm", p), 0);
    pathf(p, sizeof p, fx->root, "bkt/in/cross.dcm");
    assert_int_equal(symlink("../../other/o.dcm", p), 0);
    pathf(p, sizeof p, fx->root, "linked");
    assert_int_equal(symlink(fx->outside, p), 0);
    struct ahl_err err;
    assert_int_equal(ahl_objstore_open_local(fx->root, &fx->os, &err), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    ahl_objstore_close(fx->os);
    char cmd[600];
    char base[256];
    snprintf(base, sizeof base, "%s", fx->root);
    *strrchr(base, '/') = '\0';
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

struct listing {
    struct ahl_buf text; /* "key size [problem]\n" per object */
    int stop_after;
    int seen;
};

static int collect(void *ctx, const struct ahl_object_info *obj)
{
    struct listing *l = ctx;
    l->seen++;
    ahl_buf_addf(&l->text, "%s %llu%s%s\n", obj->key, (unsigned long long)obj->size,
                 obj->problem ? " !" : "", obj->problem ? obj->problem : "");
    return l->stop_after && l->seen >= l->stop_after ? 7 : 0;
}

static void list_expect(struct fixture *fx, const char *bucket, const char *prefix, int want_rc,
                        const char *want)
{
    struct listing l = {.stop_after = 0};
    ahl_buf_init(&l.text, 1 << 20);
    struct ahl_err err;
    ahl_err_clear(&err);
    int rc = ahl_objstore_list(fx->os, bucket, prefix, collect, &l, &err);
    if (rc != want_rc)
        fail_msg("list %s/%s: rc %d, want %d (%s)", bucket, prefix, rc, want_rc, err.msg);
    if (want && strcmp(l.text.data, want) != 0)
        fail_msg("list %s/%s:\n%s\nwant:\n%s", bucket, prefix, l.text.data, want);
    ahl_buf_release(&l.text);
}

static void test_local_list(void **state)
{
    struct fixture *fx = *state;
    /* S3 order ("in-x/" before "in/", as '-' < '/'), links reported, temp files hidden. */
    list_expect(fx, "bkt", "", 0,
                "in-x/e.dcm 5\n"
                "in/a.dcm 4\n"
                "in/alias.dcm 4\n"
                "in/b c.dcm 2\n"
                "in/cross.dcm 0 !a symbolic link that resolves outside its bucket; refused\n"
                "in/escape.dcm 0 !a symbolic link that resolves outside its bucket; refused\n"
                "in/escdir 0 !a symbolic link that resolves outside its bucket; refused\n"
                "in/sub/d\xc3\xa9.dcm 1\n"
                "top.dcm 1\n");
    list_expect(fx, "bkt", "in/sub/", 0, "in/sub/d\xc3\xa9.dcm 1\n");
    list_expect(fx, "bkt", "in/b", 0, "in/b c.dcm 2\n");
    list_expect(fx, "bkt", "in", 0, NULL);
    list_expect(fx, "bkt", "t", 0, "top.dcm 1\n");
    list_expect(fx, "bkt", "nothing/here/", 0, "");
    /* A prefix through a link that leaves the bucket is refused, not followed. */
    list_expect(fx, "bkt", "in/escdir/", AHL_EDENIED, "");
    list_expect(fx, "bkt", "../other/", AHL_EDENIED, "");
    list_expect(fx, "bkt", "/etc/", AHL_EDENIED, "");
    list_expect(fx, "nobucket", "", AHL_ENOTFOUND, "");
    list_expect(fx, "linked", "", AHL_EDENIED, "");
    list_expect(fx, "Bad_Bucket", "", AHL_EPARSE, "");

    /* The callback stops the listing with its own value. */
    struct listing l = {.stop_after = 2};
    ahl_buf_init(&l.text, 1 << 20);
    assert_int_equal(ahl_objstore_list(fx->os, "bkt", "", collect, &l, NULL), 7);
    assert_int_equal(l.seen, 2);
    ahl_buf_release(&l.text);
}

struct sink {
    struct ahl_buf data;
    size_t max_piece;
    int fail;
};

static int to_sink(void *ctx, const void *p, size_t n)
{
    struct sink *s = ctx;
    if (n > s->max_piece)
        s->max_piece = n;
    if (s->fail)
        return s->fail;
    return ahl_buf_add(&s->data, p, n);
}

static int get_text(struct fixture *fx, const char *bucket, const char *key, struct ahl_buf *out,
                    struct ahl_err *err)
{
    struct sink s = {.max_piece = 0};
    ahl_buf_init(&s.data, 64 << 20);
    ahl_err_clear(err);
    int rc = ahl_objstore_get(fx->os, bucket, key, to_sink, &s, err);
    ahl_buf_reset(out);
    ahl_buf_add(out, s.data.data, s.data.len);
    ahl_buf_release(&s.data);
    return rc;
}

static void test_local_get(void **state)
{
    struct fixture *fx = *state;
    struct ahl_buf b;
    ahl_buf_init(&b, 64 << 20);
    struct ahl_err err;
    assert_int_equal(get_text(fx, "bkt", "in/b c.dcm", &b, &err), 0);
    assert_string_equal(b.data, "BB");
    assert_int_equal(get_text(fx, "bkt", "in/sub/d\xc3\xa9.dcm", &b, &err), 0);
    assert_string_equal(b.data, "D");
    assert_int_equal(get_text(fx, "bkt", "in/alias.dcm", &b, &err), 0);
    assert_string_equal(b.data, "AAAA");

    /* Escapes: refused with a message saying so, and nothing read. */
    static const char *escapes[] = {"in/escape.dcm",
                                    "in/escdir/secret.txt",
                                    "in/cross.dcm",
                                    "../../outside/secret.txt",
                                    "in/../../outside/secret.txt",
                                    "/etc/passwd"};
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        int rc = get_text(fx, "bkt", escapes[i], &b, &err);
        if (rc != AHL_EDENIED)
            fail_msg("get %s: rc %d (%s), want AHL_EDENIED", escapes[i], rc, err.msg);
        assert_int_equal(b.len, 0);
        assert_true(strstr(err.msg, "outside") || strstr(err.msg, "'..'") ||
                    strstr(err.msg, "absolute"));
    }
    assert_int_equal(get_text(fx, "linked", "secret.txt", &b, &err), AHL_EDENIED);
    assert_int_equal(b.len, 0);

    assert_int_equal(get_text(fx, "bkt", "in/missing.dcm", &b, &err), AHL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "s3://bkt/in/missing.dcm: NoSuchKey"));
    assert_int_equal(get_text(fx, "bkt", "in/sub", &b, &err), AHL_ENOTFOUND);
    assert_int_equal(get_text(fx, "nobucket", "x", &b, &err), AHL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "s3://nobucket/: NoSuchBucket"));

    /* A large object streams in bounded pieces; a failing receiver stops it. */
    char p[512];
    pathf(p, sizeof p, fx->root, "bkt/big.bin");
    FILE *f = fopen(p, "wb");
    for (int i = 0; i < 300000; i++)
        fprintf(f, "%08d", i);
    fclose(f);
    struct sink s = {.max_piece = 0};
    ahl_buf_init(&s.data, 64 << 20);
    assert_int_equal(ahl_objstore_get(fx->os, "bkt", "big.bin", to_sink, &s, &err), 0);
    assert_int_equal(s.data.len, 2400000);
    assert_memory_equal(s.data.data + 8 * 123456, "00123456", 8);
    assert_true(s.max_piece <= 64 * 1024);
    s.fail = AHL_ETOOBIG;
    assert_int_equal(ahl_objstore_get(fx->os, "bkt", "big.bin", to_sink, &s, &err), AHL_ETOOBIG);
    ahl_buf_release(&s.data);

    /* Into a file descriptor. */
    char tmp[] = "/tmp/ahl-objstore-fd-XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    assert_int_equal(ahl_objstore_get_fd(fx->os, "bkt", "big.bin", fd, &err), 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 2400000);
    close(fd);
    unlink(tmp);
    ahl_buf_release(&b);
}

static void test_local_put(void **state)
{
    struct fixture *fx = *state;
    struct ahl_err err;
    struct ahl_buf b;
    ahl_buf_init(&b, 1 << 20);
    const char *key = "out/ds-DicomImport-job/SUCCESS/success.ndjson";
    assert_int_equal(ahl_objstore_put(fx->os, "bkt", key, "{\"a\":1}\n", 8, NULL, &err), 0);
    assert_int_equal(get_text(fx, "bkt", key, &b, &err), 0);
    assert_string_equal(b.data, "{\"a\":1}\n");
    /* Replacing keeps one object and leaves no temporary file behind. */
    assert_int_equal(ahl_objstore_put(fx->os, "bkt", key, "x", 1, NULL, &err), 0);
    list_expect(fx, "bkt", "out/", 0, "out/ds-DicomImport-job/SUCCESS/success.ndjson 1\n");
    char p[512];
    pathf(p, sizeof p, fx->root, "bkt/out/ds-DicomImport-job/SUCCESS");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", p);
    assert_int_equal(system(cmd), 0);

    /* Writes never go through links or out of the bucket. */
    assert_int_equal(ahl_objstore_put(fx->os, "bkt", "in/escdir/x.txt", "x", 1, NULL, &err),
                     AHL_EDENIED);
    assert_non_null(strstr(err.msg, "never written through links"));
    pathf(p, sizeof p, fx->outside, "x.txt");
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(ahl_objstore_put(fx->os, "bkt", "../x.txt", "x", 1, NULL, &err), AHL_EDENIED);
    assert_int_equal(ahl_objstore_put(fx->os, "bkt", "out/dir/", "x", 1, NULL, &err), AHL_EDENIED);
    assert_int_equal(ahl_objstore_put(fx->os, "nobucket", "x", "x", 1, NULL, &err), AHL_ENOTFOUND);
    /* Putting onto a link replaces the link, never its target. */
    assert_int_equal(ahl_objstore_put(fx->os, "bkt", "in/escape.dcm", "new", 3, NULL, &err), 0);
    pathf(p, sizeof p, fx->outside, "secret.txt");
    FILE *f = fopen(p, "rb");
    char got[16] = {0};
    assert_non_null(f);
    assert_true(fread(got, 1, sizeof got - 1, f) > 0);
    fclose(f);
    assert_string_equal(got, "SECRET");
    assert_int_equal(get_text(fx, "bkt", "in/escape.dcm", &b, &err), 0);
    assert_string_equal(b.data, "new");
    ahl_buf_release(&b);
}

static void test_open_errors(void **state)
{
    (void)state;
    struct ahl_objstore *os = (struct ahl_objstore *)1;
    struct ahl_err err;
    assert_int_equal(ahl_objstore_open_local("/nonexistent/root", &os, &err), AHL_EINVAL);
    assert_null(os);
    assert_non_null(strstr(err.msg, "/nonexistent/root"));
    assert_int_equal(ahl_objstore_open_local("/etc/hostname", &os, &err), AHL_EINVAL);

    struct ahl_s3_config cfg = {.endpoint = "ftp://x", .access_key = "a", .secret_key = "s"};
    assert_int_equal(ahl_objstore_open_s3(&cfg, &os, &err), AHL_EINVAL);
    cfg.endpoint = "http://host:9000/some/path";
    assert_int_equal(ahl_objstore_open_s3(&cfg, &os, &err), AHL_EINVAL);
    cfg.endpoint = "http://user@host:9000";
    assert_int_equal(ahl_objstore_open_s3(&cfg, &os, &err), AHL_EINVAL);
    cfg.endpoint = "http://127.0.0.1:9/";
    assert_int_equal(ahl_objstore_open_s3(&cfg, &os, &err), 0);
    /* Nothing listens on the discard port: a clear transport error, not a hang. */
    struct listing l = {.stop_after = 0};
    ahl_buf_init(&l.text, 1024);
    assert_int_equal(ahl_objstore_list(os, "bkt", "", collect, &l, &err), AHL_EIO);
    assert_non_null(strstr(err.msg, "request to http://127.0.0.1:9 failed"));
    ahl_buf_release(&l.text);
    ahl_objstore_close(os);

    cfg.access_key = cfg.secret_key = NULL;
    unsetenv("AWS_ACCESS_KEY_ID");
    assert_int_equal(ahl_objstore_open_s3(&cfg, &os, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "no credentials"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_key_table),
        cmocka_unit_test_setup_teardown(test_local_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_put, setup, teardown),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
